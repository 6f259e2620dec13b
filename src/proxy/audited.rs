//! The policy's decision on one call, and its audit record.
//!
//! [`Proxy::decide`] asks the listener's policy whether the call's class is
//! allowed. A refused call is recorded and answered 403 (it never reaches
//! the API); an allowed call of a class that can change the account comes
//! back as an [`AuditedCall`], whose record is written once the answer has
//! gone out (its body wrapped) or the call failed. Public data and reads
//! pass with nothing to record, and cost no clock read.

use std::sync::Arc;
use std::time::SystemTime;

use http::{Request, Response};
use tokio::time::Instant;

use super::body::{self, Body};
use super::{ConnContext, Proxy, ProxyError};
use crate::audit::{self, Audited, Decision, Peer, Record};
use crate::config::Live;
use crate::policy::Class;
use ethgas_api::normalize_path;

/// The longest path a record or a refusal quotes.
const MAX_PATH: usize = 256;

/// An allowed call whose record is still to be written.
pub(super) struct AuditedCall {
    record: Record,
    sink: Arc<audit::Sink>,
    started: Instant,
}

impl Proxy {
    /// Whether the listener the request came in on may make a call of
    /// `class`: refused calls are recorded and become a 403.
    pub(super) fn decide<B>(
        &self,
        live: &Live,
        ctx: &ConnContext,
        req: &Request<B>,
        class: Class,
    ) -> Result<Option<AuditedCall>, ProxyError> {
        let allowed = live.policy.allows(ctx.listener, class);
        if allowed && !audit::audited(class) {
            return Ok(None);
        }
        let shared = &*self.shared;
        let listener = live.policy.name(ctx.listener);
        let decision = if allowed { Decision::Allowed } else { Decision::Refused };
        shared
            .metrics
            .policy_decisions
            .with_label_values(&[listener, class.as_str(), decision.as_str()])
            .inc();
        let mut path = normalize_path(req.uri().path());
        if path.len() > MAX_PATH {
            let mut cut = MAX_PATH;
            while !path.is_char_boundary(cut) {
                cut -= 1;
            }
            path.truncate(cut);
            path.push('…');
        }
        let peer = match (&ctx.unix_peer, ctx.peer) {
            (Some(unix), _) => unix.clone(),
            (None, Some(addr)) => Arc::new(Peer::Tcp(addr)),
            (None, None) => Arc::new(Peer::Unix {
                uid: None,
                pid: None,
                command: None,
            }),
        };
        let record = Record {
            time: SystemTime::now(),
            listener: listener.into(),
            peer,
            method: req.method().clone(),
            path,
            class,
            decision,
            status: None,
            error_code: None,
            duration: Default::default(),
        };
        if allowed {
            return Ok(Some(AuditedCall {
                record,
                sink: shared.audit.clone(),
                started: Instant::now(),
            }));
        }
        let refusal = ProxyError::NotAllowed {
            method: req.method().to_string(),
            path: record.path.clone(),
            class,
            listener: listener.to_string(),
        };
        let mut record = record;
        record.status = Some(refusal.status().as_u16());
        shared.audit.write(&record);
        Err(refusal)
    }
}

impl AuditedCall {
    /// The forwarded call's outcome, with its record: written when the
    /// answer's body has gone out, or now if the call failed.
    pub(super) fn finish(self, result: Result<Response<Body>, ProxyError>) -> Result<Response<Body>, ProxyError> {
        let AuditedCall {
            mut record,
            sink,
            started,
        } = self;
        match result {
            Ok(resp) => {
                record.status = Some(resp.status().as_u16());
                Ok(resp.map(|b| body::audited(b, |plain| Audited::new(plain, record, sink, started))))
            }
            Err(e) => {
                record.status = Some(e.status().as_u16());
                record.duration = started.elapsed();
                sink.write(&record);
                Err(e)
            }
        }
    }
}

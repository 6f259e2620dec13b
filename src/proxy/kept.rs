//! Request bodies kept for a replay after a 401, and the budget that bounds
//! them across every connection.
//!
//! A body is kept only if it is small (`proxy.replay_buffer_bytes`, by its
//! `Content-Length`) and its bytes fit in what is left of
//! `proxy.replay_budget_bytes`, taken before the first byte is read and given
//! back when the request is done. A body that does not fit is streamed to the
//! API as any large one is: it goes at once, and a 401 for it is handed back
//! instead of being replayed (the token is renewed for the next requests).
//! A kept body is read into one buffer of exactly its length: the client's
//! bytes are copied out of hyper's read buffer once, and no other copy is made.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap};
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::debug;

use crate::error::ProxyError;
use crate::upstream::{BoxError, ClientBody};

/// A request body, kept whole when it is small enough to replay.
pub(super) enum RequestBody<B> {
    /// The body, and its share of the replay budget (none for an empty body).
    Kept(Bytes, Option<OwnedSemaphorePermit>),
    /// Streamed, ended after this long without data.
    Stream(B, Duration),
}

/// The bytes of kept bodies all connections may hold at once
/// (`proxy.replay_budget_bytes`), shared by the workers.
#[derive(Clone)]
pub(super) struct ReplayBudget(Arc<Semaphore>);

impl ReplayBudget {
    pub(super) fn new(bytes: usize) -> ReplayBudget {
        ReplayBudget(Arc::new(Semaphore::new(bytes.min(Semaphore::MAX_PERMITS))))
    }

    /// `n` bytes of the budget, if that many are left.
    fn take(&self, n: usize) -> Option<OwnedSemaphorePermit> {
        let n = u32::try_from(n).ok()?;
        self.0.clone().try_acquire_many_owned(n).ok()
    }
}

/// Keeps a small body whole (so it can be replayed) if the budget has room
/// for it; streams the rest. `limit` is `proxy.replay_buffer_bytes`, `idle`
/// `proxy.body_idle_timeout`.
pub(super) async fn read<B: ClientBody>(
    budget: &ReplayBudget,
    limit: usize,
    idle: Duration,
    headers: &HeaderMap,
    body: B,
) -> Result<RequestBody<B>, ProxyError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let Some(n) = declared.filter(|n| *n <= limit) else {
        return Ok(RequestBody::Stream(body, idle));
    };
    let Some(permit) = budget.take(n) else {
        debug!(
            bytes = n,
            "proxy.replay_budget_bytes is spent by other requests in flight; this body streams and is not replayed"
        );
        return Ok(RequestBody::Stream(body, idle));
    };
    // A kept body is small: all of it must come within the idle limit.
    let bytes = tokio::time::timeout(idle, collect_exact(body, n))
        .await
        .map_err(|_| ProxyError::SlowBody { limit: idle })?
        .map_err(|e| ProxyError::BadRequest(format!("reading the request body failed: {e}")))?;
    Ok(RequestBody::Kept(bytes, Some(permit)))
}

/// The body, whose `Content-Length` is `n`, in one buffer of `n` bytes
/// (hyper ends a body at its length and fails a shorter one).
async fn collect_exact<B: ClientBody>(body: B, n: usize) -> Result<Bytes, BoxError> {
    let mut out = BytesMut::with_capacity(n);
    let mut body = std::pin::pin!(body);
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.map_err(Into::into)?.into_data() {
            // Never past the declared length, whatever comes.
            let room = n - out.len();
            out.extend_from_slice(&data[..data.len().min(room)]);
        }
    }
    Ok(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_shared_and_given_back() {
        let budget = ReplayBudget::new(100);
        let a = budget.take(60).expect("room");
        assert!(budget.clone().take(60).is_none(), "a clone shares the budget");
        let b = budget.take(40).expect("the rest");
        drop(a);
        assert!(budget.take(60).is_some());
        drop(b);
        assert!(ReplayBudget::new(0).take(1).is_none());
        assert!(ReplayBudget::new(0).take(0).is_some(), "an empty body costs nothing");
    }
}

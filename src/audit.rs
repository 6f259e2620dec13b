//! The audit trail: one structured record for every call that can change the
//! account (any class but `public` and `read`) and for every call a policy
//! refused.
//!
//! A record names who (the listener, and the peer: a TCP address, or for a
//! unix socket the uid, pid and command name the kernel vouches for with
//! `SO_PEERCRED`), what (method, normalised path, class), the decision, and
//! how it went (the API's status and error code, the duration). Never the
//! token, cookies, query values or bodies: the path is the normalised one,
//! without its query, and the error code is the one number of the API's
//! envelope.
//!
//! Where records go (`[audit] output`): with `"auto"` (the default) to the
//! journal as native entries under their own identifier,
//! `ethgas-sidecar-audit`, when stderr is the journal — so
//! `journalctl -t ethgas-sidecar-audit` shows only them, with every part a
//! field of its own (`CLASS=funds`, `DECISION=refused`, `PEER_PID=…`) — and
//! as JSON lines on stderr elsewhere; `"journal"`, `"stderr"`, a file path
//! (JSON lines, appended), or `"off"`.
//!
//! A forwarded call's record is written when its response has ended (or the
//! client left), so the duration covers the whole answer; the API's error
//! code is read from the first bytes of the body as they stream past, never
//! by holding the body back.

use std::fmt;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::Method;
use hyper::body::{Body, Frame, SizeHint};
use serde::Serialize;
use tokio::time::Instant;

use crate::policy::Class;

/// The identifier of the journal entries (`journalctl -t …`).
pub const JOURNAL_IDENTIFIER: &str = "ethgas-sidecar-audit";

/// How much of a response body is looked at for the API's error code.
const ERROR_CODE_WINDOW: usize = 4096;

/// Who sent a request, as the kernel knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    Tcp(SocketAddr),
    Unix {
        uid: Option<u32>,
        pid: Option<i32>,
        /// `/proc/PID/comm`: the command name (at most 15 bytes).
        command: Option<String>,
    },
}

impl Peer {
    /// The peer of a unix-socket connection: its credentials and command name.
    pub fn of_unix(stream: &tokio::net::UnixStream) -> Peer {
        let cred = stream.peer_cred().ok();
        let pid = cred.as_ref().and_then(|c| c.pid());
        Peer::Unix {
            uid: cred.map(|c| c.uid()),
            pid,
            command: pid.and_then(command_of),
        }
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Tcp(addr) => write!(f, "{addr}"),
            Peer::Unix { uid, pid, command } => {
                let unknown = || "?".to_string();
                write!(
                    f,
                    "uid={} pid={} command={}",
                    uid.map_or_else(unknown, |u| u.to_string()),
                    pid.map_or_else(unknown, |p| p.to_string()),
                    command.as_deref().unwrap_or("?")
                )
            }
        }
    }
}

/// The command name of a process, from `/proc` (printable ASCII only).
fn command_of(pid: i32) -> Option<String> {
    let mut name = std::fs::read(format!("/proc/{pid}/comm")).ok()?;
    name.truncate(64);
    let text: String = String::from_utf8_lossy(&name)
        .trim_end()
        .chars()
        .map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '?' })
        .collect();
    (!text.is_empty()).then_some(text)
}

/// What the policy decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Allowed,
    Refused,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allowed => "allowed",
            Decision::Refused => "refused",
        }
    }
}

/// One audited call.
#[derive(Debug, Clone)]
pub struct Record {
    pub time: SystemTime,
    pub listener: Arc<str>,
    pub peer: Arc<Peer>,
    pub method: Method,
    /// The normalised path, without the query.
    pub path: String,
    pub class: Class,
    pub decision: Decision,
    /// The status the client got (the API's, or the sidecar's refusal).
    pub status: Option<u16>,
    /// The error code of the API's envelope (`errorCode`, or `code` when it
    /// is not a success), when the answer was one.
    pub error_code: Option<i64>,
    pub duration: Duration,
}

/// Whether calls of `class` are recorded when allowed.
pub fn audited(class: Class) -> bool {
    !matches!(class, Class::Public | Class::Read)
}

#[derive(Serialize)]
struct Line<'a> {
    time: String,
    listener: &'a str,
    #[serde(flatten)]
    peer: PeerFields<'a>,
    method: &'a str,
    path: &'a str,
    class: Class,
    decision: Decision,
    status: Option<u16>,
    error_code: Option<i64>,
    duration_ms: f64,
}

#[derive(Serialize)]
struct PeerFields<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    peer_addr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    peer_uid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    peer_pid: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    peer_command: Option<&'a str>,
}

impl Record {
    /// The record as one JSON object (no newline).
    pub fn to_json(&self) -> String {
        let peer = match &*self.peer {
            Peer::Tcp(addr) => PeerFields {
                peer_addr: Some(addr.to_string()),
                peer_uid: None,
                peer_pid: None,
                peer_command: None,
            },
            Peer::Unix { uid, pid, command } => PeerFields {
                peer_addr: None,
                peer_uid: *uid,
                peer_pid: *pid,
                peer_command: command.as_deref(),
            },
        };
        let line = Line {
            time: humantime::format_rfc3339_millis(self.time).to_string(),
            listener: &self.listener,
            peer,
            method: self.method.as_str(),
            path: &self.path,
            class: self.class,
            decision: self.decision,
            status: self.status,
            error_code: self.error_code,
            duration_ms: (self.duration.as_secs_f64() * 1e6).round() / 1e3,
        };
        serde_json::to_string(&line).unwrap_or_default()
    }
}

/// Where records go, as configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub enum Output {
    /// The journal when stderr is the journal, else stderr.
    Auto,
    Journal,
    Stderr,
    File(PathBuf),
    Off,
}

impl From<Output> for String {
    fn from(o: Output) -> String {
        match o {
            Output::Auto => "auto".into(),
            Output::Journal => "journal".into(),
            Output::Stderr => "stderr".into(),
            Output::File(p) => p.display().to_string(),
            Output::Off => "off".into(),
        }
    }
}

impl Output {
    /// Parses `audit.output`: `auto`, `journal`, `stderr`, `off`, or an
    /// absolute file path.
    pub fn parse(text: &str) -> Result<Output, String> {
        match text {
            "auto" => Ok(Output::Auto),
            "journal" => Ok(Output::Journal),
            "stderr" => Ok(Output::Stderr),
            "off" => Ok(Output::Off),
            path if path.starts_with('/') => Ok(Output::File(PathBuf::from(path))),
            other => Err(format!(
                "{other:?} is not \"auto\", \"journal\", \"stderr\", \"off\" or an absolute file path"
            )),
        }
    }
}

/// The open destination of the records.
pub struct Sink {
    kind: SinkKind,
}

enum SinkKind {
    Off,
    Lines(Mutex<Box<dyn Write + Send>>),
    Journal(tracing::Dispatch),
}

impl Sink {
    /// Opens `output`. `stderr_is_journal` decides `auto`.
    pub fn open(output: &Output, stderr_is_journal: bool) -> Result<Sink, String> {
        let kind = match output {
            Output::Off => SinkKind::Off,
            Output::Stderr => SinkKind::Lines(Mutex::new(Box::new(std::io::stderr()))),
            Output::Auto if !stderr_is_journal => SinkKind::Lines(Mutex::new(Box::new(std::io::stderr()))),
            // stderr is the journal but its socket cannot be reached (a
            // container without journald's socket): the same records as JSON
            // lines on stderr, which still reach the journal, rather than no
            // sidecar at all.
            Output::Auto => match journal() {
                Ok(dispatch) => SinkKind::Journal(dispatch),
                Err(e) => {
                    tracing::warn!("{e}; audit records go to stderr as JSON lines");
                    SinkKind::Lines(Mutex::new(Box::new(std::io::stderr())))
                }
            },
            Output::Journal => SinkKind::Journal(journal()?),
            Output::File(path) => {
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| format!("cannot open the audit file {}: {e}", path.display()))?;
                SinkKind::Lines(Mutex::new(Box::new(file)))
            }
        };
        Ok(Sink { kind })
    }

    /// A sink that writes JSON lines into `writer` (tests).
    #[cfg(test)]
    pub fn lines(writer: Box<dyn Write + Send>) -> Sink {
        Sink {
            kind: SinkKind::Lines(Mutex::new(writer)),
        }
    }

    /// A sink that writes nothing (tests).
    #[cfg(test)]
    pub fn off() -> Sink {
        Sink { kind: SinkKind::Off }
    }

    /// Writes one record; a write that fails is logged, never fatal.
    pub fn write(&self, record: &Record) {
        match &self.kind {
            SinkKind::Off => {}
            SinkKind::Lines(writer) => {
                let mut line = record.to_json();
                line.push('\n');
                let Ok(mut w) = writer.lock() else { return };
                if let Err(e) = w.write_all(line.as_bytes()).and_then(|()| w.flush()) {
                    tracing::warn!("cannot write an audit record: {e}");
                }
            }
            SinkKind::Journal(dispatch) => tracing::dispatcher::with_default(dispatch, || journal_event(record)),
        }
    }
}

fn journal() -> Result<tracing::Dispatch, String> {
    use tracing_subscriber::layer::SubscriberExt;
    let layer = tracing_journald::layer()
        .map_err(|e| format!("cannot reach the journal for the audit trail: {e} (set audit.output)"))?
        .with_syslog_identifier(JOURNAL_IDENTIFIER.to_string())
        .with_field_prefix(None);
    Ok(tracing::Dispatch::new(tracing_subscriber::registry().with(layer)))
}

/// The record as one native journal entry: the message for people, each
/// part a field of its own for `journalctl CLASS=funds`.
fn journal_event(r: &Record) {
    let (addr, uid, pid, command) = match &*r.peer {
        Peer::Tcp(addr) => (Some(addr.to_string()), None, None, None),
        Peer::Unix { uid, pid, command } => (None, *uid, *pid, command.clone()),
    };
    tracing::info!(
        target: "ethgas_sidecar::audit",
        listener = &*r.listener,
        peer_addr = addr,
        peer_uid = uid,
        peer_pid = pid,
        peer_command = command,
        method = r.method.as_str(),
        path = r.path.as_str(),
        class = r.class.as_str(),
        decision = r.decision.as_str(),
        status = r.status,
        error_code = r.error_code,
        duration_ms = (r.duration.as_secs_f64() * 1e6).round() / 1e3,
        "{} {} {} ({}) by {} on {}: {}",
        r.decision.as_str(),
        r.method,
        r.path,
        r.class,
        r.peer,
        r.listener,
        r.status.map_or_else(|| "no answer".to_string(), |s| format!("HTTP {s}")),
    );
}

/// The error code of an API envelope: the live API's `errorCode`, or the
/// documented API's `code` when it is not a success (200 or 1).
pub fn envelope_error_code(body: &[u8]) -> Option<i64> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    if let Some(code) = value.get("errorCode").and_then(|c| c.as_i64()) {
        return Some(code);
    }
    match value.get("code").and_then(|c| c.as_i64()) {
        Some(200 | 1) | None => None,
        code => code,
    }
}

/// A response body that writes the call's audit record when it has ended
/// (or is dropped: the client left), after reading the API's error code from
/// its first bytes as they pass.
pub struct Audited<B> {
    inner: B,
    /// Boxed: every response body of the proxy has the size of the largest.
    pending: Option<Box<Pending>>,
}

struct Pending {
    record: Record,
    sink: Arc<Sink>,
    started: Instant,
    window: Vec<u8>,
}

impl<B> Audited<B> {
    /// Wraps `inner`; `record` has everything but the error code and the
    /// duration, counted from `started`.
    pub fn new(inner: B, record: Record, sink: Arc<Sink>, started: Instant) -> Audited<B> {
        Audited {
            inner,
            pending: Some(Box::new(Pending {
                record,
                sink,
                started,
                window: Vec::new(),
            })),
        }
    }

    fn finish(&mut self) {
        if let Some(mut p) = self.pending.take() {
            p.record.error_code = envelope_error_code(&p.window);
            p.record.duration = p.started.elapsed();
            p.sink.write(&p.record);
        }
    }
}

impl<B> Drop for Audited<B> {
    fn drop(&mut self) {
        self.finish();
    }
}

impl<B> Body for Audited<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(data), Some(p)) = (frame.data_ref(), self.pending.as_mut()) {
                    let room = (ERROR_CODE_WINDOW + 1).saturating_sub(p.window.len());
                    p.window.extend_from_slice(&data[..data.len().min(room)]);
                }
            }
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => self.finish(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests;

//! Request framing guard: refuses requests whose length or target is
//! ambiguous, and answers in the API's envelope where hyper would refuse a
//! request head with a bare status.
//!
//! hyper reads a request that carries both `Content-Length` and
//! `Transfer-Encoding` as chunked and silently drops the length, merges
//! repeated identical `Content-Length` lines, and accepts a second `Host`
//! line. These are the raw material of request smuggling (and of a host check
//! that reads one line while the API reads the other), and a proxy should
//! refuse them outright rather than pick one reading (RFC 9112 6.3, RFC 9110
//! 7.2). hyper no longer shows the original lines to the service, so this
//! module watches the raw bytes of a connection as hyper reads them, follows
//! the HTTP/1 message framing (heads, fixed-length and chunked bodies) with
//! `httparse`, and records the index of the first request whose head is
//! refused and why. The proxy answers that request with 400 and closes.
//!
//! The common case (a whole head in one read) parses in place, without
//! copying. A request that asks for an upgrade is followed like any other:
//! hyper keeps reading HTTP after it unless the answer switches protocols
//! (a 101, or a 2xx to CONNECT), and only then does the service tell the
//! guard to stop ([`Verdicts::switched_protocols`]).
//!
//! A head that hyper itself will refuse before the service sees it — one its
//! parser rejects (400), one that outgrows its read buffer or has too many
//! lines (431), a target over its 64 KiB (414), a length it cannot use (400)
//! — is recorded as [`Early`]; [`Guarded`] then puts the same status in the
//! API's envelope in place of hyper's empty answer.
//!
//! # Layout
//!
//! - this file — the verdicts, and [`Tracker`], which follows the requests.
//! - `phases` — the framing both directions share (heads, bodies, chunks).
//! - `answers` — [`Early`] refusals and their messages, [`HeadLimits`], the
//!   responses hyper writes (followed, so that only its last one is ever
//!   replaced) and how its bare error head looks.
//! - `guard` — [`Guarded`], the connection wrapper: the 408 for a stalled
//!   head, and the substitution of hyper's bare answers.

mod answers;
mod guard;
mod phases;

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};

use http::{Method, StatusCode};

pub use answers::{Early, HeadLimits};
pub use guard::{Answers, Guarded};
use phases::{Framing, Head, MAX_HEAD, Phase};

/// Header lines a head may have: hyper's `max_headers` is set to the same.
pub const MAX_HEADERS: usize = 256;
/// The longest request target hyper takes (`u16::MAX - 1`), whatever
/// `proxy.max_uri_bytes` says; longer gets its 414.
pub const MAX_URI: usize = u16::MAX as usize - 1;

/// The guard's verdict on one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Verdict {
    Ok = 0,
    /// `Content-Length` with `Transfer-Encoding`, or `Content-Length` twice.
    AmbiguousLength = 1,
    /// More than one `Host` line.
    DuplicateHost = 2,
}

impl Verdict {
    pub fn is_ok(self) -> bool {
        self == Verdict::Ok
    }

    /// What the 400 for a refused request says.
    pub fn refusal(self) -> Option<&'static str> {
        match self {
            Verdict::Ok => None,
            Verdict::AmbiguousLength => Some(
                "ambiguous request framing (Content-Length together with Transfer-Encoding, or Content-Length repeated); send exactly one of them",
            ),
            Verdict::DuplicateHost => Some("more than one Host header; send exactly one"),
        }
    }

    fn code(self) -> u8 {
        self as u8
    }

    fn from_code(code: u8) -> Verdict {
        match code {
            0 => Verdict::Ok,
            2 => Verdict::DuplicateHost,
            _ => Verdict::AmbiguousLength,
        }
    }
}

/// Whether an answer ends HTTP on its connection, as hyper decides it: a 101,
/// or a 2xx to CONNECT. After it the bytes are another protocol's.
pub fn switches_protocols(method: &Method, status: StatusCode) -> bool {
    status == StatusCode::SWITCHING_PROTOCOLS || (method == Method::CONNECT && status.is_success())
}

/// What the guard found on one connection, shared with the service.
#[derive(Debug)]
pub struct Verdicts {
    /// Index (0-based, in arrival order) of the first refused request;
    /// `u64::MAX` while there is none. Every later request is refused too.
    first_bad: AtomicU64,
    /// Why it was refused ([`Verdict::code`]); written before `first_bad`.
    why: AtomicU8,
    /// Index of the next request the service will see.
    next: AtomicU64,
    /// Set by the service once an answer switched protocols: the guard stops
    /// following.
    switched: AtomicBool,
}

impl Default for Verdicts {
    fn default() -> Self {
        Verdicts {
            first_bad: AtomicU64::new(u64::MAX),
            why: AtomicU8::new(Verdict::Ok.code()),
            next: AtomicU64::new(0),
            switched: AtomicBool::new(false),
        }
    }
}

impl Verdicts {
    /// The verdict on the next request the service sees. hyper hands
    /// requests of one connection to the service in order, one at a time.
    pub fn next_request(&self) -> Verdict {
        let index = self.next.fetch_add(1, Ordering::AcqRel);
        self.verdict(index)
    }

    /// Whether the service has been handed the `index`-th request (so hyper
    /// took its head).
    pub fn seen(&self, index: u64) -> bool {
        self.next.load(Ordering::Acquire) > index
    }

    /// Whether the `index`-th request of the connection may be served.
    pub fn is_ok(&self, index: u64) -> bool {
        index < self.first_bad.load(Ordering::Acquire)
    }

    /// The verdict on the `index`-th request of the connection.
    pub fn verdict(&self, index: u64) -> Verdict {
        if self.is_ok(index) {
            Verdict::Ok
        } else {
            Verdict::from_code(self.why.load(Ordering::Acquire))
        }
    }

    /// Tells the guard that the connection no longer carries HTTP (see
    /// [`switches_protocols`]).
    pub fn switched_protocols(&self) {
        self.switched.store(true, Ordering::Release);
    }

    /// Marks the `index`-th request. The tracker stops following after a
    /// mark, so there is only ever one.
    fn mark(&self, index: u64, why: Verdict) {
        if index < self.first_bad.load(Ordering::Acquire) {
            self.why.store(why.code(), Ordering::Release);
            self.first_bad.store(index, Ordering::Release);
        }
    }
}

/// Methods whose answers are framed unlike others: a HEAD's has no body, a
/// CONNECT's 2xx ends HTTP on the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Quiet {
    Head,
    Connect,
}

/// Follows the framing of the requests on one connection.
#[derive(Debug)]
pub struct Tracker {
    framing: Framing,
    requests: Requests,
}

/// What the request heads of a connection said.
#[derive(Debug)]
struct Requests {
    /// Index of the next head.
    index: u64,
    verdicts: Arc<Verdicts>,
    /// The most of a head hyper reads (its `max_buf_size`).
    limit: usize,
    /// The head hyper will refuse itself, and its index.
    early: Option<(u64, Early)>,
    /// Requests (by index) whose answers are framed unlike others, oldest
    /// first; the response side takes them as it meets their answers.
    quiet: VecDeque<(u64, Quiet)>,
}

impl Tracker {
    pub fn new(verdicts: Arc<Verdicts>) -> Tracker {
        Tracker::with_limit(verdicts, MAX_HEAD)
    }

    /// A tracker that knows hyper reads at most `limit` bytes of a head.
    pub fn with_limit(verdicts: Arc<Verdicts>, limit: usize) -> Tracker {
        Tracker {
            framing: Framing::default(),
            requests: Requests {
                index: 0,
                verdicts,
                limit: limit.min(MAX_HEAD),
                early: None,
                quiet: VecDeque::new(),
            },
        }
    }

    /// Whether part of a request head has arrived and the rest has not.
    pub fn mid_head(&self) -> bool {
        self.framing.mid_head()
    }

    /// The first head hyper will refuse before the service sees it, and its
    /// index among the connection's requests.
    pub fn early(&self) -> Option<(u64, Early)> {
        self.requests.early
    }

    /// Requests whose answers are framed unlike others, for the response side.
    pub(crate) fn quiet(&mut self) -> &mut VecDeque<(u64, Quiet)> {
        &mut self.requests.quiet
    }

    /// Feeds bytes as they are read from the client.
    pub fn feed(&mut self, data: &[u8]) {
        if self.framing.phase != Phase::Off && self.requests.verdicts.switched.load(Ordering::Acquire) {
            self.framing.stop();
        }
        let requests = &mut self.requests;
        self.framing.feed(data, &mut |buf| requests.head(buf));
    }
}

impl Requests {
    /// Reads a request head at the start of `buf`.
    fn head(&mut self, buf: &[u8]) -> Head {
        // hyper reads at most `limit` bytes of a head: nothing beyond is parsed.
        let seen = buf.get(..self.limit).unwrap_or(buf);
        // Uninitialised slots: zeroing 256 headers per request costs more
        // than parsing a typical head.
        let mut headers = [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut []);
        let used = match req.parse_with_uninit_headers(seen, &mut headers) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) if seen.len() < self.limit => return Head::Partial,
            Ok(httparse::Status::Partial) => return self.refuse(Early::TooLarge),
            Err(httparse::Error::TooManyHeaders) => return self.refuse(Early::TooManyHeaders),
            Err(e) => return self.refuse(Early::Malformed(answers::malformed(e, req.method.is_none()))),
        };
        let index = self.index;
        self.index += 1;
        // hyper refuses some heads its parser takes. The tracker follows on
        // all the same: should hyper take the head after all, the requests
        // behind it are still checked.
        if self.early.is_none() {
            self.early = answers::hyper_refuses(&req).map(|early| (index, early));
        }
        let mut lengths = 0usize;
        let mut length: Option<u64> = None;
        let mut encodings = 0usize;
        let mut chunked = false;
        let mut hosts = 0usize;
        for h in req.headers.iter() {
            if h.name.eq_ignore_ascii_case("content-length") {
                lengths += 1;
                length = std::str::from_utf8(h.value).ok().and_then(|v| v.trim().parse().ok());
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                encodings += 1;
                chunked = h
                    .value
                    .rsplit(|b| *b == b',')
                    .next()
                    .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            } else if h.name.eq_ignore_ascii_case("host") {
                hosts += 1;
            }
        }
        let refused = if lengths > 1 || (lengths > 0 && encodings > 0) {
            Verdict::AmbiguousLength
        } else if hosts > 1 {
            Verdict::DuplicateHost
        } else {
            Verdict::Ok
        };
        if !refused.is_ok() {
            // The connection closes after the 400; nothing after it is served.
            self.verdicts.mark(index, refused);
            return Head::Complete { used, next: Phase::Off };
        }
        match req.method {
            Some("HEAD") => self.quiet.push_back((index, Quiet::Head)),
            Some("CONNECT") => self.quiet.push_back((index, Quiet::Connect)),
            _ => {}
        }
        // A request that asks for an upgrade (or CONNECT) is followed like
        // any other: unless its answer switches protocols, the next request
        // follows it on the same connection.
        let next = if encodings > 0 {
            if chunked { Phase::ChunkSize } else { Phase::Off }
        } else {
            match (lengths, length) {
                (0, _) | (_, Some(0)) => Phase::Head,
                (_, Some(n)) => Phase::Fixed(n),
                (_, None) => Phase::Off,
            }
        };
        Head::Complete { used, next }
    }

    /// Records that hyper's parser refuses the next head (so will the
    /// tracker's, which stops).
    fn refuse(&mut self, early: Early) -> Head {
        self.early.get_or_insert((self.index, early));
        Head::Stop
    }
}

#[cfg(test)]
mod tests;

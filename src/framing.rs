//! Request framing guard: refuses requests whose length or target is
//! ambiguous.
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
//! guard to stop ([`Verdicts::switched_protocols`]). Anything the guard cannot
//! parse (which hyper rejects anyway) also ends its following.

use std::future::Future as _;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Method, StatusCode};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Heads longer than this are left to hyper's own limit. It is above the
/// largest read buffer hyper is given (twice the largest header and URI
/// limits, plus slack), so every head hyper accepts is also checked here.
const MAX_HEAD: usize = 4 * 1024 * 1024 + 64 * 1024;
const MAX_HEADERS: usize = 256;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Head,
    Fixed(u64),
    ChunkSize,
    ChunkData(u64),
    /// The CRLF after a chunk's data: bytes still to skip.
    ChunkEnd(u8),
    Trailers,
    /// Not following any more.
    Off,
}

/// Follows the framing of the requests on one connection.
#[derive(Debug)]
pub struct Tracker {
    phase: Phase,
    /// A head (or a chunk-size or trailer line) split across reads.
    pending: Vec<u8>,
    index: u64,
    verdicts: Arc<Verdicts>,
}

impl Tracker {
    pub fn new(verdicts: Arc<Verdicts>) -> Tracker {
        Tracker {
            phase: Phase::Head,
            pending: Vec::new(),
            index: 0,
            verdicts,
        }
    }

    /// Whether part of a request head has arrived and the rest has not.
    pub fn mid_head(&self) -> bool {
        self.phase == Phase::Head && !self.pending.is_empty()
    }

    /// Feeds bytes as they are read from the client.
    pub fn feed(&mut self, data: &[u8]) {
        if self.phase != Phase::Off && self.verdicts.switched.load(Ordering::Acquire) {
            self.phase = Phase::Off;
            self.pending = Vec::new();
        }
        let mut data = data;
        while !data.is_empty() {
            match self.phase {
                Phase::Off => return,
                Phase::Head => {
                    if self.pending.is_empty() {
                        match self.head(data) {
                            Some(used) => data = &data[used..],
                            None => {
                                self.stash(data);
                                return;
                            }
                        }
                    } else {
                        self.stash(data);
                        let buf = std::mem::take(&mut self.pending);
                        match self.head(&buf) {
                            Some(used) => {
                                // Whatever followed the head goes round again.
                                let rest = buf[used..].to_vec();
                                self.feed(&rest);
                            }
                            None => {
                                if self.phase == Phase::Head {
                                    self.pending = buf;
                                }
                            }
                        }
                        return;
                    }
                }
                Phase::Fixed(n) => {
                    let k = (data.len() as u64).min(n);
                    data = &data[k as usize..];
                    self.phase = if n == k { Phase::Head } else { Phase::Fixed(n - k) };
                }
                Phase::ChunkData(n) => {
                    let k = (data.len() as u64).min(n);
                    data = &data[k as usize..];
                    self.phase = if n == k {
                        Phase::ChunkEnd(2)
                    } else {
                        Phase::ChunkData(n - k)
                    };
                }
                Phase::ChunkEnd(n) => {
                    // CRLF; a bare LF ends it too.
                    if data[0] == b'\n' {
                        self.phase = Phase::ChunkSize;
                    } else {
                        self.phase = if n <= 1 {
                            Phase::ChunkSize
                        } else {
                            Phase::ChunkEnd(n - 1)
                        };
                    }
                    data = &data[1..];
                }
                Phase::ChunkSize | Phase::Trailers => match data.iter().position(|b| *b == b'\n') {
                    None => {
                        self.stash(data);
                        return;
                    }
                    Some(nl) => {
                        let mut line = std::mem::take(&mut self.pending);
                        line.extend_from_slice(&data[..nl]);
                        data = &data[nl + 1..];
                        self.line(&line);
                    }
                },
            }
        }
    }

    fn stash(&mut self, data: &[u8]) {
        if self.pending.len() + data.len() > MAX_HEAD {
            self.phase = Phase::Off;
            self.pending = Vec::new();
        } else {
            self.pending.extend_from_slice(data);
        }
    }

    /// A chunk-size line or a trailer line (without its LF).
    fn line(&mut self, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if self.phase == Phase::Trailers {
            if line.is_empty() {
                self.phase = Phase::Head;
            }
            return;
        }
        let digits = line.split(|b| *b == b';').next().unwrap_or(b"");
        let text = std::str::from_utf8(digits).unwrap_or("").trim();
        self.phase = match u64::from_str_radix(text, 16) {
            Ok(0) => Phase::Trailers,
            Ok(n) => Phase::ChunkData(n),
            Err(_) => Phase::Off,
        };
    }

    /// Parses a head at the start of `buf`; returns the bytes it used, or
    /// `None` if it is incomplete (or unparseable, which turns the guard off).
    fn head(&mut self, buf: &[u8]) -> Option<usize> {
        // Uninitialised slots: zeroing 256 headers per request costs more
        // than parsing a typical head.
        let mut headers = [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut []);
        let used = match req.parse_with_uninit_headers(buf, &mut headers) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return None,
            Err(_) => {
                self.phase = Phase::Off;
                return None;
            }
        };
        let index = self.index;
        self.index += 1;
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
            self.phase = Phase::Off;
            return Some(used);
        }
        // A request that asks for an upgrade (or CONNECT) is followed like
        // any other: unless its answer switches protocols, the next request
        // follows it on the same connection.
        self.phase = if encodings > 0 {
            if chunked { Phase::ChunkSize } else { Phase::Off }
        } else {
            match (lengths, length) {
                (0, _) | (_, Some(0)) => Phase::Head,
                (_, Some(n)) => Phase::Fixed(n),
                (_, None) => Phase::Off,
            }
        };
        Some(used)
    }
}

/// A client connection whose reads pass through a [`Tracker`].
pub struct Guarded<S> {
    inner: S,
    tracker: Tracker,
    /// How long a started request head may take (`proxy.header_read_timeout`).
    head_timeout: Option<Duration>,
    /// Runs while a head is incomplete.
    head_timer: Option<Pin<Box<tokio::time::Sleep>>>,
    /// The head timed out: the 408 went out, and nothing else may follow it.
    timed_out: bool,
}

/// What a client whose request head never completes gets before the close.
const HEAD_TIMEOUT_ANSWER: &[u8] = b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: 120\r\n\r\n{\"code\":408,\"message\":\"ethgas-sidecar: the request head did not arrive in time (proxy.header_read_timeout)\",\"data\":null}";

impl<S> Guarded<S> {
    pub fn new(inner: S, verdicts: Arc<Verdicts>) -> Guarded<S> {
        Guarded {
            inner,
            tracker: Tracker::new(verdicts),
            head_timeout: None,
            head_timer: None,
            timed_out: false,
        }
    }

    /// Answers 408 and closes when a request head has started but not
    /// completed within `limit` (hyper's own header timeout closes without a
    /// word; this sees the raw bytes, so it can answer).
    pub fn with_head_timeout(mut self, limit: Duration) -> Guarded<S> {
        self.head_timeout = Some(limit);
        self
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        if this.timed_out {
            return Poll::Ready(Ok(()));
        }
        let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
        match poll {
            Poll::Ready(Ok(())) => {
                this.tracker.feed(&buf.filled()[before..]);
                match (this.tracker.mid_head(), this.head_timeout) {
                    (true, Some(limit)) if this.head_timer.is_none() => {
                        this.head_timer = Some(Box::pin(tokio::time::sleep(limit)));
                    }
                    (false, _) => this.head_timer = None,
                    _ => {}
                }
            }
            Poll::Pending => {
                let expired = this.head_timer.as_mut().is_some_and(|t| t.as_mut().poll(cx).is_ready());
                if expired {
                    // Best effort: a fresh socket takes these few bytes at
                    // once; then the client reads the end of the stream.
                    let _ = Pin::new(&mut this.inner).poll_write(cx, HEAD_TIMEOUT_ANSWER);
                    this.timed_out = true;
                    this.head_timer = None;
                    return Poll::Ready(Ok(()));
                }
            }
            Poll::Ready(Err(_)) => {}
        }
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        if self.timed_out {
            // Whatever hyper says about the cut-off head stays unsaid.
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        if self.timed_out {
            return Poll::Ready(Ok(bufs.iter().map(|b| b.len()).sum()));
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;

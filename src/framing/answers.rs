//! hyper's own answers to request heads it refuses, and what the sidecar says
//! instead.
//!
//! hyper answers a head it cannot take — before the service sees it — with a
//! status and an empty body: `HTTP/1.1 400 Bad Request`, `connection: close`,
//! `content-length: 0`, `date` (see hyper's `Conn::on_parse_error` and
//! `Server::on_error`). [`Early`] is the guard's prediction of that refusal,
//! made from the same bytes with the same parser and the checks hyper makes
//! after it; [`Early::error`] is the sidecar's answer in its place, naming
//! what to fix.
//!
//! The replacement must never touch an earlier response on the connection:
//! hyper writes its error head after the last response's bytes, sometimes in
//! the same write. So [`Responses`] follows the responses hyper writes (heads,
//! fixed and chunked bodies, the HEAD and CONNECT exceptions) and counts
//! them, and only bytes that start where the answer to the refused request
//! would start, and are exactly such an error head ([`error_head_at_end`]),
//! are candidates.

use std::collections::VecDeque;

use http::StatusCode;

use super::phases::{Framing, Head, MAX_HEAD, Phase};
use super::{MAX_HEADERS, MAX_URI, Quiet};
use crate::error::ProxyError;

/// A request head hyper refuses by itself, with the status it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Early {
    /// 400: its parser, or its checks of the framing headers, refuse the head.
    Malformed(&'static str),
    /// 431: the head does not fit in hyper's read buffer.
    TooLarge,
    /// 431: more header lines than hyper takes.
    TooManyHeaders,
    /// 431: a value beyond hyper's counters (a header name of 64 KiB, a
    /// `Content-Length` near 2^64).
    Oversized(&'static str),
    /// 414: a request target over hyper's own limit.
    UriTooLong,
}

/// The request-head limits hyper is built with, which the answers name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadLimits {
    pub max_header_bytes: usize,
    pub max_uri_bytes: usize,
}

impl Default for HeadLimits {
    fn default() -> Self {
        HeadLimits {
            max_header_bytes: 32 * 1024,
            max_uri_bytes: 8 * 1024,
        }
    }
}

impl HeadLimits {
    /// hyper's read buffer (`max_buf_size`): room for the largest head the
    /// proxy takes, twice over, so that the proxy's own limits answer first
    /// (in the envelope) and only a head far beyond them meets hyper's.
    pub fn max_buf(&self) -> usize {
        (self.max_header_bytes + self.max_uri_bytes) * 2 + 16 * 1024
    }
}

impl Early {
    /// The status hyper answers with.
    pub fn status(self) -> StatusCode {
        match self {
            Early::Malformed(_) => StatusCode::BAD_REQUEST,
            Early::TooLarge | Early::TooManyHeaders | Early::Oversized(_) => {
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
            }
            Early::UriTooLong => StatusCode::URI_TOO_LONG,
        }
    }

    /// The sidecar's answer: the same status, saying what to fix.
    pub fn error(self, limits: &HeadLimits) -> ProxyError {
        match self {
            Early::Malformed(why) => ProxyError::BadRequest(format!("malformed HTTP/1.1 request head: {why}")),
            Early::TooLarge => ProxyError::HeadTooLarge(format!(
                "request head larger than {} bytes (proxy.max_header_bytes = {}, proxy.max_uri_bytes = {}); send fewer or smaller headers, or a shorter URI",
                limits.max_buf(),
                limits.max_header_bytes,
                limits.max_uri_bytes
            )),
            Early::TooManyHeaders => ProxyError::HeadTooLarge(format!(
                "more than {MAX_HEADERS} header lines in the request head; send fewer"
            )),
            Early::Oversized(what) => ProxyError::HeadTooLarge(what.to_string()),
            Early::UriTooLong if limits.max_uri_bytes < MAX_URI => ProxyError::UriTooLong {
                limit: limits.max_uri_bytes,
                setting: "proxy.max_uri_bytes",
            },
            Early::UriTooLong => ProxyError::UriTooLong {
                limit: MAX_URI,
                setting: "the most the HTTP/1 server takes, whatever proxy.max_uri_bytes says",
            },
        }
    }
}

/// Why hyper's parser refused a head, in words (httparse's, with where a
/// bad token was).
pub(super) fn malformed(e: httparse::Error, no_method: bool) -> &'static str {
    match e {
        httparse::Error::Token if no_method => "invalid token in the method",
        httparse::Error::Token => "invalid character in the request target",
        httparse::Error::HeaderName => "invalid header name",
        httparse::Error::HeaderValue => "invalid header value",
        httparse::Error::NewLine => "invalid line ending",
        httparse::Error::Version => "invalid HTTP version",
        httparse::Error::Status | httparse::Error::TooManyHeaders => "invalid request line",
    }
}

/// The checks hyper makes on a head httparse accepted, in its order
/// (`Server::parse` in hyper's `proto/h1/role.rs`): target length, header
/// name length, the target as a URI, then the framing headers.
pub(super) fn hyper_refuses(req: &httparse::Request<'_, '_>) -> Option<Early> {
    let target = req.path.unwrap_or("");
    if target.len() > MAX_URI {
        return Some(Early::UriTooLong);
    }
    if req.headers.iter().any(|h| h.name.len() >= 1 << 16) {
        return Some(Early::Oversized("a header name of 64 KiB or more"));
    }
    // An origin-form target of plain characters is a URI; anything else is
    // parsed as hyper parses it.
    let plain = target.starts_with('/')
        && target
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/-._~!$&'()*+,;=:@%?".contains(&b));
    if !plain && http::Uri::try_from(target).is_err() {
        return Some(Early::Malformed("the request target is not a valid URI"));
    }
    let (mut te, mut chunked, mut length) = (false, false, None::<u64>);
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            if req.version == Some(0) {
                return Some(Early::Malformed("Transfer-Encoding in an HTTP/1.0 request"));
            }
            te = true;
            // As `HeaderValue::to_str` and hyper's `is_chunked_` read it.
            chunked = h.value.iter().all(|b| *b == b'\t' || (32..127).contains(b))
                && h.value
                    .rsplit(|b| *b == b',')
                    .next()
                    .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if h.name.eq_ignore_ascii_case("content-length") && !te {
            let Some(n) = digits(h.value) else {
                return Some(Early::Malformed("Content-Length is not a number"));
            };
            match length {
                Some(first) if first != n => {
                    return Some(Early::Malformed("Content-Length repeated with different values"));
                }
                Some(_) => {}
                None if n > u64::MAX - 2 => return Some(Early::Oversized("a Content-Length too large to count")),
                None => length = Some(n),
            }
        }
    }
    if te && !chunked {
        return Some(Early::Malformed("Transfer-Encoding whose last coding is not chunked"));
    }
    None
}

/// ASCII digits as a number (no sign, no spaces), as hyper reads a length.
fn digits(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    value.iter().try_fold(0u64, |n, b| {
        b.is_ascii_digit()
            .then(|| n.checked_mul(10)?.checked_add(u64::from(b - b'0')))
            .flatten()
    })
}

/// The longest error head hyper writes (status line, three headers).
const MAX_ERROR_HEAD: usize = 256;

/// Where hyper's bare answer with `status` starts, if `buf` ends with one:
/// `HTTP/1.x <status> <reason>`, nothing but `connection: close`,
/// `content-length: 0` and `date`, and the blank line that ends `buf`.
pub(crate) fn error_head_at_end(buf: &[u8], status: StatusCode) -> Option<usize> {
    if !buf.ends_with(b"\r\n\r\n") {
        return None;
    }
    let from = buf.len().saturating_sub(MAX_ERROR_HEAD);
    // An error head holds one status line: the last one is its start.
    let start = from + memchr::memmem::rfind(&buf[from..], b"HTTP/1.")?;
    let mut headers = [httparse::EMPTY_HEADER; 4];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(&buf[start..]) {
        Ok(httparse::Status::Complete(n)) if start + n == buf.len() => {}
        _ => return None,
    }
    if resp.code != Some(status.as_u16()) || resp.reason != status.canonical_reason() {
        return None;
    }
    let mut empty = false;
    for h in resp.headers.iter() {
        match (h.name, h.value) {
            ("connection", b"close") | ("date", _) => {}
            ("content-length", b"0") => empty = true,
            _ => return None,
        }
    }
    empty.then_some(start)
}

/// Follows the responses hyper writes on a connection, so that the guard
/// knows where the next one would start.
#[derive(Debug, Default)]
pub(crate) struct Responses {
    framing: Framing,
    /// Final (non-1xx) responses seen: the index of the request the next
    /// one answers.
    answered: u64,
}

impl Responses {
    /// Whether the next byte written would start a response.
    pub(crate) fn at_boundary(&self) -> bool {
        self.framing.at_boundary()
    }

    /// Final responses written whole or begun: the index of the request the
    /// next one answers.
    pub(crate) fn answered(&self) -> u64 {
        self.answered
    }

    /// Whether it has stopped following (a protocol switch, a body that
    /// runs to the close, something it cannot read).
    pub(crate) fn is_off(&self) -> bool {
        self.framing.phase == Phase::Off
    }

    /// Feeds bytes as they reach the client. `quiet` lists the requests
    /// whose answers are framed unlike others.
    pub(crate) fn feed(&mut self, data: &[u8], quiet: &mut VecDeque<(u64, Quiet)>) {
        let answered = &mut self.answered;
        self.framing.feed(data, &mut |buf| response_head(buf, answered, quiet));
    }
}

/// Reads a response head at the start of `buf`: which body follows it.
fn response_head(buf: &[u8], answered: &mut u64, quiet: &mut VecDeque<(u64, Quiet)>) -> Head {
    let mut headers = [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let used = match httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut resp, buf, &mut headers)
    {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => return Head::Partial,
        _ => return Head::Stop,
    };
    let code = resp.code.unwrap_or(0);
    let next = |next| Head::Complete { used, next };
    match code {
        101 => return next(Phase::Off),
        // 100 Continue: the final answer follows.
        100..=199 => return next(Phase::Head),
        _ => {}
    }
    let index = *answered;
    *answered += 1;
    let mut method = None;
    while let Some(&(i, q)) = quiet.front() {
        if i > index {
            break;
        }
        quiet.pop_front();
        if i == index {
            method = Some(q);
        }
    }
    match method {
        Some(Quiet::Connect) if (200..300).contains(&code) => return next(Phase::Off),
        Some(Quiet::Head) => return next(Phase::Head),
        _ if code == 204 || code == 304 => return next(Phase::Head),
        _ => {}
    }
    let mut body = Phase::Off;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            let chunked = h
                .value
                .rsplit(|b| *b == b',')
                .next()
                .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            return next(if chunked { Phase::ChunkSize } else { Phase::Off });
        }
        if h.name.eq_ignore_ascii_case("content-length") {
            body = match digits(h.value) {
                Some(0) => Phase::Head,
                Some(n) => Phase::Fixed(n),
                None => Phase::Off,
            };
        }
    }
    // No length: the body runs to the close.
    next(body)
}

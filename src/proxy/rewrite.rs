//! Rewriting a client's request for the API, and keeping a copy to send
//! again: the pure part of forwarding. `rewrite_request` sets the upstream
//! URI and the account's `Authorization` and drops hop-by-hop headers; it is
//! a fuzz target and must not panic on any input. [`Replay`] is a request
//! copied into memory of its own so it can be replayed after a 401.

use bytes::Bytes;
use ethgas_api::REFRESH_COOKIE;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;
use http::{Method, Request, Uri, Version};

use crate::intercept::Placeholders;
use crate::upstream::{self, Target};

/// Headers that describe one hop, never forwarded (RFC 9110 §7.6.1), plus
/// `Expect` (the sidecar has answered it already) and `Host` (set from the
/// upstream URI).
const HOP_BY_HOP: [HeaderName; 11] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHORIZATION,
    header::PROXY_AUTHENTICATE,
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::EXPECT,
    header::HOST,
];

/// Whether the client sent an `Authorization` of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    Placeholder,
    Own,
}

/// Removes hop-by-hop headers, including those that `Connection` names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over the few headers a message has, instead of a lookup per
    // hop-by-hop name: most requests carry none of them.
    let mut present: u16 = 0;
    for name in headers.keys() {
        if let Some(i) = HOP_BY_HOP.iter().position(|h| h == name) {
            present |= 1 << i;
        }
    }
    if present == 0 {
        return;
    }
    // HOP_BY_HOP[0] is `Connection`.
    if present & 1 != 0 {
        // Bytes, not `to_str`: one non-ASCII byte in the value must not
        // spare the names listed beside it.
        // Only names the message carries are made into a `HeaderName` (an
        // allocation): the usual `Connection: keep-alive` names none.
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .flat_map(|v| v.as_bytes().split(|b| *b == b','))
            .filter_map(|name| std::str::from_utf8(name.trim_ascii()).ok())
            .filter(|name| !name.is_empty() && headers.contains_key(*name))
            .filter_map(|name| HeaderName::from_bytes(name.as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        if present & (1 << i) != 0 {
            headers.remove(name);
        }
    }
}

/// Rewrites a client request for the API, in place: upstream URI, hop-by-hop
/// headers dropped, `Authorization` set to `authorization` — or, with `None`
/// (public data while no token is held), removed: the client's own is never
/// forwarded. Pure apart from its arguments; a fuzz target, so it must not
/// panic on any input.
pub fn rewrite_request(
    parts: &mut Parts,
    target: &Target,
    authorization: Option<&HeaderValue>,
    placeholders: &Placeholders,
) -> ClientAuth {
    strip_hop_by_hop(&mut parts.headers);
    // A page's origin is none of the API's business (and the sidecar, not
    // the page, is the API's client).
    parts.headers.remove(header::ORIGIN);
    let client_auth = match parts.headers.get(header::AUTHORIZATION) {
        None => ClientAuth::None,
        Some(v) if placeholders.is_placeholder(v.as_bytes()) => ClientAuth::Placeholder,
        Some(_) => ClientAuth::Own,
    };
    parts.headers.remove(header::AUTHORIZATION);
    parts.uri = target.uri(parts.uri.path_and_query().cloned());
    detach(parts);
    if let Some(value) = authorization {
        parts.headers.insert(header::AUTHORIZATION, value.clone());
    }
    parts.version = Version::HTTP_11;
    client_auth
}

/// Moves the request's header values and path into one allocation of their
/// own. As parsed, they are slices of hyper's read buffer for the client
/// connection, and the request waits in the upstream connection's queue
/// until that connection's task writes it: meanwhile hyper, reading ahead on
/// the client connection, finds its buffer shared and allocates a second
/// one (8 KiB per request in flight: 2 MiB at 256 connections).
fn detach(parts: &mut Parts) {
    let path = parts.uri.path_and_query().map_or("", |pq| pq.as_str());
    let total = parts.headers.values().map(HeaderValue::len).sum::<usize>() + path.len();
    let mut own = bytes::BytesMut::with_capacity(total);
    for value in parts.headers.values() {
        own.extend_from_slice(value.as_bytes());
    }
    own.extend_from_slice(path.as_bytes());
    let own = own.freeze();
    let mut at = 0;
    for value in parts.headers.values_mut() {
        let end = at + value.len();
        // The same bytes, already validated once: this cannot fail.
        if let Ok(mut copy) = HeaderValue::from_maybe_shared(own.slice(at..end)) {
            copy.set_sensitive(value.is_sensitive());
            *value = copy;
        }
        at = end;
    }
    if !path.is_empty() {
        if let Ok(pq) = http::uri::PathAndQuery::from_maybe_shared(own.slice(at..)) {
            let mut uri = parts.uri.clone().into_parts();
            uri.path_and_query = Some(pq);
            if let Ok(rebuilt) = Uri::from_parts(uri) {
                parts.uri = rebuilt;
            }
        }
    }
}

/// Whether the proxy forwards a request of this method
/// ([`crate::error::FORWARDED_METHODS`]). `TRACE` above all must not go: an
/// API that answers it as RFC 9110 describes would hand the injected
/// `Authorization` back to the client.
pub fn forwarded_method(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::POST | Method::PUT | Method::PATCH | Method::DELETE | Method::OPTIONS
    )
}

/// A forwarded request as it can be sent again after a 401 or a GOAWAY,
/// built from the request [`rewrite_request`] made: its path and header
/// values are already out of hyper's read buffer ([`detach`]), so the copy
/// shares them instead of copying them again (one map per request, no
/// re-parsing), and holds nothing of the client connection's buffer.
#[derive(Clone)]
pub(super) struct Replay {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
}

impl Replay {
    pub(super) fn new(parts: &Parts, body: &Bytes) -> Replay {
        Replay {
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            headers: parts.headers.clone(),
            // Already out of the read buffer (`kept::read`).
            body: body.clone(),
        }
    }

    /// The request again, with `authorization` (none for public data sent
    /// while no token is held) in place of the one it went with.
    pub(super) fn request(self, authorization: Option<&HeaderValue>) -> Request<upstream::Body> {
        let mut headers = self.headers;
        match authorization {
            Some(authorization) => {
                headers.insert(header::AUTHORIZATION, authorization.clone());
            }
            None => {
                headers.remove(header::AUTHORIZATION);
            }
        }
        let mut again = Request::new(upstream::full(self.body));
        *again.method_mut() = self.method;
        *again.uri_mut() = self.uri;
        *again.headers_mut() = headers;
        again
    }
}

/// Removes response headers that carry `token` (anywhere in the value) and
/// `Set-Cookie`s of the live API's refresh token; returns how many values
/// were removed. Header values shorter than the token are skipped at once,
/// so the common response costs a length check per header.
pub fn scrub_response_headers(headers: &mut HeaderMap, token: Option<&[u8]>) -> usize {
    let carries = |name: &HeaderName, value: &HeaderValue| {
        let bytes = value.as_bytes();
        let reflected =
            token.is_some_and(|t| !t.is_empty() && bytes.len() >= t.len() && memchr::memmem::find(bytes, t).is_some());
        reflected
            || (name == header::SET_COOKIE
                && bytes
                    .trim_ascii_start()
                    .to_ascii_lowercase()
                    .strip_prefix(REFRESH_COOKIE.as_bytes())
                    .is_some_and(|rest| rest.starts_with(b"=")))
    };
    let tainted: Vec<HeaderName> = headers
        .iter()
        .filter(|(name, value)| carries(name, value))
        .map(|(name, _)| name.clone())
        .collect();
    let mut removed = 0;
    for name in tainted {
        if !headers.contains_key(&name) {
            continue;
        }
        let kept: Vec<HeaderValue> = headers
            .get_all(&name)
            .iter()
            .filter(|v| !carries(&name, v))
            .cloned()
            .collect();
        removed += headers.get_all(&name).iter().count() - kept.len();
        headers.remove(&name);
        for v in kept {
            headers.append(name.clone(), v);
        }
    }
    removed
}

#[cfg(test)]
mod tests;

//! The mock's side of the wire: the API's JSON envelopes and the bits of a
//! request it reads (bearer token, query and form parameters, cookies).
//!
//! The mock plays the ETHGas API, so it writes the API's shapes itself rather
//! than borrowing the sidecar's: the documented `{code, message, data}` and
//! the live `{success, data}` / `{success: false, errorCode, errorMsgKey}`.
//! The sidecar's own answers are a different concern and may change shape
//! without changing what the API sends.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use serde_json::{Value, json};

/// Every answer the mock gives: a full JSON body or a stream (test endpoints).
pub(crate) type Body = BoxBody<Bytes, std::io::Error>;

/// A JSON response with this status.
pub(crate) fn json_response(status: StatusCode, v: &Value) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from(v.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    full(resp)
}

/// Boxes a full body.
pub(crate) fn full(resp: Response<Full<Bytes>>) -> Response<Body> {
    resp.map(|b| b.map_err(|never| match never {}).boxed())
}

// --- the documented flavour: {"code", "message", "data"} ---

/// A documented envelope with this status and `code`.
pub(crate) fn response(status: StatusCode, code: u16, message: &str, data: Value) -> Response<Body> {
    json_response(status, &json!({ "code": code, "message": message, "data": data }))
}

/// A documented success (`code` 200, `message` "OK").
pub(crate) fn ok(data: Value) -> Response<Body> {
    response(StatusCode::OK, 200, "OK", data)
}

/// A documented error whose `code` is the HTTP status, as the API does.
pub(crate) fn error(status: StatusCode, message: &str) -> Response<Body> {
    response(status, status.as_u16(), message, Value::Null)
}

#[cfg_attr(not(feature = "test-util"), allow(dead_code))] // used by the live flavour next
pub(crate) const OPERATION_FAILED: u16 = 1002;

// --- reading requests ---

/// The bearer token of a request, if any.
pub(crate) fn bearer<B>(req: &Request<B>) -> Option<String> {
    let v = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let t = v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer "))?;
    Some(t.trim().to_string())
}

/// Whether a request asks to become a WebSocket.
pub(crate) fn is_upgrade<B>(req: &Request<B>) -> bool {
    req.headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|p| p.trim().eq_ignore_ascii_case("websocket")))
}

/// The value of `name` in a `k=v&k=v` string (a query or a form body),
/// percent-decoded, `+` read as a space.
#[cfg_attr(not(feature = "test-util"), allow(dead_code))] // used by the live flavour next
pub(crate) fn form_value(form: &str, name: &str) -> Option<String> {
    form.split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| percent_decode(k) == name)
        .map(|(_, v)| percent_decode(v))
}

#[cfg_attr(not(feature = "test-util"), allow(dead_code))]
/// A numeric query parameter (the test endpoints' sizes and delays).
pub(crate) fn number(query: &str, name: &str) -> Option<u64> {
    form_value(query, name)?.parse().ok()
}

#[cfg_attr(not(feature = "test-util"), allow(dead_code))] // used by the live flavour next
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() && bytes[i + 1].is_ascii_hexdigit() && bytes[i + 2].is_ascii_hexdigit() => {
                let hex = |b: u8| (b as char).to_digit(16).unwrap_or(0) as u8;
                out.push(hex(bytes[i + 1]) << 4 | hex(bytes[i + 2]));
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_values_are_decoded() {
        let q = "addr=0xAbC&name=bot%201&x=a+b&bad=%zz&sign=%+1&end=%4";
        assert_eq!(form_value(q, "addr").as_deref(), Some("0xAbC"));
        assert_eq!(form_value(q, "name").as_deref(), Some("bot 1"));
        assert_eq!(form_value(q, "x").as_deref(), Some("a b"));
        assert_eq!(form_value(q, "bad").as_deref(), Some("%zz"));
        assert_eq!(form_value(q, "sign").as_deref(), Some("% 1"));
        assert_eq!(form_value(q, "end").as_deref(), Some("%4"));
        assert_eq!(form_value(q, "missing"), None);
        assert_eq!(number("bytes=42&ms=x", "bytes"), Some(42));
        assert_eq!(number("bytes=42&ms=x", "ms"), None);
    }
}

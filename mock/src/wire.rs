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
use http::{HeaderMap, Request, Response, StatusCode};
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

// --- the live flavour: {"success", "data"} ---

/// Live error codes (ethgas-api.md, "Live API").
pub(crate) const PERMISSION_DENIED: u16 = 1000;
pub(crate) const VALIDATION_ERROR: u16 = 1001;
/// Only injected faults answer it.
#[cfg(feature = "test-util")]
pub(crate) const OPERATION_FAILED: u16 = 1002;

/// A live success.
pub(crate) fn live_ok(data: Value) -> Response<Body> {
    json_response(StatusCode::OK, &json!({ "success": true, "data": data }))
}

/// A live failure: `errorCode` and `errorMsgKey` at the top level (where
/// python-ethgas reads them), an empty `data`, and the HTTP status given —
/// the live API answers some failures with 200 and others with 4xx.
pub(crate) fn live_fail(status: StatusCode, error_code: u16, key: &str) -> Response<Body> {
    json_response(
        status,
        &json!({ "success": false, "errorCode": error_code, "errorMsgKey": key, "data": {} }),
    )
}

// --- reading requests ---

/// The bearer token of a request, if any.
pub(crate) fn bearer<B>(req: &Request<B>) -> Option<String> {
    let v = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let t = v
        .strip_prefix(ethgas_api::BEARER)
        .or_else(|| v.strip_prefix("bearer "))?;
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
pub(crate) fn form_value(form: &str, name: &str) -> Option<String> {
    form.split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| percent_decode(k) == name)
        .map(|(_, v)| percent_decode(v))
}

/// The value of the cookie `name` in the request's `Cookie` headers.
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_string())
}

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
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; x_auth_refresh_token=t.o.k"),
        );
        h.append(header::COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(cookie(&h, "x_auth_refresh_token").as_deref(), Some("t.o.k"));
        assert_eq!(cookie(&h, "b").as_deref(), Some("2"));
        assert_eq!(cookie(&h, "c"), None);
    }
}

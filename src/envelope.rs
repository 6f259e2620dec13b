//! The API's JSON envelope, `{"code", "message", "data"}`.
//!
//! Everything the sidecar answers by itself — its errors, intercepted logins,
//! the mock API — uses this shape, so a legacy program written against the
//! ETHGas API parses it like any other answer.

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::Full;
use serde_json::{Value, json};

/// The envelope as bytes.
pub fn body(code: u16, message: &str, data: Value) -> Bytes {
    let v = json!({ "code": code, "message": message, "data": data });
    Bytes::from(v.to_string())
}

/// A JSON response carrying an envelope.
pub fn response(status: StatusCode, code: u16, message: &str, data: Value) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body(code, message, data)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// A successful envelope (`code` 200, `message` "OK").
pub fn ok(data: Value) -> Response<Full<Bytes>> {
    response(StatusCode::OK, 200, "OK", data)
}

/// An error envelope whose `code` is the HTTP status, as the API does.
pub fn error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    response(status, status.as_u16(), message, Value::Null)
}

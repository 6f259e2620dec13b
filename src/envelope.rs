//! The API's JSON envelopes, and the one place where the shape of the
//! sidecar's own answers is chosen.
//!
//! The documented API wraps everything in `{"code", "message", "data"}`; the
//! live service answers `{"success", "data"}` and reports failures as
//! `{"success": false, "errorCode", "errorMsgKey", "errorMsg", "data"}`.
//! Everything the sidecar answers by itself — its errors, intercepted logins —
//! uses the [`Envelope`] of the API it talks to, so a legacy program written
//! against that API parses it like any other answer.

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::Full;
use serde_json::{Value, json};

/// Which API's envelope the sidecar's own answers use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Envelope {
    /// `{"code", "message", "data"}` (method "password").
    #[default]
    Documented,
    /// `{"success", "data"}`, errors with `errorCode`/`errorMsgKey` (method "wallet").
    Live,
}

impl Envelope {
    /// A successful answer carrying `data`.
    pub fn ok(self, data: Value) -> Response<Full<Bytes>> {
        match self {
            Envelope::Documented => ok(data),
            Envelope::Live => json_response(StatusCode::OK, &json!({ "success": true, "data": data })),
        }
    }

    /// An error answer. `key` names the reason in the live envelope's
    /// `errorMsgKey` (`ethgas-sidecar.<key>`); the documented envelope's
    /// `code` is the HTTP status, as the API does.
    pub fn error(self, status: StatusCode, key: &str, message: &str) -> Response<Full<Bytes>> {
        json_bytes(status, self.error_body(status, key, message))
    }

    /// The body of [`Envelope::error`], for an answer written outside hyper.
    pub fn error_body(self, status: StatusCode, key: &str, message: &str) -> Bytes {
        let v = match self {
            Envelope::Documented => json!({ "code": status.as_u16(), "message": message, "data": Value::Null }),
            Envelope::Live => json!({
                "success": false,
                "errorCode": status.as_u16(),
                "errorMsgKey": format!("ethgas-sidecar.{key}"),
                "errorMsg": message,
                "data": Value::Null,
            }),
        };
        Bytes::from(v.to_string())
    }
}

fn json_response(status: StatusCode, v: &Value) -> Response<Full<Bytes>> {
    json_bytes(status, Bytes::from(v.to_string()))
}

fn json_bytes(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// A JSON response carrying a documented envelope.
pub fn response(status: StatusCode, code: u16, message: &str, data: Value) -> Response<Full<Bytes>> {
    json_response(status, &json!({ "code": code, "message": message, "data": data }))
}

/// A successful documented envelope (`code` 200, `message` "OK").
pub fn ok(data: Value) -> Response<Full<Bytes>> {
    response(StatusCode::OK, 200, "OK", data)
}

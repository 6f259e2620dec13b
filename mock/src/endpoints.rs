//! The API's endpoints other than authentication, in the flavour's envelope:
//! public market data under `/api/v1/p/…`, and the private endpoints behind
//! the bearer check — `/api/v1/user/info`, `/api/v1/mock/echo` (what `demo`'s
//! curl commands use to show that the client's `Authorization` was replaced)
//! and a generic answer for any other path, so programs under test get a 200
//! wherever they post. The test endpoints (upload, download, stream, slow)
//! live in the harness.

use http::{Request, Response};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::{Value, json};

use super::counters::bump;
use super::tokens::claim;
use super::wire::{self, Body};
use super::{Flavour, Mock};

impl Mock {
    /// `/api/v1/p/…`: public, no token needed (one that comes is counted,
    /// and does no harm).
    pub(crate) fn public(&self, req: &Request<Incoming>) -> Response<Body> {
        bump(&self.state.counters.public_requests);
        if req.headers().contains_key(http::header::AUTHORIZATION) {
            bump(&self.state.counters.public_with_authorization);
        }
        self.success(json!({ "symbol": "ETH", "price": "3500.00", "public": true }))
    }

    /// Private endpoints, after the token check.
    pub(crate) async fn private(&self, req: Request<Incoming>, path: &str) -> Response<Body> {
        match path {
            "/api/v1/user/info" => {
                let data = match self.flavour() {
                    Flavour::Documented => json!({ "userId": "user_123", "username": self.username() }),
                    Flavour::Live => json!({ "user": self.user_of(&req) }),
                };
                self.success(data)
            }
            "/api/v1/mock/echo" => self.echo(req).await,
            _ => {
                #[cfg(feature = "test-util")]
                let req = match self.test_endpoint(req, path).await {
                    Ok(answer) => return answer,
                    Err(req) => req,
                };
                drop(req);
                self.success(json!({ "path": path, "ok": true }))
            }
        }
    }

    /// A success in this mock's envelope.
    pub(crate) fn success(&self, data: Value) -> Response<Body> {
        match self.flavour() {
            Flavour::Documented => wire::ok(data),
            Flavour::Live => wire::live_ok(data),
        }
    }

    /// Echoes what arrived: method, path, query, headers, body. The token
    /// itself is not echoed; the answer says what it is.
    async fn echo(&self, req: Request<Incoming>) -> Response<Body> {
        let method = req.method().to_string();
        let uri = req.uri().to_string();
        let version = format!("{:?}", req.version());
        let headers: serde_json::Map<String, Value> = req
            .headers()
            .keys()
            .map(|k| {
                let values: Vec<Value> = req
                    .headers()
                    .get_all(k)
                    .iter()
                    .map(|v| Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()))
                    .collect();
                (k.as_str().to_string(), Value::Array(values))
            })
            .map(|(k, v)| {
                if k != "authorization" {
                    return (k, v);
                }
                let raw = v.get(0).and_then(Value::as_str).unwrap_or("");
                let token = raw.strip_prefix("Bearer ").unwrap_or(raw);
                let described = json!({
                    "values": v.as_array().map_or(0, Vec::len),
                    "issued_by_mock": self.issued(token),
                    "valid": self.is_valid(token),
                    "jti": claim(token, "jti"),
                });
                (k, described)
            })
            .collect();
        let body = Limited::new(req.into_body(), 1 << 20)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        self.success(json!({
            "method": method,
            "uri": uri,
            "version": version,
            "headers": headers,
            "body": String::from_utf8_lossy(&body),
        }))
    }
}

//! The WebSocket at `/ws` and the socket protocol spoken on it.
//!
//! Documented flavour: a client sends `{"cmd":"login","data":{"accessToken"}}`
//! and is answered `{"cmd":"login","code":200|401,…}`; `{"cmd":"whoami"}`
//! says whether the socket is logged in with a valid token; when that token
//! expires the server pushes `{"cmd":"token_expired",…}` and forgets it, so
//! the client must log in again.

use futures_util::{SinkExt, StreamExt};
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use std::time::Duration;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

use super::Mock;
use super::counters::bump;
use super::wire::{self, Body};

/// What one socket is logged in with.
#[derive(Default)]
struct Login {
    token: Option<String>,
    expiry: Option<Instant>,
}

impl Login {
    fn forget(&mut self) {
        self.token = None;
        self.expiry = None;
    }
}

impl Mock {
    /// Accepts a WebSocket and runs the socket protocol on it.
    pub(crate) fn websocket(&self, mut req: Request<Incoming>) -> Response<Body> {
        let Some(key) = req.headers().get(header::SEC_WEBSOCKET_KEY).cloned() else {
            return wire::error(StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key");
        };
        let on_upgrade = hyper::upgrade::on(&mut req);
        let mock = self.clone();
        tokio::spawn(async move {
            if let Ok(upgraded) = on_upgrade.await {
                let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
                mock.socket(ws, Login::default()).await;
            }
        });
        let mut resp = Response::new(Full::default());
        *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let h = resp.headers_mut();
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        if let Ok(v) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
            h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
        }
        wire::full(resp)
    }

    async fn socket<S>(&self, mut ws: WebSocketStream<S>, mut login: Login)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        loop {
            let wake = login
                .expiry
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            let reply = tokio::select! {
                _ = self.forced_expiry() => self.token_expired(&mut login),
                _ = tokio::time::sleep_until(wake), if login.expiry.is_some() => self.token_expired(&mut login),
                msg = ws.next() => match msg {
                    Some(Ok(Message::Text(text))) => {
                        let v: Value = serde_json::from_str(text.as_str()).unwrap_or(Value::Null);
                        self.command(&v, &mut login)
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => continue,
                },
            };
            if ws.send(Message::text(reply.to_string())).await.is_err() {
                break;
            }
        }
    }

    /// The push when the socket's token runs out (or a test says so).
    fn token_expired(&self, login: &mut Login) -> Value {
        login.forget();
        bump(&self.state.counters.ws_token_expired_pushes);
        json!({ "cmd": "token_expired", "message": "access token expired; send login again" })
    }

    /// Answers one `{"cmd": …}` message.
    fn command(&self, v: &Value, login: &mut Login) -> Value {
        let c = &self.state.counters;
        match v.get("cmd").and_then(Value::as_str) {
            Some("login") => {
                let token = v.get("data").and_then(|d| d.get("accessToken")).and_then(Value::as_str);
                match token.filter(|t| self.is_valid(t)) {
                    Some(t) => {
                        bump(&c.ws_logins_ok);
                        login.expiry = self.expiry(t);
                        login.token = Some(t.to_string());
                        json!({ "cmd": "login", "code": 200, "message": "OK" })
                    }
                    None => {
                        bump(&c.ws_logins_refused);
                        json!({ "cmd": "login", "code": 401, "message": "Unauthorized" })
                    }
                }
            }
            Some("whoami") => {
                let authenticated = login.token.as_deref().is_some_and(|t| self.is_valid(t));
                let username = if authenticated { self.username() } else { String::new() };
                json!({ "cmd": "whoami", "authenticated": authenticated, "username": username })
            }
            Some(other) => json!({ "cmd": other, "code": 200, "message": "OK" }),
            None => json!({ "cmd": "error", "code": 1001, "message": "expected a JSON command with a cmd field" }),
        }
    }
}

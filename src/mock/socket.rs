//! The WebSocket at `/ws` and the socket protocol spoken on it.
//!
//! Documented flavour: a client sends `{"cmd":"login","data":{"accessToken"}}`
//! and is answered `{"cmd":"login","code":200|401,…}`; `{"cmd":"whoami"}`
//! says whether the socket is logged in with a valid token; when that token
//! expires the server pushes `{"cmd":"token_expired",…}` and forgets it, so
//! the client must log in again.
//!
//! Live flavour: the handshake's `Authorization: Bearer` logs the socket in
//! if the token is valid (counted either way). In the socket,
//! `{"op":"login","args":[{"accessToken"}]}` is answered
//! `{"event":"login","code":0,"msg":"","connId":"…"}` (refused: code 1000);
//! `{"op":"query","args":[{"channel":"whoami"}]}` — the mock's own channel,
//! for tests — answers `{"event":"query","channel":"whoami","code":0,"msg":"",
//! "data":{"authenticated","address"}}`; `subscribe`, `unsubscribe` and other
//! queries are acknowledged `{"event":<op>,"code":0,"msg":"","args":…}`. When
//! the socket's token expires the mock pushes
//! `{"event":"error","code":1000,"msg":"token expired"}` and forgets it: the
//! live reference does not say what the service sends then, so this shape is
//! the mock's invention, in the style of its other events. A text `ping`
//! is answered with a text `pong`, which python-ethgas's `WsClient` sends
//! and expects; subscriptions are acknowledged with the first of their
//! `args` as `arg` too, which it reads.
//!
//! Either flavour serves the socket on any path and records the path and
//! query of each handshake ([`Mock::websocket_paths`]).

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

use super::counters::bump;
use super::wire::{self, Body, PERMISSION_DENIED, VALIDATION_ERROR};
use super::{Flavour, Mock};

/// How many handshake paths the mock keeps.
pub(crate) const PATHS_KEPT: usize = 100;

/// One socket: its protocol, its id and what it is logged in with.
struct Conn {
    flavour: Flavour,
    /// Live flavour: the `connId` of login answers.
    id: String,
    token: Option<String>,
    expiry: Option<Instant>,
}

impl Conn {
    fn log_in(&mut self, mock: &Mock, token: &str) {
        self.expiry = mock.expiry(token);
        self.token = Some(token.to_string());
    }

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
        if let Ok(mut paths) = self.state.ws_paths.lock() {
            if paths.len() < PATHS_KEPT {
                paths.push(req.uri().path_and_query().map_or("/", |pq| pq.as_str()).to_string());
            }
        }
        let mut id = [0u8; 8];
        rand::fill(&mut id);
        let mut conn = Conn {
            flavour: self.flavour(),
            id: id.iter().map(|b| format!("{b:02x}")).collect(),
            token: None,
            expiry: None,
        };
        if conn.flavour == Flavour::Live {
            match wire::bearer(&req) {
                Some(t) if self.is_valid(&t) => {
                    bump(&self.state.counters.ws_bearer_ok);
                    conn.log_in(self, &t);
                }
                Some(_) => bump(&self.state.counters.ws_bearer_refused),
                None => {}
            }
        }
        let on_upgrade = hyper::upgrade::on(&mut req);
        let mock = self.clone();
        tokio::spawn(async move {
            if let Ok(upgraded) = on_upgrade.await {
                let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
                mock.socket(ws, conn).await;
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

    async fn socket<S>(&self, mut ws: WebSocketStream<S>, mut conn: Conn)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        loop {
            let wake = conn
                .expiry
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            let reply = tokio::select! {
                _ = self.forced_expiry() => self.token_expired(&mut conn),
                _ = tokio::time::sleep_until(wake), if conn.expiry.is_some() => self.token_expired(&mut conn),
                msg = ws.next() => match msg {
                    Some(Ok(Message::Text(text))) if conn.flavour == Flavour::Live && text.as_str() == "ping" => {
                        bump(&self.state.counters.ws_text_pings);
                        if ws.send(Message::text("pong")).await.is_err() {
                            break;
                        }
                        continue;
                    }
                    Some(Ok(Message::Text(text))) => {
                        let v: Value = serde_json::from_str(text.as_str()).unwrap_or(Value::Null);
                        match conn.flavour {
                            Flavour::Documented => self.command(&v, &mut conn),
                            Flavour::Live => self.op(&v, &mut conn),
                        }
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
    fn token_expired(&self, conn: &mut Conn) -> Value {
        conn.forget();
        bump(&self.state.counters.ws_token_expired_pushes);
        match conn.flavour {
            Flavour::Documented => {
                json!({ "cmd": "token_expired", "message": "access token expired; send login again" })
            }
            Flavour::Live => json!({ "event": "error", "code": PERMISSION_DENIED, "msg": "token expired" }),
        }
    }

    /// Answers one live `{"op": …, "args": […]}` message.
    fn op(&self, v: &Value, conn: &mut Conn) -> Value {
        let c = &self.state.counters;
        let args = v.get("args").cloned().unwrap_or_else(|| json!([]));
        let first = |key| first_arg(&args, key);
        match v.get("op").and_then(Value::as_str) {
            Some("login") => match first("accessToken").filter(|t| self.is_valid(t)) {
                Some(t) => {
                    bump(&c.ws_op_logins_ok);
                    conn.log_in(self, t);
                    json!({ "event": "login", "code": 0, "msg": "", "connId": conn.id })
                }
                None => {
                    bump(&c.ws_op_logins_refused);
                    json!({ "event": "login", "code": PERMISSION_DENIED, "msg": "invalid access token", "connId": conn.id })
                }
            },
            Some("query") if first("channel") == Some("whoami") => {
                let token = conn.token.as_deref().filter(|t| self.is_valid(t));
                let address = token.and_then(|t| self.address_of(t)).map(|a| format!("{a:#x}"));
                json!({
                    "event": "query", "channel": "whoami", "code": 0, "msg": "",
                    "data": { "authenticated": token.is_some(), "address": address },
                })
            }
            Some(op @ ("subscribe" | "unsubscribe")) => {
                if op == "subscribe" {
                    bump(&c.ws_op_subscribes);
                }
                json!({ "event": op, "code": 0, "msg": "", "arg": args.get(0), "args": args })
            }
            Some("query") => json!({ "event": "query", "code": 0, "msg": "", "args": args }),
            Some(other) => {
                json!({ "event": "error", "code": VALIDATION_ERROR, "msg": format!("unknown op {other:?}") })
            }
            None => {
                json!({ "event": "error", "code": VALIDATION_ERROR, "msg": "expected a JSON message with an op field" })
            }
        }
    }

    /// Answers one documented `{"cmd": …}` message.
    fn command(&self, v: &Value, conn: &mut Conn) -> Value {
        let c = &self.state.counters;
        match v.get("cmd").and_then(Value::as_str) {
            Some("login") => {
                let token = v.get("data").and_then(|d| d.get("accessToken")).and_then(Value::as_str);
                match token.filter(|t| self.is_valid(t)) {
                    Some(t) => {
                        bump(&c.ws_logins_ok);
                        conn.log_in(self, t);
                        json!({ "cmd": "login", "code": 200, "message": "OK" })
                    }
                    None => {
                        bump(&c.ws_logins_refused);
                        json!({ "cmd": "login", "code": 401, "message": "Unauthorized" })
                    }
                }
            }
            Some("whoami") => {
                let authenticated = conn.token.as_deref().is_some_and(|t| self.is_valid(t));
                let username = if authenticated { self.username() } else { String::new() };
                json!({ "cmd": "whoami", "authenticated": authenticated, "username": username })
            }
            Some(other) => json!({ "cmd": other, "code": 200, "message": "OK" }),
            None => json!({ "cmd": "error", "code": 1001, "message": "expected a JSON command with a cmd field" }),
        }
    }
}

/// A string field of the first of an op's `args`.
fn first_arg<'a>(args: &'a Value, key: &str) -> Option<&'a str> {
    args.get(0)?.get(key)?.as_str()
}

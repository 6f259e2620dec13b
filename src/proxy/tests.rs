//! Unit tests of the request path without a client socket: requests are
//! built in memory and given to [`Proxy::handle`]; the API is a stub on a
//! loopback port that records every request it sees (and grants tokens
//! `tok-1`, `tok-2`, … to the sidecar's own logins and refreshes).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{ConnContext, Proxy};
use crate::audit::Sink;
use crate::auth::{AuthHandle, Authenticator};
use crate::config::Config;
use crate::liveness::{Heartbeats, Part};
use crate::metrics::Metrics;
use crate::secret::Secret;
use crate::upstream;
use crate::ws::WsRelay;

const LOGIN: &str = "/api/v1/user/login";
const REFRESH: &str = "/api/v1/user/login/refresh";

/// One request as the stub API saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    target: String,
    authorization: Option<String>,
    body: Bytes,
}

/// The stub API's record and its one switch.
#[derive(Clone, Default)]
struct Stub {
    seen: Arc<Mutex<Vec<Seen>>>,
    grants: Arc<AtomicUsize>,
    /// Answers 401 to every request that carries the first token, `tok-1`.
    reject_first_token: Arc<AtomicBool>,
}

impl Stub {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The sidecar's own logins and refreshes.
    fn auth_calls(&self) -> usize {
        self.seen().iter().filter(|s| is_auth_path(&s.target)).count()
    }

    /// Everything but the sidecar's own logins and refreshes.
    fn forwarded(&self) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| !is_auth_path(&s.target)).collect()
    }

    async fn answer(self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let (parts, body) = req.into_parts();
        let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        let seen = Seen {
            method: parts.method,
            target: parts.uri.to_string(),
            authorization: parts
                .headers
                .get(header::AUTHORIZATION)
                .map(|v| v.to_str().unwrap_or("?").to_string()),
            body,
        };
        self.seen.lock().unwrap().push(seen.clone());
        if is_auth_path(&seen.target) && seen.authorization.as_deref() != Some("Bearer client-login") {
            let n = self.grants.fetch_add(1, Ordering::SeqCst) + 1;
            let grant = json!({"code": 200, "message": "OK", "data": {
                "accessToken": format!("tok-{n}"), "refreshToken": format!("ref-{n}"), "expiresIn": 3600,
            }});
            return Response::new(Full::new(Bytes::from(grant.to_string())));
        }
        if self.reject_first_token.load(Ordering::SeqCst) && seen.authorization.as_deref() == Some("Bearer tok-1") {
            let mut resp = Response::new(Full::new(Bytes::from_static(
                br#"{"code":401,"message":"token expired"}"#,
            )));
            *resp.status_mut() = StatusCode::UNAUTHORIZED;
            return resp;
        }
        let echo = json!({
            "target": seen.target,
            "authorization": seen.authorization,
            "body": String::from_utf8_lossy(&seen.body),
        });
        Response::new(Full::new(Bytes::from(echo.to_string())))
    }
}

fn is_auth_path(target: &str) -> bool {
    target == LOGIN || target == REFRESH
}

/// Starts the stub API on a loopback port.
async fn stub_api() -> (Stub, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stub = Stub::default();
    let serving = stub.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let stub = serving.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let stub = stub.clone();
                    async move { Ok::<_, Infallible>(stub.answer(req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (stub, addr)
}

/// The proxy in front of the stub, and the address requests say they
/// were sent to (the listener a client dialled).
struct Harness {
    stub: Stub,
    proxy: Proxy,
    auth: AuthHandle,
    local: SocketAddr,
    /// Stops the auth task when the test ends.
    _stop: tokio_util::sync::DropGuard,
}

/// A proxy whose auth task logs in to the stub (`login`), or one without a
/// session (no auth task). `edit` changes the configuration first.
async fn harness(login: bool, edit: impl FnOnce(&mut Config)) -> Harness {
    let (stub, addr) = stub_api().await;
    let mut config = Config::for_account(&format!("http://{addr}"), "alice", Secret::new("pw")).unwrap();
    config.live.proxy.token_wait = Duration::from_secs(5);
    edit(&mut config);
    let upstream = &config.restart.upstream;
    let roots = Arc::new(rustls::RootCertStore::empty());
    let connector = upstream::connector(upstream, roots.clone()).unwrap();
    let metrics = Arc::new(Metrics::new());
    let live = Arc::new(ArcSwap::from_pointee(config.live.clone()));
    let (authenticator, auth) =
        Authenticator::new(config.live.auth.clone(), upstream, connector.clone(), metrics.clone());
    let stop = CancellationToken::new();
    if login {
        let heart = Heartbeats::new(None, 0).heart(Part::AuthTask);
        tokio::spawn(authenticator.run(stop.clone(), heart));
    }
    let ws = WsRelay::new(
        upstream,
        1 << 20,
        upstream::ws_connector(upstream, roots).unwrap(),
        live.clone(),
        auth.clone(),
        metrics.clone(),
        TaskTracker::new(),
        stop.clone(),
    );
    let proxy = Proxy::new(
        &config.restart,
        connector,
        live,
        auth.clone(),
        metrics,
        ws,
        Arc::new(Sink::off()),
    );
    Harness {
        stub,
        proxy,
        auth,
        local: "127.0.0.1:8080".parse().unwrap(),
        _stop: stop.drop_guard(),
    }
}

/// What a user sees of an answer.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

impl Harness {
    /// A request from a program on this machine, as a client would write it.
    fn request(&self, method: Method, uri: &str) -> http::request::Builder {
        Request::builder()
            .method(method)
            .uri(uri)
            .header(header::HOST, self.local.to_string())
    }

    async fn send<B: upstream::ClientBody>(&self, req: Request<B>) -> Answer {
        let ctx = ConnContext {
            listener: 0,
            unix_peer: None,
            peer: Some("127.0.0.1:40000".parse().unwrap()),
            local: Some(self.local),
        };
        let resp = self.proxy.handle(req, ctx).await;
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    async fn get(&self, uri: &str) -> Answer {
        self.send(self.request(Method::GET, uri).body(Full::new(Bytes::new())).unwrap())
            .await
    }

    /// A POST whose body states its length (kept for a replay).
    async fn post(&self, uri: &str, body: &'static str) -> Answer {
        let req = self
            .request(Method::POST, uri)
            .header(header::CONTENT_LENGTH, body.len())
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .unwrap();
        self.send(req).await
    }
}

/// A body of unknown length, streamed in two parts.
fn streamed(parts: [&'static str; 2]) -> impl upstream::ClientBody {
    let frames = parts.map(|p| Ok::<_, Infallible>(Frame::data(Bytes::from_static(p.as_bytes()))));
    StreamBody::new(futures_util::stream::iter(frames))
}

#[tokio::test]
async fn the_routing_table_decides_what_reaches_the_api() {
    let h = harness(true, |_| {}).await;
    let api_host = {
        let live = h.proxy.shared.target.authority.to_string();
        format!("http://{live}/api/v1/user/info?n=2")
    };
    // (method, target, status the client gets, the path the API saw)
    let table: [(Method, &str, StatusCode, Option<&str>); 7] = [
        // The account's login is answered by the sidecar, and only to POST.
        (Method::GET, LOGIN, StatusCode::METHOD_NOT_ALLOWED, None),
        (
            Method::GET,
            "/api/v1/user/info?n=1",
            StatusCode::OK,
            Some("/api/v1/user/info?n=1"),
        ),
        (Method::GET, &api_host, StatusCode::OK, Some("/api/v1/user/info?n=2")),
        (
            Method::CONNECT,
            "evil.example:443",
            StatusCode::METHOD_NOT_ALLOWED,
            None,
        ),
        (Method::TRACE, "/api/v1/user/info", StatusCode::METHOD_NOT_ALLOWED, None),
        (
            Method::GET,
            "http://evil.example/api/v1/user/info",
            StatusCode::FORBIDDEN,
            None,
        ),
        (
            Method::DELETE,
            "/api/v1/order/7",
            StatusCode::OK,
            Some("/api/v1/order/7"),
        ),
    ];
    for (method, target, status, reached) in table {
        let before = h.stub.forwarded().len();
        let answer = h
            .send(h.request(method.clone(), target).body(Full::new(Bytes::new())).unwrap())
            .await;
        assert_eq!(answer.status, status, "{method} {target}: {:?}", answer.body);
        let forwarded = h.stub.forwarded();
        match reached {
            Some(path) => {
                assert_eq!(forwarded.len(), before + 1, "{method} {target} reaches the API once");
                let last = forwarded.last().unwrap();
                assert_eq!((&last.method, last.target.as_str()), (&method, path));
                assert_eq!(answer.json()["target"], path, "the client gets the API's answer");
            }
            None => {
                assert_eq!(forwarded.len(), before, "{method} {target} never reaches the API");
                assert!(
                    answer.json()["message"].is_string(),
                    "the sidecar's envelope: {:?}",
                    answer.body
                );
                let allow = answer.headers.get(header::ALLOW);
                assert!(
                    status != StatusCode::METHOD_NOT_ALLOWED || allow.is_some(),
                    "a 405 names what is allowed"
                );
            }
        }
    }
}

#[tokio::test]
async fn an_intercepted_login_and_its_placeholder_never_reach_the_api() {
    let h = harness(true, |_| {}).await;
    let login = h
        .post(LOGIN, r#"{"username":"alice","password":"not the real one"}"#)
        .await;
    assert_eq!(login.status, StatusCode::OK, "{:?}", login.body);
    let placeholder = login.json()["data"]["accessToken"]
        .as_str()
        .expect("a placeholder token")
        .to_string();
    assert!(
        !placeholder.starts_with("tok-"),
        "the program never holds the account's token"
    );

    let req = h
        .request(Method::GET, "/api/v1/user/info")
        .header(header::AUTHORIZATION, format!("Bearer {placeholder}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let answer = h.send(req).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.json()["authorization"],
        "Bearer tok-1",
        "the sidecar's token replaced the placeholder"
    );

    let seen = h.stub.seen();
    assert!(
        seen.iter()
            .all(|s| !String::from_utf8_lossy(&s.body).contains("not the real one")),
        "the program's login body never reached the API"
    );
    assert!(
        seen.iter()
            .all(|s| !s.authorization.as_deref().unwrap_or("").contains(&placeholder)),
        "the placeholder never reached the API"
    );
    assert_eq!(
        h.stub.auth_calls(),
        1,
        "the only login the API saw is the sidecar's own"
    );
}

#[tokio::test]
async fn with_interception_off_a_program_logs_in_by_itself_without_the_account_token() {
    let h = harness(true, |c| c.live.proxy.intercept_login = false).await;
    let req = h
        .request(Method::POST, LOGIN)
        .header(header::AUTHORIZATION, "Bearer client-login")
        .header(header::CONTENT_LENGTH, 9)
        .body(Full::new(Bytes::from_static(b"its own!!")))
        .unwrap();
    let answer = h.send(req).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    assert_eq!(
        answer.json()["authorization"],
        "Bearer client-login",
        "the API's own answer"
    );
    let own: Vec<_> = h
        .stub
        .seen()
        .into_iter()
        .filter(|s| s.authorization.as_deref() == Some("Bearer client-login"))
        .collect();
    assert_eq!(own.len(), 1, "the program's call went as it was sent");
    assert_eq!(own[0].body, "its own!!");
}

#[tokio::test]
async fn public_data_goes_without_a_token_while_the_rest_waits_for_one() {
    let h = harness(false, |c| c.live.proxy.token_wait = Duration::from_millis(200)).await;
    let public = h.get("/api/v1/p/markets").await;
    assert_eq!(public.status, StatusCode::OK, "{:?}", public.body);
    assert_eq!(
        public.json()["authorization"],
        Value::Null,
        "public data goes without Authorization"
    );

    let private = h.get("/api/v1/user/info").await;
    assert_eq!(private.status, StatusCode::SERVICE_UNAVAILABLE, "{:?}", private.body);
    assert!(private.headers.get(header::RETRY_AFTER).is_some());
    assert_eq!(h.stub.forwarded().len(), 1, "only the public call reached the API");
    assert_eq!(h.stub.auth_calls(), 0);
}

#[tokio::test]
async fn a_401_renews_the_token_once_and_replays_the_kept_body() {
    let h = harness(true, |_| {}).await;
    h.stub.reject_first_token.store(true, Ordering::SeqCst);
    let answer = h.post("/api/v1/order", r#"{"qty":1}"#).await;
    assert_eq!(
        answer.status,
        StatusCode::OK,
        "the client sees the replay's answer: {:?}",
        answer.body
    );
    assert_eq!(answer.json()["authorization"], "Bearer tok-2");
    assert_eq!(answer.json()["body"], r#"{"qty":1}"#);

    let orders: Vec<_> = h.stub.forwarded();
    let auths: Vec<_> = orders
        .iter()
        .map(|s| s.authorization.clone().unwrap_or_default())
        .collect();
    assert_eq!(auths, ["Bearer tok-1", "Bearer tok-2"], "sent once, replayed once");
    assert!(
        orders.iter().all(|s| s.body == r#"{"qty":1}"#),
        "the replay carries the same body"
    );
    assert_eq!(h.stub.auth_calls(), 2, "one login, one renewal");
}

#[tokio::test]
async fn a_streamed_body_meeting_a_401_is_handed_back_and_the_token_renewed_once() {
    let h = harness(true, |_| {}).await;
    h.stub.reject_first_token.store(true, Ordering::SeqCst);
    h.auth.wait_valid(Duration::from_secs(5)).await.expect("logged in");
    let req = h
        .request(Method::POST, "/api/v1/order")
        .body(streamed(["{\"qty\":", "2}"]))
        .unwrap();
    let answer = h.send(req).await;
    assert_eq!(
        answer.status,
        StatusCode::UNAUTHORIZED,
        "a body that is gone cannot be replayed"
    );
    assert_eq!(answer.json()["message"], "token expired", "the API's own 401");
    let forwarded = h.stub.forwarded();
    assert_eq!(forwarded.len(), 1, "not replayed");
    assert_eq!(forwarded[0].body, r#"{"qty":2}"#, "the whole stream reached the API");

    // The renewal runs on its own: the next request gets the new token.
    let mut changes = h.auth.subscribe();
    let renewed = async {
        while h.auth.valid().is_none_or(|s| s.authorization() == "Bearer tok-1") {
            changes.changed().await.expect("the auth task runs");
        }
    };
    tokio::time::timeout(Duration::from_secs(5), renewed)
        .await
        .expect("the 401 renewed the token");
    let next = h.get("/api/v1/user/info").await;
    assert_eq!(next.json()["authorization"], "Bearer tok-2");
    assert_eq!(h.stub.auth_calls(), 2, "one login, a single renewal");
}

#[tokio::test]
async fn the_client_authorization_is_replaced_by_the_sidecar_token() {
    let h = harness(true, |_| {}).await;
    let req = h
        .request(Method::GET, "/api/v1/user/info")
        .header(header::AUTHORIZATION, "Bearer the-programs-own")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let answer = h.send(req).await;
    assert_eq!(answer.status, StatusCode::OK);
    let seen = h.stub.forwarded();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].authorization.as_deref(), Some("Bearer tok-1"));
    assert!(
        h.stub
            .seen()
            .iter()
            .all(|s| s.authorization.as_deref() != Some("Bearer the-programs-own")),
        "the program's own token never reached the API"
    );
}

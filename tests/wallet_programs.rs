//! Programs written for the live API (python-ethgas's flow) running through
//! a sidecar whose own login is the wallet one: their login, verify,
//! refresh and logout are answered by the sidecar with placeholders in the
//! live shape — the API sees none of them — and their op-style WebSocket
//! login is rewritten to the account's token and renewed after every
//! refresh.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use ethgas_sidecar::eth::WalletKey;
use futures_util::SinkExt;
use http::{Method, Request};
use http_body_util::Full;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// A live mock for a fresh wallet, and a ready sidecar logging in with its key.
async fn wallet_sidecar(token_lifetime: Duration) -> (Api, Sidecar, TestClient, WalletKey) {
    let (hex, key) = random_key_hex();
    let api = start_live_api(key.address(), token_lifetime, Duration::from_secs(7 * 86400)).await;
    let sidecar = start_from_files(write_wallet_config(api.addr, &hex, &Extra::default())).await;
    let c = client();
    wait_ready(&c, sidecar.admin).await;
    (api, sidecar, c, key)
}

async fn post(c: &TestClient, url: &str, bearer: Option<&str>, cookie: Option<&str>) -> Reply {
    let mut req = Request::builder().method(Method::POST).uri(url);
    if let Some(t) = bearer {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    if let Some(v) = cookie {
        req = req.header("cookie", format!("x_auth_refresh_token={v}"));
    }
    send(c, req.body(Full::new(Bytes::new())).unwrap()).await
}

fn cookie_of(r: &Reply) -> String {
    let v = r.headers["set-cookie"].to_str().unwrap();
    let pair = v.split(';').next().unwrap();
    pair.strip_prefix("x_auth_refresh_token=").unwrap().to_string()
}

#[tokio::test]
async fn a_live_api_program_logs_in_through_the_sidecar_and_the_api_sees_none_of_it() {
    let (api, sidecar, c, key) = wallet_sidecar(Duration::from_secs(600)).await;
    let before = api.mock.counts();
    let addr = key.address().to_string().to_lowercase();

    // The program's own wallet login: a challenge it can sign...
    let r = post(&c, &sidecar.url(&format!("/api/v1/user/login?addr={addr}")), None, None).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let challenge = r.json();
    assert_eq!(challenge["success"], true);
    assert_eq!(challenge["data"]["status"], "verify");
    let nonce = challenge["data"]["nonceHash"].as_str().unwrap().to_string();
    let typed = challenge["data"]["eip712Message"].as_str().unwrap();
    let typed_json: Value = serde_json::from_str(typed).unwrap();
    assert_eq!(typed_json["message"]["hash"], nonce.as_str());
    // ... signed by whatever key the program has (the sidecar accepts any).
    let signature = WalletKey::random().sign_typed_data(typed).unwrap();
    let r = post(
        &c,
        &sidecar.url(&format!(
            "/api/v1/user/login/verify?addr={addr}&nonceHash={nonce}&signature={signature}"
        )),
        None,
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let verified = r.json();
    assert_eq!(verified["success"], true);
    let access = verified["data"]["accessToken"]["token"].as_str().unwrap().to_string();
    let exp = verified["data"]["accessToken"]["data"]["payload"]["exp"]
        .as_u64()
        .unwrap();
    assert!(exp > ethgas_now(), "the placeholder carries the real session's expiry");
    assert!(!api.mock.issued(&access), "a placeholder, never the real token");
    let refresh = cookie_of(&r);
    assert!(!api.mock.issued_tokens().contains(&refresh));

    // It uses the placeholder: the API sees the account's real token.
    let req = Request::get(sidecar.url("/api/v1/user/info"))
        .header("authorization", format!("Bearer {access}"))
        .body(Full::default())
        .unwrap();
    let r = send(&c, req).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["data"]["user"]["address"], addr.as_str());

    // Refresh (query, bearer and cookie, as python-ethgas sends them) and logout.
    let r = post(
        &c,
        &sidecar.url(&format!("/api/v1/user/login/refresh?refreshToken={refresh}")),
        Some(&access),
        Some(&refresh),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let renewed = r.json()["data"]["accessToken"]["token"].as_str().unwrap().to_string();
    assert_ne!(renewed, access);
    let r = post(&c, &sidecar.url("/api/v1/user/logout"), Some(&renewed), None).await;
    assert_eq!((r.status.as_u16(), &r.body[..]), (200, &b"{}"[..]));

    // Another wallet is refused, in the live envelope.
    let r = post(
        &c,
        &sidecar.url("/api/v1/user/login?addr=0x0000000000000000000000000000000000000001"),
        None,
        None,
    )
    .await;
    assert_eq!(r.status, 403);
    let env = r.json();
    assert_eq!(
        (&env["success"], &env["errorCode"]),
        (&json!(false), &json!(403)),
        "{env}"
    );
    assert_eq!(env["errorMsgKey"], "ethgas-sidecar.forbidden");

    // The API saw none of the program's account calls, and the session lives.
    let after = api.mock.counts();
    assert_eq!(after.live_challenges, before.live_challenges, "{after:?}");
    assert_eq!(
        after.live_verifies_ok + after.live_verifies_refused,
        before.live_verifies_ok
    );
    assert_eq!(
        after.live_refreshes_ok + after.live_refreshes_refused,
        before.live_refreshes_ok
    );
    assert_eq!(after.logouts, 0);
    assert_eq!(get(&c, &sidecar.url("/api/v1/user/info")).await.status, 200);
}

fn ethgas_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

async fn connect(proxy: SocketAddr) -> Ws {
    connect_to(proxy, "/ws").await
}

async fn connect_to(proxy: SocketAddr, path: &str) -> Ws {
    let req = format!("ws://{proxy}{path}").into_client_request().unwrap();
    let stream = TcpStream::connect(proxy).await.unwrap();
    let (ws, resp) = tokio_tungstenite::client_async(req, stream).await.expect("upgrade");
    assert_eq!(resp.status(), 101);
    ws
}

/// The next JSON message whose `event` is `event`, and every message seen
/// before it.
async fn until_event(ws: &mut Ws, event: &str) -> (Value, Vec<Value>) {
    let mut seen = Vec::new();
    loop {
        let v = next_ws_json(ws).await;
        if v["event"] == event {
            return (v, seen);
        }
        seen.push(v);
    }
}

#[tokio::test]
async fn an_op_style_websocket_login_is_rewritten_and_renewed_after_each_refresh() {
    let (api, sidecar, c, _key) = wallet_sidecar(Duration::from_secs(2)).await;
    let mut ws = connect(sidecar.proxy).await;
    // The program logs in with a placeholder it got from the sidecar.
    let placeholder = post(
        &c,
        &sidecar.url(&format!(
            "/api/v1/user/login/verify?addr={}&nonceHash=0&signature=0x",
            _key.address()
        )),
        None,
        None,
    )
    .await
    .json()["data"]["accessToken"]["token"]
        .as_str()
        .unwrap()
        .to_string();
    ws.send(Message::text(
        json!({"op": "login", "args": [{"accessToken": placeholder}]}).to_string(),
    ))
    .await
    .unwrap();
    let (reply, _) = until_event(&mut ws, "login").await;
    assert_eq!(reply["code"], 0, "the API accepted the rewritten login: {reply}");

    // Through two refreshes (2 s tokens) the socket stays logged in, and the
    // program never sees the replies to the sidecar's own logins.
    let refreshes = api.mock.counts().live_refreshes_ok;
    eventually(Duration::from_secs(15), "two refreshes", || {
        api.mock.counts().live_refreshes_ok >= refreshes + 2
    })
    .await;
    ws.send(Message::text(
        json!({"op": "query", "args": [{"channel": "whoami"}]}).to_string(),
    ))
    .await
    .unwrap();
    let (whoami, before) = until_event(&mut ws, "query").await;
    assert_eq!(whoami["data"]["authenticated"], true, "{whoami}");
    assert!(
        before.iter().all(|m| m["event"] != "login"),
        "the sidecar's own login replies are withheld: {before:?}"
    );
    let n = api.mock.counts();
    assert!(n.ws_op_logins_ok >= 3, "the program's login and one per refresh: {n:?}");
    assert_eq!(n.ws_op_logins_refused, 0, "{n:?}");
    assert!(n.ws_bearer_ok >= 1, "the handshake carried the account's token: {n:?}");
}

/// A program that checks the login domain sees the network of the API the
/// sidecar is logged in to: the chain id of the sidecar's own challenge.
#[tokio::test]
async fn the_intercepted_challenge_carries_the_chain_id_of_the_apis_own_challenge() {
    let (hex, key) = random_key_hex();
    let api = start_api_with(ethgas_mock::MockConfig {
        flavour: ethgas_mock::Flavour::Live,
        address: Some(key.address()),
        // Hoodi's.
        chain_id: 560048,
        ..Default::default()
    })
    .await;
    let sidecar = start_from_files(write_wallet_config(api.addr, &hex, &Extra::default())).await;
    let c = client();
    // Asked before the sidecar has logged in too: the challenge waits for it.
    let url = sidecar.url(&format!("/api/v1/user/login?addr={}&chainId=560048", key.address()));
    let r = post(&c, &url, None, None).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let typed: Value = serde_json::from_str(r.json()["data"]["eip712Message"].as_str().unwrap()).unwrap();
    assert_eq!(typed["domain"]["chainId"], 560048, "{typed}");
    assert_eq!(
        api.mock.counts().live_challenges,
        1,
        "only the sidecar's own challenge reached the API"
    );
    let r = post(&c, &url, None, None).await;
    let typed: Value = serde_json::from_str(r.json()["data"]["eip712Message"].as_str().unwrap()).unwrap();
    assert_eq!(typed["domain"]["chainId"], 560048, "{typed}");
}

/// With the live API's `websocket_url` (`…/ws`), a program that connects to
/// `/ws` (the live URL with only the host changed) and one that connects to
/// `/` both reach the API's `/ws`, with their query.
#[tokio::test]
async fn a_websocket_at_slash_ws_or_at_slash_reaches_the_apis_ws_endpoint_once() {
    let (hex, key) = random_key_hex();
    let api = start_live_api(key.address(), Duration::from_secs(600), Duration::from_secs(7 * 86400)).await;
    let extra = Extra::upstream(&format!("websocket_url = \"ws://{}/ws\"\n", api.addr));
    let sidecar = start_from_files(write_wallet_config(api.addr, &hex, &extra)).await;
    wait_ready(&client(), sidecar.admin).await;
    for path in ["/ws", "/", "/ws?compress=0", "/?compress=0", "/ws/", "/private"] {
        let mut ws = connect_to(sidecar.proxy, path).await;
        ws.close(None).await.unwrap();
    }
    assert_eq!(
        api.mock.websocket_paths(),
        ["/ws", "/ws", "/ws?compress=0", "/ws?compress=0", "/ws/", "/ws/private"]
    );
}

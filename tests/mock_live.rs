//! The mock API's live flavour, driven directly over HTTP and WebSocket with a
//! throwaway wallet key: the EIP-712 challenge, the signature verify, the
//! refresh cookie, sessions that end, logout, and the op-style socket login.
//! What the sidecar's wallet login is written against.

mod common;

use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use common::*;
use ethgas_mock::{Fault, Flavour, MockConfig};
use ethgas_sidecar::eth::WalletKey;
use futures_util::SinkExt;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

fn live(key: &WalletKey) -> MockConfig {
    MockConfig {
        flavour: Flavour::Live,
        address: Some(key.address()),
        token_lifetime: Duration::from_secs(600),
        session_lifetime: Duration::from_secs(3600),
        ..MockConfig::default()
    }
}

/// A POST with optional bearer, cookie and form body.
async fn post(c: &TestClient, url: &str, bearer: Option<&str>, cookie: Option<&str>, form: Option<&str>) -> Reply {
    let mut req = Request::builder().method(Method::POST).uri(url);
    if let Some(t) = bearer {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    if let Some(c) = cookie {
        req = req.header("cookie", format!("x_auth_refresh_token={c}"));
    }
    let body = match form {
        Some(f) => {
            req = req.header("content-type", "application/x-www-form-urlencoded");
            Full::new(Bytes::from(f.to_string()))
        }
        None => Full::default(),
    };
    send(c, req.body(body).unwrap()).await
}

async fn get_with(c: &TestClient, url: &str, bearer: &str) -> Reply {
    let req = Request::get(url)
        .header("authorization", format!("Bearer {bearer}"))
        .body(Full::default())
        .unwrap();
    send(c, req).await
}

/// `login?addr=`: the nonce and the typed data to sign.
async fn challenge(c: &TestClient, api: &Api, address: &str) -> (String, String) {
    let r = post(
        c,
        &format!("http://{}/api/v1/user/login?addr={address}", api.addr),
        None,
        None,
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["success"], true, "{v}");
    assert_eq!(v["data"]["status"], "verify");
    let nonce = v["data"]["nonceHash"].as_str().expect("nonceHash").to_string();
    let typed = v["data"]["eip712Message"]
        .as_str()
        .expect("eip712Message is a string")
        .to_string();
    (nonce, typed)
}

async fn verify(c: &TestClient, api: &Api, address: &str, nonce: &str, signature: &str) -> Reply {
    let url = format!(
        "http://{}/api/v1/user/login/verify?addr={address}&nonceHash={nonce}&signature={signature}",
        api.addr
    );
    post(c, &url, None, None, None).await
}

/// A whole wallet login; the access token and the refresh cookie.
async fn wallet_login(c: &TestClient, api: &Api, key: &WalletKey) -> (String, String) {
    let address = key.address().to_string();
    let (nonce, typed) = challenge(c, api, &address).await;
    let r = verify(c, api, &address, &nonce, &key.sign_typed_data(&typed).unwrap()).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["success"], true, "{}", r.json());
    let access = r.json()["data"]["accessToken"]["token"].as_str().unwrap().to_string();
    (access, refresh_cookie(&r).expect("x_auth_refresh_token cookie"))
}

/// The refresh token from `Set-Cookie: x_auth_refresh_token=…`.
fn refresh_cookie(r: &Reply) -> Option<String> {
    r.headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("x_auth_refresh_token="))
        .map(|v| v.split(';').next().unwrap_or("").to_string())
}

fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn failure(r: &Reply, status: u16, code: u64, key: &str) {
    let v = r.json();
    assert_eq!(r.status, status, "{v}");
    assert_eq!(v["success"], false, "{v}");
    assert_eq!(v["errorCode"], code, "{v}");
    assert_eq!(v["errorMsgKey"], key, "{v}");
    assert_eq!(v["data"], json!({}), "{v}");
}

#[tokio::test]
async fn whole_wallet_flow_challenge_sign_verify_cookie_refresh_logout() {
    let key = WalletKey::random();
    let api = start_api_with(live(&key)).await;
    let c = client();
    let address = key.address().to_string();
    let lower = address.to_lowercase();

    // The challenge: an 8-hex-digit nonce inside typed data of the live shape.
    let url = format!("http://{}/api/v1/user/login?addr={address}&name=bot-1", api.addr);
    let r = post(&c, &url, None, None, None).await;
    let v = r.json();
    assert_eq!((r.status, &v["success"]), (StatusCode::OK, &json!(true)), "{v}");
    let nonce = v["data"]["nonceHash"].as_str().unwrap().to_string();
    assert!(
        nonce.len() == 8 && nonce.bytes().all(|b| b.is_ascii_hexdigit()),
        "{nonce}"
    );
    let typed_text = v["data"]["eip712Message"].as_str().unwrap();
    let typed: Value = serde_json::from_str(typed_text).unwrap();
    assert_eq!(typed["primaryType"], "data");
    assert_eq!(typed["message"]["hash"], nonce.as_str());
    assert_eq!(typed["domain"]["name"], "ETHGas Login");
    assert_eq!(typed["domain"]["chainId"], 32382);

    // Verify: the access token as an object, the refresh token in a cookie.
    let signature = key.sign_typed_data(typed_text).unwrap();
    let r = verify(&c, &api, &address, &nonce, &signature).await;
    let v = r.json();
    assert_eq!((r.status, &v["success"]), (StatusCode::OK, &json!(true)), "{v}");
    assert_eq!(v["data"]["user"]["address"], lower.as_str());
    assert_eq!(v["data"]["user"]["displayName"], "bot-1");
    let user_id = v["data"]["user"]["userId"].as_u64().expect("userId");
    let at = &v["data"]["accessToken"];
    assert_eq!(at["data"]["header"], json!({"alg": "HS256", "typ": "JWT"}));
    let payload = &at["data"]["payload"];
    assert_eq!(payload["access_type"], "access_token");
    assert_eq!(payload["user"]["userId"], user_id);
    assert_eq!(payload["user"]["address"], lower.as_str());
    let access = at["token"].as_str().unwrap().to_string();
    assert_eq!(&claims(&access), payload, "the payload shown is the token's");
    let (iat, exp) = (payload["iat"].as_u64().unwrap(), payload["exp"].as_u64().unwrap());
    assert!(
        (600..=601).contains(&(exp - iat)),
        "the access token lives 600 s: {payload}"
    );
    assert!(
        !r.body.windows(9).any(|w| w == b"expiresIn"),
        "no expiresIn in this flavour"
    );
    let set_cookie = r.headers.get("set-cookie").unwrap().to_str().unwrap();
    assert!(set_cookie.ends_with("; Path=/; HttpOnly"), "{set_cookie}");
    let refresh = refresh_cookie(&r).unwrap();
    let session_exp = claims(&refresh)["exp"].as_u64().unwrap();
    assert_eq!(claims(&refresh)["access_type"], "refresh_token");
    assert!(
        (3599..=3601).contains(&(session_exp - iat)),
        "the session lasts an hour"
    );

    // Private endpoints want the bearer; public ones do not.
    let info = get_with(&c, &format!("http://{}/api/v1/user/info", api.addr), &access).await;
    assert_eq!(info.status, 200);
    assert_eq!(info.json()["success"], true);
    assert_eq!(info.json()["data"]["user"]["address"], lower.as_str());
    let refused = get(&c, &format!("http://{}/api/v1/user/info", api.addr)).await;
    failure(&refused, 401, 1000, "error.unauthorized.no_token");
    let public = get(&c, &format!("http://{}/api/v1/p/ticker", api.addr)).await;
    assert_eq!(
        (public.status, &public.json()["success"]),
        (StatusCode::OK, &json!(true))
    );

    // Refresh: a new access token and a new cookie, for the same session.
    let url = format!("http://{}/api/v1/user/login/refresh?refreshToken={refresh}", api.addr);
    let r = post(&c, &url, Some(&access), Some(&refresh), None).await;
    let v = r.json();
    assert_eq!((r.status, &v["success"]), (StatusCode::OK, &json!(true)), "{v}");
    let access2 = v["data"]["accessToken"]["token"].as_str().unwrap().to_string();
    assert_ne!(access2, access);
    assert_eq!(v["data"]["user"]["userId"], user_id);
    let refresh2 = refresh_cookie(&r).expect("a rotated cookie");
    assert_ne!(refresh2, refresh);
    assert_eq!(
        claims(&refresh2)["exp"],
        session_exp,
        "refreshing never extends the session"
    );
    // The login's refresh token keeps working until the session ends (as
    // python-ethgas relies on), also from a form body or the cookie alone.
    let url = format!("http://{}/api/v1/user/login/refresh", api.addr);
    let by_form = post(&c, &url, None, None, Some(&format!("refreshToken={refresh}"))).await;
    assert_eq!(by_form.json()["success"], true, "{}", by_form.json());
    let by_cookie = post(&c, &url, None, Some(&refresh2), None).await;
    assert_eq!(by_cookie.json()["success"], true, "{}", by_cookie.json());

    // Logout: `{}`, and the session is over.
    let r = post(
        &c,
        &format!("http://{}/api/v1/user/logout", api.addr),
        Some(&access2),
        None,
        None,
    )
    .await;
    assert_eq!((r.status, r.json()), (StatusCode::OK, json!({})));
    let after = get_with(&c, &format!("http://{}/api/v1/user/info", api.addr), &access2).await;
    failure(&after, 401, 1000, "error.unauthorized.token_revoked");
    let url = format!("http://{}/api/v1/user/login/refresh?refreshToken={refresh}", api.addr);
    let r = post(&c, &url, None, None, None).await;
    failure(&r, 401, 1000, "error.login.refresh_token_invalid");

    let n = api.mock.counts();
    assert_eq!(n.live_challenges, 1, "{n:?}");
    assert_eq!(n.live_verifies_ok, 1, "{n:?}");
    assert_eq!(n.live_refreshes_ok, 3, "{n:?}");
    assert_eq!(n.live_refreshes_refused, 1, "{n:?}");
    assert_eq!(n.live_refreshes_on_ended_session, 0, "{n:?}");
    assert_eq!(n.logouts, 1, "{n:?}");
    assert_eq!((n.private_ok, n.private_unauthorized), (1, 2), "{n:?}");
    assert_eq!(n.logins_ok + n.refreshes_ok, 0, "nothing of the documented flavour");
}

#[tokio::test]
async fn a_bad_signature_is_refused_with_http_200_and_spends_the_nonce() {
    let key = WalletKey::random();
    let api = start_api_with(live(&key)).await;
    let c = client();
    let address = key.address().to_string();

    // Signed by another key: success false, with HTTP 200.
    let (nonce, typed) = challenge(&c, &api, &address).await;
    let intruder = WalletKey::random().sign_typed_data(&typed).unwrap();
    let r = verify(&c, &api, &address, &nonce, &intruder).await;
    failure(&r, 200, 1000, "error.login.signature_invalid");
    assert!(refresh_cookie(&r).is_none());
    // The nonce was spent by that attempt: the right signature is too late.
    let good = key.sign_typed_data(&typed).unwrap();
    let r = verify(&c, &api, &address, &nonce, &good).await;
    failure(&r, 401, 1000, "error.login.nonce_invalid");

    // A malformed signature is a bad signature too.
    let (nonce, _) = challenge(&c, &api, &address).await;
    let r = verify(&c, &api, &address, &nonce, "0x1234").await;
    failure(&r, 200, 1000, "error.login.signature_invalid");

    let n = api.mock.counts();
    assert_eq!(
        (n.live_challenges, n.live_verifies_ok, n.live_verifies_refused),
        (2, 0, 3),
        "{n:?}"
    );
}

#[tokio::test]
async fn another_address_gets_no_challenge_and_cannot_use_ours() {
    let key = WalletKey::random();
    let api = start_api_with(live(&key)).await;
    let c = client();
    let other = WalletKey::random();
    let login = |addr: String| format!("http://{}/api/v1/user/login?addr={addr}", api.addr);

    let r = post(&c, &login(other.address().to_string()), None, None, None).await;
    failure(&r, 200, 1001, "error.login.address_unknown");
    let r = post(&c, &login("0x1234".into()), None, None, None).await;
    failure(&r, 200, 1001, "error.login.address_invalid");
    let r = post(&c, &format!("http://{}/api/v1/user/login", api.addr), None, None, None).await;
    failure(&r, 200, 1001, "error.login.address_invalid");
    // The configured address in any case is the same account.
    let (nonce, typed) = challenge(&c, &api, &key.address().to_string().to_lowercase()).await;

    // Our nonce, verified in the other address's name (and signed by it).
    let signature = other.sign_typed_data(&typed).unwrap();
    let r = verify(&c, &api, &other.address().to_string(), &nonce, &signature).await;
    failure(&r, 401, 1000, "error.login.nonce_invalid");

    let n = api.mock.counts();
    assert_eq!((n.live_challenges, n.live_challenges_refused), (1, 3), "{n:?}");
    assert_eq!((n.live_verifies_ok, n.live_verifies_refused), (0, 1), "{n:?}");
}

#[tokio::test]
async fn a_nonce_works_once() {
    let key = WalletKey::random();
    let api = start_api_with(live(&key)).await;
    let c = client();
    let address = key.address().to_string();
    let (nonce, typed) = challenge(&c, &api, &address).await;
    let signature = key.sign_typed_data(&typed).unwrap();
    let first = verify(&c, &api, &address, &nonce, &signature).await;
    assert_eq!(first.json()["success"], true);
    let replay = verify(&c, &api, &address, &nonce, &signature).await;
    failure(&replay, 401, 1000, "error.login.nonce_invalid");
    let n = api.mock.counts();
    assert_eq!((n.live_verifies_ok, n.live_verifies_refused), (1, 1), "{n:?}");
}

#[tokio::test]
async fn an_ended_session_refuses_refresh_and_its_tokens_then_a_new_login_works() {
    let key = WalletKey::random();
    let api = start_api_with(MockConfig {
        session_lifetime: Duration::from_millis(1500),
        ..live(&key)
    })
    .await;
    let c = client();
    let (access, refresh) = wallet_login(&c, &api, &key).await;
    // No access token outlives its session.
    assert!(claims(&access)["exp"].as_u64() <= claims(&refresh)["exp"].as_u64());
    let refresh_url = format!("http://{}/api/v1/user/login/refresh?refreshToken={refresh}", api.addr);
    let r = post(&c, &refresh_url, Some(&access), None, None).await;
    assert_eq!(r.json()["success"], true, "{}", r.json());

    // The session's lifetime runs out (its configured 1.5 s, plus margin).
    tokio::time::sleep(Duration::from_millis(1700)).await;
    let r = post(&c, &refresh_url, Some(&access), None, None).await;
    failure(&r, 401, 1000, "error.login.session_expired");
    let info = get_with(&c, &format!("http://{}/api/v1/user/info", api.addr), &access).await;
    failure(&info, 401, 1000, "error.unauthorized.token_expired");
    // An unknown refresh token is refused too, but not as an ended session.
    let r = post(
        &c,
        &format!("http://{}/api/v1/user/login/refresh?refreshToken=a.b.c", api.addr),
        None,
        None,
        None,
    )
    .await;
    failure(&r, 401, 1000, "error.login.refresh_token_invalid");

    // Only a new wallet login works now, and it does.
    let (access2, _) = wallet_login(&c, &api, &key).await;
    let info = get_with(&c, &format!("http://{}/api/v1/user/info", api.addr), &access2).await;
    assert_eq!(info.status, 200);

    let n = api.mock.counts();
    assert_eq!(n.live_verifies_ok, 2, "{n:?}");
    assert_eq!((n.live_refreshes_ok, n.live_refreshes_refused), (1, 2), "{n:?}");
    assert_eq!(n.live_refreshes_on_ended_session, 1, "{n:?}");
    assert_eq!(n.expired_in_use, 1, "{n:?}");
}

#[tokio::test]
async fn end_sessions_and_faults_answer_in_the_live_envelope() {
    let key = WalletKey::random();
    let api = start_api_with(live(&key)).await;
    let c = client();
    let (access, refresh) = wallet_login(&c, &api, &key).await;
    api.mock.end_sessions();
    let url = format!("http://{}/api/v1/user/login/refresh?refreshToken={refresh}", api.addr);
    failure(
        &post(&c, &url, Some(&access), None, None).await,
        401,
        1000,
        "error.login.session_expired",
    );
    assert_eq!(api.mock.counts().live_refreshes_on_ended_session, 1);

    let address = key.address().to_string();
    let (nonce, typed) = challenge(&c, &api, &address).await;
    let signature = key.sign_typed_data(&typed).unwrap();
    api.mock.set_verify_fault(Fault::Status(503));
    failure(
        &verify(&c, &api, &address, &nonce, &signature).await,
        503,
        503,
        "error.injected_fault",
    );
    api.mock.set_login_fault(Fault::ErrorCode);
    let r = post(
        &c,
        &format!("http://{}/api/v1/user/login?addr={address}", api.addr),
        None,
        None,
        None,
    )
    .await;
    failure(&r, 200, 1002, "error.operation_failed");
    assert_eq!(api.mock.counts().faults_served, 2);
}

#[tokio::test]
async fn any_address_logs_in_when_none_is_configured() {
    let api = start_api_with(MockConfig {
        flavour: Flavour::Live,
        chain_id: 560048,
        ..MockConfig::default()
    })
    .await;
    let c = client();
    let (a, b) = (WalletKey::random(), WalletKey::random());
    let (_, typed) = challenge(&c, &api, &a.address().to_string()).await;
    let typed: Value = serde_json::from_str(&typed).unwrap();
    assert_eq!(typed["domain"]["chainId"], 560048, "the configured chain id");
    let (ta, _) = wallet_login(&c, &api, &a).await;
    let (tb, _) = wallet_login(&c, &api, &b).await;
    let (ua, ub) = (claims(&ta)["user"].clone(), claims(&tb)["user"].clone());
    assert_ne!(ua["userId"], ub["userId"], "each address is its own user");
    assert_eq!(ub["address"], b.address().to_string().to_lowercase().as_str());
}

#[tokio::test]
async fn websocket_bearer_handshake_op_login_whoami_and_token_expiry() {
    let key = WalletKey::random();
    let api = start_api_with(MockConfig {
        token_lifetime: Duration::from_secs(2),
        ..live(&key)
    })
    .await;
    let c = client();
    let (access, _) = wallet_login(&c, &api, &key).await;
    let lower = key.address().to_string().to_lowercase();

    // The handshake's bearer logs the socket in.
    let mut with_bearer = connect(&api, Some(&access)).await;
    let whoami = query_whoami(&mut with_bearer).await;
    assert_eq!(
        whoami["data"],
        json!({"authenticated": true, "address": lower}),
        "{whoami}"
    );

    // Without one: refused op-login, then an accepted one.
    let mut plain = connect(&api, None).await;
    assert_eq!(query_whoami(&mut plain).await["data"]["authenticated"], false);
    let refused = op(
        &mut plain,
        json!({"op": "login", "args": [{"accessToken": "nonsense"}]}),
    )
    .await;
    assert_eq!(refused["event"], "login");
    assert_eq!(refused["code"], 1000, "{refused}");
    let ok = op(&mut plain, json!({"op": "login", "args": [{"accessToken": access}]})).await;
    assert_eq!(ok["event"], "login");
    assert_eq!((&ok["code"], &ok["msg"]), (&json!(0), &json!("")), "{ok}");
    assert!(ok["connId"].as_str().is_some_and(|id| !id.is_empty()), "{ok}");
    assert_eq!(query_whoami(&mut plain).await["data"]["authenticated"], true);
    let sub = op(
        &mut plain,
        json!({"op": "subscribe", "args": [{"channel": "orderBook"}]}),
    )
    .await;
    assert_eq!((&sub["event"], &sub["code"]), (&json!("subscribe"), &json!(0)), "{sub}");

    // A bearer that is not valid leaves the socket logged out, and is counted.
    let mut bogus = connect(&api, Some("not-a-token")).await;
    assert_eq!(query_whoami(&mut bogus).await["data"]["authenticated"], false);

    // The token (2 s) runs out: the server says so and forgets it.
    let push = next_ws_json(&mut plain).await;
    assert_eq!(push, json!({"event": "error", "code": 1000, "msg": "token expired"}));
    assert_eq!(query_whoami(&mut plain).await["data"]["authenticated"], false);

    let n = api.mock.counts();
    assert_eq!((n.ws_bearer_ok, n.ws_bearer_refused), (1, 1), "{n:?}");
    assert_eq!((n.ws_op_logins_ok, n.ws_op_logins_refused), (1, 1), "{n:?}");
    assert!(n.ws_token_expired_pushes >= 1, "{n:?}");
    assert_eq!(n.ws_logins_ok + n.ws_logins_refused, 0, "no documented socket logins");
}

type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

async fn connect(api: &Api, bearer: Option<&str>) -> Ws {
    let mut req = format!("ws://{}/ws", api.addr).into_client_request().unwrap();
    if let Some(t) = bearer {
        req.headers_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    let stream = TcpStream::connect(api.addr).await.unwrap();
    let (ws, resp) = tokio_tungstenite::client_async(req, stream).await.expect("upgrade");
    assert_eq!(resp.status(), 101);
    ws
}

async fn op(ws: &mut Ws, message: Value) -> Value {
    ws.send(Message::text(message.to_string())).await.unwrap();
    next_ws_json(ws).await
}

async fn query_whoami(ws: &mut Ws) -> Value {
    let v = op(ws, json!({"op": "query", "args": [{"channel": "whoami"}]})).await;
    assert_eq!((&v["event"], &v["channel"]), (&json!("query"), &json!("whoami")), "{v}");
    v
}

/// What python-ethgas relies on: `user/info` answers the live user object
/// (a trading account of `type` 2 among `accounts`); a text `ping` is
/// answered `pong`; a subscription's acknowledgement names its channel in
/// `arg`; and the mock records the path of each socket.
#[tokio::test]
async fn user_info_is_the_live_user_object_and_the_socket_answers_ping_and_names_subscriptions() {
    let key = WalletKey::random();
    let api = start_api_with(live(&key)).await;
    let c = client();
    let (access, _) = wallet_login(&c, &api, &key).await;
    let r = get_with(&c, &format!("http://{}/api/v1/user/info", api.addr), &access).await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["success"], true, "{v}");
    let user = &v["data"]["user"];
    assert_eq!(user["address"], key.address().to_string().to_lowercase().as_str());
    for field in [
        "userId",
        "status",
        "userType",
        "userClass",
        "payoutAddress",
        "collateralPerSlot",
        "onchainPayout",
    ] {
        assert!(!user[field].is_null(), "{field} in {user}");
    }
    let accounts = user["accounts"].as_array().unwrap();
    let trading: Vec<&Value> = accounts.iter().filter(|a| a["type"] == 2).collect();
    assert_eq!(trading.len(), 1, "{user}");
    assert_eq!(trading[0]["name"], "InPreconf");
    assert!(trading[0]["accountId"].as_u64().is_some(), "{user}");

    let mut ws = connect(&api, Some(&access)).await;
    ws.send(Message::text("ping")).await.unwrap();
    let pong = tokio::time::timeout(Duration::from_secs(10), futures_util::StreamExt::next(&mut ws))
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(pong, Message::text("pong"));
    let channel = json!({"channel": "preconfMarketUpdate", "marketType": "inclusionPreconf"});
    let ack = op(&mut ws, json!({"op": "subscribe", "args": [channel], "id": 1})).await;
    assert_eq!((&ack["event"], &ack["code"]), (&json!("subscribe"), &json!(0)), "{ack}");
    assert_eq!(ack["arg"], channel, "{ack}");
    let n = api.mock.counts();
    assert_eq!((n.ws_text_pings, n.ws_op_subscribes), (1, 1), "{n:?}");
    assert_eq!(api.mock.websocket_paths(), ["/ws"]);
}

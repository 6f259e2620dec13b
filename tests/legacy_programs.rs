//! Legacy programs work unchanged, and the sidecar never leaks the account:
//! login interception, HTTP_PROXY mode, 401 replay, WebSocket login,
//! request-head limits, local access control (smuggling vectors: tests/attack_framing.rs).

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use futures_util::SinkExt;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

#[tokio::test]
async fn a_program_that_logs_in_itself_works_without_touching_the_real_session() {
    let api = start_api(Duration::from_secs(3600)).await;
    let (sidecar, c) = ready_sidecar(&api, Extra::default()).await;

    // The program logs in as it always did.
    let login = post_json(
        &c,
        &sidecar.url("/api/v1/user/login"),
        &format!(r#"{{"username":"{USER}","password":"whatever the program has"}}"#),
    )
    .await;
    assert_eq!(login.status, 200);
    let env = login.json();
    assert_eq!(env["code"], 200);
    let access = env["data"]["accessToken"].as_str().unwrap().to_string();
    let refresh = env["data"]["refreshToken"].as_str().unwrap().to_string();
    let expires_in = env["data"]["expiresIn"].as_u64().unwrap();
    assert!(
        (3590..=3600).contains(&expires_in),
        "matches the real session: {expires_in}"
    );
    assert!(!api.mock.issued(&access), "a placeholder, never the real token");
    assert_eq!(access.split('.').count(), 3, "JWT-shaped");

    // ... and uses the token it got.
    let req = Request::get(sidecar.url("/api/v1/mock/echo"))
        .header("authorization", format!("Bearer {access}"))
        .body(Full::default())
        .unwrap();
    let r = send(&c, req).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["data"]["headers"]["authorization"]["valid"], true);

    // Verify answers for the real session (by the sidecar: an account
    // endpoint is never forwarded with the real token).
    let req = Request::post(sidecar.url("/api/v1/user/login/verify"))
        .header("authorization", format!("Bearer {access}"))
        .body(Full::default())
        .unwrap();
    let v = send(&c, req).await;
    assert_eq!(v.status, 200);
    assert_eq!(v.json()["data"]["valid"], true);

    // Refresh and logout through the sidecar.
    let req = Request::post(sidecar.url("/api/v1/user/login/refresh"))
        .header("authorization", format!("Bearer {refresh}"))
        .body(Full::default())
        .unwrap();
    let r = send(&c, req).await;
    assert_eq!(r.status, 200);
    let renewed = r.json()["data"]["accessToken"].as_str().unwrap().to_string();
    assert_ne!(renewed, access);
    let req = Request::post(sidecar.url("/api/v1/user/logout"))
        .header("authorization", format!("Bearer {renewed}"))
        .body(Full::default())
        .unwrap();
    let r = send(&c, req).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["data"]["loggedOut"], true);

    // The real session is untouched and still serves.
    let r = get(&c, &sidecar.url("/api/v1/user/info")).await;
    assert_eq!(r.status, 200);
    let counts = api.mock.counts();
    assert_eq!(counts.logins_ok, 1, "the API saw only the sidecar's own login");
    assert_eq!(
        counts.refreshes_ok + counts.refreshes_refused,
        0,
        "no refresh reached the API"
    );
    assert_eq!(counts.logouts, 0, "no logout reached the API");
    assert_eq!(counts.verifies, 0, "verify is answered by the sidecar too");

    // A login for another account is refused rather than answered as ours.
    let other = post_json(
        &c,
        &sidecar.url("/api/v1/user/login"),
        r#"{"username":"mallory","password":"x"}"#,
    )
    .await;
    assert_eq!(other.status, 403);
    assert!(other.json()["message"].as_str().unwrap().contains("mallory"));

    let metrics = String::from_utf8_lossy(&get(&c, &sidecar.admin_url("/metrics")).await.body).into_owned();
    assert_eq!(
        metric(&metrics, "ethgas_sidecar_intercepted_total{endpoint=\"login\"}"),
        1.0
    );
    assert_eq!(
        metric(&metrics, "ethgas_sidecar_intercepted_total{endpoint=\"logout\"}"),
        1.0
    );
}

#[tokio::test]
async fn interception_can_be_turned_off() {
    let api = start_api(Duration::from_secs(3600)).await;
    let sidecar = start_sidecar(&api, Extra::proxy("intercept_login = false")).await;
    let c = client();
    wait_ready(&c, sidecar.admin).await;
    let login = post_json(
        &c,
        &sidecar.url("/api/v1/user/login"),
        &format!(r#"{{"username":"{USER}","password":"{PASSWORD}"}}"#),
    )
    .await;
    assert_eq!(login.status, 200);
    assert_eq!(api.mock.counts().logins_ok, 2, "the program's login went to the API");
}

#[tokio::test]
async fn python_with_http_proxy_reaches_the_api_through_the_sidecar() {
    let api = start_api(Duration::from_secs(3600)).await;
    let (sidecar, _c) = ready_sidecar(&api, Extra::default()).await;
    let script = r#"
import json, sys, urllib.request
req = urllib.request.Request(sys.argv[1], headers={"Authorization": "Bearer programs-own"})
with urllib.request.urlopen(req, timeout=20) as r:
    print(json.dumps({"status": r.status, "body": json.loads(r.read())}))
"#;
    let proxy = format!("http://{}", sidecar.proxy);
    let url = format!("http://{}/api/v1/mock/echo", api.addr);
    let out = tokio::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&url)
        .env("HTTP_PROXY", &proxy)
        .env("http_proxy", &proxy)
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .output()
        .await
        .expect("python3 runs (it is part of the CI machine)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], 200);
    let auth = &v["body"]["data"]["headers"]["authorization"];
    assert_eq!(auth["valid"], true, "went through the sidecar, token injected: {v}");
    assert_eq!(auth["values"], 1);
    assert_eq!(v["body"]["data"]["uri"], "/api/v1/mock/echo", "origin-form upstream");
}

#[tokio::test]
async fn absolute_form_for_another_host_is_refused_without_connecting() {
    let api = start_api(Duration::from_secs(3600)).await;
    let bystander = start_api(Duration::from_secs(3600)).await;
    let (sidecar, _c) = ready_sidecar(&api, Extra::default()).await;

    for target in [
        format!("http://{}/api/v1/user/info", bystander.addr),
        "http://example.com/api/v1/user/info".to_string(),
        format!("http://localhost:{}/api/v1/user/info", api.addr.port()),
    ] {
        let raw = format!(
            "GET {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            api.addr
        );
        let answer = raw_exchange(sidecar.proxy, raw.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 403"), "{target}: {answer}");
        assert!(answer.contains("\"code\":403"), "{answer}");
        assert!(answer.contains("proxy.host_aliases"), "says what to do: {answer}");
    }
    assert_eq!(
        bystander.mock.counts().connections,
        0,
        "no connection to the other server"
    );

    // The upstream's own host works in absolute form.
    let raw = format!(
        "GET http://{}/api/v1/user/info HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        api.addr
    );
    let answer = raw_exchange(sidecar.proxy, raw.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // A Host header naming another server changes nothing: origin-form
    // requests always go to the upstream.
    let raw = format!(
        "GET /api/v1/user/info HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        bystander.addr
    );
    let answer = raw_exchange(sidecar.proxy, raw.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(bystander.mock.counts().connections, 0);
}

#[tokio::test]
async fn host_aliases_are_accepted() {
    let api = start_api(Duration::from_secs(3600)).await;
    let sidecar = start_sidecar(&api, Extra::proxy("host_aliases = [\"api.ethgas.com\"]")).await;
    let c = client();
    wait_ready(&c, sidecar.admin).await;
    let raw =
        "GET http://api.ethgas.com/api/v1/user/info HTTP/1.1\r\nHost: api.ethgas.com\r\nConnection: close\r\n\r\n";
    let answer = raw_exchange(sidecar.proxy, raw.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn connect_is_refused_with_advice() {
    let api = start_api(Duration::from_secs(3600)).await;
    let (sidecar, _c) = ready_sidecar(&api, Extra::upstream("keep_warm = false")).await;
    let answer = raw_exchange(
        sidecar.proxy,
        b"CONNECT api.ethgas.com:443 HTTP/1.1\r\nHost: api.ethgas.com:443\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
    assert!(answer.contains("http://"), "says to use an http:// base URL: {answer}");
    assert_eq!(
        api.mock.counts().connections,
        1,
        "only the sidecar's own login connection"
    );
}

/// A program with `HTTPS_PROXY` and an `https://` API URL sends CONNECT:
/// the operator reads in the log what to change, once per target.
#[tokio::test]
async fn a_refused_connect_is_logged_once_per_target_saying_what_to_change() {
    let api = start_api(Duration::from_secs(3600)).await;
    let files = write_config(api.addr, PASSWORD, &Extra::default());
    let sidecar = Proc::spawn(&files.config, &[]).await;
    let c = client();
    wait_ready(&c, sidecar.admin).await;
    for target in ["api.ethgas.com:443", "api.ethgas.com:443", "mainnet.app.ethgas.com:443"] {
        let raw = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n");
        let answer = raw_exchange(sidecar.proxy, raw.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
    }
    let warned = |target: &str| {
        sidecar
            .log()
            .lines()
            .filter(|l| l.contains("WARN") && l.contains(&format!("refused CONNECT \"{target}\"")))
            .count()
    };
    eventually(Duration::from_secs(10), "both targets in the log", || {
        warned("api.ethgas.com:443") + warned("mainnet.app.ethgas.com:443") >= 2
    })
    .await;
    assert_eq!(warned("api.ethgas.com:443"), 1, "{}", sidecar.log());
    assert_eq!(warned("mainnet.app.ethgas.com:443"), 1, "{}", sidecar.log());
    let line = sidecar
        .log()
        .lines()
        .find(|l| l.contains("refused CONNECT"))
        .unwrap_or_default()
        .to_string();
    assert!(
        line.contains("base URL") && line.contains("http://127.0.0.1:PORT") && line.contains("HTTP_PROXY"),
        "says what to change: {line}"
    );
}

#[tokio::test]
async fn a_revoked_token_is_replaced_and_the_post_replayed_with_its_body() {
    let api = start_api(Duration::from_secs(3600)).await;
    let (sidecar, c) = ready_sidecar(&api, Extra::default()).await;
    api.mock.revoke_access_tokens();
    let order = r#"{"market":"ETH-PRECONF","side":"buy","price":"0.001","qty":3}"#;
    let r = post_json(&c, &sidecar.url("/api/v1/mock/echo"), order).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let echo = r.json()["data"].clone();
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["body"], order, "replayed with the same body");
    assert_eq!(echo["headers"]["authorization"]["valid"], true);
    let counts = api.mock.counts();
    assert_eq!(counts.private_unauthorized, 1, "the first try met the 401");
    assert_eq!(counts.refreshes_ok, 1, "one re-authentication");
    assert_eq!(counts.logins_ok, 1);

    let metrics = String::from_utf8_lossy(&get(&c, &sidecar.admin_url("/metrics")).await.body).into_owned();
    assert_eq!(metric(&metrics, "ethgas_sidecar_replays_total"), 1.0);
    assert_eq!(metric(&metrics, "ethgas_sidecar_upstream_unauthorized_total"), 1.0);
}

#[tokio::test]
async fn a_large_body_is_not_replayed_but_the_token_is_renewed() {
    let api = start_api(Duration::from_secs(3600)).await;
    let sidecar = start_sidecar(&api, Extra::proxy("replay_buffer_bytes = 16")).await;
    let c = client();
    wait_ready(&c, sidecar.admin).await;
    api.mock.revoke_access_tokens();
    let r = post_json(
        &c,
        &sidecar.url("/api/v1/mock/echo"),
        r#"{"this body":"is longer than sixteen bytes"}"#,
    )
    .await;
    assert_eq!(r.status, 401, "returned as is");
    eventually(Duration::from_secs(5), "the background re-authentication", || {
        api.mock.counts().refreshes_ok == 1
    })
    .await;
    let r = post_json(
        &c,
        &sidecar.url("/api/v1/mock/echo"),
        r#"{"this body":"is longer than sixteen bytes"}"#,
    )
    .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn fifty_concurrent_401s_cause_exactly_one_reauthentication() {
    let api = start_api(Duration::from_secs(3600)).await;
    let (sidecar, c) = ready_sidecar(&api, Extra::default()).await;
    // Warm 50 connections so the requests really run at once.
    let warm: Vec<_> = (0..50)
        .map(|_| {
            let (c, url) = (c.clone(), sidecar.url("/api/v1/p/ticker"));
            tokio::spawn(async move { get(&c, &url).await.status })
        })
        .collect();
    for w in warm {
        assert_eq!(w.await.unwrap(), 200);
    }
    api.mock.revoke_access_tokens();
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let (c, url) = (c.clone(), sidecar.url("/api/v1/mock/echo"));
            tokio::spawn(async move { post_json(&c, &url, &format!(r#"{{"n":{i}}}"#)).await })
        })
        .collect();
    for (i, t) in tasks.into_iter().enumerate() {
        let r = t.await.unwrap();
        assert_eq!(r.status, 200, "request {i}: {}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json()["data"]["body"], format!(r#"{{"n":{i}}}"#));
    }
    let counts = api.mock.counts();
    assert_eq!(
        counts.refreshes_ok + counts.refreshes_refused,
        1,
        "one refresh for all: {counts:?}"
    );
    assert_eq!(counts.logins_ok, 1, "{counts:?}");
    let metrics = String::from_utf8_lossy(&get(&c, &sidecar.admin_url("/metrics")).await.body).into_owned();
    assert_eq!(metric(&metrics, "ethgas_sidecar_reauthentications_total"), 1.0);
    let replays = metric(&metrics, "ethgas_sidecar_replays_total");
    assert_eq!(
        replays, counts.private_unauthorized as f64,
        "every 401 was replayed once"
    );
    eprintln!(
        "50 concurrent 401s: {} upstream 401s, {replays} replays, 1 refresh",
        counts.private_unauthorized
    );
}

#[tokio::test]
async fn websocket_login_with_a_placeholder_stays_authenticated_across_refreshes() {
    let api = start_api(Duration::from_secs(2)).await;
    // 2-second tokens renewed for 7 s: faster than the default pace of auth
    // calls allows (which would let the token lapse between renewals).
    let (sidecar, c) = ready_sidecar(&api, Extra::auth("min_call_interval = \"100ms\"")).await;
    let login = post_json(
        &c,
        &sidecar.url("/api/v1/user/login"),
        &format!(r#"{{"username":"{USER}"}}"#),
    )
    .await;
    let placeholder = login.json()["data"]["accessToken"].as_str().unwrap().to_string();

    let stream = TcpStream::connect(sidecar.proxy).await.unwrap();
    let (mut ws, resp) = tokio_tungstenite::client_async(format!("ws://{}/ws", sidecar.proxy), stream)
        .await
        .expect("upgrade through the sidecar");
    assert_eq!(resp.status(), 101);
    ws.send(Message::text(
        json!({"cmd":"login","data":{"accessToken": placeholder}}).to_string(),
    ))
    .await
    .unwrap();
    let reply = next_ws_json(&mut ws).await;
    assert_eq!(reply["cmd"], "login");
    assert_eq!(reply["code"], 200, "the mock accepted the rewritten login: {reply}");

    // Several token lifetimes: the sidecar logs the socket in again on every
    // refresh; the program sees neither those replies nor token_expired.
    let until = tokio::time::Instant::now() + Duration::from_secs(7);
    let mut checks = 0;
    while tokio::time::Instant::now() < until {
        ws.send(Message::text(r#"{"cmd":"whoami"}"#)).await.unwrap();
        let v = next_ws_json(&mut ws).await;
        assert_eq!(v["cmd"], "whoami", "only the program's own replies arrive: {v}");
        assert_eq!(v["authenticated"], true, "still authenticated after {checks} checks");
        checks += 1;
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    let counts = api.mock.counts();
    assert!(counts.refreshes_ok >= 2, "{counts:?}");
    assert!(
        counts.ws_logins_ok >= 3,
        "the sidecar re-logged the socket in: {counts:?}"
    );
    assert_eq!(counts.ws_logins_refused, 0);
    ws.close(None).await.unwrap();
}

#[tokio::test]
async fn websocket_token_expired_push_is_answered_by_the_sidecar() {
    let api = start_api(Duration::from_secs(3600)).await;
    let (sidecar, _c) = ready_sidecar(&api, Extra::default()).await;
    let stream = TcpStream::connect(sidecar.proxy).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(format!("ws://{}/ws", sidecar.proxy), stream)
        .await
        .unwrap();
    ws.send(Message::text(r#"{"cmd":"login","data":{"accessToken":"anything"}}"#))
        .await
        .unwrap();
    assert_eq!(next_ws_json(&mut ws).await["code"], 200);
    for round in 1..=3 {
        api.mock.push_token_expired();
        eventually(Duration::from_secs(5), "the sidecar's login on the socket", || {
            api.mock.counts().ws_logins_ok == 1 + round
        })
        .await;
        ws.send(Message::text(r#"{"cmd":"whoami"}"#)).await.unwrap();
        let v = next_ws_json(&mut ws).await;
        assert_eq!(
            v["cmd"], "whoami",
            "neither token_expired nor the login reply reached the program: {v}"
        );
        assert_eq!(v["authenticated"], true);
    }
    assert_eq!(api.mock.counts().ws_token_expired_pushes, 3);
}

/// Writes raw bytes, reads until the server closes or 5 s pass.
async fn raw_exchange(addr: std::net::SocketAddr, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn oversized_heads_get_431_and_414_envelopes() {
    let api = start_api(Duration::from_secs(3600)).await;
    let (sidecar, _c) = ready_sidecar(&api, Extra::default()).await;
    let big = "x".repeat(40 * 1024);
    let answer = raw_exchange(
        sidecar.proxy,
        format!("GET /api/v1/user/info HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n").as_bytes(),
    )
    .await;
    assert!(
        answer.starts_with("HTTP/1.1 431"),
        "{}",
        &answer[..answer.len().min(300)]
    );
    assert!(answer.contains("max_header_bytes"), "{answer}");
    let long = "a".repeat(10 * 1024);
    let answer = raw_exchange(
        sidecar.proxy,
        format!("GET /api/v1/user/info?q={long} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
    )
    .await;
    assert!(
        answer.starts_with("HTTP/1.1 414"),
        "{}",
        &answer[..answer.len().min(300)]
    );
    assert!(answer.contains("max_uri_bytes"), "{answer}");
    assert_eq!(api.mock.counts().private_ok + api.mock.counts().private_unauthorized, 0);
}

#[tokio::test]
async fn clients_outside_the_allow_list_are_refused() {
    let api = start_api(Duration::from_secs(3600)).await;
    let sidecar = start_sidecar(&api, Extra::proxy("allowed_clients = [\"10.0.0.0/8\"]")).await;
    let c = client();
    wait_ready(&c, sidecar.admin).await;
    let r = get(&c, &sidecar.url("/api/v1/user/info")).await;
    assert_eq!(r.status, 403);
    assert!(r.json()["message"].as_str().unwrap().contains("allowed_clients"));
    assert_eq!(api.mock.counts().private_ok + api.mock.counts().private_unauthorized, 0);
}

#[tokio::test]
async fn unix_socket_listener_with_its_file_mode() {
    let api = start_api(Duration::from_secs(3600)).await;
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("proxy.sock");
    let files = write_config(api.addr, PASSWORD, &Extra::default());
    // The first `listen` is the proxy's.
    let text = std::fs::read_to_string(&files.config).unwrap().replacen(
        "listen = \"127.0.0.1:0\"\n",
        &format!("listen = \"unix:{}\"\nunix_mode = \"0600\"\n", sock.display()),
        1,
    );
    std::fs::write(&files.config, &text).unwrap();
    let config = ethgas_sidecar::config::Config::load(&files.config).unwrap();
    let proxy = ethgas_sidecar::server::Listener::bind(&config.restart.proxy.listen, config.restart.proxy.unix_mode)
        .await
        .unwrap();
    let admin = ethgas_sidecar::server::Listener::bind(&config.restart.admin.listen, 0o660)
        .await
        .unwrap();
    let admin_addr = admin.tcp_addr().unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let run = tokio::spawn(ethgas_sidecar::app::run(
        config,
        ethgas_sidecar::app::Listeners {
            proxy,
            admin: Some(admin),
            more: Vec::new(),
        },
        ethgas_sidecar::app::Control::new(stop.clone()),
    ));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777, 0o600);
    let c = client();
    wait_ready(&c, admin_addr).await;

    let stream = tokio::net::UnixStream::connect(&sock).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let resp = sender
        .send_request(
            Request::get("/api/v1/user/info")
                .header("host", "sidecar")
                .body(Full::<Bytes>::default())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["data"]["username"], USER);

    stop.cancel();
    run.await.unwrap().unwrap();
    assert!(!sock.exists(), "the socket file is removed at exit");
}

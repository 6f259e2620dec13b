//! The sidecar end to end, in process: login, refresh, injection, failures,
//! streaming, header hygiene. Each test starts the mock API and the sidecar
//! on port 0.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use ethgas_mock::{Fault, Fnv, pattern_byte};
use http::Request;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use serde_json::Value;

#[tokio::test]
async fn logs_in_once_at_start_and_becomes_ready() {
    let api = start_api(Duration::from_secs(3600)).await;
    let (sidecar, c) = ready_sidecar(&api, Extra::default()).await;
    let ready = get(&c, &sidecar.admin_url("/readyz")).await;
    assert_eq!(ready.status, 200);
    let summary = ready.json();
    assert_eq!(summary["data"]["ready"], true);
    assert_eq!(summary["data"]["username"], USER);
    assert!(summary["data"]["token_expires_in_seconds"].as_f64().unwrap() > 3500.0);
    let health = get(&c, &sidecar.admin_url("/healthz")).await;
    assert_eq!(health.status, 200);

    for _ in 0..20 {
        let r = get(&c, &sidecar.url("/api/v1/user/info")).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.json()["data"]["username"], USER);
    }
    assert_eq!(api.mock.counts().logins_ok, 1, "one login for all requests");
    assert_eq!(api.mock.counts().private_ok, 20);
    // No secret in the admin output.
    assert!(!String::from_utf8_lossy(&ready.body).contains(PASSWORD));
    for token in api.mock.issued_tokens() {
        assert!(!String::from_utf8_lossy(&ready.body).contains(&token));
    }
}

#[tokio::test]
async fn readyz_is_503_until_the_first_login() {
    let api = start_api(Duration::from_secs(3600)).await;
    api.mock.set_login_fault(Fault::Status(503));
    let sidecar = start_sidecar(&api, Extra::default()).await;
    let c = client();
    eventually(Duration::from_secs(5), "a failed login attempt", || {
        api.mock.counts().faults_served >= 1
    })
    .await;
    let r = get(&c, &sidecar.admin_url("/readyz")).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["data"]["ready"], false);
    api.mock.set_login_fault(Fault::None);
    wait_ready(&c, sidecar.admin).await;
}

#[tokio::test]
async fn injects_the_issued_token_and_replaces_the_clients_own() {
    let api = start_api(Duration::from_secs(3600)).await;
    let (sidecar, c) = ready_sidecar(&api, Extra::default()).await;
    let req = Request::get(sidecar.url("/api/v1/mock/echo?x=1&y=two"))
        .header("authorization", "Bearer the-programs-own-stale-token")
        .header("x-request-id", "abc")
        .body(Full::default())
        .unwrap();
    let r = send(&c, req).await;
    assert_eq!(r.status, 200);
    let echo = r.json()["data"].clone();
    let auth = &echo["headers"]["authorization"];
    assert_eq!(auth["values"], 1, "exactly one Authorization reaches the API");
    assert_eq!(auth["issued_by_mock"], true, "it is a token the API issued");
    assert_eq!(auth["valid"], true);
    assert_eq!(echo["uri"], "/api/v1/mock/echo?x=1&y=two", "path and query kept");
    assert_eq!(echo["headers"]["x-request-id"][0], "abc");
    assert_eq!(
        echo["headers"]["host"][0],
        api.addr.to_string(),
        "Host is the upstream's, not the sidecar's"
    );
    // Public endpoints work too (the token does no harm there).
    let r = get(&c, &sidecar.url("/api/v1/p/ticker")).await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn steady_traffic_across_many_refreshes_never_fails() {
    let api = start_api(Duration::from_secs(2)).await;
    let (sidecar, c) = ready_sidecar(&api, Extra::default()).await;
    let failures = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let until = tokio::time::Instant::now() + Duration::from_secs(9);
    let mut workers = Vec::new();
    for _ in 0..8 {
        let (c, url, failures, done) = (
            c.clone(),
            sidecar.url("/api/v1/user/info"),
            failures.clone(),
            done.clone(),
        );
        workers.push(tokio::spawn(async move {
            while tokio::time::Instant::now() < until {
                let r = get(&c, &url).await;
                if r.status != 200 {
                    failures.fetch_add(1, Ordering::SeqCst);
                    eprintln!("failed: {} {}", r.status, String::from_utf8_lossy(&r.body));
                }
                done.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    let counts = api.mock.counts();
    assert_eq!(failures.load(Ordering::SeqCst), 0, "no request failed");
    assert!(done.load(Ordering::SeqCst) > 100, "traffic flowed");
    assert_eq!(counts.logins_ok, 1, "one login only; the rest were refreshes");
    assert!(counts.refreshes_ok >= 3, "refreshed across ~4 lifetimes: {counts:?}");
    assert_eq!(counts.expired_in_use, 0, "no expired token was ever sent");
    assert_eq!(counts.private_unauthorized, 0);
}

#[tokio::test]
async fn refused_refresh_falls_back_to_login_without_failing_a_request() {
    let api = start_api(Duration::from_secs(2)).await;
    let (sidecar, c) = ready_sidecar(&api, Extra::default()).await;
    api.mock.set_refresh_fault(Fault::Status(401));
    let until = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut n = 0;
    while tokio::time::Instant::now() < until {
        let r = get(&c, &sidecar.url("/api/v1/user/info")).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        n += 1;
    }
    let counts = api.mock.counts();
    assert!(n > 50);
    assert!(counts.faults_served >= 1, "a refresh was refused: {counts:?}");
    assert!(counts.logins_ok >= 2, "fell back to a full login: {counts:?}");
    assert_eq!(counts.expired_in_use, 0);
}

#[tokio::test]
async fn login_outage_gives_503_envelopes_then_recovers_quickly() {
    let api = start_api(Duration::from_secs(3600)).await;
    api.mock.set_login_fault(Fault::Status(503));
    let sidecar = start_sidecar(&api, Extra::proxy("token_wait = \"300ms\"")).await;
    let c = client();
    eventually(Duration::from_secs(5), "login attempts", || {
        api.mock.counts().faults_served >= 2
    })
    .await;
    let r = get(&c, &sidecar.url("/api/v1/user/info")).await;
    assert_eq!(r.status, 503);
    assert!(r.headers.contains_key("retry-after"));
    let env = r.json();
    assert_eq!(env["code"], 503);
    assert_eq!(env["data"], Value::Null);
    let msg = env["message"].as_str().unwrap();
    assert!(msg.starts_with("ethgas-sidecar: "), "{msg}");
    assert!(msg.contains("503"), "says why: {msg}");
    assert_eq!(api.mock.counts().private_ok + api.mock.counts().private_unauthorized, 0);

    // The API comes back: the sidecar is serving again within seconds.
    api.mock.set_login_fault(Fault::None);
    let back = tokio::time::Instant::now();
    wait_ready(&c, sidecar.admin).await;
    assert!(
        back.elapsed() < Duration::from_secs(5),
        "recovered in {:?}",
        back.elapsed()
    );
    let r = get(&c, &sidecar.url("/api/v1/user/info")).await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn unreachable_api_gives_a_502_envelope() {
    let api = start_api(Duration::from_secs(3600)).await;
    let (sidecar, c) = ready_sidecar(&api, Extra::default()).await;
    api.stop();
    // Pooled connections close as the API shuts down; then every request
    // meets a refused connection.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let r = loop {
        let r = get(&c, &sidecar.url("/api/v1/user/info")).await;
        if r.status != 200 || tokio::time::Instant::now() > deadline {
            break r;
        }
    };
    assert_eq!(r.status, 502, "{}", String::from_utf8_lossy(&r.body));
    assert!(
        r.json()["message"].as_str().unwrap().contains("unreachable"),
        "{}",
        r.json()
    );
    assert_eq!(r.json()["code"], 502);
    assert!(r.headers.contains_key("retry-after"));
}

#[tokio::test]
async fn slow_api_gives_a_504_envelope() {
    let api = start_api(Duration::from_secs(3600)).await;
    let sidecar = start_sidecar(&api, Extra::upstream("connect_timeout = \"2s\"")).await;
    // request_timeout is 10 s in the generated config; ask for 12 s.
    let c = client();
    wait_ready(&c, sidecar.admin).await;
    let started = tokio::time::Instant::now();
    let r = get(&c, &sidecar.url("/api/v1/mock/slow?ms=12000")).await;
    assert_eq!(r.status, 504);
    assert_eq!(r.json()["code"], 504);
    assert!(r.json()["message"].as_str().unwrap().contains("request_timeout"));
    assert!(started.elapsed() < Duration::from_secs(12));
}

#[tokio::test]
async fn wrong_password_is_retried_slowly_and_readyz_says_why() {
    let api = start_api(Duration::from_secs(3600)).await;
    let sidecar = start_sidecar_with_password(api.addr, "wrong password", Extra::proxy("token_wait = \"200ms\"")).await;
    let c = client();
    eventually(Duration::from_secs(5), "the first refused login", || {
        api.mock.counts().logins_refused >= 1
    })
    .await;
    let started = tokio::time::Instant::now();
    let r = get(&c, &sidecar.admin_url("/readyz")).await;
    assert_eq!(r.status, 503);
    let data = r.json()["data"].clone();
    assert_eq!(data["state"], "credentials_rejected");
    let err = data["last_error"].as_str().unwrap();
    assert!(err.contains(USER), "names the username: {err}");
    assert!(err.contains("Unauthorized"), "quotes the server: {err}");
    assert!(!err.contains("wrong password"));
    let r = get(&c, &sidecar.url("/api/v1/user/info")).await;
    assert_eq!(r.status, 503);
    assert!(r.json()["message"].as_str().unwrap().contains("refused"));

    // Over the next 8 s: a handful of attempts at most, not a tight loop.
    while started.elapsed() < Duration::from_secs(8) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let attempts = api.mock.counts().logins_refused;
    assert!(attempts <= 3, "{attempts} login attempts in ~8 s");
    assert_eq!(api.mock.counts().logins_ok, 0);
}

#[tokio::test]
async fn streams_the_first_chunk_before_the_api_finishes() {
    let api = start_api(Duration::from_secs(3600)).await;
    let (sidecar, c) = ready_sidecar(&api, Extra::default()).await;
    let started = tokio::time::Instant::now();
    let resp = c
        .request(
            Request::get(sidecar.url("/api/v1/mock/stream?chunks=3&interval_ms=2000"))
                .body(Full::default())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    let first_at = started.elapsed();
    assert_eq!(&first[..], b"{\"chunk\":0}\n");
    assert!(first_at < Duration::from_millis(1500), "first chunk after {first_at:?}");
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(&rest[..], b"{\"chunk\":1}\n{\"chunk\":2}\n");
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "the rest came as the API sent it"
    );
}

#[tokio::test]
async fn large_download_and_upload_go_through_intact() {
    let api = start_api(Duration::from_secs(3600)).await;
    let (sidecar, c) = ready_sidecar(&api, Extra::default()).await;

    // 32 MiB down.
    let size: u64 = 32 << 20;
    let resp = c
        .request(
            Request::get(sidecar.url(&format!("/api/v1/mock/download?bytes={size}")))
                .body(Full::default())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let mut seen = 0u64;
    while let Some(frame) = body.frame().await {
        let data = frame.unwrap().into_data().unwrap_or_default();
        for (i, b) in data.iter().enumerate() {
            assert_eq!(*b, pattern_byte(seen + i as u64), "byte {} differs", seen + i as u64);
        }
        seen += data.len() as u64;
    }
    assert_eq!(seen, size);

    // 24 MiB up, streamed from a generator (never whole in this test either).
    let up: u64 = 24 << 20;
    let chunks = futures_util::stream::iter((0..up).step_by(1 << 16).map(move |start| {
        let chunk: Vec<u8> = (start..(start + (1 << 16)).min(up)).map(pattern_byte).collect();
        Ok::<_, std::io::Error>(Frame::data(Bytes::from(chunk)))
    }));
    let mut expected = Fnv::default();
    for start in (0..up).step_by(1 << 16) {
        let chunk: Vec<u8> = (start..(start + (1 << 16)).min(up)).map(pattern_byte).collect();
        expected.update(&chunk);
    }
    let streaming: hyper_util::client::legacy::Client<_, StreamBody<_>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let resp = streaming
        .request(
            Request::post(sidecar.url("/api/v1/mock/upload"))
                .body(StreamBody::new(chunks))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(v["data"]["bytes"], up);
    assert_eq!(v["data"]["fnv1a64"], format!("{:016x}", expected.0));
}

#[tokio::test]
async fn hop_by_hop_headers_are_not_forwarded() {
    let api = start_api(Duration::from_secs(3600)).await;
    let (sidecar, c) = ready_sidecar(&api, Extra::default()).await;
    let req = Request::get(sidecar.url("/api/v1/mock/echo"))
        .header("connection", "keep-alive, x-hop-named")
        .header("x-hop-named", "must not pass")
        .header("keep-alive", "timeout=5")
        .header("te", "trailers")
        .header("trailer", "x-foo")
        .header("proxy-authorization", "Basic c2VjcmV0")
        .header("proxy-connection", "keep-alive")
        .header("upgrade", "h2c")
        .header("x-end-to-end", "kept")
        .body(Full::default())
        .unwrap();
    let r = send(&c, req).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let headers = r.json()["data"]["headers"].clone();
    for gone in [
        "x-hop-named",
        "keep-alive",
        "te",
        "trailer",
        "proxy-authorization",
        "proxy-connection",
        "upgrade",
    ] {
        assert!(headers.get(gone).is_none(), "{gone} was forwarded: {headers}");
    }
    // hyper's client adds its own connection handling; the client's value
    // must not appear.
    if let Some(conn) = headers.get("connection") {
        assert!(!conn.to_string().contains("x-hop-named"), "{conn}");
    }
    assert_eq!(headers["x-end-to-end"][0], "kept");
}

//! The replay budget (issue 18, item 5): request bodies kept for a replay
//! after a 401 share `proxy.replay_budget_bytes` across all connections. A
//! body that finds the budget spent by others streams instead: the API's 401
//! for it reaches the client as it is (and the token is renewed); once the
//! budget is given back, bodies are kept and replayed again.

mod common;

use std::time::Duration;

use common::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

/// A JSON body of exactly `n` bytes.
fn body_of(n: usize) -> String {
    let pad = n - r#"{"pad":""}"#.len();
    format!(r#"{{"pad":"{}"}}"#, "x".repeat(pad))
}

#[tokio::test]
async fn a_body_beyond_the_replay_budget_streams_and_its_401_is_handed_back() {
    let api = start_api(Duration::from_secs(3600)).await;
    let extra = Extra {
        proxy: "replay_budget_bytes = 4096\n".into(),
        // Every revocation below may be met by a re-authentication.
        auth: "reauth_min_interval = \"1ms\"\n".into(),
        ..Extra::default()
    };
    let (sidecar, c) = ready_sidecar(&api, extra).await;

    // A client holds 3,000 bytes of the budget: its body is announced and
    // never finished.
    let mut staller = TcpStream::connect(sidecar.proxy).await.unwrap();
    let head = format!(
        "POST /api/v1/mock/echo HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: 3000\r\n\r\n{{\"pad\":\"",
        sidecar.proxy
    );
    staller.write_all(head.as_bytes()).await.unwrap();
    let admin = sidecar.admin_url("/metrics");
    let mut held = false;
    for _ in 0..250 {
        let text = String::from_utf8_lossy(&get(&c, &admin).await.body).into_owned();
        if metric(&text, "ethgas_sidecar_requests_in_flight") >= 1.0 {
            held = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(held, "the stalled request is in flight");

    // 3,000 more bytes do not fit: the body streams, and the API's 401 (the
    // token was revoked) comes back as it is.
    api.mock.revoke_access_tokens();
    let r = post_json(&c, &sidecar.url("/api/v1/mock/echo"), &body_of(3000)).await;
    assert_eq!(r.status, 401, "not replayed: {}", String::from_utf8_lossy(&r.body));
    let text = String::from_utf8_lossy(&get(&c, &admin).await.body).into_owned();
    assert_eq!(metric(&text, "ethgas_sidecar_replays_total"), 0.0);
    eventually(Duration::from_secs(10), "the background re-authentication", || {
        api.mock.counts().refreshes_ok == 1
    })
    .await;

    // A body that fits beside the stalled one is kept and replayed.
    api.mock.revoke_access_tokens();
    let small = body_of(1000);
    let r = post_json(&c, &sidecar.url("/api/v1/mock/echo"), &small).await;
    assert_eq!(r.status, 200, "replayed: {}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["data"]["body"], small.as_str());

    // The stalled client goes: its share comes back, and a 3,000-byte body
    // is replayed again.
    drop(staller);
    let big = body_of(3000);
    let mut replayed = false;
    for _ in 0..100 {
        api.mock.revoke_access_tokens();
        let r = post_json(&c, &sidecar.url("/api/v1/mock/echo"), &big).await;
        if r.status == 200 {
            assert_eq!(r.json()["data"]["body"], big.as_str());
            replayed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(replayed, "the budget came back once the stalled request ended");
}

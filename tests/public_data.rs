//! Public market data through an auth outage (issue #12, item 6): while the
//! sidecar holds no valid token (the API refuses or fails its logins), a
//! request under `proxy.public_prefixes` (`/api/v1/p/` by default) goes to the
//! API at once without `Authorization` — the API serves it without one —
//! instead of waiting and getting a 503. Private paths, and look-alikes of
//! public ones that an upstream would read as private, still wait and get the
//! 503; the prefix list follows a reload.

mod common;

use std::time::Duration;

use common::*;
use ethgas_mock::Fault;
use http::Request;
use http_body_util::Full;

/// Everything the mock answered apart from logins: public data, private
/// endpoints (accepted or refused), unknown paths.
fn seen(api: &Api) -> u64 {
    let c = api.mock.counts();
    c.public_requests + c.private_ok + c.private_unauthorized + c.not_found
}

/// A sidecar in front of an API whose login answers 500, once it has tried
/// (and failed) to log in.
async fn sidecar_in_a_login_outage(api: &Api, proxy: &str) -> (Sidecar, TestClient) {
    api.mock.set_login_fault(Fault::Status(500));
    let sidecar = start_sidecar(api, Extra::proxy(&format!("token_wait = \"300ms\"\n{proxy}"))).await;
    eventually(Duration::from_secs(10), "a failed login", || {
        api.mock.counts().faults_served >= 1
    })
    .await;
    (sidecar, client())
}

/// A 503 in the documented envelope, and what it says.
fn assert_no_token_envelope(r: &Reply, what: &str) {
    assert_eq!(r.status, 503, "{what}: {}", String::from_utf8_lossy(&r.body));
    let env = r.json();
    assert_eq!(env["code"], 503, "{what}: {env}");
    assert_eq!(env["data"], serde_json::Value::Null, "{what}: {env}");
    let msg = env["message"].as_str().unwrap_or_default();
    assert!(msg.starts_with("ethgas-sidecar: no valid token"), "{what}: {msg}");
}

async fn metric(c: &TestClient, sidecar: &Sidecar, name: &str) -> f64 {
    let text = String::from_utf8_lossy(&get(c, &sidecar.admin_url("/metrics")).await.body).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} not in /metrics:\n{text}"))
}

#[tokio::test]
async fn during_a_login_outage_public_data_goes_without_a_token_and_private_paths_get_503() {
    let api = start_api(Duration::from_secs(3600)).await;
    let (sidecar, c) = sidecar_in_a_login_outage(&api, "").await;

    let r = get(&c, &sidecar.url("/api/v1/p/ticker?symbol=ETH")).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let env = r.json();
    assert_eq!(env["code"], 200, "the API's own answer: {env}");
    assert_eq!(env["data"]["public"], true, "{env}");
    let counts = api.mock.counts();
    assert_eq!(counts.public_requests, 1);
    assert_eq!(counts.public_with_authorization, 0, "the API saw no Authorization");

    // A program's own Authorization is not forwarded either.
    let req = Request::get(sidecar.url("/api/v1/p/orderbook"))
        .header("authorization", "Bearer the-programs-own-token")
        .body(Full::default())
        .unwrap();
    let r = send(&c, req).await;
    assert_eq!(r.status, 200);
    let counts = api.mock.counts();
    assert_eq!(counts.public_requests, 2);
    assert_eq!(counts.public_with_authorization, 0, "the client's token was dropped");

    // A private path waits for the token, then gets the 503 envelope; the
    // API never sees it.
    let r = get(&c, &sidecar.url("/api/v1/user/info")).await;
    assert_no_token_envelope(&r, "private path");
    assert!(r.headers.contains_key("retry-after"));
    assert_eq!(api.mock.counts().private_ok + api.mock.counts().private_unauthorized, 0);

    assert_eq!(
        metric(&c, &sidecar, "ethgas_sidecar_public_without_token_total").await,
        2.0
    );
    assert_eq!(metric(&c, &sidecar, "ethgas_sidecar_tokens_injected_total").await, 0.0);
    assert_eq!(
        metric(&c, &sidecar, "ethgas_sidecar_client_authorization_overwritten_total").await,
        1.0,
        "the program's own Authorization is counted as replaced (here: removed)"
    );

    // The login recovers: public data carries the token again, as before.
    api.mock.set_login_fault(Fault::None);
    wait_ready(&c, sidecar.admin).await;
    let r = get(&c, &sidecar.url("/api/v1/p/ticker")).await;
    assert_eq!(r.status, 200);
    let counts = api.mock.counts();
    assert_eq!(counts.public_requests, 3);
    assert_eq!(
        counts.public_with_authorization, 1,
        "with a token held, it goes with the token"
    );
    let r = get(&c, &sidecar.url("/api/v1/user/info")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["data"]["username"], USER);
    assert_eq!(
        metric(&c, &sidecar, "ethgas_sidecar_public_without_token_total").await,
        2.0
    );
    assert_eq!(metric(&c, &sidecar, "ethgas_sidecar_tokens_injected_total").await, 2.0);
}

#[tokio::test]
async fn look_alikes_of_public_paths_wait_for_the_token_and_never_reach_the_api() {
    let api = start_api(Duration::from_secs(3600)).await;
    let (sidecar, c) = sidecar_in_a_login_outage(&api, "").await;
    let before = seen(&api);
    for path in [
        "/api/v1/p/../user/info",
        "/api/v1/p/%2e%2e/user/info",
        "/api/v1/p/%252e%252e/user/info",
        "/api/v1/p/..;/user/info",
        "/api/v1/p/x/..%2F..%2Fuser/info",
        "/API/V1/P/ticker",
        "/api/v1/P/ticker",
        "//api/v1/p/ticker",
        "/api/v1/p",
    ] {
        let r = get(&c, &sidecar.url(path)).await;
        assert_no_token_envelope(&r, path);
        assert_eq!(seen(&api), before, "{path}: the API saw nothing");
    }
    // The real thing, on the same sidecar.
    assert_eq!(get(&c, &sidecar.url("/api/v1/p/ticker")).await.status, 200);
    assert_eq!(seen(&api), before + 1);
    assert_eq!(api.mock.counts().public_with_authorization, 0);
}

#[tokio::test]
async fn an_empty_prefix_list_makes_public_paths_wait_like_any_other() {
    let api = start_api(Duration::from_secs(3600)).await;
    let (sidecar, c) = sidecar_in_a_login_outage(&api, "public_prefixes = []").await;
    let r = get(&c, &sidecar.url("/api/v1/p/ticker")).await;
    assert_no_token_envelope(&r, "public path with the feature off");
    assert_eq!(seen(&api), 0);
}

/// Edits the config file, sends SIGHUP, and waits for the `reloads`-th
/// reload to be logged.
async fn reload(proc: &Proc, files: &Files, from: &str, to: &str, reloads: usize) {
    let text = std::fs::read_to_string(&files.config).unwrap();
    assert!(text.contains(from), "{text}");
    std::fs::write(&files.config, text.replace(from, to)).unwrap();
    proc.signal("HUP");
    eventually(Duration::from_secs(10), "the reload", || {
        proc.log().matches("configuration reloaded").count() >= reloads
    })
    .await;
}

#[tokio::test]
async fn a_prefix_list_changed_by_sighup_takes_effect() {
    let api = start_api(Duration::from_secs(3600)).await;
    api.mock.set_login_fault(Fault::Status(500));
    let files = write_config(
        api.addr,
        PASSWORD,
        &Extra::proxy("token_wait = \"300ms\"\npublic_prefixes = []\n"),
    );
    let proc = Proc::spawn(&files.config, &[]).await;
    let c = client();
    eventually(Duration::from_secs(10), "a failed login", || {
        api.mock.counts().faults_served >= 1
    })
    .await;
    let url = |path: &str| format!("http://{}{path}", proc.proxy);
    assert_no_token_envelope(&get(&c, &url("/api/v1/p/ticker")).await, "before the reload");
    assert_eq!(seen(&api), 0);

    reload(
        &proc,
        &files,
        "public_prefixes = []",
        "public_prefixes = [\"/api/v1/p/\"]",
        1,
    )
    .await;
    let r = get(&c, &url("/api/v1/p/ticker")).await;
    assert_eq!(r.status, 200, "after the reload: {}", String::from_utf8_lossy(&r.body));
    assert_eq!(api.mock.counts().public_requests, 1);
    assert_eq!(api.mock.counts().public_with_authorization, 0);
    assert_no_token_envelope(&get(&c, &url("/api/v1/user/info")).await, "private after the reload");

    // And off again.
    reload(
        &proc,
        &files,
        "public_prefixes = [\"/api/v1/p/\"]",
        "public_prefixes = []",
        2,
    )
    .await;
    assert_no_token_envelope(&get(&c, &url("/api/v1/p/ticker")).await, "after the second reload");
    assert_eq!(api.mock.counts().public_requests, 1);
    let log = proc.log();
    assert!(!log.contains("take effect only after a restart"), "{log}");
}

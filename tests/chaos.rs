//! Chaos on the auth server while traffic flows.
//!
//! The mock's login and refresh are switched to a fault — 500, 503, garbage,
//! HTTP 200 with an error code, answers slower than `auth.timeout`,
//! connection resets, revoked refresh tokens, revoked access tokens — across
//! a scheduled refresh, then switched back. Throughout, a valid token exists,
//! so no client request may fail; after the fault clears the sidecar must be
//! healthy again within seconds; and the number of auth calls stays bounded.
//!
//! Timing: tokens live 10 s and are refreshed at half their life, so a fault
//! that starts after a refresh meets the next one with 4 s of validity left.

mod common;

use std::time::Duration;

use common::*;
use ethgas_mock::{Counts, Fault, Mock};
use tokio::time::Instant;

fn successes(c: &Counts) -> u64 {
    c.logins_ok + c.refreshes_ok
}

/// Runs one fault across a scheduled refresh and checks the outcome.
async fn survive(name: &str, apply: impl Fn(&Mock), clear: impl Fn(&Mock)) {
    let api = start_api(Duration::from_secs(10)).await;
    let sidecar = start_sidecar(&api, Extra::auth("refresh_ratio = 0.5\ntimeout = \"700ms\"")).await;
    let c = client();
    wait_ready(&c, sidecar.admin).await;
    let load = Traffic::start(sidecar.proxy, 4, Load::ReadsAndWrites);

    // Start the fault right after the login, so it meets the first refresh.
    let before = api.mock.counts();
    let admin = sidecar.admin;
    apply(&api.mock);
    let applied = Instant::now();
    eventually(
        Duration::from_secs(10),
        &format!("{name}: the refresh to meet the fault"),
        || {
            let now = api.mock.counts();
            now.faults_served + now.refreshes_refused > before.faults_served + before.refreshes_refused
        },
    )
    .await;
    // Let it fail a few times, then heal.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let during = api.mock.counts();
    clear(&api.mock);
    let cleared = Instant::now();
    // Healthy: a valid token and no failure since the last success.
    loop {
        let r = get(&c, &format!("http://{admin}/readyz")).await;
        if r.status == 200 && r.json()["data"]["consecutive_failures"] == 0 {
            break;
        }
        assert!(
            cleared.elapsed() < Duration::from_secs(10),
            "{name}: not healthy 10 s after the fault cleared"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let recovery = cleared.elapsed();
    assert!(
        successes(&api.mock.counts()) > successes(&before),
        "{name}: the token was renewed"
    );
    let _ = during;
    // More traffic on the new token.
    let ok_then = load.ok();
    eventually(Duration::from_secs(5), "traffic after recovery", || {
        load.ok() > ok_then + 20
    })
    .await;
    let (ok, failed) = load.finish().await;

    let after = api.mock.counts();
    let auth_calls = after.auth_calls() - before.auth_calls();
    eprintln!(
        "{name}: {ok} requests ok, {failed} failed, fault lasted {:?}, recovered {recovery:?} after it cleared, {auth_calls} auth calls",
        cleared - applied
    );
    assert_eq!(failed, 0, "{name}: no request may fail while a valid token exists");
    assert!(ok > 50, "{name}: traffic flowed ({ok})");
    assert!(
        recovery < Duration::from_secs(3),
        "{name}: healthy {recovery:?} after the fault cleared"
    );
    assert!(auth_calls <= 15, "{name}: {auth_calls} auth calls — a storm");
    assert_eq!(after.expired_in_use, 0, "{name}: an expired token was sent");
    let ready = get(&c, &sidecar.admin_url("/readyz")).await;
    assert_eq!(ready.status, 200, "{name}");
    assert_eq!(ready.json()["data"]["consecutive_failures"], 0, "{name}");
}

fn both(fault: Fault) -> impl Fn(&Mock) {
    move |m: &Mock| {
        m.set_login_fault(fault);
        m.set_refresh_fault(fault);
    }
}

fn none(m: &Mock) {
    m.set_login_fault(Fault::None);
    m.set_refresh_fault(Fault::None);
}

#[tokio::test]
async fn auth_server_answering_500() {
    survive("500", both(Fault::Status(500)), none).await;
}

#[tokio::test]
async fn auth_server_answering_503() {
    survive("503", both(Fault::Status(503)), none).await;
}

#[tokio::test]
async fn auth_server_answering_garbage() {
    survive("garbage", both(Fault::Garbage), none).await;
}

#[tokio::test]
async fn auth_server_answering_200_with_an_error_code() {
    survive("error code", both(Fault::ErrorCode), none).await;
}

#[tokio::test]
async fn auth_server_slower_than_the_timeout() {
    survive("slow", both(Fault::Slow(Duration::from_secs(3))), none).await;
}

#[tokio::test]
async fn auth_server_resetting_connections() {
    survive("reset", both(Fault::Reset), none).await;
}

#[tokio::test]
async fn refresh_tokens_revoked() {
    // The refresh is refused (401); the sidecar falls back to a login.
    survive("refresh revoked", |m| m.set_refresh_fault(Fault::Status(401)), none).await;
}

#[tokio::test]
async fn access_tokens_revoked_mid_flight() {
    let api = start_api(Duration::from_secs(3600)).await;
    // Three revocations within a second: each must be renewed, so the floor
    // between client-triggered re-authentications (10 s by default, which
    // would pass the second and third revocations' 401s on) is lowered.
    let (sidecar, _c) = ready_sidecar(&api, Extra::auth("reauth_min_interval = \"1ms\"")).await;
    let load = Traffic::start(sidecar.proxy, 4, Load::ReadsAndWrites);
    for round in 1..=3 {
        let ok = load.ok();
        eventually(Duration::from_secs(5), "traffic", || load.ok() > ok + 20).await;
        api.mock.revoke_access_tokens();
        eventually(Duration::from_secs(5), "the re-authentication", || {
            api.mock.counts().refreshes_ok == round
        })
        .await;
    }
    let (ok, failed) = load.finish().await;
    let counts = api.mock.counts();
    eprintln!(
        "revoked mid-flight x3: {ok} ok, {failed} failed, {} upstream 401s, {} refreshes",
        counts.private_unauthorized, counts.refreshes_ok
    );
    assert_eq!(failed, 0, "every request that met a revoked token was replayed");
    assert!(counts.private_unauthorized >= 3);
    assert_eq!(counts.refreshes_ok, 3, "one re-authentication per revocation");
    assert_eq!(counts.logins_ok, 1);
}

#[tokio::test]
async fn a_long_outage_is_retried_with_bounded_backoff() {
    // Login fails for 6 s at start: attempts back off (250 ms doubling,
    // with jitter) instead of hammering the API.
    let api = start_api(Duration::from_secs(3600)).await;
    api.mock.set_login_fault(Fault::Status(500));
    let sidecar = start_sidecar(&api, Extra::default()).await;
    let c = client();
    let started = Instant::now();
    eventually(Duration::from_secs(5), "the first attempt", || {
        api.mock.counts().faults_served >= 1
    })
    .await;
    while started.elapsed() < Duration::from_secs(6) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let attempts = api.mock.counts().faults_served;
    assert!((3..=8).contains(&attempts), "{attempts} attempts in 6 s");
    api.mock.set_login_fault(Fault::None);
    let healed = Instant::now();
    wait_ready(&c, sidecar.admin).await;
    // The next attempt comes within the current backoff step (≤ 8 s at this point).
    assert!(healed.elapsed() < Duration::from_secs(9), "{:?}", healed.elapsed());
}

#[tokio::test]
async fn an_api_that_rejects_every_token_gets_no_reauthentication_storm() {
    let api = start_api(Duration::from_secs(3600)).await;
    let (sidecar, c) = ready_sidecar(&api, Extra::default()).await;
    assert_eq!(get(&c, &sidecar.url("/api/v1/user/info")).await.status, 200);
    api.mock.set_reject_all(true);
    let load = Traffic::start(sidecar.proxy, 4, Load::ReadsAndWrites);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(6) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, failed) = load.finish().await;
    let counts = api.mock.counts();
    eprintln!(
        "rejects everything for 6 s: {failed} requests got the API's 401, {} refreshes, {} logins",
        counts.refreshes_ok, counts.logins_ok
    );
    assert!(failed > 100, "the API's 401s are passed through");
    // One at once (the token had worked), then 2 s, 4 s... apart.
    assert!(counts.refreshes_ok + counts.logins_ok - 1 <= 3, "{counts:?}");
    api.mock.set_reject_all(false);
}

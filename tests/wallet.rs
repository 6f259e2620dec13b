//! The wallet login (`auth.method = "wallet"`) end to end, as a user runs it:
//! a key file (or keystore) and a config, the sidecar in front of the mock
//! API's live flavour, and programs that send requests without any token.
//!
//! What a user would notice is asserted: `/readyz` and its JSON, the status
//! and body of forwarded and refused requests, `check-config`'s output and
//! exit code, the log — and what the mock counted (challenges, verifies,
//! refreshes, refreshes on an ended session, expired tokens in use).
//! Timing comes from short configured lifetimes with generous bounds.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::keystores::{GETH_31_BYTE, GETH_31_BYTE_SECRET, SPEC_PBKDF2, SPEC_SECRET};
use common::*;
use ethgas_mock::{Fault, Flavour, MockConfig};
use ethgas_sidecar::eth::{Address, WalletKey};
use serde_json::Value;
use tokio::time::Instant;

const HOUR: Duration = Duration::from_secs(3600);

fn address_of(secret_hex: &str) -> Address {
    WalletKey::from_hex(secret_hex).unwrap().address()
}

/// A wallet sidecar (key in a 0600 file) in front of `api`, ready.
async fn wallet_sidecar(api: &Api, key_hex: &str, extra: Extra) -> (Sidecar, TestClient) {
    let sidecar = start_from_files(write_wallet_config(api.addr, key_hex, &extra)).await;
    let c = client();
    wait_ready(&c, sidecar.admin).await;
    (sidecar, c)
}

/// The `data` of `/readyz`, and its status.
async fn readyz(c: &TestClient, admin: std::net::SocketAddr) -> (u16, Value) {
    let r = get(c, &format!("http://{admin}/readyz")).await;
    (r.status.as_u16(), r.json()["data"].clone())
}

/// What steady traffic saw.
#[derive(Debug, Default)]
struct Traffic {
    ok: u64,
    failed: u64,
    /// The first few failures: status and body.
    samples: Vec<String>,
}

/// `clients` programs sending `GET path` through the sidecar back to back
/// (a short pause between requests) for `length`.
async fn steady_traffic(sidecar: &Sidecar, c: &TestClient, clients: usize, length: Duration) -> Traffic {
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let samples = Arc::new(std::sync::Mutex::new(Vec::new()));
    let until = Instant::now() + length;
    let url = sidecar.url("/api/v1/user/info");
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let (c, url, ok, failed, samples) = (c.clone(), url.clone(), ok.clone(), failed.clone(), samples.clone());
            tokio::spawn(async move {
                while Instant::now() < until {
                    let r = get(&c, &url).await;
                    if r.status == 200 && r.json()["success"] == true {
                        ok.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failed.fetch_add(1, Ordering::Relaxed);
                        let mut s = samples.lock().unwrap();
                        if s.len() < 5 {
                            s.push(format!("{} {}", r.status, String::from_utf8_lossy(&r.body)));
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    let samples = samples.lock().unwrap().clone();
    Traffic {
        ok: ok.load(Ordering::Relaxed),
        failed: failed.load(Ordering::Relaxed),
        samples,
    }
}

// ---------------------------------------------------------------------------
// 1. Login by signature

#[tokio::test]
async fn wallet_login_by_signature_makes_the_sidecar_ready_and_forwards_with_the_live_token() {
    let (hex, key) = random_key_hex();
    let address = key.address();
    let api = start_live_api(address, Duration::from_secs(600), HOUR).await;
    let started = Instant::now();
    let (sidecar, c) = wallet_sidecar(&api, &hex, Extra::default()).await;
    println!("wallet login: ready {} ms after start", started.elapsed().as_millis());

    // /readyz names the account by its checksummed address.
    let (status, data) = readyz(&c, sidecar.admin).await;
    assert_eq!(status, 200, "{data}");
    assert_eq!(data["state"], "logged_in", "{data}");
    let checksummed = address.to_string();
    assert_ne!(
        checksummed,
        checksummed.to_lowercase(),
        "a checksummed form has capitals"
    );
    assert_eq!(data["address"], checksummed.as_str(), "{data}");
    assert!(!data.to_string().contains(USER), "{data}");
    assert_eq!(data["logins"], 1, "{data}");
    let expires = data["token_expires_in_seconds"].as_f64().unwrap();
    assert!(
        (590.0..=600.0).contains(&expires),
        "the JWT exp gives the lifetime: {data}"
    );

    // A program's private request: no token from it, the live token added.
    let r = get(&c, &sidecar.url("/api/v1/user/info")).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert_eq!(v["success"], true, "{v}");
    assert_eq!(v["data"]["user"]["address"], format!("{:#x}", address).as_str(), "{v}");

    let n = api.mock.counts();
    assert_eq!((n.live_challenges, n.live_verifies_ok), (1, 1), "{n:?}");
    assert_eq!((n.live_challenges_refused, n.live_verifies_refused), (0, 0), "{n:?}");
    assert_eq!((n.private_ok, n.private_unauthorized), (1, 0), "{n:?}");
    assert_eq!(
        n.logins_ok + n.logins_refused,
        0,
        "nothing of the password login: {n:?}"
    );
}

// ---------------------------------------------------------------------------
// 2. Refresh

#[tokio::test]
async fn short_access_tokens_are_refreshed_by_cookie_under_steady_traffic() {
    let (hex, key) = random_key_hex();
    let api = start_live_api(key.address(), Duration::from_secs(3), HOUR).await;
    // A refresh every ~2.25 s is faster than the default pace (5 s on
    // average, bursts of 4) allows: with it the fourth refresh waits until
    // 10 s after the login and the token lapses from ~9 s, which a slow run
    // reached before its last /readyz. This test is about refreshing, not
    // pacing (tests/auth_policy.rs covers that): pace out of the way.
    let (sidecar, c) = wallet_sidecar(&api, &hex, Extra::auth("min_call_interval = \"100ms\"")).await;

    let t = steady_traffic(&sidecar, &c, 4, Duration::from_secs(8)).await;
    let n = api.mock.counts();
    println!("refresh: {t:?}; mock: {n}");
    assert_eq!(t.failed, 0, "no request failed: {:?}", t.samples);
    assert!(t.ok >= 100, "traffic flowed: {t:?}");
    assert!(n.live_refreshes_ok >= 2, "refreshed every ~2.25 s: {n:?}");
    assert_eq!(n.live_refreshes_refused, 0, "{n:?}");
    assert_eq!(
        (n.live_challenges, n.live_verifies_ok),
        (1, 1),
        "one wallet login: {n:?}"
    );
    assert_eq!(n.expired_in_use, 0, "no expired token was sent: {n:?}");
    assert_eq!(n.private_unauthorized, 0, "{n:?}");
    let (status, data) = readyz(&c, sidecar.admin).await;
    assert_eq!(status, 200, "{data}");
    assert!(data["refreshes"].as_u64() >= Some(2), "{data}");
}

// ---------------------------------------------------------------------------
// 3. Session end

#[tokio::test]
async fn a_session_that_ends_is_renewed_by_a_wallet_login_before_it_ends() {
    let (hex, key) = random_key_hex();
    let api = start_live_api(key.address(), Duration::from_secs(4), Duration::from_secs(10)).await;
    // 4 s tokens renewed as they ask, faster than the default pace of auth
    // calls (which would let them lapse between renewals).
    let (sidecar, c) = wallet_sidecar(&api, &hex, Extra::auth("min_call_interval = \"100ms\"")).await;

    let t = steady_traffic(&sidecar, &c, 4, Duration::from_secs(16)).await;
    let n = api.mock.counts();
    println!("session end: {t:?}; mock: {n}");
    assert_eq!(t.failed, 0, "no request failed: {:?}", t.samples);
    assert!(t.ok >= 100, "traffic flowed: {t:?}");
    assert!(n.live_challenges >= 2, "logged in again by wallet: {n:?}");
    // Every challenge was signed and accepted (the last may be in flight).
    assert!(n.live_verifies_ok + 1 >= n.live_challenges, "{n:?}");
    assert_eq!(n.live_verifies_refused, 0, "{n:?}");
    assert_eq!(
        n.live_refreshes_on_ended_session, 0,
        "no refresh on an ended session: {n:?}"
    );
    assert_eq!(n.live_refreshes_refused, 0, "{n:?}");
    assert_eq!(n.expired_in_use, 0, "no expired token was sent: {n:?}");
    assert_eq!(n.private_unauthorized, 0, "{n:?}");
}

// ---------------------------------------------------------------------------
// 4. Refused refresh → wallet login

#[tokio::test]
async fn sessions_ended_by_the_api_fall_back_to_a_wallet_login_under_traffic() {
    let (hex, key) = random_key_hex();
    let api = start_live_api(key.address(), Duration::from_secs(600), HOUR).await;
    let (sidecar, c) = wallet_sidecar(&api, &hex, Extra::default()).await;

    let traffic = {
        let (sidecar_url, c) = (sidecar.url("/api/v1/user/info"), c.clone());
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            let until = Instant::now() + Duration::from_secs(4);
            while Instant::now() < until {
                let r = get(&c, &sidecar_url).await;
                statuses.push(r.status.as_u16());
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            statuses
        })
    };
    // Under that traffic, the API ends the session: its access token stops
    // working and a refresh is refused as on an ended session.
    eventually(Duration::from_secs(5), "some traffic", || {
        api.mock.counts().private_ok >= 10
    })
    .await;
    api.mock.end_sessions();
    eventually(Duration::from_secs(10), "a new wallet login", || {
        api.mock.counts().live_verifies_ok >= 2
    })
    .await;
    let statuses = traffic.await.unwrap();
    let n = api.mock.counts();
    let failed = statuses.iter().filter(|s| **s != 200).count();
    println!(
        "ended sessions: {} requests, {failed} failed; mock: {n}",
        statuses.len()
    );
    assert_eq!(failed, 0, "the 401s were replayed with the new token: {statuses:?}");
    assert_eq!(
        (n.live_challenges, n.live_verifies_ok),
        (2, 2),
        "one more wallet login: {n:?}"
    );
    // The sidecar could not know the session had ended: one refresh tried,
    // refused, then the wallet login.
    assert!(n.live_refreshes_on_ended_session <= 1, "{n:?}");
    assert!(
        n.private_unauthorized >= 1,
        "the API refused the ended session's token: {n:?}"
    );
    assert!(n.private_unauthorized <= 4, "bounded 401s (each replayed once): {n:?}");
    let (status, data) = readyz(&c, sidecar.admin).await;
    assert_eq!((status, &data["logins"]), (200, &Value::from(2)), "{data}");
}

// ---------------------------------------------------------------------------
// 5. Rejected key

#[tokio::test]
async fn a_key_the_api_does_not_know_is_refused_retried_slowly_and_named_in_readyz() {
    let (hex, key) = random_key_hex();
    let other = WalletKey::random();
    let api = start_live_api(other.address(), Duration::from_secs(600), HOUR).await;
    let sidecar = start_from_files(write_wallet_config(
        api.addr,
        &hex,
        &Extra::proxy("token_wait = \"200ms\""),
    ))
    .await;
    let c = client();
    let started = Instant::now();

    eventually(Duration::from_secs(5), "the first refusal", || {
        api.mock.counts().live_challenges_refused >= 1
    })
    .await;
    let mut data = Value::Null;
    for _ in 0..100 {
        let (status, d) = readyz(&c, sidecar.admin).await;
        assert_eq!(status, 503, "{d}");
        if d["state"] == "credentials_rejected" {
            data = d;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(data["state"], "credentials_rejected", "{data}");
    let address = key.address().to_string();
    assert_eq!(data["address"], address.as_str(), "{data}");
    let last_error = data["last_error"].as_str().unwrap_or_default();
    println!("rejected key: /readyz last_error = {last_error:?}");
    assert!(last_error.contains(&address), "names the address: {last_error}");
    assert!(last_error.contains("1001"), "quotes errorCode: {last_error}");
    assert!(
        last_error.contains("error.login.address_unknown"),
        "quotes errorMsgKey: {last_error}"
    );

    // A program meanwhile: 503 in the live envelope, saying what to fix.
    let r = get(&c, &sidecar.url("/api/v1/user/info")).await;
    assert_eq!(r.status, 503);
    let v = r.json();
    assert_eq!(v["errorMsgKey"], "ethgas-sidecar.no_token", "{v}");
    assert!(v["errorMsg"].as_str().unwrap().contains("credentials"), "{v}");

    // Slow backoff: no more than 3 challenges in 8 s.
    tokio::time::sleep_until(started + Duration::from_secs(8)).await;
    let n = api.mock.counts();
    println!("rejected key: mock in 8 s: {n}");
    assert!(
        (2..=3).contains(&n.live_challenges_refused),
        "retried slowly (5 s base): {n:?}"
    );
    assert_eq!(
        n.live_challenges + n.live_verifies_ok + n.live_verifies_refused,
        0,
        "{n:?}"
    );
}

// ---------------------------------------------------------------------------
// 6. The live envelope for the sidecar's own errors

#[tokio::test]
async fn the_sidecars_own_503_and_502_are_in_the_live_envelope_with_retry_after() {
    let (hex, key) = random_key_hex();
    let api = start_live_api(key.address(), Duration::from_secs(600), HOUR).await;

    // The API's login is down (503): no token, so the sidecar answers 503.
    api.mock.set_login_fault(Fault::Status(503));
    let sidecar = start_from_files(write_wallet_config(
        api.addr,
        &hex,
        &Extra::proxy("token_wait = \"300ms\""),
    ))
    .await;
    let c = client();
    eventually(Duration::from_secs(5), "a failed login", || {
        api.mock.counts().faults_served >= 1
    })
    .await;
    let r = get(&c, &sidecar.url("/api/v1/user/info")).await;
    let v = r.json();
    println!("503: {v}");
    assert_eq!(r.status, 503, "{v}");
    assert_eq!(v["success"], false, "{v}");
    assert_eq!(v["errorCode"], 503, "{v}");
    assert_eq!(v["errorMsgKey"], "ethgas-sidecar.no_token", "{v}");
    assert!(v["errorMsg"].as_str().unwrap().starts_with("ethgas-sidecar: "), "{v}");
    assert_eq!(v["data"], Value::Null, "{v}");
    assert_eq!(v.as_object().unwrap().len(), 5, "exactly the live envelope: {v}");
    assert!(v.get("code").is_none() && v.get("message").is_none(), "{v}");
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");

    // The login recovers; then the API goes away: 502.
    api.mock.set_login_fault(Fault::None);
    wait_ready(&c, sidecar.admin).await;
    assert_eq!(get(&c, &sidecar.url("/api/v1/user/info")).await.status, 200);
    api.stop();
    let mut answer = None;
    for _ in 0..50 {
        let r = get(&c, &sidecar.url("/api/v1/user/info")).await;
        if r.status == 502 {
            answer = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = answer.expect("a 502 once the API is gone");
    let v = r.json();
    println!("502: {v}");
    assert_eq!(v["success"], false, "{v}");
    assert_eq!(v["errorCode"], 502, "{v}");
    let key = v["errorMsgKey"].as_str().unwrap();
    assert!(
        key == "ethgas-sidecar.unreachable" || key == "ethgas-sidecar.bad_gateway",
        "{v}"
    );
    assert!(v["errorMsg"].as_str().unwrap().starts_with("ethgas-sidecar: "), "{v}");
    assert_eq!(v["data"], Value::Null, "{v}");
    assert_eq!(r.headers["retry-after"], "1");
}

// ---------------------------------------------------------------------------
// 7. Keystore unlock

#[tokio::test]
async fn a_v3_keystore_unlocked_with_its_password_file_logs_in() {
    let address = address_of(GETH_31_BYTE_SECRET);
    let api = start_live_api(address, Duration::from_secs(600), HOUR).await;
    let dir = tempfile::tempdir().unwrap();
    let keystore = dir.path().join("keystore.json");
    std::fs::write(&keystore, GETH_31_BYTE).unwrap();
    let password = dir.path().join("keystore.password");
    write_private(&password, "foo\n");
    let config = dir.path().join("config.toml");
    let key_lines = format!(
        "keystore_file = {:?}\nkeystore_password_file = {:?}",
        keystore.display().to_string(),
        password.display().to_string()
    );
    std::fs::write(&config, wallet_config_text(api.addr, &key_lines, &Extra::default())).unwrap();
    let files = Files { dir, config, password };
    let sidecar = start_from_files(files).await;
    let c = client();
    wait_ready(&c, sidecar.admin).await;
    let (_, data) = readyz(&c, sidecar.admin).await;
    assert_eq!(data["address"], address.to_string().as_str(), "{data}");
    let r = get(&c, &sidecar.url("/api/v1/user/info")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["data"]["user"]["address"], format!("{:#x}", address).as_str());
    let n = api.mock.counts();
    assert_eq!((n.live_challenges, n.live_verifies_ok), (1, 1), "{n:?}");
}

#[tokio::test]
async fn check_config_unlocks_a_pbkdf2_keystore_and_refuses_a_wrong_password_without_printing_it() {
    let dir = tempfile::tempdir().unwrap();
    let keystore = dir.path().join("keystore.json");
    std::fs::write(&keystore, SPEC_PBKDF2).unwrap();
    let password = dir.path().join("keystore.password");
    let config = dir.path().join("config.toml");
    let key_lines = format!(
        "keystore_file = {:?}\nkeystore_password_file = {:?}",
        keystore.display().to_string(),
        password.display().to_string()
    );
    let api: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
    std::fs::write(&config, wallet_config_text(api, &key_lines, &Extra::default())).unwrap();

    // The right password: the address, never the key.
    write_private(&password, "testpassword\n");
    let started = std::time::Instant::now();
    let (code, out, err) = check_config(&config, &[]);
    println!(
        "check-config with a pbkdf2 (c = 262144) keystore: {} ms",
        started.elapsed().as_millis()
    );
    assert_eq!(code, Some(0), "{out}{err}");
    let address = address_of(SPEC_SECRET).to_string();
    assert!(out.contains(&address), "names the address: {out}");
    assert!(out.contains("method = \"wallet\""), "{out}");
    assert!(!out.contains(SPEC_SECRET) && !err.contains(SPEC_SECRET), "{out}{err}");
    assert!(
        !out.contains("testpassword") && !err.contains("testpassword"),
        "{out}{err}"
    );

    // A wrong password: exit 1, naming auth.keystore_file, not the password.
    let wrong = "Tr0ub4dor&3-not-it";
    write_private(&password, &format!("{wrong}\n"));
    let (code, out, err) = check_config(&config, &[]);
    println!("wrong keystore password: {}", err.trim());
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(err.contains("auth.keystore_file"), "{err}");
    assert!(err.contains("wrong password"), "{err}");
    assert!(!err.contains(wrong) && !out.contains(wrong), "{out}{err}");
    assert!(!err.contains(SPEC_SECRET), "{err}");
}

// ---------------------------------------------------------------------------
// 8. File permissions

/// `ethgas-sidecar run` on `config`: it must refuse to start (exit 1) before
/// listening; its stderr.
fn start_refused(config: &std::path::Path) -> String {
    let out = std::process::Command::new(binary())
        .arg("run")
        .arg("--config")
        .arg(config)
        .env_remove("RUST_LOG")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("LISTEN_FDS")
        .env_remove("CREDENTIALS_DIRECTORY")
        .output()
        .expect("binary runs");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    err
}

fn chmod(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[tokio::test]
async fn key_and_keystore_password_files_readable_by_others_are_refused_with_the_chmod_that_fixes_it() {
    let (hex, _) = random_key_hex();
    let api: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();

    let files = write_wallet_config(api, &hex, &Extra::default());
    chmod(&files.password, 0o644);
    let err = start_refused(&files.config);
    println!("key file 0644: {}", err.trim());
    assert!(err.contains("auth.private_key_file"), "{err}");
    assert!(
        err.contains(&format!("chmod 600 {}", files.password.display())),
        "{err}"
    );
    assert!(!err.contains(&hex), "{err}");
    chmod(&files.password, 0o640);
    let (code, _, err) = check_config(&files.config, &[]);
    assert_eq!(code, Some(1), "group-readable is refused too: {err}");
    chmod(&files.password, 0o400);
    let (code, _, err) = check_config(&files.config, &[]);
    assert_eq!(code, Some(0), "read-only for the owner is fine: {err}");

    let dir = tempfile::tempdir().unwrap();
    let keystore = dir.path().join("keystore.json");
    std::fs::write(&keystore, GETH_31_BYTE).unwrap();
    let password = dir.path().join("keystore.password");
    std::fs::write(&password, "foo\n").unwrap();
    chmod(&password, 0o644);
    let config = dir.path().join("config.toml");
    let key_lines = format!(
        "keystore_file = {:?}\nkeystore_password_file = {:?}",
        keystore.display().to_string(),
        password.display().to_string()
    );
    std::fs::write(&config, wallet_config_text(api, &key_lines, &Extra::default())).unwrap();
    let err = start_refused(&config);
    println!("keystore password file 0644: {}", err.trim());
    assert!(err.contains("auth.keystore_password_file"), "{err}");
    assert!(err.contains(&format!("chmod 600 {}", password.display())), "{err}");
}

#[tokio::test]
async fn a_key_from_a_systemd_credential_is_accepted_whatever_its_mode() {
    let (hex, key) = random_key_hex();
    let dir = tempfile::tempdir().unwrap();
    let credentials = dir.path().join("credentials");
    std::fs::create_dir(&credentials).unwrap();
    let credential = credentials.join("wallet-key");
    std::fs::write(&credential, format!("{hex}\n")).unwrap();
    chmod(&credential, 0o644);
    let config = dir.path().join("config.toml");
    let api: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
    std::fs::write(
        &config,
        wallet_config_text(api, "private_key_credential = \"wallet-key\"", &Extra::default()),
    )
    .unwrap();

    let (code, out, err) = check_config(&config, &[("CREDENTIALS_DIRECTORY", credentials.to_str().unwrap())]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains(&key.address().to_string()), "{out}");
    assert!(out.contains("private_key_credential = \"wallet-key\""), "{out}");
    assert!(!out.contains(&hex) && !err.contains(&hex), "{out}{err}");

    // Without systemd's directory: check-config passes with a note that the
    // key is read at start; `run` is refused with a message that says what to do.
    let (code, _, err) = check_config(&config, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("note: auth.private_key_credential") && err.contains("LoadCredential="),
        "{err}"
    );
    let run = std::process::Command::new(binary())
        .args(["run", "--config"])
        .arg(&config)
        .env_remove("CREDENTIALS_DIRECTORY")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{err}");
    assert!(
        err.contains("auth.private_key_credential") && err.contains("LoadCredential="),
        "{err}"
    );
}

// ---------------------------------------------------------------------------
// 9. Secrets stay secret

#[tokio::test]
async fn the_key_and_every_token_stay_out_of_trace_logs_admin_answers_and_check_config() {
    let (hex, key) = random_key_hex();
    let address = key.address();
    let api = start_live_api(address, Duration::from_secs(2), HOUR).await;
    let files = write_wallet_config(api.addr, &hex, &Extra::default());
    let mut proc = Proc::spawn(&files.config, &[("RUST_LOG", "trace")]).await;
    let c = client();
    wait_ready(&c, proc.admin).await;

    // A login, refreshes, traffic.
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        let r = get(&c, &format!("http://{}/api/v1/user/info", proc.proxy)).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eventually(Duration::from_secs(5), "two refreshes", || {
        api.mock.counts().live_refreshes_ok >= 2
    })
    .await;
    let readyz = get(&c, &format!("http://{}/readyz", proc.admin)).await;
    assert_eq!(readyz.status, 200);
    let readyz = String::from_utf8_lossy(&readyz.body).into_owned();
    let metrics = get(&c, &format!("http://{}/metrics", proc.admin)).await;
    assert_eq!(metrics.status, 200);
    let metrics = String::from_utf8_lossy(&metrics.body).into_owned();
    let (code, check_out, check_err) = check_config(&files.config, &[]);
    assert_eq!(code, Some(0), "{check_err}");
    proc.signal("TERM");
    assert_eq!(proc.wait_exit(Duration::from_secs(15)).await.code(), Some(0));
    let log = proc.log();

    assert!(log.contains("TRACE"), "trace logging was on");
    assert!(log.contains("token refreshed"), "{log}");
    assert!(log.contains(&address.to_string()), "the log names the address: {log}");
    assert!(check_out.contains(&address.to_string()), "{check_out}");
    let n = api.mock.counts();
    assert_eq!(n.logouts, 1, "logged out at SIGTERM: {n:?}");
    println!("secrets: mock {n}; {} log bytes", log.len());
    if let Some(ms) = login_ms(&log) {
        println!("secrets: wallet login took {ms} ms in the log (\"logging in\" → \"logged in\")");
    }

    let places = [
        ("the log", log.as_str()),
        ("/readyz", readyz.as_str()),
        ("/metrics", metrics.as_str()),
        ("check-config's output", check_out.as_str()),
        ("check-config's stderr", check_err.as_str()),
    ];
    let key_forms = [
        hex.clone(),
        format!("0x{hex}"),
        hex.to_uppercase(),
        // Any 16-digit stretch of the key.
        hex[..16].to_string(),
        hex[24..40].to_string(),
        hex[48..].to_string(),
    ];
    let tokens = api.mock.issued_tokens();
    assert!(tokens.len() >= 5, "access and refresh tokens: {}", tokens.len());
    for (place, text) in places {
        for k in &key_forms {
            assert!(!text.contains(k.as_str()), "the key leaked into {place}");
        }
        for t in &tokens {
            assert!(!text.contains(t.as_str()), "a token leaked into {place}");
            let sig = t.rsplit('.').next().unwrap();
            assert!(!text.contains(sig), "a token's signature leaked into {place}");
        }
    }
}

/// Milliseconds from the first "logging in" line to the first "logged in"
/// line of a text log (RFC 3339 timestamps at the start of each line).
fn login_ms(log: &str) -> Option<i64> {
    let stamp = |needle: &str| {
        let line = log.lines().find(|l| l.contains(needle))?;
        let ts = line.split_whitespace().next()?;
        // 2024-01-01T00:00:00.123456Z: seconds of the day with fraction.
        let time = ts.split('T').nth(1)?.trim_end_matches('Z');
        let mut parts = time.split(':');
        let (h, m, s): (f64, f64, f64) = (
            parts.next()?.parse().ok()?,
            parts.next()?.parse().ok()?,
            parts.next()?.parse().ok()?,
        );
        Some(((h * 3600.0 + m * 60.0 + s) * 1000.0) as i64)
    };
    Some(stamp("logged in;")? - stamp("logging in")?)
}

// ---------------------------------------------------------------------------
// 10. auth.address

#[tokio::test]
async fn an_address_that_is_not_the_keys_is_a_config_error_naming_both() {
    let (hex, key) = random_key_hex();
    let other = WalletKey::random().address();
    let api: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
    let files = write_wallet_config(api, &hex, &Extra::auth(&format!("address = \"{other:#x}\"")));
    let (code, out, err) = check_config(&files.config, &[]);
    println!("auth.address mismatch: {}", err.trim());
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(err.contains("auth.address"), "{err}");
    let lower = err.to_lowercase();
    assert!(
        lower.contains(&format!("{:#x}", key.address())),
        "the key's address: {err}"
    );
    assert!(lower.contains(&format!("{other:#x}")), "the configured address: {err}");
    assert!(!err.contains(&hex), "{err}");

    // The right address, in any case, is accepted.
    let files = write_wallet_config(api, &hex, &Extra::auth(&format!("address = \"{:#x}\"", key.address())));
    let (code, out, err) = check_config(&files.config, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains(&key.address().to_string()), "{out}");
}

// ---------------------------------------------------------------------------
// Beyond the brief's list: what else a user of the wallet login runs into.

#[tokio::test]
async fn another_networks_chain_id_a_display_name_and_a_key_from_the_environment() {
    let (hex, key) = random_key_hex();
    // Hoodi's chain id: the typed data's domain is signed as sent.
    let api = start_api_with(MockConfig {
        flavour: Flavour::Live,
        address: Some(key.address()),
        chain_id: 560048,
        token_lifetime: Duration::from_secs(600),
        session_lifetime: HOUR,
        ..MockConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    // A name that needs percent-encoding in the query.
    let name = "bot 1/α&b=c+d";
    let var = format!("ETHGAS_TEST_KEY_{}", std::process::id());
    let key_lines = format!("private_key_env = \"{var}\"\ndisplay_name = \"{name}\"");
    std::fs::write(&config, wallet_config_text(api.addr, &key_lines, &Extra::default())).unwrap();
    let mut proc = Proc::spawn(&config, &[(var.as_str(), &format!("0x{hex}"))]).await;
    let c = client();
    wait_ready(&c, proc.admin).await;

    let r = get(&c, &format!("http://{}/api/v1/user/info", proc.proxy)).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let user = &r.json()["data"]["user"];
    assert_eq!(user["address"], format!("{:#x}", key.address()).as_str(), "{user}");
    assert_eq!(user["displayName"], name, "the name arrived whole: {user}");
    let n = api.mock.counts();
    assert_eq!(
        (n.live_challenges, n.live_verifies_ok, n.live_verifies_refused),
        (1, 1, 0),
        "{n:?}"
    );
    proc.signal("TERM");
    assert_eq!(proc.wait_exit(Duration::from_secs(15)).await.code(), Some(0));
    assert!(!proc.log().contains(&hex), "the key stays out of the log");
}

#[tokio::test]
async fn a_refused_verify_is_a_credential_failure_and_a_garbled_challenge_an_outage() {
    let (hex, key) = random_key_hex();
    let api = start_live_api(key.address(), Duration::from_secs(600), HOUR).await;
    // The verify refuses (HTTP 401 in the live envelope), as for a bad signature.
    api.mock.set_verify_fault(Fault::Status(401));
    let sidecar = start_from_files(write_wallet_config(api.addr, &hex, &Extra::default())).await;
    let c = client();
    eventually(Duration::from_secs(5), "a refused verify", || {
        api.mock.counts().faults_served >= 1
    })
    .await;
    let mut data = Value::Null;
    for _ in 0..100 {
        let (status, d) = readyz(&c, sidecar.admin).await;
        assert_eq!(status, 503, "{d}");
        if d["state"] == "credentials_rejected" {
            data = d;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let last_error = data["last_error"].as_str().unwrap_or_default().to_string();
    println!("refused verify: {last_error}");
    assert_eq!(data["state"], "credentials_rejected", "{data}");
    assert!(last_error.contains(&key.address().to_string()), "{last_error}");
    assert!(
        last_error.contains("code 401") && last_error.contains("error.injected_fault"),
        "{last_error}"
    );

    // The challenge comes back as something that is not typed data: an
    // outage (retried fast), not a refused key; then it heals.
    drop(sidecar);
    api.mock.set_verify_fault(Fault::None);
    api.mock.set_login_fault(Fault::Garbage);
    let before = api.mock.counts().faults_served;
    let sidecar = start_from_files(write_wallet_config(api.addr, &hex, &Extra::default())).await;
    eventually(Duration::from_secs(5), "two garbled challenges", || {
        api.mock.counts().faults_served >= before + 2
    })
    .await;
    let (status, data) = readyz(&c, sidecar.admin).await;
    assert_eq!((status, &data["state"]), (503, &Value::from("login_failing")), "{data}");
    api.mock.set_login_fault(Fault::None);
    wait_ready(&c, sidecar.admin).await;
    assert_eq!(get(&c, &sidecar.url("/api/v1/user/info")).await.status, 200);
}

/// A user's mistakes in `[auth]` of a wallet config: each is refused with a
/// message that names the key to fix, and none echoes the key's text.
#[tokio::test]
async fn wallet_config_mistakes_name_the_key_to_fix() {
    use ethgas_sidecar::config::{Config, ConfigError};
    let (hex, key) = random_key_hex();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    write_private(&dir.path().join("wallet.key"), &format!("0x{hex}\n"));
    write_private(&dir.path().join("keystore.json.key"), GETH_31_BYTE);
    write_private(&dir.path().join("not-hex.key"), &format!("0x{}zz\n", &hex[..62]));
    write_private(&dir.path().join("pw"), "foo\n");
    std::fs::write(dir.path().join("keystore.json"), GETH_31_BYTE).unwrap();
    let api: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
    let mixed_case_wrong = {
        // The right address with one letter's case flipped: a bad EIP-55 checksum.
        let a = key.address().to_string();
        let i = a[2..].find(|c: char| c.is_ascii_alphabetic()).unwrap() + 2;
        let c = a.as_bytes()[i] as char;
        let flipped = if c.is_ascii_uppercase() {
            c.to_ascii_lowercase()
        } else {
            c.to_ascii_uppercase()
        };
        format!("{}{flipped}{}", &a[..i], &a[i + 1..])
    };
    // (auth lines after `method`, the key the error names, a part of its text)
    let cases: Vec<(String, &str, &str)> = vec![
        (
            "private_key_file = \"wallet.key\"\nusername = \"alice\"".into(),
            "auth.username",
            "is not used with auth.method = \"wallet\"",
        ),
        (
            "private_key_file = \"wallet.key\"\nprivate_key_env = \"K\"".into(),
            "auth.private_key_file",
            "more than one key source",
        ),
        (
            "private_key_file = \"wallet.key\"\nkeystore_password_file = \"pw\"".into(),
            "auth.keystore_password_file",
            "no auth.keystore_file",
        ),
        (
            "private_key_file = \"wallet.key\"\nkeystore_password_env = \"PW\"".into(),
            "auth.keystore_password_env",
            "no auth.keystore_file",
        ),
        (
            "keystore_file = \"keystore.json\"".into(),
            "auth.keystore_password_file",
            "a keystore needs its password",
        ),
        (
            "keystore_file = \"keystore.json\"\nkeystore_password_file = \"pw\"\nkeystore_password_env = \"PW\"".into(),
            "auth.keystore_password_file",
            "more than one keystore password source",
        ),
        ("".into(), "auth.private_key_file", "needs the account's key"),
        (
            "private_key_file = \"keystore.json.key\"".into(),
            "auth.private_key_file",
            "looks like a JSON keystore",
        ),
        (
            "private_key_file = \"not-hex.key\"".into(),
            "auth.private_key_file",
            "not a hex digit",
        ),
        (
            "private_key_file = \"missing.key\"".into(),
            "auth.private_key_file",
            "cannot read private key file",
        ),
        (
            "private_key_file = \"wallet.key\"\naddress = \"0x1234\"".into(),
            "auth.address",
            "0x1234",
        ),
        (
            format!("private_key_file = \"wallet.key\"\naddress = \"{mixed_case_wrong}\""),
            "auth.address",
            "checksum",
        ),
        (
            "private_key_file = \"wallet.key\"\ndisplay_name = \"\"".into(),
            "auth.display_name",
            "1 to 64 printable characters",
        ),
        (
            format!(
                "private_key_file = \"wallet.key\"\ndisplay_name = \"{}\"",
                "x".repeat(65)
            ),
            "auth.display_name",
            "1 to 64 printable characters",
        ),
    ];
    for (lines, want_key, want_text) in &cases {
        let text = wallet_config_text(api, lines, &Extra::default());
        let err = match Config::from_toml(&text, &path) {
            Ok(_) => panic!("accepted:\n{lines}"),
            Err(e) => e,
        };
        let shown = err.to_string();
        match &err {
            ConfigError::Invalid { key, .. } => assert_eq!(key, want_key, "{lines}: {shown}"),
            other => panic!("{lines}: {other}"),
        }
        assert!(shown.contains(want_text), "{lines}: {shown}");
        assert!(!shown.contains(&hex[..16]), "{lines}: the key leaked: {shown}");
    }

    // Forgetting `method = "wallet"`: the password method says so.
    let text = wallet_config_text(api, "private_key_file = \"wallet.key\"", &Extra::default())
        .replace("method = \"wallet\"\n", "");
    let shown = Config::from_toml(&text, &path).err().unwrap().to_string();
    assert!(
        shown.contains("auth.private_key_file") && shown.contains("auth.method = \"password\""),
        "{shown}"
    );
    // The method in another case, and an address in lower case, are fine.
    let text = wallet_config_text(
        api,
        &format!("private_key_file = \"wallet.key\"\naddress = \"{:#x}\"", key.address()),
        &Extra::default(),
    )
    .replace("method = \"wallet\"", "method = \"Wallet\"");
    let config = Config::from_toml(&text, &path).unwrap();
    assert_eq!(config.live.auth.account(), key.address().to_string());
}

#[tokio::test]
async fn empty_or_unset_environment_sources_name_their_own_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(dir.path().join("keystore.json"), GETH_31_BYTE).unwrap();
    let api: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
    let var = format!("ETHGAS_TEST_SECRET_{}", std::process::id());
    // (auth lines, environment, the key the error names, a part of its text)
    let cases = [
        (
            format!("private_key_env = \"{var}\""),
            None,
            "auth.private_key_env",
            "is not set",
        ),
        (
            format!("private_key_env = \"{var}\""),
            Some(""),
            "auth.private_key_env",
            "not 64 hex digits",
        ),
        (
            format!("keystore_file = \"keystore.json\"\nkeystore_password_env = \"{var}\""),
            Some(""),
            "auth.keystore_password_env",
            "is empty",
        ),
        (
            format!("keystore_file = \"keystore.json\"\nkeystore_password_env = \"{var}\""),
            Some("foo"),
            "",
            "",
        ),
    ];
    for (lines, value, want_key, want_text) in cases {
        std::fs::write(&config, wallet_config_text(api, &lines, &Extra::default())).unwrap();
        let envs: Vec<(&str, &str)> = value.map(|v| (var.as_str(), v)).into_iter().collect();
        let (code, out, err) = check_config(&config, &envs);
        if want_key.is_empty() {
            assert_eq!(code, Some(0), "{lines}: {err}");
            assert!(out.contains(&address_of(GETH_31_BYTE_SECRET).to_string()), "{out}");
            continue;
        }
        assert_eq!(code, Some(1), "{lines}: {out}");
        assert!(err.contains(&format!("`{want_key}`")), "{lines}: {err}");
        assert!(err.contains(want_text), "{lines}: {err}");
    }
}

//! Conformance with a client nobody here wrote: the real `python-ethgas`
//! package from PyPI (pinned in tests/python/requirements.txt, installed by
//! .ci/run into target/ci-venv) driven through a wallet-mode sidecar in front
//! of the built-in live mock, by tests/python/drive_python_ethgas.py.
//!
//! The driver exercises `APIClient` (login, `user/info`, public and private
//! GETs, a POST order, refresh, re-login, logout) and `WsClient` (the
//! handshake with its own-origin `Origin`, the in-socket login, a
//! subscription, text and frame ping/pong, the socket after the sidecar's
//! token renewal) and prints one line per call. This test then checks on the
//! mock what only the API can see: none of the client's logins reached it,
//! every private call carried the sidecar's real token, the socket went to
//! `/ws` and its subscription through.
//!
//! The Python to use is `$ETHGAS_PYTHON`, else target/ci-venv/bin/python.
//! Without it the test is skipped with a message — unless `CI` is set, where
//! a missing venv is a failure.

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use common::*;
use ethgas_mock::{Flavour, MockConfig};
use serde_json::Value;

/// The interpreter of the venv with python-ethgas, if there is one.
fn python() -> Option<PathBuf> {
    let path = match std::env::var_os("ETHGAS_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/ci-venv/bin/python"),
    };
    path.exists().then_some(path)
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_ethgas_logs_in_trades_and_streams_through_the_sidecar_without_the_api_seeing_its_logins() {
    let Some(python) = python() else {
        assert!(
            !in_ci(),
            "CI is set but there is no python-ethgas venv: .ci/run creates target/ci-venv \
             (or set ETHGAS_PYTHON to a python with python-ethgas==0.3.0)"
        );
        // Straight to stderr, past the test harness's capture: a skip is seen.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED python_ethgas: no venv with python-ethgas (create it with .ci/run, or \
             `python3 -m venv target/ci-venv && target/ci-venv/bin/pip install -r tests/python/requirements.txt`, \
             or set ETHGAS_PYTHON)"
        );
        return;
    };
    let (hex, key) = random_key_hex();
    // Hoodi's chain id; 3 s tokens, so the sidecar renews its token during the run.
    let api = start_api_with(MockConfig {
        flavour: Flavour::Live,
        address: Some(key.address()),
        chain_id: 560048,
        token_lifetime: Duration::from_secs(3),
        session_lifetime: Duration::from_secs(7 * 86400),
        ..MockConfig::default()
    })
    .await;
    // The live hosts' socket endpoint is `/ws`, as the sidecar derives it for them.
    let extra = Extra::upstream(&format!("websocket_url = \"ws://{}/ws\"\n", api.addr));
    let sidecar = start_from_files(write_wallet_config(api.addr, &hex, &extra)).await;
    let c = client();
    wait_ready(&c, sidecar.admin).await;

    let driver = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/drive_python_ethgas.py");
    let run = tokio::process::Command::new(&python)
        .arg(&driver)
        .arg("--rest")
        .arg(format!("http://{}", sidecar.proxy))
        .arg("--ws")
        .arg(format!("ws://{}/ws", sidecar.proxy))
        .arg("--admin")
        .arg(format!("http://{}", sidecar.admin))
        .arg("--address")
        .arg(key.address().to_string())
        .arg("--chain-id")
        .arg("560048")
        .env_remove("HTTP_PROXY")
        .env_remove("http_proxy")
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy")
        .env_remove("ALL_PROXY")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(180), run)
        .await
        .expect("the driver finishes within 180 s")
        .expect("the venv's python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Shown in every run (CI's log too), past the harness's capture.
    let _ = writeln!(std::io::stderr(), "--- python-ethgas through the sidecar ---\n{stdout}");
    assert!(
        out.status.success() && stdout.contains("ALL PASS"),
        "the driver reported failures:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(!stdout.contains("FAIL"), "{stdout}");
    let private_calls: u64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("private calls: "))
        .and_then(|n| n.trim().parse().ok())
        .expect("the driver counts its private calls");

    // What the API saw.
    let n = api.mock.counts();
    let status: Value = get(&c, &sidecar.admin_url("/readyz")).await.json();
    let sidecar_logins = status["data"]["logins"].as_u64().unwrap();
    assert!(sidecar_logins >= 1, "{status}");
    assert_eq!(
        (n.live_challenges, n.live_verifies_ok),
        (sidecar_logins, sidecar_logins),
        "only the sidecar's own wallet logins reached the API (the client logged in twice): {n:?}"
    );
    assert_eq!(n.live_verifies_refused + n.live_challenges_refused, 0, "{n:?}");
    assert_eq!(n.logouts, 0, "the client's logout was answered by the sidecar: {n:?}");
    assert!(n.live_refreshes_ok >= 1, "the sidecar renewed its token: {n:?}");
    assert_eq!(n.live_refreshes_refused, 0, "{n:?}");
    assert!(
        n.private_ok >= private_calls,
        "every private call reached the API with a valid token ({private_calls} made): {n:?}"
    );
    assert_eq!(
        (n.private_unauthorized, n.expired_in_use),
        (0, 0),
        "no private call carried the client's placeholder or an expired token: {n:?}"
    );
    assert!(n.public_requests >= 1, "{n:?}");
    assert_eq!(api.mock.websocket_paths(), ["/ws"], "one socket, at the API's /ws");
    assert!(n.ws_bearer_ok >= 1, "the handshake carried the real token: {n:?}");
    assert!(
        n.ws_op_logins_ok >= 2,
        "the client's login (rewritten) and the sidecar's after its renewal: {n:?}"
    );
    assert_eq!(n.ws_op_logins_refused, 0, "{n:?}");
    assert!(n.ws_op_subscribes >= 1, "the subscription went through: {n:?}");
    assert!(n.ws_text_pings >= 1, "{n:?}");
    // The sidecar's own token never reached the program: it is not in its output.
    for token in api.mock.issued_tokens() {
        assert!(!stdout.contains(&token) && !stderr.contains(&token));
    }
}

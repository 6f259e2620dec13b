//! Least privilege: the calls that move money are refused unless a listener
//! is allowed them, each listener has its own policy, a reload changes it,
//! and every call that can change the account leaves an audit record.

mod common;

use std::time::Duration;

use common::*;
use http::{Method, Request};
use http_body_util::Full;
use serde_json::Value;

/// The money calls of the live API's reference, and look-alikes of them.
const MONEY_CALLS: &[&str] = &[
    "/api/v1/user/funding/withdraw",
    "/api/v1/user/account/transfer/token",
    "/api/v1/user/payoutAddress",
    "/api/v1/user/delegate/builder",
    "/api/v1/user/delegate/pricer",
    "/api/v1/builder/register",
    "/api/v1/validator/deregister",
    "/api/v1/validator/verify",
    "//api/v1/user/funding/withdraw/",
    "/api/v1/user/funding/%77ithdraw",
    "/api/v1/p/../user/funding/withdraw",
    "/API/V1/USER/FUNDING/WITHDRAW",
    "/api/v1/user/funding/withdraw.json",
];

fn forwarded(api: &Api) -> u64 {
    let c = api.mock.counts();
    c.private_ok + c.private_unauthorized + c.public_requests
}

fn audit_lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each audit line is JSON"))
        .collect()
}

#[tokio::test]
async fn a_default_sidecar_refuses_money_calls_with_403_and_the_api_sees_none() {
    let api = start_api(Duration::from_secs(3600)).await;
    let (sidecar, c) = ready_sidecar(&api, Extra::default()).await;
    let before = forwarded(&api);
    for path in MONEY_CALLS {
        let url = sidecar.url(path);
        let r = send(&c, Request::post(&url).body(Full::from(r#"{"amount":"1"}"#)).unwrap()).await;
        assert_eq!(r.status, 403, "{path}: {}", String::from_utf8_lossy(&r.body));
        let message = r.json()["message"].as_str().unwrap_or_default().to_string();
        assert!(
            message.contains("a funds call") && message.contains("add \"funds\" to policy.proxy"),
            "{path}: {message}"
        );
    }
    assert_eq!(forwarded(&api), before, "no money call reached the API");
    // Trading and reading go through as before.
    let r = post_json(&c, &sidecar.url("/api/v1/inclusion-preconf/order"), "{}").await;
    assert_ne!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(get(&c, &sidecar.url("/api/v1/user/info")).await.status, 200);
    assert_eq!(forwarded(&api), before + 2);
    let metrics = get(&c, &sidecar.admin_url("/metrics")).await;
    let text = String::from_utf8_lossy(&metrics.body);
    let refused = format!(
        "ethgas_sidecar_policy_decisions_total{{class=\"funds\",decision=\"refused\",listener=\"proxy\"}} {}",
        MONEY_CALLS.len()
    );
    assert!(text.contains(&refused), "{refused} in\n{text}");
}

#[tokio::test]
async fn in_wallet_mode_the_refusal_is_in_the_live_envelope() {
    let (key_hex, key) = random_key_hex();
    let api = start_live_api(key.address(), Duration::from_secs(3600), Duration::from_secs(7 * 86400)).await;
    let files = write_wallet_config(api.addr, &key_hex, &Extra::default());
    let sidecar = start_from_files(files).await;
    let c = client();
    wait_ready(&c, sidecar.admin).await;
    let r = post_json(&c, &sidecar.url("/api/v1/user/funding/withdraw"), "{}").await;
    assert_eq!(r.status, 403);
    let v = r.json();
    assert_eq!(v["success"], false);
    assert_eq!(v["errorCode"], 403);
    assert_eq!(v["errorMsgKey"], "ethgas-sidecar.not_allowed");
}

#[tokio::test]
async fn two_listeners_in_one_process_each_keep_their_own_policy() {
    let api = start_api(Duration::from_secs(3600)).await;
    let extra = Extra {
        tail: "[[listeners]]\nname = \"dashboards\"\nlisten = \"127.0.0.1:0\"\n\
               [policy]\ndashboards = [\"public\", \"read\"]\nproxy = [\"public\", \"read\", \"trade\", \"funds\"]\n"
            .into(),
        ..Extra::default()
    };
    let (sidecar, c) = ready_sidecar(&api, extra).await;
    let dashboards = sidecar.more[0].expect("a TCP listener");
    let on_dashboards = |path: &str| format!("http://{dashboards}{path}");
    assert_eq!(get(&c, &on_dashboards("/api/v1/user/info")).await.status, 200);
    assert_eq!(get(&c, &on_dashboards("/api/v1/p/tokens")).await.status, 200);
    let before = forwarded(&api);
    let r = post_json(&c, &on_dashboards("/api/v1/inclusion-preconf/order"), "{}").await;
    assert_eq!(r.status, 403);
    let message = r.json()["message"].as_str().unwrap_or_default().to_string();
    assert!(
        message.contains("a trade call") && message.contains("policy.dashboards"),
        "{message}"
    );
    assert_eq!(forwarded(&api), before, "refused on the dashboards listener");
    // The main listener may trade, and (by its policy) move money.
    let r = post_json(&c, &sidecar.url("/api/v1/inclusion-preconf/order"), "{}").await;
    assert_ne!(r.status, 403);
    let r = post_json(&c, &sidecar.url("/api/v1/user/funding/withdraw"), "{}").await;
    assert_ne!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
    // It may not make calls the table does not know.
    let r = post_json(&c, &sidecar.url("/api/v1/user/something-new"), "{}").await;
    assert_eq!(r.status, 403);
    assert_eq!(forwarded(&api), before + 2);
}

#[tokio::test]
async fn a_listener_without_read_may_not_open_a_websocket() {
    let api = start_api(Duration::from_secs(3600)).await;
    let extra = Extra {
        tail: "[policy]\nproxy = [\"public\", \"trade\"]\n".into(),
        ..Extra::default()
    };
    let (sidecar, _c) = ready_sidecar(&api, extra).await;
    let stream = tokio::net::TcpStream::connect(sidecar.proxy).await.unwrap();
    let refused = tokio_tungstenite::client_async(format!("ws://{}/ws", sidecar.proxy), stream).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 403),
        other => panic!("the upgrade was not refused: {:?}", other.map(|(_, r)| r.status())),
    }
    assert_eq!(api.mock.websocket_paths().len(), 0, "no socket reached the API");
}

/// A trading bot on a unix socket: its calls are recorded with the pid and
/// command name the kernel gives for it, its refused withdrawal too, and no
/// record holds a token, a query value or a body.
#[tokio::test]
async fn a_unix_socket_clients_calls_are_audited_with_its_pid_and_command() {
    let api = start_api(Duration::from_secs(3600)).await;
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("bot.sock");
    let audit = dir.path().join("audit.jsonl");
    let extra = Extra {
        tail: format!(
            "[[listeners]]\nname = \"bot\"\nlisten = \"unix:{}\"\nunix_mode = \"0600\"\n\
             [policy]\nbot = [\"public\", \"read\", \"trade\"]\n\
             [audit]\noutput = {:?}\n",
            socket.display(),
            audit.display().to_string()
        ),
        ..Extra::default()
    };
    let (_sidecar, _c) = ready_sidecar(&api, extra).await;
    // The bot: a python3 process of its own, so its pid and name are not ours.
    let script = r#"
import socket, sys
def call(method, path, body):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sys.argv[1])
    req = f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n{body}"
    s.sendall(req.encode())
    answer = b""
    while True:
        part = s.recv(65536)
        if not part:
            break
        answer += part
    print(answer.split(b"\r\n")[0].decode())
call("POST", "/api/v1/inclusion-preconf/order?secret=q1", '{"note":"body-text"}')
call("POST", "/api/v1/user/funding/withdraw", '{"amount":"100"}')
call("GET", "/api/v1/user/info", "")
"#;
    let child = tokio::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&socket)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let pid = child.id().expect("a pid") as i64;
    let out = child.wait_with_output().await.unwrap();
    let statuses = String::from_utf8_lossy(&out.stdout).to_string();
    let lines: Vec<&str> = statuses.lines().collect();
    assert_eq!(lines.len(), 3, "{statuses}");
    assert!(!lines[0].contains("403"), "the bot may trade: {statuses}");
    assert!(lines[1].contains("403"), "the bot may not withdraw: {statuses}");
    assert!(lines[2].contains("200"), "{statuses}");

    eventually(Duration::from_secs(10), "two audit records", || {
        audit_lines(&audit).len() >= 2
    })
    .await;
    let records = audit_lines(&audit);
    assert_eq!(records.len(), 2, "reads are not recorded: {records:?}");
    let (trade, withdraw) = (&records[0], &records[1]);
    for r in [trade, withdraw] {
        assert_eq!(r["listener"], "bot");
        assert_eq!(r["peer_pid"], pid, "{r}");
        assert_eq!(r["peer_command"], "python3", "{r}");
        assert!(r["peer_uid"].is_u64(), "{r}");
        assert_eq!(r["method"], "POST");
        assert!(r["time"].as_str().unwrap_or_default().ends_with('Z'), "{r}");
        assert!(r["duration_ms"].is_number(), "{r}");
    }
    assert_eq!(trade["path"], "/api/v1/inclusion-preconf/order");
    assert_eq!(trade["class"], "trade");
    assert_eq!(trade["decision"], "allowed");
    assert!(trade["status"].as_u64().is_some_and(|s| s != 403), "{trade}");
    assert_eq!(withdraw["class"], "funds");
    assert_eq!(withdraw["decision"], "refused");
    assert_eq!(withdraw["status"], 403);
    let text = std::fs::read_to_string(&audit).unwrap();
    eprintln!("the audit trail:\n{text}");
    for secret in api.mock.issued_tokens() {
        assert!(!text.contains(&secret), "a token in the audit trail");
    }
    for never in ["q1", "secret", "body-text", "amount"] {
        assert!(!text.contains(never), "{never:?} in the audit trail: {text}");
    }
}

/// `systemctl reload`: a tighter policy applies to the next request.
#[tokio::test]
async fn a_reload_changes_a_policy() {
    let api = start_api(Duration::from_secs(3600)).await;
    let files = write_config(api.addr, PASSWORD, &Extra::default());
    let mut sidecar = Proc::spawn(&files.config, &[]).await;
    let c = client();
    wait_ready(&c, sidecar.admin).await;
    let order = |c: &TestClient| {
        let url = format!("http://{}/api/v1/inclusion-preconf/order", sidecar.proxy);
        let c = c.clone();
        async move { post_json(&c, &url, "{}").await.status }
    };
    assert_ne!(order(&c).await, 403);
    let text = std::fs::read_to_string(&files.config).unwrap() + "\n[policy]\nproxy = [\"public\", \"read\"]\n";
    std::fs::write(&files.config, text).unwrap();
    sidecar.signal("HUP");
    eventually(Duration::from_secs(10), "the reload", || {
        sidecar.log().contains("reload")
    })
    .await;
    eventually(Duration::from_secs(10), "the new policy", || {
        sidecar.log().contains("configuration reloaded") || sidecar.log().contains("reloaded")
    })
    .await;
    let mut refused = false;
    for _ in 0..50 {
        if order(&c).await == 403 {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(refused, "the reloaded policy refuses trading:\n{}", sidecar.log());
    let r = get(&c, &format!("http://{}/api/v1/user/info", sidecar.proxy)).await;
    assert_eq!(r.status, 200);
    sidecar.signal("TERM");
    assert!(sidecar.wait_exit(Duration::from_secs(30)).await.success());
}

#[tokio::test]
async fn a_refused_call_carries_its_class_in_the_envelope_for_any_method() {
    let api = start_api(Duration::from_secs(3600)).await;
    let (sidecar, c) = ready_sidecar(&api, Extra::default()).await;
    let before = forwarded(&api);
    for method in [Method::PUT, Method::PATCH, Method::DELETE, Method::GET] {
        let req = Request::builder()
            .method(method.clone())
            .uri(sidecar.url("/api/v1/user/funding/withdraw"))
            .body(Full::default())
            .unwrap();
        let r = send(&c, req).await;
        assert_eq!(r.status, 403, "{method}");
    }
    assert_eq!(forwarded(&api), before);
}

/// Socket activation: systemd passes one socket per listener, named after
/// it (`FileDescriptorName=`); each keeps its own policy, and the sidecar
/// binds none of the addresses itself.
#[tokio::test]
async fn socket_activation_passes_each_listener_by_its_name() {
    let api = start_api(Duration::from_secs(3600)).await;
    let extra = Extra {
        // An address the sidecar could not bind: only the passed socket works.
        tail: "[[listeners]]\nname = \"dashboards\"\nlisten = \"unix:/nonexistent-dir/dashboards.sock\"\n\
               [policy]\ndashboards = [\"public\", \"read\"]\n"
            .into(),
        ..Extra::default()
    };
    let files = write_config(api.addr, PASSWORD, &extra);
    let launcher = r#"
import os, socket, sys
fds = []
for fd in (3, 4):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(128)
    os.dup2(s.fileno(), fd)
    os.set_inheritable(fd, True)
    fds.append(s)
env = dict(os.environ, LISTEN_FDS="2", LISTEN_PID=str(os.getpid()), LISTEN_FDNAMES="proxy:dashboards")
sys.stderr.write("launcher bound %s:%d %s:%d\n" % (fds[0].getsockname() + fds[1].getsockname()))
sys.stderr.flush()
os.execve(sys.argv[1], [sys.argv[1], "run", "--config", sys.argv[2]], env)
"#;
    let mut cmd = std::process::Command::new("python3");
    cmd.arg("-c").arg(launcher).arg(binary()).arg(&files.config);
    let mut proc = Proc::spawn_command(&mut cmd, &[]).await;
    let log = proc.log();
    let bound: Vec<String> = log
        .lines()
        .find_map(|l| l.strip_prefix("launcher bound "))
        .expect("launcher line")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let (main, dashboards) = (&bound[0], &bound[1]);
    let c = client();
    wait_ready(&c, proc.admin).await;
    assert_eq!(
        get(&c, &format!("http://{dashboards}/api/v1/user/info")).await.status,
        200
    );
    let r = post_json(&c, &format!("http://{dashboards}/api/v1/inclusion-preconf/order"), "{}").await;
    assert_eq!(r.status, 403, "the dashboards socket keeps its policy");
    let r = post_json(&c, &format!("http://{main}/api/v1/inclusion-preconf/order"), "{}").await;
    assert_ne!(r.status, 403, "the proxy socket may trade");
    proc.signal("TERM");
    assert!(
        proc.wait_exit(Duration::from_secs(30)).await.success(),
        "{}",
        proc.log()
    );
}

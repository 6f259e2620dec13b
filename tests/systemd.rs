//! The systemd contract without systemd: sd_notify readiness, status and
//! watchdog over a datagram socket the test binds; socket activation with a
//! listener passed as fd 3; SIGHUP reload of the config and the password.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::*;
use ethgas_mock::Fault;
use tokio::net::UnixDatagram;

/// Receives sd_notify datagrams, each with the number of successful logins
/// the mock had seen when it arrived.
async fn next_notification(sock: &UnixDatagram, api: &Api, limit: Duration) -> Option<(String, u64)> {
    let mut buf = vec![0u8; 4096];
    match tokio::time::timeout(limit, sock.recv(&mut buf)).await {
        Ok(Ok(n)) => Some((
            String::from_utf8_lossy(&buf[..n]).into_owned(),
            api.mock.counts().logins_ok,
        )),
        _ => None,
    }
}

#[tokio::test]
async fn ready_only_after_the_first_login_then_status_watchdog_reload_stopping() {
    let api = start_api(Duration::from_secs(3600)).await;
    api.mock.set_login_fault(Fault::Slow(Duration::from_millis(1500)));
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    let files = write_config(api.addr, PASSWORD, &Extra::default());
    let started = tokio::time::Instant::now();
    let mut proc = Proc::spawn(
        &files.config,
        &[
            ("NOTIFY_SOCKET", sock_path.to_str().unwrap()),
            ("WATCHDOG_USEC", "400000"),
        ],
    )
    .await;

    // Until READY=1: only STATUS lines, and READY only once the login is done.
    let mut before_ready = Vec::new();
    let ready = loop {
        let (msg, logins) = next_notification(&sock, &api, Duration::from_secs(10))
            .await
            .expect("READY=1 within 10 s");
        if msg.contains("READY=1") {
            break (msg, logins);
        }
        assert!(!msg.contains("WATCHDOG=1") || logins == 0, "{msg}");
        before_ready.push(msg);
    };
    assert_eq!(ready.1, 1, "READY=1 came after the API answered the login");
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "not before the slow login finished"
    );
    assert!(
        ready.0.contains("STATUS=logged in as alice, token expires in"),
        "{}",
        ready.0
    );
    assert!(
        before_ready.iter().any(|m| m.contains("STATUS=logging in as alice")),
        "{before_ready:?}"
    );

    // The watchdog pings at half of WATCHDOG_USEC.
    let mut pings = 0;
    let until = tokio::time::Instant::now() + Duration::from_secs(3);
    while pings < 3 && tokio::time::Instant::now() < until {
        if let Some((msg, _)) = next_notification(&sock, &api, Duration::from_secs(1)).await {
            pings += usize::from(msg.contains("WATCHDOG=1"));
        }
    }
    assert!(pings >= 3, "WATCHDOG=1 every ~200 ms");

    // A reload says RELOADING=1, then READY=1 again.
    proc.signal("HUP");
    let mut seen = Vec::new();
    while !seen.iter().any(|m: &String| m.contains("READY=1")) {
        let (msg, _) = next_notification(&sock, &api, Duration::from_secs(5))
            .await
            .expect("reload notifications");
        if !msg.starts_with("WATCHDOG") {
            seen.push(msg);
        }
    }
    assert!(
        seen[0].contains("RELOADING=1") && seen[0].contains("MONOTONIC_USEC="),
        "{seen:?}"
    );

    proc.signal("TERM");
    let mut stopping = false;
    while let Some((msg, _)) = next_notification(&sock, &api, Duration::from_secs(5)).await {
        if msg.contains("STOPPING=1") {
            stopping = true;
            break;
        }
    }
    assert!(stopping, "STOPPING=1 on shutdown");
    assert_eq!(proc.wait_exit(Duration::from_secs(15)).await.code(), Some(0));
}

#[tokio::test]
async fn a_failing_login_shows_in_the_status_line_and_no_ready_is_sent() {
    let api = start_api(Duration::from_secs(3600)).await;
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    let files = write_config(api.addr, "not the password", &Extra::default());
    let mut proc = Proc::spawn(&files.config, &[("NOTIFY_SOCKET", sock_path.to_str().unwrap())]).await;
    let mut failing = None;
    while failing.is_none() {
        let (msg, _) = next_notification(&sock, &api, Duration::from_secs(10))
            .await
            .expect("a status line");
        assert!(!msg.contains("READY=1"), "never ready with a wrong password: {msg}");
        if msg.contains("STATUS=login failing") {
            failing = Some(msg);
        }
    }
    let msg = failing.unwrap();
    assert!(msg.contains("alice") && msg.contains("Unauthorized"), "{msg}");
    assert!(!msg.contains("not the password"));
    proc.signal("TERM");
    assert_eq!(proc.wait_exit(Duration::from_secs(15)).await.code(), Some(0));
}

#[tokio::test]
async fn socket_activation_serves_on_the_listener_passed_as_fd_3() {
    let api = start_api(Duration::from_secs(3600)).await;
    let files = write_config(api.addr, PASSWORD, &Extra::default());
    // What systemd does: bind, place the socket at fd 3, set LISTEN_FDS and
    // LISTEN_PID (the pid that will exec the service), exec.
    let launcher = r#"
import os, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0))
s.listen(128)
os.dup2(s.fileno(), 3)
os.set_inheritable(3, True)
env = dict(os.environ, LISTEN_FDS="1", LISTEN_PID=str(os.getpid()), LISTEN_FDNAMES="proxy")
sys.stderr.write("launcher bound %s:%d\n" % s.getsockname())
sys.stderr.flush()
os.execve(sys.argv[1], [sys.argv[1], "run", "--config", sys.argv[2]], env)
"#;
    let mut cmd = std::process::Command::new("python3");
    cmd.arg("-c").arg(launcher).arg(binary()).arg(&files.config);
    let proc = Proc::spawn_command(&mut cmd, &[]).await;
    let log = proc.log();
    let bound = log
        .lines()
        .find_map(|l| l.strip_prefix("launcher bound "))
        .expect("launcher line")
        .trim()
        .to_string();
    assert_eq!(
        proc.proxy.to_string(),
        bound,
        "serves on the inherited socket, binds nothing else"
    );
    assert!(log.contains("using sockets passed by systemd"), "{log}");
    let c = client();
    wait_ready(&c, proc.admin).await;
    let r = get(&c, &format!("http://{bound}/api/v1/user/info")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["data"]["username"], USER);
}

#[tokio::test]
async fn sighup_reloads_the_password_without_failing_a_request() {
    let api = start_api(Duration::from_secs(3600)).await;
    let files = write_config(api.addr, PASSWORD, &Extra::default());
    let proc = Proc::spawn(&files.config, &[]).await;
    let c = client();
    wait_ready(&c, proc.admin).await;

    // Traffic throughout.
    let failures = Arc::new(AtomicU64::new(0));
    let sent = Arc::new(AtomicU64::new(0));
    let stop = tokio_util::sync::CancellationToken::new();
    let traffic = {
        let (c, url, failures, sent, stop) = (
            c.clone(),
            format!("http://{}/api/v1/user/info", proc.proxy),
            failures.clone(),
            sent.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            while !stop.is_cancelled() {
                if get(&c, &url).await.status != 200 {
                    failures.fetch_add(1, Ordering::SeqCst);
                }
                sent.fetch_add(1, Ordering::SeqCst);
            }
        })
    };

    // The password is rotated at the API and in the file; then SIGHUP.
    api.mock.set_password("rotated password");
    write_private(&files.password, "rotated password\n");
    proc.signal("HUP");
    eventually(Duration::from_secs(10), "a login with the new password", || {
        api.mock.counts().logins_ok == 2
    })
    .await;
    assert_eq!(api.mock.counts().logins_refused, 0, "the new password was used");
    eventually(Duration::from_secs(5), "the reload log line", || {
        proc.log().contains("configuration reloaded")
    })
    .await;

    // A broken config is rejected; the running one stays.
    let good = std::fs::read_to_string(&files.config).unwrap();
    std::fs::write(
        &files.config,
        good.replace("[auth]", "[auth]\nrefresh_ratio = \"often\""),
    )
    .unwrap();
    proc.signal("HUP");
    eventually(Duration::from_secs(10), "the rejection log line", || {
        proc.log().contains("reload rejected")
    })
    .await;
    let log = proc.log();
    assert!(
        log.contains("auth.refresh_ratio") || log.contains("refresh_ratio"),
        "names the key: {log}"
    );

    // A listener change is named as needing a restart.
    std::fs::write(
        &files.config,
        good.replacen("listen = \"127.0.0.1:0\"", "listen = \"127.0.0.1:1\"", 1),
    )
    .unwrap();
    proc.signal("HUP");
    eventually(Duration::from_secs(10), "the restart-only warning", || {
        proc.log().contains("take effect only after a restart")
    })
    .await;
    assert!(proc.log().contains("proxy.listen"));

    let before = sent.load(Ordering::SeqCst);
    eventually(Duration::from_secs(5), "more traffic after the reloads", || {
        sent.load(Ordering::SeqCst) > before + 20
    })
    .await;
    stop.cancel();
    traffic.await.unwrap();
    assert_eq!(
        failures.load(Ordering::SeqCst),
        0,
        "no request failed across the reloads"
    );
    let metrics = String::from_utf8_lossy(&get(&c, &format!("http://{}/metrics", proc.admin)).await.body).into_owned();
    assert!(
        metrics.contains("ethgas_sidecar_reloads_total{result=\"applied\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ethgas_sidecar_reloads_total{result=\"rejected\"} 1"),
        "{metrics}"
    );
}

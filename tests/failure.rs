//! What a failing part does to the running binary. A dead auth task or
//! proxy worker ends the process with a non-zero status (so that systemd's
//! `Restart=on-failure` starts it again) and says which part ended; a stuck
//! worker silences the systemd watchdog (so that systemd kills and restarts
//! it) and is named in the log. The faults are injected through
//! `ETHGAS_SIDECAR_TEST_FAULT`, which only the test build reads (feature
//! `test-util`); sd_notify goes to a datagram socket the test binds.

mod common;

use std::time::Duration;

use common::*;
use ethgas_mock::Fault;
use tokio::net::UnixDatagram;

const FAULT: &str = "ETHGAS_SIDECAR_TEST_FAULT";

/// `WATCHDOG_USEC` for these tests: pings every 200 ms, beats every 100 ms.
const WATCHDOG: Duration = Duration::from_millis(400);

/// A socket in a temp dir that receives what the child sends to
/// `NOTIFY_SOCKET`.
struct NotifySocket {
    _dir: tempfile::TempDir,
    path: String,
    sock: UnixDatagram,
}

impl NotifySocket {
    fn bind() -> NotifySocket {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        NotifySocket {
            path: path.to_str().unwrap().to_string(),
            _dir: dir,
            sock,
        }
    }

    /// The environment of a child under a systemd watchdog of [`WATCHDOG`].
    /// `WATCHDOG_PID` stays unset: the child's pid is not known before it
    /// starts, and sd_notify accepts an unset one as "this process".
    fn env(&self) -> Vec<(&str, String)> {
        vec![
            ("NOTIFY_SOCKET", self.path.clone()),
            ("WATCHDOG_USEC", WATCHDOG.as_micros().to_string()),
        ]
    }

    /// The next datagram, if one comes within `limit`.
    async fn next(&self, limit: Duration) -> Option<String> {
        let mut buf = vec![0u8; 4096];
        match tokio::time::timeout(limit, self.sock.recv(&mut buf)).await {
            Ok(Ok(n)) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
            _ => None,
        }
    }

    /// Reads datagrams until READY=1; returns how many WATCHDOG=1 came first.
    async fn until_ready(&self, proc: &Proc) -> usize {
        let mut pings = 0;
        loop {
            let msg = self
                .next(Duration::from_secs(15))
                .await
                .unwrap_or_else(|| panic!("READY=1 within 15 s; log:\n{}", proc.log()));
            if msg.contains("READY=1") {
                return pings;
            }
            pings += usize::from(msg.contains("WATCHDOG=1"));
        }
    }

    /// Discards the datagrams already queued.
    fn drain(&self) {
        let mut buf = vec![0u8; 4096];
        while self.sock.try_recv(&mut buf).is_ok() {}
    }
}

fn spawn_env<'a>(pairs: &'a [(&'a str, String)]) -> Vec<(&'a str, &'a str)> {
    pairs.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// The log line that contains `needle`, which must be at error level.
fn error_line(log: &str, needle: &str) -> String {
    let line = log
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?}; log:\n{log}"))
        .to_string();
    assert!(line.contains("ERROR"), "at error level: {line}");
    line
}

#[tokio::test]
async fn an_auth_task_that_dies_ends_the_process_with_status_1_naming_it() {
    let api = start_api(Duration::from_secs(3600)).await;
    let files = write_config(api.addr, PASSWORD, &Extra::default());
    let mut proc = Proc::spawn(&files.config, &[(FAULT, "auth-task-panic-after-login")]).await;

    let status = proc.wait_exit(Duration::from_secs(30)).await;
    let log = proc.log();
    assert_eq!(status.code(), Some(1), "a failure status, not a signal; log:\n{log}");
    assert_eq!(api.mock.counts().logins_ok, 1, "it died after the login");
    let line = error_line(&log, "the auth task panicked");
    assert!(line.contains("test fault") && line.contains("exit status 1"), "{line}");
    assert!(
        log.contains("ethgas-sidecar: the auth task panicked"),
        "the exit message names it: {log}"
    );
    // It stopped as on SIGTERM (drain, "stopped"), but with no logout: the
    // task that would log out is gone.
    assert!(log.contains("stopped"), "{log}");
    assert_eq!(api.mock.counts().logouts, 0);
    assert!(!log.contains(PASSWORD));
}

#[tokio::test]
async fn a_proxy_worker_that_dies_ends_the_process_with_status_1_naming_it() {
    let api = start_api(Duration::from_secs(3600)).await;
    let files = write_config(api.addr, PASSWORD, &Extra::proxy("worker_threads = 2"));
    let mut proc = Proc::spawn(&files.config, &[(FAULT, "worker-1-panic-after-ready")]).await;
    let proxy = proc.proxy;

    let status = proc.wait_exit(Duration::from_secs(30)).await;
    let log = proc.log();
    assert_eq!(status.code(), Some(1), "a failure status, not a signal; log:\n{log}");
    let line = error_line(&log, "proxy worker 1 panicked");
    assert!(line.contains("test fault") && line.contains("exit status 1"), "{line}");
    assert!(!log.contains("proxy worker 0 panicked"), "{log}");
    assert!(
        log.contains("ethgas-sidecar: proxy worker 1 panicked"),
        "the exit message names it: {log}"
    );
    // The rest stopped as on SIGTERM: the auth task logged out.
    assert!(log.contains("logged out"), "{log}");
    assert_eq!(api.mock.counts().logouts, 1);
    assert!(std::net::TcpStream::connect(proxy).is_err(), "the listener is gone");
}

#[tokio::test]
async fn the_watchdog_keeps_pinging_while_every_part_beats_and_sigterm_exits_0() {
    let api = start_api(Duration::from_secs(3600)).await;
    let files = write_config(api.addr, PASSWORD, &Extra::proxy("worker_threads = 2"));
    let notify = NotifySocket::bind();
    let env = notify.env();
    let mut proc = Proc::spawn(&files.config, &spawn_env(&env)).await;
    notify.until_ready(&proc).await;

    // After READY the auth task waits most of an hour for its refresh and
    // the workers serve requests: the pings must go on all the same, for
    // several watchdog intervals.
    let c = client();
    let url = format!("http://{}/api/v1/user/info", proc.proxy);
    let mut pings = 0;
    while pings < 12 {
        let msg = notify
            .next(Duration::from_secs(3))
            .await
            .unwrap_or_else(|| panic!("WATCHDOG=1 stopped after {pings} pings; log:\n{}", proc.log()));
        if msg.contains("WATCHDOG=1") {
            pings += 1;
            assert_eq!(get(&c, &url).await.status, 200);
        }
    }
    let log = proc.log();
    assert!(!log.contains("is stuck"), "{log}");

    proc.signal("TERM");
    assert_eq!(proc.wait_exit(Duration::from_secs(15)).await.code(), Some(0));
    assert_eq!(api.mock.counts().logouts, 1);
}

#[tokio::test]
async fn a_wedged_worker_stops_the_watchdog_pings_and_is_named() {
    let api = start_api(Duration::from_secs(3600)).await;
    // The login takes a while: the pings that come meanwhile show that the
    // heartbeats are fresh until the fault fires (once a token is held).
    api.mock.set_login_fault(Fault::Slow(Duration::from_secs(2)));
    let files = write_config(api.addr, PASSWORD, &Extra::proxy("worker_threads = 2"));
    let notify = NotifySocket::bind();
    let mut env = notify.env();
    env.push((FAULT, "wedge-worker-0-after-ready".into()));
    let mut proc = Proc::spawn(&files.config, &spawn_env(&env)).await;

    let before_ready = notify.until_ready(&proc).await;
    assert!(
        before_ready >= 2,
        "WATCHDOG=1 while the login was in flight: {before_ready}"
    );
    assert_eq!(api.mock.counts().logins_ok, 1);

    eventually(Duration::from_secs(10), "the watchdog to name the stuck worker", || {
        proc.log().contains("is stuck")
    })
    .await;
    // Pings sent before that line are already queued; none may follow.
    notify.drain();
    let quiet_until = tokio::time::Instant::now() + WATCHDOG * 3;
    while let Some(msg) = notify
        .next(quiet_until.saturating_duration_since(tokio::time::Instant::now()))
        .await
    {
        assert!(
            !msg.contains("WATCHDOG=1"),
            "a ping after the worker got stuck: {msg}; log:\n{}",
            proc.log()
        );
    }
    assert!(
        proc.child.try_wait().unwrap().is_none(),
        "still running: the watchdog, not an exit, ends it"
    );

    let log = proc.log();
    let line = error_line(&log, "is stuck");
    assert!(line.contains("proxy worker 0 is stuck"), "{line}");
    assert!(line.contains("WATCHDOG=1 is no longer sent"), "{line}");
    assert_eq!(
        log.matches("is stuck").count(),
        1,
        "said once, and only of worker 0: {log}"
    );
}

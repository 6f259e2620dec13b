//! Soak: hours of token lifetimes compressed into minutes.
//!
//! Tokens live 2 s; 64 clients send requests back to back for `SOAK_SECS`
//! (default 600) through the sidecar binary, run as its own process so its
//! memory can be read from /proc. The mock API counts every token it saw
//! after its expiry. The result: requests, failures (must be 0), refreshes,
//! logins (must be 1), expired tokens in use (must be 0), and the sidecar's
//! RSS after warm-up and at the end (no growth).
//!
//! Run: `cargo test --release --test soak -- --ignored --nocapture`
//! (`SOAK_SECS=60` for a short run).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::*;
use tokio::time::Instant;

fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long-running; run explicitly (see the module docs)"]
async fn soak_two_second_tokens_sixty_four_clients() {
    let secs: u64 = std::env::var("SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600);
    let clients = 64;
    let api = start_api(Duration::from_secs(2)).await;
    // 2 s tokens renewed as they ask: faster than the default pace of auth
    // calls (one per 5 s), which would let them lapse between renewals.
    let files = write_config(api.addr, PASSWORD, &Extra::auth("min_call_interval = \"100ms\""));
    // Debug-level request lines would dominate the run; keep it at info.
    let text = std::fs::read_to_string(&files.config)
        .unwrap()
        .replace("level = \"debug\"", "level = \"info\"");
    std::fs::write(&files.config, text).unwrap();
    let mut proc = Proc::spawn(&files.config, &[]).await;
    let pid = proc.child.id();
    let c = client();
    wait_ready(&c, proc.admin).await;

    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let until = started + Duration::from_secs(secs);
    let url = format!("http://{}/api/v1/user/info", proc.proxy);
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let (c, url, ok, failed) = (c.clone(), url.clone(), ok.clone(), failed.clone());
            tokio::spawn(async move {
                while Instant::now() < until {
                    let r = get(&c, &url).await;
                    if r.status == 200 {
                        ok.fetch_add(1, Ordering::Relaxed);
                    } else if failed.fetch_add(1, Ordering::Relaxed) < 5 {
                        eprintln!("failed: {} {}", r.status, String::from_utf8_lossy(&r.body));
                    }
                }
            })
        })
        .collect();

    // RSS once warmed up (a tenth of the run, at least 10 s), then at the end.
    let warm = Duration::from_secs((secs / 10).max(10).min(secs));
    while started.elapsed() < warm {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (rss_warm, hwm_warm) = (status_kib(pid, "VmRSS:"), status_kib(pid, "VmHWM:"));
    let mut last_report = Instant::now();
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if last_report.elapsed() >= Duration::from_secs(60) {
            last_report = Instant::now();
            let counts = api.mock.counts();
            eprintln!(
                "soak {:>4}s: {} ok, {} failed, {} refreshes, {} logins, RSS {} KiB",
                started.elapsed().as_secs(),
                ok.load(Ordering::Relaxed),
                failed.load(Ordering::Relaxed),
                counts.refreshes_ok,
                counts.logins_ok,
                status_kib(pid, "VmRSS:")
            );
        }
    }
    for w in workers {
        w.await.unwrap();
    }
    let (rss_end, hwm_end) = (status_kib(pid, "VmRSS:"), status_kib(pid, "VmHWM:"));
    let counts = api.mock.counts();
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    println!(
        "SOAK RESULT: {secs} s, {clients} clients, 2 s tokens: {ok} requests ok ({:.0}/s), {failed} failed, \
         {} refreshes, {} logins, {} expired tokens used, {} upstream 401s; \
         sidecar RSS after warm-up {rss_warm} KiB (peak {hwm_warm} KiB), at the end {rss_end} KiB (peak {hwm_end} KiB)",
        ok as f64 / secs as f64,
        counts.refreshes_ok,
        counts.logins_ok,
        counts.expired_in_use,
        counts.private_unauthorized,
    );
    proc.signal("TERM");
    assert_eq!(proc.wait_exit(Duration::from_secs(40)).await.code(), Some(0));
    assert_eq!(failed, 0, "no request failed");
    assert_eq!(counts.logins_ok, 1, "one login; every renewal was a refresh");
    assert_eq!(counts.expired_in_use, 0, "no expired token was sent");
    assert!(
        counts.refreshes_ok as f64 >= secs as f64 / 2.0 * 0.8,
        "refreshed about every 1.5 s"
    );
    // No growth: the peak at the end stays within 10 % (+1 MiB) of the
    // peak after warm-up.
    assert!(
        hwm_end <= hwm_warm + hwm_warm / 10 + 1024,
        "RSS grew: {hwm_warm} KiB after warm-up, {hwm_end} KiB at the end"
    );
}

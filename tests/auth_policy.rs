//! The auth task's policy seen from outside, against the in-process mock:
//! sessions that end, refreshes that keep failing, re-authentications that
//! clients try to drive, and connections to an API that drops them.
//!
//! Every rule here is also a table test of `auth::schedule` (microseconds,
//! no clock); these tests show that the task follows the schedule, with
//! short token lifetimes and generous bounds.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::*;
use ethgas_sidecar::mock::MockConfig;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Requests flowing through a sidecar from a few clients, counted.
struct Traffic {
    stop: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
}

fn traffic(sidecar: &Sidecar, workers: usize) -> Traffic {
    let stop = CancellationToken::new();
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let c = client();
    let tasks = (0..workers)
        .map(|i| {
            let (c, stop, ok, failed) = (c.clone(), stop.clone(), ok.clone(), failed.clone());
            let url = sidecar.url("/api/v1/user/info");
            tokio::spawn(async move {
                while !stop.is_cancelled() {
                    let r = get(&c, &url).await;
                    if r.status == 200 {
                        ok.fetch_add(1, Ordering::SeqCst);
                    } else if failed.fetch_add(1, Ordering::SeqCst) < 3 {
                        eprintln!("worker {i}: {} {}", r.status, String::from_utf8_lossy(&r.body));
                    }
                    // Steady, not flat out: the machine is shared.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        })
        .collect();
    Traffic {
        stop,
        tasks,
        ok,
        failed,
    }
}

impl Traffic {
    async fn finish(self) -> (u64, u64) {
        self.stop.cancel();
        for t in self.tasks {
            t.await.unwrap();
        }
        (self.ok.load(Ordering::SeqCst), self.failed.load(Ordering::SeqCst))
    }
}

async fn run_for(limit: Duration) {
    let started = Instant::now();
    while started.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_session_that_ends_is_renewed_by_a_login_before_it_does() {
    // Sessions (refresh tokens, whose JWT exp says when) end 5 s after each
    // login; access tokens live 2 s and are refreshed at 3/4 of that. A
    // refresh after the end would be refused: the sidecar must log in first.
    let api = start_api_with(MockConfig {
        username: USER.into(),
        password: PASSWORD.into(),
        token_lifetime: Duration::from_secs(2),
        refresh_lifetime: Duration::from_secs(5),
        ..MockConfig::default()
    })
    .await;
    let (sidecar, _c) = ready_sidecar(&api, Extra::default()).await;
    let load = traffic(&sidecar, 4);
    run_for(Duration::from_secs(11)).await;
    let (ok, failed) = load.finish().await;
    let counts = api.mock.counts();
    eprintln!(
        "5 s sessions, 2 s tokens, 11 s: {ok} requests ok, {failed} failed, {} logins, {} refreshes, {} refreshes refused, {} expired tokens used",
        counts.logins_ok, counts.refreshes_ok, counts.refreshes_refused, counts.expired_in_use
    );
    assert_eq!(failed, 0, "no request met an ended session or an expired token");
    assert!(ok > 100, "traffic flowed ({ok})");
    assert!(counts.logins_ok >= 2, "a new session before each one ended: {counts:?}");
    assert!(counts.refreshes_ok >= 2, "refreshes within a session: {counts:?}");
    assert_eq!(
        counts.refreshes_refused, 0,
        "no refresh on an ended session: {counts:?}"
    );
    assert_eq!(counts.expired_in_use, 0, "{counts:?}");
    assert_eq!(counts.private_unauthorized, 0, "{counts:?}");
}

//! `Traffic`: requests flowing through a sidecar from a few clients while a
//! test does something to the API, counted by outcome.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{client, get, post_json};

/// What the clients send.
#[derive(Debug, Clone, Copy)]
pub enum Load {
    /// `GET /api/v1/user/info`, with this pause between requests (steady,
    /// not flat out: the machine is shared).
    Reads(Duration),
    /// Back to back: even clients `GET /api/v1/user/info`, odd ones
    /// `POST /api/v1/mock/echo` (writes are replayed after a 401 too).
    ReadsAndWrites,
}

/// Requests flowing through a sidecar, counted: 200s and everything else
/// (the first three failures are printed).
pub struct Traffic {
    stop: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
}

impl Traffic {
    /// `clients` clients sending `load` to the sidecar's proxy at `proxy`.
    pub fn start(proxy: SocketAddr, clients: usize, load: Load) -> Traffic {
        let stop = CancellationToken::new();
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let c = client();
        let tasks = (0..clients)
            .map(|i| {
                let (c, stop, ok, failed) = (c.clone(), stop.clone(), ok.clone(), failed.clone());
                let (write, pause) = match load {
                    Load::Reads(pause) => (false, pause),
                    Load::ReadsAndWrites => (i % 2 == 1, Duration::ZERO),
                };
                let path = if write {
                    "/api/v1/mock/echo"
                } else {
                    "/api/v1/user/info"
                };
                let url = format!("http://{proxy}{path}");
                tokio::spawn(async move {
                    let mut n = 0u64;
                    while !stop.is_cancelled() {
                        let r = if write {
                            post_json(&c, &url, &format!(r#"{{"client":{i},"n":{n}}}"#)).await
                        } else {
                            get(&c, &url).await
                        };
                        if r.status == 200 {
                            ok.fetch_add(1, Ordering::SeqCst);
                        } else if failed.fetch_add(1, Ordering::SeqCst) < 3 {
                            eprintln!("client {i}: {} {}", r.status, String::from_utf8_lossy(&r.body));
                        }
                        n += 1;
                        if !pause.is_zero() {
                            tokio::time::sleep(pause).await;
                        }
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

    /// The 200s so far.
    pub fn ok(&self) -> u64 {
        self.ok.load(Ordering::SeqCst)
    }

    /// Stops the clients; returns the 200s and the other answers.
    pub async fn finish(self) -> (u64, u64) {
        self.stop.cancel();
        for t in self.tasks {
            t.await.unwrap();
        }
        (self.ok.load(Ordering::SeqCst), self.failed.load(Ordering::SeqCst))
    }
}

//! Deliberate failures of the process's parts, so that the tests can show
//! what a dead auth task, a dead proxy worker or a stuck one does to the
//! running binary (tests/failure.rs).
//!
//! Only with the `test-util` cargo feature (which the crate's own tests turn
//! on) is anything read or injected: then `ETHGAS_SIDECAR_TEST_FAULT`, read
//! at start, names one fault, and each fires once a token is held:
//!
//! - `auth-task-panic-after-login` — the auth task panics;
//! - `worker-N-panic-after-ready` — proxy worker N panics in its accept loop;
//! - `wedge-worker-N-after-ready` — a task on worker N's runtime blocks its
//!   thread (`std::thread::sleep`), so the worker stops beating.
//!
//! Without the feature, [`Faults`] is empty and its wrappers only run the
//! work they are given: the product binary has no hook and no variable name.

use crate::auth::AuthHandle;

/// The fault this process was started with (feature `test-util`), if any.
#[derive(Clone)]
pub(crate) struct Faults {
    #[cfg(feature = "test-util")]
    armed: Option<(armed::Plan, AuthHandle)>,
}

#[cfg(not(feature = "test-util"))]
impl Faults {
    pub(crate) fn from_env(_auth: &AuthHandle) -> Faults {
        Faults {}
    }

    pub(crate) async fn auth_task(self, run: impl std::future::Future<Output = ()>) {
        run.await
    }

    pub(crate) async fn worker(&self, _index: usize, work: impl std::future::Future<Output = ()>) {
        work.await
    }
}

#[cfg(feature = "test-util")]
mod armed {
    use std::future::Future;
    use std::time::Duration;

    use tracing::warn;

    use super::Faults;
    use crate::auth::AuthHandle;

    /// The variable that names the fault.
    const VAR: &str = "ETHGAS_SIDECAR_TEST_FAULT";

    /// How long a wedged worker's thread sleeps: longer than any test.
    const WEDGE: Duration = Duration::from_secs(3600);

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) enum Plan {
        AuthTaskPanic,
        WorkerPanic(usize),
        WorkerWedge(usize),
    }

    impl Plan {
        pub(crate) fn parse(value: &str) -> Option<Plan> {
            if value == "auth-task-panic-after-login" {
                return Some(Plan::AuthTaskPanic);
            }
            if let Some(n) = value
                .strip_prefix("worker-")
                .and_then(|v| v.strip_suffix("-panic-after-ready"))
            {
                return n.parse().ok().map(Plan::WorkerPanic);
            }
            value
                .strip_prefix("wedge-worker-")
                .and_then(|v| v.strip_suffix("-after-ready"))
                .and_then(|n| n.parse().ok())
                .map(Plan::WorkerWedge)
        }
    }

    /// Resolves once a valid token is in the cell.
    async fn ready(auth: &AuthHandle) {
        let mut changes = auth.subscribe();
        while auth.valid().is_none() {
            if changes.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }

    impl Faults {
        pub(crate) fn from_env(auth: &AuthHandle) -> Faults {
            let value = std::env::var(VAR).ok().filter(|v| !v.is_empty());
            let plan = value.as_deref().and_then(Plan::parse);
            match (&value, plan) {
                (Some(v), Some(_)) => warn!("{VAR}={v}: a test fault is armed"),
                (Some(v), None) => warn!("{VAR}={v} is not a known test fault; ignored"),
                (None, _) => {}
            }
            Faults {
                armed: plan.map(|p| (p, auth.clone())),
            }
        }

        /// The auth task as spawned: with its fault, it panics once a token
        /// is held.
        pub(crate) async fn auth_task(self, run: impl Future<Output = ()>) {
            let Some((Plan::AuthTaskPanic, auth)) = self.armed else {
                return run.await;
            };
            tokio::select! {
                _ = run => {}
                _ = ready(&auth) => panic!("test fault: the auth task panics ({VAR})"),
            }
        }

        /// Worker `index`'s work as its runtime runs it: with its fault, it
        /// panics, or blocks the runtime's thread, once a token is held.
        pub(crate) async fn worker(&self, index: usize, work: impl Future<Output = ()>) {
            match &self.armed {
                Some((Plan::WorkerPanic(n), auth)) if *n == index => {
                    tokio::select! {
                        _ = work => {}
                        _ = ready(auth) => panic!("test fault: proxy worker {index} panics ({VAR})"),
                    }
                }
                Some((Plan::WorkerWedge(n), auth)) if *n == index => {
                    let auth = auth.clone();
                    tokio::spawn(async move {
                        ready(&auth).await;
                        warn!("test fault: blocking proxy worker {index}'s thread ({VAR})");
                        std::thread::sleep(WEDGE);
                    });
                    work.await
                }
                _ => work.await,
            }
        }
    }
}

#[cfg(all(test, feature = "test-util"))]
mod tests {
    use super::armed::Plan;

    #[test]
    fn the_fault_names_parse_and_others_are_ignored() {
        assert_eq!(Plan::parse("auth-task-panic-after-login"), Some(Plan::AuthTaskPanic));
        assert_eq!(Plan::parse("worker-0-panic-after-ready"), Some(Plan::WorkerPanic(0)));
        assert_eq!(Plan::parse("worker-12-panic-after-ready"), Some(Plan::WorkerPanic(12)));
        assert_eq!(Plan::parse("wedge-worker-1-after-ready"), Some(Plan::WorkerWedge(1)));
        for other in [
            "",
            "auth-task-panic",
            "worker-x-panic-after-ready",
            "wedge-worker--after-ready",
        ] {
            assert_eq!(Plan::parse(other), None, "{other}");
        }
    }
}

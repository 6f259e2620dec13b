//! Signals: which one arrived, and what each means to the process.
//!
//! [`Signals`] only listens; [`drive`] is the policy every command shares:
//! SIGTERM and SIGINT ask for a graceful stop (a second one ends the process
//! at once), SIGHUP for a reload.

use tokio::signal::unix::{SignalKind, signal};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Terminate,
    Interrupt,
    Hangup,
}

pub struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    /// Installs the handlers. From here on SIGHUP no longer ends the process.
    pub fn new() -> std::io::Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// The next signal.
    pub async fn recv(&mut self) -> Signal {
        tokio::select! {
            _ = self.term.recv() => Signal::Terminate,
            _ = self.int.recv() => Signal::Interrupt,
            _ = self.hup.recv() => Signal::Hangup,
        }
    }
}

/// The process's signal policy, in one place: SIGHUP asks for a reload (when
/// `reloads` is given; otherwise it is ignored), the first SIGTERM or SIGINT
/// cancels `shutdown` (a graceful stop), a second one exits at once with 130.
pub async fn drive(
    mut signals: Signals,
    shutdown: tokio_util::sync::CancellationToken,
    reloads: Option<tokio::sync::mpsc::UnboundedSender<()>>,
) {
    loop {
        match signals.recv().await {
            Signal::Hangup => {
                if let Some(tx) = &reloads {
                    let _ = tx.send(());
                }
            }
            sig if shutdown.is_cancelled() => {
                tracing::warn!(?sig, "second stop signal: exiting without waiting for the drain");
                std::process::exit(130);
            }
            sig => {
                tracing::info!(?sig, "stopping: no new connections; finishing requests in flight");
                shutdown.cancel();
            }
        }
    }
}

//! The command line: parses it and calls into the library. Nothing else.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use ethgas_mock::MockConfig;
use ethgas_sidecar::app::{self, Control, Listeners};
use ethgas_sidecar::cli::{Cli, Command};
use ethgas_sidecar::config::Config;
use ethgas_sidecar::notify::Notifier;
use ethgas_sidecar::signal::{self, Signal, Signals};
use ethgas_sidecar::telemetry::{self, LogFormat, LogSettings};
use ethgas_sidecar::{demo, server, status};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { config } => check_config(&config),
        Command::Run { config } => run(&config),
        Command::Status {
            config,
            instance,
            admin,
            json,
        } => status::run(&config, instance.as_deref(), admin.as_deref(), json),
        Command::Demo {
            listen,
            admin,
            token_lifetime,
            auth,
        } => run_simple(demo::run(listen, admin, token_lifetime, auth)),
        Command::MockApi {
            listen,
            token_lifetime,
            username,
            password,
            flavor,
            address,
        } => run_simple(demo::mock_api(
            listen,
            MockConfig {
                flavour: flavor,
                username,
                password,
                address,
                token_lifetime,
                ..MockConfig::default()
            },
        )),
    }
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("ethgas-sidecar: {message}");
    ExitCode::from(1)
}

/// Validates the file as `run` would, except that a systemd credential is
/// not required while `$CREDENTIALS_DIRECTORY` is unset (a note says so);
/// `RUST_LOG`, which `run` would use, is checked too.
fn check_config(path: &Path) -> ExitCode {
    let checked = match Config::check(path) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let rust_log = match telemetry::env_filter() {
        Ok(v) => v,
        Err(e) => return fail(e),
    };
    for w in checked.warnings() {
        eprintln!("warning: {w}");
    }
    for n in &checked.notes {
        eprintln!("note: {n}");
    }
    if let Some(v) = rust_log {
        eprintln!("note: RUST_LOG={v:?} is set and takes precedence over log.level");
    }
    print!("{}", checked.render_redacted());
    ExitCode::SUCCESS
}

/// The main runtime: the auth task, admin endpoints, signals and systemd
/// notifications. The proxy listener is served by worker threads with
/// runtimes of their own (see `proxy.worker_threads`).
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()
}

fn run(path: &Path) -> ExitCode {
    // Before any thread starts: it clears LISTEN_FDS from the environment.
    let inherited = match server::inherited_listeners() {
        Ok(l) => l,
        Err(e) => return fail(e),
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => return fail(format!("cannot start the runtime: {e}")),
    };
    let code = rt.block_on(serve(path.to_path_buf(), inherited));
    // Nothing that still runs on the blocking pool (a read that never ends)
    // may keep the process once it has stopped.
    rt.shutdown_background();
    code
}

async fn serve(path: PathBuf, inherited: Option<server::Passed>) -> ExitCode {
    // First of all, so that a SIGHUP or SIGTERM while the configuration
    // loads (a keystore takes seconds to unlock) cannot end the process
    // with no word.
    let mut signals = match Signals::new() {
        Ok(s) => s,
        Err(e) => return fail(format!("cannot install signal handlers: {e}")),
    };
    let mut load = tokio::task::spawn_blocking(move || Config::load(&path));
    let mut hangup_during_start = false;
    let loaded = loop {
        tokio::select! {
            loaded = &mut load => break loaded,
            sig = signals.recv() => match sig {
                Signal::Hangup => hangup_during_start = true,
                sig => {
                    eprintln!("ethgas-sidecar: {sig:?} while loading the configuration: stopped before starting");
                    return ExitCode::SUCCESS;
                }
            },
        }
    };
    let config = match loaded {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return fail(e),
        Err(e) => return fail(format!("loading the configuration failed: {e}")),
    };
    let log = match telemetry::init(&config.log()) {
        Ok(h) => h,
        Err(e) => return fail(e),
    };
    let listeners = match Listeners::open(&config, inherited).await {
        Ok(l) => l,
        Err(e) => return fail(e),
    };
    let shutdown = CancellationToken::new();
    let (reload_tx, reload_rx) = mpsc::unbounded_channel();
    if hangup_during_start {
        // The file may have changed after it was read: read it again once
        // the sidecar runs.
        tracing::info!("SIGHUP arrived while starting: the configuration is reloaded now that the sidecar runs");
        let _ = reload_tx.send(());
    }
    tokio::spawn(signal::drive(signals, shutdown.clone(), Some(reload_tx)));
    let control = Control {
        shutdown,
        reload: Some(reload_rx),
        notifier: Notifier::from_env(),
        log: Some(log),
        trim: trim(),
    };
    match app::run(config, listeners, control).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

/// glibc's `malloc_trim`: after a burst, the free memory of every arena goes
/// back to the system (see `ethgas_sidecar::memory`).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() -> Option<ethgas_sidecar::memory::Trim> {
    fn malloc_trim() {
        // SAFETY: malloc_trim takes no pointers; it only walks the
        // allocator's own free lists, under the allocator's locks.
        unsafe {
            libc::malloc_trim(0);
        }
    }
    Some(malloc_trim)
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() -> Option<ethgas_sidecar::memory::Trim> {
    None
}

/// Runs `work` on the main runtime with text logs; for `demo` and `mock-api`.
fn run_simple(work: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    let log = LogSettings {
        level: None,
        format: LogFormat::Text,
    };
    if let Err(e) = telemetry::init(&log) {
        return fail(e);
    }
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => return fail(format!("cannot start the runtime: {e}")),
    };
    match rt.block_on(work) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

//! The command line: parses it and calls into the library. Nothing else.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use ethgas_sidecar::app::{self, Control, Listeners};
use ethgas_sidecar::config::{self, Config, LogFormat, LogSettings};
use ethgas_sidecar::demo::DemoAuth;
use ethgas_sidecar::eth::Address;
use ethgas_sidecar::mock::{Flavour, MockConfig};
use ethgas_sidecar::notify::Notifier;
use ethgas_sidecar::signal::{self, Signals};
use ethgas_sidecar::{demo, server, telemetry};

#[derive(Parser)]
#[command(name = "ethgas-sidecar", version, about = "A local auth sidecar for the ETHGas API")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the sidecar (the service).
    Run {
        #[arg(long, short, default_value = config::DEFAULT_CONFIG_PATH)]
        config: PathBuf,
    },
    /// Validate a config file and print the effective configuration, secrets redacted.
    CheckConfig {
        #[arg(long, short, default_value = config::DEFAULT_CONFIG_PATH)]
        config: PathBuf,
    },
    /// Start the built-in mock ETHGas API and the sidecar in front of it (no account or network needed).
    Demo {
        /// Proxy address (falls back to a free port if taken).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Admin address (falls back to a free port if taken).
        #[arg(long, default_value = "127.0.0.1:9090")]
        admin: SocketAddr,
        /// Lifetime of the mock's access tokens, short so refreshes show in the log.
        #[arg(long, default_value = "6s", value_parser = humantime::parse_duration)]
        token_lifetime: Duration,
        /// The login to show: "password" (the documented API) or "wallet"
        /// (the live API's EIP-712 login, with a throwaway key).
        #[arg(long, default_value = "password")]
        auth: DemoAuth,
    },
    /// Run only the built-in mock ETHGas API, to test programs offline.
    MockApi {
        #[arg(long, default_value = "127.0.0.1:8081")]
        listen: SocketAddr,
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        token_lifetime: Duration,
        #[arg(long, default_value = "demo")]
        username: String,
        #[arg(long, default_value = "demo-password")]
        password: String,
        /// "documented" (username/password) or "live" (wallet login, as
        /// mainnet.app.ethgas.com).
        #[arg(long, default_value = "documented")]
        flavor: Flavour,
        /// With --flavor live: the one wallet address that may log in (any, if not given).
        #[arg(long)]
        address: Option<Address>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { config } => check_config(&config),
        Command::Run { config } => run(&config),
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

fn check_config(path: &Path) -> ExitCode {
    match Config::load(path) {
        Ok(config) => {
            for w in &config.warnings {
                eprintln!("warning: {w}");
            }
            print!("{}", config.render_redacted());
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

/// The main runtime: the auth task, admin endpoints, signals and systemd
/// notifications. The proxy listener is served by worker threads with
/// runtimes of their own (see `proxy.worker_threads`).
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()
}

fn run(path: &Path) -> ExitCode {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    // Before any thread starts: it clears LISTEN_FDS from the environment.
    let inherited = match server::inherited_listeners() {
        Ok(l) => l,
        Err(e) => return fail(e),
    };
    let log = match telemetry::init(&config.log()) {
        Ok(h) => h,
        Err(e) => return fail(e),
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => return fail(format!("cannot start the runtime: {e}")),
    };
    rt.block_on(async move {
        let signals = match Signals::new() {
            Ok(s) => s,
            Err(e) => return fail(format!("cannot install signal handlers: {e}")),
        };
        let listeners = match Listeners::open(&config, inherited).await {
            Ok(l) => l,
            Err(e) => return fail(e),
        };
        let shutdown = CancellationToken::new();
        let (reload_tx, reload_rx) = mpsc::unbounded_channel();
        tokio::spawn(signal::drive(signals, shutdown.clone(), Some(reload_tx)));
        let control = Control {
            shutdown,
            reload: Some(reload_rx),
            notifier: Notifier::from_env(),
            log: Some(log),
        };
        match app::run(config, listeners, control).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(e),
        }
    })
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

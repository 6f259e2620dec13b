//! The command line: parses it and calls into the library. Nothing else.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use ethgas_sidecar::app::{self, Control, Listeners};
use ethgas_sidecar::cli::{Cli, Command};
use ethgas_sidecar::config::{Config, Listen};
use ethgas_sidecar::mock::{self, Mock, MockConfig};
use ethgas_sidecar::notify::Notifier;
use ethgas_sidecar::server::{Inherited, Listener};
use ethgas_sidecar::signal::{Signal, Signals};
use ethgas_sidecar::status;
use ethgas_sidecar::telemetry::{self, LogFormat, LogSettings};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { config } => check_config(&config),
        Command::Run { config } => run(&config),
        Command::Status { config, admin, json } => status::run(&config, admin.as_deref(), json),
        Command::Demo {
            listen,
            admin,
            token_lifetime,
        } => demo(listen, admin, token_lifetime),
        Command::MockApi {
            listen,
            token_lifetime,
            username,
            password,
        } => mock_api(listen, token_lifetime, username, password),
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

/// Listeners handed over by systemd (socket activation), by name (`proxy`,
/// `admin`) or else by position. Must run before any thread starts: it
/// clears `LISTEN_FDS` from the environment.
fn inherited_listeners() -> Result<Option<(Inherited, Option<Inherited>)>, String> {
    let mut fds = listenfd::ListenFd::from_env();
    let count = fds.len();
    if count == 0 {
        return Ok(None);
    }
    let names: Vec<String> = std::env::var("LISTEN_FDNAMES")
        .map(|v| v.split(':').map(str::to_string).collect())
        .unwrap_or_default();
    let mut take = |idx: usize| -> Result<Option<Inherited>, String> {
        if let Ok(Some(l)) = fds.take_tcp_listener(idx) {
            return Ok(Some(Inherited::Tcp(l)));
        }
        match fds.take_unix_listener(idx) {
            Ok(Some(l)) => Ok(Some(Inherited::Unix(l))),
            Ok(None) => Ok(None),
            Err(e) => Err(format!("socket-activation fd {}: {e}", idx + 3)),
        }
    };
    let by_name = |name: &str| names.iter().position(|n| n == name);
    let (proxy_idx, admin_idx) = match (by_name("proxy"), by_name("admin")) {
        (Some(p), a) => (p, a),
        (None, Some(a)) => (if a == 0 { 1 } else { 0 }, Some(a)),
        (None, None) => (0, (count > 1).then_some(1)),
    };
    let proxy = take(proxy_idx)?.ok_or("socket activation: no proxy listener among the passed fds")?;
    let admin = match admin_idx {
        Some(i) => take(i)?,
        None => None,
    };
    Ok(Some((proxy, admin)))
}

fn run(path: &Path) -> ExitCode {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let inherited = match inherited_listeners() {
        Ok(l) => l,
        Err(e) => return fail(e),
    };
    let log = match telemetry::init(&config.log) {
        Ok(h) => h,
        Err(e) => return fail(e),
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => return fail(format!("cannot start the runtime: {e}")),
    };
    rt.block_on(async move {
        let mut signals = match Signals::new() {
            Ok(s) => s,
            Err(e) => return fail(format!("cannot install signal handlers: {e}")),
        };
        let listeners = match inherited {
            Some((proxy, admin)) => {
                let adopt = |l| Listener::adopt(l).map_err(|e| format!("cannot use the socket passed by systemd: {e}"));
                let proxy = match adopt(proxy) {
                    Ok(l) => l,
                    Err(e) => return fail(e),
                };
                info!(proxy = %proxy.describe(), "using sockets passed by systemd");
                let admin = match admin.map(adopt) {
                    Some(Ok(a)) => Some(a),
                    Some(Err(e)) => return fail(e),
                    None => match Listener::bind(&config.admin.listen, 0o660).await {
                        Ok(a) => Some(a),
                        Err(e) => return fail(format!("cannot listen on admin.listen = {}: {e}", config.admin.listen)),
                    },
                };
                Listeners { proxy, admin }
            }
            None => match Listeners::bind(&config).await {
                Ok(l) => l,
                Err(e) => return fail(e),
            },
        };
        let shutdown = CancellationToken::new();
        let (reload_tx, reload_rx) = mpsc::unbounded_channel();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            loop {
                match signals.recv().await {
                    Signal::Hangup => {
                        let _ = reload_tx.send(());
                    }
                    sig if stop.is_cancelled() => {
                        warn!(?sig, "second stop signal: exiting without waiting for the drain");
                        std::process::exit(130);
                    }
                    sig => {
                        info!(?sig, "stopping: no new connections; finishing requests in flight");
                        stop.cancel();
                    }
                }
            }
        });
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

/// Binds `addr`, or a free port on the same host if it is taken.
async fn bind_or_any(addr: SocketAddr, what: &str) -> std::io::Result<Listener> {
    match Listener::bind(&Listen::Tcp(addr), 0o660).await {
        Ok(l) => Ok(l),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            let l = Listener::bind(&Listen::Tcp(SocketAddr::new(addr.ip(), 0)), 0o660).await?;
            eprintln!("note: {addr} is taken; the {what} listens on {} instead", l.describe());
            Ok(l)
        }
        Err(e) => Err(e),
    }
}

fn demo(listen: SocketAddr, admin: SocketAddr, token_lifetime: Duration) -> ExitCode {
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
    rt.block_on(async move {
        let shutdown = CancellationToken::new();
        // The mock outlives the sidecar, so the sidecar's logout reaches it.
        let mock_stop = CancellationToken::new();
        let mock_config = MockConfig {
            token_lifetime,
            ..MockConfig::default()
        };
        let (user, password) = (mock_config.username.clone(), mock_config.password.clone());
        let mock_addr = match mock::spawn(SocketAddr::from(([127, 0, 0, 1], 0)), Mock::new(mock_config), mock_stop.clone()).await {
            Ok(a) => a,
            Err(e) => return fail(format!("cannot start the mock API: {e}")),
        };
        let proxy = match bind_or_any(listen, "proxy").await {
            Ok(l) => l,
            Err(e) => return fail(format!("cannot listen on {listen}: {e}")),
        };
        let admin_l = match bind_or_any(admin, "admin endpoint").await {
            Ok(l) => l,
            Err(e) => return fail(format!("cannot listen on {admin}: {e}")),
        };
        let (p, a) = (proxy.describe(), admin_l.describe());
        let dir = std::env::temp_dir().join(format!("ethgas-sidecar-demo-{}", std::process::id()));
        let pw = dir.join("password");
        if let Err(e) = std::fs::create_dir_all(&dir).and_then(|_| write_private(&pw, &format!("{password}\n"))) {
            return fail(format!("cannot write the demo password file in {}: {e}", dir.display()));
        }
        let text = format!(
            "[proxy]\nlisten = {p:?}\ntoken_wait = \"5s\"\n\n[upstream]\nbase_url = \"http://{mock_addr}\"\n\n\
             [auth]\nusername = {user:?}\npassword_file = {:?}\n\n[admin]\nlisten = {a:?}\n",
            pw.display().to_string()
        );
        let config = match Config::from_toml(&text, &dir.join("demo.toml")) {
            Ok(c) => c,
            Err(e) => return fail(e),
        };
        let _ = std::fs::remove_dir_all(&dir);
        println!(
            "\nethgas-sidecar demo\n\
             \x20 mock ETHGas API  http://{mock_addr}   (account {user:?}, tokens live {})\n\
             \x20 sidecar          http://{p}\n\
             \x20 admin            http://{a}\n\n\
             Try, in another terminal:\n\
             \x20 curl -s http://{p}/api/v1/user/info                      # private endpoint: the sidecar adds the token\n\
             \x20 curl -s http://{p}/api/v1/mock/echo -H 'Authorization: Bearer mine'   # your header is replaced\n\
             \x20 curl -s -X POST http://{p}/api/v1/user/login -d '{{\"username\":\"{user}\",\"password\":\"x\"}}'   # answered with placeholders\n\
             \x20 curl -s -x http://{p} http://{mock_addr}/api/v1/user/info   # HTTP_PROXY style\n\
             \x20 curl -s http://{a}/readyz\n\
             \x20 curl -s http://{a}/metrics | grep ethgas_sidecar_auth\n\n\
             Watch the log for \"token refreshed\" every few seconds. Ctrl-C stops.\n",
            humantime::format_duration(token_lifetime)
        );
        let stop = shutdown.clone();
        tokio::spawn(async move {
            if let Ok(mut signals) = Signals::new() {
                loop {
                    if signals.recv().await != Signal::Hangup {
                        stop.cancel();
                        break;
                    }
                }
            }
        });
        let listeners = Listeners {
            proxy,
            admin: Some(admin_l),
        };
        let result = app::run(config, listeners, Control::new(shutdown)).await;
        mock_stop.cancel();
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(e),
        }
    })
}

/// Writes a file only its owner can read.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())
}

fn mock_api(listen: SocketAddr, token_lifetime: Duration, username: String, password: String) -> ExitCode {
    if let Err(e) = telemetry::init(&LogSettings {
        level: None,
        format: LogFormat::Text,
    }) {
        return fail(e);
    }
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => return fail(format!("cannot start the runtime: {e}")),
    };
    rt.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(listen).await {
            Ok(l) => l,
            Err(e) => return fail(format!("cannot listen on {listen}: {e}")),
        };
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            if let Ok(mut signals) = Signals::new() {
                loop {
                    if signals.recv().await != Signal::Hangup {
                        stop.cancel();
                        break;
                    }
                }
            }
        });
        let config = MockConfig {
            username,
            password,
            token_lifetime,
            ..MockConfig::default()
        };
        println!(
            "mock ETHGas API on http://{listen} — account {:?}; POST /api/v1/user/login, private GET /api/v1/user/info, WebSocket on /ws",
            config.username
        );
        mock::serve(listener, Mock::new(config), shutdown).await;
        ExitCode::SUCCESS
    })
}

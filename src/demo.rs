//! The embedded default: `ethgas-sidecar demo` (the built-in mock API and a
//! sidecar in front of it, on loopback, no account or network needed) and
//! `ethgas-sidecar mock-api` (the mock alone, to test programs offline).
//!
//! The demo's configuration is a value ([`Config::for_account`]) with every
//! default, pointed at the mock; nothing is written to disk.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ethgas_mock::{self as mock, Flavour, Mock, MockConfig};
use tokio_util::sync::CancellationToken;

use crate::app::{self, Control, Listeners};
use crate::config::{Config, Listen};
use crate::eth::WalletKey;
use crate::secret::Secret;
use crate::server::Listener;
use crate::signal::{self, Signals};

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

/// Which login the demo shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DemoAuth {
    /// The documented username/password login.
    Password,
    /// The live API's wallet login, with a throwaway key made in memory.
    Wallet,
}

impl std::str::FromStr for DemoAuth {
    type Err = String;

    fn from_str(s: &str) -> Result<DemoAuth, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "password" => Ok(DemoAuth::Password),
            "wallet" => Ok(DemoAuth::Wallet),
            other => Err(format!(
                "{other:?} is not a login method; use \"password\" or \"wallet\""
            )),
        }
    }
}

/// Runs the mock API and a sidecar in front of it until SIGINT/SIGTERM.
pub async fn run(
    listen: SocketAddr,
    admin: SocketAddr,
    token_lifetime: Duration,
    auth: DemoAuth,
) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    let signals = Signals::new().map_err(|e| anyhow::anyhow!("cannot install signal handlers: {e}"))?;
    tokio::spawn(signal::drive(signals, shutdown.clone(), None));
    // The mock outlives the sidecar, so the sidecar's logout reaches it.
    let mock_stop = CancellationToken::new();
    // The demo's wallet: made here, in memory, and gone when it stops. Only
    // its address is ever shown.
    let key = (auth == DemoAuth::Wallet).then(|| Arc::new(WalletKey::random()));
    let mock_config = MockConfig {
        token_lifetime,
        flavour: if key.is_some() {
            Flavour::Live
        } else {
            Flavour::Documented
        },
        address: key.as_ref().map(|k| k.address()),
        ..MockConfig::default()
    };
    let (user, password) = (mock_config.username.clone(), mock_config.password.clone());
    let mock_addr = mock::spawn(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        Mock::new(mock_config),
        mock_stop.clone(),
    )
    .await
    .map_err(|e| anyhow::anyhow!("cannot start the mock API: {e}"))?;
    let proxy = bind_or_any(listen, "proxy")
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    let admin_l = bind_or_any(admin, "admin endpoint")
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {admin}: {e}"))?;
    let (p, a) = (proxy.describe(), admin_l.describe());
    let base = format!("http://{mock_addr}");
    if let Some(key) = key {
        let address = key.address();
        let config = Config::for_wallet(&base, key)?;
        println!(
            "\nethgas-sidecar demo (wallet login, as the live API at mainnet.app.ethgas.com)\n\
             \x20 mock ETHGas API  http://{mock_addr}   (live flavour, tokens live {})\n\
             \x20 wallet           {address}   (a throwaway key made for this run; only its address is shown)\n\
             \x20 sidecar          http://{p}\n\
             \x20 admin            http://{a}\n\n\
             Try, in another terminal:\n\
             \x20 curl -s http://{p}/api/v1/user/info                      # private endpoint: the sidecar adds the token\n\
             \x20 curl -s -X POST 'http://{p}/api/v1/user/login?addr={address}'   # a program's own wallet login: answered by the sidecar\n\
             \x20 curl -s -X POST 'http://{p}/api/v1/user/login?addr=0x0000000000000000000000000000000000000001'   # another wallet: refused\n\
             \x20 curl -s http://{a}/readyz\n\n\
             Watch the log for \"token refreshed\" every few seconds. Ctrl-C stops.\n",
            humantime::format_duration(token_lifetime)
        );
        return serve(
            config,
            Listeners {
                proxy,
                admin: Some(admin_l),
                more: Vec::new(),
            },
            shutdown,
            mock_stop,
        )
        .await;
    }
    let config = Config::for_account(&base, &user, Secret::new(password))?;
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
    serve(
        config,
        Listeners {
            proxy,
            admin: Some(admin_l),
            more: Vec::new(),
        },
        shutdown,
        mock_stop,
    )
    .await
}

/// Runs the demo's sidecar until `shutdown`, then stops its mock API.
async fn serve(
    config: Config,
    listeners: Listeners,
    shutdown: CancellationToken,
    mock_stop: CancellationToken,
) -> anyhow::Result<()> {
    let result = app::run(config, listeners, Control::new(shutdown)).await;
    mock_stop.cancel();
    result
}

/// Runs only the mock API on `listen` until SIGINT/SIGTERM.
pub async fn mock_api(listen: SocketAddr, config: MockConfig) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    let shutdown = CancellationToken::new();
    let signals = Signals::new().map_err(|e| anyhow::anyhow!("cannot install signal handlers: {e}"))?;
    tokio::spawn(signal::drive(signals, shutdown.clone(), None));
    match config.flavour {
        Flavour::Documented => println!(
            "mock ETHGas API on http://{listen} — account {:?}; POST /api/v1/user/login, private GET /api/v1/user/info, WebSocket on /ws",
            config.username
        ),
        Flavour::Live => println!(
            "mock ETHGas API (live flavour) on http://{listen} — wallet {}; POST /api/v1/user/login?addr=…, /login/verify, /login/refresh, private GET /api/v1/user/info, WebSocket on /ws",
            config.address.map_or("any address".to_string(), |a| a.to_string())
        ),
    }
    mock::serve(listener, Mock::new(config), shutdown).await;
    Ok(())
}

//! The embedded default: `ethgas-sidecar demo` (the built-in mock API and a
//! sidecar in front of it, on loopback, no account or network needed) and
//! `ethgas-sidecar mock-api` (the mock alone, to test programs offline).
//!
//! The demo's configuration is a value ([`Config::for_account`]) with every
//! default, pointed at the mock; nothing is written to disk.

use std::net::SocketAddr;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::app::{self, Control, Listeners};
use crate::config::{Config, Listen};
use crate::mock::{self, Mock, MockConfig};
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

/// Runs the mock API and a sidecar in front of it until SIGINT/SIGTERM.
pub async fn run(listen: SocketAddr, admin: SocketAddr, token_lifetime: Duration) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    let signals = Signals::new().map_err(|e| anyhow::anyhow!("cannot install signal handlers: {e}"))?;
    tokio::spawn(signal::drive(signals, shutdown.clone(), None));
    // The mock outlives the sidecar, so the sidecar's logout reaches it.
    let mock_stop = CancellationToken::new();
    let mock_config = MockConfig {
        token_lifetime,
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
    let config = Config::for_account(&format!("http://{mock_addr}"), &user, Secret::new(password))?;
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
    let listeners = Listeners {
        proxy,
        admin: Some(admin_l),
    };
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
    println!(
        "mock ETHGas API on http://{listen} — account {:?}; POST /api/v1/user/login, private GET /api/v1/user/info, WebSocket on /ws",
        config.username
    );
    mock::serve(listener, Mock::new(config), shutdown).await;
    Ok(())
}

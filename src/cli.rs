//! The command line: what `ethgas-sidecar` accepts, as clap definitions.
//!
//! It lives in the library, not in `main.rs`, so that the man pages and the
//! shell completions shipped in the Debian package are generated from these
//! very definitions (`tests/cli.rs` regenerates them and fails when the
//! committed copies under `contrib/` differ). `main.rs` parses with [`Cli`]
//! and calls into the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand, ValueHint};
use ethgas_mock::Flavour;

use crate::config::DEFAULT_CONFIG_PATH;
use crate::demo::DemoAuth;
use crate::eth::Address;

/// The version `--version` prints: the crate version and the git commit it
/// was built from (see `build.rs`), e.g. "0.1.0 (commit 5b911a7c1e2f)".
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("ETHGAS_SIDECAR_COMMIT"),
    ")"
);

/// The git commit the binary was built from ("unknown" without git).
pub const COMMIT: &str = env!("ETHGAS_SIDECAR_COMMIT");

const ABOUT: &str = "A local auth sidecar for the ETHGas API";

const LONG_ABOUT: &str = "\
A local auth sidecar for the ETHGas API. It logs in once with the account's \
credentials, keeps the token pair in memory, refreshes it before it expires, \
and forwards every request that programs on the same host send it to the API \
with `Authorization: Bearer <token>` added. The programs only change their \
base URL to http://127.0.0.1:8080 (or set HTTP_PROXY); they never hold the \
password or a live token.";

const AFTER_LONG_HELP: &str = "\
Files:
  /etc/ethgas-sidecar/config.toml
      The configuration. Every key with its default:
      /usr/share/doc/ethgas-sidecar/config.toml.example
  /etc/ethgas-sidecar/password
      The password, handed to the service as the systemd credential \"password\".
  /etc/ethgas-sidecar/NAME.toml, /etc/ethgas-sidecar/NAME.password
      The same for the instance NAME of the template unit ethgas-sidecar@.service.

See also:
  ethgas-sidecar status           the running service at a glance
  journalctl -u ethgas-sidecar    its log
  /usr/share/doc/ethgas-sidecar/README.md";

#[derive(Debug, Parser)]
#[command(
    name = "ethgas-sidecar",
    version = VERSION,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_long_help = AFTER_LONG_HELP
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the sidecar (the service).
    ///
    /// Logs in, then serves the proxy and admin listeners until SIGTERM or
    /// SIGINT (drain, log out, exit 0); SIGHUP reloads the configuration.
    /// Exits 1 with a message naming the key to fix when the configuration is
    /// unusable.
    Run {
        /// The configuration file.
        #[arg(long, short, default_value = DEFAULT_CONFIG_PATH, value_hint = ValueHint::FilePath)]
        config: PathBuf,
    },
    /// Validate a config file and print the effective configuration, secrets redacted.
    ///
    /// Exits 0 when the file is usable, 1 with a message naming the offending
    /// key otherwise.
    CheckConfig {
        /// The configuration file.
        #[arg(long, short, default_value = DEFAULT_CONFIG_PATH, value_hint = ValueHint::FilePath)]
        config: PathBuf,
    },
    /// Show whether the running sidecar holds a token, and why not.
    ///
    /// Asks the admin listener for /readyz and prints the state, the account,
    /// the time left on the token, the next refresh, the last login and
    /// refresh, the last error and the failures in a row. Only `admin.listen`
    /// is read from the configuration file, so no access to the password is
    /// needed. With several sidecars on the host, `--instance NAME` asks the
    /// instance ethgas-sidecar@NAME of the template unit.
    #[command(after_long_help = "\
Exit status:
  0  ready: a valid token is held
  1  not ready: logging in, or login failing (see the last error)
  2  no answer from the admin listener (not running, wrong address, no permission)")]
    Status {
        /// The configuration file whose `admin.listen` to ask.
        #[arg(long, short, default_value = DEFAULT_CONFIG_PATH, value_hint = ValueHint::FilePath)]
        config: PathBuf,
        /// The instance NAME of ethgas-sidecar@.service to ask: reads `admin.listen`
        /// from /etc/ethgas-sidecar/NAME.toml (instead of --config).
        #[arg(long, short, value_name = "NAME", conflicts_with = "config")]
        instance: Option<String>,
        /// The admin listener to ask instead: IP:PORT, HOST:PORT or unix:/path.
        #[arg(long, value_name = "ADDR")]
        admin: Option<String>,
        /// Print the /readyz JSON as received, for scripts (the exit status still applies).
        #[arg(long)]
        json: bool,
    },
    /// Start the built-in mock ETHGas API and the sidecar in front of it (no account or network needed).
    Demo {
        /// Proxy address (falls back to a free port if taken).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Admin address (falls back to a free port if taken).
        #[arg(long, default_value = "127.0.0.1:9090")]
        admin: SocketAddr,
        /// Lifetime of the mock's access tokens, short so refreshes show in
        /// the log (and not shorter than `auth.min_call_interval` allows).
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        token_lifetime: Duration,
        /// The login to show: "password" (the documented API) or "wallet"
        /// (the live API's EIP-712 login, with a throwaway key).
        #[arg(long, default_value = "password")]
        auth: DemoAuth,
    },
    /// Run only the built-in mock ETHGas API, to test programs offline.
    MockApi {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8081")]
        listen: SocketAddr,
        /// Lifetime of the access tokens it issues.
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        token_lifetime: Duration,
        /// The account it accepts.
        #[arg(long, default_value = "demo")]
        username: String,
        /// The account's password.
        #[arg(long, default_value = "demo-password")]
        password: String,
        /// "documented" (username/password) or "live" (wallet login, as
        /// mainnet.app.ethgas.com).
        #[arg(long, default_value = "documented")]
        flavor: Flavour,
        /// With --flavor live: the one wallet address that may log in (any, if not given).
        #[arg(long, value_parser = crate::eth::parse_address)]
        address: Option<Address>,
    },
}

/// The clap command, for generating the man pages and shell completions.
pub fn command() -> clap::Command {
    Cli::command()
}

#[cfg(test)]
mod tests;

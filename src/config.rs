//! Configuration: the TOML file, read once and validated up front.
//!
//! Two stages, as in ripgrep's `flags/` and rathole's `config.rs`: the raw
//! serde structs of `raw` mirror the file (unknown keys rejected), and
//! [`Config::from_toml`] turns them into a [`Config`] of real types
//! (`SocketAddr`, `Uri`, `Duration`), loading the password from its one
//! source. Every error names the key and the file, so `check-config` and a
//! failed start say exactly what to fix. Nothing after this module parses
//! strings from the file again.
//!
//! The validated configuration is split by what a change of it needs:
//! [`Restart`] holds what is fixed once the sidecar runs (listeners, workers,
//! the upstream and its TLS, log format, the header limits hyper is built
//! with), [`Live`] what a reload (SIGHUP) applies to a running sidecar. Both
//! serialize to the file's own sections and keys, which gives `check-config`
//! its output and a reload the names of the keys that need a restart —
//! computed from the data ([`Config::restart_differences`]), never listed by
//! hand. Adding a key touches its raw field, its validation and its typed
//! field (whose doc comment is its documentation), and `config.toml.example`
//! (a test derives the keys it must show from the raw structs).
//!
//! Every file read on the way (the config file, secret files, `ca_file`) is
//! a regular file within a size limit (`files`), and no error quotes a
//! file's contents (`syntax`). `check-config` validates with
//! [`Config::check`], which leaves a systemd credential for the start when
//! `$CREDENTIALS_DIRECTORY` is unset and says so.

mod credentials;
mod defaults;
mod doors;
mod effective;
mod files;
mod raw;
mod secrets;
mod syntax;
mod validate;
mod values;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::Uri;
use ipnet::IpNet;
use serde::{Serialize, Serializer};

use crate::envelope::Envelope;
use crate::eth::{Address, WalletKey};
use crate::secret::Secret;
pub use crate::telemetry::{LogFormat, LogSettings};

pub use doors::{AuditSettings, Door, MAIN_LISTENER, Policy};
pub use effective::Checked;
pub(crate) use files::read_bytes;
pub use files::read_config_text;
pub use files::{MAX_CA_FILE_BYTES, MAX_CONFIG_BYTES, MAX_SECRET_BYTES};
pub use secrets::{load_key, load_password};
pub use values::admin_listen;

pub const DEFAULT_CONFIG_PATH: &str = "/etc/ethgas-sidecar/config.toml";

/// A configuration that cannot be used, with the key and the file it came from.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{}: {message}", path.display())]
    Syntax { path: PathBuf, message: String },
    #[error("{}: `{key}`: {message}", path.display())]
    Invalid {
        path: PathBuf,
        key: String,
        message: String,
    },
}

/// Where a listener listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl std::fmt::Display for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Listen::Tcp(addr) => write!(f, "{addr}"),
            Listen::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

impl Serialize for Listen {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Where the password comes from. Kept so that a reload (SIGHUP) reads the
/// same source again; serialized as the key it was given by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum PasswordSource {
    #[serde(rename = "password_file")]
    File(PathBuf),
    #[serde(rename = "password_env")]
    Env(String),
    #[serde(rename = "password_credential")]
    Credential(String),
    /// Given as a value, not read from anywhere (the demo's own account).
    #[serde(rename = "password", serialize_with = "effective::redacted")]
    Inline(Secret),
}

/// Where the wallet key comes from (method "wallet"). Kept so that a reload
/// reads the same source again; serialized as the keys it was given by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `0x`-hex secp256k1 key in a file only its owner can read.
    File(PathBuf),
    Env(String),
    /// A systemd credential (`LoadCredential=`).
    Credential(String),
    /// A Web3 Secret Storage (V3) keystore and where its password comes from.
    Keystore {
        file: PathBuf,
        password: PasswordSource,
    },
    /// Given as a value (the demo's throwaway key).
    Inline(Arc<WalletKey>),
}

impl PartialEq for WalletKey {
    fn eq(&self, other: &Self) -> bool {
        self.address() == other.address()
    }
}

impl Eq for WalletKey {}

/// Who the sidecar logs in as, and with what.
#[derive(Clone, PartialEq, Serialize)]
#[serde(tag = "method", rename_all = "lowercase")]
pub enum Credentials {
    /// The documented login: username and password.
    Password {
        username: String,
        #[serde(flatten)]
        source: PasswordSource,
        #[serde(skip)]
        password: Secret,
    },
    /// The live API's login: an EIP-712 signature of the account's key.
    Wallet {
        #[serde(serialize_with = "effective::display")]
        address: Address,
        #[serde(skip_serializing_if = "Option::is_none")]
        display_name: Option<String>,
        #[serde(flatten)]
        source: KeySource,
        /// The key itself, loaded once per (re)load; never printed.
        #[serde(skip)]
        key: Arc<WalletKey>,
    },
}

/// The API's base URL: its origin. Programs send the API's full paths
/// (`/api/v1/…`), so a path in `upstream.base_url` is refused (it would be
/// put in front of each: `/api/v1/api/v1/user/login`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl {
    /// Scheme and authority, e.g. `https://api.ethgas.com`.
    pub origin: Uri,
    /// The path prefix forwarded paths are appended to: always "" now that
    /// a path is refused (`upstream::Target` still reads it).
    pub path: String,
}

impl std::fmt::Display for BaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", origin(&self.origin), self.path)
    }
}

impl Serialize for BaseUrl {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

// ---------------------------------------------------------------------------
// What needs a restart.

/// Settings fixed for the life of the process: a reload that changes one of
/// them says so and leaves it as it is.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Restart {
    pub proxy: ProxyListener,
    pub upstream: UpstreamSettings,
    pub admin: AdminSettings,
    pub log: LogOutput,
    pub audit: AuditSettings,
    /// Proxy listeners besides `proxy.listen`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub listeners: Vec<Door>,
}

/// How the proxy listener is served.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProxyListener {
    pub listen: Listen,
    /// File mode of a unix-socket listener.
    #[serde(serialize_with = "effective::octal")]
    pub unix_mode: u32,
    /// Largest request head accepted; hyper's read buffer is sized from it
    /// when a worker starts.
    pub max_header_bytes: usize,
    pub max_uri_bytes: usize,
    #[serde(serialize_with = "effective::human")]
    pub shutdown_grace: Duration,
    /// Proxy worker threads (each with its own runtime and upstream pool);
    /// 0 means one per core.
    pub worker_threads: usize,
    /// Client connections the proxy listener serves at once; more get a
    /// fast 503 and are closed. The default leaves half the process's file
    /// descriptor limit (`LimitNOFILE=`) for connections to the API.
    pub max_connections: usize,
    /// A client must send a whole request head within this; a slower one is
    /// disconnected.
    #[serde(serialize_with = "effective::human")]
    pub header_read_timeout: Duration,
    /// Bytes of request bodies kept for replay across all connections at
    /// once; a body that does not fit streams and is not replayed.
    pub replay_budget_bytes: usize,
    /// Bytes the WebSocket relay may hold in message buffers across all
    /// sockets; a socket whose message would pass it is closed with 1013.
    pub ws_memory_budget_bytes: usize,
}

impl ProxyListener {
    /// The proxy worker threads to start: `worker_threads`, or one per core.
    pub fn workers(&self) -> usize {
        match self.worker_threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UpstreamSettings {
    pub base_url: BaseUrl,
    #[serde(serialize_with = "effective::display")]
    pub websocket_url: Uri,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    #[serde(serialize_with = "effective::human")]
    pub connect_timeout: Duration,
    /// Until the API's response headers; also bounds opening a WebSocket to
    /// the API (connect, TLS and the upgrade).
    #[serde(serialize_with = "effective::human")]
    pub request_timeout: Duration,
    /// Idle HTTP/1 connections beyond the one kept warm are closed after
    /// this long (20 s): a burst's connections, and their memory, go back
    /// soon after it.
    #[serde(serialize_with = "effective::human")]
    pub pool_idle_timeout: Duration,
    /// Each proxy worker keeps one connection to the API open (an HTTP/2
    /// connection with keep-alive pings, or one fresh idle HTTP/1
    /// connection), opened at start and again whenever it closes, so that no
    /// request waits for a TCP and TLS handshake.
    pub keep_warm: bool,
    /// Idle connections each proxy worker keeps.
    pub pool_max_idle_per_host: usize,
    /// Offer HTTP/2 to an https:// API (ALPN). `false`: HTTP/1.1 connections
    /// only, one request at a time each, as nginx's proxy speaks: less work
    /// per request for a program that sends one request at a time, more
    /// connections and memory under many concurrent requests.
    pub http2: bool,
}

impl UpstreamSettings {
    pub fn is_https(&self) -> bool {
        self.base_url.origin.scheme_str() == Some("https")
    }

    /// The host part of `base_url`, lower-cased, without brackets.
    pub fn host(&self) -> String {
        normalize_host(self.base_url.origin.host().unwrap_or_default())
    }

    pub fn port(&self) -> u16 {
        self.base_url
            .origin
            .port_u16()
            .unwrap_or(if self.is_https() { 443 } else { 80 })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdminSettings {
    pub listen: Listen,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogOutput {
    pub format: LogFormat,
}

// ---------------------------------------------------------------------------
// What a reload applies.

/// Settings a reload applies to the running sidecar: the proxy reads them
/// per request, the auth task gets them with the reload.
#[derive(Clone, PartialEq, Serialize)]
pub struct Live {
    pub proxy: ProxyPolicy,
    pub auth: AuthSettings,
    pub log: LogLevel,
    /// The classes of call each listener may make.
    pub policy: Policy,
}

/// Who may use the account and how requests are treated.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProxyPolicy {
    /// TCP clients allowed to use the account. Anything that reaches the
    /// listener acts as the account, so the default is loopback only.
    pub allowed_clients: Vec<IpNet>,
    pub intercept_login: bool,
    /// Hosts that absolute-form (HTTP_PROXY) requests may name besides the
    /// upstream's own, lower-cased.
    pub host_aliases: Vec<String>,
    /// Names besides `localhost` and loopback addresses that an origin-form
    /// request's `Host` may carry (lower case): a `Host` naming anything
    /// else is a web page's own domain resolved to this host.
    pub allowed_hosts: Vec<String>,
    /// Web origins (`scheme://host[:port]`) whose pages may use the account;
    /// empty by default, so browsers cannot.
    pub allowed_origins: Vec<String>,
    /// Path prefixes of the API's public market data (`/api/v1/p/`), which
    /// the API serves without a token. While no valid token is held, a
    /// request under one of them is forwarded at once without
    /// `Authorization` instead of waiting for the login. Matched
    /// case-sensitively, on the path as sent and on its normalised form
    /// ([`crate::intercept::is_public`]); each is `/…/`, lower case. Empty:
    /// public paths wait like any other.
    pub public_prefixes: Vec<String>,
    /// How long a request waits for a token when none is valid.
    #[serde(serialize_with = "effective::human")]
    pub token_wait: Duration,
    /// Request bodies up to this size are kept so a request can be replayed
    /// once after a 401; larger bodies stream and are not replayed.
    #[serde(rename = "replay_buffer_bytes")]
    pub replay_buffer: usize,
    /// A request body that sends nothing for this long ends with a 408.
    #[serde(serialize_with = "effective::human")]
    pub body_idle_timeout: Duration,
    /// Largest WebSocket message (and frame) either side of a relay may
    /// send; a larger one closes the socket with 1009. A socket keeps the
    /// limit it was opened with, so a reload applies to new sockets.
    pub ws_max_message_bytes: usize,
}

#[derive(Clone, PartialEq, Serialize)]
pub struct AuthSettings {
    #[serde(flatten)]
    pub credentials: Credentials,
    pub refresh_ratio: f64,
    pub login_path: String,
    pub refresh_path: String,
    pub verify_path: String,
    pub logout_path: String,
    /// Lifetime assumed when the API gives neither `expiresIn` nor a JWT `exp`.
    #[serde(serialize_with = "effective::human")]
    pub default_lifetime: Duration,
    /// Bound on one login, refresh or logout call.
    #[serde(serialize_with = "effective::human")]
    pub timeout: Duration,
    /// Cap of the fast backoff used for outages (connect errors, 5xx, garbage).
    #[serde(serialize_with = "effective::human")]
    pub retry_max: Duration,
    /// Cap of the slow backoff used when the API refuses the credentials.
    #[serde(serialize_with = "effective::human")]
    pub credential_retry_max: Duration,
    /// Least time between two re-authentications that clients' 401s cause;
    /// doubles while the new tokens keep being rejected.
    #[serde(serialize_with = "effective::human")]
    pub reauth_min_interval: Duration,
    /// The pace of auth calls: on average no closer than this, whatever
    /// lifetimes the API states (bursts of a few allowed).
    #[serde(serialize_with = "effective::human")]
    pub min_call_interval: Duration,
    pub logout_on_shutdown: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogLevel {
    /// A `RUST_LOG`-style filter; `None` means `RUST_LOG`, else "info".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
}

// ---------------------------------------------------------------------------

/// The validated configuration.
#[derive(Clone)]
pub struct Config {
    /// The file it was read from; a reload reads it again.
    pub path: PathBuf,
    pub restart: Restart,
    pub live: Live,
    /// Things worth a warning once logging is up (e.g. a proxy listener that
    /// is not on loopback).
    pub warnings: Vec<String>,
}

/// Which secrets a load reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Secrets {
    /// All of them (`run`, a reload): a missing one is an error.
    Read,
    /// All that can be read here; a systemd credential while
    /// `$CREDENTIALS_DIRECTORY` is unset is left for the start
    /// (`check-config` before installing).
    Available,
}

impl Config {
    /// Reads, parses and validates the file at `path`, and loads the password.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = read_config_text(path)?;
        Config::from_toml(&text, path)
    }

    /// What `check-config` checks: [`Config::load`], except that a systemd
    /// credential is not required while `$CREDENTIALS_DIRECTORY` is unset.
    pub fn check(path: &Path) -> Result<Checked, ConfigError> {
        let text = read_config_text(path)?;
        let (config, deferred) = validate::parse(&text, path, Secrets::Available)?;
        Ok(Checked::new(config, deferred))
    }

    /// Parses `text` as if it had been read from `path` (which names the file
    /// in errors and anchors relative paths).
    pub fn from_toml(text: &str, path: &Path) -> Result<Config, ConfigError> {
        validate::parse(text, path, Secrets::Read).map(|(config, _)| config)
    }

    /// The configuration of a sidecar in front of `base_url` with every
    /// default and the password given as a value: what `demo` runs.
    pub fn for_account(base_url: &str, username: &str, password: Secret) -> Result<Config, ConfigError> {
        validate::for_account(base_url, Some(username), validate::Given::Password(password))
    }

    /// The same for a wallet login with `key` (`demo --auth wallet`).
    pub fn for_wallet(base_url: &str, key: Arc<WalletKey>) -> Result<Config, ConfigError> {
        validate::for_account(base_url, None, validate::Given::Key(key))
    }

    /// What the log module needs at start.
    pub fn log(&self) -> LogSettings {
        LogSettings {
            level: self.live.log.level.clone(),
            format: self.restart.log.format,
        }
    }

    /// The effective configuration as TOML, with the password redacted; what
    /// `check-config` prints.
    pub fn render_redacted(&self) -> String {
        effective::render(&self.path, &effective::table(self))
    }

    /// The keys (`section.key`) whose new values a reload cannot apply.
    pub fn restart_differences(&self, new: &Config) -> Vec<String> {
        effective::restart_differences(&self.restart, &new.restart)
    }
}

/// `scheme://authority` of a URI (no path).
pub fn origin(uri: &Uri) -> String {
    format!(
        "{}://{}",
        uri.scheme_str().unwrap_or("http"),
        uri.authority().map(|a| a.as_str()).unwrap_or("")
    )
}

/// A host name as compared everywhere: lower case, IPv6 brackets removed.
pub fn normalize_host(host: &str) -> String {
    host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase()
}

#[cfg(test)]
mod tests;

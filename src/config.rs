//! Configuration: the TOML file, read once and validated up front.
//!
//! Two stages, as in ripgrep's `flags/` and rathole's `config.rs`: [`RawConfig`]
//! mirrors the file (serde, unknown keys rejected), and [`Config::from_toml`]
//! turns it into a [`Config`] of real types (`SocketAddr`, `Uri`, `Duration`),
//! loading the password from its one source. Every error names the key and the
//! file, so `check-config` and a failed start say exactly what to fix. Nothing
//! after this module parses strings from the file again.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::Uri;
use ipnet::IpNet;
use serde::Deserialize;

use crate::secret::Secret;
use crate::telemetry::{LogFormat, LogSettings};

pub const DEFAULT_CONFIG_PATH: &str = "/etc/ethgas-sidecar/config.toml";

/// The longest duration a setting may have. Longer is a typo, and the program
/// computes `Instant::now() + d` (token wait, session lifetime), which
/// overflows and panics on values near `u64::MAX` seconds.
const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 86400);

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

// ---------------------------------------------------------------------------
// Stage one: the file as written.

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    proxy: RawProxy,
    upstream: Option<RawUpstream>,
    auth: Option<RawAuth>,
    #[serde(default)]
    admin: RawAdmin,
    #[serde(default)]
    log: RawLog,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProxy {
    listen: Option<String>,
    unix_mode: Option<String>,
    allowed_clients: Option<Vec<String>>,
    intercept_login: Option<bool>,
    host_aliases: Option<Vec<String>>,
    token_wait: Option<String>,
    replay_buffer_bytes: Option<u64>,
    max_header_bytes: Option<u64>,
    max_uri_bytes: Option<u64>,
    shutdown_grace: Option<String>,
    worker_threads: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstream {
    base_url: Option<String>,
    websocket_url: Option<String>,
    ca_file: Option<String>,
    connect_timeout: Option<String>,
    request_timeout: Option<String>,
    pool_idle_timeout: Option<String>,
    pool_max_idle_per_host: Option<u64>,
}

// No `Debug`: it may hold the name of a secret source, and the habit matters.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    username: Option<String>,
    password_file: Option<String>,
    password_env: Option<String>,
    password_credential: Option<String>,
    refresh_ratio: Option<f64>,
    login_path: Option<String>,
    refresh_path: Option<String>,
    verify_path: Option<String>,
    logout_path: Option<String>,
    default_lifetime: Option<String>,
    timeout: Option<String>,
    retry_max: Option<String>,
    credential_retry_max: Option<String>,
    logout_on_shutdown: Option<bool>,
}

impl std::fmt::Debug for RawAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RawAuth { .. }")
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    listen: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    level: Option<String>,
    format: Option<String>,
}

// ---------------------------------------------------------------------------
// Stage two: what the program uses.

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

/// Where the password comes from. Kept so that a reload (SIGHUP) reads the
/// same source again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordSource {
    File(PathBuf),
    Env(String),
    Credential(String),
}

impl std::fmt::Display for PasswordSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PasswordSource::File(p) => write!(f, "password_file = {:?}", p.display().to_string()),
            PasswordSource::Env(v) => write!(f, "password_env = {v:?}"),
            PasswordSource::Credential(c) => write!(f, "password_credential = {c:?}"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ProxySettings {
    pub listen: Listen,
    /// File mode of a unix-socket listener.
    pub unix_mode: u32,
    /// TCP clients allowed to use the account. Anything that reaches the
    /// listener acts as the account, so the default is loopback only.
    pub allowed_clients: Vec<IpNet>,
    pub intercept_login: bool,
    /// Hosts that absolute-form (HTTP_PROXY) requests may name besides the
    /// upstream's own, lower-cased.
    pub host_aliases: Vec<String>,
    /// How long a request waits for a token when none is valid.
    pub token_wait: Duration,
    /// Request bodies up to this size are kept so a request can be replayed
    /// once after a 401; larger bodies stream and are not replayed.
    pub replay_buffer: usize,
    pub max_header_bytes: usize,
    pub max_uri_bytes: usize,
    pub shutdown_grace: Duration,
    /// Proxy worker threads (each with its own runtime and upstream pool);
    /// 0 means one per core.
    pub worker_threads: usize,
}

#[derive(Debug, Clone)]
pub struct UpstreamSettings {
    /// Scheme and authority of the API, e.g. `https://api.ethgas.com`.
    pub base_url: Uri,
    /// The path prefix of `base_url` without a trailing slash ("" for none).
    pub base_path: String,
    pub websocket_url: Uri,
    pub ca_file: Option<PathBuf>,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub pool_idle_timeout: Duration,
    pub pool_max_idle_per_host: usize,
}

impl UpstreamSettings {
    pub fn is_https(&self) -> bool {
        self.base_url.scheme_str() == Some("https")
    }

    /// The host part of `base_url`, lower-cased.
    pub fn host(&self) -> String {
        self.base_url
            .host()
            .unwrap_or_default()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase()
    }

    pub fn port(&self) -> u16 {
        self.base_url
            .port_u16()
            .unwrap_or(if self.is_https() { 443 } else { 80 })
    }
}

#[derive(Clone)]
pub struct AuthSettings {
    pub username: String,
    pub password_source: PasswordSource,
    pub password: Secret,
    pub refresh_ratio: f64,
    pub login_path: String,
    pub refresh_path: String,
    pub verify_path: String,
    pub logout_path: String,
    /// Lifetime assumed when the API gives neither `expiresIn` nor a JWT `exp`.
    pub default_lifetime: Duration,
    /// Bound on one login, refresh or logout call.
    pub timeout: Duration,
    /// Cap of the fast backoff used for outages (connect errors, 5xx, garbage).
    pub retry_max: Duration,
    /// Cap of the slow backoff used when the API refuses the credentials.
    pub credential_retry_max: Duration,
    pub logout_on_shutdown: bool,
}

#[derive(Debug, Clone)]
pub struct AdminSettings {
    pub listen: Listen,
}

/// The validated configuration.
#[derive(Clone)]
pub struct Config {
    /// The file it was read from; a reload reads it again.
    pub path: PathBuf,
    pub proxy: ProxySettings,
    pub upstream: UpstreamSettings,
    pub auth: AuthSettings,
    pub admin: AdminSettings,
    pub log: LogSettings,
    /// Things worth a warning once logging is up (e.g. a world-readable
    /// password file).
    pub warnings: Vec<String>,
}

impl Config {
    /// Reads, parses and validates the file at `path`, and loads the password.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::from_toml(&text, path)
    }

    /// Parses `text` as if it had been read from `path` (which names the file
    /// in errors and anchors relative paths).
    pub fn from_toml(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        Validator { path }.validate(raw)
    }

    /// The effective configuration as TOML, with the password redacted; what
    /// `check-config` prints.
    pub fn render_redacted(&self) -> String {
        let mut out = String::new();
        let list = |items: &[String]| {
            let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
            format!("[{}]", quoted.join(", "))
        };
        let d = |d: Duration| humantime::format_duration(d).to_string();
        let p = &self.proxy;
        let _ = writeln!(out, "# effective configuration of {}", self.path.display());
        let _ = writeln!(out, "[proxy]");
        let _ = writeln!(out, "listen = {:?}", p.listen.to_string());
        let _ = writeln!(out, "unix_mode = \"{:04o}\"", p.unix_mode);
        let clients: Vec<String> = p.allowed_clients.iter().map(|n| n.to_string()).collect();
        let _ = writeln!(out, "allowed_clients = {}", list(&clients));
        let _ = writeln!(out, "intercept_login = {}", p.intercept_login);
        let _ = writeln!(out, "host_aliases = {}", list(&p.host_aliases));
        let _ = writeln!(out, "token_wait = {:?}", d(p.token_wait));
        let _ = writeln!(out, "replay_buffer_bytes = {}", p.replay_buffer);
        let _ = writeln!(out, "max_header_bytes = {}", p.max_header_bytes);
        let _ = writeln!(out, "max_uri_bytes = {}", p.max_uri_bytes);
        let _ = writeln!(out, "shutdown_grace = {:?}", d(p.shutdown_grace));
        let _ = writeln!(out, "worker_threads = {}", p.worker_threads);
        let u = &self.upstream;
        let _ = writeln!(out, "\n[upstream]");
        let _ = writeln!(
            out,
            "base_url = {:?}",
            format!("{}{}", origin(&u.base_url), u.base_path)
        );
        let _ = writeln!(out, "websocket_url = {:?}", u.websocket_url.to_string());
        if let Some(ca) = &u.ca_file {
            let _ = writeln!(out, "ca_file = {:?}", ca.display().to_string());
        }
        let _ = writeln!(out, "connect_timeout = {:?}", d(u.connect_timeout));
        let _ = writeln!(out, "request_timeout = {:?}", d(u.request_timeout));
        let _ = writeln!(out, "pool_idle_timeout = {:?}", d(u.pool_idle_timeout));
        let _ = writeln!(out, "pool_max_idle_per_host = {}", u.pool_max_idle_per_host);
        let a = &self.auth;
        let _ = writeln!(out, "\n[auth]");
        let _ = writeln!(out, "username = {:?}", a.username);
        let _ = writeln!(out, "{}  # password: <redacted>", a.password_source);
        let _ = writeln!(out, "refresh_ratio = {}", a.refresh_ratio);
        let _ = writeln!(out, "login_path = {:?}", a.login_path);
        let _ = writeln!(out, "refresh_path = {:?}", a.refresh_path);
        let _ = writeln!(out, "verify_path = {:?}", a.verify_path);
        let _ = writeln!(out, "logout_path = {:?}", a.logout_path);
        let _ = writeln!(out, "default_lifetime = {:?}", d(a.default_lifetime));
        let _ = writeln!(out, "timeout = {:?}", d(a.timeout));
        let _ = writeln!(out, "retry_max = {:?}", d(a.retry_max));
        let _ = writeln!(out, "credential_retry_max = {:?}", d(a.credential_retry_max));
        let _ = writeln!(out, "logout_on_shutdown = {}", a.logout_on_shutdown);
        let _ = writeln!(out, "\n[admin]");
        let _ = writeln!(out, "listen = {:?}", self.admin.listen.to_string());
        let _ = writeln!(out, "\n[log]");
        match &self.log.level {
            Some(level) => {
                let _ = writeln!(out, "level = {level:?}");
            }
            None => {
                let _ = writeln!(out, "# level: from RUST_LOG, else \"info\"");
            }
        }
        let format = match self.log.format {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        };
        let _ = writeln!(out, "format = {format:?}");
        out
    }

    /// The listener settings that a reload cannot change, for the log line
    /// that says so.
    pub fn restart_only_differences(&self, new: &Config) -> Vec<&'static str> {
        let mut keys = Vec::new();
        if self.proxy.listen != new.proxy.listen {
            keys.push("proxy.listen");
        }
        if self.proxy.unix_mode != new.proxy.unix_mode {
            keys.push("proxy.unix_mode");
        }
        if self.proxy.worker_threads != new.proxy.worker_threads {
            keys.push("proxy.worker_threads");
        }
        if self.admin.listen != new.admin.listen {
            keys.push("admin.listen");
        }
        if self.log.format != new.log.format {
            keys.push("log.format");
        }
        if self.proxy.shutdown_grace != new.proxy.shutdown_grace {
            keys.push("proxy.shutdown_grace");
        }
        let (a, b) = (&self.upstream, &new.upstream);
        if a.base_url != b.base_url || a.base_path != b.base_path {
            keys.push("upstream.base_url");
        }
        if a.websocket_url != b.websocket_url {
            keys.push("upstream.websocket_url");
        }
        if a.ca_file != b.ca_file {
            keys.push("upstream.ca_file");
        }
        if a.connect_timeout != b.connect_timeout {
            keys.push("upstream.connect_timeout");
        }
        if a.request_timeout != b.request_timeout {
            keys.push("upstream.request_timeout");
        }
        if a.pool_idle_timeout != b.pool_idle_timeout || a.pool_max_idle_per_host != b.pool_max_idle_per_host {
            keys.push("upstream.pool_*");
        }
        keys
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

struct Validator<'a> {
    path: &'a Path,
}

impl Validator<'_> {
    fn err(&self, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_path_buf(),
            key: key.to_string(),
            message: message.into(),
        }
    }

    fn missing(&self, key: &str, hint: &str) -> ConfigError {
        self.err(key, format!("missing required key; {hint}"))
    }

    fn duration(&self, key: &str, value: Option<String>, default: Duration) -> Result<Duration, ConfigError> {
        let Some(text) = value else {
            return Ok(default);
        };
        let d = humantime::parse_duration(text.trim()).map_err(|e| {
            self.err(
                key,
                format!("{text:?} is not a duration ({e}); write e.g. \"500ms\", \"30s\" or \"5m\""),
            )
        })?;
        if d > MAX_DURATION {
            return Err(self.err(key, format!("{text:?} is longer than 100 years")));
        }
        Ok(d)
    }

    fn positive_duration(&self, key: &str, value: Option<String>, default: Duration) -> Result<Duration, ConfigError> {
        let d = self.duration(key, value, default)?;
        if d.is_zero() {
            return Err(self.err(key, "must be longer than zero"));
        }
        Ok(d)
    }

    fn size(
        &self,
        key: &str,
        value: Option<u64>,
        default: usize,
        min: usize,
        max: usize,
    ) -> Result<usize, ConfigError> {
        let v = value
            .map(|v| usize::try_from(v).unwrap_or(usize::MAX))
            .unwrap_or(default);
        if v < min || v > max {
            return Err(self.err(key, format!("{v} is out of range; use a value from {min} to {max}")));
        }
        Ok(v)
    }

    /// Resolves a path from the file: relative paths are taken from the
    /// directory that holds the config file.
    fn file_path(&self, value: &str) -> PathBuf {
        let p = PathBuf::from(value);
        if p.is_absolute() {
            p
        } else {
            self.path.parent().unwrap_or(Path::new(".")).join(p)
        }
    }

    fn listen(&self, key: &str, value: &str) -> Result<Listen, ConfigError> {
        let value = value.trim();
        if let Some(path) = value.strip_prefix("unix:") {
            if path.is_empty() || !path.starts_with('/') {
                return Err(self.err(
                    key,
                    format!(
                        "{value:?}: a unix socket needs an absolute path, e.g. \"unix:/run/ethgas-sidecar/proxy.sock\""
                    ),
                ));
            }
            return Ok(Listen::Unix(PathBuf::from(path)));
        }
        value.parse::<SocketAddr>().map(Listen::Tcp).map_err(|_| {
            self.err(key, format!("{value:?} is not an address; write IP:PORT such as \"127.0.0.1:8080\" or \"[::1]:8080\", or \"unix:/path\""))
        })
    }

    fn api_path(&self, key: &str, value: Option<String>, default: &str) -> Result<String, ConfigError> {
        let v = value.unwrap_or_else(|| default.to_string());
        if !v.starts_with('/') || v.contains(['?', '#', ' ']) {
            return Err(self.err(key, format!("{v:?} must be a path starting with '/' (no query)")));
        }
        Ok(v)
    }

    fn validate(&self, raw: RawConfig) -> Result<Config, ConfigError> {
        let mut warnings = Vec::new();

        // [upstream]
        let ru = raw.upstream.unwrap_or_default();
        let base_text = ru.base_url.ok_or_else(|| {
            self.missing(
                "upstream.base_url",
                "set it to the API, e.g. \"https://api.ethgas.com\"",
            )
        })?;
        let (base_url, base_path) = self.base_url(&base_text)?;
        let websocket_url = match ru.websocket_url {
            Some(text) => self.websocket_url(&text)?,
            None => derive_websocket_url(&base_url),
        };
        let ca_file = ru.ca_file.map(|p| self.file_path(&p));
        if let Some(ca) = &ca_file {
            if let Err(e) = std::fs::metadata(ca) {
                return Err(self.err("upstream.ca_file", format!("cannot read {}: {e}", ca.display())));
            }
            if base_url.scheme_str() != Some("https") {
                warnings.push("upstream.ca_file is set but upstream.base_url is not https://; it is only used for wss:// WebSockets".into());
            }
        }
        let upstream = UpstreamSettings {
            base_url,
            base_path,
            websocket_url,
            ca_file,
            connect_timeout: self.positive_duration(
                "upstream.connect_timeout",
                ru.connect_timeout,
                Duration::from_secs(5),
            )?,
            request_timeout: self.positive_duration(
                "upstream.request_timeout",
                ru.request_timeout,
                Duration::from_secs(60),
            )?,
            pool_idle_timeout: self.positive_duration(
                "upstream.pool_idle_timeout",
                ru.pool_idle_timeout,
                Duration::from_secs(90),
            )?,
            pool_max_idle_per_host: self.size(
                "upstream.pool_max_idle_per_host",
                ru.pool_max_idle_per_host,
                1024,
                0,
                1 << 20,
            )?,
        };

        // [auth]
        let ra = raw.auth.unwrap_or_default();
        let username = ra
            .username
            .ok_or_else(|| self.missing("auth.username", "set it to the ETHGas account name"))?;
        if username.trim().is_empty() {
            return Err(self.err("auth.username", "must not be empty"));
        }
        let sources = [
            ra.password_file.is_some(),
            ra.password_env.is_some(),
            ra.password_credential.is_some(),
        ];
        let password_source = match sources.iter().filter(|s| **s).count() {
            0 => {
                return Err(self.missing(
                    "auth.password_file",
                    "give the password through exactly one of auth.password_file, auth.password_env or auth.password_credential",
                ));
            }
            1 => {
                if let Some(f) = ra.password_file {
                    PasswordSource::File(self.file_path(&f))
                } else if let Some(e) = ra.password_env {
                    PasswordSource::Env(e)
                } else {
                    PasswordSource::Credential(ra.password_credential.unwrap_or_default())
                }
            }
            _ => {
                return Err(self.err(
                    "auth.password_file",
                    "more than one password source is set; keep exactly one of password_file, password_env, password_credential",
                ));
            }
        };
        let password = load_password(&password_source, &mut warnings).map_err(|(key, msg)| self.err(key, msg))?;
        let refresh_ratio = ra.refresh_ratio.unwrap_or(0.75);
        if !(0.1..=0.95).contains(&refresh_ratio) {
            return Err(self.err(
                "auth.refresh_ratio",
                format!(
                    "{refresh_ratio} is out of range; use a share of the token lifetime from 0.1 to 0.95 (default 0.75)"
                ),
            ));
        }
        let retry_max = self.positive_duration("auth.retry_max", ra.retry_max, Duration::from_secs(30))?;
        let credential_retry_max = self.positive_duration(
            "auth.credential_retry_max",
            ra.credential_retry_max,
            Duration::from_secs(300),
        )?;
        let auth = AuthSettings {
            username,
            password_source,
            password,
            refresh_ratio,
            login_path: self.api_path("auth.login_path", ra.login_path, "/api/v1/user/login")?,
            refresh_path: self.api_path("auth.refresh_path", ra.refresh_path, "/api/v1/user/login/refresh")?,
            verify_path: self.api_path("auth.verify_path", ra.verify_path, "/api/v1/user/login/verify")?,
            logout_path: self.api_path("auth.logout_path", ra.logout_path, "/api/v1/user/logout")?,
            default_lifetime: self.positive_duration(
                "auth.default_lifetime",
                ra.default_lifetime,
                Duration::from_secs(3600),
            )?,
            timeout: self.positive_duration("auth.timeout", ra.timeout, Duration::from_secs(10))?,
            retry_max,
            credential_retry_max,
            logout_on_shutdown: ra.logout_on_shutdown.unwrap_or(true),
        };

        // [proxy]
        let rp = raw.proxy;
        let listen = self.listen("proxy.listen", rp.listen.as_deref().unwrap_or("127.0.0.1:8080"))?;
        let unix_mode = match rp.unix_mode {
            None => 0o660,
            Some(text) => u32::from_str_radix(text.trim().trim_start_matches("0o"), 8)
                .ok()
                .filter(|m| *m <= 0o777)
                .ok_or_else(|| {
                    self.err(
                        "proxy.unix_mode",
                        format!("{text:?} is not an octal file mode such as \"0660\""),
                    )
                })?,
        };
        let allowed_clients = match rp.allowed_clients {
            None => [
                IpNet::new(std::net::Ipv4Addr::new(127, 0, 0, 0).into(), 8),
                IpNet::new(std::net::Ipv6Addr::LOCALHOST.into(), 128),
            ]
            .into_iter()
            .flatten()
            .collect(),
            Some(list) => list
                .iter()
                .map(|s| {
                    parse_net(s).ok_or_else(|| {
                        self.err(
                            "proxy.allowed_clients",
                            format!("{s:?} is not an address or network such as \"10.0.0.0/8\""),
                        )
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        if let Listen::Tcp(addr) = &listen {
            if !addr.ip().is_loopback() {
                warnings.push(format!(
                    "proxy.listen = {addr} is not a loopback address: anything that can reach it and is in proxy.allowed_clients acts as the account"
                ));
            }
        }
        let host_aliases = rp
            .host_aliases
            .unwrap_or_default()
            .into_iter()
            .map(|h| h.trim().to_ascii_lowercase())
            .collect::<Vec<_>>();
        if let Some(bad) = host_aliases.iter().find(|h| h.is_empty() || h.contains(['/', ' '])) {
            return Err(self.err("proxy.host_aliases", format!("{bad:?} is not a host name")));
        }
        let proxy = ProxySettings {
            listen,
            unix_mode,
            allowed_clients,
            intercept_login: rp.intercept_login.unwrap_or(true),
            host_aliases,
            token_wait: self.duration("proxy.token_wait", rp.token_wait, Duration::from_secs(5))?,
            replay_buffer: self.size(
                "proxy.replay_buffer_bytes",
                rp.replay_buffer_bytes,
                64 * 1024,
                0,
                16 << 20,
            )?,
            max_header_bytes: self.size("proxy.max_header_bytes", rp.max_header_bytes, 32 * 1024, 1024, 1 << 20)?,
            max_uri_bytes: self.size("proxy.max_uri_bytes", rp.max_uri_bytes, 8 * 1024, 256, 1 << 20)?,
            shutdown_grace: self.duration("proxy.shutdown_grace", rp.shutdown_grace, Duration::from_secs(30))?,
            worker_threads: self.size("proxy.worker_threads", rp.worker_threads, 0, 0, 1024)?,
        };

        // [admin]
        let admin = AdminSettings {
            listen: self.listen("admin.listen", raw.admin.listen.as_deref().unwrap_or("127.0.0.1:9090"))?,
        };
        let port_zero = matches!(&admin.listen, Listen::Tcp(a) if a.port() == 0);
        if admin.listen == proxy.listen && !port_zero {
            return Err(self.err("admin.listen", "must differ from proxy.listen"));
        }

        // [log]
        let level = raw.log.level.map(|l| l.trim().to_string());
        if let Some(l) = &level {
            if crate::telemetry::filter(l).is_err() {
                return Err(self.err(
                    "log.level",
                    format!("{l:?} is not a level or filter; use error, warn, info, debug or trace"),
                ));
            }
        }
        let format = match raw.log.format.as_deref().map(str::trim) {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(self.err(
                    "log.format",
                    format!("{other:?} is not a format; use \"text\" or \"json\""),
                ));
            }
        };

        Ok(Config {
            path: self.path.to_path_buf(),
            proxy,
            upstream,
            auth,
            admin,
            log: LogSettings { level, format },
            warnings,
        })
    }

    fn base_url(&self, text: &str) -> Result<(Uri, String), ConfigError> {
        let key = "upstream.base_url";
        let bad = || {
            self.err(
                key,
                format!("{text:?} is not an absolute http:// or https:// URL such as \"https://api.ethgas.com\""),
            )
        };
        let uri: Uri = text.trim().parse().map_err(|_| bad())?;
        match uri.scheme_str() {
            Some("http") | Some("https") => {}
            _ => return Err(bad()),
        }
        let authority = uri.authority().ok_or_else(bad)?;
        if authority.host().is_empty() || authority.as_str().contains('@') {
            return Err(bad());
        }
        if uri.query().is_some() {
            return Err(self.err(key, format!("{text:?} must not have a query")));
        }
        let base_path = uri.path().trim_end_matches('/').to_string();
        let origin: Uri = origin(&uri).parse().map_err(|_| bad())?;
        Ok((origin, base_path))
    }

    fn websocket_url(&self, text: &str) -> Result<Uri, ConfigError> {
        let key = "upstream.websocket_url";
        let bad = || {
            self.err(
                key,
                format!("{text:?} is not a ws:// or wss:// URL such as \"wss://ws.ethgas.com\""),
            )
        };
        let uri: Uri = text.trim().parse().map_err(|_| bad())?;
        match uri.scheme_str() {
            Some("ws") | Some("wss") => {}
            _ => return Err(bad()),
        }
        if uri.authority().is_none_or(|a| a.host().is_empty()) {
            return Err(bad());
        }
        Ok(uri)
    }
}

/// The WebSocket endpoint that goes with an API base URL: the public ETHGas
/// hosts have their own socket hosts; anything else (a mock, a test
/// server) serves both on one origin.
fn derive_websocket_url(base: &Uri) -> Uri {
    let host = base.host().unwrap_or_default().to_ascii_lowercase();
    let known = match host.as_str() {
        "api.ethgas.com" => Some("wss://ws.ethgas.com"),
        "testnet-api.ethgas.com" => Some("wss://testnet-ws.ethgas.com"),
        _ => None,
    };
    if let Some(url) = known {
        return Uri::from_static(url);
    }
    let scheme = if base.scheme_str() == Some("https") {
        "wss"
    } else {
        "ws"
    };
    let authority = base.authority().map(|a| a.as_str()).unwrap_or("localhost");
    format!("{scheme}://{authority}/")
        .parse()
        .unwrap_or_else(|_| Uri::from_static("ws://localhost/"))
}

fn parse_net(s: &str) -> Option<IpNet> {
    let s = s.trim();
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
}

/// Reads a secret file, refusing anything larger than a password could be
/// (a mistaken `/dev/zero` must not read forever).
fn read_bounded(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    const LIMIT: u64 = 64 * 1024;
    let mut text = String::new();
    std::fs::File::open(path)?.take(LIMIT + 1).read_to_string(&mut text)?;
    if text.len() as u64 > LIMIT {
        return Err(std::io::Error::other(format!(
            "larger than {LIMIT} bytes; is it the right file?"
        )));
    }
    Ok(text)
}

/// Reads the password from its source. Errors come back as (key, message).
pub fn load_password(source: &PasswordSource, warnings: &mut Vec<String>) -> Result<Secret, (&'static str, String)> {
    let (key, text) = match source {
        PasswordSource::File(path) => {
            let key = "auth.password_file";
            let text =
                read_bounded(path).map_err(|e| (key, format!("cannot read password file {}: {e}", path.display())))?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                if let Ok(meta) = std::fs::metadata(path) {
                    if meta.permissions().mode() & 0o077 != 0 {
                        warnings.push(format!(
                            "password file {} is readable by group or others (mode {:04o}); chmod 0600 it",
                            path.display(),
                            meta.permissions().mode() & 0o777
                        ));
                    }
                }
            }
            (key, text)
        }
        PasswordSource::Env(var) => {
            let key = "auth.password_env";
            let text = std::env::var(var)
                .map_err(|_| (key, format!("environment variable {var} is not set (or is not UTF-8)")))?;
            (key, text)
        }
        PasswordSource::Credential(name) => {
            let key = "auth.password_credential";
            if name.is_empty() || name.contains('/') {
                return Err((key, format!("{name:?} is not a credential name")));
            }
            let dir = std::env::var_os("CREDENTIALS_DIRECTORY").ok_or_else(|| {
                (
                    key,
                    format!("$CREDENTIALS_DIRECTORY is not set; run under systemd with LoadCredential={name}:/etc/ethgas-sidecar/password, or use auth.password_file"),
                )
            })?;
            let path = Path::new(&dir).join(name);
            let text =
                read_bounded(&path).map_err(|e| (key, format!("cannot read credential {}: {e}", path.display())))?;
            (key, text)
        }
    };
    let trimmed = text
        .strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(&text);
    if trimmed.is_empty() {
        return Err((key, "the password is empty".to_string()));
    }
    Ok(Secret::new(trimmed))
}

#[cfg(test)]
mod tests;

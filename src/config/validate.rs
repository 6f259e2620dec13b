//! Stage one of the configuration: the file as written ([`RawConfig`],
//! serde, unknown keys rejected), and the one pass that validates it into a
//! [`Config`]. Each key is read, checked and given its default here, and an
//! error names the key and the file.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::Uri;
use ipnet::IpNet;

use super::defaults::{default_max_connections, derive_websocket_url};
use super::raw::*;
use super::values::parse_net;
use super::*;
use crate::eth::WalletKey;
use crate::secret::Secret;
use std::sync::Arc;

/// The longest duration a setting may have. Longer is a typo, and the program
/// computes `Instant::now() + d` (token wait, session lifetime), which
/// overflows and panics on values near `u64::MAX` seconds.
const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 86400);

/// Parses and validates the text of a config file, reading the secrets it
/// names as `secrets` says; what was left unread is in [`Deferred`].
pub(super) fn parse(text: &str, path: &Path, secrets: Secrets) -> Result<(Config, Deferred), ConfigError> {
    let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Syntax {
        path: path.to_path_buf(),
        message: super::syntax::describe(text, &e),
    })?;
    let v = Validator {
        path,
        given: None,
        secrets,
        deferred: RefCell::default(),
    };
    let config = v.validate(raw)?;
    Ok((config, v.deferred.into_inner()))
}

/// Secrets a [`Secrets::Available`] load did not read.
#[derive(Default)]
pub(super) struct Deferred {
    /// One line per secret: which key, and how to check it.
    pub(super) notes: Vec<String>,
    /// The wallet key was not read, so its address is not known.
    pub(super) address_unknown: bool,
}

/// Every default, in front of `base_url`, with the credentials given.
pub(super) fn for_account(base_url: &str, username: Option<&str>, given: Given) -> Result<Config, ConfigError> {
    let method = match given {
        Given::Password(_) => "password",
        Given::Key(_) => "wallet",
    };
    let raw = RawConfig {
        upstream: Some(RawUpstream {
            base_url: Some(base_url.to_string()),
            ..RawUpstream::default()
        }),
        auth: Some(RawAuth {
            method: Some(method.to_string()),
            username: username.map(str::to_string),
            ..RawAuth::default()
        }),
        ..RawConfig::default()
    };
    Validator {
        path: Path::new("<built in>"),
        given: Some(given),
        secrets: Secrets::Read,
        deferred: RefCell::default(),
    }
    .validate(raw)
}

pub(super) struct Validator<'a> {
    pub(super) path: &'a Path,
    /// Credentials given as a value instead of a source in the file.
    pub(super) given: Option<Given>,
    pub(super) secrets: Secrets,
    /// What a [`Secrets::Available`] load left unread.
    pub(super) deferred: RefCell<Deferred>,
}

/// Credentials given as a value (the demo's own account).
pub(super) enum Given {
    Password(Secret),
    Key(Arc<WalletKey>),
}

impl Validator<'_> {
    pub(super) fn err(&self, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_path_buf(),
            key: key.to_string(),
            message: message.into(),
        }
    }

    pub(super) fn missing(&self, key: &str, hint: &str) -> ConfigError {
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
    pub(super) fn file_path(&self, value: &str) -> PathBuf {
        let p = PathBuf::from(value);
        if p.is_absolute() {
            p
        } else {
            self.path.parent().unwrap_or(Path::new(".")).join(p)
        }
    }

    /// A list of host names, lower-cased.
    fn host_names(&self, key: &str, value: Option<Vec<String>>) -> Result<Vec<String>, ConfigError> {
        let names: Vec<String> = value
            .unwrap_or_default()
            .into_iter()
            .map(|h| normalize_host(h.trim()))
            .collect();
        if let Some(bad) = names.iter().find(|h| h.is_empty() || h.contains(['/', ' ', ':'])) {
            return Err(self.err(key, format!("{bad:?} is not a host name (no scheme, port or path)")));
        }
        Ok(names)
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
        let base_url = self.base_url(&base_text)?;
        let websocket_url = match ru.websocket_url {
            Some(text) => self.websocket_url(&text)?,
            None => derive_websocket_url(&base_url.origin),
        };
        let ca_file = ru.ca_file.map(|p| self.file_path(&p));
        if let Some(ca) = &ca_file {
            if let Err(e) = files::open_regular(ca, MAX_CA_FILE_BYTES) {
                return Err(self.err("upstream.ca_file", format!("cannot read {}: {e}", ca.display())));
            }
            if base_url.origin.scheme_str() != Some("https") {
                warnings.push("upstream.ca_file is set but upstream.base_url is not https://; it is only used for wss:// WebSockets".into());
            }
        }
        if ru.http2 == Some(false) && base_url.origin.scheme_str() != Some("https") {
            warnings.push(
                "upstream.http2 = false has no effect: HTTP/2 is only offered to an https:// upstream.base_url".into(),
            );
        }
        let upstream = UpstreamSettings {
            base_url,
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
                Duration::from_secs(20),
            )?,
            keep_warm: ru.keep_warm.unwrap_or(true),
            http2: ru.http2.unwrap_or(true),
            pool_max_idle_per_host: self.size(
                "upstream.pool_max_idle_per_host",
                ru.pool_max_idle_per_host,
                1024,
                0,
                1 << 20,
            )?,
        };

        // [auth]
        let mut ra = raw.auth.unwrap_or_default();
        let credentials = self.credentials(&mut ra)?;
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
            credentials,
            refresh_ratio,
            login_path: self.api_path("auth.login_path", ra.login_path, ethgas_api::LOGIN_PATH)?,
            refresh_path: self.api_path("auth.refresh_path", ra.refresh_path, ethgas_api::REFRESH_PATH)?,
            verify_path: self.api_path("auth.verify_path", ra.verify_path, ethgas_api::VERIFY_PATH)?,
            logout_path: self.api_path("auth.logout_path", ra.logout_path, ethgas_api::LOGOUT_PATH)?,
            default_lifetime: self.positive_duration(
                "auth.default_lifetime",
                ra.default_lifetime,
                Duration::from_secs(3600),
            )?,
            timeout: self.positive_duration("auth.timeout", ra.timeout, Duration::from_secs(10))?,
            retry_max,
            credential_retry_max,
            reauth_min_interval: self.positive_duration(
                "auth.reauth_min_interval",
                ra.reauth_min_interval,
                Duration::from_secs(10),
            )?,
            min_call_interval: self.positive_duration(
                "auth.min_call_interval",
                ra.min_call_interval,
                Duration::from_secs(5),
            )?,
            logout_on_shutdown: ra.logout_on_shutdown.unwrap_or(true),
        };

        // [proxy]
        let rp = raw.proxy;
        let listen = self.listen("proxy.listen", rp.listen.as_deref().unwrap_or("127.0.0.1:8080"))?;
        let unix_mode = self.unix_mode("proxy.unix_mode", rp.unix_mode)?;
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
        let allowed_hosts = self.host_names("proxy.allowed_hosts", rp.allowed_hosts)?;
        let allowed_origins = rp
            .allowed_origins
            .unwrap_or_default()
            .into_iter()
            .map(|o| o.trim().trim_end_matches('/').to_ascii_lowercase())
            .collect::<Vec<_>>();
        if let Some(bad) = allowed_origins.iter().find(|o| {
            let parsed = o.parse::<Uri>();
            !matches!(&parsed, Ok(u) if matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some() && u.path() == "/")
        }) {
            return Err(self.err(
                "proxy.allowed_origins",
                format!("{bad:?} is not a web origin such as \"https://dashboard.example\" (scheme and host, no path)"),
            ));
        }
        let policy = ProxyPolicy {
            allowed_clients,
            intercept_login: rp.intercept_login.unwrap_or(true),
            public_prefixes: self.public_prefixes(rp.public_prefixes)?,
            host_aliases,
            allowed_hosts,
            allowed_origins,
            token_wait: self.duration("proxy.token_wait", rp.token_wait, Duration::from_secs(5))?,
            replay_buffer: self.size(
                "proxy.replay_buffer_bytes",
                rp.replay_buffer_bytes,
                64 * 1024,
                0,
                16 << 20,
            )?,
            body_idle_timeout: self.positive_duration(
                "proxy.body_idle_timeout",
                rp.body_idle_timeout,
                Duration::from_secs(30),
            )?,
            // At least a login with a long JWT; at most tungstenite's own default.
            ws_max_message_bytes: self.size(
                "proxy.ws_max_message_bytes",
                rp.ws_max_message_bytes,
                1 << 20,
                16 * 1024,
                64 << 20,
            )?,
        };
        let proxy = ProxyListener {
            listen,
            unix_mode,
            max_header_bytes: self.size("proxy.max_header_bytes", rp.max_header_bytes, 32 * 1024, 1024, 1 << 20)?,
            max_uri_bytes: self.size("proxy.max_uri_bytes", rp.max_uri_bytes, 8 * 1024, 256, 1 << 20)?,
            shutdown_grace: self.duration("proxy.shutdown_grace", rp.shutdown_grace, Duration::from_secs(30))?,
            worker_threads: self.size("proxy.worker_threads", rp.worker_threads, 0, 0, 1024)?,
            max_connections: self.size(
                "proxy.max_connections",
                rp.max_connections,
                default_max_connections(),
                1,
                1 << 20,
            )?,
            header_read_timeout: self.positive_duration(
                "proxy.header_read_timeout",
                rp.header_read_timeout,
                Duration::from_secs(10),
            )?,
            replay_budget_bytes: self.size(
                "proxy.replay_budget_bytes",
                rp.replay_budget_bytes,
                32 << 20,
                0,
                1 << 40,
            )?,
            ws_memory_budget_bytes: self.size(
                "proxy.ws_memory_budget_bytes",
                rp.ws_memory_budget_bytes,
                256 << 20,
                1 << 20,
                1 << 40,
            )?,
        };

        // [admin]
        let admin = AdminSettings {
            listen: self.listen("admin.listen", raw.admin.listen.as_deref().unwrap_or("127.0.0.1:9090"))?,
        };
        if let Listen::Tcp(addr) = &admin.listen {
            if !addr.ip().is_loopback() {
                warnings.push(format!(
                    "admin.listen = {addr} is NOT a loopback address: /readyz and /metrics (account name, token timing, errors) are open to the network; bind it to 127.0.0.1 unless a firewall guards it"
                ));
            }
        }
        let port_zero = matches!(&admin.listen, Listen::Tcp(a) if a.port() == 0);
        if admin.listen == proxy.listen && !port_zero {
            return Err(self.err("admin.listen", "must differ from proxy.listen"));
        }

        // [[listeners]], [policy], [audit]
        let listeners = self.doors(
            raw.listeners,
            &[("proxy.listen", &proxy.listen), ("admin.listen", &admin.listen)],
            &mut warnings,
        )?;
        let access = self.policy(raw.policy, &listeners)?;
        let audit = self.audit(raw.audit)?;

        // [log]
        let level = raw.log.level.map(|l| l.trim().to_string());
        if let Some(l) = &level {
            if let Err(e) = crate::telemetry::filter(l) {
                return Err(self.err("log.level", e));
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
            restart: Restart {
                proxy,
                upstream,
                admin,
                log: LogOutput { format },
                audit,
                listeners,
            },
            live: Live {
                proxy: policy,
                auth,
                log: LogLevel { level },
                policy: access,
            },
            warnings,
        })
    }
}

//! The configuration file as written: serde structs that mirror its
//! sections and keys, every key optional, unknown keys rejected. Nothing
//! here is checked beyond TOML types; [`super::validate`] does the rest.

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub(super) proxy: RawProxy,
    pub(super) upstream: Option<RawUpstream>,
    pub(super) auth: Option<RawAuth>,
    #[serde(default)]
    pub(super) admin: RawAdmin,
    #[serde(default)]
    pub(super) log: RawLog,
    /// `[[listeners]]`: more proxy listeners, each with a name.
    pub(super) listeners: Option<Vec<RawListener>>,
    /// `[policy]`: listener name → the classes of call it may make.
    pub(super) policy: Option<std::collections::BTreeMap<String, Vec<String>>>,
    #[serde(default)]
    pub(super) audit: RawAudit,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawListener {
    pub(super) name: Option<String>,
    pub(super) listen: Option<String>,
    pub(super) unix_mode: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAudit {
    pub(super) output: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProxy {
    pub(super) listen: Option<String>,
    pub(super) unix_mode: Option<String>,
    pub(super) allowed_clients: Option<Vec<String>>,
    pub(super) intercept_login: Option<bool>,
    pub(super) host_aliases: Option<Vec<String>>,
    pub(super) allowed_hosts: Option<Vec<String>>,
    pub(super) allowed_origins: Option<Vec<String>>,
    pub(super) public_prefixes: Option<Vec<String>>,
    pub(super) token_wait: Option<String>,
    pub(super) replay_buffer_bytes: Option<u64>,
    pub(super) ws_max_message_bytes: Option<u64>,
    pub(super) max_header_bytes: Option<u64>,
    pub(super) max_uri_bytes: Option<u64>,
    pub(super) shutdown_grace: Option<String>,
    pub(super) worker_threads: Option<u64>,
    pub(super) max_connections: Option<u64>,
    pub(super) header_read_timeout: Option<String>,
    pub(super) body_idle_timeout: Option<String>,
    pub(super) replay_budget_bytes: Option<u64>,
    pub(super) ws_memory_budget_bytes: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUpstream {
    pub(super) base_url: Option<String>,
    pub(super) websocket_url: Option<String>,
    pub(super) ca_file: Option<String>,
    pub(super) connect_timeout: Option<String>,
    pub(super) request_timeout: Option<String>,
    pub(super) pool_idle_timeout: Option<String>,
    pub(super) pool_max_idle_per_host: Option<u64>,
    pub(super) keep_warm: Option<bool>,
    pub(super) http2: Option<bool>,
}

// No `Debug`: it may hold the name of a secret source, and the habit matters.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAuth {
    pub(super) method: Option<String>,
    pub(super) username: Option<String>,
    pub(super) password_file: Option<String>,
    pub(super) password_env: Option<String>,
    pub(super) password_credential: Option<String>,
    pub(super) private_key_file: Option<String>,
    pub(super) private_key_env: Option<String>,
    pub(super) private_key_credential: Option<String>,
    pub(super) keystore_file: Option<String>,
    pub(super) keystore_password_file: Option<String>,
    pub(super) keystore_password_env: Option<String>,
    pub(super) keystore_password_credential: Option<String>,
    pub(super) address: Option<String>,
    pub(super) display_name: Option<String>,
    pub(super) refresh_ratio: Option<f64>,
    pub(super) login_path: Option<String>,
    pub(super) refresh_path: Option<String>,
    pub(super) verify_path: Option<String>,
    pub(super) logout_path: Option<String>,
    pub(super) default_lifetime: Option<String>,
    pub(super) timeout: Option<String>,
    pub(super) retry_max: Option<String>,
    pub(super) credential_retry_max: Option<String>,
    pub(super) reauth_min_interval: Option<String>,
    pub(super) min_call_interval: Option<String>,
    pub(super) logout_on_shutdown: Option<bool>,
}

impl std::fmt::Debug for RawAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RawAuth { .. }")
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdmin {
    pub(super) listen: Option<String>,
}

/// The file as `ethgas-sidecar status` reads it: `[admin]` only, every
/// other section ignored.
#[derive(Debug, Default, Deserialize)]
pub(super) struct AdminOnly {
    #[serde(default)]
    pub(super) admin: RawAdmin,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLog {
    pub(super) level: Option<String>,
    pub(super) format: Option<String>,
}

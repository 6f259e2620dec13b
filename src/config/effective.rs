//! The configuration as it is shown and compared: the effective TOML that
//! `check-config` prints (secrets redacted), and the keys whose change a
//! reload cannot apply, both computed by serialising the typed parts, never
//! listed by hand.

use std::path::Path;
use std::time::Duration;

use serde::{Serialize, Serializer};

use super::validate::Deferred;
use super::{Config, KeySource, PasswordSource, Restart};
use crate::secret::Secret;

/// A configuration as `check-config` sees it: everything validated, but a
/// secret that only the service's start can read (a systemd credential,
/// while `$CREDENTIALS_DIRECTORY` is unset) left unread, with a note saying
/// so. It can be shown, never run.
pub struct Checked {
    config: Config,
    /// What was not checked, and how to check it.
    pub notes: Vec<String>,
    /// The wallet address is not known (its key was not read).
    address_unknown: bool,
}

impl Checked {
    pub fn warnings(&self) -> &[String] {
        &self.config.warnings
    }

    /// The effective configuration, as [`Config::render_redacted`] shows it.
    pub fn render_redacted(&self) -> String {
        let mut table = table(&self.config);
        if self.address_unknown {
            if let Some(toml::Value::Table(auth)) = table.get_mut("auth") {
                auth.insert("address".into(), "<known once the key is read at start>".into());
            }
        }
        render(&self.config.path, &table)
    }
}

impl Checked {
    pub(super) fn new(config: Config, deferred: Deferred) -> Checked {
        Checked {
            config,
            notes: deferred.notes,
            address_unknown: deferred.address_unknown,
        }
    }
}

/// The restart and live parts merged into the file's sections.
pub(super) fn table(config: &Config) -> toml::Table {
    let mut sections = toml::Table::new();
    for part in [
        toml::Table::try_from(&config.restart),
        toml::Table::try_from(&config.live),
    ] {
        let Ok(part) = part else { continue };
        for (section, keys) in part {
            if let (toml::Value::Table(keys), Some(toml::Value::Table(into))) = (&keys, sections.get_mut(&section)) {
                into.extend(keys.clone());
                continue;
            }
            sections.insert(section, keys);
        }
    }
    // The file's own order of sections.
    let mut ordered = toml::Table::new();
    for name in [
        "proxy",
        "listeners",
        "policy",
        "upstream",
        "auth",
        "admin",
        "audit",
        "log",
    ] {
        if let Some(v) = sections.remove(name) {
            ordered.insert(name.to_string(), v);
        }
    }
    ordered
}

pub(super) fn render(path: &Path, table: &toml::Table) -> String {
    let body = toml::to_string(table).unwrap_or_else(|e| format!("# cannot render: {e}\n"));
    format!(
        "# effective configuration of {}\n# the password is not shown: <redacted>\n\n{body}",
        path.display()
    )
}

pub(super) fn restart_differences(old: &Restart, new: &Restart) -> Vec<String> {
    if old == new {
        return Vec::new();
    }
    let (old, new) = (flatten(old), flatten(new));
    let mut keys: Vec<String> = old
        .iter()
        .filter(|(k, v)| new.iter().find(|(n, _)| n == k).map(|(_, w)| w) != Some(v))
        .map(|(k, _)| k.clone())
        .collect();
    for (k, _) in &new {
        if !old.iter().any(|(o, _)| o == k) {
            keys.push(k.clone());
        }
    }
    keys
}

/// `section.key` → value of a serialized part of the configuration.
fn flatten(part: &impl Serialize) -> Vec<(String, toml::Value)> {
    let mut out = Vec::new();
    if let Ok(table) = toml::Table::try_from(part) {
        for (section, keys) in table {
            match keys {
                toml::Value::Table(keys) => {
                    out.extend(keys.into_iter().map(|(k, v)| (format!("{section}.{k}"), v)));
                }
                other => out.push((section, other)),
            }
        }
    }
    out
}

impl Serialize for KeySource {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(None)?;
        match self {
            KeySource::File(p) => map.serialize_entry("private_key_file", p)?,
            KeySource::Env(v) => map.serialize_entry("private_key_env", v)?,
            KeySource::Credential(c) => map.serialize_entry("private_key_credential", c)?,
            KeySource::Inline(_) => map.serialize_entry("private_key", "<redacted>")?,
            KeySource::Keystore { file, password } => {
                map.serialize_entry("keystore_file", file)?;
                match password {
                    PasswordSource::File(p) => map.serialize_entry("keystore_password_file", p)?,
                    PasswordSource::Env(v) => map.serialize_entry("keystore_password_env", v)?,
                    PasswordSource::Credential(c) => map.serialize_entry("keystore_password_credential", c)?,
                    PasswordSource::Inline(_) => map.serialize_entry("keystore_password", "<redacted>")?,
                }
            }
        }
        map.end()
    }
}

pub(super) fn human<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_duration(*d))
}

pub(super) fn display<S: Serializer, T: std::fmt::Display>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

pub(super) fn redacted<S: Serializer>(_: &Secret, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str("<redacted>")
}

pub(super) fn octal<S: Serializer>(mode: &u32, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&format_args!("{mode:04o}"))
}

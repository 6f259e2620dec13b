//! The doors to the account and what each may do: `[[listeners]]` (more
//! proxy listeners beside `proxy.listen`, each with a name), `[policy]` (the
//! classes of call each listener may make, reloadable) and `[audit]` (where
//! the record of every call that changes the account goes).
//!
//! The listener of `proxy.listen` is named `proxy`; so is its socket when
//! systemd passes it (`FileDescriptorName=proxy`), and a further listener's
//! socket carries that listener's name.

use std::collections::{BTreeMap, HashSet};

use super::effective::octal;
use super::raw::{RawAudit, RawListener};
use super::validate::Validator;
use super::*;
use crate::audit::Output;
use crate::policy::Class;

/// The name of the listener of `proxy.listen`.
pub const MAIN_LISTENER: &str = "proxy";

/// A proxy listener besides `proxy.listen`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Door {
    /// In metrics, audit records and the `[policy]` section.
    pub name: String,
    pub listen: Listen,
    #[serde(serialize_with = "octal")]
    pub unix_mode: u32,
}

/// `[audit]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditSettings {
    /// `auto` (the journal when stderr is the journal, else stderr),
    /// `journal`, `stderr`, an absolute file path, or `off`.
    pub output: Output,
}

/// `[policy]`: the classes each listener may use, by listener (index 0 is
/// `proxy`, then `[[listeners]]` in the file's order).
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    names: Vec<String>,
    allow: Vec<Vec<Class>>,
}

impl Policy {
    /// Every listener with the default (everything but `funds`).
    pub fn defaults(names: Vec<String>) -> Policy {
        let allow = names.iter().map(|_| Class::default_allowed()).collect();
        Policy { names, allow }
    }

    /// Whether listener `index` may make calls of `class`.
    pub fn allows(&self, index: usize, class: Class) -> bool {
        self.allow.get(index).is_some_and(|a| a.contains(&class))
    }

    /// The name of listener `index`.
    pub fn name(&self, index: usize) -> &str {
        self.names.get(index).map_or(MAIN_LISTENER, String::as_str)
    }
}

impl Serialize for Policy {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.names.len()))?;
        for (name, allow) in self.names.iter().zip(&self.allow) {
            map.serialize_entry(name, allow)?;
        }
        map.end()
    }
}

impl Validator<'_> {
    /// A unix socket's file mode (`key`), which must not let every user in.
    pub(super) fn unix_mode(&self, key: &str, value: Option<String>) -> Result<u32, ConfigError> {
        let Some(text) = value else { return Ok(0o660) };
        let mode = u32::from_str_radix(text.trim().trim_start_matches("0o"), 8)
            .ok()
            .filter(|m| *m <= 0o777)
            .ok_or_else(|| self.err(key, format!("{text:?} is not an octal file mode such as \"0660\"")))?;
        if mode & 0o002 != 0 {
            return Err(self.err(
                key,
                format!(
                    "{mode:04o} lets every local user connect and act as the account; use \"0660\" (owner and group) or \"0600\""
                ),
            ));
        }
        Ok(mode)
    }

    /// `[[listeners]]`: names unique and usable as labels, addresses not
    /// taken by another listener.
    pub(super) fn doors(
        &self,
        raw: Option<Vec<RawListener>>,
        taken: &[(&str, &Listen)],
        warnings: &mut Vec<String>,
    ) -> Result<Vec<Door>, ConfigError> {
        let mut names: HashSet<String> = HashSet::new();
        let mut addresses: Vec<(String, Listen)> = taken.iter().map(|(k, l)| (k.to_string(), (*l).clone())).collect();
        let mut doors = Vec::new();
        for (i, r) in raw.unwrap_or_default().into_iter().enumerate() {
            let key = |k: &str| format!("listeners[{i}].{k}");
            let name = r
                .name
                .ok_or_else(|| self.missing(&key("name"), "name the listener, e.g. \"dashboards\""))?;
            let usable = !name.is_empty()
                && name.len() <= 32
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
            if !usable {
                return Err(self.err(
                    &key("name"),
                    format!("{name:?} is not a name of 1 to 32 characters a-z, 0-9, '-' and '_'"),
                ));
            }
            if name == MAIN_LISTENER || name == "admin" || !names.insert(name.clone()) {
                return Err(self.err(
                    &key("name"),
                    format!("{name:?} is taken (\"proxy\" and \"admin\" are the built-in listeners' names)"),
                ));
            }
            let text = r
                .listen
                .ok_or_else(|| self.missing(&key("listen"), "e.g. \"127.0.0.1:8081\""))?;
            let listen = self.listen(&key("listen"), &text)?;
            let port_zero = matches!(&listen, Listen::Tcp(a) if a.port() == 0);
            if let Some((other, _)) = addresses.iter().find(|(_, l)| *l == listen && !port_zero) {
                return Err(self.err(&key("listen"), format!("{listen} is already {other}")));
            }
            if let Listen::Tcp(addr) = &listen {
                if !addr.ip().is_loopback() {
                    warnings.push(format!(
                        "{} = {addr} is not a loopback address: anything that can reach it and is in proxy.allowed_clients acts as the account",
                        key("listen")
                    ));
                }
            }
            addresses.push((key("listen"), listen.clone()));
            let unix_mode = self.unix_mode(&key("unix_mode"), r.unix_mode)?;
            doors.push(Door {
                name,
                listen,
                unix_mode,
            });
        }
        Ok(doors)
    }

    /// `[policy]`: listener name → classes; a listener not named gets the
    /// default.
    pub(super) fn policy(
        &self,
        raw: Option<BTreeMap<String, Vec<String>>>,
        doors: &[Door],
    ) -> Result<Policy, ConfigError> {
        let names: Vec<String> = std::iter::once(MAIN_LISTENER.to_string())
            .chain(doors.iter().map(|d| d.name.clone()))
            .collect();
        let mut policy = Policy::defaults(names);
        for (name, classes) in raw.unwrap_or_default() {
            let key = format!("policy.{name}");
            let Some(index) = policy.names.iter().position(|n| *n == name) else {
                return Err(self.err(
                    &key,
                    format!("there is no listener {name:?}; name \"proxy\" or one of [[listeners]]"),
                ));
            };
            let mut allow = Vec::new();
            for text in classes {
                let class = Class::ALL.into_iter().find(|c| c.as_str() == text).ok_or_else(|| {
                    let valid: Vec<&str> = Class::ALL.iter().map(|c| c.as_str()).collect();
                    self.err(
                        &key,
                        format!("{text:?} is not a class of call; use {}", valid.join(", ")),
                    )
                })?;
                if !allow.contains(&class) {
                    allow.push(class);
                }
            }
            allow.sort();
            policy.allow[index] = allow;
        }
        Ok(policy)
    }

    pub(super) fn audit(&self, raw: RawAudit) -> Result<AuditSettings, ConfigError> {
        let output = match raw.output {
            None => Output::Auto,
            Some(text) => Output::parse(text.trim()).map_err(|e| self.err("audit.output", e))?,
        };
        Ok(AuditSettings { output })
    }
}

#[cfg(test)]
mod tests;

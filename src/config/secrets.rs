//! Secrets named by the configuration: the password or the wallet key, each
//! read from its one source (a file only its owner can read, an environment
//! variable, or a systemd credential), bounded, so that a mistaken path
//! cannot read forever.
//!
//! The text read (a hex key, a keystore password) lives in a `Zeroizing`
//! buffer allocated whole up front, so that it is wiped once decoded and no
//! growing buffer leaves copies of it behind in freed memory.

use std::path::Path;
use std::sync::Arc;

use zeroize::Zeroizing;

use super::{KeySource, PasswordSource, files};
use crate::eth::WalletKey;
use crate::secret::Secret;

/// Reads a secret file: a regular file (never a FIFO that would block) no
/// larger than a secret could be (a mistaken `/dev/zero` must not read
/// forever). Returns the text and the open file's metadata.
fn read_bounded(path: &Path) -> std::io::Result<(Zeroizing<String>, std::fs::Metadata)> {
    const LIMIT: u64 = files::MAX_SECRET_BYTES;
    // Room for the largest file accepted, so the buffer never grows (and
    // never leaves a copy behind in memory it let go of).
    let mut text = Zeroizing::new(String::with_capacity(LIMIT as usize + 1));
    let meta = files::read_into(path, LIMIT, &mut text)?;
    Ok((text, meta))
}

/// Where one secret comes from, with the config keys that name each way.
struct Source<'a> {
    origin: Origin<'a>,
    /// `auth.<prefix>_file`, `_env`, `_credential`.
    prefix: &'static str,
    /// What it is, in messages ("password", "private key").
    what: &'static str,
}

enum Origin<'a> {
    File(&'a Path),
    Env(&'a str),
    Credential(&'a str),
}

fn key_of(prefix: &str, suffix: &str) -> String {
    format!("auth.{prefix}_{suffix}")
}

/// Reads a secret's text from its source; a file must be private to its
/// owner. Errors come back as (key, message).
fn read_source(source: Source<'_>) -> Result<Zeroizing<String>, (String, String)> {
    let (prefix, what) = (source.prefix, source.what);
    match source.origin {
        Origin::File(path) => {
            let key = key_of(prefix, "file");
            let (text, meta) = read_bounded(path)
                .map_err(|e| (key.clone(), format!("cannot read {what} file {}: {e}", path.display())))?;
            private_file(path, &meta, &format!("{what} file")).map_err(|m| (key, m))?;
            Ok(text)
        }
        Origin::Env(var) => std::env::var(var).map(Zeroizing::new).map_err(|_| {
            (
                key_of(prefix, "env"),
                format!("environment variable {var} is not set (or is not UTF-8)"),
            )
        }),
        Origin::Credential(name) => {
            let key = key_of(prefix, "credential");
            if name.is_empty() || name.contains('/') {
                return Err((key, format!("{name:?} is not a credential name")));
            }
            let dir = std::env::var_os("CREDENTIALS_DIRECTORY").ok_or_else(|| {
                (
                    key.clone(),
                    format!(
                        "$CREDENTIALS_DIRECTORY is not set; run under systemd with LoadCredential={name}:/etc/ethgas-sidecar/{name}, or use auth.{prefix}_file"
                    ),
                )
            })?;
            let path = Path::new(&dir).join(name);
            read_bounded(&path)
                .map(|(text, _)| text)
                .map_err(|e| (key, format!("cannot read credential {}: {e}", path.display())))
        }
    }
}

/// The text without its one trailing newline (as editors and `echo` leave it).
fn trim_newline(text: &str) -> &str {
    text.strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(text)
}

fn password_origin(source: &PasswordSource) -> Option<Origin<'_>> {
    match source {
        PasswordSource::File(p) => Some(Origin::File(p)),
        PasswordSource::Env(v) => Some(Origin::Env(v)),
        PasswordSource::Credential(c) => Some(Origin::Credential(c)),
        PasswordSource::Inline(_) => None,
    }
}

/// Reads a password (`prefix` "password", or "keystore_password") from its
/// source, without its trailing newline. Errors come back as (key, message).
fn load_secret_text(
    source: &PasswordSource,
    prefix: &'static str,
    what: &'static str,
) -> Result<Zeroizing<String>, (String, String)> {
    let Some(origin) = password_origin(source) else {
        return match source {
            PasswordSource::Inline(secret) => Ok(Zeroizing::new(secret.expose().to_string())),
            _ => Err((key_of(prefix, "file"), format!("no {what} source"))),
        };
    };
    // The key that names this source, for an empty secret.
    let key = key_of(
        prefix,
        match origin {
            Origin::File(_) => "file",
            Origin::Env(_) => "env",
            Origin::Credential(_) => "credential",
        },
    );
    let mut text = read_source(Source { origin, prefix, what })?;
    let len = trim_newline(&text).len();
    text.truncate(len);
    if text.is_empty() {
        return Err((key, format!("the {what} is empty")));
    }
    Ok(text)
}

/// Reads the account's password from its source.
pub fn load_password(source: &PasswordSource) -> Result<Secret, (String, String)> {
    load_secret_text(source, "password", "password").map(|text| Secret::new(text.as_str()))
}

/// Reads and decodes the wallet key from its source: hex, or a V3 keystore
/// unlocked with its password (which takes a second or more: scrypt).
pub fn load_key(source: &KeySource) -> Result<Arc<WalletKey>, (String, String)> {
    let (text, key) = match source {
        KeySource::Inline(key) => return Ok(key.clone()),
        KeySource::File(p) => (
            read_source(Source {
                origin: Origin::File(p),
                prefix: "private_key",
                what: "private key",
            })?,
            "auth.private_key_file",
        ),
        KeySource::Env(v) => (
            read_source(Source {
                origin: Origin::Env(v),
                prefix: "private_key",
                what: "private key",
            })?,
            "auth.private_key_env",
        ),
        KeySource::Credential(c) => (
            read_source(Source {
                origin: Origin::Credential(c),
                prefix: "private_key",
                what: "private key",
            })?,
            "auth.private_key_credential",
        ),
        KeySource::Keystore { file, password } => {
            let (json, _) = read_bounded(file).map_err(|e| {
                (
                    "auth.keystore_file".to_string(),
                    format!("cannot read keystore {}: {e}", file.display()),
                )
            })?;
            let password = load_secret_text(password, "keystore_password", "keystore password")?;
            return WalletKey::from_keystore(json.as_bytes(), password.as_bytes())
                .map(Arc::new)
                .map_err(|e| ("auth.keystore_file".to_string(), format!("{}: {e}", file.display())));
        }
    };
    WalletKey::from_hex(trim_newline(&text))
        .map(Arc::new)
        .map_err(|e| (key.to_string(), e.to_string()))
}

/// Refuses a secret file that others than its owner may read: on a shared
/// host any local user could take the account. (Credentials that systemd
/// hands over are exempt: systemd makes them private to the service.)
/// `meta` is that of the file as opened and read.
pub(crate) fn private_file(path: &Path, meta: &std::fs::Metadata, what: &str) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(format!(
            "{what} {} may be read by group or others (mode {:04o}); run `chmod 600 {}` so only its owner can",
            path.display(),
            mode & 0o777,
            path.display()
        ));
    }
    Ok(())
}

/// Refuses a configuration file that anyone may change: whoever writes it
/// chooses where the account's token is sent. `meta` is that of the file
/// as opened and read.
pub(crate) fn not_world_writable(path: &Path, meta: &std::fs::Metadata) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode();
    if mode & 0o002 != 0 {
        return Err(format!(
            "the file may be changed by any user (mode {:04o}); run `chmod o-w {}`",
            mode & 0o777,
            path.display()
        ));
    }
    Ok(())
}

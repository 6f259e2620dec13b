//! Secrets named by the configuration: reading the password from its one
//! source, bounded, so that a mistaken path cannot read forever.

use std::path::Path;

use super::PasswordSource;
use crate::secret::Secret;

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
pub fn load_password(source: &PasswordSource) -> Result<Secret, (&'static str, String)> {
    let (key, text) = match source {
        PasswordSource::Inline(secret) => return Ok(secret.clone()),
        PasswordSource::File(path) => {
            let key = "auth.password_file";
            let text =
                read_bounded(path).map_err(|e| (key, format!("cannot read password file {}: {e}", path.display())))?;
            private_file(path, "password file").map_err(|m| (key, m))?;
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

/// Refuses a secret file that others than its owner may read: on a shared
/// host any local user could take the account. (Credentials that systemd
/// hands over are exempt: systemd makes them private to the service.)
pub(crate) fn private_file(path: &Path, what: &str) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|e| format!("cannot read {what} {}: {e}", path.display()))?
        .permissions()
        .mode();
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
/// chooses where the account's token is sent.
pub(crate) fn not_world_writable(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(());
    };
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

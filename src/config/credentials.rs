//! `[auth]`'s credentials: which login method, and the one source of its
//! secret (password, or wallet key / keystore), loaded and checked here so an
//! error names the key that was set.

use super::raw::RawAuth;
use super::secrets::{load_key, load_password};
use super::validate::{Given, Validator};
use super::*;
use crate::eth::Address;

/// The username `config.toml.example` ships with: a file that still has it
/// was not edited, and would only be refused by the API.
const EXAMPLE_USERNAME: &str = "your_username";

impl Validator<'_> {
    /// Exactly one of the given keys is set: its index, or an error naming
    /// them all.
    fn one_of(&self, keys: &[(&str, bool)], what: &str) -> Result<Option<usize>, ConfigError> {
        let set: Vec<usize> = keys
            .iter()
            .enumerate()
            .filter(|(_, (_, on))| *on)
            .map(|(i, _)| i)
            .collect();
        let names: Vec<String> = keys.iter().map(|(k, _)| format!("auth.{k}")).collect();
        match set.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(*one)),
            _ => Err(self.err(
                &names[set[0]],
                format!(
                    "more than one {what} source is set; keep exactly one of {}",
                    names.join(", ")
                ),
            )),
        }
    }

    /// Who to log in as, with what: `auth.method` and its keys.
    pub(super) fn credentials(&self, ra: &mut RawAuth) -> Result<Credentials, ConfigError> {
        let method = ra.method.take().map(|m| m.trim().to_ascii_lowercase());
        let wallet_keys = [
            ("private_key_file", ra.private_key_file.is_some()),
            ("private_key_env", ra.private_key_env.is_some()),
            ("private_key_credential", ra.private_key_credential.is_some()),
            ("keystore_file", ra.keystore_file.is_some()),
            ("keystore_password_file", ra.keystore_password_file.is_some()),
            ("keystore_password_env", ra.keystore_password_env.is_some()),
            (
                "keystore_password_credential",
                ra.keystore_password_credential.is_some(),
            ),
            ("address", ra.address.is_some()),
            ("display_name", ra.display_name.is_some()),
        ];
        let password_keys = [
            ("username", ra.username.is_some()),
            ("password_file", ra.password_file.is_some()),
            ("password_env", ra.password_env.is_some()),
            ("password_credential", ra.password_credential.is_some()),
        ];
        let misplaced = |keys: &[(&str, bool)], method: &str| {
            keys.iter().find(|(_, on)| *on).map(|(k, _)| {
                self.err(
                    &format!("auth.{k}"),
                    format!("is not used with auth.method = \"{method}\"; remove it or change the method"),
                )
            })
        };
        match method.as_deref() {
            None | Some("password") => {
                if let Some(e) = misplaced(&wallet_keys, "password") {
                    return Err(e);
                }
                self.password_credentials(ra)
            }
            Some("wallet") => {
                if let Some(e) = misplaced(&password_keys, "wallet") {
                    return Err(e);
                }
                self.wallet_credentials(ra)
            }
            Some(other) => Err(self.err(
                "auth.method",
                format!("{other:?} is not a login method; use \"password\" (username and password) or \"wallet\" (EIP-712 signature, the live API)"),
            )),
        }
    }

    fn password_credentials(&self, ra: &mut RawAuth) -> Result<Credentials, ConfigError> {
        let username = ra
            .username
            .take()
            .ok_or_else(|| self.missing("auth.username", "set it to the ETHGas account name"))?;
        if username.trim().is_empty() {
            return Err(self.err("auth.username", "must not be empty"));
        }
        if username.trim() == EXAMPLE_USERNAME {
            return Err(self.err(
                "auth.username",
                format!("{EXAMPLE_USERNAME:?} is the example's placeholder; set auth.username to the ETHGas account's username"),
            ));
        }
        let chosen = self.one_of(
            &[
                ("password_file", ra.password_file.is_some()),
                ("password_env", ra.password_env.is_some()),
                ("password_credential", ra.password_credential.is_some()),
            ],
            "password",
        )?;
        let source = match (chosen, &self.given) {
            (Some(0), _) => PasswordSource::File(self.file_path(ra.password_file.as_deref().unwrap_or_default())),
            (Some(1), _) => PasswordSource::Env(ra.password_env.take().unwrap_or_default()),
            (Some(_), _) => PasswordSource::Credential(ra.password_credential.take().unwrap_or_default()),
            (None, Some(Given::Password(given))) => PasswordSource::Inline(given.clone()),
            (None, _) => {
                return Err(self.missing(
                    "auth.password_file",
                    "give the password through exactly one of auth.password_file, auth.password_env or auth.password_credential",
                ));
            }
        };
        let password = match &source {
            PasswordSource::Credential(name) if self.defer("auth.password_credential", name, "password") => {
                // Never used: a check's configuration is shown, not run.
                Secret::new(String::new())
            }
            _ => load_password(&source).map_err(|(key, msg)| self.err(&key, msg))?,
        };
        Ok(Credentials::Password {
            username,
            source,
            password,
        })
    }

    fn wallet_credentials(&self, ra: &mut RawAuth) -> Result<Credentials, ConfigError> {
        let chosen = self.one_of(
            &[
                ("private_key_file", ra.private_key_file.is_some()),
                ("private_key_env", ra.private_key_env.is_some()),
                ("private_key_credential", ra.private_key_credential.is_some()),
                ("keystore_file", ra.keystore_file.is_some()),
            ],
            "key",
        )?;
        let keystore_password = self.one_of(
            &[
                ("keystore_password_file", ra.keystore_password_file.is_some()),
                ("keystore_password_env", ra.keystore_password_env.is_some()),
                (
                    "keystore_password_credential",
                    ra.keystore_password_credential.is_some(),
                ),
            ],
            "keystore password",
        )?;
        if let (false, Some(i)) = (chosen == Some(3), keystore_password) {
            let key = [
                "keystore_password_file",
                "keystore_password_env",
                "keystore_password_credential",
            ][i];
            return Err(self.err(
                &format!("auth.{key}"),
                "a keystore password is set but no auth.keystore_file; remove it, or set auth.keystore_file",
            ));
        }
        let source = match (chosen, &self.given) {
            (Some(0), _) => KeySource::File(self.file_path(ra.private_key_file.as_deref().unwrap_or_default())),
            (Some(1), _) => KeySource::Env(ra.private_key_env.take().unwrap_or_default()),
            (Some(2), _) => KeySource::Credential(ra.private_key_credential.take().unwrap_or_default()),
            (Some(_), _) => {
                let password = match keystore_password {
                    Some(0) => {
                        PasswordSource::File(self.file_path(ra.keystore_password_file.as_deref().unwrap_or_default()))
                    }
                    Some(1) => PasswordSource::Env(ra.keystore_password_env.take().unwrap_or_default()),
                    Some(_) => PasswordSource::Credential(ra.keystore_password_credential.take().unwrap_or_default()),
                    None => {
                        return Err(self.missing(
                            "auth.keystore_password_file",
                            "a keystore needs its password: set exactly one of auth.keystore_password_file, auth.keystore_password_env or auth.keystore_password_credential",
                        ));
                    }
                };
                KeySource::Keystore {
                    file: self.file_path(ra.keystore_file.as_deref().unwrap_or_default()),
                    password,
                }
            }
            (None, Some(Given::Key(key))) => KeySource::Inline(key.clone()),
            (None, _) => {
                return Err(self.missing(
                    "auth.private_key_file",
                    "method \"wallet\" needs the account's key: set exactly one of auth.private_key_file, auth.private_key_env, auth.private_key_credential or auth.keystore_file",
                ));
            }
        };
        let deferred = match &source {
            KeySource::Credential(name) => self.defer("auth.private_key_credential", name, "key"),
            KeySource::Keystore {
                file,
                password: PasswordSource::Credential(name),
            } => {
                files::open_regular(file, MAX_SECRET_BYTES).map_err(|e| {
                    self.err(
                        "auth.keystore_file",
                        format!("cannot read keystore {}: {e}", file.display()),
                    )
                })?;
                self.defer("auth.keystore_password_credential", name, "keystore password")
            }
            _ => false,
        };
        let expected: Option<Address> = match ra.address.take() {
            Some(text) => Some(
                crate::eth::parse_address(text.trim())
                    .map_err(|e| self.err("auth.address", format!("{text:?}: {e}")))?,
            ),
            None => None,
        };
        if deferred {
            // Never used: a check's configuration is shown, not run.
            let key = Arc::new(WalletKey::random());
            self.deferred.borrow_mut().address_unknown = expected.is_none();
            return Ok(Credentials::Wallet {
                address: expected.unwrap_or_else(|| key.address()),
                display_name: self.display_name(ra)?,
                source,
                key,
            });
        }
        let key = load_key(&source).map_err(|(key, msg)| self.err(&key, msg))?;
        let address = key.address();
        if let Some(expected) = expected {
            if expected != address {
                return Err(self.err(
                    "auth.address",
                    format!("the key is the key of {address}, not of {expected}; is it the right key?"),
                ));
            }
        }
        Ok(Credentials::Wallet {
            address,
            display_name: self.display_name(ra)?,
            source,
            key,
        })
    }

    fn display_name(&self, ra: &mut RawAuth) -> Result<Option<String>, ConfigError> {
        let display_name = ra.display_name.take().map(|n| n.trim().to_string());
        if let Some(name) = &display_name {
            if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
                return Err(self.err("auth.display_name", "must be 1 to 64 printable characters"));
            }
        }
        Ok(display_name)
    }

    /// Whether the secret in systemd credential `name` (set by `key`) is
    /// left for the start: in a check ([`Secrets::Available`]) while
    /// `$CREDENTIALS_DIRECTORY` is unset, as before installing. Notes it.
    fn defer(&self, key: &str, name: &str, what: &str) -> bool {
        if self.secrets != Secrets::Available || std::env::var_os("CREDENTIALS_DIRECTORY").is_some() {
            return false;
        }
        self.deferred.borrow_mut().notes.push(format!(
            "{key} = {name:?}: the {what} is read from the systemd credential {name:?} when the service starts \
             (LoadCredential={name}:…); $CREDENTIALS_DIRECTORY is not set here, so it was not checked. \
             To check it as the service would: CREDENTIALS_DIRECTORY=<a directory holding a file named {name}> \
             ethgas-sidecar check-config --config <file>"
        ));
        true
    }
}

impl AuthSettings {
    /// The envelope of the sidecar's own answers: the one of the API this
    /// login method talks to.
    pub fn envelope(&self) -> Envelope {
        match self.credentials {
            Credentials::Password { .. } => Envelope::Documented,
            Credentials::Wallet { .. } => Envelope::Live,
        }
    }

    /// The password, with method "password".
    pub fn password(&self) -> Option<&Secret> {
        match &self.credentials {
            Credentials::Password { password, .. } => Some(password),
            Credentials::Wallet { .. } => None,
        }
    }

    /// The account as logs, `/readyz` and the status line name it: the
    /// username, or the wallet's checksummed address.
    pub fn account(&self) -> String {
        match &self.credentials {
            Credentials::Password { username, .. } => username.clone(),
            Credentials::Wallet { address, .. } => address.to_string(),
        }
    }
}

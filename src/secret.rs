//! Secrets: the password and the tokens.
//!
//! Every secret the sidecar holds lives in [`Secret`], whose `Debug` and
//! `Display` print a mask, so that a stray `{:?}` in a log line, an error or a
//! panic message cannot leak it. The only way to the bytes is
//! [`Secret::expose`], which is easy to grep for.

use std::fmt;

/// A string that must never be printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself. Call sites are the places where it leaves the process
    /// (a login body, an `Authorization` header), nowhere else.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests;

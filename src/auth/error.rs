//! Why a login, refresh or logout did not yield a token ([`AuthError`]),
//! and how API text appears in one: [`quote`], the one way a value from the
//! API is quoted in errors, `/readyz` and log lines (escaped, and cut so
//! that an answer of any size makes a line of bounded length).

use std::time::Duration;

/// Why a login, refresh or logout did not yield a token.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    #[error("cannot reach {url}: {cause}")]
    Unreachable { url: String, cause: String },
    #[error("{url} did not answer within {}", humantime::format_duration(*.limit))]
    Timeout { url: String, limit: Duration },
    #[error("the API answered HTTP {status}: {message}")]
    Server {
        status: u16,
        message: String,
        retry_after: Option<Duration>,
    },
    #[error("the API refused it (HTTP {status}, code {code}): {message}")]
    Rejected { status: u16, code: i64, message: String },
    #[error("the API answered HTTP {status} with a body that is not the expected JSON: {detail}")]
    Garbage { status: u16, detail: String },
    #[error("the API's answer has no usable `{field}`: {detail}")]
    Shape { field: &'static str, detail: String },
    /// HTTP 404, 405 or 410: nothing answers at that path (a `base_url`
    /// with a path of its own, a wrong `auth.*_path`); not a refusal.
    #[error(
        "the API has no {} endpoint at {url} (HTTP {status}): check upstream.base_url and {key}",
        endpoint_name(key)
    )]
    NoEndpoint {
        url: String,
        status: u16,
        /// The config key of the path: `auth.login_path`, …
        key: &'static str,
    },
}

/// "login" for `auth.login_path`.
fn endpoint_name(key: &str) -> &str {
    key.trim_start_matches("auth.").trim_end_matches("_path")
}

impl AuthError {
    /// What went wrong in the sidecar's own words: the HTTP status and the
    /// API's error code where there is one, never the API's free text.
    pub fn summary(&self) -> String {
        match self {
            AuthError::Unreachable { .. } => "the API is unreachable".into(),
            AuthError::Timeout { limit, .. } => {
                format!("the API did not answer within {}", humantime::format_duration(*limit))
            }
            AuthError::Server { status, .. } => format!("the API answered HTTP {status}"),
            AuthError::Rejected { status, code, .. } => format!("the API refused it (HTTP {status}, code {code})"),
            AuthError::Garbage { status, .. } => format!("the API answered HTTP {status} with a body that is not JSON"),
            AuthError::Shape { field, .. } => format!("the API's answer has no usable `{field}`"),
            AuthError::NoEndpoint { status, key, .. } => {
                format!("the API has no {} endpoint (HTTP {status})", endpoint_name(key))
            }
        }
    }

    /// The API refused the credentials or the refresh token (as opposed to
    /// not answering properly).
    pub fn is_rejection(&self) -> bool {
        matches!(self, AuthError::Rejected { .. })
    }

    /// A refusal of the credentials themselves: HTTP 401 or 403, or an
    /// error code in a 2xx answer (the live API's way). Other 4xx statuses
    /// (400, 409, 422…) are refusals of the request, not of the account,
    /// and are not reported as a wrong password.
    pub fn is_credential_refusal(&self) -> bool {
        match self {
            AuthError::Rejected { status, .. } => matches!(status, 0 | 401 | 403 | 200..=299),
            _ => false,
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            AuthError::Server { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// How many characters of a value from the API an error or a log line
/// quotes at most.
pub const QUOTE_MAX_CHARS: usize = 200;

/// A value from the API (or any outside text), as errors, `/readyz` and log
/// lines quote it: escaped like `{:?}` (quotes, control characters and all)
/// and cut after [`QUOTE_MAX_CHARS`] characters, on a character boundary,
/// with an ellipsis and the original length. The one way API text is quoted,
/// so an answer of any size makes a line of bounded length.
pub fn quote(text: &str) -> String {
    match text.char_indices().nth(QUOTE_MAX_CHARS) {
        None => format!("{text:?}"),
        Some((cut, _)) => format!("{:?}… ({} characters)", &text[..cut], text.chars().count()),
    }
}

/// Joins an error with its sources: "client error (Connect): tcp connect
/// error: Connection refused (os error 111)".
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

//! Least privilege: which class of account call a request is, and whether a
//! listener's policy lets it through.
//!
//! The same bearer token reaches every private endpoint of the API, those
//! that move money included. The sidecar is the one place that sees every
//! call the account makes on this host, so it sorts each request into a
//! [`Class`] from one table (the live API's reference, plus the documented
//! flavour's few endpoints) and refuses the classes a listener's
//! `allow` list leaves out — `funds` by default — before anything reaches
//! the API.
//!
//! The class is decided on the path as a lenient upstream would route it
//! ([`normalize_path`]: escapes decoded, `..` resolved, case folded), so a
//! look-alike (`//api/v1/user/funding/withdraw/`, `%77ithdraw`,
//! `/api/v1/p/../user/funding/withdraw`) is the call it looks like. The
//! table is matched most sensitive first and by prefix on whole segments: a
//! path *below* a money endpoint (`…/withdraw/x`, `…/withdraw.json`) is still
//! `funds`. Only a GET or HEAD of a path the reference lists as a read is
//! `read` before that check (`user/funding/withdraw/status`,
//! `user/delegate/builder`).

use std::fmt;

use http::Method;
use serde::{Deserialize, Serialize};

use ethgas_api::normalize_path;

/// What a call can do to the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    /// Public market data (`/api/v1/p/…`), served without a token.
    Public,
    /// Reads of the account: user, accounts, positions, orders, history.
    Read,
    /// Placing, updating and cancelling orders, bundles, market updates.
    Trade,
    /// Account settings: user update, collateral per slot, validator settings.
    Settings,
    /// Money and identity: withdrawals, transfers, payout address,
    /// delegation, builder and validator (de)registration.
    Funds,
    /// Any other call that is not a GET: the table does not know it.
    Unclassified,
}

impl Class {
    pub const ALL: [Class; 6] = [
        Class::Public,
        Class::Read,
        Class::Trade,
        Class::Settings,
        Class::Funds,
        Class::Unclassified,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Class::Public => "public",
            Class::Read => "read",
            Class::Trade => "trade",
            Class::Settings => "settings",
            Class::Funds => "funds",
            Class::Unclassified => "unclassified",
        }
    }

    /// The classes a listener allows when its config names none: everything
    /// but `funds`.
    pub fn default_allowed() -> Vec<Class> {
        Class::ALL.into_iter().filter(|c| *c != Class::Funds).collect()
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Paths under `/api/v1/` as their segments (split once, here, not per
/// request), lower case (the normalised form), `*` for one segment of any
/// value. Money and identity: any method, and anything below.
const FUNDS: &[&[&str]] = &[
    &["user", "funding", "withdraw"],
    &["user", "account", "transfer", "token"],
    &["user", "payoutaddress"],
    &["user", "delegate", "builder"],
    &["user", "delegate", "pricer"],
    &["builder", "register"],
    &["builder", "deregister"],
    &["validator", "register"],
    &["validator", "deregister"],
    &["validator", "verify"],
];

/// Account settings: any method, and anything below.
const SETTINGS: &[&[&str]] = &[
    &["user", "update"],
    &["user", "collateralperslot"],
    &["validator", "settings"],
];

/// Trading: any method, and anything below.
const TRADE: &[&[&str]] = &[
    &["inclusion-preconf", "order"],
    &["inclusion-preconf", "cancel-order"],
    &["inclusion-preconf", "cancel-all-orders"],
    &["inclusion-preconf", "cancel-batch-orders"],
    &["inclusion-preconf", "cancel-batch-oders"],
    &["wholeblock", "order"],
    &["wholeblock", "cancel-order"],
    &["wholeblock", "cancel-all-orders"],
    &["wholeblock", "cancel-batch-orders"],
    &["user", "bundle", "send"],
    &["user", "inclusion-preconf", "market", "update"],
];

/// Reads the reference lists whose path lies in or below a more sensitive
/// entry: `read` for GET and HEAD only, and only exactly these.
const READ_EXCEPTIONS: &[&[&str]] = &[
    &["user", "funding", "withdraw", "status"],
    &["user", "delegate", "builder"],
];

/// The public market data prefix (segments).
const PUBLIC: &str = "p";

/// The class of a request for `path` (the request target's path, as sent).
/// A plain path (the common case) is matched as it is, case-insensitively,
/// without an allocation; anything unusual is normalised first.
pub fn classify(method: &Method, path: &str) -> Class {
    let unusual = path.len() > 1 && path.ends_with('/')
        || path.contains("//")
        || path.bytes().any(|b| matches!(b, b'%' | b';' | b'.' | b'\\'));
    if unusual {
        classify_plain(method, &normalize_path(path))
    } else {
        classify_plain(method, path)
    }
}

/// The most segments below `/api/v1/` that are looked at: deeper paths are
/// judged on their first ones (a path below a money call is a money call).
const DEPTH: usize = 8;

fn classify_plain(method: &Method, path: &str) -> Class {
    let Some(rest) = strip_prefix_ignore_case(path, "/api/v1/") else {
        // Outside the API's tree: nothing the reference knows.
        return fallback(method);
    };
    let mut segments = [""; DEPTH];
    let mut n = 0;
    let mut deeper = false;
    for s in rest.split('/') {
        if n == DEPTH {
            deeper = true;
            break;
        }
        segments[n] = s;
        n += 1;
    }
    let segments = &segments[..n];
    let read_method = method == Method::GET || method == Method::HEAD;
    if read_method && !deeper && READ_EXCEPTIONS.iter().any(|p| matches_exactly(p, segments)) {
        return Class::Read;
    }
    for (table, class) in [
        (FUNDS, Class::Funds),
        (SETTINGS, Class::Settings),
        (TRADE, Class::Trade),
    ] {
        if table.iter().any(|p| matches_below(p, segments)) {
            return class;
        }
    }
    if segments.first().is_some_and(|s| s.eq_ignore_ascii_case(PUBLIC)) && segments.len() > 1 {
        return Class::Public;
    }
    fallback(method)
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &text[prefix.len()..])
}

fn fallback(method: &Method) -> Class {
    if method == Method::GET || method == Method::HEAD {
        Class::Read
    } else {
        Class::Unclassified
    }
}

/// Whether `path` (segments) is `pattern` or lies below it. A segment that
/// starts with the pattern's last segment followed by `.` counts too
/// (`withdraw.json`: some frameworks route suffixes to the same handler).
fn matches_below(pattern: &[&str], path: &[&str]) -> bool {
    let count = pattern.len();
    if count == 0 || path.len() < count {
        return false;
    }
    pattern.iter().zip(path).enumerate().all(|(i, (p, s))| {
        *p == "*"
            || p.eq_ignore_ascii_case(s)
            || (i == count - 1
                && s.len() > p.len()
                && s.as_bytes()[p.len()] == b'.'
                && s.is_char_boundary(p.len())
                && s[..p.len()].eq_ignore_ascii_case(p))
    })
}

fn matches_exactly(pattern: &[&str], path: &[&str]) -> bool {
    pattern.len() == path.len()
        && pattern
            .iter()
            .zip(path)
            .all(|(p, s)| *p == "*" || p.eq_ignore_ascii_case(s))
}

#[cfg(test)]
mod tests;

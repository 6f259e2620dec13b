//! Who may use the account: the one home of the rules that keep the
//! listener for the local programs it was put there for.
//!
//! Anything that reaches the proxy acts as the account, so three doors are
//! watched here:
//! - the **peer** of a TCP connection must be in `proxy.allowed_clients`
//!   (loopback by default) — checked once per connection by the server;
//! - the **`Host`** of an origin-form request must name this sidecar
//!   (`localhost`, a loopback address, with or without a port), the API
//!   itself, or a name in `proxy.allowed_hosts`: a web page that rebinds its
//!   own DNS name to 127.0.0.1 sends its own name and is refused (a unix
//!   socket, which no browser reaches, skips this rule);
//! - a **browser** marks what it sends: a request with an `Origin` that is not
//!   in `proxy.allowed_origins`, or with `Sec-Fetch-Site: cross-site` /
//!   `same-site`, is refused, WebSocket upgrades included. Legacy programs
//!   send neither header and are unaffected.
//!
//! The client's `Origin` is never passed on to the API.

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;
use http::header::{HOST, ORIGIN};

use crate::config::{ProxyPolicy, normalize_host};
use crate::error::ProxyError;

/// Whether a TCP peer may use the proxy (IPv4-mapped IPv6 addresses are
/// matched as IPv4 too).
pub fn peer_allowed(policy: &ProxyPolicy, peer: SocketAddr) -> bool {
    let (ip, canonical) = (peer.ip(), peer.ip().to_canonical());
    policy
        .allowed_clients
        .iter()
        .any(|net| net.contains(&ip) || net.contains(&canonical))
}

/// The browser and `Host` rules for one request. `upstream_host` is the
/// API's host (lower case); `unix` says the request came over the unix
/// socket listener; `absolute_form` that its target named a host itself
/// (HTTP_PROXY style, checked against the API's host elsewhere).
pub fn check_request(
    policy: &ProxyPolicy,
    headers: &HeaderMap,
    upstream_host: &str,
    unix: bool,
    absolute_form: bool,
) -> Result<(), ProxyError> {
    if let Some(site) = headers.get("sec-fetch-site") {
        let site = site.as_bytes();
        if site.eq_ignore_ascii_case(b"cross-site") || site.eq_ignore_ascii_case(b"same-site") {
            return Err(browser(format!(
                "a {} request from a web page",
                String::from_utf8_lossy(site).to_ascii_lowercase()
            )));
        }
    }
    for origin in headers.get_all(ORIGIN) {
        let text = origin.to_str().unwrap_or("").trim();
        let allowed = policy
            .allowed_origins
            .iter()
            .any(|o| o.eq_ignore_ascii_case(text.trim_end_matches('/')));
        if !allowed {
            return Err(browser(format!("a request from the web origin {text:?}")));
        }
    }
    if unix || absolute_form {
        return Ok(());
    }
    let mut hosts = headers.get_all(HOST).iter();
    let (Some(host), None) = (hosts.next(), hosts.next()) else {
        // No Host (HTTP/1.0 programs send none; no browser does that), or
        // several, which the framing guard refuses before this.
        return Ok(());
    };
    let text = host.to_str().unwrap_or("");
    let name = host_name(text);
    if is_local_name(&name) || name == upstream_host || policy.allowed_hosts.contains(&name) {
        return Ok(());
    }
    Err(ProxyError::Forbidden(format!(
        "Host {text:?} does not name this sidecar: a web page whose domain resolves to this host (DNS rebinding) \
         cannot use the account; programs use http://127.0.0.1:PORT or http://localhost:PORT \
         (or add the name to proxy.allowed_hosts)"
    )))
}

fn browser(what: String) -> ProxyError {
    ProxyError::Forbidden(format!(
        "{what} was refused: browsers cannot use the account through this sidecar \
         (add the page's origin to proxy.allowed_origins if it is yours)"
    ))
}

/// The host part of a `Host` value, lower case, without port or brackets.
fn host_name(value: &str) -> String {
    let value = value.trim();
    let host = if let Some(rest) = value.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        value.rsplit_once(':').map_or(value, |(h, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                h
            } else {
                value
            }
        })
    };
    normalize_host(host)
}

/// `localhost` or a loopback address.
fn is_local_name(name: &str) -> bool {
    name == "localhost"
        || name.ends_with(".localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.to_canonical().is_loopback())
}

#[cfg(test)]
mod tests;

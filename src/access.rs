//! Who may use the account: the one admission gate, [`Gate::admit`], a pure
//! function of the live policy, the request's head and how it arrived,
//! called once per request before the proxy does anything else with it.
//!
//! Anything that reaches the proxy acts as the account. The rules, in the
//! order they are checked (the first that fails answers):
//! 1. the **peer** of a TCP connection must be in `proxy.allowed_clients`
//!    (loopback by default): 403, and the connection is closed;
//! 2. **one `Host`**: a second `Host` line (which hyper keeps in the header
//!    map) is a 400, so that no check reads one line while the API reads the
//!    other;
//! 3. the **target** within `proxy.max_uri_bytes` (414) and 4. the
//!    **headers** within `proxy.max_header_bytes` (431) — heads far beyond
//!    them never get here: hyper answers them itself (bare 414/431);
//! 5. a **browser** marks what it sends: a request with an `Origin`, or with
//!    `Sec-Fetch-Site: cross-site` / `same-site`, is refused (403), WebSocket
//!    upgrades included — unless the origin is in `proxy.allowed_origins`, or
//!    is this listener's own origin ([`is_own_origin`]). Legacy programs send
//!    neither header and are unaffected;
//! 6. the **`Host`** of an origin-form request must name this sidecar
//!    (`localhost`, a loopback address, with or without a port), the API
//!    itself, or a name in `proxy.allowed_hosts` (403): a web page that
//!    rebinds its own DNS name to 127.0.0.1 sends its own name and is refused
//!    (a unix socket, which no browser reaches, skips this rule);
//! 7. an **absolute-form** target (HTTP_PROXY) must name the API's host (or
//!    an alias in `proxy.host_aliases`) and port (403).
//!
//! The own origin is what a program writes when it derives `Origin` from the
//! URL it connects to (websocket-client, and so python-ethgas's `WsClient`,
//! sends `Origin: http://127.0.0.1:<port>` for `ws://127.0.0.1:<port>/ws`).
//! No web page can carry it: a page with that origin would have to be served
//! by this listener, and every answer the proxy gives carries
//! `Content-Security-Policy: sandbox`, which puts any document it could serve
//! in an opaque origin (whose requests say `Origin: null`). Names that a
//! page's owner controls (DNS rebinding), other ports (other local web
//! servers) and browser-marked cross-site or same-site requests stay refused.
//!
//! Each refusal of a client or a browser is logged once per address, origin
//! or host at warn level with the key that would allow it ([`Refusals`]); the
//! memory of what was logged is bounded. The client's `Origin` is never
//! passed on to the API.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;

use http::header::{CONTENT_SECURITY_POLICY, HOST, HeaderValue, ORIGIN, X_CONTENT_TYPE_OPTIONS};
use http::{HeaderMap, Method, Request};
use tracing::{debug, warn};

use crate::config::{ProxyListener, ProxyPolicy, normalize_host};
use crate::error::ProxyError;
use crate::upstream::Target;

/// How many distinct refused origins (and hosts) are remembered so that each
/// is logged once. Past it, new ones are logged at debug level: a client that
/// sends a new origin with every request cannot grow the memory or flood the
/// journal.
pub const REMEMBERED_REFUSALS: usize = 64;

/// The most characters of a client's `Origin` or `Host` quoted in a log line
/// or an answer.
const QUOTED_MAX: usize = 100;

/// Header lines a request head may have; hyper answers more with a bare 431.
pub const MAX_HEADERS: usize = 256;

/// Whether a TCP peer may use the proxy (IPv4-mapped IPv6 addresses are
/// matched as IPv4 too).
pub fn peer_allowed(policy: &ProxyPolicy, peer: SocketAddr) -> bool {
    let (ip, canonical) = (peer.ip(), peer.ip().to_canonical());
    policy
        .allowed_clients
        .iter()
        .any(|net| net.contains(&ip) || net.contains(&canonical))
}

/// How a request reached the proxy, as its connection tells.
#[derive(Debug, Clone, Copy)]
pub struct Arrival {
    /// The TCP peer; `None` over the unix-socket listener, which no browser
    /// reaches.
    pub peer: Option<SocketAddr>,
    /// The local address of the TCP connection: the address and port the
    /// client connected to (with socket activation or `listen = …:0` too).
    pub local: Option<SocketAddr>,
}

/// Why a request was refused. The quoted texts are cut to a bounded length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A TCP peer outside `proxy.allowed_clients`.
    Client(IpAddr),
    /// More than one `Host` line.
    DuplicateHost,
    /// A target longer than `proxy.max_uri_bytes` (the limit).
    UriTooLong(usize),
    /// Headers larger than `proxy.max_header_bytes` (the limit).
    HeadersTooLarge(usize),
    /// An `Origin` that is neither allowed nor this listener's own;
    /// `proxy.allowed_origins` would allow it.
    Origin(String),
    /// A request a browser marked `cross-site` or `same-site` (the value)
    /// without an `Origin`: a navigation, an image, a no-cors GET. No
    /// setting allows it.
    Site(String),
    /// A `Host` that does not name this sidecar (DNS rebinding);
    /// `proxy.allowed_hosts` would allow it.
    Host(String),
    /// An absolute-form target for another host or port (the authority and
    /// the API's origin); `proxy.host_aliases` would allow another name.
    AbsoluteForm { host: String, upstream: String },
}

impl Refusal {
    /// The answer the client gets, in the API's envelope.
    pub fn error(&self) -> ProxyError {
        match self {
            Refusal::Client(ip) => ProxyError::RefusedClient { addr: ip.to_string() },
            Refusal::DuplicateHost => ProxyError::BadRequest("more than one Host header; send exactly one".into()),
            Refusal::UriTooLong(limit) => ProxyError::UriTooLong {
                limit: *limit,
                setting: "proxy.max_uri_bytes",
            },
            Refusal::HeadersTooLarge(limit) => ProxyError::HeadersTooLarge { limit: *limit },
            Refusal::Origin(origin) => browser(format!("a request from the web origin {origin:?}"), true),
            Refusal::Site(site) => browser(format!("a {site} request from a web page"), false),
            Refusal::Host(host) => ProxyError::Forbidden(format!(
                "Host {host:?} does not name this sidecar: a web page whose domain resolves to this host (DNS rebinding) \
                 cannot use the account; programs use http://127.0.0.1:PORT or http://localhost:PORT \
                 (or add the name to proxy.allowed_hosts)"
            )),
            Refusal::AbsoluteForm { host, upstream } => ProxyError::RefusedHost {
                host: host.clone(),
                upstream: upstream.clone(),
            },
        }
    }

    /// What the refusal is remembered by (one warning each), and the key
    /// that would allow it; `None` for those not logged at warn level.
    fn memo(&self) -> Option<(String, Option<&'static str>)> {
        match self {
            Refusal::Client(ip) => Some((format!("client {ip}"), Some("proxy.allowed_clients"))),
            Refusal::Origin(o) => Some((format!("origin {o}"), Some("proxy.allowed_origins"))),
            Refusal::Site(s) => Some((format!("site {s}"), None)),
            Refusal::Host(h) => Some((format!("host {h}"), Some("proxy.allowed_hosts"))),
            _ => None,
        }
    }
}

/// The admission rules, with the part of the configuration they read that
/// only a restart changes; the rest is the live [`ProxyPolicy`].
#[derive(Debug, Clone)]
pub struct Gate {
    /// `proxy.max_header_bytes`.
    max_header_bytes: usize,
    /// `proxy.max_uri_bytes`.
    max_uri_bytes: usize,
    /// The API's host (lower case, no brackets) and effective port.
    upstream_host: String,
    upstream_port: u16,
    /// The API's origin, for the refusal of another host.
    upstream_origin: String,
}

impl Gate {
    pub fn new(proxy: &ProxyListener, target: &Target) -> Gate {
        Gate {
            max_header_bytes: proxy.max_header_bytes,
            max_uri_bytes: proxy.max_uri_bytes,
            upstream_host: target.host.clone(),
            upstream_port: target.port,
            upstream_origin: target.origin(),
        }
    }

    /// hyper's read buffer and largest head (`max_buf_size`,
    /// `max_header_size`): room for the largest head the gate takes, twice
    /// over, so that the gate's limits answer first (in the envelope) and
    /// only a head far beyond them meets hyper's bare 431.
    pub fn head_buffer(&self) -> usize {
        (self.max_header_bytes + self.max_uri_bytes) * 2 + 16 * 1024
    }

    /// Admits a request, or says which rule refuses it (the first in the
    /// order of the module's list).
    pub fn admit<B>(&self, policy: &ProxyPolicy, req: &Request<B>, arrival: Arrival) -> Result<(), Refusal> {
        if let Some(peer) = arrival.peer {
            if !peer_allowed(policy, peer) {
                return Err(Refusal::Client(peer.ip()));
            }
        }
        let mut hosts = req.headers().get_all(HOST).iter();
        // No Host (HTTP/1.0 programs send none; no browser does that).
        let host = hosts.next().map(|h| h.to_str().unwrap_or(""));
        if hosts.next().is_some() {
            return Err(Refusal::DuplicateHost);
        }
        let uri = req.uri();
        let uri_len =
            uri.path_and_query().map_or(0, |pq| pq.as_str().len()) + uri.authority().map_or(0, |a| a.as_str().len());
        if uri_len > self.max_uri_bytes {
            return Err(Refusal::UriTooLong(self.max_uri_bytes));
        }
        let header_bytes: usize = req.headers().iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum();
        if header_bytes > self.max_header_bytes {
            return Err(Refusal::HeadersTooLarge(self.max_header_bytes));
        }
        // CONNECT names its target in authority form, which is no Host rule's
        // business; the proxy refuses it (405) after this gate.
        let absolute = uri.authority().filter(|_| req.method() != Method::CONNECT);
        browser_and_host(
            policy,
            req.headers(),
            host,
            &self.upstream_host,
            arrival,
            uri.authority().is_some(),
        )?;
        if let Some(authority) = absolute {
            self.check_absolute_form(policy, uri.scheme_str(), authority)?;
        }
        Ok(())
    }

    /// An absolute-form request (HTTP_PROXY) must name the upstream's host
    /// (or an alias) — and its port, if it names one that is not the
    /// scheme's default.
    fn check_absolute_form(
        &self,
        policy: &ProxyPolicy,
        scheme: Option<&str>,
        authority: &http::uri::Authority,
    ) -> Result<(), Refusal> {
        let host = normalize_host(authority.host());
        let host_ok = host == self.upstream_host || policy.host_aliases.contains(&host);
        let port_ok = match authority.port_u16() {
            None => true,
            Some(p) => {
                p == self.upstream_port || (scheme == Some("http") && p == 80) || (scheme == Some("https") && p == 443)
            }
        };
        if host_ok && port_ok {
            Ok(())
        } else {
            Err(Refusal::AbsoluteForm {
                host: authority.as_str().to_string(),
                upstream: self.upstream_origin.clone(),
            })
        }
    }
}

/// The browser and `Host` rules (5 and 6) for one request. `upstream_host`
/// is the API's host (lower case); a request whose target names a host
/// (`authority_form`) is judged by that instead of its `Host`.
fn browser_and_host(
    policy: &ProxyPolicy,
    headers: &HeaderMap,
    host: Option<&str>,
    upstream_host: &str,
    arrival: Arrival,
    authority_form: bool,
) -> Result<(), Refusal> {
    let unix = arrival.peer.is_none();
    let site = headers.get("sec-fetch-site").map(|v| v.as_bytes());
    let marked = site.filter(|s| s.eq_ignore_ascii_case(b"cross-site") || s.eq_ignore_ascii_case(b"same-site"));
    // What a program sends (nothing), or a browser for its own page.
    let unmarked = site.is_none_or(|s| s.eq_ignore_ascii_case(b"same-origin") || s.eq_ignore_ascii_case(b"none"));
    let mut origins = headers.get_all(ORIGIN).iter().peekable();
    if origins.peek().is_none() {
        if let Some(site) = marked {
            return Err(Refusal::Site(String::from_utf8_lossy(site).to_ascii_lowercase()));
        }
    }
    for origin in origins {
        let text = origin.to_str().unwrap_or("").trim();
        let listed = policy
            .allowed_origins
            .iter()
            .any(|o| o.eq_ignore_ascii_case(text.trim_end_matches('/')));
        let own = unmarked
            && !unix
            && arrival
                .local
                .is_some_and(|local| is_own_origin(policy, text, host, local));
        if !(listed || own) {
            return Err(Refusal::Origin(quote(origin.as_bytes())));
        }
    }
    if unix || authority_form {
        return Ok(());
    }
    let Some(text) = host else {
        return Ok(());
    };
    let name = host_name(text);
    if is_local_name(&name) || name == upstream_host || policy.allowed_hosts.contains(&name) {
        return Ok(());
    }
    Err(Refusal::Host(quote(text.as_bytes())))
}

/// Whether `origin` is this listener's own: `http://<host>[:<port>]` where
/// the port is the connection's local port (80 if none is written), the host
/// is `localhost`, the loopback address the client connected to, or a name
/// in `proxy.allowed_hosts` — and the request's `Host` names that same host
/// and port, as it does when a program derives both from the one URL it
/// connects to. (The caller checks that `Sec-Fetch-Site`, if sent, is
/// `same-origin` or `none`.)
///
/// A browser sends this origin only for a document this listener served,
/// and every such document is sandboxed into an opaque origin
/// (`Content-Security-Policy: sandbox`). A name the sidecar does not know
/// could be an attacker's domain rebound to loopback; another port, or
/// another loopback address, another local server.
pub fn is_own_origin(policy: &ProxyPolicy, origin: &str, host: Option<&str>, local: SocketAddr) -> bool {
    let Some(authority) = origin
        .get(..7)
        .filter(|scheme| scheme.eq_ignore_ascii_case("http://"))
        .map(|_| &origin[7..])
    else {
        return false;
    };
    if authority.is_empty() || authority.contains(['@', '/', '?', '#']) {
        return false;
    }
    if !host.is_some_and(|h| h.trim().eq_ignore_ascii_case(authority)) {
        return false;
    }
    let Ok(parsed) = authority.parse::<http::uri::Authority>() else {
        return false;
    };
    if parsed.port_u16().unwrap_or(80) != local.port() {
        return false;
    }
    let name = normalize_host(parsed.host());
    if name == "localhost" || policy.allowed_hosts.contains(&name) {
        return true;
    }
    name.parse::<IpAddr>()
        .is_ok_and(|ip| ip.to_canonical().is_loopback() && ip.to_canonical() == local.ip().to_canonical())
}

fn browser(what: String, origin: bool) -> ProxyError {
    let hint = if origin {
        " (add the page's origin to proxy.allowed_origins if it is yours)"
    } else {
        ""
    };
    ProxyError::Forbidden(format!(
        "{what} was refused: browsers cannot use the account through this sidecar{hint}"
    ))
}

/// A client's header text, cut to [`QUOTED_MAX`] characters; non-UTF-8
/// bytes become U+FFFD. Quoted with `{:?}` wherever it is shown, so control
/// characters are escaped.
pub(crate) fn quote(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out: String = text.trim().chars().take(QUOTED_MAX).collect();
    if text.trim().chars().count() > QUOTED_MAX {
        out.push('…');
    }
    out
}

/// The memory of the refusals already logged: each refused client, origin
/// or host is logged once at warn level, naming the key that would allow it.
/// One per process, shared by every worker.
#[derive(Default)]
pub struct Refusals {
    logged: Mutex<HashSet<String>>,
}

impl Refusals {
    /// Logs a refusal of a client or a browser at warn level if its address,
    /// origin or host was not logged before and there is room to remember
    /// it; returns whether it did. Other refusals are the client's own
    /// mistakes, answered and logged at debug level by the proxy.
    pub fn log(&self, refusal: &Refusal) -> bool {
        let Some((memo, key)) = refusal.memo() else {
            return false;
        };
        let first = self.first_time(memo);
        let what = match refusal {
            Refusal::Client(ip) => format!("the client {ip}"),
            Refusal::Origin(o) => format!("a request from the web origin {o:?}"),
            Refusal::Site(s) => format!("a {s} request from a web page (no Origin)"),
            Refusal::Host(h) => format!("a request for Host {h:?} (a web page's own name: DNS rebinding)"),
            _ => return false,
        };
        if !first {
            debug!("refused {what}");
            return false;
        }
        match (refusal, key) {
            (Refusal::Client(ip), _) => warn!(
                client = %ip,
                "refused the client {ip} with 403: it is outside proxy.allowed_clients (logged once per address)"
            ),
            (_, Some(key)) => warn!(
                setting = key,
                "refused {what} with 403: browsers cannot use the account; if this is your own program or page, \
                 add it to {key} (logged once per {})",
                if matches!(refusal, Refusal::Host(_)) {
                    "host"
                } else {
                    "origin"
                }
            ),
            (_, None) => warn!(
                "refused {what} with 403: browsers cannot use the account, and no setting allows requests a \
                 browser marks cross-site or same-site without an Origin (logged once)"
            ),
        }
        true
    }

    /// Whether `memo` is seen for the first time (and there was room to
    /// remember it): what is logged at warn level once, and at debug level
    /// after that.
    pub fn first_time(&self, memo: String) -> bool {
        let (first, full) = match self.logged.lock() {
            Ok(mut seen) => {
                if seen.contains(&memo) {
                    (false, false)
                } else if seen.len() < REMEMBERED_REFUSALS {
                    (seen.insert(memo), false)
                } else {
                    // One line to say why the rest go quiet (the empty
                    // entry marks it said), then room for no more.
                    (false, seen.insert(String::new()))
                }
            }
            Err(_) => (false, false),
        };
        if full {
            warn!(
                remembered = REMEMBERED_REFUSALS,
                "refused requests of {REMEMBERED_REFUSALS} different kinds (origins, hosts, CONNECT targets); \
                 further new ones are logged at debug level only"
            );
        }
        first
    }
}

/// Marks an answer of the proxy so that no browser runs it as a page of
/// this listener's origin ([`is_own_origin`] relies on it): `sandbox` puts
/// any document in an opaque origin (added to the API's own policy, if it
/// sent one), and `nosniff` keeps JSON from being read as HTML or script.
pub fn sandbox(headers: &mut HeaderMap) {
    headers.append(CONTENT_SECURITY_POLICY, HeaderValue::from_static("sandbox"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
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

//! Sockets handed over by systemd (socket activation): which of the passed
//! descriptors is the proxy's listener, which the admin's, and which belong
//! to the further listeners of `[[listeners]]` (by their names).

use super::Inherited;

/// What systemd passed.
pub struct Passed {
    pub proxy: Inherited,
    pub admin: Option<Inherited>,
    /// Sockets named after a `[[listeners]]` entry (`FileDescriptorName=`).
    pub named: Vec<(String, Inherited)>,
}

/// Listeners handed over by systemd (socket activation), by name (`proxy`,
/// `admin`) or else by position: the proxy's and, if passed, the admin's;
/// every other named socket for the listener of that name. Must run before
/// any thread starts: it clears `LISTEN_FDS` from the environment.
pub fn inherited_listeners() -> Result<Option<Passed>, String> {
    let mut fds = listenfd::ListenFd::from_env();
    let count = fds.len();
    if count == 0 {
        return Ok(None);
    }
    let names: Vec<String> = std::env::var("LISTEN_FDNAMES")
        .map(|v| v.split(':').map(str::to_string).collect())
        .unwrap_or_default();
    let mut take = |idx: usize| -> Result<Option<Inherited>, String> {
        if let Ok(Some(l)) = fds.take_tcp_listener(idx) {
            return Ok(Some(Inherited::Tcp(l)));
        }
        match fds.take_unix_listener(idx) {
            Ok(Some(l)) => Ok(Some(Inherited::Unix(l))),
            Ok(None) => Ok(None),
            Err(e) => Err(format!("socket-activation fd {}: {e}", idx + 3)),
        }
    };
    let by_name = |name: &str| names.iter().position(|n| n == name);
    let (proxy_idx, admin_idx) = match (by_name("proxy"), by_name("admin")) {
        (Some(p), a) => (p, a),
        (None, Some(a)) => (if a == 0 { 1 } else { 0 }, Some(a)),
        (None, None) => (0, (count > 1).then_some(1)),
    };
    let proxy = take(proxy_idx)?.ok_or("socket activation: no proxy listener among the passed fds")?;
    let admin = match admin_idx {
        Some(i) => take(i)?,
        None => None,
    };
    let mut named = Vec::new();
    for (idx, name) in names.iter().enumerate() {
        if idx == proxy_idx || Some(idx) == admin_idx || name.is_empty() {
            continue;
        }
        if let Some(l) = take(idx)? {
            named.push((name.clone(), l));
        }
    }
    Ok(Some(Passed { proxy, admin, named }))
}

//! Defaults derived from other keys or from the environment: the WebSocket
//! endpoint of an API base URL, and the connection cap from the open-file
//! limit.

use http::Uri;

/// The WebSocket endpoint that goes with an API base URL: the public ETHGas
/// hosts have their own socket hosts; anything else (a mock, a test
/// server) serves both on one origin.
pub(super) fn derive_websocket_url(base: &Uri) -> Uri {
    let host = base.host().unwrap_or_default().to_ascii_lowercase();
    let known = match host.as_str() {
        "api.ethgas.com" => Some("wss://ws.ethgas.com"),
        "testnet-api.ethgas.com" => Some("wss://testnet-ws.ethgas.com"),
        _ => None,
    };
    if let Some(url) = known {
        return Uri::from_static(url);
    }
    // The live service serves its socket on its own host: wss://<host>/ws
    // (mainnet.app.ethgas.com, hoodi.app.ethgas.com).
    if host.ends_with(".app.ethgas.com") && base.scheme_str() == Some("https") {
        if let Ok(uri) = format!("wss://{}/ws", base.authority().map(|a| a.as_str()).unwrap_or(&host)).parse() {
            return uri;
        }
    }
    let scheme = if base.scheme_str() == Some("https") {
        "wss"
    } else {
        "ws"
    };
    let authority = base.authority().map(|a| a.as_str()).unwrap_or("localhost");
    format!("{scheme}://{authority}/")
        .parse()
        .unwrap_or_else(|_| Uri::from_static("ws://localhost/"))
}

/// Half the soft limit on open files (the other half is for connections to
/// the API, logs and the like), at least 64; 4096 when the limit is unknown.
pub(super) fn default_max_connections() -> usize {
    let soft = std::fs::read_to_string("/proc/self/limits").ok().and_then(|text| {
        text.lines()
            .find(|l| l.starts_with("Max open files"))
            .and_then(|l| l.split_whitespace().nth(3))
            .and_then(|v| v.parse::<usize>().ok())
    });
    match soft {
        Some(n) => (n.saturating_sub(64) / 2).clamp(64, 1 << 20),
        None => 4096,
    }
}

//! The ETHGas API's names, in one place: what the sidecar and the built-in
//! mock (`ethgas-mock`) both have to spell the same way as the live service
//! (`ethgas-api.md`).
//!
//! - the account endpoints' default paths ([`LOGIN_PATH`], [`REFRESH_PATH`],
//!   [`VERIFY_PATH`], [`LOGOUT_PATH`]) and the public market data's prefix
//!   ([`PUBLIC_PREFIX`]);
//! - the live API's refresh-token cookie ([`REFRESH_COOKIE`]) and the bearer
//!   scheme ([`BEARER`]);
//! - the EIP-712 login challenge ([`login_typed_data`]);
//! - [`normalize_path`]: a path as a lenient upstream would route it, which
//!   both the config check of `public_prefixes` and the recognition of the
//!   account calls rely on.

#![forbid(unsafe_code)]

use percent_encoding::percent_decode;

/// Login: the documented username/password login, or the live API's wallet
/// challenge (`?addr=`).
pub const LOGIN_PATH: &str = "/api/v1/user/login";
/// Refresh of the token pair.
pub const REFRESH_PATH: &str = "/api/v1/user/login/refresh";
/// Token check (documented), or the live API's signature verify.
pub const VERIFY_PATH: &str = "/api/v1/user/login/verify";
/// Logout.
pub const LOGOUT_PATH: &str = "/api/v1/user/logout";
/// Everything under it is public market data, served without a token.
pub const PUBLIC_PREFIX: &str = "/api/v1/p/";
/// Everything under it is the API (private unless under [`PUBLIC_PREFIX`]).
pub const API_PREFIX: &str = "/api/v1/";

/// The live API's refresh-token cookie, set by login and refresh and sent
/// back to refresh.
pub const REFRESH_COOKIE: &str = "x_auth_refresh_token";

/// The `Authorization` scheme of an access token, with its space.
pub const BEARER: &str = "Bearer ";

/// The ETHGas login typed data as JSON text, exactly the live shape
/// (`ethgas-api.md`, "Live API"): primary type `data {string hash, string
/// message, string domain}` with `hash` = `nonce_hash`, and domain
/// `{name "ETHGas Login", version "1", chainId, verifyingContract 0x0…0}`.
pub fn login_typed_data(nonce_hash: &str, chain_id: u64) -> String {
    // Filled in this order so the nonce (inserted last) is never scanned.
    LOGIN_TYPED_DATA
        .replace("@CHAIN_ID@", &chain_id.to_string())
        .replace("@NONCE_HASH@", &serde_json::Value::from(nonce_hash).to_string())
}

/// The published challenge, byte for byte, with two placeholders.
const LOGIN_TYPED_DATA: &str = concat!(
    r#"{"types":{"EIP712Domain":[{"name":"name","type":"string"},{"name":"version","type":"string"},"#,
    r#"{"name":"chainId","type":"uint256"},{"name":"verifyingContract","type":"address"}],"#,
    r#""data":[{"name":"hash","type":"string"},{"name":"message","type":"string"},{"name":"domain","type":"string"}]},"#,
    r#""primaryType":"data","#,
    r#""message":{"hash":@NONCE_HASH@,"message":"Please sign this message to verify account ownership","domain":"ethgas.com"},"#,
    r#""domain":{"name":"ETHGas Login","version":"1","chainId":@CHAIN_ID@,"verifyingContract":"0x0000000000000000000000000000000000000000"}}"#,
);

/// A path as the most lenient upstream would route it: percent-escapes
/// decoded (twice, for double encoding), `\\` taken as `/`, `;parameters`
/// dropped from each segment, empty and `.` segments dropped, `..` resolved,
/// no trailing slash, lower case. Only used to recognise paths; a request is
/// forwarded as the client wrote it.
pub fn normalize_path(path: &str) -> String {
    let once: Vec<u8> = percent_decode(path.as_bytes()).collect();
    let decoded: Vec<u8> = percent_decode(&once).collect();
    let text = String::from_utf8_lossy(&decoded).to_lowercase().replace('\\', "/");
    let mut segments: Vec<&str> = Vec::new();
    for segment in text.split('/') {
        let segment = segment.split(';').next().unwrap_or("");
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    format!("/{}", segments.join("/"))
}

#[cfg(test)]
mod tests;

//! Single values of the file that have a shape of their own: listener
//! addresses, the API's URLs, client networks and public path prefixes.
//! Each error names the key and says what to write instead.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;

use http::Uri;
use ipnet::IpNet;

use super::raw::AdminOnly;
use super::syntax::describe;
use super::validate::Validator;
use super::{BaseUrl, ConfigError, Listen, origin};

/// `IP:PORT` or `unix:/absolute/path`, as every `listen` key takes it.
impl FromStr for Listen {
    type Err = String;

    fn from_str(value: &str) -> Result<Listen, String> {
        let value = value.trim();
        if let Some(path) = value.strip_prefix("unix:") {
            if !path.starts_with('/') {
                return Err(format!(
                    "{value:?}: a unix socket needs an absolute path, e.g. \"unix:/run/ethgas-sidecar/proxy.sock\""
                ));
            }
            return Ok(Listen::Unix(PathBuf::from(path)));
        }
        value.parse::<SocketAddr>().map(Listen::Tcp).map_err(|_| {
            format!("{value:?} is not an address; write IP:PORT such as \"127.0.0.1:8080\" or \"[::1]:8080\", or \"unix:/path\"")
        })
    }
}

/// `admin.listen` from the text of a config file, for `ethgas-sidecar
/// status`: the rest of the file is neither read nor validated (an operator
/// who asks for the status often cannot open the secret sources); inside
/// `[admin]` the loader's own rules apply, unknown keys included. Errors
/// name the key, never a value.
pub fn admin_listen(text: &str) -> Result<Option<Listen>, String> {
    let raw: AdminOnly = toml::from_str(text).map_err(|e| describe(text, &e))?;
    let listen = raw.admin.listen.map(|l| l.parse::<Listen>()).transpose();
    listen.map_err(|e| format!("`admin.listen`: {e}"))
}

impl Validator<'_> {
    pub(super) fn listen(&self, key: &str, value: &str) -> Result<Listen, ConfigError> {
        value.parse().map_err(|message| self.err(key, message))
    }

    /// `proxy.public_prefixes`: each a plain lower-case path `/…/` that is
    /// its own normalisation, so the match in `intercept::is_public` (on the
    /// path as sent and as normalised) can hold.
    pub(super) fn public_prefixes(&self, value: Option<Vec<String>>) -> Result<Vec<String>, ConfigError> {
        let prefixes = value.unwrap_or_else(|| vec![ethgas_api::PUBLIC_PREFIX.to_string()]);
        for p in &prefixes {
            let forbidden = ["..", "%", ";", "?", "#", "//", "\\"]
                .into_iter()
                .find(|s| p.contains(s));
            let why = if !p.starts_with('/') || !p.ends_with('/') {
                "must start and end with '/', e.g. \"/api/v1/p/\"".to_string()
            } else if p == "/" {
                "would make every path public; name the public part of the API, e.g. \"/api/v1/p/\"".to_string()
            } else if let Some(bad) = forbidden {
                format!("must not contain {bad:?}")
            } else if p.bytes().any(|b| !b.is_ascii_graphic()) {
                "must not contain spaces, control characters or non-ASCII".to_string()
            } else if ethgas_api::normalize_path(p) + "/" != *p {
                "must be a plain lower-case path without `.` segments (matching is case-sensitive, and the API's paths are lower case)".to_string()
            } else {
                continue;
            };
            return Err(self.err("proxy.public_prefixes", format!("{p:?} {why}")));
        }
        Ok(prefixes)
    }

    pub(super) fn base_url(&self, text: &str) -> Result<BaseUrl, ConfigError> {
        let key = "upstream.base_url";
        let bad = || {
            self.err(
                key,
                format!("{text:?} is not an absolute http:// or https:// URL such as \"https://api.ethgas.com\""),
            )
        };
        let uri: Uri = text.trim().parse().map_err(|_| bad())?;
        match uri.scheme_str() {
            Some("http") | Some("https") => {}
            _ => return Err(bad()),
        }
        let authority = uri.authority().ok_or_else(bad)?;
        if authority.host().is_empty() || authority.as_str().contains('@') {
            return Err(bad());
        }
        if uri.query().is_some() {
            return Err(self.err(key, format!("{text:?} must not have a query")));
        }
        let origin: Uri = origin(&uri).parse().map_err(|_| bad())?;
        // Programs send the API's full paths (`/api/v1/…`), which go to the
        // origin as they are; a path here would be put in front of each of
        // them (`/api/v1/api/v1/user/login`).
        if !matches!(uri.path(), "" | "/") {
            return Err(self.err(
                key,
                format!(
                    "{text:?} has a path ({:?}); write only the API's origin, {:?}: programs already send the full paths such as /api/v1/user/login",
                    uri.path(),
                    origin.to_string().trim_end_matches('/'),
                ),
            ));
        }
        Ok(BaseUrl {
            origin,
            path: String::new(),
        })
    }

    pub(super) fn websocket_url(&self, text: &str) -> Result<Uri, ConfigError> {
        let key = "upstream.websocket_url";
        let bad = || {
            self.err(
                key,
                format!("{text:?} is not a ws:// or wss:// URL such as \"wss://ws.ethgas.com\""),
            )
        };
        let uri: Uri = text.trim().parse().map_err(|_| bad())?;
        match uri.scheme_str() {
            Some("ws") | Some("wss") => {}
            _ => return Err(bad()),
        }
        if uri.authority().is_none_or(|a| a.host().is_empty()) {
            return Err(bad());
        }
        Ok(uri)
    }
}

pub(super) fn parse_net(s: &str) -> Option<IpNet> {
    let s = s.trim();
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
}

//! `ethgas-sidecar status`: asks a running sidecar's admin listener for
//! `/readyz` and shows it to a person (a summary, coloured on a terminal) or
//! to a script (`--json`, the body as received), with the exit status
//! 0 ready, 1 not ready, 2 no answer.
//!
//! An operator who runs it usually cannot read the password or key sources a
//! full `Config::load` opens, so only `admin.listen` is read from the config
//! file, with a light TOML parse; `--admin` overrides it. The request is a
//! single HTTP/1 GET over TCP or a unix socket, bounded by `TIMEOUT`.
//! `render` is a pure function of the JSON and a `now`, so every line it
//! prints is unit-tested.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use serde_json::Value;

/// Bound on connecting, asking and reading the answer.
const TIMEOUT: Duration = Duration::from_secs(5);

/// `admin.listen` when the config file does not say (the sidecar's default).
const DEFAULT_ADMIN: &str = "127.0.0.1:9090";

/// A `/readyz` answer is a few hundred bytes; anything this large is not one.
const MAX_BODY: usize = 1 << 20;

/// Where the admin listener is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// `IP:PORT` or `HOST:PORT`, resolved when asking.
    Tcp(String),
    Unix(PathBuf),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Tcp(a) => f.write_str(a),
            Target::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// Parses an address given on the command line or as `admin.listen`:
/// `IP:PORT`, `HOST:PORT` or `unix:/path` (an `http://` in front is ignored).
/// A wildcard listen address (`0.0.0.0`, `[::]`) is asked on loopback.
fn parse_target(text: &str) -> Result<Target, String> {
    let t = text.trim();
    if let Some(path) = t.strip_prefix("unix:") {
        if !path.starts_with('/') {
            return Err(format!(
                "{text:?}: a unix socket needs an absolute path, e.g. unix:/run/ethgas-sidecar/admin.sock"
            ));
        }
        return Ok(Target::Unix(PathBuf::from(path)));
    }
    let t = t.strip_prefix("http://").unwrap_or(t).trim_end_matches('/');
    if let Ok(addr) = t.parse::<SocketAddr>() {
        if addr.port() == 0 {
            return Err(format!(
                "{text:?} has port 0, so the sidecar picked a port at start; pass the one it logged (\"admin listening\") with --admin"
            ));
        }
        let ip = match addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        return Ok(Target::Tcp(SocketAddr::new(ip, addr.port()).to_string()));
    }
    match t.rsplit_once(':') {
        Some((host, port))
            if !host.is_empty() && !host.contains(['/', ' ']) && port.parse::<u16>().is_ok_and(|p| p > 0) =>
        {
            Ok(Target::Tcp(t.to_string()))
        }
        _ => Err(format!(
            "{text:?} is not an address; write IP:PORT (127.0.0.1:9090), HOST:PORT or unix:/path"
        )),
    }
}

/// `admin.listen` from the text of a config file, read without validating
/// anything else (the password and key sources in particular).
fn admin_listen_from_toml(text: &str) -> Result<Option<String>, String> {
    let doc: toml::Table = toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())?;
    match doc.get("admin").map(|a| a.get("listen")) {
        None | Some(None) => Ok(None),
        Some(Some(toml::Value::String(s))) => Ok(Some(s.clone())),
        Some(Some(_)) => Err("`admin.listen` must be a string such as \"127.0.0.1:9090\"".into()),
    }
}

/// Where to ask and why there: `--admin`, else `admin.listen` in the config
/// file, else the default (with a note on stderr when the file could not be
/// read, which is not fatal: the default may well be right).
fn resolve(config: &Path, admin: Option<&str>) -> Result<(Target, String), String> {
    if let Some(a) = admin {
        return Ok((parse_target(a)?, "--admin".into()));
    }
    // Bounded and regular files only, as every read of an operator's path.
    let text = match crate::config::read_config_text(config) {
        Ok(t) => t,
        Err(e) => {
            eprintln!(
                "note: cannot read {} ({e}); asking the default admin address {DEFAULT_ADMIN}",
                config.display()
            );
            return Ok((parse_target(DEFAULT_ADMIN)?, "the default admin.listen".into()));
        }
    };
    let listen =
        admin_listen_from_toml(&text).map_err(|e| format!("{}: {e}; or pass --admin ADDR", config.display()))?;
    let origin = match &listen {
        Some(_) => format!("admin.listen in {}", config.display()),
        None => format!("the default admin.listen; {} sets none", config.display()),
    };
    let listen = listen.unwrap_or_else(|| DEFAULT_ADMIN.into());
    let target = parse_target(&listen).map_err(|e| format!("{}: `admin.listen`: {e}", config.display()))?;
    Ok((target, origin))
}

/// Why there was no answer.
#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error("cannot resolve {0}: {1}")]
    Resolve(String, std::io::Error),
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    #[error("no answer within {} s", TIMEOUT.as_secs())]
    Timeout,
    #[error("the HTTP exchange failed: {0}")]
    Http(String),
}

/// The admin listener's answer to `GET /readyz`.
struct Answer {
    status: StatusCode,
    body: Bytes,
}

/// `GET /readyz` on `target`, all of it within [`TIMEOUT`].
async fn fetch(target: &Target) -> Result<Answer, FetchError> {
    match tokio::time::timeout(TIMEOUT, fetch_unbounded(target)).await {
        Ok(r) => r,
        Err(_) => Err(FetchError::Timeout),
    }
}

async fn fetch_unbounded(target: &Target) -> Result<Answer, FetchError> {
    match target {
        Target::Tcp(addr) => {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host(addr.as_str())
                .await
                .map_err(|e| FetchError::Resolve(addr.clone(), e))?
                .collect();
            let mut last = None;
            for a in addrs {
                match tokio::net::TcpStream::connect(a).await {
                    Ok(s) => return get_readyz(s).await,
                    Err(e) => last = Some(e),
                }
            }
            Err(FetchError::Connect(last.unwrap_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::NotFound, "the name has no address")
            })))
        }
        Target::Unix(path) => {
            let s = tokio::net::UnixStream::connect(path)
                .await
                .map_err(FetchError::Connect)?;
            get_readyz(s).await
        }
    }
}

async fn get_readyz<S>(stream: S) -> Result<Answer, FetchError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let http = |e: hyper::Error| FetchError::Http(e.to_string());
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(http)?;
    let conn = tokio::spawn(conn);
    let req = Request::get("/readyz")
        .header(header::HOST, "localhost")
        .header(header::ACCEPT, "application/json")
        .header(
            header::USER_AGENT,
            concat!("ethgas-sidecar-status/", env!("CARGO_PKG_VERSION")),
        )
        .body(Empty::<Bytes>::new())
        .map_err(|e| FetchError::Http(e.to_string()))?;
    let resp = send.send_request(req).await.map_err(http)?;
    let status = resp.status();
    let body = Limited::new(resp.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| FetchError::Http(format!("reading the answer: {e}")))?
        .to_bytes();
    conn.abort();
    Ok(Answer { status, body })
}

/// The readiness summary inside a `/readyz` body: the envelope's `data`, or
/// the body itself. `None` if it is not one (another server answered).
fn summary(body: &[u8]) -> Option<Value> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let is_summary = |v: &Value| v.get("state").is_some_and(Value::is_string);
    match v.get("data") {
        Some(d) if is_summary(d) => Some(d.clone()),
        _ if is_summary(&v) => Some(v),
        _ => None,
    }
}

/// Colour only on a terminal, and never when `NO_COLOR` is set (non-empty).
fn use_colour(stdout_is_terminal: bool, no_color: Option<&OsStr>) -> bool {
    stdout_is_terminal && no_color.is_none_or(OsStr::is_empty)
}

const RESET: &str = "\x1b[0m";
const BOLD_GREEN: &str = "\x1b[1;32m";
const BOLD_RED: &str = "\x1b[1;31m";
const RED: &str = "\x1b[31m";
const YELLOW: &str = "\x1b[33m";

struct Painter(bool);

impl Painter {
    fn paint(&self, colour: &str, text: &str) -> String {
        if self.0 {
            format!("{colour}{text}{RESET}")
        } else {
            text.to_string()
        }
    }
}

/// The human summary of a `/readyz` answer from `from` (an address), as of
/// `now` (for "3 min ago").
fn render(from: &str, ready: bool, summary: &Value, now: SystemTime, colour: bool) -> String {
    let p = Painter(colour);
    let text = |key: &str| {
        summary
            .get(key)
            .and_then(Value::as_str)
            .map(clean)
            .filter(|s| !s.is_empty())
    };
    let number = |key: &str| summary.get(key).and_then(Value::as_f64);
    let state = text("state").unwrap_or_else(|| "unknown".into());

    let mut out = String::new();
    let verdict = if ready {
        p.paint(BOLD_GREEN, "ready")
    } else {
        p.paint(BOLD_RED, "NOT READY")
    };
    let _ = writeln!(out, "ethgas-sidecar at {from}: {verdict}");
    let mut line = |label: &str, value: String| {
        let _ = writeln!(out, "  {label:<22}{value}");
    };

    let state_colour = match state.as_str() {
        "logged_in" if ready => BOLD_GREEN,
        "logging_in" => YELLOW,
        _ => RED,
    };
    line("state", p.paint(state_colour, &state));

    let account = match (text("username"), text("address")) {
        (Some(u), Some(a)) => format!("{u} ({a})"),
        (Some(x), None) | (None, Some(x)) => x,
        (None, None) => "unknown".into(),
    };
    line("account", account);

    line(
        "token expires in",
        match number("token_expires_in_seconds") {
            Some(s) => span(s),
            None => p.paint(RED, "no valid token"),
        },
    );
    let next = if number("token_expires_in_seconds").is_some() {
        "next refresh in"
    } else {
        "next login attempt in"
    };
    line(
        next,
        match number("next_refresh_in_seconds") {
            Some(s) => span(s),
            None => "not scheduled".into(),
        },
    );
    line("last login", when(text("last_login").as_deref(), now));
    line("last refresh", when(text("last_refresh").as_deref(), now));

    let error = match text("last_error") {
        Some(e) => {
            let at = text("last_error_at")
                .and_then(|t| humantime::parse_rfc3339_weak(&t).ok())
                .map(|t| format!(" ({})", ago(now, t)))
                .unwrap_or_default();
            format!("{}{at}", p.paint(RED, &e))
        }
        None => "none".into(),
    };
    line("last error", error);

    let failures = number("consecutive_failures").unwrap_or(0.0);
    let failures_text = format!("{failures:.0}");
    line(
        "consecutive failures",
        if failures > 0.0 {
            p.paint(if ready { YELLOW } else { RED }, &failures_text)
        } else {
            failures_text
        },
    );
    out
}

/// "44 min 52 s", "1 h 5 min", "2 d 3 h", "7 s": two units at most.
fn span(seconds: f64) -> String {
    let total = if seconds.is_finite() && seconds > 0.0 {
        seconds.round() as u64
    } else {
        0
    };
    let (d, h, m, s) = (total / 86_400, total / 3600 % 24, total / 60 % 60, total % 60);
    if d > 0 {
        format!("{d} d {h} h")
    } else if h > 0 {
        format!("{h} h {m} min")
    } else if m > 0 {
        format!("{m} min {s} s")
    } else {
        format!("{s} s")
    }
}

/// "3 min ago", "2 h 5 min ago", "just now" from `now`.
fn ago(now: SystemTime, then: SystemTime) -> String {
    let secs = match now.duration_since(then) {
        Ok(d) => d.as_secs(),
        // A timestamp ahead of this host's clock: the two clocks differ.
        Err(e) if e.duration() > Duration::from_secs(2) => {
            return format!("{} ahead of this host's clock", span(e.duration().as_secs_f64()));
        }
        Err(_) => 0,
    };
    match secs {
        0 => "just now".into(),
        1..60 => format!("{secs} s ago"),
        60..3600 => format!("{} min ago", secs / 60),
        3600..86_400 => format!("{} h {} min ago", secs / 3600, secs / 60 % 60),
        _ => format!("{} d {} h ago", secs / 86_400, secs / 3600 % 24),
    }
}

/// An RFC 3339 time from `/readyz` as "3 min ago (2025-01-01T10:00:00Z)".
fn when(rfc3339: Option<&str>, now: SystemTime) -> String {
    match rfc3339 {
        None => "never".into(),
        Some(t) => match humantime::parse_rfc3339_weak(t) {
            Ok(then) => format!("{} ({t})", ago(now, then)),
            Err(_) => t.to_string(),
        },
    }
}

/// Text from the server without control characters, so that an error
/// message quoting the API cannot move the cursor or recolour the terminal.
fn clean(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { '\u{fffd}' } else { c }).collect()
}

/// What to print when the admin listener could not be asked.
fn unreachable_help(target: &Target, origin: &str, error: &FetchError) -> String {
    let mut out = format!("ethgas-sidecar status: no answer from the admin listener at {target} ({origin}): {error}\n");
    let hint = match error {
        FetchError::Connect(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            "  The socket refuses this user: run as root, or as a member of the socket's group.\n"
        }
        FetchError::Timeout => {
            "  It accepted but did not answer: the process may be stuck (the watchdog restarts it).\n"
        }
        _ => "",
    };
    out.push_str(hint);
    out.push_str(
        "  Is the service running?   systemctl status ethgas-sidecar\n  \
         What did it log?          journalctl -u ethgas-sidecar -n 50\n  \
         Another address?          ethgas-sidecar status --admin ADDR  ([admin] listen in the config)\n",
    );
    out
}

/// The `status` command: exit 0 ready, 1 not ready, 2 no (usable) answer.
pub fn run(config: &Path, admin: Option<&str>, json: bool) -> ExitCode {
    use std::io::{IsTerminal, Write};
    const UNREACHABLE: u8 = 2;
    let (target, origin) = match resolve(config, admin) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("ethgas-sidecar status: {e}");
            return ExitCode::from(UNREACHABLE);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ethgas-sidecar status: cannot start the runtime: {e}");
            return ExitCode::from(UNREACHABLE);
        }
    };
    let answer = match rt.block_on(fetch(&target)) {
        Ok(a) => a,
        Err(e) => {
            eprint!("{}", unreachable_help(&target, &origin, &e));
            return ExitCode::from(UNREACHABLE);
        }
    };
    let ready = match answer.status {
        StatusCode::OK => true,
        StatusCode::SERVICE_UNAVAILABLE => false,
        other => {
            eprintln!(
                "ethgas-sidecar status: {target} ({origin}) answered /readyz with {other}, not 200 or 503: \
                 is it the sidecar's admin listener (not the proxy)?"
            );
            return ExitCode::from(UNREACHABLE);
        }
    };
    let Some(summary) = summary(&answer.body) else {
        eprintln!(
            "ethgas-sidecar status: {target} ({origin}) answered /readyz without a readiness summary: \
             is it the sidecar's admin listener (not the proxy)?"
        );
        return ExitCode::from(UNREACHABLE);
    };
    let mut stdout = std::io::stdout().lock();
    let printed = if json {
        stdout.write_all(&answer.body).and_then(|()| {
            if answer.body.ends_with(b"\n") {
                Ok(())
            } else {
                stdout.write_all(b"\n")
            }
        })
    } else {
        let colour = use_colour(stdout.is_terminal(), std::env::var_os("NO_COLOR").as_deref());
        stdout.write_all(render(&target.to_string(), ready, &summary, SystemTime::now(), colour).as_bytes())
    };
    // A closed pipe (`status | head -1`) is not worth a panic.
    let _ = printed.and_then(|()| stdout.flush());
    ExitCode::from(if ready { 0 } else { 1 })
}

#[cfg(test)]
mod tests;

//! `ethgas-sidecar status`: asks a running sidecar's admin listener for
//! `/readyz` and shows it to a person (a summary, coloured on a terminal) or
//! to a script (`--json`, the body as received), with the exit status
//! 0 ready, 1 not ready, 2 no answer.
//!
//! An operator who runs it usually cannot read the password or key sources a
//! full `Config::load` opens, so only `[admin]` is read from the config
//! file ([`admin_listen`]); `--admin` overrides it. `--instance NAME`
//! names an instance of the template unit `ethgas-sidecar@.service`: its
//! config is /etc/ethgas-sidecar/NAME.toml, and the output and the hints name
//! `ethgas-sidecar@NAME`. The request is a single HTTP/1 GET over TCP or a
//! unix socket, bounded by `TIMEOUT`. `render` is a pure function of the JSON
//! and a `now`, so every line it prints is unit-tested.

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

use crate::config::{Listen, admin_listen};

/// Bound on connecting, asking and reading the answer.
const TIMEOUT: Duration = Duration::from_secs(5);

/// `admin.listen` when the config file does not say (the sidecar's default).
const DEFAULT_ADMIN: &str = "127.0.0.1:9090";

/// A `/readyz` answer is a few hundred bytes; anything this large is not one.
const MAX_BODY: usize = 1 << 20;

/// The unit (and program) name; an instance is `ethgas-sidecar@NAME`.
const UNIT: &str = "ethgas-sidecar";

/// Which sidecar to ask: the config file to read `admin.listen` from, and the
/// systemd unit that runs it (for the output and the hints).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Which {
    config: PathBuf,
    unit: String,
    /// An instance's config must exist: falling back to the default address
    /// would ask another sidecar (the main one) and show its session.
    instance: bool,
}

/// `--config PATH` (the main unit), or `--instance NAME`: the instance of
/// ethgas-sidecar@.service whose config is NAME.toml next to the default
/// config file, as the template's `ExecStart=` reads it. The unit's full name
/// (`ethgas-sidecar@hoodi`, `ethgas-sidecar@hoodi.service`) is accepted too.
fn which(config: &Path, instance: Option<&str>) -> Result<Which, String> {
    let Some(given) = instance else {
        return Ok(Which {
            config: config.to_path_buf(),
            unit: UNIT.into(),
            instance: false,
        });
    };
    let name = given.trim();
    let name = name
        .strip_prefix(UNIT)
        .and_then(|n| n.strip_prefix('@'))
        .unwrap_or(name);
    let name = name.strip_suffix(".service").unwrap_or(name);
    // What systemd allows in an instance name (`%i`, escaped), and never a
    // path: no "/", no leading "." (so no "..").
    let valid = |c: char| c.is_ascii_alphanumeric() || ":-_.\\@".contains(c);
    if name.is_empty() || name.starts_with('.') || !name.chars().all(valid) {
        return Err(format!(
            "--instance {given:?} is not an instance name: NAME as in {UNIT}@NAME.service \
             (letters, digits and : - _ . \\ @)"
        ));
    }
    Ok(Which {
        config: Path::new(crate::config::DEFAULT_CONFIG_PATH).with_file_name(format!("{name}.toml")),
        unit: format!("{UNIT}@{name}"),
        instance: true,
    })
}

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

/// Parses an address given on the command line: `admin.listen`'s forms
/// ([`Listen`]: `IP:PORT`, `unix:/path`), or `HOST:PORT` (an `http://` in
/// front is ignored).
fn parse_target(text: &str) -> Result<Target, String> {
    let t = text.trim();
    let t = match t.strip_prefix("http://") {
        Some(rest) => rest.trim_end_matches('/'),
        None if t.starts_with("unix:") => t,
        None => t.trim_end_matches('/'),
    };
    match t.parse::<Listen>() {
        Ok(listen) => target(listen, text),
        Err(e) if t.starts_with("unix:") => Err(e),
        Err(_) => match t.rsplit_once(':') {
            Some((host, port))
                if !host.is_empty() && !host.contains(['/', ' ']) && port.parse::<u16>().is_ok_and(|p| p > 0) =>
            {
                Ok(Target::Tcp(t.to_string()))
            }
            _ => Err(format!(
                "{text:?} is not an address; write IP:PORT (127.0.0.1:9090), HOST:PORT or unix:/path"
            )),
        },
    }
}

/// Where to ask a sidecar that listens on `listen` (written `text`): a
/// wildcard address (`0.0.0.0`, `[::]`) is asked on loopback.
fn target(listen: Listen, text: &str) -> Result<Target, String> {
    let addr = match listen {
        Listen::Unix(path) => return Ok(Target::Unix(path)),
        Listen::Tcp(addr) => addr,
    };
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
    Ok(Target::Tcp(SocketAddr::new(ip, addr.port()).to_string()))
}

/// Where to ask and why there: `--admin`, else `admin.listen` in the config
/// file, else the default (with a note on stderr when the file could not be
/// read, which is not fatal: the default may well be right — except for an
/// instance, whose own config says where it listens).
fn resolve(which: &Which, admin: Option<&str>) -> Result<(Target, String), String> {
    if let Some(a) = admin {
        return Ok((parse_target(a)?, "--admin".into()));
    }
    let config = which.config.as_path();
    // Bounded and regular files only, as every read of an operator's path.
    let text = match crate::config::read_config_text(config) {
        Ok(t) => t,
        Err(e) if which.instance => {
            return Err(format!(
                "cannot read {} ({e}), the config of {}.service; is the instance's name right \
                 (ls /etc/ethgas-sidecar/*.toml)? Or pass --admin ADDR",
                config.display(),
                which.unit
            ));
        }
        Err(e) => {
            eprintln!(
                "note: cannot read {} ({e}); asking the default admin address {DEFAULT_ADMIN}",
                config.display()
            );
            return Ok((parse_target(DEFAULT_ADMIN)?, "the default admin.listen".into()));
        }
    };
    let listen = admin_listen(&text).map_err(|e| format!("{}: {e}; or pass --admin ADDR", config.display()))?;
    let Some(listen) = listen else {
        let origin = format!("the default admin.listen; {} sets none", config.display());
        return Ok((parse_target(DEFAULT_ADMIN)?, origin));
    };
    let target = target(listen.clone(), &listen.to_string())
        .map_err(|e| format!("{}: `admin.listen`: {e}", config.display()))?;
    Ok((target, format!("admin.listen in {}", config.display())))
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

/// What to print when the admin listener of `unit` could not be asked.
fn unreachable_help(unit: &str, target: &Target, origin: &str, error: &FetchError) -> String {
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
    let _ = write!(
        out,
        "  Is the service running?   systemctl status {unit}\n  \
         What did it log?          journalctl -u {unit} -n 50\n  \
         Another address?          ethgas-sidecar status --admin ADDR  ([admin] listen in the config)\n"
    );
    if unit == UNIT {
        out.push_str("  Another instance?         ethgas-sidecar status --instance NAME  (ethgas-sidecar@NAME)\n");
    }
    out
}

/// The `status` command: exit 0 ready, 1 not ready, 2 no (usable) answer.
/// `instance` (`--instance NAME`) replaces `config` with the instance's own.
pub fn run(config: &Path, instance: Option<&str>, admin: Option<&str>, json: bool) -> ExitCode {
    use std::io::{IsTerminal, Write};
    const UNREACHABLE: u8 = 2;
    let which = match which(config, instance) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("ethgas-sidecar status: {e}");
            return ExitCode::from(UNREACHABLE);
        }
    };
    let (target, origin) = match resolve(&which, admin) {
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
            eprint!("{}", unreachable_help(&which.unit, &target, &origin, &e));
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
        let text = render(
            &which.unit,
            &target.to_string(),
            ready,
            &summary,
            SystemTime::now(),
            colour,
        );
        stdout.write_all(text.as_bytes())
    };
    // A closed pipe (`status | head -1`) is not worth a panic.
    let _ = printed.and_then(|()| stdout.flush());
    ExitCode::from(if ready { 0 } else { 1 })
}

mod render;
use render::{render, use_colour};

#[cfg(test)]
mod tests;

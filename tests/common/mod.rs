//! Shared helpers for the integration tests: the in-process mock API, a
//! sidecar started with `app::run` on `127.0.0.1:0`, a small HTTP client, and
//! the binary for process-level tests (signals, systemd, logs).

#![allow(dead_code)]

pub mod relay;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use ethgas_mock::{self as mock, Mock, MockConfig};
use ethgas_sidecar::app::{self, Control, Listeners};
use ethgas_sidecar::config::Config;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub mod keystores;
mod traffic;
#[allow(unused_imports)]
pub use traffic::{Load, Traffic};

pub const USER: &str = "alice";
pub const PASSWORD: &str = "correct horse battery staple";

/// The mock ETHGas API, running in this process.
pub struct Api {
    pub mock: Mock,
    pub addr: SocketAddr,
    stop: CancellationToken,
}

impl Api {
    /// Stops the API: the port refuses connections from now on.
    pub fn stop(&self) {
        self.stop.cancel();
    }
}

impl Drop for Api {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub async fn start_api(token_lifetime: Duration) -> Api {
    start_api_with(MockConfig {
        username: USER.into(),
        password: PASSWORD.into(),
        token_lifetime,
        ..MockConfig::default()
    })
    .await
}

pub async fn start_api_with(config: MockConfig) -> Api {
    let mock = Mock::new(config);
    let stop = CancellationToken::new();
    let addr = mock::spawn("127.0.0.1:0".parse().unwrap(), mock.clone(), stop.clone())
        .await
        .expect("mock binds");
    Api { mock, addr, stop }
}

/// Lines added under each section of the generated config.
#[derive(Default, Clone)]
pub struct Extra {
    pub proxy: String,
    pub upstream: String,
    pub auth: String,
    /// Whole sections after the others (`[[listeners]]`, `[policy]`, `[audit]`).
    pub tail: String,
}

impl Extra {
    pub fn proxy(lines: &str) -> Extra {
        Extra {
            proxy: lines.into(),
            ..Extra::default()
        }
    }

    pub fn upstream(lines: &str) -> Extra {
        Extra {
            upstream: lines.into(),
            ..Extra::default()
        }
    }

    pub fn auth(lines: &str) -> Extra {
        Extra {
            auth: lines.into(),
            ..Extra::default()
        }
    }
}

/// A config file (and password file) in a temp dir for a sidecar in front of
/// `api_addr`, listening on port 0.
pub struct Files {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub password: PathBuf,
}

pub fn write_config(api_addr: SocketAddr, password: &str, extra: &Extra) -> Files {
    let dir = tempfile::tempdir().unwrap();
    let password_path = dir.path().join("password");
    write_private(&password_path, &format!("{password}\n"));
    let config = dir.path().join("config.toml");
    std::fs::write(&config, config_text(api_addr, &password_path, extra)).unwrap();
    Files {
        dir,
        config,
        password: password_path,
    }
}

pub fn write_private(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

pub fn config_text(api_addr: SocketAddr, password_file: &Path, extra: &Extra) -> String {
    format!(
        "[proxy]\nlisten = \"127.0.0.1:0\"\n{}\n\
         [upstream]\nbase_url = \"http://{api_addr}\"\nrequest_timeout = \"10s\"\n{}\n\
         [auth]\nusername = \"{USER}\"\npassword_file = {:?}\n{}\n\
         [admin]\nlisten = \"127.0.0.1:0\"\n\n[log]\nlevel = \"debug\"\n{}\n",
        extra.proxy,
        extra.upstream,
        password_file.display().to_string(),
        extra.auth,
        extra.tail
    )
}

/// A sidecar running in this process.
pub struct Sidecar {
    pub proxy: SocketAddr,
    pub admin: SocketAddr,
    /// The TCP addresses of `[[listeners]]`, in order (`None`: a unix socket).
    pub more: Vec<Option<SocketAddr>>,
    pub stop: CancellationToken,
    pub done: tokio::task::JoinHandle<anyhow::Result<()>>,
    pub files: Files,
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Sidecar {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.proxy)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }
}

/// A sidecar in front of `api` that holds a token, and a client for it.
pub async fn ready_sidecar(api: &Api, extra: Extra) -> (Sidecar, TestClient) {
    let sidecar = start_sidecar(api, extra).await;
    let c = client();
    wait_ready(&c, sidecar.admin).await;
    (sidecar, c)
}

pub async fn start_sidecar(api: &Api, extra: Extra) -> Sidecar {
    start_sidecar_with_password(api.addr, PASSWORD, extra).await
}

pub async fn start_sidecar_with_password(api_addr: SocketAddr, password: &str, extra: Extra) -> Sidecar {
    start_from_files(write_config(api_addr, password, &extra)).await
}

/// Starts a sidecar on a config written by `write_config` (and perhaps edited).
pub async fn start_from_files(files: Files) -> Sidecar {
    let config = Config::load(&files.config).expect("valid config");
    let listeners = Listeners::bind(&config).await.unwrap();
    let proxy = listeners.proxy.tcp_addr().unwrap();
    let admin = listeners.admin.as_ref().and_then(|a| a.tcp_addr()).unwrap();
    let more = listeners.more.iter().map(|l| l.tcp_addr()).collect();
    let stop = CancellationToken::new();
    let done = tokio::spawn(app::run(config, listeners, Control::new(stop.clone())));
    Sidecar {
        proxy,
        admin,
        more,
        stop,
        done,
        files,
    }
}

/// A response read whole.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

pub type TestClient = Client<HttpConnector, Full<Bytes>>;

/// A keep-alive client whose idle connections expire before the sidecar's
/// (5 s on the admin listener, `proxy.header_read_timeout` on the proxy):
/// reusing one the sidecar is closing at that moment fails with
/// `IncompleteMessage` — a race every client with a longer pool timeout has.
pub fn client() -> TestClient {
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(2))
        .build_http()
}

pub async fn send(client: &TestClient, req: Request<Full<Bytes>>) -> Reply {
    let resp = tokio::time::timeout(Duration::from_secs(30), client.request(req))
        .await
        .expect("answer within 30 s")
        .expect("request succeeds at the HTTP level");
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

pub async fn get(client: &TestClient, url: &str) -> Reply {
    send(client, Request::get(url).body(Full::default()).unwrap()).await
}

pub async fn post_json(client: &TestClient, url: &str, body: &str) -> Reply {
    let req = Request::builder()
        .method(Method::POST)
        .uri(url)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    send(client, req).await
}

/// Polls until `cond` holds, failing after `limit`. For waiting on state the
/// test cannot be told about (another process, a counter).
pub async fn eventually<F: FnMut() -> bool>(limit: Duration, what: &str, mut cond: F) {
    let deadline = tokio::time::Instant::now() + limit;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `/readyz` answers 200.
pub async fn wait_ready(client: &TestClient, admin: SocketAddr) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(Ok(resp)) = tokio::time::timeout(
            Duration::from_secs(2),
            client.request(
                Request::get(format!("http://{admin}/readyz"))
                    .body(Full::default())
                    .unwrap(),
            ),
        )
        .await
        {
            if resp.status() == StatusCode::OK {
                return;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "sidecar not ready within 15 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The sidecar binary built for these tests.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_ethgas-sidecar")
}

/// The sidecar binary running as a child process, its stderr collected.
pub struct Proc {
    pub child: std::process::Child,
    pub proxy: SocketAddr,
    pub admin: SocketAddr,
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Proc {
    /// Starts `ethgas-sidecar run --config <config>` with extra environment,
    /// and waits for both listeners (their port-0 addresses are read from
    /// the log).
    pub async fn spawn(config: &Path, envs: &[(&str, &str)]) -> Proc {
        Proc::spawn_command(
            std::process::Command::new(binary())
                .arg("run")
                .arg("--config")
                .arg(config),
            envs,
        )
        .await
    }

    /// Starts `cmd`; waits (without blocking the runtime, where the mock API
    /// may be serving) until it has reported both listeners.
    pub async fn spawn_command(cmd: &mut std::process::Command, envs: &[(&str, &str)]) -> Proc {
        use std::io::BufRead;
        cmd.env_remove("RUST_LOG")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .env_remove("ETHGAS_SIDECAR_TEST_FAULT")
            .env_remove("LISTEN_FDS");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("binary starts");
        let stderr = child.stderr.take().unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push_str(&line);
                sink.lock().unwrap().push('\n');
                let _ = tx.send(line);
            }
        });
        let (mut proxy, mut admin) = (None, None);
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while proxy.is_none() || admin.is_none() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = match tokio::time::timeout(left, rx.recv()).await {
                Ok(Some(l)) => l,
                _ => {
                    let _ = child.kill();
                    panic!("sidecar did not report its listeners; log:\n{}", log.lock().unwrap());
                }
            };
            // Text (`listen=ADDR`) or JSON (`"listen":"ADDR"`) log lines.
            let addr = line
                .split("listen=")
                .nth(1)
                .or_else(|| line.split("\"listen\":").nth(1))
                .and_then(|rest| rest.trim_start_matches('"').split(['"', ' ', ',', '}']).next())
                .and_then(|a| a.parse::<SocketAddr>().ok());
            if line.contains("proxy listening") || line.contains("proxy (socket-activated)") {
                proxy = addr.or(proxy);
            } else if line.contains("admin listening") {
                admin = addr;
            }
        }
        Proc {
            child,
            proxy: proxy.unwrap(),
            admin: admin.unwrap(),
            log,
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn signal(&self, sig: &str) {
        let ok = std::process::Command::new("kill")
            .arg("-s")
            .arg(sig)
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs")
            .success();
        assert!(ok, "kill -s {sig} failed");
    }

    /// Waits for the process to exit (polling; it is a child process).
    pub async fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "process did not exit within {limit:?}; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------
// Raw HTTP/1 on a socket, for the attack tests.

/// A response read byte-wise off a raw connection.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    /// Names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

/// Reads one response from `s`, byte by byte up to the body (so nothing of
/// a following response is consumed), then its body by `Content-Length`,
/// chunked coding, or to the end of the connection. Fails after 15 s.
pub async fn read_raw_response<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> RawResponse {
    tokio::time::timeout(Duration::from_secs(15), read_raw_response_unbounded(s))
        .await
        .expect("a response within 15 s")
}

async fn read_raw_response_unbounded<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> RawResponse {
    use tokio::io::AsyncReadExt;
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        assert!(head.len() < 64 * 1024, "response head over 64 KiB");
        let b = s.read_u8().await.unwrap_or_else(|e| {
            panic!(
                "connection ended inside a response head ({e}): {:?}",
                String::from_utf8_lossy(&head)
            )
        });
        head.push(b);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let get = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    let mut body = Vec::new();
    if status == 101 || status == 204 || status == 304 {
    } else if let Some(len) = get("content-length") {
        body.resize(len.parse::<usize>().expect("numeric Content-Length"), 0);
        s.read_exact(&mut body).await.expect("the whole body");
    } else if get("transfer-encoding").is_some_and(|te| te.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut line = Vec::new();
            while !line.ends_with(b"\r\n") {
                assert!(line.len() < 1024, "chunk-size line over 1 KiB");
                line.push(s.read_u8().await.expect("a chunk-size line"));
            }
            let size = String::from_utf8_lossy(&line[..line.len() - 2]);
            let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16).expect("hex chunk size");
            let mut chunk = vec![0; size + 2];
            s.read_exact(&mut chunk).await.expect("a whole chunk");
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else {
        s.read_to_end(&mut body).await.expect("a body to the end");
    }
    RawResponse { status, headers, body }
}

// ---------------------------------------------------------------------------
// The wallet login (method "wallet") against the mock's live flavour.

/// A mock API of the live flavour that lets only `address` log in.
pub async fn start_live_api(
    address: ethgas_sidecar::eth::Address,
    token_lifetime: Duration,
    session_lifetime: Duration,
) -> Api {
    start_api_with(MockConfig {
        flavour: mock::Flavour::Live,
        address: Some(address),
        token_lifetime,
        session_lifetime,
        ..MockConfig::default()
    })
    .await
}

/// A fresh secp256k1 key as 64 lower-case hex digits (no `0x`), and the
/// key built from that text, whose address the tests compare with.
pub fn random_key_hex() -> (String, ethgas_sidecar::eth::WalletKey) {
    loop {
        let mut bytes = [0u8; 32];
        rand::fill(&mut bytes);
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        // Zero or past the curve order (odds about 2^-128): draw again.
        if let Ok(key) = ethgas_sidecar::eth::WalletKey::from_hex(&hex) {
            return (hex, key);
        }
    }
}

/// A config for a sidecar with `method = "wallet"` in front of `api_addr`,
/// the key given by `key_lines` (e.g. `private_key_file = "…"`), listening
/// on port 0.
pub fn wallet_config_text(api_addr: SocketAddr, key_lines: &str, extra: &Extra) -> String {
    format!(
        "[proxy]\nlisten = \"127.0.0.1:0\"\n{}\n\
         [upstream]\nbase_url = \"http://{api_addr}\"\nrequest_timeout = \"10s\"\n{}\n\
         [auth]\nmethod = \"wallet\"\n{key_lines}\n{}\n\
         [admin]\nlisten = \"127.0.0.1:0\"\n\n[log]\nlevel = \"debug\"\n{}\n",
        extra.proxy, extra.upstream, extra.auth, extra.tail
    )
}

/// A wallet config with the key in a file of mode 0600 (written as
/// `0x<key_hex>` and a newline, as `cast wallet new` users save it).
/// `Files::password` is the key file.
pub fn write_wallet_config(api_addr: SocketAddr, key_hex: &str, extra: &Extra) -> Files {
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("wallet.key");
    write_private(&key_path, &format!("0x{key_hex}\n"));
    let config = dir.path().join("config.toml");
    let key_lines = format!("private_key_file = {:?}", key_path.display().to_string());
    std::fs::write(&config, wallet_config_text(api_addr, &key_lines, extra)).unwrap();
    Files {
        dir,
        config,
        password: key_path,
    }
}

/// `ethgas-sidecar check-config --config <path>` with extra environment:
/// exit code, stdout, stderr.
pub fn check_config(config: &Path, envs: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let mut cmd = std::process::Command::new(binary());
    cmd.arg("check-config")
        .arg("--config")
        .arg(config)
        .env_remove("RUST_LOG")
        .env_remove("CREDENTIALS_DIRECTORY");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("binary runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The next data or close message of a WebSocket (pings and pongs
/// skipped); fails after 10 s without one.
pub async fn next_ws_message<S>(
    ws: &mut tokio_tungstenite::WebSocketStream<S>,
) -> tokio_tungstenite::tungstenite::Message
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a message within 10 s")
            .expect("socket open")
            .expect("no socket error");
        if !matches!(msg, Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) {
            return msg;
        }
    }
}

/// The next text message of a WebSocket, as JSON (other frames skipped);
/// fails after 10 s without one.
pub async fn next_ws_json<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> Value
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        if let tokio_tungstenite::tungstenite::Message::Text(t) = next_ws_message(ws).await {
            return serde_json::from_str(t.as_str()).unwrap();
        }
    }
}

/// A TLS acceptor with a fresh self-signed certificate for 127.0.0.1 and
/// localhost, offering the given ALPN protocols, and that certificate in
/// PEM (the API's "CA", for `upstream.ca_file`).
pub fn tls_acceptor(alpn: &[&[u8]]) -> (tokio_rustls::TlsAcceptor, String) {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    let ca_pem = cert.cert.pem();
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    (tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config)), ca_pem)
}

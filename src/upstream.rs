//! The way to the API: TLS settings and the connector that the connection
//! pools ([`crate::pool`]) of the proxy workers and of the auth task dial with.
//!
//! HTTPS goes through rustls (the system's roots, or the bundled Mozilla roots
//! when the system has none, plus `upstream.ca_file`), and HTTP/1.1 or HTTP/2
//! is chosen by ALPN. [`Target`] holds the upstream origin in pre-parsed form,
//! so that building each forwarded request's URI costs no parsing.

use std::future::Future as _;
use std::sync::Arc;

use bytes::Bytes;
use http::Uri;
use http::uri::{Authority, PathAndQuery, Scheme};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Either, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::config::UpstreamSettings;

/// A request body on its way upstream: kept whole (small, replayable, or
/// made by the sidecar) or streamed from the client.
pub type Body = Either<Full<Bytes>, Idle>;

/// What a body's error becomes on its way upstream.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request body the proxy can take from a client: hyper's `Incoming` from
/// a connection, or any body built in memory (the unit tests').
pub trait ClientBody: hyper::body::Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static {}

impl<B> ClientBody for B where B: hyper::body::Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static {}

/// Why a client's streamed body ended early: the client, not the API, is
/// the cause, and the answer must say so (408, 400) instead of blaming the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientFault {
    /// Nothing came for the idle limit.
    Idle,
    /// The body could not be read (a malformed chunk, a short body): hyper's
    /// words for it.
    Broken(String),
}

/// Where an [`Idle`] body records its [`ClientFault`], for the proxy to read
/// after the upstream call failed.
pub type Fault = Arc<std::sync::OnceLock<ClientFault>>;

/// A client's body streamed upstream, ended with an error when the client
/// sends nothing for `limit` (a slow-body attack would otherwise hold the
/// connection and an upstream request open forever). The returned [`Fault`]
/// tells the proxy that this, or a body the client broke, not the API, ended
/// the request.
pub struct Idle {
    /// Boxed: only streamed bodies (large or of unknown length) pay for it.
    inner: UnsyncBoxBody<Bytes, BoxError>,
    limit: std::time::Duration,
    timer: std::pin::Pin<Box<tokio::time::Sleep>>,
    fault: Fault,
}

impl Idle {
    pub fn new(inner: impl ClientBody, limit: std::time::Duration) -> (Idle, Fault) {
        let fault = Fault::default();
        let idle = Idle {
            inner: inner.map_err(Into::into).boxed_unsync(),
            limit,
            timer: Box::pin(tokio::time::sleep(limit)),
            fault: fault.clone(),
        };
        (idle, fault)
    }
}

impl hyper::body::Body for Idle {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        use std::task::Poll;
        match std::pin::Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Err(e))) => {
                let _ = self.fault.set(ClientFault::Broken(crate::auth::error_chain(&*e)));
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(frame) => {
                let deadline = tokio::time::Instant::now() + self.limit;
                self.timer.as_mut().reset(deadline);
                Poll::Ready(frame)
            }
            Poll::Pending => {
                if self.timer.as_mut().poll(cx).is_ready() {
                    let _ = self.fault.set(ClientFault::Idle);
                    return Poll::Ready(Some(Err("the client stopped sending its request body".into())));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// A body the sidecar made itself.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Either::Left(Full::new(bytes.into()))
}

/// Why the HTTP client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("upstream.ca_file {path}: {message}")]
    CaFile { path: String, message: String },
    #[error("no trusted root certificates: the system store is empty and upstream.ca_file is not set")]
    NoRoots,
    #[error("TLS setup failed: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The root store: the system's certificates (or the bundled Mozilla set when
/// the system has none, e.g. in a minimal container), plus `ca_file`.
pub fn root_store(settings: &UpstreamSettings) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    let (added, _ignored) = roots.add_parsable_certificates(native.certs);
    if added == 0 {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    if let Some(path) = &settings.ca_file {
        let shown = path.display().to_string();
        // A regular file within its size limit (never a FIFO or /dev/zero).
        let pem = crate::config::read_bytes(path, crate::config::MAX_CA_FILE_BYTES).map_err(|e| TlsError::CaFile {
            path: shown.clone(),
            message: e.to_string(),
        })?;
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<_, _>>()
            .map_err(|e| TlsError::CaFile {
                path: shown.clone(),
                message: e.to_string(),
            })?;
        if certs.is_empty() {
            return Err(TlsError::CaFile {
                path: shown,
                message: "no PEM certificate found".into(),
            });
        }
        for cert in certs {
            roots.add(cert).map_err(|e| TlsError::CaFile {
                path: shown.clone(),
                message: e.to_string(),
            })?;
        }
    }
    if roots.is_empty() {
        return Err(TlsError::NoRoots);
    }
    Ok(roots)
}

/// A rustls client configuration over `roots`; the connector builder sets
/// ALPN from the HTTP versions it enables.
fn tls_config(roots: Arc<RootCertStore>) -> Result<rustls::ClientConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Connects to the upstream: TCP (no Nagle, connect timeout, keepalive),
/// then TLS for https:// with ALPN offering h2 and http/1.1 (only http/1.1
/// with `upstream.http2 = false`). Cheap to clone: the TLS configuration
/// (and its root store) is shared.
pub type Connector = HttpsConnector<HttpConnector>;

pub fn connector(settings: &UpstreamSettings, roots: Arc<RootCertStore>) -> Result<Connector, TlsError> {
    build(settings, roots, settings.http2)
}

/// The same connector for the WebSocket relay: the same TCP settings and
/// roots, with ALPN offering only http/1.1, the one version the upgrade
/// speaks. Give it `https://` (for `wss://`) or `http://` (for `ws://`).
pub fn ws_connector(settings: &UpstreamSettings, roots: Arc<RootCertStore>) -> Result<Connector, TlsError> {
    build(settings, roots, false)
}

fn build(settings: &UpstreamSettings, roots: Arc<RootCertStore>, http2: bool) -> Result<Connector, TlsError> {
    let http1 = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls_config(roots)?)
        .https_or_http()
        .enable_http1();
    Ok(if http2 {
        http1.enable_http2().wrap_connector(tcp(settings))
    } else {
        http1.wrap_connector(tcp(settings))
    })
}

fn tcp(settings: &UpstreamSettings) -> HttpConnector {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    // Requests are small and latency-bound: never wait for Nagle.
    http.set_nodelay(true);
    http.set_connect_timeout(Some(settings.connect_timeout));
    http.set_keepalive(Some(std::time::Duration::from_secs(60)));
    http
}

/// The upstream origin, pre-parsed for the request path.
#[derive(Debug, Clone)]
pub struct Target {
    pub scheme: Scheme,
    pub authority: Authority,
    /// Path prefix of `base_url`, without a trailing slash.
    pub base_path: String,
    /// Host name (lower case, no brackets) and effective port, for matching
    /// absolute-form requests.
    pub host: String,
    pub port: u16,
}

impl Target {
    pub fn new(settings: &UpstreamSettings) -> Target {
        let scheme = if settings.is_https() {
            Scheme::HTTPS
        } else {
            Scheme::HTTP
        };
        let authority = settings
            .base_url
            .origin
            .authority()
            .cloned()
            .unwrap_or_else(|| Authority::from_static("localhost"));
        Target {
            scheme,
            authority,
            base_path: settings.base_url.path.clone(),
            host: settings.host(),
            port: settings.port(),
        }
    }

    /// The upstream URI for a request's path and query.
    pub fn uri(&self, path_and_query: Option<PathAndQuery>) -> Uri {
        let pq = path_and_query.unwrap_or_else(|| PathAndQuery::from_static("/"));
        let pq = if self.base_path.is_empty() {
            pq
        } else {
            // `path()` is "/" for the empty path of `http://host?query`.
            let joined = match pq.query() {
                Some(query) => format!("{}{}?{query}", self.base_path, pq.path()),
                None => format!("{}{}", self.base_path, pq.path()),
            };
            PathAndQuery::try_from(joined).unwrap_or(pq)
        };
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(self.scheme.clone());
        parts.authority = Some(self.authority.clone());
        parts.path_and_query = Some(pq);
        // Scheme, authority and path are all present and individually valid,
        // so this cannot fail; fall back to the origin root regardless.
        Uri::from_parts(parts).unwrap_or_else(|_| Uri::from_static("/"))
    }

    /// The upstream URI of an API path given in the configuration.
    pub fn api_uri(&self, path: &str) -> Uri {
        self.uri(PathAndQuery::try_from(path).ok())
    }

    /// `scheme://authority`, for messages.
    pub fn origin(&self) -> String {
        format!("{}://{}", self.scheme, self.authority)
    }
}

#[cfg(test)]
mod tests;

//! Metrics: what an operator alerts on, in Prometheus text format.
//!
//! Every labelled series is created once at start-up and kept as a plain
//! counter handle, so the request path only does atomic increments — no label
//! lookups, no locks, no allocation. The admin endpoint renders the registry
//! (plus the process collector: RSS, CPU, open fds) at scrape time.

use std::time::Duration;

use http::Method;
use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

const PREFIX: &str = "ethgas_sidecar";

/// Methods that get their own label value; anything else is "other", so a
/// client cannot grow the label set.
const METHODS: [Method; 7] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::PATCH,
    Method::HEAD,
    Method::OPTIONS,
];
const METHOD_LABELS: [&str; 8] = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "other"];
const CODE_LABELS: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthKind {
    Login,
    Refresh,
    Logout,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthResult {
    Success,
    /// The API refused the credentials or the refresh token.
    Rejected,
    /// No usable answer: connect error, timeout, 5xx, garbage.
    Error,
}

/// Why the sidecar answered a request itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalReason {
    NoToken,
    Unreachable,
    Timeout,
    BadGateway,
    RefusedHost,
    RefusedClient,
    Connect,
    BadRequest,
    TooLarge,
    /// The connection cap was reached, or the process ran out of descriptors.
    Overloaded,
    /// A client that stopped sending its request.
    SlowClient,
    /// A call of a class the listener's policy leaves out.
    NotAllowed,
}

const LOCAL_LABELS: [&str; 12] = [
    "no_token",
    "unreachable",
    "timeout",
    "bad_gateway",
    "refused_host",
    "refused_client",
    "connect",
    "bad_request",
    "too_large",
    "overloaded",
    "slow_client",
    "not_allowed",
];

pub struct Metrics {
    registry: Registry,
    requests: Vec<IntCounter>,
    pub in_flight: IntGauge,
    pub upstream_latency: Histogram,
    auth_ops: Vec<IntCounter>,
    pub auth_consecutive_failures: IntGauge,
    pub token_expires_in: Gauge,
    pub ready: IntGauge,
    pub tokens_injected: IntCounter,
    pub public_without_token: IntCounter,
    pub client_authorization_overwritten: IntCounter,
    pub upstream_unauthorized: IntCounter,
    pub reauthentications: IntCounter,
    pub replays: IntCounter,
    pub resent: IntCounter,
    pub response_headers_redacted: IntCounter,
    local: Vec<IntCounter>,
    intercepted: Vec<IntCounter>,
    pub websocket_open: IntGauge,
    pub websocket_logins: IntCounter,
    pub reloads: IntCounterVec,
    /// Calls the policy decided on that the audit trail records (every
    /// class but public and read) and every refusal, by listener, class
    /// and decision.
    pub policy_decisions: IntCounterVec,
}

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help).namespace(PREFIX)
}

impl Metrics {
    pub fn new() -> Metrics {
        // Every name and label set below is a literal, so registration cannot
        // fail except through a programming error, which the unit test catches.
        Metrics::try_new().unwrap_or_else(|e| panic!("metric registration: {e}"))
    }

    fn try_new() -> prometheus::Result<Metrics> {
        let registry = Registry::new();
        let reg = |c: Box<dyn prometheus::core::Collector>| registry.register(c);

        let requests_vec = IntCounterVec::new(
            opts(
                "requests_total",
                "Requests answered, by method and status class (sidecar-made answers included).",
            ),
            &["method", "code"],
        )?;
        reg(Box::new(requests_vec.clone()))?;
        let mut requests = Vec::new();
        for m in METHOD_LABELS {
            for c in CODE_LABELS {
                requests.push(requests_vec.with_label_values(&[m, c]));
            }
        }

        let in_flight = IntGauge::with_opts(opts("requests_in_flight", "Requests being handled now."))?;
        reg(Box::new(in_flight.clone()))?;
        let upstream_latency = Histogram::with_opts(
            HistogramOpts::new(
                "upstream_request_duration_seconds",
                "Time from sending a request upstream to its response headers.",
            )
            .namespace(PREFIX)
            .buckets(prometheus::exponential_buckets(0.0005, 2.0, 16)?),
        )?;
        reg(Box::new(upstream_latency.clone()))?;

        let auth_vec = IntCounterVec::new(
            opts(
                "auth_operations_total",
                "Logins, refreshes and logouts against the API, by result.",
            ),
            &["kind", "result"],
        )?;
        reg(Box::new(auth_vec.clone()))?;
        let mut auth_ops = Vec::new();
        for k in ["login", "refresh", "logout"] {
            for r in ["success", "rejected", "error"] {
                auth_ops.push(auth_vec.with_label_values(&[k, r]));
            }
        }
        let auth_consecutive_failures = IntGauge::with_opts(opts(
            "auth_consecutive_failures",
            "Login or refresh attempts that failed since the last success.",
        ))?;
        reg(Box::new(auth_consecutive_failures.clone()))?;
        let token_expires_in = Gauge::with_opts(opts(
            "token_expires_in_seconds",
            "Seconds until the held access token expires (0 when none is held).",
        ))?;
        reg(Box::new(token_expires_in.clone()))?;
        let ready = IntGauge::with_opts(opts("ready", "1 while a valid access token is held, else 0."))?;
        reg(Box::new(ready.clone()))?;

        let tokens_injected = IntCounter::with_opts(opts(
            "tokens_injected_total",
            "Requests forwarded with the account's bearer token.",
        ))?;
        reg(Box::new(tokens_injected.clone()))?;
        let public_without_token = IntCounter::with_opts(opts(
            "public_without_token_total",
            "Requests for public market data (proxy.public_prefixes) forwarded without a token because none was valid.",
        ))?;
        reg(Box::new(public_without_token.clone()))?;
        let client_authorization_overwritten = IntCounter::with_opts(opts(
            "client_authorization_overwritten_total",
            "Requests whose own Authorization header (not a sidecar placeholder) was replaced (or, for public data without a token, removed).",
        ))?;
        reg(Box::new(client_authorization_overwritten.clone()))?;
        let upstream_unauthorized = IntCounter::with_opts(opts(
            "upstream_unauthorized_total",
            "Upstream 401 answers to requests that carried the current token.",
        ))?;
        reg(Box::new(upstream_unauthorized.clone()))?;
        let reauthentications = IntCounter::with_opts(opts(
            "reauthentications_total",
            "Re-authentications triggered by an upstream 401 (single-flight: one per stale token).",
        ))?;
        reg(Box::new(reauthentications.clone()))?;
        let replays = IntCounter::with_opts(opts(
            "replays_total",
            "Requests replayed once with a fresh token after a 401.",
        ))?;
        reg(Box::new(replays.clone()))?;
        let resent = IntCounter::with_opts(opts(
            "resent_total",
            "Requests sent again because the API refused them unprocessed (HTTP/2 GOAWAY or REFUSED_STREAM).",
        ))?;
        reg(Box::new(resent.clone()))?;

        let response_headers_redacted = IntCounter::with_opts(opts(
            "response_headers_redacted_total",
            "Response header values removed because they carried the account's token.",
        ))?;
        reg(Box::new(response_headers_redacted.clone()))?;

        let local_vec = IntCounterVec::new(
            opts(
                "local_responses_total",
                "Requests the sidecar answered itself instead of the API, by reason.",
            ),
            &["reason"],
        )?;
        reg(Box::new(local_vec.clone()))?;
        let local = LOCAL_LABELS.iter().map(|r| local_vec.with_label_values(&[r])).collect();

        let intercepted_vec = IntCounterVec::new(
            opts(
                "intercepted_total",
                "Login, refresh and logout calls answered by the sidecar with placeholders.",
            ),
            &["endpoint"],
        )?;
        reg(Box::new(intercepted_vec.clone()))?;
        let intercepted = ["login", "refresh", "logout"]
            .iter()
            .map(|e| intercepted_vec.with_label_values(&[e]))
            .collect();

        let websocket_open = IntGauge::with_opts(opts(
            "websocket_connections",
            "WebSocket connections being relayed now.",
        ))?;
        reg(Box::new(websocket_open.clone()))?;
        let websocket_logins = IntCounter::with_opts(opts(
            "websocket_logins_total",
            "Login commands sent upstream on relayed WebSockets with the account's token.",
        ))?;
        reg(Box::new(websocket_logins.clone()))?;
        let reloads = IntCounterVec::new(
            opts("reloads_total", "Configuration reloads (SIGHUP), by result."),
            &["result"],
        )?;
        reg(Box::new(reloads.clone()))?;
        // Both series exist from the start, so `increase()` sees the first.
        for result in ["applied", "rejected"] {
            reloads.with_label_values(&[result]);
        }

        let policy_decisions = IntCounterVec::new(
            opts(
                "policy_decisions_total",
                "Calls that can change the account (every class but public and read), and every call a policy refused, by listener, class and decision.",
            ),
            &["listener", "class", "decision"],
        )?;
        reg(Box::new(policy_decisions.clone()))?;

        let build = IntGauge::with_opts(
            opts("build_info", "Build information; always 1.").const_label("version", env!("CARGO_PKG_VERSION")),
        )?;
        build.set(1);
        reg(Box::new(build))?;

        #[cfg(target_os = "linux")]
        {
            let process = prometheus::process_collector::ProcessCollector::for_self();
            registry.register(Box::new(process))?;
        }

        Ok(Metrics {
            registry,
            requests,
            in_flight,
            upstream_latency,
            auth_ops,
            auth_consecutive_failures,
            token_expires_in,
            ready,
            tokens_injected,
            public_without_token,
            client_authorization_overwritten,
            upstream_unauthorized,
            reauthentications,
            replays,
            resent,
            response_headers_redacted,
            local,
            intercepted,
            websocket_open,
            websocket_logins,
            reloads,
            policy_decisions,
        })
    }

    /// Counts one answered request.
    pub fn request(&self, method: &Method, status: u16) {
        let m = METHODS.iter().position(|x| x == method).unwrap_or(METHODS.len());
        let c = usize::from(status / 100).clamp(1, 5) - 1;
        if let Some(counter) = self.requests.get(m * CODE_LABELS.len() + c) {
            counter.inc();
        }
    }

    pub fn auth(&self, kind: AuthKind, result: AuthResult) {
        let k = kind as usize;
        let r = result as usize;
        if let Some(counter) = self.auth_ops.get(k * 3 + r) {
            counter.inc();
        }
    }

    pub fn local(&self, reason: LocalReason) {
        if let Some(counter) = self.local.get(reason as usize) {
            counter.inc();
        }
    }

    pub fn intercepted(&self, kind: AuthKind) {
        if let Some(counter) = self.intercepted.get(kind as usize) {
            counter.inc();
        }
    }

    pub fn observe_upstream(&self, elapsed: Duration) {
        self.upstream_latency.observe(elapsed.as_secs_f64());
    }

    /// The registry in Prometheus text format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let encoder = TextEncoder::new();
        if let Err(e) = encoder.encode(&self.registry.gather(), &mut buf) {
            tracing::warn!(error = %e, "cannot encode metrics");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

#[cfg(test)]
mod tests;

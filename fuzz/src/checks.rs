//! The fuzz checks: one function per target, shared by the libFuzzer targets
//! in `fuzz_targets/` and by the plain `cargo test` regression test
//! (`tests/fuzz_regressions.rs` includes this file with `#[path]`).
//!
//! Each `run_*` function takes the raw bytes libFuzzer hands a target and
//! decodes them exactly as `libfuzzer_sys::fuzz_target!` does for a typed
//! target (`Arbitrary::arbitrary_take_rest` over the whole input), so a crash
//! file from `fuzz/artifacts/<target>/` replays unchanged under `cargo test`.
//! The `check_*` functions hold the invariants; they panic when one breaks.
//!
//! Nothing here writes to disk except the fixture: a password file in
//! `$TMPDIR/ethgas-sidecar-fuzz/`, (re)written once per process. The code
//! under test only reads.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arbitrary::{Arbitrary, Unstructured};
use ethgas_sidecar::config::{Config, ConfigError};
use ethgas_sidecar::fuzzing::{AuthError, ClientAuth, Placeholders, Target};
use ethgas_sidecar::fuzzing::{jwt_exp, parse_grant, rewrite_request};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, StatusCode, Version};
use serde_json::{Value, json};

/// The password in the fixture's password file; it must never be printed.
const FIXTURE_PASSWORD: &str = "fuzz-fixture-pw-5e1f0c";

/// Bytes from the input, shown as an escaped string by `cargo fuzz fmt`.
/// Before the last field: each byte is preceded by a "more" byte (it is a
/// `Vec<u8>`, not a `&[u8]` whose length comes from the input's end), so
/// that the seeds in `fuzz/seeds/` can be written by hand.
#[derive(Clone, Arbitrary)]
pub struct Bytes(Vec<u8>);

impl std::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "b\"{}\"", self.0.escape_ascii())
    }
}

/// The rest of the input, verbatim (as the last field).
#[derive(Arbitrary)]
pub struct Rest<'a>(&'a [u8]);

impl std::fmt::Debug for Rest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "b\"{}\"", self.0.escape_ascii())
    }
}

/// Decodes `data` the way `fuzz_target!(|input: T| ...)` does; `None` when
/// libFuzzer would have skipped the input.
fn decode<'a, T: Arbitrary<'a>>(data: &'a [u8]) -> Option<T> {
    if data.len() < T::size_hint(0).0 {
        return None;
    }
    T::arbitrary_take_rest(Unstructured::new(data)).ok()
}

// ---------------------------------------------------------------------------
// The fixture: a password file in a fixed temporary directory, and the
// targets and placeholders built once per process.

struct Fixture {
    /// The config file name errors and relative paths refer to (never created).
    config_path: PathBuf,
    targets: [Target; 2],
    placeholders: Placeholders,
    /// An `Authorization` value carrying one of `placeholders`' tokens.
    placeholder: Vec<u8>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        // One fixed directory, not one per process: `cargo fuzz tmin` and
        // fork mode start thousands of processes.
        let dir = std::env::temp_dir().join("ethgas-sidecar-fuzz");
        std::fs::create_dir_all(&dir).expect("fixture directory");
        let pw = dir.join("pw");
        // Written whole under a unique name (mode 0600) and renamed into
        // place, so processes running side by side never read half a file.
        let mut file = tempfile::NamedTempFile::new_in(&dir).expect("temporary password file");
        std::io::Write::write_all(&mut file, format!("{FIXTURE_PASSWORD}\n").as_bytes()).expect("write password file");
        file.persist(&pw).expect("password file in place");
        let config_path = dir.join("config.toml");
        let target = |base_url: &str| {
            let text = format!(
                "[upstream]\nbase_url = {base_url:?}\n[auth]\nusername = \"fuzz\"\npassword_file = {:?}\n",
                pw.display().to_string()
            );
            let config = Config::from_toml(&text, &config_path).expect("fixture config parses");
            Target::new(&config.restart.upstream)
        };
        let targets = [target("https://api.ethgas.com"), target("http://127.0.0.1:7000")];
        let placeholders = Placeholders::new();
        let token = placeholders.grant("fuzz", 1_700_000_000, 3600)["accessToken"]
            .as_str()
            .expect("placeholder token")
            .to_string();
        Fixture {
            config_path,
            targets,
            placeholders,
            placeholder: format!("Bearer {token}").into_bytes(),
        }
    })
}

/// Whether `d` can be added to the monotonic clock, as the auth task and the
/// request path do (`Instant::now() + d` panics on overflow).
fn fits_clock(d: Duration) -> bool {
    Instant::now().checked_add(d).is_some()
}

fn wall_clock_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------
// config: `Config::from_toml` on arbitrary text.

pub fn run_config(data: &[u8]) {
    check_config(data);
}

/// Arbitrary bytes; UTF-8 ones are parsed as a config file in the fixture's
/// directory (so `password_file = "pw"` finds the fixture's password).
pub fn check_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let fx = fixture();
    let path = fx.config_path.as_path();
    match Config::from_toml(text, path) {
        Err(e) => check_config_error(&e, path),
        Ok(config) => {
            assert_eq!(config.path, path);
            let shown = config.render_redacted();
            if let Some(password) = config.live.auth.password() {
                if password.expose() == FIXTURE_PASSWORD && !text.contains(FIXTURE_PASSWORD) {
                    assert!(
                        !shown.contains(FIXTURE_PASSWORD),
                        "render_redacted shows the password:\n{shown}"
                    );
                }
                assert_eq!(format!("{password:?}"), "<redacted>");
            }
            // Validated durations are used as `Instant::now() + d` (the token
            // wait on the request path, the session lifetime in the auth task);
            // validation must not let through one that overflows the clock.
            let durations = [
                ("proxy.token_wait", config.live.proxy.token_wait),
                ("proxy.shutdown_grace", config.restart.proxy.shutdown_grace),
                ("upstream.connect_timeout", config.restart.upstream.connect_timeout),
                ("upstream.request_timeout", config.restart.upstream.request_timeout),
                ("upstream.pool_idle_timeout", config.restart.upstream.pool_idle_timeout),
                ("auth.default_lifetime", config.live.auth.default_lifetime),
                ("auth.timeout", config.live.auth.timeout),
                ("auth.retry_max", config.live.auth.retry_max),
                ("auth.credential_retry_max", config.live.auth.credential_retry_max),
            ];
            for (key, d) in durations {
                assert!(
                    fits_clock(d),
                    "{key} = {d:?} was accepted but overflows Instant::now() + {key}"
                );
            }
            // The Target the proxy builds from it must not panic either.
            let target = Target::new(&config.restart.upstream);
            assert_eq!(
                target.scheme.as_str(),
                config.restart.upstream.base_url.origin.scheme_str().unwrap_or("")
            );
        }
    }
}

fn check_config_error(e: &ConfigError, path: &Path) {
    let shown = e.to_string();
    assert!(
        shown.contains(&path.display().to_string()),
        "error does not name the file: {shown}"
    );
    match e {
        ConfigError::Read { .. } => panic!("from_toml never reads the config file itself: {shown}"),
        ConfigError::Syntax { .. } => {}
        ConfigError::Invalid { key, .. } => {
            assert!(
                !key.is_empty() && shown.contains(key.as_str()),
                "error does not name the key: {shown}"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// grant: `parse_grant` and `jwt_exp` on a login/refresh answer.

/// A JSON scalar of any kind, for the fields whose type the API might get wrong.
#[derive(Debug, Clone, Arbitrary)]
pub enum Scalar {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
}

impl Scalar {
    fn json(&self) -> Value {
        match self {
            Scalar::Null => Value::Null,
            Scalar::Bool(b) => json!(b),
            Scalar::Int(i) => json!(i),
            Scalar::UInt(u) => json!(u),
            Scalar::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Scalar::Str(s) => json!(s),
        }
    }
}

/// An access token: text as is, or a JWT whose payload the fuzzer shapes.
#[derive(Debug, Arbitrary)]
pub enum Token {
    Text(String),
    Jwt {
        exp: Option<Scalar>,
        other_claim: Option<(String, Scalar)>,
        /// Pad the payload with `=` (some issuers do).
        padded: bool,
        /// Whitespace around the token (the API's JSON might carry it).
        spaced: bool,
    },
    NotAString(Scalar),
}

impl Token {
    fn json(&self) -> Value {
        use base64::Engine as _;
        match self {
            Token::Text(s) => json!(s),
            Token::NotAString(s) => s.json(),
            Token::Jwt {
                exp,
                other_claim,
                padded,
                spaced,
            } => {
                let mut claims = serde_json::Map::new();
                if let Some(exp) = exp {
                    claims.insert("exp".into(), exp.json());
                }
                if let Some((k, v)) = other_claim {
                    claims.insert(k.clone(), v.json());
                }
                let b64 = if *padded {
                    base64::engine::general_purpose::URL_SAFE.encode(Value::Object(claims).to_string())
                } else {
                    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Value::Object(claims).to_string())
                };
                let token = format!("eyJhbGciOiJIUzI1NiJ9.{b64}.c2ln");
                json!(if *spaced { format!(" {token}\t") } else { token })
            }
        }
    }
}

/// A body shaped like the API's envelope, with every field optional or mistyped.
#[derive(Debug, Arbitrary)]
pub struct Envelope {
    code: Option<Scalar>,
    success: Option<Scalar>,
    message: Option<Scalar>,
    error_msg: Option<String>,
    data: Option<Data>,
}

#[derive(Debug, Arbitrary)]
pub enum Data {
    NotAnObject(Scalar),
    Object {
        access: Option<Token>,
        refresh: Option<Scalar>,
        expires_in: Option<Scalar>,
        error_code: Option<Scalar>,
        error_msg: Option<Scalar>,
    },
}

impl Envelope {
    fn json(&self) -> Value {
        let mut v = serde_json::Map::new();
        let mut put = |k: &str, s: &Option<Scalar>| {
            if let Some(s) = s {
                v.insert(k.into(), s.json());
            }
        };
        put("code", &self.code);
        put("success", &self.success);
        put("message", &self.message);
        if let Some(m) = &self.error_msg {
            v.insert("errorMsg".into(), json!(m));
        }
        match &self.data {
            None => {}
            Some(Data::NotAnObject(s)) => {
                v.insert("data".into(), s.json());
            }
            Some(Data::Object {
                access,
                refresh,
                expires_in,
                error_code,
                error_msg,
            }) => {
                let mut d = serde_json::Map::new();
                if let Some(a) = access {
                    d.insert("accessToken".into(), a.json());
                }
                for (k, s) in [
                    ("refreshToken", refresh),
                    ("expiresIn", expires_in),
                    ("errorCode", error_code),
                    ("errorMsg", error_msg),
                ] {
                    if let Some(s) = s {
                        d.insert(k.into(), s.json());
                    }
                }
                v.insert("data".into(), Value::Object(d));
            }
        }
        Value::Object(v)
    }
}

/// The answer's body. `Raw` takes the rest of the input verbatim, so a seed
/// can end in a real answer as it came off the wire.
#[derive(Debug, Arbitrary)]
pub enum Body<'a> {
    Raw(Rest<'a>),
    Shaped(Box<Envelope>),
}

#[derive(Debug, Arbitrary)]
pub struct GrantInput<'a> {
    /// Mapped into 100..=599.
    status: u16,
    retry_after: Option<Bytes>,
    extra_header: Option<(Bytes, Bytes)>,
    now_unix: u64,
    /// Seconds, mapped into 1..=10 years (what the config's `auth.default_lifetime` might say).
    default_lifetime: u32,
    /// Fed to `jwt_exp` on its own (lossily made UTF-8).
    token: Bytes,
    body: Body<'a>,
}

pub fn run_grant(data: &[u8]) {
    if let Some(input) = decode::<GrantInput>(data) {
        check_grant(input);
    }
}

/// The longest lifetime `expiresIn` may give (parse_grant's own bound).
const TEN_YEARS: Duration = Duration::from_secs(10 * 365 * 86400);

pub fn check_grant(input: GrantInput<'_>) {
    let _ = jwt_exp(&String::from_utf8_lossy(&input.token.0));

    let status = StatusCode::from_u16(100 + input.status % 500).expect("100..=599 is a status");
    let code = status.as_u16();
    let mut headers = HeaderMap::new();
    if let Some(v) = input
        .retry_after
        .as_ref()
        .and_then(|v| HeaderValue::from_bytes(&v.0).ok())
    {
        headers.insert(header::RETRY_AFTER, v);
    }
    if let Some((n, v)) = &input.extra_header {
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(&n.0), HeaderValue::from_bytes(&v.0)) {
            headers.append(n, v);
        }
    }
    let body = match &input.body {
        Body::Raw(bytes) => bytes.0.to_vec(),
        Body::Shaped(envelope) => envelope.json().to_string().into_bytes(),
    };
    let default_lifetime = Duration::from_secs(1 + u64::from(input.default_lifetime) % TEN_YEARS.as_secs());
    let now_unix = input.now_unix;

    let result = parse_grant(status, &headers, &body, now_unix, default_lifetime);
    // Every error formats (the auth task logs it).
    if let Err(e) = &result {
        let _ = e.to_string();
    }

    if status.is_server_error() || code == 408 || code == 429 {
        let Err(AuthError::Server {
            status: s, retry_after, ..
        }) = &result
        else {
            panic!("HTTP {code} must be server trouble");
        };
        assert_eq!(*s, code);
        let expected = headers
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        assert_eq!(*retry_after, expected);
        return;
    }
    if status.is_client_error() {
        assert!(
            matches!(&result, Err(AuthError::Rejected { status: s, .. }) if *s == code),
            "HTTP {code} must be a rejection"
        );
        return;
    }
    if !status.is_success() {
        assert!(
            matches!(&result, Err(AuthError::Garbage { .. })),
            "HTTP {code} must be garbage"
        );
        return;
    }
    let grant = match result {
        Err(AuthError::Garbage { .. } | AuthError::Shape { .. }) => return,
        // An error `code` in a 2xx answer: a refusal (credentials) or the
        // server's trouble, retried like a 5xx but without a Retry-After.
        Err(AuthError::Rejected { status: s, .. }) => {
            assert_eq!(s, code);
            return;
        }
        Err(AuthError::Server {
            status: s, retry_after, ..
        }) => {
            assert_eq!((s, retry_after), (code, None));
            return;
        }
        Err(e) => panic!("a 2xx answer cannot be {e:?}"),
        Ok(grant) => grant,
    };

    let access = grant.access.expose();
    assert!(
        !access.is_empty() && access.trim() == access,
        "access token not trimmed: {access:?}"
    );
    // The auth task sends it as `Bearer <token>`; it must make a header.
    assert!(HeaderValue::from_str(&format!("Bearer {access}")).is_ok());
    if let Some(r) = &grant.refresh {
        assert!(!r.expose().is_empty() && r.expose().trim() == r.expose());
    }

    let lifetime = grant.lifetime;
    assert!(!lifetime.is_zero(), "a grant must live");
    // The auth task computes `sent + lifetime` and `unix_now() + lifetime`.
    assert!(
        fits_clock(lifetime),
        "lifetime {lifetime:?} overflows Instant::now() + lifetime"
    );
    assert!(
        wall_clock_secs().checked_add(lifetime.as_secs()).is_some(),
        "lifetime {lifetime:?} overflows unix_now() + lifetime"
    );

    // Neither `expiresIn` nor a JWT `exp` may claim more than ten years (and
    // the harness keeps `default_lifetime` within that too).
    assert!(lifetime <= TEN_YEARS, "lifetime {lifetime:?} is over ten years");

    let exp = jwt_exp(access);
    let exp_lifetime = exp.filter(|e| *e > now_unix).map(|e| Duration::from_secs(e - now_unix));
    if let Some(limit) = exp_lifetime {
        assert!(
            lifetime <= limit,
            "lifetime {lifetime:?} outlives the JWT exp ({limit:?} away)"
        );
    }
    let usable_exp = exp_lifetime.filter(|d| *d <= TEN_YEARS);
    assert_eq!(
        grant.note.is_some(),
        exp.is_some() && usable_exp.is_none(),
        "a note comes exactly with a JWT exp that was ignored (past, or implausibly far)"
    );
    match grant.lifetime_source {
        "auth.default_lifetime" => {
            assert_eq!(lifetime, default_lifetime);
            assert!(usable_exp.is_none());
        }
        "JWT exp" => assert_eq!(Some(lifetime), usable_exp),
        "expiresIn" => {}
        other => panic!("unknown lifetime source {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// rewrite: `rewrite_request` (and so `strip_hop_by_hop`) on a request hyper
// would have accepted.

/// Header names the rewrite treats specially, so the fuzzer meets them often.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum KnownName {
    Connection,
    KeepAlive,
    ProxyAuthorization,
    ProxyAuthenticate,
    ProxyConnection,
    Te,
    Trailer,
    TransferEncoding,
    Upgrade,
    Expect,
    Host,
    Authorization,
    ContentLength,
    ContentType,
    Cookie,
    XApiKey,
}

impl KnownName {
    fn as_str(self) -> &'static str {
        match self {
            KnownName::Connection => "connection",
            KnownName::KeepAlive => "keep-alive",
            KnownName::ProxyAuthorization => "proxy-authorization",
            KnownName::ProxyAuthenticate => "proxy-authenticate",
            KnownName::ProxyConnection => "proxy-connection",
            KnownName::Te => "te",
            KnownName::Trailer => "trailer",
            KnownName::TransferEncoding => "transfer-encoding",
            KnownName::Upgrade => "upgrade",
            KnownName::Expect => "expect",
            KnownName::Host => "host",
            KnownName::Authorization => "authorization",
            KnownName::ContentLength => "content-length",
            KnownName::ContentType => "content-type",
            KnownName::Cookie => "cookie",
            KnownName::XApiKey => "x-api-key",
        }
    }
}

#[derive(Debug, Arbitrary)]
pub enum Name {
    Known(KnownName),
    /// Upper case on the wire; header names are case-insensitive.
    KnownUpper(KnownName),
    Raw(Bytes),
}

impl Name {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Name::Known(k) => k.as_str().as_bytes().to_vec(),
            Name::KnownUpper(k) => k.as_str().to_ascii_uppercase().into_bytes(),
            Name::Raw(b) => b.0.clone(),
        }
    }
}

#[derive(Debug, Arbitrary)]
pub enum FieldValue {
    Raw(Bytes),
    /// A comma-separated list of names (what `Connection` carries), with raw
    /// bytes after it.
    Names {
        names: Vec<Name>,
        tail: Bytes,
    },
    /// The fixture's placeholder token (`Authorization: Bearer <placeholder>`).
    Placeholder,
}

#[derive(Debug, Arbitrary)]
pub struct RewriteInput {
    method: Bytes,
    uri: Bytes,
    /// The second fixture target: a plain-http origin with a port (a base
    /// path, once allowed, is now refused by the configuration).
    with_base_path: bool,
    /// The real token's header value; a fixed one when not a valid value.
    authorization: Option<Bytes>,
    headers: Vec<(Name, FieldValue)>,
}

pub fn run_rewrite(data: &[u8]) {
    if let Some(input) = decode::<RewriteInput>(data) {
        check_rewrite(input);
    }
}

/// Headers that must never reach the API.
const HOP_BY_HOP: [&str; 11] = [
    "connection",
    "keep-alive",
    "proxy-authorization",
    "proxy-authenticate",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "expect",
    "host",
];

pub fn check_rewrite(input: RewriteInput) {
    let fx = fixture();
    let mut builder = Request::builder()
        .method(input.method.0.as_slice())
        .uri(input.uri.0.as_slice());
    for (name, value) in &input.headers {
        let value = match value {
            FieldValue::Raw(b) => b.0.clone(),
            FieldValue::Names { names, tail } => {
                let mut v = names.iter().map(Name::bytes).collect::<Vec<_>>().join(&b", "[..]);
                v.extend_from_slice(&tail.0);
                v
            }
            FieldValue::Placeholder => fx.placeholder.clone(),
        };
        builder = builder.header(name.bytes().as_slice(), value.as_slice());
    }
    // What hyper would have refused never reaches the rewrite.
    let Ok(request) = builder.body(()) else {
        return;
    };
    let (mut parts, ()) = request.into_parts();
    let target = &fx.targets[usize::from(input.with_base_path)];
    let authorization = input
        .authorization
        .as_ref()
        .and_then(|v| HeaderValue::from_bytes(&v.0).ok())
        .unwrap_or_else(|| HeaderValue::from_static("Bearer real.access.token"));

    let before = parts.clone();
    let mut public = parts.clone();
    let client_auth = rewrite_request(&mut parts, target, Some(&authorization), &fx.placeholders);
    check_rewritten(&before, &parts, target, &authorization, &fx.placeholders, client_auth);

    // Public data while no token is held: the same request, with no
    // Authorization at all (the client's own is never forwarded).
    assert_eq!(
        rewrite_request(&mut public, target, None, &fx.placeholders),
        client_auth
    );
    assert!(
        !public.headers.contains_key(header::AUTHORIZATION),
        "an Authorization without a token"
    );
    parts.headers.remove(header::AUTHORIZATION);
    assert_eq!(public.headers, parts.headers, "the rest as with a token");
    assert_eq!(public.uri, parts.uri);
}

/// The names a request's `Connection` headers list, read from the raw bytes
/// (not only from values that happen to be visible ASCII).
fn connection_names(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .filter_map(|name| HeaderName::from_bytes(name.trim_ascii()).ok())
        .collect()
}

fn check_rewritten(
    before: &http::request::Parts,
    after: &http::request::Parts,
    target: &Target,
    authorization: &HeaderValue,
    placeholders: &Placeholders,
    client_auth: ClientAuth,
) {
    // Exactly one Authorization: ours.
    let auths: Vec<&HeaderValue> = after.headers.get_all(header::AUTHORIZATION).iter().collect();
    assert_eq!(auths, vec![authorization], "exactly one Authorization, the sidecar's");

    // No hop-by-hop header survives.
    for name in HOP_BY_HOP {
        assert!(!after.headers.contains_key(name), "hop-by-hop {name:?} was forwarded");
    }
    // Nor any header the client's Connection named (but our Authorization).
    let named = connection_names(&before.headers);
    for name in &named {
        if name != header::AUTHORIZATION {
            assert!(
                !after.headers.contains_key(name),
                "{name:?} is named in Connection {:?} but was forwarded",
                before.headers.get_all(header::CONNECTION).iter().collect::<Vec<_>>()
            );
        }
    }
    // Every other header is forwarded as sent, in order; nothing is added.
    let dropped = |n: &HeaderName| HOP_BY_HOP.contains(&n.as_str()) || named.contains(n) || n == header::AUTHORIZATION;
    for name in before.headers.keys().filter(|n| !dropped(n)) {
        let sent: Vec<_> = before.headers.get_all(name).iter().collect();
        let forwarded: Vec<_> = after.headers.get_all(name).iter().collect();
        assert_eq!(sent, forwarded, "{name:?} altered");
    }
    for name in after.headers.keys() {
        assert!(
            name == header::AUTHORIZATION || before.headers.contains_key(name),
            "{name:?} added"
        );
    }

    // What the client's own Authorization was.
    let expected = if named.contains(&header::AUTHORIZATION) {
        ClientAuth::None
    } else {
        match before.headers.get(header::AUTHORIZATION) {
            None => ClientAuth::None,
            Some(v) if placeholders.is_placeholder(v.as_bytes()) => ClientAuth::Placeholder,
            Some(_) => ClientAuth::Own,
        }
    };
    assert_eq!(client_auth, expected);

    // The URI points at the API, with the client's path (under the base
    // path) and query.
    assert_eq!(after.uri.scheme(), Some(&target.scheme), "scheme");
    assert_eq!(after.uri.authority(), Some(&target.authority), "authority");
    let path = after.uri.path();
    assert!(
        path.ends_with(before.uri.path()),
        "path {path:?} does not end with {:?}",
        before.uri.path()
    );
    assert!(
        path.starts_with(&target.base_path),
        "path {path:?} is not under {:?}",
        target.base_path
    );
    let expected_path = match before.uri.path_and_query() {
        Some(_) => format!("{}{}", target.base_path, before.uri.path()),
        None => format!("{}/", target.base_path),
    };
    assert_eq!(path, expected_path);
    assert_eq!(after.uri.query(), before.uri.query(), "query");
    assert_eq!(after.method, before.method);
    assert_eq!(after.version, Version::HTTP_11);
}

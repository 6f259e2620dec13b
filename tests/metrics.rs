//! `/metrics` parses as Prometheus text format and its counters move with
//! what happened: requests, logins, refreshes, injections, overwrites.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::*;
use http::Request;
use http_body_util::Full;

/// One sample: name, labels, value.
type Sample = (String, Vec<(String, String)>, f64);

/// A strict parser for the text exposition format (version 0.0.4): HELP and
/// TYPE comments, samples with optional labels, float values. Every sample
/// must belong to a family declared by a TYPE line.
fn parse(text: &str) -> Result<Vec<Sample>, String> {
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.chars()
                .enumerate()
                .all(|(i, c)| c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit()))
    };
    let mut types: HashMap<String, String> = HashMap::new();
    let mut samples = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let at = |msg: &str| format!("line {}: {msg}: {line}", n + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("HELP"), Some(name), _) if name_ok(name) => {}
                (Some("TYPE"), Some(name), Some(kind)) if name_ok(name) => {
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                        return Err(at("unknown type"));
                    }
                    if types.insert(name.to_string(), kind.to_string()).is_some() {
                        return Err(at("family declared twice"));
                    }
                }
                _ => return Err(at("bad comment")),
            }
            continue;
        }
        let (head, value) = line.rsplit_once(' ').ok_or_else(|| at("no value"))?;
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v.parse().map_err(|_| at("value is not a float"))?,
        };
        let (name, labels) = match head.split_once('{') {
            None => (head.to_string(), Vec::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').ok_or_else(|| at("unclosed labels"))?;
                let mut labels = Vec::new();
                for pair in body.split("\",").filter(|p| !p.is_empty()) {
                    let (k, v) = pair.split_once("=\"").ok_or_else(|| at("bad label"))?;
                    if !name_ok(k) {
                        return Err(at("bad label name"));
                    }
                    labels.push((k.to_string(), v.trim_end_matches('"').to_string()));
                }
                (name.to_string(), labels)
            }
        };
        if !name_ok(&name) {
            return Err(at("bad metric name"));
        }
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| {
                name.strip_suffix(suffix)
                    .filter(|f| types.get(*f).is_some_and(|t| t == "histogram"))
            })
            .unwrap_or(&name)
            .to_string();
        if !types.contains_key(&family) {
            return Err(at("sample without a TYPE line"));
        }
        samples.push((name, labels, value));
    }
    Ok(samples)
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|(n, l, _)| n == name && labels.iter().all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v)))
        .map(|(_, _, v)| *v)
        .sum()
}

#[tokio::test]
async fn metrics_parse_and_count_what_happened() {
    let api = start_api(Duration::from_secs(2)).await;
    let (sidecar, c) = ready_sidecar(&api, Extra::default()).await;

    let mut gets = 0;
    for _ in 0..30 {
        assert_eq!(get(&c, &sidecar.url("/api/v1/user/info")).await.status, 200);
        gets += 1;
    }
    for _ in 0..5 {
        let req = Request::get(sidecar.url("/api/v1/user/info"))
            .header("authorization", "Bearer programs-own")
            .body(Full::default())
            .unwrap();
        assert_eq!(send(&c, req).await.status, 200);
        gets += 1;
    }
    assert_eq!(post_json(&c, &sidecar.url("/api/v1/mock/echo"), "{}").await.status, 200);
    assert_eq!(get(&c, &sidecar.url("/nope")).await.status, 404);
    eventually(Duration::from_secs(6), "a refresh", || {
        api.mock.counts().refreshes_ok >= 1
    })
    .await;

    let r = get(&c, &sidecar.admin_url("/metrics")).await;
    assert_eq!(r.status, 200);
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = String::from_utf8(r.body.to_vec()).unwrap();
    let samples = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));

    let m = |name: &str, labels: &[(&str, &str)]| value(&samples, name, labels);
    assert_eq!(
        m("ethgas_sidecar_requests_total", &[("method", "GET"), ("code", "2xx")]),
        gets as f64
    );
    assert_eq!(
        m("ethgas_sidecar_requests_total", &[("method", "GET"), ("code", "4xx")]),
        1.0
    );
    assert_eq!(
        m("ethgas_sidecar_requests_total", &[("method", "POST"), ("code", "2xx")]),
        1.0
    );
    assert_eq!(
        m(
            "ethgas_sidecar_auth_operations_total",
            &[("kind", "login"), ("result", "success")]
        ),
        1.0
    );
    assert!(
        m(
            "ethgas_sidecar_auth_operations_total",
            &[("kind", "refresh"), ("result", "success")]
        ) >= 1.0
    );
    assert_eq!(
        m(
            "ethgas_sidecar_auth_operations_total",
            &[("kind", "login"), ("result", "rejected")]
        ),
        0.0
    );
    assert_eq!(m("ethgas_sidecar_auth_consecutive_failures", &[]), 0.0);
    let expires = m("ethgas_sidecar_token_expires_in_seconds", &[]);
    assert!((0.0..=2.0).contains(&expires), "{expires}");
    assert_eq!(m("ethgas_sidecar_ready", &[]), 1.0);
    assert_eq!(m("ethgas_sidecar_tokens_injected_total", &[]), (gets + 2) as f64);
    assert_eq!(m("ethgas_sidecar_client_authorization_overwritten_total", &[]), 5.0);
    assert_eq!(
        m("ethgas_sidecar_upstream_request_duration_seconds_count", &[]),
        (gets + 2) as f64
    );
    assert_eq!(m("ethgas_sidecar_requests_in_flight", &[]), 0.0);
    assert_eq!(
        m("ethgas_sidecar_build_info", &[("version", env!("CARGO_PKG_VERSION"))]),
        1.0
    );
    assert!(m("process_resident_memory_bytes", &[]) > 0.0);

    // Every auth kind × result pair exists from the start, so alert rules
    // using increase() see the first failure.
    let pairs: HashSet<(String, String)> = samples
        .iter()
        .filter(|(n, _, _)| n == "ethgas_sidecar_auth_operations_total")
        .map(|(_, l, _)| {
            let get = |k: &str| {
                l.iter()
                    .find(|(lk, _)| lk == k)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            (get("kind"), get("result"))
        })
        .collect();
    assert_eq!(pairs.len(), 9, "{pairs:?}");
}

#[test]
fn the_parser_rejects_what_prometheus_would() {
    assert!(parse("# TYPE a counter\na 1\n").is_ok());
    assert!(parse("a 1\n").is_err(), "sample without TYPE");
    assert!(parse("# TYPE a counter\na one\n").is_err());
    assert!(parse("# TYPE a counter\na{x=\"1\" 1\n").is_err());
    assert!(parse("# TYPE 1a counter\n").is_err());
}

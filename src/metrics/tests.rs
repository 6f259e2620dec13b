//! Unit tests of `metrics`.

use super::*;

#[test]
fn series_are_labelled_and_counted() {
    let m = Metrics::try_new().expect("registration");
    m.request(&Method::GET, 200);
    m.request(&Method::GET, 204);
    m.request(&Method::from_bytes(b"BREW").unwrap(), 503);
    m.auth(AuthKind::Refresh, AuthResult::Rejected);
    m.local(LocalReason::NoToken);
    let text = m.render();
    assert!(
        text.contains("ethgas_sidecar_requests_total{code=\"2xx\",method=\"GET\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("ethgas_sidecar_requests_total{code=\"5xx\",method=\"other\"} 1"),
        "{text}"
    );
    assert!(text.contains("ethgas_sidecar_auth_operations_total{kind=\"refresh\",result=\"rejected\"} 1"));
    assert!(text.contains("ethgas_sidecar_local_responses_total{reason=\"no_token\"} 1"));
    assert!(text.contains("ethgas_sidecar_build_info{version=\""));
}

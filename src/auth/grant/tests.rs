//! Unit tests of `auth::grant`: the answers the API gives, read or refused.

use super::*;
use crate::auth::error::QUOTE_MAX_CHARS;

fn jwt(exp: u64) -> String {
    let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}.sig",
        e.encode(br#"{"alg":"HS256"}"#),
        e.encode(format!(r#"{{"sub":"u","exp":{exp}}}"#))
    )
}

fn grant(status: u16, body: &str) -> Result<Grant, AuthError> {
    parse_grant(
        StatusCode::from_u16(status).unwrap(),
        &HeaderMap::new(),
        body.as_bytes(),
        1_000_000,
        Duration::from_secs(3600),
    )
}

#[test]
fn documented_login_answer() {
    let g = grant(
        200,
        r#"{"code":200,"message":"OK","data":{"accessToken":"a","refreshToken":"r","expiresIn":3600}}"#,
    )
    .unwrap();
    assert_eq!(g.access.expose(), "a");
    assert_eq!(g.refresh.unwrap().expose(), "r");
    assert_eq!(g.lifetime, Duration::from_secs(3600));
}

#[test]
fn tolerated_shapes() {
    // code 1, expiresIn as a string
    let g = grant(200, r#"{"code":1,"data":{"accessToken":"a","expiresIn":"120"}}"#).unwrap();
    assert_eq!(g.lifetime, Duration::from_secs(120));
    assert!(g.refresh.is_none());
    // no expiresIn: the JWT exp, then the default
    let g = grant(200, &format!(r#"{{"data":{{"accessToken":"{}"}}}}"#, jwt(1_000_600))).unwrap();
    assert_eq!(g.lifetime, Duration::from_secs(600));
    let g = grant(200, r#"{"data":{"accessToken":"opaque"}}"#).unwrap();
    assert_eq!(g.lifetime, Duration::from_secs(3600));
    // the sooner of the two wins
    let body = format!(r#"{{"data":{{"accessToken":"{}","expiresIn":3600}}}}"#, jwt(1_000_060));
    assert_eq!(grant(200, &body).unwrap().lifetime, Duration::from_secs(60));
    // an exp implausibly far (milliseconds) is ignored with a note
    let body = format!(
        r#"{{"data":{{"accessToken":"{}","expiresIn":30}}}}"#,
        jwt(1_000_000_000_000)
    );
    let g = grant(200, &body).unwrap();
    assert_eq!(g.lifetime, Duration::from_secs(30));
    assert!(g.note.is_some());
}

#[test]
fn a_token_expired_by_its_jwt_exp_is_an_unusable_grant() {
    // (exp, expiresIn, clock since the epoch, expected lifetime or None)
    let now = Duration::from_secs(1_000_000);
    let ms = Duration::from_millis;
    let cases: Vec<(u64, &str, Duration, Option<Duration>)> = vec![
        // In the past, or now: unusable whatever expiresIn says.
        (5, "3600", now, None),
        (999_999, "3600", now, None),
        (1_000_000, "3600", now, None),
        (1_000_000, "3600", now + ms(400), None),
        // Less than a second left: unusable too.
        (1_000_001, "3600", now + ms(1), None),
        (1_000_001, "3600", now + ms(600), None),
        // What is left of exp, to the millisecond (not from the start of
        // the clock's second: 0.7 s less here).
        (1_000_003, "3600", now + ms(700), Some(ms(2300))),
        (1_000_003, "3", now + ms(700), Some(ms(2300))),
        (1_000_001, "3600", now, Some(ms(1000))),
        (1_000_060, "30", now + ms(700), Some(ms(30_000))),
    ];
    for (exp, expires_in, now, expected) in cases {
        let body = format!(
            r#"{{"data":{{"accessToken":"{}","expiresIn":{expires_in}}}}}"#,
            jwt(exp)
        );
        let r = parse_grant_at(
            StatusCode::OK,
            &HeaderMap::new(),
            body.as_bytes(),
            now,
            Duration::from_secs(3600),
        );
        match (r, expected) {
            (Ok(g), Some(lifetime)) => assert_eq!(g.lifetime, lifetime, "exp {exp} at {now:?}"),
            (Err(e), None) => {
                assert!(e.to_string().contains("exp"), "names the exp: {e}");
                assert!(!e.is_rejection(), "retried with the schedule's backoff: {e}");
            }
            (r, _) => panic!("exp {exp} at {now:?}: {:?}", r.map(|g| g.lifetime)),
        }
    }
}

#[test]
fn api_text_is_quoted_escaped_and_cut() {
    assert_eq!(quote("plain"), r#""plain""#);
    assert_eq!(quote("a\nb\"c"), r#""a\nb\"c""#);
    let long = "é".repeat(200_000);
    let q = quote(&long);
    assert!(q.chars().count() < 230, "{}", q.len());
    assert!(q.ends_with("… (200000 characters)"), "{q}");
    let head = format!("{:?}", "é".repeat(QUOTE_MAX_CHARS));
    assert!(q.starts_with(head.trim_end_matches('"')), "{q}");
    // An expiresIn of 200 KB makes an error of bounded length.
    let body = format!(
        r#"{{"code":200,"data":{{"accessToken":"a","expiresIn":"{}"}}}}"#,
        "9x".repeat(100_000)
    );
    let e = grant(200, &body).err().unwrap();
    assert!(e.to_string().len() < 400, "{}", e.to_string().len());
    assert!(e.to_string().contains("(200000 characters)"), "{e}");
    // So does a message of any size, control characters escaped.
    let body = format!(r#"{{"code":401,"message":"bad\r\n{}"}}"#, "x".repeat(100_000));
    let e = grant(401, &body).err().unwrap();
    assert!(e.to_string().len() < 400, "{}", e.to_string().len());
    assert!(e.to_string().contains(r#""bad\r\nxxx"#), "{e}");
}

#[test]
fn rejections_and_garbage_are_told_apart() {
    let e = grant(401, r#"{"code":401,"message":"Unauthorized","data":null}"#)
        .err()
        .unwrap();
    assert!(e.is_rejection());
    assert!(e.to_string().contains("Unauthorized"));
    let e = grant(200, r#"{"code":1001,"message":"bad password","data":null}"#)
        .err()
        .unwrap();
    assert!(e.is_rejection(), "success status with an error code is a rejection");
    let e = grant(200, r#"{"success":false,"data":{"errorCode":403,"errorMsg":"nope"}}"#)
        .err()
        .unwrap();
    assert!(e.is_rejection());
    assert!(e.to_string().contains("nope"));
    let e = grant(200, r#"{"code":1002,"message":"operation failed","data":null}"#)
        .err()
        .unwrap();
    assert!(!e.is_rejection(), "operation failed is retried like a 5xx");
    for (status, body) in [(200, "<html>"), (200, "[1]"), (503, "down"), (500, "{}")] {
        let e = grant(status, body).err().unwrap();
        assert!(!e.is_rejection(), "{status} {body}: {e}");
    }
    let e = grant(200, r#"{"code":200,"data":{"accessToken":""}}"#).err().unwrap();
    assert!(e.to_string().contains("data.accessToken"), "{e}");
    let e = grant(200, r#"{"code":200,"data":{"accessToken":"a","expiresIn":-5}}"#)
        .err()
        .unwrap();
    assert!(e.to_string().contains("data.expiresIn"), "{e}");
}

#[test]
fn lifetimes_too_short_to_use_are_refused() {
    let e = grant(200, r#"{"code":200,"data":{"accessToken":"a","expiresIn":0.5}}"#)
        .err()
        .unwrap();
    assert!(e.to_string().contains("data.expiresIn"), "{e}");
    assert!(!e.is_rejection(), "retried with backoff, not a refused password");
}

#[test]
fn retry_after_is_read_from_server_errors() {
    let mut h = HeaderMap::new();
    h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
    let e = parse_grant(StatusCode::SERVICE_UNAVAILABLE, &h, b"", 0, Duration::from_secs(1))
        .err()
        .unwrap();
    assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
}

#[test]
fn the_session_ends_with_the_refresh_tokens_exp() {
    // (refresh token, expected session lifetime) at now = 1_000_000
    let s = Duration::from_secs;
    let cases: Vec<(String, Option<Duration>)> = vec![
        (jwt(1_000_000 + 7 * 86400), Some(s(7 * 86400))),
        (jwt(1_000_005), Some(s(5))),
        (jwt(1_000_001), Some(s(1))),
        ("opaque".into(), None),
        // Ended: only a login works (the schedule plans one, not a refresh).
        (jwt(1_000_000), Some(Duration::ZERO)),
        (jwt(999_000), Some(Duration::ZERO)),
        (jwt(u64::MAX / 2), None), // milliseconds, or nonsense
    ];
    for (refresh, expected) in cases {
        let body = format!(r#"{{"code":200,"data":{{"accessToken":"a","refreshToken":"{refresh}","expiresIn":60}}}}"#);
        let g = grant(200, &body).unwrap();
        assert_eq!(g.session_lifetime, expected, "{refresh}");
    }
    let g = grant(200, r#"{"code":200,"data":{"accessToken":"a","expiresIn":60}}"#).unwrap();
    assert_eq!(g.session_lifetime, None, "no refresh token, no session end");
}

#[test]
fn live_refusals_quote_error_code_and_error_msg_key() {
    // (status, body, rejection?, code, text the error must carry)
    let cases = [
        (
            200,
            r#"{"success":false,"errorCode":1001,"errorMsgKey":"error.login.address_unknown","data":{}}"#,
            true,
            1001,
            r#"(HTTP 200, code 1001): "error.login.address_unknown""#,
        ),
        // A 4xx reads the live errorCode too, not only the status.
        (
            401,
            r#"{"success":false,"errorCode":1000,"errorMsgKey":"error.login.session_expired","data":{}}"#,
            true,
            1000,
            r#"(HTTP 401, code 1000): "error.login.session_expired""#,
        ),
        // Inside `data`, with a text: the key leads.
        (
            200,
            r#"{"success":false,"data":{"errorCode":2,"errorMsgKey":"error.permission","errorMsg":"Permission denied"}}"#,
            true,
            2,
            "error.permission: Permission denied",
        ),
        // The text alone, and the key equal to the text, once.
        (
            200,
            r#"{"success":false,"errorCode":1000,"errorMsg":"nope","data":{}}"#,
            true,
            1000,
            r#"): "nope""#,
        ),
        (
            200,
            r#"{"success":false,"errorCode":1000,"errorMsgKey":"k","errorMsg":"k"}"#,
            true,
            1000,
            r#"): "k""#,
        ),
    ];
    for (status, body, rejection, code, text) in cases {
        let e = grant(status, body).err().unwrap();
        assert_eq!(e.is_rejection(), rejection, "{body}: {e}");
        match &e {
            AuthError::Rejected { code: c, .. } => assert_eq!(*c, code, "{body}: {e}"),
            other => panic!("{body}: {other}"),
        }
        assert!(e.to_string().contains(text), "{body}: {e}");
        assert!(
            !e.summary().contains("error."),
            "clients get no API text: {}",
            e.summary()
        );
    }
    // Operation failed (1002) with HTTP 200, and a live 503: the server's
    // trouble, retried fast; the key still says which.
    let e = grant(
        200,
        r#"{"success":false,"errorCode":1002,"errorMsgKey":"error.operation_failed","data":{}}"#,
    )
    .err()
    .unwrap();
    assert!(!e.is_rejection(), "{e}");
    assert!(e.to_string().contains(r#"code 1002: "error.operation_failed""#), "{e}");
    let e = grant(
        503,
        r#"{"success":false,"errorCode":503,"errorMsgKey":"error.unavailable","data":{}}"#,
    )
    .err()
    .unwrap();
    assert!(!e.is_rejection(), "{e}");
    assert!(e.to_string().contains("error.unavailable"), "{e}");
    // No text anywhere: the status's reason.
    let e = grant(403, r#"{"success":false,"data":{}}"#).err().unwrap();
    assert!(e.to_string().ends_with("Forbidden"), "{e}");
}

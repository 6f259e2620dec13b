//! Unit tests of `auth::schedule`: every rule as a table of cases, with
//! `Instant` arithmetic from one captured base. Nothing sleeps.

use super::*;

const S: Duration = Duration::from_secs(1);
const MS: Duration = Duration::from_millis(1);

fn policy() -> Policy {
    Policy {
        refresh_ratio: 0.75,
        retry_max: 30 * S,
        credential_retry_max: 300 * S,
        reauth_min_interval: 10 * S,
        min_call_interval: 5 * S,
        timeout: 10 * S,
    }
}

fn rejected(status: u16) -> AuthError {
    AuthError::Rejected {
        status,
        code: i64::from(status),
        message: "refused".into(),
    }
}

fn no_endpoint(status: u16) -> AuthError {
    AuthError::NoEndpoint {
        url: "http://127.0.0.1:1/api/v1/api/v1/user/login".into(),
        status,
        key: "auth.login_path",
    }
}

fn server(status: u16) -> AuthError {
    AuthError::Server {
        status,
        message: "down".into(),
        retry_after: None,
    }
}

#[test]
fn refresh_point_stays_within_the_jitter_bounds() {
    let t0 = Instant::now();
    let lease = |secs: u64| Lease {
        obtained_at: t0,
        lifetime: Duration::from_secs(secs),
        session_start: t0,
        session_end: None,
        refreshable: true,
    };
    // (refresh_ratio, lifetime, jitter, expected offset from t0)
    let cases: Vec<(f64, u64, f64, Duration)> = vec![
        (0.75, 3600, 0.5, 2700 * S),  // no jitter: exactly the ratio
        (0.75, 3600, 0.0, 2520 * S),  // -5 % of the lifetime
        (0.75, 3600, 1.0, 2880 * S),  // +5 % of the lifetime
        (0.5, 10, 0.0, 4500 * MS),    // short tokens move by the same share
        (0.5, 10, 1.0, 5500 * MS),    //
        (0.95, 100, 1.0, 95 * S),     // never later than 95 %
        (0.1, 100, 0.0, 5 * S),       // never earlier than 5 %
        (0.75, 3600, 7.0, 2880 * S),  // jitter outside [0, 1] is clamped
        (0.75, 3600, -3.0, 2520 * S), //
    ];
    for (ratio, secs, jitter, expected) in cases {
        let p = Policy {
            refresh_ratio: ratio,
            ..policy()
        };
        let at = refresh_point(&p, lease(secs), jitter);
        let got = at - t0;
        let diff = got.abs_diff(expected);
        assert!(
            diff < MS,
            "ratio {ratio}, lifetime {secs}s, jitter {jitter}: {got:?}, expected {expected:?}"
        );
        let next = after_grant(&p, lease(secs), jitter);
        assert_eq!(
            next,
            Next {
                step: Step::Refresh,
                at
            },
            "a new token is refreshed next"
        );
    }
}

#[test]
fn failures_are_classified_by_step_and_answer() {
    let timeout = AuthError::Timeout {
        url: "u".into(),
        limit: S,
    };
    let garbage = AuthError::Garbage {
        status: 200,
        detail: "x".into(),
    };
    let cases: Vec<(Step, AuthError, Class)> = vec![
        (Step::Refresh, rejected(401), Class::RefreshRefused),
        (Step::Refresh, rejected(403), Class::RefreshRefused),
        (Step::Login, rejected(401), Class::Credential),
        (Step::Login, server(503), Class::Outage),
        (Step::Refresh, server(500), Class::Outage),
        (Step::Refresh, timeout.clone(), Class::Outage),
        (Step::Login, timeout, Class::Outage),
        (Step::Login, garbage, Class::Outage),
        // Nothing at the path (a base_url with a path of its own): not the
        // credentials' fault, retried with the fast backoff.
        (Step::Login, no_endpoint(404), Class::Outage),
        (Step::Login, no_endpoint(405), Class::Outage),
        (Step::Refresh, no_endpoint(404), Class::Outage),
        // A 4xx other than 401/403 refuses the request, not the account.
        (Step::Login, rejected(400), Class::Outage),
        (Step::Login, rejected(422), Class::Outage),
        (Step::Refresh, rejected(400), Class::RefreshRefused),
        // An error code in a 2xx answer (the live API's refusals).
        (Step::Login, rejected(200), Class::Credential),
        // A token expired when it came.
        (
            Step::Login,
            AuthError::Shape {
                field: "accessToken exp",
                detail: "expired".into(),
            },
            Class::Outage,
        ),
    ];
    for (step, e, class) in cases {
        assert_eq!(classify(step, &e), class, "{step:?} {e}");
    }
}

/// One failure fed to `after_failure`, and what must come of it.
struct Case {
    name: &'static str,
    step: Step,
    class: Class,
    before: Failures,
    retry_after: Option<Duration>,
    /// The newest token: obtained this long before now, with this lifetime.
    held: Option<(Duration, Duration)>,
    /// Its session ends this long after now.
    session_left: Option<Duration>,
    jitter: f64,
    /// Expected: what next, how long after now, and the failure counts after.
    next_step: Step,
    after: Duration,
    failures: Failures,
}

fn outage(n: u32) -> Failures {
    Failures {
        outage: n,
        credential: 0,
    }
}

fn credential(n: u32) -> Failures {
    Failures {
        outage: 0,
        credential: n,
    }
}

fn run(cases: Vec<Case>) {
    let now = Instant::now() + 3600 * S;
    for c in cases {
        let mut failures = c.before;
        let held = c.held.map(|(age, lifetime)| Lease {
            obtained_at: now - age,
            lifetime,
            session_start: now - age,
            session_end: c.session_left.map(|left| now + left),
            refreshable: true,
        });
        let failure = Failure {
            step: c.step,
            class: c.class,
            retry_after: c.retry_after,
        };
        let next = after_failure(&policy(), &mut failures, failure, held, now, c.jitter);
        assert_eq!(next.step, c.next_step, "{}: step", c.name);
        assert_eq!(next.at - now, c.after, "{}: deadline", c.name);
        assert_eq!(failures, c.failures, "{}: failure counts", c.name);
    }
}

#[test]
fn a_refused_refresh_is_followed_by_a_login_at_once() {
    run(vec![
        Case {
            name: "refused refresh, token valid",
            step: Step::Refresh,
            class: Class::RefreshRefused,
            before: Failures::default(),
            retry_after: None,
            held: Some((2700 * S, 3600 * S)),
            session_left: None,
            jitter: 1.0,
            next_step: Step::Login,
            after: Duration::ZERO,
            failures: Failures::default(),
        },
        Case {
            name: "refused refresh after outages: no backoff, counts kept",
            step: Step::Refresh,
            class: Class::RefreshRefused,
            before: outage(2),
            retry_after: Some(20 * S),
            held: None,
            session_left: None,
            jitter: 1.0,
            next_step: Step::Login,
            after: Duration::ZERO,
            failures: outage(2),
        },
    ]);
}

#[test]
fn credential_and_outage_backoffs_have_their_own_caps() {
    let login = |name, class, before, jitter, after, failures| Case {
        name,
        step: Step::Login,
        class,
        before,
        retry_after: None,
        held: None,
        session_left: None,
        jitter,
        next_step: Step::Login,
        after,
        failures,
    };
    run(vec![
        login("first outage", Class::Outage, outage(0), 1.0, 250 * MS, outage(1)),
        login(
            "first outage, low jitter",
            Class::Outage,
            outage(0),
            0.0,
            125 * MS,
            outage(1),
        ),
        login("fourth outage", Class::Outage, outage(3), 1.0, 2 * S, outage(4)),
        login(
            "outages cap at retry_max",
            Class::Outage,
            outage(12),
            1.0,
            30 * S,
            outage(13),
        ),
        login(
            "outage cap, low jitter",
            Class::Outage,
            outage(40),
            0.0,
            15 * S,
            outage(41),
        ),
        login(
            "first refusal",
            Class::Credential,
            credential(0),
            1.0,
            5 * S,
            credential(1),
        ),
        login(
            "third refusal",
            Class::Credential,
            credential(2),
            1.0,
            20 * S,
            credential(3),
        ),
        login(
            "refusals cap at credential_retry_max",
            Class::Credential,
            credential(9),
            1.0,
            300 * S,
            credential(10),
        ),
        // Each class counts its own failures.
        login(
            "a refusal after outages starts slow",
            Class::Credential,
            outage(5),
            1.0,
            5 * S,
            Failures {
                outage: 5,
                credential: 1,
            },
        ),
    ]);
}

#[test]
fn retry_after_is_honoured_and_capped() {
    let case = |name, retry_after: Option<Duration>, before, after| Case {
        name,
        step: Step::Login,
        class: Class::Outage,
        before,
        retry_after,
        held: None,
        session_left: None,
        jitter: 1.0,
        next_step: Step::Login,
        after,
        failures: outage(1 + before.outage),
    };
    run(vec![
        case("no Retry-After", None, outage(0), 250 * MS),
        case("Retry-After longer than the backoff", Some(7 * S), outage(0), 7 * S),
        case("Retry-After shorter than the backoff", Some(S), outage(5), 8 * S),
        case("Retry-After capped at retry_max", Some(3600 * S), outage(0), 30 * S),
    ]);
}

#[test]
fn a_failing_renewal_gets_a_last_chance_before_the_token_runs_out() {
    // A login failing for outage reasons while a token is still held (after
    // a refused refresh, or in place of a refresh that kept failing).
    let login = |name, held, before: Failures, after| Case {
        name,
        step: Step::Login,
        class: Class::Outage,
        before,
        retry_after: None,
        held,
        session_left: None,
        jitter: 1.0,
        next_step: Step::Login,
        after,
        failures: outage(before.outage + 1),
    };
    run(vec![
        // 10 s token, 2 s old: handed out for 7 s more, room for the backoff.
        login(
            "backoff inside the validity: kept",
            Some((2 * S, 10 * S)),
            outage(0),
            250 * MS,
        ),
        // 3600 s token, 3590 s old: handed out for 9 s more (1 s margin);
        // a 16 s backoff is pulled to 200 ms before that.
        login(
            "backoff past the validity: pulled in",
            Some((3590 * S, 3600 * S)),
            outage(6),
            8800 * MS,
        ),
        login("no token held: plain backoff", None, outage(6), 16 * S),
        login(
            "token already past its validity: plain backoff",
            Some((3600 * S, 3600 * S)),
            outage(6),
            16 * S,
        ),
    ]);
    // A refused password is not pulled in: retrying it sooner changes nothing.
    run(vec![Case {
        name: "credential refusal: slow backoff kept",
        step: Step::Login,
        class: Class::Credential,
        before: credential(3),
        retry_after: None,
        held: Some((3590 * S, 3600 * S)),
        session_left: None,
        jitter: 1.0,
        next_step: Step::Login,
        after: 40 * S,
        failures: credential(4),
    }]);
}

#[test]
fn a_refresh_failing_for_outage_reasons_falls_back_to_a_login_before_expiry() {
    let refresh = |name, held, before: Failures, retry_after, next_step, after| Case {
        name,
        step: Step::Refresh,
        class: Class::Outage,
        before,
        retry_after,
        held,
        session_left: None,
        jitter: 1.0,
        next_step,
        after,
        failures: outage(before.outage + 1),
    };
    // 3600 s tokens refreshed at 0.75: the fallback point is at 0.875
    // (3150 s), half of the refresh window before expiry.
    let at_refresh_point = Some((2700 * S, 3600 * S));
    run(vec![
        refresh(
            "first failure: refresh again",
            at_refresh_point,
            outage(0),
            None,
            Step::Refresh,
            250 * MS,
        ),
        refresh(
            "second failure: refresh again",
            at_refresh_point,
            outage(1),
            None,
            Step::Refresh,
            500 * MS,
        ),
        refresh(
            "third failure: a login next",
            at_refresh_point,
            outage(2),
            None,
            Step::Login,
            S,
        ),
        refresh(
            "a retry past the fallback point: a login at that point",
            Some((3140 * S, 3600 * S)),
            outage(0),
            Some(20 * S),
            Step::Login,
            10 * S,
        ),
        refresh(
            "fallback point passed: a login now",
            Some((3200 * S, 3600 * S)),
            outage(0),
            None,
            Step::Login,
            Duration::ZERO,
        ),
        // 8 s tokens, 4 s old: fallback at 7 s.
        refresh(
            "short token, first failure at 4 s",
            Some((4 * S, 8 * S)),
            outage(0),
            None,
            Step::Refresh,
            250 * MS,
        ),
        refresh(
            "short token, a Retry-After past 7 s",
            Some((4 * S, 8 * S)),
            outage(0),
            Some(5 * S),
            Step::Login,
            3 * S,
        ),
    ]);
    let p = Policy {
        refresh_ratio: 0.5,
        ..policy()
    };
    let t0 = Instant::now();
    let lease = Lease {
        obtained_at: t0,
        lifetime: 8 * S,
        session_start: t0,
        session_end: None,
        refreshable: true,
    };
    assert_eq!(refresh_fallback_point(&p, lease), t0 + 6 * S);
    assert_eq!(refresh_fallback_point(&policy(), lease), t0 + 7 * S);
    // A session that ends first moves the deadline earlier.
    let ending = Lease {
        session_end: Some(t0 + 6 * S),
        ..lease
    };
    // (A 6 s session keeps half of it as margin: its login point is at 3 s.)
    assert_eq!(refresh_deadline(&policy(), ending), t0 + 3 * S);
    assert_eq!(refresh_deadline(&policy(), lease), t0 + 7 * S);
}

#[test]
fn a_session_that_ends_is_renewed_by_a_login_before_it_does() {
    let t0 = Instant::now();
    // The margin before the session's end: a tenth of the session, at least
    // auth.timeout (10 s) and at least (1 - 0.75) of the token's lifetime,
    // at most half the session. (name, token lifetime, session length (all of it from t0),
    // expected step, at after t0)
    let cases: Vec<(&str, Duration, Option<Duration>, Step, Duration)> = vec![
        ("no session end: refresh", 3600 * S, None, Step::Refresh, 2700 * S),
        // 7 days: the login comes 16.8 h before the end.
        (
            "7-day session: refresh",
            3600 * S,
            Some(7 * 86400 * S),
            Step::Refresh,
            2700 * S,
        ),
        // 3 h: margin 18 min; the refresh at 45 min is well before.
        (
            "3 h session: refresh",
            3600 * S,
            Some(3 * 3600 * S),
            Step::Refresh,
            2700 * S,
        ),
        // 1 h 1 min: margin 15 min (the token's refresh window): login point
        // at 46 min, after the refresh at 45.
        (
            "61 min session: refresh",
            3600 * S,
            Some(3660 * S),
            Step::Refresh,
            2700 * S,
        ),
        // 1 h: login point at 45 min, the refresh point: a login.
        ("1 h session: login", 3600 * S, Some(3600 * S), Step::Login, 2700 * S),
        (
            "58 min session: login earlier",
            3600 * S,
            Some(3480 * S),
            Step::Login,
            2580 * S,
        ),
        // Never more than half the session.
        (
            "60 s session: login at half of it",
            3600 * S,
            Some(60 * S),
            Step::Login,
            30 * S,
        ),
        // #17.4: 2 s tokens, 6 s sessions — the login point at 3 s (3 s
        // before the end, not 0.5 s): a refresh at 1.5, then a login.
        ("2 s token, 6 s session", 2 * S, Some(6 * S), Step::Refresh, 1500 * MS),
        (
            "2 s token, 4.5 s session",
            2 * S,
            Some(4500 * MS),
            Step::Refresh,
            1500 * MS,
        ),
        ("2 s token, 3 s session", 2 * S, Some(3 * S), Step::Login, 1500 * MS),
        ("2 s token, 2 s session", 2 * S, Some(2 * S), Step::Login, S),
        (
            "3 s token, 3 s session (#18.1)",
            3 * S,
            Some(3 * S),
            Step::Login,
            1500 * MS,
        ),
    ];
    for (name, lifetime, end, step, at) in cases {
        let lease = Lease {
            obtained_at: t0,
            lifetime,
            session_start: t0,
            session_end: end.map(|e| t0 + e),
            refreshable: true,
        };
        let next = after_grant(&policy(), lease, 0.5);
        assert_eq!(next, Next { step, at: t0 + at }, "{name}");
    }
    // Later in a 6 s session (a token refreshed at 1.5 s): the login point
    // stays at 3 s from the session's start (it does not shrink with what
    // is left), so the refresh at 3 s becomes the login at 3 s.
    let lease = Lease {
        obtained_at: t0 + 1500 * MS,
        lifetime: 2 * S,
        session_start: t0,
        session_end: Some(t0 + 6 * S),
        refreshable: true,
    };
    let next = after_grant(&policy(), lease, 0.5);
    assert_eq!(
        next,
        Next {
            step: Step::Login,
            at: t0 + 3 * S
        }
    );
    // ... and a refresh due at 2.9 s whose wake-up comes late, after 3 s,
    // is sent as a login.
    assert_eq!(
        renewal_step(&policy(), Some(lease), true, t0 + 2900 * MS),
        Step::Refresh
    );
    assert_eq!(renewal_step(&policy(), Some(lease), true, t0 + 3100 * MS), Step::Login);
    // A long session keeps at least auth.timeout: 100 s → 10 s, not 2.5.
    let lease = Lease {
        obtained_at: t0,
        lifetime: 10 * S,
        session_start: t0,
        session_end: Some(t0 + 100 * S),
        refreshable: true,
    };
    assert_eq!(session_login_point(&policy(), lease), Some(t0 + 90 * S));
    // A session that ended before the token came (kept from an older
    // refresh token): the login is due at once.
    let lease = Lease {
        obtained_at: t0 + 10 * S,
        lifetime: 3600 * S,
        session_start: t0,
        session_end: Some(t0),
        refreshable: true,
    };
    let next = after_grant(&policy(), lease, 0.5);
    assert_eq!(next.step, Step::Login);
    assert!(next.at <= lease.obtained_at, "{:?}", next.at - t0);
    // No refresh token came with the grant: the renewal is a login, at the
    // refresh point.
    let lease = Lease {
        obtained_at: t0,
        lifetime: 3 * S,
        session_start: t0,
        session_end: None,
        refreshable: false,
    };
    assert_eq!(
        after_grant(&policy(), lease, 0.5),
        Next {
            step: Step::Login,
            at: t0 + 2250 * MS
        }
    );
}

#[test]
fn auth_calls_are_paced_whatever_lifetimes_the_api_states() {
    let t0 = Instant::now();
    let p = policy(); // one call per 5 s on average, bursts of 4
    let mut pace = Pace::default();
    let due = |at: Duration, step| Next { step, at: t0 + at };
    // Nothing spent: at once.
    assert_eq!(
        paced(&p, &pace, due(Duration::ZERO, Step::Login), 1),
        due(Duration::ZERO, Step::Login)
    );
    // (what, calls spent at t0 + offset, then a step of `calls` planned at
    // `planned` may start at `expected`) — applied in order to one pace.
    let steps: Vec<(&str, Duration, u32, Duration, u32, Duration)> = vec![
        (
            "a login, then a refresh planned at 0.75 s: in the burst",
            Duration::ZERO,
            1,
            750 * MS,
            1,
            750 * MS,
        ),
        ("a refresh at 0.75 s", 750 * MS, 1, 1500 * MS, 1, 1500 * MS),
        ("a refresh at 1.5 s", 1500 * MS, 1, 2250 * MS, 1, 2250 * MS),
        // Four calls spent: 20 s owed at 2.25 s; the next waits to 5 s.
        ("a refresh at 2.25 s: the burst is spent", 2250 * MS, 1, 3 * S, 1, 5 * S),
        ("then one per 5 s", 5 * S, 1, 5750 * MS, 1, 10 * S),
        ("and again", 10 * S, 1, 10750 * MS, 1, 15 * S),
        // A wallet login is two calls (and leaves room for two less in the
        // burst): then one login per 10 s.
        ("a wallet login at 15 s", 15 * S, 2, 16 * S, 2, 30 * S),
        ("the next one", 30 * S, 2, 31 * S, 2, 40 * S),
        // A renewal planned later than the pace asks keeps its time.
        (
            "a wallet login at 40 s, next planned at 1 h",
            40 * S,
            2,
            3600 * S,
            2,
            3600 * S,
        ),
    ];
    for (what, spent_at, spent, planned, calls, expected) in steps {
        pace.spend(&p, spent, t0 + spent_at);
        let next = paced(&p, &pace, due(planned, Step::Refresh), calls);
        assert_eq!(next.at - t0, expected, "{what}");
        assert_eq!(next.step, Step::Refresh, "{what}: the step is kept");
    }
    // After an hour idle the burst is back: a refused refresh and the
    // wallet login after it go at once.
    pace.spend(&p, 1, t0 + 3600 * S);
    assert_eq!(paced(&p, &pace, due(3600 * S, Step::Login), 2).at, t0 + 3600 * S);
    // Steady state, whatever the lifetime: a renewal asked for every 0.75 s
    // for ten minutes makes at most 12 calls a minute (+ the burst).
    for (calls, lifetime) in [(1, 750 * MS), (2, 750 * MS), (1, 4 * S), (2, 9 * S)] {
        let mut pace = Pace::default();
        let mut at = t0;
        let mut made = 0;
        while at < t0 + 600 * S {
            pace.spend(&p, calls, at);
            made += calls;
            at = paced(&p, &pace, due(at - t0 + lifetime, Step::Refresh), calls).at;
        }
        assert!(
            made <= 120 + PACE_BURST,
            "{calls} calls per {lifetime:?}: {made} in 10 min"
        );
        assert!(
            made >= 110,
            "{calls} calls per {lifetime:?}: {made} in 10 min, the pace is not slower than asked"
        );
    }
}

#[test]
fn no_refresh_is_tried_past_the_sessions_login_point() {
    let refresh = |name, held, session_left, before: Failures, next_step, after| Case {
        name,
        step: Step::Refresh,
        class: Class::Outage,
        before,
        retry_after: None,
        held,
        session_left,
        jitter: 1.0,
        next_step,
        after,
        failures: outage(before.outage + 1),
    };
    run(vec![
        // 3600 s token, 2700 s old; login point 900 s before the end.
        refresh(
            "retry well before the login point: refresh",
            Some((2700 * S, 3600 * S)),
            Some(86400 * S),
            outage(0),
            Step::Refresh,
            250 * MS,
        ),
        refresh(
            "retry after the login point: login at that point",
            Some((2700 * S, 3600 * S)),
            Some(910 * S),
            outage(6),
            Step::Login,
            10 * S,
        ),
        refresh(
            "login point passed: login now",
            Some((2700 * S, 3600 * S)),
            Some(800 * S),
            outage(0),
            Step::Login,
            Duration::ZERO,
        ),
    ]);
    // A 401 between: refresh while the session lasts, else log in.
    let now = Instant::now() + 3600 * S;
    let lease = |left: Option<Duration>| Lease {
        obtained_at: now - 100 * S,
        lifetime: 3600 * S,
        session_start: now - 100 * S,
        session_end: left.map(|l| now + l),
        refreshable: true,
    };
    let cases: Vec<(&str, Option<Lease>, bool, Step)> = vec![
        ("refresh token, no session end", Some(lease(None)), true, Step::Refresh),
        (
            "refresh token, session lasts",
            Some(lease(Some(86400 * S))),
            true,
            Step::Refresh,
        ),
        (
            "refresh token, session about to end",
            Some(lease(Some(10 * S))),
            true,
            Step::Login,
        ),
        ("no refresh token", Some(lease(None)), false, Step::Login),
        ("nothing held", None, false, Step::Login),
    ];
    for (name, lease, has_refresh, step) in cases {
        assert_eq!(renewal_step(&policy(), lease, has_refresh, now), step, "{name}");
    }
}

#[test]
fn client_triggered_reauthentication_is_single_flight_and_floored() {
    let t0 = Instant::now();
    let p = policy(); // reauth_min_interval 10 s
    let r = |stale, current| Rejection {
        stale,
        current,
        renewal_due: false,
    };
    // (what happens, 401 on generation `stale` while `current` is in the
    // cell, at t0 + offset, expected verdict) — applied in order to one
    // state; a granted renewal produces the next generation.
    let steps: Vec<(&str, Rejection, Duration, Verdict)> = vec![
        (
            "a revoked token: renew at once",
            r(1, 1),
            60 * S,
            Verdict::Renew { floor: 10 * S },
        ),
        (
            "a late 401 on the old token: the new one",
            r(1, 2),
            61 * S,
            Verdict::Newer,
        ),
        (
            "a renewal is due anyway: join it",
            Rejection {
                renewal_due: true,
                ..r(2, 2)
            },
            61 * S,
            Verdict::Join,
        ),
        (
            "the new token rejected within the floor: declined",
            r(2, 2),
            62 * S,
            Verdict::Decline { until: t0 + 70 * S },
        ),
        (
            "still within the floor: declined",
            r(2, 2),
            69 * S + 999 * MS,
            Verdict::Decline { until: t0 + 70 * S },
        ),
        (
            "after the floor: renewed, and the floor doubles",
            r(2, 2),
            70 * S,
            Verdict::Renew { floor: 20 * S },
        ),
        (
            "its fruit rejected too: declined for the doubled floor",
            r(3, 3),
            75 * S,
            Verdict::Decline { until: t0 + 90 * S },
        ),
        ("doubles again", r(3, 3), 90 * S, Verdict::Renew { floor: 40 * S }),
        // The scheduled refresh replaced the fruit (4 -> 5): the floor is
        // global, not per token.
        (
            "a scheduled token rejected within the floor: declined too",
            r(5, 5),
            100 * S,
            Verdict::Decline { until: t0 + 130 * S },
        ),
        ("doubles to 80 s", r(5, 5), 130 * S, Verdict::Renew { floor: 80 * S }),
        // Generation 6 survives its floor (no 401 until long after): back to
        // the configured floor.
        (
            "a token that survived its floor: reset",
            r(6, 6),
            900 * S,
            Verdict::Renew { floor: 10 * S },
        ),
        (
            "declined again within 10 s",
            r(7, 7),
            905 * S,
            Verdict::Decline { until: t0 + 910 * S },
        ),
    ];
    let mut state = Reauth::default();
    for (name, rejection, offset, verdict) in steps {
        assert_eq!(state.judge(&p, &rejection, t0 + offset), verdict, "{name}");
    }
}

#[test]
fn the_reauthentication_floor_is_capped() {
    let t0 = Instant::now();
    let p = policy();
    let mut state = Reauth::default();
    let mut now = t0;
    let mut floors = Vec::new();
    // An API that rejects every token: each new one is rejected at once
    // (declined), then again once the floor has passed (renewed).
    for generation in 1..=10 {
        let rejection = Rejection {
            stale: generation,
            current: generation,
            renewal_due: false,
        };
        match state.judge(&p, &rejection, now) {
            Verdict::Renew { floor } => {
                floors.push(floor.as_secs());
                let next = Rejection {
                    stale: generation + 1,
                    current: generation + 1,
                    renewal_due: false,
                };
                assert_eq!(
                    state.judge(&p, &next, now + S),
                    Verdict::Decline { until: now + floor },
                    "generation {generation}"
                );
                now += floor;
            }
            other => panic!("generation {generation}: {other:?}"),
        }
    }
    assert_eq!(floors, [10, 20, 40, 80, 160, 300, 300, 300, 300, 300]);
    // 10 renewals in ~28 minutes instead of one per 401.
    assert!(now - t0 > 1600 * S, "{:?}", now - t0);
    // A floor configured above the cap is kept, never lowered.
    let high = Policy {
        reauth_min_interval: 600 * S,
        ..p
    };
    let mut state = Reauth::default();
    let reject = |g| Rejection {
        stale: g,
        current: g,
        renewal_due: false,
    };
    assert_eq!(state.judge(&high, &reject(1), t0), Verdict::Renew { floor: 600 * S });
    assert!(matches!(
        state.judge(&high, &reject(2), t0 + S),
        Verdict::Decline { .. }
    ));
    assert_eq!(
        state.judge(&high, &reject(2), t0 + 600 * S),
        Verdict::Renew { floor: 600 * S }
    );
}

#[test]
fn backoff_grows_and_is_capped() {
    let cap = Duration::from_secs(30);
    assert_eq!(backoff(TRANSIENT_BASE, cap, 0, 1.0), Duration::from_millis(250));
    assert_eq!(backoff(TRANSIENT_BASE, cap, 0, 0.0), Duration::from_millis(125));
    assert_eq!(backoff(TRANSIENT_BASE, cap, 3, 1.0), Duration::from_secs(2));
    assert_eq!(backoff(TRANSIENT_BASE, cap, 30, 1.0), cap);
    assert_eq!(backoff(TRANSIENT_BASE, cap, 30, 0.0), cap / 2);
    // a refused password: at most a handful of attempts in the first minute
    let slow = Duration::from_secs(300);
    let mut t = Duration::ZERO;
    let mut attempts = 1;
    for n in 0.. {
        t += backoff(CREDENTIAL_BASE, slow, n, 0.0);
        if t > Duration::from_secs(60) {
            break;
        }
        attempts += 1;
    }
    assert!(attempts <= 5, "{attempts} attempts in a minute");
}

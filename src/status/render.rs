//! The human side of `ethgas-sidecar status`: the summary of a `/readyz`
//! answer as a person reads it (durations and times in words, colour on a
//! terminal only, nothing from the server that could drive the terminal).
//! Pure functions of the JSON and a `now`, unit-tested line by line in
//! `super::tests`.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use serde_json::Value;

/// Colour only on a terminal, and never when `NO_COLOR` is set (non-empty).
pub(super) fn use_colour(stdout_is_terminal: bool, no_color: Option<&OsStr>) -> bool {
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

/// The human summary of a `/readyz` answer from `unit` (`ethgas-sidecar` or an
/// instance) at `from` (an address), as of `now` (for "3 min ago").
pub(super) fn render(unit: &str, from: &str, ready: bool, summary: &Value, now: SystemTime, colour: bool) -> String {
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
    let _ = writeln!(out, "{unit} at {from}: {verdict}");
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
pub(super) fn span(seconds: f64) -> String {
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
pub(super) fn ago(now: SystemTime, then: SystemTime) -> String {
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

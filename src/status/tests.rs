use std::ffi::OsStr;

use super::render::{ago, span};
use super::*;
use serde_json::json;

fn at(rfc3339: &str) -> SystemTime {
    humantime::parse_rfc3339(rfc3339).unwrap()
}

const NOW: &str = "2025-06-01T12:00:00Z";

fn ready_summary() -> Value {
    json!({
        "ready": true,
        "state": "logged_in",
        "username": "alice",
        "token_expires_in_seconds": 2692.4,
        "next_refresh_in_seconds": 2020.0,
        "last_login": "2025-06-01T11:57:00Z",
        "last_refresh": null,
        "logins": 1,
        "refreshes": 0,
        "consecutive_failures": 0,
        "last_error": null,
        "last_error_at": null,
    })
}

#[test]
fn a_ready_sidecar_shows_every_line() {
    let out = render(
        "ethgas-sidecar",
        "127.0.0.1:9090",
        true,
        &ready_summary(),
        at(NOW),
        false,
    );
    let expected = "\
ethgas-sidecar at 127.0.0.1:9090: ready
  state                 logged_in
  account               alice
  token expires in      44 min 52 s
  next refresh in       33 min 40 s
  last login            3 min ago (2025-06-01T11:57:00Z)
  last refresh          never
  last error            none
  consecutive failures  0
";
    assert_eq!(out, expected);
}

#[test]
fn a_failing_sidecar_shows_state_error_and_failures() {
    let s = json!({
        "ready": false,
        "state": "credentials_rejected",
        "username": "alice",
        "token_expires_in_seconds": null,
        "next_refresh_in_seconds": 4.2,
        "last_login": null,
        "last_refresh": null,
        "consecutive_failures": 3,
        "last_error": "login for \"alice\" refused by the API (401): bad password",
        "last_error_at": "2025-06-01T11:59:48Z",
    });
    let out = render(
        "ethgas-sidecar",
        "unix:/run/ethgas-sidecar/admin.sock",
        false,
        &s,
        at(NOW),
        false,
    );
    let expected = "\
ethgas-sidecar at unix:/run/ethgas-sidecar/admin.sock: NOT READY
  state                 credentials_rejected
  account               alice
  token expires in      no valid token
  next login attempt in 4 s
  last login            never
  last refresh          never
  last error            login for \"alice\" refused by the API (401): bad password (12 s ago)
  consecutive failures  3
";
    assert_eq!(out, expected);
}

#[test]
fn a_wallet_account_shows_its_address() {
    let mut s = ready_summary();
    s["address"] = json!("0x00000000000000000000000000000000000000aa");
    let out = render("ethgas-sidecar", "x", true, &s, at(NOW), false);
    assert!(
        out.contains("  account               alice (0x00000000000000000000000000000000000000aa)\n"),
        "{out}"
    );
    s["username"] = Value::Null;
    let out = render("ethgas-sidecar", "x", true, &s, at(NOW), false);
    assert!(
        out.contains("  account               0x00000000000000000000000000000000000000aa\n"),
        "{out}"
    );
}

#[test]
fn missing_fields_do_not_break_the_summary() {
    let out = render(
        "ethgas-sidecar",
        "x",
        false,
        &json!({"state": "logging_in"}),
        at(NOW),
        false,
    );
    assert!(out.contains("account               unknown"), "{out}");
    assert!(out.contains("next login attempt in not scheduled"), "{out}");
    assert!(out.contains("consecutive failures  0"), "{out}");
}

#[test]
fn colour_marks_the_verdict_and_the_error_only_when_asked() {
    let s = json!({"state": "login_failing", "last_error": "boom", "consecutive_failures": 2});
    let plain = render("ethgas-sidecar", "x", false, &s, at(NOW), false);
    assert!(!plain.contains('\x1b'), "{plain:?}");
    let coloured = render("ethgas-sidecar", "x", false, &s, at(NOW), true);
    assert!(coloured.contains("\x1b[1;31mNOT READY\x1b[0m"), "{coloured:?}");
    assert!(coloured.contains("\x1b[31mboom\x1b[0m"), "{coloured:?}");
    let ready = render("ethgas-sidecar", "x", true, &ready_summary(), at(NOW), true);
    assert!(ready.contains("\x1b[1;32mready\x1b[0m"), "{ready:?}");
}

#[test]
fn text_from_the_server_cannot_drive_the_terminal() {
    let s = json!({"state": "login_failing", "last_error": "API said \u{1b}[2J\u{1b}]0;pwned\u{7}\nok"});
    let out = render("ethgas-sidecar", "x", false, &s, at(NOW), false);
    assert!(!out.contains('\x1b') && !out.contains('\x07'), "{out:?}");
    assert_eq!(out.lines().count(), 9, "the error stays on one line: {out}");
}

#[test]
fn colour_follows_the_terminal_and_no_color() {
    assert!(use_colour(true, None));
    assert!(!use_colour(false, None));
    assert!(!use_colour(true, Some(OsStr::new("1"))));
    // NO_COLOR set but empty does not count (no-color.org).
    assert!(use_colour(true, Some(OsStr::new(""))));
}

#[test]
fn spans_use_two_units_at_most() {
    assert_eq!(span(0.0), "0 s");
    assert_eq!(span(0.4), "0 s");
    assert_eq!(span(-3.0), "0 s");
    assert_eq!(span(f64::NAN), "0 s");
    assert_eq!(span(59.6), "1 min 0 s");
    assert_eq!(span(2692.4), "44 min 52 s");
    assert_eq!(span(3900.0), "1 h 5 min");
    assert_eq!(span(2.0 * 86_400.0 + 3.0 * 3600.0 + 59.0), "2 d 3 h");
}

#[test]
fn ago_reads_like_a_person_says_it() {
    let now = at(NOW);
    assert_eq!(ago(now, now), "just now");
    assert_eq!(ago(now, at("2025-06-01T11:59:15Z")), "45 s ago");
    assert_eq!(ago(now, at("2025-06-01T11:57:00Z")), "3 min ago");
    assert_eq!(ago(now, at("2025-06-01T09:55:00Z")), "2 h 5 min ago");
    assert_eq!(ago(now, at("2025-05-29T08:00:00Z")), "3 d 4 h ago");
    // A second of skew is noise; more is worth saying.
    assert_eq!(ago(now, at("2025-06-01T12:00:01Z")), "just now");
    assert_eq!(
        ago(now, at("2025-06-01T12:05:00Z")),
        "5 min 0 s ahead of this host's clock"
    );
}

#[test]
fn the_summary_is_found_in_the_envelope_or_bare() {
    let env = br#"{"code":200,"message":"ready","data":{"state":"logged_in","username":"alice"}}"#;
    assert_eq!(summary(env).unwrap()["username"], "alice");
    let wallet = br#"{"success":true,"data":{"state":"logged_in","address":"0xaa"}}"#;
    assert_eq!(summary(wallet).unwrap()["address"], "0xaa");
    let bare = br#"{"state":"logging_in"}"#;
    assert_eq!(summary(bare).unwrap()["state"], "logging_in");
    // What the API behind a proxy listener, or some other server, might say.
    assert!(summary(br#"{"code":404,"message":"not found","data":null}"#).is_none());
    assert!(summary(b"<html>").is_none());
}

#[test]
fn addresses_the_command_line_and_the_config_may_give() {
    assert_eq!(parse_target("127.0.0.1:9090"), Ok(Target::Tcp("127.0.0.1:9090".into())));
    assert_eq!(
        parse_target(" http://127.0.0.1:9090/ "),
        Ok(Target::Tcp("127.0.0.1:9090".into()))
    );
    assert_eq!(parse_target("[::1]:9090"), Ok(Target::Tcp("[::1]:9090".into())));
    assert_eq!(parse_target("localhost:9090"), Ok(Target::Tcp("localhost:9090".into())));
    // A wildcard listener is asked on loopback.
    assert_eq!(parse_target("0.0.0.0:9090"), Ok(Target::Tcp("127.0.0.1:9090".into())));
    assert_eq!(parse_target("[::]:9090"), Ok(Target::Tcp("[::1]:9090".into())));
    assert_eq!(
        parse_target("unix:/run/ethgas-sidecar/admin.sock"),
        Ok(Target::Unix(PathBuf::from("/run/ethgas-sidecar/admin.sock")))
    );
    assert!(parse_target("unix:admin.sock").unwrap_err().contains("absolute path"));
    assert!(parse_target("127.0.0.1:0").unwrap_err().contains("--admin"));
    for bad in ["", "9090", "127.0.0.1", "host:", ":9090", "host:99999", "a b:1"] {
        assert!(parse_target(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn only_admin_listen_is_read_from_the_config() {
    // The password source need not exist, other sections are not checked.
    let text = "[auth]\nusername = \"alice\"\npassword_file = \"/nonexistent/password\"\n\n[admin]\nlisten = \"unix:/run/a.sock\"\n";
    assert_eq!(admin_listen(text), Ok(Some(Listen::Unix("/run/a.sock".into()))));
    assert_eq!(
        admin_listen("[proxy]\nlisten = \"127.0.0.1:8080\"\nno_such_key = 1\n"),
        Ok(None)
    );
    assert_eq!(admin_listen(""), Ok(None));
    // A wrong type is named by its key, and its value is not shown.
    let e = admin_listen("[admin]\nlisten = 9090\n").unwrap_err();
    assert!(e.contains("admin.listen") && !e.contains("9090"), "{e}");
    // Inside [admin] the loader's rules hold: an unknown key is named.
    let e = admin_listen("[admin]\nlisten = \"127.0.0.1:9090\"\nlistne = \"x\"\n").unwrap_err();
    assert!(e.contains("listne"), "{e}");
    let e = admin_listen("[admin]\nlisten = \"localhost:9090\"\n").unwrap_err();
    assert!(e.contains("admin.listen") && e.contains("IP:PORT"), "{e}");
    assert!(admin_listen("[admin\n").is_err());
}

/// The main unit's sidecar, with its config at `file`.
fn main(file: &Path) -> Which {
    which(file, None).unwrap()
}

#[test]
fn the_address_comes_from_admin_then_the_file_then_the_default() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    std::fs::write(&file, "[admin]\nlisten = \"127.0.0.1:9191\"\n").unwrap();
    let (t, origin) = resolve(&main(&file), None).unwrap();
    assert_eq!(t, Target::Tcp("127.0.0.1:9191".into()));
    assert!(origin.contains("admin.listen in"), "{origin}");
    let (t, origin) = resolve(&main(&file), Some("127.0.0.1:9292")).unwrap();
    assert_eq!((t, origin.as_str()), (Target::Tcp("127.0.0.1:9292".into()), "--admin"));
    let (t, _) = resolve(&main(&dir.path().join("missing.toml")), None).unwrap();
    assert_eq!(t, Target::Tcp(DEFAULT_ADMIN.into()));
    std::fs::write(&file, "[admin]\nlisten = \"nonsense\"\n").unwrap();
    let e = resolve(&main(&file), None).unwrap_err();
    assert!(e.contains("admin.listen") && e.contains("config.toml"), "{e}");
}

#[test]
fn the_help_for_no_answer_says_what_to_check() {
    let refused = FetchError::Connect(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
    let out = unreachable_help(
        "ethgas-sidecar",
        &Target::Tcp("127.0.0.1:9090".into()),
        "--admin",
        &refused,
    );
    assert!(out.contains("127.0.0.1:9090"), "{out}");
    assert!(out.contains("systemctl status ethgas-sidecar"), "{out}");
    assert!(out.contains("journalctl -u ethgas-sidecar"), "{out}");
    let denied = FetchError::Connect(std::io::Error::from(std::io::ErrorKind::PermissionDenied));
    let out = unreachable_help(
        "ethgas-sidecar",
        &Target::Unix("/run/a.sock".into()),
        "--admin",
        &denied,
    );
    assert!(out.contains("run as root"), "{out}");
}

#[test]
fn an_instance_name_picks_its_config_and_its_unit() {
    let default = Path::new(crate::config::DEFAULT_CONFIG_PATH);
    let hoodi = Which {
        config: PathBuf::from("/etc/ethgas-sidecar/hoodi.toml"),
        unit: "ethgas-sidecar@hoodi".into(),
        instance: true,
    };
    for given in [
        "hoodi",
        " hoodi ",
        "ethgas-sidecar@hoodi",
        "ethgas-sidecar@hoodi.service",
    ] {
        assert_eq!(which(default, Some(given)), Ok(hoodi.clone()), "{given:?}");
    }
    // --config is not consulted for an instance (clap refuses both anyway).
    assert_eq!(which(Path::new("/tmp/x.toml"), Some("hoodi")), Ok(hoodi));
    assert_eq!(
        which(default, Some("main-net_2")).unwrap().config,
        PathBuf::from("/etc/ethgas-sidecar/main-net_2.toml")
    );
    // Never a path outside /etc/ethgas-sidecar, nor a hidden file.
    for bad in ["", "../../tmp/x", "a/b", ".hidden", "..", "a b", "ethgas-sidecar@"] {
        let e = which(default, Some(bad)).unwrap_err();
        assert!(
            e.contains("--instance") && e.contains("ethgas-sidecar@NAME"),
            "{bad:?}: {e}"
        );
    }
    let plain = which(Path::new("/srv/sidecar.toml"), None).unwrap();
    assert_eq!(plain.config, PathBuf::from("/srv/sidecar.toml"));
    assert_eq!((plain.unit.as_str(), plain.instance), ("ethgas-sidecar", false));
}

#[test]
fn an_instance_is_asked_where_its_own_config_says_never_at_the_default() {
    let dir = tempfile::tempdir().unwrap();
    let instance = |file: &str| Which {
        config: dir.path().join(file),
        unit: "ethgas-sidecar@hoodi".into(),
        instance: true,
    };
    std::fs::write(dir.path().join("hoodi.toml"), "[admin]\nlisten = \"127.0.0.1:9191\"\n").unwrap();
    let (t, origin) = resolve(&instance("hoodi.toml"), None).unwrap();
    assert_eq!(t, Target::Tcp("127.0.0.1:9191".into()));
    assert!(origin.contains("hoodi.toml"), "{origin}");
    // A missing instance config is an error naming it, not a question put to
    // the default address (where the main sidecar may well answer).
    let e = resolve(&instance("nosuch.toml"), None).unwrap_err();
    assert!(
        e.contains("nosuch.toml") && e.contains("ethgas-sidecar@hoodi.service"),
        "{e}"
    );
    // --admin still wins, without reading anything.
    let (t, _) = resolve(&instance("nosuch.toml"), Some("127.0.0.1:9292")).unwrap();
    assert_eq!(t, Target::Tcp("127.0.0.1:9292".into()));
}

#[test]
fn an_instance_is_named_in_the_summary_and_in_the_hints() {
    let out = render(
        "ethgas-sidecar@hoodi",
        "127.0.0.1:9091",
        true,
        &ready_summary(),
        at(NOW),
        false,
    );
    assert_eq!(
        out.lines().next(),
        Some("ethgas-sidecar@hoodi at 127.0.0.1:9091: ready")
    );
    let refused = FetchError::Connect(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
    let target = Target::Tcp("127.0.0.1:9091".into());
    let out = unreachable_help("ethgas-sidecar@hoodi", &target, "--admin", &refused);
    assert!(out.contains("systemctl status ethgas-sidecar@hoodi\n"), "{out}");
    assert!(out.contains("journalctl -u ethgas-sidecar@hoodi -n 50"), "{out}");
    assert!(!out.contains("--instance NAME"), "{out}");
    // The main unit's hints point at the instances too.
    let out = unreachable_help("ethgas-sidecar", &target, "--admin", &refused);
    assert!(out.contains("systemctl status ethgas-sidecar\n"), "{out}");
    assert!(out.contains("ethgas-sidecar status --instance NAME"), "{out}");
}

//! Unit tests of `config`.

use super::*;

fn minimal(dir: &Path) -> String {
    let pw = dir.join("pw");
    std::fs::write(&pw, "s3cret\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    format!(
        "[upstream]\nbase_url = \"https://api.ethgas.com\"\n[auth]\nusername = \"alice\"\npassword_file = {:?}\n",
        pw.display().to_string()
    )
}

#[test]
fn minimal_config_gets_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config::from_toml(&minimal(dir.path()), &dir.path().join("c.toml")).unwrap();
    assert_eq!(cfg.restart.proxy.listen, Listen::Tcp("127.0.0.1:8080".parse().unwrap()));
    assert_eq!(cfg.restart.admin.listen, Listen::Tcp("127.0.0.1:9090".parse().unwrap()));
    assert_eq!(
        cfg.live.auth.password().unwrap().expose(),
        "s3cret",
        "trailing newline trimmed"
    );
    assert_eq!(cfg.live.auth.refresh_ratio, 0.75);
    assert_eq!(cfg.restart.upstream.websocket_url.to_string(), "wss://ws.ethgas.com/");
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    let shown = cfg.render_redacted();
    assert!(!shown.contains("s3cret"));
    assert!(shown.contains("<redacted>"));
}

#[test]
fn derived_websocket_of_a_local_origin() {
    let dir = tempfile::tempdir().unwrap();
    let text = minimal(dir.path()).replace("https://api.ethgas.com", "http://127.0.0.1:7000/");
    let cfg = Config::from_toml(&text, &dir.path().join("c.toml")).unwrap();
    assert_eq!(cfg.restart.upstream.base_url.path, "");
    assert_eq!(
        cfg.restart.upstream.base_url.origin.to_string(),
        "http://127.0.0.1:7000/"
    );
    assert_eq!(cfg.restart.upstream.websocket_url.to_string(), "ws://127.0.0.1:7000/");
}

#[test]
fn a_base_url_with_a_path_is_refused_naming_the_origin_to_write() {
    let dir = tempfile::tempdir().unwrap();
    for base in ["https://mainnet.app.ethgas.com/api/v1", "http://127.0.0.1:7000/prefix/"] {
        let text = minimal(dir.path()).replace("https://api.ethgas.com", base);
        let err = Config::from_toml(&text, &dir.path().join("c.toml"))
            .err()
            .unwrap_or_else(|| panic!("{base} accepted"))
            .to_string();
        let origin = base.split('/').take(3).collect::<Vec<_>>().join("/");
        assert!(
            err.contains("upstream.base_url") && err.contains("has a path") && err.contains(&format!("{origin:?}")),
            "{err}"
        );
    }
}

#[test]
fn relative_password_file_is_taken_from_config_dir() {
    let dir = tempfile::tempdir().unwrap();
    let text = minimal(dir.path()).replace(&dir.path().join("pw").display().to_string(), "pw");
    let cfg = Config::from_toml(&text, &dir.path().join("c.toml")).unwrap();
    assert_eq!(cfg.live.auth.password().unwrap().expose(), "s3cret");
}

#[test]
fn two_password_sources_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let text = minimal(dir.path()) + "password_env = \"X\"\n";
    let err = Config::from_toml(&text, &dir.path().join("c.toml"))
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("more than one password source"), "{err}");
}

#[test]
fn durations_are_parsed_and_bad_ones_named() {
    let dir = tempfile::tempdir().unwrap();
    let text = minimal(dir.path()).replace("[auth]", "connect_timeout = \"250ms\"\n[auth]");
    let cfg = Config::from_toml(&text, &dir.path().join("c.toml")).unwrap();
    assert_eq!(cfg.restart.upstream.connect_timeout, Duration::from_millis(250));
    let text = minimal(dir.path()).replace("[auth]", "connect_timeout = \"soon\"\n[auth]");
    let err = Config::from_toml(&text, &dir.path().join("c.toml"))
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("upstream.connect_timeout"), "{err}");
}

#[test]
fn a_password_file_others_can_read_is_refused_naming_the_chmod() {
    let dir = tempfile::tempdir().unwrap();
    let text = minimal(dir.path());
    use std::os::unix::fs::PermissionsExt;
    for mode in [0o644, 0o640, 0o604] {
        std::fs::set_permissions(dir.path().join("pw"), std::fs::Permissions::from_mode(mode)).unwrap();
        let err = Config::from_toml(&text, &dir.path().join("c.toml"))
            .err()
            .expect("refused")
            .to_string();
        assert!(err.contains("auth.password_file") && err.contains("chmod 600"), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
    }
}

#[test]
fn a_config_file_anyone_can_change_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, minimal(dir.path())).unwrap();
    assert!(Config::load(&path).is_ok());
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let err = Config::load(&path).err().expect("refused").to_string();
    assert!(err.contains("chmod o-w"), "{err}");
}

#[test]
fn a_unix_socket_everyone_can_open_is_refused_and_a_public_admin_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let text = "[proxy]\nlisten = \"unix:/run/x.sock\"\nunix_mode = \"0777\"\n".to_string() + &minimal(dir.path());
    let err = Config::from_toml(&text, &dir.path().join("c.toml"))
        .err()
        .expect("refused")
        .to_string();
    assert!(
        err.contains("proxy.unix_mode") && err.contains("every local user"),
        "{err}"
    );
    let text = "[admin]\nlisten = \"0.0.0.0:9090\"\n".to_string() + &minimal(dir.path());
    let cfg = Config::from_toml(&text, &dir.path().join("c.toml")).unwrap();
    assert!(
        cfg.warnings.iter().any(|w| w.contains("NOT a loopback")),
        "{:?}",
        cfg.warnings
    );
}

#[test]
fn a_password_file_that_never_ends_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let text =
        "[upstream]\nbase_url = \"https://api.ethgas.com\"\n[auth]\nusername = \"a\"\npassword_file = \"/dev/zero\"\n";
    let err = Config::from_toml(text, &dir.path().join("c.toml"))
        .err()
        .expect("refused")
        .to_string();
    assert!(
        err.contains("auth.password_file") && err.contains("device") && err.contains("regular file"),
        "{err}"
    );
}

#[test]
fn unix_listen_and_mode() {
    let dir = tempfile::tempdir().unwrap();
    let text = "[proxy]\nlisten = \"unix:/run/x.sock\"\nunix_mode = \"0600\"\n".to_string() + &minimal(dir.path());
    let cfg = Config::from_toml(&text, &dir.path().join("c.toml")).unwrap();
    assert_eq!(cfg.restart.proxy.listen, Listen::Unix("/run/x.sock".into()));
    assert_eq!(cfg.restart.proxy.unix_mode, 0o600);
}

#[test]
fn what_needs_a_restart_is_computed_from_the_data_and_named_by_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    let base = minimal(dir.path());
    let old = Config::from_toml(&base, &path).unwrap();
    let cases: [(&str, &[&str]); 5] = [
        ("[proxy]\ntoken_wait = \"9s\"\nhost_aliases = [\"x.example\"]\n", &[]),
        ("[proxy]\nmax_header_bytes = 65536\n", &["proxy.max_header_bytes"]),
        (
            "[proxy]\nlisten = \"127.0.0.1:1\"\nworker_threads = 3\n",
            &["proxy.listen", "proxy.worker_threads"],
        ),
        ("[log]\nformat = \"json\"\nlevel = \"debug\"\n", &["log.format"]),
        ("[admin]\nlisten = \"127.0.0.1:9\"\n", &["admin.listen"]),
    ];
    for (extra, expected) in cases {
        let new = Config::from_toml(&format!("{extra}{base}"), &path).unwrap();
        assert_eq!(old.restart_differences(&new), expected.to_vec(), "{extra}");
    }
    let moved = base.replace("https://api.ethgas.com", "https://testnet-api.ethgas.com");
    let new = Config::from_toml(&moved, &path).unwrap();
    assert_eq!(
        old.restart_differences(&new),
        ["upstream.base_url", "upstream.websocket_url"],
        "the derived WebSocket URL moves with the base URL"
    );
}

#[test]
fn the_rendered_config_is_the_file_layout_and_loads_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    let cfg = Config::from_toml(&minimal(dir.path()), &path).unwrap();
    let shown = cfg.render_redacted();
    let sections: Vec<&str> = shown.lines().filter(|l| l.starts_with('[')).collect();
    assert_eq!(
        sections,
        [
            "[proxy]",
            "[policy]",
            "[upstream]",
            "[auth]",
            "[admin]",
            "[audit]",
            "[log]"
        ],
        "{shown}"
    );
    assert!(shown.contains("token_wait = \"5s\""), "{shown}");
    assert!(shown.contains("unix_mode = \"0660\""), "{shown}");
    assert!(shown.contains("password_file = "), "{shown}");
    // What check-config prints is itself a valid configuration.
    let again = Config::from_toml(&shown, &path).unwrap();
    assert!(again.restart == cfg.restart && again.live == cfg.live, "{shown}");
}

#[test]
fn the_live_hosts_get_their_own_websocket_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    for (base, ws) in [
        ("https://mainnet.app.ethgas.com", "wss://mainnet.app.ethgas.com/ws"),
        ("https://hoodi.app.ethgas.com", "wss://hoodi.app.ethgas.com/ws"),
        ("https://api.ethgas.com", "wss://ws.ethgas.com/"),
    ] {
        let text = minimal(dir.path()).replace("https://api.ethgas.com", base);
        let cfg = Config::from_toml(&text, &dir.path().join("c.toml")).unwrap();
        assert_eq!(cfg.restart.upstream.websocket_url.to_string(), ws);
    }
}

#[test]
fn public_prefixes_default_to_the_market_data_and_may_be_emptied() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    let cfg = Config::from_toml(&minimal(dir.path()), &path).unwrap();
    assert_eq!(cfg.live.proxy.public_prefixes, ["/api/v1/p/"]);
    assert!(
        cfg.render_redacted().contains("public_prefixes = [\"/api/v1/p/\"]"),
        "check-config shows it"
    );
    for (list, want) in [
        ("[]", vec![]),
        (
            "[\"/api/v1/p/\", \"/api/v2/public-data/\"]",
            vec!["/api/v1/p/", "/api/v2/public-data/"],
        ),
    ] {
        let text = format!("[proxy]\npublic_prefixes = {list}\n{}", minimal(dir.path()));
        let cfg = Config::from_toml(&text, &path).unwrap();
        assert_eq!(cfg.live.proxy.public_prefixes, want, "{list}");
    }
}

#[test]
fn public_prefixes_that_a_look_alike_could_abuse_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    let cases = [
        ("api/v1/p/", "start and end with '/'"),
        ("/api/v1/p", "start and end with '/'"),
        ("/", "every path"),
        ("/api/v1/p/../user/", "\"..\""),
        ("/api/v1/%70/", "\"%\""),
        ("/api/v1/p;x/", "\";\""),
        ("/api/v1/p?x=/", "\"?\""),
        ("/api/v1/p#x/", "\"#\""),
        ("/api//v1/p/", "\"//\""),
        ("/api\\\\v1/p/", "\"\\\\\""),
        ("/api/v1/p q/", "spaces"),
        ("/API/V1/P/", "lower-case"),
        ("/api/./v1/p/", "`.` segments"),
    ];
    for (prefix, why) in cases {
        let text = format!("[proxy]\npublic_prefixes = [\"{prefix}\"]\n{}", minimal(dir.path()));
        let err = Config::from_toml(&text, &path).err().expect(prefix).to_string();
        assert!(err.contains("proxy.public_prefixes"), "{prefix}: {err}");
        assert!(err.contains(why), "{prefix}: expected {why:?} in: {err}");
    }
}

/// The field names of a serde struct, as its derived `Deserialize` declares
/// them: the struct is asked to deserialize from a deserializer that only
/// records the names it is offered.
fn fields_of<'de, T: serde::Deserialize<'de>>() -> Vec<&'static str> {
    struct Names(std::cell::RefCell<Vec<&'static str>>);
    #[derive(Debug)]
    struct Stop;
    impl std::fmt::Display for Stop {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("stop")
        }
    }
    impl std::error::Error for Stop {}
    impl serde::de::Error for Stop {
        fn custom<M: std::fmt::Display>(_: M) -> Self {
            Stop
        }
    }
    impl<'de> serde::Deserializer<'de> for &Names {
        type Error = Stop;
        fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
            Err(Stop)
        }
        fn deserialize_struct<V: serde::de::Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Stop> {
            self.0.borrow_mut().extend_from_slice(fields);
            Err(Stop)
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 u8 u16 u32 u64 f32 f64 char str string bytes byte_buf option
            unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
        }
    }
    let names = Names(Default::default());
    let _ = T::deserialize(&names);
    names.0.into_inner()
}

#[test]
fn the_example_shows_every_key_the_file_accepts() {
    use super::raw::*;
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml.example")).unwrap();
    let sections = [
        ("proxy", fields_of::<RawProxy>()),
        ("upstream", fields_of::<RawUpstream>()),
        ("auth", fields_of::<RawAuth>()),
        ("admin", fields_of::<RawAdmin>()),
        ("log", fields_of::<RawLog>()),
        ("listeners", fields_of::<RawListener>()),
        // A table of listener names: the example names the main one.
        ("policy", vec!["proxy"]),
        ("audit", fields_of::<RawAudit>()),
    ];
    let top = fields_of::<RawConfig>();
    assert_eq!(
        top,
        sections.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        "every section is listed here"
    );
    // The keys each section of the example shows, set or commented out
    // (`key = …`, `# key = …`, `## key = …`, or indented after `##`).
    let mut shown: Vec<(String, String)> = Vec::new();
    let mut section = String::new();
    for line in text.lines() {
        // A section header, set or commented out (`[proxy]`, `# [[listeners]]`).
        let bare = line.trim_start_matches('#').trim_start();
        let header = bare.trim_start_matches('[').trim_end_matches(']');
        if bare.starts_with('[') && !header.is_empty() && header.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
            section = header.to_string();
            continue;
        }
        if let Some((key, _)) = bare.split_once(" = ") {
            if !key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            {
                shown.push((section.clone(), key.to_string()));
            }
        }
    }
    let mut missing = Vec::new();
    for (section, keys) in &sections {
        assert!(!keys.is_empty(), "{section}: fields were read");
        for key in keys {
            if !shown.iter().any(|(s, k)| s == section && k == key) {
                missing.push(format!("{section}.{key}"));
            }
        }
    }
    assert!(missing.is_empty(), "config.toml.example does not show: {missing:?}");
}

#[test]
fn http2_is_offered_unless_turned_off_and_a_pointless_false_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    let cfg = Config::from_toml(&minimal(dir.path()), &path).unwrap();
    assert!(cfg.restart.upstream.http2, "HTTP/2 offered by default");
    assert!(cfg.render_redacted().contains("http2 = true"));
    let text = minimal(dir.path()).replace("[auth]", "http2 = false\n[auth]");
    let cfg = Config::from_toml(&text, &path).unwrap();
    assert!(!cfg.restart.upstream.http2);
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    // Over http:// nothing offers HTTP/2 anyway: say the setting does nothing.
    let text = text.replace("https://api.ethgas.com", "http://127.0.0.1:9");
    let cfg = Config::from_toml(&text, &path).unwrap();
    assert!(
        cfg.warnings
            .iter()
            .any(|w| w.contains("upstream.http2 = false has no effect")),
        "{:?}",
        cfg.warnings
    );
    let text = minimal(dir.path()).replace("[auth]", "http2 = \"no\"\n[auth]");
    let err = Config::from_toml(&text, &path).err().expect("refused").to_string();
    assert!(err.contains("http2"), "{err}");
}

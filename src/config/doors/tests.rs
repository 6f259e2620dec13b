//! `[[listeners]]`, `[policy]` and `[audit]` as an operator writes them.

use std::path::Path;

use crate::audit::Output;
use crate::config::{Config, ConfigError, Listen};
use crate::policy::Class;

fn with(dir: &Path, extra: &str) -> Result<Config, ConfigError> {
    let pw = dir.join("pw");
    std::fs::write(&pw, "s3cret\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let text = format!(
        "[upstream]\nbase_url = \"https://mainnet.app.ethgas.com\"\n[auth]\nusername = \"alice\"\npassword_file = {:?}\n{extra}",
        pw.display().to_string()
    );
    Config::from_toml(&text, &dir.join("c.toml"))
}

fn error(dir: &Path, extra: &str) -> String {
    match with(dir, extra) {
        Ok(_) => panic!("accepted: {extra}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn by_default_one_listener_may_do_everything_but_move_money() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = with(dir.path(), "").unwrap();
    assert!(cfg.restart.listeners.is_empty());
    assert_eq!(cfg.restart.audit.output, Output::Auto);
    for class in Class::ALL {
        assert_eq!(cfg.live.policy.allows(0, class), class != Class::Funds, "{class}");
    }
    assert_eq!(cfg.live.policy.name(0), "proxy");
}

#[test]
fn two_listeners_with_their_own_policies_render_and_load_again() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = with(
        dir.path(),
        r#"
[[listeners]]
name = "dashboards"
listen = "127.0.0.1:8081"

[[listeners]]
name = "bot"
listen = "unix:/run/ethgas-sidecar/bot.sock"
unix_mode = "0600"

[policy]
dashboards = ["public", "read"]
bot = ["read", "trade", "public", "trade"]

[audit]
output = "/var/log/ethgas-sidecar/audit.jsonl"
"#,
    )
    .unwrap();
    let doors = &cfg.restart.listeners;
    assert_eq!(doors.len(), 2);
    assert_eq!(doors[0].listen, Listen::Tcp("127.0.0.1:8081".parse().unwrap()));
    assert_eq!(doors[1].unix_mode, 0o600);
    let p = &cfg.live.policy;
    assert_eq!((p.name(1), p.name(2)), ("dashboards", "bot"));
    assert!(p.allows(1, Class::Read) && !p.allows(1, Class::Trade) && !p.allows(1, Class::Unclassified));
    assert!(p.allows(2, Class::Trade) && !p.allows(2, Class::Settings));
    assert!(
        p.allows(0, Class::Settings) && !p.allows(0, Class::Funds),
        "proxy keeps the default"
    );

    let shown = cfg.render_redacted();
    assert!(shown.contains("[[listeners]]"), "{shown}");
    assert!(shown.contains("dashboards = [\"public\", \"read\"]"), "{shown}");
    // What check-config prints loads again, to the same configuration.
    let again = Config::from_toml(&shown, &dir.path().join("c.toml")).unwrap();
    assert_eq!(again.live.policy, cfg.live.policy);
    assert_eq!(again.restart.listeners, cfg.restart.listeners);
    assert_eq!(again.restart.audit, cfg.restart.audit);
}

#[test]
fn mistakes_name_the_key_that_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cases = [
        (
            "[policy]\nproxy = [\"withdraw\"]\n",
            "policy.proxy",
            "public, read, trade, settings, funds, unclassified",
        ),
        ("[policy]\nbots = [\"read\"]\n", "policy.bots", "no listener"),
        (
            "[[listeners]]\nlisten = \"127.0.0.1:8081\"\n",
            "listeners[0].name",
            "missing",
        ),
        (
            "[[listeners]]\nname = \"Bot 1\"\nlisten = \"127.0.0.1:8081\"\n",
            "listeners[0].name",
            "a-z",
        ),
        (
            "[[listeners]]\nname = \"proxy\"\nlisten = \"127.0.0.1:8081\"\n",
            "listeners[0].name",
            "taken",
        ),
        (
            "[[listeners]]\nname = \"a\"\nlisten = \"127.0.0.1:8081\"\n[[listeners]]\nname = \"a\"\nlisten = \"127.0.0.1:8082\"\n",
            "listeners[1].name",
            "taken",
        ),
        (
            "[[listeners]]\nname = \"a\"\nlisten = \"127.0.0.1:8080\"\n",
            "listeners[0].listen",
            "already proxy.listen",
        ),
        (
            "[[listeners]]\nname = \"a\"\nlisten = \"unix:/x.sock\"\nunix_mode = \"0666\"\n",
            "listeners[0].unix_mode",
            "every local user",
        ),
        ("[audit]\noutput = \"audit.log\"\n", "audit.output", "absolute"),
        ("[audit]\nfile = \"/x\"\n", "`file`", "unknown field"),
    ];
    for (extra, key, says) in cases {
        let e = error(d, extra);
        assert!(e.contains(key) && e.contains(says), "{extra}: {e}");
    }
}

#[test]
fn a_policy_change_is_live_and_a_new_listener_needs_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let old = with(dir.path(), "").unwrap();
    let tighter = with(dir.path(), "[policy]\nproxy = [\"public\", \"read\"]\n").unwrap();
    assert!(old.restart_differences(&tighter).is_empty());
    assert!(old.live != tighter.live);
    let more = with(dir.path(), "[[listeners]]\nname = \"d\"\nlisten = \"127.0.0.1:8081\"\n").unwrap();
    assert_eq!(old.restart_differences(&more), vec!["listeners".to_string()]);
}

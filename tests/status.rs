//! `ethgas-sidecar status`, the real binary, against sidecars running in this
//! process: a ready one, one whose password the API refuses, one on a unix
//! admin socket, an instance of the template unit named with `--instance`,
//! and an address where nothing listens. Checks the exit status a script
//! relies on and the lines an operator reads.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use ethgas_sidecar::app::{self, Control, Listeners};
use ethgas_sidecar::config::Config;
use ethgas_sidecar::server::Listener;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `ethgas-sidecar status ARGS` without blocking the runtime that
/// serves the sidecar under test.
async fn status(args: &[&str]) -> Run {
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new(binary())
            .arg("status")
            .args(args)
            .env_remove("NO_COLOR")
            .stdin(std::process::Stdio::null())
            .output(),
    )
    .await
    .expect("status finishes within 30 s")
    .expect("the binary runs");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// The value shown on the line labelled `label`.
fn field<'a>(out: &'a str, label: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.trim_start().strip_prefix(label).filter(|rest| rest.starts_with(' ')))
        .unwrap_or_else(|| panic!("no line {label:?} in:\n{out}"))
        .trim()
}

#[tokio::test]
async fn a_ready_sidecar_exits_0_and_shows_its_session() {
    let api = start_api(Duration::from_secs(3600)).await;
    let (sidecar, _c) = ready_sidecar(&api, Extra::default()).await;
    let admin = sidecar.admin.to_string();

    let run = status(&["--admin", &admin]).await;
    assert_eq!(run.code, Some(0), "stdout:\n{}\nstderr:\n{}", run.stdout, run.stderr);
    let out = &run.stdout;
    assert_eq!(out.lines().next().unwrap(), format!("ethgas-sidecar at {admin}: ready"));
    assert_eq!(field(out, "state"), "logged_in");
    assert_eq!(field(out, "account"), USER);
    // A fresh one-hour token: between 59 and 60 minutes left.
    let expires = field(out, "token expires in");
    assert!(expires.starts_with("59 min") || expires == "1 h 0 min", "{expires}");
    // Refreshed at 0.75 of the lifetime, with a little jitter.
    assert!(field(out, "next refresh in").contains(" min "), "{out}");
    assert!(field(out, "last login").ends_with("Z)"), "{out}");
    assert!(
        field(out, "last login").starts_with("just now") || field(out, "last login").contains(" s ago"),
        "{out}"
    );
    assert_eq!(field(out, "last refresh"), "never");
    assert_eq!(field(out, "last error"), "none");
    assert_eq!(field(out, "consecutive failures"), "0");
    // Not a terminal: no colour.
    assert!(!out.contains('\x1b'), "{out:?}");
    assert!(!out.contains(PASSWORD));

    // --json: the /readyz body for scripts, same exit status.
    let run = status(&["--admin", &admin, "--json"]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let v: Value = serde_json::from_str(&run.stdout).expect("one JSON document");
    assert_eq!(v["data"]["state"], "logged_in");
    assert_eq!(v["data"]["username"], USER);
    assert_eq!(v["data"]["ready"], true);
}

#[tokio::test]
async fn a_refused_password_exits_1_and_shows_the_state_and_the_error() {
    let api = start_api(Duration::from_secs(3600)).await;
    let sidecar = start_sidecar_with_password(api.addr, "not the password", Extra::default()).await;
    eventually(Duration::from_secs(10), "the API to refuse a login", || {
        api.mock.counts().logins_refused >= 1
    })
    .await;
    let admin = sidecar.admin.to_string();

    // The failure is recorded just after the API answers; allow a moment.
    let mut run = status(&["--admin", &admin]).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !run.stdout.contains("credentials_rejected") && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        run = status(&["--admin", &admin]).await;
    }
    assert_eq!(run.code, Some(1), "stdout:\n{}\nstderr:\n{}", run.stdout, run.stderr);
    let out = &run.stdout;
    assert_eq!(
        out.lines().next().unwrap(),
        format!("ethgas-sidecar at {admin}: NOT READY")
    );
    assert_eq!(field(out, "state"), "credentials_rejected");
    assert_eq!(field(out, "account"), USER);
    assert_eq!(field(out, "token expires in"), "no valid token");
    let error = field(out, "last error");
    assert!(
        error.contains("refused") && error.contains(&format!("{USER:?}")),
        "{error}"
    );
    assert!(error.ends_with(" ago)") || error.ends_with("just now)"), "{error}");
    let failures: u64 = field(out, "consecutive failures").parse().unwrap();
    assert!(failures >= 1, "{out}");
    assert_eq!(field(out, "last login"), "never");
    assert!(!out.contains("not the password"), "the password never shows: {out}");

    let run = status(&["--admin", &admin, "--json"]).await;
    assert_eq!(run.code, Some(1));
    let v: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["data"]["state"], "credentials_rejected");
}

#[tokio::test]
async fn nothing_listening_exits_2_and_says_what_to_check() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let addr = format!("127.0.0.1:{port}");
    let run = status(&["--admin", &addr]).await;
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert_eq!(run.stdout, "", "nothing on stdout for a script to misread");
    assert!(run.stderr.contains(&addr), "{}", run.stderr);
    assert!(run.stderr.contains("systemctl status ethgas-sidecar"), "{}", run.stderr);
    assert!(run.stderr.contains("journalctl -u ethgas-sidecar"), "{}", run.stderr);

    // The same when the address comes from the config file.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, format!("[admin]\nlisten = \"{addr}\"\n")).unwrap();
    let run = status(&["--config", config.to_str().unwrap()]).await;
    assert_eq!(run.code, Some(2));
    assert!(
        run.stderr.contains(&format!("admin.listen in {}", config.display())),
        "{}",
        run.stderr
    );

    // An address that is not one is refused clearly, with the same code.
    let run = status(&["--admin", "nonsense"]).await;
    assert_eq!(run.code, Some(2));
    assert!(run.stderr.contains("IP:PORT"), "{}", run.stderr);
}

#[tokio::test]
async fn an_instance_is_named_in_its_summary_and_in_the_hints() {
    let api = start_api(Duration::from_secs(3600)).await;
    let (sidecar, _c) = ready_sidecar(&api, Extra::default()).await;
    let admin = sidecar.admin.to_string();
    let run = status(&["--instance", "hoodi", "--admin", &admin]).await;
    assert_eq!(run.code, Some(0), "stdout:\n{}\nstderr:\n{}", run.stdout, run.stderr);
    assert_eq!(
        run.stdout.lines().next().unwrap(),
        format!("ethgas-sidecar@hoodi at {admin}: ready")
    );
    assert_eq!(field(&run.stdout, "account"), USER);

    // Nothing there: the hints name the instance's unit.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let run = status(&[
        "--instance",
        "ethgas-sidecar@hoodi",
        "--admin",
        &format!("127.0.0.1:{port}"),
    ])
    .await;
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(
        run.stderr.contains("systemctl status ethgas-sidecar@hoodi\n"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("journalctl -u ethgas-sidecar@hoodi "),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn an_instance_without_its_config_exits_2_and_asks_no_other_sidecar() {
    // No /etc/ethgas-sidecar/NAME.toml for this name: the instance's address
    // is unknown, and the default one may be another sidecar's.
    let name = format!("no-such-instance-{}", std::process::id());
    let run = status(&["--instance", &name]).await;
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert_eq!(run.stdout, "");
    assert!(
        run.stderr.contains(&format!("/etc/ethgas-sidecar/{name}.toml"))
            && run.stderr.contains(&format!("ethgas-sidecar@{name}.service")),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("127.0.0.1:9090"), "{}", run.stderr);

    // A name that would reach outside /etc/ethgas-sidecar is refused.
    let run = status(&["--instance", "../../tmp/x"]).await;
    assert_eq!(run.code, Some(2));
    assert!(run.stderr.contains("not an instance name"), "{}", run.stderr);
}

#[tokio::test]
async fn the_proxy_listener_is_not_mistaken_for_the_admin_listener() {
    let api = start_api(Duration::from_secs(3600)).await;
    let (sidecar, _c) = ready_sidecar(&api, Extra::default()).await;
    let run = status(&["--admin", &sidecar.proxy.to_string()]).await;
    assert_eq!(run.code, Some(2), "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("admin listener (not the proxy)"), "{}", run.stderr);
}

#[tokio::test]
async fn only_admin_listen_is_read_from_the_config_file() {
    let api = start_api(Duration::from_secs(3600)).await;
    let (sidecar, _c) = ready_sidecar(&api, Extra::default()).await;
    // A config whose password source does not exist (an operator usually
    // cannot read it) and that a full load would reject.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[upstream]\nbase_url = \"http://{}\"\n\n[auth]\nusername = \"{USER}\"\n\
             password_file = \"/nonexistent/password\"\n\n[admin]\nlisten = \"{}\"\n",
            api.addr, sidecar.admin
        ),
    )
    .unwrap();
    assert!(Config::load(&config).is_err(), "a full load needs the password");
    let run = status(&["--config", config.to_str().unwrap()]).await;
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    assert_eq!(field(&run.stdout, "state"), "logged_in");
}

/// A sidecar whose admin listener is a unix socket at `path`.
async fn sidecar_with_unix_admin(api: &Api, path: &Path) -> (CancellationToken, Files) {
    let files = write_config(api.addr, PASSWORD, &Extra::default());
    let text = std::fs::read_to_string(&files.config).unwrap().replace(
        "[admin]\nlisten = \"127.0.0.1:0\"",
        &format!("[admin]\nlisten = \"unix:{}\"", path.display()),
    );
    std::fs::write(&files.config, text).unwrap();
    let config = Config::load(&files.config).unwrap();
    let proxy = Listener::bind(&config.restart.proxy.listen, 0o660).await.unwrap();
    let admin = Listener::bind(&config.restart.admin.listen, 0o660).await.unwrap();
    let stop = CancellationToken::new();
    let listeners = Listeners {
        proxy,
        admin: Some(admin),
        more: Vec::new(),
    };
    tokio::spawn(app::run(config, listeners, Control::new(stop.clone())));
    (stop, files)
}

#[tokio::test]
async fn a_unix_admin_socket_is_asked_through_the_config_file() {
    let api = start_api(Duration::from_secs(3600)).await;
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("admin.sock");
    let (stop, files) = sidecar_with_unix_admin(&api, &sock).await;
    let _stop = stop.drop_guard();
    let config = files.config.to_str().unwrap().to_string();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let run = loop {
        let run = status(&["--config", &config]).await;
        if run.code == Some(0) || tokio::time::Instant::now() > deadline {
            break run;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    assert_eq!(
        run.stdout.lines().next().unwrap(),
        format!("ethgas-sidecar at unix:{}: ready", sock.display())
    );
    assert_eq!(field(&run.stdout, "account"), USER);

    let run = status(&["--admin", &format!("unix:{}", sock.display()), "--json"]).await;
    assert_eq!(run.code, Some(0));
    let v: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["data"]["state"], "logged_in");

    let run = status(&["--admin", &format!("unix:{}", dir.path().join("none.sock").display())]).await;
    assert_eq!(run.code, Some(2));
    assert!(run.stderr.contains("none.sock"), "{}", run.stderr);
}

/// `status` on a terminal (a pty from util-linux `script`), with and without
/// NO_COLOR: the verdict is coloured only when it should be.
#[tokio::test]
async fn colour_only_on_a_terminal_and_never_with_no_color() {
    if std::process::Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: util-linux `script` (for a pty) is not installed");
        return;
    }
    let api = start_api(Duration::from_secs(3600)).await;
    let (sidecar, _c) = ready_sidecar(&api, Extra::default()).await;
    let on_a_terminal = |no_color: Option<&str>| {
        let mut cmd = tokio::process::Command::new("script");
        cmd.args(["--quiet", "--return", "--command"])
            .arg(format!("{} status --admin {}", binary(), sidecar.admin))
            .arg("/dev/null")
            .env_remove("NO_COLOR")
            .stdin(std::process::Stdio::null());
        if let Some(v) = no_color {
            cmd.env("NO_COLOR", v);
        }
        async move {
            let out = tokio::time::timeout(Duration::from_secs(30), cmd.output())
                .await
                .unwrap()
                .unwrap();
            (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
        }
    };
    let (code, out) = on_a_terminal(None).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("\x1b[1;32mready\x1b[0m"),
        "coloured on a terminal: {out:?}"
    );
    let (code, out) = on_a_terminal(Some("1")).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains(": ready"), "{out:?}");
    assert!(!out.contains('\x1b'), "NO_COLOR: {out:?}");
}

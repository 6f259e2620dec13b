//! Files an operator names that are not what they should be: a FIFO (which
//! would block a reader forever), a device or an oversized file (which would
//! be read until memory runs out), a keystore that holds the key in clear.
//! Each is refused at once, by `check-config`, at start and by a reload,
//! with a message that names the key and never quotes the file; a reload
//! that refused one leaves later reloads and the stop working.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn mkfifo(path: &Path) {
    let ok = Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs")
        .success();
    assert!(ok, "mkfifo {}", path.display());
}

/// `check-config --config <config>`, which must end within 20 s (a blocked
/// read would never end): exit code and stderr.
fn check_config_bounded(config: &Path) -> (Option<i32>, String) {
    let mut child = Command::new(binary())
        .args(["check-config", "--config"])
        .arg(config)
        .env_remove("RUST_LOG")
        .env_remove("CREDENTIALS_DIRECTORY")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary runs");
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            use std::io::Read;
            child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
            return (status.code(), err);
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("check-config --config {} hung for 20 s", config.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A wallet config in `dir` (a new file each time) whose `[auth]` key lines
/// are `key_lines` and `[upstream]` has `extra`.
fn wallet_config(dir: &Path, key_lines: &str, extra: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let config = dir.join(format!("config-{n}.toml"));
    let text =
        format!("[upstream]\nbase_url = \"http://127.0.0.1:9\"\n{extra}\n[auth]\nmethod = \"wallet\"\n{key_lines}\n");
    std::fs::write(&config, text).unwrap();
    config
}

#[test]
fn a_fifo_as_any_file_the_sidecar_reads_is_refused_at_once_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    mkfifo(&fifo);
    let (key_hex, _) = random_key_hex();
    let key_file = dir.path().join("wallet.key");
    write_private(&key_file, &format!("0x{key_hex}\n"));
    let pw = dir.path().join("pw");
    write_private(&pw, "pw\n");
    let f = format!("{:?}", fifo.display().to_string());
    let cases: Vec<(&str, PathBuf)> = vec![
        ("auth.password_file", {
            let config = dir.path().join("password.toml");
            let text = format!(
                "[upstream]\nbase_url = \"http://127.0.0.1:9\"\n[auth]\nusername = \"alice\"\npassword_file = {f}\n"
            );
            std::fs::write(&config, text).unwrap();
            config
        }),
        (
            "auth.private_key_file",
            wallet_config(dir.path(), &format!("private_key_file = {f}"), ""),
        ),
        (
            "auth.keystore_file",
            wallet_config(
                dir.path(),
                &format!(
                    "keystore_file = {f}\nkeystore_password_file = {:?}",
                    pw.display().to_string()
                ),
                "",
            ),
        ),
        (
            "auth.keystore_password_file",
            wallet_config(
                dir.path(),
                &format!(
                    "keystore_file = {:?}\nkeystore_password_file = {f}",
                    key_file.display().to_string()
                ),
                "",
            ),
        ),
        (
            "upstream.ca_file",
            wallet_config(
                dir.path(),
                &format!("private_key_file = {:?}", key_file.display().to_string()),
                &format!("ca_file = {f}"),
            ),
        ),
        ("--config", fifo.clone()),
    ];
    for (key, config) in cases {
        let started = Instant::now();
        let (code, err) = check_config_bounded(&config);
        println!(
            "{key} = FIFO: exit {code:?} after {} ms: {}",
            started.elapsed().as_millis(),
            err.trim()
        );
        assert_eq!(code, Some(1), "{key}: {err}");
        let named = if key == "--config" {
            fifo.display().to_string()
        } else {
            format!("`{key}`")
        };
        assert!(err.contains(&named) && err.contains("FIFO"), "{key}: {err}");
    }
}

#[test]
fn oversized_and_endless_files_are_refused_naming_the_limit_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    // `--config /dev/zero`: a device, refused without reading.
    let (code, err) = check_config_bounded(Path::new("/dev/zero"));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("/dev/zero") && err.contains("device"), "{err}");

    // A config file past its limit (sparse: nothing is written).
    let big = dir.path().join("big.toml");
    std::fs::File::create(&big).unwrap().set_len(2 << 20).unwrap();
    let (code, err) = check_config_bounded(&big);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("larger than the 1 MiB accepted"), "{err}");

    // `ca_file` past its limit, and `/dev/zero`.
    let (key_hex, _) = random_key_hex();
    let key_file = dir.path().join("wallet.key");
    write_private(&key_file, &format!("0x{key_hex}\n"));
    let key_line = format!("private_key_file = {:?}", key_file.display().to_string());
    let ca = dir.path().join("ca.pem");
    std::fs::File::create(&ca).unwrap().set_len(5 << 20).unwrap();
    for (ca, want) in [
        (ca.as_path(), "larger than the 4 MiB accepted"),
        (Path::new("/dev/zero"), "device"),
    ] {
        let config = wallet_config(
            dir.path(),
            &key_line,
            &format!("ca_file = {:?}", ca.display().to_string()),
        );
        let (code, err) = check_config_bounded(&config);
        assert_eq!(code, Some(1), "{err}");
        assert!(err.contains("`upstream.ca_file`") && err.contains(want), "{err}");
    }

    // A password file past its limit.
    let pw = dir.path().join("pw");
    std::fs::File::create(&pw).unwrap().set_len(1 << 20).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = dir.path().join("pw.toml");
    std::fs::write(
        &config,
        format!(
            "[upstream]\nbase_url = \"http://127.0.0.1:9\"\n[auth]\nusername = \"alice\"\npassword_file = {:?}\n",
            pw.display().to_string()
        ),
    )
    .unwrap();
    let (code, err) = check_config_bounded(&config);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("`auth.password_file`") && err.contains("64 KiB"), "{err}");
}

#[test]
fn a_keystore_holding_the_key_as_a_json_string_is_refused_without_quoting_it() {
    let dir = tempfile::tempdir().unwrap();
    let (key_hex, _) = random_key_hex();
    let keystore = dir.path().join("keystore.json");
    write_private(&keystore, &format!("\"0x{key_hex}\"\n"));
    let pw = dir.path().join("pw");
    write_private(&pw, "pw\n");
    let config = wallet_config(
        dir.path(),
        &format!(
            "keystore_file = {:?}\nkeystore_password_file = {:?}",
            keystore.display().to_string(),
            pw.display().to_string()
        ),
        "",
    );
    let (code, err) = check_config_bounded(&config);
    println!("{}", err.trim());
    assert_eq!(code, Some(1), "{err}");
    assert!(
        !err.contains(&key_hex[..16]) && !err.contains(&key_hex[48..]),
        "the key is quoted: {err}"
    );
    assert!(
        err.contains("`auth.keystore_file`") && err.contains("line 1, column"),
        "{err}"
    );
    assert!(err.contains("auth.private_key_file"), "says what to use instead: {err}");

    // Any wrong-typed value of a keystore is named by its place, not quoted.
    write_private(&keystore, &format!("{{\"version\": 3, \"crypto\": \"{key_hex}\"}}"));
    let (code, err) = check_config_bounded(&config);
    assert_eq!(code, Some(1), "{err}");
    assert!(!err.contains(&key_hex[..16]), "the key is quoted: {err}");
    assert!(err.contains("wrong type"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reload_that_meets_a_fifo_is_refused_and_later_reloads_and_the_stop_still_work() {
    let api = start_api(Duration::from_secs(3600)).await;
    let files = write_config(api.addr, PASSWORD, &Extra::default());
    let mut proc = Proc::spawn(&files.config, &[]).await;
    let c = client();
    wait_ready(&c, proc.admin).await;

    // The password file becomes a FIFO with no writer.
    std::fs::remove_file(&files.password).unwrap();
    mkfifo(&files.password);
    proc.signal("HUP");
    eventually(Duration::from_secs(20), "the reload is refused", || {
        proc.log().contains("reload rejected")
    })
    .await;
    let log = proc.log();
    let line = log.lines().find(|l| l.contains("reload rejected")).unwrap();
    assert!(line.contains("auth.password_file") && line.contains("FIFO"), "{line}");

    // A good file again: the next SIGHUP is applied.
    std::fs::remove_file(&files.password).unwrap();
    write_private(&files.password, &format!("{PASSWORD}\n"));
    proc.signal("HUP");
    eventually(Duration::from_secs(20), "the next reload is applied", || {
        proc.log().contains("configuration reloaded")
    })
    .await;

    // And the stop is prompt.
    let started = Instant::now();
    proc.signal("TERM");
    let status = proc.wait_exit(Duration::from_secs(20)).await;
    println!("exit {} ms after SIGTERM", started.elapsed().as_millis());
    assert!(status.success(), "{status:?}");
}

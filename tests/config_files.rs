//! Config files from `tests/configs/`: every valid one loads, every invalid
//! one is refused with a message that names the key (each file says what it
//! expects in `# expect:` lines) and the file. The shipped
//! `config.toml.example` is checked too.

use std::path::{Path, PathBuf};

use ethgas_sidecar::config::{Config, Listen};

fn toml_files(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/configs").join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn valid_configs_load() {
    let files = toml_files("valid");
    assert!(files.len() >= 2, "the valid folder is read: {files:?}");
    for f in files {
        if let Err(e) = Config::load(&f) {
            panic!("{} should load: {e}", f.display());
        }
    }
}

#[test]
fn full_config_sets_every_key() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/configs/valid/full.toml");
    let c = Config::load(&path).unwrap();
    assert_eq!(c.proxy.listen, Listen::Unix("/run/ethgas-sidecar/proxy.sock".into()));
    assert_eq!(c.proxy.unix_mode, 0o600);
    assert_eq!(c.proxy.allowed_clients.len(), 2);
    assert!(!c.proxy.intercept_login);
    assert_eq!(c.proxy.host_aliases, vec!["api.ethgas.com", "api.ethgas.com"]);
    assert_eq!(c.proxy.replay_buffer, 131072);
    assert_eq!(c.upstream.base_url.to_string(), "https://testnet-api.ethgas.com/");
    assert_eq!(c.upstream.websocket_url.to_string(), "wss://testnet-ws.ethgas.com/");
    assert_eq!(c.auth.refresh_ratio, 0.8);
    assert_eq!(c.auth.credential_retry_max, std::time::Duration::from_secs(600));
    assert_eq!(c.admin.listen, Listen::Tcp("[::1]:9090".parse().unwrap()));
    let shown = c.render_redacted();
    assert!(!shown.contains("not-a-real-password"), "{shown}");
}

#[test]
fn invalid_configs_are_refused_naming_the_key_and_file() {
    let files = toml_files("invalid");
    assert!(files.len() >= 15, "the invalid folder is read: {files:?}");
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let expects: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("# expect: ")).collect();
        assert!(!expects.is_empty(), "{} has no `# expect:` line", f.display());
        let err = match Config::load(&f) {
            Ok(_) => panic!("{} should be refused", f.display()),
            Err(e) => e.to_string(),
        };
        for want in expects {
            assert!(
                err.contains(want),
                "{}: error should mention {want:?}, got: {err}",
                f.display()
            );
        }
        assert!(err.contains(&f.display().to_string()), "names the file: {err}");
        assert!(!err.contains("not-a-real-password"), "no secret in errors: {err}");
    }
}

#[test]
fn shipped_example_is_valid_apart_from_its_password_path() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("config.toml.example")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("password"), "x\n").unwrap();
    // Its default source is the systemd credential; read a file here instead.
    let text = text.replace("password_credential = \"password\"", "password_file = \"password\"");
    let c = Config::from_toml(&text, &dir.path().join("config.toml")).unwrap();
    assert_eq!(c.upstream.base_url.to_string(), "https://api.ethgas.com/");
    assert_eq!(c.proxy.listen, Listen::Tcp("127.0.0.1:8080".parse().unwrap()));
    // Every key it shows commented out is a real key: uncomment them all.
    let uncommented: String = text
        .lines()
        .map(|l| match l.strip_prefix("# ") {
            Some(rest)
                if is_setting(rest)
                    && !rest.starts_with("base_url")
                    && !rest.starts_with("password_")
                    && !rest.starts_with("ca_file") =>
            {
                rest
            }
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    if let Err(e) = Config::from_toml(&uncommented, &dir.path().join("config.toml")) {
        panic!("an example key is not accepted: {e}");
    }
}

/// `key = value` with a plain key (not prose that happens to hold " = ").
fn is_setting(line: &str) -> bool {
    line.split_once(" = ")
        .is_some_and(|(k, _)| !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
}

#[test]
fn password_credential_reads_credentials_directory() {
    // The systemd path, without systemd: CREDENTIALS_DIRECTORY is read by the
    // child process only, so run the binary.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("password"), "from-credential\n").unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        "[upstream]\nbase_url = \"https://api.ethgas.com\"\n[auth]\nusername = \"u\"\npassword_credential = \"password\"\n",
    )
    .unwrap();
    let bin = env!("CARGO_BIN_EXE_ethgas-sidecar");
    let ok = std::process::Command::new(bin)
        .args(["check-config", "--config"])
        .arg(&cfg)
        .env("CREDENTIALS_DIRECTORY", dir.path())
        .output()
        .unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let shown = String::from_utf8_lossy(&ok.stdout);
    assert!(shown.contains("password_credential = \"password\""), "{shown}");
    assert!(!shown.contains("from-credential"));

    let missing = std::process::Command::new(bin)
        .args(["check-config", "--config"])
        .arg(&cfg)
        .env_remove("CREDENTIALS_DIRECTORY")
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(
        err.contains("auth.password_credential") && err.contains("CREDENTIALS_DIRECTORY"),
        "{err}"
    );
}

#[test]
fn run_with_a_bad_config_exits_1_before_binding() {
    let bin = env!("CARGO_BIN_EXE_ethgas-sidecar");
    let bad = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/configs/invalid/bad_url.toml");
    let out = std::process::Command::new(bin)
        .args(["run", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("upstream.base_url"), "{err}");
    assert!(!err.contains("listening"), "nothing was bound: {err}");

    let out = std::process::Command::new(bin)
        .args(["check-config", "--config", "/nonexistent/config.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/config.toml"));
}

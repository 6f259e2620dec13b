//! The Debian package's recipe (`[package.metadata.deb]` in Cargo.toml)
//! against the checkout: every file it ships is committed (so `cargo deb`
//! works from a clean clone), its changelog names this version, the shipped
//! unit, binary path and example config agree with each other, the
//! maintainer scripts that carry the systemd snippets are there, the template
//! unit keeps the main unit's sandbox, and the wallet drop-ins replace the
//! password credential. CI builds the package itself and checks it with
//! lintian and systemd-analyze (contrib/debian/check-deb.sh).

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn deb_metadata() -> toml::Table {
    let manifest: toml::Table = toml::from_str(&read("Cargo.toml")).unwrap();
    manifest["package"]["metadata"]["deb"].as_table().unwrap().clone()
}

/// `(source, destination)` of every asset.
fn assets() -> Vec<(String, String)> {
    deb_metadata()["assets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let a = a.as_array().expect("assets as [source, dest, mode]");
            (a[0].as_str().unwrap().to_string(), a[1].as_str().unwrap().to_string())
        })
        .collect()
}

/// Files matching a source that may end in `*.ext` (the only glob used).
fn matches(source: &str) -> Vec<PathBuf> {
    match source.rsplit_once("/*") {
        Some((dir, suffix)) => std::fs::read_dir(root().join(dir))
            .unwrap_or_else(|e| panic!("{dir}: {e}"))
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().ends_with(suffix))
            .collect(),
        None => vec![root().join(source)].into_iter().filter(|p| p.is_file()).collect(),
    }
}

#[test]
fn every_shipped_file_is_in_the_checkout() {
    let assets = assets();
    assert!(assets.len() >= 10, "{assets:?}");
    for (source, dest) in &assets {
        if source.starts_with("target/release/") {
            // Built by `cargo deb`; cargo-deb maps the path to the profile's.
            assert_eq!(source, "target/release/ethgas-sidecar");
            assert_eq!(dest, "usr/bin/");
            continue;
        }
        assert!(
            !matches(source).is_empty(),
            "asset {source:?} matches no committed file"
        );
    }
    let changelog = deb_metadata()["changelog"].as_str().unwrap().to_string();
    assert!(root().join(&changelog).is_file(), "{changelog}");
    // The man pages and completions are generated (tests/cli.rs) and all shipped.
    assert_eq!(matches("contrib/man/*.1").len(), 6);
    for shell in ["ethgas-sidecar.bash", "_ethgas-sidecar", "ethgas-sidecar.fish"] {
        assert!(assets.iter().any(|(s, _)| s.ends_with(shell)), "{shell} not shipped");
    }
}

#[test]
fn the_changelog_names_this_version() {
    let changelog = read("contrib/debian/changelog");
    let first = changelog.lines().next().unwrap();
    let revision = deb_metadata()
        .get("revision")
        .and_then(|r| r.as_str().map(str::to_string))
        .unwrap_or_else(|| "1".into());
    let version = format!("{}-{revision}", env!("CARGO_PKG_VERSION"));
    assert!(
        first.starts_with(&format!("ethgas-sidecar ({version}) ")),
        "contrib/debian/changelog starts with {first:?}; add an entry for {version}"
    );
}

#[test]
fn unit_binary_and_config_agree() {
    let unit = read("systemd/ethgas-sidecar.service");
    let exec = unit.lines().find_map(|l| l.strip_prefix("ExecStart=")).unwrap();
    assert!(
        exec.starts_with("/usr/bin/ethgas-sidecar run --config /etc/ethgas-sidecar/config.toml"),
        "{exec}"
    );
    assert!(
        assets()
            .iter()
            .any(|(s, d)| s == "config.toml.example" && d == "etc/ethgas-sidecar/config.toml")
    );
    // The unit hands the password over as a credential; the shipped config
    // reads that very credential by default.
    let credential = unit
        .lines()
        .find_map(|l| l.strip_prefix("LoadCredential="))
        .and_then(|c| c.split_once(':'))
        .map(|(name, _)| name.to_string())
        .unwrap();
    let example: toml::Table = toml::from_str(&read("config.toml.example")).unwrap();
    assert_eq!(
        example["auth"]["password_credential"].as_str(),
        Some(credential.as_str())
    );
    assert!(example["auth"].get("password_file").is_none());
    // The units are found by cargo-deb under the package's name.
    let units = deb_metadata()["systemd-units"].clone();
    let dir = units["unit-scripts"].as_str().unwrap();
    for unit in ["ethgas-sidecar.service", "ethgas-sidecar.socket"] {
        assert!(Path::new(&root().join(dir).join(unit)).is_file(), "{unit}");
    }
    assert_eq!(units["enable"].as_bool(), Some(false), "documented as not enabled");
}

/// The `[Service]` settings of a unit file as (key, value) lines, in order,
/// without comments and blank lines.
fn service_settings(unit: &str) -> Vec<(String, String)> {
    let mut section = "";
    let mut out = Vec::new();
    for line in unit.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') {
            section = line;
            continue;
        }
        if section == "[Service]" {
            let (key, value) = line.split_once('=').unwrap_or_else(|| panic!("not key=value: {line}"));
            out.push((key.trim().to_string(), value.trim().to_string()));
        }
    }
    out
}

fn values<'a>(settings: &'a [(String, String)], key: &str) -> Vec<&'a str> {
    settings
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// cargo-deb writes the systemd snippets into the maintainer scripts only when
/// `maintainer-scripts` is set; without them an upgrade restarts nothing,
/// removal stops nothing and purge leaves the enable links behind.
#[test]
fn the_maintainer_scripts_carry_the_systemd_snippets() {
    let deb = deb_metadata();
    let dir = deb
        .get("maintainer-scripts")
        .and_then(|d| d.as_str())
        .expect("[package.metadata.deb] sets maintainer-scripts (cargo-deb writes no systemd snippets without it)");
    let units = deb["systemd-units"].clone();
    assert_eq!(units["start"].as_bool(), Some(false), "not started at install");
    assert_eq!(
        units["restart-after-upgrade"].as_bool(),
        Some(true),
        "an upgrade try-restarts the running units"
    );
    for script in ["postinst", "prerm", "postrm"] {
        let path = format!("{dir}/{script}");
        let text = read(&path);
        assert!(text.starts_with("#!/bin/sh\n"), "{path}");
        assert!(text.contains("\nset -e\n"), "{path}");
        // cargo-deb refuses a script without the mark, and puts the snippets there.
        assert_eq!(text.matches("#DEBHELPER#").count(), 1, "{path}: one #DEBHELPER# line");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(root().join(&path)).unwrap().permissions().mode();
        assert_eq!(mode & 0o111, 0o111, "{path} is executable");
    }
    // cargo-deb skips template units: their instances are the scripts' job.
    assert!(read(&format!("{dir}/postinst")).contains("try-restart 'ethgas-sidecar@*.service'"));
    assert!(read(&format!("{dir}/prerm")).contains("stop 'ethgas-sidecar@*.socket' 'ethgas-sidecar@*.service'"));
    let postrm = read(&format!("{dir}/postrm"));
    assert!(postrm.contains("[ \"$1\" = purge ]") && postrm.contains("*/systemd/system/ethgas-sidecar@.service"));
}

/// `ethgas-sidecar@NAME`: its own config, credential, runtime directory and
/// log identity, and otherwise the very settings of ethgas-sidecar.service.
#[test]
fn the_template_unit_is_the_main_unit_per_instance() {
    let main = service_settings(&read("systemd/ethgas-sidecar.service"));
    let template = service_settings(&read("systemd/ethgas-sidecar@.service"));
    assert_eq!(
        values(&template, "ExecStart"),
        ["/usr/bin/ethgas-sidecar run --config /etc/ethgas-sidecar/%i.toml"]
    );
    assert_eq!(
        values(&template, "LoadCredential"),
        ["password:/etc/ethgas-sidecar/%i.password"]
    );
    assert_eq!(values(&template, "RuntimeDirectory"), ["ethgas-sidecar@%i"]);
    assert_eq!(values(&template, "SyslogIdentifier"), ["ethgas-sidecar@%i"]);
    // Everything else, the sandbox above all, line for line.
    let per_instance = ["ExecStart", "LoadCredential", "RuntimeDirectory", "SyslogIdentifier"];
    let shared = |s: &[(String, String)]| -> Vec<(String, String)> {
        s.iter()
            .filter(|(k, _)| !per_instance.contains(&k.as_str()))
            .cloned()
            .collect()
    };
    assert_eq!(
        shared(&template),
        shared(&main),
        "ethgas-sidecar@.service drifted from ethgas-sidecar.service"
    );
    assert!(values(&main, "ProtectSystem") == ["strict"] && values(&main, "DynamicUser") == ["yes"]);

    // Its socket hands the listener to its own instance, under the same name.
    let socket = read("systemd/ethgas-sidecar@.socket");
    assert!(socket.contains("\nService=ethgas-sidecar@%i.service\n"), "{socket}");
    assert!(socket.contains("\nFileDescriptorName=proxy\n"), "{socket}");
    assert!(socket.contains("\nIPAddressDeny=any\n"), "{socket}");
    // cargo-deb installs both templates from the units' directory.
    let dir = deb_metadata()["systemd-units"]["unit-scripts"]
        .as_str()
        .unwrap()
        .to_string();
    for unit in ["ethgas-sidecar@.service", "ethgas-sidecar@.socket"] {
        assert!(root().join(&dir).join(unit).is_file(), "{unit}");
    }
}

/// The wallet drop-ins empty the credential list (or the unit would still
/// load the missing password file and fail to start), then load the key as
/// the credential the config names; both are shipped as examples.
#[test]
fn the_wallet_drop_ins_replace_the_password_credential() {
    let assets = assets();
    for (source, key_file, installed) in [
        (
            "systemd/wallet.conf.example",
            "/etc/ethgas-sidecar/wallet.key",
            "examples/wallet.conf",
        ),
        (
            "systemd/wallet@.conf.example",
            "/etc/ethgas-sidecar/%i.wallet.key",
            "examples/wallet@.conf",
        ),
    ] {
        let settings = service_settings(&read(source));
        assert_eq!(
            values(&settings, "LoadCredential"),
            ["", &format!("wallet-key:{key_file}")],
            "{source}: reset, then the key"
        );
        assert!(
            assets
                .iter()
                .any(|(s, d)| s == source && d == &format!("usr/share/doc/ethgas-sidecar/{installed}")),
            "{source} is shipped as {installed}"
        );
    }
    let example = read("config.toml.example");
    assert!(
        example.contains("private_key_credential = \"wallet-key\""),
        "the config reads that credential"
    );
}

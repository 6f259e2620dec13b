//! The command line as shipped: `--version` names the commit, and the man
//! pages and shell completions committed under `contrib/` (which the Debian
//! package installs, so that `cargo deb` works from a clean checkout) are
//! exactly what `ethgas_sidecar::cli` generates today.
//!
//! After changing the command line, regenerate them with
//!
//!     UPDATE_GENERATED=1 cargo test --test cli
//!
//! and commit the result.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap_complete::Shell;
use clap_mangen::Man;

const NAME: &str = "ethgas-sidecar";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The command as documented: the plain version (the commit would change
/// every page at every commit), and no `help` subcommand page.
fn documented() -> clap::Command {
    let mut cmd = ethgas_sidecar::cli::command()
        .version(env!("CARGO_PKG_VERSION"))
        .disable_help_subcommand(true);
    cmd.build();
    cmd
}

/// One page for the command and one per subcommand (`ethgas-sidecar-status.1`
/// and so on), as the main page's SUBCOMMANDS section refers to them.
fn man_pages() -> BTreeMap<String, Vec<u8>> {
    fn add(cmd: &clap::Command, out: &mut BTreeMap<String, Vec<u8>>) {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            add(sub, out);
        }
        // Every page's footer names the program and its version (a
        // subcommand's would otherwise say just "status").
        let man = Man::new(cmd.clone()).source(format!("{NAME} {}", env!("CARGO_PKG_VERSION")));
        let mut page = Vec::new();
        man.render(&mut page).expect("render into memory");
        out.insert(man.get_filename(), page);
    }
    let mut pages = BTreeMap::new();
    add(&documented(), &mut pages);
    pages
}

fn completions() -> BTreeMap<String, Vec<u8>> {
    [
        (Shell::Bash, format!("{NAME}.bash")),
        (Shell::Zsh, format!("_{NAME}")),
        (Shell::Fish, format!("{NAME}.fish")),
    ]
    .into_iter()
    .map(|(shell, file)| {
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut documented(), NAME, &mut out);
        (file, out)
    })
    .collect()
}

/// Compares `files` with the directory's contents (or rewrites it when
/// UPDATE_GENERATED is set); returns what differs.
fn check_dir(dir: &Path, files: &BTreeMap<String, Vec<u8>>) -> Vec<String> {
    let update = std::env::var_os("UPDATE_GENERATED").is_some_and(|v| !v.is_empty() && v != "0");
    let mut problems = Vec::new();
    if update {
        std::fs::create_dir_all(dir).unwrap();
    }
    let existing: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    for name in &existing {
        if !files.contains_key(name) {
            if update {
                std::fs::remove_file(dir.join(name)).unwrap();
            } else {
                problems.push(format!("{}: not generated any more", dir.join(name).display()));
            }
        }
    }
    for (name, content) in files {
        let path = dir.join(name);
        if std::fs::read(&path).ok().as_deref() == Some(content.as_slice()) {
            continue;
        }
        if update {
            std::fs::write(&path, content).unwrap();
        } else {
            problems.push(format!("{}: missing or out of date", path.display()));
        }
    }
    problems
}

#[test]
fn committed_man_pages_and_completions_match_the_cli() {
    let pages = man_pages();
    let comps = completions();
    // Guard against a generator that produces nothing and so checks nothing.
    for sub in ["run", "check-config", "status", "demo", "mock-api"] {
        assert!(pages.contains_key(&format!("{NAME}-{sub}.1")), "{:?}", pages.keys());
    }
    let main = String::from_utf8(pages[&format!("{NAME}.1")].clone()).unwrap();
    assert!(main.contains(".TH ethgas-sidecar 1"), "{main}");
    assert!(main.contains("ethgas\\-sidecar\\-status(1)"), "{main}");
    let status = String::from_utf8(pages[&format!("{NAME}-status.1")].clone()).unwrap();
    assert!(
        status.contains("\\-\\-json") && status.contains("Exit status"),
        "{status}"
    );
    assert!(String::from_utf8_lossy(&comps[&format!("{NAME}.bash")]).contains("check-config"));

    let mut problems = check_dir(&root().join("contrib/man"), &pages);
    problems.extend(check_dir(&root().join("contrib/completions"), &comps));
    assert!(
        problems.is_empty(),
        "the generated files differ from the command line:\n  {}\n\
         regenerate with `UPDATE_GENERATED=1 cargo test --test cli` and commit them",
        problems.join("\n  ")
    );
}

#[test]
fn version_names_the_release_and_the_commit() {
    let out = std::process::Command::new(common::binary())
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    let line = String::from_utf8(out.stdout).unwrap();
    let version = env!("CARGO_PKG_VERSION");
    assert!(line.starts_with(&format!("{NAME} {version} (commit ")), "{line}");

    // In a checkout, the commit is git's; in a tarball, "unknown".
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(root())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let ours = git(&["rev-parse", "--show-toplevel"])
        .is_some_and(|top| Path::new(&top).canonicalize().ok() == root().canonicalize().ok());
    match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(commit) if ours && std::env::var_os("ETHGAS_SIDECAR_COMMIT").is_none() => {
            assert_eq!(commit.len(), 12);
            assert!(line.contains(&format!("(commit {commit}")), "{line} vs git {commit}");
        }
        _ => assert!(line.contains("(commit "), "{line}"),
    }
}

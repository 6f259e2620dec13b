//! Build script: records the git commit the binary is built from, so that
//! `ethgas-sidecar --version` says "0.1.0 (commit 5b911a7c1e2f)" and an
//! operator can tell exactly which code a host runs.
//!
//! The commit is `git rev-parse --short=12 HEAD`, with "-dirty" when the files
//! the binary is made of (`src/`, `Cargo.toml`, `Cargo.lock`, `build.rs`)
//! differ from it. Without git, or outside a checkout of this crate (a crate
//! tarball, a vendored copy inside another repository), it is "unknown" —
//! unless the builder sets `ETHGAS_SIDECAR_COMMIT` (e.g. a distribution
//! building from a tarball of a known commit).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The files whose changes make a build "-dirty" (and rerun this script).
const SOURCES: [&str; 4] = ["src", "Cargo.toml", "Cargo.lock", "build.rs"];

fn main() {
    println!("cargo:rerun-if-env-changed=ETHGAS_SIDECAR_COMMIT");
    let commit = match std::env::var("ETHGAS_SIDECAR_COMMIT") {
        Ok(c) if !c.trim().is_empty() => c.trim().to_string(),
        _ => from_git().unwrap_or_else(|| "unknown".into()),
    };
    println!("cargo:rustc-env=ETHGAS_SIDECAR_COMMIT={commit}");
}

fn from_git() -> Option<String> {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR")?);
    // Only this crate's own checkout counts, not a repository around it.
    let top = git(&manifest_dir, &["rev-parse", "--show-toplevel"])?;
    if !same_dir(Path::new(&top), &manifest_dir) {
        return None;
    }
    let commit = git(&manifest_dir, &["rev-parse", "--short=12", "HEAD"])?;

    // Rerun when HEAD moves: HEAD itself (checkout), the branch it points to
    // (commit), and packed-refs (where a ref lives after `git pack-refs`).
    let mut watch = vec![git_path(&manifest_dir, "HEAD")];
    if let Some(head_ref) = git(&manifest_dir, &["symbolic-ref", "-q", "HEAD"]) {
        watch.push(git_path(&manifest_dir, &head_ref));
    }
    watch.push(git_path(&manifest_dir, "packed-refs"));
    for path in watch.into_iter().flatten() {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    for path in SOURCES {
        println!("cargo:rerun-if-changed={path}");
    }

    // GIT_OPTIONAL_LOCKS=0: `git status` must not rewrite the index, which
    // would look like a change and make every build rerun this script.
    let mut args = vec!["status", "--porcelain", "--untracked-files=no", "--"];
    args.extend(SOURCES);
    let dirty = git(&manifest_dir, &args).is_some_and(|s| !s.is_empty());
    Some(if dirty { format!("{commit}-dirty") } else { commit })
}

/// `git ARGS` in `dir`, its trimmed stdout if it succeeded.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_OPTIONAL_LOCKS", "0")
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(String::from_utf8(out.stdout).ok()?.trim().to_string())
}

/// Where git keeps `name` (HEAD, a ref, packed-refs), also in a worktree.
fn git_path(dir: &Path, name: &str) -> Option<PathBuf> {
    let p = PathBuf::from(git(dir, &["rev-parse", "--git-path", name])?);
    Some(if p.is_absolute() { p } else { dir.join(p) })
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

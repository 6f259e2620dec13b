use super::*;

#[test]
fn the_definitions_are_consistent() {
    command().debug_assert();
}

#[test]
fn version_names_the_commit() {
    assert!(VERSION.starts_with(env!("CARGO_PKG_VERSION")));
    assert!(VERSION.contains(&format!("(commit {COMMIT})")));
    assert!(!COMMIT.is_empty());
}

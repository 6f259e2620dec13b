//! Unit tests of `secret`.

use super::*;

#[test]
fn debug_and_display_mask_the_value() {
    let s = Secret::new("hunter2");
    assert_eq!(format!("{s:?}"), "<redacted>");
    assert_eq!(format!("{s}"), "<redacted>");
    assert_eq!(s.expose(), "hunter2");
}

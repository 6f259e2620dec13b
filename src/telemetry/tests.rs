use super::*;

#[test]
fn priorities_follow_sd_daemon() {
    assert_eq!(syslog_priority(&Level::ERROR), 3);
    assert_eq!(syslog_priority(&Level::WARN), 4);
    assert_eq!(syslog_priority(&Level::INFO), 6);
    assert_eq!(syslog_priority(&Level::DEBUG), 7);
    assert_eq!(syslog_priority(&Level::TRACE), 7);
}

#[test]
fn journal_stream_must_name_this_very_file() {
    assert!(journal_stream_matches("8:12345", 8, 12345));
    assert!(journal_stream_matches(" 8:12345\n", 8, 12345));
    // Inherited from a parent whose stderr was the journal, but ours is not.
    assert!(!journal_stream_matches("8:12345", 8, 12346));
    assert!(!journal_stream_matches("9:12345", 8, 12345));
    for bad in ["", ":", "8", "8:", ":12345", "x:12345", "8:12345:1", "-8:12345"] {
        assert!(!journal_stream_matches(bad, 8, 12345), "{bad:?}");
    }
}

#[test]
fn every_line_of_an_event_gets_the_prefix() {
    assert_eq!(prefix_lines(4, b"WARN one\n"), b"<4>WARN one\n");
    assert_eq!(
        prefix_lines(3, b"ERROR first\ncontinued\n"),
        b"<3>ERROR first\n<3>continued\n"
    );
    // A last line without a newline is prefixed too; nothing is added after it.
    assert_eq!(prefix_lines(6, b"a\nb"), b"<6>a\n<6>b");
    assert_eq!(prefix_lines(7, b""), b"");
}

#[test]
fn without_the_journal_the_bytes_pass_unchanged() {
    let w = Stderr { journal: false }.make_writer_at(&Level::WARN);
    assert_eq!(w.priority, None);
    let w = Stderr { journal: true }.make_writer_at(&Level::WARN);
    assert_eq!(w.priority, Some(4));
}

#[test]
fn syslog_spellings_are_levels_and_unknown_words_are_refused() {
    use tracing::Level;
    use tracing_subscriber::filter::LevelFilter;
    let cases = [
        ("warning", LevelFilter::WARN),
        ("WARN", LevelFilter::WARN),
        ("err", LevelFilter::ERROR),
        ("crit", LevelFilter::ERROR),
        ("notice", LevelFilter::INFO),
        ("debug", LevelFilter::DEBUG),
        ("hyper_util=debug", LevelFilter::INFO),
    ];
    for (spec, want) in cases {
        let f = filter(spec).unwrap_or_else(|e| panic!("{spec}: {e}"));
        assert_eq!(f.default_level(), Some(want), "{spec}");
    }
    // Error lines of the sidecar pass every accepted filter.
    let f = filter("warning").unwrap();
    assert!(f.would_enable("ethgas_sidecar::auth", &Level::ERROR));
    assert!(!f.would_enable("ethgas_sidecar::auth", &Level::INFO));
    for bad in ["warnings", "verbose", "ethgas_sidecar"] {
        let err = filter(bad).err().unwrap_or_else(|| panic!("{bad} accepted"));
        assert!(err.contains("not a level") && err.contains("warn"), "{bad}: {err}");
    }
    for bad in ["off", "info,off"] {
        let err = filter(bad).err().unwrap_or_else(|| panic!("{bad} accepted"));
        assert!(err.contains("quietest level is \"error\""), "{bad}: {err}");
    }
    // `off` for one target is a choice, not silence.
    assert!(filter("info,hyper_util=off").is_ok());
}

use std::time::Duration;

use super::*;

const SECOND: Duration = Duration::from_secs(1);

#[test]
fn every_part_counts_as_beaten_at_the_start_then_goes_stale_in_slot_order() {
    let beats = Heartbeats::new(Some(SECOND), 2);
    let _hearts: Vec<Heart> = [Part::AuthTask, Part::Worker(0), Part::Worker(1)]
        .into_iter()
        .map(|p| beats.heart(p))
        .collect();
    assert_eq!(beats.stale_at(SECOND, Duration::from_millis(1000)), None);
    assert_eq!(
        beats.stale_at(SECOND, Duration::from_millis(1001)),
        Some((Part::AuthTask, Duration::from_millis(1001)))
    );
}

#[test]
fn the_silent_part_is_named_with_how_long_it_has_been_silent() {
    let beats = Heartbeats::new(Some(SECOND), 2);
    let _hearts: Vec<Heart> = [Part::AuthTask, Part::Worker(0), Part::Worker(1)]
        .into_iter()
        .map(|p| beats.heart(p))
        .collect();
    // The auth task and worker 1 beat at 5 s; worker 0 last at the start.
    beats.slots[0].last.store(5_000, Ordering::Relaxed);
    beats.slots[2].last.store(5_000, Ordering::Relaxed);
    let (part, silent) = beats
        .stale_at(SECOND, Duration::from_millis(5_500))
        .expect("worker 0 is stale");
    assert_eq!(part, Part::Worker(0));
    assert_eq!(silent, Duration::from_millis(5_500));
    assert_eq!(part.to_string(), "proxy worker 0");
    // Once it beats again, nothing is stale.
    beats.slots[1].last.store(5_400, Ordering::Relaxed);
    assert_eq!(beats.stale_at(SECOND, Duration::from_millis(5_500)), None);
}

#[test]
fn a_part_that_ended_no_longer_counts() {
    let beats = Heartbeats::new(Some(SECOND), 1);
    let auth = beats.heart(Part::AuthTask);
    let worker = beats.heart(Part::Worker(0));
    drop(worker);
    drop(auth);
    assert_eq!(beats.stale_at(SECOND, Duration::from_secs(3600)), None);
}

#[test]
fn beats_come_at_a_quarter_of_the_interval_and_not_at_all_without_a_watchdog() {
    let beats = Heartbeats::new(Some(Duration::from_millis(400)), 1);
    assert_eq!(beats.beat_period(), Some(Duration::from_millis(100)));
    assert_eq!(beats.limit(), Some(Duration::from_millis(400)));
    // A tiny interval still leaves room for four beats.
    let tiny = Heartbeats::new(Some(Duration::from_millis(1)), 1);
    assert_eq!(tiny.limit(), Some(MIN_BEAT * 4));

    let off = Heartbeats::new(None, 1);
    assert_eq!(off.beat_period(), None);
    assert!(off.heart(Part::AuthTask).ticker().0.is_none());
    assert_eq!(off.stale(), None, "without a watchdog nothing is ever stale");
}

#[tokio::test(start_paused = true)]
async fn beating_beats_while_the_work_runs_and_returns_its_output() {
    const SENTINEL: u64 = 123_456_789;
    let beats = Heartbeats::new(Some(Duration::from_millis(400)), 0);
    let heart = beats.heart(Part::AuthTask);
    let slot = &beats.slots[0].last;
    let out = heart
        .beating(async {
            // Beats at 0 and 100 ms have happened; mark the slot, and the
            // beats at 200 and 300 ms must overwrite the mark.
            tokio::time::sleep(Duration::from_millis(150)).await;
            slot.store(SENTINEL, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(200)).await;
            7
        })
        .await;
    assert_eq!(out, 7);
    let last = slot.load(Ordering::Relaxed);
    assert!(last != SENTINEL && last != RETIRED, "{last}");
    drop(heart);
    assert_eq!(slot.load(Ordering::Relaxed), RETIRED);
}

#[test]
fn panic_messages_are_kept_short() {
    let short: Box<dyn Any + Send> = Box::new("index out of bounds");
    assert_eq!(panic_message(short.as_ref()), "index out of bounds");
    let owned: Box<dyn Any + Send> = Box::new(String::from("owned message"));
    assert_eq!(panic_message(owned.as_ref()), "owned message");
    let long: Box<dyn Any + Send> = Box::new("é".repeat(500));
    let cut = panic_message(long.as_ref());
    assert_eq!(cut.chars().count(), PANIC_MESSAGE_MAX + 1);
    assert!(cut.ends_with('…'));
    let other: Box<dyn Any + Send> = Box::new(42u8);
    assert_eq!(panic_message(other.as_ref()), "(a panic without a message)");
}

#[test]
fn an_end_says_which_part_and_how() {
    let ended = Ended::new(Part::AuthTask, Failure::Panicked("boom".into()));
    assert_eq!(ended.to_string(), "the auth task panicked: boom");
    let ended = Ended::new(
        Part::Worker(1),
        Failure::NotStarted("cannot build its runtime: EMFILE".into()),
    );
    assert_eq!(
        ended.to_string(),
        "proxy worker 1 could not start: cannot build its runtime: EMFILE"
    );
    assert_eq!(
        Ended::new(Part::Worker(0), Failure::Returned).to_string(),
        "proxy worker 0 ended unexpectedly"
    );
}

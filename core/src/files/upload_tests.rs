use super::*;
use proptest::prelude::*;

fn file() -> FileId {
    FileId::of(&[7u8; 40_000])
}

fn at(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

fn drain(upload: &mut Upload) -> Vec<UploadOutput> {
    std::iter::from_fn(|| upload.poll_output()).collect()
}

fn ask(slot: usize) -> UploadOutput {
    UploadOutput::Ask { slot, step: slot }
}

fn answered(slot: usize, reply: StoreReply) -> UploadInput {
    UploadInput::Answered { slot, reply }
}

fn store_failed() -> StoreReply {
    StoreReply::Refused(ImError::StoreFailed { reason: "disk full".into() })
}

#[test]
fn a_majority_is_asked_at_once() {
    for (known, slots) in [(1, 1), (2, 2), (3, 2), (4, 3), (5, 3), (7, 4)] {
        let mut upload = Upload::new(at(0), file(), known, 0, UploadConfig::default());
        let expected: Vec<_> = (0..slots).map(ask).collect();
        assert_eq!(drain(&mut upload), expected, "{known} replicas known");
        // With the client's own, a majority of those it knows.
        assert!(slots > known / 2);
    }
}

#[test]
fn the_first_stored_from_any_replica_ends_the_upload() {
    let mut upload = Upload::new(at(0), file(), 3, 0, UploadConfig::default());
    drain(&mut upload);
    upload.handle_input(at(10), answered(0, StoreReply::Storing));
    upload.handle_input(at(20), answered(1, StoreReply::Stored));
    assert_eq!(drain(&mut upload), vec![UploadOutput::Stored]);
    assert_eq!(upload.poll_timeout(), None, "nothing more to do");
    upload.handle_timeout(at(1_000));
    upload.handle_input(at(1_000), answered(0, StoreReply::Stored));
    assert_eq!(drain(&mut upload), vec![], "said once");
}

#[test]
fn storing_is_asked_again_after_a_pause_that_doubles_to_its_cap() {
    let config = UploadConfig::default();
    let mut upload = Upload::new(at(0), file(), 1, 0, config);
    drain(&mut upload);
    let (mut now, mut pauses) = (at(0), Vec::new());
    for _ in 0..6 {
        upload.handle_input(now, answered(0, StoreReply::Storing));
        let due = upload.poll_timeout().expect("a pause");
        pauses.push(due.saturating_since(now).as_millis() as u64);
        upload.handle_timeout(due - Duration::from_micros(1));
        assert_eq!(drain(&mut upload), vec![], "not before the pause ends");
        upload.handle_timeout(due);
        assert_eq!(drain(&mut upload), vec![ask(0)]);
        now = due;
    }
    assert_eq!(pauses, [5, 10, 20, 40, 50, 50]);
}

#[test]
fn a_helper_that_fails_or_refuses_is_not_asked_again() {
    let mut upload = Upload::new(at(0), file(), 5, 0, UploadConfig::default());
    drain(&mut upload);
    upload.handle_input(at(1), UploadInput::Failed { slot: 1 });
    upload.handle_input(at(1), answered(2, store_failed()));
    upload.handle_input(at(1), answered(0, StoreReply::Storing));
    let due = upload.poll_timeout().expect("slot 0 paused");
    upload.handle_timeout(due);
    assert_eq!(drain(&mut upload), vec![ask(0)], "only the client's own");
}

#[test]
fn the_clients_own_replica_is_asked_again_after_a_failed_call() {
    let mut upload = Upload::new(at(0), file(), 3, 0, UploadConfig::default());
    drain(&mut upload);
    upload.handle_input(at(30_000), UploadInput::Failed { slot: 0 });
    upload.handle_timeout(upload.poll_timeout().expect("paused"));
    assert_eq!(drain(&mut upload), vec![ask(0)]);
}

#[test]
fn store_failed_in_a_row_ends_the_upload_and_storing_between_resets_the_count() {
    let config = UploadConfig { store_failures_max: 3, ..UploadConfig::default() };
    let mut upload = Upload::new(at(0), file(), 1, 0, config);
    drain(&mut upload);
    let mut now = at(0);
    let mut answer = |upload: &mut Upload, reply: StoreReply| {
        upload.handle_input(now, UploadInput::Served { bytes_total: now.as_micros() });
        upload.handle_input(now, answered(0, reply));
        let out = drain(upload);
        if let Some(due) = upload.poll_timeout() {
            now = due;
            upload.handle_timeout(due);
        }
        out.into_iter().chain(drain(upload)).collect::<Vec<_>>()
    };
    for reply in [store_failed(), store_failed(), StoreReply::Storing, store_failed()] {
        assert_eq!(answer(&mut upload, reply), vec![ask(0)]);
    }
    assert_eq!(answer(&mut upload, store_failed()), vec![ask(0)]);
    let third = answer(&mut upload, store_failed());
    assert!(
        matches!(
            &third[..],
            [UploadOutput::Over(UploadError::Refused(ImError::StoreFailed { .. }))]
        ),
        "{third:?}"
    );
}

#[test]
fn any_other_refusal_of_the_clients_own_ends_the_upload_at_once() {
    let mut upload = Upload::new(at(0), file(), 3, 0, UploadConfig::default());
    drain(&mut upload);
    let over = ImError::QuotaExceeded { used_bytes: 9, quota_bytes: 10, size_bytes: 2 };
    upload.handle_input(at(1), answered(0, StoreReply::Refused(over.clone())));
    assert_eq!(drain(&mut upload), vec![UploadOutput::Over(UploadError::Refused(over))]);
}

#[test]
fn an_upload_that_takes_nothing_for_the_stall_time_is_over() {
    let stall = Duration::from_secs(120);
    let config = UploadConfig { stall, ..UploadConfig::default() };
    let mut upload = Upload::new(at(0), file(), 1, 500, config);
    drain(&mut upload);
    // Bytes taken at 60 s: the stall counts from there.
    upload.handle_input(at(60_000), UploadInput::Served { bytes_total: 900 });
    // A counter that does not grow is no progress.
    upload.handle_input(at(100_000), UploadInput::Served { bytes_total: 900 });
    assert_eq!(upload.poll_timeout(), Some(at(180_000)));
    upload.handle_timeout(at(179_999));
    assert_eq!(drain(&mut upload), vec![]);
    upload.handle_timeout(at(180_000));
    assert_eq!(drain(&mut upload), vec![UploadOutput::Over(UploadError::Stalled(stall))]);
}

#[test]
fn progress_is_what_was_served_shared_among_the_replicas_asked() {
    let size = file().size_bytes;
    let mut upload = Upload::new(at(0), file(), 3, 1_000, UploadConfig::default());
    assert_eq!(upload.progress_bytes(), 0);
    upload.handle_input(at(1), UploadInput::Served { bytes_total: 1_000 + size });
    assert_eq!(upload.progress_bytes(), size / 2);
    upload.handle_input(at(2), UploadInput::Served { bytes_total: 1_000 + 5 * size });
    assert_eq!(upload.progress_bytes(), size, "never past the size");
}

#[test]
fn reports_about_a_slot_with_no_call_out_are_ignored() {
    let mut upload = Upload::new(at(0), file(), 3, 0, UploadConfig::default());
    drain(&mut upload);
    upload.handle_input(at(1), answered(0, StoreReply::Storing));
    // Slot 0 is paused: a second answer for it is stale.
    upload.handle_input(at(2), answered(0, StoreReply::Stored));
    upload.handle_input(at(2), answered(9, StoreReply::Stored));
    assert_eq!(drain(&mut upload), vec![]);
}

proptest! {
    /// Whatever the answers and timing: every ask is for a slot with no
    /// call out, at most one `Stored` or `Over` ends it, nothing follows
    /// the end, and the next timeout is never in the past.
    #[test]
    fn an_upload_keeps_its_rules_under_any_answers(
        known in 1usize..8,
        steps in proptest::collection::vec((0usize..5, 0u8..6, 0u64..3_000), 1..80),
    ) {
        let config = UploadConfig { stall: Duration::from_secs(5), ..UploadConfig::default() };
        let mut upload = Upload::new(at(0), file(), known, 0, config);
        let slots = upload.slots();
        let mut out_calls = vec![false; slots];
        let (mut now, mut served, mut ended) = (at(0), 0u64, false);
        let take = |upload: &mut Upload, out_calls: &mut Vec<bool>, ended: &mut bool| {
            while let Some(output) = upload.poll_output() {
                prop_assert!(!*ended, "{output:?} after the end");
                match output {
                    UploadOutput::Ask { slot, step } => {
                        prop_assert_eq!(slot, step);
                        prop_assert!(slot < slots && !out_calls[slot], "slot {} asked twice", slot);
                        out_calls[slot] = true;
                    }
                    UploadOutput::Stored | UploadOutput::Over(_) => *ended = true,
                }
            }
            Ok(())
        };
        take(&mut upload, &mut out_calls, &mut ended)?;
        for (slot, kind, advance_ms) in steps {
            now = now + Duration::from_millis(advance_ms);
            if upload.poll_timeout().is_some_and(|due| due <= now) {
                upload.handle_timeout(now);
                take(&mut upload, &mut out_calls, &mut ended)?;
                prop_assert!(upload.poll_timeout().is_none_or(|due| due > now), "due in the past");
            }
            let slot = slot % slots;
            let input = match kind {
                0 => answered(slot, StoreReply::Storing),
                1 => answered(slot, StoreReply::Stored),
                2 => answered(slot, store_failed()),
                3 => UploadInput::Failed { slot },
                _ => {
                    served += 16_384;
                    UploadInput::Served { bytes_total: served }
                }
            };
            if !matches!(input, UploadInput::Served { .. }) {
                if !out_calls[slot] {
                    continue; // a driver reports only calls it made
                }
                out_calls[slot] = false;
            }
            upload.handle_input(now, input);
            take(&mut upload, &mut out_calls, &mut ended)?;
            prop_assert!(upload.progress_bytes() <= file().size_bytes);
            prop_assert!(upload.poll_timeout().is_none() || !ended, "a timer after the end");
        }
    }
}

//! Restores as one event: `safe_restore` (validate, restore point, apply, verify, undo),
//! `restore_to`, `state_at_time`, and named checkpoints with paced rollbacks.
//!
//! The crash tests run on [`SimStorage`]: the same setup is replayed on a fresh simulated disk
//! for every failing or crashing operation (the journal is deterministic, so operation indices
//! repeat), and after each the recovered state must be exactly the pre-restore state or
//! exactly the restored one.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use reprise::checkpoints::{self, Pacer, RollbackOptions, RollbackStatus};
use reprise::crypto::{Key, Keyring};
use reprise::restore::{restore_state, restore_target, restore_to, safe_restore, UNDO_LABEL};
use reprise::session::{apply, State, Track, TrackFields, Workload, HISTORY_MAX_DEFAULT};
use reprise::storage::sim::{Capture, CrashMode, Fault, InjectedError, OpKind, SimStorage};
use reprise::storage::Storage;
use reprise::{Config, Durability, Error, Event, GuildId, GuildState, Journal};

use crate::common::{open_sim as open, SIM_ROOT as ROOT};
const GUILD: GuildId = GuildId(613_425_648_685_547_541);

fn root() -> &'static Path {
    Path::new(ROOT)
}

fn keyed() -> Config {
    let ring = Keyring::new(Key::from_bytes([7; 32]), []).unwrap();
    Config::default().with_keys(ring)
}

/// A simulated disk holding an empty, durable journal directory.
fn fresh_storage(seed: u64) -> Arc<SimStorage> {
    let s = SimStorage::new(seed);
    s.create_dir_all(root()).unwrap();
    s.sync_dir(Path::new("/srv")).unwrap();
    s.sync_dir(Path::new("/")).unwrap();
    Arc::new(s)
}

/// The state after `n` workload events of `seed`.
fn workload_state(seed: u64, n: usize) -> State {
    let mut w = Workload::new(seed);
    let mut state = State::new(HISTORY_MAX_DEFAULT);
    for _ in 0..n {
        let e = w.next_event(&state);
        apply(&mut state, &e);
    }
    state
}

/// Appends `n` workload events of `seed` to `guild` (not synced: the restore must make what
/// it builds on durable itself) and returns the guild's state.
fn play(j: &mut Journal, guild: GuildId, seed: u64, n: usize) -> GuildState {
    let mut w = Workload::new(seed);
    let mut state = j.state(guild).unwrap().state.clone();
    for _ in 0..n {
        let e = w.next_event(&state);
        apply(&mut state, &e);
        j.append(guild, &e, Durability::None).unwrap();
    }
    let now = j.state(guild).unwrap().clone();
    assert_eq!(now.state, state);
    now
}

/// One deterministic setup: a guild with 60 events, and a target state from another workload.
struct Setup {
    storage: Arc<SimStorage>,
    journal: Journal,
    pre: GuildState,
    target: State,
}

fn setup(config: &Config) -> Setup {
    let storage = fresh_storage(11);
    let mut journal = open(&storage, config).unwrap();
    let pre = play(&mut journal, GUILD, 3, 60);
    journal.sync().unwrap();
    let target = workload_state(99, 45);
    assert_ne!(target, pre.state);
    Setup {
        storage,
        journal,
        pre,
        target,
    }
}

/// The recovered state of `GUILD` on `storage` (a new journal: a process restart).
fn recovered(storage: &Arc<SimStorage>, config: &Config) -> reprise::Result<GuildState> {
    let mut j = open(storage, config)?;
    let state = j.state(GUILD)?.clone();
    Ok(state)
}

/// The operation index at which the restore's append has returned: the first operation on the
/// guild's files after the commit-log fsync of the `state_restored` event (found by tracing a
/// run without faults).
fn acknowledged_at(config: &Config) -> (u64, u64) {
    let mut s = setup(config);
    s.storage.set_trace(true);
    let first = s.storage.op_count();
    safe_restore(&mut s.journal, GUILD, &s.target, Some("probe")).unwrap();
    let end = s.storage.op_count();
    let trace = s.storage.trace();
    let is_clog = |p: &Path| p.extension().is_some_and(|e| e == "clog");
    let renamed = trace
        .iter()
        .position(|(k, _)| *k == OpKind::Rename)
        .expect("the restore point is written");
    let synced = trace
        .iter()
        .enumerate()
        .skip(renamed)
        .find(|(_, (k, p))| *k == OpKind::SyncData && is_clog(p))
        .map(|(i, _)| i)
        .expect("the restore is fsynced");
    let guild_dir = reprise::layout::guild_dir(root(), GUILD);
    let after = trace
        .iter()
        .enumerate()
        .skip(synced)
        .find(|(_, (_, p))| p.starts_with(&guild_dir))
        .map(|(i, _)| i)
        .expect("the restore is verified from the files");
    (first + after as u64, end)
}

#[test]
fn a_safe_restore_is_one_event_with_a_restore_point() {
    let mut s = setup(&Config::default());
    let seq = safe_restore(&mut s.journal, GUILD, &s.target, Some("before-deploy")).unwrap();
    assert_eq!(seq, s.pre.seq + 1);
    let now = s.journal.state(GUILD).unwrap().clone();
    assert_eq!((now.seq, &now.state), (seq, &s.target));
    // The restore point: a snapshot of the pre-restore state.
    let snap = reprise::layout::snapshot_path(root(), GUILD, s.pre.seq);
    assert!(s.storage.file_len(&snap).is_ok(), "no restore point");
    assert_eq!(
        s.journal.state_at(GUILD, s.pre.seq).unwrap().state,
        s.pre.state
    );
    // One event in the log, visible like any other; earlier history untouched.
    let events: Vec<_> = s
        .journal
        .events(GUILD)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let last = events.last().unwrap();
    assert_eq!(last.seq, seq);
    let Event::StateRestored {
        state,
        from_seq,
        label,
    } = &last.event
    else {
        panic!("not a state_restored: {:?}", last.event);
    };
    assert_eq!((**state).clone(), s.target);
    assert_eq!(*from_seq, None);
    assert_eq!(label.as_deref(), Some("before-deploy"));
    // A restart recovers it, and the JSON form of the event appends again (apply feeds it back).
    drop(s.journal);
    let back = recovered(&s.storage, &Config::default()).unwrap();
    assert_eq!((back.seq, back.state), (seq, s.target.clone()));
    let mut j = open(&s.storage, &Config::default()).unwrap();
    let again = Event::from_json(&last.event.to_json()).unwrap();
    assert_eq!(again, last.event);
    j.append(GUILD, &again, Durability::Always).unwrap();
    assert_eq!(j.state(GUILD).unwrap().state, s.target);
    assert!(j.verify().unwrap().is_sound());
}

#[test]
fn an_invalid_or_oversized_target_writes_nothing() {
    let mut s = setup(&Config::default());
    let files_before = s.storage.entries();
    let mut loud = s.target.clone();
    loud.player.volume = 1001;
    let mut ids = s.target.clone();
    ids.next_entry_id = 0;
    for bad in [loud, ids] {
        let err = safe_restore(&mut s.journal, GUILD, &bad, None).unwrap_err();
        assert!(matches!(err, Error::InvalidEvent { .. }), "{err}");
    }
    let err = safe_restore(&mut s.journal, GUILD, &s.target, Some("")).unwrap_err();
    assert!(matches!(err, Error::InvalidEvent { .. }), "{err}");
    // 10,000 tracks with 2 KiB titles: about 20 MiB, over the 16 MiB frame limit.
    let mut huge = State::new(HISTORY_MAX_DEFAULT);
    let title = "t".repeat(2048);
    huge.queue.upcoming = (0..10_000u64)
        .map(|i| reprise::session::QueueEntry {
            id: i + 1,
            track: Track::new(format!("QAAA{i}"), title.clone()),
        })
        .collect();
    huge.next_entry_id = 10_001;
    let err = safe_restore(&mut s.journal, GUILD, &huge, None).unwrap_err();
    assert!(matches!(err, Error::EventTooLarge { .. }), "{err}");
    assert_eq!(s.journal.state(GUILD).unwrap(), &s.pre);
    assert_eq!(s.storage.entries(), files_before, "something was written");
}

#[test]
fn a_thousand_track_state_fits_well_under_the_frame_limit() {
    let mut state = State::new(HISTORY_MAX_DEFAULT);
    let mut w = reprise::session::Rng::new(5);
    state.queue.upcoming = (0..1000u64)
        .map(|i| {
            let mut t: TrackFields = reprise::session::track(&mut w, i).fields();
            t.title = format!("{} — a realistic title of some length {i}", t.title);
            reprise::session::QueueEntry {
                id: i + 1,
                track: t.into(),
            }
        })
        .collect();
    state.next_entry_id = 1001;
    let event = Event::StateRestored {
        state: Box::new(state.clone()),
        from_seq: Some(1),
        label: Some("big".into()),
    };
    let mut payload = Vec::new();
    reprise::format::encode_event(&event, &mut payload);
    let limit = reprise::format::frame::PAYLOAD_LEN_MAX as usize;
    assert!(payload.len() * 16 < limit, "{} bytes", payload.len());
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(dir.path(), Config::default()).unwrap();
    safe_restore(&mut j, GUILD, &state, Some("big")).unwrap();
    assert_eq!(j.state(GUILD).unwrap().state, state);
}

#[test]
fn a_failure_after_the_apply_step_is_undone() {
    for config in [Config::default(), keyed()] {
        let (ack, end) = acknowledged_at(&config);
        assert!(end > ack, "the restore reads nothing back");
        let mut undone = 0;
        for op in ack..end {
            let mut s = setup(&config);
            s.storage.set_fault(Fault::FailOp {
                op,
                error: InjectedError::Eio,
            });
            let err = safe_restore(&mut s.journal, GUILD, &s.target, Some("deploy")).unwrap_err();
            let Error::RestoreFailed {
                seq,
                rollback_seq,
                previous_seq,
                ..
            } = &err
            else {
                panic!("op {op}: {err}");
            };
            assert_eq!(*seq, s.pre.seq + 1, "op {op}");
            assert_eq!(*previous_seq, s.pre.seq, "op {op}");
            let failed = s.storage.injected_faults();
            assert_eq!(failed.len(), 1, "op {op}");
            if rollback_seq.is_none() {
                // Only a failed write can refuse the undo (it poisons the guild's log): the
                // restore, acknowledged, stays.
                assert!(failed[0].kind.is_mutation(), "op {op}: {err}");
                assert!(err.to_string().contains("reopen"), "{err}");
                drop(s.journal);
                let back = recovered(&s.storage, &config).unwrap();
                assert_eq!((back.seq, &back.state), (*seq, &s.target), "op {op}");
                continue;
            }
            undone += 1;
            assert_eq!(*rollback_seq, Some(s.pre.seq + 2), "op {op}: {err}");
            let now = s.journal.state(GUILD).unwrap().clone();
            assert_eq!(now.state, s.pre.state, "op {op}");
            // The undo is the last event, labelled, pointing at the pre-restore seq.
            let last = s.journal.events(GUILD).unwrap().last().unwrap().unwrap();
            assert!(matches!(
                &last.event,
                Event::StateRestored { from_seq: Some(f), label: Some(l), .. }
                    if *f == s.pre.seq && l == UNDO_LABEL
            ));
            // After a process restart and after a power loss: the pre-restore state.
            drop(s.journal);
            let back = recovered(&s.storage, &config).unwrap();
            assert_eq!(back.state, s.pre.state, "op {op}: restart");
            let crashed = Arc::new(s.storage.crash(CrashMode::DropUnsynced));
            let back = recovered(&crashed, &config).unwrap();
            assert_eq!(back.state, s.pre.state, "op {op}: power loss");
        }
        assert!(undone >= 3, "only {undone} failures were undone");
    }
}

#[test]
fn a_crash_at_every_operation_recovers_the_state_before_or_after_the_restore() {
    for config in [Config::default(), keyed()] {
        let (ack, end) = acknowledged_at(&config);
        let mut s = setup(&config);
        let first = s.storage.op_count();
        s.storage.set_capture(Capture::Every);
        safe_restore(&mut s.journal, GUILD, &s.target, Some("deploy")).unwrap();
        let mut captures = s.storage.take_captures();
        captures.push(s.storage.capture_now());
        assert_eq!(captures.len() as u64, end - first + 1);
        let (mut before, mut after) = (0, 0);
        for captured in &captures {
            let op = captured.op();
            for mode in [
                CrashMode::DropUnsynced,
                CrashMode::TornTail { seed: op },
                CrashMode::Writeback { seed: op },
                CrashMode::Holed { seed: op },
            ] {
                let crashed = Arc::new(captured.crash(mode));
                let back = recovered(&crashed, &config)
                    .unwrap_or_else(|e| panic!("op {op} {mode:?}: {e}"));
                if back.seq == s.pre.seq {
                    assert!(
                        op < ack,
                        "op {op} {mode:?}: the acknowledged restore was lost"
                    );
                    assert_eq!(back.state, s.pre.state, "op {op} {mode:?}");
                    before += 1;
                } else {
                    assert_eq!(back.seq, s.pre.seq + 1, "op {op} {mode:?}");
                    assert_eq!(back.state, s.target, "op {op} {mode:?}");
                    after += 1;
                }
            }
        }
        assert!(before > 0 && after > 0, "{before} / {after}");
    }
}

#[test]
fn a_failed_restore_and_its_undo_recover_consistently_after_a_crash_at_every_operation() {
    let config = Config::default();
    let (ack, _) = acknowledged_at(&config);
    let mut s = setup(&config);
    // The first read after the restore was applied fails: verification fails, the undo runs.
    let read_at = (ack..)
        .find(|&op| {
            let mut probe = setup(&config);
            probe.storage.set_fault(Fault::FailOp {
                op,
                error: InjectedError::Eio,
            });
            let _ = safe_restore(&mut probe.journal, GUILD, &probe.target, None);
            probe
                .storage
                .injected_faults()
                .first()
                .is_some_and(|f| !f.kind.is_mutation())
        })
        .unwrap();
    s.storage.set_fault(Fault::FailOp {
        op: read_at,
        error: InjectedError::Eio,
    });
    s.storage.set_capture(Capture::Every);
    let err = safe_restore(&mut s.journal, GUILD, &s.target, None).unwrap_err();
    assert!(
        matches!(
            err,
            Error::RestoreFailed {
                rollback_seq: Some(_),
                ..
            }
        ),
        "{err}"
    );
    let mut captures = s.storage.take_captures();
    captures.push(s.storage.capture_now());
    let mut seen = std::collections::BTreeSet::new();
    for captured in &captures {
        let op = captured.op();
        for mode in [
            CrashMode::DropUnsynced,
            CrashMode::TornTail { seed: op },
            CrashMode::Writeback { seed: op },
            CrashMode::Holed { seed: op },
        ] {
            let crashed = Arc::new(captured.crash(mode));
            let back =
                recovered(&crashed, &config).unwrap_or_else(|e| panic!("op {op} {mode:?}: {e}"));
            let expected = if back.seq == s.pre.seq + 1 {
                &s.target
            } else {
                &s.pre.state
            };
            assert!(
                back.seq >= s.pre.seq && back.seq <= s.pre.seq + 2,
                "op {op}"
            );
            assert_eq!(&back.state, expected, "op {op} {mode:?} seq {}", back.seq);
            if op < ack {
                assert_ne!(back.seq, s.pre.seq + 2, "op {op}");
            }
            seen.insert(back.seq - s.pre.seq);
        }
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), [0, 1, 2]);
    // Once the undo was acknowledged a power loss keeps it.
    let crashed = Arc::new(s.storage.crash(CrashMode::DropUnsynced));
    let back = recovered(&crashed, &config).unwrap();
    assert_eq!((back.seq, back.state), (s.pre.seq + 2, s.pre.state.clone()));
}

#[test]
fn restore_to_makes_a_past_state_current_without_rewriting_history() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::default().without_auto_snapshots();
    let mut j = Journal::open(dir.path(), config.clone()).unwrap();
    let past = play(&mut j, GUILD, 21, 80);
    let now = play(&mut j, GUILD, 22, 40);
    let restored = restore_to(&mut j, GUILD, past.seq, Some("oops")).unwrap();
    assert_eq!(restored.seq, now.seq + 1);
    assert_eq!(restored.previous_seq, now.seq);
    assert_eq!(restored.restored_from_seq, Some(past.seq));
    let current = j.state(GUILD).unwrap().clone();
    // The past state, position exact (no anchor to extrapolate from), ids still growing.
    let expected = restore_target(&now.state, &past.state);
    assert_eq!(current.state, expected);
    assert_eq!(current.state.queue, past.state.queue);
    assert_eq!(current.state.filters, past.state.filters);
    assert_eq!(
        current.state.player.position_ms,
        past.state.player.position_ms
    );
    assert_eq!(current.state.player.position_anchor_unix_ms, None);
    assert_eq!(
        current.state.next_entry_id,
        past.state.next_entry_id.max(now.state.next_entry_id)
    );
    // History is intact: every earlier state is still readable.
    assert_eq!(j.state_at(GUILD, past.seq).unwrap().state, past.state);
    assert_eq!(j.state_at(GUILD, now.seq).unwrap().state, now.state);
    // Out of range: nothing written.
    let err = restore_to(&mut j, GUILD, restored.seq + 5, None).unwrap_err();
    assert!(matches!(err, Error::SeqAhead { .. }), "{err}");
    assert_eq!(j.state(GUILD).unwrap().seq, restored.seq);
}

#[test]
fn restore_to_a_compacted_seq_is_refused_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::default()
        .without_auto_snapshots()
        .with_snapshots_retained(1);
    let mut j = Journal::open(dir.path(), config).unwrap();
    play(&mut j, GUILD, 31, 30);
    j.snapshot_now(GUILD).unwrap();
    let now = play(&mut j, GUILD, 32, 30);
    j.snapshot_now(GUILD).unwrap();
    let err = restore_to(&mut j, GUILD, 10, None).unwrap_err();
    assert!(matches!(err, Error::Compacted { .. }), "{err}");
    assert_eq!(j.state(GUILD).unwrap().seq, now.seq);
}

/// Appends `n` workload events with the given append times.
fn play_at(j: &mut Journal, guild: GuildId, seed: u64, times: &[u64]) -> Vec<GuildState> {
    let mut w = Workload::new(seed);
    let mut out = Vec::new();
    for &t in times {
        let state = j.state(guild).unwrap().state.clone();
        let e = w.next_event(&state);
        j.append_at(guild, &e, Durability::None, t).unwrap();
        out.push(j.state(guild).unwrap().clone());
    }
    out
}

#[test]
fn state_at_time_is_the_last_state_at_or_before_the_time() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(dir.path(), Config::default().without_auto_snapshots()).unwrap();
    let times = [1_000, 2_000, 2_000, 3_000, 5_000];
    let states = play_at(&mut j, GUILD, 41, &times);
    let at = |j: &mut Journal, t: u64| j.state_at_time(GUILD, t).map(|s| (s.seq, s.state));
    assert_eq!(at(&mut j, 999).unwrap(), (0, State::default()));
    assert_eq!(at(&mut j, 1_000).unwrap(), (1, states[0].state.clone()));
    assert_eq!(at(&mut j, 1_999).unwrap(), (1, states[0].state.clone()));
    assert_eq!(at(&mut j, 2_000).unwrap(), (3, states[2].state.clone()));
    assert_eq!(at(&mut j, 4_999).unwrap(), (4, states[3].state.clone()));
    assert_eq!(at(&mut j, u64::MAX).unwrap(), (5, states[4].state.clone()));
    // A clock stepped back: the run of events at or before the time ends at the first later one.
    let back = play_at(&mut j, GUILD, 42, &[4_000, 6_000]);
    assert_eq!(at(&mut j, 4_500).unwrap().0, 4);
    assert_eq!(at(&mut j, 6_000).unwrap(), (7, back[1].state.clone()));
    // restore --to-time
    let r = reprise::restore::restore_to_time(&mut j, GUILD, 2_500, None).unwrap();
    assert_eq!(r.restored_from_seq, Some(3));
    assert_eq!(j.state(GUILD).unwrap().state.queue, states[2].state.queue);
    // An unknown guild at any time: the empty state.
    assert_eq!(j.state_at_time(GuildId(9), 5).unwrap().seq, 0);
}

#[test]
fn state_at_time_before_the_retained_log_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::default()
        .without_auto_snapshots()
        .with_snapshots_retained(1);
    let mut j = Journal::open(dir.path(), config).unwrap();
    play_at(&mut j, GUILD, 51, &[100, 200, 300]);
    j.snapshot_now(GUILD).unwrap();
    play_at(&mut j, GUILD, 52, &[400, 500]);
    j.snapshot_now(GUILD).unwrap();
    play_at(&mut j, GUILD, 53, &[600]);
    let err = j.state_at_time(GUILD, 250).unwrap_err();
    let Error::TimeCompacted {
        oldest_seq,
        oldest_unix_ms,
        ..
    } = err
    else {
        panic!("{err}");
    };
    assert!(oldest_seq > 3, "{oldest_seq}");
    assert!(oldest_unix_ms.is_some_and(|t| t > 250));
    assert_eq!(j.state_at_time(GUILD, 600).unwrap().seq, 6);
}

/// A pacer with a fake clock: sleeping moves the clock; each unit of work costs `work_ms`.
#[derive(Default)]
struct FakePacer {
    now: u64,
    sleeps: Vec<u64>,
}

impl Pacer for FakePacer {
    fn now_ms(&mut self) -> u64 {
        self.now
    }

    fn sleep_ms(&mut self, ms: u64) {
        self.sleeps.push(ms);
        self.now += ms;
    }
}

#[test]
fn rolling_batches_start_at_the_pace() {
    let items: Vec<u32> = (0..10).collect();
    let mut pacer = FakePacer {
        now: 5_000,
        ..FakePacer::default()
    };
    let mut batches = Vec::new();
    let mut seen = Vec::new();
    checkpoints::rolling(
        &items,
        3,
        Duration::from_millis(100),
        &mut pacer,
        |k, batch| {
            batches.push(k);
            seen.extend_from_slice(batch);
            Ok::<(), ()>(())
        },
    )
    .unwrap();
    assert_eq!(seen, items);
    assert_eq!(batches, [0, 1, 2, 3]);
    assert_eq!(pacer.now, 5_300);
    // No work time passed on the fake clock: every batch after the first waits the full pace.
    assert_eq!(pacer.sleeps, [100, 100, 100]);
    // Work that takes longer than the pace is followed at once; shorter work waits the rest.
    let costs = [250u64, 30, 0, 0];
    let mut i = 0;
    let cell = std::cell::RefCell::new(FakePacer::default());
    checkpoints::rolling(
        &items,
        3,
        Duration::from_millis(100),
        &mut PacerRef(&cell),
        |_, _| {
            cell.borrow_mut().now += costs[i];
            i += 1;
            Ok::<(), ()>(())
        },
    )
    .unwrap();
    // batch 0 at 0 (took 250), batch 1 due at 100: at once; batch 1 took 30 (now 280), batch
    // 2 due at 200: at once; batch 3 due at 300: waits 20.
    assert_eq!(cell.borrow().sleeps, [20]);
    // An error stops the batches.
    let mut p = FakePacer::default();
    let mut ran = 0;
    let r = checkpoints::rolling(&items, 4, Duration::ZERO, &mut p, |k, _| {
        ran += 1;
        if k == 1 {
            Err("boom")
        } else {
            Ok(())
        }
    });
    assert_eq!((r, ran), (Err("boom"), 2));
    assert!(p.sleeps.is_empty(), "zero pace never sleeps");
}

/// A [`Pacer`] over a shared fake, so the work closure can advance its clock.
struct PacerRef<'a>(&'a std::cell::RefCell<FakePacer>);

impl Pacer for PacerRef<'_> {
    fn now_ms(&mut self) -> u64 {
        self.0.borrow_mut().now_ms()
    }

    fn sleep_ms(&mut self, ms: u64) {
        self.0.borrow_mut().sleep_ms(ms);
    }
}

const FLEET: [GuildId; 5] = [
    GuildId(1),
    GuildId(2),
    GuildId(3),
    GuildId(40),
    GuildId(500),
];

#[test]
fn checkpoint_then_rollback_in_paced_batches() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::default()
        .without_auto_snapshots()
        .with_snapshots_retained(1);
    let mut j = Journal::open(dir.path(), config.clone()).unwrap();
    let mut at_checkpoint = Vec::new();
    for (i, g) in FLEET.iter().enumerate() {
        at_checkpoint.push(play(&mut j, *g, 100 + i as u64, 30 + 7 * i));
    }
    let taken = checkpoints::checkpoint(&mut j, "v41").unwrap();
    assert_eq!(
        taken.guilds,
        at_checkpoint
            .iter()
            .map(|s| (s.guild, s.seq))
            .collect::<Vec<_>>()
    );
    let err = checkpoints::checkpoint(&mut j, "v41").unwrap_err();
    assert!(matches!(err, Error::Checkpoint { .. }), "{err}");
    // The deployment goes wrong: every guild moves on, a new guild appears, and compaction
    // drops the log the checkpoint was taken at.
    for (i, g) in FLEET.iter().enumerate() {
        play(&mut j, *g, 200 + i as u64, 25);
        j.snapshot_now(*g).unwrap();
        play(&mut j, *g, 300 + i as u64, 5);
        j.snapshot_now(*g).unwrap();
    }
    let newcomer = play(&mut j, GuildId(77), 9, 20);
    let err = j.state_at(FLEET[0], at_checkpoint[0].seq).unwrap_err();
    assert!(matches!(err, Error::Compacted { .. }), "{err}");
    j.close().unwrap();

    let mut j = Journal::open(dir.path(), config.clone()).unwrap();
    let listed = checkpoints::checkpoints(&j).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].label, "v41");
    assert_eq!(listed[0].guilds, taken.guilds);
    let options = RollbackOptions {
        guilds: None,
        batch: 2,
        pace: Duration::from_millis(500),
    };
    let mut pacer = FakePacer::default();
    let mut streamed = Vec::new();
    let done = checkpoints::rollback(&mut j, "v41", &options, &mut pacer, &mut |r| {
        streamed.push(*r)
    })
    .unwrap();
    assert_eq!(done, streamed);
    assert_eq!(pacer.sleeps, [500, 500], "3 batches of at most 2");
    assert_eq!(
        done.iter().map(|r| r.batch).collect::<Vec<_>>(),
        [0, 0, 1, 1, 2]
    );
    for (r, before) in done.iter().zip(&at_checkpoint) {
        assert_eq!(r.guild, before.guild);
        assert_eq!(r.status, RollbackStatus::Restored);
        assert_eq!(r.restored_from_seq, before.seq);
        let now = j.state(r.guild).unwrap().clone();
        assert_eq!(now.seq, r.seq);
        let mut expected = before.state.clone();
        expected.player.position_anchor_unix_ms = None;
        expected.next_entry_id = now.state.next_entry_id;
        assert_eq!(now.state, expected, "guild {}", r.guild);
        assert!(now.state.next_entry_id >= before.state.next_entry_id);
    }
    assert_eq!(
        j.state(GuildId(77)).unwrap(),
        &newcomer,
        "a new guild is untouched"
    );
    // Again: nothing left to do.
    let again = checkpoints::rollback(
        &mut j,
        "v41",
        &options,
        &mut FakePacer::default(),
        &mut |_| {},
    )
    .unwrap();
    assert!(again.iter().all(|r| r.status == RollbackStatus::Unchanged));
    assert!(j.verify().unwrap().is_sound());
}

#[test]
fn rollback_of_a_subset_and_of_damaged_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(dir.path(), Config::default()).unwrap();
    let mut at_checkpoint = Vec::new();
    for (i, g) in FLEET.iter().enumerate() {
        at_checkpoint.push(play(&mut j, *g, 400 + i as u64, 20));
    }
    checkpoints::checkpoint(&mut j, "blue").unwrap();
    let moved: Vec<GuildState> = FLEET
        .iter()
        .enumerate()
        .map(|(i, g)| play(&mut j, *g, 500 + i as u64, 10))
        .collect();
    let subset = RollbackOptions {
        guilds: Some(vec![FLEET[3], FLEET[1], FLEET[3]]),
        batch: 10,
        pace: Duration::ZERO,
    };
    let done = checkpoints::rollback(
        &mut j,
        "blue",
        &subset,
        &mut FakePacer::default(),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(
        done.iter().map(|r| r.guild).collect::<Vec<_>>(),
        [FLEET[3], FLEET[1]]
    );
    assert_eq!(
        j.state(FLEET[0]).unwrap(),
        &moved[0],
        "not selected: untouched"
    );
    assert_eq!(
        j.state(FLEET[1]).unwrap().state.queue,
        at_checkpoint[1].state.queue
    );
    // A guild that is not in the checkpoint, an unknown checkpoint, a bad label: usage errors.
    for (label, guilds) in [
        ("blue", Some(vec![GuildId(12345)])),
        ("green", None),
        ("../blue", None),
    ] {
        let options = RollbackOptions {
            guilds,
            ..RollbackOptions::default()
        };
        let err = checkpoints::rollback(
            &mut j,
            label,
            &options,
            &mut FakePacer::default(),
            &mut |_| {},
        )
        .unwrap_err();
        assert!(matches!(err, Error::Checkpoint { .. }), "{label}: {err}");
    }
    // A damaged state file: refused before any guild is restored.
    let path = reprise::layout::checkpoint_state_path(dir.path(), "blue", FLEET[4]);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let seqs: Vec<u64> = FLEET.iter().map(|g| j.state(*g).unwrap().seq).collect();
    let err = checkpoints::rollback(
        &mut j,
        "blue",
        &RollbackOptions::default(),
        &mut FakePacer::default(),
        &mut |_| {},
    )
    .unwrap_err();
    let c = err.corruption().expect("corruption");
    assert_eq!(c.path, path);
    let after: Vec<u64> = FLEET.iter().map(|g| j.state(*g).unwrap().seq).collect();
    assert_eq!(after, seqs, "nothing was restored");
    // Removing the checkpoint.
    checkpoints::remove_checkpoint(&mut j, "blue").unwrap();
    assert!(checkpoints::checkpoints(&j).unwrap().is_empty());
    assert!(!path.exists());
    checkpoints::checkpoint(&mut j, "blue").unwrap();
}

#[test]
fn an_encrypted_checkpoint_holds_no_secret_in_the_clear() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(dir.path(), keyed()).unwrap();
    let secret_title = "Top Secret Anthem";
    let secret_token = "voice-token-0123456789";
    let events = [
        format!(
            r#"{{"type":"voice_connected","session_id":"sess","channel_id":1,"endpoint":"e","token":"{secret_token}"}}"#
        ),
        format!(
            r#"{{"type":"tracks_enqueued","tracks":[{{"encoded":"QAAAjQ","title":"{secret_title}"}}]}}"#
        ),
        r#"{"type":"track_started"}"#.to_owned(),
    ];
    for e in &events {
        j.append(GUILD, &Event::from_json(e).unwrap(), Durability::Always)
            .unwrap();
    }
    let state = j.state(GUILD).unwrap().state.clone();
    checkpoints::checkpoint(&mut j, "sealed").unwrap();
    for entry in std::fs::read_dir(reprise::layout::checkpoint_dir(dir.path(), "sealed")).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        for secret in [secret_title, secret_token] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{secret} in the clear"
            );
        }
    }
    j.append(GUILD, &Event::SessionEnded, Durability::Always)
        .unwrap();
    let done = checkpoints::rollback(
        &mut j,
        "sealed",
        &RollbackOptions::default(),
        &mut FakePacer::default(),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(done.len(), 1);
    assert_eq!(j.state(GUILD).unwrap().state.queue, state.queue);
    drop(j);
    // Without the key, the checkpoint cannot be used.
    let err = Journal::open(dir.path(), Config::default()).unwrap_err();
    assert!(matches!(err, Error::KeyMismatch { .. }), "{err}");
}

#[test]
fn a_crash_while_a_checkpoint_is_taken_leaves_none_or_all_of_it() {
    let storage = fresh_storage(21);
    let mut j = open(&storage, &Config::default()).unwrap();
    let mut states = Vec::new();
    for (i, g) in FLEET.iter().enumerate() {
        states.push(play(&mut j, *g, 600 + i as u64, 15));
    }
    storage.set_capture(Capture::Every);
    checkpoints::checkpoint(&mut j, "cut").unwrap();
    let mut captures = storage.take_captures();
    captures.push(storage.capture_now());
    let (mut none, mut all) = (0, 0);
    for captured in &captures {
        let op = captured.op();
        for mode in [
            CrashMode::DropUnsynced,
            CrashMode::TornTail { seed: op },
            CrashMode::Writeback { seed: op },
            CrashMode::Holed { seed: op },
        ] {
            let crashed = Arc::new(captured.crash(mode));
            let mut j = open(&crashed, &Config::default()).unwrap();
            let listed = checkpoints::checkpoints(&j).unwrap();
            if listed.is_empty() {
                none += 1;
                // The interrupted attempt is simply taken again.
                checkpoints::checkpoint(&mut j, "cut").unwrap();
                continue;
            }
            all += 1;
            assert_eq!(
                listed[0].guilds,
                states.iter().map(|s| (s.guild, s.seq)).collect::<Vec<_>>()
            );
            for (g, _) in &listed[0].guilds {
                play(&mut j, *g, 1, 3);
            }
            let done = checkpoints::rollback(
                &mut j,
                "cut",
                &RollbackOptions::default(),
                &mut FakePacer::default(),
                &mut |_| {},
            )
            .unwrap_or_else(|e| panic!("op {op} {mode:?}: {e}"));
            for (r, s) in done.iter().zip(&states) {
                assert_eq!(j.state(r.guild).unwrap().state.queue, s.state.queue);
            }
        }
    }
    assert!(none > 0 && all > 0, "{none} / {all}");
    // Once checkpoint() has returned, a power loss keeps it.
    let crashed = Arc::new(storage.crash(CrashMode::DropUnsynced));
    let j = open(&crashed, &Config::default()).unwrap();
    assert_eq!(checkpoints::checkpoints(&j).unwrap().len(), 1);
}

#[test]
fn restore_state_records_where_the_state_came_from() {
    let mut s = setup(&Config::default());
    let r = restore_state(&mut s.journal, GUILD, &s.target, Some(12), Some("x")).unwrap();
    assert_eq!(r.restored_from_seq, Some(12));
    let last = s.journal.events(GUILD).unwrap().last().unwrap().unwrap();
    assert!(matches!(
        last.event,
        Event::StateRestored {
            from_seq: Some(12),
            ..
        }
    ));
}

use proptest::prelude::*;
use reprise::{Config, Durability, Error, Event, GuildId, Journal};

use crate::common::stream;

#[derive(Clone, Debug)]
struct Plan {
    seed: u64,
    events: usize,
    segment_bytes: u64,
    retained: u32,
    /// Per event: 0 nothing, 1 snapshot after it, 2 reopen after it.
    actions: Vec<u8>,
    durability: u8,
    probes: Vec<usize>,
}

fn plan() -> impl Strategy<Value = Plan> {
    (any::<u64>(), 1usize..250, 4096u64..40_000, 1u32..4, 0u8..3)
        .prop_flat_map(|(seed, events, segment_bytes, retained, durability)| {
            (
                Just((seed, events, segment_bytes, retained, durability)),
                prop::collection::vec(
                    prop_oneof![8 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8)],
                    events,
                ),
                prop::collection::vec(0..=events, 1..6),
            )
        })
        .prop_map(
            |((seed, events, segment_bytes, retained, durability), actions, probes)| Plan {
                seed,
                events,
                segment_bytes,
                retained,
                actions,
                durability,
                probes,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Recovered state equals the in-memory fold of the same events, whatever the snapshot
    /// points, segment size, retention and reopen points; `state_at` equals the fold of the
    /// prefix wherever the log still holds it, and says "compacted" only where it does not.
    #[test]
    fn replay_equivalence(p in plan()) {
        let dir = tempfile::tempdir().unwrap();
        let guild = GuildId(7);
        let (events, states) = stream(p.seed, p.events);
        let config = Config::default()
            .with_segment_bytes_max(p.segment_bytes)
            .with_snapshots_retained(p.retained)
            .without_auto_snapshots();
        let durability = [Durability::Always, Durability::BATCHED, Durability::None][p.durability as usize];
        let mut j = Journal::open(dir.path(), config.clone()).unwrap();
        let mut snapshots = Vec::new();
        for (i, e) in events.iter().enumerate() {
            let seq = j.append(guild, e, durability).unwrap();
            prop_assert_eq!(seq, i as u64 + 1);
            match p.actions[i] {
                1 => { j.snapshot_now(guild).unwrap(); snapshots.push(seq); }
                2 => { j.close().unwrap(); j = Journal::open(dir.path(), config.clone()).unwrap(); }
                _ => {}
            }
            prop_assert_eq!(&j.state(guild).unwrap().state, &states[i + 1]);
        }
        j.close().unwrap();
        let mut j = Journal::open(dir.path(), config.clone()).unwrap();
        let got = j.state(guild).unwrap().clone();
        prop_assert_eq!(got.seq, events.len() as u64);
        prop_assert_eq!(&got.state, &states[events.len()]);
        // Point-in-time reads.
        // Until `retained` snapshots exist nothing is dropped (the empty state is a base).
        let oldest_kept = if snapshots.len() >= p.retained as usize {
            snapshots.iter().rev().nth(p.retained as usize - 1).copied()
        } else {
            None
        };
        for &k in &p.probes {
            match j.state_at(guild, k as u64) {
                Ok(s) => prop_assert_eq!(&s.state, &states[k]),
                Err(Error::Compacted { .. }) => {
                    // Only allowed when retention dropped the log before k.
                    let bound = oldest_kept.unwrap_or(0);
                    prop_assert!((k as u64) < bound, "compacted at {} but oldest kept snapshot is {:?}", k, oldest_kept);
                }
                Err(e) => prop_assert!(false, "state_at({}) failed: {}", k, e),
            }
        }
        // verify is clean and a read-only reopen agrees.
        let report = j.verify().unwrap();
        prop_assert!(report.is_sound(), "{:?}", report.findings);
        drop(j);
        let mut r = Journal::open_read_only(dir.path(), config).unwrap();
        prop_assert_eq!(&r.state(guild).unwrap().state, &states[events.len()]);
    }

    /// JSON -> event -> bincode -> event -> JSON is the identity on every generated event, and
    /// the state survives the snapshot codec.
    #[test]
    fn codecs_round_trip(seed in any::<u64>()) {
        let (events, states) = stream(seed, 120);
        for e in &events {
            let json = e.to_json();
            let parsed = reprise::Event::from_json(&json).unwrap();
            prop_assert_eq!(&parsed, e);
            let mut bin = Vec::new();
            reprise::format::encode_event(&parsed, &mut bin);
            let back = reprise::format::decode_event(&bin).unwrap();
            prop_assert_eq!(back.to_json(), json);
        }
        let last = states.last().unwrap();
        let bytes = reprise::format::snapshot::encode(1, 120, 0, last, None).unwrap();
        let (_, decoded) = reprise::format::snapshot::decode(&bytes, None).unwrap();
        prop_assert_eq!(&decoded, last);
        let json = serde_json::to_string(last).unwrap();
        let from_json: reprise::State = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(&from_json, last);
    }
}

/// A plan for [`restores_replay`]: a workload with `state_restored` events spliced in.
#[derive(Clone, Debug)]
struct RestorePlan {
    seed: u64,
    events: usize,
    /// Per event: 0 nothing, 1 restore an earlier state after it, 2 snapshot, 3 reopen.
    actions: Vec<u8>,
    /// Which earlier state each restore picks (an index into the states so far, modulo).
    picks: Vec<usize>,
}

fn restore_plan() -> impl Strategy<Value = RestorePlan> {
    (any::<u64>(), 1usize..120)
        .prop_flat_map(|(seed, events)| {
            (
                Just((seed, events)),
                prop::collection::vec(
                    prop_oneof![12 => Just(0u8), 2 => Just(1u8), 1 => Just(2u8), 1 => Just(3u8)],
                    events,
                ),
                prop::collection::vec(any::<usize>(), events),
            )
        })
        .prop_map(|((seed, events), actions, picks)| RestorePlan {
            seed,
            events,
            actions,
            picks,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// `state_restored` events spliced into a workload (each restoring an earlier state, as
    /// `restore_to` does) replay like any other event: recovery, snapshots and `state_at` equal
    /// the in-memory fold, and each restore's JSON and bincode forms round-trip exactly.
    #[test]
    fn restores_replay(p in restore_plan()) {
        use reprise::session::{apply, validate, State, Workload};
        let dir = tempfile::tempdir().unwrap();
        let guild = GuildId(9);
        let config = Config::default().with_segment_bytes_max(8192).without_auto_snapshots();
        let mut j = Journal::open(dir.path(), config.clone()).unwrap();
        let mut bot = Workload::new(p.seed);
        let mut state = State::new(reprise::session::HISTORY_MAX_DEFAULT);
        let mut states = vec![state.clone()];
        for i in 0..p.events {
            let e = bot.next_event(&state);
            apply(&mut state, &e);
            j.append(guild, &e, Durability::None).unwrap();
            states.push(state.clone());
            match p.actions[i] {
                1 => {
                    let k = p.picks[i] % states.len();
                    let target = reprise::restore::restore_target(&state, &states[k]);
                    let restore = Event::StateRestored {
                        state: Box::new(target.clone()),
                        from_seq: Some(k as u64),
                        label: Some(format!("to-{k}")),
                    };
                    prop_assert_eq!(validate(&state, &restore), Ok(()));
                    let json = restore.to_json();
                    let parsed = Event::from_json(&json).unwrap();
                    prop_assert_eq!(&parsed, &restore);
                    let mut bin = Vec::new();
                    reprise::format::encode_event(&parsed, &mut bin);
                    prop_assert_eq!(reprise::format::decode_event(&bin).unwrap().to_json(), json);
                    apply(&mut state, &restore);
                    prop_assert_eq!(&state, &target);
                    prop_assert_eq!(state.check_invariants(), Ok(()));
                    j.append(guild, &restore, Durability::Always).unwrap();
                    states.push(state.clone());
                }
                2 => { j.snapshot_now(guild).unwrap(); }
                3 => { j.close().unwrap(); j = Journal::open(dir.path(), config.clone()).unwrap(); }
                _ => {}
            }
            prop_assert_eq!(&j.state(guild).unwrap().state, &state);
        }
        j.close().unwrap();
        let mut j = Journal::open(dir.path(), config).unwrap();
        let got = j.state(guild).unwrap().clone();
        prop_assert_eq!(got.seq as usize, states.len() - 1);
        prop_assert_eq!(&got.state, &state);
        for (k, expected) in states.iter().enumerate() {
            match j.state_at(guild, k as u64) {
                Ok(s) => prop_assert_eq!(&s.state, expected),
                Err(Error::Compacted { .. }) => {}
                Err(e) => prop_assert!(false, "state_at({}) failed: {}", k, e),
            }
        }
        prop_assert!(j.verify().unwrap().is_sound());
    }
}

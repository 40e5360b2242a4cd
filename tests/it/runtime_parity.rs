use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use reprise::checkpoints::{self, RollbackOptions, RollbackStatus, SystemPacer};
use reprise::journal::RetentionPolicy;
use reprise::restore::{self, restore_target};
use reprise::session::{apply, State, HISTORY_MAX_DEFAULT};
use reprise::sonora::{self, Sections};
use reprise::{Config, Durability, Event, GuildId, Journal, Reprise, Seq};

use crate::common::{copy_dir, stream};

/// The time of the first event of the directories built here (Unix ms); event `i` is `i` s
/// later.
const T0: u64 = 1_700_000_000_000;
/// The `now` every stats call is given.
const NOW: u64 = T0 + 86_400_000;

fn config() -> Config {
    Config {
        snapshot_every_events: Some(15),
        ..Config::default()
    }
}

/// Five guilds of 60 workload events each at fixed times, snapshots on the way (so retention
/// has something to remove), and checkpoint `base`.
fn build(dir: &std::path::Path) {
    let mut j = Journal::open(dir, config()).unwrap();
    for g in 1..=5u64 {
        let (events, _) = stream(g, 60);
        for (i, e) in events.iter().enumerate() {
            j.append_at(GuildId(g), e, Durability::None, T0 + i as u64 * 1000)
                .unwrap();
        }
    }
    checkpoints::checkpoint(&mut j, "base").unwrap();
    j.close().unwrap();
}

/// What the journal's read-only calls give on a directory.
#[derive(Debug, PartialEq)]
struct Reads {
    guilds: Vec<GuildId>,
    verify: reprise::journal::VerifyReport,
    inspect: Vec<reprise::journal::GuildInfo>,
    stats: reprise::journal::Stats,
    stats_one: reprise::journal::Stats,
    guild_stats: reprise::journal::GuildStats,
    events: Vec<reprise::journal::LoggedEvent>,
    at_time: reprise::GuildState,
    checkpoints: Vec<checkpoints::Checkpoint>,
    checkpoint: checkpoints::Checkpoint,
    sonora: String,
    lavalink: reprise::lavalink::Restore,
}

/// Every read-only method of `Reprise` gives what its `Journal` counterpart gives on the same
/// directory: verify, inspect, stats, events (a stream), state at a time, checkpoints, the
/// Sonora export and the Lavalink body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_methods_match_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    let g = GuildId(3);
    let mut j = Journal::open(dir.path(), config()).unwrap();
    let guilds = j.guilds().unwrap();
    let expected = Reads {
        verify: j.verify().unwrap(),
        inspect: guilds.iter().map(|&g| j.inspect(g).unwrap()).collect(),
        stats: j.stats(None, NOW).unwrap(),
        stats_one: j.stats(Some(g), NOW).unwrap(),
        guild_stats: j.guild_stats(g).unwrap(),
        events: j.events(g).unwrap().map(Result::unwrap).collect(),
        at_time: j.state_at_time(g, T0 + 41_500).unwrap(),
        checkpoints: checkpoints::checkpoints(&j).unwrap(),
        checkpoint: checkpoints::load_checkpoint(&j, "base").unwrap(),
        sonora: sonora::to_json(&sonora::from_state(
            g.0,
            7,
            &j.state(g).unwrap().state,
            Sections::ALL,
        )),
        lavalink: j.lavalink_restore(g, NOW, Sections::ALL).unwrap(),
        guilds,
    };
    j.close().unwrap();
    assert_eq!(expected.guilds.len(), 5);
    assert_eq!(
        expected.events.len(),
        60 - expected.events[0].seq as usize + 1
    );
    assert!(expected.verify.events > 0 && expected.verify.is_sound());

    let rt = Reprise::open(dir.path(), config()).await.unwrap();
    let mut events = Vec::new();
    let mut stream = rt.events(g).await.unwrap();
    while let Some(e) = stream.next().await {
        events.push(e.unwrap());
    }
    let mut inspect = Vec::new();
    for &g in &expected.guilds {
        inspect.push(rt.inspect(g).await.unwrap());
    }
    let got = Reads {
        guilds: rt.guilds().await.unwrap(),
        verify: rt.verify().await.unwrap(),
        inspect,
        stats: rt.stats(None, NOW).await.unwrap(),
        stats_one: rt.stats(Some(g), NOW).await.unwrap(),
        guild_stats: rt.guild_stats(g).await.unwrap(),
        events,
        at_time: rt.state_at_time(g, T0 + 41_500).await.unwrap(),
        checkpoints: rt.checkpoints().await.unwrap(),
        checkpoint: rt.load_checkpoint("base").await.unwrap(),
        sonora: sonora::to_json(&rt.export_sonora(g, 7, Sections::ALL).await.unwrap()),
        lavalink: rt.lavalink_restore(g, NOW, Sections::ALL).await.unwrap(),
    };
    rt.shutdown().await.unwrap();
    assert_eq!(got, expected);
}

/// Builds the same directory twice (a copy), runs the journal's mutating calls on one and the
/// runtime's on the other, and compares what each returned and every guild's final state:
/// restores to a seq, to a time and of a given state, a checkpoint, appends, a paced rollback,
/// a Sonora import, a cleanup, removing a checkpoint. A subscriber sees the restore's event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutating_methods_match_the_journal() {
    let base = tempfile::tempdir().unwrap();
    build(base.path());
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    copy_dir(base.path(), a.path());
    copy_dir(base.path(), b.path());
    let policy = RetentionPolicy {
        keep: 1,
        age_max: None,
    };
    let (extra, _) = stream(99, 10);
    let imported_state = stream(42, 30).1[30].clone();
    let sonora_file = sonora::to_json(&sonora::from_state(
        77,
        1_700_000_000,
        &imported_state,
        Sections::ALL,
    ));
    let files = vec![("g77.json".to_owned(), sonora_file)];
    let options = RollbackOptions {
        guilds: Some(vec![GuildId(1), GuildId(2), GuildId(4)]),
        batch: 2,
        pace: Duration::from_millis(5),
    };

    let mut j = Journal::open(a.path(), config()).unwrap();
    let cleaned = j.cleanup(&policy, None, NOW, false).unwrap();
    let r1 = restore::restore_to(&mut j, GuildId(1), 50, Some("to 50")).unwrap();
    let r2 = restore::restore_to_time(&mut j, GuildId(2), T0 + 52_000, None).unwrap();
    let r3 = restore::restore_state(&mut j, GuildId(3), &State::default(), None, None).unwrap();
    let c = checkpoints::checkpoint(&mut j, "after").unwrap();
    for e in &extra {
        j.append(GuildId(4), e, Durability::Always).unwrap();
    }
    let rolled =
        checkpoints::rollback(&mut j, "base", &options, &mut SystemPacer, &mut |_| {}).unwrap();
    let imported = reprise::import::import_sonora(&mut j, &files).unwrap();
    checkpoints::remove_checkpoint(&mut j, "after").unwrap();
    let listed = checkpoints::checkpoints(&j).unwrap();
    let mut expected_states = BTreeMap::new();
    for g in j.guilds().unwrap() {
        expected_states.insert(g, j.state(g).unwrap().clone());
    }
    j.close().unwrap();

    let rt = Reprise::open(b.path(), config()).await.unwrap();
    let got_cleaned = rt.cleanup(&policy, None, NOW, false).await.unwrap();
    let mut sub = rt.subscribe(GuildId(1)).await.unwrap();
    let got_r1 = rt
        .restore_to(GuildId(1), 50, Some("to 50".into()))
        .await
        .unwrap();
    let published = sub.recv().await.unwrap();
    assert_eq!(published.seq, got_r1.seq);
    assert!(matches!(published.event, Event::StateRestored { .. }));
    let got_r2 = rt
        .restore_to_time(GuildId(2), T0 + 52_000, None)
        .await
        .unwrap();
    let got_r3 = rt
        .restore_state(GuildId(3), State::default(), None, None)
        .await
        .unwrap();
    let got_c = rt.checkpoint("after").await.unwrap();
    for e in &extra {
        rt.append(GuildId(4), e.clone()).await.unwrap();
    }
    let mut seen = Vec::new();
    let got_rolled = rt
        .rollback("base", &options, |r| seen.push(r.guild))
        .await
        .unwrap();
    let got_imported = rt.import_sonora(files.clone()).await.unwrap();
    rt.remove_checkpoint("after").await.unwrap();
    let got_listed = rt.checkpoints().await.unwrap();
    let mut got_states = BTreeMap::new();
    for g in rt.guilds().await.unwrap() {
        got_states.insert(g, rt.state(g).await.unwrap());
    }
    rt.shutdown().await.unwrap();

    assert!(cleaned.snapshots_removed() > 0, "{cleaned:?}");
    assert_eq!(got_cleaned, cleaned);
    assert_eq!((got_r1, got_r2, got_r3), (r1, r2, r3));
    assert_eq!((&got_c.label, &got_c.guilds), (&c.label, &c.guilds));
    assert_eq!(got_rolled, rolled);
    assert_eq!(seen, vec![GuildId(1), GuildId(2), GuildId(4)]);
    assert!(rolled.iter().all(|r| r.status == RollbackStatus::Restored));
    assert_eq!(got_imported, imported);
    assert_eq!(got_listed.len(), 1);
    assert_eq!(got_listed[0].guilds, listed[0].guilds);
    assert_eq!(got_states, expected_states);
    // Sonora keeps less than a state (its lossy points): the player's volume survives.
    assert_eq!(
        got_states[&GuildId(77)].state.player.volume,
        imported_state.player.volume
    );
    // What the runtime wrote is what a journal reads back.
    let mut j = Journal::open(b.path(), config()).unwrap();
    for (g, s) in &expected_states {
        assert_eq!(j.state(*g).unwrap(), s);
    }
    assert!(j.verify().unwrap().is_sound());
}

/// The done-when case: a rollback of 200 guilds while 64 tasks append to them. No deadlock,
/// no lost acknowledgement; every guild's log is, seq by seq, exactly the acknowledged
/// appends and its one `state_restored` event, and its final state (in the runtime, and
/// recovered by a journal afterwards) is the fold of that log from the checkpointed state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_of_200_guilds_while_64_tasks_append() {
    const GUILDS: u64 = 200;
    const TASKS: u64 = 64;
    const APPENDS: u64 = 1500;
    let dir = tempfile::tempdir().unwrap();
    let rt = Reprise::open(dir.path(), Config::default()).await.unwrap();
    let volume = |v: u64| Event::VolumeSet {
        volume: (v % 1001) as u16,
    };
    for g in 1..=GUILDS {
        rt.append_many(GuildId(g), vec![volume(g), volume(g + 1)])
            .await
            .unwrap();
    }
    let cp = rt.checkpoint("before").await.unwrap();
    assert_eq!(cp.guilds.len(), GUILDS as usize);
    // Every guild moves away from its checkpointed state before the rollback starts.
    let mut log: BTreeMap<u64, BTreeMap<Seq, Event>> = BTreeMap::new();
    for g in 1..=GUILDS {
        let seq = rt.append(GuildId(g), volume(g + 500)).await.unwrap();
        log.entry(g).or_default().insert(seq, volume(g + 500));
    }

    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let rt = rt.clone();
        tasks.push(tokio::spawn(async move {
            // Task t appends to the guilds g with g % TASKS == t, round robin.
            let mine: Vec<u64> = (1..=GUILDS).filter(|g| g % TASKS == t).collect();
            let mut acked: Vec<(u64, Seq, Event)> = Vec::new();
            for i in 0..APPENDS / TASKS {
                let g = mine[i as usize % mine.len()];
                let e = volume(g * 7 + i);
                let seq = rt.append(GuildId(g), e.clone()).await.unwrap();
                acked.push((g, seq, e));
                tokio::task::yield_now().await;
            }
            acked
        }));
    }
    let options = RollbackOptions {
        guilds: None,
        batch: 25,
        pace: Duration::ZERO,
    };
    let rolled = tokio::time::timeout(
        Duration::from_secs(120),
        rt.rollback("before", &options, |_| {}),
    )
    .await
    .expect("the rollback finished")
    .unwrap();
    for t in tasks {
        let acked = tokio::time::timeout(Duration::from_secs(120), t)
            .await
            .expect("the appends finished")
            .unwrap();
        for (g, seq, e) in acked {
            assert!(
                log.entry(g).or_default().insert(seq, e).is_none(),
                "guild {g}: seq {seq} acknowledged twice"
            );
        }
    }
    assert_eq!(rolled.len(), GUILDS as usize);
    let mut live = BTreeMap::new();
    for g in 1..=GUILDS {
        live.insert(g, rt.state(GuildId(g)).await.unwrap());
    }
    rt.shutdown().await.unwrap();

    let mut j = Journal::open(dir.path(), Config::default()).unwrap();
    let mut restored = 0;
    for r in &rolled {
        let g = r.guild.0;
        assert_eq!(r.restored_from_seq, 2);
        // The checkpointed state, and the fold from it of what the log holds after seq 2.
        let mut checkpointed = State::new(HISTORY_MAX_DEFAULT);
        apply(&mut checkpointed, &volume(g));
        apply(&mut checkpointed, &volume(g + 1));
        let mut state = checkpointed.clone();
        let acked = log.remove(&g).unwrap_or_default();
        let last = j.state(GuildId(g)).unwrap().seq;
        let logged: BTreeMap<Seq, Event> = j
            .events(GuildId(g))
            .unwrap()
            .map(Result::unwrap)
            .map(|l| (l.seq, l.event))
            .collect();
        // The log's retained tail (restore points and snapshots let retention drop older
        // segments) reaches the last event.
        assert_eq!(logged.keys().next_back(), Some(&last), "guild {g}");
        for seq in 3..=last {
            let held = logged.get(&seq);
            if seq == r.seq {
                let target = restore_target(&state, &checkpointed);
                if let Some(event) = held {
                    assert!(
                        matches!(event, Event::StateRestored { state: s, from_seq: Some(2), .. } if **s == target),
                        "guild {g} seq {seq}: not the rollback's event"
                    );
                }
                state = target;
            } else {
                let event = acked
                    .get(&seq)
                    .unwrap_or_else(|| panic!("guild {g} seq {seq}: never acknowledged"));
                if let Some(held) = held {
                    assert_eq!(held, event, "guild {g} seq {seq}");
                }
                apply(&mut state, event);
            }
        }
        // Every acknowledged append is in the log (none lost, none added).
        let extra = usize::from(r.status == RollbackStatus::Restored);
        assert_eq!(acked.len() + extra, (last - 2) as usize, "guild {g}");
        assert_eq!(j.state(GuildId(g)).unwrap().state, state, "guild {g}");
        assert_eq!(live[&g].state, state, "guild {g}");
        restored += extra;
    }
    // Every guild had moved away from the checkpoint, so every one was restored.
    assert_eq!(restored, GUILDS as usize);
    assert!(log.is_empty());
}

/// A dropped rollback leaves a prefix of the guilds rolled back; running it again finishes the
/// rest without appending twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_rollback_is_finished_by_running_it_again() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Reprise::open(dir.path(), Config::default()).await.unwrap();
    for g in 1..=6u64 {
        rt.append(GuildId(g), Event::VolumeSet { volume: 10 })
            .await
            .unwrap();
    }
    rt.checkpoint("c").await.unwrap();
    for g in 1..=6u64 {
        rt.append(GuildId(g), Event::VolumeSet { volume: 90 })
            .await
            .unwrap();
    }
    // Batches of one guild, a long pace: the future is dropped while it waits for batch 1.
    let slow = RollbackOptions {
        guilds: None,
        batch: 1,
        pace: Duration::from_secs(3600),
    };
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let first_done = Arc::new(tokio::sync::Notify::new());
    let (seen2, first_done2) = (Arc::clone(&seen), Arc::clone(&first_done));
    let first = rt.rollback("c", &slow, move |r| {
        seen2.lock().unwrap().push(r.guild);
        first_done2.notify_one();
    });
    // Dropped once the first guild is done (the future then waits out the pace).
    tokio::select! {
        _ = first => panic!("the rollback did not wait for its pace"),
        () = first_done.notified() => {}
    }
    assert_eq!(*seen.lock().unwrap(), vec![GuildId(1)]);
    assert_eq!(rt.state(GuildId(1)).await.unwrap().state.player.volume, 10);
    assert_eq!(rt.state(GuildId(2)).await.unwrap().state.player.volume, 90);
    let fast = RollbackOptions {
        pace: Duration::ZERO,
        ..slow
    };
    let again = rt.rollback("c", &fast, |_| {}).await.unwrap();
    assert_eq!(again[0].status, RollbackStatus::Unchanged);
    assert!(again[1..]
        .iter()
        .all(|r| r.status == RollbackStatus::Restored));
    for g in 1..=6u64 {
        let s = rt.state(GuildId(g)).await.unwrap();
        assert_eq!((s.seq, s.state.player.volume), (3, 10));
    }
    rt.shutdown().await.unwrap();
}

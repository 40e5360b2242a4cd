use std::collections::HashMap;
use std::sync::Arc;

use reprise::session::{apply, State, HISTORY_MAX_DEFAULT};
use reprise::{Config, Durability, Event, GuildId, Journal, Reprise};

use crate::common::stream;

fn volume(v: u16) -> Event {
    Event::VolumeSet { volume: v }
}

/// Many tasks appending to the same guild at once: every acknowledged seq is unique, the seqs
/// are exactly 1..=N, and the event stored at each seq is the one whose append returned it.
/// Across 64 guilds each guild's own order is its tasks' order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_get_a_total_order_per_guild() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Reprise::open(dir.path(), Config::default()).await.unwrap();
    let shared = GuildId(1);
    let mut tasks = Vec::new();
    for t in 0..20u16 {
        let rt = rt.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for i in 0..25u16 {
                let v = t * 25 + i; // unique per append, < 1000
                let seq = rt.append(shared, volume(v)).await.unwrap();
                got.push((seq, v));
            }
            got
        }));
    }
    let mut by_seq = HashMap::new();
    for t in tasks {
        for (seq, v) in t.await.unwrap() {
            // Each task sees its own acknowledgements in increasing seq order.
            assert!(
                by_seq.insert(seq, v).is_none(),
                "seq {seq} acknowledged twice"
            );
        }
    }
    assert_eq!(by_seq.len(), 500);
    assert!((1..=500).all(|s| by_seq.contains_key(&s)));
    // 64 guilds, each fed by its own task, in parallel.
    let (events, states) = stream(3, 40);
    let events = Arc::new(events);
    let mut tasks = Vec::new();
    for g in 100..164u64 {
        let (rt, events) = (rt.clone(), Arc::clone(&events));
        tasks.push(tokio::spawn(async move {
            for (i, e) in events.iter().enumerate() {
                assert_eq!(
                    rt.append(GuildId(g), e.clone()).await.unwrap(),
                    i as u64 + 1
                );
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    rt.shutdown().await.unwrap();
    let mut j = Journal::open(dir.path(), Config::default()).unwrap();
    for (seq, e) in j
        .events(shared)
        .unwrap()
        .map(Result::unwrap)
        .map(|l| (l.seq, l.event))
    {
        assert_eq!(e, volume(by_seq[&seq]));
    }
    for g in 100..164u64 {
        assert_eq!(j.state(GuildId(g)).unwrap().state, states[40]);
    }
}

/// Appends acknowledged at every durability survive `shutdown`; batches are all or nothing;
/// later calls fail with `Closed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let (events, states) = stream(4, 300);
    let rt = Reprise::open(dir.path(), Config::default()).await.unwrap();
    let g = GuildId(9);
    for (i, e) in events.iter().enumerate() {
        let d = [Durability::None, Durability::BATCHED, Durability::Always][i % 3];
        assert_eq!(rt.append_with(g, e.clone(), d).await.unwrap(), i as u64 + 1);
    }
    // An invalid event in a batch rejects the whole batch.
    let bad = vec![volume(5), volume(1001)];
    assert!(matches!(
        rt.append_many(g, bad).await,
        Err(reprise::Error::InvalidEvent { .. })
    ));
    assert_eq!(rt.state(g).await.unwrap().seq, 300);
    rt.shutdown().await.unwrap();
    assert!(matches!(
        rt.append(g, volume(1)).await,
        Err(reprise::Error::Closed)
    ));
    let mut j = Journal::open(dir.path(), Config::default()).unwrap();
    let s = j.state(g).unwrap();
    assert_eq!((s.seq, &s.state), (300, &states[300]));
}

/// An append future dropped at any point leaves the journal valid: every event is fully in or
/// fully out, and the log is the fold of its events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_append_futures_leave_the_journal_valid() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Reprise::open(dir.path(), Config::default()).await.unwrap();
    let g = GuildId(3);
    let mut acked = 0u64;
    for i in 0..200u16 {
        let fut = rt.append(g, volume(i % 1000));
        if i % 3 == 0 {
            // Poll once, then drop.
            tokio::select! {
                biased;
                r = fut => { r.unwrap(); acked += 1; }
                () = std::future::ready(()) => {}
            }
        } else if i % 3 == 1 {
            drop(fut);
        } else {
            fut.await.unwrap();
            acked += 1;
        }
    }
    rt.shutdown().await.unwrap();
    let mut j = Journal::open(dir.path(), Config::default()).unwrap();
    let seq = j.state(g).unwrap().seq;
    assert!(seq >= acked);
    let mut state = State::new(HISTORY_MAX_DEFAULT);
    for (expected_seq, logged) in (1..).zip(j.events(g).unwrap()) {
        let logged = logged.unwrap();
        assert_eq!(logged.seq, expected_seq);
        apply(&mut state, &logged.event);
    }
    assert_eq!(j.state(g).unwrap().state, state);
    assert!(j.verify().unwrap().is_sound());
}

/// Subscribers see every acknowledged event of their guild in order; snapshot_now writes a
/// durable snapshot off the append path and later appends continue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_and_snapshot_now() {
    let dir = tempfile::tempdir().unwrap();
    let (events, states) = stream(6, 120);
    let config = Config::default().with_snapshot_interval(None);
    let rt = Reprise::open(dir.path(), config.clone()).await.unwrap();
    let g = GuildId(44);
    let mut sub = rt.subscribe(g).await.unwrap();
    for e in &events[..60] {
        rt.append(g, e.clone()).await.unwrap();
    }
    assert_eq!(rt.snapshot_now(g).await.unwrap(), Some(60));
    let snap = reprise::layout::snapshot_path(dir.path(), g, 60);
    assert!(snap.exists());
    rt.append_many(g, events[60..].to_vec()).await.unwrap();
    for (i, e) in events.iter().enumerate() {
        let got = sub.recv().await.unwrap();
        assert_eq!((got.seq, &got.event), (i as u64 + 1, e));
    }
    assert_eq!(rt.state_at(g, 60).await.unwrap().state, states[60]);
    rt.shutdown().await.unwrap();
    assert!(matches!(
        sub.recv().await,
        Err(reprise::SubscriptionError::Closed)
    ));
    let mut j = Journal::open(dir.path(), config).unwrap();
    assert_eq!(j.state(g).unwrap().state, states[120]);
    // The shutdown snapshot covers the rest.
    assert!(reprise::layout::snapshot_path(dir.path(), g, 120).exists());
}

/// A second runtime on the same directory is refused with `Locked`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_runtime_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Reprise::open(dir.path(), Config::default()).await.unwrap();
    assert!(matches!(
        Reprise::open(dir.path(), Config::default()).await,
        Err(reprise::Error::Locked { .. })
    ));
    rt.shutdown().await.unwrap();
    let again = Reprise::open(dir.path(), Config::default()).await.unwrap();
    again.shutdown().await.unwrap();
}

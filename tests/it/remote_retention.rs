//! Remote retention after a restart (issue 13 item 7): the batches a process wrote for guilds
//! that have since moved to another owner are deleted once the store holds a snapshot that
//! covers them, whether or not the new process reads that part of its log for a guild it
//! still owns.

#![cfg(feature = "remote")]

use std::sync::Arc;

use futures_util::TryStreamExt;
use object_store::memory::InMemory;
use object_store::{ObjectStore, ObjectStoreExt};
use reprise::remote::{batch, LocalDir, Remote};
use reprise::{Config, Durability, Error, Event, GuildId, Journal};

/// Moves to B while A is down.
const MOVED: GuildId = GuildId(700_000_000_000_000_001);
/// Stays with A.
const STAYS: GuildId = GuildId(700_000_000_000_000_002);
/// First seen by A's second process.
const NEW: GuildId = GuildId(700_000_000_000_000_003);

fn config() -> Config {
    Config::default()
        .without_auto_snapshots()
        .with_segment_bytes_max(4096)
}

fn event(i: u64) -> Event {
    Event::PositionReported {
        position_ms: i,
        at_unix_ms: i,
        entry_id: None,
    }
}

/// The positions of a writer's log in the store: (position, is a batch).
async fn log_objects(store: &InMemory, remote: &Remote, writer: &str) -> Vec<(u64, bool)> {
    let prefix = remote.key(&format!("writers/{writer}"));
    let metas: Vec<_> = store.list(Some(&prefix)).try_collect().await.unwrap();
    let mut out = Vec::new();
    for m in metas {
        let position: u64 = m.location.filename().unwrap().parse().unwrap();
        let bytes = store.get(&m.location).await.unwrap().bytes().await.unwrap();
        out.push((position, batch::is_batch(&bytes)));
    }
    out.sort_unstable();
    out
}

/// The writer's log objects, and the positions of the batches below its head.
async fn batches_below_head(
    store: &InMemory,
    remote: &Remote,
    writer: &str,
) -> (Vec<(u64, bool)>, Vec<u64>) {
    let left = log_objects(store, remote, writer).await;
    let head = left.last().unwrap().0;
    let batches = left
        .iter()
        .filter(|&&(p, is_batch)| is_batch && p != head)
        .map(|&(p, _)| p)
        .collect();
    (left, batches)
}

/// A's first process ships `guilds` in several rounds (several batch positions), then
/// stops. B claims MOVED, appends, snapshots and ships that snapshot. Returns the remote, A's
/// directory and writer name.
async fn moved_while_a_was_down(
    store: &Arc<InMemory>,
    guilds: &[GuildId],
) -> (Remote, tempfile::TempDir, String) {
    let remote = Remote::new(store.clone(), "fleet");
    let dir_a = tempfile::tempdir().unwrap();
    let name;
    {
        let mut a = Journal::open(dir_a.path(), config()).unwrap();
        let local = LocalDir::of(&a);
        let mut writer = remote.writer(&local).await.unwrap();
        name = writer.name().to_string();
        let mut owners = Vec::new();
        for &g in guilds {
            owners.push(remote.owner(&local, &mut writer, g, "a").await.unwrap());
        }
        for round in 0..4 {
            for &g in guilds {
                for i in 1..=5 {
                    a.append(g, &event(round * 5 + i), Durability::Always)
                        .unwrap();
                }
            }
            remote
                .ship_events(&mut a, &mut writer, &mut owners)
                .await
                .unwrap();
        }
        assert!(owners.iter().all(|me| me.head == 20));
    }
    let batches = log_objects(store, &remote, &name).await;
    assert_eq!(batches.len(), 4, "{batches:?}");

    // B takes MOVED over, goes on, and stores a snapshot past every event A shipped.
    let dir_b = tempfile::tempdir().unwrap();
    let mut b = Journal::open(dir_b.path(), config()).unwrap();
    let claimed = remote.claim(&mut b, MOVED, "b").await.unwrap();
    assert_eq!((claimed.epoch.get(), claimed.seq), (2, 20));
    for i in 21..=25 {
        b.append(MOVED, &event(i), Durability::Always).unwrap();
    }
    b.snapshot_now(MOVED).unwrap();
    remote.ship(&mut b, &[MOVED], "b").await.unwrap();
    (remote, dir_a, name)
}

/// A's second process, which owns STAYS and never read its log for MOVED: once STAYS's
/// snapshot is stored past its old entries too, every batch of the first process goes.
#[tokio::test]
async fn regression_batches_written_before_a_restart_for_a_moved_guild_are_retained() {
    let store = Arc::new(InMemory::new());
    let (remote, dir_a, name) = moved_while_a_was_down(&store, &[MOVED, STAYS]).await;

    let mut a = Journal::open(dir_a.path(), config()).unwrap();
    for i in 21..=25 {
        a.append(STAYS, &event(i), Durability::Always).unwrap();
    }
    a.snapshot_now(STAYS).unwrap();
    let shipped = remote.ship(&mut a, &[], "a").await;
    assert!(
        matches!(
            shipped,
            Err(Error::Fenced {
                guild: MOVED,
                epoch: reprise::Epoch(2),
                ..
            })
        ),
        "{shipped:?}"
    );
    let (left, batches) = batches_below_head(&store, &remote, &name).await;
    assert_eq!(
        batches,
        Vec::<u64>::new(),
        "every batch but the head is obsolete: {left:?}"
    );

    // A fresh claim of each guild still gets its whole history.
    for (guild, seq) in [(MOVED, 25), (STAYS, 25)] {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path(), config()).unwrap();
        assert_eq!(remote.claim(&mut j, guild, "z").await.unwrap().seq, seq);
    }
}

/// A's second process owns only a guild it never shipped before: its claim starts after the
/// old log, which it never reads for an owner. The old batches still go.
#[tokio::test]
async fn regression_batches_before_a_restart_go_when_the_new_process_owns_none_of_their_guilds() {
    let store = Arc::new(InMemory::new());
    let (remote, dir_a, name) = moved_while_a_was_down(&store, &[MOVED]).await;

    let mut a = Journal::open(dir_a.path(), config()).unwrap();
    for i in 1..=3 {
        a.append(NEW, &event(i), Durability::Always).unwrap();
    }
    let shipped = remote.ship(&mut a, &[NEW], "a").await;
    assert!(shipped.is_ok(), "{shipped:?}");
    let (left, batches) = batches_below_head(&store, &remote, &name).await;
    assert_eq!(
        batches,
        Vec::<u64>::new(),
        "every batch but the head is obsolete: {left:?}"
    );

    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(dir.path(), config()).unwrap();
    assert_eq!(remote.claim(&mut j, MOVED, "z").await.unwrap().seq, 25);
}

/// Superseded copies (issue 13 item 7): every claim that takes a guild back sets this
/// directory's copy aside; the copies past the rule (at most 3 per guild by default, none
/// older than `age_max`) are removed, the newest kept.
#[tokio::test]
async fn regression_superseded_copies_do_not_pile_up() {
    let store = Arc::new(InMemory::new());
    let remote = Remote::new(store.clone(), "fleet");
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let mut a = Journal::open(dir_a.path(), config()).unwrap();
    let mut b = Journal::open(dir_b.path(), config()).unwrap();
    let mut seq = 0;
    let mut append = |j: &mut Journal| {
        for _ in 0..3 {
            seq += 1;
            j.append(MOVED, &event(seq), Durability::Always).unwrap();
        }
    };
    append(&mut a);
    remote.ship(&mut a, &[MOVED], "a").await.unwrap();
    let mut set_aside = Vec::new();
    for _ in 0..5 {
        remote.claim(&mut b, MOVED, "b").await.unwrap();
        append(&mut b);
        remote.ship(&mut b, &[MOVED], "b").await.unwrap();
        let back = remote.claim(&mut a, MOVED, "a").await.unwrap();
        set_aside.push(back.superseded.expect("A's copy was set aside").path);
        append(&mut a);
        remote.ship(&mut a, &[MOVED], "a").await.unwrap();
    }
    let kept: Vec<_> = a
        .superseded_copies()
        .unwrap()
        .into_iter()
        .map(|c| c.path)
        .collect();
    let mut newest = set_aside[2..].to_vec();
    newest.sort();
    assert_eq!(kept, newest, "the newest 3 of {set_aside:?}");
    assert!(set_aside[..2].iter().all(|p| !p.exists()));

    // By age: a dry run says what goes and removes nothing; then they go.
    let rule = reprise::SupersededRetention {
        age_max: Some(std::time::Duration::ZERO),
        per_guild_max: usize::MAX,
    };
    let later = u64::MAX;
    let would = a.remove_superseded(&rule, None, later, true).unwrap();
    assert_eq!(would.len(), 3);
    assert_eq!(a.superseded_copies().unwrap().len(), 3);
    assert_eq!(
        a.remove_superseded(&rule, Some(STAYS), later, false)
            .unwrap()
            .len(),
        0,
        "another guild's copies only"
    );
    let removed = a.remove_superseded(&rule, None, later, false).unwrap();
    assert_eq!(removed, would);
    assert!(a.superseded_copies().unwrap().is_empty());
    assert!(newest.iter().all(|p| !p.exists()));
    // The journal is whole: its state is the store's.
    let dir = tempfile::tempdir().unwrap();
    let mut z = Journal::open(dir.path(), config()).unwrap();
    let claimed = remote.claim(&mut z, MOVED, "z").await.unwrap();
    assert_eq!(claimed.seq, a.state(MOVED).unwrap().seq);
}

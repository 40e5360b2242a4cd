//! One rule for a failed write or fsync, whoever finds it (issue 14 item 5): a poisoned log is
//! `Error::Poisoned` from every call, naming the operation that failed (a full disk is a failed
//! "write", not an "fsync"), and the journal alone decides what each durability level does at
//! append time, for its own appends and for the runtime's group commit alike.

use std::path::Path;
use std::sync::Arc;

use reprise::storage::sim::{Fault, InjectedError, OpKind, SimStorage};
use reprise::storage::Storage;
use reprise::{BatchPolicy, Config, Durability, Error, GuildId, Journal, OpenMode, Reprise};

use crate::common::stream;

const ROOT: &str = "/srv/reprise";

fn sim(seed: u64) -> Arc<SimStorage> {
    let s = SimStorage::new(seed);
    s.create_dir_all(Path::new(ROOT)).unwrap();
    s.sync_dir(Path::new("/srv")).unwrap();
    s.sync_dir(Path::new("/")).unwrap();
    Arc::new(s)
}

fn config() -> Config {
    Config::default()
        .without_auto_snapshots()
        .with_snapshot_interval(None)
}

fn open(storage: &Arc<SimStorage>) -> Journal {
    Journal::open_with(
        ROOT,
        config(),
        OpenMode::ReadWrite,
        Arc::clone(storage) as Arc<dyn Storage>,
    )
    .unwrap()
}

/// The next append (a `write` of the commit log or of a segment) fails with `error`.
fn fail_next(storage: &SimStorage, kind: OpKind, error: InjectedError) {
    storage.set_fault(Fault::FailKind {
        kind,
        nth: storage.op_count_of(kind),
        sticky: false,
        error,
    });
}

/// A full disk during a group commit: the commit log's write fails with ENOSPC (before any
/// fsync). Every append that waited for that commit is told the commit log is poisoned by a
/// failed "write" (it was reported as a failed "fsync").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_group_commit_enospc_names_write() {
    let g = GuildId(3);
    let (events, _) = stream(3, 20);
    let storage = sim(3);
    let batched = Durability::Batched(BatchPolicy {
        delay_max: std::time::Duration::from_secs(60),
        events_max: 1,
    });
    let rt = Reprise::open_with_storage(
        ROOT,
        config().with_durability(batched),
        Arc::clone(&storage) as Arc<dyn Storage>,
    )
    .await
    .unwrap();
    assert_eq!(rt.append(g, events[0].clone()).await.unwrap(), 1);
    fail_next(&storage, OpKind::Append, InjectedError::Enospc);
    let failed = rt.append(g, events[1].clone()).await;
    storage.clear_faults();
    assert!(storage.injected_count() > 0);
    assert!(
        matches!(
            failed,
            Err(Error::Poisoned {
                guild: None,
                op: "write"
            })
        ),
        "{failed:?}"
    );
    // Nothing more is acknowledged, with the same answer.
    let after = rt.append(g, events[1].clone()).await;
    assert!(
        matches!(
            after,
            Err(Error::Poisoned {
                guild: None,
                op: "write"
            })
        ),
        "{after:?}"
    );
    let _ = rt.shutdown().await;
}

/// `Journal::sync` after a full disk: the error is the failed write ("append to" the commit
/// log, ENOSPC), and from then on every call that needs the commit log says it is poisoned by a
/// failed "write": appends, `flush`, `sync` and the checkpoint (the last three reported an
/// untyped I/O error "use the poisoned commit log").
#[test]
fn regression_poisoned_commit_log_is_error_poisoned_everywhere() {
    let g = GuildId(5);
    let (events, _) = stream(5, 10);
    let storage = sim(5);
    let mut j = open(&storage);
    j.append(g, &events[0], Durability::Batched(BatchPolicy::DEFAULT))
        .unwrap();
    j.sync().unwrap();
    j.append(g, &events[1], Durability::Batched(BatchPolicy::DEFAULT))
        .unwrap();
    fail_next(&storage, OpKind::Append, InjectedError::Enospc);
    let synced = j.sync();
    storage.clear_faults();
    match &synced {
        Err(Error::Io { op, source, .. }) => {
            assert_eq!(*op, "append to", "{synced:?}");
            assert_eq!(source.raw_os_error(), Some(28), "{synced:?}");
        }
        other => panic!("sync on a full disk: {other:?}"),
    }
    let poisoned = |r: reprise::Result<()>, what: &str| {
        assert!(
            matches!(
                r,
                Err(Error::Poisoned {
                    guild: None,
                    op: "write"
                })
            ),
            "{what}: {r:?}"
        );
    };
    poisoned(j.flush(), "flush");
    poisoned(j.sync(), "sync");
    poisoned(j.retire_commit_logs(true), "retire_commit_logs");
    poisoned(
        j.append(g, &events[2], Durability::Always).map(drop),
        "append",
    );
}

/// A failed fsync of the commit log: the poison names "fsync", for every later call.
#[test]
fn regression_failed_fsync_poisons_with_fsync_everywhere() {
    let g = GuildId(6);
    let (events, _) = stream(6, 10);
    let storage = sim(6);
    let mut j = open(&storage);
    j.append(g, &events[0], Durability::Always).unwrap();
    fail_next(&storage, OpKind::SyncData, InjectedError::Eio);
    let failed = j.append(g, &events[1], Durability::Always);
    storage.clear_faults();
    assert!(
        matches!(&failed, Err(Error::Io { op: "fsync", .. })),
        "{failed:?}"
    );
    for (what, r) in [
        ("flush", j.flush()),
        ("sync", j.sync()),
        ("retire_commit_logs", j.retire_commit_logs(true)),
    ] {
        assert!(
            matches!(
                r,
                Err(Error::Poisoned {
                    guild: None,
                    op: "fsync"
                })
            ),
            "{what}: {r:?}"
        );
    }
}

/// One owner of durability: the runtime's `Always` append does what the journal's does, so a
/// full disk at the commit log's write takes the batch back whole (nothing published, nothing
/// poisoned) and a retry appends it once. The runtime's own `Always` path applied the batch
/// first and poisoned the commit log at the group commit instead. (Without preallocation:
/// inside a reserved extension no write finds the disk full, see
/// `a_failed_write_of_a_group_inside_the_reserved_commit_log_poisons_and_loses_nothing`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_runtime_always_takes_a_batch_back_on_a_full_disk_like_the_journal() {
    let g = GuildId(8);
    let (events, states) = stream(8, 30);
    let storage = sim(8);
    let rt = Reprise::open_with_storage(
        ROOT,
        config()
            .with_durability(Durability::Always)
            .with_commit_prealloc_bytes(0),
        Arc::clone(&storage) as Arc<dyn Storage>,
    )
    .await
    .unwrap();
    rt.append_many(g, events[..10].to_vec()).await.unwrap();
    let mut sub = rt.subscribe(g).await.unwrap();
    fail_next(&storage, OpKind::Append, InjectedError::Enospc);
    let failed = rt.append_many(g, events[10..20].to_vec()).await;
    storage.clear_faults();
    assert!(
        matches!(&failed, Err(Error::Io { source, .. }) if source.raw_os_error() == Some(28)),
        "{failed:?}"
    );
    assert_eq!(rt.state(g).await.unwrap().seq, 10);
    assert_eq!(
        rt.append_many(g, events[10..20].to_vec()).await.unwrap(),
        (11..=20).collect::<Vec<u64>>()
    );
    for want in 11..=20u64 {
        assert_eq!(sub.recv().await.unwrap().seq, want);
    }
    let _ = rt.shutdown().await;
    let mut j = open(&storage);
    assert_eq!(j.state(g).unwrap().seq, 20);
    assert_eq!(j.state(g).unwrap().state, states[20]);
}

/// Inside the commit log's reserved extension the runtime's `Always` appends wait for the group
/// commit, which writes every task's records with one write: if that write fails (an I/O
/// error; a full disk cannot happen there), every append of the group is told the commit log
/// is poisoned by a failed "write", nothing more is acknowledged, and a reopen finds every
/// event acknowledged before, each guild the fold of a prefix of its events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_write_of_a_group_inside_the_reserved_commit_log_poisons_and_loses_nothing() {
    let guilds: Vec<GuildId> = (0..8).map(|i| GuildId(100 + i)).collect();
    let streams: Vec<_> = guilds.iter().map(|g| stream(g.0, 40)).collect();
    let storage = sim(9);
    let rt = Reprise::open_with_storage(
        ROOT,
        config().with_durability(Durability::Always),
        Arc::clone(&storage) as Arc<dyn Storage>,
    )
    .await
    .unwrap();
    for (g, (events, _)) in guilds.iter().zip(&streams) {
        rt.append_many(*g, events[..10].to_vec()).await.unwrap();
    }
    let writes_before = storage.op_count_of(OpKind::Append);
    fail_next(&storage, OpKind::Append, InjectedError::Eio);
    let mut tasks = Vec::new();
    for (g, (events, _)) in guilds.iter().zip(&streams) {
        let rt = rt.clone();
        let (g, events) = (*g, events.clone());
        tasks.push(tokio::spawn(async move {
            let mut acked = 10;
            for event in &events[10..] {
                match rt.append(g, event.clone()).await {
                    Ok(seq) => acked = seq,
                    Err(e) => return (acked, Some(e)),
                }
            }
            (acked, None)
        }));
    }
    let mut acked = Vec::new();
    for t in tasks {
        let (seq, err) = t.await.unwrap();
        assert!(
            matches!(
                err,
                Some(Error::Poisoned {
                    guild: None,
                    op: "write"
                })
            ),
            "{err:?}"
        );
        acked.push(seq);
    }
    // The failed write was the group's: the appends before it had no write of their own.
    assert_eq!(storage.op_count_of(OpKind::Append), writes_before + 1);
    let _ = rt.shutdown().await;
    storage.clear_faults();
    let mut j = open(&storage);
    for ((g, (_, states)), acked) in guilds.iter().zip(&streams).zip(acked) {
        let got = j.state(*g).unwrap().clone();
        assert!(got.seq >= acked, "{g:?}: {} < {acked}", got.seq);
        assert_eq!(got.state, states[got.seq as usize], "{g:?}");
    }
}

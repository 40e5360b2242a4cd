//! Appends that do not wait (`Reprise::append_ordered`, `Ordered::durable`,
//! `Reprise::durable_up_to`), reopening a directory right after its last handle was dropped,
//! and the Lavalink restore on the async handle.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use reprise::lavalink;
use reprise::sonora::Sections;
use reprise::storage::sim::{Fault, InjectedError, OpKind, SimStorage};
use reprise::storage::Storage;
use reprise::{BatchPolicy, Config, Durability, Error, Event, GuildId, Journal, Reprise};

const ROOT: &str = "/srv/reprise";

/// A bound on waits that would otherwise hang a failing test (not a timing assertion).
const HANG_GUARD: Duration = Duration::from_secs(60);

fn sim(seed: u64) -> Arc<SimStorage> {
    let s = SimStorage::new(seed);
    s.create_dir_all(Path::new(ROOT)).unwrap();
    s.sync_dir(Path::new("/srv")).unwrap();
    s.sync_dir(Path::new("/")).unwrap();
    Arc::new(s)
}

/// No background snapshot and no timer: only appends, `flush` and shutdown commit.
fn quiet() -> Config {
    Config::default()
        .without_auto_snapshots()
        .with_snapshot_interval(None)
}

fn event(json: &str) -> Event {
    Event::from_json(json).unwrap()
}

fn position(position_ms: u64, at_unix_ms: u64) -> Event {
    event(&format!(
        r#"{{"type":"position_reported","position_ms":{position_ms},"at_unix_ms":{at_unix_ms}}}"#
    ))
}

/// A queue with a current track, so that position reports mean something.
fn playing() -> Vec<Event> {
    vec![
        event(
            r#"{"type":"tracks_enqueued","tracks":[{"encoded":"QAAAjQIAJVJp","title":"Never Gonna Give You Up","length_ms":213000}]}"#,
        ),
        event(r#"{"type":"track_started"}"#),
    ]
}

fn batched(delay_max: Duration, events_max: u32) -> Durability {
    Durability::Batched(BatchPolicy {
        delay_max,
        events_max,
    })
}

async fn guarded<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(HANG_GUARD, f)
        .await
        .unwrap_or_else(|_| panic!("{what} never happened"))
}

/// Issue 19: 50 position reports from one task, each awaited with the non-waiting append: they
/// get consecutive seqs in the order sent, the state has each as soon as its call returns, each
/// `durable()` resolves with its seq, the guild's watch reaches the last one, and a reopen finds
/// them in that order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_appends_from_one_task_keep_their_order_and_become_durable() {
    let dir = tempfile::tempdir().unwrap();
    let g = GuildId(19);
    let rt = Reprise::open(dir.path(), quiet()).await.unwrap();
    assert_eq!(rt.append_many(g, playing()).await.unwrap(), vec![1, 2]);
    let durability = batched(Duration::from_millis(2), 1000);
    let mut ordered = Vec::new();
    for i in 0..50u64 {
        let o = rt
            .append_ordered(g, position(i * 1000, 1_700_000_000_000 + i), durability)
            .await
            .unwrap();
        assert_eq!((o.guild(), o.seq()), (g, 3 + i));
        // In the state at once, durable or not.
        let state = rt.state(g).await.unwrap();
        assert_eq!(
            (state.seq, state.state.player.position_ms),
            (3 + i, i * 1000)
        );
        ordered.push(o);
    }
    let mut watch = rt.durable_up_to(g).await.unwrap();
    for (i, o) in ordered.into_iter().enumerate() {
        assert_eq!(guarded("durable", o.durable()).await.unwrap(), 3 + i as u64);
    }
    // Every durable() resolved: the watch is past the last one.
    guarded("the watch", watch.wait_for(|&d| d >= 52))
        .await
        .unwrap();
    rt.shutdown().await.unwrap();
    let mut j = Journal::open(dir.path(), quiet()).unwrap();
    let positions: Vec<(u64, Event)> = j
        .events(g)
        .unwrap()
        .map(Result::unwrap)
        .skip(2)
        .map(|l| (l.seq, l.event))
        .collect();
    let want: Vec<(u64, Event)> = (0..50u64)
        .map(|i| (3 + i, position(i * 1000, 1_700_000_000_000 + i)))
        .collect();
    assert_eq!(positions, want);
}

/// Dropping the `Ordered` takes nothing back: the event still becomes durable by its policy
/// (the guild's watch passes it) and is in the journal after a reopen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_ordered_append_still_becomes_durable() {
    let dir = tempfile::tempdir().unwrap();
    let g = GuildId(7);
    let rt = Reprise::open(dir.path(), quiet()).await.unwrap();
    let mut watch = rt.durable_up_to(g).await.unwrap();
    assert_eq!(*watch.borrow(), 0);
    let seq = rt
        .append_ordered(g, event(r#"{"type":"volume_set","volume":42}"#), {
            batched(Duration::from_millis(1), 1000)
        })
        .await
        .unwrap()
        .seq();
    assert_eq!(seq, 1);
    guarded("the watch", watch.wait_for(|&d| d >= seq))
        .await
        .unwrap();
    drop(rt);
    let rt = Reprise::open(dir.path(), quiet()).await.unwrap();
    assert_eq!(rt.state(g).await.unwrap().state.player.volume, 42);
    // A new watch starts at what the journal holds.
    assert_eq!(*rt.durable_up_to(g).await.unwrap().borrow(), 1);
    rt.shutdown().await.unwrap();
}

/// A `None` append made with `append_ordered` is durable at the next group commit, whatever
/// makes it (a `flush`, an `Always` append of another guild), and not before: its `durable()`
/// says so truthfully rather than at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ordered_none_append_is_durable_at_the_next_group_commit() {
    let storage = sim(19);
    let (g, other) = (GuildId(1), GuildId(2));
    let rt = Reprise::open_with_storage(ROOT, quiet(), Arc::clone(&storage) as Arc<dyn Storage>)
        .await
        .unwrap();
    let mut sub = rt.subscribe(g).await.unwrap();
    let watch = rt.durable_up_to(g).await.unwrap();
    let first = rt
        .append_ordered(g, position(1000, 1), Durability::None)
        .await
        .unwrap();
    // Published at once, as a `None` append is.
    assert_eq!(sub.recv().await.unwrap().seq, 1);
    let (done_tx, mut done_rx) = tokio::sync::oneshot::channel();
    let waiter = tokio::spawn(async move {
        let r = first.durable().await;
        let _ = done_tx.send(());
        r
    });
    // Nothing commits in a quiet runtime with only `None` appends: not durable yet. The state
    // is read through the writer after the append, so the writer has handled it.
    assert_eq!(rt.state(g).await.unwrap().seq, 1);
    assert!(done_rx.try_recv().is_err());
    assert_eq!(*watch.borrow(), 0);
    rt.flush().await.unwrap();
    assert_eq!(guarded("durable", waiter).await.unwrap().unwrap(), 1);
    assert_eq!(*watch.borrow(), 1);
    // Another guild's `Always` append commits it too.
    let second = rt
        .append_ordered(g, position(2000, 2), Durability::None)
        .await
        .unwrap();
    rt.append(other, event(r#"{"type":"volume_set","volume":5}"#))
        .await
        .unwrap();
    assert_eq!(guarded("durable", second.durable()).await.unwrap(), 2);
    assert_eq!(*watch.borrow(), 2);
    rt.shutdown().await.unwrap();
}

/// A failed fsync after the event was ordered: `durable()` fails with the commit log's poison
/// (naming the fsync), the watch does not pass the event, and every later append (ordered or
/// not) fails the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_fsync_fails_durable_and_every_later_append() {
    let storage = sim(23);
    let g = GuildId(3);
    let rt = Reprise::open_with_storage(ROOT, quiet(), Arc::clone(&storage) as Arc<dyn Storage>)
        .await
        .unwrap();
    assert_eq!(rt.append_many(g, playing()).await.unwrap(), vec![1, 2]);
    let watch = rt.durable_up_to(g).await.unwrap();
    assert_eq!(*watch.borrow(), 2);
    storage.set_fault(Fault::FailKind {
        kind: OpKind::SyncData,
        nth: storage.op_count_of(OpKind::SyncData),
        sticky: false,
        error: InjectedError::Eio,
    });
    // Ordered at once; its group commit (one event due) fails.
    let o = rt
        .append_ordered(g, position(5000, 1), batched(Duration::from_secs(60), 1))
        .await
        .unwrap();
    assert_eq!(o.seq(), 3);
    let failed = guarded("durable", o.durable()).await;
    storage.clear_faults();
    assert!(storage.injected_count() > 0);
    assert!(
        matches!(
            failed,
            Err(Error::Poisoned {
                guild: None,
                op: "fsync"
            })
        ),
        "{failed:?}"
    );
    assert_eq!(*watch.borrow(), 2);
    let later = rt
        .append_ordered(g, position(6000, 2), Durability::None)
        .await;
    assert!(
        matches!(later, Err(Error::Poisoned { guild: None, .. })),
        "{later:?}"
    );
    let later = rt.append(g, position(6000, 2)).await;
    assert!(
        matches!(later, Err(Error::Poisoned { guild: None, .. })),
        "{later:?}"
    );
    let _ = rt.shutdown().await;
}

/// An invalid event is refused by `append_ordered` itself (nothing written), and the guild
/// goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_ordered_append_is_refused_before_it_has_a_seq() {
    let dir = tempfile::tempdir().unwrap();
    let g = GuildId(4);
    let rt = Reprise::open(dir.path(), quiet()).await.unwrap();
    let refused = rt
        .append_ordered(
            g,
            event(r#"{"type":"track_removed","index":0}"#),
            Durability::BATCHED,
        )
        .await;
    assert!(
        matches!(refused, Err(Error::InvalidEvent { .. })),
        "{refused:?}"
    );
    let o = rt
        .append_ordered(g, position(1, 1), Durability::Always)
        .await
        .unwrap();
    assert_eq!(guarded("durable", o.durable()).await.unwrap(), 1);
    rt.shutdown().await.unwrap();
}

/// Issue 19: dropping the last handle and reopening at once failed with `Locked` "by another
/// process (pid <our own pid>)". While a handle is alive the error names this process and says
/// what to do; once the last one is dropped, a reopen waits for the old writer's shutdown and
/// finds everything, a `None` append included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopening_right_after_dropping_the_last_handle_works() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::default();
    for round in 0..3u64 {
        let g = GuildId(11 + round);
        let rt = Reprise::open(dir.path(), config.clone()).await.unwrap();
        let other = rt.clone();
        match Reprise::open(dir.path(), config.clone()).await {
            Err(
                e @ Error::Locked {
                    holder_pid: Some(pid),
                    ..
                },
            ) if pid == std::process::id() => {
                let text = e.to_string();
                assert!(text.contains("this process"), "{text}");
                assert!(text.contains("shutdown().await"), "{text}");
                assert!(!text.contains("another process"), "{text}");
            }
            held => panic!("round {round}: {held:?}"),
        }
        // Enough for the shutdown to take a moment (a final snapshot, the retirement).
        let (events, states) = crate::common::stream(round, 400);
        let seqs = rt
            .append_many_with(g, events, Some(Durability::None))
            .await
            .unwrap();
        assert_eq!(seqs, (1..=400).collect::<Vec<u64>>());
        drop(rt);
        drop(other);
        let rt = Reprise::open(dir.path(), config.clone())
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        let state = rt.state(g).await.unwrap();
        assert_eq!(state.seq, 400, "round {round}");
        assert_eq!(state.state, states[400], "round {round}");
        rt.shutdown().await.unwrap();
    }
}

/// The Lavalink restore on the async handle gives the same plan (and PATCH body) as the
/// blocking journal's and as `lavalink::plan` of the state, for every section choice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_async_lavalink_restore_equals_the_blocking_one() {
    let dir = tempfile::tempdir().unwrap();
    let g = GuildId(613_425_648_685_547_541);
    let rt = Reprise::open(dir.path(), Config::default()).await.unwrap();
    let mut events = vec![event(
        r#"{"type":"voice_connected","session_id":"sess","channel_id":123,"endpoint":"eu.discord.media","token":"tok"}"#,
    )];
    events.extend(playing());
    events.push(event(r#"{"type":"volume_set","volume":80}"#));
    events.push(event(
        r#"{"type":"filters_set","active":["timescale"],"config":{"timescale":{"speed":1.5,"pitch":1.0,"rate":1.0}}}"#,
    ));
    events.push(position(40_000, 1_700_000_000_000));
    rt.append_many(g, events).await.unwrap();
    let now = 1_700_000_010_000;
    let player_only = Sections {
        player: true,
        ..Sections::NONE
    };
    let from_async = [
        rt.lavalink_restore(g, now, Sections::ALL).await.unwrap(),
        rt.lavalink_restore(g, now, player_only).await.unwrap(),
    ];
    // Meaningful: a track, a position moved forward at the timescale's speed, voice.
    assert_eq!(from_async[0].patch.position, Some(55_000));
    assert_eq!(from_async[0].extrapolated_ms, 15_000);
    assert!(from_async[0].patch.voice.is_some());
    assert!(from_async[0].queue.is_some() && from_async[1].queue.is_none());
    let state = rt.state(g).await.unwrap();
    rt.shutdown().await.unwrap();
    let mut j = Journal::open(dir.path(), Config::default()).unwrap();
    for (only, restore) in [Sections::ALL, player_only].into_iter().zip(&from_async) {
        let blocking = j.lavalink_restore(g, now, only).unwrap();
        assert_eq!(&blocking, restore);
        assert_eq!(&lavalink::plan(&state, now, only), restore);
        assert_eq!(
            serde_json::to_string(&blocking.patch).unwrap(),
            serde_json::to_string(&restore.patch).unwrap()
        );
    }
}

//! Late uploads of a fenced owner (issue 13 item 1): an owner cut off from the store for
//! longer than its local retention keeps unshipped segments comes back, takes the skip path
//! (a snapshot stands in for the events its local log dropped) and uploads that snapshot
//! before its batch meets the fence a newer owner's claim wrote. The snapshot holds events
//! no owner acknowledged remotely, past the fenced epoch's history: no claim may build on it.

#![cfg(feature = "remote")]

use std::sync::Arc;

use object_store::memory::InMemory;
use object_store::ObjectStoreExt;
use reprise::remote::faulty::{Faults, FaultyStore};
use reprise::remote::{LocalDir, Remote};
use reprise::{Config, Durability, Error, Event, GuildId, Journal};

const GUILD: GuildId = GuildId(81_604_378_113_851_442);

fn config() -> Config {
    Config::default()
        .without_auto_snapshots()
        .with_segment_bytes_max(4096)
        .with_snapshots_retained(1)
}

fn event(tag: u64, i: u64) -> Event {
    Event::PositionReported {
        position_ms: tag * 1_000_000 + i,
        at_unix_ms: tag,
        entry_id: None,
    }
}

fn state_json(journal: &mut Journal) -> serde_json::Value {
    let state = journal.state(GUILD).unwrap();
    serde_json::to_value(&state.state).unwrap()
}

/// A (epoch 1) ships 1..=5, is cut off, appends 6..=15 with snapshots at 10 and 15 (its
/// local retention drops the segments of 6..=10); B claims (epoch 2, history ends at 5) and
/// acknowledges 6..=8 remotely; A heals and ships with its cached ownership: the skip path,
/// then B's fence. Returns the remote, A's directory and journal, and B's state.
async fn late_upload_after_a_fence() -> (Remote, tempfile::TempDir, Journal, serde_json::Value) {
    let store = Arc::new(FaultyStore::new(
        Arc::new(InMemory::new()),
        1,
        Faults::default(),
    ));
    let remote = Remote::new(store.clone(), "fleet");

    // A (epoch 1) ships events 1..=5.
    let dir_a = tempfile::tempdir().unwrap();
    let mut a = Journal::open(dir_a.path(), config()).unwrap();
    let local_a = LocalDir::of(&a);
    let mut writer_a = remote.writer(&local_a).await.unwrap();
    let mut owners_a = vec![remote
        .owner(&local_a, &mut writer_a, GUILD, "a")
        .await
        .unwrap()];
    for i in 1..=5 {
        a.append(GUILD, &event(1, i), Durability::Always).unwrap();
    }
    remote
        .ship_events(&mut a, &mut writer_a, &mut owners_a)
        .await
        .unwrap();
    assert_eq!(owners_a[0].head, 5);

    // A is cut off: it goes on appending and snapshotting, and its local retention drops the
    // segments holding events it never shipped.
    store.set_down(true);
    for i in 6..=15 {
        a.append(GUILD, &event(1, i), Durability::Always).unwrap();
        if i == 10 || i == 15 {
            a.snapshot_now(GUILD).unwrap();
        }
    }
    assert!(
        remote
            .ship_events(&mut a, &mut writer_a, &mut owners_a)
            .await
            .is_err(),
        "the store is down for A"
    );

    // B claims (fencing A after event 5) and acknowledges events 6..=8 remotely.
    store.set_down(false);
    let dir_b = tempfile::tempdir().unwrap();
    let mut b = Journal::open(dir_b.path(), config()).unwrap();
    let claimed = remote.claim(&mut b, GUILD, "b").await.unwrap();
    assert_eq!((claimed.epoch.get(), claimed.seq), (2, 5));
    let local_b = LocalDir::of(&b);
    let mut writer_b = remote.writer(&local_b).await.unwrap();
    let mut owners_b = vec![remote
        .owner(&local_b, &mut writer_b, GUILD, "b")
        .await
        .unwrap()];
    for i in 6..=8 {
        b.append(GUILD, &event(2, i), Durability::Always).unwrap();
    }
    remote
        .ship_events(&mut b, &mut writer_b, &mut owners_b)
        .await
        .unwrap();
    assert_eq!(owners_b[0].head, 8, "B's events 6..=8 are acknowledged");
    let b_state = state_json(&mut b);

    // A heals and ships with its cached ownership: the skip path, then the fence.
    let shipped = remote
        .ship_events(&mut a, &mut writer_a, &mut owners_a)
        .await;
    assert!(shipped.is_ok(), "{shipped:?}");
    assert!(
        matches!(
            owners_a[0].check(),
            Err(Error::Fenced {
                epoch: reprise::Epoch(2),
                ..
            })
        ),
        "A met B's fence"
    );

    (remote, dir_a, a, b_state)
}

async fn claim_fresh(remote: &Remote) -> (u64, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let mut journal = Journal::open(dir.path(), config()).unwrap();
    let claimed = remote.claim(&mut journal, GUILD, "z").await.unwrap();
    (claimed.seq, state_json(&mut journal))
}

#[tokio::test]
async fn regression_fenced_owner_late_skip_snapshot_does_not_replace_newer_owner_events() {
    let (remote, _dir_a, _a, b_state) = late_upload_after_a_fence().await;
    // A's upload past its epoch's head is gone again: a fenced owner removes it.
    let listed: Vec<_> = {
        use futures_util::TryStreamExt;
        let prefix = remote.key(&format!("guilds/{}/snap", GUILD.0));
        remote
            .store()
            .list(Some(&prefix))
            .try_collect::<Vec<_>>()
            .await
            .unwrap()
    };
    let late: Vec<String> = listed
        .iter()
        .map(|o| o.location.to_string())
        .filter(|k| {
            k.ends_with(&format!("-{:020}.skip", 1)) || k.ends_with(&format!("-{:020}.snap", 1))
        })
        .collect();
    assert_eq!(
        late,
        Vec::<String>::new(),
        "A's late uploads stay in the store"
    );

    // A later claim holds B's acknowledged events, not A's unacknowledged ones.
    assert_eq!(claim_fresh(&remote).await, (8, b_state));
}

/// A snapshot stored under the ordinary name past its epoch's fenced history (as the skip
/// path did before the skip name existed) is passed over by a claim, not taken as its base
/// because it has the highest seq.
#[tokio::test]
async fn regression_claim_base_is_a_snapshot_its_epochs_fenced_log_reaches() {
    let (remote, dir_a, _a, b_state) = late_upload_after_a_fence().await;
    let path = reprise::layout::snapshot_path(dir_a.path(), GUILD, 15);
    let bytes = std::fs::read(&path).unwrap();
    remote
        .store()
        .put(
            &remote.snapshot_key(GUILD, 15, reprise::Epoch(1)),
            bytes.into(),
        )
        .await
        .unwrap();
    assert_eq!(claim_fresh(&remote).await, (8, b_state));
}

//! Batch objects stay readable (issue 13 item 6): readers refuse a batch longer than
//! `BATCH_LEN_MAX` (256 MiB), and a guild's segment may be up to 1 GiB, so a shipping round
//! must never store a batch longer than that — else every later claim fails for good.

#![cfg(feature = "remote")]

use std::sync::Arc;

use futures_util::TryStreamExt;
use object_store::memory::InMemory;
use object_store::ObjectStore;
use reprise::remote::{LocalDir, Remote, BATCH_LEN_MAX};
use reprise::session::Track;
use reprise::{Config, Durability, Event, GuildId, Journal};

const GUILD: GuildId = GuildId(81_604_378_113_851_443);

/// One event of about 12 MiB: 1,000 tracks with the largest blob a track may carry.
fn big_event(round: u64) -> Event {
    let blob = "A".repeat(reprise::session::limits::ENCODED_LEN_MAX);
    Event::TracksEnqueued {
        tracks: (0..1000)
            .map(|i| Track::new(blob.clone(), format!("round {round} track {i}")))
            .collect(),
        index: None,
    }
}

#[tokio::test]
async fn regression_a_segment_longer_than_a_batch_ships_as_batches_a_claim_reads() {
    let store = Arc::new(InMemory::new());
    let remote = Remote::new(store.clone(), "fleet");
    // One segment of up to 1 GiB holds everything: about 280 MiB of events.
    let config = Config::default()
        .without_auto_snapshots()
        .with_segment_bytes_max(1 << 30);
    let dir_a = tempfile::tempdir().unwrap();
    let mut a = Journal::open(dir_a.path(), config.clone()).unwrap();
    let local_a = LocalDir::of(&a);
    let mut writer = remote.writer(&local_a).await.unwrap();
    let mut owners = vec![remote
        .owner(&local_a, &mut writer, GUILD, "a")
        .await
        .unwrap()];
    let rounds = 24;
    for round in 0..rounds {
        a.append(GUILD, &big_event(round), Durability::Always)
            .unwrap();
        a.append(GUILD, &Event::QueueCleared, Durability::Always)
            .unwrap();
    }
    let last = 2 * rounds;
    let segments = std::fs::read_dir(dir_a.path().join("guilds").join(GUILD.0.to_string()))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().unwrap() == "wal")
        .count();
    assert_eq!(segments, 1, "one segment holds every event");

    remote
        .ship_events(&mut a, &mut writer, &mut owners)
        .await
        .unwrap();
    assert_eq!(owners[0].head, last);

    // Every stored batch is one a reader accepts.
    let prefix = remote.key(&format!("writers/{}", writer.name()));
    let objects: Vec<_> = store.list(Some(&prefix)).try_collect().await.unwrap();
    for o in &objects {
        assert!(
            o.size <= BATCH_LEN_MAX,
            "{} holds {} bytes, more than any reader accepts ({BATCH_LEN_MAX})",
            o.location,
            o.size
        );
    }

    assert!(objects.len() >= 2, "{} batch objects", objects.len());

    // A claim elsewhere reads them all.
    let dir_b = tempfile::tempdir().unwrap();
    let mut b = Journal::open(dir_b.path(), config).unwrap();
    let claimed = remote.claim(&mut b, GUILD, "b").await.unwrap();
    assert_eq!(claimed.seq, last);
    assert_eq!(
        serde_json::to_value(&b.state(GUILD).unwrap().state).unwrap(),
        serde_json::to_value(&a.state(GUILD).unwrap().state).unwrap()
    );
}

//! The async runtime with a remote: `remote` durability with group commit to the store,
//! background shipping, fencing seen by a running owner, `Reprise::claim`, and a store that
//! goes down. Against `object_store`'s in-memory store wrapped by the fault-injecting one (no
//! faults unless a test sets them), so request counts are exact. Driven by `ship_now()`, never
//! by sleeping.

#![cfg(feature = "remote")]

use std::sync::Arc;

use object_store::memory::InMemory;
use reprise::remote::faulty::{Faults, FaultyStore};
use reprise::remote::Remote;
use reprise::runtime::RemoteOptions;
use reprise::{Config, Durability, Error, Event, GuildId, Journal, Reprise};

fn volume(v: u16) -> Event {
    Event::VolumeSet { volume: v }
}

fn store() -> (Arc<FaultyStore>, Remote) {
    let store = Arc::new(FaultyStore::new(
        Arc::new(InMemory::new()),
        1,
        Faults::default(),
    ));
    let remote = Remote::new(store.clone(), "fleet");
    (store, remote)
}

fn options(remote: &Remote, owner: &str) -> RemoteOptions {
    RemoteOptions {
        remote: remote.clone(),
        owner: owner.into(),
    }
}

/// Claims `guild` into a fresh directory with the synchronous API and returns its state JSON.
async fn claim_elsewhere(remote: &Remote, guild: GuildId) -> (u64, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let mut journal = Journal::open(dir.path(), Config::default()).unwrap();
    let claimed = remote
        .claim(&mut journal, guild, "elsewhere")
        .await
        .unwrap();
    let state = journal.state(guild).unwrap();
    (claimed.seq, serde_json::to_value(&state.state).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_appends_of_64_guilds_share_objects_and_survive_the_machine() {
    let (store, remote) = store();
    let dir = tempfile::tempdir().unwrap();
    let rt = Reprise::open_with_remote(dir.path(), Config::default(), options(&remote, "a"))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for g in 0..64u64 {
        let rt = rt.clone();
        tasks.push(tokio::spawn(async move {
            let guild = GuildId(1000 + g);
            for i in 0..20u16 {
                let seq = rt
                    .append_with(guild, volume(i), Durability::Remote)
                    .await
                    .unwrap();
                assert_eq!(seq, u64::from(i) + 1);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let puts = store.requests().puts;
    // 1,280 events; each guild's first contact claims epoch 1 (one PUT per guild), and the
    // events share batch objects.
    assert!(
        puts < 64 + 1280 / 4,
        "{puts} PUTs for 1,280 remote events of 64 guilds"
    );
    // Every acknowledged event is in the store: a claim elsewhere (without this process's
    // disk) holds all of them.
    for g in [0u64, 31, 63] {
        let guild = GuildId(1000 + g);
        let (seq, state) = claim_elsewhere(&remote, guild).await;
        assert_eq!(seq, 20);
        assert_eq!(state["player"]["volume"], 19, "{state}");
    }
    // The old owner is fenced for those guilds, and only those.
    let err = rt
        .append_with(GuildId(1000), volume(1), Durability::Remote)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Fenced {
                epoch: reprise::Epoch(2),
                ..
            }
        ),
        "{err}"
    );
    let err = rt.append(GuildId(1000), volume(1)).await.unwrap_err();
    assert!(matches!(err, Error::Fenced { .. }), "{err}");
    let seq = rt
        .append_with(GuildId(1001), volume(7), Durability::Remote)
        .await
        .unwrap();
    assert_eq!(seq, 21);
    rt.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_shipping_and_claim_through_the_runtime() {
    let (store, remote) = store();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let guild = GuildId(42);
    let rt_a = Reprise::open_with_remote(a.path(), Config::default(), options(&remote, "a"))
        .await
        .unwrap();
    for i in 0..50u16 {
        let durability =
            [Durability::Always, Durability::None, Durability::BATCHED][usize::from(i % 3)];
        rt_a.append_with(guild, volume(i), durability)
            .await
            .unwrap();
    }
    // Nothing waits for the store with these durabilities; ship_now runs the round the ship
    // interval would.
    rt_a.ship_now().await.unwrap();
    assert!(store.requests().puts >= 2);
    let before = store.requests().puts;
    rt_a.ship_now().await.unwrap();
    assert_eq!(
        store.requests().puts,
        before,
        "nothing new, nothing uploaded"
    );

    // Another machine's runtime claims the guild and continues its sequence.
    let rt_b = Reprise::open_with_remote(b.path(), Config::default(), options(&remote, "b"))
        .await
        .unwrap();
    let claimed = rt_b.claim(guild).await.unwrap();
    assert_eq!((claimed.epoch.get(), claimed.seq), (2, 50));
    // Claiming it again is a no-op (this directory holds the newest epoch); a shard claim
    // takes the guilds of its shard only.
    assert_eq!(rt_b.claim(guild).await.unwrap(), claimed);
    let shard = (guild.0 >> 22) % 4;
    let mine = rt_b
        .claim_shard(shard, 4, std::time::Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(mine, vec![claimed.clone()]);
    assert!(rt_b
        .claim_shard((shard + 1) % 4, 4, std::time::Duration::ZERO)
        .await
        .unwrap()
        .is_empty());
    let state_b = rt_b.state(guild).await.unwrap();
    assert_eq!(state_b.seq, 50);
    assert_eq!(state_b.state, rt_a.state(guild).await.unwrap().state);
    let seq = rt_b
        .append_with(guild, volume(99), Durability::Remote)
        .await
        .unwrap();
    assert_eq!(seq, 51);

    // The old owner learns of the newer epoch at its next round and stops acknowledging.
    rt_a.append(guild, volume(1)).await.unwrap();
    rt_a.ship_now().await.unwrap();
    let err = rt_a.append(guild, volume(2)).await.unwrap_err();
    assert!(
        matches!(&err, Error::Fenced { epoch: reprise::Epoch(2), owner, .. } if owner == "b"),
        "{err}"
    );
    rt_a.shutdown().await.unwrap();
    // ... and so does the next process on its directory.
    let rt_a = Reprise::open_with_remote(a.path(), Config::default(), options(&remote, "a"))
        .await
        .unwrap();
    let err = rt_a.append(guild, volume(3)).await.unwrap_err();
    assert!(matches!(err, Error::Fenced { .. }), "{err}");

    // The guild moves back: A's copy (with its event 51 the store never had) is set aside
    // and B's history takes its place.
    let back = rt_a.claim(guild).await.unwrap();
    assert_eq!((back.epoch.get(), back.seq), (3, 51));
    let old = back.superseded.expect("A's copy was set aside");
    assert_eq!((old.epoch.get(), old.seq), (1, Some(51)));
    assert!(old.path.starts_with(a.path()) && old.path.is_dir());
    let state_a = rt_a.state(guild).await.unwrap();
    assert_eq!(state_a.state, rt_b.state(guild).await.unwrap().state);
    assert_eq!(state_a.state.player.volume, 99);
    let seq = rt_a
        .append_with(guild, volume(7), Durability::Remote)
        .await
        .unwrap();
    assert_eq!(seq, 52);
    // B learns of it at its next round.
    rt_b.append(guild, volume(8)).await.unwrap();
    rt_b.ship_now().await.unwrap();
    let err = rt_b.append(guild, volume(9)).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Fenced {
                epoch: reprise::Epoch(3),
                ..
            }
        ),
        "{err}"
    );
    rt_a.shutdown().await.unwrap();
    rt_b.shutdown().await.unwrap();

    let (seq, state) = claim_elsewhere(&remote, guild).await;
    assert_eq!(seq, 52);
    assert_eq!(state["player"]["volume"], 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_is_down_stops_only_remote_acknowledgements() {
    let (store, remote) = store();
    let dir = tempfile::tempdir().unwrap();
    let guild = GuildId(7);
    let rt = Reprise::open_with_remote(dir.path(), Config::default(), options(&remote, "a"))
        .await
        .unwrap();
    rt.append_with(guild, volume(1), Durability::Remote)
        .await
        .unwrap();
    store.set_down(true);
    for i in 2..=10u16 {
        rt.append(guild, volume(i)).await.unwrap();
    }
    let err = rt
        .append_with(guild, volume(11), Durability::Remote)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Remote { .. }), "{err}");
    assert!(rt.ship_now().await.is_err());
    // The event that was not acknowledged remotely is durable locally all the same.
    assert_eq!(rt.state(guild).await.unwrap().seq, 11);
    store.set_down(false);
    rt.ship_now().await.unwrap();
    let (seq, state) = claim_elsewhere(&remote, guild).await;
    assert_eq!(seq, 11);
    assert_eq!(state["player"]["volume"], 11);
    rt.shutdown().await.unwrap();
}

#[tokio::test]
async fn remote_durability_without_a_remote_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Reprise::open(dir.path(), Config::default()).await.unwrap();
    let err = rt
        .append_with(GuildId(1), volume(1), Durability::Remote)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Remote { .. }), "{err}");
    assert_eq!(
        rt.state(GuildId(1)).await.unwrap().seq,
        0,
        "nothing written"
    );
    assert!(rt.claim(GuildId(1)).await.is_err());
    rt.shutdown().await.unwrap();
}

/// The keys under `prefix` in the store.
async fn keys(store: &FaultyStore, prefix: &str) -> Vec<String> {
    use futures_util::TryStreamExt;
    use object_store::ObjectStore;
    let prefix = object_store::path::Path::from(prefix);
    let listed: Vec<_> = store.list(Some(&prefix)).try_collect().await.unwrap();
    listed.into_iter().map(|m| m.location.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_holding_a_moved_guild_are_released_once_its_new_owner_stores_a_snapshot() {
    let (store, remote) = store();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (moved, kept) = (GuildId(42), GuildId(43));
    let rt_a = Reprise::open_with_remote(a.path(), Config::default(), options(&remote, "a"))
        .await
        .unwrap();
    // Both guilds in every batch A writes.
    for i in 0..10u16 {
        let (x, y) = tokio::join!(
            rt_a.append_with(moved, volume(i), Durability::Remote),
            rt_a.append_with(kept, volume(i), Durability::Remote)
        );
        x.unwrap();
        y.unwrap();
    }
    let written = keys(&store, "fleet/writers").await.len();
    assert!(written >= 5, "{written} objects");

    // B takes the moved guild and stores a snapshot of it; A learns of it at its next round.
    let rt_b = Reprise::open_with_remote(b.path(), Config::default(), options(&remote, "b"))
        .await
        .unwrap();
    assert_eq!(rt_b.claim(moved).await.unwrap().seq, 10);
    rt_b.snapshot_now(moved).await.unwrap();
    rt_b.ship_now().await.unwrap();
    rt_a.append(moved, volume(99)).await.unwrap();
    rt_a.ship_now().await.unwrap();
    assert!(matches!(
        rt_a.append(moved, volume(98)).await,
        Err(Error::Fenced { .. })
    ));
    // A snapshot of the guild A kept lets A's retention run: every batch before A's newest
    // is held by a snapshot now (the kept guild's, or the moved guild's at its new owner).
    rt_a.append(kept, volume(500)).await.unwrap();
    rt_a.snapshot_now(kept).await.unwrap();
    rt_a.ship_now().await.unwrap();
    let left = keys(&store, "fleet/writers").await;
    assert!(
        left.len() <= 3,
        "A's newest batch and the fence B left stay, the rest goes: {left:?}"
    );
    rt_a.shutdown().await.unwrap();
    rt_b.shutdown().await.unwrap();
    // Both guilds still claim whole.
    let (seq, state) = claim_elsewhere(&remote, moved).await;
    assert_eq!((seq, state["player"]["volume"].as_u64()), (10, Some(9)));
    let (seq, state) = claim_elsewhere(&remote, kept).await;
    assert_eq!((seq, state["player"]["volume"].as_u64()), (11, Some(500)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notice_stops_retention_until_it_is_older_than_a_claim_can_take() {
    use object_store::ObjectStore;
    use reprise::remote::{LocalDir, NOTICE_AGE_MAX};
    let (store, remote) = store();
    let dir = tempfile::tempdir().unwrap();
    let mut journal = Journal::open(dir.path(), Config::default()).unwrap();
    let guild = GuildId(42);
    let local = LocalDir::of(&journal);
    let mut writer = remote.writer(&local).await.unwrap();
    let mut owners = vec![remote.owner(&local, &mut writer, guild, "a").await.unwrap()];
    for round in 0..3u16 {
        for i in 0..5 {
            journal
                .append(guild, &volume(round * 10 + i), Durability::Always)
                .unwrap();
        }
        remote
            .ship_events(&mut journal, &mut writer, &mut owners)
            .await
            .unwrap();
    }
    journal.snapshot_now(guild).unwrap();
    remote
        .ship_snapshots(&LocalDir::of(&journal), &mut owners[0])
        .await
        .unwrap();
    let batches = keys(&store, "fleet/writers").await;
    assert_eq!(batches.len(), 3, "{batches:?}");
    // The notice of a claim that died before it fenced anything (epoch 2 never came).
    let name = batches[0].split('/').nth(2).unwrap();
    let notice = remote.notice_key(name, guild, reprise::Epoch(1), reprise::Epoch(2));
    store
        .put_opts(&notice, Vec::<u8>::new().into(), Default::default())
        .await
        .unwrap();

    assert_eq!(remote.retain(&mut writer, &mut owners).await.unwrap(), 0);
    assert_eq!(keys(&store, "fleet/writers").await, batches);
    // An hour on, no claim can still write a fence behind it: the notice goes, and so do
    // the batches the snapshot holds (all but the newest position).
    store.age_objects(NOTICE_AGE_MAX + std::time::Duration::from_secs(60));
    let deleted = remote.retain(&mut writer, &mut owners).await.unwrap();
    assert_eq!(deleted, 3, "the notice and two batches");
    assert!(keys(&store, "fleet/notices").await.is_empty());
    assert_eq!(keys(&store, "fleet/writers").await, batches[2..].to_vec());
    let (seq, state) = claim_elsewhere(&remote, guild).await;
    assert_eq!((seq, state["player"]["volume"].as_u64()), (15, Some(24)));
}

/// Issue 19: the bot's own data (a guild's `meta`: text channel, 24/7 flag; a track's
/// requester in `user_data`) moves with the guild: a claim on another machine, from the store
/// alone (a snapshot and the tail after it), gives it back, and with a key no object in the
/// store holds it in the clear.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meta_and_user_data_move_with_a_claim_and_are_encrypted_in_the_store() {
    use reprise::crypto::{Key, Keyring};
    use reprise::session::TrackFields;
    let (store, remote) = store();
    let keyed = || {
        Config::default()
            .without_auto_snapshots()
            .with_keys(Keyring::new(Key::from_bytes([5; 32]), []).unwrap())
    };
    let marker = "requester-7f3a9c1e";
    let meta = match serde_json::json!({
        "text_channel": "1100000000000000002",
        "twenty_four_seven": true,
        "marker": marker,
    }) {
        serde_json::Value::Object(map) => map,
        _ => unreachable!("an object"),
    };
    let mut track = TrackFields::new("QAAAjQIAJVJpY2sgQXN0bGV5", "Never Gonna Give You Up");
    track.user_data = Some(serde_json::json!({"requester": marker}));
    track.artwork_url = Some("https://i.ytimg.com/vi/dQw4w9WgXcQ/hq.jpg".into());
    let guild = GuildId(4242);
    let dir = tempfile::tempdir().unwrap();
    let rt = Reprise::open_with_remote(dir.path(), keyed(), options(&remote, "a"))
        .await
        .unwrap();
    rt.append_with(guild, Event::meta(meta.clone()), Durability::Remote)
        .await
        .unwrap();
    rt.append_with(guild, Event::enqueue([track.clone()]), Durability::Remote)
        .await
        .unwrap();
    rt.snapshot_now(guild).await.unwrap();
    rt.append_with(guild, Event::TrackStarted, Durability::Remote)
        .await
        .unwrap();
    rt.ship_now().await.unwrap();
    rt.shutdown().await.unwrap();
    let stored = keys(&store, "fleet").await;
    assert!(
        stored.iter().any(|k| k.contains("snap")),
        "a snapshot was shipped: {stored:?}"
    );
    for key in stored {
        use object_store::ObjectStoreExt;
        let bytes = store
            .get(&object_store::path::Path::from(key.as_str()))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert!(
            !bytes.windows(marker.len()).any(|w| w == marker.as_bytes()),
            "{key} holds the bot's data in the clear"
        );
    }
    let other = tempfile::tempdir().unwrap();
    let mut journal = Journal::open(other.path(), keyed()).unwrap();
    let claimed = remote.claim(&mut journal, guild, "b").await.unwrap();
    assert_eq!(claimed.seq, 3);
    let state = journal.state(guild).unwrap().state.clone();
    assert_eq!(state.meta, meta);
    let current = state.queue.current.expect("the track is playing");
    assert_eq!(current.track.fields(), track);
}

/// A claim that brings the store's history into the directory moves the guild's durability
/// watch to what the journal holds now (it kept the older copy's seq).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_moves_the_durability_watch_to_the_claimed_history() {
    let (_store, remote) = store();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let guild = GuildId(43);
    let rt_a = Reprise::open_with_remote(a.path(), Config::default(), options(&remote, "a"))
        .await
        .unwrap();
    for i in 0..5u16 {
        rt_a.append_with(guild, volume(i), Durability::Remote)
            .await
            .unwrap();
    }
    let watch = rt_a.durable_up_to(guild).await.unwrap();
    assert_eq!(*watch.borrow(), 5);
    let rt_b = Reprise::open_with_remote(b.path(), Config::default(), options(&remote, "b"))
        .await
        .unwrap();
    assert_eq!(rt_b.claim(guild).await.unwrap().seq, 5);
    for i in 0..7u16 {
        rt_b.append_with(guild, volume(50 + i), Durability::Remote)
            .await
            .unwrap();
    }
    rt_b.shutdown().await.unwrap();
    let back = rt_a.claim(guild).await.unwrap();
    assert_eq!(back.seq, 12);
    assert_eq!(*watch.borrow(), 12);
    assert_eq!(rt_a.state(guild).await.unwrap().state.player.volume, 56);
    rt_a.shutdown().await.unwrap();
}

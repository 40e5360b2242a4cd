//! The bot's own data: a guild's `meta` and entry-bound position reports, through append,
//! snapshot, crash, restore, checkpoint and encryption; over its cap, refused with nothing
//! written.

use std::path::{Path, PathBuf};

use reprise::checkpoints::{self, RollbackOptions, SystemPacer};
use reprise::crypto::{Key, Keyring};
use reprise::session::{EventError, Meta, Track, META_BYTES_MAX};
use reprise::{Config, Durability, Error, Event, GuildId, Journal};

/// The meta a bot keeps: a text channel, a 24/7 flag, a DJ role, with a marker that must
/// never reach the disk in the clear when a key is set.
fn bot_meta(marker: &str) -> Meta {
    match serde_json::json!({
        "text_channel": "1100000000000000002",
        "twenty_four_seven": true,
        "dj_role": {"id": 7, "name": marker},
    }) {
        serde_json::Value::Object(map) => map,
        _ => unreachable!("an object"),
    }
}

/// Every file under `dir`, with its bytes.
fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let bytes = std::fs::read(&p).unwrap();
                out.push((p, bytes));
            }
        }
    }
    out.sort();
    out
}

fn keyed() -> Config {
    let ring = Keyring::new(Key::from_bytes([9; 32]), []).unwrap();
    Config::default().without_auto_snapshots().with_keys(ring)
}

#[test]
fn oversize_meta_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let g = GuildId::from(3);
    let mut j = Journal::open(dir.path(), Config::default()).unwrap();
    let mut big = bot_meta("DJ");
    big.insert("blob".to_owned(), "x".repeat(META_BYTES_MAX).into());
    let refused = |j: &mut Journal| {
        let r = j.append(g, &Event::meta(big.clone()), Durability::Always);
        assert!(
            matches!(
                r,
                Err(Error::InvalidEvent {
                    source: EventError::DataTooLarge {
                        max: META_BYTES_MAX,
                        ..
                    },
                    ..
                })
            ),
            "{r:?}"
        );
    };
    refused(&mut j);
    assert_eq!(j.state(g).unwrap().seq, 0);
    assert!(!reprise::layout::guild_dir(dir.path(), g).exists());
    j.append(g, &Event::meta(bot_meta("DJ")), Durability::Always)
        .unwrap();
    let before = files(dir.path());
    refused(&mut j);
    assert_eq!(files(dir.path()), before, "the journal is unchanged");
    assert_eq!(j.state(g).unwrap().seq, 1);
    assert_eq!(j.state(g).unwrap().state.meta, bot_meta("DJ"));
}

#[test]
fn meta_survives_snapshot_crash_checkpoint_and_restore_and_is_never_on_disk_in_the_clear() {
    let dir = tempfile::tempdir().unwrap();
    let g = GuildId::from(4);
    let marker = "secret-dj-role-4f1c0a8b";
    let mut j = Journal::open(dir.path(), keyed()).unwrap();
    j.append(g, &Event::meta(bot_meta(marker)), Durability::Always)
        .unwrap();
    // A track with its requester: it follows the meta through every path below.
    let mut requested = reprise::session::TrackFields::new("QAAAenc1", "One");
    requested.user_data = Some(serde_json::json!({"requester": marker}));
    j.append(
        g,
        &Event::enqueue([
            Track::from(requested.clone()),
            Track::new("QAAAenc2", "Two"),
        ]),
        Durability::Always,
    )
    .unwrap();
    let queued = |j: &mut Journal| -> reprise::session::TrackFields {
        let s = j.state(g).unwrap();
        s.state
            .queue
            .upcoming
            .first()
            .expect("One is queued")
            .track
            .fields()
    };
    j.append(g, &Event::TrackStarted, Durability::Always)
        .unwrap();
    j.append(g, &Event::SessionEnded, Durability::Always)
        .unwrap();
    assert_eq!(
        j.state(g).unwrap().state.meta,
        bot_meta(marker),
        "kept by session_ended"
    );
    j.append(g, &Event::enqueue([requested.clone()]), Durability::Always)
        .unwrap();
    j.snapshot_now(g).unwrap();
    checkpoints::checkpoint(&mut j, "before-change").unwrap();
    let other = bot_meta("changed-later");
    j.append(g, &Event::meta(other.clone()), Durability::Always)
        .unwrap();
    // Crash: drop without closing, reopen with the key.
    drop(j);
    for (path, bytes) in files(dir.path()) {
        assert!(
            !bytes.windows(marker.len()).any(|w| w == marker.as_bytes()),
            "{} holds the meta in the clear",
            path.display()
        );
    }
    let mut j = Journal::open(dir.path(), keyed()).unwrap();
    assert_eq!(j.state(g).unwrap().state.meta, other);
    assert_eq!(j.state_at(g, 4).unwrap().state.meta, bot_meta(marker));
    checkpoints::rollback(
        &mut j,
        "before-change",
        &RollbackOptions::default(),
        &mut SystemPacer,
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(j.state(g).unwrap().state.meta, bot_meta(marker));
    assert_eq!(queued(&mut j), requested);
    j.close().unwrap();
    let mut j = Journal::open(dir.path(), keyed()).unwrap();
    assert_eq!(j.state(g).unwrap().state.meta, bot_meta(marker));
    assert_eq!(queued(&mut j), requested);
}

#[test]
fn a_stale_report_after_track_started_leaves_the_position_through_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let g = GuildId::from(5);
    let mut j = Journal::open(dir.path(), Config::default()).unwrap();
    let mut one = Track::new("QAAAenc1", "One").fields();
    one.length_ms = Some(200_000);
    j.append(g, &Event::enqueue([one.clone(), one]), Durability::Always)
        .unwrap();
    j.append(g, &Event::TrackStarted, Durability::Always)
        .unwrap();
    let first = j.state(g).unwrap().state.queue.current.as_ref().unwrap().id;
    j.append(
        g,
        &Event::position_of(first, 100_000, 1_000),
        Durability::Always,
    )
    .unwrap();
    j.append(g, &Event::TrackStarted, Durability::Always)
        .unwrap();
    let second = j.state(g).unwrap().state.queue.current.as_ref().unwrap().id;
    j.append(
        g,
        &Event::position_of(second, 3_000, 2_000),
        Durability::Always,
    )
    .unwrap();
    // The late playerUpdate of the first track: accepted, counted, ignored.
    let seq = j
        .append(
            g,
            &Event::position_of(first, 105_000, 2_100),
            Durability::Always,
        )
        .unwrap();
    assert_eq!(seq, 6);
    let check = |j: &mut Journal| {
        let state = &j.state(g).unwrap().state;
        assert_eq!(state.player.position_ms, 3_000);
        assert_eq!(state.player.position_anchor_unix_ms, Some(2_000));
        assert_eq!(state.stale_reports, 1);
    };
    check(&mut j);
    drop(j);
    let mut j = Journal::open(dir.path(), Config::default()).unwrap();
    check(&mut j);
}

#[test]
fn track_user_data_survives_snapshot_and_crash_encrypted_and_reaches_the_lavalink_body() {
    use reprise::lavalink::plan;
    use reprise::session::{TrackFields, USER_DATA_BYTES_MAX};
    use reprise::sonora::Sections;
    let dir = tempfile::tempdir().unwrap();
    let g = GuildId::from(6);
    let marker = "requester-7d1e5c0f9a";
    let mut fields = TrackFields::new("QAAAenc1", "One");
    fields.user_data = Some(serde_json::json!({"requester": marker}));
    fields.artwork_url = Some("https://i.ytimg.com/vi/x/hqdefault.jpg".to_owned());
    fields.isrc = Some("GBARL9300135".to_owned());
    fields.plugin_info = serde_json::json!({"albumName": "Whenever"})
        .as_object()
        .cloned();
    let mut j = Journal::open(dir.path(), keyed()).unwrap();
    j.append(g, &Event::enqueue([fields.clone()]), Durability::Always)
        .unwrap();
    j.snapshot_now(g).unwrap();
    j.append(g, &Event::TrackStarted, Durability::Always)
        .unwrap();
    // Over the cap: refused, nothing written.
    let mut big = TrackFields::new("QAAAenc2", "Two");
    big.user_data = Some("x".repeat(USER_DATA_BYTES_MAX).into());
    let before = files(dir.path());
    assert!(matches!(
        j.append(g, &Event::enqueue([big]), Durability::Always),
        Err(Error::InvalidEvent {
            source: EventError::DataTooLarge { .. },
            ..
        })
    ));
    assert_eq!(files(dir.path()), before);
    drop(j);
    for (path, bytes) in files(dir.path()) {
        assert!(
            !bytes.windows(marker.len()).any(|w| w == marker.as_bytes()),
            "{} holds the track's user data in the clear",
            path.display()
        );
    }
    let mut j = Journal::open(dir.path(), keyed()).unwrap();
    let guild = j.state(g).unwrap().clone();
    let current = &guild.state.queue.current.as_ref().unwrap().track;
    assert_eq!(current.fields(), fields);
    let body = serde_json::to_value(&plan(&guild, 0, Sections::ALL).patch).unwrap();
    assert_eq!(
        body["track"],
        serde_json::json!({"encoded": "QAAAenc1", "userData": {"requester": marker}})
    );
}

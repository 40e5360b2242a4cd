use reprise::{Config, Durability, Error, Event, GuildId, Journal};

use crate::common::{guild_files, stream};

#[test]
fn a_second_writer_is_refused_and_readers_wait_for_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(dir.path(), Config::default()).unwrap();
    assert!(matches!(
        Journal::open(dir.path(), Config::default()),
        Err(Error::Locked { holder_pid: Some(pid), .. }) if pid == std::process::id()
    ));
    assert!(matches!(
        Journal::open_read_only(dir.path(), Config::default()),
        Err(Error::Locked { .. })
    ));
    drop(j);
    let r1 = Journal::open_read_only(dir.path(), Config::default()).unwrap();
    let _r2 = Journal::open_read_only(dir.path(), Config::default()).unwrap();
    assert!(Journal::open(dir.path(), Config::default()).is_err());
    drop(r1);
}

#[test]
fn a_rejected_event_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let g = GuildId(1);
    let mut j = Journal::open(dir.path(), Config::default()).unwrap();
    let bad = [
        r#"{"type":"volume_set","volume":1001}"#,
        r#"{"type":"track_removed","index":0}"#,
        r#"{"type":"track_moved","from":0,"to":1}"#,
        r#"{"type":"filters_set","active":[],"config":{"equalizer":[{"band":15,"gain":0.1}]}}"#,
    ];
    for text in bad {
        let e = Event::from_json(text).unwrap();
        assert!(matches!(
            j.append(g, &e, Durability::Always),
            Err(Error::InvalidEvent { .. })
        ));
    }
    assert_eq!(j.state(g).unwrap().seq, 0);
    assert!(!reprise::layout::guild_dir(dir.path(), g).exists());
    let ok = Event::from_json(r#"{"type":"volume_set","volume":1000}"#).unwrap();
    assert_eq!(j.append(g, &ok, Durability::Always).unwrap(), 1);
}

#[test]
fn retention_keeps_k_snapshots_and_their_log() {
    let dir = tempfile::tempdir().unwrap();
    let g = GuildId(5);
    let (events, states) = stream(2, 300);
    let config = Config::default()
        .with_segment_bytes_max(4096)
        .with_snapshots_retained(2)
        .without_auto_snapshots();
    let mut j = Journal::open(dir.path(), config).unwrap();
    for (i, e) in events.iter().enumerate() {
        j.append(g, e, Durability::None).unwrap();
        if (i + 1) % 100 == 0 {
            j.snapshot_now(g).unwrap();
        }
    }
    let files = guild_files(dir.path(), g);
    let snaps: Vec<_> = files
        .iter()
        .filter(|p| p.extension().unwrap() == "snap")
        .collect();
    assert_eq!(snaps.len(), 2, "{files:?}");
    // The oldest kept snapshot is 200: 201.. must be replayable, and anything from the
    // segment holding 201 on; older states are compacted away.
    assert_eq!(j.state_at(g, 200).unwrap().state, states[200]);
    assert_eq!(j.state_at(g, 250).unwrap().state, states[250]);
    assert!(matches!(j.state_at(g, 50), Err(Error::Compacted { .. })));
    assert!(matches!(j.state_at(g, 301), Err(Error::SeqAhead { .. })));
    // Events iterate from the oldest retained segment, consecutively.
    let seqs: Vec<u64> = j.events(g).unwrap().map(|e| e.unwrap().seq).collect();
    assert_eq!(*seqs.last().unwrap(), 300);
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1));
    assert!(seqs[0] <= 201);
}

#[test]
fn automatic_snapshots_follow_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    let g = GuildId(9);
    let (events, states) = stream(4, 250);
    let config = Config::default().with_snapshot_every(Some(100), None);
    let mut j = Journal::open(dir.path(), config.clone()).unwrap();
    for e in &events {
        j.append(g, e, Durability::None).unwrap();
    }
    j.close().unwrap();
    let snaps: Vec<_> = guild_files(dir.path(), g)
        .into_iter()
        .filter(|p| p.extension().unwrap() == "snap")
        .collect();
    assert_eq!(snaps.len(), 2);
    assert!(snaps[1].ends_with("00000000000000000200.snap"));
    let mut j = Journal::open(dir.path(), config).unwrap();
    assert_eq!(j.state(g).unwrap().state, states[250]);
}

#[test]
fn opening_many_guilds_is_lazy() {
    let dir = tempfile::tempdir().unwrap();
    let (events, _) = stream(8, 3);
    {
        let mut j = Journal::open(dir.path(), Config::default()).unwrap();
        for g in 0..300u64 {
            for e in &events {
                j.append(GuildId(g), e, Durability::None).unwrap();
            }
        }
        j.close().unwrap();
    }
    // Break one guild: opening the journal and using the others is unaffected.
    let broken = guild_files(dir.path(), GuildId(17)).remove(0);
    std::fs::write(
        &broken,
        b"garbage that is not a segment header at all, long enough......",
    )
    .unwrap();
    let mut j = Journal::open(dir.path(), Config::default()).unwrap();
    assert_eq!(j.guilds().unwrap().len(), 300);
    assert_eq!(j.state(GuildId(3)).unwrap().seq, 3);
    assert!(matches!(j.state(GuildId(17)), Err(Error::Corrupt(_))));
}

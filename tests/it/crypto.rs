use std::path::{Path, PathBuf};

use reprise::crypto::{Key, KeyId, Keyring};
use reprise::{Config, CorruptionKind, Durability, Error, Event, GuildId, Journal};

use crate::common::stream;

fn key(b: u8) -> Key {
    Key::from_bytes([b; 32])
}

fn keyed(current: u8, previous: &[u8]) -> Config {
    let ring = Keyring::new(key(current), previous.iter().map(|b| key(*b))).unwrap();
    Config::default()
        .with_segment_bytes_max(4096)
        .with_snapshots_retained(1)
        .without_auto_snapshots()
        .with_keys(ring)
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

/// The secrets the events carry: track titles and authors, voice tokens and session ids.
fn secrets(events: &[Event]) -> Vec<String> {
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    match (k.as_str(), v) {
                        (
                            "title" | "author" | "token" | "session_id",
                            serde_json::Value::String(s),
                        ) if s.len() >= 6 => out.push(s.clone()),
                        _ => walk(v, out),
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    for e in events {
        walk(&serde_json::from_str(&e.to_json()).unwrap(), &mut out);
    }
    out.sort();
    out.dedup();
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn with_a_key_no_title_or_token_reaches_the_disk_and_recovery_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let g = GuildId(21);
    let (events, states) = stream(41, 400);
    let secrets = secrets(&events);
    assert!(
        secrets.len() > 50,
        "workload carries {} secrets",
        secrets.len()
    );
    let mut j = Journal::open(dir.path(), keyed(1, &[])).unwrap();
    for (i, e) in events.iter().enumerate() {
        j.append(g, e, Durability::Always).unwrap();
        if i == 250 {
            j.snapshot_now(g).unwrap();
        }
    }
    // Leave the commit log behind (as a crash would) so it is checked too.
    drop(j);
    let all = files(dir.path());
    let kinds: Vec<&str> = all
        .iter()
        .filter_map(|(p, _)| p.extension().and_then(|e| e.to_str()))
        .collect();
    for kind in ["wal", "snap", "clog"] {
        assert!(kinds.contains(&kind), "no .{kind} file in {kinds:?}");
    }
    for (path, bytes) in &all {
        for s in &secrets {
            assert!(
                !contains(bytes, s.as_bytes()),
                "{} holds {s:?} in the clear",
                path.display()
            );
        }
    }
    let mut j = Journal::open(dir.path(), keyed(1, &[])).unwrap();
    assert_eq!(j.state(g).unwrap().state, states[400]);
    assert_eq!(j.state_at(g, 300).unwrap().state, states[300]);
    let logged: Vec<_> = j.events(g).unwrap().map(|e| e.unwrap()).collect();
    assert!(logged.first().unwrap().seq <= 251);
    assert_eq!(logged.last().unwrap().seq, 400);
    for l in &logged {
        assert!(
            l.event == events[l.seq as usize - 1],
            "event {} differs",
            l.seq
        );
    }
    assert!(j.verify().unwrap().is_sound());
}

#[test]
fn without_the_key_or_with_another_the_journal_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let g = GuildId(22);
    let (events, _) = stream(42, 30);
    let mut j = Journal::open(dir.path(), keyed(1, &[])).unwrap();
    for e in &events {
        j.append(g, e, Durability::Always).unwrap();
    }
    j.close().unwrap();
    let before = files(dir.path());
    let id = key(1).id();
    for config in [Config::default(), keyed(2, &[])] {
        let given: Vec<KeyId> = config.keys.as_ref().map(Keyring::ids).unwrap_or_default();
        for read_only in [false, true] {
            let opened = if read_only {
                Journal::open_read_only(dir.path(), config.clone())
            } else {
                Journal::open(dir.path(), config.clone())
            };
            match opened {
                Err(Error::KeyMismatch {
                    key_id, given: g2, ..
                }) => {
                    assert_eq!(key_id, id);
                    assert_eq!(g2, given);
                }
                other => panic!("expected KeyMismatch, got {other:?}"),
            }
        }
    }
    // The key check file gone (deleted by hand): each file still refuses to be read.
    std::fs::remove_file(reprise::layout::keycheck_path(dir.path())).unwrap();
    let mut j = Journal::open_read_only(dir.path(), Config::default()).unwrap();
    assert!(matches!(j.state(g), Err(Error::KeyMismatch { .. })));
    drop(j);
    let after: Vec<_> = files(dir.path())
        .into_iter()
        .filter(|(p, _)| !p.ends_with("LOCK"))
        .collect();
    let before: Vec<_> = before
        .into_iter()
        .filter(|(p, _)| !p.ends_with("LOCK") && !p.ends_with("KEYCHECK"))
        .collect();
    assert_eq!(after, before, "a refused open changed the directory");
}

#[test]
fn a_frame_moved_to_another_guild_fails_authentication_at_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (GuildId(31), GuildId(32));
    let ev = Event::from_json(r#"{"type":"volume_set","volume":77}"#).unwrap();
    let mut j = Journal::open(dir.path(), keyed(1, &[])).unwrap();
    j.append(a, &ev, Durability::Always).unwrap();
    j.append(b, &ev, Durability::Always).unwrap();
    j.close().unwrap();
    let seg = |g| reprise::layout::segment_path(dir.path(), g, 1);
    let from_a = std::fs::read(seg(a)).unwrap();
    let mut into_b = std::fs::read(seg(b)).unwrap();
    let h = reprise::format::segment::HEADER_LEN;
    // Same seq, valid CRC (the frame checksum does not cover the guild): only the AEAD sees it.
    into_b.truncate(h);
    into_b.extend_from_slice(&from_a[h..]);
    std::fs::write(seg(b), &into_b).unwrap();
    let mut j = Journal::open_read_only(dir.path(), keyed(1, &[])).unwrap();
    let c = j.state(b).unwrap_err();
    let c = c.corruption().expect("corruption");
    assert_eq!(c.kind, CorruptionKind::Authentication);
    assert_eq!((c.path.clone(), c.offset), (seg(b), h as u64));
    let report = j.verify().unwrap();
    assert!(report
        .findings
        .iter()
        .any(|f| f.corruption.kind == CorruptionKind::Authentication));
    assert_eq!(j.state(a).unwrap().state.player.volume, 77);
}

#[test]
fn key_rotation_reads_old_files_and_writes_new_ones_with_the_new_key() {
    let dir = tempfile::tempdir().unwrap();
    let g = GuildId(41);
    let (events, states) = stream(43, 200);
    let seg_key = |path: &Path| {
        let bytes = std::fs::read(path).unwrap();
        reprise::format::segment::decode_header(&bytes)
            .unwrap()
            .key_id
    };
    let mut j = Journal::open(dir.path(), keyed(1, &[])).unwrap();
    for e in &events[..100] {
        j.append(g, e, Durability::Always).unwrap();
    }
    j.close().unwrap();
    // Rotate: key 2 is current, key 1 still opens the old files.
    let mut j = Journal::open(dir.path(), keyed(2, &[1])).unwrap();
    assert_eq!(j.state(g).unwrap().state, states[100]);
    for e in &events[100..150] {
        j.append(g, e, Durability::Always).unwrap();
    }
    let info = j.inspect(g).unwrap();
    assert!(
        info.segments.iter().any(|s| s.first_seq == 101),
        "new events start a new segment"
    );
    for s in &info.segments {
        let want = if s.first_seq > 100 { key(2) } else { key(1) };
        assert_eq!(seg_key(&s.path), want.id(), "{}", s.path.display());
    }
    // The next snapshot re-encrypts the guild; retention (1 snapshot) drops the old files.
    j.snapshot_now(g).unwrap();
    for e in &events[150..] {
        j.append(g, e, Durability::Always).unwrap();
    }
    j.close().unwrap();
    // The journal now names key 2: key 1 alone is refused, key 2 alone reads everything.
    assert!(matches!(
        Journal::open_read_only(dir.path(), keyed(1, &[])),
        Err(Error::KeyMismatch { .. })
    ));
    let mut j = Journal::open_read_only(dir.path(), keyed(2, &[])).unwrap();
    assert_eq!(j.state(g).unwrap().state, states[200]);
    for f in j.inspect(g).unwrap().segments {
        assert_eq!(seg_key(&f.path), key(2).id(), "{}", f.path.display());
    }
}

#[test]
fn a_plaintext_journal_opened_with_a_key_stays_readable_and_encrypts_what_is_new() {
    let dir = tempfile::tempdir().unwrap();
    let g = GuildId(51);
    let (events, states) = stream(44, 60);
    let mut j = Journal::open(dir.path(), Config::default()).unwrap();
    for e in &events[..30] {
        j.append(g, e, Durability::Always).unwrap();
    }
    j.close().unwrap();
    let mut j = Journal::open(dir.path(), keyed(3, &[])).unwrap();
    assert_eq!(j.state(g).unwrap().state, states[30]);
    for e in &events[30..] {
        j.append(g, e, Durability::Always).unwrap();
    }
    j.snapshot_now(g).unwrap();
    j.close().unwrap();
    // From now on the key is required.
    assert!(matches!(
        Journal::open_read_only(dir.path(), Config::default()),
        Err(Error::KeyMismatch { .. })
    ));
    let mut j = Journal::open_read_only(dir.path(), keyed(3, &[])).unwrap();
    assert_eq!(j.state(g).unwrap().state, states[60]);
}

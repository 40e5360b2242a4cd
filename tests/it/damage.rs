use std::fs;
use std::path::Path;

use reprise::format::segment;
use reprise::session::State;
use reprise::{Config, CorruptionKind, Durability, Error, GuildId, Journal};

use crate::common::{copy_dir, guild_files, stream, write};

const GUILD: GuildId = GuildId(42);

/// The state a journal recovers to, or the error.
fn recover(dir: &Path) -> Result<(u64, State), Error> {
    let mut j = Journal::open(dir, Config::default())?;
    let s = j.state(GUILD)?;
    Ok((s.seq, s.state.clone()))
}

/// Cutting the last segment at every byte offset inside its last record recovers exactly the
/// previous record's state; a zero-filled tail too. The repaired journal accepts new appends.
#[test]
fn torn_tail_at_every_byte_of_the_last_record() {
    let base = tempfile::tempdir().unwrap();
    let (events, states) = stream(11, 6);
    write(base.path(), Config::default(), GUILD, &events);
    let files = guild_files(base.path(), GUILD);
    assert_eq!(files.len(), 1, "one segment expected: {files:?}");
    let seg_name = files[0].file_name().unwrap().to_owned();
    let full = fs::read(&files[0]).unwrap();
    // Where the last frame starts.
    let scan = segment::scan(&full, true).unwrap();
    let last_start = segment::frames(&full, scan.valid_len).last().unwrap().0 as usize;
    for cut in last_start..full.len() {
        for zero_fill in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            copy_dir(base.path(), dir.path());
            let path = reprise::layout::guild_dir(dir.path(), GUILD).join(&seg_name);
            let mut bytes = full[..cut].to_vec();
            if zero_fill {
                bytes.resize(full.len() + 4096, 0);
            }
            fs::write(&path, &bytes).unwrap();
            // Read-only first: verify reports a torn tail (or nothing for a clean cut) but no
            // damage.
            {
                let mut r = Journal::open_read_only(dir.path(), Config::default()).unwrap();
                let report = r.verify().unwrap();
                assert!(report.is_sound(), "cut {cut}: {:?}", report.findings);
                if cut != last_start || zero_fill {
                    assert!(report
                        .findings
                        .iter()
                        .any(|f| f.corruption.kind == CorruptionKind::TornTail));
                }
            }
            let (seq, state) = recover(dir.path()).unwrap();
            assert_eq!(seq, 5, "cut {cut} zero_fill {zero_fill}");
            assert_eq!(state, states[5]);
            // The tail is gone from disk and appending continues the sequence.
            assert_eq!(fs::metadata(&path).unwrap().len(), last_start as u64);
            let mut j = Journal::open(dir.path(), Config::default()).unwrap();
            assert_eq!(j.append(GUILD, &events[5], Durability::Always).unwrap(), 6);
            assert_eq!(j.state(GUILD).unwrap().state, states[6]);
        }
    }
}

/// A journal with two sealed segments, an active one and two snapshots.
fn layered(dir: &Path) -> (Vec<reprise::Event>, Vec<State>, Config) {
    let (events, states) = stream(5, 90);
    let config = Config::default()
        .with_segment_bytes_max(4096)
        .without_auto_snapshots()
        .with_snapshots_retained(2);
    let mut j = Journal::open(dir, config.clone()).unwrap();
    for (i, e) in events.iter().enumerate() {
        j.append(GUILD, e, Durability::None).unwrap();
        if i == 29 || i == 59 {
            j.snapshot_now(GUILD).unwrap();
        }
    }
    j.close().unwrap();
    (events, states, config)
}

/// Flipping any single byte of a snapshot or a sealed segment makes verify report damage in
/// that file at an offset at or before the flip, and never makes recovery return a state that
/// no prefix of the events produces. Every byte with `REPRISE_EXHAUSTIVE=1`; otherwise every
/// byte of the headers and a stride through the rest.
#[test]
fn single_byte_flips_in_sealed_files_are_reported() {
    let exhaustive = std::env::var_os("REPRISE_EXHAUSTIVE").is_some();
    let dir = tempfile::tempdir().unwrap();
    let (_, states, config) = layered(dir.path());
    let files = guild_files(dir.path(), GUILD);
    let segments: Vec<_> = files
        .iter()
        .filter(|p| p.extension().unwrap() == "wal")
        .collect();
    let sealed: Vec<_> = segments[..segments.len() - 1].to_vec();
    let snapshots: Vec<_> = files
        .iter()
        .filter(|p| p.extension().unwrap() == "snap")
        .collect();
    assert!(!sealed.is_empty() && snapshots.len() == 2, "{files:?}");
    let mut checked = 0;
    for path in sealed.iter().chain(snapshots.iter()) {
        let original = fs::read(path).unwrap();
        let stride = if exhaustive { 1 } else { 5 };
        let offsets: Vec<usize> = (0..original.len())
            .filter(|i| i % stride == 0 || *i < 2 * segment::HEADER_LEN)
            .collect();
        for i in offsets {
            let mut bytes = original.clone();
            bytes[i] ^= 0x5a;
            fs::write(path, &bytes).unwrap();
            // Read-only journals never modify the directory, so the flip can be undone after.
            let mut r = Journal::open_read_only(dir.path(), config.clone()).unwrap();
            let report = r.verify().unwrap();
            let finding = report
                .findings
                .iter()
                .find(|f| f.is_damage() && &f.corruption.path == *path);
            let Some(finding) = finding else {
                panic!(
                    "flip at {i} of {} not reported: {:?}",
                    path.display(),
                    report.findings
                )
            };
            let offset = finding.corruption.offset as usize;
            assert!(offset <= i.max(64), "flip at {i} reported at {offset}");
            match r.state(GUILD) {
                Ok(s) => assert_eq!(s.state, states[s.seq as usize], "flip at {i}"),
                Err(Error::Corrupt(c)) => assert!(c.path.starts_with(dir.path())),
                Err(e) => panic!("flip at {i}: unexpected error {e}"),
            }
            drop(r);
            fs::write(path, &original).unwrap();
            checked += 1;
        }
    }
    assert!(checked > 100);
}

/// A damaged newest snapshot falls back to the previous snapshot and a longer tail.
#[test]
fn damaged_newest_snapshot_falls_back_to_the_previous_one() {
    let dir = tempfile::tempdir().unwrap();
    let (_, states, config) = layered(dir.path());
    let newest = reprise::layout::snapshot_path(dir.path(), GUILD, 60);
    let mut bytes = fs::read(&newest).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    fs::write(&newest, bytes).unwrap();
    let mut j = Journal::open(dir.path(), config).unwrap();
    let s = j.state(GUILD).unwrap().clone();
    assert_eq!((s.seq, &s.state), (90, &states[90]));
    let findings = j.recovery_findings(GUILD).unwrap();
    assert!(findings
        .iter()
        .any(|c| c.path == newest && c.kind == CorruptionKind::SnapshotChecksum));
}

/// Damage in the middle of the active segment (a valid record follows) is corruption, not a
/// torn tail: recovery refuses and names the file and offset.
#[test]
fn mid_log_damage_in_the_active_segment_is_not_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let (events, _) = stream(3, 10);
    write(dir.path(), Config::default(), GUILD, &events);
    let path = guild_files(dir.path(), GUILD).remove(0);
    let mut bytes = fs::read(&path).unwrap();
    let at = segment::HEADER_LEN + 30;
    bytes[at] ^= 0xff;
    fs::write(&path, &bytes).unwrap();
    let err = recover(dir.path()).unwrap_err();
    let c = err.corruption().expect("corruption error");
    assert_eq!(c.path, path);
    assert_eq!(c.offset, segment::HEADER_LEN as u64);
    // Nothing was cut.
    assert_eq!(fs::read(&path).unwrap(), bytes);
}

/// Regressions found by `cargo fuzz` (fuzz/regressions/): headers and names with sequence
/// numbers 0 or near u64::MAX are damage, never an arithmetic overflow.
#[test]
fn fuzz_regressions_out_of_range_sequence_numbers() {
    use reprise::format::segment::{encode_header, scan, SegmentHeader};
    for first_seq in [0, reprise::ids::SEQ_MAX + 1, u64::MAX] {
        let h = encode_header(&SegmentHeader {
            guild: 7,
            first_seq,
            history_max: 50,
            created_unix_ms: 0,
            key_id: reprise::crypto::KeyId::PLAINTEXT,
        });
        assert!(scan(&h, true).is_err(), "first_seq {first_seq}");
    }
    assert_eq!(
        reprise::layout::parse_guild_file("00000000000000000000.wal"),
        reprise::layout::GuildFile::Unknown
    );
    // A segment named 0 next to a real one: an unknown file for verify, no panic for state.
    let dir = tempfile::tempdir().unwrap();
    let g = reprise::layout::guild_dir(dir.path(), GUILD);
    fs::create_dir_all(&g).unwrap();
    fs::write(g.join("00000000000000000000.wal"), [1u8]).unwrap();
    fs::write(g.join("00000000000000000001.wal"), []).unwrap();
    let mut r = Journal::open_read_only(dir.path(), Config::default()).unwrap();
    assert_eq!(r.state(GUILD).unwrap().seq, 0);
    assert!(!r.verify().unwrap().is_sound());
}

/// Regression found by `cargo fuzz`: a segment with a damaged tail that becomes the newest once
/// a never-durable newer segment is removed must not be appended to (the new frame would land
/// after the damage and be unreadable); a new segment starts instead.
#[test]
fn fuzz_regression_no_append_after_damaged_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (events, states) = stream(12, 9);
    write(dir.path(), Config::default(), GUILD, &events[..8]);
    let g = reprise::layout::guild_dir(dir.path(), GUILD);
    let first = g.join("00000000000000000001.wal");
    let mut bytes = fs::read(&first).unwrap();
    bytes.extend_from_slice(&[0xAB; 8]);
    fs::write(&first, &bytes).unwrap();
    fs::write(g.join("00000000000000000009.wal"), [0u8; 10]).unwrap();
    let mut j = Journal::open(dir.path(), Config::default()).unwrap();
    assert_eq!(j.state(GUILD).unwrap().seq, 8);
    assert_eq!(j.append(GUILD, &events[8], Durability::Always).unwrap(), 9);
    j.close().unwrap();
    let mut j = Journal::open(dir.path(), Config::default()).unwrap();
    let s = j.state(GUILD).unwrap();
    assert_eq!((s.seq, &s.state), (9, &states[9]));
}

/// Regression found by `cargo fuzz` (fuzz/regressions/recover_dir/commit_restore_past_damaged_snapshot.img,
/// unpacked in tests/fixtures/short_snapshot): guild 7 holds a segment whose header contradicts its
/// name, a valid snapshot 10, a segment with events 11..=12 and a torn tail, and a snapshot 12
/// shorter than its header. An append (13) acknowledged durable lives in the commit log only when
/// the process dies. Restoring from the commit log took the damaged snapshot's name as the base
/// (12), dropped the segment holding 11..=12, and the reopened guild could not be rebuilt: a
/// snapshot is a base only when it decodes.
#[test]
fn fuzz_regression_short_snapshot_beside_a_damaged_segment() {
    append_survives_a_reopen_of("short_snapshot");
}

/// Regression found by `cargo fuzz` (fuzz/regressions/recover_dir/commit_restore_after_snapshot.img,
/// unpacked in tests/fixtures/frameless_after_snapshot): guild 7 holds a segment with events 1..=7
/// and a torn tail, a valid snapshot 8 and a leftover temporary file. Recovery gives seq 8; an
/// append (9) starts segment 9, durable in the commit log only when the process dies, the new
/// segment a header alone. On reopen the restore from the commit log must continue from the
/// snapshot (8), not from the older segment's end (7), and the frameless segment 9 is where
/// the log stands, not a segment to step over.
#[test]
fn fuzz_regression_commit_restore_after_a_snapshot_past_the_segment() {
    append_survives_a_reopen_of("frameless_after_snapshot");
}

/// The steps of the `recover_dir` fuzz target on the guild-7 files in `tests/fixtures/<image>`:
/// read-only and read-write recovery agree, and an acknowledged append made on it is recovered
/// after the process dies without closing.
fn append_survives_a_reopen_of(image: &str) {
    let dir = tempfile::tempdir().unwrap();
    let g = reprise::layout::guild_dir(dir.path(), GuildId(7));
    fs::create_dir_all(&g).unwrap();
    let image = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(image);
    for entry in fs::read_dir(&image).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), g.join(entry.file_name())).unwrap();
    }
    let g7 = GuildId(7);
    let before = {
        let mut r = Journal::open_read_only(dir.path(), Config::default()).unwrap();
        r.state(g7).unwrap().clone()
    };
    let mut j = Journal::open(dir.path(), Config::default()).unwrap();
    let s = j.state(g7).unwrap().clone();
    assert_eq!(s.seq, before.seq);
    let event = reprise::Event::from_json(r#"{"type":"volume_set","volume":5}"#).unwrap();
    let seq = j.append(g7, &event, Durability::Always).unwrap();
    assert_eq!(seq, s.seq + 1);
    let mut expected = s.state.clone();
    reprise::session::apply(&mut expected, &event);
    drop(j);
    let mut j = Journal::open(dir.path(), Config::default()).unwrap();
    let after = j.state(g7).unwrap();
    assert_eq!((after.seq, &after.state), (seq, &expected));
}

/// Found by the runtime power-loss simulation (writeback of directory operations): a snapshot
/// job seals a segment and owes its fsync, the next append creates a new segment, and a power
/// loss keeps the new segment's directory entry (its header torn, or whole but with no frame)
/// while the sealed segment's unsynced tail is lost. None of those events was acknowledged
/// durable: recovery cuts the sealed segment's torn tail as that of the active segment, the
/// frameless newer segment claims nothing, and a writer continues the log from there.
#[test]
fn a_frameless_newest_segment_does_not_make_the_torn_tail_before_it_damage() {
    for newest_len in [40usize, segment::HEADER_LEN] {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::default().with_segment_bytes_max(1 << 10);
        let (events, states) = stream(31, 80);
        write(dir.path(), config.clone(), GUILD, &events[..79]);
        let files: Vec<_> = guild_files(dir.path(), GUILD)
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "wal"))
            .collect();
        assert!(files.len() >= 3, "{files:?}");
        let (sealed, newest) = (&files[files.len() - 2], &files[files.len() - 1]);
        let first_seq: u64 = sealed
            .file_stem()
            .unwrap()
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        // The sealed segment keeps its header and 8 bytes of its first frame.
        let bytes = fs::read(sealed).unwrap();
        fs::write(sealed, &bytes[..segment::HEADER_LEN + 8]).unwrap();
        let bytes = fs::read(newest).unwrap();
        fs::write(newest, &bytes[..newest_len]).unwrap();
        let want = first_seq - 1;
        {
            let mut r = Journal::open_read_only(dir.path(), config.clone()).unwrap();
            let s = r.state(GUILD).unwrap();
            assert_eq!(
                (s.seq, &s.state),
                (want, &states[want as usize]),
                "{newest_len}"
            );
        }
        let mut j = Journal::open(dir.path(), config.clone()).unwrap();
        assert_eq!(j.state(GUILD).unwrap().seq, want);
        let next = &events[want as usize];
        assert_eq!(j.append(GUILD, next, Durability::Always).unwrap(), want + 1);
        j.close().unwrap();
        let mut j = Journal::open(dir.path(), config).unwrap();
        let s = j.state(GUILD).unwrap();
        assert_eq!((s.seq, &s.state), (want + 1, &states[want as usize + 1]));
        assert!(j.verify().unwrap().is_sound(), "{newest_len}");
    }
}

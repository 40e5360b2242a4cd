//! Holed torn writes: a power loss while unacknowledged records were being written can persist
//! their later 512-byte sectors but not their earlier ones (zeros before persisted data), and
//! a file's header sector may never have become durable while a later sector did. Every such
//! state must open with every acknowledged event, the cut reported as a torn tail.

use std::fs;
use std::path::{Path, PathBuf};

use reprise::format::segment;
use reprise::session::State;
use reprise::{Config, CorruptionKind, Durability, GuildId, Journal};

use crate::common::{copy_dir, stream};

const GUILD: GuildId = GuildId(77);
const SECTOR: usize = 512;

/// A journal with `acked` events of [`GUILD`] acknowledged (`Durability::Always`), then
/// `unacked` more appended and synced too (the crash images below take them back), the
/// process gone without a close: the states after each event, the commit log's path and its
/// length after the acknowledged records, and the active segment (holding every frame) and
/// where its acknowledged frames end.
struct Written {
    dir: tempfile::TempDir,
    states: Vec<State>,
    commit: PathBuf,
    commit_acked_len: usize,
    segment: PathBuf,
    segment_acked_len: usize,
}

fn commit_log(dir: &Path) -> PathBuf {
    let mut logs: Vec<PathBuf> = fs::read_dir(reprise::layout::commit_dir(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    logs.sort();
    logs.pop().expect("a commit log")
}

fn write(acked: usize, unacked: usize) -> Written {
    let dir = tempfile::tempdir().unwrap();
    let (events, states) = stream(31, acked + unacked);
    let mut j = Journal::open(dir.path(), Config::default()).unwrap();
    let mut commit_acked_len = 0;
    for (i, e) in events.iter().enumerate() {
        if i == acked && acked > 0 {
            // The records' end, not the file's length: the log is preallocated.
            let log = fs::read(commit_log(dir.path())).unwrap();
            commit_acked_len =
                reprise::format::commit::scan(&log, true).unwrap().valid_len as usize;
        }
        j.append(GUILD, e, Durability::Always).unwrap();
    }
    drop(j);
    let commit = commit_log(dir.path());
    let segment = reprise::layout::segment_path(dir.path(), GUILD, 1);
    // Where the acknowledged frames end in the segment (its frames are still buffered in
    // memory: a copy that recovers and closes writes them all).
    let copy = tempfile::tempdir().unwrap();
    copy_dir(dir.path(), copy.path());
    Journal::open(copy.path(), Config::default())
        .unwrap()
        .close()
        .unwrap();
    let full = fs::read(reprise::layout::segment_path(copy.path(), GUILD, 1)).unwrap();
    let scan = segment::scan(&full, true).unwrap();
    let segment_acked_len = segment::frames(&full, scan.valid_len)
        .nth(acked)
        .map_or(full.len(), |(at, _)| at as usize);
    fs::write(&segment, &full).unwrap();
    Written {
        dir,
        states,
        commit,
        commit_acked_len,
        segment,
        segment_acked_len,
    }
}

/// `bytes` with `[from, to)` zeroed (a write-back that never reached those sectors).
fn holed(bytes: &[u8], from: usize, to: usize) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[from..to].fill(0);
    out
}

fn next_sector(at: usize) -> usize {
    at.div_ceil(SECTOR) * SECTOR
}

/// Opens the journal read-only and read-write and checks that each recovers exactly
/// `states[seq]`, with a torn tail reported and no damage, and that appending continues.
fn assert_recovers(dir: &Path, seq: u64, states: &[State], what: &str) {
    {
        let mut r = Journal::open_read_only(dir, Config::default())
            .unwrap_or_else(|e| panic!("{what}: read-only open: {e}"));
        let report = r.verify().unwrap_or_else(|e| panic!("{what}: verify: {e}"));
        assert!(report.is_sound(), "{what}: {:?}", report.findings);
        assert!(
            report
                .findings
                .iter()
                .any(|f| f.corruption.kind == CorruptionKind::TornTail),
            "{what}: no torn tail reported: {:?}",
            report.findings
        );
        let s = r
            .state(GUILD)
            .unwrap_or_else(|e| panic!("{what}: read-only state: {e}"));
        assert_eq!(s.seq, seq, "{what}");
        assert_eq!(s.state, states[seq as usize], "{what}");
    }
    let mut j = Journal::open(dir, Config::default())
        .unwrap_or_else(|e| panic!("{what}: read-write open: {e}"));
    let s = j
        .state(GUILD)
        .unwrap_or_else(|e| panic!("{what}: state: {e}"));
    assert_eq!(s.seq, seq, "{what}");
    assert_eq!(s.state, states[seq as usize], "{what}");
    let next = reprise::Event::VolumeSet { volume: 3 };
    assert_eq!(
        j.append(GUILD, &next, Durability::Always).unwrap(),
        seq + 1,
        "{what}"
    );
    let report = j.verify().unwrap();
    assert!(
        report.is_sound(),
        "{what}: after append: {:?}",
        report.findings
    );
}

/// Item (a): the commit log is valid to byte X (every acknowledged record), then zeros to the
/// end of X's sector, then the later, persisted sectors of unacknowledged records (complete
/// records among them). The segment kept only its acknowledged frames.
#[test]
fn regression_a_holed_commit_log_tail_is_a_torn_tail() {
    for acked in [1, 4, 9] {
        let w = write(acked, 40);
        let full = fs::read(&w.commit).unwrap();
        let x = w.commit_acked_len;
        // Zero X's sector (the hole), and with `extra` more whole sectors after it.
        for extra in 0..2 {
            let to = next_sector(x + 1) + extra * SECTOR;
            assert!(full.len() > to + 200, "the unsynced region is too short");
            let dir = tempfile::tempdir().unwrap();
            copy_dir(w.dir.path(), dir.path());
            let rel = w.commit.strip_prefix(w.dir.path()).unwrap();
            fs::write(dir.path().join(rel), holed(&full, x, to)).unwrap();
            let seg = w.segment.strip_prefix(w.dir.path()).unwrap();
            let seg_bytes = fs::read(&w.segment).unwrap();
            fs::write(dir.path().join(seg), &seg_bytes[..w.segment_acked_len]).unwrap();
            let what = format!("{acked} acknowledged, hole {x}..{to}");
            assert_recovers(dir.path(), acked as u64, &w.states, &what);
        }
    }
}

/// Item (a) for a guild segment: the active segment's unsynced tail is holed the same way
/// (its frames are also in the commit log, which is intact): recovery cuts the segment at the
/// hole and restores the acknowledged frames from the commit log.
#[test]
fn regression_a_holed_segment_tail_is_a_torn_tail() {
    for acked in [1, 6] {
        let w = write(acked, 40);
        let full = fs::read(&w.segment).unwrap();
        let x = w.segment_acked_len;
        let to = next_sector(x + 1);
        assert!(full.len() > to + 200, "the unsynced region is too short");
        let dir = tempfile::tempdir().unwrap();
        copy_dir(w.dir.path(), dir.path());
        let seg = w.segment.strip_prefix(w.dir.path()).unwrap();
        fs::write(dir.path().join(seg), holed(&full, x, to)).unwrap();
        // The commit log keeps only the acknowledged records (its tail was cut cleanly).
        let rel = w.commit.strip_prefix(w.dir.path()).unwrap();
        let clog = fs::read(&w.commit).unwrap();
        fs::write(dir.path().join(rel), &clog[..w.commit_acked_len]).unwrap();
        let what = format!("segment: {acked} acknowledged, hole {x}..{to}");
        assert_recovers(dir.path(), acked as u64, &w.states, &what);
    }
}

/// Item (b): the commit log's header sector never became durable (zeros) while a later sector
/// did; nothing was acknowledged. Every command opens the journal, empty.
#[test]
fn regression_a_commit_log_with_a_zero_header_sector_is_a_torn_tail() {
    let w = write(0, 40);
    let full = fs::read(&w.commit).unwrap();
    assert!(full.len() > 2 * SECTOR);
    let dir = tempfile::tempdir().unwrap();
    copy_dir(w.dir.path(), dir.path());
    let rel = w.commit.strip_prefix(w.dir.path()).unwrap();
    fs::write(dir.path().join(rel), holed(&full, 0, SECTOR)).unwrap();
    // The segment never became durable either (its entry did): its header sector is zeros too.
    let seg = w.segment.strip_prefix(w.dir.path()).unwrap();
    let seg_bytes = fs::read(&w.segment).unwrap();
    fs::write(dir.path().join(seg), holed(&seg_bytes, 0, SECTOR)).unwrap();
    assert_recovers(dir.path(), 0, &w.states, "zero header sectors");
}

/// One flipped bit in the last frame of a synced segment (the commit log gone after a clean
/// close) is damage, reported with the file and offset: before the torn-tail rule knew bit
/// rot, the frame was cut as a "torn tail" and the acknowledged event silently lost.
#[test]
fn regression_bit_rot_in_the_last_frame_is_damage_not_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let (events, _) = stream(5, 5);
    let mut j = Journal::open(dir.path(), Config::default()).unwrap();
    for e in &events {
        j.append(GUILD, e, Durability::Always).unwrap();
    }
    j.close().unwrap();
    let path = reprise::layout::segment_path(dir.path(), GUILD, 1);
    let full = fs::read(&path).unwrap();
    let scan = segment::scan(&full, true).unwrap();
    let last = segment::frames(&full, scan.valid_len).last().unwrap().0 as usize;
    for byte in [last, last + 5, last + 17, full.len() - 1] {
        for bit in [0u8, 3, 7] {
            let mut bad = full.clone();
            bad[byte] ^= 1 << bit;
            fs::write(&path, &bad).unwrap();
            let what = format!("byte {byte} bit {bit}");
            let mut r = Journal::open_read_only(dir.path(), Config::default()).unwrap();
            let report = r.verify().unwrap();
            let damage = report
                .findings
                .iter()
                .find(|f| f.is_damage())
                .unwrap_or_else(|| panic!("{what}: not reported: {:?}", report.findings));
            assert_eq!(damage.corruption.path, path, "{what}");
            assert_eq!(damage.corruption.offset, last as u64, "{what}");
            assert!(
                damage
                    .corruption
                    .detail
                    .contains(&format!("byte {byte}, bit {bit}")),
                "{what}: {}",
                damage.corruption
            );
        }
    }
}

//! Black-box torn-write test of the `reprise` binary (issue 13, "Done when"): `apply
//! --durability always` is killed with SIGKILL at seeded random points, then the newest commit
//! log is damaged the way a power cut during an unacknowledged write damages it on a real disk:
//!
//! - (a) a holed torn record after the valid end: zeros from the valid end to a sector boundary
//!   (the record's first sectors never became durable), then garbage (a later sector that did);
//! - (b) a commit log whose header sector is zeros while a later sector holds bytes, with nothing
//!   acknowledged in it: (b1) the next generation started by a rotation, next to the killed
//!   writer's log; (b2) the only commit log, after the killed writer's journal was closed cleanly.
//!
//! After each, every reading command (`state`, `verify`, `dump`, `inspect`, `stats`) opens the
//! journal (exit 0) with every acknowledged event, `verify` reports the cut as a `torn_tail`
//! (never as damage), and `apply` of one more event acknowledges the next seq.
//!
//! Environment: `REPRISE_CLI_TORN_ROUNDS` (default 6) kill rounds.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use reprise::session::{Rng, State};
use serde_json::Value;
use support::{copy_dir, jsonl, kill_after_acks, ok, reprise, stdout_json, stdout_lines, stream};

const GUILD: &str = "4242";
const SECTOR: usize = 512;
const PAGE: usize = 4096;

/// The commit logs of `dir`, oldest first.
fn commit_logs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir.join("commit")) else {
        return Vec::new();
    };
    let mut logs: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "clog"))
        .collect();
    logs.sort();
    logs
}

fn garbage(rng: &mut Rng, n: usize) -> Vec<u8> {
    (0..n).map(|_| (rng.below(255) + 1) as u8).collect()
}

/// Where the records of the commit log `log` end: its logical length (the log is
/// preallocated, zeros follow).
fn records_end(log: &Path) -> u64 {
    let bytes = fs::read(log).unwrap();
    reprise::format::commit::scan(&bytes, true).map_or(bytes.len() as u64, |s| s.valid_len)
}

/// (a): zeros from the end of what was written to `log` (its valid records, or a torn record
/// the kill left after them) to a sector boundary inside the last page, then garbage up to a
/// random point of that page, written over the preallocated zeros (the file keeps its length,
/// or grows when it was shorter).
fn append_holed_torn_record(log: &Path, valid_end: u64, rng: &mut Rng) {
    let mut bytes = fs::read(log).unwrap();
    let written = bytes.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
    let end = written.max(valid_end as usize);
    let len = bytes.len();
    bytes.truncate(end);
    // The page the torn write ends in: room for at least one zero sector share and garbage.
    let page_end = (end + SECTOR + 16).div_ceil(PAGE) * PAGE;
    let first_boundary = end.div_ceil(SECTOR) * SECTOR;
    let first_boundary = if first_boundary == end {
        end + SECTOR
    } else {
        first_boundary
    };
    let boundaries = (page_end - first_boundary) / SECTOR; // >= 1
    let hole_end = first_boundary + SECTOR * rng.below(boundaries as u64) as usize;
    let garbage_end = rng.range(hole_end as u64 + 1, page_end as u64 + 1) as usize;
    bytes.resize(hole_end, 0);
    bytes.extend(garbage(rng, garbage_end - hole_end));
    if bytes.len() < len {
        bytes.resize(len, 0);
    }
    fs::write(log, bytes).unwrap();
}

/// The torn tails `verify` reports for `dir`, as paths relative to `dir` and offsets.
fn torn_tails(dir: &Path) -> Vec<(PathBuf, u64)> {
    stdout_lines(&reprise(dir, &["verify"], None))
        .iter()
        .filter(|f| f["kind"] == "torn_tail")
        .map(|f| {
            let file = Path::new(f["file"].as_str().unwrap());
            let rel = file.strip_prefix(dir).unwrap().to_path_buf();
            (rel, f["offset"].as_u64().unwrap())
        })
        .collect()
}

/// `tails` (relative to the killed writer's directory) as paths in its copy `dir`, leaving
/// out the file `except`.
fn in_copy(dir: &Path, tails: &[(PathBuf, u64)], except: Option<&Path>) -> Vec<(PathBuf, u64)> {
    tails
        .iter()
        .filter(|(rel, _)| Some(rel.as_path()) != except)
        .map(|(rel, offset)| (dir.join(rel), *offset))
        .collect()
}

/// (b): a commit log `path` whose header sector is zeros, with garbage in a later sector.
fn write_zero_header_log(path: &Path, rng: &mut Rng) {
    let sectors = 1 + rng.below(7) as usize;
    let mut bytes = vec![0u8; SECTOR * sectors];
    let n = 1 + rng.below(SECTOR as u64) as usize;
    bytes.extend(garbage(rng, n));
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, bytes).unwrap();
}

fn generation(log: &Path) -> u64 {
    log.file_stem().unwrap().to_str().unwrap().parse().unwrap()
}

/// Every command opens `dir` with every one of the `acked` events; `torn` is the file and
/// offset `verify` must report as a torn tail, and `killed_torn` the killed writer's own torn
/// tails (SIGKILL may cut its last write short, of the commit log or of the guild's segment,
/// whose events the commit log then still holds), which `verify` must then report too, each
/// exactly there. One more event is then acknowledged.
fn check_opens(
    dir: &Path,
    acked: u64,
    events: &[reprise::Event],
    states: &[State],
    torn: (&Path, u64),
    killed_torn: &[(PathBuf, u64)],
    what: &str,
) {
    let (seq, state) = state_of(dir);
    assert!(
        seq >= acked,
        "{what}: state seq {seq} < acknowledged {acked}"
    );
    assert!(
        state == serde_json::to_value(&states[seq as usize]).unwrap(),
        "{what}: state at {seq} is not the fold of the first {seq} events"
    );

    let verify = reprise(dir, &["verify"], None);
    let mut findings = stdout_lines(&verify);
    // The killed writer's torn tails, when it left any: reported where the untouched copy has
    // them.
    for (file, offset) in killed_torn {
        let at = findings.iter().position(|f| {
            f["kind"] == "torn_tail"
                && f["file"].as_str() == file.to_str()
                && f["offset"].as_u64() == Some(*offset)
        });
        let at = at.unwrap_or_else(|| {
            panic!(
                "{what}: the killed writer's torn tail of {} at {offset} is not reported: \
                 {findings:?}",
                file.display()
            )
        });
        findings.remove(at);
    }
    // Exactly the cut, reported as a torn tail of the damaged commit log at its offset.
    assert_eq!(findings.len(), 1, "{what}: verify findings {findings:?}");
    let f = &findings[0];
    assert_eq!(f["kind"], "torn_tail", "{what}: verify finding {f}");
    assert_eq!(
        f["file"].as_str().unwrap(),
        torn.0.display().to_string(),
        "{what}: torn tail of another file: {f}"
    );
    assert_eq!(
        f["offset"].as_u64(),
        Some(torn.1),
        "{what}: torn tail offset: {f}"
    );

    let dump = stdout_lines(&reprise(dir, &["dump", "--guild", GUILD], None));
    assert_eq!(dump.len() as u64, seq, "{what}: dump length");
    assert_eq!(dump.last().map(|v| v["seq"].as_u64().unwrap()), Some(seq));
    ok(&reprise(dir, &["inspect"], None));
    ok(&reprise(dir, &["stats"], None));

    // One more event: acknowledged as the next seq, and readable after.
    let next = reprise(
        dir,
        &["apply", "--guild", GUILD, "--durability", "always"],
        Some(&jsonl(&events[seq as usize..=seq as usize])),
    );
    let acks = stdout_lines(&next);
    assert_eq!(
        acks,
        vec![serde_json::json!({ "seq": seq + 1 })],
        "{what}: apply"
    );
    let (after, state) = state_of(dir);
    assert_eq!(after, seq + 1, "{what}: state after apply");
    assert!(
        state == serde_json::to_value(&states[seq as usize + 1]).unwrap(),
        "{what}: state after apply is not the fold"
    );
    let verify = reprise(dir, &["verify"], None);
    assert!(
        verify.status.success(),
        "{what}: verify after apply: {}",
        String::from_utf8_lossy(&verify.stdout)
    );
}

/// `state`'s seq and the state minus the `guild`/`seq` envelope.
fn state_of(dir: &Path) -> (u64, Value) {
    let mut v = stdout_json(&reprise(dir, &["state", "--guild", GUILD], None));
    let obj = v.as_object_mut().unwrap();
    obj.remove("guild");
    let seq = obj.remove("seq").unwrap().as_u64().unwrap();
    (seq, v)
}

#[test]
fn killed_apply_then_torn_commit_log_writes_lose_no_acknowledged_event() {
    let rounds: u64 = std::env::var("REPRISE_CLI_TORN_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    let (events, states) = stream(1313, 2001);
    let input = jsonl(&events[..2000]);
    for round in 0..rounds {
        let mut rng = Rng::new(0x7042 + round);
        let tmp = tempfile::tempdir().unwrap();
        let killed = tmp.path().join("killed");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_reprise"));
        cmd.arg("--dir")
            .arg(&killed)
            .args(["apply", "--guild", GUILD, "--durability", "always"]);
        let kill_at = rng.range(1, 1500);
        let (seqs, rest) = kill_after_acks(cmd, input.clone(), kill_at);
        // Whatever was printed before the kill took effect is acknowledged too.
        let acked = rest
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter_map(|v| v["seq"].as_u64())
            .chain(seqs)
            .max()
            .unwrap();
        let logs = commit_logs(&killed);
        let newest = logs
            .last()
            .unwrap_or_else(|| panic!("round {round}: no commit log after the kill"))
            .clone();
        let rel = newest.strip_prefix(&killed).unwrap().to_path_buf();
        // SIGKILL may cut the writer's last write() short between two pages (of the commit
        // log or of the guild's segment): `verify` on the untouched directory says where.
        let killed_tails = torn_tails(&killed);

        // (a) a holed torn record after the valid end of the newest commit log.
        let a = tmp.path().join("a");
        copy_dir(&killed, &a);
        // The log may end in part of an unacknowledged record already (a cut write), and
        // `verify` on the untouched copy says where its valid bytes end.
        let valid_end = killed_tails
            .iter()
            .find(|(file, _)| *file == rel)
            .map_or_else(|| records_end(&a.join(&rel)), |(_, offset)| *offset);
        append_holed_torn_record(&a.join(&rel), valid_end, &mut rng);
        check_opens(
            &a,
            acked,
            &events,
            &states,
            (&a.join(&rel), valid_end),
            &in_copy(&a, &killed_tails, Some(&rel)),
            &format!("round {round} (a) kill at {kill_at} acked {acked} valid end {valid_end}"),
        );

        // (b1) the next generation, its header sector zeros, next to the killed writer's log.
        let b1 = tmp.path().join("b1");
        copy_dir(&killed, &b1);
        let next = b1
            .join("commit")
            .join(format!("{:020}.clog", generation(&newest) + 1));
        write_zero_header_log(&next, &mut rng);
        check_opens(
            &b1,
            acked,
            &events,
            &states,
            (&next, 0),
            &in_copy(&b1, &killed_tails, None),
            &format!("round {round} (b1) kill at {kill_at} acked {acked}"),
        );

        // (b2) the only commit log, after a clean close took over the killed writer's events.
        let b2 = tmp.path().join("b2");
        copy_dir(&killed, &b2);
        let closed = reprise(
            &b2,
            &["apply", "--guild", GUILD, "--durability", "always"],
            Some(""),
        );
        ok(&closed);
        let (recovered, _) = state_of(&b2);
        assert!(
            recovered >= acked,
            "round {round} (b2): {recovered} < {acked}"
        );
        let next_gen = commit_logs(&b2)
            .last()
            .map_or(generation(&newest) + 1, |l| generation(l) + 1);
        let fresh = b2.join("commit").join(format!("{next_gen:020}.clog"));
        write_zero_header_log(&fresh, &mut rng);
        check_opens(
            &b2,
            acked,
            &events,
            &states,
            (&fresh, 0),
            &[],
            &format!("round {round} (b2) kill at {kill_at} acked {acked}"),
        );
    }
}

/// The one finding `verify` gives for `dir`, after asserting it exits 0 with exactly one.
fn only_finding(dir: &Path, what: &str) -> Value {
    let findings = stdout_lines(&reprise(dir, &["verify"], None));
    assert_eq!(findings.len(), 1, "{what}: verify findings {findings:?}");
    findings.into_iter().next().unwrap()
}

/// A killed writer's guild segment whose unsynced part is damaged while the commit log holds
/// every event from there on: recovery restores those events from the commit log (nothing is
/// lost), and `verify` reports what it stepped over as a `torn_tail` of the segment with its
/// offset (exit 0). Before, `verify` said "0 finding(s)": the segment was replaced in memory
/// before its damage was looked at. (a) Every byte of the header of a segment that holds no
/// frame yet; (b) a byte in the middle of a segment's frames.
#[test]
fn regression_damage_in_a_segment_the_commit_log_covers_is_reported_as_a_torn_tail() {
    // Small events (a few dozen bytes each), so that the first segment holds its header only
    // while the first ones are buffered, and frames after the first 64 KiB flush.
    // Ten times more input than the kill points need: a writer that reached the end of its
    // input before the kill took effect would close cleanly (its segment synced, its commit
    // log dropped), and damage to the segment would then rightly be damage.
    let events: Vec<reprise::Event> = (0..30_001u32)
        .map(|i| {
            reprise::Event::from_json(&format!(r#"{{"type":"volume_set","volume":{}}}"#, i % 1000))
                .unwrap()
        })
        .collect();
    let mut states = vec![State::new(reprise::session::HISTORY_MAX_DEFAULT)];
    for e in &events {
        let mut next = states.last().unwrap().clone();
        reprise::session::apply(&mut next, e);
        states.push(next);
    }
    let input = jsonl(&events[..30_000]);
    let kill = |root: &Path, kill_at: u64| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_reprise"));
        cmd.arg("--dir")
            .arg(root)
            .args(["apply", "--guild", GUILD, "--durability", "always"]);
        let (seqs, rest) = kill_after_acks(cmd, input.clone(), kill_at);
        rest.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter_map(|v| v["seq"].as_u64())
            .chain(seqs)
            .max()
            .unwrap()
    };
    let segment_rel = PathBuf::from(format!("guilds/{GUILD}/{:020}.wal", 1));
    let tmp = tempfile::tempdir().unwrap();
    let check_state = |dir: &Path, acked: u64, what: &str| {
        let (seq, state) = state_of(dir);
        assert!(
            seq >= acked,
            "{what}: state seq {seq} < acknowledged {acked}"
        );
        assert!(
            state == serde_json::to_value(&states[seq as usize]).unwrap(),
            "{what}: state at {seq} is not the fold of the first {seq} events"
        );
        seq
    };

    // (a) The header of a segment holding no frame yet (its frames still buffered).
    let killed = tmp.path().join("killed_early");
    let acked = kill(&killed, 20);
    let header = fs::read(killed.join(&segment_rel)).unwrap();
    assert_eq!(
        header.len(),
        reprise::format::segment::HEADER_LEN,
        "precondition: the segment holds its header only"
    );
    for at in 0..header.len() {
        let what = format!("(a) header byte {at}");
        let dir = tmp.path().join(format!("a{at}"));
        copy_dir(&killed, &dir);
        let mut bytes = header.clone();
        bytes[at] ^= 0xff;
        fs::write(dir.join(&segment_rel), &bytes).unwrap();
        let f = only_finding(&dir, &what);
        assert_eq!(f["kind"], "torn_tail", "{what}: {f}");
        assert_eq!(f["file"], dir.join(&segment_rel).display().to_string());
        assert_eq!(f["offset"], 0, "{what}: {f}");
        let seq = check_state(&dir, acked, &what);
        if at % 16 == 0 {
            // A writer rebuilds the segment; one more event is the next seq; nothing to report.
            let next = reprise(
                &dir,
                &["apply", "--guild", GUILD, "--durability", "always"],
                Some(&jsonl(&events[seq as usize..=seq as usize])),
            );
            assert_eq!(
                stdout_lines(&next),
                vec![serde_json::json!({ "seq": seq + 1 })]
            );
            assert_eq!(check_state(&dir, seq + 1, &what), seq + 1);
            assert!(
                reprise(&dir, &["verify"], None).stdout.is_empty(),
                "{what}: verify after apply"
            );
        }
    }

    // (b) A byte in the middle of the frames a killed writer wrote to its segment.
    let killed = tmp.path().join("killed_late");
    let acked = kill(&killed, 2900);
    assert!(
        !commit_logs(&killed).is_empty(),
        "precondition: the writer was killed before it closed"
    );
    let frames = fs::read(killed.join(&segment_rel)).unwrap();
    let header_len = reprise::format::segment::HEADER_LEN;
    assert!(
        frames.len() > 4 * header_len,
        "precondition: the segment holds frames ({} bytes)",
        frames.len()
    );
    let at = (header_len + frames.len()) / 2;
    let dir = tmp.path().join("b");
    copy_dir(&killed, &dir);
    let mut bytes = frames.clone();
    bytes[at] ^= 0xff;
    fs::write(dir.join(&segment_rel), &bytes).unwrap();
    let f = only_finding(&dir, "(b)");
    assert_eq!(f["kind"], "torn_tail", "(b): {f}");
    assert_eq!(f["file"], dir.join(&segment_rel).display().to_string());
    let offset = f["offset"].as_u64().unwrap();
    assert!(
        (header_len as u64..=at as u64).contains(&offset),
        "(b): offset {offset} is not the frame holding byte {at}"
    );
    check_state(&dir, acked, "(b)");
}

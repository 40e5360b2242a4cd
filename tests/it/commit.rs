use std::fs;

use reprise::{Config, CorruptionKind, Durability, Error, Event, GuildId, Journal};

use crate::common::{guild_files, stream};

fn commit_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = fs::read_dir(reprise::layout::commit_dir(dir))
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// Appends acknowledged with `Always` are durable through the shared commit log even when the
/// guild segments lose everything after their last fsync (simulated by cutting them): recovery
/// restores the lost frames from the commit log, readers see them, the writer writes them back,
/// and a clean close checkpoints and drops the commit log.
#[test]
fn lost_segment_tails_are_restored_from_the_commit_log() {
    let guilds = [GuildId(1), GuildId(2), GuildId(3)];
    let (events, states) = stream(77, 60);
    // Each cut: how many bytes of the active segment survive (0: the file is empty).
    for cut in [0usize, 20, 48, 49, 200, 1000, usize::MAX] {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut j = Journal::open(dir.path(), Config::default()).unwrap();
            for e in &events {
                for g in guilds {
                    j.append(g, e, Durability::Always).unwrap();
                }
            }
            // No close: the process "dies" with the commit log holding everything.
        }
        assert_eq!(commit_files(dir.path()).len(), 1);
        for g in guilds {
            let seg = guild_files(dir.path(), g).pop().unwrap();
            let bytes = fs::read(&seg).unwrap();
            fs::write(&seg, &bytes[..cut.min(bytes.len())]).unwrap();
        }
        {
            let mut r = Journal::open_read_only(dir.path(), Config::default()).unwrap();
            for g in guilds {
                let s = r.state(g).unwrap();
                assert_eq!((s.seq, &s.state), (60, &states[60]), "cut {cut}");
            }
            let report = r.verify().unwrap();
            assert!(report.is_sound(), "cut {cut}: {:?}", report.findings);
        }
        let mut j = Journal::open(dir.path(), Config::default()).unwrap();
        for g in guilds {
            assert_eq!(j.state(g).unwrap().state, states[60], "cut {cut}");
            let seqs: Vec<u64> = j.events(g).unwrap().map(|e| e.unwrap().seq).collect();
            assert_eq!(seqs, (1..=60).collect::<Vec<u64>>());
        }
        j.close().unwrap();
        assert!(commit_files(dir.path()).is_empty());
        // The segments alone now hold everything.
        let mut j = Journal::open(dir.path(), Config::default()).unwrap();
        for g in guilds {
            assert_eq!(j.state(g).unwrap().state, states[60]);
        }
        assert!(j.verify().unwrap().is_sound());
    }
}

/// A checkpoint triggered by size drops the old commit log only after the guild segments are
/// durable; appends go on in the next generation.
#[test]
fn commit_log_rotates_at_its_size_limit() {
    let dir = tempfile::tempdir().unwrap();
    let (events, states) = stream(8, 400);
    let config = Config::default().with_commit_bytes_max(64 << 10);
    let mut j = Journal::open(dir.path(), config.clone()).unwrap();
    for e in &events {
        j.append(GuildId(4), e, Durability::BATCHED).unwrap();
        j.sync().unwrap();
    }
    let files = commit_files(dir.path());
    assert_eq!(files.len(), 1);
    let name = files[0].file_name().unwrap().to_str().unwrap().to_owned();
    assert!(
        name.as_str() > "00000000000000000001.clog",
        "no rotation happened: {name}"
    );
    drop(j);
    let mut j = Journal::open(dir.path(), config).unwrap();
    assert_eq!(j.state(GuildId(4)).unwrap().state, states[400]);
}

/// Damage in the middle of a commit log (not a torn tail) is reported with the file and offset,
/// and no guild is recovered past it silently.
#[test]
fn commit_log_damage_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (events, _) = stream(9, 30);
    {
        let mut j = Journal::open(dir.path(), Config::default()).unwrap();
        for e in &events {
            j.append(GuildId(5), e, Durability::Always).unwrap();
        }
    }
    let path = commit_files(dir.path()).pop().unwrap();
    let mut bytes = fs::read(&path).unwrap();
    bytes[100] ^= 0x40;
    fs::write(&path, &bytes).unwrap();
    let mut r = Journal::open_read_only(dir.path(), Config::default()).unwrap();
    let err = r.state(GuildId(5)).unwrap_err();
    let Error::Corrupt(c) = err else {
        panic!("expected corruption, got {err}")
    };
    assert_eq!(c.path, path);
    let report = r.verify().unwrap();
    assert!(report
        .findings
        .iter()
        .any(|f| f.guild.is_none() && f.corruption.path == path && f.is_damage()));
    // A torn tail of the commit log, on the other hand, is harmless.
    let mut bytes = fs::read(&path).unwrap();
    bytes[100] ^= 0x40;
    // The records' end (the log is preallocated: zeros follow it), then 7 bytes less.
    let len = reprise::format::commit::scan(&bytes, true)
        .unwrap()
        .valid_len as usize;
    fs::write(&path, &bytes[..len - 7]).unwrap();
    drop(r);
    let mut r = Journal::open_read_only(dir.path(), Config::default()).unwrap();
    // The guild's frames were still buffered when the process died: the commit log is the only
    // copy, and its torn last record takes event 30 with it.
    assert_eq!(r.state(GuildId(5)).unwrap().seq, 29);
    assert!(r
        .verify()
        .unwrap()
        .findings
        .iter()
        .all(|f| f.corruption.kind == CorruptionKind::TornTail));
}

/// The commit log is preallocated: an acknowledged append does not grow the file (it is
/// extended a chunk at a time, ahead of the records), its header says so, and a killed
/// writer's log, zeros after its records, recovers every acknowledged event with nothing
/// reported (the zeros are the log's end, not a torn tail). A log written without
/// preallocation, as every version before it wrote them, still recovers (its guild segments
/// cut, so the records are needed), and a journal holding both kinds reads both.
#[test]
fn preallocated_and_older_commit_logs_recover() {
    use reprise::format::commit;
    let guild = GuildId(9);
    let (events, states) = stream(91, 80);
    let dir = tempfile::tempdir().unwrap();
    let step = 64 << 10;
    let append = |config: Config, range: std::ops::Range<usize>| {
        let mut j = Journal::open(dir.path(), config).unwrap();
        for e in &events[range] {
            j.append(guild, e, Durability::Always).unwrap();
        }
        // No close: killed, the commit log holding the events.
        drop(j);
    };
    // An older writer (no preallocation), then a current one.
    append(Config::default().with_commit_prealloc_bytes(0), 0..30);
    append(Config::default().with_commit_prealloc_bytes(step), 30..80);
    let logs = commit_files(dir.path());
    assert_eq!(logs.len(), 2);
    let (old, new) = (fs::read(&logs[0]).unwrap(), fs::read(&logs[1]).unwrap());
    let (old_scan, new_scan) = (
        commit::scan(&old, true).unwrap(),
        commit::scan(&new, true).unwrap(),
    );
    assert!(!old_scan.preallocated && new_scan.preallocated);
    assert_eq!(
        old_scan.valid_len,
        old.len() as u64,
        "an older log ends at its records"
    );
    // Chunks of 4, 8, 16, 32, then 64 KiB (a sixteenth of the configured chunk first, each
    // twice the one before): the file ends at a chunk boundary past its records.
    let len = new.len() as u64;
    assert!(
        len.is_power_of_two() && (4 << 10..=step).contains(&len) && new_scan.valid_len < len,
        "the log was extended ahead of its 50 records ({len} bytes, {} of records)",
        new_scan.valid_len
    );
    assert!(new[new_scan.valid_len as usize..].iter().all(|b| *b == 0));
    assert_eq!((old_scan.records.len(), new_scan.records.len()), (30, 50));
    // The guild's segment lost everything after its header: only the commit logs hold events.
    for seg in guild_files(dir.path(), guild) {
        let bytes = fs::read(&seg).unwrap();
        fs::write(&seg, &bytes[..48.min(bytes.len())]).unwrap();
    }
    {
        let mut r = Journal::open_read_only(dir.path(), Config::default()).unwrap();
        let s = r.state(guild).unwrap();
        assert_eq!((s.seq, &s.state), (80, &states[80]));
        let report = r.verify().unwrap();
        assert!(report.findings.is_empty(), "{:?}", report.findings);
    }
    let mut j = Journal::open(dir.path(), Config::default()).unwrap();
    assert_eq!(j.state(guild).unwrap().state, states[80]);
    assert_eq!(j.append(guild, &events[0], Durability::Always).unwrap(), 81);
    j.close().unwrap();
    assert!(commit_files(dir.path()).is_empty());
    let mut j = Journal::open(dir.path(), Config::default()).unwrap();
    assert_eq!(j.state(guild).unwrap().seq, 81);
}

/// The commit log's preallocation chunks start at a sixteenth of the configured chunk (at
/// least 4 KiB, at most 64 KiB) and double up to it: with the default 1 MiB, a short-lived
/// writer flushes 64 KiB of zeros with its first acknowledgement, not 1 MiB, and a long-lived
/// one extends a full chunk at a time after a few extensions. The file only ever holds whole
/// chunks, and a writer killed past several extensions recovers every event.
#[test]
fn commit_log_chunks_grow_from_64_kib_to_the_configured_chunk() {
    const KIB: u64 = 1 << 10;
    let cases: [(u64, &[u64]); 2] = [
        (1024 * KIB, &[64, 128, 256, 512, 1024, 2048, 3072]),
        (16 * KIB, &[4, 8, 16, 32, 48]),
    ];
    for (step, expected) in cases {
        let guild = GuildId(4);
        let dir = tempfile::tempdir().unwrap();
        let limit = expected[expected.len() - 2] * KIB;
        let mut lens: Vec<u64> = Vec::new();
        let mut appended = 0u64;
        {
            let config = Config::default().with_commit_prealloc_bytes(step);
            let mut j = Journal::open(dir.path(), config).unwrap();
            // Small records (about 60 bytes), so that no record spans a chunk.
            loop {
                let volume = (appended % 150) as u16;
                j.append(guild, &Event::VolumeSet { volume }, Durability::None)
                    .unwrap();
                j.flush().unwrap();
                appended += 1;
                let len = fs::metadata(&commit_files(dir.path())[0]).unwrap().len();
                if lens.last() != Some(&len) {
                    lens.push(len);
                }
                if len > limit {
                    break;
                }
            }
            // No close: killed past several extensions.
        }
        let expected: Vec<u64> = expected.iter().map(|k| k * KIB).collect();
        assert_eq!(
            lens, expected,
            "the commit log's lengths, in order (chunk {step})"
        );
        let mut r = Journal::open_read_only(dir.path(), Config::default()).unwrap();
        let s = r.state(guild).unwrap();
        let volume = ((appended - 1) % 150) as u16;
        assert_eq!((s.seq, s.state.player.volume), (appended, volume));
    }
}

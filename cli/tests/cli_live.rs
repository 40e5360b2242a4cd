//! Issue 18's done-when test: the read-only commands on a live journal. `reprise apply
//! --durability always` appends a paced stream of events with automatic snapshots, small
//! segments and small commit logs (so segments roll, snapshots are written, retention removes
//! files and commit-log generations retire during the run), while this process loops `state`,
//! `verify`, `stats` and `dump` against the same directory. Every read exits 0; every
//! `state` is at least the writer's acknowledged count when the read started and is exactly
//! the fold of that many events; `verify` never reports damage; `dump` prints consecutive
//! events, each the one appended. Plain and with `--key-file`.
//!
//! Default: 4,000 events and 80 reads. `REPRISE_LIVE_FULL=1`: 50,000 events and 500 reads
//! (about a minute); `REPRISE_LIVE_EVENTS` / `REPRISE_LIVE_READS` set either.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reprise::session::{apply, State, Workload, HISTORY_MAX_DEFAULT};
use reprise::{GuildId, GuildState};
use serde_json::Value;

const GUILD: u64 = 7;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// (events, reads) for this run.
fn scale() -> (usize, usize) {
    let full = std::env::var("REPRISE_LIVE_FULL").is_ok_and(|v| v == "1");
    let (events, reads) = if full { (50_000, 500) } else { (4_000, 80) };
    (
        env_u64("REPRISE_LIVE_EVENTS").map_or(events, |n| n as usize),
        env_u64("REPRISE_LIVE_READS").map_or(reads, |n| n as usize),
    )
}

/// One read and what it saw.
struct Read {
    command: &'static str,
    acked_before: u64,
    stdout: Vec<u8>,
}

fn live_reads_see_acknowledged_prefixes(key: Option<&Path>) {
    let (n, reads) = scale();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    let events = Workload::events(0x18, n);
    let mut global: Vec<String> = vec!["--dir".into(), dir.display().to_string()];
    if let Some(key) = key {
        global.extend(["--key-file".into(), key.display().to_string()]);
    }
    let mut writer = Command::new(env!("CARGO_BIN_EXE_reprise"))
        .args(&global)
        .args([
            "apply",
            "--guild",
            &GUILD.to_string(),
            "--durability",
            "always",
            "--segment-bytes-max",
            "16384",
            "--snapshot-every-events",
            "300",
            "--snapshots-retained",
            "2",
            "--commit-bytes-max",
            "65536",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // The paced stream: a few events at a time, a short pause between.
    let mut stdin = writer.stdin.take().unwrap();
    let lines: Vec<String> = events.iter().map(|e| e.to_json() + "\n").collect();
    let feeder = std::thread::spawn(move || {
        for chunk in lines.chunks(20) {
            // A writer that died closed the pipe: the reads' assertions say why.
            if stdin.write_all(chunk.concat().as_bytes()).is_err() || stdin.flush().is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    // The acknowledgements, as they come.
    let acked = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let stdout = writer.stdout.take().unwrap();
    let acks = {
        let (acked, done) = (Arc::clone(&acked), Arc::clone(&done));
        std::thread::spawn(move || {
            let mut expected = 1;
            for line in BufReader::new(stdout).lines() {
                let line = line.unwrap();
                assert_eq!(line, format!("{{\"seq\": {expected}}}"));
                acked.store(expected, Ordering::SeqCst);
                expected += 1;
            }
            done.store(true, Ordering::SeqCst);
            expected - 1
        })
    };

    // The reader process loop.
    let started = Instant::now();
    let mut seen: Vec<Read> = Vec::with_capacity(reads);
    let mut during = 0;
    let mut generation_max = 0u64;
    // Spread over the writer's run (about n / 2 ms at this pace), so the reads meet every
    // phase of it: rotations, snapshots, retention, retirements.
    let slot = Duration::from_millis((n as u64 / 2 / reads.max(1) as u64).max(1));
    for i in 0..reads {
        if let Some(wait) = (slot * i as u32).checked_sub(started.elapsed()) {
            std::thread::sleep(wait);
        }
        let (command, args): (&'static str, Vec<String>) = match i % 4 {
            0 => (
                "state",
                vec!["state".into(), "--guild".into(), GUILD.to_string()],
            ),
            1 => ("verify", vec!["--quiet".into(), "verify".into()]),
            2 => ("stats", vec!["stats".into()]),
            _ => (
                "dump",
                vec!["dump".into(), "--guild".into(), GUILD.to_string()],
            ),
        };
        let acked_before = acked.load(Ordering::SeqCst);
        if acked_before == 0 {
            // The writer has not created the directory yet: nothing to read.
            while acked.load(Ordering::SeqCst) == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        let acked_before = acked.load(Ordering::SeqCst).max(acked_before);
        let out = Command::new(env!("CARGO_BIN_EXE_reprise"))
            .args(&global)
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        if !done.load(Ordering::SeqCst) {
            during += 1;
        }
        // Which commit-log generation the writer is at (retirements start new ones).
        if let Ok(entries) = std::fs::read_dir(dir.join("commit")) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(g) = name
                    .strip_suffix(".clog")
                    .and_then(|g| g.parse::<u64>().ok())
                {
                    generation_max = generation_max.max(g);
                }
            }
        }
        assert!(
            out.status.success(),
            "read {i} ({command}, {acked_before} acknowledged) exit {:?}: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains("warning") && !stderr.contains("corrupt"),
            "read {i} ({command}): {stderr}"
        );
        seen.push(Read {
            command,
            acked_before,
            stdout: out.stdout,
        });
    }
    let reading = started.elapsed();
    feeder.join().unwrap();
    let status = writer.wait().unwrap();
    let acked_total = acks.join().unwrap();
    assert!(status.success(), "the writer failed");
    assert_eq!(acked_total, n as u64);
    assert!(
        during * 2 >= reads,
        "only {during} of {reads} reads ran while the writer was writing ({reading:?})"
    );

    // Each state is the fold of exactly its seq's prefix: fold once, in seq order.
    let mut states: Vec<(u64, Value, u64)> = Vec::new();
    for (i, r) in seen.iter().enumerate() {
        let text = String::from_utf8_lossy(&r.stdout);
        match r.command {
            "state" => {
                let v: Value = serde_json::from_str(text.trim()).unwrap();
                let seq = v["seq"].as_u64().unwrap();
                assert!(
                    seq >= r.acked_before && seq <= n as u64,
                    "read {i}: state at seq {seq}, {} acknowledged before it started",
                    r.acked_before
                );
                states.push((seq, v, r.acked_before));
            }
            "verify" => {
                for line in text.lines() {
                    let f: Value = serde_json::from_str(line).unwrap();
                    assert_eq!(f["kind"], "torn_tail", "read {i}: verify found damage: {f}");
                }
            }
            "stats" => {
                let v: Value = serde_json::from_str(text.trim()).unwrap();
                assert!(v.is_object(), "read {i}: {v}");
            }
            _ => {
                let mut last: Option<u64> = None;
                for line in text.lines() {
                    let mut v: Value = serde_json::from_str(line).unwrap();
                    let seq = v["seq"].as_u64().unwrap();
                    if let Some(prev) = last {
                        assert_eq!(seq, prev + 1, "read {i}: dump skipped");
                    }
                    last = Some(seq);
                    v.as_object_mut().unwrap().remove("seq");
                    let appended: Value =
                        serde_json::from_str(&events[seq as usize - 1].to_json()).unwrap();
                    assert_eq!(v, appended, "read {i}: dump's event {seq}");
                }
                assert!(
                    last.unwrap_or(0) >= r.acked_before,
                    "read {i}: dump ends at {last:?}, {} acknowledged before it started",
                    r.acked_before
                );
            }
        }
    }
    assert!(!states.is_empty());
    states.sort_by_key(|(seq, _, _)| *seq);
    let mut state = State::new(HISTORY_MAX_DEFAULT);
    let mut at = 0u64;
    for (seq, printed, _) in &states {
        while at < *seq {
            apply(&mut state, &events[at as usize]);
            at += 1;
        }
        let expected = GuildState {
            guild: GuildId(GUILD),
            seq: *seq,
            state: state.clone(),
        }
        .to_json();
        assert!(
            printed == &expected,
            "the state printed at seq {seq} is not the fold of its first {seq} events"
        );
    }

    // The run did rotate, snapshot, drop old files and retire commit logs.
    let guild_dir = dir.join("guilds").join(GUILD.to_string());
    let names: Vec<String> = std::fs::read_dir(&guild_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().any(|f| f.ends_with(".snap")),
        "no snapshot: {names:?}"
    );
    assert!(
        !names.iter().any(|f| f == "00000000000000000001.wal"),
        "retention dropped nothing: {names:?}"
    );
    assert!(
        generation_max >= 3,
        "commit logs retired only {generation_max} times during the reads"
    );
    eprintln!(
        "{n} events, {reads} reads ({during} while writing) in {reading:?}; {} states checked",
        states.len()
    );
}

#[test]
fn read_only_commands_read_a_live_journal() {
    live_reads_see_acknowledged_prefixes(None);
}

#[test]
fn read_only_commands_read_a_live_encrypted_journal() {
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("key");
    std::fs::write(&key, [0x5a; 32]).unwrap();
    live_reads_see_acknowledged_prefixes(Some(&key));
}

//! The scale rows of `reprise bench` (CONTRACT §4, added rows): `new guild` (the first event
//! of a guild that was never written, acknowledged as `reprise durable 1 guild` acknowledges
//! its appends) and `recover guilds` (the recovery of every guild of a journal holding many
//! small guilds, after the process that wrote them was SIGKILLed without closing).
//!
//! `recover guilds` runs in two child processes of the current binary (the hidden
//! `bench-worker` subcommand, [`worker`]): the first writes the guilds and reports readiness
//! on its stdout after its last acknowledged append, then the parent kills it; the second,
//! fresh, recovers and reports its recovery time and peak resident memory (VmHWM) as one JSON
//! line, so neither the writer's memory nor the parent's counts.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reprise::{Config, Durability, GuildId, Journal};
use serde_json::json;

use super::reprise_rows::warmed_journal;
use super::row::{Guarantee, Row, Samples, NEW_GUILD, RECOVER_GUILDS};
use super::stream::Stream;
use super::{io_failure, Plan, Scratch, BENCH_GUILD};
use crate::Failure;

/// Events each guild of `recover guilds` holds.
const EVENTS_PER_GUILD: usize = 3;

/// The `index`-th guild of the scale rows (distinct realistic snowflakes, apart from the
/// guilds of the other rows).
fn scale_guild(index: u64) -> GuildId {
    GuildId(BENCH_GUILD.0 + 1 + index * 4_194_304_009)
}

/// `new guild`: in a journal already holding one warmed-up guild (as `reprise durable 1 guild`
/// starts), each operation is the first event of a guild never written before,
/// `Journal::append(.., Durability::Always)`, acknowledged when `append` returns. Each is
/// followed, untimed for this row, by an append to the existing guild at the same durability,
/// timed apart: the row's `existing_guild_p50_us` and `ratio_to_existing_guild` (new guild p50
/// ÷ that p50; the target is at most 3) compare the two side by side, in the same seconds of
/// the same disk (fsync latency here changes from minute to minute, so a ratio against
/// another row, measured at another moment, swung between 2x and 9x).
pub(super) fn new_guild_row(
    scratch: &Scratch,
    stream: &Stream,
    plan: &Plan,
) -> Result<Row, Failure> {
    let mut journal = warmed_journal(scratch, "new-guild", stream, Durability::BATCHED)?;
    let first = stream.prefix(1)[0].clone();
    let existing_events = stream.measured(plan.new_guilds);
    let mut new = Samples::with_capacity(plan.new_guilds);
    let mut existing = Samples::with_capacity(plan.new_guilds);
    let (mut done, mut new_wall) = (0u64, Duration::ZERO);
    let start = Instant::now();
    for index in 0..plan.new_guilds as u64 {
        let t = Instant::now();
        journal.append(scale_guild(index), &first, Durability::Always)?;
        let appended = Instant::now();
        new.push(appended.duration_since(t));
        new_wall += appended.duration_since(t);
        done += 1;
        if let Some(event) = existing_events.get(index as usize) {
            let t = Instant::now();
            journal.append(BENCH_GUILD, event, Durability::Always)?;
            existing.push(t.elapsed());
        }
        if start.elapsed() >= plan.row_budget {
            break;
        }
    }
    journal.close()?;
    let existing_done = existing.latencies_ns.len() as u64;
    let existing = existing.finish(existing_done, start.elapsed());
    let samples = new.finish(done, new_wall);
    let (p50, existing_p50) = (samples.percentile_us(0.50), existing.percentile_us(0.50));
    let mut row = Row::new(NEW_GUILD, Guarantee::PowerLoss, samples);
    row.extra.insert("guilds".into(), json!(done));
    row.extra
        .insert("existing_guild_p50_us".into(), json!(round1(existing_p50)));
    if existing_p50 > 0.0 {
        row.extra.insert(
            "ratio_to_existing_guild".into(),
            json!((p50 / existing_p50 * 100.0).round() / 100.0),
        );
    }
    Ok(row)
}

/// One decimal.
fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// What the recovering child reports.
struct Recovery {
    /// Time to open the journal and build the state of every guild.
    elapsed: Duration,
    /// VmHWM of the child.
    rss_bytes: u64,
    /// Guilds recovered.
    guilds: u64,
}

/// `recover guilds`: `plan.recover_guilds` guilds × 3 events written by a child process that
/// is SIGKILLed after its last acknowledged append; p50 = the time another fresh child takes
/// to open the journal and recover the state of every guild. Extra fields: `guilds`,
/// `rss_bytes` (that child's peak resident memory), `disk_bytes` (allocated bytes of the
/// directory), `rss_bytes_per_guild`, `disk_bytes_per_guild`, `write_s` (the writer's time).
pub(super) fn recover_guilds_row(
    scratch: &Scratch,
    _stream: &Stream,
    plan: &Plan,
) -> Result<Row, Failure> {
    let dir = scratch.sub("recover-guilds")?;
    let guilds = plan.recover_guilds;
    let started = Instant::now();
    write_and_kill(&dir, guilds)?;
    let write_s = started.elapsed().as_secs_f64();
    let disk_bytes = allocated_bytes(&dir)?;
    let recovery = recover_in_child(&dir, guilds)?;
    let mut samples = Samples::with_capacity(1);
    samples.push(recovery.elapsed);
    let samples = samples.finish(1, recovery.elapsed);
    let mut row = Row::new(RECOVER_GUILDS, Guarantee::Own, samples);
    let per = |x: u64| (x as f64 / guilds.max(1) as f64).round();
    row.extra.insert("guilds".into(), json!(recovery.guilds));
    row.extra
        .insert("rss_bytes".into(), json!(recovery.rss_bytes));
    row.extra.insert("disk_bytes".into(), json!(disk_bytes));
    row.extra
        .insert("rss_bytes_per_guild".into(), json!(per(recovery.rss_bytes)));
    row.extra
        .insert("disk_bytes_per_guild".into(), json!(per(disk_bytes)));
    row.extra.insert("write_s".into(), json!(round1(write_s)));
    Ok(row)
}

/// A `bench-worker` child of the current binary in `dir`.
fn worker_command(dir: &Path, role: &str, guilds: u64) -> Result<Command, Failure> {
    let exe = std::env::current_exe().map_err(|e| io_failure("locate the binary for", dir, e))?;
    let mut command = Command::new(exe);
    command
        .arg("--dir")
        .arg(dir)
        .args(crate::key_args())
        .args(["bench-worker", "--role", role, "--guilds"])
        .arg(guilds.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    Ok(command)
}

/// Runs the writing child until it reports its last append acknowledged, then SIGKILLs it.
fn write_and_kill(dir: &Path, guilds: u64) -> Result<(), Failure> {
    let mut child = worker_command(dir, "write", guilds)?
        .spawn()
        .map_err(|e| io_failure("start the writer for", dir, e))?;
    let Some(stdout) = child.stdout.take() else {
        return Err(Failure::new(4, "the writer has no stdout"));
    };
    let mut line = String::new();
    let read = BufReader::new(stdout).read_line(&mut line);
    // Killed whatever it said: it must never close the journal.
    let _ = child.kill();
    let _ = child.wait();
    read.map_err(|e| io_failure("read the writer of", dir, e))?;
    if line.trim() == "ready" {
        Ok(())
    } else {
        Err(Failure::new(
            4,
            format!("bench: the writer stopped before its last append ({line:?})"),
        ))
    }
}

/// Runs the recovering child and parses its report.
fn recover_in_child(dir: &Path, guilds: u64) -> Result<Recovery, Failure> {
    let output = worker_command(dir, "recover", guilds)?
        .stdin(Stdio::null())
        .output()
        .map_err(|e| io_failure("start the recovery of", dir, e))?;
    let text = String::from_utf8_lossy(&output.stdout);
    let value: serde_json::Value = serde_json::from_str(text.trim()).map_err(|e| {
        Failure::new(
            4,
            format!("bench: the recovery child failed ({}): {e}", output.status),
        )
    })?;
    let field = |name: &str| value.get(name).and_then(|v| v.as_u64()).unwrap_or(0);
    let recovered = field("guilds");
    if recovered != guilds {
        return Err(Failure::new(
            2,
            format!("bench: recovered {recovered} guilds, expected {guilds}"),
        ));
    }
    Ok(Recovery {
        elapsed: Duration::from_micros(field("recover_us")),
        rss_bytes: field("rss_bytes"),
        guilds: recovered,
    })
}

/// Allocated bytes (st_blocks × 512) of every file and directory under `dir`, `dir` included.
fn allocated_bytes(dir: &Path) -> Result<u64, Failure> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(dir).map_err(|e| io_failure("stat", dir, e))?;
    let mut total = meta.blocks() * 512;
    if meta.is_dir() {
        let entries = std::fs::read_dir(dir).map_err(|e| io_failure("list", dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| io_failure("list", dir, e))?;
            total += allocated_bytes(&entry.path())?;
        }
    }
    Ok(total)
}

/// The child side of `recover guilds` (`reprise bench-worker`, hidden). Role `write`: appends
/// 3 events to each of `guilds` fresh guilds (`Durability::None`, then one `sync`), prints
/// `ready` and waits on its stdin to be killed, never closing the journal. Role `recover`:
/// opens the journal, builds the state of every guild, checks each holds 3 events, and prints
/// `{"recover_us", "rss_bytes", "guilds"}`.
pub(crate) fn worker(dir: &Path, role: &str, guilds: u64) -> Result<(), Failure> {
    match role {
        "write" => {
            let stream = Stream::generate(EVENTS_PER_GUILD);
            let events = stream.prefix(EVENTS_PER_GUILD);
            let mut journal = Journal::open(dir, Config::default())?;
            for index in 0..guilds {
                let guild = scale_guild(index);
                for event in events {
                    journal.append(guild, event, Durability::None)?;
                }
            }
            journal.sync()?;
            let mut stdout = std::io::stdout();
            writeln!(stdout, "ready")
                .and_then(|()| stdout.flush())
                .map_err(|e| io_failure("report to the parent from", dir, e))?;
            // Blocks until the parent kills this process; the journal is never closed.
            let mut rest = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut rest);
            std::mem::forget(journal);
            Ok(())
        }
        "recover" => {
            let started = Instant::now();
            let mut journal = Journal::open(dir, Config::default())?;
            let all = journal.guilds()?;
            for guild in &all {
                let seq = journal.state(*guild)?.seq;
                if seq != EVENTS_PER_GUILD as u64 {
                    return Err(Failure::new(
                        2,
                        format!("bench: guild {} recovered at seq {seq}", guild.0),
                    ));
                }
            }
            let elapsed = started.elapsed();
            let rss_bytes = peak_rss_bytes();
            std::mem::forget(journal);
            println!(
                "{}",
                json!({"recover_us": elapsed.as_micros() as u64, "rss_bytes": rss_bytes,
                       "guilds": all.len()})
            );
            Ok(())
        }
        other => Err(Failure::new(
            1,
            format!("bench-worker: unknown role {other}"),
        )),
    }
}

/// VmHWM of this process in bytes (0 where /proc is not available).
fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

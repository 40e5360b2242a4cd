//! The peers `reprise bench` measures reprise against, on the same disk in the same run: the
//! raw `fdatasync` floor (records written inside a preallocated file, and appended to a
//! growing one), SQLite in WAL mode (`FULL` and `NORMAL`), and the Sonora-JSON bot that
//! rewrites its guild file atomically for every event.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use reprise::session::{apply, State, HISTORY_MAX_DEFAULT};
use reprise::sonora::{self, Sections};
use reprise::storage::{write_atomic, FsStorage};
use reprise::Event;
use serde_json::json;

use super::row::{
    measure, Guarantee, Row, FLOOR, FLOOR_APPEND, SONORA_JSON, SQLITE_FULL, SQLITE_NORMAL,
};
use super::stream::Stream;
use super::{atomic_failure, io_failure, Plan, Scratch, BENCH_GUILD, FLOOR_RECORD_BYTES};
use crate::Failure;
use reprise::clock::now_unix_secs;

/// How far the `fdatasync floor` file is extended before the timed writes: more than the
/// longest run writes (10,000 + 200 records of 128 bytes), so no write changes its size.
const FLOOR_PREALLOC_BYTES: u64 = 4 << 20;

/// `fdatasync floor`: one 128-byte record per event of the stream written sequentially inside
/// a file extended ahead of the writes (`fallocate`, made durable with `fsync` before the
/// warm-up), each followed by `fdatasync`: no write changes the file's size, so no
/// `fdatasync` commits one — the fastest durable record this disk allows, the physical limit
/// of one durable stream (DESIGN.md, "The cost of an acknowledged append").
pub(super) fn floor_row(scratch: &Scratch, stream: &Stream, plan: &Plan) -> Result<Row, Failure> {
    let path = scratch.sub("floor")?.join("floor.log");
    let mut file = OpenOptions::new()
        .create_new(true)
        .write(true)
        .open(&path)
        .map_err(|e| io_failure("create", &path, e))?;
    rustix::fs::fallocate(
        &file,
        rustix::fs::FallocateFlags::empty(),
        0,
        FLOOR_PREALLOC_BYTES,
    )
    .map_err(|e| io_failure("fallocate", &path, e.into()))?;
    file.sync_all().map_err(|e| io_failure("fsync", &path, e))?;
    let samples = floor_samples(&mut file, &path, stream, plan)?;
    Ok(Row::new(FLOOR, Guarantee::PowerLoss, samples))
}

/// `fdatasync append`: the same records appended to a growing file, each followed by
/// `fdatasync`, which then also commits the file's new size to the file system's journal.
pub(super) fn floor_append_row(
    scratch: &Scratch,
    stream: &Stream,
    plan: &Plan,
) -> Result<Row, Failure> {
    let path = scratch.sub("floor-append")?.join("floor.log");
    let mut file = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(&path)
        .map_err(|e| io_failure("create", &path, e))?;
    let samples = floor_samples(&mut file, &path, stream, plan)?;
    Ok(Row::new(FLOOR_APPEND, Guarantee::PowerLoss, samples))
}

/// The floor rows' measurement: one 128-byte record written at the file's position per event
/// of the stream (the warm-up untimed), each followed by `fdatasync`, sequentially.
fn floor_samples(
    file: &mut File,
    path: &Path,
    stream: &Stream,
    plan: &Plan,
) -> Result<super::row::Samples, Failure> {
    let record = [0x5Au8; FLOOR_RECORD_BYTES];
    let write = |file: &mut File| -> Result<(), Failure> {
        file.write_all(&record)
            .map_err(|e| io_failure("write", path, e))?;
        file.sync_data()
            .map_err(|e| io_failure("fdatasync", path, e))
    };
    for _ in stream.warmup() {
        write(file)?;
    }
    let events = stream.measured(plan.durable_events);
    measure(events, plan.row_budget, |_| write(file))
}

/// `sqlite WAL FULL`: see [`sqlite_row`].
pub(super) fn sqlite_full_row(
    scratch: &Scratch,
    stream: &Stream,
    plan: &Plan,
) -> Result<Row, Failure> {
    sqlite_row(
        scratch,
        stream,
        plan.durable_events,
        plan.row_budget,
        "FULL",
    )
}

/// `sqlite WAL NORMAL`: see [`sqlite_row`].
pub(super) fn sqlite_normal_row(
    scratch: &Scratch,
    stream: &Stream,
    plan: &Plan,
) -> Result<Row, Failure> {
    sqlite_row(
        scratch,
        stream,
        plan.memory_events,
        plan.row_budget,
        "NORMAL",
    )
}

/// SQLite as its best users run an event log: `journal_mode=WAL`, `synchronous` = `mode`, a
/// table `events(guild, seq, payload)` keyed by `(guild, seq)`, one cached prepared `INSERT`
/// per event in autocommit (one transaction per event), the payload the event's JSON text
/// (serialized inside the timed call, as reprise encodes inside `append`). With `FULL` a commit
/// fsyncs the WAL (survives a power loss); with `NORMAL` it does not (survives a process kill).
fn sqlite_row(
    scratch: &Scratch,
    stream: &Stream,
    n: usize,
    budget: Duration,
    mode: &'static str,
) -> Result<Row, Failure> {
    let (name, guarantee) = match mode {
        "FULL" => (SQLITE_FULL, Guarantee::PowerLoss),
        _ => (SQLITE_NORMAL, Guarantee::ProcessKill),
    };
    let path = scratch
        .sub(&format!("sqlite-{}", mode.to_lowercase()))?
        .join("events.db");
    let db = rusqlite::Connection::open(&path).map_err(sqlite_failure)?;
    let journal_mode: String = db
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .map_err(sqlite_failure)?;
    if !journal_mode.eq_ignore_ascii_case("wal") {
        return Err(Failure::new(
            4,
            format!("sqlite: journal_mode=WAL refused ({journal_mode})"),
        ));
    }
    db.pragma_update(None, "synchronous", mode)
        .map_err(sqlite_failure)?;
    db.execute_batch(
        "CREATE TABLE events (guild INTEGER NOT NULL, seq INTEGER NOT NULL, \
         payload TEXT NOT NULL, PRIMARY KEY (guild, seq)) WITHOUT ROWID",
    )
    .map_err(sqlite_failure)?;
    let guild = i64::try_from(BENCH_GUILD.0).unwrap_or(i64::MAX);
    let mut seq = 0i64;
    let mut insert = |event: &Event| -> Result<(), Failure> {
        seq += 1;
        let mut statement = db
            .prepare_cached("INSERT INTO events (guild, seq, payload) VALUES (?1, ?2, ?3)")
            .map_err(sqlite_failure)?;
        statement
            .execute((guild, seq, event.to_json()))
            .map_err(sqlite_failure)?;
        Ok(())
    };
    for event in stream.warmup() {
        insert(event)?;
    }
    let samples = measure(stream.measured(n), budget, insert)?;
    Ok(Row::new(name, guarantee, samples))
}

/// `sonora JSON`: the careful Python bot. It keeps the guild's state in memory, applies each
/// event, serializes the whole Sonora guild file (`sonora::from_state` + `sonora::to_json`,
/// checksum included) and replaces the file atomically with [`write_atomic`] (temporary file,
/// fsync, rename, fsync directory) before it acknowledges. The guild is warmed up with the
/// same 200 events first, so the file carries a realistic queue; `file_bytes_mean` reports its
/// mean size over the timed writes.
pub(super) fn sonora_json_row(
    scratch: &Scratch,
    stream: &Stream,
    plan: &Plan,
) -> Result<Row, Failure> {
    let path = scratch
        .sub("sonora")?
        .join(format!("guild_{}.json", BENCH_GUILD.0));
    let mut state = State::new(HISTORY_MAX_DEFAULT);
    let write = |state: &State| -> Result<usize, Failure> {
        let file = sonora::from_state(BENCH_GUILD.0, now_unix_secs(), state, Sections::ALL);
        let text = sonora::to_json(&file);
        write_atomic(&FsStorage, &path, text.as_bytes()).map_err(atomic_failure)?;
        Ok(text.len())
    };
    for event in stream.warmup() {
        apply(&mut state, event);
    }
    write(&state)?;
    let queue_tracks = state.queue.upcoming.len();
    let events = stream.measured(plan.durable_events);
    let mut bytes_total = 0u64;
    let samples = measure(events, plan.row_budget, |event| {
        apply(&mut state, event);
        bytes_total += write(&state)? as u64;
        Ok(())
    })?;
    let file_bytes_mean = bytes_total / samples.ops.max(1);
    let mut row = Row::new(SONORA_JSON, Guarantee::PowerLoss, samples);
    row.extra
        .insert("queue_tracks_at_start".into(), json!(queue_tracks));
    row.extra
        .insert("file_bytes_mean".into(), json!(file_bytes_mean));
    Ok(row)
}

/// A SQLite failure (exit code 4).
fn sqlite_failure(e: rusqlite::Error) -> Failure {
    Failure::new(4, format!("sqlite: {e}"))
}

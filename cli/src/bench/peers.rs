//! The peers `reprise bench` measures reprise against, on the same disk in the same run: the
//! raw `fdatasync` floor (records written inside a preallocated file, and appended to a
//! growing one), SQLite in WAL mode (`FULL` and `NORMAL`), and the Sonora-JSON bot that
//! rewrites its guild file atomically for every event.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;

use reprise::session::{apply, State, HISTORY_MAX_DEFAULT};
use reprise::sonora::{self, Sections};
use reprise::storage::{write_atomic, FsStorage};
use reprise::Event;
use serde_json::json;

use super::row::{
    measure, Guarantee, Row, FLOOR, FLOOR_APPEND, SONORA_JSON, SQLITE_FULL, SQLITE_NORMAL,
};
use super::side_by_side::{Sequential, SideBySide};
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
pub(super) fn floor_store(
    scratch: &Scratch,
    stream: &Stream,
) -> Result<Box<dyn SideBySide>, Failure> {
    let path = scratch.sub("floor")?.join("floor.log");
    let file = OpenOptions::new()
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
    let floor = FloorFile {
        name: FLOOR,
        file,
        path,
    };
    Ok(Box::new(floor.warmed_up(stream)?))
}

/// `fdatasync append`: the same records appended to a growing file, each followed by
/// `fdatasync`, which then also commits the file's new size to the file system's journal.
pub(super) fn floor_append_store(
    scratch: &Scratch,
    stream: &Stream,
) -> Result<Box<dyn SideBySide>, Failure> {
    let path = scratch.sub("floor-append")?.join("floor.log");
    let file = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(&path)
        .map_err(|e| io_failure("create", &path, e))?;
    let floor = FloorFile {
        name: FLOOR_APPEND,
        file,
        path,
    };
    Ok(Box::new(floor.warmed_up(stream)?))
}

/// The floor rows' store: one 128-byte record written at the file's position per event, each
/// followed by `fdatasync`.
struct FloorFile {
    /// [`FLOOR`] or [`FLOOR_APPEND`].
    name: &'static str,
    file: File,
    path: PathBuf,
}

impl Sequential for FloorFile {
    fn name(&self) -> &'static str {
        self.name
    }

    fn put(&mut self, _event: &Event) -> Result<(), Failure> {
        const RECORD: [u8; FLOOR_RECORD_BYTES] = [0x5A; FLOOR_RECORD_BYTES];
        self.file
            .write_all(&RECORD)
            .map_err(|e| io_failure("write", &self.path, e))?;
        self.file
            .sync_data()
            .map_err(|e| io_failure("fdatasync", &self.path, e))
    }
}

/// `sqlite WAL FULL`: see [`Sqlite`].
pub(super) fn sqlite_full_store(
    scratch: &Scratch,
    stream: &Stream,
) -> Result<Box<dyn SideBySide>, Failure> {
    Ok(Box::new(Sqlite::open(scratch, stream, "FULL")?))
}

/// `sqlite WAL NORMAL`: see [`Sqlite`]. Its commits do not fsync, so it is compared with
/// `reprise none` and measured on its own, over [`Plan::memory_events`] events.
pub(super) fn sqlite_normal_row(
    scratch: &Scratch,
    stream: &Stream,
    plan: &Plan,
) -> Result<Row, Failure> {
    let mut sqlite = Sqlite::open(scratch, stream, "NORMAL")?;
    let samples = measure(
        stream.measured(plan.memory_events),
        plan.row_budget,
        |event| sqlite.put(event),
    )?;
    Ok(Row::new(SQLITE_NORMAL, Guarantee::ProcessKill, samples))
}

/// SQLite as its best users run an event log: `journal_mode=WAL`, `synchronous` = `mode`, a
/// table `events(guild, seq, payload)` keyed by `(guild, seq)`, one cached prepared `INSERT`
/// per event in autocommit (one transaction per event), the payload the event's JSON text
/// (serialized inside the timed call, as reprise encodes inside `append`). With `FULL` a commit
/// fsyncs the WAL (survives a power loss); with `NORMAL` it does not (survives a process kill).
struct Sqlite {
    /// `"FULL"` or `"NORMAL"`.
    mode: &'static str,
    db: rusqlite::Connection,
    /// The guild's last seq.
    seq: i64,
}

impl Sqlite {
    /// The database in its scratch directory, after the warm-up events.
    fn open(scratch: &Scratch, stream: &Stream, mode: &'static str) -> Result<Sqlite, Failure> {
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
        Sqlite { mode, db, seq: 0 }.warmed_up(stream)
    }
}

impl Sequential for Sqlite {
    fn name(&self) -> &'static str {
        match self.mode {
            "FULL" => SQLITE_FULL,
            _ => SQLITE_NORMAL,
        }
    }

    fn guarantee(&self) -> Guarantee {
        match self.mode {
            "FULL" => Guarantee::PowerLoss,
            _ => Guarantee::ProcessKill,
        }
    }

    fn put(&mut self, event: &Event) -> Result<(), Failure> {
        self.seq += 1;
        let guild = i64::try_from(BENCH_GUILD.0).unwrap_or(i64::MAX);
        let mut statement = self
            .db
            .prepare_cached("INSERT INTO events (guild, seq, payload) VALUES (?1, ?2, ?3)")
            .map_err(sqlite_failure)?;
        statement
            .execute((guild, self.seq, event.to_json()))
            .map_err(sqlite_failure)?;
        Ok(())
    }
}

/// `sonora JSON`: the careful Python bot. It keeps the guild's state in memory, applies each
/// event, serializes the whole Sonora guild file (`sonora::from_state` + `sonora::to_json`,
/// checksum included) and replaces the file atomically with [`write_atomic`] (temporary file,
/// fsync, rename, fsync directory) before it acknowledges. The guild is warmed up with the
/// same 200 events first, so the file carries a realistic queue; `file_bytes_mean` reports its
/// mean size over the timed writes, `queue_tracks_at_start` the queue after the warm-up.
pub(super) fn sonora_json_store(
    scratch: &Scratch,
    stream: &Stream,
) -> Result<Box<dyn SideBySide>, Failure> {
    let path = scratch
        .sub("sonora")?
        .join(format!("guild_{}.json", BENCH_GUILD.0));
    let mut state = State::new(HISTORY_MAX_DEFAULT);
    for event in stream.warmup() {
        apply(&mut state, event);
    }
    let mut sonora = SonoraJson {
        queue_tracks_at_start: state.queue.upcoming.len(),
        path,
        state,
        bytes_total: 0,
        writes: 0,
    };
    sonora.write()?;
    (sonora.bytes_total, sonora.writes) = (0, 0);
    Ok(Box::new(sonora))
}

/// The Sonora-JSON bot's guild: its state and its file.
struct SonoraJson {
    path: PathBuf,
    state: State,
    queue_tracks_at_start: usize,
    /// Bytes of the files written by the timed writes, and their count.
    bytes_total: u64,
    writes: u64,
}

impl SonoraJson {
    /// Replaces the guild's file with its current state.
    fn write(&mut self) -> Result<(), Failure> {
        let file = sonora::from_state(BENCH_GUILD.0, now_unix_secs(), &self.state, Sections::ALL);
        let text = sonora::to_json(&file);
        write_atomic(&FsStorage, &self.path, text.as_bytes()).map_err(atomic_failure)?;
        self.bytes_total += text.len() as u64;
        self.writes += 1;
        Ok(())
    }
}

impl Sequential for SonoraJson {
    fn name(&self) -> &'static str {
        SONORA_JSON
    }

    fn put(&mut self, event: &Event) -> Result<(), Failure> {
        apply(&mut self.state, event);
        self.write()
    }

    fn finish(self: Box<Self>, row: &mut Row) -> Result<(), Failure> {
        row.extra.insert(
            "queue_tracks_at_start".into(),
            json!(self.queue_tracks_at_start),
        );
        row.extra.insert(
            "file_bytes_mean".into(),
            json!(self.bytes_total / self.writes.max(1)),
        );
        Ok(())
    }
}

/// A SQLite failure (exit code 4).
fn sqlite_failure(e: rusqlite::Error) -> Failure {
    Failure::new(4, format!("sqlite: {e}"))
}

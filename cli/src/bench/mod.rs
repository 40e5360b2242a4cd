//! `reprise bench`: the side-by-side benchmark of CONTRACT §4.
//!
//! Every row runs in this one process, in a temporary directory under `--dir`
//! (`<dir>/bench-<pid>`, removed afterwards), so every peer writes to the same disk in the same
//! run and the ratios compare like with like. The durable rows (both floors, both `reprise
//! durable` rows, `sqlite WAL FULL`, `sonora JSON`, the redb and fjall rows), each paced by the
//! disk's flush latency, are measured side by side in rounds, so that the disk's drift from
//! minute to minute falls on all of them alike (see [`side_by_side`]); the other rows run one
//! after the other. Every appending row consumes the same
//! pre-generated stream of realistic events ([`Workload`](reprise::session::Workload),
//! generated before any clock starts), after the same untimed warm-up prefix of
//! [`WARMUP_EVENTS`] events.
//!
//! Latencies are per acknowledged event as the caller sees it: the time from the call that
//! hands the event over to the moment the caller may report it as stored (for the 64-guild
//! row, the end of the sync that covered it). `ops_per_s` is the events acknowledged divided
//! by the wall time of the timed loop. See [`ratio_baseline`](row::ratio_baseline) for the
//! meaning of `ratio_to_reprise` and `ratio_to_floor`. A row that exceeds its time budget (a
//! slow disk) stops early and reports what it completed; `samples` says how many.
//!
//! With `--remote URL`, three rows against that object store follow, in the same run
//! (`s3 PUT floor`, `reprise remote 64 guilds`, `claim`; CONTRACT §5): see [`remote`]. Without
//! it the report is the sixteen local rows alone.
//!
//! The files of this folder:
//! - `mod.rs`: the run ([`run`]) — the plan of each mode, the scratch directory, the order of
//!   the rows;
//! - [`row`]: what a row is — its name, its latency samples and how they are taken, its
//!   guarantee and baseline;
//! - [`stream`]: the pre-generated event stream every appending row consumes;
//! - [`side_by_side`]: the durable rows' measurement, side by side in rounds;
//! - [`reprise_rows`]: reprise's own local rows (durable, none, replay, snapshot);
//! - [`peers`]: the rows reprise is compared with (the fdatasync floor and append, SQLite,
//!   Sonora JSON);
//! - [`scale`]: the scale rows (`new guild`, `recover guilds` and its child processes);
//! - [`stores`]: the embedded Rust stores a bot author would pick instead (redb, fjall);
//! - [`machine`]: the machine description the report names;
//! - [`report`]: how a run prints (JSON object or table with its legend);
//! - [`remote`]: the rows of `--remote` against an object store.

mod machine;
mod peers;
mod remote;
mod report;
mod reprise_rows;
mod row;
mod scale;
mod side_by_side;
mod stores;
mod stream;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reprise::{Error, GuildId};

use crate::output::{print_json_line, print_line, Out};
use crate::progress::Progress;
use crate::Failure;
use machine::machine_description;
use peers::{
    floor_append_store, floor_store, sonora_json_store, sqlite_full_store, sqlite_normal_row,
};
use report::Report;
use reprise_rows::{
    replay_row, reprise_durable_1_store, reprise_durable_64_store, reprise_none_row, snapshot_row,
};
use row::{
    Row, CLAIM, FJALL_1, FJALL_64, FLOOR, FLOOR_APPEND, NEW_GUILD, RECOVER_GUILDS, REDB_1, REDB_64,
    REPLAY, REPRISE_DURABLE_1, REPRISE_DURABLE_64, REPRISE_NONE, REPRISE_REMOTE_64, S3_PUT_FLOOR,
    SNAPSHOT, SONORA_JSON, SQLITE_FULL, SQLITE_NORMAL,
};
pub(crate) use scale::worker;
use scale::{new_guild_row, recover_guilds_row};
use side_by_side::{measure_side_by_side, Entry, SideBySide};
use stores::{fjall_1_store, fjall_64_store, redb_1_store, redb_64_store};
use stream::{Stream, WARMUP_EVENTS};

/// Guilds of the `reprise durable 64 guilds` row.
const GUILDS: usize = 64;
/// Bytes per record of the `fdatasync floor` row (about one small reprise frame).
const FLOOR_RECORD_BYTES: usize = 128;
/// The guild of the single-guild rows (a realistic snowflake).
const BENCH_GUILD: GuildId = GuildId(601_988_503_601_311_691);

/// How much each row measures.
#[derive(Clone, Copy, Debug)]
struct Plan {
    /// `"quick"` or `"full"`.
    label: &'static str,
    /// Timed events of each single-stream durable row (the floors, reprise 1 guild, sqlite
    /// FULL, sonora JSON, redb and fjall 1 guild).
    durable_events: usize,
    /// Rounds the durable rows are measured in, side by side (see [`side_by_side`]): the
    /// slices of each single-stream row.
    rounds: usize,
    /// The slices of each 64-guild row (each guild's events cut into so many; long enough
    /// for the 64 appenders to reach full group commits).
    guild_slices: usize,
    /// Timed events of the 64-guild row (a multiple of [`GUILDS`]).
    guild_events: usize,
    /// Timed events of the in-memory-acknowledged rows (reprise none, sqlite NORMAL).
    memory_events: usize,
    /// Events in the replayed log.
    replay_events: usize,
    /// Timed recoveries of that log.
    replay_runs: usize,
    /// Timed snapshot writes.
    snapshot_runs: usize,
    /// Wall time after which a sequential row stops early and reports what it completed (a
    /// slow disk shortens the run instead of stretching it).
    row_budget: Duration,
    /// Timed PUTs of the `s3 PUT floor` row (`--remote`).
    put_events: usize,
    /// Guilds claimed by the `claim` row (`--remote`).
    claim_guilds: usize,
    /// First events of fresh guilds timed by the `new guild` row.
    new_guilds: usize,
    /// Guilds written, killed and recovered by the `recover guilds` row.
    recover_guilds: u64,
}

impl Plan {
    /// `--quick`: well under a minute on a small, busy machine.
    const QUICK: Plan = Plan {
        label: "quick",
        durable_events: 2_000,
        rounds: 40,
        guild_slices: 4,
        guild_events: 256 * GUILDS,
        memory_events: 20_000,
        replay_events: 50_000,
        replay_runs: 5,
        snapshot_runs: 50,
        row_budget: Duration::from_secs(8),
        put_events: 500,
        claim_guilds: 5,
        new_guilds: 500,
        recover_guilds: 5_000,
    };
    /// The default: a few minutes.
    const FULL: Plan = Plan {
        label: "full",
        durable_events: 10_000,
        rounds: 80,
        guild_slices: 8,
        guild_events: 1024 * GUILDS,
        memory_events: 200_000,
        replay_events: 200_000,
        replay_runs: 10,
        snapshot_runs: 300,
        row_budget: Duration::from_secs(45),
        put_events: 3_000,
        claim_guilds: 20,
        new_guilds: 2_000,
        recover_guilds: 100_000,
    };

    /// Events the shared stream needs after its warm-up prefix.
    fn stream_events(&self) -> usize {
        self.durable_events
            .max(self.guild_events / GUILDS)
            .max(self.memory_events)
            .max(self.replay_events)
            .max(self.put_events)
            .max(self.new_guilds)
    }
}

/// Removes the benchmark directory when dropped (and `--dir` too if the benchmark created it
/// and it is empty again).
struct Scratch {
    /// `<dir>/bench-<pid>`.
    path: PathBuf,
    /// `--dir`, when it did not exist before.
    created_parent: Option<PathBuf>,
}

impl Scratch {
    /// Creates `<dir>/bench-<pid>`, replacing a leftover of the same name.
    fn create(dir: &Path) -> Result<Scratch, Failure> {
        let created_parent = (!dir.exists()).then(|| dir.to_path_buf());
        let path = dir.join(format!("bench-{}", std::process::id()));
        if path.exists() {
            fs::remove_dir_all(&path).map_err(|e| io_failure("remove", &path, e))?;
        }
        fs::create_dir_all(&path).map_err(|e| io_failure("create directory", &path, e))?;
        Ok(Scratch {
            path,
            created_parent,
        })
    }

    /// Writes back what the rows before left dirty in the page cache (`syncfs` of the scratch
    /// directory's file system), so that the kernel's write-back of one row's files (the
    /// journals of `reprise none` and `replay`, written without a sync) does not run during
    /// the next row's timing: it fell on `new guild`'s directory and file creations, whose p50
    /// tripled (DESIGN.md, "Why consecutive bench runs give a new guild a higher ratio"). Best effort: without `syncfs` the row
    /// runs as before.
    fn settle(&self) {
        if let Ok(dir) = fs::File::open(&self.path) {
            let _ = rustix::fs::syncfs(&dir);
        }
    }

    /// A fresh subdirectory for one row.
    fn sub(&self, name: &str) -> Result<PathBuf, Failure> {
        let path = self.path.join(name);
        fs::create_dir_all(&path).map_err(|e| io_failure("create directory", &path, e))?;
        Ok(path)
    }
}

impl Drop for Scratch {
    /// Best effort: a failure to clean up must not hide the benchmark's result.
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
        if let Some(parent) = &self.created_parent {
            let _ = fs::remove_dir(parent);
        }
    }
}

/// An I/O failure (exit code 4) naming the operation and the path.
fn io_failure(op: &str, path: &Path, e: std::io::Error) -> Failure {
    Failure::new(4, format!("{op} {}: {e}", path.display()))
}

/// A failure of [`write_atomic`](reprise::storage::write_atomic) as the library's I/O error.
fn atomic_failure((op, path, source): (&'static str, PathBuf, std::io::Error)) -> Failure {
    Failure::from(Error::Io { op, path, source })
}

/// Runs `reprise bench` in `dir` and prints the table (or one JSON object with `json`). With
/// `remote` (`--remote URL`), the remote rows follow the local ones (see [`remote`]).
pub(crate) fn run(
    dir: &Path,
    quick: bool,
    json: bool,
    remote: Option<&str>,
) -> Result<(), Failure> {
    let plan = if quick { Plan::QUICK } else { Plan::FULL };
    // Opened first: a URL that does not work fails before the local rows run.
    let remote = remote.map(remote::RemoteBench::open).transpose()?;
    let scratch = Scratch::create(dir)?;
    let machine = machine_description(dir);
    eprintln!(
        "reprise: bench ({}) in {}: generating {} events",
        plan.label,
        scratch.path.display(),
        WARMUP_EVENTS + plan.stream_events()
    );
    let stream = Stream::generate(plan.stream_events());
    let mut rows = Vec::with_capacity(16);
    let bar = Progress::new(
        LOCAL_ROWS.len() as u64 + if remote.is_some() { 3 } else { 0 },
        "bench",
        "rows",
        json,
    );
    // Every step starts on a settled file system (see `Scratch::settle`).
    let begin = |stage: &str| {
        bar.stage("bench", stage);
        scratch.settle();
    };
    begin("durable rows, side by side");
    let durable = durable_rows(&scratch, &stream, &plan)?;
    bar.inc(durable.len() as u64);
    rows.extend(durable);
    let steps: [(&str, RowFn); 6] = [
        (REPRISE_NONE, reprise_none_row),
        (SQLITE_NORMAL, sqlite_normal_row),
        (REPLAY, replay_row),
        (SNAPSHOT, snapshot_row),
        (NEW_GUILD, new_guild_row),
        (RECOVER_GUILDS, recover_guilds_row),
    ];
    for (name, step) in steps {
        begin(name);
        rows.push(step(&scratch, &stream, &plan)?);
        bar.inc(1);
    }
    // Contract order.
    rows.sort_by_key(|row| LOCAL_ROWS.iter().position(|name| *name == row.name));
    if let Some(bench) = &remote {
        let steps: [(&str, remote::RemoteRowFn); 3] = [
            (S3_PUT_FLOOR, remote::s3_put_floor_row),
            (REPRISE_REMOTE_64, remote::reprise_remote_64_row),
            (CLAIM, remote::claim_row),
        ];
        for (name, step) in steps {
            begin(&format!("{name} ({})", bench.url()));
            rows.push(step(bench, &scratch, &stream, &plan)?);
            bar.inc(1);
        }
    }
    let remote_url = remote.as_ref().map(|r| r.url().to_owned());
    // Deletes the run's objects (best effort), then the local directory.
    drop(remote);
    drop(scratch);
    bar.finish(&format!("bench finished: {} rows", rows.len()));
    let report = Report {
        machine,
        plan,
        rows,
        remote: remote_url,
    };
    let mut out = Out::stdout();
    if json {
        print_json_line(&mut out, &report.to_json())
    } else {
        for line in report.table() {
            print_line(&mut out, &line)?;
        }
        Ok(())
    }
}

/// One row measured on its own (after the durable rows): measures and returns it.
type RowFn = fn(&Scratch, &Stream, &Plan) -> Result<Row, Failure>;

/// Opens and warms up one durable store (single-stream or 64-guild).
type OpenFn = fn(&Scratch, &Stream) -> Result<Box<dyn SideBySide>, Failure>;

/// The local rows, in the order of CONTRACT §4 (the order the report prints them in).
const LOCAL_ROWS: [&str; 16] = [
    FLOOR,
    FLOOR_APPEND,
    REPRISE_DURABLE_1,
    REPRISE_DURABLE_64,
    REPRISE_NONE,
    SQLITE_FULL,
    SQLITE_NORMAL,
    SONORA_JSON,
    REDB_1,
    FJALL_1,
    REDB_64,
    FJALL_64,
    REPLAY,
    SNAPSHOT,
    NEW_GUILD,
    RECOVER_GUILDS,
];

/// The durable rows, measured side by side in [`Plan::rounds`] rounds (see [`side_by_side`]):
/// the single-stream ones (`fdatasync floor`, `fdatasync append`, `reprise durable 1 guild`,
/// `sqlite WAL FULL`, `sonora JSON`, `redb 1 guild`, `fjall 1 guild`) over
/// [`Plan::durable_events`] events in one slice per round, and the 64-guild ones (`reprise
/// durable 64 guilds`, `redb 64 guilds`, `fjall 64 guilds`) over `guild_events / 64` events
/// per guild in [`Plan::guild_slices`] slices spread over the rounds. Every store is opened
/// and warmed up before the first round.
fn durable_rows(scratch: &Scratch, stream: &Stream, plan: &Plan) -> Result<Vec<Row>, Failure> {
    let single = stream.measured(plan.durable_events);
    let per_guild = stream.measured(plan.guild_events / GUILDS);
    let openers: [(OpenFn, &[reprise::Event], usize); 10] = [
        (floor_store, single, plan.rounds),
        (floor_append_store, single, plan.rounds),
        (reprise_durable_1_store, single, plan.rounds),
        (reprise_durable_64_store, per_guild, plan.guild_slices),
        (sqlite_full_store, single, plan.rounds),
        (sonora_json_store, single, plan.rounds),
        (redb_1_store, single, plan.rounds),
        (fjall_1_store, single, plan.rounds),
        (redb_64_store, per_guild, plan.guild_slices),
        (fjall_64_store, per_guild, plan.guild_slices),
    ];
    let entries = openers
        .into_iter()
        .map(|(open, events, slices)| {
            Ok(Entry {
                store: open(scratch, stream)?,
                events,
                slices,
            })
        })
        .collect::<Result<Vec<_>, Failure>>()?;
    measure_side_by_side(entries, plan.rounds, plan.row_budget)
}

//! `reprise bench`: the side-by-side benchmark of CONTRACT §4.
//!
//! Every row runs in this one process, one after the other, in a temporary directory under
//! `--dir` (`<dir>/bench-<pid>`, removed afterwards), so every peer writes to the same disk in
//! the same run and the ratios compare like with like. Every appending row consumes the same
//! pre-generated stream of realistic events ([`Workload`], generated before any clock starts),
//! after the same untimed warm-up prefix of [`WARMUP_EVENTS`] events.
//!
//! Latencies are per acknowledged event as the caller sees it: the time from the call that
//! hands the event over to the moment the caller may report it as stored (for the 64-guild
//! row, the end of the sync that covered it). `ops_per_s` is the events acknowledged divided
//! by the wall time of the timed loop. See [`ratio_baseline`] for the meaning of
//! `ratio_to_reprise` and `ratio_to_floor`. A row that exceeds its time budget (a slow disk)
//! stops early and reports what it completed; `samples` says how many.
//!
//! With `--remote URL`, three rows against that object store follow, in the same run
//! (`s3 PUT floor`, `reprise remote 64 guilds`, `claim`; CONTRACT §5): see [`remote`]. Without
//! it the report is the nine local rows alone.

mod remote;

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reprise::session::{apply, State, Workload, HISTORY_MAX_DEFAULT};
use reprise::sonora::{self, Sections};
use reprise::storage::{write_atomic, FsStorage};
use reprise::{Config, Durability, Error, Event, GuildId, Journal, Reprise};
use serde_json::{json, Map, Value};

use crate::output::{print_json_line, print_line, Out};
use crate::Failure;

/// Events every appending row applies, untimed, before its clock starts: the guild has a
/// realistic queue by then (the Sonora peer rewrites a file of realistic size), and file and
/// directory creation is out of the measurement.
const WARMUP_EVENTS: usize = 200;
/// Guilds of the `reprise durable 64 guilds` row.
const GUILDS: usize = 64;
/// Bytes per record of the `fdatasync floor` row (about one small reprise frame).
const FLOOR_RECORD_BYTES: usize = 128;
/// The guild of the single-guild rows (a realistic snowflake).
const BENCH_GUILD: GuildId = GuildId(601_988_503_601_311_691);
/// Seed of the event stream: every run measures the same events.
const WORKLOAD_SEED: u64 = 0x5EED_BE4C;
/// The Sonora 1.2.8 file whose 1,000-track queue the `snapshot` row stores (its name).
const SNAPSHOT_FIXTURE: &str = "guild_601988503601311691_1760000296.json";
/// That file's text, built into the binary: the row measures the same state on any machine.
const SNAPSHOT_FIXTURE_JSON: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/sonora-1.2.8/guild_601988503601311691_1760000296.json"
));

/// Row names, in the order of CONTRACT §4.
const FLOOR: &str = "fdatasync floor";
const REPRISE_DURABLE_1: &str = "reprise durable 1 guild";
const REPRISE_DURABLE_64: &str = "reprise durable 64 guilds";
const REPRISE_NONE: &str = "reprise none";
const SQLITE_FULL: &str = "sqlite WAL FULL";
const SQLITE_NORMAL: &str = "sqlite WAL NORMAL";
const SONORA_JSON: &str = "sonora JSON";
const REPLAY: &str = "replay";
const SNAPSHOT: &str = "snapshot";
/// The rows `--remote` adds after those (CONTRACT §5).
const S3_PUT_FLOOR: &str = "s3 PUT floor";
const REPRISE_REMOTE_64: &str = "reprise remote 64 guilds";
const CLAIM: &str = "claim";

/// How much each row measures.
#[derive(Clone, Copy, Debug)]
struct Plan {
    /// `"quick"` or `"full"`.
    label: &'static str,
    /// Timed events of each sequential durable row (floor, reprise 1 guild, sqlite FULL, sonora).
    durable_events: usize,
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
}

impl Plan {
    /// `--quick`: well under a minute on a small, busy machine.
    const QUICK: Plan = Plan {
        label: "quick",
        durable_events: 2_000,
        guild_events: 256 * GUILDS,
        memory_events: 20_000,
        replay_events: 50_000,
        replay_runs: 5,
        snapshot_runs: 50,
        row_budget: Duration::from_secs(8),
        put_events: 500,
        claim_guilds: 5,
    };
    /// The default: a few minutes.
    const FULL: Plan = Plan {
        label: "full",
        durable_events: 10_000,
        guild_events: 1024 * GUILDS,
        memory_events: 200_000,
        replay_events: 200_000,
        replay_runs: 10,
        snapshot_runs: 300,
        row_budget: Duration::from_secs(45),
        put_events: 3_000,
        claim_guilds: 20,
    };

    /// Events the shared stream needs after its warm-up prefix.
    fn stream_events(&self) -> usize {
        self.durable_events
            .max(self.guild_events / GUILDS)
            .max(self.memory_events)
            .max(self.replay_events)
            .max(self.put_events)
    }
}

/// Per-operation latencies of one row, with the operation count and wall time they add up to.
#[derive(Clone, Debug, Default)]
struct Samples {
    /// Latencies in nanoseconds; sorted by [`Samples::finish`].
    latencies_ns: Vec<u64>,
    /// Operations completed (events, or events folded for `replay`).
    ops: u64,
    /// Wall time of the timed part.
    wall: Duration,
}

impl Samples {
    /// Empty samples with room for `capacity` latencies.
    fn with_capacity(capacity: usize) -> Samples {
        Samples {
            latencies_ns: Vec::with_capacity(capacity),
            ..Samples::default()
        }
    }

    /// Records the latency of one operation.
    fn push(&mut self, latency: Duration) {
        self.latencies_ns
            .push(u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Closes the measurement: `ops` operations took `wall`. Sorts the latencies.
    fn finish(mut self, ops: u64, wall: Duration) -> Samples {
        self.latencies_ns.sort_unstable();
        self.ops = ops;
        self.wall = wall;
        self
    }

    /// The `p`-quantile (`0.0..=1.0`, nearest rank) of the latencies in microseconds; 0 when
    /// nothing was recorded.
    fn percentile_us(&self, p: f64) -> f64 {
        let Some(last) = self.latencies_ns.len().checked_sub(1) else {
            return 0.0;
        };
        let rank = ((last as f64) * p.clamp(0.0, 1.0)).round() as usize;
        self.latencies_ns
            .get(rank.min(last))
            .map_or(0.0, |ns| *ns as f64 / 1_000.0)
    }

    /// Operations per second of wall time.
    fn ops_per_s(&self) -> f64 {
        let secs = self.wall.as_secs_f64();
        if secs > 0.0 {
            self.ops as f64 / secs
        } else {
            0.0
        }
    }
}

/// What a row's acknowledgement promises, which fixes the reprise row it is compared with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Guarantee {
    /// Acknowledged after stable storage: survives a power loss.
    PowerLoss,
    /// Acknowledged after the data was handed to the OS: survives a process kill only.
    ProcessKill,
    /// Acknowledged once stored in the object store (`--remote`): survives the loss of the
    /// machine.
    MachineLoss,
    /// Not an acknowledgement (replay, snapshot, claim): compared with nothing.
    Own,
}

/// One measured row with its extra JSON fields.
#[derive(Debug)]
struct Row {
    /// The contract's row name.
    name: &'static str,
    /// What its acknowledgement promises.
    guarantee: Guarantee,
    /// The measurement.
    samples: Samples,
    /// Row-specific fields (bytes, queue sizes).
    extra: Map<String, Value>,
}

impl Row {
    /// A row without extra fields.
    fn new(name: &'static str, guarantee: Guarantee, samples: Samples) -> Row {
        Row {
            name,
            guarantee,
            samples,
            extra: Map::new(),
        }
    }
}

/// The reprise row a row is compared with, by its guarantee.
///
/// `ratio_to_reprise` = `ops_per_s` of the row ÷ `ops_per_s` of this baseline row, measured in
/// the same run (above 1: faster than reprise; below 1: slower):
/// - rows acknowledged after stable storage (`fdatasync floor`, both `reprise durable` rows,
///   `sqlite WAL FULL`, `sonora JSON`) ÷ `reprise durable 1 guild`;
/// - rows acknowledged once the OS has the bytes, surviving a process kill but not a power loss
///   (`reprise none`, `sqlite WAL NORMAL`, whose WAL commits do not fsync) ÷ `reprise none`;
/// - rows acknowledged once stored in the object store of `--remote`, surviving the loss of
///   the machine (`s3 PUT floor`, `reprise remote 64 guilds`) ÷ `reprise remote 64 guilds`;
/// - `replay`, `snapshot` and `claim` are reprise's own operations with no peer: 1 by
///   definition (the snapshot row compares bytes instead: `bytes` beside `sonora_json_bytes`).
///
/// `ratio_to_floor` (acknowledging rows only) = `ops_per_s` ÷ `ops_per_s` of the floor of the
/// row's guarantee: `fdatasync floor` for the durable rows (the physical limit of one sequential
/// stream of durable appends on this disk), `s3 PUT floor` for the remote rows (one PUT per
/// event, sequential: the store's limit for one stream of remote acknowledgements).
fn ratio_baseline(row: &Row) -> &'static str {
    match row.guarantee {
        Guarantee::PowerLoss => REPRISE_DURABLE_1,
        Guarantee::ProcessKill => REPRISE_NONE,
        Guarantee::MachineLoss => REPRISE_REMOTE_64,
        Guarantee::Own => row.name,
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

/// A SQLite failure (exit code 4).
fn sqlite_failure(e: rusqlite::Error) -> Failure {
    Failure::new(4, format!("sqlite: {e}"))
}

/// A failure of [`write_atomic`] as the library's I/O error.
fn atomic_failure((op, path, source): (&'static str, PathBuf, std::io::Error)) -> Failure {
    Failure::from(Error::Io { op, path, source })
}

/// The pre-generated event stream every appending row consumes: a warm-up prefix, then the
/// timed events. Each event is valid for the state the events before it produce.
struct Stream {
    /// All events, the warm-up first.
    events: Vec<Event>,
}

impl Stream {
    /// Plays one [`Workload`] guild for `WARMUP_EVENTS + measured` events.
    fn generate(measured: usize) -> Stream {
        let mut workload = Workload::new(WORKLOAD_SEED);
        let mut state = State::new(HISTORY_MAX_DEFAULT);
        let events = (0..WARMUP_EVENTS + measured)
            .map(|_| {
                let event = workload.next_event(&state);
                apply(&mut state, &event);
                event
            })
            .collect();
        Stream { events }
    }

    /// The untimed warm-up prefix.
    fn warmup(&self) -> &[Event] {
        self.events.get(..WARMUP_EVENTS).unwrap_or(&self.events)
    }

    /// The first `n` timed events (fewer if the stream is shorter).
    fn measured(&self, n: usize) -> &[Event] {
        let rest = self.events.get(WARMUP_EVENTS..).unwrap_or(&[]);
        rest.get(..n).unwrap_or(rest)
    }

    /// The first `n` events, warm-up included.
    fn prefix(&self, n: usize) -> &[Event] {
        self.events.get(..n).unwrap_or(&self.events)
    }
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
    let started = Instant::now();
    eprintln!(
        "reprise: bench ({}) in {}: generating {} events",
        plan.label,
        scratch.path.display(),
        WARMUP_EVENTS + plan.stream_events()
    );
    let stream = Stream::generate(plan.stream_events());
    let mut rows = Vec::with_capacity(9);
    let steps: [(&str, RowFn); 9] = [
        (FLOOR, floor_row),
        (REPRISE_DURABLE_1, reprise_durable_1_row),
        (REPRISE_DURABLE_64, reprise_durable_64_row),
        (REPRISE_NONE, reprise_none_row),
        (SQLITE_FULL, sqlite_full_row),
        (SQLITE_NORMAL, sqlite_normal_row),
        (SONORA_JSON, sonora_json_row),
        (REPLAY, replay_row),
        (SNAPSHOT, snapshot_row),
    ];
    for (name, step) in steps {
        eprintln!("reprise: bench: {name}");
        rows.push(step(&scratch, &stream, &plan)?);
    }
    if let Some(bench) = &remote {
        let steps: [(&str, remote::RemoteRowFn); 3] = [
            (S3_PUT_FLOOR, remote::s3_put_floor_row),
            (REPRISE_REMOTE_64, remote::reprise_remote_64_row),
            (CLAIM, remote::claim_row),
        ];
        for (name, step) in steps {
            eprintln!("reprise: bench: {name} ({})", bench.url());
            rows.push(step(bench, &scratch, &stream, &plan)?);
        }
    }
    let remote_url = remote.as_ref().map(|r| r.url().to_owned());
    // Deletes the run's objects (best effort), then the local directory.
    drop(remote);
    drop(scratch);
    eprintln!(
        "reprise: bench finished in {:.1} s",
        started.elapsed().as_secs_f64()
    );
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

/// One row of the benchmark: measures and returns it.
type RowFn = fn(&Scratch, &Stream, &Plan) -> Result<Row, Failure>;

/// Runs and times `op` once per item of `items`, in order, until they run out or `budget` of
/// wall time has passed. Each call's duration is one latency sample; the calls completed are
/// the operations, over the wall time of the whole loop.
fn measure<T>(
    items: &[T],
    budget: Duration,
    mut op: impl FnMut(&T) -> Result<(), Failure>,
) -> Result<Samples, Failure> {
    let mut samples = Samples::with_capacity(items.len());
    let mut done = 0u64;
    let start = Instant::now();
    for item in items {
        let t = Instant::now();
        op(item)?;
        let end = Instant::now();
        samples.push(end.duration_since(t));
        done += 1;
        if end.duration_since(start) >= budget {
            break;
        }
    }
    let wall = start.elapsed();
    Ok(samples.finish(done, wall))
}

/// `fdatasync floor`: one 128-byte record per event of the stream appended to one file, each
/// followed by `fdatasync`, sequentially — the physical limit of a durable append stream on
/// this disk.
fn floor_row(scratch: &Scratch, stream: &Stream, plan: &Plan) -> Result<Row, Failure> {
    let path = scratch.sub("floor")?.join("floor.log");
    let mut file = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(&path)
        .map_err(|e| io_failure("create", &path, e))?;
    let record = [0x5Au8; FLOOR_RECORD_BYTES];
    let append = |file: &mut File| -> Result<(), Failure> {
        file.write_all(&record)
            .map_err(|e| io_failure("write", &path, e))?;
        file.sync_data()
            .map_err(|e| io_failure("fdatasync", &path, e))
    };
    for _ in stream.warmup() {
        append(&mut file)?;
    }
    let events = stream.measured(plan.durable_events);
    let samples = measure(events, plan.row_budget, |_| append(&mut file))?;
    Ok(Row::new(FLOOR, Guarantee::PowerLoss, samples))
}

/// Appends `events` to `guild`, one call each at `durability`, timing every call (within
/// `budget`, see [`measure`]).
fn reprise_appends(
    journal: &mut Journal,
    guild: GuildId,
    events: &[Event],
    durability: Durability,
    budget: Duration,
) -> Result<Samples, Failure> {
    measure(events, budget, |event| {
        journal.append(guild, event, durability)?;
        Ok(())
    })
}

/// `reprise durable 1 guild`: `Journal::append(.., Durability::Always)` per event (default
/// configuration, automatic snapshots included); acknowledged when `append` returns.
fn reprise_durable_1_row(scratch: &Scratch, stream: &Stream, plan: &Plan) -> Result<Row, Failure> {
    let mut journal = Journal::open(scratch.sub("reprise-durable-1")?, Config::default())?;
    for event in stream.warmup() {
        journal.append(BENCH_GUILD, event, Durability::BATCHED)?;
    }
    journal.sync()?;
    let samples = reprise_appends(
        &mut journal,
        BENCH_GUILD,
        stream.measured(plan.durable_events),
        Durability::Always,
        plan.row_budget,
    )?;
    journal.close()?;
    Ok(Row::new(REPRISE_DURABLE_1, Guarantee::PowerLoss, samples))
}

/// `reprise durable 64 guilds`: the row's measurement (see [`reprise_durable_64`]).
fn reprise_durable_64_row(scratch: &Scratch, stream: &Stream, plan: &Plan) -> Result<Row, Failure> {
    let dir = scratch.sub("reprise-durable-64")?;
    let samples = reprise_durable_64(&dir, stream, plan.guild_events)?;
    let mut row = Row::new(REPRISE_DURABLE_64, Guarantee::PowerLoss, samples);
    row.extra.insert("guilds".into(), json!(GUILDS));
    Ok(row)
}

/// The guild ids of the 64-guild row (realistic, distinct snowflakes).
fn bench_guilds() -> Vec<GuildId> {
    (0..GUILDS as u64)
        .map(|i| GuildId(BENCH_GUILD.0 + i * 4_194_304_007))
        .collect()
}

/// `n` durable appends spread over 64 guilds appending concurrently through the async runtime
/// ([`Reprise`]), each with `Durability::Always`: 64 tokio tasks (one per guild) each append
/// their guild's stream one event at a time, awaiting every acknowledgement, so the writer's
/// group commit is what makes one fsync cover many guilds. An event's latency runs from its
/// `append` call to its acknowledgement. `n` is rounded down to whole rounds.
fn reprise_durable_64(dir: &Path, stream: &Stream, n: usize) -> Result<Samples, Failure> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| io_failure("start a tokio runtime in", dir, e))?;
    let guilds = bench_guilds();
    let per_guild = n / GUILDS;
    let warmup: Vec<Event> = stream.warmup().to_vec();
    let measured: Vec<Event> = stream.measured(per_guild).to_vec();
    runtime.block_on(async move {
        let config = Config::default().with_snapshot_interval(None);
        let handle = Reprise::open(dir, config).await?;
        for guild in &guilds {
            handle
                .append_many_with(*guild, warmup.clone(), Some(Durability::None))
                .await?;
        }
        handle.flush().await?;
        let samples = concurrent_appends(&handle, guilds, measured, Durability::Always).await?;
        handle.shutdown().await?;
        Ok(samples)
    })
}

/// The timed part of the 64-guild rows: one tokio task per guild of `guilds` appends every
/// event of `measured` at `durability`, one at a time, awaiting each acknowledgement. Each
/// event's latency runs from its `append` call to its acknowledgement; the wall time is that
/// of the whole set of tasks.
async fn concurrent_appends(
    handle: &Reprise,
    guilds: Vec<GuildId>,
    measured: Vec<Event>,
    durability: Durability,
) -> Result<Samples, Failure> {
    let measured = std::sync::Arc::new(measured);
    let per_guild = measured.len();
    let count = guilds.len();
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(count);
    for guild in guilds {
        let (handle, events) = (handle.clone(), std::sync::Arc::clone(&measured));
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(events.len());
            for event in events.iter() {
                let t = Instant::now();
                handle.append_with(guild, event.clone(), durability).await?;
                latencies.push(t.elapsed());
            }
            Ok::<_, reprise::Error>(latencies)
        }));
    }
    let mut samples = Samples::with_capacity(per_guild * count);
    for task in tasks {
        let latencies = task
            .await
            .map_err(|e| Failure::new(4, format!("bench task failed: {e}")))??;
        for l in latencies {
            samples.push(l);
        }
    }
    let wall = start.elapsed();
    Ok(samples.finish((per_guild * count) as u64, wall))
}

/// `reprise none`: `Journal::append(.., Durability::None)` per event — acknowledged once the
/// frame is written to the OS (survives a process kill, not a power loss).
fn reprise_none_row(scratch: &Scratch, stream: &Stream, plan: &Plan) -> Result<Row, Failure> {
    let mut journal = Journal::open(scratch.sub("reprise-none")?, Config::default())?;
    for event in stream.warmup() {
        journal.append(BENCH_GUILD, event, Durability::None)?;
    }
    journal.sync()?;
    let samples = reprise_appends(
        &mut journal,
        BENCH_GUILD,
        stream.measured(plan.memory_events),
        Durability::None,
        plan.row_budget,
    )?;
    journal.close()?;
    Ok(Row::new(REPRISE_NONE, Guarantee::ProcessKill, samples))
}

/// `sqlite WAL FULL`: see [`sqlite_row`].
fn sqlite_full_row(scratch: &Scratch, stream: &Stream, plan: &Plan) -> Result<Row, Failure> {
    sqlite_row(
        scratch,
        stream,
        plan.durable_events,
        plan.row_budget,
        "FULL",
    )
}

/// `sqlite WAL NORMAL`: see [`sqlite_row`].
fn sqlite_normal_row(scratch: &Scratch, stream: &Stream, plan: &Plan) -> Result<Row, Failure> {
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

/// Seconds since the Unix epoch (Sonora's `timestamp`).
fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `sonora JSON`: the careful Python bot. It keeps the guild's state in memory, applies each
/// event, serializes the whole Sonora guild file (`sonora::from_state` + `sonora::to_json`,
/// checksum included) and replaces the file atomically with [`write_atomic`] (temporary file,
/// fsync, rename, fsync directory) before it acknowledges. The guild is warmed up with the
/// same 200 events first, so the file carries a realistic queue; `file_bytes_mean` reports its
/// mean size over the timed writes.
fn sonora_json_row(scratch: &Scratch, stream: &Stream, plan: &Plan) -> Result<Row, Failure> {
    let path = scratch
        .sub("sonora")?
        .join(format!("guild_{}.json", BENCH_GUILD.0));
    let mut state = State::new(HISTORY_MAX_DEFAULT);
    let write = |state: &State| -> Result<usize, Failure> {
        let file = sonora::from_state(BENCH_GUILD.0, unix_secs(), state, Sections::ALL);
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

/// `replay`: a guild log of `replay_events` events (no snapshots, so recovery folds them
/// all), closed; each timed run is `Journal::open_read_only` + `state(guild)`. `ops_per_s` is
/// events folded per second over all runs; p50/p99 are of the whole recovery of one run.
fn replay_row(scratch: &Scratch, stream: &Stream, plan: &Plan) -> Result<Row, Failure> {
    let dir = scratch.sub("replay")?;
    let config = Config::default().without_auto_snapshots();
    let events = stream.prefix(plan.replay_events);
    let mut journal = Journal::open(&dir, config.clone())?;
    for event in events {
        journal.append(BENCH_GUILD, event, Durability::None)?;
    }
    journal.close()?;
    let expected = events.len() as u64;
    let mut samples = measure(&vec![(); plan.replay_runs], plan.row_budget, |()| {
        let mut reader = Journal::open_read_only(&dir, config.clone())?;
        let seq = reader.state(BENCH_GUILD)?.seq;
        if seq == expected {
            Ok(())
        } else {
            Err(Failure::new(
                2,
                format!("bench: replay recovered seq {seq}, expected {expected}"),
            ))
        }
    })?;
    // The operations of this row are the events folded, not the recoveries.
    samples.ops *= expected;
    let mut row = Row::new(REPLAY, Guarantee::Own, samples);
    row.extra.insert("events".into(), json!(expected));
    Ok(row)
}

/// The state of the `snapshot` row: the guild of a real Sonora 1.2.8 file (a 1,000-track
/// queue, built into the binary), and where it came from.
fn snapshot_state() -> Result<(State, String), Failure> {
    let file = sonora::parse(SNAPSHOT_FIXTURE_JSON)
        .map_err(|e| Failure::new(2, format!("the built-in Sonora file does not parse: {e}")))?;
    let state = sonora::to_state(&file, HISTORY_MAX_DEFAULT)
        .map_err(|e| Failure::new(2, format!("the built-in Sonora file is not a state: {e}")))?;
    Ok((
        state,
        format!("Sonora 1.2.8 file {SNAPSHOT_FIXTURE} (built in)"),
    ))
}

/// `snapshot`: a guild holding a 1,000-track queue (see [`snapshot_state`]); each timed run
/// encodes a snapshot file (`format::snapshot::encode`: bincode + zstd + header) and writes it
/// with [`write_atomic`], as `Journal::snapshot_now` does. `bytes` is the snapshot file,
/// `sonora_json_bytes` the Sonora JSON file of the same state, `encode_p50_us` the median of
/// the encoding part of a run (the rest is the file's write and fsyncs).
fn snapshot_row(scratch: &Scratch, _stream: &Stream, plan: &Plan) -> Result<Row, Failure> {
    let (state, source) = snapshot_state()?;
    let root = scratch.sub("snapshot")?;
    let path = reprise::layout::snapshot_path(&root, BENCH_GUILD, 1);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| io_failure("create directory", parent, e))?;
    }
    let sonora_json_bytes = sonora::to_json(&sonora::from_state(
        BENCH_GUILD.0,
        unix_secs(),
        &state,
        Sections::ALL,
    ))
    .len();
    let mut bytes = 0usize;
    let mut encode = Samples::with_capacity(plan.snapshot_runs);
    let samples = measure(&vec![(); plan.snapshot_runs], plan.row_budget, |()| {
        let created = unix_secs().saturating_mul(1_000);
        let t = Instant::now();
        let file = reprise::format::snapshot::encode(BENCH_GUILD.0, 1, created, &state, None)
            .map_err(|e| io_failure("encode snapshot", &path, e))?;
        encode.push(t.elapsed());
        write_atomic(&FsStorage, &path, &file).map_err(atomic_failure)?;
        bytes = file.len();
        Ok(())
    })?;
    let encode = encode.finish(samples.ops, samples.wall);
    let mut row = Row::new(SNAPSHOT, Guarantee::Own, samples);
    row.extra.insert("bytes".into(), json!(bytes));
    row.extra
        .insert("sonora_json_bytes".into(), json!(sonora_json_bytes));
    row.extra
        .insert("queue_tracks".into(), json!(state.queue.upcoming.len()));
    row.extra.insert("state_source".into(), json!(source));
    // The part of each run before the file is written (the rest is write_atomic's writes and
    // fsyncs): what the CPU does, apart from the disk's latency.
    row.extra.insert(
        "encode_p50_us".into(),
        json!((encode.percentile_us(0.50) * 10.0).round() / 10.0),
    );
    Ok(row)
}

/// The first line of `text` starting with `key`, after its `:` (as in `/proc/cpuinfo`).
fn proc_field(text: &str, key: &str) -> Option<String> {
    text.lines()
        .find(|line| line.starts_with(key))
        .and_then(|line| line.split_once(':'))
        .map(|(_, value)| value.trim().to_owned())
}

/// The file system type and device of `dir`, from `df -PT`.
fn filesystem(dir: &Path) -> Option<(String, String)> {
    let output = std::process::Command::new("df")
        .arg("-PT")
        .arg(dir)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text.lines().nth(1)?;
    let mut fields = line.split_whitespace();
    let device = fields.next()?.to_owned();
    let kind = fields.next()?.to_owned();
    Some((kind, device))
}

/// One line describing the machine: CPU model, cores, kernel, and the file system of `dir`.
fn machine_description(dir: &Path) -> String {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = proc_field(&cpuinfo, "model name").unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".to_owned());
    let fs_text = filesystem(dir).map_or_else(
        || "unknown file system".to_owned(),
        |(kind, device)| format!("{kind} on {device}"),
    );
    format!(
        "{cpu}, {cores} cores, Linux {kernel}, {fs_text} ({})",
        dir.display()
    )
}

/// A complete run, ready to print.
struct Report {
    /// [`machine_description`].
    machine: String,
    /// What was measured.
    plan: Plan,
    /// The rows, in contract order.
    rows: Vec<Row>,
    /// The run's remote URL (its own key prefix), with `--remote`.
    remote: Option<String>,
}

/// The note printed with every report.
const SIDE_BY_SIDE_NOTE: &str = "all rows measured side by side in this one run, in one process, \
on the disk of --dir; compare ratios, not absolute numbers, across machines";

impl Report {
    /// `ops_per_s` of the named row (0 if absent).
    fn ops_per_s(&self, name: &str) -> f64 {
        self.rows
            .iter()
            .find(|r| r.name == name)
            .map_or(0.0, |r| r.samples.ops_per_s())
    }

    /// `a / b`, or 0 when `b` is 0.
    fn ratio(a: f64, b: f64) -> f64 {
        if b > 0.0 {
            a / b
        } else {
            0.0
        }
    }

    /// The row's `ratio_to_reprise` (see [`ratio_baseline`]).
    fn ratio_to_reprise(&self, row: &Row) -> f64 {
        match row.guarantee {
            Guarantee::Own => 1.0,
            _ => Self::ratio(row.samples.ops_per_s(), self.ops_per_s(ratio_baseline(row))),
        }
    }

    /// The row's `ratio_to_floor`, for durable and remote rows only (see [`ratio_baseline`]).
    fn ratio_to_floor(&self, row: &Row) -> Option<f64> {
        let floor = match row.guarantee {
            Guarantee::PowerLoss => FLOOR,
            Guarantee::MachineLoss => S3_PUT_FLOOR,
            Guarantee::ProcessKill | Guarantee::Own => return None,
        };
        Some(Self::ratio(row.samples.ops_per_s(), self.ops_per_s(floor)))
    }

    /// The report as CONTRACT §4's JSON object (with a few extra fields).
    fn to_json(&self) -> Value {
        let round = |x: f64, digits: i32| {
            let scale = 10f64.powi(digits);
            (x * scale).round() / scale
        };
        let rows: Vec<Value> = self
            .rows
            .iter()
            .map(|row| {
                let mut m = Map::new();
                m.insert("name".into(), json!(row.name));
                m.insert("ops_per_s".into(), json!(round(row.samples.ops_per_s(), 1)));
                m.insert(
                    "p50_us".into(),
                    json!(round(row.samples.percentile_us(0.50), 1)),
                );
                m.insert(
                    "p99_us".into(),
                    json!(round(row.samples.percentile_us(0.99), 1)),
                );
                m.insert(
                    "ratio_to_reprise".into(),
                    json!(round(self.ratio_to_reprise(row), 3)),
                );
                m.insert("ratio_baseline".into(), json!(ratio_baseline(row)));
                if let Some(r) = self.ratio_to_floor(row) {
                    m.insert("ratio_to_floor".into(), json!(round(r, 3)));
                }
                m.insert("samples".into(), json!(row.samples.latencies_ns.len()));
                m.extend(row.extra.clone());
                Value::Object(m)
            })
            .collect();
        let mut report = json!({
            "machine": self.machine,
            "note": SIDE_BY_SIDE_NOTE,
            "mode": self.plan.label,
            "rows": rows,
        });
        if let (Some(url), Some(m)) = (&self.remote, report.as_object_mut()) {
            m.insert("remote".into(), json!(url));
        }
        report
    }

    /// The report as an aligned table with its legend, one string per line.
    fn table(&self) -> Vec<String> {
        let mut lines = vec![
            format!("reprise bench ({})", self.plan.label),
            format!("machine: {}", self.machine),
            format!("note: {SIDE_BY_SIDE_NOTE}"),
        ];
        if let Some(url) = &self.remote {
            lines.push(format!("remote: {url} (deleted after the run)"));
        }
        lines.extend([
            String::new(),
            format!(
                "{:<26} {:>11} {:>10} {:>10} {:>10} {:>9} {:>6}  {}",
                "row",
                "ops/s",
                "p50 us",
                "p99 us",
                "vs reprise",
                "vs floor",
                "n",
                "baseline / notes"
            ),
        ]);
        for row in &self.rows {
            let floor = self
                .ratio_to_floor(row)
                .map_or_else(|| "-".to_owned(), |r| format!("{r:.2}x"));
            let notes = match row.name {
                SNAPSHOT => format!(
                    "{} B snapshot vs {} B Sonora JSON, {} tracks; encode p50 {} us",
                    extra_u64(row, "bytes"),
                    extra_u64(row, "sonora_json_bytes"),
                    extra_u64(row, "queue_tracks"),
                    row.extra
                        .get("encode_p50_us")
                        .and_then(Value::as_f64)
                        .unwrap_or(0.0),
                ),
                REPLAY => format!(
                    "{} events per recovery, p50/p99 per recovery",
                    extra_u64(row, "events")
                ),
                SONORA_JSON => format!(
                    "{}; {} B file mean",
                    ratio_baseline(row),
                    extra_u64(row, "file_bytes_mean")
                ),
                S3_PUT_FLOOR => format!(
                    "{}; {} B create-only PUTs",
                    ratio_baseline(row),
                    extra_u64(row, "object_bytes")
                ),
                REPRISE_REMOTE_64 => format!(
                    "{}; {} PUTs, {:.1} events per PUT",
                    ratio_baseline(row),
                    extra_u64(row, "puts"),
                    row.extra
                        .get("events_per_put")
                        .and_then(Value::as_f64)
                        .unwrap_or(0.0),
                ),
                CLAIM => format!(
                    "{} guilds of {} tracks, p50/p99 per claim; {} requests per claim",
                    row.samples.latencies_ns.len(),
                    extra_u64(row, "queue_tracks"),
                    row.extra
                        .get("requests_per_claim")
                        .and_then(Value::as_f64)
                        .unwrap_or(0.0),
                ),
                _ => ratio_baseline(row).to_owned(),
            };
            lines.push(format!(
                "{:<26} {:>11.1} {:>10.1} {:>10.1} {:>9.3}x {:>9} {:>6}  {}",
                row.name,
                row.samples.ops_per_s(),
                row.samples.percentile_us(0.50),
                row.samples.percentile_us(0.99),
                self.ratio_to_reprise(row),
                floor,
                row.samples.latencies_ns.len(),
                notes
            ));
        }
        lines.extend(
            [
                "",
                "legend:",
                "  latencies are per acknowledged event as the caller sees it (64 guilds: from its",
                "  append to the end of the sync that covered it); ops/s = events / wall time.",
                "  vs reprise = ops/s of the row / ops/s of its baseline, the reprise row with the",
                "  same guarantee: `reprise durable 1 guild` for rows acknowledged after stable",
                "  storage (survive a power loss), `reprise none` for rows acknowledged once the OS",
                "  has the bytes (survive a process kill: sqlite WAL NORMAL does not fsync its",
                "  commits); replay and snapshot have no peer (1 by definition). Above 1 = faster.",
                "  vs floor = ops/s / ops/s of `fdatasync floor` (the disk's limit for one stream",
                "  of durable appends), for the durable rows. n = latency samples (a row stops",
                "  early, with fewer, when it exceeds its time budget on a slow disk).",
                "  every appending row plays the same pre-generated events after the same 200",
                "  untimed warm-up events (so the Sonora file holds a realistic queue).",
            ]
            .map(str::to_owned),
        );
        if self.remote.is_some() {
            lines.extend(remote::LEGEND.map(str::to_owned));
        }
        lines
    }
}

/// An unsigned extra field of a row (0 if absent).
fn extra_u64(row: &Row, key: &str) -> u64 {
    row.extra.get(key).and_then(Value::as_u64).unwrap_or(0)
}

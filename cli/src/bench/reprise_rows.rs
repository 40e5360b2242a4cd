//! reprise's own local rows of `reprise bench`: durable appends on one guild and on 64
//! concurrent guilds (through the async runtime's group commit), appends acknowledged without
//! a sync, the replay of a long log, and the write of a snapshot of a 1,000-track queue.

use std::fs;
use std::time::{Duration, Instant};

use reprise::session::{lavalink_blob_of, lavalink_encoded, State, Track, HISTORY_MAX_DEFAULT};
use reprise::sonora::{self, Sections};
use reprise::storage::{write_atomic, FsStorage};
use reprise::{Config, Durability, Event, GuildId, Journal, Reprise};
use serde_json::json;

use super::row::{
    measure, Guarantee, Row, Samples, REPLAY, REPRISE_DURABLE_1, REPRISE_DURABLE_64, REPRISE_NONE,
    SNAPSHOT,
};
use super::side_by_side::{Sequential, SideBySide};
use super::stream::Stream;
use super::{atomic_failure, io_failure, Plan, Scratch, BENCH_GUILD, GUILDS};
use crate::Failure;
use reprise::clock::now_unix_secs;

/// The Sonora 1.2.8 file whose 1,000-track queue the `snapshot` row stores (its name).
const SNAPSHOT_FIXTURE: &str = "guild_601988503601311691_1760000296.json";
/// That file's text, built into the binary: the row measures the same state on any machine.
const SNAPSHOT_FIXTURE_JSON: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/fixtures/sonora-1.2.8/guild_601988503601311691_1760000296.json"
));

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

/// A journal in the scratch directory `name` (default configuration) whose guild
/// `BENCH_GUILD` holds the stream's warm-up events, appended at `durability` and synced: where
/// the single-journal rows start measuring.
pub(super) fn warmed_journal(
    scratch: &Scratch,
    name: &str,
    stream: &Stream,
    durability: Durability,
) -> Result<Journal, Failure> {
    let mut journal = Journal::open(scratch.sub(name)?, Config::default())?;
    for event in stream.warmup() {
        journal.append(BENCH_GUILD, event, durability)?;
    }
    journal.sync()?;
    Ok(journal)
}

/// `reprise durable 1 guild`: `Journal::append(.., Durability::Always)` per event (default
/// configuration, automatic snapshots included); acknowledged when `append` returns.
pub(super) fn reprise_durable_1_store(
    scratch: &Scratch,
    stream: &Stream,
) -> Result<Box<dyn SideBySide>, Failure> {
    let journal = warmed_journal(scratch, "reprise-durable-1", stream, Durability::BATCHED)?;
    Ok(Box::new(RepriseDurable1 { journal }))
}

/// The `reprise durable 1 guild` store.
struct RepriseDurable1 {
    journal: Journal,
}

impl Sequential for RepriseDurable1 {
    fn name(&self) -> &'static str {
        REPRISE_DURABLE_1
    }

    fn put(&mut self, event: &Event) -> Result<(), Failure> {
        self.journal
            .append(BENCH_GUILD, event, Durability::Always)?;
        Ok(())
    }

    fn finish(self: Box<Self>, _row: &mut Row) -> Result<(), Failure> {
        self.journal.close()?;
        Ok(())
    }
}

/// `reprise durable 64 guilds`: durable appends spread over 64 guilds appending concurrently
/// through the async runtime ([`Reprise`]), each with `Durability::Always`: for each slice of
/// the timed events, 64 tokio tasks (one per guild) each append the slice to their guild one
/// event at a time, awaiting every acknowledgement, so the writer's group commit is what makes
/// one fsync cover many guilds (see [`concurrent_appends`]). Every guild holds the warm-up
/// events first (appended untimed, then flushed).
pub(super) fn reprise_durable_64_store(
    scratch: &Scratch,
    stream: &Stream,
) -> Result<Box<dyn SideBySide>, Failure> {
    let dir = scratch.sub("reprise-durable-64")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| io_failure("start a tokio runtime in", &dir, e))?;
    let guilds = bench_guilds();
    let warmup: Vec<Event> = stream.warmup().to_vec();
    let handle = runtime.block_on(async {
        let config = Config::default().with_snapshot_interval(None);
        let handle = Reprise::open(&dir, config).await?;
        for guild in &guilds {
            handle
                .append_many_with(*guild, warmup.clone(), Some(Durability::None))
                .await?;
        }
        handle.flush().await?;
        Ok::<_, Failure>(handle)
    })?;
    Ok(Box::new(RepriseDurable64 {
        runtime,
        handle,
        guilds,
    }))
}

/// The `reprise durable 64 guilds` store: its runtime, handle and guilds.
struct RepriseDurable64 {
    runtime: tokio::runtime::Runtime,
    handle: Reprise,
    guilds: Vec<GuildId>,
}

impl SideBySide for RepriseDurable64 {
    fn name(&self) -> &'static str {
        REPRISE_DURABLE_64
    }

    /// Every slice runs to its end (no budget: the group commit finishes 64 guilds' slices in
    /// the time the single-stream rows take for a few events).
    fn run(&mut self, events: &[Event], _budget: Duration) -> Result<Samples, Failure> {
        self.runtime.block_on(concurrent_appends(
            &self.handle,
            self.guilds.clone(),
            events.to_vec(),
            Durability::Always,
        ))
    }

    fn finish(self: Box<Self>, row: &mut Row) -> Result<(), Failure> {
        let RepriseDurable64 {
            runtime, handle, ..
        } = *self;
        runtime.block_on(handle.shutdown())?;
        row.extra.insert("guilds".into(), json!(GUILDS));
        Ok(())
    }
}

/// The guild ids of the 64-guild rows (realistic, distinct snowflakes).
pub(super) fn bench_guilds() -> Vec<GuildId> {
    (0..GUILDS as u64)
        .map(|i| GuildId(BENCH_GUILD.0 + i * 4_194_304_007))
        .collect()
}

/// The timed part of the 64-guild rows: one tokio task per guild of `guilds` appends every
/// event of `measured` at `durability`, one at a time, awaiting each acknowledgement. Each
/// event's latency runs from its `append` call to its acknowledgement; the wall time is that
/// of the whole set of tasks.
pub(super) async fn concurrent_appends(
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
pub(super) fn reprise_none_row(
    scratch: &Scratch,
    stream: &Stream,
    plan: &Plan,
) -> Result<Row, Failure> {
    let mut journal = warmed_journal(scratch, "reprise-none", stream, Durability::None)?;
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

/// `replay`: a guild log of `replay_events` events (no snapshots, so recovery folds them
/// all), closed; each timed run is `Journal::open_read_only` + `state(guild)`. `ops_per_s` is
/// events folded per second over all runs; p50/p99 are of the whole recovery of one run.
pub(super) fn replay_row(scratch: &Scratch, stream: &Stream, plan: &Plan) -> Result<Row, Failure> {
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
pub(super) fn snapshot_state() -> Result<(State, String), Failure> {
    let file = sonora::parse(SNAPSHOT_FIXTURE_JSON)
        .map_err(|e| Failure::new(2, format!("the built-in Sonora file does not parse: {e}")))?;
    let state = sonora::to_state(&file, HISTORY_MAX_DEFAULT)
        .map_err(|e| Failure::new(2, format!("the built-in Sonora file is not a state: {e}")))?;
    Ok((
        state,
        format!("Sonora 1.2.8 file {SNAPSHOT_FIXTURE} (built in)"),
    ))
}

/// Every track of `state`'s queue: current, upcoming and history.
fn queue_tracks(state: &State) -> impl Iterator<Item = &Track> {
    let queue = &state.queue;
    queue
        .current
        .iter()
        .chain(&queue.upcoming)
        .chain(&queue.history)
        .map(|entry| &entry.track)
}

/// `state` with the blobs Lavalink v4 (lavaplayer 2.x) sends in place of the Sonora file's
/// random ones: each track's Lavalink version-3 blob of its own fields, and the fields a bot
/// keeps from Lavalink's track object that a Sonora file has no place for (the source, and a
/// YouTube track's artwork URL), so that the blob repeats the track.
fn realistic_state(state: &State) -> State {
    let mut realistic = state.clone();
    let queue = &mut realistic.queue;
    for entry in queue
        .current
        .iter_mut()
        .chain(&mut queue.upcoming)
        .chain(&mut queue.history)
    {
        let mut fields = entry.track.fields();
        let blob = lavalink_blob_of(&fields, 3, 0);
        if blob.source == "youtube" {
            fields.artwork_url = Some(format!(
                "https://i.ytimg.com/vi/{}/mqdefault.jpg",
                blob.identifier
            ));
        }
        fields.source = Some(blob.source);
        fields.encoded = lavalink_encoded(&fields, 3, 0);
        entry.track = Track::from(fields);
    }
    realistic
}

/// `snapshot`: a guild holding a 1,000-track queue (see [`snapshot_state`]); each timed run
/// encodes a snapshot file (`format::snapshot::encode`: bincode + zstd + header) and writes it
/// with [`write_atomic`], as `Journal::snapshot_now` does. `bytes` is the snapshot file,
/// `sonora_json_bytes` the Sonora JSON file of the same state, `blob_bytes` the raw bytes of
/// its (random) blobs alone, `encode_p50_us` the median of the encoding part of a run (the
/// rest is the file's write and fsyncs). `realistic_bytes` and `realistic_sonora_json_bytes`
/// are the snapshot file and the Sonora JSON of the same queue with the blobs Lavalink sends
/// (see [`realistic_state`]; measured once, untimed).
pub(super) fn snapshot_row(
    scratch: &Scratch,
    _stream: &Stream,
    plan: &Plan,
) -> Result<Row, Failure> {
    let (state, source) = snapshot_state()?;
    let root = scratch.sub("snapshot")?;
    let path = reprise::layout::snapshot_path(&root, BENCH_GUILD, 1);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| io_failure("create directory", parent, e))?;
    }
    let sonora_json_bytes = sonora::to_json(&sonora::from_state(
        BENCH_GUILD.0,
        now_unix_secs(),
        &state,
        Sections::ALL,
    ))
    .len();
    let blob_bytes: usize = queue_tracks(&state)
        .filter_map(|t| t.encoded_bytes().map(<[u8]>::len))
        .sum();
    // The same queue with the blobs Lavalink sends (untimed: a size, not a speed).
    let realistic = realistic_state(&state);
    let realistic_sonora_json_bytes = sonora::to_json(&sonora::from_state(
        BENCH_GUILD.0,
        now_unix_secs(),
        &realistic,
        Sections::ALL,
    ))
    .len();
    let realistic_bytes = reprise::format::snapshot::encode(BENCH_GUILD.0, 1, 0, &realistic, None)
        .map_err(|e| io_failure("encode snapshot", &path, e))?
        .len();
    let mut bytes = 0usize;
    let mut encode = Samples::with_capacity(plan.snapshot_runs);
    let samples = measure(&vec![(); plan.snapshot_runs], plan.row_budget, |()| {
        let created = now_unix_secs().saturating_mul(1_000);
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
    row.extra.insert("blob_bytes".into(), json!(blob_bytes));
    row.extra
        .insert("realistic_bytes".into(), json!(realistic_bytes));
    row.extra.insert(
        "realistic_sonora_json_bytes".into(),
        json!(realistic_sonora_json_bytes),
    );
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

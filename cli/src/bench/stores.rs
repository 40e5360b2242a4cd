//! The embedded Rust stores a bot author would pick instead of reprise, as `reprise bench`
//! rows: redb (a copy-on-write B-tree, `Durability::Immediate`) and fjall 3 (an LSM tree,
//! `PersistMode::SyncData` after each write), each at 1 guild and at 64 guilds appending
//! concurrently. Their crates are dependencies of the CLI only: a bot depending on the
//! library builds neither.
//!
//! Both store one key per event, `(guild, seq)` big-endian (16 bytes), the value the event's
//! JSON text serialized inside the timed call (as the SQLite rows do), and acknowledge once
//! their own durable commit returned. At 64 guilds, 64 OS threads (one per guild) each write
//! their guild's events one at a time into one shared database, as a bot's tasks would; an
//! event's latency runs from its write call to its durable return.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reprise::Event;
use serde_json::json;

use super::row::{measure, Guarantee, Row, Samples, FJALL_1, FJALL_64, REDB_1, REDB_64};
use super::stream::Stream;
use super::{Plan, Scratch, BENCH_GUILD, GUILDS};
use crate::Failure;

/// The redb table: `(guild, seq)` to the event's JSON text.
const REDB_EVENTS: redb::TableDefinition<'static, (u64, u64), &str> =
    redb::TableDefinition::new("events");

/// The key of an event: guild then seq, big-endian, so a guild's events sort in seq order.
fn key(guild: u64, seq: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&guild.to_be_bytes());
    k[8..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// A failure of a peer store (exit code 4).
fn store_failure(store: &str, e: impl std::fmt::Display) -> Failure {
    Failure::new(4, format!("{store}: {e}"))
}

/// One durable redb write transaction inserting one event.
fn redb_put(db: &redb::Database, guild: u64, seq: u64, event: &Event) -> Result<(), Failure> {
    let fail = |e: &dyn std::fmt::Display| store_failure("redb", e);
    let mut tx = db.begin_write().map_err(|e| fail(&e))?;
    tx.set_durability(redb::Durability::Immediate)
        .map_err(|e| fail(&e))?;
    {
        let mut table = tx.open_table(REDB_EVENTS).map_err(|e| fail(&e))?;
        table
            .insert((guild, seq), event.to_json().as_str())
            .map_err(|e| fail(&e))?;
    }
    tx.commit().map_err(|e| fail(&e))
}

/// One fjall insert, then `persist(SyncData)`.
fn fjall_put(
    db: &fjall::Database,
    events: &fjall::Keyspace,
    guild: u64,
    seq: u64,
    event: &Event,
) -> Result<(), Failure> {
    events
        .insert(key(guild, seq), event.to_json())
        .map_err(|e| store_failure("fjall", e))?;
    db.persist(fjall::PersistMode::SyncData)
        .map_err(|e| store_failure("fjall", e))
}

/// Opens a fjall database and its `events` keyspace in `dir`.
fn fjall_open(dir: &Path) -> Result<(fjall::Database, fjall::Keyspace), Failure> {
    let db = fjall::Database::builder(dir)
        .open()
        .map_err(|e| store_failure("fjall", e))?;
    let events = db
        .keyspace("events", fjall::KeyspaceCreateOptions::default)
        .map_err(|e| store_failure("fjall", e))?;
    Ok((db, events))
}

/// Opens a redb database file in `dir`.
fn redb_open(dir: &Path) -> Result<redb::Database, Failure> {
    redb::Database::create(dir.join("events.redb")).map_err(|e| store_failure("redb", e))
}

/// `redb 1 guild`: one durable write transaction per event, sequentially.
pub(super) fn redb_1_row(scratch: &Scratch, stream: &Stream, plan: &Plan) -> Result<Row, Failure> {
    let db = redb_open(&scratch.sub("redb-1")?)?;
    let guild = BENCH_GUILD.0;
    let mut seq = 0;
    let mut put = |event: &Event| {
        seq += 1;
        redb_put(&db, guild, seq, event)
    };
    for event in stream.warmup() {
        put(event)?;
    }
    let samples = measure(stream.measured(plan.durable_events), plan.row_budget, put)?;
    Ok(Row::new(REDB_1, Guarantee::PowerLoss, samples))
}

/// `fjall 1 guild`: one insert + `persist(SyncData)` per event, sequentially.
pub(super) fn fjall_1_row(scratch: &Scratch, stream: &Stream, plan: &Plan) -> Result<Row, Failure> {
    let (db, events) = fjall_open(&scratch.sub("fjall-1")?)?;
    let guild = BENCH_GUILD.0;
    let mut seq = 0;
    let mut put = |event: &Event| {
        seq += 1;
        fjall_put(&db, &events, guild, seq, event)
    };
    for event in stream.warmup() {
        put(event)?;
    }
    let samples = measure(stream.measured(plan.durable_events), plan.row_budget, put)?;
    Ok(Row::new(FJALL_1, Guarantee::PowerLoss, samples))
}

/// `redb 64 guilds`: see [`concurrent_puts`].
pub(super) fn redb_64_row(scratch: &Scratch, stream: &Stream, plan: &Plan) -> Result<Row, Failure> {
    let db = Arc::new(redb_open(&scratch.sub("redb-64")?)?);
    let samples = concurrent_puts(stream, plan, move |guild, seq, event| {
        redb_put(&db, guild, seq, event)
    })?;
    let mut row = Row::new(REDB_64, Guarantee::PowerLoss, samples);
    row.extra.insert("guilds".into(), json!(GUILDS));
    Ok(row)
}

/// `fjall 64 guilds`: see [`concurrent_puts`].
pub(super) fn fjall_64_row(
    scratch: &Scratch,
    stream: &Stream,
    plan: &Plan,
) -> Result<Row, Failure> {
    let (db, events) = fjall_open(&scratch.sub("fjall-64")?)?;
    let samples = concurrent_puts(stream, plan, move |guild, seq, event| {
        fjall_put(&db, &events, guild, seq, event)
    })?;
    let mut row = Row::new(FJALL_64, Guarantee::PowerLoss, samples);
    row.extra.insert("guilds".into(), json!(GUILDS));
    Ok(row)
}

/// The 64-guild rows of the peer stores: 64 threads, one per guild of
/// [`bench_guilds`](super::reprise_rows::bench_guilds), each writes the warm-up events
/// (untimed, all threads together) and then the same `guild_events / 64` measured events as
/// `reprise durable 64 guilds`, one `put` at a time, until they run out or the row's time
/// budget has passed. The wall time is that of the timed part of all threads.
fn concurrent_puts(
    stream: &Stream,
    plan: &Plan,
    put: impl Fn(u64, u64, &Event) -> Result<(), Failure> + Sync,
) -> Result<Samples, Failure> {
    let guilds = super::reprise_rows::bench_guilds();
    let warmup = stream.warmup();
    let measured = stream.measured(plan.guild_events / GUILDS);
    let budget = plan.row_budget;
    let ready = std::sync::Barrier::new(guilds.len() + 1);
    let (put, ready) = (&put, &ready);
    let (latencies, start) = std::thread::scope(|scope| {
        let workers: Vec<_> = guilds
            .iter()
            .map(|guild| {
                let guild = guild.0;
                scope.spawn(move || -> Result<Vec<Duration>, Failure> {
                    let mut seq = 0;
                    let warmed = warmup.iter().try_for_each(|event| {
                        seq += 1;
                        put(guild, seq, event)
                    });
                    ready.wait();
                    warmed?;
                    let start = Instant::now();
                    let mut latencies = Vec::with_capacity(measured.len());
                    for event in measured {
                        seq += 1;
                        let t = Instant::now();
                        put(guild, seq, event)?;
                        let end = Instant::now();
                        latencies.push(end.duration_since(t));
                        if end.duration_since(start) >= budget {
                            break;
                        }
                    }
                    Ok(latencies)
                })
            })
            .collect();
        ready.wait();
        let start = Instant::now();
        let latencies: Vec<_> = workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect();
        (latencies, start)
    });
    let wall = start.elapsed();
    let mut samples = Samples::with_capacity(measured.len() * GUILDS);
    let mut ops = 0;
    for thread in latencies {
        for latency in thread? {
            samples.push(latency);
            ops += 1;
        }
    }
    Ok(samples.finish(ops, wall))
}

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
use std::time::{Duration, Instant};

use reprise::Event;
use serde_json::json;

use super::row::{Row, Samples, FJALL_1, FJALL_64, REDB_1, REDB_64};
use super::side_by_side::{Sequential, SideBySide};
use super::stream::Stream;
use super::{Scratch, BENCH_GUILD, GUILDS};
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

/// A fjall database and its `events` keyspace in `dir`, as a durable `put` (guild, seq, event).
fn fjall_putter(dir: &Path) -> Result<impl Put, Failure> {
    let db = fjall::Database::builder(dir)
        .open()
        .map_err(|e| store_failure("fjall", e))?;
    let events = db
        .keyspace("events", fjall::KeyspaceCreateOptions::default)
        .map_err(|e| store_failure("fjall", e))?;
    Ok(move |guild, seq, event: &Event| fjall_put(&db, &events, guild, seq, event))
}

/// A redb database file in `dir`, as a durable `put` (guild, seq, event).
fn redb_putter(dir: &Path) -> Result<impl Put, Failure> {
    let db =
        redb::Database::create(dir.join("events.redb")).map_err(|e| store_failure("redb", e))?;
    Ok(move |guild, seq, event: &Event| redb_put(&db, guild, seq, event))
}

/// A peer store's durable write of one event of a guild: `(guild, seq, event)`.
trait Put: Fn(u64, u64, &Event) -> Result<(), Failure> + Send + Sync + 'static {}

impl<F: Fn(u64, u64, &Event) -> Result<(), Failure> + Send + Sync + 'static> Put for F {}

/// `redb 1 guild`: one durable write transaction per event, sequentially.
pub(super) fn redb_1_store(
    scratch: &Scratch,
    stream: &Stream,
) -> Result<Box<dyn SideBySide>, Failure> {
    let put = redb_putter(&scratch.sub("redb-1")?)?;
    Ok(Box::new(Single::new(REDB_1, put).warmed_up(stream)?))
}

/// `fjall 1 guild`: one insert + `persist(SyncData)` per event, sequentially.
pub(super) fn fjall_1_store(
    scratch: &Scratch,
    stream: &Stream,
) -> Result<Box<dyn SideBySide>, Failure> {
    let put = fjall_putter(&scratch.sub("fjall-1")?)?;
    Ok(Box::new(Single::new(FJALL_1, put).warmed_up(stream)?))
}

/// The 1-guild rows of the peer stores: `put` (guild, seq, event) once per event of
/// [`BENCH_GUILD`], sequentially.
struct Single<P> {
    name: &'static str,
    put: P,
    /// The guild's last seq.
    seq: u64,
}

impl<P> Single<P> {
    fn new(name: &'static str, put: P) -> Self {
        Single { name, put, seq: 0 }
    }
}

impl<P: Put> Sequential for Single<P> {
    fn name(&self) -> &'static str {
        self.name
    }

    fn put(&mut self, event: &Event) -> Result<(), Failure> {
        self.seq += 1;
        (self.put)(BENCH_GUILD.0, self.seq, event)
    }
}

/// `redb 64 guilds`: see [`Concurrent64`].
pub(super) fn redb_64_store(
    scratch: &Scratch,
    stream: &Stream,
) -> Result<Box<dyn SideBySide>, Failure> {
    let put = redb_putter(&scratch.sub("redb-64")?)?;
    Ok(Box::new(Concurrent64::warmed(REDB_64, put, stream)?))
}

/// `fjall 64 guilds`: see [`Concurrent64`].
pub(super) fn fjall_64_store(
    scratch: &Scratch,
    stream: &Stream,
) -> Result<Box<dyn SideBySide>, Failure> {
    let put = fjall_putter(&scratch.sub("fjall-64")?)?;
    Ok(Box::new(Concurrent64::warmed(FJALL_64, put, stream)?))
}

/// The 64-guild rows of the peer stores: 64 threads, one per guild of
/// [`bench_guilds`](super::reprise_rows::bench_guilds), each writes its guild's events one
/// `put` at a time into one shared database, as a bot's tasks would. The warm-up events are
/// written that way untimed; then each slice of the timed events (the same `guild_events / 64`
/// per guild as `reprise durable 64 guilds`) is written by every guild's thread, started
/// together, until the events run out or the time budget has passed. A slice's wall time is
/// that of the timed part of all its threads.
struct Concurrent64<P> {
    name: &'static str,
    put: P,
    /// Each guild's last seq.
    seqs: Vec<u64>,
}

impl<P: Put> Concurrent64<P> {
    /// The store after every guild's warm-up events.
    fn warmed(name: &'static str, put: P, stream: &Stream) -> Result<Self, Failure> {
        let mut store = Concurrent64 {
            name,
            put,
            seqs: vec![0; GUILDS],
        };
        store.concurrently(stream.warmup(), Duration::MAX)?;
        Ok(store)
    }

    /// Every guild's thread writes `events` (see the type's docs).
    fn concurrently(&mut self, events: &[Event], budget: Duration) -> Result<Samples, Failure> {
        let guilds = super::reprise_rows::bench_guilds();
        let ready = std::sync::Barrier::new(guilds.len() + 1);
        let (put, ready) = (&self.put, &ready);
        let (threads, start) = std::thread::scope(|scope| {
            let workers: Vec<_> = guilds
                .iter()
                .zip(&self.seqs)
                .map(|(guild, seq)| {
                    let (guild, mut seq) = (guild.0, *seq);
                    scope.spawn(move || -> (u64, Result<Vec<Duration>, Failure>) {
                        ready.wait();
                        let start = Instant::now();
                        let mut latencies = Vec::with_capacity(events.len());
                        for event in events {
                            let t = Instant::now();
                            if let Err(e) = put(guild, seq + 1, event) {
                                return (seq, Err(e));
                            }
                            seq += 1;
                            let end = Instant::now();
                            latencies.push(end.duration_since(t));
                            if end.duration_since(start) >= budget {
                                break;
                            }
                        }
                        (seq, Ok(latencies))
                    })
                })
                .collect();
            ready.wait();
            let start = Instant::now();
            let threads: Vec<_> = workers
                .into_iter()
                .map(|w| {
                    w.join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                })
                .collect();
            (threads, start)
        });
        let wall = start.elapsed();
        let mut samples = Samples::with_capacity(events.len() * GUILDS);
        let mut ops = 0;
        for ((seq, latencies), last) in threads.into_iter().zip(&mut self.seqs) {
            *last = seq;
            for latency in latencies? {
                samples.push(latency);
                ops += 1;
            }
        }
        Ok(samples.finish(ops, wall))
    }
}

impl<P: Put> SideBySide for Concurrent64<P> {
    fn name(&self) -> &'static str {
        self.name
    }

    fn run(&mut self, events: &[Event], budget: Duration) -> Result<Samples, Failure> {
        self.concurrently(events, budget)
    }

    fn finish(self: Box<Self>, row: &mut Row) -> Result<(), Failure> {
        row.extra.insert("guilds".into(), json!(GUILDS));
        Ok(())
    }
}

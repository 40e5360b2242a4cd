//! The async handle for bots: [`Reprise`], an actor that owns the journal on its own thread.
//!
//! ```text
//!  bot tasks ──append/state/...──▶ bounded mpsc ──▶ writer thread (owns Journal)
//!      ▲                                              │  appends, one commit-log fsync per group
//!      └──────────── oneshot replies ◀────────────────┤
//!                                                     └──▶ snapshot thread (seal fsync, encode,
//!                                                          write_atomic) ──▶ results back
//! ```
//!
//! - No file I/O ever runs on the caller's runtime: the writer is a dedicated OS thread (with a
//!   private single-threaded tokio runtime for its timers), snapshots another.
//! - **Group commit**: the writer takes every command that is already waiting, appends all of
//!   them, and makes them durable with one fsync of the shared commit log. With no contention an
//!   `Always` append is synced at once (no added latency); under load, concurrent appends share
//!   fsyncs. `Batched` appends wait at most their [`crate::BatchPolicy`].
//! - **Snapshots** are written by the snapshot thread from a copy of the state, so they never
//!   block appends to the same guild. Policy: every [`Config::snapshot_every_events`] events or
//!   [`Config::snapshot_every_bytes`] bytes of log per guild, every
//!   [`Config::snapshot_interval`] for guilds with new events (idle guilds are never
//!   rewritten), on demand ([`Reprise::snapshot_now`], [`Reprise::snapshot_before`]), and at
//!   shutdown.
//! - The channel is bounded ([`Config::channel_capacity`]): when the writer falls behind,
//!   callers wait in `send` (back pressure) instead of growing a queue without limit.
//! - **Remote** (`Reprise::open_with_remote`, feature `remote`): a shipping task on the writer's runtime
//!   uploads every guild's durable events at [`Config::ship_interval`], all guilds of a round
//!   in one object, and answers [`Durability::Remote`] appends once stored; see
//!   `shipper.rs` and DESIGN.md ("Remote").
//!
//! The files of this module:
//!
//! - `mod.rs`: the handle ([`Reprise`], [`Subscription`], `RemoteOptions`) and the commands
//!   it sends to the writer thread.
//! - `actor.rs`: the writer thread, its event loop and how it answers each command.
//! - `maintenance.rs`: the rest of the journal's API (restores, checkpoints and rollbacks,
//!   verify, inspect, stats, cleanup, Sonora import and export) as commands, paged over guilds.
//! - `events.rs`: [`Reprise::events`], a guild's logged events as a stream.
//! - `commit.rs`: appends and group commit.
//! - `snapshots.rs`: background snapshots (policy, scheduling, results).
//! - `shipping.rs`: the actor's side of the remote: reports to the shipper, fencing, claims.
//! - `shipper.rs`: the shipping task that uploads to the object store.
//! - `no_remote.rs`: without the `remote` feature, what stands in for `shipping.rs` (nothing
//!   ships; its types have no values).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;
#[cfg(feature = "remote")]
use std::time::Duration;
use std::time::Instant;

use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::config::{Config, Durability};
use crate::error::{Error, Result};
use crate::ids::{GuildId, Seq};
use crate::journal::{GuildState, LoggedEvent};
use crate::lavalink::{self, Restore};
#[cfg(feature = "remote")]
use crate::remote::{Claimed, Remote};
use crate::session::Event;
use crate::sonora::Sections;
use crate::storage::{FsStorage, Storage};
use actor::writer_main;
pub use events::EventStream;
pub use maintenance::PAGE_TIME_MAX;
pub use ordered::Ordered;
#[cfg(feature = "remote")]
use shipping::no_remote;
#[cfg(not(feature = "remote"))]
use shipping::RemoteOptions;

mod actor;
mod commit;
mod events;
mod maintenance;
mod ordered;
#[cfg(feature = "remote")]
mod shipper;
#[cfg(feature = "remote")]
mod shipping;
#[cfg(not(feature = "remote"))]
#[path = "no_remote.rs"]
mod shipping;
mod snapshots;

/// A cheap, cloneable handle to a journal owned by a writer thread. See the module docs.
///
/// Dropping every handle shuts the writer down as [`Reprise::shutdown`] does (without waiting
/// for it); call `shutdown().await` to know that everything was flushed. A [`Reprise::open`] of
/// the same directory in this process right after the last handle was dropped waits for that
/// shutdown to finish (it holds the directory's lock until then); while a handle is alive, it
/// fails with [`Error::Locked`] naming this process.
#[derive(Clone, Debug)]
pub struct Reprise {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    tx: mpsc::Sender<Command>,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// The store, for listing guilds (`claim_shard`); the writer has its own clone.
    #[cfg(feature = "remote")]
    remote: Option<Remote>,
}

/// A stream of the events applied to one guild, in order, as they are acknowledged.
#[derive(Debug)]
pub struct Subscription {
    rx: broadcast::Receiver<Arc<LoggedEvent>>,
}

/// Why [`Subscription::recv`] returned no event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SubscriptionError {
    /// The subscriber fell behind by this many events, which were skipped.
    #[error("the subscriber fell behind and skipped {0} events")]
    Lagged(u64),
    /// The runtime shut down.
    #[error("the runtime shut down")]
    Closed,
}

impl Subscription {
    /// The next applied event.
    ///
    /// # Errors
    /// [`SubscriptionError::Lagged`] when events were skipped (the next call continues after
    /// them), [`SubscriptionError::Closed`] after shutdown.
    ///
    /// # Cancel safety
    /// Cancel safe: a dropped `recv` loses no event.
    pub async fn recv(&mut self) -> Result<Arc<LoggedEvent>, SubscriptionError> {
        self.rx.recv().await.map_err(|e| match e {
            broadcast::error::RecvError::Lagged(n) => SubscriptionError::Lagged(n),
            broadcast::error::RecvError::Closed => SubscriptionError::Closed,
        })
    }
}

type Reply<T> = oneshot::Sender<Result<T>>;

/// The object store a runtime ships to, and the owner name it claims guilds under.
#[cfg(feature = "remote")]
#[derive(Clone, Debug)]
pub struct RemoteOptions {
    /// The store and prefix.
    pub remote: Remote,
    /// The owner name written into claims (a host or pod name).
    pub owner: String,
}

enum Command {
    Append {
        guild: GuildId,
        events: Vec<Event>,
        durability: Option<Durability>,
        /// Answered once the events are acknowledged at their durability (durable, for an
        /// ordered append).
        reply: Reply<Vec<Seq>>,
        /// For [`Reprise::append_ordered`]: answered as soon as the events have their seqs.
        ordered: Option<Reply<Vec<Seq>>>,
    },
    DurableWatch {
        guild: GuildId,
        reply: Reply<watch::Receiver<Seq>>,
    },
    SetDurability {
        guild: GuildId,
        durability: Option<Durability>,
    },
    State {
        guild: GuildId,
        at: Option<Seq>,
        reply: Reply<GuildState>,
    },
    Subscribe {
        guild: GuildId,
        reply: Reply<broadcast::Receiver<Arc<LoggedEvent>>>,
    },
    Snapshot {
        guild: GuildId,
        reply: Reply<Option<Seq>>,
    },
    Flush {
        reply: Reply<()>,
    },
    Shutdown {
        reply: Reply<()>,
    },
    /// Work on the journal itself (restores, checkpoints, verify, ...; `maintenance.rs`),
    /// run once the snapshots in flight that `wait` names are written. Dropping it unrun
    /// drops its reply: the caller sees [`Error::Closed`].
    Work {
        wait: maintenance::WaitFor,
        work: maintenance::Work,
    },
    #[cfg(feature = "remote")]
    Claim {
        guild: GuildId,
        reply: Reply<Claimed>,
    },
    #[cfg(feature = "remote")]
    ShipNow {
        reply: Reply<()>,
    },
}

impl Reprise {
    /// Opens (creating if needed) the journal in `dir` and starts its writer thread.
    ///
    /// # Errors
    /// As [`Journal::open`](crate::Journal::open) ([`Error::Locked`] when another process owns
    /// the directory).
    ///
    /// # Cancel safety
    /// If the future is dropped before it completes, the writer thread still starts and stops
    /// again as soon as it sees that nobody holds a handle.
    pub async fn open(dir: impl Into<PathBuf>, config: Config) -> Result<Reprise> {
        Reprise::open_inner(dir.into(), config, None, Arc::new(FsStorage)).await
    }

    /// [`Reprise::open`] with shipping to an object store (feature `remote`): every guild's durable events are
    /// uploaded at [`Config::ship_interval`] (all guilds of a round in one object),
    /// [`Durability::Remote`] appends are acknowledged once stored, and guilds can be taken
    /// over from other machines with [`Reprise::claim`]. A guild that a newer owner claimed
    /// fails every append with [`Error::Fenced`] from the moment this process has seen it.
    ///
    /// # Errors
    /// As [`Reprise::open`]. The store is not contacted until the first round, so an
    /// unreachable store does not stop the open (nor local appends).
    ///
    /// # Cancel safety
    /// As [`Reprise::open`].
    #[cfg(feature = "remote")]
    pub async fn open_with_remote(
        dir: impl Into<PathBuf>,
        config: Config,
        remote: RemoteOptions,
    ) -> Result<Reprise> {
        Reprise::open_inner(dir.into(), config, Some(remote), Arc::new(FsStorage)).await
    }

    async fn open_inner(
        dir: PathBuf,
        config: Config,
        remote: Option<RemoteOptions>,
        storage: Arc<dyn Storage>,
    ) -> Result<Reprise> {
        if let Some(mut exited) = writer_closing(&dir) {
            // Every handle of an earlier runtime on this directory was dropped and its writer
            // is still shutting down (it holds the lock): wait for it, as `shutdown().await`
            // would have. `changed` fails once the writer thread has ended.
            while exited.changed().await.is_ok() {}
        }
        let (tx, rx) = mpsc::channel(config.channel_capacity.max(1));
        let (ready_tx, ready_rx) = oneshot::channel();
        let (exited_tx, exited) = watch::channel(());
        #[cfg(feature = "remote")]
        let listing = remote.as_ref().map(|r| r.remote.clone());
        let writer_dir = dir.clone();
        let writer = std::thread::Builder::new()
            .name("reprise-writer".into())
            .spawn(move || {
                writer_main(writer_dir, config, remote, storage, rx, ready_tx);
                // The journal (and its lock) is gone: a reopen waiting for it goes on.
                drop(exited_tx);
            })
            .map_err(|e| Error::io("spawn the writer thread for", PathBuf::new(), e))?;
        match ready_rx.await {
            Ok(Ok(())) => {
                let inner = Arc::new(Inner {
                    tx,
                    writer: Mutex::new(Some(writer)),
                    #[cfg(feature = "remote")]
                    remote: listing,
                });
                writer_opened(&dir, &inner, exited);
                Ok(Reprise { inner })
            }
            Ok(Err(e)) => {
                let _ = join_off_runtime(writer).await;
                Err(e)
            }
            Err(_) => {
                let _ = join_off_runtime(writer).await;
                Err(Error::Closed)
            }
        }
    }

    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T> {
        let (reply, rx) = oneshot::channel();
        self.inner
            .tx
            .send(make(reply))
            .await
            .map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)?
    }

    /// Appends `event` to `guild` at the guild's durability (or [`Config::durability`]) and
    /// returns its sequence number once it is acknowledged at that durability.
    ///
    /// # Errors
    /// [`Error::InvalidEvent`] (nothing written), I/O and recovery errors, [`Error::Closed`].
    ///
    /// # Cancel safety
    /// The event is either fully in the journal or fully out, never half-written. Dropping the
    /// future before the writer received the command leaves it out; dropping it later does not
    /// take it back: the writer appends it (and makes it durable) all the same, only the
    /// acknowledgement is lost.
    pub async fn append(&self, guild: GuildId, event: Event) -> Result<Seq> {
        self.append_many_with(guild, vec![event], None)
            .await
            .and_then(|seqs| seqs.first().copied().ok_or(Error::Closed))
    }

    /// [`Reprise::append`] at an explicit durability.
    ///
    /// # Errors
    /// As [`Reprise::append`].
    ///
    /// # Cancel safety
    /// As [`Reprise::append`].
    pub async fn append_with(
        &self,
        guild: GuildId,
        event: Event,
        durability: Durability,
    ) -> Result<Seq> {
        self.append_many_with(guild, vec![event], Some(durability))
            .await
            .and_then(|seqs| seqs.first().copied().ok_or(Error::Closed))
    }

    /// Appends a batch to one guild, all or nothing: every event is validated (each against the
    /// state the previous ones produce) before any is written. Returns their sequence numbers.
    ///
    /// # Errors
    /// As [`Reprise::append`]; an invalid event rejects the whole batch.
    ///
    /// # Cancel safety
    /// As [`Reprise::append`], for the batch as a whole.
    pub async fn append_many(&self, guild: GuildId, events: Vec<Event>) -> Result<Vec<Seq>> {
        self.append_many_with(guild, events, None).await
    }

    /// [`Reprise::append_many`] at an explicit durability (`None`: the guild's).
    ///
    /// # Errors
    /// As [`Reprise::append_many`].
    ///
    /// # Cancel safety
    /// As [`Reprise::append_many`].
    pub async fn append_many_with(
        &self,
        guild: GuildId,
        events: Vec<Event>,
        durability: Option<Durability>,
    ) -> Result<Vec<Seq>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let started = Instant::now();
        let result = self
            .call(|reply| Command::Append {
                guild,
                events,
                durability,
                reply,
                ordered: None,
            })
            .await;
        metrics::histogram!(crate::telemetry::APPEND_LATENCY_SECONDS)
            .record(started.elapsed().as_secs_f64());
        result
    }

    /// Sets the durability of `append` for one guild (`None`: back to [`Config::durability`]).
    ///
    /// # Errors
    /// [`Error::Closed`].
    ///
    /// # Cancel safety
    /// Cancel safe: the setting applies once the writer receives it, or not at all.
    pub async fn set_durability(
        &self,
        guild: GuildId,
        durability: Option<Durability>,
    ) -> Result<()> {
        self.inner
            .tx
            .send(Command::SetDurability { guild, durability })
            .await
            .map_err(|_| Error::Closed)
    }

    /// The guild's current state (a copy; the writer recovers the guild first if needed).
    ///
    /// # Errors
    /// Recovery errors, [`Error::Closed`].
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn state(&self, guild: GuildId) -> Result<GuildState> {
        self.call(|reply| Command::State {
            guild,
            at: None,
            reply,
        })
        .await
    }

    /// The guild's state as of `seq` (see [`Journal::state_at`](crate::Journal::state_at)).
    ///
    /// # Errors
    /// As [`Journal::state_at`](crate::Journal::state_at), [`Error::Closed`].
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn state_at(&self, guild: GuildId, seq: Seq) -> Result<GuildState> {
        self.call(|reply| Command::State {
            guild,
            at: Some(seq),
            reply,
        })
        .await
    }

    /// What restores `guild`'s player on Lavalink v4 after a restart, at `now_unix_ms` (the
    /// position is extrapolated to it), with the sections in `only` ([`Sections::ALL`] for
    /// everything): the `PATCH /v4/sessions/{sessionId}/players/{guildId}` body
    /// ([`Restore::patch`]) and the client-side queue and autoplay settings. The same plan as
    /// [`Journal::lavalink_restore`](crate::Journal::lavalink_restore) and `reprise lavalink`
    /// (see [`crate::lavalink`]), from the guild's current state.
    ///
    /// # Errors
    /// As [`Reprise::state`].
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn lavalink_restore(
        &self,
        guild: GuildId,
        now_unix_ms: u64,
        only: Sections,
    ) -> Result<Restore> {
        let state = self.state(guild).await?;
        Ok(lavalink::plan(&state, now_unix_ms, only))
    }

    /// Subscribes to the events applied to `guild` from now on (for a dashboard, or to feed
    /// another process), delivered once acknowledged, in sequence order.
    ///
    /// # Errors
    /// [`Error::Closed`].
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn subscribe(&self, guild: GuildId) -> Result<Subscription> {
        let rx = self
            .call(|reply| Command::Subscribe { guild, reply })
            .await?;
        Ok(Subscription { rx })
    }

    /// Writes a snapshot of `guild` now (off the append path) and resolves once it is durable,
    /// with its sequence number (`None` for a guild without events).
    ///
    /// # Errors
    /// I/O errors, [`Error::Closed`].
    ///
    /// # Cancel safety
    /// Dropping the future does not cancel the snapshot.
    pub async fn snapshot_now(&self, guild: GuildId) -> Result<Option<Seq>> {
        self.call(|reply| Command::Snapshot { guild, reply }).await
    }

    /// Snapshots `guild` before a risky operation (a bulk import, a restore, a deploy step), so
    /// that the state right before it is a snapshot of its own. The same as
    /// [`Reprise::snapshot_now`], named for intent.
    ///
    /// # Errors
    /// As [`Reprise::snapshot_now`].
    ///
    /// # Cancel safety
    /// As [`Reprise::snapshot_now`].
    pub async fn snapshot_before(&self, guild: GuildId) -> Result<Option<Seq>> {
        self.snapshot_now(guild).await
    }

    /// Makes every append received so far durable now (one group commit), whatever its
    /// durability.
    ///
    /// # Errors
    /// The fsync error, [`Error::Closed`].
    ///
    /// # Cancel safety
    /// Dropping the future does not cancel the flush.
    pub async fn flush(&self) -> Result<()> {
        self.call(|reply| Command::Flush { reply }).await
    }

    /// Makes this directory the owner of `guild` in the remote (see
    /// [`crate::remote::Remote::claim`]): fences the previous owner, downloads and verifies
    /// the guild's history, recovers it, and continues its sequence. A directory holding an
    /// older owner's copy of the guild (this runtime was fenced) has the copy set aside
    /// ([`Claimed::superseded`]); one holding the newest epoch already does nothing. A
    /// snapshot of the guild being written finishes first.
    ///
    /// # Errors
    /// [`Error::Fenced`] when another claim won; [`Error::RemoteCorrupt`] naming the object
    /// (nothing local written); local I/O errors; [`Error::Remote`] for a store that
    /// fails or a runtime opened without a remote.
    ///
    /// # Cancel safety
    /// The claim runs to its end on the writer even if the future is dropped.
    #[cfg(feature = "remote")]
    pub async fn claim(&self, guild: GuildId) -> Result<Claimed> {
        self.call(|reply| Command::Claim { guild, reply }).await
    }

    /// Claims every guild of Discord shard `shard` of `shards` (`(guild >> 22) % shards ==
    /// shard`) that the remote holds, one after the other, at least `pace` apart (a pace
    /// limit, so that a rebalanced shard does not hit the store and the other owners all at
    /// once); stops at the first failure.
    ///
    /// # Errors
    /// As [`Reprise::claim`]; [`Error::Remote`] when `shard >= shards` or the runtime has no
    /// remote.
    ///
    /// # Cancel safety
    /// Guilds claimed before the future is dropped stay claimed.
    #[cfg(feature = "remote")]
    pub async fn claim_shard(
        &self,
        shard: u64,
        shards: u64,
        pace: Duration,
    ) -> Result<Vec<Claimed>> {
        let remote = self.inner.remote.as_ref().ok_or_else(no_remote)?;
        let mut claimed = Vec::new();
        for guild in remote.shard_guilds(shard, shards).await? {
            if !claimed.is_empty() && !pace.is_zero() {
                tokio::time::sleep(pace).await;
            }
            claimed.push(self.claim(guild).await?);
        }
        Ok(claimed)
    }

    /// Resolves once every event acknowledged before the call is stored in the remote (one
    /// shipping round at once, not at the ship interval).
    ///
    /// # Errors
    /// [`Error::Remote`] when the store fails or the runtime has no remote; [`Error::Closed`].
    ///
    /// # Cancel safety
    /// Cancel safe: the round goes on without the caller.
    #[cfg(feature = "remote")]
    pub async fn ship_now(&self) -> Result<()> {
        self.call(|reply| Command::ShipNow { reply }).await
    }

    /// Flushes every acknowledged and pending append, waits for snapshots in flight, writes
    /// final snapshots when [`Config::snapshot_on_shutdown`] says so, retires the journal's commit
    /// logs (everything durable in the guild segments), ships what the remote lacks (one last
    /// round; a failure is logged, the events stay local for the next process), stops and joins the
    /// writer, snapshot and shipping tasks. Later calls on any clone fail with [`Error::Closed`].
    ///
    /// # Errors
    /// The first error met while flushing or closing (the threads are joined regardless).
    ///
    /// # Cancel safety
    /// Once the writer received the request, shutdown completes even if the future is dropped.
    pub async fn shutdown(&self) -> Result<()> {
        let result = self.call(|reply| Command::Shutdown { reply }).await;
        let writer = self.inner.writer.lock().map_err(|_| Error::Closed)?.take();
        if let Some(writer) = writer {
            join_off_runtime(writer).await?;
        }
        match result {
            Err(Error::Closed) => Ok(()),
            other => other,
        }
    }
}

/// A runtime of this process on a directory: its handles, and a watch whose sender the writer
/// thread drops when it ends (the journal and its lock released).
struct Writer {
    dir: PathBuf,
    handles: Weak<Inner>,
    exited: watch::Receiver<()>,
}

/// Every runtime of this process whose writer thread may still run.
static WRITERS: Mutex<Vec<Writer>> = Mutex::new(Vec::new());

/// The name under which a directory is registered: its canonical path when it has one (a
/// directory on the simulated file system has none and keeps its own).
fn writer_key(dir: &Path) -> PathBuf {
    std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf())
}

/// The exit watch of a runtime on `dir` whose handles were all dropped but whose writer thread
/// has not ended yet, if any.
fn writer_closing(dir: &Path) -> Option<watch::Receiver<()>> {
    let key = writer_key(dir);
    let mut writers = WRITERS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    writers.retain(|w| w.exited.has_changed().is_ok());
    writers
        .iter()
        .find(|w| w.dir == key && w.handles.strong_count() == 0)
        .map(|w| w.exited.clone())
}

/// Registers a runtime that just opened `dir`.
fn writer_opened(dir: &Path, inner: &Arc<Inner>, exited: watch::Receiver<()>) {
    let mut writers = WRITERS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    writers.retain(|w| w.exited.has_changed().is_ok());
    writers.push(Writer {
        dir: writer_key(dir),
        handles: Arc::downgrade(inner),
        exited,
    });
}

/// Joins a thread without blocking the caller's runtime.
async fn join_off_runtime(handle: JoinHandle<()>) -> Result<()> {
    let (tx, rx) = oneshot::channel();
    std::thread::spawn(move || {
        let _ = tx.send(handle.join().is_ok());
    });
    match rx.await {
        Ok(true) => Ok(()),
        _ => Err(Error::io(
            "join",
            PathBuf::from("reprise-writer"),
            std::io::Error::other("the writer thread panicked"),
        )),
    }
}

/// The entry point of the crash tests (feature `testing`; not for bots).
#[cfg(any(test, feature = "testing"))]
impl Reprise {
    /// [`Reprise::open`] through any storage implementation (the simulated file system of the
    /// crash tests, say).
    ///
    /// # Errors
    /// As [`Reprise::open`].
    ///
    /// # Cancel safety
    /// As [`Reprise::open`].
    #[doc(hidden)]
    pub async fn open_with_storage(
        dir: impl Into<PathBuf>,
        config: Config,
        storage: Arc<dyn Storage>,
    ) -> Result<Reprise> {
        Reprise::open_inner(dir.into(), config, None, storage).await
    }
}

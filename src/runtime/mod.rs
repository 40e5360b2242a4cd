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
//! - **Remote** ([`Reprise::open_with_remote`]): a shipping task on the writer's runtime
//!   uploads every guild's durable events at [`Config::ship_interval`], all guilds of a round
//!   in one object, and answers [`Durability::Remote`] appends once stored; see
//!   `src/shipper.rs` and DESIGN.md ("Remote").

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, mpsc, oneshot};

use crate::config::{Config, Durability};
use crate::error::{Error, Result};
use crate::ids::{GuildId, Seq};
use crate::journal::{now_unix_ms, GuildState, Journal, LoggedEvent, OpenMode, SnapshotJob};
use crate::remote::{Claimed, LocalDir, Remote};
use crate::session::Event;
use crate::storage::{FsStorage, Storage};
use shipper::{ShipMsg, ShipNote, Shipper};

mod shipper;

/// Most commands the writer takes in one group before it commits.
const GROUP_COMMANDS_MAX: usize = 4096;
/// Longest the writer waits for more appends to share an fsync, and only when the previous
/// group had several (a fraction of one fsync, which costs 100 us or more).
const COALESCE_WAIT_MAX: Duration = Duration::from_micros(60);
/// Capacity of each guild's subscription channel; a slower subscriber sees `Lagged`.
const SUBSCRIPTION_CAPACITY: usize = 1024;

/// A cheap, cloneable handle to a journal owned by a writer thread. See the module docs.
///
/// Dropping every handle shuts the writer down as [`Reprise::shutdown`] does (without waiting
/// for it); call `shutdown().await` to know that everything was flushed.
#[derive(Clone, Debug)]
pub struct Reprise {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    tx: mpsc::Sender<Command>,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// The store, for listing guilds (`claim_shard`); the writer has its own clone.
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
        reply: Reply<Vec<Seq>>,
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
    Claim {
        guild: GuildId,
        reply: Reply<Claimed>,
    },
    ShipNow {
        reply: Reply<()>,
    },
}

impl Reprise {
    /// Opens (creating if needed) the journal in `dir` and starts its writer thread.
    ///
    /// # Errors
    /// As [`Journal::open`] ([`Error::Locked`] when another process owns the directory).
    ///
    /// # Cancel safety
    /// If the future is dropped before it completes, the writer thread still starts and stops
    /// again as soon as it sees that nobody holds a handle.
    pub async fn open(dir: impl Into<PathBuf>, config: Config) -> Result<Reprise> {
        Reprise::open_inner(dir.into(), config, None, Arc::new(FsStorage)).await
    }

    /// [`Reprise::open`] through any [`Storage`] implementation (the simulated file system of
    /// the crash tests, say).
    ///
    /// # Errors
    /// As [`Reprise::open`].
    ///
    /// # Cancel safety
    /// As [`Reprise::open`].
    pub async fn open_with_storage(
        dir: impl Into<PathBuf>,
        config: Config,
        storage: Arc<dyn Storage>,
    ) -> Result<Reprise> {
        Reprise::open_inner(dir.into(), config, None, storage).await
    }

    /// [`Reprise::open`] with shipping to an object store: every guild's durable events are
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
        let (tx, rx) = mpsc::channel(config.channel_capacity.max(1));
        let (ready_tx, ready_rx) = oneshot::channel();
        let listing = remote.as_ref().map(|r| r.remote.clone());
        let writer = std::thread::Builder::new()
            .name("reprise-writer".into())
            .spawn(move || writer_main(dir, config, remote, storage, rx, ready_tx))
            .map_err(|e| Error::io("spawn the writer thread for", PathBuf::new(), e))?;
        match ready_rx.await {
            Ok(Ok(())) => Ok(Reprise {
                inner: Arc::new(Inner {
                    tx,
                    writer: Mutex::new(Some(writer)),
                    remote: listing,
                }),
            }),
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

    /// The guild's state as of `seq` (see [`Journal::state_at`]).
    ///
    /// # Errors
    /// As [`Journal::state_at`], [`Error::Closed`].
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
    pub async fn ship_now(&self) -> Result<()> {
        self.call(|reply| Command::ShipNow { reply }).await
    }

    /// Flushes every acknowledged and pending append, waits for snapshots in flight, writes
    /// final snapshots when [`Config::snapshot_on_shutdown`] says so, checkpoints the journal
    /// (everything durable in the guild segments), ships what the remote lacks (one last
    /// round; a failure is logged, the events stay local for the next process), stops and
    /// joins the writer, snapshot and shipping tasks. Later calls on any clone fail with [`Error::Closed`].
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

fn writer_main(
    dir: PathBuf,
    config: Config,
    remote: Option<RemoteOptions>,
    storage: Arc<dyn Storage>,
    rx: mpsc::Receiver<Command>,
    ready: oneshot::Sender<Result<()>>,
) {
    // Time for the timers, I/O for the object store's client.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(Error::io("start the writer runtime for", &dir, e)));
            return;
        }
    };
    // The journal's own inline snapshot policy is replaced by the runtime's background one.
    let journal_config = config.clone().without_auto_snapshots();
    let journal = match Journal::open_with(&dir, journal_config, OpenMode::ReadWrite, storage) {
        Ok(j) => j,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let (done_tx, done_rx) = mpsc::unbounded_channel();
    let (job_tx, job_rx) = std::sync::mpsc::channel::<SnapshotJob>();
    let storage = journal.storage();
    let snapshotter = std::thread::Builder::new()
        .name("reprise-snapshot".into())
        .spawn(move || {
            for mut job in job_rx {
                let result = job.write_to(storage.as_ref());
                if done_tx.send((job, result)).is_err() {
                    return;
                }
            }
        });
    let snapshotter = match snapshotter {
        Ok(h) => h,
        Err(e) => {
            let _ = ready.send(Err(Error::io("spawn the snapshot thread for", &dir, e)));
            return;
        }
    };
    if ready.send(Ok(())).is_err() {
        // Nobody waits for this runtime any more.
    }
    let (notes_tx, notes_rx) = mpsc::unbounded_channel();
    let shipping = remote.map(|options| {
        let (tx, rx) = mpsc::unbounded_channel();
        let shipper = Shipper::new(
            options.remote.clone(),
            LocalDir::of(&journal),
            options.owner.clone(),
            config.ship_interval,
            notes_tx,
        );
        let task = runtime.spawn(shipper.run(rx));
        Shipping {
            options,
            tx: Some(tx),
            task: Some(task),
            unshipped: HashMap::new(),
            fenced: HashMap::new(),
            checked: HashSet::new(),
        }
    });
    let actor = Actor {
        shipping,
        journal,
        config,
        pending: Vec::new(),
        pending_always: false,
        pending_batched: 0,
        batched_events_max: u32::MAX,
        deadline: None,
        durability_by_guild: HashMap::new(),
        subscribers: HashMap::new(),
        job_tx: Some(job_tx),
        in_flight: HashMap::new(),
        again: HashSet::new(),
        dirty_since: HashMap::new(),
        shutdown: Vec::new(),
        stopping: false,
        last_group: 0,
    };
    let task = runtime.block_on(actor.run(rx, done_rx, notes_rx));
    if let Some(task) = task {
        // The shipper's last round (its sender is gone): part of shutdown.
        let _ = runtime.block_on(task);
    }
    let _ = snapshotter.join();
}

/// The actor's side of shipping (see `src/shipper.rs`).
struct Shipping {
    options: RemoteOptions,
    tx: Option<mpsc::UnboundedSender<ShipMsg>>,
    task: Option<tokio::task::JoinHandle<()>>,
    /// Guilds with events appended since they were last reported durable: last seq.
    unshipped: HashMap<GuildId, Seq>,
    /// Guilds a newer owner claimed.
    fenced: HashMap<GuildId, (u64, String)>,
    /// Guilds whose local ownership record was read.
    checked: HashSet<GuildId>,
}

impl Shipping {
    fn send(&self, msg: ShipMsg) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(msg);
        }
    }
}

/// An append waiting for its group commit.
struct Pending {
    guild: GuildId,
    seqs: Vec<Seq>,
    logged: Vec<Arc<LoggedEvent>>,
    reply: Reply<Vec<Seq>>,
    /// `Remote` durability: after the commit, the reply waits for the store.
    remote: bool,
}

struct Actor {
    shipping: Option<Shipping>,
    journal: Journal,
    config: Config,
    pending: Vec<Pending>,
    pending_always: bool,
    pending_batched: u64,
    batched_events_max: u32,
    deadline: Option<tokio::time::Instant>,
    durability_by_guild: HashMap<GuildId, Durability>,
    subscribers: HashMap<GuildId, broadcast::Sender<Arc<LoggedEvent>>>,
    job_tx: Option<std::sync::mpsc::Sender<SnapshotJob>>,
    /// Guilds with a snapshot being written, and who waits for it.
    in_flight: HashMap<GuildId, Vec<Reply<Option<Seq>>>>,
    /// Guilds to snapshot again once their job in flight is done (they moved on meanwhile).
    again: HashSet<GuildId>,
    /// Guilds with events since their last snapshot, and since when.
    dirty_since: HashMap<GuildId, Instant>,
    shutdown: Vec<Reply<()>>,
    stopping: bool,
    /// Appends in the last group commit (the contention signal for coalescing).
    last_group: usize,
}

type Done = (SnapshotJob, Result<u64>);

impl Actor {
    async fn run(
        mut self,
        mut rx: mpsc::Receiver<Command>,
        mut done_rx: mpsc::UnboundedReceiver<Done>,
        mut notes_rx: mpsc::UnboundedReceiver<ShipNote>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let mut ship_tick = tokio::time::interval(self.config.ship_interval);
        ship_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let shipping = self.shipping.is_some();
        let tick_period = self
            .config
            .snapshot_interval
            .map_or(Duration::from_secs(3600), |i| {
                (i / 4).clamp(Duration::from_millis(10), Duration::from_secs(1))
            });
        let mut tick = tokio::time::interval(tick_period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut open = true;
        loop {
            let deadline = self.deadline;
            tokio::select! {
                biased;
                // Before commands: a guild found fenced fails the appends that follow.
                Some(note) = notes_rx.recv() => self.ship_note(note),
                cmd = rx.recv(), if open && !self.stopping => match cmd {
                    Some(cmd) => {
                        self.handle_any(cmd, &mut done_rx).await;
                        let mut taken = 1;
                        let coalesce_until = Instant::now() + COALESCE_WAIT_MAX;
                        while taken < GROUP_COMMANDS_MAX && !self.stopping {
                            match rx.try_recv() {
                                Ok(cmd) => { self.handle_any(cmd, &mut done_rx).await; taken += 1; }
                                // Under contention (the last group had several appends), the
                                // callers just acknowledged are about to send their next
                                // appends: wait a few microseconds for them to share this
                                // fsync. Without contention, commit at once.
                                Err(_) if self.pending_always
                                    && self.pending.len() < self.last_group
                                    && Instant::now() < coalesce_until =>
                                {
                                    std::thread::yield_now();
                                }
                                Err(_) => break,
                            }
                        }
                    }
                    // Every handle is gone: shut down as if asked.
                    None => { open = false; self.stopping = true; }
                },
                Some(done) = done_rx.recv() => self.snapshot_done(done),
                _ = ship_tick.tick(), if shipping && !self.stopping => self.ship_durable(true),
                () = sleep_until(deadline), if deadline.is_some() => {}
                _ = tick.tick(), if self.config.snapshot_interval.is_some() && !self.stopping => {
                    self.snapshot_by_time();
                }
            }
            self.maybe_commit();
            if self.stopping && self.finish_shutdown() {
                break;
            }
        }
        // Anything that raced with the shutdown is refused.
        rx.close();
        while let Ok(cmd) = rx.try_recv() {
            refuse(cmd);
        }
        // Dropping the sender makes the shipper run its last round and end.
        let shipping = self.shipping.as_mut()?;
        shipping.tx = None;
        shipping.task.take()
    }

    /// Commands that await the store (claims), then every other one.
    async fn handle_any(&mut self, cmd: Command, done_rx: &mut mpsc::UnboundedReceiver<Done>) {
        match cmd {
            Command::Claim { guild, reply } => {
                // A claim may replace the guild's files: a snapshot being written into its
                // directory finishes first.
                while self.in_flight.contains_key(&guild) {
                    match done_rx.recv().await {
                        Some(done) => self.snapshot_done(done),
                        None => break,
                    }
                }
                let result = self.claim(guild).await;
                let _ = reply.send(result);
            }
            other => self.handle(other),
        }
    }

    async fn claim(&mut self, guild: GuildId) -> Result<Claimed> {
        let Some(shipping) = &self.shipping else {
            return Err(no_remote());
        };
        let (remote, owner) = (
            shipping.options.remote.clone(),
            shipping.options.owner.clone(),
        );
        self.commit()?;
        let claimed = remote.claim(&mut self.journal, guild, &owner).await?;
        if let Some(s) = self.shipping.as_mut() {
            s.fenced.remove(&guild);
            s.checked.insert(guild);
            s.unshipped.remove(&guild);
            s.send(ShipMsg::Claimed { guild });
        }
        Ok(claimed)
    }

    fn ship_note(&mut self, note: ShipNote) {
        let ShipNote::Fenced {
            guild,
            epoch,
            owner,
        } = note;
        if let Some(s) = self.shipping.as_mut() {
            s.fenced.insert(guild, (epoch, owner));
        }
    }

    /// Reports every guild's appended events as durable to the shipper; with `sync`, syncs
    /// first (the ship interval: `none` and `batched` appends not yet committed).
    fn ship_durable(&mut self, sync: bool) {
        let Some(s) = &self.shipping else { return };
        if s.unshipped.is_empty() {
            return;
        }
        if sync {
            // Pending appends are answered by their commit, which reports them (and every
            // `none` append before them) durable; otherwise a plain sync does.
            let synced = if self.pending.is_empty() {
                self.journal.sync()
            } else {
                self.commit()
            };
            if synced.is_err() {
                return;
            }
        }
        // The shipper reads the guild segments: frames still buffered go there first (they
        // are durable in the commit log already).
        if self.journal.flush().is_err() {
            return;
        }
        if let Some(s) = self.shipping.as_mut() {
            for (guild, seq) in s.unshipped.drain() {
                if let Some(tx) = &s.tx {
                    let _ = tx.send(ShipMsg::Durable { guild, seq });
                }
            }
        }
    }

    /// `Err(Fenced)` when a newer owner claimed `guild` (seen by the shipper, or recorded in
    /// the directory by an earlier process).
    fn check_fenced(&mut self, guild: GuildId) -> Result<()> {
        let Some(s) = self.shipping.as_mut() else {
            return Ok(());
        };
        if s.checked.insert(guild) {
            let record = Remote::owner_record(&LocalDir::of(&self.journal), guild)?;
            if let Some(by) = record.and_then(|r| r.fenced_by) {
                s.fenced.insert(guild, by);
            }
        }
        match s.fenced.get(&guild) {
            Some((epoch, owner)) => Err(Error::Fenced {
                guild,
                epoch: *epoch,
                owner: owner.clone(),
            }),
            None => Ok(()),
        }
    }

    fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Append {
                guild,
                events,
                durability,
                reply,
            } => self.append(guild, events, durability, reply),
            Command::SetDurability { guild, durability } => match durability {
                Some(d) => {
                    self.durability_by_guild.insert(guild, d);
                }
                None => {
                    self.durability_by_guild.remove(&guild);
                }
            },
            Command::State { guild, at, reply } => {
                let result = match at {
                    None => self.journal.state(guild).cloned(),
                    Some(seq) => self.journal.state_at(guild, seq),
                };
                let _ = reply.send(result);
            }
            Command::Subscribe { guild, reply } => {
                let rx = self
                    .subscribers
                    .entry(guild)
                    .or_insert_with(|| broadcast::channel(SUBSCRIPTION_CAPACITY).0)
                    .subscribe();
                let _ = reply.send(Ok(rx));
            }
            Command::Snapshot { guild, reply } => {
                // Pending appends first: the snapshot must cover what was acknowledged.
                match self.commit() {
                    Ok(()) => self.schedule_snapshot(guild, Some(reply)),
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
            Command::Flush { reply } => {
                let result = self.commit();
                let _ = reply.send(result);
            }
            Command::Shutdown { reply } => {
                self.shutdown.push(reply);
                self.stopping = true;
            }
            Command::ShipNow { reply } => {
                if self.shipping.is_none() {
                    let _ = reply.send(Err(no_remote()));
                    return;
                }
                // Everything acknowledged so far is made durable and handed to the shipper,
                // whose next round answers.
                match self.commit() {
                    Ok(()) => {
                        self.ship_durable(false);
                        if let Some(s) = &self.shipping {
                            s.send(ShipMsg::Flush { reply });
                        }
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
            // Handled by handle_any (it awaits the store).
            Command::Claim { reply, .. } => {
                let _ = reply.send(Err(Error::Closed));
            }
        }
    }

    fn append(
        &mut self,
        guild: GuildId,
        events: Vec<Event>,
        durability: Option<Durability>,
        reply: Reply<Vec<Seq>>,
    ) {
        let durability = durability
            .or_else(|| self.durability_by_guild.get(&guild).copied())
            .unwrap_or(self.config.durability);
        if durability == Durability::Remote && self.shipping.is_none() {
            let _ = reply.send(Err(no_remote()));
            return;
        }
        if let Err(e) = self.check_fenced(guild) {
            let _ = reply.send(Err(e));
            return;
        }
        // All or nothing (see `Journal::append_many`): on an error none of the batch is in the
        // journal, nothing of it is published, shipped or acknowledged.
        let at = now_unix_ms();
        let seqs = match self
            .journal
            .append_many_at(guild, &events, Durability::None, at)
        {
            Ok(seqs) => seqs,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        let logged: Vec<Arc<LoggedEvent>> = seqs
            .iter()
            .zip(events)
            .map(|(&seq, event)| {
                Arc::new(LoggedEvent {
                    seq,
                    at_unix_ms: at,
                    event,
                })
            })
            .collect();
        self.dirty_since.entry(guild).or_insert_with(Instant::now);
        if let (Some(s), Some(&last)) = (self.shipping.as_mut(), seqs.last()) {
            s.unshipped.insert(guild, last);
        }
        self.snapshot_by_size(guild);
        match durability {
            Durability::None => {
                self.publish(guild, &logged);
                let _ = reply.send(Ok(seqs));
            }
            Durability::Always | Durability::Remote => {
                self.pending_always = true;
                self.pending.push(Pending {
                    guild,
                    seqs,
                    logged,
                    reply,
                    remote: durability == Durability::Remote,
                });
            }
            Durability::Batched(policy) => {
                self.pending_batched += seqs.len() as u64;
                self.batched_events_max = self.batched_events_max.min(policy.events_max);
                let due = tokio::time::Instant::now() + policy.delay_max;
                self.deadline = Some(self.deadline.map_or(due, |d| d.min(due)));
                self.pending.push(Pending {
                    guild,
                    seqs,
                    logged,
                    reply,
                    remote: false,
                });
            }
        }
    }

    fn maybe_commit(&mut self) {
        if self.pending.is_empty() {
            self.deadline = None;
            return;
        }
        let due = self.pending_always
            || self.stopping
            || self.pending_batched >= u64::from(self.batched_events_max)
            || self
                .deadline
                .is_some_and(|d| d <= tokio::time::Instant::now());
        if due {
            let _ = self.commit();
        }
    }

    /// One group commit: one fsync of the commit log, then every waiting acknowledgement.
    fn commit(&mut self) -> Result<()> {
        let result = self.journal.sync();
        let pending = std::mem::take(&mut self.pending);
        self.last_group = pending.len();
        if !pending.is_empty() {
            metrics::histogram!(crate::telemetry::BATCH_EVENTS).record(pending.len() as f64);
        }
        self.pending_always = false;
        self.pending_batched = 0;
        self.batched_events_max = u32::MAX;
        self.deadline = None;
        if result.is_ok() && pending.iter().any(|p| p.remote) {
            self.ship_durable(false);
        }
        for p in pending {
            match &result {
                Ok(()) if p.remote => {
                    self.publish(p.guild, &p.logged);
                    let seq = p.seqs.last().copied().unwrap_or(0);
                    match &self.shipping {
                        Some(s) => s.send(ShipMsg::Wait {
                            guild: p.guild,
                            seq,
                            seqs: p.seqs,
                            reply: p.reply,
                        }),
                        None => {
                            let _ = p.reply.send(Err(no_remote()));
                        }
                    }
                }
                Ok(()) => {
                    self.publish(p.guild, &p.logged);
                    let _ = p.reply.send(Ok(p.seqs));
                }
                Err(e) => {
                    let _ = p.reply.send(Err(Error::Poisoned {
                        guild: p.guild,
                        op: if matches!(e, Error::Poisoned { .. }) {
                            "commit log write"
                        } else {
                            "fsync"
                        },
                    }));
                }
            }
        }
        result
    }

    fn publish(&mut self, guild: GuildId, logged: &[Arc<LoggedEvent>]) {
        if let Some(tx) = self.subscribers.get(&guild) {
            if tx.receiver_count() == 0 {
                self.subscribers.remove(&guild);
                return;
            }
            for e in logged {
                let _ = tx.send(Arc::clone(e));
            }
        }
    }

    fn snapshot_by_size(&mut self, guild: GuildId) {
        let Some((events, bytes)) = self.journal.since_snapshot(guild) else {
            return;
        };
        let due = self
            .config
            .snapshot_every_events
            .is_some_and(|n| events >= n)
            || self.config.snapshot_every_bytes.is_some_and(|n| bytes >= n);
        if due {
            self.schedule_snapshot(guild, None);
        }
    }

    fn snapshot_by_time(&mut self) {
        let Some(interval) = self.config.snapshot_interval else {
            return;
        };
        let due: Vec<GuildId> = self
            .dirty_since
            .iter()
            .filter(|(_, since)| since.elapsed() >= interval)
            .map(|(g, _)| *g)
            .collect();
        for guild in due {
            self.schedule_snapshot(guild, None);
        }
    }

    /// Starts a background snapshot of `guild` (or queues `waiter` on the one in flight, and
    /// another one after it when the guild moved on).
    fn schedule_snapshot(&mut self, guild: GuildId, waiter: Option<Reply<Option<Seq>>>) {
        if let Some(waiters) = self.in_flight.get_mut(&guild) {
            waiters.extend(waiter);
            self.again.insert(guild);
            return;
        }
        let job = match self.journal.snapshot_begin(guild) {
            Ok(Some(job)) => job,
            Ok(None) => {
                self.dirty_since.remove(&guild);
                if let Some(w) = waiter {
                    let seq = self
                        .journal
                        .state(guild)
                        .map(|s| (s.seq > 0).then_some(s.seq));
                    let _ = w.send(seq);
                }
                return;
            }
            Err(e) => {
                if let Some(w) = waiter {
                    let _ = w.send(Err(e));
                }
                return;
            }
        };
        self.dirty_since.remove(&guild);
        let Some(tx) = &self.job_tx else {
            if let Some(w) = waiter {
                let _ = w.send(Err(Error::Closed));
            }
            return;
        };
        if tx.send(job).is_err() {
            if let Some(w) = waiter {
                let _ = w.send(Err(Error::Closed));
            }
            return;
        }
        self.in_flight.insert(guild, waiter.into_iter().collect());
    }

    fn snapshot_done(&mut self, (job, result): Done) {
        let guild = job.guild();
        let outcome = match result {
            Ok(_) => self.journal.snapshot_finish(&job).map(|()| Some(job.seq())),
            Err(e) => {
                self.journal.snapshot_failed(&job);
                Err(e)
            }
        };
        if let (Ok(Some(seq)), Some(s)) = (&outcome, &self.shipping) {
            s.send(ShipMsg::Snapshot { guild, seq: *seq });
        }
        let waiters = self.in_flight.remove(&guild).unwrap_or_default();
        let again = self.again.remove(&guild);
        if again && !waiters.is_empty() {
            // Someone asked for a snapshot after this one began: give them a newer one.
            let mut waiters = waiters.into_iter();
            if let Some(first) = waiters.next() {
                self.schedule_snapshot(guild, Some(first));
                if let Some(list) = self.in_flight.get_mut(&guild) {
                    list.extend(waiters);
                }
            }
            return;
        }
        let text = outcome.as_ref().err().map(ToString::to_string);
        for w in waiters {
            let _ = w.send(match (&outcome, &text) {
                (Ok(seq), _) => Ok(*seq),
                (Err(_), Some(t)) => Err(Error::io(
                    "write snapshot",
                    job.path(),
                    std::io::Error::other(t.clone()),
                )),
                (Err(_), None) => Err(Error::Closed),
            });
        }
    }

    /// Drives the shutdown; true once everything is done.
    fn finish_shutdown(&mut self) -> bool {
        if !self.pending.is_empty() {
            let _ = self.commit();
        }
        if self.config.snapshot_on_shutdown {
            let dirty: Vec<GuildId> = self.dirty_since.keys().copied().collect();
            for guild in dirty {
                self.schedule_snapshot(guild, None);
            }
        }
        if !self.in_flight.is_empty() {
            return false;
        }
        self.job_tx = None;
        // As Journal::close: everything durable in the guild segments, commit logs dropped.
        let result = self
            .journal
            .sync()
            .and_then(|()| self.journal.checkpoint(false));
        let text = result.as_ref().err().map(ToString::to_string);
        for reply in self.shutdown.drain(..) {
            let _ = reply.send(match &text {
                None => Ok(()),
                Some(t) => Err(Error::io(
                    "close",
                    PathBuf::new(),
                    std::io::Error::other(t.clone()),
                )),
            });
        }
        true
    }
}

fn no_remote() -> Error {
    Error::Remote {
        op: "ship",
        key: String::new(),
        source: "this runtime was opened without a remote (Reprise::open_with_remote)".into(),
    }
}

fn refuse(cmd: Command) {
    match cmd {
        Command::Append { reply, .. } => {
            let _ = reply.send(Err(Error::Closed));
        }
        Command::State { reply, .. } => {
            let _ = reply.send(Err(Error::Closed));
        }
        Command::Subscribe { reply, .. } => {
            let _ = reply.send(Err(Error::Closed));
        }
        Command::Snapshot { reply, .. } => {
            let _ = reply.send(Err(Error::Closed));
        }
        Command::Flush { reply } | Command::Shutdown { reply } | Command::ShipNow { reply } => {
            let _ = reply.send(Err(Error::Closed));
        }
        Command::Claim { reply, .. } => {
            let _ = reply.send(Err(Error::Closed));
        }
        Command::SetDurability { .. } => {}
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

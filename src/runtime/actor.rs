//! The actor: the writer thread that owns the [`Journal`], its event loop and how it answers
//! each [`Command`]. The loop takes every command already waiting (one group), then commits
//! (`commit.rs`); snapshot results (`snapshots.rs`) and shipping notes (`shipping.rs`) arrive
//! on their own channels.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, mpsc, oneshot, watch};

use super::commit::Pending;
#[cfg(feature = "remote")]
use super::shipper::{ShipMsg, ShipNote, Shipper};
#[cfg(feature = "remote")]
use super::shipping::no_remote;
use super::shipping::Shipping;
#[cfg(not(feature = "remote"))]
use super::shipping::{RemoteOptions, ShipNote};
use super::snapshots::Done;
#[cfg(feature = "remote")]
use super::RemoteOptions;
use super::{Command, Reply};
use crate::config::{Config, Durability};
use crate::error::{Error, Result};
use crate::ids::{GuildId, Seq};
use crate::journal::{Journal, LoggedEvent, OpenMode, SnapshotJob};
#[cfg(feature = "remote")]
use crate::remote::LocalDir;
use crate::storage::Storage;

/// Most commands the writer takes in one group before it commits.
const GROUP_COMMANDS_MAX: usize = 4096;
/// Longest the writer waits for more appends to share an fsync, and only when the previous
/// group had several (a fraction of one fsync, which costs 100 us or more).
const COALESCE_WAIT_MAX: Duration = Duration::from_micros(60);
/// Capacity of each guild's subscription channel; a slower subscriber sees `Lagged`.
const SUBSCRIPTION_CAPACITY: usize = 1024;

/// The writer thread: opens the journal, starts the snapshot thread and (with a remote) the
/// shipping task, answers `ready`, then runs the actor until shutdown and joins the others.
pub(super) fn writer_main(
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
    let journal = match Journal::open_on(&dir, journal_config, OpenMode::ReadWrite, storage) {
        Ok(j) => j,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let (done_tx, done_rx) = mpsc::unbounded_channel();
    let (job_tx, job_rx) = std::sync::mpsc::channel::<SnapshotJob>();
    let snapshotter = std::thread::Builder::new()
        .name("reprise-snapshot".into())
        .spawn(move || {
            for mut job in job_rx {
                let result = job.write();
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
    let (notes_tx, notes_rx) = mpsc::unbounded_channel::<ShipNote>();
    // Without the `remote` feature there is no shipper: nothing sends notes.
    #[cfg(not(feature = "remote"))]
    let shipping: Option<Shipping> = {
        drop(notes_tx);
        remote.map(|never| match never {})
    };
    #[cfg(feature = "remote")]
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
        unsynced: HashMap::new(),
        durable_watches: HashMap::new(),
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

/// The writer thread's state: the journal, the appends waiting for their group commit,
/// the snapshots in flight, the subscribers and the actor's side of shipping.
pub(super) struct Actor {
    pub(super) shipping: Option<Shipping>,
    pub(super) journal: Journal,
    pub(super) config: Config,
    pub(super) pending: Vec<Pending>,
    pub(super) pending_always: bool,
    pub(super) pending_batched: u64,
    pub(super) batched_events_max: u32,
    pub(super) deadline: Option<tokio::time::Instant>,
    pub(super) durability_by_guild: HashMap<GuildId, Durability>,
    pub(super) subscribers: HashMap<GuildId, broadcast::Sender<Arc<LoggedEvent>>>,
    /// Per guild, the first and last seq appended since the last successful sync.
    pub(super) unsynced: HashMap<GuildId, (Seq, Seq)>,
    /// Per guild, the highest seq known durable, for [`super::Reprise::durable_up_to`].
    pub(super) durable_watches: HashMap<GuildId, watch::Sender<Seq>>,
    pub(super) job_tx: Option<std::sync::mpsc::Sender<SnapshotJob>>,
    /// Guilds with a snapshot being written, and who waits for it.
    pub(super) in_flight: HashMap<GuildId, Vec<Reply<Option<Seq>>>>,
    /// Guilds to snapshot again once their job in flight is done (they moved on meanwhile).
    pub(super) again: HashSet<GuildId>,
    /// Guilds with events since their last snapshot, and since when.
    pub(super) dirty_since: HashMap<GuildId, Instant>,
    pub(super) shutdown: Vec<Reply<()>>,
    pub(super) stopping: bool,
    /// Appends in the last group commit (the contention signal for coalescing).
    pub(super) last_group: usize,
}

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
        #[cfg(feature = "remote")]
        {
            let shipping = self.shipping.as_mut()?;
            shipping.tx = None;
            shipping.task.take()
        }
        #[cfg(not(feature = "remote"))]
        None
    }

    /// Commands that await the store (claims), then every other one.
    #[cfg_attr(not(feature = "remote"), allow(unused_variables))]
    async fn handle_any(&mut self, cmd: Command, done_rx: &mut mpsc::UnboundedReceiver<Done>) {
        match cmd {
            #[cfg(feature = "remote")]
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
            Command::Work { wait, work } => {
                // The work may read or write files a snapshot in flight is writing.
                while wait.waits(self) {
                    match done_rx.recv().await {
                        Some(done) => self.snapshot_done(done),
                        None => break,
                    }
                }
                work(self);
            }
            other => self.handle(other),
        }
    }

    fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Append {
                guild,
                events,
                durability,
                reply,
                ordered,
            } => self.append(guild, events, durability, reply, ordered),
            Command::DurableWatch { guild, reply } => {
                let _ = reply.send(self.durable_watch(guild));
            }
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
            #[cfg(feature = "remote")]
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
            // Handled by handle_any (it awaits the store, or snapshots in flight).
            #[cfg(feature = "remote")]
            Command::Claim { reply, .. } => {
                let _ = reply.send(Err(Error::Closed));
            }
            Command::Work { work, .. } => work(self),
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
            .sync_journal()
            .and_then(|()| self.journal.retire_commit_logs(false));
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

fn refuse(cmd: Command) {
    match cmd {
        Command::Append { reply, ordered, .. } => {
            let _ = match ordered {
                Some(ordered) => ordered.send(Err(Error::Closed)),
                None => reply.send(Err(Error::Closed)),
            };
        }
        Command::DurableWatch { reply, .. } => {
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
        Command::Flush { reply } | Command::Shutdown { reply } => {
            let _ = reply.send(Err(Error::Closed));
        }
        #[cfg(feature = "remote")]
        Command::ShipNow { reply } => {
            let _ = reply.send(Err(Error::Closed));
        }
        #[cfg(feature = "remote")]
        Command::Claim { reply, .. } => {
            let _ = reply.send(Err(Error::Closed));
        }
        // Dropping the work drops its reply: its caller sees `Error::Closed`.
        Command::SetDurability { .. } | Command::Work { .. } => {}
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

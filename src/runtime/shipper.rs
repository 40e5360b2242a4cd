//! Background shipping for the async runtime ([`crate::Reprise`] opened with a remote): a
//! task on the writer thread's runtime that uploads every guild's durable events to the
//! object store, all guilds of a round in one batch object ([`crate::remote`]).
//!
//! ```text
//!  writer (actor) ──Durable{guild, seq}──▶ shipper task ──one batch per round──▶ store
//!        │          Wait{…, reply}  ───▶      │  (every ship interval, or at once when a
//!        ◀────────── Fenced{guild, …} ────────┘   `remote` append waits)
//! ```
//!
//! - The actor reports what is durable locally after every group commit (and syncs at the
//!   ship interval when `none` appends are waiting), so the remote never holds an event the
//!   local disk could lose, and lags it by at most the ship interval.
//! - A `remote` append's reply is handed to the shipper after its local fsync; the shipper
//!   answers it once a round stored the event. Rounds run back to back while appends wait, so
//!   every append that arrives during an upload shares the next object (group commit to the
//!   store); without waiters a round runs at the ship interval.
//! - A store that fails fails the waiting `remote` appends (their events stay in the local
//!   log and are shipped later); background rounds are retried with a backoff that doubles
//!   up to [`crate::remote::SHIP_RETRY_DELAY_MAX`], while a new waiting append or flush tries at once. Local
//!   appends of every other durability never wait for the store.
//! - A guild found fenced is reported to the actor, which fails every later append to it
//!   with [`Error::Fenced`].

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};
use crate::ids::{GuildId, Seq};
use crate::remote::{ship_retry_delay, LocalDir, Owner, Remote, Writer};

/// What the actor tells the shipper.
pub(crate) enum ShipMsg {
    /// Events up to `seq` of `guild` are durable locally.
    Durable { guild: GuildId, seq: Seq },
    /// Answer `reply` with `seqs` once `guild` is stored up to `seq`.
    Wait {
        guild: GuildId,
        seq: Seq,
        seqs: Vec<Seq>,
        reply: oneshot::Sender<Result<Vec<Seq>>>,
    },
    /// A local snapshot of `guild` at `seq` was written.
    Snapshot { guild: GuildId, seq: Seq },
    /// `guild` was claimed by this directory: forget its old ownership state.
    Claimed { guild: GuildId },
    /// Answer once everything reported durable so far is stored (or the round failed).
    Flush { reply: oneshot::Sender<Result<()>> },
}

/// What the shipper tells the actor.
pub(crate) enum ShipNote {
    /// A newer owner claimed `guild`.
    Fenced {
        guild: GuildId,
        epoch: crate::ids::Epoch,
        owner: String,
    },
}

struct Waiter {
    guild: GuildId,
    seq: Seq,
    seqs: Vec<Seq>,
    reply: oneshot::Sender<Result<Vec<Seq>>>,
}

/// The shipping task's state.
pub(crate) struct Shipper {
    remote: Remote,
    local: LocalDir,
    owner: String,
    interval: Duration,
    writer: Option<Writer>,
    owners: BTreeMap<GuildId, Owner>,
    /// Durable events to ship: guild → last durable seq.
    targets: BTreeMap<GuildId, Seq>,
    /// Local snapshots to upload once shipped up to them: guild → seqs.
    snapshots: BTreeMap<GuildId, Vec<Seq>>,
    waiters: Vec<Waiter>,
    flushes: Vec<oneshot::Sender<Result<()>>>,
    notes: mpsc::UnboundedSender<ShipNote>,
    failures: u32,
}

impl Shipper {
    pub(crate) fn new(
        remote: Remote,
        local: LocalDir,
        owner: String,
        interval: Duration,
        notes: mpsc::UnboundedSender<ShipNote>,
    ) -> Shipper {
        Shipper {
            remote,
            local,
            owner,
            interval,
            writer: None,
            owners: BTreeMap::new(),
            targets: BTreeMap::new(),
            snapshots: BTreeMap::new(),
            waiters: Vec::new(),
            flushes: Vec::new(),
            notes,
            failures: 0,
        }
    }

    fn take(&mut self, msg: ShipMsg) {
        match msg {
            ShipMsg::Durable { guild, seq } => self.target(guild, seq),
            ShipMsg::Wait {
                guild,
                seq,
                seqs,
                reply,
            } => {
                self.target(guild, seq);
                self.waiters.push(Waiter {
                    guild,
                    seq,
                    seqs,
                    reply,
                });
            }
            ShipMsg::Snapshot { guild, seq } => self.snapshots.entry(guild).or_default().push(seq),
            ShipMsg::Claimed { guild } => {
                self.owners.remove(&guild);
                self.targets.remove(&guild);
                self.snapshots.remove(&guild);
            }
            ShipMsg::Flush { reply } => self.flushes.push(reply),
        }
    }

    fn target(&mut self, guild: GuildId, seq: Seq) {
        let t = self.targets.entry(guild).or_insert(seq);
        *t = (*t).max(seq);
    }

    /// Runs until the actor drops its sender, then ships what is left once.
    pub(crate) async fn run(mut self, mut rx: mpsc::UnboundedReceiver<ShipMsg>) {
        let mut next_round = tokio::time::Instant::now() + self.interval;
        let mut open = true;
        while open {
            // Waiting appends and flushes run a round at once (even while backing off: they
            // want an answer); background rounds wait for the interval or the backoff.
            let urgent = !self.waiters.is_empty() || !self.flushes.is_empty();
            if !urgent {
                tokio::select! {
                    msg = rx.recv() => match msg {
                        Some(m) => self.take(m),
                        None => open = false,
                    },
                    () = tokio::time::sleep_until(next_round) => {}
                }
            }
            while let Ok(m) = rx.try_recv() {
                self.take(m);
            }
            let now = tokio::time::Instant::now();
            let waiting = !self.waiters.is_empty() || !self.flushes.is_empty();
            if now >= next_round || waiting || !open {
                let ok = self.round().await;
                self.failures = if ok { 0 } else { self.failures + 1 };
                let delay = ship_retry_delay(self.interval, self.failures);
                next_round = tokio::time::Instant::now() + delay;
            }
        }
    }

    /// One shipping round: every guild with durable events not yet stored, in one batch
    /// (more when they do not fit). True when it stored everything it tried to.
    async fn round(&mut self) -> bool {
        let result = self.round_inner().await;
        let failed = result.as_ref().err().map(ToString::to_string);
        // Answer the waiters: stored, fenced, or (on a failure) not acknowledged.
        let waiters = std::mem::take(&mut self.waiters);
        for w in waiters {
            let owner = self.owners.get(&w.guild);
            let answer = match (owner, &failed) {
                (Some(me), _) if me.fenced_by.is_some() => me.check().map(|()| Vec::new()),
                (Some(me), _) if me.head >= w.seq => Ok(w.seqs),
                (_, Some(text)) => Err(not_stored(&self.remote, text)),
                (_, None) => {
                    // Not stored yet (the round was cut short by its size): wait for the next.
                    self.waiters.push(w);
                    continue;
                }
            };
            let _ = w.reply.send(answer);
        }
        let flushes = std::mem::take(&mut self.flushes);
        for f in flushes {
            let _ = f.send(match &failed {
                None => Ok(()),
                Some(text) => Err(not_stored(&self.remote, text)),
            });
        }
        if let Some(text) = &failed {
            tracing::warn!("reprise: shipping to {} failed: {text}", self.remote.url());
        }
        failed.is_none()
    }

    async fn round_inner(&mut self) -> Result<()> {
        if self.targets.is_empty() && self.snapshots.is_empty() {
            return Ok(());
        }
        if self.writer.is_none() {
            self.writer = Some(self.remote.writer(&self.local).await?);
        }
        let Some(writer) = self.writer.as_mut() else {
            return Ok(());
        };
        // Ownership of guilds met for the first time (claims epoch 1 of a new guild), with new
        // events or a snapshot to store (a guild just claimed may have only the latter).
        let new: BTreeSet<GuildId> = self
            .targets
            .keys()
            .chain(self.snapshots.keys())
            .filter(|g| !self.owners.contains_key(g))
            .copied()
            .collect();
        for guild in new {
            match self
                .remote
                .owner(&self.local, writer, guild, &self.owner)
                .await
            {
                Ok(me) => {
                    self.owners.insert(guild, me);
                }
                Err(Error::Fenced {
                    guild,
                    epoch,
                    owner,
                }) => {
                    let _ = self.notes.send(ShipNote::Fenced {
                        guild,
                        epoch,
                        owner: owner.clone(),
                    });
                    self.owners
                        .insert(guild, Owner::fenced(guild, epoch, owner));
                }
                Err(e) => return Err(e),
            }
        }
        let guilds: Vec<GuildId> = self
            .targets
            .iter()
            .filter(|(g, &seq)| {
                self.owners
                    .get(g)
                    .is_some_and(|me| me.fenced_by.is_none() && me.head < seq)
            })
            .map(|(g, _)| *g)
            .collect();
        let mut owners: Vec<Owner> = guilds
            .iter()
            .filter_map(|g| self.owners.remove(g))
            .collect();
        let targets: Vec<Seq> = guilds.iter().map(|g| self.targets[g]).collect();
        let shipped = self
            .remote
            .ship_to(&self.local, writer, &mut owners, &targets)
            .await;
        for me in owners {
            if let Some((epoch, owner)) = &me.fenced_by {
                let _ = self.notes.send(ShipNote::Fenced {
                    guild: me.guild,
                    epoch: *epoch,
                    owner: owner.clone(),
                });
            }
            self.owners.insert(me.guild, me);
        }
        shipped?;
        // Guilds stored up to their target need nothing more until new events.
        let owners = &self.owners;
        self.targets.retain(|g, seq| {
            owners
                .get(g)
                .is_some_and(|me| me.fenced_by.is_none() && me.head < *seq)
        });
        // Snapshots the remote can now hold (up to each guild's stored head), then what they
        // make obsolete in the remote (retention follows the local snapshots).
        let due: Vec<GuildId> = self.snapshots.keys().copied().collect();
        let mut stored_any = false;
        for guild in due {
            let Some(me) = self.owners.get_mut(&guild) else {
                continue;
            };
            if me.fenced_by.is_some() {
                self.snapshots.remove(&guild);
                continue;
            }
            let seqs = self.snapshots.get(&guild).cloned().unwrap_or_default();
            if seqs.iter().any(|&s| s <= me.head) {
                self.remote.ship_snapshots(&self.local, me).await?;
                stored_any = true;
                let head = me.head;
                if let Some(list) = self.snapshots.get_mut(&guild) {
                    list.retain(|&s| s > head);
                    if list.is_empty() {
                        self.snapshots.remove(&guild);
                    }
                }
            }
        }
        if stored_any {
            let mut owners: Vec<Owner> = std::mem::take(&mut self.owners).into_values().collect();
            let retained = self.remote.retain(writer, &mut owners).await;
            self.owners = owners.into_iter().map(|me| (me.guild, me)).collect();
            retained?;
        }
        Ok(())
    }
}

fn not_stored(remote: &Remote, text: &str) -> Error {
    Error::Remote {
        op: "store",
        key: remote.url().to_string(),
        source: format!("the event is durable locally but not stored remotely yet: {text}").into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_only_grow() {
        let (notes, _rx) = mpsc::unbounded_channel();
        let remote = Remote::new(
            std::sync::Arc::new(object_store::memory::InMemory::new()),
            "",
        );
        let dir = tempfile::tempdir().unwrap();
        let journal = crate::Journal::open(dir.path(), crate::Config::default()).unwrap();
        let mut s = Shipper::new(
            remote,
            LocalDir::of(&journal),
            "o".into(),
            Duration::from_secs(1),
            notes,
        );
        s.take(ShipMsg::Durable {
            guild: GuildId(1),
            seq: 5,
        });
        s.take(ShipMsg::Durable {
            guild: GuildId(1),
            seq: 3,
        });
        assert_eq!(s.targets[&GuildId(1)], 5);
    }
}

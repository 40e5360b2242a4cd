//! Group commit: an append goes into the journal at once (not yet durable), waits in
//! [`Pending`] with its reply, and one fsync of the shared commit log then acknowledges every
//! waiting append of the group (`Always` at once, `Batched` by its policy, `Remote` after the
//! store too).

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;

use super::actor::Actor;
#[cfg(feature = "remote")]
use super::shipper::ShipMsg;
use super::shipping::no_remote;
use super::Reply;
use crate::clock::now_unix_ms;
use crate::config::Durability;
use crate::error::Result;
use crate::ids::{GuildId, Seq};
use crate::journal::LoggedEvent;
use crate::session::Event;

/// An append waiting for its group commit.
pub(super) struct Pending {
    guild: GuildId,
    seqs: Vec<Seq>,
    /// What to publish to subscribers at the commit (empty when published already: a `None`
    /// append of [`Reprise::append_ordered`](super::Reprise::append_ordered)).
    logged: Vec<Arc<LoggedEvent>>,
    reply: Reply<Vec<Seq>>,
    /// `Remote` durability: after the commit, the reply waits for the store.
    remote: bool,
}

impl Actor {
    /// Appends `events` to `guild` and answers `reply` once they are acknowledged at their
    /// durability. With `ordered` (an append of [`Reprise::append_ordered`](super::Reprise::append_ordered)),
    /// `ordered` is answered as soon as the events are in the journal with their seqs (or with
    /// the error that kept them out), and `reply` once they are durable, a `None` append
    /// included (at the next group commit).
    pub(super) fn append(
        &mut self,
        guild: GuildId,
        events: Vec<Event>,
        durability: Option<Durability>,
        reply: Reply<Vec<Seq>>,
        mut ordered: Option<Reply<Vec<Seq>>>,
    ) {
        // An error before the events are in the journal answers whoever waits first.
        let refuse = |ordered: Option<Reply<Vec<Seq>>>, reply: Reply<Vec<Seq>>, e| {
            let _ = match ordered {
                Some(ordered) => ordered.send(Err(e)),
                None => reply.send(Err(e)),
            };
        };
        let durability = durability
            .or_else(|| self.durability_by_guild.get(&guild).copied())
            .unwrap_or(self.config.durability);
        if durability == Durability::Remote && self.shipping.is_none() {
            refuse(ordered, reply, no_remote());
            return;
        }
        if let Err(e) = self.check_fenced(guild) {
            refuse(ordered, reply, e);
            return;
        }
        // All or nothing (see `Journal::append_many`): on an error none of the batch is in the
        // journal, nothing of it is published, shipped or acknowledged.
        let at = now_unix_ms();
        // The journal does the append (its records reach the commit log's file, or its
        // reserved extension); the fsync it owes is the group commit's.
        let seqs = match self.journal.append_unsynced(guild, &events, at) {
            Ok(seqs) => seqs,
            Err(e) => {
                refuse(ordered, reply, e);
                return;
            }
        };
        if let (Some(&first), Some(&last)) = (seqs.first(), seqs.last()) {
            self.unsynced
                .entry(guild)
                .and_modify(|range| range.1 = last)
                .or_insert((first, last));
        }
        // The caller of an ordered append goes on now; `reply` tells it when they are durable.
        let is_ordered = ordered.is_some();
        if let Some(ordered) = ordered.take() {
            let _ = ordered.send(Ok(seqs.clone()));
        }
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
        #[cfg(feature = "remote")]
        if let (Some(s), Some(&last)) = (self.shipping.as_mut(), seqs.last()) {
            s.unshipped.insert(guild, last);
        }
        self.snapshot_by_size(guild);
        match durability {
            Durability::None => {
                self.publish(guild, &logged);
                if is_ordered {
                    // Durable at the next group commit, whatever makes one; this append does
                    // not make one due.
                    self.pending.push(Pending {
                        guild,
                        seqs,
                        logged: Vec::new(),
                        reply,
                        remote: false,
                    });
                } else {
                    let _ = reply.send(Ok(seqs));
                }
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

    pub(super) fn maybe_commit(&mut self) {
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
    pub(super) fn commit(&mut self) -> Result<()> {
        let result = self.sync_journal();
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
                #[cfg(feature = "remote")]
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
                Err(_) => {
                    let _ = p.reply.send(Err(self.journal.group_commit_failure()));
                }
            }
        }
        result
    }

    /// [`Journal::sync`](crate::Journal::sync), the one way the actor makes appends durable:
    /// on success every event appended so far is durable, and each guild's
    /// [`Reprise::durable_up_to`](super::Reprise::durable_up_to) watch moves up to its last one.
    pub(super) fn sync_journal(&mut self) -> Result<()> {
        self.journal.sync()?;
        for (guild, (_, last)) in self.unsynced.drain() {
            if let Some(tx) = self.durable_watches.get(&guild) {
                tx.send_if_modified(|durable| {
                    let moved = *durable < last;
                    *durable = (*durable).max(last);
                    moved
                });
            }
        }
        self.durable_watches.retain(|_, tx| tx.receiver_count() > 0);
        Ok(())
    }

    /// A watch of the highest seq of `guild` known durable (see
    /// [`Reprise::durable_up_to`](super::Reprise::durable_up_to)).
    pub(super) fn durable_watch(&mut self, guild: GuildId) -> Result<watch::Receiver<Seq>> {
        if let Some(tx) = self.durable_watches.get(&guild) {
            return Ok(tx.subscribe());
        }
        let durable = match self.unsynced.get(&guild) {
            Some(&(first, _)) => first - 1,
            // Everything the journal holds of the guild (what recovery found included).
            None => self.journal.state(guild)?.seq,
        };
        let (tx, rx) = watch::channel(durable);
        self.durable_watches.insert(guild, tx);
        Ok(rx)
    }

    pub(super) fn publish(&mut self, guild: GuildId, logged: &[Arc<LoggedEvent>]) {
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
}

//! Background snapshots: when a guild is due (by events, bytes or time, on demand, at
//! shutdown), the actor takes a [`SnapshotJob`] from the journal and hands it to the snapshot
//! thread, which writes it off the append path; the result comes back as [`Done`].

use super::actor::Actor;
#[cfg(feature = "remote")]
use super::shipper::ShipMsg;
use super::Reply;
use crate::error::{Error, Result};
use crate::ids::{GuildId, Seq};
use crate::journal::SnapshotJob;

/// A snapshot job the snapshot thread finished, with its outcome.
pub(super) type Done = (SnapshotJob, Result<u64>);

impl Actor {
    pub(super) fn snapshot_by_size(&mut self, guild: GuildId) {
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

    pub(super) fn snapshot_by_time(&mut self) {
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
    pub(super) fn schedule_snapshot(&mut self, guild: GuildId, waiter: Option<Reply<Option<Seq>>>) {
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
        // The job may carry a sealed segment whose fsync is owed (it holds commit-log
        // retirement back until it comes back): it is never dropped. Without a snapshot thread
        // to take it (gone), it is written here.
        let unsent = match &self.job_tx {
            Some(tx) => tx.send(job).err().map(|e| e.0),
            None => Some(job),
        };
        self.in_flight.insert(guild, waiter.into_iter().collect());
        if let Some(mut job) = unsent {
            let result = job.write();
            self.snapshot_done((job, result));
        }
    }

    pub(super) fn snapshot_done(&mut self, (job, result): Done) {
        let guild = job.guild();
        let outcome = match result {
            Ok(_) => self.journal.snapshot_finish(&job).map(|()| Some(job.seq())),
            Err(e) => {
                self.journal.snapshot_failed(&job);
                Err(e)
            }
        };
        #[cfg(feature = "remote")]
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
}

//! Appends that do not wait for their durability: [`Reprise::append_ordered`] answers as soon
//! as the event has its seq in the guild's order, and [`Ordered::durable`] (or the guild's
//! [`Reprise::durable_up_to`] watch) says when it is durable.

use std::time::Instant;

use tokio::sync::{oneshot, watch};

use super::{Command, Reprise};
use crate::config::Durability;
use crate::error::{Error, Result};
use crate::ids::{GuildId, Seq};
use crate::session::Event;

/// An event in its guild's order, with its seq, whose durability is still to come: what
/// [`Reprise::append_ordered`] returns.
///
/// Dropping it takes nothing back: the event is in the journal (its state and subscribers have
/// it, or will at its commit) and becomes durable by its durability's rule all the same; only
/// the news of it is lost. [`Reprise::durable_up_to`] gives the same news for a whole guild.
#[derive(Debug)]
pub struct Ordered {
    guild: GuildId,
    seq: Seq,
    durable: oneshot::Receiver<Result<Vec<Seq>>>,
}

impl Ordered {
    /// The guild the event was appended to.
    pub fn guild(&self) -> GuildId {
        self.guild
    }

    /// The event's sequence number in its guild.
    pub fn seq(&self) -> Seq {
        self.seq
    }

    /// Resolves with the event's seq once the event is durable, exactly when
    /// [`Reprise::append_with`] at the same durability would have returned: for `Always` at
    /// the next group commit, for `Batched` within its `delay_max` (or sooner, with
    /// `events_max` events waiting or another commit), for `Remote` once the object store holds
    /// it, and for `None` at the next group commit anything else makes (an `Always` or
    /// `Batched` append of any guild, [`Reprise::flush`], a snapshot, the ship interval with a
    /// remote, [`Reprise::shutdown`]): nothing bounds when.
    ///
    /// # Errors
    /// The group commit's failure ([`Error::Poisoned`]: the event may or may not survive a power
    /// loss, and every later append fails too until the journal is reopened); with `Remote`,
    /// the store's failure or [`Error::Fenced`]; [`Error::Closed`] when the writer stopped
    /// without an answer.
    ///
    /// # Cancel safety
    /// Dropping the future changes nothing about the event (see [`Ordered`]).
    pub async fn durable(self) -> Result<Seq> {
        self.durable.await.map_err(|_| Error::Closed)??;
        Ok(self.seq)
    }
}

impl Reprise {
    /// Appends `event` to `guild` at `durability` and returns as soon as it is validated and has
    /// its seq in the guild's order, without waiting for it to become durable: the call for a
    /// stream of frequent, cheap-to-lose events such as Lavalink's position reports, so that a
    /// guild task never stalls for `Batched`'s `delay_max`.
    ///
    /// Events sent one after the other (each call awaited before the next) are appended in
    /// that order, like any append. The event is in the guild's state at once; subscribers get
    /// it when [`Reprise::append_with`] would have acknowledged it (for `None` at once). Its
    /// durability comes as it would for [`Reprise::append_with`]: [`Ordered::durable`] resolves
    /// then, and the guild's [`Reprise::durable_up_to`] watch moves past it.
    ///
    /// # Errors
    /// As [`Reprise::append`] for what keeps the event out ([`Error::InvalidEvent`]: nothing
    /// written; a poisoned or fenced guild; [`Error::Closed`]). Failures after it has its seq
    /// come from [`Ordered::durable`] and from later appends.
    ///
    /// # Cancel safety
    /// Dropping the future before the writer received the command leaves the event out; dropping
    /// it later takes nothing back: the writer appends the event and makes it durable by
    /// `durability`'s rule, only its seq is lost.
    pub async fn append_ordered(
        &self,
        guild: GuildId,
        event: Event,
        durability: Durability,
    ) -> Result<Ordered> {
        let started = Instant::now();
        let (ordered, ordered_rx) = oneshot::channel();
        let (reply, durable) = oneshot::channel();
        self.inner
            .tx
            .send(Command::Append {
                guild,
                events: vec![event],
                durability: Some(durability),
                reply,
                ordered: Some(ordered),
            })
            .await
            .map_err(|_| Error::Closed)?;
        let seqs = ordered_rx.await.map_err(|_| Error::Closed)??;
        metrics::histogram!(crate::telemetry::APPEND_LATENCY_SECONDS)
            .record(started.elapsed().as_secs_f64());
        let seq = seqs.first().copied().ok_or(Error::Closed)?;
        Ok(Ordered {
            guild,
            seq,
            durable,
        })
    }

    /// A watch of the highest seq of `guild` known durable: every event of the guild up to it
    /// survives a power loss. It starts at the guild's seq as this runtime found it (recovered
    /// events count as durable) or at the last seq already durable, and only moves up, at each
    /// group commit that covers the guild's events (whatever their durability). After a failed
    /// group commit it stops moving (the failure comes from [`Ordered::durable`] and the
    /// appends); once the writer stops, `changed()` fails.
    ///
    /// # Errors
    /// Recovery errors of the guild, [`Error::Closed`].
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn durable_up_to(&self, guild: GuildId) -> Result<watch::Receiver<Seq>> {
        self.call(|reply| Command::DurableWatch { guild, reply })
            .await
    }
}

//! The actor's side of the remote: what it reports to the shipping task (`shipper.rs`),
//! which guilds a newer owner fenced, and claims (which need the journal, so the actor runs
//! them).

use std::collections::{HashMap, HashSet};

use tokio::sync::mpsc;

use super::actor::Actor;
use super::shipper::{ShipMsg, ShipNote};
use super::RemoteOptions;
use crate::error::{Error, Result};
use crate::ids::{GuildId, Seq};
use crate::remote::{Claimed, LocalDir, Remote};

/// The actor's side of shipping (see `shipper.rs`).
pub(super) struct Shipping {
    pub(super) options: RemoteOptions,
    pub(super) tx: Option<mpsc::UnboundedSender<ShipMsg>>,
    pub(super) task: Option<tokio::task::JoinHandle<()>>,
    /// Guilds with events appended since they were last reported durable: last seq.
    pub(super) unshipped: HashMap<GuildId, Seq>,
    /// Guilds a newer owner claimed.
    pub(super) fenced: HashMap<GuildId, (crate::ids::Epoch, String)>,
    /// Guilds whose local ownership record was read.
    pub(super) checked: HashSet<GuildId>,
}

impl Shipping {
    pub(super) fn send(&self, msg: ShipMsg) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(msg);
        }
    }
}

impl Actor {
    pub(super) async fn claim(&mut self, guild: GuildId) -> Result<Claimed> {
        let Some(shipping) = &self.shipping else {
            return Err(no_remote());
        };
        let (remote, owner) = (
            shipping.options.remote.clone(),
            shipping.options.owner.clone(),
        );
        self.commit()?;
        let claimed = remote.claim(&mut self.journal, guild, &owner).await?;
        // The guild's log may now be the store's (longer, or shorter than what was local):
        // its durability watch says what the journal holds now, all of it durable.
        if let (Some(tx), Ok(state)) = (self.durable_watches.get(&guild), self.journal.state(guild))
        {
            tx.send_replace(state.seq);
        }
        if let Some(s) = self.shipping.as_mut() {
            s.fenced.remove(&guild);
            s.checked.insert(guild);
            s.unshipped.remove(&guild);
            s.send(ShipMsg::Claimed { guild });
        }
        Ok(claimed)
    }

    pub(super) fn ship_note(&mut self, note: ShipNote) {
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
    pub(super) fn ship_durable(&mut self, sync: bool) {
        let Some(s) = &self.shipping else { return };
        if s.unshipped.is_empty() {
            return;
        }
        if sync {
            // Pending appends are answered by their commit, which reports them (and every
            // `none` append before them) durable; otherwise a plain sync does.
            let synced = if self.pending.is_empty() {
                self.sync_journal()
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
    pub(super) fn check_fenced(&mut self, guild: GuildId) -> Result<()> {
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
}

pub(super) fn no_remote() -> Error {
    Error::Remote {
        op: "ship",
        key: String::new(),
        source: "this runtime was opened without a remote (Reprise::open_with_remote)".into(),
    }
}

//! Object keys: every key reprise makes in the store, under the remote's prefix, and the
//! fixed-width numbers in them read back.

use object_store::path::Path as ObjectPath;

use crate::ids::{Epoch, GuildId, LogPosition, Seq};

use super::Remote;

pub(super) fn parse_num(name: &str) -> Option<u64> {
    (name.len() == 20 && name.bytes().all(|b| b.is_ascii_digit()))
        .then(|| name.parse().ok())
        .flatten()
}

impl Remote {
    /// The key of `rel` under this remote's prefix.
    pub fn key(&self, rel: &str) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from(rel)
        } else {
            ObjectPath::from(format!("{}/{rel}", self.prefix))
        }
    }

    /// The key of the claim of `guild` at `epoch`.
    pub fn claim_key(&self, guild: GuildId, epoch: Epoch) -> ObjectPath {
        self.key(&format!("guilds/{}/claim/{epoch:020}", guild.0))
    }

    /// The key of position `position` of the log of writer `writer`.
    pub fn writer_key(&self, writer: &str, position: LogPosition) -> ObjectPath {
        self.key(&format!("writers/{writer}/{position:020}"))
    }

    /// The key of the notice the claim of epoch `by` leaves for writer `writer` before it
    /// reads that writer's log to fence `epoch` of `guild` (see [`Remote::retain`]).
    pub fn notice_key(&self, writer: &str, guild: GuildId, epoch: Epoch, by: Epoch) -> ObjectPath {
        self.key(&format!(
            "notices/{writer}/{:020}-{epoch:020}-{by:020}",
            guild.0
        ))
    }

    /// The key of the snapshot of `guild` at `seq` uploaded by the owner of `epoch`.
    pub fn snapshot_key(&self, guild: GuildId, seq: Seq, epoch: Epoch) -> ObjectPath {
        self.key(&format!(
            "guilds/{}/snap/{seq:020}-{epoch:020}.snap",
            guild.0
        ))
    }

    /// The key of the snapshot of `guild` at `seq` that the owner of `epoch` uploaded on the
    /// skip path (its local log had dropped the events before it): it stands only for the
    /// skip entry of that epoch's log that names it, and is never a claim's base by itself
    /// (the skip entry may have met a fence, and then the epoch's history never reached it).
    pub fn skip_snapshot_key(&self, guild: GuildId, seq: Seq, epoch: Epoch) -> ObjectPath {
        self.key(&format!(
            "guilds/{}/snap/{seq:020}-{epoch:020}.skip",
            guild.0
        ))
    }
}

//! Remote retention: the batches and snapshots that newer snapshots made obsolete, and the
//! notices of claims that died.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use futures_util::TryStreamExt;

use crate::error::Result;
use crate::ids::{Epoch, GuildId, LogPosition, Seq};

use super::store::remote_err;
use super::{
    now_unix_ms, LogObject, Owner, Remote, Writer, NOTICE_AGE_MAX, RETAIN_FOREIGN_GUILDS_MAX,
    RETAIN_SWEEP_BATCHES_MAX,
};

impl Remote {
    /// Reads up to [`RETAIN_SWEEP_BATCHES_MAX`] of the batches below what this process has
    /// read or written (listed once), newest first, into the writer's index, lowering
    /// `indexed_from` as it goes (the index stays complete from there to the head).
    async fn sweep_log(&self, writer: &mut Writer) -> Result<()> {
        if writer.indexed_from <= LogPosition(1) {
            return Ok(());
        }
        let mut unswept = match writer.unswept.take() {
            Some(u) => u,
            None => {
                let below = writer.indexed_from;
                let mut all = self
                    .positions_after(&writer.name, LogPosition::NONE)
                    .await?;
                all.retain(|&p| p < below);
                all
            }
        };
        let name = writer.name.clone();
        let mut cache = HashMap::new();
        for _ in 0..RETAIN_SWEEP_BATCHES_MAX {
            let Some(p) = unswept.pop() else {
                break;
            };
            if let Some(LogObject::Batch(b)) = self.read_log_object(&name, p, &mut cache).await? {
                writer.note_batch(&b);
            }
            writer.indexed_from = writer.indexed_from.min(p);
        }
        if unswept.is_empty() {
            writer.indexed_from = LogPosition(1);
        } else {
            writer.unswept = Some(unswept);
        }
        Ok(())
    }

    /// Remote retention, which follows local retention: deletes this writer's batch objects
    /// whose every entry is held by a newer snapshot in the remote (its owner's,
    /// [`Owner::snapshot_stored`]; for a guild-epoch no owner here holds — a guild that moved,
    /// before or since this process started — a snapshot of that epoch or a newer one), and
    /// each guild's older snapshots of the same epoch. Nothing is deleted while a claim's
    /// notice for this writer is younger than [`NOTICE_AGE_MAX`] (older ones are removed).
    /// The batches a previous process wrote are read `RETAIN_SWEEP_BATCHES_MAX` (64) per round
    /// (newest first) until all were judged; the snapshots of at most
    /// `RETAIN_FOREIGN_GUILDS_MAX` (64) guilds no owner here holds are listed per round (round
    /// robin). The newest position is kept (it tells the next process where the log goes
    /// on), and fences are never deleted. Returns the objects deleted.
    ///
    /// A claim reading the log meanwhile sees an object vanish and reads again; it never
    /// needs a deleted object, since it starts from the newest snapshot.
    ///
    /// # Errors
    /// [`Error::Remote`](crate::Error::Remote) (what was deleted before stays deleted).
    pub async fn retain(&self, writer: &mut Writer, owners: &mut [Owner]) -> Result<u64> {
        // A claim leaves a notice before it lists this log to fence a guild, and removes it
        // once it is done. While one is there, a fence may be on its way to the position
        // after the claim's listing, which may lie below `head` — even when this writer met
        // another claim's fence for that epoch already (two claims at once): nothing is
        // deleted. Without one, every later claim lists the log after `head` exists (it is
        // never deleted), so its fence lands after every position deleted here. A notice
        // older than NOTICE_AGE_MAX is from a claim that died: claims write fences only
        // within NOTICE_FENCE_WINDOW of their notice, so it is removed.
        let head = writer.head;
        let prefix = self.key(&format!("notices/{}", writer.name));
        let notices: Vec<object_store::ObjectMeta> = self
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|e| remote_err("list", &prefix, e))?;
        let now_ms = now_unix_ms();
        let mut abandoned = Vec::new();
        for notice in notices {
            let stored_ms = u64::try_from(notice.last_modified.timestamp_millis()).unwrap_or(0);
            let age = Duration::from_millis(now_ms.saturating_sub(stored_ms));
            if age < NOTICE_AGE_MAX {
                return Ok(0);
            }
            abandoned.push(notice.location);
        }
        let mut deleted = 0;
        for key in abandoned {
            self.delete(&key).await?;
            deleted += 1;
        }
        self.sweep_log(writer).await?;
        let mut covered: HashMap<(u64, Epoch), Seq> = owners
            .iter()
            .filter(|me| me.fenced_by.is_none() && me.snapshot_stored > 0)
            .map(|me| ((me.guild.0, me.epoch), me.snapshot_stored))
            .collect();
        // The entries of a guild-epoch no owner here holds (fenced since, moved before this
        // process started, or an epoch this directory held before it claimed the guild
        // again) all precede the epoch's fence in this log (the writer stops at it), so they
        // are in the guild's history: a snapshot under the ordinary name of that epoch or a
        // newer one, at or after an entry's last event, holds it (a claim starts from the
        // newest snapshot, and reads again when one appears while it reads). Without this,
        // the batches holding a moved guild's last entries would stay forever.
        let live: HashSet<(u64, Epoch)> = owners
            .iter()
            .filter(|me| me.fenced_by.is_none())
            .map(|me| (me.guild.0, me.epoch))
            .collect();
        let mut foreign: BTreeMap<u64, Vec<Epoch>> = BTreeMap::new();
        for &(g, e) in writer.index.keys() {
            if !live.contains(&(g, e)) {
                foreign.entry(g).or_default().push(e);
            }
        }
        let next = writer.foreign_next;
        let turn: Vec<u64> = foreign
            .range(next..)
            .chain(foreign.range(..next))
            .take(RETAIN_FOREIGN_GUILDS_MAX)
            .map(|(&g, _)| g)
            .collect();
        for g in turn {
            let snapshots = self.snapshots(GuildId(g)).await?;
            for &e in &foreign[&g] {
                let newest = snapshots.iter().filter(|&&(_, ep)| ep >= e).max();
                if let Some(&(s, _)) = newest {
                    covered.insert((g, e), s);
                }
            }
            writer.foreign_next = g.wrapping_add(1);
        }
        // Position → every (guild, epoch) entry there, with its last event.
        type Entries = Vec<((u64, Epoch), Seq)>;
        let mut by_position: BTreeMap<LogPosition, Entries> = BTreeMap::new();
        for (&key, parts) in &writer.index {
            for &(position, _, last) in parts {
                by_position.entry(position).or_default().push((key, last));
            }
        }
        let obsolete: Vec<LogPosition> = by_position
            .iter()
            .filter(|(&p, entries)| {
                p < head
                    && entries
                        .iter()
                        .all(|(key, last)| covered.get(key).is_some_and(|s| s >= last))
            })
            .map(|(&p, _)| p)
            .collect();
        for p in obsolete {
            self.delete(&self.writer_key(&writer.name, p)).await?;
            deleted += 1;
            for parts in writer.index.values_mut() {
                parts.retain(|part| part.0 != p);
            }
        }
        writer.index.retain(|_, parts| !parts.is_empty());
        for me in owners.iter_mut() {
            if me.fenced_by.is_some() || me.snapshot_stored <= me.snapshot_retained {
                continue;
            }
            for (s, e, skip) in self.snapshot_objects(me.guild).await? {
                if e != me.epoch {
                    continue;
                }
                // A skip-path upload is needed only while no snapshot of the epoch at or
                // after it is stored under the ordinary name (a claim reading its skip entry
                // then starts from that one).
                if skip && s <= me.snapshot_stored {
                    self.delete(&self.skip_snapshot_key(me.guild, s, e)).await?;
                    deleted += 1;
                } else if !skip && s < me.snapshot_stored {
                    self.delete(&self.snapshot_key(me.guild, s, e)).await?;
                    deleted += 1;
                }
            }
            me.snapshot_retained = me.snapshot_stored;
        }
        Ok(deleted)
    }
}

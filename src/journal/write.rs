//! The write path: appends (every event of a batch validated and framed before anything is
//! written, queued in the guild's buffer and in the commit log, acknowledged at the requested
//! durability), the guild's active segment (continued, created, sealed), writing buffered
//! frames out, group commit (`flush`, `sync`), and the upkeep an append triggers, run before
//! the next append. Also the per-guild fsyncs that commit-log retirement and the snapshots share.

use std::collections::BTreeMap;
use std::path::Path;
#[cfg(feature = "remote")]
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::snapshots::discharge_seals;
use super::{
    unreachable_missing_guild, GuildLog, Journal, OpenMode, SegmentMeta, BUFFERED_BYTES_MAX,
    GUILD_BUFFER_BYTES_MAX,
};
use crate::clock::now_unix_ms;
use crate::commit_log::CommitLog;
use crate::config::{Config, Durability};
use crate::crypto::{KeyId, Keyring};
use crate::error::{Error, Result};
use crate::format::frame;
use crate::format::segment::{self, SegmentHeader};
use crate::ids::{GuildId, Seq};
use crate::layout;
use crate::session::{self, Event};
use crate::storage::{self, Storage};

impl Journal {
    /// Validates `event` against the guild's current state and appends it as the guild's next
    /// event, returning its sequence number once it is acknowledged at `durability`.
    ///
    /// Nothing is written when the event is rejected. A failed write is rolled back when the
    /// file can be cut back; otherwise, and after any failed fsync, the guild's log is poisoned.
    ///
    /// # Errors
    /// [`Error::InvalidEvent`] / [`Error::EventTooLarge`] (nothing written), [`Error::Io`],
    /// [`Error::Poisoned`], [`Error::ReadOnly`], or a recovery error for the guild.
    pub fn append(&mut self, guild: GuildId, event: &Event, durability: Durability) -> Result<Seq> {
        self.append_at(guild, event, durability, now_unix_ms())
    }

    /// [`Journal::append`] with the append time given by the caller (Unix milliseconds), as
    /// recorded in the frame.
    ///
    /// # Errors
    /// As [`Journal::append`].
    pub fn append_at(
        &mut self,
        guild: GuildId,
        event: &Event,
        durability: Durability,
        now: u64,
    ) -> Result<Seq> {
        let seq = self.append_batch(guild, std::slice::from_ref(event), now)?;
        self.sync_for(durability)?;
        Ok(seq)
    }

    /// Appends `events` to `guild` as its next events, all or nothing, and returns their
    /// sequence numbers once all are acknowledged at `durability`.
    ///
    /// Every event is validated (each against the state the previous ones produce) and
    /// encoded before anything is written. An I/O error part-way takes the whole batch back:
    /// none of it stays in the journal (nor becomes durable, nor is shipped), so a retry does
    /// not duplicate any of it. The exception is the one [`Journal::append`] has too: after a
    /// failed fsync (or a failed write that cannot be cut back) the log is poisoned, nothing
    /// more is acknowledged, and whether the batch survives is, as after a crash, up to the
    /// recovery at the next open — whole or in part, but only ever a prefix of the guild's
    /// appends.
    ///
    /// # Errors
    /// As [`Journal::append`]; an invalid or oversized event rejects the whole batch.
    pub fn append_many(
        &mut self,
        guild: GuildId,
        events: &[Event],
        durability: Durability,
    ) -> Result<Vec<Seq>> {
        self.append_many_at(guild, events, durability, now_unix_ms())
    }

    /// [`Journal::append_many`] with the append time given by the caller (Unix milliseconds),
    /// recorded in every frame of the batch.
    ///
    /// # Errors
    /// As [`Journal::append_many`].
    pub fn append_many_at(
        &mut self,
        guild: GuildId,
        events: &[Event],
        durability: Durability,
        now: u64,
    ) -> Result<Vec<Seq>> {
        let seqs = self.append_unsynced(guild, events, now)?;
        self.sync_for(durability)?;
        Ok(seqs)
    }

    /// [`Journal::append_many_at`] but for the fsync that the durability asks for, which the
    /// caller owes before acknowledging the events: the runtime's group commit, one
    /// [`Journal::sync`] for every append waiting (answered with
    /// [`Journal::group_commit_failure`] if it fails). Everything else an append does happens
    /// here, whatever its durability (the records reach the commit log's file or its reserved
    /// extension, see [`Journal::append_batch`]).
    pub(crate) fn append_unsynced(
        &mut self,
        guild: GuildId,
        events: &[Event],
        now: u64,
    ) -> Result<Vec<Seq>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let last = self.append_batch(guild, events, now)?;
        Ok((last + 1 - events.len() as u64..=last).collect())
    }

    /// The fsync an append at `durability` waits for before it returns: [`Journal::sync`] for
    /// `Always` and `Remote` (a failure poisons the commit log: the events may or may not
    /// survive a power loss, and nothing is acknowledged any more until the journal is
    /// reopened); nothing for the others.
    fn sync_for(&mut self, durability: Durability) -> Result<()> {
        if waits_for_sync(durability) {
            self.sync()?;
        }
        Ok(())
    }

    /// The answer owed to every append that waited for a group commit ([`Journal::sync`]) that
    /// failed: [`Error::Poisoned`] for the commit log, naming the operation that failed (a
    /// failed sync always poisons it).
    pub(crate) fn group_commit_failure(&self) -> Error {
        let op = self.commit.as_ref().and_then(|c| c.poisoned);
        Error::Poisoned {
            guild: None,
            op: op.unwrap_or("write"),
        }
    }

    /// Appends a non-empty batch, all or nothing; returns the seq of its last event. At every
    /// durability the records are written through to the commit log (not yet synced: see
    /// [`Journal::sync_for`]), unless they fit in its reserved extension: then the next sync
    /// writes them (see [`CommitLog::queue_reserved`]). So a full disk fails the append that
    /// meets it, and never a later sync of appends that returned `Ok`.
    fn append_batch(&mut self, guild: GuildId, events: &[Event], now: u64) -> Result<Seq> {
        self.writable()?;
        self.load(guild)?;
        self.check_fence(guild)?;
        if let Some(op) = self.commit.as_ref().and_then(|c| c.poisoned) {
            return Err(Error::Poisoned { guild: None, op });
        }
        // Maintenance due since the previous append runs first, so that its failure fails this
        // append before the event takes effect: an append that returns an error has not
        // changed the journal (but after a failed fsync, see below).
        self.maintain(guild, now)?;
        // Nothing is built on files an earlier process may not have made durable.
        self.settle_inherited(guild)?;
        self.ensure_commit(now)?;
        self.use_tick += 1;
        let needs_file = match self.guilds.get_mut(&guild) {
            Some(log) => {
                log.last_used = self.use_tick;
                log.active.is_none()
            }
            None => false,
        };
        if needs_file {
            self.make_room_for_file()?;
            self.open_files += 1;
        }
        let Journal {
            root,
            storage,
            config,
            guilds,
            frame_buf,
            guilds_dir_ready,
            commit: commit_slot,
            ..
        } = self;
        let log = guilds
            .get_mut(&guild)
            .ok_or_else(unreachable_missing_guild)?;
        // (The commit log's poison was checked above: the upkeep that ran since fails this
        // append if it poisons it.)
        if let Some(op) = log.poisoned {
            return Err(Error::Poisoned {
                guild: Some(guild),
                op,
            });
        }
        // The whole batch is validated before anything is written.
        let batch_state = match events {
            [event] => {
                session::validate(&log.current.state, event)
                    .map_err(|source| Error::InvalidEvent { guild, source })?;
                None
            }
            _ => {
                let mut scratch = log.current.state.clone();
                for event in events {
                    session::apply_checked(&mut scratch, event)
                        .map_err(|source| Error::InvalidEvent { guild, source })?;
                }
                Some(scratch)
            }
        };
        let first = log.current.seq + 1;
        let last = log.current.seq + events.len() as u64;
        // Every frame is encoded before anything is written (an oversized event writes nothing).
        frame_buf.clear();
        let mut ends = Vec::with_capacity(events.len());
        for (seq, event) in (first..).zip(events) {
            let seal = config.keys.as_ref().map(|keys| frame::Seal {
                keys,
                guild: guild.0,
            });
            frame::encode(frame_buf, seq, now, event, seal).map_err(|len| {
                Error::EventTooLarge {
                    guild,
                    len,
                    len_max: u64::from(frame::PAYLOAD_LEN_MAX),
                }
            })?;
            ends.push(frame_buf.len());
        }
        let mut ctx = Ctx {
            root,
            storage,
            config,
            guilds_dir_ready,
            commit: commit_slot,
        };
        let segments_before = log.segments.len();
        let unsynced_before = (log.unsynced, log.dir_unsynced, log.parent_unsynced);
        ctx.ensure_active(guild, log, now)?;
        // Room for the whole batch in the guild's buffer first: no frame of the batch may reach
        // the segment file before every record of the batch is queued (they are taken back
        // together).
        if !log.pending.is_empty() && log.pending.len() + frame_buf.len() > GUILD_BUFFER_BYTES_MAX {
            ctx.flush_guild(guild, log)?;
        }
        let commit = ctx.commit.as_mut().ok_or_else(unreachable_missing_guild)?;
        let queued = commit.queued();
        let history_max = log.current.state.history_max;
        let key_id = key_id_of(config.keys.as_ref());
        let mut start = 0;
        for &end in &ends {
            let frame = &frame_buf[start..end];
            queue_frame(log, frame);
            commit.queue(guild, history_max, key_id, frame);
            start = end;
        }
        // Whatever the durability, the records reach the file before the events take effect
        // unless they fit inside the commit log's reserved extension, so that a full disk
        // fails this append, taken back whole, and never the later sync that acknowledges
        // the appends before it; likewise a full queue. Inside the reserved extension no
        // write can find the disk full: there the records wait for the next sync (the group
        // commit's), which writes every guild's records at once (a failed write there, an
        // I/O error, poisons the log, as a failed fsync does).
        let written = if !commit.queue_reserved() || commit.queue_full() {
            commit.write_through(queued)
        } else {
            Ok(())
        };
        if let Err(e) = written {
            unwrite_frames(log, frame_buf.len(), events.len() as u64);
            if log.segments.len() > segments_before {
                // The segment (and the guild's directory) this append created hold nothing:
                // they go too, so that a refused first event leaves no trace of the guild.
                ctx.remove_new_segment(guild, log);
                (log.unsynced, log.dir_unsynced, log.parent_unsynced) = unsynced_before;
            }
            return Err(e);
        }
        match batch_state {
            Some(state) => log.current.state = state,
            None => {
                for event in events {
                    session::apply(&mut log.current.state, event);
                }
            }
        }
        log.current.seq = last;
        log.events_since_snapshot += events.len() as u64;
        log.bytes_since_snapshot += frame_buf.len() as u64;
        self.buffered += frame_buf.len() as u64;
        metrics::counter!(crate::telemetry::APPENDS_TOTAL).increment(events.len() as u64);
        metrics::counter!(crate::telemetry::APPEND_BYTES_TOTAL).increment(frame_buf.len() as u64);
        Ok(last)
    }

    /// `Err(Fenced)` when the directory's ownership record of `guild` says a newer owner
    /// claimed it (as the CLI and the runtime check): nothing more is appended to the guild,
    /// with or without the `remote` feature (CONTRACT §3).
    fn check_fence(&mut self, guild: GuildId) -> Result<()> {
        let written = self.owner_records_written.load(Ordering::Acquire);
        if written != self.fences_seen {
            self.fences.clear();
            self.fences_seen = written;
        }
        let fence = match self.fences.get(&guild) {
            Some(fence) => fence.clone(),
            None => {
                let fence = read_owner_record(self.storage.as_ref(), &self.root, guild)?
                    .and_then(|r| r.fenced_by);
                self.fences.insert(guild, fence.clone());
                fence
            }
        };
        match fence {
            Some((epoch, owner)) => Err(Error::Fenced {
                guild,
                epoch,
                owner,
            }),
            None => Ok(()),
        }
    }

    #[cfg(feature = "remote")]
    /// The counter [`crate::remote::LocalDir`] bumps whenever it writes an ownership record.
    pub(crate) fn owner_records_written(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.owner_records_written)
    }

    /// The upkeep an append may trigger, run before the next append (or [`Journal::sync`]) so
    /// that none of it can fail an append whose event has already taken effect: writing
    /// buffered frames out, a commit-log retirement once the commit log is large, sealing the
    /// guild's full segment, and its automatic snapshot.
    fn maintain(&mut self, guild: GuildId, now: u64) -> Result<()> {
        if self.buffered >= BUFFERED_BYTES_MAX {
            self.flush_buffers(None)?;
        }
        // Deferred while a background snapshot still owes its sealed segment's fsync (the
        // commit log covers that segment until then).
        if self.seals_in_flight == 0
            && self
                .commit
                .as_ref()
                .is_some_and(|c| c.len() >= self.config.commit_bytes_max)
        {
            self.retire_commit_logs(true)?;
        }
        let (mut ctx, guilds) = self.split();
        let Some(log) = guilds.get_mut(&guild) else {
            return Ok(());
        };
        if log.poisoned.is_some() {
            return Ok(());
        }
        if log.active.is_some()
            && log
                .segments
                .last()
                .is_some_and(|s| s.len >= ctx.config.segment_bytes_max)
        {
            ctx.seal_active(guild, log)?;
        }
        let due = ctx
            .config
            .snapshot_every_events
            .is_some_and(|n| log.events_since_snapshot >= n)
            || ctx
                .config
                .snapshot_every_bytes
                .is_some_and(|n| log.bytes_since_snapshot >= n);
        if due && log.current.seq > 0 {
            ctx.snapshot(guild, log, now)?;
        }
        Ok(())
    }

    /// Keeps open guild segments under [`Config::open_files_max`]: when the count may have
    /// reached it, counts them and closes the least recently used quarter, after writing their
    /// buffered frames and fsyncing them (in parallel) through the descriptor that wrote them:
    /// a retirement proves a segment durable only by an `fdatasync` on a descriptor that saw
    /// its writes (one opened later may miss a write-back error), so none is closed dirty.
    /// A failed fsync poisons the guild (fsyncgate).
    fn make_room_for_file(&mut self) -> Result<()> {
        let cap = self.config.open_files_max.max(4);
        if self.open_files < cap {
            return Ok(());
        }
        let mut open: Vec<(u64, GuildId)> = self
            .guilds
            .iter()
            .filter(|(_, l)| l.active.is_some())
            .map(|(g, l)| (l.last_used, *g))
            .collect();
        self.open_files = open.len();
        if open.len() < cap {
            return Ok(());
        }
        open.sort_unstable();
        let close = open.len() + 1 - cap + cap / 4;
        let closing: Vec<GuildId> = open.into_iter().take(close).map(|(_, g)| g).collect();
        for guild in &closing {
            self.flush_buffers(Some(*guild))?;
        }
        let threads = self.storage.sync_parallelism();
        let (root, storage) = (self.root.as_path(), self.storage.as_ref());
        let work: Vec<(GuildId, &mut GuildLog)> = self
            .guilds
            .iter_mut()
            .filter(|(g, l)| l.active.is_some() && closing.binary_search(g).is_ok())
            .map(|(g, l)| (*g, &mut **l))
            .collect();
        let results = storage::in_parallel(threads, work, |(guild, log)| {
            let synced = sync_segment(root, storage, guild, log);
            // Closed either way: after a failed fsync the descriptor is of no more use.
            log.active = None;
            synced
        });
        self.open_files = self.open_files.saturating_sub(results.len());
        results.into_iter().collect()
    }

    /// Writes buffered frames to the guild segments: of one guild, or of all (`None`).
    pub(super) fn flush_buffers(&mut self, only: Option<GuildId>) -> Result<()> {
        let (mut ctx, guilds) = self.split();
        let result = match only {
            Some(guild) => match guilds.get_mut(&guild) {
                Some(log) => ctx.flush_guild(guild, log),
                None => Ok(()),
            },
            None => {
                let mut first_error = None;
                for (guild, log) in guilds.iter_mut() {
                    if let Err(e) = ctx.flush_guild(*guild, log) {
                        first_error.get_or_insert(e);
                    }
                }
                first_error.map_or(Ok(()), Err)
            }
        };
        if only.is_none() {
            self.buffered = 0;
        }
        result
    }

    /// The file-writing half ([`Ctx`]) and the guild map, borrowed apart.
    pub(super) fn split(&mut self) -> (Ctx<'_>, &mut BTreeMap<GuildId, Box<GuildLog>>) {
        let Journal {
            root,
            storage,
            config,
            guilds,
            guilds_dir_ready,
            commit,
            ..
        } = self;
        let ctx = Ctx {
            root,
            storage,
            config,
            guilds_dir_ready,
            commit,
        };
        (ctx, guilds)
    }

    /// Creates this process's commit log if it does not exist yet.
    fn ensure_commit(&mut self, now: u64) -> Result<()> {
        if self.commit.is_none() {
            let generation = self.recovered.generation_max() + 1;
            self.commit = Some(CommitLog::create(
                self.storage.as_ref(),
                &self.root,
                generation,
                now,
                self.config.commit_prealloc_bytes,
            )?);
        }
        Ok(())
    }

    /// Hands every buffered frame and commit record to the OS without an fsync: afterwards the
    /// events appended so far survive a process kill (not a power loss).
    ///
    /// # Errors
    /// [`Error::Io`]; a failed write poisons the guild (or the commit log).
    pub fn flush(&mut self) -> Result<()> {
        self.flush_buffers(None)?;
        match self.commit.as_mut() {
            Some(commit) => commit.write(),
            None => Ok(()),
        }
    }

    /// Makes every event appended so far durable with one `fdatasync` of the shared commit log,
    /// whatever the number of guilds (group commit for [`Durability::Batched`] and
    /// [`Durability::None`]).
    ///
    /// # Errors
    /// The I/O error; the commit log is then poisoned (nothing more is acknowledged as durable
    /// until the journal is reopened).
    pub fn sync(&mut self) -> Result<()> {
        match self.commit.as_mut() {
            Some(commit) if self.mode == OpenMode::ReadWrite => {
                let synced = commit.sync(self.storage.as_ref());
                if synced.is_err() {
                    // Even a failed write that was cut back: the events it carried were appended
                    // (and perhaps acknowledged to no one yet), and they must not become durable
                    // later behind the back of callers told that this sync failed.
                    commit.poisoned.get_or_insert("write");
                }
                synced
            }
            _ => Ok(()),
        }
    }
}

/// The file-writing half of the journal, borrowed apart from the guild map.
pub(super) struct Ctx<'a> {
    pub(super) root: &'a Path,
    pub(super) storage: &'a Arc<dyn Storage>,
    pub(super) config: &'a Config,
    pub(super) guilds_dir_ready: &'a mut bool,
    /// This process's commit log: its queued records are written before any guild frame
    /// reaches a segment file (see [`Ctx::flush_guild`]).
    pub(super) commit: &'a mut Option<CommitLog>,
}

impl Ctx<'_> {
    /// Opens the active segment for appending, creating a new one when there is none, when the
    /// newest one is full or damaged, or when it does not end at the guild's last event.
    fn ensure_active(&mut self, guild: GuildId, log: &mut GuildLog, now: u64) -> Result<()> {
        if log.active.is_some() {
            return Ok(());
        }
        let next = log.current.seq + 1;
        if let Some(last) = log.segments.last() {
            // A segment sealed under another key (or none) is left as it is: new frames
            // go to a new segment under the current key (key rotation, encrypting a journal).
            if last.appendable
                && !last.sealed
                && last.last_seq + 1 == next
                && last.len < self.config.segment_bytes_max
                && last.key_id == key_id_of(self.config.keys.as_ref())
            {
                let path = layout::segment_path(self.root, guild, last.first_seq);
                let file = self
                    .storage
                    .open_append(&path)
                    .map_err(|e| Error::io("open for append", &path, e))?;
                log.active = Some(file);
                return Ok(());
            }
        }
        let dir = layout::guild_dir(self.root, guild);
        let new_dir = log.segments.is_empty() && log.snapshots.is_empty();
        if new_dir {
            if !*self.guilds_dir_ready {
                let guilds = layout::guilds_dir(self.root);
                self.storage
                    .create_dir_all(&guilds)
                    .map_err(|e| Error::io("create directory", &guilds, e))?;
                *self.guilds_dir_ready = true;
            }
            self.storage
                .create_dir_all(&dir)
                .map_err(|e| Error::io("create directory", &dir, e))?;
            log.parent_unsynced = true;
        }
        let path = layout::segment_path(self.root, guild, next);
        let header = segment::encode_header(&SegmentHeader {
            guild: guild.0,
            first_seq: next,
            history_max: log.current.state.history_max,
            created_unix_ms: now,
            key_id: key_id_of(self.config.keys.as_ref()),
        });
        let mut file = self
            .storage
            .create_new(&path)
            .map_err(|e| Error::io("create segment", &path, e))?;
        if let Err(e) = file.append(&header) {
            // Nothing of the guild stays behind (best effort).
            let _ = self.storage.remove(&path);
            if new_dir {
                let _ = self.storage.remove_dir(&dir);
            }
            return Err(Error::io("write segment header", &path, e));
        }
        log.segments.push(SegmentMeta {
            first_seq: next,
            last_seq: next - 1,
            len: header.len() as u64,
            appendable: true,
            sealed: false,
            key_id: key_id_of(self.config.keys.as_ref()),
        });
        log.active = Some(file);
        log.unsynced = true;
        log.dir_unsynced = true;
        Ok(())
    }

    /// Takes back the empty segment the current append created (its header only: no frame
    /// reached it) and the guild's directory when nothing else is in it (the append created it
    /// too: see [`Ctx::ensure_active`]). Best effort: a file left behind is a valid empty
    /// segment, which the next append of the guild goes on with.
    fn remove_new_segment(&mut self, guild: GuildId, log: &mut GuildLog) {
        log.active = None;
        if let Some(meta) = log.segments.pop() {
            let path = layout::segment_path(self.root, guild, meta.first_seq);
            if self.storage.remove(&path).is_err() {
                log.segments.push(meta);
                return;
            }
        }
        if log.segments.is_empty() && log.snapshots.is_empty() {
            let _ = self
                .storage
                .remove_dir(&layout::guild_dir(self.root, guild));
        }
    }

    /// Writes the guild's buffered frames to its active segment.
    ///
    /// The commit log's queued records are written first, so that every frame in a segment file
    /// has its commit record in the commit log file (both perhaps only in the page cache): after
    /// an unclean shutdown the commit logs then name every segment that may hold bytes an
    /// earlier process wrote since its last commit-log retirement, and those are rewritten before
    /// they are built on (see `make_inherited_durable`).
    ///
    /// The frames were already acknowledged (and are in the commit log), so a failed write
    /// cannot be taken back: the guild's log is poisoned, and a reopen restores the frames from
    /// the commit log where it was synced.
    pub(super) fn flush_guild(&mut self, guild: GuildId, log: &mut GuildLog) -> Result<()> {
        if log.pending.is_empty() {
            return Ok(());
        }
        if let Some(commit) = self.commit.as_mut() {
            commit.write()?;
        }
        let (Some(file), Some(meta)) = (log.active.as_mut(), log.segments.last()) else {
            return Err(unreachable_missing_guild());
        };
        if let Err(e) = file.append(&log.pending) {
            // Cut the file back to what it held; the frames stay queued and the next flush
            // retries them (a full disk, then space again). If the cut fails, the guild's log
            // is poisoned: a reopen restores the frames from the commit log.
            let before = meta.len - log.pending.len() as u64;
            if file.truncate(before).is_err() {
                log.active = None;
                log.poisoned = Some("write");
            }
            let path = layout::segment_path(self.root, guild, meta.first_seq);
            return Err(Error::io("append to", path, e));
        }
        // Released, not cleared: a guild that goes idle after this flush would otherwise keep
        // the buffer's capacity for good (measured: ≈ 4 KiB per guild after 3 appends, up to
        // 128 KiB after a burst). Flushes are rare (64 KiB per guild, 16 MiB in all, a seal,
        // a snapshot, a read of the files, a retirement), so regrowing it costs little.
        log.pending = Vec::new();
        Ok(())
    }

    /// fdatasync the active segment (and the directory entries created since the last sync).
    fn sync_guild(&mut self, guild: GuildId, log: &mut GuildLog) -> Result<()> {
        if let Some(op) = log.poisoned {
            return Err(Error::Poisoned {
                guild: Some(guild),
                op,
            });
        }
        self.flush_guild(guild, log)?;
        sync_segment(self.root, self.storage.as_ref(), guild, log)?;
        sync_guild_dir(self.root, self.storage.as_ref(), guild, log)?;
        if log.parent_unsynced {
            let dir = layout::guilds_dir(self.root);
            if let Err(e) = self.storage.sync_dir(&dir) {
                log.poisoned = Some("fsync directory");
                return Err(Error::io("fsync directory", dir, e));
            }
            log.parent_unsynced = false;
        }
        Ok(())
    }

    /// Makes the active segment durable and closes it: it is sealed from now on, and the next
    /// append starts a new segment.
    fn seal_active(&mut self, guild: GuildId, log: &mut GuildLog) -> Result<()> {
        self.sync_guild(guild, log)?;
        log.active = None;
        if let Some(last) = log.segments.last_mut() {
            last.sealed = true;
        }
        Ok(())
    }
}

/// `fdatasync`s the guild's active segment if it holds unsynced bytes, through the descriptor
/// that wrote them (a segment without one was written by an earlier process: through a new
/// descriptor), after every segment sealed for a snapshot job whose fsync is still owed
/// (through the job's descriptor): the segments become durable in log order. A failure
/// poisons the guild and closes the descriptor (fsyncgate).
pub(super) fn sync_segment(
    root: &Path,
    storage: &dyn Storage,
    guild: GuildId,
    log: &mut GuildLog,
) -> Result<()> {
    // Older segments first: a newer one durable after a non-durable one is damage recovery
    // cannot cut as a torn tail.
    discharge_seals(storage, log)?;
    if !log.unsynced {
        return Ok(());
    }
    if let Some(meta) = log.segments.last() {
        let path = layout::segment_path(root, guild, meta.first_seq);
        let synced = match log.active.as_mut() {
            Some(file) => file.sync_data(),
            None => storage
                .open_append(&path)
                .and_then(|mut file| file.sync_data()),
        };
        if let Err(e) = synced {
            log.poisoned = Some("fsync");
            log.active = None;
            return Err(Error::io("fsync", path, e));
        }
    }
    log.unsynced = false;
    Ok(())
}

/// fsyncs the guild's directory if it has an entry not durable yet (a new segment, snapshot or
/// the directory's first files). A failure poisons the guild (fsyncgate).
pub(super) fn sync_guild_dir(
    root: &Path,
    storage: &dyn Storage,
    guild: GuildId,
    log: &mut GuildLog,
) -> Result<()> {
    if !log.dir_unsynced {
        return Ok(());
    }
    let dir = layout::guild_dir(root, guild);
    if let Err(e) = storage.sync_dir(&dir) {
        log.poisoned = Some("fsync directory");
        return Err(Error::io("fsync directory", dir, e));
    }
    log.dir_unsynced = false;
    Ok(())
}

/// Queues `frame` (the guild's next event) for the guild's active segment, in memory.
pub(super) fn queue_frame(log: &mut GuildLog, frame: &[u8]) {
    if let Some(meta) = log.segments.last_mut() {
        meta.len += frame.len() as u64;
        meta.last_seq += 1;
    }
    log.unsynced = true;
    log.pending.extend_from_slice(frame);
}

/// Takes back the `count` frames of `len` bytes in all just queued for the guild's active
/// segment (an append that did not take effect).
pub(super) fn unwrite_frames(log: &mut GuildLog, len: usize, count: u64) {
    let keep = log.pending.len().saturating_sub(len);
    log.pending.truncate(keep);
    if let Some(meta) = log.segments.last_mut() {
        meta.len -= len as u64;
        meta.last_seq -= count;
    }
}

/// The id of the key that seals new files ([`KeyId::PLAINTEXT`] without keys).
fn key_id_of(keys: Option<&Keyring>) -> KeyId {
    keys.map_or(KeyId::PLAINTEXT, Keyring::current)
}

/// Whether an append at `durability` waits for an fsync before it is acknowledged (its records
/// reach the file first at every durability, see [`Journal::append_batch`]).
fn waits_for_sync(durability: Durability) -> bool {
    matches!(durability, Durability::Always | Durability::Remote)
}

/// Reads the directory's ownership record of `guild` (`remote/<guild>.owner`, written by
/// remote claims): `None` when there is none.
///
/// # Errors
/// [`Error::Io`]; a damaged record, or one of another guild, is [`Error::Corrupt`].
pub(crate) fn read_owner_record(
    storage: &dyn crate::storage::Storage,
    root: &std::path::Path,
    guild: GuildId,
) -> Result<Option<crate::format::objects::OwnerRecord>> {
    use crate::error::{Corruption, CorruptionKind};
    use crate::format::objects;
    let path = crate::layout::remote_owner_path(root, guild);
    let bytes = match storage.read(&path, objects::SMALL_OBJECT_LEN_MAX) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("read", &path, e)),
    };
    let record: objects::OwnerRecord = objects::decode(&bytes).map_err(|d| {
        Error::from(Corruption::new(&path, 0, CorruptionKind::HeaderChecksum).detail(d))
    })?;
    if record.guild != guild.0 {
        return Err(Corruption::new(&path, 0, CorruptionKind::HeaderMismatch)
            .detail("ownership record of another guild")
            .into());
    }
    Ok(Some(record))
}

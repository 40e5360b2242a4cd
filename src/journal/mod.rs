//! The synchronous core: open a directory, append events, read states, snapshot, verify.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::commit_log::{CommitIndex, CommitLog};
use crate::config::{Config, Durability, SEGMENT_BYTES_MAX_MAX};
use crate::crypto::{KeyId, Keyring};
use crate::error::{Corruption, CorruptionKind, Error, Result};
use crate::format::segment::{self, ScanEnd, SegmentHeader, SegmentScan};
use crate::format::{self, frame, keycheck, snapshot};
use crate::ids::{GuildId, Seq};
use crate::journal_admin;
use crate::layout::{self, GuildFile};
use crate::recovery::{self, Decision, Found, Run, SnapshotFound};
use crate::session::{self, Event, State};
use crate::storage::{self, AppendFile, Bytes, DirLock, FsStorage, LockFailure, Storage};

/// A guild's appended frames are written to its segment once this many bytes wait (and at every
/// seal, snapshot, read of its files and checkpoint). Until then they live in memory and in the
/// commit log: the acknowledgement path writes and fsyncs only the commit log.
pub const GUILD_BUFFER_BYTES_MAX: usize = 64 << 10;

/// All guilds' unwritten frames together are written out once they reach this many bytes.
pub const BUFFERED_BYTES_MAX: u64 = 16 << 20;

/// A checkpoint with at least this many dirty guilds starts with one `syncfs` (where offered) so
/// that the write-back of all of them starts at once; its per-file fsyncs remain the proof.
const SYNCFS_PREPASS_MIN: usize = 64;

/// Largest segment file recovery reads: the size limit plus one maximal frame.
const SEGMENT_FILE_LEN_MAX: u64 =
    SEGMENT_BYTES_MAX_MAX + frame::HEADER_LEN as u64 + frame::PAYLOAD_LEN_MAX as u64;

/// Whether a journal may write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OpenMode {
    /// Exclusive owner: appends, snapshots, compaction, and recovery repairs torn tails.
    #[default]
    ReadWrite,
    /// Shared reader: never writes, never repairs (a torn tail is skipped in memory). Fails with
    /// [`Error::Locked`] while a writer holds the directory.
    ReadOnly,
}

/// A guild's state together with the sequence number it reflects.
#[derive(Clone, Debug, PartialEq)]
pub struct GuildState {
    /// The guild.
    pub guild: GuildId,
    /// Sequence number of the last event folded into `state` (0: no event).
    pub seq: Seq,
    /// The folded state.
    pub state: State,
}

/// One event as stored in the log.
#[derive(Clone, Debug, PartialEq)]
pub struct LoggedEvent {
    /// Its sequence number.
    pub seq: Seq,
    /// When it was appended (Unix milliseconds).
    pub at_unix_ms: u64,
    /// The event.
    pub event: Event,
}

/// One problem `verify` found (or, with kind [`CorruptionKind::TornTail`], one harmless torn
/// tail).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The guild whose file it is (`None` for the shared commit log).
    pub guild: Option<GuildId>,
    /// Where and what.
    pub corruption: Corruption,
}

impl Finding {
    /// Whether the finding makes the journal unsound (everything but a torn tail).
    pub fn is_damage(&self) -> bool {
        self.corruption.kind != CorruptionKind::TornTail
    }
}

/// What `verify` checked and found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Guilds checked.
    pub guilds: u64,
    /// Files checked.
    pub files: u64,
    /// Events checked (decoded and folded).
    pub events: u64,
    /// Findings, in file order.
    pub findings: Vec<Finding>,
}

impl VerifyReport {
    /// True when no finding is damage (torn tails are allowed).
    pub fn is_sound(&self) -> bool {
        self.findings.iter().all(|f| !f.is_damage())
    }
}

/// A file of a guild, as `inspect` describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileInfo {
    /// Full path.
    pub path: PathBuf,
    /// Size in bytes.
    pub bytes: u64,
    /// First sequence number held (segments) or the snapshot's sequence number.
    pub first_seq: Seq,
    /// Last sequence number held (segments) or the snapshot's sequence number.
    pub last_seq: Seq,
    /// Segments: whether this is the active (newest) one.
    pub active: bool,
}

/// A guild's files, as `inspect` describes them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GuildInfo {
    /// Log segments, oldest first.
    pub segments: Vec<FileInfo>,
    /// Snapshots, oldest first.
    pub snapshots: Vec<FileInfo>,
}

/// The per-guild write-ahead journal. See the crate docs for an example.
///
/// A `Journal` owns its directory (an advisory lock) until dropped. Guilds are recovered lazily,
/// on first use. It is synchronous and single-threaded; [`Durability::Batched`] appends become
/// durable at the next [`Journal::sync`].
#[derive(Debug)]
pub struct Journal {
    root: PathBuf,
    storage: Arc<dyn Storage>,
    config: Config,
    mode: OpenMode,
    guilds: BTreeMap<GuildId, GuildLog>,
    frame_buf: Vec<u8>,
    guilds_dir_ready: bool,
    /// The commit log this process appends to (created at the first append).
    commit: Option<CommitLog>,
    /// Commit logs left by earlier processes, until a checkpoint has made them unnecessary.
    recovered: CommitIndex,
    /// A checkpoint's fsync failed: commit logs are never dropped by this process again.
    checkpoint_poisoned: Option<&'static str>,
    /// Bytes of frames waiting in guild buffers (see [`GUILD_BUFFER_BYTES_MAX`]).
    buffered: u64,
    /// Guild segments opened since the last count (an upper bound of those open).
    open_files: usize,
    /// Commit logs were found at open: the previous process did not close the journal.
    unclean: bool,
    /// Use counter for the least-recently-used order of open files.
    use_tick: u64,
    /// Per guild, the newer owner the directory's ownership record says fenced it (read at the
    /// guild's first append, forgotten whenever a record is written through this journal).
    fences: HashMap<GuildId, Option<(u64, String)>>,
    /// Bumped by every ownership record written through this journal's [`crate::remote::LocalDir`].
    owner_records_written: Arc<AtomicU64>,
    /// The value of `owner_records_written` that `fences` reflects.
    fences_seen: u64,
    /// Snapshot jobs handed out by [`Journal::snapshot_begin`] whose sealed segment's fsync
    /// (carried by the job, on the descriptor that wrote it) may not have happened yet: until
    /// they come back, a checkpoint cannot prove those segments durable.
    seals_in_flight: usize,
    _lock: Box<dyn DirLock>,
}

#[derive(Debug)]
struct GuildLog {
    current: GuildState,
    /// Files written by an earlier process that may not be durable (see [`Journal::load`]).
    inherited: bool,
    /// Retained segments, sorted by first sequence number; the last one is the active one.
    segments: Vec<SegmentMeta>,
    /// Snapshot files present (valid or not), sorted.
    snapshots: Vec<Seq>,
    active: Option<Box<dyn AppendFile>>,
    /// Frames appended to the active segment in memory, not yet written to the file.
    pending: Vec<u8>,
    /// When the guild last needed its file (for closing the least recently used ones).
    last_used: u64,
    /// Appended bytes not yet fsynced.
    unsynced: bool,
    /// A file was created in the guild directory (or the directory itself) and the directory
    /// entries are not yet durable.
    dir_unsynced: bool,
    parent_unsynced: bool,
    events_since_snapshot: u64,
    bytes_since_snapshot: u64,
    poisoned: Option<&'static str>,
    /// Damage recovery stepped around (reported, not fatal).
    findings: Vec<Corruption>,
    /// Segments sealed for a snapshot job whose fsync may still be owed, oldest first (shared
    /// with the jobs). Every one is made durable before any newer segment of the guild is
    /// fsynced ([`sync_segment`]): a durable segment after a non-durable one is damage before
    /// the last segment, which recovery cannot take for a torn tail.
    owed_seals: Vec<Arc<Seal>>,
}

#[derive(Clone, Copy, Debug)]
struct SegmentMeta {
    first_seq: Seq,
    /// Last event held (`first_seq - 1` when empty).
    last_seq: Seq,
    len: u64,
    /// The header is valid and the file ends right after its last valid frame (a torn tail
    /// was cut, or the segment was restored), so appending continues the log.
    appendable: bool,
    /// Sealed (for a snapshot, by this process or, when a snapshot covers all of it, an
    /// earlier one): never appended to again.
    sealed: bool,
    /// The key sealing the segment's frames (from its header).
    key_id: KeyId,
}

/// Everything read from one guild directory.
struct Scanned {
    segments: Vec<ScannedSegment>,
    snapshots: Vec<Seq>,
    temps: Vec<PathBuf>,
    unknown: Vec<PathBuf>,
    /// The newest seq an earlier process's commit log holds for the guild (0: none).
    commit_head: Seq,
    /// Files made obsolete by a commit-log restore (a segment whose header never became
    /// durable, replaced under another name).
    obsolete: Vec<PathBuf>,
}

struct ScannedSegment {
    first_seq: Seq,
    path: PathBuf,
    bytes: Bytes,
    active: bool,
    /// The active segment's header never became durable: the file holds nothing.
    torn_header: bool,
    scan: Option<SegmentScan>,
    /// Header damage, mid-log damage, or a gap after this segment.
    fault: Option<Corruption>,
    /// `bytes` were restored from the commit log and differ from the file.
    restored: bool,
}

impl ScannedSegment {
    fn held(&self) -> Option<Run> {
        let scan = self.scan.as_ref()?;
        (scan.frame_count > 0).then_some(Run {
            first: scan.header.first_seq,
            last: scan.last_seq,
        })
    }
}

/// Creates `dir` and every missing ancestor, and makes their entries durable (fsync of the
/// parent of each directory created): an acknowledged event in a journal directory created by
/// this open must not vanish with the directory's entry after a power loss.
fn create_dir_durably(storage: &dyn Storage, dir: &Path) -> Result<()> {
    let mut missing = Vec::new();
    for at in dir.ancestors().filter(|a| !a.as_os_str().is_empty()) {
        if storage
            .exists(at)
            .map_err(|e| Error::io("look up", at, e))?
        {
            break;
        }
        missing.push(at);
    }
    storage
        .create_dir_all(dir)
        .map_err(|e| Error::io("create directory", dir, e))?;
    // Outermost first, so each entry is durable once its parent's is.
    for created in missing.iter().rev() {
        let parent = crate::storage::parent_dir(created);
        storage
            .sync_dir(parent)
            .map_err(|e| Error::io("fsync directory", parent, e))?;
    }
    Ok(())
}

pub(crate) fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Journal {
    /// Opens (creating if needed) the journal in `dir` on the real file system, as the exclusive
    /// writer.
    ///
    /// Opening reads nothing but the directory lock: guilds are recovered on first use.
    ///
    /// # Errors
    /// [`Error::Locked`] when another process owns the directory; [`Error::Io`] when it cannot be
    /// created or locked.
    pub fn open(dir: impl AsRef<Path>, config: Config) -> Result<Journal> {
        Self::open_with(dir, config, OpenMode::ReadWrite, Arc::new(FsStorage))
    }

    /// Opens the journal in `dir` for reading only (a shared lock: several readers may coexist,
    /// but not with a writer).
    ///
    /// # Errors
    /// As [`Journal::open`].
    pub fn open_read_only(dir: impl AsRef<Path>, config: Config) -> Result<Journal> {
        Self::open_with(dir, config, OpenMode::ReadOnly, Arc::new(FsStorage))
    }

    /// Opens the journal in `dir` through any [`Storage`] implementation.
    ///
    /// # Errors
    /// As [`Journal::open`].
    pub fn open_with(
        dir: impl AsRef<Path>,
        config: Config,
        mode: OpenMode,
        storage: Arc<dyn Storage>,
    ) -> Result<Journal> {
        let root = dir.as_ref().to_path_buf();
        if mode == OpenMode::ReadWrite {
            create_dir_durably(storage.as_ref(), &root)?;
        } else if !storage
            .exists(&root)
            .map_err(|e| Error::io("look up", &root, e))?
        {
            // Said plainly, rather than as a failure to lock a file inside it.
            return Err(Error::io(
                "open the journal",
                &root,
                io::Error::new(io::ErrorKind::NotFound, "the directory does not exist"),
            ));
        }
        let lock_path = layout::lock_path(&root);
        let lock = match storage.lock(&lock_path, mode == OpenMode::ReadWrite) {
            Ok(l) => l,
            Err(LockFailure::Held { holder_pid }) => {
                return Err(Error::Locked {
                    path: lock_path,
                    holder_pid,
                })
            }
            Err(LockFailure::Io(e)) => return Err(Error::io("lock", lock_path, e)),
        };
        check_key_file(storage.as_ref(), &root, config.keys.as_ref(), mode)?;
        let recovered = CommitIndex::read(storage.as_ref(), &root)?;
        recovered.check_keys(config.keys.as_ref())?;
        let unclean = recovered.paths().next().is_some() || recovered.damage.is_some();
        Ok(Journal {
            root,
            storage,
            config,
            mode,
            guilds: BTreeMap::new(),
            frame_buf: Vec::with_capacity(4096),
            guilds_dir_ready: false,
            commit: None,
            recovered,
            checkpoint_poisoned: None,
            buffered: 0,
            open_files: 0,
            unclean,
            use_tick: 0,
            fences: HashMap::new(),
            owner_records_written: Arc::new(AtomicU64::new(0)),
            fences_seen: 0,
            seals_in_flight: 0,
            _lock: lock,
        })
    }

    /// The journal directory.
    pub fn dir(&self) -> &Path {
        &self.root
    }

    /// The configuration in use.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Every guild that has a directory in the journal, sorted.
    ///
    /// # Errors
    /// [`Error::Io`] when the directory cannot be listed.
    pub fn guilds(&self) -> Result<Vec<GuildId>> {
        let dir = layout::guilds_dir(&self.root);
        let names = self
            .storage
            .list(&dir)
            .map_err(|e| Error::io("list", &dir, e))?;
        let mut ids: Vec<GuildId> = names
            .iter()
            .filter_map(|n| layout::parse_guild_dir(n))
            .collect();
        ids.sort_unstable();
        Ok(ids)
    }

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
        self.append_batch(guild, std::slice::from_ref(event), durability, now)
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
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let last = self.append_batch(guild, events, durability, now)?;
        Ok((last + 1 - events.len() as u64..=last).collect())
    }

    /// Appends a non-empty batch, all or nothing; returns the seq of its last event.
    fn append_batch(
        &mut self,
        guild: GuildId,
        events: &[Event],
        durability: Durability,
        now: u64,
    ) -> Result<Seq> {
        self.writable()?;
        self.load(guild)?;
        self.check_fence(guild)?;
        if let Some(op) = self.commit.as_ref().and_then(|c| c.poisoned) {
            return Err(Error::Poisoned { guild, op });
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
        let commit = commit_slot.as_ref().ok_or_else(unreachable_missing_guild)?;
        if let Some(op) = log.poisoned.or(commit.poisoned) {
            return Err(Error::Poisoned { guild, op });
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
            storage: storage.as_ref(),
            config,
            guilds_dir_ready,
            commit: commit_slot,
        };
        ctx.ensure_active(guild, log, now)?;
        // Room for the whole batch in the guild's buffer first: no frame of the batch may reach
        // the segment file before every record of the batch is queued (they are taken back
        // together).
        if !log.pending.is_empty() && log.pending.len() + frame_buf.len() > GUILD_BUFFER_BYTES_MAX {
            ctx.flush_guild(guild, log)?;
        }
        if log.segments.is_empty() {
            return Err(unreachable_missing_guild());
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
        // `Always`: the records reach the file before the events take effect, so a failed
        // write (a full disk) is taken back whole; likewise a full queue.
        let written = if matches!(durability, Durability::Always | Durability::Remote)
            || commit.queue_full()
        {
            commit.write()
        } else {
            Ok(())
        };
        if let Err(e) = written {
            if commit.poisoned.is_none() {
                commit.unqueue(queued);
            }
            unwrite_frames(log, frame_buf.len(), events.len() as u64);
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
        if matches!(durability, Durability::Always | Durability::Remote) {
            // A failed fsync poisons the commit log: the events may or may not survive a power
            // loss, and nothing is acknowledged any more until the journal is reopened.
            commit.sync(ctx.storage)?;
        }
        self.buffered += frame_buf.len() as u64;
        metrics::counter!(crate::telemetry::APPENDS_TOTAL).increment(events.len() as u64);
        metrics::counter!(crate::telemetry::APPEND_BYTES_TOTAL).increment(frame_buf.len() as u64);
        Ok(last)
    }

    /// `Err(Fenced)` when the directory's ownership record of `guild` says a newer owner
    /// claimed it (as the CLI and the runtime check): nothing more is appended to the guild.
    fn check_fence(&mut self, guild: GuildId) -> Result<()> {
        let written = self.owner_records_written.load(Ordering::Acquire);
        if written != self.fences_seen {
            self.fences.clear();
            self.fences_seen = written;
        }
        let fence = match self.fences.get(&guild) {
            Some(fence) => fence.clone(),
            None => {
                let local = crate::remote::LocalDir::of(self);
                let fence =
                    crate::remote::Remote::owner_record(&local, guild)?.and_then(|r| r.fenced_by);
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

    /// The counter [`crate::remote::LocalDir`] bumps whenever it writes an ownership record.
    pub(crate) fn owner_records_written(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.owner_records_written)
    }

    /// The upkeep an append may trigger, run before the next append (or [`Journal::sync`]) so
    /// that none of it can fail an append whose event has already taken effect: writing
    /// buffered frames out, a checkpoint once the commit log is large, sealing the guild's full
    /// segment, and its automatic snapshot.
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
            self.checkpoint(true)?;
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
    /// a checkpoint proves a segment durable only by an `fdatasync` on a descriptor that saw
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
            .map(|(g, l)| (*g, l))
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
    fn flush_buffers(&mut self, only: Option<GuildId>) -> Result<()> {
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

    /// Makes every file and directory entry written since the last checkpoint durable, each by
    /// its own `fsync`, so that the checkpoint's proof never rests on `syncfs` (a no-op on FUSE
    /// file systems, and silent about write-back errors before Linux 5.8 or when another
    /// descriptor consumed them): an `fdatasync` of every dirty guild segment through the
    /// descriptor that wrote it (segments closed earlier were fsynced when closed), then an
    /// fsync of every guild directory with a new entry, then of `guilds/` and the root when a
    /// guild directory or `guilds/` is new. The fsyncs run on up to
    /// [`Storage::sync_parallelism`] threads. One `syncfs` goes first where the storage offers
    /// it, only to start all the write-back at once. A failure poisons checkpointing
    /// (fsyncgate: a retry could falsely succeed), so the commit logs stay until a reopen
    /// restores from them.
    fn sync_segments(&mut self) -> Result<()> {
        if let Err(e) = self.flush_buffers(None) {
            self.checkpoint_poisoned = Some("write");
            return Err(e);
        }
        let dirty = self
            .guilds
            .values()
            .filter(|l| {
                l.unsynced || l.dir_unsynced || l.parent_unsynced || !l.owed_seals.is_empty()
            })
            .count();
        if dirty == 0 {
            return Ok(());
        }
        // A pre-pass only (see above): nothing is marked durable on its word. Worth it only
        // when there are many files to fsync.
        if dirty >= SYNCFS_PREPASS_MIN {
            if let Err(e) = self.storage.sync_filesystem(&self.root) {
                self.checkpoint_poisoned = Some("syncfs");
                return Err(Error::io("syncfs", &self.root, e));
            }
        }
        let threads = self.storage.sync_parallelism();
        let (root, storage) = (self.root.as_path(), self.storage.as_ref());
        let work: Vec<(GuildId, &mut GuildLog)> = self
            .guilds
            .iter_mut()
            .filter(|(_, l)| l.unsynced || !l.owed_seals.is_empty())
            .map(|(g, l)| (*g, l))
            .collect();
        let synced: Result<()> = storage::in_parallel(threads, work, |(guild, log)| {
            sync_segment(root, storage, guild, log)
        })
        .into_iter()
        .collect();
        if synced.is_err() {
            self.checkpoint_poisoned = Some("fsync");
            return synced;
        }
        let work: Vec<(GuildId, &mut GuildLog)> = self
            .guilds
            .iter_mut()
            .filter(|(_, l)| l.dir_unsynced)
            .map(|(g, l)| (*g, l))
            .collect();
        let synced: Result<()> = storage::in_parallel(threads, work, |(guild, log)| {
            sync_guild_dir(root, storage, guild, log)
        })
        .into_iter()
        .collect();
        if synced.is_err() {
            self.checkpoint_poisoned = Some("fsync directory");
            return synced;
        }
        if self.guilds.values().any(|l| l.parent_unsynced) {
            // `guilds/` itself may be new too: its entry is in the root.
            for dir in [layout::guilds_dir(root), root.to_path_buf()] {
                if let Err(e) = storage.sync_dir(&dir) {
                    self.checkpoint_poisoned = Some("fsync directory");
                    return Err(Error::io("fsync directory", dir, e));
                }
            }
            for log in self.guilds.values_mut() {
                log.parent_unsynced = false;
            }
        }
        Ok(())
    }

    /// The first checkpoint after an unclean shutdown cannot tell which guilds the dead process
    /// left written but not durable (a guild's frames may have reached its segment while their
    /// commit records were still buffered, so the old commit logs do not name it). Before those
    /// commit logs go, every guild's files are made durable by their own fsyncs, never by
    /// `syncfs` alone (offered, it runs first as a pre-pass): every segment is fdatasynced (a
    /// new descriptor: the dead process's are gone; Linux reports a write-back error no
    /// descriptor has seen to a new one, and the segments the old commit logs name were
    /// rewritten, see `make_inherited_durable`), then every guild directory, `guilds/` and the
    /// root. The guilds run on up to [`Storage::sync_parallelism`] threads.
    fn sync_everything_inherited(&mut self) -> Result<()> {
        let guilds = self.guilds()?;
        if guilds.len() >= SYNCFS_PREPASS_MIN {
            if let Err(e) = self.storage.sync_filesystem(&self.root) {
                self.checkpoint_poisoned = Some("syncfs");
                return Err(Error::io("syncfs", &self.root, e));
            }
        }
        let threads = self.storage.sync_parallelism();
        let (root, storage) = (self.root.as_path(), self.storage.as_ref());
        let synced: std::result::Result<(), (&'static str, Error)> =
            storage::in_parallel(threads, guilds, |guild| {
                let dir = layout::guild_dir(root, guild);
                let names = storage
                    .list(&dir)
                    .map_err(|e| ("list", Error::io("list", &dir, e)))?;
                for name in names {
                    if !matches!(layout::parse_guild_file(&name), GuildFile::Segment(_)) {
                        continue;
                    }
                    let path = dir.join(&name);
                    storage
                        .open_append(&path)
                        .and_then(|mut f| f.sync_data())
                        .map_err(|e| ("fsync", Error::io("fsync", path, e)))?;
                }
                storage
                    .sync_dir(&dir)
                    .map_err(|e| ("fsync directory", Error::io("fsync directory", &dir, e)))
            })
            .into_iter()
            .collect();
        if let Err((op, e)) = synced {
            // A failed listing proves nothing lost; still, the commit logs stay.
            self.checkpoint_poisoned = Some(if op == "list" { "fsync" } else { op });
            return Err(e);
        }
        for dir in [layout::guilds_dir(&self.root), self.root.clone()] {
            match self.storage.sync_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    self.checkpoint_poisoned = Some("fsync directory");
                    return Err(Error::io("fsync directory", dir, e));
                }
            }
        }
        self.unclean = false;
        Ok(())
    }

    /// The file-writing half ([`Ctx`]) and the guild map, borrowed apart.
    fn split(&mut self) -> (Ctx<'_>, &mut BTreeMap<GuildId, GuildLog>) {
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
            storage: &**storage,
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
            )?);
        }
        Ok(())
    }

    /// Makes the guild segments durable on their own and drops the commit logs: every guild an
    /// earlier process's commit log mentions is recovered (repairing its segments), every guild
    /// segment written since the last checkpoint is fsynced, and only then are the commit logs
    /// removed. With `rotate`, a new commit log is started first; without, the next append
    /// starts one. Runs automatically when the commit log reaches
    /// [`Config::commit_bytes_max`] and at [`Journal::close`].
    ///
    /// # Errors
    /// A recovery or I/O error; the commit logs are then kept (they are still needed).
    pub fn checkpoint(&mut self, rotate: bool) -> Result<()> {
        self.writable()?;
        let _span = tracing::info_span!("reprise.checkpoint").entered();
        for guild in self.recovered.guilds() {
            self.load(guild)?;
        }
        if let Some(damage) = &self.recovered.damage {
            return Err(Error::from(damage.clone()));
        }
        if let Some(commit) = self.commit.as_mut() {
            // Everything queued reaches the file first; its fsync is not needed (the guild
            // segments are about to be), but a poisoned log must not be dropped silently.
            commit.write()?;
        }
        if let Some(op) = self.checkpoint_poisoned {
            return Err(Error::io(
                "checkpoint",
                layout::commit_dir(&self.root),
                io::Error::other(format!(
                    "an earlier {op} failed; the commit logs are kept until the journal is reopened"
                )),
            ));
        }
        if self.seals_in_flight > 0 {
            return Err(Error::io(
                "checkpoint",
                layout::commit_dir(&self.root),
                io::Error::other(format!(
                    "{} snapshot job(s) still owe the fsync of a sealed segment; hand them back \
                     (snapshot_finish or snapshot_failed) first",
                    self.seals_in_flight
                )),
            ));
        }
        // A poisoned guild's segment may lack frames its commit records hold (a failed write)
        // or have had its write-back dropped by a failed fsync, which a later fsync does not
        // report: its commit records are still needed.
        if let Some((&guild, op)) = self
            .guilds
            .iter()
            .find_map(|(g, log)| log.poisoned.map(|op| (g, op)))
        {
            return Err(Error::Poisoned { guild, op });
        }
        self.sync_segments()?;
        // Guilds an earlier commit log names: their segments are rewritten (see
        // make_inherited_durable) before that commit log is dropped.
        for guild in self.recovered.guilds() {
            if let Err(e) = self.settle_inherited(guild) {
                self.checkpoint_poisoned = Some("fsync");
                return Err(e);
            }
        }
        if self.unclean {
            self.sync_everything_inherited()?;
        }
        let mut obsolete: Vec<PathBuf> = self.recovered.paths().cloned().collect();
        // The next commit log exists (durably) before the current one is let go: if it cannot
        // be created (a full disk), the current one stays in use and nothing changes.
        let next = match (&self.commit, rotate) {
            (Some(current), true) => {
                let mut next = CommitLog::create(
                    self.storage.as_ref(),
                    &self.root,
                    current.generation + 1,
                    now_unix_ms(),
                )?;
                if let Err(e) = next.sync(self.storage.as_ref()) {
                    let _ = self.storage.remove(&next.path);
                    return Err(e);
                }
                Some(next)
            }
            _ => None,
        };
        if let Some(old) = self.commit.take() {
            obsolete.push(old.path.clone());
            self.commit = next;
        }
        for path in &obsolete {
            match self.storage.remove(path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("remove checkpointed commit log", path, e)),
            }
        }
        if !obsolete.is_empty() {
            let dir = layout::commit_dir(&self.root);
            self.storage
                .sync_dir(&dir)
                .map_err(|e| Error::io("fsync directory", &dir, e))?;
        }
        self.recovered = CommitIndex::default();
        metrics::counter!(crate::telemetry::CHECKPOINTS_TOTAL).increment(1);
        Ok(())
    }

    /// Moves every file of `guild` out of its directory into `to` (created) and forgets the
    /// guild's in-memory state: the guild then recovers from whatever its directory holds
    /// next. For [`crate::remote::Remote::claim`], which replaces a superseded copy of the
    /// guild with the store's history. Checkpoints first, so that no commit log names the
    /// guild afterwards (a reopen would otherwise restore the old frames into the new files).
    /// Returns how many files moved.
    ///
    /// A crash part-way leaves some files in each directory; the ownership record still names
    /// the superseded epoch then, so the next claim sets the rest aside too.
    ///
    /// # Errors
    /// As [`Journal::checkpoint`]; [`Error::Io`] naming the file that could not move.
    pub(crate) fn set_aside(&mut self, guild: GuildId, to: &Path) -> Result<usize> {
        self.checkpoint(false)?;
        if let Some(log) = self.guilds.remove(&guild) {
            if log.active.is_some() {
                self.open_files = self.open_files.saturating_sub(1);
            }
        }
        let dir = layout::guild_dir(&self.root, guild);
        let names = self
            .storage
            .list(&dir)
            .map_err(|e| Error::io("list", &dir, e))?;
        if names.is_empty() {
            return Ok(0);
        }
        // The new directory's entry is durable before anything moves into it: a rename made
        // durable into a directory whose own entry is not would take the file with it.
        create_dir_durably(self.storage.as_ref(), to)?;
        for name in &names {
            let (from, into) = (dir.join(name), to.join(name));
            self.storage
                .rename(&from, &into)
                .map_err(|e| Error::io("rename", &from, e))?;
        }
        for d in [to, dir.as_path()] {
            self.storage
                .sync_dir(d)
                .map_err(|e| Error::io("fsync directory", d, e))?;
        }
        Ok(names.len())
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

    /// The guild's current state (recovering the guild first if this is its first use).
    ///
    /// # Errors
    /// A recovery error: [`Error::Corrupt`] naming the file and offset when the state cannot be
    /// rebuilt exactly, or [`Error::Io`].
    pub fn state(&mut self, guild: GuildId) -> Result<&GuildState> {
        self.load(guild)?;
        self.guilds
            .get(&guild)
            .map(|log| &log.current)
            .ok_or_else(unreachable_missing_guild)
    }

    /// Damage that recovery of `guild` stepped around without losing exactness (a damaged newer
    /// snapshot, a damaged segment that a snapshot covers) and torn tails it cut off.
    ///
    /// # Errors
    /// As [`Journal::state`].
    pub fn recovery_findings(&mut self, guild: GuildId) -> Result<&[Corruption]> {
        self.load(guild)?;
        self.guilds
            .get(&guild)
            .map(|log| log.findings.as_slice())
            .ok_or_else(unreachable_missing_guild)
    }

    /// The guild's state as of event `seq`, rebuilt from the newest snapshot at or before `seq`
    /// and the log after it.
    ///
    /// # Errors
    /// [`Error::SeqAhead`] past the last event; [`Error::Compacted`] when compaction dropped
    /// what is needed; recovery errors as for [`Journal::state`].
    pub fn state_at(&mut self, guild: GuildId, seq: Seq) -> Result<GuildState> {
        let current = self.state(guild)?.clone();
        if seq > current.seq {
            return Err(Error::SeqAhead {
                guild,
                seq,
                last_seq: current.seq,
            });
        }
        if seq == current.seq {
            return Ok(current);
        }
        self.flush_buffers(Some(guild))?;
        let scanned = self.read_guild(guild)?;
        let (state, _) = self.rebuild(guild, &scanned, Some(seq))?;
        Ok(state)
    }

    /// Writes a snapshot of the guild's current state now (unless one already exists at the
    /// current sequence number) and drops the files retention no longer needs. Returns the
    /// snapshot's sequence number, or `None` for a guild without events.
    ///
    /// # Errors
    /// [`Error::Io`] (the guild's log is poisoned if syncing it failed), recovery errors.
    pub fn snapshot_now(&mut self, guild: GuildId) -> Result<Option<Seq>> {
        self.writable()?;
        self.load(guild)?;
        self.settle_inherited(guild)?;
        let (mut ctx, guilds) = self.split();
        let log = guilds
            .get_mut(&guild)
            .ok_or_else(unreachable_missing_guild)?;
        if log.current.seq == 0 {
            return Ok(None);
        }
        if let Some(op) = log.poisoned {
            return Err(Error::Poisoned { guild, op });
        }
        ctx.snapshot(guild, log, now_unix_ms())?;
        Ok(Some(log.current.seq))
    }

    /// The first half of [`Journal::snapshot_now`], for writing snapshots off the append path:
    /// makes the log up to the current seq durable (sealing the active segment) and captures
    /// the state. Write the returned job anywhere ([`SnapshotJob::write_to`]), then hand it back
    /// to [`Journal::snapshot_finish`] (or [`Journal::snapshot_failed`]). Appends may continue in between.
    ///
    /// # Errors
    /// As [`Journal::snapshot_now`].
    pub fn snapshot_begin(&mut self, guild: GuildId) -> Result<Option<SnapshotJob>> {
        self.writable()?;
        self.load(guild)?;
        self.settle_inherited(guild)?;
        let (mut ctx, guilds) = self.split();
        let log = guilds
            .get_mut(&guild)
            .ok_or_else(unreachable_missing_guild)?;
        if let Some(op) = log.poisoned {
            return Err(Error::Poisoned { guild, op });
        }
        let mut job = ctx.snapshot_begin(guild, log, now_unix_ms())?;
        if let Some(job) = job.as_mut().filter(|j| !j.seals.is_empty()) {
            job.seal_counted = true;
            self.seals_in_flight += 1;
        }
        Ok(job)
    }

    /// The second half: registers a snapshot written by [`SnapshotJob::write_to`] and drops what
    /// retention no longer needs.
    ///
    /// # Errors
    /// [`Error::Io`] when an obsolete file cannot be removed.
    pub fn snapshot_finish(&mut self, job: &SnapshotJob) -> Result<()> {
        self.seal_returned(job);
        self.writable()?;
        self.load(job.guild)?;
        let (mut ctx, guilds) = self.split();
        let log = guilds
            .get_mut(&job.guild)
            .ok_or_else(unreachable_missing_guild)?;
        ctx.snapshot_finish(job.guild, log, job.seq)
    }

    /// Reports a job whose [`SnapshotJob::write_to`] failed. A failed seal fsync poisons the
    /// guild's log and checkpoints (fsyncgate); a failed snapshot write changes nothing (the
    /// next snapshot tries again).
    pub fn snapshot_failed(&mut self, job: &SnapshotJob) {
        self.seal_returned(job);
        if job.seal_failed {
            if let Some(log) = self.guilds.get_mut(&job.guild) {
                log.poisoned = Some("fsync");
            }
            self.checkpoint_poisoned = Some("fsync");
        }
    }

    /// A job from [`Journal::snapshot_begin`] came back: its seal no longer holds checkpoints.
    fn seal_returned(&mut self, job: &SnapshotJob) {
        if job.seal_counted {
            self.seals_in_flight = self.seals_in_flight.saturating_sub(1);
        }
    }

    /// The storage this journal writes through (for [`SnapshotJob::write_to`]).
    pub fn storage(&self) -> Arc<dyn Storage> {
        Arc::clone(&self.storage)
    }

    /// Number of events appended to `guild` since its last snapshot (by this process) and the
    /// bytes they take in the log; `None` when the guild is not loaded.
    pub fn since_snapshot(&self, guild: GuildId) -> Option<(u64, u64)> {
        self.guilds
            .get(&guild)
            .map(|l| (l.events_since_snapshot, l.bytes_since_snapshot))
    }

    /// Every event the log still holds for `guild`, oldest first (events before the oldest
    /// retained segment were dropped by compaction).
    ///
    /// # Errors
    /// Recovery errors; the iterator yields a [`Error::Corrupt`] where the log is damaged and
    /// then stops.
    pub fn events(&mut self, guild: GuildId) -> Result<EventIter> {
        self.load(guild)?;
        self.flush_buffers(Some(guild))?;
        let scanned = self.read_guild(guild)?;
        let mut parts = Vec::new();
        for seg in scanned.segments {
            let Some(scan) = seg.scan else {
                if seg.torn_header {
                    continue;
                }
                parts.push(EventSource::Broken(seg.fault.unwrap_or_else(|| {
                    Corruption::new(&seg.path, 0, CorruptionKind::HeaderChecksum)
                })));
                continue;
            };
            let fault = match &scan.end {
                ScanEnd::Corrupt(f) => Some(f.clone().at(&seg.path)),
                _ => seg.fault.clone(),
            };
            parts.push(EventSource::Segment {
                path: seg.path,
                bytes: seg.bytes,
                valid_len: scan.valid_len,
                key_id: scan.header.key_id,
            });
            if let Some(f) = fault {
                parts.push(EventSource::Broken(f));
            }
        }
        Ok(EventIter {
            parts,
            guild,
            keys: self.config.keys.clone(),
            scratch: Vec::new(),
            part: 0,
            offset: segment::HEADER_LEN as u64,
            next_seq: None,
            done: false,
        })
    }

    /// Describes the guild's files (sizes and sequence ranges).
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn inspect(&mut self, guild: GuildId) -> Result<GuildInfo> {
        self.flush_buffers(Some(guild))?;
        let scanned = self.read_guild(guild)?;
        let mut info = GuildInfo::default();
        for seg in &scanned.segments {
            let (first, last) = seg
                .scan
                .as_ref()
                .map_or((seg.first_seq, seg.first_seq.saturating_sub(1)), |s| {
                    (s.header.first_seq, s.last_seq)
                });
            info.segments.push(FileInfo {
                path: seg.path.clone(),
                bytes: seg.bytes.len() as u64,
                first_seq: first,
                last_seq: last,
                active: seg.active,
            });
        }
        for &seq in &scanned.snapshots {
            let path = layout::snapshot_path(&self.root, guild, seq);
            let bytes = self.storage.file_len(&path).unwrap_or(0);
            info.snapshots.push(FileInfo {
                path,
                bytes,
                first_seq: seq,
                last_seq: seq,
                active: false,
            });
        }
        Ok(info)
    }

    /// Checks every file of every guild: headers, checksums, framing, sequence continuity within
    /// and across segments, that every logged event decodes and is accepted by the fold, that
    /// every snapshot decodes and equals the fold of the log at its sequence number, and that
    /// the current state of every guild can be rebuilt. Never modifies anything.
    ///
    /// # Errors
    /// [`Error::Io`] when a file cannot be read at all; damage is reported as findings.
    pub fn verify(&mut self) -> Result<VerifyReport> {
        self.flush_buffers(None)?;
        let mut report = VerifyReport::default();
        for c in self
            .recovered
            .damage
            .iter()
            .chain(&self.recovered.torn)
            .cloned()
            .chain(
                self.recovered
                    .unknown
                    .iter()
                    .map(|p| Corruption::new(p, 0, CorruptionKind::UnknownFile)),
            )
        {
            report.files += 1;
            report.findings.push(Finding {
                guild: None,
                corruption: c,
            });
        }
        for guild in self.guilds()? {
            self.verify_guild(guild, &mut report)?;
        }
        Ok(report)
    }

    /// Makes everything durable in the guild segments (a checkpoint without a new commit log)
    /// and releases the directory.
    ///
    /// # Errors
    /// As [`Journal::checkpoint`].
    pub fn close(mut self) -> Result<()> {
        if self.mode == OpenMode::ReadOnly {
            return Ok(());
        }
        self.sync()?;
        self.checkpoint(false)
    }

    /// Whether this journal may write.
    pub fn mode(&self) -> OpenMode {
        self.mode
    }

    /// The guild's newest state rebuilt from its files alone (snapshot and log, as a fresh
    /// recovery would), not from memory: buffered frames are written to the segment first.
    /// A restore ([`crate::safe_restore`]) uses it to check that what reached the files is what
    /// it appended.
    ///
    /// # Errors
    /// Recovery errors ([`Error::Corrupt`], [`Error::Io`]) and a poisoned guild's write errors.
    pub fn state_from_files(&mut self, guild: GuildId) -> Result<GuildState> {
        let seq = self.state(guild)?.seq;
        self.flush_buffers(Some(guild))?;
        let scanned = self.read_guild(guild)?;
        let (state, _) = self.rebuild(guild, &scanned, Some(seq))?;
        Ok(state)
    }

    /// Makes a guild recovered after an unclean shutdown durable before anything builds on its
    /// files (see `make_inherited_durable`); nothing to do for other guilds.
    fn settle_inherited(&mut self, guild: GuildId) -> Result<()> {
        let from = self.recovered.entries(guild).first().map(|e| e.seq);
        match self.guilds.get_mut(&guild) {
            Some(log) if log.inherited && log.poisoned.is_none() => {
                make_inherited_durable(&self.root, self.storage.as_ref(), guild, log, from)
            }
            _ => Ok(()),
        }
    }

    /// Fails unless a file sealed under `key_id` can be read with the keys given.
    fn check_key(&self, path: &Path, key_id: KeyId) -> Result<()> {
        crate::crypto::require_key(self.config.keys.as_ref(), key_id, path)
    }

    fn writable(&self) -> Result<()> {
        match self.mode {
            OpenMode::ReadWrite => Ok(()),
            OpenMode::ReadOnly => Err(Error::ReadOnly),
        }
    }

    /// Recovers `guild` into memory if it is not there yet.
    fn load(&mut self, guild: GuildId) -> Result<()> {
        if self.guilds.contains_key(&guild) {
            return Ok(());
        }
        let _span = tracing::info_span!("reprise.recovery", guild = guild.0).entered();
        let started = std::time::Instant::now();
        let scanned = self.read_guild(guild)?;
        let (current, findings) = self.rebuild(guild, &scanned, None)?;
        if self.mode == OpenMode::ReadWrite {
            self.repair(guild, &scanned)?;
        }
        // A segment whose every event a snapshot covers was sealed for that snapshot (perhaps
        // by an earlier process): new events start a new segment, so retention can drop it.
        let newest_snapshot = scanned.snapshots.last().copied().unwrap_or(0);
        let segments = scanned
            .segments
            .iter()
            .filter(|s| !s.torn_header)
            .map(|s| SegmentMeta {
                first_seq: s.first_seq,
                last_seq: s
                    .scan
                    .as_ref()
                    .map_or(s.first_seq.saturating_sub(1), |sc| sc.last_seq),
                len: s
                    .scan
                    .as_ref()
                    .map_or(s.bytes.len() as u64, |sc| sc.valid_len),
                appendable: s.restored
                    || s.scan.as_ref().is_some_and(|sc| match sc.end {
                        ScanEnd::Clean => true,
                        ScanEnd::TornTail { .. } => self.mode == OpenMode::ReadWrite,
                        ScanEnd::Corrupt(_) => false,
                    }),
                sealed: s
                    .scan
                    .as_ref()
                    .is_some_and(|sc| sc.frame_count > 0 && sc.last_seq <= newest_snapshot),
                key_id: s
                    .scan
                    .as_ref()
                    .map_or(KeyId::PLAINTEXT, |sc| sc.header.key_id),
            })
            .collect();
        // After an unclean shutdown (commit logs were left behind), an earlier process may have
        // left this guild's files written but not durable: they are made durable before the
        // first new event of the guild is acknowledged (so no acknowledgement rests on events
        // that are durable nowhere), and by the next checkpoint at the latest.
        let has_files = !scanned.segments.is_empty() || !scanned.snapshots.is_empty();
        let inherited = self.mode == OpenMode::ReadWrite
            && has_files
            && (scanned.commit_head > 0 || self.unclean);
        let log = GuildLog {
            current,
            segments,
            snapshots: scanned.snapshots.clone(),
            active: None,
            pending: Vec::new(),
            last_used: 0,
            unsynced: inherited,
            dir_unsynced: inherited,
            parent_unsynced: inherited,
            events_since_snapshot: 0,
            bytes_since_snapshot: 0,
            poisoned: None,
            owed_seals: Vec::new(),
            inherited,
            findings,
        };
        self.guilds.insert(guild, log);
        metrics::histogram!(crate::telemetry::RECOVERY_SECONDS)
            .record(started.elapsed().as_secs_f64());
        Ok(())
    }

    /// Cuts torn tails, removes a segment whose header never became durable and leftover
    /// temporary files. Only what recovery has shown to hold no acknowledged event.
    fn repair(&self, guild: GuildId, scanned: &Scanned) -> Result<()> {
        let dir = layout::guild_dir(&self.root, guild);
        let mut dir_changed = false;
        for seg in &scanned.segments {
            if seg.restored {
                self.storage
                    .create_dir_all(&dir)
                    .map_err(|e| Error::io("create directory", &dir, e))?;
                storage::write_atomic(self.storage.as_ref(), &seg.path, &seg.bytes)
                    .map_err(|(op, p, e)| Error::io(op, p, e))?;
            } else if seg.torn_header {
                self.storage
                    .remove(&seg.path)
                    .map_err(|e| Error::io("remove torn segment", &seg.path, e))?;
                dir_changed = true;
            } else if let Some(SegmentScan {
                end: ScanEnd::TornTail { offset },
                ..
            }) = &seg.scan
            {
                self.storage
                    .truncate(&seg.path, *offset)
                    .map_err(|e| Error::io("truncate torn tail of", &seg.path, e))?;
            }
        }
        for path in &scanned.obsolete {
            match self.storage.remove(path) {
                Ok(()) => dir_changed = true,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("remove replaced segment", path, e)),
            }
        }
        for tmp in &scanned.temps {
            match self.storage.remove(tmp) {
                Ok(()) => dir_changed = true,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("remove temporary file", tmp, e)),
            }
        }
        if dir_changed {
            self.storage
                .sync_dir(&dir)
                .map_err(|e| Error::io("fsync directory", &dir, e))?;
            let parent = layout::guilds_dir(&self.root);
            self.storage
                .sync_dir(&parent)
                .map_err(|e| Error::io("fsync directory", &parent, e))?;
        }
        Ok(())
    }

    /// Lists and checks a guild's files (no decision, no repair).
    fn read_guild(&self, guild: GuildId) -> Result<Scanned> {
        let dir = layout::guild_dir(&self.root, guild);
        let names = self
            .storage
            .list(&dir)
            .map_err(|e| Error::io("list", &dir, e))?;
        let mut seg_seqs = Vec::new();
        let mut snapshots = Vec::new();
        let mut temps = Vec::new();
        let mut unknown = Vec::new();
        for name in &names {
            match layout::parse_guild_file(name) {
                GuildFile::Segment(s) => seg_seqs.push(s),
                GuildFile::Snapshot(s) => snapshots.push(s),
                GuildFile::Temp => temps.push(dir.join(name)),
                GuildFile::Unknown => unknown.push(dir.join(name)),
            }
        }
        seg_seqs.sort_unstable();
        snapshots.sort_unstable();
        let last = seg_seqs.len().saturating_sub(1);
        let mut segments: Vec<ScannedSegment> = Vec::with_capacity(seg_seqs.len());
        for (i, &first_seq) in seg_seqs.iter().enumerate() {
            let path = layout::segment_path(&self.root, guild, first_seq);
            let active = i == last;
            let read = if active {
                self.storage.read(&path, SEGMENT_FILE_LEN_MAX)
            } else {
                self.storage.map(&path, SEGMENT_FILE_LEN_MAX)
            };
            let bytes = match read {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                    segments.push(ScannedSegment {
                        first_seq,
                        path: path.clone(),
                        bytes: Bytes::Owned(Vec::new()),
                        active,
                        torn_header: false,
                        scan: None,
                        restored: false,
                        fault: Some(
                            Corruption::new(&path, 0, CorruptionKind::FileTooLarge)
                                .detail(e.to_string()),
                        ),
                    });
                    continue;
                }
                Err(e) => return Err(Error::io("read", &path, e)),
            };
            let mut seg = ScannedSegment {
                first_seq,
                path,
                bytes,
                active,
                torn_header: false,
                scan: None,
                fault: None,
                restored: false,
            };
            let covered_by_commit = self
                .recovered
                .entries(guild)
                .first()
                .is_some_and(|e| e.seq <= first_seq);
            if active
                && (segment::header_is_torn(&seg.bytes)
                    || covered_by_commit && segment::header_is_unreadable_and_empty(&seg.bytes))
            {
                seg.torn_header = true;
            } else {
                match segment::scan(&seg.bytes, active) {
                    Err(f) => seg.fault = Some(f.at(&seg.path)),
                    Ok(scan) if scan.header.guild != guild.0 => {
                        seg.fault = Some(
                            Corruption::new(
                                &seg.path,
                                segment::GUILD_OFFSET as u64,
                                CorruptionKind::HeaderMismatch,
                            )
                            .values(guild.0, scan.header.guild),
                        );
                    }
                    Ok(scan) if scan.header.first_seq != first_seq || first_seq == 0 => {
                        seg.fault = Some(
                            Corruption::new(
                                &seg.path,
                                segment::FIRST_SEQ_OFFSET as u64,
                                CorruptionKind::HeaderMismatch,
                            )
                            .values(first_seq, scan.header.first_seq),
                        );
                    }
                    Ok(scan) => {
                        self.check_key(&seg.path, scan.header.key_id)?;
                        if let ScanEnd::Corrupt(f) = &scan.end {
                            seg.fault = Some(f.clone().at(&seg.path));
                        }
                        seg.scan = Some(scan);
                    }
                }
            }
            // Continuity: this segment must start right after the previous one ends.
            if let Some(prev) = segments.last_mut() {
                if let (Some(p), None) = (&prev.scan, &prev.fault) {
                    if p.last_seq + 1 != first_seq && !seg.torn_header {
                        prev.fault = Some(
                            Corruption::new(&prev.path, p.valid_len, CorruptionKind::SequenceGap)
                                .values(p.last_seq + 1, first_seq)
                                .detail(format!(
                                    "the next segment {} starts at seq {first_seq}",
                                    seg.path.display()
                                )),
                        );
                    }
                }
            }
            segments.push(seg);
        }
        let mut scanned = Scanned {
            segments,
            snapshots,
            temps,
            unknown,
            commit_head: 0,
            obsolete: Vec::new(),
        };
        self.restore_from_commit(guild, &mut scanned);
        Ok(scanned)
    }

    /// Puts back, in memory, the events an earlier process's commit log holds for `guild` but
    /// its segments lost (an unsynced tail cut by a power loss, a segment whose header never
    /// became durable, damage past the last durable point of the active segment). The writer
    /// then writes the restored segment to disk ([`Journal::repair`]).
    fn restore_from_commit(&self, guild: GuildId, scanned: &mut Scanned) {
        let entries = self.recovered.entries(guild);
        let Some(last_entry) = entries.last() else {
            return;
        };
        scanned.commit_head = last_entry.seq;
        // The last segment whose header is readable, and what it holds consecutively.
        let readable = scanned
            .segments
            .iter()
            .rposition(|s| s.scan.is_some() && !s.torn_header);
        let held_by = |usable: Option<usize>| match usable {
            Some(i) => scanned.segments[i]
                .scan
                .as_ref()
                .map_or(0, |sc| sc.last_seq),
            None => scanned.snapshots.last().copied().unwrap_or(0),
        };
        // Damage before the last segment is an unsynced tail too when the commit log holds
        // every event from the damaged point on: no fsync orders the write-back of two files,
        // so a newer segment may reach the disk while an older one's tail (sealed for a
        // snapshot job whose fsync was still owed) does not. Restored from there on.
        let covers = |seq: Seq| entries.iter().any(|e| e.seq == seq);
        let early = scanned
            .segments
            .iter()
            .position(|s| s.fault.is_some() && !s.torn_header)
            .map(|i| match scanned.segments[i].scan {
                Some(_) => Some(i),
                None => i.checked_sub(1),
            })
            .filter(|&usable| covers(held_by(usable) + 1));
        let usable = early.unwrap_or(readable);
        let held = held_by(usable);
        let Some(start) = entries.iter().position(|e| e.seq > held) else {
            return;
        };
        if entries[start].seq != held + 1 {
            // A gap the commit log cannot fill: recovery will say which event is missing.
            return;
        }
        // The consecutive events after `held`, in runs of one key each: a segment's frames are
        // all sealed under the key its header names.
        let mut chunks: Vec<(KeyId, Seq, u32, Vec<u8>)> = Vec::new();
        for (next, e) in (held + 1..).zip(&entries[start..]) {
            if e.seq != next {
                break;
            }
            match chunks.last_mut() {
                Some(c) if c.0 == e.key_id => {}
                _ => chunks.push((e.key_id, e.seq, e.history_max, Vec::new())),
            }
            if let Some(c) = chunks.last_mut() {
                c.3.extend_from_slice(self.recovered.frame(e));
            }
        }
        // Segments after the usable one hold nothing readable: they are replaced.
        let cut = usable.map_or(0, |i| i + 1);
        let dropped: Vec<ScannedSegment> = scanned.segments.drain(cut..).collect();
        // The usable segment is continued when it ends at `held` under the first run's key.
        let continued = usable.filter(|&i| {
            scanned.segments[i].scan.as_ref().is_some_and(|sc| {
                sc.last_seq == held && chunks.first().is_some_and(|c| c.0 == sc.header.key_id)
            })
        });
        let mut restored: Vec<ScannedSegment> = Vec::with_capacity(chunks.len());
        for (n, (key_id, first, history_max, frames)) in chunks.into_iter().enumerate() {
            let (path, mut bytes) = match continued {
                Some(i) if n == 0 => {
                    let seg = &scanned.segments[i];
                    let valid = seg.scan.as_ref().map_or(0, |sc| sc.valid_len) as usize;
                    (
                        seg.path.clone(),
                        seg.bytes.get(..valid).unwrap_or(&[]).to_vec(),
                    )
                }
                _ => {
                    let header = segment::encode_header(&SegmentHeader {
                        guild: guild.0,
                        first_seq: first,
                        history_max,
                        created_unix_ms: now_unix_ms(),
                        key_id,
                    });
                    (
                        layout::segment_path(&self.root, guild, first),
                        header.to_vec(),
                    )
                }
            };
            bytes.extend_from_slice(&frames);
            let first_seq = segment::decode_header(&bytes).map_or(first, |h| h.first_seq);
            let scan = segment::scan(&bytes, true).ok();
            restored.push(ScannedSegment {
                first_seq,
                path,
                bytes: Bytes::Owned(bytes),
                active: false,
                torn_header: false,
                scan,
                fault: None,
                restored: true,
            });
        }
        for seg in dropped {
            if restored.iter().all(|r| r.path != seg.path) {
                scanned.obsolete.push(seg.path);
            }
        }
        if continued.is_some() {
            scanned.segments.pop();
        }
        for seg in &mut scanned.segments {
            seg.active = false;
        }
        if let Some(last) = restored.last_mut() {
            last.active = true;
        }
        scanned.segments.extend(restored);
    }

    fn load_snapshot(
        &self,
        guild: GuildId,
        seq: Seq,
    ) -> Result<std::result::Result<State, Corruption>> {
        let path = layout::snapshot_path(&self.root, guild, seq);
        let bytes = match self.storage.read(&path, snapshot::FILE_LEN_MAX) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                return Ok(Err(
                    Corruption::new(&path, 0, CorruptionKind::FileTooLarge).detail(e.to_string())
                ))
            }
            Err(e) => return Err(Error::io("read", &path, e)),
        };
        if let Ok(header) = snapshot::decode_header(&bytes) {
            self.check_key(&path, header.key_id)?;
        }
        Ok(match snapshot::decode(&bytes, self.config.keys.as_ref()) {
            Err(f) => Err(f.at(&path)),
            Ok((h, _)) if h.guild != guild.0 => Err(Corruption::new(
                &path,
                snapshot::GUILD_OFFSET as u64,
                CorruptionKind::HeaderMismatch,
            )
            .values(guild.0, h.guild)),
            Ok((h, _)) if h.seq != seq => Err(Corruption::new(
                &path,
                snapshot::SEQ_OFFSET as u64,
                CorruptionKind::HeaderMismatch,
            )
            .values(seq, h.seq)),
            Ok((_, state)) => Ok(state),
        })
    }

    /// Decides (see [`crate::recovery`]) and rebuilds the state at `target` (newest if `None`).
    /// Returns the state and the damage it stepped around.
    fn rebuild(
        &self,
        guild: GuildId,
        scanned: &Scanned,
        target: Option<Seq>,
    ) -> Result<(GuildState, Vec<Corruption>)> {
        // Damage in a commit log may hide events of any guild.
        if let Some(damage) = &self.recovered.damage {
            return Err(Error::from(damage.clone()));
        }
        // Damage in the active segment hides how far the log went: the newest state is
        // unknowable, whatever the snapshots say.
        if let Some(active) = scanned.segments.iter().rev().find(|s| !s.torn_header) {
            if let (true, Some(fault)) = (active.active, &active.fault) {
                return Err(Error::from(fault.clone()));
            }
        }
        let runs = runs_of(&scanned.segments);
        let mut findings: Vec<Corruption> = Vec::new();
        for seg in &scanned.segments {
            if let Some(f) = &seg.fault {
                findings.push(f.clone());
            }
            if let Some(SegmentScan {
                end: ScanEnd::TornTail { offset },
                ..
            }) = &seg.scan
            {
                findings.push(Corruption::new(
                    &seg.path,
                    *offset,
                    CorruptionKind::TornTail,
                ));
            }
        }
        // Check snapshots newest first; older ones only while no feasible base is known
        // (an older valid snapshot can never beat a newer feasible one).
        let mut checked: Vec<SnapshotFound> = Vec::new();
        let mut states: HashMap<Seq, State> = HashMap::new();
        let mut pending: Vec<Seq> = scanned.snapshots.clone();
        let decision = loop {
            let found = Found {
                snapshots: &checked,
                runs: &runs,
                claimed: claimed_of(&scanned.segments).max(scanned.commit_head),
            };
            let decision = recovery::decide(&found, target);
            let settled = match decision {
                Decision::Replay { base, .. } => {
                    // Unchecked snapshots newer than the base could be better bases.
                    pending.last().is_none_or(|&s| s <= base)
                }
                _ => pending.is_empty(),
            };
            if settled {
                break decision;
            }
            let Some(seq) = pending.pop() else {
                break decision;
            };
            match self.load_snapshot(guild, seq)? {
                Ok(state) => {
                    checked.push(SnapshotFound { seq, valid: true });
                    states.insert(seq, state);
                }
                Err(c) => {
                    checked.push(SnapshotFound { seq, valid: false });
                    findings.push(c);
                }
            }
        };
        let (base, target_seq) = match decision {
            Decision::Replay { base, target } => (base, target),
            Decision::Compacted { oldest } => {
                let seq = target.unwrap_or(0);
                return Err(Error::Compacted {
                    guild,
                    seq,
                    oldest_seq: oldest.unwrap_or(seq + 1),
                    held: format!("{:?}", scanned.snapshots),
                });
            }
            Decision::Broken { missing } => {
                return Err(Error::from(explain_broken(
                    &self.root, guild, scanned, &findings, missing,
                )));
            }
        };
        let mut state = match states.remove(&base) {
            Some(s) if base > 0 => s,
            _ => State::new(self.genesis_history_max(scanned)),
        };
        replay(
            &scanned.segments,
            &mut state,
            base,
            target_seq,
            guild,
            self.config.keys.as_ref(),
        )?;
        Ok((
            GuildState {
                guild,
                seq: target_seq,
                state,
            },
            findings,
        ))
    }

    fn genesis_history_max(&self, scanned: &Scanned) -> u32 {
        scanned
            .segments
            .iter()
            .filter_map(|s| s.scan.as_ref())
            .find(|s| s.header.first_seq == 1)
            .map_or(self.config.history_max, |s| s.header.history_max)
    }

    fn verify_guild(&self, guild: GuildId, report: &mut VerifyReport) -> Result<()> {
        report.guilds += 1;
        let scanned = self.read_guild(guild)?;
        let mut push = |c: Corruption| {
            report.findings.push(Finding {
                guild: Some(guild),
                corruption: c,
            })
        };
        for path in &scanned.unknown {
            push(Corruption::new(path, 0, CorruptionKind::UnknownFile));
        }
        let mut files = scanned.segments.len() as u64;
        for seg in &scanned.segments {
            if seg.torn_header {
                push(
                    Corruption::new(&seg.path, 0, CorruptionKind::TornTail)
                        .detail("segment header never became durable"),
                );
            }
            if let Some(f) = &seg.fault {
                push(f.clone());
            }
            if let Some(SegmentScan {
                end: ScanEnd::TornTail { offset },
                ..
            }) = &seg.scan
            {
                push(Corruption::new(
                    &seg.path,
                    *offset,
                    CorruptionKind::TornTail,
                ));
            }
        }
        // Every snapshot on its own.
        let mut snapshots: Vec<(Seq, State)> = Vec::new();
        for &seq in &scanned.snapshots {
            files += 1;
            match self.load_snapshot(guild, seq)? {
                Ok(state) => snapshots.push((seq, state)),
                Err(c) => push(c),
            }
        }
        // Fold every held event from every usable base; compare snapshots on the way.
        let runs = runs_of(&scanned.segments);
        let found_snaps: Vec<SnapshotFound> = snapshots
            .iter()
            .map(|(seq, _)| SnapshotFound {
                seq: *seq,
                valid: true,
            })
            .collect();
        let found = Found {
            snapshots: &found_snaps,
            runs: &runs,
            claimed: claimed_of(&scanned.segments).max(scanned.commit_head),
        };
        // Start points: genesis if the log starts at 1, and each snapshot that begins a run.
        let mut state: Option<(Seq, State)> = None;
        let history_max = self.genesis_history_max(&scanned);
        if runs.iter().any(|r| r.first == 1) {
            state = Some((0, State::new(history_max)));
        }
        let mut scratch = Vec::new();
        for seg in &scanned.segments {
            let Some(scan) = &seg.scan else { continue };
            for (offset, f) in segment::frames(&seg.bytes, scan.valid_len) {
                // (Re)start from a snapshot right before this event when the fold is not there.
                if state.as_ref().is_none_or(|(s, _)| *s + 1 != f.seq) {
                    state = snapshots
                        .iter()
                        .find(|(s, _)| *s + 1 == f.seq)
                        .map(|(s, st)| (*s, st.clone()));
                }
                let event = match frame_event(
                    &seg.path,
                    offset,
                    &f,
                    scan.header.key_id,
                    guild,
                    self.config.keys.as_ref(),
                    &mut scratch,
                ) {
                    Ok(e) => e,
                    Err(c) => {
                        push(c);
                        state = None;
                        continue;
                    }
                };
                report.events += 1;
                let Some((s, st)) = state.as_mut() else {
                    continue;
                };
                if let Err(e) = session::validate(st, &event) {
                    push(
                        Corruption::new(&seg.path, offset, CorruptionKind::EventRejected)
                            .values(*s + 1, f.seq)
                            .detail(e.to_string()),
                    );
                    state = None;
                    continue;
                }
                session::apply(st, &event);
                *s = f.seq;
                if let Some((_, snap)) = snapshots.iter().find(|(q, _)| *q == f.seq) {
                    if snap != st {
                        push(
                            Corruption::new(
                                layout::snapshot_path(&self.root, guild, f.seq),
                                snapshot::HEADER_LEN as u64,
                                CorruptionKind::SnapshotMismatch,
                            )
                            .detail("the snapshot differs from the fold of the log"),
                        );
                    }
                }
            }
        }
        if let Decision::Broken { missing } = recovery::decide(&found, None) {
            let already: Vec<Corruption> = report
                .findings
                .iter()
                .filter(|f| f.guild == Some(guild))
                .map(|f| f.corruption.clone())
                .collect();
            let c = explain_broken(&self.root, guild, &scanned, &already, missing);
            if !already.contains(&c) {
                report.findings.push(Finding {
                    guild: Some(guild),
                    corruption: c.clone(),
                });
            }
            report.findings.push(Finding {
                guild: Some(guild),
                corruption: Corruption::new(
                    layout::guild_dir(&self.root, guild),
                    0,
                    CorruptionKind::Unrecoverable,
                )
                .values(missing, 0)
                .detail(format!("event {missing} is not held; first cause: {c}")),
            });
        }
        report.files += files;
        Ok(())
    }
}

/// Makes every segment of a guild recovered after an unclean shutdown durable, then its
/// directory, `guilds/` and the root, so the events it holds are durable before anything new
/// builds on them. Once per guild and process.
///
/// Segments holding events from `rewritten_from` on (the first event an earlier process's
/// commit log holds for the guild: written since that process's last checkpoint) are
/// *rewritten* into fresh files (`write_atomic`), not just fsynced. The earlier process may
/// have seen an fsync of such a segment fail, and the kernel then drops the dirty pages while
/// still serving them from the cache, so a later fsync of the same file succeeds without
/// writing them (fsyncgate). Rewritten, their bytes are new dirty pages that the fsync of the
/// fresh file does write. Older segments were made durable by a checkpoint that succeeded. A
/// segment that holds no event (only a header, written before any commit record) is rewritten
/// as well.
fn make_inherited_durable(
    root: &Path,
    storage: &dyn Storage,
    guild: GuildId,
    log: &mut GuildLog,
    rewritten_from: Option<Seq>,
) -> Result<()> {
    for meta in &log.segments {
        let path = layout::segment_path(root, guild, meta.first_seq);
        // A segment holding no event yet is rewritten too: its header is the one thing written
        // to a segment without a commit record (a new segment is created before its first
        // frame's record is queued).
        let empty = meta.last_seq < meta.first_seq;
        let rewrite = empty || rewritten_from.is_some_and(|from| meta.last_seq >= from);
        let durable = if rewrite {
            rewrite_file(storage, &path, meta.len)
        } else {
            storage
                .open_append(&path)
                .and_then(|mut file| file.sync_data())
                .map_err(|e| ("fsync", path.clone(), e))
        };
        match durable {
            Ok(()) => {}
            Err((_, _, e)) if e.kind() == io::ErrorKind::NotFound => {}
            Err((op, at, e)) => {
                log.poisoned = Some("fsync");
                return Err(Error::io(op, at, e));
            }
        }
    }
    let dir = layout::guild_dir(root, guild);
    for dir in [dir.as_path(), &layout::guilds_dir(root), root] {
        match storage.sync_dir(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                log.poisoned = Some("fsync directory");
                return Err(Error::io("fsync directory", dir, e));
            }
        }
    }
    log.inherited = false;
    Ok(())
}

/// `fdatasync`s the guild's active segment if it holds unsynced bytes, through the descriptor
/// that wrote them (a segment without one was written by an earlier process: through a new
/// descriptor), after every segment sealed for a snapshot job whose fsync is still owed
/// (through the job's descriptor): the segments become durable in log order. A failure
/// poisons the guild and closes the descriptor (fsyncgate).
fn sync_segment(
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
fn sync_guild_dir(
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

/// Rewrites the first `len` bytes of `path` into a fresh file of the same name (temporary
/// file, fsync, rename, fsync directory).
fn rewrite_file(
    storage: &dyn Storage,
    path: &Path,
    len: u64,
) -> std::result::Result<(), (&'static str, PathBuf, io::Error)> {
    let bytes = storage
        .read(path, SEGMENT_FILE_LEN_MAX)
        .map_err(|e| ("read", path.to_path_buf(), e))?;
    let keep = usize::try_from(len).unwrap_or(usize::MAX).min(bytes.len());
    storage::write_atomic(storage, path, &bytes[..keep])
}

/// The maximal runs of consecutive events held by the segments.
fn runs_of(segments: &[ScannedSegment]) -> Vec<Run> {
    let mut runs: Vec<Run> = Vec::new();
    for run in segments.iter().filter_map(ScannedSegment::held) {
        match runs.last_mut() {
            Some(prev) if prev.last + 1 == run.first => prev.last = run.last,
            _ => runs.push(run),
        }
    }
    runs
}

/// The newest sequence number the segment names imply (a segment named `n` is created only
/// after event `n - 1`).
fn claimed_of(segments: &[ScannedSegment]) -> Seq {
    segments
        .iter()
        .map(|s| s.first_seq.saturating_sub(1))
        .max()
        .unwrap_or(0)
}

/// Folds the held events `base+1..=target` into `state`.
///
/// The tracks of each decoded `tracks_enqueued` event share one buffer (one allocation per
/// event rather than per track: most replayed tracks are dropped again by later events); the
/// tracks the state keeps get their own at the end.
fn replay(
    segments: &[ScannedSegment],
    state: &mut State,
    base: Seq,
    target: Seq,
    guild: GuildId,
    keys: Option<&Keyring>,
) -> Result<()> {
    let folded = replay_shared(segments, state, base, target, guild, keys);
    let queue = &mut state.queue;
    for entry in queue
        .history
        .iter_mut()
        .chain(queue.current.as_mut())
        .chain(queue.upcoming.iter_mut())
    {
        entry.track.unshare();
    }
    folded
}

/// [`replay`] leaving the state's tracks in shared buffers.
fn replay_shared(
    segments: &[ScannedSegment],
    state: &mut State,
    base: Seq,
    target: Seq,
    guild: GuildId,
    keys: Option<&Keyring>,
) -> Result<()> {
    if target <= base {
        return Ok(());
    }
    let mut scratch = Vec::new();
    for seg in segments {
        let Some(scan) = &seg.scan else { continue };
        if scan.last_seq <= base || scan.header.first_seq > target || scan.frame_count == 0 {
            continue;
        }
        for (offset, f) in segment::frames(&seg.bytes, scan.valid_len) {
            if f.seq <= base {
                continue;
            }
            if f.seq > target {
                return Ok(());
            }
            let event = frame_event_with(
                format::decode_event_shared,
                &seg.path,
                offset,
                &f,
                scan.header.key_id,
                guild,
                keys,
                &mut scratch,
            )?;
            session::validate(state, &event).map_err(|e| {
                Error::from(
                    Corruption::new(&seg.path, offset, CorruptionKind::EventRejected)
                        .detail(format!("event {}: {e}", f.seq)),
                )
            })?;
            session::apply_owned(state, event);
        }
    }
    Ok(())
}

/// The damage that best explains why event `missing` is not held.
fn explain_broken(
    root: &Path,
    guild: GuildId,
    scanned: &Scanned,
    findings: &[Corruption],
    missing: Seq,
) -> Corruption {
    // The segment that should hold `missing`, if its damage is known.
    let holder = scanned
        .segments
        .iter()
        .rev()
        .find(|s| s.first_seq <= missing && !s.torn_header);
    if let Some(f) = holder.and_then(|s| s.fault.clone()) {
        return f;
    }
    // A "torn tail" right where the missing event should start, while later events are held
    // elsewhere (a commit log, a later segment), is damage: the log went on past it.
    if let Some(seg) = holder {
        if let Some(SegmentScan {
            end: ScanEnd::TornTail { offset },
            last_seq,
            ..
        }) = &seg.scan
        {
            if *last_seq + 1 == missing {
                let rest = seg.bytes.get(*offset as usize..).unwrap_or(&[]);
                let c = match frame::decode(rest) {
                    Err(fault) => fault.at_offset(*offset).at(&seg.path),
                    Ok(_) => Corruption::new(&seg.path, *offset, CorruptionKind::PayloadDecode),
                };
                return c.detail(format!(
                    "event {missing} should start here, and later events are held: damage, not a torn write"
                ));
            }
        }
    }
    // A damaged snapshot that would have bridged the hole.
    if let Some(c) = findings.iter().rev().find(|c| {
        c.kind != CorruptionKind::TornTail
            && c.path
                .extension()
                .is_some_and(|e| e == layout::SNAPSHOT_EXT)
    }) {
        return c.clone();
    }
    if let Some(c) = findings.iter().find(|c| c.kind != CorruptionKind::TornTail) {
        return c.clone();
    }
    Corruption::new(
        layout::guild_dir(root, guild),
        0,
        CorruptionKind::Unrecoverable,
    )
    .values(missing, 0)
    .detail(format!(
        "event {missing} is held neither by a segment nor by a snapshot"
    ))
}

/// Queues `frame` (the guild's next event) for the guild's active segment, in memory.
fn queue_frame(log: &mut GuildLog, frame: &[u8]) {
    if let Some(meta) = log.segments.last_mut() {
        meta.len += frame.len() as u64;
        meta.last_seq += 1;
    }
    log.unsynced = true;
    log.pending.extend_from_slice(frame);
}

/// Takes back the `count` frames of `len` bytes in all just queued for the guild's active
/// segment (an append that did not take effect).
fn unwrite_frames(log: &mut GuildLog, len: usize, count: u64) {
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

/// Decodes the event in frame `f` at `offset` of the segment `path`, whose frames are sealed
/// under `key_id` (opened into `scratch`).
fn frame_event(
    path: &Path,
    offset: u64,
    f: &frame::Frame<'_>,
    key_id: KeyId,
    guild: GuildId,
    keys: Option<&Keyring>,
    scratch: &mut Vec<u8>,
) -> std::result::Result<Event, Corruption> {
    frame_event_with(
        format::decode_event,
        path,
        offset,
        f,
        key_id,
        guild,
        keys,
        scratch,
    )
}

/// [`frame_event`] decoding the payload with `decode`.
#[allow(clippy::too_many_arguments)]
fn frame_event_with(
    decode: fn(&[u8]) -> std::result::Result<Event, String>,
    path: &Path,
    offset: u64,
    f: &frame::Frame<'_>,
    key_id: KeyId,
    guild: GuildId,
    keys: Option<&Keyring>,
    scratch: &mut Vec<u8>,
) -> std::result::Result<Event, Corruption> {
    let payload = frame::open_payload(f, key_id, guild.0, keys, scratch).map_err(|fault| {
        Corruption::new(path, offset, CorruptionKind::Authentication).detail(fault.detail(key_id))
    })?;
    decode(payload)
        .map_err(|msg| Corruption::new(path, offset, CorruptionKind::PayloadDecode).detail(msg))
}

/// Checks the directory's key check file against the keys given (see
/// [`crate::format::keycheck`]): an encrypted journal needs its key, a wrong key is refused
/// before anything is read, and a writer with keys records (or, after a rotation, updates)
/// which key the journal uses now.
fn check_key_file(
    storage: &dyn Storage,
    root: &Path,
    keys: Option<&Keyring>,
    mode: OpenMode,
) -> Result<()> {
    let path = layout::keycheck_path(root);
    let bytes = match storage.read(&path, keycheck::FILE_LEN as u64) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
            return Err(Error::from(
                Corruption::new(&path, 0, CorruptionKind::FileTooLarge).detail(e.to_string()),
            ))
        }
        Err(e) => return Err(Error::io("read", &path, e)),
    };
    let current_recorded = match &bytes {
        None => false,
        Some(b) => {
            let key_id = keycheck::decode(b).map_err(|f| Error::from(f.at(&path)))?;
            let Some(keys) = keys.filter(|k| keycheck::prove(b, k).is_ok()) else {
                return Err(crate::crypto::key_mismatch(keys, key_id, path));
            };
            key_id == keys.current()
        }
    };
    if let (Some(keys), OpenMode::ReadWrite, false) = (keys, mode, current_recorded) {
        storage::write_atomic(storage, &path, &keycheck::encode(keys))
            .map_err(|(op, p, e)| Error::io(op, p, e))?;
    }
    Ok(())
}

#[cold]
fn unreachable_missing_guild() -> Error {
    Error::io(
        "find loaded guild",
        PathBuf::new(),
        io::Error::other("guild missing right after loading"),
    )
}

/// A snapshot captured by [`Journal::snapshot_begin`], to be written on any thread.
#[derive(Debug)]
pub struct SnapshotJob {
    guild: GuildId,
    seq: Seq,
    created_unix_ms: u64,
    state: State,
    path: PathBuf,
    /// The segments sealed for this snapshot and for earlier jobs of the guild not known to be
    /// durable yet, oldest first: fsynced (unless done already) before the snapshot is written.
    seals: Vec<Arc<Seal>>,
    seal_failed: bool,
    /// Counted in [`Journal::seals_in_flight`] until it comes back.
    seal_counted: bool,
    /// The keys that seal the snapshot (encryption at rest).
    keys: Option<Keyring>,
}

/// A sealed segment whose fsync is still due (with the descriptor its writes went through, so
/// an earlier writeback error is reported — see fsyncgate), shared between the snapshot jobs
/// that need it durable and the guild's log: whichever comes first does the fsync, once.
#[derive(Debug)]
struct Seal {
    path: PathBuf,
    state: Mutex<SealState>,
}

#[derive(Debug)]
struct SealState {
    /// The descriptor that wrote the segment (`None`: a new one is opened).
    file: Option<Box<dyn AppendFile>>,
    /// The fsync happened (`Some(true)`: it succeeded).
    synced: Option<bool>,
}

impl Seal {
    fn new(path: PathBuf, file: Option<Box<dyn AppendFile>>) -> Seal {
        Seal {
            path,
            state: Mutex::new(SealState { file, synced: None }),
        }
    }

    /// Whether the fsync is done (successfully or not).
    fn settled(&self) -> bool {
        self.lock().synced.is_some()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SealState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// fdatasyncs the sealed segment unless done already; a failure is reported again to
    /// every later caller (fsyncgate: a retry could falsely succeed).
    fn discharge(&self, storage: &dyn Storage) -> io::Result<()> {
        let mut state = self.lock();
        match state.synced {
            Some(true) => return Ok(()),
            Some(false) => {
                return Err(io::Error::other(
                    "an earlier fsync of this sealed segment failed",
                ))
            }
            None => {}
        }
        let synced = match state.file.take() {
            Some(mut file) => file.sync_data(),
            None => storage
                .open_append(&self.path)
                .and_then(|mut f| f.sync_data()),
        };
        state.synced = Some(synced.is_ok());
        synced
    }
}

/// Makes every segment of the guild sealed for a snapshot job durable (oldest first) and
/// forgets them. A failure poisons the guild (fsyncgate).
fn discharge_seals(storage: &dyn Storage, log: &mut GuildLog) -> Result<()> {
    for seal in &log.owed_seals {
        if let Err(e) = seal.discharge(storage) {
            log.poisoned = Some("fsync");
            return Err(Error::io("fsync", &seal.path, e));
        }
    }
    log.owed_seals.clear();
    Ok(())
}

impl SnapshotJob {
    /// The guild.
    pub fn guild(&self) -> GuildId {
        self.guild
    }

    /// The sequence number the snapshot captures.
    pub fn seq(&self) -> Seq {
        self.seq
    }

    /// The snapshot file it writes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether [`SnapshotJob::write_to`] failed to make the sealed segment durable.
    pub fn seal_failed(&self) -> bool {
        self.seal_failed
    }

    /// Makes the sealed segments durable (oldest first), then encodes the snapshot and writes
    /// it with `write_atomic` (temporary file, fsync, rename, fsync directory) through
    /// `storage`; returns the file's size.
    ///
    /// # Errors
    /// [`Error::Io`]; nothing is left behind but a temporary file the next writer removes.
    /// When the seal's fsync failed ([`SnapshotJob::seal_failed`]), hand the job to
    /// [`Journal::snapshot_failed`].
    pub fn write_to(&mut self, storage: &dyn Storage) -> Result<u64> {
        let _span =
            tracing::info_span!("reprise.snapshot", guild = self.guild.0, seq = self.seq).entered();
        let started = std::time::Instant::now();
        for seal in std::mem::take(&mut self.seals) {
            if let Err(e) = seal.discharge(storage) {
                self.seal_failed = true;
                return Err(Error::io("fsync", &seal.path, e));
            }
        }
        let bytes = snapshot::encode(
            self.guild.0,
            self.seq,
            self.created_unix_ms,
            &self.state,
            self.keys.as_ref(),
        )
        .map_err(|e| Error::io("compress snapshot for", &self.path, e))?;
        storage::write_atomic(storage, &self.path, &bytes)
            .map_err(|(op, p, e)| Error::io(op, p, e))?;
        // write_atomic made the file's entry in the guild directory durable; the guild
        // directory's entry in guilds/ and guilds/ in the root may be new too.
        let guild_dir = self.path.parent();
        let guilds_dir = guild_dir.and_then(Path::parent);
        for dir in [guilds_dir, guilds_dir.and_then(Path::parent)]
            .into_iter()
            .flatten()
        {
            storage
                .sync_dir(dir)
                .map_err(|e| Error::io("fsync directory", dir, e))?;
        }
        metrics::counter!(crate::telemetry::SNAPSHOTS_TOTAL).increment(1);
        metrics::histogram!(crate::telemetry::SNAPSHOT_SECONDS)
            .record(started.elapsed().as_secs_f64());
        metrics::histogram!(crate::telemetry::SNAPSHOT_BYTES).record(bytes.len() as f64);
        Ok(bytes.len() as u64)
    }
}

/// The file-writing half of the journal, borrowed apart from the guild map.
struct Ctx<'a> {
    root: &'a Path,
    storage: &'a dyn Storage,
    config: &'a Config,
    guilds_dir_ready: &'a mut bool,
    /// This process's commit log: its queued records are written before any guild frame
    /// reaches a segment file (see [`Ctx::flush_guild`]).
    commit: &'a mut Option<CommitLog>,
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
        if log.segments.is_empty() && log.snapshots.is_empty() {
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
            let _ = self.storage.remove(&path);
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

    /// Writes the guild's buffered frames to its active segment.
    ///
    /// The commit log's queued records are written first, so that every frame in a segment file
    /// has its commit record in the commit log file (both perhaps only in the page cache): after
    /// an unclean shutdown the commit logs then name every segment that may hold bytes an
    /// earlier process wrote since its last checkpoint, and those are rewritten before they are
    /// built on (see `make_inherited_durable`).
    ///
    /// The frames were already acknowledged (and are in the commit log), so a failed write
    /// cannot be taken back: the guild's log is poisoned, and a reopen restores the frames from
    /// the commit log where it was synced.
    fn flush_guild(&mut self, guild: GuildId, log: &mut GuildLog) -> Result<()> {
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
        log.pending.clear();
        Ok(())
    }

    /// fdatasync the active segment (and the directory entries created since the last sync).
    fn sync_guild(&mut self, guild: GuildId, log: &mut GuildLog) -> Result<()> {
        if let Some(op) = log.poisoned {
            return Err(Error::Poisoned { guild, op });
        }
        self.flush_guild(guild, log)?;
        sync_segment(self.root, self.storage, guild, log)?;
        sync_guild_dir(self.root, self.storage, guild, log)?;
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

    /// Writes a snapshot of the current state, then applies retention.
    fn snapshot(&mut self, guild: GuildId, log: &mut GuildLog, now: u64) -> Result<()> {
        let since = (log.events_since_snapshot, log.bytes_since_snapshot);
        let begun = self.snapshot_begin(guild, log, now);
        if begun.is_err() {
            // Still due: the next append tries again.
            (log.events_since_snapshot, log.bytes_since_snapshot) = since;
        }
        if let Some(mut job) = begun? {
            if let Err(e) = job.write_to(self.storage) {
                if job.seal_failed {
                    log.poisoned = Some("fsync");
                }
                (log.events_since_snapshot, log.bytes_since_snapshot) = since;
                return Err(e);
            }
            self.snapshot_finish(guild, log, job.seq)?;
        }
        Ok(())
    }

    /// Seals the log up to the current seq (durable before a snapshot claims it) and captures
    /// the state; `None` when a snapshot at this seq exists already.
    fn snapshot_begin(
        &mut self,
        guild: GuildId,
        log: &mut GuildLog,
        now: u64,
    ) -> Result<Option<SnapshotJob>> {
        let seq = log.current.seq;
        log.events_since_snapshot = 0;
        log.bytes_since_snapshot = 0;
        if seq == 0 || log.snapshots.contains(&seq) {
            return Ok(None);
        }
        // Seal the active segment now (the next append starts a new one); its fsync travels
        // with the job, so a background writer does it off the append path.
        self.flush_guild(guild, log)?;
        let active = log.active.take();
        let seal = match log.segments.last_mut() {
            // A segment holding no event yet stays the active one (sealing it would make the
            // next append try to create a file of the same name).
            Some(last) if last.last_seq < last.first_seq => {
                log.active = active;
                None
            }
            Some(last) => {
                last.sealed = true;
                let unsynced = std::mem::take(&mut log.unsynced);
                unsynced.then(|| {
                    Arc::new(Seal::new(
                        layout::segment_path(self.root, guild, last.first_seq),
                        active,
                    ))
                })
            }
            None => None,
        };
        // The snapshot needs the log up to `seq` durable: this seal and every earlier one
        // still owed (a later job may be written before an earlier one).
        log.owed_seals.retain(|s| !s.settled());
        log.owed_seals.extend(seal);
        let seals = log.owed_seals.clone();
        Ok(Some(SnapshotJob {
            guild,
            seq,
            created_unix_ms: now,
            state: log.current.state.clone(),
            path: layout::snapshot_path(self.root, guild, seq),
            seals,
            seal_failed: false,
            seal_counted: false,
            keys: self.config.keys.clone(),
        }))
    }

    /// Registers a written snapshot and applies retention.
    fn snapshot_finish(&mut self, guild: GuildId, log: &mut GuildLog, seq: Seq) -> Result<()> {
        if let Err(at) = log.snapshots.binary_search(&seq) {
            log.snapshots.insert(at, seq);
        }
        self.retain(guild, log)
    }

    /// Applies the retention rule ([`journal_admin::retention_decision`], the one `cleanup`
    /// applies too) with [`Config::snapshots_retained`] and [`Config::snapshot_age_max`]: keeps
    /// the newest valid snapshots and the segments needed to replay from the oldest kept one,
    /// and removes the rest. A snapshot counts only once read back and verified here (a
    /// damaged one, even just written, is never what others are removed for); nothing is
    /// removed that the newest state's recovery needs. The active segment is never removed.
    fn retain(&mut self, guild: GuildId, log: &mut GuildLog) -> Result<()> {
        let policy = journal_admin::RetentionPolicy::from_config(self.config);
        let segments: Vec<journal_admin::SegmentSpan> = log
            .segments
            .iter()
            .map(|s| journal_admin::SegmentSpan {
                first_seq: s.first_seq,
                last_seq: s.last_seq,
            })
            .collect();
        let now = now_unix_ms();
        if policy.age_max.is_none() {
            // Without an age limit, fewer valid snapshots never remove more: when even all of
            // them valid would remove nothing, nothing needs reading back.
            let assumed: Vec<journal_admin::SnapshotStat> = log
                .snapshots
                .iter()
                .map(|&seq| journal_admin::SnapshotStat {
                    path: PathBuf::new(),
                    seq,
                    bytes: 0,
                    created_unix_ms: None,
                    valid: true,
                })
                .collect();
            if journal_admin::retention_plan(&assumed, &segments, &policy, now).is_empty() {
                return Ok(());
            }
        }
        let mut snapshots = Vec::with_capacity(log.snapshots.len());
        for &seq in &log.snapshots {
            let path = layout::snapshot_path(self.root, guild, seq);
            snapshots.push(journal_admin::read_snapshot_stat(
                self.storage,
                &path,
                guild,
                seq,
                self.config.keys.as_ref(),
            )?);
        }
        let Ok(plan) = journal_admin::retention_decision(&snapshots, &segments, &policy, now)
        else {
            // The newest state could not be rebuilt without what would go: keep everything.
            return Ok(());
        };
        if plan.is_empty() {
            return Ok(());
        }
        let mut removed = false;
        for &seq in &plan.snapshots {
            let path = layout::snapshot_path(self.root, guild, seq);
            match self.storage.remove(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("remove old snapshot", &path, e)),
            }
            log.snapshots.retain(|&s| s != seq);
            removed = true;
        }
        // The plan's segments are the oldest ones (a prefix of the list).
        let mut drop_count = plan
            .segments
            .len()
            .min(log.segments.len().saturating_sub(1));
        // Oldest first, and forgotten only once removed: a failure leaves the segments still
        // on disk a contiguous run (no gap), and the next retention retries them.
        while drop_count > 0 {
            let path = layout::segment_path(self.root, guild, log.segments[0].first_seq);
            if let Err(e) = self.storage.remove(&path) {
                // Removals made so far need no directory fsync to be safe: a removal undone by
                // a crash leaves an obsolete segment that the next retention removes again.
                return Err(Error::io("remove obsolete segment", &path, e));
            }
            log.segments.remove(0);
            drop_count -= 1;
            removed = true;
        }
        if removed {
            let dir = layout::guild_dir(self.root, guild);
            self.storage
                .sync_dir(&dir)
                .map_err(|e| Error::io("fsync directory", &dir, e))?;
        }
        Ok(())
    }
}

enum EventSource {
    Segment {
        path: PathBuf,
        bytes: Bytes,
        valid_len: u64,
        key_id: KeyId,
    },
    Broken(Corruption),
}

/// Iterator over the events a guild's log holds; see [`Journal::events`].
pub struct EventIter {
    parts: Vec<EventSource>,
    guild: GuildId,
    keys: Option<Keyring>,
    scratch: Vec<u8>,
    part: usize,
    offset: u64,
    next_seq: Option<Seq>,
    done: bool,
}

impl std::fmt::Debug for EventIter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventIter")
            .field("part", &self.part)
            .field("offset", &self.offset)
            .finish()
    }
}

impl Iterator for EventIter {
    type Item = Result<LoggedEvent>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.done {
                return None;
            }
            let Some(part) = self.parts.get(self.part) else {
                self.done = true;
                return None;
            };
            match part {
                EventSource::Broken(c) => {
                    self.done = true;
                    return Some(Err(Error::from(c.clone())));
                }
                EventSource::Segment {
                    path,
                    bytes,
                    valid_len,
                    key_id,
                } => {
                    if self.offset >= *valid_len {
                        self.part += 1;
                        self.offset = segment::HEADER_LEN as u64;
                        continue;
                    }
                    let at = self.offset;
                    let rest = bytes.get(at as usize..*valid_len as usize).unwrap_or(&[]);
                    let f = match frame::decode(rest) {
                        Ok(f) => f,
                        Err(fault) => {
                            self.done = true;
                            return Some(Err(Error::from(fault.at_offset(at).at(path))));
                        }
                    };
                    self.offset += f.len_total() as u64;
                    if let Some(n) = self.next_seq {
                        if f.seq != n {
                            self.done = true;
                            return Some(Err(Error::from(
                                Corruption::new(path, at, CorruptionKind::SequenceGap)
                                    .values(n, f.seq),
                            )));
                        }
                    }
                    self.next_seq = Some(f.seq + 1);
                    return Some(
                        match frame_event(
                            path,
                            at,
                            &f,
                            *key_id,
                            self.guild,
                            self.keys.as_ref(),
                            &mut self.scratch,
                        ) {
                            Ok(event) => Ok(LoggedEvent {
                                seq: f.seq,
                                at_unix_ms: f.at_unix_ms,
                                event,
                            }),
                            Err(c) => {
                                self.done = true;
                                Err(Error::from(c))
                            }
                        },
                    );
                }
            }
        }
    }
}

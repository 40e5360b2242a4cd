//! The synchronous core: open a directory, append events, read states, snapshot, verify.
//!
//! This file holds the handle: [`Journal`] and how it opens (the directory lock, the key check
//! file, the commit logs an earlier process left), its in-memory state per guild, and the
//! public types its parts share. The rest of the journal is one concern per file:
//!
//! - `write.rs`: the write path: appends (validated and framed before anything is written,
//!   queued in the guild's buffer and the commit log), the guild's active segment, writing
//!   buffered frames out, group commit ([`Journal::flush`], [`Journal::sync`]) and the upkeep
//!   an append triggers.
//! - `recover.rs`: scan and rebuild: reading a guild's files, the recovery decision, replay
//!   ([`Journal::state`], [`Journal::state_at`]).
//! - `repair.rs`: what an earlier process left: torn tails cut, events restored from its commit
//!   logs, inherited files made durable before anything builds on them.
//! - `retire.rs`: commit-log retirement ([`Journal::retire_commit_logs`]): the guild files made
//!   durable on their own, then the commit logs removed.
//! - `snapshots.rs`: snapshots (in place, or as a [`SnapshotJob`] written off the append path)
//!   and local retention.
//! - `retention.rs`: the retention rule, pure (`retention_plan`, `retention_decision`),
//!   which local retention and `cleanup` both apply.
//! - `cleanup.rs`: retention on demand ([`Journal::cleanup`], `reprise cleanup`).
//! - `stats.rs`: analytics ([`Journal::stats`], `reprise stats`).
//! - `superseded.rs`: the copies remote claims set aside (`superseded_to_remove`,
//!   [`Journal::remove_superseded`]).
//! - `at_time.rs`: point in time by the clock ([`Journal::state_at_time`]).
//! - `verify.rs`: [`Journal::verify`] and [`Journal::inspect`].
//! - `events.rs`: iterating a guild's logged events ([`Journal::events`]).
//! - `tests.rs`: unit tests of the pure helpers (the journal's behaviour is tested through its
//!   public API in `tests/it/`).

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use crate::commit_log::{CommitIndex, CommitLog};
use crate::config::{Config, SEGMENT_BYTES_MAX_MAX};
use crate::crypto::{KeyId, Keyring};
use crate::error::{Corruption, CorruptionKind, Error, Result};
use crate::format::{frame, keycheck};
use crate::ids::{GuildId, Seq};
use crate::layout;
use crate::session::State;
use crate::storage::{self, AppendFile, DirLock, FsStorage, LockFailure, Storage};

mod at_time;
mod cleanup;
mod events;
mod live;
mod recover;
mod repair;
mod retention;
mod retire;
mod snapshots;
mod state_json;
mod stats;
mod superseded;
mod verify;
mod write;

#[cfg(test)]
mod tests;

pub use cleanup::{CleanupReport, GuildCleanup, Skipped};
pub use events::{EventIter, LoggedEvent};
pub(crate) use live::read_again;
pub use retention::{RetentionPolicy, SnapshotStat};
pub use snapshots::SnapshotJob;
pub use state_json::StateJsonError;
pub use stats::{GuildSnapshot, GuildStats, Stats};
pub use superseded::SupersededCopy;
pub use verify::{FileInfo, Finding, GuildInfo, VerifyReport};
#[cfg(feature = "remote")]
pub(crate) use write::read_owner_record;

use snapshots::Seal;

/// A guild's appended frames are written to its segment once this many bytes wait (and at every
/// seal, snapshot, read of its files and commit-log retirement). Until then they live in memory and
/// in the commit log: the acknowledgement path writes and fsyncs only the commit log.
pub const GUILD_BUFFER_BYTES_MAX: usize = 64 << 10;

/// All guilds' unwritten frames together are written out once they reach this many bytes.
pub const BUFFERED_BYTES_MAX: u64 = 16 << 20;

/// Largest segment file recovery reads: the size limit plus one maximal frame.
const SEGMENT_FILE_LEN_MAX: u64 =
    SEGMENT_BYTES_MAX_MAX + frame::HEADER_LEN as u64 + frame::PAYLOAD_LEN_MAX as u64;

/// Whether a journal may write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OpenMode {
    /// Exclusive owner: appends, snapshots, compaction, and recovery repairs torn tails.
    #[default]
    ReadWrite,
    /// Reader: takes no lock and never writes or repairs (a torn tail is skipped in memory), so
    /// it works beside a live writer (another process appending to the directory) and never
    /// keeps one from starting. What it reads is a consistent view: the state after a prefix of
    /// each guild's events that includes every event acknowledged before the read began; a read
    /// that a racing writer disturbs (a file removed, sealed or replaced between the listing
    /// and the read) is tried again from a fresh listing (see DESIGN.md, "Readers of a live
    /// journal"). A guild's state, once read, is kept until [`Journal::refresh`].
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

impl GuildState {
    /// The JSON form `reprise state` prints (and the Python package's `state()` gives):
    /// `{"guild": G, "seq": N, ...}` with the state's fields beside the two.
    /// [`GuildState::from_json`] reads it back.
    pub fn to_json(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        m.insert("guild".into(), self.guild.0.into());
        m.insert("seq".into(), self.seq.into());
        if let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(&self.state) {
            m.extend(fields);
        }
        serde_json::Value::Object(m)
    }
}

/// The per-guild write-ahead journal. See the crate docs for an example.
///
/// A writer's `Journal` owns its directory (an advisory lock) until dropped; a reader's
/// ([`Journal::open_read_only`]) takes no lock and reads beside it. Guilds are recovered lazily,
/// on first use. It is synchronous and single-threaded; [`Durability::Batched`] appends become
/// durable at the next [`Journal::sync`].
///
/// [`Durability::Batched`]: crate::config::Durability::Batched
#[derive(Debug)]
pub struct Journal {
    root: PathBuf,
    storage: Arc<dyn Storage>,
    config: Config,
    mode: OpenMode,
    /// Each guild's log, boxed: the map's nodes hold pointers, not ~1 KiB logs in nodes
    /// half full (measured: 1.9 KB per idle recovered guild inline, ≈ 1.1 KB boxed).
    guilds: BTreeMap<GuildId, Box<GuildLog>>,
    frame_buf: Vec<u8>,
    guilds_dir_ready: bool,
    /// The commit log this process appends to (created at the first append).
    commit: Option<CommitLog>,
    /// Commit logs left by earlier processes, until a retirement has made them unnecessary.
    recovered: CommitIndex,
    /// A retirement's fsync failed: commit logs are never dropped by this process again.
    retirement_poisoned: Option<&'static str>,
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
    fences: HashMap<GuildId, Option<(crate::ids::Epoch, String)>>,
    /// Bumped by every ownership record written through this journal's [`crate::remote::LocalDir`].
    owner_records_written: Arc<AtomicU64>,
    /// The value of `owner_records_written` that `fences` reflects.
    fences_seen: u64,
    /// Snapshot jobs handed out by [`Journal::snapshot_begin`] whose sealed segment's fsync
    /// (carried by the job, on the descriptor that wrote it) may not have happened yet: until
    /// they come back, a retirement cannot prove those segments durable.
    seals_in_flight: usize,
    /// The writer's exclusive lock on `LOCK` (`None` for a reader, which takes none).
    _lock: Option<Box<dyn DirLock>>,
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
    ///
    /// [`sync_segment`]: write::sync_segment
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
        Self::open_on(dir, config, OpenMode::ReadWrite, Arc::new(FsStorage))
    }

    /// Opens the journal in `dir` for reading only ([`OpenMode::ReadOnly`]): no lock is taken
    /// and nothing is written, so any number of readers may read while a writer (this process's
    /// or another's) appends, and a writer may start while they read.
    ///
    /// # Errors
    /// [`Error::Io`] when the directory does not exist or its commit logs cannot be read;
    /// [`Error::KeyMismatch`] when its files need a key not given; [`Error::Busy`] when a
    /// writer kept changing the commit logs under every attempt to read them.
    pub fn open_read_only(dir: impl AsRef<Path>, config: Config) -> Result<Journal> {
        Self::open_on(dir, config, OpenMode::ReadOnly, Arc::new(FsStorage))
    }

    /// Opens the journal in `dir` through any storage implementation (the file system, or the
    /// simulated one of the crash tests through [`Journal::open_with`]).
    pub(crate) fn open_on(
        dir: impl AsRef<Path>,
        config: Config,
        mode: OpenMode,
        storage: Arc<dyn Storage>,
    ) -> Result<Journal> {
        let root = dir.as_ref().to_path_buf();
        if mode == OpenMode::ReadWrite {
            create_dir_durably(storage.as_ref(), &root)?;
            // Before `commit/` and `guilds/` exist: their inodes (and the commit logs' inodes,
            // allocated next to `commit/`'s) then land apart from each other. A hint: a failure
            // changes nothing stored.
            if let Err(e) = storage.spread_subdirectories(&root) {
                tracing::debug!(error = %e, dir = %root.display(), "FS_TOPDIR_FL not set");
            }
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
        // Only a writer locks: a reader takes no lock, so it never keeps a writer from starting.
        let lock = match mode {
            OpenMode::ReadWrite => {
                let lock_path = layout::lock_path(&root);
                match storage.lock(&lock_path, true) {
                    Ok(l) => Some(l),
                    Err(LockFailure::Held { holder_pid }) => {
                        return Err(Error::Locked {
                            path: lock_path,
                            holder_pid,
                        })
                    }
                    Err(LockFailure::Io(e)) => return Err(Error::io("lock", lock_path, e)),
                }
            }
            OpenMode::ReadOnly => None,
        };
        check_key_file(storage.as_ref(), &root, config.keys.as_ref(), mode)?;
        let recovered = match mode {
            OpenMode::ReadWrite => CommitIndex::read(storage.as_ref(), &root)?,
            OpenMode::ReadOnly => live::read_commit_index(storage.as_ref(), &root)?,
        };
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
            retirement_poisoned: None,
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

    /// What restores `guild`'s player on Lavalink v4 at `now_unix_ms`, with the sections in
    /// `only`: [`crate::lavalink::plan`] of the guild's current state (what `reprise lavalink`
    /// prints; the async handle's [`crate::Reprise::lavalink_restore`] gives the same).
    ///
    /// # Errors
    /// As [`Journal::state`].
    pub fn lavalink_restore(
        &mut self,
        guild: GuildId,
        now_unix_ms: u64,
        only: crate::sonora::Sections,
    ) -> Result<crate::lavalink::Restore> {
        Ok(crate::lavalink::plan(self.state(guild)?, now_unix_ms, only))
    }

    /// The storage this journal writes through.
    pub(crate) fn storage(&self) -> Arc<dyn Storage> {
        Arc::clone(&self.storage)
    }

    /// Whether this journal may write.
    pub fn mode(&self) -> OpenMode {
        self.mode
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
    /// As [`Journal::retire_commit_logs`]; [`Error::Io`] naming the file that could not move.
    #[cfg(feature = "remote")]
    pub(crate) fn set_aside(&mut self, guild: GuildId, to: &Path) -> Result<usize> {
        self.retire_commit_logs(false)?;
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

    /// Makes everything durable in the guild segments (a commit-log retirement without a new commit
    /// log) and releases the directory.
    ///
    /// # Errors
    /// As [`Journal::retire_commit_logs`].
    pub fn close(mut self) -> Result<()> {
        if self.mode == OpenMode::ReadOnly {
            return Ok(());
        }
        self.sync()?;
        self.retire_commit_logs(false)
    }

    fn writable(&self) -> Result<()> {
        match self.mode {
            OpenMode::ReadWrite => Ok(()),
            OpenMode::ReadOnly => Err(Error::ReadOnly),
        }
    }
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

/// The entry point of the crash tests and the bench (feature `testing`; not for bots).
#[cfg(any(test, feature = "testing"))]
impl Journal {
    /// Opens the journal in `dir` through any storage implementation (the simulated file system
    /// of the crash tests, say).
    ///
    /// # Errors
    /// As [`Journal::open`].
    #[doc(hidden)]
    pub fn open_with(
        dir: impl AsRef<Path>,
        config: Config,
        mode: OpenMode,
        storage: Arc<dyn Storage>,
    ) -> Result<Journal> {
        Self::open_on(dir, config, mode, storage)
    }
}

//! Named checkpoints of every guild, and rollbacks to them in paced batches (what deployments
//! use: Sonora's blue-green and rolling deployment examples, done with restore events).
//!
//! - [`checkpoint`] records every guild's current state (every guild with at least one event)
//!   as a named restore point: `DIR/checkpoints/<label>/<guild>.snap` (the snapshot format,
//!   sealed like any snapshot when encryption is on) and, written last and atomically,
//!   `DIR/checkpoints/<label>/MANIFEST` (guild → seq and the checksum of each state file; see
//!   the manifest format in DESIGN.md). A checkpoint exists exactly when its manifest does: a crash
//!   while one is taken leaves no checkpoint (the leftover files are replaced by the next
//!   attempt with that label). The journal is synced first, so a checkpoint never names an event
//!   a power loss could still take back. All guilds are read by one journal that owns the
//!   directory, so the checkpoint is one consistent cut: no append runs in between.
//! - The checkpoint **owns its states**: the journal's retention and `reprise cleanup` never
//!   look into `checkpoints/`, so a rollback works however much log was compacted since. A
//!   checkpoint is removed only by [`remove_checkpoint`]. It costs one compressed state per
//!   guild.
//! - [`rollback`] makes each guild's checkpointed state current again with one
//!   `state_restored` event per guild (through [`crate::restore::restore_state`]: validated,
//!   restore point, verified, undone on failure), target
//!   [`crate::restore::restore_target`]. Every selected state file is read and checked
//!   before the first guild is restored. Guilds already in the checkpointed state are left
//!   alone (`unchanged`), so running a rollback again after an interruption finishes it without
//!   appending twice. Guilds that are not in the checkpoint (new since) are not touched.
//! - [`rolling`] runs any per-guild work in batches with a pace limit (batch `k` starts no
//!   earlier than `k × pace` after the first), so a fleet restart does not send thousands of
//!   Lavalink PATCHes at once. The clock and the sleep are a [`Pacer`], so tests need no real
//!   time.

//!
//! ```
//! use std::time::Duration;
//! use reprise::checkpoints::{self, RollbackOptions, SystemPacer};
//! use reprise::{Config, Durability, Event, GuildId, Journal};
//!
//! # fn main() -> Result<(), reprise::Error> {
//! let dir = tempfile::tempdir().unwrap();
//! let mut journal = Journal::open(dir.path(), Config::default())?;
//! for g in [1, 2, 3] {
//!     journal.append(GuildId(g), &Event::VolumeSet { volume: 80 }, Durability::Always)?;
//! }
//! checkpoints::checkpoint(&mut journal, "before-v2")?;
//! journal.append(GuildId(2), &Event::SessionEnded, Durability::Always)?; // the deploy goes wrong
//! let options = RollbackOptions { guilds: None, batch: 2, pace: Duration::ZERO };
//! let mut pacer = SystemPacer;
//! let done = checkpoints::rollback(&mut journal, "before-v2", &options, &mut pacer, &mut |r| {
//!     println!("guild {}: {}", r.guild, r.status.as_str());
//! })?;
//! assert_eq!(done.len(), 3);
//! assert_eq!(journal.state(GuildId(2))?.state.player.volume, 80);
//! # Ok(()) }
//! ```

use std::time::Duration;

use crate::clock::now_unix_ms;
use crate::error::{Corruption, CorruptionKind, Error, Result};
use crate::format::{manifest, snapshot};
use crate::ids::{GuildId, Seq};
use crate::journal::{Journal, OpenMode};
use crate::layout;
use crate::restore::{restore_state, restore_target};
use crate::session::State;
use crate::storage::{self, Storage};

/// A named checkpoint, as its manifest describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// Its label.
    pub label: String,
    /// When it was taken (Unix milliseconds).
    pub created_unix_ms: u64,
    /// Every guild it holds and the sequence number of the guild's state in it, by guild id.
    pub guilds: Vec<(GuildId, Seq)>,
    /// Bytes on disk (manifest and state files).
    pub bytes: u64,
}

/// Which guilds a rollback restores, and how fast.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RollbackOptions {
    /// Only these guilds (each must be in the checkpoint); `None`: every guild of the
    /// checkpoint.
    pub guilds: Option<Vec<GuildId>>,
    /// Guilds per batch (at least 1).
    pub batch: usize,
    /// The least time between the starts of two batches (zero: no pacing).
    pub pace: Duration,
}

impl Default for RollbackOptions {
    /// Every guild, batches of 25, 1 s apart.
    fn default() -> Self {
        RollbackOptions {
            guilds: None,
            batch: 25,
            pace: Duration::from_secs(1),
        }
    }
}

/// What a rollback did to one guild.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RollbackStatus {
    /// A `state_restored` event was appended.
    Restored,
    /// The guild was already in the checkpointed state; nothing was appended.
    Unchanged,
}

impl RollbackStatus {
    /// The snake_case name (`restored`, `unchanged`), as printed by the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            RollbackStatus::Restored => "restored",
            RollbackStatus::Unchanged => "unchanged",
        }
    }
}

/// One guild of a rollback.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RolledBack {
    /// The guild.
    pub guild: GuildId,
    /// Restored or unchanged.
    pub status: RollbackStatus,
    /// The guild's sequence number afterwards (the `state_restored` event when restored).
    pub seq: Seq,
    /// The sequence number of the guild's state in the checkpoint.
    pub restored_from_seq: Seq,
    /// The batch it was in, from 0.
    pub batch: usize,
}

/// The clock and the sleep that pace a rolling operation.
pub trait Pacer {
    /// Now, in milliseconds from any fixed origin.
    fn now_ms(&mut self) -> u64;
    /// Waits `ms` milliseconds.
    fn sleep_ms(&mut self, ms: u64);
}

/// The real clock and `std::thread::sleep`.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemPacer;

impl Pacer for SystemPacer {
    fn now_ms(&mut self) -> u64 {
        now_unix_ms()
    }

    fn sleep_ms(&mut self, ms: u64) {
        std::thread::sleep(Duration::from_millis(ms));
    }
}

/// Runs `work` on `items` in batches of `batch` (at least 1), starting batch `k` no earlier
/// than `k × pace` after batch 0 started (by the pacer's clock; a batch that took longer than
/// `pace` is followed at once). `work` gets the batch index and the batch.
///
/// # Errors
/// The first error of `work`; later batches are not run.
pub fn rolling<T, E>(
    items: &[T],
    batch: usize,
    pace: Duration,
    pacer: &mut dyn Pacer,
    mut work: impl FnMut(usize, &[T]) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    let pace_ms = u64::try_from(pace.as_millis()).unwrap_or(u64::MAX);
    let start = pacer.now_ms();
    for (k, chunk) in items.chunks(batch.max(1)).enumerate() {
        if k > 0 && pace_ms > 0 {
            let due = start.saturating_add(pace_ms.saturating_mul(k as u64));
            let now = pacer.now_ms();
            if now < due {
                pacer.sleep_ms(due - now);
            }
        }
        work(k, chunk)?;
    }
    Ok(())
}

fn checkpoint_error(label: &str, reason: impl Into<String>) -> Error {
    Error::Checkpoint {
        label: label.to_owned(),
        reason: reason.into(),
    }
}

fn check_label(label: &str) -> Result<()> {
    if manifest::label_is_valid(label) {
        Ok(())
    } else {
        Err(checkpoint_error(
            label,
            format!(
                "not a valid label: 1 to {} ASCII letters, digits, '.', '_' or '-', not starting with '.'",
                manifest::LABEL_LEN_MAX
            ),
        ))
    }
}

fn io(op: &'static str, path: &std::path::Path, e: std::io::Error) -> Error {
    Error::Io {
        op,
        path: path.to_path_buf(),
        source: e,
    }
}

fn exists(storage: &dyn Storage, path: &std::path::Path) -> Result<bool> {
    match storage.file_len(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io("read", path, e)),
    }
}

/// Takes the checkpoint `label`: every guild with at least one event, at its current state.
/// See the module docs.
///
/// # Errors
/// [`Error::Checkpoint`] for an invalid label or one already taken; [`Error::ReadOnly`];
/// recovery errors of any guild (nothing is written then); [`Error::Io`].
pub fn checkpoint(journal: &mut Journal, label: &str) -> Result<Checkpoint> {
    check_label(label)?;
    if journal.mode() != OpenMode::ReadWrite {
        return Err(Error::ReadOnly);
    }
    let root = journal.dir().to_path_buf();
    let storage = journal.storage();
    let manifest_path = layout::checkpoint_manifest_path(&root, label);
    if exists(storage.as_ref(), &manifest_path)? {
        return Err(checkpoint_error(
            label,
            "exists already (remove it first to take it again)",
        ));
    }
    journal.sync()?;
    let mut states: Vec<(GuildId, Seq)> = Vec::new();
    for guild in journal.guilds()? {
        let seq = journal.state(guild)?.seq;
        if seq > 0 {
            states.push((guild, seq));
        }
    }
    let dir = layout::checkpoint_dir(&root, label);
    storage
        .create_dir_all(&dir)
        .map_err(|e| io("create directory", &dir, e))?;
    for parent in [layout::checkpoints_dir(&root), root.clone()] {
        storage
            .sync_dir(&parent)
            .map_err(|e| io("fsync directory", &parent, e))?;
    }
    // Leftovers of an attempt a crash interrupted (no manifest was written).
    for name in storage.list(&dir).map_err(|e| io("list", &dir, e))? {
        let path = dir.join(name);
        storage
            .remove(&path)
            .map_err(|e| io("remove leftover checkpoint file", &path, e))?;
    }
    match write_checkpoint(journal, label, states) {
        Ok(checkpoint) => Ok(checkpoint),
        Err(e) => {
            // Nothing of a failed attempt stays behind (a full disk would otherwise keep the
            // files written before it filled): best effort, as the next attempt removes
            // leftovers too. The manifest first (a failed fsync of the directory after its
            // rename leaves one): a crash part-way never leaves a checkpoint that lists
            // states it lacks.
            let _ = storage.remove(&manifest_path);
            if let Ok(names) = storage.list(&dir) {
                for name in names {
                    let _ = storage.remove(&dir.join(name));
                }
            }
            let _ = storage.remove_dir(&dir);
            Err(e)
        }
    }
}

/// The files of checkpoint `label` (its directory exists and is empty): one compressed state
/// per guild of `states`, each fsynced, then the manifest, written atomically.
fn write_checkpoint(
    journal: &mut Journal,
    label: &str,
    states: Vec<(GuildId, Seq)>,
) -> Result<Checkpoint> {
    let root = journal.dir().to_path_buf();
    let storage = journal.storage();
    let dir = layout::checkpoint_dir(&root, label);
    let manifest_path = layout::checkpoint_manifest_path(&root, label);
    let created_unix_ms = now_unix_ms();
    let keys = journal.config().keys.clone();
    let mut entries = Vec::with_capacity(states.len());
    let mut bytes_total = 0u64;
    for &(guild, seq) in &states {
        let state = &journal.state(guild)?.state;
        let bytes = snapshot::encode(guild.0, seq, created_unix_ms, state, keys.as_ref())
            .map_err(|e| io("compress", &dir, e))?;
        let path = layout::checkpoint_state_path(&root, label, guild);
        let mut file = storage
            .create_new(&path)
            .map_err(|e| io("create", &path, e))?;
        file.append(&bytes).map_err(|e| io("write", &path, e))?;
        file.sync_data().map_err(|e| io("fsync", &path, e))?;
        entries.push(manifest::ManifestEntry {
            guild: guild.0,
            seq,
            state_crc: crc32fast::hash(&bytes),
        });
        bytes_total += bytes.len() as u64;
    }
    storage
        .sync_dir(&dir)
        .map_err(|e| io("fsync directory", &dir, e))?;
    let manifest = manifest::Manifest {
        label: label.to_owned(),
        created_unix_ms,
        entries,
    };
    let encoded = manifest::encode(&manifest).map_err(|reason| checkpoint_error(label, reason))?;
    storage::write_atomic(storage.as_ref(), &manifest_path, &encoded).map_err(
        |(op, path, e)| Error::Io {
            op,
            path,
            source: e,
        },
    )?;
    Ok(Checkpoint {
        label: label.to_owned(),
        created_unix_ms,
        guilds: states,
        bytes: bytes_total + encoded.len() as u64,
    })
}

/// Reads the manifest of checkpoint `label`.
///
/// # Errors
/// [`Error::Checkpoint`] when there is no such checkpoint (or the label is invalid);
/// [`Error::Corrupt`] for a damaged manifest; [`Error::Io`].
pub fn load_checkpoint(journal: &Journal, label: &str) -> Result<Checkpoint> {
    let (decoded, manifest_len) = read_manifest(journal, label)?;
    let storage = journal.storage();
    let mut total = manifest_len;
    for e in &decoded.entries {
        let state_path = layout::checkpoint_state_path(journal.dir(), label, GuildId(e.guild));
        total += storage.file_len(&state_path).unwrap_or(0);
    }
    Ok(Checkpoint {
        label: decoded.label,
        created_unix_ms: decoded.created_unix_ms,
        guilds: decoded
            .entries
            .iter()
            .map(|e| (GuildId(e.guild), e.seq))
            .collect(),
        bytes: total,
    })
}

/// The decoded manifest of checkpoint `label` and its length in bytes.
fn read_manifest(journal: &Journal, label: &str) -> Result<(manifest::Manifest, u64)> {
    check_label(label)?;
    let root = journal.dir();
    let storage = journal.storage();
    let path = layout::checkpoint_manifest_path(root, label);
    let bytes = match storage.read(&path, manifest::FILE_LEN_MAX) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(checkpoint_error(label, "no such checkpoint"));
        }
        Err(e) => return Err(io("read", &path, e)),
    };
    let decoded = manifest::decode(&bytes).map_err(|f| Error::from(f.at(&path)))?;
    if decoded.label != label {
        return Err(Error::from(
            Corruption::new(
                &path,
                manifest::HEADER_LEN as u64,
                CorruptionKind::CheckpointMismatch,
            )
            .detail(format!(
                "the manifest names label {:?}, its directory is {label:?}",
                decoded.label
            )),
        ));
    }
    Ok((decoded, bytes.len() as u64))
}

/// Every checkpoint, oldest first (then by label). A directory under `checkpoints/` without a
/// manifest (a checkpoint a crash interrupted) is not a checkpoint and is not listed.
///
/// # Errors
/// [`Error::Corrupt`] for a damaged manifest; [`Error::Io`].
pub fn checkpoints(journal: &Journal) -> Result<Vec<Checkpoint>> {
    // A writer may remove a checkpoint between the listing and the read (its manifest
    // first): a reader reads the listing again (see DESIGN.md, "Readers of a live journal").
    if journal.mode() == crate::OpenMode::ReadOnly {
        return crate::journal::read_again(journal.dir(), || checkpoints_once(journal));
    }
    checkpoints_once(journal)
}

/// One listing of [`checkpoints`].
fn checkpoints_once(journal: &Journal) -> Result<Vec<Checkpoint>> {
    let dir = layout::checkpoints_dir(journal.dir());
    let storage = journal.storage();
    let mut names = storage.list(&dir).map_err(|e| io("list", &dir, e))?;
    names.sort();
    let mut out = Vec::new();
    for name in names {
        if !manifest::label_is_valid(&name) {
            continue;
        }
        let manifest_path = layout::checkpoint_manifest_path(journal.dir(), &name);
        if !exists(storage.as_ref(), &manifest_path)? {
            continue;
        }
        match load_checkpoint(journal, &name) {
            Ok(checkpoint) => out.push(checkpoint),
            // Removed since it was listed (by a live writer): it is not a checkpoint any more.
            Err(Error::Checkpoint { .. }) if !exists(storage.as_ref(), &manifest_path)? => {}
            Err(e) => return Err(e),
        }
    }
    out.sort_by(|a, b| (a.created_unix_ms, &a.label).cmp(&(b.created_unix_ms, &b.label)));
    Ok(out)
}

/// Removes checkpoint `label`: its manifest first (from then on it does not exist), then its
/// state files and directory.
///
/// # Errors
/// [`Error::Checkpoint`] when there is no such checkpoint; [`Error::ReadOnly`]; [`Error::Io`].
pub fn remove_checkpoint(journal: &mut Journal, label: &str) -> Result<()> {
    check_label(label)?;
    if journal.mode() != OpenMode::ReadWrite {
        return Err(Error::ReadOnly);
    }
    let root = journal.dir().to_path_buf();
    let storage = journal.storage();
    let dir = layout::checkpoint_dir(&root, label);
    let manifest_path = layout::checkpoint_manifest_path(&root, label);
    if !exists(storage.as_ref(), &manifest_path)? {
        return Err(checkpoint_error(label, "no such checkpoint"));
    }
    storage
        .remove(&manifest_path)
        .map_err(|e| io("remove", &manifest_path, e))?;
    storage
        .sync_dir(&dir)
        .map_err(|e| io("fsync directory", &dir, e))?;
    for name in storage.list(&dir).map_err(|e| io("list", &dir, e))? {
        let path = dir.join(name);
        storage.remove(&path).map_err(|e| io("remove", &path, e))?;
    }
    storage
        .sync_dir(&dir)
        .map_err(|e| io("fsync directory", &dir, e))?;
    Ok(())
}

/// Reads and checks one guild's state file of a checkpoint: the checksum the manifest recorded,
/// then the snapshot's own checks (header, body, key), guild and seq.
fn read_state(
    journal: &Journal,
    label: &str,
    guild: GuildId,
    seq: Seq,
    state_crc: u32,
) -> Result<State> {
    let path = layout::checkpoint_state_path(journal.dir(), label, guild);
    let bytes = journal
        .storage()
        .read(&path, snapshot::FILE_LEN_MAX)
        .map_err(|e| io("read", &path, e))?;
    let actual = crc32fast::hash(&bytes);
    if actual != state_crc {
        return Err(Error::from(
            Corruption::new(&path, 0, CorruptionKind::CheckpointMismatch)
                .values(u64::from(state_crc), u64::from(actual))
                .detail("the state file is not the one the manifest names (checksum)"),
        ));
    }
    let (header, state) = snapshot::decode(&bytes, journal.config().keys.as_ref())
        .map_err(|f| Error::from(f.at(&path)))?;
    if header.guild != guild.0 || header.seq != seq {
        return Err(Error::from(
            Corruption::new(&path, snapshot::GUILD_OFFSET as u64, CorruptionKind::HeaderMismatch)
                .detail(format!(
                    "the state file holds guild {} at seq {}, the manifest names guild {guild} at seq {seq}",
                    header.guild, header.seq
                )),
        ));
    }
    Ok(state)
}

/// Rolls guilds back to checkpoint `label`, in batches paced by `pacer`, calling `on_guild`
/// after each guild. See the module docs.
///
/// # Errors
/// Before anything is written: [`Error::Checkpoint`] (no such checkpoint, a selected guild not
/// in it, an invalid label), [`Error::Corrupt`] for a damaged manifest or state file,
/// [`Error::KeyMismatch`]. While restoring: the first guild's error (as
/// [`crate::restore::restore_state`]); the guilds restored before it stay restored, and
/// running the rollback again finishes the rest.
pub fn rollback(
    journal: &mut Journal,
    label: &str,
    options: &RollbackOptions,
    pacer: &mut dyn Pacer,
    on_guild: &mut dyn FnMut(&RolledBack),
) -> Result<Vec<RolledBack>> {
    let selected = rollback_plan(journal, label, options)?;
    let mut done = Vec::with_capacity(selected.len());
    rolling(&selected, options.batch, options.pace, pacer, |k, batch| {
        for e in batch {
            let rolled = rollback_guild(journal, label, e, k)?;
            on_guild(&rolled);
            done.push(rolled);
        }
        Ok::<(), Error>(())
    })?;
    Ok(done)
}

/// A checkpoint's entry for one guild: the guild, the seq of its state, the state file's
/// checksum (what [`rollback_guild`] needs to roll the guild back).
pub(crate) type RollbackEntry = manifest::ManifestEntry;

/// The first part of [`rollback`]: the checkpoint's entries of the guilds `options` selects,
/// every state file read and checked. Writes nothing.
///
/// # Errors
/// As [`rollback`] before anything is written.
pub(crate) fn rollback_plan(
    journal: &Journal,
    label: &str,
    options: &RollbackOptions,
) -> Result<Vec<RollbackEntry>> {
    let selected = rollback_select(journal, label, options)?;
    // Every state file is checked before the first guild is restored.
    for e in &selected {
        rollback_check(journal, label, e)?;
    }
    Ok(selected)
}

/// Reads and checks the state file of one entry of checkpoint `label` (as [`rollback`] does
/// for every selected guild before it restores the first).
///
/// # Errors
/// [`Error::Corrupt`] for a damaged state file, [`Error::KeyMismatch`], [`Error::Io`].
pub(crate) fn rollback_check(journal: &Journal, label: &str, e: &RollbackEntry) -> Result<()> {
    read_state(journal, label, GuildId(e.guild), e.seq, e.state_crc).map(drop)
}

/// The checkpoint's entries of the guilds `options` selects (the manifest only).
///
/// # Errors
/// [`Error::ReadOnly`], [`Error::Checkpoint`] (no such checkpoint, a selected guild not in
/// it, an invalid label), [`Error::Corrupt`] for a damaged manifest.
pub(crate) fn rollback_select(
    journal: &Journal,
    label: &str,
    options: &RollbackOptions,
) -> Result<Vec<RollbackEntry>> {
    if journal.mode() != OpenMode::ReadWrite {
        return Err(Error::ReadOnly);
    }
    let (decoded, _) = read_manifest(journal, label)?;
    let selected: Vec<manifest::ManifestEntry> = match &options.guilds {
        None => decoded.entries.clone(),
        Some(guilds) => {
            let mut picked = Vec::with_capacity(guilds.len());
            for guild in guilds {
                let entry = decoded
                    .entries
                    .iter()
                    .find(|e| e.guild == guild.0)
                    .ok_or_else(|| {
                        checkpoint_error(label, format!("guild {guild} is not in the checkpoint"))
                    })?;
                if !picked.contains(entry) {
                    picked.push(*entry);
                }
            }
            picked
        }
    };
    Ok(selected)
}

/// Rolls one guild back to its entry of checkpoint `label` (batch `batch` of a paced
/// rollback): one `state_restored` event, or none when the guild is in that state already.
///
/// # Errors
/// As [`crate::restore::restore_state`], and the state file's errors.
pub(crate) fn rollback_guild(
    journal: &mut Journal,
    label: &str,
    e: &RollbackEntry,
    batch: usize,
) -> Result<RolledBack> {
    let guild = GuildId(e.guild);
    let past = read_state(journal, label, guild, e.seq, e.state_crc)?;
    let current = journal.state(guild)?.clone();
    let target = restore_target(&current.state, &past);
    if target == current.state {
        return Ok(RolledBack {
            guild,
            status: RollbackStatus::Unchanged,
            seq: current.seq,
            restored_from_seq: e.seq,
            batch,
        });
    }
    let restored = restore_state(journal, guild, &target, Some(e.seq), Some(label))?;
    Ok(RolledBack {
        guild,
        status: RollbackStatus::Restored,
        seq: restored.seq,
        restored_from_seq: e.seq,
        batch,
    })
}

//! [`SimStorage`]: an in-memory, fault-injecting [`Storage`] for deterministic crash tests.
//!
//! The journal reaches the disk only through [`Storage`], so a crash test can run it on this
//! simulated file system, cut the power at any operation, and open a fresh journal on what
//! survived. Everything is deterministic: the same seed and the same sequence of calls give the
//! same failures and the same crash images. Operations are numbered from 0 in the order they are
//! issued ([`SimStorage::op_count`]); [`SimStorage::set_capture`] records the state before any
//! of them, so one run of a workload yields every crash point ([`Captured::crash`]).
//!
//! ```
//! use std::sync::Arc;
//! use reprise::storage::sim::{CrashMode, SimStorage};
//! use reprise::{Config, Durability, Event, GuildId, Journal, OpenMode};
//!
//! let sim = Arc::new(SimStorage::new(7));
//! let mut j = Journal::open_with("/j", Config::default(), OpenMode::ReadWrite, sim.clone())?;
//! j.append(GuildId(1), &Event::VolumeSet { volume: 80 }, Durability::None)?;
//! // Nothing was synced: a power loss now keeps nothing of it.
//! let after = Arc::new(sim.crash(CrashMode::DropUnsynced));
//! let mut j = Journal::open_with("/j", Config::default(), OpenMode::ReadWrite, after)?;
//! assert_eq!(j.state(GuildId(1))?.seq, 0);
//! # Ok::<(), reprise::Error>(())
//! ```
//!
//! # Fault model
//!
//! What is modelled:
//!
//! - **Page cache and disk, per file.** Every file has *live* bytes (what reads return: written,
//!   maybe not synced) and a *durable* length: the prefix of the live bytes that survives a power
//!   loss. [`AppendFile::sync_data`] makes the whole live content durable (fdatasync covers the
//!   data and the size). [`Storage::truncate`] changes the live length and makes it durable
//!   (`set_len` + `sync_all`, as [`super::FsStorage`] does). [`Storage::sync_filesystem`]
//!   (`syncfs`, offered unless [`SimStorage::set_syncfs`] turns it off) does what its
//!   [`SyncfsMode`] says: makes every file and every directory entry durable
//!   ([`SyncfsMode::Flushes`], the default); nothing, reporting success ([`SyncfsMode::NoOp`],
//!   FUSE); or makes the directory entries durable while the write-back of every dirty file
//!   fails unreported ([`SyncfsMode::DropsWriteback`], Linux before 5.8, or an error another
//!   descriptor consumed). The trait only appends, so the live content always extends
//!   the durable content.
//! - **Preallocation** ([`AppendFile::preallocate`], `fallocate`/`set_len`): a metadata
//!   operation. The file reads as zeros from its written end to the new length at once, and
//!   appends go on at the written end (overwriting those zeros); the length survives a power
//!   loss only once a later `sync_data` (or a flushing `syncfs`) succeeded, and then what a
//!   crash keeps of the unsynced writes inside it (every [`CrashMode`] below) is followed by
//!   zeros up to that length. The extension is reserved (`fallocate`): it takes its bytes from
//!   a [`Fault::DiskFull`] budget at once, and appends inside it take none.
//! - **Write-back errors per descriptor** (Linux `errseq_t`): a write-back error that
//!   [`SyncfsMode::DropsWriteback`] records on a file is reported by the next `sync_data` of
//!   every descriptor opened before it (once each); a descriptor opened after it never sees it.
//! - **Directory entries.** Creating a file or directory, renaming and removing change the live
//!   namespace at once (reads and listings see them) but become durable only when the directory
//!   they touch is synced with [`Storage::sync_dir`]. A file whose entry was never synced
//!   vanishes at power loss even if its data was synced; a rename or remove that was not
//!   followed by a directory sync is undone. A directory is reachable after a crash only
//!   through durable entries from the root, so a new directory whose parent was never synced
//!   disappears with everything in it. A rename is one operation that touches two directories
//!   (atomic, as in a journaling file system): syncing either makes it durable.
//! - **Power loss** ([`CrashMode`]) at any point: [`SimStorage::crash`] (now),
//!   [`Fault::PowerLoss`] (before the `k`-th operation; every later operation fails and changes
//!   nothing), or a [`Captured`] state recorded before any chosen operation. What survives:
//!   - [`CrashMode::DropUnsynced`]: exactly the durable state.
//!   - [`CrashMode::TornTail`]: additionally, each file keeps a prefix of the bytes appended
//!     since its last sync (write-back happened for part of them) that ends at a 512-byte sector
//!     boundary or where an append ended (a disk writes whole sectors, and a sector written back
//!     early holds the bytes up to an append's end), possibly followed by zeros or garbage in
//!     place of the rest (the size reached the disk, the data did not).
//!   - [`CrashMode::Writeback`]: torn tails as above, and an arbitrary *prefix*, in issue order,
//!     of the directory operations not yet made durable (a journaling file system commits its
//!     metadata in order).
//! - **Injected errors** ([`Fault`]): any operation can fail with `EIO` or `ENOSPC`, chosen by its
//!   index, by its kind and per-kind count, or at random from the seed. A failed operation
//!   changes nothing, except that a failed append may be a *short write* (a prefix of the buffer
//!   is appended, then `ENOSPC`) and that a failed `sync_data` models *fsyncgate*: the unsynced
//!   bytes stay readable but are marked lost; they never reach the disk, even when a later
//!   `sync_data` of the same file "succeeds" (after a crash they read as zeros). A failed
//!   `syncfs` does the same to every file with unsynced bytes.
//! - **Disk full** ([`Fault::DiskFull`]): a budget of bytes; an append larger than what is left
//!   writes what fits and fails with `ENOSPC`; creating a file or directory fails with `ENOSPC`
//!   once nothing is left.
//! - **Locks**: exclusive and shared, in memory; [`LockFailure::Held`] on conflict (naming this
//!   process as the holder, as the real lock file would); released when the guard drops. A crash
//!   releases every lock (the process died).
//!
//! What is not modelled:
//!
//! - Media damage: bit flips, misdirected or lost writes of synced data, torn sectors inside the
//!   synced prefix (`tests/it/damage.rs` flips bytes of real files instead).
//! - Stale data from deleted files as garbage after a crash: garbage is pseudo-random bytes.
//! - Directory operations surviving out of order (only an in-order prefix survives, and only in
//!   [`CrashMode::Writeback`]), renaming directories, hard links, permissions and timestamps.
//! - Write-back errors outside `syncfs` (background flusher threads, memory pressure) and a
//!   new descriptor seeing an error nobody has seen yet (Linux 4.16+ reports it; here a new
//!   descriptor never does). An injected `sync_data` failure is reported by that call only.
//! - `sync_dir` lying after a failure (a failed directory sync changes nothing and a later one
//!   works), and failures of reads returning partial data (a failed read returns only an error).
//! - Space freed by removing or truncating files: the disk-full budget only counts down.
//! - The lock file itself: locks live in a table, not in the namespace.
//! - Concurrency: every operation is atomic (one mutex); `map` returns a copy, not a mapping.
//!
//! # Files
//!
//! - `mod.rs`: [`SimStorage`], the handle tests hold: faults, captures, crashes, inspection.
//! - `tree.rs`: the in-memory file tree (live and durable bytes, live and durable entries).
//! - `faults.rs`: injected failures ([`Fault`], [`OpKind`], [`SyncfsMode`]) and the check
//!   every operation makes first.
//! - `crash.rs`: what survives a power loss ([`CrashMode`]) and recorded states
//!   ([`Capture`], [`Captured`]).
//! - `ops.rs`: the [`Storage`] and [`AppendFile`] operations on the tree.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

#[cfg(doc)]
use super::{AppendFile, LockFailure, Storage};
use crate::session::Rng;
use ops::Held;
use tree::{Fs, Ino, Node, ROOT};

mod crash;
mod faults;
mod ops;
#[cfg(test)]
mod tests;
mod tree;

pub use crash::{Capture, Captured, CrashMode};
pub use faults::{Fault, InjectedError, InjectedFault, OpKind, SyncfsMode, EIO, ENOSPC};
pub use tree::SimEntry;

/// Everything behind the [`SimStorage`] mutex: the tree, the operation counters, the faults,
/// the locks and the captures.
struct Inner {
    fs: Fs,
    rng: Rng,
    ops: u64,
    kind_ops: [u64; OpKind::ALL.len()],
    faults: Vec<Fault>,
    injected: [u64; OpKind::ALL.len()],
    injected_log: Vec<InjectedFault>,
    /// Every operation issued, when tracing.
    trace: Option<Vec<(OpKind, PathBuf)>>,
    /// Bytes appended to files so far.
    appended: u64,
    /// Reads and maps of files holding durable bytes so far (counted for [`Fault::BitRot`]).
    durable_reads: u64,
    power_lost_at: Option<u64>,
    /// Whether `sync_filesystem` is offered (Linux `syncfs`).
    syncfs: bool,
    /// What an offered `sync_filesystem` does.
    syncfs_mode: SyncfsMode,
    /// What [`Storage::sync_parallelism`] answers.
    sync_parallelism: usize,
    locks: BTreeMap<Vec<String>, Held>,
    capture: Capture,
    captures: Vec<Captured>,
}

impl Inner {
    /// Numbers the operation and records the state if asked; returns the operation's index
    /// and its index among operations of its kind.
    fn count(&mut self, kind: OpKind) -> (u64, u64) {
        let op = self.ops;
        if self.power_lost_at.is_none() {
            let wanted = match &self.capture {
                Capture::Off => false,
                Capture::Every => true,
                Capture::At(ops) => ops.contains(&op),
            };
            if wanted {
                self.captures.push(Captured {
                    op,
                    fs: self.fs.clone(),
                });
            }
        }
        self.ops += 1;
        let nth = self.kind_ops[kind.index()];
        self.kind_ops[kind.index()] += 1;
        (op, nth)
    }

    fn append(&mut self, ino: Ino, bytes: &[u8]) {
        self.appended += bytes.len() as u64;
        if let Some(f) = self.fs.file_mut(ino) {
            Arc::make_mut(&mut f.data).extend_from_slice(bytes);
            let durable_len = f.durable_len;
            f.append_ends.retain(|end| *end > durable_len);
            f.append_ends.push(f.data.len());
        }
    }
}

fn lock_inner(inner: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    // A panic while holding the mutex leaves a consistent state: every operation updates the
    // file system only after its checks.
    inner.lock().unwrap_or_else(|e| e.into_inner())
}

/// The simulated file system; see the module docs for the fault model.
///
/// Hand it to a journal as `Arc<SimStorage>` (it coerces to `Arc<dyn Storage>`) and keep a clone
/// of the `Arc` to inject faults and crash it.
pub struct SimStorage {
    inner: Arc<Mutex<Inner>>,
}

impl fmt::Debug for SimStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let g = lock_inner(&self.inner);
        f.debug_struct("SimStorage")
            .field("ops", &g.ops)
            .field("nodes", &g.fs.nodes.len())
            .field("pending_dir_ops", &g.fs.pending.len())
            .field("faults", &g.faults)
            .field("power_lost_at", &g.power_lost_at)
            .finish()
    }
}

impl SimStorage {
    /// An empty file system (only the root directory `/`, durable). `seed` drives every random
    /// choice the storage makes itself ([`Fault::Random`], short-write lengths).
    pub fn new(seed: u64) -> SimStorage {
        SimStorage::from_fs(Fs::new(), seed)
    }

    fn from_fs(fs: Fs, seed: u64) -> SimStorage {
        SimStorage {
            inner: Arc::new(Mutex::new(Inner {
                fs,
                rng: Rng::new(seed),
                ops: 0,
                kind_ops: [0; OpKind::ALL.len()],
                faults: Vec::new(),
                injected: [0; OpKind::ALL.len()],
                injected_log: Vec::new(),
                trace: None,
                appended: 0,
                durable_reads: 0,
                power_lost_at: None,
                syncfs: true,
                syncfs_mode: SyncfsMode::Flushes,
                sync_parallelism: 1,
                locks: BTreeMap::new(),
                capture: Capture::Off,
                captures: Vec::new(),
            })),
        }
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        lock_inner(&self.inner)
    }

    /// How many operations were issued so far: the index the next operation gets. Operations
    /// refused because the power is off count too.
    pub fn op_count(&self) -> u64 {
        self.inner().ops
    }

    /// How many operations of `kind` were issued so far.
    pub fn op_count_of(&self, kind: OpKind) -> u64 {
        self.inner().kind_ops[kind.index()]
    }

    /// How many operations failed because of an injected fault (not counting power loss).
    pub fn injected_count(&self) -> u64 {
        self.inner().injected.iter().sum()
    }

    /// Starts (or stops, discarding it) recording every operation's kind and path, for
    /// [`SimStorage::trace`].
    pub fn set_trace(&self, on: bool) {
        self.inner().trace = on.then(Vec::new);
    }

    /// The operations recorded since [`SimStorage::set_trace`] turned tracing on, in order
    /// (`sync_filesystem` appears only when offered).
    pub fn trace(&self) -> Vec<(OpKind, PathBuf)> {
        self.inner().trace.clone().unwrap_or_default()
    }

    /// Every injected failure so far, in order.
    pub fn injected_faults(&self) -> Vec<InjectedFault> {
        self.inner().injected_log.clone()
    }

    /// How many bytes were appended to files so far (short writes count what they wrote).
    pub fn appended_bytes(&self) -> u64 {
        self.inner().appended
    }

    /// How many operations of `kind` failed because of an injected fault.
    pub fn injected_count_of(&self, kind: OpKind) -> u64 {
        self.inner().injected[kind.index()]
    }

    /// Replaces every fault with `fault`.
    pub fn set_fault(&self, fault: Fault) {
        self.inner().faults = vec![fault];
    }

    /// Adds `fault` to the active ones (the first that applies to an operation decides).
    pub fn add_fault(&self, fault: Fault) {
        self.inner().faults.push(fault);
    }

    /// Removes every fault (the disk has space again). The power stays off if it was lost.
    pub fn clear_faults(&self) {
        self.inner().faults.clear();
    }

    /// The active faults, with [`Fault::DiskFull`] budgets as they are now.
    pub fn faults(&self) -> Vec<Fault> {
        self.inner().faults.clone()
    }

    /// The index of the operation before which the power was lost, if it was.
    pub fn power_lost_at(&self) -> Option<u64> {
        self.inner().power_lost_at
    }

    /// Whether [`Storage::sync_filesystem`] is offered (`syncfs`, the default, as on Linux) or
    /// answers `Ok(false)` so that callers sync file by file. The operation is counted either
    /// way.
    pub fn set_syncfs(&self, offered: bool) {
        self.inner().syncfs = offered;
    }

    /// What an offered `syncfs` does ([`SyncfsMode::Flushes`] by default).
    pub fn set_syncfs_mode(&self, mode: SyncfsMode) {
        self.inner().syncfs_mode = mode;
    }

    /// How many threads the journal may use for the fsyncs of one commit-log retirement
    /// ([`Storage::sync_parallelism`]); 1 by default, which keeps the order of operations, and
    /// so every crash point, deterministic. More threads interleave the operations in an order
    /// that varies from run to run.
    pub fn set_sync_parallelism(&self, threads: usize) {
        self.inner().sync_parallelism = threads.max(1);
    }

    /// Sets which states are recorded for [`SimStorage::take_captures`].
    pub fn set_capture(&self, capture: Capture) {
        self.inner().capture = capture;
    }

    /// The states recorded so far (in operation order), leaving none.
    pub fn take_captures(&self) -> Vec<Captured> {
        std::mem::take(&mut self.inner().captures)
    }

    /// The state right now (as [`Capture`] would record it before the next operation).
    pub fn capture_now(&self) -> Captured {
        let g = self.inner();
        Captured {
            op: g.ops,
            fs: g.fs.clone(),
        }
    }

    /// Loses power now (or returns what survived the power loss of [`Fault::PowerLoss`]): a new
    /// storage holding only what survives under `mode`, with no faults, locks or captures, and
    /// its operation count at 0. This storage is left unchanged.
    pub fn crash(&self, mode: CrashMode) -> SimStorage {
        self.capture_now().crash(mode)
    }

    /// Every file and directory reachable through live entries, sorted by path.
    pub fn entries(&self) -> Vec<SimEntry> {
        let g = self.inner();
        let mut out = Vec::new();
        let mut stack = vec![(PathBuf::from("/"), ROOT)];
        while let Some((path, ino)) = stack.pop() {
            let Some(Node::Dir(d)) = g.fs.nodes.get(&ino) else {
                continue;
            };
            for (name, child) in &d.live {
                let child_path = path.join(name);
                let entry_durable = d.durable.get(name) == Some(child);
                match g.fs.nodes.get(child) {
                    Some(Node::Dir(_)) => {
                        out.push(SimEntry {
                            path: child_path.clone(),
                            is_dir: true,
                            live_len: 0,
                            durable_len: 0,
                            entry_durable,
                            lost_bytes: 0,
                        });
                        stack.push((child_path, *child));
                    }
                    Some(Node::File(f)) => out.push(SimEntry {
                        path: child_path,
                        is_dir: false,
                        live_len: f.len() as u64,
                        durable_len: f.durable_len as u64,
                        entry_durable,
                        lost_bytes: f
                            .lost
                            .iter()
                            .map(|(start, end)| end.saturating_sub(*start) as u64)
                            .sum(),
                    }),
                    None => {}
                }
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out
    }
}

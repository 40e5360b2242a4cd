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

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{AppendFile, Bytes, DirLock, LockFailure, Storage};
use crate::session::Rng;

/// `EIO` (the same number on Linux, macOS and the BSDs).
pub const EIO: i32 = 5;
/// `ENOSPC` (the same number on Linux, macOS and the BSDs).
pub const ENOSPC: i32 = 28;

/// The kinds of storage operation: one per method of [`Storage`] and [`AppendFile`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OpKind {
    /// [`Storage::create_dir_all`].
    CreateDirAll,
    /// [`Storage::list`].
    List,
    /// [`Storage::file_len`].
    FileLen,
    /// [`Storage::read`].
    Read,
    /// [`Storage::map`].
    Map,
    /// [`Storage::create_new`].
    CreateNew,
    /// [`Storage::open_append`].
    OpenAppend,
    /// [`AppendFile::append`].
    Append,
    /// [`AppendFile::sync_data`].
    SyncData,
    /// [`Storage::truncate`].
    Truncate,
    /// [`Storage::rename`].
    Rename,
    /// [`Storage::remove`].
    Remove,
    /// [`Storage::sync_dir`].
    SyncDir,
    /// [`Storage::sync_filesystem`] (counted whether or not `syncfs` is offered).
    SyncFilesystem,
    /// [`Storage::lock`].
    Lock,
}

impl OpKind {
    /// Every kind, in declaration order.
    pub const ALL: [OpKind; 15] = [
        OpKind::CreateDirAll,
        OpKind::List,
        OpKind::FileLen,
        OpKind::Read,
        OpKind::Map,
        OpKind::CreateNew,
        OpKind::OpenAppend,
        OpKind::Append,
        OpKind::SyncData,
        OpKind::Truncate,
        OpKind::Rename,
        OpKind::Remove,
        OpKind::SyncDir,
        OpKind::SyncFilesystem,
        OpKind::Lock,
    ];

    /// Whether the operation can change the file system (what it stores or what is durable).
    pub fn is_mutation(self) -> bool {
        matches!(
            self,
            OpKind::CreateDirAll
                | OpKind::CreateNew
                | OpKind::Append
                | OpKind::SyncData
                | OpKind::Truncate
                | OpKind::Rename
                | OpKind::Remove
                | OpKind::SyncDir
                | OpKind::SyncFilesystem
        )
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The error an injected fault produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InjectedError {
    /// `EIO`; the operation changes nothing (a failed `sync_data` marks the unsynced bytes
    /// lost, see the module docs).
    Eio,
    /// `ENOSPC`; the operation changes nothing.
    Enospc,
    /// For an append: a pseudo-random proper prefix of the buffer is appended, then `ENOSPC`.
    /// Any other operation fails as with [`InjectedError::Eio`].
    ShortWrite,
    /// Not an error: a read returned one flipped bit ([`Fault::BitRot`]).
    BitRot,
}

/// A fault to inject; see [`SimStorage::set_fault`]. Operations are numbered from 0 in the order
/// they are issued ([`SimStorage::op_count`] is the index the next one gets).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The operation with index `op` fails with `error`.
    FailOp {
        /// Index of the failing operation.
        op: u64,
        /// How it fails.
        error: InjectedError,
    },
    /// The `nth` (from 0) operation of `kind` fails with `error`, and, when `sticky`, every
    /// later one of that kind too ("every fsync after the k-th fails").
    FailKind {
        /// The kind of operation that fails.
        kind: OpKind,
        /// Which one (counted per kind from 0, over the storage's whole life).
        nth: u64,
        /// Whether every later operation of the kind fails too.
        sticky: bool,
        /// How it fails.
        error: InjectedError,
    },
    /// The disk has `bytes_free` bytes left: appends consume them; an append that does not fit
    /// writes what fits and fails with `ENOSPC`; creating a file or directory fails with
    /// `ENOSPC` once nothing is left. Removing files frees nothing.
    DiskFull {
        /// Bytes that can still be appended (counts down).
        bytes_free: u64,
    },
    /// The power is lost right before operation `op`: it and every later operation fail with
    /// an error and change nothing. [`SimStorage::crash`] then gives what survived.
    PowerLoss {
        /// Index of the first operation that does not happen.
        op: u64,
    },
    /// Bit rot: the `nth` (from 0) read or map of a file holding durable bytes returns them
    /// with one bit flipped (drawn from the seed) inside the durable prefix. The stored file is
    /// unchanged; the read succeeds. Recorded in [`SimStorage::injected_faults`] with
    /// [`InjectedError::BitRot`].
    BitRot {
        /// Which read of a file with durable bytes returns the flipped bit.
        nth: u64,
    },
    /// Each operation fails with probability `per_mille / 1000`, with an error drawn from the
    /// seed (short writes for appends, `EIO` or `ENOSPC` otherwise). Locks never fail.
    Random {
        /// Failure probability per operation, in thousandths.
        per_mille: u32,
        /// Only operations that can change the file system fail ([`OpKind::is_mutation`]).
        mutations_only: bool,
    },
}

/// One failure [`SimStorage`] injected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InjectedFault {
    /// Index of the failed operation.
    pub op: u64,
    /// Its kind.
    pub kind: OpKind,
    /// How it failed.
    pub error: InjectedError,
    /// The path it concerned (for a rename, the source).
    pub path: PathBuf,
}

/// What survives a power loss; see the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashMode {
    /// Exactly what is durable: synced file contents, synced directory entries.
    DropUnsynced,
    /// The durable state, and in every file a prefix of the bytes appended since its last sync
    /// ending at a sector boundary or at the end of an append, possibly followed by zeros or
    /// garbage (drawn from `seed`).
    TornTail {
        /// Drives which prefix is kept and what follows it.
        seed: u64,
    },
    /// As [`CrashMode::TornTail`], and an in-order prefix of the directory operations not yet
    /// made durable (its length drawn from `seed`).
    Writeback {
        /// Drives the torn tails and how many directory operations survive.
        seed: u64,
    },
    /// The durable state, and in every file any subset of the 512-byte sectors written since
    /// its last sync (zeros in the others: holes before persisted data), with the file's size
    /// either all that was written or cut at a sector boundary or at the durable length.
    /// Directory operations as in [`CrashMode::DropUnsynced`].
    Holed {
        /// Drives the size kept and which sectors persisted.
        seed: u64,
    },
}

impl CrashMode {
    fn seed(self) -> u64 {
        match self {
            CrashMode::DropUnsynced => 0,
            CrashMode::TornTail { seed }
            | CrashMode::Writeback { seed }
            | CrashMode::Holed { seed } => seed,
        }
    }
}

/// What [`Storage::sync_filesystem`] (`syncfs`) does when it is offered; see
/// [`SimStorage::set_syncfs_mode`]. Every mode answers `Ok(true)` unless a fault is injected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SyncfsMode {
    /// Makes every file and every directory entry durable (Linux on a local file system).
    #[default]
    Flushes,
    /// Makes nothing durable and reports success (FUSE file systems, some network file
    /// systems).
    NoOp,
    /// The write-back of every file with unsynced bytes fails (the bytes are dropped from
    /// write-back, as after a failed fsync) and `syncfs` reports no error (Linux before 5.8;
    /// or an error another process already consumed). Directory entries become durable. The
    /// error is recorded on each file: an `fdatasync` through a descriptor opened before it
    /// reports `EIO` once; a descriptor opened after it never sees it.
    DropsWriteback,
}

/// Which states [`SimStorage`] records for later crashes; see [`SimStorage::set_capture`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Capture {
    /// Record nothing.
    #[default]
    Off,
    /// Record the state before every operation.
    Every,
    /// Record the state before the operations with these indices.
    At(Vec<u64>),
}

/// The state of a [`SimStorage`] right before one operation, recorded by [`Capture`]: crashing
/// it gives what a power loss at that moment would have left.
#[derive(Clone)]
pub struct Captured {
    op: u64,
    fs: Fs,
}

impl Captured {
    /// Index of the operation this state preceded (the power loss happens before it).
    pub fn op(&self) -> u64 {
        self.op
    }

    /// A new storage continuing from this state without a crash (live and durable contents as
    /// they were), e.g. to inspect it with [`SimStorage::entries`].
    pub fn resume(&self) -> SimStorage {
        SimStorage::from_fs(self.fs.clone(), self.op)
    }

    /// A new storage holding what a power loss right before [`Captured::op`] leaves.
    pub fn crash(&self, mode: CrashMode) -> SimStorage {
        SimStorage::from_fs(self.fs.crashed(mode), mode.seed().wrapping_add(self.op))
    }
}

impl fmt::Debug for Captured {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Captured")
            .field("op", &self.op)
            .field("nodes", &self.fs.nodes.len())
            .finish()
    }
}

/// One file or directory of a [`SimStorage`], as [`SimStorage::entries`] describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimEntry {
    /// Full path (from the root `/`).
    pub path: PathBuf,
    /// Whether it is a directory.
    pub is_dir: bool,
    /// Live length in bytes (0 for directories).
    pub live_len: u64,
    /// Durable length in bytes (0 for directories).
    pub durable_len: u64,
    /// Whether the entry in its parent directory is durable (with this name and this file).
    pub entry_durable: bool,
    /// Bytes a failed fsync dropped from write-back (they read back, but never reach the disk).
    pub lost_bytes: u64,
}

type Ino = u64;
const ROOT: Ino = 0;

#[derive(Clone, Debug)]
struct FileNode {
    /// Live content (shared with captured states until written).
    data: Arc<Vec<u8>>,
    /// `data[..durable_len]` survives a power loss.
    durable_len: usize,
    /// Byte ranges whose write-back a failed fsync dropped: they never reach the disk.
    lost: Vec<(usize, usize)>,
    /// Where the appends after `durable_len` ended (write boundaries a torn tail may stop at).
    append_ends: Vec<usize>,
    /// Write-back errors recorded on the file (Linux `errseq_t`), see
    /// [`SyncfsMode::DropsWriteback`]: a descriptor reports those that happened after it was
    /// opened and it last reported one.
    wb_errors: u64,
}

impl FileNode {
    fn new() -> FileNode {
        FileNode {
            data: Arc::new(Vec::new()),
            durable_len: 0,
            lost: Vec::new(),
            append_ends: Vec::new(),
            wb_errors: 0,
        }
    }

    /// `ftruncate`: the live content becomes `len` bytes (zero-extended). A cut is modelled as
    /// durable at once; bytes before it that were not durable stay not durable (a longer length
    /// never becomes durable by truncating to it).
    fn set_len(&mut self, len: usize) {
        Arc::make_mut(&mut self.data).resize(len, 0);
        self.durable_len = self.durable_len.min(len);
        self.append_ends.retain(|end| *end <= len);
        for range in &mut self.lost {
            range.1 = range.1.min(len);
        }
        self.lost.retain(|(start, end)| start < end);
    }

    /// The content after a power loss.
    fn crashed(&self, mode: CrashMode, rng: &mut Rng) -> FileNode {
        let durable_len = self.durable_len.min(self.data.len());
        let mut out = self.data[..durable_len].to_vec();
        let unsynced = self.data.len() - durable_len;
        if let CrashMode::Holed { .. } = mode {
            out = self.holed(durable_len, rng);
        } else if mode != CrashMode::DropUnsynced && unsynced > 0 {
            // A prefix that stops where a disk can stop: at a sector boundary or at the end of
            // an append (a write boundary), never inside the bytes one append put in a sector.
            let mut cuts: Vec<usize> = self
                .append_ends
                .iter()
                .filter(|end| **end > durable_len && **end < self.data.len())
                .map(|end| end - durable_len)
                .collect();
            let sector = crate::format::torn::SECTOR_LEN;
            let mut boundary = durable_len.div_ceil(sector) * sector;
            while boundary < self.data.len() {
                if boundary > durable_len {
                    cuts.push(boundary - durable_len);
                }
                boundary += sector;
            }
            let keep = match rng.below(4) {
                0 => 0,
                1 => unsynced,
                _ if cuts.is_empty() => 0,
                _ => cuts[rng.below(cuts.len() as u64) as usize],
            };
            out.extend_from_slice(&self.data[durable_len..durable_len + keep]);
            let room = (unsynced - keep) as u64;
            if room > 0 {
                let fill = rng.range(1, room) as usize;
                match rng.below(3) {
                    0 => {}
                    1 => out.resize(out.len() + fill, 0),
                    _ => out.extend((0..fill).map(|_| rng.next_u64() as u8)),
                }
            }
        }
        for &(start, end) in &self.lost {
            let end = end.min(out.len());
            if start < end {
                out[start..end].fill(0);
            }
        }
        let len = out.len();
        FileNode {
            data: Arc::new(out),
            durable_len: len,
            lost: Vec::new(),
            append_ends: Vec::new(),
            wb_errors: 0,
        }
    }
}

impl FileNode {
    /// The content after a power loss in [`CrashMode::Holed`]: the durable prefix, then the
    /// unsynced bytes with each 512-byte sector (aligned in the file) persisted or zeros.
    fn holed(&self, durable_len: usize, rng: &mut Rng) -> Vec<u8> {
        const SECTOR: usize = crate::format::torn::SECTOR_LEN;
        let n = self.data.len();
        if n == durable_len {
            return self.data.to_vec();
        }
        let len = match rng.below(8) {
            0 => durable_len,
            1 => {
                let first = durable_len.div_ceil(SECTOR) * SECTOR;
                let sectors = n.saturating_sub(first) / SECTOR;
                (first + rng.below(sectors as u64 + 1) as usize * SECTOR).min(n)
            }
            _ => n,
        };
        let mut out = self.data[..len].to_vec();
        // How likely each sector is to have persisted: none, some or all of them.
        let per_mille = [0, 250, 500, 750, 1000][rng.below(5) as usize];
        let mut sector = durable_len / SECTOR;
        while sector * SECTOR < len {
            let start = (sector * SECTOR).max(durable_len);
            let end = ((sector + 1) * SECTOR).min(len);
            if !rng.chance(per_mille) {
                out[start..end].fill(0);
            }
            sector += 1;
        }
        out
    }
}

#[derive(Clone, Debug, Default)]
struct DirNode {
    live: BTreeMap<String, Ino>,
    durable: BTreeMap<String, Ino>,
}

#[derive(Clone, Debug)]
enum Node {
    File(FileNode),
    Dir(DirNode),
}

/// A directory change not yet durable.
#[derive(Clone, Debug)]
enum DirOp {
    Link {
        dir: Ino,
        name: String,
        ino: Ino,
    },
    Unlink {
        dir: Ino,
        name: String,
    },
    Rename {
        from_dir: Ino,
        from: String,
        to_dir: Ino,
        to: String,
        ino: Ino,
    },
}

impl DirOp {
    fn touches(&self, d: Ino) -> bool {
        match self {
            DirOp::Link { dir, .. } | DirOp::Unlink { dir, .. } => *dir == d,
            DirOp::Rename {
                from_dir, to_dir, ..
            } => *from_dir == d || *to_dir == d,
        }
    }

    fn make_durable(&self, nodes: &mut BTreeMap<Ino, Node>) {
        fn durable(
            nodes: &mut BTreeMap<Ino, Node>,
            dir: Ino,
        ) -> Option<&mut BTreeMap<String, Ino>> {
            match nodes.get_mut(&dir) {
                Some(Node::Dir(d)) => Some(&mut d.durable),
                _ => None,
            }
        }
        match self {
            DirOp::Link { dir, name, ino } => {
                if let Some(d) = durable(nodes, *dir) {
                    d.insert(name.clone(), *ino);
                }
            }
            DirOp::Unlink { dir, name } => {
                if let Some(d) = durable(nodes, *dir) {
                    d.remove(name);
                }
            }
            DirOp::Rename {
                from_dir,
                from,
                to_dir,
                to,
                ino,
            } => {
                if let Some(d) = durable(nodes, *from_dir) {
                    if d.get(from) == Some(ino) {
                        d.remove(from);
                    }
                }
                if let Some(d) = durable(nodes, *to_dir) {
                    d.insert(to.clone(), *ino);
                }
            }
        }
    }
}

/// The whole simulated file system.
#[derive(Clone, Debug)]
struct Fs {
    /// Every node ever created (unlinked files stay: an open handle or a durable entry may
    /// still reach them).
    nodes: BTreeMap<Ino, Node>,
    next_ino: Ino,
    /// Directory changes not yet durable, in issue order.
    pending: Vec<DirOp>,
}

fn err(kind: io::ErrorKind, what: &str, path: &Path) -> io::Error {
    io::Error::new(kind, format!("{what}: {}", path.display()))
}

fn components(path: &Path) -> io::Result<Vec<String>> {
    let mut out = Vec::new();
    for c in path.components() {
        match c {
            Component::Prefix(_) | Component::RootDir | Component::CurDir => {}
            Component::ParentDir => {
                return Err(err(io::ErrorKind::InvalidInput, "`..` in path", path))
            }
            Component::Normal(s) => match s.to_str() {
                Some(s) => out.push(s.to_owned()),
                None => return Err(err(io::ErrorKind::InvalidInput, "non-UTF-8 path", path)),
            },
        }
    }
    Ok(out)
}

impl Fs {
    fn new() -> Fs {
        let mut nodes = BTreeMap::new();
        nodes.insert(ROOT, Node::Dir(DirNode::default()));
        Fs {
            nodes,
            next_ino: ROOT + 1,
            pending: Vec::new(),
        }
    }

    fn lookup(&self, comps: &[String]) -> Option<Ino> {
        let mut ino = ROOT;
        for c in comps {
            match self.nodes.get(&ino)? {
                Node::Dir(d) => ino = *d.live.get(c)?,
                Node::File(_) => return None,
            }
        }
        Some(ino)
    }

    fn file(&self, path: &Path) -> io::Result<(Ino, &FileNode)> {
        let comps = components(path)?;
        let ino = self
            .lookup(&comps)
            .ok_or_else(|| err(io::ErrorKind::NotFound, "no such file", path))?;
        match self.nodes.get(&ino) {
            Some(Node::File(f)) => Ok((ino, f)),
            _ => Err(err(io::ErrorKind::IsADirectory, "is a directory", path)),
        }
    }

    fn file_mut(&mut self, ino: Ino) -> Option<&mut FileNode> {
        match self.nodes.get_mut(&ino) {
            Some(Node::File(f)) => Some(f),
            _ => None,
        }
    }

    /// The directory holding `path`'s last component, and that component.
    fn parent(&self, path: &Path) -> io::Result<(Ino, String)> {
        let mut comps = components(path)?;
        let name = comps
            .pop()
            .ok_or_else(|| err(io::ErrorKind::InvalidInput, "no file name", path))?;
        let dir = self
            .lookup(&comps)
            .ok_or_else(|| err(io::ErrorKind::NotFound, "no such directory", path))?;
        match self.nodes.get(&dir) {
            Some(Node::Dir(_)) => Ok((dir, name)),
            _ => Err(err(io::ErrorKind::NotADirectory, "not a directory", path)),
        }
    }

    fn dir_live(&mut self, dir: Ino) -> &mut BTreeMap<String, Ino> {
        match self.nodes.get_mut(&dir) {
            Some(Node::Dir(d)) => &mut d.live,
            // `parent` and `lookup` only return directories for these calls.
            _ => unreachable!("inode {dir} is not a directory"),
        }
    }

    fn link(&mut self, dir: Ino, name: String, node: Node) -> Ino {
        let ino = self.next_ino;
        self.next_ino += 1;
        self.nodes.insert(ino, node);
        self.dir_live(dir).insert(name.clone(), ino);
        self.pending.push(DirOp::Link { dir, name, ino });
        ino
    }

    /// The state a power loss leaves.
    fn crashed(&self, mode: CrashMode) -> Fs {
        let mut rng = Rng::new(mode.seed() ^ 0x5EED_C8A5_11FE_0001);
        let mut nodes = self.nodes.clone();
        if let CrashMode::Writeback { .. } = mode {
            let kept = rng.below(self.pending.len() as u64 + 1) as usize;
            for op in &self.pending[..kept] {
                op.make_durable(&mut nodes);
            }
        }
        let mut out = BTreeMap::new();
        let mut stack = vec![ROOT];
        while let Some(ino) = stack.pop() {
            if out.contains_key(&ino) {
                continue;
            }
            let node = match nodes.get(&ino) {
                Some(Node::Dir(d)) => {
                    stack.extend(d.durable.values().rev().copied());
                    Node::Dir(DirNode {
                        live: d.durable.clone(),
                        durable: d.durable.clone(),
                    })
                }
                Some(Node::File(f)) => Node::File(f.crashed(mode, &mut rng)),
                None => continue,
            };
            out.insert(ino, node);
        }
        Fs {
            nodes: out,
            next_ino: self.next_ino,
            pending: Vec::new(),
        }
    }
}

#[derive(Debug)]
struct Held {
    exclusive: bool,
    count: u32,
}

/// Why an operation does not happen.
enum Stop {
    Power,
    Injected(InjectedError),
}

impl Stop {
    fn into_io(self) -> io::Error {
        match self {
            Stop::Power => io::Error::other("SimStorage: the power is off (simulated power loss)"),
            Stop::Injected(InjectedError::Enospc) => io::Error::from_raw_os_error(ENOSPC),
            Stop::Injected(
                InjectedError::Eio | InjectedError::ShortWrite | InjectedError::BitRot,
            ) => io::Error::from_raw_os_error(EIO),
        }
    }
}

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

    /// Counts a read of a file with durable bytes (`durable`) and flips one bit of them when a
    /// [`Fault::BitRot`] names this read.
    fn rot_one_bit(&mut self, kind: OpKind, path: &Path, durable: &mut [u8]) {
        let nth = self.durable_reads;
        self.durable_reads += 1;
        if !self
            .faults
            .iter()
            .any(|f| matches!(f, Fault::BitRot { nth: n } if *n == nth))
        {
            return;
        }
        let bit = self.rng.below(durable.len() as u64 * 8);
        durable[(bit / 8) as usize] ^= 1 << (bit % 8);
        self.injected_log.push(InjectedFault {
            op: self.ops - 1,
            kind,
            error: InjectedError::BitRot,
            path: path.to_path_buf(),
        });
    }

    /// Numbers the operation, records the state if asked, and decides whether it fails.
    fn begin(&mut self, kind: OpKind, path: &Path) -> Result<(), Stop> {
        let (op, nth) = self.count(kind);
        if let Some(trace) = &mut self.trace {
            trace.push((kind, path.to_path_buf()));
        }
        if self.power_lost_at.is_some() {
            return Err(Stop::Power);
        }
        if self
            .faults
            .iter()
            .any(|f| matches!(f, Fault::PowerLoss { op: at } if op >= *at))
        {
            self.power_lost_at = Some(op);
            return Err(Stop::Power);
        }
        let mut hit = None;
        for f in &self.faults {
            match *f {
                Fault::FailOp { op: at, error } if at == op => hit = hit.or(Some(error)),
                Fault::FailKind {
                    kind: k,
                    nth: n,
                    sticky,
                    error,
                } if k == kind && (nth == n || (sticky && nth > n)) => hit = hit.or(Some(error)),
                Fault::Random {
                    per_mille,
                    mutations_only,
                } if kind != OpKind::Lock
                    && (kind.is_mutation() || !mutations_only)
                    && self.rng.chance(per_mille) =>
                {
                    let error = if kind == OpKind::Append {
                        InjectedError::ShortWrite
                    } else if self.rng.chance(500) {
                        InjectedError::Eio
                    } else {
                        InjectedError::Enospc
                    };
                    hit = hit.or(Some(error));
                }
                _ => {}
            }
        }
        match hit {
            Some(error) => {
                self.injected[kind.index()] += 1;
                self.injected_log.push(InjectedFault {
                    op,
                    kind,
                    error,
                    path: path.to_path_buf(),
                });
                Err(Stop::Injected(error))
            }
            None => Ok(()),
        }
    }

    /// Bytes left on a full disk (`None`: no limit).
    fn space_left(&self) -> Option<u64> {
        self.faults
            .iter()
            .filter_map(|f| match f {
                Fault::DiskFull { bytes_free } => Some(*bytes_free),
                _ => None,
            })
            .min()
    }

    /// Takes up to `want` bytes of space; returns how many were granted.
    fn take_space(&mut self, want: usize) -> usize {
        let granted = self.space_left().map_or(want, |left| {
            want.min(usize::try_from(left).unwrap_or(usize::MAX))
        });
        for f in &mut self.faults {
            if let Fault::DiskFull { bytes_free } = f {
                *bytes_free = bytes_free.saturating_sub(granted as u64);
            }
        }
        granted
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

    /// How many threads the journal may use for the fsyncs of one checkpoint
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
                        live_len: f.data.len() as u64,
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

    fn read_file(&self, kind: OpKind, path: &Path, len_max: u64) -> io::Result<Bytes> {
        let mut g = self.inner();
        g.begin(kind, path).map_err(Stop::into_io)?;
        let (_, f) = g.fs.file(path)?;
        let len = f.data.len() as u64;
        if len > len_max {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} is {len} bytes, more than the {len_max} bytes any valid file of its kind has",
                    path.display()
                ),
            ));
        }
        let mut bytes = f.data.to_vec();
        let durable = f.durable_len.min(bytes.len());
        if durable > 0 {
            g.rot_one_bit(kind, path, &mut bytes[..durable]);
        }
        Ok(Bytes::Owned(bytes))
    }

    fn handle(&self, ino: Ino, path: &Path, errors_seen: u64) -> Box<dyn AppendFile> {
        Box::new(SimFile {
            inner: Arc::clone(&self.inner),
            ino,
            path: path.to_path_buf(),
            errors_seen,
        })
    }
}

impl Storage for SimStorage {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut g = self.inner();
        g.begin(OpKind::CreateDirAll, path).map_err(Stop::into_io)?;
        let comps = components(path)?;
        let mut ino = ROOT;
        let mut missing = Vec::new();
        for (i, c) in comps.iter().enumerate() {
            match g.fs.nodes.get(&ino) {
                Some(Node::Dir(d)) => match d.live.get(c) {
                    Some(child) => ino = *child,
                    None => {
                        missing = comps[i..].to_vec();
                        break;
                    }
                },
                _ => return Err(err(io::ErrorKind::NotADirectory, "not a directory", path)),
            }
        }
        if missing.is_empty() {
            return match g.fs.nodes.get(&ino) {
                Some(Node::Dir(_)) => Ok(()),
                _ => Err(err(io::ErrorKind::AlreadyExists, "a file exists at", path)),
            };
        }
        if g.space_left() == Some(0) {
            return Err(io::Error::from_raw_os_error(ENOSPC));
        }
        for name in missing {
            ino = g.fs.link(ino, name, Node::Dir(DirNode::default()));
        }
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut g = self.inner();
        g.begin(OpKind::List, dir).map_err(Stop::into_io)?;
        let comps = components(dir)?;
        match g.fs.lookup(&comps).and_then(|ino| g.fs.nodes.get(&ino)) {
            None => Ok(Vec::new()),
            Some(Node::Dir(d)) => Ok(d.live.keys().cloned().collect()),
            Some(Node::File(_)) => Err(err(io::ErrorKind::NotADirectory, "not a directory", dir)),
        }
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        let mut g = self.inner();
        g.begin(OpKind::List, path).map_err(Stop::into_io)?;
        let comps = components(path)?;
        Ok(g.fs
            .lookup(&comps)
            .is_some_and(|ino| g.fs.nodes.contains_key(&ino)))
    }

    fn file_len(&self, path: &Path) -> io::Result<u64> {
        let mut g = self.inner();
        g.begin(OpKind::FileLen, path).map_err(Stop::into_io)?;
        let (_, f) = g.fs.file(path)?;
        Ok(f.data.len() as u64)
    }

    fn read(&self, path: &Path, len_max: u64) -> io::Result<Bytes> {
        self.read_file(OpKind::Read, path, len_max)
    }

    fn map(&self, path: &Path, len_max: u64) -> io::Result<Bytes> {
        self.read_file(OpKind::Map, path, len_max)
    }

    fn create_new(&self, path: &Path) -> io::Result<Box<dyn AppendFile>> {
        let mut g = self.inner();
        g.begin(OpKind::CreateNew, path).map_err(Stop::into_io)?;
        let (dir, name) = g.fs.parent(path)?;
        if g.fs.dir_live(dir).contains_key(&name) {
            return Err(err(io::ErrorKind::AlreadyExists, "file exists", path));
        }
        if g.space_left() == Some(0) {
            return Err(io::Error::from_raw_os_error(ENOSPC));
        }
        let ino = g.fs.link(dir, name, Node::File(FileNode::new()));
        drop(g);
        Ok(self.handle(ino, path, 0))
    }

    fn open_append(&self, path: &Path) -> io::Result<Box<dyn AppendFile>> {
        let mut g = self.inner();
        g.begin(OpKind::OpenAppend, path).map_err(Stop::into_io)?;
        let (ino, f) = g.fs.file(path)?;
        let errors_seen = f.wb_errors;
        drop(g);
        Ok(self.handle(ino, path, errors_seen))
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        let mut g = self.inner();
        g.begin(OpKind::Truncate, path).map_err(Stop::into_io)?;
        let (ino, _) = g.fs.file(path)?;
        let len = usize::try_from(len)
            .map_err(|_| err(io::ErrorKind::InvalidInput, "length too large", path))?;
        if let Some(f) = g.fs.file_mut(ino) {
            f.set_len(len);
        }
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut g = self.inner();
        g.begin(OpKind::Rename, from).map_err(Stop::into_io)?;
        let (from_dir, from_name) = g.fs.parent(from)?;
        let (to_dir, to_name) = g.fs.parent(to)?;
        let ino = *g
            .fs
            .dir_live(from_dir)
            .get(&from_name)
            .ok_or_else(|| err(io::ErrorKind::NotFound, "no such file", from))?;
        if !matches!(g.fs.nodes.get(&ino), Some(Node::File(_))) {
            return Err(err(
                io::ErrorKind::Unsupported,
                "SimStorage renames only files",
                from,
            ));
        }
        if let Some(&target) = g.fs.dir_live(to_dir).get(&to_name) {
            if matches!(g.fs.nodes.get(&target), Some(Node::Dir(_))) {
                return Err(err(io::ErrorKind::IsADirectory, "is a directory", to));
            }
        }
        if from_dir == to_dir && from_name == to_name {
            return Ok(());
        }
        g.fs.dir_live(from_dir).remove(&from_name);
        g.fs.dir_live(to_dir).insert(to_name.clone(), ino);
        g.fs.pending.push(DirOp::Rename {
            from_dir,
            from: from_name,
            to_dir,
            to: to_name,
            ino,
        });
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut g = self.inner();
        g.begin(OpKind::Remove, path).map_err(Stop::into_io)?;
        let (dir, name) = g.fs.parent(path)?;
        let ino = *g
            .fs
            .dir_live(dir)
            .get(&name)
            .ok_or_else(|| err(io::ErrorKind::NotFound, "no such file", path))?;
        if matches!(g.fs.nodes.get(&ino), Some(Node::Dir(_))) {
            return Err(err(io::ErrorKind::IsADirectory, "is a directory", path));
        }
        g.fs.dir_live(dir).remove(&name);
        g.fs.pending.push(DirOp::Unlink { dir, name });
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut g = self.inner();
        g.begin(OpKind::SyncDir, dir).map_err(Stop::into_io)?;
        let comps = components(dir)?;
        let ino =
            g.fs.lookup(&comps)
                .ok_or_else(|| err(io::ErrorKind::NotFound, "no such directory", dir))?;
        if !matches!(g.fs.nodes.get(&ino), Some(Node::Dir(_))) {
            return Err(err(io::ErrorKind::NotADirectory, "not a directory", dir));
        }
        let Fs { nodes, pending, .. } = &mut g.fs;
        pending.retain(|op| {
            if op.touches(ino) {
                op.make_durable(nodes);
                false
            } else {
                true
            }
        });
        Ok(())
    }

    fn sync_filesystem(&self, path: &Path) -> io::Result<bool> {
        let mut g = self.inner();
        if !g.syncfs {
            // Not offered: nothing happens, so nothing can fail.
            g.count(OpKind::SyncFilesystem);
            return Ok(false);
        }
        g.begin(OpKind::SyncFilesystem, path).map_err(|stop| {
            if let Stop::Injected(_) = stop {
                // As fsyncgate for one file, for every file with dirty pages.
                for node in g.fs.nodes.values_mut() {
                    if let Node::File(f) = node {
                        if f.data.len() > f.durable_len {
                            f.lost.push((f.durable_len, f.data.len()));
                        }
                    }
                }
            }
            stop.into_io()
        })?;
        let comps = components(path)?;
        if g.fs.lookup(&comps).is_none() {
            return Err(err(
                io::ErrorKind::NotFound,
                "no such file or directory",
                path,
            ));
        }
        let mode = g.syncfs_mode;
        if mode == SyncfsMode::NoOp {
            return Ok(true);
        }
        let Fs { nodes, pending, .. } = &mut g.fs;
        for op in pending.drain(..) {
            op.make_durable(nodes);
        }
        for node in nodes.values_mut() {
            if let Node::File(f) = node {
                if mode == SyncfsMode::DropsWriteback && f.data.len() > f.durable_len {
                    f.lost.push((f.durable_len, f.data.len()));
                    f.wb_errors += 1;
                }
                f.durable_len = f.data.len();
            }
        }
        Ok(true)
    }

    fn sync_parallelism(&self) -> usize {
        self.inner().sync_parallelism
    }

    fn lock(&self, path: &Path, exclusive: bool) -> Result<Box<dyn DirLock>, LockFailure> {
        let mut g = self.inner();
        g.begin(OpKind::Lock, path)
            .map_err(|s| LockFailure::Io(s.into_io()))?;
        g.fs.parent(path).map_err(LockFailure::Io)?;
        let key = components(path).map_err(LockFailure::Io)?;
        match g.locks.get_mut(&key) {
            Some(held) if held.count > 0 => {
                if exclusive || held.exclusive {
                    return Err(LockFailure::Held {
                        holder_pid: held.exclusive.then(std::process::id),
                    });
                }
                held.count += 1;
            }
            _ => {
                g.locks.insert(
                    key.clone(),
                    Held {
                        exclusive,
                        count: 1,
                    },
                );
            }
        }
        drop(g);
        Ok(Box::new(SimLock {
            inner: Arc::clone(&self.inner),
            key,
        }))
    }
}

/// An open file of a [`SimStorage`].
struct SimFile {
    inner: Arc<Mutex<Inner>>,
    ino: Ino,
    path: PathBuf,
    /// The file's write-back errors this descriptor has seen or reported
    /// ([`FileNode::wb_errors`]).
    errors_seen: u64,
}

impl fmt::Debug for SimFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimFile")
            .field("path", &self.path)
            .field("ino", &self.ino)
            .finish()
    }
}

impl AppendFile for SimFile {
    fn append(&mut self, buf: &[u8]) -> io::Result<()> {
        let mut g = lock_inner(&self.inner);
        match g.begin(OpKind::Append, &self.path) {
            Ok(()) => {}
            Err(Stop::Injected(InjectedError::ShortWrite)) => {
                let want = g.rng.below(buf.len() as u64) as usize;
                let n = g.take_space(want);
                g.append(self.ino, &buf[..n]);
                return Err(io::Error::from_raw_os_error(ENOSPC));
            }
            Err(stop) => return Err(stop.into_io()),
        }
        let n = g.take_space(buf.len());
        g.append(self.ino, &buf[..n]);
        if n < buf.len() {
            return Err(io::Error::from_raw_os_error(ENOSPC));
        }
        Ok(())
    }

    fn sync_data(&mut self) -> io::Result<()> {
        let mut g = lock_inner(&self.inner);
        let outcome = g.begin(OpKind::SyncData, &self.path);
        let Some(f) = g.fs.file_mut(self.ino) else {
            return Err(err(io::ErrorKind::NotFound, "file vanished", &self.path));
        };
        match outcome {
            Ok(()) if f.wb_errors > self.errors_seen => {
                // A write-back error since this descriptor last looked: what is dirty now is
                // written, the error is reported (once per descriptor).
                self.errors_seen = f.wb_errors;
                f.durable_len = f.data.len();
                Err(io::Error::from_raw_os_error(EIO))
            }
            Ok(()) => {
                f.durable_len = f.data.len();
                Ok(())
            }
            Err(Stop::Injected(e)) => {
                // fsyncgate: the dirty pages are dropped from write-back but stay readable.
                if f.data.len() > f.durable_len {
                    f.lost.push((f.durable_len, f.data.len()));
                }
                Err(Stop::Injected(e).into_io())
            }
            Err(Stop::Power) => Err(Stop::Power.into_io()),
        }
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        let mut g = lock_inner(&self.inner);
        g.begin(OpKind::Truncate, &self.path)
            .map_err(Stop::into_io)?;
        let len = usize::try_from(len)
            .map_err(|_| err(io::ErrorKind::InvalidInput, "length too large", &self.path))?;
        let Some(f) = g.fs.file_mut(self.ino) else {
            return Err(err(io::ErrorKind::NotFound, "file vanished", &self.path));
        };
        f.set_len(len);
        Ok(())
    }
}

/// A lock held on a [`SimStorage`]; released when dropped.
struct SimLock {
    inner: Arc<Mutex<Inner>>,
    key: Vec<String>,
}

impl fmt::Debug for SimLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimLock").field("path", &self.key).finish()
    }
}

impl DirLock for SimLock {}

impl Drop for SimLock {
    fn drop(&mut self) {
        let mut g = lock_inner(&self.inner);
        if let Some(held) = g.locks.get_mut(&self.key) {
            held.count = held.count.saturating_sub(1);
            if held.count == 0 {
                g.locks.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> &Path {
        Path::new(s)
    }

    fn read(s: &SimStorage, path: &str) -> Vec<u8> {
        s.read(p(path), u64::MAX).unwrap().to_vec()
    }

    #[test]
    fn unsynced_data_and_entries_are_lost_and_synced_ones_survive() {
        let s = SimStorage::new(1);
        s.create_dir_all(p("/d")).unwrap();
        s.sync_dir(p("/")).unwrap();
        let mut f = s.create_new(p("/d/a")).unwrap();
        f.append(b"hello").unwrap();
        f.sync_data().unwrap();
        f.append(b" world").unwrap();
        assert_eq!(read(&s, "/d/a"), b"hello world");
        // The entry of `a` was never synced: the file vanishes with its synced data.
        let c = s.crash(CrashMode::DropUnsynced);
        assert_eq!(c.list(p("/d")).unwrap(), Vec::<String>::new());
        s.sync_dir(p("/d")).unwrap();
        let c = s.crash(CrashMode::DropUnsynced);
        assert_eq!(read(&c, "/d/a"), b"hello");
        // Torn tails keep a prefix of " world", maybe followed by filler, never less than
        // the synced part.
        let mut seen_full = false;
        for seed in 0..200 {
            let c = s.crash(CrashMode::TornTail { seed });
            let got = read(&c, "/d/a");
            assert!(got.starts_with(b"hello") && got.len() <= 11, "{got:?}");
            let kept = got[5..]
                .iter()
                .zip(b" world")
                .take_while(|(a, b)| a == b)
                .count();
            assert!(got[5 + kept..].len() <= 6 - kept);
            seen_full |= got == b"hello world";
        }
        assert!(seen_full);
    }

    #[test]
    fn renames_and_removes_are_undone_without_a_directory_sync() {
        let s = SimStorage::new(2);
        let mut f = s.create_new(p("/a.tmp")).unwrap();
        f.append(b"new").unwrap();
        f.sync_data().unwrap();
        let mut old = s.create_new(p("/a")).unwrap();
        old.append(b"old").unwrap();
        old.sync_data().unwrap();
        s.sync_dir(p("/")).unwrap();
        s.rename(p("/a.tmp"), p("/a")).unwrap();
        assert_eq!(read(&s, "/a"), b"new");
        let c = s.crash(CrashMode::DropUnsynced);
        assert_eq!(read(&c, "/a"), b"old");
        assert_eq!(read(&c, "/a.tmp"), b"new");
        // Writeback keeps the rename or not, never half of it.
        for seed in 0..50 {
            let c = s.crash(CrashMode::Writeback { seed });
            let mut names = c.list(p("/")).unwrap();
            names.sort();
            assert!(names == ["a", "a.tmp"] || names == ["a"], "{names:?}");
        }
        s.remove(p("/a")).unwrap();
        let c = s.crash(CrashMode::DropUnsynced);
        assert_eq!(read(&c, "/a"), b"old");
        s.sync_dir(p("/")).unwrap();
        let c = s.crash(CrashMode::DropUnsynced);
        assert!(c.list(p("/")).unwrap().is_empty());
    }

    #[test]
    fn a_new_directory_needs_its_parent_synced() {
        let s = SimStorage::new(3);
        s.create_dir_all(p("/x/y")).unwrap();
        let mut f = s.create_new(p("/x/y/f")).unwrap();
        f.append(b"1").unwrap();
        f.sync_data().unwrap();
        s.sync_dir(p("/x/y")).unwrap();
        s.sync_dir(p("/x")).unwrap();
        assert!(s
            .crash(CrashMode::DropUnsynced)
            .list(p("/"))
            .unwrap()
            .is_empty());
        s.sync_dir(p("/")).unwrap();
        assert_eq!(read(&s.crash(CrashMode::DropUnsynced), "/x/y/f"), b"1");
    }

    #[test]
    fn failed_fsync_loses_the_dirty_bytes_even_after_a_later_successful_fsync() {
        let s = SimStorage::new(4);
        let mut f = s.create_new(p("/f")).unwrap();
        s.sync_dir(p("/")).unwrap();
        f.append(b"aaaa").unwrap();
        f.sync_data().unwrap();
        f.append(b"bbbb").unwrap();
        s.set_fault(Fault::FailKind {
            kind: OpKind::SyncData,
            nth: 1,
            sticky: false,
            error: InjectedError::Eio,
        });
        let e = f.sync_data().unwrap_err();
        assert_eq!(e.raw_os_error(), Some(EIO));
        f.append(b"cccc").unwrap();
        f.sync_data().unwrap();
        assert_eq!(read(&s, "/f"), b"aaaabbbbcccc");
        assert_eq!(
            read(&s.crash(CrashMode::DropUnsynced), "/f"),
            b"aaaa\0\0\0\0cccc"
        );
    }

    #[test]
    fn disk_full_short_writes_and_power_loss() {
        let s = SimStorage::new(5);
        let mut f = s.create_new(p("/f")).unwrap();
        s.set_fault(Fault::DiskFull { bytes_free: 6 });
        f.append(b"1234").unwrap();
        let e = f.append(b"5678").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(ENOSPC));
        assert_eq!(read(&s, "/f"), b"123456");
        assert_eq!(
            s.create_new(p("/g")).unwrap_err().raw_os_error(),
            Some(ENOSPC)
        );
        s.clear_faults();
        let at = s.op_count();
        s.set_fault(Fault::FailOp {
            op: at,
            error: InjectedError::ShortWrite,
        });
        assert!(f.append(b"abcdefgh").is_err());
        let len = read(&s, "/f").len();
        assert!((6..14).contains(&len), "{len}");
        let at = s.op_count();
        s.set_fault(Fault::PowerLoss { op: at + 1 });
        f.sync_data().unwrap();
        assert!(f.append(b"x").is_err());
        assert!(s.sync_dir(p("/")).is_err());
        assert_eq!(s.power_lost_at(), Some(at + 1));
        // The file's entry was never synced.
        assert!(s
            .crash(CrashMode::DropUnsynced)
            .list(p("/"))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn locks_conflict_until_dropped_and_captures_replay_the_past() {
        let s = SimStorage::new(6);
        let w = s.lock(p("/LOCK"), true).unwrap();
        assert!(matches!(
            s.lock(p("/LOCK"), false),
            Err(LockFailure::Held {
                holder_pid: Some(_)
            })
        ));
        drop(w);
        let r1 = s.lock(p("/LOCK"), false).unwrap();
        let _r2 = s.lock(p("/LOCK"), false).unwrap();
        assert!(matches!(
            s.lock(p("/LOCK"), true),
            Err(LockFailure::Held { holder_pid: None })
        ));
        drop(r1);
        s.set_capture(Capture::Every);
        let start = s.op_count();
        let mut f = s.create_new(p("/f")).unwrap();
        s.sync_dir(p("/")).unwrap();
        f.append(b"ab").unwrap();
        f.sync_data().unwrap();
        let caps = s.take_captures();
        assert_eq!(
            caps.iter().map(Captured::op).collect::<Vec<_>>(),
            (start..start + 4).collect::<Vec<_>>()
        );
        let lens: Vec<usize> = caps
            .iter()
            .map(|c| {
                let c = c.crash(CrashMode::DropUnsynced);
                c.read(p("/f"), 100).map_or(usize::MAX, |b| b.len())
            })
            .collect();
        assert_eq!(lens, [usize::MAX, usize::MAX, 0, 0]);
        assert_eq!(s.op_count_of(OpKind::Append), 1);
    }
}

//! The fault model's injected failures: the kinds of operation ([`OpKind`]), the faults a
//! test sets ([`Fault`]: failures by index, kind or chance, a full disk, power loss, bit rot),
//! what `syncfs` does ([`SyncfsMode`]), and the check every operation makes first
//! ([`Inner::begin`]) to decide whether it happens. See the module docs of [`sim`](super) for
//! the whole model.

use std::io;
use std::path::{Path, PathBuf};

use super::tree::Ino;
use super::Inner;
#[cfg(doc)]
use super::SimStorage;
#[cfg(doc)]
use crate::storage::{AppendFile, Storage};

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
    /// [`Storage::remove`] and [`Storage::remove_dir`].
    Remove,
    /// [`Storage::sync_dir`].
    SyncDir,
    /// [`Storage::sync_filesystem`] (counted whether or not `syncfs` is offered).
    SyncFilesystem,
    /// [`Storage::lock`].
    Lock,
    /// [`AppendFile::preallocate`].
    Preallocate,
}

impl OpKind {
    /// Every kind, in declaration order.
    pub const ALL: [OpKind; 16] = [
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
        OpKind::Preallocate,
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
                | OpKind::Preallocate
        )
    }

    pub(super) fn index(self) -> usize {
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

/// Why an operation does not happen.
pub(super) enum Stop {
    Power,
    Injected(InjectedError),
}

impl Stop {
    pub(super) fn into_io(self) -> io::Error {
        match self {
            Stop::Power => io::Error::other("SimStorage: the power is off (simulated power loss)"),
            Stop::Injected(InjectedError::Enospc) => io::Error::from_raw_os_error(ENOSPC),
            Stop::Injected(
                InjectedError::Eio | InjectedError::ShortWrite | InjectedError::BitRot,
            ) => io::Error::from_raw_os_error(EIO),
        }
    }
}

impl Inner {
    /// Counts a read of a file with durable bytes (`durable`) and flips one bit of them when a
    /// [`Fault::BitRot`] names this read.
    pub(super) fn rot_one_bit(&mut self, kind: OpKind, path: &Path, durable: &mut [u8]) {
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
    pub(super) fn begin(&mut self, kind: OpKind, path: &Path) -> Result<(), Stop> {
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
    pub(super) fn space_left(&self) -> Option<u64> {
        self.faults
            .iter()
            .filter_map(|f| match f {
                Fault::DiskFull { bytes_free } => Some(*bytes_free),
                _ => None,
            })
            .min()
    }

    /// Space for an append of `want` bytes to file `ino`: the part inside its reserved
    /// (preallocated) extension is granted without taking any; the rest is taken as by
    /// [`Inner::take_space`]. Returns how many bytes may be written.
    pub(super) fn take_space_after_reserved(&mut self, ino: Ino, want: usize) -> usize {
        let reserved = self
            .fs
            .file_mut(ino)
            .map_or(0, |f| f.alloc_len.saturating_sub(f.data.len()));
        let inside = want.min(reserved);
        inside + self.take_space(want - inside)
    }

    /// Takes up to `want` bytes of space; returns how many were granted.
    pub(super) fn take_space(&mut self, want: usize) -> usize {
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
}

//! The crash model: what survives a power loss ([`CrashMode`]: synced state only, torn tails,
//! in-order write-back of directory operations, holed sectors), and the states recorded
//! before chosen operations ([`Capture`], [`Captured`]) so that one run yields every crash
//! point. See the module docs of [`sim`](super) for the whole model.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use super::tree::{DirNode, FileNode, Fs, Node, ROOT};
use super::SimStorage;
use crate::session::Rng;

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
    pub(super) op: u64,
    pub(super) fs: Fs,
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

impl FileNode {
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
        // A durable preallocation: the length survives, reading as zeros past the data kept
        // (zeros never written: bit rot is injected into written bytes only).
        let alloc_len = if self.durable_alloc_len > len {
            self.durable_alloc_len
        } else {
            0
        };
        FileNode {
            data: Arc::new(out),
            alloc_len,
            durable_alloc_len: alloc_len,
            durable_len: len,
            lost: Vec::new(),
            append_ends: Vec::new(),
            wb_errors: 0,
        }
    }

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

impl Fs {
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

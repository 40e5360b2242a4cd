//! The in-memory file tree of [`SimStorage`]: inodes holding a file's live
//! bytes and durable length or a directory's live and durable entries, and the directory
//! operations not yet durable, in issue order. Path lookup lives here; what a crash keeps of
//! the tree is in `crash.rs`.

use std::collections::BTreeMap;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

#[cfg(doc)]
use super::{SimStorage, SyncfsMode};

/// One file or directory of a [`SimStorage`], as [`SimStorage::entries`] describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimEntry {
    /// Full path (from the root `/`).
    pub path: PathBuf,
    /// Whether it is a directory.
    pub is_dir: bool,
    /// Live length in bytes, a preallocated extension included (0 for directories).
    pub live_len: u64,
    /// Durable length in bytes (0 for directories).
    pub durable_len: u64,
    /// Whether the entry in its parent directory is durable (with this name and this file).
    pub entry_durable: bool,
    /// Bytes a failed fsync dropped from write-back (they read back, but never reach the disk).
    pub lost_bytes: u64,
}

pub(super) type Ino = u64;
pub(super) const ROOT: Ino = 0;

#[derive(Clone, Debug)]
pub(super) struct FileNode {
    /// Live content up to the written end (shared with captured states until written).
    pub(super) data: Arc<Vec<u8>>,
    /// The file's length when a preallocation made it longer than `data` (zeros after
    /// `data`); 0 otherwise.
    pub(super) alloc_len: usize,
    /// The length a power loss keeps at least (zeros after what survives of `data`): the
    /// `alloc_len` the last successful sync made durable (a preallocation is metadata).
    pub(super) durable_alloc_len: usize,
    /// `data[..durable_len]` survives a power loss.
    pub(super) durable_len: usize,
    /// Byte ranges whose write-back a failed fsync dropped: they never reach the disk.
    pub(super) lost: Vec<(usize, usize)>,
    /// Where the appends after `durable_len` ended (write boundaries a torn tail may stop at).
    pub(super) append_ends: Vec<usize>,
    /// Write-back errors recorded on the file (Linux `errseq_t`), see
    /// [`SyncfsMode::DropsWriteback`]: a descriptor reports those that happened after it was
    /// opened and it last reported one.
    pub(super) wb_errors: u64,
}

impl FileNode {
    pub(super) fn new() -> FileNode {
        FileNode {
            data: Arc::new(Vec::new()),
            alloc_len: 0,
            durable_alloc_len: 0,
            durable_len: 0,
            lost: Vec::new(),
            append_ends: Vec::new(),
            wb_errors: 0,
        }
    }

    /// `ftruncate`: the live content becomes `len` bytes (zero-extended). A cut is modelled as
    /// durable at once; bytes before it that were not durable stay not durable (a longer length
    /// never becomes durable by truncating to it).
    pub(super) fn set_len(&mut self, len: usize) {
        Arc::make_mut(&mut self.data).resize(len, 0);
        self.alloc_len = 0;
        self.durable_alloc_len = self.durable_alloc_len.min(len);
        self.durable_len = self.durable_len.min(len);
        self.append_ends.retain(|end| *end <= len);
        for range in &mut self.lost {
            range.1 = range.1.min(len);
        }
        self.lost.retain(|(start, end)| start < end);
    }

    /// The file's length: the written bytes, or the preallocated length when longer.
    pub(super) fn len(&self) -> usize {
        self.data.len().max(self.alloc_len)
    }

    /// A successful sync: the written bytes and the preallocated length become durable.
    pub(super) fn make_durable(&mut self) {
        self.durable_len = self.data.len();
        self.durable_alloc_len = self.alloc_len;
    }
}

#[derive(Clone, Debug, Default)]
pub(super) struct DirNode {
    pub(super) live: BTreeMap<String, Ino>,
    pub(super) durable: BTreeMap<String, Ino>,
}

#[derive(Clone, Debug)]
pub(super) enum Node {
    File(FileNode),
    Dir(DirNode),
}

/// A directory change not yet durable.
#[derive(Clone, Debug)]
pub(super) enum DirOp {
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
    pub(super) fn touches(&self, d: Ino) -> bool {
        match self {
            DirOp::Link { dir, .. } | DirOp::Unlink { dir, .. } => *dir == d,
            DirOp::Rename {
                from_dir, to_dir, ..
            } => *from_dir == d || *to_dir == d,
        }
    }

    pub(super) fn make_durable(&self, nodes: &mut BTreeMap<Ino, Node>) {
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
pub(super) struct Fs {
    /// Every node ever created (unlinked files stay: an open handle or a durable entry may
    /// still reach them).
    pub(super) nodes: BTreeMap<Ino, Node>,
    pub(super) next_ino: Ino,
    /// Directory changes not yet durable, in issue order.
    pub(super) pending: Vec<DirOp>,
}

pub(super) fn err(kind: io::ErrorKind, what: &str, path: &Path) -> io::Error {
    io::Error::new(kind, format!("{what}: {}", path.display()))
}

pub(super) fn components(path: &Path) -> io::Result<Vec<String>> {
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
    pub(super) fn new() -> Fs {
        let mut nodes = BTreeMap::new();
        nodes.insert(ROOT, Node::Dir(DirNode::default()));
        Fs {
            nodes,
            next_ino: ROOT + 1,
            pending: Vec::new(),
        }
    }

    pub(super) fn lookup(&self, comps: &[String]) -> Option<Ino> {
        let mut ino = ROOT;
        for c in comps {
            match self.nodes.get(&ino)? {
                Node::Dir(d) => ino = *d.live.get(c)?,
                Node::File(_) => return None,
            }
        }
        Some(ino)
    }

    pub(super) fn file(&self, path: &Path) -> io::Result<(Ino, &FileNode)> {
        let comps = components(path)?;
        let ino = self
            .lookup(&comps)
            .ok_or_else(|| err(io::ErrorKind::NotFound, "no such file", path))?;
        match self.nodes.get(&ino) {
            Some(Node::File(f)) => Ok((ino, f)),
            _ => Err(err(io::ErrorKind::IsADirectory, "is a directory", path)),
        }
    }

    pub(super) fn file_mut(&mut self, ino: Ino) -> Option<&mut FileNode> {
        match self.nodes.get_mut(&ino) {
            Some(Node::File(f)) => Some(f),
            _ => None,
        }
    }

    /// The directory holding `path`'s last component, and that component.
    pub(super) fn parent(&self, path: &Path) -> io::Result<(Ino, String)> {
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

    pub(super) fn dir_live(&mut self, dir: Ino) -> &mut BTreeMap<String, Ino> {
        match self.nodes.get_mut(&dir) {
            Some(Node::Dir(d)) => &mut d.live,
            // `parent` and `lookup` only return directories for these calls.
            _ => unreachable!("inode {dir} is not a directory"),
        }
    }

    pub(super) fn link(&mut self, dir: Ino, name: String, node: Node) -> Ino {
        let ino = self.next_ino;
        self.next_ino += 1;
        self.nodes.insert(ino, node);
        self.dir_live(dir).insert(name.clone(), ino);
        self.pending.push(DirOp::Link { dir, name, ino });
        ino
    }
}

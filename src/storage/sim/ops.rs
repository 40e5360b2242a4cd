//! The operations of [`SimStorage`]: its [`Storage`] implementation, its open files
//! ([`AppendFile`]) and its locks, each checked against the fault model first
//! ([`Inner::begin`](super::Inner::begin)) and then applied to the in-memory tree.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::faults::{InjectedError, OpKind, Stop, SyncfsMode, EIO, ENOSPC};
use super::tree::{components, err, DirNode, DirOp, FileNode, Fs, Ino, Node, ROOT};
use super::{lock_inner, Inner, SimStorage};
use crate::storage::{AppendFile, Bytes, DirLock, LockFailure, Preallocation, Storage};

/// A lock in the lock table: exclusive, or shared by `count` holders.
#[derive(Debug)]
pub(super) struct Held {
    exclusive: bool,
    count: u32,
}

impl SimStorage {
    fn read_file(&self, kind: OpKind, path: &Path, len_max: u64) -> io::Result<Bytes> {
        let mut g = self.inner();
        g.begin(kind, path).map_err(Stop::into_io)?;
        let (_, f) = g.fs.file(path)?;
        let len = f.len() as u64;
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
        bytes.resize(f.len(), 0);
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
        Ok(f.len() as u64)
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
        self.unlink(path, false)
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        self.unlink(path, true)
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
                f.make_durable();
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
                let n = g.take_space_after_reserved(self.ino, want);
                g.append(self.ino, &buf[..n]);
                return Err(io::Error::from_raw_os_error(ENOSPC));
            }
            Err(stop) => return Err(stop.into_io()),
        }
        let n = g.take_space_after_reserved(self.ino, buf.len());
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
                f.make_durable();
                Err(io::Error::from_raw_os_error(EIO))
            }
            Ok(()) => {
                f.make_durable();
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

    /// `fallocate`: a metadata operation: the file reads as zeros up to `len` at once; the
    /// length survives a power loss only once a later `sync_data` (or `syncfs`) succeeded.
    /// The extension is reserved: it takes its bytes from a
    /// [`Fault::DiskFull`](super::Fault::DiskFull) budget now (`ENOSPC`, changing nothing, when
    /// they are not there), and appends inside it take none. Injected errors apply (an
    /// injected error on an append inside it models an `EIO`-like failure the reservation
    /// does not prevent).
    fn preallocate(&mut self, len: u64) -> io::Result<Preallocation> {
        let mut g = lock_inner(&self.inner);
        g.begin(OpKind::Preallocate, &self.path)
            .map_err(Stop::into_io)?;
        let len = usize::try_from(len)
            .map_err(|_| err(io::ErrorKind::InvalidInput, "length too large", &self.path))?;
        let Some(current) = g.fs.file_mut(self.ino).map(|f| f.len()) else {
            return Err(err(io::ErrorKind::NotFound, "file vanished", &self.path));
        };
        if len > current {
            let want = len - current;
            if g.space_left().is_some_and(|left| (left as u128) < want as u128) {
                return Err(io::Error::from_raw_os_error(ENOSPC));
            }
            g.take_space(want);
            if let Some(f) = g.fs.file_mut(self.ino) {
                f.alloc_len = len;
            }
        }
        Ok(Preallocation::Reserved)
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

impl SimStorage {
    /// [`Storage::remove`] (`dir` false: a file) and [`Storage::remove_dir`] (`dir` true: an
    /// empty directory): the name goes now, the unlink becomes durable with its directory.
    fn unlink(&self, path: &Path, dir: bool) -> io::Result<()> {
        let mut g = self.inner();
        g.begin(OpKind::Remove, path).map_err(Stop::into_io)?;
        let (parent, name) = g.fs.parent(path)?;
        let ino = *g.fs.dir_live(parent).get(&name).ok_or_else(|| {
            let what = if dir {
                "no such directory"
            } else {
                "no such file"
            };
            err(io::ErrorKind::NotFound, what, path)
        })?;
        match (g.fs.nodes.get(&ino), dir) {
            (Some(Node::Dir(_)), false) => {
                return Err(err(io::ErrorKind::IsADirectory, "is a directory", path))
            }
            (Some(Node::Dir(d)), true) if !d.live.is_empty() => {
                return Err(err(
                    io::ErrorKind::DirectoryNotEmpty,
                    "directory not empty",
                    path,
                ))
            }
            (Some(Node::Dir(_)), true) | (_, false) => {}
            (_, true) => return Err(err(io::ErrorKind::NotADirectory, "not a directory", path)),
        }
        g.fs.dir_live(parent).remove(&name);
        g.fs.pending.push(DirOp::Unlink { dir: parent, name });
        Ok(())
    }
}

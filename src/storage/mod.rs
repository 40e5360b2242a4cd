//! The one module that touches `std::fs`.
//!
//! Everything else reaches the disk through the small [`Storage`] trait, so a fault-injecting,
//! in-memory implementation can stand in for the real one ([`FsStorage`]) in crash tests.
//! [`write_atomic`] is the only way a file is replaced.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::ops::Deref;
use std::path::{Path, PathBuf};

// The simulated file system of the crash tests (feature `testing`; not part of the API a bot
// uses, hence hidden from the documentation).
#[cfg(any(test, feature = "testing"))]
#[doc(hidden)]
pub mod sim;

/// Bytes read from storage: owned, or a read-only memory map of an immutable file.
pub enum Bytes {
    /// Bytes copied into memory.
    Owned(Vec<u8>),
    /// A read-only map of a sealed (immutable) file.
    Mapped(memmap2::Mmap),
}

impl Deref for Bytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Owned(v) => v,
            Bytes::Mapped(m) => m,
        }
    }
}

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bytes({} bytes)", self.len())
    }
}

/// What [`AppendFile::preallocate`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preallocation {
    /// The blocks up to the new length are reserved (`fallocate(2)`): writes inside them can
    /// still fail with an I/O error, never with a full disk. The commit log relies on it to
    /// write a whole group commit's records at once (DESIGN.md, "Group commit").
    Reserved,
    /// Only the length was set (`ftruncate`, a sparse file): a write inside it may still
    /// find the disk full.
    Sparse,
}

/// A file opened for appending (a log segment, a commit log or a temporary file).
///
/// Appends go to the file's *written end*: the end of the file when it was opened, moved by
/// each append and by [`AppendFile::truncate`]. [`AppendFile::preallocate`] extends the file
/// with zeros beyond the written end without moving it, so the appends that follow overwrite
/// those zeros instead of growing the file.
pub trait AppendFile: Send + fmt::Debug {
    /// Writes all of `buf` at the written end and moves the written end past it.
    ///
    /// # Errors
    /// The OS error; the file may then hold a prefix of `buf`.
    fn append(&mut self, buf: &[u8]) -> io::Result<()>;
    /// Extends the file with zeros to `len` bytes (nothing when it is that long already),
    /// leaving the written end where it is. The new length is file metadata: it becomes
    /// durable with the next [`AppendFile::sync_data`] (which then commits it), not before.
    /// [`FsStorage`] uses `fallocate(2)` (blocks reserved, reading as zeros) and writes zeros
    /// over them (so that records landing there convert no unwritten extent), falling back to
    /// `ftruncate` where the file system does not support it (see DESIGN.md, "The cost of an
    /// acknowledged append").
    ///
    /// Returns whether the blocks were reserved ([`Preallocation::Reserved`]: an append inside
    /// the extension cannot fail for want of space) or only the length was set
    /// ([`Preallocation::Sparse`]: it can).
    ///
    /// # Errors
    /// The OS error (a full disk). Nothing written is lost: the caller may go on appending
    /// to a file that grows with each append.
    fn preallocate(&mut self, len: u64) -> io::Result<Preallocation>;
    /// Makes everything appended so far durable (`fdatasync`).
    ///
    /// # Errors
    /// The OS error. After an error the caller must not assume anything appended is durable and
    /// must not retry on this file (fsyncgate): it poisons the log instead.
    fn sync_data(&mut self) -> io::Result<()>;
    /// Cuts the file back to `len` bytes, which becomes the written end (and the end of the
    /// file: a preallocated extension beyond `len` is gone): undoes an append that failed
    /// part-way (a failed *write* loses no page-cache data, unlike a failed fsync, so the file
    /// can be restored and the write redone later).
    ///
    /// # Errors
    /// The OS error; the caller then poisons the log.
    fn truncate(&mut self, len: u64) -> io::Result<()>;
}

/// Why a directory lock could not be taken.
#[derive(Debug)]
pub enum LockFailure {
    /// Another process holds it.
    Held {
        /// The pid the holder wrote into the lock file, if readable.
        holder_pid: Option<u32>,
    },
    /// The lock file could not be opened or locked.
    Io(io::Error),
}

/// A held directory lock; released when dropped (or when the process dies).
pub trait DirLock: Send + fmt::Debug {}

/// The storage seam: the operations the journal needs, nothing more.
pub trait Storage: Send + Sync + fmt::Debug {
    /// Creates a directory and its parents (mode 0700 on Unix).
    ///
    /// # Errors
    /// The OS error.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Names of the entries of a directory (not sorted). A missing directory is an empty list.
    ///
    /// # Errors
    /// The OS error.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Whether a file or directory exists at `path`.
    ///
    /// # Errors
    /// The OS error (other than "not found").
    fn exists(&self, path: &Path) -> io::Result<bool>;
    /// Length of a file in bytes.
    ///
    /// # Errors
    /// The OS error.
    fn file_len(&self, path: &Path) -> io::Result<u64>;
    /// Reads a whole file into memory, refusing (with `InvalidData`) files over `len_max` bytes
    /// before allocating.
    ///
    /// # Errors
    /// The OS error, or `InvalidData` for an oversized file.
    fn read(&self, path: &Path, len_max: u64) -> io::Result<Bytes>;
    #[cfg(any(feature = "remote", feature = "testing", test))]
    /// Reads the file from byte `offset` to its end, refusing files longer than `len_max`
    /// bytes in all (past the end: empty). For reading on where an earlier read stopped.
    ///
    /// # Errors
    /// As [`Storage::read`].
    fn read_from(&self, path: &Path, offset: u64, len_max: u64) -> io::Result<Bytes> {
        let whole = self.read(path, len_max)?;
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(whole.len());
        Ok(Bytes::Owned(whole[start..].to_vec()))
    }
    /// Maps a whole immutable file read-only, refusing files over `len_max` bytes.
    ///
    /// # Errors
    /// The OS error, or `InvalidData` for an oversized file.
    fn map(&self, path: &Path, len_max: u64) -> io::Result<Bytes>;
    /// Creates a new file (failing if it exists) for appending (mode 0600 on Unix).
    ///
    /// # Errors
    /// The OS error.
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn AppendFile>>;
    /// Opens an existing file for appending at its end.
    ///
    /// # Errors
    /// The OS error.
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn AppendFile>>;
    /// Cuts a file to `len` bytes and makes the new length durable.
    ///
    /// # Errors
    /// The OS error.
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()>;
    /// Renames a file (atomically replacing `to`).
    ///
    /// # Errors
    /// The OS error.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    ///
    /// # Errors
    /// The OS error.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Removes an empty directory.
    ///
    /// # Errors
    /// The OS error (a directory that is not empty is an error).
    fn remove_dir(&self, path: &Path) -> io::Result<()>;
    /// Makes the entries of a directory durable (fsync of the directory).
    ///
    /// # Errors
    /// The OS error.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Makes every written file and directory entry of the file system holding `path` durable
    /// in one call (Linux `syncfs`), returning `Ok(false)` when the storage cannot, in which case
    /// the caller syncs file by file.
    ///
    /// # Errors
    /// The OS error (Linux >= 5.8 reports writeback errors of the file system here).
    fn sync_filesystem(&self, path: &Path) -> io::Result<bool> {
        let _ = path;
        Ok(false)
    }
    /// How many threads may issue the `fdatasync`s of one commit-log retirement at once (1: one
    /// after the other, in a deterministic order).
    fn sync_parallelism(&self) -> usize {
        1
    }
    /// Asks the file system to place the subdirectories `dir` gets from now on apart from each
    /// other: on ext2/3/4, the `FS_TOPDIR_FL` inode flag (`chattr +T`), which makes the Orlov
    /// allocator spread them over block groups instead of putting them next to their parent. A
    /// hint with no effect on what is stored: `Ok(false)` where the storage has no such thing
    /// (the default, and file systems without inode flags).
    ///
    /// Why the journal asks: on ext4 without a journal, an `fdatasync` of the commit log also
    /// wrote the inode-table block its inode shares with `guilds/`, which every new guild's
    /// `mkdir` changes (DESIGN.md, "What a new guild costs").
    ///
    /// # Errors
    /// The OS error of reading or setting the flag.
    fn spread_subdirectories(&self, dir: &Path) -> io::Result<bool> {
        let _ = dir;
        Ok(false)
    }
    /// Takes an advisory lock on `path` (created if missing): exclusive for a writer, shared for
    /// readers. An exclusive holder writes its pid into the file.
    ///
    /// # Errors
    /// [`LockFailure::Held`] when another process holds a conflicting lock.
    fn lock(&self, path: &Path, exclusive: bool) -> Result<Box<dyn DirLock>, LockFailure>;
}

/// The directory holding `path` (`.` for a bare name): the one whose fsync makes its entry
/// durable.
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Replaces `path` atomically with `bytes`: write a temporary file in the same directory, fsync
/// it, rename it over `path`, fsync the directory. After it returns `Ok`, a crash leaves either
/// the old file or the new one, never a mix; the new one is durable.
///
/// # Errors
/// The failed step (as a verb phrase), the path it concerned and the OS error. The temporary
/// file is removed on a best-effort basis.
pub fn write_atomic(
    storage: &dyn Storage,
    path: &Path,
    bytes: &[u8],
) -> Result<(), (&'static str, PathBuf, io::Error)> {
    let tmp = crate::layout::temp_path(path);
    let dir = parent_dir(path);
    let cleanup = |step: &'static str, at: &Path, e: io::Error| {
        let _ = storage.remove(&tmp);
        (step, at.to_path_buf(), e)
    };
    match storage.remove(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(("remove stale temporary file", tmp, e)),
    }
    let mut file = storage
        .create_new(&tmp)
        .map_err(|e| cleanup("create", &tmp, e))?;
    file.append(bytes).map_err(|e| cleanup("write", &tmp, e))?;
    file.sync_data().map_err(|e| cleanup("fsync", &tmp, e))?;
    drop(file);
    storage
        .rename(&tmp, path)
        .map_err(|e| cleanup("rename into place", path, e))?;
    storage
        .sync_dir(dir)
        .map_err(|e| ("fsync directory", dir.to_path_buf(), e))?;
    Ok(())
}

/// Runs `f` on every item, on up to `threads` scoped threads that take the items one at a time
/// (for the `fdatasync`s of a commit-log retirement, which the device serves in parallel); returns
/// the results in the order of `items`. With one thread, or one item, everything runs on the
/// calling thread, in order.
pub(crate) fn in_parallel<T: Send, R: Send>(
    threads: usize,
    items: Vec<T>,
    f: impl Fn(T) -> R + Sync,
) -> Vec<R> {
    let threads = threads.min(items.len());
    if threads <= 1 {
        return items.into_iter().map(f).collect();
    }
    let len = items.len();
    let queue = std::sync::Mutex::new(items.into_iter().enumerate());
    let next = || queue.lock().unwrap_or_else(|e| e.into_inner()).next();
    let mut done: Vec<(usize, R)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut out = Vec::new();
                    while let Some((i, item)) = next() {
                        out.push((i, f(item)));
                    }
                    out
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| match w.join() {
                Ok(out) => out,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    });
    debug_assert_eq!(done.len(), len);
    done.sort_unstable_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

/// How many `fdatasync`s [`FsStorage`] lets a commit-log retirement issue at once: enough to keep a
/// fast device's queue full while the file system batches their journal commits.
pub const SYNC_THREADS_MAX: usize = 64;

/// The real file system.
#[derive(Clone, Copy, Debug, Default)]
pub struct FsStorage;

#[derive(Debug)]
struct FsFile {
    file: File,
    /// Where the next append writes.
    end: u64,
    /// The file's length as this handle last set or saw it (at least `end`).
    len: u64,
    /// How this handle last extended the file (`Sparse` until it did: what an earlier
    /// process left is not known to be reserved).
    preallocation: Preallocation,
}

impl FsFile {
    fn new(file: File) -> io::Result<FsFile> {
        let len = file.metadata()?.len();
        Ok(FsFile {
            file,
            end: len,
            len,
            preallocation: Preallocation::Sparse,
        })
    }
}

/// Writes zeros over `[from, to)` of `file` (positioned writes: the written end stays).
#[cfg(target_os = "linux")]
fn write_zeros(file: &File, from: u64, to: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    static ZEROS: [u8; 64 << 10] = [0; 64 << 10];
    let mut at = from;
    while at < to {
        let n = usize::try_from(to - at).map_or(ZEROS.len(), |left| left.min(ZEROS.len()));
        file.write_all_at(&ZEROS[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

impl AppendFile for FsFile {
    fn append(&mut self, buf: &[u8]) -> io::Result<()> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::FileExt;
            self.file.write_all_at(buf, self.end)?;
        }
        #[cfg(not(unix))]
        {
            self.file.seek(io::SeekFrom::Start(self.end))?;
            self.file.write_all(buf)?;
        }
        self.end += buf.len() as u64;
        self.len = self.len.max(self.end);
        Ok(())
    }

    fn preallocate(&mut self, len: u64) -> io::Result<Preallocation> {
        if len <= self.len {
            // Only this writer extends the file, always through this call: what lies below
            // `len` was reserved the same way as the rest (`Sparse` would be as true on a
            // file system without fallocate, and the caller asks again at the next chunk).
            return Ok(self.preallocation);
        }
        #[cfg(target_os = "linux")]
        {
            use rustix::fs::{fallocate, FallocateFlags};
            match fallocate(
                &self.file,
                FallocateFlags::empty(),
                self.len,
                len - self.len,
            ) {
                Ok(()) => {
                    // Zeros written over the reserved blocks: ext4 and XFS keep a fallocated
                    // range as *unwritten* extents and convert them as records land in them,
                    // and every conversion is metadata the next `fdatasync` must write too (a
                    // group commit's records cross a block nearly every time). Written once
                    // per chunk here, they make each acknowledgement a data-only flush
                    // (DESIGN.md, "The cost of an acknowledged append"). A failure only loses
                    // that gain: the blocks are reserved either way.
                    if let Err(e) = write_zeros(&self.file, self.len, len) {
                        tracing::debug!(error = %e, "writing zeros over a preallocation failed");
                    }
                    self.len = len;
                    self.preallocation = Preallocation::Reserved;
                    return Ok(Preallocation::Reserved);
                }
                // Not offered by this file system (some FUSE and network ones): a longer
                // length reads as zeros all the same.
                Err(e) if e == rustix::io::Errno::OPNOTSUPP || e == rustix::io::Errno::NOSYS => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.file.set_len(len)?;
        self.len = len;
        self.preallocation = Preallocation::Sparse;
        Ok(Preallocation::Sparse)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)?;
        self.end = len;
        self.len = len;
        Ok(())
    }
}

#[derive(Debug)]
struct FsLock {
    _file: File,
}

impl DirLock for FsLock {}

/// Reads up to `len` bytes (the length a `stat` just gave) from the start of `file`, stopping
/// early at its end: what the file held up to `len`, in one `read` when nothing interrupts it
/// (no second `read` to find the end, one syscall less per guild at recovery). A file that
/// grew after the `stat` gives its first `len` bytes, as a read at that moment would have.
fn read_len(file: &mut File, len: u64) -> io::Result<Vec<u8>> {
    let len = usize::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
    let mut buf = vec![0u8; len];
    let mut filled = 0;
    while filled < len {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(filled);
    Ok(buf)
}

fn too_large(path: &Path, len: u64, len_max: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "{} is {len} bytes, more than the {len_max} bytes any valid file of its kind has",
            path.display()
        ),
    )
}

/// Write access without `O_APPEND` (which would make every write go to the end of the file,
/// past a preallocated extension): [`FsFile`] writes at its written end.
fn options_new() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o
}

impl Storage for FsStorage {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut b = fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            b.mode(0o700);
        }
        b.create(path)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut names = Vec::new();
        for entry in entries {
            names.push(entry?.file_name().to_string_lossy().into_owned());
        }
        Ok(names)
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        match fs::symlink_metadata(path) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn file_len(&self, path: &Path) -> io::Result<u64> {
        Ok(fs::metadata(path)?.len())
    }

    fn read(&self, path: &Path, len_max: u64) -> io::Result<Bytes> {
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        if len > len_max {
            return Err(too_large(path, len, len_max));
        }
        Ok(Bytes::Owned(read_len(&mut file, len)?))
    }

    #[cfg(any(feature = "remote", feature = "testing", test))]
    fn read_from(&self, path: &Path, offset: u64, len_max: u64) -> io::Result<Bytes> {
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        if len > len_max {
            return Err(too_large(path, len, len_max));
        }
        if offset >= len {
            return Ok(Bytes::Owned(Vec::new()));
        }
        io::Seek::seek(&mut file, io::SeekFrom::Start(offset))?;
        let mut buf = Vec::with_capacity((len - offset) as usize);
        Read::by_ref(&mut file)
            .take(len_max - offset)
            .read_to_end(&mut buf)?;
        Ok(Bytes::Owned(buf))
    }

    #[allow(unsafe_code)]
    fn map(&self, path: &Path, len_max: u64) -> io::Result<Bytes> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        if len > len_max {
            return Err(too_large(path, len, len_max));
        }
        if len == 0 {
            return Ok(Bytes::Owned(Vec::new()));
        }
        // SAFETY: the map is only created for sealed segments, which reprise never modifies,
        // truncates or removes while a Journal holds the directory lock (removal happens only
        // through compaction in the same process, after every map of the file is dropped).
        // Another program writing to the file behind the lock would break this, as it would
        // break any database; the bytes are only read and every read is bounds-checked.
        let map = unsafe { memmap2::Mmap::map(&file)? };
        Ok(Bytes::Mapped(map))
    }

    fn create_new(&self, path: &Path) -> io::Result<Box<dyn AppendFile>> {
        let file = options_new().open(path)?;
        // A new file: empty.
        Ok(Box::new(FsFile {
            file,
            end: 0,
            len: 0,
            preallocation: Preallocation::Sparse,
        }))
    }

    fn open_append(&self, path: &Path) -> io::Result<Box<dyn AppendFile>> {
        let file = OpenOptions::new().write(true).open(path)?;
        Ok(Box::new(FsFile::new(file)?))
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        let file = OpenOptions::new().write(true).open(path)?;
        file.set_len(len)?;
        file.sync_all()
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        fs::remove_dir(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    #[cfg(target_os = "linux")]
    fn sync_filesystem(&self, path: &Path) -> io::Result<bool> {
        let dir = File::open(path)?;
        rustix::fs::syncfs(&dir)?;
        Ok(true)
    }

    fn sync_parallelism(&self) -> usize {
        SYNC_THREADS_MAX
    }

    #[cfg(target_os = "linux")]
    fn spread_subdirectories(&self, dir: &Path) -> io::Result<bool> {
        use rustix::fs::{ioctl_getflags, ioctl_setflags, IFlags};
        use rustix::io::Errno;
        // No inode flags here (tmpfs, and other file systems without FS_IOC_GETFLAGS), or
        // inode flags but not this one (XFS and btrfs refuse flags they do not know).
        let unsupported = |e: Errno| e == Errno::NOTTY || e == Errno::OPNOTSUPP || e == Errno::INVAL;
        let dir = File::open(dir)?;
        let set = ioctl_getflags(&dir).and_then(|flags| {
            if flags.contains(IFlags::TOPDIR) {
                Ok(())
            } else {
                ioctl_setflags(&dir, flags | IFlags::TOPDIR)
            }
        });
        match set {
            Ok(()) => Ok(true),
            Err(e) if unsupported(e) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    fn lock(&self, path: &Path, exclusive: bool) -> Result<Box<dyn DirLock>, LockFailure> {
        let mut o = OpenOptions::new();
        o.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            o.mode(0o600);
        }
        let mut file = o.open(path).map_err(LockFailure::Io)?;
        let taken = if exclusive {
            file.try_lock()
        } else {
            file.try_lock_shared()
        };
        match taken {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                let holder_pid = file
                    .read_to_string(&mut text)
                    .ok()
                    .and_then(|_| text.trim().parse().ok());
                return Err(LockFailure::Held { holder_pid });
            }
            Err(fs::TryLockError::Error(e)) => return Err(LockFailure::Io(e)),
        }
        if exclusive {
            file.set_len(0).map_err(LockFailure::Io)?;
            writeln!(file, "{}", std::process::id()).map_err(LockFailure::Io)?;
        }
        Ok(Box::new(FsLock { _file: file }))
    }
}

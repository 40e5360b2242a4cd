//! The shared commit log, both halves: [`CommitLog`] appends records and makes them durable
//! with one `fdatasync` for all guilds; [`CommitIndex`] reads the commit logs left by earlier
//! processes so that recovery can restore what a guild's segments lost.
//!
//! Rules (DESIGN.md, "Group commit"):
//! - every appended event goes to its guild segment *and* to the commit log;
//! - an event is durable once the commit log is synced past it;
//! - a commit log file is removed only by a commit-log retirement, after every guild it mentions
//!   has been recovered and its segments fsynced (so nothing it holds is needed any more);
//! - with preallocation ([`crate::Config::commit_prealloc_bytes`]) the file is extended with
//!   zeros ahead of its records, a chunk at a time, and its header says so
//!   ([`commit::FLAG_PREALLOCATED`]): the zeros after the last record are its end. An
//!   extension that fails (a full disk) is not an error: the records go on growing the file,
//!   and the next chunk boundary tries again.

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;

use crate::crypto::{KeyId, Keyring};
use crate::error::{Corruption, CorruptionKind, Error, Result};
use crate::format::commit;
use crate::format::segment::ScanEnd;
use crate::ids::{Generation, GuildId, Seq};
use crate::layout;
use crate::storage::{AppendFile, Bytes, Preallocation, Storage};

/// Largest commit log file recovery reads.
pub const COMMIT_FILE_LEN_MAX: u64 = 4 << 30;

/// Buffered records are written once this many bytes are pending.
const BUFFER_BYTES_MAX: usize = 1 << 20;

/// The largest first preallocation chunk of a commit log. Each extension doubles the chunk up
/// to [`crate::Config::commit_prealloc_bytes`]: the zeros written over a new chunk reach the
/// disk with the next `fdatasync`, so a short-lived writer (one `reprise apply`) flushes
/// 64 KiB of them with its first acknowledgement instead of a whole 1 MiB chunk, and a
/// long-lived one reaches full chunks after a few extensions.
pub(crate) const PREALLOC_CHUNK_FIRST_MAX: u64 = 64 << 10;

/// The smallest first preallocation chunk (the smallest chunk the configuration allows).
const PREALLOC_CHUNK_FIRST_MIN: u64 = 4 << 10;

/// A commit log's first preallocation chunk for a configured chunk of `step` bytes (0: off):
/// a sixteenth of it, within [`PREALLOC_CHUNK_FIRST_MIN`] ..= [`PREALLOC_CHUNK_FIRST_MAX`],
/// never more than `step` (so a 16 KiB chunk, which the crash simulations draw, grows too).
pub(crate) fn prealloc_chunk_first(step: u64) -> u64 {
    (step / 16)
        .clamp(PREALLOC_CHUNK_FIRST_MIN, PREALLOC_CHUNK_FIRST_MAX)
        .min(step)
}

/// The commit log this process appends to.
#[derive(Debug)]
pub(crate) struct CommitLog {
    pub(crate) generation: Generation,
    pub(crate) path: PathBuf,
    file: Box<dyn AppendFile>,
    /// Bytes written to the file (header included): its logical length.
    len: u64,
    /// Largest preallocation chunk (0: off).
    prealloc_step: u64,
    /// The next extension's chunk: from [`prealloc_chunk_first`], doubling up to
    /// `prealloc_step`.
    prealloc_chunk: u64,
    /// The file's length as far as this writer extended it (at least `len`).
    allocated: u64,
    /// The end of the extension known to be reserved ([`Preallocation::Reserved`]): records
    /// below it cannot fail to be written for want of space (at most `allocated`).
    reserved: u64,
    /// Records not yet written to the file.
    buf: Vec<u8>,
    /// Written bytes not yet fsynced.
    unsynced: bool,
    /// The directory entry of the file is not yet durable.
    dir_unsynced: bool,
    /// A write or fsync failed: nothing may be acknowledged as durable any more.
    pub(crate) poisoned: Option<&'static str>,
}

impl CommitLog {
    /// Creates `commit/<generation>.clog` with its header (not yet synced), extended by its
    /// first preallocation chunk when `prealloc_step` is not 0.
    pub(crate) fn create(
        storage: &dyn Storage,
        root: &std::path::Path,
        generation: Generation,
        now: u64,
        prealloc_step: u64,
    ) -> Result<CommitLog> {
        let dir = layout::commit_dir(root);
        storage
            .create_dir_all(&dir)
            .map_err(|e| Error::io("create directory", &dir, e))?;
        let path = layout::commit_path(root, generation);
        let mut file = storage
            .create_new(&path)
            .map_err(|e| Error::io("create commit log", &path, e))?;
        let flags = if prealloc_step > 0 {
            commit::FLAG_PREALLOCATED
        } else {
            0
        };
        let header = commit::encode_header(generation, now, flags);
        if let Err(e) = file.append(&header) {
            drop(file);
            let _ = storage.remove(&path);
            return Err(Error::io("write commit log header", &path, e));
        }
        let len = header.len() as u64;
        let mut log = CommitLog {
            generation,
            path,
            file,
            len,
            prealloc_step,
            prealloc_chunk: prealloc_chunk_first(prealloc_step),
            allocated: len,
            reserved: len,
            buf: Vec::with_capacity(64 << 10),
            unsynced: true,
            dir_unsynced: true,
            poisoned: None,
        };
        log.extend_for(0);
        Ok(log)
    }

    /// With preallocation, extends the file to the next multiple of the chunk when writing
    /// `pending` more bytes would pass its length, and doubles the chunk (up to the configured
    /// one) for the next time. A failure is no error (the write grows the file instead); the
    /// next try is at the next chunk boundary.
    fn extend_for(&mut self, pending: usize) {
        let chunk = self.prealloc_chunk;
        let needed = self.len + pending as u64;
        if chunk == 0 || needed < self.allocated {
            return;
        }
        let target = (needed / chunk + 1) * chunk;
        self.prealloc_chunk = chunk.saturating_mul(2).min(self.prealloc_step);
        match self.file.preallocate(target) {
            Ok(Preallocation::Reserved) => self.reserved = target,
            Ok(Preallocation::Sparse) => {}
            Err(e) => {
                tracing::debug!(path = %self.path.display(), error = %e, "commit log preallocation failed");
            }
        }
        self.allocated = target;
    }

    /// Whether every queued record fits inside the file's reserved extension (extending it
    /// first when they reach its end). Then they may wait for the next [`CommitLog::sync`],
    /// written there with one `write` for the whole group commit: that write can fail only
    /// with an I/O error, which poisons the log like a failed fsync, never with a full disk
    /// (which an append must be able to take back). `false` when poisoned.
    pub(crate) fn queue_reserved(&mut self) -> bool {
        if self.poisoned.is_some() {
            return false;
        }
        self.extend_for(self.buf.len());
        self.len + self.buf.len() as u64 <= self.reserved
    }

    /// Queues the record of one appended frame without writing anything (see
    /// [`CommitLog::queue_full`]).
    pub(crate) fn queue(&mut self, guild: GuildId, history_max: u32, key_id: KeyId, frame: &[u8]) {
        commit::encode_record(&mut self.buf, guild.0, history_max, key_id, frame);
    }

    /// Whether the queue is long enough to be written now.
    pub(crate) fn queue_full(&self) -> bool {
        self.buf.len() >= BUFFER_BYTES_MAX
    }

    /// Length of the queue of records not yet written (where an append's own records start,
    /// for [`CommitLog::write_through`]).
    pub(crate) fn queued(&self) -> usize {
        self.buf.len()
    }

    /// Bytes in the log, written or pending.
    pub(crate) fn len(&self) -> u64 {
        self.len + self.buf.len() as u64
    }

    /// Writes the pending records to the file (no fsync).
    pub(crate) fn write(&mut self) -> Result<()> {
        if let Some(op) = self.poisoned {
            return Err(self.poisoned_error(op));
        }
        if self.buf.is_empty() {
            return Ok(());
        }
        self.extend_for(self.buf.len());
        if let Err(e) = self.file.append(&self.buf) {
            // A partial record may be in the file: cut it back, keep the records queued, and
            // the next write retries them (disk full, then space again). If the cut fails,
            // nothing after the partial record could be recovered: poisoned. The cut drops the
            // preallocated zeros too: the next write extends the file again.
            if self.file.truncate(self.len).is_err() {
                self.poisoned = Some("write");
            }
            self.allocated = self.len;
            self.reserved = self.len;
            return Err(Error::io("append to", &self.path, e));
        }
        self.len += self.buf.len() as u64;
        self.buf.clear();
        self.unsynced = true;
        Ok(())
    }

    /// Writes the pending records for an append whose own records were queued after the first
    /// `queued` bytes (see [`CommitLog::queued`]): the records queued before them first (they
    /// lie inside the reserved extension, so only an I/O error can fail that write), then the
    /// append's. On a failure the append's records are taken back (never written, never
    /// queued) and the earlier ones stay queued, as after a failed [`CommitLog::write`]: a full
    /// disk fails the append that meets it, and no other.
    pub(crate) fn write_through(&mut self, queued: usize) -> Result<()> {
        let queued = queued.min(self.buf.len());
        let own = self.buf.split_off(queued);
        self.write()?;
        self.buf = own;
        let written = self.write();
        if written.is_err() {
            self.buf.clear();
        }
        written
    }

    /// Writes the pending records and makes the whole log durable.
    pub(crate) fn sync(&mut self, storage: &dyn Storage) -> Result<()> {
        self.write()?;
        if self.unsynced {
            let started = std::time::Instant::now();
            let synced = self.file.sync_data();
            metrics::counter!(crate::telemetry::FSYNCS_TOTAL).increment(1);
            metrics::histogram!(crate::telemetry::FSYNC_SECONDS)
                .record(started.elapsed().as_secs_f64());
            if let Err(e) = synced {
                self.poisoned = Some("fsync");
                return Err(Error::io("fsync", &self.path, e));
            }
            self.unsynced = false;
        }
        if self.dir_unsynced {
            // The new file's entry in commit/, commit/'s entry in the journal root, and the
            // root's entry in its parent (the root may have just been created).
            let commit_dir = self.path.parent().map(std::path::Path::to_path_buf);
            let root = commit_dir.as_deref().and_then(std::path::Path::parent);
            let parent = root
                .and_then(std::path::Path::parent)
                .filter(|p| !p.as_os_str().is_empty());
            for dir in [commit_dir.as_deref(), root, parent].into_iter().flatten() {
                if let Err(e) = storage.sync_dir(dir) {
                    self.poisoned = Some("fsync directory");
                    return Err(Error::io("fsync directory", dir, e));
                }
            }
            self.dir_unsynced = false;
        }
        Ok(())
    }

    /// The error every use of the log returns once it is poisoned.
    fn poisoned_error(&self, op: &'static str) -> Error {
        Error::Poisoned { guild: None, op }
    }
}

/// One record of an earlier process's commit log.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CommitEntry {
    pub(crate) seq: Seq,
    pub(crate) history_max: u32,
    /// The key sealing the frame's payload.
    pub(crate) key_id: KeyId,
    file: usize,
    frame_start: usize,
    frame_end: usize,
}

/// The commit logs found at open, indexed by guild.
#[derive(Debug, Default)]
pub(crate) struct CommitIndex {
    files: Vec<(Generation, PathBuf, Bytes)>,
    by_guild: HashMap<GuildId, Vec<CommitEntry>>,
    /// Damage in a commit log (not a torn tail): which guilds it hid is unknowable.
    pub(crate) damage: Option<Corruption>,
    /// Torn tails of commit logs (informational).
    pub(crate) torn: Vec<Corruption>,
    /// Files that are not commit logs.
    pub(crate) unknown: Vec<PathBuf>,
}

impl CommitIndex {
    /// Reads every commit log in the directory (each may end in a torn tail: each was the
    /// active log of some process).
    pub(crate) fn read(storage: &dyn Storage, root: &std::path::Path) -> Result<CommitIndex> {
        let dir = layout::commit_dir(root);
        let names = storage.list(&dir).map_err(|e| Error::io("list", &dir, e))?;
        let mut generations = Vec::new();
        let mut index = CommitIndex::default();
        for name in names {
            match layout::parse_commit_file(&name) {
                Some(g) => generations.push(g),
                None if name.ends_with(&format!(".{}", layout::TEMP_EXT)) => {}
                None => index.unknown.push(dir.join(name)),
            }
        }
        generations.sort_unstable();
        for generation in generations {
            let path = layout::commit_path(root, generation);
            let bytes = match storage.read(&path, COMMIT_FILE_LEN_MAX) {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                    index.damage.get_or_insert(
                        Corruption::new(&path, 0, CorruptionKind::FileTooLarge)
                            .detail(e.to_string()),
                    );
                    continue;
                }
                Err(e) => return Err(Error::io("read", &path, e)),
            };
            if commit::header_is_torn(&bytes) {
                // Created, then the process died before the header became durable.
                index
                    .torn
                    .push(Corruption::new(&path, 0, CorruptionKind::TornTail));
                index
                    .files
                    .push((generation, path, Bytes::Owned(Vec::new())));
                continue;
            }
            let scan = match commit::scan(&bytes, true) {
                Ok(s) => s,
                Err(f) => {
                    index.damage.get_or_insert(f.at(&path));
                    continue;
                }
            };
            match &scan.end {
                ScanEnd::Clean => {}
                ScanEnd::TornTail { offset } => {
                    index
                        .torn
                        .push(Corruption::new(&path, *offset, CorruptionKind::TornTail))
                }
                ScanEnd::Corrupt(f) => {
                    index.damage.get_or_insert(f.clone().at(&path));
                }
            }
            let file = index.files.len();
            for &offset in &scan.records {
                let at = offset as usize;
                let Ok(rec) = commit::decode_record(&bytes[at..]) else {
                    continue;
                };
                let frame_start = at + commit::RECORD_HEADER_LEN;
                index
                    .by_guild
                    .entry(GuildId(rec.guild))
                    .or_default()
                    .push(CommitEntry {
                        seq: rec.frame.seq,
                        history_max: rec.history_max,
                        key_id: rec.key_id,
                        file,
                        frame_start,
                        frame_end: frame_start + rec.frame_bytes.len(),
                    });
            }
            index.files.push((generation, path, bytes));
        }
        for entries in index.by_guild.values_mut() {
            // Files are read oldest first; keep the first record of each seq.
            entries.sort_by_key(|e| e.seq);
            entries.dedup_by_key(|e| e.seq);
        }
        Ok(index)
    }

    /// Fails when a record is sealed under a key `keys` does not hold (so that nothing is
    /// recovered, or written, without the keys the journal needs).
    ///
    /// # Errors
    /// [`Error::KeyMismatch`] naming the commit log and the key.
    pub(crate) fn check_keys(&self, keys: Option<&Keyring>) -> Result<()> {
        for entries in self.by_guild.values() {
            for e in entries {
                let path = || {
                    self.files
                        .get(e.file)
                        .map(|(_, p, _)| p.clone())
                        .unwrap_or_default()
                };
                if !e.key_id.is_plaintext() && !keys.is_some_and(|k| k.has(e.key_id)) {
                    return Err(crate::crypto::key_mismatch(keys, e.key_id, path()));
                }
            }
        }
        Ok(())
    }

    /// The guild's records, sorted by seq.
    pub(crate) fn entries(&self, guild: GuildId) -> &[CommitEntry] {
        self.by_guild.get(&guild).map_or(&[], Vec::as_slice)
    }

    /// The guild frame bytes of a record.
    pub(crate) fn frame(&self, entry: &CommitEntry) -> &[u8] {
        self.files
            .get(entry.file)
            .and_then(|(_, _, b)| b.get(entry.frame_start..entry.frame_end))
            .unwrap_or(&[])
    }

    /// Guilds mentioned by any commit log.
    pub(crate) fn guilds(&self) -> Vec<GuildId> {
        let mut g: Vec<GuildId> = self.by_guild.keys().copied().collect();
        g.sort_unstable();
        g
    }

    /// The largest generation found ([`Generation::NONE`] when none).
    pub(crate) fn generation_max(&self) -> Generation {
        self.files
            .iter()
            .map(|(g, _, _)| *g)
            .max()
            .unwrap_or(Generation::NONE)
    }

    /// The files read.
    pub(crate) fn paths(&self) -> impl Iterator<Item = &PathBuf> {
        self.files.iter().map(|(_, p, _)| p)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_first_chunk_is_a_sixteenth_of_the_configured_one_within_4_and_64_kib() {
        const KIB: u64 = 1 << 10;
        for (step, first) in [
            (0, 0),
            (4 * KIB, 4 * KIB),
            (16 * KIB, 4 * KIB),
            (100 * KIB, 6 * KIB + 256),
            (1024 * KIB, 64 * KIB),
            (64 << 20, 64 * KIB),
        ] {
            assert_eq!(super::prealloc_chunk_first(step), first, "step {step}");
        }
    }
}

//! Repair and inherited data: what an earlier process left behind. Recovery restores, in
//! memory, the events an earlier process's commit log holds but its segments lost; a writer
//! then writes those segments back, cuts torn tails and removes leftovers; and a guild
//! recovered after an unclean shutdown has its files made durable (rewritten where an
//! earlier fsync may have failed) before anything new builds on them.

use std::io;
use std::path::{Path, PathBuf};

use super::recover::{Scanned, ScannedSegment};
use super::{GuildLog, Journal, SEGMENT_FILE_LEN_MAX};
use crate::clock::now_unix_ms;
use crate::crypto::KeyId;
use crate::error::{Corruption, CorruptionKind, Error, Result};
use crate::format::segment::{self, ScanEnd, SegmentHeader, SegmentScan};
use crate::ids::{GuildId, Seq};
use crate::layout;
use crate::storage::{self, Bytes, Storage};

impl Journal {
    /// Makes a guild recovered after an unclean shutdown durable before anything builds on its
    /// files (see `make_inherited_durable`); nothing to do for other guilds.
    pub(super) fn settle_inherited(&mut self, guild: GuildId) -> Result<()> {
        let from = self.recovered.entries(guild).first().map(|e| e.seq);
        match self.guilds.get_mut(&guild) {
            Some(log) if log.inherited && log.poisoned.is_none() => {
                make_inherited_durable(&self.root, self.storage.as_ref(), guild, log, from)
            }
            _ => Ok(()),
        }
    }

    /// Cuts torn tails, removes a segment whose header never became durable and leftover
    /// temporary files. Only what recovery has shown to hold no acknowledged event.
    pub(super) fn repair(&self, guild: GuildId, scanned: &Scanned) -> Result<()> {
        let dir = layout::guild_dir(&self.root, guild);
        let mut dir_changed = false;
        for seg in &scanned.segments {
            if seg.restored {
                self.storage
                    .create_dir_all(&dir)
                    .map_err(|e| Error::io("create directory", &dir, e))?;
                storage::write_atomic(self.storage.as_ref(), &seg.path, &seg.bytes)
                    .map_err(|(op, p, e)| Error::io(op, p, e))?;
            } else if seg.torn_header {
                self.storage
                    .remove(&seg.path)
                    .map_err(|e| Error::io("remove torn segment", &seg.path, e))?;
                dir_changed = true;
            } else if let Some(SegmentScan {
                end: ScanEnd::TornTail { offset },
                ..
            }) = &seg.scan
            {
                self.storage
                    .truncate(&seg.path, *offset)
                    .map_err(|e| Error::io("truncate torn tail of", &seg.path, e))?;
            }
        }
        for path in &scanned.obsolete {
            match self.storage.remove(path) {
                Ok(()) => dir_changed = true,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("remove replaced segment", path, e)),
            }
        }
        for tmp in &scanned.temps {
            match self.storage.remove(tmp) {
                Ok(()) => dir_changed = true,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("remove temporary file", tmp, e)),
            }
        }
        if dir_changed {
            self.storage
                .sync_dir(&dir)
                .map_err(|e| Error::io("fsync directory", &dir, e))?;
            let parent = layout::guilds_dir(&self.root);
            self.storage
                .sync_dir(&parent)
                .map_err(|e| Error::io("fsync directory", &parent, e))?;
        }
        Ok(())
    }

    /// Puts back, in memory, the events an earlier process's commit log holds for `guild` but
    /// its segments lost (an unsynced tail cut by a power loss, a segment whose header never
    /// became durable, damage past the last durable point of the active segment). The writer
    /// then writes the restored segment to disk ([`Journal::repair`]).
    pub(super) fn restore_from_commit(&self, guild: GuildId, scanned: &mut Scanned) -> Result<()> {
        let entries = self.recovered.entries(guild);
        let Some(last_entry) = entries.last() else {
            return Ok(());
        };
        scanned.commit_head = last_entry.seq;
        // The last segment whose header is readable, and what it holds consecutively.
        let readable = scanned
            .segments
            .iter()
            .rposition(|s| s.scan.is_some() && !s.torn_header);
        // Damage before the last segment is an unsynced tail too when the commit log holds
        // every event from the damaged point on: no fsync orders the write-back of two files,
        // so a newer segment may reach the disk while an older one's tail (sealed for a
        // snapshot job whose fsync was still owed) does not. Restored from there on.
        let early = scanned
            .segments
            .iter()
            .position(|s| s.fault.is_some() && !s.torn_header)
            .map(|i| match scanned.segments[i].scan {
                Some(_) => Some(i),
                None => i.checked_sub(1),
            });
        // Without a readable segment below, the base is the newest snapshot that decodes: a
        // damaged one (its name alone) holds nothing, and trusting its name would drop the
        // segments that do hold the events after the last valid base.
        // Decoded at most once, and only on the paths that need it.
        let mut newest_valid: Option<Seq> = None;
        let mut newest_valid_snapshot = || -> Result<Seq> {
            if let Some(seq) = newest_valid {
                return Ok(seq);
            }
            let seq = self.newest_valid_snapshot(guild, &scanned.snapshots)?;
            newest_valid = Some(seq);
            Ok(seq)
        };
        let snapshot_held = if early == Some(None) || readable.is_none() {
            newest_valid_snapshot()?
        } else {
            0
        };
        let held_by = |usable: Option<usize>| match usable {
            Some(i) => scanned.segments[i]
                .scan
                .as_ref()
                .map_or(0, |sc| sc.last_seq),
            None => snapshot_held,
        };
        let covers = |seq: Seq| entries.iter().any(|e| e.seq == seq);
        let early = early.filter(|&usable| covers(held_by(usable) + 1));
        let usable = early.unwrap_or(readable);
        let mut held = held_by(usable);
        if last_entry.seq > held && !covers(held + 1) {
            // A valid snapshot past the usable segment's end (its tail lost, the snapshot
            // holding it) is where the commit log's events may continue.
            let snapshot = newest_valid_snapshot()?;
            if snapshot > held && covers(snapshot + 1) {
                held = snapshot;
            }
        }
        let Some(start) = entries.iter().position(|e| e.seq > held) else {
            return Ok(());
        };
        if entries[start].seq != held + 1 {
            // A gap the commit log cannot fill: recovery will say which event is missing.
            return Ok(());
        }
        // The consecutive events after `held`, in runs of one key each: a segment's frames are
        // all sealed under the key its header names.
        let mut chunks: Vec<(KeyId, Seq, u32, Vec<u8>)> = Vec::new();
        for (next, e) in (held + 1..).zip(&entries[start..]) {
            if e.seq != next {
                break;
            }
            match chunks.last_mut() {
                Some(c) if c.0 == e.key_id => {}
                _ => chunks.push((e.key_id, e.seq, e.history_max, Vec::new())),
            }
            if let Some(c) = chunks.last_mut() {
                c.3.extend_from_slice(self.recovered.frame(e));
            }
        }
        // Segments after the usable one hold nothing readable: they are replaced.
        let cut = usable.map_or(0, |i| i + 1);
        let dropped: Vec<ScannedSegment> = scanned.segments.drain(cut..).collect();
        // The usable segment is continued when it ends at `held` under the first run's key.
        let continued = usable.filter(|&i| {
            scanned.segments[i].scan.as_ref().is_some_and(|sc| {
                sc.last_seq == held && chunks.first().is_some_and(|c| c.0 == sc.header.key_id)
            })
        });
        let stepped_over: Vec<Corruption> = dropped
            .iter()
            .chain(continued.map(|i| &scanned.segments[i]))
            .filter_map(stepped_over_finding)
            .collect();
        scanned.replaced.extend(stepped_over);
        let mut restored: Vec<ScannedSegment> = Vec::with_capacity(chunks.len());
        for (n, (key_id, first, history_max, frames)) in chunks.into_iter().enumerate() {
            let (path, mut bytes) = match continued {
                Some(i) if n == 0 => {
                    let seg = &scanned.segments[i];
                    let valid = seg.scan.as_ref().map_or(0, |sc| sc.valid_len) as usize;
                    (
                        seg.path.clone(),
                        seg.bytes.get(..valid).unwrap_or(&[]).to_vec(),
                    )
                }
                _ => {
                    let header = segment::encode_header(&SegmentHeader {
                        guild: guild.0,
                        first_seq: first,
                        history_max,
                        created_unix_ms: now_unix_ms(),
                        key_id,
                    });
                    (
                        layout::segment_path(&self.root, guild, first),
                        header.to_vec(),
                    )
                }
            };
            bytes.extend_from_slice(&frames);
            let first_seq = segment::decode_header(&bytes).map_or(first, |h| h.first_seq);
            let scan = segment::scan(&bytes, true).ok();
            restored.push(ScannedSegment {
                first_seq,
                path,
                bytes: Bytes::Owned(bytes),
                active: false,
                torn_header: false,
                scan,
                fault: None,
                restored: true,
            });
        }
        for seg in dropped {
            if restored.iter().all(|r| r.path != seg.path) {
                scanned.obsolete.push(seg.path);
            }
        }
        if continued.is_some() {
            scanned.segments.pop();
        }
        for seg in &mut scanned.segments {
            seg.active = false;
        }
        if let Some(last) = restored.last_mut() {
            last.active = true;
        }
        scanned.segments.extend(restored);
        Ok(())
    }

    /// The sequence number of the newest of `snapshots` that decodes and checks out (0: none).
    fn newest_valid_snapshot(&self, guild: GuildId, snapshots: &[Seq]) -> Result<Seq> {
        for &seq in snapshots.iter().rev() {
            if self.load_snapshot(guild, seq)?.is_ok() {
                return Ok(seq);
            }
        }
        Ok(0)
    }
}

/// Makes every segment of a guild recovered after an unclean shutdown durable, then its
/// directory, `guilds/` and the root, so the events it holds are durable before anything new
/// builds on them. Once per guild and process.
///
/// Segments holding events from `rewritten_from` on (the first event an earlier process's
/// commit log holds for the guild: written since that process's last commit-log retirement) are
/// *rewritten* into fresh files (`write_atomic`), not just fsynced. The earlier process may
/// have seen an fsync of such a segment fail, and the kernel then drops the dirty pages while
/// still serving them from the cache, so a later fsync of the same file succeeds without
/// writing them (fsyncgate). Rewritten, their bytes are new dirty pages that the fsync of the
/// fresh file does write. Older segments were made durable by a retirement that succeeded. A
/// segment that holds no event (only a header, written before any commit record) is rewritten
/// as well.
fn make_inherited_durable(
    root: &Path,
    storage: &dyn Storage,
    guild: GuildId,
    log: &mut GuildLog,
    rewritten_from: Option<Seq>,
) -> Result<()> {
    for meta in &log.segments {
        let path = layout::segment_path(root, guild, meta.first_seq);
        // A segment holding no event yet is rewritten too: its header is the one thing written
        // to a segment without a commit record (a new segment is created before its first
        // frame's record is queued).
        let empty = meta.last_seq < meta.first_seq;
        let rewrite = empty || rewritten_from.is_some_and(|from| meta.last_seq >= from);
        let durable = if rewrite {
            rewrite_file(storage, &path, meta.len)
        } else {
            storage
                .open_append(&path)
                .and_then(|mut file| file.sync_data())
                .map_err(|e| ("fsync", path.clone(), e))
        };
        match durable {
            Ok(()) => {}
            Err((_, _, e)) if e.kind() == io::ErrorKind::NotFound => {}
            Err((op, at, e)) => {
                log.poisoned = Some("fsync");
                return Err(Error::io(op, at, e));
            }
        }
    }
    let dir = layout::guild_dir(root, guild);
    for dir in [dir.as_path(), &layout::guilds_dir(root), root] {
        match storage.sync_dir(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                log.poisoned = Some("fsync directory");
                return Err(Error::io("fsync directory", dir, e));
            }
        }
    }
    log.inherited = false;
    Ok(())
}

/// Rewrites the first `len` bytes of `path` into a fresh file of the same name (temporary
/// file, fsync, rename, fsync directory).
fn rewrite_file(
    storage: &dyn Storage,
    path: &Path,
    len: u64,
) -> std::result::Result<(), (&'static str, PathBuf, io::Error)> {
    let bytes = storage
        .read(path, SEGMENT_FILE_LEN_MAX)
        .map_err(|e| ("read", path.to_path_buf(), e))?;
    let keep = usize::try_from(len).unwrap_or(usize::MAX).min(bytes.len());
    storage::write_atomic(storage, path, &bytes[..keep])
}

/// What a commit-log restore steps over in a segment it replaces, as a torn-tail finding (the
/// commit log holds every event from that point on, so nothing is lost): a header that never
/// became durable, damage past the last synced point, or a torn tail. `None` for a segment
/// that is replaced whole but read cleanly.
fn stepped_over_finding(seg: &ScannedSegment) -> Option<Corruption> {
    const HELD: &str = "the commit log holds every event from here on";
    if seg.torn_header {
        return Some(
            Corruption::new(&seg.path, 0, CorruptionKind::TornTail)
                .detail(format!("segment header never became durable; {HELD}")),
        );
    }
    if let Some(fault) = &seg.fault {
        let mut what = fault.kind.description().to_string();
        if !fault.detail.is_empty() {
            what = format!("{what} ({})", fault.detail);
        }
        let mut c = Corruption::new(&seg.path, fault.offset, CorruptionKind::TornTail)
            .detail(format!("{what}, in a tail never synced; {HELD}"));
        c.expected = fault.expected;
        c.actual = fault.actual;
        return Some(c);
    }
    match &seg.scan {
        Some(SegmentScan {
            end: ScanEnd::TornTail { offset },
            ..
        }) => Some(Corruption::new(
            &seg.path,
            *offset,
            CorruptionKind::TornTail,
        )),
        _ => None,
    }
}

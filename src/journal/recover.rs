//! Scan and rebuild (recovery): listing and checking a guild's files, the recovery decision
//! ([`crate::recovery`]) over what was found, and the replay of the log onto the chosen base;
//! the reads built on it (`state`, `state_at`, `state_from_files`) and loading a guild into
//! memory on first use.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use super::SEGMENT_FILE_LEN_MAX;
use super::{unreachable_missing_guild, GuildLog, GuildState, Journal, OpenMode, SegmentMeta};
use crate::crypto::{KeyId, Keyring};
use crate::error::{Corruption, CorruptionKind, Error, Result};
use crate::format::segment::{self, ScanEnd, SegmentScan};
use crate::format::{self, frame, snapshot};
use crate::ids::{GuildId, Seq};
use crate::layout::{self, GuildFile};
use crate::recovery::{self, Decision, Found, Run, SnapshotFound};
use crate::session::{self, Event, State, Track};
use crate::storage::Bytes;

/// Everything read from one guild directory.
pub(super) struct Scanned {
    pub(super) segments: Vec<ScannedSegment>,
    pub(super) snapshots: Vec<Seq>,
    pub(super) temps: Vec<PathBuf>,
    pub(super) unknown: Vec<PathBuf>,
    /// The newest seq an earlier process's commit log holds for the guild (0: none).
    pub(super) commit_head: Seq,
    /// Files made obsolete by a commit-log restore (a segment whose header never became
    /// durable, replaced under another name).
    pub(super) obsolete: Vec<PathBuf>,
    /// What a commit-log restore stepped over, as torn-tail findings with file and offset (a
    /// header that never became durable, a damaged or torn unsynced tail whose events the
    /// commit log holds): nothing is lost, but `verify` reports each one.
    pub(super) replaced: Vec<Corruption>,
}

pub(super) struct ScannedSegment {
    pub(super) first_seq: Seq,
    pub(super) path: PathBuf,
    pub(super) bytes: Bytes,
    pub(super) active: bool,
    /// The file holds nothing: the newest segment's header never became durable, or a segment
    /// newer than the active one holds no frame (a writer removes it).
    pub(super) torn_header: bool,
    pub(super) scan: Option<SegmentScan>,
    /// Header damage, mid-log damage, or a gap after this segment.
    pub(super) fault: Option<Corruption>,
    /// `bytes` were restored from the commit log and differ from the file.
    pub(super) restored: bool,
}

impl ScannedSegment {
    fn held(&self) -> Option<Run> {
        let scan = self.scan.as_ref()?;
        (scan.frame_count > 0).then_some(Run {
            first: scan.header.first_seq,
            last: scan.last_seq,
        })
    }
}

impl Journal {
    /// The guild's current state (recovering the guild first if this is its first use).
    ///
    /// # Errors
    /// A recovery error: [`Error::Corrupt`] naming the file and offset when the state cannot be
    /// rebuilt exactly, or [`Error::Io`].
    pub fn state(&mut self, guild: GuildId) -> Result<&GuildState> {
        self.load_settled(guild)?;
        self.guilds
            .get(&guild)
            .map(|log| &log.current)
            .ok_or_else(unreachable_missing_guild)
    }

    /// Damage that recovery of `guild` stepped around without losing exactness (a damaged newer
    /// snapshot, a damaged segment that a snapshot covers) and torn tails it cut off.
    ///
    /// # Errors
    /// As [`Journal::state`].
    pub fn recovery_findings(&mut self, guild: GuildId) -> Result<&[Corruption]> {
        self.load_settled(guild)?;
        self.guilds
            .get(&guild)
            .map(|log| log.findings.as_slice())
            .ok_or_else(unreachable_missing_guild)
    }

    /// The guild's state as of event `seq`, rebuilt from the newest snapshot at or before `seq`
    /// and the log after it.
    ///
    /// # Errors
    /// [`Error::SeqAhead`] past the last event; [`Error::Compacted`] when compaction dropped
    /// what is needed; recovery errors as for [`Journal::state`].
    pub fn state_at(&mut self, guild: GuildId, seq: Seq) -> Result<GuildState> {
        self.read_settled(
            |j| {
                j.load(guild)?;
                let current = j
                    .guilds
                    .get(&guild)
                    .map(|log| log.current.clone())
                    .ok_or_else(unreachable_missing_guild)?;
                if seq > current.seq {
                    return Err(Error::SeqAhead {
                        guild,
                        seq,
                        last_seq: current.seq,
                    });
                }
                if seq == current.seq {
                    return Ok(current);
                }
                j.flush_buffers(Some(guild))?;
                let scanned = j.read_guild(guild)?;
                let (state, _) = j.rebuild(guild, &scanned, Some(seq))?;
                Ok(state)
            },
            |_| None,
        )
    }

    /// The guild's newest state rebuilt from its files alone (snapshot and log, as a fresh
    /// recovery would), not from memory: buffered frames are written to the segment first.
    /// A restore ([`crate::restore`]) uses it to check that what reached the files is what
    /// it appended.
    ///
    /// # Errors
    /// Recovery errors ([`Error::Corrupt`], [`Error::Io`]) and a poisoned guild's write errors.
    pub fn state_from_files(&mut self, guild: GuildId) -> Result<GuildState> {
        let seq = self.state(guild)?.seq;
        self.flush_buffers(Some(guild))?;
        let scanned = self.read_guild(guild)?;
        let (state, _) = self.rebuild(guild, &scanned, Some(seq))?;
        Ok(state)
    }

    /// Fails unless a file sealed under `key_id` can be read with the keys given.
    fn check_key(&self, path: &Path, key_id: KeyId) -> Result<()> {
        crate::crypto::require_key(self.config.keys.as_ref(), key_id, path)
    }

    /// [`Journal::load`], for a reader until it settles (see `live.rs`).
    pub(super) fn load_settled(&mut self, guild: GuildId) -> Result<()> {
        self.read_settled(|j| j.load(guild), |_| None)
    }

    /// Recovers `guild` into memory if it is not there yet.
    pub(super) fn load(&mut self, guild: GuildId) -> Result<()> {
        if self.guilds.contains_key(&guild) {
            return Ok(());
        }
        let _span = tracing::info_span!("reprise.recovery", guild = guild.0).entered();
        let started = std::time::Instant::now();
        let scanned = self.read_guild(guild)?;
        let (mut current, findings) = self.rebuild(guild, &scanned, None)?;
        // The fold grows the queue's vectors by doubling: an idle guild kept in memory after
        // recovery holds no spare capacity (measured: 9 entries in a capacity of 16).
        current.state.queue.upcoming.shrink_to_fit();
        current.state.queue.history.shrink_to_fit();
        if self.mode == OpenMode::ReadWrite {
            self.repair(guild, &scanned)?;
        }
        // A segment whose every event a snapshot covers was sealed for that snapshot (perhaps
        // by an earlier process): new events start a new segment, so retention can drop it.
        let newest_snapshot = scanned.snapshots.last().copied().unwrap_or(0);
        let segments = scanned
            .segments
            .iter()
            .filter(|s| !s.torn_header)
            .map(|s| SegmentMeta {
                first_seq: s.first_seq,
                last_seq: s
                    .scan
                    .as_ref()
                    .map_or(s.first_seq.saturating_sub(1), |sc| sc.last_seq),
                len: s
                    .scan
                    .as_ref()
                    .map_or(s.bytes.len() as u64, |sc| sc.valid_len),
                appendable: s.restored
                    || s.scan.as_ref().is_some_and(|sc| match sc.end {
                        ScanEnd::Clean => true,
                        ScanEnd::TornTail { .. } => self.mode == OpenMode::ReadWrite,
                        ScanEnd::Corrupt(_) => false,
                    }),
                sealed: s
                    .scan
                    .as_ref()
                    .is_some_and(|sc| sc.frame_count > 0 && sc.last_seq <= newest_snapshot),
                key_id: s
                    .scan
                    .as_ref()
                    .map_or(KeyId::PLAINTEXT, |sc| sc.header.key_id),
            })
            .collect::<Vec<_>>();
        // `collect` through a filter starts at a capacity of 4: an idle guild (one segment)
        // keeps exactly what it holds (measured: 128 → 32 bytes per guild).
        let mut segments = segments;
        segments.shrink_to_fit();
        // After an unclean shutdown (commit logs were left behind), an earlier process may have
        // left this guild's files written but not durable: they are made durable before the
        // first new event of the guild is acknowledged (so no acknowledgement rests on events
        // that are durable nowhere), and by the next commit-log retirement at the latest.
        let has_files = !scanned.segments.is_empty() || !scanned.snapshots.is_empty();
        let inherited = self.mode == OpenMode::ReadWrite
            && has_files
            && (scanned.commit_head > 0 || self.unclean);
        let log = GuildLog {
            current,
            segments,
            snapshots: scanned.snapshots.clone(),
            active: None,
            pending: Vec::new(),
            last_used: 0,
            unsynced: inherited,
            dir_unsynced: inherited,
            parent_unsynced: inherited,
            events_since_snapshot: 0,
            bytes_since_snapshot: 0,
            poisoned: None,
            owed_seals: Vec::new(),
            inherited,
            findings,
        };
        self.guilds.insert(guild, Box::new(log));
        metrics::histogram!(crate::telemetry::RECOVERY_SECONDS)
            .record(started.elapsed().as_secs_f64());
        Ok(())
    }

    /// Lists and checks a guild's files (no decision, no repair).
    pub(super) fn read_guild(&self, guild: GuildId) -> Result<Scanned> {
        let dir = layout::guild_dir(&self.root, guild);
        let names = self
            .storage
            .list(&dir)
            .map_err(|e| Error::io("list", &dir, e))?;
        let mut seg_seqs = Vec::new();
        let mut snapshots = Vec::new();
        let mut temps = Vec::new();
        let mut unknown = Vec::new();
        for name in &names {
            match layout::parse_guild_file(name) {
                GuildFile::Segment(s) => seg_seqs.push(s),
                GuildFile::Snapshot(s) => snapshots.push(s),
                GuildFile::Temp => temps.push(dir.join(name)),
                GuildFile::Unknown => unknown.push(dir.join(name)),
            }
        }
        seg_seqs.sort_unstable();
        snapshots.sort_unstable();
        // The active segment is the newest one that holds a frame, when the one before a
        // frameless newest segment does not end cleanly: a newer one holding none (its header
        // torn, or a header and nothing valid after it) was created by appends of which none
        // was acknowledged through it, and the directory entry may have reached the disk before
        // the data of the segment sealed before it (a snapshot job's fsync still owed): that
        // segment's damaged tail is then a torn tail too, and such a newer segment proves
        // nothing about how far the log went.
        let last = seg_seqs.len().saturating_sub(1);
        let commit_first = self.recovered.entries(guild).first().map(|e| e.seq);
        let covered_by_commit = |first_seq: Seq| commit_first.is_some_and(|c| c <= first_seq);
        // Newest first. A segment may be cut only while it is a writer's active one, the
        // newest holding a frame (a torn tail cut when the writer first loads the guild, a
        // failed write taken back); a page mapped past a cut is a SIGBUS, not an error. So the
        // newest is read, not mapped, and a reader (beside a live writer) reads an older one
        // too unless the segment after it holds a frame.
        let mut reads = Vec::with_capacity(seg_seqs.len());
        let mut next_holds_frame = false;
        for (i, &first_seq) in seg_seqs.iter().enumerate().rev() {
            let path = layout::segment_path(&self.root, guild, first_seq);
            let read = if i == last || self.mode == OpenMode::ReadOnly && !next_holds_frame {
                self.storage.read(&path, SEGMENT_FILE_LEN_MAX)
            } else {
                self.storage.map(&path, SEGMENT_FILE_LEN_MAX)
            };
            next_holds_frame = read.as_ref().is_ok_and(|b| {
                b.get(segment::HEADER_LEN..)
                    .is_some_and(|frames| frame::decode(frames).is_ok())
            });
            reads.push((first_seq, path, read));
        }
        reads.reverse();
        // A first frame that decodes settles it without a scan (the scan below reads the
        // active segment anyway): the segment holds a frame, or is damaged.
        let holds_no_frame = |first_seq: Seq, bytes: &[u8]| {
            segment::header_is_torn(bytes)
                || covered_by_commit(first_seq) && segment::header_is_unreadable_and_empty(bytes)
                || bytes
                    .get(segment::HEADER_LEN..)
                    .is_some_and(|frames| frame::decode(frames).is_err())
                    && segment::scan(bytes, true).is_ok_and(|sc| {
                        sc.frame_count == 0 && !matches!(sc.end, ScanEnd::Corrupt(_))
                    })
        };
        // Only past a segment whose predecessor does not end cleanly: behind a clean one, a
        // frameless newest segment is the ordinary start of the next segment (its name says
        // where the log stands, and the commit log may continue it).
        let ends_cleanly = |bytes: &[u8]| {
            segment::scan(bytes, false).is_ok_and(|sc| matches!(sc.end, ScanEnd::Clean))
        };
        let mut active_at = last;
        while active_at > 0 {
            match (&reads[active_at], &reads[active_at - 1]) {
                ((first_seq, _, Ok(bytes)), (_, _, Ok(before)))
                    if holds_no_frame(*first_seq, bytes) && !ends_cleanly(before) =>
                {
                    active_at -= 1;
                }
                _ => break,
            }
        }
        if active_at != last {
            // Read, not mapped: a writer may cut its torn tail.
            let (_, path, read) = &mut reads[active_at];
            *read = self.storage.read(path, SEGMENT_FILE_LEN_MAX);
        }
        let mut segments: Vec<ScannedSegment> = Vec::with_capacity(seg_seqs.len());
        for (i, (first_seq, path, read)) in reads.into_iter().enumerate() {
            let active = i == active_at;
            let bytes = match read {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                    segments.push(ScannedSegment {
                        first_seq,
                        path: path.clone(),
                        bytes: Bytes::Owned(Vec::new()),
                        active,
                        torn_header: false,
                        scan: None,
                        restored: false,
                        fault: Some(
                            Corruption::new(&path, 0, CorruptionKind::FileTooLarge)
                                .detail(e.to_string()),
                        ),
                    });
                    continue;
                }
                Err(e) => return Err(Error::io("read", &path, e)),
            };
            let mut seg = ScannedSegment {
                first_seq,
                path,
                bytes,
                active,
                torn_header: false,
                scan: None,
                fault: None,
                restored: false,
            };
            if i > active_at
                || active
                    && (segment::header_is_torn(&seg.bytes)
                        || covered_by_commit(first_seq)
                            && segment::header_is_unreadable_and_empty(&seg.bytes))
            {
                seg.torn_header = true;
            } else {
                match segment::scan(&seg.bytes, active) {
                    Err(f) => seg.fault = Some(f.at(&seg.path)),
                    Ok(scan) if scan.header.guild != guild.0 => {
                        seg.fault = Some(
                            Corruption::new(
                                &seg.path,
                                segment::GUILD_OFFSET as u64,
                                CorruptionKind::HeaderMismatch,
                            )
                            .values(guild.0, scan.header.guild),
                        );
                    }
                    Ok(scan) if scan.header.first_seq != first_seq || first_seq == 0 => {
                        seg.fault = Some(
                            Corruption::new(
                                &seg.path,
                                segment::FIRST_SEQ_OFFSET as u64,
                                CorruptionKind::HeaderMismatch,
                            )
                            .values(first_seq, scan.header.first_seq),
                        );
                    }
                    Ok(scan) => {
                        self.check_key(&seg.path, scan.header.key_id)?;
                        if let ScanEnd::Corrupt(f) = &scan.end {
                            seg.fault = Some(f.clone().at(&seg.path));
                        }
                        seg.scan = Some(scan);
                    }
                }
            }
            // Continuity: this segment must start right after the previous one ends.
            if let Some(prev) = segments.last_mut() {
                if let (Some(p), None) = (&prev.scan, &prev.fault) {
                    if p.last_seq + 1 != first_seq && !seg.torn_header {
                        prev.fault = Some(
                            Corruption::new(&prev.path, p.valid_len, CorruptionKind::SequenceGap)
                                .values(p.last_seq + 1, first_seq)
                                .detail(format!(
                                    "the next segment {} starts at seq {first_seq}",
                                    seg.path.display()
                                )),
                        );
                    }
                }
            }
            segments.push(seg);
        }
        let mut scanned = Scanned {
            segments,
            snapshots,
            temps,
            unknown,
            commit_head: 0,
            obsolete: Vec::new(),
            replaced: Vec::new(),
        };
        self.restore_from_commit(guild, &mut scanned)?;
        Ok(scanned)
    }

    pub(super) fn load_snapshot(
        &self,
        guild: GuildId,
        seq: Seq,
    ) -> Result<std::result::Result<State, Corruption>> {
        let path = layout::snapshot_path(&self.root, guild, seq);
        let bytes = match self.storage.read(&path, snapshot::FILE_LEN_MAX) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                return Ok(Err(
                    Corruption::new(&path, 0, CorruptionKind::FileTooLarge).detail(e.to_string())
                ))
            }
            Err(e) => return Err(Error::io("read", &path, e)),
        };
        if let Ok(header) = snapshot::decode_header(&bytes) {
            self.check_key(&path, header.key_id)?;
        }
        Ok(match snapshot::decode(&bytes, self.config.keys.as_ref()) {
            Err(f) => Err(f.at(&path)),
            Ok((h, _)) if h.guild != guild.0 => Err(Corruption::new(
                &path,
                snapshot::GUILD_OFFSET as u64,
                CorruptionKind::HeaderMismatch,
            )
            .values(guild.0, h.guild)),
            Ok((h, _)) if h.seq != seq => Err(Corruption::new(
                &path,
                snapshot::SEQ_OFFSET as u64,
                CorruptionKind::HeaderMismatch,
            )
            .values(seq, h.seq)),
            Ok((_, state)) => Ok(state),
        })
    }

    /// Decides (see [`crate::recovery`]) and rebuilds the state at `target` (newest if `None`).
    /// Returns the state and the damage it stepped around.
    pub(super) fn rebuild(
        &self,
        guild: GuildId,
        scanned: &Scanned,
        target: Option<Seq>,
    ) -> Result<(GuildState, Vec<Corruption>)> {
        // Damage in a commit log may hide events of any guild.
        if let Some(damage) = &self.recovered.damage {
            return Err(Error::from(damage.clone()));
        }
        // Damage in the active segment hides how far the log went: the newest state is
        // unknowable, whatever the snapshots say.
        if let Some(active) = scanned.segments.iter().rev().find(|s| !s.torn_header) {
            if let (true, Some(fault)) = (active.active, &active.fault) {
                return Err(Error::from(fault.clone()));
            }
        }
        let runs = runs_of(&scanned.segments);
        let mut findings: Vec<Corruption> = Vec::new();
        for seg in &scanned.segments {
            if let Some(f) = &seg.fault {
                findings.push(f.clone());
            }
            if let Some(SegmentScan {
                end: ScanEnd::TornTail { offset },
                ..
            }) = &seg.scan
            {
                findings.push(Corruption::new(
                    &seg.path,
                    *offset,
                    CorruptionKind::TornTail,
                ));
            }
        }
        // Check snapshots newest first; older ones only while no feasible base is known
        // (an older valid snapshot can never beat a newer feasible one).
        let mut checked: Vec<SnapshotFound> = Vec::new();
        let mut states: HashMap<Seq, State> = HashMap::new();
        let mut pending: Vec<Seq> = scanned.snapshots.clone();
        let decision = loop {
            let found = Found {
                snapshots: &checked,
                runs: &runs,
                claimed: claimed_of(&scanned.segments).max(scanned.commit_head),
            };
            let decision = recovery::decide(&found, target);
            let settled = match decision {
                Decision::Replay { base, .. } => {
                    // Unchecked snapshots newer than the base could be better bases.
                    pending.last().is_none_or(|&s| s <= base)
                }
                _ => pending.is_empty(),
            };
            if settled {
                break decision;
            }
            let Some(seq) = pending.pop() else {
                break decision;
            };
            match self.load_snapshot(guild, seq)? {
                Ok(state) => {
                    checked.push(SnapshotFound { seq, valid: true });
                    states.insert(seq, state);
                }
                Err(c) => {
                    checked.push(SnapshotFound { seq, valid: false });
                    findings.push(c);
                }
            }
        };
        let (base, target_seq) = match decision {
            Decision::Replay { base, target } => (base, target),
            Decision::Compacted { oldest } => {
                let seq = target.unwrap_or(0);
                return Err(Error::Compacted {
                    guild,
                    seq,
                    oldest_seq: oldest.unwrap_or(seq + 1),
                    held: format!("{:?}", scanned.snapshots),
                });
            }
            Decision::Broken { missing } => {
                return Err(Error::from(explain_broken(
                    &self.root, guild, scanned, &findings, missing,
                )));
            }
        };
        let mut state = match states.remove(&base) {
            Some(s) if base > 0 => s,
            _ => State::new(self.genesis_history_max(scanned)),
        };
        replay(
            &scanned.segments,
            &mut state,
            base,
            target_seq,
            guild,
            self.config.keys.as_ref(),
        )?;
        Ok((
            GuildState {
                guild,
                seq: target_seq,
                state,
            },
            findings,
        ))
    }

    pub(super) fn genesis_history_max(&self, scanned: &Scanned) -> u32 {
        scanned
            .segments
            .iter()
            .filter_map(|s| s.scan.as_ref())
            .find(|s| s.header.first_seq == 1)
            .map_or(self.config.history_max, |s| s.header.history_max)
    }
}

/// The maximal runs of consecutive events held by the segments.
pub(super) fn runs_of(segments: &[ScannedSegment]) -> Vec<Run> {
    let mut runs: Vec<Run> = Vec::new();
    for run in segments.iter().filter_map(ScannedSegment::held) {
        match runs.last_mut() {
            Some(prev) if prev.last + 1 == run.first => prev.last = run.last,
            _ => runs.push(run),
        }
    }
    runs
}

/// The newest sequence number the segment names imply (a segment named `n` is created only
/// after event `n - 1`). A segment that holds nothing (`torn_header`) implies nothing: no
/// event before it needs to have been durable when its directory entry reached the disk.
pub(super) fn claimed_of(segments: &[ScannedSegment]) -> Seq {
    segments
        .iter()
        .filter(|s| !s.torn_header)
        .map(|s| s.first_seq.saturating_sub(1))
        .max()
        .unwrap_or(0)
}

/// Folds the held events `base+1..=target` into `state`.
///
/// The tracks of each decoded `tracks_enqueued` event share one buffer (one allocation per
/// event rather than per track: most replayed tracks are dropped again by later events); the
/// tracks the state keeps are copied into one buffer of their own at the end
/// ([`Track::repack`]).
fn replay(
    segments: &[ScannedSegment],
    state: &mut State,
    base: Seq,
    target: Seq,
    guild: GuildId,
    keys: Option<&Keyring>,
) -> Result<()> {
    let folded = replay_shared(segments, state, base, target, guild, keys);
    let queue = &mut state.queue;
    Track::repack(
        queue
            .history
            .iter_mut()
            .chain(queue.current.as_mut())
            .chain(queue.upcoming.iter_mut())
            .map(|entry| &mut entry.track),
    );
    folded
}

/// [`replay`] leaving the state's tracks in shared buffers.
fn replay_shared(
    segments: &[ScannedSegment],
    state: &mut State,
    base: Seq,
    target: Seq,
    guild: GuildId,
    keys: Option<&Keyring>,
) -> Result<()> {
    if target <= base {
        return Ok(());
    }
    let mut scratch = Vec::new();
    for seg in segments {
        let Some(scan) = &seg.scan else { continue };
        if scan.last_seq <= base || scan.header.first_seq > target || scan.frame_count == 0 {
            continue;
        }
        for (offset, f) in segment::frames(&seg.bytes, scan.valid_len) {
            if f.seq <= base {
                continue;
            }
            if f.seq > target {
                return Ok(());
            }
            let event = frame_event_with(
                format::decode_event_shared,
                &seg.path,
                offset,
                &f,
                scan.header.key_id,
                guild,
                keys,
                &mut scratch,
            )?;
            session::validate(state, &event).map_err(|e| {
                Error::from(
                    Corruption::new(&seg.path, offset, CorruptionKind::EventRejected)
                        .detail(format!("event {}: {e}", f.seq)),
                )
            })?;
            session::apply_owned(state, event);
        }
    }
    Ok(())
}

/// The damage that best explains why event `missing` is not held.
pub(super) fn explain_broken(
    root: &Path,
    guild: GuildId,
    scanned: &Scanned,
    findings: &[Corruption],
    missing: Seq,
) -> Corruption {
    // The segment that should hold `missing`, if its damage is known.
    let holder = scanned
        .segments
        .iter()
        .rev()
        .find(|s| s.first_seq <= missing && !s.torn_header);
    if let Some(f) = holder.and_then(|s| s.fault.clone()) {
        return f;
    }
    // A "torn tail" right where the missing event should start, while later events are held
    // elsewhere (a commit log, a later segment), is damage: the log went on past it.
    if let Some(seg) = holder {
        if let Some(SegmentScan {
            end: ScanEnd::TornTail { offset },
            last_seq,
            ..
        }) = &seg.scan
        {
            if *last_seq + 1 == missing {
                let rest = seg.bytes.get(*offset as usize..).unwrap_or(&[]);
                let c = match frame::decode(rest) {
                    Err(fault) => fault.at_offset(*offset).at(&seg.path),
                    Ok(_) => Corruption::new(&seg.path, *offset, CorruptionKind::PayloadDecode),
                };
                return c.detail(format!(
                    "event {missing} should start here, and later events are held: damage, not a torn write"
                ));
            }
        }
    }
    // A damaged snapshot that would have bridged the hole.
    if let Some(c) = findings.iter().rev().find(|c| {
        c.kind != CorruptionKind::TornTail
            && c.path
                .extension()
                .is_some_and(|e| e == layout::SNAPSHOT_EXT)
    }) {
        return c.clone();
    }
    if let Some(c) = findings.iter().find(|c| c.kind != CorruptionKind::TornTail) {
        return c.clone();
    }
    Corruption::new(
        layout::guild_dir(root, guild),
        0,
        CorruptionKind::Unrecoverable,
    )
    .values(missing, 0)
    .detail(format!(
        "event {missing} is held neither by a segment nor by a snapshot"
    ))
}

/// Decodes the event in frame `f` at `offset` of the segment `path`, whose frames are sealed
/// under `key_id` (opened into `scratch`).
pub(super) fn frame_event(
    path: &Path,
    offset: u64,
    f: &frame::Frame<'_>,
    key_id: KeyId,
    guild: GuildId,
    keys: Option<&Keyring>,
    scratch: &mut Vec<u8>,
) -> std::result::Result<Event, Corruption> {
    frame_event_with(
        format::decode_event,
        path,
        offset,
        f,
        key_id,
        guild,
        keys,
        scratch,
    )
}

/// [`frame_event`] decoding the payload with `decode`.
#[allow(clippy::too_many_arguments)]
fn frame_event_with(
    decode: fn(&[u8]) -> std::result::Result<Event, String>,
    path: &Path,
    offset: u64,
    f: &frame::Frame<'_>,
    key_id: KeyId,
    guild: GuildId,
    keys: Option<&Keyring>,
    scratch: &mut Vec<u8>,
) -> std::result::Result<Event, Corruption> {
    let payload = frame::open_payload(f, key_id, guild.0, keys, scratch).map_err(|fault| {
        Corruption::new(path, offset, CorruptionKind::Authentication).detail(fault.detail(key_id))
    })?;
    decode(payload)
        .map_err(|msg| Corruption::new(path, offset, CorruptionKind::PayloadDecode).detail(msg))
}

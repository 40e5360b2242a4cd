//! Snapshots and local retention: a snapshot written in place ([`Journal::snapshot_now`], the
//! automatic ones) or off the append path as a [`SnapshotJob`] (begin, write anywhere, finish);
//! the sealed segments whose fsync travels with a job ([`Seal`]); and the retention applied
//! after every snapshot (the rule itself is in `retention.rs`).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use super::retention;
use super::write::Ctx;
use super::{unreachable_missing_guild, GuildLog, Journal};
use crate::clock::now_unix_ms;
use crate::crypto::Keyring;
use crate::error::{Error, Result};
use crate::format::snapshot;
use crate::ids::{GuildId, Seq};
use crate::layout;
use crate::session::State;
use crate::storage::{self, AppendFile, Storage};

impl Journal {
    /// Writes a snapshot of the guild's current state now (unless one already exists at the
    /// current sequence number) and drops the files retention no longer needs. Returns the
    /// snapshot's sequence number, or `None` for a guild without events.
    ///
    /// # Errors
    /// [`Error::Io`] (the guild's log is poisoned if syncing it failed), recovery errors.
    pub fn snapshot_now(&mut self, guild: GuildId) -> Result<Option<Seq>> {
        self.writable()?;
        self.load(guild)?;
        self.settle_inherited(guild)?;
        let (mut ctx, guilds) = self.split();
        let log = guilds
            .get_mut(&guild)
            .ok_or_else(unreachable_missing_guild)?;
        if log.current.seq == 0 {
            return Ok(None);
        }
        if let Some(op) = log.poisoned {
            return Err(Error::Poisoned {
                guild: Some(guild),
                op,
            });
        }
        ctx.snapshot(guild, log, now_unix_ms())?;
        Ok(Some(log.current.seq))
    }

    /// The first half of [`Journal::snapshot_now`], for writing snapshots off the append path:
    /// makes the log up to the current seq durable (sealing the active segment) and captures
    /// the state. Write the returned job anywhere ([`SnapshotJob::write`]), then hand it back
    /// to [`Journal::snapshot_finish`] (or [`Journal::snapshot_failed`]). Appends may continue in between.
    ///
    /// # Errors
    /// As [`Journal::snapshot_now`].
    pub fn snapshot_begin(&mut self, guild: GuildId) -> Result<Option<SnapshotJob>> {
        self.writable()?;
        self.load(guild)?;
        self.settle_inherited(guild)?;
        let (mut ctx, guilds) = self.split();
        let log = guilds
            .get_mut(&guild)
            .ok_or_else(unreachable_missing_guild)?;
        if let Some(op) = log.poisoned {
            return Err(Error::Poisoned {
                guild: Some(guild),
                op,
            });
        }
        let mut job = ctx.snapshot_begin(guild, log, now_unix_ms())?;
        if let Some(job) = job.as_mut().filter(|j| !j.seals.is_empty()) {
            job.seal_counted = true;
            self.seals_in_flight += 1;
        }
        Ok(job)
    }

    /// The second half: registers a snapshot written by [`SnapshotJob::write`] and drops what
    /// retention no longer needs.
    ///
    /// # Errors
    /// [`Error::Io`] when an obsolete file cannot be removed.
    pub fn snapshot_finish(&mut self, job: &SnapshotJob) -> Result<()> {
        self.seal_returned(job);
        self.writable()?;
        self.load(job.guild)?;
        let (mut ctx, guilds) = self.split();
        let log = guilds
            .get_mut(&job.guild)
            .ok_or_else(unreachable_missing_guild)?;
        ctx.snapshot_finish(job.guild, log, job.seq)
    }

    /// Reports a job whose [`SnapshotJob::write`] failed. A failed seal fsync poisons the
    /// guild's log and commit-log retirement (fsyncgate); a failed snapshot write changes nothing
    /// (the next snapshot tries again).
    pub fn snapshot_failed(&mut self, job: &SnapshotJob) {
        self.seal_returned(job);
        if job.seal_failed {
            if let Some(log) = self.guilds.get_mut(&job.guild) {
                log.poisoned = Some("fsync");
            }
            self.retirement_poisoned = Some("fsync");
        }
    }

    /// A job from [`Journal::snapshot_begin`] came back: its seal no longer holds commit-log
    /// retirement back.
    fn seal_returned(&mut self, job: &SnapshotJob) {
        if job.seal_counted {
            self.seals_in_flight = self.seals_in_flight.saturating_sub(1);
        }
    }

    /// Number of events appended to `guild` since its last snapshot (by this process) and the
    /// bytes they take in the log; `None` when the guild is not loaded.
    pub fn since_snapshot(&self, guild: GuildId) -> Option<(u64, u64)> {
        self.guilds
            .get(&guild)
            .map(|l| (l.events_since_snapshot, l.bytes_since_snapshot))
    }
}

impl Ctx<'_> {
    /// Writes a snapshot of the current state, then applies retention.
    pub(super) fn snapshot(&mut self, guild: GuildId, log: &mut GuildLog, now: u64) -> Result<()> {
        let since = (log.events_since_snapshot, log.bytes_since_snapshot);
        let begun = self.snapshot_begin(guild, log, now);
        if begun.is_err() {
            // Still due: the next append tries again.
            (log.events_since_snapshot, log.bytes_since_snapshot) = since;
        }
        if let Some(mut job) = begun? {
            if let Err(e) = job.write() {
                if job.seal_failed {
                    log.poisoned = Some("fsync");
                }
                (log.events_since_snapshot, log.bytes_since_snapshot) = since;
                return Err(e);
            }
            self.snapshot_finish(guild, log, job.seq)?;
        }
        Ok(())
    }

    /// Seals the log up to the current seq (durable before a snapshot claims it) and captures
    /// the state; `None` when a snapshot at this seq exists already.
    fn snapshot_begin(
        &mut self,
        guild: GuildId,
        log: &mut GuildLog,
        now: u64,
    ) -> Result<Option<SnapshotJob>> {
        let seq = log.current.seq;
        log.events_since_snapshot = 0;
        log.bytes_since_snapshot = 0;
        if seq == 0 || log.snapshots.contains(&seq) {
            return Ok(None);
        }
        // Seal the active segment now (the next append starts a new one); its fsync travels
        // with the job, so a background writer does it off the append path.
        self.flush_guild(guild, log)?;
        let active = log.active.take();
        let seal = match log.segments.last_mut() {
            // A segment holding no event yet stays the active one (sealing it would make the
            // next append try to create a file of the same name).
            Some(last) if last.last_seq < last.first_seq => {
                log.active = active;
                None
            }
            Some(last) => {
                last.sealed = true;
                let unsynced = std::mem::take(&mut log.unsynced);
                unsynced.then(|| {
                    Arc::new(Seal::new(
                        layout::segment_path(self.root, guild, last.first_seq),
                        active,
                    ))
                })
            }
            None => None,
        };
        // The snapshot needs the log up to `seq` durable: this seal and every earlier one
        // still owed (a later job may be written before an earlier one).
        log.owed_seals.retain(|s| !s.settled());
        log.owed_seals.extend(seal);
        let seals = log.owed_seals.clone();
        Ok(Some(SnapshotJob {
            guild,
            seq,
            created_unix_ms: now,
            state: log.current.state.clone(),
            path: layout::snapshot_path(self.root, guild, seq),
            seals,
            seal_failed: false,
            seal_counted: false,
            keys: self.config.keys.clone(),
            storage: Arc::clone(self.storage),
        }))
    }

    /// Registers a written snapshot and applies retention.
    fn snapshot_finish(&mut self, guild: GuildId, log: &mut GuildLog, seq: Seq) -> Result<()> {
        if let Err(at) = log.snapshots.binary_search(&seq) {
            log.snapshots.insert(at, seq);
        }
        self.retain(guild, log)
    }

    /// Applies the retention rule ([`retention::retention_decision`], the one `cleanup`
    /// applies too) with [`Config::snapshots_retained`] and [`Config::snapshot_age_max`]: keeps
    /// the newest valid snapshots and the segments needed to replay from the oldest kept one,
    /// and removes the rest. A snapshot counts only once read back and verified here (a
    /// damaged one, even just written, is never what others are removed for); nothing is
    /// removed that the newest state's recovery needs. The active segment is never removed.
    ///
    /// [`Config::snapshots_retained`]: crate::config::Config::snapshots_retained
    /// [`Config::snapshot_age_max`]: crate::config::Config::snapshot_age_max
    fn retain(&mut self, guild: GuildId, log: &mut GuildLog) -> Result<()> {
        let policy = retention::RetentionPolicy::from_config(self.config);
        self.retain_with(guild, log, &policy, now_unix_ms(), false)
            .map(|_| ())
    }

    /// [`Ctx::retain`] with any `policy` (also [`Journal::cleanup`] of a guild this journal has
    /// loaded: its in-memory file lists follow the removals). Returns what was removed (or,
    /// with `dry_run`, would be): `Ok(Err(reason))` when the rule keeps everything because the
    /// newest state could not be rebuilt without what would go.
    pub(super) fn retain_with(
        &mut self,
        guild: GuildId,
        log: &mut GuildLog,
        policy: &retention::RetentionPolicy,
        now: u64,
        dry_run: bool,
    ) -> Result<std::result::Result<Retained, String>> {
        let segments: Vec<retention::SegmentSpan> = log
            .segments
            .iter()
            .map(|s| retention::SegmentSpan {
                first_seq: s.first_seq,
                last_seq: s.last_seq,
            })
            .collect();
        if policy.age_max.is_none() {
            // Without an age limit, fewer valid snapshots never remove more: when even all of
            // them valid would remove nothing, nothing needs reading back.
            let assumed: Vec<retention::SnapshotStat> = log
                .snapshots
                .iter()
                .map(|&seq| retention::SnapshotStat {
                    path: PathBuf::new(),
                    seq,
                    bytes: 0,
                    created_unix_ms: None,
                    valid: true,
                })
                .collect();
            if retention::retention_plan(&assumed, &segments, policy, now).is_empty() {
                return Ok(Ok(Retained::default()));
            }
        }
        let mut snapshots = Vec::with_capacity(log.snapshots.len());
        for &seq in &log.snapshots {
            let path = layout::snapshot_path(self.root, guild, seq);
            snapshots.push(retention::read_snapshot_stat(
                self.storage.as_ref(),
                &path,
                guild,
                seq,
                self.config.keys.as_ref(),
            )?);
        }
        let plan = match retention::retention_decision(&snapshots, &segments, policy, now) {
            Ok(plan) => plan,
            // The newest state could not be rebuilt without what would go: keep everything.
            Err(reason) => return Ok(Err(reason)),
        };
        let mut retained = Retained::default();
        if plan.is_empty() {
            return Ok(Ok(retained));
        }
        let mut removed = false;
        for &seq in &plan.snapshots {
            if !dry_run {
                let path = layout::snapshot_path(self.root, guild, seq);
                match self.storage.remove(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io("remove old snapshot", &path, e)),
                }
                log.snapshots.retain(|&s| s != seq);
                removed = true;
            }
            retained.snapshots.push(seq);
            retained.bytes += snapshots
                .iter()
                .find(|s| s.seq == seq)
                .map_or(0, |s| s.bytes);
        }
        // The plan's segments are the oldest ones (a prefix of the list); the active segment
        // is never removed.
        let drop_count = plan
            .segments
            .len()
            .min(log.segments.len().saturating_sub(1));
        if dry_run {
            for meta in &log.segments[..drop_count] {
                retained.segments.push(meta.first_seq);
                retained.bytes += meta.len;
            }
            return Ok(Ok(retained));
        }
        // Oldest first, and forgotten only once removed: a failure leaves the segments still
        // on disk a contiguous run (no gap), and the next retention retries them.
        for _ in 0..drop_count {
            let meta = log.segments[0];
            let path = layout::segment_path(self.root, guild, meta.first_seq);
            if let Err(e) = self.storage.remove(&path) {
                // Removals made so far need no directory fsync to be safe: a removal undone by
                // a crash leaves an obsolete segment that the next retention removes again.
                return Err(Error::io("remove obsolete segment", &path, e));
            }
            log.segments.remove(0);
            retained.segments.push(meta.first_seq);
            retained.bytes += meta.len;
            removed = true;
        }
        if removed {
            let dir = layout::guild_dir(self.root, guild);
            self.storage
                .sync_dir(&dir)
                .map_err(|e| Error::io("fsync directory", &dir, e))?;
        }
        Ok(Ok(retained))
    }
}

/// What one retention pass removed from a guild (or would, in a dry run).
#[derive(Debug, Default)]
pub(super) struct Retained {
    /// Seqs of the snapshots.
    pub(super) snapshots: Vec<Seq>,
    /// First seqs of the segments.
    pub(super) segments: Vec<Seq>,
    /// Their bytes.
    pub(super) bytes: u64,
}

/// A snapshot captured by [`Journal::snapshot_begin`], to be written on any thread.
#[derive(Debug)]
pub struct SnapshotJob {
    guild: GuildId,
    seq: Seq,
    created_unix_ms: u64,
    state: State,
    path: PathBuf,
    /// The segments sealed for this snapshot and for earlier jobs of the guild not known to be
    /// durable yet, oldest first: fsynced (unless done already) before the snapshot is written.
    seals: Vec<Arc<Seal>>,
    seal_failed: bool,
    /// Counted in [`Journal::seals_in_flight`] until it comes back.
    seal_counted: bool,
    /// The keys that seal the snapshot (encryption at rest).
    keys: Option<Keyring>,
    /// The journal's storage, which the job writes through.
    storage: Arc<dyn Storage>,
}

impl SnapshotJob {
    /// The guild.
    pub fn guild(&self) -> GuildId {
        self.guild
    }

    /// The sequence number the snapshot captures.
    pub fn seq(&self) -> Seq {
        self.seq
    }

    /// The snapshot file it writes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether [`SnapshotJob::write`] failed to make the sealed segment durable.
    pub fn seal_failed(&self) -> bool {
        self.seal_failed
    }

    /// Makes the sealed segments durable (oldest first), then encodes the snapshot and writes
    /// it with `write_atomic` (temporary file, fsync, rename, fsync directory) through
    /// the journal's storage; returns the file's size.
    ///
    /// # Errors
    /// [`Error::Io`]; nothing is left behind but a temporary file the next writer removes.
    /// When the seal's fsync failed ([`SnapshotJob::seal_failed`]), hand the job to
    /// [`Journal::snapshot_failed`].
    pub fn write(&mut self) -> Result<u64> {
        let storage = Arc::clone(&self.storage);
        let storage = storage.as_ref();
        let _span =
            tracing::info_span!("reprise.snapshot", guild = self.guild.0, seq = self.seq).entered();
        let started = std::time::Instant::now();
        for seal in std::mem::take(&mut self.seals) {
            if let Err(e) = seal.discharge(storage) {
                self.seal_failed = true;
                return Err(Error::io("fsync", &seal.path, e));
            }
        }
        let bytes = snapshot::encode(
            self.guild.0,
            self.seq,
            self.created_unix_ms,
            &self.state,
            self.keys.as_ref(),
        )
        .map_err(|e| Error::io("compress snapshot for", &self.path, e))?;
        storage::write_atomic(storage, &self.path, &bytes)
            .map_err(|(op, p, e)| Error::io(op, p, e))?;
        // write_atomic made the file's entry in the guild directory durable; the guild
        // directory's entry in guilds/ and guilds/ in the root may be new too.
        let guild_dir = self.path.parent();
        let guilds_dir = guild_dir.and_then(Path::parent);
        for dir in [guilds_dir, guilds_dir.and_then(Path::parent)]
            .into_iter()
            .flatten()
        {
            storage
                .sync_dir(dir)
                .map_err(|e| Error::io("fsync directory", dir, e))?;
        }
        metrics::counter!(crate::telemetry::SNAPSHOTS_TOTAL).increment(1);
        metrics::histogram!(crate::telemetry::SNAPSHOT_SECONDS)
            .record(started.elapsed().as_secs_f64());
        metrics::histogram!(crate::telemetry::SNAPSHOT_BYTES).record(bytes.len() as f64);
        Ok(bytes.len() as u64)
    }
}

/// A sealed segment whose fsync is still due (with the descriptor its writes went through, so
/// an earlier writeback error is reported — see fsyncgate), shared between the snapshot jobs
/// that need it durable and the guild's log: whichever comes first does the fsync, once.
#[derive(Debug)]
pub(super) struct Seal {
    path: PathBuf,
    state: Mutex<SealState>,
}

#[derive(Debug)]
struct SealState {
    /// The descriptor that wrote the segment (`None`: a new one is opened).
    file: Option<Box<dyn AppendFile>>,
    /// The fsync happened (`Some(true)`: it succeeded).
    synced: Option<bool>,
}

impl Seal {
    fn new(path: PathBuf, file: Option<Box<dyn AppendFile>>) -> Seal {
        Seal {
            path,
            state: Mutex::new(SealState { file, synced: None }),
        }
    }

    /// Whether the fsync is done (successfully or not).
    pub(super) fn settled(&self) -> bool {
        self.lock().synced.is_some()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SealState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// fdatasyncs the sealed segment unless done already; a failure is reported again to
    /// every later caller (fsyncgate: a retry could falsely succeed).
    fn discharge(&self, storage: &dyn Storage) -> io::Result<()> {
        let mut state = self.lock();
        match state.synced {
            Some(true) => return Ok(()),
            Some(false) => {
                return Err(io::Error::other(
                    "an earlier fsync of this sealed segment failed",
                ))
            }
            None => {}
        }
        let synced = match state.file.take() {
            Some(mut file) => file.sync_data(),
            None => storage
                .open_append(&self.path)
                .and_then(|mut f| f.sync_data()),
        };
        state.synced = Some(synced.is_ok());
        synced
    }
}

/// Makes every segment of the guild sealed for a snapshot job durable (oldest first) and
/// forgets them. A failure poisons the guild (fsyncgate).
pub(super) fn discharge_seals(storage: &dyn Storage, log: &mut GuildLog) -> Result<()> {
    for seal in &log.owed_seals {
        if let Err(e) = seal.discharge(storage) {
            log.poisoned = Some("fsync");
            return Err(Error::io("fsync", &seal.path, e));
        }
    }
    log.owed_seals.clear();
    Ok(())
}

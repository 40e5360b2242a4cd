//! Journal maintenance: analytics ([`Journal::stats`], contract §2 `reprise stats`),
//! retention on demand ([`Journal::cleanup`], `reprise cleanup`), and the removal of the
//! copies remote claims set aside ([`Journal::remove_superseded`], rule
//! [`superseded_to_remove`]).
//!
//! Both read the guild directories the way `inspect` does, without recovering (loading) the
//! guilds. Retention is the journal's own policy ([`Config::snapshots_retained`],
//! [`Config::snapshot_age_max`], applied after every snapshot) run now, with a policy given by
//! the caller, and with one more safeguard: only snapshots that decode count, so a damaged
//! snapshot is never what the rest is removed for.
//!
//! # The retention rule ([`retention_plan`], pure)
//!
//! One rule for both call sites: the journal applies [`retention_decision`] after each snapshot
//! and [`Journal::cleanup`] on demand, both on snapshots read back and verified.
//!
//! Of a guild's valid snapshots (oldest first), keep the newest `keep` (at least one), and of
//! those drop the ones older than `age_max` — but never the newest valid one. While a guild has
//! fewer than `keep` valid snapshots (and the age limit drops none of them), the empty state at
//! seq 0 counts as one of the kept bases and nothing is removed; at exactly `keep` the log
//! before the oldest kept one goes. A damaged snapshot never counts. Then
//! every snapshot (valid or damaged) older than the oldest kept one is removed, and every log
//! segment whose events all precede that snapshot's successor (the next segment starts at or
//! before `oldest_kept + 1`); the newest segment is never removed. Finally the plan is checked
//! against [`recovery::decide`]: a guild whose newest state would not be rebuilt exactly the
//! same way from what remains, or cannot be rebuilt now, is left untouched and reported.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::{Config, SupersededRetention, SNAPSHOTS_RETAINED_DEFAULT};
use crate::error::{Error, Result};
use crate::format::snapshot;
use crate::ids::{GuildId, Seq};
use crate::journal::{GuildInfo, GuildState, Journal};
use crate::layout;
use crate::recovery::{self, Decision, Found, Run, SnapshotFound};

/// How many snapshots (and how old) [`Journal::cleanup`] keeps per guild.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Valid snapshots kept per guild (the newest ones); at least 1.
    pub keep: u32,
    /// Valid snapshots older than this are removed, except the newest valid one.
    pub age_max: Option<Duration>,
}

impl Default for RetentionPolicy {
    /// The journal's default: [`SNAPSHOTS_RETAINED_DEFAULT`] snapshots, no age limit.
    fn default() -> Self {
        RetentionPolicy {
            keep: SNAPSHOTS_RETAINED_DEFAULT,
            age_max: None,
        }
    }
}

impl RetentionPolicy {
    /// The policy a [`Config`] applies after each snapshot.
    pub fn from_config(config: &Config) -> RetentionPolicy {
        RetentionPolicy {
            keep: config.snapshots_retained.max(1),
            age_max: config.snapshot_age_max,
        }
    }
}

/// A snapshot file as maintenance sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotStat {
    /// The file.
    pub path: PathBuf,
    /// Its sequence number.
    pub seq: Seq,
    /// Its size.
    pub bytes: u64,
    /// When it was written (from its header; `None` when the header is unreadable).
    pub created_unix_ms: Option<u64>,
    /// Whether it decodes and belongs to this guild and seq (what recovery would accept).
    pub valid: bool,
}

impl SnapshotStat {
    /// Its age at `now_unix_ms` (0 for a snapshot from the future; `None` when unknown).
    pub fn age_ms(&self, now_unix_ms: u64) -> Option<u64> {
        self.created_unix_ms.map(|c| now_unix_ms.saturating_sub(c))
    }
}

/// One guild's files and counts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuildStats {
    /// The guild.
    pub guild: GuildId,
    /// The newest sequence number its files hold (log or snapshot).
    pub seq: Seq,
    /// The first sequence number the log still holds (`None`: no segment).
    pub log_first_seq: Option<Seq>,
    /// Events the retained log holds.
    pub events_in_log: u64,
    /// Log segments.
    pub segments: u64,
    /// Bytes of log segments.
    pub segment_bytes: u64,
    /// Snapshots, oldest first.
    pub snapshots: Vec<SnapshotStat>,
    /// Bytes of snapshots.
    pub snapshot_bytes: u64,
}

impl GuildStats {
    /// Bytes of all its files.
    pub fn bytes(&self) -> u64 {
        self.segment_bytes + self.snapshot_bytes
    }
}

/// What [`Journal::stats`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stats {
    /// When the stats were taken (Unix milliseconds; ages are relative to it).
    pub now_unix_ms: u64,
    /// Per guild, sorted by guild id.
    pub guilds: Vec<GuildStats>,
    /// Bytes of the shared commit logs.
    pub commit_log_bytes: u64,
    /// Every file of the journal directory (guild files, commit logs, the lock file).
    pub bytes_on_disk: u64,
}

impl Stats {
    /// Events appended over all guilds (the sum of their newest sequence numbers).
    pub fn events(&self) -> u64 {
        self.guilds.iter().map(|g| g.seq).sum()
    }

    /// Events the retained logs hold.
    pub fn events_in_log(&self) -> u64 {
        self.guilds.iter().map(|g| g.events_in_log).sum()
    }

    /// Log segments.
    pub fn segments(&self) -> u64 {
        self.guilds.iter().map(|g| g.segments).sum()
    }

    /// Snapshot files.
    pub fn snapshots(&self) -> u64 {
        self.guilds.iter().map(|g| g.snapshots.len() as u64).sum()
    }

    /// Bytes of snapshot files.
    pub fn snapshot_bytes(&self) -> u64 {
        self.guilds.iter().map(|g| g.snapshot_bytes).sum()
    }

    /// The oldest and the newest snapshot (by creation time) with their guild.
    pub fn oldest_newest(&self) -> Option<(GuildSnapshot<'_>, GuildSnapshot<'_>)> {
        let mut all = self.guilds.iter().flat_map(|g| {
            g.snapshots
                .iter()
                .filter(|s| s.created_unix_ms.is_some())
                .map(move |s| (g.guild, s))
        });
        let first = all.next()?;
        let (mut oldest, mut newest) = (first, first);
        for item in all {
            if item.1.created_unix_ms < oldest.1.created_unix_ms {
                oldest = item;
            }
            if item.1.created_unix_ms >= newest.1.created_unix_ms {
                newest = item;
            }
        }
        Some((oldest, newest))
    }
}

/// A snapshot together with its guild.
pub type GuildSnapshot<'a> = (GuildId, &'a SnapshotStat);

/// What [`retention_plan`] removes from one guild.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetentionPlan {
    /// Sequence numbers of the snapshots to remove.
    pub snapshots: Vec<Seq>,
    /// First sequence numbers of the segments to remove.
    pub segments: Vec<Seq>,
}

impl RetentionPlan {
    /// Whether nothing is to be removed.
    pub fn is_empty(&self) -> bool {
        self.snapshots.is_empty() && self.segments.is_empty()
    }
}

/// A log segment as the retention rule sees it: the events it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentSpan {
    /// The first sequence number (its file name).
    pub first_seq: Seq,
    /// The last sequence number it holds validly (`first_seq - 1` when none).
    pub last_seq: Seq,
}

/// What [`Journal::cleanup`] did to one guild.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuildCleanup {
    /// The guild.
    pub guild: GuildId,
    /// Sequence numbers of the snapshots removed.
    pub snapshots: Vec<Seq>,
    /// First sequence numbers of the segments removed.
    pub segments: Vec<Seq>,
    /// Bytes freed.
    pub bytes: u64,
}

/// A guild [`Journal::cleanup`] left alone, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// The guild.
    pub guild: GuildId,
    /// Why.
    pub reason: String,
}

/// What [`Journal::cleanup`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CleanupReport {
    /// Guilds examined.
    pub guilds: u64,
    /// The guilds something was removed from (or would be, in a dry run).
    pub removed: Vec<GuildCleanup>,
    /// Guilds left alone.
    pub skipped: Vec<Skipped>,
    /// Whether this was a dry run (nothing removed).
    pub dry_run: bool,
}

impl CleanupReport {
    /// Snapshots removed.
    pub fn snapshots_removed(&self) -> u64 {
        self.removed.iter().map(|g| g.snapshots.len() as u64).sum()
    }

    /// Segments removed.
    pub fn segments_removed(&self) -> u64 {
        self.removed.iter().map(|g| g.segments.len() as u64).sum()
    }

    /// Bytes freed.
    pub fn bytes_removed(&self) -> u64 {
        self.removed.iter().map(|g| g.bytes).sum()
    }
}

/// The retention rule of the module docs, on one guild, without the final safety check (see
/// [`retention_decision`] for the rule both call sites apply): `snapshots` sorted by seq,
/// `segments` sorted by first seq, `now_unix_ms` for the age limit. Pure.
pub fn retention_plan(
    snapshots: &[SnapshotStat],
    segments: &[SegmentSpan],
    policy: &RetentionPolicy,
    now_unix_ms: u64,
) -> RetentionPlan {
    let valid: Vec<&SnapshotStat> = snapshots.iter().filter(|s| s.valid).collect();
    let keep = policy.keep.max(1) as usize;
    if valid.is_empty() {
        return RetentionPlan::default();
    }
    // Fewer valid snapshots than `keep`: the empty state at seq 0 is one of the kept bases.
    let empty_state_kept = valid.len() < keep;
    let start = valid.len().saturating_sub(keep);
    let mut cut = start;
    if let Some(age) = policy.age_max {
        let age_ms = u64::try_from(age.as_millis()).unwrap_or(u64::MAX);
        let limit = now_unix_ms.saturating_sub(age_ms);
        // An unknown creation time never counts as old; the newest valid one always stays.
        while cut + 1 < valid.len() && valid[cut].created_unix_ms.is_some_and(|c| c < limit) {
            cut += 1;
        }
    }
    if empty_state_kept && cut == start {
        return RetentionPlan::default();
    }
    let oldest_kept = valid[cut].seq;
    let snapshots = snapshots
        .iter()
        .filter(|s| s.seq < oldest_kept)
        .map(|s| s.seq)
        .collect();
    let mut drop = 0;
    while drop + 1 < segments.len() && segments[drop + 1].first_seq <= oldest_kept + 1 {
        drop += 1;
    }
    RetentionPlan {
        snapshots,
        segments: segments[..drop].iter().map(|s| s.first_seq).collect(),
    }
}

/// The retention rule both call sites apply (the journal after each snapshot,
/// [`Journal::cleanup`] on demand): [`retention_plan`], then checked against recovery — `Err`
/// (nothing is removed) when the guild's newest state cannot be rebuilt now, or would not be
/// rebuilt the same way from what the plan leaves. `snapshots[i].valid` must come from reading
/// the file back and verifying it. Pure.
///
/// # Errors
/// Why nothing may be removed (for a report).
pub fn retention_decision(
    snapshots: &[SnapshotStat],
    segments: &[SegmentSpan],
    policy: &RetentionPolicy,
    now_unix_ms: u64,
) -> std::result::Result<RetentionPlan, String> {
    let plan = retention_plan(snapshots, segments, policy, now_unix_ms);
    checked_plan(snapshots, segments, plan)
}

/// Reads the snapshot of `guild` at `seq` back and verifies it as recovery would (decodes,
/// checksums and authenticates, belongs to this guild and seq), with its header time.
///
/// # Errors
/// [`Error::Io`] when the file cannot be read (an oversized file counts as damaged).
pub(crate) fn read_snapshot_stat(
    storage: &dyn crate::storage::Storage,
    path: &std::path::Path,
    guild: GuildId,
    seq: Seq,
    keys: Option<&crate::crypto::Keyring>,
) -> Result<SnapshotStat> {
    let (created_unix_ms, valid, bytes) = match storage.read(path, snapshot::FILE_LEN_MAX) {
        Ok(bytes) => {
            let created = snapshot::decode_header(&bytes)
                .ok()
                .map(|h| h.created_unix_ms);
            let valid = snapshot::decode(&bytes, keys)
                .is_ok_and(|(h, _)| h.guild == guild.0 && h.seq == seq);
            (created, valid, bytes.len() as u64)
        }
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
            (None, false, storage.file_len(path).unwrap_or(0))
        }
        Err(e) => {
            return Err(Error::Io {
                op: "read",
                path: path.to_path_buf(),
                source: e,
            })
        }
    };
    Ok(SnapshotStat {
        path: path.to_path_buf(),
        seq,
        bytes,
        created_unix_ms,
        valid,
    })
}

/// The recovery decision for the newest state of a guild holding these files.
fn decide_newest(snapshots: &[SnapshotStat], segments: &[SegmentSpan]) -> Decision {
    let found_snapshots: Vec<SnapshotFound> = snapshots
        .iter()
        .map(|s| SnapshotFound {
            seq: s.seq,
            valid: s.valid,
        })
        .collect();
    let mut runs: Vec<Run> = Vec::new();
    for seg in segments.iter().filter(|s| s.last_seq >= s.first_seq) {
        match runs.last_mut() {
            Some(run) if run.last + 1 == seg.first_seq => run.last = seg.last_seq,
            _ => runs.push(Run {
                first: seg.first_seq,
                last: seg.last_seq,
            }),
        }
    }
    let claimed = segments
        .iter()
        .map(|s| s.first_seq.saturating_sub(1))
        .max()
        .unwrap_or(0);
    recovery::decide(
        &Found {
            snapshots: &found_snapshots,
            runs: &runs,
            claimed,
        },
        None,
    )
}

/// `plan` unless removing it would change how (or whether) the newest state is rebuilt.
fn checked_plan(
    snapshots: &[SnapshotStat],
    segments: &[SegmentSpan],
    plan: RetentionPlan,
) -> std::result::Result<RetentionPlan, String> {
    let before = decide_newest(snapshots, segments);
    let Decision::Replay { target, .. } = before else {
        return Err(format!(
            "its newest state cannot be rebuilt now ({before:?}); run `reprise verify`"
        ));
    };
    if plan.is_empty() {
        return Ok(plan);
    }
    let kept_snapshots: Vec<SnapshotStat> = snapshots
        .iter()
        .filter(|s| !plan.snapshots.contains(&s.seq))
        .cloned()
        .collect();
    let kept_segments: Vec<SegmentSpan> = segments
        .iter()
        .filter(|s| !plan.segments.contains(&s.first_seq))
        .copied()
        .collect();
    match decide_newest(&kept_snapshots, &kept_segments) {
        Decision::Replay { target: after, .. } if after == target => Ok(plan),
        after => Err(format!(
            "the retention plan would leave the newest state (seq {target}) unrebuildable ({after:?})"
        )),
    }
}

/// A copy of a guild that a remote claim set aside
/// (`remote/superseded/<guild>-<epoch>-<unix_ms>/`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SupersededCopy {
    /// Its directory.
    pub path: PathBuf,
    /// The guild.
    pub guild: GuildId,
    /// The epoch this directory held when the copy was set aside (0: none).
    pub epoch: u64,
    /// When it was set aside (from its name), Unix milliseconds.
    pub set_aside_unix_ms: u64,
}

/// The superseded-copy rule (pure): the indices of the `copies` that `rule` removes, ascending.
///
/// Per guild, copies rank newest first (by the time they were set aside, then epoch, then
/// path); a copy is removed when its rank is `per_guild_max` or more (a guild's newest copy
/// always ranks within: `per_guild_max` counts as at least 1), or when it was set aside more
/// than `age_max` before `now_unix_ms` (a time in the future counts as now).
pub fn superseded_to_remove(
    copies: &[SupersededCopy],
    rule: &SupersededRetention,
    now_unix_ms: u64,
) -> Vec<usize> {
    let mut by_guild: BTreeMap<GuildId, Vec<usize>> = BTreeMap::new();
    for (i, c) in copies.iter().enumerate() {
        by_guild.entry(c.guild).or_default().push(i);
    }
    let mut out = Vec::new();
    for indices in by_guild.values_mut() {
        indices.sort_by(|&a, &b| {
            let key = |c: &SupersededCopy| (c.set_aside_unix_ms, c.epoch, c.path.clone());
            key(&copies[b]).cmp(&key(&copies[a]))
        });
        for (rank, &i) in indices.iter().enumerate() {
            let age_ms = now_unix_ms.saturating_sub(copies[i].set_aside_unix_ms);
            let too_old = rule
                .age_max
                .is_some_and(|age| u128::from(age_ms) > age.as_millis());
            if rank >= rule.per_guild_max.max(1) || too_old {
                out.push(i);
            }
        }
    }
    out.sort_unstable();
    out
}

impl Journal {
    /// Every copy a remote claim set aside under `remote/superseded/` (entries whose names
    /// are not a copy's are not listed, and never removed).
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn superseded_copies(&self) -> Result<Vec<SupersededCopy>> {
        let root = layout::superseded_root(self.dir());
        let storage = self.storage();
        let names = storage
            .list(&root)
            .map_err(|e| Error::io("list", &root, e))?;
        let mut copies: Vec<SupersededCopy> = names
            .iter()
            .filter_map(|name| {
                let (guild, epoch, ms) = layout::parse_superseded_name(name)?;
                Some(SupersededCopy {
                    path: root.join(name),
                    guild,
                    epoch,
                    set_aside_unix_ms: ms,
                })
            })
            .collect();
        copies.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(copies)
    }

    /// Removes the superseded copies `rule` does not keep ([`superseded_to_remove`]), of
    /// every guild or `only` one, and returns them (in a dry run, what would be removed;
    /// nothing is). Each copy's files go
    /// first, then its directory; a crash part-way leaves a copy that the next run removes.
    ///
    /// # Errors
    /// [`Error::ReadOnly`] (not in a dry run) on a journal opened read-only; [`Error::Io`]
    /// naming the file or directory (what was removed before stays removed).
    pub fn remove_superseded(
        &self,
        rule: &SupersededRetention,
        only: Option<GuildId>,
        now_unix_ms: u64,
        dry_run: bool,
    ) -> Result<Vec<SupersededCopy>> {
        if !dry_run && self.mode() != crate::journal::OpenMode::ReadWrite {
            return Err(Error::ReadOnly);
        }
        let mut copies = self.superseded_copies()?;
        copies.retain(|c| only.is_none_or(|g| c.guild == g));
        let doomed: Vec<SupersededCopy> = superseded_to_remove(&copies, rule, now_unix_ms)
            .into_iter()
            .map(|i| copies[i].clone())
            .collect();
        if dry_run || doomed.is_empty() {
            return Ok(doomed);
        }
        let storage = self.storage();
        for copy in &doomed {
            let names = storage
                .list(&copy.path)
                .map_err(|e| Error::io("list", &copy.path, e))?;
            for name in names {
                let path = copy.path.join(name);
                storage
                    .remove(&path)
                    .map_err(|e| Error::io("remove", &path, e))?;
            }
            storage
                .remove_dir(&copy.path)
                .map_err(|e| Error::io("remove directory", &copy.path, e))?;
        }
        let root = layout::superseded_root(self.dir());
        storage
            .sync_dir(&root)
            .map_err(|e| Error::io("fsync directory", &root, e))?;
        Ok(doomed)
    }
}

impl Journal {
    /// The snapshots of `guild` as maintenance sees them (header time, validity, size).
    fn snapshot_stats(&self, guild: GuildId, info: &GuildInfo) -> Result<Vec<SnapshotStat>> {
        let storage = self.storage();
        let mut out = Vec::with_capacity(info.snapshots.len());
        for file in &info.snapshots {
            let mut stat = read_snapshot_stat(
                storage.as_ref(),
                &file.path,
                guild,
                file.first_seq,
                self.config().keys.as_ref(),
            )?;
            stat.bytes = file.bytes;
            out.push(stat);
        }
        Ok(out)
    }

    /// One guild's statistics, from its files (the guild is not recovered).
    ///
    /// # Errors
    /// [`Error::Io`] when a file cannot be listed or read.
    pub fn guild_stats(&mut self, guild: GuildId) -> Result<GuildStats> {
        let info = self.inspect(guild)?;
        let snapshots = self.snapshot_stats(guild, &info)?;
        let seq = info
            .segments
            .iter()
            .map(|s| s.last_seq)
            .chain(snapshots.iter().filter(|s| s.valid).map(|s| s.seq))
            .max()
            .unwrap_or(0);
        Ok(GuildStats {
            guild,
            seq,
            log_first_seq: info.segments.first().map(|s| s.first_seq),
            events_in_log: info
                .segments
                .iter()
                .map(|s| (s.last_seq + 1).saturating_sub(s.first_seq))
                .sum(),
            segments: info.segments.len() as u64,
            segment_bytes: info.segments.iter().map(|s| s.bytes).sum(),
            snapshot_bytes: snapshots.iter().map(|s| s.bytes).sum(),
            snapshots,
        })
    }

    /// Statistics of the whole journal (or of `only` one guild), at `now_unix_ms`.
    ///
    /// # Errors
    /// [`Error::Io`] when a file cannot be listed or read.
    pub fn stats(&mut self, only: Option<GuildId>, now_unix_ms: u64) -> Result<Stats> {
        let guilds = match only {
            Some(guild) => vec![guild],
            None => self.guilds()?,
        };
        let mut per_guild = Vec::with_capacity(guilds.len());
        for guild in guilds {
            per_guild.push(self.guild_stats(guild)?);
        }
        let storage = self.storage();
        let commit_dir = layout::commit_dir(self.dir());
        let mut commit_log_bytes = 0;
        let names = storage.list(&commit_dir).map_err(|e| Error::Io {
            op: "list",
            path: commit_dir.clone(),
            source: e,
        })?;
        for name in names {
            commit_log_bytes += storage.file_len(&commit_dir.join(name)).unwrap_or(0);
        }
        let lock_bytes = storage
            .file_len(&layout::lock_path(self.dir()))
            .unwrap_or(0);
        let all_guild_bytes: u64 = if only.is_some() {
            // The journal's total still counts every guild.
            let mut total = 0;
            for guild in self.guilds()? {
                let info = self.inspect(guild)?;
                total += info
                    .segments
                    .iter()
                    .chain(&info.snapshots)
                    .map(|f| f.bytes)
                    .sum::<u64>();
            }
            total
        } else {
            per_guild.iter().map(GuildStats::bytes).sum()
        };
        Ok(Stats {
            now_unix_ms,
            guilds: per_guild,
            commit_log_bytes,
            bytes_on_disk: all_guild_bytes + commit_log_bytes + lock_bytes,
        })
    }

    /// Applies `policy` now to every guild (or `only` one), removing the snapshots and log
    /// segments it makes obsolete (see the module docs); with `dry_run`, only reports what it
    /// would remove. Never removes what the newest state needs: a guild whose newest state
    /// cannot be rebuilt, or would be rebuilt differently, is skipped and reported.
    ///
    /// Works on guilds this journal has not recovered yet (a freshly opened journal, as the
    /// CLI uses); a guild already loaded in memory is skipped (its in-memory file lists would
    /// go stale) — its own retention runs at its next snapshot.
    ///
    /// Removing files needs the journal opened read-write ([`Journal::open`]: the exclusive
    /// owner); a dry run also works on a read-only one.
    ///
    /// # Errors
    /// [`Error::Io`] when a file cannot be read or removed.
    pub fn cleanup(
        &mut self,
        policy: &RetentionPolicy,
        only: Option<GuildId>,
        now_unix_ms: u64,
        dry_run: bool,
    ) -> Result<CleanupReport> {
        let guilds = match only {
            Some(guild) => vec![guild],
            None => self.guilds()?,
        };
        let mut report = CleanupReport {
            dry_run,
            ..CleanupReport::default()
        };
        let storage = self.storage();
        for guild in guilds {
            report.guilds += 1;
            if self.since_snapshot(guild).is_some() {
                report.skipped.push(Skipped {
                    guild,
                    reason: "the guild is loaded by this journal; its retention runs at its next snapshot".into(),
                });
                continue;
            }
            let info = self.inspect(guild)?;
            let snapshots = self.snapshot_stats(guild, &info)?;
            let segments: Vec<SegmentSpan> = info
                .segments
                .iter()
                .map(|s| SegmentSpan {
                    first_seq: s.first_seq,
                    last_seq: s.last_seq,
                })
                .collect();
            let plan = match retention_decision(&snapshots, &segments, policy, now_unix_ms) {
                Ok(plan) => plan,
                Err(reason) => {
                    report.skipped.push(Skipped { guild, reason });
                    continue;
                }
            };
            if plan.is_empty() {
                continue;
            }
            let mut done = GuildCleanup {
                guild,
                snapshots: Vec::new(),
                segments: Vec::new(),
                bytes: 0,
            };
            // Oldest first: after each removal the rest is still a consistent journal.
            let snapshot_files = info
                .snapshots
                .iter()
                .filter(|f| plan.snapshots.contains(&f.first_seq));
            let segment_files = info
                .segments
                .iter()
                .filter(|f| plan.segments.contains(&f.first_seq));
            for file in snapshot_files {
                if !dry_run {
                    remove(storage.as_ref(), &file.path, "remove old snapshot")?;
                }
                done.snapshots.push(file.first_seq);
                done.bytes += file.bytes;
            }
            for file in segment_files {
                if !dry_run {
                    remove(storage.as_ref(), &file.path, "remove obsolete segment")?;
                }
                done.segments.push(file.first_seq);
                done.bytes += file.bytes;
            }
            if !dry_run {
                let dir = layout::guild_dir(self.dir(), guild);
                storage.sync_dir(&dir).map_err(|e| Error::Io {
                    op: "fsync directory",
                    path: dir,
                    source: e,
                })?;
            }
            report.removed.push(done);
        }
        Ok(report)
    }
}

/// Removes a file; one already gone counts as removed.
fn remove(
    storage: &dyn crate::storage::Storage,
    path: &std::path::Path,
    op: &'static str,
) -> Result<()> {
    match storage.remove(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::Io {
            op,
            path: path.to_path_buf(),
            source: e,
        }),
    }
}

/// Point in time by the clock: the state as of a wall-clock time.
impl Journal {
    /// The guild's state as of `at_unix_ms` (Unix milliseconds): the state after the last event
    /// of the longest run of the log, from its start, whose events were all appended at or
    /// before that time (events carry their append time, [`crate::LoggedEvent::at_unix_ms`]).
    /// With a clock that only moves forward that is simply the last event appended at or
    /// before the time; an event stamped later than a following one (a clock stepped back)
    /// ends the run, so the answer is always a state the guild actually had at that time.
    ///
    /// A time before the guild's first event gives the empty state at seq 0 (when the log still
    /// starts at seq 1); a time after its last event gives the current state.
    ///
    /// # Errors
    /// [`Error::TimeCompacted`] when the oldest event the log still holds was appended after
    /// `at_unix_ms` (compaction dropped the events that would answer); recovery errors, and
    /// [`Error::Corrupt`] where the log is damaged before the answer.
    pub fn state_at_time(&mut self, guild: GuildId, at_unix_ms: u64) -> Result<GuildState> {
        let current_seq = self.state(guild)?.seq;
        let mut first: Option<(Seq, u64)> = None;
        let mut last_at_or_before: Option<Seq> = None;
        for item in self.events(guild)? {
            let logged = item?;
            if first.is_none() {
                first = Some((logged.seq, logged.at_unix_ms));
            }
            if logged.at_unix_ms > at_unix_ms {
                break;
            }
            last_at_or_before = Some(logged.seq);
        }
        let seq = match (first, last_at_or_before) {
            (_, Some(seq)) => seq,
            (Some((1, _)), None) => 0,
            (None, None) if current_seq == 0 => 0,
            (Some((oldest_seq, oldest_unix_ms)), None) => {
                return Err(Error::TimeCompacted {
                    guild,
                    at_unix_ms,
                    oldest_seq,
                    oldest_unix_ms: Some(oldest_unix_ms),
                })
            }
            (None, None) => {
                // Events exist but the log holds none of them (only snapshots remain): their
                // times are unknown.
                return Err(Error::TimeCompacted {
                    guild,
                    at_unix_ms,
                    oldest_seq: current_seq,
                    oldest_unix_ms: None,
                });
            }
        };
        self.state_at(guild, seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy(guild: u64, epoch: u64, ms: u64) -> SupersededCopy {
        SupersededCopy {
            path: PathBuf::from(format!("/j/remote/superseded/{guild}-{epoch}-{ms}")),
            guild: GuildId(guild),
            epoch,
            set_aside_unix_ms: ms,
        }
    }

    #[test]
    fn superseded_rule_keeps_the_newest_per_guild_and_drops_the_old() {
        let copies = vec![
            copy(1, 1, 100),
            copy(1, 3, 300),
            copy(2, 2, 50),
            copy(1, 5, 500),
            copy(1, 7, 700),
        ];
        let two = SupersededRetention {
            age_max: None,
            per_guild_max: 2,
        };
        // Guild 1's two oldest go; guild 2's only copy stays.
        assert_eq!(superseded_to_remove(&copies, &two, 1_000), vec![0, 1]);
        // Zero counts as one: a guild's newest copy is never removed by count.
        let zero = SupersededRetention {
            per_guild_max: 0,
            ..two
        };
        assert_eq!(superseded_to_remove(&copies, &zero, 1_000), vec![0, 1, 3]);
        // By age: older than 400 ms (at 900, the copy of 500 is exactly 400 old and stays); a copy from the
        // future counts as new.
        let aged = SupersededRetention {
            age_max: Some(Duration::from_millis(400)),
            per_guild_max: usize::MAX,
        };
        assert_eq!(
            superseded_to_remove(&copies, &aged, 1_000),
            vec![0, 1, 2, 3]
        );
        assert_eq!(superseded_to_remove(&copies, &aged, 900), vec![0, 1, 2]);
        assert_eq!(superseded_to_remove(&copies, &aged, 0), Vec::<usize>::new());
        assert_eq!(
            superseded_to_remove(&copies, &SupersededRetention::keep_all(), u64::MAX),
            Vec::<usize>::new()
        );
    }
    use crate::config::Durability;
    use crate::session::State;
    use crate::session::{Event, Workload};

    fn snap(seq: Seq, created: u64, valid: bool) -> SnapshotStat {
        SnapshotStat {
            path: PathBuf::from(format!("{seq}.snap")),
            seq,
            bytes: 100,
            created_unix_ms: Some(created),
            valid,
        }
    }

    fn seg(first_seq: Seq, last_seq: Seq) -> SegmentSpan {
        SegmentSpan {
            first_seq,
            last_seq,
        }
    }

    const DAY: u64 = 86_400_000;

    #[test]
    fn retention_keeps_the_newest_valid_snapshots_and_the_log_after_the_oldest_kept() {
        let snapshots = [snap(10, 1, true), snap(20, 2, true), snap(30, 3, true)];
        let segments = [seg(1, 10), seg(11, 20), seg(21, 30), seg(31, 35)];
        let keep2 = RetentionPolicy {
            keep: 2,
            age_max: None,
        };
        let plan = retention_plan(&snapshots, &segments, &keep2, 10);
        assert_eq!(plan.snapshots, vec![10]);
        assert_eq!(plan.segments, vec![1, 11]);
        let keep1 = RetentionPolicy {
            keep: 1,
            age_max: None,
        };
        let plan = retention_plan(&snapshots, &segments, &keep1, 10);
        assert_eq!(plan.snapshots, vec![10, 20]);
        assert_eq!(plan.segments, vec![1, 11, 21]);
        // Fewer valid snapshots than `keep`: the empty state is a kept base, nothing goes.
        let keep5 = RetentionPolicy {
            keep: 5,
            age_max: None,
        };
        assert!(retention_plan(&snapshots, &segments, &keep5, 10).is_empty());
        // keep 0 means 1.
        let keep0 = RetentionPolicy {
            keep: 0,
            age_max: None,
        };
        assert_eq!(retention_plan(&snapshots, &segments, &keep0, 10), plan);
    }

    #[test]
    fn the_age_limit_never_removes_the_newest_valid_snapshot() {
        let snapshots = [
            snap(10, 0, true),
            snap(20, DAY, true),
            snap(30, 2 * DAY, true),
        ];
        let segments = [seg(1, 10), seg(11, 20), seg(21, 30), seg(31, 35)];
        let week = RetentionPolicy {
            keep: 100,
            age_max: Some(Duration::from_millis(7 * DAY)),
        };
        assert!(retention_plan(&snapshots, &segments, &week, 3 * DAY).is_empty());
        let plan = retention_plan(&snapshots, &segments, &week, 100 * DAY);
        assert_eq!(plan.snapshots, vec![10, 20]);
        assert_eq!(plan.segments, vec![1, 11, 21]);
        let day_and_a_half = RetentionPolicy {
            keep: 100,
            age_max: Some(Duration::from_millis(DAY + DAY / 2)),
        };
        let plan = retention_plan(&snapshots, &segments, &day_and_a_half, 3 * DAY);
        assert_eq!(plan.snapshots, vec![10, 20]);
    }

    #[test]
    fn damaged_snapshots_do_not_count() {
        // The newest snapshot is damaged: the newest valid one (20) and the log after it stay.
        let snapshots = [snap(10, 1, true), snap(20, 2, true), snap(30, 3, false)];
        let segments = [seg(1, 10), seg(11, 20), seg(21, 30), seg(31, 35)];
        let keep1 = RetentionPolicy {
            keep: 1,
            age_max: None,
        };
        let plan = retention_plan(&snapshots, &segments, &keep1, 10);
        assert_eq!(plan.snapshots, vec![10]);
        assert_eq!(plan.segments, vec![1, 11]);
        assert!(checked_plan(&snapshots, &segments, plan).is_ok());
        // No valid snapshot: nothing.
        let broken = [snap(10, 1, false)];
        assert!(retention_plan(&broken, &segments, &keep1, 10).is_empty());
    }

    #[test]
    fn a_plan_that_breaks_the_newest_state_is_refused() {
        // The log after snapshot 20 has a gap: the newest state (35) is rebuilt from 0 through
        // the complete log; removing the log before 20 would lose it.
        let snapshots = [snap(10, 1, true), snap(20, 2, true)];
        let segments = [seg(1, 10), seg(11, 20), seg(21, 25), seg(27, 35)];
        let plan = RetentionPlan {
            snapshots: vec![10],
            segments: vec![1, 11],
        };
        assert!(checked_plan(&snapshots, &segments, plan).is_err());
    }

    /// Whether the newest state (`head`) can be rebuilt from `snapshots` (valid ones) and the
    /// contiguous log `segments`: from a valid snapshot or the empty state, replaying the log.
    fn rebuildable(snapshots: &[SnapshotStat], segments: &[SegmentSpan], head: Seq) -> bool {
        let log_first = segments.first().map_or(head + 1, |s| s.first_seq);
        let log_last = segments.iter().map(|s| s.last_seq).max().unwrap_or(0);
        let bases = snapshots
            .iter()
            .filter(|s| s.valid)
            .map(|s| s.seq)
            .chain(std::iter::once(0));
        let covered = |b: Seq| b == head || (log_first <= b + 1 && log_last >= head);
        bases.into_iter().any(covered)
    }

    /// Every composition of `first..=last` into consecutive segments (`last < first`: one empty
    /// segment), each optionally followed by an empty active segment.
    fn layouts(first: Seq, last: Seq) -> Vec<Vec<SegmentSpan>> {
        let mut out = Vec::new();
        if last < first {
            out.push(vec![seg(first, first - 1)]);
            return out;
        }
        let cuts = (last - first) as u32;
        for mask in 0u32..(1 << cuts) {
            let mut segs = Vec::new();
            let mut start = first;
            for i in 0..cuts {
                if mask & (1 << i) != 0 {
                    let end = first + u64::from(i);
                    segs.push(seg(start, end));
                    start = end + 1;
                }
            }
            segs.push(seg(start, last));
            out.push(segs.clone());
            segs.push(seg(last + 1, last));
            out.push(segs);
        }
        out
    }

    /// The retention rule on every small guild: logs of up to 6 events starting at 1 (or
    /// compacted to start at 3), every split into segments, every snapshot seq absent, valid or
    /// damaged, `keep` 1 to 3, without an age limit or with one at every position.
    #[test]
    fn the_retention_rule_holds_on_every_small_guild() {
        let mut cases = 0u64;
        for log_first in [1, 3] {
            for head in log_first - 1..=6u64 {
                let snap_seqs: Vec<Seq> =
                    (log_first.max(2) - 1..=head).filter(|&s| s > 0).collect();
                let combos = 3u64.pow(snap_seqs.len() as u32);
                for layout in layouts(log_first, head) {
                    for combo in 0..combos {
                        let mut snapshots = Vec::new();
                        let mut c = combo;
                        for &seq in &snap_seqs {
                            match c % 3 {
                                1 => snapshots.push(snap(seq, seq * DAY, true)),
                                2 => snapshots.push(snap(seq, seq * DAY, false)),
                                _ => {}
                            }
                            c /= 3;
                        }
                        for keep in 1..=3u32 {
                            for age_at in std::iter::once(None).chain((0..=head + 1).map(Some)) {
                                let policy = RetentionPolicy {
                                    keep,
                                    age_max: age_at.map(|_| Duration::from_millis(10 * DAY)),
                                };
                                // Snapshots created before `limit` are old.
                                let now = age_at.map_or(0, |k| k * DAY + 10 * DAY);
                                check_rule(&snapshots, &layout, &policy, now, head);
                                cases += 1;
                            }
                        }
                    }
                }
            }
        }
        assert!(cases > 100_000, "{cases}");
    }

    fn check_rule(
        snapshots: &[SnapshotStat],
        segments: &[SegmentSpan],
        policy: &RetentionPolicy,
        now: u64,
        head: Seq,
    ) {
        let ctx = || format!("{snapshots:?} {segments:?} {policy:?} now {now}");
        let before = rebuildable(snapshots, segments, head);
        let decision = retention_decision(snapshots, segments, policy, now);
        let plan = match decision {
            Ok(plan) => plan,
            Err(_) => {
                // Refused only when recovery cannot rebuild the newest state now.
                assert!(!before, "refused although rebuildable: {}", ctx());
                return;
            }
        };
        assert!(before || plan.is_empty(), "{}", ctx());
        // Removed segments are the oldest ones, never the newest.
        assert!(plan.segments.len() < segments.len().max(1), "{}", ctx());
        for (removed, s) in plan.segments.iter().zip(segments) {
            assert_eq!(*removed, s.first_seq, "{}", ctx());
        }
        let kept_snapshots: Vec<SnapshotStat> = snapshots
            .iter()
            .filter(|s| !plan.snapshots.contains(&s.seq))
            .cloned()
            .collect();
        let kept_segments = &segments[plan.segments.len()..];
        // The newest state stays rebuildable.
        assert!(
            !before || rebuildable(&kept_snapshots, kept_segments, head),
            "{plan:?} breaks {}",
            ctx()
        );
        let valid: Vec<Seq> = snapshots
            .iter()
            .filter(|s| s.valid)
            .map(|s| s.seq)
            .collect();
        let kept_valid: Vec<Seq> = kept_snapshots
            .iter()
            .filter(|s| s.valid)
            .map(|s| s.seq)
            .collect();
        // The newest valid snapshot always stays; without an age limit the newest `keep` do,
        // and with fewer than `keep` nothing at all goes (the empty state is a base).
        if let Some(newest) = valid.last() {
            assert!(kept_valid.contains(newest), "{}", ctx());
        }
        if policy.age_max.is_none() {
            let keep = policy.keep as usize;
            assert!(
                valid
                    .iter()
                    .rev()
                    .take(keep)
                    .all(|s| kept_valid.contains(s)),
                "{}",
                ctx()
            );
            if valid.len() < keep {
                assert!(plan.is_empty(), "{}", ctx());
            }
            // Fewer valid snapshots never remove more (the journal's read-back shortcut).
            let all_valid: Vec<SnapshotStat> = snapshots
                .iter()
                .map(|s| SnapshotStat {
                    valid: true,
                    ..s.clone()
                })
                .collect();
            let optimistic = retention_plan(&all_valid, segments, policy, now);
            assert!(
                plan.snapshots
                    .iter()
                    .all(|s| optimistic.snapshots.contains(s)),
                "{}",
                ctx()
            );
            assert!(
                plan.segments.len() <= optimistic.segments.len(),
                "{}",
                ctx()
            );
        }
        // A damaged snapshot never counts: without it the same valid snapshots and segments go.
        let without_damaged: Vec<SnapshotStat> =
            snapshots.iter().filter(|s| s.valid).cloned().collect();
        let plain = retention_decision(&without_damaged, segments, policy, now).unwrap_or_default();
        let valid_removed: Vec<Seq> = plan
            .snapshots
            .iter()
            .copied()
            .filter(|s| valid.contains(s))
            .collect();
        assert_eq!(valid_removed, plain.snapshots, "{}", ctx());
        assert_eq!(plan.segments, plain.segments, "{}", ctx());
        // Nothing newer than the oldest kept valid snapshot is removed.
        if let Some(&oldest_kept) = kept_valid.first() {
            assert!(plan.snapshots.iter().all(|&s| s < oldest_kept), "{}", ctx());
        }
    }

    fn journal_with_snapshots(dir: &std::path::Path, count: usize) -> (GuildId, State) {
        let guild = GuildId(7);
        let config = Config::default()
            .without_auto_snapshots()
            .with_snapshots_retained(100)
            .with_segment_bytes_max(4 << 10);
        let mut journal = Journal::open(dir, config).unwrap();
        let mut bot = Workload::new(3);
        for _ in 0..count {
            for _ in 0..60 {
                let state = journal.state(guild).unwrap().state.clone();
                let event: Event = bot.next_event(&state);
                let _ = journal.append(guild, &event, Durability::None);
            }
            journal.snapshot_now(guild).unwrap();
        }
        for _ in 0..10 {
            let state = journal.state(guild).unwrap().state.clone();
            let _ = journal.append(guild, &bot.next_event(&state), Durability::None);
        }
        let state = journal.state(guild).unwrap().state.clone();
        journal.close().unwrap();
        (guild, state)
    }

    #[test]
    fn cleanup_removes_old_snapshots_and_log_and_keeps_the_state() {
        let dir = tempfile::tempdir().unwrap();
        let (guild, state) = journal_with_snapshots(dir.path(), 5);
        let mut journal = Journal::open(dir.path(), Config::default()).unwrap();
        let before = journal.stats(None, crate::journal::now_unix_ms()).unwrap();
        assert_eq!(before.snapshots(), 5);
        let segments_before = before.segments();
        let policy = RetentionPolicy {
            keep: 2,
            age_max: None,
        };
        let dry = journal.cleanup(&policy, None, 0, true).unwrap();
        assert_eq!(dry.snapshots_removed(), 3);
        assert_eq!(journal.stats(None, 0).unwrap().snapshots(), 5);
        let report = journal.cleanup(&policy, None, 0, false).unwrap();
        assert_eq!(
            report,
            CleanupReport {
                dry_run: false,
                ..dry
            }
        );
        assert!(report.segments_removed() > 0);
        let after = journal.stats(None, 0).unwrap();
        assert_eq!(after.snapshots(), 2);
        assert_eq!(
            after.segments(),
            segments_before - report.segments_removed()
        );
        assert_eq!(
            before.bytes_on_disk - after.bytes_on_disk,
            report.bytes_removed()
        );
        assert_eq!(after.events(), before.events());
        // Idempotent.
        assert!(journal
            .cleanup(&policy, None, 0, false)
            .unwrap()
            .removed
            .is_empty());
        assert_eq!(journal.state(guild).unwrap().state, state);
        // A loaded guild is left alone.
        let loaded = journal.cleanup(&policy, None, 0, false).unwrap();
        assert_eq!(loaded.skipped.len(), 1);
        journal.close().unwrap();
        let mut journal = Journal::open(dir.path(), Config::default()).unwrap();
        assert_eq!(journal.state(guild).unwrap().state, state);
        assert!(journal.verify().unwrap().is_sound());
    }

    #[test]
    fn cleanup_by_age_keeps_only_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let (guild, state) = journal_with_snapshots(dir.path(), 3);
        let mut journal = Journal::open(dir.path(), Config::default()).unwrap();
        let stats = journal.stats(Some(guild), 0).unwrap();
        let newest = stats.guilds[0].snapshots.last().unwrap().seq;
        let policy = RetentionPolicy {
            keep: 100,
            age_max: Some(Duration::from_secs(86_400)),
        };
        let now = crate::journal::now_unix_ms();
        assert!(journal
            .cleanup(&policy, None, now, false)
            .unwrap()
            .removed
            .is_empty());
        let report = journal
            .cleanup(&policy, None, now + 2 * DAY, false)
            .unwrap();
        assert_eq!(report.snapshots_removed(), 2);
        let stats = journal.stats(Some(guild), now).unwrap();
        let left: Vec<Seq> = stats.guilds[0].snapshots.iter().map(|s| s.seq).collect();
        assert_eq!(left, vec![newest]);
        assert_eq!(
            stats.guilds[0].log_first_seq.map(|f| f <= newest + 1),
            Some(true)
        );
        assert_eq!(journal.state(guild).unwrap().state, state);
    }
}

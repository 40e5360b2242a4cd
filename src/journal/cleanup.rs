//! Retention on demand ([`Journal::cleanup`], `reprise cleanup`): the retention rule
//! ([`retention_decision`]) applied now with a policy given by the caller: to guilds this journal
//! has not loaded by reading their directories the way `inspect` does, to loaded ones through
//! the retention pass a snapshot runs.

use super::retention::{retention_decision, RetentionPolicy, SegmentSpan};
use crate::error::{Error, Result};
use crate::ids::{GuildId, Seq};
use crate::journal::Journal;
use crate::layout;

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

impl Journal {
    /// Applies `policy` now to every guild (or `only` one), removing the snapshots and log
    /// segments it makes obsolete (the rule: `retention_plan`, shared with automatic retention); with `dry_run`, only
    /// reports what it would remove. Never removes what the newest state needs: a guild whose
    /// newest state cannot be rebuilt, or would be rebuilt differently, is skipped and reported.
    ///
    /// Works on guilds this journal has not recovered yet (a freshly opened journal, as the
    /// CLI uses) by reading their directories, and on guilds it has loaded (a running bot's,
    /// through [`crate::Reprise::cleanup`]) through what it holds in memory, the pass a
    /// snapshot runs; a loaded guild whose snapshot is being written is skipped and reported.
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
                // Loaded (a running bot's guild): the rule applied to what the journal holds
                // in memory, whose file lists follow the removals.
                match self.cleanup_loaded(guild, policy, now_unix_ms, dry_run)? {
                    Ok(done) if done.snapshots.is_empty() && done.segments.is_empty() => {}
                    Ok(done) => report.removed.push(done),
                    Err(reason) => report.skipped.push(Skipped { guild, reason }),
                }
                continue;
            }
            // One settled read of the guild's files (a reader of a live journal reads again
            // when a file it listed is gone).
            let (info, snapshots) = self.read_settled(
                |j| {
                    let info = j.inspect_once(guild)?;
                    let snapshots = j.snapshot_stats(guild, &info)?;
                    Ok((info, snapshots))
                },
                |_| None,
            )?;
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

impl Journal {
    /// [`Journal::cleanup`] of one guild this journal has loaded: the retention pass a
    /// snapshot runs, with `policy`. A guild with a snapshot job's seal still owed is left
    /// alone (its segments' durability is still being proven).
    fn cleanup_loaded(
        &mut self,
        guild: GuildId,
        policy: &RetentionPolicy,
        now_unix_ms: u64,
        dry_run: bool,
    ) -> Result<std::result::Result<GuildCleanup, String>> {
        if !dry_run {
            self.writable()?;
        }
        let (mut ctx, guilds) = self.split();
        let Some(log) = guilds.get_mut(&guild) else {
            return Ok(Ok(GuildCleanup {
                guild,
                snapshots: Vec::new(),
                segments: Vec::new(),
                bytes: 0,
            }));
        };
        if let Some(op) = log.poisoned {
            return Ok(Err(format!(
                "the guild's log is poisoned (a failed {op}); reopen the journal"
            )));
        }
        if log.owed_seals.iter().any(|seal| !seal.settled()) {
            return Ok(Err(
                "a snapshot of the guild is being written; its retention runs when it is done"
                    .into(),
            ));
        }
        let retained = ctx.retain_with(guild, log, policy, now_unix_ms, dry_run)?;
        Ok(retained.map(|r| GuildCleanup {
            guild,
            snapshots: r.snapshots,
            segments: r.segments,
            bytes: r.bytes,
        }))
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::Config;
    use crate::config::Durability;
    use crate::session::State;
    use crate::session::{Event, Workload};

    const DAY: u64 = 86_400_000;

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
        let before = journal.stats(None, crate::clock::now_unix_ms()).unwrap();
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
        journal.close().unwrap();
        let mut journal = Journal::open(dir.path(), Config::default()).unwrap();
        assert_eq!(journal.state(guild).unwrap().state, state);
        assert!(journal.verify().unwrap().is_sound());
    }

    /// A guild the journal has loaded (a running bot's) is cleaned through what the journal
    /// holds in memory: the same plan as for a guild read from its files, its file lists follow
    /// (appends, snapshots and a reopen after it are consistent).
    #[test]
    fn cleanup_of_a_loaded_guild_removes_the_same_and_the_journal_goes_on() {
        let (cold_dir, warm_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (guild, state) = journal_with_snapshots(cold_dir.path(), 5);
        journal_with_snapshots(warm_dir.path(), 5);
        let policy = RetentionPolicy {
            keep: 2,
            age_max: None,
        };
        let mut cold = Journal::open(cold_dir.path(), Config::default()).unwrap();
        let expected = cold.cleanup(&policy, None, 0, true).unwrap();
        assert_eq!(expected.snapshots_removed(), 3);
        let mut warm = Journal::open(warm_dir.path(), Config::default()).unwrap();
        assert_eq!(warm.state(guild).unwrap().state, state);
        let before = warm.stats(None, 0).unwrap();
        let dry = warm.cleanup(&policy, None, 0, true).unwrap();
        assert_eq!(dry, expected);
        let report = warm.cleanup(&policy, None, 0, false).unwrap();
        assert_eq!(
            report,
            CleanupReport {
                dry_run: false,
                ..expected
            }
        );
        let after = warm.stats(None, 0).unwrap();
        assert_eq!(after.snapshots(), 2);
        assert_eq!(
            after.segments(),
            before.segments() - report.segments_removed()
        );
        assert_eq!(
            before.bytes_on_disk - after.bytes_on_disk,
            report.bytes_removed()
        );
        assert!(warm
            .cleanup(&policy, None, 0, false)
            .unwrap()
            .removed
            .is_empty());
        // The journal goes on: appends, a snapshot (its own retention), a reopen.
        let mut bot = Workload::new(11);
        for _ in 0..100 {
            let now = warm.state(guild).unwrap().state.clone();
            let _ = warm.append(guild, &bot.next_event(&now), Durability::Always);
        }
        warm.snapshot_now(guild).unwrap();
        let state = warm.state(guild).unwrap().clone();
        warm.close().unwrap();
        let mut warm = Journal::open(warm_dir.path(), Config::default()).unwrap();
        assert_eq!(warm.state(guild).unwrap(), &state);
        assert!(warm.verify().unwrap().is_sound());
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
        let now = crate::clock::now_unix_ms();
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

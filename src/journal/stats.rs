//! Analytics ([`Journal::stats`], contract §2 `reprise stats`): per guild and in all, read
//! from the guild directories the way `inspect` does, without recovering (loading) the guilds.

use super::retention::{read_snapshot_stat, SnapshotStat};
use crate::error::{Error, Result};
use crate::ids::{GuildId, Seq};
use crate::journal::{GuildInfo, Journal};
use crate::layout;

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
    /// Bytes of the shared commit logs on disk: their file lengths, so the preallocated
    /// (reserved, zero) extension ahead of the newest records counts, as it occupies the
    /// disk (`reprise inspect` shows each commit log's records and where they end).
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

impl Journal {
    /// The snapshots of `guild` as maintenance sees them (header time, validity, size).
    pub(super) fn snapshot_stats(
        &self,
        guild: GuildId,
        info: &GuildInfo,
    ) -> Result<Vec<SnapshotStat>> {
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
        self.read_settled(|j| j.guild_stats_once(guild), |_| None)
    }

    /// One attempt of [`Journal::guild_stats`].
    fn guild_stats_once(&mut self, guild: GuildId) -> Result<GuildStats> {
        let info = self.inspect_once(guild)?;
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
        self.stats_with(only, now_unix_ms, &mut |_, _| {})
    }

    /// [`Journal::stats`], calling `on_guild(done, total)` after each guild is counted (for a
    /// progress display).
    ///
    /// # Errors
    /// As [`Journal::stats`].
    pub fn stats_with(
        &mut self,
        only: Option<GuildId>,
        now_unix_ms: u64,
        on_guild: &mut dyn FnMut(u64, u64),
    ) -> Result<Stats> {
        let guilds = match only {
            Some(guild) => vec![guild],
            None => self.guilds()?,
        };
        let total = guilds.len() as u64;
        let mut per_guild = Vec::with_capacity(guilds.len());
        for guild in guilds {
            per_guild.push(self.guild_stats(guild)?);
            on_guild(per_guild.len() as u64, total);
        }
        let (commit_log_bytes, lock_bytes) = self.shared_bytes()?;
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

    /// The bytes of the files no guild owns: the commit logs, and the lock file.
    ///
    /// # Errors
    /// [`Error::Io`] when the commit log directory cannot be listed.
    pub(crate) fn shared_bytes(&self) -> Result<(u64, u64)> {
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
        Ok((commit_log_bytes, lock_bytes))
    }
}

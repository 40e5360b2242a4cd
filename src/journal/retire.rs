//! Commit-log retirement ([`Journal::retire_commit_logs`]): every guild segment written since the
//! last retirement (and, after an unclean shutdown, every inherited one) is made durable by
//! its own fsync, and only then are the commit logs that covered them removed. A failed fsync
//! poisons retirement: the commit logs stay until a reopen restores from them.

use std::io;
use std::path::PathBuf;

use super::write::{sync_guild_dir, sync_segment};
use super::{GuildLog, Journal};
use crate::clock::now_unix_ms;
use crate::commit_log::{CommitIndex, CommitLog};
use crate::error::{Error, Result};
use crate::ids::GuildId;
use crate::layout::{self, GuildFile};
use crate::storage;

/// A retirement with at least this many dirty guilds starts with one `syncfs` (where offered) so
/// that the write-back of all of them starts at once; its per-file fsyncs remain the proof.
const SYNCFS_PREPASS_MIN: usize = 64;

impl Journal {
    /// Makes the guild segments durable on their own and drops the commit logs: every guild an
    /// earlier process's commit log mentions is recovered (repairing its segments), every guild
    /// segment written since the last retirement is fsynced, and only then are the commit logs
    /// removed. With `rotate`, a new commit log is started first; without, the next append
    /// starts one. Runs automatically when the commit log reaches
    /// [`Config::commit_bytes_max`] and at [`Journal::close`].
    ///
    /// # Errors
    /// A recovery or I/O error; the commit logs are then kept (they are still needed).
    ///
    /// [`Config::commit_bytes_max`]: crate::config::Config::commit_bytes_max
    pub fn retire_commit_logs(&mut self, rotate: bool) -> Result<()> {
        self.writable()?;
        let _span = tracing::info_span!("reprise.checkpoint").entered();
        for guild in self.recovered.guilds() {
            self.load(guild)?;
        }
        if let Some(damage) = &self.recovered.damage {
            return Err(Error::from(damage.clone()));
        }
        if let Some(commit) = self.commit.as_mut() {
            // Everything queued reaches the file first; its fsync is not needed (the guild
            // segments are about to be), but a poisoned log must not be dropped silently.
            commit.write()?;
        }
        if let Some(op) = self.retirement_poisoned {
            // The commit logs are kept until the journal is reopened.
            return Err(Error::Poisoned { guild: None, op });
        }
        if self.seals_in_flight > 0 {
            return Err(Error::io(
                "checkpoint",
                layout::commit_dir(&self.root),
                io::Error::other(format!(
                    "{} snapshot job(s) still owe the fsync of a sealed segment; hand them back \
                     (snapshot_finish or snapshot_failed) first",
                    self.seals_in_flight
                )),
            ));
        }
        // A poisoned guild's segment may lack frames its commit records hold (a failed write)
        // or have had its write-back dropped by a failed fsync, which a later fsync does not
        // report: its commit records are still needed.
        if let Some((&guild, op)) = self
            .guilds
            .iter()
            .find_map(|(g, log)| log.poisoned.map(|op| (g, op)))
        {
            return Err(Error::Poisoned {
                guild: Some(guild),
                op,
            });
        }
        self.sync_segments()?;
        // Guilds an earlier commit log names: their segments are rewritten (see
        // make_inherited_durable) before that commit log is dropped.
        for guild in self.recovered.guilds() {
            if let Err(e) = self.settle_inherited(guild) {
                self.retirement_poisoned = Some("fsync");
                return Err(e);
            }
        }
        if self.unclean {
            self.sync_everything_inherited()?;
        }
        let mut obsolete: Vec<PathBuf> = self.recovered.paths().cloned().collect();
        // The next commit log exists (durably) before the current one is let go: if it cannot
        // be created (a full disk), the current one stays in use and nothing changes.
        let next = match (&self.commit, rotate) {
            (Some(current), true) => {
                let mut next = CommitLog::create(
                    self.storage.as_ref(),
                    &self.root,
                    current.generation + 1,
                    now_unix_ms(),
                    self.config.commit_prealloc_bytes,
                )?;
                if let Err(e) = next.sync(self.storage.as_ref()) {
                    let _ = self.storage.remove(&next.path);
                    return Err(e);
                }
                Some(next)
            }
            _ => None,
        };
        if let Some(old) = self.commit.take() {
            obsolete.push(old.path.clone());
            self.commit = next;
        }
        for path in &obsolete {
            match self.storage.remove(path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("remove checkpointed commit log", path, e)),
            }
        }
        if !obsolete.is_empty() {
            let dir = layout::commit_dir(&self.root);
            self.storage
                .sync_dir(&dir)
                .map_err(|e| Error::io("fsync directory", &dir, e))?;
        }
        self.recovered = CommitIndex::default();
        metrics::counter!(crate::telemetry::CHECKPOINTS_TOTAL).increment(1);
        Ok(())
    }

    /// Makes every file and directory entry written since the last retirement durable, each by
    /// its own `fsync`, so that the retirement's proof never rests on `syncfs` (a no-op on FUSE
    /// file systems, and silent about write-back errors before Linux 5.8 or when another
    /// descriptor consumed them): an `fdatasync` of every dirty guild segment through the
    /// descriptor that wrote it (segments closed earlier were fsynced when closed), then an
    /// fsync of every guild directory with a new entry, then of `guilds/` and the root when a
    /// guild directory or `guilds/` is new. The fsyncs run on up to
    /// [`Storage::sync_parallelism`] threads. One `syncfs` goes first where the storage offers
    /// it, only to start all the write-back at once. A failure poisons retirement
    /// (fsyncgate: a retry could falsely succeed), so the commit logs stay until a reopen
    /// restores from them.
    ///
    /// [`Storage::sync_parallelism`]: crate::storage::Storage::sync_parallelism
    fn sync_segments(&mut self) -> Result<()> {
        if let Err(e) = self.flush_buffers(None) {
            self.retirement_poisoned = Some("write");
            return Err(e);
        }
        let dirty = self
            .guilds
            .values()
            .filter(|l| {
                l.unsynced || l.dir_unsynced || l.parent_unsynced || !l.owed_seals.is_empty()
            })
            .count();
        if dirty == 0 {
            return Ok(());
        }
        // A pre-pass only (see above): nothing is marked durable on its word. Worth it only
        // when there are many files to fsync.
        if dirty >= SYNCFS_PREPASS_MIN {
            if let Err(e) = self.storage.sync_filesystem(&self.root) {
                self.retirement_poisoned = Some("syncfs");
                return Err(Error::io("syncfs", &self.root, e));
            }
        }
        let threads = self.storage.sync_parallelism();
        let (root, storage) = (self.root.as_path(), self.storage.as_ref());
        let work: Vec<(GuildId, &mut GuildLog)> = self
            .guilds
            .iter_mut()
            .filter(|(_, l)| l.unsynced || !l.owed_seals.is_empty())
            .map(|(g, l)| (*g, &mut **l))
            .collect();
        let synced: Result<()> = storage::in_parallel(threads, work, |(guild, log)| {
            sync_segment(root, storage, guild, log)
        })
        .into_iter()
        .collect();
        if synced.is_err() {
            self.retirement_poisoned = Some("fsync");
            return synced;
        }
        let work: Vec<(GuildId, &mut GuildLog)> = self
            .guilds
            .iter_mut()
            .filter(|(_, l)| l.dir_unsynced)
            .map(|(g, l)| (*g, &mut **l))
            .collect();
        let synced: Result<()> = storage::in_parallel(threads, work, |(guild, log)| {
            sync_guild_dir(root, storage, guild, log)
        })
        .into_iter()
        .collect();
        if synced.is_err() {
            self.retirement_poisoned = Some("fsync directory");
            return synced;
        }
        if self.guilds.values().any(|l| l.parent_unsynced) {
            // `guilds/` itself may be new too: its entry is in the root.
            for dir in [layout::guilds_dir(root), root.to_path_buf()] {
                if let Err(e) = storage.sync_dir(&dir) {
                    self.retirement_poisoned = Some("fsync directory");
                    return Err(Error::io("fsync directory", dir, e));
                }
            }
            for log in self.guilds.values_mut() {
                log.parent_unsynced = false;
            }
        }
        Ok(())
    }

    /// The first retirement after an unclean shutdown cannot tell which guilds the dead process
    /// left written but not durable (a guild's frames may have reached its segment while their
    /// commit records were still buffered, so the old commit logs do not name it). Before those
    /// commit logs go, every guild's files are made durable by their own fsyncs, never by
    /// `syncfs` alone (offered, it runs first as a pre-pass): every segment is fdatasynced (a
    /// new descriptor: the dead process's are gone; Linux reports a write-back error no
    /// descriptor has seen to a new one, and the segments the old commit logs name were
    /// rewritten, see `make_inherited_durable`), then every guild directory, `guilds/` and the
    /// root. The guilds run on up to [`Storage::sync_parallelism`] threads.
    ///
    /// [`Storage::sync_parallelism`]: crate::storage::Storage::sync_parallelism
    fn sync_everything_inherited(&mut self) -> Result<()> {
        let guilds = self.guilds()?;
        if guilds.len() >= SYNCFS_PREPASS_MIN {
            if let Err(e) = self.storage.sync_filesystem(&self.root) {
                self.retirement_poisoned = Some("syncfs");
                return Err(Error::io("syncfs", &self.root, e));
            }
        }
        let threads = self.storage.sync_parallelism();
        let (root, storage) = (self.root.as_path(), self.storage.as_ref());
        let synced: std::result::Result<(), (&'static str, Error)> =
            storage::in_parallel(threads, guilds, |guild| {
                let dir = layout::guild_dir(root, guild);
                let names = storage
                    .list(&dir)
                    .map_err(|e| ("list", Error::io("list", &dir, e)))?;
                for name in names {
                    if !matches!(layout::parse_guild_file(&name), GuildFile::Segment(_)) {
                        continue;
                    }
                    let path = dir.join(&name);
                    storage
                        .open_append(&path)
                        .and_then(|mut f| f.sync_data())
                        .map_err(|e| ("fsync", Error::io("fsync", path, e)))?;
                }
                storage
                    .sync_dir(&dir)
                    .map_err(|e| ("fsync directory", Error::io("fsync directory", &dir, e)))
            })
            .into_iter()
            .collect();
        if let Err((op, e)) = synced {
            // A failed listing proves nothing lost; still, the commit logs stay.
            self.retirement_poisoned = Some(op);
            return Err(e);
        }
        for dir in [layout::guilds_dir(&self.root), self.root.clone()] {
            match self.storage.sync_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    self.retirement_poisoned = Some("fsync directory");
                    return Err(Error::io("fsync directory", dir, e));
                }
            }
        }
        self.unclean = false;
        Ok(())
    }
}

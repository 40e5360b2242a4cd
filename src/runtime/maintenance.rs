//! The rest of [`Journal`]'s API on the async handle: restores, named checkpoints and paced
//! rollbacks, `verify`, `inspect`, `stats`, `cleanup`, Sonora import and export, so that a
//! running bot never has to stop (and give up the directory's lock) to use them.
//!
//! Each is a [`Command::Work`] on the actor's bounded channel with a oneshot reply: the writer
//! runs it between two groups, on the journal it owns, after the snapshots in flight that the
//! work could race with have finished. Work over many guilds is **paged**: one command per
//! page of guilds, each page stopping after [`PAGE_TIME_MAX`], so appends of other guilds wait
//! at most about one page (they are taken between pages, each in its group commit). A rollback
//! is one command per guild, paced on the caller's side.
//!
//! Events appended here (a restore, a rollback, an import) go through the journal's own
//! `append` (durable before the call returns); [`Actor::appended_outside`] then does what the
//! append path does for them: subscribers get them, the durability watch moves, the guild is
//! due for its background snapshot and (with `remote`) for shipping.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::actor::Actor;
use super::{Command, Reprise};
use crate::checkpoints::{self, Checkpoint, RollbackOptions, RolledBack};
use crate::error::Result;
use crate::ids::{GuildId, Seq};
use crate::import::{self, ImportError, Imported};
use crate::journal::{
    CleanupReport, GuildInfo, GuildState, GuildStats, RetentionPolicy, Stats, VerifyReport,
};
use crate::restore::{self, Restored};
use crate::session::State;
use crate::sonora::{self, Sections, SonoraFile};

/// The longest one page of paged work (verify, stats, cleanup, the check of a rollback's state
/// files) runs on the writer before appends get their turn.
pub const PAGE_TIME_MAX: Duration = Duration::from_millis(5);

/// Which snapshots in flight must finish before a piece of work runs (it may write or read
/// the files they are writing).
pub(super) enum WaitFor {
    /// None.
    Nothing,
    /// Those of these guilds.
    Guilds(Vec<GuildId>),
    /// Every one.
    All,
}

impl WaitFor {
    /// Whether the actor still has to wait, given its snapshots in flight.
    pub(super) fn waits(&self, actor: &Actor) -> bool {
        match self {
            WaitFor::Nothing => false,
            WaitFor::Guilds(guilds) => guilds.iter().any(|g| actor.in_flight.contains_key(g)),
            WaitFor::All => !actor.in_flight.is_empty(),
        }
    }
}

/// Work the writer runs on its journal (it answers its own reply).
pub(super) type Work = Box<dyn FnOnce(&mut Actor) + Send>;

impl Actor {
    /// What the append path does for events appended by the journal itself (restores,
    /// rollbacks, imports: durable already): publish them, move the guild's durability watch,
    /// note the guild for its background snapshot and for shipping.
    pub(super) fn appended_outside(&mut self, guild: GuildId, before: Seq) {
        let Ok(after) = self.journal.state(guild).map(|s| s.seq) else {
            return;
        };
        if after <= before {
            return;
        }
        if let Some(tx) = self.durable_watches.get(&guild) {
            tx.send_if_modified(|durable| {
                let moved = *durable < after;
                *durable = (*durable).max(after);
                moved
            });
        }
        self.dirty_since.entry(guild).or_insert_with(Instant::now);
        #[cfg(feature = "remote")]
        if let Some(s) = self.shipping.as_mut() {
            s.unshipped.insert(guild, after);
        }
        if self.subscribers.contains_key(&guild) {
            // Read back from the log: the journal built the events (the restore's target).
            let logged: Vec<Arc<crate::journal::LoggedEvent>> = match self.journal.events(guild) {
                Ok(iter) => iter
                    .filter_map(std::result::Result::ok)
                    .filter(|e| e.seq > before)
                    .map(Arc::new)
                    .collect(),
                Err(_) => Vec::new(),
            };
            self.publish(guild, &logged);
        }
        self.snapshot_by_size(guild);
    }

    /// Runs `f` on one guild as a restore does: refused when the guild is fenced, its new
    /// events handed on ([`Actor::appended_outside`]) whatever `f` returns.
    fn restoring<T>(
        &mut self,
        guild: GuildId,
        f: impl FnOnce(&mut crate::Journal) -> Result<T>,
    ) -> Result<T> {
        self.check_fenced(guild)?;
        let before = self.journal.state(guild)?.seq;
        let result = f(&mut self.journal);
        self.appended_outside(guild, before);
        result
    }
}

impl Reprise {
    /// Runs `f` on the writer thread with the journal, once the snapshots `wait` names are
    /// written, after the appends waiting for their group commit were committed.
    pub(super) async fn work<T: Send + 'static>(
        &self,
        wait: WaitFor,
        f: impl FnOnce(&mut Actor) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.call(|reply| Command::Work {
            wait,
            work: Box::new(move |actor: &mut Actor| {
                let committed = if actor.pending.is_empty() {
                    Ok(())
                } else {
                    actor.commit()
                };
                let _ = reply.send(committed.and_then(|()| f(actor)));
            }),
        })
        .await
    }

    /// Runs `each` on every item, as many items per command as fit in [`PAGE_TIME_MAX`] (at
    /// least one), and returns the results in order.
    async fn paged<I, T>(
        &self,
        items: Vec<I>,
        each: impl Fn(&mut Actor, &I) -> Result<T> + Send + Sync + 'static,
    ) -> Result<Vec<T>>
    where
        I: Send + Sync + 'static,
        T: Send + 'static,
    {
        let each = Arc::new(each);
        let items = Arc::new(items);
        let mut out = Vec::with_capacity(items.len());
        while out.len() < items.len() {
            let from = out.len();
            let (each, items) = (Arc::clone(&each), Arc::clone(&items));
            let page = self
                .work(WaitFor::All, move |actor| {
                    let started = Instant::now();
                    let mut page = Vec::new();
                    for item in items.get(from..).unwrap_or(&[]) {
                        page.push(each(actor, item)?);
                        if started.elapsed() >= PAGE_TIME_MAX {
                            break;
                        }
                    }
                    Ok(page)
                })
                .await?;
            out.extend(page);
        }
        Ok(out)
    }

    /// Every guild with a directory (see [`Journal::guilds`](crate::Journal::guilds)).
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io), [`Error::Closed`](crate::Error::Closed).
    ///
    /// # Cancel safety
    /// Cancel safe (reads only).
    pub async fn guilds(&self) -> Result<Vec<GuildId>> {
        self.work(WaitFor::Nothing, |a| a.journal.guilds()).await
    }

    /// The guild's state as of a point in time (see
    /// [`Journal::state_at_time`](crate::Journal::state_at_time)).
    ///
    /// # Errors
    /// As [`Journal::state_at_time`](crate::Journal::state_at_time), [`Error::Closed`](crate::Error::Closed).
    ///
    /// # Cancel safety
    /// Cancel safe (reads only).
    pub async fn state_at_time(&self, guild: GuildId, at_unix_ms: u64) -> Result<GuildState> {
        self.work(WaitFor::Nothing, move |a| {
            a.journal.state_at_time(guild, at_unix_ms)
        })
        .await
    }

    /// Makes `target` the guild's current state as one `state_restored` event, with a restore
    /// point, a check and an undo: [`restore::restore_state`] on the writer (the guild's other
    /// appends wait for it; other guilds' only for this one command).
    ///
    /// # Errors
    /// As [`restore::restore_state`]; [`Error::Fenced`](crate::Error::Fenced) for a guild a newer owner claimed;
    /// [`Error::Closed`](crate::Error::Closed).
    ///
    /// # Cancel safety
    /// Once the writer received the command the restore runs to its end (restored, or undone)
    /// even if the future is dropped; before, nothing happens.
    pub async fn restore_state(
        &self,
        guild: GuildId,
        target: State,
        from_seq: Option<Seq>,
        label: Option<String>,
    ) -> Result<Restored> {
        self.work(WaitFor::Guilds(vec![guild]), move |a| {
            a.restoring(guild, |j| {
                restore::restore_state(j, guild, &target, from_seq, label.as_deref())
            })
        })
        .await
    }

    /// Makes the guild's state as of event `seq` current again ([`restore::restore_to`]).
    ///
    /// # Errors
    /// As [`restore::restore_to`], [`Error::Fenced`](crate::Error::Fenced), [`Error::Closed`](crate::Error::Closed).
    ///
    /// # Cancel safety
    /// As [`Reprise::restore_state`].
    pub async fn restore_to(
        &self,
        guild: GuildId,
        seq: Seq,
        label: Option<String>,
    ) -> Result<Restored> {
        self.work(WaitFor::Guilds(vec![guild]), move |a| {
            a.restoring(guild, |j| {
                restore::restore_to(j, guild, seq, label.as_deref())
            })
        })
        .await
    }

    /// Makes the guild's state as of a point in time current again
    /// ([`restore::restore_to_time`]).
    ///
    /// # Errors
    /// As [`restore::restore_to_time`], [`Error::Fenced`](crate::Error::Fenced), [`Error::Closed`](crate::Error::Closed).
    ///
    /// # Cancel safety
    /// As [`Reprise::restore_state`].
    pub async fn restore_to_time(
        &self,
        guild: GuildId,
        at_unix_ms: u64,
        label: Option<String>,
    ) -> Result<Restored> {
        self.work(WaitFor::Guilds(vec![guild]), move |a| {
            a.restoring(guild, |j| {
                restore::restore_to_time(j, guild, at_unix_ms, label.as_deref())
            })
        })
        .await
    }

    /// Takes the named checkpoint `label` of every guild ([`checkpoints::checkpoint`]). One
    /// command, so the checkpoint is one consistent cut: every append acknowledged before the
    /// call is in it, and appends sent meanwhile wait until it is written (one compressed state
    /// per guild).
    ///
    /// # Errors
    /// As [`checkpoints::checkpoint`], [`Error::Closed`](crate::Error::Closed).
    ///
    /// # Cancel safety
    /// Once the writer received the command, the checkpoint is taken even if the future is
    /// dropped.
    pub async fn checkpoint(&self, label: &str) -> Result<Checkpoint> {
        let label = label.to_owned();
        self.work(WaitFor::Nothing, move |a| {
            checkpoints::checkpoint(&mut a.journal, &label)
        })
        .await
    }

    /// Every checkpoint, oldest first ([`checkpoints::checkpoints`]).
    ///
    /// # Errors
    /// As [`checkpoints::checkpoints`], [`Error::Closed`](crate::Error::Closed).
    ///
    /// # Cancel safety
    /// Cancel safe (reads only).
    pub async fn checkpoints(&self) -> Result<Vec<Checkpoint>> {
        self.work(WaitFor::Nothing, |a| checkpoints::checkpoints(&a.journal))
            .await
    }

    /// The checkpoint `label` ([`checkpoints::load_checkpoint`]).
    ///
    /// # Errors
    /// As [`checkpoints::load_checkpoint`], [`Error::Closed`](crate::Error::Closed).
    ///
    /// # Cancel safety
    /// Cancel safe (reads only).
    pub async fn load_checkpoint(&self, label: &str) -> Result<Checkpoint> {
        let label = label.to_owned();
        self.work(WaitFor::Nothing, move |a| {
            checkpoints::load_checkpoint(&a.journal, &label)
        })
        .await
    }

    /// Removes the checkpoint `label` ([`checkpoints::remove_checkpoint`]).
    ///
    /// # Errors
    /// As [`checkpoints::remove_checkpoint`], [`Error::Closed`](crate::Error::Closed).
    ///
    /// # Cancel safety
    /// Once the writer received the command, the checkpoint is removed even if the future is
    /// dropped.
    pub async fn remove_checkpoint(&self, label: &str) -> Result<()> {
        let label = label.to_owned();
        self.work(WaitFor::Nothing, move |a| {
            checkpoints::remove_checkpoint(&mut a.journal, &label)
        })
        .await
    }

    /// Rolls guilds back to checkpoint `label` as [`checkpoints::rollback`] does, while the
    /// bot runs: every selected state file is checked first (paged), then each guild is rolled
    /// back by a command of its own, batch `k` starting no earlier than `k × pace` after the
    /// first (tokio's clock); `on_guild` is called after each guild. Appends to a guild sent
    /// before its command are superseded by its `state_restored` event, those sent after it
    /// apply on top of the restored state; appends to other guilds go on between the commands.
    ///
    /// # Errors
    /// As [`checkpoints::rollback`]; [`Error::Fenced`](crate::Error::Fenced) for a guild a newer owner claimed;
    /// [`Error::Closed`](crate::Error::Closed).
    ///
    /// # Cancel safety
    /// Dropping the future stops the rollback between two guilds: the guilds rolled back before
    /// stay rolled back, the guild whose command the writer received is rolled back too, the
    /// others are untouched. Running the rollback again finishes it (guilds already in the
    /// checkpointed state are `unchanged`, nothing appended twice).
    pub async fn rollback(
        &self,
        label: &str,
        options: &RollbackOptions,
        mut on_guild: impl FnMut(&RolledBack) + Send,
    ) -> Result<Vec<RolledBack>> {
        let label: Arc<str> = Arc::from(label);
        let selected = {
            let (label, options) = (Arc::clone(&label), options.clone());
            self.work(WaitFor::Nothing, move |a| {
                checkpoints::rollback_select(&a.journal, &label, &options)
            })
            .await?
        };
        {
            let label = Arc::clone(&label);
            self.paged(selected.clone(), move |a, e| {
                checkpoints::rollback_check(&a.journal, &label, e)
            })
            .await?;
        }
        let start = tokio::time::Instant::now();
        let mut done = Vec::with_capacity(selected.len());
        for (k, batch) in selected.chunks(options.batch.max(1)).enumerate() {
            if k > 0 && !options.pace.is_zero() {
                let due = u32::try_from(k)
                    .ok()
                    .and_then(|k| options.pace.checked_mul(k))
                    .and_then(|d| start.checked_add(d));
                if let Some(due) = due {
                    tokio::time::sleep_until(due).await;
                }
            }
            for &e in batch {
                let guild = GuildId(e.guild);
                let label = Arc::clone(&label);
                let rolled = self
                    .work(WaitFor::Guilds(vec![guild]), move |a| {
                        a.restoring(guild, |j| checkpoints::rollback_guild(j, &label, &e, k))
                    })
                    .await?;
                on_guild(&rolled);
                done.push(rolled);
            }
        }
        Ok(done)
    }

    /// Checks every file of every guild as [`Journal::verify`](crate::Journal::verify) does,
    /// paged: the shared findings first, then the guilds a page at a time, each guild checked as
    /// its page runs (so not one instant for the whole directory: a guild appended to between
    /// two pages is checked with its new events).
    ///
    /// # Errors
    /// As [`Journal::verify`](crate::Journal::verify), [`Error::Closed`](crate::Error::Closed).
    ///
    /// # Cancel safety
    /// Cancel safe (reads only).
    pub async fn verify(&self) -> Result<VerifyReport> {
        let (mut report, guilds) = self
            .work(WaitFor::All, |a| {
                let report = a.journal.verify_shared()?;
                Ok((report, a.journal.guilds()?))
            })
            .await?;
        let pages = self
            .paged(guilds, |a, &guild| {
                let mut one = VerifyReport::default();
                a.journal.verify_guild_paged(guild, &mut one)?;
                Ok(one)
            })
            .await?;
        for one in pages {
            report.guilds += one.guilds;
            report.files += one.files;
            report.events += one.events;
            report.findings.extend(one.findings);
        }
        Ok(report)
    }

    /// Describes the guild's files ([`Journal::inspect`](crate::Journal::inspect)).
    ///
    /// # Errors
    /// As [`Journal::inspect`](crate::Journal::inspect), [`Error::Closed`](crate::Error::Closed).
    ///
    /// # Cancel safety
    /// Cancel safe (reads only).
    pub async fn inspect(&self, guild: GuildId) -> Result<GuildInfo> {
        self.work(WaitFor::Guilds(vec![guild]), move |a| {
            a.journal.inspect(guild)
        })
        .await
    }

    /// One guild's statistics ([`Journal::guild_stats`](crate::Journal::guild_stats)).
    ///
    /// # Errors
    /// As [`Journal::guild_stats`](crate::Journal::guild_stats), [`Error::Closed`](crate::Error::Closed).
    ///
    /// # Cancel safety
    /// Cancel safe (reads only).
    pub async fn guild_stats(&self, guild: GuildId) -> Result<GuildStats> {
        self.work(WaitFor::Guilds(vec![guild]), move |a| {
            a.journal.guild_stats(guild)
        })
        .await
    }

    /// Statistics of the whole journal (or of `only` one guild) at `now_unix_ms`, as
    /// [`Journal::stats`](crate::Journal::stats) gives them, paged over the guilds (every
    /// guild's bytes count in the total, also with `only`).
    ///
    /// # Errors
    /// As [`Journal::stats`](crate::Journal::stats), [`Error::Closed`](crate::Error::Closed).
    ///
    /// # Cancel safety
    /// Cancel safe (reads only).
    pub async fn stats(&self, only: Option<GuildId>, now_unix_ms: u64) -> Result<Stats> {
        let guilds = self.guilds().await?;
        let all = self
            .paged(guilds, |a, &guild| a.journal.guild_stats(guild))
            .await?;
        let (commit_log_bytes, lock_bytes) = self
            .work(WaitFor::Nothing, |a| a.journal.shared_bytes())
            .await?;
        let guild_bytes: u64 = all.iter().map(GuildStats::bytes).sum();
        let guilds = match only {
            None => all,
            Some(guild) => match all.into_iter().find(|s| s.guild == guild) {
                Some(stats) => vec![stats],
                None => vec![self.guild_stats(guild).await?],
            },
        };
        Ok(Stats {
            now_unix_ms,
            guilds,
            commit_log_bytes,
            bytes_on_disk: guild_bytes + commit_log_bytes + lock_bytes,
        })
    }

    /// Applies the retention `policy` now ([`Journal::cleanup`](crate::Journal::cleanup)),
    /// paged over the guilds. A guild this runtime has loaded (one it appended to or read
    /// since it opened) is cleaned through what the journal holds in memory, as its own
    /// retention after a snapshot is; one whose snapshot is being written is skipped and
    /// reported (its retention runs when the snapshot is done).
    ///
    /// # Errors
    /// As [`Journal::cleanup`](crate::Journal::cleanup), [`Error::Closed`](crate::Error::Closed).
    ///
    /// # Cancel safety
    /// Dropping the future stops between two pages; what the pages before removed stays
    /// removed (never what the newest state needs), running it again goes on.
    pub async fn cleanup(
        &self,
        policy: &RetentionPolicy,
        only: Option<GuildId>,
        now_unix_ms: u64,
        dry_run: bool,
    ) -> Result<CleanupReport> {
        let guilds = match only {
            Some(guild) => vec![guild],
            None => self.guilds().await?,
        };
        let policy = *policy;
        let pages = self
            .paged(guilds, move |a, &guild| {
                a.journal
                    .cleanup(&policy, Some(guild), now_unix_ms, dry_run)
            })
            .await?;
        let mut report = CleanupReport {
            dry_run,
            ..CleanupReport::default()
        };
        for one in pages {
            report.guilds += one.guilds;
            report.removed.extend(one.removed);
            report.skipped.extend(one.skipped);
        }
        Ok(report)
    }

    /// Imports Sonora files (`(name, text)` pairs) as [`import::import_sonora`] does: every
    /// file is prepared (parsed, checked, turned into events) before anything is written, then
    /// every guild's events are appended and made durable with one sync. One command: appends
    /// of other guilds wait for it.
    ///
    /// # Errors
    /// As [`import::import_sonora`] (nothing written for a refused file);
    /// [`ImportError::Journal`] wrapping [`Error::Fenced`](crate::Error::Fenced) for a guild a newer owner claimed,
    /// or [`Error::Closed`](crate::Error::Closed).
    ///
    /// # Cancel safety
    /// Once the writer received the command the import runs to its end even if the future is
    /// dropped; before, nothing is written.
    pub async fn import_sonora(
        &self,
        files: Vec<(String, String)>,
    ) -> Result<Vec<Imported>, ImportError> {
        let outcome = self
            .work(WaitFor::All, move |a| {
                Ok((|| {
                    let plans = import::prepare_all(&mut a.journal, &files)?;
                    let mut before = Vec::with_capacity(plans.len());
                    for plan in &plans {
                        let guild = plan.guild();
                        let journal_error = |source| ImportError::Journal {
                            file: plan.file.clone(),
                            source,
                        };
                        a.check_fenced(guild).map_err(journal_error)?;
                        let seq = a.journal.state(guild).map_err(journal_error)?.seq;
                        before.push((guild, seq));
                    }
                    let result = import::apply_plans(&mut a.journal, &plans);
                    for (guild, seq) in before {
                        a.appended_outside(guild, seq);
                    }
                    result
                })())
            })
            .await;
        match outcome {
            Ok(result) => result,
            Err(source) => Err(ImportError::Journal {
                file: String::new(),
                source,
            }),
        }
    }

    /// The guild's current state as a Sonora 1.2.8 snapshot file (the sections in `only`,
    /// `timestamp` its creation time in Unix seconds), what `reprise export --format sonora`
    /// writes ([`sonora::from_state`]; [`sonora::to_json`] gives its text).
    ///
    /// # Errors
    /// As [`Reprise::state`].
    ///
    /// # Cancel safety
    /// Cancel safe (reads only).
    pub async fn export_sonora(
        &self,
        guild: GuildId,
        timestamp: u64,
        only: Sections,
    ) -> Result<SonoraFile> {
        let state = self.state(guild).await?;
        Ok(sonora::from_state(guild.0, timestamp, &state.state, only))
    }
}

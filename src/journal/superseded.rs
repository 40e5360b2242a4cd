//! The copies remote claims set aside (`remote/superseded/`): the rule that removes them
//! ([`superseded_to_remove`], pure) and [`Journal::remove_superseded`] that applies it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::config::SupersededRetention;
use crate::error::{Error, Result};
use crate::ids::GuildId;
use crate::journal::Journal;
use crate::layout;

/// A copy of a guild that a remote claim set aside
/// (`remote/superseded/<guild>-<epoch>-<unix_ms>/`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SupersededCopy {
    /// Its directory.
    pub path: PathBuf,
    /// The guild.
    pub guild: GuildId,
    /// The epoch this directory held when the copy was set aside (0: none).
    pub epoch: crate::ids::Epoch,
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

    /// Removes the superseded copies `rule` does not keep (the rule of [`crate::SupersededRetention`]), of
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn copy(guild: u64, epoch: u64, ms: u64) -> SupersededCopy {
        let epoch = crate::ids::Epoch(epoch);
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
}

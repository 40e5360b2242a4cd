//! Readers of a live journal (DESIGN.md, "Readers of a live journal"): a read-only
//! [`Journal`] takes no lock, so a writer may append, rotate, snapshot, remove files and retire
//! commit logs while it reads. Every read is one *attempt*: list, read, decide. An attempt that
//! a racing writer explains — a listed file gone (`NotFound`), or damage (a sequence gap
//! between files read at different moments, a record half written) — is thrown away with
//! everything the reader had read (the commit logs, the guilds' states), and the read starts
//! again from a fresh listing. Damage that two attempts in a row find identically is real and
//! is reported as it would be without a writer; reads that never settle end in
//! [`Error::Busy`].
//!
//! Nothing here runs for a writer ([`OpenMode::ReadWrite`]): it owns the directory, so nothing
//! changes under it.

use std::path::Path;
use std::time::Duration;

use super::{Journal, OpenMode};
use crate::commit_log::CommitIndex;
use crate::error::{Corruption, Error, Result};
use crate::storage::Storage;

/// Attempts of one read before [`Error::Busy`].
pub(crate) const READ_ATTEMPTS_MAX: u32 = 20;

/// Longest pause between two attempts (the n-th retry waits n ms, up to this).
const RETRY_PAUSE_MAX: Duration = Duration::from_millis(20);

/// What identifies an attempt's trouble: two attempts in a row with the same one found the
/// same thing, which a racing writer does not explain.
type Trouble = String;

/// The trouble in an error that a racing writer may explain: a file listed and then gone, or
/// damage. `None` for everything else (a missing key, a bad request), which a retry cannot
/// change.
fn trouble_of(error: &Error) -> Option<Trouble> {
    match error {
        Error::Io { op, path, source } if source.kind() == std::io::ErrorKind::NotFound => {
            Some(format!("could not {op} {}: not found", path.display()))
        }
        Error::Corrupt(c) => Some(corruption_trouble(c)),
        _ => None,
    }
}

/// A corruption as [`Trouble`]: where, what, and the values (so that a tail that moved on is
/// different trouble).
pub(super) fn corruption_trouble(c: &Corruption) -> Trouble {
    format!(
        "{} at {} of {} ({:?}/{:?})",
        c.kind.as_str(),
        c.offset,
        c.path.display(),
        c.expected,
        c.actual
    )
}

/// Runs `attempt` until it settles: its outcome is kept when it shows no trouble (`trouble`
/// of a success, [`trouble_of`] of an error), or the same trouble as the attempt before it.
/// Before each new attempt `reset` forgets what the failed one read and the reader pauses a
/// little (a writer between two steps of a rotation gets to finish it).
fn settle<S, T>(
    state: &mut S,
    dir: &Path,
    mut attempt: impl FnMut(&mut S) -> Result<T>,
    trouble: impl Fn(&T) -> Option<Trouble>,
    mut reset: impl FnMut(&mut S) -> Result<()>,
) -> Result<T> {
    let mut previous: Option<Trouble> = None;
    for n in 0..READ_ATTEMPTS_MAX {
        if n > 0 {
            std::thread::sleep(RETRY_PAUSE_MAX.min(Duration::from_millis(u64::from(n))));
            reset(state)?;
        }
        let outcome = attempt(state);
        let found = match &outcome {
            Ok(value) => trouble(value),
            Err(e) => trouble_of(e),
        };
        let Some(found) = found else {
            return outcome;
        };
        if previous.as_ref() == Some(&found) {
            return outcome;
        }
        tracing::debug!(dir = %dir.display(), attempt = n + 1, trouble = %found, "a live journal changed under a reader; reading again");
        previous = Some(found);
    }
    Err(Error::Busy {
        path: dir.to_path_buf(),
        attempts: READ_ATTEMPTS_MAX,
        last: previous.unwrap_or_default(),
    })
}

/// The commit logs, read for a reader: again from a fresh listing when a generation listed is
/// gone before it is read (retired) or a log looks damaged (a record being written).
pub(super) fn read_commit_index(storage: &dyn Storage, root: &Path) -> Result<CommitIndex> {
    settle(
        &mut (),
        root,
        |_| CommitIndex::read(storage, root),
        |index| index.damage.as_ref().map(corruption_trouble),
        |_| Ok(()),
    )
}

/// Runs the read `attempt`, which keeps no state between attempts, until it settles (for a
/// reader's reads outside a guild's files: the checkpoints).
pub(crate) fn read_again<T>(dir: &Path, mut attempt: impl FnMut() -> Result<T>) -> Result<T> {
    settle(&mut (), dir, |_| attempt(), |_| None, |_| Ok(()))
}

impl Journal {
    /// For a reader ([`OpenMode::ReadOnly`]): forgets every guild state and commit log read so
    /// far, so that the next read sees the directory as a live writer has made it since. A
    /// writer's handle is always current: for it this does nothing.
    ///
    /// # Errors
    /// As [`Journal::open_read_only`].
    pub fn refresh(&mut self) -> Result<()> {
        if self.mode == OpenMode::ReadWrite {
            return Ok(());
        }
        let recovered = read_commit_index(self.storage.as_ref(), &self.root)?;
        recovered.check_keys(self.config.keys.as_ref())?;
        self.recovered = recovered;
        self.guilds.clear();
        Ok(())
    }

    /// Runs the read `attempt` once for a writer; for a reader, until it settles (see the
    /// module docs), each new attempt after a [`Journal::refresh`]. `trouble` says what in a
    /// successful outcome a racing writer may explain (damage found), `None` when nothing.
    pub(super) fn read_settled<T>(
        &mut self,
        attempt: impl FnMut(&mut Journal) -> Result<T>,
        trouble: impl Fn(&T) -> Option<Trouble>,
    ) -> Result<T> {
        let mut attempt = attempt;
        if self.mode == OpenMode::ReadWrite {
            return attempt(self);
        }
        let dir = self.root.clone();
        settle(self, &dir, attempt, trouble, Journal::refresh)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::CorruptionKind;

    fn gone() -> Error {
        Error::io(
            "read",
            "/j/guilds/1/00000000000000000001.wal",
            std::io::Error::from(std::io::ErrorKind::NotFound),
        )
    }

    #[test]
    fn a_trouble_that_goes_away_is_read_again() {
        // (attempts, resets)
        let mut counts = (0u64, 0u64);
        let got = settle(
            &mut counts,
            Path::new("/j"),
            |(attempts, _)| {
                *attempts += 1;
                if *attempts < 3 {
                    Err(Error::from(
                        Corruption::new("/j/x", *attempts, CorruptionKind::SequenceGap)
                            .values(1, 2),
                    ))
                } else {
                    Ok(*attempts)
                }
            },
            |_| None,
            |(_, resets)| {
                *resets += 1;
                Ok(())
            },
        );
        assert_eq!(got.unwrap(), 3);
        assert_eq!(counts, (3, 2));
    }

    #[test]
    fn a_success_with_trouble_is_read_again_until_it_repeats() {
        let mut n = 0u64;
        let got = settle(
            &mut n,
            Path::new("/j"),
            |n| {
                *n += 1;
                Ok((*n).min(2))
            },
            |v| Some(format!("damage {v}")),
            |_| Ok(()),
        );
        assert_eq!(got.unwrap(), 2);
        assert_eq!(n, 3);
    }

    #[test]
    fn the_same_trouble_twice_is_reported_as_found() {
        let mut n = 0;
        let got: Result<()> = settle(
            &mut n,
            Path::new("/j"),
            |n| {
                *n += 1;
                Err(Error::from(Corruption::new(
                    "/j/x",
                    7,
                    CorruptionKind::FrameChecksum,
                )))
            },
            |_| None,
            |_| Ok(()),
        );
        assert!(matches!(got, Err(Error::Corrupt(c)) if c.offset == 7));
        assert_eq!(n, 2);
    }

    #[test]
    fn trouble_that_never_settles_is_busy() {
        let mut n = 0u64;
        let got: Result<()> = settle(
            &mut n,
            Path::new("/j"),
            |n| {
                *n += 1;
                Err(Error::from(Corruption::new(
                    "/j/x",
                    *n,
                    CorruptionKind::FrameChecksum,
                )))
            },
            |_| None,
            |_| Ok(()),
        );
        assert!(
            matches!(got, Err(Error::Busy { attempts, ref last, .. }) if attempts == READ_ATTEMPTS_MAX && last.contains("/j/x"))
        );
        assert_eq!(n, u64::from(READ_ATTEMPTS_MAX));
    }

    #[test]
    fn errors_no_writer_explains_are_not_retried() {
        let mut n = 0;
        let got: Result<()> = settle(
            &mut n,
            Path::new("/j"),
            |n| {
                *n += 1;
                Err(Error::ReadOnly)
            },
            |_| None,
            |_| Ok(()),
        );
        assert!(matches!(got, Err(Error::ReadOnly)));
        assert_eq!(n, 1);
        assert!(trouble_of(&gone()).is_some());
    }
}

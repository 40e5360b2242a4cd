//! Restores as a transaction: make a recorded state current again, crash-consistently, with a
//! check and an undo.
//!
//! A restore is **one** `state_restored` event ([`Event::StateRestored`]) appended to the guild's
//! log, so recovery after a crash at any moment gives either the state before the restore or
//! the restored one, never a mix (a multi-event rebuild, as `import` does, could stop halfway).
//! History is never rewritten: the events before the restore stay in the log, and `dump` shows
//! the restore as an event like any other.
//!
//! [`restore_state`] (and its short form [`safe_restore`], Sonora's `safe_snapshot_restore`
//! done right) runs these steps:
//!
//! 1. **Validate**: the target must be a state the fold could reach (every range and limit of
//!    contract §1, entry ids, history within the guild's `history_max`) and its event must fit
//!    in one frame. A refused target writes nothing ([`Error::InvalidEvent`],
//!    [`Error::EventTooLarge`]).
//! 2. **Record the restore point**: a snapshot of the current state ([`Journal::snapshot_now`]),
//!    so the pre-restore state is a file of its own, readable with `state --at` even after
//!    compaction drops older log.
//! 3. **Apply**: append the `state_restored` event with [`Durability::Always`].
//! 4. **Verify**: the guild's state in memory, and the state rebuilt from the files
//!    ([`Journal::state_from_files`]: the restore point and the appended record, read back from
//!    storage), must both equal what the event was meant to produce.
//! 5. **Undo on failure**: when step 4 fails, a second `state_restored` holding the state from
//!    before the restore is appended (label [`UNDO_LABEL`]) and [`Error::RestoreFailed`] is
//!    returned, naming both sequence numbers. When the failure poisoned the guild's log
//!    (verification first writes the buffered record to its segment: a write that cannot be
//!    cut back, or a failed fsync, poisons it), the log refuses the undo: the error says so
//!    (`rollback_seq: None`); the restore itself was acknowledged, so the restored state stays
//!    current until the caller reopens the journal and restores `previous_seq`.
//!
//! Crash argument: steps 1 and 2 do not change the guild's state (a snapshot is the state it
//! already has). Step 3 is one append: until its commit record is durable recovery returns the
//! pre-restore state, afterwards the restored one. Step 4 only reads (and writes the record it
//! already made durable to its segment). Step 5 is one append of the pre-restore state: before
//! it is durable recovery gives the restored state, afterwards the pre-restore one again. So a
//! crash at any storage operation recovers exactly one of the two states
//! (`tests/it/restore.rs` checks every operation). When the append of step 3 itself fails (an
//! I/O error: the guild is then poisoned), nothing can be undone in this process and the error
//! is returned as is; recovery gives one of the two states.
//!
//! ```
//! use reprise::restore::{restore_to, safe_restore};
//! use reprise::{Config, Durability, Event, GuildId, Journal};
//!
//! # fn main() -> Result<(), reprise::Error> {
//! let dir = tempfile::tempdir().unwrap();
//! let mut journal = Journal::open(dir.path(), Config::default())?;
//! let guild = GuildId(1);
//! journal.append(guild, &Event::VolumeSet { volume: 80 }, Durability::Always)?;
//! let before = journal.state(guild)?.clone();
//! journal.append(guild, &Event::VolumeSet { volume: 5 }, Durability::Always)?;
//! // Back to seq 1, as one event (seq 3); seqs 1 and 2 stay in the log.
//! let restored = restore_to(&mut journal, guild, before.seq, Some("too quiet"))?;
//! assert_eq!((restored.seq, restored.restored_from_seq), (3, Some(1)));
//! assert_eq!(journal.state(guild)?.state.player.volume, 80);
//! // Any valid state can be restored the same way.
//! let seq = safe_restore(&mut journal, guild, &reprise::State::default(), None)?;
//! assert_eq!((seq, journal.state(guild)?.state.player.volume), (4, 100));
//! # Ok(()) }
//! ```
//!
//! [`restore_to`] makes a past state of the guild current: its target is
//! [`restore_target`] of the state at that seq, which drops the position anchor (the recorded
//! position is restored exactly instead of being extrapolated across the time since) and keeps
//! entry ids growing.

use crate::config::Durability;
use crate::crypto::SEAL_OVERHEAD;
use crate::error::{Error, Result};
use crate::format::{self, frame};
use crate::ids::{GuildId, Seq};
use crate::journal::Journal;
use crate::session::{self, Event, State};

/// The label of the event that undoes a restore that did not verify.
pub const UNDO_LABEL: &str = "undo";

/// What a restore did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Restored {
    /// The guild.
    pub guild: GuildId,
    /// The sequence number of the `state_restored` event.
    pub seq: Seq,
    /// The guild's sequence number right before the restore (its state is the restore point,
    /// snapshotted unless it is 0).
    pub previous_seq: Seq,
    /// The sequence number whose state was restored, when it came from the guild's own log.
    pub restored_from_seq: Option<Seq>,
}

/// Makes `target` the guild's current state as one `state_restored` event, with a restore
/// point, a check and an undo; returns the event's sequence number. See the module docs.
///
/// # Errors
/// As [`restore_state`].
pub fn safe_restore(
    journal: &mut Journal,
    guild: GuildId,
    target: &State,
    label: Option<&str>,
) -> Result<Seq> {
    restore_state(journal, guild, target, None, label).map(|r| r.seq)
}

/// [`safe_restore`], recording in the event the sequence number the target state came from.
///
/// # Errors
/// [`Error::InvalidEvent`] / [`Error::EventTooLarge`] for a target that cannot be restored
/// (nothing written); [`Error::RestoreFailed`] when the appended restore did not verify (undone
/// when possible); the journal's errors ([`Error::Io`], [`Error::Poisoned`], recovery errors)
/// from the snapshot or the append.
pub fn restore_state(
    journal: &mut Journal,
    guild: GuildId,
    target: &State,
    from_seq: Option<Seq>,
    label: Option<&str>,
) -> Result<Restored> {
    let before = journal.state(guild)?.clone();
    let event = Event::StateRestored {
        state: Box::new(target.clone()),
        from_seq,
        label: label.map(str::to_owned),
    };
    session::validate(&before.state, &event)
        .map_err(|source| Error::InvalidEvent { guild, source })?;
    check_fits(guild, &event)?;
    let mut expected = before.state.clone();
    session::apply(&mut expected, &event);

    journal.snapshot_now(guild)?;
    let seq = journal.append(guild, &event, Durability::Always)?;

    match verify(journal, guild, seq, &expected) {
        Ok(()) => Ok(Restored {
            guild,
            seq,
            previous_seq: before.seq,
            restored_from_seq: from_seq,
        }),
        Err((reason, source)) => {
            let undo = Event::StateRestored {
                state: Box::new(before.state.clone()),
                from_seq: Some(before.seq),
                label: Some(UNDO_LABEL.to_owned()),
            };
            let (rollback_seq, reason) = match journal.append(guild, &undo, Durability::Always) {
                Ok(s) => (Some(s), reason),
                Err(e) => (None, format!("{reason}; the undo failed too: {e}")),
            };
            Err(Error::RestoreFailed {
                guild,
                seq,
                previous_seq: before.seq,
                rollback_seq,
                reason,
                source: source.map(Box::new),
            })
        }
    }
}

/// Makes the guild's state as of event `seq` current again by appending one `state_restored`
/// (target: [`restore_target`]), through [`restore_state`].
///
/// # Errors
/// [`Error::SeqAhead`] / [`Error::Compacted`] when the log does not hold that state any more
/// (nothing written); otherwise as [`restore_state`].
pub fn restore_to(
    journal: &mut Journal,
    guild: GuildId,
    seq: Seq,
    label: Option<&str>,
) -> Result<Restored> {
    let past = journal.state_at(guild, seq)?;
    let target = restore_target(&journal.state(guild)?.state, &past.state);
    restore_state(journal, guild, &target, Some(seq), label)
}

/// [`restore_to`] the state as of a point in time ([`Journal::state_at_time`]).
///
/// # Errors
/// [`Error::TimeCompacted`] when the log no longer reaches back to that time; otherwise as
/// [`restore_to`].
pub fn restore_to_time(
    journal: &mut Journal,
    guild: GuildId,
    at_unix_ms: u64,
    label: Option<&str>,
) -> Result<Restored> {
    let seq = journal.state_at_time(guild, at_unix_ms)?.seq;
    restore_to(journal, guild, seq, label)
}

/// The state that restoring `past` onto a guild whose state is `current` sets:
///
/// - `past` as recorded (player, queue with its entry ids, filters, autoplay);
/// - the position **exact**: a `position_reported` anchor is dropped, so a playing track resumes
///   at the position recorded, not at one extrapolated across the time since (which could be
///   days, and would end the track);
/// - `next_entry_id` the larger of both, so an id handed out after `past` is never handed out
///   again to another track;
/// - the guild's `history_max`.
pub fn restore_target(current: &State, past: &State) -> State {
    let mut target = past.clone();
    target.player.position_anchor_unix_ms = None;
    target.next_entry_id = past.next_entry_id.max(current.next_entry_id);
    target.history_max = current.history_max;
    target
}

/// Refuses an event whose frame would exceed the payload limit (sealed, it grows by
/// [`SEAL_OVERHEAD`]), before the restore point is written.
fn check_fits(guild: GuildId, event: &Event) -> Result<()> {
    let mut payload = Vec::new();
    format::encode_event(event, &mut payload);
    let len = (payload.len() + SEAL_OVERHEAD) as u64;
    let len_max = u64::from(frame::PAYLOAD_LEN_MAX);
    if len > len_max {
        return Err(Error::EventTooLarge {
            guild,
            len,
            len_max,
        });
    }
    Ok(())
}

/// Step 4: the state in memory and the state rebuilt from the files are both `expected` at
/// `seq`. On failure: what did not verify, and the error behind it.
fn verify(
    journal: &mut Journal,
    guild: GuildId,
    seq: Seq,
    expected: &State,
) -> std::result::Result<(), (String, Option<Error>)> {
    let live = journal
        .state(guild)
        .map_err(|e| ("the state could not be read".to_owned(), Some(e)))?;
    if live.seq != seq || live.state != *expected {
        return Err((
            format!(
                "the state in memory at seq {} is not the restored state",
                live.seq
            ),
            None,
        ));
    }
    let reread = journal.state_from_files(guild).map_err(|e| {
        (
            "the state could not be read back from the files".to_owned(),
            Some(e),
        )
    })?;
    if reread.seq != seq || reread.state != *expected {
        return Err((
            format!(
                "the state read back from the files at seq {} is not the restored state",
                reread.seq
            ),
            None,
        ));
    }
    Ok(())
}

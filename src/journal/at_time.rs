//! Point in time by the clock ([`Journal::state_at_time`]): the state as of a wall-clock
//! time.

use crate::error::{Error, Result};
use crate::ids::{GuildId, Seq};
use crate::journal::{GuildState, Journal};

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

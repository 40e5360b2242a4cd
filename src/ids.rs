//! Identifier newtypes shared by every layer.

use std::fmt;
use std::str::FromStr;

/// A Discord guild (server) id: the key of one independent session journal.
///
/// Guild ids are plain `u64` snowflakes. They are the only part of a file path that comes from the
/// outside, and they are always rendered as decimal digits (see [`crate::layout`]), so no input can
/// name a file outside the journal directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GuildId(pub u64);

impl GuildId {
    /// The raw snowflake.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for GuildId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl From<u64> for GuildId {
    fn from(id: u64) -> Self {
        GuildId(id)
    }
}

impl FromStr for GuildId {
    type Err = std::num::ParseIntError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse::<u64>().map(GuildId)
    }
}

/// A guild's event sequence number: events are numbered from 1, one by one, with no gaps.
///
/// `0` means "before the first event" (the empty state).
pub type Seq = u64;

/// The largest sequence number reprise accepts anywhere (2^62: more events than any guild will
/// ever have). Files claiming more are damaged; the bound keeps every `seq + 1` from
/// overflowing.
pub const SEQ_MAX: Seq = 1 << 62;

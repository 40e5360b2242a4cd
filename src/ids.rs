//! Identifier newtypes shared by every layer.

use std::fmt;
use std::str::FromStr;

/// A Discord guild (server) id: the key of one independent session journal.
///
/// Guild ids are plain `u64` snowflakes. They are the only part of a file path that comes from the
/// outside, and they are always rendered as decimal digits (see the file layout in DESIGN.md), so no input can
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

/// A `u64` identifier with a meaning: plain number in object keys and JSON (`serde(transparent)`),
/// `Display` honouring width and fill (`{x:020}` in object keys), `From<u64>`, `get`, and
/// `+ n` for the one `n` steps later.
macro_rules! numbered_id {
    ($(#[$doc:meta])* $name:ident, $none_doc:literal, $add_doc:literal) => {
        $(#[$doc])*
        #[derive(
            Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize,
            serde::Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl $name {
            #[doc = $none_doc]
            pub const NONE: $name = $name(0);

            /// The raw number.
            pub fn get(self) -> u64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl From<u64> for $name {
            fn from(n: u64) -> Self {
                $name(n)
            }
        }

        impl std::ops::Add<u64> for $name {
            type Output = $name;

            #[doc = $add_doc]
            fn add(self, n: u64) -> $name {
                $name(self.0 + n)
            }
        }
    };
}

numbered_id!(
    /// A guild's ownership epoch in the remote store (feature `remote`): each claim of a guild
    /// takes the next epoch, and an owner is fenced once a newer epoch exists.
    ///
    /// [`Epoch::NONE`] (0) means no epoch: a directory that never claimed the guild. In object
    /// keys and JSON it is the plain number.
    Epoch,
    "No epoch: the guild was never claimed by this directory.",
    "The epoch `n` claims later."
);

numbered_id!(
    /// A position in a writer's log in the remote store (feature `remote`): the objects
    /// `writers/<writer>/<position:020>` are numbered from 1, one by one, each created once.
    ///
    /// [`LogPosition::NONE`] (0) means "before the first object".
    LogPosition,
    "Before the first object of the log.",
    "The position `n` objects later."
);

numbered_id!(
    /// A commit log's generation: the file `commit/<generation:020>.clog`. A new generation
    /// starts at every commit-log retirement (and when a process opens a journal left
    /// unclean); generations only grow, from 1.
    ///
    /// [`Generation::NONE`] (0) means no commit log yet.
    Generation,
    "No commit log yet.",
    "The generation `n` retirements later."
);

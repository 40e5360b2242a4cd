//! # reprise
//!
//! Crash-consistent session persistence for music bots. Every player and queue mutation of a
//! guild is an [`Event`] appended to that guild's checksummed write-ahead log; snapshots fold
//! the log periodically; recovery loads the newest valid snapshot and replays the log after it,
//! so a restore gives exactly the acknowledged history.
//!
//! ```
//! use reprise::{Config, Durability, Event, GuildId, Journal};
//!
//! # fn main() -> Result<(), reprise::Error> {
//! let dir = tempfile::tempdir().unwrap();
//! let guild = GuildId(613425648685547541);
//! {
//!     let mut journal = Journal::open(dir.path(), Config::default())?;
//!     let event = Event::from_json(r#"{"type": "volume_set", "volume": 80}"#).unwrap();
//!     let seq = journal.append(guild, &event, Durability::Always)?;
//!     assert_eq!(seq, 1);
//! } // a crash here loses nothing: the append was fsynced
//! let mut journal = Journal::open(dir.path(), Config::default())?;
//! let recovered = journal.state(guild)?;
//! assert_eq!((recovered.seq, recovered.state.player.volume), (1, 80));
//! # Ok(()) }
//! ```
//!
//! The layers (see DESIGN.md for the byte layouts and the recovery table):
//! [`session`] is the music domain and the pure fold; [`format`](mod@format) encodes and decodes files
//! without I/O; [`storage`] is the only module touching the file system; [`recovery`] is a pure
//! decision; [`Journal`] ties them together.

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod clock;
mod commit_log;
pub mod config;
pub mod crypto;
pub mod deploy;
pub mod error;
pub mod format;
pub mod ids;
pub mod import;
pub mod journal;
pub mod journal_admin;
pub mod layout;
pub mod recovery;
pub mod remote;
pub mod restore;
pub mod runtime;
pub mod safe_restore;
pub mod session;
pub mod sonora;
pub mod storage;
pub mod telemetry;

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

pub use config::{BatchPolicy, Config, Durability, SupersededRetention};
pub use error::{Corruption, CorruptionKind, Error, Result};
pub use ids::{GuildId, Seq};
pub use journal::{
    EventIter, FileInfo, Finding, GuildInfo, GuildState, Journal, LoggedEvent, OpenMode,
    SnapshotJob, VerifyReport,
};
pub use runtime::{Reprise, Subscription, SubscriptionError};
pub use session::{Event, EventError, State};

//! # reprise
//!
//! Crash-consistent session persistence for music bots. Every player and queue mutation of a
//! guild is an [`Event`] appended to that guild's checksummed write-ahead log; snapshots fold
//! the log periodically; recovery loads the newest valid snapshot and replays the log after it,
//! so a restore gives exactly the acknowledged history.
//!
//! ## Where a bot starts
//!
//! - **[`Reprise`]**, for a bot on tokio: a cheap, cloneable handle to a journal owned by a
//!   writer thread. Appends from many tasks share fsyncs (group commit), snapshots are written
//!   in the background, and no file I/O runs on the bot's runtime. Open it once with
//!   [`Reprise::open`], clone it into every task, [`Reprise::shutdown`] at exit.
//! - **[`Journal`]**, for synchronous code (a script, a tool, a bot without an async runtime):
//!   the same journal on the caller's thread, [`Journal::open`], `append`, `state`. The
//!   `reprise` command-line tool is built on it.
//!
//! Both take a [`Config`] (segment size, snapshot policy, retention, encryption keys) and a
//! [`Durability`] per call or per guild; every failure is a typed [`Error`].
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
//! ```
//! use reprise::{Config, Event, GuildId, Reprise};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), reprise::Error> {
//! # let dir = tempfile::tempdir().unwrap();
//! let reprise = Reprise::open(dir.path(), Config::default()).await?;
//! let guild = GuildId(613425648685547541);
//! let seq = reprise.append(guild, Event::VolumeSet { volume: 80 }).await?; // durable now
//! assert_eq!(reprise.state(guild).await?.seq, seq);
//! reprise.shutdown().await?; // flushes, final snapshots, joins the threads
//! # Ok(()) }
//! ```
//!
//! Beyond the handles: [`sonora`] reads and writes Sonora 1.2.8 snapshot files and [`import`]
//! turns them into events; [`lavalink`] builds the Lavalink v4 request that restores a player;
//! [`restore`] makes a past state current as one event; [`checkpoints`] holds named
//! checkpoints and rollbacks; [`journal`] also has statistics, retention on demand and the
//! removal of superseded copies.
//!
//! ## Cargo features
//!
//! | feature | default | what it adds |
//! | --- | --- | --- |
//! | (none) | yes | everything above: both handles, events and state, Sonora files, Lavalink restore, restores and checkpoints, encryption at rest |
//! | `remote` | no | shipping to an S3-compatible object store and taking guilds over between machines: the `remote` module, `Reprise::open_with_remote` with `RemoteOptions`, `Reprise::claim`, `Durability::Remote` acknowledgements (brings in `object_store` and its AWS client) |
//! | `testing` | no | for tests, fuzz targets and benchmarks, not for bots: the internal layers made public (codecs, the storage trait and the simulated file system `storage::sim`, the file layout, the recovery decision), the workload generator (`session::Workload`), `Journal::open_with` / `Reprise::open_with_storage` over any storage, and with `remote` a fault-injecting object store (`remote::faulty`) and the batch format; hidden from this documentation, no stability promise |
//!
//! ```toml
//! [dependencies]
//! reprise = "0.1"                                        # local journal only
//! # reprise = { version = "0.1", features = ["remote"] } # and shipping to S3
//! ```
//!
//! ## Inside
//!
//! The layers (DESIGN.md has the code map, the byte layouts and the recovery table): [`session`]
//! is the music domain and the pure fold; the codecs encode and decode files without I/O; one
//! storage module is the only code touching the file system; recovery is a pure decision over
//! what was found on disk; [`Journal`] ties them together; [`runtime`] is the async handle around
//! it. The codecs, the storage trait, the file layout and the recovery decision are internal:
//! tests, fuzz targets and the bench reach them through the `testing` feature.

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod checkpoints;
pub mod clock;
mod commit_log;
pub mod config;
pub mod crypto;
pub mod error;
pub mod ids;
pub mod import;
pub mod journal;
pub mod lavalink;
#[cfg(feature = "remote")]
pub mod remote;
pub mod restore;
pub mod runtime;
pub mod session;
pub mod sonora;
pub mod telemetry;

// The internal layers. A bot never names them; with the `testing` feature (tests, fuzz targets,
// the CLI's bench) they are public but hidden from the documentation, with no stability promise.
macro_rules! internal_mods {
    ($($name:ident),*) => {$(
        #[cfg(feature = "testing")]
        #[doc(hidden)]
        pub mod $name;
        #[cfg(not(feature = "testing"))]
        mod $name;
    )*};
}
internal_mods!(format, layout, recovery, storage);

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

pub use config::{BatchPolicy, Config, Durability, SupersededRetention};
pub use error::{Corruption, CorruptionKind, Error, Result};
pub use ids::{Epoch, Generation, GuildId, LogPosition, Seq};
pub use journal::{
    EventIter, FileInfo, Finding, GuildInfo, GuildState, Journal, LoggedEvent, OpenMode,
    SnapshotJob, VerifyReport,
};
pub use runtime::Ordered;
#[cfg(feature = "remote")]
pub use runtime::RemoteOptions;
pub use runtime::{Reprise, Subscription, SubscriptionError};
pub use session::{Event, EventError, State};

//! A guild's journal in an object store: shipping, fenced ownership, claiming elsewhere.
//!
//! Everything here goes through [`object_store::ObjectStore`] and uses exactly one conditional
//! write, *create if absent* (`PutMode::Create`: S3's `If-None-Match: *`, a hard link on a
//! local directory), which every backend reprise targets supports. The layout, the object
//! formats and the argument that no acknowledged event is lost and no two owners acknowledge
//! the same sequence number are in DESIGN.md ("Remote"). In short:
//!
//! ```text
//! PREFIX/writers/<writer>/<position:020>    a directory's log: batches (one per shipping round,
//!                                           every guild it carried: group commit to the
//!                                           store) or `fence` markers written by claims
//! PREFIX/guilds/<guild>/
//!   claim/<epoch:020>                       who claimed the guild at that epoch, with the
//!                                           writer log and position its events start at
//!   snap/<seq:020>-<epoch:020>.snap         a snapshot file, uploaded by that epoch's owner
//!                                           once the epoch's history reaches it
//!   snap/<seq:020>-<epoch:020>.skip         the same, uploaded on the skip path before the
//!                                           skip entry naming it (history only through it)
//! ```
//!
//! Every object is created once and never rewritten. A writer creates its log's positions
//! one after the other; a claim closes the previous owner's epoch by creating a `fence` for
//! the guild at the next position of that owner's log. Whoever creates a position first wins
//! it, so the old owner either stored its batch before the fence (and the claim reads it) or
//! finds the fence, stops acknowledging that guild and goes on with its other guilds.
//!
//! The folder's files:
//!
//! ```text
//! mod.rs        the Remote handle (opening a URL), constants, public types, re-exports
//! store.rs      store primitives: list, bounded get, create-if-absent, delete, error mapping
//! keys.rs       object keys: every key reprise makes in the store
//! ownership.rs  Writer and Owner, claim records, local ownership records, fences, notices
//! ship.rs       shipping rounds: batches of chunks cut from local segments, skips, snapshots
//! retain.rs     remote retention: obsolete batches and snapshots, abandoned notices
//! claim.rs      claims: the history read, the older epochs fenced, the guild written locally
//! batch.rs      PURE batch object format
//! objects.rs    claims, fences and ownership records (JSON)
//! faulty.rs     fault-injecting store for tests and the simulation
//! ```

#[cfg(feature = "testing")]
#[doc(hidden)]
pub mod batch;
#[cfg(not(feature = "testing"))]
mod batch;
#[cfg(any(test, feature = "testing"))]
#[doc(hidden)]
pub mod faulty;
use crate::format::objects;

mod claim;
mod keys;
mod ownership;
mod retain;
mod ship;
mod store;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStore;

use crate::error::{Error, Result};
use crate::format::{frame, segment};
use crate::ids::{Epoch, GuildId, Seq};
use crate::journal::Journal;
use crate::storage::{self, Storage};

use store::local_io;

#[cfg(feature = "testing")]
#[doc(hidden)]
pub use batch::BATCH_LEN_MAX;
#[cfg(not(feature = "testing"))]
use batch::BATCH_LEN_MAX;
use batch::{Batch, Entry, EntryKind};
pub use objects::OwnerRecord;
#[cfg(feature = "testing")]
#[doc(hidden)]
pub use objects::{ClaimRecord, Marker};
#[cfg(not(feature = "testing"))]
use objects::{ClaimRecord, Marker};
pub use ownership::{check_not_fenced, Owner, Writer};

/// Largest local segment a shipping round reads (the largest segment plus one frame).
pub(crate) const CHUNK_LEN_MAX: u64 =
    crate::config::SEGMENT_BYTES_MAX_MAX + frame::HEADER_LEN as u64 + frame::PAYLOAD_LEN_MAX as u64;

/// A shipping round stops adding guilds to its batch once it holds this many bytes (the
/// rest goes in the next round).
pub(crate) const BATCH_BYTES_TARGET: usize = 16 << 20;

/// A guild's chunk stops before the frame that would take it past this many bytes (its
/// first frame always goes in; the rest of the segment goes in the next round), so a chunk
/// is at most [`CHUNK_BYTES_MAX`] however large the local segment is.
pub(crate) const CHUNK_BYTES_TARGET: usize = 16 << 20;

/// Largest chunk a shipping round builds: the target, or one frame of the largest payload
/// after a segment header.
pub(crate) const CHUNK_BYTES_MAX: usize = {
    let one_frame = segment::HEADER_LEN + frame::HEADER_LEN + frame::PAYLOAD_LEN_MAX as usize;
    if one_frame > CHUNK_BYTES_TARGET {
        one_frame
    } else {
        CHUNK_BYTES_TARGET
    }
};

// A batch holds less than BATCH_BYTES_TARGET before its last entry, then that entry: every
// batch a shipping round builds is one every reader accepts (issue 13 item 6).
const _: () = assert!(
    (batch::HEADER_LEN
        + BATCH_BYTES_TARGET
        + batch::ENTRY_HEADER_LEN
        + CHUNK_BYTES_MAX
        + batch::TRAILER_LEN) as u64
        <= BATCH_LEN_MAX
);
const _: () = assert!(BATCH_BYTES_TARGET / batch::ENTRY_HEADER_LEN < batch::ENTRIES_MAX as usize);

/// Longest wait between two shipping rounds after failures.
pub const SHIP_RETRY_DELAY_MAX: Duration = Duration::from_secs(30);

/// The wait before the next shipping round after `failures` failed rounds in a row: the ship
/// interval, doubled per failure up to [`SHIP_RETRY_DELAY_MAX`] (never below the interval).
pub fn ship_retry_delay(interval: Duration, failures: u32) -> Duration {
    (interval * 2u32.saturating_pow(failures.min(16)))
        .min(SHIP_RETRY_DELAY_MAX)
        .max(interval)
}

/// A bounded wait on the store that ran out: the operation, where, and the bound.
pub fn no_answer(remote: &Remote, op: &'static str, within: Duration) -> Error {
    Error::Remote {
        op,
        key: remote.url().to_string(),
        source: format!("no answer within {within:?}").into(),
    }
}

/// A claim writes fences only within this time of leaving its notice; later, it gives up
/// (without writing one) and can be run again.
pub const NOTICE_FENCE_WINDOW: Duration = Duration::from_secs(10 * 60);

/// A notice older than this (by the store's clock against the writer's) was left by a claim
/// that can no longer write a fence ([`NOTICE_FENCE_WINDOW`]): retention removes it and goes
/// on. The margin over the window bounds the clock skew tolerated between a writer and the
/// store.
pub const NOTICE_AGE_MAX: Duration = Duration::from_secs(60 * 60);

/// Batches of a previous process (below what this one read or wrote) that one retention
/// round reads, newest first, to judge their entries.
pub(crate) const RETAIN_SWEEP_BATCHES_MAX: usize = 64;

/// Guilds held by no owner of this process (moved away, before or since it started) whose
/// stored snapshots one retention round lists, round robin.
pub(crate) const RETAIN_FOREIGN_GUILDS_MAX: usize = 64;

/// Objects and bytes uploaded by a shipping round.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShipReport {
    /// Objects created.
    pub objects: u64,
    /// Bytes in them.
    pub bytes: u64,
}

impl ShipReport {
    fn add(&mut self, bytes: usize) {
        self.objects += 1;
        self.bytes += bytes as u64;
    }

    fn merge(&mut self, other: ShipReport) {
        self.objects += other.objects;
        self.bytes += other.bytes;
    }
}

/// The result of a successful [`Remote::claim`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claimed {
    /// The guild.
    pub guild: GuildId,
    /// The epoch this directory now holds.
    pub epoch: Epoch,
    /// The guild's last sequence number after recovery (the next append takes `seq + 1`).
    pub seq: Seq,
    /// The copy of the guild this directory held before, when the claim replaced it.
    pub superseded: Option<Superseded>,
}

/// A directory's copy of a guild that a claim replaced with the store's (newer) history:
/// moved, not deleted, because it may hold events this directory acknowledged locally
/// (`always`, `batched`, `none`) that never reached the store before a newer owner claimed
/// the guild. Those events are not part of the guild's history any more.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Superseded {
    /// Where the copy's files are now (`remote/superseded/<guild>-<epoch>-<unix_ms>/`).
    pub path: PathBuf,
    /// The epoch the copy was written under (0: the directory held no epoch).
    pub epoch: Epoch,
    /// The copy's last event, when it recovered (a copy left damaged by a crash may not).
    pub seq: Option<Seq>,
}

/// An object store plus the key prefix reprise owns in it.
#[derive(Clone, Debug)]
pub struct Remote {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    url: String,
}

/// What a writer's log holds at one position, as far as shipping and claims care.
#[derive(Clone, Debug)]
enum LogObject {
    /// A batch (fully checked).
    Batch(Arc<Batch>),
    /// A marker.
    Marker(Marker),
}

/// What shipping and ownership need of a local journal directory: where it is, how to read
/// and write it, and its keys. Made from an open journal ([`LocalDir::of`]); shipping from a
/// background task reads the directory through it while the journal goes on appending.
#[derive(Clone)]
pub struct LocalDir {
    dir: PathBuf,
    storage: Arc<dyn Storage>,
    keys: Option<crate::crypto::Keyring>,
    /// Bumped at every ownership record written, so that the journal re-reads its fences.
    owner_records_written: Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for LocalDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalDir")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl LocalDir {
    /// The directory of `journal`, read through its storage, with its keys.
    pub fn of(journal: &Journal) -> LocalDir {
        LocalDir {
            dir: journal.dir().to_path_buf(),
            storage: journal.storage(),
            keys: journal.config().keys.clone(),
            owner_records_written: journal.owner_records_written(),
        }
    }

    /// The journal directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn storage(&self) -> Arc<dyn Storage> {
        self.storage.clone()
    }

    fn keys(&self) -> Option<&crate::crypto::Keyring> {
        self.keys.as_ref()
    }
}

use crate::clock::now_unix_ms;

impl Remote {
    /// A remote over `store`, with every key under `prefix` (may be empty).
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str) -> Remote {
        let prefix = prefix.trim_matches('/').to_string();
        Remote {
            url: format!("{store}/{prefix}"),
            store,
            prefix,
        }
    }

    /// Opens `s3://BUCKET/PREFIX` (endpoint, region and credentials from the standard `AWS_*`
    /// variables, `AWS_ALLOW_HTTP=true` for a local server) or `file:///PATH` (a local
    /// directory standing in for a bucket; created when missing; objects are fsynced).
    ///
    /// # Errors
    /// [`Error::Remote`] for an unsupported URL or a store that cannot be configured;
    /// [`Error::Io`] when the local directory cannot be created.
    pub fn from_url(url: &str) -> Result<Remote> {
        let bad = |detail: String| Error::Remote {
            op: "open",
            key: url.to_string(),
            source: detail.into(),
        };
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(bad("no bucket in the URL (s3://BUCKET/PREFIX)".into()));
            }
            // Retries with backoff, bounded so that a store that is down is reported in
            // seconds (local appends go on meanwhile; the next ship catches up), and a
            // request timeout so that a server that accepts connections but never answers
            // is reported in seconds too (the client's default waits 30 s).
            let retry = object_store::RetryConfig {
                max_retries: 4,
                retry_timeout: std::time::Duration::from_secs(15),
                ..object_store::RetryConfig::default()
            };
            use object_store::aws::AmazonS3ConfigKey;
            use object_store::ClientConfigKey;
            let store = object_store::aws::AmazonS3Builder::from_env()
                .with_config(
                    AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout),
                    "3s",
                )
                .with_config(AmazonS3ConfigKey::Client(ClientConfigKey::Timeout), "10s")
                .with_bucket_name(bucket)
                .with_retry(retry)
                .build()
                .map_err(|e| bad(e.to_string()))?;
            let mut remote = Remote::new(Arc::new(store), prefix);
            remote.url = url.to_string();
            return Ok(remote);
        }
        if let Some(path) = url.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(bad(
                    "a file URL needs an absolute path (file:///PATH)".into()
                ));
            }
            let path = Path::new(path);
            storage::FsStorage
                .create_dir_all(path)
                .map_err(|e| local_io("create directory", path, e))?;
            let store = object_store::local::LocalFileSystem::new_with_prefix(path)
                .map_err(|e| bad(e.to_string()))?
                .with_fsync(true);
            let mut remote = Remote::new(Arc::new(store), "");
            remote.url = url.to_string();
            return Ok(remote);
        }
        Err(bad(
            "unsupported remote URL: use s3://BUCKET/PREFIX or file:///PATH".into(),
        ))
    }

    /// The URL (or store description) this remote was opened from.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The store, for tests and tools that look at the objects themselves.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }
}

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

pub mod batch;
#[cfg(any(test, feature = "testing"))]
#[doc(hidden)]
pub mod faulty;
mod objects;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use crate::error::{Corruption, CorruptionKind, Error, Result};
use crate::format::segment::{self, SegmentHeader};
use crate::format::{frame, snapshot};
use crate::ids::{GuildId, Seq};
use crate::journal::Journal;
use crate::layout;
use crate::storage::{self, Storage};

pub use batch::{Batch, Entry, EntryKind, BATCH_LEN_MAX};
pub use objects::{ClaimRecord, Marker, OwnerRecord};

/// Largest local segment a shipping round reads (the largest segment plus one frame).
pub const CHUNK_LEN_MAX: u64 =
    crate::config::SEGMENT_BYTES_MAX_MAX + frame::HEADER_LEN as u64 + frame::PAYLOAD_LEN_MAX as u64;

/// A shipping round stops adding guilds to its batch once it holds this many bytes (the
/// rest goes in the next round).
pub const BATCH_BYTES_TARGET: usize = 16 << 20;

/// A guild's chunk stops before the frame that would take it past this many bytes (its
/// first frame always goes in; the rest of the segment goes in the next round), so a chunk
/// is at most [`CHUNK_BYTES_MAX`] however large the local segment is.
pub const CHUNK_BYTES_TARGET: usize = 16 << 20;

/// Largest chunk a shipping round builds: the target, or one frame of the largest payload
/// after a segment header.
pub const CHUNK_BYTES_MAX: usize = {
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

/// How many times a claim retries fencing a writer that keeps winning the race for its next
/// position before it gives up (the writer is then clearly alive and busy).
const FENCE_ATTEMPTS_MAX: u32 = 64;

/// The notices a claim left, with when it left each.
type Notices = Vec<(ObjectPath, std::time::Instant)>;

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
pub const RETAIN_SWEEP_BATCHES_MAX: usize = 64;

/// Guilds held by no owner of this process (moved away, before or since it started) whose
/// stored snapshots one retention round lists, round robin.
pub const RETAIN_FOREIGN_GUILDS_MAX: usize = 64;

/// How many times a claim reads the history again when an object it listed was deleted
/// meanwhile (retention by the live owner).
const READ_ATTEMPTS_MAX: u32 = 4;

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
    pub epoch: u64,
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
    pub epoch: u64,
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

/// Where a guild's entry is in a writer's log: (position, first event, last event).
type Part = (u64, Seq, Seq);

/// This directory's log in the store: its id, the process's incarnation, and the last
/// position known to exist. Made by [`Remote::writer`]; one per open journal.
#[derive(Clone, Debug)]
pub struct Writer {
    id: [u8; 16],
    name: String,
    incarnation: [u8; 16],
    /// The last position known to exist in the log (0: none).
    head: u64,
    /// The entries of this log's batches that this process wrote or read: (guild, epoch) →
    /// (position, first, last), so that finding where a guild's epoch stands needs no reads.
    index: BTreeMap<(u64, u64), Vec<Part>>,
    /// The positions up to which `index` is complete for entries at or after a position
    /// (everything from `indexed_from` to `head` has been read or written by this process).
    indexed_from: u64,
    /// The positions below `indexed_from` that existed when retention first listed them,
    /// not read yet (a previous process's batches): [`Remote::retain`] reads a few per round,
    /// newest first, so their entries are judged too. `None` until listed.
    unswept: Option<Vec<u64>>,
    /// Where [`Remote::retain`]'s round-robin over guilds held by no owner here resumes.
    foreign_next: u64,
}

impl Writer {
    /// The writer's name (hex id): its log is `writers/<name>/`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The last position known to exist in the writer's log.
    pub fn head(&self) -> u64 {
        self.head
    }

    fn note_batch(&mut self, b: &Batch) {
        for e in &b.entries {
            let parts = self.index.entry((e.guild, e.epoch)).or_default();
            if !parts.iter().any(|p| p.0 == b.position) {
                parts.push((b.position, e.first, e.last));
                parts.sort_unstable();
            }
        }
    }
}

/// A guild this directory owns in the store: its epoch and how far its events are stored.
///
/// Made by [`Remote::owner`], which checks that no newer epoch exists (claiming epoch 1 when
/// the guild has never been claimed) and finds the last event the store holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    /// The guild.
    pub guild: GuildId,
    /// The epoch this directory holds.
    pub epoch: u64,
    /// The owner name.
    pub owner: String,
    /// The last event stored in the remote (by this epoch or before it).
    pub head: Seq,
    /// Set once a shipping round found this epoch fenced: the newer epoch and its owner.
    /// Nothing more is shipped or acknowledged for the guild.
    pub fenced_by: Option<(u64, String)>,
    /// The first event of this epoch (the history before it was claimed).
    pub chain_start: Seq,
    /// The newest snapshot this epoch stored in the remote (0: none): the remote history up
    /// to it needs no batch object any more.
    pub snapshot_stored: Seq,
    /// The snapshot up to which [`Remote::retain`] last removed what it made obsolete.
    snapshot_retained: Seq,
    /// Where the frame after `head` starts in the local segment last read, so the next round
    /// reads only the bytes after it (no listing, no scan of what was shipped).
    cursor: Option<Cursor>,
}

impl Owner {
    /// The state of a guild found fenced at its first contact (nothing is shipped for it).
    pub(crate) fn fenced(guild: GuildId, epoch: u64, owner: String) -> Owner {
        Owner {
            guild,
            epoch: 0,
            owner: String::new(),
            head: 0,
            fenced_by: Some((epoch, owner)),
            chain_start: 1,
            snapshot_stored: 0,
            snapshot_retained: 0,
            cursor: None,
        }
    }

    /// `Err(Fenced)` once a newer owner has claimed the guild.
    ///
    /// # Errors
    /// [`Error::Fenced`].
    pub fn check(&self) -> Result<()> {
        match &self.fenced_by {
            Some((epoch, owner)) => Err(Error::Fenced {
                guild: self.guild,
                epoch: *epoch,
                owner: owner.clone(),
            }),
            None => Ok(()),
        }
    }
}

/// A position in a local segment: the segment (its first seq and header) and the byte offset
/// of the next frame to ship.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Cursor {
    first: Seq,
    header: SegmentHeader,
    offset: u64,
}

/// One epoch's part of a guild's history, as read from its writer's log.
#[derive(Debug, Default)]
struct EpochLog {
    /// The guild's entries of this epoch, in position order: (position, entry).
    parts: Vec<(u64, Entry)>,
    /// The position of the fence that closes the epoch, if there is one.
    fence: Option<u64>,
    /// The last position the listing showed (or the scan start minus one).
    last_position: u64,
    /// An object listed and then gone (deleted by retention while it was read).
    vanished: bool,
}

fn remote_err(op: &'static str, key: &ObjectPath, e: object_store::Error) -> Error {
    Error::Remote {
        op,
        key: key.to_string(),
        source: Box::new(e),
    }
}

fn corrupt(key: &ObjectPath, offset: Option<u64>, detail: impl Into<String>) -> Error {
    Error::RemoteCorrupt {
        key: key.to_string(),
        offset,
        detail: detail.into(),
    }
}

fn local_io(op: &'static str, path: &Path, e: std::io::Error) -> Error {
    Error::io(op, path, e)
}

fn parse_num(name: &str) -> Option<u64> {
    (name.len() == 20 && name.bytes().all(|b| b.is_ascii_digit()))
        .then(|| name.parse().ok())
        .flatten()
}

fn now_unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_hex16(text: &str) -> Option<[u8; 16]> {
    let text = text.trim();
    if text.len() != 32 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

fn random16() -> [u8; 16] {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).unwrap_or_else(|e| panic!("the OS random generator failed: {e}"));
    bytes
}

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

    /// The key of `rel` under this remote's prefix.
    pub fn key(&self, rel: &str) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from(rel)
        } else {
            ObjectPath::from(format!("{}/{rel}", self.prefix))
        }
    }

    /// The key of the claim of `guild` at `epoch`.
    pub fn claim_key(&self, guild: GuildId, epoch: u64) -> ObjectPath {
        self.key(&format!("guilds/{}/claim/{epoch:020}", guild.0))
    }

    /// The key of position `position` of the log of writer `writer`.
    pub fn writer_key(&self, writer: &str, position: u64) -> ObjectPath {
        self.key(&format!("writers/{writer}/{position:020}"))
    }

    /// The key of the notice the claim of epoch `by` leaves for writer `writer` before it
    /// reads that writer's log to fence `epoch` of `guild` (see [`Remote::retain`]).
    pub fn notice_key(&self, writer: &str, guild: GuildId, epoch: u64, by: u64) -> ObjectPath {
        self.key(&format!(
            "notices/{writer}/{:020}-{epoch:020}-{by:020}",
            guild.0
        ))
    }

    /// The key of the snapshot of `guild` at `seq` uploaded by the owner of `epoch`.
    pub fn snapshot_key(&self, guild: GuildId, seq: Seq, epoch: u64) -> ObjectPath {
        self.key(&format!(
            "guilds/{}/snap/{seq:020}-{epoch:020}.snap",
            guild.0
        ))
    }

    /// The key of the snapshot of `guild` at `seq` that the owner of `epoch` uploaded on the
    /// skip path (its local log had dropped the events before it): it stands only for the
    /// skip entry of that epoch's log that names it, and is never a claim's base by itself
    /// (the skip entry may have met a fence, and then the epoch's history never reached it).
    pub fn skip_snapshot_key(&self, guild: GuildId, seq: Seq, epoch: u64) -> ObjectPath {
        self.key(&format!(
            "guilds/{}/snap/{seq:020}-{epoch:020}.skip",
            guild.0
        ))
    }

    // ---- store primitives -------------------------------------------------------------

    /// One level of names under `rel` (objects and sub-prefixes, last path segment only).
    async fn list(&self, rel: &str) -> Result<(Vec<String>, Vec<String>)> {
        let key = self.key(rel);
        let listed = self
            .store
            .list_with_delimiter(Some(&key))
            .await
            .map_err(|e| remote_err("list", &key, e))?;
        let last = |p: &ObjectPath| p.filename().unwrap_or_default().to_string();
        Ok((
            listed.objects.iter().map(|o| last(&o.location)).collect(),
            listed.common_prefixes.iter().map(last).collect(),
        ))
    }

    /// The positions of writer `writer`'s log after `after`, ascending.
    async fn positions_after(&self, writer: &str, after: u64) -> Result<Vec<u64>> {
        let prefix = self.key(&format!("writers/{writer}"));
        let listed: Vec<object_store::ObjectMeta> = if after == 0 {
            self.store.list(Some(&prefix)).try_collect().await
        } else {
            let offset = self.writer_key(writer, after);
            self.store
                .list_with_offset(Some(&prefix), &offset)
                .try_collect()
                .await
        }
        .map_err(|e| remote_err("list", &prefix, e))?;
        let mut positions: Vec<u64> = listed
            .iter()
            .filter_map(|o| parse_num(o.location.filename()?))
            .filter(|&p| p > after)
            .collect();
        positions.sort_unstable();
        Ok(positions)
    }

    /// Reads a whole object of at most `len_max` bytes; `None` when it does not exist. The
    /// declared size is checked before the body is read, and the body is read no further.
    async fn get(&self, key: &ObjectPath, len_max: u64) -> Result<Option<Vec<u8>>> {
        let got = match self.store.get(key).await {
            Ok(g) => g,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(remote_err("get", key, e)),
        };
        if got.meta.size > len_max {
            return Err(corrupt(
                key,
                None,
                format!(
                    "{} bytes, more than any valid object of its kind ({len_max})",
                    got.meta.size
                ),
            ));
        }
        let bytes = got.bytes().await.map_err(|e| remote_err("get", key, e))?;
        if bytes.len() as u64 > len_max {
            return Err(corrupt(key, None, "longer than its declared size"));
        }
        Ok(Some(bytes.to_vec()))
    }

    /// Creates `key` unless it exists: `true` when this call created it.
    async fn create(&self, key: &ObjectPath, bytes: Vec<u8>) -> Result<bool> {
        let opts = PutOptions::from(PutMode::Create);
        match self
            .store
            .put_opts(key, PutPayload::from(bytes), opts)
            .await
        {
            Ok(_) => Ok(true),
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Ok(false),
            Err(e) => Err(remote_err("create", key, e)),
        }
    }

    /// Deletes `key` (already gone is fine: retention may run twice).
    async fn delete(&self, key: &ObjectPath) -> Result<()> {
        match self.store.delete(key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(remote_err("delete", key, e)),
        }
    }

    /// Reads and checks the object at `position` of `writer`'s log (through `cache`: the
    /// objects are immutable). `None` when it does not exist.
    async fn read_log_object(
        &self,
        writer: &str,
        position: u64,
        cache: &mut HashMap<(String, u64), LogObject>,
    ) -> Result<Option<LogObject>> {
        if let Some(o) = cache.get(&(writer.to_string(), position)) {
            return Ok(Some(o.clone()));
        }
        let key = self.writer_key(writer, position);
        let Some(bytes) = self.get(&key, BATCH_LEN_MAX).await? else {
            return Ok(None);
        };
        let object = classify(&key, writer, position, &bytes)?;
        cache.insert((writer.to_string(), position), object.clone());
        Ok(Some(object))
    }

    // ---- claims -----------------------------------------------------------------------

    /// Epochs claimed for `guild`, ascending.
    async fn claim_epochs(&self, guild: GuildId) -> Result<Vec<u64>> {
        let (objects, _) = self.list(&format!("guilds/{}/claim", guild.0)).await?;
        let mut epochs: Vec<u64> = objects.iter().filter_map(|n| parse_num(n)).collect();
        epochs.sort_unstable();
        Ok(epochs)
    }

    async fn read_claim(&self, guild: GuildId, epoch: u64) -> Result<ClaimRecord> {
        let key = self.claim_key(guild, epoch);
        let bytes = self
            .get(&key, objects::SMALL_OBJECT_LEN_MAX)
            .await?
            .ok_or_else(|| {
                corrupt(
                    &key,
                    None,
                    "missing (this directory's claim, or a listed one)",
                )
            })?;
        let claim: ClaimRecord = objects::decode(&bytes).map_err(|d| corrupt(&key, None, d))?;
        if claim.guild != guild.0 || claim.epoch != epoch {
            return Err(corrupt(&key, None, "claim names another guild or epoch"));
        }
        if parse_hex16(&claim.writer).is_none() || claim.start == 0 {
            return Err(corrupt(
                &key,
                None,
                "claim with a malformed writer or start",
            ));
        }
        Ok(claim)
    }

    /// The newest claim of `guild`, if any.
    ///
    /// # Errors
    /// [`Error::Remote`], [`Error::RemoteCorrupt`].
    pub async fn newest_claim(&self, guild: GuildId) -> Result<Option<ClaimRecord>> {
        match self.claim_epochs(guild).await?.last() {
            Some(&e) => Ok(Some(self.read_claim(guild, e).await?)),
            None => Ok(None),
        }
    }

    async fn fenced_by_claim(&self, guild: GuildId, epoch: u64) -> Error {
        match self.read_claim(guild, epoch).await {
            Ok(c) => Error::Fenced {
                guild,
                epoch,
                owner: c.owner,
            },
            Err(e) => e,
        }
    }

    // ---- the local records ------------------------------------------------------------

    /// This directory's ownership record for `guild`, if it has one.
    ///
    /// # Errors
    /// [`Error::Io`]; a damaged record is [`Error::Corrupt`].
    pub fn owner_record(journal: &LocalDir, guild: GuildId) -> Result<Option<OwnerRecord>> {
        let path = layout::remote_owner_path(journal.dir(), guild);
        let bytes = match journal.storage().read(&path, objects::SMALL_OBJECT_LEN_MAX) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(local_io("read", &path, e)),
        };
        let record: OwnerRecord = objects::decode(&bytes).map_err(|d| {
            Error::from(Corruption::new(&path, 0, CorruptionKind::HeaderChecksum).detail(d))
        })?;
        if record.guild != guild.0 {
            return Err(Corruption::new(&path, 0, CorruptionKind::HeaderMismatch)
                .detail("ownership record of another guild")
                .into());
        }
        Ok(Some(record))
    }

    fn write_local(journal: &LocalDir, path: &Path, bytes: &[u8]) -> Result<()> {
        let storage = journal.storage();
        let dir = journal.dir().join(layout::REMOTE_DIR);
        storage
            .create_dir_all(&dir)
            .map_err(|e| local_io("create directory", &dir, e))?;
        storage
            .sync_dir(journal.dir())
            .map_err(|e| local_io("fsync directory", journal.dir(), e))?;
        storage::write_atomic(storage.as_ref(), path, bytes)
            .map_err(|(op, p, e)| Error::io(op, p, e))
    }

    fn write_owner_record(journal: &LocalDir, record: &OwnerRecord) -> Result<()> {
        let path = layout::remote_owner_path(journal.dir(), GuildId(record.guild));
        let written = Remote::write_local(journal, &path, &objects::encode(record));
        // Also after a failure: the file may have been replaced all the same.
        journal
            .owner_records_written
            .fetch_add(1, std::sync::atomic::Ordering::Release);
        written
    }

    /// This directory's writer: its id (made once, kept in `remote/WRITER`), a new
    /// incarnation for this process, and the head of its log in the store.
    ///
    /// # Errors
    /// [`Error::Remote`] when the store cannot be listed; [`Error::Io`]; a damaged `WRITER`
    /// file is [`Error::Corrupt`].
    pub async fn writer(&self, journal: &LocalDir) -> Result<Writer> {
        let path = journal.dir().join(layout::REMOTE_DIR).join("WRITER");
        let id = match journal.storage().read(&path, 64) {
            Ok(b) => std::str::from_utf8(&b)
                .ok()
                .and_then(parse_hex16)
                .ok_or_else(|| {
                    Error::from(
                        Corruption::new(&path, 0, CorruptionKind::HeaderMismatch)
                            .detail("not a writer id (32 hex digits)"),
                    )
                })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let id = random16();
                Remote::write_local(journal, &path, format!("{}\n", hex(&id)).as_bytes())?;
                id
            }
            Err(e) => return Err(local_io("read", &path, e)),
        };
        let name = hex(&id);
        let head = self
            .positions_after(&name, 0)
            .await?
            .last()
            .copied()
            .unwrap_or(0);
        Ok(Writer {
            id,
            name,
            incarnation: random16(),
            head,
            index: BTreeMap::new(),
            indexed_from: head + 1,
            unswept: None,
            foreign_next: 0,
        })
    }

    // ---- ownership ----------------------------------------------------------------------

    /// The shipping state of this directory for `guild`: fails with [`Error::Fenced`] when the
    /// store shows a newer epoch (or any epoch, when this directory never claimed the guild);
    /// claims epoch 1 when the guild was never claimed. Finds the last event its epoch
    /// stored by reading `writer`'s log from where the epoch starts.
    ///
    /// # Errors
    /// [`Error::Fenced`], [`Error::Remote`], [`Error::RemoteCorrupt`], [`Error::Io`].
    pub async fn owner(
        &self,
        journal: &LocalDir,
        writer: &mut Writer,
        guild: GuildId,
        owner: &str,
    ) -> Result<Owner> {
        let result = self.owner_inner(journal, writer, guild, owner).await;
        note_fenced(journal, guild, result)
    }

    async fn owner_inner(
        &self,
        journal: &LocalDir,
        writer: &mut Writer,
        guild: GuildId,
        owner: &str,
    ) -> Result<Owner> {
        let mut record = Remote::owner_record(journal, guild)?;
        check_not_fenced(guild, record.as_ref())?;
        let epochs = self.claim_epochs(guild).await?;
        let newest = epochs.last().copied();
        if newest.is_none() {
            // Never claimed: claim epoch 1. The record (with the claim's token) is written
            // first, so a claim whose answer was lost (or that never reached the store) is
            // recognised, or made again, as this directory's own.
            let r = match record {
                Some(r) if r.epoch == 1 => r,
                Some(r) => {
                    return Err(corrupt(
                        &self.claim_key(guild, r.epoch),
                        None,
                        "this directory's claim is missing from the store",
                    ))
                }
                None => {
                    let r = OwnerRecord {
                        guild: guild.0,
                        epoch: 1,
                        owner: owner.to_string(),
                        token: objects::new_token(),
                        chain_start: 1,
                        fenced_by: None,
                    };
                    Remote::write_owner_record(journal, &r)?;
                    r
                }
            };
            let claim = ClaimRecord {
                guild: guild.0,
                epoch: 1,
                owner: r.owner.clone(),
                token: r.token.clone(),
                writer: writer.name.clone(),
                start: writer.head + 1,
                claimed_unix_ms: now_unix_ms(),
            };
            self.create(&self.claim_key(guild, 1), objects::encode(&claim))
                .await?;
            record = Some(r);
        }
        let (record, claim) = match (record, newest) {
            (None, Some(n)) => return Err(self.fenced_by_claim(guild, n).await),
            (Some(r), Some(n)) if n > r.epoch => return Err(self.fenced_by_claim(guild, n).await),
            (Some(r), _) => {
                // The claim at the record's epoch must be this directory's.
                let claim = self.read_claim(guild, r.epoch).await?;
                if claim.token != r.token {
                    return Err(Error::Fenced {
                        guild,
                        epoch: claim.epoch,
                        owner: claim.owner,
                    });
                }
                if claim.writer != writer.name {
                    return Err(corrupt(
                        &self.claim_key(guild, r.epoch),
                        None,
                        "this directory's claim names another writer",
                    ));
                }
                (r, claim)
            }
            (None, None) => unreachable!("claimed above"),
        };
        let head = self
            .epoch_head(writer, guild, &claim, record.chain_start)
            .await?;
        // Batches this epoch's snapshots made obsolete may be gone ([`Remote::retain`]): the
        // newest of them says how far the epoch got too.
        let snapshot_stored = self
            .newest_snapshot(guild, |_, e| e == record.epoch)
            .await?
            .map_or(0, |(s, _)| s);
        Ok(Owner {
            guild,
            epoch: record.epoch,
            owner: record.owner,
            head: head.max(snapshot_stored),
            fenced_by: None,
            chain_start: record.chain_start,
            snapshot_stored,
            snapshot_retained: 0,
            cursor: None,
        })
    }

    /// The last event of `claim`'s epoch in this writer's log (reading only what this
    /// process has not read or written yet); fails with [`Error::Fenced`] at a fence.
    async fn epoch_head(
        &self,
        writer: &mut Writer,
        guild: GuildId,
        claim: &ClaimRecord,
        chain_start: Seq,
    ) -> Result<Seq> {
        if claim.start < writer.indexed_from {
            // Read the log from the epoch's start up to what this process knows.
            let mut cache = HashMap::new();
            let log = self
                .read_epoch(
                    &writer.name.clone(),
                    guild,
                    claim.epoch,
                    claim.start,
                    &mut cache,
                )
                .await?;
            for object in cache.values() {
                if let LogObject::Batch(b) = object {
                    writer.note_batch(b);
                }
            }
            if let Some(p) = log.fence {
                return Err(self
                    .fence_error(&writer.name, p, guild, claim.epoch, &mut cache)
                    .await);
            }
            writer.head = writer.head.max(log.last_position);
            writer.indexed_from = writer.indexed_from.min(claim.start);
        }
        Ok(writer
            .index
            .get(&(guild.0, claim.epoch))
            .and_then(|parts| parts.iter().map(|p| p.2).max())
            .unwrap_or(0)
            .max(chain_start - 1))
    }

    async fn fence_error(
        &self,
        writer: &str,
        position: u64,
        guild: GuildId,
        epoch: u64,
        cache: &mut HashMap<(String, u64), LogObject>,
    ) -> Error {
        match self.read_log_object(writer, position, cache).await {
            Ok(Some(LogObject::Marker(Marker::Fence {
                fenced_by, owner, ..
            }))) => Error::Fenced {
                guild,
                epoch: fenced_by,
                owner,
            },
            Ok(_) => corrupt(
                &self.writer_key(writer, position),
                None,
                format!("expected the fence of guild {} epoch {epoch}", guild.0),
            ),
            Err(e) => e,
        }
    }

    /// Reads `guild`'s entries of `epoch` in `writer`'s log from position `start` on, up to
    /// the fence that closes the epoch (if any).
    async fn read_epoch(
        &self,
        writer: &str,
        guild: GuildId,
        epoch: u64,
        start: u64,
        cache: &mut HashMap<(String, u64), LogObject>,
    ) -> Result<EpochLog> {
        let mut log = EpochLog {
            last_position: start - 1,
            ..EpochLog::default()
        };
        self.read_epoch_from(writer, guild, epoch, &mut log, cache)
            .await?;
        Ok(log)
    }

    /// Continues `log` with the positions after `log.last_position`.
    async fn read_epoch_from(
        &self,
        writer: &str,
        guild: GuildId,
        epoch: u64,
        log: &mut EpochLog,
        cache: &mut HashMap<(String, u64), LogObject>,
    ) -> Result<()> {
        let positions = self.positions_after(writer, log.last_position).await?;
        for p in positions {
            log.last_position = p;
            match self.read_log_object(writer, p, cache).await? {
                None => log.vanished = true,
                Some(LogObject::Batch(b)) => {
                    for e in &b.entries {
                        if e.guild == guild.0 && e.epoch == epoch {
                            log.parts.push((p, e.clone()));
                        }
                    }
                }
                Some(LogObject::Marker(Marker::Fence {
                    guild: g, epoch: e, ..
                })) if g == guild.0 && e == epoch => {
                    log.fence = Some(p);
                    return Ok(());
                }
                Some(LogObject::Marker(_)) => {}
            }
        }
        Ok(())
    }

    // ---- shipping -----------------------------------------------------------------------

    /// Uploads what the remote lacks of `guilds` (every guild of the journal when empty): the
    /// events after each guild's remote head in as few batches as the bytes allow (one when
    /// they fit), then the snapshots up to each head. Checks ownership first
    /// ([`Remote::owner`]). The journal's state must be durable (the CLI checkpoints first;
    /// `apply` syncs before it ships).
    ///
    /// # Errors
    /// [`Error::Fenced`] when a newer owner has claimed one of the guilds (the others are
    /// shipped first); store and local errors.
    pub async fn ship(
        &self,
        journal: &mut Journal,
        guilds: &[GuildId],
        owner: &str,
    ) -> Result<ShipReport> {
        let local = LocalDir::of(journal);
        let mut writer = self.writer(&local).await?;
        let guilds = if guilds.is_empty() {
            journal.guilds()?
        } else {
            guilds.to_vec()
        };
        let mut owners = Vec::with_capacity(guilds.len());
        let mut fenced = None;
        for &g in &guilds {
            match self.owner(&local, &mut writer, g, owner).await {
                Ok(me) => owners.push(me),
                Err(e @ Error::Fenced { .. }) => fenced = fenced.or(Some(e)),
                Err(e) => return Err(e),
            }
        }
        let mut report = self.ship_events(journal, &mut writer, &mut owners).await?;
        for me in &mut owners {
            if me.fenced_by.is_none() {
                report.merge(self.ship_snapshots(&local, me).await?);
            }
        }
        self.retain(&mut writer, &mut owners).await?;
        for me in &owners {
            me.check()?;
        }
        match fenced {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }

    /// Uploads the events after each owner's head (and advances it), every guild of a round
    /// in one batch object: the remote half of `remote` durability, and its group commit.
    /// An owner found fenced gets [`Owner::fenced_by`] set (and its directory's record
    /// says so); the others go on. Returns once every owner not fenced has shipped
    /// everything the journal holds for it.
    ///
    /// # Errors
    /// Store and local errors (nothing is acknowledged then).
    pub async fn ship_events(
        &self,
        journal: &mut Journal,
        writer: &mut Writer,
        owners: &mut [Owner],
    ) -> Result<ShipReport> {
        journal.flush()?;
        let mut targets = Vec::with_capacity(owners.len());
        for me in owners.iter() {
            targets.push(journal.state(me.guild)?.seq);
        }
        self.ship_to(&LocalDir::of(journal), writer, owners, &targets)
            .await
    }

    /// [`Remote::ship_events`] from a directory another task appends to: ships each owner's
    /// events up to `targets[i]`, which the caller guarantees are durable in `local` (the
    /// remote never holds an event the local disk could still lose).
    ///
    /// # Errors
    /// As [`Remote::ship_events`].
    pub async fn ship_to(
        &self,
        local: &LocalDir,
        writer: &mut Writer,
        owners: &mut [Owner],
        targets: &[Seq],
    ) -> Result<ShipReport> {
        let journal = local;
        let mut report = ShipReport::default();
        let mut cache = HashMap::new();
        loop {
            let mut entries = Vec::new();
            let mut cursors = Vec::new();
            let mut bytes = batch::HEADER_LEN;
            for (me, &last) in owners.iter_mut().zip(targets) {
                if me.fenced_by.is_some() || bytes >= BATCH_BYTES_TARGET {
                    continue;
                }
                if let Some((entry, cursor)) =
                    self.next_entry(journal, me, last, &mut report).await?
                {
                    bytes += batch::ENTRY_HEADER_LEN + entry.chunk.len();
                    cursors.push((me.guild, cursor));
                    entries.push(entry);
                }
            }
            if entries.is_empty() {
                return Ok(report);
            }
            let position = writer.head + 1;
            let b = Batch {
                position,
                writer: writer.id,
                incarnation: writer.incarnation,
                entries,
            };
            let key = self.writer_key(&writer.name, position);
            let encoded = batch::encode(&b).map_err(|f| Error::Remote {
                op: "encode",
                key: key.to_string(),
                source: Box::new(f),
            })?;
            let len = encoded.len();
            if self.create(&key, encoded).await? {
                report.add(len);
                writer.head = position;
                writer.note_batch(&b);
                for (e, (_, cursor)) in b.entries.iter().zip(cursors) {
                    if let Some(me) = owners.iter_mut().find(|m| m.guild.0 == e.guild) {
                        me.head = e.last;
                        me.cursor = cursor;
                    }
                }
                continue;
            }
            // The position exists: this writer's own earlier batch (an answer lost, or a
            // previous process's upload landing late), or a claim's fence. Heads may move:
            // the next round finds its frames from the segment start.
            for me in owners.iter_mut() {
                me.cursor = None;
            }
            match self
                .read_log_object(&writer.name, position, &mut cache)
                .await?
            {
                None => return Err(corrupt(&key, None, "exists and then does not (deleted?)")),
                Some(LogObject::Batch(theirs)) => {
                    writer.note_batch(&theirs);
                    for e in &theirs.entries {
                        if let Some(me) = owners
                            .iter_mut()
                            .find(|m| m.guild.0 == e.guild && m.epoch == e.epoch)
                        {
                            me.head = me.head.max(e.last);
                        }
                    }
                }
                Some(LogObject::Marker(Marker::Fence {
                    guild,
                    epoch,
                    fenced_by,
                    owner,
                })) => {
                    if let Some(me) = owners
                        .iter_mut()
                        .find(|m| m.guild.0 == guild && m.epoch == epoch)
                    {
                        // The refused batch's skip entry for this guild never became part
                        // of the history: its snapshot is beyond the epoch's head for good.
                        // Removed (a claim never takes it as a base anyway).
                        for e in &b.entries {
                            if e.guild == guild && e.epoch == epoch && e.kind == EntryKind::Skip {
                                let key = self.skip_snapshot_key(me.guild, e.last, epoch);
                                if let Err(err) = self.delete(&key).await {
                                    tracing::warn!("reprise: could not remove {key}: {err}");
                                }
                            }
                        }
                        me.fenced_by = Some((fenced_by, owner.clone()));
                        let _ = note_fenced::<()>(
                            journal,
                            me.guild,
                            Err(Error::Fenced {
                                guild: me.guild,
                                epoch: fenced_by,
                                owner,
                            }),
                        );
                    }
                }
            }
            writer.head = position;
        }
    }

    /// The next entry for `me`: the events after its head that one local segment holds, or,
    /// when the local log no longer holds the next event, a skip to a local snapshot after it
    /// (uploaded first). `None` when there is nothing to ship.
    async fn next_entry(
        &self,
        journal: &LocalDir,
        me: &mut Owner,
        last: Seq,
        report: &mut ShipReport,
    ) -> Result<Option<(Entry, Option<Cursor>)>> {
        let guild = me.guild;
        if last <= me.head {
            return Ok(None);
        }
        let next = me.head + 1;
        let storage = journal.storage();
        // Where the previous round stopped: only the bytes after it are read.
        if let Some(c) = me.cursor {
            let path = layout::segment_path(journal.dir(), guild, c.first);
            if let Ok(tail) = storage.read_from(&path, c.offset, CHUNK_LEN_MAX) {
                let built = build_chunk(c.header, &tail, c.offset, &path, next, last)?;
                if let Some(built) = built {
                    return Ok(Some(chunk_entry(me, next, c, built)));
                }
            }
        }
        // Otherwise the segment holding the event after the remote head (names say where
        // each starts), so a round costs what it ships, not the size of the log.
        let dir = layout::guild_dir(journal.dir(), guild);
        let (mut segments, mut snapshots) = (Vec::new(), Vec::new());
        for name in storage.list(&dir).map_err(|e| local_io("list", &dir, e))? {
            match layout::parse_guild_file(&name) {
                layout::GuildFile::Segment(first) => segments.push(first),
                layout::GuildFile::Snapshot(seq) => snapshots.push(seq),
                _ => {}
            }
        }
        segments.sort_unstable();
        snapshots.sort_unstable();
        let holder = |seq: Seq| segments.iter().rev().find(|&&f| f <= seq).copied();
        if let Some(first) = holder(next) {
            let path = layout::segment_path(journal.dir(), guild, first);
            let bytes = storage
                .read(&path, CHUNK_LEN_MAX)
                .map_err(|e| local_io("read", &path, e))?;
            let header = segment::decode_header(&bytes).map_err(|f| Error::from(f.at(&path)))?;
            let frames = bytes.get(segment::HEADER_LEN..).unwrap_or_default();
            let base = segment::HEADER_LEN as u64;
            if let Some(built) = build_chunk(header, frames, base, &path, next, last)? {
                let at = Cursor {
                    first,
                    header,
                    offset: base,
                };
                return Ok(Some(chunk_entry(me, next, at, built)));
            }
        }
        // The local log no longer holds `next`: a snapshot after it stands in for the events
        // up to it (uploaded before the skip entry that says so).
        let snap = snapshots
            .iter()
            .rev()
            .copied()
            .find(|&s| s >= next && s <= last && (s == last || holder(s + 1).is_some()));
        let Some(s) = snap else {
            return Err(Corruption::new(dir, 0, CorruptionKind::Unrecoverable)
                .detail(format!(
                    "the local log no longer holds event {next} and no snapshot covers it; \
                     it cannot be shipped"
                ))
                .into());
        };
        let path = layout::snapshot_path(journal.dir(), guild, s);
        let bytes = read_snapshot_checked(journal, guild, s, &path)?;
        let len = bytes.len();
        // Under the skip name: until the skip entry is stored before any fence, the epoch's
        // history does not reach `s`, and no claim may take this snapshot as its base.
        if self
            .create(&self.skip_snapshot_key(guild, s, me.epoch), bytes)
            .await?
        {
            report.add(len);
        }
        let entry = Entry {
            guild: guild.0,
            epoch: me.epoch,
            first: next,
            last: s,
            kind: EntryKind::Skip,
            chunk: Vec::new(),
        };
        Ok(Some((entry, None)))
    }

    /// Uploads, under this owner's epoch, every local snapshot up to `owner.head` that the
    /// remote lacks (each checked completely first).
    ///
    /// # Errors
    /// Store and local errors; a damaged local snapshot is [`Error::Corrupt`].
    pub async fn ship_snapshots(&self, journal: &LocalDir, me: &mut Owner) -> Result<ShipReport> {
        let mut report = ShipReport::default();
        let guild = me.guild;
        let dir = layout::guild_dir(journal.dir(), guild);
        let mut wanted: Vec<Seq> = journal
            .storage()
            .list(&dir)
            .map_err(|e| local_io("list", &dir, e))?
            .iter()
            .filter_map(|name| match layout::parse_guild_file(name) {
                // Not the history this epoch inherited (that is in the remote already, under
                // the epoch that made it): a claim then finds everything after a snapshot in
                // the snapshot's epoch and later ones.
                layout::GuildFile::Snapshot(seq) if seq <= me.head && seq + 1 >= me.chain_start => {
                    Some(seq)
                }
                _ => None,
            })
            .collect();
        wanted.sort_unstable();
        if wanted.is_empty() {
            return Ok(report);
        }
        let (objects, _) = self.list(&format!("guilds/{}/snap", guild.0)).await?;
        let present: BTreeSet<String> = objects.into_iter().collect();
        for s in wanted {
            let key = self.snapshot_key(guild, s, me.epoch);
            if present.contains(key.filename().unwrap_or_default()) {
                me.snapshot_stored = me.snapshot_stored.max(s);
                continue;
            }
            let path = layout::snapshot_path(journal.dir(), guild, s);
            let bytes = read_snapshot_checked(journal, guild, s, &path)?;
            let len = bytes.len();
            if self.create(&key, bytes).await? {
                report.add(len);
            }
            me.snapshot_stored = me.snapshot_stored.max(s);
        }
        Ok(report)
    }

    /// The guild's snapshots in the remote: (seq, uploader's epoch). Skip-path uploads
    /// (`.skip`) are not among them: see [`Remote::skip_snapshot_key`].
    async fn snapshots(&self, guild: GuildId) -> Result<Vec<(Seq, u64)>> {
        Ok(self
            .snapshot_objects(guild)
            .await?
            .into_iter()
            .filter(|&(_, _, skip)| !skip)
            .map(|(s, e, _)| (s, e))
            .collect())
    }

    /// Every snapshot object of the guild: (seq, uploader's epoch, uploaded on the skip path).
    async fn snapshot_objects(&self, guild: GuildId) -> Result<Vec<(Seq, u64, bool)>> {
        let (names, _) = self.list(&format!("guilds/{}/snap", guild.0)).await?;
        Ok(names
            .iter()
            .filter_map(|n| {
                let (stem, skip) = match n.strip_suffix(".snap") {
                    Some(stem) => (stem, false),
                    None => (n.strip_suffix(".skip")?, true),
                };
                let (s, e) = stem.split_once('-')?;
                Some((parse_num(s)?, parse_num(e)?, skip))
            })
            .collect())
    }

    /// The guild's newest snapshot in the remote among those `keep` accepts (by seq and epoch):
    /// (seq, epoch).
    async fn newest_snapshot(
        &self,
        guild: GuildId,
        keep: impl Fn(Seq, u64) -> bool,
    ) -> Result<Option<(Seq, u64)>> {
        Ok(self
            .snapshots(guild)
            .await?
            .into_iter()
            .filter(|&(s, e)| keep(s, e))
            .max())
    }

    /// Reads up to [`RETAIN_SWEEP_BATCHES_MAX`] of the batches below what this process has
    /// read or written (listed once), newest first, into the writer's index, lowering
    /// `indexed_from` as it goes (the index stays complete from there to the head).
    async fn sweep_log(&self, writer: &mut Writer) -> Result<()> {
        if writer.indexed_from <= 1 {
            return Ok(());
        }
        let mut unswept = match writer.unswept.take() {
            Some(u) => u,
            None => {
                let below = writer.indexed_from;
                let mut all = self.positions_after(&writer.name, 0).await?;
                all.retain(|&p| p < below);
                all
            }
        };
        let name = writer.name.clone();
        let mut cache = HashMap::new();
        for _ in 0..RETAIN_SWEEP_BATCHES_MAX {
            let Some(p) = unswept.pop() else {
                break;
            };
            if let Some(LogObject::Batch(b)) = self.read_log_object(&name, p, &mut cache).await? {
                writer.note_batch(&b);
            }
            writer.indexed_from = writer.indexed_from.min(p);
        }
        if unswept.is_empty() {
            writer.indexed_from = 1;
        } else {
            writer.unswept = Some(unswept);
        }
        Ok(())
    }

    /// Remote retention, which follows local retention: deletes this writer's batch objects
    /// whose every entry is held by a newer snapshot in the remote (its owner's,
    /// [`Owner::snapshot_stored`]; for a guild-epoch no owner here holds — a guild that moved,
    /// before or since this process started — a snapshot of that epoch or a newer one), and
    /// each guild's older snapshots of the same epoch. Nothing is deleted while a claim's
    /// notice for this writer is younger than [`NOTICE_AGE_MAX`] (older ones are removed).
    /// The batches a previous process wrote are read [`RETAIN_SWEEP_BATCHES_MAX`] per round
    /// (newest first) until all were judged; the snapshots of at most
    /// [`RETAIN_FOREIGN_GUILDS_MAX`] guilds no owner here holds are listed per round (round
    /// robin). The newest position is kept (it tells the next process where the log goes
    /// on), and fences are never deleted. Returns the objects deleted.
    ///
    /// A claim reading the log meanwhile sees an object vanish and reads again; it never
    /// needs a deleted object, since it starts from the newest snapshot.
    ///
    /// # Errors
    /// [`Error::Remote`] (what was deleted before stays deleted).
    pub async fn retain(&self, writer: &mut Writer, owners: &mut [Owner]) -> Result<u64> {
        // A claim leaves a notice before it lists this log to fence a guild, and removes it
        // once it is done. While one is there, a fence may be on its way to the position
        // after the claim's listing, which may lie below `head` — even when this writer met
        // another claim's fence for that epoch already (two claims at once): nothing is
        // deleted. Without one, every later claim lists the log after `head` exists (it is
        // never deleted), so its fence lands after every position deleted here. A notice
        // older than NOTICE_AGE_MAX is from a claim that died: claims write fences only
        // within NOTICE_FENCE_WINDOW of their notice, so it is removed.
        let head = writer.head;
        let prefix = self.key(&format!("notices/{}", writer.name));
        let notices: Vec<object_store::ObjectMeta> = self
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|e| remote_err("list", &prefix, e))?;
        let now_ms = now_unix_ms();
        let mut abandoned = Vec::new();
        for notice in notices {
            let stored_ms = u64::try_from(notice.last_modified.timestamp_millis()).unwrap_or(0);
            let age = Duration::from_millis(now_ms.saturating_sub(stored_ms));
            if age < NOTICE_AGE_MAX {
                return Ok(0);
            }
            abandoned.push(notice.location);
        }
        let mut deleted = 0;
        for key in abandoned {
            self.delete(&key).await?;
            deleted += 1;
        }
        self.sweep_log(writer).await?;
        let mut covered: HashMap<(u64, u64), Seq> = owners
            .iter()
            .filter(|me| me.fenced_by.is_none() && me.snapshot_stored > 0)
            .map(|me| ((me.guild.0, me.epoch), me.snapshot_stored))
            .collect();
        // The entries of a guild-epoch no owner here holds (fenced since, moved before this
        // process started, or an epoch this directory held before it claimed the guild
        // again) all precede the epoch's fence in this log (the writer stops at it), so they
        // are in the guild's history: a snapshot under the ordinary name of that epoch or a
        // newer one, at or after an entry's last event, holds it (a claim starts from the
        // newest snapshot, and reads again when one appears while it reads). Without this,
        // the batches holding a moved guild's last entries would stay forever.
        let live: HashSet<(u64, u64)> = owners
            .iter()
            .filter(|me| me.fenced_by.is_none())
            .map(|me| (me.guild.0, me.epoch))
            .collect();
        let mut foreign: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
        for &(g, e) in writer.index.keys() {
            if !live.contains(&(g, e)) {
                foreign.entry(g).or_default().push(e);
            }
        }
        let next = writer.foreign_next;
        let turn: Vec<u64> = foreign
            .range(next..)
            .chain(foreign.range(..next))
            .take(RETAIN_FOREIGN_GUILDS_MAX)
            .map(|(&g, _)| g)
            .collect();
        for g in turn {
            let snapshots = self.snapshots(GuildId(g)).await?;
            for &e in &foreign[&g] {
                let newest = snapshots.iter().filter(|&&(_, ep)| ep >= e).max();
                if let Some(&(s, _)) = newest {
                    covered.insert((g, e), s);
                }
            }
            writer.foreign_next = g.wrapping_add(1);
        }
        // Position → every (guild, epoch) entry there, with its last event.
        type Entries = Vec<((u64, u64), Seq)>;
        let mut by_position: BTreeMap<u64, Entries> = BTreeMap::new();
        for (&key, parts) in &writer.index {
            for &(position, _, last) in parts {
                by_position.entry(position).or_default().push((key, last));
            }
        }
        let obsolete: Vec<u64> = by_position
            .iter()
            .filter(|(&p, entries)| {
                p < head
                    && entries
                        .iter()
                        .all(|(key, last)| covered.get(key).is_some_and(|s| s >= last))
            })
            .map(|(&p, _)| p)
            .collect();
        for p in obsolete {
            self.delete(&self.writer_key(&writer.name, p)).await?;
            deleted += 1;
            for parts in writer.index.values_mut() {
                parts.retain(|part| part.0 != p);
            }
        }
        writer.index.retain(|_, parts| !parts.is_empty());
        for me in owners.iter_mut() {
            if me.fenced_by.is_some() || me.snapshot_stored <= me.snapshot_retained {
                continue;
            }
            for (s, e, skip) in self.snapshot_objects(me.guild).await? {
                if e != me.epoch {
                    continue;
                }
                // A skip-path upload is needed only while no snapshot of the epoch at or
                // after it is stored under the ordinary name (a claim reading its skip entry
                // then starts from that one).
                if skip && s <= me.snapshot_stored {
                    self.delete(&self.skip_snapshot_key(me.guild, s, e)).await?;
                    deleted += 1;
                } else if !skip && s < me.snapshot_stored {
                    self.delete(&self.snapshot_key(me.guild, s, e)).await?;
                    deleted += 1;
                }
            }
            me.snapshot_retained = me.snapshot_stored;
        }
        Ok(deleted)
    }

    // ---- claim ----------------------------------------------------------------------------

    /// Guilds with anything in the remote, ascending.
    ///
    /// # Errors
    /// [`Error::Remote`].
    pub async fn guilds(&self) -> Result<Vec<GuildId>> {
        let (_, prefixes) = self.list("guilds").await?;
        let mut guilds: Vec<GuildId> = prefixes
            .iter()
            .filter_map(|n| layout::parse_guild_dir(n))
            .collect();
        guilds.sort_unstable();
        Ok(guilds)
    }

    /// The guilds of Discord shard `shard` of `shards` (`(guild >> 22) % shards == shard`)
    /// with anything in the remote, ascending.
    ///
    /// # Errors
    /// [`Error::Remote`], also when `shard` is not below `shards`.
    pub async fn shard_guilds(&self, shard: u64, shards: u64) -> Result<Vec<GuildId>> {
        if shards == 0 || shard >= shards {
            return Err(Error::Remote {
                op: "claim",
                key: self.url().to_string(),
                source: format!("shard {shard} is not below the shard count {shards}").into(),
            });
        }
        let mut guilds = self.guilds().await?;
        guilds.retain(|g| (g.0 >> 22) % shards == shard);
        Ok(guilds)
    }

    /// Makes this directory the owner of `guild`: writes the next epoch's claim, fences the
    /// older epochs in their writers' logs, downloads the newest usable snapshot and the
    /// events after it into the (empty) guild directory, verifying every object, and
    /// recovers.
    ///
    /// A directory that already holds the guild as its newest owner is left as it is. One that
    /// holds a guild never claimed in the store claims epoch 1 and keeps its history. One that
    /// holds an older owner's copy (it was fenced, and takes the guild back) gets the store's
    /// history in its place, and the copy is moved to [`Claimed::superseded`].
    ///
    /// # Errors
    /// [`Error::Fenced`] when another claim took the epoch first (or a newer one landed before
    /// this one finished); [`Error::RemoteCorrupt`] naming the object when an object is damaged
    /// or the remote history has a gap (nothing local is written then); store and local errors.
    pub async fn claim(
        &self,
        journal: &mut Journal,
        guild: GuildId,
        owner: &str,
    ) -> Result<Claimed> {
        let guild_dir = layout::guild_dir(journal.dir(), guild);
        let storage = journal.storage();
        let local_files = storage
            .list(&guild_dir)
            .map_err(|e| local_io("list", &guild_dir, e))?;
        let local = LocalDir::of(journal);
        let record = Remote::owner_record(&local, guild)?;
        let epochs = self.claim_epochs(guild).await?;
        let newest = epochs.last().copied().unwrap_or(0);
        // The epoch of the copy of the guild this directory holds, when a newer owner's
        // history is to replace it (0: a copy without an epoch).
        let mut superseding = None;
        if !local_files.is_empty() || record.is_some() {
            let ours = match &record {
                Some(r) if r.epoch == newest => {
                    self.read_claim(guild, newest).await?.token == r.token
                }
                _ => false,
            };
            if ours {
                return Ok(Claimed {
                    guild,
                    epoch: newest,
                    seq: journal.state(guild)?.seq,
                    superseded: None,
                });
            }
            if newest == 0 {
                // A guild this directory started and never shipped: its first claim keeps
                // the local history (the next shipping round uploads it).
                let mut writer = self.writer(&local).await?;
                let o = self.owner(&local, &mut writer, guild, owner).await?;
                return Ok(Claimed {
                    guild,
                    epoch: o.epoch,
                    seq: journal.state(guild)?.seq,
                    superseded: None,
                });
            }
            // An older owner's copy (this directory was fenced, or crashed mid-claim): the
            // store's history replaces it once verified; the copy is kept aside, since it may
            // hold events acknowledged locally that never reached the store.
            superseding = Some(record.as_ref().map_or(0, |r| r.epoch));
        }
        let writer = self.writer(&local).await?;
        let epoch = newest + 1;
        // Read and check the history as it stands before writing anything anywhere: damaged
        // or missing objects fail the claim with the store untouched (the owner is not fenced).
        let mut cache = HashMap::new();
        let mut notices = Notices::new();
        self.read_history_retrying(journal, guild, &epochs, None, &mut cache, &mut notices)
            .await?;
        if superseding.is_some() {
            // Before the store is touched: a journal that cannot checkpoint (a poisoned log,
            // a full disk) cannot set the copy aside, and the owner stays unfenced.
            journal.checkpoint(false)?;
        }
        let claim = ClaimRecord {
            guild: guild.0,
            epoch,
            owner: owner.to_string(),
            token: objects::new_token(),
            writer: writer.name.clone(),
            start: writer.head + 1,
            claimed_unix_ms: now_unix_ms(),
        };
        if !self
            .create(&self.claim_key(guild, epoch), objects::encode(&claim))
            .await?
        {
            return Err(self.fenced_by_claim(guild, epoch).await);
        }
        // Now close the older epochs and read the final history (objects read in the first
        // pass are immutable and come from the cache).
        let (head, files) = self
            .read_history_retrying(
                journal,
                guild,
                &epochs,
                Some(&claim),
                &mut cache,
                &mut notices,
            )
            .await?;
        // Every fence is written: the notices have done their work (one left behind, by an
        // error or a crash, stops the writer's retention until it is NOTICE_AGE_MAX old).
        for (key, _) in &notices {
            if let Err(e) = self.delete(key).await {
                tracing::warn!("reprise: claim: could not remove the notice {key}: {e}");
            }
        }
        // Everything is verified: set the superseded copy aside, write the history into the
        // (now empty) guild directory, then recover.
        let superseded = match superseding {
            Some(old_epoch) => {
                let seq = journal.state(guild).ok().map(|s| s.seq);
                let path = layout::superseded_dir(journal.dir(), guild, old_epoch, now_unix_ms());
                let moved = journal.set_aside(guild, &path)?;
                // The copies past the journal's rule go now (this one, the newest, stays).
                let rule = journal.config().superseded_retention;
                if let Err(e) = journal.remove_superseded(&rule, None, now_unix_ms(), false) {
                    tracing::warn!("reprise: claim: could not remove old superseded copies: {e}");
                }
                (moved > 0).then_some(Superseded {
                    path,
                    epoch: old_epoch,
                    seq,
                })
            }
            None => None,
        };
        if !files.is_empty() {
            for dir in [layout::guilds_dir(journal.dir()), guild_dir.clone()] {
                storage
                    .create_dir_all(&dir)
                    .map_err(|e| local_io("create directory", &dir, e))?;
            }
            for (path, bytes) in &files {
                storage::write_atomic(storage.as_ref(), path, bytes)
                    .map_err(|(op, p, e)| Error::io(op, p, e))?;
            }
            for dir in [
                layout::guilds_dir(journal.dir()),
                journal.dir().to_path_buf(),
            ] {
                storage
                    .sync_dir(&dir)
                    .map_err(|e| local_io("fsync directory", &dir, e))?;
            }
        }
        Remote::write_owner_record(
            &local,
            &OwnerRecord {
                guild: guild.0,
                epoch,
                owner: owner.to_string(),
                token: claim.token.clone(),
                chain_start: head + 1,
                fenced_by: None,
            },
        )?;
        let seq = journal.state(guild)?.seq;
        if seq != head {
            return Err(corrupt(
                &self.key(&format!("guilds/{}", guild.0)),
                None,
                format!(
                    "the downloaded history recovers to event {seq}, the remote history ends at {head}"
                ),
            ));
        }
        if let Some(&n) = self.claim_epochs(guild).await?.last() {
            if n > epoch {
                return Err(self.fenced_by_claim(guild, n).await);
            }
        }
        Ok(Claimed {
            guild,
            epoch,
            seq,
            superseded,
        })
    }

    async fn read_history_retrying(
        &self,
        journal: &Journal,
        guild: GuildId,
        epochs: &[u64],
        fence: Option<&ClaimRecord>,
        cache: &mut HashMap<(String, u64), LogObject>,
        notices: &mut Notices,
    ) -> Result<(Seq, Vec<(PathBuf, Vec<u8>)>)> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self
                .read_history(journal, guild, epochs, fence, cache, notices)
                .await
            {
                Err(History::Vanished(_)) if attempt < READ_ATTEMPTS_MAX => {}
                Err(History::Vanished(Some(e))) => return Err(e),
                Err(History::Vanished(None)) => {
                    return Err(Error::Remote {
                        op: "claim",
                        key: self.key(&format!("guilds/{}", guild.0)).to_string(),
                        source: "objects kept vanishing while the history was read".into(),
                    })
                }
                Err(History::Failed(e)) => return Err(e),
                Ok(found) => return Ok(found),
            }
        }
    }

    /// The guild's history in the epochs `epochs` (closing each with a fence when `fence` is
    /// given): the newest usable snapshot and the events after it, all checked. Returns the
    /// last event and the files to write into the guild directory.
    async fn read_history(
        &self,
        journal: &Journal,
        guild: GuildId,
        epochs: &[u64],
        fence: Option<&ClaimRecord>,
        cache: &mut HashMap<(String, u64), LogObject>,
        notices: &mut Notices,
    ) -> std::result::Result<(Seq, Vec<(PathBuf, Vec<u8>)>), History> {
        // Snapshots, newest first: (seq, epoch).
        let mut candidates: Vec<(Seq, u64)> = self
            .snapshots(guild)
            .await?
            .into_iter()
            .filter(|&(_, e)| epochs.binary_search(&e).is_ok())
            .collect();
        candidates.sort_unstable_by(|a, b| b.cmp(a));
        let mut rejected: BTreeSet<(Seq, u64)> = BTreeSet::new();
        let mut claims: BTreeMap<u64, ClaimRecord> = BTreeMap::new();
        let mut logs: BTreeMap<u64, EpochLog> = BTreeMap::new();
        let base = loop {
            // The epochs to read: from the newest snapshot's epoch on (older ones are held by
            // the snapshot), and further back while the events after the snapshot start
            // before the oldest epoch read (a snapshot of history its uploader inherited).
            let base = candidates.first().copied();
            let mut lo = base.map_or(0, |(_, e)| epochs.partition_point(|&x| x < e));
            loop {
                for &e in &epochs[lo..] {
                    if logs.contains_key(&e) {
                        continue;
                    }
                    let c = self.read_claim(guild, e).await?;
                    let log = self.close_epoch(guild, &c, fence, cache, notices).await?;
                    if log.vanished {
                        return Err(History::Vanished(None));
                    }
                    claims.insert(e, c);
                    logs.insert(e, log);
                }
                let Some((s, _)) = base else { break };
                // An epoch's snapshots never predate its chain start (see `ship_snapshots`),
                // so only data from before that rule sends the reading further back.
                let reaches = epochs.get(lo).is_some_and(|e| {
                    let parts = &logs[e].parts;
                    parts.is_empty() || parts.iter().any(|(_, entry)| entry.first <= s + 1)
                });
                if reaches || lo == 0 {
                    break;
                }
                lo -= 1;
            }
            // A base must be history: its epoch's (fenced) log reaches it. One it does not
            // reach holds events no owner stored in the history (uploaded past the epoch's
            // head, against the rules): it is passed over, with a warning.
            match base {
                Some((s, e)) if !log_reaches(&logs[&e], s) => {
                    tracing::warn!(
                        "reprise: claim: {} is past the history of epoch {e}; not used",
                        self.snapshot_key(guild, s, e)
                    );
                    rejected.insert((s, e));
                    candidates.remove(0);
                }
                _ => break base,
            }
        };
        // Retention deletes batches only once a snapshot holding them is stored: a snapshot
        // newer than the base, stored while the logs were read, may stand for entries that
        // are gone now. Listing again shows it; then read again from it.
        let newest_now = self
            .newest_snapshot(guild, |s, e| {
                epochs.binary_search(&e).is_ok() && !rejected.contains(&(s, e))
            })
            .await?;
        if newest_now.map(|(s, _)| s) > base.map(|(s, _)| s) {
            return Err(History::Vanished(None));
        }
        self.assemble(journal, guild, &claims, &logs, base).await
    }

    /// Closes `claim`'s epoch with a fence written for `fence` (without one: only reads
    /// where it stands now) and returns its log.
    async fn close_epoch(
        &self,
        guild: GuildId,
        claim: &ClaimRecord,
        fence: Option<&ClaimRecord>,
        cache: &mut HashMap<(String, u64), LogObject>,
        notices: &mut Notices,
    ) -> Result<EpochLog> {
        let writer = claim.writer.as_str();
        let mut noticed = std::time::Instant::now();
        if let Some(by) = fence {
            // Before the log is listed: the writer's retention sees it and deletes nothing
            // while it is there, so the fence can never land on a deleted position (which the
            // writer has passed, and would never look at again). Removed when the claim ends.
            let notice = self.notice_key(writer, guild, claim.epoch, by.epoch);
            match notices.iter().find(|(key, _)| *key == notice) {
                // Left by an earlier reading of this claim: its age counts from then.
                Some(&(_, at)) => noticed = at,
                None => {
                    self.create(&notice, Vec::new()).await?;
                    notices.push((notice, noticed));
                }
            }
        }
        let mut log = self
            .read_epoch(writer, guild, claim.epoch, claim.start, cache)
            .await?;
        let Some(by) = fence else {
            return Ok(log);
        };
        for _ in 0..FENCE_ATTEMPTS_MAX {
            if log.fence.is_some() {
                return Ok(log);
            }
            let marker = objects::encode(&Marker::Fence {
                guild: guild.0,
                epoch: claim.epoch,
                fenced_by: by.epoch,
                owner: by.owner.clone(),
            });
            let position = log.last_position + 1;
            if noticed.elapsed() > NOTICE_FENCE_WINDOW {
                // Retention may treat the notice as abandoned by now: no fence from here.
                return Err(Error::Remote {
                    op: "fence",
                    key: self.writer_key(writer, position).to_string(),
                    source: format!(
                        "the claim took longer than {} s since its notice; no fence was written, claim again",
                        NOTICE_FENCE_WINDOW.as_secs()
                    )
                    .into(),
                });
            }
            if self
                .create(&self.writer_key(writer, position), marker)
                .await?
            {
                log.last_position = position;
                log.fence = Some(position);
                return Ok(log);
            }
            self.read_epoch_from(writer, guild, claim.epoch, &mut log, cache)
                .await?;
        }
        Err(Error::Remote {
            op: "fence",
            key: self.writer_key(writer, log.last_position + 1).to_string(),
            source: format!(
                "writer {writer} won the race for its next position {FENCE_ATTEMPTS_MAX} times"
            )
            .into(),
        })
    }

    /// Puts the history together: the base snapshot, then every entry after it, epoch by
    /// epoch, checked for gaps and overlaps; chunks are merged into segment files.
    async fn assemble(
        &self,
        journal: &Journal,
        guild: GuildId,
        claims: &BTreeMap<u64, ClaimRecord>,
        logs: &BTreeMap<u64, EpochLog>,
        mut base: Option<(Seq, u64)>,
    ) -> std::result::Result<(Seq, Vec<(PathBuf, Vec<u8>)>), History> {
        let keys = journal.config().keys.as_ref();
        let mut next = base.map_or(1, |(s, _)| s + 1);
        // The base came from a skip entry (its snapshot has the skip name).
        let mut base_skip = false;
        let mut files: Vec<(PathBuf, Vec<u8>)> = Vec::new();
        let mut segment: Option<(Seq, Vec<u8>)> = None;
        let segment_max = journal.config().segment_bytes_max as usize;
        // An epoch not closed yet (a first reading, before the claim fences it) may still
        // grow: what a newer epoch holds after it is checked once it is closed.
        let mut open_before = false;
        for (&e, log) in logs {
            let claim = &claims[&e];
            for (p, entry) in &log.parts {
                let key = self.writer_key(&claim.writer, *p);
                if entry.last < next {
                    continue;
                }
                if entry.first > next && open_before {
                    return Ok((next - 1, Vec::new()));
                }
                if entry.first > next {
                    // Retention may have deleted them after the snapshots were listed (a
                    // newer snapshot holds them then): read again before reporting a gap.
                    return Err(History::Vanished(Some(corrupt(
                        &key,
                        None,
                        format!(
                            "gap in the guild's remote history: events {next} to {} are missing",
                            entry.first - 1
                        ),
                    ))));
                }
                if entry.kind == EntryKind::Skip {
                    // The events up to entry.last are held by the epoch's snapshot there
                    // (uploaded before this entry, perhaps after the snapshots were listed):
                    // it becomes the base, and what came before it is not needed.
                    base = Some((entry.last, e));
                    base_skip = true;
                    files.clear();
                    segment = None;
                    next = entry.last + 1;
                    continue;
                }
                check_key(&key, &entry.chunk, keys)?;
                let frames = frames_from(&entry.chunk, next);
                let header = segment::decode_header(&entry.chunk)
                    .map_err(|f| corrupt(&key, Some(f.offset), f.kind.as_str()))?;
                let fits = |s: &(Seq, Vec<u8>)| {
                    s.1.len() + frames.len() <= segment_max
                        && segment::decode_header(&s.1).is_ok_and(|h| h.key_id == header.key_id)
                };
                match &mut segment {
                    Some(s) if fits(s) => s.1.extend_from_slice(frames),
                    _ => {
                        if let Some((first, bytes)) = segment.take() {
                            files.push((layout::segment_path(journal.dir(), guild, first), bytes));
                        }
                        let mut bytes = segment::encode_header(&SegmentHeader {
                            first_seq: next,
                            ..header
                        })
                        .to_vec();
                        bytes.extend_from_slice(frames);
                        segment = Some((next, bytes));
                    }
                }
                next = entry.last + 1;
            }
            open_before |= log.fence.is_none();
        }
        if let Some((first, bytes)) = segment.take() {
            files.push((layout::segment_path(journal.dir(), guild, first), bytes));
        }
        if let Some((s, e)) = base {
            let key = if base_skip {
                self.skip_snapshot_key(guild, s, e)
            } else {
                self.snapshot_key(guild, s, e)
            };
            // Missing: deleted by the owner's retention after it was listed (a newer one
            // stands in for it: read again), or lost (reported once reading again does not
            // help).
            let Some(bytes) = self.get(&key, snapshot::FILE_LEN_MAX).await? else {
                return Err(History::Vanished(Some(corrupt(
                    &key,
                    None,
                    format!("missing, and it holds events up to {s} of the history"),
                ))));
            };
            check_snapshot(&key, &bytes, guild, s, keys)?;
            files.push((layout::snapshot_path(journal.dir(), guild, s), bytes));
        }
        Ok((next - 1, files))
    }
}

/// True when the (fenced) log of an epoch reaches event `s`: an entry of the epoch ends at
/// or after it, or the epoch's own events all start after it (a snapshot of the history the
/// epoch inherited), or retention left none of them. False when the epoch stored events up
/// to `s` and its history ends before `s`.
fn log_reaches(log: &EpochLog, s: Seq) -> bool {
    log.parts.is_empty()
        || log.parts.iter().any(|(_, entry)| entry.last >= s)
        || log.parts.iter().all(|(_, entry)| entry.first > s)
}

/// Why reading a claim's history stopped.
enum History {
    /// An object listed was gone when read (retention by the live owner): read again. With
    /// the error to report when it keeps happening (a snapshot the history needs is gone).
    Vanished(Option<Error>),
    /// Anything else.
    Failed(Error),
}

impl From<Error> for History {
    fn from(e: Error) -> History {
        History::Failed(e)
    }
}

/// The frame bytes of `chunk` from event `from` on (the chunk runs from its header's first
/// seq; it was checked when its batch was decoded).
fn frames_from(chunk: &[u8], from: Seq) -> &[u8] {
    for (offset, f) in segment::frames(chunk, chunk.len() as u64) {
        if f.seq >= from {
            return &chunk[offset as usize..];
        }
    }
    &chunk[chunk.len()..]
}

/// Checks an object of a writer's log and says what it is.
fn classify(key: &ObjectPath, writer: &str, position: u64, bytes: &[u8]) -> Result<LogObject> {
    if batch::is_batch(bytes) {
        let b = batch::decode(bytes).map_err(|f| corrupt(key, Some(f.offset), f.detail))?;
        if b.position != position || hex(&b.writer) != writer {
            return Err(corrupt(
                key,
                Some(0),
                "batch names another writer or position",
            ));
        }
        return Ok(LogObject::Batch(Arc::new(b)));
    }
    if bytes.len() as u64 > objects::SMALL_OBJECT_LEN_MAX {
        return Err(corrupt(key, None, "neither a batch nor a marker"));
    }
    let marker: Marker = objects::decode(bytes).map_err(|d| corrupt(key, None, d))?;
    Ok(LogObject::Marker(marker))
}

/// Fails with [`Error::Fenced`] when this directory's record says a newer owner was seen.
///
/// # Errors
/// [`Error::Fenced`].
pub fn check_not_fenced(guild: GuildId, record: Option<&OwnerRecord>) -> Result<()> {
    match record.and_then(|r| r.fenced_by.clone()) {
        Some((epoch, owner)) => Err(Error::Fenced {
            guild,
            epoch,
            owner,
        }),
        None => Ok(()),
    }
}

/// Remembers in the directory's ownership record that it was fenced, so that every later
/// append fails too (CONTRACT §3: once the old owner has seen the newer epoch). Best effort:
/// the store keeps saying so anyway.
fn note_fenced<T>(journal: &LocalDir, guild: GuildId, result: Result<T>) -> Result<T> {
    if let Err(Error::Fenced { epoch, owner, .. }) = &result {
        if let Ok(Some(mut record)) = Remote::owner_record(journal, guild) {
            if record.fenced_by.is_none() && *epoch >= record.epoch {
                record.fenced_by = Some((*epoch, owner.clone()));
                if let Err(e) = Remote::write_owner_record(journal, &record) {
                    tracing::warn!("could not record that guild {} is fenced: {e}", guild.0);
                }
            }
        }
    }
    result
}

/// A chunk of the events `from..=to` (as many as the segment holds) out of a local segment:
/// its `header` with `first_seq = from`, then the frames byte for byte. `bytes` are the
/// segment's bytes from file offset `base` on (a frame boundary); frames before `from` are
/// stepped over. The chunk stops before the frame that would take it past
/// [`CHUNK_BYTES_TARGET`] (its first frame always goes in). Returns the chunk, the file
/// offset after its last frame and its last event, or `None` when these bytes do not hold
/// `from`.
fn build_chunk(
    header: SegmentHeader,
    bytes: &[u8],
    base: u64,
    path: &Path,
    from: Seq,
    to: Seq,
) -> Result<Option<(Vec<u8>, u64, Seq)>> {
    let mut offset = 0;
    let mut out = segment::encode_header(&SegmentHeader {
        first_seq: from,
        ..header
    })
    .to_vec();
    let mut next = from;
    while next <= to {
        let Some(rest) = bytes.get(offset..).filter(|r| !r.is_empty()) else {
            break;
        };
        // A frame that does not decode ends what the segment holds (the journal flushed
        // every acknowledged frame; what follows is a torn tail it will cut).
        let Ok(f) = frame::decode(rest) else {
            break;
        };
        if f.seq < next {
            offset += f.len_total();
            continue;
        }
        if f.seq != next {
            return Err(
                Corruption::new(path, base + offset as u64, CorruptionKind::SequenceGap)
                    .values(next, f.seq)
                    .into(),
            );
        }
        if next > from && out.len() + f.len_total() > CHUNK_BYTES_TARGET {
            break;
        }
        out.extend_from_slice(&rest[..f.len_total()]);
        offset += f.len_total();
        next += 1;
    }
    Ok((next > from).then_some((out, base + offset as u64, next - 1)))
}

/// The chunk entry of `me` for a chunk built from the segment at `at`, and the cursor after it.
fn chunk_entry(
    me: &Owner,
    from: Seq,
    at: Cursor,
    (chunk, end, last): (Vec<u8>, u64, Seq),
) -> (Entry, Option<Cursor>) {
    let entry = Entry {
        guild: me.guild.0,
        epoch: me.epoch,
        first: from,
        last,
        kind: EntryKind::Chunk,
        chunk,
    };
    (entry, Some(Cursor { offset: end, ..at }))
}

/// Reads a local snapshot and checks it completely before it is uploaded.
fn read_snapshot_checked(
    journal: &LocalDir,
    guild: GuildId,
    seq: Seq,
    path: &Path,
) -> Result<Vec<u8>> {
    let bytes = journal
        .storage()
        .read(path, snapshot::FILE_LEN_MAX)
        .map_err(|e| local_io("read", path, e))?;
    let (header, _) =
        snapshot::decode(&bytes, journal.keys()).map_err(|f| Error::from(f.at(path)))?;
    if header.guild != guild.0 || header.seq != seq {
        return Err(Corruption::new(path, 0, CorruptionKind::HeaderMismatch).into());
    }
    Ok(bytes.to_vec())
}

/// Refuses a chunk sealed under a key this journal was not given, before anything is written.
fn check_key(key: &ObjectPath, chunk: &[u8], keys: Option<&crate::crypto::Keyring>) -> Result<()> {
    let header =
        segment::decode_header(chunk).map_err(|f| corrupt(key, Some(f.offset), f.kind.as_str()))?;
    crate::crypto::require_key(keys, header.key_id, key.to_string())
}

/// Checks a downloaded snapshot completely (checksums, decompression, decoding; with the
/// key when it is encrypted).
fn check_snapshot(
    key: &ObjectPath,
    bytes: &[u8],
    guild: GuildId,
    seq: Seq,
    keys: Option<&crate::crypto::Keyring>,
) -> Result<()> {
    let header = snapshot::decode_header(bytes)
        .map_err(|f| corrupt(key, Some(f.offset), f.kind.as_str()))?;
    crate::crypto::require_key(keys, header.key_id, key.to_string())?;
    let (header, _) =
        snapshot::decode(bytes, keys).map_err(|f| corrupt(key, Some(f.offset), f.kind.as_str()))?;
    if header.guild != guild.0 || header.seq != seq {
        return Err(corrupt(key, Some(0), "snapshot names another guild or seq"));
    }
    Ok(())
}

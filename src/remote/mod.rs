//! A guild's journal in an object store: shipping, fenced ownership, claiming elsewhere.
//!
//! Everything here goes through [`object_store::ObjectStore`] and uses exactly one conditional
//! write, *create if absent* (`PutMode::Create`: S3's `If-None-Match: *`, a hard link on a
//! local directory), which every backend reprise targets supports. The layout, the object
//! formats and the argument that no acknowledged event is lost and no two owners acknowledge
//! the same sequence number are in DESIGN.md ("Remote"). In short:
//!
//! ```text
//! PREFIX/guilds/<guild>/
//!   claim/<epoch:020>                       who claimed the guild at that epoch (create-only)
//!   log/<epoch:020>/<position:020>          an epoch's log: chunks (segment format, the events
//!                                           from <position> on), or a marker: `skip` (events
//!                                           held by a snapshot) or `fence` (the log ends here)
//!   snap/<seq:020>-<epoch:020>.snap         a snapshot file, uploaded by that epoch's owner
//! ```
//!
//! Every object is created once and never rewritten. An owner writes its epoch's log at
//! consecutive positions, one object at a time; a claim closes every older epoch's log with a
//! `fence` at the position after its last event. Whoever creates a position first wins it, so
//! an old owner either stored its chunk before the fence (and the claim includes it) or finds
//! the fence and stops.

pub mod faulty;
mod objects;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use crate::config::SEGMENT_BYTES_MAX_MAX;
use crate::error::{Corruption, CorruptionKind, Error, Result};
use crate::format::segment::{self, ScanEnd, SegmentHeader};
use crate::format::{frame, snapshot};
use crate::ids::{GuildId, Seq};
use crate::journal::Journal;
use crate::layout;
use crate::storage::{self, Storage};

pub use objects::{ClaimRecord, Marker, OwnerRecord};

/// Largest chunk object reprise reads: the largest segment plus one maximal frame.
pub const CHUNK_LEN_MAX: u64 =
    SEGMENT_BYTES_MAX_MAX + frame::HEADER_LEN as u64 + frame::PAYLOAD_LEN_MAX as u64;

/// How many times a claim retries fencing an epoch whose owner keeps winning the race for
/// the next position before it gives up (the owner is then clearly alive and busy).
const FENCE_ATTEMPTS_MAX: u32 = 64;

/// Objects and bytes uploaded by [`Remote::ship`].
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
}

/// One object of an epoch's log.
#[derive(Debug)]
enum LogObject {
    /// Events `first..=last` in segment format.
    Chunk { last: Seq, bytes: Vec<u8> },
    /// A marker.
    Marker(Marker),
}

/// An object store plus the key prefix reprise owns in it.
#[derive(Clone, Debug)]
pub struct Remote {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    url: String,
}

/// What a directory knows of its own epoch's log for one guild: the owner's shipping state.
///
/// Made by [`Remote::owner`], which checks that no newer epoch exists (claiming epoch 1 when
/// the guild has never been claimed) and finds the last event the epoch's log holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    /// The guild.
    pub guild: GuildId,
    /// The epoch this directory holds.
    pub epoch: u64,
    /// The owner name.
    pub owner: String,
    /// The last event stored in the remote (in this epoch's log or before it).
    pub head: Seq,
    /// Where the frame after `head` starts in the local segment last read: (segment's first
    /// seq, byte offset), so the next batch reads on from there instead of scanning again.
    cursor: Option<(Seq, u64)>,
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
            // seconds (local appends go on meanwhile; the next ship catches up).
            let retry = object_store::RetryConfig {
                max_retries: 4,
                retry_timeout: std::time::Duration::from_secs(15),
                ..object_store::RetryConfig::default()
            };
            let store = object_store::aws::AmazonS3Builder::from_env()
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

    fn key(&self, rel: &str) -> ObjectPath {
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

    /// The key of position `position` of `epoch`'s log of `guild`.
    pub fn log_key(&self, guild: GuildId, epoch: u64, position: Seq) -> ObjectPath {
        self.key(&format!(
            "guilds/{}/log/{epoch:020}/{position:020}",
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
    async fn create(&self, key: &ObjectPath, bytes: &[u8]) -> Result<bool> {
        let opts = PutOptions::from(PutMode::Create);
        match self
            .store
            .put_opts(key, PutPayload::from(bytes.to_vec()), opts)
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

    /// [`Remote::get`] through a cache of immutable objects (claims' reads only).
    async fn get_cached(
        &self,
        key: &ObjectPath,
        len_max: u64,
        cache: &mut HashMap<ObjectPath, Vec<u8>>,
    ) -> Result<Option<Vec<u8>>> {
        if let Some(bytes) = cache.get(key) {
            return Ok(Some(bytes.clone()));
        }
        let got = self.get(key, len_max).await?;
        if let Some(bytes) = &got {
            cache.insert(key.clone(), bytes.clone());
        }
        Ok(got)
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

    // ---- the local ownership record ---------------------------------------------------

    /// This directory's ownership record for `guild`, if it has one.
    ///
    /// # Errors
    /// [`Error::Io`]; a damaged record is [`Error::Corrupt`].
    pub fn owner_record(journal: &Journal, guild: GuildId) -> Result<Option<OwnerRecord>> {
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

    fn write_owner_record(journal: &Journal, record: &OwnerRecord) -> Result<()> {
        let path = layout::remote_owner_path(journal.dir(), GuildId(record.guild));
        let storage = journal.storage();
        let dir = journal.dir().join(layout::REMOTE_DIR);
        storage
            .create_dir_all(&dir)
            .map_err(|e| local_io("create directory", &dir, e))?;
        storage
            .sync_dir(journal.dir())
            .map_err(|e| local_io("fsync directory", journal.dir(), e))?;
        storage::write_atomic(storage.as_ref(), &path, &objects::encode(record))
            .map_err(|(op, p, e)| Error::io(op, p, e))
    }

    // ---- reading an epoch's log -------------------------------------------------------

    async fn positions(&self, guild: GuildId, epoch: u64) -> Result<Vec<Seq>> {
        let (objects, _) = self
            .list(&format!("guilds/{}/log/{epoch:020}", guild.0))
            .await?;
        let mut positions: Vec<Seq> = objects.iter().filter_map(|n| parse_num(n)).collect();
        positions.sort_unstable();
        Ok(positions)
    }

    /// Reads and checks the object at `position` of `epoch`'s log.
    async fn read_log_object(
        &self,
        guild: GuildId,
        epoch: u64,
        position: Seq,
    ) -> Result<Option<LogObject>> {
        let key = self.log_key(guild, epoch, position);
        let Some(bytes) = self.get(&key, CHUNK_LEN_MAX).await? else {
            return Ok(None);
        };
        classify(&key, guild, epoch, position, bytes).map(Some)
    }

    async fn read_log_object_cached(
        &self,
        guild: GuildId,
        epoch: u64,
        position: Seq,
        cache: &mut HashMap<ObjectPath, Vec<u8>>,
    ) -> Result<Option<LogObject>> {
        let key = self.log_key(guild, epoch, position);
        let Some(bytes) = self.get_cached(&key, CHUNK_LEN_MAX, cache).await? else {
            return Ok(None);
        };
        classify(&key, guild, epoch, position, bytes).map(Some)
    }

    // ---- ownership ----------------------------------------------------------------------

    /// The shipping state of this directory for `guild`: fails with [`Error::Fenced`] when the
    /// store shows a newer epoch (or any epoch, when this directory never claimed the guild);
    /// claims epoch 1 when the guild was never claimed.
    ///
    /// # Errors
    /// [`Error::Fenced`], [`Error::Remote`], [`Error::RemoteCorrupt`], [`Error::Io`].
    pub async fn owner(&self, journal: &Journal, guild: GuildId, owner: &str) -> Result<Owner> {
        let result = self.owner_inner(journal, guild, owner).await;
        note_fenced(journal, guild, result)
    }

    async fn owner_inner(&self, journal: &Journal, guild: GuildId, owner: &str) -> Result<Owner> {
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
                claimed_unix_ms: now_unix_ms(),
            };
            self.create(&self.claim_key(guild, 1), &objects::encode(&claim))
                .await?;
            record = Some(r);
        }
        let record = match (record, newest) {
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
                r
            }
            (None, None) => unreachable!("claimed above"),
        };
        let positions = self.positions(guild, record.epoch).await?;
        let head = match positions.last() {
            None => record.chain_start - 1,
            Some(&p) => match self.read_log_object(guild, record.epoch, p).await? {
                None => record.chain_start - 1,
                Some(LogObject::Chunk { last, .. }) => last,
                Some(LogObject::Marker(Marker::Skip { skip_to, .. })) => skip_to - 1,
                Some(LogObject::Marker(Marker::Fence {
                    fenced_by, owner, ..
                })) => {
                    return Err(Error::Fenced {
                        guild,
                        epoch: fenced_by,
                        owner,
                    })
                }
            },
        };
        Ok(Owner {
            guild,
            epoch: record.epoch,
            owner: record.owner,
            head,
            cursor: None,
        })
    }

    /// Uploads what the remote lacks of `guild`: the events after the remote head (as chunks,
    /// a sealed segment whole when none of it is remote yet), and the snapshots up to the head.
    /// Checks ownership first ([`Remote::owner`]). The journal's state must be durable (the
    /// CLI checkpoints first; `apply` syncs before it ships).
    ///
    /// # Errors
    /// [`Error::Fenced`] when a newer owner has claimed the guild; store and local errors.
    pub async fn ship(
        &self,
        journal: &mut Journal,
        guild: GuildId,
        owner: &str,
    ) -> Result<ShipReport> {
        let mut me = self.owner(journal, guild, owner).await?;
        let events = self.ship_events(journal, &mut me).await?;
        let snapshots = self.ship_snapshots(journal, &me).await?;
        Ok(ShipReport {
            objects: events.objects + snapshots.objects,
            bytes: events.bytes + snapshots.bytes,
        })
    }

    /// Uploads the events after `owner.head` (and advances it): the remote half of
    /// `remote` durability. One object per local segment the events span.
    ///
    /// # Errors
    /// As [`Remote::ship`].
    pub async fn ship_events(&self, journal: &mut Journal, me: &mut Owner) -> Result<ShipReport> {
        let result = self.ship_events_inner(journal, me).await;
        note_fenced(journal, me.guild, result)
    }

    async fn ship_events_inner(&self, journal: &mut Journal, me: &mut Owner) -> Result<ShipReport> {
        let guild = me.guild;
        let mut report = ShipReport::default();
        let last = journal.state(guild)?.seq;
        if last <= me.head {
            return Ok(report);
        }
        // Only the segments holding events after the remote head are read (names say where
        // each starts), so a batch costs what it ships, not the size of the log.
        journal.flush()?;
        let storage = journal.storage();
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
        // The segment that would hold `seq`: the last one starting at or before it.
        let holder = |seq: Seq| segments.iter().rev().find(|&&f| f <= seq).copied();
        while me.head < last {
            let next = me.head + 1;
            if let Some(first) = holder(next) {
                let path = layout::segment_path(journal.dir(), guild, first);
                let bytes = storage
                    .read(&path, CHUNK_LEN_MAX)
                    .map_err(|e| local_io("read", &path, e))?;
                let start = me
                    .cursor
                    .filter(|&(f, _)| f == first)
                    .map(|(_, offset)| offset);
                let mut built = build_chunk(&bytes, &path, next, last, start)?;
                if built.is_none() && start.is_some() {
                    built = build_chunk(&bytes, &path, next, last, None)?;
                }
                if let Some((chunk, end_offset)) = built {
                    let before = me.head;
                    self.put_chunk(me, &chunk, &mut report).await?;
                    // The cursor stays valid only when the chunk was stored as built.
                    let stored_all = me.head == before + segment_frames(&chunk);
                    me.cursor = stored_all.then_some((first, end_offset));
                    continue;
                }
            }
            // The local log no longer holds `next`: a snapshot after it stands in for the
            // events up to it (a skip marker says so).
            let snap = snapshots
                .iter()
                .rev()
                .copied()
                .find(|&s| s >= next && s <= last && (s == last || holder(s + 1).is_some()));
            let Some(s) = snap else {
                return Err(Corruption::new(
                    layout::guild_dir(journal.dir(), guild),
                    0,
                    CorruptionKind::Unrecoverable,
                )
                .detail(format!(
                    "the local log no longer holds event {next} and no snapshot covers it; \
                     it cannot be shipped"
                ))
                .into());
            };
            let path = layout::snapshot_path(journal.dir(), guild, s);
            let bytes = read_snapshot_checked(journal, guild, s, &path)?;
            let key = self.snapshot_key(guild, s, me.epoch);
            if self.create(&key, &bytes).await? {
                report.add(bytes.len());
            }
            let marker = Marker::Skip {
                guild: guild.0,
                epoch: me.epoch,
                skip_to: s + 1,
            };
            let marker_bytes = objects::encode(&marker);
            let key = self.log_key(guild, me.epoch, next);
            if self.create(&key, &marker_bytes).await? {
                report.add(marker_bytes.len());
                me.head = s;
            } else {
                self.settle_existing(me, next, &marker_bytes).await?;
            }
        }
        Ok(report)
    }

    /// Creates the chunk at `owner.head + 1`; on a conflict, reads what is there.
    async fn put_chunk(&self, me: &mut Owner, chunk: &[u8], report: &mut ShipReport) -> Result<()> {
        let position = me.head + 1;
        let key = self.log_key(me.guild, me.epoch, position);
        if self.create(&key, chunk).await? {
            report.add(chunk.len());
            me.head = segment::scan(chunk, false).map_or(me.head, |s| s.last_seq);
            return Ok(());
        }
        self.settle_existing(me, position, chunk).await
    }

    /// The position this owner meant to create exists: it is this owner's own earlier write
    /// whose answer was lost (the same bytes, or a prefix of a chunk: an earlier, shorter
    /// attempt), or a fence (the owner is fenced). Advances `head` past the former.
    async fn settle_existing(&self, me: &mut Owner, position: Seq, ours: &[u8]) -> Result<()> {
        let key = self.log_key(me.guild, me.epoch, position);
        match self.read_log_object(me.guild, me.epoch, position).await? {
            None => Err(corrupt(&key, None, "exists and then does not (deleted?)")),
            Some(LogObject::Marker(Marker::Fence {
                fenced_by, owner, ..
            })) => Err(Error::Fenced {
                guild: me.guild,
                epoch: fenced_by,
                owner,
            }),
            // Only this epoch's owner writes chunks and skips into its log (claims write
            // fences only), so they are this owner's own earlier writes. A skip stands for a
            // snapshot uploaded before it; a chunk must hold the same frames as the local log
            // where the local log still holds them (it may since have dropped them, and then
            // stand a skip in for them: `ours` is a marker).
            Some(LogObject::Marker(Marker::Skip { skip_to, .. })) => {
                me.head = skip_to - 1;
                Ok(())
            }
            Some(LogObject::Chunk { last, bytes }) => {
                if ours.starts_with(&bytes) || !ours.starts_with(&segment::MAGIC) {
                    me.head = last;
                    Ok(())
                } else {
                    Err(corrupt(
                        &key,
                        None,
                        "holds other events than this directory's log for this epoch",
                    ))
                }
            }
        }
    }

    /// Uploads, under this owner's epoch, every local snapshot up to `owner.head` that the
    /// remote lacks (each checked completely first).
    ///
    /// # Errors
    /// Store and local errors; a damaged local snapshot is [`Error::Corrupt`].
    pub async fn ship_snapshots(&self, journal: &mut Journal, me: &Owner) -> Result<ShipReport> {
        let mut report = ShipReport::default();
        let guild = me.guild;
        let (objects, _) = self.list(&format!("guilds/{}/snap", guild.0)).await?;
        let present: BTreeSet<String> = objects.into_iter().collect();
        let info = journal.inspect(guild)?;
        for snap in &info.snapshots {
            let s = snap.first_seq;
            let key = self.snapshot_key(guild, s, me.epoch);
            if s > me.head || present.contains(key.filename().unwrap_or_default()) {
                continue;
            }
            let bytes = read_snapshot_checked(journal, guild, s, &snap.path)?;
            if self.create(&key, &bytes).await? {
                report.add(bytes.len());
            }
        }
        Ok(report)
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

    /// Makes this directory the owner of `guild`: writes the next epoch's claim, fences every
    /// older epoch's log, downloads the newest usable snapshot and the log after it into the
    /// (empty) guild directory, verifying every object, and recovers.
    ///
    /// A directory that already holds the guild is refused ([`Error::ClaimConflict`]) unless
    /// it holds the newest epoch already (then nothing is done).
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
        let record = Remote::owner_record(journal, guild)?;
        let epochs = self.claim_epochs(guild).await?;
        let newest = epochs.last().copied().unwrap_or(0);
        if !local_files.is_empty() || record.is_some() {
            let ours = match &record {
                Some(r) if r.epoch == newest => {
                    self.read_claim(guild, newest).await?.token == r.token
                }
                _ => false,
            };
            return match record {
                Some(r) if ours => Ok(Claimed {
                    guild,
                    epoch: r.epoch,
                    seq: journal.state(guild)?.seq,
                }),
                _ => Err(Error::ClaimConflict {
                    guild,
                    path: guild_dir,
                    detail: format!(
                        "the directory already holds guild {} (not as its newest owner); \
                         claim into a directory without it",
                        guild.0
                    ),
                }),
            };
        }
        let epoch = newest + 1;
        let claim = ClaimRecord {
            guild: guild.0,
            epoch,
            owner: owner.to_string(),
            token: objects::new_token(),
            claimed_unix_ms: now_unix_ms(),
        };
        // Read and check the history as it stands before writing anything anywhere: damaged
        // or missing objects fail the claim with the store untouched (the owner is not fenced).
        let mut cache = HashMap::new();
        self.read_history(journal, guild, &epochs, epoch, None, &mut cache)
            .await?;
        if !self
            .create(&self.claim_key(guild, epoch), &objects::encode(&claim))
            .await?
        {
            return Err(self.fenced_by_claim(guild, epoch).await);
        }
        // Now close the older epochs' logs and read the final history (objects read in the
        // first pass are immutable and come from the cache).
        let (head, files) = self
            .read_history(journal, guild, &epochs, epoch, Some(&claim), &mut cache)
            .await?;
        // Everything is verified: write it (the guild directory is empty), then recover.
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
            journal,
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
                &self.key(&format!("guilds/{}/log", guild.0)),
                None,
                format!(
                    "the downloaded history recovers to event {seq}, the remote log ends at {head}"
                ),
            ));
        }
        if let Some(&n) = self.claim_epochs(guild).await?.last() {
            if n > epoch {
                return Err(self.fenced_by_claim(guild, n).await);
            }
        }
        Ok(Claimed { guild, epoch, seq })
    }

    /// The guild's history below `below_epoch`: every older epoch's end (closing each with a
    /// fence when `fence` is given), the newest usable snapshot and the chunks after it, all
    /// checked. Returns the last event and the files to write into the guild directory.
    async fn read_history(
        &self,
        journal: &Journal,
        guild: GuildId,
        epochs: &[u64],
        below_epoch: u64,
        fence: Option<&ClaimRecord>,
        cache: &mut HashMap<ObjectPath, Vec<u8>>,
    ) -> Result<(Seq, Vec<(std::path::PathBuf, Vec<u8>)>)> {
        let epoch = below_epoch;
        // Close every older epoch's log, oldest first: each one's end is where the next
        // one starts.
        let (_, log_epochs) = self.list(&format!("guilds/{}/log", guild.0)).await?;
        let mut all: BTreeSet<u64> = epochs.iter().copied().collect();
        all.extend(log_epochs.iter().filter_map(|n| parse_num(n)));
        let mut ends: BTreeMap<u64, (Seq, Vec<Seq>)> = BTreeMap::new();
        let mut end = 0;
        for &e in all.iter().filter(|&&e| e < epoch) {
            let (e_end, positions) = self.fence_epoch(guild, e, end, fence, cache).await?;
            end = e_end;
            ends.insert(e, (e_end, positions));
        }
        let head = end;
        // The newest snapshot whose uploader's log reached it.
        let (snaps, _) = self.list(&format!("guilds/{}/snap", guild.0)).await?;
        let base = snaps
            .iter()
            .filter_map(|n| {
                let stem = n.strip_suffix(".snap")?;
                let (s, e) = stem.split_once('-')?;
                Some((parse_num(s)?, parse_num(e)?))
            })
            .filter(|&(s, e)| s <= head && ends.get(&e).is_some_and(|(end, _)| s <= *end))
            .max();
        let base_seq = base.map_or(0, |(s, _)| s);
        // The chunks covering base_seq + 1 ..= head, across epochs.
        let mut files: Vec<(std::path::PathBuf, Vec<u8>)> = Vec::new();
        let mut next = base_seq + 1;
        for (&e, (e_end, positions)) in &ends {
            for (i, &p) in positions.iter().enumerate() {
                let p_end = positions.get(i + 1).map_or(*e_end, |n| n - 1);
                if p_end < next || p > head {
                    continue;
                }
                let key = self.log_key(guild, e, p);
                if p > next {
                    return Err(corrupt(
                        &key,
                        None,
                        format!(
                            "gap in the guild's remote history: events {next}..{p} are missing"
                        ),
                    ));
                }
                match self.read_log_object_cached(guild, e, p, cache).await? {
                    None => return Err(corrupt(&key, None, "listed but missing")),
                    Some(LogObject::Chunk { last, bytes }) => {
                        if last != p_end {
                            return Err(corrupt(
                                &key,
                                None,
                                format!(
                                    "ends at event {last}, the next object starts at {}",
                                    p_end + 1
                                ),
                            ));
                        }
                        check_key(&key, &bytes, journal.config().keys.as_ref())?;
                        files.push((layout::segment_path(journal.dir(), guild, p), bytes));
                        next = last + 1;
                    }
                    Some(LogObject::Marker(Marker::Skip { .. })) => {
                        return Err(corrupt(
                            &key,
                            None,
                            format!(
                            "events {next}..={p_end} are held only by a snapshot that is missing"
                        ),
                        ))
                    }
                    Some(LogObject::Marker(Marker::Fence { .. })) => {
                        return Err(corrupt(&key, None, "a fence inside an epoch's log"))
                    }
                }
            }
        }
        if next <= head {
            return Err(corrupt(
                &self.key(&format!("guilds/{}/log", guild.0)),
                None,
                format!("gap in the guild's remote history: events {next}..={head} are missing"),
            ));
        }
        if let Some((s, e)) = base {
            let key = self.snapshot_key(guild, s, e);
            let bytes = self
                .get_cached(&key, snapshot::FILE_LEN_MAX, cache)
                .await?
                .ok_or_else(|| corrupt(&key, None, "listed but missing"))?;
            check_snapshot(&key, &bytes, guild, s, journal.config().keys.as_ref())?;
            files.push((layout::snapshot_path(journal.dir(), guild, s), bytes));
        }
        Ok((head, files))
    }

    /// Closes `epoch`'s log (which starts after event `start_after`) with a fence written by
    /// `claim` (without one: only reads where it ends now): returns its last event and its
    /// positions (without the fence).
    async fn fence_epoch(
        &self,
        guild: GuildId,
        epoch: u64,
        start_after: Seq,
        claim: Option<&ClaimRecord>,
        cache: &mut HashMap<ObjectPath, Vec<u8>>,
    ) -> Result<(Seq, Vec<Seq>)> {
        for _ in 0..FENCE_ATTEMPTS_MAX {
            let mut positions = self.positions(guild, epoch).await?;
            if let Some(&first) = positions.first() {
                if first != start_after + 1 {
                    return Err(corrupt(
                        &self.log_key(guild, epoch, first),
                        None,
                        format!(
                            "the epoch's log starts at {first}, the previous one ends at {start_after}"
                        ),
                    ));
                }
            }
            let end = match positions.last() {
                None => start_after,
                Some(&p) => match self.read_log_object_cached(guild, epoch, p, cache).await? {
                    None => continue,
                    Some(LogObject::Marker(Marker::Fence { .. })) => {
                        positions.pop();
                        return Ok((p - 1, positions));
                    }
                    Some(LogObject::Marker(Marker::Skip { skip_to, .. })) => skip_to - 1,
                    Some(LogObject::Chunk { last, .. }) => last,
                },
            };
            let Some(claim) = claim else {
                return Ok((end, positions));
            };
            let fence = objects::encode(&Marker::Fence {
                guild: guild.0,
                epoch,
                fenced_by: claim.epoch,
                owner: claim.owner.clone(),
            });
            if self
                .create(&self.log_key(guild, epoch, end + 1), &fence)
                .await?
            {
                return Ok((end, positions));
            }
        }
        Err(Error::Remote {
            op: "fence",
            key: self.log_key(guild, epoch, start_after + 1).to_string(),
            source: format!(
                "the owner of epoch {epoch} won the race for its next position {FENCE_ATTEMPTS_MAX} times"
            )
            .into(),
        })
    }
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
fn note_fenced<T>(journal: &Journal, guild: GuildId, result: Result<T>) -> Result<T> {
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

/// Checks an object of an epoch's log and says what it is.
fn classify(
    key: &ObjectPath,
    guild: GuildId,
    epoch: u64,
    position: Seq,
    bytes: Vec<u8>,
) -> Result<LogObject> {
    if bytes.starts_with(&segment::MAGIC) {
        let scan = segment::scan(&bytes, false)
            .map_err(|f| corrupt(key, Some(f.offset), f.kind.as_str()))?;
        if let ScanEnd::Corrupt(f) = &scan.end {
            return Err(corrupt(key, Some(f.offset), f.kind.as_str()));
        }
        if scan.header.guild != guild.0 || scan.header.first_seq != position {
            return Err(corrupt(
                key,
                Some(0),
                "chunk header names another guild or first event",
            ));
        }
        if scan.frame_count == 0 {
            return Err(corrupt(key, None, "a chunk without events"));
        }
        return Ok(LogObject::Chunk {
            last: scan.last_seq,
            bytes,
        });
    }
    if bytes.len() as u64 > objects::SMALL_OBJECT_LEN_MAX {
        return Err(corrupt(key, None, "neither a chunk nor a marker"));
    }
    let marker: Marker = objects::decode(&bytes).map_err(|d| corrupt(key, None, d))?;
    match &marker {
        Marker::Fence {
            guild: g, epoch: e, ..
        } if *g == guild.0 && *e == epoch => {}
        Marker::Skip {
            guild: g,
            epoch: e,
            skip_to,
        } if *g == guild.0 && *e == epoch && *skip_to > position => {}
        _ => {
            return Err(corrupt(
                key,
                None,
                "marker names another guild, epoch or position",
            ))
        }
    }
    Ok(LogObject::Marker(marker))
}

/// A chunk of the events `from..=to` (as many as the segment holds) out of a local segment's
/// bytes: the segment's header with `first_seq = from`, then the frames byte for byte (a whole
/// segment gives its own bytes). `start` is where frame `from` is known to start (the cursor
/// of the previous batch); without it the frames before `from` are stepped over. Returns the
/// chunk and the offset after its last frame, or `None` when the segment does not hold `from`.
fn build_chunk(
    bytes: &[u8],
    path: &Path,
    from: Seq,
    to: Seq,
    start: Option<u64>,
) -> Result<Option<(Vec<u8>, u64)>> {
    let header = segment::decode_header(bytes).map_err(|f| Error::from(f.at(path)))?;
    let mut offset = match start {
        Some(o) if o as usize <= bytes.len() => o as usize,
        _ => segment::HEADER_LEN,
    };
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
                Corruption::new(path, offset as u64, CorruptionKind::SequenceGap)
                    .values(next, f.seq)
                    .into(),
            );
        }
        out.extend_from_slice(&rest[..f.len_total()]);
        offset += f.len_total();
        next += 1;
    }
    Ok((next > from).then_some((out, offset as u64)))
}

/// Number of frames in a chunk built by [`build_chunk`].
fn segment_frames(chunk: &[u8]) -> u64 {
    segment::frames(chunk, chunk.len() as u64).count() as u64
}

/// Reads a local snapshot and checks it completely before it is uploaded.
fn read_snapshot_checked(
    journal: &Journal,
    guild: GuildId,
    seq: Seq,
    path: &Path,
) -> Result<Vec<u8>> {
    let bytes = journal
        .storage()
        .read(path, snapshot::FILE_LEN_MAX)
        .map_err(|e| local_io("read", path, e))?;
    let (header, _) = snapshot::decode(&bytes, journal.config().keys.as_ref())
        .map_err(|f| Error::from(f.at(path)))?;
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

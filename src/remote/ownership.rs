//! Ownership and fencing: this directory's [`Writer`] and the [`Owner`] of each guild it
//! ships, the claim records in the store, the local ownership records, and the fences and
//! notices that close an epoch.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use crate::error::{Corruption, CorruptionKind, Error, Result};
use crate::ids::{Epoch, GuildId, LogPosition, Seq};
use crate::layout;
use crate::storage;

use super::keys::parse_num;
use super::ship::Cursor;
use super::store::{corrupt, local_io};
use super::{
    now_unix_ms, objects, Batch, ClaimRecord, Entry, LocalDir, LogObject, Marker, OwnerRecord,
    Remote,
};

/// Where a guild's entry is in a writer's log: (position, first event, last event).
type Part = (LogPosition, Seq, Seq);

/// This directory's log in the store: its id, the process's incarnation, and the last
/// position known to exist. Made by [`Remote::writer`]; one per open journal.
#[derive(Clone, Debug)]
pub struct Writer {
    pub(super) id: [u8; 16],
    pub(super) name: String,
    pub(super) incarnation: [u8; 16],
    /// The last position known to exist in the log (0: none).
    pub(super) head: LogPosition,
    /// The entries of this log's batches that this process wrote or read: (guild, epoch) →
    /// (position, first, last), so that finding where a guild's epoch stands needs no reads.
    pub(super) index: BTreeMap<(u64, Epoch), Vec<Part>>,
    /// The positions up to which `index` is complete for entries at or after a position
    /// (everything from `indexed_from` to `head` has been read or written by this process).
    pub(super) indexed_from: LogPosition,
    /// The positions below `indexed_from` that existed when retention first listed them,
    /// not read yet (a previous process's batches): [`Remote::retain`] reads a few per round,
    /// newest first, so their entries are judged too. `None` until listed.
    pub(super) unswept: Option<Vec<LogPosition>>,
    /// Where [`Remote::retain`]'s round-robin over guilds held by no owner here resumes.
    pub(super) foreign_next: u64,
}

impl Writer {
    /// The writer's name (hex id): its log is `writers/<name>/`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The last position known to exist in the writer's log.
    pub fn head(&self) -> LogPosition {
        self.head
    }

    pub(super) fn note_batch(&mut self, b: &Batch) {
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
    pub epoch: Epoch,
    /// The owner name.
    pub owner: String,
    /// The last event stored in the remote (by this epoch or before it).
    pub head: Seq,
    /// Set once a shipping round found this epoch fenced: the newer epoch and its owner.
    /// Nothing more is shipped or acknowledged for the guild.
    pub fenced_by: Option<(Epoch, String)>,
    /// The first event of this epoch (the history before it was claimed).
    pub chain_start: Seq,
    /// The newest snapshot this epoch stored in the remote (0: none): the remote history up
    /// to it needs no batch object any more.
    pub snapshot_stored: Seq,
    /// The snapshot up to which [`Remote::retain`] last removed what it made obsolete.
    pub(super) snapshot_retained: Seq,
    /// Where the frame after `head` starts in the local segment last read, so the next round
    /// reads only the bytes after it (no listing, no scan of what was shipped).
    pub(super) cursor: Option<Cursor>,
}

impl Owner {
    /// The state of a guild found fenced at its first contact (nothing is shipped for it).
    pub(crate) fn fenced(guild: GuildId, epoch: Epoch, owner: String) -> Owner {
        Owner {
            guild,
            epoch: Epoch::NONE,
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

/// One epoch's part of a guild's history, as read from its writer's log.
#[derive(Debug, Default)]
pub(super) struct EpochLog {
    /// The guild's entries of this epoch, in position order: (position, entry).
    pub(super) parts: Vec<(LogPosition, Entry)>,
    /// The position of the fence that closes the epoch, if there is one.
    pub(super) fence: Option<LogPosition>,
    /// The last position the listing showed (or the scan start minus one).
    pub(super) last_position: LogPosition,
    /// An object listed and then gone (deleted by retention while it was read).
    pub(super) vanished: bool,
}

pub(super) fn hex(bytes: &[u8]) -> String {
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
    // ---- claim records ----------------------------------------------------------------

    /// Epochs claimed for `guild`, ascending.
    pub(super) async fn claim_epochs(&self, guild: GuildId) -> Result<Vec<Epoch>> {
        let (objects, _) = self.list(&format!("guilds/{}/claim", guild.0)).await?;
        let mut epochs: Vec<Epoch> = objects
            .iter()
            .filter_map(|n| parse_num(n))
            .map(Epoch)
            .collect();
        epochs.sort_unstable();
        Ok(epochs)
    }

    pub(super) async fn read_claim(&self, guild: GuildId, epoch: Epoch) -> Result<ClaimRecord> {
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
        if parse_hex16(&claim.writer).is_none() || claim.start == LogPosition::NONE {
            return Err(corrupt(
                &key,
                None,
                "claim with a malformed writer or start",
            ));
        }
        Ok(claim)
    }

    pub(super) async fn fenced_by_claim(&self, guild: GuildId, epoch: Epoch) -> Error {
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
        crate::journal::read_owner_record(journal.storage().as_ref(), journal.dir(), guild)
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

    pub(super) fn write_owner_record(journal: &LocalDir, record: &OwnerRecord) -> Result<()> {
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
            .positions_after(&name, LogPosition::NONE)
            .await?
            .last()
            .copied()
            .unwrap_or(LogPosition::NONE);
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
                Some(r) if r.epoch == Epoch(1) => r,
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
                        epoch: Epoch(1),
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
                epoch: Epoch(1),
                owner: r.owner.clone(),
                token: r.token.clone(),
                writer: writer.name.clone(),
                start: writer.head + 1,
                claimed_unix_ms: now_unix_ms(),
            };
            self.create(&self.claim_key(guild, Epoch(1)), objects::encode(&claim))
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
        position: LogPosition,
        guild: GuildId,
        epoch: Epoch,
        cache: &mut HashMap<(String, LogPosition), LogObject>,
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
    pub(super) async fn read_epoch(
        &self,
        writer: &str,
        guild: GuildId,
        epoch: Epoch,
        start: LogPosition,
        cache: &mut HashMap<(String, LogPosition), LogObject>,
    ) -> Result<EpochLog> {
        let mut log = EpochLog {
            last_position: LogPosition(start.get() - 1),
            ..EpochLog::default()
        };
        self.read_epoch_from(writer, guild, epoch, &mut log, cache)
            .await?;
        Ok(log)
    }

    /// Continues `log` with the positions after `log.last_position`.
    pub(super) async fn read_epoch_from(
        &self,
        writer: &str,
        guild: GuildId,
        epoch: Epoch,
        log: &mut EpochLog,
        cache: &mut HashMap<(String, LogPosition), LogObject>,
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
pub(super) fn note_fenced<T>(journal: &LocalDir, guild: GuildId, result: Result<T>) -> Result<T> {
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

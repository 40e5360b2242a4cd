//! Claims: a guild's history read from the store (newest usable snapshot, then every entry
//! after it), the older epochs fenced, and the history written into the guild directory.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;

use object_store::path::Path as ObjectPath;

use crate::error::{Error, Result};
use crate::format::segment::{self, SegmentHeader};
use crate::format::snapshot;
use crate::ids::{Epoch, GuildId, LogPosition, Seq};
use crate::journal::Journal;
use crate::layout;
use crate::storage;

use super::ownership::EpochLog;
use super::store::{corrupt, local_io};
use super::{
    now_unix_ms, objects, ClaimRecord, Claimed, EntryKind, LocalDir, LogObject, Marker,
    OwnerRecord, Remote, Superseded, NOTICE_FENCE_WINDOW,
};

/// How many times a claim retries fencing a writer that keeps winning the race for its next
/// position before it gives up (the writer is then clearly alive and busy).
const FENCE_ATTEMPTS_MAX: u32 = 64;

/// The notices a claim left, with when it left each.
type Notices = Vec<(ObjectPath, std::time::Instant)>;

/// How many times a claim reads the history again when an object it listed was deleted
/// meanwhile (retention by the live owner).
const READ_ATTEMPTS_MAX: u32 = 4;

impl Remote {
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
        let newest = epochs.last().copied().unwrap_or(Epoch::NONE);
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
            if newest == Epoch::NONE {
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
            superseding = Some(record.as_ref().map_or(Epoch::NONE, |r| r.epoch));
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
            journal.retire_commit_logs(false)?;
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
        epochs: &[Epoch],
        fence: Option<&ClaimRecord>,
        cache: &mut HashMap<(String, LogPosition), LogObject>,
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
        epochs: &[Epoch],
        fence: Option<&ClaimRecord>,
        cache: &mut HashMap<(String, LogPosition), LogObject>,
        notices: &mut Notices,
    ) -> std::result::Result<(Seq, Vec<(PathBuf, Vec<u8>)>), History> {
        // Snapshots, newest first: (seq, epoch).
        let mut candidates: Vec<(Seq, Epoch)> = self
            .snapshots(guild)
            .await?
            .into_iter()
            .filter(|&(_, e)| epochs.binary_search(&e).is_ok())
            .collect();
        candidates.sort_unstable_by(|a, b| b.cmp(a));
        let mut rejected: BTreeSet<(Seq, Epoch)> = BTreeSet::new();
        let mut claims: BTreeMap<Epoch, ClaimRecord> = BTreeMap::new();
        let mut logs: BTreeMap<Epoch, EpochLog> = BTreeMap::new();
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
        cache: &mut HashMap<(String, LogPosition), LogObject>,
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
        claims: &BTreeMap<Epoch, ClaimRecord>,
        logs: &BTreeMap<Epoch, EpochLog>,
        mut base: Option<(Seq, Epoch)>,
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

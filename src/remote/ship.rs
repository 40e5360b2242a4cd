//! Shipping: a round's events, every guild in one batch object ([`Remote::ship_to`]), the
//! chunks cut from local segments, the skip to a local snapshot, and snapshot uploads.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use crate::error::{Corruption, CorruptionKind, Error, Result};
use crate::format::segment::{self, SegmentHeader};
use crate::format::{frame, snapshot};
use crate::ids::{GuildId, Seq};
use crate::journal::Journal;
use crate::layout;

use super::ownership::note_fenced;
use super::store::{corrupt, local_io};
use super::{
    batch, Batch, Entry, EntryKind, LocalDir, LogObject, Marker, Owner, Remote, ShipReport, Writer,
    BATCH_BYTES_TARGET, CHUNK_BYTES_TARGET, CHUNK_LEN_MAX,
};

/// A position in a local segment: the segment (its first seq and header) and the byte offset
/// of the next frame to ship.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Cursor {
    first: Seq,
    header: SegmentHeader,
    offset: u64,
}

impl Remote {
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

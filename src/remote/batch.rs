//! The batch object: one position of a writer's log, holding what one shipping round
//! uploaded for every guild it carried (group commit to the store). PURE: bytes in, bytes
//! out.
//!
//! ```text
//! offset  len  field
//!      0    8  magic "RPRBATCH"
//!      8    4  version (1), u32 LE
//!     12    4  entry count, u32 LE
//!     16    8  position in the writer's log, u64 LE
//!     24   16  writer id (the directory's, random)
//!     40   16  incarnation (the uploading process's, random)
//!     56       entries, each:
//!                +0   8  guild, u64 LE
//!                +8   8  epoch, u64 LE
//!               +16   8  first seq, u64 LE
//!               +24   8  last seq, u64 LE
//!               +32   1  kind: 0 = chunk (events first..=last, segment format),
//!                          1 = skip (events first..=last are held by the snapshot
//!                              `snap/<last>-<epoch>.skip` and by no chunk)
//!               +33   3  zero
//!               +36   4  chunk length n (0 for a skip), u32 LE
//!               +40   n  the chunk: a segment header with first_seq = first, then the
//!                        frames byte for byte as the local log holds them
//!    end-4    4  CRC-32 of every byte before it
//! ```
//!
//! Every length is bounded before it is used, and every chunk is scanned completely (frame
//! checksums, sequence, guild) by [`decode`], so a decoded batch is fully checked.

use std::collections::HashSet;

use crate::format::segment::{self, ScanEnd};
use crate::ids::{Epoch, LogPosition};

/// The batch magic.
pub const MAGIC: [u8; 8] = *b"RPRBATCH";
/// The batch format version.
pub const VERSION: u32 = 1;
/// Bytes before the first entry.
pub const HEADER_LEN: usize = 56;
/// Bytes of an entry before its chunk.
pub const ENTRY_HEADER_LEN: usize = 40;
/// Bytes of the trailing checksum.
pub const TRAILER_LEN: usize = 4;
/// Largest batch object reprise writes or reads (a shipping round stops adding guilds
/// before it, and a longer object is refused before it is read).
pub const BATCH_LEN_MAX: u64 = 256 << 20;
/// Largest number of entries in one batch.
pub const ENTRIES_MAX: u32 = 1 << 20;
const _: () = assert!(
    BATCH_LEN_MAX < u32::MAX as u64,
    "chunk lengths fit their u32 field"
);

const OFF_VERSION: usize = 8;
const OFF_COUNT: usize = 12;
const OFF_POSITION: usize = 16;
const OFF_WRITER: usize = 24;
const OFF_INCARNATION: usize = 40;
const _: () = assert!(OFF_INCARNATION + 16 == HEADER_LEN);
const _: () = assert!(HEADER_LEN.is_multiple_of(8) && ENTRY_HEADER_LEN.is_multiple_of(8));

/// What an entry stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// The events `first..=last`, as frames.
    Chunk,
    /// The events `first..=last` are held by the epoch's snapshot at `last` (the local log
    /// had dropped them when they were shipped).
    Skip,
}

/// One guild's part of a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The guild.
    pub guild: u64,
    /// The epoch of the guild's owner that shipped it.
    pub epoch: Epoch,
    /// First event.
    pub first: u64,
    /// Last event.
    pub last: u64,
    /// Chunk or skip.
    pub kind: EntryKind,
    /// The chunk (segment format), empty for a skip.
    pub chunk: Vec<u8>,
}

/// A batch object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    /// Its position in the writer's log.
    pub position: LogPosition,
    /// The writer (directory) that uploaded it.
    pub writer: [u8; 16],
    /// The process that uploaded it.
    pub incarnation: [u8; 16],
    /// One entry per guild shipped (a guild appears at most once).
    pub entries: Vec<Entry>,
}

/// Encoded length of a batch with these entries.
pub fn encoded_len(entries: &[Entry]) -> usize {
    HEADER_LEN
        + entries
            .iter()
            .map(|e| ENTRY_HEADER_LEN + e.chunk.len())
            .sum::<usize>()
        + TRAILER_LEN
}

/// Encodes a batch, refusing one no reader would accept: longer than [`BATCH_LEN_MAX`],
/// more than [`ENTRIES_MAX`] entries, a guild twice, or an entry [`decode`] refuses on its
/// own (an empty range, epoch 0, a skip with a chunk). Chunks are not scanned here.
///
/// # Errors
/// [`BatchFault`] naming the offset the refused part would have had.
pub fn encode(batch: &Batch) -> Result<Vec<u8>, BatchFault> {
    let len = encoded_len(&batch.entries);
    if len as u64 > BATCH_LEN_MAX {
        return Err(fault(
            0,
            format!("{len} bytes, longer than any reader accepts ({BATCH_LEN_MAX})"),
        ));
    }
    if batch.entries.len() > ENTRIES_MAX as usize {
        return Err(fault(
            OFF_COUNT,
            format!("{} entries, more than {ENTRIES_MAX}", batch.entries.len()),
        ));
    }
    let mut guilds = HashSet::with_capacity(batch.entries.len());
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(batch.entries.len() as u32).to_le_bytes());
    out.extend_from_slice(&batch.position.get().to_le_bytes());
    out.extend_from_slice(&batch.writer);
    out.extend_from_slice(&batch.incarnation);
    for e in &batch.entries {
        let at = out.len();
        check_entry(at, e.first, e.last, e.epoch, e.kind, e.chunk.len())?;
        if !guilds.insert(e.guild) {
            return Err(fault(at, format!("guild {} twice in one batch", e.guild)));
        }
        out.extend_from_slice(&e.guild.to_le_bytes());
        out.extend_from_slice(&e.epoch.get().to_le_bytes());
        out.extend_from_slice(&e.first.to_le_bytes());
        out.extend_from_slice(&e.last.to_le_bytes());
        out.push(match e.kind {
            EntryKind::Chunk => 0,
            EntryKind::Skip => 1,
        });
        out.extend_from_slice(&[0; 3]);
        // Fits: the whole batch is at most BATCH_LEN_MAX < 4 GiB.
        out.extend_from_slice(&(e.chunk.len() as u32).to_le_bytes());
        out.extend_from_slice(&e.chunk);
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    Ok(out)
}

/// Why bytes are not a valid batch: the offset and what is wrong there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchFault {
    /// Offset in the object.
    pub offset: u64,
    /// What is wrong.
    pub detail: String,
}

impl std::fmt::Display for BatchFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "at byte offset {}: {}", self.offset, self.detail)
    }
}

impl std::error::Error for BatchFault {}

fn fault(offset: usize, detail: impl Into<String>) -> BatchFault {
    BatchFault {
        offset: offset as u64,
        detail: detail.into(),
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// True when `bytes` start like a batch (anything else in a writer's log is a marker).
pub fn is_batch(bytes: &[u8]) -> bool {
    bytes.starts_with(&MAGIC)
}

/// Decodes and checks a batch completely: checksum, bounds, and every chunk (its header
/// names the entry's guild and first event, its frames verify and run `first..=last`).
///
/// # Errors
/// [`BatchFault`] naming the offset.
pub fn decode(bytes: &[u8]) -> Result<Batch, BatchFault> {
    if bytes.len() < HEADER_LEN + TRAILER_LEN {
        return Err(fault(0, "shorter than a batch header"));
    }
    if bytes.len() as u64 > BATCH_LEN_MAX {
        return Err(fault(0, "longer than any batch"));
    }
    if !is_batch(bytes) {
        return Err(fault(0, "bad magic"));
    }
    let body_end = bytes.len() - TRAILER_LEN;
    let stored = u32_at(bytes, body_end);
    let actual = crc32fast::hash(&bytes[..body_end]);
    if stored != actual {
        return Err(fault(
            body_end,
            format!("checksum mismatch (expected {stored:08x}, found {actual:08x})"),
        ));
    }
    let version = u32_at(bytes, OFF_VERSION);
    if version != VERSION {
        return Err(fault(OFF_VERSION, format!("unknown version {version}")));
    }
    let count = u32_at(bytes, OFF_COUNT);
    let entries_room = (body_end - HEADER_LEN) / ENTRY_HEADER_LEN;
    if count > ENTRIES_MAX || count as usize > entries_room {
        return Err(fault(OFF_COUNT, format!("{count} entries cannot fit")));
    }
    let mut writer = [0; 16];
    writer.copy_from_slice(&bytes[OFF_WRITER..OFF_WRITER + 16]);
    let mut incarnation = [0; 16];
    incarnation.copy_from_slice(&bytes[OFF_INCARNATION..OFF_INCARNATION + 16]);
    let mut entries = Vec::with_capacity(count as usize);
    let mut guilds = HashSet::with_capacity(count as usize);
    let mut at = HEADER_LEN;
    for _ in 0..count {
        if body_end - at < ENTRY_HEADER_LEN {
            return Err(fault(at, "entry header past the end"));
        }
        let guild = u64_at(bytes, at);
        let epoch = Epoch(u64_at(bytes, at + 8));
        let first = u64_at(bytes, at + 16);
        let last = u64_at(bytes, at + 24);
        let kind = match bytes[at + 32] {
            0 => EntryKind::Chunk,
            1 => EntryKind::Skip,
            k => return Err(fault(at + 32, format!("unknown entry kind {k}"))),
        };
        if bytes[at + 33..at + 36] != [0; 3] {
            return Err(fault(at + 33, "nonzero padding"));
        }
        let len = u32_at(bytes, at + 36) as usize;
        let chunk_at = at + ENTRY_HEADER_LEN;
        if len > body_end - chunk_at {
            return Err(fault(at + 36, format!("chunk of {len} bytes past the end")));
        }
        check_entry(at, first, last, epoch, kind, len)?;
        if !guilds.insert(guild) {
            return Err(fault(at, "a guild twice in one batch"));
        }
        let chunk = &bytes[chunk_at..chunk_at + len];
        if kind == EntryKind::Chunk {
            check_chunk(chunk, guild, first, last)
                .map_err(|(off, d)| fault(chunk_at + off as usize, d))?;
        }
        entries.push(Entry {
            guild,
            epoch,
            first,
            last,
            kind,
            chunk: chunk.to_vec(),
        });
        at = chunk_at + len;
    }
    if at != body_end {
        return Err(fault(at, "bytes after the last entry"));
    }
    Ok(Batch {
        position: LogPosition(u64_at(bytes, OFF_POSITION)),
        writer,
        incarnation,
        entries,
    })
}

/// The rules an entry header obeys on its own, for the writer and the reader alike: a
/// nonempty range from event 1 on, an epoch, and no chunk for a skip. `at` is the entry's
/// offset in the batch.
fn check_entry(
    at: usize,
    first: u64,
    last: u64,
    epoch: Epoch,
    kind: EntryKind,
    chunk_len: usize,
) -> Result<(), BatchFault> {
    if first == 0 || last < first || epoch == Epoch::NONE {
        return Err(fault(at, "entry with an empty range or epoch 0"));
    }
    if kind == EntryKind::Skip && chunk_len != 0 {
        return Err(fault(at + 36, "a skip with a chunk"));
    }
    Ok(())
}

/// Checks a chunk: a segment of `guild` starting at `first` whose frames verify and run to
/// exactly `last`. Returns the offset (in the chunk) and what is wrong.
pub fn check_chunk(chunk: &[u8], guild: u64, first: u64, last: u64) -> Result<(), (u64, String)> {
    let scan = segment::scan(chunk, false).map_err(|f| (f.offset, f.kind.as_str().to_string()))?;
    if let ScanEnd::Corrupt(f) = &scan.end {
        return Err((f.offset, f.kind.as_str().to_string()));
    }
    if scan.header.guild != guild || scan.header.first_seq != first {
        return Err((0, "chunk header names another guild or first event".into()));
    }
    if scan.frame_count == 0 || scan.last_seq != last {
        return Err((
            0,
            format!(
                "chunk holds events up to {}, its entry says {last}",
                scan.last_seq
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skip(guild: u64) -> Entry {
        Entry {
            guild,
            epoch: Epoch(3),
            first: 5,
            last: 9,
            kind: EntryKind::Skip,
            chunk: Vec::new(),
        }
    }

    #[test]
    fn round_trip_and_every_flip_is_caught() {
        let batch = Batch {
            position: LogPosition(42),
            writer: [7; 16],
            incarnation: [9; 16],
            entries: vec![skip(1), skip(2)],
        };
        let bytes = encode(&batch).unwrap();
        assert_eq!(bytes.len(), encoded_len(&batch.entries));
        assert_eq!(decode(&bytes).unwrap(), batch);
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x10;
            assert!(decode(&b).is_err(), "flip at {i}");
        }
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn a_huge_count_is_refused_before_allocating() {
        let batch = Batch {
            position: LogPosition(1),
            writer: [0; 16],
            incarnation: [0; 16],
            entries: vec![],
        };
        let mut bytes = encode(&batch).unwrap();
        bytes[OFF_COUNT..OFF_COUNT + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        let body_end = bytes.len() - TRAILER_LEN;
        let crc = crc32fast::hash(&bytes[..body_end]);
        bytes[body_end..].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(decode(&bytes).unwrap_err().offset, OFF_COUNT as u64);
    }

    #[test]
    fn a_guild_twice_is_refused() {
        let batch = Batch {
            position: LogPosition(1),
            writer: [0; 16],
            incarnation: [0; 16],
            entries: vec![skip(1), skip(1)],
        };
        assert!(encode(&batch).is_err(), "the writer refuses it");
        let mut bytes = encode(&Batch {
            entries: vec![skip(1), skip(2)],
            ..batch
        })
        .unwrap();
        // The second entry's guild made the first's: the reader refuses it too.
        let second = HEADER_LEN + ENTRY_HEADER_LEN;
        bytes[second..second + 8].copy_from_slice(&1u64.to_le_bytes());
        let body_end = bytes.len() - TRAILER_LEN;
        let crc = crc32fast::hash(&bytes[..body_end]);
        bytes[body_end..].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(decode(&bytes).unwrap_err().offset, second as u64);
    }

    #[test]
    fn the_largest_entry_count_round_trips() {
        // 2^20 skips of distinct guilds (40 MiB): decoding checks repeated guilds in linear
        // time, so this is a few hundred milliseconds.
        let batch = Batch {
            position: LogPosition(7),
            writer: [1; 16],
            incarnation: [2; 16],
            entries: (0..u64::from(ENTRIES_MAX)).map(skip).collect(),
        };
        let bytes = encode(&batch).unwrap();
        assert_eq!(decode(&bytes).unwrap(), batch);
        let mut more = batch;
        more.entries.push(skip(u64::MAX));
        assert_eq!(encode(&more).unwrap_err().offset, OFF_COUNT as u64);
    }

    #[test]
    fn a_batch_longer_than_any_reader_accepts_is_refused() {
        let mut chunky = skip(1);
        chunky.kind = EntryKind::Chunk;
        chunky.chunk = vec![0; BATCH_LEN_MAX as usize];
        let batch = Batch {
            position: LogPosition(1),
            writer: [0; 16],
            incarnation: [0; 16],
            entries: vec![chunky],
        };
        let err = encode(&batch).unwrap_err();
        assert_eq!(err.offset, 0);
        assert!(
            err.detail.contains("longer than any reader accepts"),
            "{err}"
        );
    }
}

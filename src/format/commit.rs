//! The commit log: one shared, append-only file that makes appends of *every* guild durable
//! with a single `fdatasync` (group commit), while each guild keeps its own segments.
//!
//! Every appended event is written twice: its frame to the guild's active segment (page cache
//! only) and a commit record holding the same frame to the commit log. Durability comes from
//! syncing the commit log; a commit-log retirement later fsyncs the guild segments and drops the
//! commit log. Recovery copies the frames that a guild's segments lost back from the commit log.
//!
//! File (`commit/<generation:020>.clog`): a 48-byte header, then records.
//!
//! ```text
//! offset size field
//!      0    8 magic           b"REPRCLG\0"
//!      8    2 version         FORMAT_VERSION (1)
//!     10    2 header_len      48
//!     12    4 flags           bit 0: PREALLOCATED (the file is extended with zeros ahead of
//!                             its records); other bits 0 (a set one is a decode error)
//!     16    8 generation      the number in the file name (increases by one per retirement)
//!     24    8 created_unix_ms when the file was created
//!     32   12 reserved        0
//!     44    4 crc             CRC-32 of bytes 0..44
//! ```
//!
//! Record:
//!
//! ```text
//! offset size field
//!      0    4 crc         CRC-32 of bytes 4 .. 24+frame_len
//!      4    4 frame_len   length of the embedded guild frame (24 + payload, <= FRAME_LEN_MAX)
//!      8    8 guild       guild id
//!     16    4 history_max the guild's fold parameter (to recreate a lost first segment)
//!     20    4 key_id      key sealing the frame's payload (0: not encrypted)
//!     24    . frame       the guild frame exactly as written to the segment (see frame.rs)
//! ```
//!
//! **Preallocated logs** ([`FLAG_PREALLOCATED`]): the writer extends the file with zeros ahead
//! of its records (so that an acknowledged append is an overwrite inside the file, whose
//! `fdatasync` commits no new size), and the records end where the zeros begin. Zeros are
//! never a record: a record's `frame_len` is at least 25, so a zero length field is out of
//! bounds, and the checksum covers the length. In such a log, the bytes after the last valid
//! record being all zeros to the end of the file is the log's *clean end* ([`ScanEnd::Clean`],
//! `valid_len` the logical length); anything else there (a torn record, garbage, a hole before
//! persisted bytes, one flipped bit) is judged by [`torn::classify_tail`] exactly as in a log
//! that is not preallocated. A log without the flag (written before preallocation existed, or
//! with preallocation off) reads as before: a zero-filled tail is a torn tail.
//!
//! [`ScanEnd::Clean`]: super::segment::ScanEnd::Clean

use crate::crypto::KeyId;
use crate::error::CorruptionKind;
use crate::ids::Generation;
use crate::format::frame::{self, Frame};
use crate::format::torn::{self, Shape};
use crate::format::{
    check_header, put, put_header_crc, put_header_start, read_u16, read_u32, read_u64, Fault,
};

/// Magic bytes of a commit log.
pub const MAGIC: [u8; 8] = *b"REPRCLG\0";
/// Offset of the format version.
pub const VERSION_OFFSET: usize = MAGIC.len();
/// Offset of the header length.
pub const HEADER_LEN_OFFSET: usize = VERSION_OFFSET + 2;
/// Offset of the flags.
pub const FLAGS_OFFSET: usize = HEADER_LEN_OFFSET + 2;
/// Offset of the generation.
pub const GENERATION_OFFSET: usize = FLAGS_OFFSET + 4;
/// Offset of the creation time.
pub const CREATED_OFFSET: usize = GENERATION_OFFSET + 8;
/// Offset of the header checksum.
pub const HEADER_CRC_OFFSET: usize = CREATED_OFFSET + 8 + 12;
/// Size of the header.
pub const HEADER_LEN: usize = HEADER_CRC_OFFSET + 4;

/// Offset of a record's checksum.
pub const RECORD_CRC_OFFSET: usize = 0;
/// Offset of a record's frame length.
pub const RECORD_FRAME_LEN_OFFSET: usize = RECORD_CRC_OFFSET + 4;
/// Offset of a record's guild id.
pub const RECORD_GUILD_OFFSET: usize = RECORD_FRAME_LEN_OFFSET + 4;
/// Offset of a record's history_max.
pub const RECORD_HISTORY_MAX_OFFSET: usize = RECORD_GUILD_OFFSET + 8;
/// Offset of the id of the key sealing a record's frame payload.
pub const RECORD_KEY_ID_OFFSET: usize = RECORD_HISTORY_MAX_OFFSET + 4;
/// Size of a record header; the embedded frame starts here.
pub const RECORD_HEADER_LEN: usize = RECORD_KEY_ID_OFFSET + 4;
/// Largest embedded frame.
pub const FRAME_LEN_MAX: u32 = frame::HEADER_LEN as u32 + frame::PAYLOAD_LEN_MAX;

/// The layout of a record as the torn-tail rule sees it ([`torn::Shape`]).
pub const RECORD_SHAPE: Shape = Shape {
    header_len: RECORD_HEADER_LEN,
    len_min: frame::HEADER_LEN as u32 + 1,
    len_max: FRAME_LEN_MAX,
};

/// Header flag: the writer preallocates the file, so zeros after the last record are its end.
pub const FLAG_PREALLOCATED: u32 = 1;
/// Every flag this version knows.
const FLAGS_KNOWN: u32 = FLAG_PREALLOCATED;

const _: () = assert!(HEADER_LEN == 48 && FLAGS_OFFSET == 12);
const _: () = assert!(RECORD_CRC_OFFSET == 0 && RECORD_FRAME_LEN_OFFSET == 4);
const _: () = assert!(RECORD_HEADER_LEN == 24);

/// Encodes a commit log header (`flags`: [`FLAG_PREALLOCATED`] or 0).
pub fn encode_header(
    generation: Generation,
    created_unix_ms: u64,
    flags: u32,
) -> [u8; HEADER_LEN] {
    let mut b = [0u8; HEADER_LEN];
    put_header_start(&mut b, &MAGIC);
    put(
        &mut b,
        HEADER_LEN_OFFSET,
        &(HEADER_LEN as u16).to_le_bytes(),
    );
    put(&mut b, FLAGS_OFFSET, &flags.to_le_bytes());
    put(&mut b, GENERATION_OFFSET, &generation.get().to_le_bytes());
    put(&mut b, CREATED_OFFSET, &created_unix_ms.to_le_bytes());
    put_header_crc(&mut b, HEADER_CRC_OFFSET);
    b
}

/// A decoded commit log header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommitHeader {
    /// The generation (the number in the file name).
    pub generation: Generation,
    /// The header's flags ([`FLAG_PREALLOCATED`]).
    pub flags: u32,
}

impl CommitHeader {
    /// Whether the writer preallocated the file (zeros after the last record are its end).
    pub fn preallocated(&self) -> bool {
        self.flags & FLAG_PREALLOCATED != 0
    }
}

/// Decodes and checks a commit log header.
///
/// # Errors
/// A [`Fault`] naming the bad field (an unknown flag is `UnsupportedVersion`).
pub fn decode_header(bytes: &[u8]) -> Result<CommitHeader, Fault> {
    check_header(bytes, &MAGIC, HEADER_LEN, HEADER_CRC_OFFSET)?;
    let header_len = read_u16(bytes, HEADER_LEN_OFFSET);
    if usize::from(header_len) != HEADER_LEN {
        return Err(
            Fault::new(HEADER_LEN_OFFSET as u64, CorruptionKind::UnsupportedVersion)
                .values(HEADER_LEN as u64, u64::from(header_len)),
        );
    }
    let flags = read_u32(bytes, FLAGS_OFFSET);
    if flags & !FLAGS_KNOWN != 0 {
        return Err(
            Fault::new(FLAGS_OFFSET as u64, CorruptionKind::UnsupportedVersion)
                .values(u64::from(FLAGS_KNOWN), u64::from(flags))
                .detail("unknown commit log flags"),
        );
    }
    Ok(CommitHeader {
        generation: Generation(read_u64(bytes, GENERATION_OFFSET)),
        flags,
    })
}

/// Appends one record embedding `guild_frame` (a complete encoded guild frame).
/// `key_id` is the key sealing the frame's payload, as in the header of the guild's segment.
pub fn encode_record(
    out: &mut Vec<u8>,
    guild: u64,
    history_max: u32,
    key_id: KeyId,
    guild_frame: &[u8],
) {
    let start = out.len();
    out.resize(start + RECORD_HEADER_LEN, 0);
    out.extend_from_slice(guild_frame);
    let rec = &mut out[start..];
    put(
        rec,
        RECORD_FRAME_LEN_OFFSET,
        &(guild_frame.len() as u32).to_le_bytes(),
    );
    put(rec, RECORD_GUILD_OFFSET, &guild.to_le_bytes());
    put(rec, RECORD_HISTORY_MAX_OFFSET, &history_max.to_le_bytes());
    put(rec, RECORD_KEY_ID_OFFSET, &key_id.0.to_le_bytes());
    let crc = crc32fast::hash(&rec[RECORD_FRAME_LEN_OFFSET..]);
    put(rec, RECORD_CRC_OFFSET, &crc.to_le_bytes());
}

/// A decoded commit record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// The guild.
    pub guild: u64,
    /// The guild's history_max.
    pub history_max: u32,
    /// The key sealing the embedded frame's payload.
    pub key_id: KeyId,
    /// The embedded guild frame's raw bytes (header and payload).
    pub frame_bytes: &'a [u8],
    /// The embedded frame, decoded.
    pub frame: Frame<'a>,
}

impl Record<'_> {
    /// Bytes the record occupies.
    pub fn len_total(&self) -> usize {
        RECORD_HEADER_LEN + self.frame_bytes.len()
    }
}

/// Decodes the record at the start of `buf`. The frame length is bounded by
/// [`FRAME_LEN_MAX`] and by `buf` before anything is sliced.
///
/// # Errors
/// The [`frame::FrameFault`] that makes these bytes not a record.
pub fn decode_record(buf: &[u8]) -> Result<Record<'_>, frame::FrameFault> {
    if buf.len() < RECORD_HEADER_LEN {
        return Err(frame::FrameFault::Truncated {
            needed: RECORD_HEADER_LEN as u64,
            available: buf.len() as u64,
        });
    }
    let frame_len = read_u32(buf, RECORD_FRAME_LEN_OFFSET);
    if frame_len <= frame::HEADER_LEN as u32 || frame_len > FRAME_LEN_MAX {
        return Err(frame::FrameFault::Length { len: frame_len });
    }
    let total = RECORD_HEADER_LEN + frame_len as usize;
    let Some(rec) = buf.get(..total) else {
        return Err(frame::FrameFault::Truncated {
            needed: total as u64,
            available: buf.len() as u64,
        });
    };
    let expected = read_u32(rec, RECORD_CRC_OFFSET);
    let actual = crc32fast::hash(&rec[RECORD_FRAME_LEN_OFFSET..]);
    if expected != actual {
        return Err(frame::FrameFault::Checksum { expected, actual });
    }
    let frame_bytes = &rec[RECORD_HEADER_LEN..];
    // The embedded frame was checksummed when it was made; a mismatch here is damage too.
    let frame = frame::decode(frame_bytes)?;
    if frame.len_total() != frame_bytes.len() {
        return Err(frame::FrameFault::Length { len: frame_len });
    }
    Ok(Record {
        guild: read_u64(rec, RECORD_GUILD_OFFSET),
        history_max: read_u32(rec, RECORD_HISTORY_MAX_OFFSET),
        key_id: KeyId(read_u32(rec, RECORD_KEY_ID_OFFSET)),
        frame_bytes,
        frame,
    })
}

/// Whether the undecodable bytes `rest` of the newest commit log are a torn tail: no valid
/// record starts anywhere in them.
pub fn is_torn_tail(rest: &[u8]) -> bool {
    if rest.iter().all(|b| *b == 0) {
        return true;
    }
    (1..rest.len()).all(|k| {
        let tail = &rest[k..];
        tail.len() <= RECORD_HEADER_LEN || {
            let len = read_u32(tail, RECORD_FRAME_LEN_OFFSET);
            len <= frame::HEADER_LEN as u32
                || len as usize > tail.len() - RECORD_HEADER_LEN
                || decode_record(tail).is_err()
        }
    })
}

/// The result of scanning a commit log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitScan {
    /// The generation in the header.
    pub generation: Generation,
    /// Whether the writer preallocated the file ([`FLAG_PREALLOCATED`]).
    pub preallocated: bool,
    /// Offsets of the valid records, in order.
    pub records: Vec<u64>,
    /// Byte offset just past the last valid record: the log's logical length (a preallocated
    /// file's zeros after it are not counted).
    pub valid_len: u64,
    /// How the records end.
    pub end: super::segment::ScanEnd,
}

/// Whether the header of a commit log never became durable: the file is shorter than its
/// header, its header is invalid and no valid record follows, or its first sector is zeros
/// (see [`torn::header_sector_is_zero`]). Nothing in such a file was acknowledged.
pub fn header_is_torn(bytes: &[u8]) -> bool {
    torn::header_sector_is_zero(bytes)
        || super::segment::header_region_is_torn(
            bytes,
            HEADER_LEN,
            |b| decode_header(b).is_ok(),
            |rest| decode_record(rest).is_ok(),
            is_torn_tail,
        )
}

/// Checks the header and every record of a commit log. Only the newest commit log may end in
/// a torn tail (`newest`); where the records end is decided by [`torn::classify_tail`], except
/// that in a preallocated log zeros from the last valid record to the end of the file are its
/// clean end (see the module docs).
///
/// # Errors
/// A [`Fault`] when the header is invalid.
pub fn scan(bytes: &[u8], newest: bool) -> Result<CommitScan, Fault> {
    use super::segment::ScanEnd;
    let header = decode_header(bytes)?;
    let preallocated = header.preallocated();
    let mut offset = HEADER_LEN;
    let mut records = Vec::new();
    let end = loop {
        let Some(rest) = bytes.get(offset..).filter(|r| !r.is_empty()) else {
            break ScanEnd::Clean;
        };
        match decode_record(rest) {
            Ok(r) => {
                records.push(offset as u64);
                offset += r.len_total();
            }
            Err(_) if preallocated && rest.iter().all(|b| *b == 0) => break ScanEnd::Clean,
            Err(fault) => {
                let decision = torn::classify_tail(
                    bytes,
                    offset,
                    RECORD_SHAPE,
                    |b| decode_record(b).is_ok(),
                    is_torn_tail,
                );
                break super::segment::tail_end(decision, newest, fault, offset);
            }
        }
    };
    Ok(CommitScan {
        generation: header.generation,
        preallocated,
        records,
        valid_len: offset as u64,
        end,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::segment::ScanEnd;
    use crate::session::Event;

    fn log(n: u64) -> Vec<u8> {
        log_with(n, 0)
    }

    fn log_with(n: u64, flags: u32) -> Vec<u8> {
        let mut b = encode_header(Generation(3), 9, flags).to_vec();
        let ev = Event::from_json(r#"{"type":"paused_set","paused":false}"#).unwrap();
        for seq in 1..=n {
            let mut f = Vec::new();
            frame::encode(&mut f, seq, 0, &ev, None).unwrap();
            encode_record(&mut b, 100 + seq % 2, 50, KeyId::PLAINTEXT, &f);
        }
        b
    }

    #[test]
    fn scan_flips_and_tails() {
        let b = log(4);
        let s = scan(&b, true).unwrap();
        assert_eq!(
            (s.generation, s.records.len(), s.end.clone()),
            (Generation(3), 4, ScanEnd::Clean)
        );
        let r = decode_record(&b[s.records[1] as usize..]).unwrap();
        assert_eq!((r.guild, r.history_max, r.frame.seq), (100, 50, 2));
        for i in HEADER_LEN..b.len() {
            let mut bad = b.clone();
            bad[i] ^= 0x20;
            let s = scan(&bad, false).unwrap();
            assert!(s.records.len() < 4, "flip at {i} undetected");
            assert!(matches!(s.end, ScanEnd::Corrupt(_)));
        }
        let cut = &b[..b.len() - 5];
        let s = scan(cut, true).unwrap();
        assert_eq!(s.records.len(), 3);
        assert!(matches!(s.end, ScanEnd::TornTail { .. }));
    }

    /// Bit rot in the header of a commit log holding exactly one record (found by
    /// `bit_rot_is_reported_or_harmless`, e.g. op 78, read 1): the record right after the
    /// header was not searched for, so the log was taken for one whose header never became
    /// durable and its acknowledged record was silently dropped. Every one-bit flip of the
    /// header of such a log must be damage (a scan error), never a torn header.
    #[test]
    fn regression_header_bit_rot_before_a_single_record_is_not_a_torn_header() {
        let b = log(1);
        assert_eq!(scan(&b, true).unwrap().records, vec![HEADER_LEN as u64]);
        for byte in 0..HEADER_LEN {
            for bit in 0..8 {
                let mut bad = b.clone();
                bad[byte] ^= 1 << bit;
                assert!(!header_is_torn(&bad), "flip at byte {byte} bit {bit}");
                assert!(scan(&bad, true).is_err(), "flip at byte {byte} bit {bit}");
            }
        }
        // A header that never became durable before nothing valid is still torn.
        let mut torn = b[..HEADER_LEN].to_vec();
        torn[30] ^= 4;
        torn.extend([0u8; 40]);
        assert!(header_is_torn(&torn));
    }

    /// A preallocated log: zeros from the last record to the end of the file are its clean
    /// end (logical length = the records' end), while everything else past the records is
    /// judged as in a log that is not preallocated: a torn record before the zeros is a torn
    /// tail, garbage before a valid record is damage, one flipped bit of the zeros is a torn
    /// tail (no valid record after it), and the same bytes without the flag read as before.
    #[test]
    fn preallocated_zero_tail_is_the_clean_end() {
        let records = log_with(4, FLAG_PREALLOCATED);
        let end = records.len();
        let mut file = records.clone();
        file.resize(64 << 10, 0);
        let s = scan(&file, true).unwrap();
        assert!(s.preallocated);
        assert_eq!(
            (s.records.len(), s.valid_len, s.end),
            (4, end as u64, ScanEnd::Clean)
        );
        // Only the flag makes zeros the end: a log without it reads them as a torn tail.
        let mut plain = log(4);
        plain.resize(64 << 10, 0);
        let s = scan(&plain, true).unwrap();
        assert!(!s.preallocated);
        assert_eq!(s.end, ScanEnd::TornTail { offset: end as u64 });
        // No record at all: the header, then zeros.
        let mut empty = encode_header(Generation(3), 9, FLAG_PREALLOCATED).to_vec();
        empty.resize(8192, 0);
        let s = scan(&empty, true).unwrap();
        assert_eq!((s.records.len(), s.end), (0, ScanEnd::Clean));
        // A last record torn at a sector boundary (where a disk stops), zeros after it: torn
        // at its start. None of it on disk: nothing was written there, the clean end.
        let long = log_with(40, FLAG_PREALLOCATED);
        let offsets = scan(&long, true).unwrap().records;
        let spanning = (0..offsets.len() - 1)
            .find(|&i| offsets[i] < 1024 && offsets[i + 1] > 1024)
            .expect("a record across the sector boundary at 1024");
        let (start, next) = (offsets[spanning] as usize, offsets[spanning + 1] as usize);
        assert!(start < 1024 && next > 1024);
        let mut torn = long[..next].to_vec();
        torn[1024..].fill(0);
        torn.resize(64 << 10, 0);
        let s = scan(&torn, true).unwrap();
        assert_eq!(s.records.len(), spanning);
        assert_eq!(
            s.end,
            ScanEnd::TornTail {
                offset: start as u64
            }
        );
        torn[start..1024].fill(0);
        let s = scan(&torn, true).unwrap();
        assert_eq!((s.records.len(), s.valid_len), (spanning, start as u64));
        assert_eq!(s.end, ScanEnd::Clean);
        // Garbage in the zeros, no valid record after it: torn at the records' end.
        let mut garbage = file.clone();
        garbage[end + 3000..end + 3100].fill(0xA5);
        assert_eq!(
            scan(&garbage, true).unwrap().end,
            ScanEnd::TornTail { offset: end as u64 }
        );
        // Garbage, then a valid record: damage, as in any log.
        let mut damaged = file.clone();
        let second = scan(&file, true).unwrap().records[1] as usize;
        let tail = records[second..].to_vec();
        damaged[end..end + tail.len()].copy_from_slice(&tail);
        damaged[second + 2] ^= 0x10;
        damaged[end..end + 8].fill(0x77);
        assert!(matches!(
            scan(&damaged, true).unwrap().end,
            ScanEnd::Corrupt(_)
        ));
        // Regression (cli_damage, a 0xff flip in a length byte): a damaged length field that
        // declares a record reaching into the preallocated zeros is damage, not a hole (the
        // zeros after the last written byte are the file's unwritten end): the valid records
        // after it are reported, never dropped as a torn tail.
        let middle = scan(&file, true).unwrap().records[1] as usize;
        for byte in RECORD_FRAME_LEN_OFFSET..RECORD_FRAME_LEN_OFFSET + 3 {
            let mut bad = file.clone();
            bad[middle + byte] ^= 0xff;
            let s = scan(&bad, true).unwrap();
            assert_eq!(s.records.len(), 1, "length byte {byte}");
            assert!(
                matches!(s.end, ScanEnd::Corrupt(_)),
                "length byte {byte}: {:?}",
                s.end
            );
        }
        // A flag this version does not know is refused, never guessed at.
        let mut unknown = encode_header(Generation(3), 9, 2).to_vec();
        unknown.resize(4096, 0);
        assert!(scan(&unknown, true).is_err());
    }
}

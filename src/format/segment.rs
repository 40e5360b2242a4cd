//! A log segment: a 48-byte file header followed by frames (see [`super::frame`]).
//!
//! ```text
//! offset size field
//!      0    8 magic           b"REPRWAL\0"
//!      8    2 version         FORMAT_VERSION (1)
//!     10    2 header_len      48
//!     12    4 history_max     fold parameter of the guild (history length)
//!     16    8 guild           guild id
//!     24    8 first_seq       sequence number of the first frame (also the file name)
//!     32    8 created_unix_ms when the segment was created
//!     40    4 key_id          key sealing the frame payloads (0: not encrypted)
//!     44    4 crc             CRC-32 of bytes 0..44
//!     48    . frames          consecutive frames, seq = first_seq, first_seq+1, ...
//! ```
//!
//! A segment is *sealed* once a later segment exists: it is immutable and must be intact to its
//! last byte. Only the newest (*active*) segment may end in a torn write.

use crate::crypto::KeyId;
use crate::error::CorruptionKind;
use crate::format::frame::{self, Frame};
use crate::format::torn::{self, TailDecision};
use crate::format::{
    check_header, put, put_header_crc, put_header_start, read_u16, read_u32, read_u64, Fault,
};
use crate::ids::Seq;

/// Magic bytes at the start of every segment.
pub const MAGIC: [u8; 8] = *b"REPRWAL\0";
/// Offset of the format version.
pub const VERSION_OFFSET: usize = MAGIC.len();
/// Offset of the header length field.
pub const HEADER_LEN_OFFSET: usize = VERSION_OFFSET + 2;
/// Offset of the history_max field.
pub const HISTORY_MAX_OFFSET: usize = HEADER_LEN_OFFSET + 2;
/// Offset of the guild id.
pub const GUILD_OFFSET: usize = HISTORY_MAX_OFFSET + 4;
/// Offset of the first sequence number.
pub const FIRST_SEQ_OFFSET: usize = GUILD_OFFSET + 8;
/// Offset of the creation time.
pub const CREATED_OFFSET: usize = FIRST_SEQ_OFFSET + 8;
/// Offset of the id of the key that seals every frame payload of the segment (0: none).
pub const KEY_ID_OFFSET: usize = CREATED_OFFSET + 8;
/// Offset of the header checksum.
pub const CRC_OFFSET: usize = KEY_ID_OFFSET + 4;
/// Size of the segment header; the first frame starts here.
pub const HEADER_LEN: usize = CRC_OFFSET + 4;

const _: () = assert!(HEADER_LEN == 48);

/// The decoded segment header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    /// The guild this segment belongs to.
    pub guild: u64,
    /// Sequence number of the first frame.
    pub first_seq: Seq,
    /// The guild's history length (fold parameter).
    pub history_max: u32,
    /// Creation time, Unix milliseconds.
    pub created_unix_ms: u64,
    /// The key sealing every frame payload ([`KeyId::PLAINTEXT`]: not encrypted).
    pub key_id: KeyId,
}

/// Encodes a segment header.
pub fn encode_header(h: &SegmentHeader) -> [u8; HEADER_LEN] {
    let mut b = [0u8; HEADER_LEN];
    put_header_start(&mut b, &MAGIC);
    put(
        &mut b,
        HEADER_LEN_OFFSET,
        &(HEADER_LEN as u16).to_le_bytes(),
    );
    put(&mut b, HISTORY_MAX_OFFSET, &h.history_max.to_le_bytes());
    put(&mut b, GUILD_OFFSET, &h.guild.to_le_bytes());
    put(&mut b, FIRST_SEQ_OFFSET, &h.first_seq.to_le_bytes());
    put(&mut b, CREATED_OFFSET, &h.created_unix_ms.to_le_bytes());
    put(&mut b, KEY_ID_OFFSET, &h.key_id.0.to_le_bytes());
    put_header_crc(&mut b, CRC_OFFSET);
    b
}

/// True when the file is too short to hold a header, its header bytes are all zero with
/// nothing after them, or its first sector is zeros ([`torn::header_sector_is_zero`]): the
/// trace of a crash before the segment's first sync (only meaningful for the active segment;
/// a commit-log retirement or a snapshot's seal syncs a segment before the commit log records of
/// its frames are dropped, so its frames that were acknowledged are still in a commit log).
pub fn header_is_torn(bytes: &[u8]) -> bool {
    torn::header_sector_is_zero(bytes)
        || header_region_is_torn(
            bytes,
            HEADER_LEN,
            |b| decode_header(b).is_ok(),
            |rest| frame::decode(rest).is_ok(),
            |rest| rest.iter().all(|b| *b == 0),
        ) && bytes
            .iter()
            .rposition(|b| *b != 0)
            .is_none_or(|last| last < HEADER_LEN)
}

/// True when the header is invalid and no valid frame follows it: the file holds nothing
/// readable. Recovery treats it as a torn header only when the commit log holds every event
/// the segment could have held (so nothing is lost by dropping it); otherwise it is damage.
pub fn header_is_unreadable_and_empty(bytes: &[u8]) -> bool {
    header_region_is_torn(
        bytes,
        HEADER_LEN,
        |b| decode_header(b).is_ok(),
        |rest| frame::decode(rest).is_ok(),
        |rest| frame::is_torn_tail(rest, 1),
    )
}

/// Shared rule for the header of the newest file of its kind: the header never became durable
/// when the file is shorter than its header, or when the header is invalid and nothing valid
/// (no frame or record that checks out) follows it — a crash before the file's first sync
/// leaves exactly that (a prefix, then zeros or garbage). A damaged header followed by valid
/// data is damage, not a torn write: `valid_at` says whether a valid record starts at the start
/// of a slice (checked right after the header), `nothing_valid_in` whether none starts
/// anywhere after its first byte (both are needed: the torn-tail searches skip offset 0).
pub(crate) fn header_region_is_torn(
    bytes: &[u8],
    header_len: usize,
    valid: impl Fn(&[u8]) -> bool,
    valid_at: impl Fn(&[u8]) -> bool,
    nothing_valid_in: impl Fn(&[u8]) -> bool,
) -> bool {
    match bytes.get(header_len..) {
        None => true,
        Some(rest) => !valid(bytes) && !valid_at(rest) && nothing_valid_in(rest),
    }
}

/// Decodes and checks a segment header.
///
/// # Errors
/// A [`Fault`] at offset 0 (or at the field) when the header is short, foreign, of another
/// version or fails its checksum.
pub fn decode_header(bytes: &[u8]) -> Result<SegmentHeader, Fault> {
    check_header(bytes, &MAGIC, HEADER_LEN, CRC_OFFSET)?;
    let header_len = read_u16(bytes, HEADER_LEN_OFFSET);
    if usize::from(header_len) != HEADER_LEN {
        return Err(
            Fault::new(HEADER_LEN_OFFSET as u64, CorruptionKind::UnsupportedVersion)
                .values(HEADER_LEN as u64, u64::from(header_len)),
        );
    }
    let first_seq = read_u64(bytes, FIRST_SEQ_OFFSET);
    if first_seq == 0 || first_seq > crate::ids::SEQ_MAX {
        return Err(
            Fault::new(FIRST_SEQ_OFFSET as u64, CorruptionKind::HeaderMismatch)
                .values(crate::ids::SEQ_MAX, first_seq)
                .detail("first_seq out of range 1..=SEQ_MAX"),
        );
    }
    Ok(SegmentHeader {
        guild: read_u64(bytes, GUILD_OFFSET),
        first_seq,
        history_max: read_u32(bytes, HISTORY_MAX_OFFSET),
        created_unix_ms: read_u64(bytes, CREATED_OFFSET),
        key_id: KeyId(read_u32(bytes, KEY_ID_OFFSET)),
    })
}

/// How the frames of a segment end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScanEnd {
    /// The last frame ends exactly at the end of the file.
    Clean,
    /// An active segment ends in a torn or zero-filled write starting at `offset`.
    TornTail {
        /// Where the valid frames end (recovery truncates the file here).
        offset: u64,
    },
    /// Damage that is not a torn tail.
    Corrupt(Fault),
}

/// How a log file whose record at `offset` failed to decode with `fault` ends, given the
/// torn-tail rule's `decision` and whether the file may end in a torn write (`tail_allowed`:
/// the active segment, a commit log). Bit rot is damage with the flipped byte named.
pub(crate) fn tail_end(
    decision: TailDecision,
    tail_allowed: bool,
    fault: frame::FrameFault,
    offset: usize,
) -> ScanEnd {
    match decision {
        TailDecision::Torn if tail_allowed => ScanEnd::TornTail {
            offset: offset as u64,
        },
        TailDecision::BitRot { byte, bit } => ScanEnd::Corrupt(
            fault
                .at_offset(offset as u64)
                .detail(format!("one flipped bit (bit rot): byte {byte}, bit {bit}")),
        ),
        _ => ScanEnd::Corrupt(fault.at_offset(offset as u64)),
    }
}

/// The result of checking every frame of a segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentScan {
    /// The header.
    pub header: SegmentHeader,
    /// Sequence number of the last valid frame; `header.first_seq - 1` when there is none.
    pub last_seq: Seq,
    /// Byte offset just past the last valid frame.
    pub valid_len: u64,
    /// Number of valid frames.
    pub frame_count: u64,
    /// How the frames end.
    pub end: ScanEnd,
}

/// Checks the header and every frame of a segment: checksums, lengths and consecutive sequence
/// numbers starting at the header's `first_seq`. `active` says whether the segment is the newest
/// of its guild, where a torn tail is expected after a crash rather than corruption.
///
/// # Errors
/// A [`Fault`] when the header itself is invalid.
pub fn scan(bytes: &[u8], active: bool) -> Result<SegmentScan, Fault> {
    let header = decode_header(bytes)?;
    let mut offset = HEADER_LEN;
    let mut next_seq = header.first_seq;
    let mut frame_count = 0;
    let end = loop {
        let Some(rest) = bytes.get(offset..).filter(|r| !r.is_empty()) else {
            break ScanEnd::Clean;
        };
        match frame::decode(rest) {
            Ok(f) if f.seq == next_seq => {
                offset += f.len_total();
                next_seq += 1;
                frame_count += 1;
            }
            Ok(f) => {
                break ScanEnd::Corrupt(
                    Fault::new(offset as u64, CorruptionKind::SequenceGap).values(next_seq, f.seq),
                )
            }
            Err(fault) => {
                let decision = torn::classify_tail(
                    bytes,
                    offset,
                    frame::SHAPE,
                    |b| frame::decode(b).is_ok_and(|f| f.seq == next_seq),
                    |rest| frame::is_torn_tail(rest, next_seq),
                );
                break tail_end(decision, active, fault, offset);
            }
        }
    };
    Ok(SegmentScan {
        header,
        last_seq: next_seq - 1,
        valid_len: offset as u64,
        frame_count,
        end,
    })
}

/// Iterates over the frames in `bytes[HEADER_LEN..valid_len]` of a segment already checked by
/// [`scan`], yielding each frame with its byte offset. Stops at the first frame that does not
/// decode (which [`scan`] has already reported).
pub fn frames(bytes: &[u8], valid_len: u64) -> impl Iterator<Item = (u64, Frame<'_>)> + '_ {
    let end = usize::try_from(valid_len)
        .unwrap_or(usize::MAX)
        .min(bytes.len());
    let mut offset = HEADER_LEN.min(end);
    std::iter::from_fn(move || {
        let rest = bytes.get(offset..end)?;
        if rest.is_empty() {
            return None;
        }
        // `scan` verified every frame before `valid_len`: no second checksum.
        let f = frame::decode_checked(rest)?;
        let at = offset as u64;
        offset += f.len_total();
        Some((at, f))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::Event;

    fn segment(n: u64) -> Vec<u8> {
        let h = SegmentHeader {
            guild: 9,
            first_seq: 5,
            history_max: 50,
            created_unix_ms: 1,
            key_id: KeyId::PLAINTEXT,
        };
        let mut b = encode_header(&h).to_vec();
        let ev = Event::from_json(r#"{"type":"paused_set","paused":true}"#).unwrap();
        for i in 0..n {
            frame::encode(&mut b, 5 + i, 0, &ev, None).unwrap();
        }
        b
    }

    #[test]
    fn header_round_trip_and_flips() {
        let b = segment(0);
        let h = decode_header(&b).unwrap();
        assert_eq!((h.guild, h.first_seq, h.history_max), (9, 5, 50));
        for i in 0..HEADER_LEN {
            let mut bad = b.clone();
            bad[i] ^= 0x10;
            assert!(decode_header(&bad).is_err(), "flip at {i}");
        }
    }

    #[test]
    fn scan_clean_torn_and_corrupt() {
        let b = segment(3);
        let s = scan(&b, false).unwrap();
        assert_eq!(
            (s.last_seq, s.frame_count, s.end.clone()),
            (7, 3, ScanEnd::Clean)
        );
        assert_eq!(frames(&b, s.valid_len).count(), 3);
        let cut = &b[..b.len() - 3];
        let t = scan(cut, true).unwrap();
        assert_eq!(t.last_seq, 6);
        assert!(matches!(t.end, ScanEnd::TornTail { .. }));
        // The same cut in a sealed segment is corruption.
        assert!(matches!(scan(cut, false).unwrap().end, ScanEnd::Corrupt(_)));
        // Damage to the first frame of three in an active segment is not a tail.
        let mut mid = b.clone();
        mid[HEADER_LEN + 30] ^= 1;
        assert!(matches!(scan(&mid, true).unwrap().end, ScanEnd::Corrupt(_)));
    }

    /// The segment side of the commit log's header bug: a segment whose header reads with one
    /// flipped bit and whose only frame follows it was "unreadable and empty" (the frame right
    /// after the header was not searched for), so recovery could drop it as a torn header.
    #[test]
    fn regression_header_bit_rot_before_a_single_frame_is_not_unreadable_and_empty() {
        let b = segment(1);
        for byte in 0..HEADER_LEN {
            for bit in 0..8 {
                let mut bad = b.clone();
                bad[byte] ^= 1 << bit;
                assert!(
                    !header_is_unreadable_and_empty(&bad),
                    "flip at byte {byte} bit {bit}"
                );
                assert!(!header_is_torn(&bad), "flip at byte {byte} bit {bit}");
            }
        }
        let mut empty = b[..HEADER_LEN].to_vec();
        empty[20] ^= 1;
        empty.extend([0u8; 30]);
        assert!(header_is_unreadable_and_empty(&empty));
    }
}

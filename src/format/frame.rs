//! One log record: a fixed 24-byte header and a bincode event payload.
//!
//! ```text
//! offset size field
//!      0    4 crc        CRC-32 of bytes 4 .. 24+len (length, seq, time and payload)
//!      4    4 len        payload length in bytes, 1 ..= PAYLOAD_LEN_MAX
//!      8    8 seq        the guild's sequence number of this event
//!     16    8 at_unix_ms wall-clock append time, milliseconds since the Unix epoch
//!     24  len payload    bincode of the event, or, in a segment whose key_id is not 0,
//!                        nonce(24) ‖ the bincode encrypted ‖ tag(16), with the associated
//!                        data crypto::frame_ad(guild, seq, at_unix_ms)
//! ```

use crate::crypto::{self, KeyId, Keyring, OpenFault, NONCE_LEN};
use crate::error::CorruptionKind;
use crate::format::{encode_event, put, read_u32, read_u64, Fault};
use crate::ids::Seq;
use crate::session::Event;

/// Offset of the checksum field.
pub const CRC_OFFSET: usize = 0;
/// Offset of the payload length field.
pub const LEN_OFFSET: usize = CRC_OFFSET + 4;
/// Offset of the sequence number field.
pub const SEQ_OFFSET: usize = LEN_OFFSET + 4;
/// Offset of the append time field.
pub const TIME_OFFSET: usize = SEQ_OFFSET + 8;
/// Size of the frame header; the payload starts here.
pub const HEADER_LEN: usize = TIME_OFFSET + 8;
/// Largest payload a frame may carry (16 MiB: a 10,000-track playlist enqueue fits).
pub const PAYLOAD_LEN_MAX: u32 = 16 << 20;

/// The layout of a frame as the torn-tail rule sees it ([`super::torn::Shape`]).
pub const SHAPE: super::torn::Shape = super::torn::Shape {
    header_len: HEADER_LEN,
    len_min: 1,
    len_max: PAYLOAD_LEN_MAX,
};

const _: () = assert!(HEADER_LEN == 24);
const _: () = assert!(CRC_OFFSET == 0 && LEN_OFFSET == 4);
const _: () = assert!(PAYLOAD_LEN_MAX as u64 <= u32::MAX as u64);

/// A decoded frame borrowing its payload from the segment bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The event's sequence number.
    pub seq: Seq,
    /// The append time (Unix milliseconds).
    pub at_unix_ms: u64,
    /// The bincode payload.
    pub payload: &'a [u8],
}

impl Frame<'_> {
    /// Total bytes the frame occupies (header and payload).
    pub fn len_total(&self) -> usize {
        HEADER_LEN + self.payload.len()
    }
}

/// Why the bytes at some offset are not a valid frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameFault {
    /// Fewer bytes remain than the header or the declared payload needs.
    Truncated {
        /// Bytes the frame needs.
        needed: u64,
        /// Bytes available.
        available: u64,
    },
    /// The length field is zero or over [`PAYLOAD_LEN_MAX`].
    Length {
        /// The length found.
        len: u32,
    },
    /// The sequence number is 0 or above [`crate::ids::SEQ_MAX`] (checksum valid: a forged or
    /// buggy frame).
    Seq {
        /// The sequence number found.
        seq: u64,
    },
    /// The checksum does not match.
    Checksum {
        /// Stored checksum.
        expected: u32,
        /// Checksum of the bytes.
        actual: u32,
    },
}

impl FrameFault {
    /// The fault as a located [`Fault`].
    pub fn at_offset(self, offset: u64) -> Fault {
        match self {
            FrameFault::Truncated { needed, available } => {
                Fault::new(offset, CorruptionKind::Truncated).values(needed, available)
            }
            FrameFault::Length { len } => Fault::new(offset, CorruptionKind::FrameLength)
                .values(u64::from(PAYLOAD_LEN_MAX), u64::from(len)),
            FrameFault::Seq { seq } => Fault::new(offset, CorruptionKind::SequenceGap)
                .values(crate::ids::SEQ_MAX, seq)
                .detail("sequence number out of range"),
            FrameFault::Checksum { expected, actual } => {
                Fault::new(offset, CorruptionKind::FrameChecksum)
                    .values(u64::from(expected), u64::from(actual))
            }
        }
    }
}

/// How a frame's payload is sealed: with the keyring's current key, bound to `guild`.
#[derive(Clone, Copy, Debug)]
pub struct Seal<'a> {
    /// The keys (the current one seals).
    pub keys: &'a Keyring,
    /// The guild the frame belongs to (part of the associated data).
    pub guild: u64,
}

/// Appends one frame holding `event` to `out` and returns the payload length. With `seal`,
/// the payload is encrypted (see the module docs).
///
/// On error `out` is left as it was.
///
/// # Errors
/// The encoded payload is longer than [`PAYLOAD_LEN_MAX`] (the length is returned).
pub fn encode(
    out: &mut Vec<u8>,
    seq: Seq,
    at_unix_ms: u64,
    event: &Event,
    seal: Option<Seal<'_>>,
) -> Result<u32, u64> {
    let start = out.len();
    let nonce_at = start + HEADER_LEN;
    out.resize(nonce_at + if seal.is_some() { NONCE_LEN } else { 0 }, 0);
    encode_event(event, out);
    if let Some(seal) = seal {
        let ad = crypto::frame_ad(seal.guild, seq, at_unix_ms);
        seal.keys
            .seal_in_place(out, nonce_at, seal.keys.next_nonce(), &ad);
    }
    let payload_len = (out.len() - start - HEADER_LEN) as u64;
    if payload_len == 0 || payload_len > u64::from(PAYLOAD_LEN_MAX) {
        out.truncate(start);
        return Err(payload_len);
    }
    let len = payload_len as u32;
    let frame = &mut out[start..];
    put(frame, LEN_OFFSET, &len.to_le_bytes());
    put(frame, SEQ_OFFSET, &seq.to_le_bytes());
    put(frame, TIME_OFFSET, &at_unix_ms.to_le_bytes());
    let crc = crc32fast::hash(&frame[LEN_OFFSET..]);
    put(frame, CRC_OFFSET, &crc.to_le_bytes());
    Ok(len)
}

/// Decodes the frame at the start of `buf` (which may hold more after it).
///
/// The length field is bounded by [`PAYLOAD_LEN_MAX`] and by what `buf` holds before anything
/// is sliced, so a corrupt length costs nothing.
///
/// # Errors
/// The [`FrameFault`] that makes these bytes not a frame.
pub fn decode(buf: &[u8]) -> Result<Frame<'_>, FrameFault> {
    if buf.len() < HEADER_LEN {
        return Err(FrameFault::Truncated {
            needed: HEADER_LEN as u64,
            available: buf.len() as u64,
        });
    }
    let len = read_u32(buf, LEN_OFFSET);
    if len == 0 || len > PAYLOAD_LEN_MAX {
        return Err(FrameFault::Length { len });
    }
    let total = HEADER_LEN + len as usize;
    let Some(frame) = buf.get(..total) else {
        return Err(FrameFault::Truncated {
            needed: total as u64,
            available: buf.len() as u64,
        });
    };
    let expected = read_u32(frame, CRC_OFFSET);
    let actual = crc32fast::hash(&frame[LEN_OFFSET..]);
    if expected != actual {
        return Err(FrameFault::Checksum { expected, actual });
    }
    let seq = read_u64(frame, SEQ_OFFSET);
    if seq == 0 || seq > crate::ids::SEQ_MAX {
        return Err(FrameFault::Seq { seq });
    }
    Ok(Frame {
        seq,
        at_unix_ms: read_u64(frame, TIME_OFFSET),
        payload: &frame[HEADER_LEN..],
    })
}

/// Parses the frame at the start of `buf` *without* verifying its checksum: only for bytes that
/// [`decode`] has already accepted (a segment range checked by `segment::scan`), so that a
/// replay does not compute every CRC twice. Lengths are still bounded before slicing.
pub fn decode_checked(buf: &[u8]) -> Option<Frame<'_>> {
    let len = read_u32(buf, LEN_OFFSET);
    if buf.len() < HEADER_LEN || len == 0 || len > PAYLOAD_LEN_MAX {
        return None;
    }
    let frame = buf.get(..HEADER_LEN + len as usize)?;
    Some(Frame {
        seq: read_u64(frame, SEQ_OFFSET),
        at_unix_ms: read_u64(frame, TIME_OFFSET),
        payload: &frame[HEADER_LEN..],
    })
}

/// The plaintext payload of a frame read from a segment sealed under `key_id` (the payload
/// itself when [`KeyId::PLAINTEXT`]), opened into `scratch` when encrypted.
///
/// # Errors
/// Why the sealed payload does not open (see [`Keyring::open`]).
pub(crate) fn open_payload<'a>(
    frame: &Frame<'a>,
    key_id: KeyId,
    guild: u64,
    keys: Option<&Keyring>,
    scratch: &'a mut Vec<u8>,
) -> Result<&'a [u8], OpenFault> {
    if key_id.is_plaintext() {
        return Ok(frame.payload);
    }
    let keys = keys.ok_or(OpenFault::KeyUnknown)?;
    let ad = crypto::frame_ad(guild, frame.seq, frame.at_unix_ms);
    keys.open(key_id, frame.payload, &ad, scratch)?;
    Ok(&scratch[..])
}

/// Decides whether the invalid bytes `rest` (starting at a frame boundary where decoding failed)
/// are a torn tail: true when no valid frame carrying a sequence number at or after `next_seq`
/// starts anywhere in them. A later valid frame means the damage is in the middle of the log.
///
/// All-zero bytes (a zero-filled tail after a power loss) are torn without further search.
pub fn is_torn_tail(rest: &[u8], next_seq: Seq) -> bool {
    if rest.iter().all(|b| *b == 0) {
        return true;
    }
    // A frame needs at least HEADER_LEN + 1 bytes; anything beyond next_seq + (frames that
    // could fit) is impossible and skipped before the checksum is computed.
    let seq_max = next_seq.saturating_add((rest.len() / (HEADER_LEN + 1)) as u64);
    (1..rest.len()).all(|k| {
        let tail = &rest[k..];
        if tail.len() <= HEADER_LEN {
            return true;
        }
        let seq = read_u64(tail, SEQ_OFFSET);
        if seq < next_seq || seq > seq_max {
            return true;
        }
        decode(tail).is_err()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::Event;

    fn sample() -> Event {
        Event::from_json(r#"{"type":"volume_set","volume":42}"#).unwrap()
    }

    #[test]
    fn round_trip_and_every_byte_flip_is_detected() {
        let mut buf = Vec::new();
        encode(&mut buf, 7, 1234, &sample(), None).unwrap();
        let f = decode(&buf).unwrap();
        assert_eq!((f.seq, f.at_unix_ms), (7, 1234));
        assert_eq!(f.len_total(), buf.len());
        for i in 0..buf.len() {
            for bit in 0..8 {
                let mut bad = buf.clone();
                bad[i] ^= 1 << bit;
                assert!(
                    decode(&bad).is_err(),
                    "flip at byte {i} bit {bit} undetected"
                );
            }
        }
    }

    #[test]
    fn sealed_payloads_open_only_in_their_place() {
        use crate::crypto::{Key, SEAL_OVERHEAD};
        let keys = Keyring::new(Key::from_bytes([3; 32]), []).unwrap();
        let seal = Seal {
            keys: &keys,
            guild: 11,
        };
        let mut plain = Vec::new();
        encode(&mut plain, 7, 1234, &sample(), None).unwrap();
        let mut buf = Vec::new();
        encode(&mut buf, 7, 1234, &sample(), Some(seal)).unwrap();
        assert_eq!(buf.len(), plain.len() + SEAL_OVERHEAD);
        let f = decode(&buf).unwrap();
        let mut scratch = Vec::new();
        let p = open_payload(&f, keys.current(), 11, Some(&keys), &mut scratch).unwrap();
        assert_eq!(p, &plain[HEADER_LEN..]);
        let mut scratch = Vec::new();
        assert_eq!(
            open_payload(&f, keys.current(), 12, Some(&keys), &mut scratch),
            Err(OpenFault::Authentication)
        );
        let mut scratch = Vec::new();
        assert_eq!(
            open_payload(&f, keys.current(), 11, None, &mut scratch),
            Err(OpenFault::KeyUnknown)
        );
    }

    #[test]
    fn decode_checked_agrees_with_decode_on_valid_frames_and_bounds_lengths() {
        let mut buf = Vec::new();
        encode(&mut buf, 9, 77, &sample(), None).unwrap();
        assert_eq!(decode_checked(&buf), decode(&buf).ok());
        assert_eq!(decode_checked(&buf[..buf.len() - 1]), None);
        let mut huge = buf.clone();
        huge[LEN_OFFSET..LEN_OFFSET + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode_checked(&huge), None);
    }

    #[test]
    fn every_proper_prefix_is_truncated_or_length_fault() {
        let mut buf = Vec::new();
        encode(&mut buf, 1, 0, &sample(), None).unwrap();
        for n in 0..buf.len() {
            assert!(matches!(
                decode(&buf[..n]),
                Err(FrameFault::Truncated { .. })
            ));
        }
    }

    #[test]
    fn huge_length_is_refused_without_allocation() {
        let mut buf = vec![0u8; HEADER_LEN];
        buf[LEN_OFFSET..LEN_OFFSET + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode(&buf), Err(FrameFault::Length { len: u32::MAX }));
    }

    #[test]
    fn torn_tail_versus_mid_log_damage() {
        let mut buf = Vec::new();
        for seq in 1..=3 {
            encode(&mut buf, seq, 0, &sample(), None).unwrap();
        }
        let one = buf.len() / 3;
        // Damage the second frame: a valid third frame follows, so it is not a tail.
        let mut mid = buf.clone();
        mid[one + 2] ^= 0xff;
        assert!(!is_torn_tail(&mid[one..], 2));
        // Cut the last frame short: torn.
        assert!(is_torn_tail(&buf[2 * one..buf.len() - 1], 3));
        // Zeros: torn.
        assert!(is_torn_tail(&[0u8; 100], 3));
    }
}

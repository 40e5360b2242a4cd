//! A snapshot file: a 64-byte header and the zstd-compressed bincode of a guild's state.
//!
//! ```text
//! offset size field
//!      0    8 magic           b"REPRSNP\0"
//!      8    2 version         FORMAT_VERSION (1)
//!     10    2 codec           1 = zstd(bincode(State))
//!     12    4 reserved        zero
//!     16    8 guild           guild id
//!     24    8 seq             sequence number of the last event folded in (also the file name)
//!     32    8 created_unix_ms when the snapshot was written
//!     40    8 state_len       length of the bincode state before compression (<= STATE_LEN_MAX)
//!     48    8 body_len        length of the compressed body (= file length - 64)
//!     56    4 body_crc        CRC-32 of the body
//!     60    4 header_crc      CRC-32 of bytes 0..60
//!     64    . body            zstd frame
//! ```

use crate::error::CorruptionKind;
use crate::format::{
    check_header, decode_state, encode_state, put, put_header_crc, put_header_start, read_u16,
    read_u32, read_u64, Fault,
};
use crate::ids::Seq;
use crate::session::State;

/// Magic bytes at the start of every snapshot.
pub const MAGIC: [u8; 8] = *b"REPRSNP\0";
/// Offset of the format version.
pub const VERSION_OFFSET: usize = MAGIC.len();
/// Offset of the body codec.
pub const CODEC_OFFSET: usize = VERSION_OFFSET + 2;
/// Offset of the reserved word.
pub const RESERVED_OFFSET: usize = CODEC_OFFSET + 2;
/// Offset of the guild id.
pub const GUILD_OFFSET: usize = RESERVED_OFFSET + 4;
/// Offset of the sequence number.
pub const SEQ_OFFSET: usize = GUILD_OFFSET + 8;
/// Offset of the creation time.
pub const CREATED_OFFSET: usize = SEQ_OFFSET + 8;
/// Offset of the uncompressed state length.
pub const STATE_LEN_OFFSET: usize = CREATED_OFFSET + 8;
/// Offset of the compressed body length.
pub const BODY_LEN_OFFSET: usize = STATE_LEN_OFFSET + 8;
/// Offset of the body checksum.
pub const BODY_CRC_OFFSET: usize = BODY_LEN_OFFSET + 8;
/// Offset of the header checksum.
pub const HEADER_CRC_OFFSET: usize = BODY_CRC_OFFSET + 4;
/// Size of the header; the body starts here.
pub const HEADER_LEN: usize = HEADER_CRC_OFFSET + 4;
/// The only body codec of format version 1.
pub const CODEC_ZSTD_BINCODE: u16 = 1;
/// Largest uncompressed state accepted (256 MiB: far above a 100,000-track queue).
pub const STATE_LEN_MAX: u64 = 256 << 20;
/// Largest snapshot file accepted.
pub const FILE_LEN_MAX: u64 = HEADER_LEN as u64 + STATE_LEN_MAX + (STATE_LEN_MAX >> 7) + 4096;
/// zstd level: level 3 compresses a 1,000-track queue in about a millisecond.
pub const ZSTD_LEVEL: i32 = 3;

const _: () = assert!(HEADER_LEN == 64);

/// The decoded snapshot header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotHeader {
    /// The guild.
    pub guild: u64,
    /// Sequence number of the last event folded into the state.
    pub seq: Seq,
    /// When it was written, Unix milliseconds.
    pub created_unix_ms: u64,
    /// Uncompressed state length.
    pub state_len: u64,
    /// Compressed body length.
    pub body_len: u64,
}

/// Encodes a complete snapshot file.
///
/// # Errors
/// zstd's error (it fails only when it cannot allocate its context).
pub fn encode(
    guild: u64,
    seq: Seq,
    created_unix_ms: u64,
    state: &State,
) -> std::io::Result<Vec<u8>> {
    let raw = encode_state(state);
    let body = zstd::bulk::compress(&raw, ZSTD_LEVEL)?;
    let mut out = vec![0u8; HEADER_LEN];
    put_header_start(&mut out, &MAGIC);
    put(&mut out, CODEC_OFFSET, &CODEC_ZSTD_BINCODE.to_le_bytes());
    put(&mut out, GUILD_OFFSET, &guild.to_le_bytes());
    put(&mut out, SEQ_OFFSET, &seq.to_le_bytes());
    put(&mut out, CREATED_OFFSET, &created_unix_ms.to_le_bytes());
    put(
        &mut out,
        STATE_LEN_OFFSET,
        &(raw.len() as u64).to_le_bytes(),
    );
    put(
        &mut out,
        BODY_LEN_OFFSET,
        &(body.len() as u64).to_le_bytes(),
    );
    put(
        &mut out,
        BODY_CRC_OFFSET,
        &crc32fast::hash(&body).to_le_bytes(),
    );
    put_header_crc(&mut out, HEADER_CRC_OFFSET);
    out.extend_from_slice(&body);
    Ok(out)
}

/// Decodes and checks the header (not the body).
///
/// # Errors
/// A [`Fault`] naming the field that is wrong.
pub fn decode_header(bytes: &[u8]) -> Result<SnapshotHeader, Fault> {
    check_header(bytes, &MAGIC, HEADER_LEN, HEADER_CRC_OFFSET)?;
    let codec = read_u16(bytes, CODEC_OFFSET);
    if codec != CODEC_ZSTD_BINCODE {
        return Err(
            Fault::new(CODEC_OFFSET as u64, CorruptionKind::UnsupportedVersion)
                .values(u64::from(CODEC_ZSTD_BINCODE), u64::from(codec)),
        );
    }
    let header = SnapshotHeader {
        guild: read_u64(bytes, GUILD_OFFSET),
        seq: read_u64(bytes, SEQ_OFFSET),
        created_unix_ms: read_u64(bytes, CREATED_OFFSET),
        state_len: read_u64(bytes, STATE_LEN_OFFSET),
        body_len: read_u64(bytes, BODY_LEN_OFFSET),
    };
    if header.seq == 0 || header.seq > crate::ids::SEQ_MAX {
        return Err(
            Fault::new(SEQ_OFFSET as u64, CorruptionKind::HeaderMismatch)
                .values(crate::ids::SEQ_MAX, header.seq)
                .detail("seq out of range 1..=SEQ_MAX"),
        );
    }
    if header.state_len > STATE_LEN_MAX {
        return Err(
            Fault::new(STATE_LEN_OFFSET as u64, CorruptionKind::FileTooLarge)
                .values(STATE_LEN_MAX, header.state_len),
        );
    }
    let body_len_actual = (bytes.len() - HEADER_LEN) as u64;
    if header.body_len != body_len_actual {
        return Err(
            Fault::new(BODY_LEN_OFFSET as u64, CorruptionKind::Truncated)
                .values(header.body_len, body_len_actual)
                .detail("body length field disagrees with the file length"),
        );
    }
    Ok(header)
}

/// Decodes and checks a whole snapshot file.
///
/// The decompression buffer is bounded by the header's `state_len` (itself bounded by
/// [`STATE_LEN_MAX`]) and the body must decompress to exactly that many bytes.
///
/// # Errors
/// A [`Fault`] naming the offset of the damaged header field or of the body.
pub fn decode(bytes: &[u8]) -> Result<(SnapshotHeader, State), Fault> {
    let header = decode_header(bytes)?;
    let body = &bytes[HEADER_LEN..];
    let stored = read_u32(bytes, BODY_CRC_OFFSET);
    let actual = crc32fast::hash(body);
    if stored != actual {
        return Err(
            Fault::new(HEADER_LEN as u64, CorruptionKind::SnapshotChecksum)
                .values(u64::from(stored), u64::from(actual)),
        );
    }
    let capacity = usize::try_from(header.state_len).unwrap_or(usize::MAX);
    let raw = zstd::bulk::decompress(body, capacity).map_err(|e| {
        Fault::new(HEADER_LEN as u64, CorruptionKind::SnapshotDecode).detail(e.to_string())
    })?;
    if raw.len() as u64 != header.state_len {
        return Err(
            Fault::new(HEADER_LEN as u64, CorruptionKind::SnapshotDecode)
                .values(header.state_len, raw.len() as u64)
                .detail("decompressed length disagrees with the header"),
        );
    }
    let state = decode_state(&raw)
        .map_err(|e| Fault::new(HEADER_LEN as u64, CorruptionKind::SnapshotDecode).detail(e))?;
    Ok((header, state))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_byte_flip_is_detected() {
        let state = State::new(50);
        let b = encode(3, 10, 77, &state).unwrap();
        let (h, s) = decode(&b).unwrap();
        assert_eq!((h.guild, h.seq, h.created_unix_ms), (3, 10, 77));
        assert_eq!(s, state);
        for i in 0..b.len() {
            let mut bad = b.clone();
            bad[i] ^= 0x01;
            assert!(decode(&bad).is_err(), "flip at {i} undetected");
        }
        for n in 0..b.len() {
            assert!(decode(&b[..n]).is_err());
        }
    }
}

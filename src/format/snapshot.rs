//! A snapshot file: a 64-byte header and the zstd-compressed bincode of a guild's state,
//! sealed with the journal's key when encryption at rest is on.
//!
//! ```text
//! offset size field
//!      0    8 magic           b"REPRSNP\0"
//!      8    2 version         FORMAT_VERSION (1)
//!     10    2 codec           1 = zstd(bincode(State)) (one frame; since state layout 3 a
//!                               block boundary where the blob column starts)
//!     12    4 key_id          key that seals the body (0: not encrypted; see crate::crypto)
//!     16    8 guild           guild id
//!     24    8 seq             sequence number of the last event folded in (also the file name)
//!     32    8 created_unix_ms when the snapshot was written
//!     40    8 state_len       length of the bincode state before compression (<= STATE_LEN_MAX)
//!     48    8 body_len        length of the compressed body (= file length - 64)
//!     56    4 body_crc        CRC-32 of the body
//!     60    4 header_crc      CRC-32 of bytes 0..60
//!     64    . body            zstd frame, or, when key_id != 0, nonce(24) ‖ the zstd frame
//!                               encrypted ‖ tag(16) with the associated data
//!                               crypto::snapshot_ad(bytes 0..48)
//! ```

use crate::crypto::{self, KeyId, Keyring, OpenFault, NONCE_LEN};
use crate::error::CorruptionKind;
use crate::format::{
    check_header, decode_state, encode_state_split, put, put_header_crc, put_header_start, read_u16,
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
/// Offset of the id of the key that seals the body (0: not encrypted).
pub const KEY_ID_OFFSET: usize = CODEC_OFFSET + 2;
/// Offset of the guild id.
pub const GUILD_OFFSET: usize = KEY_ID_OFFSET + 4;
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
pub const FILE_LEN_MAX: u64 =
    HEADER_LEN as u64 + STATE_LEN_MAX + (STATE_LEN_MAX >> 7) + 4096 + crypto::SEAL_OVERHEAD as u64;
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
    /// Body length on disk (compressed, and sealed when encrypted).
    pub body_len: u64,
    /// The key that seals the body ([`KeyId::PLAINTEXT`]: not encrypted).
    pub key_id: KeyId,
}

/// Encodes a complete snapshot file, its body sealed with the keyring's current key when
/// `keys` is given.
///
/// # Errors
/// zstd's error (it fails only when it cannot allocate its context).
pub fn encode(
    guild: u64,
    seq: Seq,
    created_unix_ms: u64,
    state: &State,
    keys: Option<&Keyring>,
) -> std::io::Result<Vec<u8>> {
    let (raw, split) = encode_state_split(state);
    let mut body = compress_split(&raw, split)?;
    let key_id = keys.map_or(KeyId::PLAINTEXT, Keyring::current);
    let mut out = vec![0u8; HEADER_LEN];
    put_header_start(&mut out, &MAGIC);
    put(&mut out, CODEC_OFFSET, &CODEC_ZSTD_BINCODE.to_le_bytes());
    put(&mut out, KEY_ID_OFFSET, &key_id.0.to_le_bytes());
    put(&mut out, GUILD_OFFSET, &guild.to_le_bytes());
    put(&mut out, SEQ_OFFSET, &seq.to_le_bytes());
    put(&mut out, CREATED_OFFSET, &created_unix_ms.to_le_bytes());
    put(
        &mut out,
        STATE_LEN_OFFSET,
        &(raw.len() as u64).to_le_bytes(),
    );
    if let Some(keys) = keys {
        let mut sealed = Vec::with_capacity(body.len() + crypto::SEAL_OVERHEAD);
        sealed.resize(NONCE_LEN, 0);
        sealed.extend_from_slice(&body);
        let ad = crypto::snapshot_ad(&out[..BODY_LEN_OFFSET]);
        keys.seal_in_place(&mut sealed, 0, keys.next_nonce(), &ad);
        body = sealed;
    }
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

/// One zstd frame of `raw`, with a block boundary at `split`: the blocks before it (the state
/// but its blobs: small, repetitive) and after it (the blobs: mostly random bytes that zstd
/// stores raw) get their own literal statistics, where one block mixing the two would code the
/// texts with the blobs' flat ones.
///
/// # Errors
/// zstd's.
fn compress_split(raw: &[u8], split: usize) -> std::io::Result<Vec<u8>> {
    use std::io::Write as _;
    let (head, blobs) = raw.split_at(split.min(raw.len()));
    let mut encoder = zstd::stream::write::Encoder::new(Vec::with_capacity(raw.len() / 2 + 64), ZSTD_LEVEL)?;
    encoder.include_contentsize(true)?;
    encoder.set_pledged_src_size(Some(raw.len() as u64))?;
    encoder.write_all(head)?;
    // Ends the current block (ZSTD_e_flush): the blobs start a new one.
    encoder.flush()?;
    encoder.write_all(blobs)?;
    encoder.finish()
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
        key_id: KeyId(read_u32(bytes, KEY_ID_OFFSET)),
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
/// [`STATE_LEN_MAX`]) and the body must decompress to exactly that many bytes. An encrypted
/// body is opened with `keys` first; the caller checks beforehand that `keys` holds the
/// header's key (a missing key is reported here as an authentication fault).
///
/// # Errors
/// A [`Fault`] naming the offset of the damaged header field or of the body.
pub fn decode(bytes: &[u8], keys: Option<&Keyring>) -> Result<(SnapshotHeader, State), Fault> {
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
    let opened;
    let body = if header.key_id.is_plaintext() {
        body
    } else {
        let mut plain = Vec::new();
        let ad = crypto::snapshot_ad(&bytes[..BODY_LEN_OFFSET]);
        keys.ok_or(OpenFault::KeyUnknown)
            .and_then(|k| k.open(header.key_id, body, &ad, &mut plain))
            .map_err(|f| {
                Fault::new(HEADER_LEN as u64, CorruptionKind::Authentication)
                    .detail(f.detail(header.key_id))
            })?;
        opened = plain;
        &opened[..]
    };
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
        let b = encode(3, 10, 77, &state, None).unwrap();
        let (h, s) = decode(&b, None).unwrap();
        assert_eq!((h.guild, h.seq, h.created_unix_ms), (3, 10, 77));
        assert_eq!(h.key_id, KeyId::PLAINTEXT);
        assert_eq!(s, state);
        for i in 0..b.len() {
            let mut bad = b.clone();
            bad[i] ^= 0x01;
            assert!(decode(&bad, None).is_err(), "flip at {i} undetected");
        }
        for n in 0..b.len() {
            assert!(decode(&b[..n], None).is_err());
        }
    }

    #[test]
    fn sealed_bodies_need_their_key_and_are_bound_to_the_header() {
        use crate::crypto::Key;
        let keys = Keyring::new(Key::from_bytes([9; 32]), []).unwrap();
        let mut state = State::new(50);
        state.player.volume = 42;
        let b = encode(3, 10, 77, &state, Some(&keys)).unwrap();
        let (h, s) = decode(&b, Some(&keys)).unwrap();
        assert_eq!(h.key_id, keys.current());
        assert_eq!(s, state);
        let no_key = decode(&b, None).unwrap_err();
        assert_eq!(no_key.kind, CorruptionKind::Authentication);
        let other = Keyring::new(Key::from_bytes([8; 32]), []).unwrap();
        assert_eq!(
            decode(&b, Some(&other)).unwrap_err().kind,
            CorruptionKind::Authentication
        );
        // The body of guild 3 moved under a header of guild 4 (checksums recomputed): refused.
        let mut moved = b.clone();
        moved[GUILD_OFFSET..GUILD_OFFSET + 8].copy_from_slice(&4u64.to_le_bytes());
        put_header_crc(&mut moved, HEADER_CRC_OFFSET);
        assert_eq!(
            decode(&moved, Some(&keys)).unwrap_err().kind,
            CorruptionKind::Authentication
        );
        for i in 0..b.len() {
            let mut bad = b.clone();
            bad[i] ^= 0x01;
            assert!(decode(&bad, Some(&keys)).is_err(), "flip at {i} undetected");
        }
    }
}

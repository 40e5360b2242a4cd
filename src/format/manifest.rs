//! A named checkpoint's manifest (`DIR/checkpoints/<label>/MANIFEST`): which guilds the
//! checkpoint holds, at which sequence number, and the checksum of each guild's state file.
//! Written last (atomically), so a checkpoint exists exactly when its manifest does.
//!
//! ```text
//! offset size field
//!      0    8 magic           b"REPRCKP\0"
//!      8    2 version         FORMAT_VERSION (1)
//!     10    2 label_len       1..=LABEL_LEN_MAX
//!     12    4 count           number of guilds
//!     16    8 created_unix_ms when the checkpoint was taken
//!     24    4 body_crc        CRC-32 of bytes 32..end
//!     28    4 header_crc      CRC-32 of bytes 0..28
//!     32    . label           label_len bytes (the directory name: [A-Za-z0-9._-], not starting with '.')
//!      .    . entries         count x 20 bytes, sorted by guild, each guild once:
//!                               guild u64, seq u64, state_crc u32 (CRC-32 of the whole state
//!                               file guilds/<guild>.snap of the checkpoint)
//! ```
//!
//! The file length is exactly `32 + label_len + 20 * count`. Nothing in it is secret (guild ids,
//! sequence numbers and the label are in the clear in every journal header too); the states
//! are in the checkpoint's snapshot files, sealed like any snapshot when encryption is on.

use crate::error::CorruptionKind;
use crate::format::{
    check_header, put, put_header_crc, put_header_start, read_u16, read_u32, read_u64, Fault,
};
use crate::ids::Seq;

/// Magic bytes of a checkpoint manifest.
pub const MAGIC: [u8; 8] = *b"REPRCKP\0";
/// Offset of the label length.
pub const LABEL_LEN_OFFSET: usize = MAGIC.len() + 2;
/// Offset of the guild count.
pub const COUNT_OFFSET: usize = LABEL_LEN_OFFSET + 2;
/// Offset of the creation time.
pub const CREATED_OFFSET: usize = COUNT_OFFSET + 4;
/// Offset of the body checksum.
pub const BODY_CRC_OFFSET: usize = CREATED_OFFSET + 8;
/// Offset of the header checksum.
pub const HEADER_CRC_OFFSET: usize = BODY_CRC_OFFSET + 4;
/// Length of the header; the label starts here.
pub const HEADER_LEN: usize = HEADER_CRC_OFFSET + 4;
/// Length of one guild entry.
pub const ENTRY_LEN: usize = 20;
/// The longest label, in bytes.
pub const LABEL_LEN_MAX: usize = 64;
/// The most guilds one checkpoint holds (a manifest of 20 MiB).
pub const GUILDS_MAX: usize = 1 << 20;
/// The largest manifest file.
pub const FILE_LEN_MAX: u64 = (HEADER_LEN + LABEL_LEN_MAX + ENTRY_LEN * GUILDS_MAX) as u64;

const _: () = assert!(HEADER_LEN == 32);

/// One guild of a checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ManifestEntry {
    /// The guild.
    pub guild: u64,
    /// The sequence number of the guild's state in the checkpoint.
    pub seq: Seq,
    /// CRC-32 of the guild's state file.
    pub state_crc: u32,
}

/// A decoded manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// The checkpoint's label.
    pub label: String,
    /// When it was taken, Unix milliseconds.
    pub created_unix_ms: u64,
    /// Its guilds, sorted by guild id.
    pub entries: Vec<ManifestEntry>,
}

/// Whether `label` can name a checkpoint: 1 to [`LABEL_LEN_MAX`] bytes of ASCII letters,
/// digits, `.`, `_` and `-`, not starting with `.` (so it is one plain directory name).
pub fn label_is_valid(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= LABEL_LEN_MAX
        && !label.starts_with('.')
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Encodes a manifest. The entries are written sorted by guild.
///
/// # Errors
/// A message when the label is not valid ([`label_is_valid`]), a guild appears twice, or there
/// are more than [`GUILDS_MAX`] guilds.
pub fn encode(manifest: &Manifest) -> Result<Vec<u8>, String> {
    if !label_is_valid(&manifest.label) {
        return Err(format!("{:?} is not a valid label", manifest.label));
    }
    let mut entries = manifest.entries.clone();
    entries.sort_unstable_by_key(|e| e.guild);
    if entries.windows(2).any(|w| w[0].guild == w[1].guild) {
        return Err("a guild appears twice".to_owned());
    }
    if entries.len() > GUILDS_MAX {
        return Err(format!("more than {GUILDS_MAX} guilds"));
    }
    let mut out = vec![0u8; HEADER_LEN];
    out.extend_from_slice(manifest.label.as_bytes());
    for e in &entries {
        out.extend_from_slice(&e.guild.to_le_bytes());
        out.extend_from_slice(&e.seq.to_le_bytes());
        out.extend_from_slice(&e.state_crc.to_le_bytes());
    }
    put_header_start(&mut out, &MAGIC);
    put(
        &mut out,
        LABEL_LEN_OFFSET,
        &(manifest.label.len() as u16).to_le_bytes(),
    );
    put(
        &mut out,
        COUNT_OFFSET,
        &(entries.len() as u32).to_le_bytes(),
    );
    put(
        &mut out,
        CREATED_OFFSET,
        &manifest.created_unix_ms.to_le_bytes(),
    );
    let body_crc = crc32fast::hash(&out[HEADER_LEN..]);
    put(&mut out, BODY_CRC_OFFSET, &body_crc.to_le_bytes());
    put_header_crc(&mut out, HEADER_CRC_OFFSET);
    Ok(out)
}

/// Decodes and checks a manifest: header, lengths, body checksum, label, entry order.
///
/// # Errors
/// A [`Fault`] at the offending field.
pub fn decode(bytes: &[u8]) -> Result<Manifest, Fault> {
    check_header(bytes, &MAGIC, HEADER_LEN, HEADER_CRC_OFFSET)?;
    let label_len = usize::from(read_u16(bytes, LABEL_LEN_OFFSET));
    let count = read_u32(bytes, COUNT_OFFSET) as usize;
    let expected_len = HEADER_LEN as u64 + label_len as u64 + ENTRY_LEN as u64 * count as u64;
    if bytes.len() as u64 != expected_len {
        let kind = if (bytes.len() as u64) < expected_len {
            CorruptionKind::Truncated
        } else {
            CorruptionKind::FileTooLarge
        };
        return Err(Fault::new(COUNT_OFFSET as u64, kind)
            .values(expected_len, bytes.len() as u64)
            .detail("manifest length disagrees with its label length and guild count"));
    }
    let stored = read_u32(bytes, BODY_CRC_OFFSET);
    let actual = crc32fast::hash(&bytes[HEADER_LEN..]);
    if stored != actual {
        return Err(
            Fault::new(BODY_CRC_OFFSET as u64, CorruptionKind::CheckpointMismatch)
                .values(u64::from(stored), u64::from(actual))
                .detail("manifest body checksum"),
        );
    }
    let label = std::str::from_utf8(&bytes[HEADER_LEN..HEADER_LEN + label_len])
        .ok()
        .filter(|l| label_is_valid(l))
        .ok_or_else(|| {
            Fault::new(HEADER_LEN as u64, CorruptionKind::CheckpointMismatch)
                .detail("manifest label is not a valid label")
        })?
        .to_owned();
    let mut entries = Vec::with_capacity(count);
    let start = HEADER_LEN + label_len;
    for i in 0..count {
        let at = start + i * ENTRY_LEN;
        let entry = ManifestEntry {
            guild: read_u64(bytes, at),
            seq: read_u64(bytes, at + 8),
            state_crc: read_u32(bytes, at + 16),
        };
        if entries
            .last()
            .is_some_and(|prev: &ManifestEntry| prev.guild >= entry.guild)
        {
            return Err(Fault::new(at as u64, CorruptionKind::CheckpointMismatch)
                .detail("manifest guilds are not in increasing order"));
        }
        entries.push(entry);
    }
    Ok(Manifest {
        label,
        created_unix_ms: read_u64(bytes, CREATED_OFFSET),
        entries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            label: "v1.2.3-blue".to_owned(),
            created_unix_ms: 1_760_000_000_123,
            entries: vec![
                ManifestEntry {
                    guild: 613_425_648_685_547_541,
                    seq: 42,
                    state_crc: 0xDEAD_BEEF,
                },
                ManifestEntry {
                    guild: 7,
                    seq: 1,
                    state_crc: 1,
                },
            ],
        }
    }

    #[test]
    fn round_trips_sorted() {
        let bytes = encode(&sample()).unwrap();
        assert_eq!(
            bytes.len(),
            HEADER_LEN + "v1.2.3-blue".len() + 2 * ENTRY_LEN
        );
        let back = decode(&bytes).unwrap();
        let mut expected = sample();
        expected.entries.reverse();
        assert_eq!(back, expected);
        let empty = Manifest {
            entries: Vec::new(),
            ..sample()
        };
        assert_eq!(decode(&encode(&empty).unwrap()).unwrap(), empty);
    }

    #[test]
    fn every_flip_and_every_cut_is_detected() {
        let bytes = encode(&sample()).unwrap();
        for i in 0..bytes.len() {
            for bit in [1u8, 0x80] {
                let mut bad = bytes.clone();
                bad[i] ^= bit;
                assert!(decode(&bad).is_err(), "flip at {i}");
            }
        }
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len]).is_err(), "cut at {len}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode(&longer).is_err());
    }

    #[test]
    fn labels() {
        for good in ["a", "v1.2.3", "blue_green-2025", &"x".repeat(LABEL_LEN_MAX)] {
            assert!(label_is_valid(good), "{good}");
        }
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "a/b",
            "a b",
            "é",
            "a\0",
            &"x".repeat(LABEL_LEN_MAX + 1),
        ] {
            assert!(!label_is_valid(bad), "{bad:?}");
        }
        let bad = Manifest {
            label: "../x".to_owned(),
            ..sample()
        };
        assert!(encode(&bad).is_err());
        let mut twice = sample();
        twice.entries[1].guild = twice.entries[0].guild;
        assert!(encode(&twice).is_err());
    }
}

//! The small remote objects (claims and fence markers) and the local ownership record: one JSON
//! line followed by a line `crc32=XXXXXXXX` (CRC-32 of the JSON line), so a changed byte is
//! caught like in every other reprise file. PURE: no I/O.

use serde::{Deserialize, Serialize};

use crate::ids::Epoch;
#[cfg(any(feature = "remote", feature = "testing", test))]
use crate::ids::LogPosition;

/// Largest small object (claim, marker, ownership record) reprise reads.
pub const SMALL_OBJECT_LEN_MAX: u64 = 4096;

#[cfg(any(feature = "remote", feature = "testing", test))]
/// A claim object `claim/<epoch:020>`: who took the guild at that epoch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimRecord {
    /// The guild.
    pub guild: u64,
    /// The epoch (also the object's name).
    pub epoch: Epoch,
    /// The owner's name (`--owner`).
    pub owner: String,
    /// A random token only the claiming directory knows (it tells a claim whose answer was
    /// lost from another directory's claim of the same epoch).
    pub token: String,
    /// The claiming directory's writer (its log is `writers/<writer>/`).
    pub writer: String,
    /// The first position of that log that can hold this epoch's events.
    pub start: LogPosition,
    /// When the claim was written (Unix milliseconds).
    pub claimed_unix_ms: u64,
}

#[cfg(any(feature = "remote", feature = "testing", test))]
/// A non-batch object at a position of a writer's log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, tag = "marker", rename_all = "snake_case")]
pub enum Marker {
    /// The guild's epoch held by this writer is closed here: its owner is fenced, and no
    /// later position of this log holds events of that epoch.
    Fence {
        /// The guild.
        guild: u64,
        /// The fenced epoch.
        epoch: Epoch,
        /// The claim that wrote it.
        fenced_by: Epoch,
        /// That claim's owner.
        owner: String,
    },
}

/// This directory's record of the remote epoch it holds for a guild.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OwnerRecord {
    /// The guild.
    pub guild: u64,
    /// The epoch this directory claimed.
    pub epoch: Epoch,
    /// The owner name it claimed under.
    pub owner: String,
    /// The token of its claim object.
    pub token: String,
    /// The first event of the epoch (the event after the history it claimed).
    pub chain_start: u64,
    /// Set once this directory has seen a newer owner: that owner's epoch and name. From then
    /// on every append to the guild fails, with or without the store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fenced_by: Option<(Epoch, String)>,
}

#[cfg(any(feature = "remote", feature = "testing", test))]
/// A new random claim token (128 bits, hex).
pub fn new_token() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).unwrap_or_else(|e| panic!("the OS random generator failed: {e}"));
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(any(feature = "remote", feature = "testing", test))]
/// Encodes a small object: the JSON line and its checksum line.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let json = serde_json::to_string(value).unwrap_or_else(|e| panic!("serializing: {e}"));
    format!("{json}\ncrc32={:08x}\n", crc32fast::hash(json.as_bytes())).into_bytes()
}

/// Decodes a small object, checking its checksum and its schema.
///
/// # Errors
/// A description of what is wrong.
pub fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_string())?;
    let mut lines = text.split('\n');
    let (json, crc, rest) = (lines.next(), lines.next(), lines.next());
    let (Some(json), Some(crc), Some("")) = (json, crc, rest) else {
        return Err("not a JSON line followed by a checksum line".into());
    };
    if lines.next().is_some() {
        return Err("bytes after the checksum line".into());
    }
    let stored = crc
        .strip_prefix("crc32=")
        .filter(|h| h.len() == 8 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        .and_then(|h| u32::from_str_radix(h, 16).ok())
        .ok_or_else(|| "malformed checksum line".to_string())?;
    let actual = crc32fast::hash(json.as_bytes());
    if stored != actual {
        return Err(format!(
            "checksum mismatch (expected {stored:08x}, found {actual:08x})"
        ));
    }
    serde_json::from_str(json).map_err(|e| format!("invalid JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_flip_is_caught() {
        let m = Marker::Fence {
            guild: 7,
            epoch: Epoch(2),
            fenced_by: Epoch(3),
            owner: "b".into(),
        };
        let bytes = encode(&m);
        assert_eq!(decode::<Marker>(&bytes).unwrap(), m);
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut b = bytes.clone();
                b[i] ^= 1 << bit;
                assert!(decode::<Marker>(&b).is_err(), "flip at {i}/{bit}");
            }
        }
        assert!(decode::<ClaimRecord>(&bytes).is_err());
    }
}

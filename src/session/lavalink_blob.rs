//! [`LavalinkBlob`]: Lavalink's binary track encoding (the bytes behind a track's base64
//! `encoded` string), decoded and encoded exactly.
//!
//! Lavalink (lavaplayer's `DefaultAudioPlayerManager.encodeTrack`) writes one *message*:
//!
//! ```text
//! header      u32 big-endian   message size (the bytes after the header) | flags << 30;
//!                              flag 1 (TRACK_INFO_VERSIONED): a version byte follows
//! version     u8               2 or 3 (version 1, unversioned, has no uri: not handled here)
//! title       UTF              Java DataOutput.writeUTF: u16 big-endian byte length, then
//! author      UTF              "modified UTF-8" (U+0000 as C0 80, characters above U+FFFF
//! length      i64 big-endian   as two 3-byte surrogates)
//! identifier  UTF
//! isStream    bool             one byte, 0 or 1
//! uri         nullable UTF     bool (present) then UTF when present
//! artworkUrl  nullable UTF     version 3 only
//! isrc        nullable UTF     version 3 only
//! sourceName  UTF
//! details     bytes            the source manager's own fields (none for youtube and
//!                              soundcloud; http writes its container probe)
//! position    i64 big-endian   the last 8 bytes of the message
//! ```
//!
//! [`LavalinkBlob::decode`] accepts a blob only when it is exactly one such message; the
//! `details` are whatever lies between the source name and the position. Re-encoding a decoded
//! blob gives the same bytes except where Java's reader is laxer than its writer (an overlong
//! or raw-NUL text byte, a bool byte other than 0 and 1): callers that need the exact bytes back
//! compare (the track codec does, before it stores a blob as its parts).

use thiserror::Error;

/// The header flag saying a version byte follows (lavaplayer's `TRACK_INFO_VERSIONED`).
pub const TRACK_INFO_VERSIONED: u8 = 1;
/// The largest byte length of a Java `writeUTF` text.
pub const UTF_LEN_MAX: usize = u16::MAX as usize;
/// The message size field's bits (the rest of the header word are the flags).
const SIZE_MASK: u32 = (1 << 30) - 1;

/// Why bytes are not a Lavalink v2/v3 track blob, or a blob cannot be encoded.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum LavalinkBlobError {
    /// The bytes end before a field (`field` names it).
    #[error("the blob ends inside {field}")]
    Truncated {
        /// The field being read.
        field: &'static str,
    },
    /// The header's message size is not the number of bytes after it.
    #[error("the header's message size {size} is not the {actual} bytes after it")]
    SizeMismatch {
        /// The size the header gives.
        size: u32,
        /// The bytes after the header.
        actual: usize,
    },
    /// Not a versioned message of version 2 or 3.
    #[error("unsupported blob version (flags {flags}, version {version})")]
    UnsupportedVersion {
        /// The header's flags.
        flags: u8,
        /// The version byte (0 when the message is not versioned).
        version: u8,
    },
    /// A text is not (modified) UTF-8 that Rust can hold (`field` names it).
    #[error("{field} is not modified UTF-8")]
    BadText {
        /// The field.
        field: &'static str,
    },
    /// A text is longer than a Java `writeUTF` allows (`field` names it).
    #[error("{field} is {len} bytes of modified UTF-8, over {UTF_LEN_MAX}")]
    TextTooLong {
        /// The field.
        field: &'static str,
        /// Its modified UTF-8 length.
        len: usize,
    },
    /// A field the version cannot hold is set (artwork_url or isrc in version 2), or the flags
    /// or version are out of range.
    #[error("{0}")]
    Unrepresentable(&'static str),
}

/// One Lavalink track blob, decoded: every field of the message in its own type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LavalinkBlob {
    /// The header's two flag bits (always including [`TRACK_INFO_VERSIONED`]).
    pub flags: u8,
    /// The message version: 2 or 3.
    pub version: u8,
    /// The track title.
    pub title: String,
    /// The author.
    pub author: String,
    /// The length in milliseconds (a Java `long`, kept as its bits).
    pub length_ms: u64,
    /// The source's identifier.
    pub identifier: String,
    /// Whether the track is a live stream.
    pub is_stream: bool,
    /// The URI, if any.
    pub uri: Option<String>,
    /// The artwork URL (version 3).
    pub artwork_url: Option<String>,
    /// The ISRC (version 3).
    pub isrc: Option<String>,
    /// The source manager's name (`youtube`, `soundcloud`, `http`, ...).
    pub source: String,
    /// The source manager's own fields, as bytes.
    pub details: Vec<u8>,
    /// The position in milliseconds (a Java `long`, kept as its bits).
    pub position_ms: u64,
}

/// A reader over the message bytes.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], LavalinkBlobError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
            .ok_or(LavalinkBlobError::Truncated { field })?;
        let part = self.bytes.get(self.at..end).unwrap_or_default();
        self.at = end;
        Ok(part)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, LavalinkBlobError> {
        Ok(self.take(1, field)?.first().copied().unwrap_or(0))
    }

    fn u64(&mut self, field: &'static str) -> Result<u64, LavalinkBlobError> {
        let b = self.take(8, field)?;
        Ok(u64::from_be_bytes(b.try_into().unwrap_or([0; 8])))
    }

    fn bool(&mut self, field: &'static str) -> Result<bool, LavalinkBlobError> {
        Ok(self.u8(field)? != 0)
    }

    fn utf(&mut self, field: &'static str) -> Result<String, LavalinkBlobError> {
        let len = self.take(2, field)?;
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        decode_modified_utf8(self.take(len, field)?, field)
    }

    fn nullable_utf(&mut self, field: &'static str) -> Result<Option<String>, LavalinkBlobError> {
        if self.bool(field)? {
            self.utf(field).map(Some)
        } else {
            Ok(None)
        }
    }
}

/// Java's modified UTF-8 (`DataInput.readUTF`'s body) as a Rust string.
///
/// # Errors
/// [`LavalinkBlobError::BadText`] for malformed bytes and for an unpaired surrogate (which a
/// Java string may hold but a Rust one cannot).
pub fn decode_modified_utf8(
    bytes: &[u8],
    field: &'static str,
) -> Result<String, LavalinkBlobError> {
    let bad = || LavalinkBlobError::BadText { field };
    // Fast path: ASCII (Java's reader also takes a raw NUL byte as U+0000).
    if bytes.is_ascii() {
        return Ok(String::from_utf8_lossy(bytes).into_owned());
    }
    let mut units: Vec<u16> = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let cont = |k: usize| {
            bytes
                .get(i + k)
                .filter(|&&c| c & 0xC0 == 0x80)
                .map(|&c| u16::from(c & 0x3F))
        };
        let (unit, used) = match b >> 4 {
            0..=7 => (u16::from(b), 1),
            12 | 13 => ((u16::from(b & 0x1F) << 6) | cont(1).ok_or_else(bad)?, 2),
            14 => (
                (u16::from(b & 0x0F) << 12)
                    | (cont(1).ok_or_else(bad)? << 6)
                    | cont(2).ok_or_else(bad)?,
                3,
            ),
            _ => return Err(bad()),
        };
        units.push(unit);
        i += used;
    }
    String::from_utf16(&units).map_err(|_| bad())
}

/// Appends `text` as Java's `DataOutput.writeUTF` writes it (u16 big-endian length, then
/// modified UTF-8).
///
/// # Errors
/// [`LavalinkBlobError::TextTooLong`] when the encoding is over [`UTF_LEN_MAX`] bytes
/// (nothing is appended then).
pub fn write_utf(
    out: &mut Vec<u8>,
    text: &str,
    field: &'static str,
) -> Result<(), LavalinkBlobError> {
    let at = out.len();
    out.extend_from_slice(&[0, 0]);
    if text.is_ascii() && !text.as_bytes().contains(&0) {
        out.extend_from_slice(text.as_bytes());
    } else {
        for unit in text.encode_utf16() {
            match unit {
                1..=0x7F => out.push(unit as u8),
                0 | 0x80..=0x7FF => {
                    out.extend_from_slice(&[0xC0 | (unit >> 6) as u8, 0x80 | (unit & 0x3F) as u8]);
                }
                _ => out.extend_from_slice(&[
                    0xE0 | (unit >> 12) as u8,
                    0x80 | ((unit >> 6) & 0x3F) as u8,
                    0x80 | (unit & 0x3F) as u8,
                ]),
            }
        }
    }
    let len = out.len() - at - 2;
    let Ok(len16) = u16::try_from(len) else {
        out.truncate(at);
        return Err(LavalinkBlobError::TextTooLong { field, len });
    };
    out[at..at + 2].copy_from_slice(&len16.to_be_bytes());
    Ok(())
}

/// Appends a nullable text as lavaplayer's `DataFormatTools.writeNullableText` does.
fn write_nullable_utf(
    out: &mut Vec<u8>,
    text: Option<&str>,
    field: &'static str,
) -> Result<(), LavalinkBlobError> {
    out.push(u8::from(text.is_some()));
    text.map_or(Ok(()), |t| write_utf(out, t, field))
}

impl LavalinkBlob {
    /// Decodes a blob (the raw bytes, not the base64 text).
    ///
    /// # Errors
    /// A [`LavalinkBlobError`] when the bytes are not exactly one versioned message of version
    /// 2 or 3 (see the module docs).
    pub fn decode(bytes: &[u8]) -> Result<LavalinkBlob, LavalinkBlobError> {
        let mut r = Reader { bytes, at: 0 };
        let head = r.take(4, "header")?;
        let word = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let size = word & SIZE_MASK;
        let flags = (word >> 30) as u8;
        if size as usize != bytes.len() - 4 {
            return Err(LavalinkBlobError::SizeMismatch {
                size,
                actual: bytes.len() - 4,
            });
        }
        if flags & TRACK_INFO_VERSIONED == 0 {
            return Err(LavalinkBlobError::UnsupportedVersion { flags, version: 0 });
        }
        let version = r.u8("version")?;
        if !(2..=3).contains(&version) {
            return Err(LavalinkBlobError::UnsupportedVersion { flags, version });
        }
        let title = r.utf("title")?;
        let author = r.utf("author")?;
        let length_ms = r.u64("length")?;
        let identifier = r.utf("identifier")?;
        let is_stream = r.bool("isStream")?;
        let uri = r.nullable_utf("uri")?;
        let (artwork_url, isrc) = if version >= 3 {
            (r.nullable_utf("artworkUrl")?, r.nullable_utf("isrc")?)
        } else {
            (None, None)
        };
        let source = r.utf("sourceName")?;
        let rest = bytes.len() - r.at;
        let details = r
            .take(
                rest.checked_sub(8)
                    .ok_or(LavalinkBlobError::Truncated { field: "position" })?,
                "details",
            )?
            .to_vec();
        let position_ms = r.u64("position")?;
        Ok(LavalinkBlob {
            flags,
            version,
            title,
            author,
            length_ms,
            identifier,
            is_stream,
            uri,
            artwork_url,
            isrc,
            source,
            details,
            position_ms,
        })
    }

    /// Appends the blob's bytes to `out` (nothing is appended on an error).
    ///
    /// # Errors
    /// [`LavalinkBlobError::TextTooLong`] for a text over [`UTF_LEN_MAX`] bytes;
    /// [`LavalinkBlobError::Unrepresentable`] for flags without [`TRACK_INFO_VERSIONED`] (or
    /// above 3), a version other than 2 and 3, artwork_url or isrc in version 2, or a message
    /// over 1 GiB.
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), LavalinkBlobError> {
        let at = out.len();
        let result = self.write(out);
        if result.is_err() {
            out.truncate(at);
        }
        result
    }

    /// The blob's bytes.
    ///
    /// # Errors
    /// As [`LavalinkBlob::encode_into`].
    pub fn encode(&self) -> Result<Vec<u8>, LavalinkBlobError> {
        let mut out = Vec::with_capacity(64 + self.title.len() + self.details.len());
        self.encode_into(&mut out)?;
        Ok(out)
    }

    fn write(&self, out: &mut Vec<u8>) -> Result<(), LavalinkBlobError> {
        if self.flags & TRACK_INFO_VERSIONED == 0 || self.flags > 3 {
            return Err(LavalinkBlobError::Unrepresentable("flags must be 1 or 3"));
        }
        if !(2..=3).contains(&self.version) {
            return Err(LavalinkBlobError::Unrepresentable("version must be 2 or 3"));
        }
        if self.version == 2 && (self.artwork_url.is_some() || self.isrc.is_some()) {
            return Err(LavalinkBlobError::Unrepresentable(
                "version 2 holds no artwork_url or isrc",
            ));
        }
        let start = out.len();
        out.extend_from_slice(&[0; 4]);
        out.push(self.version);
        write_utf(out, &self.title, "title")?;
        write_utf(out, &self.author, "author")?;
        out.extend_from_slice(&self.length_ms.to_be_bytes());
        write_utf(out, &self.identifier, "identifier")?;
        out.push(u8::from(self.is_stream));
        write_nullable_utf(out, self.uri.as_deref(), "uri")?;
        if self.version >= 3 {
            write_nullable_utf(out, self.artwork_url.as_deref(), "artworkUrl")?;
            write_nullable_utf(out, self.isrc.as_deref(), "isrc")?;
        }
        write_utf(out, &self.source, "sourceName")?;
        out.extend_from_slice(&self.details);
        out.extend_from_slice(&self.position_ms.to_be_bytes());
        let size = u32::try_from(out.len() - start - 4)
            .ok()
            .filter(|&s| s <= SIZE_MASK)
            .ok_or(LavalinkBlobError::Unrepresentable("message over 1 GiB"))?;
        let word = size | (u32::from(self.flags) << 30);
        out[start..start + 4].copy_from_slice(&word.to_be_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use proptest::prelude::*;

    /// A real Lavalink v4 (lavaplayer 1.x, version 2) blob of a YouTube track, as published in
    /// the README of the `@lavalink/encoding` package.
    const REAL_V2: &str = "QAAAkwIANFNrcmlsbGV4ICYgSGFic3RyYWt0IC0gQ2hpY2tlbiBTb3VwIFtPZmZpY2lhbCBBdWRpb10ABU9XU0xBAAAAAAADLIAACzIyTVdyV1BWX1FNAAEAK2h0dHBzOi8vd3d3LnlvdXR1YmUuY29tL3dhdGNoP3Y9MjJNV3JXUFZfUU0AB3lvdXR1YmUAAAAAAAAAAA==";

    #[test]
    fn a_real_blob_decodes_and_encodes_back() {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(REAL_V2)
            .unwrap();
        let blob = LavalinkBlob::decode(&bytes).unwrap();
        assert_eq!(
            blob,
            LavalinkBlob {
                flags: 1,
                version: 2,
                title: "Skrillex & Habstrakt - Chicken Soup [Official Audio]".into(),
                author: "OWSLA".into(),
                length_ms: 208_000,
                identifier: "22MWrWPV_QM".into(),
                is_stream: false,
                uri: Some("https://www.youtube.com/watch?v=22MWrWPV_QM".into()),
                artwork_url: None,
                isrc: None,
                source: "youtube".into(),
                details: Vec::new(),
                position_ms: 0,
            }
        );
        assert_eq!(blob.encode().unwrap(), bytes);
        // The same track as version 3 (lavaplayer 2.x) with artwork: 4 bytes more than the
        // two `false` bytes plus the texts.
        let mut v3 = blob.clone();
        v3.version = 3;
        v3.artwork_url = Some("https://i.ytimg.com/vi/22MWrWPV_QM/mqdefault.jpg".into());
        let v3_bytes = v3.encode().unwrap();
        assert_eq!(v3_bytes.len(), bytes.len() + 1 + 2 + 48 + 1);
        assert_eq!(LavalinkBlob::decode(&v3_bytes).unwrap(), v3);
    }

    #[test]
    fn modified_utf8_matches_java() {
        let mut out = Vec::new();
        // U+0000 as C0 80; é as 2 bytes; 夜 as 3; 🎵 (U+1F3B5) as two 3-byte surrogates.
        write_utf(&mut out, "\0\u{e9}\u{591c}\u{1f3b5}", "t").unwrap();
        assert_eq!(
            out,
            [0, 13, 0xC0, 0x80, 0xC3, 0xA9, 0xE5, 0xA4, 0x9C, 0xED, 0xA0, 0xBC, 0xED, 0xBE, 0xB5]
        );
        assert_eq!(
            decode_modified_utf8(&out[2..], "t").unwrap(),
            "\0\u{e9}\u{591c}\u{1f3b5}"
        );
        // A 4-byte UTF-8 sequence and a lone surrogate are not readable; too long is refused.
        assert!(decode_modified_utf8(&[0xF0, 0x9F, 0x8E, 0xB5], "t").is_err());
        assert!(decode_modified_utf8(&[0xED, 0xA0, 0xBC], "t").is_err());
        assert!(decode_modified_utf8(&[0xC3], "t").is_err());
        let mut out = vec![7];
        assert!(matches!(
            write_utf(&mut out, &"\u{e9}".repeat(40_000), "t"),
            Err(LavalinkBlobError::TextTooLong { len: 80_000, .. })
        ));
        assert_eq!(out, [7]);
    }

    #[test]
    fn malformed_blobs_are_typed_errors() {
        let blob = LavalinkBlob::decode(
            &base64::engine::general_purpose::STANDARD
                .decode(REAL_V2)
                .unwrap(),
        )
        .unwrap();
        let bytes = blob.encode().unwrap();
        for cut in 0..bytes.len() {
            assert!(LavalinkBlob::decode(&bytes[..cut]).is_err(), "{cut}");
        }
        let mut long = bytes.clone();
        long.push(0);
        assert!(matches!(
            LavalinkBlob::decode(&long),
            Err(LavalinkBlobError::SizeMismatch { .. })
        ));
        let mut v4 = bytes.clone();
        v4[4] = 4;
        assert_eq!(
            LavalinkBlob::decode(&v4),
            Err(LavalinkBlobError::UnsupportedVersion {
                flags: 1,
                version: 4
            })
        );
        let mut unversioned = bytes;
        unversioned[0] &= 0x3F;
        assert!(LavalinkBlob::decode(&unversioned).is_err());
        let mut v2 = blob;
        v2.isrc = Some("GBARL9300135".into());
        assert!(v2.encode().is_err());
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[ -~]{0,40}",
            any::<String>().prop_map(|s| s.chars().take(30).collect()),
        ]
    }

    fn blob() -> impl Strategy<Value = LavalinkBlob> {
        (
            (
                prop_oneof![Just(1u8), Just(3u8)],
                2u8..=3,
                text(),
                text(),
                any::<u64>(),
            ),
            (text(), any::<bool>(), proptest::option::of(text())),
            (
                proptest::option::of(text()),
                proptest::option::of(text()),
                text(),
            ),
            (proptest::collection::vec(any::<u8>(), 0..20), any::<u64>()),
        )
            .prop_map(
                |(
                    (flags, version, title, author, length_ms),
                    (identifier, is_stream, uri),
                    (artwork_url, isrc, source),
                    (details, position_ms),
                )| {
                    let v3 = version == 3;
                    LavalinkBlob {
                        flags,
                        version,
                        title,
                        author,
                        length_ms,
                        identifier,
                        is_stream,
                        uri,
                        artwork_url: artwork_url.filter(|_| v3),
                        isrc: isrc.filter(|_| v3),
                        source,
                        details,
                        position_ms,
                    }
                },
            )
    }

    proptest! {
        /// Every representable blob encodes, decodes to itself and encodes to the same bytes.
        #[test]
        fn blobs_round_trip(blob in blob()) {
            let bytes = blob.encode().unwrap();
            let back = LavalinkBlob::decode(&bytes).unwrap();
            prop_assert_eq!(&back, &blob);
            prop_assert_eq!(back.encode().unwrap(), bytes);
        }

        /// Any bytes: decoding never panics, and whatever decodes encodes without error.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(blob) = LavalinkBlob::decode(&bytes) {
                prop_assert!(blob.encode().is_ok());
            }
        }
    }
}

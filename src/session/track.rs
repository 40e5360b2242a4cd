//! [`Track`]: one playable track, as a bot got it from Lavalink.

use serde::{Deserialize, Serialize};

use super::limits::{ENCODED_LEN_MAX, TEXT_LEN_MAX};
use super::EventError;

/// One track: the Lavalink `encoded` blob that replays it, plus the metadata a bot shows.
///
/// JSON form (contract §1): `encoded` and `title` are required; every other field is optional and
/// unknown fields are rejected. The optional fields are kept as [`Option`] so that what was absent
/// stays absent through the binary form and back (`"author": null` reads as absent); the accessor
/// methods give the contract's defaults (empty / 0 / false / true / absent).
///
/// Binary form: the fields in declaration order, except `encoded`, which is stored as its raw
/// bytes when it is canonical standard base64 (tag 1: three quarters of the size, and what the
/// blob really is) and as text otherwise (tag 0), so the JSON form round-trips exactly.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Track {
    /// The Lavalink base64 track blob (`track.encoded` in a Lavalink player update).
    pub encoded: String,
    /// The display title.
    pub title: String,
    /// The artist or uploader; absent means empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Where the track came from (a web URL); absent means unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// The source's own identifier (a YouTube video id, ...); absent means empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifier: Option<String>,
    /// Duration in milliseconds; absent means 0 (unknown, or a stream).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length_ms: Option<u64>,
    /// Whether this is a live stream; absent means false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_stream: Option<bool>,
    /// Whether the track supports seeking; absent means true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_seekable: Option<bool>,
    /// The Lavalink source name (`youtube`, `soundcloud`, ...); absent means unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// Tag of an `encoded` blob stored as text.
const BLOB_TEXT: u8 = 0;
/// Tag of an `encoded` blob stored as the bytes of canonical standard base64.
const BLOB_BASE64: u8 = 1;

impl bincode::Encode for Track {
    fn encode<E: bincode::enc::Encoder>(
        &self,
        encoder: &mut E,
    ) -> Result<(), bincode::error::EncodeError> {
        use base64::Engine as _;
        let engine = &base64::engine::general_purpose::STANDARD;
        // STANDARD requires canonical padding and rejects non-zero trailing bits, so text that
        // decodes is exactly what the bytes re-encode to (tested below).
        match engine.decode(&self.encoded) {
            Ok(bytes) => {
                BLOB_BASE64.encode(encoder)?;
                bytes.encode(encoder)?;
            }
            _ => {
                BLOB_TEXT.encode(encoder)?;
                self.encoded.encode(encoder)?;
            }
        }
        self.title.encode(encoder)?;
        self.author.encode(encoder)?;
        self.uri.encode(encoder)?;
        self.identifier.encode(encoder)?;
        self.length_ms.encode(encoder)?;
        self.is_stream.encode(encoder)?;
        self.is_seekable.encode(encoder)?;
        self.source.encode(encoder)
    }
}

impl<Context> bincode::Decode<Context> for Track {
    fn decode<D: bincode::de::Decoder<Context = Context>>(
        decoder: &mut D,
    ) -> Result<Self, bincode::error::DecodeError> {
        use base64::Engine as _;
        let encoded = match u8::decode(decoder)? {
            BLOB_TEXT => String::decode(decoder)?,
            BLOB_BASE64 => {
                let bytes = Vec::<u8>::decode(decoder)?;
                base64::engine::general_purpose::STANDARD.encode(bytes)
            }
            tag => {
                return Err(bincode::error::DecodeError::OtherString(format!(
                    "unknown track blob tag {tag}"
                )))
            }
        };
        Ok(Track {
            encoded,
            title: String::decode(decoder)?,
            author: Option::decode(decoder)?,
            uri: Option::decode(decoder)?,
            identifier: Option::decode(decoder)?,
            length_ms: Option::decode(decoder)?,
            is_stream: Option::decode(decoder)?,
            is_seekable: Option::decode(decoder)?,
            source: Option::decode(decoder)?,
        })
    }
}

impl<'de, Context> bincode::BorrowDecode<'de, Context> for Track {
    /// The same layout as [`bincode::Decode`], but the blob's bytes are borrowed from the input
    /// and encoded to text directly (replay decodes every logged track this way).
    fn borrow_decode<D: bincode::de::BorrowDecoder<'de, Context = Context>>(
        decoder: &mut D,
    ) -> Result<Self, bincode::error::DecodeError> {
        use base64::Engine as _;
        let encoded = match u8::borrow_decode(decoder)? {
            BLOB_TEXT => String::borrow_decode(decoder)?,
            BLOB_BASE64 => {
                let bytes = <&[u8]>::borrow_decode(decoder)?;
                base64::engine::general_purpose::STANDARD.encode(bytes)
            }
            tag => {
                return Err(bincode::error::DecodeError::OtherString(format!(
                    "unknown track blob tag {tag}"
                )))
            }
        };
        Ok(Track {
            encoded,
            title: String::borrow_decode(decoder)?,
            author: Option::borrow_decode(decoder)?,
            uri: Option::borrow_decode(decoder)?,
            identifier: Option::borrow_decode(decoder)?,
            length_ms: Option::borrow_decode(decoder)?,
            is_stream: Option::borrow_decode(decoder)?,
            is_seekable: Option::borrow_decode(decoder)?,
            source: Option::borrow_decode(decoder)?,
        })
    }
}

impl Track {
    /// A track with only the two required fields set.
    pub fn new(encoded: impl Into<String>, title: impl Into<String>) -> Track {
        Track {
            encoded: encoded.into(),
            title: title.into(),
            author: None,
            uri: None,
            identifier: None,
            length_ms: None,
            is_stream: None,
            is_seekable: None,
            source: None,
        }
    }

    /// The author, or `""` when absent.
    pub fn author(&self) -> &str {
        self.author.as_deref().unwrap_or("")
    }

    /// The URI, if known.
    pub fn uri(&self) -> Option<&str> {
        self.uri.as_deref()
    }

    /// The source identifier, or `""` when absent.
    pub fn identifier(&self) -> &str {
        self.identifier.as_deref().unwrap_or("")
    }

    /// The duration in milliseconds, or 0 when absent.
    pub fn length_ms(&self) -> u64 {
        self.length_ms.unwrap_or(0)
    }

    /// Whether the track is a live stream (false when absent).
    pub fn is_stream(&self) -> bool {
        self.is_stream.unwrap_or(false)
    }

    /// Whether the track supports seeking (true when absent).
    pub fn is_seekable(&self) -> bool {
        self.is_seekable.unwrap_or(true)
    }

    /// The Lavalink source name, if known.
    pub fn source(&self) -> Option<&str> {
        self.source.as_deref()
    }

    /// Checks the track's own bounds: `encoded` and `title` non-empty, every text field within
    /// its byte limit. `field` names the track in errors (e.g. `tracks[3]`).
    ///
    /// # Errors
    /// [`EventError::Empty`] or [`EventError::TooLong`], naming the offending field.
    pub fn validate(&self, field: &str) -> Result<(), EventError> {
        self.validate_with(&|| field.to_owned())
    }

    /// [`Track::validate`] with the field path built only when there is an error (the replay
    /// path validates every logged track).
    ///
    /// # Errors
    /// As [`Track::validate`].
    pub fn validate_with(&self, field: &dyn Fn() -> String) -> Result<(), EventError> {
        check_text(field, "encoded", &self.encoded, ENCODED_LEN_MAX, true)?;
        check_text(field, "title", &self.title, TEXT_LEN_MAX, true)?;
        let optional = [
            ("author", &self.author),
            ("uri", &self.uri),
            ("identifier", &self.identifier),
            ("source", &self.source),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                check_text(field, name, value, TEXT_LEN_MAX, false)?;
            }
        }
        Ok(())
    }
}

/// Checks one text field of a track: non-empty when `required`, at most `max` bytes.
fn check_text(
    track: &dyn Fn() -> String,
    name: &str,
    value: &str,
    max: usize,
    required: bool,
) -> Result<(), EventError> {
    if required && value.is_empty() {
        return Err(EventError::Empty {
            field: format!("{}.{name}", track()),
        });
    }
    if value.len() > max {
        return Err(EventError::TooLong {
            field: format!("{}.{name}", track()),
            len: value.len(),
            max,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accessors_give_contract_defaults() {
        let track = Track::new("QAAA", "Song");
        assert_eq!(track.author(), "");
        assert_eq!(track.uri(), None);
        assert_eq!(track.identifier(), "");
        assert_eq!(track.length_ms(), 0);
        assert!(!track.is_stream());
        assert!(track.is_seekable());
        assert_eq!(track.source(), None);
    }

    #[test]
    fn json_keeps_absent_fields_absent() {
        let json = r#"{"encoded":"QAAA","title":"Song","length_ms":0,"is_seekable":false}"#;
        let track: Track = serde_json::from_str(json).unwrap();
        assert_eq!(track.length_ms, Some(0));
        assert!(!track.is_seekable());
        assert_eq!(serde_json::to_string(&track).unwrap(), json);
    }

    #[test]
    fn json_full_track_round_trips() {
        let json = r#"{"encoded":"QAAAjQIAJVJpY2sg","title":"Never Gonna Give You Up","author":"Rick Astley","uri":"https://youtube.com/watch?v=dQw4w9WgXcQ","identifier":"dQw4w9WgXcQ","length_ms":213000,"is_stream":false,"is_seekable":true,"source":"youtube"}"#;
        let track: Track = serde_json::from_str(json).unwrap();
        assert_eq!(track.author(), "Rick Astley");
        assert_eq!(track.length_ms(), 213_000);
        assert_eq!(serde_json::to_string(&track).unwrap(), json);
    }

    #[test]
    fn json_rejects_unknown_and_missing_fields() {
        assert!(
            serde_json::from_str::<Track>(r#"{"encoded":"a","title":"b","length":1}"#).is_err()
        );
        assert!(serde_json::from_str::<Track>(r#"{"encoded":"a"}"#).is_err());
        assert!(serde_json::from_str::<Track>(r#"{"title":"b"}"#).is_err());
    }

    #[test]
    fn null_optional_reads_as_absent() {
        let track: Track =
            serde_json::from_str(r#"{"encoded":"a","title":"b","author":null}"#).unwrap();
        assert_eq!(track.author, None);
    }

    #[test]
    fn validate_checks_required_and_lengths() {
        assert_eq!(Track::new("a", "b").validate("t"), Ok(()));
        assert_eq!(
            Track::new("", "b").validate("tracks[0]"),
            Err(EventError::Empty {
                field: "tracks[0].encoded".into()
            })
        );
        assert_eq!(
            Track::new("a", "").validate("tracks[2]"),
            Err(EventError::Empty {
                field: "tracks[2].title".into()
            })
        );
        let mut long = Track::new("a", "b");
        long.author = Some("x".repeat(TEXT_LEN_MAX + 1));
        assert_eq!(
            long.validate("tracks[1]"),
            Err(EventError::TooLong {
                field: "tracks[1].author".into(),
                len: TEXT_LEN_MAX + 1,
                max: TEXT_LEN_MAX
            })
        );
        let blob = Track::new("e".repeat(ENCODED_LEN_MAX + 1), "b");
        assert!(matches!(
            blob.validate("t"),
            Err(EventError::TooLong { .. })
        ));
        // An empty optional text is allowed (it is just empty, like its default).
        let mut empty_author = Track::new("a", "b");
        empty_author.author = Some(String::new());
        assert_eq!(empty_author.validate("t"), Ok(()));
    }

    #[test]
    fn encoded_blob_round_trips_as_bytes_or_text() {
        let config = bincode::config::standard();
        for blob in [
            "QAAAjQIAJVJpY2sg",
            "QAAAjQIAJVJpY2s=",
            "QAAAjQIAJVJpY2t=",
            "QQ",
            "QR==",
            "QQ==",
            "QQ=",
            "not base64!",
            "",
            "QUJD\n",
            "QUJD\r\n",
            " QUJD",
        ] {
            let t = Track::new(blob, "t");
            let bytes = bincode::encode_to_vec(&t, config).unwrap();
            let (back, used): (Track, usize) = bincode::decode_from_slice(&bytes, config).unwrap();
            assert_eq!((back, used), (t, bytes.len()), "{blob}");
        }
        // Canonical base64 is stored in three quarters of the space.
        let long = Track::new("QUJD".repeat(50), "t");
        let text = Track::new("QUJD".repeat(50) + "!", "t");
        let a = bincode::encode_to_vec(&long, config).unwrap().len();
        let b = bincode::encode_to_vec(&text, config).unwrap().len();
        assert!(a * 4 < b * 3 + 16, "{a} vs {b}");
        // An unknown tag is a decode error, not a panic.
        let mut bad = bincode::encode_to_vec(&long, config).unwrap();
        bad[0] = 7;
        assert!(bincode::decode_from_slice::<Track, _>(&bad, config).is_err());
    }
}

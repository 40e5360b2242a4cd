//! A [`Track`] whose blob is a Lavalink track blob repeating the track's own fields is stored
//! as the blob's *rest*: what the blob holds besides those fields. See [`Track`] for where the
//! rest goes in the binary form; its own layout:
//!
//! ```text
//! head     u8      bits 0-1: the blob header's flags, bit 2: version 3 (else version 2);
//!                  bits 3-7: 0
//! differ   varint  (u16) bit i: blob field i differs from the track's and is held below:
//!                  0 title, 1 author, 2 length, 3 identifier, 4 is_stream, 5 uri,
//!                  6 artwork_url, 7 isrc (version 3 only), 8 source
//! values   bincode of each differing field, in that order (String, u64, bool, Option<String>)
//! position varint  (u64) the blob's position
//! details  bytes   the rest: the source manager's own fields
//! ```
//!
//! A field the blob holds is compared with the track's value as its accessor gives it (an
//! absent author is `""`, an absent length 0, ...; an absent source never equals the blob's).
//! Decoding rebuilds the blob from the rest and the track's fields: the exact bytes, because a
//! blob is stored this way only when re-encoding its decoded fields gave its bytes back.

use bincode::error::DecodeError;

use super::{invalid, Track};
use crate::session::lavalink_blob::{LavalinkBlob, TRACK_INFO_VERSIONED};

/// `head`: version 3.
const HEAD_V3: u8 = 1 << 2;
/// `differ` bits, one per blob field.
const TITLE: u16 = 1;
const AUTHOR: u16 = 1 << 1;
const LENGTH: u16 = 1 << 2;
const IDENTIFIER: u16 = 1 << 3;
const STREAM: u16 = 1 << 4;
const URI: u16 = 1 << 5;
const ARTWORK_URL: u16 = 1 << 6;
const ISRC: u16 = 1 << 7;
const SOURCE: u16 = 1 << 8;
/// Every `differ` bit.
const DIFFER_ALL: u16 = (1 << 9) - 1;

/// The bincode configuration of the rest (the crate's one: standard).
fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Appends the bincode of `value` (writing to a `Vec` cannot fail).
fn put<T: bincode::Encode>(out: &mut Vec<u8>, value: &T) {
    let _ = bincode::encode_into_std_write(value, out, config());
}

/// Appends the bincode of `value` when `bit` is set in `differ`.
fn put_if<T: bincode::Encode>(out: &mut Vec<u8>, differ: u16, bit: u16, value: &T) {
    if differ & bit != 0 {
        put(out, value);
    }
}

/// The blob's fields as the track gives them: what a blob repeating the track would hold.
struct Own<'a> {
    title: &'a str,
    author: &'a str,
    length_ms: u64,
    identifier: &'a str,
    is_stream: bool,
    uri: Option<&'a str>,
    artwork_url: Option<&'a str>,
    isrc: Option<&'a str>,
    source: Option<&'a str>,
}

impl<'a> Own<'a> {
    fn of(track: &'a Track) -> Own<'a> {
        let (artwork_url, isrc, _, _) = track.extra_parts();
        Own {
            title: track.title(),
            author: track.author(),
            length_ms: track.length_ms(),
            identifier: track.identifier(),
            is_stream: track.is_stream(),
            uri: track.uri(),
            artwork_url,
            isrc,
            source: track.source(),
        }
    }
}

/// The rest of `track`'s blob when the blob is a Lavalink v2/v3 blob that re-encodes to its
/// exact bytes and the rest is shorter than the blob; `None` otherwise (store the blob raw).
pub(crate) fn blob_rest(track: &Track) -> Option<Vec<u8>> {
    let bytes = track.encoded_bytes()?;
    let blob = LavalinkBlob::decode(bytes).ok()?;
    if blob.encode().ok()? != bytes {
        return None;
    }
    let own = Own::of(track);
    let v3 = blob.version == 3;
    let differ = [
        (blob.title != own.title, TITLE),
        (blob.author != own.author, AUTHOR),
        (blob.length_ms != own.length_ms, LENGTH),
        (blob.identifier != own.identifier, IDENTIFIER),
        (blob.is_stream != own.is_stream, STREAM),
        (blob.uri.as_deref() != own.uri, URI),
        (
            v3 && blob.artwork_url.as_deref() != own.artwork_url,
            ARTWORK_URL,
        ),
        (v3 && blob.isrc.as_deref() != own.isrc, ISRC),
        (Some(blob.source.as_str()) != own.source, SOURCE),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .fold(0u16, |bits, (_, bit)| bits | bit);
    let mut rest = Vec::with_capacity(16 + blob.details.len());
    rest.push(blob.flags | if v3 { HEAD_V3 } else { 0 });
    put(&mut rest, &differ);
    // The differing fields, in the blob's order.
    put_if(&mut rest, differ, TITLE, &blob.title);
    put_if(&mut rest, differ, AUTHOR, &blob.author);
    put_if(&mut rest, differ, LENGTH, &blob.length_ms);
    put_if(&mut rest, differ, IDENTIFIER, &blob.identifier);
    put_if(&mut rest, differ, STREAM, &blob.is_stream);
    put_if(&mut rest, differ, URI, &blob.uri);
    put_if(&mut rest, differ, ARTWORK_URL, &blob.artwork_url);
    put_if(&mut rest, differ, ISRC, &blob.isrc);
    put_if(&mut rest, differ, SOURCE, &blob.source);
    put(&mut rest, &blob.position_ms);
    rest.extend_from_slice(&blob.details);
    (rest.len() < bytes.len()).then_some(rest)
}

/// Reads one bincode value of the rest at `*at`, moving past it. Borrowed: a text is a slice
/// of the rest, so a length read from the rest is checked against the bytes there before
/// anything is allocated.
fn take<'a, T: bincode::BorrowDecode<'a, ()>>(
    rest: &'a [u8],
    at: &mut usize,
) -> Result<T, DecodeError> {
    let (value, used) =
        bincode::borrow_decode_from_slice(rest.get(*at..).unwrap_or_default(), config())?;
    *at += used;
    Ok(value)
}

/// The blob that `rest` (the bytes where `track` holds its blob) and `track`'s fields stand for.
pub(super) fn rebuild_blob(rest: &[u8], track: &Track) -> Result<Vec<u8>, DecodeError> {
    let head = *rest.first().ok_or_else(|| invalid("empty blob rest"))?;
    if head & !(3 | HEAD_V3) != 0 || head & TRACK_INFO_VERSIONED == 0 {
        return Err(invalid("unknown blob rest head bits"));
    }
    let v3 = head & HEAD_V3 != 0;
    let mut at = 1;
    let differ: u16 = take(rest, &mut at)?;
    if differ & !DIFFER_ALL != 0 || (!v3 && differ & (ARTWORK_URL | ISRC) != 0) {
        return Err(invalid("unknown blob rest field bits"));
    }
    let own = Own::of(track);
    let on = |bit: u16| differ & bit != 0;
    let text = |rest: &[u8], at: &mut usize, bit: u16, own: &str| -> Result<String, DecodeError> {
        if on(bit) {
            take::<&str>(rest, at).map(str::to_owned)
        } else {
            Ok(own.to_owned())
        }
    };
    let nullable = |rest: &[u8],
                    at: &mut usize,
                    bit: u16,
                    own: Option<&str>|
     -> Result<Option<String>, DecodeError> {
        if on(bit) {
            take::<Option<&str>>(rest, at).map(|t| t.map(str::to_owned))
        } else {
            Ok(own.map(str::to_owned))
        }
    };
    let title = text(rest, &mut at, TITLE, own.title)?;
    let author = text(rest, &mut at, AUTHOR, own.author)?;
    let length_ms = if on(LENGTH) {
        take(rest, &mut at)?
    } else {
        own.length_ms
    };
    let identifier = text(rest, &mut at, IDENTIFIER, own.identifier)?;
    let is_stream = if on(STREAM) {
        take(rest, &mut at)?
    } else {
        own.is_stream
    };
    let uri = nullable(rest, &mut at, URI, own.uri)?;
    let (artwork_url, isrc) = if v3 {
        (
            nullable(rest, &mut at, ARTWORK_URL, own.artwork_url)?,
            nullable(rest, &mut at, ISRC, own.isrc)?,
        )
    } else {
        (None, None)
    };
    let source = if on(SOURCE) {
        take::<&str>(rest, &mut at)?.to_owned()
    } else {
        own.source
            .ok_or_else(|| invalid("blob rest without a source"))?
            .to_owned()
    };
    let position_ms = take(rest, &mut at)?;
    let blob = LavalinkBlob {
        flags: head & 3,
        version: if v3 { 3 } else { 2 },
        title,
        author,
        length_ms,
        identifier,
        is_stream,
        uri,
        artwork_url,
        isrc,
        source,
        details: rest.get(at..).unwrap_or_default().to_vec(),
        position_ms,
    };
    blob.encode()
        .map_err(|e| invalid(&format!("blob rest does not encode: {e}")))
}

#[cfg(test)]
mod tests {
    use super::super::{PRESENT_BLOB_PARTS, PRESENT_EXTRA};
    use super::*;
    use crate::session::{lavalink_encoded, TrackFields};
    use proptest::prelude::*;

    /// The form of a state's track (a Lavalink blob as its rest when it pays).
    fn encode(track: &Track) -> Vec<u8> {
        bincode::encode_to_vec(super::super::TrackWithBlobRest(track), config()).unwrap()
    }

    /// Both decoders; they must agree, and when they succeed the whole input is used.
    fn decode(bytes: &[u8]) -> Result<Track, DecodeError> {
        let owned = bincode::decode_from_slice::<Track, _>(bytes, config());
        let borrowed = bincode::borrow_decode_from_slice::<Track, _>(bytes, config());
        assert_eq!(
            owned.as_ref().map(|t| t.1).ok(),
            borrowed.as_ref().map(|t| t.1).ok()
        );
        borrowed.map(|(t, _)| t)
    }

    /// The binary form the code before blob parts wrote: the blob raw, bit 7 never set.
    fn old_form(track: &Track) -> Vec<u8> {
        let mut out = Vec::new();
        put(&mut out, &track.present);
        put(&mut out, &(track.flags & super::super::FLAGS_ALL));
        if let Some(length_ms) = track.length_given() {
            put(&mut out, &length_ms);
        }
        let mut start = 0u32;
        for (i, &end) in track.ends.iter().enumerate() {
            if super::super::part_stored(track.present, i) {
                put(&mut out, &end.saturating_sub(start));
            }
            start = end;
        }
        // The texts, also when the track reads them from its blob.
        let own: Vec<u8> = (0..=5).flat_map(|i| track.part(i)).copied().collect();
        put(&mut out, &own);
        if track.present & PRESENT_EXTRA != 0 {
            put(&mut out, &track.extra_bytes().to_vec());
        }
        out
    }

    fn full_fields() -> TrackFields {
        TrackFields {
            author: Some("Sigur R\u{f3}s".into()),
            uri: Some("https://www.youtube.com/watch?v=MyNhTOKc-Ow".into()),
            identifier: Some("MyNhTOKc-Ow".into()),
            length_ms: Some(353_734),
            is_stream: Some(false),
            is_seekable: Some(true),
            source: Some("youtube".into()),
            artwork_url: Some("https://i.ytimg.com/vi/MyNhTOKc-Ow/hqdefault.jpg".into()),
            ..TrackFields::new("", "Never Emoji \u{1f3b5} More Live \u{591c}")
        }
    }

    #[test]
    fn a_blob_repeating_its_track_is_stored_as_a_few_bytes() {
        for version in [2, 3] {
            let mut fields = full_fields();
            fields.encoded = lavalink_encoded(&fields, version, 0);
            let track = Track::from(&fields);
            let blob_len = track.encoded_bytes().unwrap().len();
            let bytes = encode(&track);
            assert_eq!(bytes[0] & PRESENT_BLOB_PARTS, PRESENT_BLOB_PARTS);
            let old = old_form(&track);
            // The form of events (the log) keeps the blob raw: the old form.
            assert_eq!(bincode::encode_to_vec(&track, config()).unwrap(), old);
            // The rest is 3 bytes (head, differ 0, position 0) in the blob's place (the
            // lengths' varints may shrink too).
            let rest_form = bytes.len() + blob_len - 3;
            assert!(
                rest_form <= old.len() && old.len() <= rest_form + 4,
                "version {version}"
            );
            let back = decode(&bytes).unwrap();
            assert_eq!(back, track);
            assert_eq!(back.encoded(), fields.encoded);
            assert_eq!(back.fields(), fields);
            // The old form (the blob raw) still decodes to the same track.
            assert_eq!(old[0] & PRESENT_BLOB_PARTS, 0);
            assert_eq!(decode(&old).unwrap(), track);
        }
    }

    #[test]
    fn fields_that_differ_from_the_blob_are_held_in_the_rest() {
        // What a Sonora import gives: no source, no is_stream, no artwork; the blob has them.
        let mut fields = full_fields();
        fields.encoded = lavalink_encoded(&fields, 3, 12_345);
        fields.source = None;
        fields.is_stream = None;
        fields.artwork_url = None;
        fields.author = None;
        fields.title = "Another title".into();
        let track = Track::from(&fields);
        let bytes = encode(&track);
        assert_eq!(bytes[0] & PRESENT_BLOB_PARTS, PRESENT_BLOB_PARTS);
        assert!(bytes.len() < old_form(&track).len());
        let back = decode(&bytes).unwrap();
        assert_eq!(back.fields(), fields);
        assert_eq!(back, track);
    }

    #[test]
    fn blobs_that_do_not_re_encode_exactly_are_stored_raw() {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut fields = full_fields();
        let good = b64.decode(lavalink_encoded(&fields, 2, 0)).unwrap();
        let title_len = usize::from(u16::from_be_bytes([good[5], good[6]]));
        let stream_at = 5 + 2 + title_len + 2 + "Sigur R\u{f3}s".len() + 8 + 2 + 11;
        assert_eq!(good[stream_at], 0);
        let mut cases = Vec::new();
        // isStream written as 2 (Java reads it as true; it writes 1).
        let mut bad = good.clone();
        bad[stream_at] = 2;
        cases.push(bad);
        // A trailing byte after the message; a cut one; random bytes; an unversioned header.
        let mut long = good.clone();
        long.push(0);
        cases.push(long);
        cases.push(good[..good.len() - 1].to_vec());
        cases.push((0..120u8).collect());
        let mut unversioned = good.clone();
        unversioned[0] &= 0x3F;
        cases.push(unversioned);
        for blob in cases {
            fields.encoded = b64.encode(&blob);
            let track = Track::from(&fields);
            let bytes = encode(&track);
            assert_eq!(bytes[0] & PRESENT_BLOB_PARTS, 0);
            assert_eq!(bytes, old_form(&track));
            assert_eq!(decode(&bytes).unwrap().encoded(), fields.encoded);
        }
        // A blob as text (not canonical base64) is never taken apart.
        fields.encoded = b64.encode(&good) + "\n";
        let track = Track::from(&fields);
        assert_eq!(encode(&track)[0] & PRESENT_BLOB_PARTS, 0);
    }

    #[test]
    fn workload_tracks_round_trip_and_shrink() {
        let mut rng = crate::session::Rng::new(11);
        let (mut parts, mut new_len, mut old_len) = (0, 0, 0);
        for n in 1..=2000 {
            let track = crate::session::track(&mut rng, n);
            let bytes = encode(&track);
            parts += usize::from(bytes[0] & PRESENT_BLOB_PARTS != 0);
            new_len += bytes.len();
            old_len += old_form(&track).len();
            let back = decode(&bytes).unwrap();
            assert_eq!(back, track);
            assert_eq!(back.encoded(), track.encoded());
        }
        // Three in four carry a Lavalink blob; every one of those is taken apart.
        assert!((1400..1600).contains(&parts), "{parts}");
        assert!(new_len * 10 < old_len * 7, "{new_len} vs {old_len}");
    }

    #[test]
    fn damaged_rests_are_errors_or_stable_tracks() {
        let mut fields = full_fields();
        fields.encoded = lavalink_encoded(&fields, 3, 7);
        let bytes = encode(&Track::from(&fields));
        for at in 0..bytes.len() {
            for value in [0u8, 1, 3, 4, 7, 0x7F, 0x80, 0xFB, 0xFF] {
                let mut bad = bytes.clone();
                bad[at] = value;
                if let Ok(track) = decode(&bad) {
                    let again = encode(&track);
                    assert_eq!(decode(&again).unwrap(), track, "{at} {value}");
                }
            }
        }
        // A head without the versioned flag, unknown differ bits, no source anywhere.
        let track = Track::from(&fields);
        assert!(rebuild_blob(&[0, 0, 7], &track).is_err());
        assert!(rebuild_blob(&[1, 0xFB, 0, 2, 7], &track).is_err());
        assert!(
            rebuild_blob(&[1, 1 << 6, 0, 7], &track).is_err(),
            "artwork in v2"
        );
        let mut sourceless = fields.clone();
        sourceless.source = None;
        assert!(rebuild_blob(&[5, 0, 7], &Track::from(&sourceless)).is_err());
        assert!(rebuild_blob(&[5, 0, 7], &track).is_ok());
        assert!(rebuild_blob(&[], &track).is_err());
        // A text length read from the rest is never trusted (found by the fuzzer: a huge one
        // was allocated before it was checked).
        let huge = [
            1, 1, 0xFD, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F, 0,
        ];
        assert!(rebuild_blob(&huge, &track).is_err());
    }

    proptest! {
        /// Any track with a Lavalink blob of any version, flags, position and details, with
        /// fields equal to the blob's or not: the binary form round-trips exactly.
        #[test]
        fn tracks_with_lavalink_blobs_round_trip(
            version in 2u8..=3,
            flags in prop_oneof![Just(1u8), Just(3u8)],
            position in any::<u64>(),
            details in proptest::collection::vec(any::<u8>(), 0..12),
            mask in any::<u16>(),
            title in "\\PC{1,20}",
            author in proptest::option::of("\\PC{0,12}"),
            length in proptest::option::of(any::<u64>()),
        ) {
            use base64::Engine as _;
            let mut fields = full_fields();
            fields.author = author;
            fields.length_ms = length;
            let mut blob = crate::session::lavalink_blob_of(&fields, version, position);
            blob.flags = flags;
            blob.details = details;
            fields.encoded = base64::engine::general_purpose::STANDARD.encode(blob.encode().unwrap());
            let on = |bit: u16| mask & bit != 0;
            if on(TITLE) { fields.title = title; }
            if on(SOURCE) { fields.source = None; }
            if on(URI) { fields.uri = None; }
            if on(STREAM) { fields.is_stream = Some(true); }
            if on(ARTWORK_URL) { fields.artwork_url = None; }
            if on(ISRC) { fields.isrc = Some("GBARL9300135".into()); }
            if on(IDENTIFIER) { fields.identifier = None; }
            let track = Track::from(&fields);
            let bytes = encode(&track);
            let back = decode(&bytes).unwrap();
            prop_assert_eq!(back.fields(), fields);
            prop_assert_eq!(&back, &track);
            prop_assert_eq!(encode(&back), bytes);
        }
    }
}

//! Realistic Lavalink `encoded` blobs: what Lavalink v4 sends with a track, built from the
//! track's own fields in Lavalink's binary track format ([`LavalinkBlob`]).

use crate::session::lavalink_blob::{LavalinkBlob, TRACK_INFO_VERSIONED};
use crate::session::TrackFields;

/// What lavaplayer records as the length of a live stream (`DURATION_MS_UNKNOWN`,
/// `Long.MAX_VALUE`).
pub const STREAM_LENGTH_MS: u64 = i64::MAX as u64;

/// The Lavalink blob Lavalink would send with `fields`: version 3 (lavaplayer 2.x, with
/// `artworkUrl` and `isrc`) or 2 (lavaplayer 1.x), the track's fields with Lavalink's values
/// for what is absent (`""`, `false`, 0, a stream's length as [`STREAM_LENGTH_MS`]), the source
/// named by the field or else by the URI's host, and `position_ms`.
pub fn lavalink_blob_of(fields: &TrackFields, version: u8, position_ms: u64) -> LavalinkBlob {
    let v3 = version >= 3;
    let is_stream = fields.is_stream.unwrap_or(false);
    let length_ms = match fields.length_ms.unwrap_or(0) {
        0 if is_stream => STREAM_LENGTH_MS,
        n => n,
    };
    let source = fields.source.clone().unwrap_or_else(|| {
        let uri = fields.uri.as_deref().unwrap_or("");
        if uri.contains("soundcloud.com") {
            "soundcloud"
        } else if uri.contains("twitch.tv") {
            "twitch"
        } else if uri.contains("youtube.com") {
            "youtube"
        } else {
            "http"
        }
        .to_owned()
    });
    // lavaplayer's HttpAudioSourceManager writes the container probe's name and its
    // parameters (a nullable text) after the source name.
    let details = if source == "http" {
        let mut details = Vec::new();
        let _ = crate::session::lavalink_blob::write_utf(&mut details, "mp3", "probe");
        details.push(0);
        details
    } else {
        Vec::new()
    };
    LavalinkBlob {
        flags: TRACK_INFO_VERSIONED,
        version: if v3 { 3 } else { 2 },
        title: fields.title.clone(),
        author: fields.author.clone().unwrap_or_default(),
        length_ms,
        identifier: fields.identifier.clone().unwrap_or_default(),
        is_stream,
        uri: fields.uri.clone(),
        artwork_url: fields.artwork_url.clone().filter(|_| v3),
        isrc: fields.isrc.clone().filter(|_| v3),
        source,
        details,
        position_ms,
    }
}

/// Standard base64 of [`lavalink_blob_of`]'s bytes: the `encoded` text Lavalink would send
/// (empty if a text is over Java's 65,535-byte limit, which no valid track's is).
pub fn lavalink_encoded(fields: &TrackFields, version: u8, position_ms: u64) -> String {
    use base64::Engine as _;
    lavalink_blob_of(fields, version, position_ms)
        .encode()
        .map(|bytes| base64::engine::general_purpose::STANDARD.encode(bytes))
        .unwrap_or_default()
}

/// Gives three tracks in four (by serial number, drawing nothing from the generator) the
/// Lavalink blob Lavalink would send with them (version 3 for two in three of those), and
/// leaves the random one on the rest (a blob the codec cannot take apart).
pub(super) fn realistic_blob(n: u64, fields: &mut TrackFields) {
    let pick = super::mix(n ^ 0x6c61_7661);
    if !pick.is_multiple_of(4) {
        let version = if pick.is_multiple_of(3) { 2 } else { 3 };
        fields.encoded = lavalink_encoded(fields, version, 0);
    }
}

//! [`Track`]: one playable track, as a bot got it from Lavalink.
//!
//! A [`Track`] is immutable and compact: its blob and its texts live in one shared allocation,
//! so cloning one (the fold moves tracks from events into the queue) is a reference count, and
//! decoding one from the log is one allocation and one copy (replay shares one allocation among
//! the tracks of an event and gives the tracks it keeps their own at the end). When the blob is
//! a Lavalink blob holding the very bytes of the title, author, uri, identifier and source, the
//! allocation holds the blob alone and the texts are read from it (in memory only: every
//! encoded form is unchanged). [`TrackFields`] is the same track as plain owned fields, for
//! building and taking apart.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use serde::{Deserialize, Serialize, Serializer};

use super::limits::{ENCODED_LEN_MAX, TEXT_LEN_MAX, USER_DATA_BYTES_MAX};
use super::EventError;

mod blob_parts;
mod columns;
mod extra;
mod lavalink_v4;
mod shared;

pub use lavalink_v4::{LavalinkTrack, LavalinkTrackInfo};

pub(crate) use columns::{encode_columns, read_bytes, Columns};
pub(crate) use shared::decode_enqueued_shared;

pub(crate) use blob_parts::blob_rest;
use blob_parts::rebuild_blob;
use extra::{check_extra, extra_block, EXTRA_REST};

/// One track: the Lavalink `encoded` blob that replays it, plus the metadata a bot shows.
///
/// JSON form (contract §1): `encoded` and `title` are required; every other field is optional and
/// unknown fields are rejected. A Lavalink v4 track object (see [`LavalinkTrack`]) is read as
/// the same track; output is always the flat form. What was absent stays absent through the binary form and back
/// (`"author": null` reads as absent); the accessors give the contract's defaults (empty / 0 /
/// false / true / absent), and [`Track::fields`] gives the exact optional values.
///
/// In memory, a blob that is canonical standard base64 (what Lavalink's blobs are) is kept as
/// its raw bytes and turned back into text only for output ([`Track::encoded`]); any other blob
/// is kept as the text it was given. Either way [`Track::encoded`] returns exactly the text the
/// track was built from.
///
/// Binary form (bincode, positional):
///
/// ```text
/// present   u8       bit 0: blob stored as raw bytes (canonical base64), bit 1: author,
///                    bit 2: uri, bit 3: identifier, bit 4: source, bit 5: length_ms,
///                    bit 6: an `extra` block follows `data`; bit 7 (with bit 0, only in
///                    a state's tracks): the blob is a Lavalink blob stored as its rest, what
///                    it holds besides the track's fields (`track/blob_parts.rs`), rebuilt
///                    byte for byte on decode
/// flags     u8       bits 0-1: is_stream, bits 2-3: is_seekable (0 absent, 1 false, 2 true)
/// length_ms varint   only when present
/// lengths   varints  byte lengths of blob, title, and of author, uri, identifier when present
///                    (the source is the rest of `data`)
/// data      bytes    varint length, then blob, title, author, uri, identifier, source
/// extra     bytes    only with bit 6: varint length, then the bincode of four optional
///                    strings: artwork_url, isrc, plugin_info and user_data (the last two as
///                    compact JSON text)
/// ```
///
/// A track without the issue-19 fields has no `extra` block, so its bytes are what the code
/// before issue 19 wrote.
#[derive(Clone, Deserialize)]
#[serde(try_from = "lavalink_v4::TrackJson")]
pub struct Track {
    /// Holds the track's bytes at `start..start + len`: blob (raw bytes or text), title,
    /// author, uri, identifier, source, back to back. Usually exactly those bytes; replay
    /// decodes the tracks of one event into one shared buffer (see [`Track::unshare`]).
    data: Arc<[u8]>,
    /// Where the track's bytes start in `data`.
    start: u32,
    /// End offsets, relative to `start`, of the blob, title, author, uri and identifier.
    ends: [u32; 5],
    /// The length of the track's bytes up to the end of the source.
    len: u32,
    /// The length of the `extra` block (artwork_url, isrc, plugin_info, user_data) that
    /// follows the source in `data`; 0 without one. [`EXTRA_REST`] means "the rest of
    /// `data`": a block too large for a `u16`, which only [`Track::from`] builds (decoding
    /// refuses one) and which validation always refuses (a valid block is far smaller). A
    /// `u16` keeps a track at 56 bytes.
    extra_len: u16,
    /// The duration when `PRESENT_LENGTH` is set, else 0.
    length_ms: u64,
    /// `PRESENT_*` bits.
    present: u8,
    /// `is_stream` (bits 0-1) and `is_seekable` (bits 2-3), each `TRI_*`.
    flags: u8,
}

/// The fields of a [`Track`] as plain owned values: build one and convert it with
/// [`Track::from`], or take a track apart with [`Track::fields`]. Its JSON form is the track's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackFields {
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
    /// The artwork (thumbnail) URL (Lavalink's `artworkUrl`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artwork_url: Option<String>,
    /// The International Standard Recording Code (Lavalink's `isrc`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isrc: Option<String>,
    /// Lavalink plugin fields (Lavalink's `pluginInfo`), a JSON object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin_info: Option<serde_json::Map<String, serde_json::Value>>,
    /// The bot's own data for this track (Lavalink's `userData`: a requester, a playlist id,
    /// ...), any JSON value. With `plugin_info`, at most
    /// [`crate::session::limits::USER_DATA_BYTES_MAX`] bytes of compact JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_data: Option<serde_json::Value>,
}

impl TrackFields {
    /// Fields with only the two required ones set.
    pub fn new(encoded: impl Into<String>, title: impl Into<String>) -> TrackFields {
        TrackFields {
            encoded: encoded.into(),
            title: title.into(),
            author: None,
            uri: None,
            identifier: None,
            length_ms: None,
            is_stream: None,
            is_seekable: None,
            source: None,
            artwork_url: None,
            isrc: None,
            plugin_info: None,
            user_data: None,
        }
    }
}

/// `present`: the blob is stored as the raw bytes of canonical standard base64.
const PRESENT_BLOB_RAW: u8 = 1;
/// `present`: an author is given.
const PRESENT_AUTHOR: u8 = 1 << 1;
/// `present`: a URI is given.
const PRESENT_URI: u8 = 1 << 2;
/// `present`: an identifier is given.
const PRESENT_IDENTIFIER: u8 = 1 << 3;
/// `present`: a source is given.
const PRESENT_SOURCE: u8 = 1 << 4;
/// `present`: a length is given.
const PRESENT_LENGTH: u8 = 1 << 5;
/// `present`: an `extra` block (artwork_url, isrc, plugin_info, user_data) follows.
const PRESENT_EXTRA: u8 = 1 << 6;
/// Every `present` bit of an in-memory track (and of the binary form that replay's shared
/// decoding reads).
const PRESENT_ALL: u8 = (1 << 7) - 1;
/// `present`, binary form only (with `PRESENT_BLOB_RAW`): the blob is a Lavalink track blob
/// stored as its rest, what it holds besides the track's own fields (see `blob_parts.rs`).
const PRESENT_BLOB_PARTS: u8 = 1 << 7;

/// Shift of `is_stream` in `flags`.
const FLAG_STREAM: u32 = 0;
/// Shift of `is_seekable` in `flags`.
const FLAG_SEEKABLE: u32 = 2;
/// Every `flags` bit of the binary form.
const FLAGS_ALL: u8 = (1 << 4) - 1;
/// `flags`, in memory only (never written: every encoder masks it with [`FLAGS_ALL`]): the
/// text parts (title, author, uri, identifier, source) are not held after the blob, each
/// being the very bytes of the same field of the track's Lavalink blob, read from there (see
/// [`Track::compact`]). The `ends` and `len` still count them as if they followed the blob.
const FLAG_TEXTS_IN_BLOB: u8 = 1 << 7;
/// Indexes into `ends`.
const BLOB: usize = 0;
const TITLE: usize = 1;
const AUTHOR: usize = 2;
const URI: usize = 3;
const IDENTIFIER: usize = 4;

/// Whether part `i` (`BLOB`..=`IDENTIFIER`) has its length in the binary form: the blob and
/// the title always, the others when present.
fn part_stored(present: u8, i: usize) -> bool {
    let bit = match i {
        AUTHOR => PRESENT_AUTHOR,
        URI => PRESENT_URI,
        IDENTIFIER => PRESENT_IDENTIFIER,
        _ => return true,
    };
    present & bit != 0
}

/// An optional bool as two bits: 0 absent, 1 false, 2 true (3 is not a value).
fn tri(value: Option<bool>) -> u8 {
    match value {
        None => 0,
        Some(false) => 1,
        Some(true) => 2,
    }
}

/// The inverse of [`tri`] (3 reads as absent; decoding refuses it first).
fn untri(bits: u8) -> Option<bool> {
    match bits & 3 {
        1 => Some(false),
        2 => Some(true),
        _ => None,
    }
}

/// The standard base64 engine (canonical padding; non-zero trailing bits refused, so text that
/// decodes is exactly what its bytes encode back to — tested below).
const BASE64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Length of the standard base64 text of `n` bytes.
fn base64_len(n: usize) -> usize {
    n.div_ceil(3).saturating_mul(4)
}

impl From<TrackFields> for Track {
    fn from(fields: TrackFields) -> Track {
        Track::from_fields(&fields)
    }
}

impl From<&TrackFields> for Track {
    fn from(fields: &TrackFields) -> Track {
        Track::from_fields(fields)
    }
}

impl Track {
    /// A track with only the two required fields set.
    pub fn new(encoded: impl Into<String>, title: impl Into<String>) -> Track {
        Track::from(TrackFields::new(encoded, title))
    }

    /// Packs `fields` (the blob as raw bytes when it is canonical base64).
    fn from_fields(f: &TrackFields) -> Track {
        let raw = BASE64.decode(&f.encoded).ok();
        let blob: &[u8] = raw.as_deref().unwrap_or(f.encoded.as_bytes());
        let texts = [
            f.title.as_str(),
            f.author.as_deref().unwrap_or(""),
            f.uri.as_deref().unwrap_or(""),
            f.identifier.as_deref().unwrap_or(""),
            f.source.as_deref().unwrap_or(""),
        ];
        let extra = extra_block(f);
        let total = blob.len()
            + texts.iter().map(|t| t.len()).sum::<usize>()
            + extra.as_ref().map_or(0, Vec::len);
        let mut data = Vec::with_capacity(total);
        data.extend_from_slice(blob);
        let mut ends = [0u32; 5];
        ends[BLOB] = offset(data.len());
        for (i, text) in texts.iter().enumerate() {
            data.extend_from_slice(text.as_bytes());
            if let Some(end) = ends.get_mut(i + 1) {
                *end = offset(data.len());
            }
        }
        let present = [
            (raw.is_some(), PRESENT_BLOB_RAW),
            (f.author.is_some(), PRESENT_AUTHOR),
            (f.uri.is_some(), PRESENT_URI),
            (f.identifier.is_some(), PRESENT_IDENTIFIER),
            (f.source.is_some(), PRESENT_SOURCE),
            (f.length_ms.is_some(), PRESENT_LENGTH),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .fold(0, |bits, (_, bit)| bits | bit);
        let len = offset(data.len());
        let mut extra_len = 0;
        let mut present = present;
        if let Some(block) = extra {
            extra_len = u16::try_from(block.len()).unwrap_or(EXTRA_REST);
            data.extend_from_slice(&block);
            present |= PRESENT_EXTRA;
        }
        let mut track = Track {
            len,
            extra_len,
            data: Arc::from(data),
            start: 0,
            ends,
            length_ms: f.length_ms.unwrap_or(0),
            present,
            flags: (tri(f.is_stream) << FLAG_STREAM) | (tri(f.is_seekable) << FLAG_SEEKABLE),
        };
        track.compact();
        track
    }

    /// The track as plain owned fields (allocates; the accessors do not).
    pub fn fields(&self) -> TrackFields {
        TrackFields {
            encoded: self.encoded().into_owned(),
            title: self.title().to_owned(),
            author: self.optional(PRESENT_AUTHOR, AUTHOR).map(str::to_owned),
            uri: self.uri().map(str::to_owned),
            identifier: self
                .optional(PRESENT_IDENTIFIER, IDENTIFIER)
                .map(str::to_owned),
            length_ms: self.length_given(),
            is_stream: untri(self.flags >> FLAG_STREAM),
            is_seekable: untri(self.flags >> FLAG_SEEKABLE),
            source: self.source().map(str::to_owned),
            artwork_url: self.artwork_url().map(str::to_owned),
            isrc: self.isrc().map(str::to_owned),
            plugin_info: self.plugin_info(),
            user_data: self.user_data(),
        }
    }

    /// The length of the track's bytes held in `data` before its `extra` block: `len`, or
    /// only the blob's when the texts are read from the blob ([`FLAG_TEXTS_IN_BLOB`]).
    fn held_len(&self) -> usize {
        if self.flags & FLAG_TEXTS_IN_BLOB != 0 {
            self.ends[BLOB] as usize
        } else {
            self.len as usize
        }
    }

    /// The track's own bytes in `data` (before its `extra` block).
    fn own(&self) -> &[u8] {
        let start = self.start as usize;
        self.data
            .get(start..start + self.held_len())
            .unwrap_or_default()
    }

    /// The bytes of part `i` (`BLOB`..=`IDENTIFIER`, or 5 for the source), wherever they are
    /// held.
    fn part(&self, i: usize) -> &[u8] {
        let start = self.ends.get(i.wrapping_sub(1)).copied().unwrap_or(0);
        let end = self.ends.get(i).copied().unwrap_or(self.len);
        if i == BLOB || self.flags & FLAG_TEXTS_IN_BLOB == 0 {
            return self.bytes(start, end);
        }
        if start == end {
            return &[];
        }
        let blob = self.bytes(0, self.ends[BLOB]);
        blob_text_ranges(blob)
            .and_then(|ranges| ranges.get(i - 1).cloned())
            .and_then(|range| blob.get(range))
            .unwrap_or_default()
    }

    /// Stops holding the text parts after the blob when each one is the very bytes of the same
    /// field of the track's Lavalink blob (what Lavalink's tracks are: the blob repeats the
    /// title, author, uri, identifier and source): they are then read from the blob, and the
    /// track's allocation holds the blob and the `extra` block only. Nothing changes for any
    /// reader (accessors, equality, every binary and JSON form); measured ≈ 80 bytes less per
    /// track of the bench's queues (DESIGN.md, "Idle guilds at 100,000").
    pub(crate) fn compact(&mut self) {
        if !self.compactable() {
            return;
        }
        let (blob, extra) = (self.held_bytes(true), self.extra_bytes());
        let mut data = Vec::with_capacity(blob.len() + extra.len());
        data.extend_from_slice(blob);
        data.extend_from_slice(extra);
        self.data = Arc::from(data);
        self.start = 0;
        self.flags |= FLAG_TEXTS_IN_BLOB;
    }

    /// Whether [`Track::compact`] would read the texts from the blob: they are held after it
    /// now, and every one that is not empty is the blob's own field.
    fn compactable(&self) -> bool {
        if self.flags & FLAG_TEXTS_IN_BLOB != 0 || self.present & PRESENT_BLOB_RAW == 0 {
            return false;
        }
        let blob = self.bytes(0, self.ends[BLOB]);
        let Some(ranges) = blob_text_ranges(blob) else {
            return false;
        };
        (1..=5).all(|i| {
            let text = self.part(i);
            text.is_empty() || ranges.get(i - 1).and_then(|r| blob.get(r.clone())) == Some(text)
        })
    }

    /// The bytes the track holds before its `extra` block: only the blob once `compact`ed
    /// ([`Track::compactable`] said so), else what it holds now.
    fn held_bytes(&self, compact: bool) -> &[u8] {
        if compact {
            self.bytes(0, self.ends[BLOB])
        } else {
            self.own()
        }
    }

    /// Bytes `start..end` of the track's own bytes (empty if out of range, which construction
    /// prevents).
    fn bytes(&self, start: u32, end: u32) -> &[u8] {
        self.own()
            .get(start as usize..end as usize)
            .unwrap_or_default()
    }

    /// The duration, when present.
    fn length_given(&self) -> Option<u64> {
        (self.present & PRESENT_LENGTH != 0).then_some(self.length_ms)
    }

    /// Gives the track an allocation of its own when it shares one (what [`Track::repack`]
    /// falls back to for a track it cannot pack with others).
    /// It is also compacted ([`Track::compact`]), which gives it an allocation of its own.
    pub(crate) fn unshare(&mut self) {
        self.compact();
        let all = self.held_len() + self.extra_bytes().len();
        if self.data.len() != all {
            let start = self.start as usize;
            self.data = Arc::from(self.data.get(start..start + all).unwrap_or_default());
            self.start = 0;
        }
    }

    /// Gives `tracks` one allocation shared by them alone, holding each track's bytes
    /// (compacted as by [`Track::compact`]) back to back: what replay does with the tracks of
    /// the state it rebuilt (the buffers it decoded them into hold whole events). One
    /// allocation per state instead of one per track saves the allocator's header and the
    /// `Arc`'s counts, ≈ 30 bytes a track (DESIGN.md, "Idle guilds at 100,000"); the
    /// allocation is freed when the last of these tracks is dropped, so at most the bytes of
    /// the tracks recovered stay held. A track whose `extra` block is [`EXTRA_REST`] (which
    /// decoding never gives) is given an allocation of its own instead ([`Track::unshare`]).
    pub(crate) fn repack<'a>(tracks: impl IntoIterator<Item = &'a mut Track>) {
        // Each track to pack, whether it is compacted, and where its bytes start.
        let mut packed: Vec<(&mut Track, bool, usize)> = Vec::new();
        let mut total = 0usize;
        for track in tracks {
            if track.extra_len == EXTRA_REST {
                track.unshare();
                continue;
            }
            let compact = track.compactable();
            let start = total;
            total += track.held_bytes(compact).len() + track.extra_bytes().len();
            packed.push((track, compact, start));
        }
        if packed.is_empty() {
            return;
        }
        if u32::try_from(total).is_err() {
            // Offsets are u32: tracks past 4 GiB (far beyond any queue limit) keep one each.
            for (track, _, _) in packed {
                track.unshare();
            }
            return;
        }
        let mut data = Vec::with_capacity(total);
        for (track, compact, _) in &packed {
            data.extend_from_slice(track.held_bytes(*compact));
            data.extend_from_slice(track.extra_bytes());
        }
        let data: Arc<[u8]> = Arc::from(data);
        for (track, compact, start) in packed {
            track.data = Arc::clone(&data);
            // Below `total`, which fits in a u32.
            track.start = start as u32;
            if compact {
                track.flags |= FLAG_TEXTS_IN_BLOB;
            }
        }
    }

    /// Text part `i` (`TITLE`..=`IDENTIFIER`, or 5 for the source). Every part was checked to be
    /// UTF-8 on a character boundary when the track was built, so the check here never fails.
    fn text(&self, i: usize) -> &str {
        simdutf8::basic::from_utf8(self.part(i)).unwrap_or_default()
    }

    /// Text part `i` if its `present` bit is set.
    fn optional(&self, bit: u8, i: usize) -> Option<&str> {
        (self.present & bit != 0).then(|| self.text(i))
    }

    /// The Lavalink base64 blob, exactly as given (built from the raw bytes when it was
    /// canonical base64, so this allocates then).
    pub fn encoded(&self) -> Cow<'_, str> {
        let blob = self.bytes(0, self.ends[BLOB]);
        if self.blob_is_raw() {
            Cow::Owned(BASE64.encode(blob))
        } else {
            Cow::Borrowed(simdutf8::basic::from_utf8(blob).unwrap_or_default())
        }
    }

    /// The length in bytes of [`Track::encoded`], without building it.
    pub fn encoded_len(&self) -> usize {
        let len = self.ends[BLOB] as usize;
        if self.blob_is_raw() {
            base64_len(len)
        } else {
            len
        }
    }

    /// The blob's raw bytes when it is canonical base64 (what Lavalink's blobs are).
    pub fn encoded_bytes(&self) -> Option<&[u8]> {
        self.blob_is_raw().then(|| self.bytes(0, self.ends[BLOB]))
    }

    /// Whether the blob is held as raw bytes.
    fn blob_is_raw(&self) -> bool {
        self.present & PRESENT_BLOB_RAW != 0
    }

    /// The display title.
    pub fn title(&self) -> &str {
        self.text(TITLE)
    }

    /// The author, or `""` when absent.
    pub fn author(&self) -> &str {
        self.text(AUTHOR)
    }

    /// The URI, if known.
    pub fn uri(&self) -> Option<&str> {
        self.optional(PRESENT_URI, URI)
    }

    /// The source identifier, or `""` when absent.
    pub fn identifier(&self) -> &str {
        self.text(IDENTIFIER)
    }

    /// The duration in milliseconds, or 0 when absent.
    pub fn length_ms(&self) -> u64 {
        self.length_ms
    }

    /// Whether the track is a live stream (false when absent).
    pub fn is_stream(&self) -> bool {
        untri(self.flags >> FLAG_STREAM).unwrap_or(false)
    }

    /// Whether the track supports seeking (true when absent).
    pub fn is_seekable(&self) -> bool {
        untri(self.flags >> FLAG_SEEKABLE).unwrap_or(true)
    }

    /// The Lavalink source name, if known.
    pub fn source(&self) -> Option<&str> {
        self.optional(PRESENT_SOURCE, 5)
    }

    /// Byte length of text part `i`.
    fn text_len(&self, i: usize) -> usize {
        let start = self.ends.get(i.wrapping_sub(1)).copied().unwrap_or(0) as usize;
        let end = self.ends.get(i).copied().unwrap_or(self.len) as usize;
        end.saturating_sub(start)
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
        // Fast path: every bound holds (the usual case); the checks below name the first that
        // does not.
        let encoded = self.encoded_len();
        let title = self.text_len(TITLE);
        let others = [AUTHOR, URI, IDENTIFIER, 5].map(|i| self.text_len(i));
        let [artwork_url, isrc, plugin_info, user_data] = if self.extra_len == 0 {
            [0; 4]
        } else {
            self.extra_part_lens()
        };
        if encoded != 0
            && encoded <= ENCODED_LEN_MAX
            && title != 0
            && title <= TEXT_LEN_MAX
            && others.iter().all(|&len| len <= TEXT_LEN_MAX)
            && artwork_url <= TEXT_LEN_MAX
            && isrc <= TEXT_LEN_MAX
            && plugin_info + user_data <= USER_DATA_BYTES_MAX
        {
            return Ok(());
        }
        check_len(field, "encoded", self.encoded_len(), ENCODED_LEN_MAX, true)?;
        check_len(field, "title", self.text_len(TITLE), TEXT_LEN_MAX, true)?;
        let optional = [
            ("author", AUTHOR),
            ("uri", URI),
            ("identifier", IDENTIFIER),
            ("source", 5),
        ];
        for (name, i) in optional {
            check_len(field, name, self.text_len(i), TEXT_LEN_MAX, false)?;
        }
        let [artwork_url, isrc, plugin_info, user_data] = self.extra_part_lens();
        for (name, len) in [("artwork_url", artwork_url), ("isrc", isrc)] {
            check_len(field, name, len, TEXT_LEN_MAX, false)?;
        }
        let len = plugin_info + user_data;
        if len > USER_DATA_BYTES_MAX {
            return Err(EventError::DataTooLarge {
                field: format!("{}.user_data", field()),
                len,
                max: USER_DATA_BYTES_MAX,
            });
        }
        Ok(())
    }
}

/// Where a Lavalink v2/v3 track blob holds its title, author, uri, identifier and source (in
/// that order; an absent uri is an empty range): the byte ranges of their modified UTF-8 text
/// in `blob` (the layout [`crate::session::LavalinkBlob::decode`] reads). `None` when `blob` is
/// not such a blob.
fn blob_text_ranges(blob: &[u8]) -> Option<[std::ops::Range<usize>; 5]> {
    use crate::session::lavalink_blob::TRACK_INFO_VERSIONED;
    /// The range of the `writeUTF` text at `*at`, moving past it.
    fn utf(blob: &[u8], at: &mut usize) -> Option<std::ops::Range<usize>> {
        let len = blob.get(*at..*at + 2)?;
        let start = *at + 2;
        let end = start + usize::from(u16::from_be_bytes([len[0], len[1]]));
        blob.get(start..end)?;
        *at = end;
        Some(start..end)
    }
    /// [`utf`] behind a presence byte (an empty range when absent).
    fn nullable(blob: &[u8], at: &mut usize) -> Option<std::ops::Range<usize>> {
        let present = *blob.get(*at)? != 0;
        *at += 1;
        if present {
            utf(blob, at)
        } else {
            Some(*at..*at)
        }
    }
    let head = blob.get(..4)?;
    let word = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
    let size = word & ((1 << 30) - 1);
    let version = *blob.get(4)?;
    if size as usize != blob.len() - 4
        || (word >> 30) as u8 & TRACK_INFO_VERSIONED == 0
        || !(2..=3).contains(&version)
    {
        return None;
    }
    let mut at = 5usize;
    let title = utf(blob, &mut at)?;
    let author = utf(blob, &mut at)?;
    at += 8; // length
    let identifier = utf(blob, &mut at)?;
    at += 1; // is_stream
    let uri = nullable(blob, &mut at)?;
    if version >= 3 {
        nullable(blob, &mut at)?; // artwork_url
        nullable(blob, &mut at)?; // isrc
    }
    let source = utf(blob, &mut at)?;
    // The position (8 bytes) ends the blob.
    blob.len().checked_sub(at)?.checked_sub(8)?;
    Some([title, author, uri, identifier, source])
}

/// A length as a `u32` offset (tracks are far below 4 GiB: every part is bounded by the
/// session limits before a track is accepted; a larger one saturates and fails validation).
fn offset(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

/// Checks one text field of a track: non-empty when `required`, at most `max` bytes.
fn check_len(
    track: &dyn Fn() -> String,
    name: &str,
    len: usize,
    max: usize,
    required: bool,
) -> Result<(), EventError> {
    if required && len == 0 {
        return Err(EventError::Empty {
            field: format!("{}.{name}", track()),
        });
    }
    if len > max {
        return Err(EventError::TooLong {
            field: format!("{}.{name}", track()),
            len,
            max,
        });
    }
    Ok(())
}

impl PartialEq for Track {
    /// Same bytes, part lengths and values, wherever the bytes are held.
    fn eq(&self, other: &Track) -> bool {
        self.ends == other.ends
            && self.length_ms == other.length_ms
            && self.present == other.present
            && self.flags & FLAGS_ALL == other.flags & FLAGS_ALL
            && (BLOB..=5).all(|i| self.part(i) == other.part(i))
            && self.extra_bytes() == other.extra_bytes()
    }
}

impl Eq for Track {}

impl fmt::Debug for Track {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.fields(), f)
    }
}

impl Serialize for Track {
    /// The JSON form of [`TrackFields`], written from borrowed parts.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        /// [`TrackFields`] borrowed.
        #[derive(Serialize)]
        struct Ref<'a> {
            encoded: Cow<'a, str>,
            title: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            author: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            uri: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            identifier: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            length_ms: Option<u64>,
            #[serde(skip_serializing_if = "Option::is_none")]
            is_stream: Option<bool>,
            #[serde(skip_serializing_if = "Option::is_none")]
            is_seekable: Option<bool>,
            #[serde(skip_serializing_if = "Option::is_none")]
            source: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            artwork_url: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            isrc: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            plugin_info: Option<serde_json::Map<String, serde_json::Value>>,
            #[serde(skip_serializing_if = "Option::is_none")]
            user_data: Option<serde_json::Value>,
        }
        let (artwork_url, isrc, _, _) = self.extra_parts();
        Ref {
            encoded: self.encoded(),
            title: self.title(),
            author: self.optional(PRESENT_AUTHOR, AUTHOR),
            uri: self.uri(),
            identifier: self.optional(PRESENT_IDENTIFIER, IDENTIFIER),
            length_ms: self.length_given(),
            is_stream: untri(self.flags >> FLAG_STREAM),
            is_seekable: untri(self.flags >> FLAG_SEEKABLE),
            source: self.source(),
            artwork_url,
            isrc,
            plugin_info: self.plugin_info(),
            user_data: self.user_data(),
        }
        .serialize(serializer)
    }
}

impl bincode::Encode for Track {
    /// The blob as it is (raw bytes or text): the form of events in the log, which replay
    /// reads (a state stores a Lavalink blob as its rest: see the binary form above).
    fn encode<E: bincode::enc::Encoder>(
        &self,
        encoder: &mut E,
    ) -> Result<(), bincode::error::EncodeError> {
        self.encode_form(encoder, false)
    }
}

/// A [`Track`] encoded with a Lavalink blob that repeats the track's fields stored as its rest
/// (`present` bit 7): the form of the tracks of a state (snapshots, checkpoints,
/// `state_restored`), written far less often than read back in full. Decoding takes either
/// form.
#[cfg(test)]
pub(crate) struct TrackWithBlobRest<'a>(pub(crate) &'a Track);

#[cfg(test)]
impl bincode::Encode for TrackWithBlobRest<'_> {
    fn encode<E: bincode::enc::Encoder>(
        &self,
        encoder: &mut E,
    ) -> Result<(), bincode::error::EncodeError> {
        self.0.encode_form(encoder, true)
    }
}

impl Track {
    /// The binary form; with `blob_rest_allowed`, a Lavalink blob repeating the track's fields
    /// is stored as its rest.
    fn encode_form<E: bincode::enc::Encoder>(
        &self,
        encoder: &mut E,
        blob_rest_allowed: bool,
    ) -> Result<(), bincode::error::EncodeError> {
        use bincode::enc::write::Writer as _;
        use bincode::Encode as _;
        let rest = if blob_rest_allowed {
            blob_rest(self)
        } else {
            None
        };
        let present = if rest.is_some() {
            self.present | PRESENT_BLOB_PARTS
        } else {
            self.present
        };
        present.encode(encoder)?;
        (self.flags & FLAGS_ALL).encode(encoder)?;
        if let Some(length_ms) = self.length_given() {
            length_ms.encode(encoder)?;
        }
        let blob = rest.as_deref().unwrap_or(self.part(BLOB));
        let texts_len = (self.len as usize).saturating_sub(self.ends[BLOB] as usize);
        let mut start = 0u32;
        for (i, &end) in self.ends.iter().enumerate() {
            if i == BLOB {
                (blob.len() as u64).encode(encoder)?;
            } else if part_stored(self.present, i) {
                end.saturating_sub(start).encode(encoder)?;
            }
            start = end;
        }
        ((blob.len() + texts_len) as u64).encode(encoder)?;
        encoder.writer().write(blob)?;
        if self.flags & FLAG_TEXTS_IN_BLOB == 0 {
            encoder.writer().write(
                self.own()
                    .get(self.ends[BLOB] as usize..)
                    .unwrap_or_default(),
            )?;
        } else {
            for i in TITLE..=5 {
                encoder.writer().write(self.part(i))?;
            }
        }
        if self.present & PRESENT_EXTRA != 0 {
            let extra = self.extra_bytes();
            (extra.len() as u64).encode(encoder)?;
            encoder.writer().write(extra)?;
        }
        Ok(())
    }
}

/// A decode error with a message.
fn invalid(message: &str) -> bincode::error::DecodeError {
    bincode::error::DecodeError::OtherString(format!("invalid track: {message}"))
}

/// The parts of a [`Track`]'s binary form that come before `data`.
#[derive(Clone, Copy)]
struct Head {
    present: u8,
    flags: u8,
    length_ms: Option<u64>,
    /// Byte lengths of blob, title, author, uri, identifier (0 when absent).
    lens: [u64; 5],
}

impl Head {
    /// Reads the head (everything before `data`) and refuses unknown bits.
    fn decode<D: bincode::de::Decoder>(
        decoder: &mut D,
    ) -> Result<Head, bincode::error::DecodeError> {
        use bincode::Decode as _;
        let present = u8::decode(decoder)?;
        let flags = u8::decode(decoder)?;
        let mut head = Head::check_bits(present, flags)?;
        if present & PRESENT_LENGTH != 0 {
            head.length_ms = Some(u64::decode(decoder)?);
        }
        for (i, len) in head.lens.iter_mut().enumerate() {
            if part_stored(present, i) {
                *len = u64::decode(decoder)?;
            }
        }
        Ok(head)
    }

    /// A head with these `present` and `flags` bytes and nothing else yet, after refusing
    /// unknown bits.
    fn check_bits(present: u8, flags: u8) -> Result<Head, bincode::error::DecodeError> {
        // Every bit of `present` has a meaning; only the combination is checked.
        if (present & PRESENT_BLOB_PARTS != 0 && present & PRESENT_BLOB_RAW == 0)
            || flags & !FLAGS_ALL != 0
            || (flags >> FLAG_STREAM) & 3 == 3
            || (flags >> FLAG_SEEKABLE) & 3 == 3
        {
            return Err(invalid("unknown flag bits"));
        }
        Ok(Head {
            present,
            flags,
            length_ms: None,
            lens: [0; 5],
        })
    }

    /// The track with `data`, after checking that the lengths fit in it, that the source part
    /// is empty when absent, and that every text part is UTF-8 on a character boundary.
    fn finish(self, data: &[u8], extra: &[u8]) -> Result<Track, bincode::error::DecodeError> {
        if self.present & PRESENT_BLOB_PARTS != 0 {
            return self.finish_parts(data, extra);
        }
        let ends = self.check(data)?;
        if self.present & PRESENT_EXTRA == 0 {
            return Ok(self.track(Arc::from(data), 0, ends, data.len(), 0));
        }
        check_extra(extra)?;
        if extra.len() >= usize::from(EXTRA_REST) {
            // Far over every cap: no valid track has one.
            return Err(invalid("extra block too large"));
        }
        let mut all = Vec::with_capacity(data.len() + extra.len());
        all.extend_from_slice(data);
        all.extend_from_slice(extra);
        Ok(self.track(Arc::from(all), 0, ends, data.len(), extra.len()))
    }

    /// [`Head::finish`] for a blob stored as its rest: the track with the rest in the blob's
    /// place gives the fields the blob repeats, then the blob is rebuilt in its place.
    fn finish_parts(
        mut self,
        data: &[u8],
        extra: &[u8],
    ) -> Result<Track, bincode::error::DecodeError> {
        self.present &= !PRESENT_BLOB_PARTS;
        let stand_in = self.finish(data, extra)?;
        let rest_len = stand_in.ends[BLOB] as usize;
        let blob = rebuild_blob(stand_in.bytes(0, stand_in.ends[BLOB]), &stand_in)?;
        let mut whole = blob;
        let blob_len = whole.len() as u64;
        whole.extend_from_slice(data.get(rest_len..).unwrap_or_default());
        self.lens[BLOB] = blob_len;
        self.finish(&whole, extra)
    }

    /// [`Head::finish`] for `data` found at `start` in `shared`, which the track keeps.
    fn finish_shared(
        self,
        shared: &Arc<[u8]>,
        start: usize,
        len: usize,
    ) -> Result<Track, bincode::error::DecodeError> {
        let data = shared.get(start..start + len).unwrap_or_default();
        let ends = self.check(data)?;
        Ok(self.track(Arc::clone(shared), start, ends, len, 0))
    }

    /// The track of this head with its `len` bytes at `start` in `data` (checked).
    fn track(
        self,
        data: Arc<[u8]>,
        start: usize,
        ends: [u32; 5],
        len: usize,
        extra_len: usize,
    ) -> Track {
        Track {
            data,
            start: offset(start),
            ends,
            len: offset(len),
            extra_len: u16::try_from(extra_len).unwrap_or(EXTRA_REST),
            length_ms: self.length_ms.unwrap_or(0),
            present: self.present,
            flags: self.flags,
        }
    }

    /// The checks of [`Head::finish`]; the end offsets of the parts.
    fn check(&self, data: &[u8]) -> Result<[u32; 5], bincode::error::DecodeError> {
        let mut ends = [0u32; 5];
        let mut at = 0u64;
        for (end, len) in ends.iter_mut().zip(self.lens) {
            at = at
                .checked_add(len)
                .ok_or_else(|| invalid("length overflow"))?;
            if at > data.len() as u64 {
                return Err(invalid("part lengths exceed the data"));
            }
            *end = offset(at as usize);
        }
        if data.len() > u32::MAX as usize {
            return Err(invalid("data over 4 GiB"));
        }
        if self.present & PRESENT_SOURCE == 0 && at != data.len() as u64 {
            return Err(invalid("trailing bytes without a source"));
        }
        let text_start = if self.present & PRESENT_BLOB_RAW != 0 {
            ends[BLOB] as usize
        } else {
            0
        };
        let text = data.get(text_start..).unwrap_or_default();
        // Pure ASCII (checked a word at a time) is UTF-8 with a character boundary everywhere.
        if !text.is_ascii() {
            let text =
                simdutf8::basic::from_utf8(text).map_err(|_| invalid("text is not UTF-8"))?;
            for &end in &ends {
                if !text.is_char_boundary((end as usize).saturating_sub(text_start)) {
                    return Err(invalid("a text part splits a character"));
                }
            }
        }
        Ok(ends)
    }
}

impl<Context> bincode::Decode<Context> for Track {
    fn decode<D: bincode::de::Decoder<Context = Context>>(
        decoder: &mut D,
    ) -> Result<Self, bincode::error::DecodeError> {
        let head = Head::decode(decoder)?;
        let data = Vec::<u8>::decode(decoder)?;
        let extra = if head.present & PRESENT_EXTRA != 0 {
            Vec::<u8>::decode(decoder)?
        } else {
            Vec::new()
        };
        head.finish(&data, &extra)
    }
}

impl<'de, Context> bincode::BorrowDecode<'de, Context> for Track {
    /// The same layout as [`bincode::Decode`], with `data` copied straight from the input into
    /// the track's one allocation (replay decodes every logged track this way).
    fn borrow_decode<D: bincode::de::BorrowDecoder<'de, Context = Context>>(
        decoder: &mut D,
    ) -> Result<Self, bincode::error::DecodeError> {
        let head = Head::decode(decoder)?;
        let data = <&[u8] as bincode::BorrowDecode<'de, Context>>::borrow_decode(decoder)?;
        let extra: &[u8] = if head.present & PRESENT_EXTRA != 0 {
            <&[u8] as bincode::BorrowDecode<'de, Context>>::borrow_decode(decoder)?
        } else {
            &[]
        };
        head.finish(data, extra)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_track_is_small() {
        // DESIGN.md counts a queue entry (id + track) as 64 bytes plus the track's data.
        assert!(std::mem::size_of::<Track>() <= 56);
    }

    #[test]
    fn compact_tracks_read_and_encode_as_full_ones() {
        let config = bincode::config::standard();
        let mut rng = crate::session::Rng::new(5);
        let mut compacted = 0;
        for n in 1..=500 {
            let track = crate::session::track(&mut rng, n);
            let bytes = bincode::encode_to_vec(&track, config).unwrap();
            // Decoding keeps the texts after the blob: the full form.
            let (full, _): (Track, usize) = bincode::decode_from_slice(&bytes, config).unwrap();
            assert_eq!(full.flags & FLAG_TEXTS_IN_BLOB, 0);
            let compact = track.flags & FLAG_TEXTS_IN_BLOB != 0;
            compacted += usize::from(compact);
            assert_eq!(full, track);
            assert_eq!(track, full);
            assert_eq!(full.fields(), track.fields());
            assert_eq!(
                serde_json::to_string(&full).unwrap(),
                serde_json::to_string(&track).unwrap()
            );
            assert_eq!(
                bincode::encode_to_vec(TrackWithBlobRest(&track), config).unwrap(),
                bincode::encode_to_vec(TrackWithBlobRest(&full), config).unwrap()
            );
            let mut unshared = full.clone();
            unshared.unshare();
            assert_eq!(unshared, full);
            assert_eq!(unshared.flags, track.flags);
            assert_eq!(bincode::encode_to_vec(&unshared, config).unwrap(), bytes);
            assert_eq!(unshared.extra_bytes(), full.extra_bytes());
            if compact {
                assert!(track.data.len() < full.data.len());
                assert_eq!(track.data.len(), track.held_len() + track.extra_len());
            }
        }
        // Three in four workload tracks carry a Lavalink blob repeating their texts.
        assert!((300..420).contains(&compacted), "{compacted}");
    }

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
        assert_eq!(track.fields().length_ms, Some(0));
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
        assert_eq!(track.fields().author, None);
        assert_eq!(track.author(), "");
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
        let mut long = TrackFields::new("a", "b");
        long.author = Some("x".repeat(TEXT_LEN_MAX + 1));
        assert_eq!(
            Track::from(long).validate("tracks[1]"),
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
        let mut empty_author = TrackFields::new("a", "b");
        empty_author.author = Some(String::new());
        assert_eq!(Track::from(empty_author).validate("t"), Ok(()));
        // The blob's length is that of its text, also when it is held as raw bytes.
        let blob = Track::new("QUJD".repeat(ENCODED_LEN_MAX / 4), "b");
        assert!(blob.encoded_bytes().is_some());
        assert_eq!(blob.validate("t"), Ok(()));
        let blob = Track::new("QUJD".repeat(ENCODED_LEN_MAX / 4 + 1), "b");
        assert!(matches!(
            blob.validate("t"),
            Err(EventError::TooLong { len, .. }) if len == ENCODED_LEN_MAX + 4
        ));
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
        // Unknown flag bits are a decode error, not a panic.
        for (at, value) in [(0, 0xC1), (1, 0x10), (1, 0x03), (1, 0x0C)] {
            let mut bad = bincode::encode_to_vec(&long, config).unwrap();
            bad[at] = value;
            assert!(bincode::decode_from_slice::<Track, _>(&bad, config).is_err());
            assert!(bincode::borrow_decode_from_slice::<Track, _>(&bad, config).is_err());
        }
    }

    /// Every combination of present and absent fields, multi-byte text and both kinds of blob
    /// survives JSON -> Track -> bincode (owned and borrowed decode) -> Track -> JSON exactly.
    #[test]
    fn every_field_combination_round_trips() {
        let config = bincode::config::standard();
        for mask in 0u32..(1 << 13) {
            let on = |bit: u32| mask & (1 << bit) != 0;
            let fields = TrackFields {
                encoded: if on(0) { "QUJD".into() } else { "QUJ=".into() },
                title: "T\u{e9}tre \u{1f3b5}".into(),
                author: on(1).then(|| "\u{8521}\u{4f9d}\u{6797}".to_owned()),
                uri: on(2).then(String::new),
                identifier: on(3).then(|| "dQw4w9WgXcQ".to_owned()),
                length_ms: on(4).then_some(u64::MAX),
                is_stream: on(5).then_some(on(6)),
                is_seekable: on(7).then_some(on(6)),
                source: on(8).then(|| "youtube".to_owned()),
                artwork_url: on(9).then(|| "https://a/\u{e9}.jpg".to_owned()),
                isrc: on(10).then(String::new),
                plugin_info: on(11).then(serde_json::Map::new),
                user_data: on(12).then(|| serde_json::json!({"r": [1, "\u{1f3b5}"]})),
            };
            let track = Track::from(fields.clone());
            assert_eq!(track.encoded_bytes().is_some(), on(0));
            assert_eq!(track.fields(), fields);
            let json = serde_json::to_string(&track).unwrap();
            assert_eq!(json, serde_json::to_string(&fields).unwrap());
            assert_eq!(serde_json::from_str::<Track>(&json).unwrap(), track);
            let bytes = bincode::encode_to_vec(&track, config).unwrap();
            let (owned, used): (Track, usize) = bincode::decode_from_slice(&bytes, config).unwrap();
            assert_eq!((&owned, used), (&track, bytes.len()));
            let (borrowed, used): (Track, usize) =
                bincode::borrow_decode_from_slice(&bytes, config).unwrap();
            assert_eq!((&borrowed, used), (&track, bytes.len()));
            assert_eq!(borrowed.fields(), fields);
        }
    }

    /// The shared decoding of a `tracks_enqueued` event gives exactly the standard event, and
    /// declines (for the standard path to report) whatever the standard decoding refuses.
    #[test]
    fn shared_enqueue_decoding_matches_the_standard_one() {
        use crate::format::{decode_event, decode_event_shared, encode_event};
        use crate::session::Event;
        let mut rng = crate::session::Rng::new(7);
        for (n, index) in [
            (1, None),
            (3, Some(0)),
            (200, Some(300)),
            (2, Some(u32::MAX)),
        ] {
            let tracks: Vec<Track> = (0..n).map(|k| crate::session::track(&mut rng, k)).collect();
            if n == 200 {
                // Tracks with an extra block (their own allocation) and without (the shared one).
                assert!(tracks.iter().any(|t| t.extra_len() > 0));
                assert!(tracks.iter().any(|t| t.extra_len() == 0));
            }
            let event = Event::TracksEnqueued { tracks, index };
            let mut bytes = Vec::new();
            encode_event(&event, &mut bytes);
            assert_eq!(bytes[0], 6);
            let shared = decode_event_shared(&bytes).unwrap();
            assert_eq!(shared, event);
            if let Event::TracksEnqueued { mut tracks, .. } = shared {
                for t in &mut tracks {
                    t.unshare();
                    assert_eq!(t.data.len(), t.held_len() + t.extra_len());
                }
                assert_eq!(Event::TracksEnqueued { tracks, index }, event);
            }
            // Every truncation and every single-byte change decodes (or fails) the same way.
            for cut in 0..bytes.len().min(600) {
                assert_eq!(
                    decode_event_shared(&bytes[..cut]),
                    decode_event(&bytes[..cut])
                );
            }
            for at in 0..bytes.len().min(400) {
                for value in [0u8, 1, 0x7F, 0xC3, 0xFB, 0xFD, 0xFE, 0xFF] {
                    let mut bad = bytes.clone();
                    bad[at] = value;
                    assert_eq!(
                        decode_event_shared(&bad),
                        decode_event(&bad),
                        "{at} {value}"
                    );
                }
            }
        }
    }

    /// Replay's repacking: the tracks a state keeps end in one allocation holding exactly
    /// their bytes, compacted as `unshare` would, and read, compare and encode as before; a
    /// track whose extra block runs to the end of its data gets its own.
    #[test]
    fn repack_gives_the_tracks_one_allocation_of_their_bytes() {
        use crate::format::{decode_event_shared, encode_event};
        use crate::session::Event;
        let config = bincode::config::standard();
        let mut rng = crate::session::Rng::new(11);
        let tracks: Vec<Track> = (0..200)
            .map(|k| crate::session::track(&mut rng, k))
            .collect();
        let mut bytes = Vec::new();
        encode_event(
            &Event::TracksEnqueued {
                tracks,
                index: None,
            },
            &mut bytes,
        );
        let Ok(Event::TracksEnqueued {
            tracks: decoded, ..
        }) = decode_event_shared(&bytes)
        else {
            panic!("the enqueue decodes");
        };
        let mut rest = TrackFields::new("QAAA", "rest");
        rest.user_data = Some(serde_json::Value::String("x".repeat(70_000)));
        let rest = Track::from(rest);
        assert_eq!(rest.extra_len, EXTRA_REST);
        let mut originals = decoded;
        originals.insert(100, rest);
        // Both forms occur: compactable (texts in the blob) and not, with and without extra.
        assert!(originals.iter().any(Track::compactable));
        assert!(originals.iter().any(|t| !t.compactable()));
        assert!(originals.iter().any(|t| t.extra_len() > 0));
        let unshared: Vec<Track> = originals
            .iter()
            .cloned()
            .map(|mut t| {
                t.unshare();
                t
            })
            .collect();
        let mut packed = originals.clone();
        Track::repack(packed.iter_mut());
        assert_eq!(packed, originals);
        let shared = Arc::clone(&packed[0].data);
        let mut held = 0;
        for (i, (p, u)) in packed.iter().zip(&unshared).enumerate() {
            assert_eq!(p.flags, u.flags, "{i}");
            assert_eq!(p.fields(), u.fields(), "{i}");
            assert_eq!(
                bincode::encode_to_vec(p, config).unwrap(),
                bincode::encode_to_vec(u, config).unwrap(),
                "{i}"
            );
            if i == 100 {
                assert!(!Arc::ptr_eq(&p.data, &shared));
                assert_eq!(p.data.len(), p.held_len() + p.extra_bytes().len());
            } else {
                assert!(Arc::ptr_eq(&p.data, &shared), "{i}");
                assert_eq!(p.start as usize, held, "{i}");
                held += p.held_len() + p.extra_len();
            }
        }
        assert_eq!(shared.len(), held);
        // Repacking again changes nothing but the allocation; nothing to pack is no work.
        let mut again = packed.clone();
        Track::repack(again.iter_mut());
        assert_eq!(again, originals);
        assert_eq!(again[0].data.len(), held);
        Track::repack(std::iter::empty());
    }

    /// Damaged binary forms are errors: lengths past the data, text that is not UTF-8 or that
    /// splits a character between two parts, trailing bytes without a source.
    #[test]
    fn damaged_binary_forms_are_refused() {
        let config = bincode::config::standard();
        let decode = |bytes: &[u8]| {
            let owned = bincode::decode_from_slice::<Track, _>(bytes, config).map(|t| t.0);
            let borrowed =
                bincode::borrow_decode_from_slice::<Track, _>(bytes, config).map(|t| t.0);
            assert_eq!(owned.is_ok(), borrowed.is_ok());
            borrowed
        };
        // present 0 (text blob), flags 0, blob len 1, title len 2, data len 3: "a" "é".
        assert_eq!(
            decode(&[0, 0, 1, 2, 3, b'a', 0xC3, 0xA9]).unwrap(),
            Track::new("a", "\u{e9}")
        );
        assert!(decode(&[0, 0, 2, 1, 3, b'a', 0xC3, 0xA9]).is_err(), "split");
        assert!(
            decode(&[0, 0, 1, 2, 3, b'a', 0xC3, 0x28]).is_err(),
            "not UTF-8"
        );
        assert!(
            decode(&[0, 0, 1, 3, 3, b'a', 0xC3, 0xA9]).is_err(),
            "past the data"
        );
        assert!(
            decode(&[0, 0, 1, 1, 3, b'a', b'b', b'c']).is_err(),
            "no source"
        );
        let huge = [
            0, 0, 0xFD, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 1, 1, b'a',
        ];
        assert!(decode(&huge).is_err(), "overflow");
        // With a source, the rest is the source; raw blob bytes need not be UTF-8.
        let raw = [
            PRESENT_SOURCE | PRESENT_BLOB_RAW,
            0,
            1,
            1,
            3,
            0xFF,
            b'b',
            b'c',
        ];
        let t = decode(&raw).unwrap();
        assert_eq!(
            (t.encoded().as_ref(), t.title(), t.source()),
            ("/w==", "b", Some("c"))
        );
    }

    /// The issue-19 fields: JSON and binary round trips, the old bytes of a track without
    /// them, and the caps.
    #[test]
    fn user_data_round_trips_and_is_bounded() {
        let config = bincode::config::standard();
        let json = r#"{"encoded":"QAAAjQIAJVJpY2sg","title":"Song","source":"youtube","artwork_url":"https://i.ytimg.com/vi/x/hq.jpg","isrc":"GBARL9300135","plugin_info":{"albumName":"Whenever"},"user_data":{"queued_by":[1,2.5,null],"requester":"1100000000000000003"}}"#;
        let track: Track = serde_json::from_str(json).unwrap();
        assert_eq!(serde_json::to_string(&track).unwrap(), json);
        assert_eq!(track.artwork_url(), Some("https://i.ytimg.com/vi/x/hq.jpg"));
        assert_eq!(track.isrc(), Some("GBARL9300135"));
        assert_eq!(
            track.user_data().unwrap()["requester"],
            serde_json::json!("1100000000000000003")
        );
        assert_eq!(track.source(), Some("youtube"));
        assert_eq!(Track::from(track.fields()), track);
        let bytes = bincode::encode_to_vec(&track, config).unwrap();
        let (owned, used): (Track, usize) = bincode::decode_from_slice(&bytes, config).unwrap();
        assert_eq!((&owned, used), (&track, bytes.len()));
        let (borrowed, _): (Track, usize) =
            bincode::borrow_decode_from_slice(&bytes, config).unwrap();
        assert_eq!(borrowed, track);
        assert_eq!(serde_json::to_string(&borrowed).unwrap(), json);
        // user_data alone, any JSON value.
        let mut only = TrackFields::new("QAAA", "t");
        only.user_data = Some(serde_json::json!(42));
        let only = Track::from(only);
        assert_eq!(only.user_data_json(), Some("42"));
        assert_eq!(only.plugin_info(), None);
        // Without the new fields: no extra block, the old bytes.
        let plain = Track::new("QAAAjQIAJVJpY2sg", "Song");
        let plain_bytes = bincode::encode_to_vec(&plain, config).unwrap();
        assert_eq!(plain_bytes[0] & PRESENT_EXTRA, 0);
        assert_eq!(plain.extra_len(), 0);
        // A damaged extra block is refused.
        let mut bad = bytes.clone();
        let last = bad.len() - 2;
        bad[last] = b'{';
        assert!(bincode::decode_from_slice::<Track, _>(&bad, config).is_err());
        // Caps: user data with plugin_info, artwork_url and isrc.
        let mut big = TrackFields::new("QAAA", "t");
        big.user_data = Some(serde_json::Value::String(
            "x".repeat(USER_DATA_BYTES_MAX - 2),
        ));
        assert_eq!(Track::from(big.clone()).validate("tracks[0]"), Ok(()));
        big.plugin_info = Some(serde_json::Map::new());
        assert_eq!(
            Track::from(big.clone()).validate("tracks[0]"),
            Err(EventError::DataTooLarge {
                field: "tracks[0].user_data".to_owned(),
                len: USER_DATA_BYTES_MAX + 2,
                max: USER_DATA_BYTES_MAX,
            })
        );
        // Far over the cap (a block longer than a u16 counts): still refused, never truncated.
        let mut huge = TrackFields::new("QAAA", "t");
        huge.user_data = Some(serde_json::Value::String("x".repeat(70_000)));
        let huge = Track::from(huge);
        assert_eq!(huge.user_data_json().map(str::len), Some(70_002));
        assert!(matches!(
            huge.validate("tracks[0]"),
            Err(EventError::DataTooLarge { len: 70_002, .. })
        ));
        let mut long = TrackFields::new("QAAA", "t");
        long.isrc = Some("x".repeat(TEXT_LEN_MAX + 1));
        assert!(matches!(
            Track::from(long).validate("tracks[1]"),
            Err(EventError::TooLong { field, .. }) if field == "tracks[1].isrc"
        ));
        assert!(serde_json::from_str::<Track>(
            r#"{"encoded":"QAAA","title":"t","plugin_info":[1]}"#
        )
        .is_err());
        assert!(
            serde_json::from_str::<Track>(r#"{"encoded":"QAAA","title":"t","userData":1}"#)
                .is_err()
        );
    }
}

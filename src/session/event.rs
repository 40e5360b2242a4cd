//! [`Event`]: one mutation of a guild's session, and its JSON form (contract §1).
//!
//! Serialization is derived (internally tagged by `"type"`, snake_case, optional fields skipped
//! when absent). Deserialization is written by hand as one streaming pass over the object, so
//! that every unknown field is rejected — including on the field-less events, which serde's
//! derive lets through — and every error keeps serde_json's line and column. The `type` key may
//! appear anywhere in the object.

use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{FilterConfig, Meta, State, Track};

mod codec;

/// One mutation of a guild's session. The state is the fold of these (see [`crate::session::apply`]).
///
/// The JSON form is an object with a snake_case `"type"` and the variant's fields; the binary
/// (bincode) form carries exactly the same information, so JSON → binary → JSON gives back the
/// same event.
///
/// The binary form is a varint `u32` tag, then the fields in declaration order. It is part of
/// the journal format and only ever grows (new tags at the end): tags 0–18 are the variants in
/// declaration order as the code before issue 19 wrote them (`seeked` and `position_reported`
/// without `entry_id`); 19 is `guild_meta_set` (`meta` as compact JSON text); 20 is
/// `position_reported` with an `entry_id` (after `at_unix_ms`); 21 is `seeked` with an
/// `entry_id` (after `position_ms`). An event without `entry_id` is written with its old tag, so
/// its bytes are the same as before.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// `volume_set`: the player volume changed.
    VolumeSet {
        /// The new volume, `0..=1000` (100 = unchanged).
        volume: u16,
    },
    /// `paused_set`: the player was paused or resumed.
    PausedSet {
        /// Whether playback is paused.
        paused: bool,
    },
    /// `seeked`: the current track was seeked.
    Seeked {
        /// The new position in the current track, in milliseconds.
        position_ms: u64,
        /// The queue entry the seek was for (`QueueEntry::id`), if named. When it is not the
        /// current entry any more, the event is accepted and changes nothing but
        /// `State::stale_reports`.
        #[serde(skip_serializing_if = "Option::is_none")]
        entry_id: Option<u64>,
    },
    /// `position_reported`: Lavalink reported the playback position (its `playerUpdate`).
    PositionReported {
        /// The position in the current track, in milliseconds.
        position_ms: u64,
        /// When that position was true, in Unix milliseconds.
        at_unix_ms: u64,
        /// The queue entry the report is about (`QueueEntry::id`), if named. A report for an
        /// entry that is no longer current (a late `playerUpdate` of the previous track) is
        /// accepted and changes nothing but `State::stale_reports`.
        #[serde(skip_serializing_if = "Option::is_none")]
        entry_id: Option<u64>,
    },
    /// `voice_connected`: the bot joined (or moved to) a voice channel.
    VoiceConnected {
        /// The Discord voice session id.
        session_id: String,
        /// The voice channel, as a JSON string or number (kept as given).
        channel_id: Snowflake,
        /// The voice server endpoint, if known.
        #[serde(skip_serializing_if = "Option::is_none")]
        endpoint: Option<String>,
        /// The voice server token, if known.
        #[serde(skip_serializing_if = "Option::is_none")]
        token: Option<String>,
    },
    /// `voice_disconnected`: the bot left voice; voice data is cleared.
    VoiceDisconnected,
    /// `tracks_enqueued`: tracks were added to the upcoming queue.
    TracksEnqueued {
        /// The tracks, in order (at least one).
        tracks: Vec<Track>,
        /// Where in `upcoming` to insert them; absent means at the end.
        #[serde(skip_serializing_if = "Option::is_none")]
        index: Option<u32>,
    },
    /// `track_removed`: `upcoming[index]` was removed.
    TrackRemoved {
        /// The position in `upcoming`.
        index: u32,
    },
    /// `track_moved`: `upcoming[from]` was moved to position `to`.
    TrackMoved {
        /// The entry's position before the move.
        from: u32,
        /// The entry's position after the move.
        to: u32,
    },
    /// `queue_cleared`: the upcoming queue was emptied (current and history are kept).
    QueueCleared,
    /// `track_started`: `upcoming[0]` became the current track.
    TrackStarted,
    /// `track_ended`: the current track ended and went to history.
    TrackEnded {
        /// Why it ended; [`EndReason::Stopped`] also clears the upcoming queue.
        reason: EndReason,
    },
    /// `loop_mode_set`: the queue loop mode changed.
    LoopModeSet {
        /// The new loop mode.
        mode: LoopMode,
    },
    /// `shuffle_set`: shuffle was turned on or off.
    ShuffleSet {
        /// Whether shuffle is on.
        enabled: bool,
        /// The seed that fixes the shuffled order, if any.
        #[serde(skip_serializing_if = "Option::is_none")]
        seed: Option<u64>,
    },
    /// `filters_set`: the audio filters were replaced as a whole.
    FiltersSet {
        /// The names of the active filter presets (e.g. `bassboost`, `nightcore`).
        active: Vec<String>,
        /// The Lavalink filter configuration (boxed: it is by far the largest payload, and
        /// boxing keeps every other event small).
        config: Box<FilterConfig>,
    },
    /// `filters_cleared`: no filters any more.
    FiltersCleared,
    /// `autoplay_set`: the autoplay settings were replaced.
    AutoplaySet {
        /// Whether autoplay is on.
        enabled: bool,
        /// The autoplay strategy name (e.g. `similar_artist`).
        strategy: String,
        /// The playlist to fall back to when the strategy finds nothing.
        #[serde(skip_serializing_if = "Option::is_none")]
        fallback_playlist: Option<String>,
        /// How many played tracks autoplay remembers to avoid repeats.
        #[serde(skip_serializing_if = "Option::is_none")]
        max_history: Option<u32>,
        /// Whether autoplay shuffles its picks.
        #[serde(skip_serializing_if = "Option::is_none")]
        smart_shuffle: Option<bool>,
    },
    /// `session_ended`: the session is over (explicit stop); the state is reset.
    SessionEnded,
    /// `state_restored`: the whole state was replaced by a recorded one (a restore to an earlier
    /// point, a deployment rollback, the undo of a failed restore). One event, so a restore is
    /// crash-consistent by construction: recovery gives the state before it or after it,
    /// never a mix.
    ///
    /// After it the guild's state is exactly `state`, except `history_max`, which stays the
    /// guild's own (a fold parameter; `state.history_max` is kept in the event as recorded).
    /// Entry ids and `next_entry_id` are taken as given: the library's restores
    /// ([`crate::restore`]) keep ids growing by passing the larger `next_entry_id`.
    StateRestored {
        /// The state the guild has after this event, in the JSON form `reprise state` prints
        /// (without `guild` and `seq`). Boxed: it is by far the largest payload.
        state: Box<State>,
        /// The guild's sequence number whose state this was, when it came from the guild's
        /// own past (informational: not checked against the log).
        #[serde(skip_serializing_if = "Option::is_none")]
        from_seq: Option<u64>,
        /// A short free-form label: the checkpoint name, `rollback`, ... (1 to
        /// [`crate::session::NAME_LEN_MAX`] bytes).
        #[serde(skip_serializing_if = "Option::is_none")]
        label: Option<String>,
    },
    /// `guild_meta_set`: the guild's `meta` (a JSON object the bot owns: a text channel, a
    /// 24/7 flag, ...) is replaced as a whole. At most
    /// [`crate::session::limits::META_BYTES_MAX`] bytes of compact JSON.
    GuildMetaSet {
        /// The new `meta`.
        meta: Meta,
    },
}

/// Why a track ended (`track_ended.reason`).
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    bincode::Encode,
    bincode::Decode,
)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// `finished`: played to the end.
    Finished,
    /// `skipped`: skipped by a user.
    Skipped,
    /// `stopped`: playback stopped; the upcoming queue is cleared too.
    Stopped,
    /// `load_failed`: the track could not be loaded or played.
    LoadFailed,
}

/// The queue loop mode (`loop_mode_set.mode`).
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    bincode::Encode,
    bincode::Decode,
)]
#[serde(rename_all = "snake_case")]
pub enum LoopMode {
    /// `none`: no looping (the default).
    #[default]
    None,
    /// `track`: repeat the current track.
    Track,
    /// `queue`: repeat the whole queue.
    Queue,
    /// `autoplay`: keep playing with autoplay picks when the queue runs out.
    Autoplay,
}

impl LoopMode {
    /// The snake_case name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            LoopMode::None => "none",
            LoopMode::Track => "track",
            LoopMode::Queue => "queue",
            LoopMode::Autoplay => "autoplay",
        }
    }
}

impl EndReason {
    /// The snake_case name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Finished => "finished",
            EndReason::Skipped => "skipped",
            EndReason::Stopped => "stopped",
            EndReason::LoadFailed => "load_failed",
        }
    }
}

/// A Discord id (`voice_connected.channel_id`) that remembers whether it was given as a JSON
/// number or a JSON string, and is written back the same way.
#[derive(Clone, Debug, PartialEq, Eq, Hash, bincode::Encode, bincode::Decode)]
pub enum Snowflake {
    /// Given as a JSON number.
    Number(u64),
    /// Given as a JSON string (valid only as 1–20 decimal digits that fit a `u64`; checked by
    /// [`crate::session::validate`]).
    Text(String),
}

impl From<u64> for Snowflake {
    /// The id as a JSON number.
    fn from(id: u64) -> Snowflake {
        Snowflake::Number(id)
    }
}

impl Snowflake {
    /// The id as a number: `None` for a string form that is not a decimal `u64`.
    pub fn get(&self) -> Option<u64> {
        match self {
            Snowflake::Number(n) => Some(*n),
            Snowflake::Text(text) => {
                let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
                if digits {
                    text.parse().ok()
                } else {
                    None
                }
            }
        }
    }
}

impl fmt::Display for Snowflake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Snowflake::Number(n) => write!(f, "{n}"),
            Snowflake::Text(text) => f.write_str(text),
        }
    }
}

impl Serialize for Snowflake {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Snowflake::Number(n) => serializer.serialize_u64(*n),
            Snowflake::Text(text) => serializer.serialize_str(text),
        }
    }
}

impl<'de> Deserialize<'de> for Snowflake {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SnowflakeVisitor)
    }
}

/// Reads a [`Snowflake`] from a non-negative integer or a string.
struct SnowflakeVisitor;

impl Visitor<'_> for SnowflakeVisitor {
    type Value = Snowflake;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a snowflake id as a non-negative integer or a string")
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Snowflake, E> {
        Ok(Snowflake::Number(value))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Snowflake, E> {
        u64::try_from(value)
            .map(Snowflake::Number)
            .map_err(|_| E::invalid_value(de::Unexpected::Signed(value), &self))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Snowflake, E> {
        Ok(Snowflake::Text(value.to_owned()))
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<Snowflake, E> {
        Ok(Snowflake::Text(value))
    }
}

/// An event that could not be read from JSON: not JSON, an unknown `type`, an unknown or
/// duplicate field, a missing field, or a value of the wrong type.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid event JSON at line {line}, column {column}: {message}")]
#[non_exhaustive]
pub struct EventParseError {
    /// serde_json's message, without its position suffix.
    pub message: String,
    /// The 1-based line of the error (0 if unknown).
    pub line: usize,
    /// The 1-based column of the error (0 if unknown).
    pub column: usize,
}

impl From<serde_json::Error> for EventParseError {
    fn from(error: serde_json::Error) -> Self {
        let (line, column) = (error.line(), error.column());
        let text = error.to_string();
        let suffix = format!(" at line {line} column {column}");
        let message = text.strip_suffix(&suffix).unwrap_or(&text).to_owned();
        EventParseError {
            message,
            line,
            column,
        }
    }
}

impl Event {
    /// `tracks_enqueued` at the end of the upcoming queue.
    pub fn enqueue(tracks: impl IntoIterator<Item = impl Into<Track>>) -> Event {
        Event::TracksEnqueued {
            tracks: tracks.into_iter().map(Into::into).collect(),
            index: None,
        }
    }

    /// `tracks_enqueued` at `index` in the upcoming queue (`0`: play next).
    pub fn enqueue_at(index: u32, tracks: impl IntoIterator<Item = impl Into<Track>>) -> Event {
        Event::TracksEnqueued {
            tracks: tracks.into_iter().map(Into::into).collect(),
            index: Some(index),
        }
    }

    /// `filters_set` with the preset names `active` and `config` (see the builders
    /// [`FilterConfig::timescale`] and [`FilterConfig::equalizer`]).
    pub fn filters(
        active: impl IntoIterator<Item = impl Into<String>>,
        config: FilterConfig,
    ) -> Event {
        Event::FiltersSet {
            active: active.into_iter().map(Into::into).collect(),
            config: Box::new(config),
        }
    }

    /// `position_reported` for queue entry `entry_id` (Lavalink's `playerUpdate`: `position_ms`
    /// was true at `at_unix_ms`); ignored if that entry is no longer current.
    pub fn position_of(entry_id: u64, position_ms: u64, at_unix_ms: u64) -> Event {
        Event::PositionReported {
            position_ms,
            at_unix_ms,
            entry_id: Some(entry_id),
        }
    }

    /// `guild_meta_set`: the guild's `meta` becomes `meta`.
    pub fn meta(meta: Meta) -> Event {
        Event::GuildMetaSet { meta }
    }

    /// Reads one event from its JSON form (contract §1).
    ///
    /// # Errors
    /// [`EventParseError`] for malformed JSON, an unknown `type`, an unknown, duplicate or
    /// missing field, or a value of the wrong type or width. Whether the event *applies* to a
    /// state is a separate question: see [`crate::session::validate`].
    pub fn from_json(json: &str) -> Result<Event, EventParseError> {
        serde_json::from_str(json).map_err(EventParseError::from)
    }

    /// Writes the event in its JSON form (one line, no trailing newline).
    pub fn to_json(&self) -> String {
        match serde_json::to_string(self) {
            Ok(json) => json,
            // Unreachable: every map key is a string and no Serialize impl in this module
            // returns an error (serde_json writes a non-finite float as `null`). Falling back
            // to the bare type keeps this function total without a panic path.
            Err(_) => format!(r#"{{"type":"{}"}}"#, self.kind()),
        }
    }

    /// The snake_case type name (`"volume_set"`, ...), as in JSON.
    pub fn kind(&self) -> &'static str {
        self.tag().name()
    }

    /// The event's type as a [`Kind`].
    fn tag(&self) -> Kind {
        match self {
            Event::VolumeSet { .. } => Kind::VolumeSet,
            Event::PausedSet { .. } => Kind::PausedSet,
            Event::Seeked { .. } => Kind::Seeked,
            Event::PositionReported { .. } => Kind::PositionReported,
            Event::VoiceConnected { .. } => Kind::VoiceConnected,
            Event::VoiceDisconnected => Kind::VoiceDisconnected,
            Event::TracksEnqueued { .. } => Kind::TracksEnqueued,
            Event::TrackRemoved { .. } => Kind::TrackRemoved,
            Event::TrackMoved { .. } => Kind::TrackMoved,
            Event::QueueCleared => Kind::QueueCleared,
            Event::TrackStarted => Kind::TrackStarted,
            Event::TrackEnded { .. } => Kind::TrackEnded,
            Event::LoopModeSet { .. } => Kind::LoopModeSet,
            Event::ShuffleSet { .. } => Kind::ShuffleSet,
            Event::FiltersSet { .. } => Kind::FiltersSet,
            Event::FiltersCleared => Kind::FiltersCleared,
            Event::AutoplaySet { .. } => Kind::AutoplaySet,
            Event::SessionEnded => Kind::SessionEnded,
            Event::StateRestored { .. } => Kind::StateRestored,
            Event::GuildMetaSet { .. } => Kind::GuildMetaSet,
        }
    }
}

/// Every event type name, in contract order (for "expected one of" messages).
const KIND_NAMES: &[&str] = &[
    "volume_set",
    "paused_set",
    "seeked",
    "position_reported",
    "voice_connected",
    "voice_disconnected",
    "tracks_enqueued",
    "track_removed",
    "track_moved",
    "queue_cleared",
    "track_started",
    "track_ended",
    "loop_mode_set",
    "shuffle_set",
    "filters_set",
    "filters_cleared",
    "autoplay_set",
    "session_ended",
    "state_restored",
    "guild_meta_set",
];

/// An event type, without its data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    VolumeSet,
    PausedSet,
    Seeked,
    PositionReported,
    VoiceConnected,
    VoiceDisconnected,
    TracksEnqueued,
    TrackRemoved,
    TrackMoved,
    QueueCleared,
    TrackStarted,
    TrackEnded,
    LoopModeSet,
    ShuffleSet,
    FiltersSet,
    FiltersCleared,
    AutoplaySet,
    SessionEnded,
    StateRestored,
    GuildMetaSet,
}

impl Kind {
    /// The snake_case type name.
    fn name(self) -> &'static str {
        match self {
            Kind::VolumeSet => "volume_set",
            Kind::PausedSet => "paused_set",
            Kind::Seeked => "seeked",
            Kind::PositionReported => "position_reported",
            Kind::VoiceConnected => "voice_connected",
            Kind::VoiceDisconnected => "voice_disconnected",
            Kind::TracksEnqueued => "tracks_enqueued",
            Kind::TrackRemoved => "track_removed",
            Kind::TrackMoved => "track_moved",
            Kind::QueueCleared => "queue_cleared",
            Kind::TrackStarted => "track_started",
            Kind::TrackEnded => "track_ended",
            Kind::LoopModeSet => "loop_mode_set",
            Kind::ShuffleSet => "shuffle_set",
            Kind::FiltersSet => "filters_set",
            Kind::FiltersCleared => "filters_cleared",
            Kind::AutoplaySet => "autoplay_set",
            Kind::SessionEnded => "session_ended",
            Kind::StateRestored => "state_restored",
            Kind::GuildMetaSet => "guild_meta_set",
        }
    }

    /// The kind with this type name.
    fn from_name(name: &str) -> Option<Kind> {
        let kind = match name {
            "volume_set" => Kind::VolumeSet,
            "paused_set" => Kind::PausedSet,
            "seeked" => Kind::Seeked,
            "position_reported" => Kind::PositionReported,
            "voice_connected" => Kind::VoiceConnected,
            "voice_disconnected" => Kind::VoiceDisconnected,
            "tracks_enqueued" => Kind::TracksEnqueued,
            "track_removed" => Kind::TrackRemoved,
            "track_moved" => Kind::TrackMoved,
            "queue_cleared" => Kind::QueueCleared,
            "track_started" => Kind::TrackStarted,
            "track_ended" => Kind::TrackEnded,
            "loop_mode_set" => Kind::LoopModeSet,
            "shuffle_set" => Kind::ShuffleSet,
            "filters_set" => Kind::FiltersSet,
            "filters_cleared" => Kind::FiltersCleared,
            "autoplay_set" => Kind::AutoplaySet,
            "session_ended" => Kind::SessionEnded,
            "state_restored" => Kind::StateRestored,
            "guild_meta_set" => Kind::GuildMetaSet,
            _ => return None,
        };
        Some(kind)
    }

    /// The data fields this type accepts (besides `type`).
    fn fields(self) -> &'static [&'static str] {
        match self {
            Kind::VolumeSet => &["volume"],
            Kind::PausedSet => &["paused"],
            Kind::Seeked => &["position_ms", "entry_id"],
            Kind::PositionReported => &["position_ms", "at_unix_ms", "entry_id"],
            Kind::VoiceConnected => &["session_id", "channel_id", "endpoint", "token"],
            Kind::TracksEnqueued => &["tracks", "index"],
            Kind::TrackRemoved => &["index"],
            Kind::TrackMoved => &["from", "to"],
            Kind::TrackEnded => &["reason"],
            Kind::LoopModeSet => &["mode"],
            Kind::ShuffleSet => &["enabled", "seed"],
            Kind::FiltersSet => &["active", "config"],
            Kind::AutoplaySet => &[
                "enabled",
                "strategy",
                "fallback_playlist",
                "max_history",
                "smart_shuffle",
            ],
            Kind::StateRestored => &["state", "from_seq", "label"],
            Kind::GuildMetaSet => &["meta"],
            Kind::VoiceDisconnected
            | Kind::QueueCleared
            | Kind::TrackStarted
            | Kind::FiltersCleared
            | Kind::SessionEnded => &[],
        }
    }
}

/// Every data field of every event type (for "expected one of" messages before `type` is known).
const FIELD_NAMES: &[&str] = &[
    "type",
    "volume",
    "paused",
    "position_ms",
    "at_unix_ms",
    "session_id",
    "channel_id",
    "endpoint",
    "token",
    "tracks",
    "index",
    "from",
    "to",
    "reason",
    "mode",
    "enabled",
    "seed",
    "active",
    "config",
    "strategy",
    "fallback_playlist",
    "max_history",
    "smart_shuffle",
    "state",
    "from_seq",
    "label",
    "entry_id",
    "meta",
];

/// The values read so far, one slot per field name of any event type. An optional field's slot is
/// `Option<Option<T>>`: the outer level records that the key was seen (for duplicate detection),
/// the inner one that it was not `null`.
#[derive(Default)]
struct Slots {
    volume: Option<u16>,
    paused: Option<bool>,
    position_ms: Option<u64>,
    at_unix_ms: Option<u64>,
    session_id: Option<String>,
    channel_id: Option<Snowflake>,
    endpoint: Option<Option<String>>,
    token: Option<Option<String>>,
    tracks: Option<Vec<Track>>,
    index: Option<Option<u32>>,
    from: Option<u32>,
    to: Option<u32>,
    reason: Option<EndReason>,
    mode: Option<LoopMode>,
    enabled: Option<bool>,
    seed: Option<Option<u64>>,
    active: Option<Vec<String>>,
    config: Option<FilterConfig>,
    strategy: Option<String>,
    fallback_playlist: Option<Option<String>>,
    max_history: Option<Option<u32>>,
    smart_shuffle: Option<Option<bool>>,
    state: Option<Box<State>>,
    from_seq: Option<Option<u64>>,
    label: Option<Option<String>>,
    entry_id: Option<Option<u64>>,
    meta: Option<Meta>,
}

/// Reads the next value into `slot`, rejecting a second occurrence of the key.
fn fill<'de, A, T>(map: &mut A, slot: &mut Option<T>, name: &'static str) -> Result<(), A::Error>
where
    A: MapAccess<'de>,
    T: Deserialize<'de>,
{
    if slot.is_some() {
        return Err(de::Error::duplicate_field(name));
    }
    *slot = Some(map.next_value()?);
    Ok(())
}

/// A required field's value, or a "missing field" error.
fn required<T, E: de::Error>(slot: Option<T>, name: &'static str) -> Result<T, E> {
    slot.ok_or_else(|| E::missing_field(name))
}

impl Slots {
    /// Reads the value of field `name` into its slot. `name` is one of [`FIELD_NAMES`] other than
    /// `type`; anything else is an unknown field.
    fn read<'de, A: MapAccess<'de>>(&mut self, map: &mut A, name: &str) -> Result<(), A::Error> {
        match name {
            "volume" => fill(map, &mut self.volume, "volume"),
            "paused" => fill(map, &mut self.paused, "paused"),
            "position_ms" => fill(map, &mut self.position_ms, "position_ms"),
            "at_unix_ms" => fill(map, &mut self.at_unix_ms, "at_unix_ms"),
            "session_id" => fill(map, &mut self.session_id, "session_id"),
            "channel_id" => fill(map, &mut self.channel_id, "channel_id"),
            "endpoint" => fill(map, &mut self.endpoint, "endpoint"),
            "token" => fill(map, &mut self.token, "token"),
            "tracks" => fill(map, &mut self.tracks, "tracks"),
            "index" => fill(map, &mut self.index, "index"),
            "from" => fill(map, &mut self.from, "from"),
            "to" => fill(map, &mut self.to, "to"),
            "reason" => fill(map, &mut self.reason, "reason"),
            "mode" => fill(map, &mut self.mode, "mode"),
            "enabled" => fill(map, &mut self.enabled, "enabled"),
            "seed" => fill(map, &mut self.seed, "seed"),
            "active" => fill(map, &mut self.active, "active"),
            "config" => fill(map, &mut self.config, "config"),
            "strategy" => fill(map, &mut self.strategy, "strategy"),
            "fallback_playlist" => fill(map, &mut self.fallback_playlist, "fallback_playlist"),
            "max_history" => fill(map, &mut self.max_history, "max_history"),
            "smart_shuffle" => fill(map, &mut self.smart_shuffle, "smart_shuffle"),
            "state" => fill(map, &mut self.state, "state"),
            "from_seq" => fill(map, &mut self.from_seq, "from_seq"),
            "label" => fill(map, &mut self.label, "label"),
            "entry_id" => fill(map, &mut self.entry_id, "entry_id"),
            "meta" => fill(map, &mut self.meta, "meta"),
            other => Err(de::Error::unknown_field(other, FIELD_NAMES)),
        }
    }

    /// Builds the event of type `kind` from the slots, which hold only fields of that type.
    fn build<E: de::Error>(self, kind: Kind) -> Result<Event, E> {
        let event = match kind {
            Kind::VolumeSet => Event::VolumeSet {
                volume: required(self.volume, "volume")?,
            },
            Kind::PausedSet => Event::PausedSet {
                paused: required(self.paused, "paused")?,
            },
            Kind::Seeked => Event::Seeked {
                position_ms: required(self.position_ms, "position_ms")?,
                entry_id: self.entry_id.flatten(),
            },
            Kind::PositionReported => Event::PositionReported {
                position_ms: required(self.position_ms, "position_ms")?,
                at_unix_ms: required(self.at_unix_ms, "at_unix_ms")?,
                entry_id: self.entry_id.flatten(),
            },
            Kind::VoiceConnected => Event::VoiceConnected {
                session_id: required(self.session_id, "session_id")?,
                channel_id: required(self.channel_id, "channel_id")?,
                endpoint: self.endpoint.flatten(),
                token: self.token.flatten(),
            },
            Kind::VoiceDisconnected => Event::VoiceDisconnected,
            Kind::TracksEnqueued => Event::TracksEnqueued {
                tracks: required(self.tracks, "tracks")?,
                index: self.index.flatten(),
            },
            Kind::TrackRemoved => Event::TrackRemoved {
                index: required(self.index.flatten(), "index")?,
            },
            Kind::TrackMoved => Event::TrackMoved {
                from: required(self.from, "from")?,
                to: required(self.to, "to")?,
            },
            Kind::QueueCleared => Event::QueueCleared,
            Kind::TrackStarted => Event::TrackStarted,
            Kind::TrackEnded => Event::TrackEnded {
                reason: required(self.reason, "reason")?,
            },
            Kind::LoopModeSet => Event::LoopModeSet {
                mode: required(self.mode, "mode")?,
            },
            Kind::ShuffleSet => Event::ShuffleSet {
                enabled: required(self.enabled, "enabled")?,
                seed: self.seed.flatten(),
            },
            Kind::FiltersSet => Event::FiltersSet {
                active: required(self.active, "active")?,
                config: Box::new(required(self.config, "config")?),
            },
            Kind::FiltersCleared => Event::FiltersCleared,
            Kind::AutoplaySet => Event::AutoplaySet {
                enabled: required(self.enabled, "enabled")?,
                strategy: required(self.strategy, "strategy")?,
                fallback_playlist: self.fallback_playlist.flatten(),
                max_history: self.max_history.flatten(),
                smart_shuffle: self.smart_shuffle.flatten(),
            },
            Kind::SessionEnded => Event::SessionEnded,
            Kind::StateRestored => Event::StateRestored {
                state: required(self.state, "state")?,
                from_seq: self.from_seq.flatten(),
                label: self.label.flatten(),
            },
            Kind::GuildMetaSet => Event::GuildMetaSet {
                meta: required(self.meta, "meta")?,
            },
        };
        Ok(event)
    }
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(EventVisitor)
    }
}

/// Reads an [`Event`] from a map in one pass.
struct EventVisitor;

impl<'de> Visitor<'de> for EventVisitor {
    type Value = Event;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an event object with a \"type\" field")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Event, A::Error> {
        let mut kind: Option<Kind> = None;
        let mut slots = Slots::default();
        // Fields read before `type`: checked against the type once it is known.
        let mut early: Vec<String> = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if key == "type" {
                if kind.is_some() {
                    return Err(de::Error::duplicate_field("type"));
                }
                let name: String = map.next_value()?;
                let Some(found) = Kind::from_name(&name) else {
                    return Err(de::Error::unknown_variant(&name, KIND_NAMES));
                };
                if let Some(stray) = early.iter().find(|f| !found.fields().contains(&f.as_str())) {
                    return Err(de::Error::unknown_field(stray, found.fields()));
                }
                kind = Some(found);
                continue;
            }
            match kind {
                Some(kind) if !kind.fields().contains(&key.as_str()) => {
                    return Err(de::Error::unknown_field(&key, kind.fields()));
                }
                Some(_) => {}
                None => early.push(key.clone()),
            }
            slots.read(&mut map, &key)?;
        }
        let kind = kind.ok_or_else(|| de::Error::missing_field("type"))?;
        slots.build(kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{EqualizerBand, Timescale};

    /// One hand-written example of every event type, in contract order.
    pub(crate) const EXAMPLES: [&str; 20] = [
        r#"{"type":"volume_set","volume":80}"#,
        r#"{"type":"paused_set","paused":true}"#,
        r#"{"type":"seeked","position_ms":45000}"#,
        r#"{"type":"position_reported","position_ms":45000,"at_unix_ms":1760000000123,"entry_id":2}"#,
        r#"{"type":"voice_connected","session_id":"4f1c0a8b9e","channel_id":"1100000000000000001","endpoint":"us-east1.discord.media:443","token":"a1b2c3"}"#,
        r#"{"type":"voice_disconnected"}"#,
        r#"{"type":"tracks_enqueued","tracks":[{"encoded":"QAAAjQIAJVJpY2sg","title":"Never Gonna Give You Up","author":"Rick Astley","uri":"https://youtube.com/watch?v=dQw4w9WgXcQ","identifier":"dQw4w9WgXcQ","length_ms":213000,"is_stream":false,"is_seekable":true,"source":"youtube"},{"encoded":"QAAB","title":"夜に駆ける 🎵"}],"index":0}"#,
        r#"{"type":"track_removed","index":2}"#,
        r#"{"type":"track_moved","from":3,"to":0}"#,
        r#"{"type":"queue_cleared"}"#,
        r#"{"type":"track_started"}"#,
        r#"{"type":"track_ended","reason":"load_failed"}"#,
        r#"{"type":"loop_mode_set","mode":"autoplay"}"#,
        r#"{"type":"shuffle_set","enabled":true,"seed":18446744073709551615}"#,
        r#"{"type":"filters_set","active":["bassboost","nightcore"],"config":{"equalizer":[{"band":0,"gain":0.2},{"band":1,"gain":0.15}],"timescale":{"speed":1.2,"pitch":1.1,"rate":1.0}}}"#,
        r#"{"type":"filters_cleared"}"#,
        r#"{"type":"autoplay_set","enabled":true,"strategy":"similar_artist","fallback_playlist":"global_fallback","max_history":50,"smart_shuffle":true}"#,
        r#"{"type":"session_ended"}"#,
        r#"{"type":"state_restored","state":{"player":{"volume":80,"paused":true,"position_ms":45000,"position_anchor_unix_ms":1760000000123,"voice":{"session_id":"4f1c0a8b9e","channel_id":"1100000000000000001","endpoint":"us-east1.discord.media:443","token":null}},"queue":{"current":{"id":2,"track":{"encoded":"QAAAjQIAJVJpY2sg","title":"Never Gonna Give You Up","length_ms":213000}},"upcoming":[{"id":3,"track":{"encoded":"QAAB","title":"夜に駆ける 🎵"}}],"history":[{"id":1,"track":{"encoded":"QAAC","title":"Intro"}}],"loop_mode":"queue","shuffle":true,"shuffle_seed":7},"filters":{"active":["nightcore"],"config":{"timescale":{"speed":1.25}}},"autoplay":{"enabled":true,"strategy":"similar_artist","fallback_playlist":null,"max_history":50,"smart_shuffle":null},"history_max":50,"next_entry_id":4,"meta":{"text_channel":"1100000000000000002","twenty_four_seven":true},"stale_reports":3},"from_seq":41,"label":"before-deploy"}"#,
        r#"{"type":"guild_meta_set","meta":{"dj_role":{"id":7,"name":"DJ ♪"},"text_channel":"1100000000000000002","twenty_four_seven":true}}"#,
    ];

    #[test]
    fn every_example_parses_and_writes_back_exactly() {
        let mut kinds = Vec::new();
        for json in EXAMPLES {
            let event = Event::from_json(json).unwrap_or_else(|e| panic!("{json}: {e}"));
            assert_eq!(event.to_json(), json);
            assert_eq!(Event::from_json(&event.to_json()), Ok(event.clone()));
            kinds.push(event.kind());
        }
        assert_eq!(kinds, KIND_NAMES);
    }

    #[test]
    fn kind_names_agree_with_serde() {
        for json in EXAMPLES {
            let event = Event::from_json(json).unwrap();
            let value: serde_json::Value = serde_json::from_str(&event.to_json()).unwrap();
            assert_eq!(value["type"], event.kind());
            assert_eq!(Kind::from_name(event.kind()), Some(event.tag()));
        }
    }

    #[test]
    fn exact_text_of_some_events() {
        let event = Event::TracksEnqueued {
            tracks: vec![Track::new("QAAA", "Song")],
            index: None,
        };
        assert_eq!(
            event.to_json(),
            r#"{"type":"tracks_enqueued","tracks":[{"encoded":"QAAA","title":"Song"}]}"#
        );
        let event = Event::ShuffleSet {
            enabled: false,
            seed: None,
        };
        assert_eq!(event.to_json(), r#"{"type":"shuffle_set","enabled":false}"#);
        let event = Event::VoiceConnected {
            session_id: "s".into(),
            channel_id: Snowflake::Number(42),
            endpoint: None,
            token: None,
        };
        assert_eq!(
            event.to_json(),
            r#"{"type":"voice_connected","session_id":"s","channel_id":42}"#
        );
        let event = Event::AutoplaySet {
            enabled: false,
            strategy: "popular".into(),
            fallback_playlist: None,
            max_history: Some(10),
            smart_shuffle: None,
        };
        assert_eq!(
            event.to_json(),
            r#"{"type":"autoplay_set","enabled":false,"strategy":"popular","max_history":10}"#
        );
        let event = Event::FiltersSet {
            active: vec!["nightcore".into()],
            config: Box::new(FilterConfig {
                timescale: Some(Timescale {
                    speed: Some(1.25),
                    pitch: None,
                    rate: None,
                }),
                equalizer: Some(vec![EqualizerBand { band: 0, gain: 0.5 }]),
                ..FilterConfig::default()
            }),
        };
        assert_eq!(
            event.to_json(),
            r#"{"type":"filters_set","active":["nightcore"],"config":{"equalizer":[{"band":0,"gain":0.5}],"timescale":{"speed":1.25}}}"#
        );
        assert_eq!(Event::TrackStarted.to_json(), r#"{"type":"track_started"}"#);
    }

    #[test]
    fn channel_id_keeps_its_json_form() {
        let number =
            r#"{"type":"voice_connected","session_id":"s","channel_id":1100000000000000001}"#;
        let text =
            r#"{"type":"voice_connected","session_id":"s","channel_id":"1100000000000000001"}"#;
        for json in [number, text] {
            assert_eq!(Event::from_json(json).unwrap().to_json(), json);
        }
        let Ok(Event::VoiceConnected { channel_id, .. }) = Event::from_json(text) else {
            panic!("not parsed");
        };
        assert_eq!(channel_id.get(), Some(1_100_000_000_000_000_001));
        assert_eq!(Snowflake::Text("12a".into()).get(), None);
        assert_eq!(Snowflake::Text("+12".into()).get(), None);
        for bad in ["-1", "1.5", "true", "null", "[1]"] {
            let json =
                format!(r#"{{"type":"voice_connected","session_id":"s","channel_id":{bad}}}"#);
            assert!(Event::from_json(&json).is_err(), "{bad}");
        }
    }

    #[test]
    fn unknown_fields_rejected_on_every_type() {
        for json in [
            r#"{"type":"volume_set","volume":5,"x":1}"#,
            r#"{"type":"voice_disconnected","x":1}"#,
            r#"{"x":1,"type":"voice_disconnected"}"#,
            r#"{"type":"session_ended","volume":5}"#,
            r#"{"volume":5,"type":"paused_set","paused":true}"#,
            r#"{"type":"track_started","reason":"finished"}"#,
        ] {
            let error = Event::from_json(json).unwrap_err();
            assert!(error.message.contains("unknown field"), "{json}: {error}");
        }
        // Every example with one extra field is rejected.
        for json in EXAMPLES {
            let extra = json.replacen('{', r#"{"extra":0,"#, 1);
            assert!(Event::from_json(&extra).is_err(), "{extra}");
            let extra = format!("{},\"extra\":0}}", &json[..json.len() - 1]);
            assert!(Event::from_json(&extra).is_err(), "{extra}");
        }
    }

    #[test]
    fn errors_carry_position() {
        let error = Event::from_json(r#"{"type":"volume_set","volume":5,"x":1}"#).unwrap_err();
        assert_eq!(error.line, 1);
        assert!(error.column > 30, "{error:?}");
        assert!(error.message.starts_with("unknown field `x`"), "{error:?}");
        assert!(!error.message.contains(" at line "), "{error:?}");
        let error =
            Event::from_json("{\n\"type\": \"volume_set\",\n\"volume\": \"loud\"}").unwrap_err();
        assert_eq!(error.line, 3);
        assert!(error.to_string().contains("line 3"), "{error}");
    }

    #[test]
    fn missing_and_malformed_rejected() {
        for json in [
            r#"{"volume":5}"#,
            r#"{"type":"volume_set"}"#,
            r#"{"type":"position_reported","position_ms":1}"#,
            r#"{"type":"voice_connected","channel_id":1}"#,
            r#"{"type":"tracks_enqueued"}"#,
            r#"{"type":"track_removed"}"#,
            r#"{"type":"track_removed","index":null}"#,
            r#"{"type":"track_moved","from":1}"#,
            r#"{"type":"track_ended"}"#,
            r#"{"type":"track_ended","reason":"exploded"}"#,
            r#"{"type":"loop_mode_set","mode":"forever"}"#,
            r#"{"type":"shuffle_set"}"#,
            r#"{"type":"filters_set","active":[]}"#,
            r#"{"type":"autoplay_set","enabled":true}"#,
            r#"{"type":"volume_set","volume":70000}"#,
            r#"{"type":"volume_set","volume":-1}"#,
            r#"{"type":"volume_set","volume":5.5}"#,
            r#"{"type":"volume_set","volume":5,"volume":6}"#,
            r#"{"type":"volume_set","type":"volume_set","volume":5}"#,
            r#"{"type":"rewind"}"#,
            r#"{"type":5}"#,
            r#"{"type":"tracks_enqueued","tracks":[{"title":"no blob"}]}"#,
            r#"{"type":"tracks_enqueued","tracks":[{"encoded":"a","title":"b","length":5}]}"#,
            r#"{"type":"filters_set","active":[],"config":{"bass":1}}"#,
            r#"["volume_set",5]"#,
            r#"{"type":"volume_set","volume":5} trailing"#,
            r#"{"type":"volume_set","volume":5"#,
            "",
        ] {
            assert!(Event::from_json(json).is_err(), "{json}");
        }
    }

    #[test]
    fn null_optionals_read_as_absent() {
        let event = Event::from_json(
            r#"{"type":"tracks_enqueued","tracks":[{"encoded":"a","title":"b"}],"index":null}"#,
        )
        .unwrap();
        assert_eq!(
            event,
            Event::TracksEnqueued {
                tracks: vec![Track::new("a", "b")],
                index: None
            }
        );
        let event =
            Event::from_json(r#"{"type":"shuffle_set","seed":null,"enabled":true}"#).unwrap();
        assert_eq!(
            event,
            Event::ShuffleSet {
                enabled: true,
                seed: None
            }
        );
    }

    #[test]
    fn state_restored_json_is_strict() {
        let example = EXAMPLES[18];
        let event = Event::from_json(example).unwrap();
        let Event::StateRestored { state, .. } = &event else {
            panic!("not a state_restored");
        };
        // The embedded state is the JSON form of State (what `reprise state` prints).
        let state_json = serde_json::to_string(state.as_ref()).unwrap();
        assert!(example.contains(&state_json), "{state_json}");
        let bad = [
            // unknown fields at every level of the state
            example.replace(r#""player":{"#, r#""player":{"x":1,"#),
            example.replace(r#""state":{"#, r#""state":{"guild":1,"#),
            example.replace(r#""state":{"#, r#""state":{"seq":1,"#),
            example.replace(r#""queue":{"#, r#""queue":{"x":1,"#),
            example.replace(r#"{"id":3,"#, r#"{"x":0,"id":3,"#),
            example.replace(r#""filters":{"#, r#""filters":{"x":1,"#),
            example.replace(r#""autoplay":{"#, r#""autoplay":{"x":1,"#),
            example.replace(r#""voice":{"#, r#""voice":{"x":1,"#),
            example.replace(r#""title":"Intro""#, r#""title":"Intro","length":1"#),
            // duplicate fields inside the state and at the top
            example.replace(
                r#""player":{"volume":80,"#,
                r#""player":{"volume":80,"volume":81,"#,
            ),
            example.replace(
                r#""next_entry_id":4"#,
                r#""next_entry_id":4,"next_entry_id":4"#,
            ),
            example.replace(r#""from_seq":41"#, r#""from_seq":41,"from_seq":41"#),
            example.replace(r#""label":"before-deploy""#, r#""label":"a","label":"b""#),
            // wrong types and missing parts
            example.replace(r#""from_seq":41"#, r#""from_seq":"41""#),
            example.replace(r#""next_entry_id":4"#, r#""next_entry_id":-4"#),
            example.replace(r#","history_max":50,"next_entry_id":4"#, ""),
            r#"{"type":"state_restored"}"#.to_owned(),
            r#"{"type":"state_restored","state":null}"#.to_owned(),
            r#"{"type":"state_restored","state":{}}"#.to_owned(),
        ];
        for json in &bad {
            assert_ne!(json, example, "the replacement did not apply");
            assert!(Event::from_json(json).is_err(), "{json}");
        }
        // The optional parts may be absent or null.
        let minimal = format!(r#"{{"type":"state_restored","state":{state_json}}}"#);
        let parsed = Event::from_json(&minimal).unwrap();
        assert_eq!(parsed.to_json(), minimal);
        let nulls = format!(
            r#"{{"label":null,"type":"state_restored","from_seq":null,"state":{state_json}}}"#
        );
        assert_eq!(Event::from_json(&nulls).unwrap(), parsed);
    }

    #[test]
    fn type_may_come_last() {
        let event = Event::from_json(r#"{"from":1,"to":2,"type":"track_moved"}"#).unwrap();
        assert_eq!(event, Event::TrackMoved { from: 1, to: 2 });
    }

    #[test]
    fn bincode_round_trips_every_example() {
        let config = bincode::config::standard();
        for json in EXAMPLES {
            let event = Event::from_json(json).unwrap();
            let bytes = bincode::encode_to_vec(&event, config).unwrap();
            let (back, used): (Event, usize) = bincode::decode_from_slice(&bytes, config).unwrap();
            assert_eq!(used, bytes.len());
            assert_eq!(back, event);
            assert_eq!(back.to_json(), json);
        }
    }

    /// Events without the new fields keep the bytes the code before issue 19 wrote (tag, then
    /// the fields); the new forms take new tags, and a tag past them is refused.
    #[test]
    fn old_events_keep_their_bytes_and_new_forms_take_new_tags() {
        let config = bincode::config::standard();
        let bytes = |event: &Event| bincode::encode_to_vec(event, config).unwrap();
        let old = |fields: &dyn Fn(&mut Vec<u8>)| {
            let mut out = Vec::new();
            fields(&mut out);
            out
        };
        let report = Event::PositionReported {
            position_ms: 300,
            at_unix_ms: 1_760_000_000_000,
            entry_id: None,
        };
        let expected = old(&|out| {
            out.extend(
                bincode::encode_to_vec((3u32, 300u64, 1_760_000_000_000u64), config).unwrap(),
            )
        });
        assert_eq!(bytes(&report), expected);
        let seek = Event::Seeked {
            position_ms: 300,
            entry_id: None,
        };
        assert_eq!(
            bytes(&seek),
            bincode::encode_to_vec((2u32, 300u64), config).unwrap()
        );
        let bound = Event::PositionReported {
            position_ms: 300,
            at_unix_ms: 5,
            entry_id: Some(9),
        };
        assert_eq!(
            bytes(&bound),
            bincode::encode_to_vec((20u32, 300u64, 5u64, 9u64), config).unwrap()
        );
        let bound_seek = Event::Seeked {
            position_ms: 300,
            entry_id: Some(9),
        };
        assert_eq!(
            bytes(&bound_seek),
            bincode::encode_to_vec((21u32, 300u64, 9u64), config).unwrap()
        );
        let mut meta = Meta::new();
        meta.insert("a".to_owned(), true.into());
        let set = Event::GuildMetaSet { meta };
        assert_eq!(
            bytes(&set),
            bincode::encode_to_vec((19u32, r#"{"a":true}"#), config).unwrap()
        );
        for event in [report, seek, bound, bound_seek, set] {
            let encoded = bytes(&event);
            let (back, used): (Event, usize) =
                bincode::decode_from_slice(&encoded, config).unwrap();
            assert_eq!((back, used), (event, encoded.len()));
        }
        assert!(bincode::decode_from_slice::<Event, _>(&[22], config).is_err());
        // guild_meta_set wants an object.
        for bad in [
            r#"{"type":"guild_meta_set"}"#,
            r#"{"type":"guild_meta_set","meta":[1]}"#,
            r#"{"type":"guild_meta_set","meta":null}"#,
            r#"{"type":"guild_meta_set","meta":{},"x":1}"#,
            r#"{"type":"position_reported","position_ms":1,"at_unix_ms":1,"entry_id":-1}"#,
            r#"{"type":"seeked","position_ms":1,"entry_id":"3"}"#,
        ] {
            assert!(Event::from_json(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn constructors_build_the_events_they_name() {
        let tracks = [Track::new("QAAA", "a"), Track::new("QAAB", "b")];
        assert_eq!(
            Event::enqueue(tracks.clone()),
            Event::TracksEnqueued {
                tracks: tracks.to_vec(),
                index: None
            }
        );
        assert_eq!(
            Event::enqueue_at(0, [crate::session::TrackFields::new("QAAA", "a")]).to_json(),
            r#"{"type":"tracks_enqueued","tracks":[{"encoded":"QAAA","title":"a"}],"index":0}"#
        );
        let nightcore = FilterConfig::timescale(1.25, 1.3, 1.0).with_equalizer([(0, 0.2)]);
        assert_eq!(
            Event::filters(["nightcore"], nightcore).to_json(),
            r#"{"type":"filters_set","active":["nightcore"],"config":{"equalizer":[{"band":0,"gain":0.2}],"timescale":{"speed":1.25,"pitch":1.3,"rate":1.0}}}"#
        );
        assert_eq!(
            Event::filters(Vec::<String>::new(), FilterConfig::equalizer([(14, -0.25)])).to_json(),
            r#"{"type":"filters_set","active":[],"config":{"equalizer":[{"band":14,"gain":-0.25}]}}"#
        );
        assert_eq!(
            Event::position_of(3, 10, 20).to_json(),
            r#"{"type":"position_reported","position_ms":10,"at_unix_ms":20,"entry_id":3}"#
        );
        assert_eq!(
            Event::meta(Meta::new()).to_json(),
            r#"{"type":"guild_meta_set","meta":{}}"#
        );
        assert_eq!(Snowflake::from(5), Snowflake::Number(5));
    }
}

//! Sonora 1.2.8 session snapshot files, read and written as pure functions (contract §2:
//! `export --format sonora`, `import`, `state --format sonora`).
//!
//! [Sonora](https://pypi.org/project/py-sonora/) is a Python Lavalink client whose
//! `SnapshotManager` saves one JSON file per guild. This module reads such a file ([`parse`]),
//! maps it to a reprise [`State`] ([`to_state`]), maps a state back ([`from_state`]) and writes
//! it the way Sonora does ([`to_json`]). Nothing here touches the file system or a clock: text
//! in, text out.
//!
//! ```
//! use reprise::session::State;
//! use reprise::sonora::{self, Sections};
//!
//! let file = sonora::from_state(613425648685547541, 1760000000, &State::new(50), Sections::ALL);
//! let text = sonora::to_json(&file);
//! let back = sonora::parse(&text)?;
//! assert_eq!(back, file);
//! assert_eq!(sonora::to_state(&back, 50)?, State::new(50));
//! # Ok::<(), reprise::sonora::SonoraError>(())
//! ```
//!
//! # The file
//!
//! `{"guild_id", "timestamp", "version", "data": {"player", "queue", "filters", "autoplay"},
//! "checksum"}`, written by Python's `json.dumps(snapshot, indent=2)`: two-space indent, `", "`
//! becomes `","` + newline, `": "` between key and value, every non-ASCII character escaped as
//! `\uXXXX` (astral characters as UTF-16 surrogate pairs), floats in Python's shortest `repr`,
//! keys in the order Sonora inserts them, no trailing newline. [`to_json`] reproduces this byte
//! for byte (the 12 real files in `tests/fixtures/sonora-1.2.8/` come back identical).
//!
//! `checksum` is the lowercase SHA-256 hex digest of Python's
//! `json.dumps(d, sort_keys=True, default=str)` of the object without its `checksum` key
//! ([`python_json_dumps_sorted`]). [`parse`] recomputes it over the values exactly as the file
//! holds them and refuses a file whose content does not match ([`SonoraError::ChecksumMismatch`]).
//!
//! # Mapping to [`State`]
//!
//! | Sonora | reprise | notes |
//! | --- | --- | --- |
//! | `player.volume` | `player.volume` | `0..=1000` |
//! | `player.paused` | `player.paused` | |
//! | `player.position` | `player.position_ms` | `position_anchor_unix_ms` is `None` (an exact position); exported as recorded, not extrapolated |
//! | `player.connected` + `player.session_id` | `player.voice` | connected with a non-empty session id ⇒ `Some(Voice { session_id, channel_id: Number(0), endpoint: None, token: None })`; anything else ⇒ `None`. Sonora has no channel id: [`UNKNOWN_CHANNEL_ID`] (0, never a Discord snowflake) stands for "unknown". Export: `connected = voice.is_some()`, `session_id = voice.session_id` or `null` |
//! | `queue.current` / `upcoming` / `history` | `queue.current` / `upcoming` / `history` | entry ids `1..` in play order: history (oldest first), current, upcoming; `next_entry_id` = count + 1. History beyond `history_max` keeps its newest entries |
//! | `queue.loop_mode` | `queue.loop_mode` | `none` \| `track` \| `queue` \| `autoplay` |
//! | `queue.shuffle_enabled` | `queue.shuffle` | `shuffle_seed` is `None` on import and not exported |
//! | track `track` | `Track::encoded` | required, non-empty |
//! | track `title` | `Track::title` | required, non-empty |
//! | track `author`, `identifier` | `author`, `identifier` | `""` ⇔ `None` (absent means empty) |
//! | track `uri` | `uri` | string ⇔ `Some`, `null` ⇔ `None` |
//! | track `length` | `length_ms` | `0` ⇔ `None` (absent means 0) |
//! | track `isStream` / `isSeekable` | `is_stream` / `is_seekable` | `false` / `true` ⇔ `None`; exported always as `false` / `true` (Sonora's own behaviour) |
//! | track `position` | — | validated (≤ `length` unless a stream), dropped on import, exported as `0` |
//! | — | `Track::source` | not exported (Sonora has no such field) |
//! | `filters.active_filters` | `filters.active` | |
//! | `filters.filter_config` | `filters.config` ([`FilterConfig`]) | Lavalink v4 payload: `volume`, `equalizer`, `karaoke`, `timescale`, `tremolo`, `vibrato`, `rotation`, `distortion`, `channelMix`, `lowPass` (`channel_mix` / `low_pass` accepted on import), camelCase inner fields |
//! | `autoplay.enabled` / `strategy` | `autoplay.enabled` / `strategy` | |
//! | `autoplay.max_history` / `smart_shuffle` | `max_history` / `smart_shuffle` | Sonora's defaults 50 / `true` ⇔ `None` (absent means the bot's default) |
//! | `autoplay.fallback_playlist` (Sonora 1.2.7) | `autoplay.fallback_playlist` | accepted on import; never exported (Sonora 1.2.8 drops it) |
//!
//! Lossy points of the export, each reproducing what Sonora itself writes: history cut to the
//! last [`SONORA_HISTORY_MAX`] entries; `isStream` / `isSeekable` always `false` / `true`;
//! `fallback_playlist`, `shuffle_seed`, `Track::source`, the voice channel, endpoint and token,
//! and the position anchor dropped. Import then export also normalizes what a Sonora 1.2.8 file
//! never holds: a filter number written as an integer (`1`) comes back as a float (`1.0`),
//! `channel_mix` / `low_pass` as `channelMix` / `lowPass`, a non-zero track `position` as `0`,
//! `isStream: true` / `isSeekable: false` as `false` / `true`, a `session_id` of a disconnected
//! player (or `connected` without a session id) as disconnected with `null`, and a
//! `fallback_playlist` is left out.
//!
//! # Sections
//!
//! Sonora's `create_snapshot` writes each of the four `data` sections, and leaves a section's key
//! out when the player lacks it (autoplay); its restore reads a missing section as defaults.
//! [`from_state`] with a partial [`Sections`] (`--only`) likewise leaves the other keys out.
//! [`parse`] requires all four; [`parse_with`] requires only the ones asked for, and
//! [`to_state`] gives the defaults of [`State::new`] for a section the file lacks.

use std::fmt;
use std::str::FromStr;

use serde_json::{Map, Number, Value};
use sha2::{Digest, Sha256};

use crate::session::limits::{
    ENCODED_LEN_MAX, EQUALIZER_BAND_COUNT, FILTER_NAMES_MAX, NAME_LEN_MAX, QUEUE_LEN_MAX,
    TEXT_LEN_MAX, VOLUME_MAX,
};
use crate::session::{
    Autoplay, ChannelMix, Distortion, EqualizerBand, EventError, FilterConfig, Filters, Karaoke,
    LoopMode, LowPass, Player, QueueEntry, Rotation, Snowflake, State, Timescale, Track,
    TrackFields, Tremolo, Vibrato, Voice,
};

/// The Sonora version whose file format this module reads and writes (the `version` field of
/// exported files).
pub const SONORA_VERSION: &str = "1.2.8";

/// How many history entries Sonora writes: the last 50.
pub const SONORA_HISTORY_MAX: usize = 50;

/// Sonora's default `autoplay.max_history`: exported when the state has none, and read as none.
pub const SONORA_AUTOPLAY_MAX_HISTORY_DEFAULT: u32 = 50;

/// Sonora's default `autoplay.smart_shuffle`: exported when the state has none, and read as none.
pub const SONORA_SMART_SHUFFLE_DEFAULT: bool = true;

/// The voice `channel_id` an imported connected player gets: Sonora records no channel, and 0 is
/// never a Discord snowflake, so it reads as "unknown".
pub const UNKNOWN_CHANNEL_ID: u64 = 0;

/// The deepest nesting of arrays and objects [`parse`] accepts (a Sonora file nests 6 deep).
const JSON_DEPTH_MAX: usize = 128;

/// Why a Sonora file was refused, or a state could not be built from it.
///
/// Every variant about the file's content names the JSON path of the offending value, e.g.
/// `data.queue.upcoming[3].length` (see [`SonoraError::path`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SonoraError {
    /// The text is not JSON (as Python's `json.loads` reads it, minus `NaN` / `Infinity`,
    /// lone surrogates, duplicate keys and integers beyond 64 bits, which no valid file holds).
    #[error("not valid JSON at line {line}, column {column}: {message}")]
    Json {
        /// 1-based line.
        line: usize,
        /// 1-based column, in characters.
        column: usize,
        /// What is wrong there.
        message: String,
    },
    /// A required key is absent.
    #[error("{path} is missing")]
    Missing {
        /// The JSON path of the absent value.
        path: String,
    },
    /// A value has the wrong JSON type.
    #[error("{path} must be {expected}, found {found}")]
    WrongType {
        /// The JSON path.
        path: String,
        /// What the schema wants (`an integer`, `a string`, ...).
        expected: &'static str,
        /// What the file holds (`null`, `float`, ...).
        found: &'static str,
    },
    /// A key the schema does not know.
    #[error("{path} is not a field of a Sonora {version} file", version = SONORA_VERSION)]
    UnknownField {
        /// The JSON path of the unknown key.
        path: String,
    },
    /// A value of the right type outside its accepted range or set.
    #[error("{path}: {message}")]
    Invalid {
        /// The JSON path.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// The file's `checksum` does not match its content: it was changed after Sonora wrote it
    /// (or damaged).
    #[error("checksum mismatch: the file says {expected}, its content hashes to {actual}")]
    ChecksumMismatch {
        /// The `checksum` the file holds.
        expected: String,
        /// The checksum of the file's content, computed as Sonora does.
        actual: String,
    },
    /// A `--only` list names something other than `player`, `queue`, `filters`, `autoplay`.
    #[error("unknown section {name:?} (expected player, queue, filters or autoplay)")]
    UnknownSection {
        /// The name given.
        name: String,
    },
    /// The state built from the file breaks a [`State`] invariant.
    #[error("the imported state is not valid: {message}")]
    State {
        /// The broken invariant.
        message: String,
    },
}

impl SonoraError {
    /// The JSON path of the offending value, for the variants that have one.
    pub fn path(&self) -> Option<&str> {
        match self {
            SonoraError::Missing { path }
            | SonoraError::WrongType { path, .. }
            | SonoraError::UnknownField { path }
            | SonoraError::Invalid { path, .. } => Some(path),
            _ => None,
        }
    }
}

/// Which `data` sections a file holds, or must hold (`--only player,queue,filters,autoplay`).
///
/// Parses from (and displays as) a comma-separated list of section names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Sections {
    /// `data.player`.
    pub player: bool,
    /// `data.queue`.
    pub queue: bool,
    /// `data.filters`.
    pub filters: bool,
    /// `data.autoplay`.
    pub autoplay: bool,
}

impl Sections {
    /// All four sections (what Sonora writes).
    pub const ALL: Sections = Sections {
        player: true,
        queue: true,
        filters: true,
        autoplay: true,
    };

    /// No section.
    pub const NONE: Sections = Sections {
        player: false,
        queue: false,
        filters: false,
        autoplay: false,
    };
}

impl Default for Sections {
    /// [`Sections::ALL`].
    fn default() -> Self {
        Sections::ALL
    }
}

impl FromStr for Sections {
    type Err = SonoraError;

    /// `"player,queue"` → player and queue. Names may repeat and be surrounded by spaces.
    ///
    /// # Errors
    /// [`SonoraError::UnknownSection`] for an empty or unknown name.
    fn from_str(list: &str) -> Result<Self, Self::Err> {
        let mut sections = Sections::NONE;
        for name in list.split(',') {
            match name.trim() {
                "player" => sections.player = true,
                "queue" => sections.queue = true,
                "filters" => sections.filters = true,
                "autoplay" => sections.autoplay = true,
                other => {
                    return Err(SonoraError::UnknownSection {
                        name: other.to_owned(),
                    })
                }
            }
        }
        Ok(sections)
    }
}

impl fmt::Display for Sections {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (self.player, "player"),
            (self.queue, "queue"),
            (self.filters, "filters"),
            (self.autoplay, "autoplay"),
        ];
        let list: Vec<&str> = names
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, name)| *name)
            .collect();
        f.write_str(&list.join(","))
    }
}

/// One Sonora snapshot file.
#[derive(Clone, Debug, PartialEq)]
pub struct SonoraFile {
    /// The guild.
    pub guild_id: u64,
    /// When Sonora took the snapshot, in Unix seconds (an integer in 1.2.8 files).
    pub timestamp: u64,
    /// The Sonora version that wrote the file ([`SONORA_VERSION`] for exports).
    pub version: String,
    /// The four sections.
    pub data: SonoraData,
    /// The SHA-256 hex checksum over everything else (see [`checksum`]).
    pub checksum: String,
}

/// The `data` object: each section is `None` when the file leaves its key out.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SonoraData {
    /// `data.player`.
    pub player: Option<SonoraPlayer>,
    /// `data.queue`.
    pub queue: Option<SonoraQueue>,
    /// `data.filters`.
    pub filters: Option<SonoraFilters>,
    /// `data.autoplay`.
    pub autoplay: Option<SonoraAutoplay>,
}

/// `data.player`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SonoraPlayer {
    /// Volume, `0..=1000`.
    pub volume: u16,
    /// Whether playback is paused.
    pub paused: bool,
    /// Position in the current track, in milliseconds.
    pub position: u64,
    /// Whether the player is connected to voice.
    pub connected: bool,
    /// The voice session id (`null` when not connected).
    pub session_id: Option<String>,
}

/// `data.queue`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SonoraQueue {
    /// The track playing, if any.
    pub current: Option<SonoraTrack>,
    /// The tracks to play next.
    pub upcoming: Vec<SonoraTrack>,
    /// The tracks played, oldest first (Sonora writes at most the last 50).
    pub history: Vec<SonoraTrack>,
    /// `none`, `track`, `queue` or `autoplay`.
    pub loop_mode: LoopMode,
    /// Whether shuffle is on.
    pub shuffle_enabled: bool,
}

/// A track object of the queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SonoraTrack {
    /// The display title.
    pub title: String,
    /// The artist or uploader.
    pub author: String,
    /// The web URL, `null` when the track has none.
    pub uri: Option<String>,
    /// The source's identifier.
    pub identifier: String,
    /// Duration in milliseconds (0 for streams).
    pub length: u64,
    /// The track object's own position field (0 in every file Sonora writes; the playback
    /// position is `player.position`).
    pub position: u64,
    /// `isStream` (always `false` in Sonora 1.2.8 files).
    pub is_stream: bool,
    /// `isSeekable` (always `true` in Sonora 1.2.8 files).
    pub is_seekable: bool,
    /// `track`: the Lavalink encoded track blob.
    pub track: String,
}

/// `data.filters`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SonoraFilters {
    /// Names of the active filter presets.
    pub active_filters: Vec<String>,
    /// The Lavalink v4 filters payload.
    pub filter_config: FilterConfig,
}

/// `data.autoplay`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SonoraAutoplay {
    /// Whether autoplay is on.
    pub enabled: bool,
    /// The strategy name.
    pub strategy: String,
    /// How many played tracks autoplay remembers.
    pub max_history: u32,
    /// Whether autoplay shuffles its picks.
    pub smart_shuffle: bool,
    /// The fallback playlist: read from files that have it (Sonora 1.2.7 wrote it), never set
    /// by [`from_state`] (Sonora 1.2.8 drops it).
    pub fallback_playlist: Option<String>,
}

impl SonoraTrack {
    /// The reprise track: Sonora's default values (`""`, `0`, `isStream` false, `isSeekable`
    /// true) become absent fields; `position` is dropped.
    pub fn to_track(&self) -> Track {
        let mut track = TrackFields::new(self.track.clone(), self.title.clone());
        track.author = non_empty(&self.author);
        track.uri.clone_from(&self.uri);
        track.identifier = non_empty(&self.identifier);
        track.length_ms = (self.length > 0).then_some(self.length);
        track.is_stream = self.is_stream.then_some(true);
        track.is_seekable = (!self.is_seekable).then_some(false);
        track.into()
    }

    /// The track as Sonora writes it: `position` 0, `isStream` false and `isSeekable` true
    /// whatever the track is, absent text as `""` (absent `uri` as `null`), absent length as 0.
    pub fn from_track(track: &Track) -> SonoraTrack {
        SonoraTrack {
            title: track.title().to_owned(),
            author: track.author().to_owned(),
            uri: track.uri().map(str::to_owned),
            identifier: track.identifier().to_owned(),
            length: track.length_ms(),
            position: 0,
            is_stream: false,
            is_seekable: true,
            track: track.encoded().into_owned(),
        }
    }
}

/// `Some(text)` unless it is empty.
fn non_empty(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_owned())
}

/// Reads a Sonora snapshot file that holds all four sections.
///
/// Checks, in order: JSON syntax; the `checksum` (over the content exactly as written); then the
/// schema: every required key, no unknown key, types (integers where Sonora writes Python ints,
/// so `100.0` is not a volume), and ranges (volume `0..=1000`, positions within their track's
/// length unless it is a stream or of unknown length, loop modes, filter ranges as in
/// [`FilterConfig::validate`]: equalizer bands `0..=14`, gains `-0.25..=1.0`, timescale factors
/// above 0, ...), and reprise's bounds (non-empty `track` and `title`, text lengths, at most
/// [`QUEUE_LEN_MAX`] upcoming tracks, filter names), so that [`to_state`] succeeds.
///
/// The JSON is read by this module's own reader, which builds the same [`serde_json::Value`]
/// but reads every float correctly rounded (serde_json without its `float_roundtrip` feature
/// can read one ULP off, which would change the Python repr and so the checksum).
///
/// # Errors
/// [`SonoraError::Json`], [`SonoraError::ChecksumMismatch`], or a schema error naming the JSON
/// path of the offending value.
pub fn parse(text: &str) -> Result<SonoraFile, SonoraError> {
    parse_with(text, Sections::ALL)
}

/// [`parse`], requiring only the sections in `required` (a section present but not required is
/// still fully checked). `parse_with(text, Sections::NONE)` reads what `export --only` writes.
///
/// # Errors
/// As [`parse`].
pub fn parse_with(text: &str, required: Sections) -> Result<SonoraFile, SonoraError> {
    let value = read_json(text)?;
    let root = as_object(&value, "(root)")?;
    let stated = field(root, "", "checksum")?;
    let stated = as_str(stated, "checksum")?;
    let mut content = Node::from_value(&value);
    if let Node::Object(entries) = &mut content {
        entries.retain(|(key, _)| key != "checksum");
    }
    let actual = sha256_hex(&content.dumps_sorted());
    if actual != stated {
        return Err(SonoraError::ChecksumMismatch {
            expected: stated.to_owned(),
            actual,
        });
    }
    deny_unknown(
        root,
        "",
        &["guild_id", "timestamp", "version", "data", "checksum"],
    )?;
    let guild_id = as_u64(field(root, "", "guild_id")?, "guild_id")?;
    let timestamp = as_u64(field(root, "", "timestamp")?, "timestamp")?;
    let version = as_str(field(root, "", "version")?, "version")?.to_owned();
    let data = as_object(field(root, "", "data")?, "data")?;
    deny_unknown(data, "data", &["player", "queue", "filters", "autoplay"])?;
    let section = |key: &str, needed: bool| -> Result<Option<&Value>, SonoraError> {
        match data.get(key) {
            None if needed => Err(SonoraError::Missing {
                path: join("data", key),
            }),
            found => Ok(found),
        }
    };
    let player = section("player", required.player)?
        .map(|v| parse_player(v, "data.player"))
        .transpose()?;
    let queue = section("queue", required.queue)?
        .map(|v| parse_queue(v, "data.queue"))
        .transpose()?;
    let filters = section("filters", required.filters)?
        .map(|v| parse_filters(v, "data.filters"))
        .transpose()?;
    let autoplay = section("autoplay", required.autoplay)?
        .map(|v| parse_autoplay(v, "data.autoplay"))
        .transpose()?;
    if let (Some(player), Some(current)) =
        (&player, queue.as_ref().and_then(|q| q.current.as_ref()))
    {
        check_position(player.position, current, "data.player.position")?;
    }
    Ok(SonoraFile {
        guild_id,
        timestamp,
        version,
        data: SonoraData {
            player,
            queue,
            filters,
            autoplay,
        },
        checksum: stated.to_owned(),
    })
}

/// Maps a parsed file to a reprise state (see the module docs for the table). Sections the file
/// lacks keep the defaults of [`State::new`]; `history_max` is the state's history bound, and a
/// longer history keeps its newest entries.
///
/// # Errors
/// [`SonoraError::State`] if the result breaks [`State::check_invariants`] (not the case for a
/// file [`parse`] accepted).
pub fn to_state(file: &SonoraFile, history_max: u32) -> Result<State, SonoraError> {
    let mut state = State::new(history_max);
    let data = &file.data;
    if let Some(player) = &data.player {
        let voice = match (&player.connected, &player.session_id) {
            (true, Some(session_id)) if !session_id.is_empty() => Some(Voice {
                session_id: session_id.clone(),
                channel_id: Snowflake::Number(UNKNOWN_CHANNEL_ID),
                endpoint: None,
                token: None,
            }),
            _ => None,
        };
        state.player = Player {
            volume: player.volume,
            paused: player.paused,
            position_ms: player.position,
            position_anchor_unix_ms: None,
            voice,
        };
    }
    if let Some(queue) = &data.queue {
        let keep = usize::try_from(history_max).unwrap_or(usize::MAX);
        let skip = queue.history.len().saturating_sub(keep);
        let mut next_id: u64 = 1;
        let mut entry = |track: &SonoraTrack| {
            let id = next_id;
            next_id = next_id.saturating_add(1);
            QueueEntry {
                id,
                track: track.to_track(),
            }
        };
        state.queue.history = queue.history.iter().skip(skip).map(&mut entry).collect();
        state.queue.current = queue.current.as_ref().map(&mut entry);
        state.queue.upcoming = queue.upcoming.iter().map(&mut entry).collect();
        state.queue.loop_mode = queue.loop_mode;
        state.queue.shuffle = queue.shuffle_enabled;
        state.queue.shuffle_seed = None;
        state.next_entry_id = next_id;
    }
    if let Some(filters) = &data.filters {
        state.filters = Filters {
            active: filters.active_filters.clone(),
            config: filters.filter_config.clone(),
        };
    }
    if let Some(autoplay) = &data.autoplay {
        state.autoplay = Autoplay {
            enabled: autoplay.enabled,
            strategy: autoplay.strategy.clone(),
            fallback_playlist: autoplay.fallback_playlist.clone(),
            max_history: (autoplay.max_history != SONORA_AUTOPLAY_MAX_HISTORY_DEFAULT)
                .then_some(autoplay.max_history),
            smart_shuffle: (autoplay.smart_shuffle != SONORA_SMART_SHUFFLE_DEFAULT)
                .then_some(autoplay.smart_shuffle),
        };
    }
    state
        .check_invariants()
        .map_err(|error| SonoraError::State { message: error.0 })?;
    Ok(state)
}

/// The Sonora file of `state`, with the sections in `only`, version [`SONORA_VERSION`] and a
/// correct checksum. Reproduces Sonora's lossy points (see the module docs).
pub fn from_state(guild_id: u64, timestamp: u64, state: &State, only: Sections) -> SonoraFile {
    let player = only.player.then(|| {
        let voice = state.player.voice.as_ref();
        SonoraPlayer {
            volume: state.player.volume,
            paused: state.player.paused,
            position: state.player.position_ms,
            connected: voice.is_some(),
            session_id: voice.map(|voice| voice.session_id.clone()),
        }
    });
    let queue = only.queue.then(|| {
        let history = &state.queue.history;
        let skip = history.len().saturating_sub(SONORA_HISTORY_MAX);
        let sonora = |entry: &QueueEntry| SonoraTrack::from_track(&entry.track);
        SonoraQueue {
            current: state.queue.current.as_ref().map(sonora),
            upcoming: state.queue.upcoming.iter().map(sonora).collect(),
            history: history.iter().skip(skip).map(sonora).collect(),
            loop_mode: state.queue.loop_mode,
            shuffle_enabled: state.queue.shuffle,
        }
    });
    let filters = only.filters.then(|| SonoraFilters {
        active_filters: state.filters.active.clone(),
        filter_config: state.filters.config.clone(),
    });
    let autoplay = only.autoplay.then(|| SonoraAutoplay {
        enabled: state.autoplay.enabled,
        strategy: state.autoplay.strategy.clone(),
        max_history: state
            .autoplay
            .max_history
            .unwrap_or(SONORA_AUTOPLAY_MAX_HISTORY_DEFAULT),
        smart_shuffle: state
            .autoplay
            .smart_shuffle
            .unwrap_or(SONORA_SMART_SHUFFLE_DEFAULT),
        fallback_playlist: None,
    });
    let mut file = SonoraFile {
        guild_id,
        timestamp,
        version: SONORA_VERSION.to_owned(),
        data: SonoraData {
            player,
            queue,
            filters,
            autoplay,
        },
        checksum: String::new(),
    };
    file.checksum = checksum(&file);
    file
}

/// The file's text as Sonora writes it: Python's `json.dumps(file, indent=2)` in Sonora's key
/// order, ASCII only, no trailing newline. The `checksum` is written as the value holds it
/// ([`from_state`] sets it; after changing a file, set `file.checksum = checksum(&file)`).
pub fn to_json(file: &SonoraFile) -> String {
    let mut out = String::with_capacity(4096);
    file_node(file, true).write_indented(&mut out, 0);
    out
}

/// The checksum Sonora computes for the file's content (everything but `checksum`): the
/// lowercase SHA-256 hex digest of [`python_json_dumps_sorted`] of it.
pub fn checksum(file: &SonoraFile) -> String {
    sha256_hex(&file_node(file, false).dumps_sorted())
}

/// Python's `json.dumps(value, sort_keys=True)`: separators `", "` and `": "`, keys sorted by
/// code point, `ensure_ascii` escapes (`\uXXXX`, astral characters as surrogate pairs, lowercase
/// hex; `\"`, `\\`, `\n`, `\r`, `\t`, `\b`, `\f`), integers as integers and floats in Python's
/// `repr` ([`python_float_repr`]).
pub fn python_json_dumps_sorted(value: &Value) -> String {
    Node::from_value(value).dumps_sorted()
}

/// Python's `repr(float)`: the shortest digits that read back as `x` (ties between two shortest
/// candidates broken to even, as Python does), in positional notation when the decimal exponent
/// is in `-4..16` (always with a fractional part: `1.0`), otherwise in scientific notation with a
/// signed exponent of at least two digits (`1e-05`, `1.5e+300`); `nan`, `inf`, `-inf`.
pub fn python_float_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".to_owned();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    let mut out = String::new();
    if x.is_sign_negative() {
        out.push('-');
    }
    if x == 0.0 {
        out.push_str("0.0");
        return out;
    }
    let (digits, exp) = shortest_digits(x.abs());
    let len = digits.len();
    let int_len = usize::try_from(exp + 1).unwrap_or(0);
    let zeros = usize::try_from(-exp - 1).unwrap_or(0);
    if (0..16).contains(&exp) {
        if len <= int_len {
            out.push_str(&digits);
            out.extend(std::iter::repeat_n('0', int_len - len));
            out.push_str(".0");
        } else {
            let (int_part, frac_part) = digits.split_at(int_len);
            out.push_str(int_part);
            out.push('.');
            out.push_str(frac_part);
        }
    } else if (-4..0).contains(&exp) {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', zeros));
        out.push_str(&digits);
    } else {
        let (first, rest) = digits.split_at(1.min(len));
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        out.push_str(&format!("{:02}", exp.unsigned_abs()));
    }
    out
}

/// The shortest decimal digits of a finite positive `x` that read back as `x`, and the decimal
/// exponent of the first digit, with Python's tie-break.
fn shortest_digits(x: f64) -> (String, i32) {
    let (mut digits, exp) = scientific_parts(&format!("{x:e}"));
    // Rust rounds a tie between two shortest candidates up; Python picks the even one. A tie
    // means x lies exactly halfway, so the odd last digit goes down by one.
    if let Some(last) = digits.bytes().last().filter(|b| (b - b'0') % 2 == 1) {
        let mut lower = digits.clone();
        lower.pop();
        lower.push(char::from(last - 1));
        let midpoint = format!("{lower}5");
        if is_exactly(x, &midpoint, exp) && reads_back(x, &lower, exp) {
            digits = lower.trim_end_matches('0').to_owned();
            if digits.is_empty() {
                digits.push('0');
            }
        }
    }
    (digits, exp)
}

/// Splits Rust's `{:e}` form (`1.2345e-5`) into its digits (`12345`) and exponent (`-5`).
fn scientific_parts(formatted: &str) -> (String, i32) {
    let (mantissa, exp) = formatted.split_once('e').unwrap_or((formatted, "0"));
    let digits = mantissa.chars().filter(char::is_ascii_digit).collect();
    (digits, exp.parse().unwrap_or(0))
}

/// `d.ddd` × 10^`exp` written back as text.
fn scientific(digits: &str, exp: i32) -> String {
    let (first, rest) = digits.split_at(1.min(digits.len()));
    format!("{first}.{rest}0e{exp}")
}

/// Whether the decimal `digits` × 10^(`exp` − first digit) reads back as `x`.
fn reads_back(x: f64, digits: &str, exp: i32) -> bool {
    scientific(digits, exp).parse::<f64>().ok() == Some(x)
}

/// Whether `x` is exactly the decimal `digits` × 10^(`exp` − first digit).
fn is_exactly(x: f64, digits: &str, exp: i32) -> bool {
    if !reads_back(x, digits, exp) {
        return false;
    }
    // A double has at most 767 significant decimal digits: 800 show it exactly.
    let (exact, exact_exp) = scientific_parts(&format!("{x:.800e}"));
    exact_exp == exp && exact.trim_end_matches('0') == digits.trim_end_matches('0')
}

/// The lowercase hex SHA-256 of `text`.
fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .flat_map(|byte| [byte >> 4, byte & 0xf])
        .filter_map(|nibble| char::from_digit(u32::from(nibble), 16))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The JSON tree as Python sees it, and Python's two ways of writing it.

/// A JSON value as Python's `json` module holds it: integers and floats apart, object keys in
/// insertion order.
enum Node {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Array(Vec<Node>),
    Object(Vec<(String, Node)>),
}

impl Node {
    /// The tree of a `serde_json` value (integers stay integers, floats stay floats).
    fn from_value(value: &Value) -> Node {
        match value {
            Value::Null => Node::Null,
            Value::Bool(b) => Node::Bool(*b),
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    Node::Int(i128::from(u))
                } else if let Some(i) = n.as_i64() {
                    Node::Int(i128::from(i))
                } else {
                    Node::Float(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            Value::String(s) => Node::Str(s.clone()),
            Value::Array(items) => Node::Array(items.iter().map(Node::from_value).collect()),
            Value::Object(map) => Node::Object(
                map.iter()
                    .map(|(key, value)| (key.clone(), Node::from_value(value)))
                    .collect(),
            ),
        }
    }

    /// `json.dumps(self, sort_keys=True)`.
    fn dumps_sorted(&self) -> String {
        let mut out = String::with_capacity(4096);
        self.write_sorted(&mut out);
        out
    }

    /// Appends `json.dumps(self, sort_keys=True)`.
    fn write_sorted(&self, out: &mut String) {
        match self {
            Node::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    item.write_sorted(out);
                }
                out.push(']');
            }
            Node::Object(entries) => {
                let mut sorted: Vec<&(String, Node)> = entries.iter().collect();
                sorted.sort_by(|a, b| a.0.cmp(&b.0));
                out.push('{');
                for (i, (key, value)) in sorted.into_iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    write_json_str(out, key);
                    out.push_str(": ");
                    value.write_sorted(out);
                }
                out.push('}');
            }
            scalar => scalar.write_scalar(out),
        }
    }

    /// Appends `json.dumps(self, indent=2)` at nesting `level`.
    fn write_indented(&self, out: &mut String, level: usize) {
        match self {
            Node::Array(items) if !items.is_empty() => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    newline(out, level + 1);
                    item.write_indented(out, level + 1);
                }
                newline(out, level);
                out.push(']');
            }
            Node::Object(entries) if !entries.is_empty() => {
                out.push('{');
                for (i, (key, value)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    newline(out, level + 1);
                    write_json_str(out, key);
                    out.push_str(": ");
                    value.write_indented(out, level + 1);
                }
                newline(out, level);
                out.push('}');
            }
            Node::Array(_) => out.push_str("[]"),
            Node::Object(_) => out.push_str("{}"),
            scalar => scalar.write_scalar(out),
        }
    }

    /// Appends a scalar (containers are written by the callers).
    fn write_scalar(&self, out: &mut String) {
        match self {
            Node::Null => out.push_str("null"),
            Node::Bool(true) => out.push_str("true"),
            Node::Bool(false) => out.push_str("false"),
            Node::Int(i) => out.push_str(&i.to_string()),
            Node::Float(x) if x.is_nan() => out.push_str("NaN"),
            Node::Float(x) if x.is_infinite() => {
                out.push_str(if *x > 0.0 { "Infinity" } else { "-Infinity" });
            }
            Node::Float(x) => out.push_str(&python_float_repr(*x)),
            Node::Str(s) => write_json_str(out, s),
            Node::Array(_) => out.push_str("[]"),
            Node::Object(_) => out.push_str("{}"),
        }
    }
}

/// A newline and `level` two-space indents.
fn newline(out: &mut String, level: usize) {
    out.push('\n');
    out.extend(std::iter::repeat_n(' ', level * 2));
}

/// Appends `s` as Python's `json` writes it with `ensure_ascii=True`.
fn write_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
}

/// An object node from `(key, value)` pairs.
fn object(entries: Vec<(&str, Node)>) -> Node {
    Node::Object(
        entries
            .into_iter()
            .map(|(key, value)| (key.to_owned(), value))
            .collect(),
    )
}

/// The whole file in Sonora's key order, with or without its `checksum`.
fn file_node(file: &SonoraFile, with_checksum: bool) -> Node {
    let data = &file.data;
    let mut sections = Vec::new();
    if let Some(player) = &data.player {
        sections.push((
            "player",
            object(vec![
                ("volume", Node::Int(i128::from(player.volume))),
                ("paused", Node::Bool(player.paused)),
                ("position", Node::Int(i128::from(player.position))),
                ("connected", Node::Bool(player.connected)),
                ("session_id", optional_str(player.session_id.as_deref())),
            ]),
        ));
    }
    if let Some(queue) = &data.queue {
        sections.push((
            "queue",
            object(vec![
                (
                    "current",
                    queue.current.as_ref().map_or(Node::Null, track_node),
                ),
                (
                    "upcoming",
                    Node::Array(queue.upcoming.iter().map(track_node).collect()),
                ),
                (
                    "history",
                    Node::Array(queue.history.iter().map(track_node).collect()),
                ),
                ("loop_mode", Node::Str(queue.loop_mode.as_str().to_owned())),
                ("shuffle_enabled", Node::Bool(queue.shuffle_enabled)),
            ]),
        ));
    }
    if let Some(filters) = &data.filters {
        let active = filters
            .active_filters
            .iter()
            .map(|name| Node::Str(name.clone()))
            .collect();
        sections.push((
            "filters",
            object(vec![
                ("active_filters", Node::Array(active)),
                ("filter_config", filter_config_node(&filters.filter_config)),
            ]),
        ));
    }
    if let Some(autoplay) = &data.autoplay {
        let mut entries = vec![
            ("enabled", Node::Bool(autoplay.enabled)),
            ("strategy", Node::Str(autoplay.strategy.clone())),
        ];
        if let Some(playlist) = &autoplay.fallback_playlist {
            entries.push(("fallback_playlist", Node::Str(playlist.clone())));
        }
        entries.push(("max_history", Node::Int(i128::from(autoplay.max_history))));
        entries.push(("smart_shuffle", Node::Bool(autoplay.smart_shuffle)));
        sections.push(("autoplay", object(entries)));
    }
    let mut entries = vec![
        ("guild_id", Node::Int(i128::from(file.guild_id))),
        ("timestamp", Node::Int(i128::from(file.timestamp))),
        ("version", Node::Str(file.version.clone())),
        ("data", object(sections)),
    ];
    if with_checksum {
        entries.push(("checksum", Node::Str(file.checksum.clone())));
    }
    object(entries)
}

/// A string node, or `null`.
fn optional_str(value: Option<&str>) -> Node {
    value.map_or(Node::Null, |s| Node::Str(s.to_owned()))
}

/// A track object in Sonora's key order.
fn track_node(track: &SonoraTrack) -> Node {
    object(vec![
        ("title", Node::Str(track.title.clone())),
        ("author", Node::Str(track.author.clone())),
        ("uri", optional_str(track.uri.as_deref())),
        ("identifier", Node::Str(track.identifier.clone())),
        ("length", Node::Int(i128::from(track.length))),
        ("position", Node::Int(i128::from(track.position))),
        ("isStream", Node::Bool(track.is_stream)),
        ("isSeekable", Node::Bool(track.is_seekable)),
        ("track", Node::Str(track.track.clone())),
    ])
}

/// An object of the float fields that are set, in the given order.
fn floats(fields: &[(&str, Option<f64>)]) -> Node {
    object(
        fields
            .iter()
            .filter_map(|(key, value)| value.map(|v| (*key, Node::Float(v))))
            .collect(),
    )
}

/// The Lavalink v4 filters payload in Lavalink's key order, with only the filters that are set.
fn filter_config_node(config: &FilterConfig) -> Node {
    let mut entries = Vec::new();
    if let Some(volume) = config.volume {
        entries.push(("volume", Node::Float(volume)));
    }
    if let Some(bands) = &config.equalizer {
        let bands = bands
            .iter()
            .map(|b| {
                object(vec![
                    ("band", Node::Int(i128::from(b.band))),
                    ("gain", Node::Float(b.gain)),
                ])
            })
            .collect();
        entries.push(("equalizer", Node::Array(bands)));
    }
    if let Some(k) = &config.karaoke {
        let fields = [
            ("level", k.level),
            ("monoLevel", k.mono_level),
            ("filterBand", k.filter_band),
            ("filterWidth", k.filter_width),
        ];
        entries.push(("karaoke", floats(&fields)));
    }
    if let Some(t) = &config.timescale {
        let fields = [("speed", t.speed), ("pitch", t.pitch), ("rate", t.rate)];
        entries.push(("timescale", floats(&fields)));
    }
    if let Some(t) = &config.tremolo {
        let fields = [("frequency", t.frequency), ("depth", t.depth)];
        entries.push(("tremolo", floats(&fields)));
    }
    if let Some(v) = &config.vibrato {
        let fields = [("frequency", v.frequency), ("depth", v.depth)];
        entries.push(("vibrato", floats(&fields)));
    }
    if let Some(r) = &config.rotation {
        entries.push(("rotation", floats(&[("rotationHz", r.rotation_hz)])));
    }
    if let Some(d) = &config.distortion {
        let fields = [
            ("sinOffset", d.sin_offset),
            ("sinScale", d.sin_scale),
            ("cosOffset", d.cos_offset),
            ("cosScale", d.cos_scale),
            ("tanOffset", d.tan_offset),
            ("tanScale", d.tan_scale),
            ("offset", d.offset),
            ("scale", d.scale),
        ];
        entries.push(("distortion", floats(&fields)));
    }
    if let Some(m) = &config.channel_mix {
        let fields = [
            ("leftToLeft", m.left_to_left),
            ("leftToRight", m.left_to_right),
            ("rightToLeft", m.right_to_left),
            ("rightToRight", m.right_to_right),
        ];
        entries.push(("channelMix", floats(&fields)));
    }
    if let Some(l) = &config.low_pass {
        entries.push(("lowPass", floats(&[("smoothing", l.smoothing)])));
    }
    object(entries)
}

// ---------------------------------------------------------------------------------------------
// Reading JSON exactly as Python does.
//
// serde_json without its `float_roundtrip` feature may read a float one ULP off (e.g.
// `109.98020000000001`), which would change its Python repr and so the checksum; this reader
// uses Rust's correctly rounded `str::parse::<f64>` and builds the same `serde_json::Value`.

/// Reads `text` as one JSON value.
fn read_json(text: &str) -> Result<Value, SonoraError> {
    let mut reader = Reader {
        text,
        pos: 0,
        depth: 0,
    };
    let value = reader.value()?;
    reader.skip_ws();
    if reader.pos < text.len() {
        return Err(reader.error("unexpected data after the JSON value"));
    }
    Ok(value)
}

/// A recursive-descent JSON reader over a string.
struct Reader<'a> {
    text: &'a str,
    pos: usize,
    depth: usize,
}

impl Reader<'_> {
    /// The byte at the cursor.
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    /// Whether the text at the cursor starts with `word`.
    fn at(&self, word: &str) -> bool {
        self.text
            .get(self.pos..)
            .is_some_and(|rest| rest.starts_with(word))
    }

    /// A [`SonoraError::Json`] at the cursor.
    fn error(&self, message: impl Into<String>) -> SonoraError {
        let before = self.text.as_bytes().get(..self.pos).unwrap_or_default();
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let column = before
            .get(line_start..)
            .unwrap_or_default()
            .iter()
            .filter(|&&b| b & 0xc0 != 0x80)
            .count()
            + 1;
        SonoraError::Json {
            line,
            column,
            message: message.into(),
        }
    }

    /// Skips JSON whitespace.
    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    /// One value, after optional whitespace.
    fn value(&mut self) -> Result<Value, SonoraError> {
        self.skip_ws();
        match self.peek() {
            None => Err(self.error("unexpected end of input, expected a value")),
            Some(b'{') => self.object(),
            Some(b'[') => self.array(),
            Some(b'"') => self.string().map(Value::String),
            Some(b't') => self.literal("true", Value::Bool(true)),
            Some(b'f') => self.literal("false", Value::Bool(false)),
            Some(b'n') => self.literal("null", Value::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b'N' | b'I') => Err(self.error("NaN and Infinity are not accepted")),
            Some(_) => Err(self.error("expected a value")),
        }
    }

    /// `true`, `false` or `null`.
    fn literal(&mut self, word: &str, value: Value) -> Result<Value, SonoraError> {
        if !self.at(word) {
            return Err(self.error("expected a value"));
        }
        self.pos += word.len();
        Ok(value)
    }

    /// Enters a container, bounding the nesting depth.
    fn enter(&mut self) -> Result<(), SonoraError> {
        if self.depth >= JSON_DEPTH_MAX {
            return Err(self.error(format!("nested deeper than {JSON_DEPTH_MAX} levels")));
        }
        self.depth += 1;
        self.pos += 1;
        self.skip_ws();
        Ok(())
    }

    /// An object, at its `{`.
    fn object(&mut self) -> Result<Value, SonoraError> {
        self.enter()?;
        let mut map = Map::new();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(Value::Object(map));
        }
        loop {
            self.skip_ws();
            if self.peek() != Some(b'"') {
                return Err(self.error("expected a string key"));
            }
            let key_pos = self.pos;
            let key = self.string()?;
            self.skip_ws();
            if self.peek() != Some(b':') {
                return Err(self.error("expected ':'"));
            }
            self.pos += 1;
            let value = self.value()?;
            if map.contains_key(&key) {
                self.pos = key_pos;
                return Err(self.error(format!("duplicate key {key:?}")));
            }
            map.insert(key, value);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    self.depth -= 1;
                    return Ok(Value::Object(map));
                }
                _ => return Err(self.error("expected ',' or '}'")),
            }
        }
    }

    /// An array, at its `[`.
    fn array(&mut self) -> Result<Value, SonoraError> {
        self.enter()?;
        let mut items = Vec::new();
        if self.peek() == Some(b']') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(Value::Array(items));
        }
        loop {
            items.push(self.value()?);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    self.depth -= 1;
                    return Ok(Value::Array(items));
                }
                _ => return Err(self.error("expected ',' or ']'")),
            }
        }
    }

    /// A string, at its opening quote.
    fn string(&mut self) -> Result<String, SonoraError> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            let start = self.pos;
            while let Some(b) = self.peek() {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            // The run stops at an ASCII byte or at the end: both are character boundaries.
            out.push_str(self.text.get(start..self.pos).unwrap_or_default());
            match self.peek() {
                None => return Err(self.error("unterminated string")),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    self.escape(&mut out)?;
                }
                Some(_) => return Err(self.error("control character in a string")),
            }
        }
    }

    /// One escape sequence, after its backslash.
    fn escape(&mut self, out: &mut String) -> Result<(), SonoraError> {
        let Some(b) = self.peek() else {
            return Err(self.error("unterminated string"));
        };
        let simple = match b {
            b'"' => Some('"'),
            b'\\' => Some('\\'),
            b'/' => Some('/'),
            b'b' => Some('\u{8}'),
            b'f' => Some('\u{c}'),
            b'n' => Some('\n'),
            b'r' => Some('\r'),
            b't' => Some('\t'),
            _ => None,
        };
        if let Some(c) = simple {
            self.pos += 1;
            out.push(c);
            return Ok(());
        }
        if b != b'u' {
            return Err(self.error("invalid escape"));
        }
        self.pos += 1;
        let first = self.hex4()?;
        let code = match first {
            0xd800..=0xdbff => {
                if !self.at("\\u") {
                    return Err(self.error("lone surrogate in a \\u escape"));
                }
                self.pos += 2;
                let second = self.hex4()?;
                if !(0xdc00..=0xdfff).contains(&second) {
                    return Err(self.error("lone surrogate in a \\u escape"));
                }
                0x10000 + ((first - 0xd800) << 10) + (second - 0xdc00)
            }
            0xdc00..=0xdfff => return Err(self.error("lone surrogate in a \\u escape")),
            _ => first,
        };
        let c = char::from_u32(code).ok_or_else(|| self.error("invalid \\u escape"))?;
        out.push(c);
        Ok(())
    }

    /// Four hex digits.
    fn hex4(&mut self) -> Result<u32, SonoraError> {
        let mut code = 0;
        for _ in 0..4 {
            let digit = self
                .peek()
                .and_then(|b| char::from(b).to_digit(16))
                .ok_or_else(|| self.error("expected four hex digits"))?;
            code = code * 16 + digit;
            self.pos += 1;
        }
        Ok(code)
    }

    /// Skips one or more ASCII digits.
    fn digits(&mut self) -> Result<(), SonoraError> {
        if !matches!(self.peek(), Some(b'0'..=b'9')) {
            return Err(self.error("expected a digit"));
        }
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
        Ok(())
    }

    /// A number: an integer (no fraction, no exponent) or a float, as Python reads them.
    fn number(&mut self) -> Result<Value, SonoraError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
            if self.peek() == Some(b'I') {
                return Err(self.error("NaN and Infinity are not accepted"));
            }
        }
        if self.peek() == Some(b'0') {
            self.pos += 1;
        } else {
            self.digits()?;
        }
        let mut float = false;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            self.digits()?;
            float = true;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            self.digits()?;
            float = true;
        }
        let literal = self.text.get(start..self.pos).unwrap_or_default();
        let number = if float {
            literal
                .parse::<f64>()
                .ok()
                .and_then(Number::from_f64)
                .ok_or_else(|| self.error(format!("{literal} is out of the float range")))?
        } else if let Ok(n) = literal.parse::<u64>() {
            Number::from(n)
        } else if let Ok(n) = literal.parse::<i64>() {
            Number::from(n)
        } else {
            self.pos = start;
            return Err(self.error(format!("integer {literal} is out of the 64-bit range")));
        };
        Ok(Value::Number(number))
    }
}

// ---------------------------------------------------------------------------------------------
// The schema, checked on the JSON tree so that errors name JSON paths.

/// `path.key`, or `key` at the root.
fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// The JSON type of a value, as error messages name it.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a float",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A [`SonoraError::WrongType`].
fn wrong(value: &Value, path: &str, expected: &'static str) -> SonoraError {
    SonoraError::WrongType {
        path: path.to_owned(),
        expected,
        found: kind(value),
    }
}

/// A [`SonoraError::Invalid`].
fn invalid(path: &str, message: impl Into<String>) -> SonoraError {
    SonoraError::Invalid {
        path: path.to_owned(),
        message: message.into(),
    }
}

/// The required `key` of the object at `path`.
fn field<'v>(map: &'v Map<String, Value>, path: &str, key: &str) -> Result<&'v Value, SonoraError> {
    map.get(key).ok_or_else(|| SonoraError::Missing {
        path: join(path, key),
    })
}

/// Refuses keys outside `allowed`.
fn deny_unknown(map: &Map<String, Value>, path: &str, allowed: &[&str]) -> Result<(), SonoraError> {
    match map.keys().find(|key| !allowed.contains(&key.as_str())) {
        Some(key) => Err(SonoraError::UnknownField {
            path: join(path, key),
        }),
        None => Ok(()),
    }
}

/// The value as an object.
fn as_object<'v>(value: &'v Value, path: &str) -> Result<&'v Map<String, Value>, SonoraError> {
    value
        .as_object()
        .ok_or_else(|| wrong(value, path, "an object"))
}

/// The value as an array.
fn as_array<'v>(value: &'v Value, path: &str) -> Result<&'v Vec<Value>, SonoraError> {
    value
        .as_array()
        .ok_or_else(|| wrong(value, path, "an array"))
}

/// The value as a string.
fn as_str<'v>(value: &'v Value, path: &str) -> Result<&'v str, SonoraError> {
    value.as_str().ok_or_else(|| wrong(value, path, "a string"))
}

/// The value as a boolean.
fn as_bool(value: &Value, path: &str) -> Result<bool, SonoraError> {
    value
        .as_bool()
        .ok_or_else(|| wrong(value, path, "a boolean"))
}

/// The value as a non-negative integer.
fn as_u64(value: &Value, path: &str) -> Result<u64, SonoraError> {
    match value {
        Value::Number(n) if !n.is_f64() => n
            .as_u64()
            .ok_or_else(|| invalid(path, format!("{n} is negative"))),
        _ => Err(wrong(value, path, "a non-negative integer")),
    }
}

/// The value as a number (Python's floats and ints alike).
fn as_f64(value: &Value, path: &str) -> Result<f64, SonoraError> {
    value.as_f64().ok_or_else(|| wrong(value, path, "a number"))
}

/// A string `field` of at most `max` bytes, non-empty when `required`.
fn text(
    map: &Map<String, Value>,
    path: &str,
    key: &str,
    max: usize,
    required: bool,
) -> Result<String, SonoraError> {
    let value = field(map, path, key)?;
    let path = join(path, key);
    let value = as_str(value, &path)?;
    check_len(&path, value, max, required)?;
    Ok(value.to_owned())
}

/// A string of at most `max` bytes, non-empty when `required`.
fn check_len(path: &str, value: &str, max: usize, required: bool) -> Result<(), SonoraError> {
    if required && value.is_empty() {
        return Err(invalid(path, "must not be empty"));
    }
    if value.len() > max {
        return Err(invalid(
            path,
            format!("is {} bytes long; at most {max} are allowed", value.len()),
        ));
    }
    Ok(())
}

/// A playback position within its track, unless the track is a stream or of unknown length.
fn check_position(position: u64, track: &SonoraTrack, path: &str) -> Result<(), SonoraError> {
    if track.length > 0 && !track.is_stream && position > track.length {
        return Err(invalid(
            path,
            format!(
                "{position} is past the end of the track ({} ms)",
                track.length
            ),
        ));
    }
    Ok(())
}

/// `data.player`.
fn parse_player(value: &Value, path: &str) -> Result<SonoraPlayer, SonoraError> {
    let map = as_object(value, path)?;
    deny_unknown(
        map,
        path,
        &["volume", "paused", "position", "connected", "session_id"],
    )?;
    let volume_path = join(path, "volume");
    let volume = as_u64(field(map, path, "volume")?, &volume_path)?;
    let volume = u16::try_from(volume)
        .ok()
        .filter(|v| *v <= VOLUME_MAX)
        .ok_or_else(|| {
            invalid(
                &volume_path,
                format!("{volume} is outside the accepted range 0..={VOLUME_MAX}"),
            )
        })?;
    let session_path = join(path, "session_id");
    let session_id = match field(map, path, "session_id")? {
        Value::Null => None,
        other => {
            let id = as_str(other, &session_path)?;
            check_len(&session_path, id, NAME_LEN_MAX, false)?;
            Some(id.to_owned())
        }
    };
    Ok(SonoraPlayer {
        volume,
        paused: as_bool(field(map, path, "paused")?, &join(path, "paused"))?,
        position: as_u64(field(map, path, "position")?, &join(path, "position"))?,
        connected: as_bool(field(map, path, "connected")?, &join(path, "connected"))?,
        session_id,
    })
}

/// A track object.
fn parse_track(value: &Value, path: &str) -> Result<SonoraTrack, SonoraError> {
    let map = as_object(value, path)?;
    deny_unknown(
        map,
        path,
        &[
            "title",
            "author",
            "uri",
            "identifier",
            "length",
            "position",
            "isStream",
            "isSeekable",
            "track",
        ],
    )?;
    let uri_path = join(path, "uri");
    let uri = match field(map, path, "uri")? {
        Value::Null => None,
        other => {
            let uri = as_str(other, &uri_path)?;
            check_len(&uri_path, uri, TEXT_LEN_MAX, false)?;
            Some(uri.to_owned())
        }
    };
    let track = SonoraTrack {
        title: text(map, path, "title", TEXT_LEN_MAX, true)?,
        author: text(map, path, "author", TEXT_LEN_MAX, false)?,
        uri,
        identifier: text(map, path, "identifier", TEXT_LEN_MAX, false)?,
        length: as_u64(field(map, path, "length")?, &join(path, "length"))?,
        position: as_u64(field(map, path, "position")?, &join(path, "position"))?,
        is_stream: as_bool(field(map, path, "isStream")?, &join(path, "isStream"))?,
        is_seekable: as_bool(field(map, path, "isSeekable")?, &join(path, "isSeekable"))?,
        track: text(map, path, "track", ENCODED_LEN_MAX, true)?,
    };
    check_position(track.position, &track, &join(path, "position"))?;
    Ok(track)
}

/// An array of track objects, at most `max` of them.
fn parse_tracks(value: &Value, path: &str, max: usize) -> Result<Vec<SonoraTrack>, SonoraError> {
    let items = as_array(value, path)?;
    if items.len() > max {
        return Err(invalid(
            path,
            format!("has {} tracks; at most {max} are allowed", items.len()),
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| parse_track(item, &format!("{path}[{i}]")))
        .collect()
}

/// `data.queue`.
fn parse_queue(value: &Value, path: &str) -> Result<SonoraQueue, SonoraError> {
    let map = as_object(value, path)?;
    deny_unknown(
        map,
        path,
        &[
            "current",
            "upcoming",
            "history",
            "loop_mode",
            "shuffle_enabled",
        ],
    )?;
    let current = match field(map, path, "current")? {
        Value::Null => None,
        other => Some(parse_track(other, &join(path, "current"))?),
    };
    let upcoming_path = join(path, "upcoming");
    let upcoming = parse_tracks(field(map, path, "upcoming")?, &upcoming_path, QUEUE_LEN_MAX)?;
    let history_path = join(path, "history");
    let history = parse_tracks(field(map, path, "history")?, &history_path, usize::MAX)?;
    let mode_path = join(path, "loop_mode");
    let loop_mode = match as_str(field(map, path, "loop_mode")?, &mode_path)? {
        "none" => LoopMode::None,
        "track" => LoopMode::Track,
        "queue" => LoopMode::Queue,
        "autoplay" => LoopMode::Autoplay,
        other => {
            return Err(invalid(
                &mode_path,
                format!("{other:?} is not one of none, track, queue, autoplay"),
            ))
        }
    };
    let shuffle_path = join(path, "shuffle_enabled");
    Ok(SonoraQueue {
        current,
        upcoming,
        history,
        loop_mode,
        shuffle_enabled: as_bool(field(map, path, "shuffle_enabled")?, &shuffle_path)?,
    })
}

/// `data.filters`.
fn parse_filters(value: &Value, path: &str) -> Result<SonoraFilters, SonoraError> {
    let map = as_object(value, path)?;
    deny_unknown(map, path, &["active_filters", "filter_config"])?;
    let active_path = join(path, "active_filters");
    let names = as_array(field(map, path, "active_filters")?, &active_path)?;
    if names.len() > FILTER_NAMES_MAX {
        return Err(invalid(
            &active_path,
            format!(
                "has {} names; at most {FILTER_NAMES_MAX} are allowed",
                names.len()
            ),
        ));
    }
    let mut active_filters: Vec<String> = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let name_path = format!("{active_path}[{i}]");
        let name = as_str(name, &name_path)?;
        check_len(&name_path, name, NAME_LEN_MAX, true)?;
        if active_filters.iter().any(|earlier| earlier == name) {
            return Err(invalid(&name_path, format!("{name:?} is listed twice")));
        }
        active_filters.push(name.to_owned());
    }
    let config_path = join(path, "filter_config");
    let filter_config = parse_filter_config(field(map, path, "filter_config")?, &config_path)?;
    Ok(SonoraFilters {
        active_filters,
        filter_config,
    })
}

/// The optional number `key` of the object at `path`.
fn opt_float(map: &Map<String, Value>, path: &str, key: &str) -> Result<Option<f64>, SonoraError> {
    map.get(key)
        .map(|value| as_f64(value, &join(path, key)))
        .transpose()
}

/// The optional object `key` of the object at `path`, holding only the numbers `keys`.
fn float_object<const N: usize>(
    map: &Map<String, Value>,
    path: &str,
    key: &str,
    keys: [&str; N],
) -> Result<Option<[Option<f64>; N]>, SonoraError> {
    let Some(value) = map.get(key) else {
        return Ok(None);
    };
    let path = join(path, key);
    let inner = as_object(value, &path)?;
    deny_unknown(inner, &path, &keys)?;
    let mut out = [None; N];
    for (slot, key) in out.iter_mut().zip(keys) {
        *slot = opt_float(inner, &path, key)?;
    }
    Ok(Some(out))
}

/// The key a filter uses in the file: Lavalink's camelCase, or the snake_case alias.
fn filter_key<'k>(
    map: &Map<String, Value>,
    path: &str,
    camel: &'k str,
    snake: &'k str,
) -> Result<&'k str, SonoraError> {
    match (map.contains_key(camel), map.contains_key(snake)) {
        (true, true) => Err(invalid(
            &join(path, snake),
            format!("{camel} and {snake} are the same filter; give one"),
        )),
        (false, true) => Ok(snake),
        _ => Ok(camel),
    }
}

/// `data.filters.filter_config`: a Lavalink v4 filters payload, checked against Lavalink's ranges.
fn parse_filter_config(value: &Value, path: &str) -> Result<FilterConfig, SonoraError> {
    let map = as_object(value, path)?;
    deny_unknown(
        map,
        path,
        &[
            "volume",
            "equalizer",
            "karaoke",
            "timescale",
            "tremolo",
            "vibrato",
            "rotation",
            "distortion",
            "channelMix",
            "channel_mix",
            "lowPass",
            "low_pass",
        ],
    )?;
    let mix_key = filter_key(map, path, "channelMix", "channel_mix")?;
    let low_pass_key = filter_key(map, path, "lowPass", "low_pass")?;
    let mut config = FilterConfig {
        volume: opt_float(map, path, "volume")?,
        ..FilterConfig::default()
    };
    if let Some(bands) = map.get("equalizer") {
        let bands_path = join(path, "equalizer");
        let items = as_array(bands, &bands_path)?;
        if items.len() > EQUALIZER_BAND_COUNT {
            return Err(invalid(
                &bands_path,
                format!(
                    "has {} bands; at most {EQUALIZER_BAND_COUNT} are allowed",
                    items.len()
                ),
            ));
        }
        let mut parsed = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let item_path = format!("{bands_path}[{i}]");
            let entry = as_object(item, &item_path)?;
            deny_unknown(entry, &item_path, &["band", "gain"])?;
            let band_path = join(&item_path, "band");
            let band = as_u64(field(entry, &item_path, "band")?, &band_path)?;
            let band = u8::try_from(band)
                .ok()
                .filter(|b| usize::from(*b) < EQUALIZER_BAND_COUNT)
                .ok_or_else(|| {
                    invalid(
                        &band_path,
                        format!(
                            "{band} is outside the accepted range 0..={}",
                            EQUALIZER_BAND_COUNT - 1
                        ),
                    )
                })?;
            let gain = as_f64(field(entry, &item_path, "gain")?, &join(&item_path, "gain"))?;
            parsed.push(EqualizerBand { band, gain });
        }
        config.equalizer = Some(parsed);
    }
    let keys = ["level", "monoLevel", "filterBand", "filterWidth"];
    if let Some([level, mono_level, filter_band, filter_width]) =
        float_object(map, path, "karaoke", keys)?
    {
        config.karaoke = Some(Karaoke {
            level,
            mono_level,
            filter_band,
            filter_width,
        });
    }
    let keys = ["speed", "pitch", "rate"];
    if let Some([speed, pitch, rate]) = float_object(map, path, "timescale", keys)? {
        config.timescale = Some(Timescale { speed, pitch, rate });
    }
    if let Some([frequency, depth]) = float_object(map, path, "tremolo", ["frequency", "depth"])? {
        config.tremolo = Some(Tremolo { frequency, depth });
    }
    if let Some([frequency, depth]) = float_object(map, path, "vibrato", ["frequency", "depth"])? {
        config.vibrato = Some(Vibrato { frequency, depth });
    }
    if let Some([rotation_hz]) = float_object(map, path, "rotation", ["rotationHz"])? {
        config.rotation = Some(Rotation { rotation_hz });
    }
    let keys = [
        "sinOffset",
        "sinScale",
        "cosOffset",
        "cosScale",
        "tanOffset",
        "tanScale",
        "offset",
        "scale",
    ];
    if let Some(
        [sin_offset, sin_scale, cos_offset, cos_scale, tan_offset, tan_scale, offset, scale],
    ) = float_object(map, path, "distortion", keys)?
    {
        config.distortion = Some(Distortion {
            sin_offset,
            sin_scale,
            cos_offset,
            cos_scale,
            tan_offset,
            tan_scale,
            offset,
            scale,
        });
    }
    let keys = ["leftToLeft", "leftToRight", "rightToLeft", "rightToRight"];
    if let Some([left_to_left, left_to_right, right_to_left, right_to_right]) =
        float_object(map, path, mix_key, keys)?
    {
        config.channel_mix = Some(ChannelMix {
            left_to_left,
            left_to_right,
            right_to_left,
            right_to_right,
        });
    }
    if let Some([smoothing]) = float_object(map, path, low_pass_key, ["smoothing"])? {
        config.low_pass = Some(LowPass { smoothing });
    }
    config
        .validate()
        .map_err(|error| filter_error(&error, path, mix_key, low_pass_key))?;
    Ok(config)
}

/// A [`FilterConfig::validate`] error, with its `config.` field turned into a file path.
fn filter_error(error: &EventError, path: &str, mix_key: &str, low_pass_key: &str) -> SonoraError {
    let to_path = |field: &str| {
        let field = field.strip_prefix("config.").unwrap_or(field);
        let field = match field.split_once('.') {
            Some(("channel_mix", rest)) => format!("{mix_key}.{rest}"),
            Some(("low_pass", rest)) => format!("{low_pass_key}.{rest}"),
            _ => field.to_owned(),
        };
        join(path, &field)
    };
    match error {
        EventError::FilterOutOfRange {
            field,
            value,
            range,
        } => invalid(
            &to_path(field),
            format!("{value} is outside the accepted range {range}"),
        ),
        EventError::NotFinite { field } => invalid(&to_path(field), "must be a finite number"),
        EventError::DuplicateBand { band } => invalid(
            &join(path, "equalizer"),
            format!("lists band {band} more than once"),
        ),
        other => invalid(path, other.to_string()),
    }
}

/// `data.autoplay`.
fn parse_autoplay(value: &Value, path: &str) -> Result<SonoraAutoplay, SonoraError> {
    let map = as_object(value, path)?;
    deny_unknown(
        map,
        path,
        &[
            "enabled",
            "strategy",
            "fallback_playlist",
            "max_history",
            "smart_shuffle",
        ],
    )?;
    let history_path = join(path, "max_history");
    let max_history = as_u64(field(map, path, "max_history")?, &history_path)?;
    let max_history = u32::try_from(max_history)
        .map_err(|_| invalid(&history_path, format!("{max_history} does not fit 32 bits")))?;
    let playlist_path = join(path, "fallback_playlist");
    let fallback_playlist = match map.get("fallback_playlist") {
        None | Some(Value::Null) => None,
        Some(other) => {
            let playlist = as_str(other, &playlist_path)?;
            check_len(&playlist_path, playlist, TEXT_LEN_MAX, false)?;
            Some(playlist.to_owned())
        }
    };
    Ok(SonoraAutoplay {
        enabled: as_bool(field(map, path, "enabled")?, &join(path, "enabled"))?,
        strategy: text(map, path, "strategy", NAME_LEN_MAX, true)?,
        max_history,
        smart_shuffle: as_bool(
            field(map, path, "smart_shuffle")?,
            &join(path, "smart_shuffle"),
        )?,
        fallback_playlist,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{apply_checked, Event};
    use serde_json::json;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sonora-1.2.8");

    /// A file written by Python's `json.dumps(indent=2)` with Sonora's checksum, holding every
    /// filter, escapes of every kind, astral characters and floats that need 17 digits, a
    /// round-half-even repr tie, exponents and subnormals.
    const TRICKY: &str = r##"{
  "guild_id": 18446744073709551615,
  "timestamp": 1760009999,
  "version": "1.2.8",
  "data": {
    "player": {
      "volume": 1000,
      "paused": true,
      "position": 1000,
      "connected": true,
      "session_id": "s\u00e9ssion/\"1\""
    },
    "queue": {
      "current": {
        "title": "Ctl \u0001\u001f\u007f tab\t nl\n cr\r bs\\ q\" \b\f \u2028 \ud83c\udfb5\ud834\udd1e",
        "author": "",
        "uri": null,
        "identifier": "",
        "length": 1000,
        "position": 0,
        "isStream": false,
        "isSeekable": true,
        "track": "QAAA+/=="
      },
      "upcoming": [
        {
          "title": "Stream \u00e9",
          "author": "DJ",
          "uri": "https://twitch.tv/x",
          "identifier": "x",
          "length": 0,
          "position": 0,
          "isStream": false,
          "isSeekable": true,
          "track": "QAAB"
        }
      ],
      "history": [],
      "loop_mode": "track",
      "shuffle_enabled": true
    },
    "filters": {
      "active_filters": [
        "bassboost",
        "nightcore",
        "\u00fcber"
      ],
      "filter_config": {
        "volume": 0.30000000000000004,
        "equalizer": [
          {
            "band": 0,
            "gain": -0.25
          },
          {
            "band": 14,
            "gain": 1.0
          },
          {
            "band": 7,
            "gain": 1e-05
          }
        ],
        "karaoke": {
          "level": 0.0,
          "monoLevel": 1.0,
          "filterBand": 109.98020000000001,
          "filterWidth": 1.5e+20
        },
        "timescale": {
          "speed": 1.3200000000000003,
          "pitch": 0.0001,
          "rate": 1e+16
        },
        "tremolo": {
          "frequency": 2.0,
          "depth": 0.5
        },
        "vibrato": {
          "frequency": 14.0,
          "depth": 1.0
        },
        "rotation": {
          "rotationHz": -0.2
        },
        "distortion": {
          "sinOffset": -0.0,
          "sinScale": 1.0,
          "cosOffset": 5e-324,
          "cosScale": 1.7976931348623157e+308,
          "tanOffset": 123456789.123,
          "tanScale": 1e-07,
          "offset": 233115890514796.12,
          "scale": 1.0
        },
        "channelMix": {
          "leftToLeft": 0.5,
          "leftToRight": 0.5,
          "rightToLeft": 0.5,
          "rightToRight": 0.5
        },
        "lowPass": {
          "smoothing": 20.0
        }
      }
    },
    "autoplay": {
      "enabled": false,
      "strategy": "similar_genre",
      "max_history": 4294967295,
      "smart_shuffle": false
    }
  },
  "checksum": "765b88ffc6d306559726df4314805331c61e91f709438344a329ec421a931010"
}"##;

    /// Every fixture: (file name, text), sorted by name.
    fn fixtures() -> Vec<(String, String)> {
        let mut paths: Vec<_> = std::fs::read_dir(FIXTURES)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
            .collect();
        paths.sort();
        paths
            .into_iter()
            .map(|path| {
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read_to_string(&path).unwrap())
            })
            .collect()
    }

    /// The fixture whose name contains `guild`.
    fn fixture(guild: &str) -> String {
        fixtures()
            .into_iter()
            .find(|(name, _)| name.contains(guild))
            .unwrap()
            .1
    }

    /// `text` with `change` applied to its JSON and the checksum recomputed.
    fn edit(text: &str, change: impl FnOnce(&mut Value)) -> String {
        let mut value = read_json(text).unwrap();
        change(&mut value);
        let root = value.as_object_mut().unwrap();
        root.remove("checksum");
        let sum = sha256_hex(&python_json_dumps_sorted(&value));
        let root = value.as_object_mut().unwrap();
        root.insert("checksum".to_owned(), Value::String(sum));
        let mut out = String::new();
        Node::from_value(&value).write_indented(&mut out, 0);
        out
    }

    /// Sets the value at a JSON pointer, adding the last key to its object if needed.
    fn set(pointer: &str, new: Value) -> impl FnOnce(&mut Value) {
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        let (parent, key) = (parent.to_owned(), key.to_owned());
        move |value: &mut Value| match value.pointer_mut(&parent).unwrap() {
            Value::Object(map) => {
                map.insert(key, new);
            }
            Value::Array(items) => items[key.parse::<usize>().unwrap()] = new,
            other => panic!("{parent} is {other}"),
        }
    }

    /// Export of the parsed file's own state, with its guild and timestamp.
    fn reexport(file: &SonoraFile) -> String {
        let state = to_state(file, 50).unwrap();
        to_json(&from_state(
            file.guild_id,
            file.timestamp,
            &state,
            Sections::ALL,
        ))
    }

    #[test]
    fn all_fixtures_round_trip_byte_identically() {
        let files = fixtures();
        assert_eq!(files.len(), 12, "expected the 12 Sonora 1.2.8 fixtures");
        for (name, text) in &files {
            let file = parse(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(file.version, SONORA_VERSION, "{name}");
            let state = to_state(&file, 50).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(state.check_invariants(), Ok(()), "{name}");
            let back = from_state(file.guild_id, file.timestamp, &state, Sections::ALL);
            assert_eq!(back.checksum, file.checksum, "{name}: checksum");
            let written = to_json(&back);
            let original = read_json(text).unwrap();
            let rewritten = read_json(&written).unwrap();
            assert_eq!(rewritten["data"], original["data"], "{name}: data");
            assert_eq!(written, *text, "{name}: not byte-identical");
            assert_eq!(back, file, "{name}: typed model");
            // And the state survives export and import unchanged.
            assert_eq!(to_state(&parse(&written).unwrap(), 50).unwrap(), state);
        }
    }

    #[test]
    fn fixture_maps_to_the_expected_state() {
        let file = parse(&fixture("211917732357417771")).unwrap();
        let state = to_state(&file, 50).unwrap();
        assert_eq!(state.player.volume, 123);
        assert!(!state.player.paused);
        assert_eq!(state.player.position_ms, 18120);
        assert_eq!(state.player.position_anchor_unix_ms, None);
        let voice = state.player.voice.as_ref().unwrap();
        assert_eq!(voice.session_id, "session_822400");
        assert_eq!(voice.channel_id, Snowflake::Number(UNKNOWN_CHANNEL_ID));
        assert_eq!(
            (voice.endpoint.as_ref(), voice.token.as_ref()),
            (None, None)
        );
        // Ids in play order: history (oldest first), current, upcoming.
        let ids: Vec<u64> = state.entries().map(|entry| entry.id).collect();
        assert_eq!(ids, (1..=23).collect::<Vec<u64>>());
        assert_eq!(state.queue.history.len(), 2);
        assert_eq!(state.queue.current.as_ref().map(|e| e.id), Some(3));
        assert_eq!(state.queue.upcoming.len(), 20);
        assert_eq!(state.next_entry_id, 24);
        let current = &state.queue.current.as_ref().unwrap().track.fields();
        assert_eq!(
            current.title,
            "\u{591c}\u{306b}\u{99c6}\u{3051}\u{308b} R\u{e9}sum\u{e9} \"Quoted\" Remix"
        );
        assert_eq!(current.author.as_deref().unwrap_or(""), "AC/DC");
        assert_eq!(current.identifier.as_deref().unwrap_or(""), "aPwTYzeopB_");
        assert_eq!(current.length_ms, Some(35978));
        assert_eq!((current.is_stream, current.is_seekable), (None, None));
        assert!(current.encoded.starts_with("urs/Ktii"));
        let emoji = &state.queue.upcoming[0].track;
        assert_eq!(emoji.title(), "Never Emoji \u{1f3b5} More Live");
        // Streams are written with length 0: absent length.
        let streams = state
            .entries()
            .filter(|e| e.track.fields().length_ms.is_none());
        assert_eq!(streams.count(), 2);
        assert_eq!(state.queue.loop_mode, LoopMode::Autoplay);
        assert!(!state.queue.shuffle);
        assert!(state.filters.active.is_empty());
        let config = &state.filters.config;
        let bands = config.equalizer.as_ref().unwrap();
        assert_eq!(
            bands,
            &[
                EqualizerBand { band: 0, gain: 0.2 },
                EqualizerBand {
                    band: 1,
                    gain: 0.15
                }
            ]
        );
        let timescale = config.timescale.as_ref().unwrap();
        assert_eq!(
            (timescale.speed, timescale.pitch, timescale.rate),
            (Some(1.2), Some(1.1), Some(1.0))
        );
        assert_eq!(
            state.autoplay,
            Autoplay {
                enabled: true,
                strategy: "similar_artist".to_owned(),
                fallback_playlist: None,
                max_history: None,
                smart_shuffle: None,
            }
        );
    }

    #[test]
    fn disconnected_fixtures_have_no_voice() {
        let file = parse(&fixture("367813950488357999")).unwrap();
        let player = file.data.player.as_ref().unwrap();
        assert_eq!(
            (player.connected, player.session_id.as_ref()),
            (false, None)
        );
        assert_eq!(to_state(&file, 50).unwrap().player.voice, None);
    }

    #[test]
    fn a_changed_value_without_a_new_checksum_is_refused() {
        let text = fixture("211917732357417771");
        let stated = parse(&text).unwrap().checksum;
        let changes = [
            ("\"volume\": 123", "\"volume\": 124"),
            ("\"gain\": 0.15", "\"gain\": 0.150001"),
            ("R\\u00e9sum\\u00e9", "R\\u00e8sum\\u00e9"),
            ("\"shuffle_enabled\": false", "\"shuffle_enabled\": true"),
        ];
        for (from, to) in changes {
            assert!(text.contains(from), "{from}");
            let changed = text.replacen(from, to, 1);
            match parse(&changed) {
                Err(SonoraError::ChecksumMismatch { expected, actual }) => {
                    assert_eq!(expected, stated);
                    assert_ne!(actual, stated);
                    assert_eq!(actual.len(), 64);
                }
                other => panic!("{from} -> {to}: {other:?}"),
            }
        }
        // Layout is not content: re-indenting keeps the checksum valid.
        let compact = text.replace("\n", "").replace("  ", "");
        assert_eq!(parse(&compact).unwrap(), parse(&text).unwrap());
        // The checksum itself changed.
        let forged = text.replacen(&stated, &"0".repeat(64), 1);
        assert!(matches!(
            parse(&forged),
            Err(SonoraError::ChecksumMismatch { .. })
        ));
        let mut value = read_json(&text).unwrap();
        value.as_object_mut().unwrap().remove("checksum");
        let mut stripped = String::new();
        Node::from_value(&value).write_indented(&mut stripped, 0);
        assert_eq!(
            parse(&stripped),
            Err(SonoraError::Missing {
                path: "checksum".into()
            })
        );
    }

    #[test]
    fn a_missing_section_is_named() {
        let text = fixture("211917732357417771");
        for section in ["player", "queue", "filters", "autoplay"] {
            let partial = edit(&text, |v| {
                v["data"].as_object_mut().unwrap().remove(section);
            });
            let error = parse(&partial).unwrap_err();
            assert_eq!(
                error,
                SonoraError::Missing {
                    path: format!("data.{section}")
                }
            );
            assert_eq!(error.to_string(), format!("data.{section} is missing"));
            // Not required: the section takes the defaults of a fresh state.
            let file = parse_with(&partial, Sections::NONE).unwrap();
            let state = to_state(&file, 50).unwrap();
            let fresh = State::new(50);
            match section {
                "player" => assert_eq!(state.player, fresh.player),
                "queue" => {
                    assert_eq!(state.queue, fresh.queue);
                    assert_eq!(state.next_entry_id, 1);
                }
                "filters" => assert_eq!(state.filters, fresh.filters),
                _ => assert_eq!(state.autoplay, fresh.autoplay),
            }
        }
        let no_data = edit(&text, |v| {
            v.as_object_mut().unwrap().remove("data");
        });
        assert_eq!(
            parse_with(&no_data, Sections::NONE),
            Err(SonoraError::Missing {
                path: "data".into()
            })
        );
    }

    #[test]
    fn invalid_values_are_named_by_json_path() {
        let text = fixture("211917732357417771");
        type Change = Box<dyn FnOnce(&mut Value)>;
        let cases: Vec<(Change, &str)> = vec![
            (
                Box::new(set("/data/player/volume", json!(1001))),
                "data.player.volume",
            ),
            (
                Box::new(set("/data/player/volume", json!(100.0))),
                "data.player.volume",
            ),
            (
                Box::new(set("/data/player/paused", json!(0))),
                "data.player.paused",
            ),
            (
                Box::new(set("/data/player/position", json!(35979))),
                "data.player.position",
            ),
            (
                Box::new(set("/data/player/session_id", json!(7))),
                "data.player.session_id",
            ),
            (
                Box::new(set("/data/queue/upcoming/3/length", json!("long"))),
                "data.queue.upcoming[3].length",
            ),
            (
                Box::new(set("/data/queue/upcoming/3/length", json!(-1))),
                "data.queue.upcoming[3].length",
            ),
            (
                Box::new(set("/data/queue/upcoming/0/title", json!(""))),
                "data.queue.upcoming[0].title",
            ),
            (
                Box::new(set("/data/queue/history/1/track", json!(null))),
                "data.queue.history[1].track",
            ),
            (
                Box::new(|v: &mut Value| {
                    v["data"]["queue"]["upcoming"][2]
                        .as_object_mut()
                        .unwrap()
                        .remove("track");
                }),
                "data.queue.upcoming[2].track",
            ),
            (
                Box::new(set("/data/queue/upcoming/5/extra", json!(1))),
                "data.queue.upcoming[5].extra",
            ),
            (
                Box::new(set("/data/queue/current/position", json!(35979))),
                "data.queue.current.position",
            ),
            (
                Box::new(set("/data/queue/loop_mode", json!("forever"))),
                "data.queue.loop_mode",
            ),
            (
                Box::new(set("/data/queue/upcoming", json!({}))),
                "data.queue.upcoming",
            ),
            (
                Box::new(set(
                    "/data/filters/filter_config/equalizer/0/band",
                    json!(15),
                )),
                "data.filters.filter_config.equalizer[0].band",
            ),
            (
                Box::new(set(
                    "/data/filters/filter_config/equalizer/1/gain",
                    json!(1.5),
                )),
                "data.filters.filter_config.equalizer[1].gain",
            ),
            (
                Box::new(set(
                    "/data/filters/filter_config/equalizer/1/gain",
                    json!(-0.3),
                )),
                "data.filters.filter_config.equalizer[1].gain",
            ),
            (
                Box::new(set(
                    "/data/filters/filter_config/equalizer/1/band",
                    json!(0),
                )),
                "data.filters.filter_config.equalizer",
            ),
            (
                Box::new(set(
                    "/data/filters/filter_config/timescale/speed",
                    json!(0.0),
                )),
                "data.filters.filter_config.timescale.speed",
            ),
            (
                Box::new(set(
                    "/data/filters/filter_config/timescale/speed",
                    json!("fast"),
                )),
                "data.filters.filter_config.timescale.speed",
            ),
            (
                Box::new(set(
                    "/data/filters/filter_config/timescale/tempo",
                    json!(1.0),
                )),
                "data.filters.filter_config.timescale.tempo",
            ),
            (
                Box::new(set(
                    "/data/filters/filter_config/channelMix",
                    json!({"leftToLeft": 2.0}),
                )),
                "data.filters.filter_config.channelMix.leftToLeft",
            ),
            (
                Box::new(set(
                    "/data/filters/filter_config/low_pass",
                    json!({"smoothing": -1.0}),
                )),
                "data.filters.filter_config.low_pass.smoothing",
            ),
            (
                Box::new(set("/data/filters/filter_config/volume", json!(5.5))),
                "data.filters.filter_config.volume",
            ),
            (
                Box::new(set("/data/filters/active_filters", json!(["a", "a"]))),
                "data.filters.active_filters[1]",
            ),
            (
                Box::new(set("/data/autoplay/strategy", json!(""))),
                "data.autoplay.strategy",
            ),
            (
                Box::new(set("/data/autoplay/max_history", json!(4294967296u64))),
                "data.autoplay.max_history",
            ),
            (
                Box::new(set("/data/autoplay/bogus", json!(true))),
                "data.autoplay.bogus",
            ),
            (Box::new(set("/data/extra", json!({}))), "data.extra"),
            (
                Box::new(set("/timestamp", json!(1760000222.5))),
                "timestamp",
            ),
            (
                Box::new(set("/guild_id", json!("211917732357417771"))),
                "guild_id",
            ),
            (
                Box::new(|v: &mut Value| {
                    v.as_object_mut().unwrap().remove("version");
                }),
                "version",
            ),
        ];
        for (change, path) in cases {
            let changed = edit(&text, change);
            let error = parse(&changed).unwrap_err();
            assert_eq!(error.path(), Some(path), "{error}");
            assert!(error.to_string().starts_with(path), "{error}");
        }
    }

    #[test]
    fn range_messages_say_what_is_accepted() {
        let text = fixture("211917732357417771");
        let loud = edit(&text, set("/data/player/volume", json!(1001)));
        assert_eq!(
            parse(&loud).unwrap_err().to_string(),
            "data.player.volume: 1001 is outside the accepted range 0..=1000"
        );
        let band = edit(
            &text,
            set("/data/filters/filter_config/equalizer/0/band", json!(15)),
        );
        assert_eq!(
            parse(&band).unwrap_err().to_string(),
            "data.filters.filter_config.equalizer[0].band: 15 is outside the accepted range 0..=14"
        );
        let typed = edit(&text, set("/data/queue/upcoming/3/length", json!("x")));
        assert_eq!(
            parse(&typed).unwrap_err().to_string(),
            "data.queue.upcoming[3].length must be a non-negative integer, found a string"
        );
    }

    #[test]
    fn json_syntax_errors_give_line_and_column() {
        let text = fixture("599212921556694491");
        let truncated = &text[..text.len() / 2];
        assert!(matches!(parse(truncated), Err(SonoraError::Json { .. })));
        let cases = [
            ("{\n  \"a\": NaN\n}", 2, 8),
            ("{\"a\": -Infinity}", 1, 8),
            ("{\"a\": 1, \"a\": 2}", 1, 10),
            ("{\"a\": \"\\ud83c\"}", 1, 14),
            ("{\"a\": 01}", 1, 8),
            ("{\"a\": 1.}", 1, 9),
            ("{\"a\": \"tab\there\"}", 1, 11),
            ("{\"a\": 99999999999999999999}", 1, 7),
            ("{\"\u{e9}\": [1 2]}", 1, 10),
            ("[] x", 1, 4),
            ("", 1, 1),
        ];
        for (input, line, column) in cases {
            match read_json(input) {
                Err(SonoraError::Json {
                    line: l, column: c, ..
                }) => assert_eq!((l, c), (line, column), "{input:?}"),
                other => panic!("{input:?}: {other:?}"),
            }
        }
        let deep = "[".repeat(JSON_DEPTH_MAX + 1) + &"]".repeat(JSON_DEPTH_MAX + 1);
        assert!(read_json(&deep).is_err());
        let ok = "[".repeat(JSON_DEPTH_MAX) + &"]".repeat(JSON_DEPTH_MAX);
        assert!(read_json(&ok).is_ok());
    }

    #[test]
    fn json_reader_keeps_ints_and_floats_exact() {
        let value =
            read_json(r#"[0, -0, 1.0, -0.0, 18446744073709551615, -9223372036854775808, 1E2, 2.5e-5, "\u00e9\/\ud83c\udfb5"]"#)
                .unwrap();
        assert_eq!(
            python_json_dumps_sorted(&value),
            r#"[0, 0, 1.0, -0.0, 18446744073709551615, -9223372036854775808, 100.0, 2.5e-05, "\u00e9/\ud83c\udfb5"]"#
        );
        // Values that serde_json's default (not `float_roundtrip`) parser reads one ULP off.
        for literal in [
            "109.98020000000001",
            "43.475300000000004",
            "1.5860846119992697e-265",
        ] {
            let value = read_json(literal).unwrap();
            assert_eq!(value.as_f64(), literal.parse::<f64>().ok());
        }
    }

    #[test]
    fn python_float_repr_matches_python() {
        // Ground truth: python3 -c 'print(repr(x))' (Python 3.11).
        let table: &[(f64, &str)] = &[
            (0.1, "0.1"),
            (1.0, "1.0"),
            (1e-05, "1e-05"),
            (0.0001, "0.0001"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (1.5e300, "1.5e+300"),
            (-0.0, "-0.0"),
            (0.0, "0.0"),
            (123456789.123, "123456789.123"),
            (5e-324, "5e-324"),
            (2.2250738585072014e-308, "2.2250738585072014e-308"),
            (f64::MAX, "1.7976931348623157e+308"),
            (0.1 + 0.2, "0.30000000000000004"),
            (109.98020000000001, "109.98020000000001"),
            (233115890514796.12, "233115890514796.12"),
            (9007199254740993.0, "9007199254740992.0"),
            (1234567890123456.7, "1234567890123456.8"),
            (12345678901234567.0, "1.2345678901234568e+16"),
            (-1.5, "-1.5"),
            (100.0, "100.0"),
            (0.15, "0.15"),
            (1e22, "1e+22"),
            (1e-7, "1e-07"),
            (0.000123, "0.000123"),
            (2.5e-5, "2.5e-05"),
            (1.0 / 3.0, "0.3333333333333333"),
            (2.0 / 3.0, "0.6666666666666666"),
            (1e23, "1e+23"),
            (4.35, "4.35"),
            (0.5, "0.5"),
            (f64::NAN, "nan"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
        ];
        for (x, expected) in table {
            assert_eq!(python_float_repr(*x), *expected, "{x:e}");
        }
        // Round-half-even ties (Python) where Rust's shortest form rounds up.
        let ties: &[(u64, &str)] = &[
            (0x42ea_8090_bb0f_6d84, "233115890514796.12"),
            (0xc31c_b54f_6b43_4481, "-2020163013628192.2"),
            (0x4318_6486_17b9_f199, "1716481631878246.2"),
        ];
        for (bits, expected) in ties {
            assert_eq!(python_float_repr(f64::from_bits(*bits)), *expected);
        }
    }

    #[test]
    fn dumps_sorted_matches_python() {
        let value = json!({
            "b": [1, 2.0, null, true, false, {}, []],
            "a": {"z": "\u{e9}\u{1f3b5}\u{7f}\u{0}", "A": -5, "_": 18446744073709551615u64},
            "": "x"
        });
        // python3: json.dumps(..., sort_keys=True)
        assert_eq!(
            python_json_dumps_sorted(&value),
            r#"{"": "x", "a": {"A": -5, "_": 18446744073709551615, "z": "\u00e9\ud83c\udfb5\u007f\u0000"}, "b": [1, 2.0, null, true, false, {}, []]}"#
        );
        let escapes = json!("q\" b\\ n\n r\r t\t b\u{8} f\u{c} \u{1}\u{1f} ~ \u{2028}");
        assert_eq!(
            python_json_dumps_sorted(&escapes),
            r#""q\" b\\ n\n r\r t\t b\b f\f \u0001\u001f ~ \u2028""#
        );
    }

    #[test]
    fn a_python_written_file_with_every_filter_round_trips() {
        let file = parse(TRICKY).unwrap();
        assert_eq!(file.guild_id, u64::MAX);
        let queue = file.data.queue.as_ref().unwrap();
        let title = &queue.current.as_ref().unwrap().title;
        assert!(title.starts_with("Ctl \u{1}\u{1f}\u{7f} tab\t nl\n cr\r bs\\ q\""));
        assert!(title.ends_with("\u{2028} \u{1f3b5}\u{1d11e}"));
        let config = &file.data.filters.as_ref().unwrap().filter_config;
        assert_eq!(config.volume, Some(0.1 + 0.2));
        let karaoke = config.karaoke.as_ref().unwrap();
        assert_eq!(karaoke.filter_band, Some(109.98020000000001));
        let distortion = config.distortion.as_ref().unwrap();
        assert_eq!(distortion.cos_offset, Some(5e-324));
        assert!(distortion.sin_offset.unwrap().is_sign_negative());
        assert_eq!(config.low_pass.as_ref().unwrap().smoothing, Some(20.0));
        let state = to_state(&file, 50).unwrap();
        let current = &state.queue.current.as_ref().unwrap().track.fields();
        assert_eq!(
            (current.author.as_ref(), current.uri.as_ref()),
            (None, None)
        );
        assert_eq!(state.autoplay.max_history, Some(u32::MAX));
        assert_eq!(
            state.player.voice.as_ref().unwrap().session_id,
            "s\u{e9}ssion/\"1\""
        );
        assert_eq!(reexport(&file), TRICKY);
    }

    #[test]
    fn export_reproduces_sonoras_lossy_points() {
        let mut state = State::new(100);
        let tracks: Vec<Track> = (0..60)
            .map(|i| {
                let mut track = TrackFields::new(format!("QAAA{i}"), format!("Track {i}"));
                track.length_ms = Some(1000);
                track.is_stream = Some(i % 2 == 0);
                track.is_seekable = Some(false);
                track.source = Some("youtube".into());
                Track::from(track)
            })
            .collect();
        let events = [
            Event::TracksEnqueued {
                tracks,
                index: None,
            },
            Event::AutoplaySet {
                enabled: true,
                strategy: "popular".into(),
                fallback_playlist: Some("global_fallback".into()),
                max_history: None,
                smart_shuffle: None,
            },
            Event::ShuffleSet {
                enabled: true,
                seed: Some(7),
            },
            Event::VoiceConnected {
                session_id: "abc".into(),
                channel_id: Snowflake::Text("1100000000000000001".into()),
                endpoint: Some("rotterdam1234.discord.media:443".into()),
                token: Some("deadbeef".into()),
            },
        ];
        for event in &events {
            apply_checked(&mut state, event).unwrap();
        }
        for _ in 0..56 {
            apply_checked(&mut state, &Event::TrackStarted).unwrap();
        }
        let report = Event::PositionReported {
            position_ms: 500,
            at_unix_ms: 1_760_000_000_000,
        };
        apply_checked(&mut state, &report).unwrap();
        assert_eq!(state.queue.history.len(), 55);
        let file = from_state(42, 1_760_000_000, &state, Sections::ALL);
        let text = to_json(&file);
        assert!(!text.contains("fallback_playlist"));
        assert!(!text.contains("youtube"));
        assert!(!text.contains("1100000000000000001"));
        assert!(!text.ends_with('\n'));
        let parsed = parse(&text).unwrap();
        assert_eq!(parsed, file);
        let queue = parsed.data.queue.as_ref().unwrap();
        assert_eq!(queue.history.len(), SONORA_HISTORY_MAX);
        assert_eq!(queue.history[0].title, "Track 5");
        assert_eq!(queue.upcoming.len(), 4);
        let every = queue
            .history
            .iter()
            .chain(&queue.current)
            .chain(&queue.upcoming);
        for track in every {
            assert_eq!((track.is_stream, track.is_seekable), (false, true));
            assert_eq!(track.position, 0);
        }
        assert!(queue.shuffle_enabled);
        let player = parsed.data.player.as_ref().unwrap();
        assert_eq!(player.session_id.as_deref(), Some("abc"));
        assert!(player.connected);
        assert_eq!(player.position, 500);
        let autoplay = parsed.data.autoplay.as_ref().unwrap();
        assert_eq!((autoplay.max_history, autoplay.smart_shuffle), (50, true));
        assert_eq!(autoplay.fallback_playlist, None);
        let back = to_state(&parsed, 100).unwrap();
        assert_eq!(back.queue.history.len(), 50);
        assert_eq!(back.queue.shuffle_seed, None);
        assert_eq!(back.player.position_anchor_unix_ms, None);
        assert_eq!(back.autoplay.fallback_playlist, None);
    }

    #[test]
    fn only_writes_the_sections_asked_for() {
        let only: Sections = "player, queue".parse().unwrap();
        assert_eq!(only.to_string(), "player,queue");
        assert_eq!(Sections::ALL.to_string(), "player,queue,filters,autoplay");
        assert_eq!(
            "player,bogus".parse::<Sections>(),
            Err(SonoraError::UnknownSection {
                name: "bogus".into()
            })
        );
        assert!("".parse::<Sections>().is_err());
        let file = parse(&fixture("211917732357417771")).unwrap();
        let state = to_state(&file, 50).unwrap();
        let partial = from_state(file.guild_id, file.timestamp, &state, only);
        let text = to_json(&partial);
        let value = read_json(&text).unwrap();
        let keys: Vec<&String> = value["data"].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["player", "queue"]);
        assert_eq!(
            parse(&text),
            Err(SonoraError::Missing {
                path: "data.filters".into()
            })
        );
        assert_eq!(parse_with(&text, only).unwrap(), partial);
        let none = from_state(1, 2, &state, Sections::NONE);
        assert!(to_json(&none).contains("\"data\": {},"));
        assert!(parse_with(&to_json(&none), Sections::NONE).is_ok());
    }

    #[test]
    fn history_beyond_history_max_keeps_the_newest() {
        let file = parse(&fixture("524573950927677227")).unwrap();
        let history = &file.data.queue.as_ref().unwrap().history;
        assert_eq!(history.len(), 50);
        let state = to_state(&file, 10).unwrap();
        assert_eq!(state.queue.history.len(), 10);
        assert_eq!(state.queue.history[0].track.encoded(), history[40].track);
        assert_eq!(state.queue.history[0].id, 1);
        assert_eq!(state.next_entry_id, 10 + 1 + 150 + 1);
        assert!(to_state(&file, 0).unwrap().queue.history.is_empty());
    }

    #[test]
    fn voice_needs_connected_and_a_session_id() {
        let text = fixture("211917732357417771");
        let cases = [
            (json!(true), json!(null)),
            (json!(true), json!("")),
            (json!(false), json!("session_1")),
        ];
        for (connected, session_id) in cases {
            let changed = edit(&text, |v| {
                v["data"]["player"]["connected"] = connected;
                v["data"]["player"]["session_id"] = session_id;
            });
            let state = to_state(&parse(&changed).unwrap(), 50).unwrap();
            assert_eq!(state.player.voice, None);
        }
    }

    #[test]
    fn streams_and_unknown_lengths_have_no_end() {
        let text = fixture("211917732357417771");
        let stream = edit(&text, |v| {
            v["data"]["queue"]["current"]["length"] = json!(0);
            v["data"]["player"]["position"] = json!(99_999_999);
        });
        assert!(parse(&stream).is_ok());
        let flagged = edit(&text, |v| {
            v["data"]["queue"]["current"]["isStream"] = json!(true);
            v["data"]["player"]["position"] = json!(99_999_999);
        });
        let state = to_state(&parse(&flagged).unwrap(), 50).unwrap();
        let current = &state.queue.current.as_ref().unwrap().track;
        assert_eq!(current.fields().is_stream, Some(true));
    }
}

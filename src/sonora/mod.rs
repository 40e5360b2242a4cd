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
//! | track `sourceName` (not in Sonora 1.2.8 files) | `Track::source` | accepted on import when a file has it (string or `null`); not exported (Sonora's schema has no such field) |
//! | track `artworkUrl`, `isrc`, `pluginInfo`, `userData` (not in Sonora 1.2.8 files) | `artwork_url`, `isrc`, `plugin_info`, `user_data` | accepted on import when a file has them (Lavalink v4 names; `pluginInfo` an object, `userData` any JSON value; the two within `USER_DATA_BYTES_MAX` bytes); not exported |
//! | `filters.active_filters` | `filters.active` | |
//! | `filters.filter_config` | `filters.config` ([`FilterConfig`]) | Lavalink v4 payload: `volume`, `equalizer`, `karaoke`, `timescale`, `tremolo`, `vibrato`, `rotation`, `distortion`, `channelMix`, `lowPass` (`channel_mix` / `low_pass` accepted on import), camelCase inner fields |
//! | `autoplay.enabled` / `strategy` | `autoplay.enabled` / `strategy` | |
//! | `autoplay.max_history` / `smart_shuffle` | `max_history` / `smart_shuffle` | Sonora's defaults 50 / `true` ⇔ `None` (absent means the bot's default) |
//! | `autoplay.fallback_playlist` (Sonora 1.2.7) | `autoplay.fallback_playlist` | accepted on import; never exported (Sonora 1.2.8 drops it) |
//!
//! Lossy points of the export, each reproducing what Sonora itself writes: history cut to the
//! last [`SONORA_HISTORY_MAX`] entries; `isStream` / `isSeekable` always `false` / `true`;
//! `fallback_playlist`, `shuffle_seed`, `Track::source`, the track's `artwork_url`, `isrc`,
//! `plugin_info` and `user_data`, the guild's `meta`, the voice channel, endpoint and token,
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

//!
//! # Files
//!
//! | file | holds |
//! | --- | --- |
//! | `mod.rs` | the types of a file ([`SonoraFile`] and its sections), [`Sections`], [`SonoraError`], the mapping to and from a [`State`] ([`to_state`], [`from_state`]) |
//! | `reader.rs` | [`parse`] / [`parse_with`]: the JSON reader (Python's `json.loads`, floats correctly rounded) and the checksum check |
//! | `schema.rs` | the schema and its validation, one parser per section, errors naming JSON paths |
//! | `writer.rs` | the Python-exact JSON writer: [`to_json`], [`checksum`], [`python_json_dumps_sorted`], [`python_float_repr`] |
//! | `tests.rs` | the tests over the real Sonora files in `tests/fixtures/sonora-1.2.8/` |

mod reader;
mod schema;
#[cfg(test)]
mod tests;
mod writer;

use std::fmt;
use std::str::FromStr;

use crate::session::{
    Autoplay, FilterConfig, Filters, LoopMode, Player, QueueEntry, Snowflake, State, Track,
    TrackFields, Voice,
};

pub use reader::{parse, parse_with};
pub use writer::{checksum, python_float_repr, python_json_dumps_sorted, to_json};

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
    /// When Sonora took the snapshot, in Unix seconds (py-sonora 1.2.8 writes `time.time()`, a
    /// float: read floored to whole seconds; exports write an integer).
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
    /// `sourceName`, read when a file has it (Sonora 1.2.8 never writes it, nor any field
    /// below; a bot or a later Sonora may): the Lavalink source name.
    pub source_name: Option<String>,
    /// `artworkUrl`, read when a file has it.
    pub artwork_url: Option<String>,
    /// `isrc`, read when a file has it.
    pub isrc: Option<String>,
    /// `pluginInfo` (a JSON object), read when a file has it.
    pub plugin_info: Option<serde_json::Map<String, serde_json::Value>>,
    /// `userData` (any JSON value), read when a file has it. With `pluginInfo`, at most
    /// [`crate::session::limits::USER_DATA_BYTES_MAX`] bytes of compact JSON.
    pub user_data: Option<serde_json::Value>,
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
        track.source.clone_from(&self.source_name);
        track.artwork_url.clone_from(&self.artwork_url);
        track.isrc.clone_from(&self.isrc);
        track.plugin_info.clone_from(&self.plugin_info);
        track.user_data.clone_from(&self.user_data);
        track.into()
    }

    /// The track as Sonora writes it: `position` 0, `isStream` false and `isSeekable` true
    /// whatever the track is, absent text as `""` (absent `uri` as `null`), absent length as 0,
    /// and none of the fields Sonora's schema lacks (source, artwork URL, ISRC, plugin info,
    /// user data: an export keeps Sonora's schema, so they are left out).
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
            source_name: None,
            artwork_url: None,
            isrc: None,
            plugin_info: None,
            user_data: None,
        }
    }
}

/// `Some(text)` unless it is empty.
fn non_empty(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_owned())
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

/// The Sonora file text of a guild's state, stamped `timestamp` (Unix seconds; callers pass
/// [`crate::clock::now_unix_secs`]): what `reprise state --format sonora` and `reprise export
/// --format sonora` print, and what the Python package's `sonora()` returns, one form for all
/// three. [`from_state`] then [`to_json`]; the clock is the caller's, so this module stays pure.
pub fn file_text(guild_state: &crate::GuildState, timestamp: u64, only: Sections) -> String {
    to_json(&from_state(
        guild_state.guild.0,
        timestamp,
        &guild_state.state,
        only,
    ))
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

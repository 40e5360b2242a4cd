//! [`State`]: one guild's session, the fold of its events.

use serde::{Deserialize, Serialize};

use super::fold::{check_autoplay, check_filters, check_queue_len, check_voice, check_volume};
use super::limits::HISTORY_MAX_DEFAULT;
use super::{EventError, FilterConfig, LoopMode, Snowflake, Track};

/// The autoplay strategy of a fresh session: Sonora's default.
pub const AUTOPLAY_STRATEGY_DEFAULT: &str = "similar_artist";

/// The player volume of a fresh session (Lavalink's default: unchanged loudness).
pub const VOLUME_DEFAULT: u16 = 100;

/// A [`State`] that no sequence of validated events produces (see [`State::check_invariants`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("state invariant broken: {0}")]
pub struct InvariantError(pub String);

/// One guild's folded session state.
///
/// Built only by [`State::new`] and [`crate::session::apply`]. The serde form is the readable
/// JSON that `reprise state` prints (objects `player`, `queue`, `filters`, `autoplay`, then
/// `history_max` and `next_entry_id`; absent optional values are `null`); the bincode form is
/// what snapshots hold, and like [`crate::session::Event`]'s it is positional: field order is
/// part of the snapshot format.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(deny_unknown_fields)]
pub struct State {
    /// The player: volume, pause, position, voice.
    pub player: Player,
    /// The queue: current track, upcoming, history, loop and shuffle.
    pub queue: Queue,
    /// The audio filters.
    pub filters: Filters,
    /// The autoplay settings.
    pub autoplay: Autoplay,
    /// How many entries `queue.history` keeps (a fold parameter, kept across `session_ended`).
    pub history_max: u32,
    /// The id the next enqueued track gets (ids start at 1 and only grow within a session).
    pub next_entry_id: u64,
}

/// The player part of the state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(deny_unknown_fields)]
pub struct Player {
    /// Volume, `0..=1000`; 100 by default.
    pub volume: u16,
    /// Whether playback is paused.
    pub paused: bool,
    /// The last known position in the current track, in milliseconds.
    pub position_ms: u64,
    /// When `position_ms` was reported by Lavalink (Unix milliseconds); `None` after a seek or a
    /// track change, when the position is exact rather than a report to extrapolate from.
    pub position_anchor_unix_ms: Option<u64>,
    /// The voice connection, when connected.
    pub voice: Option<Voice>,
}

/// Voice connection data (what Lavalink needs to join the channel).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(deny_unknown_fields)]
pub struct Voice {
    /// The Discord voice session id.
    pub session_id: String,
    /// The voice channel id, in the JSON form it was given.
    pub channel_id: Snowflake,
    /// The voice server endpoint, if known.
    pub endpoint: Option<String>,
    /// The voice server token, if known.
    pub token: Option<String>,
}

/// The queue part of the state.
#[derive(
    Clone, Debug, Default, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode,
)]
#[serde(deny_unknown_fields)]
pub struct Queue {
    /// The track playing (or paused), if any.
    pub current: Option<QueueEntry>,
    /// The tracks to play next, in order.
    pub upcoming: Vec<QueueEntry>,
    /// The tracks played, oldest first; at most `history_max` of them.
    pub history: Vec<QueueEntry>,
    /// The loop mode (recorded; the bot enacts it with explicit events).
    pub loop_mode: LoopMode,
    /// Whether shuffle is on (recorded; the fold never reorders the queue by itself).
    pub shuffle: bool,
    /// The seed that fixes the shuffled order, if any.
    pub shuffle_seed: Option<u64>,
}

/// A track in the queue, with its stable entry id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(deny_unknown_fields)]
pub struct QueueEntry {
    /// Assigned at enqueue from [`State::next_entry_id`]; unique within a session and kept
    /// while the entry moves through upcoming, current and history.
    pub id: u64,
    /// The track.
    pub track: Track,
}

/// The filter part of the state.
#[derive(
    Clone, Debug, Default, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode,
)]
#[serde(deny_unknown_fields)]
pub struct Filters {
    /// Names of the active filter presets.
    pub active: Vec<String>,
    /// The Lavalink filter configuration.
    pub config: FilterConfig,
}

/// The autoplay part of the state.
///
/// Defaults: disabled, strategy [`AUTOPLAY_STRATEGY_DEFAULT`], and the optional settings absent
/// (absent means "the bot's own default"; Sonora's are `max_history` 50 and `smart_shuffle` true).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(deny_unknown_fields)]
pub struct Autoplay {
    /// Whether autoplay is on.
    pub enabled: bool,
    /// The strategy name.
    pub strategy: String,
    /// The fallback playlist, if any.
    pub fallback_playlist: Option<String>,
    /// How many played tracks autoplay remembers, if set.
    pub max_history: Option<u32>,
    /// Whether autoplay shuffles its picks, if set.
    pub smart_shuffle: Option<bool>,
}

impl Default for Player {
    fn default() -> Self {
        Player {
            volume: VOLUME_DEFAULT,
            paused: false,
            position_ms: 0,
            position_anchor_unix_ms: None,
            voice: None,
        }
    }
}

impl Player {
    /// Whether the player is connected to voice.
    pub fn connected(&self) -> bool {
        self.voice.is_some()
    }
}

impl Default for Autoplay {
    fn default() -> Self {
        Autoplay {
            enabled: false,
            strategy: AUTOPLAY_STRATEGY_DEFAULT.to_owned(),
            fallback_playlist: None,
            max_history: None,
            smart_shuffle: None,
        }
    }
}

impl Default for State {
    /// `State::new(HISTORY_MAX_DEFAULT)`.
    fn default() -> Self {
        State::new(HISTORY_MAX_DEFAULT)
    }
}

impl State {
    /// The empty session: default player (volume 100, not paused, not connected), empty queue,
    /// no filters, default autoplay, entry ids starting at 1. `history_max` is how many played
    /// entries the history keeps.
    pub fn new(history_max: u32) -> State {
        State {
            player: Player::default(),
            queue: Queue::default(),
            filters: Filters::default(),
            autoplay: Autoplay::default(),
            history_max,
            next_entry_id: 1,
        }
    }

    /// Every queue entry (history, current, upcoming) in play order: oldest history first.
    pub fn entries(&self) -> impl Iterator<Item = &QueueEntry> {
        self.queue
            .history
            .iter()
            .chain(self.queue.current.iter())
            .chain(self.queue.upcoming.iter())
    }

    /// Checks the invariants that the fold of validated events keeps, for a state read back from
    /// a snapshot or built by an importer: every value within the bounds [`crate::session::validate`]
    /// enforces on events (volume, tracks, queue length, filters, names), history within
    /// `history_max`, entry ids unique and below `next_entry_id`.
    ///
    /// # Errors
    /// [`InvariantError`] describing the first broken invariant.
    pub fn check_invariants(&self) -> Result<(), InvariantError> {
        self.check_bounds()
            .map_err(|e| InvariantError(e.to_string()))?;
        self.check_ids().map_err(InvariantError)
    }

    /// The event-level bounds, checked on the state's values.
    pub(super) fn check_bounds(&self) -> Result<(), EventError> {
        check_volume(self.player.volume)?;
        if let Some(voice) = &self.player.voice {
            check_voice(
                &voice.session_id,
                &voice.channel_id,
                &voice.endpoint,
                &voice.token,
            )?;
        }
        check_queue_len(self.queue.upcoming.len())?;
        for (name, entries) in [
            ("history", &self.queue.history),
            ("upcoming", &self.queue.upcoming),
        ] {
            for (i, entry) in entries.iter().enumerate() {
                entry.track.validate(&format!("queue.{name}[{i}].track"))?;
            }
        }
        if let Some(entry) = &self.queue.current {
            entry.track.validate("queue.current.track")?;
        }
        check_filters(&self.filters.active, &self.filters.config)?;
        check_autoplay(&self.autoplay.strategy, &self.autoplay.fallback_playlist)
    }

    /// History length and entry ids.
    fn check_ids(&self) -> Result<(), String> {
        let history_len = self.queue.history.len();
        if u64::try_from(history_len).unwrap_or(u64::MAX) > u64::from(self.history_max) {
            return Err(format!(
                "queue.history has {history_len} entries, history_max is {}",
                self.history_max
            ));
        }
        self.check_entry_ids()
    }

    /// Entry ids: unique, below `next_entry_id`, which is at least 1.
    pub(super) fn check_entry_ids(&self) -> Result<(), String> {
        let mut ids: Vec<u64> = self.entries().map(|entry| entry.id).collect();
        ids.sort_unstable();
        if let Some(pair) = ids.windows(2).find(|pair| pair.first() == pair.get(1)) {
            return Err(format!("entry id {:?} appears twice", pair.first()));
        }
        if let Some(&max) = ids.last() {
            if max >= self.next_entry_id {
                return Err(format!(
                    "entry id {max} is not below next_entry_id {}",
                    self.next_entry_id
                ));
            }
        }
        if self.next_entry_id == 0 {
            return Err("next_entry_id is 0 (ids start at 1)".to_owned());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_state_defaults() {
        let state = State::new(7);
        assert_eq!(state.history_max, 7);
        assert_eq!(state.next_entry_id, 1);
        assert_eq!(state.player.volume, 100);
        assert!(!state.player.connected());
        assert!(state.queue.current.is_none());
        assert_eq!(state.queue.loop_mode, LoopMode::None);
        assert!(state.filters.config.is_empty());
        assert!(!state.autoplay.enabled);
        assert_eq!(state.autoplay.strategy, "similar_artist");
        assert_eq!(State::default(), State::new(HISTORY_MAX_DEFAULT));
        assert_eq!(state.check_invariants(), Ok(()));
    }

    #[test]
    fn json_form_is_readable_and_round_trips() {
        let state = State::new(50);
        let json = serde_json::to_string(&state).unwrap();
        assert_eq!(
            json,
            r#"{"player":{"volume":100,"paused":false,"position_ms":0,"position_anchor_unix_ms":null,"voice":null},"queue":{"current":null,"upcoming":[],"history":[],"loop_mode":"none","shuffle":false,"shuffle_seed":null},"filters":{"active":[],"config":{}},"autoplay":{"enabled":false,"strategy":"similar_artist","fallback_playlist":null,"max_history":null,"smart_shuffle":null},"history_max":50,"next_entry_id":1}"#
        );
        let back: State = serde_json::from_str(&json).unwrap();
        assert_eq!(back, state);
    }

    #[test]
    fn invariant_violations_are_found() {
        let entry = QueueEntry {
            id: 1,
            track: Track::new("a", "b"),
        };
        let mut state = State::new(1);
        state.queue.upcoming.push(entry.clone());
        assert!(
            state.check_invariants().is_err(),
            "id 1 not below next_entry_id 1"
        );
        state.next_entry_id = 2;
        assert_eq!(state.check_invariants(), Ok(()));
        state.queue.history.push(entry.clone());
        assert!(state.check_invariants().is_err(), "duplicate id");
        state.queue.history = vec![
            QueueEntry {
                id: 5,
                ..entry.clone()
            },
            QueueEntry { id: 6, ..entry },
        ];
        state.next_entry_id = 7;
        assert!(
            state.check_invariants().is_err(),
            "history over history_max"
        );
        state.history_max = 2;
        assert_eq!(state.check_invariants(), Ok(()));
        state.player.volume = 1001;
        assert!(state.check_invariants().is_err());
    }
}

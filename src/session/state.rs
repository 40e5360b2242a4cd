//! [`State`]: one guild's session, the fold of its events.

use serde::{Deserialize, Serialize};

use super::fold::{
    check_autoplay, check_filters, check_meta, check_queue_len, check_voice, check_volume,
};
use super::limits::HISTORY_MAX_DEFAULT;
use super::queue_columns::{encode_queue, QueueRead};
use super::track::read_bytes;
use super::{EventError, FilterConfig, LoopMode, Snowflake, Track};

/// The autoplay strategy of a fresh session: Sonora's default.
pub const AUTOPLAY_STRATEGY_DEFAULT: &str = "similar_artist";

/// The player volume of a fresh session (Lavalink's default: unchanged loudness).
pub const VOLUME_DEFAULT: u16 = 100;

/// A [`State`] that no sequence of validated events produces (see [`State::check_invariants`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("state invariant broken: {0}")]
pub struct InvariantError(pub String);

/// A guild's `meta`: a JSON object the bot owns (a text channel, a 24/7 flag, a DJ role, ...).
pub type Meta = serde_json::Map<String, serde_json::Value>;

/// One guild's folded session state.
///
/// Built only by [`State::new`] and [`crate::session::apply`]. The serde form is the readable
/// JSON that `reprise state` prints (objects `player`, `queue`, `filters`, `autoplay`, then
/// `history_max`, `next_entry_id`, `meta` and `stale_reports`; absent optional values are
/// `null`; a JSON state without `meta` or `stale_reports`, as written before they existed,
/// reads them as `{}` and 0).
///
/// The bincode form is what snapshots and `state_restored` events hold. It is positional and
/// versioned by its first byte ([`STATE_LAYOUT_MARK`], written by the code since issue 19):
///
/// ```text
/// layout 3:  0xFF  0x03  player queue (column by column, blobs apart: see
///            session/queue_columns.rs) filters autoplay history_max next_entry_id
///            meta (varint length + compact JSON text)  stale_reports (varint)
///            blobs (varint length, then every track's blob or blob rest, in entry order)
/// layout 2:  0xFF  0x02  player queue filters autoplay history_max next_entry_id
///            meta  stale_reports           (queue: the derived encoding, track by track)
/// layout 1:  player queue filters autoplay history_max next_entry_id
/// ```
///
/// Layout 3 (since issue 15) stores the queue column by column and every blob at the very end,
/// so that [`State::encode_split`] can tell a snapshot where the blobs start: the rest of the
/// state, small and compressible, and the blobs, mostly not, are compressed in separate zstd
/// blocks. The code reads all three layouts and writes layout 3.
///
/// Layout 1 (no marker) is what the code before issue 19 wrote; it starts with the player's
/// volume, a varint `u16`, whose first byte is never 0xFF, so the two cannot be confused. It
/// reads back with an empty `meta` and `stale_reports` 0.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
    /// The bot's own data for the guild (a JSON object, at most
    /// [`crate::session::limits::META_BYTES_MAX`] bytes of compact JSON), replaced by
    /// `guild_meta_set`. Kept across `session_ended` (a 24/7 flag or a text channel outlives
    /// a session); replaced by `state_restored` like everything else.
    #[serde(default)]
    pub meta: Meta,
    /// How many `position_reported` / `seeked` events named a queue entry that was no longer
    /// the current one, and so changed nothing else (a late Lavalink `playerUpdate`). Reset by
    /// `session_ended`.
    #[serde(default)]
    pub stale_reports: u64,
}

/// The first byte of the bincode form of a [`State`] since layout 2 (see [`State`]); the
/// byte after it is the layout number.
pub const STATE_LAYOUT_MARK: u8 = 0xFF;

/// The layout [`State`]'s bincode form is written in.
const STATE_LAYOUT: u8 = 3;

/// The layout before the queue went column by column (still read).
const STATE_LAYOUT_ROWS: u8 = 2;

/// The byte length of the compact JSON text of `value`.
pub(super) fn json_len<T: Serialize + ?Sized>(value: &T) -> usize {
    /// Counts bytes without keeping them.
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    match serde_json::to_writer(&mut count, value) {
        Ok(()) => count.0,
        Err(_) => usize::MAX,
    }
}

/// Encodes a JSON object as its compact JSON text (a bincode string).
pub(super) fn encode_meta<E: bincode::enc::Encoder>(
    meta: &Meta,
    encoder: &mut E,
) -> Result<(), bincode::error::EncodeError> {
    use bincode::Encode as _;
    serde_json::to_string(meta)
        .map_err(|e| bincode::error::EncodeError::OtherString(e.to_string()))?
        .encode(encoder)
}

/// Decodes what [`encode_meta`] wrote: a string that must be a JSON object.
pub(super) fn decode_meta<D: bincode::de::Decoder>(
    decoder: &mut D,
) -> Result<Meta, bincode::error::DecodeError> {
    use bincode::Decode as _;
    let text = String::decode(decoder)?;
    serde_json::from_str(&text)
        .map_err(|e| bincode::error::DecodeError::OtherString(format!("invalid meta: {e}")))
}

impl bincode::Encode for State {
    fn encode<E: bincode::enc::Encoder>(
        &self,
        encoder: &mut E,
    ) -> Result<(), bincode::error::EncodeError> {
        use bincode::enc::write::Writer as _;
        let mut blobs = Vec::new();
        self.encode_but_blobs(encoder, &mut blobs)?;
        (blobs.len() as u64).encode(encoder)?;
        encoder.writer().write(&blobs)
    }
}

impl State {
    /// Everything of layout 3 before the blob column, which is appended to `blobs`.
    fn encode_but_blobs<E: bincode::enc::Encoder>(
        &self,
        encoder: &mut E,
        blobs: &mut Vec<u8>,
    ) -> Result<(), bincode::error::EncodeError> {
        use bincode::Encode as _;
        STATE_LAYOUT_MARK.encode(encoder)?;
        STATE_LAYOUT.encode(encoder)?;
        self.player.encode(encoder)?;
        encode_queue(&self.queue, encoder, blobs)?;
        self.filters.encode(encoder)?;
        self.autoplay.encode(encoder)?;
        self.history_max.encode(encoder)?;
        self.next_entry_id.encode(encoder)?;
        encode_meta(&self.meta, encoder)?;
        self.stale_reports.encode(encoder)
    }

    /// The bincode form (exactly what [`bincode::Encode`] writes with `config`) and the offset
    /// where its blob column starts: what comes before is small and compressible, the blobs
    /// mostly are not, and a snapshot compresses the two apart.
    ///
    /// # Errors
    /// The encoder's (a `config` with a size limit the state exceeds).
    pub fn encode_split<C: bincode::config::Config>(
        &self,
        config: C,
    ) -> Result<(Vec<u8>, usize), bincode::error::EncodeError> {
        /// The state without its blob column; the blobs land in the cell.
        struct ButBlobs<'a>(&'a State, std::cell::RefCell<Vec<u8>>);
        impl bincode::Encode for ButBlobs<'_> {
            fn encode<E: bincode::enc::Encoder>(
                &self,
                encoder: &mut E,
            ) -> Result<(), bincode::error::EncodeError> {
                self.0.encode_but_blobs(encoder, &mut self.1.borrow_mut())
            }
        }
        let but = ButBlobs(self, std::cell::RefCell::new(Vec::new()));
        // One pass (`encode_to_vec` would size first, taking every blob apart twice).
        let mut out = Vec::new();
        bincode::encode_into_std_write(&but, &mut out, config)?;
        let blobs = but.1.into_inner();
        bincode::encode_into_std_write(blobs.len() as u64, &mut out, config)?;
        let split = out.len();
        out.extend_from_slice(&blobs);
        Ok((out, split))
    }
}

impl<Context> bincode::Decode<Context> for State {
    fn decode<D: bincode::de::Decoder<Context = Context>>(
        decoder: &mut D,
    ) -> Result<Self, bincode::error::DecodeError> {
        let first = u8::decode(decoder)?;
        let marked = first == STATE_LAYOUT_MARK;
        let mut layout = 1;
        let player = if marked {
            layout = u8::decode(decoder)?;
            if layout != STATE_LAYOUT && layout != STATE_LAYOUT_ROWS {
                return Err(bincode::error::DecodeError::OtherString(format!(
                    "unknown state layout {layout}"
                )));
            }
            Player::decode(decoder)?
        } else {
            // Layout 1: `first` is the first byte of the volume's varint.
            let volume = match first {
                0..=250 => u16::from(first),
                251 => u16::from_le_bytes([u8::decode(decoder)?, u8::decode(decoder)?]),
                _ => {
                    return Err(bincode::error::DecodeError::OtherString(format!(
                        "invalid state: first byte {first}"
                    )))
                }
            };
            Player {
                volume,
                paused: bool::decode(decoder)?,
                position_ms: u64::decode(decoder)?,
                position_anchor_unix_ms: Option::<u64>::decode(decoder)?,
                voice: Option::<Voice>::decode(decoder)?,
            }
        };
        let queue_read = if layout == STATE_LAYOUT {
            Some(QueueRead::decode(decoder)?)
        } else {
            None
        };
        let queue = match queue_read {
            Some(_) => Queue::default(),
            None => Queue::decode(decoder)?,
        };
        let mut state = State {
            player,
            queue,
            filters: Filters::decode(decoder)?,
            autoplay: Autoplay::decode(decoder)?,
            history_max: u32::decode(decoder)?,
            next_entry_id: u64::decode(decoder)?,
            meta: Meta::new(),
            stale_reports: 0,
        };
        if marked {
            state.meta = decode_meta(decoder)?;
            state.stale_reports = u64::decode(decoder)?;
        }
        if let Some(queue_read) = queue_read {
            let blobs_len = u64::decode(decoder)?;
            if blobs_len != queue_read.blobs_len() {
                return Err(bincode::error::DecodeError::OtherString(
                    "invalid state: blob column length disagrees with the tracks".into(),
                ));
            }
            let blobs = read_bytes(decoder, blobs_len)?;
            state.queue = queue_read.finish(&blobs)?;
        }
        Ok(state)
    }
}

bincode::impl_borrow_decode!(State);

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
            meta: Meta::new(),
            stale_reports: 0,
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
        check_autoplay(&self.autoplay.strategy, &self.autoplay.fallback_playlist)?;
        check_meta(&self.meta, "meta")
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

    /// The queue exactly as its derived encoding writes it (`Option` as a `u8` tag, `Vec` as a
    /// varint length), except that each track's Lavalink blob that repeats the track is stored as
    /// its rest (`TrackWithBlobRest`): layout 2's queue; the derived decoding reads both.
    fn encode_queue_rows<E: bincode::enc::Encoder>(
        queue: &Queue,
        encoder: &mut E,
    ) -> Result<(), bincode::error::EncodeError> {
        use bincode::Encode as _;
        let entry = |entry: &QueueEntry, encoder: &mut E| {
            entry.id.encode(encoder)?;
            crate::session::track::TrackWithBlobRest(&entry.track).encode(encoder)
        };
        match &queue.current {
            None => 0u8.encode(encoder)?,
            Some(current) => {
                1u8.encode(encoder)?;
                entry(current, encoder)?;
            }
        }
        for entries in [&queue.upcoming, &queue.history] {
            (entries.len() as u64).encode(encoder)?;
            for e in entries {
                entry(e, encoder)?;
            }
        }
        queue.loop_mode.encode(encoder)?;
        queue.shuffle.encode(encoder)?;
        queue.shuffle_seed.encode(encoder)
    }

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
            r#"{"player":{"volume":100,"paused":false,"position_ms":0,"position_anchor_unix_ms":null,"voice":null},"queue":{"current":null,"upcoming":[],"history":[],"loop_mode":"none","shuffle":false,"shuffle_seed":null},"filters":{"active":[],"config":{}},"autoplay":{"enabled":false,"strategy":"similar_artist","fallback_playlist":null,"max_history":null,"smart_shuffle":null},"history_max":50,"next_entry_id":1,"meta":{},"stale_reports":0}"#
        );
        let back: State = serde_json::from_str(&json).unwrap();
        assert_eq!(back, state);
    }

    /// Forty workload tracks (three in four with a Lavalink blob), ids 1..=40.
    fn forty_entries() -> Vec<QueueEntry> {
        let mut rng = crate::session::Rng::new(5);
        (1..=40)
            .map(|n| QueueEntry {
                id: n,
                track: crate::session::track(&mut rng, n),
            })
            .collect()
    }

    /// Layout 2's queue (what the code of issue 15's first slice wrote) is the derived
    /// encoding when no blob is a Lavalink blob, and has tracks with Lavalink blobs as their
    /// rest otherwise; the derived decoding reads both to the same queue.
    #[test]
    fn layout_2_queues_with_blob_rests_still_decode() {
        let config = bincode::config::standard();
        let entries = forty_entries();
        let raw: Vec<QueueEntry> = entries
            .iter()
            .filter(|e| {
                crate::session::LavalinkBlob::decode(e.track.encoded_bytes().unwrap_or_default())
                    .is_err()
            })
            .cloned()
            .collect();
        assert!(raw.len() >= 5 && raw.len() < entries.len(), "{}", raw.len());
        for (entries, rests) in [(raw, false), (entries, true)] {
            let queue = Queue {
                current: entries.first().cloned(),
                upcoming: entries.get(1..30).unwrap_or_default().to_vec(),
                history: entries.get(30..).unwrap_or_default().to_vec(),
                loop_mode: LoopMode::Queue,
                shuffle: true,
                shuffle_seed: Some(9),
            };
            struct Hand<'a>(&'a Queue);
            impl bincode::Encode for Hand<'_> {
                fn encode<E: bincode::enc::Encoder>(
                    &self,
                    encoder: &mut E,
                ) -> Result<(), bincode::error::EncodeError> {
                    encode_queue_rows(self.0, encoder)
                }
            }
            let hand = bincode::encode_to_vec(Hand(&queue), config).unwrap();
            let derived = bincode::encode_to_vec(&queue, config).unwrap();
            assert_eq!(hand == derived, !rests);
            assert_eq!(hand.len() < derived.len(), rests);
            let (back, used): (Queue, usize) = bincode::decode_from_slice(&hand, config).unwrap();
            assert_eq!((back, used), (queue, hand.len()));
        }
    }

    /// Layout 3 round-trips a queue of every kind of track; what `encode_split` gives is the
    /// encoding, and every byte from its split on is blob; layout 2 of the same state decodes
    /// to the same state; a cut anywhere, or a blob column of another length, is refused.
    #[test]
    fn layout_3_round_trips_and_splits_where_the_blobs_start() {
        let config = bincode::config::standard();
        let entries = forty_entries();
        let mut state = State::new(50);
        state.queue = Queue {
            current: entries.get(3).cloned(),
            upcoming: entries.get(10..).unwrap_or_default().to_vec(),
            history: entries.get(..3).unwrap_or_default().to_vec(),
            loop_mode: LoopMode::Track,
            shuffle: true,
            shuffle_seed: Some(77),
        };
        state.next_entry_id = 41;
        state.stale_reports = 2;
        let bytes = bincode::encode_to_vec(&state, config).unwrap();
        assert_eq!(bytes.get(..2), Some(&[STATE_LAYOUT_MARK, 3][..]));
        let (back, used): (State, usize) = bincode::decode_from_slice(&bytes, config).unwrap();
        assert_eq!((&back, used), (&state, bytes.len()));
        let (split_bytes, split) = state.encode_split(config).unwrap();
        assert!(split_bytes == bytes);
        let blobs_len: usize = entries
            .get(..3)
            .unwrap_or_default()
            .iter()
            .chain(entries.get(3))
            .chain(entries.get(10..).unwrap_or_default())
            .map(|e| {
                crate::session::track::blob_rest(&e.track)
                    .map_or(e.track.encoded_bytes().map_or(0, <[u8]>::len), |r| r.len())
            })
            .sum();
        assert_eq!(bytes.len() - split, blobs_len);
        // The same state in layout 2 (rows) decodes to it.
        struct Rows<'a>(&'a State);
        impl bincode::Encode for Rows<'_> {
            fn encode<E: bincode::enc::Encoder>(
                &self,
                encoder: &mut E,
            ) -> Result<(), bincode::error::EncodeError> {
                let s = self.0;
                (STATE_LAYOUT_MARK, STATE_LAYOUT_ROWS, &s.player).encode(encoder)?;
                encode_queue_rows(&s.queue, encoder)?;
                (&s.filters, &s.autoplay, s.history_max, s.next_entry_id).encode(encoder)?;
                encode_meta(&s.meta, encoder)?;
                s.stale_reports.encode(encoder)
            }
        }
        let rows = bincode::encode_to_vec(Rows(&state), config).unwrap();
        let (back, used): (State, usize) = bincode::decode_from_slice(&rows, config).unwrap();
        assert_eq!((&back, used), (&state, rows.len()));
        assert!(rows.len() > bytes.len());
        for cut in 0..bytes.len() {
            assert!(
                bincode::decode_from_slice::<State, _>(&bytes[..cut], config).is_err(),
                "cut at {cut}"
            );
        }
        // The blob column's length is checked against the tracks' blob lengths.
        let mut longer = bytes[..split].to_vec();
        let at = longer.len() - 3; // a varint of three bytes (blobs_len is 251..=65535)
        assert_eq!(longer[at], 251);
        let len = u16::from_le_bytes([longer[at + 1], longer[at + 2]]) + 1;
        longer[at + 1..].copy_from_slice(&len.to_le_bytes());
        longer.extend_from_slice(&bytes[split..]);
        longer.push(0);
        assert!(bincode::decode_from_slice::<State, _>(&longer, config).is_err());
    }

    #[test]
    fn both_bincode_layouts_decode() {
        let config = bincode::config::standard();
        let mut state = State::new(50);
        for volume in [0, 250, 251, 1000] {
            state.player.volume = volume;
            state.player.position_anchor_unix_ms = Some(7);
            state.next_entry_id = 9;
            let layout1 = bincode::encode_to_vec(
                (
                    &state.player,
                    &state.queue,
                    &state.filters,
                    &state.autoplay,
                    state.history_max,
                    state.next_entry_id,
                ),
                config,
            )
            .unwrap();
            assert_ne!(layout1.first(), Some(&STATE_LAYOUT_MARK));
            let (back, used): (State, usize) =
                bincode::decode_from_slice(&layout1, config).unwrap();
            assert_eq!(used, layout1.len());
            assert_eq!(back, state);
        }
        state.meta.insert("text_channel".to_owned(), "110".into());
        state.meta.insert(
            "nested".to_owned(),
            serde_json::json!({"a": [1, null, 2.5]}),
        );
        state.stale_reports = 4;
        let layout2 = bincode::encode_to_vec(&state, config).unwrap();
        assert_eq!(
            layout2.get(..2),
            Some(&[STATE_LAYOUT_MARK, STATE_LAYOUT][..])
        );
        let (back, used): (State, usize) = bincode::decode_from_slice(&layout2, config).unwrap();
        assert_eq!(used, layout2.len());
        assert_eq!(back, state);
        // An unknown layout, and a meta that is not a JSON object, are refused.
        let mut unknown = layout2.clone();
        unknown[1] = 4;
        assert!(bincode::decode_from_slice::<State, _>(&unknown, config).is_err());
        let mut not_object = State::new(50);
        not_object.meta.clear();
        let mut bytes = bincode::encode_to_vec(&not_object, config).unwrap();
        let at = bytes.len() - 5; // "{}" (varint length 2), stale_reports 0, no blobs
        assert_eq!(&bytes[at..], &[2, b'{', b'}', 0, 0]);
        bytes[at + 1] = b'[';
        bytes[at + 2] = b']';
        assert!(bincode::decode_from_slice::<State, _>(&bytes, config).is_err());
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

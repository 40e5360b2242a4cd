//! A deterministic generator of realistic bot sessions, for the demo, benchmarks, property tests
//! and fuzzers.
//!
//! [`Workload::next_event`] plays a music bot in one guild: Lavalink position reports most of the
//! time (~35% while a track plays), tracks started and ended, single tracks and whole playlists
//! enqueued, queue edits, volume, pause, seeks, filter presets (bass boost, nightcore, karaoke,
//! ...), loop and shuffle modes, autoplay settings, voice connects and, rarely, the end of the
//! session. Every event it returns is valid for the state it was given. [`arbitrary_event`] mixes
//! those with events that are often invalid, to test rejection. Everything is driven by [`Rng`],
//! so the same seed always gives the same events.
//!
//! ```
//! # use reprise::session::{apply, validate, State, Workload};
//! let (mut a, mut b) = (Workload::new(7), Workload::new(7));
//! let mut state = State::new(50);
//! for _ in 0..100 {
//!     let event = a.next_event(&state);
//!     assert_eq!(b.next_event(&state), event);
//!     assert!(validate(&state, &event).is_ok());
//!     apply(&mut state, &event);
//! }
//! ```

use super::limits::{
    EQUALIZER_BAND_COUNT, FILTER_NAMES_MAX, META_BYTES_MAX, QUEUE_LEN_MAX, TEXT_LEN_MAX,
    USER_DATA_BYTES_MAX,
};
use super::{
    Distortion, EndReason, EqualizerBand, Event, FilterConfig, Karaoke, LoopMode, LowPass,
    QueueEntry, Rotation, Snowflake, State, Timescale, Track, TrackFields, Tremolo, Vibrato,
};

mod bot_data;
mod lavalink;

use bot_data::meta;
use lavalink::realistic_blob;
pub use lavalink::{lavalink_blob_of, lavalink_encoded, STREAM_LENGTH_MS};

/// A small deterministic pseudo-random generator (SplitMix64): fast, seedable with any `u64`,
/// and the same on every platform. Not for cryptography.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator whose whole output is fixed by `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.state)
    }

    /// A number in `0..n` (0 when `n` is 0), by multiply-and-shift (bias below 2^-32 for the
    /// ranges used here).
    pub fn below(&mut self, n: u64) -> u64 {
        let wide = u128::from(self.next_u64()) * u128::from(n);
        u64::try_from(wide >> 64).unwrap_or(0)
    }

    /// A number in `low..=high` (`low` when `high < low`).
    pub fn range(&mut self, low: u64, high: u64) -> u64 {
        low.saturating_add(self.below(high.saturating_sub(low).saturating_add(1)))
    }

    /// True with probability `p_per_mille / 1000`.
    pub fn chance(&mut self, p_per_mille: u32) -> bool {
        self.below(1000) < u64::from(p_per_mille)
    }

    /// An index in `0..len` (0 when `len` is 0).
    fn index(&mut self, len: usize) -> usize {
        usize::try_from(self.below(u64::try_from(len).unwrap_or(u64::MAX))).unwrap_or(0)
    }

    /// One of `items` (the default value if `items` is empty).
    fn pick<T: Copy + Default>(&mut self, items: &[T]) -> T {
        items
            .get(self.index(items.len()))
            .copied()
            .unwrap_or_default()
    }
}

/// SplitMix64's output function: a bijection on `u64` that scrambles every bit.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A simulated bot playing in one guild; see the module docs.
#[derive(Clone, Debug)]
pub struct Workload {
    rng: Rng,
    /// How many tracks were made so far: the serial number of the next one.
    tracks_made: u64,
    /// The simulated wall clock, in Unix milliseconds.
    now_unix_ms: u64,
}

/// Words of the generated titles (as in the Sonora fixtures: accents, CJK, emoji, quotes).
const TITLE_WORDS: [&str; 16] = [
    "Never",
    "Gonna",
    "Give",
    "You",
    "Up",
    "Time",
    "One",
    "More",
    "Live",
    "Remix",
    "Résumé",
    "Ünïcödé",
    "夜に駆ける",
    "Emoji 🎵",
    "\"Quoted\"",
    "Noche ñ",
];

/// Generated authors.
const AUTHORS: [&str; 12] = [
    "Rick Astley",
    "Daft Punk",
    "Björk",
    "Sigur Rós",
    "Måneskin",
    "蔡依林",
    "Ado",
    "Beyoncé",
    "AC/DC",
    "Tame Impala",
    "YOASOBI",
    "Motörhead",
];

/// Titles of generated live streams.
const STREAM_TITLES: [&str; 4] = [
    "lofi hip hop radio 📚 beats to relax/study to",
    "24/7 Synthwave Radio 🌌",
    "Jazz Café ☕ Live",
    "深夜ラジオ Live",
];

/// Autoplay strategies (Sonora's).
const STRATEGIES: [&str; 4] = ["similar_artist", "similar_genre", "popular", "recommended"];

/// Discord voice regions, for endpoints.
const REGIONS: [&str; 5] = ["us-east", "rotterdam", "japan", "brazil", "singapore"];

/// Filter presets a bot offers, by the name it puts in `active`.
const PRESETS: [&str; 9] = [
    "bassboost",
    "nightcore",
    "vaporwave",
    "karaoke",
    "8d",
    "tremolo",
    "vibrato",
    "soft",
    "distortion",
];

/// What the simulated bot does next.
#[derive(Clone, Copy)]
enum Action {
    Report,
    Start,
    End,
    Enqueue,
    Playlist,
    Remove,
    Move,
    Clear,
    Volume,
    Pause,
    Seek,
    Filters,
    FiltersClear,
    Loop,
    Shuffle,
    Autoplay,
    Connect,
    Disconnect,
    SessionEnd,
}

impl Workload {
    /// A bot whose whole behaviour is fixed by `seed`.
    pub fn new(seed: u64) -> Workload {
        let mut rng = Rng::new(seed);
        // October 2025, plus up to a day, so guilds do not share a clock.
        let now_unix_ms = 1_760_000_000_000 + rng.below(86_400_000);
        Workload {
            rng,
            tracks_made: 0,
            now_unix_ms,
        }
    }

    /// The first `n` events of the bot `seed`, each valid for the state the ones before it
    /// fold to (from an empty state with the default history length).
    pub fn events(seed: u64, n: usize) -> Vec<Event> {
        let mut bot = Workload::new(seed);
        let mut state = State::new(crate::session::HISTORY_MAX_DEFAULT);
        (0..n)
            .map(|_| {
                let event = bot.next_event(&state);
                crate::session::apply(&mut state, &event);
                event
            })
            .collect()
    }

    /// The bot's next event, valid for `state` (it always passes [`crate::session::validate`]).
    pub fn next_event(&mut self, state: &State) -> Event {
        let action = self.choose(state);
        // Time passes between events: a Lavalink report comes every 5 s, commands in between.
        self.now_unix_ms += match action {
            Action::Report => 5_000,
            _ => self.rng.range(200, 3_000),
        };
        self.make(action, state)
    }

    /// Picks an action by weights that depend on the state; impossible actions weigh 0.
    fn choose(&mut self, state: &State) -> Action {
        let queue = &state.queue;
        let len = queue.upcoming.len();
        let playing = queue.current.is_some();
        let connected = state.player.connected();
        let seekable = queue
            .current
            .as_ref()
            .is_some_and(|e| e.track.is_seekable() && !e.track.is_stream());
        // Room for a playlist of up to 200 tracks, in the queue and in the id space.
        let room = len + 200 <= QUEUE_LEN_MAX && state.next_entry_id.checked_add(200).is_some();
        let paused = state.player.paused;
        let filtered = !state.filters.config.is_empty() || !state.filters.active.is_empty();
        // Relative weights, tuned so that position reports are ~35% of a long session, a
        // queue rarely passes a few hundred entries, and a session ends every ~1000 events.
        let weights: [(Action, u64); 19] = [
            (Action::Report, if playing { 440 } else { 30 }),
            (
                Action::Start,
                match (len > 0, playing) {
                    (false, _) => 0,
                    (true, false) => 240,
                    (true, true) => 24,
                },
            ),
            (Action::End, if playing { 90 } else { 0 }),
            (
                Action::Enqueue,
                match (room, len) {
                    (false, _) => 0,
                    (true, 0..50) => 140,
                    (true, 50..1000) => 60,
                    (true, _) => 8,
                },
            ),
            (Action::Playlist, if room && len < 500 { 12 } else { 0 }),
            (Action::Remove, if len > 0 { 40 } else { 0 }),
            (Action::Move, if len > 1 { 30 } else { 0 }),
            (
                Action::Clear,
                match len {
                    0 => 0,
                    1..1000 => 8,
                    _ => 60,
                },
            ),
            (Action::Volume, 40),
            (Action::Pause, if paused { 100 } else { 20 }),
            (Action::Seek, if seekable { 40 } else { 0 }),
            (Action::Filters, 24),
            (Action::FiltersClear, if filtered { 16 } else { 0 }),
            (Action::Loop, 16),
            (Action::Shuffle, 12),
            (Action::Autoplay, 10),
            (Action::Connect, if connected { 4 } else { 300 }),
            (Action::Disconnect, if connected { 6 } else { 0 }),
            (Action::SessionEnd, 1),
        ];
        let total: u64 = weights.iter().map(|(_, w)| w).sum();
        let mut roll = self.rng.below(total);
        for (action, weight) in weights {
            if roll < weight {
                return action;
            }
            roll -= weight;
        }
        Action::Volume
    }

    /// Builds the event for `action`, which [`Workload::choose`] found possible in `state`.
    fn make(&mut self, action: Action, state: &State) -> Event {
        let rng = &mut self.rng;
        let len = state.queue.upcoming.len();
        let len_u32 = u32::try_from(len).unwrap_or(u32::MAX);
        match action {
            Action::Report if rng.chance(10) => Event::GuildMetaSet { meta: meta(rng) },
            Action::Report => {
                let current = state.queue.current.as_ref().map(|e| &e.track);
                // Most reports name their entry; a few arrive late, for the previous one.
                let entry_id = match state.queue.history.last() {
                    Some(previous) if rng.chance(30) => Some(previous.id),
                    _ => state
                        .queue
                        .current
                        .as_ref()
                        .map(|e| e.id)
                        .filter(|_| !rng.chance(300)),
                };
                let mut position_ms = state.player.position_ms;
                if !state.player.paused && current.is_some() {
                    position_ms = position_ms.saturating_add(rng.range(4_950, 5_050));
                }
                if let Some(track) = current {
                    if track.length_ms() > 0 && !track.is_stream() {
                        position_ms = position_ms.min(track.length_ms());
                    }
                }
                Event::PositionReported {
                    position_ms,
                    at_unix_ms: self.now_unix_ms,
                    entry_id,
                }
            }
            Action::Start => Event::TrackStarted,
            Action::End => {
                let roll = rng.below(100);
                let reason = match roll {
                    0..75 => EndReason::Finished,
                    75..90 => EndReason::Skipped,
                    90..95 => EndReason::Stopped,
                    _ => EndReason::LoadFailed,
                };
                Event::TrackEnded { reason }
            }
            Action::Enqueue => {
                let count = rng.range(1, 5);
                let index = match rng.below(10) {
                    0 => Some(0),
                    1 => Some(u32::try_from(rng.below(u64::from(len_u32) + 1)).unwrap_or(0)),
                    _ => None,
                };
                let tracks = self.tracks(count);
                Event::TracksEnqueued { tracks, index }
            }
            Action::Playlist => {
                let count = rng.range(20, 200);
                let tracks = self.tracks(count);
                Event::TracksEnqueued {
                    tracks,
                    index: None,
                }
            }
            Action::Remove => Event::TrackRemoved {
                index: below_u32(rng, len_u32),
            },
            Action::Move => {
                // A real move: `to` differs from `from` (`choose` made sure len > 1).
                let from = below_u32(rng, len_u32);
                let shift = 1 + below_u32(rng, len_u32.saturating_sub(1));
                let to =
                    u32::try_from((u64::from(from) + u64::from(shift)) % u64::from(len_u32.max(1)))
                        .unwrap_or(0);
                Event::TrackMoved { from, to }
            }
            Action::Clear => Event::QueueCleared,
            Action::Volume => {
                let volume = if rng.chance(900) {
                    rng.pick(&[25, 50, 75, 80, 100, 100, 120, 150, 200])
                } else {
                    u16::try_from(rng.range(0, 1000)).unwrap_or(100)
                };
                Event::VolumeSet { volume }
            }
            Action::Pause => Event::PausedSet {
                paused: !state.player.paused,
            },
            Action::Seek => {
                let length = state
                    .queue
                    .current
                    .as_ref()
                    .map_or(0, |e| e.track.length_ms());
                let position_ms = if length > 0 {
                    rng.range(0, length)
                } else {
                    rng.below(600_000)
                };
                Event::Seeked {
                    position_ms,
                    entry_id: None,
                }
            }
            Action::Filters => filters_event(rng),
            Action::FiltersClear => Event::FiltersCleared,
            Action::Loop => Event::LoopModeSet {
                mode: rng.pick(&[
                    LoopMode::None,
                    LoopMode::Track,
                    LoopMode::Queue,
                    LoopMode::Autoplay,
                ]),
            },
            Action::Shuffle => {
                let enabled = !state.queue.shuffle;
                let seed = (enabled && rng.chance(700)).then(|| rng.next_u64());
                Event::ShuffleSet { enabled, seed }
            }
            Action::Autoplay => Event::AutoplaySet {
                enabled: rng.chance(700),
                strategy: rng.pick(&STRATEGIES).to_owned(),
                fallback_playlist: rng.chance(300).then(|| "global_fallback".to_owned()),
                max_history: rng.chance(800).then_some(50),
                smart_shuffle: rng.chance(800).then(|| rng.chance(800)),
            },
            Action::Connect => voice_event(rng),
            Action::Disconnect => Event::VoiceDisconnected,
            Action::SessionEnd => Event::SessionEnded,
        }
    }

    /// `count` fresh tracks.
    fn tracks(&mut self, count: u64) -> Vec<Track> {
        (0..count)
            .map(|_| {
                self.tracks_made += 1;
                track(&mut self.rng, self.tracks_made)
            })
            .collect()
    }
}

/// A number in `0..n` as `u32` (0 when `n` is 0).
fn below_u32(rng: &mut Rng, n: u32) -> u32 {
    u32::try_from(rng.below(u64::from(n))).unwrap_or(0)
}

/// A realistic track. `n` is a serial number: it fixes the 11-character identifier (distinct
/// for distinct `n`, like a YouTube video id); everything else comes from `rng`.
///
/// About 5% are live streams (length 0, `is_stream`, not seekable), about 3% have an unknown
/// length, titles and authors include accents, CJK, emoji and quotes, `encoded` is the Lavalink
/// blob of the track's fields for three tracks in four (see `realistic_blob`) and a random
/// base64 blob of 100–300 characters for the rest, and a few optional fields are left out.
pub fn track(rng: &mut Rng, n: u64) -> Track {
    let identifier = base64(&mix(n).to_be_bytes(), URL_SAFE)
        .chars()
        .take(11)
        .collect::<String>();
    let blob: Vec<u8> = (0..rng.range(75, 225))
        .map(|_| (rng.next_u64() >> 56) as u8)
        .collect();
    let encoded = base64(&blob, STANDARD);
    let author = rng.pick(&AUTHORS).to_owned();
    if rng.chance(50) {
        let title = rng.pick(&STREAM_TITLES).to_owned();
        let twitch = rng.chance(500);
        let (uri, source) = if twitch {
            (format!("https://www.twitch.tv/live_{identifier}"), "twitch")
        } else {
            (
                format!("https://www.youtube.com/watch?v={identifier}"),
                "youtube",
            )
        };
        let mut fields = TrackFields {
            encoded,
            title,
            author: Some(author),
            uri: Some(uri),
            identifier: Some(identifier),
            length_ms: Some(0),
            is_stream: Some(true),
            is_seekable: Some(false),
            source: Some(source.to_owned()),
            ..TrackFields::new("", "")
        };
        realistic_blob(n, &mut fields);
        return fields.into();
    }
    let words = rng.range(1, 5);
    let title = (0..words)
        .map(|_| rng.pick(&TITLE_WORDS))
        .collect::<Vec<_>>()
        .join(" ");
    let length_ms = if rng.chance(30) {
        0
    } else if rng.chance(50) {
        rng.range(600_000, 3_600_000)
    } else {
        rng.range(30_000, 600_000)
    };
    let (uri, source) = match rng.below(20) {
        0..2 => (
            format!(
                "https://soundcloud.com/artist-{}/{identifier}",
                rng.below(1000)
            ),
            Some("soundcloud".to_owned()),
        ),
        2 => (
            format!("https://www.youtube.com/watch?v={identifier}"),
            None,
        ),
        _ => (
            format!("https://www.youtube.com/watch?v={identifier}"),
            Some("youtube".to_owned()),
        ),
    };
    let flags = !rng.chance(100);
    let mut fields = TrackFields {
        encoded,
        title,
        author: Some(author),
        uri: Some(uri),
        identifier: Some(identifier.clone()),
        length_ms: Some(length_ms),
        is_stream: flags.then_some(false),
        is_seekable: flags.then_some(true),
        source,
        ..TrackFields::new("", "")
    };
    bot_data::track_data(rng, &identifier, &mut fields);
    realistic_blob(n, &mut fields);
    fields.into()
}

/// The standard base64 alphabet.
const STANDARD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
/// The URL-safe base64 alphabet (YouTube ids).
const URL_SAFE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Base64 of `bytes` with `=` padding.
fn base64(bytes: &[u8], alphabet: &[u8; 64]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [0, 1, 2].map(|i| chunk.get(i).copied().unwrap_or(0));
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for (k, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if k <= chunk.len() {
                let digit = alphabet.get(((n >> shift) & 63) as usize);
                out.push(char::from(digit.copied().unwrap_or(b'A')));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A `voice_connected` with Discord-shaped data.
fn voice_event(rng: &mut Rng) -> Event {
    let hex = |rng: &mut Rng, digits: usize| -> String {
        (0..digits)
            .map(|_| char::from_digit(rng.below(16) as u32, 16).unwrap_or('0'))
            .collect()
    };
    let session_id = hex(rng, 32);
    let id = rng.range(100_000_000_000_000_000, 1_400_000_000_000_000_000);
    let channel_id = if rng.chance(500) {
        Snowflake::Number(id)
    } else {
        Snowflake::Text(id.to_string())
    };
    let endpoint = rng.chance(900).then(|| {
        let region = rng.pick(&REGIONS);
        format!("{region}{}.discord.media:443", rng.range(1000, 9999))
    });
    let token = rng.chance(900).then(|| hex(rng, 16));
    Event::VoiceConnected {
        session_id,
        channel_id,
        endpoint,
        token,
    }
}

/// A `filters_set` of one or two presets (sometimes with no `active` names, as Sonora writes).
fn filters_event(rng: &mut Rng) -> Event {
    let first = rng.pick(&PRESETS);
    let mut names = vec![first];
    if rng.chance(300) {
        let second = rng.pick(&PRESETS);
        if second != first {
            names.push(second);
        }
    }
    let mut config = FilterConfig::default();
    for name in &names {
        preset(rng, name, &mut config);
    }
    let active = if rng.chance(150) {
        Vec::new()
    } else {
        names.iter().map(|name| (*name).to_owned()).collect()
    };
    Event::FiltersSet {
        active,
        config: Box::new(config),
    }
}

/// Adds the filter preset `name` to `config`.
fn preset(rng: &mut Rng, name: &str, config: &mut FilterConfig) {
    match name {
        "bassboost" => {
            let (low, high) = rng.pick(&[(0.2, 0.15), (0.6, 0.4), (0.35, 0.25)]);
            let bands = rng.range(2, 6);
            let equalizer = (0..bands)
                .map(|band| EqualizerBand {
                    band: u8::try_from(band).unwrap_or(0),
                    gain: if band == 0 { low } else { high },
                })
                .collect();
            config.equalizer = Some(equalizer);
        }
        "nightcore" => {
            config.timescale = Some(Timescale {
                speed: Some(rng.pick(&[1.2, 1.25, 1.3])),
                pitch: Some(rng.pick(&[1.1, 1.2, 1.3])),
                rate: Some(1.0),
            });
        }
        "vaporwave" => {
            config.timescale = Some(Timescale {
                speed: Some(0.8),
                pitch: Some(0.8),
                rate: None,
            });
        }
        "karaoke" => {
            config.karaoke = Some(Karaoke {
                level: Some(1.0),
                mono_level: Some(1.0),
                filter_band: Some(220.0),
                filter_width: Some(100.0),
            });
        }
        "8d" => {
            config.rotation = Some(Rotation {
                rotation_hz: Some(0.2),
            });
        }
        "tremolo" => {
            config.tremolo = Some(Tremolo {
                frequency: Some(rng.pick(&[2.0, 4.0, 10.0])),
                depth: Some(0.5),
            });
        }
        "vibrato" => {
            config.vibrato = Some(Vibrato {
                frequency: Some(rng.pick(&[2.0, 4.0, 14.0])),
                depth: Some(0.5),
            });
        }
        "soft" => {
            config.low_pass = Some(LowPass {
                smoothing: Some(20.0),
            });
            config.volume = Some(rng.pick(&[0.8, 1.0, 1.2]));
        }
        _ => {
            config.distortion = Some(Distortion {
                sin_offset: Some(0.0),
                sin_scale: Some(1.0),
                cos_offset: Some(0.0),
                cos_scale: Some(1.0),
                tan_offset: Some(0.0),
                tan_scale: Some(1.0),
                offset: Some(0.0),
                scale: Some(1.0),
            });
        }
    }
}

/// An event for `state` that is valid about half of the time and otherwise probes a rejection
/// (out-of-range indexes, volume above 1000, NaN or infinite gains, equalizer band 15, empty or
/// oversized strings, seeks past the end, ...), or an edge case that is valid (extreme numbers).
/// Meant for testing [`crate::session::validate`] and the totality of [`crate::session::apply`].
pub fn arbitrary_event(rng: &mut Rng, state: &State) -> Event {
    if rng.chance(500) {
        let mut bot = Workload {
            rng: Rng::new(rng.next_u64()),
            tracks_made: rng.below(1 << 40),
            now_unix_ms: rng.next_u64() >> 20,
        };
        return bot.next_event(state);
    }
    let len = u32::try_from(state.queue.upcoming.len()).unwrap_or(u32::MAX);
    let beyond = len.saturating_add(below_u32(rng, 3));
    let serial = rng.next_u64();
    let nan_or_inf = rng.pick(&[f64::NAN, f64::INFINITY, f64::NEG_INFINITY]);
    let with_config = |config: FilterConfig| Event::FiltersSet {
        active: vec!["custom".to_owned()],
        config: Box::new(config),
    };
    match rng.below(30) {
        0 => Event::VolumeSet {
            volume: u16::try_from(rng.range(1001, u64::from(u16::MAX))).unwrap_or(u16::MAX),
        },
        1 => Event::VolumeSet {
            volume: u16::try_from(rng.below(1 << 16)).unwrap_or(0),
        },
        2 => Event::TrackRemoved {
            index: rng.pick(&[beyond, u32::MAX]),
        },
        3 => Event::TrackMoved {
            from: beyond,
            to: below_u32(rng, len.saturating_add(1)),
        },
        4 => Event::TrackMoved {
            from: below_u32(rng, len.saturating_add(1)),
            to: rng.pick(&[beyond, u32::MAX]),
        },
        5 => Event::TracksEnqueued {
            tracks: vec![track(rng, serial)],
            index: Some(len.saturating_add(1).saturating_add(below_u32(rng, 5))),
        },
        6 => Event::TracksEnqueued {
            tracks: Vec::new(),
            index: None,
        },
        7 => {
            let mut bad = track(rng, serial).fields();
            match rng.below(5) {
                0 => bad.title.clear(),
                1 => bad.encoded.clear(),
                2 => bad.title = "x".repeat(TEXT_LEN_MAX + 1),
                3 => bad.author = Some("é".repeat(TEXT_LEN_MAX / 2 + 1)),
                _ => bad.user_data = Some("u".repeat(USER_DATA_BYTES_MAX).into()),
            }
            Event::TracksEnqueued {
                tracks: vec![track(rng, serial ^ 1), bad.into()],
                index: None,
            }
        }
        8 => Event::TrackStarted,
        9 => Event::TrackEnded {
            reason: if rng.chance(500) {
                EndReason::Finished
            } else {
                EndReason::Stopped
            },
        },
        10 => {
            let length = state
                .queue
                .current
                .as_ref()
                .map_or(0, |e| e.track.length_ms());
            Event::Seeked {
                position_ms: rng.pick(&[length.saturating_add(1), u64::MAX]),
                entry_id: None,
            }
        }
        11 => with_config(FilterConfig {
            equalizer: Some(vec![EqualizerBand {
                band: 0,
                gain: nan_or_inf,
            }]),
            ..FilterConfig::default()
        }),
        12 => with_config(FilterConfig {
            equalizer: Some(vec![EqualizerBand {
                band: u8::try_from(rng.range(15, 255)).unwrap_or(15),
                gain: 0.1,
            }]),
            ..FilterConfig::default()
        }),
        13 => with_config(FilterConfig {
            equalizer: Some(vec![
                EqualizerBand { band: 3, gain: 0.1 },
                EqualizerBand { band: 3, gain: 0.2 },
            ]),
            ..FilterConfig::default()
        }),
        14 => with_config(FilterConfig {
            equalizer: Some(
                (0..=EQUALIZER_BAND_COUNT)
                    .map(|band| EqualizerBand {
                        band: u8::try_from(band % EQUALIZER_BAND_COUNT).unwrap_or(0),
                        gain: 0.0,
                    })
                    .collect(),
            ),
            ..FilterConfig::default()
        }),
        15 => with_config(FilterConfig {
            timescale: Some(Timescale {
                speed: Some(rng.pick(&[0.0, -1.0, f64::NAN])),
                pitch: None,
                rate: None,
            }),
            ..FilterConfig::default()
        }),
        16 => with_config(FilterConfig {
            vibrato: Some(Vibrato {
                frequency: Some(rng.pick(&[14.5, 0.0])),
                depth: Some(rng.pick(&[0.0, 0.5, 1.5])),
            }),
            volume: Some(rng.pick(&[5.5, -0.1, 1.0])),
            ..FilterConfig::default()
        }),
        17 => Event::FiltersSet {
            active: match rng.below(3) {
                0 => vec!["bassboost".to_owned(), "bassboost".to_owned()],
                1 => vec![String::new()],
                _ => (0..=FILTER_NAMES_MAX).map(|i| format!("f{i}")).collect(),
            },
            config: Box::default(),
        },
        18 => Event::VoiceConnected {
            session_id: rng.pick(&["", "abc"]).to_owned(),
            channel_id: Snowflake::Text(
                rng.pick(&["", "general", "-1", "123456789012345678901"])
                    .to_owned(),
            ),
            endpoint: None,
            token: None,
        },
        19 => Event::AutoplaySet {
            enabled: true,
            strategy: String::new(),
            fallback_playlist: None,
            max_history: Some(u32::MAX),
            smart_shuffle: None,
        },
        20 => Event::PositionReported {
            position_ms: rng.pick(&[0, u64::MAX]),
            at_unix_ms: rng.pick(&[0, u64::MAX]),
            entry_id: None,
        },
        21 => Event::ShuffleSet {
            enabled: rng.chance(500),
            seed: Some(rng.next_u64()),
        },
        22 => Event::SessionEnded,
        23 => {
            // A restore of the state as it is, with another volume (valid), or, half of the
            // time, of a state the fold refuses.
            let mut restored = state.clone();
            restored.player.volume = u16::try_from(rng.below(1001)).unwrap_or(0);
            let mut label = Some("restore".to_owned());
            if rng.chance(500) {
                match rng.below(4) {
                    0 => restored.player.volume = 1001,
                    1 => restored.next_entry_id = 0,
                    2 => label = Some(String::new()),
                    _ => {
                        restored.history_max = u32::MAX;
                        let entry = QueueEntry {
                            id: restored.next_entry_id,
                            track: track(rng, serial),
                        };
                        restored.next_entry_id = restored.next_entry_id.saturating_add(1);
                        let over = usize::try_from(state.history_max).unwrap_or(usize::MAX);
                        restored.queue.history = vec![entry; over.saturating_add(1).min(64)];
                    }
                }
            }
            Event::StateRestored {
                state: Box::new(restored),
                from_seq: Some(rng.next_u64() >> 2),
                label,
            }
        }
        24 => Event::StateRestored {
            state: Box::new(State::new(rng.pick(&[0, 1, 50, u32::MAX]))),
            from_seq: None,
            label: None,
        },
        26 => Event::GuildMetaSet { meta: meta(rng) },
        27 => {
            let mut big = meta(rng);
            big.insert("blob".to_owned(), "x".repeat(META_BYTES_MAX).into());
            Event::GuildMetaSet { meta: big }
        }
        28 => Event::PositionReported {
            position_ms: rng.below(600_000),
            at_unix_ms: rng.next_u64() >> 20,
            entry_id: Some(rng.pick(&[
                state.next_entry_id.saturating_sub(1),
                state.next_entry_id.saturating_sub(2),
                u64::MAX,
            ])),
        },
        29 => Event::Seeked {
            position_ms: rng.pick(&[0, u64::MAX]),
            entry_id: Some(rng.pick(&[0, state.next_entry_id, u64::MAX])),
        },
        _ => Event::TracksEnqueued {
            tracks: vec![track(rng, serial)],
            index: Some(u32::MAX),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{apply, apply_checked, validate, QueueEntry};
    use proptest::prelude::{any, prop_assert_eq, proptest};

    /// Folds `count` workload events from the empty state, checking each on the way.
    fn run(seed: u64, count: usize, history_max: u32) -> (State, Vec<Event>) {
        let mut workload = Workload::new(seed);
        let mut state = State::new(history_max);
        let mut events = Vec::with_capacity(count);
        for _ in 0..count {
            let event = workload.next_event(&state);
            if let Err(error) = validate(&state, &event) {
                panic!("seed {seed}: workload made an invalid event {event:?}: {error}");
            }
            let before_next = state.next_entry_id;
            let before_len = state.queue.upcoming.len();
            apply(&mut state, &event);
            check(&state);
            if let Event::TracksEnqueued { tracks, index } = &event {
                // The new entries got the next ids, in order, where they were inserted.
                let at = index.map_or(before_len, |i| i as usize);
                let ids: Vec<u64> = state.queue.upcoming[at..at + tracks.len()]
                    .iter()
                    .map(|e: &QueueEntry| e.id)
                    .collect();
                let expected: Vec<u64> = (before_next..).take(tracks.len()).collect();
                assert_eq!(ids, expected);
                assert_eq!(state.next_entry_id, before_next + tracks.len() as u64);
            }
            events.push(event);
        }
        (state, events)
    }

    /// Invariants of every state the fold of valid events reaches.
    fn check(state: &State) {
        assert!(state.queue.history.len() <= state.history_max as usize);
        if let Err(error) = state.check_invariants() {
            panic!("{error}");
        }
    }

    #[test]
    fn same_seed_same_events() {
        let (state_a, events_a) = run(42, 500, 50);
        let (state_b, events_b) = run(42, 500, 50);
        assert_eq!(events_a, events_b);
        assert_eq!(state_a, state_b);
        let (_, events_c) = run(43, 500, 50);
        assert_ne!(events_a, events_c);
    }

    #[test]
    fn rng_is_fixed_and_bounded() {
        let mut rng = Rng::new(0);
        // SplitMix64's published first outputs for seed 0.
        assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(rng.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        for n in [1, 2, 3, 10, 1000, u64::MAX] {
            for _ in 0..100 {
                assert!(rng.below(n) < n);
            }
        }
        assert_eq!(rng.below(0), 0);
        assert_eq!(rng.range(5, 5), 5);
        assert_eq!(rng.range(6, 5), 6);
        assert!(!rng.chance(0));
        assert!(rng.chance(1000));
    }

    #[test]
    fn base64_matches_known_values() {
        assert_eq!(base64(b"", STANDARD), "");
        assert_eq!(base64(b"f", STANDARD), "Zg==");
        assert_eq!(base64(b"fo", STANDARD), "Zm8=");
        assert_eq!(base64(b"foo", STANDARD), "Zm9v");
        assert_eq!(base64(b"foobar", STANDARD), "Zm9vYmFy");
        assert_eq!(base64(&[0xfb, 0xff], URL_SAFE), "-_8=");
    }

    #[test]
    fn tracks_look_real() {
        let mut rng = Rng::new(9);
        let tracks: Vec<Track> = (1..=2000).map(|n| track(&mut rng, n)).collect();
        let mut ids: Vec<&str> = tracks.iter().map(|t| t.identifier()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), tracks.len(), "identifiers are distinct");
        for t in &tracks {
            assert_eq!(t.validate("t"), Ok(()));
            assert!(
                (100..=300).contains(&t.encoded_len()),
                "{}",
                t.encoded_len()
            );
            assert_eq!(t.identifier().len(), 11);
        }
        assert!(tracks
            .iter()
            .any(|t| t.is_stream() && t.length_ms() == 0 && !t.is_seekable()));
        assert!(tracks.iter().any(|t| !t.title().is_ascii()));
        assert!(
            tracks
                .iter()
                .any(|t| t.title().chars().any(|c| c > '\u{FFFF}')),
            "emoji"
        );
        assert!(tracks.iter().any(|t| t.fields().is_stream.is_none()));
        assert!(tracks.iter().any(|t| t.source().is_none()));
    }

    #[test]
    fn long_session_is_realistic() {
        let (_, events) = run(2024, 5000, 50);
        let count = |kind: &str| events.iter().filter(|e| e.kind() == kind).count();
        let reports = count("position_reported");
        assert!((1400..=2100).contains(&reports), "{reports} reports");
        for kind in [
            "volume_set",
            "paused_set",
            "seeked",
            "voice_connected",
            "tracks_enqueued",
            "track_removed",
            "track_moved",
            "track_started",
            "track_ended",
            "loop_mode_set",
            "shuffle_set",
            "filters_set",
            "filters_cleared",
            "autoplay_set",
        ] {
            assert!(count(kind) > 0, "no {kind} in 5000 events");
        }
        assert!(events
            .iter()
            .any(|e| matches!(e, Event::TracksEnqueued { tracks, .. } if tracks.len() >= 20)));
    }

    #[test]
    fn arbitrary_events_are_mixed() {
        let mut rng = Rng::new(5);
        let mut state = State::new(50);
        let (mut valid, mut invalid) = (0, 0);
        for _ in 0..2000 {
            let event = arbitrary_event(&mut rng, &state);
            match apply_checked(&mut state, &event) {
                Ok(()) => valid += 1,
                Err(_) => invalid += 1,
            }
        }
        assert!(
            valid > 500 && invalid > 500,
            "{valid} valid, {invalid} invalid"
        );
    }

    proptest! {
        #[test]
        fn workload_is_always_valid(seed in any::<u64>(), history_max in 0u32..60) {
            let (state, events) = run(seed, 200, history_max);
            let config = bincode::config::standard();
            for event in &events {
                let json = event.to_json();
                prop_assert_eq!(&Event::from_json(&json).unwrap(), event);
                let bytes = bincode::encode_to_vec(event, config).unwrap();
                let (back, _): (Event, usize) = bincode::decode_from_slice(&bytes, config).unwrap();
                prop_assert_eq!(&back, event);
            }
            let bytes = bincode::encode_to_vec(&state, config).unwrap();
            let (back, used): (State, usize) = bincode::decode_from_slice(&bytes, config).unwrap();
            prop_assert_eq!(used, bytes.len());
            prop_assert_eq!(&back, &state);
            let json = serde_json::to_string(&state).unwrap();
            let back: State = serde_json::from_str(&json).unwrap();
            prop_assert_eq!(&back, &state);
        }

        #[test]
        fn apply_is_total_on_arbitrary_events(seed in any::<u64>()) {
            let mut rng = Rng::new(seed);
            // `raw` takes every event, valid or not; `checked` only those validate accepts.
            let mut raw = State::new(rng.range(0, 8) as u32);
            let mut checked = raw.clone();
            for _ in 0..200 {
                let event = arbitrary_event(&mut rng, &raw);
                let _ = validate(&raw, &event);
                apply(&mut raw, &event);
                let event = arbitrary_event(&mut rng, &checked);
                if apply_checked(&mut checked, &event).is_ok() {
                    check(&checked);
                }
            }
        }
    }
}

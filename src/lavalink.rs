//! Restoring a guild's player on Lavalink v4 after a restart (contract §2 `reprise lavalink`).
//!
//! [`plan`] turns a recovered [`GuildState`] into a [`Restore`]: the body of Lavalink v4's
//! `PATCH /v4/sessions/{sessionId}/players/{guildId}` ([`PlayerPatch`]) plus what the bot keeps
//! on its own side (the queue and the autoplay settings), which Lavalink does not hold. Pure: the
//! current time is a parameter.
//!
//! # The body
//!
//! | field | from | notes |
//! | --- | --- | --- |
//! | `track` | `queue.current` | `{"encoded": "<blob>"}`; `{"encoded": null}` when there is no current track (Lavalink: "stops the player"), see [`RestoreStatus`] |
//! | `position` | `player.position_ms` | extrapolated, see below; absent without a current track |
//! | `volume` | `player.volume` | `0..=1000` |
//! | `paused` | `player.paused` | |
//! | `filters` | `filters.config` | Lavalink v4's names: `volume`, `equalizer` `[{band, gain}]`, `karaoke` `{level, monoLevel, filterBand, filterWidth}`, `timescale` `{speed, pitch, rate}`, `tremolo` / `vibrato` `{frequency, depth}`, `rotation` `{rotationHz}`, `distortion` `{sinOffset, ...}`, `channelMix` `{leftToLeft, ...}`, `lowPass` `{smoothing}`; only the filters that are set. `{}` when none (Lavalink: a `filters` object replaces all filters, so `{}` clears them) |
//! | `voice` | `player.voice` | `{token, endpoint, sessionId, channelId}`; absent unless the token and endpoint are known (Lavalink requires all three; a Sonora import has only the session id). `channelId` is absent when unknown (the `0` a Sonora import records) |
//!
//! # Position
//!
//! The state's position is either exact (after `seeked` or a track change: anchor `None`) or a
//! report (`position_reported`: `position_ms` true at `at_unix_ms`). A report is extrapolated to
//! `now` **only while playing** — a current track and not paused:
//! `position_ms + (now - at_unix_ms) × speed × rate`, where `speed` and `rate` are the
//! timescale filter's (1.0 when unset: both make the track advance faster than the wall
//! clock; `pitch` does not), rounded down, with a clock that went backwards counting as no
//! time. The result is clamped to the track's length (Lavalink then ends the track at once and
//! the bot's track-end handling moves on). An exact position and a paused player are not
//! extrapolated. A live stream (`is_stream`) or a track that cannot seek (`is_seekable` false)
//! restores at position 0: Lavalink cannot start those anywhere else. A track of unknown length
//! (0) is extrapolated without a clamp.
//!
//! # Stopped sessions
//!
//! A session that was stopped (`session_ended`, or `track_ended` with `stopped`) has no current
//! track, and a restore must not start one: the body then carries `"track": {"encoded": null}`
//! and no `position`, which leaves (or makes) the Lavalink player idle while still restoring its
//! volume, pause flag and filters. [`RestoreStatus`] says which case applies.
//!
//! # Selective restore
//!
//! [`Sections`] (`--only`): `player` gives `track`, `position`, `volume`, `paused` and `voice`;
//! `filters` gives `filters`; `queue` and `autoplay` give the client-side [`Restore::queue`] and
//! [`Restore::autoplay`]. A section left out is left out of the body (Lavalink leaves the
//! player's value as it is).

use serde::Serialize;
use serde_json::Value;

use crate::ids::{GuildId, Seq};
use crate::journal::GuildState;
use crate::session::{Autoplay, FilterConfig, LoopMode, QueueEntry, Snowflake, State, Track};
use crate::sonora::{Sections, UNKNOWN_CHANNEL_ID};

/// The Lavalink v4 track object and its conversions (defined with [`crate::session::Track`]).
pub use crate::session::{LavalinkTrack, LavalinkTrackInfo};

/// What a restore does with the player.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RestoreStatus {
    /// A current track, not paused: it plays on from the extrapolated position.
    Playing,
    /// A current track, paused: it is loaded at its position and stays paused.
    Paused,
    /// No current track, but upcoming tracks wait: the player stays idle, and the bot starts
    /// the next track (with `track_started`) as it would after a track end.
    Idle,
    /// No current track and nothing upcoming (an explicit stop, `session_ended`, or a queue that
    /// ran out): nothing is played.
    Stopped,
}

impl RestoreStatus {
    /// The snake_case name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            RestoreStatus::Playing => "playing",
            RestoreStatus::Paused => "paused",
            RestoreStatus::Idle => "idle",
            RestoreStatus::Stopped => "stopped",
        }
    }
}

/// The `track` object of the PATCH body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PatchTrack {
    /// The base64 track blob; `null` stops the player.
    pub encoded: Option<String>,
    /// The track's `user_data`, as Lavalink's `userData` (absent when the track has none):
    /// Lavalink gives it back on the track in its events.
    #[serde(rename = "userData", skip_serializing_if = "Option::is_none")]
    pub user_data: Option<serde_json::Value>,
}

/// The `voice` object of the PATCH body (Lavalink v4 `VoiceState`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PatchVoice {
    /// The Discord voice token.
    pub token: String,
    /// The Discord voice server endpoint.
    pub endpoint: String,
    /// The Discord voice session id.
    pub session_id: String,
    /// The voice channel id, as a string (absent when unknown).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel_id: Option<String>,
}

/// The body of Lavalink v4's `PATCH /v4/sessions/{sessionId}/players/{guildId}`: only the
/// fields that are set are written.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PlayerPatch {
    /// The track to play (`{"encoded": null}`: none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub track: Option<PatchTrack>,
    /// Where to start the track, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<u64>,
    /// The player volume, `0..=1000`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume: Option<u16>,
    /// Whether the player is paused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
    /// The filters, in Lavalink v4's JSON form ([`lavalink_filters`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filters: Option<Value>,
    /// The voice connection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub voice: Option<PatchVoice>,
}

/// The queue the bot keeps on its side (Lavalink plays one track at a time).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClientQueue {
    /// The current track (also in the body's `track`), if any.
    pub current: Option<Track>,
    /// The tracks to play next, in order.
    pub upcoming: Vec<Track>,
    /// The tracks played, oldest first.
    pub history: Vec<Track>,
    /// The loop mode.
    pub loop_mode: LoopMode,
    /// Whether shuffle is on.
    pub shuffle: bool,
    /// The shuffle seed, if any.
    pub shuffle_seed: Option<u64>,
}

/// Everything needed to put a guild's session back: the Lavalink PATCH body and the client-side
/// parts.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Restore {
    /// The guild.
    #[serde(serialize_with = "guild_number")]
    pub guild: GuildId,
    /// The sequence number of the state restored.
    pub seq: Seq,
    /// What the restore does with the player.
    pub status: RestoreStatus,
    /// The sections restored.
    #[serde(serialize_with = "sections_string")]
    pub sections: Sections,
    /// How many milliseconds the position was moved forward from the recorded one.
    pub extrapolated_ms: u64,
    /// The player has voice data, but not enough for Lavalink (token or endpoint unknown): the
    /// bot must rejoin the channel to get a fresh voice server update.
    pub voice_incomplete: bool,
    /// The PATCH body.
    pub patch: PlayerPatch,
    /// The client-side queue (with `queue` in the sections).
    pub queue: Option<ClientQueue>,
    /// The autoplay settings (with `autoplay` in the sections).
    pub autoplay: Option<Autoplay>,
}

/// Serializes a [`GuildId`] as its number.
fn guild_number<S: serde::Serializer>(guild: &GuildId, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(guild.0)
}

/// Serializes [`Sections`] as its comma-separated form.
fn sections_string<S: serde::Serializer>(sections: &Sections, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&sections.to_string())
}

/// Whether `state` is playing, paused, idle or stopped (see [`RestoreStatus`]).
pub fn status(state: &State) -> RestoreStatus {
    match (&state.queue.current, state.player.paused) {
        (Some(_), false) => RestoreStatus::Playing,
        (Some(_), true) => RestoreStatus::Paused,
        (None, _) if state.queue.upcoming.is_empty() => RestoreStatus::Stopped,
        (None, _) => RestoreStatus::Idle,
    }
}

/// The position to restore at `now_unix_ms`, and how far it was moved forward (see the module
/// docs); `None` without a current track.
pub fn position_at(state: &State, now_unix_ms: u64) -> Option<(u64, u64)> {
    let track = &state.queue.current.as_ref()?.track;
    if track.is_stream() || !track.is_seekable() {
        return Some((0, 0));
    }
    let recorded = state.player.position_ms;
    let mut position = recorded;
    if let (Some(at), false) = (state.player.position_anchor_unix_ms, state.player.paused) {
        let elapsed = now_unix_ms.saturating_sub(at);
        let timescale = state.filters.config.timescale.as_ref();
        let speed = timescale.and_then(|t| t.speed).unwrap_or(1.0);
        let rate = timescale.and_then(|t| t.rate).unwrap_or(1.0);
        // Validated filters are finite and > 0, so the product is finite and positive; the
        // float-to-int cast saturates.
        let advanced = (elapsed as f64 * speed * rate).floor() as u64;
        position = recorded.saturating_add(advanced);
    }
    let length = track.length_ms();
    if length > 0 {
        position = position.min(length);
    }
    Some((position, position.saturating_sub(recorded)))
}

/// The filters in Lavalink v4's JSON form: the [`FilterConfig`] with its outer keys
/// `channel_mix` / `low_pass` renamed `channelMix` / `lowPass` (the inner fields already use
/// Lavalink's names), only the filters that are set.
pub fn lavalink_filters(config: &FilterConfig) -> Value {
    let mut value =
        serde_json::to_value(config).unwrap_or_else(|_| Value::Object(Default::default()));
    if let Value::Object(map) = &mut value {
        for (snake, camel) in [("channel_mix", "channelMix"), ("low_pass", "lowPass")] {
            if let Some(inner) = map.remove(snake) {
                map.insert(camel.to_owned(), inner);
            }
        }
    }
    value
}

/// The Lavalink voice object, or `None` when the token or endpoint is unknown.
fn patch_voice(state: &State) -> Option<PatchVoice> {
    let voice = state.player.voice.as_ref()?;
    let channel_id = match &voice.channel_id {
        Snowflake::Number(UNKNOWN_CHANNEL_ID) => None,
        other => Some(other.to_string()),
    };
    Some(PatchVoice {
        token: voice.token.clone()?,
        endpoint: voice.endpoint.clone()?,
        session_id: voice.session_id.clone(),
        channel_id,
    })
}

/// The restore plan for `guild_state` at `now_unix_ms`, with the sections in `only`.
pub fn plan(guild_state: &GuildState, now_unix_ms: u64, only: Sections) -> Restore {
    let state = &guild_state.state;
    let status = status(state);
    let mut patch = PlayerPatch::default();
    let mut extrapolated_ms = 0;
    let mut voice_incomplete = false;
    if only.player {
        patch.track = Some(PatchTrack {
            encoded: state
                .queue
                .current
                .as_ref()
                .map(|e| e.track.encoded().into_owned()),
            user_data: state
                .queue
                .current
                .as_ref()
                .and_then(|e| e.track.user_data()),
        });
        if let Some((position, moved)) = position_at(state, now_unix_ms) {
            patch.position = Some(position);
            extrapolated_ms = moved;
        }
        patch.volume = Some(state.player.volume);
        patch.paused = Some(state.player.paused);
        patch.voice = patch_voice(state);
        voice_incomplete = state.player.voice.is_some() && patch.voice.is_none();
    }
    if only.filters {
        patch.filters = Some(lavalink_filters(&state.filters.config));
    }
    let tracks = |entries: &[QueueEntry]| entries.iter().map(|e| e.track.clone()).collect();
    let queue = only.queue.then(|| ClientQueue {
        current: state.queue.current.as_ref().map(|e| e.track.clone()),
        upcoming: tracks(&state.queue.upcoming),
        history: tracks(&state.queue.history),
        loop_mode: state.queue.loop_mode,
        shuffle: state.queue.shuffle,
        shuffle_seed: state.queue.shuffle_seed,
    });
    Restore {
        guild: guild_state.guild,
        seq: guild_state.seq,
        status,
        sections: only,
        extrapolated_ms,
        voice_incomplete,
        patch,
        queue,
        autoplay: only.autoplay.then(|| state.autoplay.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{
        apply_checked, ChannelMix, EndReason, EqualizerBand, Event, Karaoke, LowPass, Timescale,
    };
    use serde_json::json;

    const NOW: u64 = 1_760_000_100_000;

    fn track(n: u32, length_ms: u64) -> Track {
        let mut t = Track::new(format!("QAAAenc{n}"), format!("Track {n}")).fields();
        t.length_ms = Some(length_ms);
        Track::from(t)
    }

    fn gs(events: &[Event]) -> GuildState {
        let mut state = State::new(50);
        for event in events {
            apply_checked(&mut state, event).unwrap();
        }
        GuildState {
            guild: GuildId(42),
            seq: events.len() as u64,
            state,
        }
    }

    fn playing() -> Vec<Event> {
        vec![
            Event::VoiceConnected {
                session_id: "sess".into(),
                channel_id: Snowflake::Text("1100000000000000001".into()),
                endpoint: Some("rotterdam1234.discord.media:443".into()),
                token: Some("tok".into()),
            },
            Event::TracksEnqueued {
                tracks: vec![track(1, 200_000), track(2, 100_000)],
                index: None,
            },
            Event::TrackStarted,
            Event::VolumeSet { volume: 80 },
            Event::PositionReported {
                position_ms: 30_000,
                at_unix_ms: NOW - 10_000,
                entry_id: None,
            },
        ]
    }

    fn body(restore: &Restore) -> Value {
        serde_json::to_value(&restore.patch).unwrap()
    }

    #[test]
    fn a_playing_guild_restores_its_track_at_the_extrapolated_position() {
        let restore = plan(&gs(&playing()), NOW, Sections::ALL);
        assert_eq!(restore.status, RestoreStatus::Playing);
        assert_eq!(
            body(&restore),
            json!({
                "track": {"encoded": "QAAAenc1"},
                "position": 40_000,
                "volume": 80,
                "paused": false,
                "filters": {},
                "voice": {
                    "token": "tok",
                    "endpoint": "rotterdam1234.discord.media:443",
                    "sessionId": "sess",
                    "channelId": "1100000000000000001"
                }
            })
        );
        assert_eq!(restore.extrapolated_ms, 10_000);
        let queue = restore.queue.unwrap();
        assert_eq!(queue.upcoming, vec![track(2, 100_000)]);
        assert_eq!(queue.current, Some(track(1, 200_000)));
        // A clock behind the anchor does not move the position back.
        let early = plan(&gs(&playing()), NOW - 60_000, Sections::ALL);
        assert_eq!(early.patch.position, Some(30_000));
        // Far in the future: clamped to the track's length.
        let late = plan(&gs(&playing()), NOW + 3_600_000, Sections::ALL);
        assert_eq!(late.patch.position, Some(200_000));
    }

    #[test]
    fn timescale_speed_and_rate_scale_the_extrapolation() {
        let mut events = playing();
        events.push(Event::FiltersSet {
            active: vec!["nightcore".into()],
            config: Box::new(FilterConfig {
                timescale: Some(Timescale {
                    speed: Some(1.25),
                    pitch: Some(1.3),
                    rate: Some(1.2),
                }),
                ..FilterConfig::default()
            }),
        });
        let restore = plan(&gs(&events), NOW, Sections::ALL);
        // 30 s + 10 s × 1.25 × 1.2 = 45 s; pitch plays no part.
        assert_eq!(restore.patch.position, Some(45_000));
        assert_eq!(
            body(&restore)["filters"],
            json!({"timescale": {"speed": 1.25, "pitch": 1.3, "rate": 1.2}})
        );
    }

    /// A late `playerUpdate` of the previous track (naming its entry) arrives after
    /// `track_started`: the restore still seeks the new track where it really was.
    #[test]
    fn a_stale_report_does_not_move_the_restored_track() {
        let mut events = playing();
        events.push(Event::TrackStarted);
        events.push(Event::PositionReported {
            position_ms: 2_000,
            at_unix_ms: NOW - 1_000,
            entry_id: Some(2),
        });
        events.push(Event::PositionReported {
            position_ms: 150_000,
            at_unix_ms: NOW - 500,
            entry_id: Some(1),
        });
        let guild = gs(&events);
        assert_eq!(guild.state.stale_reports, 1);
        let restore = plan(&guild, NOW, Sections::ALL);
        assert_eq!(body(&restore)["track"]["encoded"], json!("QAAAenc2"));
        assert_eq!(restore.patch.position, Some(3_000));
        // Without the entry id the same late report would have moved the new track.
        let last = events.len() - 1;
        events[last] = Event::PositionReported {
            position_ms: 150_000,
            at_unix_ms: NOW - 500,
            entry_id: None,
        };
        assert_eq!(
            plan(&gs(&events), NOW, Sections::ALL).patch.position,
            Some(100_000)
        );
    }

    #[test]
    fn a_paused_guild_restores_paused_at_the_recorded_position() {
        let mut events = playing();
        events.push(Event::PausedSet { paused: true });
        let restore = plan(&gs(&events), NOW + 500_000, Sections::ALL);
        assert_eq!(restore.status, RestoreStatus::Paused);
        let b = body(&restore);
        assert_eq!(b["paused"], json!(true));
        assert_eq!(b["position"], json!(30_000));
        assert_eq!(b["track"]["encoded"], json!("QAAAenc1"));
        assert_eq!(restore.extrapolated_ms, 0);
    }

    #[test]
    fn an_exact_position_is_not_extrapolated() {
        let mut events = playing();
        events.push(Event::Seeked {
            position_ms: 12_345,
            entry_id: None,
        });
        let restore = plan(&gs(&events), NOW + 5_000, Sections::ALL);
        assert_eq!(restore.patch.position, Some(12_345));
    }

    #[test]
    fn streams_and_unseekable_tracks_restore_at_zero() {
        let mut stream = Track::new("QAAAlive", "Radio").fields();
        stream.is_stream = Some(true);
        let mut fixed = track(3, 60_000).fields();
        fixed.is_seekable = Some(false);
        for t in [Track::from(stream), Track::from(fixed)] {
            let events = vec![
                Event::TracksEnqueued {
                    tracks: vec![t],
                    index: None,
                },
                Event::TrackStarted,
                Event::PositionReported {
                    position_ms: 5_000,
                    at_unix_ms: NOW - 1_000,
                    entry_id: None,
                },
            ];
            assert_eq!(
                plan(&gs(&events), NOW, Sections::ALL).patch.position,
                Some(0)
            );
        }
        // Unknown length: extrapolated, not clamped.
        let events = vec![
            Event::TracksEnqueued {
                tracks: vec![Track::new("QAAAx", "Unknown")],
                index: None,
            },
            Event::TrackStarted,
            Event::PositionReported {
                position_ms: 5_000,
                at_unix_ms: NOW - 1_000,
                entry_id: None,
            },
        ];
        assert_eq!(
            plan(&gs(&events), NOW, Sections::ALL).patch.position,
            Some(6_000)
        );
    }

    #[test]
    fn every_filter_uses_lavalink_names() {
        let config = FilterConfig {
            volume: Some(1.5),
            equalizer: Some(vec![
                EqualizerBand {
                    band: 0,
                    gain: 0.25,
                },
                EqualizerBand {
                    band: 14,
                    gain: -0.25,
                },
            ]),
            karaoke: Some(Karaoke {
                level: Some(1.0),
                mono_level: Some(1.0),
                filter_band: Some(220.0),
                filter_width: Some(100.0),
            }),
            channel_mix: Some(ChannelMix {
                left_to_left: Some(0.5),
                left_to_right: Some(0.5),
                right_to_left: Some(0.5),
                right_to_right: Some(0.5),
            }),
            low_pass: Some(LowPass {
                smoothing: Some(20.0),
            }),
            ..FilterConfig::default()
        };
        let mut events = playing();
        events.push(Event::FiltersSet {
            active: vec!["bassboost".into(), "karaoke".into()],
            config: Box::new(config),
        });
        let restore = plan(&gs(&events), NOW, Sections::ALL);
        assert_eq!(
            body(&restore)["filters"],
            json!({
                "volume": 1.5,
                "equalizer": [{"band": 0, "gain": 0.25}, {"band": 14, "gain": -0.25}],
                "karaoke": {"level": 1.0, "monoLevel": 1.0, "filterBand": 220.0, "filterWidth": 100.0},
                "channelMix": {"leftToLeft": 0.5, "leftToRight": 0.5, "rightToLeft": 0.5, "rightToRight": 0.5},
                "lowPass": {"smoothing": 20.0}
            })
        );
    }

    #[test]
    fn a_stopped_guild_is_not_restored() {
        let mut events = playing();
        events.push(Event::TrackEnded {
            reason: EndReason::Stopped,
        });
        let restore = plan(&gs(&events), NOW, Sections::ALL);
        assert_eq!(restore.status, RestoreStatus::Stopped);
        let b = body(&restore);
        assert_eq!(b["track"], json!({"encoded": null}));
        assert!(b.get("position").is_none());
        assert_eq!(b["volume"], json!(80));
        let mut ended = playing();
        ended.push(Event::SessionEnded);
        let restore = plan(&gs(&ended), NOW, Sections::ALL);
        assert_eq!(restore.status, RestoreStatus::Stopped);
        assert_eq!(
            body(&restore),
            json!({"track": {"encoded": null}, "volume": 100, "paused": false, "filters": {}})
        );
        // Skipped with more to come: idle, the bot starts the next track.
        let mut skipped = playing();
        skipped.push(Event::TrackEnded {
            reason: EndReason::Skipped,
        });
        assert_eq!(
            plan(&gs(&skipped), NOW, Sections::ALL).status,
            RestoreStatus::Idle
        );
    }

    #[test]
    fn only_restores_the_sections_asked_for() {
        let restore = plan(&gs(&playing()), NOW, "filters".parse().unwrap());
        assert_eq!(body(&restore), json!({"filters": {}}));
        assert!(restore.queue.is_none() && restore.autoplay.is_none());
        let restore = plan(&gs(&playing()), NOW, "queue,autoplay".parse().unwrap());
        assert_eq!(body(&restore), json!({}));
        assert!(restore.queue.is_some() && restore.autoplay.is_some());
        let restore = plan(&gs(&playing()), NOW, "player".parse().unwrap());
        let b = body(&restore);
        assert!(b.get("filters").is_none());
        assert_eq!(b["position"], json!(40_000));
    }

    #[test]
    fn voice_without_token_or_endpoint_is_left_out() {
        let events = vec![Event::VoiceConnected {
            session_id: "sess".into(),
            channel_id: Snowflake::Number(UNKNOWN_CHANNEL_ID),
            endpoint: None,
            token: None,
        }];
        let restore = plan(&gs(&events), NOW, Sections::ALL);
        assert!(restore.patch.voice.is_none());
        assert!(restore.voice_incomplete);
        let events = vec![Event::VoiceConnected {
            session_id: "sess".into(),
            channel_id: Snowflake::Number(UNKNOWN_CHANNEL_ID),
            endpoint: Some("e".into()),
            token: Some("t".into()),
        }];
        let restore = plan(&gs(&events), NOW, Sections::ALL);
        assert_eq!(
            serde_json::to_value(restore.patch.voice.unwrap()).unwrap(),
            json!({"token": "t", "endpoint": "e", "sessionId": "sess"})
        );
    }
}

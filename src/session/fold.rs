//! The fold: [`validate`] decides whether an event applies to a state, [`apply`] applies it.
//!
//! Both are pure: no I/O, no clock, no randomness, so replaying a journal gives the same state
//! every time. The journal calls [`validate`] *before* it writes an event, so the log never holds
//! an event the fold would refuse; [`apply`] is then total (it never panics, whatever the event)
//! and its result is specified only for validated events.
//!
//! Effects (contract §1): loop mode and shuffle are recorded, never enacted — the fold does not
//! reorder or repeat anything by itself; the bot expresses what it does with explicit events
//! (`tracks_enqueued`, `track_started`, ...).

use super::limits::{
    FILTER_NAMES_MAX, META_BYTES_MAX, NAME_LEN_MAX, QUEUE_LEN_MAX, SNOWFLAKE_DIGITS_MAX,
    TEXT_LEN_MAX, TRACKS_PER_EVENT_MAX, VOLUME_MAX,
};
use super::{
    Autoplay, EndReason, Event, FilterConfig, Filters, QueueEntry, Snowflake, State, Voice,
};

/// Why an event does not apply to a state. Each variant names the offending field.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    /// `volume_set.volume` above [`VOLUME_MAX`].
    #[error("volume {volume} is out of range 0..={max}")]
    VolumeOutOfRange {
        /// The volume given.
        volume: u16,
        /// The highest volume accepted.
        max: u16,
    },
    /// An index into the upcoming queue is not below its length (or, for an insert, above it).
    #[error("{field} {index} is out of range: the upcoming queue has {len} entries")]
    IndexOutOfRange {
        /// The event field (`index`, `from`, `to`).
        field: &'static str,
        /// The index given.
        index: u32,
        /// The length of the upcoming queue.
        len: usize,
    },
    /// The event needs an entry in the upcoming queue and there is none.
    #[error("the upcoming queue is empty")]
    EmptyQueue,
    /// The event needs a current track and none is playing.
    #[error("no track is playing")]
    NoCurrentTrack,
    /// `seeked.position_ms` past the end of the current (non-stream) track.
    #[error("position_ms {position_ms} is past the end of the current track ({length_ms} ms)")]
    PositionPastEnd {
        /// The position given.
        position_ms: u64,
        /// The current track's length.
        length_ms: u64,
    },
    /// A float is NaN or infinite.
    #[error("{field} must be a finite number")]
    NotFinite {
        /// The field's path (e.g. `config.equalizer[0].gain`).
        field: String,
    },
    /// A filter value is outside Lavalink's accepted range.
    #[error("{field} is {value}, outside the accepted range {range}")]
    FilterOutOfRange {
        /// The field's path (e.g. `config.timescale.speed`).
        field: String,
        /// The value given.
        value: f64,
        /// The accepted range (e.g. `0.0..=5.0`).
        range: &'static str,
    },
    /// The equalizer lists a band twice.
    #[error("config.equalizer lists band {band} more than once")]
    DuplicateBand {
        /// The repeated band.
        band: u8,
    },
    /// A list of names holds the same name twice.
    #[error("{field} lists {name:?} more than once")]
    DuplicateName {
        /// The list (e.g. `active`).
        field: String,
        /// The repeated name.
        name: String,
    },
    /// A list is longer than its limit.
    #[error("{field} has {len} entries; at most {max} are allowed")]
    TooMany {
        /// The list (e.g. `tracks`, `active`, `config.equalizer`).
        field: String,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A string is longer than its limit, in bytes.
    #[error("{field} is {len} bytes long; at most {max} are allowed")]
    TooLong {
        /// The field's path (e.g. `tracks[2].title`).
        field: String,
        /// Its length in bytes.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// A required string or list is empty.
    #[error("{field} must not be empty")]
    Empty {
        /// The field's path (e.g. `tracks`, `session_id`, `tracks[0].encoded`).
        field: String,
    },
    /// The upcoming queue would grow past [`QUEUE_LEN_MAX`].
    #[error("the upcoming queue would hold {len} entries; at most {max} are allowed")]
    QueueFull {
        /// The length it would have.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// `voice_connected.channel_id` given as a string that is not a decimal `u64`.
    #[error("channel_id {value:?} is not a snowflake (1 to 20 decimal digits within 64 bits)")]
    InvalidSnowflake {
        /// The string given.
        value: String,
    },
    /// `state_restored.state` is not a state the fold could have reached: a value out of
    /// range, entry ids repeated or not below `next_entry_id`, or a history longer than the
    /// guild's `history_max`.
    #[error("state_restored.state is not a valid state: {reason}")]
    InvalidState {
        /// The first broken rule, naming the field (e.g. `queue.upcoming[3].track.title`).
        reason: String,
    },
    /// The entry-id counter would overflow (after 2^64 enqueued tracks in one session).
    #[error("entry ids are exhausted (next_entry_id {next_entry_id})")]
    EntryIdsExhausted {
        /// The counter's value.
        next_entry_id: u64,
    },
    /// Bot-owned data over its cap: a guild `meta` over [`META_BYTES_MAX`] bytes of compact
    /// JSON, or a track's `plugin_info` and `user_data` together over
    /// [`crate::session::limits::USER_DATA_BYTES_MAX`]. Nothing is written.
    #[error("{field} is {len} bytes of JSON, over the limit of {max}")]
    DataTooLarge {
        /// The field (e.g. `meta`, `state.meta`).
        field: String,
        /// Its size, in bytes of compact JSON.
        len: usize,
        /// The most bytes accepted.
        max: usize,
    },
}

/// Checks a guild `meta` against [`META_BYTES_MAX`]; `field` names it in the error.
pub(super) fn check_meta(
    meta: &serde_json::Map<String, serde_json::Value>,
    field: &str,
) -> Result<(), EventError> {
    let len = super::state::json_len(meta);
    if len > META_BYTES_MAX {
        return Err(EventError::DataTooLarge {
            field: field.to_owned(),
            len,
            max: META_BYTES_MAX,
        });
    }
    Ok(())
}

/// Decides whether `event` applies to `state`, without changing anything.
///
/// # Errors
/// The first reason the event does not apply, as an [`EventError`] naming the field.
pub fn validate(state: &State, event: &Event) -> Result<(), EventError> {
    let upcoming_len = state.queue.upcoming.len();
    match event {
        Event::VolumeSet { volume } => check_volume(*volume),
        Event::Seeked {
            entry_id: Some(id), ..
        } if is_stale(state, *id) => Ok(()),
        Event::Seeked { position_ms, .. } => {
            let entry = state
                .queue
                .current
                .as_ref()
                .ok_or(EventError::NoCurrentTrack)?;
            let length_ms = entry.track.length_ms();
            if length_ms > 0 && !entry.track.is_stream() && *position_ms > length_ms {
                return Err(EventError::PositionPastEnd {
                    position_ms: *position_ms,
                    length_ms,
                });
            }
            Ok(())
        }
        Event::VoiceConnected {
            session_id,
            channel_id,
            endpoint,
            token,
        } => check_voice(session_id, channel_id, endpoint, token),
        Event::TracksEnqueued { tracks, index } => {
            if tracks.is_empty() {
                return Err(EventError::Empty {
                    field: "tracks".to_owned(),
                });
            }
            if tracks.len() > TRACKS_PER_EVENT_MAX {
                return Err(EventError::TooMany {
                    field: "tracks".to_owned(),
                    len: tracks.len(),
                    max: TRACKS_PER_EVENT_MAX,
                });
            }
            if let Some(index) = *index {
                if to_usize(index) > upcoming_len {
                    return Err(EventError::IndexOutOfRange {
                        field: "index",
                        index,
                        len: upcoming_len,
                    });
                }
            }
            check_queue_len(upcoming_len.saturating_add(tracks.len()))?;
            let count = u64::try_from(tracks.len()).unwrap_or(u64::MAX);
            if state.next_entry_id.checked_add(count).is_none() {
                return Err(EventError::EntryIdsExhausted {
                    next_entry_id: state.next_entry_id,
                });
            }
            for (i, track) in tracks.iter().enumerate() {
                track.validate_with(&|| format!("tracks[{i}]"))?;
            }
            Ok(())
        }
        Event::TrackRemoved { index } => check_index(state, "index", *index),
        Event::TrackMoved { from, to } => {
            check_index(state, "from", *from)?;
            check_index(state, "to", *to)
        }
        Event::TrackStarted => {
            if upcoming_len == 0 {
                return Err(EventError::EmptyQueue);
            }
            Ok(())
        }
        Event::TrackEnded { .. } => {
            if state.queue.current.is_none() {
                return Err(EventError::NoCurrentTrack);
            }
            Ok(())
        }
        Event::FiltersSet { active, config } => check_filters(active, config),
        Event::AutoplaySet {
            strategy,
            fallback_playlist,
            ..
        } => check_autoplay(strategy, fallback_playlist),
        Event::StateRestored {
            state: restored,
            label,
            ..
        } => check_restored(state, restored, label.as_deref()),
        Event::PausedSet { .. }
        | Event::PositionReported { .. }
        | Event::VoiceDisconnected
        | Event::QueueCleared
        | Event::LoopModeSet { .. }
        | Event::ShuffleSet { .. }
        | Event::FiltersCleared
        | Event::SessionEnded => Ok(()),
        Event::GuildMetaSet { meta } => check_meta(meta, "meta"),
    }
}

/// Whether a report or seek naming queue entry `entry_id` is stale: that entry is not the
/// current one (it ended, or nothing plays). Such an event is accepted and changes nothing but
/// [`State::stale_reports`].
fn is_stale(state: &State, entry_id: u64) -> bool {
    state.queue.current.as_ref().map(|entry| entry.id) != Some(entry_id)
}

/// Applies `event` to `state`.
///
/// Total: never panics, whatever the event. The result is specified (contract §1) only for an
/// event that [`validate`] accepted on this state; an invalid event leaves the state changed in
/// some unspecified but memory-safe way (out-of-range indexes are ignored or clamped).
pub fn apply(state: &mut State, event: &Event) {
    match event {
        Event::VolumeSet { volume } => state.player.volume = *volume,
        Event::PausedSet { paused } => state.player.paused = *paused,
        Event::Seeked {
            entry_id: Some(id), ..
        }
        | Event::PositionReported {
            entry_id: Some(id), ..
        } if is_stale(state, *id) => {
            state.stale_reports = state.stale_reports.saturating_add(1);
        }
        Event::Seeked { position_ms, .. } => {
            state.player.position_ms = *position_ms;
            state.player.position_anchor_unix_ms = None;
        }
        Event::PositionReported {
            position_ms,
            at_unix_ms,
            ..
        } => {
            state.player.position_ms = *position_ms;
            state.player.position_anchor_unix_ms = Some(*at_unix_ms);
        }
        Event::VoiceConnected {
            session_id,
            channel_id,
            endpoint,
            token,
        } => {
            state.player.voice = Some(Voice {
                session_id: session_id.clone(),
                channel_id: channel_id.clone(),
                endpoint: endpoint.clone(),
                token: token.clone(),
            });
        }
        Event::VoiceDisconnected => state.player.voice = None,
        Event::TracksEnqueued { tracks, index } => {
            let upcoming = &mut state.queue.upcoming;
            let at = index.map_or(upcoming.len(), |i| to_usize(i).min(upcoming.len()));
            let first = state.next_entry_id;
            let entries = tracks.iter().zip(0u64..).map(|(track, k)| QueueEntry {
                id: first.saturating_add(k),
                track: track.clone(),
            });
            upcoming.splice(at..at, entries);
            let count = u64::try_from(tracks.len()).unwrap_or(u64::MAX);
            state.next_entry_id = first.saturating_add(count);
        }
        Event::TrackRemoved { index } => {
            let index = to_usize(*index);
            if index < state.queue.upcoming.len() {
                state.queue.upcoming.remove(index);
            }
        }
        Event::TrackMoved { from, to } => {
            let (from, to) = (to_usize(*from), to_usize(*to));
            let upcoming = &mut state.queue.upcoming;
            // Same as `remove(from)` then `insert(to, ..)`, but only the entries between the
            // two places move (remove + insert shift everything after each place).
            if from < upcoming.len() && to < upcoming.len() {
                if from < to {
                    upcoming[from..=to].rotate_left(1);
                } else {
                    upcoming[to..=from].rotate_right(1);
                }
            }
        }
        Event::QueueCleared => state.queue.upcoming.clear(),
        Event::TrackStarted => {
            if !state.queue.upcoming.is_empty() {
                let next = state.queue.upcoming.remove(0);
                if let Some(previous) = state.queue.current.replace(next) {
                    push_history(state, previous);
                }
                state.player.position_ms = 0;
                state.player.position_anchor_unix_ms = None;
            }
        }
        Event::TrackEnded { reason } => {
            if let Some(ended) = state.queue.current.take() {
                push_history(state, ended);
            }
            state.player.position_ms = 0;
            state.player.position_anchor_unix_ms = None;
            if *reason == EndReason::Stopped {
                state.queue.upcoming.clear();
            }
        }
        Event::LoopModeSet { mode } => state.queue.loop_mode = *mode,
        Event::ShuffleSet { enabled, seed } => {
            state.queue.shuffle = *enabled;
            state.queue.shuffle_seed = *seed;
        }
        Event::FiltersSet { active, config } => {
            state.filters = Filters {
                active: active.clone(),
                config: FilterConfig::clone(config),
            };
        }
        Event::FiltersCleared => state.filters = Filters::default(),
        Event::AutoplaySet {
            enabled,
            strategy,
            fallback_playlist,
            max_history,
            smart_shuffle,
        } => {
            state.autoplay = Autoplay {
                enabled: *enabled,
                strategy: strategy.clone(),
                fallback_playlist: fallback_playlist.clone(),
                max_history: *max_history,
                smart_shuffle: *smart_shuffle,
            };
        }
        Event::SessionEnded => {
            let meta = std::mem::take(&mut state.meta);
            *state = State::new(state.history_max);
            state.meta = meta;
        }
        Event::GuildMetaSet { meta } => state.meta = meta.clone(),
        Event::StateRestored {
            state: restored, ..
        } => restore(state, State::clone(restored)),
    }
}

/// The effect of `state_restored`: the state becomes `restored`, keeping the guild's own
/// `history_max` (a fold parameter).
fn restore(state: &mut State, mut restored: State) {
    restored.history_max = state.history_max;
    *state = restored;
}

/// [`apply`] taking the event by value: what the event carries (enqueued tracks, a restored
/// state, voice strings, filters, autoplay settings, guild meta) moves into the state instead of
/// being cloned (replay owns every decoded event). Same result as [`apply`].
pub fn apply_owned(state: &mut State, event: Event) {
    match event {
        Event::TracksEnqueued { tracks, index } => {
            let upcoming = &mut state.queue.upcoming;
            let at = index.map_or(upcoming.len(), |i| to_usize(i).min(upcoming.len()));
            let first = state.next_entry_id;
            let count = u64::try_from(tracks.len()).unwrap_or(u64::MAX);
            let entries = tracks.into_iter().zip(0u64..).map(|(track, k)| QueueEntry {
                id: first.saturating_add(k),
                track,
            });
            upcoming.splice(at..at, entries);
            state.next_entry_id = first.saturating_add(count);
        }
        Event::StateRestored {
            state: restored, ..
        } => restore(state, *restored),
        Event::VoiceConnected {
            session_id,
            channel_id,
            endpoint,
            token,
        } => {
            state.player.voice = Some(Voice {
                session_id,
                channel_id,
                endpoint,
                token,
            });
        }
        Event::FiltersSet { active, config } => {
            state.filters = Filters {
                active,
                config: *config,
            };
        }
        Event::AutoplaySet {
            enabled,
            strategy,
            fallback_playlist,
            max_history,
            smart_shuffle,
        } => {
            state.autoplay = Autoplay {
                enabled,
                strategy,
                fallback_playlist,
                max_history,
                smart_shuffle,
            };
        }
        Event::GuildMetaSet { meta } => state.meta = meta,
        other => apply(state, &other),
    }
}

/// [`validate`], then [`apply`] if the event applies; the state is untouched on error.
///
/// # Errors
/// The [`EventError`] from [`validate`].
pub fn apply_checked(state: &mut State, event: &Event) -> Result<(), EventError> {
    validate(state, event)?;
    apply(state, event);
    Ok(())
}

/// Appends a finished entry to the history and drops the oldest beyond `history_max`.
fn push_history(state: &mut State, entry: QueueEntry) {
    let history = &mut state.queue.history;
    history.push(entry);
    let keep = usize::try_from(state.history_max).unwrap_or(usize::MAX);
    let excess = history.len().saturating_sub(keep);
    history.drain(..excess);
}

/// A `u32` index as `usize` (saturating on targets narrower than 32 bits).
fn to_usize(index: u32) -> usize {
    usize::try_from(index).unwrap_or(usize::MAX)
}

/// An index that must name an existing entry of the upcoming queue.
fn check_index(state: &State, field: &'static str, index: u32) -> Result<(), EventError> {
    let len = state.queue.upcoming.len();
    if len == 0 {
        return Err(EventError::EmptyQueue);
    }
    if to_usize(index) >= len {
        return Err(EventError::IndexOutOfRange { field, index, len });
    }
    Ok(())
}

/// `state_restored`: an optional label (non-empty, bounded) and a state that satisfies every
/// invariant the fold keeps, whose history fits the guild's `history_max` (the one it keeps).
fn check_restored(
    current: &State,
    restored: &State,
    label: Option<&str>,
) -> Result<(), EventError> {
    if let Some(label) = label {
        check_string("label", label, NAME_LEN_MAX, true)?;
    }
    let invalid = |reason: String| EventError::InvalidState { reason };
    restored
        .check_bounds()
        .map_err(|e| invalid(e.to_string()))?;
    let history_len = restored.queue.history.len();
    if u64::try_from(history_len).unwrap_or(u64::MAX) > u64::from(current.history_max) {
        return Err(invalid(format!(
            "queue.history has {history_len} entries; the guild keeps at most {} (its history_max)",
            current.history_max
        )));
    }
    restored.check_entry_ids().map_err(invalid)
}

/// The player volume bound.
pub(super) fn check_volume(volume: u16) -> Result<(), EventError> {
    if volume > VOLUME_MAX {
        return Err(EventError::VolumeOutOfRange {
            volume,
            max: VOLUME_MAX,
        });
    }
    Ok(())
}

/// The upcoming queue length bound.
pub(super) fn check_queue_len(len: usize) -> Result<(), EventError> {
    if len > QUEUE_LEN_MAX {
        return Err(EventError::QueueFull {
            len,
            max: QUEUE_LEN_MAX,
        });
    }
    Ok(())
}

/// A string field: non-empty when `required`, at most `max` bytes.
fn check_string(field: &str, value: &str, max: usize, required: bool) -> Result<(), EventError> {
    if required && value.is_empty() {
        return Err(EventError::Empty {
            field: field.to_owned(),
        });
    }
    if value.len() > max {
        return Err(EventError::TooLong {
            field: field.to_owned(),
            len: value.len(),
            max,
        });
    }
    Ok(())
}

/// Voice data: a non-empty session id, a decimal channel id, bounded endpoint and token.
pub(super) fn check_voice(
    session_id: &str,
    channel_id: &Snowflake,
    endpoint: &Option<String>,
    token: &Option<String>,
) -> Result<(), EventError> {
    check_string("session_id", session_id, NAME_LEN_MAX, true)?;
    if let Snowflake::Text(text) = channel_id {
        if text.len() > SNOWFLAKE_DIGITS_MAX || channel_id.get().is_none() {
            return Err(EventError::InvalidSnowflake {
                value: text.chars().take(SNOWFLAKE_DIGITS_MAX + 8).collect(),
            });
        }
    }
    if let Some(endpoint) = endpoint {
        check_string("endpoint", endpoint, TEXT_LEN_MAX, false)?;
    }
    if let Some(token) = token {
        check_string("token", token, TEXT_LEN_MAX, false)?;
    }
    Ok(())
}

/// Active filter names (bounded count, each non-empty, bounded and listed once) and the config.
pub(super) fn check_filters(active: &[String], config: &FilterConfig) -> Result<(), EventError> {
    if active.len() > FILTER_NAMES_MAX {
        return Err(EventError::TooMany {
            field: "active".to_owned(),
            len: active.len(),
            max: FILTER_NAMES_MAX,
        });
    }
    for (i, name) in active.iter().enumerate() {
        check_string(&format!("active[{i}]"), name, NAME_LEN_MAX, true)?;
        if active.iter().take(i).any(|earlier| earlier == name) {
            return Err(EventError::DuplicateName {
                field: "active".to_owned(),
                name: name.clone(),
            });
        }
    }
    config.validate()
}

/// Autoplay settings: a non-empty bounded strategy, a bounded fallback playlist.
pub(super) fn check_autoplay(
    strategy: &str,
    fallback_playlist: &Option<String>,
) -> Result<(), EventError> {
    check_string("strategy", strategy, NAME_LEN_MAX, true)?;
    if let Some(playlist) = fallback_playlist {
        check_string("fallback_playlist", playlist, TEXT_LEN_MAX, false)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{EqualizerBand, LoopMode, Track, TrackFields};

    fn track(n: u32) -> Track {
        let mut track = TrackFields::new(format!("QAAA{n}"), format!("Track {n}"));
        track.length_ms = Some(200_000);
        track.into()
    }

    fn enqueue(n: u32) -> Event {
        Event::TracksEnqueued {
            tracks: (0..n).map(track).collect(),
            index: None,
        }
    }

    fn state_with(upcoming: u32) -> State {
        let mut state = State::new(50);
        if upcoming > 0 {
            apply_checked(&mut state, &enqueue(upcoming)).unwrap();
        }
        state
    }

    fn titles(entries: &[QueueEntry]) -> Vec<&str> {
        entries.iter().map(|e| e.track.title()).collect()
    }

    /// A report or seek that names an entry which is no longer current changes nothing but the
    /// stale-report counter; one that names the current entry, or none, moves the position.
    #[test]
    fn a_stale_report_is_accepted_and_ignored() {
        let mut state = state_with(2);
        apply_checked(&mut state, &Event::TrackStarted).unwrap();
        let first = state.queue.current.as_ref().unwrap().id;
        let report = |position_ms, entry_id| Event::PositionReported {
            position_ms,
            at_unix_ms: 1_000 + position_ms,
            entry_id,
        };
        apply_checked(&mut state, &report(90_000, Some(first))).unwrap();
        assert_eq!(state.player.position_ms, 90_000);
        apply_checked(&mut state, &Event::TrackStarted).unwrap();
        let second = state.queue.current.as_ref().unwrap().id;
        assert_ne!(first, second);
        apply_checked(&mut state, &report(4_000, Some(second))).unwrap();
        let before = state.clone();
        // The late playerUpdate of the first track, and a late seek of it.
        apply_checked(&mut state, &report(95_000, Some(first))).unwrap();
        apply_checked(
            &mut state,
            &Event::Seeked {
                position_ms: 150_000,
                entry_id: Some(first),
            },
        )
        .unwrap();
        assert_eq!(state.player, before.player);
        assert_eq!(state.stale_reports, 2);
        // A stale seek is accepted even when nothing plays or when it is past the end.
        apply_checked(
            &mut state,
            &Event::TrackEnded {
                reason: EndReason::Finished,
            },
        )
        .unwrap();
        let stale_seek = Event::Seeked {
            position_ms: u64::MAX,
            entry_id: Some(second),
        };
        assert_eq!(validate(&state, &stale_seek), Ok(()));
        let unbound = Event::Seeked {
            position_ms: 1,
            entry_id: None,
        };
        assert_eq!(validate(&state, &unbound), Err(EventError::NoCurrentTrack));
        apply_checked(&mut state, &stale_seek).unwrap();
        assert_eq!(state.stale_reports, 3);
        apply_checked(&mut state, &Event::SessionEnded).unwrap();
        assert_eq!(state.stale_reports, 0);
    }

    /// `guild_meta_set` replaces the meta as a whole, within its cap; `session_ended` keeps
    /// it; `state_restored` replaces it and checks its cap too.
    #[test]
    fn guild_meta_is_replaced_bounded_and_survives_session_end() {
        let mut state = state_with(1);
        let meta = |json: serde_json::Value| match json {
            serde_json::Value::Object(map) => map,
            _ => unreachable!("an object"),
        };
        let first = meta(serde_json::json!({"text_channel": "110", "twenty_four_seven": true}));
        apply_checked(
            &mut state,
            &Event::GuildMetaSet {
                meta: first.clone(),
            },
        )
        .unwrap();
        assert_eq!(state.meta, first);
        let second = meta(serde_json::json!({"dj_role": 7}));
        apply_checked(
            &mut state,
            &Event::GuildMetaSet {
                meta: second.clone(),
            },
        )
        .unwrap();
        assert_eq!(state.meta, second, "replaced, not merged");
        apply_checked(&mut state, &Event::SessionEnded).unwrap();
        assert_eq!(state.meta, second);
        let mut expected = State::new(50);
        expected.meta = second.clone();
        assert_eq!(state, expected);
        // At the cap exactly: accepted; one byte over: refused, state untouched.
        let overhead = r#"{"x":""}"#.len();
        let at_cap = meta(serde_json::json!({"x": "a".repeat(META_BYTES_MAX - overhead)}));
        assert_eq!(
            validate(&state, &Event::GuildMetaSet { meta: at_cap }),
            Ok(())
        );
        let over = meta(serde_json::json!({"x": "a".repeat(META_BYTES_MAX - overhead + 1)}));
        let before = state.clone();
        assert_eq!(
            apply_checked(&mut state, &Event::GuildMetaSet { meta: over.clone() }),
            Err(EventError::DataTooLarge {
                field: "meta".to_owned(),
                len: META_BYTES_MAX + 1,
                max: META_BYTES_MAX,
            })
        );
        assert_eq!(state, before);
        let mut restored = State::new(50);
        restored.meta = over;
        let restore = Event::StateRestored {
            state: Box::new(restored),
            from_seq: None,
            label: None,
        };
        assert!(matches!(
            validate(&state, &restore),
            Err(EventError::InvalidState { .. })
        ));
    }

    #[test]
    fn contract_invalid_examples_rejected() {
        let empty = State::new(50);
        let three = state_with(3);
        assert_eq!(
            validate(&three, &Event::TrackRemoved { index: 3 }),
            Err(EventError::IndexOutOfRange {
                field: "index",
                index: 3,
                len: 3
            })
        );
        assert_eq!(
            validate(&empty, &Event::TrackRemoved { index: 0 }),
            Err(EventError::EmptyQueue)
        );
        assert_eq!(
            validate(&empty, &Event::VolumeSet { volume: 1001 }),
            Err(EventError::VolumeOutOfRange {
                volume: 1001,
                max: 1000
            })
        );
        assert_eq!(validate(&empty, &Event::VolumeSet { volume: 1000 }), Ok(()));
        let nan = Event::FiltersSet {
            active: vec!["bassboost".into()],
            config: Box::new(FilterConfig {
                equalizer: Some(vec![EqualizerBand {
                    band: 0,
                    gain: f64::NAN,
                }]),
                ..FilterConfig::default()
            }),
        };
        assert_eq!(
            validate(&empty, &nan),
            Err(EventError::NotFinite {
                field: "config.equalizer[0].gain".into()
            })
        );
        let band15 = Event::from_json(
            r#"{"type":"filters_set","active":[],"config":{"equalizer":[{"band":15,"gain":0.1}]}}"#,
        )
        .unwrap();
        assert!(matches!(
            validate(&empty, &band15),
            Err(EventError::FilterOutOfRange { value, .. }) if value == 15.0
        ));
    }

    #[test]
    fn rejected_event_leaves_state_untouched() {
        let mut state = state_with(2);
        let before = state.clone();
        assert!(apply_checked(&mut state, &Event::TrackMoved { from: 0, to: 2 }).is_err());
        assert_eq!(state, before);
    }

    #[test]
    fn enqueue_assigns_ids_and_inserts_at_index() {
        let mut state = state_with(2);
        assert_eq!(state.next_entry_id, 3);
        let event = Event::TracksEnqueued {
            tracks: vec![track(7), track(8)],
            index: Some(1),
        };
        apply_checked(&mut state, &event).unwrap();
        assert_eq!(
            titles(&state.queue.upcoming),
            ["Track 0", "Track 7", "Track 8", "Track 1"]
        );
        let ids: Vec<u64> = state.queue.upcoming.iter().map(|e| e.id).collect();
        assert_eq!(ids, [1, 3, 4, 2]);
        assert_eq!(state.next_entry_id, 5);
        let at_end = Event::TracksEnqueued {
            tracks: vec![track(9)],
            index: Some(4),
        };
        apply_checked(&mut state, &at_end).unwrap();
        assert_eq!(state.queue.upcoming.last().map(|e| e.id), Some(5));
        let past_end = Event::TracksEnqueued {
            tracks: vec![track(9)],
            index: Some(6),
        };
        assert_eq!(
            validate(&state, &past_end),
            Err(EventError::IndexOutOfRange {
                field: "index",
                index: 6,
                len: 5
            })
        );
    }

    #[test]
    fn enqueue_bounds() {
        let state = State::new(50);
        let none = Event::TracksEnqueued {
            tracks: vec![],
            index: None,
        };
        assert_eq!(
            validate(&state, &none),
            Err(EventError::Empty {
                field: "tracks".into()
            })
        );
        let bad = Event::TracksEnqueued {
            tracks: vec![track(0), Track::new("QAAA", "")],
            index: None,
        };
        assert_eq!(
            validate(&state, &bad),
            Err(EventError::Empty {
                field: "tracks[1].title".into()
            })
        );
        let mut full = State::new(50);
        full.queue.upcoming = vec![
            QueueEntry {
                id: 1,
                track: track(0)
            };
            QUEUE_LEN_MAX
        ];
        assert_eq!(
            validate(&full, &enqueue(1)),
            Err(EventError::QueueFull {
                len: QUEUE_LEN_MAX + 1,
                max: QUEUE_LEN_MAX
            })
        );
        let mut exhausted = State::new(50);
        exhausted.next_entry_id = u64::MAX - 1;
        assert_eq!(validate(&exhausted, &enqueue(1)), Ok(()));
        assert!(matches!(
            validate(&exhausted, &enqueue(2)),
            Err(EventError::EntryIdsExhausted { .. })
        ));
        let too_many = Event::TracksEnqueued {
            tracks: vec![track(0); TRACKS_PER_EVENT_MAX + 1],
            index: None,
        };
        assert!(matches!(
            validate(&state, &too_many),
            Err(EventError::TooMany { .. })
        ));
    }

    #[test]
    fn move_is_remove_then_insert() {
        for from in 0..5u32 {
            for to in 0..5u32 {
                let mut state = state_with(5);
                let mut expected = state.queue.upcoming.clone();
                let entry = expected.remove(from as usize);
                expected.insert(to as usize, entry);
                apply_checked(&mut state, &Event::TrackMoved { from, to }).unwrap();
                assert_eq!(state.queue.upcoming, expected, "from {from} to {to}");
            }
        }
    }

    #[test]
    fn remove_and_move() {
        let mut state = state_with(4);
        apply_checked(&mut state, &Event::TrackRemoved { index: 1 }).unwrap();
        assert_eq!(
            titles(&state.queue.upcoming),
            ["Track 0", "Track 2", "Track 3"]
        );
        apply_checked(&mut state, &Event::TrackMoved { from: 0, to: 2 }).unwrap();
        assert_eq!(
            titles(&state.queue.upcoming),
            ["Track 2", "Track 3", "Track 0"]
        );
        apply_checked(&mut state, &Event::TrackMoved { from: 2, to: 0 }).unwrap();
        assert_eq!(
            titles(&state.queue.upcoming),
            ["Track 0", "Track 2", "Track 3"]
        );
        apply_checked(&mut state, &Event::TrackMoved { from: 1, to: 1 }).unwrap();
        assert_eq!(
            titles(&state.queue.upcoming),
            ["Track 0", "Track 2", "Track 3"]
        );
        assert_eq!(
            validate(&state, &Event::TrackMoved { from: 3, to: 0 }),
            Err(EventError::IndexOutOfRange {
                field: "from",
                index: 3,
                len: 3
            })
        );
        assert_eq!(
            validate(&state, &Event::TrackMoved { from: 0, to: 3 }),
            Err(EventError::IndexOutOfRange {
                field: "to",
                index: 3,
                len: 3
            })
        );
        assert_eq!(
            validate(&State::new(5), &Event::TrackMoved { from: 0, to: 0 }),
            Err(EventError::EmptyQueue)
        );
    }

    #[test]
    fn start_end_and_history() {
        let mut state = state_with(3);
        state.history_max = 2;
        assert_eq!(
            validate(
                &state,
                &Event::TrackEnded {
                    reason: EndReason::Finished
                }
            ),
            Err(EventError::NoCurrentTrack)
        );
        apply_checked(
            &mut state,
            &Event::PositionReported {
                position_ms: 5,
                at_unix_ms: 9,
                entry_id: None,
            },
        )
        .unwrap();
        apply_checked(&mut state, &Event::TrackStarted).unwrap();
        assert_eq!(state.queue.current.as_ref().map(|e| e.id), Some(1));
        assert_eq!(state.player.position_ms, 0);
        assert_eq!(state.player.position_anchor_unix_ms, None);
        // Starting the next track while one plays moves the current one to history.
        apply_checked(&mut state, &Event::TrackStarted).unwrap();
        assert_eq!(state.queue.current.as_ref().map(|e| e.id), Some(2));
        assert_eq!(
            state.queue.history.iter().map(|e| e.id).collect::<Vec<_>>(),
            [1]
        );
        apply_checked(
            &mut state,
            &Event::TrackEnded {
                reason: EndReason::Skipped,
            },
        )
        .unwrap();
        assert!(state.queue.current.is_none());
        assert_eq!(
            state.queue.history.iter().map(|e| e.id).collect::<Vec<_>>(),
            [1, 2]
        );
        apply_checked(&mut state, &Event::TrackStarted).unwrap();
        apply_checked(
            &mut state,
            &Event::TrackEnded {
                reason: EndReason::Finished,
            },
        )
        .unwrap();
        // history_max 2: the oldest entry was dropped.
        assert_eq!(
            state.queue.history.iter().map(|e| e.id).collect::<Vec<_>>(),
            [2, 3]
        );
        assert_eq!(
            validate(&state, &Event::TrackStarted),
            Err(EventError::EmptyQueue)
        );
    }

    #[test]
    fn history_max_zero_keeps_nothing() {
        let mut state = state_with(2);
        state.history_max = 0;
        apply_checked(&mut state, &Event::TrackStarted).unwrap();
        apply_checked(&mut state, &Event::TrackStarted).unwrap();
        assert!(state.queue.history.is_empty());
    }

    #[test]
    fn stopped_clears_upcoming_but_keeps_history() {
        let mut state = state_with(3);
        apply_checked(&mut state, &Event::TrackStarted).unwrap();
        apply_checked(
            &mut state,
            &Event::TrackEnded {
                reason: EndReason::Stopped,
            },
        )
        .unwrap();
        assert!(state.queue.upcoming.is_empty());
        assert!(state.queue.current.is_none());
        assert_eq!(state.queue.history.len(), 1);
    }

    #[test]
    fn queue_cleared_keeps_current_and_history() {
        let mut state = state_with(3);
        apply_checked(&mut state, &Event::TrackStarted).unwrap();
        apply_checked(&mut state, &Event::TrackStarted).unwrap();
        apply_checked(&mut state, &Event::QueueCleared).unwrap();
        assert!(state.queue.upcoming.is_empty());
        assert!(state.queue.current.is_some());
        assert_eq!(state.queue.history.len(), 1);
        apply_checked(&mut state, &Event::QueueCleared).unwrap();
    }

    #[test]
    fn seek_rules() {
        let mut state = State::new(50);
        assert_eq!(
            validate(
                &state,
                &Event::Seeked {
                    position_ms: 0,
                    entry_id: None
                }
            ),
            Err(EventError::NoCurrentTrack)
        );
        apply_checked(&mut state, &enqueue(1)).unwrap();
        apply_checked(&mut state, &Event::TrackStarted).unwrap();
        apply_checked(
            &mut state,
            &Event::PositionReported {
                position_ms: 10,
                at_unix_ms: 99,
                entry_id: None,
            },
        )
        .unwrap();
        assert_eq!(state.player.position_anchor_unix_ms, Some(99));
        apply_checked(
            &mut state,
            &Event::Seeked {
                position_ms: 200_000,
                entry_id: None,
            },
        )
        .unwrap();
        assert_eq!(state.player.position_ms, 200_000);
        assert_eq!(state.player.position_anchor_unix_ms, None);
        assert_eq!(
            validate(
                &state,
                &Event::Seeked {
                    position_ms: 200_001,
                    entry_id: None,
                }
            ),
            Err(EventError::PositionPastEnd {
                position_ms: 200_001,
                length_ms: 200_000
            })
        );
        // Streams and unknown lengths have no end to seek past.
        let mut stream = track(1).fields();
        stream.is_stream = Some(true);
        let mut unknown = track(2).fields();
        unknown.length_ms = None;
        for t in [stream.into(), unknown.into()] {
            let mut state = State::new(50);
            apply_checked(
                &mut state,
                &Event::TracksEnqueued {
                    tracks: vec![t],
                    index: None,
                },
            )
            .unwrap();
            apply_checked(&mut state, &Event::TrackStarted).unwrap();
            assert_eq!(
                validate(
                    &state,
                    &Event::Seeked {
                        position_ms: u64::MAX,
                        entry_id: None,
                    }
                ),
                Ok(())
            );
        }
        // A position report needs no track.
        assert_eq!(
            validate(
                &State::new(1),
                &Event::PositionReported {
                    position_ms: 1,
                    at_unix_ms: 1,
                    entry_id: None,
                }
            ),
            Ok(())
        );
    }

    #[test]
    fn voice_rules() {
        let mut state = State::new(50);
        let connect = |session: &str, channel: Snowflake| Event::VoiceConnected {
            session_id: session.into(),
            channel_id: channel,
            endpoint: Some("rotterdam1234.discord.media:443".into()),
            token: Some("deadbeef".into()),
        };
        apply_checked(
            &mut state,
            &connect("abc", Snowflake::Text("1100000000000000001".into())),
        )
        .unwrap();
        assert!(state.player.connected());
        apply_checked(&mut state, &Event::VoiceDisconnected).unwrap();
        assert!(!state.player.connected());
        assert_eq!(
            validate(&state, &connect("", Snowflake::Number(1))),
            Err(EventError::Empty {
                field: "session_id".into()
            })
        );
        for bad in [
            "",
            "12ab",
            "-5",
            "99999999999999999999",
            "000000000000000000001",
        ] {
            assert!(
                matches!(
                    validate(&state, &connect("s", Snowflake::Text(bad.into()))),
                    Err(EventError::InvalidSnowflake { .. })
                ),
                "{bad}"
            );
        }
        assert_eq!(
            validate(
                &state,
                &connect("s", Snowflake::Text("18446744073709551615".into()))
            ),
            Ok(())
        );
    }

    #[test]
    fn filter_and_autoplay_rules() {
        let mut state = State::new(50);
        let set = |active: Vec<&str>| Event::FiltersSet {
            active: active.into_iter().map(String::from).collect(),
            config: Box::default(),
        };
        apply_checked(&mut state, &set(vec!["bassboost", "nightcore"])).unwrap();
        assert_eq!(state.filters.active, ["bassboost", "nightcore"]);
        assert_eq!(
            validate(&state, &set(vec!["a", "a"])),
            Err(EventError::DuplicateName {
                field: "active".into(),
                name: "a".into()
            })
        );
        assert_eq!(
            validate(&state, &set(vec![""])),
            Err(EventError::Empty {
                field: "active[0]".into()
            })
        );
        let long = "n".repeat(NAME_LEN_MAX + 1);
        assert!(matches!(
            validate(&state, &set(vec![long.as_str()])),
            Err(EventError::TooLong { .. })
        ));
        let names: Vec<String> = (0..=FILTER_NAMES_MAX).map(|i| format!("f{i}")).collect();
        let many = Event::FiltersSet {
            active: names,
            config: Box::default(),
        };
        assert!(matches!(
            validate(&state, &many),
            Err(EventError::TooMany { .. })
        ));
        apply_checked(&mut state, &Event::FiltersCleared).unwrap();
        assert_eq!(state.filters, Filters::default());

        let autoplay = |strategy: &str| Event::AutoplaySet {
            enabled: true,
            strategy: strategy.into(),
            fallback_playlist: Some("global_fallback".into()),
            max_history: Some(50),
            smart_shuffle: Some(true),
        };
        apply_checked(&mut state, &autoplay("popular")).unwrap();
        assert!(state.autoplay.enabled);
        assert_eq!(state.autoplay.strategy, "popular");
        assert_eq!(
            state.autoplay.fallback_playlist.as_deref(),
            Some("global_fallback")
        );
        assert_eq!(
            validate(&state, &autoplay("")),
            Err(EventError::Empty {
                field: "strategy".into()
            })
        );
    }

    #[test]
    fn simple_setters_and_session_end() {
        let mut state = state_with(3);
        state.history_max = 9;
        for event in [
            Event::VolumeSet { volume: 0 },
            Event::PausedSet { paused: true },
            Event::LoopModeSet {
                mode: LoopMode::Queue,
            },
            Event::ShuffleSet {
                enabled: true,
                seed: Some(42),
            },
            Event::TrackStarted,
        ] {
            apply_checked(&mut state, &event).unwrap();
        }
        assert_eq!(state.player.volume, 0);
        assert!(state.player.paused);
        assert_eq!(state.queue.loop_mode, LoopMode::Queue);
        assert!(state.queue.shuffle);
        assert_eq!(state.queue.shuffle_seed, Some(42));
        // Shuffle is recorded, never enacted.
        assert_eq!(titles(&state.queue.upcoming), ["Track 1", "Track 2"]);
        apply_checked(&mut state, &Event::SessionEnded).unwrap();
        assert_eq!(state, State::new(9));
    }

    fn restored(state: &State, label: Option<&str>) -> Event {
        Event::StateRestored {
            state: Box::new(state.clone()),
            from_seq: Some(3),
            label: label.map(str::to_owned),
        }
    }

    #[test]
    fn state_restored_replaces_the_whole_state_but_keeps_history_max() {
        let mut past = state_with(3);
        apply_checked(&mut past, &Event::TrackStarted).unwrap();
        apply_checked(&mut past, &Event::VolumeSet { volume: 40 }).unwrap();
        past.history_max = 7; // recorded in the event, not adopted
        let mut now = state_with(5);
        now.history_max = 9;
        for _ in 0..3 {
            apply_checked(&mut now, &Event::TrackStarted).unwrap();
        }
        let event = restored(&past, Some("before-deploy"));
        apply_checked(&mut now, &event).unwrap();
        let expected = State {
            history_max: 9,
            ..past.clone()
        };
        assert_eq!(now, expected);
        assert_eq!(now.check_invariants(), Ok(()));
        // apply_owned gives the same state.
        let mut owned = state_with(1);
        owned.history_max = 9;
        apply_owned(&mut owned, event);
        assert_eq!(owned, expected);
        // The empty state restores too (no label, no seq).
        let bare = Event::StateRestored {
            state: Box::new(State::new(9)),
            from_seq: None,
            label: None,
        };
        apply_checked(&mut now, &bare).unwrap();
        assert_eq!(now, State::new(9));
    }

    #[test]
    fn state_restored_must_hold_a_valid_state() {
        let guild = State::new(2);
        let mut loud = State::new(2);
        loud.player.volume = 1001;
        let mut long_history = state_with(3);
        for _ in 0..3 {
            apply_checked(&mut long_history, &Event::TrackStarted).unwrap();
        }
        assert_eq!(long_history.queue.history.len(), 2);
        let mut three = long_history.clone();
        three.history_max = 50;
        three.queue.history.insert(
            0,
            QueueEntry {
                id: 0,
                track: track(9),
            },
        );
        let mut twice = state_with(2);
        twice.queue.upcoming[1].id = twice.queue.upcoming[0].id;
        let mut ahead = state_with(2);
        ahead.next_entry_id = 2;
        let mut bad_title = state_with(1);
        bad_title.queue.upcoming[0].track = Track::new("QAAA", "");
        for (state, label, needle) in [
            (&loud, None, "volume 1001"),
            (&three, None, "the guild keeps at most 2"),
            (&twice, None, "appears twice"),
            (&ahead, None, "not below next_entry_id"),
            (&bad_title, None, "queue.upcoming[0].track.title"),
        ] {
            let error = validate(&guild, &restored(state, label)).unwrap_err();
            assert!(
                matches!(error, EventError::InvalidState { .. }),
                "{error:?}"
            );
            assert!(error.to_string().contains(needle), "{error}");
        }
        assert_eq!(
            validate(&guild, &restored(&State::new(2), Some(""))),
            Err(EventError::Empty {
                field: "label".into()
            })
        );
        let long = "l".repeat(NAME_LEN_MAX + 1);
        assert!(matches!(
            validate(&guild, &restored(&State::new(2), Some(&long))),
            Err(EventError::TooLong { .. })
        ));
        assert_eq!(
            validate(&guild, &restored(&long_history, Some("ok"))),
            Ok(())
        );
    }

    #[test]
    fn apply_is_total_on_invalid_events() {
        let mut state = state_with(2);
        for event in [
            Event::TrackRemoved { index: u32::MAX },
            Event::TrackMoved { from: 5, to: 0 },
            Event::TrackMoved { from: 0, to: 5 },
            Event::TracksEnqueued {
                tracks: vec![track(1)],
                index: Some(u32::MAX),
            },
            Event::TracksEnqueued {
                tracks: vec![],
                index: Some(7),
            },
            Event::QueueCleared,
            Event::TrackStarted,
            Event::TrackEnded {
                reason: EndReason::LoadFailed,
            },
            Event::TrackEnded {
                reason: EndReason::Stopped,
            },
            Event::Seeked {
                position_ms: u64::MAX,
                entry_id: None,
            },
            Event::VolumeSet { volume: u16::MAX },
        ] {
            apply(&mut state, &event);
        }
        state.next_entry_id = u64::MAX;
        apply(&mut state, &enqueue(3));
        assert_eq!(state.next_entry_id, u64::MAX);
        state.history_max = 0;
        apply(&mut state, &Event::TrackStarted);
        apply(
            &mut state,
            &Event::TrackEnded {
                reason: EndReason::Finished,
            },
        );
    }
}

//! [`events_for_state`]: the ordinary events that rebuild a given state from an empty one.
//!
//! Importing a foreign snapshot (a Sonora file) must not invent a second way of changing a
//! guild: the journal only ever holds contract §1 events, so an imported state is written as
//! the events a bot would have sent to reach it. Folding them from [`State::new`] with the
//! state's `history_max` gives the state back, up to the queue entry ids (see below).
//!
//! # The decomposition, in order
//!
//! 0. `guild_meta_set` when the guild has a `meta`;
//! 1. `voice_connected` when the player has voice data;
//! 2. `volume_set` when the volume is not [`VOLUME_DEFAULT`];
//! 3. the queue, in play order: history and the current track are enqueued (in chunks, see
//!    [`ENQUEUE_BYTES_MAX`]) and started one by one with `track_started` — each start moves the
//!    previous current track to the history, which the fold appends to, oldest first. A state
//!    with history but no current track ends with `track_ended` (`finished`: `stopped` would
//!    also clear the upcoming queue). The upcoming tracks are then enqueued after them;
//! 4. the position: `position_reported` when the state holds an anchor (a report to
//!    extrapolate from), else `seeked` when it is not 0 (only with a current track; the fold
//!    keeps no position without one, except a reported one);
//! 5. `paused_set`, `filters_set`, `autoplay_set` when they differ from the defaults;
//! 6. `loop_mode_set` and `shuffle_set` last: the fold records them and never enacts them, so
//!    their place does not matter to the fold, but a bot replaying the log would otherwise loop
//!    or shuffle while the queue is being rebuilt.
//!
//! # Entry ids
//!
//! Queue entry ids are internal (contract §1 does not expose them): the rebuilt state numbers
//! its entries `1..=n` in play order (history oldest first, current, upcoming) and its
//! `next_entry_id` is `n + 1`, whatever ids the original state had. `stale_reports` (a
//! counter of ignored reports, not something a bot sends) starts again at 0. [`renumbered`] gives that
//! normal form, so `fold(events_for_state(s)) == renumbered(s)` for every state the fold can
//! reach, and `== s` for a state already in normal form (every state Sonora import builds).

use super::limits::TRACKS_PER_EVENT_MAX;
use super::{
    Autoplay, EndReason, Event, Filters, LoopMode, QueueEntry, State, Track, VOLUME_DEFAULT,
};

/// The most (estimated) bytes of tracks one `tracks_enqueued` of [`events_for_state`] carries:
/// a quarter of a frame's payload limit, so that even the largest legal tracks fit a frame.
pub const ENQUEUE_BYTES_MAX: usize = 4 << 20;

/// An upper estimate of a track's encoded size: its strings plus field overhead.
fn track_bytes(track: &Track) -> usize {
    track.encoded_len()
        + track.title().len()
        + track.author().len()
        + track.uri().map_or(0, str::len)
        + track.identifier().len()
        + track.source().map_or(0, str::len)
        + track.extra_len()
        + 64
}

/// Splits `tracks` into `tracks_enqueued` events of at most [`TRACKS_PER_EVENT_MAX`] tracks and
/// about [`ENQUEUE_BYTES_MAX`] bytes each (at least one track each), and calls `each` with
/// every event and how many tracks it holds.
fn enqueue_chunks<'a>(tracks: impl Iterator<Item = &'a Track>, mut each: impl FnMut(Event, usize)) {
    let mut chunk: Vec<Track> = Vec::new();
    let mut bytes = 0;
    let mut flush = |chunk: &mut Vec<Track>, bytes: &mut usize| {
        if !chunk.is_empty() {
            let count = chunk.len();
            each(
                Event::TracksEnqueued {
                    tracks: std::mem::take(chunk),
                    index: None,
                },
                count,
            );
            *bytes = 0;
        }
    };
    for track in tracks {
        let size = track_bytes(track);
        if chunk.len() >= TRACKS_PER_EVENT_MAX
            || (!chunk.is_empty() && bytes + size > ENQUEUE_BYTES_MAX)
        {
            flush(&mut chunk, &mut bytes);
        }
        bytes += size;
        chunk.push(track.clone());
    }
    flush(&mut chunk, &mut bytes);
}

/// The contract §1 events that rebuild `state` when folded from `State::new(state.history_max)`
/// (see the module docs for the order and for entry ids). Empty for the empty state.
///
/// The result applies event by event ([`crate::session::validate`] accepts each) for every
/// state that [`State::check_invariants`] accepts and whose position is not past the end of
/// its current track; the caller should still validate them, as the journal does.
pub fn events_for_state(state: &State) -> Vec<Event> {
    let mut events = Vec::new();
    if !state.meta.is_empty() {
        events.push(Event::GuildMetaSet {
            meta: state.meta.clone(),
        });
    }
    let player = &state.player;
    if let Some(voice) = &player.voice {
        events.push(Event::VoiceConnected {
            session_id: voice.session_id.clone(),
            channel_id: voice.channel_id.clone(),
            endpoint: voice.endpoint.clone(),
            token: voice.token.clone(),
        });
    }
    if player.volume != VOLUME_DEFAULT {
        events.push(Event::VolumeSet {
            volume: player.volume,
        });
    }
    let queue = &state.queue;
    let played = queue
        .history
        .iter()
        .chain(queue.current.iter())
        .map(|entry| &entry.track);
    enqueue_chunks(played, |event, count| {
        events.push(event);
        events.extend(std::iter::repeat_n(Event::TrackStarted, count));
    });
    if queue.current.is_none() && !queue.history.is_empty() {
        events.push(Event::TrackEnded {
            reason: EndReason::Finished,
        });
    }
    enqueue_chunks(
        queue.upcoming.iter().map(|entry| &entry.track),
        |event, _| events.push(event),
    );
    match player.position_anchor_unix_ms {
        Some(at_unix_ms) => events.push(Event::PositionReported {
            position_ms: player.position_ms,
            at_unix_ms,
            entry_id: None,
        }),
        None if player.position_ms != 0 => events.push(Event::Seeked {
            position_ms: player.position_ms,
            entry_id: None,
        }),
        None => {}
    }
    if player.paused {
        events.push(Event::PausedSet { paused: true });
    }
    if state.filters != Filters::default() {
        events.push(Event::FiltersSet {
            active: state.filters.active.clone(),
            config: Box::new(state.filters.config.clone()),
        });
    }
    if state.autoplay != Autoplay::default() {
        let autoplay = &state.autoplay;
        events.push(Event::AutoplaySet {
            enabled: autoplay.enabled,
            strategy: autoplay.strategy.clone(),
            fallback_playlist: autoplay.fallback_playlist.clone(),
            max_history: autoplay.max_history,
            smart_shuffle: autoplay.smart_shuffle,
        });
    }
    if queue.loop_mode != LoopMode::None {
        events.push(Event::LoopModeSet {
            mode: queue.loop_mode,
        });
    }
    if queue.shuffle || queue.shuffle_seed.is_some() {
        events.push(Event::ShuffleSet {
            enabled: queue.shuffle,
            seed: queue.shuffle_seed,
        });
    }
    events
}

/// `state` with its queue entries numbered `1..=n` in play order and `next_entry_id = n + 1`:
/// the normal form [`events_for_state`] rebuilds (entry ids are internal, not contract state).
pub fn renumbered(state: &State) -> State {
    let mut out = state.clone();
    let mut next: u64 = 1;
    let mut renumber = |entry: &mut QueueEntry| {
        entry.id = next;
        next = next.saturating_add(1);
    };
    out.queue.history.iter_mut().for_each(&mut renumber);
    out.queue.current.iter_mut().for_each(&mut renumber);
    out.queue.upcoming.iter_mut().for_each(&mut renumber);
    out.next_entry_id = next;
    out.stale_reports = 0;
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{apply_checked, arbitrary_event, Rng, Snowflake, Voice, Workload};
    use proptest::prelude::*;

    /// Folds `events` from the empty state with `history_max`, every event validated.
    fn fold(history_max: u32, events: &[Event]) -> State {
        let mut state = State::new(history_max);
        for (i, event) in events.iter().enumerate() {
            if let Err(error) = apply_checked(&mut state, event) {
                panic!("event {i} ({}) rejected: {error}", event.kind());
            }
        }
        state
    }

    fn check(state: &State) {
        let events = events_for_state(state);
        assert_eq!(fold(state.history_max, &events), renumbered(state));
    }

    #[test]
    fn the_empty_state_needs_no_event() {
        assert!(events_for_state(&State::new(50)).is_empty());
    }

    #[test]
    fn history_without_a_current_track_ends_the_last_one() {
        let mut state = State::new(3);
        let tracks: Vec<Track> = (0..5)
            .map(|i| Track::new(format!("e{i}"), format!("t{i}")))
            .collect();
        apply_checked(
            &mut state,
            &Event::TracksEnqueued {
                tracks,
                index: None,
            },
        )
        .unwrap();
        for _ in 0..4 {
            apply_checked(&mut state, &Event::TrackStarted).unwrap();
        }
        apply_checked(
            &mut state,
            &Event::TrackEnded {
                reason: EndReason::Skipped,
            },
        )
        .unwrap();
        assert_eq!(state.queue.history.len(), 3);
        assert!(state.queue.current.is_none());
        let events = events_for_state(&state);
        assert!(events.contains(&Event::TrackEnded {
            reason: EndReason::Finished
        }));
        check(&state);
    }

    #[test]
    fn large_queues_are_enqueued_in_bounded_chunks() {
        let mut state = State::new(50);
        let filler = "x".repeat(crate::session::ENCODED_LEN_MAX - 5);
        let tracks: Vec<Track> = (0..600)
            .map(|i| Track::new(format!("{i:05}{filler}"), format!("t{i}")))
            .collect();
        for chunk in tracks.chunks(TRACKS_PER_EVENT_MAX) {
            apply_checked(
                &mut state,
                &Event::TracksEnqueued {
                    tracks: chunk.to_vec(),
                    index: None,
                },
            )
            .unwrap();
        }
        let events = events_for_state(&state);
        let enqueues: Vec<usize> = events
            .iter()
            .filter_map(|e| match e {
                Event::TracksEnqueued { tracks, .. } => Some(tracks.len()),
                _ => None,
            })
            .collect();
        assert!(enqueues.len() > 1, "{enqueues:?}");
        assert_eq!(enqueues.iter().sum::<usize>(), 600);
        for event in &events {
            let mut payload = Vec::new();
            crate::format::encode_event(event, &mut payload);
            assert!(payload.len() <= ENQUEUE_BYTES_MAX + (64 << 10));
        }
        check(&state);
    }

    #[test]
    fn a_position_without_a_current_track_is_kept_as_a_report() {
        let mut state = State::new(50);
        apply_checked(
            &mut state,
            &Event::PositionReported {
                position_ms: 1234,
                at_unix_ms: 99,
                entry_id: None,
            },
        )
        .unwrap();
        state.player.voice = Some(Voice {
            session_id: "s".into(),
            channel_id: Snowflake::Text("0012".into()),
            endpoint: Some("e".into()),
            token: None,
        });
        check(&state);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// States a realistic bot reaches.
        #[test]
        fn rebuilds_workload_states(seed in any::<u64>(), steps in 0usize..400, history_max in 0u32..60) {
            let mut bot = Workload::new(seed);
            let mut state = State::new(history_max);
            for _ in 0..steps {
                let event = bot.next_event(&state);
                let _ = apply_checked(&mut state, &event);
            }
            let events = events_for_state(&state);
            prop_assert_eq!(fold(history_max, &events), renumbered(&state));
        }

        /// States reached by arbitrary (valid) events, edge values included.
        #[test]
        fn rebuilds_arbitrary_states(seed in any::<u64>(), steps in 0usize..300, history_max in 0u32..8) {
            let mut rng = Rng::new(seed);
            let mut state = State::new(history_max);
            for _ in 0..steps {
                let event = arbitrary_event(&mut rng, &state);
                let _ = apply_checked(&mut state, &event);
            }
            prop_assert!(state.check_invariants().is_ok());
            let events = events_for_state(&state);
            prop_assert_eq!(fold(history_max, &events), renumbered(&state));
        }
    }
}

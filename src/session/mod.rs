//! The music domain: a guild's session state, the events that change it, and the pure fold.
//!
//! Every player or queue mutation of a music bot is an [`Event`] (contract §1: JSON objects tagged
//! by `"type"`). A guild's [`State`] is the fold of its events from [`State::new`]:
//!
//! ```
//! # use reprise::session::{apply_checked, Event, State};
//! let mut state = State::new(50);
//! for line in [
//!     r#"{"type":"tracks_enqueued","tracks":[{"encoded":"QAAAjQIAJVJpY2sg","title":"Never Gonna Give You Up"}]}"#,
//!     r#"{"type":"track_started"}"#,
//!     r#"{"type":"volume_set","volume":80}"#,
//! ] {
//!     let event = Event::from_json(line)?;
//!     apply_checked(&mut state, &event)?;
//! }
//! assert_eq!(state.queue.current.as_ref().map(|e| e.track.title()), Some("Never Gonna Give You Up"));
//! assert!(apply_checked(&mut state, &Event::VolumeSet { volume: 1001 }).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Codemap:
//! - `track.rs` — [`Track`], the Lavalink track with its optional metadata; `track/extra.rs`
//!   its bot-owned fields (artwork_url, isrc, plugin_info, user_data); `track/shared.rs`
//!   replay's shared-buffer decoding of `tracks_enqueued`; `track/blob_parts.rs` a Lavalink
//!   blob stored as what it holds besides the track's fields.
//! - `lavalink_blob.rs` — [`LavalinkBlob`], Lavalink's binary track encoding (versions 2
//!   and 3) decoded and encoded exactly.
//! - `event.rs` — [`Event`] and its exact JSON form; [`EventParseError`]; `event/codec.rs` its
//!   binary form (tags that only ever grow).
//! - `filters.rs` — [`FilterConfig`], Lavalink v4 filters and their ranges.
//! - `state.rs` — [`State`] and its parts; `queue_columns.rs` and `track/columns.rs` its queue
//!   column by column (state layout 3, the blobs apart).
//! - `fold.rs` — [`validate`], [`apply`], [`apply_checked`]; [`EventError`].
//! - `decompose.rs` — [`events_for_state`]: the events that rebuild a given state.
//! - `limits.rs` — every bound, as a named constant.
//! - `workload.rs` — `Workload`, a deterministic realistic bot, and `arbitrary_event` (feature
//!   `testing`: for tests, fuzz targets, the demo and the bench).; `workload/bot_data.rs` the
//!   guild `meta` and track user data it keeps.
//!
//! Invariants, stated as absences: nothing here does I/O, reads a clock or draws randomness
//! outside `Rng`; [`apply`] never panics; a state reached by validated events never breaks
//! [`State::check_invariants`]. This module depends on nothing else in the crate.

mod decompose;
mod event;
mod filters;
mod fold;
pub mod lavalink_blob;
pub mod limits;
mod queue_columns;
mod state;
mod track;
#[cfg(any(test, feature = "testing"))]
mod workload;

pub use decompose::{events_for_state, renumbered, ENQUEUE_BYTES_MAX};
pub use event::{EndReason, Event, EventParseError, LoopMode, Snowflake};
pub use filters::{
    ChannelMix, Distortion, EqualizerBand, FilterConfig, Karaoke, LowPass, Rotation, Timescale,
    Tremolo, Vibrato,
};
pub use fold::{apply, apply_checked, apply_owned, validate, EventError};
pub use lavalink_blob::{LavalinkBlob, LavalinkBlobError};
pub use limits::{
    ENCODED_LEN_MAX, EQUALIZER_BAND_COUNT, FILTER_NAMES_MAX, HISTORY_MAX_DEFAULT, META_BYTES_MAX,
    NAME_LEN_MAX, QUEUE_LEN_MAX, SNOWFLAKE_DIGITS_MAX, TEXT_LEN_MAX, TRACKS_PER_EVENT_MAX,
    USER_DATA_BYTES_MAX, VOLUME_MAX,
};
pub use state::{
    Autoplay, Filters, InvariantError, Meta, Player, Queue, QueueEntry, State, Voice,
    AUTOPLAY_STRATEGY_DEFAULT, STATE_LAYOUT_MARK, VOLUME_DEFAULT,
};
pub(crate) use track::decode_enqueued_shared;
pub use track::{LavalinkTrack, LavalinkTrackInfo, Track, TrackFields};
#[cfg(any(test, feature = "testing"))]
#[doc(hidden)]
pub use workload::{
    arbitrary_event, lavalink_blob_of, lavalink_encoded, track, Rng, Workload, STREAM_LENGTH_MS,
};

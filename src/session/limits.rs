//! Every bound the session fold enforces, as a named constant.
//!
//! Each limit exists so that one event, or one guild's state, has a size known in advance: the
//! journal can bound a frame before it allocates, a snapshot of the largest legal state has a known
//! size, and a hostile or buggy client cannot grow a guild without limit. Names put the qualifier
//! last (`QUEUE_LEN_MAX`, not `MAX_QUEUE_LEN`).

/// How many finished entries `queue.history` keeps when no other value is configured (the oldest
/// are dropped first). Sonora keeps the same 50.
pub const HISTORY_MAX_DEFAULT: u32 = 50;

/// The most entries `queue.upcoming` may hold. A `tracks_enqueued` that would grow the upcoming
/// queue past this is rejected as a whole.
pub const QUEUE_LEN_MAX: usize = 100_000;

/// The most tracks one `tracks_enqueued` event may carry (a whole playlist is one event).
pub const TRACKS_PER_EVENT_MAX: usize = 10_000;

/// The longest `encoded` Lavalink track blob accepted, in bytes. Real blobs are 100–1000 bytes;
/// this leaves room for long titles and URLs inside the blob.
pub const ENCODED_LEN_MAX: usize = 16 * 1024;

/// The longest free-text field accepted, in bytes: track `title`, `author`, `uri`,
/// `identifier`, `source`, voice `endpoint` and `token`, autoplay `fallback_playlist`.
pub const TEXT_LEN_MAX: usize = 2 * 1024;

/// The longest short name accepted, in bytes: an active filter name, an autoplay `strategy`, a
/// voice `session_id`.
pub const NAME_LEN_MAX: usize = 128;

/// The most names `filters_set.active` may list.
pub const FILTER_NAMES_MAX: usize = 32;

/// The highest player volume (Lavalink's player volume range is `0..=1000`).
pub const VOLUME_MAX: u16 = 1000;

/// How many equalizer bands Lavalink has: bands are numbered `0..EQUALIZER_BAND_COUNT`, and a
/// `filters_set` lists each at most once.
pub const EQUALIZER_BAND_COUNT: usize = 15;

/// The longest decimal snowflake (`channel_id` given as a JSON string), in digits: `u64::MAX`
/// has 20.
pub const SNOWFLAKE_DIGITS_MAX: usize = 20;

/// The most bytes of bot-owned data one track may carry: its `plugin_info` and `user_data`
/// together, counted as compact JSON. Room for a requester, a playlist id and Lavalink
/// plugin fields; over it the event is refused with
/// [`crate::session::EventError::DataTooLarge`] and nothing is written.
pub const USER_DATA_BYTES_MAX: usize = 8 * 1024;

/// The largest guild `meta` accepted, in bytes of its compact JSON text (`guild_meta_set.meta`,
/// `state.meta`). Room for a text channel, a 24/7 flag, a DJ role and a few dozen settings; a
/// bigger object is refused with [`crate::session::EventError::DataTooLarge`] and nothing is
/// written.
pub const META_BYTES_MAX: usize = 16 * 1024;

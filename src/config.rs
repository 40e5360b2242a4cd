//! Journal configuration. Every limit is a named constant with its reason.

use crate::session::HISTORY_MAX_DEFAULT;

/// Default size at which the active segment is sealed and a new one started.
///
/// 8 MiB keeps a sealed segment small enough to map and scan in a few milliseconds and large
/// enough that an active guild rolls rarely.
pub const SEGMENT_BYTES_MAX_DEFAULT: u64 = 8 << 20;

/// Smallest accepted segment size limit (a segment always holds at least one record).
pub const SEGMENT_BYTES_MAX_MIN: u64 = 4 << 10;

/// Largest accepted segment size limit; also bounds how much of an active segment is read.
pub const SEGMENT_BYTES_MAX_MAX: u64 = 1 << 30;

/// Default number of events after which a guild is snapshotted automatically.
pub const SNAPSHOT_EVERY_EVENTS_DEFAULT: u64 = 10_000;

/// Default number of log bytes after which a guild is snapshotted automatically.
pub const SNAPSHOT_EVERY_BYTES_DEFAULT: u64 = 4 << 20;

/// Default number of snapshots kept per guild (with the log needed to replay from the oldest).
///
/// Two lets recovery fall back to the previous snapshot when the newest is damaged.
pub const SNAPSHOTS_RETAINED_DEFAULT: u32 = 2;

/// Default size at which the commit logs are retired (guild segments fsynced, the log
/// dropped and a new one started).
pub const COMMIT_BYTES_MAX_DEFAULT: u64 = 64 << 20;

/// Default [`Config::commit_prealloc_bytes`]: the commit log is extended 1 MiB at a time
/// (after smaller first chunks: 64 KiB, doubling).
///
/// An extension is a change of the file's size, which the next `fdatasync` commits to the
/// file system's journal; inside the extension an acknowledged append is an overwrite whose
/// `fdatasync` flushes data only (DESIGN.md, "The cost of an acknowledged append"). 1 MiB is
/// one extension per several thousand small events, and at most 1 MiB of zeros for recovery
/// to read past the end of a commit log.
pub const COMMIT_PREALLOC_BYTES_DEFAULT: u64 = 1 << 20;

/// How long and how many events a [`Durability::Batched`] append may wait for its group commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BatchPolicy {
    /// The longest an acknowledgement waits for more events to share its fsync.
    pub delay_max: std::time::Duration,
    /// A group commit happens as soon as this many batched events wait.
    pub events_max: u32,
}

impl BatchPolicy {
    /// 2 ms or 256 events: a fraction of one fsync of delay, most of the throughput.
    pub const DEFAULT: BatchPolicy = BatchPolicy {
        delay_max: std::time::Duration::from_millis(2),
        events_max: 256,
    };
}

impl Default for BatchPolicy {
    fn default() -> Self {
        BatchPolicy::DEFAULT
    }
}

/// Default snapshot interval of the async runtime (Sonora's default: 5 minutes).
pub const SNAPSHOT_INTERVAL_DEFAULT: std::time::Duration = std::time::Duration::from_secs(300);

/// Default cap on open guild segment files (well under the usual 1024 descriptors per process).
pub const OPEN_FILES_MAX_DEFAULT: usize = 256;

/// Default capacity of the async runtime's command channel.
pub const CHANNEL_CAPACITY_DEFAULT: usize = 1024;

/// When an appended event counts as acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Durability {
    /// The shared commit log is fsynced before the append is acknowledged: the event survives
    /// a power loss. Concurrent `Always` appends share one fsync.
    #[default]
    Always,
    /// Group commit with a bounded wait: the acknowledgement comes with the next fsync of the
    /// commit log, which happens within [`BatchPolicy::delay_max`] or once
    /// [`BatchPolicy::events_max`] events wait (the async runtime). The synchronous
    /// [`crate::Journal`] makes them durable at its next [`crate::Journal::sync`].
    Batched(BatchPolicy),
    /// Acknowledged once written (buffered): survives a process kill once written to the OS,
    /// not a power loss (until a later sync).
    None,
    /// As `Always`, and acknowledged only once the event is stored in the remote object store
    /// too: it survives the loss of the whole machine (CONTRACT §3). Needs a runtime opened
    /// with a remote (`Reprise::open_with_remote`, feature `remote`); concurrent `Remote` appends of
    /// every guild share one object (group commit to the store). The synchronous
    /// [`crate::Journal`] has no store: it makes the event durable as `Always` and the caller
    /// ships it (`remote::Remote::ship_events`, as `reprise apply` does).
    Remote,
}

impl Durability {
    /// `Batched` with the default policy.
    pub const BATCHED: Durability = Durability::Batched(BatchPolicy::DEFAULT);

    /// The CLI spelling (`always`, `batched`, `none`, `remote`).
    pub fn as_str(self) -> &'static str {
        match self {
            Durability::Always => "always",
            Durability::Batched(_) => "batched",
            Durability::None => "none",
            Durability::Remote => "remote",
        }
    }
}

/// How a journal is configured. Build with [`Config::default`] and the `with_*` methods.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Seal the active segment once it reaches this many bytes.
    pub segment_bytes_max: u64,
    /// Snapshot a guild automatically after this many events (`None`: never by count).
    pub snapshot_every_events: Option<u64>,
    /// Snapshot a guild automatically after this many log bytes (`None`: never by size).
    pub snapshot_every_bytes: Option<u64>,
    /// Snapshots kept per guild; the log back to the oldest kept snapshot is kept too, so
    /// `state_at` can reach that far. At least 1.
    pub snapshots_retained: u32,
    /// History length for guilds created by this journal (a fold parameter, recorded in every
    /// segment header and snapshot so replay never depends on the current configuration).
    pub history_max: u32,
    /// Checkpoint the shared commit log once it holds this many bytes.
    pub commit_bytes_max: u64,
    /// Extend the commit log with zeros this many bytes at a time ahead of its records, so
    /// that an acknowledged append does not change the file's size (0: no preallocation, the
    /// file grows with every write, as before). A new commit log's first chunks are smaller
    /// (a sixteenth of this, 4 KiB ..= 64 KiB, doubling up to this), so that a short-lived
    /// writer's first `fdatasync` does not flush a whole chunk of zeros.
    pub commit_prealloc_bytes: u64,
    /// Async runtime: snapshot every guild with new events at least this often (Sonora's
    /// `auto_snapshot_interval`; `None`: never by time). Idle guilds are never rewritten.
    pub snapshot_interval: Option<std::time::Duration>,
    /// Async runtime: snapshot every guild with events since its last snapshot at shutdown.
    pub snapshot_on_shutdown: bool,
    /// Async runtime: capacity of the command channel (back pressure: a full channel makes
    /// callers wait).
    pub channel_capacity: usize,
    /// Async runtime: the durability of `append` when neither the call nor the guild sets one.
    pub durability: Durability,
    /// Snapshots older than this are removed (with the log they make obsolete) even when fewer
    /// than [`Config::snapshots_retained`] remain; the newest snapshot is always kept.
    pub snapshot_age_max: Option<std::time::Duration>,
    /// Most guild segments kept open at once (least recently used ones are closed first; a
    /// closed segment costs nothing but a reopen at its next flush).
    pub open_files_max: usize,
    /// Encryption at rest: every file written is sealed with the keyring's current key, and
    /// files sealed with any of its keys can be read (`None`: files are written in the clear,
    /// and an encrypted journal cannot be opened). See [`crate::crypto`].
    pub keys: Option<crate::crypto::Keyring>,
    /// Async runtime with a remote: ship every guild's durable events to the store at least
    /// this often (the remote lags the local log by at most this much with `always`,
    /// `batched` and `none`; `remote` appends ship at once).
    pub ship_interval: std::time::Duration,
    /// How long the copies a remote claim set aside (`remote/superseded/`) are kept: every
    /// claim that sets one aside, and `reprise cleanup`, remove those past this rule.
    pub superseded_retention: SupersededRetention,
}

/// Which superseded copies are kept. A remote claim that takes a guild back from a newer
/// owner moves this directory's own copy of it to
/// `remote/superseded/<guild>-<epoch>-<unix_ms>/` (it may hold events acknowledged only
/// locally, which the store's history replaced). Nothing reads such a copy; it is there for
/// an operator. A copy is removed when it was set aside longer than `age_max` ago, or when
/// its guild has `per_guild_max` newer copies (the rule is
/// `journal::superseded_to_remove`, one pure function).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SupersededRetention {
    /// Copies set aside longer ago than this are removed (`None`: never by age).
    pub age_max: Option<std::time::Duration>,
    /// The newest copies kept per guild (at least 1); older ones are removed (`usize::MAX`:
    /// all).
    pub per_guild_max: usize,
}

/// Default [`SupersededRetention::age_max`]: 7 days.
pub const SUPERSEDED_AGE_MAX_DEFAULT: std::time::Duration =
    std::time::Duration::from_secs(7 * 24 * 60 * 60);
/// Default [`SupersededRetention::per_guild_max`].
pub const SUPERSEDED_PER_GUILD_MAX_DEFAULT: usize = 3;

impl Default for SupersededRetention {
    /// Kept 7 days, at most 3 per guild.
    fn default() -> Self {
        SupersededRetention {
            age_max: Some(SUPERSEDED_AGE_MAX_DEFAULT),
            per_guild_max: SUPERSEDED_PER_GUILD_MAX_DEFAULT,
        }
    }
}

impl SupersededRetention {
    /// Keeps every copy (nothing is ever removed).
    pub fn keep_all() -> Self {
        SupersededRetention {
            age_max: None,
            per_guild_max: usize::MAX,
        }
    }
}

/// Default [`Config::ship_interval`].
pub const SHIP_INTERVAL_DEFAULT: std::time::Duration = std::time::Duration::from_secs(1);

impl Default for Config {
    fn default() -> Self {
        Config {
            segment_bytes_max: SEGMENT_BYTES_MAX_DEFAULT,
            snapshot_every_events: Some(SNAPSHOT_EVERY_EVENTS_DEFAULT),
            snapshot_every_bytes: Some(SNAPSHOT_EVERY_BYTES_DEFAULT),
            snapshots_retained: SNAPSHOTS_RETAINED_DEFAULT,
            history_max: HISTORY_MAX_DEFAULT,
            commit_bytes_max: COMMIT_BYTES_MAX_DEFAULT,
            commit_prealloc_bytes: COMMIT_PREALLOC_BYTES_DEFAULT,
            snapshot_interval: Some(SNAPSHOT_INTERVAL_DEFAULT),
            snapshot_on_shutdown: true,
            channel_capacity: CHANNEL_CAPACITY_DEFAULT,
            durability: Durability::Always,
            open_files_max: OPEN_FILES_MAX_DEFAULT,
            snapshot_age_max: None,
            keys: None,
            ship_interval: SHIP_INTERVAL_DEFAULT,
            superseded_retention: SupersededRetention::default(),
        }
    }
}

impl Config {
    /// Sets [`Config::keys`] (encryption at rest).
    pub fn with_keys(mut self, keys: crate::crypto::Keyring) -> Self {
        self.keys = Some(keys);
        self
    }

    /// Sets [`Config::segment_bytes_max`], clamped to
    /// [`SEGMENT_BYTES_MAX_MIN`]..=[`SEGMENT_BYTES_MAX_MAX`].
    pub fn with_segment_bytes_max(mut self, bytes: u64) -> Self {
        self.segment_bytes_max = bytes.clamp(SEGMENT_BYTES_MAX_MIN, SEGMENT_BYTES_MAX_MAX);
        self
    }

    /// Sets the automatic snapshot policy (`None` disables a trigger).
    pub fn with_snapshot_every(mut self, events: Option<u64>, bytes: Option<u64>) -> Self {
        self.snapshot_every_events = events.filter(|n| *n > 0);
        self.snapshot_every_bytes = bytes.filter(|n| *n > 0);
        self
    }

    /// Disables automatic snapshots (only [`crate::Journal::snapshot_now`] writes them).
    pub fn without_auto_snapshots(self) -> Self {
        self.with_snapshot_every(None, None)
    }

    /// Sets [`Config::snapshots_retained`] (at least 1).
    pub fn with_snapshots_retained(mut self, count: u32) -> Self {
        self.snapshots_retained = count.max(1);
        self
    }

    /// Sets [`Config::commit_bytes_max`] (at least 64 KiB).
    pub fn with_commit_bytes_max(mut self, bytes: u64) -> Self {
        self.commit_bytes_max = bytes.max(64 << 10);
        self
    }

    /// Sets [`Config::commit_prealloc_bytes`] (0 turns preallocation off; otherwise at least
    /// 4 KiB, at most 64 MiB).
    pub fn with_commit_prealloc_bytes(mut self, bytes: u64) -> Self {
        self.commit_prealloc_bytes = if bytes == 0 {
            0
        } else {
            bytes.clamp(4 << 10, 64 << 20)
        };
        self
    }

    /// Sets [`Config::ship_interval`] (at least 1 ms).
    pub fn with_ship_interval(mut self, interval: std::time::Duration) -> Self {
        self.ship_interval = interval.max(std::time::Duration::from_millis(1));
        self
    }

    /// Sets [`Config::snapshot_interval`] (`None`: no time-based snapshots).
    pub fn with_snapshot_interval(mut self, interval: Option<std::time::Duration>) -> Self {
        self.snapshot_interval = interval;
        self
    }

    /// Sets [`Config::durability`], the runtime's default durability.
    pub fn with_durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Sets [`Config::snapshot_age_max`] (Sonora's cleanup of snapshots older than N days).
    pub fn with_snapshot_age_max(mut self, age: Option<std::time::Duration>) -> Self {
        self.snapshot_age_max = age;
        self
    }

    /// Sets [`Config::superseded_retention`].
    pub fn with_superseded_retention(mut self, retention: SupersededRetention) -> Self {
        self.superseded_retention = retention;
        self
    }

    /// Sets [`Config::open_files_max`] (at least 4).
    pub fn with_open_files_max(mut self, files: usize) -> Self {
        self.open_files_max = files.max(4);
        self
    }

    /// Sets [`Config::history_max`] for guilds created from now on.
    pub fn with_history_max(mut self, history_max: u32) -> Self {
        self.history_max = history_max;
        self
    }
}

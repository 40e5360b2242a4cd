//! Metrics (through the `metrics` facade: install any recorder, e.g. a Prometheus exporter, and
//! these appear) and the names of the `tracing` spans. Without a recorder or subscriber every
//! call is a no-op costing a few nanoseconds.
//!
//! | metric | kind | meaning |
//! |---|---|---|
//! | `reprise_appends_total` | counter | events appended |
//! | `reprise_append_bytes_total` | counter | frame bytes appended (each is written twice: segment and commit log) |
//! | `reprise_fsyncs_total` | counter | fsyncs of the commit log (group commits) |
//! | `reprise_fsync_seconds` | histogram | duration of one commit-log fsync |
//! | `reprise_batch_events` | histogram | appends acknowledged by one group commit (runtime) |
//! | `reprise_append_latency_seconds` | histogram | from `Reprise::append` to its acknowledgement |
//! | `reprise_recovery_seconds` | histogram | recovering one guild (scan, decide, replay) |
//! | `reprise_snapshots_total` | counter | snapshots written |
//! | `reprise_snapshot_seconds` | histogram | sealing, encoding and writing one snapshot |
//! | `reprise_snapshot_bytes` | histogram | size of a snapshot file |
//! | `reprise_checkpoints_total` | counter | commit-log retirements (commit logs dropped) |
//!
//! Spans: `reprise.recovery` (field `guild`), `reprise.snapshot` (`guild`, `seq`),
//! `reprise.checkpoint`.

/// Events appended.
pub const APPENDS_TOTAL: &str = "reprise_appends_total";
/// Frame bytes appended.
pub const APPEND_BYTES_TOTAL: &str = "reprise_append_bytes_total";
/// Commit-log fsyncs.
pub const FSYNCS_TOTAL: &str = "reprise_fsyncs_total";
/// Duration of a commit-log fsync.
pub const FSYNC_SECONDS: &str = "reprise_fsync_seconds";
/// Appends per group commit.
pub const BATCH_EVENTS: &str = "reprise_batch_events";
/// Append latency seen by the caller of the runtime.
pub const APPEND_LATENCY_SECONDS: &str = "reprise_append_latency_seconds";
/// Recovery time of one guild.
pub const RECOVERY_SECONDS: &str = "reprise_recovery_seconds";
/// Snapshots written.
pub const SNAPSHOTS_TOTAL: &str = "reprise_snapshots_total";
/// Time to write one snapshot.
pub const SNAPSHOT_SECONDS: &str = "reprise_snapshot_seconds";
/// Size of a snapshot file.
pub const SNAPSHOT_BYTES: &str = "reprise_snapshot_bytes";
/// Commit-log retirements ([`crate::Journal::retire_commit_logs`]).
pub const CHECKPOINTS_TOTAL: &str = "reprise_checkpoints_total";

//! reprise's in-process integration tests: one binary, one module per concern.
//!
//! Every test that spawns no process is here (`cargo test --release --test it <filter>`). The
//! black-box CLI tests (`tests/cli*.rs`, `tests/remote_cli.rs`, `tests/remote_s3.rs`,
//! `tests/restore_cli.rs`, `tests/sonora_cli.rs`) live in their own binaries: they fork
//! processes, and a forked child briefly shares this process's lock file descriptors, which
//! would make the lock tests here flaky.

/// The shared commit log: restoring lost segment tails, rotation, damage.
mod commit;
/// Shared helpers: event streams from the workload generator and their in-memory folds.
mod common;
/// Journals and snapshots written by earlier versions of the format still open.
mod compat;
/// Power loss at every storage operation on the simulated file system, fsync and disk-full faults.
mod crash;
/// Encryption at rest: nothing secret in the clear, wrong or missing keys, moved frames, rotation.
mod crypto;
/// Torn tails at every byte, zero-filled tails, single-byte flips in sealed files.
mod damage;
/// Disk full and failed fsyncs, case by case: typed errors, what keeps working, nothing
/// acknowledged lost.
mod faults;
/// Journal API behaviour: locking, rejection writes nothing, retention, events iteration.
mod journal;
/// Readers of a live journal on the simulated storage: a reader between any two writer
/// operations, a writer between any two reader operations (issue 18).
mod live;
/// proptest: recovered state equals the in-memory fold, across snapshots, segment sizes and
/// reopen points; `state_at` equals the fold of the prefix.
mod model;
/// Appends that do not wait for durability (`append_ordered`, `durable_up_to`), reopening
/// right after the last handle is dropped, the Lavalink restore on the async handle.
mod ordered;
/// A poisoned log is `Error::Poisoned` from every call, naming the failed operation; one
/// owner of what each durability level does.
mod poison;
/// Batch objects every reader accepts, however large a guild's segment is.
mod remote_batch;
/// Late uploads of a fenced owner: no claim builds on a snapshot past the fenced history.
mod remote_fence;
/// Remote retention of what a process wrote before it restarted, for guilds that moved.
mod remote_retention;
/// The async runtime with a remote: `remote` durability, background shipping, fencing, claims,
/// a store that goes down.
mod remote_runtime;
/// Seeded simulation of ownership handover through a faulty object store
/// (`REPRISE_REMOTE_SEEDS`, `REPRISE_REMOTE_SEED`).
mod remote_sim;
/// Restores as one event: safe restore with a fault or a crash at every operation, restore to a
/// seq or a time, named checkpoints and paced rollbacks.
mod restore;
/// Retention never removes what the newest valid state needs; one rule for both call sites.
mod retention;
/// The tokio runtime handle: group commit order, shutdown, dropped futures, subscriptions.
mod runtime;
/// The async handle under faults: all-or-nothing batches, power loss with group commit,
/// background snapshots and subscribers.
mod runtime_crash;
/// The whole journal API on the async handle, each method against its `Journal` counterpart;
/// a rollback of 200 guilds while 64 tasks append to them.
mod runtime_parity;
/// Snapshot bytes against the blobs they hold.
mod snapshot_size;
/// Checkpoints when `syncfs` is a no-op or drops the write-back silently: per-file fsyncs.
mod syncfs;
/// Taking a guild back from a newer owner, with a power loss at every storage operation.
mod takeback;
/// Holed torn writes: zero sectors before persisted data in unsynced tails and headers.
mod torn;
/// The bot's own data: guild `meta` and entry-bound reports through every path; caps.
mod user_data;

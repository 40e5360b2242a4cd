//! What a row of `reprise bench` is: its contract name, the per-operation latencies it
//! measured ([`Samples`], taken by [`measure`]), what its acknowledgement promises
//! ([`Guarantee`]) and so which reprise row it is compared with ([`ratio_baseline`]).
//! How rows print is in [`super::report`].

use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::Failure;

/// Row names, in the order of CONTRACT §4.
pub(super) const FLOOR: &str = "fdatasync floor";
pub(super) const FLOOR_APPEND: &str = "fdatasync append";
pub(super) const REPRISE_DURABLE_1: &str = "reprise durable 1 guild";
pub(super) const REPRISE_DURABLE_64: &str = "reprise durable 64 guilds";
pub(super) const REPRISE_NONE: &str = "reprise none";
pub(super) const SQLITE_FULL: &str = "sqlite WAL FULL";
pub(super) const SQLITE_NORMAL: &str = "sqlite WAL NORMAL";
pub(super) const SONORA_JSON: &str = "sonora JSON";
pub(super) const REPLAY: &str = "replay";
pub(super) const SNAPSHOT: &str = "snapshot";
/// The peer stores' rows (CONTRACT §4, added rows).
pub(super) const REDB_1: &str = "redb 1 guild";
pub(super) const FJALL_1: &str = "fjall 1 guild";
pub(super) const REDB_64: &str = "redb 64 guilds";
pub(super) const FJALL_64: &str = "fjall 64 guilds";
/// The scale rows (CONTRACT §4, added rows).
pub(super) const NEW_GUILD: &str = "new guild";
pub(super) const RECOVER_GUILDS: &str = "recover guilds";
/// The rows `--remote` adds after those (CONTRACT §5).
pub(super) const S3_PUT_FLOOR: &str = "s3 PUT floor";
pub(super) const REPRISE_REMOTE_64: &str = "reprise remote 64 guilds";
pub(super) const CLAIM: &str = "claim";

/// Per-operation latencies of one row, with the operation count and wall time they add up to.
#[derive(Clone, Debug, Default)]
pub(super) struct Samples {
    /// Latencies in nanoseconds; sorted by [`Samples::finish`].
    pub(super) latencies_ns: Vec<u64>,
    /// Operations completed (events, or events folded for `replay`).
    pub(super) ops: u64,
    /// Wall time of the timed part.
    pub(super) wall: Duration,
}

impl Samples {
    /// Empty samples with room for `capacity` latencies.
    pub(super) fn with_capacity(capacity: usize) -> Samples {
        Samples {
            latencies_ns: Vec::with_capacity(capacity),
            ..Samples::default()
        }
    }

    /// Records the latency of one operation.
    pub(super) fn push(&mut self, latency: Duration) {
        self.latencies_ns
            .push(u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Closes the measurement: `ops` operations took `wall`. Sorts the latencies.
    pub(super) fn finish(mut self, ops: u64, wall: Duration) -> Samples {
        self.latencies_ns.sort_unstable();
        self.ops = ops;
        self.wall = wall;
        self
    }

    /// Adds the latencies, operations and wall time of `other` (another part of the same
    /// row's measurement) to these; [`Samples::finish`] sorts the whole again.
    pub(super) fn merge(&mut self, other: Samples) {
        self.latencies_ns.extend(other.latencies_ns);
        self.ops += other.ops;
        self.wall += other.wall;
    }

    /// The `p`-quantile (`0.0..=1.0`, nearest rank) of the latencies in microseconds; 0 when
    /// nothing was recorded.
    pub(super) fn percentile_us(&self, p: f64) -> f64 {
        let Some(last) = self.latencies_ns.len().checked_sub(1) else {
            return 0.0;
        };
        let rank = ((last as f64) * p.clamp(0.0, 1.0)).round() as usize;
        self.latencies_ns
            .get(rank.min(last))
            .map_or(0.0, |ns| *ns as f64 / 1_000.0)
    }

    /// Operations per second of wall time.
    pub(super) fn ops_per_s(&self) -> f64 {
        let secs = self.wall.as_secs_f64();
        if secs > 0.0 {
            self.ops as f64 / secs
        } else {
            0.0
        }
    }
}

/// What a row's acknowledgement promises, which fixes the reprise row it is compared with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Guarantee {
    /// Acknowledged after stable storage: survives a power loss.
    PowerLoss,
    /// Acknowledged after the data was handed to the OS: survives a process kill only.
    ProcessKill,
    /// Acknowledged once stored in the object store (`--remote`): survives the loss of the
    /// machine.
    MachineLoss,
    /// Not an acknowledgement (replay, snapshot, claim): compared with nothing.
    Own,
}

/// One measured row with its extra JSON fields.
#[derive(Debug)]
pub(super) struct Row {
    /// The contract's row name.
    pub(super) name: &'static str,
    /// What its acknowledgement promises.
    pub(super) guarantee: Guarantee,
    /// The measurement.
    pub(super) samples: Samples,
    /// Row-specific fields (bytes, queue sizes).
    pub(super) extra: Map<String, Value>,
}

impl Row {
    /// A row without extra fields.
    pub(super) fn new(name: &'static str, guarantee: Guarantee, samples: Samples) -> Row {
        Row {
            name,
            guarantee,
            samples,
            extra: Map::new(),
        }
    }
}

/// The reprise row a row is compared with, by its guarantee.
///
/// `ratio_to_reprise` = `ops_per_s` of the row ÷ `ops_per_s` of this baseline row, measured in
/// the same run (above 1: faster than reprise; below 1: slower):
/// - rows acknowledged after stable storage (`fdatasync floor`, `fdatasync append`, both
///   `reprise durable` rows, `sqlite WAL FULL`, `sonora JSON`, the redb and fjall rows) ÷
///   `reprise durable 1 guild`, and `new guild` (first events of fresh guilds, same durability);
/// - rows acknowledged once the OS has the bytes, surviving a process kill but not a power loss
///   (`reprise none`, `sqlite WAL NORMAL`, whose WAL commits do not fsync) ÷ `reprise none`;
/// - rows acknowledged once stored in the object store of `--remote`, surviving the loss of
///   the machine (`s3 PUT floor`, `reprise remote 64 guilds`) ÷ `reprise remote 64 guilds`;
/// - `replay`, `snapshot`, `recover guilds` and `claim` are reprise's own operations with no peer: 1 by
///   definition (the snapshot row compares bytes instead: `bytes` beside `sonora_json_bytes`).
///
/// `ratio_to_floor` (acknowledging rows only) = `ops_per_s` ÷ `ops_per_s` of the floor of the
/// row's guarantee: for the durable rows the faster of `fdatasync floor` (128-byte overwrites
/// inside a preallocated file, each + `fdatasync`: the physical limit of one sequential stream
/// of durable records on this disk) and `fdatasync append` (the same records appended to a
/// growing file); `s3 PUT floor` for the remote rows (one PUT per event, sequential: the
/// store's limit for one stream of remote acknowledgements).
pub(super) fn ratio_baseline(row: &Row) -> &'static str {
    match row.guarantee {
        Guarantee::PowerLoss => REPRISE_DURABLE_1,
        Guarantee::ProcessKill => REPRISE_NONE,
        Guarantee::MachineLoss => REPRISE_REMOTE_64,
        Guarantee::Own => row.name,
    }
}

/// Runs and times `op` once per item of `items`, in order, until they run out or `budget` of
/// wall time has passed. Each call's duration is one latency sample; the calls completed are
/// the operations, over the wall time of the whole loop.
pub(super) fn measure<T>(
    items: &[T],
    budget: Duration,
    mut op: impl FnMut(&T) -> Result<(), Failure>,
) -> Result<Samples, Failure> {
    let mut samples = Samples::with_capacity(items.len());
    let mut done = 0u64;
    let start = Instant::now();
    for item in items {
        let t = Instant::now();
        op(item)?;
        let end = Instant::now();
        samples.push(end.duration_since(t));
        done += 1;
        if end.duration_since(start) >= budget {
            break;
        }
    }
    let wall = start.elapsed();
    Ok(samples.finish(done, wall))
}

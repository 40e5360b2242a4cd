//! How a `reprise bench` run prints (CONTRACT §4 pins it): the ratios of every row to its
//! baseline and its floor, the JSON object of `--json`, and the aligned table with its legend.

use serde_json::{json, Map, Value};

use super::remote;
use super::row::{
    ratio_baseline, Guarantee, Row, CLAIM, FLOOR, FLOOR_APPEND, NEW_GUILD, RECOVER_GUILDS, REPLAY,
    REPRISE_REMOTE_64, S3_PUT_FLOOR, SNAPSHOT, SONORA_JSON,
};
use super::Plan;

/// A complete run, ready to print.
pub(super) struct Report {
    /// [`machine_description`](super::machine::machine_description).
    pub(super) machine: String,
    /// What was measured.
    pub(super) plan: Plan,
    /// The rows, in contract order.
    pub(super) rows: Vec<Row>,
    /// The run's remote URL (its own key prefix), with `--remote`.
    pub(super) remote: Option<String>,
}

/// The note printed with every report.
const SIDE_BY_SIDE_NOTE: &str = "all rows measured side by side in this one run, in one process, \
on the disk of --dir, the durable ones interleaved slice by slice in rounds; compare ratios, not \
absolute numbers, across machines";

impl Report {
    /// `ops_per_s` of the named row (0 if absent).
    fn ops_per_s(&self, name: &str) -> f64 {
        self.rows
            .iter()
            .find(|r| r.name == name)
            .map_or(0.0, |r| r.samples.ops_per_s())
    }

    /// `a / b`, or 0 when `b` is 0.
    fn ratio(a: f64, b: f64) -> f64 {
        if b > 0.0 {
            a / b
        } else {
            0.0
        }
    }

    /// The row's `ratio_to_reprise` (see [`ratio_baseline`]).
    fn ratio_to_reprise(&self, row: &Row) -> f64 {
        match row.guarantee {
            Guarantee::Own => 1.0,
            _ => Self::ratio(row.samples.ops_per_s(), self.ops_per_s(ratio_baseline(row))),
        }
    }

    /// The row's `ratio_to_floor`, for durable and remote rows only (see [`ratio_baseline`]).
    fn ratio_to_floor(&self, row: &Row) -> Option<f64> {
        let floor = match row.guarantee {
            // The fastest durable record this disk allows, whichever way it was written.
            Guarantee::PowerLoss => self.ops_per_s(FLOOR).max(self.ops_per_s(FLOOR_APPEND)),
            Guarantee::MachineLoss => self.ops_per_s(S3_PUT_FLOOR),
            Guarantee::ProcessKill | Guarantee::Own => return None,
        };
        Some(Self::ratio(row.samples.ops_per_s(), floor))
    }

    /// The report as CONTRACT §4's JSON object (with a few extra fields).
    pub(super) fn to_json(&self) -> Value {
        let round = |x: f64, digits: i32| {
            let scale = 10f64.powi(digits);
            (x * scale).round() / scale
        };
        let rows: Vec<Value> = self
            .rows
            .iter()
            .map(|row| {
                let mut m = Map::new();
                m.insert("name".into(), json!(row.name));
                m.insert("ops_per_s".into(), json!(round(row.samples.ops_per_s(), 1)));
                m.insert(
                    "p50_us".into(),
                    json!(round(row.samples.percentile_us(0.50), 1)),
                );
                m.insert(
                    "p99_us".into(),
                    json!(round(row.samples.percentile_us(0.99), 1)),
                );
                m.insert(
                    "ratio_to_reprise".into(),
                    json!(round(self.ratio_to_reprise(row), 3)),
                );
                m.insert("ratio_baseline".into(), json!(ratio_baseline(row)));
                if let Some(r) = self.ratio_to_floor(row) {
                    m.insert("ratio_to_floor".into(), json!(round(r, 3)));
                }
                m.insert("samples".into(), json!(row.samples.latencies_ns.len()));
                m.extend(row.extra.clone());
                Value::Object(m)
            })
            .collect();
        let mut report = json!({
            "machine": self.machine,
            "note": SIDE_BY_SIDE_NOTE,
            "mode": self.plan.label,
            "durable_rounds": self.plan.rounds,
            "rows": rows,
        });
        if let (Some(url), Some(m)) = (&self.remote, report.as_object_mut()) {
            m.insert("remote".into(), json!(url));
        }
        report
    }

    /// The report as an aligned table with its legend, one string per line.
    pub(super) fn table(&self) -> Vec<String> {
        let mut lines = vec![
            format!("reprise bench ({})", self.plan.label),
            format!("machine: {}", self.machine),
            format!("note: {SIDE_BY_SIDE_NOTE}"),
        ];
        if let Some(url) = &self.remote {
            lines.push(format!("remote: {url} (deleted after the run)"));
        }
        lines.extend([
            String::new(),
            format!(
                "{:<26} {:>11} {:>10} {:>10} {:>10} {:>9} {:>6}  {}",
                "row",
                "ops/s",
                "p50 us",
                "p99 us",
                "vs reprise",
                "vs floor",
                "n",
                "baseline / notes"
            ),
        ]);
        for row in &self.rows {
            let floor = self
                .ratio_to_floor(row)
                .map_or_else(|| "-".to_owned(), |r| format!("{r:.2}x"));
            let notes = match row.name {
                SNAPSHOT => format!(
                    "{} B snapshot vs {} B Sonora JSON, {} B of random blobs; Lavalink blobs: \
                     {} B vs {} B; {} tracks; encode p50 {} us",
                    extra_u64(row, "bytes"),
                    extra_u64(row, "sonora_json_bytes"),
                    extra_u64(row, "blob_bytes"),
                    extra_u64(row, "realistic_bytes"),
                    extra_u64(row, "realistic_sonora_json_bytes"),
                    extra_u64(row, "queue_tracks"),
                    row.extra
                        .get("encode_p50_us")
                        .and_then(Value::as_f64)
                        .unwrap_or(0.0),
                ),
                NEW_GUILD => format!(
                    "{}; first events of fresh guilds, p50 {:.2}x an existing guild's",
                    ratio_baseline(row),
                    row.extra
                        .get("ratio_to_existing_guild")
                        .and_then(Value::as_f64)
                        .unwrap_or(0.0),
                ),
                RECOVER_GUILDS => format!(
                    "{} guilds x 3 events after SIGKILL, p50 = open + every state; rss {} MiB, disk {} MiB ({} B rss, {} B disk per guild)",
                    extra_u64(row, "guilds"),
                    extra_u64(row, "rss_bytes") >> 20,
                    extra_u64(row, "disk_bytes") >> 20,
                    extra_u64(row, "rss_bytes_per_guild"),
                    extra_u64(row, "disk_bytes_per_guild"),
                ),
                REPLAY => format!(
                    "{} events per recovery, p50/p99 per recovery",
                    extra_u64(row, "events")
                ),
                SONORA_JSON => format!(
                    "{}; {} B file mean",
                    ratio_baseline(row),
                    extra_u64(row, "file_bytes_mean")
                ),
                S3_PUT_FLOOR => format!(
                    "{}; {} B create-only PUTs",
                    ratio_baseline(row),
                    extra_u64(row, "object_bytes")
                ),
                REPRISE_REMOTE_64 => format!(
                    "{}; {} PUTs, {:.1} events per PUT",
                    ratio_baseline(row),
                    extra_u64(row, "puts"),
                    row.extra
                        .get("events_per_put")
                        .and_then(Value::as_f64)
                        .unwrap_or(0.0),
                ),
                CLAIM => format!(
                    "{} guilds of {} tracks, p50/p99 per claim; {} requests per claim",
                    row.samples.latencies_ns.len(),
                    extra_u64(row, "queue_tracks"),
                    row.extra
                        .get("requests_per_claim")
                        .and_then(Value::as_f64)
                        .unwrap_or(0.0),
                ),
                _ => ratio_baseline(row).to_owned(),
            };
            lines.push(format!(
                "{:<26} {:>11.1} {:>10.1} {:>10.1} {:>9.3}x {:>9} {:>6}  {}",
                row.name,
                row.samples.ops_per_s(),
                row.samples.percentile_us(0.50),
                row.samples.percentile_us(0.99),
                self.ratio_to_reprise(row),
                floor,
                row.samples.latencies_ns.len(),
                notes
            ));
        }
        lines.extend(
            [
                "",
                "legend:",
                "  latencies are per acknowledged event as the caller sees it (64 guilds: from its",
                "  append to the end of the sync that covered it); ops/s = events / wall time.",
                "  vs reprise = ops/s of the row / ops/s of its baseline, the reprise row with the",
                "  same guarantee: `reprise durable 1 guild` for rows acknowledged after stable",
                "  storage (survive a power loss), `reprise none` for rows acknowledged once the OS",
                "  has the bytes (survive a process kill: sqlite WAL NORMAL does not fsync its",
                "  commits); replay and snapshot have no peer (1 by definition). Above 1 = faster.",
                "  vs floor = ops/s / ops/s of the faster of `fdatasync floor` (128-byte overwrites",
                "  inside a preallocated file, each + fdatasync: the disk's limit for one stream of",
                "  durable records) and `fdatasync append` (the same appended to a growing file),",
                "  for the durable rows. n = latency samples (a row stops early, with fewer, when",
                "  it exceeds its time budget on a slow disk). redb and fjall: one key per event,",
                "  redb Durability::Immediate, fjall persist(SyncData) after each write; 64 guilds",
                "  = 64 threads, one guild each, on one shared database.",
                "  every appending row plays the same pre-generated events after the same 200",
                "  untimed warm-up events (so the Sonora file holds a realistic queue).",
            ]
            .map(str::to_owned),
        );
        if self.remote.is_some() {
            lines.extend(remote::LEGEND.map(str::to_owned));
        }
        lines
    }
}

/// An unsigned extra field of a row (0 if absent).
fn extra_u64(row: &Row, key: &str) -> u64 {
    row.extra.get(key).and_then(Value::as_u64).unwrap_or(0)
}

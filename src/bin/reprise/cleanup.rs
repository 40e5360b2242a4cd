//! `reprise cleanup [--max-age DAYS] [--keep N] [--guild G] [--dry-run]`: retention on demand
//! (see `reprise::journal_admin` for the rule; defaults: keep the journal's default of 2
//! snapshots per guild, no age limit).
//!
//! Output: one JSON object:
//! `{"guilds": N, "snapshots_removed": N, "segments_removed": N, "bytes_removed": B,
//!   "dry_run": bool, "removed": [{"guild", "snapshots": [seq...], "segments": [first_seq...],
//!   "bytes"}], "skipped": [{"guild", "reason"}]}`.

use std::path::Path;
use std::time::Duration;

use reprise::journal_admin::{CleanupReport, RetentionPolicy};
use reprise::{GuildId, Journal};
use serde_json::{json, Value};

use crate::output::{print_json_line, Out};
use crate::Failure;

/// Milliseconds in a day.
const DAY_MS: f64 = 86_400_000.0;

/// The JSON object described in the module docs.
fn report_json(report: &CleanupReport) -> Value {
    let removed: Vec<Value> = report
        .removed
        .iter()
        .map(|g| json!({"guild": g.guild.0, "snapshots": g.snapshots, "segments": g.segments, "bytes": g.bytes}))
        .collect();
    let skipped: Vec<Value> = report
        .skipped
        .iter()
        .map(|s| json!({"guild": s.guild.0, "reason": s.reason}))
        .collect();
    json!({
        "guilds": report.guilds,
        "snapshots_removed": report.snapshots_removed(),
        "segments_removed": report.segments_removed(),
        "bytes_removed": report.bytes_removed(),
        "dry_run": report.dry_run,
        "removed": removed,
        "skipped": skipped,
    })
}

/// Runs `cleanup`.
pub(crate) fn run(
    dir: &Path,
    max_age_days: Option<f64>,
    keep: Option<u32>,
    guild: Option<GuildId>,
    dry_run: bool,
    out: &mut Out,
) -> Result<(), Failure> {
    let age_max = match max_age_days {
        None => None,
        Some(days) if days.is_finite() && days >= 0.0 => Some(Duration::from_millis(
            (days * DAY_MS).min(u64::MAX as f64) as u64,
        )),
        Some(days) => {
            return Err(Failure::new(
                1,
                format!("--max-age must be a number of days >= 0, not {days}"),
            ))
        }
    };
    let mut policy = RetentionPolicy::default();
    if let Some(keep) = keep {
        policy.keep = keep.max(1);
    }
    policy.age_max = age_max;
    let mut journal = if dry_run {
        Journal::open_read_only(dir, crate::base_config())?
    } else {
        Journal::open(dir, crate::base_config())?
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let report = journal.cleanup(&policy, guild, now, dry_run)?;
    for skipped in &report.skipped {
        eprintln!(
            "reprise: warning: guild {} left alone: {}",
            skipped.guild, skipped.reason
        );
    }
    if !dry_run {
        journal.close()?;
    }
    print_json_line(out, &report_json(&report))
}

//! `reprise cleanup [--max-age DAYS] [--keep N] [--guild G] [--superseded-max-age DAYS]
//! [--superseded-keep N] [--dry-run]`: retention on demand (see `reprise::Journal::cleanup` for
//! the rules; defaults: keep the journal's default of 2 snapshots per guild, no age limit;
//! superseded copies kept 7 days, at most 3 per guild).
//!
//! Output: one JSON object:
//! `{"guilds": N, "snapshots_removed": N, "segments_removed": N, "bytes_removed": B,
//!   "dry_run": bool, "removed": [{"guild", "snapshots": [seq...], "segments": [first_seq...],
//!   "bytes"}], "skipped": [{"guild", "reason"}], "superseded_removed": N,
//!   "superseded": [{"guild", "epoch", "set_aside_unix_ms", "path"}]}`.

use std::path::Path;
use std::time::Duration;

use reprise::journal::{CleanupReport, RetentionPolicy, SupersededCopy};
use reprise::{GuildId, Journal, SupersededRetention};
use serde_json::{json, Value};

use crate::output::{print_json_line, Out};
use crate::Failure;

/// Milliseconds in a day.
const DAY_MS: f64 = 86_400_000.0;

/// The JSON object described in the module docs.
fn report_json(report: &CleanupReport, superseded: &[SupersededCopy]) -> Value {
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
    let copies: Vec<Value> = superseded
        .iter()
        .map(|c| {
            json!({
                "guild": c.guild.0,
                "epoch": c.epoch,
                "set_aside_unix_ms": c.set_aside_unix_ms,
                "path": c.path.display().to_string(),
            })
        })
        .collect();
    json!({
        "guilds": report.guilds,
        "snapshots_removed": report.snapshots_removed(),
        "segments_removed": report.segments_removed(),
        "bytes_removed": report.bytes_removed(),
        "dry_run": report.dry_run,
        "removed": removed,
        "skipped": skipped,
        "superseded_removed": superseded.len(),
        "superseded": copies,
    })
}

/// The arguments of `cleanup`.
pub(crate) struct Args {
    /// `--max-age`.
    pub max_age_days: Option<f64>,
    /// `--keep`.
    pub keep: Option<u32>,
    /// `--guild`.
    pub guild: Option<GuildId>,
    /// `--superseded-max-age`.
    pub superseded_max_age_days: Option<f64>,
    /// `--superseded-keep`.
    pub superseded_keep: Option<usize>,
    /// `--dry-run`.
    pub dry_run: bool,
}

/// A number of days as a duration; `flag` names it in the error.
fn days(flag: &str, days: f64) -> Result<Duration, Failure> {
    if days.is_finite() && days >= 0.0 {
        Ok(Duration::from_millis(
            (days * DAY_MS).min(u64::MAX as f64) as u64
        ))
    } else {
        Err(Failure::new(
            1,
            format!("{flag} must be a number of days >= 0, not {days}"),
        ))
    }
}

/// Runs `cleanup`.
pub(crate) fn run(dir: &Path, args: &Args, out: &mut Out) -> Result<(), Failure> {
    let mut policy = RetentionPolicy::default();
    if let Some(keep) = args.keep {
        policy.keep = keep.max(1);
    }
    policy.age_max = args
        .max_age_days
        .map(|d| days("--max-age", d))
        .transpose()?;
    let mut superseded_rule = SupersededRetention::default();
    if let Some(d) = args.superseded_max_age_days {
        superseded_rule.age_max = Some(days("--superseded-max-age", d)?);
    }
    if let Some(keep) = args.superseded_keep {
        superseded_rule.per_guild_max = keep.max(1);
    }
    let dry_run = args.dry_run;
    let mut journal = if dry_run {
        Journal::open_read_only(dir, crate::base_config())?
    } else {
        Journal::open(dir, crate::base_config())?
    };
    let now = reprise::clock::now_unix_ms();
    let report = journal.cleanup(&policy, args.guild, now, dry_run)?;
    for skipped in &report.skipped {
        eprintln!(
            "reprise: warning: guild {} left alone: {}",
            skipped.guild, skipped.reason
        );
    }
    let superseded = journal.remove_superseded(&superseded_rule, args.guild, now, dry_run)?;
    if !dry_run {
        journal.close()?;
    }
    print_json_line(out, &report_json(&report, &superseded))
}

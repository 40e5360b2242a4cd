//! `reprise stats [--guild G]`: analytics of the journal directory as one JSON object.
//!
//! ```text
//! {"dir": D, "now_unix_ms": T,
//!  "guilds": <count>, "events": <sum of the guilds' newest seq>, "events_in_log": N,
//!  "segments": N, "segment_bytes": B, "snapshots": N, "snapshot_bytes": B,
//!  "commit_log_bytes": B, "bytes_on_disk": B,
//!  "snapshots_by_guild": {"<guild>": {"count": N, "bytes": B}, ...},
//!  "oldest_snapshot": {"guild", "seq", "bytes", "created_unix_ms", "age_ms"} | null,
//!  "newest_snapshot": ... | null,
//!  "per_guild": [{"guild", "seq", "log_first_seq", "events_in_log", "segments",
//!                 "segment_bytes", "snapshot_bytes", "bytes",
//!                 "snapshots": [{"seq", "bytes", "created_unix_ms", "age_ms", "valid", "file"}]}]}
//! ```
//! With `--guild`, the counts cover that guild only (`bytes_on_disk` still covers the
//! directory).

use std::path::Path;

use reprise::journal::{SnapshotStat, Stats};
use reprise::{GuildId, Journal};
use serde_json::{json, Map, Value};

use crate::output::{print_json_line, Out};
use crate::progress::Progress;
use crate::Failure;

/// One snapshot with its guild, for `oldest_snapshot` / `newest_snapshot`.
fn snapshot_ref(guild: GuildId, s: &SnapshotStat, now: u64) -> Value {
    json!({
        "guild": guild.0,
        "seq": s.seq,
        "bytes": s.bytes,
        "created_unix_ms": s.created_unix_ms,
        "age_ms": s.age_ms(now),
    })
}

/// The JSON object described in the module docs.
pub(crate) fn stats_json(dir: &Path, stats: &Stats) -> Value {
    let now = stats.now_unix_ms;
    let mut by_guild = Map::new();
    let per_guild: Vec<Value> = stats
        .guilds
        .iter()
        .map(|g| {
            by_guild.insert(
                g.guild.0.to_string(),
                json!({"count": g.snapshots.len(), "bytes": g.snapshot_bytes}),
            );
            let snapshots: Vec<Value> = g
                .snapshots
                .iter()
                .map(|s| {
                    json!({
                        "seq": s.seq,
                        "bytes": s.bytes,
                        "created_unix_ms": s.created_unix_ms,
                        "age_ms": s.age_ms(now),
                        "valid": s.valid,
                        "file": s.path.display().to_string(),
                    })
                })
                .collect();
            json!({
                "guild": g.guild.0,
                "seq": g.seq,
                "log_first_seq": g.log_first_seq,
                "events_in_log": g.events_in_log,
                "segments": g.segments,
                "segment_bytes": g.segment_bytes,
                "snapshot_bytes": g.snapshot_bytes,
                "bytes": g.bytes(),
                "snapshots": snapshots,
            })
        })
        .collect();
    let (oldest, newest) = match stats.oldest_newest() {
        Some(((og, o), (ng, n))) => (snapshot_ref(og, o, now), snapshot_ref(ng, n, now)),
        None => (Value::Null, Value::Null),
    };
    json!({
        "dir": dir.display().to_string(),
        "now_unix_ms": now,
        "guilds": stats.guilds.len(),
        "events": stats.events(),
        "events_in_log": stats.events_in_log(),
        "segments": stats.segments(),
        "segment_bytes": stats.guilds.iter().map(|g| g.segment_bytes).sum::<u64>(),
        "snapshots": stats.snapshots(),
        "snapshot_bytes": stats.snapshot_bytes(),
        "commit_log_bytes": stats.commit_log_bytes,
        "bytes_on_disk": stats.bytes_on_disk,
        "snapshots_by_guild": by_guild,
        "oldest_snapshot": oldest,
        "newest_snapshot": newest,
        "per_guild": per_guild,
    })
}

/// Runs `stats`.
pub(crate) fn run(dir: &Path, guild: Option<GuildId>, out: &mut Out) -> Result<(), Failure> {
    let now = reprise::clock::now_unix_ms();
    if !dir.exists() {
        // No journal yet: nothing to count (and nothing is created).
        let empty = Stats {
            now_unix_ms: now,
            guilds: Vec::new(),
            commit_log_bytes: 0,
            bytes_on_disk: 0,
        };
        return print_json_line(out, &stats_json(dir, &empty));
    }
    let mut journal = Journal::open_read_only(dir, crate::base_config())?;
    let mut bar: Option<Progress> = None;
    let stats = journal.stats_with(guild, now, &mut |_, total| {
        bar.get_or_insert_with(|| Progress::new(total, "stats", "guilds", false))
            .inc(1);
    })?;
    print_json_line(out, &stats_json(dir, &stats))?;
    bar.unwrap_or_else(|| Progress::new(0, "stats", "guilds", true))
        .finish(&format!(
            "stats of {} guild(s): {} events, {} bytes on disk",
            stats.guilds.len(),
            stats.events(),
            stats.bytes_on_disk
        ));
    Ok(())
}

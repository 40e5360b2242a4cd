//! Named checkpoints: `reprise checkpoint LABEL [--remove]`, `reprise checkpoints` and
//! `reprise rollback LABEL [--guild G...] [--batch N] [--pace-ms MS]` (see `reprise::checkpoints`).
//!
//! Output:
//! - `checkpoint`: `{"label", "created_unix_ms", "created", "guilds": [{"guild", "seq"}],
//!   "bytes"}`; with `--remove`: `{"label", "removed": true}`.
//! - `checkpoints`: `{"checkpoints": [{"label", "created_unix_ms", "created", "guilds":
//!   [{"guild", "seq"}], "bytes"}]}`, oldest first.
//! - `rollback`: one line per guild as it is done, `{"guild", "status": "restored"|"unchanged",
//!   "seq", "restored_from_seq", "batch"}`; a summary on stderr.

use std::path::Path;
use std::time::Duration;

use reprise::checkpoints::{self, Checkpoint, RollbackOptions, RollbackStatus, SystemPacer};
use reprise::{GuildId, Journal};
use serde_json::{json, Value};

use crate::output::{print_json_line, Out};
use crate::progress::Progress;
use crate::time::format_rfc3339;
use crate::Failure;

/// One checkpoint as JSON.
fn checkpoint_json(c: &Checkpoint) -> Value {
    let guilds: Vec<Value> = c
        .guilds
        .iter()
        .map(|(g, seq)| json!({"guild": g.0, "seq": seq}))
        .collect();
    json!({
        "label": c.label,
        "created_unix_ms": c.created_unix_ms,
        "created": format_rfc3339(c.created_unix_ms),
        "guilds": guilds,
        "bytes": c.bytes,
    })
}

/// Runs `checkpoint`.
pub(crate) fn checkpoint(
    dir: &Path,
    label: &str,
    remove: bool,
    out: &mut Out,
) -> Result<(), Failure> {
    let mut journal = Journal::open(dir, crate::base_config())?;
    if remove {
        checkpoints::remove_checkpoint(&mut journal, label)?;
        journal.close()?;
        return print_json_line(out, &json!({"label": label, "removed": true}));
    }
    let taken = checkpoints::checkpoint(&mut journal, label)?;
    journal.close()?;
    eprintln!(
        "reprise: checkpoint {label:?}: {} guild(s), {} bytes",
        taken.guilds.len(),
        taken.bytes
    );
    print_json_line(out, &checkpoint_json(&taken))
}

/// Runs `checkpoints`.
pub(crate) fn list(dir: &Path, out: &mut Out) -> Result<(), Failure> {
    let journal = Journal::open_read_only(dir, crate::base_config())?;
    let all: Vec<Value> = checkpoints::checkpoints(&journal)?
        .iter()
        .map(checkpoint_json)
        .collect();
    print_json_line(out, &json!({ "checkpoints": all }))
}

/// Runs `rollback`.
pub(crate) fn rollback(
    dir: &Path,
    label: &str,
    guilds: Vec<u64>,
    batch: usize,
    pace_ms: u64,
    out: &mut Out,
) -> Result<(), Failure> {
    if batch == 0 {
        return Err(Failure::new(1, "--batch must be at least 1"));
    }
    let options = RollbackOptions {
        guilds: (!guilds.is_empty()).then(|| guilds.into_iter().map(GuildId).collect()),
        batch,
        pace: Duration::from_millis(pace_ms),
    };
    let mut journal = Journal::open(dir, crate::base_config())?;
    let len = match &options.guilds {
        Some(g) => g.len() as u64,
        None => checkpoints::load_checkpoint(&journal, label).map_or(0, |c| c.guilds.len() as u64),
    };
    let bar = Progress::new(len, &format!("rollback to {label}"), "guilds", false);
    let mut printed: Result<(), Failure> = Ok(());
    let result = checkpoints::rollback(&mut journal, label, &options, &mut SystemPacer, &mut |r| {
        bar.inc(1);
        if printed.is_ok() {
            printed = print_json_line(
                out,
                &json!({
                    "guild": r.guild.0,
                    "status": r.status.as_str(),
                    "seq": r.seq,
                    "restored_from_seq": r.restored_from_seq,
                    "batch": r.batch,
                }),
            );
        }
    });
    let done = match result {
        Ok(done) => done,
        Err(e) => {
            let _ = journal.close();
            return Err(e.into());
        }
    };
    journal.close()?;
    printed?;
    let restored = done
        .iter()
        .filter(|r| r.status == RollbackStatus::Restored)
        .count();
    bar.finish(&format!(
        "rollback to {label:?}: {restored} guild(s) restored, {} unchanged, {} batch(es)",
        done.len() - restored,
        done.last().map_or(0, |r| r.batch + 1)
    ));
    Ok(())
}

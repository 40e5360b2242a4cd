//! `reprise restore --guild G (--to SEQ | --to-time RFC3339) [--label L]`: makes a past state of
//! the guild current by appending one `state_restored` event (see `reprise::restore`:
//! validated, restore point, verified, undone on failure). History is never rewritten.
//!
//! Output: one JSON object `{"guild": G, "seq": N, "restored_from_seq": S, "previous_seq": P}`:
//! `seq` is the `state_restored` event, `restored_from_seq` the seq whose state is current
//! again, `previous_seq` the guild's seq before the restore (its restore point).

use std::path::Path;

use reprise::restore;
use reprise::{GuildId, Journal};
use serde_json::json;

use crate::output::{print_json_line, Out};
use crate::time::parse_rfc3339;
use crate::Failure;

/// Where to restore to.
pub(crate) enum Target {
    /// A sequence number.
    Seq(u64),
    /// A time in Unix milliseconds (the state as of the last event at or before it).
    Time(u64),
}

impl Target {
    /// The target given by `--to` or `--to-time` (exactly one; clap enforces it).
    pub(crate) fn from_args(to: Option<u64>, to_time: Option<&str>) -> Result<Target, Failure> {
        match (to, to_time) {
            (Some(seq), None) => Ok(Target::Seq(seq)),
            (None, Some(text)) => parse_rfc3339(text)
                .map(Target::Time)
                .map_err(|e| Failure::new(1, e)),
            _ => Err(Failure::new(
                1,
                "give exactly one of --to SEQ and --to-time TIME",
            )),
        }
    }
}

/// Runs `restore`.
pub(crate) fn run(
    dir: &Path,
    guild: GuildId,
    target: Target,
    label: Option<&str>,
    out: &mut Out,
) -> Result<(), Failure> {
    let mut journal = Journal::open(dir, crate::base_config())?;
    crate::warn_findings(&mut journal, guild)?;
    let restored = match target {
        Target::Seq(seq) => restore::restore_to(&mut journal, guild, seq, label)?,
        Target::Time(at) => restore::restore_to_time(&mut journal, guild, at, label)?,
    };
    journal.close()?;
    print_json_line(
        out,
        &json!({
            "guild": guild.0,
            "seq": restored.seq,
            "restored_from_seq": restored.restored_from_seq,
            "previous_seq": restored.previous_seq,
        }),
    )
}

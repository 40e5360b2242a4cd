//! `reprise lavalink --guild G [--now-unix-ms T] [--only ...] [--plan]`: the Lavalink v4
//! `PATCH /v4/sessions/{sessionId}/players/{guildId}` body that restores the guild's player
//! (see `reprise::lavalink` for every rule).
//!
//! Output: the body as one JSON object — `{"track": {"encoded": ...}, "position": ...,
//! "volume": ..., "paused": ..., "filters": {...}, "voice": {...}}` — with only the fields of the
//! sections asked for; a stopped session gives `"track": {"encoded": null}` and no position.
//! With `--plan`, the whole restore plan instead: `{"guild", "seq", "status", "sections",
//! "extrapolated_ms", "voice_incomplete", "patch": <body>, "queue": {...}|null,
//! "autoplay": {...}|null}`.

use std::path::Path;

use reprise::sonora::Sections;
use reprise::{GuildId, Journal};

use crate::output::{print_json_line, Out};
use crate::Failure;

/// Runs `lavalink`.
pub(crate) fn run(
    dir: &Path,
    guild: GuildId,
    now_unix_ms_arg: Option<u64>,
    only: Sections,
    plan: bool,
    out: &mut Out,
) -> Result<(), Failure> {
    let mut journal = Journal::open_read_only(dir, crate::base_config())?;
    crate::warn_findings(&mut journal, guild)?;
    let restore = journal.lavalink_restore(
        guild,
        now_unix_ms_arg.unwrap_or_else(reprise::clock::now_unix_ms),
        only,
    )?;
    if restore.voice_incomplete {
        eprintln!(
            "reprise: note: guild {} has a voice session but no voice token/endpoint; the bot must rejoin the channel",
            guild
        );
    }
    let value = if plan {
        serde_json::to_value(&restore)
    } else {
        serde_json::to_value(&restore.patch)
    }
    .map_err(|e| Failure::new(4, format!("cannot write the restore plan as JSON: {e}")))?;
    print_json_line(out, &value)
}

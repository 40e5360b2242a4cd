//! Restoring every guild's player on Lavalink when the bot starts (or when Lavalink gives it a
//! new session): [`restore_all`].
//!
//! For each guild in the journal, the bot asks reprise for the restore plan
//! ([`Reprise::lavalink_restore`], the same plan as `reprise lavalink --guild G`) and sends its
//! body as `PATCH /v4/sessions/{sessionId}/players/{guildId}` ([`patch_player`]): the current
//! track at its extrapolated position, the volume, the pause flag, the filters and the voice
//! connection. The queue stays in the journal (Lavalink plays one track at a time): the bot
//! reads it from there when a track ends.
//!
//! A guild whose session was stopped and that has no voice connection has nothing to restore
//! (the body would create an idle, unconnected player): it is skipped ([`GuildRestore::Skipped`]).
//! A guild that fails (Lavalink refuses the body, the journal cannot be read) does not stop the
//! others: its error is in [`GuildRestore::Failed`].

use lavalink_rs::http::Http;
use reprise::lavalink::{Restore, RestoreStatus};
use reprise::sonora::Sections;
use reprise::{GuildId, Reprise};

use crate::error::{BotError, Result};
use crate::rest::patch_player;

/// What [`restore_all`] did for one guild.
#[derive(Debug)]
pub enum GuildRestore {
    /// The body was sent and Lavalink accepted it.
    Restored {
        /// The guild.
        guild: GuildId,
        /// The plan whose body was sent (its `patch` is the body).
        plan: Box<Restore>,
    },
    /// Nothing to restore: stopped, and no voice connection.
    Skipped {
        /// The guild.
        guild: GuildId,
    },
    /// The journal or Lavalink failed for this guild.
    Failed {
        /// The guild.
        guild: GuildId,
        /// Why.
        error: BotError,
    },
}

impl GuildRestore {
    /// The guild this is about.
    pub fn guild(&self) -> GuildId {
        match self {
            GuildRestore::Restored { guild, .. }
            | GuildRestore::Skipped { guild }
            | GuildRestore::Failed { guild, .. } => *guild,
        }
    }
}

/// Whether a plan has anything for Lavalink: a track (current or waiting), or a voice
/// connection to re-establish.
pub fn worth_sending(plan: &Restore) -> bool {
    plan.status != RestoreStatus::Stopped || plan.patch.voice.is_some()
}

/// Restores one guild: reads its plan at `now_unix_ms` and, when [`worth_sending`], sends the
/// body to the Lavalink session `session_id`.
///
/// # Errors
/// [`BotError::Journal`] when the state cannot be read; the errors of [`patch_player`].
pub async fn restore_guild(
    reprise: &Reprise,
    http: &Http,
    session_id: &str,
    guild: GuildId,
    now_unix_ms: u64,
) -> Result<Option<Restore>> {
    let plan = reprise
        .lavalink_restore(guild, now_unix_ms, Sections::ALL)
        .await?;
    if !worth_sending(&plan) {
        return Ok(None);
    }
    patch_player(http, session_id, guild, &plan.patch).await?;
    Ok(Some(plan))
}

/// Restores every guild of the journal on the Lavalink session `session_id`, one after the
/// other (a guild's failure does not stop the others), with positions extrapolated to
/// `now_unix_ms`. Returns one [`GuildRestore`] per guild, in guild order.
///
/// # Errors
/// [`BotError::Journal`] when the list of guilds cannot be read.
pub async fn restore_all(
    reprise: &Reprise,
    http: &Http,
    session_id: &str,
    now_unix_ms: u64,
) -> Result<Vec<GuildRestore>> {
    let mut outcomes = Vec::new();
    for guild in reprise.guilds().await? {
        let outcome = match restore_guild(reprise, http, session_id, guild, now_unix_ms).await {
            Ok(Some(plan)) => GuildRestore::Restored {
                guild,
                plan: Box::new(plan),
            },
            Ok(None) => GuildRestore::Skipped { guild },
            Err(error) => GuildRestore::Failed { guild, error },
        };
        match &outcome {
            GuildRestore::Restored { plan, .. } => tracing::info!(
                guild = guild.0,
                seq = plan.seq,
                status = plan.status.as_str(),
                voice_incomplete = plan.voice_incomplete,
                "player restored"
            ),
            GuildRestore::Skipped { .. } => {
                tracing::debug!(guild = guild.0, "nothing to restore")
            }
            GuildRestore::Failed { error, .. } => {
                tracing::warn!(guild = guild.0, %error, "restore failed")
            }
        }
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

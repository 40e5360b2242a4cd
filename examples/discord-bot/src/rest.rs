//! The Lavalink REST calls the bot makes, through lavalink-rs's [`Http`] (the node's REST
//! client: its address, password header and hyper connection pool).
//!
//! Every player change is one `PATCH /v4/sessions/{sessionId}/players/{guildId}`
//! ([`patch_player`]) whose body is reprise's [`PlayerPatch`](reprise::lavalink::PlayerPatch):
//! for a restore the plan's body as it is, so that what Lavalink receives is byte for byte the
//! body `reprise lavalink` prints; for a command a body with the one field it changes
//! (`{"volume": 250}`). The request goes through lavalink-rs's generic [`Http::request`]
//! rather than its typed `update_player`, whose `UpdatePlayer` has its own filter model and
//! would re-encode the body.

use lavalink_rs::error::ResponseError;
use lavalink_rs::http::Http;
use reprise::GuildId;
use serde::{Deserialize, Serialize};

use crate::error::{BotError, Result};

/// The path (below `/v4`) of a guild's player in a Lavalink session.
pub fn player_path(session_id: &str, guild: GuildId) -> String {
    format!("/sessions/{session_id}/players/{}", guild.0)
}

/// What Lavalink answers a player request with: the player, or an error object.
#[derive(Deserialize)]
#[serde(untagged)]
enum PlayerAnswer {
    /// `{"timestamp", "status", "error", "message", "path"}` (tried first: a player has none
    /// of these fields).
    Refused(ResponseError),
    /// The player (kept as JSON: the bot reads nothing from it).
    Player(serde_json::Value),
}

/// Sends `PATCH /v4/sessions/{session_id}/players/{guild}` with `body` as JSON and returns the
/// player Lavalink answers with.
///
/// # Errors
/// [`BotError::Lavalink`] when the request fails; [`BotError::LavalinkRefused`] when Lavalink
/// answers with an error object.
pub async fn patch_player(
    http: &Http,
    session_id: &str,
    guild: GuildId,
    body: &(impl Serialize + ?Sized),
) -> Result<serde_json::Value> {
    let path = player_path(session_id, guild);
    let uri = http
        .path_to_uri(&path, true)
        .map_err(lavalink_rs::error::LavalinkError::from)?;
    match http
        .request::<PlayerAnswer, _, _>(http::Method::PATCH, uri, Some(body))
        .await?
    {
        PlayerAnswer::Player(player) => Ok(player),
        PlayerAnswer::Refused(refused) => Err(BotError::LavalinkRefused {
            path,
            status: refused.status,
            error: refused.error,
            message: refused.message,
        }),
    }
}

/// Sends `DELETE /v4/sessions/{session_id}/players/{guild}` (the bot left voice).
///
/// # Errors
/// [`BotError::Lavalink`].
pub async fn delete_player(http: &Http, session_id: &str, guild: GuildId) -> Result<()> {
    Ok(http.delete_player(guild.0, session_id).await?)
}

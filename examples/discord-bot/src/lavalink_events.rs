//! The Lavalink node's events, as lavalink-rs delivers them ([`events`]): each becomes a
//! journal event through [`Bot`] (or, for `ready`, restores every guild).
//!
//! | Lavalink event | what the bot does |
//! | --- | --- |
//! | `ready` (not resumed) | [`restore_all`]: every guild's player `PATCH`ed back from the journal; then an idle guild (tracks waiting, none current) starts its next track ([`Bot::play_next_if_idle`]) and a guild whose voice data is incomplete rejoins its channel |
//! | `ready` (resumed) | nothing: Lavalink kept the players |
//! | `playerUpdate` | `position_reported` for the current entry ([`Bot::position_reported`]) |
//! | `TrackEndEvent` `finished` / `loadFailed` | `track_ended`, then the next track (`track_started`) ([`Bot::track_ended`]) |
//! | `WebSocketClosedEvent` 4006 / 4009 | rejoin the journal's voice channel ([`Bot::voice_closed`]) |
//!
//! lavalink-rs takes plain `fn` pointers; the [`Bot`] comes from the client's data
//! ([`LavalinkClient::data`]).

use std::sync::Arc;

use lavalink_rs::client::LavalinkClient;
use lavalink_rs::model::events::{Events, PlayerUpdate, Ready, TrackEnd, WebSocketClosed};
use lavalink_rs::model::BoxFuture;
use reprise::clock::now_unix_ms;
use reprise::lavalink::RestoreStatus;
use reprise::GuildId;

use crate::bot::Bot;
use crate::restore::{restore_all, GuildRestore};

/// The event handlers to give lavalink-rs (`LavalinkClient::new_with_data` with an
/// `Arc<Bot>` as the data).
pub fn events() -> Events {
    Events {
        ready: Some(ready),
        player_update: Some(player_update),
        track_end: Some(track_end),
        websocket_closed: Some(websocket_closed),
        ..Events::default()
    }
}

/// The bot behind `client`, if the client was made with one.
fn bot(client: &LavalinkClient) -> Option<Arc<Bot>> {
    match client.data::<Bot>() {
        Ok(bot) => Some(bot),
        Err(error) => {
            tracing::error!(%error, "the Lavalink client carries no Bot");
            None
        }
    }
}

/// `ready`: records the session and, unless Lavalink resumed the old one, restores every
/// guild on it.
fn ready(client: LavalinkClient, _session_id: String, event: &Ready) -> BoxFuture<'_, ()> {
    Box::pin(async move {
        let Some(bot) = bot(&client) else { return };
        // `ready` can come before `LavalinkClient::new_with_data` returned the client to main.
        bot.set_lavalink(client.clone());
        bot.set_session_id(event.session_id.clone());
        if event.resumed {
            tracing::info!(session = %event.session_id, "Lavalink session resumed: players kept");
            return;
        }
        let Some(node) = client.nodes.first() else {
            return;
        };
        match restore_all(bot.reprise(), &node.http, &event.session_id, now_unix_ms()).await {
            Ok(outcomes) => {
                let mut counts = [0usize; 3];
                for outcome in &outcomes {
                    match outcome {
                        GuildRestore::Restored { guild, plan } => {
                            counts[0] += 1;
                            if plan.voice_incomplete {
                                bot.rejoin_or_later(*guild).await;
                            }
                            if plan.status == RestoreStatus::Idle {
                                if let Err(error) = bot.play_next_if_idle(*guild).await {
                                    tracing::warn!(guild = guild.0, %error, "next track not started");
                                }
                            }
                        }
                        GuildRestore::Skipped { .. } => counts[1] += 1,
                        GuildRestore::Failed { .. } => counts[2] += 1,
                    }
                }
                tracing::info!(
                    restored = counts[0],
                    skipped = counts[1],
                    failed = counts[2],
                    "guilds restored on Lavalink"
                );
            }
            Err(error) => tracing::error!(%error, "restore: the journal's guilds"),
        }
    })
}

/// `playerUpdate`: the position report.
fn player_update(
    client: LavalinkClient,
    _session_id: String,
    event: &PlayerUpdate,
) -> BoxFuture<'_, ()> {
    Box::pin(async move {
        let Some(bot) = bot(&client) else { return };
        let guild = GuildId(event.guild_id.0);
        let state = &event.state;
        if let Err(error) = bot
            .position_reported(guild, state.position, state.time)
            .await
        {
            tracing::warn!(guild = guild.0, %error, "position report not journaled");
        }
    })
}

/// `TrackEndEvent`.
fn track_end(client: LavalinkClient, _session_id: String, event: &TrackEnd) -> BoxFuture<'_, ()> {
    Box::pin(async move {
        let Some(bot) = bot(&client) else { return };
        let guild = GuildId(event.guild_id.0);
        if let Err(error) = bot.track_ended(guild, &event.track, &event.reason).await {
            tracing::warn!(guild = guild.0, %error, "track end not handled");
        }
    })
}

/// `WebSocketClosedEvent`.
fn websocket_closed(
    client: LavalinkClient,
    _session_id: String,
    event: &WebSocketClosed,
) -> BoxFuture<'_, ()> {
    Box::pin(async move {
        let Some(bot) = bot(&client) else { return };
        let guild = GuildId(event.guild_id.0);
        tracing::info!(guild = guild.0, code = event.code, reason = %event.reason, "voice closed");
        if let Err(error) = bot.voice_closed(guild, event.code).await {
            tracing::warn!(guild = guild.0, %error, "voice not rejoined");
        }
    })
}

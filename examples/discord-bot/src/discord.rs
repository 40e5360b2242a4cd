//! The Discord side, on serenity: the slash commands and the voice updates ([`Handler`]).
//!
//! | command | does | journal event |
//! | --- | --- | --- |
//! | `/join channel` | joins a voice channel | `voice_connected` (when Discord's voice updates arrive) |
//! | `/play query` | loads a URL or a YouTube search, queues it, starts it when idle | `tracks_enqueued`, `track_started` |
//! | `/pause`, `/resume` | | `paused_set` |
//! | `/seek seconds` | | `seeked` |
//! | `/volume level` | `0..=1000` | `volume_set` |
//! | `/filters preset` | nightcore, vaporwave, bassboost, 8d, clear | `filters_set` / `filters_cleared` |
//! | `/skip` | the next track | `track_ended` (`skipped`), `track_started` |
//! | `/stop` | stops and empties the queue | `track_ended` (`stopped`) / `queue_cleared` |
//! | `/queue` | shows the journal's queue | — |
//! | `/leave` | leaves voice, ends the session | `session_ended`, `voice_disconnected` |

use std::sync::Arc;

use reprise::GuildId;
use serenity::all::{
    ChannelType, Command, CommandDataOptionValue, CommandInteraction, CommandOptionType, Context,
    CreateCommand, CreateCommandOption, EditInteractionResponse, EventHandler, Interaction, Ready,
    VoiceServerUpdateEvent, VoiceState,
};
use serenity::async_trait;

use crate::bot::{Bot, FilterPreset};
use crate::error::{BotError, Result};

/// How many upcoming tracks `/queue` lists.
const QUEUE_SHOWN_MAX: usize = 10;

/// serenity's event handler: the commands and the bot's own voice updates, passed to [`Bot`].
pub struct Handler {
    /// The bot.
    pub bot: Arc<Bot>,
}

/// The slash commands the bot registers.
pub fn commands() -> Vec<CreateCommand> {
    let mut filters =
        CreateCommandOption::new(CommandOptionType::String, "preset", "The filter").required(true);
    for preset in FilterPreset::ALL {
        filters = filters.add_string_choice(preset.name(), preset.name());
    }
    vec![
        CreateCommand::new("join")
            .description("Join a voice channel")
            .add_option(
                CreateCommandOption::new(
                    CommandOptionType::Channel,
                    "channel",
                    "The voice channel",
                )
                .channel_types(vec![ChannelType::Voice, ChannelType::Stage])
                .required(true),
            ),
        CreateCommand::new("play")
            .description("Queue a URL or a search, and play it when nothing plays")
            .add_option(
                CreateCommandOption::new(CommandOptionType::String, "query", "URL or search")
                    .required(true),
            ),
        CreateCommand::new("pause").description("Pause the player"),
        CreateCommand::new("resume").description("Resume the player"),
        CreateCommand::new("seek")
            .description("Seek in the current track")
            .add_option(
                CreateCommandOption::new(CommandOptionType::Integer, "seconds", "Position")
                    .min_int_value(0)
                    .required(true),
            ),
        CreateCommand::new("volume")
            .description("Set the volume")
            .add_option(
                CreateCommandOption::new(
                    CommandOptionType::Integer,
                    "level",
                    "0 to 1000 (100: unchanged)",
                )
                .min_int_value(0)
                .max_int_value(1000)
                .required(true),
            ),
        CreateCommand::new("filters")
            .description("Apply a filter preset")
            .add_option(filters),
        CreateCommand::new("skip").description("Skip to the next track"),
        CreateCommand::new("stop").description("Stop and empty the queue"),
        CreateCommand::new("queue").description("Show the queue"),
        CreateCommand::new("leave").description("Leave voice and end the session"),
    ]
}

/// The value of the option `name`.
fn option<'a>(command: &'a CommandInteraction, name: &str) -> Option<&'a CommandDataOptionValue> {
    command
        .data
        .options
        .iter()
        .find(|o| o.name == name)
        .map(|o| &o.value)
}

/// An integer option, in `0..=u64::MAX`.
fn integer(command: &CommandInteraction, name: &str) -> Result<u64> {
    option(command, name)
        .and_then(CommandDataOptionValue::as_i64)
        .and_then(|value| u64::try_from(value).ok())
        .ok_or_else(|| BotError::InvalidArgument(format!("{name}: a number from 0")))
}

/// The text of the queue: the current track and the first upcoming ones.
pub fn queue_text(state: &reprise::State) -> String {
    let mut text = match &state.queue.current {
        Some(entry) => format!(
            "Now: {} ({} / {} s, volume {}{})",
            entry.track.title(),
            state.player.position_ms / 1000,
            entry.track.length_ms() / 1000,
            state.player.volume,
            if state.player.paused { ", paused" } else { "" }
        ),
        None => "Nothing playing.".to_owned(),
    };
    for (i, entry) in state
        .queue
        .upcoming
        .iter()
        .take(QUEUE_SHOWN_MAX)
        .enumerate()
    {
        text.push_str(&format!("\n{}. {}", i + 1, entry.track.title()));
    }
    let more = state.queue.upcoming.len().saturating_sub(QUEUE_SHOWN_MAX);
    if more > 0 {
        text.push_str(&format!("\n... and {more} more"));
    }
    text
}

impl Handler {
    /// Runs a command in `guild`; the reply's text.
    async fn run(&self, command: &CommandInteraction, guild: GuildId) -> Result<String> {
        let bot = &self.bot;
        Ok(match command.data.name.as_str() {
            "join" => {
                let channel = option(command, "channel")
                    .and_then(CommandDataOptionValue::as_channel_id)
                    .ok_or_else(|| BotError::InvalidArgument("channel: a voice channel".into()))?;
                bot.join(guild, channel.get())?;
                format!("Joining <#{channel}>.")
            }
            "play" => {
                let query = option(command, "query")
                    .and_then(CommandDataOptionValue::as_str)
                    .unwrap_or_default();
                let tracks = bot.play(guild, query).await?;
                match tracks.as_slice() {
                    [one] => format!("Queued {}.", one.title()),
                    many => format!("Queued {} tracks.", many.len()),
                }
            }
            "pause" => {
                bot.set_paused(guild, true).await?;
                "Paused.".into()
            }
            "resume" => {
                bot.set_paused(guild, false).await?;
                "Resumed.".into()
            }
            "seek" => {
                let seconds = integer(command, "seconds")?;
                bot.seek(guild, seconds.saturating_mul(1000)).await?;
                format!("Seeked to {seconds} s.")
            }
            "volume" => {
                let level = integer(command, "level")?;
                let level = u16::try_from(level).unwrap_or(u16::MAX);
                bot.set_volume(guild, level).await?;
                format!("Volume {level}.")
            }
            "filters" => {
                let name = option(command, "preset")
                    .and_then(CommandDataOptionValue::as_str)
                    .unwrap_or_default();
                let preset = FilterPreset::from_name(name)
                    .ok_or_else(|| BotError::InvalidArgument(format!("no preset {name:?}")))?;
                bot.set_filters(guild, preset).await?;
                format!("Filters: {}.", preset.name())
            }
            "skip" => match bot.skip(guild).await? {
                Some(next) => format!("Skipped; now {}.", next.title()),
                None => "Skipped; the queue is empty.".into(),
            },
            "stop" => {
                bot.stop(guild).await?;
                "Stopped.".into()
            }
            "queue" => queue_text(&bot.state(guild).await?),
            "leave" => {
                bot.leave(guild).await?;
                "Left.".into()
            }
            other => {
                return Err(BotError::InvalidArgument(format!(
                    "unknown command {other}"
                )))
            }
        })
    }
}

#[async_trait]
impl EventHandler for Handler {
    /// A shard is connected: records it, registers the commands, rejoins the voice channels
    /// a restore could not rejoin before.
    async fn ready(&self, ctx: Context, ready: Ready) {
        self.bot.set_user_id(ready.user.id.get());
        let total = ready.shard.map_or(1, |shard| shard.total);
        self.bot
            .register_shard(ctx.shard_id.0, total, ctx.shard.clone());
        if ctx.shard_id.0 == 0 {
            if let Err(error) = Command::set_global_commands(&ctx.http, commands()).await {
                tracing::error!(%error, "slash commands not registered");
            }
        }
        tracing::info!(user = %ready.user.name, shard = ctx.shard_id.0, total, "Discord ready");
        self.bot.rejoin_pending().await;
    }

    /// A slash command.
    async fn interaction_create(&self, ctx: Context, interaction: Interaction) {
        let Interaction::Command(command) = interaction else {
            return;
        };
        let Some(guild) = command.guild_id else {
            return;
        };
        // Loading tracks can take longer than Discord's 3 s: answer "thinking" first.
        if let Err(error) = command.defer(&ctx.http).await {
            tracing::warn!(%error, "interaction not deferred");
            return;
        }
        let text = match self.run(&command, GuildId(guild.get())).await {
            Ok(text) => text,
            Err(error) => format!("Error: {error}"),
        };
        let reply = EditInteractionResponse::new().content(text);
        if let Err(error) = command.edit_response(&ctx.http, reply).await {
            tracing::warn!(%error, "reply not sent");
        }
    }

    /// The bot's own voice state: the session half of the voice data, or out of voice.
    async fn voice_state_update(&self, _ctx: Context, _old: Option<VoiceState>, new: VoiceState) {
        let (Some(guild), Some(me)) = (new.guild_id, self.bot.user_id()) else {
            return;
        };
        if new.user_id.get() != me {
            return;
        }
        let guild = GuildId(guild.get());
        let channel = new.channel_id.map(|c| c.get());
        if let Err(error) = self.bot.voice_state(guild, channel, new.session_id).await {
            tracing::warn!(guild = guild.0, %error, "voice state not handled");
        }
    }

    /// The voice server: the token and endpoint half of the voice data.
    async fn voice_server_update(&self, _ctx: Context, event: VoiceServerUpdateEvent) {
        let Some(guild) = event.guild_id else { return };
        let guild = GuildId(guild.get());
        if let Err(error) = self
            .bot
            .voice_server(guild, event.token, event.endpoint)
            .await
        {
            tracing::warn!(guild = guild.0, %error, "voice server not handled");
        }
    }
}

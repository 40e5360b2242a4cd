//! The bot's executable: reads [`BotConfig`] from the environment, opens the journal, connects
//! to Lavalink (which restores every guild when its node says `ready`) and to Discord, and
//! runs until Ctrl-C. See the library's documentation for the whole picture.

use std::process::ExitCode;
use std::sync::Arc;

use lavalink_rs::client::LavalinkClient;
use lavalink_rs::model::client::NodeDistributionStrategy;
use lavalink_rs::model::UserId;
use lavalink_rs::node::NodeBuilder;
use reprise::Reprise;
use reprise_discord_bot::discord::Handler;
use reprise_discord_bot::{lavalink_events, Bot, BotConfig, Result};
use serenity::all::GatewayIntents;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("reprise-discord-bot: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The bot, from start to Ctrl-C.
async fn run() -> Result<()> {
    let config = BotConfig::from_env()?;
    let reprise = Reprise::open(&config.reprise_dir, reprise::Config::default()).await?;
    let bot = Arc::new(Bot::new(reprise.clone()));

    // Lavalink needs the bot's user id before Discord's gateway is up: ask the REST API.
    let discord_http = serenity::http::Http::new(&config.discord_token);
    let me = discord_http.get_current_user().await?;
    bot.set_user_id(me.id.get());

    let node = NodeBuilder {
        hostname: config.lavalink_host.clone(),
        is_ssl: config.lavalink_ssl,
        events: Default::default(),
        password: config.lavalink_password.clone(),
        user_id: UserId::from(me.id.get()),
        session_id: None,
    };
    // Connects the node's websocket; its `ready` restores every guild (lavalink_events).
    let lavalink = LavalinkClient::new_with_data(
        lavalink_events::events(),
        vec![node],
        NodeDistributionStrategy::new(),
        bot.clone(),
    )
    .await;
    bot.set_lavalink(lavalink);

    let intents = GatewayIntents::GUILDS | GatewayIntents::GUILD_VOICE_STATES;
    let mut client = serenity::Client::builder(&config.discord_token, intents)
        .event_handler(Handler { bot: bot.clone() })
        .await?;
    let shards = client.shard_manager.clone();
    tokio::select! {
        result = client.start_autosharded() => result?,
        _ = tokio::signal::ctrl_c() => {
            tracing::info!("Ctrl-C: shutting down");
            shards.shutdown_all().await;
        }
    }
    // Every acknowledged event is already on disk; this closes the journal cleanly.
    reprise.shutdown().await?;
    Ok(())
}

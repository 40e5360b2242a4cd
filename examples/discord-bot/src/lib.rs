//! An example Discord music bot whose players survive restarts: [serenity] for Discord,
//! [lavalink-rs](lavalink_rs) for Lavalink v4, and reprise's async handle
//! ([`reprise::Reprise`]) for the journal.
//!
//! - Every player change the bot makes (a slash command: play, pause, resume, seek, volume,
//!   filters, skip, stop, join, leave) or receives (Lavalink's track ends and position reports,
//!   Discord's voice updates) becomes a journal event (reprise's JSON event types:
//!   `tracks_enqueued`, `paused_set`, `seeked`, `volume_set`, `filters_set`, `track_started`,
//!   `track_ended`, `position_reported`, `voice_connected`, `voice_disconnected`,
//!   `session_ended`, ...). See [`bot`] for the order (Lavalink first, then the journal),
//!   [`discord`] for the commands and [`lavalink_events`] for what Lavalink sends.
//! - When the Lavalink node says `ready` with a new session (the bot started, or Lavalink
//!   restarted), every guild's player is restored ([`restore::restore_all`]): the body
//!   `reprise lavalink --guild G` prints, sent as
//!   `PATCH /v4/sessions/{sessionId}/players/{guildId}` through lavalink-rs's REST client.
//!
//! # Running it
//!
//! ```sh
//! # A Lavalink v4 node (its application.yml's port and password), a bot token with the
//! # applications.commands scope, then:
//! DISCORD_TOKEN=... LAVALINK_HOST=127.0.0.1:2333 LAVALINK_PASSWORD=youshallnotpass \
//! REPRISE_DIR=./reprise-data cargo run --release -p reprise-discord-bot
//! ```
//!
//! The variables are in [`config`]. Kill the bot at any moment (`kill -9`) and start it again:
//! each guild's track resumes where it was (the position extrapolated from Lavalink's last
//! report), with its volume, pause flag and filters, in the same voice channel, and the queue
//! goes on from the journal. `reprise state --dir ./reprise-data --guild G` shows what the bot
//! recorded (with the bot stopped: the bot holds the directory's lock while it runs).
//!
//! # Why serenity and lavalink-rs
//!
//! serenity is the most used Rust Discord library; lavalink-rs is the maintained Lavalink v4
//! client for Rust, with serenity id conversions. The bot needs no voice library of its own:
//! Lavalink holds the voice connection, and joining a channel is one gateway message
//! (opcode 4) that serenity's shard messenger sends, so songbird (a full voice stack) would
//! add a large dependency tree for that one message.
//!
//! # Tests
//!
//! `cargo test --release -p reprise-discord-bot` runs `tests/restore.rs`: a fake Lavalink node
//! (HTTP and the websocket's `ready`) on a local port, a journal seeded with several guilds,
//! and the PATCH requests the bot sends, each compared with the journal's body.

pub mod bot;
pub mod config;
pub mod discord;
pub mod error;
pub mod lavalink_events;
pub mod rest;
pub mod restore;

pub use bot::Bot;
pub use config::BotConfig;
pub use error::{BotError, Result};

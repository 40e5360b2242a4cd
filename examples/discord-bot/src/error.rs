//! [`BotError`]: what can go wrong in the bot, one variant per source.

use reprise::GuildId;

/// An error of the bot: the journal, Lavalink, Discord, the configuration, or a command that
/// cannot be carried out.
#[derive(Debug, thiserror::Error)]
pub enum BotError {
    /// The journal refused or failed (a rejected event, an I/O error, the directory locked by
    /// another process).
    #[error("journal: {0}")]
    Journal(#[from] reprise::Error),
    /// A request to Lavalink failed before an answer came (connection, HTTP, JSON).
    #[error("lavalink: {0}")]
    Lavalink(#[from] lavalink_rs::error::LavalinkError),
    /// Lavalink answered a request with an error object.
    #[error("lavalink refused {path}: {status} {error}: {message}")]
    LavalinkRefused {
        /// The request path.
        path: String,
        /// The HTTP status Lavalink reported.
        status: u16,
        /// The HTTP reason.
        error: String,
        /// Lavalink's message.
        message: String,
    },
    /// Discord's gateway or REST API failed (boxed: serenity's error is large, and every
    /// result of the bot carries this type).
    #[error("discord: {0}")]
    Discord(Box<serenity::Error>),
    /// A required environment variable is missing or malformed.
    #[error("configuration: {0}")]
    Config(String),
    /// The Lavalink client is not connected yet (no node session).
    #[error("lavalink is not connected yet")]
    NotConnected,
    /// A command that needs a voice connection, in a guild where the bot has none.
    #[error("not in a voice channel in guild {0}: use /join first")]
    NoVoice(GuildId),
    /// A command that needs a current track, in a guild where nothing plays.
    #[error("nothing is playing in guild {0}")]
    NothingPlaying(GuildId),
    /// Lavalink found no track for a query.
    #[error("no track found for {0:?}")]
    NothingFound(String),
    /// A command argument out of range or unknown.
    #[error("{0}")]
    InvalidArgument(String),
}

impl From<serenity::Error> for BotError {
    fn from(error: serenity::Error) -> BotError {
        BotError::Discord(Box::new(error))
    }
}

/// The bot's result type.
pub type Result<T, E = BotError> = std::result::Result<T, E>;

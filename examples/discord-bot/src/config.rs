//! [`BotConfig`]: the bot's settings, from environment variables.
//!
//! | variable | meaning | default |
//! | --- | --- | --- |
//! | `DISCORD_TOKEN` | the bot token (Discord developer portal) | required |
//! | `LAVALINK_HOST` | the Lavalink node as `host:port` | `127.0.0.1:2333` |
//! | `LAVALINK_PASSWORD` | the node's `lavalink.server.password` | `youshallnotpass` (Lavalink's sample) |
//! | `LAVALINK_SSL` | `true` or `1`: `https://` and `wss://` | plain |
//! | `REPRISE_DIR` | the journal directory | `./reprise-data` (the CLI's default) |

use std::path::PathBuf;

use crate::error::{BotError, Result};

/// Lavalink's default port.
pub const LAVALINK_HOST_DEFAULT: &str = "127.0.0.1:2333";
/// The password of Lavalink's sample `application.yml`.
pub const LAVALINK_PASSWORD_DEFAULT: &str = "youshallnotpass";
/// The journal directory when `REPRISE_DIR` is unset (the `reprise` CLI's default too).
pub const REPRISE_DIR_DEFAULT: &str = "./reprise-data";

/// The bot's settings (see the module docs for the variables).
#[derive(Clone, PartialEq, Eq)]
pub struct BotConfig {
    /// The Discord bot token.
    pub discord_token: String,
    /// The Lavalink node, `host:port`.
    pub lavalink_host: String,
    /// The Lavalink password.
    pub lavalink_password: String,
    /// Whether the node speaks TLS.
    pub lavalink_ssl: bool,
    /// The journal directory.
    pub reprise_dir: PathBuf,
}

impl std::fmt::Debug for BotConfig {
    /// Everything but the secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BotConfig")
            .field("lavalink_host", &self.lavalink_host)
            .field("lavalink_ssl", &self.lavalink_ssl)
            .field("reprise_dir", &self.reprise_dir)
            .finish_non_exhaustive()
    }
}

impl BotConfig {
    /// The settings from the process environment.
    ///
    /// # Errors
    /// [`BotError::Config`] when `DISCORD_TOKEN` is missing or empty, or `LAVALINK_SSL` is
    /// not a boolean.
    pub fn from_env() -> Result<BotConfig> {
        BotConfig::from_vars(|name| std::env::var(name).ok())
    }

    /// The settings from `var` (a variable's value by name; empty counts as unset).
    ///
    /// # Errors
    /// As [`BotConfig::from_env`].
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<BotConfig> {
        let var = |name: &str| var(name).filter(|value| !value.is_empty());
        let discord_token = var("DISCORD_TOKEN")
            .ok_or_else(|| BotError::Config("DISCORD_TOKEN is not set".to_owned()))?;
        let lavalink_ssl = match var("LAVALINK_SSL").as_deref() {
            None | Some("false" | "0") => false,
            Some("true" | "1") => true,
            Some(other) => {
                return Err(BotError::Config(format!(
                    "LAVALINK_SSL must be true, false, 1 or 0, not {other:?}"
                )))
            }
        };
        Ok(BotConfig {
            discord_token,
            lavalink_host: var("LAVALINK_HOST").unwrap_or_else(|| LAVALINK_HOST_DEFAULT.into()),
            lavalink_password: var("LAVALINK_PASSWORD")
                .unwrap_or_else(|| LAVALINK_PASSWORD_DEFAULT.into()),
            lavalink_ssl,
            reprise_dir: var("REPRISE_DIR")
                .unwrap_or_else(|| REPRISE_DIR_DEFAULT.into())
                .into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        }
    }

    #[test]
    fn defaults_fill_everything_but_the_token() {
        let config = BotConfig::from_vars(vars(&[("DISCORD_TOKEN", "t")])).unwrap();
        assert_eq!(config.lavalink_host, LAVALINK_HOST_DEFAULT);
        assert_eq!(config.lavalink_password, LAVALINK_PASSWORD_DEFAULT);
        assert!(!config.lavalink_ssl);
        assert_eq!(config.reprise_dir, PathBuf::from(REPRISE_DIR_DEFAULT));
        let set = BotConfig::from_vars(vars(&[
            ("DISCORD_TOKEN", "t"),
            ("LAVALINK_HOST", "lava:443"),
            ("LAVALINK_PASSWORD", "pw"),
            ("LAVALINK_SSL", "true"),
            ("REPRISE_DIR", "/var/lib/bot"),
        ]))
        .unwrap();
        assert_eq!(set.lavalink_host, "lava:443");
        assert_eq!(set.lavalink_password, "pw");
        assert!(set.lavalink_ssl);
        assert_eq!(set.reprise_dir, PathBuf::from("/var/lib/bot"));
        assert!(!format!("{set:?}").contains("pw"), "Debug shows no secret");
    }

    #[test]
    fn a_missing_token_or_a_bad_flag_is_a_config_error() {
        assert!(matches!(
            BotConfig::from_vars(vars(&[("DISCORD_TOKEN", "")])),
            Err(BotError::Config(_))
        ));
        assert!(matches!(
            BotConfig::from_vars(vars(&[("DISCORD_TOKEN", "t"), ("LAVALINK_SSL", "yes")])),
            Err(BotError::Config(_))
        ));
    }
}

//! A [`Track`]'s `extra` block: artwork_url, isrc, plugin_info and user_data (issue 19), kept
//! behind the source in the track's one allocation; see [`Track`] for the binary form.

use super::{invalid, Track, TrackFields};

/// [`Track::extra_len`]'s value for "the rest of `data`".
pub(super) const EXTRA_REST: u16 = u16::MAX;

/// The parts of a track's `extra` block, borrowed: artwork_url, isrc, and plugin_info and
/// user_data as compact JSON text.
pub(super) type ExtraParts<'a> = (
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
);

/// The `extra` block of `f`, or `None` when it has none of those fields.
pub(super) fn extra_block(f: &TrackFields) -> Option<Vec<u8>> {
    if f.artwork_url.is_none()
        && f.isrc.is_none()
        && f.plugin_info.is_none()
        && f.user_data.is_none()
    {
        return None;
    }
    let json = |v: Option<String>| v;
    let plugin = json(
        f.plugin_info
            .as_ref()
            .and_then(|m| serde_json::to_string(m).ok()),
    );
    let user = json(
        f.user_data
            .as_ref()
            .and_then(|v| serde_json::to_string(v).ok()),
    );
    let parts: ExtraParts<'_> = (
        f.artwork_url.as_deref(),
        f.isrc.as_deref(),
        plugin.as_deref(),
        user.as_deref(),
    );
    bincode::encode_to_vec(parts, bincode::config::standard()).ok()
}

/// Checks an `extra` block read from disk: exactly four optional strings, plugin_info a JSON
/// object and user_data JSON.
pub(super) fn check_extra(block: &[u8]) -> Result<(), bincode::error::DecodeError> {
    let (parts, used): (ExtraParts<'_>, usize) =
        bincode::borrow_decode_from_slice(block, bincode::config::standard())?;
    if used != block.len() {
        return Err(invalid("trailing bytes in the extra block"));
    }
    if let Some(plugin) = parts.2 {
        serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(plugin)
            .map_err(|_| invalid("plugin_info is not a JSON object"))?;
    }
    if let Some(user) = parts.3 {
        serde_json::from_str::<serde_json::Value>(user)
            .map_err(|_| invalid("user_data is not JSON"))?;
    }
    Ok(())
}

impl Track {
    /// The `extra` block's parts (all absent without one; construction and decoding check the
    /// block, so reading it here does not fail).
    pub(super) fn extra_parts(&self) -> ExtraParts<'_> {
        let block = self.extra_bytes();
        if block.is_empty() {
            return (None, None, None, None);
        }
        bincode::borrow_decode_from_slice(block, bincode::config::standard())
            .map(|(parts, _)| parts)
            .unwrap_or((None, None, None, None))
    }

    /// The bytes of the `extra` block (empty without one).
    pub(super) fn extra_bytes(&self) -> &[u8] {
        let start = self.start as usize + self.len as usize;
        let end = if self.extra_len == EXTRA_REST {
            self.data.len()
        } else {
            start + self.extra_len as usize
        };
        self.data.get(start..end).unwrap_or_default()
    }

    /// The size in bytes of the track's `extra` block (artwork_url, isrc, plugin_info,
    /// user_data; 0 without them).
    pub fn extra_len(&self) -> usize {
        self.extra_bytes().len()
    }

    /// The artwork URL, if given.
    pub fn artwork_url(&self) -> Option<&str> {
        self.extra_parts().0
    }

    /// The ISRC, if given.
    pub fn isrc(&self) -> Option<&str> {
        self.extra_parts().1
    }

    /// Lavalink's `pluginInfo`, if given (parsed from the stored JSON, so this allocates).
    pub fn plugin_info(&self) -> Option<serde_json::Map<String, serde_json::Value>> {
        self.extra_parts()
            .2
            .and_then(|text| serde_json::from_str(text).ok())
    }

    /// The bot's `user_data` (Lavalink's `userData`), if given (parsed, so this allocates).
    pub fn user_data(&self) -> Option<serde_json::Value> {
        self.user_data_json()
            .and_then(|text| serde_json::from_str(text).ok())
    }

    /// The bot's `user_data` as the compact JSON text it is stored as.
    pub fn user_data_json(&self) -> Option<&str> {
        self.extra_parts().3
    }
}

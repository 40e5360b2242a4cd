//! The Lavalink v4 track object, and the JSON form of a track that accepts it beside the flat
//! one (contract §1: wherever a track is expected, both forms, one meaning).

use serde::{Deserialize, Serialize};

use super::{Track, TrackFields};

/// A JSON object (Lavalink's `pluginInfo`).
type Object = serde_json::Map<String, serde_json::Value>;

/// A Lavalink v4 track as Lavalink sends it (`/v4/loadtracks`, player events):
/// `{"encoded", "info": {...}, "pluginInfo", "userData"}`. Convert with [`Track::from`] /
/// [`TrackFields::from`] and back with [`LavalinkTrack::from`].
///
/// The mapping to a reprise track: `info.length` is `length_ms`, `info.sourceName` is
/// `source`, `info.artworkUrl` is `artwork_url`, `pluginInfo` is `plugin_info` and `userData`
/// is `user_data`; the other `info` fields keep their names. `info.position` (where Lavalink's
/// player was when it sent the track) is not part of the track: it is read and dropped (the
/// player's position is `position_reported`'s business). An empty `pluginInfo` or `userData`
/// object (what Lavalink sends when there is none) means "none". Written back, absent values
/// are `null` (`uri`, `artworkUrl`, `isrc`) or Lavalink's defaults (`""`, 0, `false`, `true`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LavalinkTrack {
    /// The base64 track blob.
    pub encoded: String,
    /// The track's metadata.
    pub info: LavalinkTrackInfo,
    /// Lavalink plugin fields.
    #[serde(default)]
    pub plugin_info: Option<Object>,
    /// The bot's own data.
    #[serde(default)]
    pub user_data: Option<serde_json::Value>,
}

/// The `info` object of a [`LavalinkTrack`]. Only `title` is required here (reprise's rule);
/// Lavalink always sends all of them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LavalinkTrackInfo {
    /// The source's identifier.
    #[serde(default)]
    pub identifier: Option<String>,
    /// Whether the track supports seeking.
    #[serde(default)]
    pub is_seekable: Option<bool>,
    /// The artist or uploader.
    #[serde(default)]
    pub author: Option<String>,
    /// Duration in milliseconds.
    #[serde(default)]
    pub length: Option<u64>,
    /// Whether this is a live stream.
    #[serde(default)]
    pub is_stream: Option<bool>,
    /// Lavalink's playback position when it sent the track (not kept; see [`LavalinkTrack`]).
    #[serde(default)]
    pub position: Option<u64>,
    /// The display title.
    pub title: String,
    /// The web URL.
    #[serde(default)]
    pub uri: Option<String>,
    /// The artwork URL.
    #[serde(default)]
    pub artwork_url: Option<String>,
    /// The ISRC.
    #[serde(default)]
    pub isrc: Option<String>,
    /// The source name (`youtube`, ...).
    #[serde(default)]
    pub source_name: Option<String>,
}

impl From<LavalinkTrack> for TrackFields {
    fn from(v4: LavalinkTrack) -> TrackFields {
        let info = v4.info;
        TrackFields {
            encoded: v4.encoded,
            title: info.title,
            author: info.author,
            uri: info.uri,
            identifier: info.identifier,
            length_ms: info.length,
            is_stream: info.is_stream,
            is_seekable: info.is_seekable,
            source: info.source_name,
            artwork_url: info.artwork_url,
            isrc: info.isrc,
            plugin_info: v4.plugin_info.filter(|m| !m.is_empty()),
            user_data: v4
                .user_data
                .filter(|v| v.as_object().is_none_or(|m| !m.is_empty())),
        }
    }
}

impl From<LavalinkTrack> for Track {
    fn from(v4: LavalinkTrack) -> Track {
        Track::from(TrackFields::from(v4))
    }
}

impl From<&Track> for LavalinkTrack {
    fn from(track: &Track) -> LavalinkTrack {
        let f = track.fields();
        LavalinkTrack {
            encoded: f.encoded,
            info: LavalinkTrackInfo {
                identifier: Some(f.identifier.unwrap_or_default()),
                is_seekable: Some(track.is_seekable()),
                author: Some(f.author.unwrap_or_default()),
                length: Some(track.length_ms()),
                is_stream: Some(track.is_stream()),
                position: Some(0),
                title: f.title,
                uri: f.uri,
                artwork_url: f.artwork_url,
                isrc: f.isrc,
                source_name: Some(f.source.unwrap_or_default()),
            },
            plugin_info: Some(f.plugin_info.unwrap_or_default()),
            user_data: Some(f.user_data.unwrap_or_else(|| Object::new().into())),
        }
    }
}

/// What a track's JSON may hold: the flat fields ([`TrackFields`]) or a Lavalink v4 track
/// (`info`, `pluginInfo`, `userData`), never a mix. One pass, unknown fields rejected.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TrackJson {
    encoded: String,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    author: Option<String>,
    #[serde(default)]
    uri: Option<String>,
    #[serde(default)]
    identifier: Option<String>,
    #[serde(default)]
    length_ms: Option<u64>,
    #[serde(default)]
    is_stream: Option<bool>,
    #[serde(default)]
    is_seekable: Option<bool>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    artwork_url: Option<String>,
    #[serde(default)]
    isrc: Option<String>,
    #[serde(default)]
    plugin_info: Option<Object>,
    #[serde(default)]
    user_data: Option<serde_json::Value>,
    #[serde(default)]
    info: Option<LavalinkTrackInfo>,
    #[serde(default, rename = "pluginInfo")]
    plugin_info_v4: Option<Object>,
    #[serde(default, rename = "userData")]
    user_data_v4: Option<serde_json::Value>,
}

impl TryFrom<TrackJson> for TrackFields {
    type Error = String;

    fn try_from(j: TrackJson) -> Result<TrackFields, String> {
        let flat = [
            ("title", j.title.is_some()),
            ("author", j.author.is_some()),
            ("uri", j.uri.is_some()),
            ("identifier", j.identifier.is_some()),
            ("length_ms", j.length_ms.is_some()),
            ("is_stream", j.is_stream.is_some()),
            ("is_seekable", j.is_seekable.is_some()),
            ("source", j.source.is_some()),
            ("artwork_url", j.artwork_url.is_some()),
            ("isrc", j.isrc.is_some()),
            ("plugin_info", j.plugin_info.is_some()),
            ("user_data", j.user_data.is_some()),
        ];
        match j.info {
            Some(info) => {
                if let Some((name, _)) = flat.iter().find(|(_, given)| *given) {
                    return Err(format!(
                        "a Lavalink v4 track (with `info`) has `{name}` inside `info` or not at all"
                    ));
                }
                Ok(TrackFields::from(LavalinkTrack {
                    encoded: j.encoded,
                    info,
                    plugin_info: j.plugin_info_v4,
                    user_data: j.user_data_v4,
                }))
            }
            None => {
                if j.plugin_info_v4.is_some() || j.user_data_v4.is_some() {
                    return Err(
                        "`pluginInfo` and `userData` belong to a Lavalink v4 track (with `info`); \
                         the flat form spells them `plugin_info` and `user_data`"
                            .to_owned(),
                    );
                }
                Ok(TrackFields {
                    encoded: j.encoded,
                    title: j.title.ok_or("missing field `title`")?,
                    author: j.author,
                    uri: j.uri,
                    identifier: j.identifier,
                    length_ms: j.length_ms,
                    is_stream: j.is_stream,
                    is_seekable: j.is_seekable,
                    source: j.source,
                    artwork_url: j.artwork_url,
                    isrc: j.isrc,
                    plugin_info: j.plugin_info,
                    user_data: j.user_data,
                })
            }
        }
    }
}

impl TryFrom<TrackJson> for Track {
    type Error = String;

    fn try_from(j: TrackJson) -> Result<Track, String> {
        TrackFields::try_from(j).map(Track::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Lavalink v4 track and the flat form with the same data are the same track; the
    /// conversion back gives Lavalink's form; mixing the forms is refused.
    #[test]
    fn both_forms_one_meaning() {
        let v4 = r#"{"encoded":"QAAAjQIAJVJpY2sg","info":{"identifier":"dQw4w9WgXcQ","isSeekable":true,"author":"Rick Astley","length":213000,"isStream":false,"position":0,"title":"Never Gonna Give You Up","uri":"https://youtube.com/watch?v=dQw4w9WgXcQ","artworkUrl":"https://i.ytimg.com/vi/dQw4w9WgXcQ/hq.jpg","isrc":"GBARL9300135","sourceName":"youtube"},"pluginInfo":{},"userData":{"requester":"110"}}"#;
        let flat = r#"{"encoded":"QAAAjQIAJVJpY2sg","title":"Never Gonna Give You Up","author":"Rick Astley","uri":"https://youtube.com/watch?v=dQw4w9WgXcQ","identifier":"dQw4w9WgXcQ","length_ms":213000,"is_stream":false,"is_seekable":true,"source":"youtube","artwork_url":"https://i.ytimg.com/vi/dQw4w9WgXcQ/hq.jpg","isrc":"GBARL9300135","user_data":{"requester":"110"}}"#;
        let from_v4: Track = serde_json::from_str(v4).unwrap();
        let from_flat: Track = serde_json::from_str(flat).unwrap();
        assert_eq!(from_v4, from_flat);
        assert_eq!(serde_json::to_string(&from_v4).unwrap(), flat);
        let back = serde_json::to_value(LavalinkTrack::from(&from_v4)).unwrap();
        assert_eq!(back, serde_json::from_str::<serde_json::Value>(v4).unwrap());
        let typed: LavalinkTrack = serde_json::from_str(v4).unwrap();
        assert_eq!(Track::from(typed), from_v4);
        // In an event too.
        let event = crate::session::Event::from_json(&format!(
            r#"{{"type":"tracks_enqueued","tracks":[{v4},{flat}]}}"#
        ))
        .unwrap();
        assert_eq!(
            event,
            crate::session::Event::enqueue([from_v4.clone(), from_flat])
        );
        for bad in [
            // mixed forms, unknown fields in either, missing title
            r#"{"encoded":"QAAA","title":"t","info":{"title":"t"}}"#,
            r#"{"encoded":"QAAA","title":"t","userData":{}}"#,
            r#"{"encoded":"QAAA","info":{"title":"t"},"user_data":1}"#,
            r#"{"encoded":"QAAA","info":{"title":"t","length_ms":1}}"#,
            r#"{"encoded":"QAAA","info":{"title":"t"},"x":1}"#,
            r#"{"encoded":"QAAA","info":{"author":"a"}}"#,
            r#"{"encoded":"QAAA"}"#,
            r#"{"encoded":"QAAA","title":"t","length":1}"#,
        ] {
            assert!(serde_json::from_str::<Track>(bad).is_err(), "{bad}");
        }
    }
}

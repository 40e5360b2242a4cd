//! The schema of a Sonora 1.2.8 file and its validation, checked on the JSON tree so that every
//! error names the JSON path of the offending value (`data.queue.upcoming[3].length`).
//!
//! Each section has its parser (`parse_player`, `parse_queue`, `parse_filters`,
//! `parse_autoplay`, and `parse_filter_config` for the Lavalink v4 filters payload); each refuses
//! unknown keys, wrong JSON types and values outside Sonora's or reprise's ranges, so that a
//! file the reader accepts maps to a valid [`State`](crate::session::State).

use serde_json::{Map, Value};

use super::{SonoraAutoplay, SonoraError, SonoraFilters, SonoraPlayer, SonoraQueue, SonoraTrack};
use crate::session::limits::{
    ENCODED_LEN_MAX, EQUALIZER_BAND_COUNT, FILTER_NAMES_MAX, NAME_LEN_MAX, QUEUE_LEN_MAX,
    TEXT_LEN_MAX, USER_DATA_BYTES_MAX, VOLUME_MAX,
};
use crate::session::{
    ChannelMix, Distortion, EqualizerBand, EventError, FilterConfig, Karaoke, LoopMode, LowPass,
    Rotation, Timescale, Tremolo, Vibrato,
};

/// `path.key`, or `key` at the root.
pub(super) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// The JSON type of a value, as error messages name it.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a float",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A [`SonoraError::WrongType`].
fn wrong(value: &Value, path: &str, expected: &'static str) -> SonoraError {
    SonoraError::WrongType {
        path: path.to_owned(),
        expected,
        found: kind(value),
    }
}

/// A [`SonoraError::Invalid`].
fn invalid(path: &str, message: impl Into<String>) -> SonoraError {
    SonoraError::Invalid {
        path: path.to_owned(),
        message: message.into(),
    }
}

/// The required `key` of the object at `path`.
pub(super) fn field<'v>(
    map: &'v Map<String, Value>,
    path: &str,
    key: &str,
) -> Result<&'v Value, SonoraError> {
    map.get(key).ok_or_else(|| SonoraError::Missing {
        path: join(path, key),
    })
}

/// Refuses keys outside `allowed`.
pub(super) fn deny_unknown(
    map: &Map<String, Value>,
    path: &str,
    allowed: &[&str],
) -> Result<(), SonoraError> {
    match map.keys().find(|key| !allowed.contains(&key.as_str())) {
        Some(key) => Err(SonoraError::UnknownField {
            path: join(path, key),
        }),
        None => Ok(()),
    }
}

/// The value as an object.
pub(super) fn as_object<'v>(
    value: &'v Value,
    path: &str,
) -> Result<&'v Map<String, Value>, SonoraError> {
    value
        .as_object()
        .ok_or_else(|| wrong(value, path, "an object"))
}

/// The value as an array.
fn as_array<'v>(value: &'v Value, path: &str) -> Result<&'v Vec<Value>, SonoraError> {
    value
        .as_array()
        .ok_or_else(|| wrong(value, path, "an array"))
}

/// The value as a string.
pub(super) fn as_str<'v>(value: &'v Value, path: &str) -> Result<&'v str, SonoraError> {
    value.as_str().ok_or_else(|| wrong(value, path, "a string"))
}

/// The value as a boolean.
fn as_bool(value: &Value, path: &str) -> Result<bool, SonoraError> {
    value
        .as_bool()
        .ok_or_else(|| wrong(value, path, "a boolean"))
}

/// The value as a non-negative integer.
pub(super) fn as_u64(value: &Value, path: &str) -> Result<u64, SonoraError> {
    match value {
        Value::Number(n) if !n.is_f64() => n
            .as_u64()
            .ok_or_else(|| invalid(path, format!("{n} is negative"))),
        _ => Err(wrong(value, path, "a non-negative integer")),
    }
}

/// A Unix time in seconds: a non-negative integer, or a finite non-negative float floored to
/// whole seconds (py-sonora 1.2.8 stamps `SessionSnapshot.timestamp` with `time.time()`, so the
/// files it really writes hold a float such as `1760000222.5377`).
pub(super) fn as_unix_secs(value: &Value, path: &str) -> Result<u64, SonoraError> {
    match value {
        Value::Number(n) if n.is_f64() => {
            let secs = n.as_f64().unwrap_or(f64::NAN);
            if !(0.0..1.8e19).contains(&secs) {
                return Err(invalid(path, format!("{n} is not a Unix time in seconds")));
            }
            // Truncation is the intent (floor of a non-negative value in u64 range).
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            Ok(secs.floor() as u64)
        }
        _ => as_u64(value, path).map_err(|_| wrong(value, path, "a non-negative number")),
    }
}

/// The value as a number (Python's floats and ints alike).
fn as_f64(value: &Value, path: &str) -> Result<f64, SonoraError> {
    value.as_f64().ok_or_else(|| wrong(value, path, "a number"))
}

/// A string `field` of at most `max` bytes, non-empty when `required`.
fn text(
    map: &Map<String, Value>,
    path: &str,
    key: &str,
    max: usize,
    required: bool,
) -> Result<String, SonoraError> {
    let value = field(map, path, key)?;
    let path = join(path, key);
    let value = as_str(value, &path)?;
    check_len(&path, value, max, required)?;
    Ok(value.to_owned())
}

/// A string of at most `max` bytes, non-empty when `required`.
fn check_len(path: &str, value: &str, max: usize, required: bool) -> Result<(), SonoraError> {
    if required && value.is_empty() {
        return Err(invalid(path, "must not be empty"));
    }
    if value.len() > max {
        return Err(invalid(
            path,
            format!("is {} bytes long; at most {max} are allowed", value.len()),
        ));
    }
    Ok(())
}

/// A playback position within its track, unless the track is a stream or of unknown length.
pub(super) fn check_position(
    position: u64,
    track: &SonoraTrack,
    path: &str,
) -> Result<(), SonoraError> {
    if track.length > 0 && !track.is_stream && position > track.length {
        return Err(invalid(
            path,
            format!(
                "{position} is past the end of the track ({} ms)",
                track.length
            ),
        ));
    }
    Ok(())
}

/// `data.player`.
pub(super) fn parse_player(value: &Value, path: &str) -> Result<SonoraPlayer, SonoraError> {
    let map = as_object(value, path)?;
    deny_unknown(
        map,
        path,
        &["volume", "paused", "position", "connected", "session_id"],
    )?;
    let volume_path = join(path, "volume");
    let volume = as_u64(field(map, path, "volume")?, &volume_path)?;
    let volume = u16::try_from(volume)
        .ok()
        .filter(|v| *v <= VOLUME_MAX)
        .ok_or_else(|| {
            invalid(
                &volume_path,
                format!("{volume} is outside the accepted range 0..={VOLUME_MAX}"),
            )
        })?;
    let session_path = join(path, "session_id");
    let session_id = match field(map, path, "session_id")? {
        Value::Null => None,
        other => {
            let id = as_str(other, &session_path)?;
            check_len(&session_path, id, NAME_LEN_MAX, false)?;
            Some(id.to_owned())
        }
    };
    Ok(SonoraPlayer {
        volume,
        paused: as_bool(field(map, path, "paused")?, &join(path, "paused"))?,
        position: as_u64(field(map, path, "position")?, &join(path, "position"))?,
        connected: as_bool(field(map, path, "connected")?, &join(path, "connected"))?,
        session_id,
    })
}

/// A track object.
fn parse_track(value: &Value, path: &str) -> Result<SonoraTrack, SonoraError> {
    let map = as_object(value, path)?;
    deny_unknown(
        map,
        path,
        &[
            "title",
            "author",
            "uri",
            "identifier",
            "length",
            "position",
            "isStream",
            "isSeekable",
            "track",
            "sourceName",
            "artworkUrl",
            "isrc",
            "pluginInfo",
            "userData",
        ],
    )?;
    let uri_path = join(path, "uri");
    let uri = match field(map, path, "uri")? {
        Value::Null => None,
        other => {
            let uri = as_str(other, &uri_path)?;
            check_len(&uri_path, uri, TEXT_LEN_MAX, false)?;
            Some(uri.to_owned())
        }
    };
    let track = SonoraTrack {
        title: text(map, path, "title", TEXT_LEN_MAX, true)?,
        author: text(map, path, "author", TEXT_LEN_MAX, false)?,
        uri,
        identifier: text(map, path, "identifier", TEXT_LEN_MAX, false)?,
        length: as_u64(field(map, path, "length")?, &join(path, "length"))?,
        position: as_u64(field(map, path, "position")?, &join(path, "position"))?,
        is_stream: as_bool(field(map, path, "isStream")?, &join(path, "isStream"))?,
        is_seekable: as_bool(field(map, path, "isSeekable")?, &join(path, "isSeekable"))?,
        track: text(map, path, "track", ENCODED_LEN_MAX, true)?,
        source_name: opt_text(map, path, "sourceName")?,
        artwork_url: opt_text(map, path, "artworkUrl")?,
        isrc: opt_text(map, path, "isrc")?,
        plugin_info: match map.get("pluginInfo") {
            None | Some(Value::Null) => None,
            Some(v) => Some(as_object(v, &join(path, "pluginInfo"))?.clone()),
        },
        user_data: match map.get("userData") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.clone()),
        },
    };
    check_user_data(&track, path)?;
    check_position(track.position, &track, &join(path, "position"))?;
    Ok(track)
}

/// The optional text `key` of the object at `path` (absent or `null`: `None`), at most
/// [`TEXT_LEN_MAX`] bytes.
fn opt_text(
    map: &Map<String, Value>,
    path: &str,
    key: &str,
) -> Result<Option<String>, SonoraError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => {
            let path = join(path, key);
            let text = as_str(value, &path)?;
            check_len(&path, text, TEXT_LEN_MAX, false)?;
            Ok(Some(text.to_owned()))
        }
    }
}

/// `pluginInfo` and `userData` together within [`USER_DATA_BYTES_MAX`] bytes of compact JSON,
/// the bound a track event has.
fn check_user_data(track: &SonoraTrack, path: &str) -> Result<(), SonoraError> {
    let plugin = track
        .plugin_info
        .as_ref()
        .map_or(0, |m| serde_json::to_string(m).map_or(0, |text| text.len()));
    let user = track.user_data.as_ref().map_or(0, |v| v.to_string().len());
    if plugin + user > USER_DATA_BYTES_MAX {
        return Err(invalid(
            &join(path, "userData"),
            format!(
                "pluginInfo and userData are {} bytes of JSON; at most {USER_DATA_BYTES_MAX} are allowed",
                plugin + user
            ),
        ));
    }
    Ok(())
}

/// An array of track objects, at most `max` of them.
fn parse_tracks(value: &Value, path: &str, max: usize) -> Result<Vec<SonoraTrack>, SonoraError> {
    let items = as_array(value, path)?;
    if items.len() > max {
        return Err(invalid(
            path,
            format!("has {} tracks; at most {max} are allowed", items.len()),
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| parse_track(item, &format!("{path}[{i}]")))
        .collect()
}

/// `data.queue`.
pub(super) fn parse_queue(value: &Value, path: &str) -> Result<SonoraQueue, SonoraError> {
    let map = as_object(value, path)?;
    deny_unknown(
        map,
        path,
        &[
            "current",
            "upcoming",
            "history",
            "loop_mode",
            "shuffle_enabled",
        ],
    )?;
    let current = match field(map, path, "current")? {
        Value::Null => None,
        other => Some(parse_track(other, &join(path, "current"))?),
    };
    let upcoming_path = join(path, "upcoming");
    let upcoming = parse_tracks(field(map, path, "upcoming")?, &upcoming_path, QUEUE_LEN_MAX)?;
    let history_path = join(path, "history");
    let history = parse_tracks(field(map, path, "history")?, &history_path, usize::MAX)?;
    let mode_path = join(path, "loop_mode");
    let loop_mode = match as_str(field(map, path, "loop_mode")?, &mode_path)? {
        "none" => LoopMode::None,
        "track" => LoopMode::Track,
        "queue" => LoopMode::Queue,
        "autoplay" => LoopMode::Autoplay,
        other => {
            return Err(invalid(
                &mode_path,
                format!("{other:?} is not one of none, track, queue, autoplay"),
            ))
        }
    };
    let shuffle_path = join(path, "shuffle_enabled");
    Ok(SonoraQueue {
        current,
        upcoming,
        history,
        loop_mode,
        shuffle_enabled: as_bool(field(map, path, "shuffle_enabled")?, &shuffle_path)?,
    })
}

/// `data.filters`.
pub(super) fn parse_filters(value: &Value, path: &str) -> Result<SonoraFilters, SonoraError> {
    let map = as_object(value, path)?;
    deny_unknown(map, path, &["active_filters", "filter_config"])?;
    let active_path = join(path, "active_filters");
    let names = as_array(field(map, path, "active_filters")?, &active_path)?;
    if names.len() > FILTER_NAMES_MAX {
        return Err(invalid(
            &active_path,
            format!(
                "has {} names; at most {FILTER_NAMES_MAX} are allowed",
                names.len()
            ),
        ));
    }
    let mut active_filters: Vec<String> = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let name_path = format!("{active_path}[{i}]");
        let name = as_str(name, &name_path)?;
        check_len(&name_path, name, NAME_LEN_MAX, true)?;
        if active_filters.iter().any(|earlier| earlier == name) {
            return Err(invalid(&name_path, format!("{name:?} is listed twice")));
        }
        active_filters.push(name.to_owned());
    }
    let config_path = join(path, "filter_config");
    let filter_config = parse_filter_config(field(map, path, "filter_config")?, &config_path)?;
    Ok(SonoraFilters {
        active_filters,
        filter_config,
    })
}

/// The optional number `key` of the object at `path`.
fn opt_float(map: &Map<String, Value>, path: &str, key: &str) -> Result<Option<f64>, SonoraError> {
    map.get(key)
        .map(|value| as_f64(value, &join(path, key)))
        .transpose()
}

/// The optional object `key` of the object at `path`, holding only the numbers `keys`.
fn float_object<const N: usize>(
    map: &Map<String, Value>,
    path: &str,
    key: &str,
    keys: [&str; N],
) -> Result<Option<[Option<f64>; N]>, SonoraError> {
    let Some(value) = map.get(key) else {
        return Ok(None);
    };
    let path = join(path, key);
    let inner = as_object(value, &path)?;
    deny_unknown(inner, &path, &keys)?;
    let mut out = [None; N];
    for (slot, key) in out.iter_mut().zip(keys) {
        *slot = opt_float(inner, &path, key)?;
    }
    Ok(Some(out))
}

/// The key a filter uses in the file: Lavalink's camelCase, or the snake_case alias.
fn filter_key<'k>(
    map: &Map<String, Value>,
    path: &str,
    camel: &'k str,
    snake: &'k str,
) -> Result<&'k str, SonoraError> {
    match (map.contains_key(camel), map.contains_key(snake)) {
        (true, true) => Err(invalid(
            &join(path, snake),
            format!("{camel} and {snake} are the same filter; give one"),
        )),
        (false, true) => Ok(snake),
        _ => Ok(camel),
    }
}

/// `data.filters.filter_config`: a Lavalink v4 filters payload, checked against Lavalink's ranges.
fn parse_filter_config(value: &Value, path: &str) -> Result<FilterConfig, SonoraError> {
    let map = as_object(value, path)?;
    deny_unknown(
        map,
        path,
        &[
            "volume",
            "equalizer",
            "karaoke",
            "timescale",
            "tremolo",
            "vibrato",
            "rotation",
            "distortion",
            "channelMix",
            "channel_mix",
            "lowPass",
            "low_pass",
        ],
    )?;
    let mix_key = filter_key(map, path, "channelMix", "channel_mix")?;
    let low_pass_key = filter_key(map, path, "lowPass", "low_pass")?;
    let mut config = FilterConfig {
        volume: opt_float(map, path, "volume")?,
        ..FilterConfig::default()
    };
    if let Some(bands) = map.get("equalizer") {
        let bands_path = join(path, "equalizer");
        let items = as_array(bands, &bands_path)?;
        if items.len() > EQUALIZER_BAND_COUNT {
            return Err(invalid(
                &bands_path,
                format!(
                    "has {} bands; at most {EQUALIZER_BAND_COUNT} are allowed",
                    items.len()
                ),
            ));
        }
        let mut parsed = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let item_path = format!("{bands_path}[{i}]");
            let entry = as_object(item, &item_path)?;
            deny_unknown(entry, &item_path, &["band", "gain"])?;
            let band_path = join(&item_path, "band");
            let band = as_u64(field(entry, &item_path, "band")?, &band_path)?;
            let band = u8::try_from(band)
                .ok()
                .filter(|b| usize::from(*b) < EQUALIZER_BAND_COUNT)
                .ok_or_else(|| {
                    invalid(
                        &band_path,
                        format!(
                            "{band} is outside the accepted range 0..={}",
                            EQUALIZER_BAND_COUNT - 1
                        ),
                    )
                })?;
            let gain = as_f64(field(entry, &item_path, "gain")?, &join(&item_path, "gain"))?;
            parsed.push(EqualizerBand { band, gain });
        }
        config.equalizer = Some(parsed);
    }
    let keys = ["level", "monoLevel", "filterBand", "filterWidth"];
    if let Some([level, mono_level, filter_band, filter_width]) =
        float_object(map, path, "karaoke", keys)?
    {
        config.karaoke = Some(Karaoke {
            level,
            mono_level,
            filter_band,
            filter_width,
        });
    }
    let keys = ["speed", "pitch", "rate"];
    if let Some([speed, pitch, rate]) = float_object(map, path, "timescale", keys)? {
        config.timescale = Some(Timescale { speed, pitch, rate });
    }
    if let Some([frequency, depth]) = float_object(map, path, "tremolo", ["frequency", "depth"])? {
        config.tremolo = Some(Tremolo { frequency, depth });
    }
    if let Some([frequency, depth]) = float_object(map, path, "vibrato", ["frequency", "depth"])? {
        config.vibrato = Some(Vibrato { frequency, depth });
    }
    if let Some([rotation_hz]) = float_object(map, path, "rotation", ["rotationHz"])? {
        config.rotation = Some(Rotation { rotation_hz });
    }
    let keys = [
        "sinOffset",
        "sinScale",
        "cosOffset",
        "cosScale",
        "tanOffset",
        "tanScale",
        "offset",
        "scale",
    ];
    if let Some(
        [sin_offset, sin_scale, cos_offset, cos_scale, tan_offset, tan_scale, offset, scale],
    ) = float_object(map, path, "distortion", keys)?
    {
        config.distortion = Some(Distortion {
            sin_offset,
            sin_scale,
            cos_offset,
            cos_scale,
            tan_offset,
            tan_scale,
            offset,
            scale,
        });
    }
    let keys = ["leftToLeft", "leftToRight", "rightToLeft", "rightToRight"];
    if let Some([left_to_left, left_to_right, right_to_left, right_to_right]) =
        float_object(map, path, mix_key, keys)?
    {
        config.channel_mix = Some(ChannelMix {
            left_to_left,
            left_to_right,
            right_to_left,
            right_to_right,
        });
    }
    if let Some([smoothing]) = float_object(map, path, low_pass_key, ["smoothing"])? {
        config.low_pass = Some(LowPass { smoothing });
    }
    config
        .validate()
        .map_err(|error| filter_error(&error, path, mix_key, low_pass_key))?;
    Ok(config)
}

/// A [`FilterConfig::validate`] error, with its `config.` field turned into a file path.
fn filter_error(error: &EventError, path: &str, mix_key: &str, low_pass_key: &str) -> SonoraError {
    let to_path = |field: &str| {
        let field = field.strip_prefix("config.").unwrap_or(field);
        let field = match field.split_once('.') {
            Some(("channel_mix", rest)) => format!("{mix_key}.{rest}"),
            Some(("low_pass", rest)) => format!("{low_pass_key}.{rest}"),
            _ => field.to_owned(),
        };
        join(path, &field)
    };
    match error {
        EventError::FilterOutOfRange {
            field,
            value,
            range,
        } => invalid(
            &to_path(field),
            format!("{value} is outside the accepted range {range}"),
        ),
        EventError::NotFinite { field } => invalid(&to_path(field), "must be a finite number"),
        EventError::DuplicateBand { band } => invalid(
            &join(path, "equalizer"),
            format!("lists band {band} more than once"),
        ),
        other => invalid(path, other.to_string()),
    }
}

/// `data.autoplay`.
pub(super) fn parse_autoplay(value: &Value, path: &str) -> Result<SonoraAutoplay, SonoraError> {
    let map = as_object(value, path)?;
    deny_unknown(
        map,
        path,
        &[
            "enabled",
            "strategy",
            "fallback_playlist",
            "max_history",
            "smart_shuffle",
        ],
    )?;
    let history_path = join(path, "max_history");
    let max_history = as_u64(field(map, path, "max_history")?, &history_path)?;
    let max_history = u32::try_from(max_history)
        .map_err(|_| invalid(&history_path, format!("{max_history} does not fit 32 bits")))?;
    let playlist_path = join(path, "fallback_playlist");
    let fallback_playlist = match map.get("fallback_playlist") {
        None | Some(Value::Null) => None,
        Some(other) => {
            let playlist = as_str(other, &playlist_path)?;
            check_len(&playlist_path, playlist, TEXT_LEN_MAX, false)?;
            Some(playlist.to_owned())
        }
    };
    Ok(SonoraAutoplay {
        enabled: as_bool(field(map, path, "enabled")?, &join(path, "enabled"))?,
        strategy: text(map, path, "strategy", NAME_LEN_MAX, true)?,
        max_history,
        smart_shuffle: as_bool(
            field(map, path, "smart_shuffle")?,
            &join(path, "smart_shuffle"),
        )?,
        fallback_playlist,
    })
}

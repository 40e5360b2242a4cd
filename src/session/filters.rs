//! [`FilterConfig`]: Lavalink v4 audio filters, and their validation.
//!
//! The outer keys are snake_case as contract §1 lists them (`channel_mix`, `low_pass`), with
//! Lavalink's `channelMix` / `lowPass` accepted as input aliases; the inner fields are Lavalink
//! v4's camelCase names. Every field is optional and skipped on output when absent, so a config
//! round-trips exactly through the binary form. Unknown keys are rejected at every level.
//!
//! Validation ([`FilterConfig::validate`]) follows Lavalink v4's ranges:
//!
//! | field | accepted |
//! | --- | --- |
//! | every float | finite |
//! | `volume` | `0.0..=5.0` |
//! | `equalizer` | at most 15 entries, `band` `0..=14` each at most once, `gain` `-0.25..=1.0` |
//! | `karaoke` | `level`, `monoLevel` in `0.0..=1.0`; `filterBand`, `filterWidth` any finite |
//! | `timescale` | `speed`, `pitch`, `rate` > 0 |
//! | `tremolo` | `frequency` > 0, `depth` in `(0.0, 1.0]` |
//! | `vibrato` | `frequency` in `(0.0, 14.0]`, `depth` in `(0.0, 1.0]` |
//! | `rotation` | `rotationHz` any finite (the sign is the direction) |
//! | `distortion` | any finite |
//! | `channel_mix` | each factor in `0.0..=1.0` |
//! | `low_pass` | `smoothing` >= 0 (Lavalink treats values <= 1.0 as "off", so they are legal) |

use serde::{Deserialize, Serialize};

use super::limits::EQUALIZER_BAND_COUNT;
use super::EventError;

/// The whole filter configuration of a player (Lavalink v4's `filters` object).
#[derive(
    Clone, Debug, Default, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode,
)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    /// Filter volume multiplier, `0.0..=5.0` (1.0 = unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<f64>,
    /// Equalizer gains per band.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equalizer: Option<Vec<EqualizerBand>>,
    /// Vocal removal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub karaoke: Option<Karaoke>,
    /// Speed, pitch and rate (nightcore, vaporwave).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timescale: Option<Timescale>,
    /// Volume oscillation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tremolo: Option<Tremolo>,
    /// Pitch oscillation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vibrato: Option<Vibrato>,
    /// Stereo panning rotation (8D audio).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<Rotation>,
    /// Waveform distortion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distortion: Option<Distortion>,
    /// Left/right channel mixing (input alias `channelMix`).
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "channelMix")]
    pub channel_mix: Option<ChannelMix>,
    /// Low-pass smoothing (input alias `lowPass`).
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "lowPass")]
    pub low_pass: Option<LowPass>,
}

/// One equalizer entry: a band number and its gain.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(deny_unknown_fields)]
pub struct EqualizerBand {
    /// The band, `0..=14` (25 Hz up to 16 kHz).
    pub band: u8,
    /// The gain multiplier, `-0.25..=1.0` (0 = unchanged, -0.25 = muted).
    pub gain: f64,
}

/// Karaoke (vocal removal) settings; Lavalink's field names.
#[derive(
    Clone, Debug, Default, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode,
)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Karaoke {
    /// Effect level, `0.0..=1.0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<f64>,
    /// Mono level, `0.0..=1.0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mono_level: Option<f64>,
    /// Filter band in Hz.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter_band: Option<f64>,
    /// Filter width.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter_width: Option<f64>,
}

/// Timescale settings; each factor > 0 (1.0 = unchanged).
#[derive(
    Clone, Debug, Default, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode,
)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Timescale {
    /// Playback speed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed: Option<f64>,
    /// Pitch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pitch: Option<f64>,
    /// Rate (speed and pitch together).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
}

/// Tremolo (volume oscillation) settings.
#[derive(
    Clone, Debug, Default, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode,
)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Tremolo {
    /// Oscillation frequency in Hz, > 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency: Option<f64>,
    /// Depth, `(0.0, 1.0]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depth: Option<f64>,
}

/// Vibrato (pitch oscillation) settings.
#[derive(
    Clone, Debug, Default, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode,
)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Vibrato {
    /// Oscillation frequency in Hz, `(0.0, 14.0]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency: Option<f64>,
    /// Depth, `(0.0, 1.0]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depth: Option<f64>,
}

/// Rotation (audio panning) settings.
#[derive(
    Clone, Debug, Default, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode,
)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Rotation {
    /// Rotation frequency in Hz (0.2 is the classic "8D" effect).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_hz: Option<f64>,
}

/// Distortion settings (all factors free, finite).
#[derive(
    Clone, Debug, Default, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode,
)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Distortion {
    /// Sine offset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sin_offset: Option<f64>,
    /// Sine scale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sin_scale: Option<f64>,
    /// Cosine offset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cos_offset: Option<f64>,
    /// Cosine scale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cos_scale: Option<f64>,
    /// Tangent offset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tan_offset: Option<f64>,
    /// Tangent scale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tan_scale: Option<f64>,
    /// Overall offset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<f64>,
    /// Overall scale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<f64>,
}

/// Channel mix factors, each `0.0..=1.0`.
#[derive(
    Clone, Debug, Default, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode,
)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ChannelMix {
    /// Left input into the left output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub left_to_left: Option<f64>,
    /// Left input into the right output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub left_to_right: Option<f64>,
    /// Right input into the left output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub right_to_left: Option<f64>,
    /// Right input into the right output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub right_to_right: Option<f64>,
}

/// Low-pass settings.
#[derive(
    Clone, Debug, Default, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode,
)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LowPass {
    /// Smoothing factor, >= 0 (values <= 1.0 disable the filter in Lavalink).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smoothing: Option<f64>,
}

/// An accepted range of a filter field, written as in error messages.
#[derive(Clone, Copy)]
enum Range {
    /// Any finite value.
    Finite,
    /// `low..=high`.
    Closed(f64, f64, &'static str),
    /// `> 0`.
    Positive,
    /// `(0, high]`.
    PositiveUpTo(f64, &'static str),
    /// `>= 0`.
    NonNegative,
}

impl Range {
    /// Whether a finite `value` lies in the range.
    fn contains(self, value: f64) -> bool {
        match self {
            Range::Finite => true,
            Range::Closed(low, high, _) => (low..=high).contains(&value),
            Range::Positive => value > 0.0,
            Range::PositiveUpTo(high, _) => value > 0.0 && value <= high,
            Range::NonNegative => value >= 0.0,
        }
    }

    /// The range as shown in error messages.
    fn text(self) -> &'static str {
        match self {
            Range::Finite => "finite",
            Range::Closed(_, _, text) | Range::PositiveUpTo(_, text) => text,
            Range::Positive => "> 0",
            Range::NonNegative => ">= 0",
        }
    }
}

/// The unit range of karaoke levels, channel mix factors, etc.
const UNIT: Range = Range::Closed(0.0, 1.0, "0.0..=1.0");

/// Checks one optional float: finite and in `range`. `field` is the full path for errors.
fn check(field: &str, value: Option<f64>, range: Range) -> Result<(), EventError> {
    let Some(value) = value else {
        return Ok(());
    };
    if !value.is_finite() {
        return Err(EventError::NotFinite {
            field: field.to_owned(),
        });
    }
    if !range.contains(value) {
        return Err(EventError::FilterOutOfRange {
            field: field.to_owned(),
            value,
            range: range.text(),
        });
    }
    Ok(())
}

impl FilterConfig {
    /// A config with only a timescale: `speed`, `pitch` and `rate` (1.0 = unchanged); e.g.
    /// nightcore is `FilterConfig::timescale(1.25, 1.3, 1.0)`. Chain [`FilterConfig::with_equalizer`]
    /// to add bands.
    pub fn timescale(speed: f64, pitch: f64, rate: f64) -> FilterConfig {
        FilterConfig {
            timescale: Some(Timescale {
                speed: Some(speed),
                pitch: Some(pitch),
                rate: Some(rate),
            }),
            ..FilterConfig::default()
        }
    }

    /// A config with only an equalizer: `(band, gain)` pairs (bands `0..=14`, gains
    /// `-0.25..=1.0`); e.g. a bass boost is `FilterConfig::equalizer([(0, 0.2), (1, 0.15)])`.
    pub fn equalizer(bands: impl IntoIterator<Item = (u8, f64)>) -> FilterConfig {
        FilterConfig::default().with_equalizer(bands)
    }

    /// This config with its equalizer replaced by `bands` (`(band, gain)` pairs).
    pub fn with_equalizer(mut self, bands: impl IntoIterator<Item = (u8, f64)>) -> FilterConfig {
        self.equalizer = Some(
            bands
                .into_iter()
                .map(|(band, gain)| EqualizerBand { band, gain })
                .collect(),
        );
        self
    }

    /// Whether no filter is configured (the `{}` config).
    pub fn is_empty(&self) -> bool {
        *self == FilterConfig::default()
    }

    /// Checks every field against Lavalink v4's ranges (see the module docs). Errors name the
    /// field by its JSON path below `config` (e.g. `config.equalizer[3].gain`).
    ///
    /// # Errors
    /// [`EventError::NotFinite`], [`EventError::FilterOutOfRange`],
    /// [`EventError::DuplicateBand`] or [`EventError::TooMany`].
    pub fn validate(&self) -> Result<(), EventError> {
        check(
            "config.volume",
            self.volume,
            Range::Closed(0.0, 5.0, "0.0..=5.0"),
        )?;
        if let Some(bands) = &self.equalizer {
            validate_equalizer(bands)?;
        }
        if let Some(k) = &self.karaoke {
            check("config.karaoke.level", k.level, UNIT)?;
            check("config.karaoke.monoLevel", k.mono_level, UNIT)?;
            check("config.karaoke.filterBand", k.filter_band, Range::Finite)?;
            check("config.karaoke.filterWidth", k.filter_width, Range::Finite)?;
        }
        if let Some(t) = &self.timescale {
            check("config.timescale.speed", t.speed, Range::Positive)?;
            check("config.timescale.pitch", t.pitch, Range::Positive)?;
            check("config.timescale.rate", t.rate, Range::Positive)?;
        }
        let depth = Range::PositiveUpTo(1.0, "(0.0, 1.0]");
        if let Some(t) = &self.tremolo {
            check("config.tremolo.frequency", t.frequency, Range::Positive)?;
            check("config.tremolo.depth", t.depth, depth)?;
        }
        if let Some(v) = &self.vibrato {
            let frequency = Range::PositiveUpTo(14.0, "(0.0, 14.0]");
            check("config.vibrato.frequency", v.frequency, frequency)?;
            check("config.vibrato.depth", v.depth, depth)?;
        }
        if let Some(r) = &self.rotation {
            check("config.rotation.rotationHz", r.rotation_hz, Range::Finite)?;
        }
        if let Some(d) = &self.distortion {
            let fields = [
                ("config.distortion.sinOffset", d.sin_offset),
                ("config.distortion.sinScale", d.sin_scale),
                ("config.distortion.cosOffset", d.cos_offset),
                ("config.distortion.cosScale", d.cos_scale),
                ("config.distortion.tanOffset", d.tan_offset),
                ("config.distortion.tanScale", d.tan_scale),
                ("config.distortion.offset", d.offset),
                ("config.distortion.scale", d.scale),
            ];
            for (field, value) in fields {
                check(field, value, Range::Finite)?;
            }
        }
        if let Some(m) = &self.channel_mix {
            check("config.channel_mix.leftToLeft", m.left_to_left, UNIT)?;
            check("config.channel_mix.leftToRight", m.left_to_right, UNIT)?;
            check("config.channel_mix.rightToLeft", m.right_to_left, UNIT)?;
            check("config.channel_mix.rightToRight", m.right_to_right, UNIT)?;
        }
        if let Some(l) = &self.low_pass {
            check("config.low_pass.smoothing", l.smoothing, Range::NonNegative)?;
        }
        Ok(())
    }
}

/// Checks the equalizer list: length, band numbers (each at most once) and gains.
fn validate_equalizer(bands: &[EqualizerBand]) -> Result<(), EventError> {
    if bands.len() > EQUALIZER_BAND_COUNT {
        return Err(EventError::TooMany {
            field: "config.equalizer".to_owned(),
            len: bands.len(),
            max: EQUALIZER_BAND_COUNT,
        });
    }
    let mut seen = [false; EQUALIZER_BAND_COUNT];
    for (i, entry) in bands.iter().enumerate() {
        let Some(slot) = seen.get_mut(usize::from(entry.band)) else {
            return Err(EventError::FilterOutOfRange {
                field: format!("config.equalizer[{i}].band"),
                value: f64::from(entry.band),
                range: "0..=14",
            });
        };
        if *slot {
            return Err(EventError::DuplicateBand { band: entry.band });
        }
        *slot = true;
        let gain = Range::Closed(-0.25, 1.0, "-0.25..=1.0");
        check(
            &format!("config.equalizer[{i}].gain"),
            Some(entry.gain),
            gain,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<FilterConfig, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn full_config_round_trips_exactly() {
        let json = r#"{"volume":1.5,"equalizer":[{"band":0,"gain":0.2},{"band":1,"gain":0.15}],"karaoke":{"level":1.0,"monoLevel":1.0,"filterBand":220.0,"filterWidth":100.0},"timescale":{"speed":1.2,"pitch":1.1,"rate":1.0},"tremolo":{"frequency":2.0,"depth":0.5},"vibrato":{"frequency":14.0,"depth":1.0},"rotation":{"rotationHz":0.2},"distortion":{"sinOffset":0.0,"sinScale":1.0,"cosOffset":0.0,"cosScale":1.0,"tanOffset":0.0,"tanScale":1.0,"offset":0.0,"scale":1.0},"channel_mix":{"leftToLeft":1.0,"leftToRight":0.0,"rightToLeft":0.0,"rightToRight":1.0},"low_pass":{"smoothing":20.0}}"#;
        let config = parse(json).unwrap();
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(serde_json::to_string(&config).unwrap(), json);
    }

    #[test]
    fn partial_inner_objects_stay_partial() {
        let json = r#"{"timescale":{"pitch":1.2},"karaoke":{}}"#;
        let config = parse(json).unwrap();
        assert_eq!(
            serde_json::to_string(&config).unwrap(),
            r#"{"karaoke":{},"timescale":{"pitch":1.2}}"#
        );
        assert!(parse("{}").unwrap().is_empty());
        assert!(!config.is_empty());
    }

    #[test]
    fn lavalink_aliases_accepted_and_written_snake_case() {
        let config =
            parse(r#"{"channelMix":{"leftToLeft":0.5},"lowPass":{"smoothing":20}}"#).unwrap();
        assert_eq!(
            serde_json::to_string(&config).unwrap(),
            r#"{"channel_mix":{"leftToLeft":0.5},"low_pass":{"smoothing":20.0}}"#
        );
    }

    #[test]
    fn unknown_keys_rejected_at_every_level() {
        assert!(parse(r#"{"bassboost":{}}"#).is_err());
        assert!(parse(r#"{"pluginFilters":{}}"#).is_err());
        assert!(parse(r#"{"timescale":{"speed":1.0,"tempo":1.0}}"#).is_err());
        assert!(parse(r#"{"karaoke":{"mono_level":1.0}}"#).is_err());
        assert!(parse(r#"{"equalizer":[{"band":0,"gain":0.1,"q":1}]}"#).is_err());
        assert!(parse(r#"{"equalizer":[{"band":0}]}"#).is_err());
        assert!(parse(r#"{"channel_mix":{},"channelMix":{}}"#).is_err());
    }

    #[test]
    fn equalizer_band_15_rejected() {
        let config = parse(r#"{"equalizer":[{"band":15,"gain":0.1}]}"#).unwrap();
        assert_eq!(
            config.validate(),
            Err(EventError::FilterOutOfRange {
                field: "config.equalizer[0].band".into(),
                value: 15.0,
                range: "0..=14"
            })
        );
    }

    #[test]
    fn equalizer_duplicates_and_length() {
        let dup = parse(r#"{"equalizer":[{"band":3,"gain":0.1},{"band":3,"gain":0.2}]}"#).unwrap();
        assert_eq!(dup.validate(), Err(EventError::DuplicateBand { band: 3 }));
        let bands: Vec<EqualizerBand> = (0..16)
            .map(|band| EqualizerBand {
                band: band % 15,
                gain: 0.0,
            })
            .collect();
        let many = FilterConfig {
            equalizer: Some(bands),
            ..FilterConfig::default()
        };
        assert!(matches!(
            many.validate(),
            Err(EventError::TooMany {
                len: 16,
                max: 15,
                ..
            })
        ));
        let all: Vec<EqualizerBand> = (0..15)
            .map(|band| EqualizerBand { band, gain: 1.0 })
            .collect();
        let full = FilterConfig {
            equalizer: Some(all),
            ..FilterConfig::default()
        };
        assert_eq!(full.validate(), Ok(()));
    }

    #[test]
    fn non_finite_values_rejected() {
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let config = FilterConfig {
                equalizer: Some(vec![EqualizerBand { band: 2, gain: bad }]),
                ..FilterConfig::default()
            };
            assert_eq!(
                config.validate(),
                Err(EventError::NotFinite {
                    field: "config.equalizer[0].gain".into()
                })
            );
            let config = FilterConfig {
                rotation: Some(Rotation {
                    rotation_hz: Some(bad),
                }),
                ..FilterConfig::default()
            };
            assert!(matches!(
                config.validate(),
                Err(EventError::NotFinite { .. })
            ));
        }
    }

    #[test]
    fn ranges_enforced() {
        let cases = [
            (r#"{"volume":5.01}"#, "config.volume"),
            (r#"{"volume":-0.1}"#, "config.volume"),
            (
                r#"{"equalizer":[{"band":0,"gain":-0.26}]}"#,
                "config.equalizer[0].gain",
            ),
            (
                r#"{"equalizer":[{"band":0,"gain":1.01}]}"#,
                "config.equalizer[0].gain",
            ),
            (r#"{"timescale":{"speed":0}}"#, "config.timescale.speed"),
            (r#"{"timescale":{"rate":-1}}"#, "config.timescale.rate"),
            (r#"{"tremolo":{"frequency":0}}"#, "config.tremolo.frequency"),
            (r#"{"tremolo":{"depth":0}}"#, "config.tremolo.depth"),
            (
                r#"{"vibrato":{"frequency":14.5}}"#,
                "config.vibrato.frequency",
            ),
            (r#"{"vibrato":{"depth":1.5}}"#, "config.vibrato.depth"),
            (r#"{"karaoke":{"level":1.5}}"#, "config.karaoke.level"),
            (
                r#"{"karaoke":{"monoLevel":-0.5}}"#,
                "config.karaoke.monoLevel",
            ),
            (
                r#"{"channel_mix":{"rightToLeft":2}}"#,
                "config.channel_mix.rightToLeft",
            ),
            (
                r#"{"low_pass":{"smoothing":-1}}"#,
                "config.low_pass.smoothing",
            ),
        ];
        for (json, field) in cases {
            match parse(json).unwrap().validate() {
                Err(EventError::FilterOutOfRange { field: got, .. }) => {
                    assert_eq!(got, field, "{json}")
                }
                other => panic!("{json}: {other:?}"),
            }
        }
        let edges = [
            r#"{"volume":0}"#,
            r#"{"volume":5}"#,
            r#"{"equalizer":[{"band":14,"gain":-0.25}]}"#,
            r#"{"vibrato":{"frequency":14,"depth":1}}"#,
            r#"{"low_pass":{"smoothing":0}}"#,
            r#"{"rotation":{"rotationHz":-0.2}}"#,
            r#"{"distortion":{"scale":-3}}"#,
        ];
        for json in edges {
            assert_eq!(parse(json).unwrap().validate(), Ok(()), "{json}");
        }
    }
}

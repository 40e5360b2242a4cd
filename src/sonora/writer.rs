//! The Python-exact JSON writer: a [`SonoraFile`] as Sonora's `json.dumps(indent=2)` writes it
//! ([`to_json`]), and the checksum over Python's `json.dumps(sort_keys=True)` of its content
//! ([`checksum`], [`python_json_dumps_sorted`]), with floats in Python's `repr`
//! ([`python_float_repr`]).
//!
//! Both writers walk a [`Node`] tree: JSON as Python's `json` module holds it (integers and
//! floats apart, object keys in insertion order). The reader builds the same tree from a file's
//! text to recompute its checksum over the values exactly as written.

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{SonoraFile, SonoraTrack};
use crate::session::FilterConfig;

/// The file's text as Sonora writes it: Python's `json.dumps(file, indent=2)` in Sonora's key
/// order, ASCII only, no trailing newline. The `checksum` is written as the value holds it
/// ([`from_state`](super::from_state) sets it; after changing a file, set
/// `file.checksum = checksum(&file)`).
pub fn to_json(file: &SonoraFile) -> String {
    let mut out = String::with_capacity(4096);
    file_node(file, true).write_indented(&mut out, 0);
    out
}

/// The checksum Sonora computes for the file's content (everything but `checksum`): the
/// lowercase SHA-256 hex digest of [`python_json_dumps_sorted`] of it.
pub fn checksum(file: &SonoraFile) -> String {
    sha256_hex(&file_node(file, false).dumps_sorted())
}

/// Python's `json.dumps(value, sort_keys=True)`: separators `", "` and `": "`, keys sorted by
/// code point, `ensure_ascii` escapes (`\uXXXX`, astral characters as surrogate pairs, lowercase
/// hex; `\"`, `\\`, `\n`, `\r`, `\t`, `\b`, `\f`), integers as integers and floats in Python's
/// `repr` ([`python_float_repr`]).
pub fn python_json_dumps_sorted(value: &Value) -> String {
    Node::from_value(value).dumps_sorted()
}

/// Python's `repr(float)`: the shortest digits that read back as `x` (ties between two shortest
/// candidates broken to even, as Python does), in positional notation when the decimal exponent
/// is in `-4..16` (always with a fractional part: `1.0`), otherwise in scientific notation with a
/// signed exponent of at least two digits (`1e-05`, `1.5e+300`); `nan`, `inf`, `-inf`.
pub fn python_float_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".to_owned();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    let mut out = String::new();
    if x.is_sign_negative() {
        out.push('-');
    }
    if x == 0.0 {
        out.push_str("0.0");
        return out;
    }
    let (digits, exp) = shortest_digits(x.abs());
    let len = digits.len();
    let int_len = usize::try_from(exp + 1).unwrap_or(0);
    let zeros = usize::try_from(-exp - 1).unwrap_or(0);
    if (0..16).contains(&exp) {
        if len <= int_len {
            out.push_str(&digits);
            out.extend(std::iter::repeat_n('0', int_len - len));
            out.push_str(".0");
        } else {
            let (int_part, frac_part) = digits.split_at(int_len);
            out.push_str(int_part);
            out.push('.');
            out.push_str(frac_part);
        }
    } else if (-4..0).contains(&exp) {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', zeros));
        out.push_str(&digits);
    } else {
        let (first, rest) = digits.split_at(1.min(len));
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        out.push_str(&format!("{:02}", exp.unsigned_abs()));
    }
    out
}

/// The shortest decimal digits of a finite positive `x` that read back as `x`, and the decimal
/// exponent of the first digit, with Python's tie-break.
fn shortest_digits(x: f64) -> (String, i32) {
    let (mut digits, exp) = scientific_parts(&format!("{x:e}"));
    // Rust rounds a tie between two shortest candidates up; Python picks the even one. A tie
    // means x lies exactly halfway, so the odd last digit goes down by one.
    if let Some(last) = digits.bytes().last().filter(|b| (b - b'0') % 2 == 1) {
        let mut lower = digits.clone();
        lower.pop();
        lower.push(char::from(last - 1));
        let midpoint = format!("{lower}5");
        if is_exactly(x, &midpoint, exp) && reads_back(x, &lower, exp) {
            digits = lower.trim_end_matches('0').to_owned();
            if digits.is_empty() {
                digits.push('0');
            }
        }
    }
    (digits, exp)
}

/// Splits Rust's `{:e}` form (`1.2345e-5`) into its digits (`12345`) and exponent (`-5`).
fn scientific_parts(formatted: &str) -> (String, i32) {
    let (mantissa, exp) = formatted.split_once('e').unwrap_or((formatted, "0"));
    let digits = mantissa.chars().filter(char::is_ascii_digit).collect();
    (digits, exp.parse().unwrap_or(0))
}

/// `d.ddd` × 10^`exp` written back as text.
fn scientific(digits: &str, exp: i32) -> String {
    let (first, rest) = digits.split_at(1.min(digits.len()));
    format!("{first}.{rest}0e{exp}")
}

/// Whether the decimal `digits` × 10^(`exp` − first digit) reads back as `x`.
fn reads_back(x: f64, digits: &str, exp: i32) -> bool {
    scientific(digits, exp).parse::<f64>().ok() == Some(x)
}

/// Whether `x` is exactly the decimal `digits` × 10^(`exp` − first digit).
fn is_exactly(x: f64, digits: &str, exp: i32) -> bool {
    if !reads_back(x, digits, exp) {
        return false;
    }
    // A double has at most 767 significant decimal digits: 800 show it exactly.
    let (exact, exact_exp) = scientific_parts(&format!("{x:.800e}"));
    exact_exp == exp && exact.trim_end_matches('0') == digits.trim_end_matches('0')
}

/// The lowercase hex SHA-256 of `text`.
pub(super) fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .flat_map(|byte| [byte >> 4, byte & 0xf])
        .filter_map(|nibble| char::from_digit(u32::from(nibble), 16))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The JSON tree as Python sees it, and Python's two ways of writing it.

/// A JSON value as Python's `json` module holds it: integers and floats apart, object keys in
/// insertion order.
pub(super) enum Node {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Array(Vec<Node>),
    Object(Vec<(String, Node)>),
}

impl Node {
    /// The tree of a `serde_json` value (integers stay integers, floats stay floats).
    pub(super) fn from_value(value: &Value) -> Node {
        match value {
            Value::Null => Node::Null,
            Value::Bool(b) => Node::Bool(*b),
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    Node::Int(i128::from(u))
                } else if let Some(i) = n.as_i64() {
                    Node::Int(i128::from(i))
                } else {
                    Node::Float(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            Value::String(s) => Node::Str(s.clone()),
            Value::Array(items) => Node::Array(items.iter().map(Node::from_value).collect()),
            Value::Object(map) => Node::Object(
                map.iter()
                    .map(|(key, value)| (key.clone(), Node::from_value(value)))
                    .collect(),
            ),
        }
    }

    /// `json.dumps(self, sort_keys=True)`.
    pub(super) fn dumps_sorted(&self) -> String {
        let mut out = String::with_capacity(4096);
        self.write_sorted(&mut out);
        out
    }

    /// Appends `json.dumps(self, sort_keys=True)`.
    fn write_sorted(&self, out: &mut String) {
        match self {
            Node::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    item.write_sorted(out);
                }
                out.push(']');
            }
            Node::Object(entries) => {
                let mut sorted: Vec<&(String, Node)> = entries.iter().collect();
                sorted.sort_by(|a, b| a.0.cmp(&b.0));
                out.push('{');
                for (i, (key, value)) in sorted.into_iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    write_json_str(out, key);
                    out.push_str(": ");
                    value.write_sorted(out);
                }
                out.push('}');
            }
            scalar => scalar.write_scalar(out),
        }
    }

    /// Appends `json.dumps(self, indent=2)` at nesting `level`.
    pub(super) fn write_indented(&self, out: &mut String, level: usize) {
        match self {
            Node::Array(items) if !items.is_empty() => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    newline(out, level + 1);
                    item.write_indented(out, level + 1);
                }
                newline(out, level);
                out.push(']');
            }
            Node::Object(entries) if !entries.is_empty() => {
                out.push('{');
                for (i, (key, value)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    newline(out, level + 1);
                    write_json_str(out, key);
                    out.push_str(": ");
                    value.write_indented(out, level + 1);
                }
                newline(out, level);
                out.push('}');
            }
            Node::Array(_) => out.push_str("[]"),
            Node::Object(_) => out.push_str("{}"),
            scalar => scalar.write_scalar(out),
        }
    }

    /// Appends a scalar (containers are written by the callers).
    fn write_scalar(&self, out: &mut String) {
        match self {
            Node::Null => out.push_str("null"),
            Node::Bool(true) => out.push_str("true"),
            Node::Bool(false) => out.push_str("false"),
            Node::Int(i) => out.push_str(&i.to_string()),
            Node::Float(x) if x.is_nan() => out.push_str("NaN"),
            Node::Float(x) if x.is_infinite() => {
                out.push_str(if *x > 0.0 { "Infinity" } else { "-Infinity" });
            }
            Node::Float(x) => out.push_str(&python_float_repr(*x)),
            Node::Str(s) => write_json_str(out, s),
            Node::Array(_) => out.push_str("[]"),
            Node::Object(_) => out.push_str("{}"),
        }
    }
}

/// A newline and `level` two-space indents.
fn newline(out: &mut String, level: usize) {
    out.push('\n');
    out.extend(std::iter::repeat_n(' ', level * 2));
}

/// Appends `s` as Python's `json` writes it with `ensure_ascii=True`.
fn write_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
}

/// An object node from `(key, value)` pairs.
fn object(entries: Vec<(&str, Node)>) -> Node {
    Node::Object(
        entries
            .into_iter()
            .map(|(key, value)| (key.to_owned(), value))
            .collect(),
    )
}

/// The whole file in Sonora's key order, with or without its `checksum`.
fn file_node(file: &SonoraFile, with_checksum: bool) -> Node {
    let data = &file.data;
    let mut sections = Vec::new();
    if let Some(player) = &data.player {
        sections.push((
            "player",
            object(vec![
                ("volume", Node::Int(i128::from(player.volume))),
                ("paused", Node::Bool(player.paused)),
                ("position", Node::Int(i128::from(player.position))),
                ("connected", Node::Bool(player.connected)),
                ("session_id", optional_str(player.session_id.as_deref())),
            ]),
        ));
    }
    if let Some(queue) = &data.queue {
        sections.push((
            "queue",
            object(vec![
                (
                    "current",
                    queue.current.as_ref().map_or(Node::Null, track_node),
                ),
                (
                    "upcoming",
                    Node::Array(queue.upcoming.iter().map(track_node).collect()),
                ),
                (
                    "history",
                    Node::Array(queue.history.iter().map(track_node).collect()),
                ),
                ("loop_mode", Node::Str(queue.loop_mode.as_str().to_owned())),
                ("shuffle_enabled", Node::Bool(queue.shuffle_enabled)),
            ]),
        ));
    }
    if let Some(filters) = &data.filters {
        let active = filters
            .active_filters
            .iter()
            .map(|name| Node::Str(name.clone()))
            .collect();
        sections.push((
            "filters",
            object(vec![
                ("active_filters", Node::Array(active)),
                ("filter_config", filter_config_node(&filters.filter_config)),
            ]),
        ));
    }
    if let Some(autoplay) = &data.autoplay {
        let mut entries = vec![
            ("enabled", Node::Bool(autoplay.enabled)),
            ("strategy", Node::Str(autoplay.strategy.clone())),
        ];
        if let Some(playlist) = &autoplay.fallback_playlist {
            entries.push(("fallback_playlist", Node::Str(playlist.clone())));
        }
        entries.push(("max_history", Node::Int(i128::from(autoplay.max_history))));
        entries.push(("smart_shuffle", Node::Bool(autoplay.smart_shuffle)));
        sections.push(("autoplay", object(entries)));
    }
    let mut entries = vec![
        ("guild_id", Node::Int(i128::from(file.guild_id))),
        ("timestamp", Node::Int(i128::from(file.timestamp))),
        ("version", Node::Str(file.version.clone())),
        ("data", object(sections)),
    ];
    if with_checksum {
        entries.push(("checksum", Node::Str(file.checksum.clone())));
    }
    object(entries)
}

/// A string node, or `null`.
fn optional_str(value: Option<&str>) -> Node {
    value.map_or(Node::Null, |s| Node::Str(s.to_owned()))
}

/// A track object in Sonora's key order.
fn track_node(track: &SonoraTrack) -> Node {
    object(vec![
        ("title", Node::Str(track.title.clone())),
        ("author", Node::Str(track.author.clone())),
        ("uri", optional_str(track.uri.as_deref())),
        ("identifier", Node::Str(track.identifier.clone())),
        ("length", Node::Int(i128::from(track.length))),
        ("position", Node::Int(i128::from(track.position))),
        ("isStream", Node::Bool(track.is_stream)),
        ("isSeekable", Node::Bool(track.is_seekable)),
        ("track", Node::Str(track.track.clone())),
    ])
}

/// An object of the float fields that are set, in the given order.
fn floats(fields: &[(&str, Option<f64>)]) -> Node {
    object(
        fields
            .iter()
            .filter_map(|(key, value)| value.map(|v| (*key, Node::Float(v))))
            .collect(),
    )
}

/// The Lavalink v4 filters payload in Lavalink's key order, with only the filters that are set.
fn filter_config_node(config: &FilterConfig) -> Node {
    let mut entries = Vec::new();
    if let Some(volume) = config.volume {
        entries.push(("volume", Node::Float(volume)));
    }
    if let Some(bands) = &config.equalizer {
        let bands = bands
            .iter()
            .map(|b| {
                object(vec![
                    ("band", Node::Int(i128::from(b.band))),
                    ("gain", Node::Float(b.gain)),
                ])
            })
            .collect();
        entries.push(("equalizer", Node::Array(bands)));
    }
    if let Some(k) = &config.karaoke {
        let fields = [
            ("level", k.level),
            ("monoLevel", k.mono_level),
            ("filterBand", k.filter_band),
            ("filterWidth", k.filter_width),
        ];
        entries.push(("karaoke", floats(&fields)));
    }
    if let Some(t) = &config.timescale {
        let fields = [("speed", t.speed), ("pitch", t.pitch), ("rate", t.rate)];
        entries.push(("timescale", floats(&fields)));
    }
    if let Some(t) = &config.tremolo {
        let fields = [("frequency", t.frequency), ("depth", t.depth)];
        entries.push(("tremolo", floats(&fields)));
    }
    if let Some(v) = &config.vibrato {
        let fields = [("frequency", v.frequency), ("depth", v.depth)];
        entries.push(("vibrato", floats(&fields)));
    }
    if let Some(r) = &config.rotation {
        entries.push(("rotation", floats(&[("rotationHz", r.rotation_hz)])));
    }
    if let Some(d) = &config.distortion {
        let fields = [
            ("sinOffset", d.sin_offset),
            ("sinScale", d.sin_scale),
            ("cosOffset", d.cos_offset),
            ("cosScale", d.cos_scale),
            ("tanOffset", d.tan_offset),
            ("tanScale", d.tan_scale),
            ("offset", d.offset),
            ("scale", d.scale),
        ];
        entries.push(("distortion", floats(&fields)));
    }
    if let Some(m) = &config.channel_mix {
        let fields = [
            ("leftToLeft", m.left_to_left),
            ("leftToRight", m.left_to_right),
            ("rightToLeft", m.right_to_left),
            ("rightToRight", m.right_to_right),
        ];
        entries.push(("channelMix", floats(&fields)));
    }
    if let Some(l) = &config.low_pass {
        entries.push(("lowPass", floats(&[("smoothing", l.smoothing)])));
    }
    object(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn python_float_repr_matches_python() {
        // Ground truth: python3 -c 'print(repr(x))' (Python 3.11).
        let table: &[(f64, &str)] = &[
            (0.1, "0.1"),
            (1.0, "1.0"),
            (1e-05, "1e-05"),
            (0.0001, "0.0001"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (1.5e300, "1.5e+300"),
            (-0.0, "-0.0"),
            (0.0, "0.0"),
            (123456789.123, "123456789.123"),
            (5e-324, "5e-324"),
            (2.2250738585072014e-308, "2.2250738585072014e-308"),
            (f64::MAX, "1.7976931348623157e+308"),
            (0.1 + 0.2, "0.30000000000000004"),
            (109.98020000000001, "109.98020000000001"),
            (233115890514796.12, "233115890514796.12"),
            (9007199254740993.0, "9007199254740992.0"),
            (1234567890123456.7, "1234567890123456.8"),
            (12345678901234567.0, "1.2345678901234568e+16"),
            (-1.5, "-1.5"),
            (100.0, "100.0"),
            (0.15, "0.15"),
            (1e22, "1e+22"),
            (1e-7, "1e-07"),
            (0.000123, "0.000123"),
            (2.5e-5, "2.5e-05"),
            (1.0 / 3.0, "0.3333333333333333"),
            (2.0 / 3.0, "0.6666666666666666"),
            (1e23, "1e+23"),
            (4.35, "4.35"),
            (0.5, "0.5"),
            (f64::NAN, "nan"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
        ];
        for (x, expected) in table {
            assert_eq!(python_float_repr(*x), *expected, "{x:e}");
        }
        // Round-half-even ties (Python) where Rust's shortest form rounds up.
        let ties: &[(u64, &str)] = &[
            (0x42ea_8090_bb0f_6d84, "233115890514796.12"),
            (0xc31c_b54f_6b43_4481, "-2020163013628192.2"),
            (0x4318_6486_17b9_f199, "1716481631878246.2"),
        ];
        for (bits, expected) in ties {
            assert_eq!(python_float_repr(f64::from_bits(*bits)), *expected);
        }
    }

    #[test]
    fn dumps_sorted_matches_python() {
        let value = json!({
            "b": [1, 2.0, null, true, false, {}, []],
            "a": {"z": "\u{e9}\u{1f3b5}\u{7f}\u{0}", "A": -5, "_": 18446744073709551615u64},
            "": "x"
        });
        // python3: json.dumps(..., sort_keys=True)
        assert_eq!(
            python_json_dumps_sorted(&value),
            r#"{"": "x", "a": {"A": -5, "_": 18446744073709551615, "z": "\u00e9\ud83c\udfb5\u007f\u0000"}, "b": [1, 2.0, null, true, false, {}, []]}"#
        );
        let escapes = json!("q\" b\\ n\n r\r t\t b\u{8} f\u{c} \u{1}\u{1f} ~ \u{2028}");
        assert_eq!(
            python_json_dumps_sorted(&escapes),
            r#""q\" b\\ n\n r\r t\t b\b f\f \u0001\u001f ~ \u2028""#
        );
    }
}

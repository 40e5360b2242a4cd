//! The reader: a Sonora file's text to a checked [`SonoraFile`] ([`parse`], [`parse_with`]).
//!
//! Reading goes in three steps: the JSON syntax, read by this file's own recursive-descent
//! reader ([`read_json`]: Python's `json.loads`, floats correctly rounded); the `checksum`,
//! recomputed over the values exactly as the file holds them (the writer's `Node` tree); then the
//! schema (`schema.rs`), whose errors name JSON paths.

use serde_json::{Map, Number, Value};

use super::schema::{
    as_object, as_str, as_u64, as_unix_secs, check_position, deny_unknown, field, join,
    parse_autoplay, parse_filters, parse_player, parse_queue,
};
use super::writer::{sha256_hex, Node};
use super::{Sections, SonoraData, SonoraError, SonoraFile};

/// The deepest nesting of arrays and objects [`parse`] accepts (a Sonora file nests 6 deep).
pub(super) const JSON_DEPTH_MAX: usize = 128;

/// Reads a Sonora snapshot file that holds all four sections.
///
/// Checks, in order: JSON syntax; the `checksum` (over the content exactly as written); then the
/// schema: every required key, no unknown key, types (integers where Sonora writes Python ints,
/// so `100.0` is not a volume), and ranges (volume `0..=1000`, positions within their track's
/// length unless it is a stream or of unknown length, loop modes, filter ranges as in
/// [`FilterConfig::validate`](crate::session::FilterConfig::validate): equalizer bands `0..=14`,
/// gains `-0.25..=1.0`, timescale factors above 0, ...), and reprise's bounds (non-empty `track`
/// and `title`, text lengths, at most [`QUEUE_LEN_MAX`](crate::session::limits::QUEUE_LEN_MAX)
/// upcoming tracks, filter names), so that [`to_state`](super::to_state) succeeds.
///
/// The JSON is read by this module's own reader, which builds the same [`serde_json::Value`]
/// but reads every float correctly rounded (serde_json without its `float_roundtrip` feature
/// can read one ULP off, which would change the Python repr and so the checksum).
///
/// # Errors
/// [`SonoraError::Json`], [`SonoraError::ChecksumMismatch`], or a schema error naming the JSON
/// path of the offending value.
pub fn parse(text: &str) -> Result<SonoraFile, SonoraError> {
    parse_with(text, Sections::ALL)
}

/// [`parse`], requiring only the sections in `required` (a section present but not required is
/// still fully checked). `parse_with(text, Sections::NONE)` reads what `export --only` writes.
///
/// # Errors
/// As [`parse`].
pub fn parse_with(text: &str, required: Sections) -> Result<SonoraFile, SonoraError> {
    // A byte order mark (a file saved by a Windows editor) is not part of the JSON.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let value = read_json(text)?;
    let root = as_object(&value, "(root)")?;
    let stated = field(root, "", "checksum")?;
    let stated = as_str(stated, "checksum")?;
    let mut content = Node::from_value(&value);
    if let Node::Object(entries) = &mut content {
        entries.retain(|(key, _)| key != "checksum");
    }
    let actual = sha256_hex(&content.dumps_sorted());
    if actual != stated {
        return Err(SonoraError::ChecksumMismatch {
            expected: stated.to_owned(),
            actual,
        });
    }
    deny_unknown(
        root,
        "",
        &["guild_id", "timestamp", "version", "data", "checksum"],
    )?;
    let guild_id = as_u64(field(root, "", "guild_id")?, "guild_id")?;
    let timestamp = as_unix_secs(field(root, "", "timestamp")?, "timestamp")?;
    let version = as_str(field(root, "", "version")?, "version")?.to_owned();
    let data = as_object(field(root, "", "data")?, "data")?;
    deny_unknown(data, "data", &["player", "queue", "filters", "autoplay"])?;
    let section = |key: &str, needed: bool| -> Result<Option<&Value>, SonoraError> {
        match data.get(key) {
            None if needed => Err(SonoraError::Missing {
                path: join("data", key),
            }),
            found => Ok(found),
        }
    };
    let player = section("player", required.player)?
        .map(|v| parse_player(v, "data.player"))
        .transpose()?;
    let queue = section("queue", required.queue)?
        .map(|v| parse_queue(v, "data.queue"))
        .transpose()?;
    let filters = section("filters", required.filters)?
        .map(|v| parse_filters(v, "data.filters"))
        .transpose()?;
    let autoplay = section("autoplay", required.autoplay)?
        .map(|v| parse_autoplay(v, "data.autoplay"))
        .transpose()?;
    if let (Some(player), Some(current)) =
        (&player, queue.as_ref().and_then(|q| q.current.as_ref()))
    {
        check_position(player.position, current, "data.player.position")?;
    }
    Ok(SonoraFile {
        guild_id,
        timestamp,
        version,
        data: SonoraData {
            player,
            queue,
            filters,
            autoplay,
        },
        checksum: stated.to_owned(),
    })
}

// ---------------------------------------------------------------------------------------------
// Reading JSON exactly as Python does.
//
// serde_json without its `float_roundtrip` feature may read a float one ULP off (e.g.
// `109.98020000000001`), which would change its Python repr and so the checksum; this reader
// uses Rust's correctly rounded `str::parse::<f64>` and builds the same `serde_json::Value`.

/// Reads `text` as one JSON value.
pub(super) fn read_json(text: &str) -> Result<Value, SonoraError> {
    let mut reader = Reader {
        text,
        pos: 0,
        depth: 0,
    };
    let value = reader.value()?;
    reader.skip_ws();
    if reader.pos < text.len() {
        return Err(reader.error("unexpected data after the JSON value"));
    }
    Ok(value)
}

/// A recursive-descent JSON reader over a string.
struct Reader<'a> {
    text: &'a str,
    pos: usize,
    depth: usize,
}

impl Reader<'_> {
    /// The byte at the cursor.
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    /// Whether the text at the cursor starts with `word`.
    fn at(&self, word: &str) -> bool {
        self.text
            .get(self.pos..)
            .is_some_and(|rest| rest.starts_with(word))
    }

    /// A [`SonoraError::Json`] at the cursor.
    fn error(&self, message: impl Into<String>) -> SonoraError {
        let before = self.text.as_bytes().get(..self.pos).unwrap_or_default();
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let column = before
            .get(line_start..)
            .unwrap_or_default()
            .iter()
            .filter(|&&b| b & 0xc0 != 0x80)
            .count()
            + 1;
        SonoraError::Json {
            line,
            column,
            message: message.into(),
        }
    }

    /// Skips JSON whitespace.
    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    /// One value, after optional whitespace.
    fn value(&mut self) -> Result<Value, SonoraError> {
        self.skip_ws();
        match self.peek() {
            None => Err(self.error("unexpected end of input, expected a value")),
            Some(b'{') => self.object(),
            Some(b'[') => self.array(),
            Some(b'"') => self.string().map(Value::String),
            Some(b't') => self.literal("true", Value::Bool(true)),
            Some(b'f') => self.literal("false", Value::Bool(false)),
            Some(b'n') => self.literal("null", Value::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b'N' | b'I') => Err(self.error("NaN and Infinity are not accepted")),
            Some(_) => Err(self.error("expected a value")),
        }
    }

    /// `true`, `false` or `null`.
    fn literal(&mut self, word: &str, value: Value) -> Result<Value, SonoraError> {
        if !self.at(word) {
            return Err(self.error("expected a value"));
        }
        self.pos += word.len();
        Ok(value)
    }

    /// Enters a container, bounding the nesting depth.
    fn enter(&mut self) -> Result<(), SonoraError> {
        if self.depth >= JSON_DEPTH_MAX {
            return Err(self.error(format!("nested deeper than {JSON_DEPTH_MAX} levels")));
        }
        self.depth += 1;
        self.pos += 1;
        self.skip_ws();
        Ok(())
    }

    /// An object, at its `{`.
    fn object(&mut self) -> Result<Value, SonoraError> {
        self.enter()?;
        let mut map = Map::new();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(Value::Object(map));
        }
        loop {
            self.skip_ws();
            if self.peek() != Some(b'"') {
                return Err(self.error("expected a string key"));
            }
            let key_pos = self.pos;
            let key = self.string()?;
            self.skip_ws();
            if self.peek() != Some(b':') {
                return Err(self.error("expected ':'"));
            }
            self.pos += 1;
            let value = self.value()?;
            if map.contains_key(&key) {
                self.pos = key_pos;
                return Err(self.error(format!("duplicate key {key:?}")));
            }
            map.insert(key, value);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    self.depth -= 1;
                    return Ok(Value::Object(map));
                }
                _ => return Err(self.error("expected ',' or '}'")),
            }
        }
    }

    /// An array, at its `[`.
    fn array(&mut self) -> Result<Value, SonoraError> {
        self.enter()?;
        let mut items = Vec::new();
        if self.peek() == Some(b']') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(Value::Array(items));
        }
        loop {
            items.push(self.value()?);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    self.depth -= 1;
                    return Ok(Value::Array(items));
                }
                _ => return Err(self.error("expected ',' or ']'")),
            }
        }
    }

    /// A string, at its opening quote.
    fn string(&mut self) -> Result<String, SonoraError> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            let start = self.pos;
            while let Some(b) = self.peek() {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            // The run stops at an ASCII byte or at the end: both are character boundaries.
            out.push_str(self.text.get(start..self.pos).unwrap_or_default());
            match self.peek() {
                None => return Err(self.error("unterminated string")),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    self.escape(&mut out)?;
                }
                Some(_) => return Err(self.error("control character in a string")),
            }
        }
    }

    /// One escape sequence, after its backslash.
    fn escape(&mut self, out: &mut String) -> Result<(), SonoraError> {
        let Some(b) = self.peek() else {
            return Err(self.error("unterminated string"));
        };
        let simple = match b {
            b'"' => Some('"'),
            b'\\' => Some('\\'),
            b'/' => Some('/'),
            b'b' => Some('\u{8}'),
            b'f' => Some('\u{c}'),
            b'n' => Some('\n'),
            b'r' => Some('\r'),
            b't' => Some('\t'),
            _ => None,
        };
        if let Some(c) = simple {
            self.pos += 1;
            out.push(c);
            return Ok(());
        }
        if b != b'u' {
            return Err(self.error("invalid escape"));
        }
        self.pos += 1;
        let first = self.hex4()?;
        let code = match first {
            0xd800..=0xdbff => {
                if !self.at("\\u") {
                    return Err(self.error("lone surrogate in a \\u escape"));
                }
                self.pos += 2;
                let second = self.hex4()?;
                if !(0xdc00..=0xdfff).contains(&second) {
                    return Err(self.error("lone surrogate in a \\u escape"));
                }
                0x10000 + ((first - 0xd800) << 10) + (second - 0xdc00)
            }
            0xdc00..=0xdfff => return Err(self.error("lone surrogate in a \\u escape")),
            _ => first,
        };
        let c = char::from_u32(code).ok_or_else(|| self.error("invalid \\u escape"))?;
        out.push(c);
        Ok(())
    }

    /// Four hex digits.
    fn hex4(&mut self) -> Result<u32, SonoraError> {
        let mut code = 0;
        for _ in 0..4 {
            let digit = self
                .peek()
                .and_then(|b| char::from(b).to_digit(16))
                .ok_or_else(|| self.error("expected four hex digits"))?;
            code = code * 16 + digit;
            self.pos += 1;
        }
        Ok(code)
    }

    /// Skips one or more ASCII digits.
    fn digits(&mut self) -> Result<(), SonoraError> {
        if !matches!(self.peek(), Some(b'0'..=b'9')) {
            return Err(self.error("expected a digit"));
        }
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
        Ok(())
    }

    /// A number: an integer (no fraction, no exponent) or a float, as Python reads them.
    fn number(&mut self) -> Result<Value, SonoraError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
            if self.peek() == Some(b'I') {
                return Err(self.error("NaN and Infinity are not accepted"));
            }
        }
        if self.peek() == Some(b'0') {
            self.pos += 1;
        } else {
            self.digits()?;
        }
        let mut float = false;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            self.digits()?;
            float = true;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            self.digits()?;
            float = true;
        }
        let literal = self.text.get(start..self.pos).unwrap_or_default();
        let number = if float {
            literal
                .parse::<f64>()
                .ok()
                .and_then(Number::from_f64)
                .ok_or_else(|| self.error(format!("{literal} is out of the float range")))?
        } else if let Ok(n) = literal.parse::<u64>() {
            Number::from(n)
        } else if let Ok(n) = literal.parse::<i64>() {
            Number::from(n)
        } else {
            self.pos = start;
            return Err(self.error(format!("integer {literal} is out of the 64-bit range")));
        };
        Ok(Value::Number(number))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sonora::python_json_dumps_sorted;

    #[test]
    fn json_reader_keeps_ints_and_floats_exact() {
        let value =
            read_json(r#"[0, -0, 1.0, -0.0, 18446744073709551615, -9223372036854775808, 1E2, 2.5e-5, "\u00e9\/\ud83c\udfb5"]"#)
                .unwrap();
        assert_eq!(
            python_json_dumps_sorted(&value),
            r#"[0, 0, 1.0, -0.0, 18446744073709551615, -9223372036854775808, 100.0, 2.5e-05, "\u00e9/\ud83c\udfb5"]"#
        );
        // Values that serde_json's default (not `float_roundtrip`) parser reads one ULP off.
        for literal in [
            "109.98020000000001",
            "43.475300000000004",
            "1.5860846119992697e-265",
        ] {
            let value = read_json(literal).unwrap();
            assert_eq!(value.as_f64(), literal.parse::<f64>().ok());
        }
    }
}

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
    let parts = match parse_parts(block) {
        Some(parts) => parts,
        None => {
            let (parts, used): (ExtraParts<'_>, usize) =
                bincode::borrow_decode_from_slice(block, bincode::config::standard())?;
            if used != block.len() {
                return Err(invalid("trailing bytes in the extra block"));
            }
            parts
        }
    };
    if let Some(plugin) = parts.2 {
        if !flat_object(plugin.as_bytes())
            && (!plugin.starts_with('{') || serde_json::from_str::<JsonCheck>(plugin).is_err())
        {
            return Err(invalid("plugin_info is not a JSON object"));
        }
    }
    if let Some(user) = parts.3 {
        if !flat_object(user.as_bytes()) {
            serde_json::from_str::<JsonCheck>(user)
                .map_err(|_| invalid("user_data is not JSON"))?;
        }
    }
    Ok(())
}

/// The four parts of a whole `extra` block read as bincode's derived decoding reads them (an
/// `Option` tag 0 or 1, a varint length, UTF-8 bytes checked by `simdutf8`, the same check as
/// `std::str::from_utf8`). `None` when anything is off or unusual (bincode then decides and names
/// the error): `Some` only for a block bincode reads into the same parts with no byte left.
fn parse_parts(block: &[u8]) -> Option<ExtraParts<'_>> {
    let mut at = 0;
    let mut part = || -> Option<Option<&str>> {
        match *block.get(at)? {
            0 => {
                at += 1;
                Some(None)
            }
            1 => {
                at += 1;
                let len = usize::try_from(super::shared::varint_at(block, &mut at)?).ok()?;
                let bytes = block.get(at..at.checked_add(len)?)?;
                at += len;
                Some(Some(simdutf8::basic::from_utf8(bytes).ok()?))
            }
            _ => None,
        }
    };
    let parts = (part()?, part()?, part()?, part()?);
    (at == block.len()).then_some(parts)
}

/// The index of the first `"`, `\\` or control character in `b`, eight bytes at a time.
fn plain_len(b: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    /// Whether a byte of `x` is below `n` (`n` at most 128; exact as to whether any is).
    fn any_below(x: u64, n: u8) -> bool {
        x.wrapping_sub(ONES * u64::from(n)) & !x & HIGHS != 0
    }
    let special = |c: &u8| *c == b'"' || *c == b'\\' || *c < 0x20;
    let mut at = 0;
    for chunk in b.chunks_exact(8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_ne_bytes(word);
        if any_below(x, 0x20)
            || any_below(x ^ (ONES * u64::from(b'"')), 1)
            || any_below(x ^ (ONES * u64::from(b'\\')), 1)
        {
            return chunk.iter().position(special).map(|i| at + i);
        }
        at += 8;
    }
    b.get(at..)?.iter().position(special).map(|i| at + i)
}

/// Whether `text` (UTF-8) is a compact JSON object whose values are plain strings, `null`,
/// `true`, `false` or short integers: what bots keep in `user_data` and `plugin_info`, and what
/// `serde_json` writes for them. Such a text is JSON (a `serde_json::Value` parses it); `false`
/// says nothing (the full check decides). Replay checks every logged extra block, and this
/// check costs a few instructions a byte instead of a parser's.
fn flat_object(text: &[u8]) -> bool {
    /// A string: `"`, then no `"`, `\` or control character, then `"` (the bytes in between
    /// are UTF-8, being part of a `str`); the index after it.
    fn string(text: &[u8], at: usize) -> Option<usize> {
        if text.get(at) != Some(&b'"') {
            return None;
        }
        let len = plain_len(text.get(at + 1..)?)?;
        (text.get(at + 1 + len) == Some(&b'"')).then_some(at + len + 2)
    }
    /// A value: a plain string, a literal, or an integer of at most 18 digits without a
    /// leading zero (an `i64`, so no range error); the index after it.
    fn value(text: &[u8], at: usize) -> Option<usize> {
        match text.get(at)? {
            b'"' => string(text, at),
            b'n' => text[at..].starts_with(b"null").then_some(at + 4),
            b't' => text[at..].starts_with(b"true").then_some(at + 4),
            b'f' => text[at..].starts_with(b"false").then_some(at + 5),
            _ => {
                let digits_at = at + usize::from(text.get(at) == Some(&b'-'));
                let digits = text
                    .get(digits_at..)?
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .count();
                let zero_led = digits > 1 && text.get(digits_at) == Some(&b'0');
                (1..=18).contains(&digits).then_some(())?;
                (!zero_led).then_some(digits_at + digits)
            }
        }
    }
    if text.first() != Some(&b'{') {
        return false;
    }
    if text == b"{}" {
        return true;
    }
    let mut at = 1;
    loop {
        let Some(after_key) = string(text, at) else {
            return false;
        };
        if text.get(after_key) != Some(&b':') {
            return false;
        }
        let Some(after_value) = value(text, after_key + 1) else {
            return false;
        };
        match text.get(after_value) {
            Some(b',') => at = after_value + 1,
            Some(b'}') => return after_value + 1 == text.len(),
            _ => return false,
        }
    }
}

/// A JSON value read and dropped as it is parsed: accepts exactly what parsing a
/// `serde_json::Value` accepts (numbers out of range included: they fail the same way), without
/// building one (replay checks every logged track's extra block).
struct JsonCheck;

impl<'de> serde::Deserialize<'de> for JsonCheck {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<JsonCheck, D::Error> {
        deserializer.deserialize_any(JsonCheckVisitor)
    }
}

/// The visitor of [`JsonCheck`]: every kind of value is fine, containers are walked.
struct JsonCheckVisitor;

impl<'de> serde::de::Visitor<'de> for JsonCheckVisitor {
    type Value = JsonCheck;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<JsonCheck, E> {
        Ok(JsonCheck)
    }
    fn visit_i64<E>(self, _: i64) -> Result<JsonCheck, E> {
        Ok(JsonCheck)
    }
    fn visit_u64<E>(self, _: u64) -> Result<JsonCheck, E> {
        Ok(JsonCheck)
    }
    fn visit_f64<E>(self, _: f64) -> Result<JsonCheck, E> {
        Ok(JsonCheck)
    }
    fn visit_str<E>(self, _: &str) -> Result<JsonCheck, E> {
        Ok(JsonCheck)
    }
    fn visit_unit<E>(self) -> Result<JsonCheck, E> {
        Ok(JsonCheck)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<JsonCheck, A::Error> {
        while seq.next_element::<JsonCheck>()?.is_some() {}
        Ok(JsonCheck)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<JsonCheck, A::Error> {
        while map
            .next_entry::<serde::de::IgnoredAny, JsonCheck>()?
            .is_some()
        {}
        Ok(JsonCheck)
    }
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

    /// The byte lengths of the `extra` block's four parts (0 when absent), read from their
    /// length prefixes alone (validation reads them for every replayed track; the block was
    /// checked when the track was built or decoded).
    pub(super) fn extra_part_lens(&self) -> [usize; 4] {
        let block = self.extra_bytes();
        let mut lens = [0usize; 4];
        let mut at = 0;
        for len in &mut lens {
            match block.get(at) {
                Some(0) => at += 1,
                Some(1) => {
                    at += 1;
                    let Some(n) = super::shared::varint_at(block, &mut at)
                        .and_then(|n| usize::try_from(n).ok())
                    else {
                        return self.extra_part_lens_slow();
                    };
                    *len = n;
                    at = at.saturating_add(n);
                }
                _ => return self.extra_part_lens_slow(),
            }
        }
        lens
    }

    /// [`Track::extra_part_lens`] through the full decoding.
    fn extra_part_lens_slow(&self) -> [usize; 4] {
        let (a, b, c, d) = self.extra_parts();
        [a, b, c, d].map(|p| p.map_or(0, str::len))
    }

    /// The bytes of the `extra` block (empty without one).
    pub(super) fn extra_bytes(&self) -> &[u8] {
        let start = self.start as usize + self.held_len();
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

#[cfg(test)]
mod tests {
    use super::JsonCheck;

    /// The lengths read from the prefixes are the parts' lengths.
    #[test]
    fn extra_part_lens_are_the_parts_lengths() {
        use crate::session::{Track, TrackFields};
        let mut f = TrackFields::new("QAAA", "Song");
        for (artwork, isrc, user) in [
            (None, None, None),
            (
                Some("https://a/b.jpg"),
                None,
                Some(serde_json::json!({"r": "1"})),
            ),
            (None, Some("USRC17607839"), None),
            (
                Some(&"x".repeat(300)[..]),
                Some("I"),
                Some(serde_json::json!([1, 2])),
            ),
        ] {
            f.artwork_url = artwork.map(str::to_owned);
            f.isrc = isrc.map(str::to_owned);
            f.user_data = user;
            let track = Track::from(&f);
            let (a, b, c, d) = track.extra_parts();
            assert_eq!(
                track.extra_part_lens(),
                [a, b, c, d].map(|p| p.map_or(0, str::len))
            );
        }
    }

    /// `parse_parts` reads what bincode reads, and nothing bincode refuses: checked on blocks
    /// with every part kind, their truncations, and every byte set to a few telling values.
    #[test]
    fn parse_parts_agrees_with_bincode() {
        use super::{extra_block, parse_parts, ExtraParts};
        use crate::session::TrackFields;
        let mut f = TrackFields::new("QAAA", "Song");
        f.artwork_url = Some("https://i.ytimg.com/vi/x/hq.jpg".to_owned());
        f.user_data = Some(serde_json::json!({"requester": "é♪"}));
        let mut g = TrackFields::new("QAAA", "Song");
        g.isrc = Some("x".repeat(300));
        g.plugin_info = serde_json::json!({"a": null}).as_object().cloned();
        fn bincode_parts(b: &[u8]) -> Option<ExtraParts<'_>> {
            bincode::borrow_decode_from_slice::<ExtraParts<'_>, _>(b, bincode::config::standard())
                .ok()
                .and_then(|(parts, used)| (used == b.len()).then_some(parts))
        }
        for block in [extra_block(&f).unwrap(), extra_block(&g).unwrap()] {
            assert!(parse_parts(&block).is_some());
            let mut variants: Vec<Vec<u8>> =
                (0..block.len()).map(|n| block[..n].to_vec()).collect();
            for i in 0..block.len() {
                for v in [0u8, 1, 2, 0x80, 0xC3, 0xFF, 250, 251, 252, 253, 254] {
                    let mut b = block.clone();
                    b[i] = v;
                    variants.push(b);
                }
            }
            let mut longer = block.clone();
            longer.push(0);
            variants.push(longer);
            for b in variants {
                if let Some(parts) = parse_parts(&b) {
                    assert_eq!(Some(parts), bincode_parts(&b), "{b:?}");
                }
            }
        }
    }

    /// `plain_len` finds the first `"`, `\\` or control byte wherever it is, among any bytes.
    #[test]
    fn plain_len_is_the_first_special_byte() {
        use super::plain_len;
        let naive = |b: &[u8]| b.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20);
        for fill in [b'a', 0x7F, 0x80, 0xC3, 0xFF, 0x21, 0x5B, 0x5D] {
            for len in 0..20 {
                let plain = vec![fill; len];
                assert_eq!(plain_len(&plain), naive(&plain));
                for at in 0..len {
                    for special in [b'"', b'\\', 0, 0x1F, 0x20, 0x21, 0x5C ^ 1] {
                        let mut b = plain.clone();
                        b[at] = special;
                        assert_eq!(plain_len(&b), naive(&b), "{b:?}");
                    }
                }
            }
        }
    }

    /// `flat_object` accepts only JSON objects (what `check_extra` asks of plugin_info), and
    /// the flat ones bots write.
    #[test]
    fn flat_objects_are_json_objects() {
        use super::flat_object;
        let accepted = [
            "{}",
            "{\"requester\":\"1100000000123456789\"}",
            "{\"albumName\":\"Album\",\"previewUrl\":null}",
            "{\"a\":true,\"b\":false,\"c\":-12,\"d\":0,\"é\":\"♪\"}",
            "{\"a\":1,\"a\":2}",
            "{\"\":\"\"}",
            "{\"n\":999999999999999999}",
            "{\"requester\":\"1100000000123456789\",\"long\":\"abcdefghijklmnopqrstuvwxyz0123456789\"}",
        ];
        let left_to_the_parser = [
            "",
            "{",
            "}",
            "{}{}",
            "{} ",
            " {}",
            "{\"a\":1,}",
            "{\"a\":01}",
            "{\"a\":-}",
            "{\"a\":1.5}",
            "{\"a\":1e5}",
            "{\"a\":-01}",
            "{\"a\":1000000000000000000}",
            "{\"a\" :1}",
            "{\"a\":\"\\n\"}",
            "{\"a\":\"\n\"}",
            "{\"abcdefghijklmnop\":\"abcdefghijkl\tmnop\"}",
            "{\"abcdefghijklmnop\":\"abcdefghijkl\\\"mnop\"}",
            "{\"abcdefghijklmnop\":\"abcdefghijklmnopqrstuvwxyz\u{7f}\u{1}\"}",
            "{\"a\":[1]}",
            "{\"a\":{}}",
            "{\"a\":nul}",
            "{\"a\":nullx}",
            "{\"a\":truefalse}",
            "{\"a\":\"b\"",
            "{\"a\":\"b}",
            "{\"a\"}",
            "{a:1}",
            "[]",
            "\"{}\"",
        ];
        for text in accepted {
            assert!(flat_object(text.as_bytes()), "{text}");
            let value: serde_json::Value = serde_json::from_str(text).unwrap();
            assert!(value.is_object(), "{text}");
        }
        for text in left_to_the_parser {
            assert!(!flat_object(text.as_bytes()), "{text}");
        }
    }

    /// `JsonCheck` accepts exactly the texts a `serde_json::Value` parses from.
    #[test]
    fn json_check_accepts_what_value_accepts() {
        let deep_ok = format!("{}1{}", "[".repeat(100), "]".repeat(100));
        let deep_bad = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        let texts = [
            "null",
            "true",
            "1",
            "-1",
            "1.5",
            "1e400",
            "-1e400",
            "1e-400",
            "18446744073709551616",
            "\"a\\u00e9\"",
            "\"\\ud800\"",
            "[1,{\"a\":[null]}]",
            "{\"a\":1,\"a\":2}",
            "{}",
            "[]",
            "",
            " ",
            "[1,]",
            "{\"a\"}",
            "{1:2}",
            "nul",
            "1 2",
            "\"unterminated",
            "[1",
            "01",
            "{\"k\":\"v\"} ",
            "\u{feff}1",
            "NaN",
            "Infinity",
            &deep_ok,
            &deep_bad,
        ];
        for text in texts {
            assert_eq!(
                serde_json::from_str::<JsonCheck>(text).is_ok(),
                serde_json::from_str::<serde_json::Value>(text).is_ok(),
                "{text:.40}"
            );
        }
    }
}

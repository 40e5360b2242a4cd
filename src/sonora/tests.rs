//! The Sonora module's tests over whole files: the real Sonora 1.2.8 fixtures round trip byte for
//! byte and map to the expected state, every schema error names its JSON path, and the export
//! reproduces Sonora's lossy points. (The writer's and the JSON reader's own tests sit at the
//! bottom of `writer.rs` and `reader.rs`.)

use super::reader::{read_json, JSON_DEPTH_MAX};
use super::writer::{sha256_hex, Node};
use super::*;
use crate::session::{apply_checked, EqualizerBand, Event};
use serde_json::{json, Value};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sonora-1.2.8");

/// A file written by Python's `json.dumps(indent=2)` with Sonora's checksum, holding every
/// filter, escapes of every kind, astral characters and floats that need 17 digits, a
/// round-half-even repr tie, exponents and subnormals.
const TRICKY: &str = r##"{
  "guild_id": 18446744073709551615,
  "timestamp": 1760009999,
  "version": "1.2.8",
  "data": {
    "player": {
      "volume": 1000,
      "paused": true,
      "position": 1000,
      "connected": true,
      "session_id": "s\u00e9ssion/\"1\""
    },
    "queue": {
      "current": {
        "title": "Ctl \u0001\u001f\u007f tab\t nl\n cr\r bs\\ q\" \b\f \u2028 \ud83c\udfb5\ud834\udd1e",
        "author": "",
        "uri": null,
        "identifier": "",
        "length": 1000,
        "position": 0,
        "isStream": false,
        "isSeekable": true,
        "track": "QAAA+/=="
      },
      "upcoming": [
        {
          "title": "Stream \u00e9",
          "author": "DJ",
          "uri": "https://twitch.tv/x",
          "identifier": "x",
          "length": 0,
          "position": 0,
          "isStream": false,
          "isSeekable": true,
          "track": "QAAB"
        }
      ],
      "history": [],
      "loop_mode": "track",
      "shuffle_enabled": true
    },
    "filters": {
      "active_filters": [
        "bassboost",
        "nightcore",
        "\u00fcber"
      ],
      "filter_config": {
        "volume": 0.30000000000000004,
        "equalizer": [
          {
            "band": 0,
            "gain": -0.25
          },
          {
            "band": 14,
            "gain": 1.0
          },
          {
            "band": 7,
            "gain": 1e-05
          }
        ],
        "karaoke": {
          "level": 0.0,
          "monoLevel": 1.0,
          "filterBand": 109.98020000000001,
          "filterWidth": 1.5e+20
        },
        "timescale": {
          "speed": 1.3200000000000003,
          "pitch": 0.0001,
          "rate": 1e+16
        },
        "tremolo": {
          "frequency": 2.0,
          "depth": 0.5
        },
        "vibrato": {
          "frequency": 14.0,
          "depth": 1.0
        },
        "rotation": {
          "rotationHz": -0.2
        },
        "distortion": {
          "sinOffset": -0.0,
          "sinScale": 1.0,
          "cosOffset": 5e-324,
          "cosScale": 1.7976931348623157e+308,
          "tanOffset": 123456789.123,
          "tanScale": 1e-07,
          "offset": 233115890514796.12,
          "scale": 1.0
        },
        "channelMix": {
          "leftToLeft": 0.5,
          "leftToRight": 0.5,
          "rightToLeft": 0.5,
          "rightToRight": 0.5
        },
        "lowPass": {
          "smoothing": 20.0
        }
      }
    },
    "autoplay": {
      "enabled": false,
      "strategy": "similar_genre",
      "max_history": 4294967295,
      "smart_shuffle": false
    }
  },
  "checksum": "765b88ffc6d306559726df4314805331c61e91f709438344a329ec421a931010"
}"##;

/// Every fixture: (file name, text), sorted by name.
fn fixtures() -> Vec<(String, String)> {
    let mut paths: Vec<_> = std::fs::read_dir(FIXTURES)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&path).unwrap())
        })
        .collect()
}

/// The fixture whose name contains `guild`.
fn fixture(guild: &str) -> String {
    fixtures()
        .into_iter()
        .find(|(name, _)| name.contains(guild))
        .unwrap()
        .1
}

/// `text` with `change` applied to its JSON and the checksum recomputed.
fn edit(text: &str, change: impl FnOnce(&mut Value)) -> String {
    let mut value = read_json(text).unwrap();
    change(&mut value);
    let root = value.as_object_mut().unwrap();
    root.remove("checksum");
    let sum = sha256_hex(&python_json_dumps_sorted(&value));
    let root = value.as_object_mut().unwrap();
    root.insert("checksum".to_owned(), Value::String(sum));
    let mut out = String::new();
    Node::from_value(&value).write_indented(&mut out, 0);
    out
}

/// Sets the value at a JSON pointer, adding the last key to its object if needed.
fn set(pointer: &str, new: Value) -> impl FnOnce(&mut Value) {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let (parent, key) = (parent.to_owned(), key.to_owned());
    move |value: &mut Value| match value.pointer_mut(&parent).unwrap() {
        Value::Object(map) => {
            map.insert(key, new);
        }
        Value::Array(items) => items[key.parse::<usize>().unwrap()] = new,
        other => panic!("{parent} is {other}"),
    }
}

/// Export of the parsed file's own state, with its guild and timestamp.
fn reexport(file: &SonoraFile) -> String {
    let state = to_state(file, 50).unwrap();
    to_json(&from_state(
        file.guild_id,
        file.timestamp,
        &state,
        Sections::ALL,
    ))
}

#[test]
fn all_fixtures_round_trip_byte_identically() {
    let files = fixtures();
    assert_eq!(files.len(), 12, "expected the 12 Sonora 1.2.8 fixtures");
    for (name, text) in &files {
        let file = parse(text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(file.version, SONORA_VERSION, "{name}");
        let state = to_state(&file, 50).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(state.check_invariants(), Ok(()), "{name}");
        let back = from_state(file.guild_id, file.timestamp, &state, Sections::ALL);
        assert_eq!(back.checksum, file.checksum, "{name}: checksum");
        let written = to_json(&back);
        let original = read_json(text).unwrap();
        let rewritten = read_json(&written).unwrap();
        assert_eq!(rewritten["data"], original["data"], "{name}: data");
        assert_eq!(written, *text, "{name}: not byte-identical");
        assert_eq!(back, file, "{name}: typed model");
        // And the state survives export and import unchanged.
        assert_eq!(to_state(&parse(&written).unwrap(), 50).unwrap(), state);
    }
}

#[test]
fn fixture_maps_to_the_expected_state() {
    let file = parse(&fixture("211917732357417771")).unwrap();
    let state = to_state(&file, 50).unwrap();
    assert_eq!(state.player.volume, 123);
    assert!(!state.player.paused);
    assert_eq!(state.player.position_ms, 18120);
    assert_eq!(state.player.position_anchor_unix_ms, None);
    let voice = state.player.voice.as_ref().unwrap();
    assert_eq!(voice.session_id, "session_822400");
    assert_eq!(voice.channel_id, Snowflake::Number(UNKNOWN_CHANNEL_ID));
    assert_eq!(
        (voice.endpoint.as_ref(), voice.token.as_ref()),
        (None, None)
    );
    // Ids in play order: history (oldest first), current, upcoming.
    let ids: Vec<u64> = state.entries().map(|entry| entry.id).collect();
    assert_eq!(ids, (1..=23).collect::<Vec<u64>>());
    assert_eq!(state.queue.history.len(), 2);
    assert_eq!(state.queue.current.as_ref().map(|e| e.id), Some(3));
    assert_eq!(state.queue.upcoming.len(), 20);
    assert_eq!(state.next_entry_id, 24);
    let current = &state.queue.current.as_ref().unwrap().track.fields();
    assert_eq!(
        current.title,
        "\u{591c}\u{306b}\u{99c6}\u{3051}\u{308b} R\u{e9}sum\u{e9} \"Quoted\" Remix"
    );
    assert_eq!(current.author.as_deref().unwrap_or(""), "AC/DC");
    assert_eq!(current.identifier.as_deref().unwrap_or(""), "aPwTYzeopB_");
    assert_eq!(current.length_ms, Some(35978));
    assert_eq!((current.is_stream, current.is_seekable), (None, None));
    assert!(current.encoded.starts_with("urs/Ktii"));
    let emoji = &state.queue.upcoming[0].track;
    assert_eq!(emoji.title(), "Never Emoji \u{1f3b5} More Live");
    // Streams are written with length 0: absent length.
    let streams = state
        .entries()
        .filter(|e| e.track.fields().length_ms.is_none());
    assert_eq!(streams.count(), 2);
    assert_eq!(state.queue.loop_mode, LoopMode::Autoplay);
    assert!(!state.queue.shuffle);
    assert!(state.filters.active.is_empty());
    let config = &state.filters.config;
    let bands = config.equalizer.as_ref().unwrap();
    assert_eq!(
        bands,
        &[
            EqualizerBand { band: 0, gain: 0.2 },
            EqualizerBand {
                band: 1,
                gain: 0.15
            }
        ]
    );
    let timescale = config.timescale.as_ref().unwrap();
    assert_eq!(
        (timescale.speed, timescale.pitch, timescale.rate),
        (Some(1.2), Some(1.1), Some(1.0))
    );
    assert_eq!(
        state.autoplay,
        Autoplay {
            enabled: true,
            strategy: "similar_artist".to_owned(),
            fallback_playlist: None,
            max_history: None,
            smart_shuffle: None,
        }
    );
}

#[test]
fn disconnected_fixtures_have_no_voice() {
    let file = parse(&fixture("367813950488357999")).unwrap();
    let player = file.data.player.as_ref().unwrap();
    assert_eq!(
        (player.connected, player.session_id.as_ref()),
        (false, None)
    );
    assert_eq!(to_state(&file, 50).unwrap().player.voice, None);
}

#[test]
fn a_changed_value_without_a_new_checksum_is_refused() {
    let text = fixture("211917732357417771");
    let stated = parse(&text).unwrap().checksum;
    let changes = [
        ("\"volume\": 123", "\"volume\": 124"),
        ("\"gain\": 0.15", "\"gain\": 0.150001"),
        ("R\\u00e9sum\\u00e9", "R\\u00e8sum\\u00e9"),
        ("\"shuffle_enabled\": false", "\"shuffle_enabled\": true"),
    ];
    for (from, to) in changes {
        assert!(text.contains(from), "{from}");
        let changed = text.replacen(from, to, 1);
        match parse(&changed) {
            Err(SonoraError::ChecksumMismatch { expected, actual }) => {
                assert_eq!(expected, stated);
                assert_ne!(actual, stated);
                assert_eq!(actual.len(), 64);
            }
            other => panic!("{from} -> {to}: {other:?}"),
        }
    }
    // Layout is not content: re-indenting keeps the checksum valid.
    let compact = text.replace("\n", "").replace("  ", "");
    assert_eq!(parse(&compact).unwrap(), parse(&text).unwrap());
    // The checksum itself changed.
    let forged = text.replacen(&stated, &"0".repeat(64), 1);
    assert!(matches!(
        parse(&forged),
        Err(SonoraError::ChecksumMismatch { .. })
    ));
    let mut value = read_json(&text).unwrap();
    value.as_object_mut().unwrap().remove("checksum");
    let mut stripped = String::new();
    Node::from_value(&value).write_indented(&mut stripped, 0);
    assert_eq!(
        parse(&stripped),
        Err(SonoraError::Missing {
            path: "checksum".into()
        })
    );
}

#[test]
fn a_missing_section_is_named() {
    let text = fixture("211917732357417771");
    for section in ["player", "queue", "filters", "autoplay"] {
        let partial = edit(&text, |v| {
            v["data"].as_object_mut().unwrap().remove(section);
        });
        let error = parse(&partial).unwrap_err();
        assert_eq!(
            error,
            SonoraError::Missing {
                path: format!("data.{section}")
            }
        );
        assert_eq!(error.to_string(), format!("data.{section} is missing"));
        // Not required: the section takes the defaults of a fresh state.
        let file = parse_with(&partial, Sections::NONE).unwrap();
        let state = to_state(&file, 50).unwrap();
        let fresh = State::new(50);
        match section {
            "player" => assert_eq!(state.player, fresh.player),
            "queue" => {
                assert_eq!(state.queue, fresh.queue);
                assert_eq!(state.next_entry_id, 1);
            }
            "filters" => assert_eq!(state.filters, fresh.filters),
            _ => assert_eq!(state.autoplay, fresh.autoplay),
        }
    }
    let no_data = edit(&text, |v| {
        v.as_object_mut().unwrap().remove("data");
    });
    assert_eq!(
        parse_with(&no_data, Sections::NONE),
        Err(SonoraError::Missing {
            path: "data".into()
        })
    );
}

#[test]
fn invalid_values_are_named_by_json_path() {
    let text = fixture("211917732357417771");
    type Change = Box<dyn FnOnce(&mut Value)>;
    let cases: Vec<(Change, &str)> = vec![
        (
            Box::new(set("/data/player/volume", json!(1001))),
            "data.player.volume",
        ),
        (
            Box::new(set("/data/player/volume", json!(100.0))),
            "data.player.volume",
        ),
        (
            Box::new(set("/data/player/paused", json!(0))),
            "data.player.paused",
        ),
        (
            Box::new(set("/data/player/position", json!(35979))),
            "data.player.position",
        ),
        (
            Box::new(set("/data/player/session_id", json!(7))),
            "data.player.session_id",
        ),
        (
            Box::new(set("/data/queue/upcoming/3/length", json!("long"))),
            "data.queue.upcoming[3].length",
        ),
        (
            Box::new(set("/data/queue/upcoming/3/length", json!(-1))),
            "data.queue.upcoming[3].length",
        ),
        (
            Box::new(set("/data/queue/upcoming/0/title", json!(""))),
            "data.queue.upcoming[0].title",
        ),
        (
            Box::new(set("/data/queue/history/1/track", json!(null))),
            "data.queue.history[1].track",
        ),
        (
            Box::new(|v: &mut Value| {
                v["data"]["queue"]["upcoming"][2]
                    .as_object_mut()
                    .unwrap()
                    .remove("track");
            }),
            "data.queue.upcoming[2].track",
        ),
        (
            Box::new(set("/data/queue/upcoming/5/extra", json!(1))),
            "data.queue.upcoming[5].extra",
        ),
        (
            Box::new(set("/data/queue/current/position", json!(35979))),
            "data.queue.current.position",
        ),
        (
            Box::new(set("/data/queue/loop_mode", json!("forever"))),
            "data.queue.loop_mode",
        ),
        (
            Box::new(set("/data/queue/upcoming", json!({}))),
            "data.queue.upcoming",
        ),
        (
            Box::new(set(
                "/data/filters/filter_config/equalizer/0/band",
                json!(15),
            )),
            "data.filters.filter_config.equalizer[0].band",
        ),
        (
            Box::new(set(
                "/data/filters/filter_config/equalizer/1/gain",
                json!(1.5),
            )),
            "data.filters.filter_config.equalizer[1].gain",
        ),
        (
            Box::new(set(
                "/data/filters/filter_config/equalizer/1/gain",
                json!(-0.3),
            )),
            "data.filters.filter_config.equalizer[1].gain",
        ),
        (
            Box::new(set(
                "/data/filters/filter_config/equalizer/1/band",
                json!(0),
            )),
            "data.filters.filter_config.equalizer",
        ),
        (
            Box::new(set(
                "/data/filters/filter_config/timescale/speed",
                json!(0.0),
            )),
            "data.filters.filter_config.timescale.speed",
        ),
        (
            Box::new(set(
                "/data/filters/filter_config/timescale/speed",
                json!("fast"),
            )),
            "data.filters.filter_config.timescale.speed",
        ),
        (
            Box::new(set(
                "/data/filters/filter_config/timescale/tempo",
                json!(1.0),
            )),
            "data.filters.filter_config.timescale.tempo",
        ),
        (
            Box::new(set(
                "/data/filters/filter_config/channelMix",
                json!({"leftToLeft": 2.0}),
            )),
            "data.filters.filter_config.channelMix.leftToLeft",
        ),
        (
            Box::new(set(
                "/data/filters/filter_config/low_pass",
                json!({"smoothing": -1.0}),
            )),
            "data.filters.filter_config.low_pass.smoothing",
        ),
        (
            Box::new(set("/data/filters/filter_config/volume", json!(5.5))),
            "data.filters.filter_config.volume",
        ),
        (
            Box::new(set("/data/filters/active_filters", json!(["a", "a"]))),
            "data.filters.active_filters[1]",
        ),
        (
            Box::new(set("/data/autoplay/strategy", json!(""))),
            "data.autoplay.strategy",
        ),
        (
            Box::new(set("/data/autoplay/max_history", json!(4294967296u64))),
            "data.autoplay.max_history",
        ),
        (
            Box::new(set("/data/autoplay/bogus", json!(true))),
            "data.autoplay.bogus",
        ),
        (Box::new(set("/data/extra", json!({}))), "data.extra"),
        (Box::new(set("/timestamp", json!(-1.5))), "timestamp"),
        (Box::new(set("/timestamp", json!("now"))), "timestamp"),
        (
            Box::new(set("/guild_id", json!("211917732357417771"))),
            "guild_id",
        ),
        (
            Box::new(|v: &mut Value| {
                v.as_object_mut().unwrap().remove("version");
            }),
            "version",
        ),
    ];
    for (change, path) in cases {
        let changed = edit(&text, change);
        let error = parse(&changed).unwrap_err();
        assert_eq!(error.path(), Some(path), "{error}");
        assert!(error.to_string().starts_with(path), "{error}");
    }
}

#[test]
fn a_float_timestamp_as_py_sonora_writes_it_is_floored_to_seconds() {
    // py-sonora 1.2.8's SessionSnapshot stamps `time.time()`: real files hold a float.
    let text = fixture("211917732357417771");
    let real = edit(&text, set("/timestamp", json!(1760000222.9377)));
    let file = parse(&real).unwrap();
    assert_eq!(file.timestamp, 1760000222);
    assert_eq!(file.data, parse(&text).unwrap().data);
}

#[test]
fn range_messages_say_what_is_accepted() {
    let text = fixture("211917732357417771");
    let loud = edit(&text, set("/data/player/volume", json!(1001)));
    assert_eq!(
        parse(&loud).unwrap_err().to_string(),
        "data.player.volume: 1001 is outside the accepted range 0..=1000"
    );
    let band = edit(
        &text,
        set("/data/filters/filter_config/equalizer/0/band", json!(15)),
    );
    assert_eq!(
        parse(&band).unwrap_err().to_string(),
        "data.filters.filter_config.equalizer[0].band: 15 is outside the accepted range 0..=14"
    );
    let typed = edit(&text, set("/data/queue/upcoming/3/length", json!("x")));
    assert_eq!(
        parse(&typed).unwrap_err().to_string(),
        "data.queue.upcoming[3].length must be a non-negative integer, found a string"
    );
}

#[test]
fn json_syntax_errors_give_line_and_column() {
    let text = fixture("599212921556694491");
    let truncated = &text[..text.len() / 2];
    assert!(matches!(parse(truncated), Err(SonoraError::Json { .. })));
    let cases = [
        ("{\n  \"a\": NaN\n}", 2, 8),
        ("{\"a\": -Infinity}", 1, 8),
        ("{\"a\": 1, \"a\": 2}", 1, 10),
        ("{\"a\": \"\\ud83c\"}", 1, 14),
        ("{\"a\": 01}", 1, 8),
        ("{\"a\": 1.}", 1, 9),
        ("{\"a\": \"tab\there\"}", 1, 11),
        ("{\"a\": 99999999999999999999}", 1, 7),
        ("{\"\u{e9}\": [1 2]}", 1, 10),
        ("[] x", 1, 4),
        ("", 1, 1),
    ];
    for (input, line, column) in cases {
        match read_json(input) {
            Err(SonoraError::Json {
                line: l, column: c, ..
            }) => assert_eq!((l, c), (line, column), "{input:?}"),
            other => panic!("{input:?}: {other:?}"),
        }
    }
    let deep = "[".repeat(JSON_DEPTH_MAX + 1) + &"]".repeat(JSON_DEPTH_MAX + 1);
    assert!(read_json(&deep).is_err());
    let ok = "[".repeat(JSON_DEPTH_MAX) + &"]".repeat(JSON_DEPTH_MAX);
    assert!(read_json(&ok).is_ok());
}

#[test]
fn a_python_written_file_with_every_filter_round_trips() {
    let file = parse(TRICKY).unwrap();
    assert_eq!(file.guild_id, u64::MAX);
    let queue = file.data.queue.as_ref().unwrap();
    let title = &queue.current.as_ref().unwrap().title;
    assert!(title.starts_with("Ctl \u{1}\u{1f}\u{7f} tab\t nl\n cr\r bs\\ q\""));
    assert!(title.ends_with("\u{2028} \u{1f3b5}\u{1d11e}"));
    let config = &file.data.filters.as_ref().unwrap().filter_config;
    assert_eq!(config.volume, Some(0.1 + 0.2));
    let karaoke = config.karaoke.as_ref().unwrap();
    assert_eq!(karaoke.filter_band, Some(109.98020000000001));
    let distortion = config.distortion.as_ref().unwrap();
    assert_eq!(distortion.cos_offset, Some(5e-324));
    assert!(distortion.sin_offset.unwrap().is_sign_negative());
    assert_eq!(config.low_pass.as_ref().unwrap().smoothing, Some(20.0));
    let state = to_state(&file, 50).unwrap();
    let current = &state.queue.current.as_ref().unwrap().track.fields();
    assert_eq!(
        (current.author.as_ref(), current.uri.as_ref()),
        (None, None)
    );
    assert_eq!(state.autoplay.max_history, Some(u32::MAX));
    assert_eq!(
        state.player.voice.as_ref().unwrap().session_id,
        "s\u{e9}ssion/\"1\""
    );
    assert_eq!(reexport(&file), TRICKY);
}

#[test]
fn export_reproduces_sonoras_lossy_points() {
    let mut state = State::new(100);
    let tracks: Vec<Track> = (0..60)
        .map(|i| {
            let mut track = TrackFields::new(format!("QAAA{i}"), format!("Track {i}"));
            track.length_ms = Some(1000);
            track.is_stream = Some(i % 2 == 0);
            track.is_seekable = Some(false);
            track.source = Some("youtube".into());
            Track::from(track)
        })
        .collect();
    let events = [
        Event::TracksEnqueued {
            tracks,
            index: None,
        },
        Event::AutoplaySet {
            enabled: true,
            strategy: "popular".into(),
            fallback_playlist: Some("global_fallback".into()),
            max_history: None,
            smart_shuffle: None,
        },
        Event::ShuffleSet {
            enabled: true,
            seed: Some(7),
        },
        Event::VoiceConnected {
            session_id: "abc".into(),
            channel_id: Snowflake::Text("1100000000000000001".into()),
            endpoint: Some("rotterdam1234.discord.media:443".into()),
            token: Some("deadbeef".into()),
        },
    ];
    for event in &events {
        apply_checked(&mut state, event).unwrap();
    }
    for _ in 0..56 {
        apply_checked(&mut state, &Event::TrackStarted).unwrap();
    }
    let report = Event::PositionReported {
        position_ms: 500,
        at_unix_ms: 1_760_000_000_000,
        entry_id: None,
    };
    apply_checked(&mut state, &report).unwrap();
    assert_eq!(state.queue.history.len(), 55);
    let file = from_state(42, 1_760_000_000, &state, Sections::ALL);
    let text = to_json(&file);
    assert!(!text.contains("fallback_playlist"));
    assert!(!text.contains("youtube"));
    assert!(!text.contains("1100000000000000001"));
    assert!(!text.ends_with('\n'));
    let parsed = parse(&text).unwrap();
    assert_eq!(parsed, file);
    let queue = parsed.data.queue.as_ref().unwrap();
    assert_eq!(queue.history.len(), SONORA_HISTORY_MAX);
    assert_eq!(queue.history[0].title, "Track 5");
    assert_eq!(queue.upcoming.len(), 4);
    let every = queue
        .history
        .iter()
        .chain(&queue.current)
        .chain(&queue.upcoming);
    for track in every {
        assert_eq!((track.is_stream, track.is_seekable), (false, true));
        assert_eq!(track.position, 0);
    }
    assert!(queue.shuffle_enabled);
    let player = parsed.data.player.as_ref().unwrap();
    assert_eq!(player.session_id.as_deref(), Some("abc"));
    assert!(player.connected);
    assert_eq!(player.position, 500);
    let autoplay = parsed.data.autoplay.as_ref().unwrap();
    assert_eq!((autoplay.max_history, autoplay.smart_shuffle), (50, true));
    assert_eq!(autoplay.fallback_playlist, None);
    let back = to_state(&parsed, 100).unwrap();
    assert_eq!(back.queue.history.len(), 50);
    assert_eq!(back.queue.shuffle_seed, None);
    assert_eq!(back.player.position_anchor_unix_ms, None);
    assert_eq!(back.autoplay.fallback_playlist, None);
}

#[test]
fn only_writes_the_sections_asked_for() {
    let only: Sections = "player, queue".parse().unwrap();
    assert_eq!(only.to_string(), "player,queue");
    assert_eq!(Sections::ALL.to_string(), "player,queue,filters,autoplay");
    assert_eq!(
        "player,bogus".parse::<Sections>(),
        Err(SonoraError::UnknownSection {
            name: "bogus".into()
        })
    );
    assert!("".parse::<Sections>().is_err());
    let file = parse(&fixture("211917732357417771")).unwrap();
    let state = to_state(&file, 50).unwrap();
    let partial = from_state(file.guild_id, file.timestamp, &state, only);
    let text = to_json(&partial);
    let value = read_json(&text).unwrap();
    let keys: Vec<&String> = value["data"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["player", "queue"]);
    assert_eq!(
        parse(&text),
        Err(SonoraError::Missing {
            path: "data.filters".into()
        })
    );
    assert_eq!(parse_with(&text, only).unwrap(), partial);
    let none = from_state(1, 2, &state, Sections::NONE);
    assert!(to_json(&none).contains("\"data\": {},"));
    assert!(parse_with(&to_json(&none), Sections::NONE).is_ok());
}

#[test]
fn history_beyond_history_max_keeps_the_newest() {
    let file = parse(&fixture("524573950927677227")).unwrap();
    let history = &file.data.queue.as_ref().unwrap().history;
    assert_eq!(history.len(), 50);
    let state = to_state(&file, 10).unwrap();
    assert_eq!(state.queue.history.len(), 10);
    assert_eq!(state.queue.history[0].track.encoded(), history[40].track);
    assert_eq!(state.queue.history[0].id, 1);
    assert_eq!(state.next_entry_id, 10 + 1 + 150 + 1);
    assert!(to_state(&file, 0).unwrap().queue.history.is_empty());
}

#[test]
fn voice_needs_connected_and_a_session_id() {
    let text = fixture("211917732357417771");
    let cases = [
        (json!(true), json!(null)),
        (json!(true), json!("")),
        (json!(false), json!("session_1")),
    ];
    for (connected, session_id) in cases {
        let changed = edit(&text, |v| {
            v["data"]["player"]["connected"] = connected;
            v["data"]["player"]["session_id"] = session_id;
        });
        let state = to_state(&parse(&changed).unwrap(), 50).unwrap();
        assert_eq!(state.player.voice, None);
    }
}

#[test]
fn streams_and_unknown_lengths_have_no_end() {
    let text = fixture("211917732357417771");
    let stream = edit(&text, |v| {
        v["data"]["queue"]["current"]["length"] = json!(0);
        v["data"]["player"]["position"] = json!(99_999_999);
    });
    assert!(parse(&stream).is_ok());
    let flagged = edit(&text, |v| {
        v["data"]["queue"]["current"]["isStream"] = json!(true);
        v["data"]["player"]["position"] = json!(99_999_999);
    });
    let state = to_state(&parse(&flagged).unwrap(), 50).unwrap();
    let current = &state.queue.current.as_ref().unwrap().track;
    assert_eq!(current.fields().is_stream, Some(true));
}

/// Fields Sonora 1.2.8 never writes but a bot's (or a later Sonora's) file may carry, under
/// their Lavalink v4 names, are imported into the track; oversize or mistyped ones are refused
/// by JSON path; the export keeps Sonora's schema and leaves them out.
#[test]
fn lavalink_track_fields_are_imported_when_a_file_has_them() {
    let text = fixture("211917732357417771");
    let edited = edit(&text, |value| {
        let track = value.pointer_mut("/data/queue/upcoming/2").unwrap();
        let map = track.as_object_mut().unwrap();
        map.insert("sourceName".into(), json!("youtube"));
        map.insert(
            "artworkUrl".into(),
            json!("https://i.ytimg.com/vi/x/hq.jpg"),
        );
        map.insert("isrc".into(), json!("USRC17607839"));
        map.insert("pluginInfo".into(), json!({"albumName": "A"}));
        map.insert(
            "userData".into(),
            json!({"requester": "613425648685547541", "text_channel": 1}),
        );
    });
    let file = parse(&edited).unwrap();
    let state = to_state(&file, 50).unwrap();
    let fields = state.queue.upcoming[2].track.fields();
    assert_eq!(fields.source.as_deref(), Some("youtube"));
    assert_eq!(
        fields.artwork_url.as_deref(),
        Some("https://i.ytimg.com/vi/x/hq.jpg")
    );
    assert_eq!(fields.isrc.as_deref(), Some("USRC17607839"));
    assert_eq!(
        fields.plugin_info,
        Some(json!({"albumName": "A"}).as_object().unwrap().clone())
    );
    assert_eq!(
        fields.user_data,
        Some(json!({"requester": "613425648685547541", "text_channel": 1}))
    );
    // The other tracks are untouched, and the export is Sonora's schema: the original file.
    let plain = to_state(&parse(&text).unwrap(), 50).unwrap();
    assert_eq!(state.queue.upcoming[3], plain.queue.upcoming[3]);
    assert_eq!(reexport(&file), text);

    let big = "x".repeat(crate::session::limits::USER_DATA_BYTES_MAX);
    type Change = Box<dyn FnOnce(&mut Value)>;
    let cases: Vec<(Change, &str)> = vec![
        (
            Box::new(set("/data/queue/upcoming/0/userData", json!(big))),
            "data.queue.upcoming[0].userData",
        ),
        (
            Box::new(set("/data/queue/upcoming/0/pluginInfo", json!([1]))),
            "data.queue.upcoming[0].pluginInfo",
        ),
        (
            Box::new(set("/data/queue/upcoming/0/isrc", json!(7))),
            "data.queue.upcoming[0].isrc",
        ),
        (
            Box::new(set("/data/queue/upcoming/0/requester", json!("x"))),
            "data.queue.upcoming[0].requester",
        ),
    ];
    for (change, path) in cases {
        let err = parse(&edit(&text, change)).unwrap_err();
        assert!(err.to_string().contains(path), "{path}: {err}");
    }
}

/// A file saved with a UTF-8 byte order mark (a Windows editor) reads as the same file.
#[test]
fn a_byte_order_mark_is_not_part_of_the_file() {
    for (name, text) in fixtures() {
        let plain = parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let marked = parse(&format!("\u{feff}{text}")).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(marked, plain, "{name}");
    }
    // Only at the start: elsewhere it is not JSON whitespace.
    let (_, text) = &fixtures()[0];
    assert!(parse(&format!("{text}\u{feff}")).is_err());
}

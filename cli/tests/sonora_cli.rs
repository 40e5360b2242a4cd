//! Black-box tests of `reprise import`, `lavalink`, `stats` and `cleanup`: the real Sonora 1.2.8
//! fixtures round-trip through import and export, refused files write nothing, restore bodies
//! follow Lavalink v4's schema, and retention keeps the newest state.

mod support;

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use support::{ok, reprise, stderr, stdout_json, stdout_lines};

const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/fixtures/sonora-1.2.8"
);

fn fixtures() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(FIXTURES)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 12);
    files
}

fn fixture(guild: &str) -> PathBuf {
    fixtures()
        .into_iter()
        .find(|p| p.to_string_lossy().contains(guild))
        .unwrap()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Writes `value` with a correct Sonora checksum (as Sonora computes it) to `path`.
fn write_signed(path: &Path, mut value: Value) {
    let object = value.as_object_mut().unwrap();
    object.remove("checksum");
    let digest = Sha256::digest(reprise::sonora::python_json_dumps_sorted(&value).as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    value["checksum"] = json!(hex);
    std::fs::write(path, serde_json::to_string_pretty(&value).unwrap()).unwrap();
}

/// Whether the journal directory holds no guild at all.
fn no_guild(dir: &Path) -> bool {
    let stats = stdout_json(&reprise(dir, &["stats"], None));
    stats["guilds"] == json!(0) && stats["events"] == json!(0)
}

fn args<'a>(head: &[&'a str], files: &'a [PathBuf]) -> Vec<&'a str> {
    head.iter()
        .copied()
        .chain(files.iter().map(|f| f.to_str().unwrap()))
        .collect()
}

#[test]
fn every_fixture_imports_and_exports_the_same_data() {
    let dir = tempfile::tempdir().unwrap();
    let files = fixtures();
    let lines = stdout_lines(&reprise(dir.path(), &args(&["import"], &files), None));
    assert_eq!(lines.len(), 12);
    for (file, line) in files.iter().zip(&lines) {
        let original = read_json(file);
        let guild = original["guild_id"].to_string();
        assert_eq!(line["file"], json!(file.display().to_string()));
        assert_eq!(line["guild"], original["guild_id"]);
        assert_eq!(line["first_seq"], json!(1));
        assert_eq!(line["seq"], line["events"]);
        let exported = stdout_json(&reprise(
            dir.path(),
            &["export", "--guild", &guild, "--format", "sonora"],
            None,
        ));
        assert_eq!(exported["data"], original["data"], "{}", file.display());
        assert_eq!(exported["guild_id"], original["guild_id"]);
        let state = stdout_json(&reprise(dir.path(), &["state", "--guild", &guild], None));
        assert_eq!(state["seq"], line["seq"]);
    }
    ok(&reprise(dir.path(), &["verify"], None));
}

#[test]
fn a_changed_value_under_the_old_checksum_exits_2_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let good = fixture("555200494606748983");
    let source = fixture("211917732357417771");
    let text = std::fs::read_to_string(&source).unwrap();
    let edits = [
        ("\"volume\": 123", "\"volume\": 124"),
        ("\"paused\": false", "\"paused\": true"),
        ("\"gain\": 0.2", "\"gain\": 0.25"),
        ("\"loop_mode\": \"autoplay\"", "\"loop_mode\": \"queue\""),
    ];
    for (i, (from, to)) in edits.iter().enumerate() {
        assert!(text.contains(from), "{from}");
        let bad = work.path().join(format!("bad{i}.json"));
        std::fs::write(&bad, text.replacen(from, to, 1)).unwrap();
        let files = [good.clone(), bad.clone()];
        for head in [&["import"][..], &["import", "--check"][..]] {
            let out = reprise(dir.path(), &args(head, &files), None);
            assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
            let message = stderr(&out);
            assert!(message.contains(&bad.display().to_string()), "{message}");
            assert!(message.contains("checksum mismatch"), "{message}");
            assert!(!message.contains(&good.display().to_string()), "{message}");
        }
        assert!(no_guild(dir.path()));
    }
}

#[test]
fn schema_and_range_errors_name_the_json_path() {
    let dir = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let base = read_json(&fixture("211917732357417771"));
    type Edit = fn(&mut Value);
    let cases: Vec<(Edit, &str)> = vec![
        (
            |v| {
                v["data"].as_object_mut().unwrap().remove("filters");
            },
            "data.filters",
        ),
        (
            |v| {
                v["data"]["queue"]
                    .as_object_mut()
                    .unwrap()
                    .remove("upcoming");
            },
            "data.queue.upcoming",
        ),
        (
            |v| v["data"]["player"]["volume"] = json!(1001),
            "data.player.volume",
        ),
        (
            |v| v["data"]["player"]["volume"] = json!(100.0),
            "data.player.volume",
        ),
        (
            |v| v["data"]["queue"]["upcoming"][3]["length"] = json!("x"),
            "data.queue.upcoming[3].length",
        ),
        (
            |v| v["data"]["queue"]["upcoming"][3]["length"] = json!(-1),
            "data.queue.upcoming[3].length",
        ),
        (
            |v| v["data"]["filters"]["filter_config"]["equalizer"][1]["band"] = json!(15),
            "data.filters.filter_config.equalizer[1].band",
        ),
        (
            |v| v["data"]["filters"]["filter_config"]["equalizer"][0]["gain"] = json!(1.5),
            "data.filters.filter_config.equalizer[0].gain",
        ),
        (
            |v| v["data"]["filters"]["filter_config"]["equalizer"][0]["gain"] = json!(-0.3),
            "data.filters.filter_config.equalizer[0].gain",
        ),
        (
            |v| v["data"]["filters"]["filter_config"]["timescale"]["speed"] = json!(0.0),
            "data.filters.filter_config.timescale.speed",
        ),
        (
            |v| v["data"]["queue"]["loop_mode"] = json!("forever"),
            "data.queue.loop_mode",
        ),
        (
            |v| v["data"]["player"]["position"] = json!(99_999_999),
            "data.player.position",
        ),
        (
            |v| v["data"]["queue"]["current"]["title"] = json!(""),
            "data.queue.current.title",
        ),
        (
            |v| v["data"]["autoplay"]["enabled"] = json!("yes"),
            "data.autoplay.enabled",
        ),
        (
            |v| v["data"]["player"]["surprise"] = json!(1),
            "data.player.surprise",
        ),
    ];
    for (i, (edit, path)) in cases.iter().enumerate() {
        let mut value = base.clone();
        edit(&mut value);
        let file = work.path().join(format!("case{i}.json"));
        write_signed(&file, value);
        let name = file.to_str().unwrap();
        let out = reprise(dir.path(), &["import", name], None);
        assert_eq!(out.status.code(), Some(2), "{path}: {}", stderr(&out));
        let message = stderr(&out);
        assert!(
            message.contains(&format!("{name}: {path}")),
            "{path}: {message}"
        );
        let check = reprise(dir.path(), &["import", "--check", name], None);
        assert_eq!(check.status.code(), Some(2));
        let line: Value = serde_json::from_slice(&check.stdout).unwrap();
        assert_eq!(line["valid"], json!(false));
        assert_eq!(line["path"], json!(path));
    }
    assert!(no_guild(dir.path()));
    // The unchanged file, re-signed the same way, is accepted.
    let file = work.path().join("same.json");
    write_signed(&file, base);
    ok(&reprise(
        dir.path(),
        &["import", file.to_str().unwrap()],
        None,
    ));
}

#[test]
fn import_replaces_an_existing_session_with_ordinary_events() {
    let dir = tempfile::tempdir().unwrap();
    let events = concat!(
        "{\"type\":\"tracks_enqueued\",\"tracks\":[{\"encoded\":\"QUFB\",\"title\":\"Old\"}]}\n",
        "{\"type\":\"track_started\"}\n",
        "{\"type\":\"volume_set\",\"volume\":5}\n",
    );
    ok(&reprise(
        dir.path(),
        &["apply", "--guild", "599212921556694491"],
        Some(events),
    ));
    let file = fixture("599212921556694491");
    let line = stdout_lines(&reprise(
        dir.path(),
        &["import", file.to_str().unwrap()],
        None,
    ));
    assert_eq!(line[0]["first_seq"], json!(4));
    let dump = stdout_lines(&reprise(
        dir.path(),
        &["dump", "--guild", "599212921556694491"],
        None,
    ));
    assert_eq!(dump[3], json!({"seq": 4, "type": "session_ended"}));
    assert_eq!(dump.last().unwrap()["seq"], line[0]["seq"]);
    let exported = stdout_json(&reprise(
        dir.path(),
        &[
            "state",
            "--guild",
            "599212921556694491",
            "--format",
            "sonora",
        ],
        None,
    ));
    assert_eq!(exported["data"], read_json(&file)["data"]);
}

const T: u64 = 1_760_000_100_000;

fn playing_events() -> String {
    let lines = [
        json!({"type": "voice_connected", "session_id": "sess1", "channel_id": "1100000000000000001",
               "endpoint": "rotterdam1234.discord.media:443", "token": "tok1"}),
        json!({"type": "tracks_enqueued", "tracks": [
            {"encoded": "QAAAjQIAJVJpY2sg", "title": "One", "length_ms": 213000},
            {"encoded": "QAAAdHdv", "title": "Two", "length_ms": 100000}]}),
        json!({"type": "track_started"}),
        json!({"type": "volume_set", "volume": 80}),
        json!({"type": "position_reported", "position_ms": 30000, "at_unix_ms": T - 10_000}),
    ];
    lines.iter().map(|l| l.to_string() + "\n").collect()
}

fn lavalink(dir: &Path, guild: &str, extra: &[&str]) -> Value {
    let now = T.to_string();
    let mut a = vec!["lavalink", "--guild", guild, "--now-unix-ms", &now];
    a.extend_from_slice(extra);
    stdout_json(&reprise(dir, &a, None))
}

#[test]
fn lavalink_bodies_for_playing_paused_filtered_and_stopped_guilds() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for guild in ["1", "2", "3", "4", "5"] {
        ok(&reprise(
            d,
            &["apply", "--guild", guild],
            Some(&playing_events()),
        ));
    }
    // 1: playing, extrapolated by 10 s.
    let body = lavalink(d, "1", &[]);
    assert_eq!(
        body,
        json!({
            "track": {"encoded": "QAAAjQIAJVJpY2sg"},
            "position": 40000,
            "volume": 80,
            "paused": false,
            "filters": {},
            "voice": {"token": "tok1", "endpoint": "rotterdam1234.discord.media:443",
                      "sessionId": "sess1", "channelId": "1100000000000000001"}
        })
    );
    // 2: paused: the recorded position, paused.
    ok(&reprise(
        d,
        &["apply", "--guild", "2"],
        Some("{\"type\":\"paused_set\",\"paused\":true}\n"),
    ));
    let body = lavalink(d, "2", &[]);
    assert_eq!(body["paused"], json!(true));
    assert_eq!(body["position"], json!(30000));
    assert_eq!(body["track"]["encoded"], json!("QAAAjQIAJVJpY2sg"));
    // 3: nightcore: the position advances by speed × rate; Lavalink's filter names.
    let filters = json!({"type": "filters_set", "active": ["nightcore", "8d"], "config": {
        "equalizer": [{"band": 0, "gain": 0.25}, {"band": 14, "gain": -0.25}],
        "timescale": {"speed": 1.2, "pitch": 1.2, "rate": 1.0},
        "rotation": {"rotationHz": 0.2},
        "channel_mix": {"leftToLeft": 0.5, "leftToRight": 0.5, "rightToLeft": 0.5, "rightToRight": 0.5},
        "low_pass": {"smoothing": 20.0}}});
    ok(&reprise(
        d,
        &["apply", "--guild", "3"],
        Some(&(filters.to_string() + "\n")),
    ));
    let body = lavalink(d, "3", &[]);
    assert_eq!(body["position"], json!(42000));
    assert_eq!(
        body["filters"],
        json!({
            "equalizer": [{"band": 0, "gain": 0.25}, {"band": 14, "gain": -0.25}],
            "timescale": {"speed": 1.2, "pitch": 1.2, "rate": 1.0},
            "rotation": {"rotationHz": 0.2},
            "channelMix": {"leftToLeft": 0.5, "leftToRight": 0.5, "rightToLeft": 0.5, "rightToRight": 0.5},
            "lowPass": {"smoothing": 20.0}
        })
    );
    for band in body["filters"]["equalizer"].as_array().unwrap() {
        let (b, g) = (
            band["band"].as_u64().unwrap(),
            band["gain"].as_f64().unwrap(),
        );
        assert!(b <= 14 && (-0.25..=1.0).contains(&g));
    }
    assert_eq!(
        lavalink(d, "3", &["--only", "filters"]),
        json!({"filters": body["filters"]})
    );
    // 4: stopped: no track is started, no position.
    ok(&reprise(
        d,
        &["apply", "--guild", "4"],
        Some("{\"type\":\"track_ended\",\"reason\":\"stopped\"}\n"),
    ));
    let body = lavalink(d, "4", &[]);
    assert_eq!(body["track"], json!({"encoded": null}));
    assert!(body.get("position").is_none());
    assert_eq!(body["volume"], json!(80));
    let plan = lavalink(d, "4", &["--plan"]);
    assert_eq!(plan["status"], json!("stopped"));
    assert_eq!(plan["patch"], body);
    // 5: session ended: a reset player, nothing played; also a guild never seen.
    ok(&reprise(
        d,
        &["apply", "--guild", "5"],
        Some("{\"type\":\"session_ended\"}\n"),
    ));
    let reset = json!({"track": {"encoded": null}, "volume": 100, "paused": false, "filters": {}});
    assert_eq!(lavalink(d, "5", &[]), reset);
    assert_eq!(lavalink(d, "6", &[]), reset);
    // --plan carries the client-side queue.
    let plan = lavalink(d, "1", &["--plan", "--only", "player,queue"]);
    assert_eq!(plan["status"], json!("playing"));
    assert_eq!(plan["extrapolated_ms"], json!(10000));
    assert_eq!(plan["queue"]["upcoming"][0]["title"], json!("Two"));
    assert_eq!(plan["autoplay"], Value::Null);
    assert!(plan["patch"].get("filters").is_none());
    let bad = reprise(
        d,
        &["lavalink", "--guild", "1", "--only", "player,bogus"],
        None,
    );
    assert_eq!(bad.status.code(), Some(1));
}

/// Every byte of every file under `dir`.
fn du(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                du(&e.path())
            } else {
                meta.len()
            }
        })
        .sum()
}

fn events_jsonl(seed: u64, n: usize) -> String {
    use reprise::session::{apply, State, Workload};
    let mut bot = Workload::new(seed);
    let mut state = State::new(50);
    let mut out = String::new();
    for _ in 0..n {
        let event = bot.next_event(&state);
        apply(&mut state, &event);
        out.push_str(&event.to_json());
        out.push('\n');
    }
    out
}

#[test]
fn stats_and_cleanup_keep_the_newest_state() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let missing = stdout_json(&reprise(&d.join("missing"), &["stats"], None));
    assert_eq!(missing["guilds"], json!(0));
    assert!(!d.join("missing").exists());
    let empty = stdout_json(&reprise(d, &["stats"], None));
    assert_eq!(empty["guilds"], json!(0));
    assert_eq!(empty["oldest_snapshot"], Value::Null);
    let all = events_jsonl(5, 310);
    let lines: Vec<&str> = all.lines().collect();
    for chunk in lines[..300].chunks(100) {
        let input: String = chunk.iter().map(|l| format!("{l}\n")).collect();
        ok(&reprise(
            d,
            &["apply", "--guild", "9", "--durability", "none"],
            Some(&input),
        ));
        ok(&reprise(d, &["snapshot", "--guild", "9"], None));
    }
    let tail: String = lines[300..].iter().map(|l| format!("{l}\n")).collect();
    ok(&reprise(d, &["apply", "--guild", "9"], Some(&tail)));
    ok(&reprise(
        d,
        &["apply", "--guild", "8"],
        Some(&events_jsonl(6, 20)),
    ));
    let state_before = stdout_json(&reprise(d, &["state", "--guild", "9"], None));
    let stats = stdout_json(&reprise(d, &["stats"], None));
    assert_eq!(stats["guilds"], json!(2));
    assert_eq!(stats["events"], json!(330));
    assert_eq!(stats["snapshots"], json!(2));
    assert_eq!(stats["snapshots_by_guild"]["9"]["count"], json!(2));
    assert_eq!(stats["bytes_on_disk"], json!(du(d)));
    let nine = stats["per_guild"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["guild"] == json!(9))
        .unwrap();
    let seqs: Vec<&Value> = nine["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["seq"])
        .collect();
    assert_eq!(seqs, [&json!(200), &json!(300)]);
    assert_eq!(stats["newest_snapshot"]["seq"], json!(300));
    assert_eq!(stats["oldest_snapshot"]["seq"], json!(200));
    assert!(nine["snapshots"][0]["age_ms"].as_u64().is_some());
    assert_eq!(nine["snapshots"][0]["valid"], json!(true));
    // The default policy (the journal's: 2 snapshots) removes nothing.
    let report = stdout_json(&reprise(d, &["cleanup"], None));
    assert_eq!(report["snapshots_removed"], json!(0));
    assert_eq!(report["bytes_removed"], json!(0));
    // A dry run reports without removing.
    let dry = stdout_json(&reprise(d, &["cleanup", "--keep", "1", "--dry-run"], None));
    assert_eq!(dry["snapshots_removed"], json!(1));
    assert_eq!(
        stdout_json(&reprise(d, &["stats"], None))["snapshots"],
        json!(2)
    );
    // Only the newest snapshot is left, and the log before it goes.
    let bytes_before = du(d);
    let report = stdout_json(&reprise(d, &["cleanup", "--max-age", "0"], None));
    assert_eq!(report["snapshots_removed"], json!(1));
    assert_eq!(report["removed"][0]["guild"], json!(9));
    assert_eq!(report["removed"][0]["snapshots"], json!([200]));
    // Each process starts a new segment after a snapshot that covers the previous one, so the
    // segment of events 201..=300 (all covered by the kept snapshot 300) goes too.
    assert_eq!(report["segments_removed"], json!(1));
    assert_eq!(report["removed"][0]["segments"], json!([201]));
    assert_eq!(
        bytes_before - du(d),
        report["bytes_removed"].as_u64().unwrap()
    );
    let stats = stdout_json(&reprise(d, &["stats", "--guild", "9"], None));
    assert_eq!(stats["snapshots"], json!(1));
    assert_eq!(stats["newest_snapshot"]["seq"], json!(300));
    assert_eq!(stats["per_guild"][0]["seq"], json!(310));
    assert_eq!(
        stdout_json(&reprise(d, &["state", "--guild", "9"], None)),
        state_before
    );
    ok(&reprise(d, &["verify"], None));
    // The newest snapshot is never removed.
    let report = stdout_json(&reprise(
        d,
        &["cleanup", "--max-age", "0", "--keep", "1"],
        None,
    ));
    assert_eq!(report["snapshots_removed"], json!(0));
    assert_eq!(
        stdout_json(&reprise(d, &["state", "--guild", "9"], None)),
        state_before
    );
    let bad = reprise(d, &["cleanup", "--max-age", "-1"], None);
    assert_eq!(bad.status.code(), Some(1));
}

//! Black-box tests of encryption at rest through the `reprise` binary (`--key-file`): nothing
//! secret on disk, a missing or wrong key exits 2 with nothing written, rotation with
//! `--old-key-file`.

mod support;

use std::path::{Path, PathBuf};
use support::{reprise, stderr};

const TITLE: &str = "Never Gonna Give You Up";
const TOKEN: &str = "f00dfacecafe1234";
const SESSION: &str = "5e55104aabbccdd";

fn events() -> String {
    [
        format!(
            r#"{{"type":"voice_connected","session_id":"{SESSION}","channel_id":"42","endpoint":"rotterdam1.discord.media:443","token":"{TOKEN}"}}"#
        ),
        format!(
            r#"{{"type":"tracks_enqueued","tracks":[{{"encoded":"QAAAjQIAJVJpY2sgQXN0bGV5","title":"{TITLE}","author":"Rick Astley","length_ms":213000}},{{"encoded":"QAAAAQ==","title":"Take On Me"}}]}}"#
        ),
        r#"{"type":"track_started"}"#.to_string(),
        r#"{"type":"volume_set","volume":80}"#.to_string(),
    ]
    .join("\n")
        + "\n"
}

fn write_key(dir: &Path, name: &str, byte: u8) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, [byte; 32]).unwrap();
    path
}

/// Every file under `dir` (recursively) with its bytes, sorted.
fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

fn grep(dir: &Path, needle: &str) -> Vec<PathBuf> {
    files(dir)
        .into_iter()
        .filter(|(_, b)| b.windows(needle.len()).any(|w| w == needle.as_bytes()))
        .map(|(p, _)| p)
        .collect()
}

#[test]
fn with_a_key_file_nothing_secret_is_on_disk_and_the_key_is_required() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    let key = write_key(tmp.path(), "key", 0x11);
    let other = write_key(tmp.path(), "other", 0x22);
    let key = key.to_str().unwrap();
    let other = other.to_str().unwrap();

    let out = reprise(
        &dir,
        &["--key-file", key, "apply", "--guild", "7"],
        Some(&events()),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = reprise(&dir, &["--key-file", key, "snapshot"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    // One more event after the snapshot, so a segment holds a title too.
    let more = format!(
        r#"{{"type":"tracks_enqueued","tracks":[{{"encoded":"QUJD","title":"{TITLE} (Live)"}}]}}"#
    ) + "\n";
    let out = reprise(
        &dir,
        &["--key-file", key, "apply", "--guild", "7"],
        Some(&more),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let exts: Vec<String> = files(&dir)
        .iter()
        .filter_map(|(p, _)| p.extension().map(|e| e.to_string_lossy().into_owned()))
        .collect();
    assert!(exts.iter().any(|e| e == "wal") && exts.iter().any(|e| e == "snap"));
    for secret in [
        TITLE,
        TOKEN,
        SESSION,
        "Rick Astley",
        "Take On Me",
        "rotterdam1",
    ] {
        assert_eq!(
            grep(&dir, secret),
            Vec::<PathBuf>::new(),
            "{secret} on disk"
        );
    }

    // With the key: the state is there.
    let out = reprise(&dir, &["--key-file", key, "state", "--guild", "7"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let state: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(state["seq"], 5);
    assert_eq!(state["player"]["voice"]["token"], TOKEN);
    assert_eq!(state["queue"]["current"]["track"]["title"], TITLE);
    let out = reprise(&dir, &["--key-file", key, "verify"], None);
    assert!(out.status.success(), "{}", stderr(&out));

    // Without it, or with another key: exit 2, a clear message, nothing written.
    let before = files(&dir);
    for args in [
        vec!["state", "--guild", "7"],
        vec!["--key-file", other, "state", "--guild", "7"],
        vec!["dump", "--guild", "7"],
        vec!["verify"],
        vec!["--key-file", other, "snapshot"],
    ] {
        let out = reprise(&dir, &args, None);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("key"), "{args:?}: {}", stderr(&out));
        assert!(out.stdout.is_empty(), "{args:?} printed {:?}", out.stdout);
    }
    for args in [
        vec!["apply", "--guild", "7"],
        vec!["apply", "--guild", "8"],
        vec!["--key-file", other, "apply", "--guild", "7"],
    ] {
        let out = reprise(&dir, &args, Some(r#"{"type":"volume_set","volume":5}"#));
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(out.stdout.is_empty());
    }
    let after = files(&dir);
    let strip = |v: Vec<(PathBuf, Vec<u8>)>| -> Vec<(PathBuf, Vec<u8>)> {
        v.into_iter()
            .filter(|(p, _)| !p.ends_with("LOCK"))
            .collect()
    };
    assert_eq!(
        strip(after),
        strip(before),
        "a refused command changed the journal"
    );
}

#[test]
fn a_malformed_key_file_exits_2() {
    let tmp = tempfile::tempdir().unwrap();
    let short = tmp.path().join("short");
    std::fs::write(&short, [7u8; 31]).unwrap();
    let out = reprise(
        &tmp.path().join("j"),
        &[
            "--key-file",
            short.to_str().unwrap(),
            "apply",
            "--guild",
            "1",
        ],
        Some(&events()),
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("31 bytes"), "{}", stderr(&out));
    assert!(!tmp.path().join("j").join("guilds").exists());
    // 64 hex digits and a newline (`openssl rand -hex 32`) are a key too.
    let hex = tmp.path().join("hex");
    std::fs::write(&hex, format!("{}\n", "ab".repeat(32))).unwrap();
    let out = reprise(
        &tmp.path().join("j"),
        &["--key-file", hex.to_str().unwrap(), "apply", "--guild", "1"],
        Some(&events()),
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn rotation_reads_old_files_with_the_old_key_and_seals_new_ones_with_the_new_key() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    let old = write_key(tmp.path(), "old", 0x31);
    let new = write_key(tmp.path(), "new", 0x32);
    let (old, new) = (old.to_str().unwrap(), new.to_str().unwrap());
    let out = reprise(
        &dir,
        &["--key-file", old, "apply", "--guild", "9"],
        Some(&events()),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // The new key alone cannot read the journal yet.
    let out = reprise(&dir, &["--key-file", new, "state", "--guild", "9"], None);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    // New key + old key: readable, and appends and snapshots go under the new key.
    let rotated = ["--key-file", new, "--old-key-file", old];
    let mut args = rotated.to_vec();
    args.extend(["apply", "--guild", "9"]);
    let out = reprise(&dir, &args, Some(r#"{"type":"paused_set","paused":true}"#));
    assert!(out.status.success(), "{}", stderr(&out));
    let mut args = rotated.to_vec();
    args.extend(["state", "--guild", "9"]);
    let out = reprise(&dir, &args, None);
    assert!(out.status.success(), "{}", stderr(&out));
    let state: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (state["seq"].as_u64(), state["player"]["paused"].as_bool()),
        (Some(5), Some(true))
    );
    // The old key alone is now refused: the journal names the new one.
    let out = reprise(&dir, &["--key-file", old, "state", "--guild", "9"], None);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

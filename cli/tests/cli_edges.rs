//! Black-box tests of what a user meets at the edges: a directory that does not exist, a torn
//! tail cut by a read-only command, completion scripts, reading `reprise state`'s JSON back
//! with the library.

mod support;

use std::path::Path;

use reprise::{GuildId, GuildState, Journal};
use support::{jsonl, ok, reprise, stderr, stream};

/// Writes `n` workload events to `guild` with `reprise apply`.
fn applied(dir: &Path, guild: u64, n: usize) {
    let (events, _) = stream(guild, n);
    ok(&reprise(
        dir,
        &["apply", "--guild", &guild.to_string()],
        Some(&jsonl(&events)),
    ));
}

#[test]
fn commands_on_a_directory_that_does_not_exist_say_so_and_create_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("typo");
    // Read-only commands, and the commands that change an existing journal: exit 4 naming the
    // directory, nothing on stdout, no lock error, nothing created.
    for args in [
        &["state", "--guild", "5"][..],
        &["dump", "--guild", "5"],
        &["export", "--guild", "5", "--format", "sonora"],
        &["lavalink", "--guild", "5"],
        &["inspect"],
        &["verify"],
        &["checkpoints"],
        &["cleanup", "--dry-run"],
        &["cleanup"],
        &["snapshot"],
        &["checkpoint", "before"],
        &["checkpoint", "before", "--remove"],
        &["rollback", "before"],
        &["restore", "--guild", "5", "--to", "1"],
    ] {
        let out = reprise(&dir, args, None);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(4), "{args:?}: {err}");
        assert!(
            err.contains(&dir.display().to_string()) && err.contains("does not exist"),
            "{args:?}: {err}"
        );
        assert!(!err.to_lowercase().contains("lock"), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(!dir.exists(), "{args:?} created the directory");
    }
    // `stats` answers with the truth: nothing to count.
    let out = reprise(&dir, &["stats"], None);
    ok(&out);
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (stats["guilds"].as_u64(), stats["bytes_on_disk"].as_u64()),
        (Some(0), Some(0))
    );
    assert!(!dir.exists(), "stats created the directory");
}

#[test]
fn state_and_dump_say_when_they_cut_a_torn_tail() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    applied(&dir, 3, 12);
    let log = std::fs::read_dir(dir.join("guilds/3"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "wal"))
        .unwrap();
    // Half of the last record is lost.
    let len = std::fs::metadata(&log).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&log).unwrap();
    f.set_len(len - 5).unwrap();
    drop(f);
    for args in [&["state", "--guild", "3"][..], &["dump", "--guild", "3"]] {
        let out = reprise(&dir, args, None);
        ok(&out);
        let err = stderr(&out);
        assert!(
            err.contains("torn")
                && err.contains("cut off")
                && err.contains(&log.display().to_string()),
            "{args:?}: {err}"
        );
    }
    // An intact guild: no note.
    applied(&dir, 4, 3);
    let out = reprise(&dir, &["state", "--guild", "4"], None);
    ok(&out);
    assert!(!stderr(&out).contains("torn"), "{}", stderr(&out));
}

#[test]
fn completion_scripts_list_no_hidden_command() {
    let dir = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = reprise(dir.path(), &["completions", shell], None);
        ok(&out);
        let script = String::from_utf8(out.stdout.clone()).unwrap();
        for hidden in ["demo-worker", "bench-worker", "demo_worker", "bench_worker"] {
            assert!(!script.contains(hidden), "{shell} lists {hidden}");
        }
        for public in [
            "state",
            "rollback",
            "claim",
            "completions",
            "--dir",
            "--guild",
        ] {
            assert!(script.contains(public), "{shell} lacks {public}");
        }
    }
}

#[test]
fn the_state_json_reads_back_with_the_library() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    applied(&dir, 9, 80);
    let out = reprise(&dir, &["state", "--guild", "9"], None);
    ok(&out);
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let read = GuildState::from_json(&printed).unwrap();
    let mut journal = Journal::open_read_only(&dir, reprise::Config::default()).unwrap();
    assert_eq!(&read, journal.state(GuildId(9)).unwrap());
    assert_eq!(read.seq, 80);
    // And it prints the same JSON again.
    assert_eq!(read.to_json(), printed);
}

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
fn state_and_dump_say_when_they_skip_a_torn_tail() {
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
                && err.contains("nothing cut")
                && !err.contains("corrupt")
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

/// A `--remote` URL that names no store is a usage error (exit 1) for every command, `apply`
/// included: it is not an unreachable store, after which `apply` appends locally only.
#[test]
fn a_malformed_remote_url_is_a_usage_error_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("j");
    let (events, _) = stream(3, 3);
    for url in ["bogus://x", "s3://", "file://relative/path"] {
        let out = reprise(
            &dir,
            &["--remote", url, "apply", "--guild", "3"],
            Some(&jsonl(&events)),
        );
        assert_eq!(out.status.code(), Some(1), "{url}: {}", stderr(&out));
        assert!(out.stdout.is_empty(), "{url}: acknowledged something");
        assert!(stderr(&out).contains(url), "{url}: {}", stderr(&out));
        assert!(!stderr(&out).contains("locally only"), "{url}");
    }
    assert!(!dir.join("guilds").exists(), "an event was written");
}

/// Event lines saved with a UTF-8 byte order mark (a Windows editor) apply as without it; a
/// mark anywhere but before the first line is refused (exit 2), nothing written for it.
#[test]
fn apply_reads_past_a_byte_order_mark_before_the_first_line() {
    let tmp = tempfile::tempdir().unwrap();
    let (events, states) = stream(12, 5);
    let marked = format!("\u{feff}{}", jsonl(&events));
    let dir = tmp.path().join("j");
    let out = reprise(&dir, &["apply", "--guild", "12"], Some(&marked));
    ok(&out);
    let mut journal = Journal::open_read_only(&dir, reprise::Config::default()).unwrap();
    let got = journal.state(GuildId(12)).unwrap();
    assert_eq!((got.seq, &got.state), (5, &states[5]));
    let late = format!("{}\u{feff}{}", jsonl(&events[..1]), jsonl(&events[1..2]));
    let dir = tmp.path().join("k");
    let out = reprise(&dir, &["apply", "--guild", "12"], Some(&late));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("stdin line 2"), "{}", stderr(&out));
}

/// A line that is not UTF-8 is refused with exit 2 and a message naming the line and the byte
/// (before: "expected value at line 1, column 1", about text the line does not hold); the
/// lines before it are acknowledged, nothing is written for it.
#[test]
fn apply_names_a_line_that_is_not_utf8() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("j");
    let (events, states) = stream(13, 2);
    let mut input = jsonl(&events[..1]).into_bytes();
    input.extend_from_slice(b"{\"type\":\"volume_set\",\"volume\":5\xff}\n");
    input.extend_from_slice(jsonl(&events[1..2]).as_bytes());
    let mut child = Command::new(env!("CARGO_BIN_EXE_reprise"))
        .arg("--dir")
        .arg(&dir)
        .args(["apply", "--guild", "13"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // The command stops at the bad line and may close the pipe before the rest is written.
    let _ = stdin.write_all(&input);
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("stdin line 2: not UTF-8 (an invalid byte at byte 31"),
        "{}",
        stderr(&out)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "{\"seq\": 1}\n");
    let mut journal = Journal::open_read_only(&dir, reprise::Config::default()).unwrap();
    let got = journal.state(GuildId(13)).unwrap();
    assert_eq!((got.seq, &got.state), (1, &states[1]));
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

/// Runs `reprise --dir DIR ARGS` under a pseudo-terminal (`script`, util-linux): stdout and
/// stderr are both the terminal; returns what the terminal showed. `None` without `script`.
fn on_a_terminal(dir: &Path, args: &str) -> Option<String> {
    let command = format!(
        "{} --dir {} {args}",
        env!("CARGO_BIN_EXE_reprise"),
        dir.display()
    );
    let out = std::process::Command::new("script")
        .args(["-q", "-e", "-c", &command, "/dev/null"])
        .env("TERM", "xterm")
        .stdin(std::process::Stdio::null())
        .output()
        .ok()?;
    assert!(out.status.success(), "{args}: {}", stderr(&out));
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Long work shows a progress bar (count, rate, ETA) on a terminal, none when stderr is piped
/// or with `--quiet`; the one-line summary comes on a terminal and piped, not with `--quiet`.
#[test]
fn progress_shows_on_a_terminal_only() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    for g in 1..=3 {
        applied(&dir, g, 4);
    }
    let out = reprise(&dir, &["checkpoint", "c"], None);
    ok(&out);
    let rollback = "rollback c --batch 1 --pace-ms 250";
    for g in 1..=3 {
        applied(&dir, g, 2);
    }
    let Some(tty) = on_a_terminal(&dir, rollback) else {
        eprintln!("no `script` (util-linux) on this machine: the terminal case is not run");
        return;
    };
    let bar = "guilds (";
    assert!(
        tty.contains("reprise: rollback to c [") && tty.contains(bar),
        "{tty}"
    );
    assert!(tty.contains("ETA"), "{tty}");
    assert!(
        tty.contains("guild(s) restored") && tty.contains("3 batch(es) in "),
        "{tty}"
    );
    // Piped: the summary, no bar.
    let out = reprise(&dir, &["verify"], None);
    ok(&out);
    let err = stderr(&out);
    assert!(
        err.contains("verified 3 guilds") && !err.contains(bar),
        "{err}"
    );
    let out = reprise(&dir, &["rollback", "c", "--batch", "1"], None);
    ok(&out);
    let err = stderr(&out);
    assert!(err.contains("3 unchanged") && !err.contains(bar), "{err}");
    // On a terminal with --quiet: neither.
    let quiet = on_a_terminal(&dir, &format!("--quiet {rollback}")).unwrap();
    assert!(
        !quiet.contains(bar) && !quiet.contains("unchanged,"),
        "{quiet}"
    );
    let verify = on_a_terminal(&dir, "verify").unwrap();
    assert!(verify.contains("verified 3 guilds"), "{verify}");
    let verify = on_a_terminal(&dir, "-q verify").unwrap();
    assert!(!verify.contains("verified"), "{verify}");
    let stats = on_a_terminal(&dir, "stats").unwrap();
    assert!(
        stats.contains("reprise: stats [") && stats.contains("stats of 3 guild(s)"),
        "{stats}"
    );
    // Importing files: a bar over the files on a terminal, the summary when piped.
    let mut files = Vec::new();
    for g in 1..=3 {
        let path = tmp.path().join(format!("g{g}.json"));
        let out = reprise(
            &dir,
            &[
                "export",
                "--guild",
                &g.to_string(),
                "--format",
                "sonora",
                "-o",
                path.to_str().unwrap(),
            ],
            None,
        );
        ok(&out);
        files.push(path.display().to_string());
    }
    let other = tmp.path().join("other");
    let import = on_a_terminal(&other, &format!("import {}", files.join(" "))).unwrap();
    assert!(
        import.contains("files (") && import.contains("imported 3 file(s) into 3 guild(s)"),
        "{import}"
    );
    let mut args = vec!["import"];
    args.extend(files.iter().map(String::as_str));
    let out = reprise(&tmp.path().join("third"), &args, None);
    ok(&out);
    let err = stderr(&out);
    assert!(
        err.contains("imported 3 file(s)") && !err.contains("files ("),
        "{err}"
    );
}

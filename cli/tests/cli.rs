//! Black-box tests of the `reprise` binary: apply, state, snapshot, verify, dump, exit codes,
//! and a loop of SIGKILLs during `apply`.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use reprise::session::{Rng, State};
use serde_json::Value;

use support::{jsonl, reprise, stream};

/// `state` output minus the `guild`/`seq` envelope, as the library's state JSON.
fn state_of(dir: &Path, guild: &str) -> (u64, Value) {
    let out = reprise(dir, &["state", "--guild", guild], None);
    assert!(
        out.status.success(),
        "state failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let obj = v.as_object_mut().unwrap();
    assert_eq!(obj.remove("guild").unwrap().to_string(), guild);
    let seq = obj.remove("seq").unwrap().as_u64().unwrap();
    (seq, v)
}

fn expected(state: &State) -> Value {
    serde_json::to_value(state).unwrap()
}

#[test]
fn apply_then_state_prints_the_fold_and_snapshots_between_batches_change_nothing() {
    let (events, states) = stream(21, 400);
    let a = tempfile::tempdir().unwrap();
    let out = reprise(a.path(), &["apply", "--guild", "1"], Some(&jsonl(&events)));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let acks: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect();
    assert_eq!(acks.len(), 400);
    assert_eq!(acks[399], serde_json::json!({"seq": 400}));
    assert_eq!(state_of(a.path(), "1"), (400, expected(&states[400])));

    let b = tempfile::tempdir().unwrap();
    for chunk in events.chunks(77) {
        let out = reprise(
            b.path(),
            &["apply", "--guild", "1", "--durability", "none"],
            Some(&jsonl(chunk)),
        );
        assert!(out.status.success());
        let out = reprise(b.path(), &["snapshot"], None);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(state_of(b.path(), "1"), (400, expected(&states[400])));
    assert!(reprise(b.path(), &["verify"], None).status.success());

    // dump gives back the events (those the log still holds) with their seq.
    let out = reprise(a.path(), &["dump", "--guild", "1"], None);
    let lines: Vec<String> = out.stdout.lines().map(Result::unwrap).collect();
    assert_eq!(lines.len(), 400);
    let mut first: Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(
        first.as_object_mut().unwrap().remove("seq"),
        Some(serde_json::json!(1))
    );
    assert_eq!(
        first,
        serde_json::from_str::<Value>(&events[0].to_json()).unwrap()
    );

    // state --at
    let out = reprise(a.path(), &["state", "--guild", "1", "--at", "123"], None);
    let mut v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["seq"], 123);
    v.as_object_mut().unwrap().remove("seq");
    v.as_object_mut().unwrap().remove("guild");
    assert_eq!(v, expected(&states[123]));
}

#[test]
fn invalid_events_exit_2_after_acknowledging_the_valid_ones() {
    let dir = tempfile::tempdir().unwrap();
    let input = "{\"type\":\"volume_set\",\"volume\":10}\n{\"type\":\"volume_set\",\"volume\":1001}\n{\"type\":\"volume_set\",\"volume\":20}\n";
    let out = reprise(dir.path(), &["apply", "--guild", "3"], Some(input));
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "{\"seq\": 1}\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 2"));
    let out = reprise(
        dir.path(),
        &["apply", "--guild", "3"],
        Some("{\"type\":\"volume_set\",\"volume\":5,\"extra\":1}\n"),
    );
    assert_eq!(out.status.code(), Some(2));
    let (seq, state) = state_of(dir.path(), "3");
    assert_eq!(seq, 1);
    assert_eq!(state["player"]["volume"], 10);
    // Usage errors exit 1.
    assert_eq!(reprise(dir.path(), &["state"], None).status.code(), Some(1));
    assert_eq!(
        reprise(dir.path(), &["state", "--guild", "3", "--at", "9"], None)
            .status
            .code(),
        Some(1)
    );
}

#[test]
fn a_second_process_gets_exit_3() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = Command::new(env!("CARGO_BIN_EXE_reprise"))
        .arg("--dir")
        .arg(dir.path())
        .args(["apply", "--guild", "1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = first.stdin.take().unwrap();
    stdin
        .write_all(b"{\"type\":\"paused_set\",\"paused\":true}\n")
        .unwrap();
    stdin.flush().unwrap();
    // Once the first ack is printed the first process holds the lock.
    let mut acks = BufReader::new(first.stdout.take().unwrap());
    let mut line = String::new();
    acks.read_line(&mut line).unwrap();
    assert_eq!(line, "{\"seq\": 1}\n");
    let second = reprise(dir.path(), &["apply", "--guild", "1"], Some(""));
    assert_eq!(second.status.code(), Some(3));
    // The holder's pid, as a whole number (the temporary directory's name may hold digits).
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains(&format!("(pid {})", first.id())),
        "{stderr}"
    );
    // A reader is not a second writer: it reads beside the first (issue 18).
    let reader = reprise(dir.path(), &["state", "--guild", "1"], None);
    assert_eq!(reader.status.code(), Some(0));
    drop(stdin);
    assert!(first.wait().unwrap().success());
}

/// `apply --durability always` killed with SIGKILL at a random moment never loses an event
/// whose `{"seq"}` line was printed, and the recovered state is the fold of a prefix.
#[test]
fn sigkill_during_apply_loses_no_acknowledged_event() {
    let (events, states) = stream(99, 600);
    let text = jsonl(&events);
    let lines: Vec<&str> = text.lines().collect();
    let mut rng = Rng::new(0xc0ffee);
    let kills = 50;
    for round in 0..kills {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_reprise"))
            .arg("--dir")
            .arg(dir.path())
            .args(["apply", "--guild", "77", "--durability", "always"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let feed: Vec<String> = lines.iter().map(|l| format!("{l}\n")).collect();
        // Feed input from another thread in uneven bursts, like a live bot.
        let feeder = std::thread::spawn(move || {
            for chunk in feed.chunks(13) {
                if stdin.write_all(chunk.concat().as_bytes()).is_err() {
                    return;
                }
                let _ = stdin.flush();
            }
        });
        let kill_after = rng.below(500) + 1;
        let mut acks = BufReader::new(child.stdout.take().unwrap());
        let mut last_acked = 0u64;
        let mut line = String::new();
        while last_acked < kill_after {
            line.clear();
            if acks.read_line(&mut line).unwrap() == 0 {
                break;
            }
            let v: Value = serde_json::from_str(&line).unwrap();
            last_acked = v["seq"].as_u64().unwrap();
        }
        child.kill().unwrap();
        // Whatever was printed before the kill took effect is acknowledged too.
        for l in acks.lines() {
            let v: Value = serde_json::from_str(&l.unwrap()).unwrap();
            last_acked = v["seq"].as_u64().unwrap();
        }
        child.wait().unwrap();
        let _ = feeder.join();
        let (seq, state) = state_of(dir.path(), "77");
        assert!(
            seq >= last_acked,
            "round {round}: recovered {seq} < acknowledged {last_acked}"
        );
        assert_eq!(state, expected(&states[seq as usize]), "round {round}");
        let verify = reprise(dir.path(), &["verify"], None);
        assert!(
            verify.status.success(),
            "round {round}: {}",
            String::from_utf8_lossy(&verify.stdout)
        );
    }
}

/// `export --format sonora` writes a file whose checksum verifies and whose state is the
/// journal's; `state --format sonora` prints the same file.
#[test]
fn export_sonora_round_trips_through_the_sonora_parser() {
    let (events, states) = stream(5, 300);
    let dir = tempfile::tempdir().unwrap();
    let out = reprise(
        dir.path(),
        &["apply", "--guild", "42", "--durability", "none"],
        Some(&jsonl(&events)),
    );
    assert!(out.status.success());
    let file = dir.path().join("export.json");
    let out = reprise(
        dir.path(),
        &[
            "export",
            "--guild",
            "42",
            "--format",
            "sonora",
            "-o",
            file.to_str().unwrap(),
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&file).unwrap();
    let parsed = reprise::sonora::parse(&text).unwrap();
    assert_eq!(parsed.guild_id, 42);
    // Sonora keeps 50 history entries and no stream flags; compare what it can carry.
    let want = reprise::sonora::from_state(
        42,
        parsed.timestamp,
        &states[300],
        reprise::sonora::Sections::ALL,
    );
    assert_eq!(reprise::sonora::to_json(&want), text);
    let printed = reprise(
        dir.path(),
        &["state", "--guild", "42", "--format", "sonora"],
        None,
    );
    let printed: Value = serde_json::from_slice(&printed.stdout).unwrap();
    let exported: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(printed["data"], exported["data"]);
}

/// Contract §4 and §5 with a `file://` remote: `bench --remote` prints every local row of §4
/// (the added ones included), then its three remote rows, and removes what it stored (the run's key prefix, and the URL's directory that
/// it created), as it removes its local directory.
#[test]
fn bench_quick_with_a_file_remote_adds_the_remote_rows_and_cleans_up() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, store) = (tmp.path().join("data"), tmp.path().join("store"));
    let url = format!("file://{}", store.display());
    let out = reprise(
        &dir,
        &["bench", "--quick", "--json", "--remote", &url],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = report["rows"].as_array().unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    let local = names
        .iter()
        .position(|n| *n == "s3 PUT floor")
        .unwrap_or_else(|| panic!("no remote rows: {names:?}"));
    assert_eq!(
        names[local..],
        ["s3 PUT floor", "reprise remote 64 guilds", "claim"],
        "{names:?}"
    );
    for name in [
        "fdatasync floor",
        "fdatasync append",
        "reprise durable 1 guild",
        "reprise durable 64 guilds",
        "reprise none",
        "sqlite WAL FULL",
        "sqlite WAL NORMAL",
        "sonora JSON",
        "redb 1 guild",
        "fjall 1 guild",
        "redb 64 guilds",
        "fjall 64 guilds",
        "replay",
        "snapshot",
        "new guild",
        "recover guilds",
    ] {
        let row = rows[..local]
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("no row {name}: {names:?}"));
        assert!(row["ops_per_s"].as_f64().unwrap() > 0.0, "{row}");
    }
    // The scale rows: every guild written by the killed child is recovered by the fresh one,
    // whose peak memory and the directory's allocated bytes are reported.
    let recover = rows.iter().find(|r| r["name"] == "recover guilds").unwrap();
    assert!(recover["guilds"].as_u64().unwrap() >= 5_000, "{recover}");
    assert!(recover["rss_bytes"].as_u64().unwrap() > 0, "{recover}");
    assert!(recover["disk_bytes"].as_u64().unwrap() > 0, "{recover}");
    let new_guild = rows.iter().find(|r| r["name"] == "new guild").unwrap();
    assert!(
        new_guild["ratio_to_existing_guild"].as_f64().unwrap() > 0.0,
        "{new_guild}"
    );
    // The durable rows' floor is the faster of the two floor rows.
    let ops = |name: &str| {
        rows.iter().find(|r| r["name"] == name).unwrap()["ops_per_s"]
            .as_f64()
            .unwrap()
    };
    let floor = ops("fdatasync floor").max(ops("fdatasync append"));
    let redb = rows.iter().find(|r| r["name"] == "redb 1 guild").unwrap();
    let expected = ops("redb 1 guild") / floor;
    let reported = redb["ratio_to_floor"].as_f64().unwrap();
    assert!((reported - expected).abs() < 0.002, "{redb} vs {expected}");
    for row in &rows[local..] {
        assert!(row["ops_per_s"].as_f64().unwrap() > 0.0, "{row}");
        assert!(row["p50_us"].as_f64().unwrap() > 0.0, "{row}");
    }
    assert!(
        rows[local + 1]["ratio_to_floor"].as_f64().unwrap() > 0.0,
        "{}",
        rows[local + 1]
    );
    assert!(report["remote"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{url}/bench-")));
    assert!(!store.exists(), "the store directory is left behind");
    assert!(!dir.exists(), "the local directory is left behind");
}

#[test]
fn reading_a_directory_that_does_not_exist_says_so_and_creates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("typo");
    for args in [
        &["state", "--guild", "5"][..],
        &["verify"],
        &["inspect"],
        &["dump", "--guild", "5"],
    ] {
        let out = support::reprise(&dir, args, None);
        let err = support::stderr(&out);
        assert_eq!(out.status.code(), Some(4), "{args:?}: {err}");
        assert!(
            err.contains(&dir.display().to_string()) && err.contains("does not exist"),
            "{args:?}: {err}"
        );
        assert!(out.stdout.is_empty());
        assert!(!dir.exists(), "{args:?} created the directory");
    }
}

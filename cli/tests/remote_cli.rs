//! Black-box tests of `ship`, `claim`, `--remote` and `apply --durability remote` through the
//! binary, with a `file://` remote; separate directories stand for separate machines.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use reprise::session::{apply, State, Workload, HISTORY_MAX_DEFAULT};
use serde_json::Value;

mod support;

const GUILD: &str = "613425648685547541";

fn events(seed: u64, n: usize) -> String {
    events_after(&[], seed, n)
}

/// `n` events from the bot `seed` that apply after the event lines `prefix` (a writer that
/// continues from the state those leave, not from a longer history it never saw).
fn events_after(prefix: &[&str], seed: u64, n: usize) -> String {
    let mut w = Workload::new(seed);
    let mut state = State::new(HISTORY_MAX_DEFAULT);
    for line in prefix {
        apply(&mut state, &reprise::Event::from_json(line).unwrap());
    }
    let mut out = String::new();
    for _ in 0..n {
        let e = w.next_event(&state);
        apply(&mut state, &e);
        out.push_str(&e.to_json());
        out.push('\n');
    }
    out
}

fn run(dir: &Path, remote: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_reprise"));
    cmd.arg("--dir")
        .arg(dir)
        .arg("--remote")
        .arg(format!("file://{}", remote.display()))
        .args(args)
        .env_remove("REPRISE_REMOTE");
    support::output(cmd, stdin)
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn state(dir: &Path, remote: &Path) -> Value {
    serde_json::from_str(&ok(&run(dir, remote, &["state", "--guild", GUILD], None))).unwrap()
}

fn seqs(stdout: &str) -> Vec<u64> {
    stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect()
}

fn claim(dir: &Path, remote: &Path, owner: &str) -> Value {
    let out = ok(&run(
        dir,
        remote,
        &["claim", "--guild", GUILD, "--owner", owner],
        None,
    ));
    serde_json::from_str(&out).unwrap()
}

#[test]
fn ship_then_claim_into_an_empty_directory_gives_the_identical_state() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, store) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("store"),
    );
    let input = events(7, 400);
    let lines: Vec<&str> = input.lines().collect();
    // Snapshots and a cleanup that drops the segments the newest snapshot covers, so shipping
    // has to stand a snapshot in for the log it no longer holds.
    ok(&run(
        &a,
        &store,
        &["apply", "--guild", GUILD],
        Some(&(lines[..200].join("\n") + "\n")),
    ));
    ok(&run(&a, &store, &["snapshot", "--guild", GUILD], None));
    ok(&run(
        &a,
        &store,
        &["apply", "--guild", GUILD],
        Some(&(lines[200..300].join("\n") + "\n")),
    ));
    ok(&run(&a, &store, &["snapshot", "--guild", GUILD], None));
    ok(&run(&a, &store, &["cleanup", "--keep", "1"], None));
    ok(&run(
        &a,
        &store,
        &["apply", "--guild", GUILD],
        Some(&(lines[300..].join("\n") + "\n")),
    ));
    // `apply` shipped its events itself; `ship` uploads the snapshots (and what the first
    // two applies' last rounds could no longer read after the cleanup, if anything).
    let shipped: Value = serde_json::from_str(&ok(&run(&a, &store, &["ship"], None))).unwrap();
    assert!(shipped["objects"].as_u64().unwrap() >= 1, "{shipped}");
    assert!(shipped["bytes"].as_u64().unwrap() > 0);
    // Shipping again uploads nothing.
    let again: Value = serde_json::from_str(&ok(&run(&a, &store, &["ship"], None))).unwrap();
    assert_eq!(again["objects"], 0, "{again}");

    let claimed = claim(&b, &store, "machine-b");
    assert_eq!(claimed["seq"], 400);
    assert_eq!(claimed["epoch"], 2);
    assert_eq!(state(&a, &store), state(&b, &store));
    ok(&run(&b, &store, &["verify"], None));

    // The new owner continues the sequence; the old one is fenced before it reads input.
    let more = events(8, 1);
    let out = ok(&run(
        &b,
        &store,
        &["apply", "--guild", GUILD, "--durability", "remote"],
        Some(&more),
    ));
    assert_eq!(seqs(&out), vec![401]);
    let before = state(&a, &store);
    let out = run(&a, &store, &["apply", "--guild", GUILD], Some(&more));
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("epoch 2") && err.contains("machine-b"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
    assert_eq!(state(&a, &store), before, "a fenced apply wrote nothing");
    let out = run(&a, &store, &["ship"], None);
    assert_eq!(out.status.code(), Some(3));
    // Having seen the newer epoch, the old owner appends nothing more, even without --remote.
    let out = Command::new(env!("CARGO_BIN_EXE_reprise"))
        .args(["--dir", a.to_str().unwrap(), "apply", "--guild", GUILD])
        .env_remove("REPRISE_REMOTE")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(state(&a, &store), before);
}

#[test]
fn remote_acks_survive_the_loss_of_the_machine() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, store) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("store"),
    );
    let input = events(11, 120);
    let out = ok(&run(
        &a,
        &store,
        &["apply", "--guild", GUILD, "--durability", "remote"],
        Some(&input),
    ));
    assert_eq!(seqs(&out), (1..=120).collect::<Vec<_>>());
    // Machine a is lost: nothing but the store is left.
    std::fs::remove_dir_all(&a).unwrap();
    let claimed = claim(&b, &store, "b");
    assert_eq!(claimed["seq"], 120);
    let dump = ok(&run(&b, &store, &["dump", "--guild", GUILD], None));
    let expected: Vec<Value> = input
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let got: Vec<Value> = dump
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("seq");
            v
        })
        .collect();
    assert_eq!(got, expected);
}

#[test]
fn sigkill_during_remote_apply_keeps_every_printed_seq() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, store) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("store"),
    );
    let input = events(12, 2000);
    let mut apply = Command::new(env!("CARGO_BIN_EXE_reprise"));
    apply
        .args(["--dir", a.to_str().unwrap()])
        .args(["--remote", &format!("file://{}", store.display())])
        .args(["apply", "--guild", GUILD, "--durability", "remote"]);
    // Kill it once it has acknowledged 150 events, whatever it is doing then.
    let (acked, _) = support::kill_after_acks(apply, input, 150);
    let last = acked[acked.len() - 1];
    let claimed = claim(&b, &store, "b");
    assert!(
        claimed["seq"].as_u64().unwrap() >= last,
        "{claimed} < {last}"
    );
}

#[test]
fn a_changed_byte_in_the_remote_makes_claim_exit_2_naming_the_object() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, store) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("store"),
    );
    ok(&run(
        &a,
        &store,
        &["apply", "--guild", GUILD],
        Some(&events(3, 50)),
    ));
    ok(&run(&a, &store, &["ship"], None));
    // The first batch of a's writer log.
    let writer = std::fs::read_to_string(a.join("remote/WRITER")).unwrap();
    let log_dir = store.join("writers").join(writer.trim());
    let objects_before = std::fs::read_dir(&log_dir).unwrap().count();
    let key = format!("writers/{}/{:020}", writer.trim(), 1);
    let path = store.join(&key);
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() - 3;
    bytes[at] ^= 0x40;
    std::fs::write(&path, bytes).unwrap();
    let out = run(&b, &store, &["claim", "--guild", GUILD], None);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&key), "{err}");
    assert!(
        !b.join("guilds").join(GUILD).exists(),
        "nothing local was written"
    );
    // Nor anything remote: the owner was not fenced by a claim that could not complete.
    assert!(!store
        .join(format!("guilds/{GUILD}/claim/{:020}", 2))
        .exists());
    let objects = std::fs::read_dir(&log_dir).unwrap().count();
    assert_eq!(objects, objects_before, "no fence was written");
}

#[test]
fn two_claims_at_once_leave_exactly_one_owner_able_to_append() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let a = tmp.path().join("a");
    ok(&run(
        &a,
        &store,
        &["apply", "--guild", GUILD],
        Some(&events(5, 30)),
    ));
    ok(&run(&a, &store, &["ship"], None));
    let claim_as = |name: &str| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_reprise"));
        cmd.args(["--dir", tmp.path().join(name).to_str().unwrap()])
            .args(["--remote", &format!("file://{}", store.display())])
            .args(["claim", "--guild", GUILD, "--owner", name]);
        cmd
    };
    let (c, d) = support::at_once(claim_as("c"), claim_as("d"));
    for out in [&c, &d] {
        assert!(
            matches!(out.status.code(), Some(0 | 3)),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let more = events(6, 1);
    let mut able = Vec::new();
    for name in ["a", "c", "d"] {
        let out = run(
            &tmp.path().join(name),
            &store,
            &["apply", "--guild", GUILD],
            Some(&more),
        );
        match out.status.code() {
            Some(0) => able.push(name),
            Some(3) => {}
            other => panic!(
                "{name}: {other:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    }
    assert_eq!(able.len(), 1, "owners able to append: {able:?}");
    assert_ne!(able[0], "a");
}

#[test]
fn an_unreachable_store_stops_only_remote_acknowledgements() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    // A directory that cannot be created stands for a store that cannot be reached.
    let store = Path::new("/proc/reprise-unreachable-store");
    let input = events(9, 5);
    let out = run(
        &a,
        store,
        &["apply", "--guild", GUILD, "--durability", "always"],
        Some(&input),
    );
    assert_eq!(seqs(&ok(&out)), (1..=5).collect::<Vec<_>>());
    assert!(String::from_utf8_lossy(&out.stderr).contains("appending locally only"));
    let out = run(
        &a,
        store,
        &["apply", "--guild", GUILD, "--durability", "remote"],
        Some(&input),
    );
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
    // Shipping catches up once a store is there.
    let good = tmp.path().join("store");
    let shipped: Value = serde_json::from_str(&ok(&run(&a, &good, &["ship"], None))).unwrap();
    assert_eq!(shipped["objects"], 1);
}

#[test]
fn claim_a_discord_shard() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, store) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("store"),
    );
    // (guild >> 22) % 2: 4 << 22 and 6 << 22 are shard 0, 5 << 22 is shard 1.
    let guilds: Vec<String> = [4u64, 5, 6].iter().map(|k| (k << 22).to_string()).collect();
    for g in &guilds {
        ok(&run(
            &a,
            &store,
            &["apply", "--guild", g],
            Some(&events(1, 10)),
        ));
    }
    ok(&run(&a, &store, &["ship"], None));
    let out = ok(&run(
        &b,
        &store,
        &["claim", "--shard", "0", "--shards", "2", "--pace-ms", "0"],
        None,
    ));
    let claimed: Vec<(String, u64, u64)> = out
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["guild"].to_string(),
                v["epoch"].as_u64().unwrap(),
                v["seq"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        claimed,
        vec![(guilds[0].clone(), 2, 10), (guilds[2].clone(), 2, 10)]
    );
    // The shard-1 guild still belongs to a; the others do not.
    ok(&run(
        &a,
        &store,
        &["apply", "--guild", &guilds[1]],
        Some(&events(2, 1)),
    ));
    let out = run(
        &a,
        &store,
        &["apply", "--guild", &guilds[0]],
        Some(&events(2, 1)),
    );
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn an_encrypted_journal_moves_with_its_key_and_never_without() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, store) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("store"),
    );
    let key = tmp.path().join("key");
    std::fs::write(&key, [7u8; 32]).unwrap();
    let key = key.to_str().unwrap();
    let input = events(13, 80);
    let out = ok(&run(
        &a,
        &store,
        &[
            "--key-file",
            key,
            "apply",
            "--guild",
            GUILD,
            "--durability",
            "remote",
        ],
        Some(&input),
    ));
    assert_eq!(seqs(&out).len(), 80);
    ok(&run(&a, &store, &["--key-file", key, "snapshot"], None));
    ok(&run(&a, &store, &["--key-file", key, "ship"], None));
    // No title of the workload is in the store in plaintext.
    let first_title = input
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find_map(|v| v["tracks"][0]["title"].as_str().map(str::to_string))
        .expect("the workload enqueues tracks");
    for entry in walk(&store) {
        let bytes = std::fs::read(&entry).unwrap();
        assert!(
            !bytes
                .windows(first_title.len())
                .any(|w| w == first_title.as_bytes()),
            "{} holds a title in plaintext",
            entry.display()
        );
    }
    // Without the key: refused before anything is written.
    let out = run(&b, &store, &["claim", "--guild", GUILD], None);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!b.join("guilds").join(GUILD).exists());
    let c = tmp.path().join("c");
    let claimed: Value = serde_json::from_str(&ok(&run(
        &c,
        &store,
        &["--key-file", key, "claim", "--guild", GUILD],
        None,
    )))
    .unwrap();
    assert_eq!(claimed["seq"], 80);
    let state = |dir: &Path| {
        ok(&run(
            dir,
            &store,
            &["--key-file", key, "state", "--guild", GUILD],
            None,
        ))
    };
    assert_eq!(state(&a), state(&c));
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// `reprise` on `dir` without any remote.
fn run_local(dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_reprise"));
    cmd.arg("--dir")
        .arg(dir)
        .args(args)
        .env_remove("REPRISE_REMOTE");
    support::output(cmd, stdin)
}

#[test]
fn the_fenced_old_owner_claims_the_guild_back_and_keeps_its_own_copy_aside() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, store) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("store"),
    );
    let input = events(21, 150);
    let lines: Vec<&str> = input.lines().collect();
    let part = |r: std::ops::Range<usize>| lines[r].join("\n") + "\n";
    let acked = ok(&run(
        &a,
        &store,
        &["apply", "--guild", GUILD, "--durability", "remote"],
        Some(&part(0..100)),
    ));
    assert_eq!(seqs(&acked).last(), Some(&100));
    // Twenty more acknowledged by A alone (no remote): the store never sees them.
    let local = ok(&run_local(
        &a,
        &["apply", "--guild", GUILD],
        Some(&part(100..120)),
    ));
    assert_eq!(seqs(&local).last(), Some(&120));
    let a_before = state(&a, &store);

    let claimed = claim(&b, &store, "b");
    assert_eq!(
        (claimed["epoch"].as_u64(), claimed["seq"].as_u64()),
        (Some(2), Some(100))
    );
    let acked = ok(&run(
        &b,
        &store,
        &["apply", "--guild", GUILD, "--durability", "remote"],
        Some(&events_after(&lines[..100], 22, 30)),
    ));
    assert_eq!(seqs(&acked), (101..=130).collect::<Vec<u64>>());
    let out = run(&a, &store, &["apply", "--guild", GUILD], Some(&part(0..1)));
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A takes the guild back: B's history replaces A's copy, which is kept, not deleted.
    let out = run(
        &a,
        &store,
        &["claim", "--guild", GUILD, "--owner", "a"],
        None,
    );
    let back: Value = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(
        (back["epoch"].as_u64(), back["seq"].as_u64()),
        (Some(3), Some(130))
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("events up to 120"), "{stderr}");
    assert_eq!(state(&a, &store), state(&b, &store));
    assert_ne!(state(&a, &store), a_before);
    ok(&run(&a, &store, &["verify"], None));
    let kept: Vec<_> = std::fs::read_dir(a.join("remote/superseded"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(
        std::fs::read_dir(&kept[0]).unwrap().count() > 0,
        "the old copy's files are kept"
    );
    // The copy set aside still recovers to A's own 120 events: a journal of its own.
    let copy = tmp.path().join("copy");
    std::fs::create_dir_all(copy.join("guilds")).unwrap();
    copy_files(&kept[0], &copy.join("guilds").join(GUILD));
    assert_eq!(state(&copy, &store), a_before);

    // A continues the sequence; B is fenced now.
    let acked = ok(&run(
        &a,
        &store,
        &["apply", "--guild", GUILD, "--durability", "remote"],
        Some(&part(0..1)),
    ));
    assert_eq!(seqs(&acked), vec![131]);
    let out = run(&b, &store, &["apply", "--guild", GUILD], Some(&part(0..1)));
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Every claim removed the notices it left for the writers it fenced.
    let notices: Vec<_> = walkdir_files(&store.join("notices"));
    assert!(notices.is_empty(), "{notices:?}");
    // Claiming again changes nothing.
    let again = claim(&a, &store, "a");
    assert_eq!(
        (again["epoch"].as_u64(), again["seq"].as_u64()),
        (Some(3), Some(131))
    );

    // `cleanup` removes the copy once it is older than --superseded-max-age (a dry run
    // first: it says so and removes nothing); the journal is untouched.
    let before_cleanup = state(&a, &store);
    let dry: Value = serde_json::from_str(&ok(&run_local(
        &a,
        &["cleanup", "--superseded-max-age", "0", "--dry-run"],
        None,
    )))
    .unwrap();
    assert_eq!(dry["superseded_removed"], 1, "{dry}");
    assert_eq!(dry["superseded"][0]["epoch"], 1, "{dry}");
    assert!(kept[0].exists());
    let kept_by_default: Value =
        serde_json::from_str(&ok(&run_local(&a, &["cleanup"], None))).unwrap();
    assert_eq!(
        kept_by_default["superseded_removed"], 0,
        "kept 7 days by default"
    );
    let removed: Value = serde_json::from_str(&ok(&run_local(
        &a,
        &["cleanup", "--superseded-max-age", "0"],
        None,
    )))
    .unwrap();
    assert_eq!(removed["superseded_removed"], 1, "{removed}");
    assert!(!kept[0].exists());
    assert_eq!(state(&a, &store), before_cleanup);
    ok(&run(&a, &store, &["verify"], None));
}

/// Copies the files of `from` into `to` (created).
fn copy_files(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn claiming_a_guild_never_shipped_keeps_its_local_history_as_epoch_1() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, store) = (tmp.path().join("a"), tmp.path().join("store"));
    std::fs::create_dir_all(&store).unwrap();
    let acked = ok(&run_local(
        &a,
        &["apply", "--guild", GUILD],
        Some(&events(22, 40)),
    ));
    assert_eq!(seqs(&acked).last(), Some(&40));
    let before = state(&a, &store);
    let claimed = claim(&a, &store, "a");
    assert_eq!(
        (claimed["epoch"].as_u64(), claimed["seq"].as_u64()),
        (Some(1), Some(40))
    );
    assert_eq!(state(&a, &store), before);
    // Shipped, it can be claimed elsewhere.
    ok(&run(&a, &store, &["ship"], None));
    let b = tmp.path().join("b");
    let moved = claim(&b, &store, "b");
    assert_eq!(
        (moved["epoch"].as_u64(), moved["seq"].as_u64()),
        (Some(2), Some(40))
    );
    assert_eq!(state(&b, &store), before);
}

#[test]
fn a_missing_object_in_the_middle_of_the_history_makes_claim_exit_2_naming_the_next() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, store) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("store"),
    );
    let lines: Vec<String> = (0..12)
        .map(|v| format!("{{\"type\": \"volume_set\", \"volume\": {v}}}"))
        .collect();
    // Four runs: at least one object of A's writer log each.
    for part in lines.chunks(3) {
        let acked = ok(&run(
            &a,
            &store,
            &["apply", "--guild", GUILD, "--durability", "remote"],
            Some(&(part.join("\n") + "\n")),
        ));
        assert_eq!(acked.lines().count(), 3);
    }
    let writers: Vec<_> = std::fs::read_dir(store.join("writers"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(writers.len(), 1);
    let mut objects: Vec<_> = std::fs::read_dir(&writers[0])
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    objects.sort();
    assert!(objects.len() >= 4, "{objects:?}");
    std::fs::remove_file(&objects[1]).unwrap();
    let out = run(&b, &store, &["claim", "--guild", GUILD], None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let named = objects[2..]
        .iter()
        .any(|o| stderr.contains(&o.strip_prefix(&store).unwrap().display().to_string()));
    assert!(
        named && stderr.contains("gap in the guild's remote history: events"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
    // Nothing written locally, nothing claimed remotely.
    assert!(!b.join("guilds").exists());
    assert!(!store
        .join(format!("guilds/{GUILD}/claim/{:020}", 2))
        .exists());
}

/// Every file under `dir`, recursively (none when it does not exist).
fn walkdir_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flat_map(|e| {
            let path = e.unwrap().path();
            if path.is_dir() {
                walkdir_files(&path)
            } else {
                vec![path]
            }
        })
        .collect()
}

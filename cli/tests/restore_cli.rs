//! Black-box tests of `reprise restore`, `state --at-time`, `checkpoint`, `checkpoints` and
//! `rollback`, and of the `state_restored` event through `apply` and `dump`.

mod support;

use std::path::Path;
use std::process::Output;

use reprise::clock::now_unix_ms;
use serde_json::{json, Value};
use support::{ok, reprise, stdout_json, stdout_lines};

fn code(out: &Output) -> Option<i32> {
    out.status.code()
}

/// `n` workload events of `seed` continuing `state`, as JSON lines.
fn events_after(state: &mut reprise::State, seed: u64, n: usize) -> String {
    let mut w = reprise::session::Workload::new(seed);
    let mut out = String::new();
    for _ in 0..n {
        let e = w.next_event(state);
        reprise::session::apply(state, &e);
        out.push_str(&e.to_json());
        out.push('\n');
    }
    out
}

fn state(dir: &Path, guild: &str, extra: &[&str]) -> Value {
    let mut args = vec!["state", "--guild", guild];
    args.extend_from_slice(extra);
    stdout_json(&reprise(dir, &args, None))
}

/// The state JSON without `guild` and `seq` (the `state` of a `state_restored`).
fn bare(mut v: Value) -> Value {
    let m = v.as_object_mut().unwrap();
    m.remove("guild");
    m.remove("seq");
    v
}

/// What a restore of `past` sets: the position made exact, entry ids never reused.
fn restored_form(past: &Value, current_next_entry_id: &Value) -> Value {
    let mut v = bare(past.clone());
    v["player"]["position_anchor_unix_ms"] = Value::Null;
    let next = past["next_entry_id"]
        .as_u64()
        .unwrap()
        .max(current_next_entry_id.as_u64().unwrap());
    v["next_entry_id"] = json!(next);
    v
}

/// Unix milliseconds as RFC 3339 with a `+01:30` offset (an independent formatter: the CLI's
/// parser must agree with it).
fn rfc3339_plus_0130(ms: u64) -> String {
    let local = ms as i64 + 90 * 60 * 1000;
    let secs = local.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}+01:30",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        local.rem_euclid(1000)
    )
}

#[test]
fn restore_to_a_seq_and_to_a_time_appends_one_event() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut model = reprise::State::default();
    ok(&reprise(
        d,
        &["apply", "--guild", "7"],
        Some(&events_after(&mut model, 1, 40)),
    ));
    let first = state(d, "7", &[]);
    assert_eq!(first["seq"], json!(40));
    // Every event of the second run is appended strictly after `between`.
    let between = now_unix_ms();
    while now_unix_ms() <= between {
        std::hint::spin_loop();
    }
    ok(&reprise(
        d,
        &["apply", "--guild", "7"],
        Some(&events_after(&mut model, 2, 30)),
    ));
    let second = state(d, "7", &[]);
    // state --at-time agrees with --at, in any offset.
    let at_between = state(d, "7", &["--at-time", &rfc3339_plus_0130(between)]);
    assert_eq!(at_between, first);
    assert_eq!(
        state(d, "7", &["--at-time", "2000-01-01T00:00:00Z"])["seq"],
        json!(0)
    );
    assert_eq!(
        state(d, "7", &["--at-time", "2999-01-01T00:00:00Z"]),
        second
    );

    // restore --to 40: one event, the old state is current again.
    let r = stdout_json(&reprise(
        d,
        &["restore", "--guild", "7", "--to", "40"],
        None,
    ));
    assert_eq!(
        r,
        json!({"guild": 7, "seq": 71, "restored_from_seq": 40, "previous_seq": 70})
    );
    let now = state(d, "7", &[]);
    assert_eq!(now["seq"], json!(71));
    assert_eq!(bare(now), restored_form(&first, &second["next_entry_id"]));
    // History is not rewritten.
    assert_eq!(state(d, "7", &["--at", "70"]), second);
    // restore --to-time: back to the state after the second run.
    let later = rfc3339_plus_0130(now_unix_ms() + 60_000);
    let r = stdout_json(&reprise(
        d,
        &[
            "restore",
            "--guild",
            "7",
            "--to-time",
            &later,
            "--label",
            "redo",
        ],
        None,
    ));
    assert_eq!(r["restored_from_seq"], json!(71));
    // dump shows the restores as events; a dumped one can be fed back to apply.
    // (Each restore snapshots its restore point, and retention keeps two snapshots: the log
    // now starts at the first restore.)
    let dumped = stdout_lines(&reprise(d, &["dump", "--guild", "7"], None));
    let seqs: Vec<u64> = dumped.iter().map(|l| l["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs.last(), Some(&72));
    assert!(seqs.contains(&71), "{seqs:?}");
    let restore_line = dumped[dumped.len() - 2].clone();
    assert_eq!(restore_line["type"], json!("state_restored"));
    assert_eq!(restore_line["from_seq"], json!(40));
    assert_eq!(
        restore_line["state"],
        restored_form(&first, &second["next_entry_id"])
    );
    assert_eq!(dumped[dumped.len() - 1]["label"], json!("redo"));
    let mut event = restore_line;
    event.as_object_mut().unwrap().remove("seq");
    let fed = stdout_lines(&reprise(
        d,
        &["apply", "--guild", "8"],
        Some(&format!("{event}\n")),
    ));
    assert_eq!(fed, [json!({"seq": 1})]);
    assert_eq!(bare(state(d, "8", &[])), event["state"]);
    ok(&reprise(d, &["verify"], None));
}

#[test]
fn restore_and_state_errors_exit_with_contract_codes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut model = reprise::State::default();
    ok(&reprise(
        d,
        &["apply", "--guild", "7"],
        Some(&events_after(&mut model, 3, 10)),
    ));
    // Usage errors (1): past the end, a bad time, both or neither target.
    for args in [
        vec!["restore", "--guild", "7", "--to", "11"],
        vec!["restore", "--guild", "7", "--to-time", "yesterday"],
        vec![
            "restore",
            "--guild",
            "7",
            "--to",
            "3",
            "--to-time",
            "2020-01-01T00:00:00Z",
        ],
        vec!["restore", "--guild", "7"],
        vec!["state", "--guild", "7", "--at-time", "2020-01-01"],
        vec![
            "state",
            "--guild",
            "7",
            "--at",
            "1",
            "--at-time",
            "2020-01-01T00:00:00Z",
        ],
    ] {
        let out = reprise(d, &args, None);
        assert_eq!(
            code(&out),
            Some(1),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Invalid data (2), nothing written: a label too long, an invalid embedded state.
    let long = "x".repeat(200);
    let out = reprise(
        d,
        &["restore", "--guild", "7", "--to", "3", "--label", &long],
        None,
    );
    assert_eq!(
        code(&out),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut bad = bare(state(d, "7", &[]));
    bad["player"]["volume"] = json!(1001);
    let line = json!({"type": "state_restored", "state": bad}).to_string();
    let out = reprise(d, &["apply", "--guild", "7"], Some(&format!("{line}\n")));
    assert_eq!(code(&out), Some(2));
    let mut extra = bare(state(d, "7", &[]));
    extra["guild"] = json!(7);
    let line = json!({"type": "state_restored", "state": extra}).to_string();
    let out = reprise(d, &["apply", "--guild", "7"], Some(&format!("{line}\n")));
    assert_eq!(code(&out), Some(2), "unknown field inside the state");
    assert_eq!(state(d, "7", &[])["seq"], json!(10), "nothing was written");
}

#[test]
fn checkpoint_and_rollback_a_fleet() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let guilds = ["1", "22", "333"];
    let mut models: Vec<reprise::State> = vec![reprise::State::default(); 3];
    for (i, g) in guilds.iter().enumerate() {
        ok(&reprise(
            d,
            &["apply", "--guild", g],
            Some(&events_after(&mut models[i], 10 + i as u64, 25)),
        ));
    }
    let before: Vec<Value> = guilds.iter().map(|g| state(d, g, &[])).collect();
    let taken = stdout_json(&reprise(d, &["checkpoint", "before-v2"], None));
    assert_eq!(taken["label"], json!("before-v2"));
    assert_eq!(
        taken["guilds"],
        json!([{"guild": 1, "seq": 25}, {"guild": 22, "seq": 25}, {"guild": 333, "seq": 25}])
    );
    assert!(taken["created"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        code(&reprise(d, &["checkpoint", "before-v2"], None)),
        Some(1)
    );
    assert_eq!(code(&reprise(d, &["checkpoint", "../x"], None)), Some(1));
    // The deployment: every guild moves on, then compaction drops the old log.
    for (i, g) in guilds.iter().enumerate() {
        ok(&reprise(
            d,
            &["apply", "--guild", g],
            Some(&events_after(&mut models[i], 20 + i as u64, 15)),
        ));
    }
    ok(&reprise(d, &["snapshot"], None));
    ok(&reprise(d, &["cleanup", "--keep", "1"], None));
    let listed = stdout_json(&reprise(d, &["checkpoints"], None));
    assert_eq!(listed["checkpoints"][0]["guilds"], taken["guilds"]);
    let after: Vec<Value> = guilds.iter().map(|g| state(d, g, &[])).collect();

    // Roll back one guild, then the rest in batches of one without pacing.
    let lines = stdout_lines(&reprise(
        d,
        &["rollback", "before-v2", "--guild", "22", "--pace-ms", "0"],
        None,
    ));
    assert_eq!(
        lines,
        [
            json!({"guild": 22, "status": "restored", "seq": 41, "restored_from_seq": 25, "batch": 0})
        ]
    );
    assert_eq!(state(d, "1", &[]), after[0], "not selected");
    let lines = stdout_lines(&reprise(
        d,
        &["rollback", "before-v2", "--batch", "1", "--pace-ms", "0"],
        None,
    ));
    let statuses: Vec<(&Value, &Value, &Value)> = lines
        .iter()
        .map(|l| (&l["guild"], &l["status"], &l["batch"]))
        .collect();
    assert_eq!(
        statuses,
        [
            (&json!(1), &json!("restored"), &json!(0)),
            (&json!(22), &json!("unchanged"), &json!(1)),
            (&json!(333), &json!("restored"), &json!(2)),
        ]
    );
    for (i, g) in guilds.iter().enumerate() {
        let now = state(d, g, &[]);
        assert_eq!(now["seq"], json!(41));
        assert_eq!(
            bare(now),
            restored_form(&before[i], &after[i]["next_entry_id"])
        );
    }
    // Usage errors: unknown checkpoint, a guild not in it, batch 0.
    for args in [
        vec!["rollback", "nope"],
        vec!["rollback", "before-v2", "--guild", "4"],
        vec!["rollback", "before-v2", "--batch", "0"],
    ] {
        assert_eq!(code(&reprise(d, &args, None)), Some(1), "{args:?}");
    }
    // A damaged checkpoint file: exit 2, nothing restored.
    let file = d.join("checkpoints/before-v2/333.snap");
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[70] ^= 0x40;
    std::fs::write(&file, bytes).unwrap();
    let out = reprise(d, &["rollback", "before-v2", "--pace-ms", "0"], None);
    assert_eq!(code(&out), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("333.snap"));
    assert!(out.stdout.is_empty());
    // Removal.
    assert_eq!(
        stdout_json(&reprise(d, &["checkpoint", "before-v2", "--remove"], None)),
        json!({"label": "before-v2", "removed": true})
    );
    assert_eq!(
        stdout_json(&reprise(d, &["checkpoints"], None)),
        json!({"checkpoints": []})
    );
    ok(&reprise(d, &["verify"], None));
}

#[test]
fn an_encrypted_checkpoint_needs_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key = d.join("k");
    std::fs::write(&key, [9u8; 32]).unwrap();
    let data = d.join("data");
    let k = key.to_str().unwrap();
    let mut model = reprise::State::default();
    ok(&reprise(
        &data,
        &["--key-file", k, "apply", "--guild", "5"],
        Some(&events_after(&mut model, 4, 20)),
    ));
    ok(&reprise(
        &data,
        &["--key-file", k, "checkpoint", "sealed"],
        None,
    ));
    assert_eq!(code(&reprise(&data, &["checkpoints"], None)), Some(2));
    assert_eq!(
        code(&reprise(
            &data,
            &["rollback", "sealed", "--pace-ms", "0"],
            None
        )),
        Some(2)
    );
    let rollback = ["--key-file", k, "rollback", "sealed", "--pace-ms", "0"];
    let lines = stdout_lines(&reprise(&data, &rollback, None));
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["restored_from_seq"], json!(20));
    let again = stdout_lines(&reprise(&data, &rollback, None));
    assert_eq!(again[0]["status"], json!("unchanged"));
}

#[test]
fn completions_and_help_examples() {
    let dir = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = ok(&reprise(dir.path(), &["completions", shell], None))
            .stdout
            .clone();
        let script = String::from_utf8(out).unwrap();
        for command in ["restore", "checkpoint", "rollback", "lavalink", "at-time"] {
            assert!(script.contains(command), "{shell}: {command}");
        }
    }
    assert_eq!(
        code(&reprise(dir.path(), &["completions", "tcsh"], None)),
        Some(1)
    );
    for command in [
        "apply",
        "state",
        "restore",
        "checkpoint",
        "rollback",
        "import",
        "lavalink",
    ] {
        let out = ok(&reprise(dir.path(), &[command, "--help"], None))
            .stdout
            .clone();
        let help = String::from_utf8(out).unwrap();
        assert!(
            help.contains("Examples:\n  reprise ") || help.contains("| reprise "),
            "{command}: {help}"
        );
    }
    assert!(
        !dir.path().join("guilds").exists(),
        "help and completions write nothing"
    );
}

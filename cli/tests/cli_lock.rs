//! Black-box tests of the directory lock across processes: a live writer refuses every other
//! writer with exit 3 naming its pid, and readers read beside it (they take no lock); a writer killed with SIGKILL, or a `LOCK` file naming a
//! dead process, blocks nobody. (`tests/cli.rs` covers a second `apply` of the same guild.)

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Output, Stdio};

use serde_json::Value;

fn reprise(dir: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_reprise"))
        .arg("--dir")
        .arg(dir)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    // A refused process exits without reading its input: a broken pipe is expected then.
    let _ = input.write_all(stdin.as_bytes());
    drop(input);
    child.wait_with_output().unwrap()
}

fn volume(v: u32) -> String {
    format!("{{\"type\":\"volume_set\",\"volume\":{v}}}\n")
}

/// A running `reprise apply` whose stdin stays open.
struct Writer {
    child: Child,
    stdin: Option<ChildStdin>,
    acks: BufReader<ChildStdout>,
}

impl Writer {
    fn start(dir: &Path, guild: &str) -> Writer {
        let mut child = Command::new(env!("CARGO_BIN_EXE_reprise"))
            .arg("--dir")
            .arg(dir)
            .args(["apply", "--guild", guild])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let acks = BufReader::new(child.stdout.take().unwrap());
        Writer { child, stdin, acks }
    }

    /// Sends `input` and waits for the acknowledgement of each of `seqs`; once the first is
    /// printed, the writer holds the lock.
    fn send(&mut self, input: &str, seqs: std::ops::RangeInclusive<u64>) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(input.as_bytes()).unwrap();
        stdin.flush().unwrap();
        for seq in seqs {
            let mut line = String::new();
            self.acks.read_line(&mut line).unwrap();
            assert_eq!(line, format!("{{\"seq\": {seq}}}\n"));
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Closes stdin: the writer closes the journal and exits 0.
    fn finish(mut self) {
        drop(self.stdin.take());
        assert!(self.child.wait().unwrap().success());
    }
}

/// Whether a refusal message names `pid` as the holder.
fn names_pid(stderr: &[u8], pid: u32) -> bool {
    String::from_utf8_lossy(stderr).contains(&format!("(pid {pid})"))
}

fn state_seq_and_volume(dir: &Path, guild: &str) -> (u64, u64) {
    let out = reprise(dir, &["state", "--guild", guild], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    (
        v["seq"].as_u64().unwrap(),
        v["player"]["volume"].as_u64().unwrap(),
    )
}

/// A pid that no live process has: a child that has exited and been reaped.
fn dead_pid() -> u32 {
    loop {
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        if !Path::new(&format!("/proc/{pid}")).exists() {
            return pid;
        }
    }
}

/// While `apply` runs on one guild, every other writer of the directory — `apply` on another
/// guild, `snapshot` — exits 3 naming the writer's pid, and the refused `apply` wrote nothing;
/// the readers read beside it and leave the lock to it.
#[test]
fn a_live_writer_refuses_every_other_writer_with_exit_3_and_its_pid() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = Writer::start(dir.path(), "1");
    writer.send(&volume(10), 1..=1);
    let pid = writer.pid();
    let lock = std::fs::read_to_string(dir.path().join("LOCK")).unwrap();
    assert_eq!(lock.trim(), pid.to_string(), "LOCK names the writer");
    for args in [&["apply", "--guild", "2"][..], &["snapshot"]] {
        let out = reprise(dir.path(), args, &volume(20));
        assert_eq!(out.status.code(), Some(3), "{args:?}");
        assert!(
            names_pid(&out.stderr, pid),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    for args in [
        &["state", "--guild", "1"][..],
        &["verify"],
        &["dump", "--guild", "1"],
    ] {
        let out = reprise(dir.path(), args, "");
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // `verify` prints findings only: none.
        assert_eq!(out.stdout.is_empty(), args[0] == "verify", "{args:?}");
    }
    assert_eq!(state_seq_and_volume(dir.path(), "1"), (1, 10));
    let lock = std::fs::read_to_string(dir.path().join("LOCK")).unwrap();
    assert_eq!(lock.trim(), pid.to_string(), "the readers left LOCK alone");
    writer.send(&volume(30), 2..=2);
    writer.finish();
    assert_eq!(state_seq_and_volume(dir.path(), "1"), (2, 30));
    assert_eq!(state_seq_and_volume(dir.path(), "2"), (0, 100));
}

/// A writer killed with SIGKILL leaves `LOCK` naming its pid but holds no lock: the next
/// `apply` succeeds at once, and every event the killed writer acknowledged is there.
#[test]
fn a_writer_killed_with_sigkill_leaves_no_lock() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = Writer::start(dir.path(), "1");
    let input: String = (1..=5).map(volume).collect();
    writer.send(&input, 1..=5);
    let pid = writer.pid();
    writer.child.kill().unwrap();
    writer.child.wait().unwrap();
    let lock = std::fs::read_to_string(dir.path().join("LOCK")).unwrap();
    assert_eq!(
        lock.trim(),
        pid.to_string(),
        "the stale LOCK names the dead writer"
    );

    let out = reprise(dir.path(), &["apply", "--guild", "1"], &volume(6));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "{\"seq\": 6}\n");
    assert_eq!(state_seq_and_volume(dir.path(), "1"), (6, 6));
    let verify = reprise(dir.path(), &["verify"], "");
    assert!(verify.status.success());
}

/// A `LOCK` file naming a dead process, with no lock held on it, blocks nobody: readers and a
/// writer open the directory; the writer then names itself in `LOCK`, and a third opener is
/// refused naming the writer, not the dead pid.
#[test]
fn a_lock_file_naming_a_dead_process_does_not_block() {
    let dir = tempfile::tempdir().unwrap();
    let out = reprise(dir.path(), &["apply", "--guild", "1"], &volume(10));
    assert!(out.status.success());
    let dead = dead_pid();
    std::fs::write(dir.path().join("LOCK"), format!("{dead}\n")).unwrap();

    assert_eq!(state_seq_and_volume(dir.path(), "1"), (1, 10));
    let mut writer = Writer::start(dir.path(), "1");
    writer.send(&volume(20), 2..=2);
    let pid = writer.pid();
    let lock = std::fs::read_to_string(dir.path().join("LOCK")).unwrap();
    assert_eq!(
        lock.trim(),
        pid.to_string(),
        "the writer replaced the dead pid"
    );
    let out = reprise(dir.path(), &["apply", "--guild", "1"], &volume(30));
    assert_eq!(out.status.code(), Some(3));
    assert!(names_pid(&out.stderr, pid));
    assert!(!names_pid(&out.stderr, dead));
    writer.finish();
    assert_eq!(state_seq_and_volume(dir.path(), "1"), (2, 20));
}

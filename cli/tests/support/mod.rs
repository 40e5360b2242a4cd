//! Helpers shared by the black-box CLI test binaries (`mod support;` in each). Not every binary
//! uses every helper.
#![allow(dead_code)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use reprise::session::{apply, State, Workload, HISTORY_MAX_DEFAULT};
use serde_json::Value;

/// Runs the `reprise` binary on the journal `dir` with `args`, feeding `stdin` if given.
pub fn reprise(dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_reprise"));
    cmd.arg("--dir").arg(dir).args(args);
    output(cmd, stdin)
}

/// Runs `cmd` to its end, feeding `stdin` if given (an empty input otherwise); its output.
pub fn output(mut cmd: Command, stdin: Option<&str>) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        // A command that fails before reading its input closes the pipe: not an error here.
        if let Err(e) = input.write_all(text.as_bytes()) {
            assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
        }
    }
    drop(input);
    child.wait_with_output().unwrap()
}

/// `out`, after asserting the command succeeded (its stderr in the message otherwise).
pub fn ok(out: &Output) -> &Output {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The successful command's stdout as one JSON value.
pub fn stdout_json(out: &Output) -> Value {
    serde_json::from_slice(&ok(out).stdout).unwrap()
}

/// The successful command's stdout as one JSON value per line.
pub fn stdout_lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&ok(out).stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The command's stderr as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs `cmd` (an `apply`: stdin and stdout piped here, stderr dropped), feeding it `input`
/// from another thread, reads its `{"seq": N}` lines until one reaches `kill_at`, then
/// SIGKILLs it, whatever it is doing. Returns the seqs read before the kill, in order, and
/// what it had printed that was not read yet.
pub fn kill_after_acks(mut cmd: Command, input: String, kill_at: u64) -> (Vec<u64>, String) {
    use std::io::{BufRead, BufReader, Read};
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        // The kill closes the pipe: input cut short is the point.
        let _ = stdin.write_all(input.as_bytes());
    });
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut acked = Vec::new();
    let mut line = String::new();
    while acked.last().is_none_or(|&seq| seq < kill_at) {
        line.clear();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "apply ended early"
        );
        let seq: Value = serde_json::from_str(&line).unwrap();
        acked.push(
            seq["seq"]
                .as_u64()
                .unwrap_or_else(|| panic!("not a seq line: {line}")),
        );
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let _ = feeder.join();
    let mut rest = String::new();
    reader.read_to_string(&mut rest).unwrap();
    (acked, rest)
}

/// Starts `a` and `b` at the same moment (stdin empty, output captured) and waits for both.
pub fn at_once(mut a: Command, mut b: Command) -> (Output, Output) {
    let start = |cmd: &mut Command| {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (start(&mut a), start(&mut b));
    (a.wait_with_output().unwrap(), b.wait_with_output().unwrap())
}

/// `n` events of the seeded workload and the state after each prefix (`states[k]` is the fold
/// of the first `k` events).
pub fn stream(seed: u64, n: usize) -> (Vec<reprise::Event>, Vec<State>) {
    let mut w = Workload::new(seed);
    let mut state = State::new(HISTORY_MAX_DEFAULT);
    let mut events = Vec::with_capacity(n);
    let mut states = vec![state.clone()];
    for _ in 0..n {
        let e = w.next_event(&state);
        apply(&mut state, &e);
        events.push(e);
        states.push(state.clone());
    }
    (events, states)
}

/// The events as `apply`'s input: one JSON object per line.
pub fn jsonl(events: &[reprise::Event]) -> String {
    events.iter().map(|e| e.to_json() + "\n").collect()
}

/// Copies the directory tree `from` to `to` (created).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

//! Black-box damage test of the `reprise` binary: every byte of every file of a small journal
//! directory is flipped in turn (in a fresh copy each time), and `verify`, `state` and `dump`
//! must either report the damage (exit 2, naming the file and the byte offset) or give a state
//! that a prefix of the guild's events produces. Never a panic, a signal or a hang.
//!
//! What is allowed, from CONTRACT §2-§3 and DESIGN.md's recovery table:
//!
//! - A flip in the *tail* of a guild (the record holding its last event, in the newest log that
//!   holds it: the active segment or the commit log of a killed writer) may be a torn tail:
//!   `verify` exits 0 with a `torn_tail` finding for that file, `state` and `dump` may give
//!   the state before that event (and end the dump there).
//! - Anywhere else, `verify` exits 2 with a damage finding naming the file, at an offset at or
//!   before the flip (or within the file's header). `state` and `dump` either exit 2 naming the
//!   file, or give the whole history (a damaged snapshot falls back to the older one, a damaged
//!   segment that a snapshot covers is not needed).
//! - A flip in one guild's files never changes what another guild recovers; a flip in `LOCK`
//!   (a pid, no journal data) changes nothing.
//! - Readers never modify the directory.
//!
//! The files (10, about 6 KB): guild 1 (CLI): one segment, two snapshots; guild
//! 613425648685547541 (CLI): a segment, then four events acknowledged by a writer killed with
//! SIGKILL, held only by its commit log; guild 3 (library, for several segments): a sealed and an
//! active segment, two snapshots, older files removed by retention; `LOCK` with the dead
//! writer's pid.
//!
//! Environment: `REPRISE_EXHAUSTIVE=1` flips every byte of every file with two patterns
//! (`0xff`, `0x01`); by default every 7th byte and every header byte are flipped with `0xff`.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex, RwLock};
use std::time::{Duration, Instant};

use reprise::session::{apply, State, Workload, HISTORY_MAX_DEFAULT};
use reprise::{Config, Durability, Event, GuildId, Journal};
use serde_json::Value;

/// Longest a command may run before it counts as a hang (normal runs take milliseconds).
const TIMEOUT: Duration = Duration::from_secs(20);

/// Longest event JSON the histories use.
const EVENT_JSON_MAX: usize = 600;

/// In-process journals of this binary are opened only while no child is being spawned: a
/// child briefly inherits the lock's descriptor between fork and exec.
static SPAWN: RwLock<()> = RwLock::new(());

/// What a finished command left.
struct Ran {
    code: Option<i32>,
    signal: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `reprise --dir DIR ARGS` with `stdin` as input; `Err` when it runs longer than
/// [`TIMEOUT`] (it is then killed).
fn reprise(dir: &Path, args: &[&str], stdin: &str) -> Result<Ran, String> {
    let mut child = {
        let _guard = SPAWN.read().unwrap();
        Command::new(env!("CARGO_BIN_EXE_reprise"))
            .arg("--dir")
            .arg(dir)
            .args(args)
            .stdin(if stdin.is_empty() {
                Stdio::null()
            } else {
                Stdio::piped()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let input = child.stdin.take();
    let text = stdin.to_owned();
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        if let Some(mut input) = input {
            let _ = input.write_all(text.as_bytes());
        }
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(TIMEOUT) {
        Ok(out) => {
            let out = out.unwrap();
            Ok(Ran {
                code: out.status.code(),
                signal: out.status.signal(),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            })
        }
        Err(_) => {
            // Not yet reaped (the waiting thread has not returned), so the pid is still ours.
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            let _ = rx.recv();
            Err(format!(
                "`reprise {}` did not finish within {TIMEOUT:?} (killed)",
                args.join(" ")
            ))
        }
    }
}

fn ok(dir: &Path, args: &[&str], stdin: &str) -> Ran {
    let ran = reprise(dir, args, stdin).unwrap();
    assert_eq!(
        ran.code,
        Some(0),
        "reprise {}: {}{}",
        args.join(" "),
        ran.stdout,
        ran.stderr
    );
    ran
}

/// One guild's history: its events as the CLI got them, and the state after every prefix.
struct History {
    id: u64,
    events: Vec<Value>,
    states: Vec<Value>,
}

impl History {
    /// `n` events of the workload bot, drawing again whenever an event's JSON is longer than
    /// [`EVENT_JSON_MAX`] (so that the image, and the number of flips, stays small).
    fn new(id: u64, seed: u64, n: usize) -> (History, Vec<Event>) {
        let mut w = Workload::new(seed);
        let mut state = State::new(HISTORY_MAX_DEFAULT);
        let mut events = Vec::new();
        let mut h = History {
            id,
            events: Vec::new(),
            states: vec![serde_json::to_value(&state).unwrap()],
        };
        while events.len() < n {
            let e = w.next_event(&state);
            if e.to_json().len() > EVENT_JSON_MAX {
                continue;
            }
            apply(&mut state, &e);
            h.events.push(serde_json::from_str(&e.to_json()).unwrap());
            h.states.push(serde_json::to_value(&state).unwrap());
            events.push(e);
        }
        (h, events)
    }

    fn last(&self) -> u64 {
        self.events.len() as u64
    }

    fn jsonl(&self, range: std::ops::Range<usize>) -> String {
        self.events[range]
            .iter()
            .map(|e| format!("{e}\n"))
            .collect()
    }

    fn arg(&self) -> String {
        self.id.to_string()
    }
}

/// What a file of the image is, with the records the test finds in it by the layouts of
/// DESIGN.md (parsed here independently of the library).
#[derive(Clone, Debug)]
enum Role {
    Lock,
    /// A guild segment: `(start, end, seq)` of every frame.
    Segment {
        guild: u64,
        frames: Vec<(usize, usize, u64)>,
    },
    Snapshot {
        guild: u64,
        seq: u64,
    },
    /// A commit log: `(start, end, guild, seq)` of every record.
    Commit {
        records: Vec<(usize, usize, u64, u64)>,
    },
}

#[derive(Clone, Debug)]
struct FileInfo {
    rel: PathBuf,
    bytes: Vec<u8>,
    role: Role,
}

impl FileInfo {
    fn header_len(&self) -> usize {
        match self.role {
            Role::Lock => 0,
            Role::Snapshot { .. } => 64,
            Role::Segment { .. } | Role::Commit { .. } => 48,
        }
    }

    fn guild(&self) -> Option<u64> {
        match self.role {
            Role::Segment { guild, .. } | Role::Snapshot { guild, .. } => Some(guild),
            _ => None,
        }
    }
}

fn u32_at(b: &[u8], at: usize) -> usize {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as usize
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

fn classify(root: &Path, path: &Path) -> FileInfo {
    let rel = path.strip_prefix(root).unwrap().to_path_buf();
    let bytes = fs::read(path).unwrap();
    let name = rel.file_name().unwrap().to_str().unwrap();
    let guild = || {
        rel.parent()
            .and_then(|p| p.file_name())
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap()
    };
    let role = if name == "LOCK" {
        Role::Lock
    } else if name.ends_with(".wal") {
        let mut frames = Vec::new();
        let mut at = 48;
        while at < bytes.len() {
            let end = at + 24 + u32_at(&bytes, at + 4);
            frames.push((at, end, u64_at(&bytes, at + 8)));
            at = end;
        }
        assert_eq!(
            at,
            bytes.len(),
            "{name}: frames do not end at the file's end"
        );
        Role::Segment {
            guild: guild(),
            frames,
        }
    } else if name.ends_with(".snap") {
        Role::Snapshot {
            guild: guild(),
            seq: u64_at(&bytes, 24),
        }
    } else if name.ends_with(".clog") {
        // The log is preallocated: its records end at the first zero length field, and
        // zeros follow to the end of the file.
        let mut records = Vec::new();
        let mut at = 48;
        while at + 8 <= bytes.len() && u32_at(&bytes, at + 4) != 0 {
            let end = at + 24 + u32_at(&bytes, at + 4);
            records.push((at, end, u64_at(&bytes, at + 8), u64_at(&bytes, at + 24 + 8)));
            at = end;
        }
        assert!(
            bytes
                .get(at..)
                .is_some_and(|rest| rest.iter().all(|b| *b == 0)),
            "{name}: records are not followed by zeros only"
        );
        Role::Commit { records }
    } else {
        panic!("unexpected file {}", rel.display())
    };
    FileInfo { rel, bytes, role }
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// The journal the flips damage, and what every guild must recover.
struct Image {
    _dir: tempfile::TempDir,
    root: PathBuf,
    files: Vec<FileInfo>,
    guilds: Vec<History>,
    /// Per guild: the first seq `dump` prints on the pristine image.
    dump_first: BTreeMap<u64, u64>,
}

impl Image {
    /// The largest seq of `guild` that a file other than `file` holds (a frame, a commit
    /// record or a snapshot).
    fn held_elsewhere(&self, guild: u64, file: &FileInfo) -> u64 {
        self.files
            .iter()
            .filter(|f| f.rel != file.rel)
            .map(|f| match &f.role {
                Role::Segment { guild: g, frames } if *g == guild => {
                    frames.last().map_or(0, |fr| fr.2)
                }
                Role::Snapshot { guild: g, seq } if *g == guild => *seq,
                Role::Commit { records } => records
                    .iter()
                    .filter(|r| r.2 == guild)
                    .map(|r| r.3)
                    .max()
                    .unwrap_or(0),
                _ => 0,
            })
            .max()
            .unwrap_or(0)
    }

    /// The guild whose tail (the record holding its last event, with no later event of the
    /// guild in any other file) contains byte `at` of `file`, and that record's start.
    fn tail_of(&self, file: &FileInfo, at: usize) -> Option<(u64, usize)> {
        let hit = match &file.role {
            Role::Segment { guild, frames } => frames
                .iter()
                .find(|f| f.0 <= at && at < f.1)
                .map(|f| (*guild, f.0, f.2)),
            Role::Commit { records } => records
                .iter()
                .find(|r| r.0 <= at && at < r.1)
                .map(|r| (r.2, r.0, r.3)),
            _ => None,
        };
        let (guild, start, seq) = hit?;
        let h = self.guilds.iter().find(|h| h.id == guild)?;
        (seq == h.last() && self.held_elsewhere(guild, file) < seq).then_some((guild, start))
    }
}

/// Runs `reprise apply --guild G` with `input`, waits for the acknowledgements of `seqs`, and
/// kills the process with SIGKILL (it never closes the journal: what it appended is in its
/// commit log, not yet in the guild's segment).
fn apply_then_sigkill(root: &Path, guild: &str, input: &str, seqs: std::ops::RangeInclusive<u64>) {
    let mut child = {
        let _guard = SPAWN.read().unwrap();
        Command::new(env!("CARGO_BIN_EXE_reprise"))
            .arg("--dir")
            .arg(root)
            .args(["apply", "--guild", guild])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).unwrap();
    stdin.flush().unwrap();
    let mut acks = BufReader::new(child.stdout.take().unwrap());
    for seq in seqs {
        let mut line = String::new();
        acks.read_line(&mut line).unwrap();
        assert_eq!(line, format!("{{\"seq\": {seq}}}\n"));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Builds the image: three guilds with segments (sealed and active), snapshots, compaction,
/// and the commit log of a writer killed with SIGKILL.
///
/// The CLI has no segment-size setting, and a segment that `reprise snapshot` sealed is
/// appended to again by the next process (it is the newest one), so CLI runs alone give one
/// segment per guild. Guild 3 is therefore written through the library (snapshots seal its
/// segments within one process; retention then drops the oldest); guilds 1 and 2 through the
/// CLI.
fn build_image() -> Image {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("journal");
    let (g1, _) = History::new(1, 101, 24);
    let (g2, _) = History::new(613_425_648_685_547_541, 202, 10);
    let (g3, g3_events) = History::new(3, 303, 40);
    {
        let _no_spawns = SPAWN.write().unwrap();
        let config = Config::default()
            .without_auto_snapshots()
            .with_snapshots_retained(2);
        let mut j = Journal::open(&root, config).unwrap();
        for (i, e) in g3_events.iter().enumerate() {
            j.append(GuildId(3), e, Durability::None).unwrap();
            if [10, 20, 30].contains(&(i + 1)) {
                j.snapshot_now(GuildId(3)).unwrap();
            }
        }
        j.close().unwrap();
    }
    // Guild 1: one segment and two snapshots, through the CLI.
    let g = g1.arg();
    ok(&root, &["apply", "--guild", &g], &g1.jsonl(0..8));
    ok(&root, &["snapshot", "--guild", &g], "");
    ok(
        &root,
        &["apply", "--guild", &g, "--durability", "batched"],
        &g1.jsonl(8..16),
    );
    ok(&root, &["snapshot", "--guild", &g], "");
    ok(
        &root,
        &["apply", "--guild", &g, "--durability", "none"],
        &g1.jsonl(16..24),
    );
    // Guild 2: six events in its segment, then four acknowledged by a writer killed before
    // it closed: they are in its commit log only.
    let g = g2.arg();
    ok(&root, &["apply", "--guild", &g], &g2.jsonl(0..6));
    apply_then_sigkill(&root, &g, &g2.jsonl(6..10), 7..=10);

    let mut paths = Vec::new();
    files_under(&root, &mut paths);
    paths.sort();
    let files: Vec<FileInfo> = paths.iter().map(|p| classify(&root, p)).collect();
    let mut image = Image {
        _dir: dir,
        root,
        files,
        guilds: vec![g1, g2, g3],
        dump_first: BTreeMap::new(),
    };
    check_pristine(&mut image);
    image
}

/// The pristine image is what the test means it to be, and every command is exact on it.
fn check_pristine(image: &mut Image) {
    let layout: Vec<String> = image
        .files
        .iter()
        .map(|f| match &f.role {
            Role::Lock => "LOCK".to_string(),
            Role::Segment { guild, frames } => format!(
                "{guild}:wal[{}..={}]",
                frames.first().map_or(0, |f| f.2),
                frames.last().map_or(0, |f| f.2)
            ),
            Role::Snapshot { guild, seq } => format!("{guild}:snap@{seq}"),
            Role::Commit { records } => format!(
                "clog{:?}",
                records.iter().map(|r| (r.2, r.3)).collect::<Vec<_>>()
            ),
        })
        .collect();
    let expect = |s: &str| layout.iter().any(|l| l == s);
    for want in [
        "LOCK",
        "1:snap@8",
        "1:wal[9..=16]",
        "1:snap@16",
        "1:wal[17..=24]",
        "613425648685547541:wal[1..=6]",
        "3:wal[21..=30]",
        "3:wal[31..=40]",
        "3:snap@20",
        "3:snap@30",
    ] {
        assert!(expect(want), "{want} missing from the image: {layout:?}");
    }
    assert_eq!(image.files.len(), 11, "{layout:?}");
    assert!(
        image
            .files
            .iter()
            .any(|f| matches!(&f.role, Role::Commit { records }
            if records.iter().map(|r| r.3).eq(7..=10))),
        "{layout:?}"
    );
    let verify = ok(&image.root, &["verify"], "");
    assert_eq!(verify.stdout, "", "findings on the pristine image");
    for h in &image.guilds {
        let state = ok(&image.root, &["state", "--guild", &h.arg()], "");
        check_state(h, &state.stdout, &[h.last()]).unwrap();
        let dump = ok(&image.root, &["dump", "--guild", &h.arg()], "");
        let (first, last) = check_dump(h, &dump.stdout).unwrap().unwrap();
        assert_eq!(last, h.last());
        image.dump_first.insert(h.id, first);
    }
    assert_eq!(image.dump_first[&1], 9);
    assert_eq!(image.dump_first[&613_425_648_685_547_541], 1);
    assert_eq!(image.dump_first[&3], 21);
}

/// `state` output: `{"guild", "seq", ...state}` with `seq` one of `allowed` and the state the
/// prefix through it produces. Returns the seq.
fn check_state(h: &History, stdout: &str, allowed: &[u64]) -> Result<u64, String> {
    let mut v: Value =
        serde_json::from_str(stdout).map_err(|e| format!("state output is not JSON: {e}"))?;
    let obj = v.as_object_mut().ok_or("state output is not an object")?;
    let guild = obj.remove("guild");
    if guild != Some(Value::from(h.id)) {
        return Err(format!("state names guild {guild:?}"));
    }
    let seq = obj
        .remove("seq")
        .and_then(|s| s.as_u64())
        .ok_or("state has no seq")?;
    if !allowed.contains(&seq) {
        return Err(format!(
            "state at seq {seq}; allowed: {allowed:?} (of {} events)",
            h.last()
        ));
    }
    if v != h.states[seq as usize] {
        return Err(format!(
            "state at seq {seq} is not the fold of events 1..={seq}"
        ));
    }
    Ok(seq)
}

/// `dump` output: consecutive events, each equal to the guild's event with that seq. Returns
/// the first and last seq printed (`None` for no output).
fn check_dump(h: &History, stdout: &str) -> Result<Option<(u64, u64)>, String> {
    let mut range: Option<(u64, u64)> = None;
    for line in stdout.lines() {
        let mut v: Value = serde_json::from_str(line)
            .map_err(|e| format!("dump line is not JSON: {e}: {line}"))?;
        let seq = v
            .as_object_mut()
            .and_then(|o| o.remove("seq"))
            .and_then(|s| s.as_u64())
            .ok_or_else(|| format!("dump line without seq: {line}"))?;
        if let Some((_, last)) = range {
            if seq != last + 1 {
                return Err(format!("dump jumps from seq {last} to {seq}"));
            }
        }
        if seq == 0 || seq > h.last() || v != h.events[seq as usize - 1] {
            return Err(format!(
                "dump prints a seq {seq} that is not event {seq}: {line}"
            ));
        }
        range = Some((range.map_or(seq, |r| r.0), seq));
    }
    Ok(range)
}

/// The `(path, offset)` of the first "corrupt journal file PATH at byte offset N" on stderr.
fn named_damage(stderr: &str) -> Option<(String, u64)> {
    const HEAD: &str = "corrupt journal file ";
    const MID: &str = " at byte offset ";
    let rest = &stderr[stderr.find(HEAD)? + HEAD.len()..];
    let mid = rest.find(MID)?;
    let digits: String = rest[mid + MID.len()..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    Some((rest[..mid].to_string(), digits.parse().ok()?))
}

/// Exit 0 or 2 only; 101 is a panic, a signal is a crash.
fn exit_code(ran: &Ran) -> Result<i32, String> {
    match (ran.code, ran.signal) {
        (Some(c @ (0 | 2)), _) => Ok(c),
        (Some(101), _) => Err("panicked (exit 101)".into()),
        (Some(c), _) => Err(format!("exit {c} (only 0 or 2 are allowed)")),
        (None, s) => Err(format!("killed by signal {s:?}")),
    }
}

/// At most 400 characters of `text`, on one line.
fn clip(text: &str) -> String {
    let one_line = text.trim().replace('\n', " | ");
    match one_line.char_indices().nth(400) {
        Some((at, _)) => format!("{}...", &one_line[..at]),
        None => one_line,
    }
}

/// One flip: `file`'s byte `at` XOR `pattern`.
#[derive(Clone, Copy, Debug)]
struct Flip {
    file: usize,
    at: usize,
    pattern: u8,
}

/// Counts over every flip: each command's outcomes.
#[derive(Default)]
struct Tally {
    outcomes: Mutex<BTreeMap<String, usize>>,
}

/// What went wrong for one flip.
struct Failure {
    flip: String,
    command: String,
    problem: String,
    stdout: String,
    stderr: String,
}

/// Applies `flip` to a fresh copy of the image, runs every command and checks the rules of
/// the module docs.
fn check_flip(image: &Image, flip: Flip, failures: &Mutex<Vec<Failure>>, tally: &Tally) {
    let outcome = |what: String| *tally.outcomes.lock().unwrap().entry(what).or_default() += 1;
    let file = &image.files[flip.file];
    let describe = format!(
        "{} byte {} of {} ^ {:#04x}",
        file.rel.display(),
        flip.at,
        file.bytes.len(),
        flip.pattern
    );
    let scratch = tempfile::tempdir().unwrap();
    let root = scratch.path().join("journal");
    for f in &image.files {
        let path = root.join(&f.rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut bytes = f.bytes.clone();
        if f.rel == file.rel {
            bytes[flip.at] ^= flip.pattern;
        }
        fs::write(&path, bytes).unwrap();
    }
    let abs = root.join(&file.rel);
    let abs_str = abs.display().to_string();
    let offset_ok = |offset: u64| offset as usize <= flip.at.max(file.header_len());
    let tail = image.tail_of(file, flip.at);
    let fail = |command: &str, problem: String, ran: Option<&Ran>| {
        failures.lock().unwrap().push(Failure {
            flip: describe.clone(),
            command: command.to_string(),
            problem,
            stdout: ran.map(|r| r.stdout.clone()).unwrap_or_default(),
            stderr: ran.map(|r| r.stderr.clone()).unwrap_or_default(),
        });
    };

    // verify
    let check_verify = |ran: &Ran| -> Result<(), String> {
        let code = exit_code(ran)?;
        let mut findings = Vec::new();
        for line in ran.stdout.lines() {
            let v: Value = serde_json::from_str(line)
                .map_err(|e| format!("finding is not JSON: {e}: {line}"))?;
            let field = |k: &str| v.get(k).cloned().unwrap_or(Value::Null);
            let (Some(f), Some(o), Some(k)) = (
                field("file").as_str().map(str::to_owned),
                field("offset").as_u64(),
                field("kind").as_str().map(str::to_owned),
            ) else {
                return Err(format!("finding without file, offset and kind: {line}"));
            };
            findings.push((f, o, k));
        }
        let damage_here = findings
            .iter()
            .any(|(f, o, k)| k != "torn_tail" && *f == abs_str && offset_ok(*o));
        let torn_here = findings
            .iter()
            .any(|(f, o, k)| k == "torn_tail" && *f == abs_str && offset_ok(*o));
        match (code, &file.role) {
            (0, Role::Lock) if findings.is_empty() => Ok(()),
            (0, Role::Lock) => Err("findings for a flip in LOCK".into()),
            (_, Role::Lock) => Err("a flip in LOCK is damage".into()),
            (2, _) if damage_here => Ok(()),
            (2, _) => Err(format!(
                "exit 2 without a damage finding for {abs_str} at an offset <= {}",
                flip.at.max(file.header_len())
            )),
            (_, _) if findings.iter().any(|(_, _, k)| k != "torn_tail") => {
                Err("exit 0 with damage findings".into())
            }
            (_, _) if tail.is_none() => Err(format!(
                "exit 0: damage outside a torn tail not reported (findings: {findings:?})"
            )),
            (_, _) if torn_here => Ok(()),
            (_, _) => Err(format!("exit 0 without a torn_tail finding for {abs_str}")),
        }
    };
    match reprise(&root, &["verify"], "") {
        Ok(ran) => {
            outcome(format!("verify exit {:?}", ran.code));
            if let Err(p) = check_verify(&ran) {
                fail("verify", p, Some(&ran));
            }
        }
        Err(p) => fail("verify", p, None),
    }

    for h in &image.guilds {
        let concerned = file.guild() == Some(h.id) || matches!(file.role, Role::Commit { .. });
        let torn = tail.is_some_and(|(g, _)| g == h.id);
        // The seqs an exit-0 state may have: everything, or everything but a torn tail's event.
        let allowed: Vec<u64> = if torn {
            vec![h.last(), h.last() - 1]
        } else {
            vec![h.last()]
        };
        // Exit 2 must name the flipped file and an offset in it; only for a concerned guild.
        let check_error = |ran: &Ran| -> Result<(), String> {
            if !concerned {
                return Err("exit 2 for a flip in another guild's file".into());
            }
            match named_damage(&ran.stderr) {
                Some((path, offset)) if path == abs_str && offset_ok(offset) => Ok(()),
                Some((path, offset)) => Err(format!(
                    "exit 2 names {path} at {offset}, not {abs_str} at or before {}",
                    flip.at.max(file.header_len())
                )),
                None => Err("exit 2 without naming a file and an offset".into()),
            }
        };

        let g = h.arg();
        let cmd = format!("state --guild {g}");
        let mut state_seq = None;
        match reprise(&root, &["state", "--guild", &g], "") {
            Ok(ran) => {
                let r = exit_code(&ran).and_then(|code| match code {
                    0 => check_state(h, &ran.stdout, &allowed).map(|seq| {
                        state_seq = Some(seq);
                        outcome(if seq == h.last() {
                            "state exit 0, every event".into()
                        } else {
                            "state exit 0, torn tail cut".into()
                        });
                    }),
                    _ => check_error(&ran).map(|()| outcome("state exit 2".into())),
                });
                if let Err(p) = r {
                    fail(&cmd, p, Some(&ran));
                }
            }
            Err(p) => fail(&cmd, p, None),
        }

        let cmd = format!("dump --guild {g}");
        match reprise(&root, &["dump", "--guild", &g], "") {
            Ok(ran) => {
                let r = exit_code(&ran).and_then(|code| {
                    let range = check_dump(h, &ran.stdout)?;
                    if code == 2 {
                        return check_error(&ran).map(|()| outcome("dump exit 2".into()));
                    }
                    outcome("dump exit 0".into());
                    let (first, last) = range.unwrap_or((0, 0));
                    if !allowed.contains(&last) {
                        return Err(format!("dump ends at seq {last}; allowed: {allowed:?}"));
                    }
                    if state_seq.is_some_and(|s| s != last) {
                        return Err(format!(
                            "dump ends at seq {last}, state is at seq {state_seq:?}"
                        ));
                    }
                    if first != image.dump_first[&h.id] && !ran.stderr.contains(&abs_str) {
                        return Err(format!(
                            "dump starts at seq {first} instead of {} without naming {abs_str}",
                            image.dump_first[&h.id]
                        ));
                    }
                    Ok(())
                });
                if let Err(p) = r {
                    fail(&cmd, p, Some(&ran));
                }
            }
            Err(p) => fail(&cmd, p, None),
        }
    }

    // Readers never modify the directory.
    let mut after = Vec::new();
    files_under(&root, &mut after);
    let changed: Vec<String> = image
        .files
        .iter()
        .filter_map(|f| {
            let mut want = f.bytes.clone();
            if f.rel == file.rel {
                want[flip.at] ^= flip.pattern;
            }
            (fs::read(root.join(&f.rel)).ok() != Some(want)).then(|| f.rel.display().to_string())
        })
        .chain(
            after
                .iter()
                .map(|p| p.strip_prefix(&root).unwrap().to_path_buf())
                .filter(|p| !image.files.iter().any(|f| &f.rel == p))
                .map(|p| format!("new file {}", p.display())),
        )
        .collect();
    if !changed.is_empty() {
        fail(
            "(readers)",
            format!("the directory changed: {changed:?}"),
            None,
        );
    }
}

/// The flips to run: every byte with `0xff` and `0x01` when exhaustive; otherwise every
/// header byte and every 7th byte, with `0xff`. In a commit log, the bytes of its header and
/// records: the preallocated zeros after them hold no data (what a flip there is, a torn
/// tail, is checked by the library's unit tests and the `commit_decode` fuzz target).
fn flips(image: &Image, exhaustive: bool) -> Vec<Flip> {
    let mut out = Vec::new();
    for (file, f) in image.files.iter().enumerate() {
        let len = match &f.role {
            Role::Commit { records } => records.last().map_or(f.header_len(), |r| r.1),
            _ => f.bytes.len(),
        };
        for at in 0..len {
            if exhaustive {
                for pattern in [0xff, 0x01] {
                    out.push(Flip { file, at, pattern });
                }
            } else if at < f.header_len() || at % 7 == 0 || matches!(f.role, Role::Lock) {
                out.push(Flip {
                    file,
                    at,
                    pattern: 0xff,
                });
            }
        }
    }
    out
}

/// Every byte flip of every file of a journal with sealed and active segments, snapshots,
/// compaction and a killed writer's commit log: `verify`, `state` and `dump` never panic or
/// hang, report damage with its file and offset (exit 2), and otherwise give the state of a
/// prefix of the events, all of them unless the flip is in a guild's torn tail.
#[test]
fn every_byte_flip_is_reported_or_recovers_a_prefix() {
    let started = Instant::now();
    let image = build_image();
    let exhaustive = std::env::var_os("REPRISE_EXHAUSTIVE").is_some();
    let flips = flips(&image, exhaustive);
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let tally = Tally::default();
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(flip) = flips.get(i) else { break };
                check_flip(&image, *flip, &failures, &tally);
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    let bytes: usize = image.files.iter().map(|f| f.bytes.len()).sum();
    eprintln!(
        "every_byte_flip: {} flips of {} files ({bytes} bytes), {} failures, \
         {:.1?}; outcomes {:?}",
        flips.len(),
        image.files.len(),
        failures.len(),
        started.elapsed(),
        tally.outcomes.lock().unwrap()
    );
    if !failures.is_empty() {
        let mut by_problem: BTreeMap<(String, String), Vec<&Failure>> = BTreeMap::new();
        for f in &failures {
            let file = f.flip.split(' ').next().unwrap_or_default().to_string();
            by_problem
                .entry((file, f.command.clone()))
                .or_default()
                .push(f);
        }
        let mut report = String::new();
        for ((file, command), list) in &by_problem {
            let f = list[0];
            report.push_str(&format!(
                "\n{} failure(s) in {file} / {command}; first: {}: {}\n  stdout: {}\n  stderr: {}\n",
                list.len(),
                f.flip,
                f.problem,
                clip(&f.stdout),
                clip(&f.stderr)
            ));
        }
        panic!("{} failures:{report}", failures.len());
    }
}

/// A damaged last frame of a guild's active segment, while a killed writer's commit log holds
/// the guild's later (acknowledged) events, is damage in the middle of the guild's log
/// (DESIGN.md: "a frame that does not decode, followed by a valid later frame"): `state` must
/// name the segment and the frame's offset, and `verify` must report it as damage there.
#[test]
fn regression_damage_before_commit_logged_events_is_named_by_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let volume = |v: u32| format!("{{\"type\":\"volume_set\",\"volume\":{v}}}\n");
    ok(
        root,
        &["apply", "--guild", "5"],
        &(volume(1) + &volume(2) + &volume(3)),
    );
    apply_then_sigkill(root, "5", &(volume(4) + &volume(5)), 4..=5);
    let segment = root.join("guilds/5/00000000000000000001.wal");
    let mut bytes = fs::read(&segment).unwrap();
    let Role::Segment { frames, .. } = classify(root, &segment).role else {
        unreachable!()
    };
    assert_eq!(frames.iter().map(|f| f.2).collect::<Vec<_>>(), [1, 2, 3]);
    let last_frame = frames[2].0;
    *bytes.last_mut().unwrap() ^= 0xff; // the payload of event 3
    fs::write(&segment, &bytes).unwrap();

    let state = reprise(root, &["state", "--guild", "5"], "").unwrap();
    assert_eq!(state.code, Some(2), "{}", state.stderr);
    assert_eq!(
        named_damage(&state.stderr),
        Some((segment.display().to_string(), last_frame as u64)),
        "{}",
        state.stderr
    );
    let verify = reprise(root, &["verify"], "").unwrap();
    assert_eq!(verify.code, Some(2));
    let damage_at_frame = verify.stdout.lines().any(|l| {
        let v: Value = serde_json::from_str(l).unwrap();
        v["file"] == segment.display().to_string()
            && v["offset"] == last_frame as u64
            && v["kind"] != "torn_tail"
    });
    assert!(damage_at_frame, "{}", verify.stdout);
}

//! Issue 18: a writer's durable throughput alone and with a reader process reading the same
//! journal in a loop (what `reprise state` run over and over by a dashboard does).
//!
//! Each round runs both variants, in turn, on a fresh journal: open it, append the warm-up
//! events (batched, then synced), then time `APPENDS` appends with `Durability::Always` (one
//! `fdatasync` each; default configuration, automatic snapshots and retirements included).
//! With a reader, a child process (this bench binary again, in its reader role) loops
//! `Journal::open_read_only` + `state` on the guild from before the first timed append to after
//! the last, and reports how many reads it made. A third variant runs the same child spinning
//! without reading: on a VM a busy core alone changes fsync latency (an idle vCPU wakes up
//! slower), so the reader's own cost is the ratio to that one. The report gives each variant's
//! median throughput over `REPRISE_BENCH_ROUNDS` rounds (default 5) and the ratios (target: at
//! least 0.9).
//!
//! Run: `cargo bench --bench live_readers` (the journal lives in a temporary directory under
//! the current one, so the file system is the repository's).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use reprise::session::Workload;
use reprise::{Config, Durability, Event, GuildId, Journal};

const GUILD: GuildId = GuildId(613_425_648_685_547_541);
const WARMUP: usize = 5_000;
const APPENDS: usize = 2_000;
/// Set in the child: the journal directory it reads.
const READER_DIR_ENV: &str = "REPRISE_BENCH_LIVE_READER_DIR";
/// Set in the child (to 1): spin without reading.
const SPIN_ENV: &str = "REPRISE_BENCH_LIVE_SPIN";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Variant {
    Alone,
    Spinner,
    Reader,
}

/// The reader role: reads the guild's state in a loop until its stdin says stop (a line, or
/// its end), then prints how many reads it made.
fn reader(dir: &Path, spin: bool) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::stdin().lock().read_line(&mut line);
        let _ = tx.send(());
    });
    println!("ready");
    let mut reads = 0u64;
    let mut last_seq = 0;
    while rx.try_recv().is_err() {
        if spin {
            reads += 1;
            std::hint::black_box(reads);
            continue;
        }
        let mut r = Journal::open_read_only(dir, Config::default()).expect("open read-only");
        let seq = r.state(GUILD).expect("state").seq;
        assert!(
            seq >= last_seq,
            "the reader went back from {last_seq} to {seq}"
        );
        last_seq = seq;
        reads += 1;
    }
    println!("{reads}");
}

fn start_reader(dir: &Path, spin: bool) -> (Child, BufReader<std::process::ChildStdout>) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(READER_DIR_ENV, dir)
        .env(SPIN_ENV, if spin { "1" } else { "0" })
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    (child, out)
}

/// One round of one variant: appends per second, and the reads the reader made meanwhile.
fn round(events: &[Event], variant: Variant) -> (f64, u64) {
    let tmp = tempfile::tempdir_in(".").unwrap();
    let dir = tmp.path().join("journal");
    let mut j = Journal::open(&dir, Config::default()).unwrap();
    for e in &events[..WARMUP] {
        j.append(GUILD, e, Durability::BATCHED).unwrap();
    }
    j.sync().unwrap();
    let mut reader =
        (variant != Variant::Alone).then(|| start_reader(&dir, variant == Variant::Spinner));
    let started = Instant::now();
    for e in &events[WARMUP..WARMUP + APPENDS] {
        j.append(GUILD, e, Durability::Always).unwrap();
    }
    let took = started.elapsed();
    let reads = match reader.take() {
        Some((mut child, mut out)) => {
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(b"stop\n").unwrap();
            drop(stdin);
            let mut line = String::new();
            out.read_line(&mut line).unwrap();
            assert!(child.wait().unwrap().success(), "the reader failed");
            line.trim().parse().unwrap()
        }
        None => 0,
    };
    j.close().unwrap();
    let r = Journal::open_read_only(&dir, Config::default())
        .unwrap()
        .state(GUILD)
        .unwrap()
        .seq;
    assert_eq!(r, (WARMUP + APPENDS) as u64);
    (APPENDS as f64 / took.as_secs_f64(), reads)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    if let Some(dir) = std::env::var_os(READER_DIR_ENV) {
        reader(
            Path::new(&dir),
            std::env::var(SPIN_ENV).is_ok_and(|v| v == "1"),
        );
        return;
    }
    // `cargo bench` passes `--bench`; `cargo test --benches` runs it once, quickly.
    let testing = !std::env::args().any(|a| a == "--bench");
    let rounds: usize = std::env::var("REPRISE_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if testing { 1 } else { 5 });
    let events = Workload::events(18, WARMUP + APPENDS);
    let (mut alone, mut spinning, mut with, mut reads) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let variants = [Variant::Alone, Variant::Spinner, Variant::Reader];
    for i in 0..rounds {
        // Rotate which goes first, so none always meets a warmer page cache.
        for k in 0..variants.len() {
            let variant = variants[(i + k) % variants.len()];
            let (per_s, n) = round(&events, variant);
            match variant {
                Variant::Alone => alone.push(per_s),
                Variant::Spinner => spinning.push(per_s),
                Variant::Reader => {
                    with.push(per_s);
                    reads.push(n as f64);
                }
            }
        }
    }
    let (alone, spinning, with, reads) =
        (median(alone), median(spinning), median(with), median(reads));
    println!(
        "durable appends (Always), {APPENDS} per round after {WARMUP}, median of {rounds} round(s):"
    );
    println!("  alone:                   {alone:>9.0} appends/s");
    println!("  beside a spinning child: {spinning:>9.0} appends/s");
    println!(
        "  beside a reader:         {with:>9.0} appends/s  (the reader: {reads:.0} open + state per round)"
    );
    println!("  ratio reader/alone:      {:>9.3}", with / alone);
    println!("  ratio reader/spinning:   {:>9.3}", with / spinning);
}

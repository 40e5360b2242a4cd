//! `reprise demo`: a simulated bot (a real child process) appends a realistic workload across
//! many guilds with fsync-acknowledged group commits; the parent kills it with SIGKILL in the
//! middle of the stream, recovers every guild, and checks that every acknowledged event
//! survived and that every recovered state is exactly the fold of a prefix of its events.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reprise::session::{apply, Rng, Workload};
use reprise::{CorruptionKind, Durability, GuildId, GuildState, Journal};

use crate::progress::Progress;
use crate::Failure;

/// Largest group of events the simulated bot commits with one round of fsyncs.
const BATCH_EVENTS_MAX: u64 = 48;

/// Realistic, stable guild snowflakes for demo guild `i`.
fn demo_guilds(count: u32) -> Vec<GuildId> {
    (0..u64::from(count))
        .map(|i| GuildId(602_000_000_000_000_000 + i * 4_194_304_007))
        .collect()
}

fn workload_seed(seed: u64, guild: GuildId) -> u64 {
    seed ^ guild.0.rotate_left(17)
}

/// The child: appends `events` events, printing `guild seq latency_us` per acknowledged event.
pub(crate) fn worker(dir: &Path, guilds: u32, events: u64, seed: u64) -> Result<(), Failure> {
    let ids = demo_guilds(guilds.max(1));
    let mut journal = Journal::open(dir, crate::base_config())?;
    let mut workloads: Vec<Workload> = ids
        .iter()
        .map(|g| Workload::new(workload_seed(seed, *g)))
        .collect();
    let mut pick = Rng::new(seed);
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut sent = 0u64;
    let n = ids.len() as u64;
    let mut pending = Vec::with_capacity(BATCH_EVENTS_MAX as usize);
    while sent < events {
        let batch = (pick.below(BATCH_EVENTS_MAX) + 1).min(events - sent);
        pending.clear();
        for _ in 0..batch {
            // Skewed choice: a few guilds are busy, most are quiet.
            let i = (pick.below(n) * pick.below(n) / n) as usize;
            let guild = ids[i];
            let event = {
                let current = journal.state(guild)?;
                workloads[i].next_event(&current.state)
            };
            let started = Instant::now();
            let seq = journal.append(guild, &event, Durability::BATCHED)?;
            pending.push((guild, seq, started));
        }
        journal.sync()?;
        for (guild, seq, started) in &pending {
            writeln!(out, "{} {} {}", guild.0, seq, started.elapsed().as_micros())?;
        }
        out.flush()?;
        sent += batch;
    }
    journal.close()?;
    Ok(())
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The parent: run the worker, kill it, recover, check, report.
pub(crate) fn run(dir: &Path, guilds: u32, events: u64, seed: Option<u64>) -> Result<(), Failure> {
    let seed = seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    let guilds = guilds.max(1);
    let events = events.max(10);
    let ids = demo_guilds(guilds);
    println!(
        "reprise demo: {guilds} guilds, up to {events} events, seed {seed}, directory {}",
        dir.display()
    );

    // The states before this run (the directory may hold an earlier demo's guilds).
    let starts: Vec<GuildState> = {
        let mut journal = Journal::open(dir, crate::base_config())?;
        let mut v = Vec::with_capacity(ids.len());
        for g in &ids {
            v.push(journal.state(*g)?.clone());
        }
        v
    };
    let mut rng = Rng::new(seed ^ 0x5eed);
    let kill_after = events * (30 + rng.below(41)) / 100;

    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .arg("--dir")
        .arg(dir)
        .args(crate::key_args())
        .args(["demo-worker", "--guilds", &guilds.to_string()])
        .args(["--events", &events.to_string(), "--seed", &seed.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let pid = child.id();
    let Some(stdout) = child.stdout.take() else {
        return Err(Failure::new(4, "the bot process has no stdout"));
    };
    let mut acked: HashMap<u64, u64> = HashMap::new();
    let mut latencies = Vec::new();
    let mut first_ack: Option<Instant> = None;
    let mut killed_at: Option<(Instant, u64)> = None;
    // The bot phase on a terminal: acknowledgements up to the kill point, rate and ETA.
    let bar = Progress::new(kill_after, "demo: the bot appends", "acks", false);
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        let mut parts = line.split_ascii_whitespace().map(str::parse::<u64>);
        let (Some(Ok(g)), Some(Ok(seq)), Some(Ok(lat))) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(Failure::new(
                2,
                format!("unexpected line from the bot process: {line}"),
            ));
        };
        first_ack.get_or_insert_with(Instant::now);
        let e = acked.entry(g).or_insert(0);
        *e = (*e).max(seq);
        latencies.push(lat);
        if killed_at.is_none() {
            bar.inc(1);
        }
        if killed_at.is_none() && latencies.len() as u64 >= kill_after {
            child.kill()?; // SIGKILL
            killed_at = Some((Instant::now(), latencies.len() as u64));
        }
    }
    bar.finish(&format!(
        "demo: the bot was killed after {} acknowledgements",
        latencies.len()
    ));
    let status = child.wait()?;
    let acked_total = latencies.len() as u64;
    let (kill_time, acked_at_kill) = match killed_at {
        Some(k) => k,
        None => {
            return Err(Failure::new(
                4,
                format!("the bot process ended ({status}) before the kill point"),
            ))
        }
    };
    let elapsed = first_ack.map_or(Duration::ZERO, |t| kill_time.saturating_duration_since(t));
    latencies.sort_unstable();
    println!(
        "bot process {pid}: {acked_at_kill} events acknowledged (fdatasync'd, group commit) in {:.2} s = {:.0} events/s",
        elapsed.as_secs_f64(),
        acked_at_kill as f64 / elapsed.as_secs_f64().max(1e-9)
    );
    println!(
        "ack latency per event: p50 {} us, p99 {} us, max {} us",
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(0)
    );
    println!(
        "killed with SIGKILL mid-stream ({status}); {acked_total} acknowledgements had been printed by then"
    );

    // Recover.
    let started = Instant::now();
    let mut journal = Journal::open(dir, crate::base_config())?;
    let mut recovered = Vec::with_capacity(ids.len());
    let mut torn = 0;
    for g in &ids {
        recovered.push(journal.state(*g)?.clone());
        torn += journal
            .recovery_findings(*g)?
            .iter()
            .filter(|c| c.kind == CorruptionKind::TornTail)
            .count();
    }
    let recovery = started.elapsed();
    let on_disk: u64 = recovered
        .iter()
        .zip(&starts)
        .map(|(r, s)| r.seq - s.seq)
        .sum();
    println!(
        "recovery: {} guilds opened and recovered in {:.1} ms ({} events of this run on disk, {} torn tails cut)",
        ids.len(),
        recovery.as_secs_f64() * 1e3,
        on_disk,
        torn
    );

    // Check.
    let mut lost = 0u64;
    let mut mismatched = Vec::new();
    for ((g, start), rec) in ids.iter().zip(&starts).zip(&recovered) {
        let want = acked.get(&g.0).copied().unwrap_or(start.seq);
        if rec.seq < want {
            lost += want - rec.seq;
        }
        let mut workload = Workload::new(workload_seed(seed, *g));
        let mut state = start.state.clone();
        for _ in start.seq..rec.seq {
            let event = workload.next_event(&state);
            apply(&mut state, &event);
        }
        if state != rec.state {
            mismatched.push(g.0);
        }
    }
    let report = journal.verify()?;
    journal.close()?;
    let damage: Vec<_> = report.findings.iter().filter(|f| f.is_damage()).collect();
    println!(
        "check: acknowledged events lost: {lost}; states equal to the fold of their event prefix: {}/{}; verify: {}",
        ids.len() - mismatched.len(),
        ids.len(),
        if damage.is_empty() { "sound".to_string() } else { format!("{} damaged", damage.len()) }
    );
    if lost > 0 || !mismatched.is_empty() || !damage.is_empty() {
        return Err(Failure::new(
            2,
            format!("demo check failed: {lost} acknowledged events lost, guilds with wrong state: {mismatched:?}, damage: {damage:?}"),
        ));
    }
    println!("OK: every acknowledged event survived the kill.");
    Ok(())
}

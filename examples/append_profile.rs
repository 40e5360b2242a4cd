//! Appends the `reprise bench` none-row stream (200 warm-up + N events, one guild, default
//! configuration) with `Durability::None`, ROUNDS times, and prints where the time went (per
//! event type, the slowest appends, and the CPU cost of each step without I/O): a profiler
//! target (`perf record -g target/release/examples/append_profile DIR N ROUNDS`).

use std::time::Instant;

use reprise::session::{apply, State, Workload, HISTORY_MAX_DEFAULT};
use reprise::{Config, Durability, Event, GuildId, Journal};

fn main() -> Result<(), reprise::Error> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "./append-profile".into());
    let n: usize = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000);
    let rounds: usize = std::env::args()
        .nth(3)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let mut workload = Workload::new(0x5EED_BE4C);
    let mut state = State::new(HISTORY_MAX_DEFAULT);
    let events: Vec<Event> = (0..200 + n)
        .map(|_| {
            let e = workload.next_event(&state);
            apply(&mut state, &e);
            e
        })
        .collect();
    components(&events);
    for round in 0..rounds {
        let path = std::path::Path::new(&dir).join(format!("r{round}"));
        let _ = std::fs::remove_dir_all(&path);
        let mut journal = Journal::open(&path, Config::default())?;
        let guild = GuildId(601_988_503_601_311_691);
        for e in &events[..200] {
            journal.append(guild, e, Durability::None)?;
        }
        journal.sync()?;
        let mut lat: Vec<(u64, &'static str)> = Vec::with_capacity(n);
        let start = Instant::now();
        for e in &events[200..] {
            let t = Instant::now();
            journal.append(guild, e, Durability::None)?;
            lat.push((t.elapsed().as_nanos() as u64, e.kind()));
        }
        let wall = start.elapsed();
        journal.close()?;
        let total: u64 = lat.iter().map(|l| l.0).sum();
        let mut sorted = lat.clone();
        sorted.sort_unstable();
        let slow: u64 = sorted.iter().filter(|l| l.0 > 20_000).map(|l| l.0).sum();
        println!(
            "{} events in {:.1} ms: {:.0}/s, p50 {} ns, p99 {} ns, sum {:.1} ms, >20us: {} events {:.1} ms",
            n,
            wall.as_secs_f64() * 1e3,
            n as f64 / wall.as_secs_f64(),
            sorted[n / 2].0,
            sorted[n * 99 / 100].0,
            total as f64 / 1e6,
            sorted.iter().filter(|l| l.0 > 20_000).count(),
            slow as f64 / 1e6
        );
        let mut by_type: std::collections::BTreeMap<&str, (u64, u64)> = Default::default();
        for (ns, t) in &lat {
            let e = by_type.entry(t).or_default();
            e.0 += 1;
            e.1 += ns;
        }
        for (t, (c, ns)) in by_type {
            println!(
                "  {t:<20} {c:>6} {:>8.2} ms  mean {:>8.0} ns",
                ns as f64 / 1e6,
                ns as f64 / c as f64
            );
        }
        for l in sorted.iter().rev().take(8) {
            println!("  slow: {} ns {}", l.0, l.1);
        }
    }
    Ok(())
}

/// The CPU cost of each step of an append and of a replay over the same stream, without I/O:
/// encode, CRC, validate, apply (cloning tracks), decode, apply by value.
fn components(events: &[Event]) {
    let mut buf = Vec::new();
    let mut bytes = 0usize;
    let t = Instant::now();
    for e in events {
        buf.clear();
        reprise::format::encode_event(e, &mut buf);
        bytes += buf.len();
    }
    let enc = t.elapsed();
    let t = Instant::now();
    let mut crc = 0u32;
    for e in events {
        buf.clear();
        reprise::format::encode_event(e, &mut buf);
        crc ^= crc32fast::hash(&buf);
    }
    let enc_crc = t.elapsed();
    let mut state = State::new(HISTORY_MAX_DEFAULT);
    let t = Instant::now();
    for e in events {
        reprise::session::validate(&state, e).unwrap();
        apply(&mut state, e);
    }
    let va = t.elapsed();
    let mut state = State::new(HISTORY_MAX_DEFAULT);
    let t = Instant::now();
    for e in events {
        apply(&mut state, e);
    }
    let a = t.elapsed();
    let mut state = State::new(HISTORY_MAX_DEFAULT);
    let mut dec = std::time::Duration::ZERO;
    let mut ap = std::time::Duration::ZERO;
    for e in events {
        buf.clear();
        reprise::format::encode_event(e, &mut buf);
        let t = Instant::now();
        let d = reprise::format::decode_event(&buf).unwrap();
        dec += t.elapsed();
        let t = Instant::now();
        reprise::session::validate(&state, &d).unwrap();
        reprise::session::apply_owned(&mut state, d);
        ap += t.elapsed();
    }
    println!(
        "{} events, {} payload bytes: encode {:?}, encode+crc {:?} ({crc}), validate+apply {:?}, apply {:?}, decode {:?}, validate+apply_owned {:?}",
        events.len(), bytes, enc, enc_crc, va, a, dec, ap
    );
}

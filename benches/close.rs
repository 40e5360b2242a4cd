//! `Journal::close` of a journal with 20,000 dirty guilds: the commit-log retirement that makes
//! every segment written since the last one durable before the commit log goes.
//!
//! Plain timing (no criterion: one sample takes seconds to set up). Each variant appends one
//! event to each of `REPRISE_BENCH_GUILDS` guilds (default 20,000), then times `close()`; it
//! reports the median and the range over `REPRISE_BENCH_ROUNDS` rounds (default 5), and the
//! time the appends took (where the open-file cap's closes happen). Variants:
//!
//! - `new guilds`: every guild new (a segment, a guild directory each), the default cap on
//!   open files (most segments closed before the retirement);
//! - `many files open`: the same with a cap of 10,000 open files;
//! - `existing guilds`: the guilds exist already (reopened), one new event each.
//!
//! Run: `cargo bench --bench close` (in the repository: the journals live in a temporary
//! directory under the current one, so the file system is the repository's).

use std::time::{Duration, Instant};

use reprise::{Config, Durability, Event, GuildId, Journal};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

fn append_all(journal: &mut Journal, guilds: u64, volume: u16) {
    let event = Event::VolumeSet { volume };
    for g in 1..=guilds {
        journal
            .append(GuildId(1_000_000 + g), &event, Durability::None)
            .unwrap();
    }
}

/// One round: returns (append time, close time).
fn round(config: &Config, guilds: u64, existing: bool) -> (Duration, Duration) {
    let dir = tempfile::tempdir_in(".").unwrap();
    if existing {
        let mut j = Journal::open(dir.path(), config.clone()).unwrap();
        append_all(&mut j, guilds, 10);
        j.close().unwrap();
    }
    let mut j = Journal::open(dir.path(), config.clone()).unwrap();
    let started = Instant::now();
    append_all(&mut j, guilds, 20);
    j.sync().unwrap();
    let appended = started.elapsed();
    let started = Instant::now();
    j.close().unwrap();
    (appended, started.elapsed())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    // `cargo bench` passes `--bench`; a name filter may follow.
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let guilds = env_usize("REPRISE_BENCH_GUILDS", 20_000) as u64;
    let rounds = env_usize("REPRISE_BENCH_ROUNDS", 5).max(1);
    let variants = [
        ("new guilds", Config::default(), false),
        (
            "many files open",
            Config::default().with_open_files_max(10_000),
            false,
        ),
        ("existing guilds", Config::default(), true),
    ];
    println!("close of {guilds} dirty guilds, {rounds} rounds (median [min .. max])");
    for (name, config, existing) in variants {
        if filter.as_deref().is_some_and(|f| !name.contains(f)) {
            continue;
        }
        let mut closes = Vec::new();
        let mut appends = Vec::new();
        for _ in 0..rounds {
            let (a, c) = round(&config, guilds, existing);
            appends.push(ms(a));
            closes.push(ms(c));
        }
        closes.sort_by(f64::total_cmp);
        appends.sort_by(f64::total_cmp);
        println!(
            "{name:>16}: close {:8.1} ms [{:.1} .. {:.1}]   appends {:8.1} ms [{:.1} .. {:.1}]",
            closes[rounds / 2],
            closes[0],
            closes[rounds - 1],
            appends[rounds / 2],
            appends[0],
            appends[rounds - 1],
        );
    }
}

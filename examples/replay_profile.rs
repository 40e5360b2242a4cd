//! Writes a guild of 50,000 workload events (no snapshots) and replays it (`RUNS` times, default
//! 1): a target for profilers (`perf record -g target/release/examples/replay_profile DIR RUNS`,
//! `valgrind --tool=callgrind target/release/examples/replay_profile DIR`).

use reprise::session::{apply, State, Workload, HISTORY_MAX_DEFAULT};
use reprise::{Config, Durability, GuildId, Journal};

fn main() -> Result<(), reprise::Error> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "./replay-profile".into());
    let config = Config::default().without_auto_snapshots();
    let guild = GuildId(1);
    if !std::path::Path::new(&dir).exists() {
        let mut journal = Journal::open(&dir, config.clone())?;
        let mut workload = Workload::new(1);
        let mut state = State::new(HISTORY_MAX_DEFAULT);
        for _ in 0..50_000 {
            let event = workload.next_event(&state);
            apply(&mut state, &event);
            journal.append(guild, &event, Durability::None)?;
        }
        journal.close()?;
    }
    let runs: usize = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    for _ in 0..runs {
        let started = std::time::Instant::now();
        let mut journal = Journal::open_read_only(&dir, config.clone())?;
        let seq = journal.state(guild)?.seq;
        let elapsed = started.elapsed();
        println!(
            "replayed {seq} events in {:.1} ms ({:.0} events/s)",
            elapsed.as_secs_f64() * 1e3,
            seq as f64 / elapsed.as_secs_f64()
        );
    }
    Ok(())
}

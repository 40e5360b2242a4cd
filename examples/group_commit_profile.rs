//! 64 tokio tasks, one guild each, append workload events with `Durability::Always` through one
//! `Reprise` handle, as `reprise bench`'s `reprise durable 64 guilds` row does: a profiler
//! target for the group-commit path (`perf record -g target/release/examples/group_commit_profile
//! DIR EVENTS_PER_GUILD`).

use std::time::Instant;

use reprise::session::{apply, State, Workload, HISTORY_MAX_DEFAULT};
use reprise::{Config, Durability, GuildId, Reprise};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "./group-commit-profile".into());
    let per_guild: usize = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_000);
    let mut workload = Workload::new(3);
    let mut state = State::new(HISTORY_MAX_DEFAULT);
    let events: Vec<_> = (0..per_guild)
        .map(|_| {
            let event = workload.next_event(&state);
            apply(&mut state, &event);
            event
        })
        .collect();
    let events = std::sync::Arc::new(events);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let handle = Reprise::open(&dir, Config::default().with_snapshot_interval(None)).await?;
        let started = Instant::now();
        let mut tasks = Vec::new();
        for g in 0..64u64 {
            let (handle, events) = (handle.clone(), std::sync::Arc::clone(&events));
            tasks.push(tokio::spawn(async move {
                for event in events.iter() {
                    handle
                        .append_with(GuildId(1 + g), event.clone(), Durability::Always)
                        .await?;
                }
                Ok::<_, reprise::Error>(())
            }));
        }
        for task in tasks {
            task.await??;
        }
        let elapsed = started.elapsed();
        let total = 64 * events.len();
        println!(
            "{total} durable appends over 64 guilds in {:.1} ms ({:.0}/s)",
            elapsed.as_secs_f64() * 1e3,
            total as f64 / elapsed.as_secs_f64()
        );
        handle.shutdown().await?;
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}

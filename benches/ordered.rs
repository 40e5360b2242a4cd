//! Issue 19: a guild task that sends Lavalink position reports must not stall. 50 position
//! reports from one guild task, each call awaited before the next, with:
//!
//! - `append_with(None)`: returns once the event is in the journal, durable whenever (the
//!   reference: what a task pays that does not care about durability);
//! - `append_ordered(Batched)`: returns once the event has its seq; its durability comes within
//!   the batch policy's `delay_max`, observable through `Ordered::durable` or the guild's
//!   `durable_up_to` watch (the call the README recommends for position reports);
//! - `append_with(Batched)`: waits for the batch's group commit each time (what a task paid
//!   before `append_ordered`: the stall the issue measured).
//!
//! Plain timing, interleaved rounds so the variants share the machine's noise: each round runs
//! each variant once, in a fresh runtime on one fresh journal; the report gives the median over
//! `REPRISE_BENCH_ROUNDS` rounds (default 30) and the ratio of `append_ordered(Batched)` to
//! `append_with(None)` (target: at most 2). After each ordered round the bench awaits the last
//! report's `durable()` and checks the guild's state, so the events were really appended.
//!
//! Run: `cargo bench --bench ordered` (the journal lives in a temporary directory under the
//! current one, so the file system is the repository's).

use std::time::{Duration, Instant};

use reprise::session::TrackFields;
use reprise::{Config, Durability, Event, GuildId, Reprise};

const REPORTS: u64 = 50;
const GUILD: GuildId = GuildId(613_425_648_685_547_541);

#[derive(Clone, Copy, Debug)]
enum Variant {
    WithNone,
    OrderedBatched,
    WithBatched,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::WithNone => "append_with(None)",
            Variant::OrderedBatched => "append_ordered(Batched)",
            Variant::WithBatched => "append_with(Batched)",
        }
    }
}

/// One round of one variant: the time the 50 awaited calls took.
async fn round(reprise: &Reprise, entry_id: u64, base: u64, variant: Variant) -> Duration {
    let started = Instant::now();
    let mut last = None;
    for i in 0..REPORTS {
        let event = Event::position_of(entry_id, (base + i) * 1_000, 1_760_000_000_000 + i);
        match variant {
            Variant::WithNone => {
                reprise
                    .append_with(GUILD, event, Durability::None)
                    .await
                    .unwrap();
            }
            Variant::WithBatched => {
                reprise
                    .append_with(GUILD, event, Durability::BATCHED)
                    .await
                    .unwrap();
            }
            Variant::OrderedBatched => {
                last = Some(
                    reprise
                        .append_ordered(GUILD, event, Durability::BATCHED)
                        .await
                        .unwrap(),
                );
            }
        }
    }
    let took = started.elapsed();
    if let Some(last) = last {
        let seq = last.seq();
        assert_eq!(last.durable().await.unwrap(), seq);
        let state = reprise.state(GUILD).await.unwrap();
        assert_eq!(
            state.seq, seq,
            "the ordered reports are the guild's last events"
        );
    }
    took
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort_unstable();
    v[v.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("ordered: bench");
        return;
    }
    let rounds: usize = std::env::var("REPRISE_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(30);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir_in(".").unwrap();
    let variants = [
        Variant::WithNone,
        Variant::OrderedBatched,
        Variant::WithBatched,
    ];
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); variants.len()];
    runtime.block_on(async {
        let reprise = Reprise::open(dir.path(), Config::default()).await.unwrap();
        let track = TrackFields::new("QAAAjQIAJVJpY2sgQXN0bGV5", "Never Gonna Give You Up");
        reprise
            .append(GUILD, Event::enqueue([track]))
            .await
            .unwrap();
        reprise.append(GUILD, Event::TrackStarted).await.unwrap();
        let entry_id = reprise
            .state(GUILD)
            .await
            .unwrap()
            .state
            .queue
            .current
            .as_ref()
            .map(|e| e.id)
            .unwrap();
        let mut base = 0;
        for _ in 0..rounds {
            for (i, &variant) in variants.iter().enumerate() {
                times[i].push(round(&reprise, entry_id, base, variant).await);
                base += REPORTS;
            }
        }
        reprise.shutdown().await.unwrap();
    });
    println!(
        "{REPORTS} position reports from one guild task, each awaited ({rounds} rounds, median):"
    );
    let medians: Vec<Duration> = times.into_iter().map(median).collect();
    for (variant, m) in variants.iter().zip(&medians) {
        println!(
            "  {:<26} {:>9.3} ms  ({:.1} us per report)",
            variant.name(),
            m.as_secs_f64() * 1e3,
            m.as_secs_f64() * 1e6 / REPORTS as f64
        );
    }
    let ratio = medians[1].as_secs_f64() / medians[0].as_secs_f64();
    println!(
        "  append_ordered(Batched) / append_with(None) = {ratio:.2} (target <= 2.00: {})",
        if ratio <= 2.0 { "met" } else { "NOT met" }
    );
    println!(
        "  append_with(Batched) / append_with(None) = {:.1}",
        medians[2].as_secs_f64() / medians[0].as_secs_f64()
    );
}

//! Criterion benches of the core paths: append (durability none and always), replay (recovery
//! folding a guild's log), and snapshot (encoding a 1,000-track queue).
//!
//! The side-by-side comparison against the physical limit and the peers is `reprise bench`
//! (the async runtime issue); these benches track the core costs over time.

use std::hint::black_box;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use reprise::session::{apply, State, Track, TrackFields, Workload, HISTORY_MAX_DEFAULT};
use reprise::{Config, Durability, Event, GuildId, Journal};

fn append(c: &mut Criterion) {
    let stream = Workload::events(1, 20_000);
    let mut group = c.benchmark_group("append");
    group.throughput(Throughput::Elements(1));
    for durability in [Durability::None, Durability::Always] {
        let dir = tempfile::tempdir_in(".").unwrap();
        let mut journal = Journal::open(dir.path(), Config::default()).unwrap();
        let guild = GuildId(1);
        // Replay the stream in a loop; a session_ended at each wrap keeps every event valid.
        let reset = Event::from_json(r#"{"type":"session_ended"}"#).unwrap();
        let mut i = 0usize;
        group.bench_function(durability.as_str(), |b| {
            b.iter(|| {
                if i == stream.len() {
                    journal.append(guild, &reset, durability).unwrap();
                    i = 0;
                }
                let seq = journal.append(guild, &stream[i], durability).unwrap();
                i += 1;
                black_box(seq)
            })
        });
    }
    group.finish();
}

fn replay(c: &mut Criterion) {
    let n = 100_000;
    let stream = Workload::events(2, n);
    let dir = tempfile::tempdir_in(".").unwrap();
    let config = Config::default().without_auto_snapshots();
    {
        let mut journal = Journal::open(dir.path(), config.clone()).unwrap();
        for e in &stream {
            journal.append(GuildId(1), e, Durability::None).unwrap();
        }
        journal.close().unwrap();
    }
    let mut group = c.benchmark_group("replay");
    group.throughput(Throughput::Elements(n as u64));
    group.sample_size(20);
    group.bench_function("100k events, mapped segments", |b| {
        b.iter(|| {
            let mut journal = Journal::open_read_only(dir.path(), config.clone()).unwrap();
            black_box(journal.state(GuildId(1)).unwrap().seq)
        })
    });
    group.finish();
}

/// The state of the 1,000-track Sonora fixture, built through events.
fn fixture_state(path: &Path) -> State {
    let text = std::fs::read_to_string(path).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let q = &v["data"]["queue"];
    let track = |t: &serde_json::Value| {
        let mut tr = TrackFields::new(
            t["track"].as_str().unwrap().to_string(),
            t["title"].as_str().unwrap().to_string(),
        );
        tr.author = t["author"].as_str().map(str::to_string);
        tr.uri = t["uri"].as_str().map(str::to_string);
        tr.identifier = t["identifier"].as_str().map(str::to_string);
        tr.length_ms = t["length"].as_u64();
        Track::from(tr)
    };
    let mut state = State::new(HISTORY_MAX_DEFAULT);
    let mut tracks: Vec<Track> = q["history"].as_array().unwrap().iter().map(track).collect();
    tracks.extend(q["current"].as_object().map(|_| track(&q["current"])));
    tracks.extend(q["upcoming"].as_array().unwrap().iter().map(track));
    let enqueue = Event::TracksEnqueued {
        tracks,
        index: None,
    };
    apply(&mut state, &enqueue);
    for _ in 0..=q["history"].as_array().unwrap().len() {
        apply(&mut state, &Event::TrackStarted);
    }
    state
}

fn snapshot(c: &mut Criterion) {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/sonora-1.2.8/guild_601988503601311691_1760000296.json");
    if !fixture.exists() {
        eprintln!("skipping snapshot bench: {} not found", fixture.display());
        return;
    }
    let state = fixture_state(&fixture);
    let bytes = reprise::format::snapshot::encode(1, 1, 0, &state, None).unwrap();
    let sonora = std::fs::metadata(&fixture).unwrap().len();
    eprintln!(
        "snapshot of the 1,000-track queue: {} bytes vs {} bytes of Sonora JSON ({:.1} %)",
        bytes.len(),
        sonora,
        100.0 * bytes.len() as f64 / sonora as f64
    );
    let mut group = c.benchmark_group("snapshot");
    group.bench_function("encode 1,000-track queue", |b| {
        b.iter(|| {
            black_box(
                reprise::format::snapshot::encode(1, 1, 0, &state, None)
                    .unwrap()
                    .len(),
            )
        })
    });
    group.bench_function("decode 1,000-track queue", |b| {
        b.iter(|| {
            black_box(
                reprise::format::snapshot::decode(&bytes, None)
                    .unwrap()
                    .0
                    .seq,
            )
        })
    });
    let dir = tempfile::tempdir_in(".").unwrap();
    let guild = GuildId(9);
    let config = Config::default().with_snapshots_retained(1);
    let mut journal = Journal::open(dir.path(), config).unwrap();
    let tracks = state
        .queue
        .upcoming
        .iter()
        .map(|e| e.track.clone())
        .collect();
    let enqueue = Event::TracksEnqueued {
        tracks,
        index: None,
    };
    journal.append(guild, &enqueue, Durability::None).unwrap();
    group.bench_function(
        "snapshot_now of the 1,000-track queue (write_atomic)",
        |b| {
            let mut volume = 0u16;
            // Each iteration appends one event (so there is something new to snapshot) and
            // snapshots it; the append is a few microseconds against milliseconds of snapshot.
            b.iter(|| {
                volume = (volume + 1) % 1000;
                let e = Event::VolumeSet { volume };
                journal.append(guild, &e, Durability::None).unwrap();
                black_box(journal.snapshot_now(guild).unwrap())
            })
        },
    );
    group.finish();
}

criterion_group!(benches, append, replay, snapshot);
criterion_main!(benches);

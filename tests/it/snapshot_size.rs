//! What a snapshot costs on disk: with random (incompressible) blobs, the snapshot of a guild's
//! state is barely larger than the blobs alone (issue 15's target: at most 1.15 times), because
//! a state stores its queue column by column and the blobs apart (state layout 3).

use reprise::format::snapshot;
use reprise::session::State;
use reprise::sonora;

/// Every Sonora file of `tests/fixtures/sonora-1.2.8/` whose queue holds at least `min`
/// tracks, as a state.
fn big_sonora_states(min: usize) -> Vec<(String, State)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sonora-1.2.8");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let Ok(file) = sonora::parse(&std::fs::read_to_string(&path).unwrap()) else {
            continue;
        };
        let Ok(state) = sonora::to_state(&file, reprise::session::HISTORY_MAX_DEFAULT) else {
            continue;
        };
        if state.queue.upcoming.len() >= min {
            out.push((path.display().to_string(), state));
        }
    }
    out
}

#[test]
fn a_snapshot_of_random_blobs_is_at_most_1_15_times_the_blobs() {
    let states = big_sonora_states(500);
    assert!(!states.is_empty());
    for (name, state) in states {
        let blob_bytes: usize = state
            .queue
            .current
            .iter()
            .chain(&state.queue.upcoming)
            .chain(&state.queue.history)
            .map(|e| {
                e.track
                    .encoded_bytes()
                    .map_or(e.track.encoded_len(), <[u8]>::len)
            })
            .sum();
        let file = snapshot::encode(1, 1, 0, &state, None).unwrap();
        let (_, back) = snapshot::decode(&file, None).unwrap();
        assert_eq!(back, state, "{name}");
        let ratio = file.len() as f64 / blob_bytes as f64;
        eprintln!(
            "{name}: snapshot {} B, blobs {blob_bytes} B, ratio {ratio:.3}",
            file.len()
        );
        assert!(
            ratio <= 1.15,
            "{name}: {} B against {blob_bytes} B of blobs: {ratio:.3}",
            file.len()
        );
    }
}

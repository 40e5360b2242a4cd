//! Journals and snapshots written before the format grew user data, guild `meta` and
//! entry-bound position reports still open and give the same state.

use reprise::session::State;
use reprise::{Config, GuildId, Journal};

use crate::common::copy_dir;

/// The journal of `tests/fixtures/<name>/data` copied into a fresh directory, with the seq and
/// state its `expected.json` says the code that wrote it folded.
fn fixture(name: &str) -> (tempfile::TempDir, u64, State) {
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture.join("expected.json")).unwrap())
            .unwrap();
    let seq = expected["seq"].as_u64().unwrap();
    let state: State = serde_json::from_value(expected["state"].clone()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture.join("data"), dir.path());
    (dir, seq, state)
}

/// `tests/fixtures/journal-v1/`: a guild written by the code before issue 19 (segments, a
/// snapshot at seq 60 with log after it, every event type including `state_restored`), and the
/// state that code folded.
#[test]
fn a_journal_written_before_issue_19_opens_with_the_same_state() {
    let (dir, seq, state) = fixture("journal-v1");
    let g = GuildId(42);
    let mut j = Journal::open_read_only(dir.path(), Config::default()).unwrap();
    let recovered = j.state(g).unwrap().clone();
    assert_eq!(recovered.seq, seq);
    assert_eq!(recovered.state, state);
    // The snapshot alone and the log alone (every event decoded) agree too.
    assert_eq!(j.state_at(g, 60).unwrap().seq, 60);
    let events: Vec<_> = j.events(g).unwrap().map(|e| e.unwrap()).collect();
    assert_eq!(events.len() as u64, seq);
    let mut folded = State::default();
    for e in &events {
        reprise::session::apply(&mut folded, &e.event);
    }
    assert_eq!(folded, state);
}

/// `tests/fixtures/journal-raw-blobs/`: a guild written by the code before blob parts (its
/// tracks carry Lavalink blobs of versions 2 and 3, stored raw: a snapshot at seq 2 and log
/// after it), and the state that code folded. The blobs were made by an encoder independent of
/// the crate's (a Python script following lavaplayer's `encodeTrack`), plus one published
/// real blob. The journal opens with the same state; a snapshot the current code writes of it
/// stores every blob as its rest (far smaller) and decodes to the same state, every `encoded`
/// byte for byte.
#[test]
fn a_journal_with_raw_lavalink_blobs_opens_and_its_new_snapshot_takes_them_apart() {
    use reprise::format::{encode_state, snapshot};
    let (dir, seq, state) = fixture("journal-raw-blobs");
    let g = GuildId(42);
    let mut j = Journal::open(dir.path(), Config::default()).unwrap();
    assert_eq!(j.state(g).unwrap().seq, seq);
    assert_eq!(j.state(g).unwrap().state, state);
    assert_eq!(j.state_at(g, 2).unwrap().seq, 2);
    let old_snapshot = std::fs::read(reprise::layout::snapshot_path(dir.path(), g, 2)).unwrap();
    let (old_header, _) = snapshot::decode(&old_snapshot, None).unwrap();
    // Every track's blob is a Lavalink blob the current code takes apart.
    let tracks: Vec<_> = state
        .queue
        .current
        .iter()
        .chain(&state.queue.upcoming)
        .map(|e| &e.track)
        .collect();
    assert_eq!(tracks.len(), 7);
    let config = bincode::config::standard();
    for track in &tracks {
        // An event's form keeps the blob raw; a state's holds its rest in its place: at most
        // 16 bytes here, but for the track imported from Sonora, whose rest holds the source
        // and the artwork URL its fields lack (61 bytes).
        let rest_max = if track.source().is_none() { 64 } else { 16 };
        let raw = bincode::encode_to_vec(*track, config).unwrap();
        assert_eq!(raw[0] & 0x80, 0, "{}", track.title());
        let mut one = State::new(50);
        let without = encode_state(&one).len();
        one.queue.upcoming.push(reprise::session::QueueEntry {
            id: 1,
            track: (*track).clone(),
        });
        let with = encode_state(&one);
        let blob_len = track.encoded_bytes().unwrap().len();
        assert!(
            with.len() - without <= 1 + raw.len() - blob_len + rest_max,
            "{}: {} vs {}",
            track.title(),
            with.len() - without,
            raw.len()
        );
        let (back, _): (State, usize) = bincode::decode_from_slice(&with, config).unwrap();
        assert_eq!(back.queue.upcoming[0].track.encoded(), track.encoded());
        assert_eq!(back, one);
    }
    j.snapshot_now(g).unwrap();
    j.close().unwrap();
    let new_snapshot = std::fs::read(reprise::layout::snapshot_path(dir.path(), g, seq)).unwrap();
    let (header, decoded) = snapshot::decode(&new_snapshot, None).unwrap();
    assert_eq!(decoded, state);
    assert_eq!(header.state_len, encode_state(&state).len() as u64);
    // 4 tracks at seq 2 in the old snapshot, 7 now, and still smaller uncompressed.
    assert!(
        header.state_len < old_header.state_len,
        "{} vs {}",
        header.state_len,
        old_header.state_len
    );
    let mut reopened = Journal::open_read_only(dir.path(), Config::default()).unwrap();
    assert_eq!(reopened.state(g).unwrap().state, state);
}

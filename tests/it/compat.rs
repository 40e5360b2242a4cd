//! Journals and snapshots written before the format grew user data, guild `meta` and
//! entry-bound position reports still open and give the same state.

use reprise::session::State;
use reprise::{Config, GuildId, Journal};

use crate::common::copy_dir;

/// `tests/fixtures/journal-v1/`: a guild written by the code before issue 19 (segments, a
/// snapshot at seq 60 with log after it, every event type including `state_restored`), and the
/// state that code folded.
#[test]
fn a_journal_written_before_issue_19_opens_with_the_same_state() {
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/journal-v1");
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture.join("expected.json")).unwrap())
            .unwrap();
    let seq = expected["seq"].as_u64().unwrap();
    let state: State = serde_json::from_value(expected["state"].clone()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture.join("data"), dir.path());
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

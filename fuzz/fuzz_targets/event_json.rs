//! Arbitrary bytes as one event in its JSON form.
//!
//! Input: 8 bytes of workload seed (little-endian u64; the seeds use 8 ASCII characters), then
//! the JSON text (invalid UTF-8 is replaced, as a lossy reader would).
//!
//! For an event that parses: `to_json` parses back to the same event, the bincode form round
//! trips, and `validate` / `apply` never panic, both on the empty state and on a state built by
//! `Workload::new(seed)` for a few steps. An event `validate` accepts leaves a state that keeps
//! `State::check_invariants`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reprise::format::{decode_event, encode_event};
use reprise::session::{apply, validate, Workload};
use reprise::{Event, State};

fuzz_target!(|data: &[u8]| {
    let split = data.len().min(8);
    let mut seed = [0u8; 8];
    seed[..split].copy_from_slice(&data[..split]);
    let seed = u64::from_le_bytes(seed);
    let text = String::from_utf8_lossy(&data[split..]);
    let Ok(event) = Event::from_json(&text) else {
        return;
    };

    // JSON round trip.
    let json = event.to_json();
    let again = match Event::from_json(&json) {
        Ok(e) => e,
        Err(e) => panic!("to_json output does not parse: {e}\n{json}"),
    };
    #[allow(clippy::eq_op)]
    if event == event {
        assert_eq!(event, again, "JSON round trip changed the event\n{json}");
    }
    assert_eq!(json, again.to_json(), "to_json is not stable");

    // bincode round trip.
    let mut bin = Vec::new();
    encode_event(&event, &mut bin);
    let back = decode_event(&bin).expect("an encoded event decodes");
    assert_eq!(json, back.to_json(), "bincode round trip changed the event");

    // The fold on the empty state.
    check_fold(State::new(50), &event);

    // The fold on a state a simulated bot reached.
    let mut bot = Workload::new(seed);
    let mut state = State::new(50);
    let steps = seed % 41;
    for _ in 0..steps {
        let e = bot.next_event(&state);
        apply(&mut state, &e);
    }
    check_fold(state, &event);
});

fn check_fold(mut state: State, event: &Event) {
    let accepted = validate(&state, event).is_ok();
    apply(&mut state, event);
    if accepted {
        if let Err(e) = state.check_invariants() {
            panic!(
                "a validated event broke an invariant: {e:?}\n{}",
                event.to_json()
            );
        }
    }
}

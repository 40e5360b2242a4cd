//! The pre-generated event stream every appending row of `reprise bench` consumes: one
//! [`Workload`] guild from a fixed seed, generated before any clock starts, whose first
//! [`WARMUP_EVENTS`] events are the untimed warm-up.

use reprise::session::{apply, State, Workload, HISTORY_MAX_DEFAULT};
use reprise::Event;

/// Events every appending row applies, untimed, before its clock starts: the guild has a
/// realistic queue by then (the Sonora peer rewrites a file of realistic size), and file and
/// directory creation is out of the measurement.
pub(super) const WARMUP_EVENTS: usize = 200;
/// Seed of the event stream: every run measures the same events.
const WORKLOAD_SEED: u64 = 0x5EED_BE4C;

/// The pre-generated event stream every appending row consumes: a warm-up prefix, then the
/// timed events. Each event is valid for the state the events before it produce.
pub(super) struct Stream {
    /// All events, the warm-up first.
    events: Vec<Event>,
}

impl Stream {
    /// Plays one [`Workload`] guild for `WARMUP_EVENTS + measured` events.
    pub(super) fn generate(measured: usize) -> Stream {
        let mut workload = Workload::new(WORKLOAD_SEED);
        let mut state = State::new(HISTORY_MAX_DEFAULT);
        let events = (0..WARMUP_EVENTS + measured)
            .map(|_| {
                let event = workload.next_event(&state);
                apply(&mut state, &event);
                event
            })
            .collect();
        Stream { events }
    }

    /// The untimed warm-up prefix.
    pub(super) fn warmup(&self) -> &[Event] {
        self.events.get(..WARMUP_EVENTS).unwrap_or(&self.events)
    }

    /// The first `n` timed events (fewer if the stream is shorter).
    pub(super) fn measured(&self, n: usize) -> &[Event] {
        let rest = self.events.get(WARMUP_EVENTS..).unwrap_or(&[]);
        rest.get(..n).unwrap_or(rest)
    }

    /// The first `n` events, warm-up included.
    pub(super) fn prefix(&self, n: usize) -> &[Event] {
        self.events.get(..n).unwrap_or(&self.events)
    }
}

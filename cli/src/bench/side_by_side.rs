//! The durable rows of `reprise bench`, measured side by side. Every row acknowledged after
//! a flush to stable storage is paced by the disk's flush latency, and a virtual disk's flush
//! latency drifts by tens of percent from one minute to the next (DESIGN.md, "Measuring on a
//! drifting disk"): measured one after the other, a row that happened to run in a slow minute
//! would look slower than one that ran in a fast minute, and a ratio between two rows (`vs
//! floor`, `vs reprise`, the targets of issue 15) would measure the disk's drift as much as the
//! rows.
//!
//! So these rows are measured in [`Plan::rounds`](super::Plan) rounds: every store is opened
//! and warmed up first (untimed), then each round runs every row over the next slice of its
//! timed events, the order rotating from one round to the next, and each row's samples are the
//! sum of its slices (latencies, operations, and wall time: `ops_per_s` is its events over the
//! time it spent in its own slices). A burst of load or a slow minute of the disk then falls on
//! every row alike. The rows: the single-stream ones ([`Sequential`]: both `fdatasync` floors,
//! `reprise durable 1 guild`, `sqlite WAL FULL`, `sonora JSON`, `redb 1 guild`, `fjall 1
//! guild`) and the 64-guild ones (`reprise durable 64 guilds`, `redb 64 guilds`, `fjall 64
//! guilds`: each slice is every guild's next events, written concurrently).

use std::time::Duration;

use reprise::Event;

use super::row::{measure, Guarantee, Row, Samples};
use super::stream::Stream;
use crate::Failure;

/// One durable row measured side by side with the others: a store opened and warmed up, then
/// timed slice by slice.
pub(super) trait SideBySide {
    /// The contract's row name.
    fn name(&self) -> &'static str;
    /// What the row's acknowledgement promises.
    fn guarantee(&self) -> Guarantee {
        Guarantee::PowerLoss
    }
    /// Measures the row over `events` (its next slice), stopping early once `budget` of wall
    /// time has passed.
    ///
    /// # Errors
    /// The store's failure (exit code 4).
    fn run(&mut self, events: &[Event], budget: Duration) -> Result<Samples, Failure>;
    /// After the timed slices: closes the store and adds the row's extra fields to `row`.
    ///
    /// # Errors
    /// The store's failure.
    fn finish(self: Box<Self>, row: &mut Row) -> Result<(), Failure> {
        let _ = row;
        Ok(())
    }
}

/// A single-stream row: one durable write per event, acknowledged when
/// [`put`](Sequential::put) returns; each latency is one `put`.
pub(super) trait Sequential {
    /// The contract's row name.
    fn name(&self) -> &'static str;
    /// What the row's acknowledgement promises.
    fn guarantee(&self) -> Guarantee {
        Guarantee::PowerLoss
    }
    /// Stores `event` durably.
    ///
    /// # Errors
    /// The store's failure (exit code 4).
    fn put(&mut self, event: &Event) -> Result<(), Failure>;
    /// The store after one untimed [`put`](Sequential::put) per warm-up event of `stream`.
    ///
    /// # Errors
    /// The store's failure.
    fn warmed_up(mut self, stream: &Stream) -> Result<Self, Failure>
    where
        Self: Sized,
    {
        for event in stream.warmup() {
            self.put(event)?;
        }
        Ok(self)
    }
    /// As [`SideBySide::finish`].
    ///
    /// # Errors
    /// The store's failure.
    fn finish(self: Box<Self>, row: &mut Row) -> Result<(), Failure> {
        let _ = row;
        Ok(())
    }
}

impl<T: Sequential> SideBySide for T {
    fn name(&self) -> &'static str {
        Sequential::name(self)
    }

    fn guarantee(&self) -> Guarantee {
        Sequential::guarantee(self)
    }

    fn run(&mut self, events: &[Event], budget: Duration) -> Result<Samples, Failure> {
        measure(events, budget, |event| self.put(event))
    }

    fn finish(self: Box<Self>, row: &mut Row) -> Result<(), Failure> {
        Sequential::finish(self, row)
    }
}

/// One store to measure side by side: the store, its timed events, and the number of slices
/// they are cut into (at most the number of rounds; fewer for a row whose slice must be long
/// enough to reach its steady state, such as 64 guilds ramping up to full groups).
pub(super) struct Entry<'a> {
    pub(super) store: Box<dyn SideBySide>,
    pub(super) events: &'a [Event],
    pub(super) slices: usize,
}

/// Measures `entries` side by side in `rounds` rounds (see the module docs). Each store's
/// events are cut into its `slices` equal slices, run in order, one per round at most, spread
/// evenly over the rounds: slice `j` of a store with `s` slices runs in round
/// `ceil((j + 1) * rounds / s) - 1`. In each round the stores due run in [`round_order`]. A
/// store stops once the wall time of its slices reaches `budget` (a slow disk shortens the
/// run). Returns one row per store, in the order given.
///
/// # Errors
/// The first store failure.
pub(super) fn measure_side_by_side(
    entries: Vec<Entry<'_>>,
    rounds: usize,
    budget: Duration,
) -> Result<Vec<Row>, Failure> {
    let rounds = rounds.max(1);
    let mut stores: Vec<(Entry<'_>, usize, Samples)> = entries
        .into_iter()
        .map(|mut entry| {
            entry.slices = entry.slices.clamp(1, rounds);
            let capacity = entry.events.len();
            (entry, 0, Samples::with_capacity(capacity))
        })
        .collect();
    let count = stores.len();
    for round in 0..rounds {
        for k in round_order(round, count) {
            let (entry, done, samples) = &mut stores[k];
            let slices = entry.slices;
            // Slices due by the end of this round.
            if (round + 1) * slices / rounds <= *done {
                continue;
            }
            let len = entry.events.len();
            let slice = &entry.events[len * *done / slices..len * (*done + 1) / slices];
            *done += 1;
            let Some(left) = budget.checked_sub(samples.wall).filter(|d| !d.is_zero()) else {
                continue;
            };
            if slice.is_empty() {
                continue;
            }
            samples.merge(entry.store.run(slice, left)?);
        }
    }
    stores
        .into_iter()
        .map(|(entry, _, samples)| {
            let store = entry.store;
            let (ops, wall) = (samples.ops, samples.wall);
            let mut row = Row::new(store.name(), store.guarantee(), samples.finish(ops, wall));
            store.finish(&mut row)?;
            Ok(row)
        })
        .collect()
}

/// The order the `count` stores run in during round `round`: the rows of a balanced Latin
/// square (Williams' design), so that over `count` rounds (`2 * count` for an odd count) every
/// store runs first once and runs right after every other store equally often. A row may be
/// helped or hindered by what ran just before it (a disk still writing back another store's
/// data, CPUs kept awake by another store's threads: measured, DESIGN.md "Measuring on a
/// drifting disk"); no row always follows the same one.
fn round_order(round: usize, count: usize) -> Vec<usize> {
    if count == 0 {
        return Vec::new();
    }
    // 0, 1, n-1, 2, n-2, 3, ...
    let first = (0..count).map(|j| {
        if j % 2 == 1 {
            j.div_ceil(2)
        } else {
            (count - j / 2) % count
        }
    });
    let shift = round % count;
    let mut order: Vec<usize> = first.map(|k| (k + shift) % count).collect();
    if count % 2 == 1 && (round / count) % 2 == 1 {
        order.reverse();
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store that records the order of its writes and optionally sleeps per write.
    struct Recording {
        name: &'static str,
        log: std::rc::Rc<std::cell::RefCell<Vec<(&'static str, usize)>>>,
        seen: usize,
    }

    impl Sequential for Recording {
        fn name(&self) -> &'static str {
            self.name
        }
        fn put(&mut self, _event: &Event) -> Result<(), Failure> {
            self.log.borrow_mut().push((self.name, self.seen));
            self.seen += 1;
            Ok(())
        }
        fn finish(self: Box<Self>, row: &mut Row) -> Result<(), Failure> {
            row.extra.insert("seen".into(), self.seen.into());
            Ok(())
        }
    }

    fn events(n: usize) -> Vec<Event> {
        (0..n)
            .map(|i| {
                Event::from_json(&format!(r#"{{"type":"volume_set","volume":{}}}"#, i % 100))
                    .unwrap()
            })
            .collect()
    }

    #[test]
    fn every_store_sees_every_event_once_in_rotating_rounds() {
        let log = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let stores: Vec<Box<dyn SideBySide>> = ["a", "b", "c"]
            .into_iter()
            .map(|name| {
                Box::new(Recording {
                    name,
                    log: log.clone(),
                    seen: 0,
                }) as Box<dyn SideBySide>
            })
            .collect();
        let events = events(10);
        let entries = stores
            .into_iter()
            .map(|store| Entry {
                store,
                events: &events,
                slices: 3,
            })
            .collect();
        let rows = measure_side_by_side(entries, 3, Duration::from_secs(60)).unwrap();
        assert_eq!(
            rows.iter().map(|r| r.name).collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
        for row in &rows {
            assert_eq!(row.samples.ops, 10, "{}", row.name);
            assert_eq!(row.samples.latencies_ns.len(), 10);
            assert!(row.samples.latencies_ns.is_sorted());
            assert_eq!(row.extra["seen"], 10);
        }
        // Slices of 3, 3 and 4 events, every store once per round, in round_order.
        let runs: Vec<(&str, usize)> = log
            .borrow()
            .chunk_by(|x, y| x.0 == y.0)
            .map(|run| (run[0].0, run.len()))
            .collect();
        let names = ["a", "b", "c"];
        let expected: Vec<(&str, usize)> = (0..3)
            .flat_map(|round| {
                round_order(round, 3)
                    .into_iter()
                    .map(move |k| (names[k], if round == 2 { 4 } else { 3 }))
            })
            .collect();
        assert_eq!(runs.len(), 9, "{runs:?}");
        // Two stores running back to back at a round's edge merge into one run of the log.
        let merged: Vec<(&str, usize)> = expected
            .chunk_by(|x, y| x.0 == y.0)
            .map(|run| (run[0].0, run.iter().map(|r| r.1).sum()))
            .collect();
        assert_eq!(runs, merged);
    }

    #[test]
    fn a_store_with_fewer_slices_runs_them_spread_over_the_rounds() {
        let log = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let store = |name| -> Box<dyn SideBySide> {
            Box::new(Recording {
                name,
                log: log.clone(),
                seen: 0,
            })
        };
        let events = events(12);
        let entries = vec![
            Entry {
                store: store("every"),
                events: &events,
                slices: 8,
            },
            Entry {
                store: store("some"),
                events: &events[..6],
                slices: 3,
            },
        ];
        let rows = measure_side_by_side(entries, 8, Duration::from_secs(60)).unwrap();
        assert_eq!(rows[0].samples.ops, 12);
        assert_eq!(rows[1].samples.ops, 6);
        // "some" runs its 3 slices (2 events each) in rounds ceil((j + 1) * 8 / 3) - 1 = 2, 5
        // and 7; "every" one slice (12 / 8 events: 1 or 2) in every round.
        let mut expected = Vec::new();
        let mut every_done = 0;
        for round in 0..8 {
            for k in round_order(round, 2) {
                match k {
                    0 => {
                        let n = 12 * (round + 1) / 8 - 12 * round / 8;
                        expected.extend((every_done..every_done + n).map(|i| ("every", i)));
                        every_done += n;
                    }
                    _ => {
                        if let Some(j) = [2, 5, 7].iter().position(|r| *r == round) {
                            expected.extend([("some", 2 * j), ("some", 2 * j + 1)]);
                        }
                    }
                }
            }
        }
        assert_eq!(*log.borrow(), expected);
    }

    #[test]
    fn round_orders_are_balanced_latin_squares() {
        for count in 1..=12 {
            let rounds = if count % 2 == 0 { count } else { 2 * count };
            let mut first = vec![0; count];
            let mut follows = vec![vec![0; count]; count];
            for round in 0..rounds {
                let order = round_order(round, count);
                let mut sorted = order.clone();
                sorted.sort_unstable();
                assert_eq!(sorted, (0..count).collect::<Vec<_>>(), "{count}: {order:?}");
                first[order[0]] += 1;
                for pair in order.windows(2) {
                    follows[pair[0]][pair[1]] += 1;
                }
            }
            assert!(
                first.iter().all(|n| *n == rounds / count),
                "{count}: {first:?}"
            );
            for (a, row) in follows.iter().enumerate() {
                for (b, n) in row.iter().enumerate() {
                    let want = if a == b { 0 } else { rounds / count };
                    assert_eq!(*n, want, "{count}: {a} before {b}");
                }
            }
        }
    }

    #[test]
    fn a_store_over_its_budget_stops_and_the_others_go_on() {
        struct Slow(usize);
        impl Sequential for Slow {
            fn name(&self) -> &'static str {
                "slow"
            }
            fn put(&mut self, _event: &Event) -> Result<(), Failure> {
                self.0 += 1;
                // Busy for 2 ms of wall time (no sleep: the measured time is what counts).
                let start = std::time::Instant::now();
                while start.elapsed() < Duration::from_millis(2) {}
                Ok(())
            }
        }
        let log = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let fast = Box::new(Recording {
            name: "fast",
            log,
            seen: 0,
        });
        let events = events(40);
        let rows = measure_side_by_side(
            vec![
                Entry {
                    store: Box::new(Slow(0)),
                    events: &events,
                    slices: 4,
                },
                Entry {
                    store: fast,
                    events: &events,
                    slices: 4,
                },
            ],
            4,
            Duration::from_millis(5),
        )
        .unwrap();
        // The slow store passes its budget inside its first slice (by its third write of at
        // least 2 ms, sooner on a busy machine), then runs no more; the fast one writes every
        // event.
        assert!(
            (1..=3).contains(&rows[0].samples.ops),
            "{:?}",
            rows[0].samples
        );
        assert!(rows[0].samples.wall >= Duration::from_millis(5));
        assert_eq!(rows[1].samples.ops, 40);
    }
}

//! Recovery as a pure decision over what was found on disk. No I/O happens here.
//!
//! The journal scans a guild's files (see [`crate::format::segment::scan`] for the per-file
//! rules: a torn tail of the active segment is cut off, anything else damaged ends a run of held
//! events) and describes the result as [`Found`]: which snapshots decoded, and which runs of
//! consecutive events the log holds. [`decide`] then picks how to rebuild the state at a target
//! sequence number `t` (the newest, `head`, unless a point-in-time read asks for an older one):
//!
//! | # | a base `b` (a valid snapshot with `b <= t`, or the empty state `b = 0`) whose tail `b+1..=t` the log holds | target | decision |
//! |---|---|---|---|
//! | 1 | yes: take the largest such `b` | any | [`Decision::Replay`] from `b` through `t` |
//! | 2 | no | `t < head` (a past state) | [`Decision::Compacted`]: say the oldest readable seq |
//! | 3 | no | `t = head` (the current state) | [`Decision::Broken`]: say the first missing seq |
//!
//! `head` is the largest sequence number found anywhere: the end of the last run, or a valid
//! snapshot beyond it (a snapshot is only written once the log up to it is durable, so a
//! snapshot past the log means the log after it was lost and nothing after it was acknowledged
//! durably — the snapshot is still a state of a prefix). Row 1 with the largest base is what
//! makes a damaged newest snapshot fall back to the previous one "plus a longer tail when the log
//! still holds it". The exhaustive test below enumerates every small world and checks that
//! exactly one row applies and that its decision is right.

use crate::ids::Seq;

/// A snapshot file found in a guild directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotFound {
    /// Its sequence number.
    pub seq: Seq,
    /// Whether it decoded and checked out.
    pub valid: bool,
}

/// Events `first..=last` are held consecutively by the log (checksums and sequence numbers
/// verified).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    /// First sequence number held.
    pub first: Seq,
    /// Last sequence number held (`>= first`).
    pub last: Seq,
}

/// What recovery found on disk for one guild.
#[derive(Clone, Copy, Debug)]
pub struct Found<'a> {
    /// Snapshot files, in any order.
    pub snapshots: &'a [SnapshotFound],
    /// Runs of held events, in any order.
    pub runs: &'a [Run],
    /// Events known to exist from file names alone: a segment named `n` exists only once
    /// events `1..n` were appended, so the newest state is at least `n - 1`.
    pub claimed: Seq,
}

/// How to rebuild a state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Load the snapshot at `base` (or start empty when `base == 0`) and replay
    /// `base+1..=target` from the log.
    Replay {
        /// Sequence number of the snapshot to load; 0 means the empty state.
        base: Seq,
        /// The sequence number of the state produced.
        target: Seq,
    },
    /// The target is older than anything still held (row 2).
    Compacted {
        /// The oldest sequence number whose state can be rebuilt (`None`: none can).
        oldest: Option<Seq>,
    },
    /// The newest state cannot be rebuilt exactly (row 3).
    Broken {
        /// The first sequence number the best base would need but the log does not hold.
        missing: Seq,
    },
}

impl Found<'_> {
    /// The largest sequence number found: the newest state recovery can aim for.
    pub fn head(&self) -> Seq {
        let log = self.runs.iter().map(|r| r.last).max().unwrap_or(0);
        let snap = self
            .snapshots
            .iter()
            .filter(|s| s.valid)
            .map(|s| s.seq)
            .max()
            .unwrap_or(0);
        log.max(snap).max(self.claimed)
    }

    /// Whether the log holds every event in `from..=to` (trivially true when `from > to`).
    pub fn holds(&self, from: Seq, to: Seq) -> bool {
        from > to || self.runs.iter().any(|r| r.first <= from && to <= r.last)
    }

    fn bases_descending(&self, at_most: Seq) -> Vec<Seq> {
        let mut bases: Vec<Seq> = self
            .snapshots
            .iter()
            .filter(|s| s.valid && s.seq <= at_most)
            .map(|s| s.seq)
            .collect();
        bases.push(0);
        bases.sort_unstable_by(|a, b| b.cmp(a));
        bases.dedup();
        bases
    }
}

/// Decides how to rebuild the state at `target` (the newest state when `None`). A target past
/// [`Found::head`] is the caller's error to report; it is treated as `head` here.
pub fn decide(found: &Found<'_>, target: Option<Seq>) -> Decision {
    let head = found.head();
    let t = target.unwrap_or(head).min(head);
    let bases = found.bases_descending(t);
    if let Some(base) = bases.iter().copied().find(|b| found.holds(b + 1, t)) {
        return Decision::Replay { base, target: t };
    }
    if t < head {
        let oldest = found
            .bases_descending(head)
            .into_iter()
            .filter(|b| found.holds(b + 1, head))
            .min();
        return Decision::Compacted { oldest };
    }
    // Row 3: name the first event the largest base is missing.
    let best = bases.first().copied().unwrap_or(0);
    let missing = found
        .runs
        .iter()
        .filter(|r| r.first <= best + 1 && best < r.last)
        .map(|r| r.last + 1)
        .max()
        .unwrap_or(best + 1);
    Decision::Broken { missing }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every world with events 1..=H (H <= 5): each event is held or not (runs are the maximal
    /// held stretches), each seq 1..=H has no snapshot, a valid one or a corrupt one.
    #[test]
    fn decision_table_is_exhaustively_right() {
        let mut worlds = 0u64;
        for h in 0..=5u64 {
            for held_mask in 0..(1u32 << h) {
                for snap_code in 0..3u32.pow(h as u32) {
                    for claimed in 0..=h {
                        worlds += 1;
                        let held = |s: Seq| s >= 1 && s <= h && held_mask & (1 << (s - 1)) != 0;
                        let mut runs = Vec::new();
                        let mut s = 1;
                        while s <= h {
                            if held(s) {
                                let first = s;
                                while s < h && held(s + 1) {
                                    s += 1;
                                }
                                runs.push(Run { first, last: s });
                            }
                            s += 1;
                        }
                        let mut snapshots = Vec::new();
                        let mut code = snap_code;
                        for seq in 1..=h {
                            match code % 3 {
                                1 => snapshots.push(SnapshotFound { seq, valid: true }),
                                2 => snapshots.push(SnapshotFound { seq, valid: false }),
                                _ => {}
                            }
                            code /= 3;
                        }
                        let found = Found {
                            snapshots: &snapshots,
                            runs: &runs,
                            claimed,
                        };
                        let head = found.head();
                        for target in 0..=head {
                            check(&found, target, head, held);
                        }
                    }
                }
            }
        }
        assert!(worlds > 10_000);
    }

    fn check(found: &Found<'_>, t: Seq, head: Seq, held: impl Fn(Seq) -> bool) {
        let valid_base = |b: Seq| b == 0 || found.snapshots.iter().any(|s| s.valid && s.seq == b);
        let feasible = |b: Seq| b <= t && valid_base(b) && (b + 1..=t).all(&held);
        let best = (0..=t).rev().find(|b| feasible(*b));
        let target = if t == head { None } else { Some(t) };
        match (decide(found, target), best) {
            (Decision::Replay { base, target }, Some(b)) => {
                assert_eq!((base, target), (b, t), "{found:?} t={t}");
            }
            (Decision::Compacted { oldest }, None) => {
                assert!(t < head);
                if let Some(o) = oldest {
                    assert!(o > t && valid_base(o) && (o + 1..=head).all(&held));
                }
            }
            (Decision::Broken { missing }, None) => {
                assert_eq!(t, head);
                assert!(
                    missing >= 1 && missing <= head && !held(missing),
                    "{found:?}"
                );
            }
            (d, b) => panic!("{found:?} t={t}: decided {d:?}, best base {b:?}"),
        }
    }
}

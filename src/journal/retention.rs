//! The retention rule (pure) for snapshots and log segments, and its inputs: one rule for both call
//! sites, the journal's own retention after each snapshot ([`Config::snapshots_retained`],
//! [`Config::snapshot_age_max`]) and [`Journal::cleanup`](super::Journal::cleanup) on demand
//! (`reprise cleanup`, with a policy given by the caller), both on snapshots read back and
//! verified: only snapshots that decode count, so a damaged snapshot is never what the rest is
//! removed for. The rule itself is documented on [`retention_plan`].

use std::path::PathBuf;
use std::time::Duration;

use crate::config::{Config, SNAPSHOTS_RETAINED_DEFAULT};
use crate::error::{Error, Result};
use crate::format::snapshot;
use crate::ids::{GuildId, Seq};
use crate::recovery::{self, Decision, Found, Run, SnapshotFound};

/// How many snapshots (and how old) [`Journal::cleanup`](super::Journal::cleanup) keeps per guild.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Valid snapshots kept per guild (the newest ones); at least 1.
    pub keep: u32,
    /// Valid snapshots older than this are removed, except the newest valid one.
    pub age_max: Option<Duration>,
}

impl Default for RetentionPolicy {
    /// The journal's default: [`SNAPSHOTS_RETAINED_DEFAULT`] snapshots, no age limit.
    fn default() -> Self {
        RetentionPolicy {
            keep: SNAPSHOTS_RETAINED_DEFAULT,
            age_max: None,
        }
    }
}

impl RetentionPolicy {
    /// The policy a [`Config`] applies after each snapshot.
    pub fn from_config(config: &Config) -> RetentionPolicy {
        RetentionPolicy {
            keep: config.snapshots_retained.max(1),
            age_max: config.snapshot_age_max,
        }
    }
}

/// A snapshot file as maintenance sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotStat {
    /// The file.
    pub path: PathBuf,
    /// Its sequence number.
    pub seq: Seq,
    /// Its size.
    pub bytes: u64,
    /// When it was written (from its header; `None` when the header is unreadable).
    pub created_unix_ms: Option<u64>,
    /// Whether it decodes and belongs to this guild and seq (what recovery would accept).
    pub valid: bool,
}

impl SnapshotStat {
    /// Its age at `now_unix_ms` (0 for a snapshot from the future; `None` when unknown).
    pub fn age_ms(&self, now_unix_ms: u64) -> Option<u64> {
        self.created_unix_ms.map(|c| now_unix_ms.saturating_sub(c))
    }
}

/// What [`retention_plan`] removes from one guild.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetentionPlan {
    /// Sequence numbers of the snapshots to remove.
    pub snapshots: Vec<Seq>,
    /// First sequence numbers of the segments to remove.
    pub segments: Vec<Seq>,
}

impl RetentionPlan {
    /// Whether nothing is to be removed.
    pub fn is_empty(&self) -> bool {
        self.snapshots.is_empty() && self.segments.is_empty()
    }
}

/// A log segment as the retention rule sees it: the events it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentSpan {
    /// The first sequence number (its file name).
    pub first_seq: Seq,
    /// The last sequence number it holds validly (`first_seq - 1` when none).
    pub last_seq: Seq,
}

/// The retention rule, on one guild, without the final safety check (see
/// [`retention_decision`] for the rule both call sites apply): `snapshots` sorted by seq,
/// `segments` sorted by first seq, `now_unix_ms` for the age limit. Pure.
///
/// # The rule
///
/// Of a guild's valid snapshots (oldest first), keep the newest `keep` (at least one), and of
/// those drop the ones older than `age_max` — but never the newest valid one. While a guild has
/// fewer than `keep` valid snapshots (and the age limit drops none of them), the empty state at
/// seq 0 counts as one of the kept bases and nothing is removed; at exactly `keep` the log
/// before the oldest kept one goes. A damaged snapshot never counts. Then every snapshot (valid or
/// damaged) older than the oldest kept one is removed, and every log segment whose events all
/// precede that snapshot's successor (the next segment starts at or before `oldest_kept + 1`); the
/// newest segment is never removed. Finally [`retention_decision`] checks the plan against
/// [`recovery::decide`]: a guild whose newest state would not be rebuilt exactly the same way from
/// what remains, or cannot be rebuilt now, is left untouched and reported.
pub fn retention_plan(
    snapshots: &[SnapshotStat],
    segments: &[SegmentSpan],
    policy: &RetentionPolicy,
    now_unix_ms: u64,
) -> RetentionPlan {
    let valid: Vec<&SnapshotStat> = snapshots.iter().filter(|s| s.valid).collect();
    let keep = policy.keep.max(1) as usize;
    if valid.is_empty() {
        return RetentionPlan::default();
    }
    // Fewer valid snapshots than `keep`: the empty state at seq 0 is one of the kept bases.
    let empty_state_kept = valid.len() < keep;
    let start = valid.len().saturating_sub(keep);
    let mut cut = start;
    if let Some(age) = policy.age_max {
        let age_ms = u64::try_from(age.as_millis()).unwrap_or(u64::MAX);
        let limit = now_unix_ms.saturating_sub(age_ms);
        // An unknown creation time never counts as old; the newest valid one always stays.
        while cut + 1 < valid.len() && valid[cut].created_unix_ms.is_some_and(|c| c < limit) {
            cut += 1;
        }
    }
    if empty_state_kept && cut == start {
        return RetentionPlan::default();
    }
    let oldest_kept = valid[cut].seq;
    let snapshots = snapshots
        .iter()
        .filter(|s| s.seq < oldest_kept)
        .map(|s| s.seq)
        .collect();
    let mut drop = 0;
    while drop + 1 < segments.len() && segments[drop + 1].first_seq <= oldest_kept + 1 {
        drop += 1;
    }
    RetentionPlan {
        snapshots,
        segments: segments[..drop].iter().map(|s| s.first_seq).collect(),
    }
}

/// The retention rule both call sites apply (the journal after each snapshot,
/// [`Journal::cleanup`](super::Journal::cleanup) on demand): [`retention_plan`], then checked
/// against recovery — `Err` (nothing is removed) when the guild's newest state cannot be rebuilt
/// now, or would not be rebuilt the same way from what the plan leaves. `snapshots[i].valid` must
/// come from reading the file back and verifying it. Pure.
///
/// # Errors
/// Why nothing may be removed (for a report).
pub fn retention_decision(
    snapshots: &[SnapshotStat],
    segments: &[SegmentSpan],
    policy: &RetentionPolicy,
    now_unix_ms: u64,
) -> std::result::Result<RetentionPlan, String> {
    let plan = retention_plan(snapshots, segments, policy, now_unix_ms);
    checked_plan(snapshots, segments, plan)
}

/// Reads the snapshot of `guild` at `seq` back and verifies it as recovery would (decodes,
/// checksums and authenticates, belongs to this guild and seq), with its header time.
///
/// # Errors
/// [`Error::Io`] when the file cannot be read (an oversized file counts as damaged).
pub(crate) fn read_snapshot_stat(
    storage: &dyn crate::storage::Storage,
    path: &std::path::Path,
    guild: GuildId,
    seq: Seq,
    keys: Option<&crate::crypto::Keyring>,
) -> Result<SnapshotStat> {
    let (created_unix_ms, valid, bytes) = match storage.read(path, snapshot::FILE_LEN_MAX) {
        Ok(bytes) => {
            let created = snapshot::decode_header(&bytes)
                .ok()
                .map(|h| h.created_unix_ms);
            let valid = snapshot::decode(&bytes, keys)
                .is_ok_and(|(h, _)| h.guild == guild.0 && h.seq == seq);
            (created, valid, bytes.len() as u64)
        }
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
            (None, false, storage.file_len(path).unwrap_or(0))
        }
        Err(e) => {
            return Err(Error::Io {
                op: "read",
                path: path.to_path_buf(),
                source: e,
            })
        }
    };
    Ok(SnapshotStat {
        path: path.to_path_buf(),
        seq,
        bytes,
        created_unix_ms,
        valid,
    })
}

/// The recovery decision for the newest state of a guild holding these files.
fn decide_newest(snapshots: &[SnapshotStat], segments: &[SegmentSpan]) -> Decision {
    let found_snapshots: Vec<SnapshotFound> = snapshots
        .iter()
        .map(|s| SnapshotFound {
            seq: s.seq,
            valid: s.valid,
        })
        .collect();
    let mut runs: Vec<Run> = Vec::new();
    for seg in segments.iter().filter(|s| s.last_seq >= s.first_seq) {
        match runs.last_mut() {
            Some(run) if run.last + 1 == seg.first_seq => run.last = seg.last_seq,
            _ => runs.push(Run {
                first: seg.first_seq,
                last: seg.last_seq,
            }),
        }
    }
    let claimed = segments
        .iter()
        .map(|s| s.first_seq.saturating_sub(1))
        .max()
        .unwrap_or(0);
    recovery::decide(
        &Found {
            snapshots: &found_snapshots,
            runs: &runs,
            claimed,
        },
        None,
    )
}

/// `plan` unless removing it would change how (or whether) the newest state is rebuilt.
fn checked_plan(
    snapshots: &[SnapshotStat],
    segments: &[SegmentSpan],
    plan: RetentionPlan,
) -> std::result::Result<RetentionPlan, String> {
    let before = decide_newest(snapshots, segments);
    let Decision::Replay { target, .. } = before else {
        return Err(format!(
            "its newest state cannot be rebuilt now ({before:?}); run `reprise verify`"
        ));
    };
    if plan.is_empty() {
        return Ok(plan);
    }
    let kept_snapshots: Vec<SnapshotStat> = snapshots
        .iter()
        .filter(|s| !plan.snapshots.contains(&s.seq))
        .cloned()
        .collect();
    let kept_segments: Vec<SegmentSpan> = segments
        .iter()
        .filter(|s| !plan.segments.contains(&s.first_seq))
        .copied()
        .collect();
    match decide_newest(&kept_snapshots, &kept_segments) {
        Decision::Replay { target: after, .. } if after == target => Ok(plan),
        after => Err(format!(
            "the retention plan would leave the newest state (seq {target}) unrebuildable ({after:?})"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(seq: Seq, created: u64, valid: bool) -> SnapshotStat {
        SnapshotStat {
            path: PathBuf::from(format!("{seq}.snap")),
            seq,
            bytes: 100,
            created_unix_ms: Some(created),
            valid,
        }
    }

    fn seg(first_seq: Seq, last_seq: Seq) -> SegmentSpan {
        SegmentSpan {
            first_seq,
            last_seq,
        }
    }

    const DAY: u64 = 86_400_000;

    #[test]
    fn retention_keeps_the_newest_valid_snapshots_and_the_log_after_the_oldest_kept() {
        let snapshots = [snap(10, 1, true), snap(20, 2, true), snap(30, 3, true)];
        let segments = [seg(1, 10), seg(11, 20), seg(21, 30), seg(31, 35)];
        let keep2 = RetentionPolicy {
            keep: 2,
            age_max: None,
        };
        let plan = retention_plan(&snapshots, &segments, &keep2, 10);
        assert_eq!(plan.snapshots, vec![10]);
        assert_eq!(plan.segments, vec![1, 11]);
        let keep1 = RetentionPolicy {
            keep: 1,
            age_max: None,
        };
        let plan = retention_plan(&snapshots, &segments, &keep1, 10);
        assert_eq!(plan.snapshots, vec![10, 20]);
        assert_eq!(plan.segments, vec![1, 11, 21]);
        // Fewer valid snapshots than `keep`: the empty state is a kept base, nothing goes.
        let keep5 = RetentionPolicy {
            keep: 5,
            age_max: None,
        };
        assert!(retention_plan(&snapshots, &segments, &keep5, 10).is_empty());
        // keep 0 means 1.
        let keep0 = RetentionPolicy {
            keep: 0,
            age_max: None,
        };
        assert_eq!(retention_plan(&snapshots, &segments, &keep0, 10), plan);
    }

    #[test]
    fn the_age_limit_never_removes_the_newest_valid_snapshot() {
        let snapshots = [
            snap(10, 0, true),
            snap(20, DAY, true),
            snap(30, 2 * DAY, true),
        ];
        let segments = [seg(1, 10), seg(11, 20), seg(21, 30), seg(31, 35)];
        let week = RetentionPolicy {
            keep: 100,
            age_max: Some(Duration::from_millis(7 * DAY)),
        };
        assert!(retention_plan(&snapshots, &segments, &week, 3 * DAY).is_empty());
        let plan = retention_plan(&snapshots, &segments, &week, 100 * DAY);
        assert_eq!(plan.snapshots, vec![10, 20]);
        assert_eq!(plan.segments, vec![1, 11, 21]);
        let day_and_a_half = RetentionPolicy {
            keep: 100,
            age_max: Some(Duration::from_millis(DAY + DAY / 2)),
        };
        let plan = retention_plan(&snapshots, &segments, &day_and_a_half, 3 * DAY);
        assert_eq!(plan.snapshots, vec![10, 20]);
    }

    #[test]
    fn damaged_snapshots_do_not_count() {
        // The newest snapshot is damaged: the newest valid one (20) and the log after it stay.
        let snapshots = [snap(10, 1, true), snap(20, 2, true), snap(30, 3, false)];
        let segments = [seg(1, 10), seg(11, 20), seg(21, 30), seg(31, 35)];
        let keep1 = RetentionPolicy {
            keep: 1,
            age_max: None,
        };
        let plan = retention_plan(&snapshots, &segments, &keep1, 10);
        assert_eq!(plan.snapshots, vec![10]);
        assert_eq!(plan.segments, vec![1, 11]);
        assert!(checked_plan(&snapshots, &segments, plan).is_ok());
        // No valid snapshot: nothing.
        let broken = [snap(10, 1, false)];
        assert!(retention_plan(&broken, &segments, &keep1, 10).is_empty());
    }

    #[test]
    fn a_plan_that_breaks_the_newest_state_is_refused() {
        // The log after snapshot 20 has a gap: the newest state (35) is rebuilt from 0 through
        // the complete log; removing the log before 20 would lose it.
        let snapshots = [snap(10, 1, true), snap(20, 2, true)];
        let segments = [seg(1, 10), seg(11, 20), seg(21, 25), seg(27, 35)];
        let plan = RetentionPlan {
            snapshots: vec![10],
            segments: vec![1, 11],
        };
        assert!(checked_plan(&snapshots, &segments, plan).is_err());
    }

    /// Whether the newest state (`head`) can be rebuilt from `snapshots` (valid ones) and the
    /// contiguous log `segments`: from a valid snapshot or the empty state, replaying the log.
    fn rebuildable(snapshots: &[SnapshotStat], segments: &[SegmentSpan], head: Seq) -> bool {
        let log_first = segments.first().map_or(head + 1, |s| s.first_seq);
        let log_last = segments.iter().map(|s| s.last_seq).max().unwrap_or(0);
        let bases = snapshots
            .iter()
            .filter(|s| s.valid)
            .map(|s| s.seq)
            .chain(std::iter::once(0));
        let covered = |b: Seq| b == head || (log_first <= b + 1 && log_last >= head);
        bases.into_iter().any(covered)
    }

    /// Every composition of `first..=last` into consecutive segments (`last < first`: one empty
    /// segment), each optionally followed by an empty active segment.
    fn layouts(first: Seq, last: Seq) -> Vec<Vec<SegmentSpan>> {
        let mut out = Vec::new();
        if last < first {
            out.push(vec![seg(first, first - 1)]);
            return out;
        }
        let cuts = (last - first) as u32;
        for mask in 0u32..(1 << cuts) {
            let mut segs = Vec::new();
            let mut start = first;
            for i in 0..cuts {
                if mask & (1 << i) != 0 {
                    let end = first + u64::from(i);
                    segs.push(seg(start, end));
                    start = end + 1;
                }
            }
            segs.push(seg(start, last));
            out.push(segs.clone());
            segs.push(seg(last + 1, last));
            out.push(segs);
        }
        out
    }

    /// The retention rule on every small guild: logs of up to 6 events starting at 1 (or
    /// compacted to start at 3), every split into segments, every snapshot seq absent, valid or
    /// damaged, `keep` 1 to 3, without an age limit or with one at every position.
    #[test]
    fn the_retention_rule_holds_on_every_small_guild() {
        let mut cases = 0u64;
        for log_first in [1, 3] {
            for head in log_first - 1..=6u64 {
                let snap_seqs: Vec<Seq> =
                    (log_first.max(2) - 1..=head).filter(|&s| s > 0).collect();
                let combos = 3u64.pow(snap_seqs.len() as u32);
                for layout in layouts(log_first, head) {
                    for combo in 0..combos {
                        let mut snapshots = Vec::new();
                        let mut c = combo;
                        for &seq in &snap_seqs {
                            match c % 3 {
                                1 => snapshots.push(snap(seq, seq * DAY, true)),
                                2 => snapshots.push(snap(seq, seq * DAY, false)),
                                _ => {}
                            }
                            c /= 3;
                        }
                        for keep in 1..=3u32 {
                            for age_at in std::iter::once(None).chain((0..=head + 1).map(Some)) {
                                let policy = RetentionPolicy {
                                    keep,
                                    age_max: age_at.map(|_| Duration::from_millis(10 * DAY)),
                                };
                                // Snapshots created before `limit` are old.
                                let now = age_at.map_or(0, |k| k * DAY + 10 * DAY);
                                check_rule(&snapshots, &layout, &policy, now, head);
                                cases += 1;
                            }
                        }
                    }
                }
            }
        }
        assert!(cases > 100_000, "{cases}");
    }

    fn check_rule(
        snapshots: &[SnapshotStat],
        segments: &[SegmentSpan],
        policy: &RetentionPolicy,
        now: u64,
        head: Seq,
    ) {
        let ctx = || format!("{snapshots:?} {segments:?} {policy:?} now {now}");
        let before = rebuildable(snapshots, segments, head);
        let decision = retention_decision(snapshots, segments, policy, now);
        let plan = match decision {
            Ok(plan) => plan,
            Err(_) => {
                // Refused only when recovery cannot rebuild the newest state now.
                assert!(!before, "refused although rebuildable: {}", ctx());
                return;
            }
        };
        assert!(before || plan.is_empty(), "{}", ctx());
        // Removed segments are the oldest ones, never the newest.
        assert!(plan.segments.len() < segments.len().max(1), "{}", ctx());
        for (removed, s) in plan.segments.iter().zip(segments) {
            assert_eq!(*removed, s.first_seq, "{}", ctx());
        }
        let kept_snapshots: Vec<SnapshotStat> = snapshots
            .iter()
            .filter(|s| !plan.snapshots.contains(&s.seq))
            .cloned()
            .collect();
        let kept_segments = &segments[plan.segments.len()..];
        // The newest state stays rebuildable.
        assert!(
            !before || rebuildable(&kept_snapshots, kept_segments, head),
            "{plan:?} breaks {}",
            ctx()
        );
        let valid: Vec<Seq> = snapshots
            .iter()
            .filter(|s| s.valid)
            .map(|s| s.seq)
            .collect();
        let kept_valid: Vec<Seq> = kept_snapshots
            .iter()
            .filter(|s| s.valid)
            .map(|s| s.seq)
            .collect();
        // The newest valid snapshot always stays; without an age limit the newest `keep` do,
        // and with fewer than `keep` nothing at all goes (the empty state is a base).
        if let Some(newest) = valid.last() {
            assert!(kept_valid.contains(newest), "{}", ctx());
        }
        if policy.age_max.is_none() {
            let keep = policy.keep as usize;
            assert!(
                valid
                    .iter()
                    .rev()
                    .take(keep)
                    .all(|s| kept_valid.contains(s)),
                "{}",
                ctx()
            );
            if valid.len() < keep {
                assert!(plan.is_empty(), "{}", ctx());
            }
            // Fewer valid snapshots never remove more (the journal's read-back shortcut).
            let all_valid: Vec<SnapshotStat> = snapshots
                .iter()
                .map(|s| SnapshotStat {
                    valid: true,
                    ..s.clone()
                })
                .collect();
            let optimistic = retention_plan(&all_valid, segments, policy, now);
            assert!(
                plan.snapshots
                    .iter()
                    .all(|s| optimistic.snapshots.contains(s)),
                "{}",
                ctx()
            );
            assert!(
                plan.segments.len() <= optimistic.segments.len(),
                "{}",
                ctx()
            );
        }
        // A damaged snapshot never counts: without it the same valid snapshots and segments go.
        let without_damaged: Vec<SnapshotStat> =
            snapshots.iter().filter(|s| s.valid).cloned().collect();
        let plain = retention_decision(&without_damaged, segments, policy, now).unwrap_or_default();
        let valid_removed: Vec<Seq> = plan
            .snapshots
            .iter()
            .copied()
            .filter(|s| valid.contains(s))
            .collect();
        assert_eq!(valid_removed, plain.snapshots, "{}", ctx());
        assert_eq!(plan.segments, plain.segments, "{}", ctx());
        // Nothing newer than the oldest kept valid snapshot is removed.
        if let Some(&oldest_kept) = kept_valid.first() {
            assert!(plan.snapshots.iter().all(|&s| s < oldest_kept), "{}", ctx());
        }
    }
}

//! Unit tests of the journal's pure helpers: the runs and the claimed seq recovery derives from
//! the segments found, the damage that explains a missing event, and taking back frames queued
//! for an append that did not take effect. The journal's behaviour through its public API is
//! tested in `tests/it/`.

use std::path::{Path, PathBuf};

use super::recover::{claimed_of, explain_broken, runs_of, Scanned, ScannedSegment};
use super::write::{queue_frame, unwrite_frames};
use super::{GuildLog, GuildState, SegmentMeta};
use crate::crypto::KeyId;
use crate::error::{Corruption, CorruptionKind};
use crate::format::segment::{ScanEnd, SegmentHeader, SegmentScan, HEADER_LEN};
use crate::ids::{GuildId, Seq};
use crate::layout;
use crate::recovery::Run;
use crate::session::State;
use crate::storage::Bytes;

const GUILD: GuildId = GuildId(7);

/// A segment named `first_seq` whose scan holds `first_seq..=last_seq` (nothing when
/// `last_seq < first_seq`), ending `end`.
fn segment(first_seq: Seq, last_seq: Seq, end: ScanEnd) -> ScannedSegment {
    let frame_count = (last_seq + 1).saturating_sub(first_seq);
    ScannedSegment {
        first_seq,
        path: PathBuf::from(format!("{first_seq:020}.wal")),
        bytes: Bytes::Owned(Vec::new()),
        active: false,
        torn_header: false,
        scan: Some(SegmentScan {
            header: SegmentHeader {
                guild: GUILD.0,
                first_seq,
                history_max: 10,
                created_unix_ms: 0,
                key_id: KeyId::PLAINTEXT,
            },
            last_seq,
            valid_len: HEADER_LEN as u64 + 10 * frame_count,
            frame_count,
            end,
        }),
        fault: None,
        restored: false,
    }
}

/// A segment named `first_seq` whose header could not be read.
fn unreadable(first_seq: Seq, fault: Option<Corruption>) -> ScannedSegment {
    ScannedSegment {
        scan: None,
        fault,
        ..segment(first_seq, first_seq - 1, ScanEnd::Clean)
    }
}

fn scanned(segments: Vec<ScannedSegment>, snapshots: Vec<Seq>) -> Scanned {
    Scanned {
        segments,
        snapshots,
        temps: Vec::new(),
        unknown: Vec::new(),
        commit_head: 0,
        obsolete: Vec::new(),
        replaced: Vec::new(),
    }
}

#[test]
fn runs_of_joins_consecutive_segments_and_skips_those_holding_nothing() {
    let segments = [
        segment(1, 3, ScanEnd::Clean),
        segment(4, 6, ScanEnd::Clean),
        segment(7, 8, ScanEnd::Clean),
        // Unreadable: holds nothing (events 9 to 11 are held nowhere).
        unreadable(9, None),
        segment(12, 13, ScanEnd::TornTail { offset: 99 }),
        // A header only (the active segment before its first frame): no run.
        segment(14, 13, ScanEnd::Clean),
    ];
    assert_eq!(
        runs_of(&segments),
        vec![
            Run { first: 1, last: 8 },
            Run {
                first: 12,
                last: 13
            }
        ]
    );
    assert_eq!(runs_of(&[]), Vec::<Run>::new());
}

#[test]
fn claimed_of_is_the_seq_before_the_newest_segment_name_even_unreadable() {
    assert_eq!(claimed_of(&[]), 0);
    assert_eq!(claimed_of(&[segment(1, 0, ScanEnd::Clean)]), 0);
    let segments = [segment(1, 5, ScanEnd::Clean), unreadable(40, None)];
    assert_eq!(claimed_of(&segments), 39);
}

#[test]
fn explain_broken_names_the_fault_of_the_segment_that_should_hold_the_event() {
    let fault = Corruption::new(
        "00000000000000000004.wal",
        0,
        CorruptionKind::HeaderChecksum,
    );
    let found = scanned(
        vec![
            segment(1, 3, ScanEnd::Clean),
            unreadable(4, Some(fault.clone())),
        ],
        Vec::new(),
    );
    assert_eq!(
        explain_broken(Path::new("/j"), GUILD, &found, &[], 4),
        fault
    );
}

#[test]
fn explain_broken_prefers_a_damaged_snapshot_over_other_findings() {
    let found = scanned(vec![segment(20, 25, ScanEnd::Clean)], vec![19]);
    let other = Corruption::new("x.wal", 3, CorruptionKind::FrameChecksum);
    let snapshot = Corruption::new(
        layout::snapshot_path(Path::new("/j"), GUILD, 19),
        0,
        CorruptionKind::HeaderChecksum,
    );
    let torn = Corruption::new("y.wal", 0, CorruptionKind::TornTail);
    let findings = [torn.clone(), other.clone(), snapshot.clone()];
    assert_eq!(
        explain_broken(Path::new("/j"), GUILD, &found, &findings, 1),
        snapshot
    );
    // Without it, the first finding that is damage (a torn tail is not).
    assert_eq!(
        explain_broken(
            Path::new("/j"),
            GUILD,
            &found,
            &[torn.clone(), other.clone()],
            1
        ),
        other
    );
    // Without any, the guild's directory is unrecoverable at the missing event.
    let c = explain_broken(Path::new("/j"), GUILD, &found, &[torn], 1);
    assert_eq!(c.kind, CorruptionKind::Unrecoverable);
    assert_eq!(c.path, layout::guild_dir(Path::new("/j"), GUILD));
    assert_eq!(c.expected, Some(1));
}

fn guild_log(first_seq: Seq, last_seq: Seq, len: u64) -> GuildLog {
    GuildLog {
        current: GuildState {
            guild: GUILD,
            seq: last_seq,
            state: State::new(10),
        },
        inherited: false,
        segments: vec![SegmentMeta {
            first_seq,
            last_seq,
            len,
            appendable: true,
            sealed: false,
            key_id: KeyId::PLAINTEXT,
        }],
        snapshots: Vec::new(),
        active: None,
        pending: Vec::new(),
        last_used: 0,
        unsynced: false,
        dir_unsynced: false,
        parent_unsynced: false,
        events_since_snapshot: 0,
        bytes_since_snapshot: 0,
        poisoned: None,
        findings: Vec::new(),
        owed_seals: Vec::new(),
    }
}

#[test]
fn unwrite_frames_takes_back_exactly_the_frames_just_queued() {
    let mut log = guild_log(1, 4, 300);
    queue_frame(&mut log, b"fifth");
    let (pending, meta) = (log.pending.clone(), log.segments[0]);
    assert_eq!((meta.last_seq, meta.len), (5, 305));
    assert!(log.unsynced);
    // A batch of two frames, taken back whole.
    queue_frame(&mut log, b"sixth!");
    queue_frame(&mut log, b"seventh");
    assert_eq!(log.segments[0].last_seq, 7);
    unwrite_frames(&mut log, b"sixth!".len() + b"seventh".len(), 2);
    assert_eq!(log.pending, pending);
    assert_eq!(
        (log.segments[0].last_seq, log.segments[0].len),
        (meta.last_seq, meta.len)
    );
}

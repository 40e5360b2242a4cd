//! Unit tests of the simulated storage: what survives a crash, fsyncgate, disk full, locks
//! and captures.

use std::path::Path;

use super::*;
use crate::storage::{LockFailure, Storage};

fn p(s: &str) -> &Path {
    Path::new(s)
}

fn read(s: &SimStorage, path: &str) -> Vec<u8> {
    s.read(p(path), u64::MAX).unwrap().to_vec()
}

#[test]
fn unsynced_data_and_entries_are_lost_and_synced_ones_survive() {
    let s = SimStorage::new(1);
    s.create_dir_all(p("/d")).unwrap();
    s.sync_dir(p("/")).unwrap();
    let mut f = s.create_new(p("/d/a")).unwrap();
    f.append(b"hello").unwrap();
    f.sync_data().unwrap();
    f.append(b" world").unwrap();
    assert_eq!(read(&s, "/d/a"), b"hello world");
    // The entry of `a` was never synced: the file vanishes with its synced data.
    let c = s.crash(CrashMode::DropUnsynced);
    assert_eq!(c.list(p("/d")).unwrap(), Vec::<String>::new());
    s.sync_dir(p("/d")).unwrap();
    let c = s.crash(CrashMode::DropUnsynced);
    assert_eq!(read(&c, "/d/a"), b"hello");
    // Torn tails keep a prefix of " world", maybe followed by filler, never less than
    // the synced part.
    let mut seen_full = false;
    for seed in 0..200 {
        let c = s.crash(CrashMode::TornTail { seed });
        let got = read(&c, "/d/a");
        assert!(got.starts_with(b"hello") && got.len() <= 11, "{got:?}");
        let kept = got[5..]
            .iter()
            .zip(b" world")
            .take_while(|(a, b)| a == b)
            .count();
        assert!(got[5 + kept..].len() <= 6 - kept);
        seen_full |= got == b"hello world";
    }
    assert!(seen_full);
}

#[test]
fn renames_and_removes_are_undone_without_a_directory_sync() {
    let s = SimStorage::new(2);
    let mut f = s.create_new(p("/a.tmp")).unwrap();
    f.append(b"new").unwrap();
    f.sync_data().unwrap();
    let mut old = s.create_new(p("/a")).unwrap();
    old.append(b"old").unwrap();
    old.sync_data().unwrap();
    s.sync_dir(p("/")).unwrap();
    s.rename(p("/a.tmp"), p("/a")).unwrap();
    assert_eq!(read(&s, "/a"), b"new");
    let c = s.crash(CrashMode::DropUnsynced);
    assert_eq!(read(&c, "/a"), b"old");
    assert_eq!(read(&c, "/a.tmp"), b"new");
    // Writeback keeps the rename or not, never half of it.
    for seed in 0..50 {
        let c = s.crash(CrashMode::Writeback { seed });
        let mut names = c.list(p("/")).unwrap();
        names.sort();
        assert!(names == ["a", "a.tmp"] || names == ["a"], "{names:?}");
    }
    s.remove(p("/a")).unwrap();
    let c = s.crash(CrashMode::DropUnsynced);
    assert_eq!(read(&c, "/a"), b"old");
    s.sync_dir(p("/")).unwrap();
    let c = s.crash(CrashMode::DropUnsynced);
    assert!(c.list(p("/")).unwrap().is_empty());
}

#[test]
fn a_new_directory_needs_its_parent_synced() {
    let s = SimStorage::new(3);
    s.create_dir_all(p("/x/y")).unwrap();
    let mut f = s.create_new(p("/x/y/f")).unwrap();
    f.append(b"1").unwrap();
    f.sync_data().unwrap();
    s.sync_dir(p("/x/y")).unwrap();
    s.sync_dir(p("/x")).unwrap();
    assert!(s
        .crash(CrashMode::DropUnsynced)
        .list(p("/"))
        .unwrap()
        .is_empty());
    s.sync_dir(p("/")).unwrap();
    assert_eq!(read(&s.crash(CrashMode::DropUnsynced), "/x/y/f"), b"1");
}

#[test]
fn failed_fsync_loses_the_dirty_bytes_even_after_a_later_successful_fsync() {
    let s = SimStorage::new(4);
    let mut f = s.create_new(p("/f")).unwrap();
    s.sync_dir(p("/")).unwrap();
    f.append(b"aaaa").unwrap();
    f.sync_data().unwrap();
    f.append(b"bbbb").unwrap();
    s.set_fault(Fault::FailKind {
        kind: OpKind::SyncData,
        nth: 1,
        sticky: false,
        error: InjectedError::Eio,
    });
    let e = f.sync_data().unwrap_err();
    assert_eq!(e.raw_os_error(), Some(EIO));
    f.append(b"cccc").unwrap();
    f.sync_data().unwrap();
    assert_eq!(read(&s, "/f"), b"aaaabbbbcccc");
    assert_eq!(
        read(&s.crash(CrashMode::DropUnsynced), "/f"),
        b"aaaa\0\0\0\0cccc"
    );
}

#[test]
fn disk_full_short_writes_and_power_loss() {
    let s = SimStorage::new(5);
    let mut f = s.create_new(p("/f")).unwrap();
    s.set_fault(Fault::DiskFull { bytes_free: 6 });
    f.append(b"1234").unwrap();
    let e = f.append(b"5678").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(ENOSPC));
    assert_eq!(read(&s, "/f"), b"123456");
    assert_eq!(
        s.create_new(p("/g")).unwrap_err().raw_os_error(),
        Some(ENOSPC)
    );
    s.clear_faults();
    let at = s.op_count();
    s.set_fault(Fault::FailOp {
        op: at,
        error: InjectedError::ShortWrite,
    });
    assert!(f.append(b"abcdefgh").is_err());
    let len = read(&s, "/f").len();
    assert!((6..14).contains(&len), "{len}");
    let at = s.op_count();
    s.set_fault(Fault::PowerLoss { op: at + 1 });
    f.sync_data().unwrap();
    assert!(f.append(b"x").is_err());
    assert!(s.sync_dir(p("/")).is_err());
    assert_eq!(s.power_lost_at(), Some(at + 1));
    // The file's entry was never synced.
    assert!(s
        .crash(CrashMode::DropUnsynced)
        .list(p("/"))
        .unwrap()
        .is_empty());
}

#[test]
fn locks_conflict_until_dropped_and_captures_replay_the_past() {
    let s = SimStorage::new(6);
    let w = s.lock(p("/LOCK"), true).unwrap();
    assert!(matches!(
        s.lock(p("/LOCK"), false),
        Err(LockFailure::Held {
            holder_pid: Some(_)
        })
    ));
    drop(w);
    let r1 = s.lock(p("/LOCK"), false).unwrap();
    let _r2 = s.lock(p("/LOCK"), false).unwrap();
    assert!(matches!(
        s.lock(p("/LOCK"), true),
        Err(LockFailure::Held { holder_pid: None })
    ));
    drop(r1);
    s.set_capture(Capture::Every);
    let start = s.op_count();
    let mut f = s.create_new(p("/f")).unwrap();
    s.sync_dir(p("/")).unwrap();
    f.append(b"ab").unwrap();
    f.sync_data().unwrap();
    let caps = s.take_captures();
    assert_eq!(
        caps.iter().map(Captured::op).collect::<Vec<_>>(),
        (start..start + 4).collect::<Vec<_>>()
    );
    let lens: Vec<usize> = caps
        .iter()
        .map(|c| {
            let c = c.crash(CrashMode::DropUnsynced);
            c.read(p("/f"), 100).map_or(usize::MAX, |b| b.len())
        })
        .collect();
    assert_eq!(lens, [usize::MAX, usize::MAX, 0, 0]);
    assert_eq!(s.op_count_of(OpKind::Append), 1);
}

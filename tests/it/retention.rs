//! Retention against damaged snapshots: a snapshot counts toward `snapshots_retained` only once
//! it was read back and verified, and the journal's own retention and `cleanup` follow one rule.

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use reprise::journal::RetentionPolicy;
use reprise::layout;
use reprise::storage::sim::SimStorage;
use reprise::storage::{AppendFile, Bytes, DirLock, LockFailure, Storage};
use reprise::{Config, Durability, GuildId, Journal, OpenMode};

use crate::common::stream;

const ROOT: &str = "/srv/reprise";
const G: GuildId = GuildId(77);

/// A [`SimStorage`] whose reads of chosen files return them with one bit flipped (bit rot in a
/// file that was written and synced correctly).
#[derive(Debug)]
struct RotStorage {
    inner: SimStorage,
    rotten: Mutex<HashSet<PathBuf>>,
}

impl RotStorage {
    fn new(seed: u64) -> Arc<RotStorage> {
        let inner = SimStorage::new(seed);
        inner.create_dir_all(Path::new(ROOT)).unwrap();
        Arc::new(RotStorage {
            inner,
            rotten: Mutex::new(HashSet::new()),
        })
    }

    fn rot(&self, path: PathBuf) {
        self.rotten.lock().unwrap().insert(path);
    }

    fn maybe_rot(&self, path: &Path, bytes: Bytes) -> Bytes {
        if !self.rotten.lock().unwrap().contains(path) {
            return bytes;
        }
        let mut v = bytes.to_vec();
        let mid = v.len() / 2;
        if let Some(b) = v.get_mut(mid) {
            *b ^= 0x10;
        }
        Bytes::Owned(v)
    }

    fn names(&self, dir: &Path) -> Vec<String> {
        let mut names = self.inner.list(dir).unwrap();
        names.sort();
        names
    }
}

impl Storage for RotStorage {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.inner.create_dir_all(path)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.inner.list(dir)
    }
    fn exists(&self, path: &Path) -> io::Result<bool> {
        self.inner.exists(path)
    }
    fn file_len(&self, path: &Path) -> io::Result<u64> {
        self.inner.file_len(path)
    }
    fn read(&self, path: &Path, len_max: u64) -> io::Result<Bytes> {
        let bytes = self.inner.read(path, len_max)?;
        Ok(self.maybe_rot(path, bytes))
    }
    fn map(&self, path: &Path, len_max: u64) -> io::Result<Bytes> {
        let bytes = self.inner.map(path, len_max)?;
        Ok(self.maybe_rot(path, bytes))
    }
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn AppendFile>> {
        self.inner.create_new(path)
    }
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn AppendFile>> {
        self.inner.open_append(path)
    }
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        self.inner.truncate(path, len)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.inner.rename(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        self.inner.remove(path)
    }
    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        self.inner.remove_dir(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.inner.sync_dir(dir)
    }
    fn sync_filesystem(&self, path: &Path) -> io::Result<bool> {
        self.inner.sync_filesystem(path)
    }
    fn lock(&self, path: &Path, exclusive: bool) -> Result<Box<dyn DirLock>, LockFailure> {
        self.inner.lock(path, exclusive)
    }
}

fn open(storage: &Arc<RotStorage>, config: &Config) -> Journal {
    Journal::open_with(
        ROOT,
        config.clone(),
        OpenMode::ReadWrite,
        Arc::clone(storage) as Arc<dyn Storage>,
    )
    .unwrap()
}

fn config(keep: u32) -> Config {
    Config::default()
        .without_auto_snapshots()
        .with_snapshots_retained(keep)
        .with_segment_bytes_max(2 << 10)
}

/// Issue 13 item 4: with keep = 1, a newest snapshot that reads back damaged must not be what
/// the older valid snapshot and the log before it are removed for.
#[test]
fn regression_bit_rot_in_the_newest_snapshot_keeps_the_older_valid_one_and_its_log() {
    let storage = RotStorage::new(1);
    let config = config(1);
    let (events, states) = stream(41, 80);
    let mut j = open(&storage, &config);
    for e in &events[..40] {
        j.append(G, e, Durability::None).unwrap();
    }
    assert_eq!(j.snapshot_now(G).unwrap(), Some(40));
    for e in &events[40..] {
        j.append(G, e, Durability::None).unwrap();
    }
    // The snapshot at 80 rots as soon as it is written.
    storage.rot(layout::snapshot_path(Path::new(ROOT), G, 80));
    assert_eq!(j.snapshot_now(G).unwrap(), Some(80));
    let dir = layout::guild_dir(Path::new(ROOT), G);
    let names = storage.names(&dir);
    assert!(
        names
            .iter()
            .any(|n| n.ends_with("00000000000000000040.snap")),
        "the older valid snapshot was removed: {names:?}"
    );
    j.close().unwrap();
    let mut j = open(&storage, &config);
    let got = j.state(G).unwrap();
    assert_eq!(got.seq, 80);
    assert_eq!(got.state, states[80]);
}

/// Issue 13 item 4: at exactly `keep` valid snapshots, the journal's own retention (after a
/// snapshot) and `cleanup` (on the same files) leave the same files.
#[test]
fn regression_the_two_retention_call_sites_agree_at_exactly_keep_snapshots() {
    let (events, _) = stream(43, 60);
    // Two journals fed the same way; one keeps everything (keep = 100), so `cleanup` then sees
    // the files the other journal's retention saw after its second snapshot.
    let run = |keep: u32| {
        let storage = RotStorage::new(2);
        let mut j = open(&storage, &config(keep));
        for e in &events[..20] {
            j.append(G, e, Durability::None).unwrap();
        }
        j.snapshot_now(G).unwrap();
        for e in &events[20..40] {
            j.append(G, e, Durability::None).unwrap();
        }
        j.snapshot_now(G).unwrap();
        for e in &events[40..] {
            j.append(G, e, Durability::None).unwrap();
        }
        j.close().unwrap();
        storage
    };
    let by_journal = run(2);
    let by_cleanup = run(100);
    let mut j = open(&by_cleanup, &config(100));
    let policy = RetentionPolicy {
        keep: 2,
        age_max: None,
    };
    j.cleanup(&policy, None, 0, false).unwrap();
    j.close().unwrap();
    let dir = layout::guild_dir(Path::new(ROOT), G);
    assert_eq!(by_cleanup.names(&dir), by_journal.names(&dir));
}

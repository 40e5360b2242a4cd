use reprise::{Config, Durability, Error, Event, GuildId, Journal};

use crate::common::{guild_files, stream};

#[test]
fn a_second_writer_is_refused_and_readers_read_beside_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let g = GuildId(1);
    let mut j = Journal::open(dir.path(), Config::default()).unwrap();
    assert!(matches!(
        Journal::open(dir.path(), Config::default()),
        Err(Error::Locked { holder_pid: Some(pid), .. }) if pid == std::process::id()
    ));
    let e = Event::from_json(r#"{"type":"volume_set","volume":40}"#).unwrap();
    j.append(g, &e, Durability::Always).unwrap();
    // A reader takes no lock: it reads beside the writer (the acknowledged event, from the
    // commit log: the segment still buffers it), and a second writer is still refused.
    let mut r1 = Journal::open_read_only(dir.path(), Config::default()).unwrap();
    assert_eq!(r1.state(g).unwrap().seq, 1);
    assert_eq!(r1.state(g).unwrap().state, j.state(g).unwrap().state);
    assert!(matches!(
        Journal::open(dir.path(), Config::default()),
        Err(Error::Locked { .. })
    ));
    drop(j);
    // Nor does it keep a writer from starting.
    let _r2 = Journal::open_read_only(dir.path(), Config::default()).unwrap();
    let mut w = Journal::open(dir.path(), Config::default()).unwrap();
    w.append(g, &e, Durability::Always).unwrap();
    // What a reader read it keeps until it refreshes.
    assert_eq!(r1.state(g).unwrap().seq, 1);
    r1.refresh().unwrap();
    assert_eq!(r1.state(g).unwrap().seq, 2);
}

#[test]
fn a_rejected_event_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let g = GuildId(1);
    let mut j = Journal::open(dir.path(), Config::default()).unwrap();
    let bad = [
        r#"{"type":"volume_set","volume":1001}"#,
        r#"{"type":"track_removed","index":0}"#,
        r#"{"type":"track_moved","from":0,"to":1}"#,
        r#"{"type":"filters_set","active":[],"config":{"equalizer":[{"band":15,"gain":0.1}]}}"#,
    ];
    for text in bad {
        let e = Event::from_json(text).unwrap();
        assert!(matches!(
            j.append(g, &e, Durability::Always),
            Err(Error::InvalidEvent { .. })
        ));
    }
    assert_eq!(j.state(g).unwrap().seq, 0);
    assert!(!reprise::layout::guild_dir(dir.path(), g).exists());
    let ok = Event::from_json(r#"{"type":"volume_set","volume":1000}"#).unwrap();
    assert_eq!(j.append(g, &ok, Durability::Always).unwrap(), 1);
}

#[test]
fn retention_keeps_k_snapshots_and_their_log() {
    let dir = tempfile::tempdir().unwrap();
    let g = GuildId(5);
    let (events, states) = stream(2, 300);
    let config = Config::default()
        .with_segment_bytes_max(4096)
        .with_snapshots_retained(2)
        .without_auto_snapshots();
    let mut j = Journal::open(dir.path(), config).unwrap();
    for (i, e) in events.iter().enumerate() {
        j.append(g, e, Durability::None).unwrap();
        if (i + 1) % 100 == 0 {
            j.snapshot_now(g).unwrap();
        }
    }
    let files = guild_files(dir.path(), g);
    let snaps: Vec<_> = files
        .iter()
        .filter(|p| p.extension().unwrap() == "snap")
        .collect();
    assert_eq!(snaps.len(), 2, "{files:?}");
    // The oldest kept snapshot is 200: 201.. must be replayable, and anything from the
    // segment holding 201 on; older states are compacted away.
    assert_eq!(j.state_at(g, 200).unwrap().state, states[200]);
    assert_eq!(j.state_at(g, 250).unwrap().state, states[250]);
    assert!(matches!(j.state_at(g, 50), Err(Error::Compacted { .. })));
    assert!(matches!(j.state_at(g, 301), Err(Error::SeqAhead { .. })));
    // Events iterate from the oldest retained segment, consecutively.
    let seqs: Vec<u64> = j.events(g).unwrap().map(|e| e.unwrap().seq).collect();
    assert_eq!(*seqs.last().unwrap(), 300);
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1));
    assert!(seqs[0] <= 201);
}

#[test]
fn automatic_snapshots_follow_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    let g = GuildId(9);
    let (events, states) = stream(4, 250);
    let config = Config::default().with_snapshot_every(Some(100), None);
    let mut j = Journal::open(dir.path(), config.clone()).unwrap();
    for e in &events {
        j.append(g, e, Durability::None).unwrap();
    }
    j.close().unwrap();
    let snaps: Vec<_> = guild_files(dir.path(), g)
        .into_iter()
        .filter(|p| p.extension().unwrap() == "snap")
        .collect();
    assert_eq!(snaps.len(), 2);
    assert!(snaps[1].ends_with("00000000000000000200.snap"));
    let mut j = Journal::open(dir.path(), config).unwrap();
    assert_eq!(j.state(g).unwrap().state, states[250]);
}

#[test]
fn opening_many_guilds_is_lazy() {
    let dir = tempfile::tempdir().unwrap();
    let (events, _) = stream(8, 3);
    {
        let mut j = Journal::open(dir.path(), Config::default()).unwrap();
        for g in 0..300u64 {
            for e in &events {
                j.append(GuildId(g), e, Durability::None).unwrap();
            }
        }
        j.close().unwrap();
    }
    // Break one guild: opening the journal and using the others is unaffected.
    let broken = guild_files(dir.path(), GuildId(17)).remove(0);
    std::fs::write(
        &broken,
        b"garbage that is not a segment header at all, long enough......",
    )
    .unwrap();
    let mut j = Journal::open(dir.path(), Config::default()).unwrap();
    assert_eq!(j.guilds().unwrap().len(), 300);
    assert_eq!(j.state(GuildId(3)).unwrap().seq, 3);
    assert!(matches!(j.state(GuildId(17)), Err(Error::Corrupt(_))));
}

/// A storage that counts the files open for appending (and the most ever open at once).
#[derive(Debug, Default)]
struct CountingStorage {
    open: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    most: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

#[derive(Debug)]
struct CountedFile {
    inner: Box<dyn reprise::storage::AppendFile>,
    open: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Drop for CountedFile {
    fn drop(&mut self) {
        self.open.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl reprise::storage::AppendFile for CountedFile {
    fn append(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.inner.append(buf)
    }
    fn preallocate(&mut self, len: u64) -> std::io::Result<reprise::storage::Preallocation> {
        self.inner.preallocate(len)
    }
    fn sync_data(&mut self) -> std::io::Result<()> {
        self.inner.sync_data()
    }
    fn truncate(&mut self, len: u64) -> std::io::Result<()> {
        self.inner.truncate(len)
    }
}

impl CountingStorage {
    fn count(
        &self,
        file: std::io::Result<Box<dyn reprise::storage::AppendFile>>,
    ) -> std::io::Result<Box<dyn reprise::storage::AppendFile>> {
        use std::sync::atomic::Ordering::SeqCst;
        let inner = file?;
        let now = self.open.fetch_add(1, SeqCst) + 1;
        self.most.fetch_max(now, SeqCst);
        Ok(Box::new(CountedFile {
            inner,
            open: std::sync::Arc::clone(&self.open),
        }))
    }
}

impl reprise::storage::Storage for CountingStorage {
    fn create_dir_all(&self, p: &std::path::Path) -> std::io::Result<()> {
        reprise::storage::FsStorage.create_dir_all(p)
    }
    fn list(&self, d: &std::path::Path) -> std::io::Result<Vec<String>> {
        reprise::storage::FsStorage.list(d)
    }
    fn exists(&self, p: &std::path::Path) -> std::io::Result<bool> {
        reprise::storage::FsStorage.exists(p)
    }
    fn file_len(&self, p: &std::path::Path) -> std::io::Result<u64> {
        reprise::storage::FsStorage.file_len(p)
    }
    fn read(&self, p: &std::path::Path, m: u64) -> std::io::Result<reprise::storage::Bytes> {
        reprise::storage::FsStorage.read(p, m)
    }
    fn map(&self, p: &std::path::Path, m: u64) -> std::io::Result<reprise::storage::Bytes> {
        reprise::storage::FsStorage.map(p, m)
    }
    fn create_new(
        &self,
        p: &std::path::Path,
    ) -> std::io::Result<Box<dyn reprise::storage::AppendFile>> {
        self.count(reprise::storage::FsStorage.create_new(p))
    }
    fn open_append(
        &self,
        p: &std::path::Path,
    ) -> std::io::Result<Box<dyn reprise::storage::AppendFile>> {
        self.count(reprise::storage::FsStorage.open_append(p))
    }
    fn truncate(&self, p: &std::path::Path, l: u64) -> std::io::Result<()> {
        reprise::storage::FsStorage.truncate(p, l)
    }
    fn rename(&self, a: &std::path::Path, b: &std::path::Path) -> std::io::Result<()> {
        reprise::storage::FsStorage.rename(a, b)
    }
    fn remove(&self, p: &std::path::Path) -> std::io::Result<()> {
        reprise::storage::FsStorage.remove(p)
    }
    fn remove_dir(&self, p: &std::path::Path) -> std::io::Result<()> {
        reprise::storage::FsStorage.remove_dir(p)
    }
    fn sync_dir(&self, d: &std::path::Path) -> std::io::Result<()> {
        reprise::storage::FsStorage.sync_dir(d)
    }
    fn lock(
        &self,
        p: &std::path::Path,
        e: bool,
    ) -> Result<Box<dyn reprise::storage::DirLock>, reprise::storage::LockFailure> {
        reprise::storage::FsStorage.lock(p, e)
    }
}

/// 10,000 guilds appended to through one journal never hold more than `open_files_max`
/// segments open (plus the commit log and one transient file), and every guild recovers.
#[test]
fn the_open_file_cap_holds_with_10000_guilds() {
    use std::sync::atomic::Ordering::SeqCst;
    let dir = tempfile::tempdir().unwrap();
    let storage = std::sync::Arc::new(CountingStorage::default());
    let (events, states) = stream(10, 3);
    let config = Config::default().with_open_files_max(64);
    let mut j = Journal::open_with(
        dir.path(),
        config.clone(),
        reprise::OpenMode::ReadWrite,
        storage.clone(),
    )
    .unwrap();
    for event in &events {
        for g in 0..10_000u64 {
            j.append(GuildId(g), event, Durability::None).unwrap();
        }
        j.sync().unwrap();
    }
    j.close().unwrap();
    let most = storage.most.load(SeqCst);
    assert!(most <= 64 + 2, "{most} files were open at once");
    assert_eq!(storage.open.load(SeqCst), 0);
    let mut j = Journal::open(dir.path(), config).unwrap();
    for g in (0..10_000u64).step_by(97) {
        let s = j.state(GuildId(g)).unwrap();
        assert_eq!((s.seq, &s.state), (3, &states[3]));
    }
}

/// Appends, group commits (fsyncs), recovery and snapshots are reported through the `metrics`
/// facade.
#[test]
fn metrics_are_reported() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let dir = tempfile::tempdir().unwrap();
    let (events, _) = stream(11, 50);
    metrics::with_local_recorder(&recorder, || {
        let mut j = Journal::open(dir.path(), Config::default()).unwrap();
        for e in &events {
            j.append(GuildId(1), e, Durability::BATCHED).unwrap();
        }
        j.sync().unwrap();
        j.snapshot_now(GuildId(1)).unwrap();
        j.close().unwrap();
    });
    let values: std::collections::HashMap<String, DebugValue> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| (key.key().name().to_string(), value))
        .collect();
    assert!(matches!(
        values.get(reprise::telemetry::APPENDS_TOTAL),
        Some(DebugValue::Counter(50))
    ));
    assert!(
        matches!(values.get(reprise::telemetry::FSYNCS_TOTAL), Some(DebugValue::Counter(n)) if *n >= 1)
    );
    assert!(matches!(
        values.get(reprise::telemetry::SNAPSHOTS_TOTAL),
        Some(DebugValue::Counter(1))
    ));
    assert!(
        matches!(values.get(reprise::telemetry::RECOVERY_SECONDS), Some(DebugValue::Histogram(h)) if h.len() == 1)
    );
}

/// Retention by age: a snapshot older than `snapshot_age_max` goes (with the log it made
/// necessary) even when fewer than `snapshots_retained` remain; the newest always stays.
#[test]
fn retention_by_age_drops_old_snapshots_but_never_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let g = GuildId(21);
    let (events, states) = stream(13, 10);
    let config = Config::default()
        .without_auto_snapshots()
        .with_snapshots_retained(3)
        .with_snapshot_age_max(Some(std::time::Duration::from_secs(86_400)));
    let mut j = Journal::open(dir.path(), config.clone()).unwrap();
    for e in &events[..5] {
        j.append(g, e, Durability::None).unwrap();
    }
    j.close().unwrap();
    // A snapshot of seq 5 written in 1970: far older than a day.
    let old = reprise::format::snapshot::encode(g.0, 5, 0, &states[5], None).unwrap();
    std::fs::write(reprise::layout::snapshot_path(dir.path(), g, 5), old).unwrap();
    let mut j = Journal::open(dir.path(), config.clone()).unwrap();
    for e in &events[5..] {
        j.append(g, e, Durability::None).unwrap();
    }
    assert_eq!(j.snapshot_now(g).unwrap(), Some(10));
    let snaps: Vec<_> = guild_files(dir.path(), g)
        .into_iter()
        .filter(|p| p.extension().unwrap() == "snap")
        .collect();
    assert_eq!(snaps.len(), 1, "{snaps:?}");
    assert!(snaps[0].ends_with("00000000000000000010.snap"));
    assert_eq!(j.state(g).unwrap().state, states[10]);
    drop(j);
    let mut j = Journal::open(dir.path(), config).unwrap();
    assert_eq!(j.state(g).unwrap().state, states[10]);
}

#[test]
fn a_segment_covered_by_a_snapshot_is_not_appended_to_by_the_next_process() {
    let dir = tempfile::tempdir().unwrap();
    let g = GuildId(61);
    let (events, states) = stream(61, 30);
    let config = Config::default()
        .with_snapshots_retained(1)
        .without_auto_snapshots();
    let mut j = Journal::open(dir.path(), config.clone()).unwrap();
    for e in &events[..10] {
        j.append(g, e, Durability::Always).unwrap();
    }
    j.snapshot_now(g).unwrap();
    j.close().unwrap();
    // The next process starts a new segment at 11 instead of growing the one sealed at 10...
    let mut j = Journal::open(dir.path(), config.clone()).unwrap();
    for e in &events[10..20] {
        j.append(g, e, Durability::Always).unwrap();
    }
    let firsts: Vec<u64> = j
        .inspect(g)
        .unwrap()
        .segments
        .iter()
        .map(|s| s.first_seq)
        .collect();
    assert_eq!(firsts, vec![1, 11]);
    // ...so the next snapshot's retention can drop the old log.
    j.snapshot_now(g).unwrap();
    j.close().unwrap();
    let mut j = Journal::open(dir.path(), config).unwrap();
    let info = j.inspect(g).unwrap();
    assert_eq!(
        info.segments
            .iter()
            .map(|s| s.first_seq)
            .collect::<Vec<_>>(),
        vec![11]
    );
    assert_eq!(
        info.snapshots
            .iter()
            .map(|s| s.last_seq)
            .collect::<Vec<_>>(),
        vec![20]
    );
    for e in &events[20..] {
        j.append(g, e, Durability::Always).unwrap();
    }
    assert_eq!(j.state(g).unwrap().state, states[30]);
}

/// Issue 13 item 7: the synchronous `Journal::append` (and `append_many`) refuses a guild the
/// directory's ownership record says a newer owner claimed, with the typed `Fenced` error, as
/// the CLI and the runtime do, with or without the `remote` feature (a directory a remote
/// claim fenced stays fenced for a bot built without it).
#[test]
fn regression_journal_append_checks_the_local_fenced_record() {
    let dir = tempfile::tempdir().unwrap();
    let g = GuildId(71);
    let (events, _) = stream(71, 4);
    let mut j = Journal::open(dir.path(), Config::default()).unwrap();
    j.append(g, &events[0], Durability::Always).unwrap();
    j.close().unwrap();
    let record = reprise::format::objects::OwnerRecord {
        guild: g.0,
        epoch: reprise::Epoch(1),
        owner: "old".into(),
        token: "00".into(),
        chain_start: 1,
        fenced_by: Some((reprise::Epoch(2), "new".into())),
    };
    let json = serde_json::to_string(&record).unwrap();
    let bytes = format!("{json}\ncrc32={:08x}\n", crc32fast::hash(json.as_bytes()));
    let path = reprise::layout::remote_owner_path(dir.path(), g);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, bytes).unwrap();
    let mut j = Journal::open(dir.path(), Config::default()).unwrap();
    let fenced = j.append(g, &events[1], Durability::Always);
    assert!(
        matches!(&fenced, Err(Error::Fenced { epoch: reprise::Epoch(2), owner, .. }) if owner == "new"),
        "{fenced:?}"
    );
    let fenced = j.append_many(g, &events[1..3], Durability::Always);
    assert!(matches!(fenced, Err(Error::Fenced { .. })), "{fenced:?}");
    assert_eq!(j.state(g).unwrap().seq, 1);
    // Other guilds are not affected.
    j.append(GuildId(72), &events[0], Durability::Always)
        .unwrap();
}

/// `GuildState::from_json` reads back what `to_json` (and `reprise state`) prints, and the form
/// with the state as an object of its own; anything else is a typed error.
#[test]
fn guild_state_json_round_trips_in_both_forms() {
    let dir = tempfile::tempdir().unwrap();
    let (events, _) = crate::common::stream(5, 50);
    let mut j = Journal::open(dir.path(), Config::default()).unwrap();
    for e in &events {
        j.append(GuildId(8), e, Durability::None).unwrap();
    }
    let gs = j.state(GuildId(8)).unwrap().clone();
    let flat = gs.to_json();
    assert_eq!(reprise::GuildState::from_json(&flat).unwrap(), gs);
    let nested = serde_json::json!({
        "guild": 8,
        "seq": gs.seq,
        "state": serde_json::to_value(&gs.state).unwrap(),
    });
    assert_eq!(reprise::GuildState::from_json(&nested).unwrap(), gs);
    let mut without_seq = flat.clone();
    without_seq.as_object_mut().unwrap().remove("seq");
    let mut unknown = flat.clone();
    unknown["colour"] = serde_json::json!("red");
    let mut broken = flat.clone();
    broken["next_entry_id"] = serde_json::json!(0);
    let mut both = nested.clone();
    both["volume"] = serde_json::json!(5);
    for (what, bad) in [
        ("seq", without_seq),
        ("colour", unknown),
        ("entry", broken),
        ("only field", both),
        ("object", serde_json::json!([1])),
    ] {
        let e = reprise::GuildState::from_json(&bad).unwrap_err();
        assert!(e.to_string().contains(what), "{what}: {e}");
    }
}

/// A journal opened for writing asks the file system to spread its subdirectories
/// (`FS_TOPDIR_FL` on ext2/3/4), so that `commit/` and `guilds/` get inodes apart: on ext4
/// without a journal, an `fdatasync` of a commit log otherwise also wrote the inode-table block
/// it shared with `guilds/`, changed by every new guild (DESIGN.md, "What a new guild costs").
/// Where the file system does not take the flag (tmpfs, XFS), there is nothing to check: a probe
/// directory says which.
#[cfg(target_os = "linux")]
#[test]
fn a_journal_opened_for_writing_spreads_its_subdirectories_where_the_file_system_can() {
    use rustix::fs::{ioctl_getflags, ioctl_setflags, IFlags};
    let tmp = tempfile::tempdir().unwrap();
    let probe = tmp.path().join("probe");
    std::fs::create_dir(&probe).unwrap();
    let probe = std::fs::File::open(&probe).unwrap();
    let takes_topdir = ioctl_getflags(&probe)
        .and_then(|flags| ioctl_setflags(&probe, flags | IFlags::TOPDIR))
        .is_ok();
    let dir = tmp.path().join("journal");
    let mut journal = Journal::open(&dir, Config::default()).unwrap();
    journal
        .append(GuildId(1), &stream(1, 1).0[0], Durability::Always)
        .unwrap();
    let root = std::fs::File::open(&dir).unwrap();
    let flags = ioctl_getflags(&root);
    if takes_topdir {
        assert!(flags.unwrap().contains(IFlags::TOPDIR));
    }
    journal.close().unwrap();
    // A second open of the same directory keeps the flag and its other flags.
    let journal = Journal::open(&dir, Config::default()).unwrap();
    if takes_topdir {
        let flags = ioctl_getflags(&root).unwrap();
        assert!(flags.contains(IFlags::TOPDIR), "{flags:?}");
    }
    journal.close().unwrap();
}

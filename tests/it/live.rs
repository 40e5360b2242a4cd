//! Readers of a live journal (issue 18) on the simulated storage, deterministically: a
//! read-only journal opened between any two operations of a writer, and a writer running
//! between any two operations of a reader. The writer rotates segments, writes automatic
//! snapshots, removes what retention drops and retires commit-log generations while it
//! appends. Every read must succeed and show the fold of exactly a prefix of the guild's
//! events that includes every event acknowledged before the read began (the prefix property),
//! and `verify` must find no damage.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use reprise::session::State;
use reprise::storage::sim::{Capture, SimStorage};
use reprise::storage::{AppendFile, Bytes, DirLock, LockFailure, Storage};
use reprise::{Config, Durability, Event, GuildId, Journal, OpenMode};

use crate::common::{open_sim, stream, SIM_ROOT};

const GUILDS: [GuildId; 2] = [GuildId(1), GuildId(2)];

/// Small files, so that a few dozen events rotate segments, snapshot, drop old files and
/// retire commit logs; `prealloc` sets the commit log's preallocation (0: off).
fn busy_config(prealloc: u64) -> Config {
    let mut config = Config::default()
        .with_segment_bytes_max(4 << 10)
        .with_snapshot_every(Some(7), None)
        .with_snapshots_retained(1)
        .with_commit_prealloc_bytes(prealloc);
    // Below the setter's floor on purpose: a retirement every few events.
    config.commit_bytes_max = 3 << 10;
    config
}

/// The events of each guild and the states after each prefix.
fn streams(n: usize) -> Vec<(Vec<Event>, Vec<State>)> {
    GUILDS.iter().map(|g| stream(0x11fe + g.0, n)).collect()
}

/// Opens a reader on `storage` and checks every guild against the prefix property: `acked`
/// events of guild `i` were acknowledged before it opened, and at most `written[i]` were
/// appended when it finished. Returns the seqs it saw.
fn check_reader(
    storage: Arc<dyn Storage>,
    streams: &[(Vec<Event>, Vec<State>)],
    acked: &[u64],
    written: &[u64],
    context: &str,
) -> Vec<u64> {
    let mut r = Journal::open_with(SIM_ROOT, Config::default(), OpenMode::ReadOnly, storage)
        .unwrap_or_else(|e| panic!("{context}: open: {e}"));
    let mut seen = Vec::new();
    for (i, g) in GUILDS.iter().enumerate() {
        let gs = r
            .state(*g)
            .unwrap_or_else(|e| panic!("{context}: state of {g:?}: {e}"))
            .clone();
        assert!(
            gs.seq >= acked[i] && gs.seq <= written[i],
            "{context}: guild {g:?} at seq {} (acked {}, written {})",
            gs.seq,
            acked[i],
            written[i]
        );
        assert!(
            gs.state == streams[i].1[gs.seq as usize],
            "{context}: guild {g:?}: the state at seq {} is not the fold of its first {} events",
            gs.seq,
            gs.seq
        );
        let events: Vec<_> = r
            .events(*g)
            .unwrap_or_else(|e| panic!("{context}: events of {g:?}: {e}"))
            .collect::<reprise::Result<_>>()
            .unwrap_or_else(|e| panic!("{context}: events of {g:?}: {e}"));
        for logged in &events {
            assert_eq!(
                logged.event,
                streams[i].0[logged.seq as usize - 1],
                "{context}: event {} of guild {g:?}",
                logged.seq
            );
        }
        if let Some(last) = events.last() {
            assert!(
                last.seq >= gs.seq && last.seq <= written[i],
                "{context}: {g:?}"
            );
        }
        seen.push(gs.seq);
    }
    let report = r
        .verify()
        .unwrap_or_else(|e| panic!("{context}: verify: {e}"));
    assert!(report.is_sound(), "{context}: {:?}", report.findings);
    r.stats(None, 0)
        .unwrap_or_else(|e| panic!("{context}: stats: {e}"));
    seen
}

/// A reader opened right before every operation of a writer (a capture of the simulated
/// storage's live contents: what another process would read at that moment) reads every
/// acknowledged event and the fold of exactly a prefix, with and without preallocation.
#[test]
fn a_reader_between_any_two_writer_operations_reads_an_acknowledged_prefix() {
    let n = 45;
    let streams = streams(n);
    for prealloc in [0, 4 << 10] {
        let storage = Arc::new(SimStorage::new(7));
        storage.set_capture(Capture::Every);
        let mut w = open_sim(&storage, &busy_config(prealloc)).unwrap();
        // (operations done, events acknowledged per guild) after each append.
        // Before the writer's open has made the directory, there is nothing to read.
        let opened = storage.op_count();
        let mut acks: Vec<(u64, Vec<u64>)> = vec![(opened, vec![0; GUILDS.len()])];
        for k in 0..n {
            for (i, g) in GUILDS.iter().enumerate() {
                // The second guild appends in pairs: batches interleave in the commit log.
                if i == 1 && k % 2 == 1 {
                    continue;
                }
                let take = if i == 1 { 2.min(n - k) } else { 1 };
                let events = &streams[i].0[k..k + take];
                w.append_many(*g, events, Durability::Always).unwrap();
                let mut now = acks.last().unwrap().1.clone();
                now[i] += take as u64;
                acks.push((storage.op_count(), now));
            }
        }
        let written: Vec<u64> = acks.last().unwrap().1.clone();
        w.close().unwrap();
        let captures = storage.take_captures();
        assert!(captures.len() > 200, "{} captures", captures.len());
        let mut retired = 0;
        for c in captures.iter().filter(|c| c.op() >= opened) {
            let acked = &acks.iter().rev().find(|(ops, _)| *ops <= c.op()).unwrap().1;
            let live = Arc::new(c.resume());
            let commit_logs = live
                .entries()
                .iter()
                .filter(|e| e.path.starts_with(Path::new(SIM_ROOT).join("commit")) && !e.is_dir)
                .count();
            retired = retired.max(commit_logs);
            check_reader(
                live,
                &streams,
                acked,
                &written,
                &format!("prealloc {prealloc}, before op {}", c.op()),
            );
        }
        assert!(retired >= 2, "no retirement overlapped two generations");
    }
}

/// A `Storage` that runs `hook` before each of its operations (the reader's), with the
/// operation's index: the writer's steps between two steps of the reader.
struct Interleaved {
    inner: Arc<SimStorage>,
    ops: AtomicU64,
    hook: Box<dyn Fn(u64) + Send + Sync>,
}

impl std::fmt::Debug for Interleaved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interleaved").finish()
    }
}

impl Interleaved {
    fn step(&self) {
        let n = self.ops.fetch_add(1, Ordering::SeqCst);
        (self.hook)(n);
    }
}

impl Storage for Interleaved {
    fn create_dir_all(&self, path: &Path) -> std::io::Result<()> {
        self.step();
        self.inner.create_dir_all(path)
    }
    fn list(&self, dir: &Path) -> std::io::Result<Vec<String>> {
        self.step();
        self.inner.list(dir)
    }
    fn exists(&self, path: &Path) -> std::io::Result<bool> {
        self.step();
        self.inner.exists(path)
    }
    fn file_len(&self, path: &Path) -> std::io::Result<u64> {
        self.step();
        self.inner.file_len(path)
    }
    fn read(&self, path: &Path, len_max: u64) -> std::io::Result<Bytes> {
        self.step();
        self.inner.read(path, len_max)
    }
    fn map(&self, path: &Path, len_max: u64) -> std::io::Result<Bytes> {
        self.step();
        self.inner.map(path, len_max)
    }
    fn create_new(&self, path: &Path) -> std::io::Result<Box<dyn AppendFile>> {
        self.step();
        self.inner.create_new(path)
    }
    fn open_append(&self, path: &Path) -> std::io::Result<Box<dyn AppendFile>> {
        self.step();
        self.inner.open_append(path)
    }
    fn truncate(&self, path: &Path, len: u64) -> std::io::Result<()> {
        self.step();
        self.inner.truncate(path, len)
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        self.step();
        self.inner.rename(from, to)
    }
    fn remove(&self, path: &Path) -> std::io::Result<()> {
        self.step();
        self.inner.remove(path)
    }
    fn remove_dir(&self, path: &Path) -> std::io::Result<()> {
        self.step();
        self.inner.remove_dir(path)
    }
    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        self.step();
        self.inner.sync_dir(dir)
    }
    fn lock(&self, path: &Path, exclusive: bool) -> Result<Box<dyn DirLock>, LockFailure> {
        self.step();
        self.inner.lock(path, exclusive)
    }
}

/// The writer and what it has acknowledged, shared with the reader's hook.
struct Live {
    writer: Journal,
    /// Events appended per guild.
    written: Vec<u64>,
    /// Events of each guild appended per burst.
    burst: usize,
}

impl Live {
    /// Appends the next `burst` events of every guild (rotations, snapshots, retention and
    /// commit-log retirements happen inside).
    fn burst(&mut self, streams: &[(Vec<Event>, Vec<State>)]) {
        for (i, g) in GUILDS.iter().enumerate() {
            for _ in 0..self.burst {
                let seq = self.written[i] as usize;
                self.writer
                    .append(*g, &streams[i].0[seq], Durability::Always)
                    .unwrap();
                self.written[i] += 1;
            }
        }
    }
}

/// A writer appending a burst of events (enough to seal a segment, snapshot, drop the older
/// files and retire a commit log) between any two operations of a reader: the reader lists a
/// file that is gone when it reads it, reads segments from before and after a rotation, a
/// commit log from before a retirement... and still reads every event acknowledged before it
/// opened, the fold of exactly a prefix, and no damage.
#[test]
fn a_writer_between_any_two_reader_operations_never_disturbs_the_reader() {
    let streams = streams(400);
    let before = 20usize;
    for prealloc in [0, 4 << 10] {
        for burst in [1usize, 8] {
            // Without a writer: how many operations the reader makes. Then the writer runs a
            // burst before each of them in turn (and another burst three operations later).
            let reader_ops = {
                let storage = Arc::new(SimStorage::new(3));
                let mut writer = open_sim(&storage, &busy_config(prealloc)).unwrap();
                for (i, g) in GUILDS.iter().enumerate() {
                    writer
                        .append_many(*g, &streams[i].0[..before], Durability::Always)
                        .unwrap();
                }
                let probe = Arc::new(Interleaved {
                    inner: Arc::clone(&storage),
                    ops: AtomicU64::new(0),
                    hook: Box::new(|_| {}),
                });
                let acked = vec![before as u64; GUILDS.len()];
                check_reader(probe.clone(), &streams, &acked, &acked, "probe");
                probe.ops.load(Ordering::SeqCst)
            };
            assert!(reader_ops > 10, "{reader_ops}");
            for at in 0..reader_ops {
                let storage = Arc::new(SimStorage::new(3));
                let mut writer = open_sim(&storage, &busy_config(prealloc)).unwrap();
                for (i, g) in GUILDS.iter().enumerate() {
                    writer
                        .append_many(*g, &streams[i].0[..before], Durability::Always)
                        .unwrap();
                }
                let live = Arc::new(Mutex::new(Live {
                    writer,
                    written: vec![before as u64; GUILDS.len()],
                    burst,
                }));
                let hook_live = Arc::clone(&live);
                let hook_streams = streams.clone();
                let reader = Arc::new(Interleaved {
                    inner: Arc::clone(&storage),
                    ops: AtomicU64::new(0),
                    hook: Box::new(move |op| {
                        if op == at || op == at + 3 {
                            hook_live.lock().unwrap().burst(&hook_streams);
                        }
                    }),
                });
                let acked = vec![before as u64; GUILDS.len()];
                let written = vec![(before + 2 * burst) as u64; GUILDS.len()];
                let context = format!("prealloc {prealloc}, burst {burst}, at reader op {at}");
                check_reader(reader, &streams, &acked, &written, &context);
                let live = Arc::try_unwrap(live).ok().unwrap().into_inner().unwrap();
                assert!(
                    live.written.iter().all(|&w| w > before as u64),
                    "{context}: the writer never ran"
                );
                live.writer.close().unwrap();
            }
        }
    }
}

/// A reader writes nothing and takes no lock, and maps a segment only when the segment after
/// it holds a frame: the newest one holding a frame may be cut by a writer (a torn tail cut at
/// its first load of the guild), and a page mapped past a cut would kill the reader (SIGBUS).
#[test]
fn a_reader_writes_nothing_and_maps_no_segment_a_writer_may_cut() {
    let streams = streams(60);
    let storage = Arc::new(SimStorage::new(5));
    let config = busy_config(0).without_auto_snapshots();
    let mut w = open_sim(&storage, &config).unwrap();
    for e in &streams[0].0 {
        w.append(GUILDS[0], e, Durability::Always).unwrap();
    }
    w.close().unwrap();
    let dir = reprise::layout::guild_dir(Path::new(SIM_ROOT), GUILDS[0]);
    let mut segments: Vec<String> = storage
        .list(&dir)
        .unwrap()
        .into_iter()
        .filter(|n| n.ends_with(".wal"))
        .collect();
    segments.sort();
    assert!(segments.len() >= 3, "{segments:?}");
    let writes = |trace: &[(reprise::storage::sim::OpKind, std::path::PathBuf)]| {
        use reprise::storage::sim::OpKind::*;
        trace
            .iter()
            .filter(|(k, _)| {
                matches!(
                    k,
                    CreateDirAll
                        | CreateNew
                        | OpenAppend
                        | Append
                        | SyncData
                        | Truncate
                        | Rename
                        | Remove
                        | SyncDir
                        | Lock
                )
            })
            .cloned()
            .collect::<Vec<_>>()
    };
    let how_read = |trace: &[(reprise::storage::sim::OpKind, std::path::PathBuf)], name: &str| {
        trace
            .iter()
            .filter(|(k, p)| {
                p.file_name().is_some_and(|f| f == name)
                    && matches!(
                        k,
                        reprise::storage::sim::OpKind::Read | reprise::storage::sim::OpKind::Map
                    )
            })
            .map(|(k, _)| *k)
            .collect::<Vec<_>>()
    };
    let read_through = |storage: &Arc<SimStorage>| {
        storage.set_trace(true);
        let mut r = Journal::open_with(
            SIM_ROOT,
            Config::default(),
            OpenMode::ReadOnly,
            Arc::clone(storage) as Arc<dyn Storage>,
        )
        .unwrap();
        let gs = r.state(GUILDS[0]).unwrap().clone();
        assert_eq!(gs.seq, 60);
        assert!(gs.state == streams[0].1[60]);
        assert!(r.verify().unwrap().is_sound());
        drop(r);
        let trace = storage.trace();
        storage.set_trace(false);
        trace
    };
    use reprise::storage::sim::OpKind::{Map, Read};
    let trace = read_through(&storage);
    assert_eq!(writes(&trace), vec![], "a reader wrote");
    let (newest, older) = segments.split_last().unwrap();
    assert!(
        !how_read(&trace, newest).is_empty() && how_read(&trace, newest).iter().all(|k| *k == Read)
    );
    for name in older {
        assert!(
            how_read(&trace, name).contains(&Map),
            "{name} was not mapped: {:?} {segments:?}",
            how_read(&trace, name)
        );
    }
    // A frameless newest segment (created by a roll whose header never got written: a crash
    // leaves it, and the next writer cuts the torn tail of the one before it, if any): the
    // segment before it is read, not mapped.
    let frameless = reprise::layout::segment_path(Path::new(SIM_ROOT), GUILDS[0], 61);
    drop(storage.create_new(&frameless).unwrap());
    let trace = read_through(&storage);
    assert_eq!(writes(&trace), vec![], "a reader wrote");
    assert!(
        !how_read(&trace, newest).is_empty() && how_read(&trace, newest).iter().all(|k| *k == Read),
        "{newest}: {:?}",
        how_read(&trace, newest)
    );
    for name in older {
        assert!(
            how_read(&trace, name).contains(&Map),
            "{name} was not mapped: {:?} {segments:?}",
            how_read(&trace, name)
        );
    }
}

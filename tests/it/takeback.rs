//! A fenced owner taking its guild back (`Remote::claim` into a directory holding an older
//! copy), with a power loss before every storage operation of the claim: claiming again on
//! what survived always gives the store's history, and the old copy (events acknowledged only
//! locally included) is still whole across the superseded directories.

#![cfg(feature = "remote")]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use object_store::memory::InMemory;
use reprise::journal::OpenMode;
use reprise::remote::{LocalDir, Remote};
use reprise::storage::sim::{Capture, CrashMode, SimStorage};
use reprise::storage::Storage;
use reprise::{Config, Durability, Event, GuildId, Journal, State};

const GUILD: GuildId = GuildId(81_604_378_113_851_442);
const ROOT_A: &str = "/srv/a";

fn config() -> Config {
    Config::default()
}

fn open(storage: &Arc<SimStorage>, root: &str) -> Journal {
    Journal::open_with(
        root,
        config(),
        OpenMode::ReadWrite,
        Arc::clone(storage) as Arc<dyn Storage>,
    )
    .unwrap()
}

fn volume(v: u16) -> Event {
    Event::VolumeSet { volume: v }
}

/// Appends `events` to `journal` as the guild's owner and ships them (acknowledged remotely).
async fn append_and_ship(remote: &Remote, journal: &mut Journal, name: &str, events: &[Event]) {
    for e in events {
        journal.append(GUILD, e, Durability::Always).unwrap();
    }
    let local = LocalDir::of(journal);
    let mut writer = remote.writer(&local).await.unwrap();
    let me = remote
        .owner(&local, &mut writer, GUILD, name)
        .await
        .unwrap();
    let mut owners = [me];
    remote
        .ship_events(journal, &mut writer, &mut owners)
        .await
        .unwrap();
    assert_eq!(owners[0].head, journal.state(GUILD).unwrap().seq);
}

/// Every file under `dir` (recursively) of `storage`: path and bytes.
fn files_under(storage: &dyn Storage, dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let Ok(names) = storage.list(dir) else {
        return out;
    };
    for name in names {
        let path = dir.join(&name);
        match storage.read(&path, 1 << 30) {
            Ok(bytes) => out.push((path, bytes.to_vec())),
            Err(_) => out.extend(files_under(storage, &path)),
        }
    }
    out
}

/// The files of each superseded directory: name and bytes.
fn superseded_dirs(storage: &dyn Storage) -> Vec<Vec<(String, Vec<u8>)>> {
    let root = Path::new(ROOT_A).join("remote/superseded");
    let mut dirs = storage.list(&root).unwrap();
    dirs.sort();
    dirs.iter()
        .map(|d| {
            files_under(storage, &root.join(d))
                .into_iter()
                .map(|(p, bytes)| (p.file_name().unwrap().to_string_lossy().into_owned(), bytes))
                .filter(|(name, _)| !name.ends_with(".tmp"))
                .collect()
        })
        .collect()
}

/// The state `files` recover to as the guild directory of a journal of their own, if any.
fn state_of(files: &[(String, Vec<u8>)]) -> Option<(u64, State)> {
    let tmp = tempfile::tempdir().unwrap();
    let guild_dir = reprise::layout::guild_dir(tmp.path(), GUILD);
    std::fs::create_dir_all(&guild_dir).unwrap();
    for (name, bytes) in files {
        std::fs::write(guild_dir.join(name), bytes).unwrap();
    }
    let mut journal = Journal::open(tmp.path(), config()).ok()?;
    let s = journal.state(GUILD).ok()?;
    Some((s.seq, s.state.clone()))
}

/// Whether one superseded directory, or all of them together (a copy whose move a power loss
/// interrupted is finished by the next claim, into a directory of its own), recover to
/// `seq` and `state`.
fn copy_kept(storage: &dyn Storage, seq: u64, state: &State) -> bool {
    let dirs = superseded_dirs(storage);
    let all: Vec<(String, Vec<u8>)> = dirs.concat();
    let found = dirs
        .iter()
        .chain([&all])
        .filter_map(|files| state_of(files))
        .any(|(s, st)| s == seq && st == *state);
    found
}

#[test]
fn a_power_loss_anywhere_in_taking_a_guild_back_loses_nothing() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = Arc::new(InMemory::new());
        let remote = Remote::new(store.clone(), "fleet");
        // A owns the guild: 30 events shipped, a snapshot, then 10 only A acknowledged.
        let a = Arc::new(SimStorage::new(7));
        let mut journal_a = open(&a, ROOT_A);
        let first: Vec<Event> = (0..30).map(volume).collect();
        append_and_ship(&remote, &mut journal_a, "a", &first).await;
        journal_a.snapshot_now(GUILD).unwrap();
        for v in 500..510 {
            journal_a
                .append(GUILD, &volume(v), Durability::Always)
                .unwrap();
        }
        let a_copy = journal_a.state(GUILD).unwrap().clone();
        assert_eq!(a_copy.seq, 40);

        // B claims it (epoch 2) and adds 5 events of its own.
        let b = Arc::new(SimStorage::new(8));
        let mut journal_b = open(&b, "/srv/b");
        let claimed = remote.claim(&mut journal_b, GUILD, "b").await.unwrap();
        assert_eq!((claimed.epoch.get(), claimed.seq), (2, 30));
        let more: Vec<Event> = (900..905).map(volume).collect();
        append_and_ship(&remote, &mut journal_b, "b", &more).await;
        let history = journal_b.state(GUILD).unwrap().clone();
        assert_eq!(history.seq, 35);

        // A takes it back, every state of its storage recorded.
        a.set_capture(Capture::Every);
        let back = remote.claim(&mut journal_a, GUILD, "a").await.unwrap();
        assert_eq!((back.epoch.get(), back.seq), (3, 35));
        assert_eq!(back.superseded.as_ref().unwrap().seq, Some(40));
        assert!(journal_a.state(GUILD).unwrap().state == history.state);
        let captures = a.take_captures();
        assert!(captures.len() > 10, "{} operations", captures.len());
        assert_eq!(superseded_dirs(a.as_ref()).len(), 1);
        assert!(copy_kept(a.as_ref(), 40, &a_copy.state));

        // A power loss before any of those operations, then the claim again (against the
        // store as the completed claim left it: it may have got that far before the loss).
        let mut superseded_runs = 0;
        for (i, captured) in captures.iter().enumerate() {
            for mode in [
                CrashMode::DropUnsynced,
                CrashMode::Writeback { seed: i as u64 },
                CrashMode::Holed { seed: i as u64 },
            ] {
                let s = Arc::new(captured.crash(mode));
                let remote = Remote::new(Arc::new(store.fork()), "fleet");
                let mut journal = open(&s, ROOT_A);
                let again = remote
                    .claim(&mut journal, GUILD, "a")
                    .await
                    .unwrap_or_else(|e| panic!("op {}: {mode:?}: {e}", captured.op()));
                let got = journal.state(GUILD).unwrap();
                assert!(
                    again.seq == 35 && got.seq == 35 && got.state == history.state,
                    "op {}: {mode:?}: claimed {again:?}",
                    captured.op()
                );
                assert!(journal.verify().unwrap().is_sound(), "op {}", captured.op());
                drop(journal);
                // A's own copy is whole, wherever the two claims put its files.
                assert!(
                    copy_kept(s.as_ref(), 40, &a_copy.state),
                    "op {}: {mode:?}: A's copy is lost",
                    captured.op()
                );
                superseded_runs += usize::from(again.superseded.is_some());
            }
        }
        assert!(superseded_runs > 0);
    });
}

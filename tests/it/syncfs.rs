//! Checkpoints on storage whose `syncfs` lies ([`SyncfsMode`]): a no-op that reports success
//! (FUSE), and one that drops the write-back and reports no error (Linux before 5.8, or an
//! error another process already consumed). A checkpoint drops the commit logs only once every
//! file written since the last one is durable by its own `fdatasync`, so that a clean close
//! followed by a power loss keeps every acknowledged event whatever `syncfs` does.

use std::path::Path;
use std::sync::Arc;

use reprise::storage::sim::{CrashMode, OpKind, SimStorage, SyncfsMode, EIO};
use reprise::storage::Storage;
use reprise::{Config, Durability, Error, GuildId};

use crate::common::stream;

use crate::common::{open_sim as open, SIM_ROOT as ROOT};

const MODES: [SyncfsMode; 3] = [
    SyncfsMode::Flushes,
    SyncfsMode::NoOp,
    SyncfsMode::DropsWriteback,
];

fn storage(mode: SyncfsMode, threads: usize) -> Arc<SimStorage> {
    let s = SimStorage::new(13);
    s.create_dir_all(Path::new(ROOT)).unwrap();
    s.sync_dir(Path::new("/srv")).unwrap();
    s.sync_dir(Path::new("/")).unwrap();
    s.set_syncfs_mode(mode);
    s.set_sync_parallelism(threads);
    Arc::new(s)
}

/// `guilds` guilds, `per_guild` events each acknowledged with `always`, then a close: returns
/// what `close` said.
fn acknowledge_and_close(
    storage: &Arc<SimStorage>,
    config: &Config,
    guilds: u64,
    per_guild: usize,
) -> reprise::Result<()> {
    let mut j = open(storage, config).unwrap();
    for g in 1..=guilds {
        let (events, _) = stream(g, per_guild);
        for e in &events {
            j.append(GuildId(g), e, Durability::Always).unwrap();
        }
    }
    j.close()
}

/// Every acknowledged event of every guild after a power loss (DropUnsynced) of `storage`.
fn assert_all_survive(
    storage: &SimStorage,
    config: &Config,
    guilds: u64,
    per_guild: u64,
    what: &str,
) {
    let after = Arc::new(storage.crash(CrashMode::DropUnsynced));
    let mut j = open(&after, config).unwrap();
    for g in 1..=guilds {
        let seq = j.state(GuildId(g)).unwrap().seq;
        assert_eq!(
            seq, per_guild,
            "{what}: guild {g} after a clean close and a power loss"
        );
    }
    assert!(j.verify().unwrap().is_sound(), "{what}");
}

/// The found bug: with a `syncfs` that flushes nothing, `close` returned `Ok` after dropping
/// the commit log, and a power loss then lost every acknowledged event.
#[test]
fn regression_a_clean_close_survives_a_power_loss_when_syncfs_is_a_no_op() {
    let config = Config::default();
    let s = storage(SyncfsMode::NoOp, 1);
    let closed = acknowledge_and_close(&s, &config, 1, 5);
    assert!(closed.is_ok(), "{closed:?}");
    assert_all_survive(&s, &config, 1, 5, "syncfs no-op");
}

/// `syncfs` dropped the write-back of the segments and reported nothing. With enough dirty
/// guilds the checkpoint runs `syncfs` as a pre-pass: its own `fdatasync` on the descriptor that
/// wrote each segment still reports the error, so `close` fails and keeps the commit log, and
/// the events survive through it. (Before the fix `close` returned `Ok` and every event was
/// lost.)
#[test]
fn regression_a_clean_close_survives_a_power_loss_when_syncfs_drops_the_writeback() {
    let config = Config::default();
    let s = storage(SyncfsMode::DropsWriteback, 1);
    let closed = acknowledge_and_close(&s, &config, 70, 5);
    let Err(Error::Io { op, source, .. }) = &closed else {
        panic!("close after a dropped write-back: {closed:?}");
    };
    assert_eq!(
        (*op, source.raw_os_error()),
        ("fsync", Some(EIO)),
        "{closed:?}"
    );
    assert_all_survive(&s, &config, 70, 5, "syncfs drops write-back");
}

/// Many guilds, some of whose segments the open-file cap closed before the checkpoint, under
/// every mode, with the fsyncs one after the other and on 8 threads.
#[test]
fn every_syncfs_mode_keeps_a_clean_close_with_many_guilds() {
    let config = Config::default().with_open_files_max(8);
    for mode in MODES {
        for threads in [1, 8] {
            let s = storage(mode, threads);
            let closed = acknowledge_and_close(&s, &config, 70, 3);
            if mode != SyncfsMode::DropsWriteback {
                assert!(closed.is_ok(), "{mode:?}: {closed:?}");
            }
            assert_all_survive(&s, &config, 70, 3, &format!("{mode:?}, {threads} threads"));
        }
    }
}

/// The first checkpoint after an unclean shutdown makes every inherited guild durable without
/// trusting `syncfs`.
#[test]
fn every_syncfs_mode_keeps_a_checkpoint_after_an_unclean_shutdown() {
    let config = Config::default();
    for mode in MODES {
        let s = storage(mode, 1);
        {
            let mut j = open(&s, &config).unwrap();
            for g in 1..=70u64 {
                let (events, _) = stream(g, 4);
                for e in &events {
                    j.append(GuildId(g), e, Durability::Always).unwrap();
                }
            }
            j.flush().unwrap();
            // Dropped without close: a process crash, the frames are in the page cache only.
        }
        let mut j = open(&s, &config).unwrap();
        let syncs_before = s.op_count_of(OpKind::SyncData);
        let retired = j.retire_commit_logs(false);
        if mode != SyncfsMode::DropsWriteback {
            assert!(retired.is_ok(), "{mode:?}: {retired:?}");
            assert!(s.op_count_of(OpKind::SyncData) > syncs_before, "{mode:?}");
        }
        drop(j);
        assert_all_survive(&s, &config, 70, 4, &format!("{mode:?} after a restart"));
    }
}

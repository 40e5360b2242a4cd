//! The async [`Reprise`] handle under faults: batches are all or nothing on an I/O error, and
//! (in the crash simulation) after a power loss at any point the recovered state is a prefix
//! holding every acknowledged event, and no subscriber saw an event recovery then lacks.

use std::path::Path;
use std::sync::Arc;

use reprise::storage::sim::{Fault, InjectedError, OpKind, SimStorage};
use reprise::storage::Storage;
use reprise::{Config, Durability, Error, GuildId, Journal, OpenMode, Reprise, SubscriptionError};

use crate::common::stream;

const ROOT: &str = "/srv/reprise";

fn sim(seed: u64) -> Arc<SimStorage> {
    let s = SimStorage::new(seed);
    s.create_dir_all(Path::new(ROOT)).unwrap();
    s.sync_dir(Path::new("/srv")).unwrap();
    s.sync_dir(Path::new("/")).unwrap();
    Arc::new(s)
}

fn open_journal(storage: &Arc<SimStorage>, config: &Config) -> Journal {
    Journal::open_with(
        ROOT,
        config.clone(),
        OpenMode::ReadWrite,
        Arc::clone(storage) as Arc<dyn Storage>,
    )
    .unwrap()
}

/// Issue 13 item 5: an I/O error part-way through a batch (a write that fails after writing
/// part of its bytes, at each of the first appends to any file after the batch starts) leaves
/// the batch all in or all out: either the caller gets `Ok`, or it gets `Err` and none of the
/// batch is in the journal (a retry appends it once), or the journal refuses everything after
/// (poisoned) and a reopen recovers a prefix. A subscriber never sees a gap or a duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_append_many_is_all_or_nothing_on_an_io_error_part_way() {
    let g = GuildId(9);
    let (events, states) = stream(7, 300);
    let config = Config::default()
        .without_auto_snapshots()
        .with_snapshot_interval(None)
        .with_segment_bytes_max(4 << 10)
        .with_durability(Durability::Always);
    for k in 0..4 {
        let storage = sim(5 + k);
        let rt = Reprise::open_with_storage(
            ROOT,
            config.clone(),
            Arc::clone(&storage) as Arc<dyn Storage>,
        )
        .await
        .unwrap();
        let mut sub = rt.subscribe(g).await.unwrap();
        assert_eq!(
            rt.append_many(g, events[..10].to_vec()).await.unwrap(),
            (1..=10).collect::<Vec<u64>>()
        );
        storage.set_fault(Fault::FailKind {
            kind: OpKind::Append,
            nth: storage.op_count_of(OpKind::Append) + k,
            sticky: false,
            error: InjectedError::ShortWrite,
        });
        let failed = rt.append_many(g, events[10..300].to_vec()).await;
        storage.clear_faults();
        let mut seen = 10;
        match failed {
            Ok(seqs) => {
                assert_eq!(seqs, (11..=300).collect::<Vec<u64>>());
                seen = 300;
            }
            Err(_) => match rt.append_many(g, events[10..300].to_vec()).await {
                Ok(seqs) => {
                    assert_eq!(
                        seqs,
                        (11..=300).collect::<Vec<u64>>(),
                        "fault at append {k}"
                    );
                    seen = 300;
                }
                Err(e) => assert!(matches!(e, Error::Poisoned { .. }), "{e}"),
            },
        }
        if seen == 300 {
            assert_eq!(rt.state(g).await.unwrap().state, states[300]);
        }
        for want in 1..=seen {
            let got = sub.recv().await.unwrap();
            assert_eq!(got.seq, want, "fault at append {k}");
            assert_eq!(got.event, events[want as usize - 1]);
        }
        let _ = rt.shutdown().await;
        assert!(matches!(sub.recv().await, Err(SubscriptionError::Closed)));
        let mut j = open_journal(&storage, &config);
        let got = j.state(g).unwrap().clone();
        assert!(got.seq >= seen, "fault at append {k}: {} < {seen}", got.seq);
        assert_eq!(got.state, states[got.seq as usize]);
        if seen == 10 {
            // Poisoned: the batch survives whole or not at all? Only a prefix is promised.
            assert!(got.seq <= 300);
        }
    }
}

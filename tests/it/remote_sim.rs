//! A deterministic simulation of ownership handover through a faulty object store.
//!
//! Per seed: owner A ships two guilds with `remote` acknowledgements, both in the same batch
//! objects of its writer log; one or two claimers start at a random moment (two at once in
//! some seeds), take the first guild only and continue appending once they own it, while A
//! goes on with the second guild in the same log that now holds the first guild's fence;
//! the store delays every request (reordering concurrent ones), fails some, loses the answer of
//! some successful writes and goes down for a while. Everything runs on one thread with tokio's
//! paused clock, so a seed replays exactly. At the end a final claim into an empty directory
//! must give exactly the fold of the history the owners handed over, which must contain every
//! event any owner got a `remote` acknowledgement for, and no sequence number may be
//! acknowledged by two owners; a final claim of the second guild must hold everything A
//! acknowledged for it.
//!
//! `REPRISE_REMOTE_SEEDS=N` runs N seeds (default 24); `REPRISE_REMOTE_SEED=S` runs seed S only.

#![cfg(feature = "remote")]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::stream::BoxStream;
use object_store::memory::InMemory;
use object_store::path::Path as ObjectPath;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use reprise::remote::batch;
use reprise::remote::faulty::{Faults, FaultyStore};
use reprise::remote::{LocalDir, Owner, Remote, Writer};
use reprise::session::{apply, State, HISTORY_MAX_DEFAULT};
use reprise::{Config, Durability, Error, Event, GuildId, Journal, Seq};

const GUILD: GuildId = GuildId(81_604_378_113_851_442);
/// The guild A keeps.
const KEPT: GuildId = GuildId(81_604_378_113_851_443);

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn micros(&mut self, max: u64) -> Duration {
        Duration::from_micros(self.below(max + 1))
    }
}

/// The store itself, seen from no client: records, for every batch object stored in a writer
/// log, how far each (guild, epoch) entry reaches. A claim fences a writer log by taking its
/// next position, so a batch stored at all is part of its epoch's (fenced) log.
#[derive(Debug)]
struct Recorder {
    inner: Arc<dyn ObjectStore>,
    /// (guild, epoch) -> the last event an entry of the epoch's log stored reaches.
    reached: Mutex<BTreeMap<(u64, u64), Seq>>,
    /// Snapshots uploaded under a skip name (late uploads of an owner back from a partition).
    skip_uploads: std::sync::atomic::AtomicU64,
}

impl std::fmt::Display for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "recorder({})", self.inner)
    }
}

impl Recorder {
    fn reached(&self, guild: GuildId, epoch: u64) -> Option<Seq> {
        self.reached.lock().unwrap().get(&(guild.0, epoch)).copied()
    }
}

#[async_trait]
impl ObjectStore for Recorder {
    async fn put_opts(
        &self,
        location: &ObjectPath,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let bytes: Vec<u8> = payload.iter().flat_map(|b| b.iter().copied()).collect();
        let result = self.inner.put_opts(location, payload, opts).await;
        if result.is_ok() && location.as_ref().ends_with(".skip") {
            self.skip_uploads
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        if result.is_ok() && location.as_ref().contains("/writers/") && batch::is_batch(&bytes) {
            let decoded = batch::decode(&bytes).expect("a stored batch decodes");
            let mut reached = self.reached.lock().unwrap();
            for e in decoded.entries {
                let r = reached.entry((e.guild, e.epoch.get())).or_insert(0);
                *r = (*r).max(e.last);
            }
        }
        result
    }

    async fn put_multipart_opts(
        &self,
        location: &ObjectPath,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &ObjectPath,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<ObjectPath>>,
    ) -> BoxStream<'static, object_store::Result<ObjectPath>> {
        self.inner.delete_stream(locations)
    }

    fn list(
        &self,
        prefix: Option<&ObjectPath>,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&ObjectPath>,
    ) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &ObjectPath,
        to: &ObjectPath,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

/// What one owner did.
#[derive(Debug, Default)]
struct Ledger {
    name: String,
    /// The epoch it held and the last event of the history it claimed (0 for the first owner).
    epoch: u64,
    start: Seq,
    /// Every event it appended locally.
    local: BTreeMap<Seq, Event>,
    /// The events it got a `remote` acknowledgement for.
    acked: BTreeSet<Seq>,
}

fn config() -> Config {
    Config::default()
        .without_auto_snapshots()
        .with_segment_bytes_max(4096)
        .with_snapshots_retained(1)
}

fn scratch() -> tempfile::TempDir {
    // tmpfs when there is one: the simulation is about the store, not the disk.
    let shm = PathBuf::from("/dev/shm");
    if shm.is_dir() {
        if let Ok(d) = tempfile::tempdir_in(&shm) {
            return d;
        }
    }
    tempfile::tempdir().unwrap()
}

/// Appends `events` events per guild in small batches, acknowledging each batch once it is
/// remote (one shipping round for every guild); stops when every guild is done or fenced.
#[allow(clippy::too_many_arguments)]
async fn run_owner(
    remote: &Remote,
    journal: &mut Journal,
    writer: &mut Writer,
    mut owners: Vec<Owner>,
    tag: u64,
    events: u64,
    rng: &mut Rng,
    ledgers: &mut [Ledger],
) {
    let mut appended = vec![0; owners.len()];
    for _ in 0..400 {
        for (i, me) in owners.iter().enumerate() {
            if me.fenced_by.is_some() {
                continue;
            }
            for _ in 0..=rng.below(3) {
                if appended[i] == events {
                    break;
                }
                let event = Event::PositionReported {
                    position_ms: tag * 1_000_000 + appended[i],
                    at_unix_ms: tag,
                    entry_id: None,
                };
                let seq = journal
                    .append(me.guild, &event, Durability::BATCHED)
                    .unwrap();
                ledgers[i].local.insert(seq, event);
                appended[i] += 1;
            }
        }
        journal.sync().unwrap();
        if rng.below(6) == 0 {
            let g = owners[rng.below(owners.len() as u64) as usize].guild;
            journal.snapshot_now(g).unwrap();
        }
        // Snapshot uploads before the batch too (an owner that does not know yet it was
        // fenced uploads late, in both orders).
        if rng.below(4) == 0 {
            for me in owners.iter_mut().filter(|me| me.fenced_by.is_none()) {
                let _ = remote.ship_snapshots(&LocalDir::of(journal), me).await;
            }
        }
        match remote.ship_events(journal, writer, &mut owners).await {
            Ok(_) => {
                for (me, ledger) in owners.iter_mut().zip(ledgers.iter_mut()) {
                    let start = ledger.start;
                    assert!(
                        me.head >= start,
                        "{}: head {} before the claimed start {start} (epoch {}, fenced by {:?})",
                        ledger.name,
                        me.head,
                        me.epoch,
                        me.fenced_by
                    );
                    let acked: Vec<Seq> = ledger
                        .local
                        .range(start + 1..me.head.max(start) + 1)
                        .map(|(s, _)| *s)
                        .collect();
                    ledger.acked.extend(acked);
                    if rng.below(4) == 0 && me.fenced_by.is_none() {
                        let _ = remote.ship_snapshots(&LocalDir::of(journal), me).await;
                    }
                }
                // Remote retention races with the claims reading the log.
                if rng.below(3) == 0 {
                    let _ = remote.retain(writer, &mut owners).await;
                }
                let done = owners.iter().enumerate().all(|(i, me)| {
                    me.fenced_by.is_some()
                        || (appended[i] == events
                            && me.head == journal.state(me.guild).unwrap().seq)
                });
                if done {
                    return;
                }
            }
            Err(Error::Remote { .. }) => {}
            Err(e) => panic!("{}: {e}", ledgers[0].name),
        }
        tokio::time::sleep(rng.micros(3000)).await;
    }
}

/// Claims the guild (in a fresh directory per attempt, or into `into`, a directory holding
/// an older owner's copy), then appends as its owner.
async fn run_claimer(
    remote: &Remote,
    name: &str,
    tag: u64,
    delay: Duration,
    rng: &mut Rng,
    mut into: Option<&mut Journal>,
) -> Option<Ledger> {
    tokio::time::sleep(delay).await;
    for _ in 0..20 {
        let mut fresh = None;
        let journal: &mut Journal = match into.as_deref_mut() {
            Some(j) => j,
            None => {
                let dir = scratch();
                let j = Journal::open(dir.path(), config()).unwrap();
                &mut fresh.insert((dir, j)).1
            }
        };
        let claimed = match remote.claim(journal, GUILD, name).await {
            // Taking a guild back that was never taken: nothing to own anew.
            Ok(c) if c.epoch == reprise::Epoch(1) => return None,
            Ok(c) => c,
            // A claim that lost a race to another: one taking its guild back tries again.
            Err(Error::Fenced { .. }) if into.is_some() => {
                tokio::time::sleep(rng.micros(5000)).await;
                continue;
            }
            Err(Error::Fenced { .. }) => return None,
            Err(Error::Remote { .. }) => continue,
            Err(e) => panic!("{name}: claim: {e}"),
        };
        let mut ledger = Ledger {
            name: name.to_string(),
            epoch: claimed.epoch.get(),
            start: claimed.seq,
            ..Ledger::default()
        };
        for _ in 0..50 {
            let found = async {
                let local = LocalDir::of(journal);
                let mut writer = remote.writer(&local).await?;
                let me = remote.owner(&local, &mut writer, GUILD, name).await?;
                Ok::<_, Error>((writer, me))
            };
            match found.await {
                Ok((mut writer, me)) => {
                    assert_eq!(
                        (me.epoch.get(), me.head),
                        (claimed.epoch.get(), claimed.seq)
                    );
                    run_owner(
                        remote,
                        journal,
                        &mut writer,
                        vec![me],
                        tag,
                        10 + rng.below(30),
                        rng,
                        std::slice::from_mut(&mut ledger),
                    )
                    .await;
                    return Some(ledger);
                }
                Err(Error::Fenced { .. }) => return Some(ledger),
                Err(Error::Remote { .. }) => tokio::time::sleep(rng.micros(2000)).await,
                Err(e) => panic!("{name}: owner: {e}"),
            }
        }
        return Some(ledger);
    }
    None
}

/// What a seed exercised (summed over seeds and checked to be non-trivial).
#[derive(Debug, Default)]
struct Tally {
    acked: u64,
    claims: u64,
    /// A took the guild back into its own directory.
    taken_back: u64,
    /// A was cut off from the store for a while.
    partitioned: u64,
    /// Snapshots uploaded through the skip path.
    skip_uploads: u64,
    /// Listings that showed an object already deleted.
    ghosts: u64,
    final_seq: u64,
    requests: u64,
}

fn run_seed(seed: u64) -> Tally {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async move {
        let mut tally = Tally::default();
        let mut rng = Rng(seed);
        let faults = Faults {
            delay_max: rng.micros(4000),
            fail_per_mille: rng.below(120) as u32,
            lose_answer_per_mille: rng.below(120) as u32,
            ghost_per_mille: rng.below(400) as u32,
        };
        let recorder = Arc::new(Recorder {
            inner: Arc::new(InMemory::new()),
            reached: Mutex::new(BTreeMap::new()),
            skip_uploads: Default::default(),
        });
        let store = Arc::new(FaultyStore::new(recorder.clone(), seed, faults));
        let remote = Remote::new(store.clone(), "fleet");
        // A is another client of the store, with its own link: a partition cuts A off only.
        let store_a = Arc::new(store.client(seed ^ 0xa));
        let remote_a = Remote::new(store_a.clone(), "fleet");

        // Owner A: claims epoch 1 implicitly at its first contact with the store.
        let dir_a = scratch();
        let mut journal_a = Journal::open(dir_a.path(), config()).unwrap();
        let mut ledgers_a = [
            Ledger {
                name: "a".into(),
                epoch: 1,
                ..Ledger::default()
            },
            Ledger {
                name: "a (kept)".into(),
                epoch: 1,
                ..Ledger::default()
            },
        ];
        let (mut writer_a, owners_a) = loop {
            let found = async {
                let local = LocalDir::of(&journal_a);
                let mut writer = remote_a.writer(&local).await?;
                let me = remote_a.owner(&local, &mut writer, GUILD, "a").await?;
                let kept = remote_a.owner(&local, &mut writer, KEPT, "a").await?;
                Ok::<_, Error>((writer, vec![me, kept]))
            };
            match found.await {
                Ok(found) => break found,
                Err(Error::Remote { .. }) => tokio::time::sleep(Duration::from_millis(1)).await,
                Err(e) => panic!("seed {seed}: a: {e}"),
            }
        };
        let a_events = 10 + rng.below(100);
        // In two thirds of the seeds A is cut off from the store for 20-120 ms while it goes
        // on appending, snapshotting and retaining locally (its local log drops events it
        // never shipped: it comes back through the skip path, uploading late).
        let partition = (rng.below(3) != 0)
            .then(|| (rng.micros(60_000), Duration::from_millis(20) + rng.micros(100_000)));
        let mut b_delay = rng.micros(60_000);
        if let Some((at, len)) = partition {
            // B's claim during A's partition, in half of those seeds.
            if rng.below(2) == 0 {
                b_delay = at + rng.micros(len.as_micros() as u64);
            }
        }
        let c_delay = if rng.below(3) == 0 {
            Some(match partition {
                // A claim racing A's late uploads as it heals.
                Some((at, len)) if rng.below(2) == 0 => {
                    (at + len + rng.micros(10_000)).saturating_sub(Duration::from_millis(5))
                }
                _ if rng.below(2) == 0 => b_delay,
                _ => rng.micros(60_000),
            })
        } else {
            None
        };
        let (down_at, down_for) = (rng.micros(80_000), rng.micros(20_000));
        let (mut rng_a, mut rng_b, mut rng_c) = (Rng(rng.next()), Rng(rng.next()), Rng(rng.next()));
        let outage = async {
            tokio::time::sleep(down_at).await;
            store.set_down(true);
            tokio::time::sleep(down_for).await;
            store.set_down(false);
        };
        let cut_off = async {
            if let Some((at, len)) = partition {
                tokio::time::sleep(at).await;
                store_a.set_down(true);
                tokio::time::sleep(len).await;
                store_a.set_down(false);
            }
        };
        // In half the seeds A, once done, takes the guild back into its own directory (its
        // copy is set aside when a newer owner took the guild meanwhile).
        let started = tokio::time::Instant::now();
        let a_back = (rng.below(2) == 0).then(|| started + b_delay + Duration::from_millis(20) + rng.micros(100_000));
        let mut rng_a2 = Rng(rng.next());
        let a = async {
            run_owner(
                &remote_a,
                &mut journal_a,
                &mut writer_a,
                owners_a,
                1,
                a_events,
                &mut rng_a,
                &mut ledgers_a,
            )
            .await;
            match a_back {
                Some(at) => {
                    // Around B's claim: before it (A still owns the guild: nothing to do),
                    // during it, or after it.
                    tokio::time::sleep_until(at).await;
                    run_claimer(&remote_a, "a2", 4, Duration::ZERO, &mut rng_a2, Some(&mut journal_a))
                        .await
                }
                None => None,
            }
        };
        let b = run_claimer(&remote, "b", 2, b_delay, &mut rng_b, None);
        let c = async {
            match c_delay {
                Some(d) => run_claimer(&remote, "c", 3, d, &mut rng_c, None).await,
                None => None,
            }
        };
        let ((), (), a2, b, c) = tokio::join!(outage, cut_off, a, b, c);
        tally.taken_back = u64::from(a2.is_some());

        // The final claim, on a healthy store, into an empty directory.
        store.set_down(false);
        store_a.set_down(false);
        store.set_faults(Faults::default());
        let dir_z = scratch();
        let mut journal_z = Journal::open(dir_z.path(), config()).unwrap();
        let claimed = remote
            .claim(&mut journal_z, GUILD, "z")
            .await
            .unwrap_or_else(|e| panic!("seed {seed}: final claim: {e}"));
        let final_seq = claimed.seq;

        // The guild A kept: everything it acknowledged is in a claim of it, in A's order.
        let [ledger_a, kept_a] = ledgers_a;
        let dir_k = scratch();
        let mut journal_k = Journal::open(dir_k.path(), config()).unwrap();
        let kept = remote
            .claim(&mut journal_k, KEPT, "z")
            .await
            .unwrap_or_else(|e| panic!("seed {seed}: final claim of the kept guild: {e}"));
        assert!(
            kept_a.acked.iter().all(|&s| s <= kept.seq),
            "seed {seed}: the kept guild lost acknowledged events: {} < {:?}",
            kept.seq,
            kept_a.acked.last()
        );
        let mut expected = State::new(HISTORY_MAX_DEFAULT);
        for seq in 1..=kept.seq {
            apply(&mut expected, &kept_a.local[&seq]);
        }
        assert!(
            journal_k.state(KEPT).unwrap().state == expected,
            "seed {seed}: the kept guild's claimed state is not the fold of A's events"
        );

        let mut owners: Vec<Ledger> = vec![ledger_a];
        owners.extend(a2);
        owners.extend(b);
        owners.extend(c);
        owners.sort_by_key(|l| l.epoch);
        // No claim builds on a snapshot its epoch's fenced log does not reach: each claim's
        // history ends where some earlier epoch's stored log reaches (or at 0).
        let reached_before = |epoch: u64| {
            (1..epoch)
                .filter_map(|e| recorder.reached(GUILD, e))
                .max()
                .unwrap_or(0)
        };
        for owner in &owners {
            assert!(
                owner.start <= reached_before(owner.epoch),
                "seed {seed}: the claim of {} (epoch {}) built on seq {}, past every earlier epoch's stored log (reaching {})",
                owner.name,
                owner.epoch,
                owner.start,
                reached_before(owner.epoch)
            );
        }
        assert!(
            final_seq <= reached_before(claimed.epoch.get()),
            "seed {seed}: the final claim (epoch {}) built on seq {final_seq}, past every earlier epoch's stored log (reaching {})",
            claimed.epoch,
            reached_before(claimed.epoch.get())
        );
        let mut history: Vec<&Event> = Vec::new();
        for (k, owner) in owners.iter().enumerate() {
            let end = owners.get(k + 1).map_or(final_seq, |next| next.start);
            assert!(owner.start <= end, "seed {seed}: starts go back: {owners:?}");
            for seq in owner.start + 1..=end {
                let e = owner.local.get(&seq).unwrap_or_else(|| {
                    panic!("seed {seed}: seq {seq} of the remote history was not appended by {} (epoch {})", owner.name, owner.epoch)
                });
                assert_eq!(history.len() as u64 + 1, seq);
                history.push(e);
            }
            for &seq in &owner.acked {
                assert!(
                    seq > owner.start && seq <= end,
                    "seed {seed}: {} acknowledged seq {seq} outside its part {}..={end} of the history",
                    owner.name,
                    owner.start + 1
                );
            }
        }
        assert_eq!(history.len() as u64, final_seq, "seed {seed}");
        let mut expected = State::new(HISTORY_MAX_DEFAULT);
        for e in &history {
            apply(&mut expected, e);
        }
        let got = journal_z.state(GUILD).unwrap();
        assert_eq!(got.seq, final_seq);
        assert!(got.state == expected, "seed {seed}: the claimed state is not the fold of the history");
        tally.acked = owners.iter().map(|o| o.acked.len() as u64).sum::<u64>() + kept_a.acked.len() as u64;
        tally.claims = owners.len() as u64 - 1;
        tally.final_seq = final_seq;
        let r = store.requests();
        let ra = store_a.requests();
        tally.requests = r.puts + r.gets + r.lists + ra.puts + ra.gets + ra.lists;
        tally.partitioned = u64::from(partition.is_some());
        tally.skip_uploads = recorder.skip_uploads.load(std::sync::atomic::Ordering::SeqCst);
        tally.ghosts = store.ghosts_listed() + store_a.ghosts_listed();
        tally
    })
}

#[test]
fn no_acknowledged_event_is_lost_and_no_seq_has_two_owners() {
    if let Some(seed) = std::env::var("REPRISE_REMOTE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        eprintln!("{:?}", run_seed(seed));
        return;
    }
    let seeds: u64 = std::env::var("REPRISE_REMOTE_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(24);
    let started = std::time::Instant::now();
    let mut total = Tally::default();
    let mut handovers_with_acks = 0;
    for seed in 0..seeds {
        let Ok(t) = std::panic::catch_unwind(|| run_seed(seed)) else {
            panic!("seed {seed} failed; replay it with REPRISE_REMOTE_SEED={seed} cargo test --release --test remote_sim");
        };
        if t.claims > 0 && t.acked > 0 {
            handovers_with_acks += 1;
        }
        total.acked += t.acked;
        total.claims += t.claims;
        total.taken_back += t.taken_back;
        total.partitioned += t.partitioned;
        total.skip_uploads += t.skip_uploads;
        total.ghosts += t.ghosts;
        total.final_seq += t.final_seq;
        total.requests += t.requests;
    }
    eprintln!(
        "remote simulation: {seeds} seeds in {:.1?}: {total:?}, {handovers_with_acks} handovers with acknowledgements",
        started.elapsed()
    );
    assert!(
        total.acked > seeds,
        "the simulation acknowledges events: {total:?}"
    );
    assert!(
        total.claims >= seeds / 2,
        "the simulation hands guilds over: {total:?}"
    );
    assert!(handovers_with_acks > 0);
    if seeds >= 24 {
        assert!(
            total.partitioned > 0 && total.skip_uploads > 0 && total.ghosts > 0,
            "owners are cut off, upload late through the skip path, and listings show ghosts: {total:?}"
        );
    }
    assert!(
        total.taken_back >= seeds / 8,
        "old owners take guilds back: {total:?}"
    );
}

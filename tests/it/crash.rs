//! Deterministic crash simulation on [`SimStorage`]: seeded workloads over several guilds, power
//! loss at any storage operation, recovery, and the durability invariant.
//!
//! The invariant, for every guild after every crash: the recovered state is the fold of a prefix
//! of the events appended to that guild; the prefix holds every acknowledged event (an `Always`
//! append that returned `Ok`; every event appended by the same journal before a `sync` that
//! returned `Ok`; everything up to a `snapshot_now` that returned `Ok(Some(seq))`; everything
//! before a `close` that returned `Ok`); and it holds no event whose append had not begun. After
//! recovery `verify` is sound (torn tails allowed), appends continue the sequence, and a second
//! power loss keeps what the recovered journal acknowledged.
//!
//! A run records the storage state before every operation ([`Capture::Every`]); each recorded
//! state is then crashed and recovered on its own, so one run of the workload serves every crash
//! point. Dropping the journal is a process crash: what it still buffered may be lost, but
//! never anything acknowledged.
//!
//! Every crash is checked in full: no crash is excused as a known bug (each bug the simulation
//! found has its `regression_*` test).
//!
//! Environment:
//! - `REPRISE_EXHAUSTIVE=1`: `exhaustive_crash_points` draws 8 torn and 8 write-back crashes
//!   at every operation instead of 1 each.
//! - `REPRISE_CRASH_SEEDS=n`: how many seeds `random_crash_points` runs (default 200).
//! - `REPRISE_CRASH_SEED=s`: `one_seed` replays seed `s` and crashes at every operation of it.
//! - `REPRISE_FAULT_SEEDS=n` (and `REPRISE_FAULT_SEED_FIRST=s` to start at seed `s`),
//!   `REPRISE_SYNC_FAULT='<kind> <nth> <sticky>'`,
//!   `REPRISE_DISK_BUDGET=n`: select the runs of the fault tests.
//! - `REPRISE_CRASH_VERBOSE=1`: print every step, every journal error, and the files before and
//!   after a failing crash.

use std::sync::Arc;
use std::time::Instant;

use reprise::config::COMMIT_PREALLOC_BYTES_DEFAULT;
use reprise::session::{apply, Rng, State, Workload};
use reprise::storage::sim::{
    Capture, Captured, CrashMode, Fault, InjectedError, OpKind, SimStorage, SyncfsMode, EIO, ENOSPC,
};
use reprise::storage::Storage;
use reprise::{Config, Durability, Error, Event, GuildId, Journal, Seq};

/// Where the journal lives in the simulated file system (created durably before each run:
/// the journal directory itself is the caller's).
use crate::common::{env_u64, open_sim as open, SIM_ROOT as ROOT};

/// What an offered `syncfs` may do.
const SYNCFS_MODES: [SyncfsMode; 3] = [
    SyncfsMode::Flushes,
    SyncfsMode::NoOp,
    SyncfsMode::DropsWriteback,
];

/// `syncfs` offered (with each [`SyncfsMode`]) or not.
const SYNCFS_CHOICES: [(bool, SyncfsMode); 4] = [
    (true, SyncfsMode::Flushes),
    (true, SyncfsMode::NoOp),
    (true, SyncfsMode::DropsWriteback),
    (false, SyncfsMode::Flushes),
];

/// The operations that make things durable.
const SYNC_KINDS: [OpKind; 3] = [OpKind::SyncData, OpKind::SyncDir, OpKind::SyncFilesystem];

fn repro(seed: u64) -> String {
    format!(
        "REPRISE_CRASH_SEED={seed} cargo test --release --test it crash::one_seed -- --nocapture"
    )
}

/// One event as the test appended it.
struct Entry {
    /// The fold after it.
    state: State,
    /// The operation index at which its append began.
    started: u64,
    /// When a reopened journal had lost it (it was still in the dropped journal's buffers).
    lost_at: Option<u64>,
}

/// One guild's history as the test knows it: every event ever appended, and the current
/// sequence (a reopen after a simulated process crash may drop a suffix that was never written
/// to the OS; later appends then reuse those sequence numbers).
struct GuildModel {
    id: GuildId,
    workload: Workload,
    genesis: State,
    history: Vec<Entry>,
    /// Indices into `history` of events `1..=seq`.
    current: Vec<usize>,
    /// `(op, seq)`: a power loss before operation `op` or later keeps events `1..=seq`.
    acked: Vec<(u64, Seq)>,
    /// The newest event appended through the current journal (what its `sync` covers).
    appended_by_journal: Option<Seq>,
    /// The operation at which the journal was dropped, until the reopened journal's state of
    /// this guild has been seen.
    reopened_at: Option<u64>,
    /// The operation at which a `close` returned `Ok` while `reopened_at` was pending: the
    /// close acknowledged whatever the journal held of the guild, which the model learns only
    /// when the reopen is resolved (its own `seq` may still count events the dropped journal
    /// lost).
    closed_unobserved: Option<u64>,
}

impl GuildModel {
    fn new(id: GuildId, seed: u64, history_max: u32) -> GuildModel {
        GuildModel {
            id,
            workload: Workload::new(seed ^ id.0.rotate_left(17)),
            genesis: State::new(history_max),
            history: Vec::new(),
            current: Vec::new(),
            acked: Vec::new(),
            appended_by_journal: None,
            reopened_at: None,
            closed_unobserved: None,
        }
    }

    fn seq(&self) -> Seq {
        self.current.len() as Seq
    }

    fn state(&self) -> &State {
        self.current
            .last()
            .map_or(&self.genesis, |i| &self.history[*i].state)
    }

    fn next_event(&mut self) -> Event {
        let state = self.state().clone();
        self.workload.next_event(&state)
    }

    fn push(&mut self, event: Event, started: u64) {
        let mut state = self.state().clone();
        apply(&mut state, &event);
        self.history.push(Entry {
            state,
            started,
            lost_at: None,
        });
        self.current.push(self.history.len() - 1);
        self.appended_by_journal = Some(self.seq());
    }

    fn ack(&mut self, op: u64, seq: Seq) {
        if seq > 0 {
            self.acked.push((op, seq));
        }
    }

    /// Events that must survive a power loss right before operation `op`.
    fn required(&self, op: u64) -> Seq {
        self.acked
            .iter()
            .filter(|(at, _)| *at <= op)
            .map(|(_, s)| *s)
            .max()
            .unwrap_or(0)
    }

    /// The events that may survive a power loss right before operation `op`, in order: those
    /// whose append had begun and that no reopen had lost yet.
    fn sequence_at(&self, op: u64) -> Vec<&Entry> {
        self.history
            .iter()
            .filter(|e| e.started < op && e.lost_at.is_none_or(|at| at > op))
            .collect()
    }

    /// The fold of the first `seq` events of [`GuildModel::sequence_at`].
    fn state_at(&self, op: u64, seq: Seq) -> Option<&State> {
        if seq == 0 {
            return Some(&self.genesis);
        }
        self.sequence_at(op).get(seq as usize - 1).map(|e| &e.state)
    }

    /// The reopened journal holds `seq` events: the rest was lost with the dropped journal.
    fn lose_after(&mut self, seq: Seq, at: u64) {
        for &i in &self.current[seq as usize..] {
            self.history[i].lost_at = Some(at);
        }
        self.current.truncate(seq as usize);
    }

    /// Compares the journal's view of the guild with the model; after a reopen, what the
    /// journal recovered must lie between the acknowledged and the appended events, and the
    /// rest is forgotten.
    fn observe(&mut self, seq: Seq, state: &State) -> Result<(), String> {
        let id = self.id;
        if let Some(at) = self.reopened_at.take() {
            let lo = self.required(at);
            if seq < lo || seq > self.seq() {
                return Err(format!(
                    "guild {id}: the reopened journal holds {seq} events, outside {lo}..={} \
                     (acknowledged..=appended)",
                    self.seq()
                ));
            }
            self.lose_after(seq, at);
            if let Some(closed) = self.closed_unobserved.take() {
                self.ack(closed, seq);
            }
        }
        if seq != self.seq() {
            return Err(format!(
                "guild {id}: the journal is at seq {seq}, the model at {}",
                self.seq()
            ));
        }
        if state != self.state() {
            return Err(format!("guild {id}: the journal's state at {seq} differs"));
        }
        Ok(())
    }
}

/// The shape of one simulated run.
#[derive(Clone, Debug)]
struct Plan {
    seed: u64,
    guilds: Vec<GuildId>,
    config: Config,
    steps: usize,
    /// Whether the storage offers `syncfs` (the journal may use it as a pre-pass; its proof is
    /// its own fsyncs).
    syncfs: bool,
    /// What an offered `syncfs` does.
    syncfs_mode: SyncfsMode,
    /// The command that replays this plan.
    repro: String,
}

impl Plan {
    /// A workload drawn from `seed`: 3 or 4 guilds, tiny segments, small snapshot thresholds.
    fn random(seed: u64) -> Plan {
        let mut rng = Rng::new(seed ^ 0xC2A5_11ED);
        let mut guilds = GUILDS.to_vec();
        if rng.chance(500) {
            guilds.push(GUILD_EXTRA);
        }
        let every_events = rng.chance(800).then(|| rng.range(4, 40));
        let every_bytes = rng.chance(400).then(|| rng.range(2_000, 20_000));
        let mut config = Config::default()
            .with_segment_bytes_max(4096)
            .with_snapshot_every(every_events, every_bytes)
            .with_snapshots_retained(rng.range(1, 3) as u32)
            .with_commit_bytes_max(64 << 10);
        let steps = rng.range(15, 110) as usize;
        let syncfs = rng.chance(500);
        // Drawn apart, so that every seed's workload stays what it was before the modes.
        let syncfs_mode = SYNCFS_MODES[Rng::new(seed ^ 0x0005_F5F5).below(3) as usize];
        // The commit log preallocated in small chunks (extended many times per generation),
        // in the default 1 MiB chunks, or not at all (the format before preallocation).
        let prealloc = [4 << 10, 16 << 10, COMMIT_PREALLOC_BYTES_DEFAULT, 0]
            [Rng::new(seed ^ 0x0A11_0C8E).below(4) as usize];
        config = config.with_commit_prealloc_bytes(prealloc);
        // Half the workloads are encrypted at rest (a deterministic nonce prefix keeps a seed's
        // bytes the same on every run).
        if rng.chance(500) {
            let key = reprise::crypto::Key::from_bytes([seed as u8 ^ 0x5A; 32]);
            let prefix = (u128::from(seed) << 1 | 1).to_le_bytes();
            config = config.with_keys(reprise::crypto::Keyring::with_nonce_prefix(key, [], prefix));
        }
        Plan {
            seed,
            guilds,
            config,
            steps,
            syncfs,
            syncfs_mode,
            repro: repro(seed),
        }
    }
}

/// The kinds of step a run takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Append(usize, Durability),
    Sync,
    Snapshot(usize),
    /// Drop the journal (a process crash, no power loss) and open it again.
    Reopen,
    /// Close the journal and open it again.
    CloseReopen,
    /// Compare the journal's in-memory state with the model.
    Check(usize),
}

/// A journal error a faulty run saw: for [`Error::Io`], what the journal was doing, the path,
/// and the OS error number.
#[derive(Debug)]
struct Seen {
    op: Option<&'static str>,
    path: Option<std::path::PathBuf>,
    os: Option<i32>,
}

impl Seen {
    fn of(e: &Error) -> Seen {
        match e {
            Error::Io { op, path, source } => Seen {
                op: Some(*op),
                path: Some(path.clone()),
                os: source.raw_os_error(),
            },
            _ => Seen {
                op: None,
                path: None,
                os: None,
            },
        }
    }
}

/// A journal on a [`SimStorage`] driven by a seeded workload, with the model of what it must
/// keep.
struct Run {
    plan: Plan,
    storage: Arc<SimStorage>,
    journal: Option<Journal>,
    models: Vec<GuildModel>,
    rng: Rng,
    /// Faults are injected: journal errors are expected (but must be typed and lose nothing
    /// acknowledged).
    faulty: bool,
    /// Errors the journal returned (only when faulty).
    errors: Vec<Seen>,
    /// Reopens that were needed because a log was poisoned.
    poison_reopens: usize,
}

fn journal_root() -> &'static std::path::Path {
    std::path::Path::new(ROOT)
}

/// The guilds every plan uses (a fourth, [`GUILD_EXTRA`], sometimes).
const GUILDS: [GuildId; 3] = [GuildId(1), GuildId(613_425_648_685_547_541), GuildId(77)];
const GUILD_EXTRA: GuildId = GuildId(4_000_000_007);

/// A storage holding an empty, durable journal directory.
fn fresh_storage(seed: u64) -> Arc<SimStorage> {
    let s = SimStorage::new(seed);
    s.create_dir_all(journal_root()).unwrap();
    s.sync_dir(std::path::Path::new("/srv")).unwrap();
    s.sync_dir(std::path::Path::new("/")).unwrap();
    Arc::new(s)
}

impl Run {
    fn new(plan: &Plan, storage: Arc<SimStorage>, faulty: bool) -> Run {
        storage.set_syncfs(plan.syncfs);
        storage.set_syncfs_mode(plan.syncfs_mode);
        let history_max = plan.config.history_max;
        let models = plan
            .guilds
            .iter()
            .map(|g| GuildModel::new(*g, plan.seed, history_max))
            .collect();
        let mut run = Run {
            plan: plan.clone(),
            storage,
            journal: None,
            models,
            rng: Rng::new(plan.seed),
            faulty,
            errors: Vec::new(),
            poison_reopens: 0,
        };
        run.open_journal();
        run
    }

    fn ctx(&self) -> String {
        format!(
            "seed {} at op {}; reproduce: {}",
            self.plan.seed,
            self.storage.op_count(),
            self.plan.repro
        )
    }

    fn open_journal(&mut self) {
        self.journal = None;
        let mut last = None;
        for _ in 0..4 {
            match open(&self.storage, &self.plan.config) {
                Ok(j) => {
                    self.journal = Some(j);
                    return;
                }
                Err(e) if self.faulty => last = Some(e),
                Err(e) => panic!("open failed: {e}; {}", self.ctx()),
            }
        }
        // The faults keep the journal from opening: let the disk recover.
        self.storage.clear_faults();
        match open(&self.storage, &self.plan.config) {
            Ok(j) => self.journal = Some(j),
            Err(e) => panic!(
                "open failed even without faults: {e} (before: {last:?}); {}",
                self.ctx()
            ),
        }
    }

    fn journal(&mut self) -> &mut Journal {
        if self.journal.is_none() {
            self.open_journal();
        }
        self.journal.as_mut().expect("opened above")
    }

    fn draw(&mut self) -> Step {
        let gi = self.rng.below(self.models.len() as u64) as usize;
        match self.rng.below(100) {
            0..=29 => Step::Append(gi, Durability::Always),
            30..=49 => Step::Append(gi, Durability::BATCHED),
            50..=69 => Step::Append(gi, Durability::None),
            70..=79 => Step::Sync,
            80..=85 => Step::Snapshot(gi),
            86..=90 => Step::Reopen,
            91..=93 => Step::CloseReopen,
            _ => Step::Check(gi),
        }
    }

    fn run_steps(&mut self, steps: usize) {
        for _ in 0..steps {
            let step = self.draw();
            self.step(step);
        }
    }

    /// Records a journal error (faulty runs) or fails (fault-free runs).
    fn failed(&mut self, step: Step, e: &Error) {
        assert!(
            self.faulty,
            "{step:?} failed without any fault: {e}; {}",
            self.ctx()
        );
        assert!(
            matches!(e, Error::Io { .. } | Error::Poisoned { .. }),
            "{step:?} failed with an untyped or unexpected error: {e:?}; {}",
            self.ctx()
        );
        if std::env::var_os("REPRISE_CRASH_VERBOSE").is_some() {
            eprintln!("      -> {step:?} failed: {e}");
        }
        self.errors.push(Seen::of(e));
        if matches!(e, Error::Poisoned { .. }) {
            self.poison_reopens += 1;
            self.journal = None;
            self.reopen(false);
        }
    }

    fn step(&mut self, step: Step) {
        if std::env::var_os("REPRISE_CRASH_VERBOSE").is_some() {
            let seqs: Vec<Seq> = self.models.iter().map(GuildModel::seq).collect();
            eprintln!(
                "op {:>5}: {step:?} (seqs before: {seqs:?})",
                self.storage.op_count()
            );
        }
        match step {
            Step::Append(gi, durability) => self.append(gi, durability),
            Step::Sync => self.sync(),
            Step::Snapshot(gi) => self.snapshot(gi),
            Step::Reopen => self.reopen(false),
            Step::CloseReopen => self.reopen(true),
            Step::Check(gi) => {
                self.check_live(gi);
            }
        }
    }

    fn append(&mut self, gi: usize, durability: Durability) {
        if !self.observe(gi) {
            return;
        }
        let event = self.models[gi].next_event();
        let id = self.models[gi].id;
        let start = self.storage.op_count();
        let injected = self.sync_faults();
        let result = self.journal().append(id, &event, durability);
        let end = self.storage.op_count();
        match result {
            Ok(seq) => {
                assert_eq!(
                    seq,
                    self.models[gi].seq() + 1,
                    "guild {id}: append returned the wrong seq; {}",
                    self.ctx()
                );
                self.assert_no_swallowed_sync_fault(injected, "append");
                self.models[gi].push(event, start);
                if durability == Durability::Always {
                    self.models[gi].ack(end, seq);
                }
            }
            Err(e) => {
                // Did the event make it into the journal's state anyway?
                let now = self.journal().state(id).map(|s| s.seq);
                let model_seq = self.models[gi].seq();
                match now {
                    Ok(s) if s == model_seq + 1 => self.models[gi].push(event, start),
                    Ok(s) => assert_eq!(
                        s,
                        model_seq,
                        "guild {id}: after a failed append the state is at {s}; {}",
                        self.ctx()
                    ),
                    Err(_) => {}
                }
                self.failed(Step::Append(gi, durability), &e);
            }
        }
    }

    /// Failed sync operations so far.
    fn sync_faults(&self) -> u64 {
        SYNC_KINDS
            .iter()
            .map(|k| self.storage.injected_count_of(*k))
            .sum()
    }

    /// A sync that failed during a call that then returned `Ok` would be an fsync failure
    /// swallowed (fsyncgate): nothing may be acknowledged after one.
    fn assert_no_swallowed_sync_fault(&self, sync_faults_before: u64, what: &str) {
        assert_eq!(
            self.sync_faults(),
            sync_faults_before,
            "{what} returned Ok although a sync failed during it (faults {:?}); {}",
            self.storage.faults(),
            self.ctx()
        );
    }

    fn sync(&mut self) {
        let injected = self.sync_faults();
        match self.journal().sync() {
            Ok(()) => {
                self.assert_no_swallowed_sync_fault(injected, "sync");
                let end = self.storage.op_count();
                for m in &mut self.models {
                    if let Some(seq) = m.appended_by_journal {
                        m.ack(end, seq);
                    }
                }
            }
            Err(e) => self.failed(Step::Sync, &e),
        }
    }

    fn snapshot(&mut self, gi: usize) {
        if !self.observe(gi) {
            return;
        }
        let id = self.models[gi].id;
        let injected = self.sync_faults();
        match self.journal().snapshot_now(id) {
            Ok(seq) => {
                self.assert_no_swallowed_sync_fault(injected, "snapshot_now");
                let m = &mut self.models[gi];
                assert_eq!(
                    seq.unwrap_or(0),
                    m.seq(),
                    "guild {id}: snapshot at the wrong seq"
                );
                let end = self.storage.op_count();
                self.models[gi].ack(end, seq.unwrap_or(0));
            }
            Err(e) => self.failed(Step::Snapshot(gi), &e),
        }
    }

    fn reopen(&mut self, close: bool) {
        let mut closed = false;
        if let Some(j) = self.journal.take() {
            if close {
                let injected = self.sync_faults();
                match j.close() {
                    Ok(()) => {
                        self.assert_no_swallowed_sync_fault(injected, "close");
                        closed = true;
                        let end = self.storage.op_count();
                        for m in &mut self.models {
                            if m.reopened_at.is_some() {
                                // The journal's state of this guild is not known yet: the
                                // model's seq may count events a dropped journal lost.
                                m.closed_unobserved.get_or_insert(end);
                            } else {
                                let seq = m.seq();
                                m.ack(end, seq);
                            }
                        }
                    }
                    Err(e) => self.failed(Step::CloseReopen, &e),
                }
            }
        }
        let at = self.storage.op_count();
        for m in &mut self.models {
            m.appended_by_journal = None;
            // After a clean close nothing may be missing; after a drop, what was still
            // buffered may be.
            if !closed && m.reopened_at.is_none() {
                m.reopened_at = Some(at);
            }
        }
        self.open_journal();
        for gi in 0..self.models.len() {
            self.observe(gi);
        }
    }

    /// Resolves a pending reopen of the guild (its recovered state is compared with the model);
    /// false when the journal cannot tell its state now (an injected fault).
    fn observe(&mut self, gi: usize) -> bool {
        if self.models[gi].reopened_at.is_none() {
            return true;
        }
        self.check_live(gi)
    }

    /// The journal's current state of a guild equals the model's; false when the journal
    /// could not tell (an injected fault).
    fn check_live(&mut self, gi: usize) -> bool {
        let id = self.models[gi].id;
        let faulty = self.faulty;
        match self.journal().state(id) {
            Ok(s) => {
                let (seq, state) = (s.seq, s.state.clone());
                if let Err(msg) = self.models[gi].observe(seq, &state) {
                    panic!("{msg}; {}", self.ctx());
                }
                true
            }
            Err(e) if faulty => {
                if std::env::var_os("REPRISE_CRASH_VERBOSE").is_some() {
                    eprintln!("      -> state of guild {id} failed: {e}");
                }
                self.errors.push(Seen::of(&e));
                false
            }
            Err(e) => panic!("guild {id}: state failed: {e}; {}", self.ctx()),
        }
    }
}

/// A fault-free run of `plan` on a fresh storage recording every state.
fn recorded_run(plan: &Plan) -> (Run, Vec<Captured>) {
    let storage = fresh_storage(plan.seed);
    storage.set_capture(Capture::Every);
    let mut run = Run::new(plan, storage, false);
    run.run_steps(plan.steps);
    let captures = run.storage.take_captures();
    (run, captures)
}

fn mode_tag(mode: CrashMode) -> u64 {
    match mode {
        CrashMode::DropUnsynced => 1,
        CrashMode::TornTail { .. } => 2,
        CrashMode::Writeback { .. } => 3,
        CrashMode::Holed { .. } => 4,
    }
}

/// The four ways to lose power at operation `op`.
fn modes(op: u64) -> [CrashMode; 4] {
    [
        CrashMode::DropUnsynced,
        CrashMode::TornTail { seed: op },
        CrashMode::Writeback {
            seed: op ^ 0x00DE_CAF0,
        },
        CrashMode::Holed {
            seed: op ^ 0x0401_E500,
        },
    ]
}

/// Loses power in `mode` right before `cap.op()`, recovers, and checks the invariant for every
/// guild; then appends, crashes again and checks that the recovered journal's acknowledgements
/// hold.
fn check_crash(
    plan: &Plan,
    models: &[GuildModel],
    cap: &Captured,
    mode: CrashMode,
) -> Result<u64, String> {
    let k = cap.op();
    let storage = Arc::new(cap.crash(mode));
    let survived = listing(&storage);
    let at = |what: String| {
        let files = if std::env::var_os("REPRISE_CRASH_VERBOSE").is_some() {
            format!(
                "\n  before the crash: {}\n  after: {survived}",
                listing(&cap.resume())
            )
        } else {
            String::new()
        };
        format!(
            "seed {} power lost before op {k} ({mode:?}): {what}{files}\n  reproduce: {}",
            plan.seed, plan.repro
        )
    };
    storage.set_syncfs(plan.syncfs);
    storage.set_syncfs_mode(plan.syncfs_mode);
    let mut j = open(&storage, &plan.config).map_err(|e| at(format!("open failed: {e}")))?;
    let report = j.verify().map_err(|e| at(format!("verify failed: {e}")))?;
    if !report.is_sound() {
        return Err(at(format!("verify found damage: {:?}", report.findings)));
    }
    let mut expect = Vec::new();
    for m in models {
        let s = j
            .state(m.id)
            .map_err(|e| at(format!("guild {}: recovery failed: {e}", m.id)))?
            .clone();
        let (lo, hi) = (m.required(k), m.sequence_at(k).len() as Seq);
        if s.seq < lo || s.seq > hi {
            return Err(at(format!(
                "guild {}: recovered seq {} outside {lo}..={hi} (acknowledged..=begun)",
                m.id, s.seq
            )));
        }
        if m.state_at(k, s.seq) != Some(&s.state) {
            return Err(at(format!(
                "guild {}: the recovered state at seq {} is not the fold of the first {} events",
                m.id, s.seq, s.seq
            )));
        }
        expect.push((m.id, s.seq, s.state));
    }
    // Life goes on: appends continue each sequence and are durable.
    let mut rng = Rng::new(plan.seed ^ k.rotate_left(29) ^ mode_tag(mode));
    for (id, seq, state) in &mut expect {
        let snapshotted = rng.chance(300);
        if snapshotted {
            let s = j
                .snapshot_now(*id)
                .map_err(|e| at(format!("guild {id}: snapshot after recovery failed: {e}")))?;
            if s.unwrap_or(0) != *seq {
                return Err(at(format!("guild {id}: snapshot after recovery at {s:?}")));
            }
        }
        let mut w = Workload::new(rng.next_u64());
        for _ in 0..2 {
            let e = w.next_event(state);
            let got = j
                .append(*id, &e, Durability::Always)
                .map_err(|e| at(format!("guild {id}: append after recovery failed: {e}")))?;
            if got != *seq + 1 {
                return Err(at(format!(
                    "guild {id}: append after recovery got seq {got}, not {}",
                    *seq + 1
                )));
            }
            apply(state, &e);
            *seq += 1;
        }
    }
    let report = j
        .verify()
        .map_err(|e| at(format!("verify after appends failed: {e}")))?;
    if !report.is_sound() {
        return Err(at(format!(
            "verify after appends found damage: {:?}",
            report.findings
        )));
    }
    drop(j);
    let again = Arc::new(storage.crash(CrashMode::DropUnsynced));
    again.set_syncfs(plan.syncfs);
    again.set_syncfs_mode(plan.syncfs_mode);
    let mut j = open(&again, &plan.config).map_err(|e| at(format!("second open failed: {e}")))?;
    for (id, seq, state) in &expect {
        let s = j
            .state(*id)
            .map_err(|e| at(format!("guild {id}: second recovery failed: {e}")))?;
        if s.seq != *seq || s.state != *state {
            return Err(at(format!(
                "guild {id}: a second power loss lost acknowledged appends: seq {} instead of {seq}",
                s.seq
            )));
        }
    }
    Ok(models.len() as u64)
}

/// The files of a storage, compactly: `path(live/durable)`, `*` for an entry not yet durable.
fn listing(s: &SimStorage) -> String {
    s.entries()
        .iter()
        .filter(|e| !e.is_dir)
        .map(|e| {
            let name = e
                .path
                .strip_prefix(ROOT)
                .unwrap_or(&e.path)
                .display()
                .to_string();
            let star = if e.entry_durable { "" } else { "*" };
            format!("{name}({}/{}){star}", e.live_len, e.durable_len)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Totals for a report line.
#[derive(Default)]
struct Tally {
    crash_points: u64,
    crashes: u64,
    states: u64,
    failures: Vec<String>,
}

impl Tally {
    fn check(&mut self, plan: &Plan, models: &[GuildModel], cap: &Captured, mode: CrashMode) {
        self.crashes += 1;
        match check_crash(plan, models, cap, mode) {
            Ok(n) => self.states += n,
            Err(msg) => self.failures.push(msg),
        }
    }

    fn finish(&self, name: &str, started: Instant) {
        eprintln!(
            "{name}: {} crash points, {} crashes recovered, {} guild states checked, {} failures, {:.1?}",
            self.crash_points,
            self.crashes,
            self.states,
            self.failures.len(),
            started.elapsed()
        );
        if !self.failures.is_empty() {
            let shown: Vec<&str> = self.failures.iter().take(8).map(String::as_str).collect();
            panic!(
                "{} of {} crashes broke the invariant; first ones:\n{}",
                self.failures.len(),
                self.crashes,
                shown.join("\n")
            );
        }
    }
}

/// The workload crashed at every operation: three guilds, every durability, automatic and
/// explicit snapshots, retention, rolls of 4 KiB segments, commit-log checkpoints, reopens and
/// closes; with and without `syncfs` (and with it, whatever it does).
fn exhaustive_plan(syncfs: bool, syncfs_mode: SyncfsMode) -> Plan {
    Plan {
        seed: 0xE8A0_5717,
        guilds: GUILDS.to_vec(),
        config: Config::default()
            .with_segment_bytes_max(4096)
            .with_snapshot_every(Some(9), None)
            .with_snapshots_retained(2)
            .with_commit_bytes_max(64 << 10)
            // Preallocated in 4 KiB chunks: each generation is extended many times.
            .with_commit_prealloc_bytes(4 << 10),
        steps: 90,
        syncfs,
        syncfs_mode,
        repro: "cargo test --release --test it crash::exhaustive_crash_points -- --nocapture"
            .to_string(),
    }
}

/// Crashes the exhaustive workload (without `syncfs`, and with each [`SyncfsMode`]) before every storage operation
/// in every [`CrashMode`]; with `REPRISE_EXHAUSTIVE=1`, every torn and write-back crash is
/// drawn with 8 seeds instead of 1.
#[test]
fn exhaustive_crash_points() {
    let tears = if std::env::var_os("REPRISE_EXHAUSTIVE").is_some() {
        8
    } else {
        1
    };
    let started = Instant::now();
    let mut tally = Tally::default();
    for (syncfs, syncfs_mode) in SYNCFS_CHOICES {
        let plan = exhaustive_plan(syncfs, syncfs_mode);
        let (run, captures) = recorded_run(&plan);
        let s = &run.storage;
        assert!(captures.len() >= 200, "only {} operations", captures.len());
        assert!(s.op_count_of(OpKind::Rename) >= 4, "too few snapshots");
        assert!(s.op_count_of(OpKind::Remove) >= 4, "no retention");
        assert!(s.op_count_of(OpKind::CreateNew) >= 12, "too few segments");
        for m in &run.models {
            assert!(m.seq() >= 10, "guild {} has only {} events", m.id, m.seq());
        }
        for cap in &captures {
            tally.crash_points += 1;
            tally.check(&plan, &run.models, cap, CrashMode::DropUnsynced);
            for tear in 0..tears {
                let seed = cap.op() ^ (tear << 40);
                for mode in [
                    CrashMode::TornTail { seed },
                    CrashMode::Writeback { seed },
                    CrashMode::Holed { seed },
                ] {
                    tally.check(&plan, &run.models, cap, mode);
                }
            }
        }
    }
    tally.finish("exhaustive_crash_points", started);
}

fn run_seed_points(seed: u64, every: bool, tally: &mut Tally) {
    let plan = Plan::random(seed);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| recorded_run(&plan)));
    let (run, captures) = match outcome {
        Ok(r) => r,
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            tally
                .failures
                .push(format!("seed {seed}: the run itself failed: {msg}"));
            return;
        }
    };
    if every {
        for cap in &captures {
            tally.crash_points += 1;
            for mode in modes(cap.op()) {
                tally.check(&plan, &run.models, cap, mode);
            }
        }
    } else {
        let mut rng = Rng::new(seed ^ 0x0C4A_5400);
        let cap = &captures[rng.below(captures.len() as u64) as usize];
        let mode = modes(cap.op())[rng.below(4) as usize];
        tally.crash_points += 1;
        tally.check(&plan, &run.models, cap, mode);
    }
}

/// `REPRISE_CRASH_SEEDS` (default 200) random workloads, each crashed at one random operation
/// in a random mode. A failure prints the command that replays its seed.
#[test]
fn random_crash_points() {
    let seeds = env_u64("REPRISE_CRASH_SEEDS").unwrap_or(200);
    let started = Instant::now();
    let mut tally = Tally::default();
    for seed in 0..seeds {
        run_seed_points(seed, false, &mut tally);
    }
    tally.finish("random_crash_points", started);
}

/// Replays seed `REPRISE_CRASH_SEED` (default 1) and crashes it at every operation in every
/// mode.
#[test]
fn one_seed() {
    let seed = env_u64("REPRISE_CRASH_SEED").unwrap_or(1);
    let started = Instant::now();
    let mut tally = Tally::default();
    run_seed_points(seed, true, &mut tally);
    tally.finish(&format!("one_seed {seed}"), started);
}

/// The paths whose directory entry is not durable yet.
fn undurable_entries(s: &SimStorage) -> Vec<String> {
    s.entries()
        .iter()
        .filter(|e| !e.entry_durable)
        .map(|e| e.path.display().to_string())
        .collect()
}

/// One `Always` append to a journal opened on `storage`, then a power loss: the event is there.
fn assert_first_append_survives_a_power_loss(storage: SimStorage) {
    let storage = Arc::new(storage);
    let mut j = open(&storage, &Config::default()).unwrap();
    let e = Event::from_json(r#"{"type":"volume_set","volume":80}"#).unwrap();
    assert_eq!(j.append(GuildId(1), &e, Durability::Always).unwrap(), 1);
    let not_durable = undurable_entries(&storage);
    let crashed = Arc::new(storage.crash(CrashMode::DropUnsynced));
    let mut j = open(&crashed, &Config::default()).unwrap();
    assert_eq!(
        j.state(GuildId(1)).unwrap().seq,
        1,
        "entries not durable at the acknowledgement: {not_durable:?}"
    );
}

#[test]
fn regression_an_acknowledged_append_survives_a_power_loss_in_a_new_journal() {
    // Only the journal directory exists, durably.
    let storage = SimStorage::new(1);
    storage.create_dir_all(journal_root()).unwrap();
    storage.sync_dir(std::path::Path::new("/srv")).unwrap();
    storage.sync_dir(std::path::Path::new("/")).unwrap();
    assert_first_append_survives_a_power_loss(storage);
}

#[test]
fn regression_an_acknowledged_append_survives_a_power_loss_in_a_journal_directory_it_created() {
    // Nothing exists: the open creates the journal directory and its parent.
    assert_first_append_survives_a_power_loss(SimStorage::new(3));
}

#[test]
fn regression_appends_after_a_process_restart_survive_a_power_loss() {
    let storage = fresh_storage(2);
    let g = GuildId(5);
    let volume = |v: u16| Event::VolumeSet { volume: v };
    {
        let mut j = open(&storage, &Config::default()).unwrap();
        // Written to the segment (the OS has it), not yet durable: a process crash keeps it.
        assert_eq!(j.append(g, &volume(10), Durability::None).unwrap(), 1);
        j.flush().unwrap();
    } // the process dies (no close)
    let mut j = open(&storage, &Config::default()).unwrap();
    assert_eq!(j.state(g).unwrap().seq, 1);
    assert_eq!(j.append(g, &volume(20), Durability::Always).unwrap(), 2);
    drop(j);
    let crashed = Arc::new(storage.crash(CrashMode::DropUnsynced));
    let mut j = open(&crashed, &Config::default()).unwrap();
    // Event 2 was acknowledged, so event 1 must have been made durable first.
    let s = j.state(g).map(|s| s.seq);
    assert!(matches!(s, Ok(2)), "{s:?}; survived: {}", listing(&crashed));
}

#[test]
fn regression_a_snapshot_survives_a_power_loss() {
    let storage = fresh_storage(3);
    let g = GuildId(9); // not pre-created by fresh_storage
    let mut j = open(&storage, &Config::default()).unwrap();
    assert_eq!(
        j.append(g, &Event::VolumeSet { volume: 10 }, Durability::None)
            .unwrap(),
        1
    );
    assert_eq!(j.snapshot_now(g).unwrap(), Some(1));
    let not_durable = undurable_entries(&storage);
    drop(j);
    let crashed = Arc::new(storage.crash(CrashMode::DropUnsynced));
    let mut j = open(&crashed, &Config::default()).unwrap();
    assert_eq!(
        j.state(g).unwrap().seq,
        1,
        "entries not durable when snapshot_now returned: {not_durable:?}"
    );
}

/// A journal whose newest commit log and guild segment hold only a torn header: the first
/// `kept` bytes of the real header, then zeros to the header's length (the size reached the
/// disk, part of the data did not: the file was never synced, its directory entry was).
fn torn_headers(kept: usize, commit: bool, segment: bool) -> Arc<SimStorage> {
    let g = GuildId(12);
    let live = fresh_storage(4);
    let mut j = open(&live, &Config::default()).unwrap();
    j.append(g, &Event::VolumeSet { volume: 10 }, Durability::None)
        .unwrap();
    drop(j);
    let root = journal_root();
    let torn = fresh_storage(5);
    let files = [
        (
            commit,
            reprise::layout::commit_path(root, reprise::Generation(1)),
            48,
        ),
        (segment, reprise::layout::segment_path(root, g, 1), 48),
    ];
    for (tear, path, header_len) in files {
        if !tear {
            continue;
        }
        let bytes = live.read(&path, u64::MAX).unwrap();
        let mut header = bytes[..kept].to_vec();
        header.resize(header_len, 0);
        let dir = path.parent().unwrap();
        torn.create_dir_all(dir).unwrap();
        torn.sync_dir(dir.parent().unwrap()).unwrap();
        let mut f = torn.create_new(&path).unwrap();
        f.append(&header).unwrap();
        f.sync_data().unwrap();
        torn.sync_dir(dir).unwrap();
    }
    torn
}

#[test]
fn regression_a_torn_header_is_a_torn_tail() {
    for (commit, segment) in [(true, false), (false, true), (true, true)] {
        for kept in [8, 20, 44] {
            let storage = torn_headers(kept, commit, segment);
            let mut j = open(&storage, &Config::default()).unwrap();
            let report = j.verify().unwrap();
            assert!(
                report.is_sound(),
                "commit {commit}, segment {segment}, {kept} bytes kept: {:?}",
                report.findings
            );
            for g in [GuildId(12), GuildId(13)] {
                let s = j.state(g).map(|s| s.seq);
                assert!(
                    matches!(s, Ok(0)),
                    "commit {commit}, segment {segment}, {kept} bytes kept: guild {g}: {s:?}"
                );
            }
        }
    }
}

/// Checks the invariant at the end of a faulty run in every mode and at `extra` random earlier
/// operations (`captures` must come from [`Capture::Every`]).
fn check_faulty_run(run: &Run, captures: &[Captured], extra: usize, tally: &mut Tally) {
    let mut rng = Rng::new(run.plan.seed ^ 0xFA17);
    let end = run.storage.capture_now();
    tally.crash_points += 1;
    for mode in modes(end.op()) {
        tally.check(&run.plan, &run.models, &end, mode);
    }
    for _ in 0..extra.min(captures.len()) {
        let cap = &captures[rng.below(captures.len() as u64) as usize];
        tally.crash_points += 1;
        let mode = modes(cap.op())[rng.below(4) as usize];
        tally.check(&run.plan, &run.models, cap, mode);
    }
}

/// A plan for the fault tests: the exhaustive workload's shape with another seed.
fn fault_plan(seed: u64, (syncfs, syncfs_mode): (bool, SyncfsMode), repro: &str) -> Plan {
    Plan {
        seed,
        steps: 70,
        repro: repro.to_string(),
        ..exhaustive_plan(syncfs, syncfs_mode)
    }
}

/// fsyncgate: the fsync of an `Always` append fails. The append reports a typed I/O error, the
/// log is poisoned (later appends of the guild fail with `Poisoned`, `sync` fails: nothing is
/// acknowledged any more), a power loss at any point keeps every event acknowledged before,
/// and after a reopen appends work again.
#[test]
fn a_failed_fsync_poisons_the_log_and_nothing_acknowledged_is_lost() {
    let started = Instant::now();
    let mut tally = Tally::default();
    for syncfs in SYNCFS_CHOICES {
        for sticky in [false, true] {
            let plan = fault_plan(
                11,
                syncfs,
                "cargo test --release --test it crash::a_failed_fsync",
            );
            let storage = fresh_storage(plan.seed);
            storage.set_capture(Capture::Every);
            let mut run = Run::new(&plan, storage, true);
            let durabilities = [Durability::Always, Durability::BATCHED, Durability::None];
            for i in 0..30 {
                run.append(i % 3, durabilities[i / 3 % 3]);
            }
            run.sync();
            assert!(run.errors.is_empty(), "{:?}", run.errors);
            let g = run.models[0].id;
            let nth = run.storage.op_count_of(OpKind::SyncData);
            run.storage.set_fault(Fault::FailKind {
                kind: OpKind::SyncData,
                nth,
                sticky,
                error: InjectedError::Eio,
            });
            run.append(0, Durability::Always);
            let first = run.errors.first().expect("the append failed");
            assert_eq!(
                (first.op, first.os),
                (Some("fsync"), Some(EIO)),
                "syncfs {syncfs:?} sticky {sticky}: {first:?}"
            );
            // Nothing more is acknowledged until the journal is reopened.
            for d in durabilities {
                let e = run.models[0].next_event();
                let r = run.journal().append(g, &e, d);
                assert!(
                    matches!(r, Err(Error::Poisoned { .. })),
                    "syncfs {syncfs:?} sticky {sticky}: {d:?} append after a failed fsync: {r:?}"
                );
            }
            let r = run.journal().sync();
            assert!(r.is_err(), "sync after a failed fsync: {r:?}");
            let captures = run.storage.take_captures();
            for cap in &captures {
                tally.crash_points += 1;
                for mode in modes(cap.op()) {
                    tally.check(&run.plan, &run.models, cap, mode);
                }
            }
            // A reopen recovers; appends are acknowledged again (once fsyncs work again).
            run.storage.clear_faults();
            run.journal = None;
            run.reopen(false);
            run.storage.set_capture(Capture::Every);
            for i in 0..6 {
                run.append(i % 3, Durability::Always);
            }
            let errors_after = run.errors.len();
            assert_eq!(errors_after, 1, "{:?}", run.errors);
            let captures = run.storage.take_captures();
            check_faulty_run(&run, &captures, 40, &mut tally);
        }
    }
    tally.finish("a_failed_fsync_poisons_the_log", started);
}

/// Every sync operation of a workload fails in turn (once, and from then on), in every kind
/// (`fdatasync`, directory fsync, `syncfs`): no call that saw it returns `Ok`, every error is
/// typed, and a power loss keeps everything acknowledged.
#[test]
fn every_failed_sync_is_reported_and_nothing_acknowledged_is_lost() {
    let started = Instant::now();
    let mut tally = Tally::default();
    let mut runs = 0;
    for syncfs in SYNCFS_CHOICES {
        let plan = fault_plan(
            21,
            syncfs,
            "cargo test --release --test it crash::every_failed_sync",
        );
        let (baseline, _) = recorded_run(&plan);
        for kind in SYNC_KINDS {
            if kind == OpKind::SyncFilesystem && !syncfs.0 {
                continue;
            }
            let count = baseline.storage.op_count_of(kind);
            let stride = (count / 25).max(1);
            for nth in (0..count).step_by(stride as usize) {
                for sticky in [false, true] {
                    let fault = Fault::FailKind {
                        kind,
                        nth,
                        sticky,
                        error: InjectedError::Eio,
                    };
                    let plan = Plan {
                        repro: format!(
                            "REPRISE_SYNC_FAULT='{kind:?} {nth} {sticky}' cargo test --release --test it crash::every_failed_sync (syncfs {syncfs:?})"
                        ),
                        ..plan.clone()
                    };
                    if std::env::var("REPRISE_SYNC_FAULT")
                        .is_ok_and(|f| f != format!("{kind:?} {nth} {sticky}"))
                    {
                        continue;
                    }
                    let storage = fresh_storage(plan.seed);
                    storage.set_capture(Capture::Every);
                    storage.set_fault(fault);
                    let mut run = Run::new(&plan, storage, true);
                    run.run_steps(plan.steps);
                    runs += 1;
                    if std::env::var_os("REPRISE_CRASH_VERBOSE").is_some() {
                        eprintln!("injected: {:?}", run.storage.injected_faults());
                    }
                    let captures = run.storage.take_captures();
                    check_faulty_run(&run, &captures, 3, &mut tally);
                }
            }
        }
    }
    eprintln!("every_failed_sync: {runs} faulty runs");
    tally.finish("every_failed_sync", started);
}

/// What an `Error::Io` was doing, for the disk-full report.
fn io_category(seen: &Seen) -> &'static str {
    let path = seen
        .path
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    match seen.op {
        Some("create segment" | "write segment header") => "segment creation",
        Some("create commit log" | "write commit log header") => "commit log creation",
        Some("append to") if path.ends_with(".clog") => "append (commit log)",
        Some("append to") => "append (segment)",
        Some(_) if path.ends_with(".tmp") || path.ends_with(".snap") => "snapshot",
        Some(op) => op,
        None => "poisoned",
    }
}

/// The disk fills up after every possible number of bytes: the call that hits it returns a
/// typed `Error::Io` (ENOSPC), the journal stays recoverable with everything acknowledged, and
/// once space returns appends work again (counted per kind of failed call: on the same journal,
/// or only after a reopen).
#[test]
fn a_full_disk_fails_typed_and_loses_nothing_acknowledged() {
    let started = Instant::now();
    let mut tally = Tally::default();
    // Per kind of call that hit the full disk: appends worked again (in place, after a reopen).
    let mut outcomes: std::collections::BTreeMap<&'static str, (u64, u64)> = Default::default();
    let mut runs = 0;
    for syncfs in SYNCFS_CHOICES {
        let plan = fault_plan(
            31,
            syncfs,
            "cargo test --release --test it crash::a_full_disk",
        );
        let (baseline, _) = recorded_run(&plan);
        let total = baseline.storage.appended_bytes();
        let mut budgets: Vec<u64> = (0..total).step_by((total / 150).max(1) as usize).collect();
        budgets.extend([1, 47, 48, 49, 100]);
        for budget in budgets {
            if env_u64("REPRISE_DISK_BUDGET").is_some_and(|b| b != budget) {
                continue;
            }
            let plan = Plan {
                repro: format!(
                    "REPRISE_DISK_BUDGET={budget} cargo test --release --test it crash::a_full_disk (syncfs {syncfs:?})"
                ),
                ..plan.clone()
            };
            let storage = fresh_storage(plan.seed);
            storage.set_capture(Capture::Every);
            storage.set_fault(Fault::DiskFull { bytes_free: budget });
            let mut run = Run::new(&plan, storage, true);
            runs += 1;
            // Run until the disk is full.
            let mut steps = 0;
            while steps < plan.steps && run.errors.is_empty() {
                let step = run.draw();
                run.step(step);
                steps += 1;
            }
            let Some(first) = run.errors.first() else {
                continue;
            };
            assert_eq!(
                first.os,
                Some(ENOSPC),
                "budget {budget}: the first error is not ENOSPC: {first:?}"
            );
            let category = io_category(first);
            let captures = run.storage.take_captures();
            check_faulty_run(&run, &captures, 4, &mut tally);
            // Space returns: do appends work on the same journal?
            run.storage.clear_faults();
            let errors = run.errors.len();
            for gi in 0..run.models.len() {
                run.append(gi, Durability::Always);
            }
            let entry = outcomes.entry(category).or_default();
            if run.errors.len() == errors {
                entry.0 += 1;
            } else {
                entry.1 += 1;
                if std::env::var_os("REPRISE_CRASH_VERBOSE").is_some() {
                    eprintln!(
                        "budget {budget}: {category}: with space again: {:?}",
                        &run.errors[errors..]
                    );
                }
                run.journal = None;
                run.reopen(false);
                let errors = run.errors.len();
                for gi in 0..run.models.len() {
                    run.append(gi, Durability::Always);
                }
                assert_eq!(
                    run.errors.len(),
                    errors,
                    "budget {budget}: appends fail after a reopen with space: {:?}",
                    &run.errors[errors..]
                );
            }
            run.run_steps(plan.steps - steps);
            let captures = run.storage.take_captures();
            check_faulty_run(&run, &captures, 2, &mut tally);
        }
    }
    eprintln!(
        "a_full_disk: {runs} runs; per call that hit the full disk, appends worked again \
         (in place, only after a reopen): {outcomes:?}"
    );
    tally.finish("a_full_disk", started);
    if env_u64("REPRISE_DISK_BUDGET").is_none() {
        for category in ["append (segment)", "segment creation", "snapshot"] {
            assert!(
                outcomes.contains_key(category),
                "no run filled the disk during {category}: {outcomes:?}"
            );
        }
    }
}

/// Random workloads where any storage operation may fail (EIO, ENOSPC, short writes): errors
/// are typed and a power loss keeps everything acknowledged. `REPRISE_FAULT_SEEDS` seeds
/// (default 60).
#[test]
fn random_faults_lose_nothing_acknowledged() {
    let seeds = env_u64("REPRISE_FAULT_SEEDS").unwrap_or(60);
    let first = env_u64("REPRISE_FAULT_SEED_FIRST").unwrap_or(0);
    let started = Instant::now();
    let mut tally = Tally::default();
    let mut errors = 0;
    for seed in first..seeds.max(first + 1) {
        let mut plan = Plan::random(seed);
        plan.repro = format!(
            "REPRISE_FAULT_SEED_FIRST={seed} REPRISE_FAULT_SEEDS={} cargo test --release --test it crash::random_faults",
            seed + 1
        );
        let mut rng = Rng::new(seed ^ 0xFA);
        let storage = fresh_storage(seed);
        storage.set_capture(Capture::Every);
        storage.set_fault(Fault::Random {
            per_mille: rng.range(5, 40) as u32,
            mutations_only: rng.chance(500),
        });
        let mut run = Run::new(&plan, storage, true);
        run.run_steps(plan.steps);
        errors += run.errors.len();
        let captures = run.storage.take_captures();
        run.storage.clear_faults();
        check_faulty_run(&run, &captures, 3, &mut tally);
    }
    eprintln!("random_faults: {seeds} seeds, {errors} journal errors");
    tally.finish("random_faults", started);
}

/// After a failed fsync (the kernel drops the dirty pages but still serves them), a reopened
/// journal rewrites what the earlier process wrote since its last checkpoint instead of
/// fsyncing the same files, so a later power loss keeps the acknowledged append.
#[test]
fn regression_a_failed_fsync_is_not_forgotten_by_a_reopen() {
    let storage = fresh_storage(6);
    let g = GUILDS[0];
    let mut j = open(&storage, &Config::default()).unwrap();
    assert_eq!(
        j.append(g, &Event::VolumeSet { volume: 10 }, Durability::Always)
            .unwrap(),
        1
    );
    // The next fsync (sealing the segment for the snapshot) fails: its dirty pages are dropped.
    fail_the_seal_fsync_of_a_snapshot(&storage, &mut j, g);
    storage.clear_faults();
    // As DESIGN.md prescribes for a poisoned log: reopen, and close cleanly.
    drop(j);
    let j = open(&storage, &Config::default()).unwrap();
    j.close().unwrap();
    let crashed = Arc::new(storage.crash(CrashMode::DropUnsynced));
    let mut j = open(&crashed, &Config::default()).unwrap();
    let s = j.state(g).map(|s| s.seq);
    assert!(
        matches!(s, Ok(1)),
        "the acknowledged append: {s:?}; before the crash: {}",
        listing(&storage)
    );
}

#[test]
fn regression_appends_work_after_a_snapshot_of_a_recovered_guild() {
    let storage = fresh_storage(7);
    let g = GUILDS[2];
    let config = Config::default().with_segment_bytes_max(4096);
    let mut model = GuildModel::new(g, 7, config.history_max);
    let mut j = open(&storage, &config).unwrap();
    let segments = |s: &SimStorage| {
        s.entries()
            .iter()
            .filter(|e| e.path.extension().is_some_and(|x| x == "wal"))
            .count()
    };
    // Append until the first segment rolls, then once more: the new segment's header is
    // written, its first frame is still buffered.
    while segments(&storage) < 2 {
        let e = model.next_event();
        j.append(g, &e, Durability::None).unwrap();
        model.push(e, 0);
    }
    drop(j); // the process dies; the buffered frame is lost, the header-only segment stays
    let mut j = open(&storage, &config).unwrap();
    let seq = j.state(g).unwrap().seq;
    assert_eq!(j.snapshot_now(g).unwrap(), Some(seq));
    let e = Workload::new(1).next_event(&j.state(g).unwrap().state.clone());
    let r = j.append(g, &e, Durability::Always);
    assert!(
        matches!(r, Ok(s) if s == seq + 1),
        "{r:?}; files: {}",
        listing(&storage)
    );
}

#[test]
fn regression_appends_work_again_when_space_returns_after_a_failed_commit_log_creation() {
    let storage = fresh_storage(8);
    let g = GUILDS[0];
    let mut j = open(&storage, &Config::default()).unwrap();
    storage.set_fault(Fault::DiskFull { bytes_free: 10 });
    let e = Event::VolumeSet { volume: 10 };
    let r = j.append(g, &e, Durability::Always);
    assert!(
        matches!(
            &r,
            Err(Error::Io {
                op: "write commit log header",
                ..
            })
        ),
        "{r:?}"
    );
    storage.clear_faults();
    let r = j.append(g, &e, Durability::Always);
    assert!(matches!(r, Ok(1)), "with space again: {r:?}");
}

/// The model after a `close` that returned `Ok` while a guild's reopen was unresolved (its
/// state read failed): the close acknowledges what the journal held of the guild, not the
/// model's own seq, which still counts the events the dropped journal lost with its buffers.
/// Before the model got this right, the next reopen demanded the lost events (seed 9 of
/// `random_faults_lose_nothing_acknowledged`).
#[test]
fn regression_a_close_acknowledges_what_the_journal_held_not_what_was_appended() {
    let plan = Plan {
        guilds: vec![GUILDS[1]],
        ..fault_plan(
            12,
            (true, SyncfsMode::Flushes),
            "cargo test --release --test it crash::regression_a_close_acknowledges",
        )
    };
    let g = plan.guilds[0];
    let storage = fresh_storage(plan.seed);
    storage.set_capture(Capture::Every);
    let started = Instant::now();
    let mut run = Run::new(&plan, storage, true);
    run.append(0, Durability::Always); // 1: acknowledged
    run.append(0, Durability::None); // 2: only in the journal's buffers
    assert_eq!(run.models[0].seq(), 2);
    // The process dies; the reopened journal reads its key check file (absent) and its commit
    // log, then fails to read the guild's segment: the model cannot tell yet what the journal
    // recovered.
    run.storage.set_fault(Fault::FailKind {
        kind: OpKind::Read,
        nth: run.storage.op_count_of(OpKind::Read) + 2,
        sticky: false,
        error: InjectedError::Eio,
    });
    run.reopen(false);
    let injected = run.storage.injected_faults();
    assert_eq!(injected.len(), 1, "{injected:?}");
    assert_eq!(
        injected[0].path,
        reprise::layout::segment_path(journal_root(), g, 1)
    );
    assert!(run.models[0].reopened_at.is_some());
    run.storage.clear_faults();
    // The close loads the guild (the old commit log names it) and makes its one event durable.
    run.reopen(true);
    assert_eq!(run.errors.len(), 1, "the close failed: {:?}", run.errors);
    assert_eq!(run.models[0].seq(), 1, "the journal recovered event 1 only");
    assert_eq!(run.models[0].required(run.storage.op_count()), 1);
    // A process crash and a power loss keep exactly what was acknowledged.
    run.reopen(false);
    run.append(0, Durability::Always);
    assert_eq!(run.models[0].seq(), 2);
    assert_eq!(run.models[0].required(run.storage.op_count()), 2);
    let captures = run.storage.take_captures();
    let mut tally = Tally::default();
    for cap in &captures {
        tally.crash_points += 1;
        for mode in modes(cap.op()) {
            tally.check(&run.plan, &run.models, cap, mode);
        }
    }
    tally.finish("regression_a_close_acknowledges", started);
}

/// A failed fsync of a guild segment (here: sealing it for `snapshot_now`) drops its
/// write-back; the event survives only in the synced commit log. A checkpoint must not remove
/// that commit log while the guild is poisoned, even when `syncfs` (which the failed pages do
/// not reach) then succeeds.
#[test]
fn regression_a_checkpoint_keeps_the_commit_log_of_a_poisoned_guild() {
    for syncfs in [true, false] {
        let storage = fresh_storage(13);
        storage.set_syncfs(syncfs);
        let g = GUILDS[1];
        let mut j = open(&storage, &Config::default()).unwrap();
        assert_eq!(
            j.append(g, &Event::VolumeSet { volume: 10 }, Durability::None)
                .unwrap(),
            1
        );
        j.sync().unwrap(); // event 1 is acknowledged: durable in the commit log
        fail_the_seal_fsync_of_a_snapshot(&storage, &mut j, g);
        storage.clear_faults();
        let closed = j.close();
        assert!(
            matches!(closed, Err(Error::Poisoned { guild, .. }) if guild == Some(g)),
            "syncfs {syncfs}: close of a journal with a poisoned guild: {closed:?}"
        );
        let crashed = Arc::new(storage.crash(CrashMode::DropUnsynced));
        let mut j = open(&crashed, &Config::default()).unwrap();
        let s = j.state(g).map(|s| s.seq);
        assert!(
            matches!(s, Ok(1)),
            "syncfs {syncfs}: the acknowledged append: {s:?}; survived: {}",
            listing(&crashed)
        );
    }
}

/// The same plan issues the same storage operations in the same order, run after run (a
/// replayed seed crashes at the same operations).
#[test]
fn a_plan_replays_the_same_operations() {
    let traces: Vec<Vec<(OpKind, std::path::PathBuf)>> = (0..3)
        .map(|_| {
            let plan = exhaustive_plan(false, SyncfsMode::Flushes);
            let storage = fresh_storage(plan.seed);
            storage.set_trace(true);
            let mut run = Run::new(&plan, storage, false);
            run.run_steps(plan.steps);
            run.storage.trace()
        })
        .collect();
    for t in &traces[1..] {
        let first_difference = traces[0].iter().zip(t).position(|(a, b)| a != b);
        assert_eq!(
            (first_difference, t.len()),
            (None, traces[0].len()),
            "operation orders differ: {:?} then {:?}",
            first_difference.map(|i| &traces[0][i.saturating_sub(2)..(i + 3).min(t.len())]),
            first_difference.map(|i| &t[i.saturating_sub(2)..(i + 3).min(t.len())]),
        );
    }
}

/// A frame can reach its guild segment before its commit record reaches the commit log file
/// (`state_at`, `events`, `inspect` and `verify` flush guild buffers only; a guild buffer is
/// written at 64 KiB, the commit buffer at 1 MiB). If the process then dies, the next one
/// starts unclean, but its checkpoint (here: `close`) recovers and fsyncs only the guilds the
/// old commit logs name, then removes them: the guild's segment stays durable nowhere, and the
/// process after that opens clean, does not treat the guild as inherited, and acknowledges
/// appends on top of it. A power loss then loses the acknowledged append (the guild is
/// unrecoverable).
#[test]
fn regression_a_close_after_a_crash_makes_unnamed_guilds_durable() {
    let storage = fresh_storage(40);
    let g = GuildId(5);
    let volume = |v: u16| Event::VolumeSet { volume: v };
    {
        let mut j = open(&storage, &Config::default()).unwrap();
        assert_eq!(j.append(g, &volume(10), Durability::None).unwrap(), 1);
        assert_eq!(j.append(g, &volume(20), Durability::None).unwrap(), 2);
        // Writes the guild's buffered frames to its segment, not their commit records.
        assert_eq!(j.state_at(g, 1).unwrap().seq, 1);
    } // the process dies: its commit log holds no record of the guild
      // The next process starts unclean and closes without using the guild.
    open(&storage, &Config::default()).unwrap().close().unwrap();
    let left = listing(&storage);
    let mut j = open(&storage, &Config::default()).unwrap();
    assert_eq!(j.state(g).unwrap().seq, 2);
    assert_eq!(j.append(g, &volume(30), Durability::Always).unwrap(), 3);
    drop(j);
    let crashed = Arc::new(storage.crash(CrashMode::DropUnsynced));
    let mut j = open(&crashed, &Config::default()).unwrap();
    let s = j.state(g).map(|s| s.seq);
    assert!(
        matches!(s, Ok(3)),
        "the acknowledged append: {s:?}; after the close: {left}; survived: {}",
        listing(&crashed)
    );
}

/// Makes the next fsync fail with EIO (its dirty pages are dropped) and takes a snapshot of `g`,
/// whose seal of segment 1 is that fsync: the snapshot fails.
fn fail_the_seal_fsync_of_a_snapshot(storage: &SimStorage, j: &mut Journal, g: GuildId) {
    storage.set_fault(Fault::FailKind {
        kind: OpKind::SyncData,
        nth: storage.op_count_of(OpKind::SyncData),
        sticky: false,
        error: InjectedError::Eio,
    });
    assert!(j.snapshot_now(g).is_err());
    assert_eq!(
        storage.injected_faults()[0].path,
        reprise::layout::segment_path(journal_root(), g, 1)
    );
}

/// Bit rot: a power loss before every 5th operation of the exhaustive workload, then one read
/// of a durable file (each of the reads an open, `verify` and `state` of every guild make, in
/// turn) returns one flipped bit. Never an invented state: whatever recovers is the fold of a
/// prefix of what was appended; and never a silent loss: unless damage is reported (an error,
/// or `verify` unsound), every guild holds everything acknowledged. With `REPRISE_EXHAUSTIVE=1`:
/// a power loss before every operation, each as a clean, a torn-tail and a holed crash, with
/// `syncfs` flushing and a no-op.
#[test]
fn bit_rot_is_reported_or_harmless() {
    let started = Instant::now();
    let exhaustive = std::env::var_os("REPRISE_EXHAUSTIVE").is_some();
    type CrashModeOf = fn(u64) -> CrashMode;
    let (step, syncfs_modes, crash_modes): (usize, &[SyncfsMode], &[CrashModeOf]) = if exhaustive {
        (
            1,
            &[SyncfsMode::Flushes, SyncfsMode::NoOp],
            &[
                |_| CrashMode::DropUnsynced,
                |k| CrashMode::TornTail { seed: k },
                |k| CrashMode::Holed { seed: k },
            ],
        )
    } else {
        (5, &[SyncfsMode::Flushes], &[|_| CrashMode::DropUnsynced])
    };
    let (mut rotted, mut reported, mut harmless) = (0u64, 0u64, 0u64);
    let mut failures = Vec::new();
    for &syncfs_mode in syncfs_modes {
        let plan = exhaustive_plan(true, syncfs_mode);
        let (run, captures) = recorded_run(&plan);
        for cap in captures.iter().step_by(step) {
            let k = cap.op();
            for (mode_index, crash_mode) in crash_modes.iter().enumerate() {
                for nth in 0.. {
                    let mode = crash_mode(k);
                    let storage = Arc::new(cap.crash(mode));
                    storage.set_syncfs(plan.syncfs);
                    storage.set_fault(Fault::BitRot { nth });
                    let mut seen_damage = false;
                    let mut states = Vec::new();
                    match open(&storage, &plan.config) {
                        Err(_) => seen_damage = true,
                        Ok(mut j) => {
                            match j.verify() {
                                Ok(report) => seen_damage |= !report.is_sound(),
                                Err(_) => seen_damage = true,
                            }
                            for m in &run.models {
                                match j.state(m.id) {
                                    Ok(s) => states.push((m, s.seq, s.state.clone())),
                                    Err(_) => seen_damage = true,
                                }
                            }
                        }
                    }
                    let flipped = storage
                        .injected_faults()
                        .iter()
                        .any(|f| f.error == InjectedError::BitRot);
                    if !flipped {
                        break;
                    }
                    rotted += 1;
                    let at =
                        format!("{syncfs_mode:?} op {k}, {mode:?} (#{mode_index}), read {nth}");
                    for (m, seq, state) in &states {
                        if m.state_at(k, *seq) != Some(state) {
                            failures.push(format!("{at}: guild {}: invented state at {seq}", m.id));
                        }
                        if !seen_damage && *seq < m.required(k) {
                            failures.push(format!(
                                "{at}: guild {}: silently lost acknowledged events: {seq} < {}",
                                m.id,
                                m.required(k)
                            ));
                        }
                    }
                    if seen_damage {
                        reported += 1;
                    } else {
                        harmless += 1;
                    }
                }
            }
        }
    }
    eprintln!(
        "bit_rot_is_reported_or_harmless: {rotted} flipped reads, {reported} reported, {harmless} harmless, {} failures, {:.1?}",
        failures.len(),
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{}",
        failures[..failures.len().min(8)].join("\n")
    );
    assert!(rotted > 100 && reported > rotted / 2, "{rotted} {reported}");
}

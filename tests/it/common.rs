use std::path::Path;

use reprise::session::{apply, State, Workload, HISTORY_MAX_DEFAULT};
use reprise::{Config, Durability, Event, GuildId, Journal};

/// `n` valid events from the workload generator, and the state after each prefix
/// (`states[k]` is the state after `k` events).
pub fn stream(seed: u64, n: usize) -> (Vec<Event>, Vec<State>) {
    let mut w = Workload::new(seed);
    let mut state = State::new(HISTORY_MAX_DEFAULT);
    let mut events = Vec::with_capacity(n);
    let mut states = Vec::with_capacity(n + 1);
    states.push(state.clone());
    for _ in 0..n {
        let e = w.next_event(&state);
        apply(&mut state, &e);
        events.push(e);
        states.push(state.clone());
    }
    (events, states)
}

/// Appends `events` to `guild` in a fresh journal at `dir`.
pub fn write(dir: &Path, config: Config, guild: GuildId, events: &[Event]) {
    let mut j = Journal::open(dir, config).unwrap();
    for (i, e) in events.iter().enumerate() {
        let seq = j.append(guild, e, Durability::None).unwrap();
        assert_eq!(seq, i as u64 + 1);
    }
    j.close().unwrap();
}

/// All files of a guild directory, sorted by name.
pub fn guild_files(dir: &Path, guild: GuildId) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(reprise::layout::guild_dir(dir, guild))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

/// Copies the directory tree `from` to `to` (created).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Where the simulated-storage tests keep their journal.
pub const SIM_ROOT: &str = "/srv/reprise";

/// Opens the journal at [`SIM_ROOT`] on `storage`, read-write.
pub fn open_sim(
    storage: &std::sync::Arc<reprise::storage::sim::SimStorage>,
    config: &Config,
) -> reprise::Result<Journal> {
    Journal::open_with(
        SIM_ROOT,
        config.clone(),
        reprise::OpenMode::ReadWrite,
        std::sync::Arc::clone(storage) as std::sync::Arc<dyn reprise::storage::Storage>,
    )
}

/// A `u64` from the environment variable `name` (unset or unparsable: `None`).
pub fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

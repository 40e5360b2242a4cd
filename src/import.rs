//! Importing Sonora 1.2.8 snapshot files into the journal (contract §2 `reprise import`).
//!
//! Each file becomes the state of its guild. The journal gets no special "import" record: the
//! file's state is written as the ordinary contract §1 events that rebuild it
//! ([`events_for_state`]), preceded by a `session_ended` when the guild already holds a session,
//! so `dump`, `state --at`, replication and every other reader see an ordinary history.
//!
//! Import is two-phase, so that a refused file leaves the journal untouched:
//!
//! 1. [`prepare`] (pure) checks one file — JSON syntax, Sonora's checksum, the complete schema
//!    and ranges of [`crate::sonora::parse`], each error naming the JSON path such as
//!    `data.queue.upcoming[3].length` — maps it to a [`State`] ([`crate::sonora::to_state`]),
//!    computes the events, and folds them with [`apply_checked`] from the guild's current state
//!    to prove that every one applies and that the result is exactly the file's state.
//!    [`import_sonora`] prepares **every** file before it appends anything.
//! 2. [`import_sonora`] then appends each file's events and makes them durable with one sync.
//!
//! A failure in phase 2 is an I/O failure (disk full...): the events appended before it stay
//! (the journal has no multi-event transaction); running the same import again gives the same
//! state, because every import starts from `session_ended`.
//!
//! See `docs/sonora-mapping.md` for what the mapping keeps and drops.

use std::fmt;

use crate::config::Durability;
use crate::error::Error;
use crate::ids::{GuildId, Seq};
use crate::journal::Journal;
use crate::session::{apply_checked, events_for_state, Event, EventError, State};
use crate::sonora::{self, SonoraError, SonoraFile};

/// Why an import was refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// The file is not a valid Sonora snapshot: bad JSON, a checksum mismatch, or a schema or
    /// range error (whose [`SonoraError::path`] names the JSON path). Nothing was written.
    #[error("{file}: {source}")]
    Sonora {
        /// The file, as given.
        file: String,
        /// What is wrong with it.
        #[source]
        source: SonoraError,
    },
    /// The events rebuilding the file's state do not apply (a state no fold reaches). Nothing
    /// was written.
    #[error("{file}: the snapshot's state cannot be rebuilt by events: {source}")]
    Unrepresentable {
        /// The file, as given.
        file: String,
        /// The event the fold refused.
        #[source]
        source: EventError,
    },
    /// The journal failed (recovery of the guild, or an append).
    #[error("{file}: {source}")]
    Journal {
        /// The file being imported.
        file: String,
        /// The journal error.
        #[source]
        source: Error,
    },
    /// The journal failed while appending `file`'s events (a full disk) after the files before
    /// it were imported: nothing of `file` (nor of the files after it) was written, and the
    /// files of `imported` were imported and made durable.
    #[error("{file}: {source}; the {imported_count} file(s) before it were imported", imported_count = .imported.len())]
    Interrupted {
        /// What was imported, in order: every file before `file`.
        imported: Vec<Imported>,
        /// The file whose events could not be appended.
        file: String,
        /// The journal error.
        #[source]
        source: Error,
    },
}

impl ImportError {
    /// Whether the error is about the data (exit code 2: nothing was written) rather than the
    /// journal.
    pub fn is_invalid_data(&self) -> bool {
        match self {
            ImportError::Sonora { .. } | ImportError::Unrepresentable { .. } => true,
            ImportError::Journal { source, .. } => matches!(
                source,
                Error::Corrupt(_) | Error::InvalidEvent { .. } | Error::EventTooLarge { .. }
            ),
            ImportError::Interrupted { .. } => false,
        }
    }

    /// The journal error, for [`ImportError::Journal`] and [`ImportError::Interrupted`].
    pub fn journal_error(&self) -> Option<&Error> {
        match self {
            ImportError::Journal { source, .. } | ImportError::Interrupted { source, .. } => {
                Some(source)
            }
            ImportError::Sonora { .. } | ImportError::Unrepresentable { .. } => None,
        }
    }

    /// The file the error is about.
    pub fn file(&self) -> &str {
        match self {
            ImportError::Sonora { file, .. }
            | ImportError::Unrepresentable { file, .. }
            | ImportError::Journal { file, .. }
            | ImportError::Interrupted { file, .. } => file,
        }
    }
}

/// One file checked and turned into events, ready to append.
#[derive(Clone, Debug, PartialEq)]
pub struct ImportPlan {
    /// The file, as given (for messages).
    pub file: String,
    /// The parsed file.
    pub sonora: SonoraFile,
    /// The state the guild will have after the import.
    pub state: State,
    /// The events to append, in order (`session_ended` first when the guild had a session).
    pub events: Vec<Event>,
}

impl ImportPlan {
    /// The guild the file belongs to.
    pub fn guild(&self) -> GuildId {
        GuildId(self.sonora.guild_id)
    }
}

/// What [`import_sonora`] did for one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Imported {
    /// The file, as given.
    pub file: String,
    /// Its guild.
    pub guild: GuildId,
    /// How many events were appended.
    pub events: u64,
    /// The first sequence number appended (`None` when no event was needed).
    pub first_seq: Option<Seq>,
    /// The guild's sequence number after the import.
    pub seq: Seq,
}

impl fmt::Display for Imported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: guild {} imported with {} event(s), now at seq {}",
            self.file, self.guild, self.events, self.seq
        )
    }
}

/// The state an import of `file` gives a guild whose history keeps `history_max` entries:
/// [`sonora::to_state`], except that a position recorded without a current track (which no
/// event can set exactly) becomes a report anchored at the file's timestamp.
///
/// # Errors
/// [`SonoraError::State`] as for [`sonora::to_state`].
pub fn target_state(file: &SonoraFile, history_max: u32) -> Result<State, SonoraError> {
    let mut state = sonora::to_state(file, history_max)?;
    if state.queue.current.is_none() && state.player.position_ms != 0 {
        state.player.position_anchor_unix_ms = Some(file.timestamp.saturating_mul(1000));
    }
    Ok(state)
}

/// Checks one Sonora file against the guild's current state `base` and computes the events
/// that replace that state with the file's (pure: no I/O).
///
/// # Errors
/// [`ImportError::Sonora`] for a file [`sonora::parse`] refuses (naming the JSON path),
/// [`ImportError::Unrepresentable`] when an event would not apply.
pub fn prepare(file: &str, text: &str, base: &State) -> Result<ImportPlan, ImportError> {
    let parsed = sonora::parse(text).map_err(|source| ImportError::Sonora {
        file: file.to_owned(),
        source,
    })?;
    prepare_file(file, parsed, base)
}

/// [`prepare`] for a file already parsed.
///
/// # Errors
/// As [`prepare`].
pub fn prepare_file(
    file: &str,
    parsed: SonoraFile,
    base: &State,
) -> Result<ImportPlan, ImportError> {
    let state = target_state(&parsed, base.history_max).map_err(|source| ImportError::Sonora {
        file: file.to_owned(),
        source,
    })?;
    let mut events = Vec::new();
    if *base != State::new(base.history_max) {
        events.push(Event::SessionEnded);
    }
    events.extend(events_for_state(&state));
    let mut folded = base.clone();
    for event in &events {
        apply_checked(&mut folded, event).map_err(|source| ImportError::Unrepresentable {
            file: file.to_owned(),
            source,
        })?;
    }
    if folded != state {
        return Err(ImportError::Sonora {
            file: file.to_owned(),
            source: SonoraError::State {
                message: "the events rebuilding the snapshot give a different state".to_owned(),
            },
        });
    }
    Ok(ImportPlan {
        file: file.to_owned(),
        sonora: parsed,
        state,
        events,
    })
}

/// Imports Sonora files (`(name, text)` pairs; the name is only used in messages and results)
/// into `journal`: every file is prepared first (see the module docs) and nothing is written
/// unless all of them are valid; then each file's events are appended to its guild and made
/// durable with one sync. Files for the same guild are applied in the order given (the last
/// one wins).
///
/// # Errors
/// The first refused file ([`ImportError::Sonora`], [`ImportError::Unrepresentable`]:
/// nothing written) or a journal error: [`ImportError::Journal`], or
/// [`ImportError::Interrupted`] when a file could not be appended (a full disk) after the files
/// before it were (each file is all or nothing; those before it are made durable and listed).
pub fn import_sonora(
    journal: &mut Journal,
    files: &[(String, String)],
) -> Result<Vec<Imported>, ImportError> {
    let plans = prepare_all(journal, files)?;
    apply_plans(journal, &plans)
}

/// The second half of [`import_sonora`]: appends every prepared file's events to its guild,
/// each file all or nothing, then makes them durable with one sync.
///
/// # Errors
/// [`ImportError::Journal`]; [`ImportError::Interrupted`] when a file's append fails after
/// earlier files were appended (those are synced first).
pub(crate) fn apply_plans(
    journal: &mut Journal,
    plans: &[ImportPlan],
) -> Result<Vec<Imported>, ImportError> {
    let mut done = Vec::with_capacity(plans.len());
    for plan in plans {
        let guild = plan.guild();
        let journal_error = |source| ImportError::Journal {
            file: plan.file.clone(),
            source,
        };
        let first_seq = match journal.append_many(guild, &plan.events, Durability::None) {
            Ok(seqs) => seqs.first().copied(),
            Err(source) if done.is_empty() => return Err(journal_error(source)),
            Err(source) => {
                // Nothing of this file was written (an append is all or nothing); the files
                // before it are made durable, or the sync's failure is the answer.
                let file = done
                    .last()
                    .map_or_else(String::new, |d: &Imported| d.file.clone());
                journal
                    .sync()
                    .map_err(|source| ImportError::Journal { file, source })?;
                return Err(ImportError::Interrupted {
                    imported: done,
                    file: plan.file.clone(),
                    source,
                });
            }
        };
        let seq = journal.state(guild).map_err(journal_error)?.seq;
        done.push(Imported {
            file: plan.file.clone(),
            guild,
            events: plan.events.len() as u64,
            first_seq,
            seq,
        });
    }
    journal.sync().map_err(|source| ImportError::Journal {
        file: plans.last().map(|p| p.file.clone()).unwrap_or_default(),
        source,
    })?;
    Ok(done)
}

/// Prepares every file against the journal's current states, in order, each file seeing the
/// state the previous files of its guild leave. Writes nothing.
///
/// # Errors
/// As [`import_sonora`].
pub fn prepare_all(
    journal: &mut Journal,
    files: &[(String, String)],
) -> Result<Vec<ImportPlan>, ImportError> {
    let mut states: std::collections::BTreeMap<GuildId, State> = Default::default();
    let mut plans = Vec::with_capacity(files.len());
    for (name, text) in files {
        let parsed = sonora::parse(text).map_err(|source| ImportError::Sonora {
            file: name.clone(),
            source,
        })?;
        let guild = GuildId(parsed.guild_id);
        let base = match states.get(&guild) {
            Some(state) => state.clone(),
            None => journal
                .state(guild)
                .map_err(|source| ImportError::Journal {
                    file: name.clone(),
                    source,
                })?
                .state
                .clone(),
        };
        let plan = prepare_file(name, parsed, &base)?;
        states.insert(guild, plan.state.clone());
        plans.push(plan);
    }
    Ok(plans)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::session::{apply_checked, Event, Track};
    use crate::sonora::{from_state, to_json, Sections};

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sonora-1.2.8");

    fn fixtures() -> Vec<(String, String)> {
        let mut files: Vec<(String, String)> = std::fs::read_dir(FIXTURES)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .map(|p| {
                (
                    p.display().to_string(),
                    std::fs::read_to_string(&p).unwrap(),
                )
            })
            .collect();
        files.sort();
        assert_eq!(files.len(), 12);
        files
    }

    #[test]
    fn every_fixture_imports_and_exports_the_same_data() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(dir.path(), Config::default()).unwrap();
        let files = fixtures();
        let done = import_sonora(&mut journal, &files).unwrap();
        assert_eq!(done.len(), 12);
        for ((name, text), imported) in files.iter().zip(&done) {
            let original = sonora::parse(text).unwrap();
            assert_eq!(imported.guild.0, original.guild_id, "{name}");
            let gs = journal.state(imported.guild).unwrap().clone();
            assert_eq!(gs.seq, imported.seq);
            let back = from_state(
                original.guild_id,
                original.timestamp,
                &gs.state,
                Sections::ALL,
            );
            assert_eq!(back.data, original.data, "{name}");
            assert_eq!(to_json(&back), *text, "{name}");
        }
        journal.close().unwrap();
    }

    #[test]
    fn reimport_ends_the_previous_session_first() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(dir.path(), Config::default()).unwrap();
        let files = fixtures();
        let file = files
            .iter()
            .find(|(n, _)| n.contains("211917732357417771"))
            .unwrap();
        let guild = GuildId(211917732357417771);
        let track = Track::new("QAAA", "Other");
        journal
            .append(
                guild,
                &Event::TracksEnqueued {
                    tracks: vec![track],
                    index: None,
                },
                Durability::Always,
            )
            .unwrap();
        let first = import_sonora(&mut journal, std::slice::from_ref(file)).unwrap();
        assert_eq!(first[0].first_seq, Some(2));
        let events: Vec<Event> = journal
            .events(guild)
            .unwrap()
            .map(|e| e.unwrap().event)
            .collect();
        assert_eq!(events[1], Event::SessionEnded);
        let after_first = journal.state(guild).unwrap().state.clone();
        let second = import_sonora(&mut journal, std::slice::from_ref(file)).unwrap();
        assert_eq!(second[0].first_seq, Some(first[0].seq + 1));
        assert_eq!(journal.state(guild).unwrap().state, after_first);
    }

    #[test]
    fn one_bad_file_writes_nothing_for_any() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(dir.path(), Config::default()).unwrap();
        let mut files = fixtures();
        let bad = files[5].1.replacen("\"volume\": ", "\"volume\": 1", 1);
        files[5].1 = bad;
        let error = import_sonora(&mut journal, &files).unwrap_err();
        assert!(error.is_invalid_data());
        assert_eq!(error.file(), files[5].0);
        assert!(matches!(
            error,
            ImportError::Sonora {
                source: SonoraError::ChecksumMismatch { .. },
                ..
            }
        ));
        for (_, text) in &files {
            let guild_id = sonora::parse(text).map(|f| f.guild_id);
            if let Ok(id) = guild_id {
                assert_eq!(journal.state(GuildId(id)).unwrap().seq, 0);
            }
        }
        assert!(journal.guilds().unwrap().is_empty());
    }

    #[test]
    fn a_position_without_a_track_is_anchored_at_the_file_time() {
        let mut state = State::new(50);
        apply_checked(&mut state, &Event::VolumeSet { volume: 3 }).unwrap();
        let mut file = from_state(7, 1_760_000_000, &state, Sections::ALL);
        if let Some(player) = file.data.player.as_mut() {
            player.position = 4321;
        }
        file.checksum = sonora::checksum(&file);
        let plan = prepare("f", &to_json(&file), &State::new(50)).unwrap();
        assert_eq!(plan.state.player.position_ms, 4321);
        assert_eq!(
            plan.state.player.position_anchor_unix_ms,
            Some(1_760_000_000_000)
        );
        let back = from_state(7, 1_760_000_000, &plan.state, Sections::ALL);
        assert_eq!(back.data, file.data);
    }
}

//! Verify and inspect: [`Journal::verify`] checks every file of every guild without changing
//! anything and reports what it found; [`Journal::inspect`] describes a guild's files.

use std::path::PathBuf;

use super::recover::{claimed_of, explain_broken, frame_event, runs_of};
use super::Journal;
use crate::error::{Corruption, CorruptionKind, Result};
use crate::format::segment::{self, ScanEnd, SegmentScan};
use crate::format::snapshot;
use crate::ids::{GuildId, Seq};
use crate::layout;
use crate::recovery::{self, Decision, Found, SnapshotFound};
use crate::session::{self, State};

/// One problem `verify` found (or, with kind [`CorruptionKind::TornTail`], one harmless torn
/// tail).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The guild whose file it is (`None` for the shared commit log).
    pub guild: Option<GuildId>,
    /// Where and what.
    pub corruption: Corruption,
}

impl Finding {
    /// Whether the finding makes the journal unsound (everything but a torn tail).
    pub fn is_damage(&self) -> bool {
        self.corruption.kind != CorruptionKind::TornTail
    }

    /// The finding's JSON form, one line of `reprise verify` (and one item of the Python
    /// package's `verify()`): `{"guild", "file", "offset", "kind", "expected", "actual",
    /// "detail"}`; `guild`, `expected` and `actual` may be null.
    pub fn to_json(&self) -> serde_json::Value {
        let c = &self.corruption;
        serde_json::json!({
            "guild": self.guild.map(|g| g.0),
            "file": c.path.display().to_string(),
            "offset": c.offset,
            "kind": c.kind.as_str(),
            "expected": c.expected,
            "actual": c.actual,
            "detail": if c.detail.is_empty() { c.to_string() } else { c.detail.clone() },
        })
    }
}

/// What `verify` checked and found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Guilds checked.
    pub guilds: u64,
    /// Files checked.
    pub files: u64,
    /// Events checked (decoded and folded).
    pub events: u64,
    /// Findings, in file order.
    pub findings: Vec<Finding>,
}

impl VerifyReport {
    /// True when no finding is damage (torn tails are allowed).
    pub fn is_sound(&self) -> bool {
        self.findings.iter().all(|f| !f.is_damage())
    }
}

/// The damage in a report, as a reader's trouble (see `live.rs`); `None` when it has none.
fn damage_trouble(report: &VerifyReport) -> Option<String> {
    let damage: Vec<String> = report
        .findings
        .iter()
        .filter(|f| f.is_damage())
        .map(|f| super::live::corruption_trouble(&f.corruption))
        .collect();
    (!damage.is_empty()).then(|| damage.join("; "))
}

/// A file of a guild, as `inspect` describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileInfo {
    /// Full path.
    pub path: PathBuf,
    /// Size in bytes.
    pub bytes: u64,
    /// First sequence number held (segments) or the snapshot's sequence number.
    pub first_seq: Seq,
    /// Last sequence number held (segments) or the snapshot's sequence number.
    pub last_seq: Seq,
    /// Segments: whether this is the active (newest) one.
    pub active: bool,
}

/// A guild's files, as `inspect` describes them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GuildInfo {
    /// Log segments, oldest first.
    pub segments: Vec<FileInfo>,
    /// Snapshots, oldest first.
    pub snapshots: Vec<FileInfo>,
}

impl Journal {
    /// Describes the guild's files (sizes and sequence ranges).
    ///
    /// # Errors
    /// [`Error::Io`].
    ///
    /// [`Error::Io`]: crate::error::Error::Io
    pub fn inspect(&mut self, guild: GuildId) -> Result<GuildInfo> {
        self.read_settled(|j| j.inspect_once(guild), |_| None)
    }

    /// One attempt of [`Journal::inspect`].
    pub(super) fn inspect_once(&mut self, guild: GuildId) -> Result<GuildInfo> {
        self.flush_buffers(Some(guild))?;
        let scanned = self.read_guild(guild)?;
        let mut info = GuildInfo::default();
        for seg in &scanned.segments {
            let (first, last) = seg
                .scan
                .as_ref()
                .map_or((seg.first_seq, seg.first_seq.saturating_sub(1)), |s| {
                    (s.header.first_seq, s.last_seq)
                });
            info.segments.push(FileInfo {
                path: seg.path.clone(),
                bytes: seg.bytes.len() as u64,
                first_seq: first,
                last_seq: last,
                active: seg.active,
            });
        }
        for &seq in &scanned.snapshots {
            let path = layout::snapshot_path(&self.root, guild, seq);
            let bytes = self.storage.file_len(&path).unwrap_or(0);
            info.snapshots.push(FileInfo {
                path,
                bytes,
                first_seq: seq,
                last_seq: seq,
                active: false,
            });
        }
        Ok(info)
    }

    /// Checks every file of every guild: headers, checksums, framing, sequence continuity within
    /// and across segments, that every logged event decodes and is accepted by the fold, that
    /// every snapshot decodes and equals the fold of the log at its sequence number, and that
    /// the current state of every guild can be rebuilt. Never modifies anything.
    ///
    /// # Errors
    /// [`Error::Io`] when a file cannot be read at all; damage is reported as findings.
    ///
    /// [`Error::Io`]: crate::error::Error::Io
    pub fn verify(&mut self) -> Result<VerifyReport> {
        self.verify_with(&mut |_, _| {})
    }

    /// [`Journal::verify`], calling `on_guild(done, total)` after each guild is checked (for a
    /// progress display: `done` guilds of `total`).
    ///
    /// # Errors
    /// As [`Journal::verify`].
    pub fn verify_with(&mut self, on_guild: &mut dyn FnMut(u64, u64)) -> Result<VerifyReport> {
        // A reader of a live journal checks the commit logs and each guild until what it
        // finds settles: damage that a racing writer explains (a record being written, files
        // read at two different moments) is read again from a fresh listing; damage found
        // twice in a row is reported.
        let mut report = self.read_settled(Journal::verify_shared, damage_trouble)?;
        let guilds = self.guilds()?;
        let total = guilds.len() as u64;
        for (i, guild) in guilds.into_iter().enumerate() {
            let part = self.read_settled(
                |j| {
                    let mut part = VerifyReport::default();
                    j.verify_guild(guild, &mut part)?;
                    Ok(part)
                },
                damage_trouble,
            )?;
            report.guilds += part.guilds;
            report.files += part.files;
            report.events += part.events;
            report.findings.extend(part.findings);
            on_guild(i as u64 + 1, total);
        }
        Ok(report)
    }

    /// The first part of [`Journal::verify`]: every buffered frame written to its segment, and
    /// the findings that belong to no guild's own check (recovery's damage and torn tails, files
    /// nobody knows). [`Journal::verify_guild_paged`] adds each guild (the async handle pages
    /// a verify this way, a few guilds per command).
    pub(crate) fn verify_shared(&mut self) -> Result<VerifyReport> {
        self.flush_buffers(None)?;
        let mut report = VerifyReport::default();
        for c in self
            .recovered
            .damage
            .iter()
            .chain(&self.recovered.torn)
            .cloned()
            .chain(
                self.recovered
                    .unknown
                    .iter()
                    .map(|p| Corruption::new(p, 0, CorruptionKind::UnknownFile)),
            )
        {
            report.files += 1;
            report.findings.push(Finding {
                guild: None,
                corruption: c,
            });
        }
        Ok(report)
    }

    /// One guild of [`Journal::verify`] (its buffered frames written to its segment first),
    /// its findings added to `report`.
    pub(crate) fn verify_guild_paged(
        &mut self,
        guild: GuildId,
        report: &mut VerifyReport,
    ) -> Result<()> {
        self.flush_buffers(Some(guild))?;
        self.verify_guild(guild, report)
    }

    fn verify_guild(&self, guild: GuildId, report: &mut VerifyReport) -> Result<()> {
        report.guilds += 1;
        let scanned = self.read_guild(guild)?;
        let mut push = |c: Corruption| {
            report.findings.push(Finding {
                guild: Some(guild),
                corruption: c,
            })
        };
        for path in &scanned.unknown {
            push(Corruption::new(path, 0, CorruptionKind::UnknownFile));
        }
        // What recovery restored from the commit log in place of a segment's unsynced part.
        for c in &scanned.replaced {
            push(c.clone());
        }
        let mut files = scanned.segments.len() as u64;
        for seg in &scanned.segments {
            if seg.torn_header {
                push(
                    Corruption::new(&seg.path, 0, CorruptionKind::TornTail)
                        .detail("segment header never became durable"),
                );
            }
            if let Some(f) = &seg.fault {
                push(f.clone());
            }
            if let Some(SegmentScan {
                end: ScanEnd::TornTail { offset },
                ..
            }) = &seg.scan
            {
                push(Corruption::new(
                    &seg.path,
                    *offset,
                    CorruptionKind::TornTail,
                ));
            }
        }
        // Every snapshot on its own.
        let mut snapshots: Vec<(Seq, State)> = Vec::new();
        for &seq in &scanned.snapshots {
            files += 1;
            match self.load_snapshot(guild, seq)? {
                Ok(state) => snapshots.push((seq, state)),
                Err(c) => push(c),
            }
        }
        // Fold every held event from every usable base; compare snapshots on the way.
        let runs = runs_of(&scanned.segments);
        let found_snaps: Vec<SnapshotFound> = snapshots
            .iter()
            .map(|(seq, _)| SnapshotFound {
                seq: *seq,
                valid: true,
            })
            .collect();
        let found = Found {
            snapshots: &found_snaps,
            runs: &runs,
            claimed: claimed_of(&scanned.segments).max(scanned.commit_head),
        };
        // Start points: genesis if the log starts at 1, and each snapshot that begins a run.
        let mut state: Option<(Seq, State)> = None;
        let history_max = self.genesis_history_max(&scanned);
        if runs.iter().any(|r| r.first == 1) {
            state = Some((0, State::new(history_max)));
        }
        let mut scratch = Vec::new();
        for seg in &scanned.segments {
            let Some(scan) = &seg.scan else { continue };
            for (offset, f) in segment::frames(&seg.bytes, scan.valid_len) {
                // (Re)start from a snapshot right before this event when the fold is not there.
                if state.as_ref().is_none_or(|(s, _)| *s + 1 != f.seq) {
                    state = snapshots
                        .iter()
                        .find(|(s, _)| *s + 1 == f.seq)
                        .map(|(s, st)| (*s, st.clone()));
                }
                let event = match frame_event(
                    &seg.path,
                    offset,
                    &f,
                    scan.header.key_id,
                    guild,
                    self.config.keys.as_ref(),
                    &mut scratch,
                ) {
                    Ok(e) => e,
                    Err(c) => {
                        push(c);
                        state = None;
                        continue;
                    }
                };
                report.events += 1;
                let Some((s, st)) = state.as_mut() else {
                    continue;
                };
                if let Err(e) = session::validate(st, &event) {
                    push(
                        Corruption::new(&seg.path, offset, CorruptionKind::EventRejected)
                            .values(*s + 1, f.seq)
                            .detail(e.to_string()),
                    );
                    state = None;
                    continue;
                }
                session::apply(st, &event);
                *s = f.seq;
                if let Some((_, snap)) = snapshots.iter().find(|(q, _)| *q == f.seq) {
                    if snap != st {
                        push(
                            Corruption::new(
                                layout::snapshot_path(&self.root, guild, f.seq),
                                snapshot::HEADER_LEN as u64,
                                CorruptionKind::SnapshotMismatch,
                            )
                            .detail("the snapshot differs from the fold of the log"),
                        );
                    }
                }
            }
        }
        if let Decision::Broken { missing } = recovery::decide(&found, None) {
            let already: Vec<Corruption> = report
                .findings
                .iter()
                .filter(|f| f.guild == Some(guild))
                .map(|f| f.corruption.clone())
                .collect();
            let c = explain_broken(&self.root, guild, &scanned, &already, missing);
            if !already.contains(&c) {
                report.findings.push(Finding {
                    guild: Some(guild),
                    corruption: c.clone(),
                });
            }
            report.findings.push(Finding {
                guild: Some(guild),
                corruption: Corruption::new(
                    layout::guild_dir(&self.root, guild),
                    0,
                    CorruptionKind::Unrecoverable,
                )
                .values(missing, 0)
                .detail(format!("event {missing} is not held; first cause: {c}")),
            });
        }
        report.files += files;
        Ok(())
    }
}

//! The error model: few enums, structured fields, corruption always says where.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::ids::{GuildId, Seq};
use crate::session::EventError;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in reprise.
///
/// The CLI maps the variants to the exit codes of CONTRACT §2: [`Error::Corrupt`],
/// [`Error::InvalidEvent`], [`Error::EventTooLarge`], [`Error::KeyMismatch`] and
/// [`Error::KeyInvalid`], and [`Error::RemoteCorrupt`] are "corrupt or
/// invalid data" (2), [`Error::Locked`], [`Error::Busy`] and [`Error::Fenced`] are 3, [`Error::Io`],
/// [`Error::Poisoned`] and [`Error::Remote`] are 4, and the read-range errors
/// ([`Error::Compacted`], [`Error::TimeCompacted`], [`Error::SeqAhead`], [`Error::ReadOnly`])
/// and [`Error::Checkpoint`] are usage errors (1). [`Error::RestoreFailed`] takes the code of
/// its source, or 2 when the state read back differed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The operating system refused an operation (disk full, permission, missing file...).
    #[error("I/O error while trying to {op} {}: {source}", path.display())]
    Io {
        /// What reprise was doing, as a verb phrase ("append to", "fsync", "rename").
        op: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A file on disk is damaged or not a reprise file; see [`Corruption`].
    #[error("{0}")]
    Corrupt(Box<Corruption>),
    /// The event does not apply to the guild's current state; nothing was written.
    #[error("guild {guild}: event rejected, nothing was written: {source}")]
    InvalidEvent {
        /// The guild the event was meant for.
        guild: GuildId,
        /// Why the fold refuses it.
        #[source]
        source: EventError,
    },
    /// The encoded event is larger than a frame may hold; nothing was written.
    #[error("guild {guild}: encoded event is {len} bytes, more than the frame payload limit of {len_max} bytes; nothing was written")]
    EventTooLarge {
        /// The guild the event was meant for.
        guild: GuildId,
        /// Encoded size.
        len: u64,
        /// The limit (16 MiB, a frame's largest payload).
        len_max: u64,
    },
    /// Another open journal holds the directory: one of another live process, or one of this
    /// process (a [`crate::Journal`] not yet dropped, a [`crate::Reprise`] with a handle alive
    /// or still shutting down); the message says which.
    #[error("journal {} is locked by {}", path.display(), lock_holder(*holder_pid))]
    Locked {
        /// The lock file.
        path: PathBuf,
        /// The holder's pid, when it wrote one (this process's own pid when the holder is in
        /// this process).
        holder_pid: Option<u32>,
    },
    /// A write or fsync of a log failed earlier (of this guild's segments, or of the commit log
    /// all guilds share, or while retiring commit logs); the log accepts nothing more until the
    /// journal is reopened (recovery then decides what is on disk). Every poisoned log is
    /// reported as this error, whichever call finds it.
    #[error("{}log is poisoned after a failed {op}; no further write is accepted until the journal is reopened", whose_log(guild))]
    Poisoned {
        /// The guild whose log is poisoned, or `None` for the shared commit log (every guild's
        /// appends are refused then).
        guild: Option<GuildId>,
        /// The operation that failed, as a verb ("write", "fsync", "fsync directory",
        /// "syncfs", "list").
        op: &'static str,
    },
    /// The requested sequence number is older than what compaction kept.
    #[error("guild {guild}: the state at seq {seq} is no longer held (compaction kept snapshots at {held}); the oldest readable seq is {oldest_seq}")]
    Compacted {
        /// The guild.
        guild: GuildId,
        /// The sequence number asked for.
        seq: Seq,
        /// The oldest sequence number whose state can still be rebuilt.
        oldest_seq: Seq,
        /// Human-readable description of the retained snapshots.
        held: String,
    },
    /// The requested sequence number is past the guild's last event.
    #[error("guild {guild}: seq {seq} is past the last event (seq {last_seq})")]
    SeqAhead {
        /// The guild.
        guild: GuildId,
        /// The sequence number asked for.
        seq: Seq,
        /// The guild's last sequence number.
        last_seq: Seq,
    },
    /// A read-only reader of a live journal found the files changing under every one of its
    /// attempts (a writer rotating, snapshotting, retiring commit logs or removing files between
    /// its listing and its reads) and gave up; nothing was written. Retrying later usually
    /// succeeds (see DESIGN.md, "Readers of a live journal").
    #[error("journal {}: the files kept changing under a read-only reader; {attempts} attempts never settled (last: {last})", path.display())]
    Busy {
        /// The journal directory.
        path: PathBuf,
        /// How many times the read was tried from a fresh listing.
        attempts: u32,
        /// What the last attempt ran into.
        last: String,
    },
    /// A write was attempted on a journal opened with [`crate::OpenMode::ReadOnly`].
    #[error("the journal was opened read-only")]
    ReadOnly,
    /// The async runtime was shut down (or its writer thread stopped); nothing was done.
    #[error("the reprise runtime is shut down")]
    Closed,
    /// A file is encrypted under a key that was not given (no key at all, or other keys);
    /// nothing was read from it or written.
    #[error("{}: the journal needs key {key_id}, {}; nothing was written", path.display(), if given.is_empty() { "and no key was given (--key-file)".to_string() } else { format!("but the keys given are {}", given.iter().map(|k| k.to_string()).collect::<Vec<_>>().join(", ")) })]
    KeyMismatch {
        /// The encrypted file (or the directory's key file).
        path: PathBuf,
        /// The id of the key the file needs.
        key_id: crate::crypto::KeyId,
        /// The ids of the keys given (empty: none).
        given: Vec<crate::crypto::KeyId>,
    },
    /// A restore ([`crate::restore`]) appended its `state_restored` event, but the state
    /// read back was not the one it restored (or could not be read back). The restore was undone
    /// by a second `state_restored` holding the state before it, when that append succeeded.
    #[error("guild {guild}: the restore appended as seq {seq} did not verify ({reason}); {}", match rollback_seq { Some(s) => format!("undone by seq {s}: the state before the restore is current again"), None => format!("it could not be undone: the restored state is durable; reopen the journal and restore seq {previous_seq} to undo it") })]
    RestoreFailed {
        /// The guild.
        guild: GuildId,
        /// The sequence number of the `state_restored` event that did not verify.
        seq: Seq,
        /// The guild's sequence number before the restore (the restore point).
        previous_seq: Seq,
        /// The sequence number of the event that undid it, when it was appended.
        rollback_seq: Option<Seq>,
        /// What did not verify.
        reason: String,
        /// The error that made the check fail, when there was one.
        #[source]
        source: Option<Box<Error>>,
    },
    /// The state at a point in time is older than what compaction kept: the oldest event the log
    /// still holds was appended after that time.
    #[error("guild {guild}: the state at {at_unix_ms} (Unix ms) is no longer held: {}", match oldest_unix_ms { Some(t) => format!("the oldest event the log holds, seq {oldest_seq}, was appended at {t}"), None => format!("the log holds no event, only the state at seq {oldest_seq}") })]
    TimeCompacted {
        /// The guild.
        guild: GuildId,
        /// The time asked for (Unix milliseconds).
        at_unix_ms: u64,
        /// The oldest event the log holds (the current seq when it holds none).
        oldest_seq: Seq,
        /// When that event was appended (Unix milliseconds); `None` when the log holds no
        /// event.
        oldest_unix_ms: Option<u64>,
    },
    /// A named checkpoint ([`crate::checkpoints`]) cannot be used as asked: it does not exist, it
    /// exists already, it is incomplete, or its label is not a valid name.
    #[error("checkpoint {label:?}: {reason}")]
    Checkpoint {
        /// The checkpoint's label.
        label: String,
        /// What is wrong.
        reason: String,
    },
    /// A key file does not hold a key.
    #[error("{}: not a key: {detail}", path.display())]
    KeyInvalid {
        /// The key file.
        path: PathBuf,
        /// Why.
        detail: String,
    },
    /// The remote store shows a newer owner of the guild: this process gets no further
    /// `remote` acknowledgement and appends nothing more to it (see DESIGN.md, "Remote").
    #[error("guild {guild} is owned by epoch {epoch} ({owner}) in the remote store: this directory is fenced and appends nothing more to it")]
    Fenced {
        /// The guild.
        guild: GuildId,
        /// The newer owner's epoch.
        epoch: crate::ids::Epoch,
        /// The newer owner's name.
        owner: String,
    },
    /// The remote object store refused a request or could not be reached.
    #[error("remote store: could not {op} {key}: {source}")]
    Remote {
        /// What reprise was doing ("list", "get", "create").
        op: &'static str,
        /// The object key (or key prefix) concerned.
        key: String,
        /// The store's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A remote object is damaged, or a guild's remote history has a gap; nothing local was
    /// written.
    #[error("remote object {key} is corrupt{}: {detail}; nothing local was written", offset.map(|o| format!(" at byte offset {o}")).unwrap_or_default())]
    RemoteCorrupt {
        /// The object key.
        key: String,
        /// Byte offset of the damaged structure, when there is one.
        offset: Option<u64>,
        /// What is wrong.
        detail: String,
    },
}

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// The corruption details, when this is [`Error::Corrupt`].
    pub fn corruption(&self) -> Option<&Corruption> {
        match self {
            Error::Corrupt(c) => Some(c),
            _ => None,
        }
    }
}

impl From<Corruption> for Error {
    fn from(c: Corruption) -> Self {
        Error::Corrupt(Box::new(c))
    }
}

/// Where and how a file is damaged.
///
/// `offset` is the byte offset in `path` where the damaged structure starts (a frame, a header,
/// a snapshot body). `expected`/`actual` carry the numbers that disagree when there are such
/// numbers (a checksum, a sequence number, a length).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Corruption {
    /// The damaged file.
    pub path: PathBuf,
    /// Byte offset of the damaged structure within the file.
    pub offset: u64,
    /// What is wrong.
    pub kind: CorruptionKind,
    /// The value the format requires, when there is one.
    pub expected: Option<u64>,
    /// The value found on disk, when there is one.
    pub actual: Option<u64>,
    /// A human-readable detail (decoder message, rejected event reason).
    pub detail: String,
}

impl Corruption {
    pub(crate) fn new(path: impl Into<PathBuf>, offset: u64, kind: CorruptionKind) -> Corruption {
        Corruption {
            path: path.into(),
            offset,
            kind,
            expected: None,
            actual: None,
            detail: String::new(),
        }
    }

    pub(crate) fn values(mut self, expected: u64, actual: u64) -> Corruption {
        self.expected = Some(expected);
        self.actual = Some(actual);
        self
    }

    pub(crate) fn detail(mut self, detail: impl Into<String>) -> Corruption {
        self.detail = detail.into();
        self
    }
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "corrupt journal file {} at byte offset {}: {}",
            self.path.display(),
            self.offset,
            self.kind.description()
        )?;
        if let (Some(e), Some(a)) = (self.expected, self.actual) {
            write!(f, " (expected {e}, found {a})")?;
        }
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

impl std::error::Error for Corruption {}

/// The kinds of damage reprise recognises. [`CorruptionKind::as_str`] is the `kind` that
/// `reprise verify` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CorruptionKind {
    /// The file does not start with the magic bytes of its kind.
    BadMagic,
    /// The file's format version is not one this build reads.
    UnsupportedVersion,
    /// A file header's checksum does not match.
    HeaderChecksum,
    /// A header field contradicts the file name or the directory (guild, first seq).
    HeaderMismatch,
    /// A record frame's checksum does not match.
    FrameChecksum,
    /// A record frame's length field is zero or larger than the limit or the file.
    FrameLength,
    /// A sealed segment ends in the middle of a frame.
    Truncated,
    /// Sequence numbers are not consecutive (within or across segments).
    SequenceGap,
    /// A frame's checksum matched but its payload does not decode as an event.
    PayloadDecode,
    /// A logged event is refused by the fold.
    EventRejected,
    /// A snapshot's body checksum does not match.
    SnapshotChecksum,
    /// A snapshot's body does not decompress or decode.
    SnapshotDecode,
    /// A snapshot disagrees with the fold of the log at the same sequence number.
    SnapshotMismatch,
    /// A file is larger than any valid file of its kind.
    FileTooLarge,
    /// A file in a guild directory that reprise did not write.
    UnknownFile,
    /// The log does not reach back to a snapshot or to seq 1: the state cannot be rebuilt.
    Unrecoverable,
    /// Encrypted data whose checksum matched failed authentication: it was altered, or moved
    /// from another guild, position or file.
    Authentication,
    /// Not corruption: the active segment ends in a torn or zero-filled write (recovery truncates
    /// it). Reported by `verify` for information.
    TornTail,
    /// A named checkpoint's manifest or state file does not match: a body checksum, a label, the
    /// guild order, or a state file that is not the one the manifest names.
    CheckpointMismatch,
}

impl CorruptionKind {
    /// The snake_case name used in `reprise verify` findings.
    pub fn as_str(self) -> &'static str {
        match self {
            CorruptionKind::BadMagic => "bad_magic",
            CorruptionKind::UnsupportedVersion => "unsupported_version",
            CorruptionKind::HeaderChecksum => "header_checksum",
            CorruptionKind::HeaderMismatch => "header_mismatch",
            CorruptionKind::FrameChecksum => "frame_checksum",
            CorruptionKind::FrameLength => "frame_length",
            CorruptionKind::Truncated => "truncated",
            CorruptionKind::SequenceGap => "sequence_gap",
            CorruptionKind::PayloadDecode => "payload_decode",
            CorruptionKind::EventRejected => "event_rejected",
            CorruptionKind::SnapshotChecksum => "snapshot_checksum",
            CorruptionKind::SnapshotDecode => "snapshot_decode",
            CorruptionKind::SnapshotMismatch => "snapshot_mismatch",
            CorruptionKind::FileTooLarge => "file_too_large",
            CorruptionKind::UnknownFile => "unknown_file",
            CorruptionKind::Unrecoverable => "unrecoverable",
            CorruptionKind::Authentication => "authentication",
            CorruptionKind::TornTail => "torn_tail",
            CorruptionKind::CheckpointMismatch => "checkpoint_mismatch",
        }
    }

    pub(crate) fn description(self) -> &'static str {
        match self {
            CorruptionKind::BadMagic => "not a reprise file of this kind (bad magic)",
            CorruptionKind::UnsupportedVersion => "unsupported format version",
            CorruptionKind::HeaderChecksum => "file header checksum mismatch",
            CorruptionKind::HeaderMismatch => "file header contradicts its name or directory",
            CorruptionKind::FrameChecksum => "record checksum mismatch",
            CorruptionKind::FrameLength => "record length out of bounds",
            CorruptionKind::Truncated => "sealed segment ends inside a record",
            CorruptionKind::SequenceGap => "sequence numbers are not consecutive",
            CorruptionKind::PayloadDecode => "record payload does not decode",
            CorruptionKind::EventRejected => "logged event is refused by the fold",
            CorruptionKind::SnapshotChecksum => "snapshot body checksum mismatch",
            CorruptionKind::SnapshotDecode => "snapshot body does not decode",
            CorruptionKind::SnapshotMismatch => "snapshot disagrees with the fold of the log",
            CorruptionKind::FileTooLarge => "file larger than any valid file of its kind",
            CorruptionKind::UnknownFile => "file not written by reprise",
            CorruptionKind::Unrecoverable => "the state cannot be rebuilt exactly",
            CorruptionKind::Authentication => {
                "encrypted data fails authentication (altered, or moved from elsewhere)"
            }
            CorruptionKind::TornTail => "torn or zero-filled tail of the active segment",
            CorruptionKind::CheckpointMismatch => {
                "checkpoint manifest or state file does not match (checksum, label, order)"
            }
        }
    }
}

/// The start of [`Error::Poisoned`]'s message: which log is poisoned.
/// Who holds a journal's lock, for [`Error::Locked`]'s message.
fn lock_holder(holder_pid: Option<u32>) -> String {
    match holder_pid {
        Some(pid) if pid == std::process::id() => format!(
            "this process (pid {pid}): a journal or runtime it opened on the directory is still \
             open; call `shutdown().await` on the `Reprise` handle (or drop the `Journal`) before \
             reopening"
        ),
        Some(pid) => format!("another process (pid {pid})"),
        None => "another process".to_owned(),
    }
}

fn whose_log(guild: &Option<GuildId>) -> String {
    match guild {
        Some(guild) => format!("guild {guild}: "),
        None => "the shared commit ".to_owned(),
    }
}

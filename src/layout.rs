//! Every file and directory name reprise uses, built and parsed in one place.
//!
//! ```text
//! DIR/
//!   LOCK                                  advisory lock; the writer's pid
//!   KEYCHECK                              present when the journal is encrypted: which key
//!   commit/
//!     <generation:020>.clog               shared commit log (group commit across guilds)
//!   guilds/
//!     <guild>/                            one directory per guild, decimal id
//!       <first_seq:020>.wal               log segment, named by its first sequence number
//!       <seq:020>.snap                    snapshot of the state after event <seq>
//!       <name>.tmp                        a file being written by write_atomic (crash leftover)
//!   checkpoints/
//!     <label>/                            a named checkpoint (deployments: crate::checkpoints)
//!       MANIFEST                          guild -> seq, written last (format::manifest)
//!       <guild>.snap                      the guild's state at the checkpoint (snapshot format)
//!   remote/
//!     <guild>.owner                       the remote epoch this directory holds for the guild
//!     superseded/<guild>-<epoch>-<ms>/    a copy of the guild a claim replaced (unread; removed
//!                                         by the rule of `SupersededRetention`)
//! ```
//! Sequence numbers are zero-padded to 20 digits (u64::MAX has 20) so names sort numerically.

use std::path::{Path, PathBuf};

use crate::ids::{Epoch, Generation, GuildId, Seq};

/// Name of the lock file in the journal directory.
pub const LOCK_FILE: &str = "LOCK";
/// Name of the key check file (present when the journal is encrypted).
pub const KEYCHECK_FILE: &str = "KEYCHECK";
/// Name of the directory holding one directory per guild.
pub const GUILDS_DIR: &str = "guilds";
/// Name of the directory holding the shared commit log.
pub const COMMIT_DIR: &str = "commit";
/// Extension of commit log files.
pub const COMMIT_EXT: &str = "clog";
/// Extension of log segments.
pub const SEGMENT_EXT: &str = "wal";
/// Extension of snapshots.
pub const SNAPSHOT_EXT: &str = "snap";
/// Extension of temporary files written by [`crate::storage::write_atomic`].
pub const TEMP_EXT: &str = "tmp";

/// The lock file of a journal directory.
pub fn lock_path(root: &Path) -> PathBuf {
    root.join(LOCK_FILE)
}

/// The key check file of a journal directory (see [`crate::format::keycheck`]).
pub fn keycheck_path(root: &Path) -> PathBuf {
    root.join(KEYCHECK_FILE)
}

/// The directory holding every guild directory.
pub fn guilds_dir(root: &Path) -> PathBuf {
    root.join(GUILDS_DIR)
}

/// The directory of the shared commit log.
pub fn commit_dir(root: &Path) -> PathBuf {
    root.join(COMMIT_DIR)
}

/// The commit log file of `generation`.
pub fn commit_path(root: &Path, generation: Generation) -> PathBuf {
    commit_dir(root).join(format!("{generation:020}.{COMMIT_EXT}"))
}

/// Parses a commit log file name (exactly 20 digits and the extension) into its generation.
pub fn parse_commit_file(name: &str) -> Option<Generation> {
    let (stem, ext) = name.split_once('.')?;
    if ext != COMMIT_EXT || stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok().map(Generation)
}

/// The directory of one guild.
pub fn guild_dir(root: &Path, guild: GuildId) -> PathBuf {
    guilds_dir(root).join(guild.0.to_string())
}

/// The segment of `guild` whose first event is `first_seq`.
pub fn segment_path(root: &Path, guild: GuildId, first_seq: Seq) -> PathBuf {
    guild_dir(root, guild).join(format!("{first_seq:020}.{SEGMENT_EXT}"))
}

/// The snapshot of `guild` after event `seq`.
pub fn snapshot_path(root: &Path, guild: GuildId, seq: Seq) -> PathBuf {
    guild_dir(root, guild).join(format!("{seq:020}.{SNAPSHOT_EXT}"))
}

/// The temporary file used while atomically replacing `path`.
pub fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".");
    name.push(TEMP_EXT);
    path.with_file_name(name)
}

/// What a file name in a guild directory is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuildFile {
    /// A log segment and its first sequence number.
    Segment(Seq),
    /// A snapshot and its sequence number.
    Snapshot(Seq),
    /// A leftover temporary file.
    Temp,
    /// Anything else.
    Unknown,
}

/// Classifies a file name found in a guild directory. Only canonical names (exactly 20 digits)
/// are recognised, so every file has one meaning.
pub fn parse_guild_file(name: &str) -> GuildFile {
    if name.ends_with(&format!(".{TEMP_EXT}")) {
        return GuildFile::Temp;
    }
    let Some((stem, ext)) = name.split_once('.') else {
        return GuildFile::Unknown;
    };
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return GuildFile::Unknown;
    }
    let Ok(seq) = stem.parse::<Seq>() else {
        return GuildFile::Unknown;
    };
    if seq == 0 || seq > crate::ids::SEQ_MAX {
        return GuildFile::Unknown;
    }
    match ext {
        SEGMENT_EXT => GuildFile::Segment(seq),
        SNAPSHOT_EXT => GuildFile::Snapshot(seq),
        _ => GuildFile::Unknown,
    }
}

/// Parses a guild directory name: canonical decimal (no sign, no leading zero).
pub fn parse_guild_dir(name: &str) -> Option<GuildId> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if name.len() > 1 && name.starts_with('0') {
        return None;
    }
    name.parse().ok().map(GuildId)
}

/// Name of the directory holding the named checkpoints.
pub const CHECKPOINTS_DIR: &str = "checkpoints";
/// Name of a checkpoint's manifest file.
pub const MANIFEST_FILE: &str = "MANIFEST";

/// The directory holding every named checkpoint.
pub fn checkpoints_dir(root: &Path) -> PathBuf {
    root.join(CHECKPOINTS_DIR)
}

/// The directory of the checkpoint `label` (a label checked by
/// [`crate::format::manifest::label_is_valid`]: one plain directory name).
pub fn checkpoint_dir(root: &Path, label: &str) -> PathBuf {
    checkpoints_dir(root).join(label)
}

/// The manifest of the checkpoint `label`.
pub fn checkpoint_manifest_path(root: &Path, label: &str) -> PathBuf {
    checkpoint_dir(root, label).join(MANIFEST_FILE)
}

/// The state file of `guild` in the checkpoint `label`.
pub fn checkpoint_state_path(root: &Path, label: &str, guild: GuildId) -> PathBuf {
    checkpoint_dir(root, label).join(format!("{}.{SNAPSHOT_EXT}", guild.0))
}

/// Name of the directory holding this directory's remote ownership records (see the `remote`
/// module, feature `remote`).
pub const REMOTE_DIR: &str = "remote";

/// The record of which remote epoch this directory holds for `guild` (`remote/<guild>.owner`).
pub fn remote_owner_path(root: &Path, guild: GuildId) -> PathBuf {
    root.join(REMOTE_DIR).join(format!("{}.owner", guild.0))
}

#[cfg(any(feature = "remote", feature = "testing", test))]
/// Where a claim puts this directory's superseded copy of `guild` (the files it held under
/// `epoch`, 0 when it held no epoch) before it writes the store's history in its place:
/// `remote/superseded/<guild>-<epoch>-<unix_ms>/`. Nothing reads it; the rule of
/// [`crate::SupersededRetention`] removes it.
pub fn superseded_dir(root: &Path, guild: GuildId, epoch: Epoch, unix_ms: u64) -> PathBuf {
    superseded_root(root).join(format!("{}-{epoch}-{unix_ms}", guild.0))
}

/// The directory holding every superseded copy: `remote/superseded/`.
pub fn superseded_root(root: &Path) -> PathBuf {
    root.join(REMOTE_DIR).join("superseded")
}

/// Parses a superseded copy's directory name: (guild, epoch, unix ms it was set aside).
pub fn parse_superseded_name(name: &str) -> Option<(GuildId, Epoch, u64)> {
    let mut parts = name.split('-');
    let mut num = || -> Option<u64> {
        let p = parts.next()?;
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        p.parse().ok()
    };
    let parsed = (GuildId(num()?), Epoch(num()?), num()?);
    parts.next().is_none().then_some(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let root = Path::new("/j");
        let g = GuildId(42);
        let seg = segment_path(root, g, 7);
        assert_eq!(seg, Path::new("/j/guilds/42/00000000000000000007.wal"));
        let name = seg.file_name().unwrap().to_str().unwrap();
        assert_eq!(parse_guild_file(name), GuildFile::Segment(7));
        let snap = snapshot_path(root, g, crate::ids::SEQ_MAX);
        let name = snap.file_name().unwrap().to_str().unwrap();
        assert_eq!(
            parse_guild_file(name),
            GuildFile::Snapshot(crate::ids::SEQ_MAX)
        );
        assert_eq!(
            parse_guild_file(temp_path(&snap).file_name().unwrap().to_str().unwrap()),
            GuildFile::Temp
        );
        assert_eq!(parse_guild_file("7.wal"), GuildFile::Unknown);
        assert_eq!(parse_guild_dir("42"), Some(g));
        assert_eq!(parse_guild_dir("042"), None);
        assert_eq!(parse_guild_dir("../x"), None);
    }

    #[test]
    fn superseded_names_round_trip_and_nothing_else_parses() {
        let root = Path::new("/j");
        let dir = superseded_dir(root, GuildId(42), Epoch(3), 1_700_000_000_000);
        assert_eq!(dir.parent().unwrap(), superseded_root(root));
        let name = dir.file_name().unwrap().to_str().unwrap();
        assert_eq!(
            parse_superseded_name(name),
            Some((GuildId(42), Epoch(3), 1_700_000_000_000))
        );
        for bad in [
            "", "42", "42-3", "42-3-", "42-3-x", "42-3-1-9", "-3-1", "+4-3-1", "42.tmp",
        ] {
            assert_eq!(parse_superseded_name(bad), None, "{bad:?}");
        }
    }
}

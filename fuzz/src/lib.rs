//! Helpers shared by the fuzz targets and the seed generator.
//!
//! - [`fix_segment_crcs`] / [`fix_snapshot_crcs`]: recompute every checksum of a (mutated)
//!   segment or snapshot, so that the fuzzer also reaches the code behind the CRC checks
//!   (frame sequencing, bincode payloads, zstd, the fold) instead of stopping at the first
//!   checksum mismatch.
//! - [`DirImage`]: the byte format of a `recover_dir` input (a small guild directory).
//! - [`scratch_dir`]: a fresh temporary directory, on tmpfs when `/dev/shm` exists.

use reprise::format::{frame, segment, snapshot};

/// The guild every `recover_dir` image belongs to (its files go to `guilds/7/`).
pub const GUILD: u64 = 7;

/// Recomputes, in place, the header checksum of a segment and the checksum of every frame
/// whose length field is in range and fits in the bytes; stops at the first frame that does
/// not. Everything else (magic, version, sequence numbers, payloads) is left as the fuzzer made
/// it.
pub fn fix_segment_crcs(bytes: &mut [u8]) {
    if bytes.len() < segment::HEADER_LEN {
        return;
    }
    let crc = crc32fast::hash(&bytes[..segment::CRC_OFFSET]);
    bytes[segment::CRC_OFFSET..segment::CRC_OFFSET + 4].copy_from_slice(&crc.to_le_bytes());
    let mut offset = segment::HEADER_LEN;
    while offset + frame::HEADER_LEN <= bytes.len() {
        let at = offset + frame::LEN_OFFSET;
        let len = u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
        if len == 0 || len > frame::PAYLOAD_LEN_MAX {
            return;
        }
        let end = offset + frame::HEADER_LEN + len as usize;
        if end > bytes.len() {
            return;
        }
        let crc = crc32fast::hash(&bytes[offset + frame::LEN_OFFSET..end]);
        bytes[offset + frame::CRC_OFFSET..offset + frame::CRC_OFFSET + 4]
            .copy_from_slice(&crc.to_le_bytes());
        offset = end;
    }
}

/// Recomputes, in place, a snapshot's body length, body checksum and header checksum, so the
/// header always agrees with the body that follows it.
pub fn fix_snapshot_crcs(bytes: &mut [u8]) {
    if bytes.len() < snapshot::HEADER_LEN {
        return;
    }
    let body_len = (bytes.len() - snapshot::HEADER_LEN) as u64;
    bytes[snapshot::BODY_LEN_OFFSET..snapshot::BODY_LEN_OFFSET + 8]
        .copy_from_slice(&body_len.to_le_bytes());
    let body_crc = crc32fast::hash(&bytes[snapshot::HEADER_LEN..]);
    bytes[snapshot::BODY_CRC_OFFSET..snapshot::BODY_CRC_OFFSET + 4]
        .copy_from_slice(&body_crc.to_le_bytes());
    let crc = crc32fast::hash(&bytes[..snapshot::HEADER_CRC_OFFSET]);
    bytes[snapshot::HEADER_CRC_OFFSET..snapshot::HEADER_CRC_OFFSET + 4]
        .copy_from_slice(&crc.to_le_bytes());
}

/// Sequence numbers a `recover_dir` file name can carry (index: bits 2..6 of the selector).
/// Small numbers so that names, headers and snapshots can agree, plus the two extremes.
pub const NAME_SEQS: [u64; 16] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 16, 20, 0, u64::MAX];

/// What kind of file a selector names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// `<seq:020>.wal`
    Segment,
    /// `<seq:020>.snap`
    Snapshot,
    /// `<seq:020>.snap.tmp`: a leftover of `write_atomic`.
    Temp,
    /// `notes.txt`: a file reprise does not know.
    Unknown,
}

/// One file of a [`DirImage`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageFile {
    /// The selector byte it was named by.
    pub selector: u8,
    /// Its contents (checksums already fixed when the image asks for it).
    pub bytes: Vec<u8>,
}

impl ImageFile {
    /// The kind of file the selector names.
    pub fn kind(&self) -> FileKind {
        match self.selector & 3 {
            0 | 1 => FileKind::Segment,
            2 => FileKind::Snapshot,
            _ if self.selector & 0x40 != 0 => FileKind::Temp,
            _ => FileKind::Unknown,
        }
    }

    /// The sequence number in the name.
    pub fn seq(&self) -> u64 {
        NAME_SEQS[usize::from((self.selector >> 2) & 15)]
    }

    /// The file name in the guild directory.
    pub fn name(&self) -> String {
        let seq = self.seq();
        match self.kind() {
            FileKind::Segment => format!("{seq:020}.wal"),
            FileKind::Snapshot => format!("{seq:020}.snap"),
            FileKind::Temp => format!("{seq:020}.snap.tmp"),
            FileKind::Unknown => "notes.txt".to_owned(),
        }
    }
}

/// The selector naming `<seq:020>.wal` (`seq` must be in [`NAME_SEQS`]).
pub fn segment_selector(seq: u64) -> u8 {
    seq_index(seq) << 2
}

/// The selector naming `<seq:020>.snap` (`seq` must be in [`NAME_SEQS`]).
pub fn snapshot_selector(seq: u64) -> u8 {
    (seq_index(seq) << 2) | 2
}

fn seq_index(seq: u64) -> u8 {
    let i = NAME_SEQS
        .iter()
        .position(|&s| s == seq)
        .unwrap_or_else(|| panic!("seq {seq} has no file name selector"));
    i as u8
}

/// Most files in one image.
pub const IMAGE_FILES_MAX: usize = 4;

/// Flag bit 0: recompute every checksum of the segments and snapshots before writing them.
pub const FLAG_FIX_CRCS: u8 = 1;

/// A small guild directory as the `recover_dir` target reads it from the fuzzer's bytes:
///
/// ```text
/// flags: u8                  bit 0: fix checksums (FLAG_FIX_CRCS); bits 1..8: state_at probe
/// up to 4 times:
///   selector: u8             bits 0..2: kind (0,1 .wal, 2 .snap, 3 .tmp/unknown),
///                            bits 2..6: index into NAME_SEQS, bit 6: .tmp (kind 3)
///   len: u16 LE              bytes of the file (fewer if the input ends first)
///   bytes
/// ```
///
/// A file whose name was already taken by an earlier record is dropped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DirImage {
    /// The flag byte.
    pub flags: u8,
    /// The files, in input order, names unique.
    pub files: Vec<ImageFile>,
}

impl DirImage {
    /// Reads an image; every input is some image.
    pub fn parse(data: &[u8]) -> DirImage {
        let mut image = DirImage::default();
        let Some((&flags, mut rest)) = data.split_first() else {
            return image;
        };
        image.flags = flags;
        while image.files.len() < IMAGE_FILES_MAX && rest.len() >= 3 {
            let selector = rest[0];
            let len = usize::from(u16::from_le_bytes([rest[1], rest[2]]));
            let body = &rest[3..];
            let take = len.min(body.len());
            let mut file = ImageFile {
                selector,
                bytes: body[..take].to_vec(),
            };
            rest = &body[take..];
            if image.files.iter().any(|f| f.name() == file.name()) {
                continue;
            }
            if flags & FLAG_FIX_CRCS != 0 {
                match file.kind() {
                    FileKind::Segment => fix_segment_crcs(&mut file.bytes),
                    FileKind::Snapshot => fix_snapshot_crcs(&mut file.bytes),
                    FileKind::Temp | FileKind::Unknown => {}
                }
            }
            image.files.push(file);
        }
        image
    }

    /// The bytes [`DirImage::parse`] reads back as this image (files over 64 KiB are cut).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![self.flags];
        for f in &self.files {
            let len = f.bytes.len().min(usize::from(u16::MAX));
            out.push(f.selector);
            out.extend_from_slice(&(len as u16).to_le_bytes());
            out.extend_from_slice(&f.bytes[..len]);
        }
        out
    }
}

/// A fresh temporary directory, on tmpfs (`/dev/shm`) when there is one so each run costs no
/// disk I/O (fsync is free there).
pub fn scratch_dir() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(dir) = tempfile::Builder::new()
            .prefix("reprise-fuzz-")
            .tempdir_in(shm)
        {
            return dir;
        }
    }
    tempfile::Builder::new()
        .prefix("reprise-fuzz-")
        .tempdir()
        .expect("create a temporary directory")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_round_trip() {
        let image = DirImage {
            flags: 0,
            files: vec![
                ImageFile {
                    selector: segment_selector(1),
                    bytes: vec![1, 2, 3],
                },
                ImageFile {
                    selector: snapshot_selector(8),
                    bytes: vec![],
                },
            ],
        };
        assert_eq!(DirImage::parse(&image.encode()), image);
        assert_eq!(image.files[0].name(), "00000000000000000001.wal");
        assert_eq!(image.files[1].name(), "00000000000000000008.snap");
    }
}

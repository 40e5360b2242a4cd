//! Pure encoding and decoding of every file reprise writes: bytes in, bytes out, no I/O.
//!
//! One on-disk concept per file: [`frame`] (a log record), [`segment`] (a log segment header and
//! the scan of a whole segment) and [`snapshot`] (a snapshot file); [`torn`] decides whether
//! the end of a log file is a torn write or damage. The byte layouts are drawn in
//! DESIGN.md; the offset constants here are the second copy of that specification and the
//! `const` assertions make the two agree with the code.
//!
//! All integers on disk are little-endian with explicit widths. All checksums are CRC-32
//! (IEEE, `crc32fast`). Payloads are bincode 2 with the one configuration defined here.

pub mod commit;
pub mod frame;
pub mod keycheck;
pub mod manifest;
pub mod objects;
pub mod segment;
pub mod snapshot;
pub mod torn;

use std::path::Path;

use crate::error::{Corruption, CorruptionKind};
use crate::session::{Event, State};

/// Format version written in every file header. Readers accept exactly the versions they know
/// (today: 1); a later version adds an upcast here rather than rewriting old files.
pub const FORMAT_VERSION: u16 = 1;

/// The bincode configuration for every payload (little-endian, variable-length integers).
/// Decoding additionally bounds every allocation by the length of the input slice, which is
/// itself bounded before it is read (see [`frame::PAYLOAD_LEN_MAX`] and
/// [`snapshot::STATE_LEN_MAX`]).
fn codec() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Appends the bincode form of `event` to `out`.
pub fn encode_event(event: &Event, out: &mut Vec<u8>) {
    // Encoding into a Vec cannot fail: the writer never errors and every type is encodable.
    if let Err(e) = bincode::encode_into_std_write(event, out, codec()) {
        unreachable_encode(e);
    }
}

/// Decodes one event that must occupy all of `bytes`.
///
/// # Errors
/// A message saying why the bytes are not exactly one event.
pub fn decode_event(bytes: &[u8]) -> Result<Event, String> {
    decode_exact::<Event, EVENT_DECODE_CLAIM_MAX>(bytes)
}

/// The bincode variant tag of [`Event::TracksEnqueued`] (its place in the enum).
const TRACKS_ENQUEUED_TAG: u8 = 6;

/// [`decode_event`] for replay: the same event or the same error, except that the tracks of a
/// `tracks_enqueued` event share one copy of `bytes` instead of one allocation each (call
/// [`crate::session::Track::unshare`] on the tracks that are kept).
///
/// # Errors
/// As [`decode_event`].
pub(crate) fn decode_event_shared(bytes: &[u8]) -> Result<Event, String> {
    if bytes.first() == Some(&TRACKS_ENQUEUED_TAG) {
        // The tag is a u32 (bincode claims 4 bytes for it).
        let fields = crate::session::decode_enqueued_shared(bytes, 1, 4, EVENT_DECODE_CLAIM_MAX);
        if let Some((tracks, index)) = fields {
            return Ok(Event::TracksEnqueued { tracks, index });
        }
    }
    decode_event(bytes)
}

/// The bincode form of a state (the body of a snapshot, before compression; the library
/// itself writes it through [`encode_state_split`]).
#[cfg(any(test, feature = "testing"))]
pub fn encode_state(state: &State) -> Vec<u8> {
    match bincode::encode_to_vec(state, codec()) {
        Ok(v) => v,
        Err(e) => unreachable_encode(e),
    }
}

/// The bincode form of a state (what `encode_state` gives) and the offset where its blob
/// column starts (see [`State::encode_split`]).
pub fn encode_state_split(state: &State) -> (Vec<u8>, usize) {
    match state.encode_split(codec()) {
        Ok(v) => v,
        Err(e) => unreachable_encode(e),
    }
}

/// Decodes a state that must occupy all of `bytes`.
///
/// # Errors
/// A message saying why the bytes are not exactly one state.
pub fn decode_state(bytes: &[u8]) -> Result<State, String> {
    decode_exact::<State, STATE_DECODE_CLAIM_MAX>(bytes)
}

/// Most memory bincode may reserve while decoding one event payload. bincode reserves a
/// container's claimed length times the in-memory size of its element before reading the
/// elements, so this bounds what a hostile length prefix can make it allocate.
pub const EVENT_DECODE_CLAIM_MAX: usize = 64 << 20;

/// Most memory bincode may reserve while decoding one snapshot state.
pub const STATE_DECODE_CLAIM_MAX: usize = 512 << 20;

/// Decodes one value that must occupy all of `bytes`, borrowing from them: each track's data
/// is copied once, straight from the input, into the track's own allocation.
fn decode_exact<'a, T: bincode::BorrowDecode<'a, ()>, const CLAIM_MAX: usize>(
    bytes: &'a [u8],
) -> Result<T, String> {
    // The limit makes bincode refuse any length prefix whose reservation would exceed CLAIM_MAX
    // before it allocates for it.
    let config = codec().with_limit::<CLAIM_MAX>();
    match bincode::borrow_decode_from_slice::<T, _>(bytes, config) {
        Ok((value, used)) if used == bytes.len() => Ok(value),
        Ok((_, used)) => Err(format!(
            "{} trailing bytes after the value",
            bytes.len() - used
        )),
        Err(e) => Err(e.to_string()),
    }
}

#[cold]
fn unreachable_encode(e: bincode::error::EncodeError) -> ! {
    // Vec<u8> writers are infallible and the session types contain no unencodable values.
    panic!("bincode encoding into memory failed: {e}")
}

/// A decoding failure found by a pure decoder, before it is attached to a file path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    /// Byte offset of the damaged structure.
    pub offset: u64,
    /// What is wrong.
    pub kind: CorruptionKind,
    /// The value the format requires, when there is one.
    pub expected: Option<u64>,
    /// The value found, when there is one.
    pub actual: Option<u64>,
    /// Decoder message or other detail.
    pub detail: String,
}

impl Fault {
    pub(crate) fn new(offset: u64, kind: CorruptionKind) -> Fault {
        Fault {
            offset,
            kind,
            expected: None,
            actual: None,
            detail: String::new(),
        }
    }

    pub(crate) fn values(mut self, expected: u64, actual: u64) -> Fault {
        self.expected = Some(expected);
        self.actual = Some(actual);
        self
    }

    pub(crate) fn detail(mut self, detail: impl Into<String>) -> Fault {
        self.detail = detail.into();
        self
    }

    /// Attaches the file the fault was found in.
    pub fn at(self, path: &Path) -> Corruption {
        Corruption {
            path: path.to_path_buf(),
            offset: self.offset,
            kind: self.kind,
            expected: self.expected,
            actual: self.actual,
            detail: self.detail,
        }
    }
}

/// Writes what every file header starts with: the `magic` of its kind and the format version
/// right after it (the counterpart of [`check_header`]).
pub(crate) fn put_header_start(b: &mut [u8], magic: &[u8; 8]) {
    put(b, 0, magic);
    put(b, magic.len(), &FORMAT_VERSION.to_le_bytes());
}

/// Stores the CRC-32 of bytes `0..crc_offset` at `crc_offset` (the last field of every header).
pub(crate) fn put_header_crc(b: &mut [u8], crc_offset: usize) {
    let crc = crc32fast::hash(&b[..crc_offset]);
    put(b, crc_offset, &crc.to_le_bytes());
}

/// The checks every file header shares, in this order: at least `header_len` bytes, the
/// `magic` of its kind, the CRC-32 stored at `crc_offset` over bytes `0..crc_offset`, and the
/// format version stored right after the magic.
///
/// # Errors
/// A [`Fault`] at the offending field.
pub(crate) fn check_header(
    bytes: &[u8],
    magic: &[u8; 8],
    header_len: usize,
    crc_offset: usize,
) -> Result<(), Fault> {
    if bytes.len() < header_len {
        return Err(Fault::new(0, CorruptionKind::Truncated)
            .values(header_len as u64, bytes.len() as u64)
            .detail("file shorter than its header"));
    }
    if bytes[..magic.len()] != *magic {
        return Err(Fault::new(0, CorruptionKind::BadMagic));
    }
    let stored = read_u32(bytes, crc_offset);
    let actual = crc32fast::hash(&bytes[..crc_offset]);
    if stored != actual {
        return Err(
            Fault::new(crc_offset as u64, CorruptionKind::HeaderChecksum)
                .values(u64::from(stored), u64::from(actual)),
        );
    }
    let version = read_u16(bytes, magic.len());
    if version != FORMAT_VERSION {
        return Err(
            Fault::new(magic.len() as u64, CorruptionKind::UnsupportedVersion)
                .values(u64::from(FORMAT_VERSION), u64::from(version)),
        );
    }
    Ok(())
}

pub(crate) fn read_u16(b: &[u8], at: usize) -> u16 {
    let mut a = [0u8; 2];
    if let Some(s) = b.get(at..at + 2) {
        a.copy_from_slice(s);
    }
    u16::from_le_bytes(a)
}

pub(crate) fn read_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        a.copy_from_slice(s);
    }
    u32::from_le_bytes(a)
}

pub(crate) fn read_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        a.copy_from_slice(s);
    }
    u64::from_le_bytes(a)
}

pub(crate) fn put(b: &mut [u8], at: usize, v: &[u8]) {
    if let Some(s) = b.get_mut(at..at + v.len()) {
        s.copy_from_slice(v);
    }
}

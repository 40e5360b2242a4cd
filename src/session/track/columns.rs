//! The tracks of a state's queue stored column by column (state layout 3, see
//! `session/queue_columns.rs`): every track's `present` byte, then every `flags` byte, every
//! length, every part length, every title, every author, … and, apart, every blob. Values of
//! one kind side by side compress far better than whole tracks one after another (the titles
//! share words, the URIs share a prefix, the part lengths are alike), and the blobs, which are
//! mostly incompressible, end up in a column of their own that the snapshot compresses in its
//! own zstd blocks (`format/snapshot.rs`).
//!
//! ```text
//! present   n bytes   each track's `present` (bit 7: the blob is stored as its rest)
//! flags     n bytes   each track's `flags`, plus bit 4 (columns only): the track's URI is
//!                     the stored URI text followed by its identifier (a YouTube watch URL:
//!                     only `https://www.youtube.com/watch?v=` is stored)
//! length_ms varints   for each track with PRESENT_LENGTH
//! lens      varints   part by part (blob, title, author, uri, identifier, source, extra),
//!                     each track's length of that part when the track stores it (blob and
//!                     title always, the others by their `present` bit)
//! texts     varint total, then every title, every author, every uri, every identifier,
//!                     every source, every extra block, in that order
//! blobs     (written by the caller wherever it wants them) every blob or blob rest
//! ```

use bincode::de::read::Reader as _;
use bincode::de::Decoder;
use bincode::enc::write::Writer as _;
use bincode::enc::Encoder;
use bincode::error::{DecodeError, EncodeError};
use bincode::{Decode as _, Encode as _};

use super::{
    blob_rest, invalid, part_stored, Head, Track, BLOB, FLAGS_ALL, IDENTIFIER, PRESENT_BLOB_PARTS,
    PRESENT_EXTRA, PRESENT_IDENTIFIER, PRESENT_LENGTH, PRESENT_SOURCE, PRESENT_URI, URI,
};

/// Number of parts with a length column: blob, title, author, uri, identifier, source, extra.
const PARTS: usize = 7;
/// Index of the source in the parts.
const SOURCE: usize = 5;
/// Index of the extra block in the parts.
const EXTRA: usize = 6;
/// `flags`, columns only: the URI is the stored text followed by the identifier.
const FLAG_URI_ENDS_WITH_IDENTIFIER: u8 = 1 << 4;
/// Largest chunk read at a time: a column's claimed length is never allocated before its
/// bytes are there.
const READ_CHUNK: usize = 64 << 10;

/// Whether part `i` of a track with `present` has a length in the columns.
fn part_in_columns(present: u8, i: usize) -> bool {
    match i {
        SOURCE => present & PRESENT_SOURCE != 0,
        EXTRA => present & PRESENT_EXTRA != 0,
        _ => part_stored(present, i),
    }
}

/// The parts of `track` as stored: the blob (or its rest), the texts, the extra block.
fn parts_of<'a>(track: &'a Track, rest: Option<&'a [u8]>) -> [&'a [u8]; PARTS] {
    let mut parts: [&'a [u8]; PARTS] = [&[]; PARTS];
    for (i, part) in parts.iter_mut().enumerate().take(SOURCE + 1) {
        *part = track.part(i);
    }
    parts[EXTRA] = track.extra_bytes();
    if let Some(rest) = rest {
        parts[BLOB] = rest;
    }
    if uri_ends_with_identifier(track) {
        let uri = parts[URI];
        parts[URI] = &uri[..uri.len() - parts[IDENTIFIER].len()];
    }
    parts
}

/// Whether `track` has a URI and a non-empty identifier that ends it.
fn uri_ends_with_identifier(track: &Track) -> bool {
    let both = PRESENT_URI | PRESENT_IDENTIFIER;
    if track.present & both != both {
        return false;
    }
    let identifier = track.text(IDENTIFIER);
    !identifier.is_empty() && track.text(URI).ends_with(identifier)
}

/// Encodes the columns of `tracks` but the blobs to `encoder`, and appends the blobs (or the
/// rests of the Lavalink blobs that repeat their track) to `blobs`.
///
/// # Errors
/// The encoder's.
pub(crate) fn encode_columns<E: Encoder>(
    tracks: &[&Track],
    encoder: &mut E,
    blobs: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let rests: Vec<Option<Vec<u8>>> = tracks.iter().map(|t| blob_rest(t)).collect();
    let presents: Vec<u8> = tracks
        .iter()
        .zip(&rests)
        .map(|(t, rest)| {
            if rest.is_some() {
                t.present | PRESENT_BLOB_PARTS
            } else {
                t.present
            }
        })
        .collect();
    encoder.writer().write(&presents)?;
    let flags: Vec<u8> = tracks
        .iter()
        .map(|t| {
            if uri_ends_with_identifier(t) {
                (t.flags & FLAGS_ALL) | FLAG_URI_ENDS_WITH_IDENTIFIER
            } else {
                t.flags & FLAGS_ALL
            }
        })
        .collect();
    encoder.writer().write(&flags)?;
    for track in tracks {
        if let Some(length_ms) = track.length_given() {
            length_ms.encode(encoder)?;
        }
    }
    let parts: Vec<[&[u8]; PARTS]> = tracks
        .iter()
        .zip(&rests)
        .map(|(t, rest)| parts_of(t, rest.as_deref()))
        .collect();
    for i in 0..PARTS {
        for (track, parts) in tracks.iter().zip(&parts) {
            if part_in_columns(track.present, i) {
                (parts[i].len() as u64).encode(encoder)?;
            }
        }
    }
    let texts_len: usize = parts.iter().flat_map(|p| &p[1..]).map(|p| p.len()).sum();
    (texts_len as u64).encode(encoder)?;
    for i in 1..PARTS {
        for p in &parts {
            encoder.writer().write(p[i])?;
        }
    }
    for p in &parts {
        blobs.extend_from_slice(p[BLOB]);
    }
    Ok(())
}

/// Reads `n` bytes, allocating only as they arrive (a corrupt length fails at the end of the
/// input, not at a huge allocation).
///
/// # Errors
/// The decoder's (too few bytes, or over its limit).
pub(crate) fn read_bytes<D: Decoder>(decoder: &mut D, n: u64) -> Result<Vec<u8>, DecodeError> {
    let n = usize::try_from(n).map_err(|_| invalid("column longer than memory"))?;
    decoder.claim_bytes_read(n)?;
    let mut out = Vec::new();
    while out.len() < n {
        let chunk = (n - out.len()).min(READ_CHUNK);
        let at = out.len();
        out.resize(at + chunk, 0);
        decoder.reader().read(&mut out[at..])?;
    }
    Ok(out)
}

/// The columns of `n` tracks read back, waiting for their blob column ([`Columns::finish`]).
pub(crate) struct Columns {
    /// Each track's head (blob, title, author, uri, identifier lengths in `lens`).
    heads: Vec<Head>,
    /// Each track's source and extra block lengths.
    tail_lens: Vec<[u64; 2]>,
    /// Whether each track's URI is its stored URI text followed by its identifier.
    uri_ends: Vec<bool>,
    /// Every text part, column by column.
    texts: Vec<u8>,
}

impl Columns {
    /// Reads the columns of `n` tracks (everything [`encode_columns`] wrote to its encoder).
    ///
    /// # Errors
    /// A truncated or inconsistent column: unknown bits, lengths that do not add up.
    pub(crate) fn decode<D: Decoder>(n: u64, decoder: &mut D) -> Result<Columns, DecodeError> {
        let presents = read_bytes(decoder, n)?;
        let flags = read_bytes(decoder, n)?;
        let mut heads = Vec::with_capacity(presents.len());
        for (&present, &flags) in presents.iter().zip(&flags) {
            let both = PRESENT_URI | PRESENT_IDENTIFIER;
            if flags & FLAG_URI_ENDS_WITH_IDENTIFIER != 0 && present & both != both {
                return Err(invalid("a URI ending with an absent identifier"));
            }
            heads.push(Head::check_bits(
                present,
                flags & !FLAG_URI_ENDS_WITH_IDENTIFIER,
            )?);
        }
        let uri_ends: Vec<bool> = flags
            .iter()
            .map(|f| f & FLAG_URI_ENDS_WITH_IDENTIFIER != 0)
            .collect();
        for head in &mut heads {
            if head.present & PRESENT_LENGTH != 0 {
                head.length_ms = Some(u64::decode(decoder)?);
            }
        }
        let mut tail_lens = vec![[0u64; 2]; heads.len()];
        for i in 0..PARTS {
            for (head, tail) in heads.iter_mut().zip(&mut tail_lens) {
                if part_in_columns(head.present, i) {
                    let len = u64::decode(decoder)?;
                    match i {
                        SOURCE | EXTRA => tail[i - SOURCE] = len,
                        _ => head.lens[i] = len,
                    }
                }
            }
        }
        let texts_len = u64::decode(decoder)?;
        let mut sum = 0u64;
        for (head, tail) in heads.iter().zip(&tail_lens) {
            for len in head.lens[1..].iter().chain(tail) {
                sum = sum
                    .checked_add(*len)
                    .ok_or_else(|| invalid("length overflow"))?;
            }
        }
        if sum != texts_len {
            return Err(invalid("text lengths disagree with the text column"));
        }
        let texts = read_bytes(decoder, texts_len)?;
        Ok(Columns {
            heads,
            tail_lens,
            uri_ends,
            texts,
        })
    }

    /// The length the blob column must have.
    pub(crate) fn blobs_len(&self) -> u64 {
        self.heads
            .iter()
            .fold(0u64, |sum, h| sum.saturating_add(h.lens[BLOB]))
    }

    /// The tracks, given their blob column (exactly [`Columns::blobs_len`] bytes).
    ///
    /// # Errors
    /// A wrong blob column length, or a track that does not decode (see [`Head::finish`]).
    pub(crate) fn finish(self, blobs: &[u8]) -> Result<Vec<Track>, DecodeError> {
        if blobs.len() as u64 != self.blobs_len() {
            return Err(invalid("blob lengths disagree with the blob column"));
        }
        // Where each text column starts in `texts`.
        let mut column_at = [0usize; PARTS];
        let mut at = 0usize;
        for (i, start) in column_at.iter_mut().enumerate().skip(1) {
            *start = at;
            at += self.column_len(i);
        }
        let mut blob_at = 0usize;
        let mut data = Vec::new();
        let mut tracks = Vec::with_capacity(self.heads.len());
        for ((head, tail), &uri_ends) in self.heads.iter().zip(&self.tail_lens).zip(&self.uri_ends)
        {
            let mut lens = [0usize; PARTS];
            for (i, len) in lens.iter_mut().enumerate() {
                *len = match i {
                    SOURCE | EXTRA => tail[i - SOURCE],
                    _ => head.lens[i],
                } as usize;
            }
            data.clear();
            data.extend_from_slice(&blobs[blob_at..blob_at + lens[BLOB]]);
            blob_at += lens[BLOB];
            let mut head = *head;
            for i in 1..EXTRA {
                let start = column_at[i];
                data.extend_from_slice(&self.texts[start..start + lens[i]]);
                column_at[i] += lens[i];
                if i == IDENTIFIER && uri_ends {
                    // The identifier again, at the end of the URI before it.
                    let identifier = data.len() - lens[IDENTIFIER]..data.len();
                    data.splice(
                        identifier.start..identifier.start,
                        self.texts[start..start + lens[i]].iter().copied(),
                    );
                    head.lens[URI] += lens[IDENTIFIER] as u64;
                }
            }
            let start = column_at[EXTRA];
            let extra = &self.texts[start..start + lens[EXTRA]];
            column_at[EXTRA] += lens[EXTRA];
            tracks.push(head.finish(&data, extra)?);
        }
        Ok(tracks)
    }

    /// The total length of text column `i` (1..PARTS).
    fn column_len(&self, i: usize) -> usize {
        self.heads
            .iter()
            .zip(&self.tail_lens)
            .map(|(h, t)| match i {
                SOURCE | EXTRA => t[i - SOURCE],
                _ => h.lens[i],
            } as usize)
            .sum()
    }
}

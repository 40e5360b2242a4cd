//! Replay's decoding of a `tracks_enqueued` event into one shared buffer.

use std::sync::Arc;

use super::{
    part_stored, Head, Track, FLAGS_ALL, FLAG_SEEKABLE, FLAG_STREAM, PRESENT_ALL, PRESENT_EXTRA,
    PRESENT_LENGTH,
};

/// Decodes the fields of a `tracks_enqueued` event (what follows its variant tag, from `at`
/// in `payload`) exactly as bincode's derived decoding does in the standard configuration,
/// except that the tracks keep their bytes in one shared copy of `payload` instead of one
/// allocation each (replay gives the tracks it keeps their own with [`Track::unshare`]).
/// `claimed` is what bincode has claimed before these fields against `claim_max`.
///
/// `None` when anything is off (damage, a non-canonical form, the limit): the caller then
/// decodes the standard way, which reports the exact error.
pub(crate) fn decode_enqueued_shared(
    payload: &[u8],
    mut at: usize,
    claimed: usize,
    claim_max: usize,
) -> Option<(Vec<Track>, Option<u32>)> {
    const TRACK_SIZE: usize = std::mem::size_of::<Track>();
    // The length of `tracks` (claims 8), then the container (claims its in-memory size, given
    // back element by element as each claims what it reads).
    let count = usize::try_from(varint_at(payload, &mut at)?).ok()?;
    let mut claimed = count
        .checked_mul(TRACK_SIZE)?
        .checked_add(claimed)?
        .checked_add(8)?;
    if claimed > claim_max {
        return None;
    }
    let mut tracks = Vec::with_capacity(count.min(payload.len()));
    let mut shared: Option<Arc<[u8]>> = None;
    for _ in 0..count {
        let (head, head_len, data_len, head_claimed) = Head::parse(payload.get(at..)?)?;
        let data_len = usize::try_from(data_len).ok()?;
        claimed = (claimed - TRACK_SIZE)
            .checked_add(head_claimed)?
            .checked_add(data_len)?;
        let start = at.checked_add(head_len)?;
        let end = start.checked_add(data_len)?;
        if claimed > claim_max || end > payload.len() {
            return None;
        }
        at = end;
        if head.present & PRESENT_EXTRA != 0 {
            // The extra block (a slice: bincode claims 8 for its length, then its bytes)
            // follows `data` behind its length; the track needs the two back to back, so it
            // gets an allocation of its own.
            let extra_len = usize::try_from(varint_at(payload, &mut at)?).ok()?;
            claimed = claimed.checked_add(8)?.checked_add(extra_len)?;
            let extra_end = at.checked_add(extra_len)?;
            if claimed > claim_max || extra_end > payload.len() {
                return None;
            }
            let data = payload.get(start..end)?;
            let extra = payload.get(at..extra_end)?;
            tracks.push(head.finish(data, extra).ok()?);
            at = extra_end;
            continue;
        }
        let shared = shared.get_or_insert_with(|| Arc::from(payload));
        tracks.push(head.finish_shared(shared, start, data_len).ok()?);
    }
    // `index`: an Option tag (claims 1), then a u32 varint (claims 4; no u64 tag).
    let index = match payload.get(at..)? {
        [0, ..] => {
            at += 1;
            claimed = claimed.checked_add(1)?;
            None
        }
        [1, tag, ..] if *tag <= 252 => {
            at += 1;
            claimed = claimed.checked_add(5)?;
            Some(u32::try_from(varint_at(payload, &mut at)?).ok()?)
        }
        _ => return None,
    };
    (claimed <= claim_max && at == payload.len()).then_some((tracks, index))
}

/// Reads the bincode varint `u64` (standard configuration: little-endian) at `*at` of `b` and
/// moves `*at` past it; `None` when `b` ends first or the tag is not a `u64` one.
#[inline]
pub(super) fn varint_at(b: &[u8], at: &mut usize) -> Option<u64> {
    let start = *at;
    let tag = *b.get(start)?;
    let (value, used) = match tag {
        0..=250 => (u64::from(tag), 1),
        251 => (
            u64::from(u16::from_le_bytes(
                b.get(start + 1..start + 3)?.try_into().ok()?,
            )),
            3,
        ),
        252 => (
            u64::from(u32::from_le_bytes(
                b.get(start + 1..start + 5)?.try_into().ok()?,
            )),
            5,
        ),
        253 => (
            u64::from_le_bytes(b.get(start + 1..start + 9)?.try_into().ok()?),
            9,
        ),
        _ => return None,
    };
    *at = start + used;
    Some(value)
}

impl Head {
    /// Parses the head and the length of `data` from the start of `b`, exactly as
    /// [`Head::decode`] and bincode's slice length would (standard configuration; used by
    /// [`decode_enqueued_shared`]). Returns the
    /// head, its byte length (including the data length), the length of `data`, and the bytes
    /// bincode would have claimed against its limit for the head; `None` when anything is off
    /// (short input, unknown bits, a bad varint), for the exact path to report.
    #[inline]
    pub(super) fn parse(b: &[u8]) -> Option<(Head, usize, u64, usize)> {
        let (&present, &flags) = (b.first()?, b.get(1)?);
        if present & !PRESENT_ALL != 0
            || flags & !FLAGS_ALL != 0
            || (flags >> FLAG_STREAM) & 3 == 3
            || (flags >> FLAG_SEEKABLE) & 3 == 3
        {
            return None;
        }
        let mut at = 2;
        // bincode claims 1 byte per u8 and 8 per u64 (varint or not) and slice length.
        let mut claimed = 2 + 8;
        let length_ms = if present & PRESENT_LENGTH != 0 {
            claimed += 8;
            Some(varint_at(b, &mut at)?)
        } else {
            None
        };
        let mut lens = [0u64; 5];
        for (i, len) in lens.iter_mut().enumerate() {
            if part_stored(present, i) {
                claimed += 8;
                *len = varint_at(b, &mut at)?;
            }
        }
        let data_len = varint_at(b, &mut at)?;
        let head = Head {
            present,
            flags,
            length_ms,
            lens,
        };
        Some((head, at, data_len, claimed))
    }
}

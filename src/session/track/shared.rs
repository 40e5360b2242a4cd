//! Replay's decoding of a `tracks_enqueued` event into one shared buffer.

use std::sync::Arc;

use super::{varint_at, Head, Track, PRESENT_EXTRA};

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
        if head.present & PRESENT_EXTRA != 0 {
            // Tracks with an extra block take the standard path.
            return None;
        }
        let data_len = usize::try_from(data_len).ok()?;
        claimed = (claimed - TRACK_SIZE)
            .checked_add(head_claimed)?
            .checked_add(data_len)?;
        let start = at.checked_add(head_len)?;
        let end = start.checked_add(data_len)?;
        if claimed > claim_max || end > payload.len() {
            return None;
        }
        let shared = shared.get_or_insert_with(|| Arc::from(payload));
        tracks.push(head.finish_shared(shared, start, data_len).ok()?);
        at = end;
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

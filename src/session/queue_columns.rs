//! A state's queue in layout 3 (see [`State`](super::State)): the entries' ids and tracks
//! stored column by column (`track/columns.rs`), the blobs apart, at the very end of the state,
//! so that a snapshot compresses the rest of the state and the blobs in separate zstd blocks.
//!
//! ```text
//! current      u8       0: no current entry, 1: the first entry is the current one
//! upcoming     varint   number of upcoming entries
//! history      varint   number of history entries
//! ids          varints  each entry's id minus the previous entry's id (zigzag; the first
//!                       against 0), entries in the order current, upcoming, history
//! tracks       the track columns but the blobs (`track/columns.rs`)
//! loop_mode, shuffle, shuffle_seed   as the derived encoding writes them
//! ```
//!
//! The blob column (varint length, then every blob or blob rest in entry order) is the last
//! field of the state.

use bincode::de::Decoder;
use bincode::enc::Encoder;
use bincode::error::{DecodeError, EncodeError};
use bincode::{Decode as _, Encode as _};

use super::track::{encode_columns, Columns};
use super::{LoopMode, Queue, QueueEntry, Track};

/// Zigzag: small negative and positive differences become small unsigned numbers.
fn zigzag(delta: i64) -> u64 {
    ((delta << 1) ^ (delta >> 63)) as u64
}

/// The inverse of [`zigzag`].
fn unzigzag(z: u64) -> i64 {
    ((z >> 1) as i64) ^ -((z & 1) as i64)
}

/// Every entry of `queue` in stored order: current, upcoming, history.
fn entries(queue: &Queue) -> impl Iterator<Item = &QueueEntry> {
    queue
        .current
        .iter()
        .chain(&queue.upcoming)
        .chain(&queue.history)
}

/// Encodes `queue` in layout 3 but its blob column, which is appended to `blobs`.
///
/// # Errors
/// The encoder's.
pub(super) fn encode_queue<E: Encoder>(
    queue: &Queue,
    encoder: &mut E,
    blobs: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    u8::from(queue.current.is_some()).encode(encoder)?;
    (queue.upcoming.len() as u64).encode(encoder)?;
    (queue.history.len() as u64).encode(encoder)?;
    let mut previous = 0u64;
    for entry in entries(queue) {
        zigzag(entry.id.wrapping_sub(previous) as i64).encode(encoder)?;
        previous = entry.id;
    }
    let tracks: Vec<&Track> = entries(queue).map(|e| &e.track).collect();
    encode_columns(&tracks, encoder, blobs)?;
    queue.loop_mode.encode(encoder)?;
    queue.shuffle.encode(encoder)?;
    queue.shuffle_seed.encode(encoder)
}

/// A layout-3 queue read back but for its blob column ([`QueueRead::finish`]).
pub(super) struct QueueRead {
    current: bool,
    upcoming: usize,
    ids: Vec<u64>,
    columns: Columns,
    loop_mode: LoopMode,
    shuffle: bool,
    shuffle_seed: Option<u64>,
}

impl QueueRead {
    /// Reads what [`encode_queue`] wrote to its encoder.
    ///
    /// # Errors
    /// A truncated or inconsistent queue.
    pub(super) fn decode<D: Decoder>(decoder: &mut D) -> Result<QueueRead, DecodeError> {
        let current = match u8::decode(decoder)? {
            0 => false,
            1 => true,
            tag => {
                return Err(DecodeError::OtherString(format!(
                    "invalid queue: current tag {tag}"
                )))
            }
        };
        let upcoming = u64::decode(decoder)?;
        let history = u64::decode(decoder)?;
        let n = upcoming
            .checked_add(history)
            .and_then(|n| n.checked_add(u64::from(current)))
            .ok_or_else(|| DecodeError::OtherString("invalid queue: entry count".into()))?;
        // Every entry takes at least one byte of id: the count cannot exceed what is left.
        let n_usize = usize::try_from(n)
            .map_err(|_| DecodeError::OtherString("invalid queue: entry count".into()))?;
        decoder.claim_bytes_read(n_usize)?;
        let mut ids = Vec::with_capacity(n_usize.min(4096));
        let mut previous = 0u64;
        for _ in 0..n {
            let id = previous.wrapping_add(unzigzag(u64::decode(decoder)?) as u64);
            ids.push(id);
            previous = id;
        }
        let columns = Columns::decode(n, decoder)?;
        Ok(QueueRead {
            current,
            upcoming: upcoming as usize,
            ids,
            columns,
            loop_mode: LoopMode::decode(decoder)?,
            shuffle: bool::decode(decoder)?,
            shuffle_seed: Option::<u64>::decode(decoder)?,
        })
    }

    /// The length the blob column must have.
    pub(super) fn blobs_len(&self) -> u64 {
        self.columns.blobs_len()
    }

    /// The queue, given its blob column.
    ///
    /// # Errors
    /// A blob column of the wrong length, or a track that does not decode.
    pub(super) fn finish(self, blobs: &[u8]) -> Result<Queue, DecodeError> {
        let tracks = self.columns.finish(blobs)?;
        let mut entries = self
            .ids
            .into_iter()
            .zip(tracks)
            .map(|(id, track)| QueueEntry { id, track });
        let current = if self.current { entries.next() } else { None };
        let upcoming = entries.by_ref().take(self.upcoming).collect();
        let history = entries.collect();
        Ok(Queue {
            current,
            upcoming,
            history,
            loop_mode: self.loop_mode,
            shuffle: self.shuffle,
            shuffle_seed: self.shuffle_seed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zigzag_round_trips() {
        for d in [0i64, 1, -1, 2, -2, i64::MAX, i64::MIN, 12345, -98765] {
            assert_eq!(unzigzag(zigzag(d)), d);
        }
        assert_eq!(zigzag(1), 2);
        assert_eq!(zigzag(-1), 1);
    }
}

//! Event iteration: [`Journal::events`] and the [`EventIter`] it returns, which decodes a
//! guild's segments frame by frame and stops at the first damage.

use std::path::PathBuf;

use super::recover::frame_event;
use super::Journal;
use crate::crypto::{KeyId, Keyring};
use crate::error::{Corruption, CorruptionKind, Error, Result};
use crate::format::frame;
use crate::format::segment::{self, ScanEnd};
use crate::ids::{GuildId, Seq};
use crate::session::Event;
use crate::storage::Bytes;

/// One event as stored in the log.
#[derive(Clone, Debug, PartialEq)]
pub struct LoggedEvent {
    /// Its sequence number.
    pub seq: Seq,
    /// When it was appended (Unix milliseconds).
    pub at_unix_ms: u64,
    /// The event.
    pub event: Event,
}

impl Journal {
    /// Every event the log still holds for `guild`, oldest first (events before the oldest
    /// retained segment were dropped by compaction).
    ///
    /// # Errors
    /// Recovery errors; the iterator yields a [`Error::Corrupt`] where the log is damaged and
    /// then stops.
    pub fn events(&mut self, guild: GuildId) -> Result<EventIter> {
        self.read_settled(
            |j| j.events_once(guild),
            |iter| {
                iter.parts.iter().find_map(|p| match p {
                    EventSource::Broken(c) => Some(super::live::corruption_trouble(c)),
                    EventSource::Segment { .. } => None,
                })
            },
        )
    }

    /// One attempt of [`Journal::events`].
    fn events_once(&mut self, guild: GuildId) -> Result<EventIter> {
        self.load(guild)?;
        self.flush_buffers(Some(guild))?;
        let scanned = self.read_guild(guild)?;
        let mut parts = Vec::new();
        for seg in scanned.segments {
            let Some(scan) = seg.scan else {
                if seg.torn_header {
                    continue;
                }
                parts.push(EventSource::Broken(seg.fault.unwrap_or_else(|| {
                    Corruption::new(&seg.path, 0, CorruptionKind::HeaderChecksum)
                })));
                continue;
            };
            let fault = match &scan.end {
                ScanEnd::Corrupt(f) => Some(f.clone().at(&seg.path)),
                _ => seg.fault.clone(),
            };
            parts.push(EventSource::Segment {
                path: seg.path,
                bytes: seg.bytes,
                valid_len: scan.valid_len,
                key_id: scan.header.key_id,
            });
            if let Some(f) = fault {
                parts.push(EventSource::Broken(f));
            }
        }
        Ok(EventIter {
            parts,
            guild,
            keys: self.config.keys.clone(),
            scratch: Vec::new(),
            part: 0,
            offset: segment::HEADER_LEN as u64,
            next_seq: None,
            done: false,
        })
    }
}

enum EventSource {
    Segment {
        path: PathBuf,
        bytes: Bytes,
        valid_len: u64,
        key_id: KeyId,
    },
    Broken(Corruption),
}

/// Iterator over the events a guild's log holds; see [`Journal::events`].
pub struct EventIter {
    parts: Vec<EventSource>,
    guild: GuildId,
    keys: Option<Keyring>,
    scratch: Vec<u8>,
    part: usize,
    offset: u64,
    next_seq: Option<Seq>,
    done: bool,
}

impl std::fmt::Debug for EventIter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventIter")
            .field("part", &self.part)
            .field("offset", &self.offset)
            .finish()
    }
}

impl Iterator for EventIter {
    type Item = Result<LoggedEvent>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.done {
                return None;
            }
            let Some(part) = self.parts.get(self.part) else {
                self.done = true;
                return None;
            };
            match part {
                EventSource::Broken(c) => {
                    self.done = true;
                    return Some(Err(Error::from(c.clone())));
                }
                EventSource::Segment {
                    path,
                    bytes,
                    valid_len,
                    key_id,
                } => {
                    if self.offset >= *valid_len {
                        self.part += 1;
                        self.offset = segment::HEADER_LEN as u64;
                        continue;
                    }
                    let at = self.offset;
                    let rest = bytes.get(at as usize..*valid_len as usize).unwrap_or(&[]);
                    let f = match frame::decode(rest) {
                        Ok(f) => f,
                        Err(fault) => {
                            self.done = true;
                            return Some(Err(Error::from(fault.at_offset(at).at(path))));
                        }
                    };
                    self.offset += f.len_total() as u64;
                    if let Some(n) = self.next_seq {
                        if f.seq != n {
                            self.done = true;
                            return Some(Err(Error::from(
                                Corruption::new(path, at, CorruptionKind::SequenceGap)
                                    .values(n, f.seq),
                            )));
                        }
                    }
                    self.next_seq = Some(f.seq + 1);
                    return Some(
                        match frame_event(
                            path,
                            at,
                            &f,
                            *key_id,
                            self.guild,
                            self.keys.as_ref(),
                            &mut self.scratch,
                        ) {
                            Ok(event) => Ok(LoggedEvent {
                                seq: f.seq,
                                at_unix_ms: f.at_unix_ms,
                                event,
                            }),
                            Err(c) => {
                                self.done = true;
                                Err(Error::from(c))
                            }
                        },
                    );
                }
            }
        }
    }
}

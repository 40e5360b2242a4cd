//! [`Event`]'s binary (bincode) form, written by hand so that it only ever grows: see
//! [`Event`] for the tags.

use bincode::Decode;

use super::Event;
use crate::session::state::{decode_meta, encode_meta};

/// Bincode tags of the events whose binary form is not the declaration-order one (see
/// [`Event`]).
const TAG_GUILD_META_SET: u32 = 19;
const TAG_POSITION_REPORTED_FOR_ENTRY: u32 = 20;
const TAG_SEEKED_FOR_ENTRY: u32 = 21;

impl bincode::Encode for Event {
    fn encode<E: bincode::enc::Encoder>(
        &self,
        e: &mut E,
    ) -> Result<(), bincode::error::EncodeError> {
        match self {
            Event::VolumeSet { volume } => {
                0u32.encode(e)?;
                volume.encode(e)
            }
            Event::PausedSet { paused } => {
                1u32.encode(e)?;
                paused.encode(e)
            }
            Event::Seeked {
                position_ms,
                entry_id: None,
            } => {
                2u32.encode(e)?;
                position_ms.encode(e)
            }
            Event::Seeked {
                position_ms,
                entry_id: Some(id),
            } => {
                TAG_SEEKED_FOR_ENTRY.encode(e)?;
                position_ms.encode(e)?;
                id.encode(e)
            }
            Event::PositionReported {
                position_ms,
                at_unix_ms,
                entry_id,
            } => {
                let tag = if entry_id.is_some() {
                    TAG_POSITION_REPORTED_FOR_ENTRY
                } else {
                    3
                };
                tag.encode(e)?;
                position_ms.encode(e)?;
                at_unix_ms.encode(e)?;
                match entry_id {
                    Some(id) => id.encode(e),
                    None => Ok(()),
                }
            }
            Event::VoiceConnected {
                session_id,
                channel_id,
                endpoint,
                token,
            } => {
                4u32.encode(e)?;
                session_id.encode(e)?;
                channel_id.encode(e)?;
                endpoint.encode(e)?;
                token.encode(e)
            }
            Event::VoiceDisconnected => 5u32.encode(e),
            Event::TracksEnqueued { tracks, index } => {
                6u32.encode(e)?;
                tracks.encode(e)?;
                index.encode(e)
            }
            Event::TrackRemoved { index } => {
                7u32.encode(e)?;
                index.encode(e)
            }
            Event::TrackMoved { from, to } => {
                8u32.encode(e)?;
                from.encode(e)?;
                to.encode(e)
            }
            Event::QueueCleared => 9u32.encode(e),
            Event::TrackStarted => 10u32.encode(e),
            Event::TrackEnded { reason } => {
                11u32.encode(e)?;
                reason.encode(e)
            }
            Event::LoopModeSet { mode } => {
                12u32.encode(e)?;
                mode.encode(e)
            }
            Event::ShuffleSet { enabled, seed } => {
                13u32.encode(e)?;
                enabled.encode(e)?;
                seed.encode(e)
            }
            Event::FiltersSet { active, config } => {
                14u32.encode(e)?;
                active.encode(e)?;
                config.encode(e)
            }
            Event::FiltersCleared => 15u32.encode(e),
            Event::AutoplaySet {
                enabled,
                strategy,
                fallback_playlist,
                max_history,
                smart_shuffle,
            } => {
                16u32.encode(e)?;
                enabled.encode(e)?;
                strategy.encode(e)?;
                fallback_playlist.encode(e)?;
                max_history.encode(e)?;
                smart_shuffle.encode(e)
            }
            Event::SessionEnded => 17u32.encode(e),
            Event::StateRestored {
                state,
                from_seq,
                label,
            } => {
                18u32.encode(e)?;
                state.encode(e)?;
                from_seq.encode(e)?;
                label.encode(e)
            }
            Event::GuildMetaSet { meta } => {
                TAG_GUILD_META_SET.encode(e)?;
                encode_meta(meta, e)
            }
        }
    }
}

impl<Context> bincode::Decode<Context> for Event {
    fn decode<D: bincode::de::Decoder<Context = Context>>(
        d: &mut D,
    ) -> Result<Self, bincode::error::DecodeError> {
        let tag = u32::decode(d)?;
        let event = match tag {
            0 => Event::VolumeSet {
                volume: Decode::decode(d)?,
            },
            1 => Event::PausedSet {
                paused: Decode::decode(d)?,
            },
            2 => Event::Seeked {
                position_ms: Decode::decode(d)?,
                entry_id: None,
            },
            3 => Event::PositionReported {
                position_ms: Decode::decode(d)?,
                at_unix_ms: Decode::decode(d)?,
                entry_id: None,
            },
            4 => Event::VoiceConnected {
                session_id: Decode::decode(d)?,
                channel_id: Decode::decode(d)?,
                endpoint: Decode::decode(d)?,
                token: Decode::decode(d)?,
            },
            5 => Event::VoiceDisconnected,
            6 => Event::TracksEnqueued {
                tracks: Decode::decode(d)?,
                index: Decode::decode(d)?,
            },
            7 => Event::TrackRemoved {
                index: Decode::decode(d)?,
            },
            8 => Event::TrackMoved {
                from: Decode::decode(d)?,
                to: Decode::decode(d)?,
            },
            9 => Event::QueueCleared,
            10 => Event::TrackStarted,
            11 => Event::TrackEnded {
                reason: Decode::decode(d)?,
            },
            12 => Event::LoopModeSet {
                mode: Decode::decode(d)?,
            },
            13 => Event::ShuffleSet {
                enabled: Decode::decode(d)?,
                seed: Decode::decode(d)?,
            },
            14 => Event::FiltersSet {
                active: Decode::decode(d)?,
                config: Decode::decode(d)?,
            },
            15 => Event::FiltersCleared,
            16 => Event::AutoplaySet {
                enabled: Decode::decode(d)?,
                strategy: Decode::decode(d)?,
                fallback_playlist: Decode::decode(d)?,
                max_history: Decode::decode(d)?,
                smart_shuffle: Decode::decode(d)?,
            },
            17 => Event::SessionEnded,
            18 => Event::StateRestored {
                state: Decode::decode(d)?,
                from_seq: Decode::decode(d)?,
                label: Decode::decode(d)?,
            },
            TAG_GUILD_META_SET => Event::GuildMetaSet {
                meta: decode_meta(d)?,
            },
            TAG_POSITION_REPORTED_FOR_ENTRY => Event::PositionReported {
                position_ms: Decode::decode(d)?,
                at_unix_ms: Decode::decode(d)?,
                entry_id: Some(Decode::decode(d)?),
            },
            TAG_SEEKED_FOR_ENTRY => Event::Seeked {
                position_ms: Decode::decode(d)?,
                entry_id: Some(Decode::decode(d)?),
            },
            _ => {
                return Err(bincode::error::DecodeError::UnexpectedVariant {
                    type_name: "Event",
                    allowed: &bincode::error::AllowedEnumVariants::Range { min: 0, max: 21 },
                    found: tag,
                })
            }
        };
        Ok(event)
    }
}

bincode::impl_borrow_decode!(Event);

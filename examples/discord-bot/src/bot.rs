//! [`Bot`]: the player logic shared by the slash commands ([`crate::discord`]) and the Lavalink
//! events ([`crate::lavalink_events`]): every change to a player goes to Lavalink and becomes a
//! journal event.
//!
//! # Order: Lavalink first, then the journal
//!
//! A command sends its `PATCH` to Lavalink and, once Lavalink accepted it, appends the event
//! (with the default `always` durability: the `append` future resolves once the event is on
//! disk). The journal never records a change Lavalink refused; a crash between the two loses
//! at most that one change, and the restore puts the player back as the journal has it.
//!
//! Every operation on a guild holds that guild's lock ([`Bot::guild_lock`]) from reading the
//! state to appending the event, so a command and a Lavalink event of the same guild (which
//! lavalink-rs dispatches on tasks of their own) never interleave.
//!
//! # The queue lives in the journal
//!
//! Lavalink plays one track at a time; the queue (upcoming tracks, history) is the journal's
//! state. When a track finishes, the bot takes `upcoming[0]` from the journal, plays it, and
//! appends `track_started`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use lavalink_rs::client::LavalinkClient;
use lavalink_rs::http::Http;
use lavalink_rs::model::events::TrackEndReason;
use lavalink_rs::model::track::{TrackData, TrackLoadData};
use reprise::clock::now_unix_ms;
use reprise::lavalink::{lavalink_filters, PatchTrack, PatchVoice, PlayerPatch};
use reprise::session::{
    EndReason, FilterConfig, LavalinkTrack, LavalinkTrackInfo, Snowflake, Track, Voice,
};
use reprise::{Event, GuildId, Reprise, State};
use serenity::gateway::ShardMessenger;

use crate::error::{BotError, Result};
use crate::rest::{delete_player, patch_player};

/// The voice data Discord sends in two halves (a voice state update: session and channel; a
/// voice server update: token and endpoint), gathered per guild until both have arrived.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PendingVoice {
    /// The bot's voice session id (voice state update).
    pub session_id: Option<String>,
    /// The voice channel (voice state update).
    pub channel_id: Option<u64>,
    /// The voice token (voice server update).
    pub token: Option<String>,
    /// The voice endpoint (voice server update).
    pub endpoint: Option<String>,
}

impl PendingVoice {
    /// The Lavalink `voice` object, once all four parts are known.
    pub fn complete(&self) -> Option<PatchVoice> {
        Some(PatchVoice {
            token: self.token.clone()?,
            endpoint: self.endpoint.clone()?,
            session_id: self.session_id.clone()?,
            channel_id: Some(self.channel_id?.to_string()),
        })
    }
}

/// The Discord shards this process runs, to send a guild's voice state update (opcode 4) on
/// the shard that owns the guild.
#[derive(Default)]
struct Shards {
    /// The messenger of each shard, by shard id.
    messengers: HashMap<u32, ShardMessenger>,
    /// The total number of shards (Discord's `(guild_id >> 22) % total` picks the shard).
    total: u32,
}

/// The bot: the journal handle, the Lavalink client, and what it tracks between Discord and
/// Lavalink events.
pub struct Bot {
    /// The journal.
    reprise: Reprise,
    /// The Lavalink client, once created (it needs this `Bot` as its data first).
    lavalink: OnceLock<LavalinkClient>,
    /// The Lavalink session id, once the node said `ready`.
    session_id: Mutex<Option<String>>,
    /// The bot's Discord user id (to recognise its own voice state updates).
    user_id: OnceLock<u64>,
    /// One lock per guild (see the module docs).
    guild_locks: Mutex<HashMap<GuildId, Arc<tokio::sync::Mutex<()>>>>,
    /// Voice data being gathered, per guild.
    voice: Mutex<HashMap<GuildId, PendingVoice>>,
    /// When the bot last started a track, per guild (Unix ms): a `playerUpdate` from before
    /// is about the previous track, and is not journaled.
    started_at: Mutex<HashMap<GuildId, u64>>,
    /// The shards' messengers.
    shards: Mutex<Shards>,
    /// Guilds to rejoin once their shard is connected (a restore can run before Discord is).
    rejoins_pending: Mutex<Vec<GuildId>>,
}

/// Locks a std mutex, going on with the data if a panicking thread poisoned it (every value
/// behind these locks is valid at every step).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The reprise track for a track Lavalink sent (`/v4/loadtracks`, player events): the same
/// mapping as reprise's [`LavalinkTrack`].
pub fn track_from_lavalink(data: &TrackData) -> Track {
    let info = &data.info;
    Track::from(LavalinkTrack {
        encoded: data.encoded.clone(),
        info: LavalinkTrackInfo {
            identifier: Some(info.identifier.clone()),
            is_seekable: Some(info.is_seekable),
            author: Some(info.author.clone()),
            length: Some(info.length),
            is_stream: Some(info.is_stream),
            position: Some(info.position),
            title: info.title.clone(),
            uri: info.uri.clone(),
            artwork_url: info.artwork_url.clone(),
            isrc: info.isrc.clone(),
            source_name: Some(info.source_name.clone()),
        },
        plugin_info: data
            .plugin_info
            .as_ref()
            .and_then(|value| value.as_object().cloned()),
        user_data: data.user_data.clone(),
    })
}

/// What Lavalink's `/v4/loadtracks` takes for a query: a URL as it is, anything else as a
/// YouTube search.
pub fn load_identifier(query: &str) -> String {
    let query = query.trim();
    if query.starts_with("https://") || query.starts_with("http://") {
        query.to_owned()
    } else {
        format!("ytsearch:{query}")
    }
}

/// The journal's end reason for a Lavalink track end the bot did not cause: `finished` and
/// `loadFailed`. `stopped`, `replaced` and `cleanup` follow the bot's own requests (skip, stop,
/// leave), which it journals itself: `None`.
pub fn end_reason(reason: &TrackEndReason) -> Option<EndReason> {
    match reason {
        TrackEndReason::Finished => Some(EndReason::Finished),
        TrackEndReason::LoadFailed => Some(EndReason::LoadFailed),
        TrackEndReason::Stopped | TrackEndReason::Replaced | TrackEndReason::Cleanup => None,
    }
}

/// The filter presets of `/filters`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FilterPreset {
    /// Faster and higher.
    Nightcore,
    /// Slower and lower.
    Vaporwave,
    /// Low frequencies raised.
    Bassboost,
    /// The sound turning around the listener.
    EightD,
    /// No filters.
    Clear,
}

impl FilterPreset {
    /// Every preset, in the order `/filters` lists them.
    pub const ALL: [FilterPreset; 5] = [
        FilterPreset::Nightcore,
        FilterPreset::Vaporwave,
        FilterPreset::Bassboost,
        FilterPreset::EightD,
        FilterPreset::Clear,
    ];

    /// The preset's name (the `/filters` choice and the journal's `active` name).
    pub fn name(self) -> &'static str {
        match self {
            FilterPreset::Nightcore => "nightcore",
            FilterPreset::Vaporwave => "vaporwave",
            FilterPreset::Bassboost => "bassboost",
            FilterPreset::EightD => "8d",
            FilterPreset::Clear => "clear",
        }
    }

    /// The preset named `name`.
    pub fn from_name(name: &str) -> Option<FilterPreset> {
        FilterPreset::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The filter configuration (`None` for [`FilterPreset::Clear`]), in reprise's form
    /// (Lavalink's inner field names).
    pub fn config(self) -> Option<FilterConfig> {
        let json = match self {
            FilterPreset::Nightcore => {
                serde_json::json!({"timescale": {"speed": 1.2, "pitch": 1.2, "rate": 1.0}})
            }
            FilterPreset::Vaporwave => {
                serde_json::json!({"timescale": {"speed": 0.85, "pitch": 0.8, "rate": 1.0}})
            }
            FilterPreset::Bassboost => serde_json::json!({"equalizer": [
                {"band": 0, "gain": 0.3}, {"band": 1, "gain": 0.25},
                {"band": 2, "gain": 0.2}, {"band": 3, "gain": 0.1}
            ]}),
            FilterPreset::EightD => serde_json::json!({"rotation": {"rotationHz": 0.2}}),
            FilterPreset::Clear => return None,
        };
        // The presets are constants of this file; the unit test below reads each one.
        serde_json::from_value(json).ok()
    }
}

impl Bot {
    /// A bot journaling into `reprise`.
    pub fn new(reprise: Reprise) -> Bot {
        Bot {
            reprise,
            lavalink: OnceLock::new(),
            session_id: Mutex::new(None),
            user_id: OnceLock::new(),
            guild_locks: Mutex::new(HashMap::new()),
            voice: Mutex::new(HashMap::new()),
            started_at: Mutex::new(HashMap::new()),
            shards: Mutex::new(Shards::default()),
            rejoins_pending: Mutex::new(Vec::new()),
        }
    }

    /// The journal.
    pub fn reprise(&self) -> &Reprise {
        &self.reprise
    }

    /// Sets the Lavalink client (once; later calls are ignored).
    pub fn set_lavalink(&self, client: LavalinkClient) {
        let _ = self.lavalink.set(client);
    }

    /// Records the Lavalink session id the node's `ready` op gave.
    pub fn set_session_id(&self, session_id: String) {
        *lock(&self.session_id) = Some(session_id);
    }

    /// Sets the bot's Discord user id (once).
    pub fn set_user_id(&self, user_id: u64) {
        let _ = self.user_id.set(user_id);
    }

    /// The bot's Discord user id, once known.
    pub fn user_id(&self) -> Option<u64> {
        self.user_id.get().copied()
    }

    /// Records the messenger of shard `id` of `total`.
    pub fn register_shard(&self, id: u32, total: u32, messenger: ShardMessenger) {
        let mut shards = lock(&self.shards);
        shards.total = total.max(1);
        shards.messengers.insert(id, messenger);
    }

    /// The lock of `guild` (see the module docs).
    pub fn guild_lock(&self, guild: GuildId) -> Arc<tokio::sync::Mutex<()>> {
        lock(&self.guild_locks).entry(guild).or_default().clone()
    }

    /// The Lavalink node's REST client and session id.
    ///
    /// # Errors
    /// [`BotError::NotConnected`] before the client exists and its node said `ready`.
    fn node(&self) -> Result<(Http, String)> {
        let client = self.lavalink.get().ok_or(BotError::NotConnected)?;
        let session_id = lock(&self.session_id)
            .clone()
            .ok_or(BotError::NotConnected)?;
        let node = client.nodes.first().ok_or(BotError::NotConnected)?;
        Ok((node.http.clone(), session_id))
    }

    /// Sends `patch` to `guild`'s player.
    async fn patch(&self, guild: GuildId, patch: &PlayerPatch) -> Result<()> {
        let (http, session_id) = self.node()?;
        patch_player(&http, &session_id, guild, patch).await?;
        Ok(())
    }

    /// Appends `event` to `guild`'s journal.
    async fn append(&self, guild: GuildId, event: Event) -> Result<()> {
        self.reprise.append(guild, event).await?;
        Ok(())
    }

    /// The guild's state in the journal.
    pub async fn state(&self, guild: GuildId) -> Result<State> {
        Ok(self.reprise.state(guild).await?.state)
    }

    // ----- commands -----

    /// `/play`: loads `query` on Lavalink, appends the tracks to the queue (`tracks_enqueued`)
    /// and, when nothing plays, starts the first (`track_started`). Returns the tracks added.
    ///
    /// # Errors
    /// [`BotError::NoVoice`] when the bot is not in a voice channel of `guild`;
    /// [`BotError::NothingFound`]; Lavalink's and the journal's errors.
    pub async fn play(&self, guild: GuildId, query: &str) -> Result<Vec<Track>> {
        let (http, _) = self.node()?;
        if self.state(guild).await?.player.voice.is_none() {
            return Err(BotError::NoVoice(guild));
        }
        let loaded = http.load_tracks(&load_identifier(query)).await?;
        let tracks: Vec<Track> = match loaded.data {
            Some(TrackLoadData::Track(track)) => vec![track_from_lavalink(&track)],
            Some(TrackLoadData::Playlist(playlist)) => {
                playlist.tracks.iter().map(track_from_lavalink).collect()
            }
            Some(TrackLoadData::Search(found)) => {
                found.first().map(track_from_lavalink).into_iter().collect()
            }
            Some(TrackLoadData::Error(_)) | None => Vec::new(),
        };
        if tracks.is_empty() {
            return Err(BotError::NothingFound(query.to_owned()));
        }
        let guard = self.guild_lock(guild);
        let _held = guard.lock().await;
        // Checked again under the lock: the bot may have left voice while Lavalink searched.
        let state = self.state(guild).await?;
        if state.player.voice.is_none() {
            return Err(BotError::NoVoice(guild));
        }
        self.append(
            guild,
            Event::TracksEnqueued {
                tracks: tracks.clone(),
                index: None,
            },
        )
        .await?;
        if state.queue.current.is_none() {
            self.start_next(guild).await?;
        }
        Ok(tracks)
    }

    /// After a restore of an idle guild (tracks waiting, none current: the bot stopped between
    /// a track's end and the next one's start): plays the next track, as after a track end.
    /// Returns the track started.
    ///
    /// # Errors
    /// Lavalink's and the journal's errors.
    pub async fn play_next_if_idle(&self, guild: GuildId) -> Result<Option<Track>> {
        let guard = self.guild_lock(guild);
        let _held = guard.lock().await;
        if self.state(guild).await?.queue.current.is_some() {
            return Ok(None);
        }
        self.start_next(guild).await
    }

    /// Plays `upcoming[0]` of the journal's queue, if any, and appends `track_started`.
    /// Returns the track started. The caller holds the guild's lock.
    async fn start_next(&self, guild: GuildId) -> Result<Option<Track>> {
        let state = self.state(guild).await?;
        let Some(next) = state.queue.upcoming.first() else {
            return Ok(None);
        };
        let track = next.track.clone();
        let started = now_unix_ms();
        self.patch(guild, &play_patch(&track)).await?;
        self.append(guild, Event::TrackStarted).await?;
        lock(&self.started_at).insert(guild, started);
        Ok(Some(track))
    }

    /// `/pause` and `/resume`: `paused_set`.
    ///
    /// # Errors
    /// [`BotError::NothingPlaying`]; Lavalink's and the journal's errors.
    pub async fn set_paused(&self, guild: GuildId, paused: bool) -> Result<()> {
        let guard = self.guild_lock(guild);
        let _held = guard.lock().await;
        if self.state(guild).await?.queue.current.is_none() {
            return Err(BotError::NothingPlaying(guild));
        }
        let patch = PlayerPatch {
            paused: Some(paused),
            ..PlayerPatch::default()
        };
        self.patch(guild, &patch).await?;
        self.append(guild, Event::PausedSet { paused }).await
    }

    /// `/seek`: `seeked` (naming the current queue entry).
    ///
    /// # Errors
    /// [`BotError::NothingPlaying`]; [`BotError::InvalidArgument`] for a track that cannot
    /// seek; Lavalink's and the journal's errors.
    pub async fn seek(&self, guild: GuildId, position_ms: u64) -> Result<()> {
        let guard = self.guild_lock(guild);
        let _held = guard.lock().await;
        let state = self.state(guild).await?;
        let current = state
            .queue
            .current
            .as_ref()
            .ok_or(BotError::NothingPlaying(guild))?;
        if current.track.is_stream() || !current.track.is_seekable() {
            return Err(BotError::InvalidArgument(format!(
                "{:?} cannot seek",
                current.track.title()
            )));
        }
        let patch = PlayerPatch {
            position: Some(position_ms),
            ..PlayerPatch::default()
        };
        self.patch(guild, &patch).await?;
        let entry_id = Some(current.id);
        self.append(
            guild,
            Event::Seeked {
                position_ms,
                entry_id,
            },
        )
        .await
    }

    /// `/volume`: `volume_set` (`0..=1000`, 100 = unchanged).
    ///
    /// # Errors
    /// [`BotError::InvalidArgument`] above 1000; Lavalink's and the journal's errors.
    pub async fn set_volume(&self, guild: GuildId, volume: u16) -> Result<()> {
        if volume > 1000 {
            return Err(BotError::InvalidArgument(format!(
                "volume {volume}: 0 to 1000"
            )));
        }
        let guard = self.guild_lock(guild);
        let _held = guard.lock().await;
        let patch = PlayerPatch {
            volume: Some(volume),
            ..PlayerPatch::default()
        };
        self.patch(guild, &patch).await?;
        self.append(guild, Event::VolumeSet { volume }).await
    }

    /// `/filters`: `filters_set` with the preset (its name as the active filter), or
    /// `filters_cleared` for [`FilterPreset::Clear`].
    ///
    /// # Errors
    /// Lavalink's and the journal's errors.
    pub async fn set_filters(&self, guild: GuildId, preset: FilterPreset) -> Result<()> {
        let guard = self.guild_lock(guild);
        let _held = guard.lock().await;
        let config = preset.config();
        let patch = PlayerPatch {
            filters: Some(lavalink_filters(
                config.as_ref().unwrap_or(&FilterConfig::default()),
            )),
            ..PlayerPatch::default()
        };
        self.patch(guild, &patch).await?;
        let event = match config {
            Some(config) => Event::FiltersSet {
                active: vec![preset.name().to_owned()],
                config: Box::new(config),
            },
            None => Event::FiltersCleared,
        };
        self.append(guild, event).await
    }

    /// `/skip`: Lavalink plays the next track (or stops when the queue is empty), then
    /// `track_ended` (`skipped`) and `track_started` are appended. Returns the next track.
    ///
    /// # Errors
    /// [`BotError::NothingPlaying`]; Lavalink's and the journal's errors.
    pub async fn skip(&self, guild: GuildId) -> Result<Option<Track>> {
        let guard = self.guild_lock(guild);
        let _held = guard.lock().await;
        let state = self.state(guild).await?;
        if state.queue.current.is_none() {
            return Err(BotError::NothingPlaying(guild));
        }
        let next = state
            .queue
            .upcoming
            .first()
            .map(|entry| entry.track.clone());
        let started = now_unix_ms();
        let patch = next.as_ref().map_or_else(stop_patch, play_patch);
        self.patch(guild, &patch).await?;
        // Lavalink's own end event for the skipped track (`replaced` or `stopped`) is not
        // journaled (see `end_reason`); these are.
        let mut events = vec![Event::TrackEnded {
            reason: EndReason::Skipped,
        }];
        if next.is_some() {
            events.push(Event::TrackStarted);
        }
        self.reprise.append_many(guild, events).await?;
        if next.is_some() {
            lock(&self.started_at).insert(guild, started);
        }
        Ok(next)
    }

    /// `/stop`: the player stops and the queue is emptied (`track_ended` with `stopped`, or
    /// `queue_cleared` when nothing was playing).
    ///
    /// # Errors
    /// Lavalink's and the journal's errors.
    pub async fn stop(&self, guild: GuildId) -> Result<()> {
        let guard = self.guild_lock(guild);
        let _held = guard.lock().await;
        let state = self.state(guild).await?;
        self.patch(guild, &stop_patch()).await?;
        if state.queue.current.is_some() {
            let reason = EndReason::Stopped;
            self.append(guild, Event::TrackEnded { reason }).await?;
        } else if !state.queue.upcoming.is_empty() {
            self.append(guild, Event::QueueCleared).await?;
        }
        Ok(())
    }

    /// `/join`: asks Discord to put the bot in `channel` (a voice state update, opcode 4).
    /// The voice state and voice server updates that follow connect the Lavalink player
    /// ([`Bot::voice_state`], [`Bot::voice_server`]) and append `voice_connected`.
    ///
    /// # Errors
    /// [`BotError::NotConnected`] when no shard of this process owns the guild.
    pub fn join(&self, guild: GuildId, channel: u64) -> Result<()> {
        self.send_voice_state(guild, Some(channel))
    }

    /// `/leave`: asks Discord to take the bot out of voice and ends the session
    /// (`session_ended`: the queue, volume and filters are reset; the voice state update that
    /// follows appends `voice_disconnected` and removes the Lavalink player).
    ///
    /// # Errors
    /// As [`Bot::join`]; the journal's errors.
    pub async fn leave(&self, guild: GuildId) -> Result<()> {
        self.send_voice_state(guild, None)?;
        let guard = self.guild_lock(guild);
        let _held = guard.lock().await;
        self.append(guild, Event::SessionEnded).await
    }

    /// Sends the gateway's voice state update (opcode 4) for `guild` on its shard.
    fn send_voice_state(&self, guild: GuildId, channel: Option<u64>) -> Result<()> {
        let shards = lock(&self.shards);
        let shard = ((guild.0 >> 22) % u64::from(shards.total.max(1))) as u32;
        let messenger = shards
            .messengers
            .get(&shard)
            .ok_or(BotError::NotConnected)?;
        let payload = serde_json::json!({
            "op": 4,
            "d": {
                "guild_id": guild.0.to_string(),
                "channel_id": channel.map(|c| c.to_string()),
                "self_mute": false,
                "self_deaf": true,
            }
        });
        messenger.websocket_message(tungstenite::Message::Text(payload.to_string()));
        Ok(())
    }

    // ----- events received -----

    /// Lavalink's `TrackEndEvent`: when the track that ended is the journal's current one and
    /// the end is not the bot's doing (`finished`, `loadFailed`), appends `track_ended` and
    /// starts the next track.
    ///
    /// # Errors
    /// Lavalink's and the journal's errors.
    pub async fn track_ended(
        &self,
        guild: GuildId,
        track: &TrackData,
        reason: &TrackEndReason,
    ) -> Result<()> {
        let Some(reason) = end_reason(reason) else {
            return Ok(());
        };
        let guard = self.guild_lock(guild);
        let _held = guard.lock().await;
        let state = self.state(guild).await?;
        let is_current = state
            .queue
            .current
            .as_ref()
            .is_some_and(|entry| entry.track.encoded() == track.encoded.as_str());
        if !is_current {
            return Ok(());
        }
        self.append(guild, Event::TrackEnded { reason }).await?;
        self.start_next(guild).await?;
        Ok(())
    }

    /// Lavalink's `playerUpdate`: appends `position_reported` for the current entry, unless the
    /// report is from before the bot started that track (the previous track's) or says nothing
    /// new (paused at the recorded position).
    ///
    /// # Errors
    /// The journal's errors.
    pub async fn position_reported(
        &self,
        guild: GuildId,
        position_ms: u64,
        at_unix_ms: u64,
    ) -> Result<()> {
        let started = lock(&self.started_at).get(&guild).copied().unwrap_or(0);
        if at_unix_ms < started {
            return Ok(());
        }
        let guard = self.guild_lock(guild);
        let _held = guard.lock().await;
        let state = self.state(guild).await?;
        let Some(current) = &state.queue.current else {
            return Ok(());
        };
        if state.player.paused && state.player.position_ms == position_ms {
            return Ok(());
        }
        let event = Event::PositionReported {
            position_ms,
            at_unix_ms,
            entry_id: Some(current.id),
        };
        self.append(guild, event).await
    }

    /// Discord's voice state update for the bot itself: in a channel, the session half of the
    /// voice data ([`Bot::voice_server`] has the other); out of voice, `voice_disconnected` and
    /// the Lavalink player removed.
    ///
    /// # Errors
    /// Lavalink's and the journal's errors.
    pub async fn voice_state(
        &self,
        guild: GuildId,
        channel: Option<u64>,
        session_id: String,
    ) -> Result<()> {
        let Some(channel) = channel else {
            lock(&self.voice).remove(&guild);
            let guard = self.guild_lock(guild);
            let _held = guard.lock().await;
            if self.state(guild).await?.player.voice.is_some() {
                self.append(guild, Event::VoiceDisconnected).await?;
            }
            if let Ok((http, session_id)) = self.node() {
                delete_player(&http, &session_id, guild).await?;
            }
            return Ok(());
        };
        let pending = {
            let mut voice = lock(&self.voice);
            let pending = voice.entry(guild).or_default();
            pending.session_id = Some(session_id);
            pending.channel_id = Some(channel);
            pending.clone()
        };
        self.connect_voice(guild, pending).await
    }

    /// Discord's voice server update: the token and endpoint half of the voice data (an
    /// endpoint of `None` means the server is being reallocated: another update follows).
    ///
    /// # Errors
    /// Lavalink's and the journal's errors.
    pub async fn voice_server(
        &self,
        guild: GuildId,
        token: String,
        endpoint: Option<String>,
    ) -> Result<()> {
        let Some(endpoint) = endpoint else {
            return Ok(());
        };
        let pending = {
            let mut voice = lock(&self.voice);
            let pending = voice.entry(guild).or_default();
            pending.token = Some(token);
            pending.endpoint = Some(endpoint);
            pending.clone()
        };
        self.connect_voice(guild, pending).await
    }

    /// Once the voice data is complete: sends it to Lavalink and appends `voice_connected`
    /// (unless the journal already has exactly this connection).
    async fn connect_voice(&self, guild: GuildId, pending: PendingVoice) -> Result<()> {
        let Some(voice) = pending.complete() else {
            return Ok(());
        };
        let guard = self.guild_lock(guild);
        let _held = guard.lock().await;
        let patch = PlayerPatch {
            voice: Some(voice.clone()),
            ..PlayerPatch::default()
        };
        self.patch(guild, &patch).await?;
        let connection = Voice {
            session_id: voice.session_id,
            channel_id: Snowflake::Text(voice.channel_id.unwrap_or_default()),
            endpoint: Some(voice.endpoint),
            token: Some(voice.token),
        };
        if self.state(guild).await?.player.voice.as_ref() == Some(&connection) {
            return Ok(());
        }
        let event = Event::VoiceConnected {
            session_id: connection.session_id,
            channel_id: connection.channel_id,
            endpoint: connection.endpoint,
            token: connection.token,
        };
        self.append(guild, event).await
    }

    /// Lavalink's `WebSocketClosedEvent` (Lavalink's voice connection to Discord closed): for
    /// a voice session Discord no longer accepts (4006, 4009: what a restore with an old voice
    /// token meets), rejoins the journal's channel, which brings fresh voice data.
    ///
    /// # Errors
    /// As [`Bot::join`]; the journal's errors.
    pub async fn voice_closed(&self, guild: GuildId, code: u16) -> Result<()> {
        if !matches!(code, 4006 | 4009) {
            return Ok(());
        }
        self.rejoin(guild).await
    }

    /// Rejoins `guild`'s voice channel now, or once its shard is connected
    /// ([`Bot::rejoin_pending`]).
    pub async fn rejoin_or_later(&self, guild: GuildId) {
        match self.rejoin(guild).await {
            Err(BotError::NotConnected) => lock(&self.rejoins_pending).push(guild),
            Err(error) => tracing::warn!(guild = guild.0, %error, "voice not rejoined"),
            Ok(()) => {}
        }
    }

    /// Rejoins the guilds whose rejoin waited for a shard (called when a shard is ready).
    pub async fn rejoin_pending(&self) {
        let pending = std::mem::take(&mut *lock(&self.rejoins_pending));
        for guild in pending {
            self.rejoin_or_later(guild).await;
        }
    }

    /// Rejoins the voice channel the journal records for `guild`, if any.
    ///
    /// # Errors
    /// As [`Bot::join`]; the journal's errors.
    pub async fn rejoin(&self, guild: GuildId) -> Result<()> {
        let state = self.state(guild).await?;
        let channel = state
            .player
            .voice
            .as_ref()
            .and_then(|voice| voice.channel_id.to_string().parse::<u64>().ok());
        match channel {
            Some(channel) => self.join(guild, channel),
            None => Ok(()),
        }
    }
}

/// The body that plays `track` from its start.
fn play_patch(track: &Track) -> PlayerPatch {
    PlayerPatch {
        track: Some(PatchTrack {
            encoded: Some(track.encoded().into_owned()),
            user_data: track.user_data(),
        }),
        position: Some(0),
        ..PlayerPatch::default()
    }
}

/// The body that stops the player: `{"track": {"encoded": null}}`.
fn stop_patch() -> PlayerPatch {
    PlayerPatch {
        track: Some(PatchTrack {
            encoded: None,
            user_data: None,
        }),
        ..PlayerPatch::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_is_valid_and_named_uniquely() {
        for preset in FilterPreset::ALL {
            assert_eq!(FilterPreset::from_name(preset.name()), Some(preset));
            match preset.config() {
                Some(config) => {
                    config.validate().unwrap();
                    assert_ne!(config, FilterConfig::default(), "{preset:?} sets something");
                }
                None => assert_eq!(preset, FilterPreset::Clear),
            }
        }
        assert_eq!(FilterPreset::from_name("louder"), None);
    }

    #[test]
    fn only_ends_the_bot_did_not_cause_are_journaled() {
        assert_eq!(
            end_reason(&TrackEndReason::Finished),
            Some(EndReason::Finished)
        );
        assert_eq!(
            end_reason(&TrackEndReason::LoadFailed),
            Some(EndReason::LoadFailed)
        );
        for reason in [
            TrackEndReason::Stopped,
            TrackEndReason::Replaced,
            TrackEndReason::Cleanup,
        ] {
            assert_eq!(end_reason(&reason), None);
        }
    }

    #[test]
    fn a_query_is_a_url_or_a_search() {
        assert_eq!(load_identifier(" https://x.test/a "), "https://x.test/a");
        assert_eq!(load_identifier("never gonna"), "ytsearch:never gonna");
    }

    #[test]
    fn a_lavalink_track_keeps_its_fields() {
        let data: TrackData = serde_json::from_value(serde_json::json!({
            "encoded": "QAAA",
            "info": {"identifier": "dQw4w9WgXcQ", "isSeekable": true, "author": "Rick Astley",
                     "length": 213000, "isStream": false, "position": 5, "title": "Never",
                     "uri": "https://youtube.com/watch?v=dQw4w9WgXcQ", "artworkUrl": null,
                     "isrc": null, "sourceName": "youtube"},
            "pluginInfo": {}, "userData": {"requester": "42"}
        }))
        .unwrap();
        let track = track_from_lavalink(&data);
        assert_eq!(track.encoded(), "QAAA");
        assert_eq!(track.title(), "Never");
        assert_eq!(track.author(), "Rick Astley");
        assert_eq!(track.length_ms(), 213000);
        assert_eq!(track.source(), Some("youtube"));
        assert!(track.plugin_info().is_none(), "an empty pluginInfo is none");
        assert_eq!(
            track.user_data(),
            Some(serde_json::json!({"requester": "42"}))
        );
    }

    #[test]
    fn voice_is_complete_with_all_four_parts() {
        let mut pending = PendingVoice {
            session_id: Some("s".into()),
            channel_id: Some(7),
            token: Some("t".into()),
            endpoint: None,
        };
        assert_eq!(pending.complete(), None);
        pending.endpoint = Some("e".into());
        let voice = pending.complete().unwrap();
        assert_eq!(voice.channel_id.as_deref(), Some("7"));
        assert_eq!((voice.token.as_str(), voice.endpoint.as_str()), ("t", "e"));
    }
}

//! The bot against a fake Lavalink node (tests/fake_lavalink): no Discord gateway needed.
//!
//! - On the node's `ready`, the bot (through lavalink-rs and the handlers `main` uses) sends
//!   one `PATCH /v4/sessions/{session}/players/{guild}` per guild with something to restore,
//!   whose body is exactly the journal's Lavalink body.
//! - `restore_all` at a fixed time: positions extrapolated, a refused guild reported without
//!   stopping the others.
//! - The commands and received events: each sends what Lavalink needs and appends its
//!   journal event.

mod fake_lavalink;

use std::collections::HashSet;
use std::sync::Arc;

use fake_lavalink::{FakeLavalink, Request, Script};
use lavalink_rs::client::LavalinkClient;
use lavalink_rs::model::client::NodeDistributionStrategy;
use lavalink_rs::model::events::{Events, TrackEndReason};
use lavalink_rs::model::track::TrackData;
use lavalink_rs::model::UserId;
use lavalink_rs::node::NodeBuilder;
use reprise::lavalink::RestoreStatus;
use reprise::sonora::Sections;
use reprise::{Config, Event, GuildId, Reprise};
use reprise_discord_bot::bot::FilterPreset;
use reprise_discord_bot::restore::{restore_all, GuildRestore};
use reprise_discord_bot::{lavalink_events, Bot, BotError};
use serde_json::json;

const PASSWORD: &str = "fake-password";
const BOT_USER: u64 = 150_000_000_000_000_001;

/// Guild ids in the journal's (ascending) order.
const PLAYING: GuildId = GuildId(700_000_000_000_000_001);
const PAUSED: GuildId = GuildId(700_000_000_000_000_002);
const IDLE: GuildId = GuildId(700_000_000_000_000_003);
const STOPPED: GuildId = GuildId(700_000_000_000_000_004);
const NO_VOICE: GuildId = GuildId(700_000_000_000_000_005);

fn event(json: serde_json::Value) -> Event {
    serde_json::from_value(json).unwrap()
}

fn track(n: u32, length_ms: u64) -> serde_json::Value {
    json!({"encoded": format!("QAAAjQIAJVRyYWNr{n:04}"), "title": format!("Track {n}"),
           "author": "Someone", "length_ms": length_ms, "identifier": format!("id{n}"),
           "source": "youtube"})
}

fn voice(n: u64) -> Event {
    event(
        json!({"type": "voice_connected", "session_id": format!("voice-session-{n}"),
                 "channel_id": format!("{}", 800_000_000_000_000_000u64 + n),
                 "endpoint": "us-east1.discord.media:443", "token": format!("token-{n}")}),
    )
}

/// A journal with five guilds: playing (exact position after a seek), paused (a reported
/// position), idle (tracks waiting, none current), stopped without voice (nothing to
/// restore), and playing without voice data.
async fn seed(reprise: &Reprise) {
    let sessions: [(GuildId, Vec<Event>); 5] = [
        (
            PLAYING,
            vec![
                voice(1),
                event(
                    json!({"type": "tracks_enqueued", "tracks": [track(1, 213_000), track(2, 180_000)]}),
                ),
                event(json!({"type": "track_started"})),
                event(json!({"type": "volume_set", "volume": 80})),
                event(json!({"type": "filters_set", "active": ["nightcore"],
                             "config": {"timescale": {"speed": 1.2, "pitch": 1.2, "rate": 1.0}}})),
                event(json!({"type": "seeked", "position_ms": 42_000})),
            ],
        ),
        (
            PAUSED,
            vec![
                voice(2),
                event(json!({"type": "tracks_enqueued", "tracks": [track(3, 200_000)]})),
                event(json!({"type": "track_started"})),
                event(json!({"type": "position_reported", "position_ms": 61_000,
                             "at_unix_ms": 1_700_000_000_000u64})),
                event(json!({"type": "paused_set", "paused": true})),
                event(json!({"type": "filters_set", "active": ["bassboost"],
                             "config": {"equalizer": [{"band": 0, "gain": 0.3}, {"band": 1, "gain": 0.2}]}})),
            ],
        ),
        (
            IDLE,
            vec![
                voice(3),
                event(
                    json!({"type": "tracks_enqueued", "tracks": [track(4, 100_000), track(5, 100_000)]}),
                ),
                event(json!({"type": "track_started"})),
                event(json!({"type": "track_ended", "reason": "finished"})),
                event(json!({"type": "volume_set", "volume": 150})),
            ],
        ),
        (
            STOPPED,
            vec![
                event(json!({"type": "tracks_enqueued", "tracks": [track(6, 100_000)]})),
                event(json!({"type": "track_started"})),
                event(json!({"type": "session_ended"})),
            ],
        ),
        (
            NO_VOICE,
            vec![
                event(json!({"type": "tracks_enqueued", "tracks": [track(7, 300_000)]})),
                event(json!({"type": "track_started"})),
                event(json!({"type": "position_reported", "position_ms": 10_000,
                             "at_unix_ms": 1_700_000_000_000u64})),
            ],
        ),
    ];
    for (guild, events) in sessions {
        reprise.append_many(guild, events).await.unwrap();
    }
}

fn node(addr: std::net::SocketAddr) -> NodeBuilder {
    NodeBuilder {
        hostname: addr.to_string(),
        is_ssl: false,
        events: Events::default(),
        password: PASSWORD.to_owned(),
        user_id: UserId(BOT_USER),
        session_id: None,
    }
}

/// The bot as `main` builds it, on the fake node: lavalink-rs with the bot's handlers and the
/// bot as its data.
async fn bot_on(fake: &FakeLavalink, reprise: Reprise) -> Arc<Bot> {
    let bot = Arc::new(Bot::new(reprise));
    let client = LavalinkClient::new_with_data(
        lavalink_events::events(),
        vec![node(fake.addr)],
        NodeDistributionStrategy::new(),
        bot.clone(),
    )
    .await;
    bot.set_lavalink(client);
    bot
}

fn assert_patch(request: &Request, session: &str, guild: GuildId) {
    assert_eq!(request.method, "PATCH");
    assert_eq!(
        request.path,
        format!("/v4/sessions/{session}/players/{}", guild.0)
    );
    assert_eq!(request.header("authorization"), Some(PASSWORD));
    assert_eq!(
        request.header("user-id"),
        Some(BOT_USER.to_string().as_str())
    );
    assert_eq!(request.header("content-type"), Some("application/json"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_ready_every_guild_is_patched_with_its_journal_body() {
    let dir = tempfile::tempdir().unwrap();
    let reprise = Reprise::open(dir.path(), Config::default()).await.unwrap();
    seed(&reprise).await;
    let mut fake = FakeLavalink::start(Script {
        session_id: "session-after-restart".into(),
        ..Script::default()
    })
    .await;

    // Every guild but the stopped one without voice, in guild order. The bodies of these
    // states do not depend on the time (the position is exact after a seek, or paused, or
    // NO_VOICE's report is so old that it is clamped to the track's length), so the plans
    // read now are the ones the bot sends.
    let expected = [PLAYING, PAUSED, IDLE, NO_VOICE];
    let mut bodies = Vec::new();
    for guild in expected {
        let plan = reprise
            .lavalink_restore(guild, reprise::clock::now_unix_ms(), Sections::ALL)
            .await
            .unwrap();
        bodies.push(serde_json::to_vec(&plan.patch).unwrap());
    }

    let mut idle_events = reprise.subscribe(IDLE).await.unwrap();
    let bot = bot_on(&fake, reprise.clone()).await;

    // One task sends them one after the other, so NO_VOICE's arriving after IDLE's means
    // STOPPED was skipped.
    let mut requests = Vec::new();
    for (guild, body) in expected.iter().zip(&bodies) {
        let request = fake.next_request().await;
        assert_patch(&request, "session-after-restart", *guild);
        assert_eq!(
            &request.raw_body, body,
            "guild {}: the body is the journal's, byte for byte",
            guild.0
        );
        requests.push(request);
    }
    assert_eq!(*fake.websockets.lock().unwrap(), 1);
    // Then the idle guild goes on with its next track, as after a track end.
    let next = fake.next_request().await;
    assert_patch(&next, "session-after-restart", IDLE);
    assert_eq!(
        next.body,
        json!({"track": {"encoded": "QAAAjQIAJVRyYWNr0005"}, "position": 0})
    );
    // ... and journals it once Lavalink accepted it.
    let logged = tokio::time::timeout(std::time::Duration::from_secs(30), idle_events.recv())
        .await
        .expect("an event within 30 s")
        .unwrap();
    assert_eq!(logged.event, Event::TrackStarted);
    let idle_state = bot.state(IDLE).await.unwrap();
    let current = idle_state.queue.current.expect("the next track is current");
    assert_eq!(current.track.title(), "Track 5");
    assert!(fake.try_next_request().is_none());

    // What those bodies say, spelled out.
    let playing = &requests[0].body;
    assert_eq!(playing["track"]["encoded"], "QAAAjQIAJVRyYWNr0001");
    assert_eq!(playing["position"], 42_000);
    assert_eq!(playing["volume"], 80);
    assert_eq!(playing["paused"], false);
    assert_eq!(playing["filters"]["timescale"]["speed"], 1.2);
    assert_eq!(playing["voice"]["token"], "token-1");
    assert_eq!(playing["voice"]["sessionId"], "voice-session-1");
    assert_eq!(playing["voice"]["channelId"], "800000000000000001");
    let paused = &requests[1].body;
    assert_eq!(paused["paused"], true);
    assert_eq!(paused["position"], 61_000, "paused: not extrapolated");
    assert_eq!(paused["filters"]["equalizer"][1]["gain"], 0.2);
    let idle = &requests[2].body;
    assert_eq!(idle["track"], json!({"encoded": null}));
    assert_eq!(idle["volume"], 150);
    assert!(idle.get("position").is_none());
    let no_voice = &requests[3].body;
    assert!(no_voice.get("voice").is_none());
    assert_eq!(
        no_voice["position"], 300_000,
        "a report long past: clamped to the length"
    );

    reprise.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_all_extrapolates_to_now_and_reports_a_refused_guild() {
    let dir = tempfile::tempdir().unwrap();
    let reprise = Reprise::open(dir.path(), Config::default()).await.unwrap();
    seed(&reprise).await;
    let mut fake = FakeLavalink::start(Script {
        session_id: "unused".into(),
        refused_guilds: HashSet::from([PAUSED.0]),
        ..Script::default()
    })
    .await;
    // A plain lavalink-rs client (no handlers): only its node's REST client is used.
    let client = LavalinkClient::new(
        Events::default(),
        vec![node(fake.addr)],
        NodeDistributionStrategy::new(),
    )
    .await;
    let http = &client.nodes[0].http;
    // 5 s after NO_VOICE's position report: 10 s + 5 s.
    let now = 1_700_000_005_000;

    let outcomes = restore_all(&reprise, http, "session-2", now).await.unwrap();

    let guilds: Vec<GuildId> = outcomes.iter().map(GuildRestore::guild).collect();
    assert_eq!(guilds, [PLAYING, PAUSED, IDLE, STOPPED, NO_VOICE]);
    for (outcome, expected_status) in outcomes.iter().zip([
        Some(RestoreStatus::Playing),
        None,
        Some(RestoreStatus::Idle),
        None,
        Some(RestoreStatus::Playing),
    ]) {
        match (outcome, expected_status) {
            (GuildRestore::Restored { plan, .. }, Some(status)) => assert_eq!(plan.status, status),
            (GuildRestore::Failed { guild, error }, None) => {
                assert_eq!(*guild, PAUSED);
                assert!(
                    matches!(error, BotError::LavalinkRefused { status: 400, .. }),
                    "{error}"
                );
            }
            (GuildRestore::Skipped { guild }, None) => assert_eq!(*guild, STOPPED),
            (other, status) => panic!("{other:?}, expected {status:?}"),
        }
    }

    // PLAYING, PAUSED (refused), IDLE, NO_VOICE: each sent with the plan at `now`.
    for guild in [PLAYING, PAUSED, IDLE, NO_VOICE] {
        let request = fake.next_request().await;
        assert_patch(&request, "session-2", guild);
        let plan = reprise
            .lavalink_restore(guild, now, Sections::ALL)
            .await
            .unwrap();
        assert_eq!(request.raw_body, serde_json::to_vec(&plan.patch).unwrap());
        if guild == NO_VOICE {
            assert_eq!(request.body["position"], 15_000, "extrapolated by 5 s");
        }
    }
    assert!(fake.try_next_request().is_none());
    reprise.shutdown().await.unwrap();
}

/// One search result, as Lavalink's `/v4/loadtracks` sends it.
fn search_result(n: u32) -> serde_json::Value {
    json!({"loadType": "search", "data": [lavalink_track(n)]})
}

fn lavalink_track(n: u32) -> serde_json::Value {
    json!({"encoded": format!("QAAAsearch{n}"), "info": {
        "identifier": format!("s{n}"), "isSeekable": true, "author": "Artist", "length": 240_000,
        "isStream": false, "position": 0, "title": format!("Found {n}"), "uri": null,
        "artworkUrl": null, "isrc": null, "sourceName": "youtube"},
        "pluginInfo": {}, "userData": {}})
}

/// The `type` of every event in `guild`'s log.
async fn logged_types(reprise: &Reprise, guild: GuildId) -> Vec<String> {
    let mut stream = reprise.events(guild).await.unwrap();
    let mut types = Vec::new();
    while let Some(logged) = stream.next().await {
        let json = serde_json::to_value(logged.unwrap().event).unwrap();
        types.push(json["type"].as_str().unwrap().to_owned());
    }
    types
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_command_and_lavalink_event_is_sent_then_journaled() {
    let dir = tempfile::tempdir().unwrap();
    let reprise = Reprise::open(dir.path(), Config::default()).await.unwrap();
    // One guild to restore: its PATCH says the bot handled `ready` (session known).
    reprise.append(PLAYING, voice(1)).await.unwrap();
    let mut fake = FakeLavalink::start(Script {
        session_id: "s3".into(),
        load_result: search_result(1),
        ..Script::default()
    })
    .await;
    let bot = bot_on(&fake, reprise.clone()).await;
    assert_patch(&fake.next_request().await, "s3", PLAYING);
    let guild = GuildId(900_000_000_000_000_009);

    // Not in voice yet: `/play` is refused, nothing journaled.
    assert!(matches!(
        bot.play(guild, "anything").await,
        Err(BotError::NoVoice(_))
    ));
    assert!(fake.try_next_request().is_none(), "no search without voice");

    // Discord's two voice updates, in either order: one PATCH with the voice, one event.
    bot.voice_server(guild, "tok".into(), Some("ep.discord.media:443".into()))
        .await
        .unwrap();
    bot.voice_state(guild, Some(810), "vs".into())
        .await
        .unwrap();
    let request = fake.next_request().await;
    assert_patch(&request, "s3", guild);
    assert_eq!(
        request.body,
        json!({"voice": {"token": "tok", "endpoint": "ep.discord.media:443",
                         "sessionId": "vs", "channelId": "810"}})
    );

    // `/play`: the search, then the first track starts.
    let played = bot.play(guild, "never gonna").await.unwrap();
    assert_eq!(played[0].title(), "Found 1");
    let load = fake.next_request().await;
    assert_eq!(
        (load.method.as_str(), load.path.as_str()),
        ("GET", "/v4/loadtracks?identifier=ytsearch%3Anever%20gonna")
    );
    let start = fake.next_request().await;
    assert_eq!(
        start.body,
        json!({"track": {"encoded": "QAAAsearch1"}, "position": 0})
    );
    // A second `/play` while playing: queued, no PATCH.
    bot.play(guild, "again").await.unwrap();
    assert_eq!(fake.next_request().await.method, "GET");

    bot.set_volume(guild, 250).await.unwrap();
    assert_eq!(fake.next_request().await.body, json!({"volume": 250}));
    assert!(matches!(
        bot.set_volume(guild, 1001).await,
        Err(BotError::InvalidArgument(_))
    ));
    bot.set_paused(guild, true).await.unwrap();
    assert_eq!(fake.next_request().await.body, json!({"paused": true}));
    bot.set_paused(guild, false).await.unwrap();
    assert_eq!(fake.next_request().await.body, json!({"paused": false}));
    bot.seek(guild, 30_000).await.unwrap();
    assert_eq!(fake.next_request().await.body, json!({"position": 30_000}));
    bot.set_filters(guild, FilterPreset::Nightcore)
        .await
        .unwrap();
    assert_eq!(
        fake.next_request().await.body,
        json!({"filters": {"timescale": {"speed": 1.2, "pitch": 1.2, "rate": 1.0}}})
    );
    // Lavalink's playerUpdate.
    let now = reprise::clock::now_unix_ms();
    bot.position_reported(guild, 31_000, now).await.unwrap();

    // `/skip`: the queued copy plays.
    let next = bot.skip(guild).await.unwrap().unwrap();
    assert_eq!(next.title(), "Found 1");
    assert_eq!(
        fake.next_request().await.body,
        json!({"track": {"encoded": "QAAAsearch1"}, "position": 0})
    );
    // A playerUpdate from before the skip (about the skipped track): not journaled.
    bot.position_reported(guild, 200_000, now - 1)
        .await
        .unwrap();
    // Lavalink's end event for the replaced track is the bot's doing: not journaled.
    let data: TrackData = serde_json::from_value(lavalink_track(1)).unwrap();
    bot.track_ended(guild, &data, &TrackEndReason::Replaced)
        .await
        .unwrap();
    // The track finishes: journaled; the queue is empty, so nothing more is sent.
    bot.track_ended(guild, &data, &TrackEndReason::Finished)
        .await
        .unwrap();
    let state = bot.state(guild).await.unwrap();
    assert!(state.queue.current.is_none());
    assert_eq!(state.queue.history.len(), 2);

    bot.set_filters(guild, FilterPreset::Clear).await.unwrap();
    assert_eq!(fake.next_request().await.body, json!({"filters": {}}));

    // Discord says the bot left voice: journaled, and the Lavalink player removed.
    bot.voice_state(guild, None, "vs".into()).await.unwrap();
    let delete = fake.next_request().await;
    assert_eq!(
        (delete.method.as_str(), delete.path.as_str()),
        (
            "DELETE",
            format!("/v4/sessions/s3/players/{}", guild.0).as_str()
        )
    );
    assert!(fake.try_next_request().is_none());

    assert_eq!(
        logged_types(&reprise, guild).await,
        [
            "voice_connected",
            "tracks_enqueued",
            "track_started",
            "tracks_enqueued",
            "volume_set",
            "paused_set",
            "paused_set",
            "seeked",
            "filters_set",
            "position_reported",
            "track_ended",
            "track_started",
            "track_ended",
            "filters_cleared",
            "voice_disconnected",
        ]
    );
    let state = bot.state(guild).await.unwrap();
    assert_eq!(state.player.volume, 250);
    assert!(state.player.voice.is_none());
    reprise.shutdown().await.unwrap();
}

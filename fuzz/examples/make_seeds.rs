//! Writes the committed seed corpora in `fuzz/seeds/<target>/` from real journals.
//!
//! ```sh
//! cd fuzz && cargo run --example make_seeds
//! ```
//!
//! Two small journals of guild 7 are written with `reprise::Journal` and the deterministic
//! `reprise::session::Workload` bot (only events whose payload is at most 96 bytes are kept, so
//! the seeds stay small); their segments and snapshots are copied into the seed directories,
//! with every wall-clock timestamp replaced by a fixed one (and the checksums recomputed), so a
//! rerun gives byte-identical seeds. Every seed directory is emptied first.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use tempfile::TempDir;

use reprise::format::{commit, encode_event, frame, segment, snapshot};
use reprise::layout;
use reprise::session::{apply, Workload};
use reprise::{Config, Durability, Event, GuildId, Journal, State};
use reprise_fuzz::{
    fix_segment_crcs, fix_snapshot_crcs, segment_selector, snapshot_selector, DirImage, ImageFile,
    FLAG_FIX_CRCS, GUILD,
};

/// The fixed "now" every timestamp in a seed is replaced by (October 2025).
const T0: u64 = 1_760_000_000_000;
/// Largest event payload kept in a seed journal.
const PAYLOAD_MAX: usize = 96;

fn main() {
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    for target in [
        "segment_decode",
        "snapshot_decode",
        "recover_dir",
        "event_json",
        "commit_decode",
    ] {
        let dir = seeds.join(target);
        if dir.exists() {
            fs::remove_dir_all(&dir).expect("empty the seed directory");
        }
        fs::create_dir_all(&dir).expect("create the seed directory");
    }
    let g = GuildId(GUILD);

    // Journal A: 1.wal holds 1..=8 (sealed by the snapshot at 8), 9.wal holds 9..=12.
    let a = write_journal(1, &[8], 12);
    let a_seg1 = read_segment(a.path(), g, 1);
    let a_snap8 = read_snapshot(a.path(), g, 8);
    let a_seg9 = read_segment(a.path(), g, 9);
    // Journal B: 1.wal holds 1..=10, the snapshot at 10, 11.wal holds 11..=12.
    let b = write_journal(2, &[10], 12);
    let b_seg1 = read_segment(b.path(), g, 1);
    let b_snap10 = read_snapshot(b.path(), g, 10);
    let b_seg11 = read_segment(b.path(), g, 11);
    // A richer state (queue, filters, voice) for the snapshot decoder only.
    let c = write_journal(3, &[40], 40);
    let c_snap40 = read_snapshot(c.path(), g, 40);

    let torn = |s: &[u8]| s[..s.len() - 5].to_vec();
    let zero_tail = |s: &[u8]| {
        let mut v = s.to_vec();
        v.extend_from_slice(&[0u8; 24]);
        v
    };

    // segment_decode: sealed and active segments, a torn and a zero-filled tail, header only.
    let header_only = segment::encode_header(&segment::SegmentHeader {
        guild: GUILD,
        first_seq: 13,
        history_max: 50,
        created_unix_ms: T0,
        key_id: reprise::crypto::KeyId::PLAINTEXT,
    });
    let seg = seeds.join("segment_decode");
    put(&seg, "sealed_1_to_8.wal", &a_seg1);
    put(&seg, "active_9_to_12.wal", &a_seg9);
    put(&seg, "active_11_to_12.wal", &b_seg11);
    put(&seg, "torn_tail.wal", &torn(&a_seg9));
    put(&seg, "zero_tail.wal", &zero_tail(&b_seg11));
    put(&seg, "header_only.wal", &header_only);

    // commit_decode: the first byte selects the header flag (bit 0: preallocated) and the
    // zeros appended (the rest times 64 bytes); the commit log holds the frames of journal A's
    // 1.wal as records, as the writer wrote them.
    let commit_seeds = seeds.join("commit_decode");
    let mut log =
        commit::encode_header(reprise::Generation(1), T0, commit::FLAG_PREALLOCATED).to_vec();
    let scan = segment::scan(&a_seg1, false).expect("a segment");
    for (at, f) in segment::frames(&a_seg1, scan.valid_len) {
        let (at, len) = (at as usize, f.len_total());
        commit::encode_record(
            &mut log,
            GUILD,
            50,
            reprise::crypto::KeyId::PLAINTEXT,
            &a_seg1[at..at + len],
        );
    }
    let selected = |selector: u8, bytes: &[u8]| [&[selector][..], bytes].concat();
    put(
        &commit_seeds,
        "preallocated_zero_tail.clog",
        &selected(1 | 16 << 1, &log),
    );
    put(
        &commit_seeds,
        "preallocated_at_its_end.clog",
        &selected(1, &log),
    );
    put(
        &commit_seeds,
        "older_zero_tail.clog",
        &selected(8 << 1, &log),
    );
    put(
        &commit_seeds,
        "torn_record_then_zeros.clog",
        &selected(1 | 8 << 1, &log[..log.len() - 9]),
    );

    // snapshot_decode: snapshots of three states, and the empty state.
    let snap = seeds.join("snapshot_decode");
    put(&snap, "seq_8.snap", &a_snap8);
    put(&snap, "seq_10.snap", &b_snap10);
    put(&snap, "seq_40.snap", &c_snap40);
    let mut empty = snapshot::encode(GUILD, 0, T0, &State::new(50), None).expect("encode");
    fix_snapshot_crcs(&mut empty);
    put(&snap, "empty_state.snap", &empty);
    let mut lavalink =
        snapshot::encode(GUILD, 3, T0, &lavalink_blob_state(), None).expect("encode");
    fix_snapshot_crcs(&mut lavalink);
    put(&snap, "lavalink_blobs.snap", &lavalink);

    // recover_dir: directory images (see reprise_fuzz::DirImage).
    let img = seeds.join("recover_dir");
    let file = |selector: u8, bytes: &[u8]| ImageFile {
        selector,
        bytes: bytes.to_vec(),
    };
    let images = [
        (
            "a_full.img",
            0,
            vec![
                file(segment_selector(1), &a_seg1),
                file(snapshot_selector(8), &a_snap8),
                file(segment_selector(9), &a_seg9),
            ],
        ),
        (
            "a_torn_tail.img",
            0,
            vec![
                file(segment_selector(1), &a_seg1),
                file(snapshot_selector(8), &a_snap8),
                file(segment_selector(9), &torn(&a_seg9)),
            ],
        ),
        (
            "b_compacted.img",
            FLAG_FIX_CRCS,
            vec![
                file(snapshot_selector(10), &b_snap10),
                file(segment_selector(11), &b_seg11),
            ],
        ),
        (
            "b_full_with_temp.img",
            FLAG_FIX_CRCS | (11 << 1),
            vec![
                file(segment_selector(1), &b_seg1),
                file(snapshot_selector(10), &b_snap10),
                file(segment_selector(11), &zero_tail(&b_seg11)),
                file(0x40 | (3 << 2) | 3, b"partial"),
            ],
        ),
        ("log_only.img", 0, vec![file(segment_selector(1), &a_seg1)]),
    ];
    for (name, flags, files) in images {
        put(&img, name, &DirImage { flags, files }.encode());
    }

    // event_json: the shortest JSON of each event type the bot produced, behind an 8-byte seed.
    let json = seeds.join("event_json");
    let mut shortest: BTreeMap<&'static str, String> = BTreeMap::new();
    for seed in 0..8 {
        let mut bot = Workload::new(seed);
        let mut state = State::new(50);
        for _ in 0..2000 {
            let e = bot.next_event(&state);
            let text = e.to_json();
            let slot = shortest.entry(e.kind()).or_insert_with(|| text.clone());
            if text.len() < slot.len() {
                *slot = text;
            }
            apply(&mut state, &e);
        }
    }
    // Spellings the bot does not use: a string channel id, an insert index, every filter.
    shortest.insert(
        "voice_connected_string",
        r#"{"type":"voice_connected","session_id":"s","channel_id":"123456789012345678","endpoint":"e","token":"t"}"#.into(),
    );
    shortest.insert(
        "filters_set_all",
        concat!(
            r#"{"type":"filters_set","active":["bassboost","8d"],"config":{"volume":1.1,"#,
            r#""equalizer":[{"band":0,"gain":0.25},{"band":14,"gain":-0.25}],"#,
            r#""karaoke":{"level":1.0,"monoLevel":1.0,"filterBand":220.0,"filterWidth":100.0},"#,
            r#""timescale":{"speed":1.2,"pitch":1.2,"rate":1.0},"tremolo":{"frequency":2.0,"depth":0.5},"#,
            r#""vibrato":{"frequency":2.0,"depth":0.5},"rotation":{"rotationHz":0.2},"#,
            r#""distortion":{"sinOffset":0.0,"sinScale":1.0,"cosOffset":0.0,"cosScale":1.0,"tanOffset":0.0,"tanScale":1.0,"offset":0.0,"scale":1.0},"#,
            r#""channelMix":{"leftToLeft":1.0,"leftToRight":0.0,"rightToLeft":0.0,"rightToRight":1.0},"#,
            r#""lowPass":{"smoothing":20.0}}}"#
        )
        .into(),
    );
    shortest.insert(
        "tracks_enqueued_index",
        r#"{"type":"tracks_enqueued","tracks":[{"encoded":"QAAA","title":"t","length_ms":1000}],"index":0}"#.into(),
    );
    // The bot's own data and entry-bound reports (issue 19).
    shortest.insert(
        "guild_meta_set",
        r#"{"type":"guild_meta_set","meta":{"dj_role":{"id":7,"name":"DJ"},"text_channel":"1100000000000000002","twenty_four_seven":true}}"#.into(),
    );
    shortest.insert(
        "position_reported_entry",
        r#"{"type":"position_reported","position_ms":1000,"at_unix_ms":1760076558454,"entry_id":1}"#.into(),
    );
    shortest.insert(
        "seeked_entry",
        r#"{"type":"seeked","position_ms":875,"entry_id":2}"#.into(),
    );
    // A restore: the state a bot reached, as one state_restored event.
    let mut bot = Workload::new(3);
    let mut reached = State::new(50);
    for _ in 0..40 {
        let e = bot.next_event(&reached);
        apply(&mut reached, &e);
    }
    shortest.insert(
        "state_restored",
        Event::StateRestored {
            state: Box::new(reached),
            from_seq: Some(40),
            label: Some("before-deploy".into()),
        }
        .to_json(),
    );
    for (i, (kind, text)) in shortest.iter().enumerate() {
        let event = Event::from_json(text).unwrap_or_else(|e| panic!("{kind}: {e}"));
        if *kind == "filters_set_all" {
            reprise::session::validate(&State::new(50), &event).expect("valid filters");
        }
        let mut bytes = format!("seed{i:04}").into_bytes();
        bytes.extend_from_slice(text.as_bytes());
        put(&json, &format!("{kind}.json"), &bytes);
    }

    for target in [
        "segment_decode",
        "snapshot_decode",
        "recover_dir",
        "event_json",
        "commit_decode",
    ] {
        let dir = seeds.join(target);
        let (count, bytes) = fs::read_dir(&dir)
            .expect("list seeds")
            .map(|e| e.expect("entry").metadata().expect("metadata").len())
            .fold((0, 0), |(n, b), len| (n + 1, b + len));
        println!("{target}: {count} seeds, {bytes} bytes");
    }
}

/// Writes guild 7's journal in a temporary directory: `events` small bot events, with a
/// snapshot after each seq in `snapshot_at`.
fn write_journal(seed: u64, snapshot_at: &[u64], events: u64) -> TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config::default().without_auto_snapshots();
    let mut journal = Journal::open(dir.path(), config.clone()).expect("open");
    let g = GuildId(GUILD);
    let mut bot = Workload::new(seed);
    let mut state = State::new(config.history_max);
    let mut seq = 0;
    let mut tries = 0;
    while seq < events {
        tries += 1;
        assert!(tries < 100_000, "the bot makes no small events");
        let e: Event = bot.next_event(&state);
        let mut payload = Vec::new();
        encode_event(&e, &mut payload);
        if payload.len() > PAYLOAD_MAX {
            continue;
        }
        seq = journal.append(g, &e, Durability::None).expect("append");
        apply(&mut state, &e);
        if snapshot_at.contains(&seq) {
            journal.snapshot_now(g).expect("snapshot");
        }
    }
    journal.close().expect("close");
    dir
}

/// A segment of the journal with its timestamps made deterministic.
fn read_segment(root: &Path, g: GuildId, first_seq: u64) -> Vec<u8> {
    let mut bytes = fs::read(layout::segment_path(root, g, first_seq)).expect("read segment");
    bytes[segment::CREATED_OFFSET..segment::CREATED_OFFSET + 8].copy_from_slice(&T0.to_le_bytes());
    let mut offset = segment::HEADER_LEN;
    while offset < bytes.len() {
        let f = frame::decode(&bytes[offset..]).expect("a valid frame");
        let (seq, len) = (f.seq, f.len_total());
        let at = offset + frame::TIME_OFFSET;
        bytes[at..at + 8].copy_from_slice(&(T0 + seq * 1000).to_le_bytes());
        offset += len;
    }
    fix_segment_crcs(&mut bytes);
    segment::scan(&bytes, false).expect("still a segment");
    bytes
}

/// A snapshot of the journal with its timestamp made deterministic.
fn read_snapshot(root: &Path, g: GuildId, seq: u64) -> Vec<u8> {
    let mut bytes = fs::read(layout::snapshot_path(root, g, seq)).expect("read snapshot");
    bytes[snapshot::CREATED_OFFSET..snapshot::CREATED_OFFSET + 8]
        .copy_from_slice(&T0.to_le_bytes());
    fix_snapshot_crcs(&mut bytes);
    snapshot::decode(&bytes, None).expect("still a snapshot");
    bytes
}

/// A state whose three tracks carry Lavalink blobs (versions 3 and 2, one whose fields differ
/// from its blob's): a snapshot stores each blob as its rest, which the decoder rebuilds.
fn lavalink_blob_state() -> State {
    use reprise::session::{lavalink_encoded, QueueEntry, Track, TrackFields};
    let mut fields = TrackFields {
        author: Some("\u{8521}\u{4f9d}\u{6797}".into()),
        uri: Some("https://www.youtube.com/watch?v=MyNhTOKc-Ow".into()),
        identifier: Some("MyNhTOKc-Ow".into()),
        length_ms: Some(353_734),
        source: Some("youtube".into()),
        artwork_url: Some("https://i.ytimg.com/vi/MyNhTOKc-Ow/mqdefault.jpg".into()),
        ..TrackFields::new("", "Never \u{1f3b5} Live")
    };
    let mut state = State::new(50);
    for (id, version) in [(1u64, 3u8), (2, 2), (3, 3)] {
        fields.encoded = lavalink_encoded(&fields, version, 1_500 * id);
        let mut track = fields.clone();
        if id == 3 {
            track.source = None;
            track.title = "Imported".into();
        }
        state.queue.upcoming.push(QueueEntry {
            id,
            track: Track::from(track),
        });
    }
    state.next_entry_id = 4;
    state
}

fn put(dir: &Path, name: &str, bytes: &[u8]) {
    fs::write(dir.join(name), bytes).expect("write seed");
}

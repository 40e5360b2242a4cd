//! Arbitrary bytes as a small guild directory (see `reprise_fuzz::DirImage`): up to four files
//! named like real journal files of guild 7 (`<seq:020>.wal`, `<seq:020>.snap`, a `.tmp`
//! leftover, an unknown file) are written to a fresh directory on tmpfs, then
//!
//! 1. read-only: `verify`, `inspect`, `state`, `recovery_findings`, every event of `events`,
//!    and `state_at` for a few sequence numbers — none may panic, errors are fine;
//! 2. read-write: `state` must agree with the read-only recovery; when it succeeded, one valid
//!    event is appended with `Durability::Always`, and a reopened journal must recover exactly
//!    the state before plus that event, at seq + 1.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reprise::format::encode_state;
use reprise::session::apply;
use reprise::{Config, Durability, Event, GuildId, Journal};
use reprise_fuzz::{scratch_dir, DirImage, GUILD};

const EVENT: &str = r#"{"type":"volume_set","volume":5}"#;

fuzz_target!(|data: &[u8]| {
    let image = DirImage::parse(data);
    let tmp = scratch_dir();
    let root = tmp.path();
    let guild_dir = root.join("guilds").join(GUILD.to_string());
    std::fs::create_dir_all(&guild_dir).expect("create the guild directory");
    for f in &image.files {
        std::fs::write(guild_dir.join(f.name()), &f.bytes).expect("write an image file");
    }
    let g = GuildId(GUILD);

    // 1. Read-only: nothing may panic; errors are fine.
    let read_only = {
        let mut j = Journal::open_read_only(root, Config::default()).expect("open read-only");
        let _ = j.verify();
        let _ = j.inspect(g);
        let state = j.state(g).cloned();
        let _ = j.recovery_findings(g).map(<[_]>::len);
        if let Ok(events) = j.events(g) {
            let mut last: Option<u64> = None;
            for item in events {
                let Ok(logged) = item else { continue };
                if let Some(prev) = last {
                    assert_eq!(
                        Some(logged.seq),
                        prev.checked_add(1),
                        "events() out of order"
                    );
                }
                last = Some(logged.seq);
            }
        }
        if let Ok(current) = &state {
            let probe = u64::from(image.flags >> 1);
            for seq in [current.seq.saturating_sub(1), current.seq / 2, probe] {
                if let Ok(at) = j.state_at(g, seq) {
                    assert_eq!(at.seq, seq, "state_at returned another seq");
                }
            }
        }
        state
    };

    // 2. Read-write: the same recovery; then an acknowledged append must survive a reopen.
    let mut j = Journal::open(root, Config::default()).expect("open read-write");
    let before = j.state(g).cloned();
    match (&read_only, &before) {
        (Ok(r), Ok(w)) => {
            assert_eq!(
                r.seq, w.seq,
                "read-only and read-write recover different seqs"
            );
            assert_eq!(encode_state(&r.state), encode_state(&w.state));
        }
        (Err(_), Err(_)) => {}
        (r, w) => panic!("read-only {r:?} vs read-write {w:?}"),
    }
    let Ok(before) = before else { return };
    let event = Event::from_json(EVENT).expect("a valid event");
    let Ok(seq) = j.append(g, &event, Durability::Always) else {
        return;
    };
    assert_eq!(
        Some(seq),
        before.seq.checked_add(1),
        "append returned a wrong seq"
    );
    let mut expected = before.state.clone();
    apply(&mut expected, &event);
    drop(j);
    let mut j = Journal::open(root, Config::default()).expect("reopen read-write");
    let after = match j.state(g) {
        Ok(s) => s.clone(),
        Err(e) => panic!("an acknowledged append is not recovered: {e}"),
    };
    assert_eq!(after.seq, seq, "reopen does not give seq + 1");
    assert_eq!(
        encode_state(&after.state),
        encode_state(&expected),
        "reopen recovers another state"
    );
});

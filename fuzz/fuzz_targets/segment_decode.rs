//! Arbitrary bytes as a log segment: `segment::scan` (active and sealed), every frame
//! `segment::frames` yields, and the bincode payload of each frame.
//!
//! The input is checked twice: as given, and with every checksum recomputed
//! (`fix_segment_crcs`), so that mutations of sequence numbers, lengths and payloads get past
//! the CRCs and reach the frame sequencing, the torn-tail search and the event decoder.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reprise::format::segment::{self, ScanEnd};
use reprise::format::{decode_event, encode_event, frame};

fuzz_target!(|data: &[u8]| {
    check(data);
    let mut fixed = data.to_vec();
    reprise_fuzz::fix_segment_crcs(&mut fixed);
    if fixed != data {
        check(&fixed);
    }
});

fn check(data: &[u8]) {
    let active = segment::scan(data, true);
    let sealed = segment::scan(data, false);
    match (&active, &sealed) {
        (Err(a), Err(s)) => assert_eq!(a, s, "the header verdict depends on `active`"),
        (Ok(a), Ok(s)) => {
            // Everything but the ending is independent of `active`.
            assert_eq!(a.header, s.header);
            assert_eq!(
                (a.last_seq, a.valid_len, a.frame_count),
                (s.last_seq, s.valid_len, s.frame_count)
            );
            match (&a.end, &s.end) {
                (ScanEnd::Clean, ScanEnd::Clean) => {}
                (ScanEnd::TornTail { offset }, ScanEnd::Corrupt(f)) => {
                    assert_eq!(
                        *offset, f.offset,
                        "torn tail and fault at different offsets"
                    );
                }
                (ScanEnd::Corrupt(fa), ScanEnd::Corrupt(fs)) => assert_eq!(fa, fs),
                (a_end, s_end) => panic!("active {a_end:?} vs sealed {s_end:?}"),
            }
        }
        _ => panic!("header accepted for one mode only: {active:?} / {sealed:?}"),
    }
    for scan in [active, sealed].into_iter().flatten() {
        let len = data.len() as u64;
        assert!(
            scan.valid_len <= len,
            "valid_len {} > {len}",
            scan.valid_len
        );
        assert!(scan.valid_len >= segment::HEADER_LEN as u64);
        match &scan.end {
            ScanEnd::Clean => assert_eq!(scan.valid_len, len, "clean end before the file end"),
            ScanEnd::TornTail { offset } => {
                assert_eq!(*offset, scan.valid_len);
                assert!(scan.valid_len < len);
            }
            ScanEnd::Corrupt(f) => {
                assert_eq!(f.offset, scan.valid_len);
                assert!(scan.valid_len < len);
            }
        }
        let mut count = 0u64;
        let mut expect_offset = segment::HEADER_LEN as u64;
        let mut expect_seq = scan.header.first_seq;
        for (offset, f) in segment::frames(data, scan.valid_len) {
            assert_eq!(offset, expect_offset, "frames() skipped bytes");
            assert_eq!(f.seq, expect_seq, "frames() out of sequence");
            assert!(!f.payload.is_empty() && f.payload.len() <= frame::PAYLOAD_LEN_MAX as usize);
            expect_offset += f.len_total() as u64;
            expect_seq = expect_seq.wrapping_add(1);
            count += 1;
            round_trip_payload(f.payload);
        }
        assert_eq!(count, scan.frame_count, "frames() disagrees with scan");
        assert_eq!(expect_offset, scan.valid_len, "frames() end != valid_len");
        assert_eq!(
            scan.last_seq,
            scan.header.first_seq.wrapping_add(count).wrapping_sub(1)
        );
    }
}

/// A payload that decodes re-encodes to bytes that decode to the same event, and encoding is
/// stable from then on.
fn round_trip_payload(payload: &[u8]) {
    let Ok(event) = decode_event(payload) else {
        return;
    };
    let mut once = Vec::new();
    encode_event(&event, &mut once);
    let again = decode_event(&once).expect("a re-encoded event must decode");
    // NaN filter values make an event unequal to itself; compare encodings in that case.
    #[allow(clippy::eq_op)]
    if event == event {
        assert_eq!(event, again);
    }
    let mut twice = Vec::new();
    encode_event(&again, &mut twice);
    assert_eq!(once, twice, "encoding is not stable");
}

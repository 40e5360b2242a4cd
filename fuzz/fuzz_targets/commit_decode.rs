//! Arbitrary bytes as a commit log, preallocated or not: `commit::scan` (newest and not) and
//! `commit::header_is_torn` must not panic, and the preallocation rule must hold:
//!
//! - every record lies inside `valid_len`, in order;
//! - in a preallocated log (header flag `FLAG_PREALLOCATED`), a clean end means only zeros
//!   follow `valid_len`, and extending a log with more zeros (what the writer's preallocation
//!   does) changes nothing: the same records, the same logical length, a clean end again when
//!   it was clean or the log had a zero tail already;
//! - in a log without the flag, zeros after the records are never a clean end.
//!
//! The first input byte picks the header's flags and how many zeros to append (so that the
//! fuzzer reaches zero tails without spelling them out); the rest is the file, its header
//! checksum recomputed when it is at least a header long.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reprise::format::commit::{self, FLAGS_OFFSET, HEADER_CRC_OFFSET, HEADER_LEN};
use reprise::format::segment::ScanEnd;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let mut file = rest.to_vec();
    if file.len() >= HEADER_LEN {
        let flags = u32::from(selector & 1) * commit::FLAG_PREALLOCATED;
        file[FLAGS_OFFSET..FLAGS_OFFSET + 4].copy_from_slice(&flags.to_le_bytes());
        let crc = crc32fast::hash(&file[..HEADER_CRC_OFFSET]);
        file[HEADER_CRC_OFFSET..HEADER_CRC_OFFSET + 4].copy_from_slice(&crc.to_le_bytes());
    }
    file.resize(file.len() + usize::from(selector >> 1) * 64, 0);
    let _ = commit::header_is_torn(&file);
    let Ok(scan) = commit::scan(&file, true) else {
        return;
    };
    let _ = commit::scan(&file, false);
    let mut last = 0;
    for &at in &scan.records {
        assert!(
            at >= last && at < scan.valid_len,
            "record outside the records"
        );
        last = at;
    }
    assert!(scan.valid_len <= file.len() as u64);
    let tail = &file[scan.valid_len as usize..];
    if scan.end == ScanEnd::Clean {
        if scan.preallocated {
            assert!(
                tail.iter().all(|b| *b == 0),
                "a clean end before non-zero bytes"
            );
        } else {
            assert!(
                tail.is_empty(),
                "a clean end before the end of a log not preallocated"
            );
        }
    }
    if scan.preallocated && tail.iter().all(|b| *b == 0) {
        assert_eq!(scan.end, ScanEnd::Clean, "a zero tail that is not the end");
        let mut longer = file.clone();
        longer.resize(file.len() + 4096, 0);
        let again = commit::scan(&longer, true).expect("the same header");
        assert_eq!(again.records, scan.records);
        assert_eq!(again.valid_len, scan.valid_len);
        assert_eq!(again.end, ScanEnd::Clean);
    }
});

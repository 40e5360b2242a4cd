//! Arbitrary bytes as a batch object of a writer's log (`reprise::remote::batch::decode`):
//! never a panic or an unbounded allocation, and a batch that decodes encodes back to the
//! same bytes.
//!
//! The input is checked twice: as given, and with its trailing CRC-32 recomputed, so that
//! mutations of counts, lengths, kinds and chunks get past the checksum and reach the bounds
//! checks and the chunk verification.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reprise::remote::batch;

fuzz_target!(|data: &[u8]| {
    check(data);
    if data.len() >= batch::TRAILER_LEN {
        let mut fixed = data.to_vec();
        let end = fixed.len() - batch::TRAILER_LEN;
        let crc = crc32fast::hash(&fixed[..end]);
        fixed[end..].copy_from_slice(&crc.to_le_bytes());
        if fixed != data {
            check(&fixed);
        }
    }
});

fn check(data: &[u8]) {
    if let Ok(b) = batch::decode(data) {
        let again =
            batch::encode(&b).expect("a batch a reader accepts is one the writer may store");
        assert_eq!(again, data, "decode then encode changes the bytes");
        for e in &b.entries {
            assert!(e.first <= e.last && e.first > 0);
        }
    }
}

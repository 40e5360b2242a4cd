//! Arbitrary bytes as a snapshot file: `snapshot::decode`, and for every snapshot that decodes,
//! `snapshot::encode` of its header and state decodes again to the same state.
//!
//! The input is checked twice: as given, and with the body length and both checksums
//! recomputed (`fix_snapshot_crcs`), so that mutated bodies reach zstd and the bincode state
//! decoder instead of stopping at the checksums.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reprise::format::{encode_state, snapshot};

fuzz_target!(|data: &[u8]| {
    check(data);
    let mut fixed = data.to_vec();
    reprise_fuzz::fix_snapshot_crcs(&mut fixed);
    if fixed != data {
        check(&fixed);
    }
});

fn check(data: &[u8]) {
    let header = snapshot::decode_header(data);
    let Ok((h, state)) = snapshot::decode(data, None) else {
        return;
    };
    assert_eq!(
        header,
        Ok(h),
        "decode accepted a header decode_header refuses"
    );
    assert!(h.state_len <= snapshot::STATE_LEN_MAX);
    assert_eq!(h.body_len, (data.len() - snapshot::HEADER_LEN) as u64);
    // The re-encoded state may be shorter or longer than `state_len` (bincode accepts
    // non-minimal variable-length integers; a track blob stored as text that is canonical
    // base64 is re-encoded as bytes), so only the decoded values are compared.
    let raw = encode_state(&state);
    let bytes = snapshot::encode(h.guild, h.seq, h.created_unix_ms, &state, None)
        .expect("zstd compression in memory");
    let (h2, state2) = snapshot::decode(&bytes, None).expect("a re-encoded snapshot must decode");
    assert_eq!(
        (h2.guild, h2.seq, h2.created_unix_ms, h2.state_len),
        (h.guild, h.seq, h.created_unix_ms, raw.len() as u64)
    );
    // NaN filter values make a state unequal to itself; the bincode bytes still must agree.
    #[allow(clippy::eq_op)]
    if state == state {
        assert_eq!(state, state2);
    }
    assert_eq!(
        raw,
        encode_state(&state2),
        "state bytes changed in the round trip"
    );
}

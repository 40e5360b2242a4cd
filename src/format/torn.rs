//! The torn-tail rule: bytes in, decision out. Used by the commit log scan
//! ([`super::commit::scan`]) and the segment scan ([`super::segment::scan`]) wherever a record
//! at the end of the valid prefix does not decode, and by both for a header that never became
//! durable.
//!
//! The fault model behind it (DESIGN.md, "Storage fault model"): a write that was not followed
//! by a successful sync may reach the disk in any subset of its 512-byte sectors, and a sector
//! that reached it holds the new bytes up to a write boundary (zeros after it); everything a
//! successful sync covered reads back as written, except that a read may return one flipped
//! bit (bit rot). So a zero sector with persisted data after it, a *hole*, can only lie after
//! the last successful sync, and everything after a hole is unacknowledged too (a sync that
//! covered it would have covered the hole).
//!
//! For the first record `r` at offset `c` that does not decode, in this order:
//!
//! | # | what the bytes show | decision |
//! |---|---|---|
//! | 1 | flipping one bit of `r` (its declared extent, or its length field) makes it valid, and that bit does not read as 0 inside zeros a torn write explains (zeros from it to `r`'s end that start at a sector boundary or at `r`'s start, or its whole sector share of `r`) | [`TailDecision::BitRot`]: damage, with the byte |
//! | 2 | every byte from `c` to the end of the file is zero | [`TailDecision::Torn`] |
//! | 3 | a hole: some sector's share of `r`'s extent is all zeros, with a non-zero byte after it in the file | [`TailDecision::Torn`] |
//! | 4 | no valid record starts anywhere after `c` | [`TailDecision::Torn`] |
//! | 5 | otherwise (a valid record follows, no hole) | [`TailDecision::Damage`] |
//!
//! `r`'s extent is `c .. c + header + length`, the length read from disk only once it is
//! within the format's bounds, and cut at the end of the file; a length out of bounds gives the
//! extent of the header alone. A sector's share is the intersection of the extent with one
//! aligned 512-byte sector (the first and last shares may be shorter).
//!
//! A header that never became durable ([`header_sector_is_zero`]): the file's first sector
//! (or the whole file when shorter) is all zeros. A successful sync of the file would have made
//! its header durable, so nothing in the file was acknowledged through it.

/// The sector size the rule assumes: the smallest unit a disk writes atomically.
pub const SECTOR_LEN: usize = 512;

/// The layout shared by log frames and commit records: a CRC-32 at offset 0 over the bytes
/// from offset 4 to the end of the record, a little-endian `u32` length at offset 4, and a
/// record of `header_len + length` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// Bytes before the variable part.
    pub header_len: usize,
    /// Smallest valid length field.
    pub len_min: u32,
    /// Largest valid length field.
    pub len_max: u32,
}

const LEN_AT: usize = 4;
const CRC_COVERS_FROM: usize = 4;

impl Shape {
    /// The record length the length field at the start of `rest` declares, when it is within
    /// bounds (it may still run past the end of `rest`).
    fn declared(&self, rest: &[u8]) -> Option<usize> {
        let len = super::read_u32(rest, LEN_AT);
        (rest.len() >= LEN_AT + 4 && len >= self.len_min && len <= self.len_max)
            .then(|| self.header_len + len as usize)
    }
}

/// What the undecodable record at the end of a file's valid prefix is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TailDecision {
    /// A torn write: cut the file here; nothing acknowledged is lost.
    Torn,
    /// One flipped bit in bytes that were once valid (rows 1): damage at `byte` (a file
    /// offset), bit `bit`.
    BitRot {
        /// File offset of the flipped byte.
        byte: u64,
        /// Which bit of it (0 = least significant).
        bit: u8,
    },
    /// Damage that is not a torn write (row 5).
    Damage,
}

/// Decides what the record at `cut` of `file` is, given that it does not decode (see the
/// module docs for the rule). `valid` says whether a valid record (in every respect the
/// caller checks: checksums, bounds, sequence numbers) starts at the start of a byte slice;
/// `nothing_valid_after` whether no valid record starts anywhere in a slice after its first
/// byte.
pub fn classify_tail(
    file: &[u8],
    cut: usize,
    shape: Shape,
    valid: impl Fn(&[u8]) -> bool,
    nothing_valid_after: impl Fn(&[u8]) -> bool,
) -> TailDecision {
    let rest = file.get(cut..).unwrap_or(&[]);
    if let Some((at, bit)) = single_bit_repair(rest, shape, &valid) {
        if !zeros_explain(file, cut, shape, cut + at) {
            return TailDecision::BitRot {
                byte: (cut + at) as u64,
                bit,
            };
        }
    }
    if rest.iter().all(|b| *b == 0) || has_hole(file, cut, shape) || nothing_valid_after(rest) {
        TailDecision::Torn
    } else {
        TailDecision::Damage
    }
}

/// Whether the byte at `at`, inside the record at `cut`, reads as zero within zeros that a
/// torn write explains: zeros from it to the end of the record's extent that start at a sector
/// boundary or at the record's start (a zero fill: a record is written by one append, so a
/// torn write cannot stop inside the bytes it put in one sector), or its whole sector share of
/// the record (a hole). A one-bit difference there is as well explained by a torn write of a
/// record whose bytes there were nearly all zero (row 1's exception). Zeros that start inside
/// a sector's share of the record are not: a bit that reads as 0 there is bit rot.
fn zeros_explain(file: &[u8], cut: usize, shape: Shape, at: usize) -> bool {
    let Some(rest) = file.get(cut..).filter(|r| !r.is_empty()) else {
        return false;
    };
    let end = cut + extent(rest, shape);
    // A flip in the checksum or length field is bit rot: a zero there leaves no length.
    if at < cut + LEN_AT + 4 || at >= end || file[at] != 0 {
        return false;
    }
    let share_start = (at / SECTOR_LEN * SECTOR_LEN).max(cut);
    let share_end = ((at / SECTOR_LEN + 1) * SECTOR_LEN).min(end);
    let mut fill_start = at;
    while fill_start > cut && file[fill_start - 1] == 0 {
        fill_start -= 1;
    }
    let fill = file[at..end].iter().all(|b| *b == 0)
        && (fill_start == cut || fill_start.is_multiple_of(SECTOR_LEN));
    fill || file[share_start..share_end].iter().all(|b| *b == 0)
}

/// The extent of the record at the start of `rest`: its declared length when within bounds,
/// else its header, cut at the end of `rest`.
fn extent(rest: &[u8], shape: Shape) -> usize {
    shape
        .declared(rest)
        .unwrap_or(shape.header_len)
        .min(rest.len())
}

/// Whether some sector's share of the extent of the record at `cut` is all zeros (row 3).
pub fn has_hole(file: &[u8], cut: usize, shape: Shape) -> bool {
    let Some(rest) = file.get(cut..).filter(|r| !r.is_empty()) else {
        return false;
    };
    // A hole is a zero sector with persisted bytes after it: zeros after the last non-zero
    // byte of the file are its unwritten end (a preallocated extension, or a size that
    // reached the disk before the data), never a hole. Without this cut, a record whose
    // length field was damaged would reach into a preallocated log's zeros and take its
    // damage for a hole, dropping the valid records after it.
    let data_end = file.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
    let end = (cut + extent(rest, shape)).min(data_end);
    let mut start = cut;
    while start < end {
        let share_end = ((start / SECTOR_LEN + 1) * SECTOR_LEN).min(end);
        if file[start..share_end].iter().all(|b| *b == 0) {
            return true;
        }
        start = share_end;
    }
    false
}

/// Whether the file's first sector (all of it when shorter) is zeros: its header never became
/// durable. False for an empty file (the caller's header rules cover it).
pub fn header_sector_is_zero(bytes: &[u8]) -> bool {
    !bytes.is_empty() && bytes[..bytes.len().min(SECTOR_LEN)].iter().all(|b| *b == 0)
}

/// The byte (offset in `rest`) and bit whose flip makes the record at the start of `rest`
/// valid, if one does (row 1): a flip in the length field is tried for each of its 32 bits;
/// any other flip is located from the CRC syndrome in time linear in the record's length.
pub fn single_bit_repair(
    rest: &[u8],
    shape: Shape,
    valid: impl Fn(&[u8]) -> bool,
) -> Option<(usize, u8)> {
    if rest.len() < shape.header_len {
        return None;
    }
    let flipped = |total: usize, byte: usize, bit: u8| {
        let mut copy = rest[..total].to_vec();
        copy[byte] ^= 1 << bit;
        valid(&copy)
    };
    // The length field: each of its bits, with the extent it then declares.
    for b in 0..32u8 {
        let (byte, bit) = (LEN_AT + usize::from(b / 8), b % 8);
        let mut probe = rest[..LEN_AT + 4].to_vec();
        probe[byte] ^= 1 << bit;
        if let Some(total) = shape.declared(&probe).filter(|t| *t <= rest.len()) {
            if flipped(total, byte, bit) {
                return Some((byte, bit));
            }
        }
    }
    let total = shape.declared(rest).filter(|t| *t <= rest.len())?;
    let rec = &rest[..total];
    let stored = super::read_u32(rec, 0);
    let syndrome = stored ^ crc32fast::hash(&rec[CRC_COVERS_FROM..]);
    if syndrome == 0 {
        return None;
    }
    if syndrome.count_ones() == 1 {
        // The flip is in the stored checksum itself.
        let b = syndrome.trailing_zeros() as u8;
        let (byte, bit) = (usize::from(b / 8), b % 8);
        return flipped(total, byte, bit).then_some((byte, bit));
    }
    let covered = total - CRC_COVERS_FROM;
    let mut s = syndrome;
    for k in 0..covered {
        if let Some(bit) = (0..8u8).find(|b| TABLE[1usize << b] == s) {
            let byte = CRC_COVERS_FROM + covered - 1 - k;
            return flipped(total, byte, bit).then_some((byte, bit));
        }
        s = zero_byte_inverse(s);
    }
    None
}

/// The reflected CRC-32 (IEEE) table: `TABLE[j]` is the register after feeding byte `j` to a
/// zero register (the linear part of `crc32fast::hash`).
const TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut j = 0;
    while j < 256 {
        let mut c = j as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xEDB8_8320
            } else {
                c >> 1
            };
            k += 1;
        }
        t[j] = c;
        j += 1;
    }
    t
};

/// `INV_TOP[t]` is the `j` whose `TABLE[j]` has top byte `t` (a bijection for CRC-32).
const INV_TOP: [u8; 256] = {
    let mut inv = [0u8; 256];
    let mut j = 0;
    while j < 256 {
        inv[(TABLE[j] >> 24) as usize] = j as u8;
        j += 1;
    }
    inv
};

/// The register before a zero byte was fed, given the register after it. Feeding a zero byte
/// maps `x` to `TABLE[x & 0xff] ^ (x >> 8)`, whose top byte is `TABLE[x & 0xff]`'s.
fn zero_byte_inverse(y: u32) -> u32 {
    let j = INV_TOP[(y >> 24) as usize];
    ((y ^ TABLE[usize::from(j)]) << 8) | u32::from(j)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A toy record of the shared shape: crc, len, then `len` bytes of which the first must not
    /// be 0xEE (so that "valid" can fail with a good checksum too).
    const TOY: Shape = Shape {
        header_len: 8,
        len_min: 1,
        len_max: 4096,
    };

    fn toy(payload: &[u8]) -> Vec<u8> {
        let mut r = vec![0u8; 8];
        r[4..8].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        r.extend_from_slice(payload);
        let crc = crc32fast::hash(&r[4..]);
        r[..4].copy_from_slice(&crc.to_le_bytes());
        r
    }

    fn toy_valid(b: &[u8]) -> bool {
        let Some(total) = TOY.declared(b).filter(|t| *t <= b.len()) else {
            return false;
        };
        super::super::read_u32(b, 0) == crc32fast::hash(&b[4..total]) && b[8] != 0xEE
    }

    fn toy_len(b: &[u8]) -> usize {
        TOY.declared(b).unwrap_or(0)
    }

    fn toy_nothing_after(rest: &[u8]) -> bool {
        (1..rest.len()).all(|k| !toy_valid(&rest[k..]))
    }

    fn payload(n: usize, seed: u8) -> Vec<u8> {
        (0..n)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) | 1)
            .collect()
    }

    /// A file: a `prefix`-byte header, then records of the given payload sizes; the record
    /// offsets.
    fn file(prefix: usize, sizes: &[usize]) -> (Vec<u8>, Vec<usize>) {
        let mut f = vec![0x5A; prefix];
        let mut at = Vec::new();
        for (i, n) in sizes.iter().enumerate() {
            at.push(f.len());
            f.extend(toy(&payload(*n, i as u8)));
        }
        (f, at)
    }

    fn decide(f: &[u8], cut: usize) -> TailDecision {
        classify_tail(f, cut, TOY, toy_valid, toy_nothing_after)
    }

    #[test]
    fn the_table_is_crc32fast_s_linear_part() {
        // crc(a) ^ crc(b) == lin(a ^ b) for equal lengths; lin of one byte j is TABLE[j].
        for (j, &entry) in TABLE.iter().enumerate() {
            let a = [j as u8, 0, 0];
            let z = [0u8; 3];
            let mut lin = entry;
            for _ in 0..2 {
                lin = TABLE[(lin & 0xff) as usize] ^ (lin >> 8);
            }
            assert_eq!(crc32fast::hash(&a) ^ crc32fast::hash(&z), lin);
            assert_eq!(
                zero_byte_inverse(TABLE[(lin & 0xff) as usize] ^ (lin >> 8)),
                lin
            );
        }
    }

    /// Every single-bit flip of every byte of records of several sizes (the stored checksum, the
    /// length field, the covered bytes) is found, at the right byte and bit, and classified as
    /// bit rot whether or not records follow.
    #[test]
    fn every_single_bit_flip_is_bit_rot() {
        for n in [1usize, 2, 7, 60, 511, 700] {
            let (f, at) = file(48, &[5, n, 9]);
            for follows in [true, false] {
                let (r, end) = (if follows { at[1] } else { at[2] }, f.len());
                let len = toy_len(&f[r..]);
                for byte in r..end.min(r + len) {
                    for bit in 0..8u8 {
                        let mut bad = f.clone();
                        bad[byte] ^= 1 << bit;
                        // A last byte that reads as 0 is as well a zero-filled torn write,
                        // when the zeros start where a torn write can stop.
                        let mut fill = byte;
                        while fill > r && bad[fill - 1] == 0 {
                            fill -= 1;
                        }
                        let torn_fill = bad[byte..r + len].iter().all(|b| *b == 0)
                            && (fill == r || fill.is_multiple_of(SECTOR_LEN));
                        let expected = if torn_fill {
                            if follows {
                                TailDecision::Damage
                            } else {
                                TailDecision::Torn
                            }
                        } else {
                            TailDecision::BitRot {
                                byte: byte as u64,
                                bit,
                            }
                        };
                        assert_eq!(
                            decide(&bad, r),
                            expected,
                            "n {n} follows {follows} byte {byte} bit {bit}"
                        );
                    }
                }
            }
        }
    }

    /// A torn write whose zero fill (from a sector boundary) differs from the record it cut by
    /// one bit (the record's last nonzero byte had one bit set) is torn, not bit rot (found by
    /// the crash simulation).
    #[test]
    fn a_zero_fill_one_bit_away_from_the_record_is_torn() {
        let mut p = payload(40, 3);
        p[20] = 0x01;
        p[21..].fill(0);
        // The record's payload byte 20 starts a sector.
        let mut f = vec![0x5A; SECTOR_LEN - 8 - 20];
        let r = f.len();
        f.extend(toy(&p));
        let mut torn = f.clone();
        torn[r + 8 + 20] = 0;
        torn.extend([0u8; 100]);
        assert_eq!(decide(&torn, r), TailDecision::Torn);
        // The same kind of flip where a nonzero byte follows it is bit rot.
        let mut rot = f.clone();
        rot[r + 8 + 19] ^= 0x10;
        assert_eq!(
            decide(&rot, r),
            TailDecision::BitRot {
                byte: (r + 8 + 19) as u64,
                bit: 4
            }
        );
    }

    /// One bit of a synced final record's last nonzero byte read as 0, inside a sector: a torn
    /// write cannot stop there (one append wrote the record, a disk writes whole sectors), so
    /// it is bit rot, not a zero-filled torn tail (found by `bit_rot_is_reported_or_harmless`
    /// with `REPRISE_EXHAUSTIVE=1`: the acknowledged last event of an active segment whose
    /// commit log a retirement had dropped was cut as a torn tail, a silent loss).
    #[test]
    fn regression_bit_rot_to_zero_inside_a_sector_of_a_final_record_is_bit_rot() {
        let mut p = payload(40, 3);
        p[20] = 0x04;
        p[21..].fill(0);
        let mut f = vec![0x5A; 48];
        let r = f.len();
        f.extend(toy(&p));
        let mut rot = f.clone();
        rot[r + 8 + 20] = 0;
        assert_eq!(
            decide(&rot, r),
            TailDecision::BitRot {
                byte: (r + 8 + 20) as u64,
                bit: 2
            }
        );
        // The last byte of the record itself, as in the simulation.
        let mut p = payload(40, 5);
        p[39] = 0x04;
        let mut f = vec![0x5A; 48];
        f.extend(toy(&p));
        let last = f.len() - 1;
        f[last] = 0;
        assert_eq!(
            decide(&f, r),
            TailDecision::BitRot {
                byte: last as u64,
                bit: 2
            }
        );
    }

    /// A record with a good checksum that the caller refuses is not bit rot: damage when a
    /// valid record follows, torn otherwise.
    #[test]
    fn a_refused_record_with_a_good_checksum_is_not_bit_rot() {
        let mut f = vec![0x5A; 48];
        let r = f.len();
        f.extend(toy(&[0xEE, 1, 2]));
        assert_eq!(decide(&f, r), TailDecision::Torn);
        f.extend(toy(&[1, 2, 3]));
        assert_eq!(decide(&f, r), TailDecision::Damage);
    }

    /// Every prefix cut of the last record, with zeros or nothing after: torn.
    #[test]
    fn every_cut_of_the_last_record_is_torn() {
        let (f, at) = file(48, &[30, 600]);
        let r = at[1];
        for cut in r..f.len() {
            for zeros in [0usize, 1, 600] {
                let mut t = f[..cut].to_vec();
                t.resize(cut + zeros, 0);
                if t.len() == r {
                    continue;
                }
                assert_eq!(decide(&t, r), TailDecision::Torn, "cut {cut} zeros {zeros}");
            }
        }
    }

    /// The write of records `first..` after the last sync reaches the disk in any subset of its
    /// sectors (a sector persisted holds its bytes up to a record boundary, zeros after): every
    /// such image whose first record does not decode is torn at that record, even when
    /// complete records persisted after the hole. Exhaustive over the subsets of up to 8
    /// sectors and every write-boundary cut of a partly persisted sector, for several layouts.
    #[test]
    fn every_holed_unsynced_write_is_torn() {
        let mut images = 0u64;
        for (prefix, sizes) in [
            (
                48usize,
                vec![20usize, 40, 100, 30, 700, 12, 300, 5, 64, 200],
            ),
            (500, vec![3, 9, 1000, 17, 40, 40, 40, 40, 40]),
            (1000, vec![600, 1, 1, 1, 1, 1, 1, 1, 1, 900]),
        ] {
            let (f, at) = file(prefix, &sizes);
            for synced_records in [0usize, 1, 3] {
                let synced = at[synced_records];
                let first_sector = synced / SECTOR_LEN;
                let last_sector = (f.len() - 1) / SECTOR_LEN;
                let sectors = (last_sector - first_sector + 1).min(8);
                for mask in 0u32..(1 << sectors) {
                    // Sector i of the write persists fully when its bit is set; the first one
                    // not persisted is also tried cut at each record boundary inside it.
                    let mut img = f.clone();
                    for i in 0..=last_sector - first_sector {
                        let persisted = i < sectors && mask & (1 << i) != 0;
                        if !persisted {
                            let s = ((first_sector + i) * SECTOR_LEN).max(synced);
                            let e = ((first_sector + i + 1) * SECTOR_LEN).min(f.len());
                            img[s..e].fill(0);
                        }
                    }
                    let mut variants = vec![img.clone()];
                    for &b in at.iter().filter(|b| **b > synced) {
                        let s = b / SECTOR_LEN;
                        if s >= first_sector && s - first_sector < sectors {
                            let mut v = img.clone();
                            let e = ((s + 1) * SECTOR_LEN).min(f.len());
                            if v[b..e].iter().any(|x| *x != 0) {
                                v[b..e].fill(0);
                                variants.push(v);
                            }
                        }
                    }
                    for v in variants {
                        images += 1;
                        let Some(&cut) = at.iter().find(|&&r| !toy_valid(&v[r..])) else {
                            continue;
                        };
                        assert!(cut >= synced, "a synced record was damaged");
                        assert_eq!(decide(&v, cut), TailDecision::Torn, "cut {cut}");
                    }
                }
            }
        }
        assert!(images > 600, "{images}");
    }

    /// Damage in the middle of the log that is neither one flipped bit nor a zero sector share
    /// is damage when a valid record follows.
    #[test]
    fn multi_byte_damage_before_a_valid_record_is_damage() {
        let (f, at) = file(48, &[40, 40, 40]);
        let mut bad = f.clone();
        for b in &mut bad[at[1] + 10..at[1] + 14] {
            *b ^= 0x5C;
        }
        assert_eq!(decide(&bad, at[1]), TailDecision::Damage);
    }

    #[test]
    fn header_sector_rule() {
        assert!(!header_sector_is_zero(&[]));
        assert!(header_sector_is_zero(&[0; 10]));
        let mut f = vec![0u8; 2000];
        f[600] = 1;
        assert!(header_sector_is_zero(&f));
        f[511] = 1;
        assert!(!header_sector_is_zero(&f));
    }

    #[test]
    fn lengths_from_disk_are_bounded() {
        let mut f = vec![0x5A; 48];
        let r = f.len();
        f.extend([1, 2, 3, 4, 0xFF, 0xFF, 0xFF, 0xFF, 9, 9]);
        // A huge length: the extent is the header alone; nothing valid follows: torn.
        assert_eq!(decide(&f, r), TailDecision::Torn);
        assert_eq!(single_bit_repair(&f[r..], TOY, toy_valid), None);
    }
}

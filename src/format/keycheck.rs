//! The key check file (`DIR/KEYCHECK`): present exactly when the journal is encrypted, it
//! names the journal's current key and proves it, so that opening the journal without the key,
//! or with another key, fails at once with a clear error instead of at the first file read.
//!
//! ```text
//! offset size field
//!      0    8 magic     b"REPRKEY\0"
//!      8    2 version   FORMAT_VERSION (1)
//!     10    2 reserved  zero
//!     12    4 key_id    the journal's current key (never 0)
//!     16   24 nonce     }  an empty message sealed under key_id with the associated data
//!     40   16 tag       }  crypto::keycheck_ad(key_id): only that key opens it
//!     56    4 reserved  zero
//!     60    4 crc       CRC-32 of bytes 0..60
//! ```

use crate::crypto::{self, KeyId, Keyring, OpenFault, NONCE_LEN, SEAL_OVERHEAD};
use crate::error::CorruptionKind;
use crate::format::{check_header, put, put_header_crc, put_header_start, read_u32, Fault};

/// Magic bytes of the key check file.
pub const MAGIC: [u8; 8] = *b"REPRKEY\0";
/// Offset of the key id.
pub const KEY_ID_OFFSET: usize = MAGIC.len() + 2 + 2;
/// Offset of the sealed empty message (nonce and tag).
pub const SEALED_OFFSET: usize = KEY_ID_OFFSET + 4;
/// Offset of the checksum.
pub const CRC_OFFSET: usize = SEALED_OFFSET + SEAL_OVERHEAD + 4;
/// Length of the file.
pub const FILE_LEN: usize = CRC_OFFSET + 4;

const _: () = assert!(FILE_LEN == 64);
const _: () = assert!(SEALED_OFFSET == 16);

/// The key check file for the keyring's current key.
pub fn encode(keys: &Keyring) -> [u8; FILE_LEN] {
    let id = keys.current();
    let mut sealed = vec![0u8; NONCE_LEN];
    keys.seal_in_place(&mut sealed, 0, keys.next_nonce(), &crypto::keycheck_ad(id));
    let mut b = [0u8; FILE_LEN];
    put_header_start(&mut b, &MAGIC);
    put(&mut b, KEY_ID_OFFSET, &id.0.to_le_bytes());
    put(&mut b, SEALED_OFFSET, &sealed);
    put_header_crc(&mut b, CRC_OFFSET);
    b
}

/// The key id a key check file names (checksum and magic verified, key not yet proven).
///
/// # Errors
/// A [`Fault`] when the bytes are not a key check file.
pub fn decode(bytes: &[u8]) -> Result<KeyId, Fault> {
    check_header(bytes, &MAGIC, FILE_LEN, CRC_OFFSET)?;
    if bytes.len() != FILE_LEN {
        return Err(Fault::new(FILE_LEN as u64, CorruptionKind::FileTooLarge)
            .values(FILE_LEN as u64, bytes.len() as u64));
    }
    Ok(KeyId(read_u32(bytes, KEY_ID_OFFSET)))
}

/// Proves that `keys` holds the key a (decoded) key check file names.
///
/// # Errors
/// [`OpenFault::KeyUnknown`] when the keyring has no key of that id,
/// [`OpenFault::Authentication`] when its key of that id is not the one that wrote the file.
pub(crate) fn prove(bytes: &[u8], keys: &Keyring) -> Result<(), OpenFault> {
    let id = KeyId(read_u32(bytes, KEY_ID_OFFSET));
    let sealed = bytes
        .get(SEALED_OFFSET..SEALED_OFFSET + SEAL_OVERHEAD)
        .ok_or(OpenFault::Short)?;
    keys.open(id, sealed, &crypto::keycheck_ad(id), &mut Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Key;

    #[test]
    fn only_the_named_key_proves_the_file() {
        let k1 = Key::from_bytes([1; 32]);
        let ring = Keyring::new(k1.clone(), []).unwrap();
        let b = encode(&ring);
        assert_eq!(decode(&b).unwrap(), k1.id());
        prove(&b, &ring).unwrap();
        let other = Keyring::new(Key::from_bytes([2; 32]), []).unwrap();
        assert_eq!(prove(&b, &other), Err(OpenFault::KeyUnknown));
        let rotated = Keyring::new(Key::from_bytes([2; 32]), [k1]).unwrap();
        prove(&b, &rotated).unwrap();
        for i in 0..b.len() {
            let mut bad = b;
            bad[i] ^= 4;
            assert!(
                decode(&bad).is_err() || prove(&bad, &ring).is_err(),
                "flip {i}"
            );
        }
    }
}

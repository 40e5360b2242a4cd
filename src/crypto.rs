//! Encryption at rest: keys, key ids and the AEAD that seals log records and snapshots.
//!
//! The cipher is XChaCha20-Poly1305 (RustCrypto `chacha20poly1305`): a 256-bit key, a 192-bit
//! nonce and a 128-bit tag. Every sealed message stores its own nonce in front of the
//! ciphertext:
//!
//! ```text
//! offset size field
//!      0   24 nonce       this process's random 16-byte prefix ‖ a 64-bit message counter
//!     24    n ciphertext  same length as the plaintext
//!   24+n   16 tag         Poly1305 tag over the ciphertext and the associated data
//! ```
//!
//! Nonces never repeat under one key: each [`Keyring`] draws a fresh 128-bit prefix from the
//! operating system's random source and counts messages behind it, so two processes (or two
//! keyrings) collide only if their random prefixes do (2^-128 per pair). Storing the nonce in
//! each record, rather than deriving it from a per-file base and the sequence number, keeps a
//! record self-contained: the commit log mirrors guild frames byte for byte, recovery moves
//! frames between files, and a sequence number can be written twice after a crash cut an
//! unacknowledged tail — none of which can make a nonce repeat.
//!
//! The associated data binds a message to where it belongs (`frame_ad`, `snapshot_ad`):
//! the kind of file, the guild and the sequence number, so a record cannot be moved to another
//! guild, another position or another kind of file without failing authentication.
//!
//! A key is identified on disk by its [`KeyId`] (32 bits of SHA-256 over a domain tag and the
//! key), stored in every file header (0 = not encrypted). Readers pick the key by id, which is
//! what makes key rotation work: new files are sealed with the current key, old files are read
//! with the previous keys until compaction and retention have rewritten them.

use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{KeyInit, Tag, XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// Length of a key in bytes.
pub const KEY_LEN: usize = 32;
/// Length of the nonce stored in front of every sealed message.
pub(crate) const NONCE_LEN: usize = 24;
/// Length of the authentication tag stored after every sealed message.
pub(crate) const TAG_LEN: usize = 16;
/// Bytes sealing adds to a message (nonce and tag).
pub(crate) const SEAL_OVERHEAD: usize = NONCE_LEN + TAG_LEN;

const _: () = assert!(SEAL_OVERHEAD == 40);

/// Identifies a key on disk: the first 4 bytes of SHA-256("reprise key id v1" ‖ key), never 0
/// (0 marks a file that is not encrypted).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub u32);

impl KeyId {
    /// The id written in the headers of files that are not encrypted.
    pub const PLAINTEXT: KeyId = KeyId(0);

    /// Whether this id marks an unencrypted file.
    pub fn is_plaintext(self) -> bool {
        self == KeyId::PLAINTEXT
    }
}

impl From<u32> for KeyId {
    /// The key id as written in a file header (see `reprise inspect`).
    fn from(id: u32) -> KeyId {
        KeyId(id)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

/// A 256-bit encryption key. Its bytes are wiped from memory when it is dropped and never
/// printed (`Debug` shows only the [`KeyId`]).
#[derive(Clone)]
pub struct Key {
    bytes: Zeroizing<[u8; KEY_LEN]>,
}

impl Key {
    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Key {
        Key {
            bytes: Zeroizing::new(bytes),
        }
    }

    /// A new random key from the operating system's random source.
    ///
    /// # Errors
    /// The random source failed.
    pub fn generate() -> std::io::Result<Key> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        getrandom::fill(bytes.as_mut()).map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(Key { bytes })
    }

    /// Parses the contents of a key file: exactly 32 raw bytes, or 64 hexadecimal digits
    /// (optionally followed by a newline, as `openssl rand -hex 32` writes them).
    ///
    /// # Errors
    /// A message saying why the contents are not a key.
    pub fn parse(contents: &[u8]) -> Result<Key, String> {
        if contents.len() == KEY_LEN {
            let mut bytes = [0u8; KEY_LEN];
            bytes.copy_from_slice(contents);
            return Ok(Key::from_bytes(bytes));
        }
        let text = contents
            .strip_suffix(b"\n")
            .map(|t| t.strip_suffix(b"\r").unwrap_or(t))
            .unwrap_or(contents);
        if text.len() == 2 * KEY_LEN && text.iter().all(u8::is_ascii_hexdigit) {
            let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
            for (i, pair) in text.chunks_exact(2).enumerate() {
                bytes[i] = (hex_digit(pair[0]) << 4) | hex_digit(pair[1]);
            }
            return Ok(Key { bytes });
        }
        Err(format!(
            "a key file holds exactly {KEY_LEN} bytes (or {} hexadecimal digits); this one has {} bytes",
            2 * KEY_LEN,
            contents.len()
        ))
    }

    /// Reads a key file (see [`Key::parse`]).
    ///
    /// # Errors
    /// [`crate::Error::Io`] when the file cannot be read, [`crate::Error::KeyInvalid`] when its
    /// contents are not a key.
    pub fn from_file(path: impl AsRef<Path>) -> crate::Result<Key> {
        let path = path.as_ref();
        // A key file larger than a hex key plus a line ending is not a key: bound the read.
        let contents = read_bounded(path, 2 * KEY_LEN as u64 + 2)
            .map_err(|e| crate::Error::io("read key file", path, e))?;
        let contents = Zeroizing::new(contents);
        Key::parse(&contents).map_err(|detail| crate::Error::KeyInvalid {
            path: path.to_path_buf(),
            detail,
        })
    }

    /// The key's on-disk identifier.
    pub fn id(&self) -> KeyId {
        let mut h = Sha256::new();
        h.update(b"reprise key id v1");
        h.update(self.bytes.as_ref());
        let d = h.finalize();
        let id = u32::from_le_bytes([d[0], d[1], d[2], d[3]]);
        KeyId(id.max(1))
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({})", self.id())
    }
}

fn hex_digit(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        _ => c - b'A' + 10,
    }
}

fn read_bounded(path: &Path, len_max: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    std::fs::File::open(path)?
        .take(len_max + 1)
        .read_to_end(&mut out)?;
    Ok(out)
}

/// The keys a journal uses: the current key, which seals everything written, and previous
/// keys, which only open files written before a rotation.
///
/// Cloning is cheap and clones share the nonce counter.
#[derive(Clone)]
pub struct Keyring {
    inner: Arc<KeyringInner>,
}

struct KeyringInner {
    current: KeyId,
    keys: Vec<(KeyId, XChaCha20Poly1305)>,
    nonce_prefix: [u8; 16],
    nonce_counter: AtomicU64,
}

impl Keyring {
    /// A keyring sealing with `current` and opening files sealed with `current` or any of
    /// `previous`.
    ///
    /// # Errors
    /// The operating system's random source failed (the nonce prefix comes from it).
    pub fn new(current: Key, previous: impl IntoIterator<Item = Key>) -> std::io::Result<Keyring> {
        let mut nonce_prefix = [0u8; 16];
        getrandom::fill(&mut nonce_prefix).map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(Keyring::with_prefix(current, previous, nonce_prefix))
    }

    /// [`Keyring::new`] with a given nonce prefix instead of a random one, so that a
    /// deterministic simulation writes the same bytes on every run. A prefix must never be
    /// used twice with the same key outside such a simulation: use [`Keyring::new`].
    #[cfg(any(test, feature = "testing"))]
    #[doc(hidden)]
    pub fn with_nonce_prefix(
        current: Key,
        previous: impl IntoIterator<Item = Key>,
        nonce_prefix: [u8; 16],
    ) -> Keyring {
        Keyring::with_prefix(current, previous, nonce_prefix)
    }

    /// The keyring of `current` and `previous` with the given nonce prefix.
    fn with_prefix(
        current: Key,
        previous: impl IntoIterator<Item = Key>,
        nonce_prefix: [u8; 16],
    ) -> Keyring {
        let mut keys = vec![(current.id(), cipher_of(&current))];
        for k in previous {
            let id = k.id();
            if keys.iter().all(|(have, _)| *have != id) {
                keys.push((id, cipher_of(&k)));
            }
        }
        Keyring {
            inner: Arc::new(KeyringInner {
                current: current.id(),
                keys,
                nonce_prefix,
                nonce_counter: AtomicU64::new(0),
            }),
        }
    }

    /// The id of the key that seals new files.
    pub fn current(&self) -> KeyId {
        self.inner.current
    }

    /// Every key id this keyring can open, the current one first.
    pub fn ids(&self) -> Vec<KeyId> {
        self.inner.keys.iter().map(|(id, _)| *id).collect()
    }

    /// Whether files sealed under `id` can be opened.
    pub fn has(&self, id: KeyId) -> bool {
        self.cipher(id).is_some()
    }

    fn cipher(&self, id: KeyId) -> Option<&XChaCha20Poly1305> {
        self.inner
            .keys
            .iter()
            .find(|(have, _)| *have == id)
            .map(|(_, c)| c)
    }

    /// A nonce never returned before by this keyring (or, but for a 2^-128 chance, by any
    /// other).
    pub(crate) fn next_nonce(&self) -> [u8; NONCE_LEN] {
        let n = self.inner.nonce_counter.fetch_add(1, Ordering::Relaxed);
        let mut nonce = [0u8; NONCE_LEN];
        nonce[..16].copy_from_slice(&self.inner.nonce_prefix);
        nonce[16..].copy_from_slice(&n.to_le_bytes());
        nonce
    }

    /// Seals `buf[at + NONCE_LEN..]` in place under the current key: writes `nonce` into
    /// `buf[at..at + NONCE_LEN]` (which the caller reserved) and appends the tag.
    pub(crate) fn seal_in_place(
        &self,
        buf: &mut Vec<u8>,
        at: usize,
        nonce: [u8; NONCE_LEN],
        ad: &[u8],
    ) {
        let cipher = match self.cipher(self.inner.current) {
            Some(c) => c,
            None => unreachable!("the current key is always in the keyring"),
        };
        buf[at..at + NONCE_LEN].copy_from_slice(&nonce);
        let tag = match cipher.encrypt_in_place_detached(
            XNonce::from_slice(&nonce),
            ad,
            &mut buf[at + NONCE_LEN..],
        ) {
            Ok(t) => t,
            // Only messages longer than 256 GiB are refused, far above every length bound.
            Err(_) => unreachable!("message within the cipher's length limit"),
        };
        buf.extend_from_slice(&tag);
    }

    /// Opens a sealed message (nonce ‖ ciphertext ‖ tag) written under `id`, appending the
    /// plaintext to `out` (cleared first).
    ///
    /// # Errors
    /// [`OpenFault::KeyUnknown`] when `id` is not in the keyring, [`OpenFault::Short`] when the
    /// message cannot hold a nonce and a tag, [`OpenFault::Authentication`] when the tag does not
    /// verify (the bytes or the associated data changed).
    pub(crate) fn open(
        &self,
        id: KeyId,
        sealed: &[u8],
        ad: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), OpenFault> {
        let cipher = self.cipher(id).ok_or(OpenFault::KeyUnknown)?;
        if sealed.len() < SEAL_OVERHEAD {
            return Err(OpenFault::Short);
        }
        let (nonce, rest) = sealed.split_at(NONCE_LEN);
        let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
        out.clear();
        out.extend_from_slice(ciphertext);
        cipher
            .decrypt_in_place_detached(XNonce::from_slice(nonce), ad, out, Tag::from_slice(tag))
            .map_err(|_| {
                out.clear();
                OpenFault::Authentication
            })
    }
}

/// Fails unless data sealed under `key_id` (at `path`: a file or an object key) can be opened
/// with `keys`: plaintext always can; sealed data needs its key among them.
///
/// # Errors
/// [`crate::Error::KeyMismatch`] naming `path`, the key needed and the keys given.
pub(crate) fn require_key(
    keys: Option<&Keyring>,
    key_id: KeyId,
    path: impl Into<std::path::PathBuf>,
) -> crate::Result<()> {
    if key_id.is_plaintext() || keys.is_some_and(|k| k.has(key_id)) {
        return Ok(());
    }
    Err(key_mismatch(keys, key_id, path))
}

/// The [`crate::Error::KeyMismatch`] for data at `path` that needs `key_id`, given `keys`.
pub(crate) fn key_mismatch(
    keys: Option<&Keyring>,
    key_id: KeyId,
    path: impl Into<std::path::PathBuf>,
) -> crate::Error {
    crate::Error::KeyMismatch {
        path: path.into(),
        key_id,
        given: keys.map(Keyring::ids).unwrap_or_default(),
    }
}

/// Keyrings are equal when they hold the same keys (by id) with the same current key.
impl PartialEq for Keyring {
    fn eq(&self, other: &Keyring) -> bool {
        self.ids() == other.ids()
    }
}

impl Eq for Keyring {}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("current", &self.inner.current)
            .field("ids", &self.ids())
            .finish_non_exhaustive()
    }
}

fn cipher_of(key: &Key) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(key.bytes.as_ref()))
}

/// Why a sealed message could not be opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OpenFault {
    /// The message was sealed under a key the keyring does not hold.
    KeyUnknown,
    /// The message is shorter than a nonce and a tag.
    Short,
    /// The tag does not verify: the bytes (or what they are bound to) changed.
    Authentication,
}

impl OpenFault {
    /// Words for this fault on data sealed under `key_id`.
    pub(crate) fn detail(self, key_id: KeyId) -> String {
        match self {
            OpenFault::KeyUnknown => format!("sealed with key {key_id}, which was not given"),
            OpenFault::Short => "sealed data shorter than a nonce and a tag".to_string(),
            OpenFault::Authentication => {
                format!("authentication tag does not verify under key {key_id}")
            }
        }
    }
}

/// Kinds of sealed message, bound into the associated data.
const AD_FRAME: &[u8; 16] = b"reprise frame v1";
const AD_SNAPSHOT: &[u8; 16] = b"reprise snap v1\0";
const AD_KEYCHECK: &[u8; 16] = b"reprise keychk1\0";

/// Associated data of a log frame: its kind, guild, sequence number and append time.
pub(crate) fn frame_ad(guild: u64, seq: u64, at_unix_ms: u64) -> [u8; 40] {
    let mut ad = [0u8; 40];
    ad[..16].copy_from_slice(AD_FRAME);
    ad[16..24].copy_from_slice(&guild.to_le_bytes());
    ad[24..32].copy_from_slice(&seq.to_le_bytes());
    ad[32..40].copy_from_slice(&at_unix_ms.to_le_bytes());
    ad
}

/// Associated data of a snapshot body: its kind and the snapshot's header fields before the
/// body length (magic, version, codec, key id, guild, seq, creation time, state length).
pub(crate) fn snapshot_ad(header_prefix: &[u8]) -> Vec<u8> {
    let mut ad = Vec::with_capacity(16 + header_prefix.len());
    ad.extend_from_slice(AD_SNAPSHOT);
    ad.extend_from_slice(header_prefix);
    ad
}

/// Associated data of the key check stored in the directory's key file.
pub(crate) fn keycheck_ad(id: KeyId) -> [u8; 20] {
    let mut ad = [0u8; 20];
    ad[..16].copy_from_slice(AD_KEYCHECK);
    ad[16..].copy_from_slice(&id.0.to_le_bytes());
    ad
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(b: u8) -> Keyring {
        Keyring::new(Key::from_bytes([b; KEY_LEN]), []).unwrap()
    }

    #[test]
    fn seal_then_open_round_trips_and_binds_the_associated_data() {
        let k = ring(7);
        let mut buf = vec![0u8; NONCE_LEN];
        buf.extend_from_slice(b"Never Gonna Give You Up");
        let ad = frame_ad(1, 2, 3);
        k.seal_in_place(&mut buf, 0, k.next_nonce(), &ad);
        assert_eq!(buf.len(), 23 + SEAL_OVERHEAD);
        assert!(!buf.windows(5).any(|w| w == b"Never"));
        let mut out = Vec::new();
        k.open(k.current(), &buf, &ad, &mut out).unwrap();
        assert_eq!(out, b"Never Gonna Give You Up");
        // Another guild, seq or time: refused.
        for other in [frame_ad(2, 2, 3), frame_ad(1, 3, 3), frame_ad(1, 2, 4)] {
            assert_eq!(
                k.open(k.current(), &buf, &other, &mut out),
                Err(OpenFault::Authentication)
            );
        }
        // Any flipped bit: refused.
        for i in 0..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 0x10;
            assert_eq!(
                k.open(k.current(), &bad, &ad, &mut out),
                Err(OpenFault::Authentication)
            );
        }
        // Another key with the same id cannot exist in practice; an unknown id is refused.
        assert_eq!(
            ring(8).open(k.current(), &buf, &ad, &mut out),
            Err(OpenFault::KeyUnknown)
        );
        assert_eq!(
            k.open(k.current(), &buf[..SEAL_OVERHEAD - 1], &ad, &mut out),
            Err(OpenFault::Short)
        );
    }

    #[test]
    fn nonces_do_not_repeat_within_or_across_keyrings() {
        let a = ring(1);
        let b = ring(1);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            assert!(seen.insert(a.next_nonce()));
            assert!(seen.insert(b.next_nonce()));
        }
    }

    #[test]
    fn previous_keys_open_but_only_the_current_one_seals() {
        let old = Key::from_bytes([1; KEY_LEN]);
        let new = Key::from_bytes([2; KEY_LEN]);
        let before = Keyring::new(old.clone(), []).unwrap();
        let mut msg = vec![0u8; NONCE_LEN];
        msg.extend_from_slice(b"token");
        before.seal_in_place(&mut msg, 0, before.next_nonce(), b"ad");
        let after = Keyring::new(new.clone(), [old.clone()]).unwrap();
        assert_eq!(after.current(), new.id());
        assert_eq!(after.ids(), vec![new.id(), old.id()]);
        let mut out = Vec::new();
        after.open(old.id(), &msg, b"ad", &mut out).unwrap();
        assert_eq!(out, b"token");
    }

    #[test]
    fn key_files_are_32_raw_bytes_or_64_hex_digits() {
        let raw = Key::parse(&[0xab; 32]).unwrap();
        let hex = Key::parse(format!("{}\n", "ab".repeat(32)).as_bytes()).unwrap();
        assert_eq!(raw.id(), hex.id());
        assert!(Key::parse(&[0u8; 31]).unwrap_err().contains("31 bytes"));
        assert!(Key::parse(&[b'g'; 64]).is_err());
        assert_ne!(raw.id(), Key::from_bytes([0xac; 32]).id());
        assert!(!format!("{raw:?}").contains("abababab"));
    }
}

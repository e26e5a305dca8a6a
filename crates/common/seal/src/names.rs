//! Private class names: the owner's names for the classes, encrypted into the header so that the
//! holder of the file learns how many classes there are but not what they are called.
//!
//! The names are AES-256-GCM encrypted under the dataset's data key with a nonce from a domain no
//! chunk nonce uses (first byte `01`; chunk nonces start `00 00 00`), so one key never sees one
//! nonce twice. Their plaintext is padded to a power of two (at least
//! [`MIN_SEALED_NAMES_PLAINTEXT`] bytes), so the header reveals only a bucket of the names' total
//! length. The associated data binds the ciphertext to the dataset and its class count; the rest
//! of the header (this ciphertext included) is bound by every chunk's associated data.

use chiron_codec::{CodecError, Reader};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::digest::{SHA256, digest};
use zeroize::Zeroizing;

use crate::key::{DataKey, KeyId};
use crate::stream::TAG_LEN;
use crate::{Error, Result};

/// Smallest padded plaintext of sealed class names.
pub const MIN_SEALED_NAMES_PLAINTEXT: usize = 256;
/// Largest padded plaintext of sealed class names (the header body is at most 4 MiB).
pub(crate) const MAX_SEALED_NAMES_PLAINTEXT: usize = 2 << 20;
const NAMES_NONCE: [u8; 12] = [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
const NAMES_AD_LABEL: &[u8] = b"chiron/v2/class-names";

/// A dataset's class names as the header stores them when they are private: ciphertext followed
/// by the GCM tag. Only the dataset's data key opens them ([`crate::Header::open_class_names`]).
#[derive(Clone, PartialEq, Eq)]
pub struct SealedClassNames(pub(crate) Vec<u8>);

impl SealedClassNames {
    /// Stored length in bytes (the padded plaintext plus the tag): the only thing the names
    /// reveal to the holder of the file.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false: sealed names are never empty (a dataset without names stores none).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `len` is a length the format allows: a padded plaintext size plus the tag.
    pub(crate) fn valid_len(len: usize) -> bool {
        len.checked_sub(TAG_LEN).is_some_and(|p| {
            p.is_power_of_two()
                && (MIN_SEALED_NAMES_PLAINTEXT..=MAX_SEALED_NAMES_PLAINTEXT).contains(&p)
        })
    }

    /// Encrypts `names` (already checked against the schema's rules) for the dataset.
    pub(crate) fn seal(
        key: &DataKey,
        dataset_id: &[u8; 16],
        key_id: &KeyId,
        classes: u32,
        names: &[String],
    ) -> Result<Self> {
        let encoded: usize = names.iter().map(|n| 2 + n.len()).sum();
        let padded = encoded.next_power_of_two().max(MIN_SEALED_NAMES_PLAINTEXT);
        if padded > MAX_SEALED_NAMES_PLAINTEXT {
            return Err(Error::InvalidHeader(format!(
                "class names take {encoded} bytes; at most {MAX_SEALED_NAMES_PLAINTEXT} fit the header"
            )));
        }
        let mut buf = Zeroizing::new(Vec::with_capacity(padded + TAG_LEN));
        for name in names {
            // Each name is at most 255 bytes (Schema::validate), so the length fits a u16.
            buf.extend_from_slice(&(name.len() as u16).to_le_bytes());
            buf.extend_from_slice(name.as_bytes());
        }
        buf.resize(padded, 0);
        let tag = cipher(key)
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(NAMES_NONCE),
                Aad::from(associated_data(dataset_id, key_id, classes)),
                buf.as_mut_slice(),
            )
            // ring fails only for inputs over GCM's 64 GiB limit; this is at most 2 MiB.
            .map_err(|_| Error::InvalidHeader("class names could not be encrypted".into()))?;
        let mut out = std::mem::take(&mut *buf);
        out.extend_from_slice(tag.as_ref());
        Ok(Self(out))
    }

    /// Decrypts and decodes the names: exactly `classes` of them, then zero padding. The caller
    /// checks them against the schema's naming rules.
    pub(crate) fn open(
        &self,
        key: &DataKey,
        dataset_id: &[u8; 16],
        key_id: &KeyId,
        classes: u32,
    ) -> Result<Vec<String>> {
        let mut buf = Zeroizing::new(self.0.clone());
        let plain = cipher(key)
            .open_in_place(
                Nonce::assume_unique_for_key(NAMES_NONCE),
                Aad::from(associated_data(dataset_id, key_id, classes)),
                buf.as_mut_slice(),
            )
            .map_err(|_| Error::ClassNamesAuthentication)?;
        decode(plain, classes)
    }
}

impl std::fmt::Debug for SealedClassNames {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealedClassNames({} bytes)", self.0.len())
    }
}

fn cipher(key: &DataKey) -> LessSafeKey {
    match UnboundKey::new(&AES_256_GCM, key.expose_secret()) {
        Ok(k) => LessSafeKey::new(k),
        // A 32-byte key is always accepted by AES-256-GCM.
        Err(_) => unreachable!("AES-256-GCM rejected a 32-byte key"),
    }
}

fn associated_data(dataset_id: &[u8; 16], key_id: &KeyId, classes: u32) -> [u8; 32] {
    let mut ad = Vec::with_capacity(NAMES_AD_LABEL.len() + 16 + 16 + 4);
    ad.extend_from_slice(NAMES_AD_LABEL);
    ad.extend_from_slice(dataset_id);
    ad.extend_from_slice(&key_id.0);
    ad.extend_from_slice(&classes.to_le_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, &ad).as_ref());
    out
}

/// Authenticated plaintext that breaks the layout can only come from a writer holding the key;
/// it is refused all the same, naming the rule and never a name.
fn decode(plain: &[u8], classes: u32) -> Result<Vec<String>> {
    let bad = |m: &str| Error::InvalidHeader(format!("sealed class names: {m}"));
    let mut names = Vec::with_capacity((classes as usize).min(plain.len() / 2));
    // Fixed messages rather than the reader's: its offsets and lengths would describe names.
    let mut r = Reader::new(plain);
    for _ in 0..classes {
        let len = r
            .u16("class name length")
            .map_err(|_| bad("fewer names than classes"))?;
        let name = r
            .utf8(usize::from(len), "class name")
            .map_err(|e| match e {
                CodecError::InvalidUtf8 { .. } => bad("a name is not valid UTF-8"),
                _ => bad("a name runs past the end"),
            })?;
        names.push(name.to_string());
    }
    if r.take_rest().iter().any(|&b| b != 0) {
        return Err(bad("non-zero padding"));
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: u32) -> Vec<String> {
        (0..n).map(|i| format!("class {i}")).collect()
    }

    #[test]
    fn names_open_only_with_their_key_dataset_and_class_count() {
        let key = DataKey::from_bytes([3; 32]);
        let id = [5; 16];
        let key_id = KeyId([6; 16]);
        let sealed = SealedClassNames::seal(&key, &id, &key_id, 3, &names(3)).unwrap();
        assert_eq!(sealed.len(), MIN_SEALED_NAMES_PLAINTEXT + TAG_LEN);
        assert!(SealedClassNames::valid_len(sealed.len()));
        assert_eq!(sealed.open(&key, &id, &key_id, 3).unwrap(), names(3));

        let wrong_key = DataKey::from_bytes([4; 32]);
        for result in [
            sealed.open(&wrong_key, &id, &key_id, 3),
            sealed.open(&key, &[0; 16], &key_id, 3),
            sealed.open(&key, &id, &KeyId([0; 16]), 3),
            sealed.open(&key, &id, &key_id, 4),
        ] {
            assert!(matches!(result, Err(Error::ClassNamesAuthentication)));
        }
        let mut tampered = sealed.clone();
        tampered.0[10] ^= 1;
        assert!(matches!(
            tampered.open(&key, &id, &key_id, 3),
            Err(Error::ClassNamesAuthentication)
        ));
    }

    #[test]
    fn padding_hides_all_but_a_power_of_two_bucket_of_the_names_length() {
        let key = DataKey::from_bytes([3; 32]);
        let (id, key_id) = ([5; 16], KeyId([6; 16]));
        let short = vec!["a".to_string(), "b".to_string()];
        let long = vec!["a".repeat(100), "b".repeat(120)];
        let seal = |n: &[String]| SealedClassNames::seal(&key, &id, &key_id, 2, n).unwrap();
        assert_eq!(seal(&short).len(), seal(&long).len());
        let longer = vec!["a".repeat(200), "b".repeat(200)];
        assert_eq!(seal(&longer).len(), 512 + TAG_LEN);
        assert!(!SealedClassNames::valid_len(300 + TAG_LEN));
        assert!(!SealedClassNames::valid_len(128 + TAG_LEN));
    }
}

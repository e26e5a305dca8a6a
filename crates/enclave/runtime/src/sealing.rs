//! Authenticated encryption of everything the enclave hands the host: AES-256-GCM with a
//! random nonce, keys derived with HKDF-SHA256, and associated data that binds each blob to its
//! kind, its name and a version (so a blob cannot be swapped for another or for an older one).
//!
//! Sealed layout: nonce (12) ‖ ciphertext ‖ tag (16).

use chiron_codec::{CodecError, Reader};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use crate::RuntimeError;

/// Bytes a seal adds to its plaintext.
pub const OVERHEAD: usize = NONCE_LEN + 16;

/// An AEAD key for one purpose.
pub struct Sealer {
    key: LessSafeKey,
}

/// HKDF-SHA256 of `ikm` with `salt` and `info`, 32 bytes ([`chiron_codec::hkdf_sha256`]). It
/// cannot fail for this length; if it did, the failure is an error, never a zero key.
pub fn derive(ikm: &[u8], salt: &[u8], info: &[u8]) -> Result<Zeroizing<[u8; 32]>, RuntimeError> {
    chiron_codec::hkdf_sha256(ikm, salt, info).map_err(key_derivation)
}

fn key_derivation(e: CodecError) -> RuntimeError {
    RuntimeError::Platform(format!("key derivation failed: {e}"))
}

/// Fills a buffer from the system's CSPRNG.
pub fn random<const N: usize>() -> Result<[u8; N], RuntimeError> {
    let mut b = [0u8; N];
    SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| RuntimeError::Platform("random number generator failed".into()))?;
    Ok(b)
}

/// The associated data of a blob: a domain label, its kind, its name and its version.
pub fn associated_data(kind: &str, name: &str, version: u64) -> Vec<u8> {
    let mut ad = Vec::with_capacity(32 + kind.len() + name.len());
    ad.extend_from_slice(b"chiron/v1/sealed\0");
    ad.extend_from_slice(kind.as_bytes());
    ad.push(0);
    ad.extend_from_slice(name.as_bytes());
    ad.push(0);
    ad.extend_from_slice(&version.to_le_bytes());
    ad
}

impl Sealer {
    /// A sealer keyed by HKDF(`root`, `salt`, `purpose`); an error only if the key cannot be
    /// derived or taken (neither can happen for a 32-byte AES-256-GCM key, but neither is
    /// papered over).
    pub fn new(root: &[u8], salt: &[u8], purpose: &str) -> Result<Self, RuntimeError> {
        let k = derive(root, salt, purpose.as_bytes())?;
        let key = UnboundKey::new(&AES_256_GCM, k.as_ref())
            .map_err(|_| RuntimeError::Platform("AES-256-GCM refused a 32-byte key".into()))?;
        Ok(Self {
            key: LessSafeKey::new(key),
        })
    }

    /// Seals `plaintext` bound to `ad`.
    pub fn seal(&self, ad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, RuntimeError> {
        let nonce_bytes: [u8; NONCE_LEN] = random()?;
        let mut out = Vec::with_capacity(plaintext.len() + OVERHEAD);
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(plaintext);
        let mut body = out.split_off(NONCE_LEN);
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(ad),
                &mut body,
            )
            .map_err(|_| RuntimeError::Unseal("sealing failed"))?;
        out.extend_from_slice(&body);
        body.iter_mut().for_each(|b| *b = 0);
        Ok(out)
    }

    /// Opens a sealed blob bound to `ad`; any change to it, or another `ad`, is refused.
    pub fn open(&self, ad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, RuntimeError> {
        if sealed.len() < OVERHEAD {
            return Err(RuntimeError::Unseal("too short"));
        }
        let mut r = Reader::new(sealed);
        let nonce = Nonce::assume_unique_for_key(
            r.array::<NONCE_LEN>("nonce")
                .map_err(|_| RuntimeError::Unseal("too short"))?,
        );
        let mut buf = Zeroizing::new(r.take_rest().to_vec());
        let len = self
            .key
            .open_in_place(nonce, Aad::from(ad), buf.as_mut_slice())
            .map_err(|_| RuntimeError::Unseal("authentication failed"))?
            .len();
        buf.truncate(len);
        Ok(buf)
    }
}

/// `plaintext` as a fixed-size record: its length (u64 LE), the bytes, zeros up to `size`.
/// Sizes of padded records do not depend on their contents.
pub fn pad(plaintext: &[u8], size: usize) -> Result<Zeroizing<Vec<u8>>, RuntimeError> {
    if plaintext.len() + 8 > size {
        return Err(RuntimeError::Record(format!(
            "a record of {} bytes does not fit its fixed size of {size}",
            plaintext.len()
        )));
    }
    let mut out = Zeroizing::new(vec![0u8; size]);
    out[..8].copy_from_slice(&(plaintext.len() as u64).to_le_bytes());
    out[8..8 + plaintext.len()].copy_from_slice(plaintext);
    Ok(out)
}

/// The record inside [`pad`]'s output (the zeros after it are not read).
pub fn unpad(padded: &[u8]) -> Result<&[u8], RuntimeError> {
    // A fixed message: the reader's would state the record's length, which padding hides.
    let bad = || RuntimeError::Record("bad padding".into());
    let mut r = Reader::new(padded);
    let len = r.u64("record length").map_err(|_| bad())?;
    let len = usize::try_from(len).map_err(|_| bad())?;
    r.take(len, "record").map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn seal_open_and_every_tamper_is_refused() {
        let s = Sealer::new(&[7; 32], b"salt", "test").unwrap();
        let ad = associated_data("checkpoint", "job", 3);
        let sealed = s.seal(&ad, b"weights").unwrap();
        assert_eq!(&s.open(&ad, &sealed).unwrap()[..], b"weights");
        for i in 0..sealed.len() {
            let mut t = sealed.clone();
            t[i] ^= 1;
            assert!(s.open(&ad, &t).is_err(), "flip at {i}");
        }
        // An older version, another name, another key: refused.
        assert!(
            s.open(&associated_data("checkpoint", "job", 2), &sealed)
                .is_err()
        );
        assert!(
            s.open(&associated_data("checkpoint", "job2", 3), &sealed)
                .is_err()
        );
        assert!(
            Sealer::new(&[8; 32], b"salt", "test")
                .unwrap()
                .open(&ad, &sealed)
                .is_err()
        );
        assert!(s.open(&ad, &sealed[..10]).is_err());
    }

    #[test]
    fn padding_is_fixed_size() {
        let a = pad(b"short", 64).unwrap();
        let b = pad(&[1; 40], 64).unwrap();
        assert_eq!(a.len(), b.len());
        assert_eq!(unpad(&a).unwrap(), b"short");
        assert!(pad(&[0; 60], 64).is_err());
        let mut bad = a.clone();
        bad[0] = 200;
        assert!(unpad(&bad).is_err());
    }
}

//! Chunk encryption: AES-256-GCM in the STREAM construction (Hoang, Reyhanitabar, Rogaway,
//! Vizár, "Online Authenticated-Encryption and its Nonce-Reuse Misuse-Resistance", 2015).
//!
//! The nonce of chunk `i` is `0x000000 ‖ u64_be(i) ‖ last`, where `last` is 1 for the final chunk
//! and 0 otherwise; the associated data is SHA-256 of the encoded header. Hence a chunk only
//! authenticates at its own position, in its own dataset, under an unmodified header, and only the
//! true final chunk authenticates as final, so dropping chunks from the end is detected.
//!
//! AES-GCM comes from `ring` (BoringSSL's assembly, which uses VAES/VPCLMULQDQ where the CPU has
//! them): it measured 10.5 GB/s sealing 64 KiB chunks on this project's machine, against
//! 1.4 GB/s for the pure-Rust `aes-gcm` crate and 5.5 GB/s for `openssl speed`. The raw key bytes
//! are zeroized by [`crate::DataKey`]; ring's expanded key schedule is not (ring offers no hook).

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::digest::{SHA256, digest};
use zeroize::Zeroize;

use crate::key::DataKey;

/// Bytes of the GCM authentication tag appended to every chunk.
pub const TAG_LEN: usize = 16;

/// Encrypts and decrypts the chunks of one dataset.
pub(crate) struct ChunkCipher {
    key: LessSafeKey,
    associated_data: [u8; 32],
}

impl ChunkCipher {
    /// Binds the cipher to a data key and to the exact encoded header.
    pub(crate) fn new(key: &DataKey, encoded_header: &[u8]) -> Self {
        let unbound = match UnboundKey::new(&AES_256_GCM, key.expose_secret()) {
            Ok(k) => k,
            // A 32-byte key is always accepted by AES-256-GCM.
            Err(_) => unreachable!("AES-256-GCM rejected a 32-byte key"),
        };
        let mut associated_data = [0u8; 32];
        associated_data.copy_from_slice(digest(&SHA256, encoded_header).as_ref());
        Self {
            key: LessSafeKey::new(unbound),
            associated_data,
        }
    }

    /// Encrypts `plaintext` in place as chunk `index` and returns its tag.
    pub(crate) fn seal(&self, index: u64, last: bool, plaintext: &mut [u8]) -> [u8; TAG_LEN] {
        let tag = self
            .key
            .seal_in_place_separate_tag(
                nonce(index, last),
                Aad::from(&self.associated_data),
                plaintext,
            )
            // ring fails only for inputs over GCM's 64 GiB per-nonce limit; chunks are ≤ 16 MiB.
            .unwrap_or_else(|_| unreachable!("GCM input limit exceeded by a chunk"));
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// Decrypts chunk `index` in place. `sealed` is ciphertext followed by the tag; on success the
    /// first `sealed.len() - TAG_LEN` bytes hold the plaintext. On failure the buffer is zeroed so
    /// no unauthenticated plaintext survives.
    pub(crate) fn open(&self, index: u64, last: bool, sealed: &mut [u8]) -> Result<(), ()> {
        let ok = self
            .key
            .open_in_place(nonce(index, last), Aad::from(&self.associated_data), sealed)
            .is_ok();
        if ok {
            Ok(())
        } else {
            sealed.zeroize();
            Err(())
        }
    }
}

fn nonce(index: u64, last: bool) -> Nonce {
    let mut n = [0u8; 12];
    n[3..11].copy_from_slice(&index.to_be_bytes());
    n[11] = u8::from(last);
    Nonce::assume_unique_for_key(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_opens_only_at_its_position_flag_and_header() {
        let key = DataKey::from_bytes([3; 32]);
        let c = ChunkCipher::new(&key, b"header");
        let mut buf = vec![5u8; 64];
        let tag = c.seal(4, false, &mut buf);
        buf.extend_from_slice(&tag);

        let mut ok = buf.clone();
        c.open(4, false, &mut ok).unwrap();
        assert_eq!(&ok[..64], &[5u8; 64][..]);

        for (i, last) in [(3, false), (5, false), (4, true)] {
            let mut b = buf.clone();
            assert!(c.open(i, last, &mut b).is_err());
            assert!(
                b.iter().all(|&x| x == 0),
                "failed open must zero the buffer"
            );
        }
        let other_header = ChunkCipher::new(&key, b"headeR");
        assert!(other_header.open(4, false, &mut buf.clone()).is_err());
        let other_key = ChunkCipher::new(&DataKey::from_bytes([4; 32]), b"header");
        assert!(other_key.open(4, false, &mut buf.clone()).is_err());
    }

    #[test]
    fn nonce_layout_is_as_specified() {
        let n = nonce(0x0102030405060708, true);
        assert_eq!(
            n.as_ref(),
            &[0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 1],
            "docs/formats/sealed-dataset.md §Nonce"
        );
    }
}

//! HKDF-SHA256 for the sealing keys this crate derives: [`chiron_codec::hkdf_sha256`], its
//! (impossible for 32 bytes, but reported) failure as this crate's [`Error::Platform`].

use zeroize::Zeroizing;

use crate::{Error, Result};

/// HKDF-SHA256 with a 32-byte output; a failure is an error, never a default key.
pub(crate) fn hkdf_sha256(ikm: &[u8], salt: &[u8], info: &[u8]) -> Result<Zeroizing<[u8; 32]>> {
    chiron_codec::hkdf_sha256(ikm, salt, info)
        .map_err(|e| Error::Platform(format!("sealing key derivation failed: {e}")))
}

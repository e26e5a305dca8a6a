//! HKDF-SHA256 (RFC 5869) through ring, for the fixed-length keys this crate derives.

use ring::hkdf;
use zeroize::Zeroizing;

use crate::{Error, Result};

struct Len32;

impl hkdf::KeyType for Len32 {
    fn len(&self) -> usize {
        32
    }
}

/// HKDF-SHA256 with a 32-byte output. ring can only fail for outputs over 8160 bytes, but the
/// failure is still reported rather than papered over with a default key.
pub(crate) fn hkdf_sha256(ikm: &[u8], salt: &[u8], info: &[u8]) -> Result<Zeroizing<[u8; 32]>> {
    let mut out = Zeroizing::new([0u8; 32]);
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(ikm);
    let info = [info];
    prk.expand(&info, Len32)
        .and_then(|okm| okm.fill(out.as_mut()))
        .map_err(|_| Error::Platform("HKDF expansion failed".into()))?;
    Ok(out)
}

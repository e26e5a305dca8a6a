//! Chiron's one byte vocabulary: the hex encoder, the HKDF and the byte cursor every crate
//! shares, so that each exists once with one failure policy.
//!
//! - [`hex`]: lower-case hex, for digests, ids and key fingerprints.
//! - [`hkdf_sha256`] and [`hkdf_sha256_into`]: HKDF-SHA256 (RFC 5869) through ring. A failure is
//!   always returned as [`CodecError::HkdfOutputLength`]: never a panic, never a zero key left
//!   behind silently.
//! - [`Reader`]: a bounds-checked little-endian cursor over untrusted bytes. Every read names
//!   the field it reads; running past the end, a length that cannot be allocated, bad UTF-8 or
//!   bytes left over after the last field are errors naming that field, never a panic. Errors
//!   carry field names, offsets and lengths only, never the bytes themselves (which may be
//!   secret).
//!
//! Encoding stays with each format (a `Vec<u8>` and `to_le_bytes` say it as plainly as any
//! helper would); this crate only owns the parts that were duplicated with different rules.

#![forbid(unsafe_code)]

use ring::hkdf;
use zeroize::{Zeroize, Zeroizing};

/// What went wrong decoding bytes or deriving a key. Messages name the field, offset and
/// lengths involved, never the bytes read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The input ended before a field was complete.
    #[error(
        "input ends inside the {field} field at byte {offset} ({needed} bytes needed, {available} left)"
    )]
    Truncated {
        /// The field being read.
        field: &'static str,
        /// Offset of the field's first byte in the input.
        offset: usize,
        /// Bytes the field needs.
        needed: usize,
        /// Bytes the input had left.
        available: usize,
    },
    /// A field's declared element count gives a byte length that does not fit in `usize`.
    #[error("the {field} field at byte {offset} declares a length that does not fit in memory")]
    LengthOverflow {
        /// The field being read.
        field: &'static str,
        /// Offset of the field's first byte in the input.
        offset: usize,
    },
    /// A text field is not valid UTF-8.
    #[error("the {field} field at byte {offset} is not valid UTF-8")]
    InvalidUtf8 {
        /// The field being read.
        field: &'static str,
        /// Offset of the field's first byte in the input.
        offset: usize,
    },
    /// Bytes remain after the last field of a format.
    #[error("{count} unexpected bytes after the last field (at byte {offset})")]
    TrailingBytes {
        /// How many bytes were left over.
        count: usize,
        /// Offset of the first left-over byte.
        offset: usize,
    },
    /// HKDF-SHA256 was asked for more output than it can produce.
    #[error("HKDF-SHA256 cannot produce {len} bytes of output (at most {HKDF_SHA256_MAX_LEN})")]
    HkdfOutputLength {
        /// The output length asked for.
        len: usize,
    },
}

impl CodecError {
    /// The field a decoding error is about (`None` for trailing bytes and HKDF errors): for
    /// messages that must not reveal offsets or lengths, e.g. of decrypted records.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            Self::Truncated { field, .. }
            | Self::LengthOverflow { field, .. }
            | Self::InvalidUtf8 { field, .. } => Some(field),
            Self::TrailingBytes { .. } | Self::HkdfOutputLength { .. } => None,
        }
    }
}

/// Lower-case hex of `bytes`: two digits per byte, most significant nibble first, no
/// separators or prefix. The one hex encoder of the project; the output is always ASCII and
/// `2 * bytes.len()` long.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Most bytes HKDF-SHA256 can expand to (255 blocks of 32 bytes, RFC 5869 §2.3).
pub const HKDF_SHA256_MAX_LEN: usize = 255 * 32;

/// HKDF-SHA256 (RFC 5869): extract with `salt` (empty: the RFC's zero salt) from `ikm`, expand
/// with `info` to a 32-byte key, zeroized on drop. Cannot fail for this length, but the result
/// is a `Result` all the same, so no caller ever handles a failure by panicking or by using a
/// default key.
pub fn hkdf_sha256(
    ikm: &[u8],
    salt: &[u8],
    info: &[u8],
) -> Result<Zeroizing<[u8; 32]>, CodecError> {
    let mut out = Zeroizing::new([0u8; 32]);
    hkdf_sha256_into(ikm, salt, info, out.as_mut())?;
    Ok(out)
}

/// HKDF-SHA256 (RFC 5869) into `out`, whose length is the output length. Fails only for an
/// output longer than [`HKDF_SHA256_MAX_LEN`]; `out` is then zeroed and the failure returned,
/// so a caller can never mistake the buffer for a key without seeing the error.
pub fn hkdf_sha256_into(
    ikm: &[u8],
    salt: &[u8],
    info: &[u8],
    out: &mut [u8],
) -> Result<(), CodecError> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(ikm);
    let info = [info];
    let filled = prk
        .expand(&info, OkmLen(out.len()))
        .and_then(|okm| okm.fill(out));
    if filled.is_err() {
        out.zeroize();
        return Err(CodecError::HkdfOutputLength { len: out.len() });
    }
    Ok(())
}

/// Output length for ring's HKDF, which wants a type naming the length.
struct OkmLen(usize);

impl hkdf::KeyType for OkmLen {
    fn len(&self) -> usize {
        self.0
    }
}

/// A bounds-checked little-endian cursor over a byte slice, for parsing the project's binary
/// formats from untrusted input.
///
/// Guarantees: no read panics or allocates more than the input holds (lengths are checked
/// against the bytes left before anything is copied); a read that fails consumes nothing; every
/// error names the field being read and its offset, never the bytes. Its `Debug` output shows
/// the position only.
pub struct Reader<'a> {
    input: &'a [u8],
    pos: usize,
}

impl std::fmt::Debug for Reader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("pos", &self.pos)
            .field("remaining", &self.remaining())
            .finish()
    }
}

impl<'a> Reader<'a> {
    /// A reader positioned at the start of `input`.
    pub fn new(input: &'a [u8]) -> Self {
        Self { input, pos: 0 }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.input.len() - self.pos
    }

    /// Whether every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// Offset of the next byte to be read.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The next `n` bytes of the `field` field; [`CodecError::Truncated`] if fewer are left.
    pub fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], CodecError> {
        let rest = &self.input[self.pos..];
        let Some(head) = rest.get(..n) else {
            return Err(CodecError::Truncated {
                field,
                offset: self.pos,
                needed: n,
                available: rest.len(),
            });
        };
        self.pos += n;
        Ok(head)
    }

    /// Every byte not read yet (possibly none); the reader is then empty.
    pub fn take_rest(&mut self) -> &'a [u8] {
        let rest = &self.input[self.pos..];
        self.pos = self.input.len();
        rest
    }

    /// The next `N` bytes of the `field` field, as an array.
    pub fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], CodecError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }

    /// One byte.
    pub fn u8(&mut self, field: &'static str) -> Result<u8, CodecError> {
        Ok(self.array::<1>(field)?[0])
    }

    /// A little-endian `u16`.
    pub fn u16(&mut self, field: &'static str) -> Result<u16, CodecError> {
        Ok(u16::from_le_bytes(self.array(field)?))
    }

    /// A little-endian `u32`.
    pub fn u32(&mut self, field: &'static str) -> Result<u32, CodecError> {
        Ok(u32::from_le_bytes(self.array(field)?))
    }

    /// A little-endian `u64`.
    pub fn u64(&mut self, field: &'static str) -> Result<u64, CodecError> {
        Ok(u64::from_le_bytes(self.array(field)?))
    }

    /// A little-endian IEEE-754 `f32` (any bit pattern, NaNs included: callers check values).
    pub fn f32(&mut self, field: &'static str) -> Result<f32, CodecError> {
        Ok(f32::from_le_bytes(self.array(field)?))
    }

    /// `count` little-endian `f32`s. The byte length is computed with checked arithmetic and
    /// checked against the bytes left before the vector is allocated.
    pub fn f32s(&mut self, count: u64, field: &'static str) -> Result<Vec<f32>, CodecError> {
        let bytes = usize::try_from(count)
            .ok()
            .and_then(|c| c.checked_mul(4))
            .ok_or(CodecError::LengthOverflow {
                field,
                offset: self.pos,
            })?;
        Ok(self
            .take(bytes, field)?
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }

    /// The next `len` bytes as UTF-8 text. Nothing is consumed if they are not valid UTF-8.
    pub fn utf8(&mut self, len: usize, field: &'static str) -> Result<&'a str, CodecError> {
        let offset = self.pos;
        let bytes = self.take(len, field)?;
        std::str::from_utf8(bytes).map_err(|_| {
            self.pos = offset;
            CodecError::InvalidUtf8 { field, offset }
        })
    }

    /// Ends parsing: [`CodecError::TrailingBytes`] if any byte is left unread.
    pub fn finish(self) -> Result<(), CodecError> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(CodecError::TrailingBytes {
                count,
                offset: self.pos,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn hex_vectors() {
        assert_eq!(hex(&[]), "");
        assert_eq!(hex(&[0x00]), "00");
        assert_eq!(hex(&[0x0f, 0xf0, 0xa5, 0xff]), "0ff0a5ff");
        assert_eq!(hex(b"Chiron"), "436869726f6e");
        let all: Vec<u8> = (0..=255).collect();
        let expected: String = all.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex(&all), expected);
    }

    fn rfc5869_case1() -> ([u8; 22], Vec<u8>, Vec<u8>) {
        let salt: Vec<u8> = (0u8..=0x0c).collect();
        let info: Vec<u8> = (0xf0u8..=0xf9).collect();
        ([0x0b; 22], salt, info)
    }

    #[test]
    fn hkdf_matches_rfc5869_test_case_1() {
        let (ikm, salt, info) = rfc5869_case1();
        // RFC 5869 A.1, OKM (L = 42); the 32-byte key is its first 32 bytes.
        let okm =
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865";
        let key = hkdf_sha256(&ikm, &salt, &info).unwrap();
        assert_eq!(hex(key.as_ref()), okm[..64]);
        let mut full = [0u8; 42];
        hkdf_sha256_into(&ikm, &salt, &info, &mut full).unwrap();
        assert_eq!(hex(&full), okm);
    }

    #[test]
    fn hkdf_reports_an_impossible_length_and_leaves_no_key() {
        let (ikm, salt, info) = rfc5869_case1();
        let mut out = vec![0xaa; HKDF_SHA256_MAX_LEN + 1];
        let err = hkdf_sha256_into(&ikm, &salt, &info, &mut out).unwrap_err();
        assert_eq!(
            err,
            CodecError::HkdfOutputLength {
                len: HKDF_SHA256_MAX_LEN + 1
            }
        );
        assert!(out.iter().all(|&b| b == 0));
        let mut max = vec![0u8; HKDF_SHA256_MAX_LEN];
        hkdf_sha256_into(&ikm, &salt, &info, &mut max).unwrap();
    }

    #[test]
    fn reader_reads_little_endian_fields_in_order() {
        let mut bytes = vec![7u8];
        bytes.extend_from_slice(&0x1234u16.to_le_bytes());
        bytes.extend_from_slice(&0xdead_beefu32.to_le_bytes());
        bytes.extend_from_slice(&u64::MAX.to_le_bytes());
        bytes.extend_from_slice(&1.5f32.to_le_bytes());
        bytes.extend_from_slice(&[1.0f32, -2.0].map(f32::to_le_bytes).concat());
        bytes.extend_from_slice("név".as_bytes());
        bytes.extend_from_slice(&[9, 8]);
        let mut r = Reader::new(&bytes);
        assert_eq!(r.u8("a").unwrap(), 7);
        assert_eq!(r.u16("b").unwrap(), 0x1234);
        assert_eq!(r.u32("c").unwrap(), 0xdead_beef);
        assert_eq!(r.u64("d").unwrap(), u64::MAX);
        assert_eq!(r.f32("e").unwrap(), 1.5);
        assert_eq!(r.f32s(2, "f").unwrap(), vec![1.0, -2.0]);
        assert_eq!(r.utf8(4, "g").unwrap(), "név");
        assert_eq!(r.position(), bytes.len() - 2);
        assert_eq!(r.array::<1>("h").unwrap(), [9]);
        assert_eq!(r.remaining(), 1);
        assert_eq!(r.take_rest(), &[8]);
        assert!(r.is_empty());
        assert_eq!(r.take_rest(), &[] as &[u8]);
        r.finish().unwrap();
    }

    #[test]
    fn reader_bounds_are_checked_and_name_the_field() {
        let bytes = [1u8, 2, 3];
        let mut r = Reader::new(&bytes);
        assert_eq!(r.u8("tag").unwrap(), 1);
        let err = r.u32("record count").unwrap_err();
        assert_eq!(
            err,
            CodecError::Truncated {
                field: "record count",
                offset: 1,
                needed: 4,
                available: 2
            }
        );
        let text = err.to_string();
        assert!(
            text.contains("record count") && text.contains("byte 1"),
            "{text}"
        );
        assert_eq!(err.field(), Some("record count"));
        // A failed read consumes nothing.
        assert_eq!(r.remaining(), 2);
        assert!(r.take(usize::MAX, "huge").is_err());
        assert_eq!(
            r.f32s(u64::MAX, "values").unwrap_err(),
            CodecError::LengthOverflow {
                field: "values",
                offset: 1
            }
        );
        assert!(matches!(
            r.f32s(1, "values"),
            Err(CodecError::Truncated { needed: 4, .. })
        ));
        assert_eq!(r.u16("pair").unwrap(), 0x0302);
        assert!(r.u8("past the end").is_err());
        r.finish().unwrap();
    }

    #[test]
    fn reader_refuses_trailing_bytes_and_bad_text_without_quoting_them() {
        let mut r = Reader::new(&[0x42, 0xff, 0xfe]);
        assert_eq!(r.u8("tag").unwrap(), 0x42);
        let err = r.utf8(2, "name").unwrap_err();
        assert_eq!(
            err,
            CodecError::InvalidUtf8 {
                field: "name",
                offset: 1
            }
        );
        assert_eq!(r.remaining(), 2);
        let err = r.finish().unwrap_err();
        assert_eq!(
            err,
            CodecError::TrailingBytes {
                count: 2,
                offset: 1
            }
        );
        let text = err.to_string();
        assert!(!text.contains("ff") && !text.contains("255"), "{text}");
        assert_eq!(err.field(), None);
    }

    #[test]
    fn reader_debug_shows_no_bytes() {
        let r = Reader::new(&[0xab; 4]);
        assert_eq!(format!("{r:?}"), "Reader { pos: 0, remaining: 4 }");
    }
}

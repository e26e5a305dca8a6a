//! Owner keys: the 32-byte master key kept in a file, its public fingerprint, and the
//! per-dataset data key derived from it.
//!
//! The master key never leaves the owner's machine. Each dataset is encrypted under its own data
//! key, `HKDF-SHA256(ikm = master, salt = dataset id, info = "chiron/v1/dataset-data-key")`, so the
//! owner can grant one dataset's key to an attested enclave without granting the others.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use ring::rand::{SecureRandom, SystemRandom};
use zeroize::{Zeroize, Zeroizing};

use crate::{Error, Result};

/// Length in bytes of master and data keys.
pub const KEY_LEN: usize = 32;
/// Length in bytes of a key id.
pub const KEY_ID_LEN: usize = 16;

const KEY_ID_INFO: &[u8] = b"chiron/v1/key-id";
const DATA_KEY_INFO: &[u8] = b"chiron/v1/dataset-data-key";

/// The owner's master key. Zeroized on drop; `Debug` prints only the key id.
pub struct MasterKey(Zeroizing<[u8; KEY_LEN]>);

/// A per-dataset AES-256-GCM key derived from the master key. Zeroized on drop.
pub struct DataKey(Zeroizing<[u8; KEY_LEN]>);

/// Public fingerprint of a master key: names the key in headers and error messages without
/// revealing anything about it (an HKDF output under a fixed label).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId(pub [u8; KEY_ID_LEN]);

impl MasterKey {
    /// Draws a fresh key from the operating system's random number generator.
    pub fn generate() -> Result<Self> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        SystemRandom::new()
            .fill(bytes.as_mut())
            .map_err(|_| Error::Random)?;
        Ok(Self(bytes))
    }

    /// Wraps existing key bytes (taken by value and zeroized in the caller's copy).
    pub fn from_bytes(mut bytes: [u8; KEY_LEN]) -> Self {
        let key = Self(Zeroizing::new(bytes));
        bytes.zeroize();
        key
    }

    /// Writes the key to a new file with mode 0600. Refuses to overwrite an existing file (the
    /// check and the creation are one atomic `O_CREAT | O_EXCL` open).
    pub fn write_new_file(&self, path: &Path) -> Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    Error::Io(std::io::Error::new(
                        e.kind(),
                        format!(
                            "{} already exists; refusing to overwrite a key",
                            path.display()
                        ),
                    ))
                } else {
                    Error::Io(std::io::Error::new(
                        e.kind(),
                        format!("cannot create {}: {e}", path.display()),
                    ))
                }
            })?;
        file.write_all(self.0.as_ref())?;
        file.sync_all()?;
        Ok(())
    }

    /// Reads a key file: exactly 32 bytes, readable by its owner only (like ssh, a key file other
    /// users can read is refused rather than silently used).
    pub fn read_file(path: &Path) -> Result<Self> {
        let io_err = |e: std::io::Error| {
            Error::Io(std::io::Error::new(
                e.kind(),
                format!("cannot read key file {}: {e}", path.display()),
            ))
        };
        let mut file = File::open(path).map_err(io_err)?;
        let meta = file.metadata().map_err(io_err)?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(Error::Io(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!(
                    "key file {} is accessible by group or others (mode {mode:04o}); run chmod 600 on it",
                    path.display()
                ),
            )));
        }
        if meta.len() != KEY_LEN as u64 {
            return Err(Error::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "key file {} must hold exactly {KEY_LEN} bytes, it holds {}",
                    path.display(),
                    meta.len()
                ),
            )));
        }
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        file.read_exact(bytes.as_mut()).map_err(io_err)?;
        Ok(Self(bytes))
    }

    /// The key's public fingerprint, or [`Error::KeyDerivation`] if HKDF fails (it cannot for
    /// this fixed length, but the failure is reported, never replaced by a default id).
    pub fn id(&self) -> Result<KeyId> {
        let mut id = [0u8; KEY_ID_LEN];
        chiron_codec::hkdf_sha256_into(self.0.as_ref(), &[], KEY_ID_INFO, &mut id)
            .map_err(key_derivation)?;
        Ok(KeyId(id))
    }

    /// Derives the data key of the dataset with the given id, or [`Error::KeyDerivation`] if HKDF
    /// fails (it cannot for this fixed length, but no zero or default key is ever returned).
    pub fn data_key(&self, dataset_id: &[u8; 16]) -> Result<DataKey> {
        chiron_codec::hkdf_sha256(self.0.as_ref(), dataset_id, DATA_KEY_INFO)
            .map(DataKey)
            .map_err(key_derivation)
    }
}

fn key_derivation(e: chiron_codec::CodecError) -> Error {
    Error::KeyDerivation(e.to_string())
}

impl DataKey {
    /// Wraps a data key received in a grant (taken by value and zeroized in the caller's copy).
    pub fn from_bytes(mut bytes: [u8; KEY_LEN]) -> Self {
        let key = Self(Zeroizing::new(bytes));
        bytes.zeroize();
        key
    }

    /// The raw key, for handing to the AEAD or sealing into a grant. Never log it.
    pub fn expose_secret(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.id() {
            Ok(id) => write!(f, "MasterKey(id {id})"),
            Err(_) => f.write_str("MasterKey(..)"),
        }
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(..)")
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&chiron_codec::hex(&self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_id_and_data_keys_are_distinct_per_key_and_dataset() {
        let a = MasterKey::from_bytes([1; 32]);
        let b = MasterKey::from_bytes([2; 32]);
        assert_ne!(a.id().unwrap(), b.id().unwrap());
        assert_eq!(
            a.id().unwrap(),
            MasterKey::from_bytes([1; 32]).id().unwrap()
        );
        let k1 = a.data_key(&[0; 16]).unwrap();
        let k2 = a.data_key(&[1; 16]).unwrap();
        let k3 = b.data_key(&[0; 16]).unwrap();
        assert_ne!(k1.expose_secret(), k2.expose_secret());
        assert_ne!(k1.expose_secret(), k3.expose_secret());
        assert_ne!(&k1.expose_secret()[..16], &a.id().unwrap().0[..]);
    }

    #[test]
    fn key_id_and_data_key_derivations_are_pinned() {
        // Computed independently (Python's hmac/hashlib HKDF) from the rule in the module doc.
        let key = MasterKey::from_bytes([1; 32]);
        assert_eq!(
            key.id().unwrap().to_string(),
            "953653e63ea18c2922e4778f39b377f2"
        );
        assert_eq!(
            chiron_codec::hex(key.data_key(&[0; 16]).unwrap().expose_secret()),
            "561174ea0ddf1b89cfb228e13b627729110a36af3bec1cd83469d94d60e50aa8"
        );
        assert_eq!(
            format!("{key:?}"),
            "MasterKey(id 953653e63ea18c2922e4778f39b377f2)"
        );
    }

    #[test]
    fn hkdf_matches_rfc5869_style_vector() {
        // RFC 5869 test case 1, first 32 bytes of OKM.
        let ikm = [0x0bu8; 22];
        let salt: Vec<u8> = (0u8..=0x0c).collect();
        let info: Vec<u8> = (0xf0u8..=0xf9).collect();
        let out = chiron_codec::hkdf_sha256(&ikm, &salt, &info).unwrap();
        let expected = "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf";
        assert_eq!(chiron_codec::hex(out.as_ref()), expected);
    }

    #[test]
    fn key_file_is_private_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("owner.key");
        let key = MasterKey::generate().unwrap();
        key.write_new_file(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let err = MasterKey::generate()
            .unwrap()
            .write_new_file(&path)
            .unwrap_err();
        assert!(err.to_string().contains("refusing to overwrite"), "{err}");
        assert_eq!(
            MasterKey::read_file(&path).unwrap().id().unwrap(),
            key.id().unwrap()
        );

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = MasterKey::read_file(&path).unwrap_err();
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }

    #[test]
    fn key_file_of_wrong_length_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("short.key");
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .unwrap();
        f.write_all(&[0u8; 31]).unwrap();
        let err = MasterKey::read_file(&path).unwrap_err();
        assert!(err.to_string().contains("exactly 32 bytes"), "{err}");
    }
}

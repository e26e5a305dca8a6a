//! Key release through the untrusted host: a secret HPKE-sealed (RFC 9180) to a public key that
//! the enclave's attested evidence vouches for.
//!
//! The enclave makes an X25519 key pair at start and publishes a [`GrantTarget`]: the public key
//! plus evidence whose report data is `SHA-512("chiron/v1/hpke-grant-key\0" ‖ public key)` (a
//! domain label keeps it apart from RA-TLS bindings, which hash a DER structure). The owner
//! verifies the target against its policy before sealing; only the holder of the private key —
//! the attested enclave — can open the grant, and the `context` (say, "dataset key for dataset
//! X, job Y") is authenticated, so a grant cannot be replayed for another purpose.
//!
//! Suite: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM, base mode, from the `hpke` crate.

use hpke::aead::AesGcm256;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};
use rand_core::{OsRng, UnwrapErr};
use ring::digest::{SHA512, digest};
use zeroize::Zeroizing;

use crate::claims::{REPORT_DATA_LEN, VerifiedClaims};
use crate::evidence::{Endorsements, Evidence, EvidenceSource, verify_evidence};
use crate::policy::Policy;
use crate::{Error, Result};

type Kem = X25519HkdfSha256;
const INFO: &[u8] = b"chiron/v1/key-grant";
const BINDING_LABEL: &[u8] = b"chiron/v1/hpke-grant-key\0";
const GRANT_MAGIC: &[u8; 4] = b"CHG1";
const PUBLIC_KEY_LEN: usize = 32;
/// Largest secret a grant carries (keys and key shares are 32 bytes).
pub const MAX_SECRET: usize = 4096;

/// The report data binding an HPKE public key.
pub fn report_data_for_grant_key(public_key: &[u8]) -> [u8; REPORT_DATA_LEN] {
    let mut input = BINDING_LABEL.to_vec();
    input.extend_from_slice(public_key);
    let mut out = [0u8; REPORT_DATA_LEN];
    out.copy_from_slice(digest(&SHA512, &input).as_ref());
    out
}

/// What an enclave publishes so owners can seal secrets to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantTarget {
    /// The enclave's X25519 public key.
    pub public_key: [u8; PUBLIC_KEY_LEN],
    /// Evidence binding that key.
    pub evidence: Evidence,
}

/// The enclave's grant-receiving key pair; the private half never leaves the enclave.
pub struct GrantKeyPair {
    private: <Kem as hpke::Kem>::PrivateKey,
    public: [u8; PUBLIC_KEY_LEN],
}

impl GrantKeyPair {
    /// A fresh key pair from the OS generator.
    pub fn generate() -> Self {
        let (private, public) = Kem::gen_keypair(&mut UnwrapErr(OsRng));
        let mut pk = [0u8; PUBLIC_KEY_LEN];
        pk.copy_from_slice(&public.to_bytes());
        Self {
            private,
            public: pk,
        }
    }

    /// The published target: the public key with evidence from `source` binding it.
    pub fn target(&self, source: &dyn EvidenceSource) -> Result<GrantTarget> {
        Ok(GrantTarget {
            public_key: self.public,
            evidence: source.evidence(&report_data_for_grant_key(&self.public))?,
        })
    }

    /// Opens a grant sealed to this key for `context`. Any change to the grant or a different
    /// context fails.
    pub fn open(&self, grant: &[u8], context: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let rest = grant
            .strip_prefix(GRANT_MAGIC)
            .ok_or_else(|| Error::Malformed("not a Chiron key grant".into()))?;
        let (encapped, ciphertext) = rest
            .split_at_checked(PUBLIC_KEY_LEN)
            .ok_or_else(|| Error::Malformed("key grant too short".into()))?;
        let encapped = <Kem as hpke::Kem>::EncappedKey::from_bytes(encapped)
            .map_err(|_| Error::Malformed("key grant has an invalid encapsulated key".into()))?;
        hpke::single_shot_open::<AesGcm256, HkdfSha256, Kem>(
            &OpModeR::Base,
            &self.private,
            &encapped,
            INFO,
            ciphertext,
            context,
        )
        .map(Zeroizing::new)
        .map_err(|_| {
            Error::Rejected(
                "key grant does not open: not sealed to this enclave, modified, or for another context".into(),
            )
        })
    }
}

/// The owner's side: verifies `target` (evidence genuine, bound to the key, accepted by
/// `policy` at `now`) and only then seals `secret` to it. Returns the grant bytes, safe to hand
/// to the untrusted host, and the claims the decision rested on.
pub fn seal_grant(
    target: &GrantTarget,
    endorsements: &Endorsements,
    policy: &Policy,
    now: u64,
    secret: &[u8],
    context: &[u8],
) -> Result<(Vec<u8>, VerifiedClaims)> {
    if secret.len() > MAX_SECRET {
        return Err(Error::Malformed(format!(
            "a grant carries at most {MAX_SECRET} bytes"
        )));
    }
    let claims = verify_evidence(&target.evidence, endorsements, now)?;
    if claims.report_data != report_data_for_grant_key(&target.public_key) {
        return Err(Error::Rejected(
            "the evidence does not bind this grant key (key substituted?)".into(),
        ));
    }
    policy.check(&claims, now)?;
    let public = <Kem as hpke::Kem>::PublicKey::from_bytes(&target.public_key)
        .map_err(|_| Error::Malformed("invalid X25519 grant key".into()))?;
    let (encapped, ciphertext) = hpke::single_shot_seal::<AesGcm256, HkdfSha256, Kem, _>(
        &OpModeS::Base,
        &public,
        INFO,
        secret,
        context,
        &mut UnwrapErr(OsRng),
    )
    .map_err(|e| Error::Platform(format!("HPKE seal failed: {e}")))?;
    let mut out = GRANT_MAGIC.to_vec();
    out.extend_from_slice(&encapped.to_bytes());
    out.extend_from_slice(&ciphertext);
    Ok((out, claims))
}

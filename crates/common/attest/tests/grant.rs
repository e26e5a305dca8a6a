//! Key release: the owner's secret reaches the attested enclave and nothing else.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

use chiron_attest::grant::{GrantKeyPair, seal_grant};
use chiron_attest::sim::{SimPlatform, SimSource, measure};
use chiron_attest::{Endorsements, Policy};

const SECRET: &[u8; 32] = b"owner dataset key: 32 bytes long";

fn enclave(code: &[u8]) -> SimSource {
    SimSource::new(SimPlatform::generate().unwrap(), measure(code, b""))
}

fn policy() -> Policy {
    Policy::sim_only(&measure(b"chiron-enclave", b""))
}

#[test]
fn an_attested_enclave_opens_the_grant_for_its_context() {
    let keys = GrantKeyPair::generate();
    let target = keys.target(&enclave(b"chiron-enclave")).unwrap();
    let (grant, claims) = seal_grant(
        &target,
        &Endorsements::default(),
        &policy(),
        0,
        SECRET,
        b"job 1 dataset key",
    )
    .unwrap();
    assert_eq!(claims.measurement, measure(b"chiron-enclave", b"").to_vec());
    assert!(
        !grant.windows(SECRET.len()).any(|w| w == SECRET),
        "secret visible in the grant"
    );
    assert_eq!(
        &keys.open(&grant, b"job 1 dataset key").unwrap()[..],
        SECRET
    );

    // Another context, a modified grant, or another enclave's key: nothing opens.
    assert!(keys.open(&grant, b"job 2 dataset key").is_err());
    for i in [0, 4, 20, 40, grant.len() - 1] {
        let mut bad = grant.clone();
        bad[i] ^= 1;
        assert!(
            keys.open(&bad, b"job 1 dataset key").is_err(),
            "flip at {i}"
        );
    }
    let other = GrantKeyPair::generate();
    assert!(other.open(&grant, b"job 1 dataset key").is_err());
}

#[test]
fn the_owner_refuses_to_seal_to_an_unattested_or_wrong_enclave() {
    // Wrong measurement.
    let keys = GrantKeyPair::generate();
    let target = keys.target(&enclave(b"modified-enclave")).unwrap();
    let err = seal_grant(
        &target,
        &Endorsements::default(),
        &policy(),
        0,
        SECRET,
        b"c",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("not in the policy's allow-list"), "{err}");

    // Genuine evidence, but the host swapped in its own key.
    let genuine = GrantKeyPair::generate()
        .target(&enclave(b"chiron-enclave"))
        .unwrap();
    let host_keys = GrantKeyPair::generate();
    let mut swapped = host_keys.target(&enclave(b"whatever")).unwrap();
    swapped.evidence = genuine.evidence.clone();
    let err = seal_grant(
        &swapped,
        &Endorsements::default(),
        &policy(),
        0,
        SECRET,
        b"c",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("does not bind this grant key"), "{err}");

    // Forged evidence.
    let mut forged = genuine.clone();
    forged.evidence.bytes[60] ^= 1;
    let err = seal_grant(
        &forged,
        &Endorsements::default(),
        &policy(),
        0,
        SECRET,
        b"c",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("signature does not verify"), "{err}");
}

//! RA-TLS handshakes over real loopback sockets, sim backend, both directions and every
//! rejection reason.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;

use chiron_attest::ratls::{self, Clock, RaTlsIdentity, RaTlsVerifier};
use chiron_attest::sim::{SimPlatform, SimSource, measure};
use chiron_attest::{Backend, Endorsements, Policy};

fn enclave(code: &[u8]) -> SimSource {
    SimSource::new(SimPlatform::generate().unwrap(), measure(code, b"config"))
}

fn verifier(accept: &[u8]) -> Arc<RaTlsVerifier> {
    Arc::new(RaTlsVerifier::new(
        Policy::sim_only(&measure(accept, b"config")),
        Endorsements::default(),
    ))
}

/// Runs one handshake on loopback and a one-line echo; returns (client result, server result).
fn handshake(
    server_config: rustls::ServerConfig,
    client_config: rustls::ClientConfig,
) -> (Result<Vec<u8>, String>, Result<(), String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = thread::spawn(move || -> Result<(), String> {
        let (sock, _) = listener.accept().map_err(|e| e.to_string())?;
        let conn =
            rustls::ServerConnection::new(Arc::new(server_config)).map_err(|e| e.to_string())?;
        let mut tls = rustls::StreamOwned::new(conn, sock);
        let mut buf = [0u8; 5];
        tls.read_exact(&mut buf).map_err(|e| e.to_string())?;
        tls.write_all(&buf).map_err(|e| e.to_string())?;
        tls.flush().map_err(|e| e.to_string())?;
        Ok(())
    });
    let client = (|| -> Result<Vec<u8>, String> {
        let sock = TcpStream::connect(addr).map_err(|e| e.to_string())?;
        let conn = rustls::ClientConnection::new(Arc::new(client_config), ratls::server_name())
            .map_err(|e| e.to_string())?;
        let mut tls = rustls::StreamOwned::new(conn, sock);
        tls.write_all(b"hello").map_err(|e| e.to_string())?;
        let mut buf = [0u8; 5];
        tls.read_exact(&mut buf).map_err(|e| e.to_string())?;
        Ok(buf.to_vec())
    })();
    (client, server.join().unwrap())
}

#[test]
fn mutual_handshake_between_two_enclaves_with_the_same_measurement() {
    let a = RaTlsIdentity::generate(&enclave(b"chiron-enclave")).unwrap();
    let b = RaTlsIdentity::generate(&enclave(b"chiron-enclave")).unwrap();
    let server = a.server_config(Some(verifier(b"chiron-enclave"))).unwrap();
    let client = b.client_config(verifier(b"chiron-enclave")).unwrap();
    let (c, s) = handshake(server, client);
    assert_eq!(c.unwrap(), b"hello");
    s.unwrap();

    // The peer's claims are recoverable from its certificate.
    let claims = verifier(b"chiron-enclave")
        .verify_certificate(a.certificate(), 0)
        .unwrap();
    assert_eq!(claims.backend, Backend::Sim);
    assert_eq!(
        claims.measurement,
        measure(b"chiron-enclave", b"config").to_vec()
    );
}

#[test]
fn one_way_handshake_for_an_owner_outside_any_tee() {
    let server_id = RaTlsIdentity::generate(&enclave(b"chiron-enclave")).unwrap();
    let (c, s) = handshake(
        server_id.server_config(None).unwrap(),
        ratls::client_config(verifier(b"chiron-enclave")).unwrap(),
    );
    assert_eq!(c.unwrap(), b"hello");
    s.unwrap();
}

#[test]
fn client_refuses_a_server_whose_measurement_the_policy_does_not_list() {
    let server_id = RaTlsIdentity::generate(&enclave(b"evil-enclave")).unwrap();
    let (c, s) = handshake(
        server_id.server_config(None).unwrap(),
        ratls::client_config(verifier(b"chiron-enclave")).unwrap(),
    );
    let err = c.unwrap_err();
    assert!(err.contains("not in the policy's allow-list"), "{err}");
    assert!(s.is_err(), "server sees the handshake fail too");
}

#[test]
fn server_refuses_a_client_enclave_with_another_measurement() {
    let server_id = RaTlsIdentity::generate(&enclave(b"chiron-enclave")).unwrap();
    let client_id = RaTlsIdentity::generate(&enclave(b"other-build")).unwrap();
    let (c, s) = handshake(
        server_id
            .server_config(Some(verifier(b"chiron-enclave")))
            .unwrap(),
        client_id
            .client_config(verifier(b"chiron-enclave"))
            .unwrap(),
    );
    let err = s.unwrap_err();
    assert!(err.contains("not in the policy's allow-list"), "{err}");
    assert!(c.is_err());
}

#[test]
fn server_requiring_mutual_ratls_refuses_a_client_without_a_certificate() {
    let server_id = RaTlsIdentity::generate(&enclave(b"chiron-enclave")).unwrap();
    let (c, s) = handshake(
        server_id
            .server_config(Some(verifier(b"chiron-enclave")))
            .unwrap(),
        ratls::client_config(verifier(b"chiron-enclave")).unwrap(),
    );
    assert!(s.is_err());
    assert!(c.is_err());
}

#[test]
fn evidence_copied_onto_another_key_is_refused() {
    let source = enclave(b"chiron-enclave");
    let genuine = RaTlsIdentity::generate(&source).unwrap();
    // Take the genuine certificate's evidence and staple it to a fresh key.
    let (evidence, _) = ratls::evidence_from_certificate(genuine.certificate()).unwrap();
    let thief_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let forged = RaTlsIdentity::with_evidence(thief_key, &evidence).unwrap();
    let (c, _) = handshake(
        forged.server_config(None).unwrap(),
        ratls::client_config(verifier(b"chiron-enclave")).unwrap(),
    );
    let err = c.unwrap_err();
    assert!(err.contains("evidence copied from another key"), "{err}");
}

#[test]
fn tampered_evidence_and_disallowed_backend_are_refused_with_reasons() {
    let genuine = RaTlsIdentity::generate(&enclave(b"chiron-enclave")).unwrap();
    let (mut evidence, _) = ratls::evidence_from_certificate(genuine.certificate()).unwrap();
    evidence.bytes[100] ^= 1;
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let tampered = RaTlsIdentity::with_evidence(key, &evidence).unwrap();
    let err = verifier(b"chiron-enclave")
        .verify_certificate(tampered.certificate(), 0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("signature does not verify"), "{err}");

    let hardware_only = Policy::from_toml(&format!(
        "backends = [\"sgx\", \"tdx\"]\nmeasurements = [\"{}\"]\n",
        chiron_attest::hex(&measure(b"chiron-enclave", b"config"))
    ))
    .unwrap();
    let v = RaTlsVerifier::new(hardware_only, Endorsements::default()).at(Clock::Fixed(0));
    let err = v
        .verify_certificate(genuine.certificate(), 0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("backend sim is not allowed"), "{err}");

    let plain = rcgen::generate_simple_self_signed(vec!["x".into()]).unwrap();
    let err = verifier(b"chiron-enclave")
        .verify_certificate(plain.cert.der(), 0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("carries no TEE evidence"), "{err}");
}

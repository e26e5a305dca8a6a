//! Two processes complete a mutual RA-TLS handshake on loopback (sim backend), and refuse a
//! peer whose measurement the policy does not list.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

const PEER: &str = env!("CARGO_BIN_EXE_chiron-ratls-peer");

fn policy(dir: &Path, name: &str, measurement: &str) -> String {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!("backends = [\"sim\"]\nmeasurements = [\"{measurement}\"]\n"),
    )
    .unwrap();
    path.to_str().unwrap().to_string()
}

fn own_measurement() -> String {
    chiron_attest::hex(&chiron_attest::sim::measure(
        &std::fs::read(PEER).unwrap(),
        b"",
    ))
}

/// Starts a server, connects a client; returns (server ok, server output, client ok, client output).
fn run_pair(server_policy: &str, client_policy: &str, dir: &Path) -> (bool, String, bool, String) {
    let key = dir.join("platform.key");
    let key = key.to_str().unwrap();
    let mut server = Command::new(PEER)
        .args(["--platform-key", key, "--policy", server_policy, "serve"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let mut addr = None;
    let mut server_out = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        server_out.push_str(&line);
        server_out.push('\n');
        if let Some(a) = line.strip_prefix("listening ") {
            addr = Some(a.to_string());
            break;
        }
    }
    let addr = addr.expect("server prints its address");
    let client = Command::new(PEER)
        .args([
            "--platform-key",
            key,
            "--policy",
            client_policy,
            "connect",
            "--to",
            &addr,
        ])
        .output()
        .unwrap();
    for line in lines {
        server_out.push_str(&line.unwrap());
        server_out.push('\n');
    }
    let status = server.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut server.stderr.take().unwrap(), &mut err).unwrap();
    server_out.push_str(&err);
    let client_out = format!(
        "{}{}",
        String::from_utf8_lossy(&client.stdout),
        String::from_utf8_lossy(&client.stderr)
    );
    (
        status.success(),
        server_out,
        client.status.success(),
        client_out,
    )
}

#[test]
fn same_measurement_peers_complete_a_mutual_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let m = own_measurement();
    let p = policy(dir.path(), "p.toml", &m);
    let (s_ok, s_out, c_ok, c_out) = run_pair(&p, &p, dir.path());
    assert!(s_ok && c_ok, "server:\n{s_out}\nclient:\n{c_out}");
    assert!(
        s_out.contains(&format!("\"measurement\":\"{m}\"")),
        "{s_out}"
    );
    assert!(
        c_out.contains(&format!("\"measurement\":\"{m}\"")),
        "{c_out}"
    );
    assert!(
        c_out.contains("WARNING: sim TEE backend"),
        "sim use is loud: {c_out}"
    );
}

#[test]
fn a_peer_whose_measurement_the_policy_does_not_list_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let good = policy(dir.path(), "good.toml", &own_measurement());
    let other = policy(dir.path(), "other.toml", &"ab".repeat(48));

    let (s_ok, _, c_ok, c_out) = run_pair(&good, &other, dir.path());
    assert!(!c_ok && !s_ok);
    assert!(c_out.contains("not in the policy's allow-list"), "{c_out}");

    let (s_ok, s_out, c_ok, _) = run_pair(&other, &good, dir.path());
    assert!(!s_ok && !c_ok);
    assert!(s_out.contains("not in the policy's allow-list"), "{s_out}");
}

//! The host's supervisor with stand-in enclave processes (shell scripts that print the
//! `listening ADDR` line the real enclave prints): a process that exits is restarted, a killed
//! one too, and both show in the transcript and the metrics.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use chiron_host::{EnclaveCommand, Host, HostConfig};

fn script(dir: &Path, body: &str) -> std::path::PathBuf {
    let path = dir.join("fake-enclave.sh");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

async fn host(dir: &Path, body: &str) -> Host {
    Host::start(HostConfig {
        api_listen: "127.0.0.1:0".into(),
        enclave_listen: "127.0.0.1:0".into(),
        metrics_listen: "127.0.0.1:0".into(),
        store: dir.join("store").display().to_string(),
        enclave: EnclaveCommand {
            program: script(dir, body),
            args: vec![],
        },
        echo_log: false,
        shared_store: false,
        transcript_entries: chiron_host::transcript::DEFAULT_ENTRIES,
    })
    .await
    .unwrap()
}

async fn until(limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < limit,
            "condition not reached in {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enclave_that_exits_is_restarted() {
    let dir = tempfile::tempdir().unwrap();
    // Announces itself, then crashes.
    let host = host(dir.path(), "echo listening 127.0.0.1:9\nsleep 0.2\nexit 3").await;
    until(Duration::from_secs(20), || host.enclave_restarts() >= 2).await;
    let texts = host.transcript().texts();
    assert!(
        texts
            .iter()
            .any(|t| t.contains("enclave exited (exit status: 3)")),
        "{texts:#?}"
    );
    assert!(texts.iter().filter(|t| *t == "enclave started").count() >= 3);
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_enclave_is_restarted_with_a_new_process() {
    let dir = tempfile::tempdir().unwrap();
    let host = host(dir.path(), "echo listening 127.0.0.1:9\nexec sleep 600").await;
    let first = host.enclave_pid().unwrap();
    host.kill_enclave();
    until(Duration::from_secs(20), || {
        host.enclave_restarts() == 1 && host.enclave_pid().is_some_and(|p| p != first)
    })
    .await;
    let texts = host.transcript().texts();
    assert!(texts.iter().any(|t| t.contains("signal: 9")), "{texts:#?}");
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enclave_that_never_announces_itself_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let program = script(dir.path(), "echo something else\nexit 0");
    let result = Host::start(HostConfig {
        api_listen: "127.0.0.1:0".into(),
        enclave_listen: "127.0.0.1:0".into(),
        metrics_listen: "127.0.0.1:0".into(),
        store: dir.path().join("store").display().to_string(),
        enclave: EnclaveCommand {
            program,
            args: vec![],
        },
        echo_log: false,
        shared_store: false,
        transcript_entries: chiron_host::transcript::DEFAULT_ENTRIES,
    })
    .await;
    let e = result.err().expect("refused").to_string();
    assert!(e.contains("did not report a listening address"), "{e}");
}

/// Puts `name` through the host API, presenting `lease` if given.
async fn put(host: &Host, name: &str, lease: Option<&str>) -> Result<(), tonic::Status> {
    let mut client =
        chiron_proto::host::blobs_client::BlobsClient::connect(format!("http://{}", host.api_addr))
            .await
            .unwrap();
    let mut request =
        tonic::Request::new(tokio_stream::iter(chiron_proto::blob_chunks(name, b"x")));
    if let Some(lease) = lease {
        request
            .metadata_mut()
            .insert(chiron_proto::HOST_LEASE_HEADER, lease.parse().unwrap());
    }
    client.put(request).await.map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_with_an_earlier_launch_s_lease_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let lease_file = dir.path().join("lease");
    // The stand-in keeps the lease it was given on standard input, as the enclave does.
    let host = host(
        dir.path(),
        &format!(
            "read lease\necho \"$lease\" > {}\necho listening 127.0.0.1:9\nexec sleep 600",
            lease_file.display()
        ),
    )
    .await;
    let read_lease = || {
        std::fs::read_to_string(&lease_file)
            .unwrap()
            .trim()
            .to_string()
    };
    until(Duration::from_secs(20), || {
        lease_file.exists() && !read_lease().is_empty()
    })
    .await;
    let first = read_lease();
    put(&host, "jobs/a", Some(&first)).await.unwrap();
    // A party's upload carries no lease.
    put(&host, "datasets/d", None).await.unwrap();

    // A new launch: the old lease is now refused, and nothing is stored under it.
    host.kill_enclave();
    until(Duration::from_secs(20), || {
        let now = read_lease();
        !now.is_empty() && now != first
    })
    .await;
    let e = put(&host, "jobs/b", Some(&first)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e}");
    assert!(!dir.path().join("store/jobs/b").exists());
    put(&host, "jobs/b", Some(&read_lease())).await.unwrap();
    assert!(dir.path().join("store/jobs/b").exists());
    let texts = host.transcript().texts();
    assert!(
        texts.iter().any(|t| t.contains("blob put refused")),
        "{texts:#?}"
    );
    host.shutdown().await;
}

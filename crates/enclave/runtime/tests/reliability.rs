//! Reliability under faults and load, through the real service: a host killed outright takes
//! its enclave along and its successor finds every job intact; one store never has two hosts;
//! a thousand connections that never speak keep nobody out and are closed; 64 clients at once
//! are all served.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chiron_connect::decode_predictions;
use chiron_data::Dataset;
use chiron_host::Host;
use common::{OWNER_TOKEN, Parties, Service, digits, fixture, host_config, policy};

/// Where the re-executed test binary finds the work directory of the host it runs.
const HOST_DIR_VAR: &str = "CHIRON_TEST_HOST_PROCESS_DIR";

/// Not a test: the host process the other tests start (this binary, re-executed with
/// [`HOST_DIR_VAR`] set), so that they can kill a host as an operator's machine would.
/// Prints the host's addresses and its enclave's process id, then serves until killed.
#[test]
#[ignore = "run only as the child process of the host-kill test"]
fn host_process() {
    let Some(dir) = std::env::var_os(HOST_DIR_VAR) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let host = Host::start(host_config(std::path::Path::new(&dir), Vec::new()))
            .await
            .unwrap();
        println!("api {}", host.api_addr);
        println!("relay {}", host.enclave_addr);
        println!("enclave-pid {}", host.enclave_pid().unwrap());
        std::future::pending::<()>().await;
    });
}

/// A host running in a child process.
struct HostProcess {
    child: Child,
    parties: Parties,
    enclave_pid: u32,
}

impl HostProcess {
    fn start(work: &std::path::Path) -> Self {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "host_process", "--ignored", "--nocapture"])
            .env(HOST_DIR_VAR, work)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut value = |key: &str| loop {
            let line = lines.next().expect("the host process ended").unwrap();
            if let Some(v) = line.strip_prefix(&format!("{key} ")) {
                return v.trim().to_string();
            }
        };
        let api = value("api").parse().unwrap();
        let relay = value("relay").parse().unwrap();
        let enclave_pid = value("enclave-pid").parse().unwrap();
        // Keep reading its output so it can never block on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Self {
            child,
            parties: Parties::new(api, relay, chiron_seal::MasterKey::generate().unwrap()),
            enclave_pid,
        }
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether process `pid` has ended (gone, or a zombie no one has reaped yet).
fn ended(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X')),
    }
}

async fn phase_of(parties: &Parties, job: &str) -> String {
    parties
        .status(job)
        .await
        .ok()
        .and_then(|r| r.status)
        .map(|s| s.phase)
        .unwrap_or_default()
}

/// Registers the mlp trainer, submits a job on digits under `policy` and releases it: the
/// trainer's digest and the job id.
async fn started(parties: &Parties, data: &Dataset, policy: &str) -> (String, String) {
    let digest = parties.register(fixture("mlp")).await.unwrap();
    let job = parties.submit(&digest, data, policy).await;
    parties.release(&job).await;
    (digest, job)
}

/// [`started`], then waits until the job is ready.
async fn finished(parties: &Parties, data: &Dataset, policy: &str) -> (String, String) {
    let (digest, job) = started(parties, data, policy).await;
    let done = parties.wait(&job, Duration::from_secs(120)).await;
    assert_eq!(done.status.unwrap().phase, "ready");
    (digest, job)
}

/// Kills the enclave and waits until its successor answers the owner's status of `job`.
async fn restart_enclave(service: &Service, job: &str) -> chiron_proto::enclave::JobStatus {
    service.host.kill_enclave();
    let start = Instant::now();
    loop {
        if let Ok(reply) = service.status(job).await {
            return reply.status.unwrap();
        }
        assert!(start.elapsed() < Duration::from_secs(120), "no restart");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_host_takes_its_enclave_along_and_its_successor_finds_every_job_intact() {
    let work = tempfile::tempdir().unwrap();
    let data = digits();
    let host = HostProcess::start(work.path());

    // A job that finishes before the host dies, and one that is still training when it does.
    let (_, done) = finished(
        &host.parties,
        &data,
        &policy(3, 3, "output = \"label\"", ""),
    )
    .await;
    let before = host.parties.predict_split(&done, &data, "test").await;
    let (_, running) = started(
        &host.parties,
        &data,
        &policy(200, 12, "output = \"label\"", ""),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(phase_of(&host.parties, &running).await, "training");

    // SIGKILL: no handler runs, nothing is cleaned up by the host itself.
    let enclave_pid = host.enclave_pid;
    let mut host = host;
    host.child.kill().unwrap();
    host.child.wait().unwrap();
    let start = Instant::now();
    while !ended(enclave_pid) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the enclave {enclave_pid} outlived its killed host"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(host);

    // The successor claims the store (the dead host's claim went with it) and resumes.
    let service = Service::start_with(work, Vec::new()).await;
    assert_eq!(phase_of(&service, &done).await, "ready");
    let after = service.predict_split(&done, &data, "test").await;
    assert_eq!(before, after, "the finished job's model changed");
    let resumed = service.wait(&running, Duration::from_secs(300)).await;
    let s = resumed.status.unwrap();
    assert_eq!((s.phase.as_str(), s.failure.as_str()), ("ready", ""));
    let texts = service.host.transcript().texts();
    assert!(
        !texts.iter().any(|t| t.contains("refused")),
        "a write was refused: {texts:#?}"
    );
    service.host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_host_on_the_same_store_is_refused_and_changes_nothing() {
    let service = Service::start().await;
    let before = std::fs::read_dir(service.work.path().join("store"))
        .unwrap()
        .count();
    let second = Host::start(host_config(service.work.path(), Vec::new())).await;
    let e = second
        .err()
        .expect("a second host started on a claimed store");
    assert!(e.to_string().contains("another chiron-host"), "{e}");
    let after = std::fs::read_dir(service.work.path().join("store"))
        .unwrap()
        .count();
    assert_eq!(before, after);
    // The first is unaffected.
    assert!(service.list_jobs().await.is_empty());
    service.host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_silent_connections_keep_no_one_out_and_are_closed() {
    use tokio::io::AsyncReadExt;
    let service = Service::start().await;
    let mut silent = Vec::new();
    for _ in 0..1000 {
        silent.push(
            tokio::net::TcpStream::connect(service.host.enclave_addr)
                .await
                .unwrap(),
        );
    }
    // Another client is served while they hang.
    let start = Instant::now();
    assert!(service.list_jobs().await.is_empty());
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "served only after {:?}",
        start.elapsed()
    );
    // Each is closed once its handshake time is up, by the enclave and then by the relay.
    let limit = chiron_enclave::server::HANDSHAKE_TIMEOUT + Duration::from_secs(15);
    let closed = futures::future::join_all(silent.iter_mut().map(|s| async move {
        let mut byte = [0u8; 1];
        matches!(
            tokio::time::timeout(limit, s.read(&mut byte)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }))
    .await;
    let open = closed.iter().filter(|c| !**c).count();
    assert_eq!(
        open, 0,
        "{open} silent connections still open after {limit:?}"
    );
    assert!(service.list_jobs().await.is_empty());
    service.host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_clients_at_once_are_all_served() {
    const CLIENTS: usize = 64;
    const RUN: Duration = Duration::from_secs(30);
    let service = Service::start().await;
    let data = digits();
    // No fixed reply time (each answer as soon as it is computed) and no rate limit worth
    // the name: what is measured is the service's own capacity to queue and serve.
    let policy = policy(3, 3, "output = \"label\"\nlatency_ms = { 512 = 0 }", "")
        .replace("rate_per_second = 1000", "rate_per_second = 1000000");
    let (_, job) = finished(&service, &data, &policy).await;
    let record: Vec<f32> = data.split_f32("test").unwrap()[..64].to_vec();
    let end = Instant::now() + RUN;
    let clients = (0..CLIENTS).map(|_| {
        let (parties, job, record) = (&service.parties, job.clone(), record.clone());
        async move {
            // One connection per client, as 64 separate owners' tools would have.
            let mut owner = parties.owner().await;
            let (mut served, mut errors) = (0u32, Vec::new());
            while Instant::now() < end {
                let reply = owner
                    .predict(chiron_proto::enclave::PredictRequest {
                        job_id: job.clone(),
                        owner_token: OWNER_TOKEN.to_vec(),
                        count: 1,
                        inputs: chiron_connect::encode_inputs(&record),
                    })
                    .await;
                match reply.map(|r| decode_predictions(&r.into_inner())) {
                    Ok(Ok(_)) => served += 1,
                    Ok(Err(e)) => errors.push(e.to_string()),
                    Err(status) => errors.push(status.to_string()),
                }
            }
            (served, errors)
        }
    });
    let results = futures::future::join_all(clients).await;
    let served: u32 = results.iter().map(|r| r.0).sum();
    let errors: Vec<&String> = results.iter().flat_map(|r| &r.1).collect();
    assert!(
        errors.is_empty(),
        "{} errors in {served} calls, first: {:?}",
        errors.len(),
        errors.first()
    );
    assert!(results.iter().all(|r| r.0 > 0), "a client was never served");
    service.host.shutdown().await;
}

/// The store directory of `service`.
fn store(service: &Service) -> std::path::PathBuf {
    service.work.path().join("store")
}

/// Waits until `done` holds for the host's transcript (or panics after `limit`).
async fn until_transcript(service: &Service, limit: Duration, done: impl Fn(&[String]) -> bool) {
    let start = Instant::now();
    loop {
        let texts = service.host.transcript().texts();
        if done(&texts) {
            return;
        }
        assert!(start.elapsed() < limit, "not reached: {texts:#?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_damaged_newest_checkpoint_resumes_from_the_other_slot() {
    let service = Service::start().await;
    let data = digits();
    let (_, job) = started(&service, &data, &policy(200, 15, "output = \"label\"", "")).await;
    // Right after the second checkpoint's status (its record points at it): the next is a
    // grid interval (1.5 s) away.
    let status_prefix = format!("status job {job} training step ");
    until_transcript(&service, Duration::from_secs(120), |t| {
        t.iter()
            .filter(|l| l.starts_with(&status_prefix) && !l.contains("step 0/"))
            .count()
            >= 2
    })
    .await;
    let put_prefix = format!("blob put checkpoints/{job}/");
    let texts = service.host.transcript().texts();
    let newest = texts
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix(&put_prefix))
        .and_then(|rest| rest.split(' ').next())
        .unwrap()
        .to_string();
    let path = store(&service).join(format!("checkpoints/{job}/{newest}"));
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&path, bytes).unwrap();
    service.host.kill_enclave();

    let done = service.wait(&job, Duration::from_secs(300)).await;
    let s = done.status.unwrap();
    assert_eq!((s.phase.as_str(), s.failure.as_str()), ("ready", ""));
    let texts = service.host.transcript().texts();
    let restart = texts
        .iter()
        .position(|t| t.starts_with("enclave exited"))
        .unwrap();
    let other = if newest == "0" { "1" } else { "0" };
    let after: Vec<&String> = texts[restart..].iter().collect();
    let got = |slot: &str| {
        after
            .iter()
            .position(|t| t.starts_with(&format!("blob get checkpoints/{job}/{slot} ")))
    };
    assert!(
        matches!((got(&newest), got(other)), (Some(a), Some(b)) if a < b),
        "no fallback from slot {newest} to {other}: {after:#?}"
    );
    service.host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_store_that_fails_for_a_few_seconds_loses_no_job() {
    let service = Service::start().await;
    let data = digits();
    // 60 epochs (~2,700 steps) end well inside the 6 s budget even on a loaded machine (200
    // did not, at times, and the job then failed as a trainer still running at its end).
    let (_, job) = started(&service, &data, &policy(60, 6, "output = \"label\"", "")).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Every write the job makes fails for six seconds — checkpoints, records, its model at
    // the end — as with a full disk: each directory is replaced by a plain file.
    let broken = ["checkpoints", "jobs", "models"];
    for dir in broken {
        let path = store(&service).join(dir);
        if path.exists() {
            std::fs::rename(&path, store(&service).join(format!("{dir}.away"))).unwrap();
        }
        std::fs::write(&path, b"not a directory").unwrap();
    }
    tokio::time::sleep(Duration::from_secs(6)).await;
    let texts = service.host.transcript().texts();
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with("blob put") && t.contains("failed")),
        "no write failed while the store was broken: {texts:#?}"
    );
    for dir in broken {
        let path = store(&service).join(dir);
        std::fs::remove_file(&path).unwrap();
        let away = store(&service).join(format!("{dir}.away"));
        if away.exists() {
            std::fs::rename(away, &path).unwrap();
        }
    }
    let done = service.wait(&job, Duration::from_secs(120)).await;
    let s = done.status.unwrap();
    assert_eq!((s.phase.as_str(), s.failure.as_str()), ("ready", ""));
    assert_eq!(service.host.enclave_restarts(), 0);
    let predictions = service.predict_split(&job, &data, "test").await;
    assert_eq!(predictions.len(), data.split("test").unwrap().labels.len());
    service.host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_truncated_model_is_reported_damaged_never_ready() {
    let service = Service::start().await;
    let data = digits();
    let (_, job) = finished(&service, &data, &policy(3, 3, "output = \"label\"", "")).await;
    let model = store(&service).join(format!("models/{job}"));
    let len = std::fs::metadata(&model).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&model)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    // A fresh enclave process (the first had the model in memory already).
    let status = restart_enclave(&service, &job).await;
    assert_eq!(
        (status.phase.as_str(), status.failure.as_str()),
        ("failed", "model-damaged")
    );
    let record = data.split_f32("test").unwrap()[..64].to_vec();
    let reply = service
        .predict_raw(&job, &OWNER_TOKEN, 1, &record)
        .await
        .unwrap();
    assert_eq!(reply.failure, "model-damaged");
    service.host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_whose_record_is_damaged_is_listed_with_its_blobs() {
    let service = Service::start().await;
    let data = digits();
    let (digest, job) = finished(&service, &data, &policy(3, 3, "output = \"label\"", "")).await;
    assert!(service.job_list().await.damaged.is_empty());
    let record = store(&service).join(format!("jobs/{job}"));
    std::fs::write(&record, b"truncated").unwrap();
    // The job is gone for its successor: its owner is told there is no such job.
    service.host.kill_enclave();
    let start = Instant::now();
    loop {
        match service.status(&job).await {
            Err(e) if e.code() == tonic::Code::NotFound => break,
            _ => assert!(start.elapsed() < Duration::from_secs(120), "no restart"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // No job of the operator's is left to vouch for its token: registering its trainer again
    // does (nothing else may list the store's blobs).
    assert!(service.job_list().await.damaged.is_empty());
    assert_eq!(service.register(fixture("mlp")).await.unwrap(), digest);
    let list = service.job_list().await;
    // The job itself is gone from the list: only its blobs remain, named.
    assert!(list.jobs.is_empty(), "{:?}", list.jobs);
    let damaged: Vec<_> = list
        .damaged
        .iter()
        .map(|d| (d.job_id.as_str(), d.reason.as_str()))
        .collect();
    assert_eq!(damaged, vec![(job.as_str(), "record-damaged")]);
    let blobs = &list.damaged[0].blobs;
    assert!(blobs.contains(&format!("jobs/{job}")), "{blobs:?}");
    assert!(blobs.contains(&format!("models/{job}")), "{blobs:?}");
    service.host.shutdown().await;
}

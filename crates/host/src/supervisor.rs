//! Launches the enclave process, learns its address, and restarts it whenever it exits (a
//! crash, a kill, an out-of-memory), so that it can resume its jobs from sealed checkpoints.
//!
//! The enclave never outlives its host: its standard input is a pipe from the host, which
//! the kernel closes when the host exits however it exits (SIGKILL included), and the enclave
//! exits when it reads end-of-file there. Each launch also gets a fresh [`Lease`], the first
//! line on that pipe, which the host API demands on every write: a process of an earlier
//! launch that has not yet noticed cannot write next to its successor.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::{Notify, mpsc};

use crate::config::EnclaveCommand;
use crate::metrics::Metrics;
use crate::{HostError, Transcript};

/// How long an enclave may take to start serving.
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// glibc malloc settings of the enclave process, always set (the enclave refuses to start
/// without exactly these; see [`chiron_proto::ENCLAVE_MALLOC_TUNABLES`]).
pub use chiron_proto::ENCLAVE_MALLOC_TUNABLES;

/// Pause before a restart (a crash loop must not spin).
const RESTART_DELAY: Duration = Duration::from_millis(200);

/// Longest enclave stderr line kept in the transcript (characters).
const MAX_STDERR_LINE: usize = 1024;

/// The lease of the enclave process now running: a generation tag (not a secret — the host
/// makes it and is trusted with nothing) that tells this launch's writes from any other's.
#[derive(Default)]
pub struct Lease(Mutex<Option<String>>);

impl Lease {
    /// Whether a write that presented `presented` (the [`chiron_proto::HOST_LEASE_HEADER`]
    /// value, if any) may go on: one without a lease comes from a party (a dataset upload),
    /// one with a lease only from the current launch.
    pub fn admits(&self, presented: Option<&str>) -> bool {
        match presented {
            None => true,
            Some(p) => self.0.lock().is_ok_and(|l| l.as_deref() == Some(p)),
        }
    }

    fn renew(&self, launch: u64) -> String {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let lease = format!("{}-{launch}-{nanos}", std::process::id());
        if let Ok(mut l) = self.0.lock() {
            *l = Some(lease.clone());
        }
        lease
    }
}

#[derive(Default)]
struct Current {
    pid: Option<u32>,
    addr: Option<SocketAddr>,
    stopping: bool,
}

/// The enclave's supervisor.
pub struct Supervisor {
    command: EnclaveCommand,
    api_addr: SocketAddr,
    transcript: Arc<Transcript>,
    metrics: Arc<Metrics>,
    current: Mutex<Current>,
    lease: Arc<Lease>,
    launches: AtomicU64,
    changed: Notify,
    restarts: AtomicU64,
    kill: Mutex<Option<mpsc::UnboundedSender<()>>>,
    monitor: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Supervisor {
    /// A supervisor that will run `command` with `--host-api http://{api_addr} --lease-stdin`
    /// appended, renewing `lease` at every launch.
    pub fn new(
        command: EnclaveCommand,
        api_addr: SocketAddr,
        lease: Arc<Lease>,
        transcript: Arc<Transcript>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            command,
            api_addr,
            transcript,
            metrics,
            current: Mutex::new(Current::default()),
            lease,
            launches: AtomicU64::new(0),
            changed: Notify::new(),
            restarts: AtomicU64::new(0),
            kill: Mutex::new(None),
            monitor: Mutex::new(None),
        }
    }

    /// Launches the enclave and waits until it serves; then keeps it running.
    pub async fn start(self: Arc<Self>) -> Result<(), HostError> {
        let (child, lifeline) = self.launch().await?;
        let (tx, rx) = mpsc::unbounded_channel();
        if let Ok(mut k) = self.kill.lock() {
            *k = Some(tx);
        }
        let monitor = tokio::spawn(self.clone().monitor(child, lifeline, rx));
        if let Ok(mut m) = self.monitor.lock() {
            *m = Some(monitor);
        }
        Ok(())
    }

    /// Starts the enclave; returns it and the write end of its standard input, which must
    /// stay open for as long as the enclave is to live (held apart from the `Child`, whose
    /// `wait` would close it).
    async fn launch(&self) -> Result<(Child, ChildStdin), HostError> {
        let mut command = Command::new(&self.command.program);
        command.env("GLIBC_TUNABLES", ENCLAVE_MALLOC_TUNABLES);
        let mut child = command
            .args(&self.command.args)
            .arg("--host-api")
            .arg(format!("http://{}", self.api_addr))
            .arg("--lease-stdin")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                HostError::Enclave(format!(
                    "cannot start {}: {e}",
                    self.command.program.display()
                ))
            })?;
        // The lease, then nothing: the pipe stays open for as long as the monitor holds it (a
        // stand-in that does not read it is no matter; the line fits the pipe).
        let lease = self
            .lease
            .renew(self.launches.fetch_add(1, Ordering::Relaxed));
        let mut lifeline = child
            .stdin
            .take()
            .ok_or_else(|| HostError::Enclave("no standard input".into()))?;
        let _ = lifeline.write_all(format!("{lease}\n").as_bytes()).await;
        let _ = lifeline.flush().await;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| HostError::Enclave("no standard output".into()))?;
        // What the enclave writes to stderr is part of what the operator sees: it goes to the
        // transcript, line by line (each cut to a bounded length).
        if let Some(stderr) = child.stderr.take() {
            let transcript = self.transcript.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let cut: String = line.chars().take(MAX_STDERR_LINE).collect();
                    transcript.log(&format!("enclave stderr: {cut}"));
                }
            });
        }
        let mut lines = BufReader::new(stdout).lines();
        let addr = tokio::time::timeout(START_TIMEOUT, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(a) = line.strip_prefix("listening ") {
                    return a.trim().parse::<SocketAddr>().ok();
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .ok_or_else(|| {
            HostError::Enclave("the enclave did not report a listening address".into())
        })?;
        // Keep draining its standard output so it can never block on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        if let Ok(mut c) = self.current.lock() {
            c.pid = child.id();
            c.addr = Some(addr);
        }
        self.changed.notify_waiters();
        self.transcript.log("enclave started");
        Ok((child, lifeline))
    }

    async fn monitor(
        self: Arc<Self>,
        mut child: Child,
        mut lifeline: ChildStdin,
        mut kill: mpsc::UnboundedReceiver<()>,
    ) {
        loop {
            let status = tokio::select! {
                s = child.wait() => s,
                Some(()) = kill.recv() => {
                    let _ = child.start_kill();
                    child.wait().await
                }
            };
            // The pipe of a process that has ended; the next launch gets its own.
            drop(lifeline);
            if let Ok(mut c) = self.current.lock() {
                c.pid = None;
                c.addr = None;
                if c.stopping {
                    return;
                }
            }
            let how = match status {
                Ok(s) => s.to_string(),
                Err(e) => e.to_string(),
            };
            self.transcript
                .log(&format!("enclave exited ({how}); restarting"));
            (child, lifeline) = loop {
                tokio::time::sleep(RESTART_DELAY).await;
                if self.current.lock().map_or(true, |c| c.stopping) {
                    return;
                }
                match self.launch().await {
                    Ok(c) => break c,
                    Err(e) => {
                        self.transcript.log(&format!("enclave restart failed: {e}"));
                        tokio::time::sleep(Duration::from_secs(2)).await;
                    }
                }
            };
            self.restarts.fetch_add(1, Ordering::Relaxed);
            Metrics::inc(&self.metrics.enclave_restarts);
        }
    }

    /// The enclave's current address, waiting (up to a minute) while it restarts.
    pub async fn target(&self) -> Option<SocketAddr> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let notified = self.changed.notified();
            if let Some(a) = self.current.lock().ok().and_then(|c| c.addr) {
                return Some(a);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }

    /// The enclave's process id, if it runs.
    pub fn pid(&self) -> Option<u32> {
        self.current.lock().ok().and_then(|c| c.pid)
    }

    /// Restarts after exits so far.
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }

    /// Kills the enclave process (SIGKILL); the supervisor restarts it.
    pub fn kill_enclave(&self) {
        if let Some(tx) = self.kill.lock().ok().and_then(|k| k.clone()) {
            let _ = tx.send(());
        }
    }

    /// Stops supervising and kills the enclave.
    pub async fn stop(&self) {
        if let Ok(mut c) = self.current.lock() {
            c.stopping = true;
        }
        self.kill_enclave();
        let monitor = self.monitor.lock().ok().and_then(|mut m| m.take());
        if let Some(m) = monitor {
            let _ = tokio::time::timeout(Duration::from_secs(10), m).await;
        }
    }

    /// Kills the enclave without waiting (from `Drop`).
    pub fn kill_now(&self) {
        if let Ok(mut c) = self.current.lock() {
            c.stopping = true;
        }
        if let Some(m) = self.monitor.lock().ok().and_then(|mut m| m.take()) {
            // Dropping the task drops the child, which is killed on drop.
            m.abort();
        }
    }
}

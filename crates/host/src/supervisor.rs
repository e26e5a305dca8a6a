//! Launches the enclave process, learns its address, and restarts it whenever it exits (a
//! crash, a kill, an out-of-memory), so that it can resume its jobs from sealed checkpoints.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
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
    changed: Notify,
    restarts: AtomicU64,
    kill: Mutex<Option<mpsc::UnboundedSender<()>>>,
    monitor: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Supervisor {
    /// A supervisor that will run `command` with `--host-api http://{api_addr}` appended.
    pub fn new(
        command: EnclaveCommand,
        api_addr: SocketAddr,
        transcript: Arc<Transcript>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            command,
            api_addr,
            transcript,
            metrics,
            current: Mutex::new(Current::default()),
            changed: Notify::new(),
            restarts: AtomicU64::new(0),
            kill: Mutex::new(None),
            monitor: Mutex::new(None),
        }
    }

    /// Launches the enclave and waits until it serves; then keeps it running.
    pub async fn start(self: Arc<Self>) -> Result<(), HostError> {
        let child = self.launch().await?;
        let (tx, rx) = mpsc::unbounded_channel();
        if let Ok(mut k) = self.kill.lock() {
            *k = Some(tx);
        }
        let monitor = tokio::spawn(self.clone().monitor(child, rx));
        if let Ok(mut m) = self.monitor.lock() {
            *m = Some(monitor);
        }
        Ok(())
    }

    async fn launch(&self) -> Result<Child, HostError> {
        let mut command = Command::new(&self.command.program);
        command.env("GLIBC_TUNABLES", ENCLAVE_MALLOC_TUNABLES);
        let mut child = command
            .args(&self.command.args)
            .arg("--host-api")
            .arg(format!("http://{}", self.api_addr))
            .stdin(Stdio::null())
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
        Ok(child)
    }

    async fn monitor(self: Arc<Self>, mut child: Child, mut kill: mpsc::UnboundedReceiver<()>) {
        loop {
            let status = tokio::select! {
                s = child.wait() => s,
                Some(()) = kill.recv() => {
                    let _ = child.start_kill();
                    child.wait().await
                }
            };
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
            child = loop {
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

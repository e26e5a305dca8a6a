//! Constant resources: what the host can measure of the enclave process from outside — its
//! resident memory and its CPU time (`/proc/<pid>/{status,stat}`, cgroups) — must not follow
//! what a trainer does with the data.
//!
//! - **Memory.** glibc keeps every freed byte ([`chiron_proto::ENCLAVE_MALLOC_TUNABLES`],
//!   checked by [`Resources::start`]) and start-up touches a heap of `--memory-mib`, so later
//!   allocations reuse pages that are already resident and frees return nothing. Each job
//!   reserves its engine budget (policy `memory_mib`, plus a margin for the temporaries of the
//!   operations) from that heap when it starts; a job that does not fit fails then, before its
//!   trainer runs, never midway. The sandbox keeps its instance slots resident
//!   (`SandboxLimits::resident_memory`); a trainer thread touches its whole stack when it
//!   starts ([`touch_stack`]) and lives until the job's end. Every page of the files the
//!   process maps (its code) is mapped in at start-up too ([`crate::mapped_files`]): which
//!   engine operations a trainer calls does not show as code pages arriving.
//! - **CPU.** A confined job (policy `constant_cpu`) does all its work on one thread, which
//!   never waits on another: engine operations run inline ([`chiron_engine::on_this_thread`])
//!   and, once the trainer returns, the thread spins to the job's end ([`wait_until`]). Each
//!   job's thread is runnable from its start to its end, so its CPU time — per thread, as
//!   `/proc/<pid>/task/*/stat` shows it — is its share of the cores, whatever the trainer does.
//!   While any job runs, [`CpuFill`] keeps every core the enclave may use busy with
//!   one spinning thread per core under `SCHED_IDLE`: the process's CPU time is cores × wall
//!   time whatever trainers compute, and any normal thread that wakes (trainers, the engine's
//!   workers) preempts a spinner at once. (Nice 19 was not enough: the engine's workers, waking
//!   every few hundred microseconds, waited out the spinners' slices — 12–23 % slower training
//!   in `bench/constant-resources.sh` with `FILL=nice`.)
//!
//! What is left (docs/service.md): a job whose allocations outgrow its reservation (temporaries
//! beyond the margin, fragmentation) grows the heap once, by that much; a job's thread still
//! blocks briefly where it shares a lock (the one malloc arena, the offer slot), which counts in
//! its context switches.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use chiron_proto::ENCLAVE_MALLOC_TUNABLES;
use chiron_proto::job::JobPolicy;
use chiron_proto::vocab::FailureCode;

use crate::schedule::sleep_until;

/// The runtime's own share of the heap (connections, records, sealing buffers, predictions):
/// never reserved for jobs.
pub const RUNTIME_SHARE_BYTES: u64 = 256 << 20;

/// What a job reserves beyond its engine budget: a quarter of the budget (temporaries of
/// operations, allocator slack) and this much for its instance's host-side state.
pub const JOB_OVERHEAD_BYTES: u64 = 32 << 20;

/// Stack of a trainer thread: the guest's wasm stack (`SandboxLimits::max_wasm_stack`), the
/// host calls under it and the engine's frames, with room to spare.
pub const TRAINER_STACK_BYTES: usize = 4 << 20;

/// Why the enclave cannot hold its resources constant.
#[derive(Debug)]
pub struct ResourceError(String);

impl std::fmt::Display for ResourceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ResourceError {}

impl ResourceError {
    /// An error that says `what`.
    pub(crate) fn new(what: String) -> Self {
        Self(what)
    }
}

/// The enclave's memory: a heap touched at start-up, from which jobs reserve their budgets.
#[derive(Debug)]
pub struct Resources {
    job_bytes: u64,
    reserved: Mutex<u64>,
    /// Running jobs that asked for constant CPU, and the fill that runs while there are any.
    cpu: Mutex<(usize, Option<CpuFill>)>,
}

impl Resources {
    /// Checks the malloc settings, touches a heap of `heap_bytes` (every page written once,
    /// then freed back to malloc, which keeps it) and maps in every page of the process's
    /// files ([`crate::mapped_files::make_resident`]). Refused without exactly
    /// [`ENCLAVE_MALLOC_TUNABLES`] (glibc would return freed memory to the OS, and the host
    /// would see the trainer's allocations), with a heap smaller than the runtime's share, or
    /// where `/proc/self/mem` cannot be read.
    pub fn start(heap_bytes: u64) -> Result<Self, ResourceError> {
        match std::env::var("GLIBC_TUNABLES") {
            Ok(t) if t == ENCLAVE_MALLOC_TUNABLES => {}
            _ => {
                return Err(ResourceError(format!(
                    "GLIBC_TUNABLES must be exactly {ENCLAVE_MALLOC_TUNABLES:?} (chiron-host sets \
                     it): without it freed memory goes back to the OS and the host sees what \
                     trainers allocate"
                )));
            }
        }
        let resources = Self::unchecked(heap_bytes)?;
        let bytes = usize::try_from(heap_bytes)
            .map_err(|_| ResourceError(format!("--memory-mib: {heap_bytes} bytes do not fit")))?;
        touch_heap(bytes);
        crate::mapped_files::make_resident()?;
        Ok(resources)
    }

    /// The same accounting without the check or the touch: for runtimes that are not an
    /// enclave process (tests, tools).
    pub fn unchecked(heap_bytes: u64) -> Result<Self, ResourceError> {
        let job_bytes = heap_bytes.checked_sub(RUNTIME_SHARE_BYTES).ok_or_else(|| {
            ResourceError(format!(
                "--memory-mib must be at least {} (the runtime's own share)",
                RUNTIME_SHARE_BYTES >> 20
            ))
        })?;
        Ok(Self {
            job_bytes,
            reserved: Mutex::new(0),
            cpu: Mutex::new((0, None)),
        })
    }

    /// Reserves a job's memory for as long as the returned value lives, and starts its CPU
    /// fill when the policy asks for constant CPU. `ResourcesUnavailable` when the heap's job
    /// share, less what running jobs hold, cannot take it: decided from policies alone.
    pub fn reserve(self: &Arc<Self>, policy: &JobPolicy) -> Result<Reservation, FailureCode> {
        let bytes = reservation_bytes(policy);
        {
            let mut reserved = self.reserved.lock().map_err(|_| FailureCode::Internal)?;
            let total = reserved
                .checked_add(bytes)
                .filter(|t| *t <= self.job_bytes)
                .ok_or(FailureCode::ResourcesUnavailable)?;
            *reserved = total;
        }
        Ok(Reservation {
            resources: self.clone(),
            bytes,
            _cpu: policy.constant_cpu.then(|| self.hold_cpu()),
        })
    }

    /// Keeps the [`CpuFill`] running for as long as the returned value lives (shared by
    /// everything that holds it: jobs, predictions in flight).
    pub fn hold_cpu(self: &Arc<Self>) -> CpuHold {
        if let Ok(mut cpu) = self.cpu.lock() {
            cpu.0 += 1;
            if cpu.1.is_none() {
                cpu.1 = Some(CpuFill::start());
            }
        }
        CpuHold {
            resources: self.clone(),
        }
    }

    /// Whether the CPU fill runs now.
    pub fn cpu_fill_running(&self) -> bool {
        self.cpu.lock().is_ok_and(|c| c.1.is_some())
    }

    /// Most `memory_mib` a job can reserve on this enclave when it runs alone.
    pub fn max_job_mib(&self) -> u64 {
        // reservation_bytes inverted: budget × 5/4 + overhead ≤ job share.
        (self.job_bytes.saturating_sub(JOB_OVERHEAD_BYTES) / 5 * 4) >> 20
    }

    /// Bytes running jobs hold.
    pub fn reserved_bytes(&self) -> u64 {
        self.reserved.lock().map(|r| *r).unwrap_or(0)
    }
}

/// What a job reserves: its engine budget, a quarter more, and [`JOB_OVERHEAD_BYTES`].
pub fn reservation_bytes(policy: &JobPolicy) -> u64 {
    let budget = policy.memory_bytes();
    budget
        .saturating_add(budget / 4)
        .saturating_add(JOB_OVERHEAD_BYTES)
}

/// A job's hold on the enclave's resources; released when dropped (at the job's end).
#[derive(Debug)]
pub struct Reservation {
    resources: Arc<Resources>,
    bytes: u64,
    _cpu: Option<CpuHold>,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Ok(mut reserved) = self.resources.reserved.lock() {
            *reserved = reserved.saturating_sub(self.bytes);
        }
    }
}

/// A hold on the CPU fill ([`Resources::hold_cpu`]); the last one dropped stops it.
#[derive(Debug)]
pub struct CpuHold {
    resources: Arc<Resources>,
}

impl Drop for CpuHold {
    fn drop(&mut self) {
        let stopped = self.resources.cpu.lock().ok().and_then(|mut cpu| {
            cpu.0 = cpu.0.saturating_sub(1);
            if cpu.0 == 0 { cpu.1.take() } else { None }
        });
        // Joined outside the lock.
        drop(stopped);
    }
}

/// Writes every byte of a fresh `bytes`-sized allocation and frees it: with
/// [`ENCLAVE_MALLOC_TUNABLES`] the pages stay in the heap, resident, for later allocations.
fn touch_heap(bytes: usize) {
    let heap = vec![1u8; bytes];
    // Keeps the optimiser from dropping an allocation nothing reads.
    std::hint::black_box(&heap);
}

/// `SCHED_IDLE` threads, one per core, that spin while it lives (see the module docs).
/// One per enclave, shared by its running jobs ([`Resources::reserve`]).
#[derive(Debug)]
pub struct CpuFill {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl CpuFill {
    /// Starts one spinning thread per core this process may use.
    pub fn start() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..cores)
            .filter_map(|i| {
                let stop = stop.clone();
                std::thread::Builder::new()
                    .name(format!("chiron-cpu-fill-{i}"))
                    .stack_size(64 << 10)
                    .spawn(move || {
                        // Should it fail, spinning at normal priority still keeps the time
                        // constant (at the trainer's expense).
                        let _ = thread_priority::set_thread_priority_and_policy(
                            thread_priority::thread_native_id(),
                            thread_priority::ThreadPriority::Min,
                            thread_priority::ThreadSchedulePolicy::Normal(
                                thread_priority::NormalThreadSchedulePolicy::Idle,
                            ),
                        );
                        while !stop.load(Ordering::Relaxed) {
                            std::hint::spin_loop();
                        }
                    })
                    .ok()
            })
            .collect();
        Self { stop, threads }
    }
}

impl Drop for CpuFill {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Lowers the calling thread to nice 15 (about a thirtieth of a normal thread's share): a
/// confined job's threads — its trainer, its predictions — never sleep, so at normal priority
/// they would slow the runtime's own threads (sealing and writing checkpoints, status records,
/// the reply timer), whose timing is what the host sees. Above the [`CpuFill`] still. Call it
/// on a thread made for the job: an unprivileged thread cannot raise it back.
pub fn lower_job_thread_priority() {
    // ThreadPriorityValue 10 of 0..=99 maps to nice 15 for the normal policy.
    if let Ok(value) = thread_priority::ThreadPriorityValue::try_from(10u8) {
        // Should it fail, the job runs at normal priority: its CPU time is as constant, the
        // runtime's timing only less precise.
        let _ = thread_priority::set_current_thread_priority(
            thread_priority::ThreadPriority::Crossplatform(value),
        );
    }
}

/// Waits until `when`. With `busy` the thread spins (reading the monotonic clock, which makes no
/// system call) and stays runnable: a confined job's thread that finished its work early, or
/// waits for its next slot on a schedule, then uses the same CPU time as one still computing.
/// Without it the thread sleeps.
pub fn wait_until(when: Instant, busy: bool) {
    if !busy {
        sleep_until(when);
        return;
    }
    while Instant::now() < when {
        std::hint::spin_loop();
    }
}

/// Writes the calling thread's stack down to about `bytes` below here, so its pages are
/// resident before a trainer runs: how deep the guest and the engine go then changes nothing
/// the host can see. Call first thing on a thread with a stack of more than `bytes`.
pub fn touch_stack(bytes: usize) {
    const FRAME: usize = 32 << 10;
    #[inline(never)]
    fn frame(depth: usize) {
        let mut page = [0u8; FRAME];
        std::hint::black_box(&mut page);
        if depth > 1 {
            frame(depth - 1);
        }
        // Used after the call, so the frame stays live across it (no tail call).
        std::hint::black_box(&page);
    }
    frame(bytes / FRAME);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn policy(memory_mib: u32) -> JobPolicy {
        let text = format!(
            "epochs = 1\nbatch_size = 1\nseed = 1\nmax_steps = 1\nwall_seconds = 1\n\
             memory_mib = {memory_mib}\nconstant_cpu = false\n\
             [predictions]\noutput = \"label\"\nquery_budget = 1\nrate_per_second = 1.0\n"
        );
        JobPolicy::parse(&text).unwrap()
    }

    #[test]
    fn jobs_reserve_until_dropped_and_refuse_past_the_heap() {
        let per_job = reservation_bytes(&policy(64));
        let heap = RUNTIME_SHARE_BYTES + 2 * per_job + 1;
        let resources = Arc::new(Resources::unchecked(heap).unwrap());
        assert!(resources.max_job_mib() >= 64);
        let first = resources.reserve(&policy(64)).unwrap();
        assert!(!resources.cpu_fill_running(), "constant_cpu = false");
        let second = resources.reserve(&policy(64)).unwrap();
        assert_eq!(resources.reserved_bytes(), 2 * per_job);
        assert_eq!(
            resources.reserve(&policy(64)).unwrap_err(),
            FailureCode::ResourcesUnavailable
        );
        drop(first);
        assert_eq!(resources.reserved_bytes(), per_job);
        let third = resources.reserve(&policy(64)).unwrap();
        drop((second, third));
        assert_eq!(resources.reserved_bytes(), 0);
    }

    #[test]
    fn the_largest_job_alone_fits_and_one_more_mib_does_not() {
        let resources = Arc::new(Resources::unchecked(1 << 30).unwrap());
        let max = u32::try_from(resources.max_job_mib()).unwrap();
        drop(resources.reserve(&policy(max)).unwrap());
        assert_eq!(
            resources.reserve(&policy(max + 1)).unwrap_err(),
            FailureCode::ResourcesUnavailable
        );
    }

    #[test]
    fn a_heap_below_the_runtime_share_is_refused() {
        let err = Resources::unchecked(RUNTIME_SHARE_BYTES - 1).unwrap_err();
        assert!(err.to_string().contains("--memory-mib"), "{err}");
    }

    #[test]
    fn start_refuses_other_malloc_settings() {
        // The test process runs without the enclave's tunables.
        if std::env::var("GLIBC_TUNABLES").as_deref() != Ok(ENCLAVE_MALLOC_TUNABLES) {
            let err = Resources::start(RUNTIME_SHARE_BYTES).unwrap_err();
            assert!(err.to_string().contains("GLIBC_TUNABLES"), "{err}");
        }
    }

    #[test]
    fn the_cpu_fill_runs_while_any_constant_cpu_job_does() {
        let strict = |mib| {
            let mut p = policy(mib);
            p.constant_cpu = true;
            p
        };
        let resources = Arc::new(Resources::unchecked(1 << 30).unwrap());
        let first = resources.reserve(&strict(8)).unwrap();
        assert!(resources.cpu_fill_running());
        let second = resources.reserve(&strict(8)).unwrap();
        drop(first);
        assert!(resources.cpu_fill_running());
        // The last one stops and joins the spinners (a hang fails the test by its timeout).
        drop(second);
        assert!(!resources.cpu_fill_running());
    }
}

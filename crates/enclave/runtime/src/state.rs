//! The runtime's state: registered modules, jobs, and the writes that keep the host's sealed
//! copies current. Locks are never held across an `.await`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chiron_proto::host::StatusRecord;
use chiron_proto::job::JobPolicy;
use chiron_proto::vocab::JobPhase;
use chiron_sandbox::{FailureCode, PreparedModel, Sandbox, TrainerModule};
use ring::digest::{SHA256, digest};
use zeroize::Zeroizing;

use crate::RuntimeError;
use crate::host_link::HostLink;
use crate::predict::{QueryMeter, RateLimiter};
use crate::records::{self, JobRecord, ModuleRecord};

/// A registered trainer, compiled and ready.
pub struct LoadedModule {
    /// The compiled component.
    pub module: TrainerModule,
    /// SHA-256 of the operator's token.
    pub operator_token_hash: [u8; 32],
}

/// A finished job's model blob, as the enclave found it.
#[derive(Clone)]
pub enum ModelState {
    /// Not fetched yet.
    Unchecked,
    /// The model, opened and prepared for predictions; preparing fails only for a model whose
    /// tensors do not fit their shapes (the trainer's failure, as each prediction reports it).
    Loaded(Arc<Result<PreparedModel, FailureCode>>),
    /// The dummy of a failed job (it opened).
    Dummy,
    /// Missing, or it did not open: the host lost or damaged it.
    Damaged,
}

/// A job in memory.
pub struct Job {
    /// The record as last written.
    pub record: JobRecord,
    /// Its parsed policy.
    pub policy: JobPolicy,
    /// Prediction rate limit.
    pub limiter: RateLimiter,
    /// Queries counted (the record's `queries_used` is the reservation ahead of them).
    pub queries: QueryMeter,
    /// What the job's model blob held when it was first needed (a finished job's status or
    /// prediction).
    pub model: ModelState,
    /// Whether a training run is in progress in this process.
    pub running: bool,
}

/// The runtime.
pub struct Runtime {
    sealing_key: Zeroizing<[u8; 32]>,
    /// The host's API.
    pub host: HostLink,
    /// The sandbox every trainer runs in.
    pub sandbox: Arc<Sandbox>,
    /// Its instance slots, shared by training jobs and (waiting in line) predictions.
    pub instances: crate::instances::InstanceSlots,
    /// The threads confined predictions run on.
    pub confined: Arc<crate::confined::ConfinedThreads>,
    /// Largest engine budget (policy `memory_mib`) a job may declare.
    pub max_train_bytes: u64,
    /// The enclave's memory, from which each running job holds a reservation.
    pub resources: Arc<crate::resources::Resources>,
    modules: Mutex<HashMap<String, Arc<LoadedModule>>>,
    /// Jobs by id.
    pub jobs: Mutex<HashMap<String, Job>>,
    /// Serialises record writes, so the host always ends with the newest revision.
    write_lock: tokio::sync::Mutex<()>,
    /// How this enclave reaches its peers, if it takes part in distributed jobs.
    pub peers: std::sync::OnceLock<crate::distributed::PeerSetup>,
    /// The distributed jobs this enclave is training as their parameter server.
    pub parameter_servers: crate::distributed::server::Registry,
}

/// SHA-256.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, bytes).as_ref());
    out
}

/// Equality of two hashes without an early exit.
pub fn same_hash(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Runtime {
    /// A runtime over a sealing key, the host, a sandbox and the enclave's memory.
    pub fn new(
        sealing_key: Zeroizing<[u8; 32]>,
        host: HostLink,
        sandbox: Arc<Sandbox>,
        max_train_bytes: u64,
        resources: Arc<crate::resources::Resources>,
    ) -> Self {
        Self {
            sealing_key,
            host,
            instances: crate::instances::InstanceSlots::new(
                sandbox.limits().max_instances as usize,
            ),
            confined: Arc::default(),
            sandbox,
            max_train_bytes,
            resources,
            modules: Mutex::new(HashMap::new()),
            jobs: Mutex::new(HashMap::new()),
            write_lock: tokio::sync::Mutex::new(()),
            peers: std::sync::OnceLock::new(),
            parameter_servers: Default::default(),
        }
    }

    /// The enclave's sealing key.
    pub fn sealing_key(&self) -> &[u8; 32] {
        &self.sealing_key
    }

    /// Registers a compiled module (sealing it at the host if it is new); returns its digest.
    pub async fn register(
        &self,
        module: TrainerModule,
        bytes: Vec<u8>,
        operator_token_hash: [u8; 32],
    ) -> Result<String, RuntimeError> {
        let digest = module.digest_hex();
        let name = records::module_blob(&self.sealing_key, &digest)?;
        let sealed = records::seal_module(
            &self.sealing_key,
            &name,
            &ModuleRecord {
                operator_token_hash,
                module: bytes,
            },
        )?;
        self.host.put(&name, &sealed).await?;
        self.store_code(&module).await;
        if let Ok(mut m) = self.modules.lock() {
            m.insert(
                digest.clone(),
                Arc::new(LoadedModule {
                    module,
                    operator_token_hash,
                }),
            );
        }
        Ok(digest)
    }

    /// Stores `module`'s compiled code sealed, so a restarted enclave loads it in milliseconds
    /// instead of compiling the component again (seconds for a CPython trainer). Best effort:
    /// without it the module is compiled again when needed.
    async fn store_code(&self, module: &TrainerModule) {
        let stored = async {
            let digest = module.digest();
            let name = records::code_blob(&self.sealing_key, &module.digest_hex())?;
            let code = module
                .compiled_code()
                .map_err(|e| RuntimeError::Record(e.to_string()))?;
            let sealed = records::seal_code(&self.sealing_key, &name, digest, &code)?;
            self.host.put(&name, &sealed).await
        };
        if stored.await.is_err() {
            crate::diagnostics::report(crate::diagnostics::Event::CodeNotStored);
        }
    }

    /// The module with `digest` from its sealed compiled code, if that is stored and loads
    /// (a wasmtime of another version or configuration refuses it).
    async fn load_code(&self, digest: &str) -> Option<TrainerModule> {
        let raw: [u8; 32] = chiron_attest::policy::parse_hex(digest)?.try_into().ok()?;
        let name = records::code_blob(&self.sealing_key, digest).ok()?;
        let sealed = self.host.get(&name).await.ok()??;
        let code = records::open_code(&self.sealing_key, &name, &raw, &sealed).ok()?;
        let sandbox = self.sandbox.clone();
        tokio::task::spawn_blocking(move || TrainerModule::load_compiled(&sandbox, &code, raw))
            .await
            .ok()?
            .ok()
    }

    /// The module with `digest`: from memory, or unsealed from the host and compiled.
    /// `Ok(None)` if no such module was ever registered with this enclave.
    pub async fn module(&self, digest: &str) -> Result<Option<Arc<LoadedModule>>, RuntimeError> {
        if let Some(m) = self
            .modules
            .lock()
            .ok()
            .and_then(|m| m.get(digest).cloned())
        {
            return Ok(Some(m));
        }
        let name = records::module_blob(&self.sealing_key, digest)?;
        let Some(sealed) = self.host.get(&name).await? else {
            return Ok(None);
        };
        let record = records::open_module(&self.sealing_key, &name, &sealed)?;
        let module = match self.load_code(digest).await {
            Some(module) => (module, record.operator_token_hash),
            None => {
                let sandbox = self.sandbox.clone();
                let compiled = tokio::task::spawn_blocking(move || {
                    sandbox
                        .load(&record.module)
                        .map(|m| (m, record.operator_token_hash))
                })
                .await
                .map_err(|_| RuntimeError::Record("module compilation stopped".into()))?
                .map_err(|e| {
                    RuntimeError::Record(format!("a sealed module no longer loads: {e}"))
                })?;
                self.store_code(&compiled.0).await;
                compiled
            }
        };
        if module.0.digest_hex() != digest {
            return Err(RuntimeError::Unseal("a module stored under another digest"));
        }
        let loaded = Arc::new(LoadedModule {
            module: module.0,
            operator_token_hash: module.1,
        });
        if let Ok(mut m) = self.modules.lock() {
            m.insert(digest.to_string(), loaded.clone());
        }
        Ok(Some(loaded))
    }

    /// The bytes of the module with `digest`, as registered (to forward to worker enclaves).
    /// `Ok(None)` if no such module was registered with this enclave.
    pub async fn module_bytes(&self, digest: &str) -> Result<Option<Vec<u8>>, RuntimeError> {
        let name = records::module_blob(&self.sealing_key, digest)?;
        let Some(sealed) = self.host.get(&name).await? else {
            return Ok(None);
        };
        let record = records::open_module(&self.sealing_key, &name, &sealed)?;
        Ok(Some(record.module.clone()))
    }

    /// Whether a module registered with this operator token hash is loaded.
    pub fn knows_operator(&self, token_hash: &[u8; 32]) -> bool {
        self.modules.lock().is_ok_and(|m| {
            m.values()
                .any(|l| same_hash(&l.operator_token_hash, token_hash))
        })
    }

    /// Job blobs at the host that no job in memory accounts for, by job id: `(id, reason,
    /// blob names)` with reason `record-damaged` (a record that did not open) or `no-record`
    /// (checkpoints or a model without one).
    pub async fn damaged_jobs(
        &self,
    ) -> Result<Vec<(String, &'static str, Vec<String>)>, RuntimeError> {
        let mut by_id: std::collections::BTreeMap<String, (bool, Vec<String>)> = Default::default();
        for (prefix, is_record) in [("jobs", true), ("checkpoints", false), ("models", false)] {
            for name in self.host.list(prefix).await? {
                let Some(id) = name
                    .strip_prefix(prefix)
                    .and_then(|rest| rest.strip_prefix('/'))
                    .and_then(|rest| rest.split('/').next())
                else {
                    continue;
                };
                let entry = by_id.entry(id.to_string()).or_default();
                entry.0 |= is_record;
                entry.1.push(name);
            }
        }
        let known: std::collections::HashSet<String> = self
            .jobs
            .lock()
            .map(|j| j.keys().cloned().collect())
            .unwrap_or_default();
        Ok(by_id
            .into_iter()
            .filter(|(id, _)| !known.contains(id))
            .map(|(id, (has_record, blobs))| {
                let reason = if has_record {
                    "record-damaged"
                } else {
                    "no-record"
                };
                (id, reason, blobs)
            })
            .collect())
    }

    /// Adds (or replaces) a job in memory.
    pub fn insert_job(&self, record: JobRecord, policy: JobPolicy) {
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.insert(
                record.job_id.clone(),
                Job {
                    limiter: RateLimiter::new(policy.rate_per_second),
                    queries: QueryMeter::resumed(record.queries_used),
                    record,
                    policy,
                    model: ModelState::Unchecked,
                    running: false,
                },
            );
        }
    }

    /// Applies `change` to job `id`'s record, bumps its revision and stores it sealed; returns
    /// the new record. `Ok(None)` if there is no such job.
    pub async fn update_job(
        &self,
        id: &str,
        change: impl FnOnce(&mut JobRecord),
    ) -> Result<Option<JobRecord>, RuntimeError> {
        self.apply(id, change, false).await
    }

    /// [`Runtime::update_job`], then reports the job's status to the host — all before a party
    /// reading through [`Runtime::settled`] can see the change, so the host's record of a status
    /// always comes before anything a party does in reaction to it.
    pub async fn update_and_report(
        &self,
        id: &str,
        change: impl FnOnce(&mut JobRecord),
    ) -> Result<Option<JobRecord>, RuntimeError> {
        self.apply(id, change, true).await
    }

    async fn apply(
        &self,
        id: &str,
        change: impl FnOnce(&mut JobRecord),
        report: bool,
    ) -> Result<Option<JobRecord>, RuntimeError> {
        let _write = self.write_lock.lock().await;
        let (record, report_steps) = {
            let Ok(mut jobs) = self.jobs.lock() else {
                return Err(RuntimeError::Record("job table poisoned".into()));
            };
            let Some(job) = jobs.get_mut(id) else {
                return Ok(None);
            };
            change(&mut job.record);
            job.record.revision += 1;
            (job.record.clone(), job.policy.report_steps)
        };
        self.store_job(&record).await?;
        if report {
            self.report(&record, report_steps).await?;
        }
        Ok(Some(record))
    }

    /// Waits until no update is in flight and holds updates off while the guard lives: read
    /// job state a party will see under it.
    pub async fn settled(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.write_lock.lock().await
    }

    /// Stores a job record sealed at the host.
    pub async fn store_job(&self, record: &JobRecord) -> Result<(), RuntimeError> {
        let sealed = records::seal_job(&self.sealing_key, record)?;
        self.host
            .put(&records::job_blob(&record.job_id), &sealed)
            .await
    }

    /// Reports a job's fixed-format status record to the host: its public phase (never its
    /// outcome) and its progress on the job's clock.
    pub async fn report(&self, record: &JobRecord, report_steps: u32) -> Result<(), RuntimeError> {
        self.host
            .report(StatusRecord {
                job_id: record.job_id.clone(),
                phase: record.phase.public().as_str().to_string(),
                coarse_step: record.coarse_step,
                coarse_steps: report_steps,
            })
            .await
    }

    /// Loads every job record the host holds (after a start or a restart); returns the ids of
    /// jobs whose training must resume. Records that do not open are skipped (and named).
    pub async fn recover(&self) -> Result<Vec<String>, RuntimeError> {
        let mut resume = Vec::new();
        for name in self.host.list("jobs").await? {
            let Some(sealed) = self.host.get(&name).await? else {
                continue;
            };
            let Ok(record) = records::open_job(&self.sealing_key, &name, &sealed) else {
                crate::diagnostics::report(crate::diagnostics::Event::RecordSkipped);
                continue;
            };
            let Ok(policy) = JobPolicy::parse(&record.policy_toml) else {
                crate::diagnostics::report(crate::diagnostics::Event::RecordSkipped);
                continue;
            };
            if record.phase == JobPhase::Training {
                resume.push(record.job_id.clone());
            }
            self.insert_job(record, policy);
        }
        Ok(resume)
    }
}

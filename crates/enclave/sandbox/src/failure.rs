//! The fixed outcomes of a failed job or request, and the load-time refusal.
//!
//! Whatever goes wrong inside the sandbox — a trap, a limit, an error the guest returns, a
//! wasmtime error message — leaves it as one [`FailureCode`] value: a closed set of codes with no
//! text, so a trainer cannot smuggle data out through the way it fails. The original error text
//! exists only inside this crate and is written to a local debug log when the operator's test
//! mode asks for it ([`crate::SandboxLimits::debug_log`]).

use chiron_engine::EngineError;

/// Why a training job or a prediction request failed; the only failure information that may
/// reach a party.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FailureCode {
    /// The guest trapped (`unreachable`, a panic, an out-of-bounds access, a bad canonical-ABI
    /// value, ...).
    Trap,
    /// The guest's linear memory would have grown past the cap.
    OutOfMemory,
    /// The wall-clock budget ran out (epoch interruption).
    Timeout,
    /// The instruction budget (wasmtime fuel) ran out.
    InstructionBudget,
    /// The guest's call stack exceeded the limit (unbounded recursion).
    StackOverflow,
    /// The guest held more live handles (tensors, optimizers) than the store allows.
    HandleLimit,
    /// One guest→host call tried to copy more data into the host than allowed.
    HostcallBudget,
    /// A host call whose WIT signature cannot carry an error (e.g. `tensor.shape`,
    /// `data.schema` during prediction) failed with this engine code, so the call trapped.
    CallFailed(EngineError),
    /// The guest's export returned this error code.
    GuestError(EngineError),
    /// The prediction input does not form a tensor (values do not match the shape).
    InvalidInput,
    /// The guest returned an output that is not a tensor the engine can read back, or its
    /// saved model could not be loaded into the engine for a prediction.
    InvalidOutput,
    /// The module was refused at load (imports outside the `chiron:trainer` world, missing or
    /// mistyped exports, not a valid component).
    Refused,
    /// The sandbox could not run the job (e.g. no free instance slot); not the guest's fault.
    Internal,
}

impl FailureCode {
    /// A stable short name (for status messages and logs; never carries guest data).
    pub fn as_str(&self) -> &'static str {
        match self {
            FailureCode::Trap => "trap",
            FailureCode::OutOfMemory => "out-of-memory",
            FailureCode::Timeout => "timeout",
            FailureCode::InstructionBudget => "instruction-budget",
            FailureCode::StackOverflow => "stack-overflow",
            FailureCode::HandleLimit => "handle-limit",
            FailureCode::HostcallBudget => "hostcall-budget",
            FailureCode::CallFailed(e) => match e {
                EngineError::InvalidShape => "call-failed:invalid-shape",
                EngineError::InvalidArgument => "call-failed:invalid-argument",
                EngineError::ResourceExhausted => "call-failed:resource-exhausted",
                EngineError::BudgetExhausted => "call-failed:budget-exhausted",
                EngineError::NotAllowed => "call-failed:not-allowed",
                EngineError::OutOfRange => "call-failed:out-of-range",
            },
            FailureCode::GuestError(e) => match e {
                EngineError::InvalidShape => "guest-error:invalid-shape",
                EngineError::InvalidArgument => "guest-error:invalid-argument",
                EngineError::ResourceExhausted => "guest-error:resource-exhausted",
                EngineError::BudgetExhausted => "guest-error:budget-exhausted",
                EngineError::NotAllowed => "guest-error:not-allowed",
                EngineError::OutOfRange => "guest-error:out-of-range",
            },
            FailureCode::InvalidInput => "invalid-input",
            FailureCode::InvalidOutput => "invalid-output",
            FailureCode::Refused => "refused",
            FailureCode::Internal => "internal",
        }
    }
}

impl std::fmt::Display for FailureCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for FailureCode {}

/// Why a module was not loaded. Its text is for the operator who submitted the module (it
/// describes the module, never any data); parties other than the operator get
/// [`LoadError::code`].
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Larger than [`crate::SandboxLimits::max_module_bytes`].
    #[error("the module is {size} bytes, over the limit of {limit} bytes")]
    TooLarge {
        /// Size of the module.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Not a component wasmtime can compile (a core module, a corrupt file, an unsupported
    /// feature).
    #[error("not a valid trainer component: {0}")]
    Invalid(String),
    /// Imports something outside the `chiron:trainer` world and the virtual WASI (an unknown
    /// function, an extra function inside an allowed interface, a different version).
    #[error("refused: {0}")]
    Refused(String),
    /// Lacks the `train` or `predict` export, or exports them with other types.
    #[error("refused: {0}")]
    BadExports(String),
    /// The sandbox could not instantiate it for a reason that is not the module's (e.g. no free
    /// instance slot while loading).
    #[error("could not prepare the module: {0}")]
    Internal(String),
}

impl LoadError {
    /// The fixed code for parties other than the operator.
    pub fn code(&self) -> FailureCode {
        match self {
            LoadError::Internal(_) => FailureCode::Internal,
            _ => FailureCode::Refused,
        }
    }
}

/// Why the sandbox itself could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot start the sandbox: {0}")]
pub struct SandboxError(pub(crate) String);

/// A host function's decision to end the guest call with a fixed code (carried through
/// wasmtime's error as the trap payload, recovered by [`classify`]).
#[derive(Debug)]
pub(crate) struct HostFault(pub FailureCode);

impl std::fmt::Display for HostFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "host ended the call: {}", self.0)
    }
}

impl std::error::Error for HostFault {}

/// What the store observed besides the error itself.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Observed {
    /// The memory limiter refused a growth during the call.
    pub memory_denied: bool,
}

/// Maps an error out of wasmtime (instantiation or a call) to its fixed code.
///
/// Order matters: definite causes (our own host faults, the trap codes of limits) first; a
/// generic trap after a refused memory growth is an out-of-memory (a Rust guest whose allocator
/// fails aborts with `unreachable`); wasmtime's untyped limit errors are recognised by their
/// text, which is fixed by the pinned wasmtime version (tests cover both).
pub(crate) fn classify(err: &wasmtime::Error, observed: Observed) -> FailureCode {
    if let Some(HostFault(code)) = err.downcast_ref::<HostFault>() {
        return *code;
    }
    if err.is::<wasmtime::PoolConcurrencyLimitError>() {
        // Every instance slot is in use: the host is busy, the guest did nothing wrong.
        return FailureCode::Internal;
    }
    if let Some(trap) = err.downcast_ref::<wasmtime::Trap>() {
        return match trap {
            wasmtime::Trap::Interrupt => FailureCode::Timeout,
            wasmtime::Trap::OutOfFuel => FailureCode::InstructionBudget,
            wasmtime::Trap::StackOverflow => FailureCode::StackOverflow,
            _ if observed.memory_denied => FailureCode::OutOfMemory,
            _ => FailureCode::Trap,
        };
    }
    if observed.memory_denied {
        return FailureCode::OutOfMemory;
    }
    // Untyped errors of wasmtime 48's component runtime (no public type to downcast to).
    let text = format!("{err:#}");
    if text.contains("store handle limit exceeded") {
        FailureCode::HandleLimit
    } else if text.contains("too much data is being copied between the host and the guest") {
        FailureCode::HostcallBudget
    } else {
        // Anything else during a guest call is the guest's doing (an invalid pointer or
        // discriminant handed to the canonical ABI, a handle it does not own, ...).
        FailureCode::Trap
    }
}

//! Host bindings of the `chiron:trainer` world's imports.
//!
//! Only the *imports* are generated: wasmtime's generated export wrappers use
//! `TypedFunc::new_unchecked` (unsafe), which this crate forbids. The two exports are looked up
//! with the safe, type-checked `Instance::get_typed_func` instead (see `sandbox.rs`), at a cost
//! of one type check per instance.
//!
//! The world below imports exactly what `chiron:trainer/trainer` imports, including the
//! world-level `use` of `error-code` and `tensor`, so the linker built from it provides exactly
//! the trainer world and nothing more.

/// Marker type of the `tensor` resource on the host side.
///
/// A guest's tensor handle maps to a `Resource<HostTensor>` whose `rep` *is* the engine's
/// [`chiron_engine::TensorId`]: wasmtime keeps the per-instance handle tables, so a guest can
/// only name reps the host handed to it, and no second host table is needed.
pub struct HostTensor;

/// Marker type of the `optimizer` resource; its `rep` is the engine's
/// [`chiron_engine::OptimizerId`].
pub struct HostOptimizer;

wasmtime::component::bindgen!({
    path: "../../../wit",
    inline: "
        package chiron:sandbox;

        /// The imports of chiron:trainer/trainer, without its exports.
        world trainer-host {
            import chiron:trainer/types@0.1.0;
            import chiron:trainer/tensor@0.1.0;
            import chiron:trainer/nn@0.1.0;
            import chiron:trainer/optim@0.1.0;
            import chiron:trainer/data@0.1.0;
            import chiron:trainer/report@0.1.0;
            import chiron:trainer/model@0.1.0;

            use chiron:trainer/types@0.1.0.{error-code};
            use chiron:trainer/tensor@0.1.0.{tensor};

            /// The argument of the `train` export (same layout as in chiron:trainer/trainer).
            record train-config {
                epochs: u32,
                batch-size: u32,
                hyper: list<tuple<string, f32>>,
            }
        }
    ",
    world: "chiron:sandbox/trainer-host",
    imports: { default: trappable },
    with: {
        "chiron:trainer/tensor.tensor": HostTensor,
        "chiron:trainer/optim.optimizer": HostOptimizer,
    },
});

pub use chiron::trainer::report::MetricName;

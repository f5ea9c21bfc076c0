//! The engine: a device (the engine's own or a host's), plans of kernel dispatches over virtual
//! tensors, liveness memory, compiled pipelines, submission, readback and pass timing. It knows no operator and
//! no model: kernels arrive as [`Kernel`] values with their uniform words already written.

pub mod buffers;
pub mod device;
pub mod io;
pub mod kernel;
pub mod pipelines;
pub mod plan;
pub mod timing;

pub use device::{
    list_adapters, AdapterChoice, AdapterSummary, DeviceOptions, GpuContext, GpuEvent,
    PendingReadback,
};
pub use io::ModelIo;
pub use kernel::{Kernel, Precision};
pub use pipelines::PipelineCache;
pub use plan::{CompiledPlan, MemoryPlan, Plan, Stage, Step, TensorId, Threads, WORKGROUP_SIZE};
pub use timing::StageTimer;

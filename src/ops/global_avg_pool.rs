//! `global_avg_pool`: [N, C, H, W] -> [N, C], the mean of each plane (PyTorch's
//! `AdaptiveAvgPool2d(1)` flattened; twin: `tools/sagitta_ref/ops/global_avg_pool.py`). One
//! workgroup of 256 threads per (n, c): a 224 x 224 map is 196 strided loads per thread and one
//! tree reduction.

use crate::engine::kernel::UniformParams;
use crate::engine::{Kernel, Plan, Step, TensorId, Threads};
use crate::error::{Result, SagittaError};

use super::invariant;

uniform_params! {
    pub struct GlobalAvgPoolParams {
        /// N * C: one workgroup each.
        pub planes: u32,
        /// H * W.
        pub plane: u32,
    }
}

pub const GLOBAL_AVG_POOL: Kernel = kernel!(
    "global_avg_pool",
    "global_avg_pool",
    "main",
    GlobalAvgPoolParams
);

/// `global_avg_pool`: [N, C, H, W] -> [N, C] in the plan's activation precision (sums in f32).
pub fn global_avg_pool(plan: &mut Plan, label: &str, input: TensorId) -> Result<TensorId> {
    let shape = plan.shape(input).to_vec();
    invariant(shape.len() == 4 && shape.iter().all(|&d| d > 0), || {
        format!("{label}: global average pool needs a non-empty [N, C, H, W], got {shape:?}")
    })?;
    let too_large = || SagittaError::InvalidInput(format!("{label}: {shape:?} too large"));
    let planes = u32::try_from(shape[0] as u64 * shape[1] as u64).map_err(|_| too_large())?;
    let plane = shape[2] as u64 * shape[3] as u64;
    // Every element index planes * plane must fit the kernel's u32 arithmetic.
    u32::try_from(planes as u64 * plane).map_err(|_| too_large())?;
    let plane = plane as u32;
    let output = plan.activation(label, &[shape[0], shape[1]]);
    plan.push_step(Step {
        label: label.to_string(),
        kernel: GLOBAL_AVG_POOL,
        overrides: vec![],
        params: GlobalAvgPoolParams { planes, plane }.words(),
        reads: vec![input],
        writes: vec![output],
        threads: Threads::Groups(planes),
        f16_packed_inputs: &[],
    });
    Ok(output)
}

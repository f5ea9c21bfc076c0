//! `minmax_normalize`: the whole tensor to [0, 1] by (v - min) / (max - min), 0 where
//! max == min (one single-workgroup reduction in f32, then an elementwise pass; twin:
//! `tools/sagitta_ref/ops/minmax.py`).

use crate::engine::kernel::UniformParams;
use crate::engine::{Kernel, Plan, Step, TensorId, Threads};
use crate::error::{Result, SagittaError};

use super::invariant;

uniform_params! {
    pub struct MinMaxParams {
        pub count: u32,
    }
}

pub const MINMAX_STATS: Kernel = kernel!("minmax", "minmax", "statistics", MinMaxParams);
pub const MINMAX_APPLY: Kernel = kernel!("minmax_apply", "minmax_apply", "main", MinMaxParams);

/// `minmax_normalize`: an f32 tensor (an image before the network: `resize_area`'s output) ->
/// the same shape in the plan's activation precision, in [0, 1].
pub fn minmax_normalize(plan: &mut Plan, input: TensorId) -> Result<TensorId> {
    let shape = plan.shape(input).to_vec();
    let count: u64 = shape.iter().map(|&d| d as u64).product();
    invariant(count > 0, || {
        "min-max normalisation of an empty tensor".into()
    })?;
    let count = u32::try_from(count)
        .map_err(|_| SagittaError::InvalidInput("tensor too large to normalise".into()))?;
    let stats = plan.activation_f32("minmax stats", &[2]);
    let output = plan.activation("normalized", &shape);
    plan.push_step(Step {
        label: "minmax statistics".into(),
        kernel: MINMAX_STATS,
        overrides: vec![],
        params: MinMaxParams { count }.words(),
        reads: vec![input],
        writes: vec![stats],
        threads: Threads::Groups(1),
        f16_packed_inputs: &[],
    });
    plan.push_step(Step {
        label: "minmax apply".into(),
        kernel: MINMAX_APPLY,
        overrides: vec![],
        params: MinMaxParams { count }.words(),
        reads: vec![input, stats],
        writes: vec![output],
        threads: Threads::Linear(count as u64),
        f16_packed_inputs: &[],
    });
    Ok(output)
}

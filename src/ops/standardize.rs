//! `standardize`: zero mean, unit variance over the whole image (one reduction, one apply).

use crate::engine::kernel::UniformParams;
use crate::engine::{Kernel, Plan, Step, TensorId, Threads};
use crate::error::{Result, SagittaError};

use super::invariant;

uniform_params! {
    pub struct StatisticsParams {
        pub count: u32,
        pub eps: f32,
    }
}

uniform_params! {
    pub struct ApplyParams {
        pub count: u32,
    }
}

pub const STANDARDIZE_STATS: Kernel = kernel!(
    "standardize",
    "standardize",
    "statistics",
    StatisticsParams,
    trusted: false,
    parts: ["workgroup_sum"]
);
pub const STANDARDIZE_APPLY: Kernel = kernel!(
    "standardize_apply",
    "standardize_apply",
    "main",
    ApplyParams
);

/// `standardize`: zero mean, unit (population) variance over the whole tensor.
pub fn standardize(plan: &mut Plan, input: TensorId, eps: f32) -> Result<TensorId> {
    let shape = plan.shape(input).to_vec();
    let count: u64 = shape.iter().map(|&d| d as u64).product();
    invariant(count > 0, || "standardize of an empty tensor".into())?;
    let count =
        u32::try_from(count).map_err(|_| SagittaError::InvalidInput("image too large".into()))?;
    let stats = plan.activation_f32("standardize stats", &[2]);
    let output = plan.activation("standardized", &shape);
    plan.push_step(Step {
        label: "standardize statistics".into(),
        kernel: STANDARDIZE_STATS,
        overrides: vec![],
        params: StatisticsParams { count, eps }.words(),
        reads: vec![input],
        writes: vec![stats],
        threads: Threads::Groups(1),
        f16_packed_inputs: &[],
    });
    plan.push_step(Step {
        label: "standardize apply".into(),
        kernel: STANDARDIZE_APPLY,
        overrides: vec![],
        params: ApplyParams { count }.words(),
        reads: vec![input, stats],
        writes: vec![output],
        threads: Threads::Linear(count as u64),
        f16_packed_inputs: &[],
    });
    Ok(output)
}

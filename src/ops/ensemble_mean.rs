//! `ensemble_mean`: the element-wise mean of K ensemble members' outputs (twin:
//! `tools/sagitta_ref/ops/ensemble_mean.py`).
//!
//! The form: one tensor holding the K outputs side by side, not K tensors, so the members write
//! their outputs in place and no copy pass gathers them. The K blocks are split off the
//! outermost axis longer than 1, which is divided by K in the output: a [K, ...] tensor (members
//! as a batch) gives [1, ...], and a [1, K * C, H, W] tensor whose channel views
//! ([`Plan::channel_view`] at offsets m * C) the members write gives [1, C, H, W]; the two are the
//! same bytes. K = 1 is a plain copy. Summed in f32 in member order, divided by K.

use crate::engine::kernel::UniformParams;
use crate::engine::{Kernel, Plan, Step, TensorId, Threads};
use crate::error::{Result, SagittaError};

use super::invariant;

uniform_params! {
    pub struct EnsembleMeanParams {
        /// K.
        pub members: u32,
        /// Elements per member (and of the output).
        pub block: u32,
    }
}

pub const ENSEMBLE_MEAN: Kernel =
    kernel!("ensemble_mean", "ensemble_mean", "main", EnsembleMeanParams);

/// The output shape of the mean of `members` members stacked in `shape` (see the module doc).
pub fn ensemble_mean_shape(label: &str, shape: &[u32], members: u32) -> Result<Vec<u32>> {
    invariant(!shape.is_empty() && shape.iter().all(|&d| d > 0), || {
        format!("{label}: ensemble mean of an empty tensor {shape:?}")
    })?;
    invariant(members > 0, || {
        format!("{label}: ensemble mean of 0 members")
    })?;
    let mut out = shape.to_vec();
    if members > 1 {
        let axis = shape.iter().position(|&d| d > 1);
        let axis = axis
            .filter(|&a| shape[a].is_multiple_of(members))
            .ok_or_else(|| {
                SagittaError::InvalidInput(format!(
                    "{label}: {shape:?} has no leading axis that splits into {members} members"
                ))
            })?;
        out[axis] /= members;
    }
    let total: u64 = shape.iter().map(|&d| d as u64).product();
    u32::try_from(total)
        .map_err(|_| SagittaError::InvalidInput(format!("{label}: {shape:?} too large")))?;
    Ok(out)
}

/// `ensemble_mean`: the mean of the `members` equal blocks of `stacked`, in the plan's
/// activation precision.
pub fn ensemble_mean(
    plan: &mut Plan,
    label: &str,
    stacked: TensorId,
    members: u32,
) -> Result<TensorId> {
    let shape = plan.shape(stacked).to_vec();
    let out_shape = ensemble_mean_shape(label, &shape, members)?;
    invariant(plan.view_of(stacked).is_none(), || {
        format!("{label}: ensemble mean reads a whole tensor, not a channel view")
    })?;
    let block = out_shape.iter().product::<u32>();
    let output = plan.activation(label, &out_shape);
    plan.push_step(Step {
        label: label.to_string(),
        kernel: ENSEMBLE_MEAN,
        overrides: vec![],
        params: EnsembleMeanParams { members, block }.words(),
        reads: vec![stacked],
        writes: vec![output],
        threads: Threads::Linear(block as u64),
        f16_packed_inputs: &[],
    });
    Ok(output)
}

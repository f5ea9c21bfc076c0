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
    let stats = minmax_stats(plan, input)?;
    minmax_apply(plan, "normalized", input, stats)
}

/// The [min, max - min] of an f32 tensor, as one f32 pair (a single-workgroup reduction).
pub fn minmax_stats(plan: &mut Plan, input: TensorId) -> Result<TensorId> {
    let count = element_count(plan, input)?;
    let stats = plan.activation_f32("minmax stats", &[2]);
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
    Ok(stats)
}

/// (v - min) / (max - min) of every element of the f32 tensor `input` with the `stats` of
/// [`minmax_stats`], possibly another tensor's (crops of an original image read through the
/// map of its resized copy); 0 where max == min. A 2-D [H, W] image comes out as
/// [1, 1, H, W], any other shape as it is, in the plan's activation precision.
pub fn minmax_apply(
    plan: &mut Plan,
    label: &str,
    input: TensorId,
    stats: TensorId,
) -> Result<TensorId> {
    let count = element_count(plan, input)?;
    let shape = match plan.shape(input) {
        [h, w] => vec![1, 1, *h, *w],
        other => other.to_vec(),
    };
    let output = plan.activation(label, &shape);
    plan.push_step(Step {
        label: format!("{label}: minmax apply"),
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

fn element_count(plan: &Plan, input: TensorId) -> Result<u32> {
    let count: u64 = plan.shape(input).iter().map(|&d| d as u64).product();
    invariant(count > 0, || {
        "min-max normalisation of an empty tensor".into()
    })?;
    u32::try_from(count)
        .map_err(|_| SagittaError::InvalidInput("tensor too large to normalise".into()))
}

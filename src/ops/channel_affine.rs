//! `channel_affine_expand`: one channel to C by a per-channel affine map,
//! y[:, c] = (x[:, 0] - mean[c]) / std[c] (a grey image to a network trained on normalised RGB;
//! twin: `tools/sagitta_ref/ops/channel_affine.py`). Mean and std travel in the uniform block,
//! so C <= 4; a wider expansion would need them in a bound buffer.

use crate::engine::kernel::UniformParams;
use crate::engine::{Kernel, Plan, Step, TensorId, Threads};
use crate::error::{Result, SagittaError};

use super::invariant;

uniform_params! {
    pub struct ChannelAffineParams {
        /// H * W.
        pub plane: u32,
        pub channels: u32,
        /// N * C * H * W.
        pub total: u32,
        pub mean0: f32,
        pub mean1: f32,
        pub mean2: f32,
        pub mean3: f32,
        pub std0: f32,
        pub std1: f32,
        pub std2: f32,
        pub std3: f32,
    }
}

pub const CHANNEL_AFFINE: Kernel = kernel!(
    "channel_affine",
    "channel_affine",
    "main",
    ChannelAffineParams
);

/// The most channels `channel_affine_expand` writes (mean and std live in the uniform block).
pub const MAX_AFFINE_CHANNELS: usize = 4;

/// `channel_affine_expand`: [N, 1, H, W] -> [N, C, H, W] with C = `mean.len()` = `std.len()`,
/// 1 <= C <= 4, every std finite and non-zero, every mean finite.
pub fn channel_affine_expand(
    plan: &mut Plan,
    label: &str,
    input: TensorId,
    mean: &[f32],
    std: &[f32],
) -> Result<TensorId> {
    let shape = plan.shape(input).to_vec();
    invariant(
        shape.len() == 4 && shape[1] == 1 && shape.iter().all(|&d| d > 0),
        || format!("{label}: channel expansion needs a non-empty [N, 1, H, W], got {shape:?}"),
    )?;
    let channels = mean.len();
    invariant(
        channels == std.len() && (1..=MAX_AFFINE_CHANNELS).contains(&channels),
        || {
            format!(
                "{label}: {} means and {} stds: give 1 to {MAX_AFFINE_CHANNELS} of each, as many \
                 means as stds",
                mean.len(),
                std.len()
            )
        },
    )?;
    invariant(
        mean.iter().all(|m| m.is_finite()) && std.iter().all(|s| s.is_finite() && *s != 0.0),
        || format!("{label}: mean {mean:?} / std {std:?} must be finite, std non-zero"),
    )?;
    let plane = shape[2] as u64 * shape[3] as u64;
    let total = shape[0] as u64 * channels as u64 * plane;
    let too_large = || SagittaError::InvalidInput(format!("{label}: tensor too large"));
    let plane = u32::try_from(plane).map_err(|_| too_large())?;
    let total = u32::try_from(total).map_err(|_| too_large())?;
    let at = |v: &[f32], i: usize| v.get(i).copied().unwrap_or(0.0);
    let params = ChannelAffineParams {
        plane,
        channels: channels as u32,
        total,
        mean0: at(mean, 0),
        mean1: at(mean, 1),
        mean2: at(mean, 2),
        mean3: at(mean, 3),
        std0: at(std, 0),
        std1: at(std, 1),
        std2: at(std, 2),
        std3: at(std, 3),
    };
    let output = plan.activation(label, &[shape[0], channels as u32, shape[2], shape[3]]);
    plan.push_step(Step {
        label: label.to_string(),
        kernel: CHANNEL_AFFINE,
        overrides: vec![],
        params: params.words(),
        reads: vec![input],
        writes: vec![output],
        threads: Threads::Linear(total as u64),
        f16_packed_inputs: &[],
    });
    Ok(output)
}

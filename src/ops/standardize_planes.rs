//! `standardize_planes`: zero mean, unit variance over each plane of a tensor on its own (the
//! crops a model's refiners read, when its config asks for it).

use crate::engine::kernel::UniformParams;
use crate::engine::{Kernel, Plan, Step, TensorId, Threads};
use crate::error::{Result, SagittaError};

use super::invariant;

uniform_params! {
    pub struct StandardizePlanesParams {
        pub planes: u32,
        pub plane_size: u32,
        pub eps: f32,
    }
}

pub const STANDARDIZE_PLANES: Kernel = kernel!(
    "standardize_planes",
    "standardize_planes",
    "main",
    StandardizePlanesParams,
    trusted: false,
    parts: ["workgroup_sum"]
);

/// The uniform block for `input_shape` ([..., H, W]: every H x W plane on its own).
pub fn standardize_planes_params(input_shape: &[u32], eps: f32) -> Result<StandardizePlanesParams> {
    invariant(input_shape.len() >= 2, || {
        format!("standardize_planes: needs [..., H, W], got {input_shape:?}")
    })?;
    let (leading, plane) = input_shape.split_at(input_shape.len() - 2);
    let plane_size: u64 = plane.iter().map(|&d| d as u64).product();
    let planes: u64 = leading.iter().map(|&d| d as u64).product();
    invariant(plane_size > 0 && planes > 0, || {
        format!("standardize_planes of an empty tensor {input_shape:?}")
    })?;
    invariant(eps.is_finite() && eps > 0.0, || {
        format!("standardize_planes: eps must be positive, got {eps}")
    })?;
    // The shader indexes plane * plane_size + i in u32.
    u32::try_from(planes * plane_size)
        .map_err(|_| SagittaError::InvalidInput("standardize_planes: tensor too large".into()))?;
    Ok(StandardizePlanesParams {
        planes: planes as u32,
        plane_size: plane_size as u32,
        eps,
    })
}

/// `standardize_planes`: [..., H, W] -> the same shape, each H x W plane with zero mean and unit
/// (population) variance, its std floored at `eps`.
pub fn standardize_planes(plan: &mut Plan, input: TensorId, eps: f32) -> Result<TensorId> {
    let shape = plan.shape(input).to_vec();
    let params = standardize_planes_params(&shape, eps)?;
    let output = plan.activation("standardized planes", &shape);
    plan.push_step(Step {
        label: "standardize planes".into(),
        kernel: STANDARDIZE_PLANES,
        overrides: vec![],
        params: params.words(),
        reads: vec![input],
        writes: vec![output],
        threads: Threads::Groups(params.planes),
        f16_packed_inputs: &[],
    });
    Ok(output)
}

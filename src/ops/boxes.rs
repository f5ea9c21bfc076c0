//! Boxes around groups of landmarks (the model's group table arrives as data).

use crate::engine::kernel::UniformParams;
use crate::engine::{Kernel, Plan, Step, TensorId, Threads};
use crate::error::Result;

use super::invariant;

uniform_params! {
    pub struct BoxesParams {
        pub input_w: f32,
        pub input_h: f32,
        pub margin: f32,
        pub min_side: f32,
        pub boxes: u32,
        pub group_size: u32,
        /// 0: squares about the bounding box's centre; 1: rectangles about the points' mean.
        pub about_mean: u32,
    }
}

pub const BOXES: Kernel = kernel!("boxes", "boxes", "main", BoxesParams);

/// The shape of a group's box.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BoxShape {
    /// A square on the centre of the group's bounding box, side = the larger extent times
    /// `1 + margin`, at least `min_side`.
    #[default]
    Square,
    /// A rectangle on the mean of the group's points, each side = the group's extent along it
    /// times `1 + margin`, at least `min_side`.
    AboutMean,
}

/// How boxes are drawn around groups of points.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoxSpec {
    /// The network input the points are normalized to: (width, height) in pixels.
    pub input: (u32, u32),
    /// The box side is the group's larger extent times `1 + margin` ...
    pub margin: f32,
    /// ... and at least this many input pixels.
    pub min_side: f32,
    /// Points per group; `members` holds `boxes * group_size` point indices.
    pub group_size: u32,
    pub shape: BoxShape,
}

/// The uniform block of `boxes` for `count` boxes of `spec` (rewritten when the frame the points
/// are measured in changes size).
pub fn boxes_params(spec: &BoxSpec, count: u32) -> BoxesParams {
    BoxesParams {
        input_w: spec.input.0 as f32,
        input_h: spec.input.1 as f32,
        margin: spec.margin,
        min_side: spec.min_side,
        boxes: count,
        group_size: spec.group_size,
        about_mean: u32::from(spec.shape == BoxShape::AboutMean),
    }
}

/// `boxes`: DSNT rows `points` [P, 4] (normalized) and the u32 table `members`
/// [boxes * group_size] of point indices -> boxes [boxes, 4] (x1, y1, x2, y2) in input pixels
/// around each group, shaped as `spec.shape` says.
pub fn boxes(
    plan: &mut Plan,
    points: TensorId,
    members: TensorId,
    spec: &BoxSpec,
) -> Result<TensorId> {
    let rows = plan.shape(points).iter().product::<u32>() / 4;
    let table = plan.shape(members).iter().product::<u32>();
    invariant(spec.group_size > 0 && table % spec.group_size == 0, || {
        format!(
            "boxes: a table of {table} indices is not whole groups of {}",
            spec.group_size
        )
    })?;
    invariant(rows > 0 && spec.input.0 > 0 && spec.input.1 > 0, || {
        format!("boxes: {rows} points on a {:?} input", spec.input)
    })?;
    let count = table / spec.group_size;
    let output = plan.activation_f32("boxes", &[count, 4]);
    plan.push_step(Step {
        label: "boxes".into(),
        kernel: BOXES,
        overrides: vec![],
        params: boxes_params(spec, count).words(),
        reads: vec![points, members],
        writes: vec![output],
        threads: Threads::Linear(count as u64),
        f16_packed_inputs: &[],
    });
    Ok(output)
}

/// Checks a group table on the CPU before it is uploaded: every index names one of `points`.
pub fn check_members(members: &[u32], points: u32) -> Result<()> {
    invariant(members.iter().all(|&m| m < points), || {
        format!("boxes: a group names a point outside the {points} points")
    })
}

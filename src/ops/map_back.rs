//! Landmarks from box-relative and input-relative coordinates back to the original image (the
//! model's table of which landmark comes from which refined row and box arrives as data). An
//! ensemble's members give one block of global rows each; their mean (in normalized
//! coordinates, as the whole-spine SPEC averages) is taken on the way.

use crate::engine::kernel::UniformParams;
use crate::engine::{Kernel, Plan, Step, TensorId, Threads};
use crate::error::Result;

use super::invariant;

uniform_params! {
    pub struct MapBackParams {
        pub input_w: f32,
        pub input_h: f32,
        pub original_w: f32,
        pub original_h: f32,
        pub landmarks: u32,
        pub boxes: u32,
        /// Blocks of `landmarks` global rows averaged (1: no ensemble).
        pub members: u32,
    }
}

pub const MAP_BACK: Kernel = kernel!("map_back", "map_back", "main", MapBackParams);

/// Marks a landmark that keeps its global point (no refined row) in a sources table.
pub const GLOBAL_POINT: u32 = u32::MAX;

/// Parameters of `map_back` for an input and an original image size, both (width, height).
pub fn map_back_params(
    input: (u32, u32),
    original: (u32, u32),
    landmarks: u32,
    boxes: u32,
    members: u32,
) -> MapBackParams {
    MapBackParams {
        input_w: input.0 as f32,
        input_h: input.1 as f32,
        original_w: original.0 as f32,
        original_h: original.1 as f32,
        landmarks,
        boxes,
        members,
    }
}

/// `map_back`: global points `coarse` [M * L, 4] (normalized; M members' blocks of L rows,
/// averaged), refined points and their boxes `refined` ([R, 4] relative to their box, [B, 4]),
/// and the table `sources` [L, 2] of u32 pairs (refined row or [`GLOBAL_POINT`], box) ->
/// `result` rows: [0, L) landmarks in original pixels, [L, 2L) global points in input pixels,
/// [2L, 2L + B) boxes. A model without refiners passes `None` (`unused` is bound in their
/// place) and a table of global points only.
#[allow(clippy::too_many_arguments)]
pub fn map_back(
    plan: &mut Plan,
    coarse: TensorId,
    refined: Option<(TensorId, TensorId)>,
    sources: TensorId,
    result: TensorId,
    unused: TensorId,
    input: (u32, u32),
    original: (u32, u32),
    members: u32,
) -> Result<()> {
    invariant(members > 0, || "map_back: an ensemble of 0 members".into())?;
    let landmarks = plan.shape(coarse).iter().product::<u32>() / 4 / members;
    let (refined, boxes, box_count) = match refined {
        Some((refined, boxes)) => (
            refined,
            boxes,
            plan.shape(boxes).iter().product::<u32>() / 4,
        ),
        None => (unused, unused, 0),
    };
    let rows = plan.shape(result).iter().product::<u32>() / 4;
    invariant(rows >= 2 * landmarks + box_count, || {
        "map_back: result buffer too small".into()
    })?;
    invariant(
        plan.shape(sources).iter().product::<u32>() == 2 * landmarks,
        || format!("map_back: the sources table needs 2 x {landmarks} entries"),
    )?;
    plan.push_step(Step {
        label: "map_back".into(),
        kernel: MAP_BACK,
        overrides: vec![],
        params: map_back_params(input, original, landmarks, box_count, members).words(),
        reads: vec![coarse, refined, boxes, sources],
        writes: vec![result],
        threads: Threads::Linear(landmarks.max(box_count) as u64),
        f16_packed_inputs: &[],
    });
    Ok(())
}

/// Checks a sources table on the CPU before it is uploaded.
pub fn check_sources(sources: &[[u32; 2]], refined_rows: u32, boxes: u32) -> Result<()> {
    invariant(
        sources
            .iter()
            .all(|&[row, b]| row == GLOBAL_POINT || (row < refined_rows && b < boxes)),
        || "map_back: a landmark names a refined row or box that does not exist".into(),
    )
}

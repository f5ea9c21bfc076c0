//! Spatial softmax and DSNT (differentiable spatial to numerical transform) in one reduction.

use crate::engine::kernel::UniformParams;
use crate::engine::{Kernel, Plan, Step, TensorId, Threads};
use crate::error::Result;

use super::invariant;

uniform_params! {
    pub struct SoftmaxDsntParams {
        pub heatmaps: u32,
        pub height: u32,
        pub width: u32,
        pub out_offset: u32,
    }
}

pub const SOFTMAX_DSNT: Kernel = kernel!("softmax_dsnt", "softmax_dsnt", "main", SoftmaxDsntParams);

/// `softmax_dsnt`: [N, C, H, W] heatmaps -> rows (x, y, var_x, var_y) written into `coords`
/// starting at row `out_offset`, in heatmap order.
pub fn softmax_dsnt(
    plan: &mut Plan,
    label: &str,
    heatmaps: TensorId,
    coords: TensorId,
    out_offset: u32,
) -> Result<()> {
    let hs = plan.shape(heatmaps).to_vec();
    invariant(hs.len() == 4, || {
        format!("{label}: heatmaps must be [N, C, H, W], got {hs:?}")
    })?;
    let count = hs[0] * hs[1];
    let rows = plan.shape(coords).iter().product::<u32>() / 4;
    invariant(out_offset + count <= rows, || {
        format!("{label}: {count} heatmaps at row {out_offset} overflow {rows} coordinate rows")
    })?;
    plan.push_step(Step {
        label: label.to_string(),
        kernel: SOFTMAX_DSNT,
        overrides: vec![],
        params: SoftmaxDsntParams {
            heatmaps: count,
            height: hs[2],
            width: hs[3],
            out_offset,
        }
        .words(),
        reads: vec![heatmaps],
        writes: vec![coords],
        threads: Threads::Groups(count),
        f16_packed_inputs: &[],
    });
    Ok(())
}

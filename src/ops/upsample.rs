//! Upsampling merged into the following add.

use crate::engine::kernel::UniformParams;
use crate::engine::{Kernel, Plan, Step, TensorId, Threads};
use crate::error::Result;

use super::invariant;

uniform_params! {
    pub struct UpsampleAddParams {
        pub planes: u32,
        pub low_h: u32,
        pub low_w: u32,
    }
}

pub const UPSAMPLE_ADD: Kernel = kernel!("upsample_add", "upsample_add", "main", UpsampleAddParams);

/// `upsample_add`: skip + nearest x2 upsample of low.
pub fn upsample_add(
    plan: &mut Plan,
    label: &str,
    low: TensorId,
    skip: TensorId,
) -> Result<TensorId> {
    let ls = plan.shape(low).to_vec();
    let ss = plan.shape(skip).to_vec();
    invariant(
        ls.len() == 4
            && ss.len() == 4
            && ls[0] == ss[0]
            && ls[1] == ss[1]
            && ss[2] == 2 * ls[2]
            && ss[3] == 2 * ls[3],
        || format!("{label}: cannot add x2 upsample of {ls:?} to {ss:?}"),
    )?;
    let planes = ls[0] * ls[1];
    let output = plan.activation(label, &ss);
    plan.push_step(Step {
        label: label.to_string(),
        kernel: UPSAMPLE_ADD,
        overrides: vec![],
        params: UpsampleAddParams {
            planes,
            low_h: ls[2],
            low_w: ls[3],
        }
        .words(),
        reads: vec![low, skip],
        writes: vec![output],
        threads: Threads::Linear(ss.iter().map(|&d| d as u64).product()),
        f16_packed_inputs: &[],
    });
    Ok(output)
}

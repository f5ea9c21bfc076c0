//! `pool2d`: general max- and average-pooling in floor mode, exactly as PyTorch's
//! `F.max_pool2d` / `F.avg_pool2d` (twin: `tools/sagitta_ref/ops/pool2d.py`): kernel, stride and
//! zero padding per axis; for averages `count_include_pad` either way. The 2x2 `maxpool2` stays
//! as it is.

use crate::engine::kernel::UniformParams;
use crate::engine::{Kernel, Plan, Step, TensorId, Threads};
use crate::error::{Result, SagittaError};

use super::invariant;

uniform_params! {
    pub struct Pool2dParams {
        pub planes: u32,
        pub in_h: u32,
        pub in_w: u32,
        pub out_h: u32,
        pub out_w: u32,
        pub kernel_h: u32,
        pub kernel_w: u32,
        pub stride_y: u32,
        pub stride_x: u32,
        pub pad_y: u32,
        pub pad_x: u32,
        /// 0 max, 1 average dividing by the window size, 2 average over the real pixels.
        pub mode: u32,
        /// Channels per sample of the input; channels of the output tensor and this op's first
        /// channel in it (a channel view), else `channels` and 0.
        pub channels: u32,
        pub out_c_total: u32,
        pub out_c_offset: u32,
    }
}

pub const POOL2D: Kernel = kernel!("pool2d", "pool2d", "main", Pool2dParams);

/// What a window reduces to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolKind {
    /// The largest real pixel (padding never wins).
    Max,
    /// The mean; `count_include_pad` divides by kh * kw, otherwise by the real pixels.
    Avg { count_include_pad: bool },
}

/// A pooling layer: kernel (kh, kw), stride (sy, sx), padding (py, px), floor mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool2d {
    pub kind: PoolKind,
    pub kernel: (u32, u32),
    pub stride: (u32, u32),
    pub padding: (u32, u32),
}

impl Pool2d {
    /// Max-pool, square kernel k, stride s, padding p (resnet: 3, 2, 1; Inception: 3, 2, 0).
    pub fn max(k: u32, s: u32, p: u32) -> Self {
        Pool2d {
            kind: PoolKind::Max,
            kernel: (k, k),
            stride: (s, s),
            padding: (p, p),
        }
    }

    /// Average pool, square kernel k, stride s, padding p.
    pub fn avg(k: u32, s: u32, p: u32, count_include_pad: bool) -> Self {
        Pool2d {
            kind: PoolKind::Avg { count_include_pad },
            kernel: (k, k),
            stride: (s, s),
            padding: (p, p),
        }
    }

    /// The output size of an (in_h, in_w) input, with PyTorch's checks: kernel and stride > 0,
    /// padding at most half the kernel, the padded input at least one kernel.
    pub fn output_size(&self, in_h: u32, in_w: u32) -> Result<(u32, u32)> {
        let ((kh, kw), (sy, sx), (py, px)) = (self.kernel, self.stride, self.padding);
        invariant(kh > 0 && kw > 0 && sy > 0 && sx > 0, || {
            format!("pool2d: kernel {kh}x{kw} and stride {sy}x{sx} must be positive")
        })?;
        invariant(py <= kh / 2 && px <= kw / 2, || {
            format!("pool2d: padding {py}x{px} exceeds half the kernel {kh}x{kw}")
        })?;
        let (ph, pw) = (in_h as u64 + 2 * py as u64, in_w as u64 + 2 * px as u64);
        invariant(
            in_h > 0 && in_w > 0 && ph >= kh as u64 && pw >= kw as u64,
            || {
                format!("pool2d: input {in_h}x{in_w} (padded {ph}x{pw}) smaller than the kernel {kh}x{kw}")
            },
        )?;
        invariant(
            ph + kh as u64 <= u32::MAX as u64 && pw + kw as u64 <= u32::MAX as u64,
            || format!("pool2d: input {in_h}x{in_w} too large"),
        )?;
        Ok((
            ((ph - kh as u64) / sy as u64 + 1) as u32,
            ((pw - kw as u64) / sx as u64 + 1) as u32,
        ))
    }
}

/// `pool2d`: [N, C, H, W] -> [N, C, out_h, out_w] (see [`Pool2d::output_size`]).
pub fn pool2d(plan: &mut Plan, label: &str, input: TensorId, pool: &Pool2d) -> Result<TensorId> {
    let shape = plan.shape(input).to_vec();
    invariant(shape.len() == 4, || {
        format!("{label}: pooling needs [N, C, H, W], got {shape:?}")
    })?;
    let (oh, ow) = pool.output_size(shape[2], shape[3]).map_err(|e| match e {
        SagittaError::InvalidInput(m) => SagittaError::InvalidInput(format!("{label}: {m}")),
        e => e,
    })?;
    let output = plan.activation(label, &[shape[0], shape[1], oh, ow]);
    pool2d_into(plan, label, input, pool, output)?;
    Ok(output)
}

/// [`pool2d`] writing `output`: a tensor of the output's shape or a channel view of a larger one
/// ([`Plan::channel_view`]: a pooling branch of a concatenation written in place).
pub fn pool2d_into(
    plan: &mut Plan,
    label: &str,
    input: TensorId,
    pool: &Pool2d,
    output: TensorId,
) -> Result<()> {
    let shape = plan.shape(input).to_vec();
    invariant(shape.len() == 4, || {
        format!("{label}: pooling needs [N, C, H, W], got {shape:?}")
    })?;
    let (oh, ow) = pool.output_size(shape[2], shape[3]).map_err(|e| match e {
        SagittaError::InvalidInput(m) => SagittaError::InvalidInput(format!("{label}: {m}")),
        e => e,
    })?;
    let planes = shape[0] as u64 * shape[1] as u64;
    let elements = planes * (shape[2] as u64 * shape[3] as u64).max(oh as u64 * ow as u64);
    invariant(elements <= u32::MAX as u64, || {
        format!("{label}: {shape:?} has too many elements for 32-bit indices")
    })?;
    let mode = match pool.kind {
        PoolKind::Max => 0,
        PoolKind::Avg {
            count_include_pad: true,
        } => 1,
        PoolKind::Avg {
            count_include_pad: false,
        } => 2,
    };
    let out_shape = [shape[0], shape[1], oh, ow];
    invariant(plan.shape(output) == out_shape, || {
        format!(
            "{label}: output {:?} is not the pooling's {out_shape:?}",
            plan.shape(output)
        )
    })?;
    let (out_c_total, out_c_offset) = match plan.view_of(output) {
        Some((parent, offset)) => (plan.shape(parent)[1], offset),
        None => (shape[1], 0),
    };
    plan.push_step(Step {
        label: label.to_string(),
        kernel: POOL2D,
        overrides: vec![],
        params: Pool2dParams {
            planes: planes as u32,
            in_h: shape[2],
            in_w: shape[3],
            out_h: oh,
            out_w: ow,
            kernel_h: pool.kernel.0,
            kernel_w: pool.kernel.1,
            stride_y: pool.stride.0,
            stride_x: pool.stride.1,
            pad_y: pool.padding.0,
            pad_x: pool.padding.1,
            mode,
            channels: shape[1],
            out_c_total,
            out_c_offset,
        }
        .words(),
        reads: vec![input],
        writes: vec![output],
        threads: Threads::Linear(planes * oh as u64 * ow as u64),
        f16_packed_inputs: &[],
    });
    Ok(())
}

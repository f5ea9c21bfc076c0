//! 2-D convolution: CPU-side weights, BatchNorm folding, the GPU layer with its packed weights,
//! and the four kernels that run it (direct, tiled implicit GEMM, Winograd, tensor cores), chosen
//! per layer by shape ([`select`]) or by measurement ([`tune`]).

use std::sync::Arc;

use crate::engine::buffers::{upload, upload_f16};
use crate::engine::kernel::UniformParams;
use crate::engine::{GpuContext, Kernel, Plan, Step, TensorId, Threads};
use crate::error::{Result, SagittaError};

use super::{invariant, u32_len};

pub mod coop;
pub mod select;
pub mod tune;
pub mod winograd;

pub use select::{ConvAlgorithm, ConvKey, ConvSelection};

/// Output channel views for a channel concatenation written in place: a tensor [n, sum of
/// `channels`, h, w] and one view per part, in order, for the producers to write.
pub fn concat_outputs(
    plan: &mut Plan,
    label: &str,
    n: u32,
    (h, w): (u32, u32),
    channels: &[u32],
) -> Result<(TensorId, Vec<TensorId>)> {
    let total: u32 = channels.iter().sum();
    invariant(n > 0 && h > 0 && w > 0 && total > 0, || {
        format!("{label}: empty concatenation")
    })?;
    let whole = plan.activation(label, &[n, total, h, w]);
    let mut views = Vec::with_capacity(channels.len());
    let mut offset = 0;
    for (i, &c) in channels.iter().enumerate() {
        views.push(plan.channel_view(format!("{label}.{i}"), whole, offset, c)?);
        offset += c;
    }
    Ok((whole, views))
}
pub use winograd::winograd_filter;

uniform_params! {
    /// The uniform block of all four convolution kernels (`shaders/conv2d/common.wgsl`).
    pub struct ConvParams {
        pub batch: u32,
        pub in_c: u32,
        pub in_h: u32,
        pub in_w: u32,
        pub out_c: u32,
        pub out_h: u32,
        pub out_w: u32,
        pub out_c4: u32,
        /// Direct kernel: 4-pixel blocks per output row.
        pub x_blocks: u32,
        /// Tiled kernels: the GEMM's K (in_c * k * k).
        pub k_total: u32,
        /// Winograd: 2x2 output tiles per row.
        pub tiles_w: u32,
        /// Per-sample weight sets: strides between sets (0: one set for the whole batch).
        pub weight_set_stride: u32,
        pub bias_set_stride: u32,
        pub prologue_set_stride: u32,
        /// Direct kernel: invocations.
        pub total: u32,
        /// Channels of the output tensor and this convolution's first channel in it (a channel
        /// view: a concatenation written in place); `out_c` and 0 otherwise.
        pub out_c_total: u32,
        pub out_c_offset: u32,
        /// Distinct weight sets (1: shared); sample n uses set n % weight_sets.
        pub weight_sets: u32,
    }
}

// The convolutions guard every index against their uniform block, which ConvLayer writes from
// checked, non-zero shapes: they run without wgpu's injected checks (the hot loop of the model).
pub const CONV2D: Kernel = kernel!(
    "conv2d",
    "conv2d/direct",
    "main",
    ConvParams,
    trusted: true,
    parts: ["conv2d/common"]
);
pub const CONV2D_TILED: Kernel = kernel!(
    "conv2d_tiled",
    "conv2d/tiled",
    "main",
    ConvParams,
    trusted: true,
    parts: ["conv2d/common", "conv2d/im2col"]
);
pub const CONV2D_WINOGRAD: Kernel = kernel!(
    "conv2d_winograd",
    "conv2d/winograd",
    "main",
    ConvParams,
    trusted: true,
    parts: ["conv2d/common"]
);
/// Tensor-core convolution; needs cooperative matrices and subgroups, so it is not in
/// [`super::ALL_KERNELS`] (whose members build on every adapter). Checked, not trusted: it has
/// not yet run on hardware that has the feature.
pub const CONV2D_COOP: Kernel = kernel!(
    "conv2d_coop",
    "conv2d/coop",
    "main",
    ConvParams,
    trusted: false,
    parts: ["conv2d/common", "conv2d/im2col"]
);

/// The convolution kernels' names (bench and tuning reports).
pub const CONV_KERNEL_NAMES: [&str; 4] = [
    CONV2D.name,
    CONV2D_TILED.name,
    CONV2D_WINOGRAD.name,
    CONV2D_COOP.name,
];

/// What the epilogue applies after the bias and the residual add.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Activation {
    #[default]
    None,
    Relu,
    Sigmoid,
}

impl Activation {
    /// The `ACTIVATION` override constant of `shaders/conv2d/common.wgsl` and `shaders/linear.wgsl`.
    pub(crate) fn code(self) -> u32 {
        match self {
            Activation::None => 0,
            Activation::Relu => 1,
            Activation::Sigmoid => 2,
        }
    }

    fn from_code(code: u32) -> Self {
        match code {
            1 => Activation::Relu,
            2 => Activation::Sigmoid,
            _ => Activation::None,
        }
    }
}

/// How a layer's weights are stored on the GPU. `F16` halves their memory: the packed weights
/// are rounded to f16 (after BatchNorm folding) and unpacked to f32 in the kernels, so the
/// arithmetic is the same as for f32 weights. Used where the weights file holds f16.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WeightStorage {
    #[default]
    F32,
    F16,
}

/// Strides and zero padding of a convolution, each (y, x).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeometry {
    pub stride: (u32, u32),
    pub pad: (u32, u32),
}

impl ConvGeometry {
    /// The same stride and padding along y and x.
    pub fn square(stride: u32, pad: u32) -> Self {
        Self {
            stride: (stride, stride),
            pad: (pad, pad),
        }
    }
}

/// CPU-side convolution weights in PyTorch layout, BatchNorm already folded.
#[derive(Debug, Clone)]
pub struct ConvWeights {
    pub out_c: usize,
    pub in_c: usize,
    /// Kernel height and width.
    pub kh: usize,
    pub kw: usize,
    /// [out_c, in_c, kh, kw]
    pub weight: Vec<f32>,
    /// `[out_c]`
    pub bias: Vec<f32>,
    /// How the packed weights are kept on the GPU.
    pub storage: WeightStorage,
}

impl ConvWeights {
    /// Folds a BatchNorm that follows this convolution: y = (conv(x) - mean) / sqrt(var + eps) * g + b.
    pub fn fold_batchnorm(&mut self, bn: &BatchNorm) {
        let per_oc = self.in_c * self.kh * self.kw;
        for oc in 0..self.out_c {
            let (scale, shift) = (bn.scale[oc], bn.shift[oc]);
            for w in &mut self.weight[oc * per_oc..(oc + 1) * per_oc] {
                *w *= scale;
            }
            self.bias[oc] = self.bias[oc] * scale + shift;
        }
    }
}

/// An inference-mode BatchNorm as y = x * scale + shift.
#[derive(Debug, Clone)]
pub struct BatchNorm {
    pub scale: Vec<f32>,
    pub shift: Vec<f32>,
}

impl BatchNorm {
    pub fn from_stats(gamma: &[f32], beta: &[f32], mean: &[f32], var: &[f32], eps: f32) -> Self {
        let scale: Vec<f32> = gamma
            .iter()
            .zip(var)
            .map(|(g, v)| g / (v + eps).sqrt())
            .collect();
        let shift = beta
            .iter()
            .zip(mean)
            .zip(&scale)
            .map(|((b, m), s)| b - m * s)
            .collect();
        Self { scale, shift }
    }
}

/// A convolution layer on the GPU: packed weights for one set, or one set per sample (several
/// networks of one architecture run as one batch, sample n with weight set n).
pub struct ConvLayer {
    pub in_c: u32,
    pub out_c: u32,
    /// Kernel height and width.
    pub kh: u32,
    pub kw: u32,
    pub geometry: ConvGeometry,
    pub activation: Activation,
    /// 1: one set shared by the batch; n > 1: sample i uses set i (batch size n).
    pub weight_sets: u32,
    /// Direct, Tiled, Winograd, or Auto (direct or tiled by output shape, decided per plan).
    algorithm: ConvAlgorithm,
    storage: WeightStorage,
    weight: Arc<wgpu::Buffer>,
    bias: Arc<wgpu::Buffer>,
    prologue: Option<Arc<wgpu::Buffer>>,
}

impl ConvLayer {
    /// A layer whose kernel is chosen by its output shape at each plan: direct or tiled (the
    /// weights are packed before the map size is known, so never Winograd; see
    /// [`Self::for_output_pixels`]).
    pub fn new(
        ctx: &GpuContext,
        label: &str,
        weight_sets: &[ConvWeights],
        geometry: ConvGeometry,
        activation: Activation,
        prologue: Option<&[BatchNorm]>,
    ) -> Result<Self> {
        Self::with_algorithm(
            ctx,
            label,
            weight_sets,
            geometry,
            activation,
            prologue,
            ConvAlgorithm::Auto,
        )
    }

    /// A layer whose output map will have `out_pixels` pixels per sample: the kernel is chosen
    /// now by `selection` (with per-sample weights, for the whole batch's pixels) so that
    /// Winograd layers get only Winograd weights.
    #[allow(clippy::too_many_arguments)]
    pub fn for_output_pixels(
        ctx: &GpuContext,
        label: &str,
        weight_sets: &[ConvWeights],
        geometry: ConvGeometry,
        activation: Activation,
        prologue: Option<&[BatchNorm]>,
        out_pixels: u32,
        selection: &ConvSelection,
    ) -> Result<Self> {
        let first = weight_sets.first();
        let key = ConvKey {
            kh: first.map_or(0, |g| g.kh as u32),
            kw: first.map_or(0, |g| g.kw as u32),
            stride: geometry.stride,
            in_c: first.map_or(0, |g| g.in_c as u32),
            out_c: first.map_or(0, |g| g.out_c as u32),
            out_pixels,
            weight_sets: weight_sets.len() as u32,
        };
        let algorithm = selection.choose(ctx.info.device_type, &key);
        Self::with_algorithm(
            ctx,
            label,
            weight_sets,
            geometry,
            activation,
            prologue,
            algorithm,
        )
    }

    /// A layer run by a given kernel (tests hold every kernel to PyTorch). Weights are packed for
    /// it: `[set][ic][ky][kx][oc/4]` vec4 for direct and tiled, `[set][xi][ic][oc/4]` vec4 of
    /// transformed filters for Winograd.
    #[allow(clippy::too_many_arguments)]
    pub fn with_algorithm(
        ctx: &GpuContext,
        label: &str,
        weight_sets: &[ConvWeights],
        geometry: ConvGeometry,
        activation: Activation,
        prologue: Option<&[BatchNorm]>,
        algorithm: ConvAlgorithm,
    ) -> Result<Self> {
        let first = weight_sets
            .first()
            .ok_or_else(|| SagittaError::Config(format!("{label}: no weights")))?;
        let (out_c, in_c, kh, kw) = (first.out_c, first.in_c, first.kh, first.kw);
        let storage = first.storage;
        let ConvGeometry { stride, .. } = geometry;
        // The kernels divide by these sizes and run without division checks.
        invariant(
            out_c > 0 && in_c > 0 && kh > 0 && kw > 0 && stride.0 > 0 && stride.1 > 0,
            || format!("{label}: empty convolution ({out_c}x{in_c}x{kh}x{kw}, stride {stride:?})"),
        )?;
        if algorithm == ConvAlgorithm::Winograd && (kh, kw, stride) != (3, 3, (1, 1)) {
            return Err(SagittaError::Config(format!(
                "{label}: Winograd runs 3x3 stride-1 convolutions only, not {kh}x{kw} stride \
                 {stride:?}"
            )));
        }
        let out_c4 = out_c.div_ceil(4);
        // Taps per (ic, oc): kh*kw filter weights, or the 16 of the transformed 4x4 filter.
        let taps = if algorithm == ConvAlgorithm::Winograd {
            16
        } else {
            kh * kw
        };
        let set_len = in_c * taps * out_c4 * 4;
        let mut packed = vec![0.0f32; weight_sets.len() * set_len];
        let mut biases = vec![0.0f32; weight_sets.len() * out_c4 * 4];
        for (g, w) in weight_sets.iter().enumerate() {
            invariant(
                w.out_c == out_c
                    && w.in_c == in_c
                    && (w.kh, w.kw) == (kh, kw)
                    && w.storage == storage,
                || format!("{label}: weight sets have different shapes or storage"),
            )?;
            for oc in 0..out_c {
                for ic in 0..in_c {
                    let filter = &w.weight[(oc * in_c + ic) * kh * kw..][..kh * kw];
                    if algorithm == ConvAlgorithm::Winograd {
                        for (xi, u) in winograd_filter(filter).into_iter().enumerate() {
                            packed[g * set_len + ((xi * in_c + ic) * out_c4) * 4 + oc] = u;
                        }
                    } else {
                        for (t, &v) in filter.iter().enumerate() {
                            packed[g * set_len + ((ic * kh * kw + t) * out_c4) * 4 + oc] = v;
                        }
                    }
                }
                biases[g * out_c4 * 4 + oc] = w.bias[oc];
            }
        }
        let prologue = match prologue {
            Some(bns) => {
                invariant(bns.len() == weight_sets.len(), || {
                    format!("{label}: one prologue BatchNorm per weight set expected")
                })?;
                let interleaved: Vec<f32> = bns
                    .iter()
                    .flat_map(|bn| bn.scale.iter().zip(&bn.shift).flat_map(|(s, b)| [*s, *b]))
                    .collect();
                Some(upload(ctx, &format!("{label} prologue"), &interleaved))
            }
            None => None,
        };
        let weight = match storage {
            WeightStorage::F32 => upload(ctx, &format!("{label} weight"), &packed),
            WeightStorage::F16 => upload_f16(ctx, &format!("{label} weight"), &packed),
        };
        Ok(Self {
            in_c: in_c as u32,
            out_c: out_c as u32,
            kh: kh as u32,
            kw: kw as u32,
            geometry,
            activation,
            weight_sets: weight_sets.len() as u32,
            algorithm,
            storage,
            weight,
            bias: upload(ctx, &format!("{label} bias"), &biases),
            prologue,
        })
    }

    /// The output map of an `h` x `w` input, None when the kernel does not fit.
    pub fn output_size(&self, h: u32, w: u32) -> Option<(u32, u32)> {
        let ConvGeometry { stride, pad } = self.geometry;
        let oh = (h + 2 * pad.0).checked_sub(self.kh)? / stride.0 + 1;
        let ow = (w + 2 * pad.1).checked_sub(self.kw)? / stride.1 + 1;
        Some((oh, ow))
    }

    /// GPU bytes of the packed weights, biases and prologue tables.
    pub fn weight_bytes(&self) -> u64 {
        self.weight.size() + self.bias.size() + self.prologue.as_ref().map_or(0, |b| b.size())
    }

    pub fn weight_storage(&self) -> WeightStorage {
        self.storage
    }

    /// Adds the convolution to the plan, writing a new activation. `unused` is bound where an
    /// optional input is absent.
    pub fn apply(
        &self,
        plan: &mut Plan,
        label: &str,
        input: TensorId,
        residual: Option<TensorId>,
        unused: TensorId,
    ) -> Result<TensorId> {
        let shape = plan.shape(input).to_vec();
        invariant(shape.len() == 4, || {
            format!("{label}: expected [N, {}, H, W], got {shape:?}", self.in_c)
        })?;
        let (oh, ow) = self.output_size(shape[2], shape[3]).ok_or_else(|| {
            SagittaError::InvalidInput(format!(
                "{label}: input {}x{} smaller than the kernel",
                shape[2], shape[3]
            ))
        })?;
        let output = plan.activation(label, &[shape[0], self.out_c, oh, ow]);
        self.apply_into(plan, label, input, residual, unused, output)?;
        Ok(output)
    }

    /// Adds the convolution to the plan, writing `output`: a tensor of the output's shape, or a
    /// channel view of a larger one ([`Plan::channel_view`]: the branches of a concatenation
    /// write their channels in place).
    pub fn apply_into(
        &self,
        plan: &mut Plan,
        label: &str,
        input: TensorId,
        residual: Option<TensorId>,
        unused: TensorId,
        output: TensorId,
    ) -> Result<()> {
        let shape = plan.shape(input).to_vec();
        invariant(shape.len() == 4 && shape[1] == self.in_c, || {
            format!("{label}: expected [N, {}, H, W], got {shape:?}", self.in_c)
        })?;
        let (n, h, w) = (shape[0], shape[2], shape[3]);
        invariant(n > 0 && h > 0 && w > 0, || {
            format!("{label}: empty input {shape:?}")
        })?;
        // A batch of several images repeats the per-sample sets (set n % weight_sets).
        invariant(n % self.weight_sets == 0, || {
            format!(
                "{label}: {} weight sets for a batch of {n}",
                self.weight_sets
            )
        })?;
        let (oh, ow) = self.output_size(h, w).ok_or_else(|| {
            SagittaError::InvalidInput(format!("{label}: input {h}x{w} smaller than the kernel"))
        })?;
        let out_shape = [n, self.out_c, oh, ow];
        invariant(plan.shape(output) == out_shape, || {
            format!(
                "{label}: output {:?} is not the convolution's {out_shape:?}",
                plan.shape(output)
            )
        })?;
        let (out_c_total, out_c_offset) = match plan.view_of(output) {
            Some((parent, offset)) => (plan.shape(parent)[1], offset),
            None => (self.out_c, 0),
        };
        if let Some(r) = residual {
            invariant(plan.shape(r) == out_shape, || {
                format!(
                    "{label}: residual {:?} does not match output {out_shape:?}",
                    plan.shape(r)
                )
            })?;
        }
        let weight = plan.bound(
            format!("{label}.weight"),
            &[self.weight.size() as u32 / 4],
            self.weight.clone(),
        );
        let bias = plan.bound(
            format!("{label}.bias"),
            &[self.bias.size() as u32 / 4],
            self.bias.clone(),
        );
        let prologue = match &self.prologue {
            Some(b) => plan.bound(
                format!("{label}.prologue"),
                &[b.size() as u32 / 4],
                b.clone(),
            ),
            None => unused,
        };
        let out_c4 = self.out_c.div_ceil(4);
        let per_sample = self.weight_sets > 1;
        let algorithm = match self.algorithm {
            ConvAlgorithm::Auto => ConvAlgorithm::tiled_or_direct(self.out_c, oh * ow),
            chosen => chosen,
        };
        let taps = if algorithm == ConvAlgorithm::Winograd {
            16
        } else {
            self.kh * self.kw
        };
        let ConvGeometry { stride, pad } = self.geometry;
        let overrides = vec![
            ("KH", self.kh as f64),
            ("KW", self.kw as f64),
            ("STRIDE_Y", stride.0 as f64),
            ("STRIDE_X", stride.1 as f64),
            ("PAD_Y", pad.0 as f64),
            ("PAD_X", pad.1 as f64),
            ("PROLOGUE", f64::from(u8::from(self.prologue.is_some()))),
            ("RESIDUAL", f64::from(u8::from(residual.is_some()))),
            ("ACTIVATION", f64::from(self.activation.code())),
        ];
        let reads = vec![input, weight, bias, prologue, residual.unwrap_or(unused)];
        let mut params = ConvParams {
            batch: n,
            in_c: self.in_c,
            in_h: h,
            in_w: w,
            out_c: self.out_c,
            out_h: oh,
            out_w: ow,
            out_c4,
            weight_set_stride: if per_sample {
                self.in_c * taps * out_c4
            } else {
                0
            },
            bias_set_stride: if per_sample { out_c4 } else { 0 },
            prologue_set_stride: if per_sample { self.in_c } else { 0 },
            out_c_total,
            out_c_offset,
            weight_sets: self.weight_sets,
            ..ConvParams::default()
        };
        let (kernel, threads) = match algorithm {
            ConvAlgorithm::Winograd => {
                params.tiles_w = ow.div_ceil(2);
                let tiles = oh.div_ceil(2) * params.tiles_w;
                let grid = [tiles.div_ceil(16), self.out_c.div_ceil(16), n];
                (CONV2D_WINOGRAD, Threads::Grid(grid))
            }
            ConvAlgorithm::Tiled => {
                params.k_total = self.in_c * self.kh * self.kw;
                let grid = [(oh * ow).div_ceil(64), self.out_c.div_ceil(64), n];
                // Same tiles, weights and uniform block on tensor cores where allowed.
                let kernel = if plan.cooperative_matrix() {
                    CONV2D_COOP
                } else {
                    CONV2D_TILED
                };
                (kernel, Threads::Grid(grid))
            }
            _ => {
                // The direct kernel caches the 3 * stride + kw input columns of a row in 16
                // registers.
                invariant(3 * stride.1 + self.kw <= 16, || {
                    format!(
                        "{label}: the direct kernel runs kernels up to 3 * stride + kw = 16 \
                         columns, not kw {} stride {}; use the tiled algorithm",
                        self.kw, stride.1
                    )
                })?;
                params.x_blocks = ow.div_ceil(4);
                let total = n as u64 * out_c4 as u64 * oh as u64 * params.x_blocks as u64;
                params.total = u32_len(total as usize)?;
                (CONV2D, Threads::Linear(total))
            }
        };
        plan.push_step(Step {
            label: label.to_string(),
            kernel,
            overrides,
            params: params.words(),
            reads,
            writes: vec![output],
            threads,
            f16_packed_inputs: match self.storage {
                WeightStorage::F32 => &[],
                WeightStorage::F16 => &["weight"],
            },
        });
        Ok(())
    }
}

/// A convolution step as a plan holds it: its kernel's geometry, read back from the step's
/// uniform block and override constants (tuning and benchmarks re-create or describe it).
#[derive(Debug, Clone)]
pub struct ConvStep {
    pub params: ConvParams,
    pub key: ConvKey,
    /// Zero padding (y, x).
    pub pad: (u32, u32),
    pub prologue: bool,
    pub residual: bool,
    pub activation: Activation,
}

impl ConvStep {
    /// None for steps of other kernels.
    pub fn of(step: &Step) -> Option<Self> {
        if !CONV_KERNEL_NAMES.contains(&step.kernel.name) {
            return None;
        }
        let params = ConvParams::from_words(&step.params)?;
        let o = |name: &str| {
            step.overrides
                .iter()
                .find(|(k, _)| *k == name)
                .map_or(0, |(_, v)| *v as u32)
        };
        Some(Self {
            key: ConvKey {
                kh: o("KH"),
                kw: o("KW"),
                stride: (o("STRIDE_Y"), o("STRIDE_X")),
                in_c: params.in_c,
                out_c: params.out_c,
                out_pixels: params.out_h * params.out_w,
                weight_sets: params.weight_sets.max(1),
            },
            params,
            pad: (o("PAD_Y"), o("PAD_X")),
            prologue: o("PROLOGUE") != 0,
            residual: o("RESIDUAL") != 0,
            activation: Activation::from_code(o("ACTIVATION")),
        })
    }
}

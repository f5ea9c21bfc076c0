//! The kernels in `shaders/`, each with the Rust that checks its shapes, infers its output and
//! adds its dispatch to a [`Plan`]. Each has a PyTorch twin in `tools/sagitta_ref/ops.py` and a
//! parity test in `tests/kernels.rs`.

use std::sync::Arc;

use wgpu::util::DeviceExt;

use crate::error::{Result, SagittaError};
use crate::gpu::GpuContext;
use crate::plan::{Kernel, Plan, Step, TensorId, Threads};

macro_rules! kernel {
    ($name:literal, $entry:literal) => {
        kernel!($name, $entry, trusted: false, parts: [])
    };
    // `parts`: shared shader files appended to the kernel's own (WGSL has no includes).
    ($name:literal, $entry:literal, trusted: $trusted:literal, parts: [$($part:literal),*]) => {
        Kernel {
            name: $name,
            source: concat!(
                include_str!(concat!("../shaders/", $name, ".wgsl")),
                $("\n", include_str!(concat!("../shaders/", $part, ".wgsl")),)*
            ),
            entry: $entry,
            trusted: $trusted,
        }
    };
}

pub const RESIZE_BICUBIC: Kernel = kernel!("resize_bicubic", "main");
pub const STANDARDIZE_STATS: Kernel = kernel!("standardize", "statistics");
pub const STANDARDIZE_APPLY: Kernel = kernel!("standardize_apply", "main");
// The convolutions guard every index against their uniform block, which ConvLayer writes from
// checked, non-zero shapes: they run without wgpu's injected checks (the hot loop of the model).
pub const CONV2D: Kernel = kernel!("conv2d", "main", trusted: true, parts: ["conv_common"]);
pub const CONV2D_TILED: Kernel = kernel!(
    "conv2d_tiled",
    "main",
    trusted: true,
    parts: ["conv_common", "conv_im2col"]
);
pub const CONV2D_WINOGRAD: Kernel =
    kernel!("conv2d_winograd", "main", trusted: true, parts: ["conv_common"]);
/// Tensor-core convolution; needs cooperative matrices and subgroups, so it is not in
/// [`ALL_KERNELS`] (whose members build on every adapter). Checked, not trusted: it has not yet
/// run on hardware that has the feature.
pub const CONV2D_COOP: Kernel = kernel!(
    "conv2d_coop",
    "main",
    trusted: false,
    parts: ["conv_common", "conv_im2col"]
);
pub const MAXPOOL2: Kernel = kernel!("maxpool2", "main");
pub const UPSAMPLE_ADD: Kernel = kernel!("upsample_add", "main");
pub const SOFTMAX_DSNT: Kernel = kernel!("softmax_dsnt", "main");
pub const BOXES: Kernel = kernel!("boxes", "main");
pub const ROI_ALIGN: Kernel = kernel!("roi_align", "main");
pub const MAP_BACK: Kernel = kernel!("map_back", "main");

/// Every kernel, for the shader-translation test and pipeline warm-up.
pub const ALL_KERNELS: &[Kernel] = &[
    RESIZE_BICUBIC,
    STANDARDIZE_STATS,
    STANDARDIZE_APPLY,
    CONV2D,
    CONV2D_TILED,
    CONV2D_WINOGRAD,
    MAXPOOL2,
    UPSAMPLE_ADD,
    SOFTMAX_DSNT,
    BOXES,
    ROI_ALIGN,
    MAP_BACK,
];

fn invariant(ok: bool, message: impl FnOnce() -> String) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(SagittaError::InvalidInput(message()))
    }
}

fn u32_len(n: usize) -> Result<u32> {
    u32::try_from(n).map_err(|_| SagittaError::InvalidInput(format!("size {n} exceeds u32")))
}

/// Uploads f32 data into a read-only storage buffer.
pub fn upload(ctx: &GpuContext, label: &str, data: &[f32]) -> Arc<wgpu::Buffer> {
    let padded;
    let data = if data.len() < 4 {
        padded = [data, &[0.0; 4][..4 - data.len()]].concat();
        &padded[..]
    } else {
        data
    };
    Arc::new(
        ctx.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: bytemuck::cast_slice(data),
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            }),
    )
}

/// Uploads values as f16 (activations of an f16 plan, for kernel tests).
pub fn upload_f16(ctx: &GpuContext, label: &str, data: &[f32]) -> Arc<wgpu::Buffer> {
    let mut halves: Vec<half::f16> = data.iter().map(|&v| half::f16::from_f32(v)).collect();
    halves.resize(halves.len().next_multiple_of(2).max(8), half::f16::ZERO);
    Arc::new(
        ctx.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: bytemuck::cast_slice(&halves),
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_DST
                    | wgpu::BufferUsages::COPY_SRC,
            }),
    )
}

/// A zeroed storage buffer that can be written by the queue and copied out.
pub fn storage_buffer(ctx: &GpuContext, label: &str, bytes: u64) -> Arc<wgpu::Buffer> {
    Arc::new(ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: bytes.max(16).next_multiple_of(4),
        usage: wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_DST
            | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    }))
}

/// `resize_bicubic`: [H, W] -> [1, 1, out_h, out_w] (ready for the network).
pub fn resize_bicubic(
    plan: &mut Plan,
    input: TensorId,
    out_h: u32,
    out_w: u32,
) -> Result<TensorId> {
    let shape = plan.shape(input).to_vec();
    invariant(shape.len() == 2 && shape[0] > 0 && shape[1] > 0, || {
        format!("resize expects a non-empty [H, W] image, got {shape:?}")
    })?;
    invariant(out_h > 0 && out_w > 0, || "resize to an empty size".into())?;
    let (in_h, in_w) = (shape[0], shape[1]);
    // Stays f32: standardization needs the raw range (up to 16-bit values) at full precision.
    let output = plan.activation_f32("resized", &[1, 1, out_h, out_w]);
    // PyTorch computes the scale in f32 as in/out.
    let scale_x = in_w as f32 / out_w as f32;
    let scale_y = in_h as f32 / out_h as f32;
    let _ = plan.push_step(Step {
        label: "resize_bicubic".into(),
        kernel: RESIZE_BICUBIC,
        overrides: vec![],
        params: vec![
            in_w,
            in_h,
            out_w,
            out_h,
            scale_x.to_bits(),
            scale_y.to_bits(),
        ],
        reads: vec![input],
        writes: vec![output],
        threads: Threads::Linear(out_h as u64 * out_w as u64),
    });
    Ok(output)
}

/// Parameters of `resize_bicubic` for an input size, to rewrite when the input changes size.
pub fn resize_params(in_h: u32, in_w: u32, out_h: u32, out_w: u32) -> [u32; 6] {
    let scale_x = in_w as f32 / out_w as f32;
    let scale_y = in_h as f32 / out_h as f32;
    [
        in_w,
        in_h,
        out_w,
        out_h,
        scale_x.to_bits(),
        scale_y.to_bits(),
    ]
}

/// `standardize`: zero mean, unit (population) variance over the whole tensor.
pub fn standardize(plan: &mut Plan, input: TensorId, eps: f32) -> Result<TensorId> {
    let shape = plan.shape(input).to_vec();
    let count: u64 = shape.iter().map(|&d| d as u64).product();
    invariant(count > 0, || "standardize of an empty tensor".into())?;
    let count =
        u32::try_from(count).map_err(|_| SagittaError::InvalidInput("image too large".into()))?;
    let stats = plan.activation_f32("standardize stats", &[2]);
    let output = plan.activation("standardized", &shape);
    plan.push_step(Step {
        label: "standardize statistics".into(),
        kernel: STANDARDIZE_STATS,
        overrides: vec![],
        params: vec![count, eps.to_bits()],
        reads: vec![input],
        writes: vec![stats],
        threads: Threads::Groups(1),
    });
    plan.push_step(Step {
        label: "standardize apply".into(),
        kernel: STANDARDIZE_APPLY,
        overrides: vec![],
        params: vec![count],
        reads: vec![input, stats],
        writes: vec![output],
        threads: Threads::Linear(count as u64),
    });
    Ok(output)
}

/// CPU-side convolution weights in PyTorch layout, BatchNorm already folded.
#[derive(Debug, Clone)]
pub struct ConvWeights {
    pub out_c: usize,
    pub in_c: usize,
    pub k: usize,
    /// [out_c, in_c, k, k]
    pub weight: Vec<f32>,
    /// `[out_c]`
    pub bias: Vec<f32>,
}

impl ConvWeights {
    /// Folds a BatchNorm that follows this convolution: y = (conv(x) - mean) / sqrt(var + eps) * g + b.
    pub fn fold_batchnorm(&mut self, bn: &BatchNorm) {
        let per_oc = self.in_c * self.k * self.k;
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

/// Which convolution kernel runs a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvAlgorithm {
    /// conv2d.wgsl: 4 channels x 4 pixels per thread straight from memory; best for small maps
    /// and few output channels, where a 64x64 tile would be mostly empty.
    Direct,
    /// conv2d_tiled.wgsl: implicit GEMM with 64x64 shared-memory tiles.
    Tiled,
    /// conv2d_winograd.wgsl: Winograd F(2x2, 3x3); 3x3 stride-1 layers only.
    Winograd,
    /// Direct or tiled by the output shape of each plan: layers built without knowing their map
    /// size ([`ConvLayer::new`]); the models use [`ConvAlgorithm::auto_for`] at load instead.
    Auto,
}

impl ConvAlgorithm {
    /// The kernel for a layer when no measurement (`sagitta tune`) names one.
    ///
    /// CPU adapters (lavapipe, WARP, SwiftShader) run workgroup barriers as coroutine switches,
    /// so the shared-memory kernels only pay off for wide 1x1 layers on large maps (measured on
    /// lavapipe, `sagitta tune`: paper-size 128->128 1x1 on 256x256 maps 0.87 s tiled vs 3.0 s
    /// direct, 256->128 on 64x64 0.21 vs 0.36 s; every 3x3 and every layer of the default model
    /// faster direct, Winograd never fastest). On GPUs: tiled where a 64x64 tile is reasonably
    /// full, direct for small maps, the conventional choice and not a measurement of ours (no GPU
    /// was at hand). Winograd runs where `sagitta tune` measured that it wins.
    pub fn auto_for(device: wgpu::DeviceType, key: &crate::tune::ConvKey) -> Self {
        let pixels = key.out_pixels.saturating_mul(key.groups);
        if device == wgpu::DeviceType::Cpu {
            let wide = (key.in_c >= 128 && pixels >= 4096) || (key.in_c >= 64 && pixels >= 65536);
            return if key.k == 1 && wide {
                ConvAlgorithm::Tiled
            } else {
                ConvAlgorithm::Direct
            };
        }
        Self::tiled_or_direct(key.out_c, pixels)
    }

    /// Tiled where a 64x64 tile is reasonably full, else direct.
    fn tiled_or_direct(out_c: u32, out_pixels: u32) -> Self {
        if out_c >= 32 && out_pixels >= 256 {
            ConvAlgorithm::Tiled
        } else {
            ConvAlgorithm::Direct
        }
    }

    /// `SAGITTA_CONV_ALGORITHM` (direct, tiled, winograd), when set: A/B benchmarks.
    fn from_env() -> Option<Self> {
        static FROM_ENV: std::sync::OnceLock<Option<ConvAlgorithm>> = std::sync::OnceLock::new();
        *FROM_ENV.get_or_init(|| {
            crate::tune::parse_algorithm(&std::env::var("SAGITTA_CONV_ALGORITHM").ok()?)
        })
    }
}

/// Winograd F(2x2, 3x3) filter transform U = G g G^T of one 3x3 filter, row-major 4x4.
pub fn winograd_filter(g: &[f32]) -> [f32; 16] {
    const G: [[f32; 3]; 4] = [
        [1.0, 0.0, 0.0],
        [0.5, 0.5, 0.5],
        [0.5, -0.5, 0.5],
        [0.0, 0.0, 1.0],
    ];
    let mut gg = [[0.0f32; 3]; 4];
    for (r, row) in G.iter().enumerate() {
        for c in 0..3 {
            gg[r][c] = (0..3).map(|k| row[k] * g[k * 3 + c]).sum();
        }
    }
    let mut u = [0.0f32; 16];
    for r in 0..4 {
        for c in 0..4 {
            u[r * 4 + c] = (0..3).map(|k| gg[r][k] * G[c][k]).sum();
        }
    }
    u
}

/// A convolution layer on the GPU: packed weights for one or several groups (per-sample weights).
pub struct ConvLayer {
    pub in_c: u32,
    pub out_c: u32,
    pub k: u32,
    pub stride: u32,
    pub pad: u32,
    pub relu: bool,
    pub groups: u32,
    /// Direct, Tiled, Winograd, or Auto (direct or tiled by output shape, decided per plan).
    algorithm: ConvAlgorithm,
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
        groups: &[ConvWeights],
        stride: u32,
        pad: u32,
        relu: bool,
        prologue: Option<&[BatchNorm]>,
    ) -> Result<Self> {
        let algorithm = match ConvAlgorithm::from_env() {
            Some(ConvAlgorithm::Winograd) | None => ConvAlgorithm::Auto,
            Some(forced) => forced,
        };
        Self::with_algorithm(ctx, label, groups, stride, pad, relu, prologue, algorithm)
    }

    /// A layer whose output map will have `out_pixels` pixels per sample: the kernel is chosen
    /// now (see [`ConvAlgorithm::auto_for`]; with per-sample weights, for the whole batch's
    /// pixels) so that Winograd layers get only Winograd weights.
    #[allow(clippy::too_many_arguments)]
    pub fn for_output_pixels(
        ctx: &GpuContext,
        label: &str,
        groups: &[ConvWeights],
        stride: u32,
        pad: u32,
        relu: bool,
        prologue: Option<&[BatchNorm]>,
        out_pixels: u32,
    ) -> Result<Self> {
        let first = groups.first();
        let key = crate::tune::ConvKey {
            k: first.map_or(0, |g| g.k as u32),
            stride,
            in_c: first.map_or(0, |g| g.in_c as u32),
            out_c: first.map_or(0, |g| g.out_c as u32),
            out_pixels,
            groups: groups.len() as u32,
        };
        let algorithm = match ConvAlgorithm::from_env() {
            Some(ConvAlgorithm::Winograd) if key.k != 3 || stride != 1 => ConvAlgorithm::Auto,
            Some(forced) => forced,
            None => ctx
                .tuned_conv(&key)
                .unwrap_or_else(|| ConvAlgorithm::auto_for(ctx.info.device_type, &key)),
        };
        Self::with_algorithm(ctx, label, groups, stride, pad, relu, prologue, algorithm)
    }

    /// A layer run by a given kernel (tests hold every kernel to PyTorch). Weights are packed for
    /// it: `[group][ic][ky][kx][oc/4]` vec4 for direct and tiled, `[group][xi][ic][oc/4]` vec4 of
    /// transformed filters for Winograd.
    #[allow(clippy::too_many_arguments)]
    pub fn with_algorithm(
        ctx: &GpuContext,
        label: &str,
        groups: &[ConvWeights],
        stride: u32,
        pad: u32,
        relu: bool,
        prologue: Option<&[BatchNorm]>,
        algorithm: ConvAlgorithm,
    ) -> Result<Self> {
        let first = groups
            .first()
            .ok_or_else(|| SagittaError::Config(format!("{label}: no weights")))?;
        let (out_c, in_c, k) = (first.out_c, first.in_c, first.k);
        // The kernels divide by these sizes and run without division checks.
        invariant(out_c > 0 && in_c > 0 && k > 0 && stride > 0, || {
            format!("{label}: empty convolution ({out_c}x{in_c}x{k}x{k}, stride {stride})")
        })?;
        if algorithm == ConvAlgorithm::Winograd && (k != 3 || stride != 1) {
            return Err(SagittaError::Config(format!(
                "{label}: Winograd runs 3x3 stride-1 convolutions only, not {k}x{k} stride {stride}"
            )));
        }
        let out_c4 = out_c.div_ceil(4);
        // Taps per (ic, oc): k*k filter weights, or the 16 of the transformed 4x4 filter.
        let taps = if algorithm == ConvAlgorithm::Winograd {
            16
        } else {
            k * k
        };
        let group_len = in_c * taps * out_c4 * 4;
        let mut packed = vec![0.0f32; groups.len() * group_len];
        let mut biases = vec![0.0f32; groups.len() * out_c4 * 4];
        for (g, w) in groups.iter().enumerate() {
            invariant(w.out_c == out_c && w.in_c == in_c && w.k == k, || {
                format!("{label}: groups have different shapes")
            })?;
            for oc in 0..out_c {
                for ic in 0..in_c {
                    let filter = &w.weight[(oc * in_c + ic) * k * k..][..k * k];
                    if algorithm == ConvAlgorithm::Winograd {
                        for (xi, u) in winograd_filter(filter).into_iter().enumerate() {
                            packed[g * group_len + ((xi * in_c + ic) * out_c4) * 4 + oc] = u;
                        }
                    } else {
                        for (t, &v) in filter.iter().enumerate() {
                            packed[g * group_len + ((ic * k * k + t) * out_c4) * 4 + oc] = v;
                        }
                    }
                }
                biases[g * out_c4 * 4 + oc] = w.bias[oc];
            }
        }
        let prologue = match prologue {
            Some(bns) => {
                invariant(bns.len() == groups.len(), || {
                    format!("{label}: one prologue BatchNorm per weight group expected")
                })?;
                let interleaved: Vec<f32> = bns
                    .iter()
                    .flat_map(|bn| bn.scale.iter().zip(&bn.shift).flat_map(|(s, b)| [*s, *b]))
                    .collect();
                Some(upload(ctx, &format!("{label} prologue"), &interleaved))
            }
            None => None,
        };
        Ok(Self {
            in_c: in_c as u32,
            out_c: out_c as u32,
            k: k as u32,
            stride,
            pad,
            relu,
            groups: groups.len() as u32,
            algorithm,
            weight: upload(ctx, &format!("{label} weight"), &packed),
            bias: upload(ctx, &format!("{label} bias"), &biases),
            prologue,
        })
    }

    pub fn output_size(&self, h: u32, w: u32) -> Option<(u32, u32)> {
        let oh = (h + 2 * self.pad).checked_sub(self.k)? / self.stride + 1;
        let ow = (w + 2 * self.pad).checked_sub(self.k)? / self.stride + 1;
        Some((oh, ow))
    }

    pub fn weight_bytes(&self) -> u64 {
        self.weight.size() + self.bias.size() + self.prologue.as_ref().map_or(0, |b| b.size())
    }

    /// Adds the convolution to the plan. `unused` is bound where an optional input is absent.
    pub fn apply(
        &self,
        plan: &mut Plan,
        label: &str,
        input: TensorId,
        residual: Option<TensorId>,
        unused: TensorId,
    ) -> Result<TensorId> {
        let shape = plan.shape(input).to_vec();
        invariant(shape.len() == 4 && shape[1] == self.in_c, || {
            format!("{label}: expected [N, {}, H, W], got {shape:?}", self.in_c)
        })?;
        let (n, h, w) = (shape[0], shape[2], shape[3]);
        invariant(n > 0 && h > 0 && w > 0, || {
            format!("{label}: empty input {shape:?}")
        })?;
        invariant(self.groups == 1 || self.groups == n, || {
            format!("{label}: {} weight groups for a batch of {n}", self.groups)
        })?;
        let (oh, ow) = self.output_size(h, w).ok_or_else(|| {
            SagittaError::InvalidInput(format!("{label}: input {h}x{w} smaller than the kernel"))
        })?;
        let out_shape = [n, self.out_c, oh, ow];
        if let Some(r) = residual {
            invariant(plan.shape(r) == out_shape, || {
                format!(
                    "{label}: residual {:?} does not match output {out_shape:?}",
                    plan.shape(r)
                )
            })?;
        }
        let output = plan.activation(label, &out_shape);
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
        let per_sample = self.groups > 1;
        let algorithm = match self.algorithm {
            ConvAlgorithm::Auto => ConvAlgorithm::tiled_or_direct(self.out_c, oh * ow),
            chosen => chosen,
        };
        let taps = if algorithm == ConvAlgorithm::Winograd {
            16
        } else {
            self.k * self.k
        };
        let weight_group_stride = if per_sample {
            self.in_c * taps * out_c4
        } else {
            0
        };
        let bias_group_stride = if per_sample { out_c4 } else { 0 };
        let prologue_group_stride = if per_sample { self.in_c } else { 0 };
        let overrides = vec![
            ("K", self.k as f64),
            ("STRIDE", self.stride as f64),
            ("PAD", self.pad as f64),
            ("PROLOGUE", f64::from(u8::from(self.prologue.is_some()))),
            ("RESIDUAL", f64::from(u8::from(residual.is_some()))),
            ("RELU", f64::from(u8::from(self.relu))),
        ];
        let reads = vec![input, weight, bias, prologue, residual.unwrap_or(unused)];
        // Every kernel starts its uniform block with the shape and ends it with the strides.
        let shape_words = [n, self.in_c, h, w, self.out_c, oh, ow, out_c4];
        let stride_words = [
            weight_group_stride,
            bias_group_stride,
            prologue_group_stride,
        ];
        let (kernel, middle, tail, threads) = match algorithm {
            ConvAlgorithm::Winograd => {
                let tiles_w = ow.div_ceil(2);
                let tiles = oh.div_ceil(2) * tiles_w;
                let grid = [tiles.div_ceil(16), self.out_c.div_ceil(16), n];
                (CONV2D_WINOGRAD, tiles_w, None, Threads::Grid(grid))
            }
            ConvAlgorithm::Tiled => {
                let grid = [(oh * ow).div_ceil(64), self.out_c.div_ceil(64), n];
                // Same tiles, weights and uniform block on tensor cores where allowed.
                let kernel = if plan.cooperative_matrix() {
                    CONV2D_COOP
                } else {
                    CONV2D_TILED
                };
                (
                    kernel,
                    self.in_c * self.k * self.k,
                    None,
                    Threads::Grid(grid),
                )
            }
            _ => {
                // conv2d.wgsl caches the 3 * stride + k input columns of a row in 16 registers.
                invariant(3 * self.stride + self.k <= 16, || {
                    format!(
                        "{label}: the direct kernel runs kernels up to 3 * stride + k = 16, not \
                         k {} stride {}; use the tiled algorithm",
                        self.k, self.stride
                    )
                })?;
                let x_blocks = ow.div_ceil(4);
                let total = n as u64 * out_c4 as u64 * oh as u64 * x_blocks as u64;
                (
                    CONV2D,
                    x_blocks,
                    Some(u32_len(total as usize)?),
                    Threads::Linear(total),
                )
            }
        };
        let mut params = shape_words.to_vec();
        params.push(middle);
        params.extend_from_slice(&stride_words);
        params.extend(tail);
        let step = Step {
            label: label.to_string(),
            kernel,
            overrides,
            params,
            reads,
            writes: vec![output],
            threads,
        };
        plan.push_step(step);
        Ok(output)
    }
}

/// Runs a layer with partial tiles, a prologue, a residual and ReLU through the cooperative-matrix
/// kernel and through the scalar tiled kernel (both f16 activations) and compares them. `None`:
/// they agree; `Some(problem)`: they do not. Errors the device raises are caught, not panics.
pub fn cooperative_matrix_self_check(ctx: &Arc<GpuContext>) -> Result<Option<String>> {
    let (n, in_c, out_c, h, w) = (1usize, 40usize, 72usize, 13u32, 11u32);
    let filler = |len: usize, salt: usize| -> Vec<f32> {
        (0..len)
            .map(|i| ((i * 7919 + salt * 104729) % 2001) as f32 / 1000.0 - 1.0)
            .collect()
    };
    let scale = 1.0 / ((in_c * 9) as f32).sqrt();
    let conv = ConvWeights {
        out_c,
        in_c,
        k: 3,
        weight: filler(out_c * in_c * 9, 1)
            .iter()
            .map(|v| v * scale)
            .collect(),
        bias: filler(out_c, 2),
    };
    let bn = BatchNorm {
        scale: filler(in_c, 3).iter().map(|v| v.abs() + 0.5).collect(),
        shift: filler(in_c, 4),
    };
    let layer = ConvLayer::with_algorithm(
        ctx,
        "coop self-check",
        &[conv],
        1,
        1,
        true,
        Some(&[bn]),
        ConvAlgorithm::Tiled,
    )?;
    let input = filler(n * in_c * (h * w) as usize, 5);
    let residual = filler(n * out_c * (h * w) as usize, 6);
    let run = |cooperative: bool| -> Result<(Vec<f32>, &'static str)> {
        let mut plan = Plan::with_precision(crate::plan::Precision::F16);
        plan.allow_cooperative_matrix(cooperative);
        let unused = plan.bound("unused", &[4], storage_buffer(ctx, "unused", 16));
        let x = plan.bound_activation(
            "input",
            &[n as u32, in_c as u32, h, w],
            upload_f16(ctx, "input", &input),
        );
        let r = plan.bound_activation(
            "residual",
            &[n as u32, out_c as u32, h, w],
            upload_f16(ctx, "residual", &residual),
        );
        let y = layer.apply(&mut plan, "check", x, Some(r), unused)?;
        let kernel = plan.steps().last().map_or("", |s| s.kernel.name);
        let mut pipelines = crate::plan::PipelineCache::default();
        let compiled = plan.compile(ctx, &mut pipelines)?;
        Ok((compiled.run_and_read(&[y])?.remove(0), kernel))
    };
    let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::Validation);
    let cooperative = run(true);
    if let Some(error) = pollster::block_on(scope.pop()) {
        return Ok(Some(format!("device error: {error}")));
    }
    let (got, kernel) = cooperative?;
    if kernel != CONV2D_COOP.name {
        return Ok(Some(format!("the plan chose {kernel}")));
    }
    let (expected, _) = run(false)?;
    let magnitude = expected.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let worst = got
        .iter()
        .zip(&expected)
        .map(|(a, b)| (a - b).abs())
        .fold(
            0.0f32,
            |m, d| if d.is_nan() { f32::INFINITY } else { m.max(d) },
        );
    // Both round inputs, products and outputs to f16; their sums differ in order only.
    let tolerance = 1e-2 * (1.0 + magnitude);
    Ok((worst > tolerance)
        .then(|| format!("largest difference {worst:.4} > {tolerance:.4} from the scalar kernel")))
}

/// `maxpool2`: 2x2, stride 2, floor mode. [N, C, H, W] -> [N, C, H/2, W/2].
pub fn maxpool2(plan: &mut Plan, label: &str, input: TensorId) -> Result<TensorId> {
    let shape = plan.shape(input).to_vec();
    invariant(shape.len() == 4 && shape[2] >= 2 && shape[3] >= 2, || {
        format!("{label}: max-pool needs [N, C, H>=2, W>=2], got {shape:?}")
    })?;
    let (oh, ow) = (shape[2] / 2, shape[3] / 2);
    let planes = shape[0] * shape[1];
    let output = plan.activation(label, &[shape[0], shape[1], oh, ow]);
    plan.push_step(Step {
        label: label.to_string(),
        kernel: MAXPOOL2,
        overrides: vec![],
        params: vec![planes, shape[2], shape[3], oh, ow],
        reads: vec![input],
        writes: vec![output],
        threads: Threads::Linear(planes as u64 * oh as u64 * ow as u64),
    });
    Ok(output)
}

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
        params: vec![planes, ls[2], ls[3]],
        reads: vec![low, skip],
        writes: vec![output],
        threads: Threads::Linear(ss.iter().map(|&d| d as u64).product()),
    });
    Ok(output)
}

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
        params: vec![count, hs[2], hs[3], out_offset],
        reads: vec![heatmaps],
        writes: vec![coords],
        threads: Threads::Groups(count),
    });
    Ok(())
}

/// `boxes`: coarse rows (normalized) -> `discs` boxes (x1, y1, x2, y2) in input pixels.
pub fn boxes(
    plan: &mut Plan,
    coarse: TensorId,
    input_size: u32,
    margin: f32,
    min_side: f32,
    discs: u32,
) -> Result<TensorId> {
    let rows = plan.shape(coarse).iter().product::<u32>() / 4;
    invariant(rows >= 4 * discs + 2, || {
        format!("boxes: {rows} coarse landmarks are too few")
    })?;
    let output = plan.activation_f32("boxes", &[discs, 4]);
    plan.push_step(Step {
        label: "boxes".into(),
        kernel: BOXES,
        overrides: vec![],
        params: vec![
            (input_size as f32).to_bits(),
            margin.to_bits(),
            min_side.to_bits(),
            discs,
        ],
        reads: vec![coarse],
        writes: vec![output],
        threads: Threads::Linear(discs as u64),
    });
    Ok(output)
}

/// `roi_align`: image [C, H, W] (or [1, C, H, W]) and boxes [K, 4] -> crops [K, C, S, S].
pub fn roi_align(
    plan: &mut Plan,
    image: TensorId,
    boxes: TensorId,
    out_size: u32,
    sampling_ratio: i32,
) -> Result<TensorId> {
    let is = plan.shape(image).to_vec();
    let (c, h, w) = match is.as_slice() {
        [h, w] => (1, *h, *w),
        [c, h, w] | [1, c, h, w] => (*c, *h, *w),
        _ => {
            return Err(SagittaError::InvalidInput(format!(
                "roi_align: bad image shape {is:?}"
            )))
        }
    };
    let bs = plan.shape(boxes).to_vec();
    invariant(bs.len() == 2 && bs[1] == 4, || {
        format!("roi_align: boxes must be [K, 4], got {bs:?}")
    })?;
    invariant(out_size > 0 && h > 0 && w > 0, || {
        "roi_align: empty image or output".into()
    })?;
    let k = bs[0];
    let output = plan.activation("crops", &[k, c, out_size, out_size]);
    plan.push_step(Step {
        label: "roi_align".into(),
        kernel: ROI_ALIGN,
        overrides: vec![],
        params: vec![c, h, w, out_size, k, sampling_ratio as u32],
        reads: vec![image, boxes],
        writes: vec![output],
        threads: Threads::Linear(k as u64 * c as u64 * out_size as u64 * out_size as u64),
    });
    Ok(output)
}

/// Parameters of `map_back` for an original image size.
pub fn map_back_params(
    input_size: u32,
    original_w: u32,
    original_h: u32,
    landmarks: u32,
    discs: u32,
) -> [u32; 5] {
    [
        (input_size as f32).to_bits(),
        (original_w as f32).to_bits(),
        (original_h as f32).to_bits(),
        landmarks,
        discs,
    ]
}

/// `map_back`: the final landmark table (see shaders/map_back.wgsl for its rows).
#[allow(clippy::too_many_arguments)]
pub fn map_back(
    plan: &mut Plan,
    coarse: TensorId,
    refined: TensorId,
    boxes: TensorId,
    result: TensorId,
    input_size: u32,
    original: (u32, u32),
    landmarks: u32,
    discs: u32,
) -> Result<()> {
    let rows = plan.shape(result).iter().product::<u32>() / 4;
    invariant(rows >= 2 * landmarks + discs, || {
        "map_back: result buffer too small".into()
    })?;
    plan.push_step(Step {
        label: "map_back".into(),
        kernel: MAP_BACK,
        overrides: vec![],
        params: map_back_params(input_size, original.0, original.1, landmarks, discs).to_vec(),
        reads: vec![coarse, refined, boxes],
        writes: vec![result],
        threads: Threads::Linear(landmarks.max(discs) as u64),
    });
    Ok(())
}

//! Which kernel runs a convolution: measured ([`super::tune`]), forced, or by heuristic.

use super::tune::TuningTable;

/// Which convolution kernel runs a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvAlgorithm {
    /// shaders/conv2d/direct.wgsl: 4 channels x 4 pixels per thread straight from memory; best for small maps
    /// and few output channels, where a 64x64 tile would be mostly empty.
    Direct,
    /// shaders/conv2d/tiled.wgsl: implicit GEMM with 64x64 shared-memory tiles.
    Tiled,
    /// shaders/conv2d/winograd.wgsl: Winograd F(2x2, 3x3); 3x3 stride-1 layers only.
    Winograd,
    /// Direct or tiled by the output shape of each plan: layers built without knowing their map
    /// size ([`super::ConvLayer::new`]); the models use [`ConvAlgorithm::auto_for`] at load instead.
    Auto,
}

impl ConvAlgorithm {
    /// The kernel for a layer when no measurement (`sagitta tune`) names one.
    ///
    /// CPU adapters (lavapipe, WARP, SwiftShader) run workgroup barriers as coroutine switches,
    /// so the shared-memory kernels only pay off for wide 1x1 layers on large maps (measured on
    /// lavapipe with `sagitta tune`; README "Kernel choice"). On GPUs: tiled where a 64x64 tile
    /// is reasonably full, direct for small maps, the conventional choice and not a measurement
    /// of ours. Winograd runs where `sagitta tune` measured that it wins.
    pub fn auto_for(device: wgpu::DeviceType, key: &ConvKey) -> Self {
        let pixels = key.out_pixels.saturating_mul(key.weight_sets);
        if device == wgpu::DeviceType::Cpu {
            let wide = (key.in_c >= 128 && pixels >= 4096) || (key.in_c >= 64 && pixels >= 65536);
            return if (key.kh, key.kw) == (1, 1) && wide {
                ConvAlgorithm::Tiled
            } else {
                ConvAlgorithm::Direct
            };
        }
        Self::tiled_or_direct(key.out_c, pixels)
    }

    /// Tiled where a 64x64 tile is reasonably full, else direct.
    pub(super) fn tiled_or_direct(out_c: u32, out_pixels: u32) -> Self {
        if out_c >= 32 && out_pixels >= 256 {
            ConvAlgorithm::Tiled
        } else {
            ConvAlgorithm::Direct
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ConvAlgorithm::Direct => "direct",
            ConvAlgorithm::Tiled => "tiled",
            ConvAlgorithm::Winograd => "winograd",
            ConvAlgorithm::Auto => "auto",
        }
    }

    /// `direct`, `tiled` or `winograd`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "direct" => Some(ConvAlgorithm::Direct),
            "tiled" => Some(ConvAlgorithm::Tiled),
            "winograd" => Some(ConvAlgorithm::Winograd),
            _ => None,
        }
    }
}

/// The geometry that decides a convolution's kernel. Fusions (prologue, residual, activation)
/// cost the same in every kernel and are not part of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConvKey {
    /// Kernel height and width.
    pub kh: u32,
    pub kw: u32,
    /// Strides (y, x).
    pub stride: (u32, u32),
    pub in_c: u32,
    pub out_c: u32,
    /// Output pixels per sample.
    pub out_pixels: u32,
    /// Weight sets, one per sample (1: shared weights, batch 1).
    pub weight_sets: u32,
}

impl std::fmt::Display for ConvKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Square kernels and strides keep the key format of earlier tuning tables (`g`: weight
        // sets); rectangular ones write both sizes.
        let kernel = if self.kh == self.kw {
            self.kh.to_string()
        } else {
            format!("{}x{}", self.kh, self.kw)
        };
        let stride = if self.stride.0 == self.stride.1 {
            self.stride.0.to_string()
        } else {
            format!("{}x{}", self.stride.0, self.stride.1)
        };
        write!(
            f,
            "k{kernel} s{stride} {}->{} px{} g{}",
            self.in_c, self.out_c, self.out_pixels, self.weight_sets
        )
    }
}

impl ConvKey {
    /// Winograd F(2x2, 3x3) runs 3x3 stride-1 convolutions.
    pub fn winograd_fits(&self) -> bool {
        (self.kh, self.kw, self.stride) == (3, 3, (1, 1))
    }

    /// The kernels that can run this shape.
    pub fn candidates(&self) -> Vec<ConvAlgorithm> {
        let mut all = vec![ConvAlgorithm::Direct, ConvAlgorithm::Tiled];
        if self.winograd_fits() {
            all.push(ConvAlgorithm::Winograd);
        }
        all
    }
}

/// How layers choose their kernel at load: a forced kernel (A/B runs), else the measured winner
/// from a tuning table for this adapter, else [`ConvAlgorithm::auto_for`].
#[derive(Debug, Clone, Default)]
pub struct ConvSelection {
    pub forced: Option<ConvAlgorithm>,
    pub tuning: Option<TuningTable>,
}

impl ConvSelection {
    /// The kernel for a layer of shape `key` on an adapter of type `device`.
    pub fn choose(&self, device: wgpu::DeviceType, key: &ConvKey) -> ConvAlgorithm {
        match self.forced {
            // Decided per plan between direct and tiled, as for layers of unknown map size.
            Some(ConvAlgorithm::Winograd) if !key.winograd_fits() => ConvAlgorithm::Auto,
            Some(forced) => forced,
            None => self
                .tuning
                .as_ref()
                .and_then(|t| t.algorithm(key))
                .unwrap_or_else(|| ConvAlgorithm::auto_for(device, key)),
        }
    }

    /// How many shapes the tuning table holds (0: none).
    pub fn tuned_shapes(&self) -> usize {
        self.tuning.as_ref().map_or(0, |t| t.entries.len())
    }
}

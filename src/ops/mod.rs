//! Operators: one file per op (a folder for the convolution), each with its kernel(s) in
//! `shaders/`, a typed uniform block that is the single source of the kernel's `Params` layout,
//! shape inference and invariants, and the function that adds its dispatch to a [`Plan`]. Each
//! has a PyTorch twin in `tools/sagitta_ref/ops/` and a parity test in `tests/kernels.rs`.
//!
//! [`Plan`]: crate::engine::Plan

use crate::engine::Kernel;
use crate::error::{Result, SagittaError};

/// A kernel from `shaders/<file>.wgsl` (plus shared parts appended: WGSL has no includes) whose
/// uniform block is the Rust struct `$params` (see [`uniform_params!`]).
macro_rules! kernel {
    ($name:literal, $file:literal, $entry:literal, $params:ty) => {
        kernel!($name, $file, $entry, $params, trusted: false, parts: [])
    };
    ($name:literal, $file:literal, $entry:literal, $params:ty, trusted: $trusted:literal, parts: [$($part:literal),*]) => {
        $crate::engine::Kernel {
            name: $name,
            source: concat!(
                include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/shaders/", $file, ".wgsl")),
                $("\n", include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/shaders/", $part, ".wgsl")),)*
            ),
            entry: $entry,
            trusted: $trusted,
            uniform: <$params as $crate::engine::kernel::UniformParams>::FIELDS,
        }
    };
}

/// Declares a kernel's uniform block: a `#[repr(C)]` plain-old-data struct of 4-byte fields,
/// written to the GPU as it is. `tests/shaders.rs` holds every shader's `struct Params` to the
/// field names and types listed here, so the layout is written once in Rust and checked in WGSL.
macro_rules! uniform_params {
    ($(#[$meta:meta])* pub struct $name:ident { $($(#[$field_meta:meta])* pub $field:ident: $ty:ty,)* }) => {
        $(#[$meta])*
        #[repr(C)]
        #[derive(Debug, Clone, Copy, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
        pub struct $name {
            $($(#[$field_meta])* pub $field: $ty,)*
        }
        impl $crate::engine::kernel::UniformParams for $name {
            const FIELDS: &'static [(&'static str, &'static str)] =
                &[$((stringify!($field), stringify!($ty)),)*];
        }
    };
}

pub mod boxes;
pub mod channel_affine;
pub mod conv2d;
pub mod dsnt;
pub mod ensemble_mean;
pub mod global_avg_pool;
pub mod grid_sample_crops;
pub mod linear;
pub mod map_back;
pub mod minmax;
pub mod pool;
pub mod pool2d;
pub mod resize;
pub mod resize_area;
pub mod roi_align;
pub mod softmax_maps;
pub mod standardize;
pub mod standardize_planes;
pub mod texture_grey;
pub mod upsample;
pub mod upsample_bilinear;

pub use boxes::{boxes, BOXES};
pub use channel_affine::{channel_affine_expand, CHANNEL_AFFINE};
pub use conv2d::{
    BatchNorm, ConvAlgorithm, ConvKey, ConvLayer, ConvSelection, ConvWeights, CONV2D, CONV2D_COOP,
    CONV2D_TILED, CONV2D_WINOGRAD,
};
pub use dsnt::{softmax_dsnt, SOFTMAX_DSNT};
pub use ensemble_mean::{ensemble_mean, ensemble_mean_shape, ENSEMBLE_MEAN};
pub use global_avg_pool::{global_avg_pool, GLOBAL_AVG_POOL};
pub use grid_sample_crops::{grid_sample_crops, grid_sample_crops_range, GRID_SAMPLE_CROPS};
pub use linear::{LinearLayer, LinearWeights, LINEAR};
pub use map_back::{map_back, map_back_params, MAP_BACK};
pub use minmax::{minmax_apply, minmax_normalize, minmax_stats, MINMAX_APPLY, MINMAX_STATS};
pub use pool::{maxpool2, MAXPOOL2};
pub use pool2d::{pool2d, Pool2d, PoolKind, POOL2D};
pub use resize::{resize_bicubic, resize_params, RESIZE_BICUBIC};
pub use resize_area::{resize_area, resize_area_params, RESIZE_AREA};
pub use roi_align::{roi_align, ROI_ALIGN};
pub use softmax_maps::{encode_softmax_maps, HeatmapTarget, SOFTMAX_MAPS};
pub use standardize::{standardize, STANDARDIZE_APPLY, STANDARDIZE_STATS};
pub use standardize_planes::{standardize_planes, standardize_planes_params, STANDARDIZE_PLANES};
pub use texture_grey::{
    GreyTransform, TextureGrey, TextureImage, TEXTURE_GREY_FLOAT, TEXTURE_GREY_SINT,
    TEXTURE_GREY_UINT,
};
pub use upsample::{upsample_add, UPSAMPLE_ADD};
pub use upsample_bilinear::{
    upsample_bilinear, upsample_bilinear_add, upsample_bilinear_into, upsample_bilinear_params,
    UPSAMPLE_BILINEAR, UPSAMPLE_BILINEAR_ADD,
};

/// Every kernel that builds on every adapter, for the shader-translation test and pipeline
/// warm-up (the tensor-core kernel needs features most adapters lack).
pub const ALL_KERNELS: &[Kernel] = &[
    RESIZE_BICUBIC,
    STANDARDIZE_STATS,
    STANDARDIZE_APPLY,
    STANDARDIZE_PLANES,
    CONV2D,
    CONV2D_TILED,
    CONV2D_WINOGRAD,
    MAXPOOL2,
    UPSAMPLE_ADD,
    SOFTMAX_DSNT,
    BOXES,
    ROI_ALIGN,
    MAP_BACK,
    RESIZE_AREA,
    MINMAX_STATS,
    MINMAX_APPLY,
    CHANNEL_AFFINE,
    GLOBAL_AVG_POOL,
    LINEAR,
    POOL2D,
    GRID_SAMPLE_CROPS,
    UPSAMPLE_BILINEAR,
    UPSAMPLE_BILINEAR_ADD,
    ENSEMBLE_MEAN,
    TEXTURE_GREY_FLOAT,
    TEXTURE_GREY_UINT,
    TEXTURE_GREY_SINT,
    SOFTMAX_MAPS,
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

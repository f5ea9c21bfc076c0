//! torchvision's `resnet50` layout (`conv1`, `bn1`, `layer{1..4}.k.{conv,bn}{1,2,3}`,
//! `layer*.0.downsample.{0,1}`, `fc`) at a width multiplier, every BatchNorm folded into the
//! convolution before it. A bottleneck is three dispatches (four with a projection): the
//! residual add and the last ReLU are conv3's epilogue. Twin: `tools/sagitta_ref/nn/resnet.py`.

use crate::engine::{Plan, TensorId};
use crate::error::Result;
use crate::ops::conv2d::{Activation, ConvGeometry, ConvLayer};
use crate::ops::linear::LinearLayer;
use crate::ops::{self, Pool2d};

use super::scope::{LayerBuilder, WeightScope};

/// torchvision's BatchNorm epsilon for resnets.
pub const RESNET_BN_EPS: f32 = 1e-5;
/// Each stage's planes at width 1 (its output has four times as many channels).
pub const RESNET50_PLANES: [u32; 4] = [64, 128, 256, 512];
/// Bottlenecks per stage of resnet50.
pub const RESNET50_BLOCKS: [u32; 4] = [3, 4, 6, 3];
const EXPANSION: u32 = 4;

/// A channel count at a width multiplier: round half up, at least 1 (the twin's `scaled`).
pub fn scaled(channels: u32, width: f64) -> u32 {
    ((f64::from(channels) * width + 0.5).floor() as u32).max(1)
}

/// The side of a square map after a k x k window at `stride` with `pad` (floor mode).
pub(crate) fn reduced(side: u32, k: u32, stride: u32, pad: u32) -> u32 {
    (side + 2 * pad).saturating_sub(k) / stride + 1
}

/// One bottleneck: 1x1, 3x3 carrying the stride, 1x1 to four times the planes.
pub struct Bottleneck<C> {
    name: String,
    conv1: C,
    conv2: C,
    conv3: C,
    downsample: Option<C>,
}

impl<C> Bottleneck<C> {
    /// Loads the block at `s` on a square input of side `in_side`; returns it with its output
    /// side.
    fn load<B: LayerBuilder<Conv = C>>(
        s: &WeightScope<B>,
        inplanes: u32,
        planes: u32,
        stride: u32,
        in_side: u32,
    ) -> Result<(Self, u32)> {
        let out_side = reduced(in_side, 3, stride, 1);
        let (inp, pl, out) = (
            inplanes as usize,
            planes as usize,
            (planes * EXPANSION) as usize,
        );
        let eps = RESNET_BN_EPS;
        let b = s.builder;
        let conv1 = s.conv_bn("conv1", "bn1", inp, pl, (1, 1), eps)?;
        let conv2 = s.conv_bn("conv2", "bn2", pl, pl, (3, 3), eps)?;
        let conv3 = s.conv_bn("conv3", "bn3", pl, out, (1, 1), eps)?;
        let downsample = if stride != 1 || inp != out {
            let d = s.pp("downsample");
            let weights = d.conv_bn("0", "1", inp, out, (1, 1), eps)?;
            Some(b.conv(
                &d.label("0"),
                &weights,
                ConvGeometry::square(stride, 0),
                Activation::None,
                None,
                out_side * out_side,
            )?)
        } else {
            None
        };
        let block = Self {
            name: s.label("").trim_end_matches('.').to_string(),
            conv1: b.conv(
                &s.label("conv1"),
                &conv1,
                ConvGeometry::square(1, 0),
                Activation::Relu,
                None,
                in_side * in_side,
            )?,
            conv2: b.conv(
                &s.label("conv2"),
                &conv2,
                ConvGeometry::square(stride, 1),
                Activation::Relu,
                None,
                out_side * out_side,
            )?,
            // ReLU after the residual add: the epilogue adds, then activates.
            conv3: b.conv(
                &s.label("conv3"),
                &conv3,
                ConvGeometry::square(1, 0),
                Activation::Relu,
                None,
                out_side * out_side,
            )?,
            downsample,
        };
        Ok((block, out_side))
    }
}

impl Bottleneck<ConvLayer> {
    fn apply(&self, plan: &mut Plan, x: TensorId, unused: TensorId) -> Result<TensorId> {
        let n = &self.name;
        let h = self
            .conv1
            .apply(plan, &format!("{n}.conv1"), x, None, unused)?;
        let h = self
            .conv2
            .apply(plan, &format!("{n}.conv2"), h, None, unused)?;
        let skip = match &self.downsample {
            Some(d) => d.apply(plan, &format!("{n}.downsample"), x, None, unused)?,
            None => x,
        };
        self.conv3
            .apply(plan, &format!("{n}.conv3"), h, Some(skip), unused)
    }

    fn weight_bytes(&self) -> u64 {
        [&self.conv1, &self.conv2, &self.conv3]
            .into_iter()
            .chain(&self.downsample)
            .map(ConvLayer::weight_bytes)
            .sum()
    }
}

/// The network: stem, four stages, global average pool, `fc` with its epilogue.
pub struct ResNet<C, L> {
    name: String,
    stem: C,
    stages: Vec<Bottleneck<C>>,
    fc: L,
}

impl<C, L> ResNet<C, L> {
    /// Loads a resnet with bottleneck `blocks` per stage at `width` (1 and [3, 4, 6, 3]: resnet50)
    /// for a square input of side `input_side`, `classes` outputs through `head` (e.g. sigmoid).
    pub fn load<B: LayerBuilder<Conv = C, Linear = L>>(
        s: &WeightScope<B>,
        width: f64,
        blocks: [u32; 4],
        classes: u32,
        head: Activation,
        input_side: u32,
    ) -> Result<Self> {
        let stem_c = scaled(64, width);
        let side = reduced(input_side, 7, 2, 3);
        let stem_weights = s.conv_bn("conv1", "bn1", 3, stem_c as usize, (7, 7), RESNET_BN_EPS)?;
        let stem = s.builder.conv(
            &s.label("conv1"),
            &stem_weights,
            ConvGeometry::square(2, 3),
            Activation::Relu,
            None,
            side * side,
        )?;
        let mut side = reduced(side, 3, 2, 1);
        let mut inplanes = stem_c;
        let mut stages = Vec::new();
        for (stage, (&count, &planes)) in blocks.iter().zip(&RESNET50_PLANES).enumerate() {
            let planes = scaled(planes, width);
            for k in 0..count {
                let stride = if k == 0 && stage > 0 { 2 } else { 1 };
                let scope = s.pp(format!("layer{}", stage + 1)).pp(k);
                let (block, out_side) = Bottleneck::load(&scope, inplanes, planes, stride, side)?;
                stages.push(block);
                side = out_side;
                inplanes = planes * EXPANSION;
            }
        }
        let fc = s.linear_weights("fc", inplanes as usize, classes as usize)?;
        let fc = s.builder.linear(&s.label("fc"), &fc[0], head)?;
        Ok(Self {
            name: s.label("").trim_end_matches('.').to_string(),
            stem,
            stages,
            fc,
        })
    }
}

impl ResNet<ConvLayer, LinearLayer> {
    /// [N, 3, S, S] -> [N, classes] after the head's activation.
    pub fn apply(&self, plan: &mut Plan, x: TensorId, unused: TensorId) -> Result<TensorId> {
        let n = &self.name;
        let mut t = self
            .stem
            .apply(plan, &format!("{n}.conv1"), x, None, unused)?;
        t = ops::pool2d(plan, &format!("{n}.maxpool"), t, &Pool2d::max(3, 2, 1))?;
        for block in &self.stages {
            t = block.apply(plan, t, unused)?;
        }
        t = ops::global_avg_pool(plan, &format!("{n}.avgpool"), t)?;
        self.fc.apply(plan, &format!("{n}.fc"), t)
    }

    pub fn weight_bytes(&self) -> u64 {
        self.stem.weight_bytes()
            + self
                .stages
                .iter()
                .map(Bottleneck::weight_bytes)
                .sum::<u64>()
            + self.fc.weight_bytes()
    }
}

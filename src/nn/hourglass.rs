//! The stacked hourglass (bearpaw/pytorch-pose structure, pre-activation bottlenecks), built
//! from weights named exactly as the PyTorch module's state dict (`tools/sagitta_ref/nn/hourglass.py`).
//!
//! Fusions: a bottleneck's `bn1 + relu` is the prologue of `conv1`; `bn2`/`bn3` are folded into
//! `conv1`/`conv2` with ReLU in their epilogue; the residual add is `conv3`'s epilogue. The stem's
//! and `fc`'s BatchNorm are folded likewise. With several weight prefixes (the six refiners), every
//! layer holds one weight set per sample and runs the whole batch in one dispatch.
//!
//! The architecture is declared once, in the `load` functions, against a [`WeightScope`]: on the
//! GPU they build layers, in a dry run they list the tensors ([`tensor_shapes`]).

use serde_json::Value;

use super::scope::{GpuLayers, LayerBuilder, WeightScope};
use super::weights::MetadataReader;
use crate::engine::{Plan, TensorId};
use crate::error::Result;
use crate::ops::conv2d::{Activation, ConvGeometry};
use crate::ops::{self, ConvLayer};

/// One stacked-hourglass network (bearpaw/pytorch-pose layout, pre-activation bottlenecks).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HourglassConfig {
    pub in_channels: u32,
    pub stacks: u32,
    pub blocks: u32,
    /// Bottleneck planes; the network carries `2 * features` channels and the stem `features / 2`.
    pub features: u32,
    pub depth: u32,
    pub num_classes: u32,
}

impl HourglassConfig {
    /// Reads the object `key` of the metadata JSON.
    pub fn from_metadata(r: &MetadataReader, obj: &Value, key: &str) -> Result<Self> {
        let net = r.object(obj, "", key)?;
        let p = format!("{key}.");
        Ok(Self {
            in_channels: r.uint(net, &p, "in_channels")?,
            stacks: r.uint(net, &p, "stacks")?,
            blocks: r.uint(net, &p, "blocks")?,
            features: r.uint(net, &p, "features")?,
            depth: r.uint(net, &p, "depth")?,
            num_classes: r.uint(net, &p, "num_classes")?,
        })
    }

    /// The metadata JSON object [`Self::from_metadata`] reads.
    pub fn to_metadata(&self) -> Value {
        serde_json::json!({
            "in_channels": self.in_channels, "stacks": self.stacks, "blocks": self.blocks,
            "features": self.features, "depth": self.depth, "num_classes": self.num_classes,
        })
    }

    /// The invariants the block relies on, for an input of `input_side` (reported as
    /// `side_field`); a violation names the field (prefixed by `prefix`).
    pub fn check(
        &self,
        prefix: &str,
        input_side: u32,
        side_field: &str,
    ) -> std::result::Result<(), (String, String)> {
        let err = |f: String, r: String| Err((f, r));
        if self.stacks == 0 || self.blocks == 0 || self.depth == 0 {
            return err(
                format!("{prefix}.stacks/blocks/depth"),
                "must be at least 1".into(),
            );
        }
        if self.features < 2 || !self.features.is_multiple_of(2) {
            return err(
                format!("{prefix}.features"),
                "must be an even number >= 2".into(),
            );
        }
        let unit = 4u32 << self.depth;
        if input_side == 0 || !input_side.is_multiple_of(unit) {
            return err(
                side_field.to_string(),
                format!(
                    "{input_side} is not a multiple of {unit} (4 * 2^{prefix}.depth), which the \
                     hourglass needs"
                ),
            );
        }
        Ok(())
    }
}

/// conv -> BatchNorm -> ReLU (the stem and `fc`), BatchNorm folded into the weights.
#[allow(clippy::too_many_arguments)]
fn conv_bn_relu<B: LayerBuilder>(
    s: &WeightScope<B>,
    conv: &str,
    bn: &str,
    in_c: usize,
    out_c: usize,
    k: usize,
    stride: u32,
    out_side: u32,
    bn_eps: f32,
) -> Result<B::Conv> {
    let mut convs = s.conv_weights(conv, in_c, out_c, k)?;
    for (c, b) in convs.iter_mut().zip(s.batchnorm(bn, out_c, bn_eps)?) {
        c.fold_batchnorm(&b);
    }
    let pad = (k as u32 - 1) / 2;
    let pixels = out_side * out_side;
    s.builder.conv(
        &s.label(conv),
        &convs,
        ConvGeometry::square(stride, pad),
        Activation::Relu,
        None,
        pixels,
    )
}

/// A 1x1 convolution with bias and nothing else.
fn plain_conv<B: LayerBuilder>(
    s: &WeightScope<B>,
    conv: &str,
    in_c: usize,
    out_c: usize,
    side: u32,
) -> Result<B::Conv> {
    let convs = s.conv_weights(conv, in_c, out_c, 1)?;
    s.builder.conv(
        &s.label(conv),
        &convs,
        ConvGeometry::square(1, 0),
        Activation::None,
        None,
        side * side,
    )
}

/// A pre-activation bottleneck: inplanes -> planes -> planes -> 2 * planes.
struct Bottleneck<C> {
    name: String,
    conv1: C,
    conv2: C,
    conv3: C,
    downsample: Option<C>,
}

impl<C> Bottleneck<C> {
    /// `side`: the square map the block runs on (picks the 3x3 kernel at load).
    fn load<B: LayerBuilder<Conv = C>>(
        s: &WeightScope<B>,
        inplanes: usize,
        planes: usize,
        side: u32,
        bn_eps: f32,
    ) -> Result<Self> {
        let bn1 = s.batchnorm("bn1", inplanes, bn_eps)?;
        let mut c1 = s.conv_weights("conv1", inplanes, planes, 1)?;
        for (c, b) in c1.iter_mut().zip(s.batchnorm("bn2", planes, bn_eps)?) {
            c.fold_batchnorm(&b);
        }
        let mut c2 = s.conv_weights("conv2", planes, planes, 3)?;
        for (c, b) in c2.iter_mut().zip(s.batchnorm("bn3", planes, bn_eps)?) {
            c.fold_batchnorm(&b);
        }
        let c3 = s.conv_weights("conv3", planes, 2 * planes, 1)?;
        let downsample = if inplanes != 2 * planes {
            Some(plain_conv(
                &s.pp("downsample"),
                "0",
                inplanes,
                2 * planes,
                side,
            )?)
        } else {
            None
        };
        let pixels = side * side;
        let b = s.builder;
        Ok(Self {
            name: s.label("").trim_end_matches('.').to_string(),
            // bn1 + ReLU are conv1's prologue.
            conv1: b.conv(
                &s.label("conv1"),
                &c1,
                ConvGeometry::square(1, 0),
                Activation::Relu,
                Some(&bn1),
                pixels,
            )?,
            conv2: b.conv(
                &s.label("conv2"),
                &c2,
                ConvGeometry::square(1, 1),
                Activation::Relu,
                None,
                pixels,
            )?,
            conv3: b.conv(
                &s.label("conv3"),
                &c3,
                ConvGeometry::square(1, 0),
                Activation::None,
                None,
                pixels,
            )?,
            downsample,
        })
    }
}

impl Bottleneck<ConvLayer> {
    fn apply(&self, plan: &mut Plan, x: TensorId, unused: TensorId) -> Result<TensorId> {
        let t1 = self
            .conv1
            .apply(plan, &format!("{}.conv1", self.name), x, None, unused)?;
        let t2 = self
            .conv2
            .apply(plan, &format!("{}.conv2", self.name), t1, None, unused)?;
        let residual = match &self.downsample {
            Some(d) => d.apply(plan, &format!("{}.downsample", self.name), x, None, unused)?,
            None => x,
        };
        self.conv3.apply(
            plan,
            &format!("{}.conv3", self.name),
            t2,
            Some(residual),
            unused,
        )
    }

    fn weight_bytes(&self) -> u64 {
        self.conv1.weight_bytes()
            + self.conv2.weight_bytes()
            + self.conv3.weight_bytes()
            + self.downsample.as_ref().map_or(0, |d| d.weight_bytes())
    }
}

/// `count` bottlenecks named `0`, `1`, ... in `s`: the first takes `inplanes`, the rest
/// `2 * planes`.
fn residual_stack<B: LayerBuilder>(
    s: &WeightScope<B>,
    count: usize,
    inplanes: usize,
    planes: usize,
    side: u32,
    bn_eps: f32,
) -> Result<Vec<Bottleneck<B::Conv>>> {
    (0..count)
        .map(|b| {
            let inp = if b == 0 { inplanes } else { 2 * planes };
            Bottleneck::load(&s.pp(b), inp, planes, side, bn_eps)
        })
        .collect()
}

fn apply_stack(
    blocks: &[Bottleneck<ConvLayer>],
    plan: &mut Plan,
    mut x: TensorId,
    unused: TensorId,
) -> Result<TensorId> {
    for b in blocks {
        x = b.apply(plan, x, unused)?;
    }
    Ok(x)
}

fn stack_weight_bytes(blocks: &[Bottleneck<ConvLayer>]) -> u64 {
    blocks.iter().map(Bottleneck::weight_bytes).sum()
}

/// One hourglass: `levels[i]` holds the residual branches of recursion level i+1 (0 innermost).
struct Hourglass<C> {
    levels: Vec<Vec<Vec<Bottleneck<C>>>>,
}

impl<C> Hourglass<C> {
    /// `s`: the module's `hg` scope; `side`: the map the outermost level runs on; each level
    /// halves it.
    fn load<B: LayerBuilder<Conv = C>>(
        s: &WeightScope<B>,
        blocks: usize,
        planes: usize,
        depth: usize,
        side: u32,
        bn_eps: f32,
    ) -> Result<Self> {
        let mut levels = Vec::with_capacity(depth);
        for i in 0..depth {
            let branches = if i == 0 { 4 } else { 3 };
            let level_side = side >> (depth - 1 - i);
            let level = (0..branches)
                .map(|j| {
                    // Branch 0 (the skip) runs at the level's size, the others after its pooling.
                    let branch_side = if j == 0 { level_side } else { level_side / 2 };
                    let branch = s.pp("hg").pp(i).pp(j);
                    residual_stack(&branch, blocks, 2 * planes, planes, branch_side, bn_eps)
                })
                .collect::<Result<Vec<_>>>()?;
            levels.push(level);
        }
        Ok(Self { levels })
    }
}

impl Hourglass<ConvLayer> {
    fn apply(
        &self,
        plan: &mut Plan,
        label: &str,
        n: usize,
        x: TensorId,
        unused: TensorId,
    ) -> Result<TensorId> {
        let level = &self.levels[n - 1];
        let up1 = apply_stack(&level[0], plan, x, unused)?;
        let low1 = ops::maxpool2(plan, &format!("{label}.pool{n}"), x)?;
        let low1 = apply_stack(&level[1], plan, low1, unused)?;
        let low2 = if n > 1 {
            self.apply(plan, label, n - 1, low1, unused)?
        } else {
            apply_stack(&level[3], plan, low1, unused)?
        };
        let low3 = apply_stack(&level[2], plan, low2, unused)?;
        ops::upsample_add(plan, &format!("{label}.merge{n}"), low3, up1)
    }
}

struct StackHead<C> {
    hourglass: Hourglass<C>,
    res: Vec<Bottleneck<C>>,
    fc: C,
    score: C,
    /// `fc_` and `score_` feed the next stack; absent on the last one.
    remap: Option<(C, C)>,
}

/// A whole HourglassNet: `C` is [`ConvLayer`] on the GPU, `()` in a dry run.
pub struct HourglassNet<C = ConvLayer> {
    config: HourglassConfig,
    label: String,
    conv1: C,
    layer1: Vec<Bottleneck<C>>,
    layer2: Vec<Bottleneck<C>>,
    layer3: Vec<Bottleneck<C>>,
    stacks: Vec<StackHead<C>>,
}

impl<C> HourglassNet<C> {
    /// Builds the network from the tensors in scope `s` (one set, e.g. `global_net`, or several
    /// e.g. the refiners). `input_side`: the square input the network is built for (the kernels
    /// are chosen for it; other sizes still run, on possibly slower kernels).
    pub fn load<B: LayerBuilder<Conv = C>>(
        s: &WeightScope<B>,
        config: &HourglassConfig,
        bn_eps: f32,
        input_side: u32,
    ) -> Result<Self> {
        let f = config.features as usize;
        let stem = f / 2;
        let ch = 2 * f;
        let classes = config.num_classes as usize;
        // layer1 runs after the stride-2 stem, the rest after the stem's max-pool.
        let (stem_side, side) = (input_side / 2, input_side / 4);
        let in_c = config.in_channels as usize;
        let eps = bn_eps;
        let conv1 = conv_bn_relu(s, "conv1", "bn1", in_c, stem, 7, 2, stem_side, eps)?;
        let layer1 = residual_stack(&s.pp("layer1"), 1, stem, stem, stem_side, eps)?;
        let layer2 = residual_stack(&s.pp("layer2"), 1, f, stem, side, eps)?;
        let layer3 = residual_stack(&s.pp("layer3"), 1, f, f, side, eps)?;
        let blocks = config.blocks as usize;
        let mut stacks = Vec::new();
        for i in 0..config.stacks as usize {
            let hg = s.pp("hg").pp(i);
            let hourglass = Hourglass::load(&hg, blocks, f, config.depth as usize, side, eps)?;
            let res = residual_stack(&s.pp("res").pp(i), blocks, ch, f, side, eps)?;
            let fc = conv_bn_relu(&s.pp("fc").pp(i), "0", "1", ch, ch, 1, 1, side, eps)?;
            let score = plain_conv(&s.pp("score"), &i.to_string(), ch, classes, side)?;
            let remap = if i + 1 < config.stacks as usize {
                Some((
                    plain_conv(&s.pp("fc_"), &i.to_string(), ch, ch, side)?,
                    plain_conv(&s.pp("score_"), &i.to_string(), classes, ch, side)?,
                ))
            } else {
                None
            };
            stacks.push(StackHead {
                hourglass,
                res,
                fc,
                score,
                remap,
            });
        }
        Ok(Self {
            config: config.clone(),
            label: s.label(""),
            conv1,
            layer1,
            layer2,
            layer3,
            stacks,
        })
    }
}

impl HourglassNet<ConvLayer> {
    /// Loads the network onto the GPU: shorthand for [`HourglassNet::load`] with
    /// [`GpuLayers`].
    pub fn load_gpu(
        s: &WeightScope<GpuLayers>,
        config: &HourglassConfig,
        bn_eps: f32,
        input_side: u32,
    ) -> Result<Self> {
        Self::load(s, config, bn_eps, input_side)
    }

    /// Adds the network to the plan: [N, in_channels, H, W] -> last stack's heatmaps [N, classes, H/4, W/4].
    pub fn apply(&self, plan: &mut Plan, input: TensorId, unused: TensorId) -> Result<TensorId> {
        let p = &self.label;
        let x = self
            .conv1
            .apply(plan, &format!("{p}conv1"), input, None, unused)?;
        let x = apply_stack(&self.layer1, plan, x, unused)?;
        let x = ops::maxpool2(plan, &format!("{p}maxpool"), x)?;
        let x = apply_stack(&self.layer2, plan, x, unused)?;
        let mut x = apply_stack(&self.layer3, plan, x, unused)?;
        let mut heatmaps = None;
        for (i, s) in self.stacks.iter().enumerate() {
            let y = s.hourglass.apply(
                plan,
                &format!("{p}hg.{i}"),
                self.config.depth as usize,
                x,
                unused,
            )?;
            let y = apply_stack(&s.res, plan, y, unused)?;
            let y = s.fc.apply(plan, &format!("{p}fc.{i}"), y, None, unused)?;
            let score = s
                .score
                .apply(plan, &format!("{p}score.{i}"), y, None, unused)?;
            if let Some((fc_, score_)) = &s.remap {
                // x + fc_(y) + score_(score), as two residual epilogues.
                let t = score_.apply(plan, &format!("{p}score_.{i}"), score, Some(x), unused)?;
                x = fc_.apply(plan, &format!("{p}fc_.{i}"), y, Some(t), unused)?;
            }
            heatmaps = Some(score);
        }
        Ok(heatmaps.expect("config.check guarantees at least one stack"))
    }

    /// GPU bytes of every layer's weights.
    pub fn weight_bytes(&self) -> u64 {
        let mut total = self.conv1.weight_bytes()
            + stack_weight_bytes(&self.layer1)
            + stack_weight_bytes(&self.layer2)
            + stack_weight_bytes(&self.layer3);
        for s in &self.stacks {
            total += stack_weight_bytes(&s.res) + s.fc.weight_bytes() + s.score.weight_bytes();
            total += s
                .hourglass
                .levels
                .iter()
                .flatten()
                .map(|b| stack_weight_bytes(b))
                .sum::<u64>();
            if let Some((a, b)) = &s.remap {
                total += a.weight_bytes() + b.weight_bytes();
            }
        }
        total
    }
}

/// Every state-dict tensor of a HourglassNet under `prefix` with its shape, as PyTorch names
/// them: a dry run of [`HourglassNet::load`].
pub fn tensor_shapes(prefix: &str, config: &HourglassConfig) -> Vec<(String, Vec<usize>)> {
    let (root, declared) = WeightScope::dry_run();
    let scope = if prefix.is_empty() {
        root
    } else {
        root.pp(prefix.trim_end_matches('.'))
    };
    // Input side 4 * 2^depth: the smallest the architecture accepts; names do not depend on it.
    let side = 4u32 << config.depth;
    HourglassNet::<()>::load(&scope, config, 1e-5, side)
        .expect("a dry run fetches no data and cannot fail");
    declared.take()
}

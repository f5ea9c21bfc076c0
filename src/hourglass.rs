//! The stacked hourglass (bearpaw/pytorch-pose structure, pre-activation bottlenecks), built
//! from weights named exactly as the PyTorch module's state dict (`tools/sagitta_ref/hourglass.py`).
//!
//! Fusions: a bottleneck's `bn1 + relu` is the prologue of `conv1`; `bn2`/`bn3` are folded into
//! `conv1`/`conv2` with ReLU in their epilogue; the residual add is `conv3`'s epilogue. The stem's
//! and `fc`'s BatchNorm are folded likewise. With several weight prefixes (the six refiners), every
//! layer holds one weight set per sample and runs the whole batch in one dispatch.

use crate::error::Result;
use crate::gpu::GpuContext;
use crate::ops::{self, BatchNorm, ConvLayer, ConvWeights};
use crate::plan::{Plan, TensorId};
use crate::weights::{HourglassConfig, WeightFile};

/// Loads weights for one or several networks with the same architecture.
struct Loader<'a> {
    ctx: &'a GpuContext,
    weights: &'a WeightFile,
    prefixes: &'a [String],
    bn_eps: f32,
}

impl Loader<'_> {
    fn conv(&self, name: &str, in_c: usize, out_c: usize, k: usize) -> Result<Vec<ConvWeights>> {
        self.prefixes
            .iter()
            .map(|p| {
                let weight = self
                    .weights
                    .tensor(&format!("{p}{name}.weight"), &[out_c, in_c, k, k])?
                    .to_vec();
                let bias = self
                    .weights
                    .tensor(&format!("{p}{name}.bias"), &[out_c])?
                    .to_vec();
                Ok(ConvWeights {
                    out_c,
                    in_c,
                    k,
                    weight,
                    bias,
                })
            })
            .collect()
    }

    fn batchnorm(&self, name: &str, channels: usize) -> Result<Vec<BatchNorm>> {
        self.prefixes
            .iter()
            .map(|p| {
                let get = |field: &str| {
                    self.weights
                        .tensor(&format!("{p}{name}.{field}"), &[channels])
                };
                Ok(BatchNorm::from_stats(
                    get("weight")?,
                    get("bias")?,
                    get("running_mean")?,
                    get("running_var")?,
                    self.bn_eps,
                ))
            })
            .collect()
    }

    /// conv -> BatchNorm -> ReLU (the stem and `fc`), BatchNorm folded into the weights.
    #[allow(clippy::too_many_arguments)]
    fn conv_bn_relu(
        &self,
        conv: &str,
        bn: &str,
        in_c: usize,
        out_c: usize,
        k: usize,
        stride: u32,
        out_side: u32,
    ) -> Result<ConvLayer> {
        let mut convs = self.conv(conv, in_c, out_c, k)?;
        for (c, b) in convs.iter_mut().zip(self.batchnorm(bn, out_c)?) {
            c.fold_batchnorm(&b);
        }
        let pad = (k as u32 - 1) / 2;
        let label = self.label(conv);
        let pixels = out_side * out_side;
        ConvLayer::for_output_pixels(self.ctx, &label, &convs, stride, pad, true, None, pixels)
    }

    fn plain_conv(&self, conv: &str, in_c: usize, out_c: usize, side: u32) -> Result<ConvLayer> {
        let convs = self.conv(conv, in_c, out_c, 1)?;
        let label = self.label(conv);
        ConvLayer::for_output_pixels(self.ctx, &label, &convs, 1, 0, false, None, side * side)
    }

    fn label(&self, name: &str) -> String {
        format!(
            "{}{name}",
            self.prefixes.first().map(String::as_str).unwrap_or("")
        )
    }
}

/// A pre-activation bottleneck: inplanes -> planes -> planes -> 2 * planes.
struct Bottleneck {
    name: String,
    conv1: ConvLayer,
    conv2: ConvLayer,
    conv3: ConvLayer,
    downsample: Option<ConvLayer>,
}

impl Bottleneck {
    /// `side`: the square map the block runs on (picks the 3x3 kernel at load).
    fn load(l: &Loader, name: &str, inplanes: usize, planes: usize, side: u32) -> Result<Self> {
        let bn1 = l.batchnorm(&format!("{name}.bn1"), inplanes)?;
        let mut c1 = l.conv(&format!("{name}.conv1"), inplanes, planes, 1)?;
        for (c, b) in c1
            .iter_mut()
            .zip(l.batchnorm(&format!("{name}.bn2"), planes)?)
        {
            c.fold_batchnorm(&b);
        }
        let mut c2 = l.conv(&format!("{name}.conv2"), planes, planes, 3)?;
        for (c, b) in c2
            .iter_mut()
            .zip(l.batchnorm(&format!("{name}.bn3"), planes)?)
        {
            c.fold_batchnorm(&b);
        }
        let c3 = l.conv(&format!("{name}.conv3"), planes, 2 * planes, 1)?;
        let downsample = if inplanes != 2 * planes {
            Some(l.plain_conv(&format!("{name}.downsample.0"), inplanes, 2 * planes, side)?)
        } else {
            None
        };
        let label = l.label(name);
        Ok(Self {
            name: label.clone(),
            conv1: prologue_conv(l.ctx, &format!("{label}.conv1"), &c1, &bn1, side)?,
            conv2: ConvLayer::for_output_pixels(
                l.ctx,
                &format!("{label}.conv2"),
                &c2,
                1,
                1,
                true,
                None,
                side * side,
            )?,
            conv3: ConvLayer::for_output_pixels(
                l.ctx,
                &format!("{label}.conv3"),
                &c3,
                1,
                0,
                false,
                None,
                side * side,
            )?,
            downsample,
        })
    }

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
}

/// `conv1` of a bottleneck with the input BN+ReLU as its prologue (one table per weight group).
fn prologue_conv(
    ctx: &GpuContext,
    label: &str,
    convs: &[ConvWeights],
    bns: &[BatchNorm],
    side: u32,
) -> Result<ConvLayer> {
    ConvLayer::for_output_pixels(ctx, label, convs, 1, 0, true, Some(bns), side * side)
}

fn residual_stack(
    l: &Loader,
    name: &str,
    count: usize,
    inplanes: usize,
    planes: usize,
    side: u32,
) -> Result<Vec<Bottleneck>> {
    (0..count)
        .map(|b| {
            let inp = if b == 0 { inplanes } else { 2 * planes };
            Bottleneck::load(l, &format!("{name}.{b}"), inp, planes, side)
        })
        .collect()
}

fn apply_stack(
    blocks: &[Bottleneck],
    plan: &mut Plan,
    mut x: TensorId,
    unused: TensorId,
) -> Result<TensorId> {
    for b in blocks {
        x = b.apply(plan, x, unused)?;
    }
    Ok(x)
}

/// One hourglass: `levels[i]` holds the residual branches of recursion level i+1 (0 innermost).
struct Hourglass {
    levels: Vec<Vec<Vec<Bottleneck>>>,
}

impl Hourglass {
    /// `side`: the map the outermost level runs on; each level halves it.
    fn load(
        l: &Loader,
        name: &str,
        blocks: usize,
        planes: usize,
        depth: usize,
        side: u32,
    ) -> Result<Self> {
        let mut levels = Vec::with_capacity(depth);
        for i in 0..depth {
            let branches = if i == 0 { 4 } else { 3 };
            let level_side = side >> (depth - 1 - i);
            let level = (0..branches)
                .map(|j| {
                    // Branch 0 (the skip) runs at the level's size, the others after its pooling.
                    let branch_side = if j == 0 { level_side } else { level_side / 2 };
                    let name = format!("{name}.hg.{i}.{j}");
                    residual_stack(l, &name, blocks, 2 * planes, planes, branch_side)
                })
                .collect::<Result<Vec<_>>>()?;
            levels.push(level);
        }
        Ok(Self { levels })
    }

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

struct StackHead {
    hourglass: Hourglass,
    res: Vec<Bottleneck>,
    fc: ConvLayer,
    score: ConvLayer,
    /// `fc_` and `score_` feed the next stack; absent on the last one.
    remap: Option<(ConvLayer, ConvLayer)>,
}

/// A whole HourglassNet on the GPU.
pub struct HourglassNet {
    config: HourglassConfig,
    label: String,
    conv1: ConvLayer,
    layer1: Vec<Bottleneck>,
    layer2: Vec<Bottleneck>,
    layer3: Vec<Bottleneck>,
    stacks: Vec<StackHead>,
}

impl HourglassNet {
    /// `prefixes`: one (e.g. `global_net.`) or several (`refiners.0.` ..) sets of weights.
    /// `input_side`: the square input the network is built for (the kernels are chosen for it;
    /// other sizes still run, on possibly slower kernels).
    pub fn load(
        ctx: &GpuContext,
        weights: &WeightFile,
        prefixes: &[String],
        config: &HourglassConfig,
        bn_eps: f32,
        input_side: u32,
    ) -> Result<Self> {
        let l = Loader {
            ctx,
            weights,
            prefixes,
            bn_eps,
        };
        let f = config.features as usize;
        let stem = f / 2;
        let ch = 2 * f;
        let classes = config.num_classes as usize;
        // layer1 runs after the stride-2 stem, the rest after the stem's max-pool.
        let (stem_side, side) = (input_side / 2, input_side / 4);
        let in_c = config.in_channels as usize;
        let conv1 = l.conv_bn_relu("conv1", "bn1", in_c, stem, 7, 2, stem_side)?;
        let layer1 = residual_stack(&l, "layer1", 1, stem, stem, stem_side)?;
        let layer2 = residual_stack(&l, "layer2", 1, f, stem, side)?;
        let layer3 = residual_stack(&l, "layer3", 1, f, f, side)?;
        let mut stacks = Vec::new();
        for i in 0..config.stacks as usize {
            let hourglass = Hourglass::load(
                &l,
                &format!("hg.{i}"),
                config.blocks as usize,
                f,
                config.depth as usize,
                side,
            )?;
            let blocks = config.blocks as usize;
            let res = residual_stack(&l, &format!("res.{i}"), blocks, ch, f, side)?;
            let fc = l.conv_bn_relu(
                &format!("fc.{i}.0"),
                &format!("fc.{i}.1"),
                ch,
                ch,
                1,
                1,
                side,
            )?;
            let score = l.plain_conv(&format!("score.{i}"), ch, classes, side)?;
            let remap = if i + 1 < config.stacks as usize {
                Some((
                    l.plain_conv(&format!("fc_.{i}"), ch, ch, side)?,
                    l.plain_conv(&format!("score_.{i}"), classes, ch, side)?,
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
            label: prefixes.first().cloned().unwrap_or_default(),
            conv1,
            layer1,
            layer2,
            layer3,
            stacks,
        })
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

    pub fn weight_bytes(&self) -> u64 {
        let blocks = |v: &[Bottleneck]| -> u64 {
            v.iter()
                .map(|b| {
                    b.conv1.weight_bytes()
                        + b.conv2.weight_bytes()
                        + b.conv3.weight_bytes()
                        + b.downsample.as_ref().map_or(0, |d| d.weight_bytes())
                })
                .sum()
        };
        let mut total = self.conv1.weight_bytes()
            + blocks(&self.layer1)
            + blocks(&self.layer2)
            + blocks(&self.layer3);
        for s in &self.stacks {
            total += blocks(&s.res) + s.fc.weight_bytes() + s.score.weight_bytes();
            total += s
                .hourglass
                .levels
                .iter()
                .flatten()
                .map(|b| blocks(b))
                .sum::<u64>();
            if let Some((a, b)) = &s.remap {
                total += a.weight_bytes() + b.weight_bytes();
            }
        }
        total
    }
}

/// Every state-dict tensor of a HourglassNet with its shape, named as PyTorch names them.
pub fn tensor_shapes(prefix: &str, config: &HourglassConfig) -> Vec<(String, Vec<usize>)> {
    let mut list = ShapeList {
        prefix,
        out: Vec::new(),
    };
    let f = config.features as usize;
    let (stem, ch, classes) = (f / 2, 2 * f, config.num_classes as usize);
    list.conv("conv1", config.in_channels as usize, stem, 7);
    list.bn("bn1", stem);
    list.bottleneck("layer1.0", stem, stem);
    list.bottleneck("layer2.0", f, stem);
    list.bottleneck("layer3.0", f, f);
    for s in 0..config.stacks as usize {
        for i in 0..config.depth as usize {
            for j in 0..if i == 0 { 4 } else { 3 } {
                for b in 0..config.blocks as usize {
                    list.bottleneck(&format!("hg.{s}.hg.{i}.{j}.{b}"), ch, f);
                }
            }
        }
        for b in 0..config.blocks as usize {
            list.bottleneck(&format!("res.{s}.{b}"), ch, f);
        }
        list.conv(&format!("fc.{s}.0"), ch, ch, 1);
        list.bn(&format!("fc.{s}.1"), ch);
        list.conv(&format!("score.{s}"), ch, classes, 1);
        if s + 1 < config.stacks as usize {
            list.conv(&format!("fc_.{s}"), ch, ch, 1);
            list.conv(&format!("score_.{s}"), classes, ch, 1);
        }
    }
    list.out
}

struct ShapeList<'a> {
    prefix: &'a str,
    out: Vec<(String, Vec<usize>)>,
}

impl ShapeList<'_> {
    fn conv(&mut self, name: &str, in_c: usize, out_c: usize, k: usize) {
        self.out.push((
            format!("{}{name}.weight", self.prefix),
            vec![out_c, in_c, k, k],
        ));
        self.out
            .push((format!("{}{name}.bias", self.prefix), vec![out_c]));
    }

    fn bn(&mut self, name: &str, c: usize) {
        for field in ["weight", "bias", "running_mean", "running_var"] {
            self.out
                .push((format!("{}{name}.{field}", self.prefix), vec![c]));
        }
    }

    fn bottleneck(&mut self, name: &str, inplanes: usize, planes: usize) {
        self.bn(&format!("{name}.bn1"), inplanes);
        self.conv(&format!("{name}.conv1"), inplanes, planes, 1);
        self.bn(&format!("{name}.bn2"), planes);
        self.conv(&format!("{name}.conv2"), planes, planes, 3);
        self.bn(&format!("{name}.bn3"), planes);
        self.conv(&format!("{name}.conv3"), planes, 2 * planes, 1);
        if inplanes != 2 * planes {
            self.conv(&format!("{name}.downsample.0"), inplanes, 2 * planes, 1);
        }
    }
}

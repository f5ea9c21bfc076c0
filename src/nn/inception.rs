//! torchvision's `Inception3` trunk through `Mixed_7c` at a width multiplier, then a 1x1 heatmap
//! convolution `hm_conv` without bias. Keys are torchvision's (`Conv2d_1a_3x3.conv`,
//! `Mixed_6b.branch7x7dbl_3.bn`, ...). Every `BasicConv2d` is one dispatch (BatchNorm folded,
//! ReLU as the epilogue); the branches of each block write their channels of the block's output
//! in place, in torchvision's concatenation order (E's `2a` || `2b` and `3a` || `3b` too); the
//! pooling branches' pools are one dispatch each. Twin: `tools/sagitta_ref/nn/inception.py`.

use crate::engine::{Plan, TensorId};
use crate::error::Result;
use crate::ops::conv2d::{concat_outputs, Activation, ConvGeometry, ConvLayer};
use crate::ops::pool2d::pool2d_into;
use crate::ops::{self, Pool2d};

use super::resnet::{reduced, scaled};
use super::scope::{LayerBuilder, WeightScope};

/// torchvision's BatchNorm epsilon in `BasicConv2d`.
pub const INCEPTION_BN_EPS: f32 = 1e-3;

/// A `BasicConv2d`: conv (no bias) + BatchNorm + ReLU, folded into one layer.
pub struct BasicConv<C> {
    label: String,
    conv: C,
    out_c: u32,
}

/// What a branch of an Inception block does before its output channels.
enum Branch<C> {
    /// Convolutions in sequence, an average pool 3/1/1 first when `pool` is set; when `split` is
    /// not empty each of its convolutions reads the chain's output and writes its own channels
    /// (Inception E's 1x3 || 3x1 pairs), else the chain's last convolution writes them.
    Convs {
        pool: bool,
        chain: Vec<BasicConv<C>>,
        split: Vec<BasicConv<C>>,
    },
    /// A 3x3/2 max-pool of the block's input (B and D); its channels pass through.
    MaxPool { channels: u32 },
}

impl<C> Branch<C> {
    /// The channels each output part of this branch writes, in order.
    fn parts(&self) -> Vec<u32> {
        match self {
            Branch::Convs { chain, split, .. } if split.is_empty() => {
                vec![chain.last().expect("a branch has a convolution").out_c]
            }
            Branch::Convs { split, .. } => split.iter().map(|c| c.out_c).collect(),
            Branch::MaxPool { channels } => vec![*channels],
        }
    }
}

/// One `Mixed_*` block.
pub struct InceptionBlock<C> {
    label: String,
    branches: Vec<Branch<C>>,
    /// B and D halve the map (unpadded 3x3/2); A, C and E keep it.
    reduces: bool,
}

impl<C> InceptionBlock<C> {
    pub fn out_channels(&self) -> u32 {
        self.branches.iter().flat_map(Branch::parts).sum()
    }
}

/// How a `BasicConv2d` is declared: name, out channels, kernel (kh, kw), stride, pad (y, x).
type Spec<'a> = (&'a str, u32, (u32, u32), u32, (u32, u32));

/// Builds `BasicConv2d` layers at a width multiplier.
struct Builder {
    width: f64,
}

impl Builder {
    fn s(&self, c: u32) -> u32 {
        scaled(c, self.width)
    }

    /// The layer at `scope.name` reading `in_c` channels of a map of side `in_side`; `out_c` is
    /// already scaled. Returns it with its output side.
    fn basic<B: LayerBuilder>(
        &self,
        scope: &WeightScope<B>,
        (name, out_c, (kh, kw), stride, (py, px)): Spec,
        in_c: u32,
        in_side: u32,
    ) -> Result<(BasicConv<B::Conv>, u32)> {
        // Maps stay square: every rectangular kernel here pads to keep the size.
        let out_side = reduced(in_side, kh, stride, py);
        let s = scope.pp(name);
        let weights = s.conv_bn(
            "conv",
            "bn",
            in_c as usize,
            out_c as usize,
            (kh as usize, kw as usize),
            INCEPTION_BN_EPS,
        )?;
        let label = scope.label(name);
        let conv = scope.builder.conv(
            &label,
            &weights,
            ConvGeometry {
                stride: (stride, stride),
                pad: (py, px),
            },
            Activation::Relu,
            None,
            out_side * out_side,
        )?;
        Ok((BasicConv { label, conv, out_c }, out_side))
    }

    /// A branch: the `chain` of layers (specs at width 1) from `in_c` channels of a map of side
    /// `side`, an average pool first when `pool` is set, and the `split` layers each reading the
    /// chain's output.
    fn convs<B: LayerBuilder>(
        &self,
        scope: &WeightScope<B>,
        pool: bool,
        chain: &[Spec],
        split: &[Spec],
        mut in_c: u32,
        mut side: u32,
    ) -> Result<Branch<B::Conv>> {
        let mut layers = Vec::with_capacity(chain.len());
        for &(name, c, k, stride, pad) in chain {
            let (layer, out_side) =
                self.basic(scope, (name, self.s(c), k, stride, pad), in_c, side)?;
            in_c = layer.out_c;
            side = out_side;
            layers.push(layer);
        }
        let split = split
            .iter()
            .map(|&(name, c, k, stride, pad)| {
                self.basic(scope, (name, self.s(c), k, stride, pad), in_c, side)
                    .map(|(layer, _)| layer)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Branch::Convs {
            pool,
            chain: layers,
            split,
        })
    }
}

const ONE: (u32, u32) = (1, 1);
const THREE: (u32, u32) = (3, 3);
const NO_PAD: (u32, u32) = (0, 0);
const PAD1: (u32, u32) = (1, 1);
const ROW7: ((u32, u32), (u32, u32)) = ((1, 7), (0, 3));
const COL7: ((u32, u32), (u32, u32)) = ((7, 1), (3, 0));
const ROW3: ((u32, u32), (u32, u32)) = ((1, 3), (0, 1));
const COL3: ((u32, u32), (u32, u32)) = ((3, 1), (1, 0));

/// torchvision's block types: A (pool features), B, C (the 7x7 branches' channels), D, E.
enum Kind {
    A(u32),
    B,
    C(u32),
    D,
    E,
}

/// The Inception3 trunk and its heatmap convolution.
pub struct InceptionHeatmaps<C> {
    name: String,
    stem: Vec<BasicConv<C>>,
    blocks: Vec<InceptionBlock<C>>,
    hm_conv: C,
    maps: u32,
}

impl<C> InceptionHeatmaps<C> {
    /// Loads the trunk at `width` (1: torchvision's) for a square input of side `input_side`,
    /// with `maps` heatmaps.
    pub fn load<B: LayerBuilder<Conv = C>>(
        s: &WeightScope<B>,
        width: f64,
        maps: u32,
        input_side: u32,
    ) -> Result<Self> {
        let b = Builder { width };
        let (conv1a, side) = b.basic(
            s,
            ("Conv2d_1a_3x3", b.s(32), THREE, 2, NO_PAD),
            3,
            input_side,
        )?;
        let (conv2a, side) = b.basic(
            s,
            ("Conv2d_2a_3x3", b.s(32), THREE, 1, NO_PAD),
            conv1a.out_c,
            side,
        )?;
        let (conv2b, side) = b.basic(
            s,
            ("Conv2d_2b_3x3", b.s(64), THREE, 1, PAD1),
            conv2a.out_c,
            side,
        )?;
        let side = reduced(side, 3, 2, 0);
        let (conv3b, side) = b.basic(
            s,
            ("Conv2d_3b_1x1", b.s(80), ONE, 1, NO_PAD),
            conv2b.out_c,
            side,
        )?;
        let (conv4a, side) = b.basic(
            s,
            ("Conv2d_4a_3x3", b.s(192), THREE, 1, NO_PAD),
            conv3b.out_c,
            side,
        )?;
        let mut side = reduced(side, 3, 2, 0);
        let mut in_c = conv4a.out_c;
        let stem = vec![conv1a, conv2a, conv2b, conv3b, conv4a];

        let layout = [
            ("Mixed_5b", Kind::A(32)),
            ("Mixed_5c", Kind::A(64)),
            ("Mixed_5d", Kind::A(64)),
            ("Mixed_6a", Kind::B),
            ("Mixed_6b", Kind::C(128)),
            ("Mixed_6c", Kind::C(160)),
            ("Mixed_6d", Kind::C(160)),
            ("Mixed_6e", Kind::C(192)),
            ("Mixed_7a", Kind::D),
            ("Mixed_7b", Kind::E),
            ("Mixed_7c", Kind::E),
        ];
        let mut blocks = Vec::with_capacity(layout.len());
        for (name, kind) in layout {
            let block = load_block(&b, &s.pp(name), &kind, in_c, side)?;
            if block.reduces {
                side = reduced(side, 3, 2, 0);
            }
            in_c = block.out_channels();
            blocks.push(block);
        }
        let weights = s.conv1x1_without_bias("hm_conv", in_c as usize, maps as usize)?;
        let hm_conv = s.builder.conv(
            &s.label("hm_conv"),
            &weights,
            ConvGeometry::square(1, 0),
            Activation::None,
            None,
            side * side,
        )?;
        Ok(Self {
            name: s.label("").trim_end_matches('.').to_string(),
            stem,
            blocks,
            hm_conv,
            maps,
        })
    }

    pub fn maps(&self) -> u32 {
        self.maps
    }
}

/// A branch as torchvision declares it (channels at width 1).
enum BranchSpec {
    Convs {
        pool: bool,
        chain: Vec<Spec<'static>>,
        split: Vec<Spec<'static>>,
    },
    MaxPool,
}

fn convs(chain: &[Spec<'static>]) -> BranchSpec {
    BranchSpec::Convs {
        pool: false,
        chain: chain.to_vec(),
        split: Vec::new(),
    }
}

/// A 1x1 `BasicConv2d`.
fn pointwise(name: &'static str, channels: u32) -> Spec<'static> {
    (name, channels, ONE, 1, NO_PAD)
}

/// The branch that pools (average 3/1/1) and then projects with a 1x1.
fn pooled(name: &'static str, channels: u32) -> BranchSpec {
    BranchSpec::Convs {
        pool: true,
        chain: vec![pointwise(name, channels)],
        split: Vec::new(),
    }
}

/// The branches of a block of `kind`, in concatenation order, and whether it halves the map.
fn layout(kind: &Kind) -> (Vec<BranchSpec>, bool) {
    match *kind {
        Kind::A(pool_features) => (
            vec![
                convs(&[pointwise("branch1x1", 64)]),
                convs(&[
                    pointwise("branch5x5_1", 48),
                    ("branch5x5_2", 64, (5, 5), 1, (2, 2)),
                ]),
                convs(&[
                    pointwise("branch3x3dbl_1", 64),
                    ("branch3x3dbl_2", 96, THREE, 1, PAD1),
                    ("branch3x3dbl_3", 96, THREE, 1, PAD1),
                ]),
                pooled("branch_pool", pool_features),
            ],
            false,
        ),
        Kind::B => (
            vec![
                convs(&[("branch3x3", 384, THREE, 2, NO_PAD)]),
                convs(&[
                    pointwise("branch3x3dbl_1", 64),
                    ("branch3x3dbl_2", 96, THREE, 1, PAD1),
                    ("branch3x3dbl_3", 96, THREE, 2, NO_PAD),
                ]),
                BranchSpec::MaxPool,
            ],
            true,
        ),
        Kind::C(c7) => (
            vec![
                convs(&[pointwise("branch1x1", 192)]),
                convs(&[
                    pointwise("branch7x7_1", c7),
                    ("branch7x7_2", c7, ROW7.0, 1, ROW7.1),
                    ("branch7x7_3", 192, COL7.0, 1, COL7.1),
                ]),
                convs(&[
                    pointwise("branch7x7dbl_1", c7),
                    ("branch7x7dbl_2", c7, COL7.0, 1, COL7.1),
                    ("branch7x7dbl_3", c7, ROW7.0, 1, ROW7.1),
                    ("branch7x7dbl_4", c7, COL7.0, 1, COL7.1),
                    ("branch7x7dbl_5", 192, ROW7.0, 1, ROW7.1),
                ]),
                pooled("branch_pool", 192),
            ],
            false,
        ),
        Kind::D => (
            vec![
                convs(&[
                    pointwise("branch3x3_1", 192),
                    ("branch3x3_2", 320, THREE, 2, NO_PAD),
                ]),
                convs(&[
                    pointwise("branch7x7x3_1", 192),
                    ("branch7x7x3_2", 192, ROW7.0, 1, ROW7.1),
                    ("branch7x7x3_3", 192, COL7.0, 1, COL7.1),
                    ("branch7x7x3_4", 192, THREE, 2, NO_PAD),
                ]),
                BranchSpec::MaxPool,
            ],
            true,
        ),
        Kind::E => (
            vec![
                convs(&[pointwise("branch1x1", 320)]),
                BranchSpec::Convs {
                    pool: false,
                    chain: vec![pointwise("branch3x3_1", 384)],
                    split: vec![
                        ("branch3x3_2a", 384, ROW3.0, 1, ROW3.1),
                        ("branch3x3_2b", 384, COL3.0, 1, COL3.1),
                    ],
                },
                BranchSpec::Convs {
                    pool: false,
                    chain: vec![
                        pointwise("branch3x3dbl_1", 448),
                        ("branch3x3dbl_2", 384, THREE, 1, PAD1),
                    ],
                    split: vec![
                        ("branch3x3dbl_3a", 384, ROW3.0, 1, ROW3.1),
                        ("branch3x3dbl_3b", 384, COL3.0, 1, COL3.1),
                    ],
                },
                pooled("branch_pool", 192),
            ],
            false,
        ),
    }
}

/// Loads the block of `kind` at `s` reading `in_c` channels of a map of side `side`.
fn load_block<B: LayerBuilder>(
    b: &Builder,
    s: &WeightScope<B>,
    kind: &Kind,
    in_c: u32,
    side: u32,
) -> Result<InceptionBlock<B::Conv>> {
    let (specs, reduces) = layout(kind);
    let branches = specs
        .iter()
        .map(|spec| match spec {
            BranchSpec::Convs { pool, chain, split } => b.convs(s, *pool, chain, split, in_c, side),
            BranchSpec::MaxPool => Ok(Branch::MaxPool { channels: in_c }),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(InceptionBlock {
        label: s.label("").trim_end_matches('.').into(),
        branches,
        reduces,
    })
}

impl BasicConv<ConvLayer> {
    fn apply(&self, plan: &mut Plan, x: TensorId, unused: TensorId) -> Result<TensorId> {
        self.conv.apply(plan, &self.label, x, None, unused)
    }

    fn apply_into(
        &self,
        plan: &mut Plan,
        x: TensorId,
        unused: TensorId,
        output: TensorId,
    ) -> Result<()> {
        self.conv
            .apply_into(plan, &self.label, x, None, unused, output)
    }
}

impl InceptionBlock<ConvLayer> {
    /// [N, C, H, W] -> the block's concatenation, each branch writing its channels in place.
    fn apply(&self, plan: &mut Plan, x: TensorId, unused: TensorId) -> Result<TensorId> {
        let shape = plan.shape(x).to_vec();
        let (n, h, w) = (shape[0], shape[2], shape[3]);
        let (oh, ow) = if self.reduces {
            (reduced(h, 3, 2, 0), reduced(w, 3, 2, 0))
        } else {
            (h, w)
        };
        let parts: Vec<u32> = self.branches.iter().flat_map(Branch::parts).collect();
        let (whole, views) = concat_outputs(plan, &self.label, n, (oh, ow), &parts)?;
        let mut views = views.into_iter();
        let max_pool = Pool2d::max(3, 2, 0);
        for branch in &self.branches {
            match branch {
                Branch::MaxPool { .. } => {
                    let view = views.next().expect("one view per part");
                    pool2d_into(plan, &format!("{} pool", self.label), x, &max_pool, view)?;
                }
                Branch::Convs { pool, chain, split } => {
                    let mut t = x;
                    if *pool {
                        let label = format!("{} avg pool", self.label);
                        t = ops::pool2d(plan, &label, t, &Pool2d::avg(3, 1, 1, true))?;
                    }
                    let (last, rest) = chain.split_last().expect("a branch has a convolution");
                    for layer in rest {
                        t = layer.apply(plan, t, unused)?;
                    }
                    if split.is_empty() {
                        let view = views.next().expect("one view per part");
                        last.apply_into(plan, t, unused, view)?;
                    } else {
                        let t = last.apply(plan, t, unused)?;
                        for layer in split {
                            let view = views.next().expect("one view per part");
                            layer.apply_into(plan, t, unused, view)?;
                        }
                    }
                }
            }
        }
        Ok(whole)
    }

    fn weight_bytes(&self) -> u64 {
        self.branches
            .iter()
            .map(|b| match b {
                Branch::Convs { chain, split, .. } => chain
                    .iter()
                    .chain(split)
                    .map(|l| l.conv.weight_bytes())
                    .sum(),
                Branch::MaxPool { .. } => 0,
            })
            .sum()
    }
}

impl InceptionHeatmaps<ConvLayer> {
    /// [N, 3, S, S] -> heatmap logits [N, maps, h, w].
    pub fn apply(&self, plan: &mut Plan, x: TensorId, unused: TensorId) -> Result<TensorId> {
        let mut t = x;
        for (k, layer) in self.stem.iter().enumerate() {
            t = layer.apply(plan, t, unused)?;
            // max-pools after Conv2d_2b_3x3 and Conv2d_4a_3x3
            if k == 2 || k == 4 {
                let label = format!("{}.maxpool{}", self.name, k / 2);
                t = ops::pool2d(plan, &label, t, &Pool2d::max(3, 2, 0))?;
            }
        }
        for block in &self.blocks {
            t = block.apply(plan, t, unused)?;
        }
        self.hm_conv
            .apply(plan, &format!("{}.hm_conv", self.name), t, None, unused)
    }

    pub fn weight_bytes(&self) -> u64 {
        self.stem.iter().map(|l| l.conv.weight_bytes()).sum::<u64>()
            + self
                .blocks
                .iter()
                .map(InceptionBlock::weight_bytes)
                .sum::<u64>()
            + self.hm_conv.weight_bytes()
    }
}

/// The side of the trunk's output (`Mixed_7c`) for a square input of `input` pixels: the
/// unpadded reductions of the stem (3×3/2, 3×3, max-pool 3/2, 3×3, max-pool 3/2) and of
/// `Mixed_6a` and `Mixed_7a` (3×3/2 each). 1024 gives 30, 512 gives 14.
pub fn output_side(input: u32) -> u32 {
    let halve = |x: u32| x.saturating_sub(3) / 2 + 1;
    let stem = halve(halve(halve(input).saturating_sub(2)).saturating_sub(2));
    halve(halve(stem))
}

//! The whole-spine model of SPEC-wholespine.md (paper 001): preprocess, each ensemble member's
//! two-stage CPN (25 pre-activation blocks, Add, Concatenate written in place, bilinear
//! upsampling), softmax + DSNT over its full-size heatmaps, the members' mean and the map back
//! to the image — one submission, one readback of the 45 landmarks.

use std::sync::Arc;

use crate::anatomy::wholespine::{LANDMARK_COUNT, LANDMARK_NAMES};
use crate::engine::buffers::{storage_buffer, upload_u32};
use crate::engine::kernel::UniformParams;
use crate::engine::{
    CompiledPlan, GpuContext, ModelIo, PendingReadback, PipelineCache, Plan, Precision, TensorId,
};
use crate::error::Result;
use crate::nn::preact::PreActBlock;
use crate::nn::scope::{GpuLayers, LayerBuilder, WeightScope};
use crate::nn::weights::WeightFile;
use crate::ops::conv2d::ConvLayer;
use crate::ops::map_back::GLOBAL_POINT;
use crate::ops::{self, ConvSelection};

pub mod config;

pub use config::{WholeSpineConfig, LEVELS, WHOLESPINE_ARCH};

use super::{ImageInput, ImageSource};

/// Rows of the result buffer (see shaders/map_back.wgsl): the landmarks in original pixels,
/// then in input pixels.
const RESULT_ROWS: u64 = 2 * LANDMARK_COUNT as u64;
const RESULT_BYTES: u64 = RESULT_ROWS * 16;
/// Stage 2's lateral branches start at level 1 and end at level 4 (SPEC-wholespine).
const LATERAL_LEVELS: std::ops::RangeInclusive<usize> = 1..=4;

/// One landmark in original-image pixels (centre of the top-left pixel at (0, 0)).
#[derive(Debug, Clone, serde::Serialize)]
pub struct SpineLandmark {
    pub name: &'static str,
    pub x: f32,
    pub y: f32,
    /// Standard deviation of the heatmap's softmax distribution along x and y, in original
    /// pixels (the members' mean variance).
    pub sd_x: f32,
    pub sd_y: f32,
}

/// What one inference returns.
#[derive(Debug, Clone)]
pub struct SpinePrediction {
    pub landmarks: Vec<SpineLandmark>,
    /// The same points in input pixels (x, y, sd_x, sd_y).
    pub input_points: Vec<[f32; 4]>,
}

/// One ensemble member: stage 1 (encoder `s1.enc`, top-down `s1.dec`, the training head
/// `s1.head`) and stage 2 (laterals `s2.lat`, `s2.fuse`, `s2.head`).
pub struct Member<C> {
    encoder: Vec<PreActBlock<C>>,
    /// `s1.dec.l`, l = 0..=4: takes t(l+1) to level l's width.
    decoder: Vec<PreActBlock<C>>,
    /// Loaded with the checkpoint (it holds the weights) but off the inference path.
    _stage1_head: PreActBlock<C>,
    /// `s2.lat.l`, l = 1..=4, each l blocks.
    laterals: Vec<Vec<PreActBlock<C>>>,
    fuse: [PreActBlock<C>; 2],
    head: PreActBlock<C>,
}

impl<C> Member<C> {
    pub fn load<B: LayerBuilder<Conv = C>>(
        s: &WeightScope<B>,
        config: &WholeSpineConfig,
    ) -> Result<Self> {
        let w = config.widths.map(|w| w as usize);
        let eps = config.bn_eps;
        let pixels = |level: usize| {
            let (h, w) = config.level_size(level);
            h * w
        };
        let s1 = s.pp("s1");
        let encoder = (0..LEVELS)
            .map(|level| {
                let (in_c, stride) = if level == 0 {
                    (1, 1)
                } else {
                    (w[level - 1], 2)
                };
                PreActBlock::load(
                    &s1.pp("enc").pp(level),
                    in_c,
                    w[level],
                    stride,
                    pixels(level),
                    eps,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let decoder = (0..LEVELS - 1)
            .map(|level| {
                // Runs at level + 1, before the upsampling to level.
                PreActBlock::load(
                    &s1.pp("dec").pp(level),
                    w[level + 1],
                    w[level],
                    1,
                    pixels(level + 1),
                    eps,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let landmarks = LANDMARK_COUNT;
        let stage1_head = PreActBlock::load(&s1.pp("head"), w[0], landmarks, 1, pixels(0), eps)?;
        let s2 = s.pp("s2");
        let lateral = config.lateral as usize;
        let laterals = LATERAL_LEVELS
            .map(|level| {
                (0..level)
                    .map(|k| {
                        let out_c = if k + 1 == level { lateral } else { w[level] };
                        PreActBlock::load(
                            &s2.pp("lat").pp(level).pp(k),
                            w[level],
                            out_c,
                            1,
                            pixels(level),
                            eps,
                        )
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .collect::<Result<Vec<_>>>()?;
        let [f0, f1] = config.fuse.map(|f| f as usize);
        let branches = LATERAL_LEVELS.count();
        let fuse = [
            PreActBlock::load(
                &s2.pp("fuse").pp(0),
                branches * lateral,
                f0,
                1,
                pixels(1),
                eps,
            )?,
            PreActBlock::load(&s2.pp("fuse").pp(1), f0, f1, 1, pixels(1), eps)?,
        ];
        let head = PreActBlock::load(&s2.pp("head"), f1 + w[0], landmarks, 1, pixels(0), eps)?;
        Ok(Self {
            encoder,
            decoder,
            _stage1_head: stage1_head,
            laterals,
            fuse,
            head,
        })
    }
}

impl Member<ConvLayer> {
    /// [1, 1, H, W] standardized -> stage-2 logits [1, 45, H, W].
    fn apply(
        &self,
        plan: &mut Plan,
        config: &WholeSpineConfig,
        x: TensorId,
        unused: TensorId,
        label: &str,
    ) -> Result<TensorId> {
        let mut encoded = Vec::with_capacity(LEVELS);
        let mut h = x;
        for block in &self.encoder {
            h = block.apply(plan, h, unused)?;
            encoded.push(h);
        }
        // Stage 2's last concatenation holds up(f) then t0: t0 is written into it in place.
        let (h0, w0) = config.level_size(0);
        let f1 = config.fuse[1];
        let c0 = plan.activation(
            format!("{label} concat L0"),
            &[1, f1 + config.widths[0], h0, w0],
        );
        let mut top_down = [encoded[LEVELS - 1]; LEVELS];
        for level in (0..LEVELS - 1).rev() {
            let decoded = self.decoder[level].apply(plan, top_down[level + 1], unused)?;
            let merge = format!("{label} merge L{level}");
            top_down[level] = if level == 0 {
                let t0 = plan.channel_view(format!("{label} t0"), c0, f1, config.widths[0])?;
                ops::upsample_bilinear_into(plan, &merge, decoded, Some(encoded[0]), false, t0)?;
                t0
            } else {
                ops::upsample_bilinear_add(plan, &merge, decoded, encoded[level], false)?
            };
        }

        let (h1, w1) = config.level_size(1);
        let lateral = config.lateral;
        let branches = LATERAL_LEVELS.count() as u32;
        let c1 = plan.activation(
            format!("{label} concat L1"),
            &[1, branches * lateral, h1, w1],
        );
        for (branch, (level, blocks)) in LATERAL_LEVELS.zip(&self.laterals).enumerate() {
            let slot = plan.channel_view(
                format!("{label} lateral L{level}"),
                c1,
                branch as u32 * lateral,
                lateral,
            )?;
            let mut h = top_down[level];
            let (last, rest) = blocks.split_last().expect("every lateral has a block");
            for block in rest {
                h = block.apply(plan, h, unused)?;
            }
            if level == 1 {
                last.apply_into(plan, h, unused, slot)?;
            } else {
                let r = last.apply(plan, h, unused)?;
                let up = format!("{label} up lateral L{level}");
                ops::upsample_bilinear_into(plan, &up, r, None, false, slot)?;
            }
        }
        let f = self.fuse[0].apply(plan, c1, unused)?;
        let f = self.fuse[1].apply(plan, f, unused)?;
        let up_f = plan.channel_view(format!("{label} up fuse"), c0, 0, f1)?;
        ops::upsample_bilinear_into(plan, &format!("{label} up fuse"), f, None, false, up_f)?;
        self.head.apply(plan, c0, unused)
    }

    fn weight_bytes(&self) -> u64 {
        self.encoder
            .iter()
            .chain(&self.decoder)
            .chain(self.laterals.iter().flatten())
            .chain(&self.fuse)
            .chain([&self.head, &self._stage1_head])
            .map(PreActBlock::weight_bytes)
            .sum()
    }
}

struct Compiled {
    plan: CompiledPlan,
    image: TensorId,
    /// Each member's final heatmaps, kept for [`WholeSpineModel::encode_heatmaps`].
    member_heatmaps: Vec<TensorId>,
    resize_step: usize,
    map_step: usize,
    original: (u32, u32),
}

/// The dispatch list with the tensors and steps the model binds or updates afterwards.
struct SpinePlan {
    plan: Plan,
    image: TensorId,
    member_heatmaps: Vec<TensorId>,
    /// The steps whose parameters depend on the original image size.
    resize_step: usize,
    map_step: usize,
}

/// The whole-spine model on the GPU. Build once; `run` many times.
pub struct WholeSpineModel {
    ctx: Arc<GpuContext>,
    pub config: WholeSpineConfig,
    pub weights_sha256: String,
    pub weights_dtype: String,
    members: Vec<Member<ConvLayer>>,
    landmark_sources: Arc<wgpu::Buffer>,
    pipelines: PipelineCache,
    compiled: Option<Compiled>,
    io: ModelIo,
    input: ImageInput,
    result: Arc<wgpu::Buffer>,
    precision: Precision,
}

impl WholeSpineModel {
    /// Loads the weights onto the GPU (BatchNorm folded or fused as a prologue) and checks that
    /// the file holds exactly the tensors the configuration needs.
    pub fn new(ctx: Arc<GpuContext>, weights: &WeightFile) -> Result<Self> {
        Self::with_selection(ctx, weights, &ConvSelection::default())
    }

    /// Loads the model with each convolution's kernel chosen by `selection`.
    pub fn with_selection(
        ctx: Arc<GpuContext>,
        weights: &WeightFile,
        selection: &ConvSelection,
    ) -> Result<Self> {
        let config = WholeSpineConfig::from_weights(weights)?;
        let layers = GpuLayers {
            ctx: &ctx,
            selection,
        };
        let root = WeightScope::new(weights, &layers);
        let members = (0..config.members)
            .map(|m| Member::load(&root.pp("members").pp(m), &config))
            .collect::<Result<Vec<_>>>()?;
        weights.check_all_used()?;
        let sources = vec![[GLOBAL_POINT, 0]; LANDMARK_COUNT];
        let landmark_sources = upload_u32(&ctx, "landmark sources", sources.as_flattened());
        let result = storage_buffer(&ctx, "landmark table", RESULT_BYTES);
        let io = ModelIo::new(&ctx, "wholespine readback", RESULT_BYTES, 0);
        Ok(Self {
            ctx,
            config,
            weights_sha256: weights.sha256.clone(),
            weights_dtype: weights.dtype.clone(),
            members,
            landmark_sources,
            pipelines: PipelineCache::default(),
            compiled: None,
            io,
            input: ImageInput::default(),
            result,
            precision: Precision::F32,
        })
    }

    /// Stores activations in f16 (natively with `shader-f16`, else packed two to a u32) or f32
    /// (the default). Rebuilds the plan at the next `run`.
    pub fn set_precision(&mut self, precision: Precision) -> Result<()> {
        if precision != self.precision {
            self.precision = precision;
            self.compiled = None;
        }
        Ok(())
    }

    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// The input side as (width, height).
    fn input_size(&self) -> (u32, u32) {
        (self.config.input_width, self.config.input_height)
    }

    /// The uncompiled dispatch list for an original image size (benchmarks inspect it).
    pub fn dispatch_plan(&self, width: u32, height: u32) -> Result<Plan> {
        Ok(self.plan((width, height))?.plan)
    }

    /// The dispatch list.
    fn plan(&self, original: (u32, u32)) -> Result<SpinePlan> {
        let c = &self.config;
        let (mut plan, unused, image) =
            super::begin_plan(&self.ctx, self.precision, self.io.image(), original);
        let resize_step = plan.steps().len();
        let resized = ops::resize_bicubic(&mut plan, image, c.input_height, c.input_width)?;
        let standardized = ops::standardize(&mut plan, resized, c.standardize_eps)?;
        let members = self.members.len() as u32;
        let rows = plan.activation_f32("member landmarks", &[members * LANDMARK_COUNT as u32, 4]);
        let mut member_heatmaps = Vec::with_capacity(self.members.len());
        for (m, member) in self.members.iter().enumerate() {
            plan.begin_stage(format!("member {m}"));
            let label = format!("members.{m}");
            let logits = member.apply(&mut plan, c, standardized, unused, &label)?;
            member_heatmaps.push(logits);
            ops::softmax_dsnt(
                &mut plan,
                &format!("{label} dsnt"),
                logits,
                rows,
                (m * LANDMARK_COUNT) as u32,
            )?;
        }
        plan.begin_stage("map back");
        let result = plan.bound(
            "landmark table",
            &[RESULT_ROWS as u32, 4],
            self.result.clone(),
        );
        let sources = plan.bound(
            "landmark sources",
            &[LANDMARK_COUNT as u32, 2],
            self.landmark_sources.clone(),
        );
        let map_step = plan.steps().len();
        ops::map_back(
            &mut plan,
            rows,
            None,
            sources,
            result,
            unused,
            self.input_size(),
            original,
            members,
        )?;
        Ok(SpinePlan {
            plan,
            image,
            member_heatmaps,
            resize_step,
            map_step,
        })
    }

    /// Width, height and number of the probability maps [`Self::encode_heatmaps`] writes: each
    /// member's 45 maps (member-major, landmarks in model order) at the model's input size.
    pub fn heatmap_shape(&self) -> (u32, u32, u32) {
        let (width, height) = self.input_size();
        (width, height, (self.members.len() * LANDMARK_COUNT) as u32)
    }

    /// Records, after [`Self::encode`] or [`Self::run`] of an image (and in the same encoder
    /// for `encode`), every member's 45 probability maps (the softmax the landmarks are the
    /// expectation of) into layers of the host's `R32Float` texture, member-major. Map pixel
    /// (i, j) covers the original image around x = (j + ½)·W/w − ½, y = (i + ½)·H/h − ½
    /// ([`Self::heatmap_shape`]; the resize keeps no aspect).
    pub fn encode_heatmaps(
        &mut self,
        encoder: &mut wgpu::CommandEncoder,
        target: ops::HeatmapTarget,
    ) -> Result<()> {
        let (width, height, layers) = self.heatmap_shape();
        ops::softmax_maps::check_heatmap_target(&target, layers, (width, height))?;
        let plan = self
            .compiled
            .as_ref()
            .map(|c| (&c.plan, c.member_heatmaps.as_slice()));
        super::encode_heatmaps(
            &self.ctx,
            &mut self.pipelines,
            self.precision,
            encoder,
            plan,
            target,
        )
    }

    /// Builds pipelines, bind groups and activation buffers now instead of at the first `run`.
    pub fn prepare(&mut self, width: u32, height: u32) -> Result<()> {
        if self.compiled.is_none() {
            let SpinePlan {
                mut plan,
                image,
                member_heatmaps,
                resize_step,
                map_step,
            } = self.plan((width, height))?;
            for &heatmaps in &member_heatmaps {
                if plan.view_of(heatmaps).is_some() {
                    return Err(crate::SagittaError::Gpu(
                        "a member's heatmaps are a view into another tensor; encode_heatmaps \
                         reads whole buffers"
                            .into(),
                    ));
                }
                plan.keep_as_output(heatmaps);
            }
            let plan = plan.compile(&self.ctx, &mut self.pipelines)?;
            self.compiled = Some(Compiled {
                plan,
                image,
                member_heatmaps,
                resize_step,
                map_step,
                original: (width, height),
            });
            self.ctx.save_pipeline_cache();
        }
        Ok(())
    }

    /// Runs the whole pipeline: one submission, one readback.
    pub fn run<'a>(&mut self, image: impl Into<ImageSource<'a>>) -> Result<SpinePrediction> {
        let image = image.into();
        let (ctx, readback) = (self.ctx.clone(), self.io.readback().clone());
        let raw = ctx.record_submit_read(
            "wholespine inference",
            |encoder| self.encode(encoder, image),
            &readback,
            RESULT_BYTES,
        )?;
        Ok(self.prediction_from(&raw))
    }

    /// Records the inference of `image` into the host's `encoder` without submitting it (the
    /// upload is queued, applied at the next submission); after submitting, read the result
    /// with [`Self::begin_readback`] and [`Self::prediction_from`], as for
    /// [`crate::CervicalModel::encode`].
    pub fn encode<'a>(
        &mut self,
        encoder: &mut wgpu::CommandEncoder,
        image: impl Into<ImageSource<'a>>,
    ) -> Result<()> {
        let image = image.into();
        let (w, h) = image.size();
        let replaced = self.input.stage(&self.ctx, &mut self.io, encoder, image)?;
        self.prepare(w, h)?;
        let input = self.input_size();
        let members = self.members.len() as u32;
        let compiled = self.compiled.as_mut().expect("prepared above");
        if replaced {
            compiled
                .plan
                .rebind(compiled.image, self.io.image().clone());
        }
        if compiled.original != (w, h) {
            compiled.plan.update_params(
                compiled.resize_step,
                &ops::resize_params(h, w, input.1, input.0).words(),
            );
            compiled.plan.update_params(
                compiled.map_step,
                &ops::map_back_params(input, (w, h), LANDMARK_COUNT as u32, 0, members).words(),
            );
            compiled.original = (w, h);
        }
        compiled.plan.encode(encoder, None);
        self.io.copy_result(encoder, &self.result, 0, RESULT_BYTES);
        Ok(())
    }

    /// Starts reading back what the last [`Self::encode`] recorded, once submitted (see
    /// [`crate::CervicalModel::begin_readback`]).
    pub fn begin_readback(&self, submission: Option<wgpu::SubmissionIndex>) -> PendingReadback {
        self.io.begin_readback(&self.ctx, submission)
    }

    /// The prediction in the result table's bytes (see shaders/map_back.wgsl).
    pub fn prediction_from(&self, raw: &[u8]) -> SpinePrediction {
        let rows: Vec<[f32; 4]> = raw
            .chunks_exact(16)
            .map(|row| {
                let value = |k: usize| {
                    f32::from_le_bytes([row[4 * k], row[4 * k + 1], row[4 * k + 2], row[4 * k + 3]])
                };
                [value(0), value(1), value(2), value(3)]
            })
            .collect();
        let landmarks = rows[..LANDMARK_COUNT]
            .iter()
            .zip(LANDMARK_NAMES)
            .map(|(&[x, y, sd_x, sd_y], name)| SpineLandmark {
                name,
                x,
                y,
                sd_x,
                sd_y,
            })
            .collect();
        SpinePrediction {
            landmarks,
            input_points: rows[LANDMARK_COUNT..].to_vec(),
        }
    }

    /// GPU bytes of the weights.
    pub fn weight_bytes(&self) -> u64 {
        self.members.iter().map(Member::weight_bytes).sum()
    }

    /// Activation bytes after liveness reuse (0 before the first `prepare`).
    pub fn activation_bytes(&self) -> u64 {
        self.compiled
            .as_ref()
            .map_or(0, |c| c.plan.activation_bytes())
    }

    /// GPU bytes of the input image, the result table and its readback buffer.
    pub fn io_bytes(&self) -> u64 {
        self.io.bytes() + self.result.size()
    }

    pub fn dispatch_count(&self) -> usize {
        self.compiled.as_ref().map_or(0, |c| c.plan.step_count())
    }
}

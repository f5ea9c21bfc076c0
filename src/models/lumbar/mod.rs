//! The lumbar 2-step model of SPEC-lumbar.md (papers 002/004): preprocess to a square input,
//! the 96 corners by an Inception3 with a heatmap conv and DSNT, a box per level about its
//! corners, each level's crop of the original image refined by a second Inception3 (all 24
//! levels as one batch, or in parts where one batch's activations exceed a buffer binding), the
//! map back, and the 24 presence probabilities of a ResNet50 — one
//! submission, one readback. Every level is refined; which are present is decided on the CPU
//! from the probabilities read back with the corners (the SPEC allows either way).

use std::sync::Arc;

use crate::anatomy::lumbar::{
    CORNERS_PER_LEVEL, LANDMARK_COUNT, LANDMARK_NAMES, LEVEL_COUNT, LEVEL_NAMES,
};
use crate::engine::buffers::{storage_buffer, upload_u32};
use crate::engine::{
    CompiledPlan, GpuContext, ModelIo, PendingReadback, PipelineCache, Plan, Precision, TensorId,
};
use crate::error::Result;
use crate::nn::inception::InceptionHeatmaps;
use crate::nn::resnet::ResNet;
use crate::nn::scope::{GpuLayers, LayerBuilder, WeightScope};
use crate::nn::weights::WeightFile;
use crate::ops::boxes::{BoxShape, BoxSpec};
use crate::ops::conv2d::{Activation, ConvLayer};
use crate::ops::linear::LinearLayer;
use crate::ops::map_back::GLOBAL_POINT;
use crate::ops::{self, ConvSelection};

pub mod config;

pub use config::{LumbarConfig, LUMBAR_ARCH};

use super::{ImageInput, ImageSource};

/// Rows of the map-back table (see shaders/map_back.wgsl): refined corners, the localisation's
/// corners (both in original pixels), the level boxes.
const TABLE_ROWS: u64 = 2 * LANDMARK_COUNT as u64 + LEVEL_COUNT as u64;
const TABLE_BYTES: u64 = TABLE_ROWS * 16;
/// The presence probabilities follow the table in the readback (f32, or f16 halves).
const RESULT_BYTES: u64 = TABLE_BYTES + LEVEL_COUNT as u64 * 4;
/// The localisation's DSNT rows and the level boxes, as the present-levels path reads them
/// back after its first submission (at the start of the readback buffer).
const COARSE_BYTES: u64 = LANDMARK_COUNT as u64 * 16;
const BOXES_BYTES: u64 = LEVEL_COUNT as u64 * 16;

/// One corner in original-image pixels (centre of the top-left pixel at (0, 0)).
#[derive(Debug, Clone, serde::Serialize)]
pub struct LumbarCorner {
    pub name: &'static str,
    pub x: f32,
    pub y: f32,
    /// Standard deviation of the refinement heatmap's softmax distribution along x and y, in
    /// original pixels.
    pub sd_x: f32,
    pub sd_y: f32,
}

/// What one inference returns, for all 24 levels (absent ones included: the caller reports
/// only the present ones).
#[derive(Debug, Clone)]
pub struct LumbarPrediction {
    /// sigmoid of the labeller's logit per level, C2..S1.
    pub presence: Vec<f32>,
    /// `presence >= threshold`.
    pub present: Vec<bool>,
    /// The 96 refined corners (level-major, corners as, ps, pi, ai).
    pub corners: Vec<LumbarCorner>,
    /// The localisation's corners before refinement (x, y, sd_x, sd_y) in original pixels.
    pub coarse: Vec<[f32; 4]>,
    /// Each level's crop box (x0, y0, x1, y1) in original pixels.
    pub boxes: Vec<[f32; 4]>,
}

impl LumbarPrediction {
    /// The names of the levels found present, cranial to caudal.
    pub fn present_levels(&self) -> Vec<&'static str> {
        LEVEL_NAMES
            .iter()
            .zip(&self.present)
            .filter(|(_, p)| **p)
            .map(|(n, _)| *n)
            .collect()
    }
}

/// The three networks: `identify.` (resnet), `locate.` and `refine.` (Inception3 trunks).
pub struct LumbarNets<C, L> {
    identify: ResNet<C, L>,
    locate: InceptionHeatmaps<C>,
    refine: InceptionHeatmaps<C>,
}

impl<C, L> LumbarNets<C, L> {
    /// Declares (and with a GPU builder, builds) every layer of `config`.
    pub fn load<B: LayerBuilder<Conv = C, Linear = L>>(
        s: &WeightScope<'_, B>,
        config: &LumbarConfig,
    ) -> Result<Self> {
        Ok(Self {
            identify: ResNet::load(
                &s.pp("identify"),
                config.identify_width,
                config.identify_blocks,
                LEVEL_COUNT as u32,
                Activation::Sigmoid,
                config.input_size,
            )?,
            locate: InceptionHeatmaps::load(
                &s.pp("locate"),
                config.locate_width,
                LANDMARK_COUNT as u32,
                config.input_size,
            )?,
            refine: InceptionHeatmaps::load(
                &s.pp("refine"),
                config.refine_width,
                CORNERS_PER_LEVEL as u32,
                config.crop_size,
            )?,
        })
    }
}

impl LumbarNets<ConvLayer, LinearLayer> {
    fn weight_bytes(&self) -> u64 {
        self.identify.weight_bytes() + self.locate.weight_bytes() + self.refine.weight_bytes()
    }
}

/// What every plan starts with: the radiograph, its resized copy and that copy's [0, 1] map.
struct Source {
    unused: TensorId,
    image: TensorId,
    /// The resized image [1, 1, S, S] (f32).
    resized: TensorId,
    /// [min, max - min] of the resized image.
    stats: TensorId,
    original: (u32, u32),
}

/// What the localisation leaves for the rest of a plan.
struct Front {
    /// The network input [1, 3, S, S].
    input: TensorId,
    /// The localisation's 96 heatmaps, kept for [`LumbarModel::encode_heatmaps`].
    heatmaps: TensorId,
    coarse: TensorId,
    boxes: TensorId,
}

struct Compiled {
    plan: CompiledPlan,
    presence: TensorId,
    heatmaps: TensorId,
    original: (u32, u32),
}

/// Which levels [`LumbarModel::run`] refines (SPEC-lumbar: either way the present levels'
/// corners are the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RefineLevels {
    /// All 24 in one submission with one readback; the absent levels' results are dropped.
    All,
    /// Only the levels the labeller finds present: a first submission reads back the
    /// probabilities, the boxes and the localisation's corners, a second refines the present
    /// levels. Less work where few levels are present, one more round trip.
    #[default]
    Present,
}

/// (original size, number of present levels): what the second plan is built for.
type PresentKey = ((u32, u32), u32);

/// A compiled plan, what it was built for, and the tensors read after it.
struct Built<K, T> {
    key: K,
    plan: CompiledPlan,
    outputs: T,
}

/// The present-levels path: its two compiled plans and the buffers the second one reads.
struct PresentPath {
    /// The first plan for an original size, with its coarse corners, boxes and probabilities.
    labels: Option<Built<(u32, u32), [TensorId; 4]>>,
    /// The second plan for an original size and a number of present levels.
    refine: Option<Built<PresentKey, ()>>,
    boxes: Arc<wgpu::Buffer>,
    coarse: Arc<wgpu::Buffer>,
    sources: Arc<wgpu::Buffer>,
}

/// The lumbar model on the GPU. Build once; `run` many times.
pub struct LumbarModel {
    ctx: Arc<GpuContext>,
    pub config: LumbarConfig,
    pub weights_sha256: String,
    pub weights_dtype: String,
    nets: LumbarNets<ConvLayer, LinearLayer>,
    /// The boxes' point table (0..96: level v's corners 4v..4v+3) and the map back's sources
    /// (corner i <- refined row i in box i / 4).
    box_members: Arc<wgpu::Buffer>,
    sources: Arc<wgpu::Buffer>,
    pipelines: PipelineCache,
    compiled: Option<Compiled>,
    io: ModelIo,
    input: ImageInput,
    /// The plan that last recorded an inference, whose heatmaps `encode_heatmaps` reads.
    last_plan: Option<RefineLevels>,
    table: Arc<wgpu::Buffer>,
    precision: Precision,
    refine_batch: Option<u32>,
    refine_levels: RefineLevels,
    present: PresentPath,
}

impl LumbarModel {
    /// Loads the weights onto the GPU (BatchNorm folded) and checks that the file holds exactly
    /// the tensors the configuration needs (torchvision's `AuxLogits` and `fc` of the Inception
    /// networks are refused: convert without them).
    pub fn new(ctx: Arc<GpuContext>, weights: &WeightFile) -> Result<Self> {
        Self::with_selection(ctx, weights, &ConvSelection::default())
    }

    /// Loads the model with each convolution's kernel chosen by `selection`.
    pub fn with_selection(
        ctx: Arc<GpuContext>,
        weights: &WeightFile,
        selection: &ConvSelection,
    ) -> Result<Self> {
        let config = LumbarConfig::from_weights(weights)?;
        let layers = GpuLayers {
            ctx: &ctx,
            selection,
        };
        let root = WeightScope::new(weights, &layers);
        let nets = LumbarNets::load(&root, &config)?;
        weights.check_all_used()?;
        let members: Vec<u32> = (0..LANDMARK_COUNT as u32).collect();
        let sources: Vec<u32> = (0..LANDMARK_COUNT as u32)
            .flat_map(|i| [i, i / CORNERS_PER_LEVEL as u32])
            .collect();
        let table = storage_buffer(&ctx, "lumbar table", TABLE_BYTES);
        let present = PresentPath {
            labels: None,
            refine: None,
            boxes: storage_buffer(&ctx, "present boxes", BOXES_BYTES),
            coarse: storage_buffer(&ctx, "coarse corners", COARSE_BYTES),
            sources: storage_buffer(&ctx, "present sources", LANDMARK_COUNT as u64 * 8),
        };
        Ok(Self {
            box_members: upload_u32(&ctx, "level corners", &members),
            sources: upload_u32(&ctx, "corner sources", &sources),
            io: ModelIo::new(&ctx, "lumbar readback", RESULT_BYTES, 0),
            input: ImageInput::default(),
            last_plan: None,
            ctx,
            config,
            weights_sha256: weights.sha256.clone(),
            weights_dtype: weights.dtype.clone(),
            nets,
            pipelines: PipelineCache::default(),
            compiled: None,
            table,
            precision: Precision::F32,
            refine_batch: None,
            refine_levels: RefineLevels::default(),
            present,
        })
    }

    /// Stores activations in f16 (natively with `shader-f16`, else packed two to a u32) or f32
    /// (the default). Rebuilds the plan at the next `run`.
    pub fn set_precision(&mut self, precision: Precision) -> Result<()> {
        if precision != self.precision {
            self.precision = precision;
            self.forget_plans();
        }
        Ok(())
    }

    /// Drops every compiled plan (they are rebuilt when next needed).
    fn forget_plans(&mut self) {
        self.compiled = None;
        self.present.labels = None;
        self.present.refine = None;
    }

    /// Which levels [`Self::run`] refines ([`RefineLevels::Present`] by default).
    /// [`Self::encode`] always refines all (one submission into the host's encoder).
    pub fn set_refine_levels(&mut self, levels: RefineLevels) {
        self.refine_levels = levels;
    }

    pub fn refine_levels(&self) -> RefineLevels {
        self.refine_levels
    }

    pub fn precision(&self) -> Precision {
        self.precision
    }

    pub fn context(&self) -> &Arc<GpuContext> {
        &self.ctx
    }

    /// The uncompiled dispatch list for an original image size (benchmarks inspect it).
    pub fn dispatch_plan(&self, width: u32, height: u32) -> Result<Plan> {
        Ok(self.plan((width, height))?.0)
    }

    /// The dispatch list of the one-submission path (every level refined) and its presence
    /// probabilities. The crops read the original image through the [0, 1] map of the resized
    /// one, an activation of the original's size: the plan is built per original size.
    fn plan(&self, original: (u32, u32)) -> Result<(Plan, TensorId, TensorId)> {
        let (mut plan, source, front) = self.front(original)?;
        let refined = self.refine(&mut plan, &source, front.boxes, LEVEL_COUNT as u32)?;
        plan.begin_stage("map back");
        let sources = plan.bound(
            "corner sources",
            &[LANDMARK_COUNT as u32, 2],
            self.sources.clone(),
        );
        self.map_back(
            &mut plan,
            &source,
            front.coarse,
            (refined, front.boxes),
            sources,
        )?;
        plan.begin_stage("identify");
        let presence = self
            .nets
            .identify
            .apply(&mut plan, front.input, source.unused)?;
        plan.keep_as_output(presence);
        plan.keep_as_output(front.heatmaps);
        Ok((plan, presence, front.heatmaps))
    }

    /// The first submission of the present-levels path: localisation, boxes and labeller, with
    /// the coarse corners, the boxes and the probabilities kept for the readback (and the
    /// localisation heatmaps for `encode_heatmaps`).
    fn labels_plan(&self, original: (u32, u32)) -> Result<(Plan, [TensorId; 4])> {
        let (mut plan, source, front) = self.front(original)?;
        plan.begin_stage("identify");
        let presence = self
            .nets
            .identify
            .apply(&mut plan, front.input, source.unused)?;
        for t in [front.coarse, front.boxes, presence, front.heatmaps] {
            plan.keep_as_output(t);
        }
        Ok((plan, [front.coarse, front.boxes, presence, front.heatmaps]))
    }

    /// The second submission of the present-levels path: the `count` present levels' crops
    /// (their boxes and the coarse corners uploaded from the first one's readback), refined and
    /// mapped back.
    fn present_plan(&self, original: (u32, u32), count: u32) -> Result<Plan> {
        // The [0, 1] map of the first submission, computed again (cheap, and bit-identical).
        let (mut plan, source) = self.source(original)?;
        let boxes = plan.bound("present boxes", &[count, 4], self.present.boxes.clone());
        let coarse = plan.bound(
            "coarse corners",
            &[LANDMARK_COUNT as u32, 4],
            self.present.coarse.clone(),
        );
        let refined = self.refine(&mut plan, &source, boxes, count)?;
        plan.begin_stage("map back");
        let sources = plan.bound(
            "present sources",
            &[LANDMARK_COUNT as u32, 2],
            self.present.sources.clone(),
        );
        self.map_back(&mut plan, &source, coarse, (refined, boxes), sources)?;
        Ok(plan)
    }

    /// A new plan with the radiograph bound, resized, and the resized copy's min and range.
    fn source(&self, original: (u32, u32)) -> Result<(Plan, Source)> {
        let s = self.config.input_size;
        let (mut plan, unused, image) =
            super::begin_plan(&self.ctx, self.precision, self.io.image(), original);
        let resized = ops::resize_bicubic(&mut plan, image, s, s)?;
        let stats = ops::minmax_stats(&mut plan, resized)?;
        let source = Source {
            unused,
            image,
            resized,
            stats,
            original,
        };
        Ok((plan, source))
    }

    /// Preprocessing, localisation and the level boxes.
    fn front(&self, original: (u32, u32)) -> Result<(Plan, Source, Front)> {
        let c = &self.config;
        let (mut plan, source) = self.source(original)?;
        let unused = source.unused;
        let normalized = ops::minmax_apply(&mut plan, "normalized", source.resized, source.stats)?;
        let input = ops::channel_affine_expand(
            &mut plan,
            "input affine",
            normalized,
            &c.input_mean,
            &c.input_std,
        )?;

        plan.begin_stage("locate");
        let heatmaps = self.nets.locate.apply(&mut plan, input, unused)?;
        let coarse = plan.activation_f32("coarse corners", &[LANDMARK_COUNT as u32, 4]);
        ops::softmax_dsnt(&mut plan, "locate dsnt", heatmaps, coarse, 0)?;
        let members = plan.bound(
            "level corners",
            &[LANDMARK_COUNT as u32],
            self.box_members.clone(),
        );
        let boxes = ops::boxes(
            &mut plan,
            coarse,
            members,
            &BoxSpec {
                input: original,
                margin: c.box_scale - 1.0,
                min_side: c.min_box,
                group_size: CORNERS_PER_LEVEL as u32,
                shape: BoxShape::AboutMean,
            },
        )?;
        Ok((
            plan,
            source,
            Front {
                input,
                heatmaps,
                coarse,
                boxes,
            },
        ))
    }

    /// The crops of the first `count` boxes of `boxes`, refined in parts that fit a buffer
    /// binding -> DSNT rows [4 * count, 4].
    fn refine(
        &self,
        plan: &mut Plan,
        source: &Source,
        boxes: TensorId,
        count: u32,
    ) -> Result<TensorId> {
        let c = &self.config;
        let k = c.crop_size;
        let original01 = ops::minmax_apply(plan, "original [0, 1]", source.image, source.stats)?;
        let corners = CORNERS_PER_LEVEL as u32;
        let refined = plan.activation_f32("refined corners", &[count * corners, 4]);
        let batch = self.refine_batch()?;
        for first in (0..count).step_by(batch as usize) {
            let part = first..(first + batch).min(count);
            let stage = format!("refine crops {}..{}", part.start, part.end - 1);
            plan.begin_stage(stage.clone());
            let crops = ops::grid_sample_crops_range(
                plan,
                &format!("{stage}: crops"),
                original01,
                boxes,
                part,
                k,
                k,
            )?;
            let crops = ops::channel_affine_expand(
                plan,
                "crop affine",
                crops,
                &c.input_mean,
                &c.input_std,
            )?;
            let heatmaps = self.nets.refine.apply(plan, crops, source.unused)?;
            ops::softmax_dsnt(plan, "refine dsnt", heatmaps, refined, first * corners)?;
        }
        Ok(refined)
    }

    /// The corners to original pixels into the result table: the boxes and the DSNT rows are in
    /// original pixels already, so the "input" frame of the map back is the original image.
    fn map_back(
        &self,
        plan: &mut Plan,
        source: &Source,
        coarse: TensorId,
        refined: (TensorId, TensorId),
        sources: TensorId,
    ) -> Result<()> {
        let table = plan.bound("lumbar table", &[TABLE_ROWS as u32, 4], self.table.clone());
        ops::map_back(
            plan,
            coarse,
            Some(refined),
            sources,
            table,
            source.unused,
            source.original,
            source.original,
            1,
        )
    }

    /// How many levels are refined per batch: all 24 when every activation of a batch of 24
    /// fits one buffer binding of the adapter, else as many as fit (at least one), unless
    /// [`Self::set_refine_batch`] says otherwise.
    pub fn refine_batch(&self) -> Result<u32> {
        if let Some(batch) = self.refine_batch {
            return Ok(batch);
        }
        // The largest tensor of one crop's refinement, from a plan of a batch of one.
        let k = self.config.crop_size;
        let mut probe = Plan::with_precision(self.precision);
        let unused = probe.activation("unused", &[4]);
        let crop = probe.activation("crop", &[1, 3, k, k]);
        self.nets.refine.apply(&mut probe, crop, unused)?;
        let bytes_per_element = u64::from(self.precision.bytes());
        let largest = probe
            .memory_plan()
            .slot_bytes
            .into_iter()
            .max()
            .unwrap_or(0)
            .max(3 * u64::from(k) * u64::from(k) * bytes_per_element);
        let binding = self.ctx.limits.max_storage_buffer_binding_size;
        Ok((binding / largest.max(1)).clamp(1, LEVEL_COUNT as u64) as u32)
    }

    /// Refines `batch` levels per pass (1..=24) instead of the most that fit; `None` restores
    /// the automatic choice. Results do not depend on it. Rebuilds the plan at the next `run`.
    pub fn set_refine_batch(&mut self, batch: Option<u32>) -> Result<()> {
        if let Some(b) = batch {
            if !(1..=LEVEL_COUNT as u32).contains(&b) {
                return Err(crate::error::SagittaError::InvalidInput(format!(
                    "refine batch {b}: give 1 to {LEVEL_COUNT} levels"
                )));
            }
        }
        if batch != self.refine_batch {
            self.refine_batch = batch;
            self.forget_plans();
        }
        Ok(())
    }

    /// Builds pipelines, bind groups and activation buffers for an original image size now
    /// instead of at the first `run` of that size.
    pub fn prepare(&mut self, width: u32, height: u32) -> Result<()> {
        if self.refine_levels == RefineLevels::Present {
            // The second submission's plan depends on how many levels are present.
            if self.present.labels.as_ref().map(|l| l.key) != Some((width, height)) {
                let (plan, outputs) = self.labels_plan((width, height))?;
                let plan = plan.compile(&self.ctx, &mut self.pipelines)?;
                self.present.labels = Some(Built {
                    key: (width, height),
                    plan,
                    outputs,
                });
                self.ctx.save_pipeline_cache();
            }
            return Ok(());
        }
        self.prepare_all_levels(width, height)
    }

    /// The one-submission plan that refines every level, which [`Self::encode`] records
    /// whatever [`Self::set_refine_levels`] says.
    fn prepare_all_levels(&mut self, width: u32, height: u32) -> Result<()> {
        let current = self.compiled.as_ref().map(|c| c.original);
        if current != Some((width, height)) {
            self.compiled = None;
            let (plan, presence, heatmaps) = self.plan((width, height))?;
            if plan.view_of(heatmaps).is_some() {
                return Err(crate::SagittaError::Gpu(
                    "the localisation heatmaps are a view into another tensor; encode_heatmaps \
                     reads a whole buffer"
                        .into(),
                ));
            }
            let plan = plan.compile(&self.ctx, &mut self.pipelines)?;
            self.compiled = Some(Compiled {
                plan,
                presence,
                heatmaps,
                original: (width, height),
            });
            self.ctx.save_pipeline_cache();
        }
        Ok(())
    }

    /// Runs the whole pipeline: one submission, one readback.
    pub fn run<'a>(&mut self, image: impl Into<ImageSource<'a>>) -> Result<LumbarPrediction> {
        let image = image.into();
        if self.refine_levels == RefineLevels::Present {
            return self.run_present(image);
        }
        let (ctx, readback) = (self.ctx.clone(), self.io.readback().clone());
        let raw = ctx.record_submit_read(
            "lumbar inference",
            |encoder| self.encode(encoder, image),
            &readback,
            RESULT_BYTES,
        )?;
        Ok(self.prediction_from(&raw))
    }

    /// The present-levels path: two submissions, two readbacks.
    fn run_present(&mut self, image: ImageSource) -> Result<LumbarPrediction> {
        let original = image.size();
        let mut encoder = self.encoder("lumbar labels");
        self.last_plan = Some(RefineLevels::Present);
        if self
            .input
            .stage(&self.ctx, &mut self.io, &mut encoder, image)?
        {
            // The plans are bound to the old buffer.
            self.forget_plans();
        }
        if self.present.labels.as_ref().map(|l| l.key) != Some(original) {
            let (plan, outputs) = self.labels_plan(original)?;
            let plan = plan.compile(&self.ctx, &mut self.pipelines)?;
            self.present.labels = Some(Built {
                key: original,
                plan,
                outputs,
            });
            self.ctx.save_pipeline_cache();
        }
        let Built {
            plan,
            outputs: [coarse, boxes, presence, _],
            ..
        } = self.present.labels.as_ref().expect("compiled above");
        plan.encode(&mut encoder, None);
        self.io
            .copy_result(&mut encoder, plan.buffer(*coarse), 0, COARSE_BYTES);
        self.io
            .copy_result(&mut encoder, plan.buffer(*boxes), COARSE_BYTES, BOXES_BYTES);
        self.io.copy_result(
            &mut encoder,
            plan.buffer(*presence),
            TABLE_BYTES,
            RESULT_BYTES - TABLE_BYTES,
        );
        let submission = self.ctx.submit(encoder);
        let first = self.io.begin_readback(&self.ctx, Some(submission)).wait()?;
        let probabilities = self.probabilities_from(&first);
        let present: Vec<usize> = (0..LEVEL_COUNT)
            .filter(|&v| probabilities[v] >= self.config.threshold)
            .collect();

        // The result in the one-submission layout: corners, coarse corners, boxes, then the
        // probabilities.
        let coarse_rows = &first[..COARSE_BYTES as usize];
        let level_boxes = &first[COARSE_BYTES as usize..(COARSE_BYTES + BOXES_BYTES) as usize];
        let mut result = vec![0u8; RESULT_BYTES as usize];
        let table_start = 2 * COARSE_BYTES as usize;
        result[table_start..table_start + BOXES_BYTES as usize].copy_from_slice(level_boxes);
        result[TABLE_BYTES as usize..].copy_from_slice(&first[TABLE_BYTES as usize..]);
        if present.is_empty() {
            // Nothing to refine or report: the localisation's corners in original pixels.
            let (w, h) = (original.0 as f32, original.1 as f32);
            for (i, row) in coarse_rows.chunks_exact(16).enumerate() {
                let v = |k: usize| f32::from_le_bytes(row[4 * k..4 * k + 4].try_into().unwrap());
                let point = [
                    ((v(0) + 1.0) * w - 1.0) / 2.0,
                    ((v(1) + 1.0) * h - 1.0) / 2.0,
                    v(2).sqrt() * w / 2.0,
                    v(3).sqrt() * h / 2.0,
                ];
                let bytes: Vec<u8> = point.iter().flat_map(|f| f.to_le_bytes()).collect();
                result[16 * i..16 * i + 16].copy_from_slice(&bytes);
                let coarse_at = COARSE_BYTES as usize + 16 * i;
                result[coarse_at..coarse_at + 16].copy_from_slice(&bytes);
            }
            return Ok(self.prediction_from(&result));
        }

        // The second submission: the present levels' boxes compacted, their corners' sources.
        let count = present.len() as u32;
        let mut compact = Vec::with_capacity(present.len() * 16);
        for &v in &present {
            compact.extend_from_slice(&level_boxes[16 * v..16 * v + 16]);
        }
        let mut sources = vec![[GLOBAL_POINT, 0]; LANDMARK_COUNT];
        for (j, &v) in present.iter().enumerate() {
            for c in 0..CORNERS_PER_LEVEL {
                sources[CORNERS_PER_LEVEL * v + c] = [(CORNERS_PER_LEVEL * j + c) as u32, j as u32];
            }
        }
        let queue = &self.ctx.queue;
        queue.write_buffer(&self.present.boxes, 0, &compact);
        queue.write_buffer(&self.present.coarse, 0, coarse_rows);
        queue.write_buffer(
            &self.present.sources,
            0,
            bytemuck::cast_slice(sources.as_flattened()),
        );
        let key = (original, count);
        if self.present.refine.as_ref().map(|r| r.key) != Some(key) {
            // One at a time: a paper-size plan holds hundreds of MiB of activations.
            self.present.refine = None;
            let plan = self.present_plan(original, count)?;
            let plan = plan.compile(&self.ctx, &mut self.pipelines)?;
            self.present.refine = Some(Built {
                key,
                plan,
                outputs: (),
            });
            self.ctx.save_pipeline_cache();
        }
        let plan = &self.present.refine.as_ref().expect("compiled above").plan;
        let mut encoder = self.encoder("lumbar present levels");
        plan.encode(&mut encoder, None);
        self.io
            .copy_result(&mut encoder, &self.table, 0, table_start as u64);
        let submission = self.ctx.submit(encoder);
        let second = self.io.begin_readback(&self.ctx, Some(submission)).wait()?;
        result[..table_start].copy_from_slice(&second[..table_start]);
        Ok(self.prediction_from(&result))
    }

    /// Width, height and number of the probability maps [`Self::encode_heatmaps`] writes: the
    /// localisation's 96 maps (level-major, corners as, ps, pi, ai) in the model's input
    /// frame.
    pub fn heatmap_shape(&self) -> (u32, u32, u32) {
        let side = crate::nn::inception::output_side(self.config.input_size);
        (side, side, LANDMARK_COUNT as u32)
    }

    /// Records, after [`Self::encode`] or [`Self::run`] of an image (and in the same encoder
    /// for `encode`), the localisation's 96 probability maps (the softmax the step-I corners are
    /// the expectation of) into layers of the host's `R32Float` texture. Map pixel (i, j) covers
    /// the original image around x = (j + ½)·W/w − ½, y = (i + ½)·H/h − ½.
    pub fn encode_heatmaps(
        &mut self,
        encoder: &mut wgpu::CommandEncoder,
        target: ops::HeatmapTarget,
    ) -> Result<()> {
        let plan = match self.last_plan {
            Some(RefineLevels::All) => self
                .compiled
                .as_ref()
                .map(|c| (&c.plan, std::slice::from_ref(&c.heatmaps))),
            Some(RefineLevels::Present) => self
                .present
                .labels
                .as_ref()
                .map(|built| (&built.plan, &built.outputs[3..])),
            None => None,
        };
        super::encode_heatmaps(
            &self.ctx,
            &mut self.pipelines,
            self.precision,
            encoder,
            plan,
            target,
        )
    }

    fn encoder(&self, label: &str) -> wgpu::CommandEncoder {
        self.ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) })
    }

    /// Records the inference of `image` into the host's `encoder` without submitting it (see
    /// [`crate::CervicalModel::encode`]): every level refined, whatever
    /// [`Self::set_refine_levels`] says.
    pub fn encode<'a>(
        &mut self,
        encoder: &mut wgpu::CommandEncoder,
        image: impl Into<ImageSource<'a>>,
    ) -> Result<()> {
        let image = image.into();
        let (w, h) = image.size();
        if self.input.stage(&self.ctx, &mut self.io, encoder, image)? {
            // The compiled plan is bound to the old buffer.
            self.compiled = None;
        }
        self.prepare_all_levels(w, h)?;
        self.last_plan = Some(RefineLevels::All);
        let compiled = self.compiled.as_ref().expect("prepared above");
        compiled.plan.encode(encoder, None);
        self.io.copy_result(encoder, &self.table, 0, TABLE_BYTES);
        let presence = compiled.plan.buffer(compiled.presence);
        self.io
            .copy_result(encoder, presence, TABLE_BYTES, RESULT_BYTES - TABLE_BYTES);
        Ok(())
    }

    /// Starts reading back what the last [`Self::encode`] recorded, once submitted.
    pub fn begin_readback(&self, submission: Option<wgpu::SubmissionIndex>) -> PendingReadback {
        self.io.begin_readback(&self.ctx, submission)
    }

    /// The prediction in the result's bytes: the map-back table, then the probabilities.
    pub fn prediction_from(&self, raw: &[u8]) -> LumbarPrediction {
        let f32_at = |offset: usize| {
            f32::from_le_bytes([
                raw[offset],
                raw[offset + 1],
                raw[offset + 2],
                raw[offset + 3],
            ])
        };
        let row = |r: usize| [0, 1, 2, 3].map(|k| f32_at(16 * r + 4 * k));
        let corners = (0..LANDMARK_COUNT)
            .map(|i| {
                let [x, y, sd_x, sd_y] = row(i);
                LumbarCorner {
                    name: LANDMARK_NAMES[i],
                    x,
                    y,
                    sd_x,
                    sd_y,
                }
            })
            .collect();
        let coarse = (LANDMARK_COUNT..2 * LANDMARK_COUNT).map(row).collect();
        let boxes = (2 * LANDMARK_COUNT..TABLE_ROWS as usize).map(row).collect();
        let presence = self.probabilities_from(raw);
        let threshold = self.config.threshold;
        LumbarPrediction {
            present: presence.iter().map(|&p| p >= threshold).collect(),
            presence,
            corners,
            coarse,
            boxes,
        }
    }

    /// The 24 probabilities after the table in a readback.
    fn probabilities_from(&self, raw: &[u8]) -> Vec<f32> {
        let base = TABLE_BYTES as usize;
        (0..LEVEL_COUNT)
            .map(|v| match self.precision {
                Precision::F32 => {
                    let at = base + 4 * v;
                    f32::from_le_bytes([raw[at], raw[at + 1], raw[at + 2], raw[at + 3]])
                }
                // f16 activations, native or packed two to a u32: element v is half v.
                Precision::F16 => {
                    half::f16::from_le_bytes([raw[base + 2 * v], raw[base + 2 * v + 1]]).to_f32()
                }
            })
            .collect()
    }

    /// GPU bytes of the weights.
    pub fn weight_bytes(&self) -> u64 {
        self.nets.weight_bytes()
    }

    /// The compiled plans held now: the one-submission plan, or the present-levels path's two.
    fn compiled_plans(&self) -> impl Iterator<Item = &CompiledPlan> {
        let labels = self.present.labels.as_ref().map(|built| &built.plan);
        let refine = self.present.refine.as_ref().map(|built| &built.plan);
        self.compiled
            .as_ref()
            .map(|c| &c.plan)
            .into_iter()
            .chain(labels)
            .chain(refine)
    }

    /// Activation bytes after liveness reuse, over the plans held (0 before the first
    /// `prepare`).
    pub fn activation_bytes(&self) -> u64 {
        self.compiled_plans()
            .map(CompiledPlan::activation_bytes)
            .sum()
    }

    /// GPU bytes of the input image, the result table, the readback buffer and the
    /// present-levels path's uploads.
    pub fn io_bytes(&self) -> u64 {
        self.io.bytes()
            + self.table.size()
            + self.present.boxes.size()
            + self.present.coarse.size()
            + self.present.sources.size()
    }

    /// Dispatches per inference over the plans held.
    pub fn dispatch_count(&self) -> usize {
        self.compiled_plans().map(CompiledPlan::step_count).sum()
    }
}

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
use crate::ops::{self, ConvSelection};

pub mod config;

pub use config::{LumbarConfig, LUMBAR_ARCH};

use super::GreyImage;

/// Rows of the map-back table (see shaders/map_back.wgsl): refined corners, the localisation's
/// corners (both in original pixels), the level boxes.
const TABLE_ROWS: u64 = 2 * LANDMARK_COUNT as u64 + LEVEL_COUNT as u64;
const TABLE_BYTES: u64 = TABLE_ROWS * 16;
/// The presence probabilities follow the table in the readback (f32, or f16 halves).
const RESULT_BYTES: u64 = TABLE_BYTES + LEVEL_COUNT as u64 * 4;

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

struct Compiled {
    plan: CompiledPlan,
    presence: TensorId,
    original: (u32, u32),
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
    table: Arc<wgpu::Buffer>,
    precision: Precision,
    refine_batch: Option<u32>,
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
        Ok(Self {
            box_members: upload_u32(&ctx, "level corners", &members),
            sources: upload_u32(&ctx, "corner sources", &sources),
            io: ModelIo::new(&ctx, "lumbar readback", RESULT_BYTES, 0),
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

    pub fn context(&self) -> &Arc<GpuContext> {
        &self.ctx
    }

    /// The uncompiled dispatch list for an original image size (benchmarks inspect it).
    pub fn dispatch_plan(&self, width: u32, height: u32) -> Result<Plan> {
        Ok(self.plan((width, height))?.0)
    }

    /// The dispatch list and its presence probabilities. The crops read the original image
    /// through the [0, 1] map of the resized one, an activation of the original's size: the plan
    /// is built per original size.
    fn plan(&self, original: (u32, u32)) -> Result<(Plan, TensorId)> {
        let c = &self.config;
        let s = c.input_size;
        let (mut plan, unused, image) =
            super::begin_plan(&self.ctx, self.precision, self.io.image(), original);
        let resized = ops::resize_bicubic(&mut plan, image, s, s)?;
        let stats = ops::minmax_stats(&mut plan, resized)?;
        let normalized = ops::minmax_apply(&mut plan, "normalized", resized, stats)?;
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

        plan.begin_stage("crops");
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
        let original01 = ops::minmax_apply(&mut plan, "original [0, 1]", image, stats)?;
        let k = c.crop_size;
        let refined = plan.activation_f32("refined corners", &[LANDMARK_COUNT as u32, 4]);
        let batch = self.refine_batch()?;
        let levels = LEVEL_COUNT as u32;
        for first in (0..levels).step_by(batch as usize) {
            let part = first..(first + batch).min(levels);
            let stage = format!("refine levels {}..{}", part.start, part.end - 1);
            plan.begin_stage(stage.clone());
            let crops = ops::grid_sample_crops_range(
                &mut plan,
                &format!("{stage}: crops"),
                original01,
                boxes,
                part,
                k,
                k,
            )?;
            let crops = ops::channel_affine_expand(
                &mut plan,
                "crop affine",
                crops,
                &c.input_mean,
                &c.input_std,
            )?;
            let heatmaps = self.nets.refine.apply(&mut plan, crops, unused)?;
            let row = first * CORNERS_PER_LEVEL as u32;
            ops::softmax_dsnt(&mut plan, "refine dsnt", heatmaps, refined, row)?;
        }

        plan.begin_stage("map back");
        let table = plan.bound("lumbar table", &[TABLE_ROWS as u32, 4], self.table.clone());
        let sources = plan.bound(
            "corner sources",
            &[LANDMARK_COUNT as u32, 2],
            self.sources.clone(),
        );
        // The boxes and the DSNT rows are in original pixels already: the "input" frame of the
        // map back is the original image.
        ops::map_back(
            &mut plan,
            coarse,
            Some((refined, boxes)),
            sources,
            table,
            unused,
            original,
            original,
            1,
        )?;

        // Last, so that no later activation takes the probabilities' buffer before the readback.
        plan.begin_stage("identify");
        let presence = self.nets.identify.apply(&mut plan, input, unused)?;
        Ok((plan, presence))
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
            self.compiled = None;
        }
        Ok(())
    }

    /// Builds pipelines, bind groups and activation buffers for an original image size now
    /// instead of at the first `run` of that size.
    pub fn prepare(&mut self, width: u32, height: u32) -> Result<()> {
        let current = self.compiled.as_ref().map(|c| c.original);
        if current != Some((width, height)) {
            self.compiled = None;
            let (plan, presence) = self.plan((width, height))?;
            let plan = plan.compile(&self.ctx, &mut self.pipelines)?;
            self.compiled = Some(Compiled {
                plan,
                presence,
                original: (width, height),
            });
            self.ctx.save_pipeline_cache();
        }
        Ok(())
    }

    /// Runs the whole pipeline: one submission, one readback.
    pub fn run(&mut self, image: GreyImage) -> Result<LumbarPrediction> {
        let (ctx, readback) = (self.ctx.clone(), self.io.readback().clone());
        let raw = ctx.record_submit_read(
            "lumbar inference",
            |encoder| self.encode(encoder, image),
            &readback,
            RESULT_BYTES,
        )?;
        Ok(self.prediction_from(&raw))
    }

    /// Records the inference of `image` into the host's `encoder` without submitting it (see
    /// [`crate::CervicalModel::encode`]).
    pub fn encode(&mut self, encoder: &mut wgpu::CommandEncoder, image: GreyImage) -> Result<()> {
        let (w, h) = (image.width, image.height);
        image.checked_bytes(&self.ctx)?;
        if self.io.upload(&self.ctx, image.pixels) {
            // The compiled plan is bound to the old buffer.
            self.compiled = None;
        }
        self.prepare(w, h)?;
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
        let base = TABLE_BYTES as usize;
        let presence: Vec<f32> = (0..LEVEL_COUNT)
            .map(|v| match self.precision {
                Precision::F32 => f32_at(base + 4 * v),
                // f16 activations, native or packed two to a u32: element v is half v.
                Precision::F16 => {
                    half::f16::from_le_bytes([raw[base + 2 * v], raw[base + 2 * v + 1]]).to_f32()
                }
            })
            .collect();
        let threshold = self.config.threshold;
        LumbarPrediction {
            present: presence.iter().map(|&p| p >= threshold).collect(),
            presence,
            corners,
            coarse,
            boxes,
        }
    }

    /// GPU bytes of the weights.
    pub fn weight_bytes(&self) -> u64 {
        self.nets.weight_bytes()
    }

    /// Activation bytes after liveness reuse (0 before the first `prepare`).
    pub fn activation_bytes(&self) -> u64 {
        self.compiled
            .as_ref()
            .map_or(0, |c| c.plan.activation_bytes())
    }

    /// GPU bytes of the input image, the result table and the readback buffer.
    pub fn io_bytes(&self) -> u64 {
        self.io.bytes() + self.table.size()
    }

    pub fn dispatch_count(&self) -> usize {
        self.compiled.as_ref().map_or(0, |c| c.plan.step_count())
    }
}

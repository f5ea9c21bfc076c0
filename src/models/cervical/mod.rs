//! The cervical model of SPEC-cervical.md (paper 000): preprocess, global 2-stack hourglass,
//! DSNT, disc boxes, ROIAlign crops, six refiners, DSNT, map back — one submission, one readback.

use std::sync::Arc;

use crate::engine::kernel::UniformParams;

use crate::anatomy::cervical::{disc_members, is_disc_corner, DISC_COUNT, LANDMARK_COUNT};
use crate::engine::buffers::{storage_buffer, upload_u32};
use crate::engine::{
    CompiledPlan, GpuContext, ModelIo, PendingReadback, PipelineCache, Plan, Precision, StageTimer,
    TensorId,
};
use crate::error::Result;
use crate::nn::hourglass::HourglassNet;
use crate::nn::scope::{GpuLayers, WeightScope};
use crate::nn::weights::WeightFile;
use crate::ops::boxes::{check_members, BoxShape, BoxSpec};
use crate::ops::map_back::{check_sources, GLOBAL_POINT};
use crate::ops::{self, ConvSelection};

pub mod config;

pub use config::{CervicalConfig, CERVICAL_ARCH};

/// The 29 landmarks in model order (SPEC-cervical.md).
pub use crate::anatomy::cervical::LANDMARK_NAMES;

const CERVICAL_LANDMARKS: usize = LANDMARK_COUNT;
const CERVICAL_DISCS: usize = DISC_COUNT;

/// Rows of the result buffer (see shaders/map_back.wgsl).
const RESULT_ROWS: u64 = 2 * CERVICAL_LANDMARKS as u64 + CERVICAL_DISCS as u64;
const RESULT_BYTES: u64 = RESULT_ROWS * 16;

pub use super::GreyImage;
use super::{ImageInput, ImageSource};

/// One landmark in original-image pixels (centre of the top-left pixel at (0, 0)).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Landmark {
    pub name: &'static str,
    pub x: f32,
    pub y: f32,
    /// Standard deviation of the heatmap's softmax distribution along x and y, in original pixels:
    /// small for a confident, peaked heatmap.
    pub sd_x: f32,
    pub sd_y: f32,
    /// Whether the point comes from a refiner (24 disc corners) or the global model (5 points).
    pub refined: bool,
}

/// What one inference returns.
#[derive(Debug, Clone)]
pub struct Prediction {
    pub landmarks: Vec<Landmark>,
    /// The global model's 29 points in input-size pixels (x, y, sd_x, sd_y).
    pub coarse_input: Vec<[f32; 4]>,
    /// The six disc boxes (x1, y1, x2, y2) in input-size pixels.
    pub boxes: Vec<[f32; 4]>,
    /// GPU time per stage in milliseconds, when profiling is on and the adapter has timestamps.
    pub stage_ms: Vec<(String, f64)>,
}

impl Prediction {
    pub fn xy(&self) -> Vec<[f32; 2]> {
        self.landmarks.iter().map(|l| [l.x, l.y]).collect()
    }
}

struct Compiled {
    plan: CompiledPlan,
    image: TensorId,
    /// The global network's last-stack heatmaps, kept for [`CervicalModel::encode_heatmaps`].
    heatmaps: TensorId,
    resize_step: usize,
    map_step: usize,
    original: (u32, u32),
}

/// The dispatch list with the tensors and steps the model binds or updates afterwards.
struct PlanParts {
    plan: Plan,
    image: TensorId,
    heatmaps: TensorId,
    /// The steps whose parameters depend on the original image size.
    resize_step: usize,
    map_step: usize,
}

/// The cervical model on the GPU. Build once; `run` many times.
pub struct CervicalModel {
    ctx: Arc<GpuContext>,
    pub config: CervicalConfig,
    pub weights_sha256: String,
    pub weights_dtype: String,
    global: HourglassNet,
    refiners: HourglassNet,
    /// The landmarks of each disc (boxes are drawn around them).
    disc_members: Arc<wgpu::Buffer>,
    /// Per landmark: (refined row, disc) or (GLOBAL_POINT, 0).
    landmark_sources: Arc<wgpu::Buffer>,
    pipelines: PipelineCache,
    compiled: Option<Compiled>,
    io: ModelIo,
    input: ImageInput,
    result: Arc<wgpu::Buffer>,
    timestamps: Option<StageTimer>,
    profiling: bool,
    precision: Precision,
}

impl CervicalModel {
    /// Loads the weights onto the GPU (BatchNorm folded, weights repacked) and checks that the
    /// file holds exactly the tensors its architecture needs. Kernels are chosen by the
    /// adapter-aware heuristic; see [`Self::with_selection`] for measured choices.
    pub fn new(ctx: Arc<GpuContext>, weights: &WeightFile) -> Result<Self> {
        Self::with_selection(ctx, weights, &ConvSelection::default())
    }

    /// Loads the model with each convolution's kernel chosen by `selection` (a tuning table
    /// measured by `sagitta tune`, or a forced kernel).
    pub fn with_selection(
        ctx: Arc<GpuContext>,
        weights: &WeightFile,
        selection: &ConvSelection,
    ) -> Result<Self> {
        let config = CervicalConfig::from_weights(weights)?;
        let layers = GpuLayers {
            ctx: &ctx,
            selection,
        };
        let root = WeightScope::new(weights, &layers);
        let global = HourglassNet::load_gpu(
            &root.pp("global_net"),
            &config.global,
            config.bn_eps,
            config.input_size,
        )?;
        let refiner_names: Vec<String> = (0..config.refiner_count).map(|k| k.to_string()).collect();
        let refiners = HourglassNet::load_gpu(
            &root.pp("refiners").sets(&refiner_names),
            &config.refiner,
            config.bn_eps,
            config.crop_size,
        )?;
        weights.check_all_used()?;
        let members = disc_members();
        check_members(&members, CERVICAL_LANDMARKS as u32)?;
        let sources: Vec<[u32; 2]> = (0..CERVICAL_LANDMARKS)
            .map(|i| {
                if is_disc_corner(i) {
                    let row = (i - 2) as u32;
                    [row, row / 4]
                } else {
                    [GLOBAL_POINT, 0]
                }
            })
            .collect();
        check_sources(&sources, 4 * CERVICAL_DISCS as u32, CERVICAL_DISCS as u32)?;
        let disc_members = upload_u32(&ctx, "disc members", &members);
        let landmark_sources = upload_u32(&ctx, "landmark sources", sources.as_flattened());
        let result = storage_buffer(&ctx, "landmark table", RESULT_BYTES);
        // Room after the result for the stage timestamps of a profiled run.
        let io = ModelIo::new(&ctx, "readback", RESULT_BYTES, 16 * 64);
        Ok(Self {
            ctx,
            config,
            weights_sha256: weights.sha256.clone(),
            weights_dtype: weights.dtype.clone(),
            global,
            refiners,
            disc_members,
            landmark_sources,
            pipelines: PipelineCache::default(),
            compiled: None,
            io,
            input: ImageInput::default(),
            result,
            timestamps: None,
            profiling: false,
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

    pub fn context(&self) -> &Arc<GpuContext> {
        &self.ctx
    }

    /// Turns per-stage GPU timing on (needs the adapter's timestamp queries).
    pub fn set_profiling(&mut self, on: bool) {
        self.profiling = on && self.ctx.has_timestamps();
    }

    fn build_plan(&mut self, original: (u32, u32)) -> Result<Compiled> {
        let PlanParts {
            mut plan,
            image,
            heatmaps,
            resize_step,
            map_step,
        } = self.plan(original)?;
        if plan.view_of(heatmaps).is_some() {
            return Err(crate::SagittaError::Gpu(
                "the global heatmaps are a view into another tensor; encode_heatmaps reads a \
                 whole buffer"
                    .into(),
            ));
        }
        plan.keep_as_output(heatmaps);
        let plan = plan.compile(&self.ctx, &mut self.pipelines)?;
        Ok(Compiled {
            plan,
            image,
            heatmaps,
            resize_step,
            map_step,
            original,
        })
    }

    /// Records, after [`Self::encode`] in the same encoder, the copy of the 29 landmarks into
    /// the host's `destination` (`COPY_DST` usage) from byte `offset` (a multiple of 4): per
    /// landmark, in model order, four f32: x, y and the heatmap spreads sd_x, sd_y, in
    /// original pixels (centre of the top-left pixel at (0, 0)). For a host that draws them
    /// from a buffer of its own without reading them back.
    pub fn copy_landmarks_into(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        destination: &wgpu::Buffer,
        offset: u64,
    ) -> Result<()> {
        let bytes = 16 * CERVICAL_LANDMARKS as u64;
        let fits = offset
            .checked_add(bytes)
            .is_some_and(|end| end <= destination.size());
        if !offset.is_multiple_of(4) || !fits {
            return Err(crate::SagittaError::InvalidInput(format!(
                "landmark buffer of {} bytes: the 29 landmarks need {bytes} bytes from byte \
                 {offset}, an offset that is a multiple of 4",
                destination.size()
            )));
        }
        if !destination.usage().contains(wgpu::BufferUsages::COPY_DST) {
            return Err(crate::SagittaError::InvalidInput(
                "landmark buffer: created without COPY_DST usage, which copying into it needs"
                    .into(),
            ));
        }
        if self.compiled.is_none() {
            return Err(crate::SagittaError::InvalidInput(
                "no landmarks yet: encode or run an image first".into(),
            ));
        }
        encoder.copy_buffer_to_buffer(&self.result, 0, destination, offset, bytes);
        Ok(())
    }

    /// Width, height and number of the probability maps [`Self::encode_heatmaps`] writes: the
    /// global network's last-stack heatmaps, in the model's input frame (a quarter of the
    /// square input side).
    pub fn heatmap_shape(&self) -> (u32, u32, u32) {
        let side = self.config.input_size / 4;
        (side, side, CERVICAL_LANDMARKS as u32)
    }

    /// Records, after [`Self::encode`] or [`Self::run`] of an image (and in the same encoder
    /// for `encode`), the 29 landmarks' probability maps (the spatial softmax the coarse
    /// landmarks are the expectation of) into layers of the host's `R32Float` texture, in
    /// model order. Map pixel (i, j) covers the original image around
    /// x = (j + ½)·W/w − ½, y = (i + ½)·H/h − ½ for an original of W × H and maps of w × h
    /// ([`Self::heatmap_shape`]): the resize to the square input keeps no aspect.
    pub fn encode_heatmaps(
        &mut self,
        encoder: &mut wgpu::CommandEncoder,
        target: ops::HeatmapTarget,
    ) -> Result<()> {
        let plan = self
            .compiled
            .as_ref()
            .map(|c| (&c.plan, std::slice::from_ref(&c.heatmaps)));
        super::encode_heatmaps(
            &self.ctx,
            &mut self.pipelines,
            self.precision,
            encoder,
            plan,
            target,
        )
    }

    /// The uncompiled dispatch list for an original image size (benchmarks inspect it).
    pub fn dispatch_plan(&self, width: u32, height: u32) -> Result<Plan> {
        Ok(self.plan((width, height))?.plan)
    }

    /// Builds the dispatch list.
    fn plan(&self, original: (u32, u32)) -> Result<PlanParts> {
        let c = &self.config;
        let s = c.input_size;
        let (mut plan, unused, image) =
            super::begin_plan(&self.ctx, self.precision, self.io.image(), original);
        let resize_step = plan.steps().len();
        let resized = ops::resize_bicubic(&mut plan, image, s, s)?;
        let standardized = ops::standardize(&mut plan, resized, c.standardize_eps)?;

        plan.begin_stage("global");
        let heatmaps = self.global.apply(&mut plan, standardized, unused)?;
        let coarse = plan.activation_f32("coarse", &[CERVICAL_LANDMARKS as u32, 4]);
        ops::softmax_dsnt(&mut plan, "global dsnt", heatmaps, coarse, 0)?;

        plan.begin_stage("crops");
        let members = plan.bound(
            "disc members",
            &[4 * CERVICAL_DISCS as u32],
            self.disc_members.clone(),
        );
        let boxes = ops::boxes(
            &mut plan,
            coarse,
            members,
            &BoxSpec {
                input: (s, s),
                margin: c.box_margin,
                min_side: c.box_min_side,
                group_size: 4,
                shape: BoxShape::Square,
            },
        )?;
        let crops = ops::roi_align(
            &mut plan,
            standardized,
            boxes,
            c.crop_size,
            c.roi_sampling_ratio,
        )?;
        let crops = if c.crop_standardize {
            ops::standardize_planes(&mut plan, crops, c.standardize_eps)?
        } else {
            crops
        };

        plan.begin_stage("refiners");
        let refined_maps = self.refiners.apply(&mut plan, crops, unused)?;
        let refined = plan.activation_f32("refined", &[4 * CERVICAL_DISCS as u32, 4]);
        ops::softmax_dsnt(&mut plan, "refiner dsnt", refined_maps, refined, 0)?;

        plan.begin_stage("map back");
        let result = plan.bound(
            "landmark table",
            &[RESULT_ROWS as u32, 4],
            self.result.clone(),
        );
        let sources = plan.bound(
            "landmark sources",
            &[CERVICAL_LANDMARKS as u32, 2],
            self.landmark_sources.clone(),
        );
        let map_step = plan.steps().len();
        ops::map_back(
            &mut plan,
            coarse,
            Some((refined, boxes)),
            sources,
            result,
            unused,
            (s, s),
            original,
            1,
        )?;
        Ok(PlanParts {
            plan,
            image,
            heatmaps,
            resize_step,
            map_step,
        })
    }

    /// Builds pipelines, bind groups and activation buffers now instead of at the first `run`.
    pub fn prepare(&mut self, width: u32, height: u32) -> Result<()> {
        if self.compiled.is_none() {
            self.compiled = Some(self.build_plan((width, height))?);
            self.ctx.save_pipeline_cache();
        }
        Ok(())
    }

    /// Runs the whole pipeline: one submission, one readback.
    pub fn run<'a>(&mut self, image: impl Into<ImageSource<'a>>) -> Result<Prediction> {
        let mut encoder = self
            .ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("cervical inference"),
            });
        let profiled = self.record(&mut encoder, image.into(), self.profiling)?;
        let submission = self.ctx.submit(encoder);
        let read_bytes = RESULT_BYTES + profiled.as_ref().map_or(0, StageTimer::bytes);
        let raw = self
            .ctx
            .read_buffer(self.io.readback(), read_bytes, submission)?;
        let mut prediction = self.prediction_from(&raw[..RESULT_BYTES as usize]);
        if let Some(timer) = profiled {
            let compiled = self.compiled.as_ref().expect("recorded above");
            prediction.stage_ms = StageTimer::milliseconds(
                &self.ctx,
                &raw[RESULT_BYTES as usize..],
                compiled.plan.pass_names(),
            );
            self.timestamps = Some(timer);
        }
        Ok(prediction)
    }

    /// Records the whole inference of `image` into the caller's `encoder` without submitting
    /// it (a host that embeds the engine submits it with its own work): an image from the CPU
    /// is queued on the queue (applied at the next submission, before it), one already on the
    /// GPU (a [`super::TextureImage`] the viewer shows, a buffer) is read by a pass recorded
    /// first; then the plan and the copy of the result into the readback buffer. After
    /// submitting, [`Self::begin_readback`] maps the result without waiting on the device.
    ///
    /// ```no_run
    /// # fn frame(device: &sagitta::wgpu::Device, queue: &sagitta::wgpu::Queue,
    /// #          model: &mut sagitta::CervicalModel, image: sagitta::GreyImage)
    /// #          -> sagitta::Result<()> {
    /// let mut encoder = device.create_command_encoder(&Default::default());
    /// // ... the host's own passes ...
    /// model.encode(&mut encoder, image)?;
    /// let submission = queue.submit([encoder.finish()]);
    /// let mut pending = model.begin_readback(Some(submission));
    /// // Each frame: draw, then look whether the landmarks have arrived.
    /// if let Some(bytes) = pending.poll() {
    ///     let prediction = model.prediction_from(&bytes?);
    ///     println!("{:?}", prediction.xy());
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn encode<'a>(
        &mut self,
        encoder: &mut wgpu::CommandEncoder,
        image: impl Into<ImageSource<'a>>,
    ) -> Result<()> {
        self.record(encoder, image.into(), false).map(drop)
    }

    /// Starts reading back what the last [`Self::encode`] recorded, once the caller has
    /// submitted it (`submission`: its index, so that waiting waits for that work only). Turn
    /// the bytes into landmarks with [`Self::prediction_from`]. One readback at a time: encode
    /// the next inference after this one has arrived.
    pub fn begin_readback(&self, submission: Option<wgpu::SubmissionIndex>) -> PendingReadback {
        self.io.begin_readback(&self.ctx, submission)
    }

    /// The records `encoder` gets; returns the stage timer when timestamps were recorded.
    fn record(
        &mut self,
        encoder: &mut wgpu::CommandEncoder,
        image: ImageSource,
        profile: bool,
    ) -> Result<Option<StageTimer>> {
        let (w, h) = image.size();
        let replaced = self.input.stage(&self.ctx, &mut self.io, encoder, image)?;
        self.prepare(w, h)?;
        let s = self.config.input_size;
        let compiled = self.compiled.as_mut().expect("prepared above");
        if replaced {
            compiled
                .plan
                .rebind(compiled.image, self.io.image().clone());
        }
        if compiled.original != (w, h) {
            compiled.plan.update_params(
                compiled.resize_step,
                &ops::resize_params(h, w, s, s).words(),
            );
            compiled.plan.update_params(
                compiled.map_step,
                &ops::map_back_params(
                    (s, s),
                    (w, h),
                    CERVICAL_LANDMARKS as u32,
                    CERVICAL_DISCS as u32,
                    1,
                )
                .words(),
            );
            compiled.original = (w, h);
        }
        let passes = compiled.plan.pass_count() as u32;
        let timer = match self.timestamps.take() {
            Some(timer) if profile && timer.passes() == passes => Some(timer),
            _ if profile => Some(StageTimer::new(&self.ctx, passes)),
            _ => None,
        };
        compiled
            .plan
            .encode(encoder, timer.as_ref().map(StageTimer::query_set));
        self.io.copy_result(encoder, &self.result, 0, RESULT_BYTES);
        if let Some(timer) = &timer {
            timer.resolve_into(encoder, self.io.readback(), RESULT_BYTES);
        }
        Ok(timer)
    }

    /// The prediction in the result table's bytes (see shaders/map_back.wgsl).
    pub fn prediction_from(&self, raw: &[u8]) -> Prediction {
        let floats: Vec<f32> = raw[..RESULT_BYTES as usize]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let row = |r: usize| -> [f32; 4] {
            [
                floats[4 * r],
                floats[4 * r + 1],
                floats[4 * r + 2],
                floats[4 * r + 3],
            ]
        };
        let landmarks = (0..CERVICAL_LANDMARKS)
            .map(|i| {
                let [x, y, sd_x, sd_y] = row(i);
                Landmark {
                    name: LANDMARK_NAMES[i],
                    x,
                    y,
                    sd_x,
                    sd_y,
                    refined: is_disc_corner(i),
                }
            })
            .collect();
        let coarse_input = (0..CERVICAL_LANDMARKS)
            .map(|i| row(CERVICAL_LANDMARKS + i))
            .collect();
        let boxes = (0..CERVICAL_DISCS)
            .map(|i| row(2 * CERVICAL_LANDMARKS + i))
            .collect();
        Prediction {
            landmarks,
            coarse_input,
            boxes,
            stage_ms: Vec::new(),
        }
    }

    /// GPU memory the model holds: weights, activations (after liveness reuse) and I/O buffers.
    pub fn gpu_memory(&self) -> GpuMemory {
        let activations = self
            .compiled
            .as_ref()
            .map_or(0, |c| c.plan.activation_bytes());
        GpuMemory {
            weights: self.global.weight_bytes() + self.refiners.weight_bytes(),
            activations,
            io: self.io.bytes() + self.result.size(),
        }
    }

    pub fn dispatch_count(&self) -> usize {
        self.compiled.as_ref().map_or(0, |c| c.plan.step_count())
    }
}

#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct GpuMemory {
    pub weights: u64,
    pub activations: u64,
    pub io: u64,
}

impl GpuMemory {
    pub fn total(&self) -> u64 {
        self.weights + self.activations + self.io
    }
}

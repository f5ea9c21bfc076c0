//! The CSM classifier of SPEC-csm.md (paper 003): area resize, min-max, grey to three normalised
//! channels, VGG16's 13 convolutions, global average pool, three fully connected layers, sigmoid
//! — one submission, one 4-byte readback (the probability).

use std::sync::Arc;

use crate::engine::kernel::UniformParams;
use crate::engine::{
    CompiledPlan, GpuContext, ModelIo, PendingReadback, PipelineCache, Plan, Precision, TensorId,
};
use crate::error::Result;
use crate::nn::scope::{GpuLayers, LayerBuilder, WeightScope};
use crate::nn::weights::WeightFile;
use crate::ops::conv2d::{Activation, ConvGeometry, ConvLayer};
use crate::ops::{self, ConvSelection, LinearLayer};

pub mod config;

pub use config::{CsmConfig, CSM_ARCH};

use super::{ImageInput, ImageSource};

/// Bytes read back per inference: the probability, one f32 (or one f16 in its low half).
const RESULT_BYTES: u64 = 4;

/// What one inference returns.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CsmPrediction {
    /// sigmoid(logit): the network's probability of cervical spondylotic myelopathy.
    pub p_csm: f32,
    /// `p_csm >= threshold`.
    pub label: bool,
    /// The threshold of the weights file's metadata.
    pub threshold: f32,
}

impl CsmPrediction {
    /// "CSM" or "no CSM" (SPEC-csm.md: a screening number, not a diagnosis).
    pub fn label_text(&self) -> &'static str {
        if self.label {
            "CSM"
        } else {
            "no CSM"
        }
    }
}

/// The network: `features.N` convolutions (3x3, pad 1, bias, ReLU) in five stages, each ending
/// in a 2x2 max-pool, then a global average pool and `classifier.{0,2,4,...}` (ReLU between,
/// sigmoid at the end). Generic over the layer builder so a dry run lists its tensors.
pub struct CsmNet<C, L> {
    /// (stage, convolution) in order; a max-pool follows the last conv of each stage.
    stages: Vec<Vec<(String, C)>>,
    fcs: Vec<(String, L)>,
}

impl<C, L> CsmNet<C, L> {
    /// Declares (and with a GPU builder, builds) every layer of `config`.
    pub fn load<B: LayerBuilder<Conv = C, Linear = L>>(
        scope: &WeightScope<'_, B>,
        config: &CsmConfig,
    ) -> Result<Self> {
        let features = scope.pp("features");
        let layers = config.conv_layers();
        let mut convs = layers.iter();
        let mut stages = Vec::new();
        for (stage, (count, _)) in config::STAGES.iter().enumerate() {
            let side = config.input_size >> stage;
            let mut list = Vec::new();
            for _ in 0..*count {
                let (index, in_c, out_c) = *convs.next().expect("13 convolutions");
                let weights =
                    features.conv_weights(&index.to_string(), in_c as usize, out_c as usize, 3)?;
                let label = features.label(&index.to_string());
                let layer = scope.builder.conv(
                    &label,
                    &weights,
                    ConvGeometry::square(1, 1),
                    Activation::Relu,
                    None,
                    side * side,
                )?;
                list.push((label, layer));
            }
            stages.push(list);
        }
        let classifier = scope.pp("classifier");
        let fc_layers = config.fc_layers();
        let mut fcs = Vec::new();
        for (k, (in_f, out_f)) in fc_layers.iter().enumerate() {
            let name = (2 * k).to_string();
            let weights = classifier.linear_weights(&name, *in_f as usize, *out_f as usize)?;
            let activation = if k + 1 == fc_layers.len() {
                Activation::Sigmoid
            } else {
                Activation::Relu
            };
            let label = classifier.label(&name);
            let layer = scope.builder.linear(&label, &weights[0], activation)?;
            fcs.push((label, layer));
        }
        Ok(Self { stages, fcs })
    }
}

impl CsmNet<ConvLayer, LinearLayer> {
    /// [1, 3, S, S] normalised input -> [1, 1] probability.
    fn apply(&self, plan: &mut Plan, input: TensorId, unused: TensorId) -> Result<TensorId> {
        let mut t = input;
        for (stage, convs) in self.stages.iter().enumerate() {
            for (label, conv) in convs {
                t = conv.apply(plan, label, t, None, unused)?;
            }
            t = ops::maxpool2(plan, &format!("pool{}", stage + 1), t)?;
        }
        t = ops::global_avg_pool(plan, "avgpool", t)?;
        for (label, fc) in &self.fcs {
            t = fc.apply(plan, label, t)?;
        }
        Ok(t)
    }

    fn weight_bytes(&self) -> u64 {
        let convs: u64 = self
            .stages
            .iter()
            .flatten()
            .map(|(_, c)| c.weight_bytes())
            .sum();
        let fcs: u64 = self.fcs.iter().map(|(_, l)| l.weight_bytes()).sum();
        convs + fcs
    }
}

struct Compiled {
    plan: CompiledPlan,
    image: TensorId,
    probability: TensorId,
    resize_step: usize,
    original: (u32, u32),
}

/// The CSM classifier on the GPU. Build once; `run` many times.
pub struct CsmModel {
    ctx: Arc<GpuContext>,
    pub config: CsmConfig,
    pub weights_sha256: String,
    pub weights_dtype: String,
    net: CsmNet<ConvLayer, LinearLayer>,
    pipelines: PipelineCache,
    compiled: Option<Compiled>,
    io: ModelIo,
    input: ImageInput,
    precision: Precision,
}

impl CsmModel {
    /// Loads the weights onto the GPU and checks that the file holds exactly the tensors the
    /// configuration needs. Kernels are chosen by the adapter-aware heuristic.
    pub fn new(ctx: Arc<GpuContext>, weights: &WeightFile) -> Result<Self> {
        Self::with_selection(ctx, weights, &ConvSelection::default())
    }

    /// Loads the model with each convolution's kernel chosen by `selection`.
    pub fn with_selection(
        ctx: Arc<GpuContext>,
        weights: &WeightFile,
        selection: &ConvSelection,
    ) -> Result<Self> {
        let config = CsmConfig::from_weights(weights)?;
        let layers = GpuLayers {
            ctx: &ctx,
            selection,
        };
        let root = WeightScope::new(weights, &layers);
        let net = CsmNet::load(&root, &config)?;
        weights.check_all_used()?;
        let io = ModelIo::new(&ctx, "csm readback", RESULT_BYTES, 0);
        Ok(Self {
            ctx,
            config,
            weights_sha256: weights.sha256.clone(),
            weights_dtype: weights.dtype.clone(),
            net,
            pipelines: PipelineCache::default(),
            compiled: None,
            io,
            input: ImageInput::default(),
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

    /// The uncompiled dispatch list for an original image size (benchmarks inspect it).
    pub fn dispatch_plan(&self, width: u32, height: u32) -> Result<Plan> {
        Ok(self.plan((width, height))?.0)
    }

    /// The dispatch list; returns it with the image tensor, the probability and the resize step
    /// (whose parameters depend on the original image size).
    fn plan(&self, original: (u32, u32)) -> Result<(Plan, TensorId, TensorId, usize)> {
        let c = &self.config;
        let s = c.input_size;
        let (mut plan, unused, image) =
            super::begin_plan(&self.ctx, self.precision, self.io.image(), original);
        let resize_step = plan.steps().len();
        let resized = ops::resize_area(&mut plan, image, s, s)?;
        let normalized = ops::minmax_normalize(&mut plan, resized)?;
        let input = ops::channel_affine_expand(
            &mut plan,
            "input affine",
            normalized,
            &c.input_mean,
            &c.input_std,
        )?;
        plan.begin_stage("network");
        let probability = self.net.apply(&mut plan, input, unused)?;
        Ok((plan, image, probability, resize_step))
    }

    /// Builds pipelines, bind groups and activation buffers now instead of at the first `run`.
    pub fn prepare(&mut self, width: u32, height: u32) -> Result<()> {
        if self.compiled.is_none() {
            let (plan, image, probability, resize_step) = self.plan((width, height))?;
            let plan = plan.compile(&self.ctx, &mut self.pipelines)?;
            self.compiled = Some(Compiled {
                plan,
                image,
                probability,
                resize_step,
                original: (width, height),
            });
            self.ctx.save_pipeline_cache();
        }
        Ok(())
    }

    /// Runs the whole pipeline: one submission, one 4-byte readback.
    pub fn run<'a>(&mut self, image: impl Into<ImageSource<'a>>) -> Result<CsmPrediction> {
        let image = image.into();
        let (ctx, readback) = (self.ctx.clone(), self.io.readback().clone());
        let raw = ctx.record_submit_read(
            "csm inference",
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
        super::input::checked_size(&self.ctx, w, h)?;
        let s = self.config.input_size;
        // Checked before the plan exists: the resize refuses sizes whose window bounds overflow.
        let resize = ops::resize_area_params(h, w, s, s)?;
        let replaced = self.input.stage(&self.ctx, &mut self.io, encoder, image)?;
        self.prepare(w, h)?;
        let compiled = self.compiled.as_mut().expect("prepared above");
        if replaced {
            compiled
                .plan
                .rebind(compiled.image, self.io.image().clone());
        }
        if compiled.original != (w, h) {
            compiled
                .plan
                .update_params(compiled.resize_step, &resize.words());
            compiled.original = (w, h);
        }
        compiled.plan.encode(encoder, None);
        let result = compiled.plan.buffer(compiled.probability);
        self.io.copy_result(encoder, result, 0, RESULT_BYTES);
        Ok(())
    }

    /// Starts reading back what the last [`Self::encode`] recorded, once submitted (see
    /// [`crate::CervicalModel::begin_readback`]).
    pub fn begin_readback(&self, submission: Option<wgpu::SubmissionIndex>) -> PendingReadback {
        self.io.begin_readback(&self.ctx, submission)
    }

    /// The prediction in the result's bytes.
    pub fn prediction_from(&self, raw: &[u8]) -> CsmPrediction {
        let p_csm = match self.precision {
            Precision::F32 => f32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]),
            // f16 activations, native or packed two to a u32: element 0 is the low half.
            Precision::F16 => half::f16::from_le_bytes([raw[0], raw[1]]).to_f32(),
        };
        let threshold = self.config.threshold;
        CsmPrediction {
            p_csm,
            label: p_csm >= threshold,
            threshold,
        }
    }

    /// GPU bytes of the weights.
    pub fn weight_bytes(&self) -> u64 {
        self.net.weight_bytes()
    }

    pub fn dispatch_count(&self) -> usize {
        self.compiled.as_ref().map_or(0, |c| c.plan.step_count())
    }

    /// GPU bytes of the activations after liveness reuse (0 before `prepare`).
    pub fn activation_bytes(&self) -> u64 {
        self.compiled
            .as_ref()
            .map_or(0, |c| c.plan.activation_bytes())
    }

    /// GPU bytes of the radiograph upload buffer and the readback buffer.
    pub fn io_bytes(&self) -> u64 {
        self.io.bytes()
    }
}

//! The pipeline benchmark behind `sagitta bench` and `cargo bench`: warm-up, timed runs,
//! per-stage GPU time from timestamp queries, end-to-end latency and GPU memory.

use std::sync::Arc;
use std::time::Instant;

use crate::engine::{GpuContext, PipelineCache, Precision, Step};
use crate::error::Result;
use crate::models::cervical::{CervicalConfig, CervicalModel, GpuMemory, GreyImage};
use crate::models::csm::CsmModel;
use crate::models::lumbar::{LumbarModel, RefineLevels};
use crate::models::wholespine::WholeSpineModel;
use crate::nn::weights::WeightFile;
use crate::ops::conv2d::{Activation, ConvStep};
use crate::ops::ConvSelection;

#[derive(Debug, Clone)]
pub struct BenchSettings {
    pub image_width: u32,
    pub image_height: u32,
    pub warmup: usize,
    pub runs: usize,
    pub precision: Precision,
    /// How the layers choose their convolution kernels.
    pub selection: ConvSelection,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub p90: f64,
}

impl Spread {
    fn of(mut values: Vec<f64>) -> Self {
        values.sort_by(f64::total_cmp);
        let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
        Self {
            median: at(0.5),
            min: values[0],
            p90: at(0.9),
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchReport {
    pub adapter: String,
    pub precision: Precision,
    pub model: String,
    /// The network's input (width, height).
    pub input: [u32; 2],
    pub crop_size: u32,
    pub image: [u32; 2],
    pub dispatches: usize,
    pub runs: usize,
    /// Weights to GPU (BN folding, repacking, upload), seconds.
    pub load_s: f64,
    /// Pipelines, bind groups and activation buffers, seconds.
    pub prepare_s: f64,
    /// None with `runs: 0` (load and prepare only: memory, dispatches, kernels).
    pub first_run_s: Option<f64>,
    pub latency_ms: Option<Spread>,
    /// Per-stage GPU time (empty without timestamp queries).
    pub stages_ms: Vec<(String, Spread)>,
    pub gpu_memory: GpuMemory,
    /// The most activation bytes the one-submission plan holds alive at once: no allocation
    /// can do with less (`gpu_memory.activations` is what liveness reuse allocated).
    pub largest_live_set: u64,
    /// Which kernel runs how many convolutions, and how they were chosen.
    pub convolutions: String,
}

/// A smooth synthetic radiograph-like image (deterministic), in 12-bit-like values.
pub fn synthetic_image(width: u32, height: u32) -> Vec<f32> {
    (0..height)
        .flat_map(|y| {
            (0..width).map(move |x| {
                let (fx, fy) = (x as f32 / width as f32, y as f32 / height as f32);
                2000.0
                    + 800.0 * (7.0 * fx).sin() * (5.0 * fy).cos()
                    + 300.0 * ((x * 31 + y * 17) % 13) as f32 / 13.0
            })
        })
        .collect()
}

pub fn run(
    ctx: Arc<GpuContext>,
    weights: &WeightFile,
    settings: &BenchSettings,
) -> Result<BenchReport> {
    let (w, h) = (settings.image_width, settings.image_height);
    let pixels = synthetic_image(w, h);
    let image = GreyImage {
        width: w,
        height: h,
        pixels: &pixels,
    };
    let t = Instant::now();
    let mut model = CervicalModel::with_selection(ctx.clone(), weights, &settings.selection)?;
    model.set_precision(settings.precision)?;
    let load_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    model.prepare(w, h)?;
    let prepare_s = t.elapsed().as_secs_f64();
    model.set_profiling(true);
    let mut first_run_s = None;
    if settings.runs > 0 {
        let t = Instant::now();
        model.run(image)?;
        first_run_s = Some(t.elapsed().as_secs_f64());
        for _ in 1..settings.warmup {
            model.run(image)?;
        }
    }
    let mut latencies = Vec::new();
    let mut stages: Vec<(String, Vec<f64>)> = Vec::new();
    for _ in 0..settings.runs {
        let t = Instant::now();
        let prediction = model.run(image)?;
        latencies.push(t.elapsed().as_secs_f64() * 1e3);
        for (i, (name, ms)) in prediction.stage_ms.into_iter().enumerate() {
            if stages.len() <= i {
                stages.push((name, Vec::new()));
            }
            stages[i].1.push(ms);
        }
    }
    let config: CervicalConfig = model.config.clone();
    let config = &config;
    let plan = model.dispatch_plan(w, h)?;
    let convolutions = convolution_summary(&plan, &settings.selection);
    let largest_live_set = plan.memory_plan().peak_live_bytes;
    Ok(BenchReport {
        adapter: ctx.describe(),
        precision: settings.precision,
        model: config.name.clone(),
        input: [config.input_size; 2],
        crop_size: config.crop_size,
        image: [w, h],
        dispatches: model.dispatch_count(),
        runs: latencies.len(),
        load_s,
        prepare_s,
        first_run_s,
        latency_ms: (!latencies.is_empty()).then(|| Spread::of(latencies)),
        stages_ms: stages
            .into_iter()
            .map(|(n, v)| (n, Spread::of(v)))
            .collect(),
        gpu_memory: model.gpu_memory(),
        largest_live_set,
        convolutions,
    })
}

/// Which kernel runs how many convolutions of a plan, and how they were chosen.
fn convolution_summary(plan: &crate::engine::Plan, selection: &ConvSelection) -> String {
    let mut per_kernel: std::collections::BTreeMap<&str, usize> = Default::default();
    for step in plan.steps() {
        if ConvStep::of(step).is_some() {
            *per_kernel.entry(step.kernel.name).or_default() += 1;
        }
    }
    let chosen_by = match selection.tuned_shapes() {
        0 => "heuristic, no `sagitta tune` table".to_string(),
        n => format!("measured by `sagitta tune` ({n} shapes)"),
    };
    format!(
        "{} ({chosen_by})",
        per_kernel
            .iter()
            .map(|(k, n)| format!("{k} x{n}"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// What [`run_single`] needs of a model whose pipeline has no per-stage timing: build, prepare,
/// run, and report.
trait SingleSubmission {
    fn prepare(&mut self, width: u32, height: u32) -> Result<()>;
    fn run_once(&mut self, image: GreyImage) -> Result<()>;
    fn dispatch_plan(&self, width: u32, height: u32) -> Result<crate::engine::Plan>;
    fn dispatch_count(&self) -> usize;
    fn name(&self) -> String;
    /// (width, height).
    fn input(&self) -> [u32; 2];
    fn gpu_memory(&self) -> GpuMemory;
}

impl SingleSubmission for CsmModel {
    fn prepare(&mut self, width: u32, height: u32) -> Result<()> {
        CsmModel::prepare(self, width, height)
    }
    fn run_once(&mut self, image: GreyImage) -> Result<()> {
        self.run(image).map(drop)
    }
    fn dispatch_plan(&self, width: u32, height: u32) -> Result<crate::engine::Plan> {
        CsmModel::dispatch_plan(self, width, height)
    }
    fn dispatch_count(&self) -> usize {
        CsmModel::dispatch_count(self)
    }
    fn name(&self) -> String {
        self.config.name.clone()
    }
    fn input(&self) -> [u32; 2] {
        [self.config.input_size; 2]
    }
    fn gpu_memory(&self) -> GpuMemory {
        GpuMemory {
            weights: self.weight_bytes(),
            activations: self.activation_bytes(),
            io: self.io_bytes(),
        }
    }
}

impl SingleSubmission for LumbarModel {
    fn prepare(&mut self, width: u32, height: u32) -> Result<()> {
        LumbarModel::prepare(self, width, height)
    }
    fn run_once(&mut self, image: GreyImage) -> Result<()> {
        self.run(image).map(drop)
    }
    fn dispatch_plan(&self, width: u32, height: u32) -> Result<crate::engine::Plan> {
        LumbarModel::dispatch_plan(self, width, height)
    }
    fn dispatch_count(&self) -> usize {
        LumbarModel::dispatch_count(self)
    }
    fn name(&self) -> String {
        let levels = match self.refine_levels() {
            RefineLevels::All => "all levels",
            RefineLevels::Present => "present levels; two submissions",
        };
        format!("{} (refines {levels})", self.config.name)
    }
    fn input(&self) -> [u32; 2] {
        [self.config.input_size; 2]
    }
    fn gpu_memory(&self) -> GpuMemory {
        GpuMemory {
            weights: self.weight_bytes(),
            activations: self.activation_bytes(),
            io: self.io_bytes(),
        }
    }
}

impl SingleSubmission for WholeSpineModel {
    fn prepare(&mut self, width: u32, height: u32) -> Result<()> {
        WholeSpineModel::prepare(self, width, height)
    }
    fn run_once(&mut self, image: GreyImage) -> Result<()> {
        self.run(image).map(drop)
    }
    fn dispatch_plan(&self, width: u32, height: u32) -> Result<crate::engine::Plan> {
        WholeSpineModel::dispatch_plan(self, width, height)
    }
    fn dispatch_count(&self) -> usize {
        WholeSpineModel::dispatch_count(self)
    }
    fn name(&self) -> String {
        self.config.name.clone()
    }
    fn input(&self) -> [u32; 2] {
        [self.config.input_width, self.config.input_height]
    }
    fn gpu_memory(&self) -> GpuMemory {
        GpuMemory {
            weights: self.weight_bytes(),
            activations: self.activation_bytes(),
            io: self.io_bytes(),
        }
    }
}

/// The CSM classifier's pipeline: load, prepare, first run, latency (one submission ending in
/// the 4-byte readback; no per-stage times), GPU memory. `crop_size` is 0 (no crops).
pub fn run_csm(
    ctx: Arc<GpuContext>,
    weights: &WeightFile,
    settings: &BenchSettings,
) -> Result<BenchReport> {
    let t = Instant::now();
    let mut model = CsmModel::with_selection(ctx.clone(), weights, &settings.selection)?;
    model.set_precision(settings.precision)?;
    run_single(ctx, model, t.elapsed().as_secs_f64(), settings)
}

/// The whole-spine pipeline (every member, DSNT, the ensemble mean and the map back in one
/// submission), timed as [`run_csm`].
pub fn run_wholespine(
    ctx: Arc<GpuContext>,
    weights: &WeightFile,
    settings: &BenchSettings,
) -> Result<BenchReport> {
    let t = Instant::now();
    let mut model = WholeSpineModel::with_selection(ctx.clone(), weights, &settings.selection)?;
    model.set_precision(settings.precision)?;
    run_single(ctx, model, t.elapsed().as_secs_f64(), settings)
}

/// The lumbar pipeline refining `refine` levels (all 24 in one submission, or the labeller's
/// present ones after a first submission), timed as [`run_csm`]; its report names the way.
pub fn run_lumbar(
    ctx: Arc<GpuContext>,
    weights: &WeightFile,
    settings: &BenchSettings,
    refine: RefineLevels,
) -> Result<BenchReport> {
    let t = Instant::now();
    let mut model = LumbarModel::with_selection(ctx.clone(), weights, &settings.selection)?;
    model.set_precision(settings.precision)?;
    model.set_refine_levels(refine);
    run_single(ctx, model, t.elapsed().as_secs_f64(), settings)
}

fn run_single(
    ctx: Arc<GpuContext>,
    mut model: impl SingleSubmission,
    load_s: f64,
    settings: &BenchSettings,
) -> Result<BenchReport> {
    let (w, h) = (settings.image_width, settings.image_height);
    let pixels = synthetic_image(w, h);
    let image = GreyImage {
        width: w,
        height: h,
        pixels: &pixels,
    };
    let t = Instant::now();
    model.prepare(w, h)?;
    let prepare_s = t.elapsed().as_secs_f64();
    let mut first_run_s = None;
    if settings.runs > 0 {
        let t = Instant::now();
        model.run_once(image)?;
        first_run_s = Some(t.elapsed().as_secs_f64());
        for _ in 1..settings.warmup {
            model.run_once(image)?;
        }
    }
    let mut latencies = Vec::new();
    for _ in 0..settings.runs {
        let t = Instant::now();
        model.run_once(image)?;
        latencies.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let plan = model.dispatch_plan(w, h)?;
    let convolutions = convolution_summary(&plan, &settings.selection);
    let largest_live_set = plan.memory_plan().peak_live_bytes;
    Ok(BenchReport {
        adapter: ctx.describe(),
        precision: settings.precision,
        model: model.name(),
        input: model.input(),
        crop_size: 0,
        image: [w, h],
        dispatches: model.dispatch_count(),
        runs: latencies.len(),
        load_s,
        prepare_s,
        first_run_s,
        latency_ms: (!latencies.is_empty()).then(|| Spread::of(latencies)),
        stages_ms: Vec::new(),
        gpu_memory: model.gpu_memory(),
        largest_live_set,
        convolutions,
    })
}

impl std::fmt::Display for BenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
        writeln!(f, "adapter: {}", self.adapter)?;
        writeln!(
            f,
            "model: {} (input {}x{}, crops {}x{}, {:?} activations); image {}x{}; {} dispatches in one submission",
            self.model,
            self.input[0],
            self.input[1],
            self.crop_size,
            self.crop_size,
            self.precision,
            self.image[0],
            self.image[1],
            self.dispatches
        )?;
        writeln!(f, "convolutions: {}", self.convolutions)?;
        writeln!(
            f,
            "setup: weights to GPU {:.2} s, pipelines + buffers {:.2} s, first run {}",
            self.load_s,
            self.prepare_s,
            self.first_run_s
                .map_or("not run".to_string(), |s| format!("{s:.2} s"))
        )?;
        if self.runs == 0 {
            writeln!(f, "no timed runs (--runs 0)")?;
        } else if self.stages_ms.is_empty() {
            writeln!(
                f,
                "per-stage GPU time: unavailable (no timestamp queries on this adapter)"
            )?;
        } else {
            writeln!(
                f,
                "per-stage GPU time, ms (median / min / p90 of {} runs):",
                self.runs
            )?;
            for (name, s) in &self.stages_ms {
                writeln!(
                    f,
                    "  {name:<12} {:>10.2} {:>10.2} {:>10.2}",
                    s.median, s.min, s.p90
                )?;
            }
            let sum: f64 = self.stages_ms.iter().map(|(_, s)| s.median).sum();
            writeln!(f, "  {:<12} {sum:>10.2}", "sum")?;
        }
        if let Some(latency) = &self.latency_ms {
            writeln!(
                f,
                "end-to-end latency, ms: median {:.2}, min {:.2}, p90 {:.2} ({} runs)",
                latency.median, latency.min, latency.p90, self.runs
            )?;
        }
        let m = &self.gpu_memory;
        write!(
            f,
            "GPU memory: {:.1} MiB = weights {:.1} + activations {:.1} (after liveness reuse; largest live set {:.1}) + I/O {:.1}",
            mib(m.total()),
            mib(m.weights),
            mib(m.activations),
            mib(self.largest_live_set),
            mib(m.io)
        )
    }
}

/// One distinct kernel shape of a pipeline, timed in isolation.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KernelRow {
    pub kernel: String,
    /// Named shape parameters (also what the PyTorch side reads to time the same workload).
    pub shape: serde_json::Value,
    /// How many dispatches of this shape one inference makes.
    pub count: usize,
    pub median_ms: f64,
    pub min_ms: f64,
    pub flops: u64,
    pub gflops: Option<f64>,
    /// Percentage of the adapter's f32 peak, when the peak is known.
    pub percent_of_peak: Option<f64>,
}

/// Named parameters of a step: a convolution's geometry, else its uniform block by the field
/// names its kernel declares.
pub fn describe(step: &Step) -> serde_json::Value {
    use serde_json::json;
    if let Some(conv) = ConvStep::of(step) {
        let p = &conv.params;
        return json!({
            "n": p.batch, "in_c": p.in_c, "h": p.in_h, "w": p.in_w, "out_c": p.out_c,
            "oh": p.out_h, "ow": p.out_w, "kh": conv.key.kh, "kw": conv.key.kw,
            "stride": [conv.key.stride.0, conv.key.stride.1], "pad": [conv.pad.0, conv.pad.1], "prologue": conv.prologue, "residual": conv.residual,
            "activation": match conv.activation {
                Activation::None => None,
                Activation::Relu => Some("relu"),
                Activation::Sigmoid => Some("sigmoid"),
            },
            "per_sample": conv.key.weight_sets > 1,
        });
    }
    let mut fields = serde_json::Map::new();
    for ((name, ty), &word) in step.kernel.uniform.iter().zip(&step.params) {
        let value = match *ty {
            "f32" => json!(f32::from_bits(word)),
            "i32" => json!(word as i32),
            _ => json!(word),
        };
        fields.insert(name.to_string(), value);
    }
    fields.insert("entry".into(), json!(step.kernel.entry));
    serde_json::Value::Object(fields)
}

/// Multiply-adds x 2 of a step (convolutions; 0 for the memory-bound kernels).
pub fn flops(step: &Step) -> u64 {
    let Some(conv) = ConvStep::of(step) else {
        return 0;
    };
    let p = &conv.params;
    let taps = conv.key.kh as u64 * conv.key.kw as u64;
    2 * p.batch as u64 * p.out_c as u64 * p.out_h as u64 * p.out_w as u64 * p.in_c as u64 * taps
}

/// Times every distinct kernel shape of a model's pipeline (any family) in isolation: `repeats` dispatches
/// per timed pass, `samples` passes, median per dispatch.
pub fn kernel_table(
    ctx: Arc<GpuContext>,
    weights: &WeightFile,
    settings: &BenchSettings,
    repeats: usize,
    samples: usize,
) -> Result<Vec<KernelRow>> {
    let (w, h) = (settings.image_width, settings.image_height);
    let plan = match crate::models::family_of(weights)? {
        crate::models::Family::Cervical => {
            let mut model =
                CervicalModel::with_selection(ctx.clone(), weights, &settings.selection)?;
            model.set_precision(settings.precision)?;
            model.dispatch_plan(w, h)?
        }
        crate::models::Family::Csm => {
            let mut model = CsmModel::with_selection(ctx.clone(), weights, &settings.selection)?;
            model.set_precision(settings.precision)?;
            model.dispatch_plan(w, h)?
        }
        crate::models::Family::WholeSpine => {
            let mut model = crate::models::wholespine::WholeSpineModel::with_selection(
                ctx.clone(),
                weights,
                &settings.selection,
            )?;
            model.set_precision(settings.precision)?;
            model.dispatch_plan(w, h)?
        }
        crate::models::Family::Lumbar => {
            let mut model = LumbarModel::with_selection(ctx.clone(), weights, &settings.selection)?;
            model.set_precision(settings.precision)?;
            model.dispatch_plan(w, h)?
        }
    };
    let mut seen: Vec<(String, usize, usize)> = Vec::new();
    for (i, step) in plan.steps().iter().enumerate() {
        let key = format!(
            "{}:{}:{:?}:{:?}",
            step.kernel.name, step.kernel.entry, step.overrides, step.params
        );
        match seen.iter_mut().find(|(k, _, _)| *k == key) {
            Some(entry) => entry.2 += 1,
            None => seen.push((key, i, 1)),
        }
    }
    let mut pipelines = PipelineCache::default();
    let mut rows = Vec::new();
    for (_, index, count) in seen {
        let step = &plan.steps()[index];
        let isolated = plan
            .isolate_step(&ctx, index, repeats)
            .compile(&ctx, &mut pipelines)?;
        isolated.gpu_time_ms()?;
        let mut times = Vec::new();
        for _ in 0..samples.max(1) {
            if let Some(ms) = isolated.gpu_time_ms()? {
                times.push(ms / repeats.max(1) as f64);
            }
        }
        let spread = if times.is_empty() {
            Spread {
                median: f64::NAN,
                min: f64::NAN,
                p90: f64::NAN,
            }
        } else {
            Spread::of(times)
        };
        let f = flops(step);
        rows.push(KernelRow {
            kernel: step.kernel.name.to_string(),
            shape: describe(step),
            count,
            median_ms: spread.median,
            min_ms: spread.min,
            flops: f,
            gflops: (f > 0 && spread.median > 0.0).then(|| f as f64 / (spread.median * 1e6)),
            percent_of_peak: known_f32_peak_tflops(&ctx.info.name)
                .filter(|_| f > 0 && spread.median > 0.0)
                .map(|peak| f as f64 / (spread.median * 1e6) / (peak * 1e3) * 100.0),
        });
    }
    Ok(rows)
}

/// What `tools/bench_torch.py` reports.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TorchReport {
    pub device: String,
    pub torch: String,
    /// "f32", or "f16" (autocast to float16); absent from older scripts.
    #[serde(default)]
    pub precision: Option<String>,
    pub pipeline_ms: TorchSpread,
    pub peak_memory_bytes: Option<u64>,
    pub kernels: Vec<TorchKernel>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TorchSpread {
    pub median: f64,
    pub min: f64,
    pub p90: f64,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TorchKernel {
    pub index: usize,
    pub median_ms: Option<f64>,
    pub min_ms: Option<f64>,
}

/// How the PyTorch side of a benchmark runs.
#[derive(Debug, Clone)]
pub struct TorchRunner {
    /// The interpreter with torch installed.
    pub python: String,
    /// `cpu` or `cuda` (None: the script's default).
    pub device: Option<String>,
}

/// Runs the same weights, image and kernel shapes through PyTorch (`tools/bench_torch.py`).
pub fn run_torch(
    weights: &WeightFile,
    settings: &BenchSettings,
    kernels: &[KernelRow],
    runner: &TorchRunner,
) -> Result<TorchReport> {
    let dir = std::env::temp_dir().join(format!("sagitta-bench-{}", std::process::id()));
    let io_error = |e: std::io::Error| {
        crate::error::SagittaError::InvalidInput(format!("benchmark temp files: {e}"))
    };
    std::fs::create_dir_all(&dir).map_err(io_error)?;
    let weights_path = dir.join("weights.safetensors");
    weights.save_f32(&weights_path)?;
    let shapes_path = dir.join("shapes.json");
    std::fs::write(
        &shapes_path,
        serde_json::to_vec(kernels).expect("serialisable"),
    )
    .map_err(io_error)?;
    let script = [
        std::path::PathBuf::from("tools/bench_torch.py"),
        std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tools/bench_torch.py")),
    ]
    .into_iter()
    .find(|p| p.exists())
    .ok_or_else(|| {
        crate::error::SagittaError::InvalidInput(
            "tools/bench_torch.py not found: run from the repository".into(),
        )
    })?;
    let python = &runner.python;
    let mut command = std::process::Command::new(python);
    command
        .arg(&script)
        .arg("--weights")
        .arg(&weights_path)
        .arg("--shapes")
        .arg(&shapes_path)
        .arg("--image")
        .arg(format!(
            "{}x{}",
            settings.image_width, settings.image_height
        ))
        .arg("--runs")
        .arg(settings.runs.max(1).to_string())
        .arg("--warmup")
        .arg(settings.warmup.to_string())
        // f16: PyTorch under autocast(float16), the like-for-like comparison.
        .arg("--precision")
        .arg(match settings.precision {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
        });
    if let Some(device) = &runner.device {
        command.arg("--device").arg(device);
    }
    let output = command.output().map_err(|e| {
        crate::error::SagittaError::InvalidInput(format!(
            "could not run {python}: {e}; install torch (tools/requirements.txt)"
        ))
    })?;
    let _ = std::fs::remove_dir_all(&dir);
    if !output.status.success() {
        return Err(crate::error::SagittaError::InvalidInput(format!(
            "the PyTorch benchmark failed ({}): {}",
            output.status,
            {
                // The end of its stderr: a traceback's last frames and the error.
                let stderr = String::from_utf8_lossy(&output.stderr);
                let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
                match lines.len() {
                    0 => "no output".to_string(),
                    n => lines[n.saturating_sub(6)..].join(" | "),
                }
            }
        )));
    }
    serde_json::from_slice(&output.stdout).map_err(|e| {
        crate::error::SagittaError::InvalidInput(format!(
            "the PyTorch benchmark printed no valid JSON: {e}"
        ))
    })
}

/// sagitta and, optionally, PyTorch on the same workloads.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Comparison {
    pub sagitta: BenchReport,
    pub kernels: Vec<KernelRow>,
    pub torch: Option<TorchReport>,
    /// Why the PyTorch side gave no report, when it was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub torch_error: Option<String>,
    pub batch: Option<BatchReport>,
    pub cold_start: Option<ColdStart>,
}

/// Process start to first result, in seconds (weights from a file, one synthetic image).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ColdStart {
    pub empty_cache_s: f64,
    pub warm_cache_s: f64,
    /// Size of the pipeline cache the first process left (0: the adapter has none).
    pub cache_bytes: u64,
}

fn short_shape(row: &KernelRow) -> String {
    let s = &row.shape;
    let g = |k: &str| s[k].as_u64().unwrap_or(0);
    match row.kernel.as_str() {
        name if name.starts_with("conv2d") => {
            let mut extra = String::new();
            for (flag, tag) in [
                ("prologue", "+bnrelu"),
                ("residual", "+res"),
                ("per_sample", " x6w"),
            ] {
                if s[flag].as_bool().unwrap_or(false) {
                    extra.push_str(tag);
                }
            }
            if let Some(activation) = s["activation"].as_str() {
                extra.push_str(&format!("+{activation}"));
            }
            let pair = |key: &str| {
                let (a, b) = (
                    s[key][0].as_u64().unwrap_or(0),
                    s[key][1].as_u64().unwrap_or(0),
                );
                if a == b {
                    a.to_string()
                } else {
                    format!("{a}x{b}")
                }
            };
            let kernel = if g("kh") == g("kw") {
                g("kh").to_string()
            } else {
                format!("{}x{}", g("kh"), g("kw"))
            };
            format!(
                "{}x{}x{}x{} -> {} k{kernel} s{}{extra}",
                g("n"),
                g("in_c"),
                g("h"),
                g("w"),
                g("out_c"),
                pair("stride")
            )
        }
        "maxpool2" => format!("{}x{}x{}", g("planes"), g("in_h"), g("in_w")),
        "upsample_add" => format!("{}x{}x{} -> x2", g("planes"), g("low_h"), g("low_w")),
        "softmax_dsnt" => format!("{} maps {}x{}", g("heatmaps"), g("height"), g("width")),
        "roi_align" => format!(
            "{} boxes -> {}x{}",
            g("boxes"),
            g("out_size"),
            g("out_size")
        ),
        "resize_bicubic" => format!(
            "{}x{} -> {}x{}",
            g("in_w"),
            g("in_h"),
            g("out_w"),
            g("out_h")
        ),
        _ => s.to_string().chars().take(28).collect(),
    }
}

impl std::fmt::Display for Comparison {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{}", self.sagitta)?;
        if let Some(b) = &self.batch {
            writeln!(f, "{b}")?;
        }
        if let Some(c) = &self.cold_start {
            writeln!(
                f,
                "cold start (process start to first result): {:.2} s with an empty pipeline cache, {:.2} s warm ({} KiB cache)",
                c.empty_cache_s,
                c.warm_cache_s,
                c.cache_bytes / 1024
            )?;
        }
        if let (Some(t), Some(latency)) = (&self.torch, &self.sagitta.latency_ms) {
            writeln!(
                f,
                "PyTorch {} on {} ({}): pipeline median {:.2} ms, min {:.2} ms",
                t.torch,
                t.device,
                t.precision.as_deref().unwrap_or("f32"),
                t.pipeline_ms.median,
                t.pipeline_ms.min
            )?;
            writeln!(
                f,
                "end-to-end ratio sagitta/torch (median latency): {:.2}",
                latency.median / t.pipeline_ms.median
            )?;
            if let Some(peak) = t.peak_memory_bytes {
                writeln!(
                    f,
                    "peak GPU memory: sagitta {:.1} MiB, torch max_memory_allocated {:.1} MiB",
                    self.sagitta.gpu_memory.total() as f64 / 1048576.0,
                    peak as f64 / 1048576.0
                )?;
            }
        }
        if self.kernels.is_empty() {
            return Ok(());
        }
        writeln!(
            f,
            "kernels (each distinct shape of one inference, timed alone; ms per dispatch):"
        )?;
        write!(
            f,
            "  {:<14} {:<38} {:>4} {:>10} {:>9}",
            "kernel", "shape", "n", "sagitta", "GFLOP/s"
        )?;
        if self.torch.is_some() {
            write!(f, " {:>10} {:>7}", "torch", "ratio")?;
        }
        writeln!(f)?;
        for (i, row) in self.kernels.iter().enumerate() {
            write!(
                f,
                "  {:<14} {:<38} {:>4} {:>10.3} {:>9} {:>6}",
                row.kernel,
                short_shape(row),
                row.count,
                row.median_ms,
                row.gflops.map_or("-".into(), |g| format!("{g:.1}")),
                row.percent_of_peak
                    .map_or("-".into(), |p| format!("{p:.1}"))
            )?;
            if let Some(t) = &self.torch {
                match t
                    .kernels
                    .iter()
                    .find(|k| k.index == i)
                    .and_then(|k| k.median_ms)
                {
                    Some(ms) => write!(f, " {:>10.3} {:>7.2}", ms, row.median_ms / ms)?,
                    None => write!(f, " {:>10} {:>7}", "-", "-")?,
                }
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

/// Batch throughput: images per second over a list of files, with and without decoding the next
/// image on a CPU thread while the GPU works on the current one.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BatchReport {
    pub images: usize,
    pub sequential_images_per_s: f64,
    pub overlapped_images_per_s: f64,
    pub mean_decode_ms: f64,
    pub mean_inference_ms: f64,
}

impl std::fmt::Display for BatchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "batch of {} images: {:.2} images/s with decoding overlapped, {:.2} images/s sequential \
             (decode {:.1} ms, inference {:.1} ms per image)",
            self.images,
            self.overlapped_images_per_s,
            self.sequential_images_per_s,
            self.mean_decode_ms,
            self.mean_inference_ms
        )
    }
}

pub fn batch_throughput(
    model: &mut CervicalModel,
    paths: &[std::path::PathBuf],
) -> Result<BatchReport> {
    let load = |p: &std::path::Path| {
        crate::io::load_radiograph(p)
            .map_err(|e| crate::error::SagittaError::InvalidInput(e.to_string()))
    };
    // Warm-up pass: pipelines are built at the first image and the input buffer grows to the
    // largest one; neither must count.
    for p in paths {
        let r = load(p)?;
        model.run(GreyImage {
            width: r.width,
            height: r.height,
            pixels: &r.pixels,
        })?;
    }
    let mut decode_ms = 0.0;
    let mut infer_ms = 0.0;
    let start = Instant::now();
    for p in paths {
        let t = Instant::now();
        let r = load(p)?;
        decode_ms += t.elapsed().as_secs_f64() * 1e3;
        let t = Instant::now();
        model.run(GreyImage {
            width: r.width,
            height: r.height,
            pixels: &r.pixels,
        })?;
        infer_ms += t.elapsed().as_secs_f64() * 1e3;
    }
    let sequential_s = start.elapsed().as_secs_f64();

    let start = Instant::now();
    std::thread::scope(|scope| -> Result<()> {
        // Two images in flight at most: one decoded and waiting, one being decoded.
        let (sender, receiver) = std::sync::mpsc::sync_channel(1);
        scope.spawn(move || {
            for p in paths {
                if sender.send(load(p)).is_err() {
                    break;
                }
            }
        });
        for decoded in receiver {
            let r = decoded?;
            model.run(GreyImage {
                width: r.width,
                height: r.height,
                pixels: &r.pixels,
            })?;
        }
        Ok(())
    })?;
    let overlapped_s = start.elapsed().as_secs_f64();
    let n = paths.len().max(1) as f64;
    Ok(BatchReport {
        images: paths.len(),
        sequential_images_per_s: n / sequential_s,
        overlapped_images_per_s: n / overlapped_s,
        mean_decode_ms: decode_ms / n,
        mean_inference_ms: infer_ms / n,
    })
}

/// f32 CUDA-core peak of GPUs whose numbers are public, for the "% of peak" column
/// (TFLOP/s, boost clock, from the vendors' datasheets).
pub fn known_f32_peak_tflops(adapter_name: &str) -> Option<f64> {
    let name = adapter_name.to_lowercase();
    [
        ("h200", 66.9),
        ("h100 pcie", 51.2),
        ("h100", 66.9),
        ("a100", 19.5),
        ("l40s", 91.6),
        ("rtx 4090", 82.6),
        ("rtx 3090", 35.6),
    ]
    .iter()
    .find(|(key, _)| name.contains(key))
    .map(|(_, tflops)| *tflops)
}

impl Comparison {
    /// A bar chart (SVG) of per-kernel-shape time, sagitta next to PyTorch when measured.
    pub fn svg_chart(&self) -> String {
        let rows: Vec<(String, f64, Option<f64>)> = self
            .kernels
            .iter()
            .enumerate()
            .map(|(i, row)| {
                let torch = self
                    .torch
                    .as_ref()
                    .and_then(|t| t.kernels.iter().find(|k| k.index == i))
                    .and_then(|k| k.median_ms);
                (
                    format!("{} {}", row.kernel, short_shape(row)),
                    row.median_ms * row.count as f64,
                    torch.map(|t| t * row.count as f64),
                )
            })
            .collect();
        let max = rows
            .iter()
            .map(|(_, s, t)| s.max(t.unwrap_or(0.0)))
            .fold(1e-9, f64::max);
        let (label_w, bar_w, row_h) = (360.0, 520.0, 18.0);
        let height = 60.0 + rows.len() as f64 * row_h;
        let mut svg = format!(
            "<svg xmlns='http://www.w3.org/2000/svg' width='{}' height='{height}' font-family='monospace' font-size='11'>\n\
             <rect width='100%' height='100%' fill='white'/>\n\
             <text x='8' y='18' font-size='13'>ms per inference by kernel shape (count x time per dispatch); {} {}</text>\n\
             <rect x='8' y='28' width='10' height='10' fill='#2a7ab0'/><text x='22' y='37'>sagitta ({})</text>\n",
            label_w + bar_w + 120.0,
            self.sagitta.model,
            self.sagitta.image.map(|v| v.to_string()).join("x"),
            xml_escape(&self.sagitta.adapter),
        );
        if let Some(t) = &self.torch {
            svg.push_str(&format!(
                "<rect x='420' y='28' width='10' height='10' fill='#e08a2a'/><text x='434' y='37'>PyTorch {} ({})</text>\n",
                xml_escape(&t.torch),
                xml_escape(&t.device)
            ));
        }
        for (i, (label, ours, theirs)) in rows.iter().enumerate() {
            let y = 50.0 + i as f64 * row_h;
            svg.push_str(&format!(
                "<text x='8' y='{}'>{}</text>\n",
                y + 12.0,
                xml_escape(label)
            ));
            let w = bar_w * ours / max;
            let h = if theirs.is_some() {
                row_h / 2.0 - 1.0
            } else {
                row_h - 4.0
            };
            svg.push_str(&format!(
                "<rect x='{label_w}' y='{y}' width='{w:.1}' height='{h}' fill='#2a7ab0'/>\n"
            ));
            let mut text = format!("{ours:.2}");
            if let Some(t) = theirs {
                let w = bar_w * t / max;
                svg.push_str(&format!(
                    "<rect x='{label_w}' y='{}' width='{w:.1}' height='{h}' fill='#e08a2a'/>\n",
                    y + h + 1.0
                ));
                text = format!("{ours:.2} / {t:.2}");
            }
            svg.push_str(&format!(
                "<text x='{}' y='{}'>{text}</text>\n",
                label_w + bar_w + 6.0,
                y + 12.0
            ));
        }
        svg.push_str("</svg>\n");
        svg
    }
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\'', "&apos;")
}

//! The pipeline benchmark behind `sagitta bench` and `cargo bench`: warm-up, timed runs,
//! per-stage GPU time from timestamp queries, end-to-end latency and GPU memory.

use std::sync::Arc;
use std::time::Instant;

use crate::cervical::{CervicalModel, GpuMemory, GreyImage};
use crate::error::Result;
use crate::gpu::GpuContext;
use crate::weights::WeightFile;

#[derive(Debug, Clone)]
pub struct BenchSettings {
    pub image_width: u32,
    pub image_height: u32,
    pub warmup: usize,
    pub runs: usize,
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
    pub model: String,
    pub input_size: u32,
    pub crop_size: u32,
    pub image: [u32; 2],
    pub dispatches: usize,
    pub runs: usize,
    /// Weights to GPU (BN folding, repacking, upload), seconds.
    pub load_s: f64,
    /// Pipelines, bind groups and activation buffers, seconds.
    pub prepare_s: f64,
    pub first_run_s: f64,
    pub latency_ms: Spread,
    /// Per-stage GPU time (empty without timestamp queries).
    pub stages_ms: Vec<(String, Spread)>,
    pub gpu_memory: GpuMemory,
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
    let mut model = CervicalModel::new(ctx.clone(), weights)?;
    let load_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    model.prepare(w, h)?;
    let prepare_s = t.elapsed().as_secs_f64();
    model.set_profiling(true);
    let t = Instant::now();
    model.run(image)?;
    let first_run_s = t.elapsed().as_secs_f64();
    for _ in 1..settings.warmup {
        model.run(image)?;
    }
    let mut latencies = Vec::new();
    let mut stages: Vec<(String, Vec<f64>)> = Vec::new();
    for _ in 0..settings.runs.max(1) {
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
    let config = &weights.config;
    Ok(BenchReport {
        adapter: ctx.describe(),
        model: config.name.clone(),
        input_size: config.input_size,
        crop_size: config.crop_size,
        image: [w, h],
        dispatches: model.dispatch_count(),
        runs: latencies.len(),
        load_s,
        prepare_s,
        first_run_s,
        latency_ms: Spread::of(latencies),
        stages_ms: stages
            .into_iter()
            .map(|(n, v)| (n, Spread::of(v)))
            .collect(),
        gpu_memory: model.gpu_memory(),
    })
}

impl std::fmt::Display for BenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
        writeln!(f, "adapter: {}", self.adapter)?;
        writeln!(
            f,
            "model: {} (input {}x{}, crops {}x{}); image {}x{}; {} dispatches in one submission",
            self.model,
            self.input_size,
            self.input_size,
            self.crop_size,
            self.crop_size,
            self.image[0],
            self.image[1],
            self.dispatches
        )?;
        writeln!(
            f,
            "setup: weights to GPU {:.2} s, pipelines + buffers {:.2} s, first run {:.2} s",
            self.load_s, self.prepare_s, self.first_run_s
        )?;
        if self.stages_ms.is_empty() {
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
        writeln!(
            f,
            "end-to-end latency, ms: median {:.2}, min {:.2}, p90 {:.2} ({} runs)",
            self.latency_ms.median, self.latency_ms.min, self.latency_ms.p90, self.runs
        )?;
        let m = &self.gpu_memory;
        write!(
            f,
            "GPU memory: {:.1} MiB = weights {:.1} + activations {:.1} (after liveness reuse) + I/O {:.1}",
            mib(m.total()),
            mib(m.weights),
            mib(m.activations),
            mib(m.io)
        )
    }
}

//! The `sagitta` command line: library calls only.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, Parser, Subcommand};

use sagitta::gpu::{list_adapters, AdapterChoice, GpuContext};
use sagitta::{CervicalConfig, CervicalModel, GreyImage, WeightFile};

#[derive(Parser)]
#[command(
    name = "sagitta",
    version,
    about = "Spine-radiograph landmark models on any GPU (WGSL on wgpu)"
)]
struct Cli {
    #[command(flatten)]
    gpu: GpuArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct GpuArgs {
    /// GPU backend: vulkan, metal, dx12 or gl (default: the best available; env SAGITTA_BACKEND).
    #[arg(long, global = true)]
    backend: Option<String>,
    /// Use the adapter whose name contains this text (env SAGITTA_ADAPTER).
    #[arg(long, global = true)]
    adapter: Option<String>,
}

impl GpuArgs {
    fn choice(&self) -> AdapterChoice {
        AdapterChoice {
            backend: self.backend.clone(),
            name: self.adapter.clone(),
        }
        .or(AdapterChoice::from_env())
    }
}

#[derive(Subcommand)]
enum Command {
    /// Adapters found, the one chosen, its features and limits; with --weights, the model's metadata.
    Info {
        #[arg(long)]
        weights: Option<PathBuf>,
    },
    /// Runs the cervical pipeline and prints per-stage GPU times, latency and GPU memory.
    Bench(BenchArgs),
}

#[derive(Args)]
struct BenchArgs {
    /// Weights file; without it, random weights in the paper's configuration.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Timed runs after warm-up.
    #[arg(long, default_value_t = 10)]
    runs: usize,
    /// Warm-up runs.
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Size of the synthetic original image (width x height).
    #[arg(long, default_value = "1200x1000")]
    image: String,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Info { weights } => info(&cli.gpu, weights.as_ref()),
        Command::Bench(args) => bench(&cli.gpu, args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sagitta: {e}");
            ExitCode::FAILURE
        }
    }
}

type AnyResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

fn info(gpu: &GpuArgs, weights: Option<&PathBuf>) -> AnyResult {
    let choice = gpu.choice();
    let adapters = list_adapters(&choice)?;
    println!("adapters found: {}", adapters.len());
    for a in &adapters {
        println!(
            "  - {} ({:?}, {:?}, driver: {} {})",
            a.info.name, a.info.backend, a.info.device_type, a.info.driver, a.info.driver_info
        );
    }
    match GpuContext::new(&choice) {
        Ok(ctx) => {
            println!("chosen: {}", ctx.describe());
            let f = ctx.features;
            let all = adapters
                .iter()
                .find(|a| a.info.name == ctx.info.name && a.info.backend == ctx.info.backend)
                .map(|a| a.features)
                .unwrap_or(f);
            let yes = |b: bool| if b { "yes" } else { "no" };
            println!("features:");
            println!(
                "  shader-f16:          {}",
                yes(all.contains(wgpu::Features::SHADER_F16))
            );
            println!(
                "  subgroups:           {}",
                yes(all.contains(wgpu::Features::SUBGROUP))
            );
            println!(
                "  timestamp queries:   {}",
                yes(all.contains(wgpu::Features::TIMESTAMP_QUERY))
            );
            println!(
                "  cooperative matrix:  {}",
                yes(all.contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX))
            );
            let l = &ctx.limits;
            println!("limits:");
            println!(
                "  max storage buffer binding: {} MiB",
                l.max_storage_buffer_binding_size >> 20
            );
            println!(
                "  max buffer size:            {} MiB",
                l.max_buffer_size >> 20
            );
            println!(
                "  max workgroups / dimension: {}",
                l.max_compute_workgroups_per_dimension
            );
            println!(
                "  max invocations / group:    {}",
                l.max_compute_invocations_per_workgroup
            );
            println!(
                "  workgroup storage:          {} KiB",
                l.max_compute_workgroup_storage_size >> 10
            );
            println!(
                "  storage buffers / stage:    {}",
                l.max_storage_buffers_per_shader_stage
            );
        }
        Err(e) => println!("chosen: none ({e})"),
    }
    if let Some(path) = weights {
        let (config, metadata) = WeightFile::read_config(path)?;
        println!("weights: {}", path.display());
        println!("  name: {}", config.name);
        println!(
            "  input size: {}, crop size: {}",
            config.input_size, config.crop_size
        );
        println!(
            "  global: {} stacks, {} features, depth {}, {} block(s)",
            config.global.stacks, config.global.features, config.global.depth, config.global.blocks
        );
        println!(
            "  refiners: {} x ({} features, depth {}, {} block(s))",
            config.refiner_count,
            config.refiner.features,
            config.refiner.depth,
            config.refiner.blocks
        );
        println!(
            "  boxes: margin {}, min side {} px, ROIAlign sampling ratio {}",
            config.box_margin, config.box_min_side, config.roi_sampling_ratio
        );
        for (k, v) in metadata.iter().filter(|(k, _)| k.as_str() != "sagitta") {
            println!("  metadata {k}: {v}");
        }
    }
    Ok(())
}

fn parse_size(text: &str) -> AnyResult<(u32, u32)> {
    let (w, h) = text
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("image size '{text}' is not WIDTHxHEIGHT"))?;
    Ok((w.trim().parse()?, h.trim().parse()?))
}

/// A smooth synthetic radiograph-like test image (deterministic).
fn synthetic_image(w: u32, h: u32) -> Vec<f32> {
    (0..h)
        .flat_map(|y| {
            (0..w).map(move |x| {
                let (fx, fy) = (x as f32 / w as f32, y as f32 / h as f32);
                2000.0
                    + 800.0 * (7.0 * fx).sin() * (5.0 * fy).cos()
                    + 300.0 * ((x * 31 + y * 17) % 13) as f32 / 13.0
            })
        })
        .collect()
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i]
}

fn bench(gpu: &GpuArgs, args: &BenchArgs) -> AnyResult {
    let start = Instant::now();
    let ctx = GpuContext::new(&gpu.choice())?;
    let weights = match &args.weights {
        Some(p) => WeightFile::open(p)?,
        None => WeightFile::random(CervicalConfig::paper(), 0),
    };
    let config = weights.config.clone();
    let (w, h) = parse_size(&args.image)?;
    let pixels = synthetic_image(w, h);
    let image = GreyImage {
        width: w,
        height: h,
        pixels: &pixels,
    };
    let t_load = Instant::now();
    let mut model = CervicalModel::new(ctx.clone(), &weights)?;
    let load_s = t_load.elapsed().as_secs_f64();
    let t_prepare = Instant::now();
    model.prepare(w, h)?;
    let prepare_s = t_prepare.elapsed().as_secs_f64();
    model.set_profiling(true);
    let t_first = Instant::now();
    model.run(image)?;
    let first_s = t_first.elapsed().as_secs_f64();
    for _ in 1..args.warmup {
        model.run(image)?;
    }
    let mut latencies = Vec::new();
    let mut stages: Vec<(String, Vec<f64>)> = Vec::new();
    for _ in 0..args.runs.max(1) {
        let t = Instant::now();
        let p = model.run(image)?;
        latencies.push(t.elapsed().as_secs_f64() * 1e3);
        for (i, (name, ms)) in p.stage_ms.into_iter().enumerate() {
            if stages.len() <= i {
                stages.push((name, Vec::new()));
            }
            stages[i].1.push(ms);
        }
    }
    latencies.sort_by(f64::total_cmp);
    let mem = model.gpu_memory();
    let median = percentile(&latencies, 0.5);
    let stage_medians: Vec<(String, f64)> = stages
        .into_iter()
        .map(|(n, mut v)| {
            v.sort_by(f64::total_cmp);
            (n, percentile(&v, 0.5))
        })
        .collect();
    if args.json {
        let json = serde_json::json!({
            "adapter": ctx.describe(),
            "model": config.name,
            "input_size": config.input_size,
            "image": [w, h],
            "runs": latencies.len(),
            "latency_ms": {"median": median, "min": latencies[0], "p90": percentile(&latencies, 0.9)},
            "stages_gpu_ms": stage_medians.iter().map(|(n, v)| serde_json::json!({"stage": n, "median_ms": v})).collect::<Vec<_>>(),
            "gpu_memory_bytes": {"weights": mem.weights, "activations": mem.activations, "io": mem.io, "total": mem.total()},
            "dispatches": model.dispatch_count(),
            "load_s": load_s, "prepare_s": prepare_s, "first_run_s": first_s,
        });
        println!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(());
    }
    println!("adapter: {}", ctx.describe());
    println!(
        "model: {} (input {}x{}, global {} stacks x {} features, {} refiners at {}x{})",
        config.name,
        config.input_size,
        config.input_size,
        config.global.stacks,
        config.global.features,
        config.refiner_count,
        config.crop_size,
        config.crop_size
    );
    println!(
        "image: {w}x{h}, {} dispatches in one submission",
        model.dispatch_count()
    );
    println!(
        "setup: weights to GPU {:.2} s, pipelines+buffers {:.2} s, first run {:.2} s (process start to first result {:.2} s)",
        load_s,
        prepare_s,
        first_s,
        start.elapsed().as_secs_f64() - latencies.iter().sum::<f64>() / 1e3
    );
    if stage_medians.is_empty() {
        println!("per-stage GPU time: unavailable (adapter has no timestamp queries)");
    } else {
        println!("per-stage GPU time (median of {} runs):", latencies.len());
        for (name, ms) in &stage_medians {
            println!("  {name:<12} {ms:>10.2} ms");
        }
        println!(
            "  {:<12} {:>10.2} ms",
            "sum",
            stage_medians.iter().map(|(_, v)| v).sum::<f64>()
        );
    }
    println!(
        "end-to-end latency: median {:.2} ms, min {:.2} ms, p90 {:.2} ms ({} runs)",
        median,
        latencies[0],
        percentile(&latencies, 0.9),
        latencies.len()
    );
    let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
    println!(
        "GPU memory: {:.1} MiB total = weights {:.1} + activations {:.1} (after liveness reuse) + I/O {:.1}",
        mib(mem.total()),
        mib(mem.weights),
        mib(mem.activations),
        mib(mem.io)
    );
    Ok(())
}

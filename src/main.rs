//! The `sagitta` command line: library calls only.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use sagitta::gpu::{list_adapters, AdapterChoice, GpuContext};
use sagitta::{CervicalConfig, WeightFile};

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
    /// Landmarks, the 9 cervical parameters, CSV and overlays for radiographs (files, folders,
    /// lists); exit code 0 all analysed, 1 some failed, 2 could not run.
    Analyze(sagitta::analyze::AnalyzeArgs),
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
    /// Also time every distinct kernel shape of the pipeline in isolation.
    #[arg(long)]
    kernels: bool,
    /// Dispatches per timed pass for --kernels.
    #[arg(long, default_value_t = 5)]
    kernel_repeats: usize,
    /// Also run the same workloads through PyTorch (python3 tools/bench_torch.py; needs torch)
    /// and print both side by side with the ratio sagitta/torch.
    #[arg(long)]
    torch: bool,
    /// Also measure batch throughput over these image files (decoding overlapped with the GPU).
    #[arg(long, num_args = 1..)]
    batch: Vec<PathBuf>,
    /// Write the results (and the PyTorch side) as JSON to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Info { weights } => info(&cli.gpu, weights.as_ref()),
        Command::Bench(args) => bench(&cli.gpu, args),
        Command::Analyze(args) => return sagitta::analyze::main(args, &cli.gpu.choice()),
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

fn bench(gpu: &GpuArgs, args: &BenchArgs) -> AnyResult {
    let ctx = GpuContext::new(&gpu.choice())?;
    let weights = match &args.weights {
        Some(p) => WeightFile::open(p)?,
        None => WeightFile::random(CervicalConfig::paper(), 0),
    };
    let (image_width, image_height) = parse_size(&args.image)?;
    let settings = sagitta::bench::BenchSettings {
        image_width,
        image_height,
        warmup: args.warmup,
        runs: args.runs,
    };
    let report = sagitta::bench::run(ctx.clone(), &weights, &settings)?;
    let kernels = if args.kernels || args.torch {
        sagitta::bench::kernel_table(ctx, &weights, &settings, args.kernel_repeats, 3)?
    } else {
        Vec::new()
    };
    let torch = if args.torch {
        Some(sagitta::bench::run_torch(&weights, &settings, &kernels)?)
    } else {
        None
    };
    let batch = if args.batch.is_empty() {
        None
    } else {
        let mut model = sagitta::CervicalModel::new(GpuContext::new(&gpu.choice())?, &weights)?;
        Some(sagitta::bench::batch_throughput(&mut model, &args.batch)?)
    };
    let comparison = sagitta::bench::Comparison {
        sagitta: report,
        kernels,
        torch,
        batch,
    };
    if let Some(path) = &args.out {
        std::fs::write(path, serde_json::to_string_pretty(&comparison)?)?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&comparison)?);
    } else {
        println!("{comparison}");
    }
    Ok(())
}

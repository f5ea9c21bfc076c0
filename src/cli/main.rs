//! The `sagitta` command line: library calls only.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use std::sync::Arc;

use sagitta::api::EngineOptions;
use sagitta::cli::env;
use sagitta::engine::{list_adapters, AdapterChoice, GpuContext};
use sagitta::models::cervical::{CervicalConfig, CervicalModel, GreyImage};
use sagitta::nn::WeightFile;
use sagitta::ops::ConvSelection;

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
    /// Use the adapter whose name contains this text, or adapter number N as `sagitta info`
    /// numbers them (GPU k of several identical ones) (env SAGITTA_ADAPTER).
    #[arg(long, global = true)]
    adapter: Option<String>,
}

impl GpuArgs {
    fn choice(&self) -> AdapterChoice {
        AdapterChoice {
            backend: self.backend.clone(),
            name: self.adapter.clone(),
        }
        .or(env::adapter_choice())
    }

    /// The device and kernel selection the environment asks for, opened.
    fn open(&self) -> AnyResult<(Arc<GpuContext>, ConvSelection)> {
        let options = env::engine_options();
        let ctx = options.open_device(&self.choice())?;
        let (selection, notes) = options.conv_selection(&ctx);
        for note in notes {
            eprintln!("sagitta: {note}");
        }
        Ok((ctx, selection))
    }
}

#[derive(Subcommand)]
enum Command {
    /// Adapters found, the one chosen, its features and limits; with --weights, the model's metadata.
    Info {
        #[arg(long)]
        weights: Option<PathBuf>,
    },
    /// Runs a model's pipeline (cervical: per-stage GPU times) and prints latency and GPU memory.
    Bench(BenchArgs),
    /// Times every convolution kernel (direct, tiled, Winograd) for each convolution shape of
    /// the model on this adapter and saves the fastest choices; later runs build their layers
    /// with them (file: SAGITTA_TUNING, default beside the pipeline cache; `off` ignores it).
    Tune(TuneArgs),
    /// Loads weights, runs one synthetic image and exits (what `bench --cold-start` times).
    #[command(hide = true)]
    FirstResult {
        #[arg(long)]
        weights: PathBuf,
        #[arg(long, default_value = "1200x1000")]
        image: String,
    },
    /// Landmarks, the 9 cervical parameters, CSV and overlays for radiographs (files, folders,
    /// lists); exit code 0 all analysed, 1 some failed, 2 could not run.
    Analyze(sagitta::cli::analyze::AnalyzeArgs),
    /// One table from several runs' outputs (shards, resumed runs): record folders and
    /// JSON-lines files into --jsonl, CSV tables into --csv; each image once.
    Merge(sagitta::cli::merge::MergeArgs),
    /// The example viewer: shows a radiograph, runs the cervical model on the texture it shows
    /// without blocking a frame, overlays heatmaps and landmarks; drag a landmark and the
    /// parameters follow (needs a display; `xvfb-run` without one).
    #[cfg(feature = "viewer")]
    View(sagitta::cli::viewer::ViewArgs),
}

#[derive(Args)]
struct TuneArgs {
    /// Weights file of any model family; without it, random weights of `--model` in the
    /// paper's configuration.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// The model family tuned without --weights: cervical, csm or wholespine.
    #[arg(long, default_value = "cervical", value_parser = ["cervical", "csm", "wholespine", "lumbar"])]
    model: String,
    /// Size of the synthetic original image (width x height).
    #[arg(long, default_value = "1200x1000")]
    image: String,
    /// Dispatches per timed pass.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Timed passes per kernel (the median counts).
    #[arg(long, default_value_t = 3)]
    samples: usize,
    /// Print the table without saving it.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Args)]
struct BenchArgs {
    /// Weights file of any model family; without it, random weights of `--model` in the
    /// paper's configuration.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// The model family benchmarked without --weights: cervical, csm, wholespine or lumbar (only
    /// the cervical model has per-stage GPU times).
    #[arg(long, default_value = "cervical", value_parser = ["cervical", "csm", "wholespine", "lumbar"])]
    model: String,
    /// Timed runs after warm-up (0: load and prepare only, e.g. for the GPU memory).
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
    /// f32, or f16: f16 activations; with the adapter's shader-f16 also f16 convolution
    /// products (f32 accumulation), without it activations packed two to a u32.
    #[arg(long, default_value = "f32")]
    precision: sagitta::engine::Precision,
    /// Also time every distinct kernel shape of the pipeline in isolation.
    #[arg(long)]
    kernels: bool,
    /// Dispatches per timed pass for --kernels.
    #[arg(long, default_value_t = 5)]
    kernel_repeats: usize,
    /// Also run the same workloads through PyTorch (python3 tools/bench_torch.py; needs torch)
    /// and print both side by side with the ratio sagitta/torch (the pipeline, and with
    /// --kernels every kernel shape).
    #[arg(long)]
    torch: bool,
    /// Also measure batch throughput over these image files (decoding overlapped with the GPU).
    #[arg(long, num_args = 1..)]
    batch: Vec<PathBuf>,
    /// Also time process start to first result in a fresh process, with an empty and with a
    /// warm pipeline cache.
    #[arg(long)]
    cold_start: bool,
    /// Write the results (and the PyTorch side) as JSON to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write the per-kernel comparison as an SVG bar chart to this file.
    #[arg(long)]
    chart: Option<PathBuf>,
    /// The lumbar model: refine the labeller's present levels only (two submissions) or all 24
    /// (one submission).
    #[arg(long, default_value = "present", value_parser = ["present", "all"])]
    refine_levels: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Info { weights } => info(&cli.gpu, weights.as_ref()),
        Command::Bench(args) => bench(&cli.gpu, args),
        Command::Tune(args) => tune(&cli.gpu, args),
        Command::FirstResult { weights, image } => first_result(&cli.gpu, weights, image),
        #[cfg(feature = "viewer")]
        Command::View(args) => {
            return ExitCode::from(sagitta::cli::viewer::main(args));
        }
        Command::Merge(args) => return sagitta::cli::merge::main(args),
        Command::Analyze(args) => {
            let mut args = args.clone();
            args.shard = args.shard.or_else(env::slurm_shard);
            return sagitta::cli::analyze::main(&args, &cli.gpu.choice(), &env::engine_options());
        }
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
    for (number, a) in adapters.iter().enumerate() {
        println!(
            "  {number}: {} ({:?}, {:?}, driver: {} {})",
            a.info.name, a.info.backend, a.info.device_type, a.info.driver, a.info.driver_info
        );
    }
    let options: EngineOptions = env::engine_options();
    match options.open_device(&choice) {
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
            for (name, feature) in [
                ("shader-f16", wgpu::Features::SHADER_F16),
                ("subgroups", wgpu::Features::SUBGROUP),
                ("timestamp queries", wgpu::Features::TIMESTAMP_QUERY),
                ("pipeline cache", wgpu::Features::PIPELINE_CACHE),
                (
                    "cooperative matrix",
                    wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX,
                ),
            ] {
                println!(
                    "  {:<20} {}",
                    format!("{name}:"),
                    yes(all.contains(feature))
                );
            }
            let tensor_cores = if !all.contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX) {
                "unavailable (the adapter has no cooperative matrices)".to_string()
            } else if sagitta::ops::conv2d::coop::cooperative_matrix_usable(&ctx) {
                "on for --precision f16 (self-check passed)".to_string()
            } else if options.device.cooperative_matrix {
                match ctx.cooperative_matrix_problem() {
                    Some(problem) => format!("off ({problem})"),
                    None => "off (no 16x16x16 f16 configuration, or limits)".to_string(),
                }
            } else {
                "off (opt in with SAGITTA_COOPERATIVE_MATRIX=on)".to_string()
            };
            println!("tensor-core convolution: {tensor_cores}");
            let (selection, notes) = options.conv_selection(&ctx);
            for note in notes {
                println!("kernel tuning: {note}");
            }
            match options.tuning.path_for(&ctx.info) {
                Some(path) if selection.tuned_shapes() > 0 => println!(
                    "kernel tuning: {} shapes measured ({})",
                    selection.tuned_shapes(),
                    path.display()
                ),
                _ => println!("kernel tuning: none (heuristics; run `sagitta tune`)"),
            }
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
        let (arch, json, metadata) = WeightFile::read_metadata(path)?;
        if arch != sagitta::models::cervical::CERVICAL_ARCH {
            return other_family_weights(path, &arch, &json, &metadata);
        }
        let config = CervicalConfig::from_metadata(path, &arch, &json)?;
        println!("weights: {}", path.display());
        println!("  architecture: {arch}");
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
            // Training histories can be long: show the start.
            let shown: String = v.chars().take(160).collect();
            let more = if v.chars().count() > 160 { " ..." } else { "" };
            println!("  metadata {k}: {shown}{more}");
        }
    }
    Ok(())
}

/// `sagitta info --weights` for a file of another family than the cervical one: its
/// configuration checked by the family's own reader, then every field as the file states it.
fn other_family_weights(
    path: &std::path::Path,
    arch: &str,
    json: &serde_json::Value,
    metadata: &std::collections::HashMap<String, String>,
) -> AnyResult {
    use sagitta::models::{csm, lumbar, wholespine, Family, REGISTRY};
    let family = REGISTRY
        .iter()
        .find(|(name, _)| *name == arch)
        .map(|(_, family)| *family);
    match family {
        Some(Family::Csm) => drop(csm::CsmConfig::from_metadata(path, arch, json)?),
        Some(Family::WholeSpine) => drop(wholespine::WholeSpineConfig::from_metadata(
            path, arch, json,
        )?),
        Some(Family::Lumbar) => drop(lumbar::LumbarConfig::from_metadata(path, arch, json)?),
        Some(Family::Cervical) | None => {
            return Err(format!(
                "{}: unknown architecture '{arch}' (supported: {})",
                path.display(),
                sagitta::models::architecture_names().join(", ")
            )
            .into())
        }
    }
    println!("weights: {}", path.display());
    println!("  architecture: {arch}");
    if let Some(fields) = json.as_object() {
        for (key, value) in fields.iter().filter(|(k, _)| !matches!(k.as_str(), "arch")) {
            println!("  {key}: {value}");
        }
    }
    let mut entries: Vec<_> = metadata
        .iter()
        .filter(|(k, _)| k.as_str() != "sagitta")
        .collect();
    entries.sort();
    for (k, v) in entries {
        let shown: String = v.chars().take(160).collect();
        let more = if v.chars().count() > 160 { " ..." } else { "" };
        println!("  metadata {k}: {shown}{more}");
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
    let (ctx, selection) = gpu.open()?;
    let weights = match (&args.weights, args.model.as_str()) {
        (Some(p), _) => WeightFile::open(p)?,
        (None, "csm") => sagitta::models::csm::CsmConfig::paper().random_weights(0),
        (None, "wholespine") => {
            sagitta::models::wholespine::WholeSpineConfig::paper().random_weights(0)
        }
        (None, "lumbar") => sagitta::models::lumbar::LumbarConfig::paper().random_weights(0),
        (None, _) => CervicalConfig::paper().random_weights(0),
    };
    let family = sagitta::models::family_of(&weights)?;
    if family != sagitta::models::Family::Cervical && (!args.batch.is_empty() || args.cold_start) {
        return Err("--batch and --cold-start run the cervical model only".into());
    }
    let (image_width, image_height) = parse_size(&args.image)?;
    let settings = sagitta::bench::BenchSettings {
        image_width,
        image_height,
        warmup: args.warmup,
        runs: args.runs,
        precision: args.precision,
        selection: selection.clone(),
    };
    let report = match family {
        sagitta::models::Family::Cervical => sagitta::bench::run(ctx.clone(), &weights, &settings)?,
        sagitta::models::Family::Csm => sagitta::bench::run_csm(ctx.clone(), &weights, &settings)?,
        sagitta::models::Family::WholeSpine => {
            sagitta::bench::run_wholespine(ctx.clone(), &weights, &settings)?
        }
        sagitta::models::Family::Lumbar => {
            let refine = match args.refine_levels.as_str() {
                "all" => sagitta::models::lumbar::RefineLevels::All,
                _ => sagitta::models::lumbar::RefineLevels::Present,
            };
            sagitta::bench::run_lumbar(ctx.clone(), &weights, &settings, refine)?
        }
    };
    let kernels = if args.kernels {
        sagitta::bench::kernel_table(ctx, &weights, &settings, args.kernel_repeats, 3)?
    } else {
        Vec::new()
    };
    let torch = if args.torch {
        // SAGITTA_PYTHON picks the interpreter, SAGITTA_TORCH_DEVICE cpu or cuda.
        let runner = sagitta::bench::TorchRunner {
            python: std::env::var("SAGITTA_PYTHON").unwrap_or_else(|_| "python3".into()),
            device: std::env::var("SAGITTA_TORCH_DEVICE").ok(),
        };
        // A failing PyTorch side does not lose sagitta's numbers: they are printed and written,
        // then the command fails with PyTorch's error.
        match sagitta::bench::run_torch(&weights, &settings, &kernels, &runner) {
            Ok(report) => (Some(report), None),
            Err(e) => (None, Some(e.to_string())),
        }
    } else {
        (None, None)
    };
    let (torch, torch_error) = torch;
    let batch = if args.batch.is_empty() {
        None
    } else {
        let (ctx, selection) = gpu.open()?;
        let mut model = CervicalModel::with_selection(ctx, &weights, &selection)?;
        model.set_precision(args.precision)?;
        Some(sagitta::bench::batch_throughput(&mut model, &args.batch)?)
    };
    let cold_start = if args.cold_start {
        Some(cold_start(gpu, &weights, &args.image)?)
    } else {
        None
    };
    let comparison = sagitta::bench::Comparison {
        sagitta: report,
        kernels,
        torch,
        torch_error: torch_error.clone(),
        batch,
        cold_start,
    };
    if let Some(path) = &args.out {
        std::fs::write(path, serde_json::to_string_pretty(&comparison)?)?;
    }
    if let Some(path) = &args.chart {
        std::fs::write(path, comparison.svg_chart())?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&comparison)?);
    } else {
        println!("{comparison}");
    }
    match torch_error {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

fn tune(gpu: &GpuArgs, args: &TuneArgs) -> AnyResult {
    let options = env::engine_options();
    let ctx = options.open_device(&gpu.choice())?;
    let weights = match (&args.weights, args.model.as_str()) {
        (Some(p), _) => WeightFile::open(p)?,
        (None, "csm") => sagitta::models::csm::CsmConfig::paper().random_weights(0),
        (None, "wholespine") => {
            sagitta::models::wholespine::WholeSpineConfig::paper().random_weights(0)
        }
        (None, "lumbar") => sagitta::models::lumbar::LumbarConfig::paper().random_weights(0),
        (None, _) => CervicalConfig::paper().random_weights(0),
    };
    let image = parse_size(&args.image)?;
    // Any model's dispatch plan: tuning is keyed by convolution shape.
    let plan = sagitta::models::dispatch_plan(ctx.clone(), &weights, image)?;
    println!("adapter: {}", ctx.describe());
    println!(
        "{:<32} {:>10} {:>10} {:>10}  fastest",
        "convolution", "direct", "tiled", "winograd"
    );
    let table = sagitta::ops::conv2d::tune::tune_plan(
        &ctx,
        &plan,
        args.repeats,
        args.samples,
        |key, tuned| {
            let ms = |name: &str| {
                tuned
                    .times_ms
                    .get(name)
                    .map_or("-".to_string(), |t| format!("{t:.3}"))
            };
            println!(
                "{:<32} {:>10} {:>10} {:>10}  {}",
                key.to_string(),
                ms("direct"),
                ms("tiled"),
                ms("winograd"),
                tuned.algorithm
            );
        },
    )?;
    if args.dry_run {
        println!("{} shapes measured (not saved)", table.entries.len());
    } else {
        let path = options.tuning.path_for(&ctx.info).ok_or(
            "SAGITTA_TUNING is off and there is no cache folder: nowhere to write the tuning",
        )?;
        // Shapes measured before (other models) stay; the ones measured now replace theirs.
        let mut merged = sagitta::ops::conv2d::tune::TuningTable::read(&path, &ctx.info)
            .ok()
            .flatten()
            .unwrap_or_else(|| table.clone());
        let measured = table.entries.len();
        merged.entries.extend(table.entries);
        let path = merged.save_to(&path)?;
        println!(
            "{measured} shapes measured, {} in the table saved to {}",
            merged.entries.len(),
            path.display()
        );
    }
    Ok(())
}

fn first_result(gpu: &GpuArgs, weights: &PathBuf, image: &str) -> AnyResult {
    let (ctx, selection) = gpu.open()?;
    let weights = WeightFile::open(weights)?;
    let (width, height) = parse_size(image)?;
    let pixels = sagitta::bench::synthetic_image(width, height);
    let mut model = CervicalModel::with_selection(ctx, &weights, &selection)?;
    model.run(GreyImage {
        width,
        height,
        pixels: &pixels,
    })?;
    Ok(())
}

/// Times `sagitta first-result` as fresh processes: the first with an empty pipeline cache, the
/// second with the cache the first one left.
fn cold_start(
    gpu: &GpuArgs,
    weights: &WeightFile,
    image: &str,
) -> AnyResult<sagitta::bench::ColdStart> {
    let dir = std::env::temp_dir().join(format!("sagitta-cold-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let weights_path = dir.join("weights.safetensors");
    weights.save_f32(&weights_path)?;
    let cache = dir.join("pipeline-cache");
    let exe = std::env::current_exe()?;
    let mut times = Vec::new();
    for _ in 0..2 {
        let mut command = std::process::Command::new(&exe);
        command
            .env("SAGITTA_PIPELINE_CACHE", &cache)
            .arg("first-result")
            .arg("--weights")
            .arg(&weights_path)
            .arg("--image")
            .arg(image);
        if let Some(b) = &gpu.backend {
            command.arg("--backend").arg(b);
        }
        if let Some(a) = &gpu.adapter {
            command.arg("--adapter").arg(a);
        }
        let start = std::time::Instant::now();
        let status = command.status()?;
        if !status.success() {
            return Err(format!("the cold-start child process failed ({status})").into());
        }
        times.push(start.elapsed().as_secs_f64());
    }
    let cache_bytes = std::fs::read_dir(&cache)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(sagitta::bench::ColdStart {
        empty_cache_s: times[0],
        warm_cache_s: times[1],
        cache_bytes,
    })
}

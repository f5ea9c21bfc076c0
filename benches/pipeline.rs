//! `cargo bench`: the paper-size cervical pipeline (1024 input, 2-stack global network, six
//! 128x128 refiners) with random weights, on the adapter sagitta picks (SAGITTA_BACKEND /
//! SAGITTA_ADAPTER to choose). Prints per-stage GPU times, latency and GPU memory.
//! SAGITTA_BENCH_RUNS sets the number of timed runs (default 5; lavapipe needs minutes per run).

use sagitta::bench::{run, BenchSettings};
use sagitta::cli::env;
use sagitta::CervicalConfig;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runs = std::env::var("SAGITTA_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let options = env::engine_options();
    let ctx = options.open_device(&env::adapter_choice())?;
    let (selection, _) = options.conv_selection(&ctx);
    let weights = CervicalConfig::paper().random_weights(0);
    let settings = BenchSettings {
        image_width: 1200,
        image_height: 1000,
        warmup: 1,
        runs,
        precision: Default::default(),
        selection,
    };
    println!("{}", run(ctx, &weights, &settings)?);
    Ok(())
}

//! The command line's environment: `SAGITTA_*` variables and the per-user cache folder mapped
//! onto the library's options. Only the command line reads these; the library reads none.

use std::path::PathBuf;

use crate::api::{EngineOptions, TuningSource};
use crate::engine::{AdapterChoice, DeviceOptions};
use crate::ops::ConvAlgorithm;

fn non_empty(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|v| !v.trim().is_empty())
}

/// `SAGITTA_BACKEND` and `SAGITTA_ADAPTER`.
pub fn adapter_choice() -> AdapterChoice {
    AdapterChoice {
        backend: non_empty("SAGITTA_BACKEND"),
        name: non_empty("SAGITTA_ADAPTER"),
    }
}

/// `$XDG_CACHE_HOME/sagitta` or `~/.cache/sagitta`.
pub fn cache_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .map(|d| d.join("sagitta"))
}

/// `SAGITTA_PIPELINE_CACHE`: a directory for the driver's pipeline cache, or `off`; by default
/// [`cache_dir`].
fn pipeline_cache_dir() -> Option<PathBuf> {
    match std::env::var("SAGITTA_PIPELINE_CACHE") {
        Ok(v) if v == "off" || v.is_empty() => None,
        Ok(v) => Some(v.into()),
        Err(_) => cache_dir(),
    }
}

/// `SAGITTA_TUNING`: a file, or `off`; by default the adapter's file in [`cache_dir`].
pub fn tuning_source() -> TuningSource {
    match std::env::var("SAGITTA_TUNING") {
        Ok(v) if v == "off" || v.is_empty() => TuningSource::Off,
        Ok(v) => TuningSource::File(v.into()),
        Err(_) => cache_dir().map_or(TuningSource::Off, TuningSource::Folder),
    }
}

/// The engine options of the command line:
/// - `SAGITTA_PIPELINE_CACHE` (see [`pipeline_cache_dir`]),
/// - `SAGITTA_COOPERATIVE_MATRIX=on`: tensor cores where the adapter has them (experimental),
/// - `SAGITTA_F16_STORAGE=packed`: f16 activations packed in u32 even with `shader-f16`,
/// - `SAGITTA_TUNING` (see [`tuning_source`]),
/// - `SAGITTA_CONV_ALGORITHM=direct|tiled|winograd`: one kernel for every convolution.
pub fn engine_options() -> EngineOptions {
    EngineOptions {
        device: DeviceOptions {
            pipeline_cache_dir: pipeline_cache_dir(),
            cooperative_matrix: std::env::var("SAGITTA_COOPERATIVE_MATRIX")
                .is_ok_and(|v| v == "on"),
            packed_f16: std::env::var("SAGITTA_F16_STORAGE").is_ok_and(|v| v == "packed"),
        },
        tuning: tuning_source(),
        conv_algorithm: non_empty("SAGITTA_CONV_ALGORITHM")
            .and_then(|name| ConvAlgorithm::parse(&name)),
    }
}

/// The shard of a (contiguous) Slurm job array (`--shard`'s default): task `SLURM_ARRAY_TASK_ID` of
/// `SLURM_ARRAY_TASK_COUNT`, counted from `SLURM_ARRAY_TASK_MIN` (arrays may start at 0 or 1).
pub fn slurm_shard() -> Option<crate::cli::analyze::Shard> {
    let number = |name: &str| non_empty(name)?.trim().parse::<u64>().ok();
    let id = number("SLURM_ARRAY_TASK_ID")?;
    let count = number("SLURM_ARRAY_TASK_COUNT")?;
    let min = number("SLURM_ARRAY_TASK_MIN").unwrap_or(0);
    let shard = id.checked_sub(min)? + 1;
    crate::cli::analyze::parse_shard(&format!("{shard}/{count}")).ok()
}

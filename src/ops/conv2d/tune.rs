//! Measured kernel choice: which convolution kernel (direct, tiled, Winograd) is fastest for each
//! convolution shape of a model on this adapter.
//!
//! The fastest kernel depends on the adapter more than on the arithmetic: on lavapipe the direct
//! kernel beats the shared-memory ones at 16-64 channels (workgroup barriers are coroutine
//! switches there), while on GPUs and at paper size the tiled and Winograd kernels win. Heuristics
//! tuned on one device are wrong on another, so `sagitta tune` times every candidate on the
//! adapter at hand and writes a table beside the pipeline cache; layers are built with the
//! measured winner when the table has their shape, by [`ConvAlgorithm::auto_for`] otherwise.
//! Tuning is keyed by convolution shape, not by model: [`tune_plan`] measures every distinct
//! convolution of any plan.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crate::engine::buffers::{storage_buffer, upload};
use crate::engine::{GpuContext, PipelineCache, Plan};
use crate::error::{Result, SagittaError};

use super::{
    BatchNorm, ConvAlgorithm, ConvGeometry, ConvKey, ConvLayer, ConvStep, ConvWeights,
    WeightStorage,
};

/// One measured shape: every candidate's median time and the winner.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TunedConv {
    pub algorithm: String,
    pub times_ms: BTreeMap<String, f64>,
}

/// The measured choices for one adapter.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct TuningTable {
    pub adapter: String,
    pub driver: String,
    pub entries: BTreeMap<String, TunedConv>,
}

/// The largest tuning table read (a measured table is a few KiB).
pub const MAX_TUNING_BYTES: u64 = 1 << 20;

/// A tuning key as [`ConvKey`]'s `Display` writes it (`k3 s1 64->64 px1024 g1`, `k1x7 s2x1 ...`).
pub fn parse_key(text: &str) -> Option<ConvKey> {
    let pair = |field: &str| -> Option<(u32, u32)> {
        match field.split_once('x') {
            Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
            None => {
                let v = field.parse().ok()?;
                Some((v, v))
            }
        }
    };
    let mut parts = text.split(' ');
    let (kh, kw) = pair(parts.next()?.strip_prefix('k')?)?;
    let stride = pair(parts.next()?.strip_prefix('s')?)?;
    let (in_c, out_c) = parts.next()?.split_once("->")?;
    let out_pixels = parts.next()?.strip_prefix("px")?.parse().ok()?;
    let weight_sets = parts.next()?.strip_prefix('g')?.parse().ok()?;
    if parts.next().is_some() {
        return None;
    }
    Some(ConvKey {
        kh,
        kw,
        stride,
        in_c: in_c.parse().ok()?,
        out_c: out_c.parse().ok()?,
        out_pixels,
        weight_sets,
    })
}

pub fn algorithm_name(a: ConvAlgorithm) -> &'static str {
    a.name()
}

pub fn parse_algorithm(name: &str) -> Option<ConvAlgorithm> {
    ConvAlgorithm::parse(name)
}

impl TuningTable {
    /// The file name a table for this adapter and driver gets in a cache directory.
    pub fn file_name(info: &wgpu::AdapterInfo) -> String {
        let name: String = format!("{}-{}", info.name, info.driver_info)
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        format!("tuning-{name}.json")
    }

    /// The table in `path` if it was measured on this adapter and driver; a table for another
    /// one, a missing file or an unreadable one is ignored (the heuristics apply).
    pub fn load_from(path: &Path, info: &wgpu::AdapterInfo) -> Option<Self> {
        Self::read(path, info).ok().flatten()
    }

    /// The table in `path`: `Ok(None)` when the file is missing or was measured on another
    /// adapter or driver, `Err` with the reason when it cannot be read. Entries that name a
    /// kernel which cannot run their shape are dropped (see [`Self::read_with_notes`]).
    pub fn read(
        path: &Path,
        info: &wgpu::AdapterInfo,
    ) -> std::result::Result<Option<Self>, String> {
        Ok(Self::read_with_notes(path, info)?.map(|(table, _)| table))
    }

    /// As [`Self::read`], with one line per dropped entry: an entry that names an unknown
    /// kernel, or one that cannot run its shape (Winograd for anything but a 3x3 stride-1
    /// convolution), is ignored, and the heuristic chooses for that shape. The file must be a
    /// regular file of at most [`MAX_TUNING_BYTES`] (checked before it is read).
    pub fn read_with_notes(
        path: &Path,
        info: &wgpu::AdapterInfo,
    ) -> std::result::Result<Option<(Self, Vec<String>)>, String> {
        let bytes = match crate::util::read_regular_file(path, MAX_TUNING_BYTES, "tuning tables") {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.to_string()),
        };
        let mut table: Self = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
        if table.adapter != info.name || table.driver != info.driver_info {
            return Ok(None);
        }
        let notes = table.drop_unusable();
        Ok(Some((table, notes)))
    }

    /// Removes the entries whose kernel is unknown or cannot run their shape; says which.
    pub fn drop_unusable(&mut self) -> Vec<String> {
        let mut notes = Vec::new();
        self.entries.retain(|key, tuned| {
            let problem = match (parse_algorithm(&tuned.algorithm), parse_key(key)) {
                (None, _) => Some(format!(
                    "'{key}' names the unknown kernel '{}'",
                    tuned.algorithm
                )),
                (Some(algorithm), Some(parsed)) if !parsed.candidates().contains(&algorithm) => {
                    Some(format!(
                        "'{key}' names {}, which cannot run that shape",
                        tuned.algorithm
                    ))
                }
                _ => None,
            };
            if let Some(problem) = &problem {
                notes.push(problem.clone());
            }
            problem.is_none()
        });
        notes
    }

    /// Writes the table to `path` (its folder is created).
    pub fn save_to(&self, path: &Path) -> Result<PathBuf> {
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| SagittaError::Config(format!("tuning table: {e}")))?;
        path.parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(path, text))
            .map_err(|e| {
                SagittaError::Config(format!(
                    "cannot write the tuning table to {}: {e} (choose a writable file)",
                    path.display()
                ))
            })?;
        Ok(path.to_path_buf())
    }

    /// The measured kernel for `key`; `None` (the heuristic chooses) when the table has no
    /// entry for it or its entry names a kernel that cannot run it.
    pub fn algorithm(&self, key: &ConvKey) -> Option<ConvAlgorithm> {
        self.entries
            .get(&key.to_string())
            .and_then(|t| parse_algorithm(&t.algorithm))
            .filter(|algorithm| key.candidates().contains(algorithm))
    }
}

/// The tuning key of a convolution step of a plan (None for other kernels).
pub fn conv_key(step: &crate::engine::Step) -> Option<ConvKey> {
    ConvStep::of(step).map(|c| c.key)
}

/// Deterministic values in [-1, 1) (the timing does not depend on them).
fn filler(len: usize, salt: usize) -> Vec<f32> {
    (0..len)
        .map(|i| ((i.wrapping_add(salt).wrapping_mul(2654435761) % 2001) as f32 / 1000.0) - 1.0)
        .collect()
}

/// Median milliseconds per dispatch of one convolution site run by `algorithm`.
fn time_site(
    ctx: &Arc<GpuContext>,
    pipelines: &mut PipelineCache,
    site: &ConvStep,
    algorithm: ConvAlgorithm,
    repeats: usize,
    samples: usize,
) -> Result<f64> {
    let key = site.key;
    let (in_c, out_c) = (key.in_c as usize, key.out_c as usize);
    let (kh, kw) = (key.kh as usize, key.kw as usize);
    let per_set = out_c * in_c * kh * kw;
    let scale = 1.0 / ((in_c * kh * kw) as f32).sqrt();
    let convs: Vec<ConvWeights> = (0..key.weight_sets as usize)
        .map(|g| ConvWeights {
            out_c,
            in_c,
            kh,
            kw,
            weight: filler(per_set, g).iter().map(|w| w * scale).collect(),
            bias: filler(out_c, g + 7),
            storage: WeightStorage::F32,
        })
        .collect();
    let prologue = site.prologue.then(|| {
        let bn = BatchNorm {
            scale: vec![1.0; in_c],
            shift: vec![0.1; in_c],
        };
        vec![bn; key.weight_sets as usize]
    });
    let layer = ConvLayer::with_algorithm(
        ctx,
        "tune",
        &convs,
        ConvGeometry {
            stride: key.stride,
            pad: site.pad,
        },
        site.activation,
        prologue.as_deref(),
        algorithm,
    )?;
    let mut plan = Plan::new();
    let unused = plan.bound("unused", &[4], storage_buffer(ctx, "unused", 16));
    let n = site.params.batch;
    let in_shape = [n, key.in_c, site.params.in_h, site.params.in_w];
    let input_len = in_shape.iter().product::<u32>() as usize;
    let input = plan.bound_activation(
        "input",
        &in_shape,
        upload(ctx, "input", &filler(input_len, 1)),
    );
    let (oh, ow) = layer
        .output_size(site.params.in_h, site.params.in_w)
        .ok_or_else(|| SagittaError::InvalidInput("tuned convolution has no output".into()))?;
    let residual = site.residual.then(|| {
        let shape = [n, key.out_c, oh, ow];
        let len = shape.iter().product::<u32>() as usize;
        plan.bound_activation("residual", &shape, upload(ctx, "residual", &filler(len, 2)))
    });
    plan.begin_stage("tune");
    for r in 0..repeats.max(1) {
        layer.apply(&mut plan, &format!("tune{r}"), input, residual, unused)?;
    }
    let compiled = plan.compile(ctx, pipelines)?;
    let mut times = Vec::new();
    // The first pass builds pipelines and warms caches.
    for sample in 0..=samples.max(1) {
        let ms = match compiled.gpu_time_ms()? {
            Some(ms) => ms,
            None => {
                let start = Instant::now();
                compiled.run_and_read(&[])?;
                start.elapsed().as_secs_f64() * 1e3
            }
        };
        if sample > 0 {
            times.push(ms / repeats.max(1) as f64);
        }
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// Times every candidate kernel for every distinct convolution shape of `plan` (any model's
/// dispatch plan) and returns the table; build layers with it through
/// [`super::ConvSelection::tuning`].
pub fn tune_plan(
    ctx: &Arc<GpuContext>,
    plan: &Plan,
    repeats: usize,
    samples: usize,
    mut progress: impl FnMut(&ConvKey, &TunedConv),
) -> Result<TuningTable> {
    let mut sites: Vec<ConvStep> = Vec::new();
    for site in plan.steps().iter().filter_map(ConvStep::of) {
        if !sites.iter().any(|s| s.key == site.key) {
            sites.push(site);
        }
    }
    let mut table = TuningTable {
        adapter: ctx.info.name.clone(),
        driver: ctx.info.driver_info.clone(),
        entries: BTreeMap::new(),
    };
    let mut pipelines = PipelineCache::default();
    for site in &sites {
        let mut times_ms = BTreeMap::new();
        let mut best = (f64::INFINITY, ConvAlgorithm::Direct);
        for algorithm in site.key.candidates() {
            let ms = time_site(ctx, &mut pipelines, site, algorithm, repeats, samples)?;
            times_ms.insert(algorithm_name(algorithm).to_string(), ms);
            if ms < best.0 {
                best = (ms, algorithm);
            }
        }
        let tuned = TunedConv {
            algorithm: algorithm_name(best.1).to_string(),
            times_ms,
        };
        progress(&site.key, &tuned);
        table.entries.insert(site.key.to_string(), tuned);
    }
    Ok(table)
}

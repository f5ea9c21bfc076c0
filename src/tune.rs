//! Measured kernel choice: which convolution kernel (direct, tiled, Winograd) is fastest for each
//! convolution shape of a model on this adapter.
//!
//! The fastest kernel depends on the adapter more than on the arithmetic: on lavapipe the direct
//! kernel beats the shared-memory ones at 16-64 channels (workgroup barriers are coroutine
//! switches there), while on GPUs and at paper size the tiled and Winograd kernels win. Heuristics
//! tuned on one device are wrong on another, so `sagitta tune` times every candidate on the
//! adapter at hand and writes a table beside the pipeline cache; layers are built with the
//! measured winner when the table has their shape, by [`crate::ops::ConvAlgorithm::auto_for`]
//! otherwise.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use crate::cervical::CervicalModel;
use crate::error::{Result, SagittaError};
use crate::gpu::GpuContext;
use crate::ops::{self, BatchNorm, ConvAlgorithm, ConvLayer, ConvWeights};
use crate::plan::{PipelineCache, Plan, Step};
use crate::weights::WeightFile;

/// The geometry that decides a convolution's kernel. Fusions (prologue, residual, ReLU) cost the
/// same in every kernel and are not part of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConvKey {
    pub k: u32,
    pub stride: u32,
    pub in_c: u32,
    pub out_c: u32,
    /// Output pixels per sample.
    pub out_pixels: u32,
    /// Weight sets, one per sample (1: shared weights, batch 1).
    pub groups: u32,
}

impl std::fmt::Display for ConvKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "k{} s{} {}->{} px{} g{}",
            self.k, self.stride, self.in_c, self.out_c, self.out_pixels, self.groups
        )
    }
}

impl ConvKey {
    pub fn candidates(&self) -> Vec<ConvAlgorithm> {
        let mut all = vec![ConvAlgorithm::Direct, ConvAlgorithm::Tiled];
        if self.k == 3 && self.stride == 1 {
            all.push(ConvAlgorithm::Winograd);
        }
        all
    }
}

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

pub fn algorithm_name(a: ConvAlgorithm) -> &'static str {
    match a {
        ConvAlgorithm::Direct => "direct",
        ConvAlgorithm::Tiled => "tiled",
        ConvAlgorithm::Winograd => "winograd",
        ConvAlgorithm::Auto => "auto",
    }
}

pub fn parse_algorithm(name: &str) -> Option<ConvAlgorithm> {
    match name {
        "direct" => Some(ConvAlgorithm::Direct),
        "tiled" => Some(ConvAlgorithm::Tiled),
        "winograd" => Some(ConvAlgorithm::Winograd),
        _ => None,
    }
}

impl TuningTable {
    /// `SAGITTA_TUNING`: a file, or `off`; by default `tuning-<adapter>.json` in the pipeline
    /// cache directory.
    pub fn path_for(info: &wgpu::AdapterInfo) -> Option<PathBuf> {
        match std::env::var("SAGITTA_TUNING") {
            Ok(v) if v == "off" || v.is_empty() => None,
            Ok(v) => Some(v.into()),
            Err(_) => {
                let name: String = format!("{}-{}", info.name, info.driver_info)
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                    .collect();
                Some(crate::gpu::cache_dir()?.join(format!("tuning-{name}.json")))
            }
        }
    }

    /// The table for this adapter, if one was measured (see [`Self::load_from`]).
    pub fn load_for(info: &wgpu::AdapterInfo) -> Option<Self> {
        Self::load_from(&Self::path_for(info)?, info)
    }

    /// The table in `path` if it was measured on this adapter and driver; a table for another
    /// one, or an unreadable file, is ignored (the heuristics apply).
    pub fn load_from(path: &std::path::Path, info: &wgpu::AdapterInfo) -> Option<Self> {
        let text = std::fs::read_to_string(path).ok()?;
        let table: Self = match serde_json::from_str(&text) {
            Ok(table) => table,
            Err(e) => {
                eprintln!(
                    "sagitta: ignoring the tuning table {} ({e}); run `sagitta tune` again",
                    path.display()
                );
                return None;
            }
        };
        (table.adapter == info.name && table.driver == info.driver_info).then_some(table)
    }

    pub fn save(&self, info: &wgpu::AdapterInfo) -> Result<PathBuf> {
        let path = Self::path_for(info).ok_or_else(|| {
            SagittaError::Config("SAGITTA_TUNING is off: nowhere to write the tuning".into())
        })?;
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| SagittaError::Config(format!("tuning table: {e}")))?;
        path.parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&path, text))
            .map_err(|e| {
                SagittaError::Config(format!(
                    "cannot write the tuning table to {}: {e} (set SAGITTA_TUNING to a writable file)",
                    path.display()
                ))
            })?;
        Ok(path)
    }

    pub fn algorithm(&self, key: &ConvKey) -> Option<ConvAlgorithm> {
        self.entries
            .get(&key.to_string())
            .and_then(|t| parse_algorithm(&t.algorithm))
    }
}

/// One convolution step of a plan, as the tuner re-creates it.
#[derive(Debug, Clone)]
struct ConvSite {
    key: ConvKey,
    n: u32,
    in_h: u32,
    in_w: u32,
    pad: u32,
    prologue: bool,
    residual: bool,
    relu: bool,
}

fn override_u32(step: &Step, name: &str) -> u32 {
    step.overrides
        .iter()
        .find(|(k, _)| *k == name)
        .map_or(0, |(_, v)| *v as u32)
}

/// The tuning key of a convolution step of a plan (None for other kernels).
pub fn conv_key(step: &Step) -> Option<ConvKey> {
    if !step.kernel.name.starts_with("conv2d") {
        return None;
    }
    // Every convolution's uniform block: shape words, then the middle word, then the strides.
    let p = &step.params;
    let per_sample = p[9] != 0;
    Some(ConvKey {
        k: override_u32(step, "K"),
        stride: override_u32(step, "STRIDE"),
        in_c: p[1],
        out_c: p[4],
        out_pixels: p[5] * p[6],
        groups: if per_sample { p[0] } else { 1 },
    })
}

fn conv_site(step: &Step) -> Option<ConvSite> {
    let key = conv_key(step)?;
    let p = &step.params;
    let o = |name: &str| override_u32(step, name);
    Some(ConvSite {
        key,
        n: p[0],
        in_h: p[2],
        in_w: p[3],
        pad: o("PAD"),
        prologue: o("PROLOGUE") != 0,
        residual: o("RESIDUAL") != 0,
        relu: o("RELU") != 0,
    })
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
    site: &ConvSite,
    algorithm: ConvAlgorithm,
    repeats: usize,
    samples: usize,
) -> Result<f64> {
    let key = site.key;
    let (in_c, out_c, k) = (key.in_c as usize, key.out_c as usize, key.k as usize);
    let per_group = out_c * in_c * k * k;
    let scale = 1.0 / ((in_c * k * k) as f32).sqrt();
    let convs: Vec<ConvWeights> = (0..key.groups as usize)
        .map(|g| ConvWeights {
            out_c,
            in_c,
            k,
            weight: filler(per_group, g).iter().map(|w| w * scale).collect(),
            bias: filler(out_c, g + 7),
        })
        .collect();
    let prologue = site.prologue.then(|| {
        let bn = BatchNorm {
            scale: vec![1.0; in_c],
            shift: vec![0.1; in_c],
        };
        vec![bn; key.groups as usize]
    });
    let layer = ConvLayer::with_algorithm(
        ctx,
        "tune",
        &convs,
        key.stride,
        site.pad,
        site.relu,
        prologue.as_deref(),
        algorithm,
    )?;
    let mut plan = Plan::new();
    let unused = plan.bound("unused", &[4], ops::storage_buffer(ctx, "unused", 16));
    let in_shape = [site.n, key.in_c, site.in_h, site.in_w];
    let input_len = in_shape.iter().product::<u32>() as usize;
    let input = plan.bound_activation(
        "input",
        &in_shape,
        ops::upload(ctx, "input", &filler(input_len, 1)),
    );
    let (oh, ow) = layer
        .output_size(site.in_h, site.in_w)
        .ok_or_else(|| SagittaError::InvalidInput("tuned convolution has no output".into()))?;
    let residual = site.residual.then(|| {
        let shape = [site.n, key.out_c, oh, ow];
        let len = shape.iter().product::<u32>() as usize;
        plan.bound_activation(
            "residual",
            &shape,
            ops::upload(ctx, "residual", &filler(len, 2)),
        )
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

/// Times every candidate kernel for every distinct convolution of the cervical pipeline and
/// returns the table (also installed in `ctx`, so a model built afterwards uses it).
pub fn tune_cervical(
    ctx: Arc<GpuContext>,
    weights: &WeightFile,
    image: (u32, u32),
    repeats: usize,
    samples: usize,
    mut progress: impl FnMut(&ConvKey, &TunedConv),
) -> Result<TuningTable> {
    let model = CervicalModel::new(ctx.clone(), weights)?;
    let plan = model.dispatch_plan(image.0, image.1)?;
    let mut sites: Vec<ConvSite> = Vec::new();
    for site in plan.steps().iter().filter_map(conv_site) {
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
            let ms = time_site(&ctx, &mut pipelines, site, algorithm, repeats, samples)?;
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
    ctx.set_tuning(Some(table.clone()));
    Ok(table)
}

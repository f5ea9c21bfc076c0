//! The wgpu context: adapter choice, device limits, and the instrumented submit/readback path.
//!
//! Every submission and every buffer map of the engine goes through [`GpuContext`], which counts
//! them so that tests can prove "one submission, one small readback per inference".

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::{Result, SagittaError};

/// Which adapter to use. Empty fields mean "pick the best one by itself".
#[derive(Debug, Clone, Default)]
pub struct AdapterChoice {
    /// Backend name: `vulkan`, `metal`, `dx12`, `gl`.
    pub backend: Option<String>,
    /// Case-insensitive substring of the adapter name.
    pub name: Option<String>,
}

impl AdapterChoice {
    /// Reads `SAGITTA_BACKEND` and `SAGITTA_ADAPTER`.
    pub fn from_env() -> Self {
        let non_empty = |key: &str| std::env::var(key).ok().filter(|v| !v.trim().is_empty());
        Self {
            backend: non_empty("SAGITTA_BACKEND"),
            name: non_empty("SAGITTA_ADAPTER"),
        }
    }

    /// Command-line values win over the environment.
    pub fn or(self, fallback: AdapterChoice) -> Self {
        Self {
            backend: self.backend.or(fallback.backend),
            name: self.name.or(fallback.name),
        }
    }

    fn backends(&self) -> Result<wgpu::Backends> {
        let Some(name) = &self.backend else {
            // GL is only a fallback (see `GpuContext::new`): probing it prints EGL noise on
            // headless machines and it lacks compute features on some drivers.
            return Ok(wgpu::Backends::PRIMARY);
        };
        match name.to_ascii_lowercase().as_str() {
            "vulkan" | "vk" => Ok(wgpu::Backends::VULKAN),
            "metal" | "mtl" => Ok(wgpu::Backends::METAL),
            "dx12" | "d3d12" => Ok(wgpu::Backends::DX12),
            "gl" | "gles" | "opengl" => Ok(wgpu::Backends::GL),
            other => Err(SagittaError::Adapter(format!(
                "unknown backend '{other}': use one of vulkan, metal, dx12, gl"
            ))),
        }
    }
}

/// What the engine did with the GPU, in order. Tests read it to prove the submission discipline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpuEvent {
    Submit,
    Map,
}

/// A device and queue with what the engine needs to know about them.
pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub features: wgpu::Features,
    pub limits: wgpu::Limits,
    submissions: AtomicU64,
    maps: AtomicU64,
    events: Mutex<Vec<GpuEvent>>,
    /// The driver's compiled-pipeline cache, persisted on disk between processes (Vulkan).
    pipeline_cache: Option<(wgpu::PipelineCache, std::path::PathBuf)>,
    /// Measured convolution kernel choices for this adapter (`sagitta tune`).
    tuning: Mutex<Option<crate::tune::TuningTable>>,
    /// The device was opened with cooperative matrices (16x16x16 f16 -> f32) and subgroups.
    cooperative_matrix_enabled: bool,
    /// Whether the tensor-core convolution passed its self-check (run once, on first use).
    cooperative_matrix_checked: std::sync::OnceLock<bool>,
    /// f16 activations packed in u32 even where the adapter has shader-f16 (tests, A/B runs).
    packed_f16: AtomicBool,
}

/// One adapter as `sagitta info` shows it.
#[derive(Debug, Clone)]
pub struct AdapterSummary {
    pub info: wgpu::AdapterInfo,
    pub features: wgpu::Features,
    pub limits: wgpu::Limits,
}

fn type_rank(device_type: wgpu::DeviceType) -> u32 {
    match device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

fn backend_rank(backend: wgpu::Backend) -> u32 {
    // Native compute backends first; GL lacks features the engine uses on some drivers.
    match backend {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 0,
        _ => 1,
    }
}

fn new_instance(backends: wgpu::Backends) -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    desc.backends = backends;
    wgpu::Instance::new(desc)
}

/// Every adapter wgpu can see for the choice's backend.
pub fn list_adapters(choice: &AdapterChoice) -> Result<Vec<AdapterSummary>> {
    let instance = new_instance(choice.backends()?);
    let adapters = pollster::block_on(instance.enumerate_adapters(choice.backends()?));
    Ok(adapters
        .iter()
        .map(|a| AdapterSummary {
            info: a.get_info(),
            features: a.features(),
            limits: a.limits(),
        })
        .collect())
}

/// Features the engine uses when the adapter has them; none is required.
fn wanted_features(available: wgpu::Features) -> wgpu::Features {
    let wanted = wgpu::Features::TIMESTAMP_QUERY
        | wgpu::Features::SHADER_F16
        | wgpu::Features::PIPELINE_CACHE;
    available & wanted
}

fn cooperative_matrix_opted_in() -> bool {
    std::env::var("SAGITTA_COOPERATIVE_MATRIX").is_ok_and(|v| v == "on")
}

/// The features for the tensor-core convolution (`shaders/conv2d_coop.wgsl`), when the adapter
/// has a 16x16x16 f16 x f16 -> f32 cooperative-matrix configuration and the user opted in with
/// `SAGITTA_COOPERATIVE_MATRIX=on` (opt-in: wgpu marks the feature experimental, and the kernel
/// has not yet run on hardware that has it).
fn cooperative_matrix_features(adapter: &wgpu::Adapter) -> Option<wgpu::Features> {
    if !cooperative_matrix_opted_in() {
        return None;
    }
    let needed = wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX
        | wgpu::Features::SUBGROUP
        | wgpu::Features::SHADER_F16;
    let has_config = adapter.cooperative_matrix_properties().iter().any(|c| {
        (c.m_size, c.n_size, c.k_size) == (16, 16, 16)
            && c.ab_type == wgpu::CooperativeScalarType::F16
            && c.cr_type == wgpu::CooperativeScalarType::F32
    });
    (adapter.features().contains(needed) && has_config).then_some(needed)
}

impl GpuContext {
    /// Picks the best adapter (discrete > integrated > virtual > CPU), honouring the choice.
    pub fn new(choice: &AdapterChoice) -> Result<Arc<Self>> {
        let backends = choice.backends()?;
        let mut instance = new_instance(backends);
        let mut adapters = pollster::block_on(instance.enumerate_adapters(backends));
        if adapters.is_empty() && choice.backend.is_none() {
            instance = new_instance(wgpu::Backends::GL);
            adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::GL));
        }
        if let Some(name) = &choice.name {
            let needle = name.to_lowercase();
            adapters.retain(|a| a.get_info().name.to_lowercase().contains(&needle));
        }
        adapters.sort_by_key(|a| {
            let info = a.get_info();
            (type_rank(info.device_type), backend_rank(info.backend))
        });
        let adapter = adapters.into_iter().next().ok_or_else(|| {
            SagittaError::Adapter(format!(
                "no GPU adapter found{}{}: install a Vulkan, Metal or DX12 driver \
                 (on Linux without a GPU: apt-get install mesa-vulkan-drivers), \
                 or check SAGITTA_BACKEND / SAGITTA_ADAPTER",
                choice
                    .backend
                    .as_ref()
                    .map(|b| format!(" for backend '{b}'"))
                    .unwrap_or_default(),
                choice
                    .name
                    .as_ref()
                    .map(|n| format!(" matching '{n}'"))
                    .unwrap_or_default(),
            ))
        })?;
        let cooperative = cooperative_matrix_features(&adapter);
        let features = wanted_features(adapter.features()) | cooperative.unwrap_or_default();
        let experimental_features = if cooperative.is_some() {
            // SAFETY: the only experimental feature requested is cooperative matrices, used by
            // one kernel that must pass a self-check against the scalar kernel before it runs
            // (GpuContext::cooperative_matrix).
            unsafe { wgpu::ExperimentalFeatures::enabled() }
        } else {
            wgpu::ExperimentalFeatures::disabled()
        };
        // Ask for the adapter's real limits: a 128-channel 512x512 f32 activation alone is 128 MiB.
        let limits = adapter.limits();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("sagitta"),
            required_features: features,
            required_limits: limits.clone(),
            experimental_features,
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|e| SagittaError::Adapter(format!("could not open the device: {e}")))?;
        Ok(Self::from_parts(
            device,
            queue,
            adapter.get_info(),
            features,
            limits,
        ))
    }

    /// Wraps a device and queue that the caller owns (e.g. a viewer's own wgpu device).
    pub fn from_device(
        device: wgpu::Device,
        queue: wgpu::Queue,
        info: wgpu::AdapterInfo,
    ) -> Arc<Self> {
        let features = device.features();
        let limits = device.limits();
        Self::from_parts(device, queue, info, features, limits)
    }

    fn from_parts(
        device: wgpu::Device,
        queue: wgpu::Queue,
        info: wgpu::AdapterInfo,
        features: wgpu::Features,
        limits: wgpu::Limits,
    ) -> Arc<Self> {
        let pipeline_cache = open_pipeline_cache(&device, &info, features);
        let tuning = Mutex::new(crate::tune::TuningTable::load_for(&info));
        Arc::new(Self {
            tuning,
            cooperative_matrix_enabled: features.contains(
                wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX
                    | wgpu::Features::SUBGROUP
                    | wgpu::Features::SHADER_F16,
            ) && cooperative_matrix_opted_in(),
            cooperative_matrix_checked: std::sync::OnceLock::new(),
            packed_f16: AtomicBool::new(
                std::env::var("SAGITTA_F16_STORAGE").is_ok_and(|v| v == "packed"),
            ),
            device,
            queue,
            info,
            features,
            limits,
            submissions: AtomicU64::new(0),
            maps: AtomicU64::new(0),
            events: Mutex::new(Vec::new()),
            pipeline_cache,
        })
    }

    pub fn pipeline_cache(&self) -> Option<&wgpu::PipelineCache> {
        self.pipeline_cache.as_ref().map(|(c, _)| c)
    }

    /// Writes the pipeline cache to disk (after pipelines were built) so that the next process
    /// starts faster. Failing to write only costs that speed-up, so it is not an error.
    pub fn save_pipeline_cache(&self) {
        let Some((cache, path)) = &self.pipeline_cache else {
            return;
        };
        let Some(data) = cache.get_data() else {
            return;
        };
        let temporary = path.with_extension("tmp");
        if std::fs::write(&temporary, &data).is_ok() {
            let _ = std::fs::rename(&temporary, path);
        }
    }

    /// f16 activations are stored packed two to a u32 (arithmetic f32) where the adapter lacks
    /// shader-f16; this forces that storage on any adapter (`SAGITTA_F16_STORAGE=packed`).
    pub fn set_packed_f16(&self, packed: bool) {
        self.packed_f16.store(packed, Ordering::SeqCst);
    }

    pub fn packed_f16(&self) -> bool {
        self.packed_f16.load(Ordering::SeqCst)
    }

    /// Replaces the measured kernel choices (layers built afterwards use them).
    pub fn set_tuning(&self, table: Option<crate::tune::TuningTable>) {
        *self.tuning.lock().unwrap_or_else(|e| e.into_inner()) = table;
    }

    /// The measured kernel for a convolution shape, if this adapter was tuned for it.
    pub fn tuned_conv(&self, key: &crate::tune::ConvKey) -> Option<crate::ops::ConvAlgorithm> {
        let tuning = self.tuning.lock().unwrap_or_else(|e| e.into_inner());
        tuning.as_ref()?.algorithm(key)
    }

    /// How many shapes the loaded tuning table holds (0: none loaded).
    pub fn tuned_shapes(&self) -> usize {
        let tuning = self.tuning.lock().unwrap_or_else(|e| e.into_inner());
        tuning.as_ref().map_or(0, |t| t.entries.len())
    }

    /// Whether f16 plans may run their tiled convolutions on cooperative matrices: the device
    /// has them (see `SAGITTA_COOPERATIVE_MATRIX`), subgroups of 16..64 invocations, 20 KiB of
    /// workgroup memory, and the kernel matched the scalar one on a test layer (checked once;
    /// a failure is reported on stderr and the scalar kernels run).
    pub fn cooperative_matrix(self: &Arc<Self>) -> bool {
        if !self.cooperative_matrix_enabled
            || self.info.subgroup_min_size < 16
            || self.info.subgroup_max_size > 64
            || self.limits.max_compute_workgroup_storage_size < 20 * 1024
            || self.limits.max_compute_invocations_per_workgroup < 256
        {
            return false;
        }
        *self.cooperative_matrix_checked.get_or_init(|| {
            match crate::ops::cooperative_matrix_self_check(self) {
                Ok(None) => true,
                Ok(Some(problem)) | Err(crate::SagittaError::Gpu(problem)) => {
                    eprintln!(
                        "sagitta: the cooperative-matrix convolution failed its self-check on {} \
                         ({problem}); using the scalar kernels",
                        self.info.name
                    );
                    false
                }
                Err(e) => {
                    eprintln!(
                        "sagitta: cooperative-matrix self-check could not run ({e}); using the \
                         scalar kernels"
                    );
                    false
                }
            }
        })
    }

    pub fn has_timestamps(&self) -> bool {
        self.features.contains(wgpu::Features::TIMESTAMP_QUERY)
    }

    /// The one way the engine submits work.
    pub fn submit(&self, encoder: wgpu::CommandEncoder) -> wgpu::SubmissionIndex {
        self.submissions.fetch_add(1, Ordering::SeqCst);
        self.log(GpuEvent::Submit);
        self.queue.submit(Some(encoder.finish()))
    }

    /// Maps a MAP_READ buffer, waits for the GPU, and copies its first `bytes` bytes out.
    pub fn read_buffer(&self, buffer: &wgpu::Buffer, bytes: u64) -> Result<Vec<u8>> {
        self.maps.fetch_add(1, Ordering::SeqCst);
        self.log(GpuEvent::Map);
        let slice = buffer.slice(0..bytes);
        let (sender, receiver) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |result| {
            let _ = sender.send(result);
        });
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| SagittaError::Gpu(format!("waiting for the GPU failed: {e}")))?;
        receiver
            .recv()
            .map_err(|_| SagittaError::Gpu("the GPU never answered the readback".into()))?
            .map_err(|e| SagittaError::Gpu(format!("reading results back failed: {e}")))?;
        let data = slice
            .get_mapped_range()
            .map_err(|e| SagittaError::Gpu(format!("reading results back failed: {e}")))?
            .to_vec();
        buffer.unmap();
        Ok(data)
    }

    pub fn submission_count(&self) -> u64 {
        self.submissions.load(Ordering::SeqCst)
    }

    pub fn map_count(&self) -> u64 {
        self.maps.load(Ordering::SeqCst)
    }

    /// Returns and clears the event log.
    pub fn take_events(&self) -> Vec<GpuEvent> {
        std::mem::take(&mut *self.events.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn log(&self, event: GpuEvent) {
        let mut events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        // Bounded so a long-running process does not grow it forever.
        if events.len() < 4096 {
            events.push(event);
        }
    }

    /// A short description for logs and `sagitta info`.
    pub fn describe(&self) -> String {
        format!(
            "{} ({:?}, {:?}, driver {} {})",
            self.info.name,
            self.info.backend,
            self.info.device_type,
            self.info.driver,
            self.info.driver_info
        )
    }
}

/// `$XDG_CACHE_HOME/sagitta` or `~/.cache/sagitta`.
pub fn cache_dir() -> Option<std::path::PathBuf> {
    std::env::var_os("XDG_CACHE_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cache")))
        .map(|d| d.join("sagitta"))
}

/// `SAGITTA_PIPELINE_CACHE`: a directory for the cache, or `off`; by default [`cache_dir`].
fn pipeline_cache_dir() -> Option<std::path::PathBuf> {
    match std::env::var("SAGITTA_PIPELINE_CACHE") {
        Ok(v) if v == "off" || v.is_empty() => None,
        Ok(v) => Some(v.into()),
        Err(_) => cache_dir(),
    }
}

fn open_pipeline_cache(
    device: &wgpu::Device,
    info: &wgpu::AdapterInfo,
    features: wgpu::Features,
) -> Option<(wgpu::PipelineCache, std::path::PathBuf)> {
    if !features.contains(wgpu::Features::PIPELINE_CACHE) {
        return None;
    }
    let key = wgpu::util::pipeline_cache_key(info)?;
    let dir = pipeline_cache_dir()?;
    std::fs::create_dir_all(&dir).ok()?;
    let path = dir.join(key);
    let data = std::fs::read(&path).ok();
    // SAFETY: the data was written by `PipelineCache::get_data` for an adapter with the same
    // cache key (wgpu derives the key from the driver and device); `fallback: true` makes the
    // driver ignore data it does not accept instead of failing.
    let cache = unsafe {
        device.create_pipeline_cache(&wgpu::PipelineCacheDescriptor {
            label: Some("sagitta pipelines"),
            data: data.as_deref(),
            fallback: true,
        })
    };
    Some((cache, path))
}

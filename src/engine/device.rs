//! The wgpu context: adapter choice, device limits, and the instrumented submit/readback path.
//!
//! Every submission and every buffer map of the engine goes through [`GpuContext`], which counts
//! them so that tests can prove "one submission, one small readback per inference".

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::{Result, SagittaError};

/// How the engine opens and uses a device. The library reads no environment variable and touches
/// no file unless these say so; the command line maps its flags and `SAGITTA_*` variables here.
#[derive(Debug, Clone, Default)]
pub struct DeviceOptions {
    /// A directory for the driver's compiled-pipeline cache (Vulkan), read at start and written
    /// by [`GpuContext::save_pipeline_cache`]; `None`: no cache on disk.
    pub pipeline_cache_dir: Option<std::path::PathBuf>,
    /// Request cooperative matrices (tensor cores) where the adapter has the 16x16x16 f16 -> f32
    /// configuration. wgpu marks the feature experimental, so it is opt-in.
    pub cooperative_matrix: bool,
    /// Store f16 activations packed two to a `u32` even where the adapter has `shader-f16`
    /// (tests and A/B runs of the packed variant).
    pub packed_f16: bool,
}

/// Which adapter to use. Empty fields mean "pick the best one by itself".
#[derive(Debug, Clone, Default)]
pub struct AdapterChoice {
    /// Backend name: `vulkan`, `metal`, `dx12`, `gl`.
    pub backend: Option<String>,
    /// Case-insensitive substring of the adapter name, or the adapter's number (from 0, in the
    /// order [`list_adapters`] gives them: GPU k of N identical ones).
    pub name: Option<String>,
}

impl AdapterChoice {
    /// Command-line values win over the environment.
    pub fn or(self, fallback: AdapterChoice) -> Self {
        Self {
            backend: self.backend.or(fallback.backend),
            name: self.name.or(fallback.name),
        }
    }

    /// The adapter's number when `name` is one.
    pub fn index(&self) -> Option<usize> {
        let name = self.name.as_deref()?.trim();
        (!name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()))
            .then(|| name.parse().ok())
            .flatten()
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
    /// How often the engine blocked on the device: on one submission, or on all of them.
    waits: Arc<WaitCounts>,
    events: Mutex<Vec<GpuEvent>>,
    /// The driver's compiled-pipeline cache, persisted on disk between processes (Vulkan).
    pipeline_cache: Option<(wgpu::PipelineCache, std::path::PathBuf)>,
    /// The device was opened with cooperative matrices (16x16x16 f16 -> f32) and subgroups.
    cooperative_matrix_enabled: bool,
    /// The verdict of the tensor-core convolution's self-check, run once by the layer that owns
    /// that kernel: `Ok(())` or the problem found.
    cooperative_matrix_verdict: std::sync::OnceLock<std::result::Result<(), String>>,
    /// f16 activations packed in u32 even where the adapter has shader-f16 (tests, A/B runs).
    packed_f16: AtomicBool,
}

/// Blocking waits of the engine, counted so that tests can show which kind it did.
#[derive(Debug, Default)]
struct WaitCounts {
    own_submission: AtomicU64,
    whole_device: AtomicU64,
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
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
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

/// The features for the tensor-core convolution (`shaders/conv2d_coop.wgsl`), when the adapter
/// has a 16x16x16 f16 x f16 -> f32 cooperative-matrix configuration and the options opted in
/// (opt-in: wgpu marks the feature experimental, and the kernel has not yet run on hardware that
/// has it).
fn cooperative_matrix_features(
    adapter: &wgpu::Adapter,
    options: &DeviceOptions,
) -> Option<wgpu::Features> {
    if !options.cooperative_matrix {
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
    /// Picks the best adapter (discrete > integrated > virtual > CPU), honouring the choice, with
    /// default options (no pipeline cache on disk, no experimental features).
    pub fn new(choice: &AdapterChoice) -> Result<Arc<Self>> {
        Self::with_options(choice, &DeviceOptions::default())
    }

    /// Picks the best adapter as [`Self::new`] does and opens it with `options`.
    pub fn with_options(choice: &AdapterChoice, options: &DeviceOptions) -> Result<Arc<Self>> {
        let backends = choice.backends()?;
        let mut instance = new_instance(backends);
        let mut adapters = pollster::block_on(instance.enumerate_adapters(backends));
        if adapters.is_empty() && choice.backend.is_none() {
            instance = new_instance(wgpu::Backends::GL);
            adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::GL));
        }
        match choice.index() {
            Some(index) => {
                let found = adapters.len();
                adapters = adapters.into_iter().skip(index).take(1).collect();
                if adapters.is_empty() {
                    return Err(SagittaError::Adapter(format!(
                        "there is no adapter number {index}: {found} found (numbered from 0 in \
                         the order `sagitta info` lists them)"
                    )));
                }
            }
            None => {
                if let Some(name) = &choice.name {
                    let needle = name.to_lowercase();
                    adapters.retain(|a| a.get_info().name.to_lowercase().contains(&needle));
                }
            }
        }
        adapters.sort_by_key(|a| {
            let info = a.get_info();
            (type_rank(info.device_type), backend_rank(info.backend))
        });
        let adapter = adapters.into_iter().next().ok_or_else(|| {
            SagittaError::Adapter(format!(
                "no GPU adapter found{}{}: install a Vulkan, Metal or DX12 driver \
                 (on Linux without a GPU: apt-get install mesa-vulkan-drivers), \
                 or check the backend / adapter choice",
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
        let cooperative = cooperative_matrix_features(&adapter, options);
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
            options,
        ))
    }

    /// Wraps a device and queue that the caller owns (e.g. a viewer's own wgpu device). Nothing
    /// is read from or written to disk unless `options` say so.
    pub fn from_device(
        device: wgpu::Device,
        queue: wgpu::Queue,
        info: wgpu::AdapterInfo,
        options: &DeviceOptions,
    ) -> Arc<Self> {
        let features = device.features();
        let limits = device.limits();
        Self::from_parts(device, queue, info, features, limits, options)
    }

    fn from_parts(
        device: wgpu::Device,
        queue: wgpu::Queue,
        info: wgpu::AdapterInfo,
        features: wgpu::Features,
        limits: wgpu::Limits,
        options: &DeviceOptions,
    ) -> Arc<Self> {
        let pipeline_cache = options
            .pipeline_cache_dir
            .as_deref()
            .and_then(|dir| open_pipeline_cache(&device, &info, features, dir));
        Arc::new(Self {
            cooperative_matrix_enabled: features.contains(
                wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX
                    | wgpu::Features::SUBGROUP
                    | wgpu::Features::SHADER_F16,
            ) && options.cooperative_matrix,
            cooperative_matrix_verdict: std::sync::OnceLock::new(),
            packed_f16: AtomicBool::new(options.packed_f16),
            device,
            queue,
            info,
            features,
            limits,
            submissions: AtomicU64::new(0),
            maps: AtomicU64::new(0),
            waits: Arc::default(),
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
    /// shader-f16; this forces that storage on any adapter.
    pub fn set_packed_f16(&self, packed: bool) {
        self.packed_f16.store(packed, Ordering::SeqCst);
    }

    pub fn packed_f16(&self) -> bool {
        self.packed_f16.load(Ordering::SeqCst)
    }

    /// Whether the device was opened with cooperative matrices and meets what the tensor-core
    /// convolution needs: subgroups of 16..64 invocations, 20 KiB of workgroup memory, 256
    /// invocations per workgroup. Whether the kernel may run also needs its self-check
    /// ([`Self::cooperative_matrix_verdict`]).
    pub fn cooperative_matrix_capable(&self) -> bool {
        self.cooperative_matrix_enabled
            && self.info.subgroup_min_size >= 16
            && self.info.subgroup_max_size <= 64
            && self.limits.max_compute_workgroup_storage_size >= 20 * 1024
            && self.limits.max_compute_invocations_per_workgroup >= 256
    }

    /// The self-check verdict of the tensor-core convolution on this device, computed once by
    /// `check` (the operator layer owns the check; the engine only remembers its answer).
    pub fn cooperative_matrix_verdict(
        &self,
        check: impl FnOnce() -> std::result::Result<(), String>,
    ) -> std::result::Result<(), String> {
        self.cooperative_matrix_verdict.get_or_init(check).clone()
    }

    /// What the tensor-core self-check found, once it ran and failed.
    pub fn cooperative_matrix_problem(&self) -> Option<String> {
        self.cooperative_matrix_verdict.get()?.clone().err()
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

    /// The blocking path of a model that can record into any encoder: `record` fills a new
    /// encoder, which is submitted alone, then the first `bytes` of `staging` are read back
    /// once that submission is done.
    pub fn record_submit_read(
        &self,
        label: &str,
        record: impl FnOnce(&mut wgpu::CommandEncoder) -> Result<()>,
        staging: &wgpu::Buffer,
        bytes: u64,
    ) -> Result<Vec<u8>> {
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) });
        record(&mut encoder)?;
        let submission = self.submit(encoder);
        self.begin_readback(staging, bytes, Some(submission)).wait()
    }

    /// Maps a MAP_READ buffer written by `submission`, waits for that submission (not the rest
    /// of the device's queue), and copies its first `bytes` bytes out.
    pub fn read_buffer(
        &self,
        buffer: &wgpu::Buffer,
        bytes: u64,
        submission: wgpu::SubmissionIndex,
    ) -> Result<Vec<u8>> {
        self.begin_readback(buffer, bytes, Some(submission)).wait()
    }

    /// Starts mapping the first `bytes` bytes of a MAP_READ buffer whose copy was recorded in
    /// work already submitted (the caller's or ours), without waiting: the returned handle is
    /// polled, or waited for, on its own submission only.
    pub fn begin_readback(
        &self,
        buffer: &wgpu::Buffer,
        bytes: u64,
        submission: Option<wgpu::SubmissionIndex>,
    ) -> PendingReadback {
        self.maps.fetch_add(1, Ordering::SeqCst);
        self.log(GpuEvent::Map);
        let (sender, receiver) = std::sync::mpsc::channel();
        buffer
            .slice(0..bytes)
            .map_async(wgpu::MapMode::Read, move |result| {
                let _ = sender.send(result);
            });
        PendingReadback {
            device: self.device.clone(),
            waits: self.waits.clone(),
            buffer: buffer.clone(),
            bytes,
            submission,
            receiver,
            finished: false,
        }
    }

    pub fn submission_count(&self) -> u64 {
        self.submissions.load(Ordering::SeqCst)
    }

    /// How often the engine has blocked on this device since it opened: (on one submission, on
    /// every submission of the device). A host that polls its readbacks sees neither grow.
    pub fn wait_counts(&self) -> (u64, u64) {
        (
            self.waits.own_submission.load(Ordering::SeqCst),
            self.waits.whole_device.load(Ordering::SeqCst),
        )
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

fn open_pipeline_cache(
    device: &wgpu::Device,
    info: &wgpu::AdapterInfo,
    features: wgpu::Features,
    dir: &std::path::Path,
) -> Option<(wgpu::PipelineCache, std::path::PathBuf)> {
    if !features.contains(wgpu::Features::PIPELINE_CACHE) {
        return None;
    }
    let key = wgpu::util::pipeline_cache_key(info)?;
    std::fs::create_dir_all(dir).ok()?;
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

/// A readback in flight ([`GpuContext::begin_readback`]): `poll` never blocks; `wait` blocks
/// until its own submission is done (not the whole device's queue, when the submission is
/// known).
pub struct PendingReadback {
    device: wgpu::Device,
    waits: Arc<WaitCounts>,
    buffer: wgpu::Buffer,
    bytes: u64,
    submission: Option<wgpu::SubmissionIndex>,
    receiver: std::sync::mpsc::Receiver<std::result::Result<(), wgpu::BufferAsyncError>>,
    finished: bool,
}

impl Drop for PendingReadback {
    /// A readback given up before it arrived must not leave the buffer mapped (or its mapping
    /// pending): the next inference copies into it.
    fn drop(&mut self) {
        if !self.finished {
            self.buffer.unmap();
        }
    }
}

impl PendingReadback {
    /// The bytes, when the GPU has finished; `None` while it has not. Never blocks.
    pub fn poll(&mut self) -> Option<Result<Vec<u8>>> {
        if let Err(e) = self.device.poll(wgpu::PollType::Poll) {
            return Some(Err(SagittaError::Gpu(format!(
                "polling the GPU failed: {e}"
            ))));
        }
        match self.receiver.try_recv() {
            Ok(mapped) => Some(self.finish(mapped)),
            Err(std::sync::mpsc::TryRecvError::Empty) => None,
            Err(std::sync::mpsc::TryRecvError::Disconnected) => Some(Err(SagittaError::Gpu(
                "the GPU never answered the readback".into(),
            ))),
        }
    }

    /// Blocks until the bytes are there.
    pub fn wait(mut self) -> Result<Vec<u8>> {
        let counter = match self.submission {
            Some(_) => &self.waits.own_submission,
            None => &self.waits.whole_device,
        };
        counter.fetch_add(1, Ordering::SeqCst);
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: self.submission.clone(),
                timeout: None,
            })
            .map_err(|e| SagittaError::Gpu(format!("waiting for the GPU failed: {e}")))?;
        let mapped = self
            .receiver
            .recv()
            .map_err(|_| SagittaError::Gpu("the GPU never answered the readback".into()))?;
        self.finish(mapped)
    }

    fn finish(
        &mut self,
        mapped: std::result::Result<(), wgpu::BufferAsyncError>,
    ) -> Result<Vec<u8>> {
        self.finished = true;
        mapped.map_err(|e| SagittaError::Gpu(format!("reading results back failed: {e}")))?;
        let data = self
            .buffer
            .slice(0..self.bytes)
            .get_mapped_range()
            .map_err(|e| SagittaError::Gpu(format!("reading results back failed: {e}")))?
            .to_vec();
        self.buffer.unmap();
        Ok(data)
    }
}

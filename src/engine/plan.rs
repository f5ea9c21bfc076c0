//! An inference as a list of kernel dispatches over virtual tensors, compiled once per model and
//! input size into pipelines, bind groups and buffers.
//!
//! Activation tensors get physical buffers by liveness: a buffer returns to the pool after the
//! last step that reads it, so GPU memory stays near the largest live set rather than the sum of
//! all layers. Weights and the caller-visible input/output buffers are bound as they are.

use std::collections::HashMap;
use std::sync::Arc;

use super::buffers;
use super::device::GpuContext;
use super::kernel::{Kernel, Precision};
use super::pipelines::PipelineCache;
use super::timing::StageTimer;
use crate::error::{Result, SagittaError};

/// Threads per workgroup of every 1-D kernel in `shaders/`.
pub const WORKGROUP_SIZE: u32 = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TensorId(pub usize);

#[derive(Debug, Clone)]
enum Storage {
    /// Allocated by the planner by liveness.
    Activation,
    /// A buffer the model owns (weights, inputs, outputs).
    Bound(Arc<wgpu::Buffer>),
    /// Channels `channel_offset ..` of the [N, C, H, W] tensor `parent` (never itself a view):
    /// producers write a concatenation in place. Lives and is placed with its parent.
    View {
        parent: TensorId,
        channel_offset: u32,
    },
}

#[derive(Debug, Clone)]
struct TensorInfo {
    shape: Vec<u32>,
    storage: Storage,
    label: String,
    bytes_per_element: u32,
}

impl TensorInfo {
    fn elements(&self) -> u64 {
        self.shape.iter().map(|&d| d as u64).product()
    }
}

/// One dispatch: a kernel specialised by override constants, its uniform words and its bindings
/// (binding 0 is the uniform block, then the tensors in order).
#[derive(Debug, Clone)]
pub struct Step {
    pub label: String,
    pub kernel: Kernel,
    pub overrides: Vec<(&'static str, f64)>,
    pub params: Vec<u32>,
    pub reads: Vec<TensorId>,
    pub writes: Vec<TensorId>,
    /// How many invocations the kernel needs; workgroups are derived from it.
    pub threads: Threads,
    /// Read-only `array<vec4<f32>>` bindings whose buffers hold packed f16 instead
    /// ([`super::kernel::with_f16_packed_inputs`]): weights kept in f16 on the GPU.
    pub f16_packed_inputs: &'static [&'static str],
}

#[derive(Debug, Clone, Copy)]
pub enum Threads {
    /// A 1-D grid of `WORKGROUP_SIZE` threads per group, folded into 2-D when it is too large.
    Linear(u64),
    /// An explicit number of workgroups (reductions with one workgroup per item).
    Groups(u32),
    /// An explicit 3-D grid of workgroups (tiled kernels).
    Grid([u32; 3]),
}

/// Where the activations live after liveness reuse.
#[derive(Debug, Clone)]
pub struct MemoryPlan {
    /// The buffer slot of each tensor (None for bound or never-written tensors).
    pub slot_of: Vec<Option<usize>>,
    pub slot_bytes: Vec<u64>,
    /// The most activation bytes alive at once: no allocation can do with less.
    pub peak_live_bytes: u64,
    /// What one buffer per activation would take.
    pub bytes_without_reuse: u64,
}

impl MemoryPlan {
    pub fn allocated_bytes(&self) -> u64 {
        self.slot_bytes.iter().sum()
    }
}

/// A named span of steps, timed separately by the benchmark.
#[derive(Debug, Clone)]
pub struct Stage {
    pub name: String,
    pub first_step: usize,
}

#[derive(Default)]
pub struct Plan {
    tensors: Vec<TensorInfo>,
    steps: Vec<Step>,
    stages: Vec<Stage>,
    precision: Precision,
    cooperative_matrix: bool,
    /// Activations read after the plan (copied out by the caller): live to its end.
    outputs: Vec<TensorId>,
}

impl Plan {
    pub fn new() -> Self {
        Self::default()
    }

    /// A plan whose activations are stored in `precision`.
    pub fn with_precision(precision: Precision) -> Self {
        Self {
            precision,
            ..Self::default()
        }
    }

    /// Lets f16 plans run tiled convolutions on cooperative matrices (set from
    /// [`GpuContext::cooperative_matrix`]).
    pub fn allow_cooperative_matrix(&mut self, allow: bool) {
        self.cooperative_matrix = allow;
    }

    pub fn cooperative_matrix(&self) -> bool {
        self.cooperative_matrix && self.precision == Precision::F16
    }

    /// Keeps `tensor` alive to the end of the plan: the caller reads it after the last step, so
    /// no later activation may take its buffer.
    pub fn keep_as_output(&mut self, tensor: TensorId) {
        self.outputs.push(tensor);
    }

    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// An activation the planner allocates, stored in the plan's precision.
    pub fn activation(&mut self, label: impl Into<String>, shape: &[u32]) -> TensorId {
        let bytes = self.precision.bytes();
        self.push(label.into(), shape, Storage::Activation, bytes)
    }

    /// A tensor the planner allocates that stays f32 whatever the precision (images before
    /// standardization, statistics, coordinates, boxes).
    pub fn activation_f32(&mut self, label: impl Into<String>, shape: &[u32]) -> TensorId {
        self.push(label.into(), shape, Storage::Activation, 4)
    }

    /// An f32 tensor backed by a buffer the caller owns (weights, input, output).
    pub fn bound(
        &mut self,
        label: impl Into<String>,
        shape: &[u32],
        buffer: Arc<wgpu::Buffer>,
    ) -> TensorId {
        self.push(label.into(), shape, Storage::Bound(buffer), 4)
    }

    /// A caller-owned tensor stored in the plan's activation precision (kernel tests).
    pub fn bound_activation(
        &mut self,
        label: impl Into<String>,
        shape: &[u32],
        buffer: Arc<wgpu::Buffer>,
    ) -> TensorId {
        let bytes = self.precision.bytes();
        self.push(label.into(), shape, Storage::Bound(buffer), bytes)
    }

    fn push(
        &mut self,
        label: String,
        shape: &[u32],
        storage: Storage,
        bytes_per_element: u32,
    ) -> TensorId {
        self.tensors.push(TensorInfo {
            shape: shape.to_vec(),
            storage,
            label,
            bytes_per_element,
        });
        TensorId(self.tensors.len() - 1)
    }

    pub fn shape(&self, id: TensorId) -> &[u32] {
        &self.tensors[id.0].shape
    }

    /// A view of `channels` channels of the [N, C, H, W] tensor `parent` starting at channel
    /// `offset`: a step that writes the view writes those channels of the parent, so a
    /// concatenation is written in place by its producers (kernels that take an output channel
    /// offset; see [`Self::view_of`]).
    pub fn channel_view(
        &mut self,
        label: impl Into<String>,
        parent: TensorId,
        offset: u32,
        channels: u32,
    ) -> Result<TensorId> {
        let (root, base) = self.view_of(parent).unwrap_or((parent, 0));
        let info = &self.tensors[root.0];
        let shape = info.shape.clone();
        let parent_channels = self.tensors[parent.0].shape.get(1).copied().unwrap_or(0);
        if shape.len() != 4 || channels == 0 || offset + channels > parent_channels {
            return Err(SagittaError::InvalidInput(format!(
                "channel view {offset}..{} of a tensor of shape {:?}",
                offset + channels,
                self.tensors[parent.0].shape
            )));
        }
        let storage = Storage::View {
            parent: root,
            channel_offset: base + offset,
        };
        let bytes = info.bytes_per_element;
        let view_shape = [shape[0], channels, shape[2], shape[3]];
        Ok(self.push(label.into(), &view_shape, storage, bytes))
    }

    /// For a channel view: the tensor it views and the channel it starts at.
    pub fn view_of(&self, id: TensorId) -> Option<(TensorId, u32)> {
        match self.tensors[id.0].storage {
            Storage::View {
                parent,
                channel_offset,
            } => Some((parent, channel_offset)),
            _ => None,
        }
    }

    /// The tensor that owns the memory of `id` (itself, or the parent of a view).
    fn root(&self, id: TensorId) -> TensorId {
        self.view_of(id).map_or(id, |(parent, _)| parent)
    }

    pub fn begin_stage(&mut self, name: impl Into<String>) {
        self.stages.push(Stage {
            name: name.into(),
            first_step: self.steps.len(),
        });
    }

    /// Appends a dispatch and returns its index (for [`CompiledPlan::update_params`]).
    pub fn push_step(&mut self, step: Step) -> usize {
        self.steps.push(step);
        self.steps.len() - 1
    }

    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// The steps, to swap a kernel for a variant with the same bindings and uniform block (tests
    /// run emulations of kernels the adapter cannot run).
    pub fn steps_mut(&mut self) -> &mut [Step] {
        &mut self.steps
    }

    /// Builds pipelines (through the cache), buffers and bind groups.
    pub fn compile(
        self,
        ctx: &Arc<GpuContext>,
        pipelines: &mut PipelineCache,
    ) -> Result<CompiledPlan> {
        let device = &ctx.device;
        let buffers = self.allocate(ctx)?;

        let alignment = ctx.limits.min_uniform_buffer_offset_alignment.max(16) as u64;
        let mut uniform_words: Vec<u32> = Vec::new();
        let mut offsets = Vec::with_capacity(self.steps.len());
        for step in &self.steps {
            let offset = (uniform_words.len() as u64 * 4).div_ceil(alignment) * alignment;
            uniform_words.resize((offset / 4) as usize, 0);
            offsets.push(offset);
            uniform_words.extend_from_slice(&step.params);
            // Uniform blocks are read in 16-byte rows.
            let start = (offset / 4) as usize;
            let padded = start + step.params.len().max(1).div_ceil(4) * 4;
            uniform_words.resize(padded, 0);
        }
        if uniform_words.is_empty() {
            uniform_words.resize(4, 0);
        }
        let uniform = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("plan uniforms"),
            size: uniform_words.len() as u64 * 4,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        ctx.queue
            .write_buffer(&uniform, 0, bytemuck::cast_slice(&uniform_words));

        let mut compiled_steps = Vec::with_capacity(self.steps.len());
        for (step, offset) in self.steps.iter().zip(&offsets) {
            let pipeline = pipelines.get(
                ctx,
                &step.kernel,
                &step.overrides,
                self.precision,
                step.f16_packed_inputs,
            )?;
            let workgroups = workgroups_for(
                step.threads,
                ctx.limits.max_compute_workgroups_per_dimension,
            )?;
            compiled_steps.push(CompiledStep {
                label: step.label.clone(),
                pipeline,
                bind_group: None,
                uniform_offset: *offset,
                uniform_size: (step.params.len().max(1) as u64 * 4).div_ceil(16) * 16,
                bindings: step.reads.iter().chain(&step.writes).copied().collect(),
                workgroups,
            });
        }
        let mut compiled = CompiledPlan {
            ctx: ctx.clone(),
            shapes: self.tensors.iter().map(|t| t.shape.clone()).collect(),
            element_bytes: self.tensors.iter().map(|t| t.bytes_per_element).collect(),
            view_parents: self
                .tensors
                .iter()
                .map(|t| match t.storage {
                    Storage::View { parent, .. } => Some(parent),
                    _ => None,
                })
                .collect(),
            buffers,
            uniform,
            steps: compiled_steps,
            stages: self.stages,
            activation_bytes: 0,
        };
        compiled.activation_bytes = compiled.sum_activation_bytes(&self.tensors);
        for i in 0..compiled.steps.len() {
            compiled.rebuild_bind_group(i);
        }
        Ok(compiled)
    }

    fn tensor_bytes(&self, t: usize) -> u64 {
        (self.tensors[t].elements() * self.tensors[t].bytes_per_element as u64)
            .next_multiple_of(4)
            .max(16)
    }

    /// Liveness allocation of the activations, without touching the GPU: a tensor lives from the
    /// first step that writes it to the last step that reads it (or to the end, for an output);
    /// tensors whose lifetimes do not meet share a slot (greedy by size).
    pub fn memory_plan(&self) -> MemoryPlan {
        let n = self.tensors.len();
        let mut first_write = vec![usize::MAX; n];
        let mut last_use = vec![0usize; n];
        for (i, step) in self.steps.iter().enumerate() {
            // A view is born and dies with its parent.
            for t in step.writes.iter().map(|&t| self.root(t)) {
                first_write[t.0] = first_write[t.0].min(i);
                last_use[t.0] = last_use[t.0].max(i);
            }
            for t in step.reads.iter().map(|&t| self.root(t)) {
                last_use[t.0] = last_use[t.0].max(i);
            }
        }
        if let Some(last) = self.steps.len().checked_sub(1) {
            for t in self.outputs.iter().map(|&t| self.root(t)) {
                last_use[t.0] = last;
            }
        }
        let mut without_reuse = 0;
        let mut placed: Vec<usize> = Vec::new();
        for (t, info) in self.tensors.iter().enumerate() {
            // Declared but never written activations need no memory: nothing reads them either.
            if matches!(info.storage, Storage::Activation) && first_write[t] != usize::MAX {
                placed.push(t);
                without_reuse += self.tensor_bytes(t);
            }
        }
        // The largest live set, sweeping the steps: a tensor is live from the step that first
        // writes it to the last step that uses it.
        let mut change = vec![0i64; self.steps.len() + 1];
        for &t in &placed {
            change[first_write[t]] += self.tensor_bytes(t) as i64;
            change[last_use[t] + 1] -= self.tensor_bytes(t) as i64;
        }
        let (mut live, mut peak_live) = (0i64, 0i64);
        for delta in &change {
            live += delta;
            peak_live = peak_live.max(live);
        }
        // Greedy by size: the largest tensors first, each into the smallest slot none of whose
        // tensors is live at the same time, else a new slot of its size. Sizes only fall, so a
        // slot is as large as its first tensor and never grows. Lifetimes that share a step
        // conflict, so no step reads and writes one slot.
        placed.sort_by_key(|&t| (std::cmp::Reverse(self.tensor_bytes(t)), t));
        let mut slot_of = vec![None; n];
        let mut slot_bytes: Vec<u64> = Vec::new();
        let mut slot_lifetimes: Vec<Vec<(usize, usize)>> = Vec::new();
        for t in placed {
            let (start, end) = (first_write[t], last_use[t]);
            let free = |lifetimes: &Vec<(usize, usize)>| {
                lifetimes.iter().all(|&(s, e)| e < start || end < s)
            };
            let slot = (0..slot_bytes.len())
                .filter(|&k| free(&slot_lifetimes[k]))
                .min_by_key(|&k| slot_bytes[k])
                .unwrap_or_else(|| {
                    slot_bytes.push(self.tensor_bytes(t));
                    slot_lifetimes.push(Vec::new());
                    slot_bytes.len() - 1
                });
            slot_lifetimes[slot].push((start, end));
            slot_of[t] = Some(slot);
        }
        let peak_live = peak_live as u64;
        MemoryPlan {
            slot_of,
            slot_bytes,
            peak_live_bytes: peak_live,
            bytes_without_reuse: without_reuse,
        }
    }

    fn allocate(&self, ctx: &GpuContext) -> Result<Vec<Arc<wgpu::Buffer>>> {
        let memory = self.memory_plan();
        let max_binding = ctx.limits.max_storage_buffer_binding_size;
        let mut slots = Vec::with_capacity(memory.slot_bytes.len());
        for (slot, &bytes) in memory.slot_bytes.iter().enumerate() {
            let tensor = memory
                .slot_of
                .iter()
                .position(|s| *s == Some(slot))
                .unwrap_or(0);
            let label = &self.tensors[tensor].label;
            if bytes > max_binding {
                return Err(SagittaError::Gpu(format!(
                    "tensor '{label}' needs {} MiB but this adapter binds at most {} MiB per buffer; \
                     use a smaller input_size or a GPU with larger limits",
                    bytes >> 20,
                    max_binding >> 20
                )));
            }
            slots.push(Arc::new(ctx.device.create_buffer(
                &wgpu::BufferDescriptor {
                    label: Some(label),
                    size: bytes,
                    usage: wgpu::BufferUsages::STORAGE
                        | wgpu::BufferUsages::COPY_SRC
                        | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                },
            )));
        }
        let own = |info: &TensorInfo, slot: &Option<usize>| match (&info.storage, slot) {
            (Storage::Bound(buffer), _) => Some(buffer.clone()),
            (Storage::Activation, Some(slot)) => Some(slots[*slot].clone()),
            (Storage::Activation, None) | (Storage::View { .. }, _) => None,
        };
        let assigned: Vec<Option<Arc<wgpu::Buffer>>> = (0..self.tensors.len())
            .map(|t| {
                let root = self.root(TensorId(t)).0;
                own(&self.tensors[root], &memory.slot_of[root])
            })
            .collect();
        let placeholder = Arc::new(ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("unused tensor"),
            size: 16,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        }));
        Ok(assigned
            .into_iter()
            .map(|b| b.unwrap_or_else(|| placeholder.clone()))
            .collect())
    }
}

fn workgroups_for(threads: Threads, max_per_dim: u32) -> Result<[u32; 3]> {
    match threads {
        Threads::Grid(grid) => {
            if grid.iter().any(|&g| g > max_per_dim) {
                return Err(SagittaError::Gpu(format!(
                    "workgroup grid {grid:?} exceeds the adapter's {max_per_dim} per dimension"
                )));
            }
            Ok(grid.map(|g| g.max(1)))
        }
        Threads::Groups(g) => {
            if g > max_per_dim {
                return Err(SagittaError::Gpu(format!(
                    "{g} workgroups exceed the adapter's {max_per_dim}"
                )));
            }
            Ok([g.max(1), 1, 1])
        }
        Threads::Linear(t) => {
            let groups = t.div_ceil(WORKGROUP_SIZE as u64).max(1);
            if groups <= max_per_dim as u64 {
                return Ok([groups as u32, 1, 1]);
            }
            let y = groups.div_ceil(max_per_dim as u64);
            let x = groups.div_ceil(y);
            if y > max_per_dim as u64 {
                return Err(SagittaError::Gpu(format!(
                    "{t} threads are too many for one dispatch"
                )));
            }
            Ok([x as u32, y as u32, 1])
        }
    }
}

struct CompiledStep {
    label: String,
    pipeline: Arc<wgpu::ComputePipeline>,
    bind_group: Option<wgpu::BindGroup>,
    uniform_offset: u64,
    uniform_size: u64,
    bindings: Vec<TensorId>,
    workgroups: [u32; 3],
}

/// A plan ready to encode: everything built, nothing allocated per call.
pub struct CompiledPlan {
    ctx: Arc<GpuContext>,
    shapes: Vec<Vec<u32>>,
    element_bytes: Vec<u32>,
    /// The parent of each channel view (None for other tensors).
    view_parents: Vec<Option<TensorId>>,
    buffers: Vec<Arc<wgpu::Buffer>>,
    uniform: wgpu::Buffer,
    steps: Vec<CompiledStep>,
    stages: Vec<Stage>,
    activation_bytes: u64,
}

impl CompiledPlan {
    fn sum_activation_bytes(&self, tensors: &[TensorInfo]) -> u64 {
        let mut seen = std::collections::HashSet::new();
        let mut total = 0;
        for (t, info) in tensors.iter().enumerate() {
            if matches!(info.storage, Storage::Activation) {
                let b = &self.buffers[t];
                if seen.insert(Arc::as_ptr(b) as usize) {
                    total += b.size();
                }
            }
        }
        total
    }

    /// Bytes of the activation buffers after liveness reuse.
    pub fn activation_bytes(&self) -> u64 {
        self.activation_bytes
    }

    pub fn buffer(&self, id: TensorId) -> &Arc<wgpu::Buffer> {
        &self.buffers[id.0]
    }

    pub fn shape(&self, id: TensorId) -> &[u32] {
        &self.shapes[id.0]
    }

    pub fn stages(&self) -> &[Stage] {
        &self.stages
    }

    pub fn step_count(&self) -> usize {
        self.steps.len()
    }

    /// Rewrites a step's uniform words (e.g. the resize scale for a new image size); the write
    /// is staged and lands with the next submission.
    pub fn update_params(&self, step: usize, params: &[u32]) {
        let s = &self.steps[step];
        assert!(
            params.len() as u64 * 4 <= s.uniform_size,
            "step {} params grew",
            s.label
        );
        self.ctx.queue.write_buffer(
            &self.uniform,
            s.uniform_offset,
            bytemuck::cast_slice(params),
        );
    }

    /// Points a bound tensor at a new buffer (e.g. a larger input image) and rebuilds only the
    /// bind groups that use it.
    pub fn rebind(&mut self, id: TensorId, buffer: Arc<wgpu::Buffer>) {
        // Views of the tensor share its buffer.
        let affected: Vec<TensorId> = (0..self.buffers.len())
            .map(TensorId)
            .filter(|&t| t == id || self.view_parents[t.0] == Some(id))
            .collect();
        for &t in &affected {
            self.buffers[t.0] = buffer.clone();
        }
        for i in 0..self.steps.len() {
            if self.steps[i].bindings.iter().any(|b| affected.contains(b)) {
                self.rebuild_bind_group(i);
            }
        }
    }

    fn rebuild_bind_group(&mut self, i: usize) {
        let step = &self.steps[i];
        let layout = step.pipeline.get_bind_group_layout(0);
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: &self.uniform,
                offset: step.uniform_offset,
                size: wgpu::BufferSize::new(step.uniform_size),
            }),
        }];
        for (k, t) in step.bindings.iter().enumerate() {
            entries.push(wgpu::BindGroupEntry {
                binding: k as u32 + 1,
                resource: self.buffers[t.0].as_entire_binding(),
            });
        }
        let bind_group = self
            .ctx
            .device
            .create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(&step.label),
                layout: &layout,
                entries: &entries,
            });
        self.steps[i].bind_group = Some(bind_group);
    }

    /// Records every step into the encoder, one compute pass per stage, with optional
    /// timestamps at each stage's start and end (query `2*s` and `2*s+1`).
    pub fn encode(&self, encoder: &mut wgpu::CommandEncoder, timestamps: Option<&wgpu::QuerySet>) {
        let mut bounds: Vec<(String, usize, usize)> = Vec::new();
        if self.stages.is_empty() {
            bounds.push(("all".into(), 0, self.steps.len()));
        } else {
            if self.stages[0].first_step > 0 {
                bounds.push(("prologue".into(), 0, self.stages[0].first_step));
            }
            for (s, stage) in self.stages.iter().enumerate() {
                let end = self
                    .stages
                    .get(s + 1)
                    .map_or(self.steps.len(), |n| n.first_step);
                bounds.push((stage.name.clone(), stage.first_step, end));
            }
        }
        for (s, (name, start, end)) in bounds.iter().enumerate() {
            let timestamp_writes = timestamps.map(|q| wgpu::ComputePassTimestampWrites {
                query_set: q,
                beginning_of_pass_write_index: Some(2 * s as u32),
                end_of_pass_write_index: Some(2 * s as u32 + 1),
            });
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(name),
                timestamp_writes,
            });
            for step in &self.steps[*start..*end] {
                pass.set_pipeline(&step.pipeline);
                pass.set_bind_group(0, step.bind_group.as_ref(), &[]);
                let [x, y, z] = step.workgroups;
                pass.dispatch_workgroups(x, y, z);
            }
        }
    }

    /// The number of passes `encode` records (for sizing a timestamp query set).
    pub fn pass_count(&self) -> usize {
        if self.stages.is_empty() {
            1
        } else {
            self.stages.len() + usize::from(self.stages[0].first_step > 0)
        }
    }

    /// Pass names in the order `encode` records them.
    pub fn pass_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        if self.stages.is_empty() {
            names.push("all".into());
        } else {
            if self.stages[0].first_step > 0 {
                names.push("prologue".into());
            }
            names.extend(self.stages.iter().map(|s| s.name.clone()));
        }
        names
    }
}

impl CompiledPlan {
    /// Runs the plan once and reads the given tensors back (kernel tests and debugging; the
    /// models read their single result table instead).
    pub fn run_and_read(&self, outputs: &[TensorId]) -> Result<Vec<Vec<f32>>> {
        if outputs.iter().any(|t| self.view_parents[t.0].is_some()) {
            return Err(SagittaError::InvalidInput(
                "a channel view is read through the tensor it views".into(),
            ));
        }
        let device = &self.ctx.device;
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("run_and_read"),
        });
        self.encode(&mut encoder, None);
        let sizes: Vec<u64> = outputs
            .iter()
            .map(|t| {
                let elements = self.shapes[t.0].iter().map(|&d| d as u64).product::<u64>();
                (elements * self.element_bytes[t.0] as u64).next_multiple_of(4)
            })
            .collect();
        let total: u64 = sizes.iter().sum();
        let staging = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("run_and_read staging"),
            size: total.max(16),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut offset = 0;
        for (t, size) in outputs.iter().zip(&sizes) {
            encoder.copy_buffer_to_buffer(&self.buffers[t.0], 0, &staging, offset, *size);
            offset += size;
        }
        let submission = self.ctx.submit(encoder);
        let bytes = self.ctx.read_buffer(&staging, total.max(16), submission)?;
        let mut out = Vec::new();
        let mut offset = 0usize;
        for (t, size) in outputs.iter().zip(sizes) {
            let elements = self.shapes[t.0]
                .iter()
                .map(|&d| d as usize)
                .product::<usize>();
            let chunk = &bytes[offset..offset + size as usize];
            let values: Vec<f32> = if self.element_bytes[t.0] == 2 {
                chunk
                    .chunks_exact(2)
                    .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect()
            } else {
                chunk
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect()
            };
            out.push(values[..elements].to_vec());
            offset += size as usize;
        }
        Ok(out)
    }
}

impl Plan {
    /// A plan that runs step `index` `repeats` times on deterministic pseudo-random inputs of the
    /// same shapes (bound tensors such as weights keep their buffers): per-kernel benchmarks.
    pub fn isolate_step(&self, ctx: &GpuContext, index: usize, repeats: usize) -> Plan {
        let step = &self.steps[index];
        let mut plan = Plan::with_precision(self.precision);
        let mut remap: HashMap<TensorId, TensorId> = HashMap::new();
        for &t in &step.reads {
            let info = &self.tensors[t.0];
            let storage = match &info.storage {
                Storage::Bound(buffer) => Storage::Bound(buffer.clone()),
                Storage::Activation | Storage::View { .. } => {
                    let data: Vec<f32> = (0..info.elements())
                        .map(|i| ((i.wrapping_mul(2654435761) % 2001) as f32 / 1000.0) - 1.0)
                        .collect();
                    Storage::Bound(if info.bytes_per_element == 2 {
                        buffers::upload_f16(ctx, &info.label, &data)
                    } else {
                        buffers::upload(ctx, &info.label, &data)
                    })
                }
            };
            let id = plan.push(
                info.label.clone(),
                &info.shape,
                storage,
                info.bytes_per_element,
            );
            remap.insert(t, id);
        }
        for &t in &step.writes {
            if remap.contains_key(&t) {
                continue;
            }
            // A written view stays a view (its kernel writes at the view's channel offset) of a
            // fresh tensor shaped like its parent.
            let root = self.root(t);
            let info = &self.tensors[root.0];
            let parent = plan.push(
                info.label.clone(),
                &info.shape,
                Storage::Activation,
                info.bytes_per_element,
            );
            let id = match self.tensors[t.0].storage {
                Storage::View { channel_offset, .. } => {
                    let view = &self.tensors[t.0];
                    plan.push(
                        view.label.clone(),
                        &view.shape,
                        Storage::View {
                            parent,
                            channel_offset,
                        },
                        view.bytes_per_element,
                    )
                }
                _ => parent,
            };
            remap.insert(t, id);
        }
        plan.begin_stage(step.label.clone());
        for _ in 0..repeats.max(1) {
            plan.push_step(Step {
                reads: step.reads.iter().map(|t| remap[t]).collect(),
                writes: step.writes.iter().map(|t| remap[t]).collect(),
                ..step.clone()
            });
        }
        plan
    }
}

impl CompiledPlan {
    /// Runs the plan once with timestamp queries and returns the GPU time of all its passes in
    /// milliseconds, or None when the adapter has no timestamp queries.
    pub fn gpu_time_ms(&self) -> Result<Option<f64>> {
        if !self.ctx.has_timestamps() {
            return Ok(None);
        }
        let device = &self.ctx.device;
        let timer = StageTimer::new(&self.ctx, self.pass_count() as u32);
        let staging = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("kernel timing readback"),
            size: timer.bytes(),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("kernel timing"),
        });
        self.encode(&mut encoder, Some(timer.query_set()));
        timer.resolve_into(&mut encoder, &staging, 0);
        let submission = self.ctx.submit(encoder);
        let raw = self.ctx.read_buffer(&staging, timer.bytes(), submission)?;
        let passes = StageTimer::milliseconds(&self.ctx, &raw, self.pass_names());
        Ok(Some(passes.iter().map(|(_, ms)| ms).sum()))
    }
}

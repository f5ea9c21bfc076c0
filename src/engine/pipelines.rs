//! Compiled compute pipelines, keyed by kernel, precision variant and override constants.

use std::collections::HashMap;
use std::sync::Arc;

use super::device::GpuContext;
use super::kernel::{with_f16_packed_inputs, Kernel, Precision};
use crate::error::{Result, SagittaError};

/// Pipelines keyed by kernel and override constants, shared by every plan of a model.
#[derive(Default)]
pub struct PipelineCache {
    modules: HashMap<String, wgpu::ShaderModule>,
    pipelines: HashMap<String, Arc<wgpu::ComputePipeline>>,
}

impl PipelineCache {
    pub fn get(
        &mut self,
        ctx: &GpuContext,
        kernel: &Kernel,
        overrides: &[(&'static str, f64)],
        precision: Precision,
        f16_packed_inputs: &[&str],
    ) -> Result<Arc<wgpu::ComputePipeline>> {
        let packed = precision == Precision::F16
            && kernel.has_activations()
            && (!ctx.features.contains(wgpu::Features::SHADER_F16) || ctx.packed_f16());
        let source = if packed {
            kernel.packed_f16_source().map_err(SagittaError::Gpu)?
        } else {
            kernel.source_for(precision)
        };
        let variant = if packed {
            "f16-packed"
        } else if source.starts_with("enable f16") {
            "f16"
        } else {
            "f32"
        };
        let source = if f16_packed_inputs.is_empty() {
            source
        } else {
            with_f16_packed_inputs(&source, kernel.name, f16_packed_inputs)
                .map_err(SagittaError::Gpu)?
        };
        let module_key = format!("{}:{variant}:{f16_packed_inputs:?}", kernel.name);
        let key = format!("{module_key}:{}:{overrides:?}", kernel.entry);
        if let Some(p) = self.pipelines.get(&key) {
            return Ok(p.clone());
        }
        if variant == "f16" && !ctx.features.contains(wgpu::Features::SHADER_F16) {
            return Err(SagittaError::Gpu(format!(
                "{} needs the adapter's shader-f16 feature, which {} lacks",
                kernel.name, ctx.info.name
            )));
        }
        let device = &ctx.device;
        let module = self.modules.entry(module_key).or_insert_with(|| {
            let descriptor = wgpu::ShaderModuleDescriptor {
                label: Some(kernel.name),
                source: wgpu::ShaderSource::Wgsl(source.into()),
            };
            if kernel.trusted {
                // SAFETY: `Kernel::trusted` is set only for shaders that guard every index
                // and loop themselves against host-checked sizes (see its documentation).
                unsafe {
                    device.create_shader_module_trusted(
                        descriptor,
                        wgpu::ShaderRuntimeChecks::unchecked(),
                    )
                }
            } else {
                device.create_shader_module(descriptor)
            }
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(&key),
            layout: None,
            module,
            entry_point: Some(kernel.entry),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants: overrides,
                zero_initialize_workgroup_memory: false,
            },
            cache: ctx.pipeline_cache(),
        });
        let pipeline = Arc::new(pipeline);
        self.pipelines.insert(key, pipeline.clone());
        Ok(pipeline)
    }

    pub fn len(&self) -> usize {
        self.pipelines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pipelines.is_empty()
    }
}

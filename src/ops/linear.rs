//! `linear`: a fully connected layer, y = x W^T + b with an optional ReLU or sigmoid epilogue
//! (PyTorch's `nn.Linear`; twin: `tools/sagitta_ref/ops/linear.py`). [`LinearLayer`] uploads the
//! weights once, packed as vec4 rows `[out][ceil(in / 4)]` (zero-padded), in f32 or f16.

use std::sync::Arc;

use crate::engine::buffers::{upload, upload_f16};
use crate::engine::kernel::UniformParams;
use crate::engine::{GpuContext, Kernel, Plan, Step, TensorId, Threads};
use crate::error::{Result, SagittaError};

use super::conv2d::{Activation, WeightStorage};
use super::invariant;

uniform_params! {
    pub struct LinearParams {
        pub batch: u32,
        pub in_features: u32,
        pub out_features: u32,
        /// ceil(in_features / 4): vec4 weights per output row.
        pub in4: u32,
    }
}

pub const LINEAR: Kernel = kernel!("linear", "linear", "main", LinearParams);

/// CPU-side weights of a fully connected layer in PyTorch layout.
#[derive(Debug, Clone)]
pub struct LinearWeights {
    pub in_features: usize,
    pub out_features: usize,
    /// [out_features, in_features]
    pub weight: Vec<f32>,
    /// `[out_features]`
    pub bias: Vec<f32>,
    /// How the packed weights are kept on the GPU (f16: rounded, unpacked to f32 in the kernel).
    pub storage: WeightStorage,
}

/// A fully connected layer on the GPU.
pub struct LinearLayer {
    pub in_features: u32,
    pub out_features: u32,
    pub activation: Activation,
    storage: WeightStorage,
    weight: Arc<wgpu::Buffer>,
    bias: Arc<wgpu::Buffer>,
}

impl LinearLayer {
    pub fn new(
        ctx: &GpuContext,
        label: &str,
        weights: &LinearWeights,
        activation: Activation,
    ) -> Result<Self> {
        let (inf, outf) = (weights.in_features, weights.out_features);
        invariant(inf > 0 && outf > 0, || {
            format!("{label}: empty linear layer ({outf}x{inf})")
        })?;
        let too_large = || SagittaError::Config(format!("{label}: {outf}x{inf} too large"));
        let in4 = inf.div_ceil(4);
        u32::try_from(outf.checked_mul(in4 * 4).ok_or_else(too_large)?).map_err(|_| too_large())?;
        if weights.weight.len() != outf * inf || weights.bias.len() != outf {
            return Err(SagittaError::Config(format!(
                "{label}: weight of {} values and bias of {} for {outf}x{inf}",
                weights.weight.len(),
                weights.bias.len()
            )));
        }
        let mut packed = vec![0.0f32; outf * in4 * 4];
        for (o, row) in weights.weight.chunks_exact(inf).enumerate() {
            packed[o * in4 * 4..][..inf].copy_from_slice(row);
        }
        let weight = match weights.storage {
            WeightStorage::F32 => upload(ctx, &format!("{label} weight"), &packed),
            WeightStorage::F16 => upload_f16(ctx, &format!("{label} weight"), &packed),
        };
        Ok(Self {
            in_features: inf as u32,
            out_features: outf as u32,
            activation,
            storage: weights.storage,
            weight,
            bias: upload(ctx, &format!("{label} bias"), &weights.bias),
        })
    }

    /// GPU bytes of the packed weights and the bias.
    pub fn weight_bytes(&self) -> u64 {
        self.weight.size() + self.bias.size()
    }

    pub fn weight_storage(&self) -> WeightStorage {
        self.storage
    }

    /// Adds the layer to the plan: [N, in] (or [N, in, 1, 1], as a global pool leaves it) ->
    /// [N, out] in the plan's activation precision.
    pub fn apply(&self, plan: &mut Plan, label: &str, input: TensorId) -> Result<TensorId> {
        let shape = plan.shape(input).to_vec();
        let flat = match shape.as_slice() {
            [n, f] | [n, f, 1, 1] => Some((*n, *f)),
            _ => None,
        };
        let (n, features) = flat.ok_or_else(|| {
            SagittaError::InvalidInput(format!(
                "{label}: expected [N, {}] or [N, {}, 1, 1], got {shape:?}",
                self.in_features, self.in_features
            ))
        })?;
        invariant(n > 0 && features == self.in_features, || {
            format!(
                "{label}: expected [N >= 1, {}], got {shape:?}",
                self.in_features
            )
        })?;
        let groups = n as u64 * self.out_features as u64;
        let too_large = || SagittaError::InvalidInput(format!("{label}: batch {n} too large"));
        let groups = u32::try_from(groups).map_err(|_| too_large())?;
        u32::try_from(n as u64 * self.in_features as u64).map_err(|_| too_large())?;
        let weight = plan.bound(
            format!("{label}.weight"),
            &[self.weight.size() as u32 / 4],
            self.weight.clone(),
        );
        let bias = plan.bound(
            format!("{label}.bias"),
            &[self.bias.size() as u32 / 4],
            self.bias.clone(),
        );
        let output = plan.activation(label, &[n, self.out_features]);
        let params = LinearParams {
            batch: n,
            in_features: self.in_features,
            out_features: self.out_features,
            in4: self.in_features.div_ceil(4),
        };
        plan.push_step(Step {
            label: label.to_string(),
            kernel: LINEAR,
            overrides: vec![("ACTIVATION", f64::from(self.activation.code()))],
            params: params.words(),
            reads: vec![input, weight, bias],
            writes: vec![output],
            threads: Threads::Groups(groups),
            f16_packed_inputs: match self.storage {
                WeightStorage::F32 => &[],
                WeightStorage::F16 => &["weight"],
            },
        });
        Ok(output)
    }
}

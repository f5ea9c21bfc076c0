//! The tensor-core convolution's self-check: it runs only where it matched the scalar kernel.

use std::sync::Arc;

use crate::engine::buffers::{storage_buffer, upload_f16};
use crate::engine::{GpuContext, PipelineCache, Plan, Precision};
use crate::error::Result;

use super::{BatchNorm, ConvAlgorithm, ConvLayer, ConvWeights, CONV2D_COOP};

/// Runs a layer with partial tiles, a prologue, a residual and ReLU through the cooperative-matrix
/// kernel and through the scalar tiled kernel (both f16 activations) and compares them. `None`:
/// they agree; `Some(problem)`: they do not. Errors the device raises are caught, not panics.
pub fn cooperative_matrix_self_check(ctx: &Arc<GpuContext>) -> Result<Option<String>> {
    let (n, in_c, out_c, h, w) = (1usize, 40usize, 72usize, 13u32, 11u32);
    let filler = |len: usize, salt: usize| -> Vec<f32> {
        (0..len)
            .map(|i| ((i * 7919 + salt * 104729) % 2001) as f32 / 1000.0 - 1.0)
            .collect()
    };
    let scale = 1.0 / ((in_c * 9) as f32).sqrt();
    let conv = ConvWeights {
        out_c,
        in_c,
        kh: 3,
        kw: 3,
        storage: super::WeightStorage::F32,
        weight: filler(out_c * in_c * 9, 1)
            .iter()
            .map(|v| v * scale)
            .collect(),
        bias: filler(out_c, 2),
    };
    let bn = BatchNorm {
        scale: filler(in_c, 3).iter().map(|v| v.abs() + 0.5).collect(),
        shift: filler(in_c, 4),
    };
    let layer = ConvLayer::with_algorithm(
        ctx,
        "coop self-check",
        &[conv],
        super::ConvGeometry::square(1, 1),
        super::Activation::Relu,
        Some(&[bn]),
        ConvAlgorithm::Tiled,
    )?;
    let input = filler(n * in_c * (h * w) as usize, 5);
    let residual = filler(n * out_c * (h * w) as usize, 6);
    let run = |cooperative: bool| -> Result<(Vec<f32>, &'static str)> {
        let mut plan = Plan::with_precision(Precision::F16);
        plan.allow_cooperative_matrix(cooperative);
        let unused = plan.bound("unused", &[4], storage_buffer(ctx, "unused", 16));
        let x = plan.bound_activation(
            "input",
            &[n as u32, in_c as u32, h, w],
            upload_f16(ctx, "input", &input),
        );
        let r = plan.bound_activation(
            "residual",
            &[n as u32, out_c as u32, h, w],
            upload_f16(ctx, "residual", &residual),
        );
        let y = layer.apply(&mut plan, "check", x, Some(r), unused)?;
        let kernel = plan.steps().last().map_or("", |s| s.kernel.name);
        let mut pipelines = PipelineCache::default();
        let compiled = plan.compile(ctx, &mut pipelines)?;
        Ok((compiled.run_and_read(&[y])?.remove(0), kernel))
    };
    let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::Validation);
    let cooperative = run(true);
    if let Some(error) = pollster::block_on(scope.pop()) {
        return Ok(Some(format!("device error: {error}")));
    }
    let (got, kernel) = cooperative?;
    if kernel != CONV2D_COOP.name {
        return Ok(Some(format!("the plan chose {kernel}")));
    }
    let (expected, _) = run(false)?;
    let magnitude = expected.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let worst = got
        .iter()
        .zip(&expected)
        .map(|(a, b)| (a - b).abs())
        .fold(
            0.0f32,
            |m, d| if d.is_nan() { f32::INFINITY } else { m.max(d) },
        );
    // Both round inputs, products and outputs to f16; their sums differ in order only.
    let tolerance = 1e-2 * (1.0 + magnitude);
    Ok((worst > tolerance)
        .then(|| format!("largest difference {worst:.4} > {tolerance:.4} from the scalar kernel")))
}

/// Whether f16 plans may run their tiled convolutions on cooperative matrices on this device:
/// the device was opened with them and meets the kernel's needs
/// ([`GpuContext::cooperative_matrix_capable`]), and the kernel matched the scalar one on a test
/// layer (checked once per device; the problem, if any, is kept by the device and shown by
/// `sagitta info`).
pub fn cooperative_matrix_usable(ctx: &Arc<GpuContext>) -> bool {
    if !ctx.cooperative_matrix_capable() {
        return false;
    }
    ctx.cooperative_matrix_verdict(|| match cooperative_matrix_self_check(ctx) {
        Ok(None) => Ok(()),
        Ok(Some(problem)) => Err(format!("failed its self-check: {problem}")),
        Err(e) => Err(format!("the self-check could not run: {e}")),
    })
    .is_ok()
}

// Shared part of upsample_bilinear(_add).wgsl: the bilinear sample of `x` for output element
// `index`, PyTorch's upsample_bilinear2d arithmetic. The host computes the scales in f32 as
// PyTorch does (align_corners: (in - 1) / (out - 1), 0 for a single output; else in / out).

// Source coordinate of output index `dst` along one axis, and its two taps and weight.
fn bilinear_taps(dst: u32, scale: f32, size: u32) -> vec3<f32> {
    var src: f32;
    if (p.align_corners != 0u) {
        src = scale * f32(dst);
    } else {
        src = max(scale * (f32(dst) + 0.5) - 0.5, 0.0);
    }
    let i0 = min(u32(src), size - 1u);
    let i1 = min(i0 + 1u, size - 1u);
    return vec3<f32>(f32(i0), f32(i1), src - f32(i0));
}

fn bilinear(index: u32) -> f32 {
    let ox = index % p.out_w;
    let oy = (index / p.out_w) % p.out_h;
    let plane = index / (p.out_w * p.out_h);
    let ty = bilinear_taps(oy, p.scale_h, p.in_h);
    let tx = bilinear_taps(ox, p.scale_w, p.in_w);
    let base = plane * p.in_h * p.in_w;
    let r0 = base + u32(ty.x) * p.in_w;
    let r1 = base + u32(ty.y) * p.in_w;
    let x0 = u32(tx.x);
    let x1 = u32(tx.y);
    let top = (1.0 - tx.z) * f32(x[r0 + x0]) + tx.z * f32(x[r0 + x1]);
    let bottom = (1.0 - tx.z) * f32(x[r1 + x0]) + tx.z * f32(x[r1 + x1]);
    return (1.0 - ty.z) * top + ty.z * bottom;
}

// Where output element `index` of the [N, C, out_h, out_w] result goes: itself, or inside a
// channel view (channels out_c_offset.. of an [N, out_c_total, out_h, out_w] concatenation).
fn output_index(index: u32) -> u32 {
    let pixels = p.out_h * p.out_w;
    let plane = index / pixels;
    let n = plane / p.channels;
    let c = plane % p.channels;
    return (n * p.out_c_total + p.out_c_offset + c) * pixels + index % pixels;
}

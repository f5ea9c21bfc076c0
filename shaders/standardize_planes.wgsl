// Zero mean, unit variance over each plane of [planes, plane_size] on its own:
// (x - mean) / max(std, eps), population std, as standardize.wgsl does for a whole image. One
// workgroup per plane reads its plane three times (mean, squared deviations, then the result):
// the planes are crops of a few thousand values, so no statistics buffer and second dispatch are
// needed, and the two-pass variance keeps f32 accurate. `reduce` is workgroup_sum.wgsl's.

// `act` is the activation storage type: f32, or f16 in the f16 precision variant (see
// plan::Precision), always computed in f32.
alias act = f32;

struct Params {
    planes: u32,
    plane_size: u32,
    eps: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> values: array<act>;
@group(0) @binding(2) var<storage, read_write> result: array<act>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) local: u32, @builtin(workgroup_id) group: vec3<u32>) {
    // The workgroup index is uniform: the whole group returns together, before any barrier.
    let plane = group.x;
    if (plane >= p.planes) {
        return;
    }
    let base = plane * p.plane_size;
    var sum = 0.0;
    for (var i = local; i < p.plane_size; i += THREADS) {
        sum += f32(values[base + i]);
    }
    let mean = reduce(local, sum) / f32(p.plane_size);
    var squares = 0.0;
    for (var i = local; i < p.plane_size; i += THREADS) {
        let d = f32(values[base + i]) - mean;
        squares += d * d;
    }
    let inv_std = 1.0 / max(sqrt(reduce(local, squares) / f32(p.plane_size)), p.eps);
    for (var i = local; i < p.plane_size; i += THREADS) {
        result[base + i] = act((f32(values[base + i]) - mean) * inv_std);
    }
}

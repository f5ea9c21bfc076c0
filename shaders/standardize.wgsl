// Zero mean, unit variance over the whole image: (x - mean) / max(std, eps), population std.
// `statistics` runs as a single workgroup (two passes: mean, then squared deviations, which keeps
// f32 accurate on a million pixels); `apply` is elementwise. `reduce` is workgroup_sum.wgsl's.

struct Params {
    count: u32,
    eps: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> values: array<f32>;
@group(0) @binding(2) var<storage, read_write> stats: array<f32>;

@compute @workgroup_size(256)
fn statistics(@builtin(local_invocation_index) local: u32) {
    var sum = 0.0;
    for (var i = local; i < p.count; i += THREADS) {
        sum += values[i];
    }
    let mean = reduce(local, sum) / f32(p.count);
    var squares = 0.0;
    for (var i = local; i < p.count; i += THREADS) {
        let d = values[i] - mean;
        squares += d * d;
    }
    let variance = reduce(local, squares) / f32(p.count);
    if (local == 0u) {
        stats[0] = mean;
        stats[1] = 1.0 / max(sqrt(variance), p.eps);
    }
}

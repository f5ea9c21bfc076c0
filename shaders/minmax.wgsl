// Min-max statistics of a whole tensor for `minmax_apply.wgsl`: one workgroup reduces the
// minimum and maximum in f32 and writes stats[0] = min, stats[1] = max - min.

struct Params {
    count: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> values: array<f32>;
@group(0) @binding(2) var<storage, read_write> stats: array<f32>;

const THREADS: u32 = 256u;
var<workgroup> lows: array<f32, 256>;
var<workgroup> highs: array<f32, 256>;

@compute @workgroup_size(256)
fn statistics(@builtin(local_invocation_index) local: u32) {
    // Every thread starts from a real value (count >= 1, checked by the host).
    var low = values[0];
    var high = low;
    for (var i = local; i < p.count; i += THREADS) {
        low = min(low, values[i]);
        high = max(high, values[i]);
    }
    lows[local] = low;
    highs[local] = high;
    workgroupBarrier();
    for (var stride = THREADS / 2u; stride > 0u; stride = stride / 2u) {
        if (local < stride) {
            lows[local] = min(lows[local], lows[local + stride]);
            highs[local] = max(highs[local], highs[local + stride]);
        }
        workgroupBarrier();
    }
    if (local == 0u) {
        stats[0] = lows[0];
        stats[1] = highs[0] - lows[0];
    }
}

// Spatial softmax of each heatmap written as a layer of a host's R32Float 2D-array storage
// texture (the probability maps behind the DSNT coordinates, for a viewer to draw), one
// workgroup per heatmap. Same max-subtracted softmax as softmax_dsnt.wgsl.

// `act` is the activation storage type: f32, or f16 in the f16 precision variant (see
// plan::Precision), always computed in f32.
alias act = f32;

struct Params {
    heatmaps: u32,
    height: u32,
    width: u32,
    first_layer: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<act>;
@group(0) @binding(2) var maps: texture_storage_2d_array<r32float, write>;

const THREADS: u32 = 256u;
var<workgroup> partial: array<f32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) local: u32) {
    let heatmap = wid.x;
    if (heatmap >= p.heatmaps) {
        return;
    }
    let count = p.height * p.width;
    let base = heatmap * count;

    var peak = -3.4e38;
    for (var i = local; i < count; i += THREADS) {
        peak = max(peak, f32(logits[base + i]));
    }
    partial[local] = peak;
    workgroupBarrier();
    for (var stride = THREADS / 2u; stride > 0u; stride = stride / 2u) {
        if (local < stride) {
            partial[local] = max(partial[local], partial[local + stride]);
        }
        workgroupBarrier();
    }
    peak = partial[0];
    workgroupBarrier();

    var sum = 0.0;
    for (var i = local; i < count; i += THREADS) {
        sum += exp(f32(logits[base + i]) - peak);
    }
    partial[local] = sum;
    workgroupBarrier();
    for (var stride = THREADS / 2u; stride > 0u; stride = stride / 2u) {
        if (local < stride) {
            partial[local] += partial[local + stride];
        }
        workgroupBarrier();
    }
    let total = partial[0];
    let layer = p.first_layer + heatmap;
    for (var i = local; i < count; i += THREADS) {
        let probability = exp(f32(logits[base + i]) - peak) / total;
        let at = vec2<u32>(i % p.width, i / p.width);
        textureStore(maps, at, layer, vec4<f32>(probability, 0.0, 0.0, 1.0));
    }
}

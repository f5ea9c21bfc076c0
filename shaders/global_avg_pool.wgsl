// Global average pooling: [N, C, H, W] -> [N, C], one workgroup per (n, c) plane; 256 threads
// sum strided pixels in f32, then a tree reduction in workgroup memory.

// `act` is the activation storage type: f32, or f16 in the f16 precision variant (see
// plan::Precision), always computed in f32.
alias act = f32;

struct Params {
    planes: u32,
    plane: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> input: array<act>;
@group(0) @binding(2) var<storage, read_write> output: array<act>;

const THREADS: u32 = 256u;
var<workgroup> partial: array<f32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) local: u32) {
    // Uniform across the workgroup, so the early return keeps the barriers uniform.
    let plane_index = group.x;
    if (plane_index >= p.planes) {
        return;
    }
    let base = plane_index * p.plane;
    var sum = 0.0;
    for (var i = local; i < p.plane; i += THREADS) {
        sum += f32(input[base + i]);
    }
    partial[local] = sum;
    workgroupBarrier();
    for (var stride = THREADS / 2u; stride > 0u; stride = stride / 2u) {
        if (local < stride) {
            partial[local] = partial[local] + partial[local + stride];
        }
        workgroupBarrier();
    }
    if (local == 0u) {
        output[plane_index] = act(partial[0] / f32(p.plane));
    }
}

// Second half of minmax.wgsl: x' = (x - min) / (max - min), 0 where max == min.

// `act` is the activation storage type: f32, or f16 in the f16 precision variant (see
// plan::Precision), always computed in f32.
alias act = f32;

struct Params {
    count: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> values: array<f32>;
@group(0) @binding(2) var<storage, read> stats: array<f32>;
@group(0) @binding(3) var<storage, read_write> result: array<act>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let index = gid.x + gid.y * groups.x * 64u;
    if (index >= p.count) {
        return;
    }
    let range = stats[1];
    var v = 0.0;
    if (range > 0.0) {
        v = (values[index] - stats[0]) / range;
    }
    result[index] = act(v);
}

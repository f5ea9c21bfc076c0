// The hourglass merge: skip + nearest-neighbour x2 upsample of the lower branch, in one pass.

// `act` is the activation storage type: f32, or f16 in the f16 precision variant (see
// plan::Precision), always computed in f32.
alias act = f32;

struct Params {
    planes: u32,
    low_h: u32,
    low_w: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> low: array<act>;
@group(0) @binding(2) var<storage, read> skip: array<act>;
@group(0) @binding(3) var<storage, read_write> output: array<act>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let index = gid.x + gid.y * groups.x * 64u;
    let out_w = 2u * p.low_w;
    let out_h = 2u * p.low_h;
    if (index >= p.planes * out_h * out_w) {
        return;
    }
    let x = index % out_w;
    let y = (index / out_w) % out_h;
    let plane = index / (out_w * out_h);
    output[index] = act(f32(skip[index]) + f32(low[plane * p.low_h * p.low_w + (y / 2u) * p.low_w + x / 2u]));
}

// 2x2 max-pool with stride 2, floor mode (odd trailing rows/columns dropped, as PyTorch).

// `act` is the activation storage type: f32, or f16 in the f16 precision variant (see
// plan::Precision), always computed in f32.
alias act = f32;

struct Params {
    planes: u32,
    in_h: u32,
    in_w: u32,
    out_h: u32,
    out_w: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> input: array<act>;
@group(0) @binding(2) var<storage, read_write> output: array<act>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let index = gid.x + gid.y * groups.x * 64u;
    if (index >= p.planes * p.out_h * p.out_w) {
        return;
    }
    let ox = index % p.out_w;
    let oy = (index / p.out_w) % p.out_h;
    let plane = index / (p.out_w * p.out_h);
    let top = plane * p.in_h * p.in_w + (2u * oy) * p.in_w + 2u * ox;
    let bottom = top + p.in_w;
    let upper = max(f32(input[top]), f32(input[top + 1u]));
    let lower = max(f32(input[bottom]), f32(input[bottom + 1u]));
    output[index] = act(max(upper, lower));
}

// skip + bilinear resize of x (the decoder merge, in one pass): as upsample_bilinear.wgsl, with
// the [N, C, out_h, out_w] `skip` added before the store.

// `act` is the activation storage type: f32, or f16 in the f16 precision variant (see
// plan::Precision), always computed in f32.
alias act = f32;

struct Params {
    planes: u32,
    in_h: u32,
    in_w: u32,
    out_h: u32,
    out_w: u32,
    scale_h: f32,
    scale_w: f32,
    align_corners: u32,
    channels: u32,
    out_c_total: u32,
    out_c_offset: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<act>;
@group(0) @binding(2) var<storage, read> skip: array<act>;
@group(0) @binding(3) var<storage, read_write> y: array<act>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let index = gid.x + gid.y * groups.x * 64u;
    if (index >= p.planes * p.out_h * p.out_w) {
        return;
    }
    y[output_index(index)] = act(f32(skip[index]) + bilinear(index));
}

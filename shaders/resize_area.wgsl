// Area resize of an [H, W] image, exactly as PyTorch's `F.interpolate(mode="area")`
// (= adaptive average pooling): output row i averages input rows floor(i * H / out_h) ..
// ceil((i + 1) * H / out_h) - 1, columns likewise; upsampling repeats pixels. f32 in and out
// (the raw range, up to 16-bit values, goes on to the min-max reduction).

struct Params {
    in_w: u32,
    in_h: u32,
    out_w: u32,
    out_h: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> image: array<f32>;
@group(0) @binding(2) var<storage, read_write> resized: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let index = gid.x + gid.y * groups.x * 64u;
    if (index >= p.out_h * p.out_w) {
        return;
    }
    let ox = index % p.out_w;
    let oy = index / p.out_w;
    // PyTorch's start_index / end_index (integer arithmetic; the host keeps the products < 2^32).
    let y0 = (oy * p.in_h) / p.out_h;
    let y1 = ((oy + 1u) * p.in_h + p.out_h - 1u) / p.out_h;
    let x0 = (ox * p.in_w) / p.out_w;
    let x1 = ((ox + 1u) * p.in_w + p.out_w - 1u) / p.out_w;
    var sum = 0.0;
    for (var y = y0; y < y1; y++) {
        for (var x = x0; x < x1; x++) {
            sum += image[y * p.in_w + x];
        }
    }
    resized[index] = sum / f32((y1 - y0) * (x1 - x0));
}

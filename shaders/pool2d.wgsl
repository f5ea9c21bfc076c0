// General 2-D pooling, floor mode, as PyTorch's F.max_pool2d / F.avg_pool2d: kernel (kh, kw),
// stride (sy, sx), zero padding (py, px) with py <= kh / 2, px <= kw / 2 (so every window holds at
// least one real pixel). mode 0: max (padding ignored); 1: average dividing by kh * kw
// (count_include_pad=True; in floor mode no window passes the padding); 2: average over the real
// pixels only (count_include_pad=False).

// `act` is the activation storage type: f32, or f16 in the f16 precision variant (see
// plan::Precision), always computed in f32.
alias act = f32;

struct Params {
    planes: u32,
    in_h: u32,
    in_w: u32,
    out_h: u32,
    out_w: u32,
    kernel_h: u32,
    kernel_w: u32,
    stride_y: u32,
    stride_x: u32,
    pad_y: u32,
    pad_x: u32,
    mode: u32,
    // Channels per sample of the input, and of the output tensor with this op's first channel in
    // it (a channel view: a concatenation written in place); channels and 0 otherwise.
    channels: u32,
    out_c_total: u32,
    out_c_offset: u32,
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
    // The window in padded coordinates, clipped to the real pixels.
    let y_start = oy * p.stride_y;
    let x_start = ox * p.stride_x;
    let y0 = max(y_start, p.pad_y) - p.pad_y;
    let x0 = max(x_start, p.pad_x) - p.pad_x;
    let y1 = min(y_start + p.kernel_h, p.in_h + p.pad_y) - p.pad_y;
    let x1 = min(x_start + p.kernel_w, p.in_w + p.pad_x) - p.pad_x;
    let y_end = min(y1, p.in_h);
    let x_end = min(x1, p.in_w);
    let base = plane * p.in_h * p.in_w;
    let n = plane / p.channels;
    let c = plane % p.channels;
    let at = ((n * p.out_c_total + p.out_c_offset + c) * p.out_h + oy) * p.out_w + ox;
    if (p.mode == 0u) {
        var best = f32(input[base + y0 * p.in_w + x0]);
        for (var y = y0; y < y_end; y++) {
            for (var x = x0; x < x_end; x++) {
                let v = f32(input[base + y * p.in_w + x]);
                // NaN propagates, as in PyTorch.
                if (v > best || v != v) {
                    best = v;
                }
            }
        }
        output[at] = act(best);
        return;
    }
    var sum = 0.0;
    for (var y = y0; y < y_end; y++) {
        for (var x = x0; x < x_end; x++) {
            sum += f32(input[base + y * p.in_w + x]);
        }
    }
    var count = f32((y_end - y0) * (x_end - x0));
    if (p.mode == 1u) {
        count = f32(p.kernel_h * p.kernel_w);
    }
    output[at] = act(sum / count);
}

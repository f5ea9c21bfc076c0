// Rectangular crops of one [C, H, W] image, all boxes in one dispatch, sampled exactly like
// PyTorch's F.grid_sample(mode="bicubic", padding_mode="border", align_corners=False) at the grid
// (2x+1)/W - 1, (2y+1)/H - 1, which unnormalises back to the pixel coordinate (x, y) itself.
// Crop k reads box first_box + k = (x0, y0, x1, y1) in input pixels (centre of the top-left
// pixel at (0, 0)); its output pixel (i, j) reads x = x0 + (j + 0.5) * ((x1 - x0) / out_w), y = y0 + (i + 0.5) * ((y1 - y0) / out_h).
// Bicubic A = -0.75 on the unclamped coordinate, each of the 4x4 taps clamped to the border
// (grid_sample's get_value_bounded), rows along x first and then along y.

// `act` is the activation storage type: f32, or f16 in the f16 precision variant (see
// plan::Precision), always computed in f32.
alias act = f32;

struct Params {
    channels: u32,
    height: u32,
    width: u32,
    out_h: u32,
    out_w: u32,
    boxes: u32,
    first_box: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> image: array<act>;
@group(0) @binding(2) var<storage, read> boxes: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> crops: array<act>;

const A: f32 = -0.75;

fn conv1(x: f32) -> f32 {
    return ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
}

fn conv2(x: f32) -> f32 {
    return ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A;
}

fn coefficients(t: f32) -> vec4<f32> {
    return vec4<f32>(conv2(t + 1.0), conv1(t), conv1(1.0 - t), conv2(2.0 - t));
}

// The tap index clamped to [0, n - 1]; far-off (or NaN) coordinates clamp before the conversion.
fn tap(i: f32, n: u32) -> u32 {
    return u32(clamp(i, 0.0, f32(n - 1u)));
}

fn texel(base: u32, x: u32, y: u32) -> f32 {
    return f32(image[base + y * p.width + x]);
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let index = gid.x + gid.y * groups.x * 64u;
    if (index >= p.boxes * p.channels * p.out_h * p.out_w) {
        return;
    }
    let ox = index % p.out_w;
    let oy = (index / p.out_w) % p.out_h;
    let c = (index / (p.out_w * p.out_h)) % p.channels;
    let k = index / (p.out_w * p.out_h * p.channels);

    let box = boxes[k + p.first_box];
    let x = box.x + (f32(ox) + 0.5) * ((box.z - box.x) / f32(p.out_w));
    let y = box.y + (f32(oy) + 0.5) * ((box.w - box.y) / f32(p.out_h));
    let fx = floor(x);
    let fy = floor(y);
    let wx = coefficients(x - fx);
    let wy = coefficients(y - fy);
    let xs = vec4<u32>(tap(fx - 1.0, p.width), tap(fx, p.width), tap(fx + 1.0, p.width),
        tap(fx + 2.0, p.width));
    let base = c * p.height * p.width;
    var rows = vec4<f32>(0.0);
    for (var j = 0; j < 4; j++) {
        let row = tap(fy - 1.0 + f32(j), p.height);
        rows[j] = texel(base, xs.x, row) * wx.x + texel(base, xs.y, row) * wx.y
            + texel(base, xs.z, row) * wx.z + texel(base, xs.w, row) * wx.w;
    }
    crops[index] = act(rows.x * wy.x + rows.y * wy.y + rows.z * wy.z + rows.w * wy.w);
}

// Bicubic resize identical to PyTorch's F.interpolate(mode="bicubic", align_corners=False,
// antialias=False): A = -0.75, source index (dst + 0.5) * scale - 0.5 without clamping, taps
// clamped to the border, rows interpolated along x first and then along y.

struct Params {
    in_w: u32,
    in_h: u32,
    out_w: u32,
    out_h: u32,
    scale_x: f32,
    scale_y: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

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

fn texel(x: i32, y: i32) -> f32 {
    let cx = u32(clamp(x, 0, i32(p.in_w) - 1));
    let cy = u32(clamp(y, 0, i32(p.in_h) - 1));
    return src[cy * p.in_w + cx];
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let index = gid.x + gid.y * groups.x * 64u;
    if (index >= p.out_w * p.out_h) {
        return;
    }
    let ox = index % p.out_w;
    let oy = index / p.out_w;
    let real_x = p.scale_x * (f32(ox) + 0.5) - 0.5;
    let real_y = p.scale_y * (f32(oy) + 0.5) - 0.5;
    let ix = min(i32(floor(real_x)), i32(p.in_w) - 1);
    let iy = min(i32(floor(real_y)), i32(p.in_h) - 1);
    let tx = clamp(real_x - f32(ix), 0.0, 1.0);
    let ty = clamp(real_y - f32(iy), 0.0, 1.0);
    let wx = coefficients(tx);
    let wy = coefficients(ty);
    var rows = vec4<f32>(0.0);
    for (var j = 0; j < 4; j++) {
        let y = iy - 1 + j;
        rows[j] = texel(ix - 1, y) * wx.x + texel(ix, y) * wx.y + texel(ix + 1, y) * wx.z
            + texel(ix + 2, y) * wx.w;
    }
    dst[index] = rows.x * wy.x + rows.y * wy.y + rows.z * wy.z + rows.w * wy.w;
}

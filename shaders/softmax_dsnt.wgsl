// Spatial softmax + DSNT (dsntnn convention: pixel centre j -> (2j + 1) / W - 1), one workgroup
// per heatmap. Writes (x, y, var_x, var_y) per heatmap at `out_offset + heatmap`; the variance
// of the softmax distribution is the landmark's spread, used as a confidence.

// `act` is the activation storage type: f32, or f16 in the f16 precision variant (see
// plan::Precision), always computed in f32.
alias act = f32;

struct Params {
    heatmaps: u32,
    height: u32,
    width: u32,
    out_offset: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<act>;
@group(0) @binding(2) var<storage, read_write> coords: array<vec4<f32>>;

const THREADS: u32 = 256u;
var<workgroup> partial: array<vec4<f32>, 256>;
var<workgroup> partial_extra: array<f32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) local: u32) {
    let heatmap = wid.x;
    let count = p.height * p.width;
    let base = heatmap * count;

    var peak = -3.4e38;
    for (var i = local; i < count; i += THREADS) {
        peak = max(peak, f32(logits[base + i]));
    }
    partial_extra[local] = peak;
    workgroupBarrier();
    for (var stride = THREADS / 2u; stride > 0u; stride = stride / 2u) {
        if (local < stride) {
            partial_extra[local] = max(partial_extra[local], partial_extra[local + stride]);
        }
        workgroupBarrier();
    }
    peak = partial_extra[0];
    workgroupBarrier();

    // (sum e, sum e*x, sum e*y, sum e*x^2) and sum e*y^2 on the side.
    var moments = vec4<f32>(0.0);
    var y_squares = 0.0;
    let inv_w = 1.0 / f32(p.width);
    let inv_h = 1.0 / f32(p.height);
    for (var i = local; i < count; i += THREADS) {
        let e = exp(f32(logits[base + i]) - peak);
        let x = f32(2u * (i % p.width) + 1u) * inv_w - 1.0;
        let y = f32(2u * (i / p.width) + 1u) * inv_h - 1.0;
        moments += e * vec4<f32>(1.0, x, y, x * x);
        y_squares += e * y * y;
    }
    partial[local] = moments;
    partial_extra[local] = y_squares;
    workgroupBarrier();
    for (var stride = THREADS / 2u; stride > 0u; stride = stride / 2u) {
        if (local < stride) {
            partial[local] += partial[local + stride];
            partial_extra[local] += partial_extra[local + stride];
        }
        workgroupBarrier();
    }
    if (local == 0u) {
        let m = partial[0];
        let mx = m.y / m.x;
        let my = m.z / m.x;
        let vx = max(m.w / m.x - mx * mx, 0.0);
        let vy = max(partial_extra[0] / m.x - my * my, 0.0);
        coords[p.out_offset + heatmap] = vec4<f32>(mx, my, vx, vy);
    }
}

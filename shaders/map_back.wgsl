// Final landmarks: refined points (box space -> input pixels -> original pixels) for the 24 disc
// corners, coarse points for C2_as, C2_ps, PNS, OCC, DENS. Output rows (x, y, sd_x, sd_y):
// [0, 29) landmarks in original pixels, [29, 58) coarse landmarks in input pixels, [58, 64) boxes.
// Pixel convention everywhere: the centre of the top-left pixel is (0, 0).

struct Params {
    input_size: f32,
    original_w: f32,
    original_h: f32,
    landmarks: u32,
    discs: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> coarse: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> refined: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> boxes: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> result: array<vec4<f32>>;

fn input_to_original(q: vec2<f32>) -> vec2<f32> {
    let scale = vec2<f32>(p.original_w, p.original_h) / p.input_size;
    return (q + 0.5) * scale - 0.5;
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    let scale = vec2<f32>(p.original_w, p.original_h) / p.input_size;
    if (i < p.landmarks) {
        let c = coarse[i];
        let coarse_px = ((c.xy + 1.0) * p.input_size - 1.0) * 0.5;
        let coarse_sd = sqrt(c.zw) * p.input_size * 0.5;
        result[p.landmarks + i] = vec4<f32>(coarse_px, coarse_sd);
        var point = coarse_px;
        var sd = coarse_sd;
        let disc_end = 4u * p.discs + 2u;
        if (i >= 2u && i < disc_end) {
            let r = refined[i - 2u];
            let box = boxes[(i - 2u) / 4u];
            let centre = (box.xy + box.zw) * 0.5;
            let half_side = (box.zw - box.xy) * 0.5;
            point = centre + r.xy * half_side;
            sd = sqrt(r.zw) * half_side;
        }
        result[i] = vec4<f32>(input_to_original(point), sd * scale);
    }
    if (i < p.discs) {
        result[2u * p.landmarks + i] = boxes[i];
    }
}

// Final landmarks in original-image pixels. Landmark i is the global point i (the mean of the
// members' rows i, m * landmarks + i, in normalized coordinates), or, where the
// model's table says so (sources[i] = (refined row, box), row != NONE), the refined point of that
// row, which is relative to its box. Output rows (x, y, sd_x, sd_y): [0, L) landmarks in original
// pixels, [L, 2L) global points in input pixels, [2L, 2L + B) the boxes.
// Pixel convention everywhere: the centre of the top-left pixel is (0, 0).

struct Params {
    input_w: f32,
    input_h: f32,
    original_w: f32,
    original_h: f32,
    landmarks: u32,
    boxes: u32,
    members: u32,
}

const NONE: u32 = 0xffffffffu;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> coarse: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> refined: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> boxes: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> sources: array<vec2<u32>>;
@group(0) @binding(5) var<storage, read_write> result: array<vec4<f32>>;

fn input_to_original(q: vec2<f32>) -> vec2<f32> {
    let scale = vec2<f32>(p.original_w, p.original_h) / vec2<f32>(p.input_w, p.input_h);
    return (q + 0.5) * scale - 0.5;
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    let input_size = vec2<f32>(p.input_w, p.input_h);
    let scale = vec2<f32>(p.original_w, p.original_h) / input_size;
    if (i < p.landmarks) {
        var c = vec4<f32>(0.0);
        for (var m = 0u; m < p.members; m++) {
            c += coarse[m * p.landmarks + i];
        }
        c = c / f32(p.members);
        let coarse_px = ((c.xy + 1.0) * input_size - 1.0) * 0.5;
        let coarse_sd = sqrt(c.zw) * input_size * 0.5;
        result[p.landmarks + i] = vec4<f32>(coarse_px, coarse_sd);
        var point = coarse_px;
        var sd = coarse_sd;
        let source = sources[i];
        if (source.x != NONE) {
            let r = refined[source.x];
            let box = boxes[source.y];
            let centre = (box.xy + box.zw) * 0.5;
            let half_side = (box.zw - box.xy) * 0.5;
            point = centre + r.xy * half_side;
            sd = sqrt(r.zw) * half_side;
        }
        result[i] = vec4<f32>(input_to_original(point), sd * scale);
    }
    if (i < p.boxes) {
        result[2u * p.landmarks + i] = boxes[i];
    }
}

// Boxes around the discs C2-C3 .. C7-T1 from the global model's coarse landmarks. Disc k's four
// corners are landmarks 4k+2 .. 4k+5 (upper vertebra's pi, ai; lower vertebra's as, ps). The box
// is the square centred on their bounding box, side = max(max(w, h) * (1 + margin), min_side),
// written as (x1, y1, x2, y2) in input pixels (centre of the top-left pixel at (0, 0)).

struct Params {
    input_size: f32,
    margin: f32,
    min_side: f32,
    discs: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> coarse: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> boxes: array<vec4<f32>>;

fn to_input_pixels(normalized: vec2<f32>) -> vec2<f32> {
    return ((normalized + 1.0) * p.input_size - 1.0) * 0.5;
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let disc = gid.x;
    if (disc >= p.discs) {
        return;
    }
    var lo = vec2<f32>(3.4e38);
    var hi = vec2<f32>(-3.4e38);
    for (var j = 0u; j < 4u; j++) {
        let q = to_input_pixels(coarse[4u * disc + 2u + j].xy);
        lo = min(lo, q);
        hi = max(hi, q);
    }
    let centre = (lo + hi) * 0.5;
    let extent = hi - lo;
    let side = max(max(extent.x, extent.y) * (1.0 + p.margin), p.min_side);
    boxes[disc] = vec4<f32>(centre - side * 0.5, centre + side * 0.5);
}

// Boxes around groups of landmarks: box k is the square centred on the bounding box of the points
// whose indices are members[k * group_size .. (k + 1) * group_size] (the model's table, e.g. the
// four corners of one disc), side = max(max(w, h) * (1 + margin), min_side), written as
// (x1, y1, x2, y2) in input pixels (centre of the top-left pixel at (0, 0)). Points are DSNT rows
// (x, y, var_x, var_y) in normalized coordinates. With `about_mean` the box is a rectangle centred on
// the points' mean instead, each side the extent along it times (1 + margin), at least min_side.

struct Params {
    input_w: f32,
    input_h: f32,
    margin: f32,
    min_side: f32,
    boxes: u32,
    group_size: u32,
    about_mean: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> points: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> members: array<u32>;
@group(0) @binding(3) var<storage, read_write> boxes: array<vec4<f32>>;

fn to_input_pixels(normalized: vec2<f32>) -> vec2<f32> {
    return ((normalized + 1.0) * vec2<f32>(p.input_w, p.input_h) - 1.0) * 0.5;
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let box = gid.x;
    if (box >= p.boxes) {
        return;
    }
    var lo = vec2<f32>(3.4e38);
    var hi = vec2<f32>(-3.4e38);
    var sum = vec2<f32>(0.0);
    for (var j = 0u; j < p.group_size; j++) {
        let q = to_input_pixels(points[members[box * p.group_size + j]].xy);
        lo = min(lo, q);
        hi = max(hi, q);
        sum += q;
    }
    if (p.about_mean != 0u) {
        let centre = sum / f32(p.group_size);
        let sides = max((hi - lo) * (1.0 + p.margin), vec2<f32>(p.min_side));
        boxes[box] = vec4<f32>(centre - sides * 0.5, centre + sides * 0.5);
        return;
    }
    let centre = (lo + hi) * 0.5;
    let extent = hi - lo;
    let side = max(max(extent.x, extent.y) * (1.0 + p.margin), p.min_side);
    boxes[box] = vec4<f32>(centre - side * 0.5, centre + side * 0.5);
}

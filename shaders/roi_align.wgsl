// torchvision.ops.roi_align with aligned=True and spatial_scale 1 over one image, all boxes in
// one dispatch. Boxes are in sagitta's frame (centre of pixel i at i), which is torchvision's
// aligned frame shifted by 0.5, so roi_start = box.x1 exactly. sampling_ratio > 0 takes that many
// samples per bin and axis; otherwise ceil(roi_size / out_size) (torchvision's adaptive rule).

// `act` is the activation storage type: f32, or f16 in the f16 precision variant (see
// plan::Precision), always computed in f32.
alias act = f32;

struct Params {
    channels: u32,
    height: u32,
    width: u32,
    out_size: u32,
    boxes: u32,
    sampling_ratio: i32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> image: array<act>;
@group(0) @binding(2) var<storage, read> boxes: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> crops: array<act>;

fn bilinear(plane: u32, y_in: f32, x_in: f32) -> f32 {
    let h = f32(p.height);
    let w = f32(p.width);
    if (y_in < -1.0 || y_in > h || x_in < -1.0 || x_in > w) {
        return 0.0;
    }
    var y = max(y_in, 0.0);
    var x = max(x_in, 0.0);
    var y_low = u32(y);
    var x_low = u32(x);
    var y_high = y_low + 1u;
    var x_high = x_low + 1u;
    if (y_low >= p.height - 1u) {
        y_low = p.height - 1u;
        y_high = y_low;
        y = f32(y_low);
    }
    if (x_low >= p.width - 1u) {
        x_low = p.width - 1u;
        x_high = x_low;
        x = f32(x_low);
    }
    let ly = y - f32(y_low);
    let lx = x - f32(x_low);
    let hy = 1.0 - ly;
    let hx = 1.0 - lx;
    let base = plane * p.height * p.width;
    let v1 = f32(image[base + y_low * p.width + x_low]);
    let v2 = f32(image[base + y_low * p.width + x_high]);
    let v3 = f32(image[base + y_high * p.width + x_low]);
    let v4 = f32(image[base + y_high * p.width + x_high]);
    return hy * hx * v1 + hy * lx * v2 + ly * hx * v3 + ly * lx * v4;
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let index = gid.x + gid.y * groups.x * 64u;
    let s = p.out_size;
    if (index >= p.boxes * p.channels * s * s) {
        return;
    }
    let px = index % s;
    let py = (index / s) % s;
    let c = (index / (s * s)) % p.channels;
    let k = index / (s * s * p.channels);

    let box = boxes[k];
    let roi_w = box.z - box.x;
    let roi_h = box.w - box.y;
    let bin_w = roi_w / f32(s);
    let bin_h = roi_h / f32(s);
    var grid_h = p.sampling_ratio;
    var grid_w = p.sampling_ratio;
    if (p.sampling_ratio <= 0) {
        grid_h = i32(ceil(roi_h / f32(s)));
        grid_w = i32(ceil(roi_w / f32(s)));
    }
    let count = f32(max(grid_h * grid_w, 1));
    var sum = 0.0;
    for (var iy = 0; iy < grid_h; iy++) {
        let y = box.y + f32(py) * bin_h + (f32(iy) + 0.5) * bin_h / f32(grid_h);
        for (var ix = 0; ix < grid_w; ix++) {
            let x = box.x + f32(px) * bin_w + (f32(ix) + 0.5) * bin_w / f32(grid_w);
            sum += bilinear(c, y, x);
        }
    }
    crops[index] = act(sum / count);
}

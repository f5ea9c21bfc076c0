// One channel to C (C <= 4): y[n, c] = (x[n, 0] - mean[c]) / std[c], mean and std from the
// uniform block (unused entries are ignored).

// `act` is the activation storage type: f32, or f16 in the f16 precision variant (see
// plan::Precision), always computed in f32.
alias act = f32;

struct Params {
    plane: u32,
    channels: u32,
    total: u32,
    mean0: f32,
    mean1: f32,
    mean2: f32,
    mean3: f32,
    std0: f32,
    std1: f32,
    std2: f32,
    std3: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> input: array<act>;
@group(0) @binding(2) var<storage, read_write> output: array<act>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let index = gid.x + gid.y * groups.x * 64u;
    if (index >= p.total) {
        return;
    }
    let pixel = index % p.plane;
    let c = (index / p.plane) % p.channels;
    let n = index / (p.plane * p.channels);
    var means = array<f32, 4>(p.mean0, p.mean1, p.mean2, p.mean3);
    var stds = array<f32, 4>(p.std0, p.std1, p.std2, p.std3);
    let x = f32(input[n * p.plane + pixel]);
    output[index] = act((x - means[c]) / stds[c]);
}

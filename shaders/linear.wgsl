// Fully connected layer: y[n, o] = act(sum_i x[n, i] * weight[o, i] + bias[o]). One workgroup per
// output (n, o); its 64 threads stride over the row's vec4 weights (packed [out][ceil(in / 4)],
// zero-padded), then a tree reduction. Weights may be stored as packed f16 (read-only vec4
// binding `weight`); the arithmetic is f32.

// `act` is the activation storage type: f32, or f16 in the f16 precision variant (see
// plan::Precision), always computed in f32.
alias act = f32;

// The epilogue's activation: 0 none, 1 ReLU, 2 sigmoid (ops::conv2d::Activation).
override ACTIVATION: u32 = 0u;

struct Params {
    batch: u32,
    in_features: u32,
    out_features: u32,
    in4: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> input: array<act>;
@group(0) @binding(2) var<storage, read> weight: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> output: array<act>;

const THREADS: u32 = 64u;
var<workgroup> partial: array<f32, 64>;

fn x_at(row: u32, i: u32) -> f32 {
    if (i < p.in_features) {
        return f32(input[row + i]);
    }
    return 0.0;
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) local: u32) {
    // Uniform across the workgroup, so the early return keeps the barriers uniform.
    let index = group.x;
    if (index >= p.batch * p.out_features) {
        return;
    }
    let o = index % p.out_features;
    let row = (index / p.out_features) * p.in_features;
    var sum = 0.0;
    for (var j = local; j < p.in4; j += THREADS) {
        let w = weight[o * p.in4 + j];
        let i = 4u * j;
        let x = vec4<f32>(x_at(row, i), x_at(row, i + 1u), x_at(row, i + 2u), x_at(row, i + 3u));
        sum += dot(x, w);
    }
    partial[local] = sum;
    workgroupBarrier();
    for (var stride = THREADS / 2u; stride > 0u; stride = stride / 2u) {
        if (local < stride) {
            partial[local] = partial[local] + partial[local + stride];
        }
        workgroupBarrier();
    }
    if (local == 0u) {
        var value = partial[0] + bias[o];
        if (ACTIVATION == 1u) {
            value = max(value, 0.0);
        } else if (ACTIVATION == 2u) {
            value = 1.0 / (1.0 + exp(-value));
        }
        output[index] = act(value);
    }
}

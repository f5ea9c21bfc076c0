// Shared by the four convolution kernels and appended to each of them (WGSL has no includes;
// module-scope declarations may come in any order): the specialisation constants, the uniform
// block (its layout is `ops::conv2d::ConvParams`), the bindings and the epilogue. Each kernel
// declares `act` (activation storage).

struct Params {
    batch: u32,
    in_c: u32,
    in_h: u32,
    in_w: u32,
    out_c: u32,
    out_h: u32,
    out_w: u32,
    out_c4: u32,
    // Direct kernel: 4-pixel blocks per output row.
    x_blocks: u32,
    // Tiled kernels: the GEMM's K (in_c * KH * KW).
    k_total: u32,
    // Winograd: 2x2 output tiles per row.
    tiles_w: u32,
    // Per-sample weight sets (0: one set shared by the batch).
    weight_set_stride: u32,
    bias_set_stride: u32,
    prologue_set_stride: u32,
    // Direct kernel: invocations.
    total: u32,
    // The output tensor's channels and where this convolution's channels start in it (a
    // concatenation written in place by its producers); out_c and 0 for a tensor of its own.
    out_c_total: u32,
    out_c_offset: u32,
    // Distinct weight sets (1: shared); sample n uses set n % weight_sets, so a batch of several
    // images runs per-sample networks (the six refiners) as repeated groups.
    weight_sets: u32,
}

// Kernel height and width, strides and zero padding along y and x.
override KH: u32 = 3u;
override KW: u32 = 3u;
override STRIDE_Y: u32 = 1u;
override STRIDE_X: u32 = 1u;
override PAD_Y: u32 = 1u;
override PAD_X: u32 = 1u;
override PROLOGUE: bool = false;
override RESIDUAL: bool = false;
// The epilogue's activation: 0 none, 1 ReLU, 2 sigmoid (ops::conv2d::Activation).
override ACTIVATION: u32 = 0u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> input: array<act>;
@group(0) @binding(2) var<storage, read> weight: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> bias: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> prologue: array<vec2<f32>>;
@group(0) @binding(5) var<storage, read> residual: array<act>;
@group(0) @binding(6) var<storage, read_write> output: array<act>;

// The weight, bias and prologue set of sample `n`.
fn set_of(n: u32) -> u32 {
    return n % p.weight_sets;
}

// The epilogue of every convolution kernel for output channel `oc` of sample `n` at `pixel`
// (y * out_w + x): bias is in the value already; then the residual add, the activation, and the
// store in the activation type, into channel out_c_offset + oc of the output tensor.
fn store_output(n: u32, oc: u32, pixel: u32, pre_activation: f32) {
    let plane = p.out_h * p.out_w;
    var value = pre_activation;
    if (RESIDUAL) {
        value += f32(residual[(n * p.out_c + oc) * plane + pixel]);
    }
    if (ACTIVATION == 1u) {
        value = max(value, 0.0);
    } else if (ACTIVATION == 2u) {
        value = 1.0 / (1.0 + exp(-value));
    }
    let at = (n * p.out_c_total + p.out_c_offset + oc) * plane + pixel;
    output[at] = act(value);
}

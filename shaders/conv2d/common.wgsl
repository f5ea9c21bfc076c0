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
    // Tiled kernels: the GEMM's K (in_c * K * K).
    k_total: u32,
    // Winograd: 2x2 output tiles per row.
    tiles_w: u32,
    // Per-sample weight sets (0: one set shared by the batch).
    weight_set_stride: u32,
    bias_set_stride: u32,
    prologue_set_stride: u32,
    // Direct kernel: invocations.
    total: u32,
}

override K: u32 = 3u;
override STRIDE: u32 = 1u;
override PAD: u32 = 1u;
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

// The epilogue of every convolution kernel: bias is in `value` already; then the residual add,
// the activation, and the store in the activation type.
fn store_output(at: u32, pre_activation: f32) {
    var value = pre_activation;
    if (RESIDUAL) {
        value += f32(residual[at]);
    }
    if (ACTIVATION == 1u) {
        value = max(value, 0.0);
    } else if (ACTIVATION == 2u) {
        value = 1.0 / (1.0 + exp(-value));
    }
    output[at] = act(value);
}

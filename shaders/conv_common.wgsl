// Shared by the four convolution kernels and appended to each of them (WGSL has no includes;
// module-scope declarations may come in any order): the specialisation constants and the
// bindings. Each kernel declares `act` (activation storage) and `Params` (its uniform block: the
// shape words, one kernel-specific word, then the per-sample strides).

override K: u32 = 3u;
override STRIDE: u32 = 1u;
override PAD: u32 = 1u;
override PROLOGUE: bool = false;
override RESIDUAL: bool = false;
override RELU: bool = false;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> input: array<act>;
@group(0) @binding(2) var<storage, read> weight: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> bias: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> prologue: array<vec2<f32>>;
@group(0) @binding(5) var<storage, read> residual: array<act>;
@group(0) @binding(6) var<storage, read_write> output: array<act>;

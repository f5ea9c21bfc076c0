// Convolution as an implicit GEMM with shared-memory tiles, for the large layers: C[oc, p] =
// sum_k W[k, oc] * X[k, p] with k = (ic, ky, kx) and p an output pixel of one sample, the im2col
// matrix X gathered on the fly (no im2col buffer) with the pre-activation prologue applied as it
// is loaded. A 16x16 workgroup computes a 64 (output channels) x 64 (pixels) tile, each thread a
// 4x4 register block, over K in steps of 16 through workgroup memory. Same fusions, bindings and
// weight layout ([group][ic][ky][kx][oc/4] vec4) as conv2d.wgsl; the sample is workgroup_id.z so
// per-sample weights (the six refiners) stay within a tile.

// `act` is the activation storage type and `mul` the type of the staged tiles, the products and
// each 16-deep K tile's partial sums: both f32, or both f16 in the f16 precision variant (see
// plan::Precision); the partial sums are accumulated across K tiles in f32.
alias act = f32;
alias mul = f32;

override K: u32 = 3u;
override STRIDE: u32 = 1u;
override PAD: u32 = 1u;
override PROLOGUE: bool = false;
override RESIDUAL: bool = false;
override RELU: bool = false;

struct Params {
    batch: u32,
    in_c: u32,
    in_h: u32,
    in_w: u32,
    out_c: u32,
    out_h: u32,
    out_w: u32,
    out_c4: u32,
    k_total: u32,
    weight_group_stride: u32,
    bias_group_stride: u32,
    prologue_group_stride: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> input: array<act>;
@group(0) @binding(2) var<storage, read> weight: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> bias: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> prologue: array<vec2<f32>>;
@group(0) @binding(5) var<storage, read> residual: array<act>;
@group(0) @binding(6) var<storage, read_write> output: array<act>;

const TILE_K: u32 = 16u;
// [k][16 vec4] each: 16 x 64 floats.
var<workgroup> w_tile: array<vec4<mul>, 256>;
var<workgroup> x_tile: array<vec4<mul>, 256>;

fn gather(n: u32, k: u32, pixel: u32) -> f32 {
    let pixels = p.out_h * p.out_w;
    if (k >= p.k_total || pixel >= pixels) {
        return 0.0;
    }
    if (K == 1u && STRIDE == 1u && PAD == 0u) {
        // 1x1: the im2col matrix is the activation itself, [ic][pixel] (a plain GEMM).
        var v = f32(input[(n * p.in_c + k) * pixels + pixel]);
        if (PROLOGUE) {
            let ss = prologue[n * p.prologue_group_stride + k];
            v = max(v * ss.x + ss.y, 0.0);
        }
        return v;
    }
    let kk = K * K;
    let ic = k / kk;
    let r = k % kk;
    let iy = i32((pixel / p.out_w) * STRIDE + r / K) - i32(PAD);
    let ix = i32((pixel % p.out_w) * STRIDE + r % K) - i32(PAD);
    if (iy < 0 || iy >= i32(p.in_h) || ix < 0 || ix >= i32(p.in_w)) {
        return 0.0;
    }
    var v = f32(input[((n * p.in_c + ic) * p.in_h + u32(iy)) * p.in_w + u32(ix)]);
    if (PROLOGUE) {
        let ss = prologue[n * p.prologue_group_stride + ic];
        v = max(v * ss.x + ss.y, 0.0);
    }
    return v;
}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let n = wid.z;
    let pixel0 = wid.x * 64u;
    let oc4_0 = wid.y * 16u;
    let t = lid.y * 16u + lid.x;
    // Loader roles: row `load_k` of the K tile, column block `load_col` (4 channels or 4 pixels).
    let load_k = t / 16u;
    let load_col = t % 16u;
    let weight_base = n * p.weight_group_stride;

    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < p.k_total; k0 += TILE_K) {
        let k = k0 + load_k;
        var w = vec4<f32>(0.0);
        if (k < p.k_total && oc4_0 + load_col < p.out_c4) {
            w = weight[weight_base + k * p.out_c4 + oc4_0 + load_col];
        }
        w_tile[t] = vec4<mul>(w);
        let px = pixel0 + load_col * 4u;
        x_tile[t] = vec4<mul>(vec4<f32>(gather(n, k, px), gather(n, k, px + 1u), gather(n, k, px + 2u), gather(n, k, px + 3u)));
        workgroupBarrier();
        var part0 = vec4<mul>(0.0);
        var part1 = vec4<mul>(0.0);
        var part2 = vec4<mul>(0.0);
        var part3 = vec4<mul>(0.0);
        for (var kk = 0u; kk < TILE_K; kk++) {
            let a = w_tile[kk * 16u + lid.y];
            let b = x_tile[kk * 16u + lid.x];
            part0 += a.x * b;
            part1 += a.y * b;
            part2 += a.z * b;
            part3 += a.w * b;
        }
        acc0 += vec4<f32>(part0);
        acc1 += vec4<f32>(part1);
        acc2 += vec4<f32>(part2);
        acc3 += vec4<f32>(part3);
        workgroupBarrier();
    }

    let pixels = p.out_h * p.out_w;
    let oc4 = oc4_0 + lid.y;
    if (oc4 >= p.out_c4) {
        return;
    }
    let b = bias[n * p.bias_group_stride + oc4];
    for (var i = 0u; i < 4u; i++) {
        let oc = oc4 * 4u + i;
        if (oc >= p.out_c) {
            break;
        }
        var row = acc0;
        if (i == 1u) {
            row = acc1;
        } else if (i == 2u) {
            row = acc2;
        } else if (i == 3u) {
            row = acc3;
        }
        for (var j = 0u; j < 4u; j++) {
            let pixel = pixel0 + lid.x * 4u + j;
            if (pixel >= pixels) {
                break;
            }
            let at = (n * p.out_c + oc) * pixels + pixel;
            var value = row[j] + b[i];
            if (RESIDUAL) {
                value += f32(residual[at]);
            }
            if (RELU) {
                value = max(value, 0.0);
            }
            output[at] = act(value);
        }
    }
}

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

// KH, KW, STRIDE_*, PAD_*, PROLOGUE, RESIDUAL, ACTIVATION, the bindings, `Params` and the
// epilogue `store_output`: common.wgsl.

const TILE_K: u32 = 16u;
// [k][16 vec4] each: 16 x 64 floats.
var<workgroup> w_tile: array<vec4<mul>, 256>;
var<workgroup> x_tile: array<vec4<mul>, 256>;

// columns(), gather4(): im2col.wgsl.

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let n = wid.z;
    let pixel0 = wid.x * 64u;
    let oc4_0 = wid.y * 16u;
    let t = lid.y * 16u + lid.x;
    // Loader roles: row `load_k` of the K tile, column block `load_col` (4 channels or 4 pixels).
    let load_k = t / 16u;
    let load_col = t % 16u;
    let load_columns = columns(pixel0 + load_col * 4u);
    let weight_base = set_of(n) * p.weight_set_stride;

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
        x_tile[t] = vec4<mul>(gather4(n, k, load_columns));
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
    let b = bias[set_of(n) * p.bias_set_stride + oc4];
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
            store_output(n, oc, pixel, row[j] + b[i]);
        }
    }
}

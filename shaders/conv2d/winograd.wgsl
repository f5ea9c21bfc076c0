// 3x3 stride-1 convolution by Winograd F(2x2, 3x3): each 2x2 output tile is A^T [U (.) V] A with
// V = B^T d B the transformed 4x4 input patch and U = G g G^T the transformed filter (done once on
// the CPU at load, see ops::winograd_filter). That turns the convolution into 16 independent GEMMs,
// M[xi][oc, tile] = sum_ic U[xi][oc, ic] V[xi][ic, tile], with 16 multiply-adds per tile and input
// channel instead of 36.
//
// A workgroup owns 16 output channels x 16 tiles of one sample (32x2 output pixels) for all 16
// xi. Per chunk of 8 input channels it transforms the input patches into workgroup memory
// (prologue applied on load, padding stays 0 as in PyTorch), stages U beside them, and each thread
// accumulates a 4 channel x 4 tile register block of one xi. At the end the 16 xi of each
// (channel, tile) meet in workgroup memory for the output transform and the fused epilogue.
// Weights: [group][xi][ic][oc/4] vec4; same bindings, fusions and uniform layout as conv2d_tiled
// with k_total replaced by the number of tiles per row.

alias act = f32;

// KH, KW, STRIDE_*, PAD_*, PROLOGUE, RESIDUAL, ACTIVATION, the bindings, `Params` and the
// epilogue `store_output`: common.wgsl. KH, KW are always 3 and the strides 1 here (every
// convolution step names its geometry the same way).

const IC_CHUNK: u32 = 8u;
// During the channel loop: U at [0, 512) as [xi][ic][oc/4], V at [512, 1024) as [xi][ic][tile/4].
// After it: the accumulators as [xi][oc][tile/4]. 16 KiB, the WebGPU default limit.
const V_BASE: u32 = 512u;
var<workgroup> shared_tile: array<vec4<f32>, 1024>;

fn load(n: u32, ic: u32, iy: i32, ix: i32) -> f32 {
    if (iy < 0 || iy >= i32(p.in_h) || ix < 0 || ix >= i32(p.in_w)) {
        return 0.0;
    }
    var v = f32(input[((n * p.in_c + ic) * p.in_h + u32(iy)) * p.in_w + u32(ix)]);
    if (PROLOGUE) {
        let ss = prologue[set_of(n) * p.prologue_set_stride + ic];
        v = max(v * ss.x + ss.y, 0.0);
    }
    return v;
}

fn patch_row(n: u32, ic: u32, iy: i32, ix: i32) -> vec4<f32> {
    return vec4<f32>(load(n, ic, iy, ix), load(n, ic, iy, ix + 1), load(n, ic, iy, ix + 2), load(n, ic, iy, ix + 3));
}

// d B for one patch row: the column half of B^T d B.
fn transform_columns(r: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(r.x - r.z, r.y + r.z, r.z - r.y, r.y - r.w);
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let n = wid.z;
    let tiles_h = (p.out_h + 1u) / 2u;
    let tiles = tiles_h * p.tiles_w;
    let tile0 = wid.x * 16u;
    let oc4_0 = wid.y * 4u;
    let weight_base = set_of(n) * p.weight_set_stride;

    // GEMM role: one xi, a block of 4 channels x 4 tiles.
    let xi = t / 16u;
    let oc_block = (t % 16u) / 4u;
    let tile_block = t % 4u;
    // Input-transform role (threads 0..127): one input channel of the chunk and one tile.
    let patch_ic = t / 16u;
    let patch_tile = tile0 + t % 16u;
    let patch_y = i32((patch_tile / p.tiles_w) * 2u) - i32(PAD_Y);
    let patch_x = i32((patch_tile % p.tiles_w) * 2u) - i32(PAD_X);

    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var ic0 = 0u; ic0 < p.in_c; ic0 += IC_CHUNK) {
        for (var i = 0u; i < 2u; i++) {
            let slot = t + i * 256u;
            let u_xi = slot / 32u;
            let u_ic = ic0 + (slot / 4u) % IC_CHUNK;
            let u_oc4 = oc4_0 + slot % 4u;
            var u = vec4<f32>(0.0);
            if (u_ic < p.in_c && u_oc4 < p.out_c4) {
                u = weight[weight_base + (u_xi * p.in_c + u_ic) * p.out_c4 + u_oc4];
            }
            shared_tile[slot] = u;
        }
        if (t < 128u) {
            let ic = ic0 + patch_ic;
            var v0 = vec4<f32>(0.0);
            var v1 = vec4<f32>(0.0);
            var v2 = vec4<f32>(0.0);
            var v3 = vec4<f32>(0.0);
            if (ic < p.in_c && patch_tile < tiles) {
                let d0 = patch_row(n, ic, patch_y, patch_x);
                let d1 = patch_row(n, ic, patch_y + 1, patch_x);
                let d2 = patch_row(n, ic, patch_y + 2, patch_x);
                let d3 = patch_row(n, ic, patch_y + 3, patch_x);
                v0 = transform_columns(d0 - d2);
                v1 = transform_columns(d1 + d2);
                v2 = transform_columns(d2 - d1);
                v3 = transform_columns(d1 - d3);
            }
            let lane = t % 4u;
            let column = (t % 16u) / 4u;
            // xi = row * 4 + column of the transformed patch.
            for (var c = 0u; c < 4u; c++) {
                shared_tile[V_BASE + ((0u * 4u + c) * IC_CHUNK + patch_ic) * 4u + column][lane] = v0[c];
                shared_tile[V_BASE + ((1u * 4u + c) * IC_CHUNK + patch_ic) * 4u + column][lane] = v1[c];
                shared_tile[V_BASE + ((2u * 4u + c) * IC_CHUNK + patch_ic) * 4u + column][lane] = v2[c];
                shared_tile[V_BASE + ((3u * 4u + c) * IC_CHUNK + patch_ic) * 4u + column][lane] = v3[c];
            }
        }
        workgroupBarrier();
        for (var ic = 0u; ic < IC_CHUNK; ic++) {
            let a = shared_tile[(xi * IC_CHUNK + ic) * 4u + oc_block];
            let b = shared_tile[V_BASE + (xi * IC_CHUNK + ic) * 4u + tile_block];
            acc0 += a.x * b;
            acc1 += a.y * b;
            acc2 += a.z * b;
            acc3 += a.w * b;
        }
        workgroupBarrier();
    }

    shared_tile[(xi * 16u + oc_block * 4u + 0u) * 4u + tile_block] = acc0;
    shared_tile[(xi * 16u + oc_block * 4u + 1u) * 4u + tile_block] = acc1;
    shared_tile[(xi * 16u + oc_block * 4u + 2u) * 4u + tile_block] = acc2;
    shared_tile[(xi * 16u + oc_block * 4u + 3u) * 4u + tile_block] = acc3;
    workgroupBarrier();

    let oc_local = t / 16u;
    let tile_local = t % 16u;
    let oc = oc4_0 * 4u + oc_local;
    let tile = tile0 + tile_local;
    if (oc >= p.out_c || tile >= tiles) {
        return;
    }
    var m: array<vec4<f32>, 4>;
    for (var row = 0u; row < 4u; row++) {
        var r = vec4<f32>(0.0);
        for (var c = 0u; c < 4u; c++) {
            r[c] = shared_tile[((row * 4u + c) * 16u + oc_local) * 4u + tile_local / 4u][tile_local % 4u];
        }
        m[row] = r;
    }
    // A^T M A with A^T = [[1, 1, 1, 0], [0, 1, -1, -1]].
    let top = m[0] + m[1] + m[2];
    let bottom = m[1] - m[2] - m[3];
    let y = array<vec2<f32>, 2>(
        vec2<f32>(top.x + top.y + top.z, top.y - top.z - top.w),
        vec2<f32>(bottom.x + bottom.y + bottom.z, bottom.y - bottom.z - bottom.w),
    );
    let b = bias[set_of(n) * p.bias_set_stride + oc / 4u][oc % 4u];
    let oy0 = (tile / p.tiles_w) * 2u;
    let ox0 = (tile % p.tiles_w) * 2u;
    for (var dy = 0u; dy < 2u; dy++) {
        for (var dx = 0u; dx < 2u; dx++) {
            let oy = oy0 + dy;
            let ox = ox0 + dx;
            if (oy < p.out_h && ox < p.out_w) {
                store_output(n, oc, oy * p.out_w + ox, y[dy][dx] + b);
            }
        }
    }
}

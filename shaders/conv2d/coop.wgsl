// Convolution as an implicit GEMM on cooperative matrices (tensor cores on NVIDIA through
// Vulkan's VK_KHR_cooperative_matrix): the same 64 (output channels) x 64 (pixels) workgroup tile,
// im2col gather, prologue, weight layout and uniform block as conv2d_tiled.wgsl, but the 16-deep
// K tiles are staged in f16 and multiplied as 16x16x16 f16 matrices with f32 accumulators; the
// 4x4 grid of 16x16 output blocks is shared out among the workgroup's subgroups (1, 2 or 4 blocks
// each for subgroups of 64, 32 or 16 invocations). The result goes through workgroup memory to the
// fused epilogue (bias, residual, ReLU).
//
// Only the f16 precision runs it (products of f16 inputs, like the f16 scalar kernels), and only
// where the adapter reports a 16x16x16 f16 x f16 -> f32 configuration, subgroups of 16..64
// invocations and 20 KiB of workgroup memory; see ops::CoopSupport.

enable f16;
enable wgpu_cooperative_matrix;

alias act = f16;

// KH, KW, STRIDE_*, PAD_*, PROLOGUE, RESIDUAL, ACTIVATION, the bindings, `Params` and the
// epilogue `store_output`: common.wgsl.

const TILE_K: u32 = 16u;
// [k][64 output channels] and [k][64 pixels] of one K tile, f16.
var<workgroup> w_tile: array<f16, 1024>;
var<workgroup> x_tile: array<f16, 1024>;
// [64 output channels][64 pixels], the accumulators on their way to the epilogue.
var<workgroup> c_tile: array<f32, 4096>;

// columns(), gather4(): im2col.wgsl.

// One 16x16x16 step for output block `block` (row-major in the 4x4 grid of the tile).
fn block_step(block: u32, acc: coop_mat16x16<f32, C>) -> coop_mat16x16<f32, C> {
    let oc_block = block / 4u;
    let pixel_block = block % 4u;
    // w_tile[k][oc] is column-major for the oc x k matrix A; x_tile[k][pixel] row-major for B.
    let a = coopLoad<coop_mat16x16<f16, A>>(&w_tile[oc_block * 16u], 64u);
    let b = coopLoadT<coop_mat16x16<f16, B>>(&x_tile[pixel_block * 16u], 64u);
    return coopMultiplyAdd(a, b, acc);
}

fn store_block(block: u32, acc: coop_mat16x16<f32, C>) {
    coopStoreT(acc, &c_tile[(block / 4u) * 16u * 64u + (block % 4u) * 16u], 64u);
}

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
    @builtin(subgroup_id) subgroup: u32,
    @builtin(num_subgroups) subgroups: u32,
) {
    let n = wid.z;
    let pixel0 = wid.x * 64u;
    let oc4_0 = wid.y * 16u;
    let weight_base = set_of(n) * p.weight_set_stride;
    // Blocks per subgroup: 1, 2 or 4 (the host admits subgroups of 16..64 invocations only).
    let per_subgroup = 16u / subgroups;
    let first = subgroup * per_subgroup;

    var acc0: coop_mat16x16<f32, C>;
    var acc1: coop_mat16x16<f32, C>;
    var acc2: coop_mat16x16<f32, C>;
    var acc3: coop_mat16x16<f32, C>;
    let row = t / 16u;
    let column = t % 16u;
    let load_columns = columns(pixel0 + column * 4u);
    for (var k0 = 0u; k0 < p.k_total; k0 += TILE_K) {
        let k = k0 + row;
        var w = vec4<f32>(0.0);
        if (k < p.k_total && oc4_0 + column < p.out_c4) {
            w = weight[weight_base + k * p.out_c4 + oc4_0 + column];
        }
        let at = row * 64u + column * 4u;
        w_tile[at] = f16(w.x);
        w_tile[at + 1u] = f16(w.y);
        w_tile[at + 2u] = f16(w.z);
        w_tile[at + 3u] = f16(w.w);
        let x = gather4(n, k, load_columns);
        x_tile[at] = f16(x.x);
        x_tile[at + 1u] = f16(x.y);
        x_tile[at + 2u] = f16(x.z);
        x_tile[at + 3u] = f16(x.w);
        workgroupBarrier();
        acc0 = block_step(first, acc0);
        if (per_subgroup > 1u) {
            acc1 = block_step(first + 1u, acc1);
        }
        if (per_subgroup > 2u) {
            acc2 = block_step(first + 2u, acc2);
            acc3 = block_step(first + 3u, acc3);
        }
        workgroupBarrier();
    }
    store_block(first, acc0);
    if (per_subgroup > 1u) {
        store_block(first + 1u, acc1);
    }
    if (per_subgroup > 2u) {
        store_block(first + 2u, acc2);
        store_block(first + 3u, acc3);
    }
    workgroupBarrier();

    // Epilogue: each invocation one output channel x 16 pixels of the tile.
    let oc_local = t / 4u;
    let oc = oc4_0 * 4u + oc_local;
    if (oc >= p.out_c) {
        return;
    }
    let b = bias[set_of(n) * p.bias_set_stride + oc / 4u][oc % 4u];
    let pixels = p.out_h * p.out_w;
    for (var j = 0u; j < 16u; j++) {
        let local_pixel = (t % 4u) * 16u + j;
        let pixel = pixel0 + local_pixel;
        if (pixel >= pixels) {
            break;
        }
        store_output(n, oc, pixel, c_tile[oc_local * 64u + local_pixel] + b);
    }
}

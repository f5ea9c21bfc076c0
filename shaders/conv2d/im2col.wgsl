// The im2col gather of the implicit-GEMM convolutions (conv2d_tiled, conv2d_coop), appended to
// them with common.wgsl: elements (k, pixel .. pixel + 3) of the virtual
// [in_c * KH * KW][out_h * out_w] matrix of sample n, with the pre-activation prologue applied and
// zero padding (as PyTorch pads the already-activated input). The uniform block holds
// `k_total` = in_c * KH * KW.
//
// Each invocation gathers the same 4 output pixels for every K row it loads, so their input
// origins are computed once (`columns`) and each K row costs one (ic, ky, kx) decomposition.

struct Columns {
    // Input row and column of each pixel's top-left tap; `pixels` ahead of the map's end are
    // masked by `valid`.
    y: vec4<i32>,
    x: vec4<i32>,
    valid: vec4<bool>,
    first: u32,
}

fn columns(first_pixel: u32) -> Columns {
    var c: Columns;
    c.first = first_pixel;
    for (var j = 0u; j < 4u; j++) {
        let pixel = first_pixel + j;
        c.valid[j] = pixel < p.out_h * p.out_w;
        c.y[j] = i32((pixel / p.out_w) * STRIDE_Y) - i32(PAD_Y);
        c.x[j] = i32((pixel % p.out_w) * STRIDE_X) - i32(PAD_X);
    }
    return c;
}

fn gather4(n: u32, k: u32, c: Columns) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    if (k >= p.k_total) {
        return v;
    }
    // 1x1 layers: the im2col matrix is the activation itself, [ic][pixel] (a plain GEMM).
    let plain = KH == 1u && KW == 1u && STRIDE_Y == 1u && STRIDE_X == 1u && PAD_Y == 0u && PAD_X == 0u;
    let ic = select(k / (KH * KW), k, plain);
    let r = select(k % (KH * KW), 0u, plain);
    let ky = i32(r / KW);
    let kx = i32(r % KW);
    let plane = (n * p.in_c + ic) * p.in_h * p.in_w;
    var inside = vec4<bool>(false);
    for (var j = 0u; j < 4u; j++) {
        let iy = c.y[j] + ky;
        let ix = c.x[j] + kx;
        if (c.valid[j] && iy >= 0 && iy < i32(p.in_h) && ix >= 0 && ix < i32(p.in_w)) {
            inside[j] = true;
            if (plain) {
                v[j] = f32(input[plane + c.first + j]);
            } else {
                v[j] = f32(input[plane + u32(iy) * p.in_w + u32(ix)]);
            }
        }
    }
    if (PROLOGUE) {
        let ss = prologue[set_of(n) * p.prologue_set_stride + ic];
        // Padding stays zero: only the taps inside the map are activated.
        v = select(vec4<f32>(0.0), max(v * ss.x + ss.y, vec4<f32>(0.0)), inside);
    }
    return v;
}

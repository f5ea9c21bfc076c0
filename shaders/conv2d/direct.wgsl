// Direct convolution with everything around it fused: an optional pre-activation prologue
// (relu(x * scale[ic] + shift[ic]) on the input, BatchNorm folded into scale/shift; padding stays
// zero after it, as in PyTorch where the conv pads its already-activated input), bias, an optional
// residual add and an optional ReLU (in that order). BatchNorm that follows a convolution is
// folded into its weights on the CPU at load time.
//
// Each invocation computes 4 output channels x 4 neighbouring output pixels of one row, so one
// vec4 weight load feeds 16 multiply-adds. Weights are repacked to [group][ic][ky][kx][oc/4] as
// vec4; with per-sample weights (the six refiners batched in one dispatch) sample n uses group n
// of the weights, biases and prologue tables.

// `act` is the activation storage type and `mul` the type of the products and of each input
// channel's sum over its KH*KW taps: both f32, or both f16 in the f16 precision variant (see
// plan::Precision). The sum across input channels, the epilogue and the output stay f32 until
// stored, so f16 rounding does not grow with the channel count.
alias act = f32;
alias mul = f32;

// KH, KW, STRIDE_*, PAD_*, PROLOGUE, RESIDUAL, ACTIVATION, the bindings, `Params` and the
// epilogue `store_output`: common.wgsl.

// Input columns under one invocation's 4 outputs: 3 * STRIDE_X + KW, at most 13 (7x7 stride 2);
// ConvLayer rejects larger combinations for this kernel.
const MAX_SPAN: u32 = 16u;
override SPAN: u32 = 3u * STRIDE_X + KW;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let index = gid.x + gid.y * groups.x * 64u;
    if (index >= p.total) {
        return;
    }
    let xb = index % p.x_blocks;
    var rest = index / p.x_blocks;
    let oy = rest % p.out_h;
    rest = rest / p.out_h;
    let ocb = rest % p.out_c4;
    let n = rest / p.out_c4;

    let b = bias[set_of(n) * p.bias_set_stride + ocb];
    var acc0 = b;
    var acc1 = b;
    var acc2 = b;
    var acc3 = b;
    let ox0 = xb * 4u;
    let x_origin = i32(ox0 * STRIDE_X) - i32(PAD_X);
    let y_origin = i32(oy * STRIDE_Y) - i32(PAD_Y);
    let weight_base = set_of(n) * p.weight_set_stride;
    for (var ic = 0u; ic < p.in_c; ic++) {
        var scale_shift = vec2<f32>(1.0, 0.0);
        if (PROLOGUE) {
            scale_shift = prologue[set_of(n) * p.prologue_set_stride + ic];
        }
        let plane = (n * p.in_c + ic) * p.in_h * p.in_w;
        var part0 = vec4<mul>(0.0);
        var part1 = vec4<mul>(0.0);
        var part2 = vec4<mul>(0.0);
        var part3 = vec4<mul>(0.0);
        for (var ky = 0u; ky < KH; ky++) {
            let iy = y_origin + i32(ky);
            if (iy < 0 || iy >= i32(p.in_h)) {
                continue;
            }
            let row = plane + u32(iy) * p.in_w;
            // The input span under the 4 outputs, loaded (and activated) once for all KW taps.
            var xs: array<mul, MAX_SPAN>;
            for (var i = 0u; i < SPAN; i++) {
                let ix = x_origin + i32(i);
                var x = 0.0;
                if (ix >= 0 && ix < i32(p.in_w)) {
                    x = f32(input[row + u32(ix)]);
                    if (PROLOGUE) {
                        x = max(x * scale_shift.x + scale_shift.y, 0.0);
                    }
                }
                xs[i] = mul(x);
            }
            for (var kx = 0u; kx < KW; kx++) {
                let w = vec4<mul>(weight[weight_base + ((ic * KH + ky) * KW + kx) * p.out_c4 + ocb]);
                let v = vec4<mul>(xs[kx], xs[kx + STRIDE_X], xs[kx + 2u * STRIDE_X], xs[kx + 3u * STRIDE_X]);
                part0 += v.x * w;
                part1 += v.y * w;
                part2 += v.z * w;
                part3 += v.w * w;
            }
        }
        acc0 += vec4<f32>(part0);
        acc1 += vec4<f32>(part1);
        acc2 += vec4<f32>(part2);
        acc3 += vec4<f32>(part3);
    }

    for (var j = 0u; j < 4u; j++) {
        let ox = ox0 + j;
        if (ox >= p.out_w) {
            break;
        }
        var acc = acc0;
        if (j == 1u) {
            acc = acc1;
        } else if (j == 2u) {
            acc = acc2;
        } else if (j == 3u) {
            acc = acc3;
        }
        for (var c = 0u; c < 4u; c++) {
            let oc = ocb * 4u + c;
            if (oc >= p.out_c) {
                break;
            }
            store_output(n, oc, oy * p.out_w + ox, acc[c]);
        }
    }
}

// `sagitta view`: the frame drawn by viewer.wgsl, copied texel for texel onto the window's
// surface (whose format may be sRGB or BGRA: the frame texture stays one known format).

struct Varyings {
    @builtin(position) position: vec4<f32>,
}

// One triangle that covers the window.
@vertex
fn full_window(@builtin(vertex_index) index: u32) -> Varyings {
    let corner = vec2<f32>(f32((index << 1u) & 2u), f32(index & 2u));
    var out: Varyings;
    out.position = vec4<f32>(corner * 2.0 - 1.0, 0.0, 1.0);
    return out;
}

// The drawn frame, copied texel for texel onto the window's surface.
@group(0) @binding(0) var frame: texture_2d<f32>;

@fragment
fn present(in: Varyings) -> @location(0) vec4<f32> {
    return textureLoad(frame, vec2<u32>(in.position.xy), 0);
}

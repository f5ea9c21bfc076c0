// A host's texture -> the grey f32 image every model reads: one invocation per pixel, read with
// textureLoad (no filtering, so the model's own resize stays PyTorch-exact), then the DICOM
// modality rescale and the MONOCHROME1 mirror, as the CPU decoding does them.
//
// One entry point per texel type; each pipeline binds only its own texture.

struct Params {
    width: u32,
    height: u32,
    // 0: the first channel; 1: luma of the first three (the CPU decoding's weights).
    luma: u32,
    // Normalized formats: the integer range (255, 65535) each channel's stored value is
    // recovered from, rounded; 0 for float and integer formats (the texel is the value).
    unorm_max: f32,
    slope: f32,
    intercept: f32,
    // 1: grey = mirror_sum - rescaled (MONOCHROME1, bone bright as the CPU decoding makes it).
    mirror: u32,
    mirror_sum: f32,
    luma_r: f32,
    luma_g: f32,
    luma_b: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var float_texels: texture_2d<f32>;
@group(0) @binding(2) var uint_texels: texture_2d<u32>;
@group(0) @binding(3) var sint_texels: texture_2d<i32>;
@group(0) @binding(4) var<storage, read_write> grey: array<f32>;

fn store(at: vec2<u32>, texel: vec4<f32>) {
    var stored = texel;
    if (p.unorm_max > 0.0) {
        stored = round(texel * p.unorm_max);
    }
    var value = stored.x;
    if (p.luma == 1u) {
        value = p.luma_r * stored.x + p.luma_g * stored.y + p.luma_b * stored.z;
    }
    value = p.slope * value + p.intercept;
    if (p.mirror == 1u) {
        value = p.mirror_sum - value;
    }
    // The CPU path refuses non-finite pixels; on the GPU they are read as 0 rather than
    // spreading through every later reduction.
    if (value != value || abs(value) > 3.4028234e38) {
        value = 0.0;
    }
    grey[at.y * p.width + at.x] = value;
}

@compute @workgroup_size(16, 16)
fn from_float(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x >= p.width || id.y >= p.height) {
        return;
    }
    store(id.xy, textureLoad(float_texels, id.xy, 0));
}

@compute @workgroup_size(16, 16)
fn from_uint(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x >= p.width || id.y >= p.height) {
        return;
    }
    store(id.xy, vec4<f32>(textureLoad(uint_texels, id.xy, 0)));
}

@compute @workgroup_size(16, 16)
fn from_sint(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x >= p.width || id.y >= p.height) {
        return;
    }
    store(id.xy, vec4<f32>(textureLoad(sint_texels, id.xy, 0)));
}

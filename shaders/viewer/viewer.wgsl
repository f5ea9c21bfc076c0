// `sagitta view`: the radiograph the viewer shows (the same texture the model reads), the
// model's probability maps as a translucent overlay, the landmarks as dots coloured by
// confidence, and the parameter panel, drawn in one full-window pass into the viewer's frame
// texture (which screenshots read), then copied to the window's surface by present.wgsl.

struct View {
    // The image's placement in the window: window pixel = offset + image pixel * scale.
    offset: vec2<f32>,
    scale: f32,
    point_radius: f32,
    image_size: vec2<f32>,
    // Grey window: display = (value - low) / (high - low).
    low: f32,
    high: f32,
    heatmap_size: vec2<u32>,
    heatmap_layers: u32,
    show_heatmaps: u32,
    landmark_count: u32,
    selected: u32,
    panel_size: vec2<u32>,
}

struct Landmark {
    // x, y in image pixels; z: 1 when it has a position.
    at: vec4<f32>,
    // The overlay's colour for the landmark's confidence (report::overlay::confidence_colour).
    colour: vec4<f32>,
}

@group(0) @binding(0) var<uniform> view: View;
@group(0) @binding(1) var image: texture_2d<f32>;
@group(0) @binding(2) var heatmaps: texture_2d_array<f32>;
@group(0) @binding(3) var<storage, read> landmarks: array<Landmark>;
@group(0) @binding(4) var panel: texture_2d<f32>;

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

@fragment
fn draw(in: Varyings) -> @location(0) vec4<f32> {
    let window_px = in.position.xy;
    var colour = vec3<f32>(0.08, 0.08, 0.08);
    let at = (window_px - view.offset) / view.scale;
    let inside = all(at >= vec2<f32>(0.0)) && all(at < view.image_size);
    if (inside) {
        let texel = vec2<u32>(at);
        let value = textureLoad(image, texel, 0).x;
        let grey = clamp((value - view.low) / max(view.high - view.low, 1e-6), 0.0, 1.0);
        colour = vec3<f32>(grey);
        if (view.show_heatmaps == 1u && view.heatmap_layers > 0u) {
            // The map cell over this image pixel (the resize to the model's square input keeps
            // no aspect, so each axis scales on its own).
            let cell = min(
                vec2<u32>(at * vec2<f32>(view.heatmap_size) / view.image_size),
                view.heatmap_size - vec2<u32>(1u),
            );
            var strongest = 0.0;
            for (var layer = 0u; layer < view.heatmap_layers; layer++) {
                strongest = max(strongest, textureLoad(heatmaps, cell, layer, 0).x);
            }
            // A map concentrated on about 64 cells or fewer shows at full strength.
            let cells = f32(view.heatmap_size.x * view.heatmap_size.y);
            let heat = clamp(strongest * cells / 64.0, 0.0, 1.0);
            colour = mix(colour, vec3<f32>(1.0, 0.45, 0.0), 0.6 * heat);
        }
    }
    for (var i = 0u; i < view.landmark_count; i++) {
        let landmark = landmarks[i].at;
        if (landmark.z < 0.5) {
            continue;
        }
        let centre = view.offset + landmark.xy * view.scale;
        let distance = length(window_px - centre);
        let radius = select(view.point_radius, 1.6 * view.point_radius, i == view.selected);
        if (distance < radius + 1.5) {
            // A dark ring around a filled dot, anti-aliased at the edge.
            let fill = clamp(radius - distance, 0.0, 1.0);
            let ring = clamp(radius + 1.5 - distance, 0.0, 1.0) - fill;
            colour = mix(colour, vec3<f32>(0.0), ring);
            colour = mix(colour, landmarks[i].colour.xyz, fill);
        }
    }
    if (window_px.x < f32(view.panel_size.x) && window_px.y < f32(view.panel_size.y)) {
        let text = textureLoad(panel, vec2<u32>(window_px), 0).xyz;
        colour = mix(colour, text, 0.85);
    }
    return vec4<f32>(colour, 1.0);
}

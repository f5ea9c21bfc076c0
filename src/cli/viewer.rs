//! `sagitta view IMAGE`: the example viewer, a window that embeds the engine the way a viewer
//! product would. It uploads the radiograph once as the texture it shows, runs the cervical
//! model on that texture inside its own frame's command encoder, writes the probability maps
//! into a texture it overlays, and polls the landmarks' readback between frames: no call in
//! the render loop waits on the device. Dragging a landmark recomputes the nine parameters
//! (pure Rust `measure`).
//!
//! Keys: `h` heatmaps on/off, `r` run the model again, Escape quits. With `--frames N` it draws
//! N frames with an inference always in flight and N without, then exits, writing
//! `--screenshot` and `--timing` (the frame times of both); `--drag NAME:DX,DY` moves a
//! landmark before the last frame as a mouse drag would.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use serde_json::json;
use winit::application::ApplicationHandler;
use winit::event::{ElementState, MouseButton, WindowEvent};
use winit::event_loop::{ActiveEventLoop, ControlFlow, EventLoop};
use winit::keyboard::{Key, NamedKey};
use winit::window::{Window, WindowId};

use crate::api::open_weights;
use crate::cli::analyze::default_weights;
use crate::engine::DeviceOptions;
use crate::io::{load_radiograph, Radiograph};
use crate::measure::{self, PixelSpacing};
use crate::models::cervical::{CervicalModel, LANDMARK_NAMES};
use crate::models::{Family, TextureImage};
use crate::nn::WeightFile;
use crate::ops::HeatmapTarget;
use crate::report::{combined_spread, landmark_confidence, overlay};
use crate::{GpuContext, PendingReadback};

const VIEWER_SHADER: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/shaders/viewer/viewer.wgsl"
));
const PRESENT_SHADER: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/shaders/viewer/present.wgsl"
));

/// The frame texture's format: what screenshots are read from.
const FRAME_FORMAT: wgpu::TextureFormat = wgpu::TextureFormat::Rgba8Unorm;
/// The largest window the image is fitted into.
const MAX_WINDOW: (f64, f64) = (1000.0, 860.0);
const PANEL_TEXT_PX: f32 = 15.0;

#[derive(clap::Args, Clone, Debug)]
pub struct ViewArgs {
    /// The radiograph: PNG, JPEG, TIFF or DICOM.
    pub image: PathBuf,
    /// Cervical weights [default: as for `analyze`].
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Draw N frames with an inference always in flight, then N without, then exit.
    #[arg(long, value_name = "N")]
    pub frames: Option<u32>,
    /// With --frames: write the last frame as a PNG.
    #[arg(long, value_name = "PNG")]
    pub screenshot: Option<PathBuf>,
    /// With --frames: write the frame times, the landmarks and the parameters as JSON.
    #[arg(long, value_name = "JSON")]
    pub timing: Option<PathBuf>,
    /// With --frames: before the last frame, drag landmark NAME by DX,DY image pixels.
    #[arg(long, value_name = "NAME:DX,DY")]
    pub drag: Option<String>,
}

/// Runs the viewer; the exit code.
pub fn main(args: &ViewArgs) -> u8 {
    match run(args) {
        Ok(()) => 0,
        Err(message) => {
            eprintln!("sagitta view: {message}");
            2
        }
    }
}

fn run(args: &ViewArgs) -> Result<(), String> {
    if args.frames.is_none() && (args.screenshot.is_some() || args.timing.is_some()) {
        return Err("--screenshot and --timing need --frames N".into());
    }
    let drag = args.drag.as_deref().map(parse_drag).transpose()?;
    let radiograph = load_radiograph(&args.image).map_err(|e| e.to_string())?;
    let weights_path = match &args.weights {
        Some(path) => path.clone(),
        None => {
            default_weights(Family::Cervical)
                .map_err(|e| e.to_string())?
                .0
        }
    };
    let (weights, _) = open_weights(&weights_path, Some((Family::Cervical, "--weights")))
        .map_err(|e| e.to_string())?;
    let event_loop = EventLoop::new().map_err(|e| {
        format!("no window system ({e}); on a machine without a display run it under xvfb-run")
    })?;
    event_loop.set_control_flow(ControlFlow::Poll);
    let mut app = App {
        args: args.clone(),
        drag,
        radiograph,
        weights,
        state: None,
        error: None,
    };
    event_loop
        .run_app(&mut app)
        .map_err(|e| format!("the window's event loop failed: {e}"))?;
    match app.error {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

fn parse_drag(text: &str) -> Result<(usize, [f64; 2]), String> {
    let bad = || format!("--drag {text}: expected NAME:DX,DY, e.g. C2_as:10,-4");
    let (name, delta) = text.split_once(':').ok_or_else(bad)?;
    let index = LANDMARK_NAMES
        .iter()
        .position(|n| *n == name)
        .ok_or_else(|| format!("--drag: no landmark {name}; one of {LANDMARK_NAMES:?}"))?;
    let (dx, dy) = delta.split_once(',').ok_or_else(bad)?;
    let number = |v: &str| v.trim().parse::<f64>().map_err(|_| bad());
    Ok((index, [number(dx)?, number(dy)?]))
}

struct App {
    args: ViewArgs,
    drag: Option<(usize, [f64; 2])>,
    radiograph: Radiograph,
    weights: WeightFile,
    state: Option<Viewer>,
    error: Option<String>,
}

impl ApplicationHandler for App {
    fn resumed(&mut self, event_loop: &ActiveEventLoop) {
        if self.state.is_some() {
            return;
        }
        match Viewer::open(event_loop, &self.args, &self.radiograph, &self.weights) {
            Ok(viewer) => {
                viewer.window.request_redraw();
                self.state = Some(viewer);
            }
            Err(error) => {
                self.error = Some(error);
                event_loop.exit();
            }
        }
    }

    fn window_event(&mut self, event_loop: &ActiveEventLoop, _: WindowId, event: WindowEvent) {
        let Some(viewer) = self.state.as_mut() else {
            return;
        };
        let outcome = match event {
            WindowEvent::CloseRequested => {
                event_loop.exit();
                Ok(())
            }
            WindowEvent::Resized(size) => {
                viewer.resize(size.width, size.height);
                Ok(())
            }
            WindowEvent::KeyboardInput { event, .. } if event.state == ElementState::Pressed => {
                match event.logical_key {
                    Key::Named(NamedKey::Escape) => event_loop.exit(),
                    Key::Character(c) if c == "h" => viewer.show_heatmaps ^= true,
                    Key::Character(c) if c == "r" => viewer.run_requested = true,
                    _ => {}
                }
                Ok(())
            }
            WindowEvent::CursorMoved { position, .. } => {
                viewer.cursor = [position.x, position.y];
                if let Some(index) = viewer.dragging {
                    let at = viewer.image_point(viewer.cursor);
                    viewer.move_landmark(index, at);
                }
                Ok(())
            }
            WindowEvent::MouseInput {
                state,
                button: MouseButton::Left,
                ..
            } => {
                viewer.dragging = match state {
                    ElementState::Pressed => viewer.landmark_under(viewer.cursor),
                    ElementState::Released => None,
                };
                Ok(())
            }
            WindowEvent::RedrawRequested => viewer.frame(&self.args, self.drag),
            _ => Ok(()),
        };
        match outcome {
            Ok(()) if viewer.finished => event_loop.exit(),
            Ok(()) => {}
            Err(error) => {
                self.error = Some(error);
                event_loop.exit();
            }
        }
    }

    fn about_to_wait(&mut self, _: &ActiveEventLoop) {
        if let Some(viewer) = &self.state {
            viewer.window.request_redraw();
        }
    }
}

/// The uniform block of viewer.wgsl (`View`).
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ViewUniform {
    offset: [f32; 2],
    scale: f32,
    point_radius: f32,
    image_size: [f32; 2],
    low: f32,
    high: f32,
    heatmap_size: [u32; 2],
    heatmap_layers: u32,
    show_heatmaps: u32,
    landmark_count: u32,
    selected: u32,
    panel_size: [u32; 2],
}

/// Frame times of one phase, in milliseconds.
#[derive(Default)]
struct FrameTimes(Vec<f64>);

impl FrameTimes {
    fn summary(&self) -> serde_json::Value {
        let mut sorted = self.0.clone();
        sorted.sort_by(f64::total_cmp);
        let at = |q: f64| {
            sorted
                .get(((sorted.len() as f64 - 1.0) * q).round() as usize)
                .copied()
        };
        let mean = (!sorted.is_empty()).then(|| sorted.iter().sum::<f64>() / sorted.len() as f64);
        json!({
            "frames": sorted.len(),
            "median_ms": at(0.5),
            "p95_ms": at(0.95),
            "mean_ms": mean,
            "fps_from_median": at(0.5).map(|m| 1000.0 / m),
        })
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Interactive: the user decides.
    Interactive,
    /// Scripted: an inference always in flight, for this many more frames.
    InFlight(u32),
    /// Scripted: no inference, for this many more frames.
    Idle(u32),
    /// Scripted: the drag, the last frame and its screenshot.
    Last,
}

struct Viewer {
    window: Arc<Window>,
    surface: wgpu::Surface<'static>,
    surface_config: wgpu::SurfaceConfiguration,
    device: wgpu::Device,
    queue: wgpu::Queue,
    adapter_name: String,
    model: CervicalModel,
    image: wgpu::Texture,
    image_size: (u32, u32),
    spacing: Option<PixelSpacing>,
    heatmaps: wgpu::Texture,
    heatmap_shape: (u32, u32, u32),
    frame_texture: wgpu::Texture,
    draw_layout: wgpu::BindGroupLayout,
    draw_pipeline: wgpu::RenderPipeline,
    present_layout: wgpu::BindGroupLayout,
    present_pipeline: wgpu::RenderPipeline,
    uniform: wgpu::Buffer,
    landmark_buffer: wgpu::Buffer,
    panel: wgpu::Texture,
    panel_lines: Vec<(String, overlay::Colour)>,
    header: Vec<(String, overlay::Colour)>,
    window_grey: (f32, f32),
    scale: f64,
    offset: [f64; 2],
    landmarks: Option<Vec<[f64; 2]>>,
    confidences: Vec<f64>,
    pending: Option<(PendingReadback, Instant)>,
    run_requested: bool,
    show_heatmaps: bool,
    has_heatmaps: bool,
    cursor: [f64; 2],
    dragging: Option<usize>,
    phase: Phase,
    last_frame_start: Option<Instant>,
    in_flight_times: FrameTimes,
    idle_times: FrameTimes,
    /// How long `submit` and `present` took in each phase: where a driver that runs
    /// submissions on the CPU (lavapipe) makes the frame wait for the inference.
    in_flight_submit: FrameTimes,
    idle_submit: FrameTimes,
    inference_ms: Vec<f64>,
    finished: bool,
}

impl Viewer {
    fn open(
        event_loop: &ActiveEventLoop,
        args: &ViewArgs,
        radiograph: &Radiograph,
        weights: &WeightFile,
    ) -> Result<Self, String> {
        let (width, height) = (radiograph.width, radiograph.height);
        let scale = (MAX_WINDOW.0 / f64::from(width)).min(MAX_WINDOW.1 / f64::from(height));
        let window_size = (
            (f64::from(width) * scale).round().max(1.0) as u32,
            (f64::from(height) * scale).round().max(1.0) as u32,
        );
        let attributes = Window::default_attributes()
            .with_title(format!("sagitta view: {}", args.image.display()))
            .with_inner_size(winit::dpi::PhysicalSize::new(window_size.0, window_size.1))
            .with_resizable(args.frames.is_none());
        let window = Arc::new(
            event_loop
                .create_window(attributes)
                .map_err(|e| format!("cannot open a window: {e}"))?,
        );
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
        let surface = instance
            .create_surface(window.clone())
            .map_err(|e| format!("cannot draw into the window: {e}"))?;
        let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            compatible_surface: Some(&surface),
            ..Default::default()
        }))
        .map_err(|e| format!("no GPU adapter that can draw into the window: {e}"))?;
        let info = adapter.get_info();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("sagitta view"),
            required_limits: adapter.limits(),
            ..Default::default()
        }))
        .map_err(|e| format!("cannot open {}: {e}", info.name))?;

        // The viewer's own device: the engine records into it, it does not own it.
        let ctx = GpuContext::from_device(
            device.clone(),
            queue.clone(),
            info.clone(),
            &DeviceOptions::default(),
        );
        let model = CervicalModel::new(ctx, weights).map_err(|e| e.to_string())?;
        let heatmap_shape = model.heatmap_shape();
        let capabilities = surface.get_capabilities(&adapter);
        let surface_format = capabilities
            .formats
            .iter()
            .copied()
            .find(|f| !f.is_srgb())
            .or_else(|| capabilities.formats.first().copied())
            .ok_or("the window's surface offers no format")?;
        let present_mode = if args.frames.is_some() {
            // Measured frames are not paced by a display's refresh.
            wgpu::PresentMode::AutoNoVsync
        } else {
            wgpu::PresentMode::AutoVsync
        };
        let mut surface_config = surface
            .get_default_config(&adapter, window_size.0, window_size.1)
            .ok_or("the window's surface does not work with this adapter")?;
        surface_config.format = surface_format;
        surface_config.present_mode = present_mode;
        surface.configure(&device, &surface_config);

        // What the viewer shows, and what the model reads: one texture.
        let image = texture(
            &device,
            "radiograph",
            (width, height, 1),
            wgpu::TextureFormat::R32Float,
            wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
        );
        queue.write_texture(
            image.as_image_copy(),
            bytemuck::cast_slice(&radiograph.pixels),
            wgpu::TexelCopyBufferLayout {
                offset: 0,
                bytes_per_row: Some(4 * width),
                rows_per_image: Some(height),
            },
            image.size(),
        );
        let heatmaps = texture(
            &device,
            "heatmaps",
            heatmap_shape,
            wgpu::TextureFormat::R32Float,
            wgpu::TextureUsages::STORAGE_BINDING | wgpu::TextureUsages::TEXTURE_BINDING,
        );
        let frame_texture = frame_texture(&device, window_size);
        let (draw_layout, draw_pipeline) = draw_pipeline(&device);
        let (present_layout, present_pipeline) = present_pipeline(&device, surface_format);
        let uniform = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("view"),
            size: std::mem::size_of::<ViewUniform>() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let landmark_buffer = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("landmarks"),
            size: 32 * LANDMARK_NAMES.len() as u64,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut header = vec![(
            format!("{} on {}", model.config.name, info.name),
            [230, 230, 230],
        )];
        let not_for_clinical_use = weights
            .metadata
            .get("not_for_clinical_use")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false);
        if not_for_clinical_use {
            header.push(("NOT FOR CLINICAL USE".into(), [255, 80, 80]));
        }
        let mut viewer = Self {
            window,
            surface,
            surface_config,
            device: device.clone(),
            queue,
            adapter_name: info.name.clone(),
            model,
            image,
            image_size: (width, height),
            spacing: radiograph.pixel_spacing,
            heatmaps,
            heatmap_shape,
            frame_texture,
            draw_layout,
            draw_pipeline,
            present_layout,
            present_pipeline,
            uniform,
            landmark_buffer,
            panel: texture(
                &device,
                "panel",
                (1, 1, 1),
                wgpu::TextureFormat::Rgba8Unorm,
                wgpu::TextureUsages::TEXTURE_BINDING,
            ),
            panel_lines: Vec::new(),
            header,
            window_grey: grey_window(radiograph),
            scale,
            offset: [0.0, 0.0],
            landmarks: None,
            confidences: Vec::new(),
            pending: None,
            run_requested: true,
            show_heatmaps: true,
            has_heatmaps: false,
            cursor: [0.0, 0.0],
            dragging: None,
            phase: match args.frames {
                Some(n) => Phase::InFlight(n.max(1)),
                None => Phase::Interactive,
            },
            last_frame_start: None,
            in_flight_times: FrameTimes::default(),
            idle_times: FrameTimes::default(),
            in_flight_submit: FrameTimes::default(),
            idle_submit: FrameTimes::default(),
            inference_ms: Vec::new(),
            finished: false,
        };
        viewer.place_image();
        viewer.update_panel(&["running the model ...".to_string()]);
        Ok(viewer)
    }

    fn resize(&mut self, width: u32, height: u32) {
        if width == 0 || height == 0 {
            return;
        }
        self.surface_config.width = width;
        self.surface_config.height = height;
        self.surface.configure(&self.device, &self.surface_config);
        self.frame_texture = frame_texture(&self.device, (width, height));
        self.place_image();
    }

    /// The image fitted into the window, centred: the scale and offset from image to window
    /// pixels.
    fn place_image(&mut self) {
        let (w, h) = (self.surface_config.width, self.surface_config.height);
        let (iw, ih) = (f64::from(self.image_size.0), f64::from(self.image_size.1));
        self.scale = (f64::from(w) / iw).min(f64::from(h) / ih);
        self.offset = [
            (f64::from(w) - iw * self.scale) / 2.0,
            (f64::from(h) - ih * self.scale) / 2.0,
        ];
    }

    fn image_point(&self, window: [f64; 2]) -> [f64; 2] {
        [
            (window[0] - self.offset[0]) / self.scale,
            (window[1] - self.offset[1]) / self.scale,
        ]
    }

    fn point_radius(&self) -> f64 {
        (f64::from(self.surface_config.width.max(self.surface_config.height)) / 160.0).max(3.0)
    }

    fn landmark_under(&self, window: [f64; 2]) -> Option<usize> {
        let landmarks = self.landmarks.as_ref()?;
        let reach = 2.0 * self.point_radius();
        landmarks
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let dx = self.offset[0] + p[0] * self.scale - window[0];
                let dy = self.offset[1] + p[1] * self.scale - window[1];
                (i, dx.hypot(dy))
            })
            .filter(|(_, d)| *d <= reach)
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(i, _)| i)
    }

    fn move_landmark(&mut self, index: usize, to: [f64; 2]) {
        if let Some(landmarks) = self.landmarks.as_mut() {
            landmarks[index] = to;
            self.measure();
        }
    }

    /// The nine parameters of the current landmarks, into the panel.
    /// The nine parameters of the current landmarks; `None` before the first inference.
    fn measurements(&self) -> Option<Result<measure::Measurements, measure::MeasureError>> {
        let landmarks = self.landmarks.as_ref()?;
        let points: [[f64; 2]; 29] = landmarks.as_slice().try_into().expect("29 landmarks");
        Some(measure::cervical(&points, self.spacing))
    }

    fn measure(&mut self) {
        let Some(measured) = self.measurements() else {
            return;
        };
        let lines: Vec<String> = match measured {
            Ok(measured) => measured
                .parameters
                .iter()
                .map(|p| format!("{}: {}", p.name, with_unit(p.value, p.unit)))
                .collect(),
            Err(error) => vec![format!("not measurable: {error}")],
        };
        self.update_panel(&lines);
    }

    fn parameters_json(&self) -> serde_json::Value {
        match self.measurements() {
            None => serde_json::Value::Null,
            Some(Ok(measured)) => measured
                .parameters
                .iter()
                .map(|p| (p.name.to_string(), json!(p.value)))
                .collect::<serde_json::Map<_, _>>()
                .into(),
            Some(Err(error)) => json!({ "error": error.to_string() }),
        }
    }

    fn update_panel(&mut self, lines: &[String]) {
        let mut all = self.header.clone();
        all.extend(lines.iter().map(|l| (l.clone(), [235, 235, 235])));
        if all == self.panel_lines {
            return;
        }
        let image = overlay::text_panel(&all, PANEL_TEXT_PX);
        let rgba: Vec<u8> = image
            .pixels()
            .flat_map(|p| [p[0], p[1], p[2], 255])
            .collect();
        self.panel = texture(
            &self.device,
            "panel",
            (image.width(), image.height(), 1),
            wgpu::TextureFormat::Rgba8Unorm,
            wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
        );
        self.queue.write_texture(
            self.panel.as_image_copy(),
            &rgba,
            wgpu::TexelCopyBufferLayout {
                offset: 0,
                bytes_per_row: Some(4 * image.width()),
                rows_per_image: Some(image.height()),
            },
            self.panel.size(),
        );
        self.panel_lines = all;
    }

    /// Takes the landmarks if they have arrived; never waits.
    fn poll_inference(&mut self) -> Result<(), String> {
        let Some((pending, started)) = self.pending.as_mut() else {
            return Ok(());
        };
        let Some(bytes) = pending.poll() else {
            return Ok(());
        };
        let bytes = bytes.map_err(|e| e.to_string())?;
        self.inference_ms
            .push(started.elapsed().as_secs_f64() * 1000.0);
        self.pending = None;
        let prediction = self.model.prediction_from(&bytes);
        let (w, h) = self.image_size;
        self.confidences = prediction
            .landmarks
            .iter()
            .map(|l| landmark_confidence(f64::from(combined_spread(l)), w, h).unwrap_or(0.0))
            .collect();
        self.landmarks = Some(
            prediction
                .landmarks
                .iter()
                .map(|l| [f64::from(l.x), f64::from(l.y)])
                .collect(),
        );
        self.has_heatmaps = true;
        self.measure();
        Ok(())
    }

    fn frame(&mut self, args: &ViewArgs, drag: Option<(usize, [f64; 2])>) -> Result<(), String> {
        let start = Instant::now();
        let in_flight_at_start = self.pending.is_some();
        if let Some(previous) = self.last_frame_start.replace(start) {
            let ms = start.duration_since(previous).as_secs_f64() * 1000.0;
            match self.phase {
                Phase::InFlight(_) if in_flight_at_start => self.in_flight_times.0.push(ms),
                Phase::Idle(n) if n != u32::MAX => self.idle_times.0.push(ms),
                _ => {}
            }
        }
        self.poll_inference()?;
        let launch = match self.phase {
            Phase::Interactive => std::mem::take(&mut self.run_requested),
            Phase::InFlight(_) => true,
            Phase::Idle(_) | Phase::Last => false,
        } && self.pending.is_none();
        let last = self.phase == Phase::Last;
        if last {
            if self.pending.is_some() || self.landmarks.is_none() {
                // The scripted run ends on a frame with the landmarks in.
                self.phase = Phase::Idle(1);
            } else if let Some((index, [dx, dy])) = drag {
                let landmarks = self.landmarks.as_ref().expect("checked above");
                let to = [landmarks[index][0] + dx, landmarks[index][1] + dy];
                self.move_landmark(index, to);
            }
        }

        let surface_texture = match self.surface.get_current_texture() {
            wgpu::CurrentSurfaceTexture::Success(t)
            | wgpu::CurrentSurfaceTexture::Suboptimal(t) => t,
            wgpu::CurrentSurfaceTexture::Outdated | wgpu::CurrentSurfaceTexture::Lost => {
                self.surface.configure(&self.device, &self.surface_config);
                return Ok(());
            }
            // Try again at the next frame.
            wgpu::CurrentSurfaceTexture::Timeout | wgpu::CurrentSurfaceTexture::Occluded => {
                return Ok(());
            }
            wgpu::CurrentSurfaceTexture::Validation => {
                return Err("the window's surface refused to give a frame".into());
            }
        };
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("viewer frame"),
            });
        if launch {
            // The inference goes into this frame's encoder, read from the texture shown.
            self.model
                .encode(&mut encoder, TextureImage::new(&self.image))
                .map_err(|e| e.to_string())?;
            self.model
                .encode_heatmaps(
                    &mut encoder,
                    HeatmapTarget {
                        texture: &self.heatmaps,
                        first_layer: 0,
                    },
                )
                .map_err(|e| e.to_string())?;
        }
        self.draw(&mut encoder, &surface_texture.texture);
        let screenshot = (last && self.phase == Phase::Last).then(|| self.copy_frame(&mut encoder));
        let submitted_at = Instant::now();
        let submission = self.queue.submit([encoder.finish()]);
        self.queue.present(surface_texture);
        let submit_ms = submitted_at.elapsed().as_secs_f64() * 1000.0;
        match self.phase {
            Phase::InFlight(_) if launch || in_flight_at_start => {
                self.in_flight_submit.0.push(submit_ms)
            }
            Phase::Idle(n) if n != u32::MAX => self.idle_submit.0.push(submit_ms),
            _ => {}
        }
        if launch {
            self.pending = Some((
                self.model.begin_readback(Some(submission.clone())),
                submitted_at,
            ));
        }
        if let Some((buffer, row_bytes)) = screenshot {
            self.finish(args, &buffer, row_bytes, submission)?;
            return Ok(());
        }
        self.phase = match self.phase {
            Phase::InFlight(n) if in_flight_at_start && n <= 1 => {
                // Let the one in flight land before the idle frames.
                Phase::Idle(u32::MAX)
            }
            Phase::InFlight(n) if in_flight_at_start => Phase::InFlight(n - 1),
            Phase::Idle(u32::MAX) if self.pending.is_none() => {
                Phase::Idle(args.frames.unwrap_or(1).max(1))
            }
            Phase::Idle(n) if n != u32::MAX && n <= 1 => Phase::Last,
            Phase::Idle(n) if n != u32::MAX => Phase::Idle(n - 1),
            phase => phase,
        };
        Ok(())
    }

    fn draw(&mut self, encoder: &mut wgpu::CommandEncoder, surface: &wgpu::Texture) {
        let (iw, ih) = (f64::from(self.image_size.0), f64::from(self.image_size.1));
        let count = self.landmarks.as_ref().map_or(0, Vec::len);
        let rows: Vec<[f32; 8]> = match &self.landmarks {
            Some(points) => points
                .iter()
                .zip(&self.confidences)
                .map(|(p, c)| {
                    let [r, g, b] =
                        overlay::confidence_colour(Some(*c)).map(|v| f32::from(v) / 255.0);
                    [p[0] as f32, p[1] as f32, 1.0, 0.0, r, g, b, 1.0]
                })
                .collect(),
            None => vec![[0.0; 8]],
        };
        self.queue
            .write_buffer(&self.landmark_buffer, 0, bytemuck::cast_slice(&rows));
        let uniform = ViewUniform {
            offset: [self.offset[0] as f32, self.offset[1] as f32],
            scale: self.scale as f32,
            point_radius: self.point_radius() as f32,
            image_size: [iw as f32, ih as f32],
            low: self.window_grey.0,
            high: self.window_grey.1,
            heatmap_size: [self.heatmap_shape.0, self.heatmap_shape.1],
            heatmap_layers: self.heatmap_shape.2,
            show_heatmaps: (self.show_heatmaps && self.has_heatmaps) as u32,
            landmark_count: count as u32,
            selected: self.dragging.map_or(u32::MAX, |i| i as u32),
            panel_size: [self.panel.width(), self.panel.height()],
        };
        self.queue
            .write_buffer(&self.uniform, 0, bytemuck::bytes_of(&uniform));
        let view_of = |texture: &wgpu::Texture, dimension| {
            texture.create_view(&wgpu::TextureViewDescriptor {
                dimension: Some(dimension),
                ..Default::default()
            })
        };
        let views = [
            view_of(&self.image, wgpu::TextureViewDimension::D2),
            view_of(&self.heatmaps, wgpu::TextureViewDimension::D2Array),
            view_of(&self.panel, wgpu::TextureViewDimension::D2),
        ];
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("viewer draw"),
            layout: &self.draw_layout,
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: self.uniform.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: wgpu::BindingResource::TextureView(&views[0]),
                },
                wgpu::BindGroupEntry {
                    binding: 2,
                    resource: wgpu::BindingResource::TextureView(&views[1]),
                },
                wgpu::BindGroupEntry {
                    binding: 3,
                    resource: self.landmark_buffer.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 4,
                    resource: wgpu::BindingResource::TextureView(&views[2]),
                },
            ],
        });
        let frame_view = self.frame_texture.create_view(&Default::default());
        render_pass(encoder, &frame_view, &self.draw_pipeline, &bind_group);
        let present_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("viewer present"),
            layout: &self.present_layout,
            entries: &[wgpu::BindGroupEntry {
                binding: 0,
                resource: wgpu::BindingResource::TextureView(&frame_view),
            }],
        });
        let surface_view = surface.create_view(&Default::default());
        render_pass(
            encoder,
            &surface_view,
            &self.present_pipeline,
            &present_group,
        );
    }

    /// Records the copy of the frame texture into a mapped buffer; returns it and its row pitch.
    fn copy_frame(&self, encoder: &mut wgpu::CommandEncoder) -> (wgpu::Buffer, u32) {
        let (w, h) = (self.frame_texture.width(), self.frame_texture.height());
        let row_bytes = (4 * w).next_multiple_of(wgpu::COPY_BYTES_PER_ROW_ALIGNMENT);
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("screenshot"),
            size: u64::from(row_bytes) * u64::from(h),
            usage: wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::MAP_READ,
            mapped_at_creation: false,
        });
        encoder.copy_texture_to_buffer(
            self.frame_texture.as_image_copy(),
            wgpu::TexelCopyBufferInfo {
                buffer: &buffer,
                layout: wgpu::TexelCopyBufferLayout {
                    offset: 0,
                    bytes_per_row: Some(row_bytes),
                    rows_per_image: Some(h),
                },
            },
            self.frame_texture.size(),
        );
        (buffer, row_bytes)
    }

    /// The scripted run's end: the screenshot (waiting on its own submission only) and the
    /// timing record.
    fn finish(
        &mut self,
        args: &ViewArgs,
        buffer: &wgpu::Buffer,
        row_bytes: u32,
        submission: wgpu::SubmissionIndex,
    ) -> Result<(), String> {
        self.finished = true;
        let (w, h) = (self.frame_texture.width(), self.frame_texture.height());
        buffer.slice(..).map_async(wgpu::MapMode::Read, |_| {});
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: Some(submission),
                timeout: None,
            })
            .map_err(|e| format!("waiting for the last frame failed: {e}"))?;
        let bytes = buffer
            .slice(..)
            .get_mapped_range()
            .map_err(|e| format!("reading the last frame failed: {e}"))?
            .to_vec();
        if let Some(path) = &args.screenshot {
            let mut image = image::RgbImage::new(w, h);
            for (y, row) in bytes.chunks_exact(row_bytes as usize).enumerate() {
                for x in 0..w as usize {
                    let p = &row[4 * x..4 * x + 3];
                    image.put_pixel(x as u32, y as u32, image::Rgb([p[0], p[1], p[2]]));
                }
            }
            overlay::write_png(&image, path).map_err(|e| e.to_string())?;
        }
        let inference = FrameTimes(self.inference_ms.clone()).summary();
        let record = json!({
            "image": args.image.display().to_string(),
            "adapter": self.adapter_name,
            "window": [w, h],
            "panel": [self.panel.width(), self.panel.height()],
            "point_radius": self.point_radius(),
            "image_to_window": {"scale": self.scale, "offset": self.offset},
            "frames_with_inference_in_flight": self.in_flight_times.summary(),
            "frames_without_inference": self.idle_times.summary(),
            "submit_and_present_with_inference": self.in_flight_submit.summary(),
            "submit_and_present_without_inference": self.idle_submit.summary(),
            "inference_submit_to_landmarks": inference,
            "landmarks": self.landmarks,
            "confidences": self.confidences,
            "parameters": self.parameters_json(),
        });
        println!(
            "frame time: {} with inference in flight, {} without (median ms)",
            record["frames_with_inference_in_flight"]["median_ms"],
            record["frames_without_inference"]["median_ms"]
        );
        if let Some(path) = &args.timing {
            std::fs::write(path, serde_json::to_vec_pretty(&record).expect("JSON"))
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
        Ok(())
    }
}

fn with_unit(value: f64, unit: &str) -> String {
    match unit {
        "deg" => format!("{value:.1}°"),
        "mm" => format!("{value:.1} mm"),
        "px" => format!("{value:.1} px"),
        _ => format!("{value:.2}"),
    }
}

/// The display window: the file's VOI window where it has one, else the 1st to 99th
/// percentile of its values (the overlay's rule).
fn grey_window(radiograph: &Radiograph) -> (f32, f32) {
    if let Some(window) = radiograph.dicom.as_ref().and_then(|d| d.window) {
        let half = window.width / 2.0;
        return ((window.center - half) as f32, (window.center + half) as f32);
    }
    let stride = (radiograph.pixels.len() / (1 << 20)).max(1);
    let mut sample: Vec<f32> = radiograph.pixels.iter().step_by(stride).copied().collect();
    sample.sort_by(f32::total_cmp);
    let at = |q: f64| sample[((sample.len() - 1) as f64 * q).round() as usize];
    (at(0.01), at(0.99))
}

fn texture(
    device: &wgpu::Device,
    label: &str,
    (width, height, layers): (u32, u32, u32),
    format: wgpu::TextureFormat,
    usage: wgpu::TextureUsages,
) -> wgpu::Texture {
    device.create_texture(&wgpu::TextureDescriptor {
        label: Some(label),
        size: wgpu::Extent3d {
            width,
            height,
            depth_or_array_layers: layers,
        },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format,
        usage,
        view_formats: &[],
    })
}

fn frame_texture(device: &wgpu::Device, (width, height): (u32, u32)) -> wgpu::Texture {
    texture(
        device,
        "viewer frame",
        (width, height, 1),
        FRAME_FORMAT,
        wgpu::TextureUsages::RENDER_ATTACHMENT
            | wgpu::TextureUsages::TEXTURE_BINDING
            | wgpu::TextureUsages::COPY_SRC,
    )
}

fn render_pass(
    encoder: &mut wgpu::CommandEncoder,
    target: &wgpu::TextureView,
    pipeline: &wgpu::RenderPipeline,
    bind_group: &wgpu::BindGroup,
) {
    let mut pass = encoder.begin_render_pass(&wgpu::RenderPassDescriptor {
        label: Some("viewer"),
        color_attachments: &[Some(wgpu::RenderPassColorAttachment {
            view: target,
            depth_slice: None,
            resolve_target: None,
            ops: wgpu::Operations {
                load: wgpu::LoadOp::Clear(wgpu::Color::BLACK),
                store: wgpu::StoreOp::Store,
            },
        })],
        ..Default::default()
    });
    pass.set_pipeline(pipeline);
    pass.set_bind_group(0, bind_group, &[]);
    pass.draw(0..3, 0..1);
}

fn texture_entry(
    binding: u32,
    view_dimension: wgpu::TextureViewDimension,
) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::FRAGMENT,
        ty: wgpu::BindingType::Texture {
            // textureLoad only: R32Float textures are read too.
            sample_type: wgpu::TextureSampleType::Float { filterable: false },
            view_dimension,
            multisampled: false,
        },
        count: None,
    }
}

fn pipeline(
    device: &wgpu::Device,
    label: &str,
    source: &str,
    entries: &[wgpu::BindGroupLayoutEntry],
    fragment: &str,
    format: wgpu::TextureFormat,
) -> (wgpu::BindGroupLayout, wgpu::RenderPipeline) {
    let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: Some(label),
        entries,
    });
    let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some(label),
        bind_group_layouts: &[Some(&layout)],
        immediate_size: 0,
    });
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some(label),
        source: wgpu::ShaderSource::Wgsl(source.into()),
    });
    let pipeline = device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
        label: Some(label),
        layout: Some(&pipeline_layout),
        vertex: wgpu::VertexState {
            module: &module,
            entry_point: Some("full_window"),
            compilation_options: Default::default(),
            buffers: &[],
        },
        fragment: Some(wgpu::FragmentState {
            module: &module,
            entry_point: Some(fragment),
            compilation_options: Default::default(),
            targets: &[Some(wgpu::ColorTargetState {
                format,
                blend: None,
                write_mask: wgpu::ColorWrites::ALL,
            })],
        }),
        primitive: Default::default(),
        depth_stencil: None,
        multisample: Default::default(),
        multiview_mask: None,
        cache: None,
    });
    (layout, pipeline)
}

fn draw_pipeline(device: &wgpu::Device) -> (wgpu::BindGroupLayout, wgpu::RenderPipeline) {
    let uniform = wgpu::BindGroupLayoutEntry {
        binding: 0,
        visibility: wgpu::ShaderStages::FRAGMENT,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Uniform,
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    };
    let landmarks = wgpu::BindGroupLayoutEntry {
        binding: 3,
        visibility: wgpu::ShaderStages::FRAGMENT,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Storage { read_only: true },
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    };
    pipeline(
        device,
        "viewer draw",
        VIEWER_SHADER,
        &[
            uniform,
            texture_entry(1, wgpu::TextureViewDimension::D2),
            texture_entry(2, wgpu::TextureViewDimension::D2Array),
            landmarks,
            texture_entry(4, wgpu::TextureViewDimension::D2),
        ],
        "draw",
        FRAME_FORMAT,
    )
}

fn present_pipeline(
    device: &wgpu::Device,
    format: wgpu::TextureFormat,
) -> (wgpu::BindGroupLayout, wgpu::RenderPipeline) {
    pipeline(
        device,
        "viewer present",
        PRESENT_SHADER,
        &[texture_entry(0, wgpu::TextureViewDimension::D2)],
        "present",
        format,
    )
}

/// The viewer's shaders, for the translation test (every shader goes through naga to MSL, HLSL
/// and SPIR-V).
pub const SHADERS: [(&str, &str); 2] = [("viewer", VIEWER_SHADER), ("present", PRESENT_SHADER)];

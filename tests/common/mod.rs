//! Shared test helpers: the GPU context, PyTorch fixtures, tolerances.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use sagitta::engine::GpuContext;

/// One GPU context per test binary.
pub fn gpu() -> Arc<GpuContext> {
    static CTX: OnceLock<Arc<GpuContext>> = OnceLock::new();
    CTX.get_or_init(|| {
        let ctx = GpuContext::new(&sagitta::cli::env::adapter_choice()).expect(
            "no GPU adapter: install mesa-vulkan-drivers (lavapipe) or run on a machine with a GPU",
        );
        eprintln!("tests run on: {}", ctx.describe());
        ctx
    })
    .clone()
}

pub fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A fixture file made by tools/make_fixtures.py: tensors (all f32) and the JSON cases.
pub struct Fixture {
    pub tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
    pub metadata: HashMap<String, String>,
}

impl Fixture {
    pub fn load(name: &str) -> Self {
        Self::load_path(&fixture_path(name))
    }

    pub fn load_path(path: &std::path::Path) -> Self {
        let name = path.display();
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let file = safetensors::SafeTensors::deserialize(&bytes).expect("valid fixture");
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).expect("metadata");
        let tensors = file
            .iter()
            .map(|(n, v)| {
                assert_eq!(v.dtype(), safetensors::Dtype::F32, "{n}");
                let data = v
                    .data()
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                (n.to_string(), (v.shape().to_vec(), data))
            })
            .collect();
        Self {
            tensors,
            metadata: meta.metadata().clone().unwrap_or_default(),
        }
    }

    pub fn cases(&self) -> Vec<serde_json::Value> {
        let raw = self.metadata.get("cases").expect("fixture has cases");
        serde_json::from_str::<Vec<serde_json::Value>>(raw).expect("cases JSON")
    }

    pub fn get(&self, name: &str) -> &(Vec<usize>, Vec<f32>) {
        self.tensors
            .get(name)
            .unwrap_or_else(|| panic!("fixture tensor {name} missing"))
    }

    pub fn has(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }
}

pub fn param_u32(case: &serde_json::Value, key: &str) -> u32 {
    case[key]
        .as_u64()
        .unwrap_or_else(|| panic!("case param {key}")) as u32
}

pub fn param_bool(case: &serde_json::Value, key: &str) -> bool {
    case[key]
        .as_bool()
        .unwrap_or_else(|| panic!("case param {key}"))
}

/// Largest absolute difference; panics with context when above `tol`.
pub fn assert_close(what: &str, got: &[f32], expected: &[f32], tol: f32) -> f32 {
    assert_eq!(got.len(), expected.len(), "{what}: length");
    let mut worst = (0.0f32, 0usize);
    for (i, (g, e)) in got.iter().zip(expected).enumerate() {
        let d = (g - e).abs();
        assert!(!d.is_nan(), "{what}[{i}]: got {g}, expected {e}");
        if d > worst.0 {
            worst = (d, i);
        }
    }
    assert!(
        worst.0 <= tol,
        "{what}: max |diff| {} at {} (got {}, expected {}) > tol {tol}",
        worst.0,
        worst.1,
        got[worst.1],
        expected[worst.1]
    );
    worst.0
}

pub fn max_abs(v: &[f32]) -> f32 {
    v.iter().fold(0.0f32, |m, x| m.max(x.abs()))
}

/// A reference run of tools/sagitta_ref's CervicalModel: the image and its expected tensors.
pub struct Reference {
    pub image: (u32, u32, Vec<f32>),
    pub io: Fixture,
}

impl Reference {
    pub fn load(path: &std::path::Path) -> Self {
        let io = Fixture::load_path(path);
        let (shape, pixels) = io.get("image").clone();
        Self {
            image: (shape[1] as u32, shape[0] as u32, pixels),
            io,
        }
    }
}

/// Runs the engine on a reference's image and compares coarse points, boxes and final landmarks
/// with PyTorch's, each within `relative_tol * input_size` in the input frame. Returns a summary.
pub fn compare_with_reference(
    weights: &std::path::Path,
    io: &std::path::Path,
    prefix: &str,
    relative_tol: f32,
    precision: sagitta::engine::Precision,
) -> String {
    let selection = sagitta::ops::ConvSelection::default();
    compare_with_reference_on(
        gpu(),
        &selection,
        weights,
        io,
        prefix,
        relative_tol,
        precision,
    )
}

/// [`compare_with_reference`] on a given context with a given kernel selection (e.g. a tuning
/// table).
pub fn compare_with_reference_on(
    ctx: Arc<GpuContext>,
    selection: &sagitta::ops::ConvSelection,
    weights: &std::path::Path,
    io: &std::path::Path,
    prefix: &str,
    relative_tol: f32,
    precision: sagitta::engine::Precision,
) -> String {
    use sagitta::{CervicalModel, GreyImage, WeightFile};
    let r = Reference::load(io);
    let weights = WeightFile::open(weights).expect("weights load");
    let config = sagitta::CervicalConfig::from_weights(&weights).expect("config reads");
    let s = config.input_size as f32;
    let mut model = CervicalModel::with_selection(ctx, &weights, selection).expect("model builds");
    model.set_precision(precision).expect("precision available");
    let (w, h, pixels) = &r.image;
    let p = model
        .run(GreyImage {
            width: *w,
            height: *h,
            pixels,
        })
        .expect("inference runs");
    let expected = |name: &str| &r.io.get(&format!("{prefix}{name}")).1;
    let tol = relative_tol * s;
    let coarse_expected: Vec<f32> = expected("coarse_norm")
        .iter()
        .map(|u| ((u + 1.0) * s - 1.0) / 2.0)
        .collect();
    let coarse_got: Vec<f32> = p.coarse_input.iter().flat_map(|c| [c[0], c[1]]).collect();
    let d_coarse = assert_close(
        "coarse landmarks (input px)",
        &coarse_got,
        &coarse_expected,
        tol,
    );
    let boxes_got: Vec<f32> = p.boxes.iter().flatten().copied().collect();
    let d_boxes = assert_close("boxes (input px)", &boxes_got, expected("boxes"), tol);
    let (sx, sy) = (s / *w as f32, s / *h as f32);
    let final_input: Vec<f32> = p
        .landmarks
        .iter()
        .flat_map(|l| [(l.x + 0.5) * sx - 0.5, (l.y + 0.5) * sy - 0.5])
        .collect();
    let d_input = assert_close(
        "final landmarks (input px)",
        &final_input,
        expected("landmarks_input"),
        tol,
    );
    let d_original = assert_close(
        "final landmarks (original px)",
        &p.xy().concat(),
        expected("landmarks"),
        tol * (*w).max(*h) as f32 / s,
    );
    // A flat heatmap would put every point at the centre and hide errors: the reference must not.
    let (lo, hi) = coarse_expected
        .chunks(2)
        .map(|c| c[1])
        .fold((f32::MAX, f32::MIN), |(lo, hi), y| (lo.min(y), hi.max(y)));
    assert!(
        hi - lo > 0.15 * s,
        "reference landmarks are bunched: {lo}..{hi}"
    );
    for l in &p.landmarks {
        assert!(
            l.sd_x.is_finite() && l.sd_y.is_finite() && l.sd_x >= 0.0,
            "{l:?}"
        );
    }
    format!(
        "max |engine - PyTorch|: coarse {d_coarse:.2e}, boxes {d_boxes:.2e}, final {d_input:.2e} px of the \
         {s}x{s} input ({d_original:.2e} original px); tolerance {tol:.2e} px"
    )
}

/// The small fixture model as (name -> (dtype, shape, bytes)) plus its metadata, to edit.
pub struct Editable {
    pub tensors: HashMap<String, (safetensors::Dtype, Vec<usize>, Vec<u8>)>,
    pub metadata: HashMap<String, String>,
}

impl Editable {
    pub fn small() -> Self {
        let bytes = std::fs::read(fixture_path("cervical_small_f32.safetensors")).unwrap();
        let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        Self {
            tensors: file
                .iter()
                .map(|(n, v)| {
                    (
                        n.to_string(),
                        (v.dtype(), v.shape().to_vec(), v.data().to_vec()),
                    )
                })
                .collect(),
            metadata: meta.metadata().clone().unwrap(),
        }
    }

    pub fn config(&mut self, edit: impl FnOnce(&mut serde_json::Value)) -> &mut Self {
        let mut json: serde_json::Value = serde_json::from_str(&self.metadata["sagitta"]).unwrap();
        edit(&mut json);
        self.metadata.insert("sagitta".into(), json.to_string());
        self
    }

    /// Sets element `index` of an f32 tensor.
    pub fn set(&mut self, name: &str, index: usize, value: f32) -> &mut Self {
        let (_, _, data) = self.tensors.get_mut(name).unwrap();
        data[index * 4..index * 4 + 4].copy_from_slice(&value.to_le_bytes());
        self
    }

    pub fn bytes(&self) -> Vec<u8> {
        let views: Vec<(String, safetensors::tensor::TensorView)> = self
            .tensors
            .iter()
            .map(|(n, (d, s, b))| {
                (
                    n.clone(),
                    safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
                )
            })
            .collect();
        safetensors::serialize(views, Some(self.metadata.clone())).unwrap()
    }

    pub fn load(&self) -> Result<(), sagitta::SagittaError> {
        let weights = sagitta::WeightFile::from_bytes(
            std::path::Path::new("edited.safetensors"),
            &self.bytes(),
        )?;
        sagitta::CervicalModel::new(gpu(), &weights).map(|_| ())
    }
}

/// The layers of an `R32Float` texture (2D or 2D array), each row-major.
pub fn read_r32_texture(
    device: &sagitta::wgpu::Device,
    queue: &sagitta::wgpu::Queue,
    texture: &sagitta::wgpu::Texture,
) -> Vec<Vec<f32>> {
    use sagitta::wgpu;
    let (width, height, layers) = (
        texture.width(),
        texture.height(),
        texture.depth_or_array_layers(),
    );
    let row_bytes = (width * 4).next_multiple_of(wgpu::COPY_BYTES_PER_ROW_ALIGNMENT);
    let buffer = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("texture readback"),
        size: (row_bytes * height * layers) as u64,
        usage: wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::MAP_READ,
        mapped_at_creation: false,
    });
    let mut encoder = device.create_command_encoder(&Default::default());
    encoder.copy_texture_to_buffer(
        texture.as_image_copy(),
        wgpu::TexelCopyBufferInfo {
            buffer: &buffer,
            layout: wgpu::TexelCopyBufferLayout {
                offset: 0,
                bytes_per_row: Some(row_bytes),
                rows_per_image: Some(height),
            },
        },
        texture.size(),
    );
    queue.submit([encoder.finish()]);
    buffer
        .slice(..)
        .map_async(wgpu::MapMode::Read, |r| r.unwrap());
    device.poll(wgpu::PollType::wait_indefinitely()).unwrap();
    let bytes = buffer.slice(..).get_mapped_range().unwrap().to_vec();
    let floats: &[f32] = bytemuck::cast_slice(&bytes);
    let row_floats = (row_bytes / 4) as usize;
    (0..layers as usize)
        .map(|layer| {
            (0..height as usize)
                .flat_map(|y| {
                    let start = (layer * height as usize + y) * row_floats;
                    floats[start..start + width as usize].to_vec()
                })
                .collect()
        })
        .collect()
}

/// An `R32Float` 2D-array texture a model can write heatmaps into.
pub fn heatmap_texture(
    device: &sagitta::wgpu::Device,
    (width, height, layers): (u32, u32, u32),
) -> sagitta::wgpu::Texture {
    use sagitta::wgpu;
    device.create_texture(&wgpu::TextureDescriptor {
        label: Some("heatmaps"),
        size: wgpu::Extent3d {
            width,
            height,
            depth_or_array_layers: layers,
        },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format: wgpu::TextureFormat::R32Float,
        usage: wgpu::TextureUsages::STORAGE_BINDING
            | wgpu::TextureUsages::TEXTURE_BINDING
            | wgpu::TextureUsages::COPY_SRC
            | wgpu::TextureUsages::COPY_DST,
        view_formats: &[],
    })
}

//! The engine inside a host's renderer: a device the host created, the inference recorded into
//! the host's own encoder next to its own work, and a readback that is polled, not waited on.

mod common;

use common::*;
use sagitta::models::csm::CsmModel;
use sagitta::models::lumbar::LumbarModel;
use sagitta::models::wholespine::WholeSpineModel;
use sagitta::{
    wgpu, CervicalModel, DeviceOptions, GpuContext, GreyImage, GreyTransform, ImageSource,
    SagittaError, TextureImage, WeightFile,
};

fn reference_image(r: &Reference) -> GreyImage<'_> {
    let (width, height, pixels) = &r.image;
    GreyImage {
        width: *width,
        height: *height,
        pixels,
    }
}

/// A device and queue opened the way a viewer opens its own (not through sagitta).
fn host_device() -> (wgpu::Device, wgpu::Queue, wgpu::AdapterInfo) {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
    let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
        power_preference: wgpu::PowerPreference::HighPerformance,
        ..Default::default()
    }))
    .expect("an adapter (lavapipe in CI)");
    let limits = adapter.limits();
    // A viewer of 16-bit radiographs asks for normalized 16-bit textures where it can.
    let features = adapter.features() & wgpu::Features::TEXTURE_FORMAT_16BIT_NORM;
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("host"),
        required_features: features,
        required_limits: limits,
        ..Default::default()
    }))
    .expect("the host's device");
    (device, queue, adapter.get_info())
}

#[test]
fn encode_into_the_hosts_encoder_and_poll_the_readback_gives_what_run_gives() {
    let r = Reference::load(&fixture_path("cervical_small_io.safetensors"));
    let weights = WeightFile::open(fixture_path("cervical_small_f32.safetensors")).unwrap();
    let (device, queue, info) = host_device();
    let ctx = GpuContext::from_device(
        device.clone(),
        queue.clone(),
        info,
        &DeviceOptions::default(),
    );
    let mut model = CervicalModel::new(ctx, &weights).unwrap();
    let image = reference_image(&r);
    let blocking = model.run(image).unwrap();

    let submission = host_frame(&device, &queue, |encoder| {
        model.encode(encoder, image).unwrap()
    });
    let raw = poll_until_ready(model.begin_readback(Some(submission)));
    let embedded = model.prediction_from(&raw);
    // Same plan, same buffers, same kernels: the same bits.
    assert_eq!(embedded.xy(), blocking.xy(), "landmarks differ from run()");
    assert_eq!(embedded.boxes, blocking.boxes, "boxes differ from run()");

    // A readback given up halfway must leave the model usable.
    let mut encoder = device.create_command_encoder(&Default::default());
    model.encode(&mut encoder, image).unwrap();
    let submission = queue.submit([encoder.finish()]);
    drop(model.begin_readback(Some(submission)));
    let again = model.run(image).unwrap();
    assert_eq!(
        again.xy(),
        blocking.xy(),
        "run() after an abandoned readback"
    );
}

/// The host's frame: its own buffer work before and after the inference in one encoder, one
/// submission.
fn host_frame(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    encode: impl FnOnce(&mut wgpu::CommandEncoder),
) -> wgpu::SubmissionIndex {
    let host_buffer = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("host frame data"),
        size: 1 << 16,
        usage: wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut encoder = device.create_command_encoder(&Default::default());
    encoder.clear_buffer(&host_buffer, 0, None);
    encode(&mut encoder);
    encoder.clear_buffer(&host_buffer, 0, None);
    queue.submit([encoder.finish()])
}

/// Polls as a render loop would, between frames.
fn poll_until_ready(mut pending: sagitta::PendingReadback) -> Vec<u8> {
    loop {
        if let Some(bytes) = pending.poll() {
            return bytes.unwrap();
        }
        std::thread::yield_now();
    }
}

#[test]
fn the_csm_and_whole_spine_models_encode_into_the_hosts_frame_too() {
    let (device, queue, info) = host_device();
    let ctx = GpuContext::from_device(
        device.clone(),
        queue.clone(),
        info,
        &DeviceOptions::default(),
    );

    let r = Reference::load(&fixture_path("csm_small_io.safetensors"));
    let image = reference_image(&r);
    let weights = WeightFile::open(fixture_path("csm_small_f32.safetensors")).unwrap();
    let mut csm = CsmModel::new(ctx.clone(), &weights).unwrap();
    let blocking = csm.run(image).unwrap();
    let submission = host_frame(&device, &queue, |encoder| {
        csm.encode(encoder, image).unwrap()
    });
    let raw = poll_until_ready(csm.begin_readback(Some(submission)));
    let embedded = csm.prediction_from(&raw);
    assert_eq!(embedded.p_csm.to_bits(), blocking.p_csm.to_bits());

    let r = Reference::load(&fixture_path("wholespine_small_io.safetensors"));
    let image = reference_image(&r);
    let weights = WeightFile::open(fixture_path("wholespine_small_f32.safetensors")).unwrap();
    let mut spine = WholeSpineModel::new(ctx, &weights).unwrap();
    let blocking = spine.run(image).unwrap();
    let submission = host_frame(&device, &queue, |encoder| {
        spine.encode(encoder, image).unwrap()
    });
    let raw = poll_until_ready(spine.begin_readback(Some(submission)));
    let embedded = spine.prediction_from(&raw);
    let xy = |p: &sagitta::models::wholespine::SpinePrediction| -> Vec<[u32; 2]> {
        p.landmarks
            .iter()
            .map(|l| [l.x.to_bits(), l.y.to_bits()])
            .collect()
    };
    assert_eq!(xy(&embedded), xy(&blocking));
}

/// A texture as a viewer makes one to show an image: `texels` are the bytes of each row, tightly
/// packed.
fn host_texture(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    format: wgpu::TextureFormat,
    (width, height): (u32, u32),
    texels: &[u8],
) -> wgpu::Texture {
    let texture = device.create_texture(&wgpu::TextureDescriptor {
        label: Some("viewer image"),
        size: wgpu::Extent3d {
            width,
            height,
            depth_or_array_layers: 1,
        },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format,
        usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
        view_formats: &[],
    });
    let bytes_per_texel = texels.len() as u32 / (width * height);
    queue.write_texture(
        texture.as_image_copy(),
        texels,
        wgpu::TexelCopyBufferLayout {
            offset: 0,
            bytes_per_row: Some(width * bytes_per_texel),
            rows_per_image: Some(height),
        },
        texture.size(),
    );
    texture
}

fn bytes_of<T: bytemuck::Pod>(values: &[T]) -> Vec<u8> {
    bytemuck::cast_slice(values).to_vec()
}

fn repeat4<T: Copy>(values: &[T], fourth: T) -> Vec<T> {
    values.iter().flat_map(|&v| [v, v, v, fourth]).collect()
}

/// The integers a 12-bit and an 8-bit viewer texture would hold for the reference image.
fn stored_values(pixels: &[f32]) -> (Vec<u16>, Vec<u8>) {
    let twelve = pixels
        .iter()
        .map(|v| v.round().clamp(0.0, 4095.0) as u16)
        .collect();
    let eight = pixels
        .iter()
        .map(|v| (v / 16.0).round().clamp(0.0, 255.0) as u8)
        .collect();
    (twelve, eight)
}

/// The same image as a texture of every kind a viewer holds gives the landmarks of the CPU path
/// to the last bit: the texture is read exactly (no filtering, unorm values recovered as the
/// integers they store), so the plan sees the same f32 image.
#[test]
fn a_texture_the_host_shows_gives_the_landmarks_of_the_cpu_path_to_the_bit() {
    let r = Reference::load(&fixture_path("cervical_small_io.safetensors"));
    let weights = WeightFile::open(fixture_path("cervical_small_f32.safetensors")).unwrap();
    let (device, queue, info) = host_device();
    let ctx = GpuContext::from_device(device.clone(), queue.clone(), info, &Default::default());
    let mut model = CervicalModel::new(ctx, &weights).unwrap();
    let (width, height, pixels) = &r.image;
    let size = (*width, *height);
    let (twelve, eight) = stored_values(pixels);
    let as_f32 = |v: &[u16]| v.iter().map(|&x| f32::from(x)).collect::<Vec<f32>>();
    let eight_f32: Vec<f32> = eight.iter().map(|&x| f32::from(x)).collect();
    let twelve_f32 = as_f32(&twelve);
    let cpu = |model: &mut CervicalModel, values: &[f32]| {
        model
            .run(GreyImage {
                width: size.0,
                height: size.1,
                pixels: values,
            })
            .unwrap()
            .xy()
    };
    let on_cpu_float = cpu(&mut model, pixels);
    let on_cpu_eight = cpu(&mut model, &eight_f32);
    let on_cpu_twelve = cpu(&mut model, &twelve_f32);
    assert_ne!(
        on_cpu_eight, on_cpu_twelve,
        "the cases must tell images apart"
    );

    use wgpu::TextureFormat as F;
    let f16_eight: Vec<half::f16> = eight_f32.iter().map(|&v| half::f16::from_f32(v)).collect();
    type Case<'a> = (F, Vec<u8>, &'a Vec<[f32; 2]>);
    let mut cases: Vec<Case> = vec![
        (F::R8Unorm, eight.clone(), &on_cpu_eight),
        (F::Rgba8Unorm, repeat4(&eight, 255), &on_cpu_eight),
        (F::Bgra8Unorm, repeat4(&eight, 255), &on_cpu_eight),
        (F::R8Uint, eight.clone(), &on_cpu_eight),
        (F::R16Float, bytes_of(&f16_eight), &on_cpu_eight),
        (F::R16Uint, bytes_of(&twelve), &on_cpu_twelve),
        (
            F::Rgba16Uint,
            bytes_of(&repeat4(&twelve, 1)),
            &on_cpu_twelve,
        ),
        (F::R32Float, bytes_of(pixels), &on_cpu_float),
    ];
    if device
        .features()
        .contains(wgpu::Features::TEXTURE_FORMAT_16BIT_NORM)
    {
        cases.push((F::R16Unorm, bytes_of(&twelve), &on_cpu_twelve));
    }
    for (format, texels, expected) in &cases {
        let texture = host_texture(&device, &queue, *format, size, texels);
        let submission = host_frame(&device, &queue, |encoder| {
            model.encode(encoder, TextureImage::new(&texture)).unwrap()
        });
        let raw = poll_until_ready(model.begin_readback(Some(submission)));
        assert_eq!(
            &model.prediction_from(&raw).xy(),
            *expected,
            "{format:?}: landmarks differ from the CPU path"
        );
    }

    // The CPU's 16- and 8-bit slices, and f32 values in a buffer the host owns (at an offset).
    let from_u16 = model
        .run(ImageSource::GreyU16 {
            width: size.0,
            height: size.1,
            pixels: &twelve,
        })
        .unwrap();
    assert_eq!(from_u16.xy(), on_cpu_twelve);
    let from_u8 = model
        .run(ImageSource::GreyU8 {
            width: size.0,
            height: size.1,
            pixels: &eight,
        })
        .unwrap();
    assert_eq!(from_u8.xy(), on_cpu_eight);
    let offset = 256u64;
    let host_buffer = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("host pixels"),
        size: offset + 4 * pixels.len() as u64,
        usage: wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    queue.write_buffer(&host_buffer, offset, bytemuck::cast_slice(pixels));
    let from_buffer = model
        .run(ImageSource::Buffer {
            buffer: &host_buffer,
            offset,
            width: size.0,
            height: size.1,
        })
        .unwrap();
    assert_eq!(from_buffer.xy(), on_cpu_float);

    // Luma of a grey RGBA texture: Rec. 709 weights in f32 sum to 1 within rounding.
    let texture = host_texture(&device, &queue, F::Rgba8Unorm, size, &repeat4(&eight, 255));
    let mut luma = TextureImage::new(&texture);
    luma.transform.luma = true;
    let from_luma = model.run(luma).unwrap().xy();
    for (a, b) in from_luma.iter().zip(&on_cpu_eight) {
        assert!(
            (a[0] - b[0]).abs() < 1e-2 && (a[1] - b[1]).abs() < 1e-2,
            "luma {a:?} vs {b:?}"
        );
    }
}

/// A 12-bit `MONOCHROME1` DICOM with a modality rescale, shown by a viewer as its stored values
/// in an `R16Uint` texture: with the decoder's own stored-to-grey mapping as the transform, the
/// landmarks are those of the CPU decoding.
#[test]
fn a_monochrome1_dicom_shown_as_stored_values_gives_what_the_decoder_gives() {
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_dictionary_std::tags;
    use dicom_object::{FileMetaTableBuilder, InMemDicomObject};

    let (columns, rows) = (97u16, 150u16);
    let r = Reference::load(&fixture_path("cervical_small_io.safetensors"));
    let (stored, _) = stored_values(&r.image.2);
    let mut object = InMemDicomObject::new_empty();
    let mut put = |tag, vr, value: PrimitiveValue| object.put(DataElement::new(tag, vr, value));
    put(
        tags::SOP_CLASS_UID,
        VR::UI,
        "1.2.840.10008.5.1.4.1.1.1.1".into(),
    );
    put(tags::SOP_INSTANCE_UID, VR::UI, "2.25.1234".into());
    put(tags::MODALITY, VR::CS, "DX".into());
    put(tags::ROWS, VR::US, rows.into());
    put(tags::COLUMNS, VR::US, columns.into());
    put(tags::SAMPLES_PER_PIXEL, VR::US, 1u16.into());
    put(
        tags::PHOTOMETRIC_INTERPRETATION,
        VR::CS,
        "MONOCHROME1".into(),
    );
    put(tags::BITS_ALLOCATED, VR::US, 16u16.into());
    put(tags::BITS_STORED, VR::US, 12u16.into());
    put(tags::HIGH_BIT, VR::US, 11u16.into());
    put(tags::PIXEL_REPRESENTATION, VR::US, 0u16.into());
    put(tags::RESCALE_SLOPE, VR::DS, "2".into());
    put(tags::RESCALE_INTERCEPT, VR::DS, "-100".into());
    put(
        tags::PIXEL_DATA,
        VR::OW,
        PrimitiveValue::U16(stored.clone().into()),
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mono1.dcm");
    object
        .with_meta(FileMetaTableBuilder::new().transfer_syntax("1.2.840.10008.1.2.1"))
        .unwrap()
        .write_to_file(&path)
        .unwrap();
    let radiograph = sagitta::io::load_radiograph(&path).unwrap();
    let stored_to_grey = radiograph
        .dicom
        .as_ref()
        .and_then(|d| d.stored_to_grey)
        .expect("a one-sample DICOM says how its grey values came");
    assert_eq!(stored_to_grey.slope, 2.0);
    assert_eq!(
        stored_to_grey.mirror_sum,
        Some(-100.0 + 4095.0 * 2.0 - 100.0)
    );

    let weights = WeightFile::open(fixture_path("cervical_small_f32.safetensors")).unwrap();
    let (device, queue, info) = host_device();
    let ctx = GpuContext::from_device(device.clone(), queue.clone(), info, &Default::default());
    let mut model = CervicalModel::new(ctx, &weights).unwrap();
    let decoded = model
        .run(GreyImage {
            width: radiograph.width,
            height: radiograph.height,
            pixels: &radiograph.pixels,
        })
        .unwrap();
    let texture = host_texture(
        &device,
        &queue,
        wgpu::TextureFormat::R16Uint,
        (u32::from(columns), u32::from(rows)),
        &bytes_of(&stored),
    );
    let mut image = TextureImage::new(&texture);
    image.transform = GreyTransform::from(stored_to_grey);
    assert_eq!(model.run(image).unwrap().xy(), decoded.xy());
    // Without the transform the image is the inverse one: the check above can fail.
    let raw = model.run(TextureImage::new(&texture)).unwrap();
    assert_ne!(raw.xy(), decoded.xy());
}

/// Textures and buffers that cannot be read are refused with a typed error that says what to
/// do, before anything is recorded into the host's frame; the model stays usable.
#[test]
fn a_texture_or_buffer_that_cannot_be_read_is_refused_with_what_to_do() {
    let r = Reference::load(&fixture_path("cervical_small_io.safetensors"));
    let weights = WeightFile::open(fixture_path("cervical_small_f32.safetensors")).unwrap();
    let (device, queue, info) = host_device();
    let ctx = GpuContext::from_device(device.clone(), queue.clone(), info, &Default::default());
    let mut model = CervicalModel::new(ctx, &weights).unwrap();
    let (width, height, pixels) = &r.image;
    let size = (*width, *height);
    let (_, eight) = stored_values(pixels);
    let refused = |result: sagitta::Result<sagitta::Prediction>, expect: &str| match result {
        Err(SagittaError::InvalidInput(message)) => assert!(
            message.contains(expect),
            "'{message}' should mention '{expect}'"
        ),
        other => panic!("expected InvalidInput mentioning '{expect}', got {other:?}"),
    };

    let srgb = host_texture(
        &device,
        &queue,
        wgpu::TextureFormat::Rgba8UnormSrgb,
        size,
        &repeat4(&eight, 255),
    );
    refused(model.run(TextureImage::new(&srgb)), "use one of");
    let one_channel = host_texture(&device, &queue, wgpu::TextureFormat::R8Unorm, size, &eight);
    let mut luma = TextureImage::new(&one_channel);
    luma.transform.luma = true;
    refused(model.run(luma), "one channel");
    let mut layer = TextureImage::new(&one_channel);
    layer.layer = 1;
    refused(model.run(layer), "layer 1 of 1");
    let mut flat = TextureImage::new(&one_channel);
    flat.transform.slope = 0.0;
    refused(model.run(flat), "the slope not 0");
    let copy_only = device.create_texture(&wgpu::TextureDescriptor {
        label: None,
        size: wgpu::Extent3d {
            width: size.0,
            height: size.1,
            depth_or_array_layers: 1,
        },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format: wgpu::TextureFormat::R8Unorm,
        usage: wgpu::TextureUsages::COPY_DST,
        view_formats: &[],
    });
    refused(model.run(TextureImage::new(&copy_only)), "TEXTURE_BINDING");
    let small = device.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: 64,
        usage: wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let too_small = ImageSource::Buffer {
        buffer: &small,
        offset: 0,
        width: size.0,
        height: size.1,
    };
    refused(model.run(too_small), "needs");

    let texture = host_texture(&device, &queue, wgpu::TextureFormat::R8Unorm, size, &eight);
    let after = model.run(TextureImage::new(&texture)).unwrap();
    let eight_f32: Vec<f32> = eight.iter().map(|&x| f32::from(x)).collect();
    let expected = model
        .run(GreyImage {
            width: size.0,
            height: size.1,
            pixels: &eight_f32,
        })
        .unwrap();
    assert_eq!(after.xy(), expected.xy());
}

/// Every family takes the viewer's texture: the same bits as its CPU path.
#[test]
fn the_csm_whole_spine_and_lumbar_models_take_a_texture_too() {
    let (device, queue, info) = host_device();
    let ctx = GpuContext::from_device(device.clone(), queue.clone(), info, &Default::default());
    let texture_of = |r: &Reference| {
        let (width, height, pixels) = &r.image;
        host_texture(
            &device,
            &queue,
            wgpu::TextureFormat::R32Float,
            (*width, *height),
            &bytes_of(pixels),
        )
    };

    let r = Reference::load(&fixture_path("csm_small_io.safetensors"));
    let weights = WeightFile::open(fixture_path("csm_small_f32.safetensors")).unwrap();
    let mut csm = CsmModel::new(ctx.clone(), &weights).unwrap();
    let texture = texture_of(&r);
    let on_cpu = csm.run(reference_image(&r)).unwrap().p_csm;
    let on_texture = csm.run(TextureImage::new(&texture)).unwrap().p_csm;
    assert_eq!(on_texture.to_bits(), on_cpu.to_bits());

    let r = Reference::load(&fixture_path("wholespine_small_io.safetensors"));
    let weights = WeightFile::open(fixture_path("wholespine_small_f32.safetensors")).unwrap();
    let mut spine = WholeSpineModel::new(ctx.clone(), &weights).unwrap();
    let texture = texture_of(&r);
    let bits = |p: sagitta::models::wholespine::SpinePrediction| -> Vec<[u32; 2]> {
        p.landmarks
            .iter()
            .map(|l| [l.x.to_bits(), l.y.to_bits()])
            .collect()
    };
    let on_cpu = bits(spine.run(reference_image(&r)).unwrap());
    let on_texture = bits(spine.run(TextureImage::new(&texture)).unwrap());
    assert_eq!(on_texture, on_cpu);

    let r = Reference::load(&fixture_path("lumbar_small_io.safetensors"));
    let weights = WeightFile::open(fixture_path("lumbar_small_f32.safetensors")).unwrap();
    let mut lumbar = LumbarModel::new(ctx, &weights).unwrap();
    let texture = texture_of(&r);
    let corners = |p: sagitta::models::lumbar::LumbarPrediction| format!("{:?}", p.corners);
    // Both ways of refining: the present levels (two submissions) and all of them (one).
    let on_cpu = corners(lumbar.run(reference_image(&r)).unwrap());
    let on_texture = corners(lumbar.run(TextureImage::new(&texture)).unwrap());
    assert_eq!(on_texture, on_cpu);
    let submission = host_frame(&device, &queue, |encoder| {
        lumbar.encode(encoder, TextureImage::new(&texture)).unwrap()
    });
    let raw = poll_until_ready(lumbar.begin_readback(Some(submission)));
    let encoded = lumbar.prediction_from(&raw);
    let cpu_all = {
        let submission = host_frame(&device, &queue, |encoder| {
            lumbar.encode(encoder, reference_image(&r)).unwrap()
        });
        lumbar.prediction_from(&poll_until_ready(lumbar.begin_readback(Some(submission))))
    };
    assert_eq!(corners(encoded), corners(cpu_all));
}

/// The heatmaps a viewer overlays: recorded after the inference in the host's frame into its own
/// texture, they are PyTorch's probability maps of the same model and image.
#[test]
fn the_heatmap_texture_holds_pytorchs_probability_maps() {
    let weights = WeightFile::open(fixture_path("cervical_small_f32.safetensors")).unwrap();
    let (device, queue, info) = host_device();
    let ctx = GpuContext::from_device(device.clone(), queue.clone(), info, &Default::default());
    let mut model = CervicalModel::new(ctx, &weights).unwrap();
    let (width, height, count) = model.heatmap_shape();
    let case = MapsCase::new("cervical", &device, model.heatmap_shape());
    let (r, target) = (&case.reference, case.target());
    let refused = model.encode_heatmaps(
        &mut device.create_command_encoder(&Default::default()),
        target,
    );
    assert!(refused
        .unwrap_err()
        .to_string()
        .contains("encode or run an image first"));

    let image = reference_image(r);
    let submission = host_frame(&device, &queue, |encoder| {
        model.encode(encoder, image).unwrap();
        model.encode_heatmaps(encoder, target).unwrap();
    });
    let raw = poll_until_ready(model.begin_readback(Some(submission)));
    let prediction = model.prediction_from(&raw);
    let maps = case.check(&device, &queue, "cervical");
    // The maps are the ones behind the coordinates: a landmark's peak is near its position.
    let (w0, h0) = (r.image.0 as f32, r.image.1 as f32);
    for (k, landmark) in prediction.landmarks.iter().enumerate().take(2) {
        let map = &maps[k * (width * height) as usize..(k + 1) * (width * height) as usize];
        let peak = (0..map.len())
            .max_by(|&a, &b| map[a].total_cmp(&map[b]))
            .unwrap();
        let (j, i) = (
            (peak % width as usize) as f32,
            (peak / width as usize) as f32,
        );
        let (x, y) = (
            (j + 0.5) * w0 / width as f32 - 0.5,
            (i + 0.5) * h0 / height as f32 - 0.5,
        );
        let cell = (w0 / width as f32).max(h0 / height as f32);
        assert!(
            (x - landmark.x).abs() < 3.0 * cell && (y - landmark.y).abs() < 3.0 * cell,
            "landmark {k} at ({}, {}) but its map peaks at ({x}, {y})",
            landmark.x,
            landmark.y
        );
    }

    // A texture the maps do not fit is refused before anything is recorded.
    let wrong = heatmap_texture(&device, (width + 1, height, count));
    let error = model
        .encode_heatmaps(
            &mut device.create_command_encoder(&Default::default()),
            sagitta::ops::HeatmapTarget {
                texture: &wrong,
                first_layer: 0,
            },
        )
        .unwrap_err()
        .to_string();
    assert!(error.contains(&format!("{width}x{height}")), "{error}");
}

/// A session on the host's device loads each family with one options struct; the landmarks can
/// go straight into a buffer the host owns.
#[test]
fn a_session_loads_models_with_its_options_and_copies_landmarks_into_the_hosts_buffer() {
    use sagitta::api::{Session, SessionOptions};
    let r = Reference::load(&fixture_path("cervical_small_io.safetensors"));
    let weights = WeightFile::open(fixture_path("cervical_small_f32.safetensors")).unwrap();
    let (device, queue, info) = host_device();
    let session = Session::on_device(
        device.clone(),
        queue.clone(),
        info.clone(),
        &SessionOptions::default(),
    );
    assert!(session.notes().is_empty(), "{:?}", session.notes());
    let mut model = session.cervical(&weights).unwrap();
    assert_eq!(model.precision(), sagitta::Precision::F32);
    let image = reference_image(&r);
    let blocking = model.run(image).unwrap();

    let offset = 64;
    let host = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("host landmarks"),
        size: offset + 29 * 16,
        usage: wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::MAP_READ,
        mapped_at_creation: false,
    });
    let mut encoder = device.create_command_encoder(&Default::default());
    model.encode(&mut encoder, image).unwrap();
    model
        .copy_landmarks_into(&mut encoder, &host, offset)
        .unwrap();
    let submission = queue.submit([encoder.finish()]);
    let raw = poll_until_ready(model.begin_readback(Some(submission)));
    assert_eq!(model.prediction_from(&raw).xy(), blocking.xy());
    host.slice(..)
        .map_async(wgpu::MapMode::Read, |r| r.unwrap());
    device.poll(wgpu::PollType::wait_indefinitely()).unwrap();
    let bytes = host.slice(offset..).get_mapped_range().unwrap().to_vec();
    let rows: &[[f32; 4]] = bytemuck::cast_slice(&bytes);
    for (row, landmark) in rows.iter().zip(&blocking.landmarks) {
        assert_eq!(
            *row,
            [landmark.x, landmark.y, landmark.sd_x, landmark.sd_y],
            "{}",
            landmark.name
        );
    }
    let small = device.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: 64,
        usage: wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut encoder = device.create_command_encoder(&Default::default());
    let error = model
        .copy_landmarks_into(&mut encoder, &small, 0)
        .unwrap_err()
        .to_string();
    assert!(error.contains("need 464 bytes"), "{error}");

    // The options reach every model: f16 activations.
    let half = Session::on_device(
        device,
        queue,
        info,
        &SessionOptions {
            precision: sagitta::Precision::F16,
            ..Default::default()
        },
    );
    let mut model = half.cervical(&weights).unwrap();
    assert_eq!(model.precision(), sagitta::Precision::F16);
    let in_f16 = model.run(image).unwrap();
    let worst = in_f16
        .xy()
        .iter()
        .zip(blocking.xy())
        .map(|(a, b)| (a[0] - b[0]).abs().max((a[1] - b[1]).abs()))
        .fold(0.0, f32::max);
    assert!(worst < 1.0, "f16 landmarks {worst} px from f32");
    assert!(half
        .csm(&WeightFile::open(fixture_path("csm_small_f32.safetensors")).unwrap())
        .is_ok());
}

/// How the host's frames are kept from a device-wide wait: the engine counts its blocking waits
/// by kind. The embedded path (encode, the host's submit, begin_readback, poll) blocks on
/// nothing; `wait` blocks on the inference's own submission even with the host's work submitted
/// after it, and so does `run`; nothing waits on every submission of the device.
#[test]
fn the_engine_never_waits_on_the_hosts_whole_device() {
    let r = Reference::load(&fixture_path("cervical_small_io.safetensors"));
    let weights = WeightFile::open(fixture_path("cervical_small_f32.safetensors")).unwrap();
    let (device, queue, info) = host_device();
    let ctx = GpuContext::from_device(device.clone(), queue.clone(), info, &Default::default());
    let mut model = CervicalModel::new(ctx.clone(), &weights).unwrap();
    let image = reference_image(&r);
    assert_eq!(ctx.wait_counts(), (0, 0));

    let submission = host_frame(&device, &queue, |encoder| {
        model.encode(encoder, image).unwrap()
    });
    poll_until_ready(model.begin_readback(Some(submission)));
    assert_eq!(ctx.wait_counts(), (0, 0), "the polled path blocked");

    let mut encoder = device.create_command_encoder(&Default::default());
    model.encode(&mut encoder, image).unwrap();
    let inference = queue.submit([encoder.finish()]);
    host_frame(&device, &queue, |_| {});
    model.begin_readback(Some(inference)).wait().unwrap();
    assert_eq!(ctx.wait_counts(), (1, 0));
    model.run(image).unwrap();
    assert_eq!(ctx.wait_counts(), (2, 0));
}

/// The whole-spine model's maps too: every member's 45, member-major, PyTorch's softmax of the
/// same model's heatmaps.
#[test]
fn the_whole_spine_heatmap_texture_holds_pytorchs_probability_maps() {
    let weights = WeightFile::open(fixture_path("wholespine_small_f32.safetensors")).unwrap();
    let (device, queue, info) = host_device();
    let ctx = GpuContext::from_device(device.clone(), queue.clone(), info, &Default::default());
    let mut model = WholeSpineModel::new(ctx, &weights).unwrap();
    let (width, height, count) = model.heatmap_shape();
    let case = MapsCase::new("wholespine", &device, model.heatmap_shape());
    let submission = host_frame(&device, &queue, |encoder| {
        model
            .encode(encoder, reference_image(&case.reference))
            .unwrap();
        model.encode_heatmaps(encoder, case.target()).unwrap();
    });
    poll_until_ready(model.begin_readback(Some(submission)));
    case.check(&device, &queue, "whole-spine");
    let small = heatmap_texture(&device, (width, height, count - 1));
    let error = model
        .encode_heatmaps(
            &mut device.create_command_encoder(&Default::default()),
            sagitta::HeatmapTarget {
                texture: &small,
                first_layer: 0,
            },
        )
        .unwrap_err()
        .to_string();
    assert!(
        error.contains(&format!("at least {count} layers")),
        "{error}"
    );
}

/// The lumbar model's localisation maps, after either way of refining: PyTorch's softmax of the
/// same model's 96 heatmaps.
#[test]
fn the_lumbar_heatmap_texture_holds_pytorchs_localisation_maps() {
    let weights = WeightFile::open(fixture_path("lumbar_small_f32.safetensors")).unwrap();
    let (device, queue, info) = host_device();
    let ctx = GpuContext::from_device(device.clone(), queue.clone(), info, &Default::default());
    let mut model = LumbarModel::new(ctx, &weights).unwrap();
    let (width, height, _) = model.heatmap_shape();
    let case = MapsCase::new("lumbar", &device, model.heatmap_shape());
    let (r, target, texture) = (&case.reference, case.target(), &case.texture);
    let refused = model.encode_heatmaps(
        &mut device.create_command_encoder(&Default::default()),
        target,
    );
    assert!(refused.is_err(), "maps before any image");

    // The present-levels path (run), then the one-submission path (encode).
    model.run(reference_image(r)).unwrap();
    let mut encoder = device.create_command_encoder(&Default::default());
    model.encode_heatmaps(&mut encoder, target).unwrap();
    queue.submit([encoder.finish()]);
    let after_run = case.check(&device, &queue, "lumbar after run");

    // Cleared first, so that the maps below come from the encoded path.
    let zeros = vec![0u8; 4 * after_run.len()];
    queue.write_texture(
        texture.as_image_copy(),
        &zeros,
        wgpu::TexelCopyBufferLayout {
            offset: 0,
            bytes_per_row: Some(4 * width),
            rows_per_image: Some(height),
        },
        texture.size(),
    );
    let submission = host_frame(&device, &queue, |encoder| {
        model.encode(encoder, reference_image(r)).unwrap();
        model.encode_heatmaps(encoder, target).unwrap();
    });
    poll_until_ready(model.begin_readback(Some(submission)));
    case.check(&device, &queue, "lumbar after encode");
}

/// A family's heatmap check: its reference image, PyTorch's probability maps of the committed
/// small model on it (`<family>_small_heatmaps.safetensors`) and a texture of their shape.
struct MapsCase {
    reference: Reference,
    expected: Vec<f32>,
    texture: wgpu::Texture,
}

impl MapsCase {
    fn new(family: &str, device: &wgpu::Device, (width, height, count): (u32, u32, u32)) -> Self {
        let reference = Reference::load(&fixture_path(&format!("{family}_small_io.safetensors")));
        let fixture = Fixture::load(&format!("{family}_small_heatmaps.safetensors"));
        let (shape, expected) = fixture.get("f32.probabilities");
        assert_eq!(
            [count as usize, height as usize, width as usize],
            shape[..],
            "{family}: heatmap_shape"
        );
        Self {
            reference,
            expected: expected.clone(),
            texture: heatmap_texture(device, (width, height, count)),
        }
    }

    fn target(&self) -> sagitta::HeatmapTarget<'_> {
        sagitta::HeatmapTarget {
            texture: &self.texture,
            first_layer: 0,
        }
    }

    /// The texture's maps, held to PyTorch's.
    fn check(&self, device: &wgpu::Device, queue: &wgpu::Queue, what: &str) -> Vec<f32> {
        let maps = read_r32_texture(device, queue, &self.texture).concat();
        let worst = assert_close(what, &maps, &self.expected, 1e-5);
        eprintln!("{what} heatmap texture vs PyTorch: max |difference| {worst:.2e}");
        maps
    }
}

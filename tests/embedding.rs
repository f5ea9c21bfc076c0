//! The engine inside a host's renderer: a device the host created, the inference recorded into
//! the host's own encoder next to its own work, and a readback that is polled, not waited on.

mod common;

use common::*;
use sagitta::models::csm::CsmModel;
use sagitta::models::wholespine::WholeSpineModel;
use sagitta::{wgpu, CervicalModel, DeviceOptions, GpuContext, GreyImage, WeightFile};

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
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("host"),
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

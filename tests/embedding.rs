//! The engine inside a host's renderer: a device the host created, the inference recorded into
//! the host's own encoder next to its own work, and a readback that is polled, not waited on.

mod common;

use common::*;
use sagitta::{wgpu, CervicalModel, DeviceOptions, GpuContext, GreyImage, WeightFile};

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
    let (w, h, pixels) = &r.image;
    let image = GreyImage {
        width: *w,
        height: *h,
        pixels,
    };
    let blocking = model.run(image).unwrap();

    // The host's frame: its own buffer work before and after the inference in one encoder.
    let host_buffer = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("host frame data"),
        size: 1 << 16,
        usage: wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
        label: Some("host frame"),
    });
    encoder.clear_buffer(&host_buffer, 0, None);
    model.encode(&mut encoder, image).unwrap();
    encoder.clear_buffer(&host_buffer, 0, None);
    let submission = queue.submit([encoder.finish()]);
    let mut pending = model.begin_readback(Some(submission));
    let raw = loop {
        if let Some(bytes) = pending.poll() {
            break bytes.unwrap();
        }
        // A viewer would draw its next frame here; the test just yields.
        std::thread::yield_now();
    };
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

//! The whole cervical pipeline (small configuration, random peaked weights) against the PyTorch
//! reference, in f32 and f16 weights, and the one-submission discipline.

mod common;

use common::*;
use sagitta::gpu::GpuEvent;
use sagitta::{CervicalModel, GreyImage, WeightFile};

struct Reference {
    image: (u32, u32, Vec<f32>),
    io: Fixture,
}

fn reference() -> Reference {
    let io = Fixture::load("cervical_small_io.safetensors");
    let (shape, pixels) = io.get("image").clone();
    Reference {
        image: (shape[1] as u32, shape[0] as u32, pixels),
        io,
    }
}

fn check_against_reference(weights_file: &str, dtype: &str) {
    let r = reference();
    let weights = WeightFile::open(fixture_path(weights_file)).expect("fixture weights load");
    let s = weights.config.input_size as f32;
    let mut model = CervicalModel::new(gpu(), &weights).expect("model builds");
    let (w, h, pixels) = &r.image;
    let p = model
        .run(GreyImage {
            width: *w,
            height: *h,
            pixels,
        })
        .expect("inference runs");

    // The contract: every landmark within 1e-3 of the input size, in the input frame.
    let tol = 1e-3 * s;
    let coarse_expected: Vec<f32> =
        r.io.get(&format!("{dtype}.coarse_norm"))
            .1
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
    let d_boxes = assert_close(
        "boxes (input px)",
        &boxes_got,
        &r.io.get(&format!("{dtype}.boxes")).1,
        tol,
    );

    let (sx, sy) = (s / *w as f32, s / *h as f32);
    let final_input: Vec<f32> = p
        .landmarks
        .iter()
        .flat_map(|l| [(l.x + 0.5) * sx - 0.5, (l.y + 0.5) * sy - 0.5])
        .collect();
    let d_input = assert_close(
        "final landmarks (input px)",
        &final_input,
        &r.io.get(&format!("{dtype}.landmarks_input")).1,
        tol,
    );
    let d_original = assert_close(
        "final landmarks (original px)",
        &p.xy().concat(),
        &r.io.get(&format!("{dtype}.landmarks")).1,
        tol * (*w).max(*h) as f32 / s,
    );
    eprintln!(
        "{dtype}: max |diff| coarse {d_coarse:.2e}, boxes {d_boxes:.2e}, final {d_input:.2e} input px \
         ({d_original:.2e} original px), tolerance {tol:.2e}"
    );
    // A flat heatmap would put every point at the centre and hide errors: the fixture must not.
    let spread = coarse_expected
        .chunks(2)
        .map(|c| c[1])
        .fold((f32::MAX, f32::MIN), |(lo, hi), y| (lo.min(y), hi.max(y)));
    assert!(
        spread.1 - spread.0 > 0.25 * s,
        "fixture landmarks are bunched: {spread:?}"
    );
    for l in &p.landmarks {
        assert!(
            l.sd_x.is_finite() && l.sd_y.is_finite() && l.sd_x >= 0.0,
            "{l:?}"
        );
    }
}

#[test]
fn small_pipeline_f32_weights_match_pytorch() {
    check_against_reference("cervical_small_f32.safetensors", "f32");
}

#[test]
fn small_pipeline_f16_weights_match_pytorch() {
    check_against_reference("cervical_small_f16.safetensors", "f16");
}

#[test]
fn one_inference_is_one_submission_and_one_readback_at_the_end() {
    let r = reference();
    let weights = WeightFile::open(fixture_path("cervical_small_f32.safetensors")).unwrap();
    // A context of its own: the other tests of this binary submit work concurrently.
    let ctx = sagitta::GpuContext::new(&sagitta::AdapterChoice::from_env()).unwrap();
    let mut model = CervicalModel::new(ctx.clone(), &weights).unwrap();
    let (w, h, pixels) = &r.image;
    let image = GreyImage {
        width: *w,
        height: *h,
        pixels,
    };
    model.prepare(*w, *h).unwrap();
    for _ in 0..2 {
        ctx.take_events();
        let (s0, m0) = (ctx.submission_count(), ctx.map_count());
        model.run(image).unwrap();
        assert_eq!(
            ctx.submission_count() - s0,
            1,
            "one submission per inference"
        );
        assert_eq!(ctx.map_count() - m0, 1, "one readback per inference");
        assert_eq!(
            ctx.take_events(),
            vec![GpuEvent::Submit, GpuEvent::Map],
            "map only after the submission"
        );
    }
}

#[test]
fn images_of_different_sizes_reuse_the_model_and_stay_correct() {
    let r = reference();
    let weights = WeightFile::open(fixture_path("cervical_small_f32.safetensors")).unwrap();
    let mut model = CervicalModel::new(gpu(), &weights).unwrap();
    let (w, h, pixels) = &r.image;
    let image = GreyImage {
        width: *w,
        height: *h,
        pixels,
    };
    let first = model.run(image).unwrap();
    // A larger image forces a new input buffer and new resize parameters...
    let big: Vec<f32> = vec![1000.0; 300 * 200];
    model
        .run(GreyImage {
            width: 300,
            height: 200,
            pixels: &big,
        })
        .unwrap();
    // ...and coming back to the first image must give the first answer again.
    let again = model.run(image).unwrap();
    assert_close(
        "same image twice",
        &again.xy().concat(),
        &first.xy().concat(),
        1e-4,
    );
}

#[test]
fn bad_images_are_errors_not_panics() {
    let weights = WeightFile::open(fixture_path("cervical_small_f32.safetensors")).unwrap();
    let mut model = CervicalModel::new(gpu(), &weights).unwrap();
    let short = [0.0f32; 10];
    let err = model
        .run(GreyImage {
            width: 4,
            height: 4,
            pixels: &short,
        })
        .unwrap_err();
    assert!(err.to_string().contains("holds 10 pixels"), "{err}");
    let nan = [f32::NAN; 16];
    let err = model
        .run(GreyImage {
            width: 4,
            height: 4,
            pixels: &nan,
        })
        .unwrap_err();
    assert!(err.to_string().contains("not a finite number"), "{err}");
}

//! The CSM classifier (small width, He-initialised random weights) against the PyTorch reference
//! (tools/sagitta_ref/models/csm.py, fixtures csm_small_*), in f32 and f16 weights and f32 and f16
//! activations; the one-submission discipline; metadata errors; the loader's dry run.

mod common;

use std::path::Path;

use common::*;
use safetensors::SafeTensors;
use sagitta::engine::{GpuEvent, PipelineCache, Plan, Precision};
use sagitta::models::csm::{CsmConfig, CsmModel};
use sagitta::{GreyImage, SagittaError, WeightFile};

fn reference() -> Reference {
    Reference::load(&fixture_path("csm_small_io.safetensors"))
}

fn image(r: &Reference) -> GreyImage<'_> {
    let (w, h, pixels) = &r.image;
    GreyImage {
        width: *w,
        height: *h,
        pixels,
    }
}

/// The engine's p on the fixture image with `weights` at `precision`, against torch's p from
/// the same file's values (`prefix` "f32." or "f16."). Returns |diff|.
fn p_against_torch(
    ctx: std::sync::Arc<sagitta::GpuContext>,
    weights: &str,
    prefix: &str,
    precision: Precision,
    tol: f32,
) -> f32 {
    let r = reference();
    let file = WeightFile::open(fixture_path(weights)).unwrap();
    let mut model = CsmModel::new(ctx, &file).unwrap();
    model.set_precision(precision).unwrap();
    let got = model.run(image(&r)).unwrap();
    let expected = r.io.get(&format!("{prefix}p")).1[0];
    let d = (got.p_csm - expected).abs();
    assert!(
        d <= tol,
        "{weights:?} {precision:?}: p {} vs torch {expected} (|diff| {d:.2e} > {tol:.0e})",
        got.p_csm
    );
    assert_eq!(got.threshold, 0.5);
    assert_eq!(got.label, got.p_csm >= 0.5);
    eprintln!(
        "csm {prefix} weights, {precision:?} activations: p {} (torch {expected}), |diff| {d:.2e}",
        got.p_csm
    );
    d
}

#[test]
fn f32_and_f16_weights_match_pytorch_in_f32() {
    p_against_torch(
        gpu(),
        "csm_small_f32.safetensors",
        "f32.",
        Precision::F32,
        1e-4,
    );
    p_against_torch(
        gpu(),
        "csm_small_f16.safetensors",
        "f16.",
        Precision::F32,
        1e-4,
    );
}

#[test]
fn f16_activations_match_pytorch() {
    let packed = sagitta::GpuContext::new(&sagitta::cli::env::adapter_choice()).unwrap();
    packed.set_packed_f16(true);
    let mut contexts = vec![("packed", packed)];
    if gpu().features.contains(wgpu::Features::SHADER_F16) {
        contexts.push(("native", gpu()));
    }
    for (what, ctx) in contexts {
        eprintln!("{what} f16 activations:");
        // 13 convolutions with every activation rounded to f16 (2^-11 relative), and p itself
        // comes back as an f16.
        for (file, prefix) in [
            ("csm_small_f32.safetensors", "f32."),
            ("csm_small_f16.safetensors", "f16."),
        ] {
            p_against_torch(ctx.clone(), file, prefix, Precision::F16, 1e-2);
        }
    }
}

/// The preprocessing the model plans (area resize, min-max, the affine of the file's metadata)
/// on the fixture image, against torch's resized, normalized and expanded tensors.
#[test]
fn preprocessing_matches_pytorch() {
    let r = reference();
    let weights = WeightFile::open(fixture_path("csm_small_f32.safetensors")).unwrap();
    let config = CsmConfig::from_weights(&weights).unwrap();
    let ctx = gpu();
    let (w, h, pixels) = &r.image;
    let s = config.input_size;
    // One plan per stage: liveness reuse would overwrite earlier tensors in a longer plan.
    for (stages, key) in ["resized", "normalized", "expanded"].iter().enumerate() {
        let mut plan = Plan::new();
        let buffer = sagitta::engine::buffers::upload(&ctx, "image", pixels);
        let mut t = plan.bound("image", &[*h, *w], buffer);
        t = sagitta::ops::resize_area(&mut plan, t, s, s).unwrap();
        if stages >= 1 {
            t = sagitta::ops::minmax_normalize(&mut plan, t).unwrap();
        }
        if stages >= 2 {
            t = sagitta::ops::channel_affine_expand(
                &mut plan,
                "affine",
                t,
                &config.input_mean,
                &config.input_std,
            )
            .unwrap();
        }
        let compiled = plan.compile(&ctx, &mut PipelineCache::default()).unwrap();
        let got = compiled.run_and_read(&[t]).unwrap();
        let expected = &r.io.get(&format!("f32.{key}")).1;
        let tol = 1e-5 * (1.0 + max_abs(expected));
        let d = assert_close(key, &got[0], expected, tol);
        eprintln!("csm {key}: max |diff| {d:.1e}");
    }
}

#[test]
fn one_inference_is_one_submission_and_one_readback_at_the_end() {
    let r = reference();
    let weights = WeightFile::open(fixture_path("csm_small_f32.safetensors")).unwrap();
    // A context of its own: the other tests of this binary submit work concurrently.
    let ctx = sagitta::GpuContext::new(&sagitta::cli::env::adapter_choice()).unwrap();
    let mut model = CsmModel::new(ctx.clone(), &weights).unwrap();
    let (w, h, _) = &r.image;
    model.prepare(*w, *h).unwrap();
    for _ in 0..2 {
        ctx.take_events();
        let (s0, m0) = (ctx.submission_count(), ctx.map_count());
        model.run(image(&r)).unwrap();
        assert_eq!(ctx.submission_count() - s0, 1, "one submission");
        assert_eq!(ctx.map_count() - m0, 1, "one readback");
        assert_eq!(
            ctx.take_events(),
            vec![GpuEvent::Submit, GpuEvent::Map],
            "map only after the submission"
        );
    }
}

#[test]
fn images_of_other_sizes_reuse_the_plan_and_bad_images_are_refused() {
    let r = reference();
    let weights = WeightFile::open(fixture_path("csm_small_f32.safetensors")).unwrap();
    let mut model = CsmModel::new(gpu(), &weights).unwrap();
    let first = model.run(image(&r)).unwrap().p_csm;
    let steps = model.dispatch_count();
    let big: Vec<f32> = (0..300 * 211).map(|i| ((i * 37) % 4096) as f32).collect();
    let other = model
        .run(GreyImage {
            width: 211,
            height: 300,
            pixels: &big,
        })
        .unwrap()
        .p_csm;
    assert!(other.is_finite() && (0.0..=1.0).contains(&other));
    assert_eq!(model.dispatch_count(), steps, "the plan is built once");
    let again = model.run(image(&r)).unwrap().p_csm;
    assert!((again - first).abs() < 1e-6, "{first} then {again}");
    let nan = vec![f32::NAN; 4];
    for bad in [
        GreyImage {
            width: 2,
            height: 2,
            pixels: &nan,
        },
        GreyImage {
            width: 3,
            height: 2,
            pixels: &big[..5],
        },
    ] {
        assert!(matches!(model.run(bad), Err(SagittaError::InvalidInput(_))));
    }
}

fn edited(edit: impl FnOnce(&mut serde_json::Value)) -> Result<CsmModel, SagittaError> {
    let bytes = std::fs::read(fixture_path("csm_small_f32.safetensors")).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
    let mut metadata = meta.metadata().clone().unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&metadata["sagitta"]).unwrap();
    edit(&mut json);
    metadata.insert("sagitta".into(), json.to_string());
    let views: Vec<(String, safetensors::tensor::TensorView)> =
        file.iter().map(|(n, v)| (n.to_string(), v)).collect();
    let out = safetensors::serialize(views, Some(metadata)).unwrap();
    let weights = WeightFile::from_bytes(Path::new("edited.safetensors"), &out)?;
    CsmModel::new(gpu(), &weights)
}

type ConfigEdit = Box<dyn Fn(&mut serde_json::Value)>;

#[test]
fn bad_metadata_fields_are_named() {
    edited(|_| {}).expect("the unedited file loads");
    let cases: Vec<(&str, ConfigEdit)> = vec![
        ("arch", Box::new(|j| j["arch"] = "resnet50".into())),
        (
            "format_version",
            Box::new(|j| j["format_version"] = 2.into()),
        ),
        ("name", Box::new(|j| j["name"] = "x".repeat(300).into())),
        ("input_size", Box::new(|j| j["input_size"] = 100.into())),
        ("input_size", Box::new(|j| j["input_size"] = 0.into())),
        ("input_size", Box::new(|j| j["input_size"] = 8192.into())),
        ("width", Box::new(|j| j["width"] = 0.0.into())),
        ("width", Box::new(|j| j["width"] = 5.0.into())),
        ("width", Box::new(|j| j["width"] = "wide".into())),
        ("fc", Box::new(|j| j["fc"] = serde_json::json!([16, -1]))),
        ("fc", Box::new(|j| j["fc"] = serde_json::json!(vec![1; 9]))),
        ("fc[1]", Box::new(|j| j["fc"] = serde_json::json!([16, 0]))),
        ("fc[0]", Box::new(|j| j["fc"] = serde_json::json!([5000]))),
        (
            "input_mean",
            Box::new(|j| j["input_mean"] = serde_json::json!([0.5, 0.5])),
        ),
        (
            "input_mean[2]",
            Box::new(|j| j["input_mean"] = serde_json::json!([0.5, 0.5, 1e9])),
        ),
        (
            "input_std[1]",
            Box::new(|j| j["input_std"] = serde_json::json!([0.2, 0.0, 0.2])),
        ),
        ("threshold", Box::new(|j| j["threshold"] = 1.5.into())),
        (
            "not_for_clinical_use",
            Box::new(|j| j["not_for_clinical_use"] = "yes".into()),
        ),
        (
            "not_for_clinical_use",
            Box::new(|j| {
                j.as_object_mut().unwrap().remove("not_for_clinical_use");
            }),
        ),
    ];
    for (field, edit) in cases {
        match edited(edit).err().expect(field) {
            SagittaError::WeightsMetadata { field: f, .. } => assert_eq!(f, field),
            other => panic!("{field}: expected a metadata error, got {other}"),
        }
    }
    // Metadata that reads but does not match the tensors: the tensor is named.
    let err = edited(|j| j["fc"] = serde_json::json!([16, 4]))
        .err()
        .unwrap();
    assert!(err.to_string().contains("classifier.2"), "{err}");
    // A cervical file is another family's, and says so.
    let weights = WeightFile::open(fixture_path("cervical_small_f32.safetensors")).unwrap();
    let err = CsmModel::new(gpu(), &weights).err().unwrap();
    assert!(err.to_string().contains("another model family"), "{err}");
}

/// The architecture is declared once: a dry run of the loader (no file, no GPU) lists exactly the
/// tensors, with their shapes, of the converted fixture; the paper configuration has VGG16's
/// 14.7 M convolution weights plus the 128/64/1 head.
#[test]
fn a_dry_run_of_the_loader_lists_exactly_the_files_tensors() {
    let bytes = std::fs::read(fixture_path("csm_small_f32.safetensors")).unwrap();
    let weights = WeightFile::from_bytes(Path::new("small.safetensors"), &bytes).unwrap();
    let config = CsmConfig::from_weights(&weights).unwrap();
    let declared = config.tensor_shapes();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let mut in_file: Vec<(String, Vec<usize>)> = file
        .iter()
        .map(|(n, v)| (n.to_string(), v.shape().to_vec()))
        .collect();
    in_file.sort();
    let mut sorted = declared.clone();
    sorted.sort();
    assert_eq!(sorted, in_file);
    let paper: usize = CsmConfig::paper()
        .tensor_shapes()
        .iter()
        .map(|(_, s)| s.iter().product::<usize>())
        .sum();
    assert_eq!(paper, 14_788_673);
    let registry = sagitta::models::family_of(&weights).unwrap();
    assert_eq!(registry, sagitta::models::Family::Csm);
}

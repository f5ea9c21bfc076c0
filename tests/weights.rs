//! Bad weights files give errors that name the problem: never a panic.

mod common;

use std::path::Path;

use common::*;
use safetensors::{Dtype, SafeTensors};
use sagitta::{CervicalModel, SagittaError, WeightFile};

#[test]
fn the_unedited_file_loads() {
    Editable::small()
        .load()
        .expect("round trip of the fixture must load");
}

#[test]
fn truncated_file_is_a_format_error() {
    let bytes = std::fs::read(fixture_path("cervical_small_f32.safetensors")).unwrap();
    for cut in [0, 5, 100, bytes.len() / 2, bytes.len() - 1] {
        let err = WeightFile::from_bytes(Path::new("cut.safetensors"), &bytes[..cut])
            .err()
            .unwrap();
        assert!(
            matches!(err, SagittaError::WeightsFormat { .. }),
            "cut at {cut}: {err}"
        );
        assert!(err.to_string().contains("cut.safetensors"), "{err}");
    }
}

#[test]
fn non_safetensors_file_is_a_format_error() {
    let png_magic = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR and then some";
    let err = WeightFile::from_bytes(Path::new("x.png"), png_magic)
        .err()
        .unwrap();
    assert!(matches!(err, SagittaError::WeightsFormat { .. }), "{err}");
    let err = WeightFile::open("/nonexistent/weights.safetensors")
        .err()
        .unwrap();
    assert!(matches!(err, SagittaError::WeightsIo { .. }), "{err}");
}

#[test]
fn wrong_shape_names_tensor_and_both_shapes() {
    let mut e = Editable::small();
    let name = "global_net.layer2.0.conv2.weight";
    let (dtype, shape, data) = e.tensors[name].clone();
    let wrong = vec![shape[0], shape[1], 1, shape[2] * shape[3]];
    e.tensors.insert(name.into(), (dtype, wrong.clone(), data));
    match e.load().err().unwrap() {
        SagittaError::TensorShape {
            name: n,
            expected,
            found,
            ..
        } => {
            assert_eq!(n, name);
            assert_eq!(expected, shape);
            assert_eq!(found, wrong);
        }
        other => panic!("expected a shape error, got {other}"),
    }
}

#[test]
fn wrong_dtype_names_tensor() {
    let mut e = Editable::small();
    let name = "refiners.3.score.0.bias";
    let (_, shape, data) = e.tensors[name].clone();
    e.tensors.insert(name.into(), (Dtype::I32, shape, data));
    let err = e.load().err().unwrap();
    assert!(
        matches!(&err, SagittaError::TensorDtype { name: n, .. } if n == name),
        "{err}"
    );
    assert!(err.to_string().contains("I32"), "{err}");
}

#[test]
fn missing_tensor_is_named_with_its_expected_shape() {
    let mut e = Editable::small();
    let name = "refiners.5.hg.0.hg.1.2.0.bn3.running_var";
    let (_, shape, _) = e.tensors.remove(name).unwrap();
    match e.load().err().unwrap() {
        SagittaError::MissingTensor {
            name: n, expected, ..
        } => {
            assert_eq!(n, name);
            assert_eq!(expected, shape);
        }
        other => panic!("expected a missing-tensor error, got {other}"),
    }
}

#[test]
fn extra_tensor_is_named() {
    let mut e = Editable::small();
    e.tensors.insert(
        "global_net.extra_head.weight".into(),
        (Dtype::F32, vec![2], vec![0; 8]),
    );
    let err = e.load().err().unwrap();
    assert!(
        matches!(err, SagittaError::UnexpectedTensors { .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("global_net.extra_head.weight"),
        "{err}"
    );
}

type ConfigEdit = Box<dyn Fn(&mut serde_json::Value)>;

#[test]
fn unknown_architecture_and_bad_fields_name_the_field() {
    let cases: Vec<(&str, ConfigEdit)> = vec![
        ("arch", Box::new(|j| j["arch"] = "resnet50".into())),
        ("input_size", Box::new(|j| j["input_size"] = "large".into())),
        ("input_size", Box::new(|j| j["input_size"] = 100.into())),
        (
            "global.depth",
            Box::new(|j| {
                j["global"]
                    .as_object_mut()
                    .unwrap()
                    .remove("depth")
                    .map(|_| ())
                    .unwrap()
            }),
        ),
        ("box_margin", Box::new(|j| j["box_margin"] = (-1.0).into())),
        (
            "refiner.count",
            Box::new(|j| j["refiner"]["count"] = 5.into()),
        ),
        (
            "format_version",
            Box::new(|j| j["format_version"] = 7.into()),
        ),
        (
            "landmarks",
            Box::new(|j| j["landmarks"] = serde_json::json!(["a", "b"])),
        ),
    ];
    for (field, edit) in cases {
        let mut e = Editable::small();
        e.config(edit);
        match e.load().err().unwrap() {
            SagittaError::WeightsMetadata { field: f, .. } => assert_eq!(f, field),
            other => panic!("{field}: expected a metadata error, got {other}"),
        }
    }
    let mut e = Editable::small();
    e.metadata.remove("sagitta");
    let err = e.load().err().unwrap();
    assert!(
        matches!(&err, SagittaError::WeightsMetadata { field, .. } if field == "sagitta"),
        "{err}"
    );
    let mut e = Editable::small();
    e.metadata.insert("sagitta".into(), "{not json".into());
    let err = e.load().err().unwrap();
    assert!(
        matches!(&err, SagittaError::WeightsMetadata { field, .. } if field == "sagitta"),
        "{err}"
    );
}

#[test]
fn bf16_and_f16_files_load() {
    for dtype in [Dtype::F16, Dtype::BF16] {
        let mut e = Editable::small();
        for (_, (d, _, data)) in e.tensors.iter_mut() {
            let floats: Vec<f32> = data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect();
            *data = floats
                .iter()
                .flat_map(|&v| match dtype {
                    Dtype::F16 => half::f16::from_f32(v).to_le_bytes(),
                    _ => half::bf16::from_f32(v).to_le_bytes(),
                })
                .collect();
            *d = dtype;
        }
        let weights = WeightFile::from_bytes(Path::new("half.safetensors"), &e.bytes()).unwrap();
        assert_eq!(weights.dtype, format!("{dtype:?}").to_lowercase());
        CervicalModel::new(gpu(), &weights).unwrap();
    }
}

/// The architecture is declared once: a dry run of the loader (no file, no GPU) lists exactly the
/// tensors, with their shapes, that a converted checkpoint holds.
#[test]
fn a_dry_run_of_the_loader_lists_exactly_the_files_tensors() {
    let bytes = std::fs::read(fixture_path("cervical_small_f32.safetensors")).unwrap();
    let weights = WeightFile::from_bytes(Path::new("small.safetensors"), &bytes).unwrap();
    let config = sagitta::CervicalConfig::from_weights(&weights).unwrap();
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
    // No name twice: every tensor is asked for by exactly one layer.
    let mut names: Vec<&String> = declared.iter().map(|(n, _)| n).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), declared.len());
}

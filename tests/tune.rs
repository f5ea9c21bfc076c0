//! Measured kernel choice (`sagitta tune`): every convolution shape is timed with every kernel
//! that can run it, and a model built with a table runs the kernels the table names, with the
//! same results.

mod common;

use std::collections::BTreeMap;

use common::*;
use sagitta::engine::Precision;
use sagitta::ops::conv2d::tune::{self, TunedConv, TuningTable};
use sagitta::ops::ConvSelection;
use sagitta::{CervicalModel, WeightFile};

fn kernel_name(algorithm: &str) -> &'static str {
    match algorithm {
        "direct" => "conv2d",
        "tiled" => "conv2d_tiled",
        "winograd" => "conv2d_winograd",
        other => panic!("unknown algorithm {other}"),
    }
}

#[test]
fn tuning_times_every_convolution_and_models_follow_the_table() {
    let ctx = gpu();
    let weights_path = fixture_path("cervical_small_f32.safetensors");
    let weights = WeightFile::open(&weights_path).unwrap();
    let reference = Reference::load(&fixture_path("cervical_small_io.safetensors"));
    let (w, h) = (reference.image.0, reference.image.1);

    let plan = CervicalModel::new(ctx.clone(), &weights)
        .unwrap()
        .dispatch_plan(w, h)
        .unwrap();
    let measured = tune::tune_plan(&ctx, &plan, 1, 1, |_, _| {}).unwrap();
    let keys: Vec<sagitta::ops::ConvKey> = plan.steps().iter().filter_map(tune::conv_key).collect();
    assert!(keys.len() > 10, "the small model has many convolutions");
    for key in &keys {
        let entry = measured
            .entries
            .get(&key.to_string())
            .unwrap_or_else(|| panic!("{key} was not measured"));
        let winograd_fits = key.winograd_fits();
        assert_eq!(
            key.candidates().len(),
            entry.times_ms.len(),
            "{key}: every candidate timed"
        );
        assert_eq!(
            entry.times_ms.contains_key("winograd"),
            winograd_fits,
            "{key}"
        );
        assert!(entry.times_ms.len() >= 2, "{key}: {:?}", entry.times_ms);
        assert!(entry.times_ms.values().all(|t| t.is_finite() && *t > 0.0));
        let fastest = entry
            .times_ms
            .iter()
            .min_by(|a, b| a.1.total_cmp(b.1))
            .unwrap();
        assert_eq!(&entry.algorithm, fastest.0, "{key}: the fastest wins");
    }

    // A table that names, for each shape, a kernel other than the measured winner: the model
    // must be built with exactly those kernels and still match PyTorch.
    let mut forced = TuningTable {
        adapter: ctx.info.name.clone(),
        driver: ctx.info.driver_info.clone(),
        entries: BTreeMap::new(),
    };
    for (key, entry) in &measured.entries {
        let other = entry
            .times_ms
            .keys()
            .rev()
            .find(|a| **a != entry.algorithm)
            .unwrap()
            .clone();
        let tuned = TunedConv {
            algorithm: other,
            times_ms: entry.times_ms.clone(),
        };
        forced.entries.insert(key.clone(), tuned);
    }
    let selection = ConvSelection {
        forced: None,
        tuning: Some(forced.clone()),
    };
    let plan = CervicalModel::with_selection(ctx.clone(), &weights, &selection)
        .unwrap()
        .dispatch_plan(w, h)
        .unwrap();
    for step in plan.steps() {
        if let Some(key) = tune::conv_key(step) {
            let wanted = &forced.entries[&key.to_string()].algorithm;
            assert_eq!(
                step.kernel.name,
                kernel_name(wanted),
                "{}: {key}",
                step.label
            );
        }
    }
    let summary = compare_with_reference_on(
        ctx.clone(),
        &selection,
        &weights_path,
        &fixture_path("cervical_small_io.safetensors"),
        "f32.",
        1e-3,
        Precision::F32,
    );
    eprintln!("with the forced table: {summary}");
}

#[test]
fn a_tuning_table_for_another_adapter_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tuning.json");
    let info = common::gpu().info.clone();
    let table = TuningTable {
        adapter: "some other GPU".into(),
        driver: info.driver_info.clone(),
        entries: BTreeMap::new(),
    };
    std::fs::write(&path, serde_json::to_string(&table).unwrap()).unwrap();
    assert!(TuningTable::load_from(&path, &info).is_none());
    let mine = TuningTable {
        adapter: info.name.clone(),
        ..table
    };
    std::fs::write(&path, serde_json::to_string(&mine).unwrap()).unwrap();
    assert!(TuningTable::load_from(&path, &info).is_some());
    std::fs::write(&path, "not json").unwrap();
    assert!(TuningTable::load_from(&path, &info).is_none());
}

/// Tuning is keyed by convolution shape, not by model: the CSM classifier's plan (through the
/// model registry) gets every one of its convolution shapes measured.
#[test]
fn tuning_covers_every_registered_model() {
    let ctx = gpu();
    let weights = WeightFile::open(fixture_path("csm_small_f32.safetensors")).unwrap();
    let plan = sagitta::models::dispatch_plan(ctx.clone(), &weights, (300, 260)).unwrap();
    let keys: Vec<sagitta::ops::ConvKey> = plan.steps().iter().filter_map(tune::conv_key).collect();
    assert!(
        keys.len() >= 13,
        "VGG's 13 convolutions, found {}",
        keys.len()
    );
    let measured = tune::tune_plan(&ctx, &plan, 1, 1, |_, _| {}).unwrap();
    for key in keys {
        assert!(
            measured.entries.contains_key(&key.to_string()),
            "{key} not measured"
        );
    }
}

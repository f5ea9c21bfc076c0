//! Weights, tuning tables and pipeline caches are checked for what they mean, not only for
//! their shapes (issue 14): non-finite tensors, BatchNorm variances <= 0, landmark names out of
//! order and metadata fields out of their documented ranges are refused naming the tensor or
//! field; files are refused by type and size before they are read (no hang on a FIFO, no
//! unbounded read of /dev/zero); a tuning table naming a kernel that cannot run a shape is
//! ignored with a note, never blamed on the weights.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

use sagitta::api::{EngineOptions, TuningSource};
use sagitta::ops::conv2d::tune::{self, TunedConv, TuningTable};
use sagitta::{CervicalModel, SagittaError, WeightFile};

fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("sagitta-weights-meaning")
        .tempdir()
        .unwrap()
}

fn write_png(path: &Path) {
    image::GrayImage::from_fn(128, 140, |x, y| {
        image::Luma([((x * 3 + y) % 200) as u8 + 20])
    })
    .save(path)
    .unwrap();
}

/// `sagitta analyze` with a time limit: a hang (a FIFO opened for reading) fails the test
/// instead of blocking it.
fn analyze(args: &[&str], env: &[(&str, &str)], limit: Duration) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sagitta"));
    command
        .arg("analyze")
        .args(args)
        .env_remove("SAGITTA_WEIGHTS")
        .env("SAGITTA_TUNING", "off")
        .env("SAGITTA_PIPELINE_CACHE", "off")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().unwrap();
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            let output = child.wait_with_output().unwrap();
            panic!(
                "sagitta {args:?} ran past {limit:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn mkfifo(path: &Path) -> bool {
    Command::new("mkfifo")
        .arg(path)
        .status()
        .is_ok_and(|status| status.success())
}

#[test]
fn a_nan_or_infinite_weight_is_refused_naming_the_tensor() {
    let name = "global_net.layer2.0.conv2.weight";
    for value in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let mut e = Editable::small();
        e.set(name, 7, value);
        let err = e.load().unwrap_err();
        assert!(
            matches!(&err, SagittaError::TensorValues { name: n, .. } if n == name),
            "{err}"
        );
        assert!(err.to_string().contains("index 7"), "{err}");
        println!("{err}");
    }
}

#[test]
fn all_nan_weights_are_refused_instead_of_giving_null_landmarks() {
    let mut e = Editable::small();
    for (_, (_, _, data)) in e.tensors.iter_mut() {
        for chunk in data.chunks_exact_mut(4) {
            chunk.copy_from_slice(&f32::NAN.to_le_bytes());
        }
    }
    let err = e.load().unwrap_err();
    assert!(matches!(err, SagittaError::TensorValues { .. }), "{err}");
}

#[test]
fn a_batchnorm_variance_at_or_below_zero_is_refused_naming_it() {
    let name = "refiners.2.hg.0.hg.0.0.0.bn2.running_var";
    let mut names = Editable::small();
    let name = if names.tensors.contains_key(name) {
        name.to_string()
    } else {
        let mut all: Vec<String> = names
            .tensors
            .keys()
            .filter(|n| n.ends_with("running_var"))
            .cloned()
            .collect();
        all.sort();
        all[all.len() / 2].clone()
    };
    for value in [0.0, -1e-3] {
        names.set(&name, 0, value);
        let err = names.load().unwrap_err();
        assert!(
            matches!(&err, SagittaError::TensorValues { name: n, .. } if *n == name),
            "{err}"
        );
        assert!(
            err.to_string().contains("running_var must be above 0"),
            "{err}"
        );
        println!("{err}");
    }
}

#[test]
fn landmark_names_out_of_order_are_refused_naming_the_first_mismatch() {
    let mut e = Editable::small();
    e.config(|j| {
        let names = j["landmarks"].as_array_mut().unwrap();
        names.swap(4, 5);
    });
    match e.load().unwrap_err() {
        SagittaError::WeightsMetadata { field, reason, .. } => {
            assert_eq!(field, "landmarks[4]");
            assert!(
                reason.contains("expected 'C3_as', found 'C3_ps'"),
                "{reason}"
            );
        }
        other => panic!("expected a metadata error, got {other}"),
    }
}

type ConfigEdit = Box<dyn Fn(&mut serde_json::Value)>;

#[test]
fn every_config_field_out_of_its_range_is_refused_naming_field_and_range() {
    let cases: Vec<(&str, &str, ConfigEdit)> = vec![
        (
            "roi_sampling_ratio",
            "-1..=16",
            Box::new(|j| j["roi_sampling_ratio"] = i32::MAX.into()),
        ),
        (
            "roi_sampling_ratio",
            "-1..=16",
            Box::new(|j| j["roi_sampling_ratio"] = (-5).into()),
        ),
        (
            "standardize_eps",
            "(0, 0.01]",
            Box::new(|j| j["standardize_eps"] = 1e30.into()),
        ),
        (
            "bn_eps",
            "(0, 0.01]",
            Box::new(|j| j["bn_eps"] = 0.5.into()),
        ),
        (
            "bn_eps",
            "(0, 0.01]",
            Box::new(|j| j["bn_eps"] = 0.0.into()),
        ),
        (
            "global.depth",
            "1..=8",
            Box::new(|j| j["global"]["depth"] = 30.into()),
        ),
        (
            "global.depth",
            "1..=8",
            Box::new(|j| j["global"]["depth"] = 0.into()),
        ),
        (
            "refiner.depth",
            "1..=8",
            Box::new(|j| j["refiner"]["depth"] = 31.into()),
        ),
        (
            "global.stacks",
            "1..=8",
            Box::new(|j| j["global"]["stacks"] = 1000.into()),
        ),
        (
            "refiner.blocks",
            "1..=8",
            Box::new(|j| j["refiner"]["blocks"] = 100.into()),
        ),
        (
            "global.features",
            "2..=1024",
            Box::new(|j| j["global"]["features"] = 1_000_000.into()),
        ),
        (
            "input_size",
            "1..=4096",
            Box::new(|j| j["input_size"] = 1_048_576.into()),
        ),
        (
            "crop_size",
            "1..=4096",
            Box::new(|j| j["crop_size"] = 0.into()),
        ),
        (
            "box_margin",
            "[0, 10]",
            Box::new(|j| j["box_margin"] = 1e9.into()),
        ),
        (
            "box_min_side",
            "(0, 4096]",
            Box::new(|j| j["box_min_side"] = 0.0.into()),
        ),
        (
            "name",
            "256",
            Box::new(|j| j["name"] = "x".repeat(10_000).into()),
        ),
    ];
    for (field, range, edit) in cases {
        let mut e = Editable::small();
        e.config(edit);
        match e.load().unwrap_err() {
            SagittaError::WeightsMetadata {
                field: f, reason, ..
            } => {
                assert_eq!(f, field, "{reason}");
                assert!(reason.contains(range), "{field}: {reason}");
                println!("{field}: {reason}");
            }
            other => panic!("{field}: expected a metadata error, got {other}"),
        }
    }
    // input_size must stay a multiple of 4 * 2^depth.
    let mut e = Editable::small();
    e.config(|j| j["input_size"] = 112.into());
    assert!(matches!(
        e.load().unwrap_err(),
        SagittaError::WeightsMetadata { field, .. } if field == "input_size"
    ));
}

#[test]
fn metadata_depth_30_exits_2_from_the_binary_without_a_panic() {
    let dir = scratch();
    let weights = dir.path().join("deep.safetensors");
    let mut e = Editable::small();
    e.config(|j| j["global"]["depth"] = 30.into());
    std::fs::write(&weights, e.bytes()).unwrap();
    let image = dir.path().join("x.png");
    write_png(&image);
    let output = analyze(
        &[
            image.to_str().unwrap(),
            "--weights",
            weights.to_str().unwrap(),
        ],
        &[],
        Duration::from_secs(120),
    );
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("global.depth"),
        "{}",
        stderr(&output)
    );
    assert!(!stderr(&output).contains("panicked"));
}

#[test]
fn a_file_longer_than_its_tensors_is_refused() {
    let mut bytes = std::fs::read(fixture_path("cervical_small_f32.safetensors")).unwrap();
    bytes.extend_from_slice(&[0; 64]);
    let err = WeightFile::from_bytes(Path::new("padded.safetensors"), &bytes)
        .err()
        .unwrap();
    assert!(matches!(err, SagittaError::WeightsFormat { .. }), "{err}");
}

#[test]
fn oversized_and_special_weights_files_are_refused_before_reading() {
    let dir = scratch();
    // A sparse file just over the limit: refused by its size, instantly.
    let huge = dir.path().join("huge.safetensors");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(sagitta::nn::weights::MAX_WEIGHTS_BYTES + 1)
        .unwrap();
    let started = Instant::now();
    let err = WeightFile::open(&huge).err().unwrap();
    assert!(err.to_string().contains("bytes allowed"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));
    println!("{err}");
    let err = WeightFile::read_metadata(&huge).err().unwrap();
    assert!(err.to_string().contains("bytes allowed"), "{err}");

    let err = WeightFile::open(dir.path()).err().unwrap();
    assert!(err.to_string().contains("a folder"), "{err}");

    let image = dir.path().join("x.png");
    write_png(&image);
    let mut specials: Vec<(PathBuf, &str)> = Vec::new();
    if Path::new("/dev/zero").exists() {
        specials.push(("/dev/zero".into(), "character device"));
    }
    let fifo = dir.path().join("fifo.safetensors");
    if mkfifo(&fifo) {
        specials.push((fifo.clone(), "FIFO"));
    } else {
        println!("no mkfifo here: the FIFO case is skipped");
    }
    for (path, kind) in &specials {
        let err = WeightFile::open(path).err().unwrap();
        assert!(err.to_string().contains(kind), "{err}");
        let output = analyze(
            &[image.to_str().unwrap(), "--weights", path.to_str().unwrap()],
            &[],
            Duration::from_secs(60),
        );
        assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
        assert!(stderr(&output).contains(kind), "{}", stderr(&output));
        println!("{}", stderr(&output).trim());
    }
}

/// The fixture model's tuning keys on this adapter (the shapes of a 160x200 image's plan).
fn fixture_keys() -> (Vec<sagitta::ops::ConvKey>, WeightFile) {
    let weights = WeightFile::open(fixture_path("cervical_small_f32.safetensors")).unwrap();
    let plan = CervicalModel::new(gpu(), &weights)
        .unwrap()
        .dispatch_plan(160, 200)
        .unwrap();
    let mut keys: Vec<_> = plan.steps().iter().filter_map(tune::conv_key).collect();
    keys.sort();
    keys.dedup();
    (keys, weights)
}

fn table_naming(algorithm: &str, keys: &[sagitta::ops::ConvKey]) -> TuningTable {
    let ctx = gpu();
    TuningTable {
        adapter: ctx.info.name.clone(),
        driver: ctx.info.driver_info.clone(),
        entries: keys
            .iter()
            .map(|key| {
                (
                    key.to_string(),
                    TunedConv {
                        algorithm: algorithm.into(),
                        times_ms: Default::default(),
                    },
                )
            })
            .collect(),
    }
}

#[test]
fn tuning_keys_read_back() {
    let (keys, _) = fixture_keys();
    assert!(!keys.is_empty());
    for key in &keys {
        assert_eq!(tune::parse_key(&key.to_string()), Some(*key));
    }
    assert_eq!(tune::parse_key("k3 s1 8->8"), None);
}

#[test]
fn a_tuning_table_naming_winograd_everywhere_is_ignored_where_it_cannot_run() {
    let (keys, weights) = fixture_keys();
    let misfits = keys.iter().filter(|k| !k.winograd_fits()).count();
    assert!(misfits > 0, "the fixture has 1x1 and 7x7 convolutions");
    let dir = scratch();
    let path = dir.path().join("tuning.json");
    table_naming("winograd", &keys).save_to(&path).unwrap();

    let options = EngineOptions {
        tuning: TuningSource::File(path.clone()),
        ..Default::default()
    };
    let (selection, notes) = options.conv_selection(&gpu());
    assert_eq!(selection.tuned_shapes(), keys.len() - misfits);
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(
        notes[0].contains(&format!("ignoring {misfits} entr")),
        "{}",
        notes[0]
    );
    assert!(notes[0].contains("cannot run that shape"), "{}", notes[0]);
    println!("{}", notes[0]);
    for key in &keys {
        let chosen = selection.choose(gpu().info.device_type, key);
        assert_eq!(
            chosen == sagitta::ops::ConvAlgorithm::Winograd,
            key.winograd_fits(),
            "{key}"
        );
    }
    CervicalModel::with_selection(gpu(), &weights, &selection).expect("the model builds");

    // An unknown kernel name too.
    table_naming("fastest", &keys).save_to(&path).unwrap();
    let (selection, notes) = options.conv_selection(&gpu());
    assert_eq!(selection.tuned_shapes(), 0);
    assert!(notes[0].contains("unknown kernel 'fastest'"), "{notes:?}");

    // Through the binary: the run succeeds and says what it ignored.
    table_naming("winograd", &keys).save_to(&path).unwrap();
    let image = dir.path().join("x.png");
    write_png(&image);
    let weights_path = fixture_path("cervical_small_f32.safetensors");
    let output = analyze(
        &[
            image.to_str().unwrap(),
            "--weights",
            weights_path.to_str().unwrap(),
        ],
        &[("SAGITTA_TUNING", path.to_str().unwrap())],
        Duration::from_secs(120),
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("cannot run that shape"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn oversized_and_special_tuning_tables_are_ignored_before_reading() {
    let dir = scratch();
    let big = dir.path().join("big.json");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(tune::MAX_TUNING_BYTES + 1)
        .unwrap();
    let mut cases: Vec<(PathBuf, &str)> = vec![(big, "bytes allowed")];
    if Path::new("/dev/zero").exists() {
        cases.push(("/dev/zero".into(), "character device"));
    }
    let fifo = dir.path().join("fifo.json");
    if mkfifo(&fifo) {
        cases.push((fifo, "FIFO"));
    }
    for (path, kind) in &cases {
        let options = EngineOptions {
            tuning: TuningSource::File(path.clone()),
            ..Default::default()
        };
        let (selection, notes) = options.conv_selection(&gpu());
        assert_eq!(selection.tuned_shapes(), 0);
        assert!(notes.iter().any(|n| n.contains(kind)), "{notes:?}");
    }
    // Through the binary, quickly.
    let image = dir.path().join("x.png");
    write_png(&image);
    let weights_path = fixture_path("cervical_small_f32.safetensors");
    let output = analyze(
        &[
            image.to_str().unwrap(),
            "--weights",
            weights_path.to_str().unwrap(),
        ],
        &[("SAGITTA_TUNING", "/dev/zero")],
        Duration::from_secs(120),
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("character device"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_special_or_oversized_pipeline_cache_is_not_read() {
    let dir = scratch();
    let cache = dir.path().join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    let key = wgpu::util::pipeline_cache_key(&gpu().info)
        .unwrap_or_else(|| "wgpu_pipeline_cache_vulkan_0_0".into());
    let options = EngineOptions {
        device: sagitta::DeviceOptions {
            pipeline_cache_dir: Some(cache.clone()),
            ..Default::default()
        },
        ..Default::default()
    };
    assert_eq!(options.pipeline_cache_problem(), None);
    let file = cache.join(&key);
    std::fs::File::create(&file)
        .unwrap()
        .set_len(sagitta::api::options::MAX_PIPELINE_CACHE_BYTES + 1)
        .unwrap();
    let problem = options.pipeline_cache_problem().expect("too large");
    assert!(problem.contains("bytes allowed"), "{problem}");
    std::fs::remove_file(&file).unwrap();
    if !mkfifo(&file) {
        println!("no mkfifo here: the FIFO case is skipped");
        return;
    }
    let problem = options.pipeline_cache_problem().expect("a FIFO");
    assert!(problem.contains("FIFO"), "{problem}");
    // The binary starts without hanging on it.
    let image = dir.path().join("x.png");
    write_png(&image);
    let weights_path = fixture_path("cervical_small_f32.safetensors");
    let output = analyze(
        &[
            image.to_str().unwrap(),
            "--weights",
            weights_path.to_str().unwrap(),
        ],
        &[("SAGITTA_PIPELINE_CACHE", cache.to_str().unwrap())],
        Duration::from_secs(120),
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("pipeline cache"),
        "{}",
        stderr(&output)
    );
}

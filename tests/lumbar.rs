//! The lumbar 2-step model (1/16 width, a 192 input and 128 crops, randomized weights and
//! BatchNorm statistics) against the PyTorch reference (tools/sagitta_ref/models/lumbar.py,
//! fixtures lumbar_small_*): presence probabilities, the localisation's corners, the level boxes
//! and the refined corners in original pixels, for f32 and f16 weights and f16 activations; the
//! one-submission discipline; the metadata checks.

mod common;

use common::*;
use sagitta::engine::{GpuEvent, Precision};
use sagitta::models::lumbar::{LumbarConfig, LumbarModel, LumbarPrediction, RefineLevels};
use sagitta::{GreyImage, SagittaError, WeightFile};

fn reference() -> Reference {
    Reference::load(&fixture_path("lumbar_small_io.safetensors"))
}

fn rows(p: &LumbarPrediction) -> Vec<f32> {
    p.corners
        .iter()
        .flat_map(|c| [c.x, c.y, c.sd_x, c.sd_y])
        .collect()
}

/// The engine against torch's values from the same file: probabilities within `tol_p`, every
/// point and spread within `tol_px` original pixels.
fn against_torch(
    ctx: std::sync::Arc<sagitta::GpuContext>,
    weights: &str,
    prefix: &str,
    precision: Precision,
    tol_px: f32,
    tol_p: f32,
) {
    let r = reference();
    let file = WeightFile::open(fixture_path(weights)).unwrap();
    let mut model = LumbarModel::new(ctx, &file).unwrap();
    model.set_precision(precision).unwrap();
    // Every level refined, as the reference does.
    model.set_refine_levels(RefineLevels::All);
    let (width, height, pixels) = &r.image;
    let got = model
        .run(GreyImage {
            width: *width,
            height: *height,
            pixels,
        })
        .unwrap();
    let what = format!("{weights} {precision:?}");
    let expect = |key: &str| &r.io.get(&format!("{prefix}{key}")).1;
    let p = assert_close(
        &format!("{what} presence"),
        &got.presence,
        expect("presence"),
        tol_p,
    );
    let coarse: Vec<f32> = got.coarse.iter().flatten().copied().collect();
    assert_close(&format!("{what} coarse"), &coarse, expect("coarse"), tol_px);
    let boxes: Vec<f32> = got.boxes.iter().flatten().copied().collect();
    assert_close(&format!("{what} boxes"), &boxes, expect("boxes"), tol_px);
    let d = assert_close(
        &format!("{what} corners"),
        &rows(&got),
        expect("landmarks"),
        tol_px,
    );
    // The threshold decides presence as torch's probabilities do (none sits at 0.5).
    let torch_present: Vec<bool> = expect("presence").iter().map(|&q| q >= 0.5).collect();
    assert_eq!(got.present, torch_present, "{what}");
    assert_eq!(got.corners[0].name, "C2_as");
    assert_eq!(got.corners[95].name, "S1_ai");
    eprintln!("lumbar {what}: max |diff| {d:.2e} px, presence {p:.2e}");
}

#[test]
fn f32_and_f16_weights_match_pytorch_in_f32() {
    // The image is 230x170 px and the corners' spreads 4 to 56 px: 2e-3 px is far below what a
    // wrong branch, view, box or crop would move a corner. f16 weights stay f16 on the GPU, so
    // the BatchNorm folded into them is rounded once more than in torch, through 24 layers.
    against_torch(
        gpu(),
        "lumbar_small_f32.safetensors",
        "f32.",
        Precision::F32,
        2e-3,
        1e-5,
    );
    against_torch(
        gpu(),
        "lumbar_small_f16.safetensors",
        "f16.",
        Precision::F32,
        0.25,
        2e-3,
    );
}

#[test]
fn f16_activations_stay_within_a_pixel() {
    let packed = sagitta::GpuContext::new(&sagitta::cli::env::adapter_choice()).unwrap();
    packed.set_packed_f16(true);
    let mut contexts = vec![("packed", packed)];
    if gpu().features.contains(wgpu::Features::SHADER_F16) {
        contexts.push(("native", gpu()));
    }
    for (what, ctx) in contexts {
        eprintln!("{what} f16 activations:");
        against_torch(
            ctx,
            "lumbar_small_f32.safetensors",
            "f32.",
            Precision::F16,
            1.0,
            5e-3,
        );
    }
}

#[test]
fn one_inference_is_one_submission_and_one_readback() {
    let r = reference();
    let weights = WeightFile::open(fixture_path("lumbar_small_f32.safetensors")).unwrap();
    let ctx = sagitta::GpuContext::new(&sagitta::cli::env::adapter_choice()).unwrap();
    let mut model = LumbarModel::new(ctx.clone(), &weights).unwrap();
    model.set_refine_levels(RefineLevels::All);
    let (width, height, pixels) = &r.image;
    let image = GreyImage {
        width: *width,
        height: *height,
        pixels,
    };
    model.prepare(*width, *height).unwrap();
    for _ in 0..2 {
        ctx.take_events();
        model.run(image).unwrap();
        assert_eq!(ctx.take_events(), vec![GpuEvent::Submit, GpuEvent::Map]);
    }
    // Another size builds the plan for that size (the crops read an activation of the
    // original's size): the same numbers as a model built for it, and the first size's numbers
    // again after it.
    let doubled: Vec<f32> = (0..2 * height)
        .flat_map(|y| (0..2 * width).map(move |x| (y / 2, x / 2)))
        .map(|(y, x)| pixels[(y * width + x) as usize])
        .collect();
    let large_image = GreyImage {
        width: 2 * width,
        height: 2 * height,
        pixels: &doubled,
    };
    let first = model.run(image).unwrap();
    let large = model.run(large_image).unwrap();
    let again = model.run(image).unwrap();
    let mut fresh = LumbarModel::new(ctx, &weights).unwrap();
    fresh.set_refine_levels(RefineLevels::All);
    let expected_large = fresh.run(large_image).unwrap();
    assert_eq!(rows(&large), rows(&expected_large));
    assert_eq!(large.presence, expected_large.presence);
    assert_eq!(rows(&again), rows(&first));
    assert_ne!(rows(&large), rows(&first));
}

#[test]
fn metadata_is_checked_and_the_tensor_list_matches_the_checkpoint() {
    let weights = WeightFile::open(fixture_path("lumbar_small_f32.safetensors")).unwrap();
    let config = LumbarConfig::from_weights(&weights).unwrap();
    assert_eq!(config.identify_blocks, [1, 2, 1, 1]);
    assert_eq!((config.input_size, config.crop_size), (192, 128));
    // Loading uses every tensor of the checkpoint (the loader refuses leftovers); the dry run
    // declares the same list, so random weights have the checkpoint's layout.
    LumbarModel::new(gpu(), &weights).unwrap();
    let declared = config.tensor_shapes();
    for name in [
        "identify.layer1.0.downsample.1.running_var",
        "locate.Mixed_7c.branch3x3dbl_3b.conv.weight",
        "refine.hm_conv.weight",
    ] {
        assert!(declared.iter().any(|(n, _)| n == name), "{name}");
    }
    let random = config.random_weights(1);
    LumbarModel::new(gpu(), &random).unwrap();

    for (key, value, field) in [
        ("input_size", serde_json::json!(64), "input_size"),
        (
            "identify_blocks",
            serde_json::json!([3, 4, 6]),
            "identify_blocks",
        ),
        ("locate_width", serde_json::json!(0.0), "locate_width"),
        ("box_scale", serde_json::json!(0.5), "box_scale"),
        ("threshold", serde_json::json!(1.5), "threshold"),
    ] {
        let mut metadata = weights.metadata.clone();
        metadata[key] = value;
        match LumbarConfig::from_metadata(&weights.path, &weights.arch, &metadata) {
            Err(SagittaError::WeightsMetadata { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{key}: {other:?}"),
        }
    }
    // A whole-spine file is another family's.
    let other = WeightFile::open(fixture_path("wholespine_small_f32.safetensors")).unwrap();
    let error = LumbarModel::new(gpu(), &other).err().unwrap();
    assert!(
        error.to_string().contains("another model family"),
        "{error}"
    );
}

#[test]
fn refining_in_parts_gives_the_same_corners() {
    // A batch whose activations exceed one buffer binding is refined in parts; the parts must
    // not change a number (24 levels in parts of 5: 5, 5, 5, 5, 4).
    let r = reference();
    let weights = WeightFile::open(fixture_path("lumbar_small_f32.safetensors")).unwrap();
    let mut model = LumbarModel::new(gpu(), &weights).unwrap();
    model.set_refine_levels(RefineLevels::All);
    assert_eq!(
        model.refine_batch().unwrap(),
        24,
        "the small model fits one batch"
    );
    let (width, height, pixels) = &r.image;
    let image = GreyImage {
        width: *width,
        height: *height,
        pixels,
    };
    let whole = model.run(image).unwrap();
    model.set_refine_batch(Some(5)).unwrap();
    let parts = model.run(image).unwrap();
    assert_eq!(rows(&parts), rows(&whole));
    assert_eq!(parts.presence, whole.presence);
    assert!(model.set_refine_batch(Some(0)).is_err());
    assert!(model.set_refine_batch(Some(25)).is_err());
}

/// `sagitta analyze --model lumbar` on a sample: the record has all 24 levels with the model's
/// probabilities, the present levels' corners as the library gives them, and the three angles
/// as `measure::lumbar` computes them from those corners; the CSV names the present levels.
#[test]
fn analyze_reports_levels_corners_and_angles() {
    let dir = tempfile::tempdir().unwrap();
    // The small model with every level present (threshold 0), so that all three angles exist.
    let mut weights = WeightFile::open(fixture_path("lumbar_small_f32.safetensors")).unwrap();
    weights.metadata["threshold"] = serde_json::json!(0.0);
    let file = dir.path().join("lumbar.safetensors");
    weights.save_f32(&file).unwrap();
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/phantom_right.png");
    let csv = dir.path().join("out.csv");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sagitta"))
        .args(["analyze", "--model", "lumbar", "--quiet", "--weights"])
        .arg(&file)
        .arg("--csv")
        .arg(&csv)
        .arg("--overlay")
        .arg(dir.path().join("overlay.png"))
        .arg("--landmarks-csv")
        .arg(dir.path().join("landmarks.csv"))
        .arg(&sample)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let records: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let record = &records[0];
    assert!(record["model"].is_null() && record["wholespine"].is_null());
    let lumbar = &record["lumbar"];
    assert_eq!(lumbar["model"]["name"], "lumbar-small-test");

    let image = sagitta::io::load_radiograph(&sample).unwrap();
    let mut model = LumbarModel::new(gpu(), &WeightFile::open(&file).unwrap()).unwrap();
    let expected = model
        .run(GreyImage {
            width: image.width,
            height: image.height,
            pixels: &image.pixels,
        })
        .unwrap();
    let levels = lumbar["levels"].as_array().unwrap();
    assert_eq!(levels.len(), 24);
    for (level, p) in levels.iter().zip(&expected.presence) {
        assert!((level["probability"].as_f64().unwrap() - f64::from(*p)).abs() < 1e-5);
        assert_eq!(level["present"], true);
    }
    let corners = lumbar["landmarks"].as_array().unwrap();
    assert_eq!(corners.len(), 96);
    let mut points = [None; 24];
    for (v, level) in points.iter_mut().enumerate() {
        let mut four = [[0.0; 2]; 4];
        for (c, corner) in four.iter_mut().enumerate() {
            let got = &corners[4 * v + c];
            let want = &expected.corners[4 * v + c];
            assert_eq!(got["name"], want.name);
            let (x, y) = (got["x"].as_f64().unwrap(), got["y"].as_f64().unwrap());
            assert!((x - f64::from(want.x)).abs() <= 0.006, "{}", want.name);
            assert!((y - f64::from(want.y)).abs() <= 0.006, "{}", want.name);
            *corner = [f64::from(want.x), f64::from(want.y)];
        }
        *level = Some(four);
    }
    let measured = sagitta::measure::lumbar::lumbar(&points, None).unwrap();
    let parameters = lumbar["parameters"].as_array().unwrap();
    assert_eq!(parameters.len(), 3);
    for parameter in parameters {
        let name = parameter["name"].as_str().unwrap();
        let want = measured.get(name).expect("every level is present");
        let got = parameter["value"].as_f64().unwrap();
        assert!((got - want).abs() <= 0.006, "{name}: {got} vs {want}");
        let unsigned = parameter["unsigned_value"].as_f64().unwrap();
        let want_unsigned = measured.get_unsigned(name).unwrap();
        assert!((unsigned - want_unsigned).abs() <= 0.006, "{name}");
        assert!(parameter["status"].is_string());
    }

    let table = std::fs::read_to_string(&csv).unwrap();
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let row: Vec<&str> = lines.next().unwrap().split(',').collect();
    let column = header.iter().position(|h| *h == "lumbar levels").unwrap();
    assert_eq!(row[column].split(' ').count(), 24);
    assert!(row[column].starts_with("C2 C3") && row[column].ends_with("L5 S1"));
    assert!(header.contains(&"lumbar SS status"));

    // The long-format table: the 96 corners, named with their model, as in the record.
    let long = std::fs::read_to_string(dir.path().join("landmarks.csv")).unwrap();
    let rows: Vec<Vec<&str>> = long
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(rows.len(), 96, "{long}");
    for (row, corner) in rows.iter().zip(corners) {
        assert_eq!(
            row[1],
            format!("lumbar:{}", corner["name"].as_str().unwrap())
        );
        assert_eq!(row[6], "refined");
        let x: f64 = row[2].parse().unwrap();
        assert!((x - corner["x"].as_f64().unwrap()).abs() <= 0.006);
    }

    // The overlay is the image with the levels drawn on it.
    let overlay = image::open(dir.path().join("overlay.png"))
        .unwrap()
        .to_rgb8();
    assert_eq!(overlay.dimensions(), (image.width, image.height));
    let coloured = overlay
        .pixels()
        .filter(|p| p[0] != p[1] || p[1] != p[2])
        .count();
    assert!(coloured > 1000, "{coloured} coloured pixels");
}

#[test]
fn refining_the_present_levels_only_gives_their_corners_bit_for_bit() {
    // SPEC-lumbar: reading the flags back and refining the present levels, or refining all 24
    // and dropping the absent ones, gives the present levels the same corners.
    let r = reference();
    let weights = WeightFile::open(fixture_path("lumbar_small_f32.safetensors")).unwrap();
    let ctx = sagitta::GpuContext::new(&sagitta::cli::env::adapter_choice()).unwrap();
    let mut all = LumbarModel::new(ctx.clone(), &weights).unwrap();
    all.set_refine_levels(RefineLevels::All);
    let mut present = LumbarModel::new(ctx.clone(), &weights).unwrap();
    assert_eq!(present.refine_levels(), RefineLevels::Present);
    let (width, height, pixels) = &r.image;
    let image = GreyImage {
        width: *width,
        height: *height,
        pixels,
    };
    let expected = all.run(image).unwrap();
    ctx.take_events();
    let got = present.run(image).unwrap();
    // Two round trips: the labeller's flags, then the present levels.
    assert_eq!(
        ctx.take_events(),
        vec![
            GpuEvent::Submit,
            GpuEvent::Map,
            GpuEvent::Submit,
            GpuEvent::Map
        ]
    );
    assert_eq!(got.presence, expected.presence);
    assert_eq!(got.present, expected.present);
    assert_eq!(got.boxes, expected.boxes);
    assert_eq!(got.coarse, expected.coarse);
    let levels = got.present.iter().filter(|p| **p).count();
    assert!(
        levels > 0 && levels < 24,
        "{levels} present: the fixture mixes both"
    );
    for (i, (g, e)) in got.corners.iter().zip(&expected.corners).enumerate() {
        if got.present[i / 4] {
            assert_eq!(
                [g.x, g.y, g.sd_x, g.sd_y],
                [e.x, e.y, e.sd_x, e.sd_y],
                "{}",
                g.name
            );
        } else {
            // An absent level keeps the localisation's corner.
            let c = got.coarse[i];
            assert_eq!([g.x, g.y], [c[0], c[1]], "{}", g.name);
        }
    }
    // Again (plans reused), and with no level present (nothing to refine).
    let again = present.run(image).unwrap();
    assert_eq!(rows(&again), rows(&got));
    let mut none = WeightFile::open(fixture_path("lumbar_small_f32.safetensors")).unwrap();
    none.metadata["threshold"] = serde_json::json!(1.0);
    let dir = tempfile::tempdir().unwrap();
    none.save_f32(dir.path().join("none.safetensors")).unwrap();
    let none = WeightFile::open(dir.path().join("none.safetensors")).unwrap();
    let mut nothing = LumbarModel::new(ctx, &none).unwrap();
    let empty = nothing.run(image).unwrap();
    assert!(empty.present.iter().all(|p| !p));
    for (k, c) in empty.corners.iter().enumerate() {
        let e = expected.coarse[k];
        assert!(
            (c.x - e[0]).abs() < 1e-3 && (c.y - e[1]).abs() < 1e-3,
            "{}",
            c.name
        );
    }
}

/// `sagitta info --weights` describes a file of every family, checked by the family's reader.
#[test]
fn info_describes_the_weights_of_every_family() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for (file, line) in [
        (
            "tests/fixtures/lumbar_small_f32.safetensors",
            "identify_blocks: [1,2,1,1]",
        ),
        (
            "tests/fixtures/csm_small_f32.safetensors",
            "architecture: csm-vgg16",
        ),
        (
            "tests/fixtures/wholespine_small_f32.safetensors",
            "architecture: wholespine-cpn-dsnt",
        ),
        (
            "tests/fixtures/cervical_small_f32.safetensors",
            "architecture: cervical-hourglass-dsnt",
        ),
    ] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_sagitta"))
            .args(["info", "--weights"])
            .arg(root.join(file))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{file}: {output:?}");
        assert!(stdout.contains(line), "{file}: {stdout}");
    }
    // A lumbar file whose metadata breaks a range is refused, naming the field.
    let dir = tempfile::tempdir().unwrap();
    let mut bad = WeightFile::open(fixture_path("lumbar_small_f32.safetensors")).unwrap();
    bad.metadata["box_scale"] = serde_json::json!(20.0);
    bad.save_f32(dir.path().join("bad.safetensors")).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sagitta"))
        .args(["info", "--weights"])
        .arg(dir.path().join("bad.safetensors"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("box_scale"));
}

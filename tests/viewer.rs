//! The example viewer (`sagitta view`) under a virtual display: it opens a window on lavapipe,
//! runs the cervical model on the texture it shows inside its own frames, and its last frame
//! shows what the model found. Skipped, saying so, where `xvfb-run` is missing (CI installs it).
//!
//! With `SAGITTA_VIEWER_DOCS=1` the test's screenshot is also written to `docs/viewer.png`.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

const SAMPLE: &str = "samples/phantom_right.png";
const FRAMES: u32 = 6;
const DRAGGED: &str = "C2_ai";
const DRAG: [f64; 2] = [0.0, 20.0];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn have_xvfb() -> bool {
    Command::new("xvfb-run")
        .arg("--help")
        .output()
        .is_ok_and(|o| o.status.success() || !o.stdout.is_empty() || !o.stderr.is_empty())
}

/// The landmarks `sagitta analyze` reports for the sample (the CPU-upload path).
fn analyzed_landmarks() -> Vec<[f64; 2]> {
    let output = Command::new(env!("CARGO_BIN_EXE_sagitta"))
        .current_dir(root())
        .args(["analyze", SAMPLE])
        .output()
        .unwrap();
    assert!(
        output.status.code().is_some_and(|c| c <= 1),
        "analyze failed"
    );
    let records: Value = serde_json::from_slice(&output.stdout).unwrap();
    records[0]["landmarks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| [l["x"].as_f64().unwrap(), l["y"].as_f64().unwrap()])
        .collect()
}

#[test]
fn the_viewer_draws_the_landmarks_and_heatmaps_it_computed_on_its_own_texture() {
    if !have_xvfb() {
        eprintln!("SKIPPED: xvfb-run is not installed (apt-get install xvfb xauth)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (shot, timing) = (
        dir.path().join("viewer.png"),
        dir.path().join("timing.json"),
    );
    let drag = format!("{DRAGGED}:{},{}", DRAG[0], DRAG[1]);
    let output = Command::new("xvfb-run")
        .current_dir(root())
        .args(["-a", "-s", "-screen 0 1280x1024x24"])
        .arg(env!("CARGO_BIN_EXE_sagitta"))
        .args(["view", SAMPLE, "--frames", &FRAMES.to_string()])
        .arg("--screenshot")
        .arg(&shot)
        .arg("--timing")
        .arg(&timing)
        .args(["--drag", &drag])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "sagitta view failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let record: Value = serde_json::from_slice(&std::fs::read(&timing).unwrap()).unwrap();
    eprintln!(
        "viewer frame times (median ms): {} with inference in flight, {} without",
        record["frames_with_inference_in_flight"]["median_ms"],
        record["frames_without_inference"]["median_ms"]
    );
    for phase in [
        "frames_with_inference_in_flight",
        "frames_without_inference",
    ] {
        assert_eq!(record[phase]["frames"], FRAMES, "{phase}");
        assert!(record[phase]["median_ms"].as_f64().unwrap() > 0.0);
    }

    // The model ran on the viewer's texture: the landmarks analyze finds by the CPU path (the
    // records round to 0.01 px), but for the dragged one, moved as the mouse would.
    let dragged = sagitta::LANDMARK_NAMES
        .iter()
        .position(|n| *n == DRAGGED)
        .unwrap();
    let shown: Vec<[f64; 2]> = record["landmarks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| [p[0].as_f64().unwrap(), p[1].as_f64().unwrap()])
        .collect();
    let analyzed = analyzed_landmarks();
    assert_eq!(shown.len(), 29);
    for (i, (a, b)) in shown.iter().zip(&analyzed).enumerate() {
        let expected = if i == dragged {
            [b[0] + DRAG[0], b[1] + DRAG[1]]
        } else {
            *b
        };
        assert!(
            (a[0] - expected[0]).abs() <= 0.006 && (a[1] - expected[1]).abs() <= 0.006,
            "landmark {i}: viewer {a:?}, expected {expected:?}"
        );
    }
    // The parameters follow the drag: they are the measurement of the landmarks shown.
    let points: [[f64; 2]; 29] = shown.clone().try_into().unwrap();
    let measured = sagitta::measure::cervical(&points, None).unwrap();
    for parameter in &measured.parameters {
        let shown = record["parameters"][parameter.name].as_f64().unwrap();
        assert!(
            (shown - parameter.value).abs() < 1e-9,
            "{}: panel {shown}, measured {}",
            parameter.name,
            parameter.value
        );
    }
    let undragged: [[f64; 2]; 29] = analyzed.clone().try_into().unwrap();
    let before = sagitta::measure::cervical(&undragged, None).unwrap();
    assert!(
        (before.get("C2-C7").unwrap() - measured.get("C2-C7").unwrap()).abs() > 0.1,
        "dragging {DRAGGED} should move C2-C7"
    );

    // The last frame: every landmark outside the panel is a dot of its confidence colour at
    // its place, and the heatmap overlay tints the image.
    let image = image::open(&shot).unwrap().to_rgb8();
    let window = &record["window"];
    assert_eq!(
        [image.width(), image.height()],
        [
            window[0].as_u64().unwrap() as u32,
            window[1].as_u64().unwrap() as u32
        ]
    );
    let scale = record["image_to_window"]["scale"].as_f64().unwrap();
    let offset = &record["image_to_window"]["offset"];
    let (ox, oy) = (offset[0].as_f64().unwrap(), offset[1].as_f64().unwrap());
    let panel = &record["panel"];
    let (pw, ph) = (panel[0].as_f64().unwrap(), panel[1].as_f64().unwrap());
    let palette: [[u8; 3]; 3] = [[40, 220, 70], [255, 210, 0], [240, 30, 30]];
    let radius = record["point_radius"].as_f64().unwrap();
    let on_window = |p: &[f64; 2]| (ox + p[0] * scale, oy + p[1] * scale);
    let mut checked = 0;
    for (i, p) in shown.iter().enumerate() {
        let (x, y) = on_window(p);
        // Under the panel, or with a neighbour's dot drawn over it.
        let covered = shown.iter().enumerate().any(|(j, q)| {
            let (qx, qy) = on_window(q);
            j != i && (qx - x).hypot(qy - y) < 2.0 * radius + 2.0
        });
        if covered || (x < pw + radius + 2.0 && y < ph + radius + 2.0) {
            continue;
        }
        let pixel = image.get_pixel(x.floor() as u32, y.floor() as u32).0;
        assert!(
            palette.iter().any(|c| c
                .iter()
                .zip(pixel)
                .all(|(a, b)| (i32::from(*a) - i32::from(b)).abs() <= 3)),
            "no landmark dot at ({x:.1}, {y:.1}): {pixel:?}"
        );
        checked += 1;
    }
    assert!(checked >= 12, "only {checked} landmarks checked");
    let tinted = image
        .pixels()
        .filter(|p| p[0] as i32 - p[2] as i32 > 60 && p[0] > 120)
        .count();
    assert!(tinted > 2000, "only {tinted} heat-tinted pixels");

    if std::env::var_os("SAGITTA_VIEWER_DOCS").is_some() {
        std::fs::create_dir_all(root().join("docs")).unwrap();
        std::fs::copy(&shot, root().join("docs/viewer.png")).unwrap();
    }
}

//! The three parameters on lumbar spines built by construction, with levels present and absent.

use super::*;

const TOLERANCE: f64 = 1e-9;

fn assert_close(actual: f64, expected: f64, what: &str) {
    assert!(
        (actual - expected).abs() <= TOLERANCE * (1.0 + expected.abs()),
        "{what}: got {actual}, expected {expected}"
    );
}

fn unit(degrees: f64) -> [f64; 2] {
    let radians = degrees.to_radians();
    [radians.cos(), radians.sin()]
}

fn add(a: [f64; 2], b: [f64; 2]) -> [f64; 2] {
    [a[0] + b[0], a[1] + b[1]]
}

fn sub(a: [f64; 2], b: [f64; 2]) -> [f64; 2] {
    [a[0] - b[0], a[1] - b[1]]
}

fn scaled(a: [f64; 2], factor: f64) -> [f64; 2] {
    [a[0] * factor, a[1] * factor]
}

/// Width and height (mm) of the bodies T10–L5, the disc between them, and S1's body.
pub(crate) const WIDTH: f64 = 40.0;
pub(crate) const HEIGHT: f64 = 27.0;
pub(crate) const DISC: f64 = 9.0;
const SACRUM: (f64, f64) = (44.0, 30.0);
/// The first level built.
pub(crate) const FIRST: usize = T12 - 2;

/// Endplate slopes (both endplates of a body share one) of T10..L5, and the sacral slope.
#[derive(Clone, Copy)]
pub(crate) struct Spec {
    pub slopes: [f64; 8],
    pub ss: f64,
}

pub(crate) fn lordotic_spec() -> Spec {
    Spec {
        slopes: [10.0, 6.0, 1.0, -8.0, -4.0, 3.0, 11.0, 19.0],
        ss: 36.0,
    }
}

/// The corners (as, ps, pi, ai) of a rectangle of `size` centred at `centre` with `slope`.
fn rectangle(centre: [f64; 2], size: (f64, f64), slope: f64) -> [[f64; 2]; 4] {
    let half_width = scaled(unit(slope), size.0 / 2.0);
    // The endplate direction turned +90° (y down) points from superior to inferior.
    let half_height = scaled(unit(slope + 90.0), size.1 / 2.0);
    let superior = sub(centre, half_height);
    let inferior = add(centre, half_height);
    [
        add(superior, half_width),
        sub(superior, half_width),
        sub(inferior, half_width),
        add(inferior, half_width),
    ]
}

/// T10 to S1 facing right, each body a rectangle at its spec slope, stacked along the spine with
/// a disc between neighbours; the other levels absent.
pub(crate) fn build_levels(spec: &Spec) -> Levels {
    let mut levels: Levels = [None; LEVEL_COUNT];
    let mut centre = [200.0, 150.0];
    let mut previous: Option<(f64, f64)> = None;
    let sizes_and_slopes = spec
        .slopes
        .iter()
        .map(|&slope| ((WIDTH, HEIGHT), slope))
        .chain([(SACRUM, spec.ss)]);
    for (k, (size, slope)) in sizes_and_slopes.enumerate() {
        if let Some((previous_height, previous_slope)) = previous {
            let step = previous_height / 2.0 + DISC + size.1 / 2.0;
            centre = add(
                centre,
                scaled(unit(0.5 * (previous_slope + slope) + 90.0), step),
            );
        }
        levels[FIRST + k] = Some(rectangle(centre, size, slope));
        previous = Some((size.1, slope));
    }
    levels
}

/// Signed L1–L5, L1–S1, SS of `build_levels(spec)`, by construction.
fn expected(spec: &Spec) -> [f64; 3] {
    let l1 = spec.slopes[L1 - FIRST];
    let l5 = spec.slopes[L5 - FIRST];
    [l5 - l1, spec.ss - l1, spec.ss]
}

fn measure(levels: &Levels, spacing: Option<PixelSpacing>) -> LumbarMeasurements {
    lumbar(levels, spacing).expect("a well-formed spine must measure")
}

fn assert_values(measurements: &LumbarMeasurements, expected: &[f64; 3], context: &str) {
    let names: Vec<&str> = measurements.parameters.iter().map(|p| p.name).collect();
    assert_eq!(names, PARAMETER_NAMES, "{context}");
    for (parameter, &value) in measurements.parameters.iter().zip(expected) {
        let what = format!("{context}: {}", parameter.name);
        assert_close(parameter.value.expect(&what), value, &what);
        assert_close(
            parameter.unsigned_value.unwrap(),
            unsigned_line_angle(value),
            &what,
        );
        assert!(parameter.absent_levels.is_empty(), "{what}");
        assert_eq!(parameter.unit, "deg");
    }
}

fn transform(levels: &Levels, map: impl Fn([f64; 2]) -> [f64; 2]) -> Levels {
    levels.map(|level| level.map(|corners| corners.map(&map)))
}

fn rotate(levels: &Levels, degrees: f64, centre: [f64; 2]) -> Levels {
    let (sin, cos) = degrees.to_radians().sin_cos();
    transform(levels, |p| {
        let d = sub(p, centre);
        add(centre, [d[0] * cos - d[1] * sin, d[0] * sin + d[1] * cos])
    })
}

#[test]
fn landmark_names_are_level_and_corner() {
    assert_eq!(LANDMARK_NAMES[landmark(L1, AS)], "L1_as");
    assert_eq!(LANDMARK_NAMES[landmark(L5, AI)], "L5_ai");
    assert_eq!(LANDMARK_NAMES[landmark(S1, PS)], "S1_ps");
    assert_eq!(LANDMARK_NAMES[landmark(T12, PI)], "T12_pi");
    assert_eq!(LANDMARK_NAMES[0], "C2_as");
    for (index, name) in LANDMARK_NAMES.iter().enumerate() {
        let level = LEVEL_NAMES[index / CORNERS_PER_LEVEL];
        let corner = ["as", "ps", "pi", "ai"][index % CORNERS_PER_LEVEL];
        assert_eq!(*name, format!("{level}_{corner}"));
    }
    assert_eq!(LEVEL_NAMES[L1], "L1");
    assert_eq!(LEVEL_NAMES[S1], "S1");
}

#[test]
fn hand_drawn_levels_give_values_read_off_the_drawing() {
    let mut levels: Levels = [None; LEVEL_COUNT];
    // L1 superior endplate level; L5's inferior and the sacral endplate down 45° anteriorly.
    levels[L1] = Some([[40.0, 0.0], [0.0, 0.0], [0.0, 30.0], [40.0, 30.0]]);
    levels[L5] = Some([[40.0, 90.0], [0.0, 90.0], [0.0, 100.0], [40.0, 140.0]]);
    levels[S1] = Some([[40.0, 200.0], [0.0, 160.0], [0.0, 200.0], [40.0, 240.0]]);
    let m = measure(&levels, None);
    assert_eq!(m.facing, Some(Facing::Right));
    assert_values(&m, &[45.0, 45.0, 45.0], "hand-drawn");

    // L1's endplate rising 60° anteriorly: a difference beyond 90° is 75° between the lines.
    levels[L1] = Some([
        [20.0, -20.0 * 3f64.sqrt()],
        [0.0, 0.0],
        [0.0, 30.0],
        [40.0, 30.0],
    ]);
    let m = measure(&levels, None);
    assert_close(m.get("L1-S1").unwrap(), 105.0, "L1-S1 signed");
    assert_close(m.get_unsigned("L1-S1").unwrap(), 75.0, "L1-S1 unsigned");
}

#[test]
fn synthetic_spine_matches_its_construction() {
    for spec in [
        lordotic_spec(),
        Spec {
            slopes: [2.0, 0.0, -3.0, 5.0, 9.0, 14.0, 20.0, 28.0],
            ss: 48.0,
        },
        // Kyphotic: negative lordosis, the paper's unsigned value positive.
        Spec {
            slopes: [-2.0, 0.0, 4.0, 12.0, 8.0, 4.0, 0.0, -3.0],
            ss: 2.0,
        },
    ] {
        let m = measure(&build_levels(&spec), None);
        assert_eq!(m.facing, Some(Facing::Right));
        assert_values(&m, &expected(&spec), "synthetic");
    }
}

#[test]
fn the_papers_value_is_the_unsigned_angle_between_the_lines() {
    for (signed, unsigned) in [
        (0.0, 0.0),
        (36.0, 36.0),
        (-36.0, 36.0),
        (90.0, 90.0),
        (-90.0, 90.0),
        (100.0, 80.0),
        (-135.0, 45.0),
        (-180.0, 0.0),
        (179.5, 0.5),
    ] {
        assert_close(unsigned_line_angle(signed), unsigned, &format!("{signed}"));
    }
}

#[test]
fn rotation_moves_only_the_sacral_slope() {
    let spec = lordotic_spec();
    let levels = build_levels(&spec);
    for degrees in [-20.0, -3.0, 12.5] {
        let m = measure(&rotate(&levels, degrees, [180.0, 260.0]), None);
        let mut want = expected(&spec);
        want[2] += degrees;
        assert_values(&m, &want, &format!("rotated {degrees}°"));
    }
}

#[test]
fn a_spine_facing_left_measures_the_same() {
    let spec = lordotic_spec();
    let levels = build_levels(&spec);
    let mirrored = transform(&levels, |p| [900.0 - p[0], p[1]]);
    let m = measure(&mirrored, None);
    assert_eq!(m.facing, Some(Facing::Left));
    assert_values(&m, &expected(&spec), "mirrored");

    let spacing = Some(PixelSpacing {
        row_mm: 0.15,
        column_mm: 0.1,
    });
    let right = measure(&levels, spacing);
    let left = measure(&mirrored, spacing);
    for name in PARAMETER_NAMES {
        assert_close(left.get(name).unwrap(), right.get(name).unwrap(), name);
    }
}

#[test]
fn anisotropic_spacing_gives_true_angles() {
    let spec = lordotic_spec();
    let in_mm = build_levels(&spec);
    let spacing = PixelSpacing {
        row_mm: 0.18,
        column_mm: 0.11,
    };
    let in_pixels = transform(&in_mm, |p| {
        [p[0] / spacing.column_mm, p[1] / spacing.row_mm]
    });
    assert_values(
        &measure(&in_pixels, Some(spacing)),
        &expected(&spec),
        "anisotropic",
    );
    let naive = measure(&in_pixels, None);
    assert!((naive.get("SS").unwrap() - spec.ss).abs() > 0.5);
}

#[test]
fn an_absent_level_empties_exactly_the_values_that_read_it() {
    let spec = lordotic_spec();
    let [l1_l5, l1_s1, ss] = expected(&spec);
    let without = |absent: &[usize]| {
        let mut levels = build_levels(&spec);
        for &level in absent {
            levels[level] = None;
        }
        measure(&levels, None)
    };

    let m = without(&[L1]);
    assert_eq!((m.get("L1-L5"), m.get("L1-S1")), (None, None));
    assert_eq!(m.get_unsigned("L1-S1"), None);
    assert_eq!(m.parameter("L1-L5").unwrap().absent_levels, ["L1"]);
    assert_close(m.get("SS").unwrap(), ss, "SS without L1");

    let m = without(&[S1]);
    assert_close(m.get("L1-L5").unwrap(), l1_l5, "L1-L5 without S1");
    assert_eq!((m.get("L1-S1"), m.get("SS")), (None, None));
    assert_eq!(m.parameter("SS").unwrap().absent_levels, ["S1"]);

    let m = without(&[L5]);
    assert_eq!(m.get("L1-L5"), None);
    assert_close(m.get("L1-S1").unwrap(), l1_s1, "L1-S1 without L5");

    // Levels the values do not read: nothing changes.
    let m = without(&[L1 + 1, L1 + 2, L1 + 3, T12]);
    assert_values(&m, &expected(&spec), "without L2-L4 and T12");

    let m = without(&[L1, L1 + 1, L1 + 2, L1 + 3, L5, S1]);
    assert_eq!(m.facing, None);
    assert!(m.parameters.iter().all(|p| p.value.is_none()));
    assert_eq!(m.parameter("L1-S1").unwrap().absent_levels, ["L1", "S1"]);
}

#[test]
fn only_the_levels_read_are_validated_and_vote_for_the_facing() {
    let spec = lordotic_spec();
    // A broken thoracic level and S1's unused corners do not matter.
    let mut levels = build_levels(&spec);
    levels[T12].as_mut().unwrap()[0][0] = f64::NAN;
    levels[S1].as_mut().unwrap()[PI][1] = f64::INFINITY;
    assert_values(&measure(&levels, None), &expected(&spec), "broken T12");

    // Thoracic levels drawn facing the other way do not vote.
    let mut levels = build_levels(&spec);
    for level in &mut levels[FIRST..L1] {
        for corner in level.as_mut().unwrap().iter_mut() {
            corner[0] = 400.0 - corner[0];
        }
    }
    assert_eq!(measure(&levels, None).facing, Some(Facing::Right));

    // A broken L3 corner is refused with its name, though no value reads it: it votes.
    let mut levels = build_levels(&spec);
    levels[L1 + 2].as_mut().unwrap()[AI][0] = f64::NAN;
    assert_eq!(
        lumbar(&levels, None).unwrap_err(),
        MeasureError::NonFiniteLandmark {
            landmarks: vec!["L3_ai"]
        }
    );
}

#[test]
fn degenerate_endplates_are_refused_with_names() {
    let mut levels = build_levels(&lordotic_spec());
    let l5 = levels[L5].as_mut().unwrap();
    l5[AI] = l5[PI];
    assert_eq!(
        lumbar(&levels, None).unwrap_err(),
        MeasureError::Degenerate {
            what: "zero-length L5 inferior endplate",
            landmarks: vec!["L5_pi", "L5_ai"],
        }
    );
}

#[test]
fn measurements_serialise_with_nulls_for_absent_values() {
    let mut levels = build_levels(&lordotic_spec());
    levels[S1] = None;
    let json = serde_json::to_value(measure(&levels, None)).unwrap();
    assert_eq!(json["facing"], "right");
    assert_eq!(json["parameters"][2]["name"], "SS");
    assert!(json["parameters"][2]["value"].is_null());
    assert!(json["parameters"][0]["unsigned_value"].is_number());
    assert_eq!(json["parameters"][1]["absent_levels"][0], "S1");
}

//! The eighteen parameters on spines built by construction: every value follows from the angles
//! and lengths the spine is built from, and the frame's symmetries move exactly the values that
//! are measured against the image's horizontal or vertical.

use super::*;
use crate::measure::frame::Facing;

const TOLERANCE: f64 = 1e-9;

pub(crate) type Landmarks = [[f64; 2]; LANDMARK_COUNT];

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

/// The point at `distance` from `from` whose direction is `tilt` degrees from the upward
/// vertical towards anterior (+x), image y down.
fn at_tilt(from: [f64; 2], tilt: f64, distance: f64) -> [f64; 2] {
    let (sin, cos) = tilt.to_radians().sin_cos();
    add(from, [distance * sin, -distance * cos])
}

/// What a synthetic spine facing right is built from; every parameter follows from these.
#[derive(Clone, Copy)]
pub(crate) struct Spec {
    pub ss: f64,
    pub pt: f64,
    pub l1_superior: f64,
    pub l4_superior: f64,
    pub t12_inferior: f64,
    pub t5_superior: f64,
    pub t5_inferior: f64,
    pub t1_superior: f64,
    pub c7_inferior: f64,
    pub c2_inferior: f64,
    pub gt: f64,
    pub tpa: f64,
    pub lpa: f64,
    pub od_ha: f64,
    /// x(C2_c) − x(C7_c).
    pub c2_ahead_of_c7: f64,
}

/// Sizes (mm) of the bodies: cervical, thoracic, lumbar; and the sacral endplate.
const CERVICAL: (f64, f64) = (16.0, 13.0);
const THORACIC: (f64, f64) = (28.0, 22.0);
const LUMBAR: (f64, f64) = (40.0, 27.0);
const SACRUM_WIDTH: f64 = 44.0;
/// Distances (mm) that place the anchors: HA from S1m, C7_c from S1m.
const HIP_DISTANCE: f64 = 100.0;
const C7_DISTANCE: f64 = 540.0;
/// Heights (mm above S1m, along y) of the centres placed by tilt from HA.
const T1_HEIGHT: f64 = 515.0;
const L1_HEIGHT: f64 = 175.0;
const C2_ABOVE_C7: f64 = 85.0;
const DENS_ABOVE_C2: f64 = 18.0;

pub(crate) fn standard_spec() -> Spec {
    Spec {
        ss: 38.0,
        pt: 14.0,
        l1_superior: -12.0,
        l4_superior: 9.0,
        t12_inferior: -6.0,
        t5_superior: 19.0,
        t5_inferior: 16.0,
        t1_superior: 24.0,
        c7_inferior: 14.0,
        c2_inferior: 4.0,
        gt: 18.0,
        tpa: 15.0,
        lpa: 7.0,
        od_ha: 2.6,
        c2_ahead_of_c7: 17.0,
    }
}

/// The four corners (as, ps, pi, ai) of a body of `size` (width, height) centred at `centre`,
/// its superior endplate at slope `superior`, its inferior one at slope `inferior`.
fn body(centre: [f64; 2], size: (f64, f64), superior: f64, inferior: f64) -> [[f64; 2]; 4] {
    let (width, height) = size;
    // The endplate direction turned +90° (y down) points from superior to inferior.
    let superior_mid = sub(centre, scaled(unit(superior + 90.0), height / 2.0));
    let inferior_mid = add(centre, scaled(unit(inferior + 90.0), height / 2.0));
    let half_superior = scaled(unit(superior), width / 2.0);
    let half_inferior = scaled(unit(inferior), width / 2.0);
    [
        add(superior_mid, half_superior),
        sub(superior_mid, half_superior),
        sub(inferior_mid, half_inferior),
        add(inferior_mid, half_inferior),
    ]
}

fn lerp(a: [f64; 2], b: [f64; 2], fraction: f64) -> [f64; 2] {
    add(a, scaled(sub(b, a), fraction))
}

/// A spine facing right with S1m at the origin, centres strung between the anchors the spec
/// places, endplates at the spec's slopes.
pub(crate) fn build_spine(spec: &Spec) -> Landmarks {
    let mut points = [[0.0; 2]; LANDMARK_COUNT];
    let s1m = [0.0, 0.0];
    let half_sacrum = scaled(unit(spec.ss), SACRUM_WIDTH / 2.0);
    points[S1_AS] = add(s1m, half_sacrum);
    points[S1_PS] = sub(s1m, half_sacrum);
    // tilt(HA→S1m) = −PT: HA lies at PT from the downward vertical, anterior for PT > 0.
    let ha = at_tilt(s1m, 180.0 - spec.pt, HIP_DISTANCE);
    points[FH1] = add(ha, [-7.0, 2.0]);
    points[FH2] = add(ha, [7.0, -2.0]);

    let c7 = at_tilt(s1m, spec.gt - spec.pt, C7_DISTANCE);
    let height_to_distance = |tilt: f64, height: f64| (ha[1] + height) / tilt.to_radians().cos();
    let t1_tilt = spec.tpa - spec.pt;
    let t1 = at_tilt(ha, t1_tilt, height_to_distance(t1_tilt, T1_HEIGHT));
    let l1_tilt = spec.lpa - spec.pt;
    let l1 = at_tilt(ha, l1_tilt, height_to_distance(l1_tilt, L1_HEIGHT));
    let c2 = add(c7, [spec.c2_ahead_of_c7, -C2_ABOVE_C7]);
    let dens_height = ha[1] - c2[1] + DENS_ABOVE_C2;
    let dens = at_tilt(ha, spec.od_ha, dens_height / spec.od_ha.to_radians().cos());

    for k in 0..6 {
        points[C2_C + k] = lerp(c2, c7, k as f64 / 5.0);
    }
    for k in 0..12 {
        points[T1_C + k] = lerp(t1, l1, k as f64 / 12.0);
    }
    for k in 0..5 {
        points[L1_C + k] = lerp(l1, s1m, k as f64 / 5.0);
    }
    points[C2_DENS] = dens;

    let c2_body = body(c2, (CERVICAL.0, 20.0), spec.c2_inferior, spec.c2_inferior);
    points[C2_PI] = c2_body[2];
    points[C2_AI] = c2_body[3];
    let c7_body = body(c7, CERVICAL, spec.c7_inferior, spec.c7_inferior);
    points[C7_PS] = c7_body[1];
    points[C7_PI] = c7_body[2];
    points[C7_AI] = c7_body[3];
    let t1_body = body(t1, THORACIC, spec.t1_superior, spec.t1_superior);
    points[T1_AS] = t1_body[0];
    points[T1_PS] = t1_body[1];
    let t5 = points[T1_C + 4];
    let t5_body = body(t5, THORACIC, spec.t5_superior, spec.t5_inferior);
    points[T5_AS..=T5_AI].copy_from_slice(&t5_body);
    let t12 = points[T1_C + 11];
    let t12_body = body(t12, THORACIC, spec.t12_inferior, spec.t12_inferior);
    points[T12_AI] = t12_body[3];
    points[T12_PI] = t12_body[2];
    let l1_body = body(l1, LUMBAR, spec.l1_superior, spec.l1_superior);
    points[L1_AS] = l1_body[0];
    points[L1_PS] = l1_body[1];
    let l4 = points[L1_C + 3];
    let l4_body = body(l4, LUMBAR, spec.l4_superior, spec.l4_superior);
    points[L4_AS] = l4_body[0];
    points[L4_PS] = l4_body[1];
    points
}

/// The value of every parameter of `build_spine(spec)`, derived by hand from the construction.
fn expected(spec: &Spec) -> [f64; 18] {
    let half_sacrum_x = SACRUM_WIDTH / 2.0 * spec.ss.to_radians().cos();
    // C7_c is C7_DISTANCE from S1m at tilt GT − PT; S1_ps is half the sacrum behind S1m.
    let sva = C7_DISTANCE * (spec.gt - spec.pt).to_radians().sin() + half_sacrum_x;
    // C7_ps is half a height above and half a width behind C7_c, along the C7 slope.
    let (c7_sin, c7_cos) = spec.c7_inferior.to_radians().sin_cos();
    let c7_ps_behind = CERVICAL.1 / 2.0 * -c7_sin + CERVICAL.0 / 2.0 * c7_cos;
    let csva = spec.c2_ahead_of_c7 + c7_ps_behind;
    let sacro_femoral = HIP_DISTANCE * spec.pt.to_radians().sin() + half_sacrum_x;
    [
        spec.ss + spec.pt,
        spec.ss,
        spec.pt,
        spec.ss - spec.l1_superior,
        sva,
        spec.c7_inferior - spec.c2_inferior,
        spec.t1_superior,
        csva,
        spec.t1_superior - spec.t12_inferior,
        spec.t1_superior - spec.t5_inferior,
        spec.t5_superior - spec.t12_inferior,
        spec.ss - spec.l4_superior,
        spec.lpa,
        90.0 + spec.ss - (spec.gt - spec.pt),
        spec.gt,
        spec.tpa,
        sva / sacro_femoral,
        spec.od_ha,
    ]
}

fn measure(landmarks: &Landmarks, spacing: Option<PixelSpacing>) -> Measurements {
    wholespine(landmarks, spacing).expect("a well-formed spine must measure")
}

fn assert_parameters(measurements: &Measurements, expected: &[f64; 18], context: &str) {
    let names: Vec<&str> = measurements.parameters.iter().map(|p| p.name).collect();
    assert_eq!(names, PARAMETER_NAMES, "{context}");
    for (parameter, &value) in measurements.parameters.iter().zip(expected) {
        assert_close(
            parameter.value,
            value,
            &format!("{context}: {}", parameter.name),
        );
    }
}

fn transform(landmarks: &Landmarks, map: impl Fn([f64; 2]) -> [f64; 2]) -> Landmarks {
    landmarks.map(map)
}

/// Rotation by `degrees` about `centre`; with y down, a positive angle turns clockwise on screen
/// and adds `degrees` to every atan2(dy, dx).
fn rotate(landmarks: &Landmarks, degrees: f64, centre: [f64; 2]) -> Landmarks {
    let (sin, cos) = degrees.to_radians().sin_cos();
    transform(landmarks, |p| {
        let d = sub(p, centre);
        add(centre, [d[0] * cos - d[1] * sin, d[0] * sin + d[1] * cos])
    })
}

fn index_of(name: &str) -> usize {
    PARAMETER_NAMES.iter().position(|n| *n == name).unwrap()
}

#[test]
fn landmark_names_follow_the_spec_order() {
    assert_eq!(LANDMARK_NAMES[C2_DENS], "C2_dens");
    assert_eq!(LANDMARK_NAMES[C7_PS], "C7_ps");
    assert_eq!(LANDMARK_NAMES[T5_AI], "T5_ai");
    assert_eq!(LANDMARK_NAMES[S1_PS], "S1_ps");
    assert_eq!(LANDMARK_NAMES[FH2], "FH2");
    assert_eq!(LANDMARK_NAMES[C2_C], "C2_c");
    assert_eq!(LANDMARK_NAMES[C7_C], "C7_c");
    assert_eq!(LANDMARK_NAMES[T1_C], "T1_c");
    assert_eq!(LANDMARK_NAMES[L1_C], "L1_c");
    assert_eq!(LANDMARK_NAMES[LANDMARK_COUNT - 1], "L5_c");
    assert_eq!(FIRST_CENTRE + CENTRE_COUNT, LANDMARK_COUNT);
    for (anterior, posterior) in FACING_PAIRS {
        let (a, p) = (LANDMARK_NAMES[anterior], LANDMARK_NAMES[posterior]);
        assert_eq!(a[..a.len() - 2], p[..p.len() - 2], "{a} / {p}");
        assert!(a.ends_with("as") || a.ends_with("ai"), "{a}");
        assert!(p.ends_with("ps") || p.ends_with("pi"), "{p}");
    }
    let mut unique = LANDMARK_NAMES.to_vec();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), LANDMARK_COUNT);
}

#[test]
fn definitions_name_every_parameter_once_with_its_landmarks() {
    let names: Vec<&str> = PARAMETERS.iter().map(|d| d.name).collect();
    assert_eq!(names, PARAMETER_NAMES);
    for definition in &PARAMETERS {
        assert!(!definition.landmarks.is_empty(), "{}", definition.name);
        assert!(definition.landmarks.iter().all(|&i| i < LANDMARK_COUNT));
    }
    assert_eq!(definition_of("LL").unwrap().unit, Unit::Degrees);
    assert_eq!(definition_of("Barrey").unwrap().unit, Unit::Ratio);
    assert!(definition_of("C2-C7").is_none());
}

/// Every landmark a parameter reads moves it, and no other landmark does (the facing aside): the
/// definitions' landmark lists are the truth the quality checks rely on.
#[test]
fn each_parameter_depends_on_exactly_its_listed_landmarks() {
    let landmarks = build_spine(&standard_spec());
    let base = measure(&landmarks, None);
    for index in 0..LANDMARK_COUNT {
        let mut moved = landmarks;
        moved[index] = add(moved[index], [0.7, -0.4]);
        let after = measure(&moved, None);
        for (definition, (before, now)) in PARAMETERS
            .iter()
            .zip(base.parameters.iter().zip(&after.parameters))
        {
            let changed = (before.value - now.value).abs() > 1e-12;
            let listed = definition.landmarks.contains(&index);
            assert_eq!(
                changed, listed,
                "{} and {}",
                definition.name, LANDMARK_NAMES[index]
            );
        }
    }
}

#[test]
fn hand_drawn_spine_gives_values_read_off_the_drawing() {
    let mut points = [[0.0; 2]; LANDMARK_COUNT];
    // Sacral endplate at 45°, S1m = (20, 20); HA = (120, 120), 45° below and anterior of S1m.
    points[S1_PS] = [0.0, 0.0];
    points[S1_AS] = [40.0, 40.0];
    points[FH1] = [110.0, 120.0];
    points[FH2] = [130.0, 120.0];
    // L1 level, L4 rising 45° anteriorly.
    points[L1_PS] = [0.0, -200.0];
    points[L1_AS] = [40.0, -200.0];
    points[L4_PS] = [0.0, -80.0];
    points[L4_AS] = [40.0, -120.0];
    // T12 level; T5 level on top, rising 45° anteriorly below; T1 level.
    points[T12_PI] = [0.0, -230.0];
    points[T12_AI] = [20.0, -230.0];
    points[T5_AS..=T5_AI].copy_from_slice(&[
        [20.0, -380.0],
        [0.0, -380.0],
        [0.0, -360.0],
        [20.0, -380.0],
    ]);
    points[T1_PS] = [0.0, -430.0];
    points[T1_AS] = [20.0, -430.0];
    // C7 inferior endplate 45° down anteriorly, C2's level.
    points[C7_PS] = [0.0, -470.0];
    points[C7_PI] = [0.0, -460.0];
    points[C7_AI] = [20.0, -440.0];
    points[C2_PI] = [10.0, -530.0];
    points[C2_AI] = [30.0, -530.0];
    // C7_c straight above S1m; L1_c straight above HA; T1_c 45° behind HA; dens 45° ahead.
    points[C7_C] = [20.0, -480.0];
    points[L1_C] = [120.0, -180.0];
    points[T1_C] = [-180.0, -180.0];
    points[C2_DENS] = [1120.0, -880.0];
    points[C2_C] = [30.0, -540.0];

    let measurements = measure(&points, None);
    assert_eq!(measurements.facing, Facing::Right);
    assert_eq!(measurements.distance_unit, "px");
    assert_parameters(
        &measurements,
        &[
            90.0,
            45.0,
            45.0,
            45.0,
            20.0,
            45.0,
            0.0,
            30.0,
            0.0,
            45.0,
            0.0,
            90.0,
            45.0,
            135.0,
            45.0,
            0.0,
            20.0 / 120.0,
            45.0,
        ],
        "hand-drawn",
    );
}

#[test]
fn synthetic_spine_matches_its_construction() {
    for spec in [
        standard_spec(),
        Spec {
            ss: 22.0,
            pt: 31.0,
            l1_superior: 3.0,
            l4_superior: 12.0,
            t12_inferior: 8.0,
            t5_superior: 10.0,
            t5_inferior: 12.0,
            t1_superior: 41.0,
            c7_inferior: -9.0,
            c2_inferior: 15.0,
            gt: 47.0,
            tpa: 38.0,
            lpa: 21.0,
            od_ha: 6.0,
            c2_ahead_of_c7: 45.0,
        },
        Spec {
            pt: -6.0,
            gt: -4.0,
            tpa: -9.0,
            lpa: -3.0,
            od_ha: -7.0,
            c2_ahead_of_c7: -10.0,
            ..standard_spec()
        },
    ] {
        let landmarks = build_spine(&spec);
        let measurements = measure(&landmarks, None);
        assert_eq!(measurements.facing, Facing::Right);
        assert_parameters(&measurements, &expected(&spec), "synthetic");
        let units: Vec<&str> = measurements.parameters.iter().map(|p| p.unit).collect();
        let mut wanted = vec!["deg"; 18];
        wanted[index_of("SVA")] = "px";
        wanted[index_of("cSVA")] = "px";
        wanted[index_of("Barrey")] = "ratio";
        assert_eq!(units, wanted);
    }
}

#[test]
fn pelvic_incidence_is_tilt_plus_slope_whatever_the_pose() {
    for (ss, pt) in [(38.0, 14.0), (50.0, -8.0), (12.0, 40.0), (-5.0, 3.0)] {
        let spec = Spec {
            ss,
            pt,
            ..standard_spec()
        };
        let landmarks = build_spine(&spec);
        for degrees in [0.0, -20.0, 33.0] {
            let rotated = rotate(&landmarks, degrees, [10.0, -200.0]);
            let m = measure(&rotated, None);
            let (pi, ss, pt) = (
                m.get("PI").unwrap(),
                m.get("SS").unwrap(),
                m.get("PT").unwrap(),
            );
            assert_close(pi, ss + pt, "PI = SS + PT");
            assert_close(pi, spec.ss + spec.pt, "PI does not depend on the pose");
        }
    }
}

#[test]
fn rotation_moves_only_what_is_measured_against_the_image_axes() {
    let spec = standard_spec();
    let landmarks = build_spine(&spec);
    let base = expected(&spec);
    for degrees in [-25.0, -7.5, 3.0, 20.0] {
        let rotated = rotate(&landmarks, degrees, [40.0, -300.0]);
        let mut want = base;
        want[index_of("SS")] += degrees;
        want[index_of("T1S")] += degrees;
        want[index_of("OD-HA")] += degrees;
        // PT is measured from the vertical the other way round: HA anterior of S1m is +.
        want[index_of("PT")] -= degrees;
        // The distances are horizontal in the image: read them off the rotated points.
        let sva = rotated[C7_C][0] - rotated[S1_PS][0];
        let ha_x = 0.5 * (rotated[FH1][0] + rotated[FH2][0]);
        want[index_of("SVA")] = sva;
        want[index_of("cSVA")] = rotated[C2_C][0] - rotated[C7_PS][0];
        want[index_of("Barrey")] = sva / (ha_x - rotated[S1_PS][0]);
        assert_parameters(
            &measure(&rotated, None),
            &want,
            &format!("rotated {degrees}°"),
        );
    }
}

#[test]
fn a_spine_facing_left_measures_the_same() {
    let spec = standard_spec();
    let landmarks = build_spine(&spec);
    let mirrored = transform(&landmarks, |p| [1000.0 - p[0], p[1]]);
    let measurements = measure(&mirrored, None);
    assert_eq!(measurements.facing, Facing::Left);
    assert_parameters(&measurements, &expected(&spec), "mirrored");

    // Rotating the left-facing image clockwise turns the canonical frame the other way.
    let rotated = rotate(&mirrored, 10.0, [500.0, 0.0]);
    let m = measure(&rotated, None);
    assert_close(m.get("SS").unwrap(), spec.ss - 10.0, "mirrored, rotated SS");
    assert_close(m.get("PT").unwrap(), spec.pt + 10.0, "mirrored, rotated PT");
    assert_close(m.get("LL").unwrap(), spec.ss - spec.l1_superior, "LL");

    let spacing = Some(PixelSpacing {
        row_mm: 0.15,
        column_mm: 0.1,
    });
    let right = measure(&landmarks, spacing);
    let left = measure(&mirrored, spacing);
    for (a, b) in right.parameters.iter().zip(&left.parameters) {
        assert_close(
            b.value,
            a.value,
            &format!("mirrored with spacing: {}", a.name),
        );
    }
}

#[test]
fn anisotropic_spacing_gives_true_millimetre_geometry() {
    let spec = standard_spec();
    let in_mm = build_spine(&spec);
    let spacing = PixelSpacing {
        row_mm: 0.2,
        column_mm: 0.125,
    };
    let in_pixels = transform(&in_mm, |p| {
        [p[0] / spacing.column_mm, p[1] / spacing.row_mm]
    });
    let measurements = measure(&in_pixels, Some(spacing));
    assert_eq!(measurements.distance_unit, "mm");
    assert_parameters(&measurements, &expected(&spec), "anisotropic");
    assert_eq!(measurements.parameters[index_of("SVA")].unit, "mm");
    assert_eq!(measurements.parameters[index_of("Barrey")].unit, "ratio");

    // Ignoring the spacing would distort the angles: the conversion really happens.
    let naive = measure(&in_pixels, None);
    assert!((naive.get("SS").unwrap() - spec.ss).abs() > 0.5);
    assert!((naive.get("LL").unwrap() - (spec.ss - spec.l1_superior)).abs() > 0.5);
}

#[test]
fn scaling_and_translation_keep_angles_and_ratios() {
    let spec = standard_spec();
    let landmarks = build_spine(&spec);
    let base = expected(&spec);
    for factor in [0.25, 3.0] {
        let grown = transform(&landmarks, |p| add(scaled(p, factor), [-431.5, 1210.25]));
        let mut want = base;
        want[index_of("SVA")] *= factor;
        want[index_of("cSVA")] *= factor;
        assert_parameters(&measure(&grown, None), &want, &format!("×{factor}"));
    }
}

#[test]
fn signs_follow_the_spec() {
    // A kyphotic lumbar spine, a retroverted pelvis, C7 and the dens behind.
    let spec = Spec {
        ss: 8.0,
        pt: -6.0,
        l1_superior: 30.0,
        gt: -20.0,
        tpa: -15.0,
        lpa: -10.0,
        od_ha: -4.0,
        ..standard_spec()
    };
    let m = measure(&build_spine(&spec), None);
    assert_close(m.get("LL").unwrap(), -22.0, "LL kyphotic");
    assert_close(m.get("PT").unwrap(), -6.0, "PT: HA behind S1m");
    assert_close(m.get("GT").unwrap(), -20.0, "GT: C7 back");
    assert_close(
        m.get("TPA").unwrap(),
        -15.0,
        "TPA: T1 behind the HA-S1m line",
    );
    assert_close(
        m.get("LPA").unwrap(),
        -10.0,
        "LPA: L1 behind the HA-S1m line",
    );
    assert_close(m.get("OD-HA").unwrap(), -4.0, "OD-HA: dens behind HA");
    assert!(m.get("SVA").unwrap() < 0.0, "SVA: C7 behind S1_ps");
}

#[test]
fn angles_wrap_into_the_lower_closed_half_turn() {
    // The sacral endplate drawn back to front gives SS = 180° exactly, reported as −180°.
    let mut landmarks = build_spine(&standard_spec());
    let s1m = scaled(add(landmarks[S1_PS], landmarks[S1_AS]), 0.5);
    landmarks[S1_AS] = add(s1m, [-20.0, 0.0]);
    landmarks[S1_PS] = add(s1m, [20.0, 0.0]);
    let m = measure(&landmarks, None);
    assert_eq!(m.facing, Facing::Right);
    assert_close(m.get("SS").unwrap(), -180.0, "SS");
    for parameter in &m.parameters {
        if parameter.unit == "deg" {
            assert!(
                (-180.0..180.0).contains(&parameter.value),
                "{}: {}",
                parameter.name,
                parameter.value
            );
        }
    }
}

#[test]
fn barrey_has_no_value_when_the_sacro_femoral_distance_is_zero() {
    let mut landmarks = build_spine(&standard_spec());
    let ha = scaled(add(landmarks[FH1], landmarks[FH2]), 0.5);
    let shift = [landmarks[S1_PS][0] - ha[0], 0.0];
    landmarks[FH1] = add(landmarks[FH1], shift);
    landmarks[FH2] = add(landmarks[FH2], shift);
    let m = measure(&landmarks, None);
    assert_eq!(m.get("Barrey"), None);
    assert_eq!(m.parameters.len(), 17);
    assert!(m.get("SVA").is_some() && m.get("PT").is_some());
}

#[test]
fn degenerate_and_invalid_input_is_refused_with_names() {
    let mut landmarks = build_spine(&standard_spec());
    landmarks[S1_AS] = landmarks[S1_PS];
    assert_eq!(
        wholespine(&landmarks, None).unwrap_err(),
        MeasureError::Degenerate {
            what: "zero-length sacral endplate",
            landmarks: vec!["S1_ps", "S1_as"],
        }
    );

    let mut landmarks = build_spine(&standard_spec());
    let ha = scaled(add(landmarks[FH1], landmarks[FH2]), 0.5);
    landmarks[T1_C] = ha;
    let error = wholespine(&landmarks, None).unwrap_err();
    assert!(error.to_string().contains("T1_c"), "{error}");

    let mut landmarks = build_spine(&standard_spec());
    landmarks[L4_PS][1] = f64::NAN;
    landmarks[FH2][0] = f64::INFINITY;
    assert_eq!(
        wholespine(&landmarks, None).unwrap_err(),
        MeasureError::NonFiniteLandmark {
            landmarks: vec!["L4_ps", "FH2"]
        }
    );

    let landmarks = build_spine(&standard_spec());
    let error = wholespine(
        &landmarks,
        Some(PixelSpacing {
            row_mm: 0.0,
            column_mm: 0.1,
        }),
    )
    .unwrap_err();
    assert!(matches!(error, MeasureError::InvalidSpacing { .. }));

    // Every endplate pair drawn with no horizontal extent: no facing.
    let mut flat = build_spine(&standard_spec());
    for (anterior, posterior) in FACING_PAIRS {
        flat[anterior][0] = flat[posterior][0];
        flat[anterior][1] = flat[posterior][1] + 1.0;
    }
    assert_eq!(
        wholespine(&flat, None).unwrap_err(),
        MeasureError::AmbiguousFacing
    );
}

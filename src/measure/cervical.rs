//! The nine cervical sagittal parameters computed from the 29 landmarks.
//!
//! This is the "Parameters (9)" contract of `SPEC-cervical.md`, in pure Rust with no GPU.
//!
//! Every parameter is computed in one canonical frame:
//!
//! 1. Landmarks are converted to millimetres first when a pixel spacing is known
//!    (`x * column_mm`, `y * row_mm`), so that anisotropic pixels give true angles. Without a
//!    spacing, pixels are taken as square and distances are reported in `"px"`.
//! 2. Image y points down and stays so; "superior" is −y.
//! 3. If the patient faces left, x is mirrored so that the anterior side is always +x. The
//!    facing is decided from all vertebrae at once (mean x of the anterior corners minus mean x
//!    of the posterior corners), so one misplaced corner cannot flip it.
//!
//! The slope of a segment from its posterior point `P` to its anterior point `A` is
//! `atan2(A.y − P.y, A.x − P.x)` in degrees: positive when the anterior end is lower.
//! Differences of angles are normalised to (−180°, 180°].
//!
//! Sign conventions chosen where the SPEC leaves room:
//! - **RJD** is positive when the midpoint of the C2 inferior endplate lies below (inferior to,
//!   +y side of) the McGregor line.
//! - **CT** is positive when `DENS` lies anterior (+x) of the vertical through the midpoint of
//!   the T1 superior endplate.
//! - **CCA** is unsigned, in [0°, 180°].
//! - **cSVA** is measured horizontally in the image (not perpendicular to any endplate):
//!   positive when the C2 centroid is anterior of `C7_ps`.

use super::frame::{canonical_frame, normalize_degrees, unsigned_angle_between, Frame, Point};
pub use super::frame::{
    Facing, MeasureError, Measurements, Parameter, PixelSpacing, MAX_ABS_COORDINATE,
};
pub use crate::anatomy::cervical::{
    AI, AS, C2, C6, C7, DENS, LANDMARK_COUNT, LANDMARK_NAMES, OCC, PI, PNS, PS, T1_AS, T1_PS,
};

/// Parameter names, in the order [`cervical`] reports them.
pub const PARAMETER_NAMES: [&str; 9] = [
    "C2-C7", "C2-C6", "C0-C2", "C7 slope", "T1 slope", "cSVA", "RJD", "CT", "CCA",
];

/// Indices of the corners that lie on the anterior wall (`*_as`, `*_ai`, `T1_as`).
const ANTERIOR_CORNERS: [usize; 13] = [0, 3, 4, 7, 8, 11, 12, 15, 16, 19, 20, 23, 24];
/// Indices of the corners that lie on the posterior wall (`*_ps`, `*_pi`, `T1_ps`).
const POSTERIOR_CORNERS: [usize; 13] = [1, 2, 5, 6, 9, 10, 13, 14, 17, 18, 21, 22, 25];

const C2_CORNERS: [usize; 4] = [C2 + AS, C2 + PS, C2 + PI, C2 + AI];
const C7_CORNERS: [usize; 4] = [C7 + AS, C7 + PS, C7 + PI, C7 + AI];

/// Computes the nine cervical parameters from the 29 landmarks.
///
/// `landmarks` are in original-image pixels, x to the right and y down, in the order of
/// [`LANDMARK_NAMES`]. With a `spacing`, distances are in millimetres and angles are true
/// angles even for non-square pixels; without one, pixels are taken as square and distances
/// are in pixels.
pub fn cervical(
    landmarks: &[[f64; 2]; LANDMARK_COUNT],
    spacing: Option<PixelSpacing>,
) -> Result<Measurements, MeasureError> {
    let (canonical, facing) = to_canonical_frame(landmarks, spacing)?;
    let distance_unit = if spacing.is_some() { "mm" } else { "px" };

    let c2_inferior = canonical.slope(C2 + PI, C2 + AI, "zero-length C2 inferior endplate")?;
    let c6_inferior = canonical.slope(C6 + PI, C6 + AI, "zero-length C6 inferior endplate")?;
    let c7_inferior = canonical.slope(C7 + PI, C7 + AI, "zero-length C7 inferior endplate")?;
    let c7_superior = canonical.slope(C7 + PS, C7 + AS, "zero-length C7 superior endplate")?;
    let t1_superior = canonical.slope(T1_PS, T1_AS, "zero-length T1 superior endplate")?;
    let mcgregor = canonical.slope(OCC, PNS, "zero-length McGregor line")?;

    let c2_centroid = canonical.centroid(&C2_CORNERS);
    let sagittal_vertical_axis = c2_centroid.x - canonical.point(C7 + PS).x;

    let c2_inferior_midpoint = canonical.point(C2 + PI).midpoint(canonical.point(C2 + AI));
    let mcgregor_line = canonical.direction(OCC, PNS, "zero-length McGregor line")?;
    let rjd = signed_distance_below_line(canonical.point(OCC), mcgregor_line, c2_inferior_midpoint);

    let t1_midpoint = canonical.point(T1_PS).midpoint(canonical.point(T1_AS));
    let to_dens = canonical.point(DENS).minus(t1_midpoint);
    if to_dens.length() <= canonical.zero_length {
        return Err(MeasureError::Degenerate {
            what: "DENS coincides with the midpoint of the T1 superior endplate",
            landmarks: vec![
                LANDMARK_NAMES[DENS],
                LANDMARK_NAMES[T1_PS],
                LANDMARK_NAMES[T1_AS],
            ],
        });
    }
    // Angle from "straight up" (−y) towards anterior (+x).
    let cranial_tilt = to_dens.x.atan2(-to_dens.y).to_degrees();

    let c7_centroid = canonical.centroid(&C7_CORNERS);
    let pns_to_occ = canonical.direction(PNS, OCC, "zero-length McGregor line")?;
    let pns_to_c7 = c7_centroid.minus(canonical.point(PNS));
    if pns_to_c7.length() <= canonical.zero_length {
        return Err(MeasureError::Degenerate {
            what: "PNS coincides with the C7 centroid",
            landmarks: vec![
                LANDMARK_NAMES[PNS],
                LANDMARK_NAMES[C7 + AS],
                LANDMARK_NAMES[C7 + PS],
                LANDMARK_NAMES[C7 + PI],
                LANDMARK_NAMES[C7 + AI],
            ],
        });
    }
    let craniocervical = unsigned_angle_between(pns_to_occ, pns_to_c7);

    let values = [
        (
            "C2-C7",
            normalize_degrees(c7_inferior - c2_inferior),
            "deg",
            "slope(C7 pi->ai) - slope(C2 pi->ai); + lordosis",
        ),
        (
            "C2-C6",
            normalize_degrees(c6_inferior - c2_inferior),
            "deg",
            "slope(C6 pi->ai) - slope(C2 pi->ai); + lordosis",
        ),
        (
            "C0-C2",
            normalize_degrees(c2_inferior - mcgregor),
            "deg",
            "slope(C2 pi->ai) - slope(OCC->PNS); + lordosis",
        ),
        (
            "C7 slope",
            c7_superior,
            "deg",
            "slope(C7 ps->as) from horizontal; + anterior end lower",
        ),
        (
            "T1 slope",
            t1_superior,
            "deg",
            "slope(T1 ps->as) from horizontal; + anterior end lower",
        ),
        (
            "cSVA",
            sagittal_vertical_axis,
            distance_unit,
            "horizontal x(C2 centroid) - x(C7_ps); + C2 anterior",
        ),
        (
            "RJD",
            rjd,
            distance_unit,
            "distance from C2 inferior endplate midpoint to McGregor line (PNS-OCC); + below the line",
        ),
        (
            "CT",
            cranial_tilt,
            "deg",
            "angle between T1 superior endplate midpoint->DENS and the vertical; + dens anterior",
        ),
        (
            "CCA",
            craniocervical,
            "deg",
            "unsigned angle at PNS between PNS->OCC and PNS->C7 centroid, in [0, 180]",
        ),
    ];

    let mut parameters = Vec::with_capacity(values.len());
    for (name, value, unit, convention) in values {
        if !value.is_finite() {
            return Err(MeasureError::NonFiniteResult { parameter: name });
        }
        parameters.push(Parameter {
            name,
            value,
            unit,
            convention,
        });
    }

    Ok(Measurements {
        facing,
        distance_unit,
        parameters,
    })
}

/// The landmarks in the canonical frame (mm with a spacing, else px; anterior +x, inferior +y)
/// and the facing, after the same validation [`cervical`] does.
pub(super) fn canonical_points(
    landmarks: &[[f64; 2]; LANDMARK_COUNT],
    spacing: Option<PixelSpacing>,
) -> Result<([[f64; 2]; LANDMARK_COUNT], Facing), MeasureError> {
    let (canonical, facing) = to_canonical_frame(landmarks, spacing)?;
    let mut points = [[0.0; 2]; LANDMARK_COUNT];
    for (out, point) in points.iter_mut().zip(&canonical.points) {
        *out = [point.x, point.y];
    }
    Ok((points, facing))
}

/// The landmarks in the canonical frame, the facing decided from every vertebral corner.
fn to_canonical_frame(
    landmarks: &[[f64; 2]; LANDMARK_COUNT],
    spacing: Option<PixelSpacing>,
) -> Result<(Frame<'static>, Facing), MeasureError> {
    canonical_frame(
        landmarks,
        &LANDMARK_NAMES,
        &ANTERIOR_CORNERS,
        &POSTERIOR_CORNERS,
        spacing,
    )
}

/// Signed distance of `point` from the line through `origin` along `direction`, positive on
/// the inferior (+y) side. `direction` must not be zero.
fn signed_distance_below_line(origin: Point, direction: Point, point: Point) -> f64 {
    // Orienting the line anteriorly makes its left-hand normal (−dy, dx) point inferiorly,
    // whichever of the two landmarks happens to be more anterior.
    let direction = if direction.x < 0.0 {
        Point {
            x: -direction.x,
            y: -direction.y,
        }
    } else {
        direction
    };
    let offset = point.minus(origin);
    (direction.x * offset.y - direction.y * offset.x) / direction.length()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOLERANCE: f64 = 1e-9;

    type Landmarks = [[f64; 2]; LANDMARK_COUNT];

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

    fn distance(a: [f64; 2], b: [f64; 2]) -> f64 {
        (a[0] - b[0]).hypot(a[1] - b[1])
    }

    /// What a synthetic spine is built from; every parameter follows from these by construction.
    #[derive(Clone, Copy)]
    struct SpineSpec {
        /// Endplate slope of each of C2..C7 (each body is a rectangle, so both endplates share it).
        vertebra_slopes: [f64; 6],
        t1_slope: f64,
        mcgregor_slope: f64,
        rjd: f64,
        cranial_tilt: f64,
        c2_centroid: [f64; 2],
        c7_ps: [f64; 2],
    }

    const BODY_WIDTH: f64 = 16.0;
    const BODY_HEIGHT: f64 = 12.0;

    /// A rectangle whose superior endplate has `slope`, given its posterior-superior corner.
    fn rectangle(ps: [f64; 2], slope: f64) -> [[f64; 2]; 4] {
        let along = scaled(unit(slope), BODY_WIDTH);
        // The endplate direction turned +90° (y down): from the superior towards the inferior
        // endplate.
        let down = scaled(unit(slope + 90.0), BODY_HEIGHT);
        [add(ps, along), ps, add(ps, down), add(add(ps, down), along)]
    }

    fn centroid(corners: &[[f64; 2]]) -> [f64; 2] {
        let sum = corners.iter().fold([0.0, 0.0], |acc, &p| add(acc, p));
        scaled(sum, 1.0 / corners.len() as f64)
    }

    /// A spine facing right, in canonical orientation, built so that every parameter is known.
    fn build_spine(spec: &SpineSpec) -> Landmarks {
        let mut landmarks = [[0.0; 2]; LANDMARK_COUNT];
        let c2_slope = spec.vertebra_slopes[0];
        let c2_offset = scaled(
            add(
                scaled(unit(c2_slope), BODY_WIDTH),
                scaled(unit(c2_slope + 90.0), BODY_HEIGHT),
            ),
            0.5,
        );
        let c2_ps = sub(spec.c2_centroid, c2_offset);
        for (vertebra, &slope) in spec.vertebra_slopes.iter().enumerate() {
            // C3..C6 are spread evenly between C2 and C7; only their slopes matter.
            let fraction = vertebra as f64 / 5.0;
            let ps = add(c2_ps, scaled(sub(spec.c7_ps, c2_ps), fraction));
            let corners = rectangle(ps, slope);
            landmarks[4 * vertebra..4 * vertebra + 4].copy_from_slice(&corners);
        }
        let c7_pi = landmarks[C7 + PI];
        let t1_ps = add(c7_pi, [1.0, 7.0]);
        let t1_as = add(t1_ps, scaled(unit(spec.t1_slope), BODY_WIDTH + 2.0));
        landmarks[T1_PS] = t1_ps;
        landmarks[T1_AS] = t1_as;

        let t1_midpoint = scaled(add(t1_ps, t1_as), 0.5);
        let tilt = spec.cranial_tilt.to_radians();
        landmarks[DENS] = add(t1_midpoint, scaled([tilt.sin(), -tilt.cos()], 130.0));

        // McGregor line placed `rjd` above the C2 inferior endplate midpoint, measured along
        // the line's inferior-pointing normal.
        let c2_inferior_midpoint = scaled(add(landmarks[C2 + PI], landmarks[C2 + AI]), 0.5);
        let along = unit(spec.mcgregor_slope);
        let normal_down = unit(spec.mcgregor_slope + 90.0);
        let foot = sub(c2_inferior_midpoint, scaled(normal_down, spec.rjd));
        landmarks[OCC] = sub(foot, scaled(along, 25.0));
        landmarks[PNS] = add(foot, scaled(along, 45.0));
        landmarks
    }

    /// The analytic value of every parameter of `build_spine(spec)`, in the spine's own units.
    fn expected_parameters(spec: &SpineSpec, landmarks: &Landmarks) -> [f64; 9] {
        let slopes = spec.vertebra_slopes;
        // CCA from the law of cosines: independent of the atan2 formula under test.
        let pns = landmarks[PNS];
        let occ = landmarks[OCC];
        let c7_centroid = centroid(&landmarks[C7..C7 + 4]);
        let (a, b, c) = (
            distance(pns, occ),
            distance(pns, c7_centroid),
            distance(occ, c7_centroid),
        );
        let cca = ((a * a + b * b - c * c) / (2.0 * a * b))
            .acos()
            .to_degrees();
        [
            slopes[5] - slopes[0],
            slopes[4] - slopes[0],
            slopes[0] - spec.mcgregor_slope,
            slopes[5],
            spec.t1_slope,
            spec.c2_centroid[0] - spec.c7_ps[0],
            spec.rjd,
            spec.cranial_tilt,
            cca,
        ]
    }

    fn lordotic_spec() -> SpineSpec {
        SpineSpec {
            vertebra_slopes: [-12.0, -7.0, -2.0, 4.0, 9.0, 18.0],
            t1_slope: 24.0,
            mcgregor_slope: -27.0,
            rjd: 31.0,
            cranial_tilt: 6.5,
            c2_centroid: [212.0, 140.0],
            c7_ps: [190.0, 300.0],
        }
    }

    fn measure(landmarks: &Landmarks, spacing: Option<PixelSpacing>) -> Measurements {
        cervical(landmarks, spacing).expect("a well-formed spine must measure")
    }

    fn assert_parameters(measurements: &Measurements, expected: &[f64; 9], context: &str) {
        assert_eq!(measurements.parameters.len(), 9);
        for (parameter, (&name, &value)) in measurements
            .parameters
            .iter()
            .zip(PARAMETER_NAMES.iter().zip(expected))
        {
            assert_eq!(parameter.name, name);
            assert_close(parameter.value, value, &format!("{context}: {name}"));
        }
    }

    fn transform(landmarks: &Landmarks, map: impl Fn([f64; 2]) -> [f64; 2]) -> Landmarks {
        let mut out = *landmarks;
        for point in &mut out {
            *point = map(*point);
        }
        out
    }

    /// Rotation by `degrees` about `centre`; with y down, a positive angle turns clockwise on
    /// screen and adds `degrees` to every atan2(dy, dx).
    fn rotate(landmarks: &Landmarks, degrees: f64, centre: [f64; 2]) -> Landmarks {
        let (sin, cos) = degrees.to_radians().sin_cos();
        transform(landmarks, |p| {
            let d = sub(p, centre);
            add(centre, [d[0] * cos - d[1] * sin, d[0] * sin + d[1] * cos])
        })
    }

    #[test]
    fn landmark_names_follow_the_model_order() {
        assert_eq!(LANDMARK_NAMES[0], "C2_as");
        assert_eq!(LANDMARK_NAMES[3], "C2_ai");
        assert_eq!(LANDMARK_NAMES[C7 + PS], "C7_ps");
        assert_eq!(LANDMARK_NAMES[T1_AS], "T1_as");
        assert_eq!(LANDMARK_NAMES[T1_PS], "T1_ps");
        assert_eq!(LANDMARK_NAMES[PNS], "PNS");
        assert_eq!(LANDMARK_NAMES[OCC], "OCC");
        assert_eq!(LANDMARK_NAMES[DENS], "DENS");
        for (index, name) in LANDMARK_NAMES.iter().enumerate().take(24) {
            let vertebra = index / 4 + 2;
            let corner = ["as", "ps", "pi", "ai"][index % 4];
            assert_eq!(*name, format!("C{vertebra}_{corner}"));
        }
        for &index in &ANTERIOR_CORNERS {
            assert!(
                LANDMARK_NAMES[index].ends_with("_as") || LANDMARK_NAMES[index].ends_with("_ai")
            );
        }
        for &index in &POSTERIOR_CORNERS {
            assert!(
                LANDMARK_NAMES[index].ends_with("_ps") || LANDMARK_NAMES[index].ends_with("_pi")
            );
        }
    }

    #[test]
    fn hand_drawn_spine_gives_values_read_off_the_drawing() {
        // Horizontal endplates, the McGregor line along y = 0 from OCC (0,0) to PNS (100,0),
        // C2 spanning x 50..70 and y 40..60, C7 centred under PNS, T1 tilted 45°.
        let mut landmarks = [[0.0; 2]; LANDMARK_COUNT];
        landmarks[..4].copy_from_slice(&[[70.0, 40.0], [50.0, 40.0], [50.0, 60.0], [70.0, 60.0]]);
        for vertebra in 1..6 {
            let top = 60.0 + 30.0 * vertebra as f64;
            let left = 50.0 + 8.0 * vertebra as f64;
            let corners = [
                [left + 20.0, top],
                [left, top],
                [left, top + 20.0],
                [left + 20.0, top + 20.0],
            ];
            landmarks[4 * vertebra..4 * vertebra + 4].copy_from_slice(&corners);
        }
        // C7: x 90..110, y 210..230, centroid (100, 220).
        landmarks[T1_PS] = [90.0, 240.0];
        landmarks[T1_AS] = [100.0, 250.0];
        // T1 midpoint (95, 245); the dens up and anterior at 45°.
        landmarks[DENS] = [195.0, 145.0];
        landmarks[OCC] = [0.0, 0.0];
        landmarks[PNS] = [100.0, 0.0];

        let measurements = measure(&landmarks, None);
        assert_eq!(measurements.facing, Facing::Right);
        assert_eq!(measurements.distance_unit, "px");
        // C2-C7, C2-C6, C0-C2, C7 slope, T1 slope, cSVA = 60 - 90, RJD = 60, CT, CCA.
        assert_parameters(
            &measurements,
            &[0.0, 0.0, 0.0, 0.0, 45.0, -30.0, 60.0, 45.0, 90.0],
            "hand-drawn",
        );
    }

    #[test]
    fn synthetic_spine_matches_its_construction() {
        let spec = lordotic_spec();
        let landmarks = build_spine(&spec);
        let measurements = measure(&landmarks, None);
        assert_eq!(measurements.facing, Facing::Right);
        assert_parameters(
            &measurements,
            &expected_parameters(&spec, &landmarks),
            "synthetic",
        );
        let units: Vec<&str> = measurements.parameters.iter().map(|p| p.unit).collect();
        assert_eq!(
            units,
            ["deg", "deg", "deg", "deg", "deg", "px", "px", "deg", "deg"]
        );
    }

    #[test]
    fn parameter_names_and_get_agree() {
        let measurements = measure(&build_spine(&lordotic_spec()), None);
        let names: Vec<&str> = measurements.parameters.iter().map(|p| p.name).collect();
        assert_eq!(names, PARAMETER_NAMES);
        for parameter in &measurements.parameters {
            assert_eq!(measurements.get(parameter.name), Some(parameter.value));
        }
        assert_eq!(measurements.get("C1-C2"), None);
    }

    #[test]
    fn rotation_shifts_slopes_but_not_cobb_angles() {
        let spec = lordotic_spec();
        let landmarks = build_spine(&spec);
        let base = expected_parameters(&spec, &landmarks);
        for degrees in [-25.0, -7.5, 3.0, 20.0] {
            let centre = [150.0, 220.0];
            let rotated = rotate(&landmarks, degrees, centre);
            let c2_centroid = centroid(&rotated[C2..C2 + 4]);
            let mut expected = base;
            expected[3] += degrees; // C7 slope
            expected[4] += degrees; // T1 slope
            expected[5] = c2_centroid[0] - rotated[C7 + PS][0]; // cSVA is horizontal
            expected[7] += degrees; // CT is measured from the image vertical
            assert_parameters(
                &measure(&rotated, None),
                &expected,
                &format!("rotated {degrees}°"),
            );
        }
    }

    #[test]
    fn mirrored_spine_facing_left_measures_the_same() {
        let spec = lordotic_spec();
        let landmarks = build_spine(&spec);
        let expected = expected_parameters(&spec, &landmarks);
        let mirrored = transform(&landmarks, |p| [1000.0 - p[0], p[1]]);
        let measurements = measure(&mirrored, None);
        assert_eq!(measurements.facing, Facing::Left);
        assert_parameters(&measurements, &expected, "mirrored");

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
    fn scaling_keeps_angles_and_scales_distances() {
        let spec = lordotic_spec();
        let landmarks = build_spine(&spec);
        let base = expected_parameters(&spec, &landmarks);
        for factor in [0.25, 3.0, 17.5] {
            let grown = transform(&landmarks, |p| scaled(p, factor));
            let mut expected = base;
            expected[5] *= factor;
            expected[6] *= factor;
            assert_parameters(
                &measure(&grown, None),
                &expected,
                &format!("scaled ×{factor}"),
            );
        }
    }

    #[test]
    fn translation_changes_nothing() {
        let spec = lordotic_spec();
        let landmarks = build_spine(&spec);
        let expected = expected_parameters(&spec, &landmarks);
        let moved = transform(&landmarks, |p| add(p, [-431.5, 1210.25]));
        assert_parameters(&measure(&moved, None), &expected, "translated");
    }

    #[test]
    fn anisotropic_spacing_gives_true_millimetre_geometry() {
        // Build the spine in millimetres, then express it in non-square pixels.
        let spec = lordotic_spec();
        let in_mm = build_spine(&spec);
        let expected = expected_parameters(&spec, &in_mm);
        let spacing = PixelSpacing {
            row_mm: 0.2,
            column_mm: 0.125,
        };
        let in_pixels = transform(&in_mm, |p| {
            [p[0] / spacing.column_mm, p[1] / spacing.row_mm]
        });
        let measurements = measure(&in_pixels, Some(spacing));
        assert_eq!(measurements.distance_unit, "mm");
        assert_parameters(&measurements, &expected, "anisotropic");
        let units: Vec<&str> = measurements.parameters.iter().map(|p| p.unit).collect();
        assert_eq!(
            units,
            ["deg", "deg", "deg", "deg", "deg", "mm", "mm", "deg", "deg"]
        );

        // Ignoring the spacing would distort the angles: the conversion really happens.
        let naive = measure(&in_pixels, None);
        assert!((naive.get("C2-C7").unwrap() - expected[0]).abs() > 0.5);
    }

    #[test]
    fn without_spacing_distances_are_in_pixels() {
        let spec = lordotic_spec();
        let landmarks = build_spine(&spec);
        let measurements = measure(&landmarks, None);
        assert_eq!(measurements.distance_unit, "px");
        for parameter in &measurements.parameters {
            let expected_unit = match parameter.name {
                "cSVA" | "RJD" => "px",
                _ => "deg",
            };
            assert_eq!(parameter.unit, expected_unit, "{}", parameter.name);
        }
        let with_spacing = measure(
            &landmarks,
            Some(PixelSpacing {
                row_mm: 0.5,
                column_mm: 0.5,
            }),
        );
        assert_close(
            with_spacing.get("cSVA").unwrap(),
            0.5 * measurements.get("cSVA").unwrap(),
            "cSVA in mm",
        );
    }

    /// Vertebrae stacked along a circular arc with radial endplates, each body spanning 4° of
    /// arc and each disc 2°, C2's superior endplate at polar angle −15°. With the centre of
    /// curvature behind the spine the curve is convex anteriorly (lordosis); in front of it,
    /// concave anteriorly (kyphosis). Either way the inferior endplates of C2 and C7 are 30°
    /// apart, so C2-C7 is +30° or −30°.
    fn arc_spine(centre_behind: bool) -> Landmarks {
        let radius = 300.0;
        let depth = 16.0;
        // Polar angle θ grows downwards. The posterior wall lies at `radius` from the centre
        // when it is behind the spine, at `radius + depth` when it is in front.
        let corner = |anterior: bool, polar: f64| -> [f64; 2] {
            let (sin, cos) = polar.to_radians().sin_cos();
            if centre_behind {
                let r = if anterior { radius + depth } else { radius };
                [r * cos, r * sin]
            } else {
                let r = if anterior { radius } else { radius + depth };
                [-r * cos, r * sin]
            }
        };
        let mut landmarks = [[0.0; 2]; LANDMARK_COUNT];
        for vertebra in 0..6 {
            let superior = -15.0 + 6.0 * vertebra as f64;
            let inferior = superior + 4.0;
            landmarks[4 * vertebra + AS] = corner(true, superior);
            landmarks[4 * vertebra + PS] = corner(false, superior);
            landmarks[4 * vertebra + PI] = corner(false, inferior);
            landmarks[4 * vertebra + AI] = corner(true, inferior);
        }
        landmarks[T1_AS] = corner(true, 21.0);
        landmarks[T1_PS] = corner(false, 21.0);
        let c2_top = landmarks[C2 + PS];
        landmarks[DENS] = add(c2_top, [4.0, -15.0]);
        landmarks[OCC] = add(c2_top, [-20.0, -25.0]);
        landmarks[PNS] = add(c2_top, [40.0, -35.0]);
        landmarks
    }

    #[test]
    fn lordosis_is_positive_and_kyphosis_negative() {
        let lordotic = measure(&arc_spine(true), None);
        assert_eq!(lordotic.facing, Facing::Right);
        assert_close(lordotic.get("C2-C7").unwrap(), 30.0, "lordotic C2-C7");
        assert_close(lordotic.get("C2-C6").unwrap(), 24.0, "lordotic C2-C6");

        let kyphotic = measure(&arc_spine(false), None);
        assert_eq!(kyphotic.facing, Facing::Right);
        assert_close(kyphotic.get("C2-C7").unwrap(), -30.0, "kyphotic C2-C7");
        assert_close(kyphotic.get("C2-C6").unwrap(), -24.0, "kyphotic C2-C6");

        // The same holds when the patient faces left.
        for centre_behind in [true, false] {
            let spine = arc_spine(centre_behind);
            let mirrored = transform(&spine, |p| [-p[0], p[1]]);
            let measurements = measure(&mirrored, None);
            assert_eq!(measurements.facing, Facing::Left);
            assert_close(
                measurements.get("C2-C7").unwrap(),
                measure(&spine, None).get("C2-C7").unwrap(),
                "mirrored arc",
            );
        }
    }

    #[test]
    fn signs_follow_the_documented_conventions() {
        let mut spec = lordotic_spec();
        spec.rjd = -4.0;
        spec.cranial_tilt = -3.0;
        spec.c7_ps = [spec.c2_centroid[0] + 12.0, spec.c7_ps[1]];
        let measurements = measure(&build_spine(&spec), None);
        assert_close(measurements.get("RJD").unwrap(), -4.0, "RJD above the line");
        assert_close(measurements.get("CT").unwrap(), -3.0, "CT dens posterior");
        assert_close(
            measurements.get("cSVA").unwrap(),
            -12.0,
            "cSVA C2 posterior",
        );
    }

    #[test]
    fn rjd_sign_does_not_depend_on_landmark_order_along_the_line() {
        // PNS posterior of OCC is anatomically wrong, but "below" must still mean +y.
        let mut landmarks = build_spine(&lordotic_spec());
        landmarks.swap(PNS, OCC);
        assert_close(
            measure(&landmarks, None).get("RJD").unwrap(),
            31.0,
            "RJD with PNS and OCC swapped",
        );
    }

    #[test]
    fn angle_differences_wrap_into_the_half_open_range() {
        assert_close(normalize_degrees(190.0), -170.0, "190");
        assert_close(normalize_degrees(-190.0), 170.0, "-190");
        assert_close(normalize_degrees(180.0), 180.0, "180");
        assert_close(normalize_degrees(-180.0), 180.0, "-180");
        assert_close(normalize_degrees(540.0), 180.0, "540");
        assert_close(normalize_degrees(-0.5), -0.5, "-0.5");

        // A grotesque C2 (anterior end 95° up) and C7 (95° down): the raw difference of 190°
        // must be reported as −170°. The other vertebrae keep the facing unambiguous.
        let mut spec = lordotic_spec();
        spec.vertebra_slopes = [-95.0, -40.0, -10.0, 10.0, 40.0, 95.0];
        let measurements = measure(&build_spine(&spec), None);
        assert_eq!(measurements.facing, Facing::Right);
        assert_close(
            measurements.get("C2-C7").unwrap(),
            -170.0,
            "C2-C7 across the seam",
        );
        assert_close(measurements.get("C2-C6").unwrap(), 135.0, "C2-C6");
    }

    #[test]
    fn non_finite_landmarks_are_named() {
        let mut landmarks = build_spine(&lordotic_spec());
        landmarks[5][0] = f64::NAN;
        landmarks[DENS][1] = f64::INFINITY;
        let error = cervical(&landmarks, None).unwrap_err();
        assert_eq!(
            error,
            MeasureError::NonFiniteLandmark {
                landmarks: vec!["C3_ps", "DENS"]
            }
        );
        assert!(error.to_string().contains("C3_ps, DENS"));
    }

    #[test]
    fn coordinates_too_large_to_compute_with_are_refused() {
        let mut landmarks = build_spine(&lordotic_spec());
        landmarks[OCC][0] = f64::MAX;
        let expected = MeasureError::LandmarkOutOfRange {
            landmarks: vec!["OCC"],
        };
        assert_eq!(cervical(&landmarks, None).unwrap_err(), expected);

        // Finite in pixels, infinite once the spacing is applied.
        let mut landmarks = build_spine(&lordotic_spec());
        landmarks[PNS][1] = 1e300;
        let spacing = Some(PixelSpacing {
            row_mm: 1e10,
            column_mm: 0.1,
        });
        assert!(matches!(
            cervical(&landmarks, spacing).unwrap_err(),
            MeasureError::LandmarkOutOfRange { .. }
        ));
    }

    #[test]
    fn zero_length_endplates_are_named() {
        let mut landmarks = build_spine(&lordotic_spec());
        landmarks[C2 + AI] = landmarks[C2 + PI];
        assert_eq!(
            cervical(&landmarks, None).unwrap_err(),
            MeasureError::Degenerate {
                what: "zero-length C2 inferior endplate",
                landmarks: vec!["C2_pi", "C2_ai"],
            }
        );

        let mut landmarks = build_spine(&lordotic_spec());
        landmarks[T1_AS] = landmarks[T1_PS];
        let error = cervical(&landmarks, None).unwrap_err();
        assert!(error.to_string().contains("T1_ps, T1_as"), "{error}");

        let mut landmarks = build_spine(&lordotic_spec());
        landmarks[PNS] = landmarks[OCC];
        let error = cervical(&landmarks, None).unwrap_err();
        assert!(error.to_string().contains("McGregor"), "{error}");
    }

    #[test]
    fn other_degenerate_configurations_are_refused() {
        let mut landmarks = build_spine(&lordotic_spec());
        let t1_midpoint = scaled(add(landmarks[T1_PS], landmarks[T1_AS]), 0.5);
        landmarks[DENS] = t1_midpoint;
        let error = cervical(&landmarks, None).unwrap_err();
        assert!(matches!(error, MeasureError::Degenerate { .. }), "{error}");
        assert!(error.to_string().contains("DENS"));

        let mut landmarks = build_spine(&lordotic_spec());
        landmarks[PNS] = centroid(&landmarks[C7..C7 + 4]);
        let error = cervical(&landmarks, None).unwrap_err();
        assert!(error.to_string().contains("PNS"), "{error}");

        let landmarks = [[12.0, 34.0]; LANDMARK_COUNT];
        assert!(matches!(
            cervical(&landmarks, None).unwrap_err(),
            MeasureError::Degenerate { .. }
        ));
    }

    #[test]
    fn facing_that_cannot_be_decided_is_an_error() {
        let landmarks = build_spine(&lordotic_spec());
        // Put every anterior corner on the mean x of the posterior corners.
        let posterior_mean = POSTERIOR_CORNERS
            .iter()
            .map(|&index| landmarks[index][0])
            .sum::<f64>()
            / POSTERIOR_CORNERS.len() as f64;
        let mut flat = landmarks;
        for &index in &ANTERIOR_CORNERS {
            flat[index][0] = posterior_mean;
        }
        assert_eq!(
            cervical(&flat, None).unwrap_err(),
            MeasureError::AmbiguousFacing
        );
    }

    #[test]
    fn invalid_spacing_is_refused() {
        let landmarks = build_spine(&lordotic_spec());
        for (row_mm, column_mm) in [
            (0.0, 0.1),
            (0.1, -0.1),
            (f64::NAN, 0.1),
            (0.1, f64::INFINITY),
        ] {
            let error = cervical(&landmarks, Some(PixelSpacing { row_mm, column_mm })).unwrap_err();
            assert!(
                matches!(error, MeasureError::InvalidSpacing { .. }),
                "{error}"
            );
        }
    }

    #[test]
    fn measurements_serialize_with_the_documented_spellings() {
        let measurements = measure(&build_spine(&lordotic_spec()), None);
        let json = serde_json::to_value(&measurements).unwrap();
        assert_eq!(json["facing"], "right");
        assert_eq!(json["distance_unit"], "px");
        assert_eq!(json["parameters"][0]["name"], "C2-C7");
        assert_eq!(json["parameters"][0]["unit"], "deg");
        assert!(json["parameters"][8]["convention"].is_string());
        assert_eq!(serde_json::to_value(Facing::Left).unwrap(), "left");
        let spacing = PixelSpacing {
            row_mm: 0.2,
            column_mm: 0.1,
        };
        assert_eq!(
            serde_json::to_value(spacing).unwrap(),
            serde_json::json!({"row_mm": 0.2, "column_mm": 0.1})
        );
    }
}

//! What the parameters of every model family share: the pixel spacing, the result types, and the
//! canonical frame every angle and distance is measured in.
//!
//! The canonical frame: landmarks in millimetres when a pixel spacing is known (`x * column_mm`,
//! `y * row_mm`, so that anisotropic pixels give true angles; in pixels otherwise), image y down
//! ("superior" is −y), and x mirrored when the patient faces left, so that anterior is always +x.
//! Each family says which anterior/posterior landmark pairs decide the facing; all of them vote at
//! once, so one misplaced corner cannot flip it.

use serde::Serialize;

/// Below this fraction of the landmarks' overall extent, a length counts as zero: landmarks
/// that coincide up to floating-point noise have no direction.
const DEGENERATE_FRACTION: f64 = 1e-9;

/// Coordinates (in mm or px, after scaling) beyond this are refused: far outside any image,
/// and large enough that products of coordinate differences could overflow.
pub const MAX_ABS_COORDINATE: f64 = 1e12;

/// Landmarks spread over less than this (in mm or px) are one point, not a spine; below it
/// products of coordinate differences could underflow to zero and fake a direction.
const MIN_EXTENT: f64 = 1e-6;

/// Physical size of one pixel, in DICOM order.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PixelSpacing {
    /// Vertical distance between the centres of adjacent rows, in millimetres.
    pub row_mm: f64,
    /// Horizontal distance between the centres of adjacent columns, in millimetres.
    pub column_mm: f64,
}

/// The direction the patient faces in the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Facing {
    Left,
    Right,
}

/// One measured parameter.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Parameter {
    pub name: &'static str,
    pub value: f64,
    /// `"deg"`, `"mm"`, `"px"` for a distance when no pixel spacing was known, or `"ratio"`.
    pub unit: &'static str,
    /// How the value is defined and which sign means what.
    pub convention: &'static str,
}

/// What a parameter's value is measured in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Degrees,
    /// Millimetres with a pixel spacing, pixels without.
    Distance,
    /// A quotient of two distances: the same with or without a spacing.
    Ratio,
}

impl Unit {
    /// The unit's spelling in a [`Parameter`], given the distance unit (`"mm"` or `"px"`).
    pub fn symbol(self, distance_unit: &'static str) -> &'static str {
        match self {
            Unit::Degrees => "deg",
            Unit::Distance => distance_unit,
            Unit::Ratio => "ratio",
        }
    }
}

/// What a parameter is: its name, unit, formula with sign convention, and the landmarks (indices
/// into the family's landmark table) its value is computed from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ParameterDefinition {
    pub name: &'static str,
    pub unit: Unit,
    pub convention: &'static str,
    pub landmarks: &'static [usize],
}

/// The parameters of one radiograph.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Measurements {
    pub facing: Facing,
    /// `"mm"` or `"px"`: the unit of every distance parameter.
    pub distance_unit: &'static str,
    /// In the order of the family's `PARAMETER_NAMES`; a parameter without a value (the
    /// family's documentation says when) is left out.
    pub parameters: Vec<Parameter>,
}

impl Measurements {
    /// The value of the parameter called `name`, if there is one.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.parameters
            .iter()
            .find(|parameter| parameter.name == name)
            .map(|parameter| parameter.value)
    }
}

/// Why the parameters could not be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MeasureError {
    #[error("landmark coordinates are not finite: {}", .landmarks.join(", "))]
    NonFiniteLandmark { landmarks: Vec<&'static str> },
    #[error(
        "invalid pixel spacing (row {row_mm} mm, column {column_mm} mm): both must be finite and positive"
    )]
    InvalidSpacing { row_mm: f64, column_mm: f64 },
    /// Landmarks that coincide where a direction is needed: a zero-length endplate or line.
    #[error("degenerate geometry, {what}: {}", .landmarks.join(", "))]
    Degenerate {
        what: &'static str,
        landmarks: Vec<&'static str>,
    },
    #[error(
        "cannot tell which way the patient faces: the anterior and posterior vertebral corners have the same mean x"
    )]
    AmbiguousFacing,
    #[error(
        "landmark coordinates out of range (more than {MAX_ABS_COORDINATE:e} from the origin after scaling): {}",
        .landmarks.join(", ")
    )]
    LandmarkOutOfRange { landmarks: Vec<&'static str> },
    /// A safety net: the range checks should make it unreachable, but no NaN may ever reach
    /// a report.
    #[error("{parameter} did not come out as a finite number")]
    NonFiniteResult { parameter: &'static str },
}

/// A point in the canonical frame: anterior is +x, inferior is +y.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Point {
    pub x: f64,
    pub y: f64,
}

impl Point {
    pub fn minus(self, other: Point) -> Point {
        Point {
            x: self.x - other.x,
            y: self.y - other.y,
        }
    }

    pub fn midpoint(self, other: Point) -> Point {
        Point {
            x: 0.5 * (self.x + other.x),
            y: 0.5 * (self.y + other.y),
        }
    }

    pub fn length(self) -> f64 {
        self.x.hypot(self.y)
    }
}

/// The landmarks in the canonical frame, plus what is needed to judge degeneracy.
pub(super) struct Frame<'n> {
    pub points: Vec<Point>,
    /// Lengths at or below this are treated as zero.
    pub zero_length: f64,
    names: &'n [&'static str],
}

impl Frame<'_> {
    pub fn point(&self, index: usize) -> Point {
        self.points[index]
    }

    pub fn name(&self, index: usize) -> &'static str {
        self.names[index]
    }

    /// The vector from landmark `from` to landmark `to`, refused when it has no direction.
    pub fn direction(
        &self,
        from: usize,
        to: usize,
        what: &'static str,
    ) -> Result<Point, MeasureError> {
        self.vector(
            self.point(from),
            self.point(to),
            what,
            &[self.name(from), self.name(to)],
        )
    }

    /// `to − from` for derived points (midpoints, centroids), refused when it has no direction;
    /// `landmarks` names what the points are made of.
    pub fn vector(
        &self,
        from: Point,
        to: Point,
        what: &'static str,
        landmarks: &[&'static str],
    ) -> Result<Point, MeasureError> {
        let vector = to.minus(from);
        if vector.length() <= self.zero_length {
            return Err(MeasureError::Degenerate {
                what,
                landmarks: landmarks.to_vec(),
            });
        }
        Ok(vector)
    }

    /// Slope in degrees of the segment from posterior landmark to anterior landmark: positive
    /// when the anterior end is lower.
    pub fn slope(
        &self,
        posterior: usize,
        anterior: usize,
        what: &'static str,
    ) -> Result<f64, MeasureError> {
        let vector = self.direction(posterior, anterior, what)?;
        Ok(vector.y.atan2(vector.x).to_degrees())
    }

    pub fn centroid(&self, indices: &[usize]) -> Point {
        let count = indices.len() as f64;
        Point {
            x: indices.iter().map(|&i| self.points[i].x).sum::<f64>() / count,
            y: indices.iter().map(|&i| self.points[i].y).sum::<f64>() / count,
        }
    }
}

/// The angle in degrees of `vector` from the upward vertical (−y), positive when it points
/// anterior (+x): the SPECs' tilt(P→Q) for `vector` = Q − P.
pub(super) fn tilt_from_vertical(vector: Point) -> f64 {
    vector.x.atan2(-vector.y).to_degrees()
}

/// Validates the landmarks (original-image pixels, named by `names`), applies the spacing, and
/// mirrors x so that anterior is +x. The facing is the sign of the mean x of the `anterior`
/// landmarks minus that of the `posterior` ones (equal counts: the sign of the summed
/// differences of the pairs).
pub(super) fn canonical_frame<'n>(
    landmarks: &[[f64; 2]],
    names: &'n [&'static str],
    anterior: &[usize],
    posterior: &[usize],
    spacing: Option<PixelSpacing>,
) -> Result<(Frame<'n>, Facing), MeasureError> {
    debug_assert_eq!(landmarks.len(), names.len());
    let non_finite: Vec<&'static str> = landmarks
        .iter()
        .zip(names)
        .filter(|(point, _)| !point[0].is_finite() || !point[1].is_finite())
        .map(|(_, name)| *name)
        .collect();
    if !non_finite.is_empty() {
        return Err(MeasureError::NonFiniteLandmark {
            landmarks: non_finite,
        });
    }

    let (x_scale, y_scale) = match spacing {
        Some(spacing) => {
            let valid = |value: f64| value.is_finite() && value > 0.0;
            if !valid(spacing.row_mm) || !valid(spacing.column_mm) {
                return Err(MeasureError::InvalidSpacing {
                    row_mm: spacing.row_mm,
                    column_mm: spacing.column_mm,
                });
            }
            (spacing.column_mm, spacing.row_mm)
        }
        None => (1.0, 1.0),
    };

    let mut points: Vec<Point> = landmarks
        .iter()
        .map(|landmark| Point {
            x: landmark[0] * x_scale,
            y: landmark[1] * y_scale,
        })
        .collect();
    // Also catches coordinates that the spacing pushed to infinity.
    let out_of_range: Vec<&'static str> = points
        .iter()
        .zip(names)
        .filter(|(point, _)| {
            !(point.x.abs() <= MAX_ABS_COORDINATE && point.y.abs() <= MAX_ABS_COORDINATE)
        })
        .map(|(_, name)| *name)
        .collect();
    if !out_of_range.is_empty() {
        return Err(MeasureError::LandmarkOutOfRange {
            landmarks: out_of_range,
        });
    }

    let extent = {
        let (mut min_x, mut max_x) = (f64::INFINITY, f64::NEG_INFINITY);
        let (mut min_y, mut max_y) = (f64::INFINITY, f64::NEG_INFINITY);
        for point in &points {
            min_x = min_x.min(point.x);
            max_x = max_x.max(point.x);
            min_y = min_y.min(point.y);
            max_y = max_y.max(point.y);
        }
        (max_x - min_x).max(max_y - min_y)
    };
    // No landmarks at all has an extent of −∞: one point, nothing to measure.
    if extent < MIN_EXTENT {
        return Err(MeasureError::Degenerate {
            what: "all landmarks coincide",
            landmarks: names.to_vec(),
        });
    }
    let zero_length = extent * DEGENERATE_FRACTION;

    let mean_x = |indices: &[usize]| {
        indices.iter().map(|&index| points[index].x).sum::<f64>() / indices.len() as f64
    };
    let anterior_minus_posterior = mean_x(anterior) - mean_x(posterior);
    let facing = if anterior_minus_posterior > zero_length {
        Facing::Right
    } else if anterior_minus_posterior < -zero_length {
        Facing::Left
    } else {
        return Err(MeasureError::AmbiguousFacing);
    };
    if facing == Facing::Left {
        for point in &mut points {
            point.x = -point.x;
        }
    }

    Ok((
        Frame {
            points,
            zero_length,
            names,
        },
        facing,
    ))
}

/// Maps an angle in degrees to (−180°, 180°] (the cervical SPEC's range).
pub(super) fn normalize_degrees(angle: f64) -> f64 {
    let wrapped = (angle + 180.0).rem_euclid(360.0) - 180.0;
    if wrapped <= -180.0 {
        wrapped + 360.0
    } else {
        wrapped
    }
}

/// Maps an angle in degrees to [−180°, 180°) (the whole-spine and lumbar SPECs' range).
pub(super) fn wrap_degrees(angle: f64) -> f64 {
    let wrapped = (angle + 180.0).rem_euclid(360.0) - 180.0;
    // rem_euclid can round up to the modulus itself for tiny negative inputs.
    if wrapped >= 180.0 {
        wrapped - 360.0
    } else {
        wrapped
    }
}

/// The angle between two non-zero vectors, in [0°, 180°].
pub(super) fn unsigned_angle_between(a: Point, b: Point) -> f64 {
    // atan2 of cross and dot stays accurate near 0° and 180°, where acos loses precision.
    let cross = a.x * b.y - a.y * b.x;
    let dot = a.x * b.x + a.y * b.y;
    cross.abs().atan2(dot).to_degrees()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_wraps_keep_their_own_end_of_the_half_turn() {
        assert_eq!(normalize_degrees(-180.0), 180.0);
        assert_eq!(normalize_degrees(180.0), 180.0);
        assert_eq!(wrap_degrees(180.0), -180.0);
        assert_eq!(wrap_degrees(-180.0), -180.0);
        assert_eq!(wrap_degrees(540.0), -180.0);
        assert_eq!(wrap_degrees(190.0), -170.0);
        assert_eq!(wrap_degrees(-190.0), 170.0);
        assert_eq!(wrap_degrees(-0.5), -0.5);
        assert!(wrap_degrees(-1e-300) < 180.0);
    }

    #[test]
    fn tilt_is_zero_straight_up_and_positive_towards_anterior() {
        assert_eq!(tilt_from_vertical(Point { x: 0.0, y: -1.0 }), 0.0);
        assert!((tilt_from_vertical(Point { x: 1.0, y: -1.0 }) - 45.0).abs() < 1e-12);
        assert!((tilt_from_vertical(Point { x: -1.0, y: 0.0 }) + 90.0).abs() < 1e-12);
    }
}

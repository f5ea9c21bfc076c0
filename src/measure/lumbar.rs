//! The three lumbar parameters of the 2-step model, computed from the corners of the levels it
//! found present: the "Parameters (3)" contract of `SPEC-lumbar.md`, in pure Rust with no GPU.
//!
//! Everything is measured in the canonical frame of [`super::frame`] (mm with a spacing, anterior
//! +x, inferior +y). The facing is the sign of Σ(`as`.x − `ps`.x + `ai`.x − `pi`.x) over the
//! present L1–L5 plus `S1_as`.x − `S1_ps`.x; levels above L1 do not vote. With
//! `slope(P→A) = atan2(A.y − P.y, A.x − P.x)`:
//! - L1–L5 lordosis = slope(`L5_pi→L5_ai`) − slope(`L1_ps→L1_as`), + lordosis;
//! - L1–S1 lordosis = slope(`S1_ps→S1_as`) − slope(`L1_ps→L1_as`), + lordosis;
//! - SS = slope(`S1_ps→S1_as`) against the image rows, + anterior end lower;
//!
//! each wrapped to [−180°, 180°). A parameter whose level is absent has no value; the others
//! keep theirs. Beside each signed value is the paper's unsigned angle between the two lines,
//! min(|a| mod 180, 180 − |a| mod 180), in [0°, 90°].
//!
//! Only the landmarks the parameters or the facing read are validated: a non-finite corner of a
//! thoracic level cannot take the lumbar values with it. Landmarks that are read but unusable
//! (not finite, a zero-length endplate) refuse all three values, as for the cervical parameters:
//! an absent level is a fact about the image, a degenerate one a fault of the model.

use serde::Serialize;

use super::frame::{canonical_frame, wrap_degrees, Facing, MeasureError, PixelSpacing};
pub use crate::anatomy::lumbar::*;

/// Parameter names, in the order [`lumbar`] reports them.
pub const PARAMETER_NAMES: [&str; 3] = ["L1-L5", "L1-S1", "SS"];

/// The corners of one level (`as`, `ps`, `pi`, `ai`) in original-image pixels, or `None` when
/// the identification network found the level absent.
pub type Levels = [Option<[[f64; 2]; CORNERS_PER_LEVEL]>; LEVEL_COUNT];

/// What each parameter reads.
struct Definition {
    name: &'static str,
    convention: &'static str,
    /// Landmark indices (4v + c) the value is computed from.
    landmarks: &'static [usize],
}

const L1_SUPERIOR: [usize; 2] = [landmark(L1, PS), landmark(L1, AS)];
const L5_INFERIOR: [usize; 2] = [landmark(L5, PI), landmark(L5, AI)];
const S1_SUPERIOR: [usize; 2] = [landmark(S1, PS), landmark(S1, AS)];

const DEFINITIONS: [Definition; 3] = [
    Definition {
        name: "L1-L5",
        convention: "slope(L5_pi->L5_ai) - slope(L1_ps->L1_as); + lordosis",
        landmarks: &[
            L1_SUPERIOR[0],
            L1_SUPERIOR[1],
            L5_INFERIOR[0],
            L5_INFERIOR[1],
        ],
    },
    Definition {
        name: "L1-S1",
        convention: "slope(S1_ps->S1_as) - slope(L1_ps->L1_as); + lordosis",
        landmarks: &[
            L1_SUPERIOR[0],
            L1_SUPERIOR[1],
            S1_SUPERIOR[0],
            S1_SUPERIOR[1],
        ],
    },
    Definition {
        name: "SS",
        convention: "slope(S1_ps->S1_as) from the image rows; + anterior end lower",
        landmarks: &S1_SUPERIOR,
    },
];

/// The landmarks (4v + c) the parameter called `name` is computed from.
pub fn parameter_landmarks(name: &str) -> &'static [usize] {
    DEFINITIONS
        .iter()
        .find(|definition| definition.name == name)
        .map_or(&[], |definition| definition.landmarks)
}

/// One lumbar parameter, in degrees.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LumbarParameter {
    pub name: &'static str,
    /// Signed as the SPEC says; `None` when a level it reads is absent.
    pub value: Option<f64>,
    /// The paper's unsigned angle between the two lines, in [0°, 90°].
    pub unsigned_value: Option<f64>,
    pub unit: &'static str,
    pub convention: &'static str,
    /// The absent levels that leave the value empty.
    pub absent_levels: Vec<&'static str>,
}

/// The three parameters of one radiograph.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LumbarMeasurements {
    /// `None` when neither L1–L5 nor S1 is present: nothing to measure, nothing to vote.
    pub facing: Option<Facing>,
    /// In the order of [`PARAMETER_NAMES`], every one present, with or without a value.
    pub parameters: Vec<LumbarParameter>,
}

impl LumbarMeasurements {
    /// The signed value of the parameter called `name`, if it has one.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.parameter(name).and_then(|parameter| parameter.value)
    }

    /// The paper's unsigned value of the parameter called `name`, if it has one.
    pub fn get_unsigned(&self, name: &str) -> Option<f64> {
        self.parameter(name)
            .and_then(|parameter| parameter.unsigned_value)
    }

    pub fn parameter(&self, name: &str) -> Option<&LumbarParameter> {
        self.parameters
            .iter()
            .find(|parameter| parameter.name == name)
    }
}

/// The paper's angle between two lines for a signed difference of slopes `angle` (degrees):
/// min(|a| mod 180, 180 − |a| mod 180).
pub fn unsigned_line_angle(angle: f64) -> f64 {
    let folded = angle.abs() % 180.0;
    folded.min(180.0 - folded)
}

/// The levels whose corners the parameters and the facing read: L1–L5 and S1.
const READ_LEVELS: [usize; 6] = [L1, L1 + 1, L1 + 2, L1 + 3, L5, S1];

/// Computes the three lumbar parameters from the corners of the present levels.
///
/// Corners are in original-image pixels, x to the right and y down. With a `spacing`, angles are
/// true angles even for non-square pixels; without one, pixels are taken as square.
pub fn lumbar(
    levels: &Levels,
    spacing: Option<PixelSpacing>,
) -> Result<LumbarMeasurements, MeasureError> {
    // The landmarks read, compacted: S1_pi and S1_ai enter nothing.
    let mut indices = Vec::new();
    for level in READ_LEVELS {
        if levels[level].is_some() {
            let corners: &[usize] = if level == S1 {
                &[AS, PS]
            } else {
                &[AS, PS, PI, AI]
            };
            indices.extend(corners.iter().map(|&corner| landmark(level, corner)));
        }
    }
    if indices.is_empty() {
        return Ok(LumbarMeasurements {
            facing: None,
            parameters: DEFINITIONS
                .iter()
                .map(|definition| LumbarParameter {
                    name: definition.name,
                    value: None,
                    unsigned_value: None,
                    unit: "deg",
                    convention: definition.convention,
                    absent_levels: absent_levels_of(definition, levels),
                })
                .collect(),
        });
    }
    let points: Vec<[f64; 2]> = indices
        .iter()
        .map(|&index| levels[index / CORNERS_PER_LEVEL].unwrap()[index % CORNERS_PER_LEVEL])
        .collect();
    let names: Vec<&'static str> = indices.iter().map(|&index| LANDMARK_NAMES[index]).collect();
    let position = |index: usize| indices.iter().position(|&i| i == index);
    let mut anterior = Vec::new();
    let mut posterior = Vec::new();
    for (front, back) in [(AS, PS), (AI, PI)] {
        for level in READ_LEVELS {
            if level == S1 && front == AI {
                continue;
            }
            if let (Some(a), Some(p)) = (
                position(landmark(level, front)),
                position(landmark(level, back)),
            ) {
                anterior.push(a);
                posterior.push(p);
            }
        }
    }
    let (frame, facing) = canonical_frame(&points, &names, &anterior, &posterior, spacing)?;
    let slope = |posterior: usize, anterior: usize, what: &'static str| match (
        position(posterior),
        position(anterior),
    ) {
        (Some(p), Some(a)) => frame.slope(p, a, what).map(Some),
        _ => Ok(None),
    };
    let l1 = slope(
        landmark(L1, PS),
        landmark(L1, AS),
        "zero-length L1 superior endplate",
    )?;
    let l5 = slope(
        landmark(L5, PI),
        landmark(L5, AI),
        "zero-length L5 inferior endplate",
    )?;
    let s1 = slope(
        landmark(S1, PS),
        landmark(S1, AS),
        "zero-length S1 superior endplate",
    )?;
    let difference = |lower: Option<f64>, upper: Option<f64>| Some(wrap_degrees(lower? - upper?));
    let values = [difference(l5, l1), difference(s1, l1), s1.map(wrap_degrees)];

    let mut parameters = Vec::with_capacity(values.len());
    for (definition, value) in DEFINITIONS.iter().zip(values) {
        if value.is_some_and(|value| !value.is_finite()) {
            return Err(MeasureError::NonFiniteResult {
                parameter: definition.name,
            });
        }
        parameters.push(LumbarParameter {
            name: definition.name,
            value,
            unsigned_value: value.map(unsigned_line_angle),
            unit: "deg",
            convention: definition.convention,
            absent_levels: absent_levels_of(definition, levels),
        });
    }
    Ok(LumbarMeasurements {
        facing: Some(facing),
        parameters,
    })
}

fn absent_levels_of(definition: &Definition, levels: &Levels) -> Vec<&'static str> {
    let mut absent: Vec<&'static str> = definition
        .landmarks
        .iter()
        .map(|&index| index / CORNERS_PER_LEVEL)
        .filter(|&level| levels[level].is_none())
        .map(|level| LEVEL_NAMES[level])
        .collect();
    absent.dedup();
    absent
}

/// Every present level's corners in the canonical frame of `facing` (mm with a spacing, anterior
/// +x), unvalidated: the quality checks judge what is not finite.
pub(super) fn canonical_levels(
    levels: &Levels,
    spacing: Option<PixelSpacing>,
    facing: Facing,
) -> Levels {
    let (x_scale, y_scale) = spacing.map_or((1.0, 1.0), |s| (s.column_mm, s.row_mm));
    let mirror = if facing == Facing::Left { -1.0 } else { 1.0 };
    levels
        .map(|level| level.map(|corners| corners.map(|[x, y]| [mirror * x * x_scale, y * y_scale])))
}

/// The levels the parameter called `name` reads, cranial first.
pub(super) fn parameter_levels(name: &str) -> Vec<usize> {
    let mut levels: Vec<usize> = parameter_landmarks(name)
        .iter()
        .map(|&index| index / CORNERS_PER_LEVEL)
        .collect();
    levels.dedup();
    levels
}

#[cfg(test)]
pub(super) mod tests;

//! The eighteen sagittal parameters of a whole-spine lateral radiograph, computed from the 45
//! landmarks: the "Parameters (18)" contract of `SPEC-wholespine.md`, in pure Rust with no GPU.
//!
//! Everything is measured in the canonical frame of [`super::frame`] (mm with a spacing, anterior
//! +x, inferior +y); the facing is the sign of Σ x(anterior) − x(posterior) over the SPEC's nine
//! endplate pairs. With `slope(P→A) = atan2(A.y − P.y, A.x − P.x)` and
//! `tilt(P→Q) = atan2(Q.x − P.x, P.y − Q.y)` (from the upward vertical, + towards anterior), every
//! formula and sign is the SPEC's table, written out in [`PARAMETERS`]. `HA` is the midpoint of
//! the femoral heads, `S1m` the midpoint of the sacral endplate. Angles are wrapped to
//! [−180°, 180°), PI by the identity PI = SS + PT.
//!
//! The Barrey index has no value when the sacro-femoral distance is zero: it is then left out of
//! [`Measurements::parameters`] (`get("Barrey")` is `None`), and every other value stays.

use super::frame::{
    canonical_frame, tilt_from_vertical, wrap_degrees, Frame, MeasureError, Measurements,
    Parameter, ParameterDefinition, PixelSpacing, Point, Unit,
};
pub use crate::anatomy::wholespine::*;

/// Parameter names, in the order [`wholespine`] reports them (the paper's).
pub const PARAMETER_NAMES: [&str; 18] = [
    "PI", "SS", "PT", "LL", "SVA", "CL", "T1S", "cSVA", "GTK", "PTK", "MTK", "L4SL", "LPA", "SSA",
    "GT", "TPA", "Barrey", "OD-HA",
];

const S1: [usize; 2] = [S1_PS, S1_AS];

const fn definition(
    name: &'static str,
    unit: Unit,
    convention: &'static str,
    landmarks: &'static [usize],
) -> ParameterDefinition {
    ParameterDefinition {
        name,
        unit,
        convention,
        landmarks,
    }
}

/// Every parameter's definition, in the order of [`PARAMETER_NAMES`].
pub const PARAMETERS: [ParameterDefinition; 18] = [
    definition(
        "PI",
        Unit::Degrees,
        "pelvic incidence = SS + PT: angle at S1m between the endplate's perpendicular and S1m->HA",
        &[S1_PS, S1_AS, FH1, FH2],
    ),
    definition(
        "SS",
        Unit::Degrees,
        "sacral slope = slope(S1_ps->S1_as) from horizontal; + anterior end lower",
        &S1,
    ),
    definition(
        "PT",
        Unit::Degrees,
        "pelvic tilt = -tilt(HA->S1m) from vertical; + HA anterior of S1m",
        &[S1_PS, S1_AS, FH1, FH2],
    ),
    definition(
        "LL",
        Unit::Degrees,
        "lumbar lordosis L1-S1 = SS - slope(L1_ps->L1_as); + lordosis",
        &[S1_PS, S1_AS, L1_PS, L1_AS],
    ),
    definition(
        "SVA",
        Unit::Distance,
        "sagittal vertical axis = x(C7_c) - x(S1_ps), horizontal; + C7 anterior",
        &[C7_C, S1_PS],
    ),
    definition(
        "CL",
        Unit::Degrees,
        "cervical lordosis C2-C7 = slope(C7_pi->C7_ai) - slope(C2_pi->C2_ai); + lordosis",
        &[C2_PI, C2_AI, C7_PI, C7_AI],
    ),
    definition(
        "T1S",
        Unit::Degrees,
        "T1 slope = slope(T1_ps->T1_as) from horizontal; + anterior end lower",
        &[T1_PS, T1_AS],
    ),
    definition(
        "cSVA",
        Unit::Distance,
        "cervical SVA = x(C2_c) - x(C7_ps), horizontal; + C2 anterior",
        &[C2_C, C7_PS],
    ),
    definition(
        "GTK",
        Unit::Degrees,
        "global thoracic kyphosis T1-T12 = slope(T1_ps->T1_as) - slope(T12_pi->T12_ai); + kyphosis",
        &[T1_PS, T1_AS, T12_PI, T12_AI],
    ),
    definition(
        "PTK",
        Unit::Degrees,
        "proximal thoracic kyphosis T1-T5 = slope(T1_ps->T1_as) - slope(T5_pi->T5_ai); + kyphosis",
        &[T1_PS, T1_AS, T5_PI, T5_AI],
    ),
    definition(
        "MTK",
        Unit::Degrees,
        "main thoracic kyphosis T5-T12 = slope(T5_ps->T5_as) - slope(T12_pi->T12_ai); + kyphosis",
        &[T5_PS, T5_AS, T12_PI, T12_AI],
    ),
    definition(
        "L4SL",
        Unit::Degrees,
        "L4-S1 lordosis = SS - slope(L4_ps->L4_as); + lordosis",
        &[S1_PS, S1_AS, L4_PS, L4_AS],
    ),
    definition(
        "LPA",
        Unit::Degrees,
        "L1 pelvic angle = tilt(HA->L1_c) + PT: angle at HA from S1m to L1_c; + L1 anterior of the HA-S1m line",
        &[S1_PS, S1_AS, FH1, FH2, L1_C],
    ),
    definition(
        "SSA",
        Unit::Degrees,
        "spinosacral angle = 90 + SS - tilt(S1m->C7_c): angle at S1m between S1m->S1_as and S1m->C7_c",
        &[S1_PS, S1_AS, C7_C],
    ),
    definition(
        "GT",
        Unit::Degrees,
        "global tilt = tilt(S1m->C7_c) + PT; + C7 forward",
        &[S1_PS, S1_AS, FH1, FH2, C7_C],
    ),
    definition(
        "TPA",
        Unit::Degrees,
        "T1 pelvic angle = tilt(HA->T1_c) + PT; + T1 anterior of the HA-S1m line",
        &[S1_PS, S1_AS, FH1, FH2, T1_C],
    ),
    definition(
        "Barrey",
        Unit::Ratio,
        "Barrey index C7/SFD = SVA / (x(HA) - x(S1_ps)); none when the sacro-femoral distance is 0",
        &[C7_C, S1_PS, FH1, FH2],
    ),
    definition(
        "OD-HA",
        Unit::Degrees,
        "odontoid-hip axis angle = tilt(HA->C2_dens) from vertical; + dens anterior of HA",
        &[FH1, FH2, C2_DENS],
    ),
];

/// The definition of the parameter called `name`.
pub fn definition_of(name: &str) -> Option<&'static ParameterDefinition> {
    PARAMETERS.iter().find(|definition| definition.name == name)
}

fn tilt(
    frame: &Frame<'_>,
    from: Point,
    to: Point,
    what: &'static str,
    landmarks: &[usize],
) -> Result<f64, MeasureError> {
    let names: Vec<&'static str> = landmarks.iter().map(|&i| LANDMARK_NAMES[i]).collect();
    Ok(tilt_from_vertical(frame.vector(from, to, what, &names)?))
}

/// The landmarks in the canonical frame and the facing, after the validation [`wholespine`]
/// does.
pub(super) fn canonical_points(
    landmarks: &[[f64; 2]; LANDMARK_COUNT],
    spacing: Option<PixelSpacing>,
) -> Result<([[f64; 2]; LANDMARK_COUNT], super::frame::Facing), MeasureError> {
    let (frame, facing) = to_canonical_frame(landmarks, spacing)?;
    let mut points = [[0.0; 2]; LANDMARK_COUNT];
    for (out, point) in points.iter_mut().zip(&frame.points) {
        *out = [point.x, point.y];
    }
    Ok((points, facing))
}

fn to_canonical_frame(
    landmarks: &[[f64; 2]; LANDMARK_COUNT],
    spacing: Option<PixelSpacing>,
) -> Result<(Frame<'static>, super::frame::Facing), MeasureError> {
    let anterior = FACING_PAIRS.map(|(anterior, _)| anterior);
    let posterior = FACING_PAIRS.map(|(_, posterior)| posterior);
    canonical_frame(landmarks, &LANDMARK_NAMES, &anterior, &posterior, spacing)
}

/// Computes the eighteen whole-spine parameters from the 45 landmarks.
///
/// `landmarks` are in original-image pixels, x to the right and y down, in the order of
/// [`LANDMARK_NAMES`]. With a `spacing`, distances are in millimetres and angles are true angles
/// even for non-square pixels; without one, pixels are taken as square and distances are in
/// pixels.
pub fn wholespine(
    landmarks: &[[f64; 2]; LANDMARK_COUNT],
    spacing: Option<PixelSpacing>,
) -> Result<Measurements, MeasureError> {
    let (frame, facing) = to_canonical_frame(landmarks, spacing)?;
    let distance_unit = if spacing.is_some() { "mm" } else { "px" };

    let ss = wrap_degrees(frame.slope(S1_PS, S1_AS, "zero-length sacral endplate")?);
    let l1_superior = frame.slope(L1_PS, L1_AS, "zero-length L1 superior endplate")?;
    let l4_superior = frame.slope(L4_PS, L4_AS, "zero-length L4 superior endplate")?;
    let t12_inferior = frame.slope(T12_PI, T12_AI, "zero-length T12 inferior endplate")?;
    let t5_superior = frame.slope(T5_PS, T5_AS, "zero-length T5 superior endplate")?;
    let t5_inferior = frame.slope(T5_PI, T5_AI, "zero-length T5 inferior endplate")?;
    let t1_superior = frame.slope(T1_PS, T1_AS, "zero-length T1 superior endplate")?;
    let c7_inferior = frame.slope(C7_PI, C7_AI, "zero-length C7 inferior endplate")?;
    let c2_inferior = frame.slope(C2_PI, C2_AI, "zero-length C2 inferior endplate")?;

    let s1m = frame.point(S1_PS).midpoint(frame.point(S1_AS));
    let ha = frame.point(FH1).midpoint(frame.point(FH2));
    let pelvis = [FH1, FH2, S1_PS, S1_AS];
    let pt = wrap_degrees(-tilt(
        &frame,
        ha,
        s1m,
        "the hip axis coincides with the sacral endplate's midpoint",
        &pelvis,
    )?);
    let l1_from_ha = tilt(
        &frame,
        ha,
        frame.point(L1_C),
        "L1_c coincides with the hip axis",
        &[FH1, FH2, L1_C],
    )?;
    let t1_from_ha = tilt(
        &frame,
        ha,
        frame.point(T1_C),
        "T1_c coincides with the hip axis",
        &[FH1, FH2, T1_C],
    )?;
    let dens_from_ha = tilt(
        &frame,
        ha,
        frame.point(C2_DENS),
        "C2_dens coincides with the hip axis",
        &[FH1, FH2, C2_DENS],
    )?;
    let c7_from_s1m = tilt(
        &frame,
        s1m,
        frame.point(C7_C),
        "C7_c coincides with the sacral endplate's midpoint",
        &[S1_PS, S1_AS, C7_C],
    )?;

    let sva = frame.point(C7_C).x - frame.point(S1_PS).x;
    let sacro_femoral = ha.x - frame.point(S1_PS).x;
    let barrey = (sacro_femoral.abs() > frame.zero_length).then(|| sva / sacro_femoral);

    let values: [Option<f64>; 18] = [
        Some(wrap_degrees(ss + pt)),
        Some(ss),
        Some(pt),
        Some(wrap_degrees(ss - l1_superior)),
        Some(sva),
        Some(wrap_degrees(c7_inferior - c2_inferior)),
        Some(wrap_degrees(t1_superior)),
        Some(frame.point(C2_C).x - frame.point(C7_PS).x),
        Some(wrap_degrees(t1_superior - t12_inferior)),
        Some(wrap_degrees(t1_superior - t5_inferior)),
        Some(wrap_degrees(t5_superior - t12_inferior)),
        Some(wrap_degrees(ss - l4_superior)),
        Some(wrap_degrees(l1_from_ha + pt)),
        Some(wrap_degrees(90.0 + ss - c7_from_s1m)),
        Some(wrap_degrees(c7_from_s1m + pt)),
        Some(wrap_degrees(t1_from_ha + pt)),
        barrey,
        Some(wrap_degrees(dens_from_ha)),
    ];

    let mut parameters = Vec::with_capacity(values.len());
    for (definition, value) in PARAMETERS.iter().zip(values) {
        let Some(value) = value else {
            continue;
        };
        if !value.is_finite() {
            return Err(MeasureError::NonFiniteResult {
                parameter: definition.name,
            });
        }
        parameters.push(Parameter {
            name: definition.name,
            value,
            unit: definition.unit.symbol(distance_unit),
            convention: definition.convention,
        });
    }
    Ok(Measurements {
        facing,
        distance_unit,
        parameters,
    })
}

#[cfg(test)]
pub(super) mod tests;

//! The whole-spine landmark table of SPEC-wholespine.md: names in model order and the indices the
//! parameters use. Pure data.

/// Number of landmarks the whole-spine model predicts: 22 specific points and 23 body centres.
pub const LANDMARK_COUNT: usize = 45;

/// Landmark names, in the order the model outputs them.
pub const LANDMARK_NAMES: [&str; LANDMARK_COUNT] = [
    "C2_dens", "C2_ai", "C2_pi", //
    "C7_ai", "C7_ps", "C7_pi", //
    "T1_as", "T1_ps", //
    "T5_as", "T5_ps", "T5_pi", "T5_ai", //
    "T12_ai", "T12_pi", //
    "L1_as", "L1_ps", //
    "L4_as", "L4_ps", //
    "S1_as", "S1_ps", //
    "FH1", "FH2", //
    "C2_c", "C3_c", "C4_c", "C5_c", "C6_c", "C7_c", //
    "T1_c", "T2_c", "T3_c", "T4_c", "T5_c", "T6_c", "T7_c", "T8_c", "T9_c", "T10_c", "T11_c",
    "T12_c", //
    "L1_c", "L2_c", "L3_c", "L4_c", "L5_c",
];

pub const C2_DENS: usize = 0;
pub const C2_AI: usize = 1;
pub const C2_PI: usize = 2;
pub const C7_AI: usize = 3;
pub const C7_PS: usize = 4;
pub const C7_PI: usize = 5;
pub const T1_AS: usize = 6;
pub const T1_PS: usize = 7;
pub const T5_AS: usize = 8;
pub const T5_PS: usize = 9;
pub const T5_PI: usize = 10;
pub const T5_AI: usize = 11;
pub const T12_AI: usize = 12;
pub const T12_PI: usize = 13;
pub const L1_AS: usize = 14;
pub const L1_PS: usize = 15;
pub const L4_AS: usize = 16;
pub const L4_PS: usize = 17;
pub const S1_AS: usize = 18;
pub const S1_PS: usize = 19;
/// The more posterior femoral-head centre.
pub const FH1: usize = 20;
pub const FH2: usize = 21;

/// The first body centre (`C2_c`); the centres follow cranial to caudal down to `L5_c`.
pub const FIRST_CENTRE: usize = 22;
pub const CENTRE_COUNT: usize = 23;
pub const C2_C: usize = FIRST_CENTRE;
pub const C7_C: usize = FIRST_CENTRE + 5;
pub const T1_C: usize = FIRST_CENTRE + 6;
pub const L1_C: usize = FIRST_CENTRE + 18;

/// The (anterior, posterior) pairs whose x difference decides which way the patient faces.
pub const FACING_PAIRS: [(usize, usize); 9] = [
    (C2_AI, C2_PI),
    (C7_AI, C7_PI),
    (T1_AS, T1_PS),
    (T5_AS, T5_PS),
    (T5_AI, T5_PI),
    (T12_AI, T12_PI),
    (L1_AS, L1_PS),
    (L4_AS, L4_PS),
    (S1_AS, S1_PS),
];

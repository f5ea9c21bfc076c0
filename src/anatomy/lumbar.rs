//! The lumbar landmark table of SPEC-lumbar.md: 24 levels from C2 to S1, four corners each, in
//! model order. Only the levels the identification network finds present are reported. Pure data.

/// Levels, cranial to caudal.
pub const LEVEL_COUNT: usize = 24;
pub const LEVEL_NAMES: [&str; LEVEL_COUNT] = [
    "C2", "C3", "C4", "C5", "C6", "C7", "T1", "T2", "T3", "T4", "T5", "T6", "T7", "T8", "T9",
    "T10", "T11", "T12", "L1", "L2", "L3", "L4", "L5", "S1",
];

/// Landmark 4v + c is corner c of level v.
pub const CORNERS_PER_LEVEL: usize = 4;
pub const LANDMARK_COUNT: usize = LEVEL_COUNT * CORNERS_PER_LEVEL;

/// Landmark names, in the order the model outputs them.
pub const LANDMARK_NAMES: [&str; LANDMARK_COUNT] = [
    "C2_as", "C2_ps", "C2_pi", "C2_ai", //
    "C3_as", "C3_ps", "C3_pi", "C3_ai", //
    "C4_as", "C4_ps", "C4_pi", "C4_ai", //
    "C5_as", "C5_ps", "C5_pi", "C5_ai", //
    "C6_as", "C6_ps", "C6_pi", "C6_ai", //
    "C7_as", "C7_ps", "C7_pi", "C7_ai", //
    "T1_as", "T1_ps", "T1_pi", "T1_ai", //
    "T2_as", "T2_ps", "T2_pi", "T2_ai", //
    "T3_as", "T3_ps", "T3_pi", "T3_ai", //
    "T4_as", "T4_ps", "T4_pi", "T4_ai", //
    "T5_as", "T5_ps", "T5_pi", "T5_ai", //
    "T6_as", "T6_ps", "T6_pi", "T6_ai", //
    "T7_as", "T7_ps", "T7_pi", "T7_ai", //
    "T8_as", "T8_ps", "T8_pi", "T8_ai", //
    "T9_as", "T9_ps", "T9_pi", "T9_ai", //
    "T10_as", "T10_ps", "T10_pi", "T10_ai", //
    "T11_as", "T11_ps", "T11_pi", "T11_ai", //
    "T12_as", "T12_ps", "T12_pi", "T12_ai", //
    "L1_as", "L1_ps", "L1_pi", "L1_ai", //
    "L2_as", "L2_ps", "L2_pi", "L2_ai", //
    "L3_as", "L3_ps", "L3_pi", "L3_ai", //
    "L4_as", "L4_ps", "L4_pi", "L4_ai", //
    "L5_as", "L5_ps", "L5_pi", "L5_ai", //
    "S1_as", "S1_ps", "S1_pi", "S1_ai", //
];

/// Level indices the parameters read.
pub const T12: usize = 17;
pub const L1: usize = 18;
pub const L5: usize = 22;
pub const S1: usize = 23;

/// Offsets of the corners within a level's group of four (as in the cervical table).
pub const AS: usize = 0;
pub const PS: usize = 1;
pub const PI: usize = 2;
pub const AI: usize = 3;

/// The index of corner `corner` of level `level`.
pub const fn landmark(level: usize, corner: usize) -> usize {
    CORNERS_PER_LEVEL * level + corner
}

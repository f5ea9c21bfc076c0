//! The cervical landmark table of SPEC-cervical.md: names in model order, the indices the
//! parameters and the overlay use, and the groups the model's refiners work on. Pure data.

/// Number of landmarks the cervical model predicts.
pub const LANDMARK_COUNT: usize = 29;

/// Landmark names, in the order the model outputs them.
pub const LANDMARK_NAMES: [&str; LANDMARK_COUNT] = [
    "C2_as", "C2_ps", "C2_pi", "C2_ai", //
    "C3_as", "C3_ps", "C3_pi", "C3_ai", //
    "C4_as", "C4_ps", "C4_pi", "C4_ai", //
    "C5_as", "C5_ps", "C5_pi", "C5_ai", //
    "C6_as", "C6_ps", "C6_pi", "C6_ai", //
    "C7_as", "C7_ps", "C7_pi", "C7_ai", //
    "T1_as", "T1_ps", "PNS", "OCC", "DENS",
];

/// Landmark indices (SPEC order): the first corner of C2, C6 and C7, then single points.
pub const C2: usize = 0;
pub const C6: usize = 16;
pub const C7: usize = 20;
pub const T1_AS: usize = 24;
pub const T1_PS: usize = 25;
pub const PNS: usize = 26;
pub const OCC: usize = 27;
pub const DENS: usize = 28;

/// Offsets of the corners within a vertebra's group of four.
pub const AS: usize = 0;
pub const PS: usize = 1;
pub const PI: usize = 2;
pub const AI: usize = 3;

/// Intervertebral discs the refiners work on: C2-C3 .. C7-T1.
pub const DISC_COUNT: usize = 6;

/// The landmarks of disc k (upper vertebra's pi, ai; lower vertebra's as, ps): 4k+2 .. 4k+5.
pub fn disc_members() -> Vec<u32> {
    (0..DISC_COUNT as u32)
        .flat_map(|k| (0..4).map(move |j| 4 * k + 2 + j))
        .collect()
}

/// Whether landmark `i` is a disc corner placed by a refiner (the other five come from the
/// global model): the 24 corners from C2_pi to T1_ps.
pub fn is_disc_corner(i: usize) -> bool {
    (2..2 + 4 * DISC_COUNT).contains(&i)
}

//! The decoder's stored-to-grey mapping as the model's texture-input transform: a viewer that
//! shows a DICOM's stored values as a texture gets the grey values `sagitta::io` would give.

use crate::io::StoredToGrey;
use crate::models::GreyTransform;

impl From<StoredToGrey> for GreyTransform {
    /// Rounded to f32: the same grey values as the CPU decoding wherever slope, intercept and
    /// the mirror sum are integers (the usual radiograph), else within f32 rounding of them.
    fn from(stored: StoredToGrey) -> Self {
        GreyTransform {
            luma: false,
            slope: stored.slope as f32,
            intercept: stored.intercept as f32,
            mirror_sum: stored.mirror_sum.map(|sum| sum as f32),
        }
    }
}

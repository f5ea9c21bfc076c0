//! Landmark tables per model family: names, orders and groups, as data. Nothing here computes.

pub mod cervical;
pub mod lumbar;
pub mod wholespine;

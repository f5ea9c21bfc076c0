//! Clinical parameters from landmarks, in pure Rust (no GPU), one file per model family. Imports
//! only `anatomy`.

pub mod cervical;

pub use cervical::*;

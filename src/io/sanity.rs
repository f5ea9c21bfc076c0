//! A decoded image with nothing in it (blank, constant, or nearly so) is refused: the model
//! would still place landmarks on it, and the record would look like a measurement.

/// More than this share of identical pixels is a blank image with a few marks at most.
pub(super) const MAX_SAME_SHARE: f64 = 0.99;
/// A standard deviation under this share of the value range is noise around a constant
/// (a real radiograph's is 10 to 30 % of its range).
pub(super) const MIN_SPREAD_SHARE: f64 = 1e-3;

/// Why `pixels` hold no image, or `None` when they do.
pub(super) fn blank_reason(pixels: &[f32]) -> Option<String> {
    let first = *pixels.first()?;
    let (low, high) = pixels
        .iter()
        .fold((first, first), |(low, high), &v| (low.min(v), high.max(v)));
    if low == high {
        return Some(format!("every pixel has the value {low}"));
    }
    // Boyer-Moore majority vote: the only value that can hold more than half of the pixels.
    let (mut candidate, mut votes) = (first, 0usize);
    for &value in pixels {
        if votes == 0 {
            candidate = value;
            votes = 1;
        } else if value == candidate {
            votes += 1;
        } else {
            votes -= 1;
        }
    }
    let same = pixels.iter().filter(|&&value| value == candidate).count();
    let share = same as f64 / pixels.len() as f64;
    if share > MAX_SAME_SHARE {
        return Some(format!(
            "{:.2}% of the pixels have the value {candidate}",
            100.0 * share
        ));
    }
    let count = pixels.len() as f64;
    let mean = pixels.iter().map(|&v| f64::from(v)).sum::<f64>() / count;
    let variance = pixels
        .iter()
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum::<f64>()
        / count;
    let range = f64::from(high) - f64::from(low);
    let deviation = variance.sqrt();
    if deviation < MIN_SPREAD_SHARE * range {
        return Some(format!(
            "the standard deviation of the pixels ({deviation:.3}) is under {}% of their range {low}..{high}",
            100.0 * MIN_SPREAD_SHARE
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_constant_and_nearly_constant_images() {
        assert_eq!(
            blank_reason(&[7.0; 100]).unwrap(),
            "every pixel has the value 7"
        );
        let mut mostly_zero = vec![0.0f32; 10_000];
        for (index, value) in mostly_zero.iter_mut().enumerate().take(50) {
            *value = index as f32 * 80.0;
        }
        let reason = blank_reason(&mostly_zero).unwrap();
        assert!(
            reason.contains("99.5") && reason.contains("value 0"),
            "{reason}"
        );
        // Noise of ±1 around 1000 over 2 megapixels, with one hot pixel stretching the range.
        let mut noisy: Vec<f32> = (0..2_000_000)
            .map(|i| 1000.0 + (i % 3) as f32 - 1.0)
            .collect();
        noisy[17] = 65535.0;
        let reason = blank_reason(&noisy).unwrap();
        assert!(reason.contains("standard deviation"), "{reason}");

        let ramp: Vec<f32> = (0..10_000).map(|i| (i % 100) as f32).collect();
        assert_eq!(blank_reason(&ramp), None);
        assert_eq!(blank_reason(&[]), None);
    }
}

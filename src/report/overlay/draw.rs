//! Anti-aliased drawing on an RGB image: segments (solid and dashed), discs, rings, crosses,
//! arcs and filled rectangles. Pixel centres sit at integer coordinates, the convention of the
//! landmarks.

use image::RgbImage;

pub type Colour = [u8; 3];

/// What the overlay's shapes are drawn with: a raster [`Canvas`], or a recorder of vector
/// shapes for a viewer to draw (the presentation state). Widths and opacities are hints that a
/// vector target may ignore.
pub trait Pen {
    fn segment(&mut self, a: [f64; 2], b: [f64; 2], half_width: f64, colour: Colour, alpha: f32);
    /// A dashed segment: dashes of length `dash` separated by gaps of the same length.
    #[allow(clippy::too_many_arguments)]
    fn dashed(
        &mut self,
        a: [f64; 2],
        b: [f64; 2],
        half_width: f64,
        colour: Colour,
        alpha: f32,
        dash: f64,
    );
    fn disc(&mut self, centre: [f64; 2], radius: f64, colour: Colour, alpha: f32);
    /// A circle of radius `radius` drawn with a stroke of half-width `half_width`.
    fn ring(&mut self, centre: [f64; 2], radius: f64, half_width: f64, colour: Colour, alpha: f32);
    /// An arc of radius `radius` around `centre` from angle `from` to angle `to` (radians,
    /// image axes: 0 along +x, π/2 along +y), the shorter way round.
    fn arc(
        &mut self,
        centre: [f64; 2],
        radius: f64,
        angles: (f64, f64),
        half_width: f64,
        colour: Colour,
        alpha: f32,
    );
    /// An axis-aligned cross ("×") of half-size `size`.
    fn cross(&mut self, centre: [f64; 2], size: f64, half_width: f64, colour: Colour) {
        let [x, y] = centre;
        self.segment(
            [x - size, y - size],
            [x + size, y + size],
            half_width,
            colour,
            1.0,
        );
        self.segment(
            [x - size, y + size],
            [x + size, y - size],
            half_width,
            colour,
            1.0,
        );
    }
}

/// The points along an arc (see [`Pen::arc`]), about two pixels apart; `None` for a
/// degenerate one.
pub fn arc_points(centre: [f64; 2], radius: f64, (from, to): (f64, f64)) -> Option<Vec<[f64; 2]>> {
    let mut sweep = to - from;
    while sweep > std::f64::consts::PI {
        sweep -= std::f64::consts::TAU;
    }
    while sweep < -std::f64::consts::PI {
        sweep += std::f64::consts::TAU;
    }
    if !sweep.is_finite() || radius <= 0.0 {
        return None;
    }
    let steps = ((sweep.abs() * radius / 2.0).ceil() as usize).clamp(2, 400);
    Some(
        (0..=steps)
            .map(|step| {
                let angle = from + sweep * step as f64 / steps as f64;
                [
                    centre[0] + radius * angle.cos(),
                    centre[1] + radius * angle.sin(),
                ]
            })
            .collect(),
    )
}

/// The dashes of a dashed segment (see [`Pen::dashed`]).
pub fn dashes(a: [f64; 2], b: [f64; 2], dash: f64) -> Vec<([f64; 2], [f64; 2])> {
    let length = (b[0] - a[0]).hypot(b[1] - a[1]);
    if !length.is_finite() || length <= 0.0 || dash <= 0.0 {
        return Vec::new();
    }
    let point_at = |distance: f64| {
        let t = (distance / length).min(1.0);
        [a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])]
    };
    let mut pieces = Vec::new();
    let mut start = 0.0;
    while start < length {
        pieces.push((point_at(start), point_at(start + dash)));
        start += 2.0 * dash;
    }
    pieces
}

/// An RGB image with anti-aliased drawing; everything off the image is clipped.
pub struct Canvas {
    pub image: RgbImage,
}

impl Canvas {
    /// Blends `colour` into one pixel with opacity `alpha`; pixels off the image are ignored.
    pub fn blend(&mut self, x: i64, y: i64, colour: Colour, alpha: f32) {
        if x < 0 || y < 0 || alpha <= 0.0 {
            return;
        }
        let (x, y) = (x as u32, y as u32);
        if x >= self.image.width() || y >= self.image.height() {
            return;
        }
        let alpha = alpha.min(1.0);
        let pixel = self.image.get_pixel_mut(x, y);
        for (channel, &target) in pixel.0.iter_mut().zip(&colour) {
            let mixed = f32::from(*channel) * (1.0 - alpha) + f32::from(target) * alpha;
            *channel = mixed.round().clamp(0.0, 255.0) as u8;
        }
    }

    /// The pixel range [low, high] that a shape spanning `low..high` in image coordinates can
    /// touch, clipped to the image.
    fn span(&self, low: f64, high: f64, size: u32) -> (i64, i64) {
        let low = low.floor().max(0.0) as i64;
        let high = high.ceil().min(f64::from(size) - 1.0) as i64;
        (low, high)
    }

    /// Calls `coverage_at(x, y)` for every pixel of the box around `low..high` (clipped) and
    /// blends `colour` with the coverage it returns times `alpha`.
    fn shade(
        &mut self,
        low: [f64; 2],
        high: [f64; 2],
        colour: Colour,
        alpha: f32,
        coverage_at: impl Fn(f64, f64) -> f64,
    ) {
        let (x0, x1) = self.span(low[0], high[0], self.image.width());
        let (y0, y1) = self.span(low[1], high[1], self.image.height());
        for y in y0..=y1 {
            for x in x0..=x1 {
                let coverage = coverage_at(x as f64, y as f64).clamp(0.0, 1.0) as f32;
                self.blend(x, y, colour, coverage * alpha);
            }
        }
    }

    pub fn fill_rect(
        &mut self,
        left: i64,
        top: i64,
        width: i64,
        height: i64,
        colour: Colour,
        alpha: f32,
    ) {
        let right = (left + width).min(i64::from(self.image.width()));
        let bottom = (top + height).min(i64::from(self.image.height()));
        for y in top.max(0)..bottom {
            for x in left.max(0)..right {
                self.blend(x, y, colour, alpha);
            }
        }
    }
}

impl Pen for Canvas {
    /// A segment of half-width `half_width`, with a one-pixel soft edge.
    fn segment(&mut self, a: [f64; 2], b: [f64; 2], half_width: f64, colour: Colour, alpha: f32) {
        if !(a.iter().chain(&b).all(|v| v.is_finite())) {
            return;
        }
        let reach = half_width + 1.0;
        let direction = [b[0] - a[0], b[1] - a[1]];
        let length_squared = direction[0] * direction[0] + direction[1] * direction[1];
        self.shade(
            [a[0].min(b[0]) - reach, a[1].min(b[1]) - reach],
            [a[0].max(b[0]) + reach, a[1].max(b[1]) + reach],
            colour,
            alpha,
            |x, y| {
                let offset = [x - a[0], y - a[1]];
                let along = if length_squared > 0.0 {
                    ((offset[0] * direction[0] + offset[1] * direction[1]) / length_squared)
                        .clamp(0.0, 1.0)
                } else {
                    0.0
                };
                let dx = offset[0] - along * direction[0];
                let dy = offset[1] - along * direction[1];
                half_width + 0.5 - dx.hypot(dy)
            },
        );
    }

    fn disc(&mut self, centre: [f64; 2], radius: f64, colour: Colour, alpha: f32) {
        let reach = radius + 1.0;
        self.shade(
            [centre[0] - reach, centre[1] - reach],
            [centre[0] + reach, centre[1] + reach],
            colour,
            alpha,
            |x, y| radius + 0.5 - (x - centre[0]).hypot(y - centre[1]),
        );
    }

    fn ring(&mut self, centre: [f64; 2], radius: f64, half_width: f64, colour: Colour, alpha: f32) {
        let reach = radius + half_width + 1.0;
        self.shade(
            [centre[0] - reach, centre[1] - reach],
            [centre[0] + reach, centre[1] + reach],
            colour,
            alpha,
            |x, y| half_width + 0.5 - ((x - centre[0]).hypot(y - centre[1]) - radius).abs(),
        );
    }

    fn dashed(
        &mut self,
        a: [f64; 2],
        b: [f64; 2],
        half_width: f64,
        colour: Colour,
        alpha: f32,
        dash: f64,
    ) {
        for (from, to) in dashes(a, b, dash) {
            self.segment(from, to, half_width, colour, alpha);
        }
    }

    fn arc(
        &mut self,
        centre: [f64; 2],
        radius: f64,
        angles: (f64, f64),
        half_width: f64,
        colour: Colour,
        alpha: f32,
    ) {
        if let Some(points) = arc_points(centre, radius, angles) {
            for pair in points.windows(2) {
                self.segment(pair[0], pair[1], half_width, colour, alpha);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drawing_off_the_image_is_clipped() {
        let mut canvas = Canvas {
            image: RgbImage::new(8, 8),
        };
        canvas.segment([-100.0, -100.0], [100.0, 100.0], 2.0, [255, 0, 0], 1.0);
        canvas.disc([-50.0, 4.0], 3.0, [0, 255, 0], 1.0);
        canvas.fill_rect(-5, -5, 100, 6, [0, 0, 255], 1.0);
        canvas.ring([4.0, 4.0], 300.0, 1.0, [0, 255, 0], 1.0);
        canvas.arc([4.0, 4.0], 50.0, (0.0, 3.0), 1.0, [0, 255, 0], 1.0);
        canvas.segment([f64::NAN, 0.0], [4.0, 4.0], 2.0, [0, 255, 0], 1.0);
        assert_eq!(canvas.image.get_pixel(4, 4).0, [255, 0, 0]);
        assert_eq!(canvas.image.get_pixel(0, 0).0, [0, 0, 255]);
    }

    #[test]
    fn a_ring_is_hollow_and_an_arc_takes_the_short_way() {
        let mut canvas = Canvas {
            image: RgbImage::new(41, 41),
        };
        canvas.ring([20.0, 20.0], 10.0, 1.0, [255, 255, 255], 1.0);
        assert_eq!(canvas.image.get_pixel(20, 20).0, [0, 0, 0]);
        assert_eq!(canvas.image.get_pixel(30, 20).0, [255, 255, 255]);
        let mut canvas = Canvas {
            image: RgbImage::new(41, 41),
        };
        // From +x (0) to +y (π/2): the quarter below-right, not the three others.
        canvas.arc(
            [20.0, 20.0],
            10.0,
            (0.0, std::f64::consts::FRAC_PI_2),
            1.0,
            [255, 255, 255],
            1.0,
        );
        assert_eq!(canvas.image.get_pixel(27, 27).0, [255, 255, 255]);
        assert_eq!(canvas.image.get_pixel(13, 13).0, [0, 0, 0]);
        assert_eq!(canvas.image.get_pixel(10, 20).0, [0, 0, 0]);
    }
}

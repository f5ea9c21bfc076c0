//! Text with a real font: Liberation Sans 2.1.5 (SIL Open Font License 1.1, see
//! `fonts/LICENSE-OFL.txt`), bundled in the binary and rasterised with anti-aliasing by
//! `ab_glyph`, so that nothing is looked up on the system at run time.

use std::sync::OnceLock;

use ab_glyph::{point, Font, FontRef, PxScale, ScaleFont};

use super::draw::{Canvas, Colour};

static REGULAR_TTF: &[u8] = include_bytes!("fonts/LiberationSans-Regular.ttf");
static BOLD_TTF: &[u8] = include_bytes!("fonts/LiberationSans-Bold.ttf");

/// The two faces the overlay uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Face {
    Regular,
    Bold,
}

fn font(face: Face) -> &'static FontRef<'static> {
    static REGULAR: OnceLock<FontRef<'static>> = OnceLock::new();
    static BOLD: OnceLock<FontRef<'static>> = OnceLock::new();
    let (cell, bytes) = match face {
        Face::Regular => (&REGULAR, REGULAR_TTF),
        Face::Bold => (&BOLD, BOLD_TTF),
    };
    cell.get_or_init(|| {
        FontRef::try_from_slice(bytes).expect("the bundled font is a valid TrueType file")
    })
}

#[cfg(test)]
#[cfg(test)]
/// Whether the font has a glyph for `character` (else it would draw the "missing" box).
pub fn has_glyph(character: char) -> bool {
    character.is_whitespace() || font(Face::Regular).glyph_id(character).0 != 0
}

/// A font face at a pixel size (the distance from the highest ascender to the lowest
/// descender).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TextStyle {
    pub face: Face,
    pub size: f32,
}

impl TextStyle {
    pub fn new(face: Face, size: f32) -> Self {
        Self {
            face,
            size: size.max(6.0),
        }
    }

    /// The advance width of `text` in pixels, with kerning.
    pub fn width(&self, text: &str) -> f64 {
        let scaled = font(self.face).as_scaled(PxScale::from(self.size));
        let mut width = 0.0f32;
        let mut previous = None;
        for character in text.chars() {
            let id = scaled.glyph_id(character);
            if let Some(previous) = previous {
                width += scaled.kern(previous, id);
            }
            width += scaled.h_advance(id);
            previous = Some(id);
        }
        f64::from(width)
    }

    /// The height of one line of text (ascent to descent), in pixels.
    pub fn height(&self) -> f64 {
        let scaled = font(self.face).as_scaled(PxScale::from(self.size));
        f64::from(scaled.ascent() - scaled.descent())
    }

    /// Distance from one line's top to the next.
    pub fn line_height(&self) -> f64 {
        (self.height() * 1.18).ceil()
    }
}

impl Canvas {
    /// Draws `text` with the top of its line box at `top` and its left edge at `left`; returns
    /// its width.
    pub fn text(
        &mut self,
        left: f64,
        top: f64,
        text: &str,
        style: TextStyle,
        colour: Colour,
        alpha: f32,
    ) -> f64 {
        let scaled = font(style.face).as_scaled(PxScale::from(style.size));
        let baseline = top + f64::from(scaled.ascent());
        let mut caret = left as f32;
        let mut previous = None;
        for character in text.chars() {
            let id = scaled.glyph_id(character);
            if let Some(previous) = previous {
                caret += scaled.kern(previous, id);
            }
            let glyph = id
                .with_scale_and_position(PxScale::from(style.size), point(caret, baseline as f32));
            caret += scaled.h_advance(id);
            previous = Some(id);
            let Some(outlined) = scaled.outline_glyph(glyph) else {
                continue;
            };
            let bounds = outlined.px_bounds();
            let (origin_x, origin_y) = (bounds.min.x as i64, bounds.min.y as i64);
            outlined.draw(|x, y, coverage| {
                self.blend(
                    origin_x + i64::from(x),
                    origin_y + i64::from(y),
                    colour,
                    coverage * alpha,
                );
            });
        }
        f64::from(caret) - left
    }
}

/// Splits `text` into lines no wider than `max_width` at spaces (a single word wider than
/// that stays whole).
pub fn wrap(text: &str, style: TextStyle, max_width: f64) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let candidate = if line.is_empty() {
            word.to_string()
        } else {
            format!("{line} {word}")
        };
        if !line.is_empty() && style.width(&candidate) > max_width {
            lines.push(std::mem::replace(&mut line, word.to_string()));
        } else {
            line = candidate;
        }
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::RgbImage;

    #[test]
    fn both_faces_load_and_have_the_characters_the_overlay_writes() {
        for face in [Face::Regular, Face::Bold] {
            let style = TextStyle::new(face, 20.0);
            assert!(style.width("C2-C7") > 30.0 && style.width("C2-C7") < 80.0);
            assert!(style.height() > 15.0 && style.height() < 30.0);
        }
        for character in "0123456789+-−–—°≥<·.:,()/ABCZabcz_".chars() {
            assert!(has_glyph(character), "{character:?}");
        }
        assert!(
            !has_glyph('\u{26A0}'),
            "the warning sign is not in Liberation Sans"
        );
    }

    #[test]
    fn text_is_anti_aliased() {
        let mut canvas = Canvas {
            image: RgbImage::new(120, 40),
        };
        let style = TextStyle::new(Face::Regular, 24.0);
        let width = canvas.text(4.0, 4.0, "C2-C7 12°", style, [255, 255, 255], 1.0);
        assert!((width - style.width("C2-C7 12°")).abs() < 1.0);
        let values: Vec<u8> = canvas.image.pixels().map(|p| p.0[0]).collect();
        let full = values.iter().filter(|&&v| v == 255).count();
        let partial = values.iter().filter(|&&v| v > 0 && v < 255).count();
        assert!(full > 50, "{full} solid pixels");
        assert!(partial > 50, "{partial} anti-aliased pixels");
        // Nothing left of the text box or below its line.
        for y in 0..40 {
            assert_eq!(canvas.image.get_pixel(1, y).0, [0, 0, 0]);
        }
        for x in 0..120 {
            assert_eq!(canvas.image.get_pixel(x, 39).0, [0, 0, 0]);
        }
    }

    #[test]
    fn wrap_breaks_at_spaces_within_the_width() {
        let style = TextStyle::new(Face::Regular, 16.0);
        let text = "no pixel spacing in the file and none given: distances are in pixels";
        let lines = wrap(text, style, 200.0);
        assert!(lines.len() >= 2);
        assert_eq!(lines.join(" "), text);
        assert!(lines.iter().all(|line| style.width(line) <= 200.0));
        assert_eq!(wrap("", style, 10.0), Vec::<String>::new());
    }
}

//! What a compressed codestream says about itself: the frame size in a JPEG (SOF marker,
//! JPEG-LS SOF55 included) or JPEG 2000 (SIZ marker) header, and whether a JPEG reaches its
//! end-of-image marker. Decoders fill what is missing with grey or zeros; these few lines of
//! parsing let the loader refuse an image that is not whole.

/// The size a codestream header declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FrameSize {
    pub width: u32,
    pub height: u32,
    pub components: u16,
}

/// How far into a J2K fragment (or JP2 file) the SIZ marker is searched for.
const SIZ_SEARCH_BYTES: usize = 64 << 10;

fn be16(data: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(data.get(at..at + 2)?.try_into().ok()?))
}

fn be32(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(data.get(at..at + 4)?.try_into().ok()?))
}

/// Markers that stand alone, without a length: TEM, RST0-7, SOI, EOI.
fn standalone(marker: u8) -> bool {
    matches!(marker, 0x01 | 0xD0..=0xD9)
}

fn is_start_of_frame(marker: u8) -> bool {
    matches!(marker, 0xC0..=0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF | 0xF7)
}

/// The marker at `at` (after any fill bytes): its code and the position after it.
fn marker_at(data: &[u8], mut at: usize) -> Result<(u8, usize), String> {
    if data.get(at) != Some(&0xFF) {
        return Err(match data.get(at) {
            None => "truncated: the data ends before the end-of-image marker".to_string(),
            Some(_) => format!("no JPEG marker at byte {at}"),
        });
    }
    while data.get(at) == Some(&0xFF) {
        at += 1;
    }
    match data.get(at) {
        Some(&marker) => Ok((marker, at + 1)),
        None => Err("truncated: the data ends inside a marker".to_string()),
    }
}

/// The position after a marker segment whose length field starts at `at`.
fn after_segment(data: &[u8], at: usize, marker: u8) -> Result<usize, String> {
    let length = be16(data, at)
        .ok_or_else(|| format!("truncated: the data ends inside marker FF{marker:02X}"))?;
    if length < 2 {
        return Err(format!("marker FF{marker:02X} has a length of {length}"));
    }
    let end = at + usize::from(length);
    if end > data.len() {
        return Err(format!(
            "truncated: marker FF{marker:02X} at byte {at} claims {length} bytes, past the end of the data"
        ));
    }
    Ok(end)
}

/// The frame header of a JPEG (or JPEG-LS) codestream: the first SOF marker.
pub(super) fn jpeg_frame_size(data: &[u8]) -> Result<FrameSize, String> {
    if !data.starts_with(&[0xFF, 0xD8]) {
        return Err("not a JPEG codestream (no start-of-image marker)".to_string());
    }
    let mut at = 2;
    loop {
        let (marker, next) = marker_at(data, at)?;
        if standalone(marker) {
            if marker == 0xD9 {
                return Err("JPEG codestream ends before its frame header".to_string());
            }
            at = next;
            continue;
        }
        if marker == 0xDA {
            return Err("JPEG scan starts before a frame header".to_string());
        }
        let end = after_segment(data, next, marker)?;
        if is_start_of_frame(marker) {
            let field = |offset: usize| {
                be16(data, next + offset).ok_or("truncated JPEG frame header".to_string())
            };
            let height = field(3)?;
            let width = field(5)?;
            let components = *data
                .get(next + 7)
                .ok_or("truncated JPEG frame header".to_string())?;
            return Ok(FrameSize {
                width: width.into(),
                height: height.into(),
                components: components.into(),
            });
        }
        at = end;
    }
}

/// The image size of a JPEG 2000 codestream (or JP2 file): its SIZ marker, the image area
/// less its offset.
pub(super) fn j2k_frame_size(data: &[u8]) -> Result<FrameSize, String> {
    let head = &data[..data.len().min(SIZ_SEARCH_BYTES)];
    let start = head
        .windows(4)
        .position(|window| window == [0xFF, 0x4F, 0xFF, 0x51])
        .ok_or("no JPEG 2000 SIZ marker at the start of the codestream".to_string())?;
    let siz = start + 4;
    let truncated = || "truncated JPEG 2000 SIZ marker".to_string();
    let x = be32(data, siz + 4).ok_or_else(truncated)?;
    let y = be32(data, siz + 8).ok_or_else(truncated)?;
    let x_offset = be32(data, siz + 12).ok_or_else(truncated)?;
    let y_offset = be32(data, siz + 16).ok_or_else(truncated)?;
    let components = be16(data, siz + 36).ok_or_else(truncated)?;
    let (Some(width), Some(height)) = (x.checked_sub(x_offset), y.checked_sub(y_offset)) else {
        return Err(format!(
            "JPEG 2000 SIZ marker has an offset ({x_offset}, {y_offset}) past the image size {x}×{y}"
        ));
    };
    Ok(FrameSize {
        width,
        height,
        components,
    })
}

/// Whether a JPEG reaches its end-of-image marker after its last scan: a file cut short
/// decodes "successfully" with the missing rows filled in.
pub(super) fn jpeg_is_complete(data: &[u8]) -> Result<(), String> {
    if !data.starts_with(&[0xFF, 0xD8]) {
        return Err("not a JPEG codestream (no start-of-image marker)".to_string());
    }
    let mut at = 2;
    loop {
        let (marker, next) = marker_at(data, at)?;
        if marker == 0xD9 {
            return Ok(());
        }
        if standalone(marker) {
            at = next;
            continue;
        }
        at = after_segment(data, next, marker)?;
        if marker == 0xDA {
            // Entropy-coded data: 0xFF is followed by 0x00 (a stuffed byte), a restart marker
            // or fill, until the next real marker.
            loop {
                let Some(offset) = data[at..].iter().position(|&byte| byte == 0xFF) else {
                    return Err(
                        "truncated: the data ends inside a scan, with no end-of-image marker"
                            .to_string(),
                    );
                };
                at += offset;
                match data.get(at + 1) {
                    None => {
                        return Err(
                            "truncated: the data ends inside a scan, with no end-of-image marker"
                                .to_string(),
                        )
                    }
                    Some(0x00 | 0xD0..=0xD7 | 0xFF) => at += 1,
                    Some(_) => break,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg(width: u32, height: u32) -> Vec<u8> {
        let image =
            image::GrayImage::from_fn(width, height, |x, y| image::Luma([(x * 7 + y) as u8]));
        let mut encoded = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut encoded, 90)
            .encode_image(&image)
            .unwrap();
        encoded
    }

    #[test]
    fn jpeg_frame_header_and_end() {
        let data = jpeg(40, 24);
        assert_eq!(
            jpeg_frame_size(&data).unwrap(),
            FrameSize {
                width: 40,
                height: 24,
                components: 1
            }
        );
        jpeg_is_complete(&data).unwrap();
        // Trailing bytes after the end-of-image marker are allowed.
        let mut padded = data.clone();
        padded.extend_from_slice(&[0, 0, 0]);
        jpeg_is_complete(&padded).unwrap();
        for keep in [data.len() - 2, data.len() / 2, 30, 3] {
            let error = jpeg_is_complete(&data[..keep]).unwrap_err();
            assert!(error.starts_with("truncated"), "kept {keep}: {error}");
        }
        assert!(jpeg_frame_size(b"\xFF\xD8\xFF\xDA\x00\x02").is_err());
        assert!(jpeg_frame_size(b"nope").is_err());
    }

    #[test]
    fn j2k_size_marker() {
        let mut siz = vec![0xFF, 0x4F, 0xFF, 0x51, 0x00, 0x29, 0x00, 0x00];
        for value in [1000u32, 800, 10, 20, 1000, 800, 0, 0] {
            siz.extend_from_slice(&value.to_be_bytes());
        }
        siz.extend_from_slice(&1u16.to_be_bytes());
        siz.extend_from_slice(&[0x0B, 1, 1]);
        assert_eq!(
            j2k_frame_size(&siz).unwrap(),
            FrameSize {
                width: 990,
                height: 780,
                components: 1
            }
        );
        assert!(j2k_frame_size(&siz[..20]).is_err());
        assert!(j2k_frame_size(b"\xFF\xD8\xFF").is_err());
    }
}

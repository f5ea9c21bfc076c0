//! A bounded walk over a DICOM file's element stream, before dicom-rs parses it.
//!
//! dicom-rs trusts length fields (a corrupt length of 0xFFFFFFF0 makes it allocate 4 GiB)
//! and recurses once per sequence level (a 1 MB file of nested sequences overflows the
//! stack). This walk reads only element headers, never values, keeps its own stack of open
//! sequences and items, and refuses, with one line, any file where
//! - a defined length is larger than the bytes left in the file or in its enclosing item or
//!   sequence,
//! - sequences nest deeper than [`MAX_DEPTH`],
//! - there are more than [`MAX_ELEMENTS`] elements, items and fragments in all.
//!
//! It reads the file meta group (always explicit VR little endian), then the data set in
//! implicit VR little endian, explicit VR little endian (also the encoding of every
//! encapsulated transfer syntax) or explicit VR big endian.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};

/// Sequences nested deeper than this are refused; real radiographs use fewer than 6.
pub(super) const MAX_DEPTH: usize = 16;
/// Elements, items and fragments in one file; a radiograph has a few hundred.
pub(super) const MAX_ELEMENTS: u64 = 100_000;

const UNDEFINED_LENGTH: u32 = 0xFFFF_FFFF;
const ITEM: (u16, u16) = (0xFFFE, 0xE000);
const ITEM_END: (u16, u16) = (0xFFFE, 0xE00D);
const SEQUENCE_END: (u16, u16) = (0xFFFE, 0xE0DD);
const PIXEL_DATA: (u16, u16) = (0x7FE0, 0x0010);
const TRANSFER_SYNTAX: (u16, u16) = (0x0002, 0x0010);
const META_START: u64 = 132;

const IMPLICIT_VR_LITTLE_ENDIAN: &str = "1.2.840.10008.1.2";
const EXPLICIT_VR_BIG_ENDIAN: &str = "1.2.840.10008.1.2.2";
const DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN: &str = "1.2.840.10008.1.2.1.99";

/// How the data set after the file meta group is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Encoding {
    ImplicitLittle,
    ExplicitLittle,
    ExplicitBig,
    /// Deflated: its elements cannot be walked without inflating it.
    Deflated,
}

impl Encoding {
    pub(super) fn of(transfer_syntax: &str) -> Encoding {
        match transfer_syntax {
            IMPLICIT_VR_LITTLE_ENDIAN => Encoding::ImplicitLittle,
            EXPLICIT_VR_BIG_ENDIAN => Encoding::ExplicitBig,
            DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN => Encoding::Deflated,
            // Every other transfer syntax, encapsulated ones included.
            _ => Encoding::ExplicitLittle,
        }
    }
}

/// VRs whose explicit header has two reserved bytes and a 4-byte length.
fn has_long_length(vr: [u8; 2]) -> bool {
    matches!(
        &vr,
        b"OB"
            | b"OD"
            | b"OF"
            | b"OL"
            | b"OV"
            | b"OW"
            | b"SQ"
            | b"SV"
            | b"UC"
            | b"UN"
            | b"UR"
            | b"UT"
            | b"UV"
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A data set (the root, or an item of a sequence): elements.
    Elements,
    /// A sequence: items.
    Items,
    /// Encapsulated pixel data: an offset table and fragments, as items.
    Fragments,
}

struct Frame {
    kind: Kind,
    /// Where a defined-length sequence or item ends.
    end: Option<u64>,
    /// No content of this frame may go past this byte: its own end or its parent's limit.
    limit: u64,
}

/// The walker over one file.
pub(super) struct Walker {
    reader: BufReader<File>,
    position: u64,
    length: u64,
    big_endian: bool,
    elements: u64,
}

fn tag_name((group, element): (u16, u16)) -> String {
    format!("({group:04X},{element:04X})")
}

impl Walker {
    /// `file` is positioned anywhere; `length` is its size in bytes.
    pub(super) fn new(file: File, length: u64) -> Walker {
        Walker {
            reader: BufReader::with_capacity(16 << 10, file),
            position: 0,
            length,
            big_endian: false,
            elements: 0,
        }
    }

    fn bytes<const N: usize>(&mut self) -> Result<[u8; N], String> {
        if self.length - self.position < N as u64 {
            return Err(format!(
                "file ends inside an element header at byte {}",
                self.position
            ));
        }
        let mut bytes = [0u8; N];
        self.reader
            .read_exact(&mut bytes)
            .map_err(|cause| format!("cannot read byte {}: {cause}", self.position))?;
        self.position += N as u64;
        Ok(bytes)
    }

    fn u16(&mut self) -> Result<u16, String> {
        let bytes = self.bytes::<2>()?;
        Ok(if self.big_endian {
            u16::from_be_bytes(bytes)
        } else {
            u16::from_le_bytes(bytes)
        })
    }

    fn u32(&mut self) -> Result<u32, String> {
        let bytes = self.bytes::<4>()?;
        Ok(if self.big_endian {
            u32::from_be_bytes(bytes)
        } else {
            u32::from_le_bytes(bytes)
        })
    }

    fn tag(&mut self) -> Result<(u16, u16), String> {
        Ok((self.u16()?, self.u16()?))
    }

    fn skip(&mut self, count: u64) -> Result<(), String> {
        // Lengths are checked against the file before any skip, so this stays inside it.
        let offset = i64::try_from(count).map_err(|_| "length out of range".to_string())?;
        self.reader
            .seek_relative(offset)
            .map_err(|cause| format!("cannot seek past byte {}: {cause}", self.position))?;
        self.position += count;
        Ok(())
    }

    fn count(&mut self) -> Result<(), String> {
        self.elements += 1;
        if self.elements > MAX_ELEMENTS {
            return Err(format!(
                "more than {MAX_ELEMENTS} elements (at byte {})",
                self.position
            ));
        }
        Ok(())
    }

    /// A defined length must fit in what is left of the file and of the enclosing frame.
    fn check_length(
        &self,
        tag: (u16, u16),
        at: u64,
        length: u64,
        limit: u64,
        what: &str,
    ) -> Result<(), String> {
        let left = limit.saturating_sub(self.position);
        if length > left {
            let container = if limit == self.length {
                "the file"
            } else {
                "the enclosing item or sequence"
            };
            return Err(format!(
                "{what} {} at byte {at} claims {length} bytes but only {left} remain in {container}",
                tag_name(tag)
            ));
        }
        Ok(())
    }

    /// The file meta group after the preamble and `DICM`: returns the transfer syntax UID and
    /// leaves the walker at the first element of the data set.
    pub(super) fn meta(&mut self) -> Result<String, String> {
        self.reader
            .seek(SeekFrom::Start(META_START))
            .map_err(|cause| format!("cannot seek to the file meta group: {cause}"))?;
        self.position = META_START;
        self.big_endian = false;
        let mut transfer_syntax = None;
        while self.length - self.position >= 4 {
            let at = self.position;
            let tag = self.tag()?;
            if tag.0 != 0x0002 {
                self.reader
                    .seek_relative(-4)
                    .map_err(|cause| format!("cannot seek back to byte {at}: {cause}"))?;
                self.position = at;
                break;
            }
            self.count()?;
            let vr = self.bytes::<2>()?;
            let length = if has_long_length(vr) {
                self.bytes::<2>()?;
                self.u32()?
            } else {
                u32::from(self.u16()?)
            };
            if length == UNDEFINED_LENGTH {
                return Err(format!(
                    "file meta element {} at byte {at} has an undefined length",
                    tag_name(tag)
                ));
            }
            let length = u64::from(length);
            self.check_length(tag, at, length, self.length, "file meta element")?;
            if tag == TRANSFER_SYNTAX && length <= 64 {
                let mut value = vec![0u8; length as usize];
                self.reader
                    .read_exact(&mut value)
                    .map_err(|cause| format!("cannot read byte {}: {cause}", self.position))?;
                self.position += length;
                let text = String::from_utf8_lossy(&value);
                transfer_syntax = Some(text.trim_end_matches(['\0', ' ']).trim().to_string());
            } else {
                self.skip(length)?;
            }
        }
        transfer_syntax.ok_or_else(|| "file meta group has no Transfer Syntax UID".to_string())
    }

    /// Walks the data set from the current position to the end of the file.
    pub(super) fn data_set(&mut self, encoding: Encoding) -> Result<(), String> {
        let explicit = match encoding {
            Encoding::ImplicitLittle => false,
            Encoding::ExplicitLittle | Encoding::ExplicitBig => true,
            Encoding::Deflated => return Ok(()),
        };
        self.big_endian = encoding == Encoding::ExplicitBig;
        let mut stack = vec![Frame {
            kind: Kind::Elements,
            end: None,
            limit: self.length,
        }];
        let mut depth = 0usize;
        loop {
            let top = stack.last().expect("the root frame is never popped");
            if let Some(end) = top.end {
                if self.position == end {
                    if top.kind != Kind::Elements {
                        depth -= 1;
                    }
                    stack.pop();
                    continue;
                }
                if self.position > end {
                    return Err(format!(
                        "an element header crosses the end of its item or sequence at byte {end}"
                    ));
                }
            }
            if self.position == self.length {
                if stack.len() == 1 {
                    return Ok(());
                }
                return Err(format!(
                    "file ends inside a sequence or item (nesting level {depth})"
                ));
            }
            let (kind, limit, undefined_frame) = (top.kind, top.limit, top.end.is_none());
            self.count()?;
            let at = self.position;
            let tag = self.tag()?;
            let mut push = |kind: Kind, end: Option<u64>, depth: &mut usize| {
                if kind != Kind::Elements {
                    *depth += 1;
                    if *depth > MAX_DEPTH {
                        return Err(format!(
                            "sequences nested deeper than {MAX_DEPTH} levels (at byte {at})"
                        ));
                    }
                }
                stack.push(Frame {
                    kind,
                    end,
                    limit: end.unwrap_or(limit),
                });
                Ok(())
            };
            match kind {
                Kind::Elements => {
                    if tag.0 == 0xFFFE {
                        if tag == ITEM_END && undefined_frame && depth > 0 {
                            self.u32()?;
                            stack.pop();
                            continue;
                        }
                        return Err(format!("unexpected {} at byte {at}", tag_name(tag)));
                    }
                    let vr = if explicit {
                        Some(self.bytes::<2>()?)
                    } else {
                        None
                    };
                    let length = match vr {
                        Some(vr) if !has_long_length(vr) => u32::from(self.u16()?),
                        Some(_) => {
                            self.bytes::<2>()?;
                            self.u32()?
                        }
                        None => self.u32()?,
                    };
                    if length == UNDEFINED_LENGTH {
                        let kind = match vr {
                            _ if tag == PIXEL_DATA && vr != Some(*b"SQ") => Kind::Fragments,
                            None | Some([b'S', b'Q']) | Some([b'U', b'N']) => Kind::Items,
                            Some(vr) => {
                                return Err(format!(
                                    "element {} at byte {at} has an undefined length but VR {}",
                                    tag_name(tag),
                                    String::from_utf8_lossy(&vr)
                                ))
                            }
                        };
                        push(kind, None, &mut depth)?;
                        continue;
                    }
                    let length = u64::from(length);
                    self.check_length(tag, at, length, limit, "element")?;
                    let sequence = match vr {
                        Some(vr) => &vr == b"SQ",
                        // Implicit VR: a value that starts with an item is a sequence (dicom-rs
                        // decides from the dictionary, which only sees sequences that do).
                        None => length >= 8 && self.starts_with_item()?,
                    };
                    if sequence {
                        let end = self.position + length;
                        push(Kind::Items, Some(end), &mut depth)?;
                    } else {
                        self.skip(length)?;
                    }
                }
                Kind::Items | Kind::Fragments => match tag {
                    ITEM => {
                        let length = self.u32()?;
                        if length == UNDEFINED_LENGTH {
                            if kind == Kind::Fragments {
                                return Err(format!(
                                    "pixel data fragment at byte {at} has an undefined length"
                                ));
                            }
                            push(Kind::Elements, None, &mut depth)?;
                            continue;
                        }
                        let length = u64::from(length);
                        let what = if kind == Kind::Fragments {
                            "pixel data fragment"
                        } else {
                            "item"
                        };
                        self.check_length(tag, at, length, limit, what)?;
                        if kind == Kind::Fragments {
                            self.skip(length)?;
                        } else {
                            let end = self.position + length;
                            push(Kind::Elements, Some(end), &mut depth)?;
                        }
                    }
                    SEQUENCE_END if undefined_frame => {
                        self.u32()?;
                        depth -= 1;
                        stack.pop();
                    }
                    other => {
                        return Err(format!(
                            "expected an item at byte {at}, found {}",
                            tag_name(other)
                        ))
                    }
                },
            }
        }
    }

    fn starts_with_item(&mut self) -> Result<bool, String> {
        let at = self.position;
        let tag = self.tag()?;
        self.reader
            .seek_relative(-4)
            .map_err(|cause| format!("cannot seek back to byte {at}: {cause}"))?;
        self.position = at;
        Ok(tag == ITEM)
    }
}

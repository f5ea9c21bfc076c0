//! Small helpers shared across modules.

use sha2::{Digest, Sha256};

/// Rec. 709 luma weights, the same that the `image` crate uses for colour-to-grey: the CPU
/// decoding's and the texture input's.
pub const LUMA_WEIGHTS: [f64; 3] = [0.2126, 0.7152, 0.0722];

pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// What kind of file system object `file_type` is, in words ("a folder", "a FIFO (named pipe)",
/// ...), or `None` for a regular file.
pub fn special_file_kind(file_type: &std::fs::FileType) -> Option<&'static str> {
    if file_type.is_file() {
        return None;
    }
    if file_type.is_dir() {
        return Some("a folder");
    }
    if file_type.is_symlink() {
        return Some("a symbolic link");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_fifo() {
            return Some("a FIFO (named pipe)");
        }
        if file_type.is_char_device() {
            return Some("a character device");
        }
        if file_type.is_block_device() {
            return Some("a block device");
        }
        if file_type.is_socket() {
            return Some("a socket");
        }
    }
    Some("not a regular file")
}

fn refused(reason: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, reason)
}

/// Checks that `metadata` is a regular file of at most `limit` bytes; `what` names the kind of
/// file in the error ("weights files").
pub fn check_regular_file(
    metadata: &std::fs::Metadata,
    limit: u64,
    what: &str,
) -> std::io::Result<()> {
    if let Some(kind) = special_file_kind(&metadata.file_type()) {
        return Err(refused(format!(
            "{kind}, not a regular file; {what} must be regular files"
        )));
    }
    if metadata.len() > limit {
        return Err(refused(format!(
            "{} bytes, more than the {limit} bytes allowed for {what}",
            metadata.len()
        )));
    }
    Ok(())
}

/// Reads a whole regular file of at most `limit` bytes. Anything else is refused by its type
/// before it is opened (a FIFO would block, a device such as /dev/zero never ends, a folder
/// cannot be read), and a longer file before it is read; a file that grows past `limit` while it
/// is read is refused when it passes it. `what` names the kind of file in errors.
pub fn read_regular_file(
    path: &std::path::Path,
    limit: u64,
    what: &str,
) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    check_regular_file(&std::fs::metadata(path)?, limit, what)?;
    let file = std::fs::File::open(path)?;
    // The file that was opened, in case the path changed in between.
    let opened = file.metadata()?;
    check_regular_file(&opened, limit, what)?;
    let mut bytes = Vec::with_capacity(opened.len() as usize);
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(refused(format!(
            "grew past the {limit} bytes allowed for {what} while it was read"
        )));
    }
    Ok(bytes)
}

//! Hostile inputs (issue 14), end to end: a decoder that panics prints nothing through the
//! binary, and a corrupt length allocates nothing (peak RSS measured in a child process).
//! The DICOM files are written byte by byte here, so no shared file is needed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const FIXTURE_WEIGHTS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/cervical_small_f32.safetensors"
);
const CHILD_FILE: &str = "SAGITTA_HOSTILE_CHILD_FILE";

fn element(group: u16, element: u16, vr: &[u8; 2], value: &[u8]) -> Vec<u8> {
    let mut bytes = group.to_le_bytes().to_vec();
    bytes.extend_from_slice(&element.to_le_bytes());
    bytes.extend_from_slice(vr);
    if matches!(vr, b"OB" | b"OW" | b"SQ" | b"UN" | b"UT") {
        bytes.extend_from_slice(&[0, 0]);
        bytes.extend_from_slice(&(value.len() as u32).to_le_bytes());
    } else {
        bytes.extend_from_slice(&(value.len() as u16).to_le_bytes());
    }
    bytes.extend_from_slice(value);
    bytes
}

fn uid(text: &str) -> Vec<u8> {
    let mut bytes = text.as_bytes().to_vec();
    if bytes.len() % 2 == 1 {
        bytes.push(0);
    }
    bytes
}

/// Preamble, meta group and the image attributes of a `size`×`size` 8-bit grey image; the
/// caller appends the Pixel Data.
fn dicom_head(transfer_syntax: &str, size: u16) -> Vec<u8> {
    let meta_body = [
        element(0x0002, 0x0001, b"OB", &[0, 1]),
        element(0x0002, 0x0002, b"UI", &uid("1.2.840.10008.5.1.4.1.1.1")),
        element(0x0002, 0x0003, b"UI", &uid("1.2.3.4")),
        element(0x0002, 0x0010, b"UI", &uid(transfer_syntax)),
    ]
    .concat();
    let mut bytes = vec![0u8; 128];
    bytes.extend_from_slice(b"DICM");
    bytes.extend(element(
        0x0002,
        0x0000,
        b"UL",
        &(meta_body.len() as u32).to_le_bytes(),
    ));
    bytes.extend(meta_body);
    let us = |value: u16| value.to_le_bytes();
    for (tag, vr, value) in [
        (0x0002u16, b"US", us(1)),
        (0x0010, b"US", us(size)),
        (0x0011, b"US", us(size)),
        (0x0100, b"US", us(8)),
        (0x0101, b"US", us(8)),
        (0x0102, b"US", us(7)),
        (0x0103, b"US", us(0)),
    ] {
        bytes.extend(element(0x0028, tag, vr, &value));
        if tag == 0x0002 {
            bytes.extend(element(0x0028, 0x0004, b"CS", b"MONOCHROME2 "));
        }
    }
    bytes
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Run by [`corrupt_lengths_allocate_nothing`] in a child process: loads the file named in
/// the environment and prints the error and the peak resident size.
#[test]
fn child_loads_the_file_named_in_the_environment() {
    let Some(path) = std::env::var_os(CHILD_FILE) else {
        return;
    };
    let error = sagitta::io::load_radiograph(Path::new(&path)).unwrap_err();
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let peak = status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))
        .unwrap_or("VmHWM: unknown");
    println!();
    println!("CHILD error: {error}");
    println!("CHILD {peak}");
}

#[test]
fn corrupt_lengths_allocate_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let explicit = "1.2.840.10008.1.2.1";
    let mut pixel_data = dicom_head(explicit, 64);
    // Pixel Data (7FE0,0010) OW claiming 0xFFFFFFF0 bytes, 4 KiB behind it.
    pixel_data.extend_from_slice(&[0xE0, 0x7F, 0x10, 0x00, b'O', b'W', 0, 0]);
    pixel_data.extend_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    pixel_data.extend(std::iter::repeat_n(9u8, 4096));
    // A private OB element with the same length, before the image attributes.
    let mut private = dicom_head(explicit, 64);
    let at = private.len() - 7 * 10 - 20;
    let mut hostile = vec![0x09, 0x00, 0x01, 0x10, b'O', b'B', 0, 0];
    hostile.extend_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    hostile.extend(std::iter::repeat_n(7u8, 4096));
    private.splice(at..at, hostile);

    for (name, bytes) in [("pixel_data.dcm", pixel_data), ("private_ob.dcm", private)] {
        let path = write(dir.path(), name, &bytes);
        let started = Instant::now();
        let output = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "child_loads_the_file_named_in_the_environment",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(CHILD_FILE, &path)
            .output()
            .unwrap();
        let elapsed = started.elapsed();
        let stdout = String::from_utf8_lossy(&output.stdout);
        println!("{name}: {:.2} s", elapsed.as_secs_f64());
        for line in stdout.lines().filter(|line| line.starts_with("CHILD")) {
            println!("  {line}");
        }
        assert!(output.status.success(), "{stdout}");
        assert!(
            stdout.contains("claims 4294967280 bytes"),
            "{name}: {stdout}"
        );
        let peak_kb: u64 = stdout
            .lines()
            .find_map(|line| line.strip_prefix("CHILD VmHWM:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in the child's output");
        assert!(peak_kb < 100 * 1024, "{name}: peak RSS {peak_kb} kB");
        assert!(elapsed < Duration::from_secs(10), "{name}: {elapsed:?}");
    }
}

/// An RLE fragment of 2 bytes: dicom-rs indexes its 64-byte header and panics. The record
/// says so, and nothing about a panic reaches the terminal.
#[test]
fn a_panicking_decoder_prints_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = dicom_head("1.2.840.10008.1.2.5", 32);
    bytes.extend_from_slice(&[0xE0, 0x7F, 0x10, 0x00, b'O', b'B', 0, 0]);
    bytes.extend_from_slice(&u32::MAX.to_le_bytes());
    for fragment in [&[][..], &[1, 0][..]] {
        bytes.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0]);
        bytes.extend_from_slice(&(fragment.len() as u32).to_le_bytes());
        bytes.extend_from_slice(fragment);
    }
    bytes.extend_from_slice(&[0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
    let path = write(dir.path(), "rle_panic.dcm", &bytes);

    let output = Command::new(env!("CARGO_BIN_EXE_sagitta"))
        .arg("analyze")
        .arg(&path)
        .args(["--weights", FIXTURE_WEIGHTS])
        .env_remove("SAGITTA_WEIGHTS")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("stdout: {stdout}");
    println!("stderr: {stderr}");
    assert!(
        stdout.contains("decoder failed on malformed data"),
        "{stdout}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stdout.contains("panicked"), "{stdout}");
}

/// The memory ceiling per image is the user's: `--max-image-mib` refuses, as an error record
/// (exit 1, the batch goes on), an image whose decoded pixels would take more, before decoding.
#[test]
fn the_per_image_memory_ceiling_is_the_users() {
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/samples/phantom_right.png");
    // 1000 x 1200 16-bit grey: 2.3 MiB decoded.
    let run = |mib: &str| {
        Command::new(env!("CARGO_BIN_EXE_sagitta"))
            .args(["analyze", "-q", sample, "--max-image-mib", mib, "--weights"])
            .arg(FIXTURE_WEIGHTS)
            .env_remove("SAGITTA_WEIGHTS")
            .output()
            .expect("run the binary")
    };
    let refused = run("1");
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    let record: serde_json::Value = serde_json::from_slice(&refused.stdout).unwrap();
    let record = if record.is_array() {
        record[0].clone()
    } else {
        record
    };
    let error = record["error"].as_str().unwrap_or_default().to_string();
    assert!(error.contains("memory limit"), "{record}");
    let allowed = run("64");
    assert_eq!(allowed.status.code(), Some(0), "{allowed:?}");
}

//! A deterministic mutation fuzz of everything `sagitta analyze` reads: the shared NEMA DICOMs
//! (when `../shared/dicom` is present), the shipped samples (PNG and DICOM), JPEG and TIFF
//! re-encodings of a sample, and the weights file. Every mutated input must end as a record (or,
//! for weights, a clean refusal): no abort, no panic text, a complete JSON array, exit 0/1 for
//! images (2 only for a refused weights file), and a peak resident memory of at most 1 GiB.
//!
//! The CI slice is small; the full run measures the README's figure:
//!   SAGITTA_FUZZ_CASES=2000 cargo test --release --test fuzz -- --nocapture

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Peak resident set size allowed for any run, bytes.
const PEAK_RSS_LIMIT: u64 = 1 << 30;

/// Mutated files analysed by one process (the peak of a batch bounds the peak of each file).
const BATCH: usize = 50;

fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// xorshift64*: the same cases on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One mutation of `data`: bit flips, a length-like word, a cut, a duplicated or zeroed chunk,
/// inserted noise.
fn mutate(data: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut out = data.to_vec();
    if out.is_empty() {
        return out;
    }
    match rng.below(7) {
        0 => {
            for _ in 0..1 + rng.below(8) {
                let at = rng.below(out.len());
                out[at] ^= 1 << rng.below(8);
            }
        }
        1 | 2 => {
            // Length fields are where parsers allocate: huge, maximal and odd 32-bit values.
            let words = [0xFFFF_FFF0u32, 0xFFFF_FFFF, 0x7FFF_FFFF, 0x0010_0000, 0, 1];
            let word = if rng.below(4) == 0 {
                rng.next() as u32
            } else {
                words[rng.below(words.len())]
            };
            let at = rng.below(out.len().saturating_sub(4).max(1));
            for (k, b) in word.to_le_bytes().iter().enumerate() {
                if at + k < out.len() {
                    out[at + k] = *b;
                }
            }
        }
        3 => out.truncate(rng.below(out.len())),
        4 => {
            let start = rng.below(out.len());
            let len = 1 + rng.below(4096.min(out.len() - start));
            let chunk = out[start..start + len].to_vec();
            let at = rng.below(out.len());
            out.splice(at..at, chunk);
        }
        5 => {
            let start = rng.below(out.len());
            let len = 1 + rng.below(4096.min(out.len() - start));
            out[start..start + len].fill(0);
        }
        _ => {
            let at = rng.below(out.len());
            let noise: Vec<u8> = (0..1 + rng.below(64)).map(|_| rng.next() as u8).collect();
            out.splice(at..at, noise);
        }
    }
    out
}

/// The seed files: (name, extension, bytes).
fn seeds() -> Vec<(String, String, Vec<u8>)> {
    let mut seeds = Vec::new();
    let mut add = |path: &Path| {
        let Ok(bytes) = std::fs::read(path) else {
            return;
        };
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let ext = path
            .extension()
            .map_or(String::new(), |e| e.to_string_lossy().into_owned());
        seeds.push((name, ext, bytes));
    };
    let shared = manifest().join("../shared/dicom");
    if let Ok(entries) = std::fs::read_dir(&shared) {
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| Some(e.ok()?.path())).collect();
        paths.sort();
        // Small files keep a case fast; the large ones are still mutated, less often.
        for path in paths.iter().filter(|p| p.is_file()) {
            add(path);
        }
    } else {
        eprintln!("../shared/dicom not found: fuzzing the shipped samples only");
    }
    for sample in ["phantom_right.png", "phantom_dicom.dcm"] {
        add(&manifest().join("samples").join(sample));
    }
    // JPEG and TIFF encodings of a sample, made here so that every decoder is fuzzed.
    let png = manifest().join("samples/phantom_right.png");
    if let Ok(image) = image::open(&png) {
        let grey = image.to_luma8();
        for (ext, format) in [
            ("jpg", image::ImageFormat::Jpeg),
            ("tif", image::ImageFormat::Tiff),
        ] {
            let mut bytes = std::io::Cursor::new(Vec::new());
            if grey.write_to(&mut bytes, format).is_ok() {
                seeds.push(("phantom_right".into(), ext.into(), bytes.into_inner()));
            }
        }
    }
    seeds
}

/// Runs the binary and returns (exit status, stdout, stderr, peak RSS of the child in bytes).
// The child is reaped by wait4 (for its resource usage), not by Child::wait.
#[allow(clippy::zombie_processes)]
fn run_measured(command: &mut Command) -> (Option<i32>, String, String, u64) {
    let child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run the sagitta binary");
    let pid = child.id() as libc::pid_t;
    // Read the pipes while the child runs, then reap it with wait4 for its resource usage.
    let mut stdout_pipe = child.stdout.unwrap();
    let mut stderr_pipe = child.stderr.unwrap();
    let out_thread = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stdout_pipe, &mut s).ok();
        s
    });
    let err_thread = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stderr_pipe, &mut s).ok();
        s
    });
    let mut status: libc::c_int = 0;
    // SAFETY: plain FFI call on our own child's pid with valid out-pointers.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid, "wait4 failed");
    let code = if libc::WIFEXITED(status) {
        Some(libc::WEXITSTATUS(status))
    } else {
        None
    };
    // ru_maxrss is in KiB on Linux.
    let peak = usage.ru_maxrss as u64 * 1024;
    (
        code,
        out_thread.join().unwrap(),
        err_thread.join().unwrap(),
        peak,
    )
}

fn case_count() -> usize {
    std::env::var("SAGITTA_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(150)
}

#[test]
fn mutated_images_end_as_records_within_a_memory_bound() {
    let seeds = seeds();
    assert!(!seeds.is_empty(), "no seed files");
    let cases = case_count();
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(0x5A61_7474_6121_2026);
    let started = Instant::now();
    let (mut peak, mut ok, mut failed, mut batches) = (0u64, 0usize, 0usize, 0usize);
    let mut done = 0;
    while done < cases {
        let batch_dir = dir.path().join(format!("batch{batches}"));
        std::fs::create_dir_all(&batch_dir).unwrap();
        let count = BATCH.min(cases - done);
        let mut names = Vec::new();
        for k in 0..count {
            let (name, ext, bytes) = &seeds[rng.below(seeds.len())];
            let mutated = mutate(bytes, &mut rng);
            let file = batch_dir.join(format!("{:05}_{name}.{ext}", done + k));
            std::fs::write(&file, mutated).unwrap();
            names.push(file);
        }
        let mut command = Command::new(env!("CARGO_BIN_EXE_sagitta"));
        command
            .arg("analyze")
            .arg("-q")
            .args(&names)
            .arg("--weights")
            .arg(manifest().join("weights/cervical_default.safetensors"))
            .env("SAGITTA_PIPELINE_CACHE", "off")
            .env("SAGITTA_TUNING", "off");
        let (code, stdout, stderr, rss) = run_measured(&mut command);
        let what = format!("batch {batches} ({})", batch_dir.display());
        assert!(
            matches!(code, Some(0) | Some(1)),
            "{what}: exit {code:?} (a signal or 'could not run'); stderr:\n{stderr}"
        );
        assert!(
            !stderr.contains("panicked"),
            "{what}: panic text reached the user:\n{stderr}"
        );
        let records: serde_json::Value = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("{what}: stdout is not one JSON value ({e})"));
        let records = records.as_array().cloned().unwrap_or_else(|| vec![records]);
        assert_eq!(records.len(), count, "{what}: one record per input");
        for record in &records {
            if record.get("error").is_some_and(|e| !e.is_null()) {
                failed += 1;
            } else {
                ok += 1;
            }
        }
        assert!(rss <= PEAK_RSS_LIMIT, "{what}: peak RSS {} MiB", rss >> 20);
        peak = peak.max(rss);
        done += count;
        batches += 1;
        // Keep the disk small: a passed batch is not needed any more.
        std::fs::remove_dir_all(&batch_dir).ok();
    }
    eprintln!(
        "fuzz: {cases} mutated images in {batches} processes ({} seeds): {ok} analysed, {failed} \
         error records, no abort or panic; peak RSS {:.0} MiB (limit {} MiB); {:.0} s",
        seeds.len(),
        peak as f64 / 1048576.0,
        PEAK_RSS_LIMIT >> 20,
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn mutated_weights_are_refused_or_run_within_a_memory_bound() {
    let weights = std::fs::read(manifest().join("weights/cervical_default.safetensors")).unwrap();
    let cases = (case_count() / 10).max(8);
    let dir = tempfile::tempdir().unwrap();
    let sample = manifest().join("samples/phantom_right.png");
    let mut rng = Rng(0x005E_ED0F_3E16_4775);
    let mut peak = 0u64;
    let mut refused = 0;
    for case in 0..cases {
        let mut mutated = mutate(&weights, &mut rng);
        // Half the cases keep the header intact (mutations in the tensors' data), where only the
        // meaning checks can catch them.
        if case % 2 == 0 && mutated.len() == weights.len() {
            let header = 8 + u64::from_le_bytes(weights[..8].try_into().unwrap()) as usize;
            mutated[..header].copy_from_slice(&weights[..header]);
        }
        let path = dir.path().join(format!("w{case}.safetensors"));
        std::fs::write(&path, &mutated).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_sagitta"));
        command
            .arg("analyze")
            .arg("-q")
            .arg(&sample)
            .arg("--weights")
            .arg(&path)
            .env("SAGITTA_PIPELINE_CACHE", "off")
            .env("SAGITTA_TUNING", "off");
        let (code, _, stderr, rss) = run_measured(&mut command);
        assert!(
            matches!(code, Some(0) | Some(1) | Some(2)),
            "weights case {case}: exit {code:?}; stderr:\n{stderr}"
        );
        assert!(
            !stderr.contains("panicked"),
            "weights case {case}:\n{stderr}"
        );
        assert!(
            rss <= PEAK_RSS_LIMIT,
            "weights case {case}: {} MiB",
            rss >> 20
        );
        refused += usize::from(code == Some(2));
        peak = peak.max(rss);
    }
    eprintln!(
        "fuzz: {cases} mutated weights files: {refused} refused, the rest ran; peak RSS {:.0} MiB",
        peak as f64 / 1048576.0
    );
}

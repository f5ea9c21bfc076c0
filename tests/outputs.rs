//! `sagitta analyze`'s outputs cannot hurt (issue 14): no output overwrites an input, even
//! through a link; no file is written through a symbolic link; every file appears whole or not
//! at all (a full disk stops the run and leaves no cut file); a second writer to the same
//! output folder or CSV file is refused while the first runs; a CSV is never overwritten, only
//! appended to with --csv-append. The real binary on the tiny fixture model.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use image::{GrayImage, ImageFormat, Luma};

const FIXTURE_WEIGHTS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/cervical_small_f32.safetensors"
);

fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("sagitta-outputs-test")
        .tempdir()
        .expect("a temporary directory")
}

fn command(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sagitta"));
    command
        .arg("analyze")
        .args(args)
        .args(["--weights", FIXTURE_WEIGHTS])
        .env_remove("SAGITTA_WEIGHTS")
        .env("SAGITTA_TUNING", "off")
        .env("SAGITTA_PIPELINE_CACHE", "off");
    command
}

fn sagitta(args: &[&str]) -> Output {
    command(args).output().expect("run the sagitta binary")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn s(path: &Path) -> &str {
    path.to_str().expect("UTF-8 temporary path")
}

fn write_png(path: &Path, width: u32, height: u32) {
    GrayImage::from_fn(width, height, |x, y| {
        let column = (x as i64 - width as i64 / 2).abs() < width as i64 / 8;
        let body = (y * 8 / height).is_multiple_of(2);
        Luma([if column && body {
            220
        } else {
            30 + (x * 40 / width) as u8
        }])
    })
    .save_with_format(path, ImageFormat::Png)
    .expect("write PNG");
}

/// Exit code 2 and the first `sagitta:` line, which must contain every one of `needles`.
fn assert_refused(output: &Output, needles: &[&str]) -> String {
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    let line = stderr
        .lines()
        .find(|line| line.starts_with("sagitta:"))
        .unwrap_or_else(|| panic!("no error line: {stderr}"))
        .to_string();
    for needle in needles {
        assert!(line.contains(needle), "'{needle}' not in: {line}");
    }
    println!("refused: {line}");
    line
}

/// Files whose name says they are temporary or locks, anywhere below `dir`.
fn leftovers(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if entry.file_type().unwrap().is_dir() {
            found.extend(leftovers(&path));
        } else if path.to_string_lossy().contains("sagitta-tmp")
            || path.to_string_lossy().ends_with(".lock")
        {
            found.push(path);
        }
    }
    found
}

#[test]
fn an_overlay_folder_that_is_the_input_folder_is_refused() {
    let dir = scratch();
    let image = dir.path().join("x.png");
    write_png(&image, 128, 140);
    let before = std::fs::read(&image).unwrap();
    let output = sagitta(&[s(dir.path()), "--overlay", s(dir.path())]);
    assert_refused(&output, &["--overlay", "x.png", "is an input"]);
    assert_eq!(
        std::fs::read(&image).unwrap(),
        before,
        "the input is untouched"
    );
    assert!(leftovers(dir.path()).is_empty());
}

#[test]
fn an_overlay_file_that_is_the_input_is_refused_also_through_a_link() {
    let dir = scratch();
    let image = dir.path().join("self.png");
    write_png(&image, 128, 140);
    let before = std::fs::read(&image).unwrap();
    let output = sagitta(&[s(&image), "--overlay", s(&image)]);
    assert_refused(&output, &["--overlay", "self.png", "is an input"]);
    #[cfg(unix)]
    {
        let link = dir.path().join("link.png");
        std::os::unix::fs::symlink(&image, &link).unwrap();
        let output = sagitta(&[s(&image), "--overlay", s(&link)]);
        assert_refused(&output, &["link.png", "is an input"]);
        // The input reached through a linked folder, the output by its real path.
        let linked_dir = dir.path().join("linked");
        std::os::unix::fs::symlink(dir.path(), &linked_dir).unwrap();
        let output = sagitta(&[s(&linked_dir.join("self.png")), "--overlay", s(&image)]);
        assert_refused(&output, &["is an input"]);
    }
    assert_eq!(std::fs::read(&image).unwrap(), before);
}

#[test]
fn a_csv_flag_swallowing_an_input_is_refused() {
    // `analyze --csv *.dcm`: the shell makes the first image the CSV.
    let dir = scratch();
    let first = dir.path().join("first.png");
    let second = dir.path().join("second.png");
    write_png(&first, 128, 140);
    write_png(&second, 140, 128);
    let before = std::fs::read(&first).unwrap();
    let output = sagitta(&["--csv", s(&first), s(&second)]);
    assert_refused(&output, &["--csv", "first.png", "exists", "--csv-append"]);
    let output = sagitta(&["--csv", s(&first), "--csv-append", s(&second)]);
    assert_refused(&output, &["first.png", "header"]);
    // Named as an input too.
    let output = sagitta(&[s(&first), s(&second), "--csv", s(&first)]);
    assert_refused(&output, &["first.png", "is an input"]);
    assert_eq!(std::fs::read(&first).unwrap(), before);
    assert!(leftovers(dir.path()).is_empty());
    // The weights are an input too.
    let weights_before = std::fs::read(FIXTURE_WEIGHTS).unwrap();
    let output = sagitta(&[s(&second), "--csv", FIXTURE_WEIGHTS, "--csv-append"]);
    assert_refused(&output, &["cervical_small_f32.safetensors", "is an input"]);
    assert_eq!(std::fs::read(FIXTURE_WEIGHTS).unwrap(), weights_before);
}

#[test]
fn a_json_in_out_that_is_an_input_is_refused() {
    // `analyze DIR --out DIR` with a file named like a record: the record would replace it.
    let dir = scratch();
    let image = dir.path().join("x.png");
    write_png(&image, 128, 140);
    let list = dir.path().join("x.json");
    std::fs::write(&list, format!("{}\n", s(&image))).unwrap();
    let output = sagitta(&["--list", s(&list), "--out", s(dir.path())]);
    assert_refused(&output, &["--out", "x.json", "is an input"]);
    assert_eq!(
        std::fs::read_to_string(&list).unwrap(),
        format!("{}\n", s(&image))
    );
}

#[cfg(unix)]
#[test]
fn symbolic_links_in_output_folders_are_not_followed() {
    let dir = scratch();
    let image = dir.path().join("x.png");
    write_png(&image, 128, 140);
    let victim = dir.path().join("victim.txt");
    std::fs::write(&victim, "precious").unwrap();
    for (flag, name) in [("--out", "x.json"), ("--overlay", "x.png")] {
        let out = dir.path().join(format!("out{flag}"));
        std::fs::create_dir_all(&out).unwrap();
        std::os::unix::fs::symlink(&victim, out.join(name)).unwrap();
        let output = sagitta(&[s(&image), flag, s(&out)]);
        assert_refused(&output, &[flag, name, "symbolic link"]);
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert!(std::fs::symlink_metadata(out.join(name))
            .unwrap()
            .file_type()
            .is_symlink());
        assert!(leftovers(&out).is_empty(), "{:?}", leftovers(&out));
    }
    // A CSV that is a link.
    let link = dir.path().join("table.csv");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let output = sagitta(&[s(&image), "--csv", s(&link), "--csv-append"]);
    assert_refused(&output, &["table.csv", "symbolic link"]);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
}

#[test]
fn special_files_are_refused_as_csv() {
    if !Path::new("/dev/full").exists() {
        println!("no /dev/full here: skipped");
        return;
    }
    let dir = scratch();
    let image = dir.path().join("x.png");
    write_png(&image, 128, 140);
    let output = sagitta(&[s(&image), "--csv", "/dev/full", "--csv-append"]);
    assert_refused(&output, &["/dev/full", "character device"]);
}

#[test]
fn the_csv_is_refused_when_it_exists_and_appended_to_with_csv_append() {
    let dir = scratch();
    let image = dir.path().join("x.png");
    write_png(&image, 128, 140);
    let csv = dir.path().join("runs/table.csv");
    let first = sagitta(&[s(&image), "--csv", s(&csv)]);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    let table = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(table.lines().count(), 2, "{table}");

    let again = sagitta(&[s(&image), "--csv", s(&csv)]);
    assert_refused(&again, &["table.csv", "exists", "--csv-append"]);
    assert_eq!(std::fs::read_to_string(&csv).unwrap(), table, "untouched");

    let appended = sagitta(&[s(&image), "--csv", s(&csv), "--csv-append"]);
    assert_eq!(
        appended.status.code(),
        Some(0),
        "{}",
        text(&appended.stderr)
    );
    let grown = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = grown.lines().collect();
    assert_eq!(lines.len(), 3, "{grown}");
    assert!(grown.starts_with(&table), "the old rows are kept");
    assert!(lines[0].starts_with("image,status,"));
    assert!(analysed(lines[2]), "{}", lines[2]);
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("image,")).count(),
        1,
        "one header"
    );

    // An empty file gets the header.
    let empty = dir.path().join("empty.csv");
    std::fs::write(&empty, "").unwrap();
    let output = sagitta(&[s(&image), "--csv", s(&empty)]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(std::fs::read_to_string(&empty)
        .unwrap()
        .starts_with("image,status,"));
    assert!(
        leftovers(dir.path()).is_empty(),
        "{:?}",
        leftovers(dir.path())
    );
    println!("appended table:\n{grown}");
}

#[test]
fn a_lock_held_by_a_running_process_refuses_a_second_writer() {
    let dir = scratch();
    let image = dir.path().join("x.png");
    write_png(&image, 128, 140);
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    // This test process is alive: its pid in the lock stands for another sagitta.
    let lock = out.join(".sagitta.lock");
    std::fs::write(&lock, format!("{}\n", std::process::id())).unwrap();
    let output = sagitta(&[s(&image), "--out", s(&out)]);
    assert_refused(
        &output,
        &[".sagitta.lock", &format!("pid {}", std::process::id())],
    );
    assert!(!out.join("x.json").exists());
    assert!(lock.exists(), "another process's lock is left alone");

    // The CSV file's lock.
    std::fs::remove_file(&lock).unwrap();
    let csv = dir.path().join("all.csv");
    let csv_lock = dir.path().join(".all.csv.lock");
    std::fs::write(&csv_lock, format!("{}\n", std::process::id())).unwrap();
    let output = sagitta(&[s(&image), "--csv", s(&csv)]);
    assert_refused(&output, &[".all.csv.lock"]);
    std::fs::remove_file(&csv_lock).unwrap();

    // A stale lock (its process has exited) is taken over, and released at the end.
    let mut child = Command::new("true").spawn().expect("run `true`");
    let dead = child.id();
    child.wait().unwrap();
    std::fs::write(&lock, format!("{dead}\n")).unwrap();
    let output = sagitta(&[s(&image), "--out", s(&out), "--csv", s(&csv)]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(out.join("x.json").exists());
    assert!(
        leftovers(dir.path()).is_empty(),
        "{:?}",
        leftovers(dir.path())
    );
}

#[test]
fn two_processes_sharing_out_and_csv_never_mix_their_files() {
    let dir = scratch();
    let inputs = dir.path().join("in");
    std::fs::create_dir_all(&inputs).unwrap();
    for k in 0..4 {
        write_png(&inputs.join(format!("img{k}.png")), 128 + 8 * k, 140);
    }
    let out = dir.path().join("out");
    let csv = out.join("all.csv");
    let start = || {
        command(&[
            s(&inputs),
            "--out",
            s(&out),
            "--overlay",
            s(&out),
            "--csv",
            s(&csv),
            "--csv-append",
            "-q",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
    };
    let first = start();
    // Wait until the first holds its lock, then start the second.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !out.join(".sagitta.lock").exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let second = start();
    let outputs = [
        first.wait_with_output().unwrap(),
        second.wait_with_output().unwrap(),
    ];
    let mut succeeded = 0;
    for output in &outputs {
        match output.status.code() {
            Some(0) => succeeded += 1,
            Some(2) => {
                let line = assert_refused(output, &["locked by another sagitta"]);
                assert!(line.contains(".sagitta.lock") || line.contains(".all.csv.lock"));
            }
            other => panic!("{other:?}: {}", text(&output.stderr)),
        }
    }
    assert!(succeeded >= 1);
    println!("{succeeded} of 2 concurrent runs wrote (the other was refused)");
    let table = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 1 + 4 * succeeded, "{table}");
    assert_eq!(lines.iter().filter(|l| l.starts_with("image,")).count(), 1);
    for line in &lines[1..] {
        assert!(analysed(line), "{line}");
    }
    for k in 0..4 {
        let record: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join(format!("img{k}.json"))).unwrap())
                .expect("whole JSON");
        assert_eq!(record["landmarks"].as_array().unwrap().len(), 29);
        image::open(out.join(format!("img{k}.png"))).expect("whole PNG");
    }
    assert!(
        leftovers(dir.path()).is_empty(),
        "{:?}",
        leftovers(dir.path())
    );
}

/// A full disk, simulated with the file size limit (`ulimit -f`: writes past it fail with
/// EFBIG, as they would with ENOSPC): the run stops with a clear error and leaves no cut or
/// temporary file, and no CSV with a cut row. The limit (4 KiB) holds the CSV's header but not
/// a record or an overlay.
#[cfg(unix)]
#[test]
fn a_full_disk_stops_the_run_and_leaves_no_partial_file() {
    if Command::new("bash").arg("-c").arg("true").status().is_err() {
        println!("no bash here: skipped");
        return;
    }
    let dir = scratch();
    let image = dir.path().join("x.png");
    write_png(&image, 128, 140);
    let out = dir.path().join("out");
    for overlay in [false, true] {
        let mut script = format!(
            "trap '' XFSZ; ulimit -f 4; exec '{}' analyze '{}' --weights '{}' --out '{}' --csv '{}'",
            env!("CARGO_BIN_EXE_sagitta"),
            s(&image),
            FIXTURE_WEIGHTS,
            s(&out),
            s(&out.join("all.csv")),
        );
        if overlay {
            script.push_str(&format!(" --overlay '{}'", s(&out)));
        }
        let output = Command::new("bash")
            .arg("-c")
            .arg(&script)
            .env_remove("SAGITTA_WEIGHTS")
            .env("SAGITTA_TUNING", "off")
            .env("SAGITTA_PIPELINE_CACHE", "off")
            .env("MESA_SHADER_CACHE_DISABLE", "true")
            .output()
            .unwrap();
        let line = assert_refused(&output, &["cannot write", "the run stopped"]);
        assert!(
            line.contains(if overlay { "x.png" } else { "x.json" }),
            "{line}"
        );
        let left: Vec<String> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(left.is_empty(), "nothing partial is left: {left:?}");
    }
}

#[test]
fn outputs_replace_earlier_ones_whole_and_leave_no_temporary_files() {
    let dir = scratch();
    let image = dir.path().join("x.png");
    write_png(&image, 128, 140);
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("x.json"), "an earlier, cut record").unwrap();
    let output = sagitta(&[s(&image), "--out", s(&out), "--overlay", s(&out)]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("x.json")).unwrap()).unwrap();
    assert_eq!(record["image"], s(&image));
    image::open(out.join("x.png")).expect("the overlay decodes");
    let names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let mut names = names;
    names.sort();
    assert_eq!(names, ["x.json", "x.png"]);
}

/// Whether a CSV row is of an analysed image (its values may be flagged: the test images
/// are not spines).
fn analysed(line: &str) -> bool {
    let status = line.split(',').nth(1).unwrap_or_default();
    status == "ok" || status == "flagged"
}

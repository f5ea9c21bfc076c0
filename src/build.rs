//! Records the git commit sagitta is built from (`SAGITTA_GIT_COMMIT`), so that every record
//! names the exact code that produced it. Outside a git checkout (a source tarball) the
//! commit is "unknown".

use std::path::Path;
use std::process::Command;

fn main() {
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .map(|text| text.trim().to_string())
        .filter(|text| !text.is_empty());
    let dirty = Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .is_some_and(|output| !output.stdout.is_empty());
    if let Some(commit) = commit {
        let suffix = if dirty { "-modified" } else { "" };
        println!("cargo:rustc-env=SAGITTA_GIT_COMMIT={commit}{suffix}");
    }
    // Run again when HEAD moves (a commit, a checkout) or the index changes (staging).
    let git_dir = Command::new("git")
        .args(["rev-parse", "--git-dir"])
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .map(|text| text.trim().to_string());
    if let Some(git_dir) = git_dir.filter(|dir| !dir.is_empty()) {
        for file in ["HEAD", "index"] {
            let path = Path::new(&git_dir).join(file);
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
        let common = Command::new("git")
            .args(["rev-parse", "--git-common-dir"])
            .output()
            .ok()
            .and_then(|output| String::from_utf8(output.stdout).ok())
            .map(|text| text.trim().to_string());
        if let Some(common) = common {
            let refs = Path::new(&common).join("refs").join("heads");
            if refs.exists() {
                println!("cargo:rerun-if-changed={}", refs.display());
            }
        }
    }
    // And when the sources change, so that "-modified" stays true (a directory is scanned
    // whole).
    for path in ["src", "shaders", "Cargo.toml"] {
        println!("cargo:rerun-if-changed={path}");
    }
}

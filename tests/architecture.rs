//! The one-way stack of `src/` holds itself: every `crate::` path in a file names only the layers
//! its own layer may use, the layers form no cycle, and no file of `engine/`, `ops/` or `nn/`
//! (nor any shader) names a model family.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each layer and the layers it may import (besides itself). Lower layers come first.
const LAYERS: &[(&str, &[&str])] = &[
    ("error", &[]),
    ("util", &["error"]),
    ("anatomy", &["error"]),
    ("measure", &["anatomy", "error"]),
    ("engine", &["error", "util"]),
    ("ops", &["engine", "error", "util"]),
    ("nn", &["ops", "engine", "error", "util"]),
    (
        "models",
        &["nn", "ops", "engine", "anatomy", "error", "util"],
    ),
    ("io", &["measure", "error", "util"]),
    (
        "report",
        &[
            "models", "engine", "io", "measure", "anatomy", "error", "util",
        ],
    ),
    (
        "api",
        &[
            "report", "models", "nn", "ops", "engine", "io", "measure", "anatomy", "error", "util",
        ],
    ),
    (
        "bench",
        &[
            "api", "report", "models", "nn", "ops", "engine", "io", "measure", "anatomy", "error",
            "util",
        ],
    ),
    (
        "cli",
        &[
            "bench", "api", "report", "models", "nn", "ops", "engine", "io", "measure", "anatomy",
            "error", "util",
        ],
    ),
];

/// Names of model families that must not appear below `models/`.
const FAMILIES: &[&str] = &[
    "cervical",
    "csm",
    "myelopathy",
    "wholespine",
    "whole_spine",
    "lumbar",
];

/// Layers that must not know any model family.
const MODEL_FREE: &[&str] = &["engine", "ops", "nn"];

fn src() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The layer of a file: its folder under `src/`, or its stem for a top-level file (`lib.rs`
/// is the crate root and belongs to no layer).
fn layer_of(file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src()).unwrap();
    let first = relative.components().next()?.as_os_str().to_str()?;
    let name = first.trim_end_matches(".rs");
    // lib.rs is the root; build.rs is the build script (Cargo.toml `build`), not the crate.
    (name != "lib" && name != "build").then(|| name.to_string())
}

/// Code without comments (line comments and doc comments; block comments are not used).
fn code_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(|line| line.split("//").next().unwrap_or(""))
        .filter(|line| !line.trim().is_empty())
}

/// Every layer named by a `crate::layer` path in `text`, including grouped imports
/// (`use crate::{a, b::c}`).
fn layers_used(text: &str) -> BTreeSet<String> {
    let known: BTreeSet<&str> = LAYERS.iter().map(|(l, _)| *l).collect();
    let mut used = BTreeSet::new();
    let code: Vec<&str> = code_lines(text).collect();
    let code = code.join("\n");
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        let after = &rest[at + "crate::".len()..];
        if let Some(group) = after.strip_prefix('{') {
            // A grouped import: every top-level name inside the braces.
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if known.contains(name.as_str()) {
                    used.insert(name);
                }
            }
        } else {
            let name: String = after
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if known.contains(name.as_str()) {
                used.insert(name);
            }
        }
        rest = after;
    }
    used
}

/// The forbidden edges (file, from layer, to layer) among `files` (path, text).
fn forbidden_edges(files: &[(PathBuf, String)]) -> Vec<(PathBuf, String, String)> {
    let allowed: BTreeMap<&str, &[&str]> = LAYERS.iter().copied().collect();
    let mut bad = Vec::new();
    for (path, text) in files {
        let Some(layer) = layer_of(path) else {
            continue;
        };
        let may = allowed
            .get(layer.as_str())
            .unwrap_or_else(|| panic!("{}: layer '{layer}' is not in LAYERS", path.display()));
        for used in layers_used(text) {
            if used != layer && !may.contains(&used.as_str()) {
                bad.push((path.clone(), layer.clone(), used));
            }
        }
    }
    bad
}

/// A cycle in the layer graph of `files`, if there is one.
fn layer_cycle(files: &[(PathBuf, String)]) -> Option<Vec<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (path, text) in files {
        if let Some(layer) = layer_of(path) {
            let edges = graph.entry(layer.clone()).or_default();
            edges.extend(layers_used(text).into_iter().filter(|l| *l != layer));
        }
    }
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, stack, done) {
                return Some(cycle);
            }
        }
        stack.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, &graph, &mut Vec::new(), &mut done))
}

fn sources() -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p, text)
        })
        .collect()
}

#[test]
fn layers_import_only_the_layers_below_them() {
    let files = sources();
    assert!(files.len() > 30, "src/ not found");
    let bad = forbidden_edges(&files);
    assert!(
        bad.is_empty(),
        "forbidden imports (file: layer -> layer):\n{}",
        bad.iter()
            .map(|(p, from, to)| format!("  {}: {from} -> {to}", p.display()))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(
        layer_cycle(&files),
        None,
        "the layers import each other in a cycle"
    );
}

#[test]
fn engine_ops_nn_and_shaders_name_no_model_family() {
    let mut offenders = Vec::new();
    for (path, text) in sources() {
        let Some(layer) = layer_of(&path) else {
            continue;
        };
        if !MODEL_FREE.contains(&layer.as_str()) {
            continue;
        }
        let lower = text.to_lowercase();
        for family in FAMILIES {
            if lower.contains(family) {
                offenders.push(format!("{}: '{family}'", path.display()));
            }
        }
    }
    let shaders = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut stack = vec![shaders];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let lower = std::fs::read_to_string(&path).unwrap().to_lowercase();
                for family in FAMILIES {
                    if lower.contains(family) {
                        offenders.push(format!("{}: '{family}'", path.display()));
                    }
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "model families named below models/:\n  {}",
        offenders.join("\n  ")
    );
}

/// The checks above can fail: a forbidden import, a grouped one, and a cycle are caught.
#[test]
fn the_checks_catch_forbidden_imports_and_cycles() {
    let file = |path: &str, text: &str| (src().join(path), text.to_string());
    let engine_knows_a_model = [file(
        "engine/device.rs",
        "use crate::error::Result;\nuse crate::models::cervical::CervicalModel;\n",
    )];
    let bad = forbidden_edges(&engine_knows_a_model);
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert_eq!((bad[0].1.as_str(), bad[0].2.as_str()), ("engine", "models"));

    let grouped = [file(
        "measure/cervical.rs",
        "use crate::{anatomy::x, io::Radiograph};\n",
    )];
    let bad = forbidden_edges(&grouped);
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert_eq!(bad[0].2, "io");

    let inline = [file(
        "models/cervical/mod.rs",
        "let r = crate::report::build(x);\n",
    )];
    assert_eq!(forbidden_edges(&inline).len(), 1);

    let commented = [file(
        "ops/mod.rs",
        "/// See [`crate::models`].\n// crate::cli\n",
    )];
    assert!(forbidden_edges(&commented).is_empty());

    let cycle = [
        file("engine/plan.rs", "use crate::ops::conv2d;\n"),
        file("ops/mod.rs", "use crate::engine::Plan;\n"),
    ];
    assert!(layer_cycle(&cycle).is_some());
}

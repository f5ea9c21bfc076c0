//! `sagitta analyze`: radiographs in; landmarks, the nine cervical parameters, the myelopathy
//! screen, CSV and overlays out.
//!
//! The pieces, usable on their own: [`collect_inputs`] turns files, folders and list files
//! into the images to analyse; [`resolve_models`] finds and checks the weights files of the
//! models asked for; [`Analyzer`] holds the models (built once per batch) and turns one
//! radiograph into a [`Record`]; [`run`] is the whole batch with its outputs; [`main`] maps
//! the outcome to the exit code.
//!
//! Exit codes: 0 when every image was analysed, 1 when some failed (each has an error
//! record), 2 when the batch could not start (bad arguments, no or bad weights, no GPU).

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc::sync_channel;
use std::time::Instant;

use glob::{MatchOptions, Pattern};
use indicatif::{ProgressBar, ProgressStyle};

use crate::api::{open_weights, Analysis, AnalyzeError, Analyzer, EngineOptions, WEIGHTS_ENV};
use crate::engine::{AdapterChoice, Precision};
use crate::io::{load_radiograph_with, LoadLimits};
use crate::models::Family;
use crate::nn::WeightFile;
use crate::report::overlay;
use crate::report::{
    csv_field, csv_header, csv_row, landmarks_csv_header, landmarks_csv_rows, Record,
};

use super::dicomweb;
use super::output::{self, AtomicFile, InputIdentities, OutputLock};

/// The default weights of the landmark model, looked for in the current directory and then in
/// the source tree.
pub const DEFAULT_WEIGHTS: &str = "weights/cervical_default.safetensors";
/// The default weights of the CSM classifier, looked for likewise.
pub const DEFAULT_CSM_WEIGHTS: &str = "weights/csm_default.safetensors";
/// The environment variable naming the CSM classifier's weights file.
pub const CSM_WEIGHTS_ENV: &str = "SAGITTA_CSM_WEIGHTS";
/// The default weights of the whole-spine model, looked for likewise.
pub const DEFAULT_WHOLESPINE_WEIGHTS: &str = "weights/wholespine_default.safetensors";
/// The environment variable naming the whole-spine model's weights file.
pub const WHOLESPINE_WEIGHTS_ENV: &str = "SAGITTA_WHOLESPINE_WEIGHTS";

/// Where the lumbar model's default weights are (a reduced model trained on phantoms, not for
/// clinical use: weights/README.md), and the environment variable naming a file.
pub const DEFAULT_LUMBAR_WEIGHTS: &str = "weights/lumbar_default.safetensors";
pub const LUMBAR_WEIGHTS_ENV: &str = "SAGITTA_LUMBAR_WEIGHTS";

/// Which models `analyze` runs on each image (`--model`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ModelChoice {
    /// The landmark model and the nine cervical parameters (SPEC-cervical.md).
    Cervical,
    /// The myelopathy classifier (SPEC-csm.md).
    Csm,
    /// The whole-spine landmarks and 18 parameters (SPEC-wholespine.md), for whole-spine
    /// lateral films.
    Wholespine,
    /// The lumbar level labels, 4 corners per level and 3 angles (SPEC-lumbar.md; the shipped
    /// default is a reduced model trained on phantoms, not for clinical use).
    Lumbar,
    /// Every model with shipped weights (cervical, csm and wholespine), each on every image.
    All,
}

/// How a record names its image (`--redact-paths`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PathRedaction {
    Relative,
    Hash,
}

impl PathRedaction {
    /// The name a record gives the image at `path`.
    pub fn apply(self, path: &Path) -> String {
        let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        match self {
            PathRedaction::Relative => {
                let here = std::env::current_dir().ok();
                here.as_deref()
                    .and_then(|here| absolute.strip_prefix(here).ok())
                    .map(Path::to_path_buf)
                    .or_else(|| path.file_name().map(PathBuf::from))
                    .unwrap_or_default()
                    .display()
                    .to_string()
            }
            PathRedaction::Hash => {
                use sha2::{Digest, Sha256};
                let digest = Sha256::digest(absolute.as_os_str().as_encoded_bytes());
                let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
                format!("sha256:{hex}")
            }
        }
    }
}

/// File extensions taken from folders by default. Files without an extension are taken too
/// (DICOM files often have none), and so is any other file whose content is an image.
pub const IMAGE_EXTENSIONS: [&str; 10] = [
    "png", "jpg", "jpeg", "tif", "tiff", "dcm", "dicom", "dic", "ima", "dcm30",
];

/// The command-line arguments of `sagitta analyze`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AnalyzeArgs {
    /// Radiographs: PNG, JPEG, TIFF or DICOM files, folders (searched recursively), or
    /// DICOMweb URLs of a study, series or instance (<service>/studies/<UID>[/series/<UID>
    /// [/instances/<UID>]]), fetched with QIDO-RS and WADO-RS.
    #[arg(value_name = "INPUT", required_unless_present = "list")]
    pub inputs: Vec<PathBuf>,
    /// The models to run: cervical (landmarks and parameters), csm (the myelopathy screen),
    /// wholespine (45 landmarks, 18 parameters), lumbar (level labels, corners, 3 angles), or
    /// all shipped ones (cervical, csm and wholespine)
    /// [default: the models of the --weights files, else cervical].
    #[arg(long, value_enum, value_name = "MODEL")]
    pub model: Option<ModelChoice>,
    /// Weights file; its architecture picks the model. Repeat it for several models (one file
    /// per model) [default: $SAGITTA_WEIGHTS, else weights/cervical_default.safetensors; for
    /// csm $SAGITTA_CSM_WEIGHTS, else weights/csm_default.safetensors; for wholespine
    /// $SAGITTA_WHOLESPINE_WEIGHTS, else weights/wholespine_default.safetensors].
    #[arg(long, value_name = "FILE")]
    pub weights: Vec<PathBuf>,
    /// Write one JSON record per image to DIR/<file stem>.json instead of printing to stdout.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Write a CSV table with one row per image (a new file: an existing one is refused unless
    /// --csv-append is given). It appears whole when the batch ends.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Write the --csv table (the same columns, typed: values and numbers as doubles, the rest
    /// as UTF-8 strings, empty cells as nulls) as a Parquet file. A new file, written whole
    /// when the batch ends; an existing one is replaced.
    #[arg(long, value_name = "FILE")]
    pub parquet: Option<PathBuf>,
    /// Add the rows to the --csv (and --landmarks-csv) file if it exists (its header must be
    /// this version's); the header is written only to a new or empty file.
    #[arg(long)]
    pub csv_append: bool,
    /// Write the landmarks as a long-format CSV: one row per image and landmark (image,
    /// landmark, x_px, y_px, sd_px, confidence, source, flagged_by). Same rules as --csv.
    #[arg(long, value_name = "FILE")]
    pub landmarks_csv: Option<PathBuf>,
    /// Append one record per line to FILE (JSON lines), created if missing and never
    /// truncated: each line is written whole as soon as its image is done, so a killed run keeps
    /// every finished record (a line cut by a full disk is removed).
    #[arg(long, value_name = "FILE")]
    pub jsonl: Option<PathBuf>,
    /// Draw overlays: a .png file for a single image, else a folder of <file stem>.png.
    #[arg(long, value_name = "FILE|DIR")]
    pub overlay: Option<PathBuf>,
    /// Write each analysed DICOM image's results as DICOM objects in new series of the
    /// source's study: the measurements as a Comprehensive SR (TID 1500 Measurement Report) to
    /// DIR/<file stem>.sr.dcm, and the overlay as a Grayscale Softcopy Presentation State on
    /// the original image to DIR/<file stem>.pr.dcm. Images in other formats get a warning in
    /// their record instead (these objects need a study to file under).
    #[arg(long, value_name = "DIR")]
    pub dicom_out: Option<PathBuf>,
    /// With --dicom-out, send each image's DICOM objects to this DICOMweb service with STOW-RS
    /// (e.g. http://pacs:8042/dicom-web) once they are written; the record says where each
    /// went. Credentials as for DICOMweb inputs.
    #[arg(long, value_name = "URL", requires = "dicom_out")]
    pub store: Option<String>,
    /// A file with the DICOMweb credentials: 'Bearer <token>' or '<user>:<password>' on its
    /// first line [default: SAGITTA_DICOMWEB_TOKEN, else SAGITTA_DICOMWEB_USER and
    /// SAGITTA_DICOMWEB_PASSWORD]. Never on the command line.
    #[arg(long, value_name = "FILE")]
    pub dicomweb_auth: Option<PathBuf>,
    /// With --dicom-out, also write the rendered overlay as a Secondary Capture image to
    /// DIR/<file stem>.sc.dcm (for viewers without presentation states; burnt-in annotation).
    #[arg(long, requires = "dicom_out")]
    pub secondary_capture: bool,
    /// Pixel spacing in mm (isotropic); replaces the spacing in the files.
    #[arg(long, value_name = "MM", value_parser = parse_pixel_spacing)]
    pub pixel_spacing: Option<f64>,
    /// Only take files from folders whose name matches this pattern (e.g. '*.dcm'; case
    /// insensitive; a pattern with '/' matches the path below the folder). Default: image
    /// extensions, files without an extension, and any other file whose content is an image.
    #[arg(long, value_name = "PATTERN")]
    pub glob: Option<String>,
    /// No progress bar and no summary (errors are still printed).
    #[arg(long, short)]
    pub quiet: bool,
    /// Read more inputs from FILE, one path per line ('-' for stdin; blank lines and lines
    /// starting with '#' are skipped; relative paths are relative to the current directory).
    #[arg(long, value_name = "FILE")]
    pub list: Option<PathBuf>,
    /// GPU precision: f32, or f16: activations stored in f16 (half the memory) and, where the
    /// adapter has shader-f16, convolution products in f16 with f32 accumulation (elsewhere
    /// activations are packed two to a u32 and computed in f32); landmarks move by well under a
    /// pixel.
    #[arg(long, default_value = "f32", value_name = "f32|f16")]
    pub precision: Precision,
    /// Analyse only shard K of N (K from 1 to N): each input goes to one shard by a hash of its
    /// path as found, the same in every run and on every machine, so N runs given the same
    /// inputs (e.g. a Slurm array) analyse every image exactly once between them; output names
    /// are chosen over all the inputs, so shards writing into one --out never collide
    /// [default: from SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_MIN and SLURM_ARRAY_TASK_COUNT
    /// when they are set].
    #[arg(long, value_name = "K/N", value_parser = parse_shard)]
    pub shard: Option<Shard>,
    /// Resume: images whose record in --out is already there and analysed are not analysed
    /// again (error records are retried). Needs --out.
    #[arg(long, requires = "out")]
    pub skip_existing: bool,
    /// Put the patient's name, ID and birth date of DICOM inputs in the records (left out by
    /// default; the DICOM objects of --dicom-out always carry them, as they go back to that
    /// patient's study).
    #[arg(long)]
    pub include_phi: bool,
    /// How records name their image: as given (default), relative (to the current folder,
    /// else the file name alone), or hash (the SHA-256 of the absolute path, for sharing
    /// records without the folder names, which often hold patient names).
    #[arg(long, value_enum, value_name = "MODE")]
    pub redact_paths: Option<PathRedaction>,
    /// Memory ceiling per image, MiB: larger files, and images whose decoded pixels would take
    /// more, are error records (checked from the headers before anything is decoded).
    #[arg(long, default_value_t = 256, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub max_image_mib: u64,
}

impl AnalyzeArgs {
    /// The decoding limits these arguments ask for.
    pub fn load_limits(&self) -> LoadLimits {
        let bytes = self.max_image_mib << 20;
        LoadLimits {
            max_file_bytes: bytes,
            max_decoded_bytes: bytes,
            ..LoadLimits::default()
        }
    }
}

/// One shard of a batch split N ways (`--shard K/N`, K from 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// From 1 to `count`.
    pub number: u64,
    pub count: u64,
}

impl Shard {
    /// Whether `path` (as the input search found it) belongs to this shard: FNV-1a of its
    /// text, which no platform, run or library version changes.
    pub fn takes(&self, path: &Path) -> bool {
        let text = path.to_string_lossy();
        let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        });
        hash % self.count == self.number - 1
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.number, self.count)
    }
}

/// `K/N` with 1 <= K <= N.
pub fn parse_shard(text: &str) -> Result<Shard, String> {
    let bad = || format!("'{text}' is not a shard: write K/N with 1 <= K <= N, e.g. 2/8");
    let (number, count) = text.trim().split_once('/').ok_or_else(bad)?;
    let number: u64 = number.trim().parse().map_err(|_| bad())?;
    let count: u64 = count.trim().parse().map_err(|_| bad())?;
    if number == 0 || count == 0 || number > count {
        return Err(bad());
    }
    Ok(Shard { number, count })
}

fn parse_pixel_spacing(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("'{text}' is not a number of millimetres"))?;
    if value.is_finite() && value > 0.0 && value < 100.0 {
        Ok(value)
    } else {
        Err(format!(
            "{text} mm is not a plausible pixel spacing (it must be above 0 and below 100)"
        ))
    }
}

/// One thing to analyse: a file, or a path that could not be searched (its reason becomes
/// an error record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputItem {
    pub path: PathBuf,
    pub problem: Option<String>,
}

/// What [`collect_inputs`] found.
#[derive(Debug, Clone, Default)]
pub struct InputSet {
    pub items: Vec<InputItem>,
    /// Files in folders that were passed over because they are not images (by name and
    /// content) or do not match `--glob`.
    pub skipped: usize,
}

/// Turns the command line's inputs and list file into the images to analyse.
///
/// Files given by name are always taken (a missing one gets an error record). Folders are
/// searched recursively in name order, skipping hidden files and folders; their files are
/// filtered by `glob` or, without one, by [`is_probably_image`]. Subfolders that are among
/// `output_folders` are not searched, so that overlays written below an input folder are not
/// analysed as radiographs on the next run. The same file reached twice is analysed once.
pub fn collect_inputs(
    inputs: &[PathBuf],
    list: Option<&Path>,
    glob: Option<&str>,
    output_folders: &[PathBuf],
) -> Result<InputSet, AnalyzeError> {
    let pattern = glob
        .map(|text| {
            Pattern::new(text)
                .map_err(|error| AnalyzeError::Usage(format!("--glob '{text}': {error}")))
        })
        .transpose()?;
    let mut roots: Vec<PathBuf> = inputs.to_vec();
    if let Some(list) = list {
        roots.extend(read_list(list)?);
    }
    // Folders that do not exist yet cannot hold inputs.
    let outputs: HashSet<PathBuf> = output_folders
        .iter()
        .filter_map(|folder| std::fs::canonicalize(folder).ok())
        .collect();
    let is_output = |path: &Path| {
        !outputs.is_empty() && std::fs::canonicalize(path).is_ok_and(|path| outputs.contains(&path))
    };
    let mut set = InputSet::default();
    let mut seen = HashSet::new();
    let mut add = |set: &mut InputSet, item: InputItem| {
        let identity = std::fs::canonicalize(&item.path).unwrap_or_else(|_| item.path.clone());
        if seen.insert(identity) {
            set.items.push(item);
        }
    };
    for root in roots {
        if !root.is_dir() {
            add(
                &mut set,
                InputItem {
                    path: root,
                    problem: None,
                },
            );
            continue;
        }
        let walker = walkdir::WalkDir::new(&root)
            .follow_links(true)
            .sort_by_file_name()
            .into_iter()
            // Depth 0 is the folder the user named, hidden or not (e.g. ".").
            .filter_entry(|entry| {
                entry.depth() == 0
                    || !(is_hidden(entry.file_name())
                        || entry.file_type().is_dir() && is_output(entry.path()))
            });
        for entry in walker {
            let entry = match entry {
                Ok(entry) => entry,
                Err(error) => {
                    let path = error.path().unwrap_or(&root).to_path_buf();
                    let reason = error
                        .io_error()
                        .map_or_else(|| error.to_string(), |io| io.to_string());
                    add(
                        &mut set,
                        InputItem {
                            problem: Some(format!("{}: cannot search: {reason}", path.display())),
                            path,
                        },
                    );
                    continue;
                }
            };
            if !entry.file_type().is_file() {
                continue;
            }
            let path = entry.path();
            let wanted = match &pattern {
                Some(pattern) => {
                    let relative = path.strip_prefix(&root).unwrap_or(path);
                    let options = MatchOptions {
                        case_sensitive: false,
                        require_literal_separator: true,
                        require_literal_leading_dot: false,
                    };
                    if pattern.as_str().contains('/') {
                        pattern.matches_path_with(relative, options)
                    } else {
                        pattern.matches_with(&entry.file_name().to_string_lossy(), options)
                    }
                }
                None => is_probably_image(path),
            };
            if wanted {
                add(
                    &mut set,
                    InputItem {
                        path: path.to_path_buf(),
                        problem: None,
                    },
                );
            } else {
                set.skipped += 1;
            }
        }
    }
    Ok(set)
}

fn is_hidden(name: &std::ffi::OsStr) -> bool {
    name.to_string_lossy().starts_with('.')
}

fn read_list(list: &Path) -> Result<Vec<PathBuf>, AnalyzeError> {
    let unreadable = |error: std::io::Error| {
        AnalyzeError::Usage(format!("{}: cannot read the list: {error}", list.display()))
    };
    let reader: Box<dyn BufRead> = if list == Path::new("-") {
        Box::new(BufReader::new(std::io::stdin()))
    } else {
        Box::new(BufReader::new(File::open(list).map_err(unreadable)?))
    };
    let mut paths = Vec::new();
    for line in reader.lines() {
        let line = line.map_err(unreadable)?;
        let line = line.trim();
        if !line.is_empty() && !line.starts_with('#') {
            paths.push(PathBuf::from(line));
        }
    }
    Ok(paths)
}

/// Whether a file found in a folder should be analysed without a `--glob`: an image or DICOM
/// extension, no extension, or content that starts like a PNG, JPEG, TIFF or DICOM file. Other
/// files (notes, JSON and CSV outputs of an earlier run) are passed over instead of filling
/// the batch with error records.
pub fn is_probably_image(path: &Path) -> bool {
    match path.extension() {
        None => true,
        Some(extension) => {
            let extension = extension.to_string_lossy().to_ascii_lowercase();
            IMAGE_EXTENSIONS.contains(&extension.as_str()) || starts_like_an_image(path)
        }
    }
}

fn starts_like_an_image(path: &Path) -> bool {
    let mut head = Vec::with_capacity(132);
    let read = File::open(path).and_then(|file| file.take(132).read_to_end(&mut head));
    if read.is_err() {
        return false;
    }
    let signatures: [&[u8]; 6] = [
        b"\x89PNG\r\n\x1a\n",
        &[0xFF, 0xD8, 0xFF],
        b"II*\0",
        b"MM\0*",
        b"II+\0",
        b"MM\0+",
    ];
    // DICOM's magic follows a 128-byte preamble.
    let dicom = head.len() >= 132 && &head[128..132] == b"DICM";
    dicom
        || signatures
            .iter()
            .any(|signature| head.starts_with(signature))
}

/// The default weights file of `family`: `$SAGITTA_WEIGHTS` (cervical), `$SAGITTA_CSM_WEIGHTS`
/// (csm) or `$SAGITTA_WHOLESPINE_WEIGHTS` (wholespine), else its shipped file in the current
/// directory, else the same file in the source tree this binary was built from. Returns the path and who named it.
pub fn default_weights(family: Family) -> Result<(PathBuf, String), AnalyzeError> {
    let (env, file) = match family {
        Family::Cervical => (WEIGHTS_ENV, DEFAULT_WEIGHTS),
        Family::Csm => (CSM_WEIGHTS_ENV, DEFAULT_CSM_WEIGHTS),
        Family::WholeSpine => (WHOLESPINE_WEIGHTS_ENV, DEFAULT_WHOLESPINE_WEIGHTS),
        Family::Lumbar => (LUMBAR_WEIGHTS_ENV, DEFAULT_LUMBAR_WEIGHTS),
    };
    if let Some(path) = std::env::var_os(env).filter(|value| !value.is_empty()) {
        return Ok((PathBuf::from(path), format!("${env}")));
    }
    let candidates = [
        PathBuf::from(file),
        Path::new(env!("CARGO_MANIFEST_DIR")).join(file),
    ];
    candidates
        .iter()
        .find(|path| path.is_file())
        .map(|path| (path.clone(), format!("--model {}", family.name())))
        .ok_or_else(|| AnalyzeError::NoWeights {
            tried: candidates
                .iter()
                .map(|path| path.display().to_string())
                .collect::<Vec<_>>()
                .join(" and "),
            env,
        })
}

/// The weights files of the models to run, opened and checked: each `--weights` file's
/// architecture picks its model; `--model` names the models (a file of another model is
/// refused, naming both architectures); a model asked for without a file gets its default.
pub fn resolve_models(
    choice: Option<ModelChoice>,
    explicit: &[PathBuf],
) -> Result<Vec<WeightFile>, AnalyzeError> {
    let wanted: Option<Vec<Family>> = choice.map(|choice| match choice {
        ModelChoice::Cervical => vec![Family::Cervical],
        ModelChoice::Csm => vec![Family::Csm],
        ModelChoice::Wholespine => vec![Family::WholeSpine],
        ModelChoice::Lumbar => vec![Family::Lumbar],
        ModelChoice::All => vec![Family::Cervical, Family::Csm, Family::WholeSpine],
    });
    let mut files: Vec<(WeightFile, Family)> = Vec::new();
    for path in explicit {
        let asked_by = wanted
            .as_ref()
            .filter(|families| families.len() == 1)
            .map(|families| (families[0], format!("--model {}", families[0].name())));
        let (file, family) = open_weights(
            path,
            asked_by
                .as_ref()
                .map(|(family, flag)| (*family, flag.as_str())),
        )?;
        if let Some((previous, _)) = files.iter().find(|(_, other)| *other == family) {
            return Err(AnalyzeError::Usage(format!(
                "--weights {} and --weights {} are both '{}' models; give one file per model",
                previous.path.display(),
                path.display(),
                family.arch()
            )));
        }
        files.push((file, family));
    }
    let wanted = wanted.unwrap_or_else(|| {
        if explicit.is_empty() {
            vec![Family::Cervical]
        } else {
            Vec::new()
        }
    });
    for family in wanted {
        if files.iter().any(|(_, other)| *other == family) {
            continue;
        }
        let (path, asked_by) = default_weights(family)?;
        let (file, _) = open_weights(&path, Some((family, &asked_by)))?;
        files.push((file, family));
    }
    // The landmark model first: records and CSV list it first.
    files.sort_by_key(|(_, family)| *family != Family::Cervical);
    Ok(files.into_iter().map(|(file, _)| file).collect())
}

/// How a batch went.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchSummary {
    pub analyzed: usize,
    pub failed: usize,
}

/// Where the overlays go.
enum OverlayTarget {
    File(PathBuf),
    Folder(PathBuf),
}

/// Output file names: each input's file stem, made unique within the batch (`name`,
/// `name-2`, …; compared case-insensitively for case-insensitive file systems).
pub fn unique_stems(paths: &[PathBuf]) -> Vec<String> {
    let mut used = HashSet::new();
    paths
        .iter()
        .map(|path| {
            let stem = path
                .file_stem()
                .map(|stem| stem.to_string_lossy().into_owned())
                .filter(|stem| !stem.is_empty())
                .unwrap_or_else(|| "image".to_string());
            let mut candidate = stem.clone();
            let mut counter = 2;
            while !used.insert(candidate.to_lowercase()) {
                candidate = format!("{stem}-{counter}");
                counter += 1;
            }
            candidate
        })
        .collect()
}

/// Where one image's files go.
struct PlannedOutputs {
    json: Vec<Option<PathBuf>>,
    overlay: Vec<Option<PathBuf>>,
    dicom: Vec<Option<DicomPaths>>,
}

/// One image's files in `--dicom-out`.
struct DicomPaths {
    sr: PathBuf,
    presentation_state: PathBuf,
    secondary_capture: Option<PathBuf>,
}

/// Checks every output path before anything is written: none may be an input of the run (also
/// through a link), none a symbolic link, no two the same file. Returns the paths per image.
fn plan_outputs(
    args: &AnalyzeArgs,
    weights: &[PathBuf],
    items: &[InputItem],
    stems: &[String],
    overlay_target: Option<&OverlayTarget>,
) -> Result<PlannedOutputs, AnalyzeError> {
    let inputs = InputIdentities::new(
        items
            .iter()
            .map(|item| item.path.as_path())
            .chain(args.list.as_deref().filter(|list| *list != Path::new("-")))
            .chain(weights.iter().map(PathBuf::as_path)),
    );
    let json: Vec<Option<PathBuf>> = stems
        .iter()
        .map(|stem| {
            args.out
                .as_ref()
                .map(|folder| folder.join(format!("{stem}.json")))
        })
        .collect();
    let overlay: Vec<Option<PathBuf>> = stems
        .iter()
        .map(|stem| match overlay_target {
            None => None,
            Some(OverlayTarget::File(path)) => Some(path.clone()),
            Some(OverlayTarget::Folder(folder)) => Some(folder.join(format!("{stem}.png"))),
        })
        .collect();
    let dicom: Vec<Option<DicomPaths>> = stems
        .iter()
        .map(|stem| {
            args.dicom_out.as_ref().map(|folder| DicomPaths {
                sr: folder.join(format!("{stem}.{SR_EXTENSION}")),
                presentation_state: folder.join(format!("{stem}.{PRESENTATION_STATE_EXTENSION}")),
                secondary_capture: args
                    .secondary_capture
                    .then(|| folder.join(format!("{stem}.{SECONDARY_CAPTURE_EXTENSION}"))),
            })
        })
        .collect();
    let mut written = HashSet::new();
    let mut check = |path: &Path, flag: &str| -> Result<(), AnalyzeError> {
        let refuse = |reason: String| {
            Err(AnalyzeError::Usage(format!(
                "{flag} {}: {reason}; nothing was written",
                path.display()
            )))
        };
        if inputs.contains(path) {
            return refuse(
                "is an input of this run (or leads to one) and would be overwritten; choose \
                 another output"
                    .into(),
            );
        }
        if let Err(error) = output::refuse_symlink(path) {
            return refuse(error.to_string());
        }
        if let Some(identity) = output::identity(path) {
            if !written.insert(identity) {
                return refuse("is also another output of this run".into());
            }
        }
        Ok(())
    };
    if let Some(csv) = &args.csv {
        check(csv, "--csv")?;
    }
    if let Some(csv) = &args.landmarks_csv {
        check(csv, "--landmarks-csv")?;
    }
    if let Some(parquet) = &args.parquet {
        check(parquet, "--parquet")?;
    }
    if let Some(jsonl) = &args.jsonl {
        check(jsonl, "--jsonl")?;
    }
    for path in json.iter().flatten() {
        check(path, "--out")?;
    }
    for path in overlay.iter().flatten() {
        check(path, "--overlay")?;
    }
    for paths in dicom.iter().flatten() {
        for path in [&paths.sr, &paths.presentation_state]
            .into_iter()
            .chain(&paths.secondary_capture)
        {
            check(path, "--dicom-out")?;
        }
    }
    Ok(PlannedOutputs {
        json,
        overlay,
        dicom,
    })
}

/// The locks of the run's output folders and CSV file, one per folder (an overlay folder that
/// is the --out folder is locked once).
fn lock_outputs(
    args: &AnalyzeArgs,
    overlay_target: Option<&OverlayTarget>,
) -> Result<Vec<OutputLock>, AnalyzeError> {
    let mut locks = Vec::new();
    let mut folders: Vec<&Path> = args
        .out
        .iter()
        .chain(&args.dicom_out)
        .map(PathBuf::as_path)
        .collect();
    if let Some(OverlayTarget::Folder(folder)) = overlay_target {
        folders.push(folder);
    }
    let mut seen = HashSet::new();
    for folder in folders {
        if seen.insert(output::identity(folder).unwrap_or_else(|| folder.to_path_buf())) {
            // Shards write disjoint names (chosen over every input), so each locks only
            // against a second writer of its own shard.
            let lock_path = match args.shard {
                None => output::folder_lock_path(folder),
                Some(shard) => folder.join(format!(
                    ".sagitta.shard-{}-of-{}.lock",
                    shard.number, shard.count
                )),
            };
            let lock = OutputLock::acquire(&lock_path, folder).map_err(AnalyzeError::Usage)?;
            locks.push(lock);
        }
    }
    let files = args
        .csv
        .iter()
        .chain(&args.landmarks_csv)
        .chain(&args.parquet)
        .chain(&args.jsonl)
        .chain(match overlay_target {
            Some(OverlayTarget::File(path)) => Some(path),
            _ => None,
        });
    for file in files {
        let lock = OutputLock::acquire(&output::file_lock_path(file), file)
            .map_err(AnalyzeError::Usage)?;
        locks.push(lock);
    }
    Ok(locks)
}

/// The CSV file, written under a temporary name and renamed into place when the batch ends:
/// an existing table is refused without `--csv-append`; with it, its rows are kept (its header
/// must be this version's) and the new ones follow.
struct CsvOutput {
    file: AtomicFile,
    /// The rows of one record.
    rows: fn(&Record) -> Vec<Vec<String>>,
}

/// The parameters table: one row per image.
fn parameter_rows(record: &Record) -> Vec<Vec<String>> {
    vec![csv_row(record)]
}

impl CsvOutput {
    /// The table of `flag` (`--csv`, `--landmarks-csv`) with `header`, one record giving
    /// `rows`.
    fn open(
        path: &Path,
        append: bool,
        flag: &str,
        header: &[String],
        rows: fn(&Record) -> Vec<Vec<String>>,
    ) -> Result<Self, AnalyzeError> {
        let refuse =
            |reason: String| AnalyzeError::Usage(format!("{flag} {}: {reason}", path.display()));
        let header = csv_line(header);
        let existing = match std::fs::symlink_metadata(path) {
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
            Err(error) => return Err(output_error(path, error)),
            Ok(metadata) => {
                if let Some(kind) = crate::util::special_file_kind(&metadata.file_type()) {
                    return Err(refuse(format!("{kind}, not a regular file; choose a file")));
                }
                if metadata.len() == 0 {
                    None
                } else if !append {
                    return Err(refuse(
                        "exists; give --csv-append to add this run's rows to it, or choose \
                         another file"
                            .into(),
                    ));
                } else {
                    Some(
                        crate::util::read_regular_file(path, 1 << 30, "CSV tables")
                            .map_err(|error| refuse(format!("cannot read it: {error}")))?,
                    )
                }
            }
        };
        if let Some(bytes) = &existing {
            if !bytes.starts_with(header.as_bytes()) {
                return Err(refuse(
                    "does not start with the header of sagitta's table; rows are only added to \
                     such a table (choose another file)"
                        .into(),
                ));
            }
        }
        let mut file = AtomicFile::create(path).map_err(|error| output_error(path, error))?;
        let start = match &existing {
            Some(bytes) if !bytes.ends_with(b"\n") => {
                // A table without a final line end: its last row is kept whole.
                let mut bytes = bytes.clone();
                bytes.extend_from_slice(b"\r\n");
                bytes
            }
            Some(bytes) => bytes.clone(),
            None => header.into_bytes(),
        };
        file.write_all(&start)
            .map_err(|error| output_error(path, error))?;
        Ok(Self { file, rows })
    }

    fn write(&mut self, record: &Record) -> std::io::Result<()> {
        for row in (self.rows)(record) {
            self.file.write_all(csv_line(&row).as_bytes())?;
        }
        Ok(())
    }

    fn finish(self) -> Result<(), AnalyzeError> {
        let path = self.file.target().to_path_buf();
        self.file
            .commit()
            .map_err(|error| output_error(&path, error))
    }
}

fn csv_line(cells: &[String]) -> String {
    let cells: Vec<String> = cells.iter().map(|cell| csv_field(cell)).collect();
    // CRLF as RFC 4180 asks.
    format!("{}\r\n", cells.join(","))
}

/// The `--jsonl` file: opened for appending; each record is one write of one line.
struct JsonLines {
    path: PathBuf,
    file: File,
}

impl JsonLines {
    fn open(path: &Path) -> Result<Self, AnalyzeError> {
        let refuse =
            |reason: String| AnalyzeError::Usage(format!("--jsonl {}: {reason}", path.display()));
        match std::fs::symlink_metadata(path) {
            Ok(metadata) => {
                if let Some(kind) = crate::util::special_file_kind(&metadata.file_type()) {
                    return Err(refuse(format!("{kind}, not a regular file; choose a file")));
                }
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(output_error(path, error)),
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(path)
            .map_err(|error| output_error(path, error))?;
        // A file whose last line was cut (by hand, or by a crash of another program) gets its
        // next line on a line of its own.
        let length = file
            .metadata()
            .map_err(|error| output_error(path, error))?
            .len();
        if length > 0 {
            use std::io::{Seek, SeekFrom};
            let mut last = [0u8; 1];
            file.seek(SeekFrom::Start(length - 1))
                .and_then(|_| file.read_exact(&mut last))
                .map_err(|error| output_error(path, error))?;
            if last[0] != b'\n' {
                file.write_all(b"\n")
                    .map_err(|error| output_error(path, error))?;
            }
        }
        Ok(Self {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Appends the record's line; on failure the part written is cut off again.
    fn write(&mut self, record: &Record) -> std::io::Result<()> {
        let line = format!("{}\n", record.to_json_line());
        let before = self.file.metadata()?.len();
        let written = self.file.write_all(line.as_bytes());
        if written.is_err() {
            let _ = self.file.set_len(before);
        }
        written
    }
}

/// Why one of an image's output files (overlay, DICOM object) was not written.
enum OutputFailure {
    /// No space left: the batch stops.
    DiskFull(std::io::Error),
    /// This file only (e.g. a folder in the way): the image counts as failed.
    Other(String),
}

/// The overlay picture of an analysed image.
fn render_overlay(
    radiograph: &crate::io::Radiograph,
    record: &crate::report::ImageRecord,
) -> Result<image::RgbImage, String> {
    overlay::render(
        &radiograph.pixels,
        radiograph.width,
        radiograph.height,
        radiograph.dicom.as_ref().and_then(|dicom| dicom.window),
        record,
    )
    .map_err(|error| error.to_string())
}

/// Writes an overlay picture as PNG through a temporary file.
fn write_overlay(path: &Path, picture: &image::RgbImage) -> Result<(), OutputFailure> {
    let cannot = |error: &dyn std::fmt::Display| {
        OutputFailure::Other(format!(
            "{}: cannot write the overlay: {error}",
            path.display()
        ))
    };
    let mut png = std::io::Cursor::new(Vec::new());
    picture
        .write_to(&mut png, image::ImageFormat::Png)
        .map_err(|error| cannot(&error))?;
    output::write_atomic(path, png.get_ref()).map_err(|error| {
        if output::is_disk_full(&error) {
            OutputFailure::DiskFull(error)
        } else {
            cannot(&error)
        }
    })
}

/// The file name extension of the SRs in `--dicom-out`.
pub const SR_EXTENSION: &str = "sr.dcm";
/// The file name extension of the presentation states in `--dicom-out`.
pub const PRESENTATION_STATE_EXTENSION: &str = "pr.dcm";
/// The file name extension of the secondary captures in `--dicom-out`.
pub const SECONDARY_CAPTURE_EXTENSION: &str = "sc.dcm";

/// The result objects `--dicom-out` writes.
#[derive(Clone, Copy)]
enum DicomObjectKind {
    StructuredReport,
    PresentationState,
    SecondaryCapture,
}

impl DicomObjectKind {
    fn name(self) -> &'static str {
        match self {
            DicomObjectKind::StructuredReport => "DICOM SR",
            DicomObjectKind::PresentationState => "DICOM presentation state",
            DicomObjectKind::SecondaryCapture => "DICOM secondary capture",
        }
    }
}

/// Writes one of an analysed DICOM image's result objects through a temporary file. An object
/// of an earlier run at the same path is replaced whole (as records and overlays are) and the
/// record says so. The secondary capture needs the overlay `picture`.
fn write_dicom_object(
    kind: DicomObjectKind,
    path: &Path,
    record: &mut crate::report::ImageRecord,
    picture: Option<&image::RgbImage>,
) -> Result<(), OutputFailure> {
    use crate::report::dicom::{self, capture, gsps, sr, ObjectIdentity};
    let identity = ObjectIdentity::new();
    let now = chrono::Utc::now();
    let failed = |error: &dyn std::fmt::Display| {
        OutputFailure::Other(format!("{}: {error}", path.display()))
    };
    let object = match kind {
        DicomObjectKind::StructuredReport => sr::measurement_report(record, &identity, now),
        DicomObjectKind::PresentationState => gsps::presentation_state(record, &identity, now),
        DicomObjectKind::SecondaryCapture => match picture {
            Some(picture) => capture::secondary_capture(record, picture, &identity, now),
            None => return Err(failed(&"the overlay could not be drawn")),
        },
    }
    .map_err(|error| failed(&error))?;
    let bytes = dicom::encode(&object).map_err(|error| failed(&error))?;
    let replaced = std::fs::symlink_metadata(path).is_ok();
    output::write_atomic(path, &bytes).map_err(|error| {
        if output::is_disk_full(&error) {
            OutputFailure::DiskFull(error)
        } else {
            failed(&format!("cannot write the {}: {error}", kind.name()))
        }
    })?;
    let reference = Some(crate::report::DicomObjectReference {
        path: path.display().to_string(),
        series_instance_uid: identity.series_instance_uid.clone(),
        sop_instance_uid: identity.sop_instance_uid.clone(),
        stored_to: None,
    });
    match kind {
        DicomObjectKind::StructuredReport => record.dicom_sr = reference,
        DicomObjectKind::PresentationState => record.dicom_presentation_state = reference,
        DicomObjectKind::SecondaryCapture => record.dicom_secondary_capture = reference,
    }
    if replaced {
        record.warnings.push(format!(
            "{} {} replaced the file of an earlier run (SOP Instance UID now {})",
            kind.name(),
            path.display(),
            identity.sop_instance_uid
        ));
    }
    Ok(())
}

/// Sends the DICOM objects written for a record with STOW-RS and notes in the record where
/// they went.
fn store_objects(
    client: &dicomweb::Client,
    base: &str,
    record: &mut crate::report::ImageRecord,
) -> Result<(), String> {
    let mut references: Vec<&mut crate::report::DicomObjectReference> = [
        record.dicom_sr.as_mut(),
        record.dicom_presentation_state.as_mut(),
        record.dicom_secondary_capture.as_mut(),
    ]
    .into_iter()
    .flatten()
    .collect();
    if references.is_empty() {
        return Ok(());
    }
    let paths: Vec<PathBuf> = references
        .iter()
        .map(|reference| PathBuf::from(&reference.path))
        .collect();
    let files: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
    client.store(base, &files)?;
    for reference in &mut references {
        reference.stored_to = Some(base.to_string());
    }
    Ok(())
}

/// The name a record gives its image: the DICOMweb URL it was fetched from, else its path as
/// `--redact-paths` asks.
fn record_name(
    path: &Path,
    fetched_from: &HashMap<PathBuf, String>,
    redaction: Option<PathRedaction>,
) -> String {
    match (fetched_from.get(path), redaction) {
        (Some(url), _) => url.clone(),
        (None, Some(redaction)) => redaction.apply(path),
        (None, None) => path.display().to_string(),
    }
}

/// A private folder for fetched DICOMweb instances, removed with everything in it when the run
/// ends.
struct DownloadFolder {
    path: PathBuf,
}

impl DownloadFolder {
    fn new() -> Result<Self, AnalyzeError> {
        let path = std::env::temp_dir().join(format!(
            "sagitta-dicomweb-{}",
            crate::report::dicom::new_uid()
        ));
        std::fs::create_dir(&path).map_err(|error| output_error(&path, error))?;
        Ok(Self { path })
    }
}

impl Drop for DownloadFolder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A table or line that could not be written stops the batch: the error for [`run`].
fn write_failure(path: &Path, error: std::io::Error, done: usize, total: usize) -> AnalyzeError {
    if output::is_disk_full(&error) {
        disk_full(path, &error, done, total)
    } else {
        output_error(path, error)
    }
}

/// A write that failed for lack of space stops the batch: the error for [`run`].
fn disk_full(path: &Path, error: &std::io::Error, done: usize, total: usize) -> AnalyzeError {
    AnalyzeError::Output {
        path: path.to_path_buf(),
        reason: format!(
            "cannot write: {error} (the disk is full or a size limit was reached); the run \
             stopped after {done} of {total} image(s); the files already written are whole, \
             this one was not written"
        ),
    }
}

/// Whether `json` is an analysed (not an error) record of `image`, whole: what
/// `--skip-existing` keeps. Records are written under a temporary name and renamed, so a run
/// killed mid-write leaves none half-written; anything unreadable is analysed again.
fn has_analysed_record(json: &Path, image: &str) -> bool {
    let Ok(bytes) = crate::util::read_regular_file(json, 64 << 20, "records") else {
        return false;
    };
    let Ok(record) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return false;
    };
    record["image"].as_str() == Some(image)
        && matches!(record["status"].as_str(), Some("ok" | "flagged"))
}

/// With `--dicom-out`, whether an image that `--skip-existing` would pass over has all its
/// DICOM objects, or needs none (its record says it is not DICOM); else it is analysed again
/// to write them.
fn has_dicom_objects_or_needs_none(json: &Path, objects: &[PathBuf]) -> bool {
    if objects
        .iter()
        .all(|object| std::fs::symlink_metadata(object).is_ok_and(|metadata| metadata.is_file()))
    {
        return true;
    }
    crate::util::read_regular_file(json, 64 << 20, "records")
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .is_some_and(|record| {
            record["format"]
                .as_str()
                .is_some_and(|format| format != "dicom")
        })
}

/// Progress as log lines, for a batch whose stderr is not a terminal (a Slurm or CI log): a
/// line whenever another twentieth of the batch is done or a minute has passed.
struct ProgressLog {
    total: usize,
    started: Instant,
    last_line: Instant,
    last_done: usize,
}

impl ProgressLog {
    fn new(total: usize) -> Self {
        let now = Instant::now();
        Self {
            total,
            started: now,
            last_line: now,
            last_done: 0,
        }
    }

    fn update(&mut self, done: usize, failed: usize) {
        let step = (self.total / 20).max(1);
        let due = done - self.last_done >= step
            || self.last_line.elapsed().as_secs() >= 60
            || done == self.total;
        if !due {
            return;
        }
        self.last_line = Instant::now();
        self.last_done = done;
        let seconds = self.started.elapsed().as_secs_f64();
        let rate = done as f64 / seconds.max(1e-9);
        let left = (self.total - done) as f64 / rate.max(1e-9);
        eprintln!(
            "sagitta: {done}/{} images ({:.1} %), {failed} failed, {rate:.2} images/s, ETA {}",
            self.total,
            100.0 * done as f64 / self.total.max(1) as f64,
            duration_text(left)
        );
    }
}

fn duration_text(seconds: f64) -> String {
    let seconds = seconds.round() as u64;
    match seconds {
        0..60 => format!("{seconds} s"),
        60..3600 => format!("{} min {} s", seconds / 60, seconds % 60),
        _ => format!("{} h {} min", seconds / 3600, seconds % 3600 / 60),
    }
}

/// Runs the whole batch: inputs, weights, model, then per image the record (stdout or
/// `--out`), the CSV row and the overlay. One image's failure gives its error record and the
/// batch goes on; a full disk stops it.
///
/// Outputs cannot hurt: an output path that is an input (also through a link), a symbolic
/// link, or another output of the run refuses the batch before anything is written; every
/// file is written under a temporary name and renamed into place; each output folder and the
/// CSV file are locked for the run (a second writer is refused).
pub fn run(
    args: &AnalyzeArgs,
    gpu: &AdapterChoice,
    options: &EngineOptions,
) -> Result<BatchSummary, AnalyzeError> {
    let output_folders: Vec<PathBuf> = args
        .out
        .iter()
        .chain(args.overlay.iter().filter(|path| path.is_dir()))
        .chain(&args.dicom_out)
        .cloned()
        .collect();
    // DICOMweb inputs are fetched first, into a folder removed when the run ends.
    let (urls, mut local_inputs): (Vec<PathBuf>, Vec<PathBuf>) = args
        .inputs
        .iter()
        .cloned()
        .partition(|input| dicomweb::is_url(input));
    let web = if urls.is_empty() && args.store.is_none() {
        None
    } else {
        let auth = match &args.dicomweb_auth {
            Some(file) => dicomweb::Auth::from_file(file).map_err(AnalyzeError::Usage)?,
            None => dicomweb::Auth::from_environment(),
        };
        Some(dicomweb::Client::new(auth))
    };
    let mut fetched_from: HashMap<PathBuf, String> = HashMap::new();
    let _download = match (&web, urls.is_empty()) {
        (Some(client), false) => {
            let folder = DownloadFolder::new()?;
            for url in &urls {
                let text = url.to_string_lossy();
                let reference = dicomweb::Reference::parse(&text).map_err(AnalyzeError::Usage)?;
                let fetched = client.fetch(&reference, &folder.path).map_err(|error| {
                    AnalyzeError::Usage(format!("cannot fetch {text}: {error}"))
                })?;
                if !args.quiet {
                    eprintln!("sagitta: {text}: {} instance(s) fetched", fetched.len());
                }
                for instance in fetched {
                    local_inputs.push(instance.path.clone());
                    fetched_from.insert(instance.path, instance.url);
                }
            }
            Some(folder)
        }
        _ => None,
    };
    let inputs = collect_inputs(
        &local_inputs,
        args.list.as_deref(),
        args.glob.as_deref(),
        &output_folders,
    )?;
    if inputs.items.is_empty() {
        return Err(AnalyzeError::Usage(format!(
            "no images found in the inputs given ({} file(s) passed over: not images by name \
             or content, or not matching --glob)",
            inputs.skipped
        )));
    }
    let overlay_target = match &args.overlay {
        None => None,
        Some(path) => {
            let is_png = path
                .extension()
                .is_some_and(|extension| extension.eq_ignore_ascii_case("png"));
            if is_png && !path.is_dir() {
                if inputs.items.len() > 1 {
                    return Err(AnalyzeError::Usage(format!(
                        "--overlay {}: a .png file holds one overlay but there are {} images; \
                         give a folder",
                        path.display(),
                        inputs.items.len()
                    )));
                }
                Some(OverlayTarget::File(path.clone()))
            } else {
                create_folder(path)?;
                Some(OverlayTarget::Folder(path.clone()))
            }
        }
    };
    if let Some(out) = &args.out {
        create_folder(out)?;
    }
    if let Some(folder) = &args.dicom_out {
        create_folder(folder)?;
    }
    if let Some(parent) = args
        .csv
        .as_ref()
        .and_then(|path| path.parent())
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        create_folder(parent)?;
    }
    // Names are chosen over every input before sharding, so that shards never collide.
    let paths: Vec<PathBuf> = inputs.items.iter().map(|item| item.path.clone()).collect();
    let all_stems = unique_stems(&paths);
    let found = inputs.items.len();
    let mut already_done = 0;
    let (items, stems): (Vec<InputItem>, Vec<String>) = inputs
        .items
        .into_iter()
        .zip(all_stems)
        .filter(|(item, _)| args.shard.is_none_or(|shard| shard.takes(&item.path)))
        .filter(|(item, stem)| {
            let done = args.skip_existing
                && args.out.as_ref().is_some_and(|out| {
                    let json = out.join(format!("{stem}.json"));
                    has_analysed_record(
                        &json,
                        &record_name(&item.path, &fetched_from, args.redact_paths),
                    ) && args.dicom_out.as_ref().is_none_or(|folder| {
                        let mut extensions = vec![SR_EXTENSION, PRESENTATION_STATE_EXTENSION];
                        if args.secondary_capture {
                            extensions.push(SECONDARY_CAPTURE_EXTENSION);
                        }
                        let objects: Vec<PathBuf> = extensions
                            .iter()
                            .map(|extension| folder.join(format!("{stem}.{extension}")))
                            .collect();
                        has_dicom_objects_or_needs_none(&json, &objects)
                    })
                });
            already_done += usize::from(done);
            !done
        })
        .unzip();
    let inputs = InputSet {
        items,
        skipped: inputs.skipped,
    };
    if !args.quiet && (args.shard.is_some() || args.skip_existing) {
        eprintln!(
            "sagitta: {} of {found} image(s) to analyse{}{}",
            inputs.items.len(),
            args.shard
                .map(|shard| format!(" in shard {shard}"))
                .unwrap_or_default(),
            if args.skip_existing {
                format!("; {already_done} already analysed in --out")
            } else {
                String::new()
            }
        );
    }
    // Read and checked before the outputs are: a wrong file is the likelier mistake, needs
    // no GPU, and the weights are inputs that no output may overwrite.
    let weights = resolve_models(args.model, &args.weights)?;
    let weight_paths: Vec<PathBuf> = weights.iter().map(|file| file.path.clone()).collect();
    let planned = plan_outputs(
        args,
        &weight_paths,
        &inputs.items,
        &stems,
        overlay_target.as_ref(),
    )?;
    let _locks = lock_outputs(args, overlay_target.as_ref())?;
    let mut tables = Vec::new();
    if let Some(path) = &args.csv {
        let table = CsvOutput::open(
            path,
            args.csv_append,
            "--csv",
            &csv_header(),
            parameter_rows,
        )?;
        tables.push((path.clone(), table));
    }
    if let Some(path) = &args.landmarks_csv {
        let table = CsvOutput::open(
            path,
            args.csv_append,
            "--landmarks-csv",
            &landmarks_csv_header(),
            landmarks_csv_rows,
        )?;
        tables.push((path.clone(), table));
    }

    let mut json_lines = args.jsonl.as_deref().map(JsonLines::open).transpose()?;
    let mut parquet_rows: Vec<Vec<String>> = Vec::new();
    let mut analyzer = Analyzer::new(&weights, gpu, options)?;
    for note in analyzer.notes() {
        eprintln!("sagitta: {note}");
    }
    analyzer.set_precision(args.precision)?;

    let single = inputs.items.len() == 1;
    let mut progress_log = (!args.quiet && !single && !std::io::stderr().is_terminal())
        .then(|| ProgressLog::new(inputs.items.len()));
    let progress = if args.quiet || single {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::new(inputs.items.len() as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "{bar:30} {pos}/{len} images  {per_sec}  ETA {eta}  {wide_msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    };
    let started = Instant::now();
    let mut stdout = std::io::stdout().lock();
    // Without --out the records go to stdout as one JSON array (one element for one image:
    // the same shape whatever the count), written as they come.
    let stream_array = args.out.is_none();
    if stream_array {
        write_stdout(&mut stdout, "[\n");
    }
    let mut summary = BatchSummary::default();
    let total = inputs.items.len();

    // Decoding (DICOM especially) runs on its own thread, one image ahead of the GPU.
    let outcome = std::thread::scope(|scope| -> Result<(), AnalyzeError> {
        let (sender, receiver) = sync_channel(1);
        let items = &inputs.items;
        let limits = args.load_limits();
        let loader = scope.spawn(move || {
            for item in items {
                let started = Instant::now();
                let loaded = match &item.problem {
                    Some(problem) => Err(problem.clone()),
                    None => Ok(load_radiograph_with(&item.path, &limits)),
                };
                if sender.send((loaded, started.elapsed())).is_err() {
                    break;
                }
            }
        });
        let mut received = 0;
        for (index, (loaded, load_time)) in receiver.iter().enumerate() {
            received += 1;
            let path = &inputs.items[index].path;
            progress.set_message(path.display().to_string());
            let analysis = match loaded {
                Err(problem) => Analysis {
                    record: Record::failed(path, problem),
                    radiograph: None,
                },
                Ok(loaded) => analyzer.analyze_loaded(path, loaded, load_time, args.pixel_spacing),
            };
            let mut record = analysis.record;
            let name = record_name(path, &fetched_from, args.redact_paths);
            match &mut record {
                Record::Analyzed(image_record) => {
                    image_record.image = name;
                    if args.include_phi {
                        if let Some(dicom) = &mut image_record.dicom {
                            dicom.reveal_patient();
                        }
                    }
                }
                Record::Failed(failure) => failure.image = name,
            }
            // A requested file that could not be written makes the image count as failed,
            // though its record (with a warning saying so) is kept.
            let mut output_failed = false;
            let wants_picture = planned.overlay[index].is_some()
                || planned.dicom[index]
                    .as_ref()
                    .is_some_and(|paths| paths.secondary_capture.is_some());
            let picture = match (&record, &analysis.radiograph) {
                (Record::Analyzed(image_record), Some(radiograph)) if wants_picture => {
                    render_overlay(radiograph, image_record).map_err(|error| {
                        progress.suspend(|| eprintln!("sagitta: {}: {error}", path.display()));
                        error
                    })
                }
                _ => Err(String::new()),
            };
            if let (Some(overlay_path), Record::Analyzed(image_record)) =
                (&planned.overlay[index], &mut record)
            {
                let written = match &picture {
                    Ok(picture) => write_overlay(overlay_path, picture),
                    Err(error) => Err(OutputFailure::Other(error.clone())),
                };
                match written {
                    Ok(()) => {}
                    Err(OutputFailure::DiskFull(error)) => {
                        progress.finish_and_clear();
                        return Err(disk_full(overlay_path, &error, index, total));
                    }
                    Err(OutputFailure::Other(error)) => {
                        progress.suspend(|| eprintln!("sagitta: {error}"));
                        image_record
                            .warnings
                            .push(format!("overlay not written: {error}"));
                        output_failed = true;
                    }
                }
            }
            if let (Some(paths), Record::Analyzed(image_record)) =
                (&planned.dicom[index], &mut record)
            {
                if image_record.dicom.is_none() {
                    let reason = "DICOM objects not written: the image is not DICOM (they file \
                                  under the source's study)";
                    progress.suspend(|| eprintln!("sagitta: {}: {reason}", path.display()));
                    image_record.warnings.push(reason.to_string());
                } else {
                    let objects = [
                        (DicomObjectKind::StructuredReport, Some(&paths.sr)),
                        (
                            DicomObjectKind::PresentationState,
                            Some(&paths.presentation_state),
                        ),
                        (
                            DicomObjectKind::SecondaryCapture,
                            paths.secondary_capture.as_ref(),
                        ),
                    ];
                    for (kind, object_path) in objects {
                        let Some(object_path) = object_path else {
                            continue;
                        };
                        match write_dicom_object(
                            kind,
                            object_path,
                            image_record,
                            picture.as_ref().ok(),
                        ) {
                            Ok(()) => {}
                            Err(OutputFailure::DiskFull(error)) => {
                                progress.finish_and_clear();
                                return Err(disk_full(object_path, &error, index, total));
                            }
                            Err(OutputFailure::Other(error)) => {
                                progress.suspend(|| eprintln!("sagitta: {error}"));
                                image_record
                                    .warnings
                                    .push(format!("{} not written: {error}", kind.name()));
                                output_failed = true;
                            }
                        }
                    }
                    if let (Some(base), Some(client)) = (&args.store, &web) {
                        if let Err(error) = store_objects(client, base, image_record) {
                            progress.suspend(|| eprintln!("sagitta: {error}"));
                            image_record
                                .warnings
                                .push(format!("DICOM objects not stored: {error}"));
                            output_failed = true;
                        }
                    }
                }
            }
            if let Record::Failed(failure) = &record {
                progress.suspend(|| eprintln!("sagitta: {}", failure.error));
            }
            let json = record.to_json();
            match &planned.json[index] {
                Some(file) => {
                    if let Err(error) = output::write_atomic(file, format!("{json}\n").as_bytes()) {
                        if output::is_disk_full(&error) {
                            progress.finish_and_clear();
                            return Err(disk_full(file, &error, index, total));
                        }
                        progress.suspend(|| {
                            eprintln!("sagitta: {}: cannot write: {error}", file.display())
                        });
                        output_failed = true;
                    }
                }
                // No file means no --out: the record is an element of the stdout array.
                None => {
                    let separator = if index + 1 < total { ",\n" } else { "\n" };
                    write_stdout(&mut stdout, &format!("{json}{separator}"));
                }
            }
            if record.is_ok() && !output_failed {
                summary.analyzed += 1;
            } else {
                summary.failed += 1;
            }
            for (path, table) in &mut tables {
                if let Err(error) = table.write(&record) {
                    progress.finish_and_clear();
                    return Err(write_failure(path, error, index, total));
                }
            }
            if args.parquet.is_some() {
                parquet_rows.extend(parameter_rows(&record));
            }
            if let Some(lines) = &mut json_lines {
                if let Err(error) = lines.write(&record) {
                    progress.finish_and_clear();
                    return Err(write_failure(&lines.path, error, index, total));
                }
            }
            progress.inc(1);
            if let Some(log) = &mut progress_log {
                log.update(summary.analyzed + summary.failed, summary.failed);
            }
        }
        let loader_failed = loader.join().is_err();
        if received < total {
            // Only a panic in the loader gets here; the rest still get their records.
            let reason = if loader_failed {
                "the loader stopped unexpectedly"
            } else {
                "not loaded"
            };
            for (index, item) in inputs.items.iter().enumerate().skip(received) {
                let record =
                    Record::failed(&item.path, format!("{}: {reason}", item.path.display()));
                summary_count(&mut summary, &record);
                for (_, table) in &mut tables {
                    let _ = table.write(&record);
                }
                if args.parquet.is_some() {
                    parquet_rows.extend(parameter_rows(&record));
                }
                if let Some(lines) = &mut json_lines {
                    let _ = lines.write(&record);
                }
                let json = record.to_json();
                match &planned.json[index] {
                    Some(file) => {
                        let _ = output::write_atomic(file, format!("{json}\n").as_bytes());
                    }
                    None => {
                        let separator = if index + 1 < total { ",\n" } else { "\n" };
                        write_stdout(&mut stdout, &format!("{json}{separator}"));
                    }
                }
            }
        }
        Ok(())
    });
    if stream_array {
        write_stdout(&mut stdout, "]\n");
    }
    progress.finish_and_clear();
    outcome?;
    for (_, table) in tables {
        table.finish()?;
    }
    if let Some(path) = &args.parquet {
        super::parquet::write_table(path, &csv_header(), &parquet_rows).map_err(|error| {
            AnalyzeError::Usage(format!("--parquet {error}; the other outputs are written"))
        })?;
    }
    if !args.quiet && !single {
        let seconds = started.elapsed().as_secs_f64();
        let total = summary.analyzed + summary.failed;
        eprintln!(
            "sagitta: {total} image(s) in {seconds:.1} s ({:.2} s each): {} analysed, {} failed{}",
            seconds / total.max(1) as f64,
            summary.analyzed,
            summary.failed,
            if inputs.skipped > 0 {
                format!("; {} non-image file(s) passed over", inputs.skipped)
            } else {
                String::new()
            }
        );
    }
    Ok(summary)
}

fn summary_count(summary: &mut BatchSummary, record: &Record) {
    if record.is_ok() {
        summary.analyzed += 1;
    } else {
        summary.failed += 1;
    }
}

/// Writes to stdout; a closed pipe (`| head`) is not worth a panic, the batch's files and
/// exit code still matter.
fn write_stdout(stdout: &mut impl Write, text: &str) {
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

fn create_folder(path: &Path) -> Result<(), AnalyzeError> {
    std::fs::create_dir_all(path).map_err(|error| AnalyzeError::Output {
        path: path.to_path_buf(),
        reason: format!("cannot create the folder: {error}"),
    })
}

fn output_error(path: &Path, error: std::io::Error) -> AnalyzeError {
    AnalyzeError::Output {
        path: path.to_path_buf(),
        reason: format!("cannot write: {error}"),
    }
}

/// `sagitta analyze` from the command line: runs the batch and turns the outcome into the
/// exit code (0 all analysed, 1 some failed, 2 the batch could not run).
pub fn main(args: &AnalyzeArgs, gpu: &AdapterChoice, options: &EngineOptions) -> ExitCode {
    match run(args, gpu, options) {
        Ok(summary) if summary.failed == 0 => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(error) => {
            eprintln!("sagitta: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stems_are_unique_case_insensitively() {
        let paths: Vec<PathBuf> = ["a/x.png", "b/x.dcm", "c/X.png", "d/x-2.png", "e/.png", "f"]
            .iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(
            unique_stems(&paths),
            ["x", "x-2", "X-3", "x-2-2", ".png", "f"]
        );
    }

    #[test]
    fn pixel_spacing_must_be_plausible() {
        assert_eq!(parse_pixel_spacing("0.15"), Ok(0.15));
        assert!(parse_pixel_spacing("0").is_err());
        assert!(parse_pixel_spacing("-1").is_err());
        assert!(parse_pixel_spacing("nan").is_err());
        assert!(parse_pixel_spacing("inf").is_err());
        assert!(parse_pixel_spacing("abc").is_err());
    }

    #[test]
    fn folders_are_searched_with_hidden_files_and_non_images_passed_over() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("sub/.hidden")).unwrap();
        for name in [
            "b.png",
            "a.DCM",
            "noext",
            "notes.txt",
            ".dot.png",
            "sub/c.jpg",
            "sub/.hidden/d.png",
        ] {
            std::fs::write(root.join(name), b"x").unwrap();
        }
        // An image whose name does not say so is still found by its content.
        std::fs::write(root.join("scan.bin"), b"\x89PNG\r\n\x1a\nrest").unwrap();
        let found = collect_inputs(&[root.to_path_buf()], None, None, &[]).unwrap();
        let names: Vec<String> = found
            .items
            .iter()
            .map(|item| {
                item.path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        assert_eq!(names, ["a.DCM", "b.png", "noext", "scan.bin", "sub/c.jpg"]);
        assert_eq!(found.skipped, 1, "notes.txt");

        let globbed = collect_inputs(&[root.to_path_buf()], None, Some("*.PNG"), &[]).unwrap();
        assert_eq!(globbed.items.len(), 1);
        let nested = collect_inputs(&[root.to_path_buf()], None, Some("sub/*"), &[]).unwrap();
        assert_eq!(nested.items.len(), 1);
        assert!(collect_inputs(&[root.to_path_buf()], None, Some("["), &[]).is_err());

        // Twice the same file, once by name and once through its folder, and a list file.
        let list = root.join("list.txt");
        std::fs::write(&list, "# images\n\nb.png\n").unwrap();
        let explicit = collect_inputs(&[root.join("b.png"), root.to_path_buf()], None, None, &[]);
        assert_eq!(explicit.unwrap().items.len(), 5);
        let listed = collect_inputs(&[], Some(&list), None, &[]).unwrap();
        assert_eq!(
            listed.items,
            [InputItem {
                path: PathBuf::from("b.png"),
                problem: None
            }]
        );
        assert!(collect_inputs(&[], Some(&root.join("missing.txt")), None, &[]).is_err());

        // An output folder below the input folder is not searched.
        let without_sub =
            collect_inputs(&[root.to_path_buf()], None, None, &[root.join("sub")]).unwrap();
        assert_eq!(without_sub.items.len(), 4);
    }
}

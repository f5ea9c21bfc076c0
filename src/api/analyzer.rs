//! What a caller of the library uses to analyse radiographs: the model built once on a device,
//! each image turned into a record (landmarks, parameters, warnings, timings). The command line
//! is one such caller; embedding hosts will be others.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::options::EngineOptions;
use crate::engine::{AdapterChoice, GpuContext, Precision};
use crate::error::SagittaError;
use crate::io::{load_radiograph, LoadError, Radiograph};
use crate::measure::{self, PixelSpacing};
use crate::models::cervical::{CervicalModel, GreyImage};
use crate::models::csm::CsmModel;
use crate::models::lumbar::LumbarModel;
use crate::models::wholespine::WholeSpineModel;
use crate::models::{family_of, Family};
use crate::nn::weights::WeightFile;
use crate::report::{
    self, build_record, landmark_array, CsmOutcome, LandmarkOutcome, LumbarOutcome, ModelInfo,
    Record, RecordContext, SpineOutcome, TimingMs,
};

/// The environment variable naming the weights file when `--weights` is not given.
pub const WEIGHTS_ENV: &str = "SAGITTA_WEIGHTS";

/// Why a batch could not run (as opposed to one image failing, which gives an error record).
#[derive(Debug, thiserror::Error)]
pub enum AnalyzeError {
    /// Arguments that cannot work together, an unreadable list file, no inputs.
    #[error("{0}")]
    Usage(String),
    #[error(
        "no weights file: tried {tried}; pass --weights FILE or set {env} (the default \
         weights are made by the training tools in tools/)"
    )]
    NoWeights { tried: String, env: &'static str },
    #[error("{source}; pass a model's weights with --weights FILE")]
    Weights { source: SagittaError },
    /// A weights file of another model family than the one asked for.
    #[error(
        "{}: a '{found}' model, not the '{expected}' that {asked_by} asks for; pass a '{expected}' \
         weights file or leave out {asked_by}",
        .path.display()
    )]
    WrongModel {
        path: PathBuf,
        found: String,
        expected: &'static str,
        asked_by: String,
    },
    #[error("{0}")]
    Gpu(SagittaError),
    #[error("{}: {reason}", .path.display())]
    Output { path: PathBuf, reason: String },
}

impl AnalyzeError {
    pub fn exit_code(&self) -> u8 {
        2
    }
}

/// Opens a weights file and checks that it holds a model of `expected` when a family was
/// asked for (`asked_by` names who asked: a flag, an environment variable).
pub fn open_weights(
    path: &Path,
    expected: Option<(Family, &str)>,
) -> Result<(WeightFile, Family), AnalyzeError> {
    let file = WeightFile::open(path).map_err(|source| AnalyzeError::Weights { source })?;
    let family = family_of(&file).map_err(|source| AnalyzeError::Weights { source })?;
    match expected {
        Some((wanted, asked_by)) if wanted != family => Err(AnalyzeError::WrongModel {
            path: path.to_path_buf(),
            found: file.arch.clone(),
            expected: wanted.arch(),
            asked_by: asked_by.to_string(),
        }),
        _ => Ok((file, family)),
    }
}

/// A model built on the device and what every record says about it.
struct Loaded<M> {
    model: M,
    info: ModelInfo,
}

/// The models, each built once, that every image goes through: the cervical landmark model
/// (with the parameters measured from its landmarks), the CSM classifier and the whole-spine
/// model (with its parameters), any of them.
pub struct Analyzer {
    cervical: Option<Loaded<CervicalModel>>,
    csm: Option<Loaded<CsmModel>>,
    wholespine: Option<Loaded<WholeSpineModel>>,
    lumbar: Option<Loaded<LumbarModel>>,
    adapter: String,
    notes: Vec<String>,
}

impl Analyzer {
    /// Builds the models of `weights` (one file per family, opened with [`open_weights`]) on
    /// the chosen adapter with `options` (device, kernel tuning). Anything reported on the way
    /// (an unreadable tuning table) is in [`Self::notes`].
    pub fn new(
        weights: &[WeightFile],
        gpu: &AdapterChoice,
        options: &EngineOptions,
    ) -> Result<Self, AnalyzeError> {
        let context = options.open_device(gpu).map_err(AnalyzeError::Gpu)?;
        let (selection, notes) = options.conv_selection(&context);
        let mut analyzer = Self::with_selection(context, weights, &selection)?;
        analyzer.notes = notes;
        Ok(analyzer)
    }

    /// Builds the model of one weights file on a context the caller owns, with the heuristic
    /// kernel choice.
    pub fn with_context(
        context: Arc<GpuContext>,
        weights: &WeightFile,
    ) -> Result<Self, AnalyzeError> {
        Self::with_selection(
            context,
            std::slice::from_ref(weights),
            &crate::ops::ConvSelection::default(),
        )
    }

    /// Builds the models of several weights files (at most one per family) on a context the
    /// caller owns.
    pub fn with_models(
        context: Arc<GpuContext>,
        weights: &[WeightFile],
    ) -> Result<Self, AnalyzeError> {
        Self::with_selection(context, weights, &crate::ops::ConvSelection::default())
    }

    fn with_selection(
        context: Arc<GpuContext>,
        weights: &[WeightFile],
        selection: &crate::ops::ConvSelection,
    ) -> Result<Self, AnalyzeError> {
        let building = |error: SagittaError| match error {
            SagittaError::Adapter(_) | SagittaError::Gpu(_) => AnalyzeError::Gpu(error),
            other => AnalyzeError::Weights { source: other },
        };
        let mut analyzer = Self {
            cervical: None,
            csm: None,
            wholespine: None,
            lumbar: None,
            adapter: context.describe(),
            notes: Vec::new(),
        };
        if weights.is_empty() {
            return Err(AnalyzeError::Usage(
                "no model to run: give a weights file".into(),
            ));
        }
        for file in weights {
            let family = family_of(file).map_err(building)?;
            let taken = match family {
                Family::Cervical => analyzer.cervical.is_some(),
                Family::Csm => analyzer.csm.is_some(),
                Family::WholeSpine => analyzer.wholespine.is_some(),
                Family::Lumbar => analyzer.lumbar.is_some(),
            };
            if taken {
                return Err(AnalyzeError::Usage(format!(
                    "{}: a second '{}' weights file; give one per model family",
                    file.path.display(),
                    family.arch()
                )));
            }
            match family {
                Family::Cervical => {
                    let model = CervicalModel::with_selection(context.clone(), file, selection)
                        .map_err(building)?;
                    let info = model_info(file, &model.config.name, model.config.input_size);
                    analyzer.cervical = Some(Loaded { model, info });
                }
                Family::Csm => {
                    let model = CsmModel::with_selection(context.clone(), file, selection)
                        .map_err(building)?;
                    let info = model_info(file, &model.config.name, model.config.input_size);
                    analyzer.csm = Some(Loaded { model, info });
                }
                Family::WholeSpine => {
                    let model = WholeSpineModel::with_selection(context.clone(), file, selection)
                        .map_err(building)?;
                    // The input is not square: the record states its height.
                    let info = model_info(file, &model.config.name, model.config.input_height);
                    analyzer.wholespine = Some(Loaded { model, info });
                }
                Family::Lumbar => {
                    let model = LumbarModel::with_selection(context.clone(), file, selection)
                        .map_err(building)?;
                    let info = model_info(file, &model.config.name, model.config.input_size);
                    analyzer.lumbar = Some(Loaded { model, info });
                }
            }
        }
        Ok(analyzer)
    }

    /// The GPU the models run on, as records name it.
    pub fn adapter(&self) -> &str {
        &self.adapter
    }

    /// What was reported while setting up (e.g. a tuning table that could not be read).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// The models every image goes through, the cervical landmark model first.
    pub fn models(&self) -> Vec<&ModelInfo> {
        let cervical = self.cervical.as_ref().map(|loaded| &loaded.info);
        let csm = self.csm.as_ref().map(|loaded| &loaded.info);
        let wholespine = self.wholespine.as_ref().map(|loaded| &loaded.info);
        let lumbar = self.lumbar.as_ref().map(|loaded| &loaded.info);
        cervical
            .into_iter()
            .chain(csm)
            .chain(wholespine)
            .chain(lumbar)
            .collect()
    }

    /// Stores activations in f16 or f32 (see [`CervicalModel::set_precision`]).
    pub fn set_precision(&mut self, precision: Precision) -> Result<(), AnalyzeError> {
        if let Some(loaded) = &mut self.cervical {
            loaded
                .model
                .set_precision(precision)
                .map_err(AnalyzeError::Gpu)?;
            loaded.info.precision = precision;
        }
        if let Some(loaded) = &mut self.csm {
            loaded
                .model
                .set_precision(precision)
                .map_err(AnalyzeError::Gpu)?;
            loaded.info.precision = precision;
        }
        if let Some(loaded) = &mut self.wholespine {
            loaded
                .model
                .set_precision(precision)
                .map_err(AnalyzeError::Gpu)?;
            loaded.info.precision = precision;
        }
        if let Some(loaded) = &mut self.lumbar {
            loaded
                .model
                .set_precision(precision)
                .map_err(AnalyzeError::Gpu)?;
            loaded.info.precision = precision;
        }
        Ok(())
    }

    /// Analyses a radiograph already loaded (`load` is how long loading took). The user's
    /// isotropic `pixel_spacing`, when given, replaces the file's.
    pub fn analyze(
        &mut self,
        image: &Path,
        radiograph: Radiograph,
        load: Duration,
        pixel_spacing: Option<f64>,
    ) -> Analysis {
        let started = Instant::now();
        let radiograph = match pixel_spacing {
            Some(mm) => radiograph.with_user_spacing(PixelSpacing {
                row_mm: mm,
                column_mm: mm,
            }),
            None => radiograph,
        };
        let grey = GreyImage {
            width: radiograph.width,
            height: radiograph.height,
            pixels: &radiograph.pixels,
        };
        // Every model that is loaded runs; the first failure fails the image (naming the model).
        let outcomes = run_loaded(&mut self.cervical, |model| model.run(grey))
            .and_then(|prediction| {
                let screen = run_loaded(&mut self.csm, |model| model.run(grey))?;
                Ok((prediction, screen))
            })
            .and_then(|(prediction, screen)| {
                let spine = run_loaded(&mut self.wholespine, |model| model.run(grey))?;
                Ok((prediction, screen, spine))
            })
            .and_then(|(prediction, screen, spine)| {
                let levels = run_loaded(&mut self.lumbar, |model| model.run(grey))?;
                Ok((prediction, screen, spine, levels))
            });
        let (prediction, screen, spine, levels) = match outcomes {
            Ok(outcomes) => outcomes,
            Err((error, model)) => {
                return Analysis {
                    record: Record::failed(
                        image,
                        format!("{}: inference failed ({model}): {error}", image.display()),
                    ),
                    radiograph: Some(radiograph),
                }
            }
        };
        let screen = screen.map(|(prediction, model)| CsmOutcome { model, prediction });
        let spine = spine.map(|(prediction, model)| SpineOutcome { model, prediction });
        let levels = levels.map(|(prediction, model)| LumbarOutcome { model, prediction });
        let inference = started.elapsed();
        let landmark_model = prediction.map(|(prediction, info)| {
            let landmarks = report::landmark_records(
                &prediction,
                radiograph.width,
                radiograph.height,
                info.input_size,
            );
            let measured = match landmark_array(&landmarks) {
                Some(points) => {
                    measure::cervical(&points, radiograph.pixel_spacing).map_err(|e| e.to_string())
                }
                None => Err(format!(
                    "the model returned {} landmarks, not 29",
                    landmarks.len()
                )),
            };
            LandmarkOutcome {
                model: info,
                landmarks,
                measured,
            }
        });
        let context = RecordContext {
            image,
            adapter: &self.adapter,
        };
        let milliseconds = |duration: Duration| duration.as_secs_f64() * 1e3;
        let mut record = build_record(
            &context,
            &radiograph,
            landmark_model,
            screen,
            spine,
            levels,
            TimingMs {
                load: milliseconds(load),
                inference: milliseconds(inference),
                total: 0.0,
            },
        );
        record.timing_ms.total = milliseconds(load + started.elapsed());
        Analysis {
            record: Record::Analyzed(Box::new(record)),
            radiograph: Some(radiograph),
        }
    }

    /// Loads and analyses one file; a file that cannot be loaded gives an error record.
    pub fn analyze_file(&mut self, image: &Path, pixel_spacing: Option<f64>) -> Analysis {
        let started = Instant::now();
        let loaded = load_radiograph(image);
        self.analyze_loaded(image, loaded, started.elapsed(), pixel_spacing)
    }

    /// Analyses the outcome of loading `image` (a load error becomes an error record).
    pub fn analyze_loaded(
        &mut self,
        image: &Path,
        loaded: Result<Radiograph, LoadError>,
        load: Duration,
        pixel_spacing: Option<f64>,
    ) -> Analysis {
        match loaded {
            Ok(radiograph) => self.analyze(image, radiograph, load, pixel_spacing),
            Err(error) => Analysis {
                record: Record::failed(image, error.to_string()),
                radiograph: None,
            },
        }
    }
}

/// Runs one inference so that a GPU driver or validation panic fails the image, not the batch
/// of hundreds of files (the engine checks its input, but not the driver's).
fn guarded<T>(inference: impl FnOnce() -> Result<T, SagittaError>) -> Result<T, SagittaError> {
    catch_unwind(AssertUnwindSafe(inference)).unwrap_or_else(|_| {
        Err(SagittaError::Gpu(
            "the inference panicked (see the message above)".into(),
        ))
    })
}

/// Runs `run` on the model when it is loaded (guarded); the output with the model's
/// description, or the error with the model's name.
fn run_loaded<M, T>(
    loaded: &mut Option<Loaded<M>>,
    run: impl FnOnce(&mut M) -> Result<T, SagittaError>,
) -> Result<Option<(T, &ModelInfo)>, (SagittaError, String)> {
    match loaded {
        None => Ok(None),
        Some(Loaded { model, info }) => match guarded(|| run(model)) {
            Ok(output) => Ok(Some((output, &*info))),
            Err(error) => Err((error, info.name.clone())),
        },
    }
}

/// What every record says about the model of `weights`.
fn model_info(weights: &WeightFile, name: &str, input_size: u32) -> ModelInfo {
    ModelInfo {
        name: name.to_string(),
        weights: weights.path.display().to_string(),
        sha256: weights.sha256.clone(),
        dtype: weights.dtype.clone(),
        input_size,
        precision: Precision::F32,
        not_for_clinical_use: weights
            .metadata
            .get("not_for_clinical_use")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false),
    }
}

/// The record of one image and, when it could be loaded, the radiograph (for the overlay).
pub struct Analysis {
    pub record: Record,
    pub radiograph: Option<Radiograph>,
}

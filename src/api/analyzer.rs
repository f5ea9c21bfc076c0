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
use crate::models::cervical::{CervicalConfig, CervicalModel, GreyImage};
use crate::nn::weights::WeightFile;
use crate::report::{
    self, build_record, landmark_array, ModelInfo, Record, RecordContext, TimingMs,
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
        "no weights file: tried {tried}; pass --weights FILE or set {WEIGHTS_ENV} (the default \
         weights are made by the training tools in tools/)"
    )]
    NoWeights { tried: String },
    #[error("{source}; pass a cervical model with --weights FILE or {WEIGHTS_ENV}")]
    Weights { source: SagittaError },
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

/// The model, built once, and what every record says about it.
pub struct Analyzer {
    model: CervicalModel,
    model_info: ModelInfo,
    adapter: String,
    notes: Vec<String>,
}

impl Analyzer {
    /// Opens the weights and builds the model on the chosen adapter with `options` (device,
    /// kernel tuning). Anything reported on the way (an unreadable tuning table) is in
    /// [`Self::notes`].
    pub fn new(
        weights: &Path,
        gpu: &AdapterChoice,
        options: &EngineOptions,
    ) -> Result<Self, AnalyzeError> {
        // Weights first: a wrong file is the more likely mistake, and it needs no GPU.
        let file = WeightFile::open(weights).map_err(|source| AnalyzeError::Weights { source })?;
        let context = options.open_device(gpu).map_err(AnalyzeError::Gpu)?;
        let (selection, notes) = options.conv_selection(&context);
        let mut analyzer = Self::with_selection(context, &file, &selection)?;
        analyzer.notes = notes;
        Ok(analyzer)
    }

    /// Builds the model on a context the caller owns, with the heuristic kernel choice.
    pub fn with_context(
        context: Arc<GpuContext>,
        weights: &WeightFile,
    ) -> Result<Self, AnalyzeError> {
        Self::with_selection(context, weights, &crate::ops::ConvSelection::default())
    }

    fn with_selection(
        context: Arc<GpuContext>,
        weights: &WeightFile,
        selection: &crate::ops::ConvSelection,
    ) -> Result<Self, AnalyzeError> {
        let adapter = context.describe();
        let model = CervicalModel::with_selection(context, weights, selection).map_err(
            |error| match error {
                SagittaError::Adapter(_) | SagittaError::Gpu(_) => AnalyzeError::Gpu(error),
                other => AnalyzeError::Weights { source: other },
            },
        )?;
        let config: &CervicalConfig = &model.config;
        let model_info = ModelInfo {
            name: config.name.clone(),
            weights: weights.path.display().to_string(),
            sha256: weights.sha256.clone(),
            dtype: weights.dtype.clone(),
            input_size: config.input_size,
            precision: Precision::F32,
            not_for_clinical_use: weights
                .metadata
                .get("not_for_clinical_use")
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(false),
        };
        Ok(Self {
            model,
            model_info,
            adapter,
            notes: Vec::new(),
        })
    }

    /// What was reported while setting up (e.g. a tuning table that could not be read).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    pub fn model_info(&self) -> &ModelInfo {
        &self.model_info
    }

    /// Stores activations in f16 or f32 (see [`CervicalModel::set_precision`]).
    pub fn set_precision(&mut self, precision: Precision) -> Result<(), AnalyzeError> {
        self.model
            .set_precision(precision)
            .map_err(AnalyzeError::Gpu)?;
        self.model_info.precision = precision;
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
        // The engine checks its input, but a GPU driver or validation panic must not end a
        // batch of hundreds of files.
        let model = &mut self.model;
        let prediction = catch_unwind(AssertUnwindSafe(|| model.run(grey))).unwrap_or_else(|_| {
            Err(SagittaError::Gpu(
                "the inference panicked (see the message above)".into(),
            ))
        });
        let inference = started.elapsed();
        let prediction = match prediction {
            Ok(prediction) => prediction,
            Err(error) => {
                return Analysis {
                    record: Record::failed(
                        image,
                        format!("{}: inference failed: {error}", image.display()),
                    ),
                    radiograph: Some(radiograph),
                }
            }
        };
        let landmarks = report::landmark_records(
            &prediction,
            radiograph.width,
            radiograph.height,
            self.model_info.input_size,
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
        let context = RecordContext {
            image,
            model: &self.model_info,
            adapter: &self.adapter,
        };
        let milliseconds = |duration: Duration| duration.as_secs_f64() * 1e3;
        let mut record = build_record(
            &context,
            &radiograph,
            landmarks,
            measured,
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

/// The record of one image and, when it could be loaded, the radiograph (for the overlay).
pub struct Analysis {
    pub record: Record,
    pub radiograph: Option<Radiograph>,
}

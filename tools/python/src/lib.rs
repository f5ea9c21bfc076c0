//! `sagitta._sagitta`: the engine for Python. A model is loaded once on a GPU (the same
//! `Analyzer` as `sagitta analyze`), then analyses numpy arrays and files; every result is the
//! command line's JSON record as Python data. The GIL is released while images decode and the
//! GPU works, so other Python threads (a data loader, a Ray actor's queue) go on meanwhile.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use numpy::{PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyList;
use sagitta::api::{open_weights, Analyzer, EngineOptions};
use sagitta::io::{load_radiograph, Radiograph, SpacingSource};
use sagitta::measure::frame::Unit;
use sagitta::models::Family;
use sagitta::{AdapterChoice, Precision};

/// The repository this package was built from: its shipped default weights.
const REPOSITORY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

fn default_weights(family: Family) -> PathBuf {
    let file = match family {
        Family::Cervical => "cervical_default.safetensors",
        Family::Csm => "csm_default.safetensors",
        Family::WholeSpine => "wholespine_default.safetensors",
        Family::Lumbar => "lumbar_default.safetensors",
    };
    let repository = Path::new(REPOSITORY);
    repository
        .canonicalize()
        .unwrap_or_else(|_| repository.to_path_buf())
        .join("weights")
        .join(file)
}

fn families(model: &str) -> PyResult<Vec<Family>> {
    Ok(match model {
        "cervical" => vec![Family::Cervical],
        "csm" => vec![Family::Csm],
        "wholespine" => vec![Family::WholeSpine],
        "lumbar" => vec![Family::Lumbar],
        "all" => vec![Family::Cervical, Family::Csm, Family::WholeSpine],
        other => {
            return Err(PyValueError::new_err(format!(
                "model '{other}': expected cervical, csm, wholespine, lumbar or all"
            )))
        }
    })
}

fn error(message: impl std::fmt::Display) -> PyErr {
    PyRuntimeError::new_err(message.to_string())
}

/// Python data from a record's JSON.
fn to_python(py: Python<'_>, json: &str) -> PyResult<Py<PyAny>> {
    let loads = py.import("json")?.getattr("loads")?;
    Ok(loads.call1((json,))?.unbind())
}

fn family_name(family: Family) -> &'static str {
    match family {
        Family::Cervical => "cervical",
        Family::Csm => "csm",
        Family::WholeSpine => "wholespine",
        Family::Lumbar => "lumbar",
    }
}

/// The units a record may give a parameter of this kind.
fn units(unit: Unit) -> Vec<&'static str> {
    match unit {
        Unit::Degrees => vec!["deg"],
        Unit::Distance => vec!["mm", "px"],
        Unit::Ratio => vec!["ratio"],
    }
}

/// The parameters of a family with every unit its records may use, in the records' order
/// (what a table needs for the same columns on every row, analysed or not).
#[pyfunction]
fn parameter_units(family: &str) -> PyResult<Vec<(String, Vec<&'static str>)>> {
    let named = |names: &[&str], unit_of: &dyn Fn(&str) -> Unit| {
        names
            .iter()
            .map(|name| (name.to_string(), units(unit_of(name))))
            .collect()
    };
    Ok(match family {
        // The SPEC's two distances; the rest are angles.
        "cervical" => named(&sagitta::measure::PARAMETER_NAMES, &|name| match name {
            "cSVA" | "RJD" => Unit::Distance,
            _ => Unit::Degrees,
        }),
        "wholespine" => sagitta::measure::wholespine::PARAMETERS
            .iter()
            .map(|definition| (definition.name.to_string(), units(definition.unit)))
            .collect(),
        "lumbar" => named(&sagitta::measure::lumbar::PARAMETER_NAMES, &|_| {
            Unit::Degrees
        }),
        "csm" => Vec::new(),
        other => return Err(PyValueError::new_err(format!("no model family '{other}'"))),
    })
}

/// A loaded model (or several): analyses arrays and files on one GPU.
#[pyclass(module = "sagitta._sagitta")]
struct Model {
    analyzer: Mutex<Analyzer>,
    #[pyo3(get)]
    weights: Vec<String>,
    #[pyo3(get)]
    adapter: String,
    /// The families loaded: cervical, csm, wholespine, lumbar.
    #[pyo3(get)]
    families: Vec<&'static str>,
}

impl Model {
    fn analyzer(&self) -> PyResult<std::sync::MutexGuard<'_, Analyzer>> {
        self.analyzer
            .lock()
            .map_err(|_| error("the model failed in another thread; load it again"))
    }
}

/// A numpy array of grey values as f32, row-major.
fn grey_pixels(array: &Bound<'_, PyAny>) -> PyResult<(u32, u32, Vec<f32>)> {
    fn take<T: numpy::Element + Copy>(
        array: PyReadonlyArray2<'_, T>,
        widen: impl Fn(T) -> f32,
    ) -> PyResult<(u32, u32, Vec<f32>)> {
        let shape = array.shape();
        let (height, width) = (shape[0], shape[1]);
        let pixels: Vec<f32> = array.as_array().iter().map(|&value| widen(value)).collect();
        let side = |n: usize| {
            u32::try_from(n).map_err(|_| PyValueError::new_err("the image is too large"))
        };
        Ok((side(width)?, side(height)?, pixels))
    }
    if let Ok(array) = array.extract::<PyReadonlyArray2<'_, u8>>() {
        return take(array, f32::from);
    }
    if let Ok(array) = array.extract::<PyReadonlyArray2<'_, u16>>() {
        return take(array, f32::from);
    }
    if let Ok(array) = array.extract::<PyReadonlyArray2<'_, f32>>() {
        return take(array, |value| value);
    }
    if let Ok(array) = array.extract::<PyReadonlyArray2<'_, f64>>() {
        return take(array, |value| value as f32);
    }
    Err(PyValueError::new_err(
        "expected a 2-D numpy array (height × width) of uint8, uint16, float32 or float64 grey \
         values",
    ))
}

#[pymethods]
impl Model {
    /// Analyses one grey image (a 2-D numpy array, any size); `spacing` is the pixel spacing
    /// in mm (else distances are in pixels); `name` is what the record calls the image.
    #[pyo3(signature = (array, spacing=None, name="array"))]
    fn analyze(
        &self,
        py: Python<'_>,
        array: &Bound<'_, PyAny>,
        spacing: Option<f64>,
        name: &str,
    ) -> PyResult<Py<PyAny>> {
        let (width, height, pixels) = grey_pixels(array)?;
        if width < 2 || height < 2 {
            return Err(PyValueError::new_err("the image must be at least 2 × 2"));
        }
        if !pixels.iter().all(|value| value.is_finite()) {
            return Err(PyValueError::new_err(
                "the image holds NaN or infinite values",
            ));
        }
        if let Some(mm) = spacing.filter(|mm| !(mm.is_finite() && *mm > 0.0)) {
            return Err(PyValueError::new_err(format!(
                "spacing {mm}: a pixel spacing is a positive number of millimetres"
            )));
        }
        let radiograph = Radiograph {
            width,
            height,
            pixels,
            pixel_spacing: None,
            spacing_source: SpacingSource::None,
            format: "array",
            transfer_syntax: None,
            dicom: None,
        };
        let name = PathBuf::from(name);
        let json = py.detach(|| -> PyResult<String> {
            let mut analyzer = self.analyzer()?;
            Ok(analyzer
                .analyze(&name, radiograph, Duration::ZERO, spacing)
                .record
                .to_json())
        })?;
        to_python(py, &json)
    }

    /// Analyses image files (PNG, JPEG, TIFF, DICOM): the next file decodes on another core
    /// while the GPU works on this one. A file that cannot be analysed gives an error record
    /// (`status` "error"), not an exception. `spacing` replaces the files' own.
    #[pyo3(signature = (paths, spacing=None))]
    fn analyze_files(
        &self,
        py: Python<'_>,
        paths: Vec<PathBuf>,
        spacing: Option<f64>,
    ) -> PyResult<Py<PyList>> {
        let records: Vec<String> = py.detach(|| -> PyResult<Vec<String>> {
            let mut analyzer = self.analyzer()?;
            Ok({
                let (sender, receiver) = mpsc::sync_channel(2);
                std::thread::scope(|scope| {
                    let decoding = &paths;
                    scope.spawn(move || {
                        for path in decoding {
                            let started = Instant::now();
                            let loaded = load_radiograph(path);
                            if sender.send((loaded, started.elapsed())).is_err() {
                                break;
                            }
                        }
                    });
                    paths
                        .iter()
                        .zip(receiver.iter())
                        .map(|(path, (loaded, load))| {
                            analyzer
                                .analyze_loaded(path, loaded, load, spacing)
                                .record
                                .to_json()
                        })
                        .collect()
                })
            })
        })?;
        let list = PyList::empty(py);
        for json in records {
            list.append(to_python(py, &json)?)?;
        }
        Ok(list.unbind())
    }

    fn __repr__(&self) -> String {
        format!(
            "sagitta.Model(weights={:?}, adapter={:?})",
            self.weights, self.adapter
        )
    }
}

/// Loads a model on a GPU once: `weights` is a file or a list of files (one per family; their
/// architecture picks the model), else the shipped default of `model` (cervical, csm,
/// wholespine, lumbar, or all). `precision` is "f32" or "f16"; `adapter` a part of the GPU's
/// name, else the first one (lavapipe where there is no GPU).
#[pyfunction]
#[pyo3(signature = (weights=None, model="cervical", precision="f32", adapter=None))]
fn load(
    py: Python<'_>,
    weights: Option<Bound<'_, PyAny>>,
    model: &str,
    precision: &str,
    adapter: Option<String>,
) -> PyResult<Model> {
    let paths: Vec<PathBuf> = match weights {
        None => families(model)?.into_iter().map(default_weights).collect(),
        Some(weights) => match weights.extract::<PathBuf>() {
            Ok(path) => vec![path],
            Err(_) => weights.extract::<Vec<PathBuf>>()?,
        },
    };
    let precision = match precision {
        "f32" => Precision::F32,
        "f16" => Precision::F16,
        other => {
            return Err(PyValueError::new_err(format!(
                "precision '{other}': expected f32 or f16"
            )))
        }
    };
    let opened = paths
        .iter()
        .map(|path| open_weights(path, None))
        .collect::<Result<Vec<_>, _>>()
        .map_err(error)?;
    let families = opened
        .iter()
        .map(|(_, family)| family_name(*family))
        .collect();
    let files: Vec<_> = opened.into_iter().map(|(file, _)| file).collect();
    let choice = AdapterChoice {
        backend: None,
        name: adapter,
    };
    let mut analyzer = py
        .detach(move || Analyzer::new(&files, &choice, &EngineOptions::default()))
        .map_err(error)?;
    analyzer.set_precision(precision).map_err(error)?;
    let adapter = analyzer.adapter().to_string();
    Ok(Model {
        analyzer: Mutex::new(analyzer),
        weights: paths.iter().map(|p| p.display().to_string()).collect(),
        adapter,
        families,
    })
}

#[pymodule]
fn _sagitta(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(load, module)?)?;
    module.add_function(wrap_pyfunction!(parameter_units, module)?)?;
    module.add_class::<Model>()?;
    module.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}

//! Users run Metal and DX12 too: every WGSL kernel, specialised as the engine specialises it,
//! must translate to MSL, HLSL and SPIR-V without error.

use naga::back::PipelineConstants;
use naga::valid::{Capabilities, ValidationFlags, Validator};
use sagitta::engine::Precision;
use sagitta::ops::ALL_KERNELS;

/// Override sets the engine uses: every fusion combination on the hourglass's 3x3, and the other
/// geometries (1x1, strided, the 7x7 stem, Inception's 1x7 / 7x1 / 3x1 with stride (2, 1), 5x5,
/// unpadded reductions) with no fusion and with all of them; the linear layer with each activation.
fn specialisations(kernel: &str) -> Vec<Vec<(&'static str, f64)>> {
    if kernel == "linear" {
        // 0 none, 1 ReLU, 2 sigmoid.
        return (0..3u32)
            .map(|a| vec![("ACTIVATION", f64::from(a))])
            .collect();
    }
    if !kernel.starts_with("conv2d") {
        return vec![vec![]];
    }
    let geometry = |(kh, kw, sy, sx, py, px): (u32, u32, u32, u32, u32, u32)| {
        vec![
            ("KH", f64::from(kh)),
            ("KW", f64::from(kw)),
            ("STRIDE_Y", f64::from(sy)),
            ("STRIDE_X", f64::from(sx)),
            ("PAD_Y", f64::from(py)),
            ("PAD_X", f64::from(px)),
        ]
    };
    let fusions = |prologue: bool, residual: bool, activation: u32| {
        vec![
            ("PROLOGUE", f64::from(u8::from(prologue))),
            ("RESIDUAL", f64::from(u8::from(residual))),
            // 0 none, 1 ReLU, 2 sigmoid.
            ("ACTIVATION", f64::from(activation)),
        ]
    };
    let mut sets = Vec::new();
    for flags in 0..4u32 {
        for activation in 0..3u32 {
            let mut set = geometry((3, 3, 1, 1, 1, 1));
            set.extend(fusions(flags & 1 == 1, flags & 2 == 2, activation));
            sets.push(set);
        }
    }
    for shape in [
        (1, 1, 1, 1, 0, 0),
        (3, 3, 2, 2, 1, 1),
        (7, 7, 2, 2, 3, 3),
        (1, 7, 1, 1, 0, 3),
        (7, 1, 1, 1, 3, 0),
        (3, 1, 2, 1, 1, 0),
        (5, 5, 1, 1, 2, 2),
        (3, 3, 2, 2, 0, 0),
    ] {
        for all in [false, true] {
            let mut set = geometry(shape);
            set.extend(fusions(all, all, if all { 2 } else { 0 }));
            sets.push(set);
        }
    }
    sets
}

/// The module with its override constants applied, as the engine's pipelines get it.
fn specialise(
    module: &naga::Module,
    info: &naga::valid::ModuleInfo,
    kernel: &sagitta::engine::Kernel,
    overrides: &[(&'static str, f64)],
) -> (naga::Module, naga::valid::ModuleInfo) {
    let mut constants = PipelineConstants::default();
    for (k, v) in overrides {
        constants.insert(k.to_string(), *v);
    }
    let entry = Some((naga::ShaderStage::Compute, kernel.entry));
    let (module, info) =
        naga::back::pipeline_constants::process_overrides(module, info, entry, &constants)
            .unwrap_or_else(|e| panic!("{} {overrides:?}: overrides: {e:?}", kernel.name));
    (module.into_owned(), info.into_owned())
}

/// The fields of the `struct Params` a WGSL source declares, as (name, type).
fn wgsl_params(source: &str) -> Vec<(String, String)> {
    let start = source
        .find("struct Params {")
        .expect("a uniform block named Params");
    let body = &source[start + "struct Params {".len()..];
    let body = &body[..body.find('}').expect("closed struct")];
    body.lines()
        .map(|line| line.split("//").next().unwrap().trim())
        .filter(|line| !line.is_empty())
        .map(|line| {
            let (name, ty) = line
                .trim_end_matches(',')
                .split_once(':')
                .expect("name: type");
            (name.trim().to_string(), ty.trim().to_string())
        })
        .collect()
}

/// Every kernel's uniform block is the Rust params struct of its op: same fields, same order,
/// same 4-byte types. A field added on one side only fails here.
#[test]
fn every_uniform_block_matches_its_rust_params_struct() {
    let kernels = ALL_KERNELS
        .iter()
        .chain(std::iter::once(&sagitta::ops::CONV2D_COOP));
    for kernel in kernels {
        let declared = wgsl_params(kernel.source);
        let rust: Vec<(String, String)> = kernel
            .uniform
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect();
        assert_eq!(declared, rust, "{}: WGSL Params vs Rust", kernel.name);
        assert!(!rust.is_empty(), "{}: empty uniform block", kernel.name);
        assert!(
            rust.iter()
                .all(|(_, t)| ["u32", "i32", "f32"].contains(&t.as_str())),
            "{}: only 4-byte scalars keep the Rust and WGSL layouts equal",
            kernel.name
        );
    }
    // The check itself can fail: a struct with a renamed field does not match.
    let renamed = sagitta::ops::CONV2D
        .source
        .replace("out_c4: u32", "out_c_blocks: u32");
    assert_ne!(
        wgsl_params(&renamed),
        wgsl_params(sagitta::ops::CONV2D.source)
    );
}

#[test]
fn every_kernel_translates_to_msl_hlsl_and_spirv() {
    let mut translated = 0;
    let variants = ALL_KERNELS.iter().flat_map(|k| {
        let f16 = k
            .has_activations()
            .then(|| (k, k.source_for(Precision::F16)));
        let packed = k.has_activations().then(|| {
            let source = k
                .packed_f16_source()
                .unwrap_or_else(|e| panic!("packed f16 variant: {e}"));
            (k, source)
        });
        // Weights kept in f16 (files stored in f16): the convolutions read them packed.
        let f16_weights = k
            .source
            .contains("var<storage, read> weight: array<vec4<f32>>;")
            .then(|| {
                let source =
                    sagitta::engine::kernel::with_f16_packed_inputs(k.source, k.name, &["weight"])
                        .unwrap_or_else(|e| panic!("f16 weights variant: {e}"));
                (k, source)
            });
        std::iter::once((k, k.source.to_string()))
            .chain(f16)
            .chain(packed)
            .chain(f16_weights)
    });
    for (kernel, source) in variants {
        let is_f16 = source.starts_with("enable f16");
        let module = naga::front::wgsl::parse_str(&source).unwrap_or_else(|e| {
            panic!(
                "{}: WGSL parse error:\n{}",
                kernel.name,
                e.emit_to_string(&source)
            )
        });
        let mut capabilities = if is_f16 {
            Capabilities::SHADER_FLOAT16
        } else {
            Capabilities::empty()
        };
        // pack2x16float (packed f16 storage): every wgpu backend but some GL ES devices.
        if source.contains("pack2x16float") {
            capabilities |= Capabilities::SHADER_FLOAT16_IN_FLOAT32;
        }
        let info = Validator::new(ValidationFlags::all(), capabilities)
            .validate(&module)
            .unwrap_or_else(|e| panic!("{}: validation error: {e:?}", kernel.name));
        for overrides in specialisations(kernel.name) {
            let stage = naga::ShaderStage::Compute;
            let (module, info) = specialise(&module, &info, kernel, &overrides);
            let what = format!("{} {overrides:?} f16={is_f16}", kernel.name);

            let spv_pipeline = naga::back::spv::PipelineOptions {
                shader_stage: stage,
                entry_point: kernel.entry.to_string(),
            };
            let words = naga::back::spv::write_vec(
                &module,
                &info,
                &naga::back::spv::Options::default(),
                Some(&spv_pipeline),
            )
            .unwrap_or_else(|e| panic!("{what}: SPIR-V: {e:?}"));
            assert!(
                words.len() > 5 && words[0] == 0x0723_0203,
                "{what}: not SPIR-V"
            );
            spirv_validate(&words, &what);

            let msl_pipeline = naga::back::msl::PipelineOptions {
                entry_point: Some((stage, kernel.entry.to_string())),
                ..Default::default()
            };
            let (msl, _) = naga::back::msl::write_string(
                &module,
                &info,
                &naga::back::msl::Options::default(),
                &msl_pipeline,
            )
            .unwrap_or_else(|e| panic!("{what}: MSL: {e:?}"));
            assert!(msl.contains("kernel"), "{what}: MSL has no kernel function");

            let hlsl_pipeline = naga::back::hlsl::PipelineOptions {
                entry_point: Some((stage, kernel.entry.to_string())),
            };
            // f16 needs shader model 6.2 on DX12.
            let hlsl_options = naga::back::hlsl::Options {
                shader_model: if is_f16 {
                    naga::back::hlsl::ShaderModel::V6_2
                } else {
                    naga::back::hlsl::Options::default().shader_model
                },
                ..Default::default()
            };
            let mut hlsl = String::new();
            naga::back::hlsl::Writer::new(&mut hlsl, &hlsl_options, &hlsl_pipeline)
                .write(&module, &info, None)
                .unwrap_or_else(|e| panic!("{what}: HLSL: {e:?}"));
            assert!(
                hlsl.contains("numthreads"),
                "{what}: HLSL has no compute entry point"
            );
            translated += 1;
        }
    }
    assert!(
        translated >= ALL_KERNELS.len() + 31,
        "only {translated} translations ran"
    );
}

/// The f16 precision computes the direct and tiled convolutions' products in f16 (the Winograd
/// kernel keeps f32 arithmetic; its transforms amplify rounding), and nothing else changes type.
#[test]
fn f16_variants_multiply_in_f16_where_documented() {
    for kernel in ALL_KERNELS {
        let f16 = kernel.source_for(Precision::F16);
        let multiplies_in_f16 = f16.contains("alias mul = f16;");
        let expected = matches!(kernel.name, "conv2d" | "conv2d_tiled");
        assert_eq!(multiplies_in_f16, expected, "{}", kernel.name);
        if kernel.has_activations() {
            assert!(f16.contains("alias act = f16;"), "{}", kernel.name);
        }
        let f32 = kernel.source_for(Precision::F32);
        assert!(
            !f32.contains("enable f16") && !f32.contains("= f16;"),
            "{}",
            kernel.name
        );
    }
}

/// The cooperative-matrix convolution is chosen at run time on Vulkan adapters that have the
/// feature (NVIDIA): it must validate and translate to SPIR-V with every specialisation. (naga
/// writes HLSL without cooperative matrices, and Metal's simdgroup matrices are 8x8 only.)
#[test]
fn cooperative_matrix_convolution_translates_to_spirv() {
    let kernel = sagitta::ops::CONV2D_COOP;
    let module = naga::front::wgsl::parse_str(kernel.source).unwrap_or_else(|e| {
        panic!(
            "conv2d_coop: WGSL parse error:\n{}",
            e.emit_to_string(kernel.source)
        )
    });
    let capabilities =
        Capabilities::SHADER_FLOAT16 | Capabilities::COOPERATIVE_MATRIX | Capabilities::SUBGROUP;
    let info = Validator::new(ValidationFlags::all(), capabilities)
        .validate(&module)
        .unwrap_or_else(|e| panic!("conv2d_coop: validation error: {e:?}"));
    let mut translated = 0;
    for overrides in specialisations(kernel.name) {
        let stage = naga::ShaderStage::Compute;
        let (module, info) = specialise(&module, &info, &kernel, &overrides);
        let pipeline = naga::back::spv::PipelineOptions {
            shader_stage: stage,
            entry_point: kernel.entry.to_string(),
        };
        let options = naga::back::spv::Options {
            lang_version: (1, 3),
            ..Default::default()
        };
        let words = naga::back::spv::write_vec(&module, &info, &options, Some(&pipeline))
            .unwrap_or_else(|e| panic!("conv2d_coop {overrides:?}: SPIR-V: {e:?}"));
        assert!(words.len() > 5 && words[0] == 0x0723_0203);
        spirv_validate(&words, &format!("conv2d_coop {overrides:?}"));
        translated += 1;
    }
    assert_eq!(translated, specialisations(kernel.name).len());
}

/// Runs the Khronos validator (`spirv-val`, Debian package spirv-tools, installed by .ci/run) on
/// SPIR-V for Vulkan 1.3; skips with a note where it is not installed.
fn spirv_validate(words: &[u32], what: &str) {
    use std::process::Command;
    if Command::new("spirv-val").arg("--version").output().is_err() {
        static NOTE: std::sync::Once = std::sync::Once::new();
        NOTE.call_once(|| eprintln!("spirv-val not installed: SPIR-V not validated by Khronos"));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kernel.spv");
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    std::fs::write(&path, bytes).unwrap();
    let out = Command::new("spirv-val")
        .args(["--target-env", "vulkan1.3"])
        .arg(&path)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stderr);
    // SPIRV-Tools before 2023.4 (Debian 12 ships 2023.1) do not know CooperativeMatrixKHR (6022).
    if !out.status.success() && report.contains("Invalid capability operand: 6022") {
        eprintln!("{what}: this spirv-val predates SPV_KHR_cooperative_matrix; not validated");
        return;
    }
    assert!(
        out.status.success(),
        "{what}: spirv-val: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The packed-f16 rewrite refuses a kernel that touches an activation other than through
/// `f32(x[i])` / `x[i] = act(v);` (it would read raw bits) and rewrites the forms it knows.
#[test]
fn packed_f16_rewrite_refuses_raw_activation_access() {
    let kernel = |source: &'static str| sagitta::engine::Kernel {
        name: "probe",
        source,
        entry: "main",
        trusted: false,
        uniform: &[],
    };
    let raw = kernel(
        "alias act = f32;\n\
         @group(0) @binding(0) var<storage, read> x: array<act>;\n\
         @group(0) @binding(1) var<storage, read_write> y: array<act>;\n\
         @compute @workgroup_size(1) fn main() { y[0] = act(x[1] * 2.0); }\n",
    );
    let error = raw.packed_f16_source().unwrap_err();
    assert!(error.contains("'x'"), "{error}");
    let good = kernel(
        "alias act = f32;\n\
         @group(0) @binding(0) var<storage, read> x: array<act>;\n\
         @group(0) @binding(1) var<storage, read_write> y: array<act>;\n\
         @compute @workgroup_size(1) fn main() { y[u32(f32(x[1]))] = act(max(f32(x[2]), 0.0)); }\n",
    );
    let packed = good.packed_f16_source().unwrap();
    assert!(
        packed.contains("y_store(u32(x_at(1)), max(x_at(2), 0.0));"),
        "{packed}"
    );
    let module = naga::front::wgsl::parse_str(&packed).expect("rewritten WGSL parses");
    Validator::new(
        ValidationFlags::all(),
        Capabilities::SHADER_FLOAT16_IN_FLOAT32,
    )
    .validate(&module)
    .expect("rewritten WGSL validates");
}

/// The example viewer's render shaders (vertex and fragment) go to SPIR-V, MSL and HLSL too.
#[cfg(feature = "viewer")]
#[test]
fn the_viewer_shaders_translate_to_msl_hlsl_and_spirv() {
    for (name, source) in sagitta::cli::viewer::SHADERS {
        let module = naga::front::wgsl::parse_str(source)
            .unwrap_or_else(|e| panic!("{name}: WGSL parse error:\n{}", e.emit_to_string(source)));
        let info = Validator::new(ValidationFlags::all(), Capabilities::empty())
            .validate(&module)
            .unwrap_or_else(|e| panic!("{name}: validation error: {e:?}"));
        let fragment = module
            .entry_points
            .iter()
            .find(|e| e.stage == naga::ShaderStage::Fragment)
            .expect("a fragment entry point")
            .name
            .clone();
        for (stage, entry) in [
            (naga::ShaderStage::Vertex, "full_window".to_string()),
            (naga::ShaderStage::Fragment, fragment),
        ] {
            let what = format!("{name} {entry}");
            let words = naga::back::spv::write_vec(
                &module,
                &info,
                &naga::back::spv::Options::default(),
                Some(&naga::back::spv::PipelineOptions {
                    shader_stage: stage,
                    entry_point: entry.clone(),
                }),
            )
            .unwrap_or_else(|e| panic!("{what}: SPIR-V: {e:?}"));
            spirv_validate(&words, &what);
            let (msl, _) = naga::back::msl::write_string(
                &module,
                &info,
                &naga::back::msl::Options::default(),
                &naga::back::msl::PipelineOptions {
                    entry_point: Some((stage, entry.clone())),
                    ..Default::default()
                },
            )
            .unwrap_or_else(|e| panic!("{what}: MSL: {e:?}"));
            assert!(msl.contains(&entry), "{what}: MSL lacks the entry point");
            let mut hlsl = String::new();
            naga::back::hlsl::Writer::new(
                &mut hlsl,
                &naga::back::hlsl::Options::default(),
                &naga::back::hlsl::PipelineOptions {
                    entry_point: Some((stage, entry.clone())),
                },
            )
            .write(&module, &info, None)
            .unwrap_or_else(|e| panic!("{what}: HLSL: {e:?}"));
            assert!(hlsl.contains(&entry), "{what}: HLSL lacks the entry point");
        }
    }
}

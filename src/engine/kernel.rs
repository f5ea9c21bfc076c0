//! Kernels as WGSL source with their precision variants: activations stored in f32, in f16
//! (with `shader-f16`), or packed two f16 to a `u32` (without it), derived from one source text.

/// How activations are stored and convolutions multiply. `F16` stores activations as f16,
/// halving their memory and traffic. With the adapter's `shader-f16` it also runs the direct and
/// tiled convolutions' products and short partial sums (one input channel's K*K taps; one 16-deep
/// K tile) in f16, accumulating those partial sums in f32; without it the activations are packed
/// two to a u32 ([`Kernel::packed_f16_source`]) and everything computes in f32. The Winograd
/// kernel (its transforms amplify rounding), preprocessing, softmax, coordinates and boxes always
/// compute in f32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    F32,
    F16,
}

impl Precision {
    pub fn bytes(self) -> u32 {
        match self {
            Precision::F32 => 4,
            Precision::F16 => 2,
        }
    }
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "fp32" => Ok(Precision::F32),
            "f16" | "fp16" | "half" => Ok(Precision::F16),
            other => Err(format!("unknown precision '{other}': use f32 or f16")),
        }
    }
}

/// A kernel's uniform block as a Rust type: `#[repr(C)]`, 4-byte fields, written as it is.
pub trait UniformParams: bytemuck::Pod {
    /// Field names and Rust types in declaration order, to check against the WGSL `Params`.
    const FIELDS: &'static [(&'static str, &'static str)];

    /// The words of the uniform block.
    fn words(&self) -> Vec<u32> {
        bytemuck::cast_slice(bytemuck::bytes_of(self)).to_vec()
    }

    /// Reads the block back from a step's words (None when the length does not match).
    fn from_words(words: &[u32]) -> Option<Self> {
        let bytes: &[u8] = bytemuck::cast_slice(words);
        bytemuck::try_pod_read_unaligned(bytes).ok()
    }
}

/// A WGSL kernel: its source, entry point and uniform layout.
#[derive(Debug, Clone, Copy)]
pub struct Kernel {
    pub name: &'static str,
    pub source: &'static str,
    pub entry: &'static str,
    /// Compiled without wgpu's injected bounds, loop and division checks. Only for kernels whose
    /// every buffer and array index is guarded in the shader against the sizes in its uniform
    /// block, whose loops are bounded by those sizes, and whose divisors are sizes the host code
    /// checks to be non-zero before it writes them (see `ops::ConvLayer`).
    pub trusted: bool,
    /// The uniform block's fields (name, type) in order: the `Params` struct the source declares.
    pub uniform: &'static [(&'static str, &'static str)],
}

/// The line by which a kernel declares its activation storage type.
const ACTIVATION_ALIAS: &str = "alias act = f32;";
/// The line by which a convolution declares the type of its products and short partial sums.
const ARITHMETIC_ALIAS: &str = "alias mul = f32;";

impl Kernel {
    /// Whether the kernel reads or writes activations (and so has an f16 variant).
    pub fn has_activations(&self) -> bool {
        self.source.contains(ACTIVATION_ALIAS)
    }

    /// The f16 variant for adapters without `shader-f16`: activations packed two to a `u32`
    /// (`pack2x16float`, the same bytes as an `array<f16>`), arithmetic in f32. Read bindings
    /// become `array<u32>` read through `NAME_at(i)`, written ones `array<atomic<u32>>` written
    /// through `NAME_store(i, v)` (two atomics: neighbours may be written by other invocations).
    /// Kernels access activations only as `f32(NAME[i])` and `NAME[i] = act(v);`; any other access
    /// is an error here, not a silent reinterpretation of bits.
    pub fn packed_f16_source(&self) -> std::result::Result<String, String> {
        let mut source = self.source.to_string();
        let mut accessors = String::new();
        let bindings: Vec<(String, bool)> = self
            .source
            .lines()
            .filter_map(|line| {
                let line = line.trim();
                let rest = line.split_once("var<storage, ")?.1;
                let (access, rest) = rest.split_once("> ")?;
                let name = rest.strip_suffix(": array<act>;")?;
                Some((name.to_string(), access == "read_write"))
            })
            .collect();
        for (name, written) in &bindings {
            let declared = format!("{name}: array<act>;");
            if *written {
                source = source.replace(&declared, &format!("{name}: array<atomic<u32>>;"));
                source = rewrite_calls(&source, &format!("{name}["), "] = act(", ");", |i, v| {
                    format!("{name}_store({i}, {v});")
                })?;
                accessors.push_str(&format!(
                    "\nfn {name}_store(i: u32, v: f32) {{\n    let shift = (i & 1u) * 16u;\n    \
                     atomicAnd(&{name}[i >> 1u], ~(0xffffu << shift));\n    \
                     atomicOr(&{name}[i >> 1u], (pack2x16float(vec2<f32>(v, 0.0)) & 0xffffu) << shift);\n}}\n"
                ));
            } else {
                source = source.replace(&declared, &format!("{name}: array<u32>;"));
                source = rewrite_calls(&source, &format!("f32({name}["), "])", "", |i, _| {
                    format!("{name}_at({i})")
                })?;
                accessors.push_str(&format!(
                    "\nfn {name}_at(i: u32) -> f32 {{\n    \
                     return unpack2x16float({name}[i >> 1u])[i & 1u];\n}}\n"
                ));
            }
            // Whatever access is left would read or write raw bits.
            let raw = format!("{name}[");
            let leftover = source.match_indices(&raw).any(|(at, _)| {
                let before = source[..at].chars().next_back();
                !matches!(before, Some(c) if c.is_alphanumeric() || c == '_' || c == '&')
            });
            if leftover {
                return Err(format!(
                    "{}: activation '{name}' is accessed other than as f32({name}[i]) or \
                     {name}[i] = act(v);",
                    self.name
                ));
            }
        }
        Ok(source + &accessors)
    }

    /// The WGSL for a precision: the f16 variant enables f16 and stores activations as f16.
    pub fn source_for(&self, precision: Precision) -> String {
        if precision == Precision::F16 && self.has_activations() {
            format!(
                "enable f16;\n{}",
                self.source
                    .replace(ACTIVATION_ALIAS, "alias act = f16;")
                    .replace(ARITHMETIC_ALIAS, "alias mul = f16;")
            )
        } else {
            self.source.to_string()
        }
    }
}

/// Stores the read-only `array<vec4<f32>>` bindings `names` of `source` as packed f16: each vec4
/// becomes a `vec2<u32>` (`pack2x16float`, the bytes of four f16) and every `NAME[i]` becomes
/// `NAME_at(i)`, which unpacks to `vec4<f32>`. Needs no `shader-f16`: storage halves, arithmetic
/// stays f32. A binding that is not declared so is an error.
pub fn with_f16_packed_inputs(
    source: &str,
    kernel: &str,
    names: &[&str],
) -> std::result::Result<String, String> {
    let mut source = source.to_string();
    for name in names {
        let declared = format!("var<storage, read> {name}: array<vec4<f32>>;");
        if !source.contains(&declared) {
            return Err(format!(
                "{kernel}: '{name}' is not a read-only array<vec4<f32>> binding"
            ));
        }
        source = source.replace(
            &declared,
            &format!("var<storage, read> {name}: array<vec2<u32>>;"),
        );
        source = rewrite_calls(&source, &format!("{name}["), "]", "", |i, _| {
            format!("{name}_at({i})")
        })?;
        source.push_str(&format!(
            "\nfn {name}_at(i: u32) -> vec4<f32> {{\n    let h = {name}[i];\n    \
             return vec4<f32>(unpack2x16float(h.x), unpack2x16float(h.y));\n}}\n"
        ));
    }
    Ok(source)
}

/// Rewrites every `open INDEX middle VALUE close` in `source` (INDEX and VALUE with balanced
/// brackets) by `make(INDEX, VALUE)`; with an empty `close`, the form is `open INDEX middle`.
fn rewrite_calls(
    source: &str,
    open: &str,
    middle: &str,
    close: &str,
    make: impl Fn(&str, &str) -> String,
) -> std::result::Result<String, String> {
    // The end of the bracketed text starting at `from` (depth 0) where `until` follows.
    fn balanced(text: &str, from: usize, until: &str) -> Option<usize> {
        let mut depth = 0i32;
        for (i, c) in text[from..].char_indices() {
            if depth == 0 && text[from + i..].starts_with(until) {
                return Some(from + i);
            }
            match c {
                '(' | '[' => depth += 1,
                ')' | ']' => depth -= 1,
                ';' if depth == 0 => return None,
                _ => {}
            }
        }
        None
    }
    let mut out = String::new();
    let mut rest = source;
    while let Some(at) = rest.find(open) {
        let before = rest[..at].chars().next_back();
        if matches!(before, Some(c) if c.is_alphanumeric() || c == '_') {
            out.push_str(&rest[..at + open.len()]);
            rest = &rest[at + open.len()..];
            continue;
        }
        let start = at + open.len();
        let bad = || {
            format!(
                "cannot rewrite the access at '{}'",
                &rest[at..(at + 60).min(rest.len())]
            )
        };
        let index_end = balanced(rest, start, middle).ok_or_else(bad)?;
        let index = &rest[start..index_end];
        let (value, end) = if close.is_empty() {
            ("", index_end + middle.len())
        } else {
            let value_start = index_end + middle.len();
            let value_end = balanced(rest, value_start, close).ok_or_else(bad)?;
            (&rest[value_start..value_end], value_end + close.len())
        };
        out.push_str(&rest[..at]);
        out.push_str(&make(index, value));
        rest = &rest[end..];
    }
    out.push_str(rest);
    Ok(out)
}

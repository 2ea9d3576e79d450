//! A bounded GGUF header reader.
//!
//! llama.cpp answers a bad file with a bare null pointer. Reading the header ourselves first
//! lets nova say exactly what is wrong (not GGUF, unsupported version, truncated header, tensor
//! data cut short) and describe a model (architecture, quantization, context length) without
//! loading it. Every length read from the file is checked against a limit and against the file's
//! size before anything is allocated.
//!
//! The same walk over the tensor table also sums the bytes of each transformer layer
//! ([`layer_sizes`]), so that a model's layers can be split across devices by what each holds.

use std::{
    fs::File,
    io::{self, BufReader, Read},
    path::Path,
};

const MAGIC: &[u8; 4] = b"GGUF";
const MAX_STRING: u64 = 16 << 20;
const MAX_ARRAY: u64 = 50_000_000;
const MAX_KV: u64 = 1 << 20;
const MAX_TENSORS: u64 = 1 << 20;
const MAX_DIMS: u32 = 4;

/// Layer indices at or beyond this are refused: real models have at most a few hundred layers,
/// and the per-layer table is allocated up to the largest index found.
const MAX_LAYERS: u64 = 4096;

/// Integer metadata read per architecture (`<arch>.<suffix>`). The architecture may be declared
/// after these keys, so they are kept by full key and looked up once the header is read.
const ARCH_INTS: [&str; 6] = [
    "context_length",
    "embedding_length",
    "attention.head_count",
    "attention.head_count_kv",
    "attention.key_length",
    "attention.value_length",
];

/// Why a file is not a usable GGUF model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GgufError {
    /// The file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        source: io::Error,
    },
    /// The file does not start with the GGUF magic.
    #[error("not a GGUF file (it starts with {found:02x?}, not \"GGUF\")")]
    NotGguf {
        /// The first bytes found.
        found: Vec<u8>,
    },
    /// A GGUF version this reader does not know.
    #[error("unsupported GGUF version {0} (supported: 2 and 3)")]
    Version(u32),
    /// The file ends inside its header.
    #[error("truncated GGUF header: the file ends at byte {size} while reading {what}")]
    TruncatedHeader {
        /// The file's size.
        size: u64,
        /// What was being read.
        what: &'static str,
    },
    /// The tensor data is shorter than the header says.
    #[error("truncated GGUF file: it is {size} bytes, its tensors need {needed} bytes")]
    TruncatedData {
        /// The file's size.
        size: u64,
        /// Bytes the tensor table needs.
        needed: u64,
    },
    /// A count, length or type in the header is impossible.
    #[error("corrupt GGUF header: {0}")]
    Corrupt(String),
    /// A tensor of a ggml type whose size this reader does not know, so its bytes cannot be
    /// counted.
    #[error(
        "tensor {tensor} has ggml type {ty}, whose size nova does not know (a newer quantization?)"
    )]
    UnknownTensorType {
        /// The tensor's name.
        tensor: String,
        /// Its ggml type number.
        ty: u32,
    },
}

/// What the header says about a model.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GgufInfo {
    /// GGUF format version.
    pub version: u32,
    /// `general.architecture`, e.g. `llama`, `gemma3`.
    pub architecture: String,
    /// `general.name`, when present.
    pub name: Option<String>,
    /// Quantization, from `general.file_type` or else the most common tensor type.
    pub quantization: String,
    /// `<arch>.context_length`, the training context.
    pub context_length: Option<u64>,
    /// Whether the model carries a chat template (instruction-tuned models do).
    pub has_chat_template: bool,
    /// Number of tensors.
    pub tensor_count: u64,
    /// Total parameters (elements of all tensors).
    pub parameters: u64,
    /// File size in bytes.
    pub file_size: u64,
}

/// How many bytes each transformer layer of a model needs, to split its layers across devices.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LayerSizes {
    /// Weight bytes of the tensors named `blk.<N>.*`, indexed by N; its length is the number of
    /// layers. An index missing in the middle counts 0 bytes.
    pub layers: Vec<u64>,
    /// Weight bytes of every other tensor: token embeddings, output norm and projection, rope
    /// factors.
    pub other: u64,
    /// The f16 K and V cache bytes one token costs in one layer, 0 when the header does not say.
    /// An upper bound for sliding-window layers, whose llama.cpp cache keeps only the window.
    pub kv_bytes_per_token_per_layer: u64,
}

/// Reads and checks the header of the GGUF file at `path`, including that the file is long
/// enough for every tensor it declares.
pub fn inspect(path: &Path) -> Result<GgufInfo, GgufError> {
    let mut parameters = 0u64;
    let mut type_counts = std::collections::BTreeMap::<u32, u64>::new();
    let header = read_header(path, |t| {
        parameters = parameters.saturating_add(t.elements);
        let count = type_counts.entry(t.ty).or_default();
        *count = count.saturating_add(t.elements);
        Ok(())
    })?;
    let quantization = header
        .file_type
        .and_then(|ft| ftype_name(ft as u32))
        .map(str::to_string)
        .or_else(|| {
            let top = type_counts.iter().max_by_key(|(_, n)| **n).map(|(t, _)| *t);
            top.and_then(type_name).map(str::to_string)
        })
        .unwrap_or_else(|| "unknown".into());
    Ok(GgufInfo {
        context_length: header.arch_int("context_length"),
        version: header.version,
        architecture: header.architecture,
        name: header.name,
        quantization,
        has_chat_template: header.has_chat_template,
        tensor_count: header.tensor_count,
        parameters,
        file_size: header.size,
    })
}

/// Reads the header of the GGUF file at `path` (checked as [`inspect`] does) and sums its
/// tensors' bytes per transformer layer.
///
/// A tensor of a type whose size is unknown is refused rather than counted as 0 bytes: a plan
/// built on an undercount would overfill a device.
pub fn layer_sizes(path: &Path) -> Result<LayerSizes, GgufError> {
    let mut layers = Vec::<u64>::new();
    let mut other = 0u64;
    let header = read_header(path, |t| {
        let bytes = tensor_bytes(t.ty, t.elements)
            .ok_or_else(|| GgufError::UnknownTensorType { tensor: t.name.to_string(), ty: t.ty })?;
        match layer_index(t.name)? {
            Some(n) => {
                if layers.len() <= n {
                    layers.resize(n + 1, 0);
                }
                layers[n] = layers[n].saturating_add(bytes);
            }
            None => other = other.saturating_add(bytes),
        }
        Ok(())
    })?;
    Ok(LayerSizes {
        layers,
        other,
        kv_bytes_per_token_per_layer: header.kv_bytes_per_token_per_layer(),
    })
}

/// The layer a tensor belongs to: N for `blk.<N>` and `blk.<N>.*`, `None` for other names.
fn layer_index(name: &str) -> Result<Option<usize>, GgufError> {
    let Some(rest) = name.strip_prefix("blk.") else { return Ok(None) };
    let digits = rest.split('.').next().unwrap_or_default();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    match digits.parse::<u64>() {
        Ok(n) if n < MAX_LAYERS => Ok(Some(n as usize)),
        _ => Err(GgufError::Corrupt(format!(
            "tensor {name} is in layer {digits} (at most {MAX_LAYERS} layers)"
        ))),
    }
}

/// One entry of the tensor table.
struct Tensor<'a> {
    name: &'a str,
    ty: u32,
    elements: u64,
}

/// What the header says, apart from the tensor table, which [`read_header`] hands to its caller
/// entry by entry so that each caller keeps only the sums it needs.
struct Header {
    version: u32,
    architecture: String,
    name: Option<String>,
    file_type: Option<u64>,
    has_chat_template: bool,
    tensor_count: u64,
    /// The [`ARCH_INTS`] entries found, by full key, in file order.
    ints: Vec<(String, u64)>,
    /// The file's size.
    size: u64,
    /// Where the tensor data starts.
    #[cfg_attr(not(test), allow(dead_code))]
    data_start: u64,
}

impl Header {
    /// `<arch>.<suffix>` of this model's architecture; the first one when it is repeated.
    fn arch_int(&self, suffix: &str) -> Option<u64> {
        let key = format!("{}.{suffix}", self.architecture);
        self.ints.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }

    /// As llama.cpp sizes its cache: K and V of every KV head in f16, the head counts defaulting
    /// to `head_count` and the head sizes to `embedding_length / head_count`.
    fn kv_bytes_per_token_per_layer(&self) -> u64 {
        let n_head = self.arch_int("attention.head_count");
        let Some(n_kv) = self.arch_int("attention.head_count_kv").or(n_head) else { return 0 };
        let head_size =
            n_head.filter(|&h| h > 0).and_then(|h| Some(self.arch_int("embedding_length")? / h));
        let k = self.arch_int("attention.key_length").or(head_size);
        let v = self.arch_int("attention.value_length").or(head_size);
        let (Some(k), Some(v)) = (k, v) else { return 0 };
        2u64.saturating_mul(n_kv.saturating_mul(k).saturating_add(n_kv.saturating_mul(v)))
    }
}

/// Opens `path` and walks its header, calling `on_tensor` for each tensor table entry.
fn read_header(
    path: &Path,
    on_tensor: impl FnMut(Tensor<'_>) -> Result<(), GgufError>,
) -> Result<Header, GgufError> {
    let io_err = |source| GgufError::Io { path: path.display().to_string(), source };
    let file = File::open(path).map_err(io_err)?;
    let size = file.metadata().map_err(io_err)?.len();
    let mut r = Reader { inner: BufReader::with_capacity(1 << 16, file), pos: 0, size };
    parse(&mut r, on_tensor)
}

struct Reader<R> {
    inner: R,
    pos: u64,
    size: u64,
}

impl<R: Read> Reader<R> {
    fn bytes(&mut self, n: u64, what: &'static str) -> Result<Vec<u8>, GgufError> {
        if self.pos + n > self.size {
            return Err(GgufError::TruncatedHeader { size: self.size, what });
        }
        let mut buf = vec![0; n as usize];
        self.inner
            .read_exact(&mut buf)
            .map_err(|_| GgufError::TruncatedHeader { size: self.size, what })?;
        self.pos += n;
        Ok(buf)
    }

    fn skip(&mut self, n: u64, what: &'static str) -> Result<(), GgufError> {
        if self.pos + n > self.size {
            return Err(GgufError::TruncatedHeader { size: self.size, what });
        }
        let copied = io::copy(&mut (&mut self.inner).take(n), &mut io::sink())
            .map_err(|_| GgufError::TruncatedHeader { size: self.size, what })?;
        if copied != n {
            return Err(GgufError::TruncatedHeader { size: self.size, what });
        }
        self.pos += n;
        Ok(())
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, GgufError> {
        let b = self.bytes(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, GgufError> {
        let b = self.bytes(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(&b);
        Ok(u64::from_le_bytes(a))
    }

    fn string(&mut self, what: &'static str) -> Result<String, GgufError> {
        let len = self.u64(what)?;
        if len > MAX_STRING {
            return Err(GgufError::Corrupt(format!("{what}: a string of {len} bytes")));
        }
        Ok(String::from_utf8_lossy(&self.bytes(len, what)?).into_owned())
    }
}

/// A metadata value, kept only for the scalar and string kinds we read.
enum Value {
    Int(u64),
    Str(String),
    Other,
}

fn scalar_size(ty: u32) -> Option<u64> {
    Some(match ty {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        10..=12 => 8,
        _ => return None,
    })
}

/// The integer in the little-endian `bytes` of GGUF integer type `ty`; negative values read as 0,
/// as no count nova reads can be negative.
fn int_item(bytes: &[u8], ty: u32) -> u64 {
    let mut a = [0u8; 8];
    a[..bytes.len()].copy_from_slice(bytes);
    let v = u64::from_le_bytes(a);
    let signed = matches!(ty, 1 | 3 | 5 | 11);
    if signed && bytes.last().is_some_and(|b| b & 0x80 != 0) {
        0
    } else {
        v
    }
}

/// Reads one metadata value. With `per_layer`, an integer array of at most [`MAX_LAYERS`] items
/// reads as its largest item: some models give a head count per layer, and the largest is what a
/// layer may need.
fn read_value<R: Read>(r: &mut Reader<R>, ty: u32, per_layer: bool) -> Result<Value, GgufError> {
    const WHAT: &str = "a metadata value";
    match ty {
        8 => Ok(Value::Str(r.string(WHAT)?)),
        9 => {
            let item = r.u32(WHAT)?;
            let len = r.u64(WHAT)?;
            if len > MAX_ARRAY {
                return Err(GgufError::Corrupt(format!("an array of {len} items")));
            }
            let is_int = matches!(item, 0..=5 | 10 | 11);
            if let Some(sz) = scalar_size(item) {
                if per_layer && is_int && len <= MAX_LAYERS {
                    let bytes = r.bytes(len * sz, WHAT)?;
                    let max = bytes.chunks_exact(sz as usize).map(|b| int_item(b, item)).max();
                    return Ok(max.map_or(Value::Other, Value::Int));
                }
                r.skip(len * sz, WHAT)?;
            } else if item == 8 {
                for _ in 0..len {
                    let n = r.u64(WHAT)?;
                    if n > MAX_STRING {
                        return Err(GgufError::Corrupt(format!("a string of {n} bytes")));
                    }
                    r.skip(n, WHAT)?;
                }
            } else {
                return Err(GgufError::Corrupt(format!("array of unsupported type {item}")));
            }
            Ok(Value::Other)
        }
        4 => Ok(Value::Int(u64::from(r.u32(WHAT)?))),
        10 => Ok(Value::Int(r.u64(WHAT)?)),
        _ => match scalar_size(ty) {
            Some(sz) => {
                r.skip(sz, WHAT)?;
                Ok(Value::Other)
            }
            None => Err(GgufError::Corrupt(format!("metadata of unknown type {ty}"))),
        },
    }
}

/// Whether `key` is `<something>.<one of ARCH_INTS>`.
fn is_arch_int(key: &str) -> bool {
    ARCH_INTS.iter().any(|s| key.strip_suffix(s).is_some_and(|k| k.ends_with('.')))
}

fn parse<R: Read>(
    r: &mut Reader<R>,
    mut on_tensor: impl FnMut(Tensor<'_>) -> Result<(), GgufError>,
) -> Result<Header, GgufError> {
    let magic = r.bytes(4.min(r.size), "the magic")?;
    if magic.as_slice() != MAGIC {
        return Err(GgufError::NotGguf { found: magic });
    }
    let version = r.u32("the version")?;
    if !(2..=3).contains(&version) {
        return Err(GgufError::Version(version));
    }
    let tensor_count = r.u64("the tensor count")?;
    let kv_count = r.u64("the metadata count")?;
    if tensor_count > MAX_TENSORS || kv_count > MAX_KV {
        return Err(GgufError::Corrupt(format!(
            "{tensor_count} tensors and {kv_count} metadata entries"
        )));
    }

    let (mut arch, mut name, mut file_type, mut ints) = (None, None, None, Vec::new());
    let mut alignment = 32u64;
    let mut has_chat_template = false;
    for _ in 0..kv_count {
        let key = r.string("a metadata key")?;
        let ty = r.u32("a metadata type")?;
        let wanted = is_arch_int(&key);
        let value = read_value(r, ty, wanted)?;
        match (key.as_str(), value) {
            ("general.architecture", Value::Str(s)) => arch = Some(s),
            ("general.name", Value::Str(s)) => name = Some(s),
            ("general.file_type", Value::Int(v)) => file_type = Some(v),
            ("general.alignment", Value::Int(v)) => alignment = v,
            ("tokenizer.chat_template", _) => has_chat_template = true,
            (_, Value::Int(v)) if wanted => ints.push((key, v)),
            _ => {}
        }
    }
    let architecture = arch.ok_or_else(|| GgufError::Corrupt("no general.architecture".into()))?;
    if alignment == 0 || !alignment.is_power_of_two() {
        return Err(GgufError::Corrupt(format!("alignment {alignment}")));
    }

    let mut needed = 0u64;
    for _ in 0..tensor_count {
        let tname = r.string("a tensor name")?;
        let n_dims = r.u32("a tensor's dimensions")?;
        if n_dims == 0 || n_dims > MAX_DIMS {
            return Err(GgufError::Corrupt(format!("tensor {tname} has {n_dims} dimensions")));
        }
        let mut elements = 1u64;
        for _ in 0..n_dims {
            let d = r.u64("a tensor's dimensions")?;
            elements = elements
                .checked_mul(d)
                .ok_or_else(|| GgufError::Corrupt(format!("tensor {tname} is impossibly large")))?;
        }
        let ty = r.u32("a tensor's type")?;
        let offset = r.u64("a tensor's offset")?;
        let bytes = tensor_bytes(ty, elements).unwrap_or(0);
        needed = needed.max(offset.saturating_add(bytes));
        on_tensor(Tensor { name: &tname, ty, elements })?;
    }
    let data_start = r.pos.div_ceil(alignment) * alignment;
    let needed = data_start.saturating_add(needed);
    if needed > r.size {
        return Err(GgufError::TruncatedData { size: r.size, needed });
    }
    Ok(Header {
        version,
        architecture,
        name,
        file_type,
        has_chat_template,
        tensor_count,
        ints,
        size: r.size,
        data_start,
    })
}

/// (block size in elements, bytes per block) of ggml tensor types, from the `static_assert`s on
/// the block structs in ggml's `ggml-common.h`.
fn block(ty: u32) -> Option<(u64, u64)> {
    Some(match ty {
        0 => (1, 4),      // F32
        1 => (1, 2),      // F16
        2 => (32, 18),    // Q4_0
        3 => (32, 20),    // Q4_1
        6 => (32, 22),    // Q5_0
        7 => (32, 24),    // Q5_1
        8 => (32, 34),    // Q8_0
        9 => (32, 36),    // Q8_1
        10 => (256, 84),  // Q2_K
        11 => (256, 110), // Q3_K
        12 => (256, 144), // Q4_K
        13 => (256, 176), // Q5_K
        14 => (256, 210), // Q6_K
        15 => (256, 292), // Q8_K
        16 => (256, 66),  // IQ2_XXS
        17 => (256, 74),  // IQ2_XS
        18 => (256, 98),  // IQ3_XXS
        19 => (256, 50),  // IQ1_S
        20 => (32, 18),   // IQ4_NL
        21 => (256, 110), // IQ3_S
        22 => (256, 82),  // IQ2_S
        23 => (256, 136), // IQ4_XS
        24 => (1, 1),     // I8
        25 => (1, 2),     // I16
        26 => (1, 4),     // I32
        27 => (1, 8),     // I64
        28 => (1, 8),     // F64
        29 => (256, 56),  // IQ1_M
        30 => (1, 2),     // BF16
        34 => (256, 54),  // TQ1_0
        35 => (256, 66),  // TQ2_0
        39 => (32, 17),   // MXFP4
        _ => return None,
    })
}

fn tensor_bytes(ty: u32, elements: u64) -> Option<u64> {
    let (bs, ts) = block(ty)?;
    Some(elements.div_ceil(bs).saturating_mul(ts))
}

fn type_name(ty: u32) -> Option<&'static str> {
    Some(match ty {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        6 => "Q5_0",
        7 => "Q5_1",
        8 => "Q8_0",
        10 => "Q2_K",
        11 => "Q3_K",
        12 => "Q4_K",
        13 => "Q5_K",
        14 => "Q6_K",
        30 => "BF16",
        _ => return None,
    })
}

/// Names of llama.cpp's `llama_ftype` values (`general.file_type`).
fn ftype_name(ft: u32) -> Option<&'static str> {
    Some(match ft {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        25 => "IQ4_NL",
        30 => "IQ4_XS",
        32 => "BF16",
        _ => return None,
    })
}

/// Builds small GGUF files for tests of this reader and of everything that loads models.
pub mod testing {
    /// A metadata value for [`gguf_with`].
    #[derive(Debug, Clone, Copy)]
    pub enum Meta<'a> {
        /// A `u32` scalar.
        U32(u32),
        /// A string.
        Str(&'a str),
        /// An array of `u32`, as some models give a value per layer.
        U32s(&'a [u32]),
    }

    /// A minimal GGUF with a context length and one F32 tensor `w` of `elements` elements whose
    /// data is present in full.
    pub fn tiny_gguf(arch: &str, elements: u64) -> Vec<u8> {
        let ctx = format!("{arch}.context_length");
        gguf_with(arch, &[(&ctx, Meta::U32(512))], &[("w", 0, elements)])
    }

    /// A GGUF declaring `general.architecture` = `arch`, then `meta` in order, then the tensors
    /// `(name, ggml type, elements)` as one-dimensional tensors, each aligned to 32 bytes, their
    /// (zeroed) data present in full. Panics on a tensor type the reader cannot size.
    pub fn gguf_with(
        arch: &str,
        meta: &[(&str, Meta<'_>)],
        tensors: &[(&str, u32, u64)],
    ) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(b"GGUF");
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
        b.extend_from_slice(&(meta.len() as u64 + 1).to_le_bytes());
        put_str(&mut b, "general.architecture");
        b.extend_from_slice(&8u32.to_le_bytes());
        put_str(&mut b, arch);
        for (key, value) in meta {
            put_str(&mut b, key);
            match value {
                Meta::U32(v) => {
                    b.extend_from_slice(&4u32.to_le_bytes());
                    b.extend_from_slice(&v.to_le_bytes());
                }
                Meta::Str(s) => {
                    b.extend_from_slice(&8u32.to_le_bytes());
                    put_str(&mut b, s);
                }
                Meta::U32s(vs) => {
                    b.extend_from_slice(&9u32.to_le_bytes());
                    b.extend_from_slice(&4u32.to_le_bytes());
                    b.extend_from_slice(&(vs.len() as u64).to_le_bytes());
                    for v in *vs {
                        b.extend_from_slice(&v.to_le_bytes());
                    }
                }
            }
        }
        // No padding after the last tensor, so that cutting one byte off truncates its data.
        let mut end = 0u64;
        for &(name, ty, elements) in tensors {
            let offset = end.div_ceil(32) * 32;
            put_str(&mut b, name);
            b.extend_from_slice(&1u32.to_le_bytes());
            b.extend_from_slice(&elements.to_le_bytes());
            b.extend_from_slice(&ty.to_le_bytes());
            b.extend_from_slice(&offset.to_le_bytes());
            let bytes = super::tensor_bytes(ty, elements).expect("a tensor type the reader sizes");
            end = offset + bytes;
        }
        while b.len() % 32 != 0 {
            b.push(0);
        }
        b.resize(b.len() + end as usize, 0);
        b
    }

    fn put_str(b: &mut Vec<u8>, s: &str) {
        b.extend_from_slice(&(s.len() as u64).to_le_bytes());
        b.extend_from_slice(s.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn write(bytes: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(bytes).unwrap();
        f
    }

    #[test]
    fn reads_a_tiny_model() {
        let f = write(&testing::tiny_gguf("llama", 64));
        let info = inspect(f.path()).unwrap();
        assert_eq!(info.architecture, "llama");
        assert_eq!(info.context_length, Some(512));
        assert_eq!(info.quantization, "F32");
        assert_eq!(info.parameters, 64);
        assert!(!info.has_chat_template);
    }

    #[test]
    fn refuses_other_files() {
        let f = write(b"PK\x03\x04 this is a zip");
        assert!(matches!(inspect(f.path()), Err(GgufError::NotGguf { .. })));
        let f = write(b"");
        assert!(matches!(inspect(f.path()), Err(GgufError::NotGguf { .. })));
    }

    #[test]
    fn refuses_truncation_anywhere() {
        let full = testing::tiny_gguf("llama", 64);
        for cut in [5, 20, 40, 80, full.len() - 1] {
            let f = write(&full[..cut]);
            let err = inspect(f.path()).unwrap_err();
            assert!(
                matches!(err, GgufError::TruncatedHeader { .. } | GgufError::TruncatedData { .. }),
                "cut at {cut}: {err}"
            );
        }
        let err = inspect(write(&full[..full.len() - 1]).path()).unwrap_err();
        assert!(err.to_string().contains("truncated GGUF file"), "{err}");
    }

    #[test]
    fn refuses_absurd_lengths_without_allocating() {
        let mut b = testing::tiny_gguf("llama", 4);
        // Overwrite the first key's length with an enormous value.
        b[24..32].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(inspect(write(&b).path()), Err(GgufError::Corrupt(_))));
    }

    #[test]
    fn refuses_unknown_versions() {
        let mut b = testing::tiny_gguf("llama", 4);
        b[4..8].copy_from_slice(&9u32.to_le_bytes());
        assert!(matches!(inspect(write(&b).path()), Err(GgufError::Version(9))));
    }

    #[test]
    fn flipped_bytes_never_panic() {
        let full = testing::tiny_gguf("llama", 16);
        for i in 0..full.len().min(200) {
            let mut b = full.clone();
            b[i] ^= 0xA5;
            let _ = inspect(write(&b).path());
        }
    }

    /// A llama-like model: two weights in layer 0, none in layer 1, one in layer 2, and the
    /// embeddings and output norm outside the layers.
    fn layered(meta: &[(&str, testing::Meta<'_>)]) -> Vec<u8> {
        testing::gguf_with(
            "llama",
            meta,
            &[
                ("token_embd.weight", 0, 100),
                ("blk.0.attn_q.weight", 0, 64),
                ("blk.0.ffn_up.weight", 2, 64),
                ("blk.2.attn_q.weight", 0, 8),
                ("output_norm.weight", 0, 16),
            ],
        )
    }

    #[test]
    fn sizes_layers_and_the_rest() {
        use testing::Meta::U32;
        let f = write(&layered(&[
            ("llama.attention.head_count", U32(4)),
            ("llama.attention.head_count_kv", U32(2)),
            ("llama.embedding_length", U32(64)),
        ]));
        let sizes = layer_sizes(f.path()).unwrap();
        // F32 64 = 256 bytes, Q4_0 64 = 2 blocks of 18; layer 1 has no tensor.
        assert_eq!(sizes.layers, vec![256 + 36, 0, 32]);
        assert_eq!(sizes.other, 400 + 64);
        // No key/value length: 64 / 4 = 16 per head; 2 KV heads, K and V, 2 bytes each.
        assert_eq!(sizes.kv_bytes_per_token_per_layer, 2 * (2 * 16 + 2 * 16));
        // The same walk still describes the model.
        assert_eq!(inspect(f.path()).unwrap().parameters, 100 + 64 + 64 + 8 + 16);
    }

    #[test]
    fn kv_size_from_explicit_lengths_and_per_layer_heads() {
        use testing::Meta::{U32s, U32};
        let f = write(&layered(&[
            ("llama.attention.head_count_kv", U32s(&[1, 4, 2])),
            ("llama.attention.head_count", U32(8)),
            ("llama.attention.key_length", U32(256)),
            ("llama.attention.value_length", U32(128)),
        ]));
        let sizes = layer_sizes(f.path()).unwrap();
        assert_eq!(sizes.kv_bytes_per_token_per_layer, 2 * (4 * 256 + 4 * 128));

        // Without head_count_kv every head has its K and V, as llama.cpp assumes.
        let f = write(&layered(&[
            ("llama.attention.head_count", U32(8)),
            ("llama.embedding_length", U32(64)),
        ]));
        assert_eq!(layer_sizes(f.path()).unwrap().kv_bytes_per_token_per_layer, 2 * (8 * 8 * 2));

        // Another architecture's keys are not this model's.
        let f = write(&layered(&[
            ("gemma3.attention.head_count_kv", U32(1)),
            ("gemma3.attention.key_length", U32(256)),
            ("gemma3.attention.value_length", U32(256)),
        ]));
        assert_eq!(layer_sizes(f.path()).unwrap().kv_bytes_per_token_per_layer, 0);
        let f = write(&layered(&[]));
        assert_eq!(layer_sizes(f.path()).unwrap().kv_bytes_per_token_per_layer, 0);
    }

    #[test]
    fn layer_names_and_bounds() {
        let f = write(&testing::gguf_with(
            "llama",
            &[],
            &[("blk.x.weight", 0, 4), ("blkfoo", 0, 4), ("blk..w", 0, 4), ("blk.3", 0, 4)],
        ));
        let sizes = layer_sizes(f.path()).unwrap();
        assert_eq!(sizes.layers, vec![0, 0, 0, 16]);
        assert_eq!(sizes.other, 48);

        let last = write(&testing::gguf_with("llama", &[], &[("blk.4095.w", 0, 1)]));
        assert_eq!(layer_sizes(last.path()).unwrap().layers.len(), 4096);
        for name in ["blk.4096.w", "blk.99999999999999999999999.w"] {
            let f = write(&testing::gguf_with("llama", &[], &[(name, 0, 1)]));
            let err = layer_sizes(f.path()).unwrap_err();
            assert!(matches!(err, GgufError::Corrupt(_)), "{name}: {err}");
            // Describing the model does not depend on its layer names.
            inspect(f.path()).unwrap();
        }
    }

    #[test]
    fn refuses_to_size_unknown_tensor_types() {
        let mut b = testing::gguf_with("llama", &[], &[("blk.0.w", 0, 4)]);
        let at = b.windows(7).position(|w| w == b"blk.0.w").unwrap() + 7 + 4 + 8;
        b[at..at + 4].copy_from_slice(&31u32.to_le_bytes());
        let err = layer_sizes(write(&b).path()).unwrap_err();
        assert!(matches!(err, GgufError::UnknownTensorType { ty: 31, .. }), "{err}");
        assert!(err.to_string().contains("blk.0.w"), "{err}");
    }

    #[test]
    fn sizing_refuses_truncation_and_never_panics() {
        use testing::Meta::{U32s, U32};
        let full = layered(&[
            ("llama.attention.head_count_kv", U32s(&[2, 2, 2])),
            ("llama.attention.head_count", U32(4)),
        ]);
        let err = layer_sizes(write(&full[..full.len() - 1]).path()).unwrap_err();
        assert!(matches!(err, GgufError::TruncatedData { .. }), "{err}");
        for i in 0..full.len().min(400) {
            let mut b = full.clone();
            b[i] ^= 0xA5;
            let _ = layer_sizes(write(&b).path());
        }
    }

    /// The models of the catalog, when this machine has them: their layer counts are known, and
    /// the per-layer sums must account for the whole tensor data (the rest is alignment padding).
    #[test]
    fn sizes_real_models_when_present() {
        let Some(home) = std::env::var_os("HOME") else { return };
        let dir = Path::new(&home).join(".local/share/nova/models");
        for (file, n_layer) in
            [("SmolLM2-135M-Instruct.Q4_1.gguf", 30), ("gemma-3-270m-q4_k_m.gguf", 18)]
        {
            let path = dir.join(file);
            if !path.exists() {
                println!("{file}: not at {}, skipped", path.display());
                continue;
            }
            let sizes = layer_sizes(&path).unwrap();
            let header = read_header(&path, |_| Ok(())).unwrap();
            let data = header.size - header.data_start;
            let sum = sizes.layers.iter().sum::<u64>() + sizes.other;
            println!(
                "{file}: {} layers, {:?} bytes per layer, other {} bytes, layers+other {} bytes, \
                 tensor data {} bytes, file {} bytes, KV {} bytes per token per layer",
                sizes.layers.len(),
                sizes.layers,
                sizes.other,
                sum,
                data,
                header.size,
                sizes.kv_bytes_per_token_per_layer
            );
            assert_eq!(sizes.layers.len(), n_layer, "{file}");
            assert!(sizes.layers.iter().all(|&b| b > 0), "{file}: {:?}", sizes.layers);
            assert!(sum <= data && data - sum <= data / 100, "{file}: {sum} of {data}");
            assert!(sizes.kv_bytes_per_token_per_layer > 0, "{file}");
        }
    }
}

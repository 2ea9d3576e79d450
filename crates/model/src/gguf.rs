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

use types::{ftype_name, tensor_bytes, type_name};

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
const ARCH_INTS: [&str; 7] = [
    "context_length",
    "embedding_length",
    "feed_forward_length",
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
    /// An upper bound on the f32 activations one token of a batch keeps live in a layer's
    /// compute buffer: three FFN-wide tensors (gate, up, their product) and four as wide as the
    /// widest of the embedding and the attention heads. 0 when the header does not say.
    pub activation_bytes_per_token: u64,
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
        activation_bytes_per_token: header.activation_bytes_per_token(),
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
    fn activation_bytes_per_token(&self) -> u64 {
        let n_embd = self.arch_int("embedding_length").unwrap_or(0);
        let n_ff = self.arch_int("feed_forward_length").unwrap_or(0);
        let q = match (self.arch_int("attention.head_count"), self.arch_int("attention.key_length"))
        {
            (Some(h), Some(k)) => h.saturating_mul(k),
            _ => n_embd,
        };
        let width = 3u64.saturating_mul(n_ff).saturating_add(4u64.saturating_mul(n_embd.max(q)));
        4u64.saturating_mul(width)
    }

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

mod types;

pub mod testing;

#[cfg(test)]
mod tests;

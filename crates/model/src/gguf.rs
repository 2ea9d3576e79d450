//! A bounded GGUF header reader.
//!
//! llama.cpp answers a bad file with a bare null pointer. Reading the header ourselves first
//! lets nova say exactly what is wrong (not GGUF, unsupported version, truncated header, tensor
//! data cut short) and describe a model (architecture, quantization, context length) without
//! loading it. Every length read from the file is checked against a limit and against the file's
//! size before anything is allocated.

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

/// Reads and checks the header of the GGUF file at `path`, including that the file is long
/// enough for every tensor it declares.
pub fn inspect(path: &Path) -> Result<GgufInfo, GgufError> {
    let io_err = |source| GgufError::Io { path: path.display().to_string(), source };
    let file = File::open(path).map_err(io_err)?;
    let size = file.metadata().map_err(io_err)?.len();
    let mut r = Reader { inner: BufReader::with_capacity(1 << 16, file), pos: 0, size };
    parse(&mut r)
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

fn read_value<R: Read>(r: &mut Reader<R>, ty: u32) -> Result<Value, GgufError> {
    const WHAT: &str = "a metadata value";
    match ty {
        8 => Ok(Value::Str(r.string(WHAT)?)),
        9 => {
            let item = r.u32(WHAT)?;
            let len = r.u64(WHAT)?;
            if len > MAX_ARRAY {
                return Err(GgufError::Corrupt(format!("an array of {len} items")));
            }
            if let Some(sz) = scalar_size(item) {
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

fn parse<R: Read>(r: &mut Reader<R>) -> Result<GgufInfo, GgufError> {
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

    let (mut arch, mut name, mut file_type, mut ctx_len) = (None, None, None, Vec::new());
    let mut alignment = 32u64;
    let mut has_chat_template = false;
    for _ in 0..kv_count {
        let key = r.string("a metadata key")?;
        let ty = r.u32("a metadata type")?;
        let value = read_value(r, ty)?;
        match (key.as_str(), value) {
            ("general.architecture", Value::Str(s)) => arch = Some(s),
            ("general.name", Value::Str(s)) => name = Some(s),
            ("general.file_type", Value::Int(v)) => file_type = Some(v),
            ("general.alignment", Value::Int(v)) => alignment = v,
            ("tokenizer.chat_template", _) => has_chat_template = true,
            (k, Value::Int(v)) if k.ends_with(".context_length") => ctx_len.push((key, v)),
            _ => {}
        }
    }
    let architecture = arch.ok_or_else(|| GgufError::Corrupt("no general.architecture".into()))?;
    if alignment == 0 || !alignment.is_power_of_two() {
        return Err(GgufError::Corrupt(format!("alignment {alignment}")));
    }
    let context_length = ctx_len
        .iter()
        .find(|(k, _)| *k == format!("{architecture}.context_length"))
        .map(|(_, v)| *v);

    let mut needed = 0u64;
    let mut parameters = 0u64;
    let mut type_counts = std::collections::BTreeMap::<u32, u64>::new();
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
        parameters = parameters.saturating_add(elements);
        *type_counts.entry(ty).or_default() += elements;
        let bytes = tensor_bytes(ty, elements).unwrap_or(0);
        needed = needed.max(offset.saturating_add(bytes));
    }
    let data_start = r.pos.div_ceil(alignment) * alignment;
    let needed = data_start.saturating_add(needed);
    if needed > r.size {
        return Err(GgufError::TruncatedData { size: r.size, needed });
    }
    let quantization = file_type
        .and_then(|ft| ftype_name(ft as u32))
        .map(str::to_string)
        .or_else(|| {
            let top = type_counts.iter().max_by_key(|(_, n)| **n).map(|(t, _)| *t);
            top.and_then(type_name).map(str::to_string)
        })
        .unwrap_or_else(|| "unknown".into());
    Ok(GgufInfo {
        version,
        architecture,
        name,
        quantization,
        context_length,
        has_chat_template,
        tensor_count,
        parameters,
        file_size: r.size,
    })
}

/// (block size in elements, bytes per block) of ggml tensor types.
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
        20 => (32, 18),   // IQ4_NL
        23 => (256, 136), // IQ4_XS
        24 => (1, 1),     // I8
        25 => (1, 2),     // I16
        26 => (1, 4),     // I32
        27 => (1, 8),     // I64
        28 => (1, 8),     // F64
        30 => (1, 2),     // BF16
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
    /// A minimal GGUF with the given metadata strings and one F32 tensor of `elements`
    /// elements whose data is present in full.
    pub fn tiny_gguf(arch: &str, elements: u64) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(b"GGUF");
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(&1u64.to_le_bytes()); // tensors
        b.extend_from_slice(&2u64.to_le_bytes()); // kvs
        put_str(&mut b, "general.architecture");
        b.extend_from_slice(&8u32.to_le_bytes());
        put_str(&mut b, arch);
        put_str(&mut b, &format!("{arch}.context_length"));
        b.extend_from_slice(&4u32.to_le_bytes());
        b.extend_from_slice(&512u32.to_le_bytes());
        put_str(&mut b, "w");
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&elements.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes()); // F32
        b.extend_from_slice(&0u64.to_le_bytes()); // offset
        while b.len() % 32 != 0 {
            b.push(0);
        }
        b.resize(b.len() + elements as usize * 4, 0);
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
}

//! Embeddings: what a gateway asks a worker to embed, what comes back, and the bounds both
//! sides hold. One request is embedded by one model, so its vectors share one space.
//!
//! Vectors cross the wire as little-endian `f32` bytes in base64 (what OpenAI's
//! `encoding_format: "base64"` sends too): exact, and a third of the size of JSON numbers.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::{Limits, TaskId};

/// Most inputs in one request. A client with more sends several requests.
pub const MAX_EMBED_INPUTS: usize = 256;
/// Most bytes of text in one request, all inputs together. Half the HTTP body limit, so the
/// request frame (the inputs re-encoded as JSON, never longer than the client's own encoding)
/// fits the 1 MiB wire frame.
pub const MAX_EMBED_BYTES: usize = 512 * 1024;
/// Widest vector accepted from a worker: larger than any model a small device runs (a 7B
/// model's is 4,096), small enough that one vector stays far below a wire frame.
pub const MAX_EMBED_DIM: usize = 16_384;
/// Longest model name a worker may report with its vectors.
pub const MAX_EMBED_MODEL_BYTES: usize = 256;

/// Texts to embed, validated: 1 to [`MAX_EMBED_INPUTS`] non-empty inputs without NUL, each at most
/// [`Limits::max_prompt_bytes`], at most [`MAX_EMBED_BYTES`] together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmbedRequest {
    /// Names the request in logs on every node.
    pub id: TaskId,
    /// The texts, in the order their vectors come back.
    pub inputs: Vec<String>,
}

/// Why inputs to embed were refused. Each message names the input and the bound.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EmbedInputError {
    /// No input at all (an empty list).
    #[error("input is an empty list; give a string or a list of strings")]
    NoInput,
    /// More inputs than [`MAX_EMBED_INPUTS`].
    #[error("input has {n} items; at most {max} are embedded per request")]
    TooMany {
        /// Inputs given.
        n: usize,
        /// The bound.
        max: usize,
    },
    /// An input is the empty string, which has no meaning to embed.
    #[error("input[{index}] is an empty string")]
    Empty {
        /// Which input.
        index: usize,
    },
    /// An input contains a NUL character, which no model's tokenizer accepts.
    #[error("input[{index}] contains a NUL character (\\u0000)")]
    Nul {
        /// Which input.
        index: usize,
    },
    /// An input is longer than the prompt limit.
    #[error("input[{index}] is {len} bytes; the limit is {max}")]
    TooLong {
        /// Which input.
        index: usize,
        /// Its length.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// The inputs together are longer than [`MAX_EMBED_BYTES`].
    #[error("the inputs are {total} bytes together; the limit is {max}")]
    TooLarge {
        /// Their total length.
        total: usize,
        /// The bound.
        max: usize,
    },
}

impl EmbedInputError {
    /// A stable name for API error bodies.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NoInput | Self::Empty { .. } => "invalid_input",
            Self::Nul { .. } => "nul_character",
            Self::TooMany { .. } => "too_many_inputs",
            Self::TooLong { .. } | Self::TooLarge { .. } => "input_too_long",
        }
    }
}

impl EmbedRequest {
    /// Validates `inputs` against `limits` and the embedding bounds.
    pub fn new(id: TaskId, inputs: Vec<String>, limits: &Limits) -> Result<Self, EmbedInputError> {
        let req = Self { id, inputs };
        req.check(limits)?;
        Ok(req)
    }

    /// Checks the bounds again, for a request that arrived from a peer. The count is checked
    /// before any input is looked at.
    pub fn check(&self, limits: &Limits) -> Result<(), EmbedInputError> {
        let n = self.inputs.len();
        if n == 0 {
            return Err(EmbedInputError::NoInput);
        }
        if n > MAX_EMBED_INPUTS {
            return Err(EmbedInputError::TooMany { n, max: MAX_EMBED_INPUTS });
        }
        let mut total = 0usize;
        for (index, text) in self.inputs.iter().enumerate() {
            if text.is_empty() {
                return Err(EmbedInputError::Empty { index });
            }
            if text.len() > limits.max_prompt_bytes {
                return Err(EmbedInputError::TooLong {
                    index,
                    len: text.len(),
                    max: limits.max_prompt_bytes,
                });
            }
            if text.contains('\0') {
                return Err(EmbedInputError::Nul { index });
            }
            total += text.len();
        }
        if total > MAX_EMBED_BYTES {
            return Err(EmbedInputError::TooLarge { total, max: MAX_EMBED_BYTES });
        }
        Ok(())
    }
}

/// The vectors of one request, from one model.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    /// The model that computed them: vectors of different models are not comparable.
    pub model: String,
    /// One L2-normalised vector per input, in input order, all of one width.
    pub vectors: Vec<Vec<f32>>,
    /// Tokens the model read, all inputs together.
    pub prompt_tokens: u32,
}

impl Embeddings {
    /// The width of the vectors (0 when there are none).
    pub fn width(&self) -> usize {
        self.vectors.first().map_or(0, Vec::len)
    }

    /// Holds vectors that came from elsewhere (a peer, an upstream server) to what the API
    /// promises: exactly `inputs` vectors, one width between 1 and [`MAX_EMBED_DIM`], finite,
    /// and L2-normalised (they are normalised here, so a backend that forgot still complies).
    /// Says what is wrong otherwise.
    pub fn checked(mut self, inputs: usize) -> Result<Self, String> {
        if self.vectors.len() != inputs {
            return Err(format!("{} vectors for {inputs} inputs", self.vectors.len()));
        }
        let width = self.width();
        if width == 0 || width > MAX_EMBED_DIM {
            return Err(format!("vectors of width {width}; expected 1 to {MAX_EMBED_DIM}"));
        }
        if self.model.is_empty() || self.model.len() > MAX_EMBED_MODEL_BYTES {
            return Err(format!("a model name of {} bytes", self.model.len()));
        }
        for (i, v) in self.vectors.iter_mut().enumerate() {
            if v.len() != width {
                return Err(format!("vector {i} has width {}, vector 0 has {width}", v.len()));
            }
            // A vector already of unit length is kept bit for bit: normalising it again could
            // move its last digits, and the same text must give the same vector on every path.
            let n = norm(v);
            if !n.is_finite() || n == 0.0 {
                return Err(format!("vector {i} is zero or not finite"));
            }
            if (n - 1.0).abs() > 1e-5 {
                l2_normalize(v);
            }
        }
        Ok(self)
    }
}

/// The Euclidean length of `v`, summed in f64 (a 16k-wide vector of f32 squares loses digits
/// otherwise, and the squares of large f32s overflow f32).
fn norm(v: &[f32]) -> f64 {
    v.iter().map(|x| f64::from(*x) * f64::from(*x)).sum::<f64>().sqrt()
}

/// Scales `v` to unit length. False (and `v` unchanged) when it has no direction: all zeros,
/// or a value that is not finite.
pub fn l2_normalize(v: &mut [f32]) -> bool {
    let norm = norm(v);
    if !norm.is_finite() || norm == 0.0 {
        return false;
    }
    for x in v.iter_mut() {
        *x = (f64::from(*x) / norm) as f32;
    }
    true
}

/// `v` as little-endian `f32` bytes in standard base64 (padding included), as OpenAI's
/// `encoding_format: "base64"` has it.
pub fn encode_f32le(v: &[f32]) -> String {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Why a base64 vector could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VectorDecodeError {
    /// Longer than `max` values; checked on the text's length, before decoding.
    #[error("a vector of more than {max} values")]
    TooLong {
        /// The bound.
        max: usize,
    },
    /// Not base64, or not a whole number of `f32`s.
    #[error("a vector that is not base64 of little-endian f32s: {0}")]
    Malformed(String),
}

/// Reads a vector written by [`encode_f32le`], of at most `max` values.
pub fn decode_f32le(s: &str, max: usize) -> Result<Vec<f32>, VectorDecodeError> {
    // Four base64 characters carry three bytes: refuse by length before allocating.
    if s.len() / 4 * 3 > max.saturating_mul(4) + 3 {
        return Err(VectorDecodeError::TooLong { max });
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|e| VectorDecodeError::Malformed(e.to_string()))?;
    if bytes.len() % 4 != 0 {
        return Err(VectorDecodeError::Malformed(format!("{} bytes", bytes.len())));
    }
    if bytes.len() / 4 > max {
        return Err(VectorDecodeError::TooLong { max });
    }
    Ok(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn every_bound_is_named() {
        let l = Limits::default();
        let id = TaskId(1);
        assert!(EmbedRequest::new(id, inputs(&["a", "b"]), &l).is_ok());
        assert_eq!(EmbedRequest::new(id, vec![], &l), Err(EmbedInputError::NoInput));
        let e = EmbedRequest::new(id, inputs(&["a", ""]), &l).unwrap_err();
        assert_eq!(
            (e.to_string().as_str(), e.kind()),
            ("input[1] is an empty string", "invalid_input")
        );
        let e = EmbedRequest::new(id, inputs(&["a\0b"]), &l).unwrap_err();
        assert_eq!(e.to_string(), "input[0] contains a NUL character (\\u0000)");
        let many = vec!["x".to_string(); MAX_EMBED_INPUTS + 1];
        let e = EmbedRequest::new(id, many, &l).unwrap_err();
        assert_eq!(e, EmbedInputError::TooMany { n: 257, max: 256 });
        assert_eq!(e.kind(), "too_many_inputs");
        let long = "y".repeat(l.max_prompt_bytes + 1);
        let e = EmbedRequest::new(id, vec!["a".into(), long], &l).unwrap_err();
        assert_eq!(e.to_string(), "input[1] is 65537 bytes; the limit is 65536");
        // Each input within its own bound, too many bytes together.
        let full = "z".repeat(l.max_prompt_bytes);
        let e = EmbedRequest::new(id, vec![full; 9], &l).unwrap_err();
        assert_eq!(e, EmbedInputError::TooLarge { total: 9 * 65536, max: MAX_EMBED_BYTES });
        let full = "z".repeat(l.max_prompt_bytes);
        assert!(EmbedRequest::new(id, vec![full; 8], &l).is_ok(), "exactly the limit");
    }

    #[test]
    fn base64_roundtrips_exactly_and_matches_openai_layout() {
        let v = [1.0f32, -0.5, 0.1, f32::MIN_POSITIVE, 3.4e38];
        let s = encode_f32le(&v);
        assert_eq!(decode_f32le(&s, 5).unwrap(), v);
        // 1.0f32 is 00 00 80 3f little-endian.
        assert_eq!(encode_f32le(&[1.0]), "AACAPw==");
        assert_eq!(decode_f32le(&s, 4), Err(VectorDecodeError::TooLong { max: 4 }));
        assert!(matches!(decode_f32le("AACA", 8), Err(VectorDecodeError::Malformed(_))));
        assert!(matches!(decode_f32le("not base64!", 8), Err(VectorDecodeError::Malformed(_))));
        // Refused by length alone: a megabyte of text is never decoded for a 4-value bound.
        let huge = "A".repeat(1 << 20);
        assert_eq!(decode_f32le(&huge, 4), Err(VectorDecodeError::TooLong { max: 4 }));
        assert_eq!(decode_f32le("", 4).unwrap(), Vec::<f32>::new());
    }

    #[test]
    fn replies_are_held_to_the_promise() {
        let e =
            |vectors: Vec<Vec<f32>>| Embeddings { model: "m".into(), vectors, prompt_tokens: 3 };
        let ok = e(vec![vec![3.0, 4.0], vec![0.0, 2.0]]).checked(2).unwrap();
        assert_eq!(ok.vectors, vec![vec![0.6, 0.8], vec![0.0, 1.0]]);
        // Unit vectors come back bit for bit, whatever the rounding of their length.
        let mut unit = vec![0.1f32, 0.2, 0.3, 0.4, 0.5];
        l2_normalize(&mut unit);
        let nudged: Vec<f32> = unit.iter().map(|x| f32::from_bits(x.to_bits() + 1)).collect();
        assert_eq!(e(vec![nudged.clone()]).checked(1).unwrap().vectors[0], nudged);
        assert_eq!(ok.width(), 2);
        let bad = [
            (e(vec![vec![1.0]]), 2, "1 vectors for 2 inputs"),
            (e(vec![vec![1.0], vec![1.0, 2.0]]), 2, "vector 1 has width 2"),
            (e(vec![vec![]]), 1, "width 0"),
            (e(vec![vec![0.0, 0.0]]), 1, "vector 0 is zero"),
            (e(vec![vec![f32::NAN, 1.0]]), 1, "not finite"),
            (e(vec![vec![f32::INFINITY]]), 1, "not finite"),
            (e(vec![vec![1.0; MAX_EMBED_DIM + 1]]), 1, "width 16385"),
        ];
        for (reply, n, why) in bad {
            let msg = reply.checked(n).unwrap_err();
            assert!(msg.contains(why), "{msg} should say {why}");
        }
        let mut long_name = e(vec![vec![1.0]]);
        long_name.model = "m".repeat(MAX_EMBED_MODEL_BYTES + 1);
        assert!(long_name.checked(1).unwrap_err().contains("model name"));
    }

    #[test]
    fn normalising_keeps_direction_and_refuses_no_direction() {
        let mut v = vec![1e-30f32, 1e-30];
        assert!(l2_normalize(&mut v));
        assert!((v[0] - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6, "{v:?}");
        let mut big = vec![3e38f32, 3e38];
        assert!(l2_normalize(&mut big), "no overflow: summed in f64");
        let mut zero = vec![0.0f32; 3];
        assert!(!l2_normalize(&mut zero));
        assert_eq!(zero, vec![0.0; 3]);
    }
}

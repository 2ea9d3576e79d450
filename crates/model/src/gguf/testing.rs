//! Builds small GGUF files for tests of this reader and of everything that loads models.

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
pub fn gguf_with(arch: &str, meta: &[(&str, Meta<'_>)], tensors: &[(&str, u32, u64)]) -> Vec<u8> {
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
        let bytes =
            super::types::tensor_bytes(ty, elements).expect("a tensor type the reader sizes");
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

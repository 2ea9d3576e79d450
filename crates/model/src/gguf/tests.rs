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
    // The attention heads (8 of 256) are wider than the embedding (none given): 4 of them, f32.
    assert_eq!(sizes.activation_bytes_per_token, 4 * 4 * 8 * 256);

    let f = write(&layered(&[
        ("llama.feed_forward_length", U32(1536)),
        ("llama.embedding_length", U32(576)),
        ("llama.attention.head_count", U32(9)),
    ]));
    assert_eq!(layer_sizes(f.path()).unwrap().activation_bytes_per_token, 4 * (3 * 1536 + 4 * 576));

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
             tensor data {} bytes, file {} bytes, KV {} bytes per token per layer, activations {} \
             bytes per token",
            sizes.layers.len(),
            sizes.layers,
            sizes.other,
            sum,
            data,
            header.size,
            sizes.kv_bytes_per_token_per_layer,
            sizes.activation_bytes_per_token
        );
        assert_eq!(sizes.layers.len(), n_layer, "{file}");
        assert!(sizes.layers.iter().all(|&b| b > 0), "{file}: {:?}", sizes.layers);
        assert!(sum <= data && data - sum <= data / 100, "{file}: {sum} of {data}");
        assert!(sizes.kv_bytes_per_token_per_layer > 0, "{file}");
        assert!(sizes.activation_bytes_per_token > 0, "{file}");
    }
}

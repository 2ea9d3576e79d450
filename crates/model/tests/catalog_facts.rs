//! The catalog's descriptive facts (architecture, quantization, size), which the gateway shows
//! to Ollama clients without opening a file, agree with the files themselves.

use std::path::PathBuf;

use nova_model::{catalog::CATALOG, gguf};

fn models_dir() -> Option<PathBuf> {
    std::env::var_os("NOVA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share/nova")))
        .map(|home| home.join("models"))
}

#[test]
fn catalog_facts_match_the_gguf_headers() {
    let dir = models_dir().expect("HOME or NOVA_HOME");
    for m in CATALOG {
        let path = dir.join(m.file_name);
        if !path.exists() {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set and {} is missing",
                path.display()
            );
            eprintln!("\n!!!!! SKIPPED {}: {} is not pulled !!!!!\n", m.name, path.display());
            continue;
        }
        let info = gguf::inspect(&path).expect("a catalog model's header reads");
        assert_eq!(info.architecture, m.family, "{}", m.name);
        assert_eq!(info.quantization, m.quantization, "{}", m.name);
        assert_eq!(info.file_size, m.size, "{}", m.name);
        let digits: String = m.parameter_size.chars().filter(char::is_ascii_digit).collect();
        let millions = info.parameters as f64 / 1e6;
        let stated: f64 = digits.parse().expect("a number of millions");
        assert!(
            m.parameter_size.ends_with('M') && (millions - stated).abs() / stated < 0.1,
            "{}: {} parameters stated, {millions:.1}M in the file",
            m.name,
            m.parameter_size
        );
    }
}

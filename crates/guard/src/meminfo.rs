//! Free and total memory from `/proc/meminfo`.

use std::path::Path;

use crate::{fsread::read_text, SensorError};

/// `/proc/meminfo` is about 1.5 KiB; anything past this is not needed.
const LIMIT: u64 = 64 * 1024;

/// Memory in MiB.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Memory {
    pub(crate) free_mb: Option<u64>,
    pub(crate) total_mb: Option<u64>,
}

/// Reads `<proc_root>/meminfo`.
pub(crate) fn read(proc_root: &Path, errors: &mut Vec<SensorError>) -> Memory {
    match read_text(&proc_root.join("meminfo"), LIMIT) {
        Ok(Some(text)) => parse(&text),
        Ok(None) => Memory::default(),
        Err(e) => {
            errors.push(e);
            Memory::default()
        }
    }
}

fn parse(text: &str) -> Memory {
    let field = |name: &str| {
        text.lines().find_map(|line| {
            let rest = line.strip_prefix(name)?.strip_prefix(':')?;
            let kib = rest.trim().strip_suffix("kB")?.trim().parse::<u64>().ok()?;
            Some(kib / 1024)
        })
    };
    // MemAvailable (Linux 3.14+) estimates what can be allocated without swapping; older kernels
    // lack it, and free + page cache is the usual stand-in.
    let free_mb = field("MemAvailable").or_else(|| Some(field("MemFree")? + field("Cached")?));
    Memory { free_mb, total_mb: field("MemTotal") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_available_and_falls_back_on_old_kernels() {
        let m =
            parse("MemTotal:       16318412 kB\nMemFree:  1000 kB\nMemAvailable:    8159206 kB\n");
        assert_eq!(m, Memory { free_mb: Some(7967), total_mb: Some(15935) });
        let old = parse("MemTotal: 2048000 kB\nMemFree: 102400 kB\nCached: 204800 kB\n");
        assert_eq!(old, Memory { free_mb: Some(300), total_mb: Some(2000) });
        assert_eq!(parse("garbage\0\nMemTotal: lots kB"), Memory::default());
    }
}

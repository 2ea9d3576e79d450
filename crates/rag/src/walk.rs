//! Finding the indexable files under a root, without following symbolic links, within the walk
//! bounds.

use std::{
    fs::{self, Metadata},
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

use crate::{Limits, SkipReason};

/// What identifies a version of a file without reading it: when any of these change, it is read
/// again. ctime is in it so that a `chmod` that makes an unreadable file readable is noticed,
/// though its mtime does not move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    pub(crate) size: u64,
    pub(crate) mtime: i64,
    pub(crate) ctime: i64,
}

impl Stamp {
    pub(crate) fn of(m: &Metadata) -> Self {
        let ns = |s: i64, n: i64| s.saturating_mul(1_000_000_000).saturating_add(n);
        Self {
            size: m.len(),
            mtime: ns(m.mtime(), m.mtime_nsec()),
            ctime: ns(m.ctime(), m.ctime_nsec()),
        }
    }
}

/// How a file's text is cut into sections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Text,
    Markdown,
    Html,
}

impl Kind {
    /// The kind of a file by its extension (any case), or `None` for a file that is not read.
    pub(crate) fn of(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "txt" | "text" => Some(Self::Text),
            "md" | "markdown" => Some(Self::Markdown),
            "html" | "htm" => Some(Self::Html),
            _ => None,
        }
    }
}

/// An indexable file the walk found.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    /// Its path below the root.
    pub(crate) rel: PathBuf,
    pub(crate) kind: Kind,
    pub(crate) stamp: Stamp,
    /// Device and inode, so that the file opened later is known to be this one.
    pub(crate) dev: u64,
    pub(crate) ino: u64,
}

/// Everything one walk of a root found.
#[derive(Debug, Default)]
pub(crate) struct Walk {
    /// Indexable files, in walk order (names sorted, a directory's files before its
    /// subdirectories), so the same files are kept when a bound cuts the walk short.
    pub(crate) files: Vec<Found>,
    /// Directories not walked, and why.
    pub(crate) skipped: Vec<(PathBuf, Stamp, SkipReason)>,
    /// Bounds that cut the walk short, said in words.
    pub(crate) limits: Vec<String>,
}

/// Walks `root` (a directory) within `limits`. Symbolic links are neither followed nor
/// reported: a link is a pointer elsewhere, and elsewhere is not opted in. Hidden entries (a
/// name starting with `.`) are skipped. Other entry types (sockets, FIFOs, devices) are
/// ignored, so the index never opens anything that could block.
pub(crate) fn walk(root: &Path, limits: &Limits) -> Walk {
    let mut out = Walk::default();
    let mut entries = 0usize;
    // (relative dir, depth of its entries)
    let mut stack: Vec<(PathBuf, usize)> = vec![(PathBuf::new(), 1)];
    while let Some((dir, depth)) = stack.pop() {
        let listing = match fs::read_dir(root.join(&dir)) {
            Ok(l) => l,
            Err(e) => {
                // The root itself failing is the caller's business (it checked it exists);
                // a subdirectory that cannot be listed is reported like an unreadable file.
                if !dir.as_os_str().is_empty() {
                    if let Ok(m) = fs::symlink_metadata(root.join(&dir)) {
                        out.skipped.push((
                            dir,
                            Stamp::of(&m),
                            SkipReason::Unreadable(e.to_string()),
                        ));
                    }
                }
                continue;
            }
        };
        let mut names: Vec<(std::ffi::OsString, fs::FileType)> = Vec::new();
        for entry in listing {
            let Ok(entry) = entry else { continue };
            entries += 1;
            if entries > limits.max_walk_entries {
                out.limits.push(format!(
                    "more than {} entries; the walk stopped there",
                    limits.max_walk_entries
                ));
                return out;
            }
            let name = entry.file_name();
            if name.as_encoded_bytes().first() == Some(&b'.') {
                continue;
            }
            // DirEntry::file_type does not follow links: a link reports as a link.
            if let Ok(t) = entry.file_type() {
                names.push((name, t));
            }
        }
        names.sort_by(|a, b| a.0.cmp(&b.0));
        let mut subdirs = Vec::new();
        for (name, t) in names {
            let rel = dir.join(&name);
            if t.is_dir() {
                subdirs.push(rel);
            } else if t.is_file() {
                let Some(kind) = Kind::of(&rel) else { continue };
                let Ok(m) = fs::symlink_metadata(root.join(&rel)) else { continue };
                if !m.is_file() {
                    continue;
                }
                if out.files.len() == limits.max_files_per_root {
                    out.limits.push(format!(
                        "more than {} files; the rest are not indexed",
                        limits.max_files_per_root
                    ));
                    return out;
                }
                out.files.push(Found {
                    rel,
                    kind,
                    stamp: Stamp::of(&m),
                    dev: m.dev(),
                    ino: m.ino(),
                });
            }
        }
        // Reversed onto the stack, so subdirectories are walked in name order.
        for sub in subdirs.into_iter().rev() {
            if depth >= limits.max_depth {
                if let Ok(m) = fs::symlink_metadata(root.join(&sub)) {
                    out.skipped.push((sub, Stamp::of(&m), SkipReason::TooDeep));
                }
            } else {
                stack.push((sub, depth + 1));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rels(w: &Walk) -> Vec<String> {
        w.files.iter().map(|f| f.rel.display().to_string()).collect()
    }

    #[test]
    fn finds_documents_in_name_order_and_nothing_else() -> std::io::Result<()> {
        let d = tempfile::tempdir()?;
        let r = d.path();
        fs::create_dir_all(r.join("b/c"))?;
        fs::create_dir_all(r.join(".git"))?;
        for f in ["z.md", "a.TXT", "b/x.html", "b/c/y.htm", "b/c/n.markdown", "p.pdf", "i.png"] {
            fs::write(r.join(f), "x")?;
        }
        fs::write(r.join(".git/HEAD.txt"), "x")?;
        fs::write(r.join(".hidden.md"), "x")?;
        let w = walk(r, &Limits::default());
        assert_eq!(rels(&w), ["a.TXT", "z.md", "b/x.html", "b/c/n.markdown", "b/c/y.htm"]);
        assert!(w.skipped.is_empty() && w.limits.is_empty());
        Ok(())
    }

    #[test]
    fn never_follows_symlinks() -> std::io::Result<()> {
        let outside = tempfile::tempdir()?;
        fs::write(outside.path().join("secret.txt"), "secret")?;
        let d = tempfile::tempdir()?;
        std::os::unix::fs::symlink(outside.path().join("secret.txt"), d.path().join("s.txt"))?;
        std::os::unix::fs::symlink(outside.path(), d.path().join("dir"))?;
        let w = walk(d.path(), &Limits::default());
        assert!(w.files.is_empty(), "{:?}", rels(&w));
        Ok(())
    }

    #[test]
    fn depth_files_and_entries_are_bounded() -> std::io::Result<()> {
        let d = tempfile::tempdir()?;
        let deep = d.path().join("1/2/3");
        fs::create_dir_all(&deep)?;
        fs::write(d.path().join("1/a.txt"), "x")?;
        fs::write(deep.join("b.txt"), "x")?;
        let w = walk(d.path(), &Limits { max_depth: 2, ..Limits::default() });
        assert_eq!(rels(&w), ["1/a.txt"]);
        assert_eq!(w.skipped.len(), 1);
        assert_eq!(w.skipped[0].0, Path::new("1/2"));
        assert_eq!(w.skipped[0].2, SkipReason::TooDeep);

        for i in 0..5 {
            fs::write(d.path().join(format!("f{i}.txt")), "x")?;
        }
        let w = walk(d.path(), &Limits { max_files_per_root: 3, ..Limits::default() });
        assert_eq!(rels(&w), ["f0.txt", "f1.txt", "f2.txt"]);
        assert_eq!(w.limits.len(), 1);
        let w = walk(d.path(), &Limits { max_walk_entries: 4, ..Limits::default() });
        assert!(w.files.len() < 4 && w.limits[0].contains("entries"), "{:?}", w.limits);
        Ok(())
    }
}

//! The data dir's model cache: catalog models pulled into `models/`, and a small registry
//! (`models/registry.json`) of GGUF files added by path.

use std::{
    fs, io,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use crate::{
    catalog::{self, CatalogModel},
    gguf::{self, GgufError},
};

/// Where a model entry comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelOrigin {
    /// The built-in catalog.
    Catalog,
    /// Registered with `nova model add`.
    Added,
    /// A path given directly.
    Path,
}

/// A model the node can run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelEntry {
    /// Its name in the swarm.
    pub name: String,
    /// The GGUF file.
    pub path: PathBuf,
    /// Where it comes from.
    pub origin: ModelOrigin,
    /// Whether the file exists.
    pub present: bool,
    /// The catalog entry, for catalog models.
    #[serde(skip)]
    pub catalog: Option<&'static CatalogModel>,
}

/// Why a model could not be resolved or registered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// No such model.
    #[error("unknown model {name:?}: known models are {known}; or give a path to a .gguf file")]
    Unknown {
        /// The name asked for.
        name: String,
        /// The names known, comma-separated.
        known: String,
    },
    /// A catalog model that has not been pulled.
    #[error("model {name} is not in the cache ({path}); run `nova model pull {name}`")]
    NotPulled {
        /// The model.
        name: String,
        /// Where it would be.
        path: String,
    },
    /// A registered file that has gone.
    #[error("model {name} was added from {path}, which no longer exists")]
    Missing {
        /// The model.
        name: String,
        /// Its registered path.
        path: String,
    },
    /// A path that names no file.
    #[error("file not found: {0}")]
    FileNotFound(String),
    /// A path that names something other than a file.
    #[error("not a file: {0} (give a .gguf file)")]
    NotAFile(String),
    /// The name is taken.
    #[error("the name {0:?} belongs to a catalog model; choose another with --name")]
    NameTaken(String),
    /// The name is already registered.
    #[error("a model named {name:?} was already added (from {path}); pass --force to replace it, or choose another --name")]
    AlreadyAdded {
        /// The name.
        name: String,
        /// The path it is registered with.
        path: String,
    },
    /// Neither a catalog name nor an added one.
    #[error("no model is named {name:?}: known names are {known}")]
    NoSuchName {
        /// The name asked for.
        name: String,
        /// The names known, comma-separated.
        known: String,
    },
    /// A model file that could not be removed.
    #[error("cannot remove {path}: {detail}")]
    Remove {
        /// The file.
        path: String,
        /// Why.
        detail: String,
    },
    /// The file is not a valid GGUF model.
    #[error("{path} is not a usable model: {source}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong with it.
        source: GgufError,
    },
    /// The registry could not be read or written.
    #[error("model registry {path}: {detail}")]
    Registry {
        /// The registry file.
        path: String,
        /// What went wrong.
        detail: String,
    },
}

/// What [`Cache::remove`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    /// A catalog model's file was deleted.
    File {
        /// The file.
        path: PathBuf,
        /// Bytes the disk got back: none while other hard links still hold the data.
        freed: u64,
        /// Whether other hard links still hold the data.
        still_linked: bool,
    },
    /// The cache held a symbolic link for the model; the link is gone, the file it pointed to
    /// is untouched.
    Link {
        /// The link.
        path: PathBuf,
        /// Where it pointed.
        target: PathBuf,
    },
    /// The catalog model was not in the cache; nothing changed.
    NotPulled {
        /// Where it would be.
        path: PathBuf,
    },
    /// An added model left the registry. Its file was never copied into the cache, so it is
    /// the user's own and stays where it is.
    Unregistered {
        /// The file it was added from.
        path: PathBuf,
    },
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Registry {
    models: Vec<Registered>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Registered {
    name: String,
    path: PathBuf,
}

/// The model cache under a data dir.
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    /// The cache of the data dir `data_dir` (its `models/` folder; nothing is created yet).
    pub fn new(data_dir: &Path) -> Self {
        Self { dir: data_dir.join("models") }
    }

    /// The folder holding model files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn registry_path(&self) -> PathBuf {
        self.dir.join("registry.json")
    }

    fn registry(&self) -> Result<Registry, CacheError> {
        let path = self.registry_path();
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| CacheError::Registry {
                path: path.display().to_string(),
                detail: format!("unreadable ({e}); fix or delete it"),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Registry::default()),
            Err(e) => Err(CacheError::Registry {
                path: path.display().to_string(),
                detail: e.to_string(),
            }),
        }
    }

    fn catalog_entry(&self, m: &'static CatalogModel) -> ModelEntry {
        let path = self.dir.join(m.file_name);
        ModelEntry {
            name: m.name.into(),
            present: path.is_file(),
            path,
            origin: ModelOrigin::Catalog,
            catalog: Some(m),
        }
    }

    /// Every known model: the catalog's (pulled or not) and the registered ones.
    pub fn list(&self) -> Result<Vec<ModelEntry>, CacheError> {
        let mut out: Vec<ModelEntry> =
            catalog::CATALOG.iter().map(|m| self.catalog_entry(m)).collect();
        for r in self.registry()?.models {
            out.push(ModelEntry {
                present: r.path.is_file(),
                name: r.name,
                path: r.path,
                origin: ModelOrigin::Added,
                catalog: None,
            });
        }
        Ok(out)
    }

    /// Finds a model by catalog name, registered name or path. A catalog model must be pulled.
    pub fn resolve(&self, name_or_path: &str) -> Result<ModelEntry, CacheError> {
        if let Some(m) = catalog::find(name_or_path) {
            let e = self.catalog_entry(m);
            if !e.present {
                return Err(CacheError::NotPulled {
                    name: e.name,
                    path: e.path.display().to_string(),
                });
            }
            return Ok(e);
        }
        let registry = self.registry()?;
        if let Some(r) = registry.models.iter().find(|r| r.name == name_or_path) {
            if !r.path.is_file() {
                return Err(CacheError::Missing {
                    name: r.name.clone(),
                    path: r.path.display().to_string(),
                });
            }
            return Ok(ModelEntry {
                name: r.name.clone(),
                path: r.path.clone(),
                origin: ModelOrigin::Added,
                present: true,
                catalog: None,
            });
        }
        let path = Path::new(name_or_path);
        if path.is_file() {
            let name =
                path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            return Ok(ModelEntry {
                name,
                path: path.to_path_buf(),
                origin: ModelOrigin::Path,
                present: true,
                catalog: None,
            });
        }
        // Names never hold a slash or end in .gguf, so this was meant as a file: "unknown
        // model" would send the user looking in the wrong place.
        if looks_like_path(name_or_path) {
            return Err(if path.exists() {
                CacheError::NotAFile(name_or_path.into())
            } else {
                CacheError::FileNotFound(name_or_path.into())
            });
        }
        let mut known: Vec<String> = catalog::names().into_iter().map(String::from).collect();
        known.extend(registry.models.into_iter().map(|r| r.name));
        Err(CacheError::Unknown { name: name_or_path.into(), known: known.join(", ") })
    }

    /// Checks that `path` is a GGUF model and registers it under `name` (default: the file
    /// stem). A name already added is refused unless `replace`. The registry is rewritten
    /// atomically.
    pub fn add(
        &self,
        path: &Path,
        name: Option<&str>,
        replace: bool,
    ) -> Result<(ModelEntry, gguf::GgufInfo), CacheError> {
        let info = gguf::inspect(path)
            .map_err(|source| CacheError::Invalid { path: path.display().to_string(), source })?;
        let path = fs::canonicalize(path).map_err(|e| CacheError::Invalid {
            path: path.display().to_string(),
            source: GgufError::Io { path: path.display().to_string(), source: e },
        })?;
        let name = match name {
            Some(n) => n.to_string(),
            None => path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(),
        };
        if catalog::find(&name).is_some() {
            return Err(CacheError::NameTaken(name));
        }
        let mut registry = self.registry()?;
        if let Some(old) = registry.models.iter().find(|r| r.name == name) {
            if !replace {
                return Err(CacheError::AlreadyAdded {
                    name,
                    path: old.path.display().to_string(),
                });
            }
        }
        registry.models.retain(|r| r.name != name);
        registry.models.push(Registered { name: name.clone(), path: path.clone() });
        self.write_registry(&registry)?;
        Ok((
            ModelEntry { name, path, origin: ModelOrigin::Added, present: true, catalog: None },
            info,
        ))
    }

    /// Removes the model called `name`: a catalog model's file (or the symbolic link standing
    /// for it) in the cache folder, or an added model's registry entry. Nothing outside the
    /// cache folder is ever deleted.
    pub fn remove(&self, name: &str) -> Result<Removal, CacheError> {
        if let Some(m) = catalog::find(name) {
            return self.remove_file(m);
        }
        let mut registry = self.registry()?;
        let Some(i) = registry.models.iter().position(|r| r.name == name) else {
            let mut known: Vec<String> = catalog::names().into_iter().map(String::from).collect();
            known.extend(registry.models.into_iter().map(|r| r.name));
            return Err(CacheError::NoSuchName { name: name.into(), known: known.join(", ") });
        };
        let gone = registry.models.remove(i);
        self.write_registry(&registry)?;
        Ok(Removal::Unregistered { path: gone.path })
    }

    fn remove_file(&self, m: &CatalogModel) -> Result<Removal, CacheError> {
        let path = self.dir.join(m.file_name);
        let err = |detail: String| CacheError::Remove { path: path.display().to_string(), detail };
        // The catalog is ours, but a file name that could climb out of the folder must never
        // turn into a delete elsewhere.
        if Path::new(m.file_name).file_name() != Some(std::ffi::OsStr::new(m.file_name)) {
            return Err(err("the catalog's file name is not a plain name".into()));
        }
        // Not followed: a link is removed as a link, whatever it points to.
        let meta = match fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(Removal::NotPulled { path });
            }
            Err(e) => return Err(err(e.to_string())),
        };
        let removal = if meta.file_type().is_symlink() {
            let target = fs::read_link(&path).map_err(|e| err(e.to_string()))?;
            Removal::Link { path: path.clone(), target }
        } else if meta.is_file() {
            let still_linked = has_other_links(&meta);
            let freed = if still_linked { 0 } else { meta.len() };
            Removal::File { path: path.clone(), freed, still_linked }
        } else {
            return Err(err("it is not a file; left in place".into()));
        };
        fs::remove_file(&path).map_err(|e| err(e.to_string()))?;
        Ok(removal)
    }

    fn write_registry(&self, registry: &Registry) -> Result<(), CacheError> {
        let path = self.registry_path();
        let err = |e: io::Error| CacheError::Registry {
            path: path.display().to_string(),
            detail: e.to_string(),
        };
        fs::create_dir_all(&self.dir).map_err(err)?;
        let bytes = serde_json::to_vec_pretty(registry).map_err(|e| err(io::Error::other(e)))?;
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir).map_err(err)?;
        io::Write::write_all(&mut tmp, &bytes).map_err(err)?;
        tmp.as_file().sync_all().map_err(err)?;
        tmp.persist(&path).map_err(|e| err(e.error))?;
        Ok(())
    }
}

/// Whether `s` can only be meant as a file: model names hold no slash and no .gguf suffix.
fn looks_like_path(s: &str) -> bool {
    s.contains('/') || s.contains(std::path::MAIN_SEPARATOR) || s.to_lowercase().ends_with(".gguf")
}

/// Whether a file's data outlives unlinking it, held by another hard link.
#[cfg(unix)]
fn has_other_links(meta: &fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    meta.nlink() > 1
}

#[cfg(not(unix))]
fn has_other_links(_: &fs::Metadata) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::testing::tiny_gguf;

    #[test]
    fn resolves_catalog_registered_and_path_models() {
        let home = tempfile::tempdir().unwrap();
        let cache = Cache::new(home.path());
        let err = cache.resolve("smollm2-135m").unwrap_err();
        assert!(err.to_string().contains("nova model pull smollm2-135m"), "{err}");
        let err = cache.resolve("nope").unwrap_err();
        assert!(err.to_string().contains("gemma3-270m"), "{err}");

        let file = home.path().join("tiny.gguf");
        fs::write(&file, tiny_gguf("llama", 8)).unwrap();
        let (entry, info) = cache.add(&file, Some("tiny"), false).unwrap();
        assert_eq!((entry.name.as_str(), info.architecture.as_str()), ("tiny", "llama"));
        assert_eq!(cache.resolve("tiny").unwrap().path, fs::canonicalize(&file).unwrap());
        assert_eq!(cache.resolve(file.to_str().unwrap()).unwrap().origin, ModelOrigin::Path);
        assert!(cache.list().unwrap().iter().any(|e| e.name == "tiny"));
    }

    #[test]
    fn add_refuses_bad_files_and_catalog_names() {
        let home = tempfile::tempdir().unwrap();
        let cache = Cache::new(home.path());
        let file = home.path().join("bad.gguf");
        fs::write(&file, b"not a model").unwrap();
        assert!(matches!(cache.add(&file, None, false), Err(CacheError::Invalid { .. })));
        fs::write(&file, tiny_gguf("llama", 8)).unwrap();
        assert!(matches!(
            cache.add(&file, Some("smollm2-135m"), true),
            Err(CacheError::NameTaken(_))
        ));
        assert!(!cache.registry_path().exists(), "a refused add writes nothing");
    }

    #[test]
    fn a_missing_path_is_file_not_found_and_a_bare_name_is_unknown() {
        let home = tempfile::tempdir().unwrap();
        let cache = Cache::new(home.path());
        for p in ["/missing.gguf", "models/x", "x.GGUF"] {
            let err = cache.resolve(p).unwrap_err();
            assert_eq!(err.to_string(), format!("file not found: {p}"));
        }
        let dir = home.path().to_str().unwrap();
        assert!(matches!(cache.resolve(dir), Err(CacheError::NotAFile(_))));
        assert!(matches!(cache.resolve("llama-9000"), Err(CacheError::Unknown { .. })));
    }

    #[test]
    fn re_adding_a_name_needs_replace() {
        let home = tempfile::tempdir().unwrap();
        let cache = Cache::new(home.path());
        let (a, b) = (home.path().join("a.gguf"), home.path().join("b.gguf"));
        fs::write(&a, tiny_gguf("llama", 8)).unwrap();
        fs::write(&b, tiny_gguf("gemma3", 8)).unwrap();
        cache.add(&a, Some("m"), false).unwrap();
        let err = cache.add(&b, Some("m"), false).unwrap_err();
        assert!(matches!(err, CacheError::AlreadyAdded { .. }), "{err}");
        assert!(err.to_string().contains("--force"), "{err}");
        assert_eq!(cache.resolve("m").unwrap().path, fs::canonicalize(&a).unwrap());
        cache.add(&b, Some("m"), true).unwrap();
        assert_eq!(cache.resolve("m").unwrap().path, fs::canonicalize(&b).unwrap());
        assert_eq!(cache.list().unwrap().iter().filter(|e| e.name == "m").count(), 1);
    }

    #[test]
    fn remove_deletes_a_catalog_file_unlinks_a_link_and_keeps_added_files() {
        let home = tempfile::tempdir().unwrap();
        let cache = Cache::new(home.path());
        let smol = catalog::find("smollm2-135m").unwrap();
        let gemma = catalog::find("gemma3-270m").unwrap();
        fs::create_dir_all(cache.dir()).unwrap();
        let file = cache.dir().join(smol.file_name);
        fs::write(&file, vec![7u8; 5000]).unwrap();
        assert_eq!(
            cache.remove("smollm2-135m").unwrap(),
            Removal::File { path: file.clone(), freed: 5000, still_linked: false }
        );
        assert!(!file.exists());
        assert_eq!(cache.remove("smollm2-135m").unwrap(), Removal::NotPulled { path: file });

        // A link in the cache goes; what it points to stays.
        let elsewhere = tempfile::tempdir().unwrap();
        let target = elsewhere.path().join("real.gguf");
        fs::write(&target, b"keep me").unwrap();
        let link = cache.dir().join(gemma.file_name);
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let r = cache.remove("gemma3-270m").unwrap();
        assert_eq!(r, Removal::Link { path: link.clone(), target: target.clone() });
        assert!(fs::symlink_metadata(&link).is_err());
        assert_eq!(fs::read(&target).unwrap(), b"keep me");

        // An added model leaves the registry; its file is the user's.
        let mine = elsewhere.path().join("mine.gguf");
        fs::write(&mine, tiny_gguf("llama", 8)).unwrap();
        cache.add(&mine, Some("mine"), false).unwrap();
        let r = cache.remove("mine").unwrap();
        assert_eq!(r, Removal::Unregistered { path: fs::canonicalize(&mine).unwrap() });
        assert!(mine.is_file());
        assert!(matches!(cache.resolve("mine"), Err(CacheError::Unknown { .. })));

        let err = cache.remove("../../etc/passwd").unwrap_err();
        assert!(matches!(err, CacheError::NoSuchName { .. }), "{err}");
        assert!(err.to_string().contains("smollm2-135m, gemma3-270m"), "{err}");
    }

    #[test]
    fn removing_one_of_two_hard_links_frees_nothing() {
        let home = tempfile::tempdir().unwrap();
        let cache = Cache::new(home.path());
        let smol = catalog::find("smollm2-135m").unwrap();
        fs::create_dir_all(cache.dir()).unwrap();
        let file = cache.dir().join(smol.file_name);
        fs::write(&file, vec![7u8; 5000]).unwrap();
        let other = home.path().join("other");
        fs::hard_link(&file, &other).unwrap();
        assert_eq!(
            cache.remove("smollm2-135m").unwrap(),
            Removal::File { path: file, freed: 0, still_linked: true }
        );
        assert_eq!(fs::metadata(&other).unwrap().len(), 5000);
    }
}

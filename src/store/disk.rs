//! The disk store: every policy file under one directory.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::time::UNIX_EPOCH;

use super::{classify, FileRole, Snapshot, StoreError, StoreFile, SCHEMA_FOLDER};

/// Reads every policy and schema file under `root`.
pub fn load(root: &Path) -> Result<Snapshot, StoreError> {
    if !root.is_dir() {
        return Err(StoreError::MissingDirectory {
            path: root.to_path_buf(),
        });
    }
    let mut names = Vec::new();
    walk(root, root, &mut names)?;
    names.sort();
    let mut snapshot = Snapshot::default();
    let mut hasher = DefaultHasher::new();
    for name in names {
        let role = classify(&name);
        if !matches!(role, FileRole::Policy | FileRole::Schema) {
            continue;
        }
        let path = root.join(&name);
        let io = |source| StoreError::Io {
            path: path.clone(),
            source,
        };
        let bytes = std::fs::read(&path).map_err(io)?;
        let metadata = std::fs::metadata(&path).map_err(io)?;
        name.hash(&mut hasher);
        metadata.len().hash(&mut hasher);
        if let Ok(modified) = metadata.modified() {
            modified
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos()
                .hash(&mut hasher);
        }
        if role == FileRole::Schema {
            let relative = name
                .strip_prefix(SCHEMA_FOLDER)
                .unwrap_or(&name)
                .trim_start_matches('/')
                .to_string();
            snapshot.schemas.push(StoreFile {
                name: relative,
                bytes,
            });
        } else {
            snapshot.policies.push(StoreFile { name, bytes });
        }
    }
    snapshot.revision = format!("{:016x}", hasher.finish());
    Ok(snapshot)
}

/// Lists the `*_test.yaml` suites under `root`, for `bootstrap compile`.
pub fn load_test_suites(root: &Path) -> Result<Vec<StoreFile>, StoreError> {
    let mut names = Vec::new();
    walk(root, root, &mut names)?;
    names.sort();
    names
        .into_iter()
        .filter(|name| classify(name) == FileRole::TestSuite)
        .map(|name| {
            let path = root.join(&name);
            std::fs::read(&path)
                .map(|bytes| StoreFile { name, bytes })
                .map_err(|source| StoreError::Io { path, source })
        })
        .collect()
}

fn walk(root: &Path, dir: &Path, names: &mut Vec<String>) -> Result<(), StoreError> {
    let entries = std::fs::read_dir(dir).map_err(|source| StoreError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| StoreError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = entry.path();
        let file_name = entry.file_name();
        // Hidden folders are skipped without descending into them (e.g. .git).
        if file_name.to_string_lossy().starts_with('.') {
            continue;
        }
        let file_type = entry.file_type().map_err(|source| StoreError::Io {
            path: path.clone(),
            source,
        })?;
        let is_dir = file_type.is_dir() || (file_type.is_symlink() && path.is_dir());
        if is_dir {
            walk(root, &path, names)?;
        } else {
            let relative = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_str()
                .ok_or_else(|| StoreError::NonUtf8Path { path: path.clone() })?
                .replace(std::path::MAIN_SEPARATOR, "/");
            names.push(relative);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("verdict-disk-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn reads_policies_and_schemas_and_skips_the_rest() {
        let dir = scratch("skip");
        for (name, body) in [
            ("a.yaml", "a"),
            ("nested/b.yml", "b"),
            ("nested/testdata/c.yaml", "c"),
            (".hidden/d.yaml", "d"),
            ("tests/e_test.yaml", "e"),
            ("_schemas/p.json", "{}"),
            ("notes.txt", "n"),
        ] {
            let path = dir.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, body).unwrap();
        }
        let snapshot = load(&dir).unwrap();
        let names: Vec<_> = snapshot.policies.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["a.yaml", "nested/b.yml"]);
        assert_eq!(snapshot.schemas[0].name, "p.json");
        let suites = load_test_suites(&dir).unwrap();
        assert_eq!(suites[0].name, "tests/e_test.yaml");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn revision_changes_when_a_file_changes() {
        let dir = scratch("rev");
        std::fs::write(dir.join("a.yaml"), "one").unwrap();
        let first = load(&dir).unwrap().revision;
        std::fs::write(dir.join("a.yaml"), "three").unwrap();
        let second = load(&dir).unwrap().revision;
        assert_ne!(first, second);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn missing_directory_is_named() {
        let err = load(Path::new("/definitely/not/here")).unwrap_err();
        assert!(err.to_string().contains("/definitely/not/here"));
    }
}

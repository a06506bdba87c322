//! Where policy files come from: a local directory or an S3 prefix.
//!
//! A store hands back file names and bytes plus a revision token; it knows
//! nothing of YAML. Which files count follows Cerbos: hidden files and
//! folders, `testdata/` folders, `*_test.{yaml,yml,json}` suites and files of
//! other extensions are skipped, and everything under `_schemas/` is a JSON
//! Schema rather than a policy.

pub mod disk;
pub mod err;
pub mod s3;

pub use err::StoreError;

/// One file read from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreFile {
    /// Path relative to the store root, with `/` separators.
    pub name: String,
    /// The raw contents.
    pub bytes: Vec<u8>,
}

/// Everything a store holds at one moment.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Policy files (YAML or JSON).
    pub policies: Vec<StoreFile>,
    /// Schema files under `_schemas/`, named relative to that folder.
    pub schemas: Vec<StoreFile>,
    /// Changes whenever any file changes: mtimes and sizes on disk, ETags on S3.
    pub revision: String,
}

/// What a path in the store is, by name alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileRole {
    /// A policy to parse.
    Policy,
    /// A JSON Schema, referenced by policies as `cerbos:///<path under _schemas>`.
    Schema,
    /// A test suite (`*_test.yaml`), read by `bootstrap compile` only.
    TestSuite,
    /// Anything Cerbos ignores.
    Ignored,
}

/// The folder whose files are schemas.
pub const SCHEMA_FOLDER: &str = "_schemas";

/// Classifies a store-relative path (with `/` separators).
pub fn classify(name: &str) -> FileRole {
    let segments: Vec<&str> = name.split('/').filter(|s| !s.is_empty()).collect();
    let Some((file, folders)) = segments.split_last() else {
        return FileRole::Ignored;
    };
    if segments.iter().any(|s| s.starts_with('.')) {
        return FileRole::Ignored;
    }
    if folders.first() == Some(&SCHEMA_FOLDER) {
        return FileRole::Schema;
    }
    if folders.contains(&"testdata") {
        return FileRole::Ignored;
    }
    let lower = file.to_ascii_lowercase();
    let Some(stem) = [".yaml", ".yml", ".json"]
        .iter()
        .find_map(|ext| lower.strip_suffix(ext))
    else {
        return FileRole::Ignored;
    };
    if stem.ends_with("_test") {
        FileRole::TestSuite
    } else {
        FileRole::Policy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cerbos_skip_rules() {
        assert_eq!(classify("resource_policies/doc.yaml"), FileRole::Policy);
        assert_eq!(classify("a/b/c.yml"), FileRole::Policy);
        assert_eq!(classify("x.json"), FileRole::Policy);
        assert_eq!(classify("tests/doc_test.yaml"), FileRole::TestSuite);
        assert_eq!(classify("doc_test.json"), FileRole::TestSuite);
        assert_eq!(classify(".hidden.yaml"), FileRole::Ignored);
        assert_eq!(classify(".git/config.yaml"), FileRole::Ignored);
        assert_eq!(
            classify("resource_policies/testdata/x.yaml"),
            FileRole::Ignored
        );
        assert_eq!(classify("README.md"), FileRole::Ignored);
        assert_eq!(classify("_schemas/principal.json"), FileRole::Schema);
        assert_eq!(classify("_schemas/nested/r.json"), FileRole::Schema);
        assert_eq!(classify("sub/_schemas/r.json"), FileRole::Policy);
    }
}

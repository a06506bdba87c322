//! JSON Schemas for principal and resource attributes.
//!
//! Policies refer to schemas as `cerbos:///<path under _schemas>`; schemas
//! may refer to each other the same way. Each referenced schema is compiled
//! once, when the policy set is loaded.

use std::collections::HashMap;
use std::sync::Arc;

use jsonschema::{Retrieve, Uri, Validator};

use super::glob::Pattern;
use crate::store::StoreFile;

const SCHEME: &str = "cerbos:///";

/// A schema as a policy uses it.
#[derive(Debug, Clone)]
pub struct SchemaUse {
    /// The `ref` as written.
    pub reference: Arc<str>,
    /// The compiled schema.
    pub validator: Arc<Validator>,
    /// The schema document itself, to word errors as Cerbos does (the
    /// types of a multi-type keyword in the order written).
    pub document: Arc<serde_json::Value>,
    /// Validation is skipped when every requested action matches one of these.
    pub ignore_when: Vec<Pattern>,
}

impl SchemaUse {
    /// Whether `actions` are all covered by `ignoreWhen`.
    pub fn ignored_for(&self, actions: &[String]) -> bool {
        !self.ignore_when.is_empty()
            && actions
                .iter()
                .all(|a| self.ignore_when.iter().any(|p| p.matches(a)))
    }
}

/// The schema files of the store, parsed, with the validators compiled so far.
pub struct SchemaRegistry {
    documents: Arc<HashMap<String, serde_json::Value>>,
    unparsable: HashMap<String, String>,
    compiled: HashMap<String, Arc<Validator>>,
    shared_documents: HashMap<String, Arc<serde_json::Value>>,
}

struct StoreRetriever {
    documents: Arc<HashMap<String, serde_json::Value>>,
}

impl Retrieve for StoreRetriever {
    fn retrieve(
        &self,
        uri: &Uri<String>,
    ) -> Result<serde_json::Value, Box<dyn std::error::Error + Send + Sync>> {
        let text = uri.as_str();
        let path = text
            .strip_prefix(SCHEME)
            .or_else(|| text.strip_prefix("cerbos:/"))
            .ok_or_else(|| format!("only {SCHEME} references are resolved, not {text}"))?;
        let path = path.split('#').next().unwrap_or(path);
        self.documents
            .get(path)
            .cloned()
            .ok_or_else(|| format!("no schema _schemas/{path} in the policy store").into())
    }
}

impl SchemaRegistry {
    /// Parses every schema file; unparsable ones are reported when referenced.
    pub fn new(files: &[StoreFile]) -> SchemaRegistry {
        let mut documents = HashMap::new();
        let mut unparsable = HashMap::new();
        for file in files {
            match serde_json::from_slice::<serde_json::Value>(&file.bytes) {
                Ok(doc) => {
                    documents.insert(file.name.clone(), doc);
                }
                Err(err) => {
                    unparsable.insert(file.name.clone(), format!("not valid JSON: {err}"));
                }
            }
        }
        SchemaRegistry {
            documents: Arc::new(documents),
            unparsable,
            compiled: HashMap::new(),
            shared_documents: HashMap::new(),
        }
    }

    /// How many schemas were compiled.
    pub fn compiled_count(&self) -> usize {
        self.compiled.len()
    }

    /// The document a reference names (after [`Self::validator`] accepted it).
    pub fn document(&mut self, reference: &str) -> Option<Arc<serde_json::Value>> {
        let path = reference.strip_prefix(SCHEME)?;
        let path = path.split('#').next().unwrap_or(path);
        if let Some(done) = self.shared_documents.get(path) {
            return Some(Arc::clone(done));
        }
        let document = Arc::new(self.documents.get(path)?.clone());
        self.shared_documents
            .insert(path.to_string(), Arc::clone(&document));
        Some(document)
    }

    /// Compiles (once) the schema a policy refers to.
    pub fn validator(&mut self, reference: &str) -> Result<Arc<Validator>, String> {
        if let Some(done) = self.compiled.get(reference) {
            return Ok(Arc::clone(done));
        }
        let path = reference
            .strip_prefix(SCHEME)
            .ok_or_else(|| format!("schema references must start with {SCHEME}"))?;
        let path = path.split('#').next().unwrap_or(path);
        if let Some(problem) = self.unparsable.get(path) {
            return Err(format!("_schemas/{path} is {problem}"));
        }
        let document = self
            .documents
            .get(path)
            .ok_or_else(|| format!("no schema _schemas/{path} in the policy store"))?;
        // Cerbos's schema library asserts `format` (an invalid email is an
        // error there), so formats are validated here too.
        let validator = jsonschema::options()
            .should_validate_formats(true)
            .with_base_uri(format!("{SCHEME}{path}"))
            .with_retriever(StoreRetriever {
                documents: Arc::clone(&self.documents),
            })
            .build(document)
            .map_err(|err| format!("invalid schema: {err}"))?;
        let validator = Arc::new(validator);
        self.compiled
            .insert(reference.to_string(), Arc::clone(&validator));
        Ok(validator)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> SchemaRegistry {
        SchemaRegistry::new(&[
            StoreFile {
                name: "common.json".to_string(),
                bytes: br#"{"$defs": {"dept": {"type": "string", "enum": ["a", "b"]}}}"#.to_vec(),
            },
            StoreFile {
                name: "principal.json".to_string(),
                bytes: br#"{"type": "object", "properties": {"department": {"$ref": "cerbos:///common.json#/$defs/dept"}}}"#.to_vec(),
            },
            StoreFile {
                name: "broken.json".to_string(),
                bytes: b"{".to_vec(),
            },
        ])
    }

    #[test]
    fn schemas_refer_to_each_other() {
        let mut registry = registry();
        let validator = registry.validator("cerbos:///principal.json").unwrap();
        assert!(validator.is_valid(&serde_json::json!({"department": "a"})));
        assert!(!validator.is_valid(&serde_json::json!({"department": "c"})));
        let again = registry.validator("cerbos:///principal.json").unwrap();
        assert!(Arc::ptr_eq(&validator, &again));
    }

    #[test]
    fn missing_and_broken_schemas_are_explained() {
        let mut registry = registry();
        assert!(registry
            .validator("cerbos:///nope.json")
            .unwrap_err()
            .contains("no schema _schemas/nope.json"));
        assert!(registry
            .validator("cerbos:///broken.json")
            .unwrap_err()
            .contains("not valid JSON"));
        assert!(registry
            .validator("file:///etc/passwd")
            .unwrap_err()
            .contains("must start with cerbos:///"));
    }

    #[test]
    fn ignore_when_needs_every_action_covered() {
        let mut registry = registry();
        let schema = SchemaUse {
            reference: Arc::from("cerbos:///principal.json"),
            validator: registry.validator("cerbos:///principal.json").unwrap(),
            document: registry.document("cerbos:///principal.json").unwrap(),
            ignore_when: vec![
                Pattern::new("create").unwrap(),
                Pattern::new("view:*").unwrap(),
            ],
        };
        assert!(schema.ignored_for(&["create".to_string(), "view:x".to_string()]));
        assert!(!schema.ignored_for(&["create".to_string(), "delete".to_string()]));
    }
}

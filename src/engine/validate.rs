//! JSON-Schema validation of principal and resource attributes.
//!
//! Messages are worded as Cerbos words them (its Go JSON-Schema library),
//! e.g. `value must be one of "marketing", "engineering"`, so clients that
//! show them see the same text from either PDP.

use jsonschema::error::{TypeKind, ValidationErrorKind};
use serde_json::Value;

use super::{Principal, Resource, ValidationError, ValidationSource};
use crate::compile::{ResourceUnit, SchemaUse};

/// Checks the attributes against the policy's schemas.
pub fn validate(
    unit: &ResourceUnit,
    principal: &Principal,
    resource: &Resource,
    actions: &[String],
) -> Vec<ValidationError> {
    let mut errors = Vec::new();
    let targets = [
        (
            &unit.principal_schema,
            &principal.attr,
            ValidationSource::Principal,
        ),
        (
            &unit.resource_schema,
            &resource.attr,
            ValidationSource::Resource,
        ),
    ];
    for (schema, attr, source) in targets {
        let Some(schema) = schema else { continue };
        check_one(schema, attr, source, actions, &mut errors);
    }
    errors
}

fn check_one(
    schema: &SchemaUse,
    attr: &serde_json::Map<String, Value>,
    source: ValidationSource,
    actions: &[String],
    errors: &mut Vec<ValidationError>,
) {
    if schema.ignored_for(actions) {
        return;
    }
    let instance = Value::Object(attr.clone());
    let found: Vec<jsonschema::ValidationError<'_>> =
        schema.validator.iter_errors(&instance).collect();
    for (path, message) in cerbos_errors(&found, &schema.document) {
        errors.push(ValidationError {
            path,
            message,
            source,
        });
    }
}

/// One reported problem before it is worded: where, which subschema, what.
struct Leaf<'e> {
    path: String,
    schema_path: String,
    error: &'e jsonschema::ValidationError<'e>,
}

/// Cerbos's list for a set of errors, as its JSON Schema library (v6 of
/// santhosh-tekuri/jsonschema) reports them: the leaves of `anyOf`/`oneOf`
/// failures rather than the combinator, one "missing properties" entry per
/// object, nothing else about a value whose type is already wrong, and `/`
/// for the root.
fn cerbos_errors(
    found: &[jsonschema::ValidationError<'_>],
    document: &Value,
) -> Vec<(String, String)> {
    let mut leaves = Vec::new();
    for error in found {
        collect_leaves(error, &mut leaves);
    }
    // A value of the wrong type gets only the type error from its subschema.
    let typed: Vec<(String, String)> = leaves
        .iter()
        .filter(|l| matches!(l.error.kind(), ValidationErrorKind::Type { .. }))
        .map(|l| (l.path.clone(), parent(&l.schema_path).to_string()))
        .collect();
    let mut out: Vec<(String, String)> = Vec::new();
    // Missing properties are grouped per object, in the schema's order.
    let mut missing: Vec<(String, Vec<String>)> = Vec::new();
    for leaf in &leaves {
        let is_type = matches!(leaf.error.kind(), ValidationErrorKind::Type { .. });
        if !is_type
            && typed
                .iter()
                .any(|(p, s)| *p == leaf.path && s == parent(&leaf.schema_path))
        {
            continue;
        }
        let path = if leaf.path.is_empty() {
            "/".to_string()
        } else {
            leaf.path.clone()
        };
        if let ValidationErrorKind::Required { property } = leaf.error.kind() {
            let name = property.as_str().unwrap_or_default().to_string();
            match missing.iter_mut().find(|(p, _)| *p == path) {
                Some((_, names)) => names.push(name),
                None => {
                    out.push((path.clone(), String::new()));
                    missing.push((path, vec![name]));
                }
            }
            continue;
        }
        let text = match leaf.error.kind() {
            // The types in the order the schema lists them, when it can be found.
            ValidationErrorKind::Type {
                kind: TypeKind::Multiple(_),
            } => document
                .pointer(&leaf.schema_path)
                .and_then(Value::as_array)
                .map(|types| {
                    let want: Vec<&str> = types.iter().filter_map(Value::as_str).collect();
                    format!(
                        "expected {}, but got {}",
                        want.join(" or "),
                        type_name(leaf.error.instance())
                    )
                }),
            _ => None,
        }
        .or_else(|| message(leaf.error.kind(), leaf.error.instance()))
        .unwrap_or_else(|| leaf.error.to_string());
        out.push((path, text));
    }
    for (path, names) in missing {
        let text = format!(
            "missing properties: {}",
            names
                .iter()
                .map(|n| format!("'{n}'"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        if let Some(slot) = out.iter_mut().find(|(p, m)| *p == path && m.is_empty()) {
            slot.1 = text;
        }
    }
    out
}

fn collect_leaves<'e>(error: &'e jsonschema::ValidationError<'e>, out: &mut Vec<Leaf<'e>>) {
    let context = match error.kind() {
        ValidationErrorKind::AnyOf { context } | ValidationErrorKind::OneOfNotValid { context } => {
            Some(context)
        }
        _ => None,
    };
    match context {
        Some(context) if context.iter().any(|c| !c.is_empty()) => {
            for branch in context {
                for inner in branch {
                    collect_leaves(inner, out);
                }
            }
        }
        _ => out.push(Leaf {
            path: error.instance_path().as_str().to_string(),
            schema_path: error.schema_path().as_str().to_string(),
            error,
        }),
    }
}

/// The subschema a keyword belongs to: `/properties/a` for `/properties/a/type`.
fn parent(schema_path: &str) -> &str {
    schema_path.rfind('/').map_or("", |i| &schema_path[..i])
}

fn json_list(values: &[Value]) -> String {
    values
        .iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("'{n}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The Go library's name for a JSON value's type: every number is a `number`.
fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A value as the Go library shows it in messages: strings in single quotes.
fn display(value: &Value) -> String {
    match value {
        Value::String(s) => format!("'{s}'"),
        other => other.to_string(),
    }
}

/// The first pair of equal items, as the Go library finds it.
fn duplicates(instance: &Value) -> (usize, usize) {
    let items = instance.as_array().map(Vec::as_slice).unwrap_or_default();
    for i in 1..items.len() {
        for j in 0..i {
            if items[i] == items[j] {
                return (j, i);
            }
        }
    }
    (0, 0)
}

/// Cerbos's wording for the common keywords; `None` for the rest.
fn message(kind: &ValidationErrorKind, instance: &Value) -> Option<String> {
    let text = match kind {
        ValidationErrorKind::Enum { options } => match options.as_array().map(Vec::as_slice) {
            Some([single]) => format!("value must be {single}"),
            Some(all) => format!("value must be one of {}", json_list(all)),
            None => format!("value must be one of {options}"),
        },
        ValidationErrorKind::Constant { expected_value } => {
            format!("value must be {expected_value}")
        }
        ValidationErrorKind::Type { kind } => {
            let want = match kind {
                TypeKind::Single(t) => t.to_string(),
                TypeKind::Multiple(set) => set
                    .iter()
                    .map(|t| t.to_string())
                    .collect::<Vec<_>>()
                    .join(" or "),
            };
            format!("expected {want}, but got {}", type_name(instance))
        }
        ValidationErrorKind::Required { property } => {
            format!(
                "missing properties: '{}'",
                property.as_str().unwrap_or_default()
            )
        }
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            format!("additionalProperties {} not allowed", quoted(unexpected))
        }
        ValidationErrorKind::Minimum { limit } => {
            format!("must be >= {limit} but found {instance}")
        }
        ValidationErrorKind::Maximum { limit } => {
            format!("must be <= {limit} but found {instance}")
        }
        ValidationErrorKind::ExclusiveMinimum { limit } => {
            format!("must be > {limit} but found {instance}")
        }
        ValidationErrorKind::ExclusiveMaximum { limit } => {
            format!("must be < {limit} but found {instance}")
        }
        ValidationErrorKind::MinLength { limit } => {
            format!("length must be >= {limit}, but got {}", text_len(instance))
        }
        ValidationErrorKind::MaxLength { limit } => {
            format!("length must be <= {limit}, but got {}", text_len(instance))
        }
        ValidationErrorKind::MinItems { limit } => format!(
            "minimum {limit} items required, but found {} items",
            items_len(instance)
        ),
        ValidationErrorKind::MaxItems { limit } => format!(
            "maximum {limit} items required, but found {} items",
            items_len(instance)
        ),
        ValidationErrorKind::MinProperties { limit } => format!(
            "minimum {limit} properties required, but found {} properties",
            instance.as_object().map_or(0, |o| o.len())
        ),
        ValidationErrorKind::MaxProperties { limit } => format!(
            "maximum {limit} properties required, but found {} properties",
            instance.as_object().map_or(0, |o| o.len())
        ),
        ValidationErrorKind::UniqueItems => {
            let (i, j) = duplicates(instance);
            format!("items at index {i} and {j} are equal")
        }
        ValidationErrorKind::Pattern { pattern } => {
            format!("does not match pattern '{pattern}'")
        }
        ValidationErrorKind::Format { format } => {
            format!("{} is not valid '{format}'", display(instance))
        }
        ValidationErrorKind::Not { .. } => "not failed".to_string(),
        ValidationErrorKind::FalseSchema => "false schema".to_string(),
        ValidationErrorKind::OneOfMultipleValid { context } => {
            let valid: Vec<usize> = context
                .iter()
                .enumerate()
                .filter(|(_, errors)| errors.is_empty())
                .map(|(i, _)| i)
                .take(2)
                .collect();
            match valid.as_slice() {
                [a, b] => format!("valid against schemas at indexes {a} and {b}"),
                _ => "valid against more than one schema".to_string(),
            }
        }
        _ => return None,
    };
    Some(text)
}

fn text_len(instance: &Value) -> usize {
    instance.as_str().map_or(0, |s| s.chars().count())
}

fn items_len(instance: &Value) -> usize {
    instance.as_array().map_or(0, Vec::len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn messages(schema: Value, instance: Value) -> Vec<(String, String)> {
        let validator = jsonschema::validator_for(&schema).unwrap();
        validator
            .iter_errors(&instance)
            .map(|e| {
                (
                    e.instance_path().as_str().to_string(),
                    message(e.kind(), e.instance()).unwrap_or_default(),
                )
            })
            .collect()
    }

    #[test]
    fn cerbos_wording() {
        let schema = json!({
            "type": "object",
            "required": ["team"],
            "properties": {
                "department": {"type": "string", "enum": ["marketing", "engineering"]},
                "age": {"type": "integer", "minimum": 18},
                "tags": {"type": "array"}
            }
        });
        let mut got = messages(
            schema,
            json!({"department": "sales", "age": 3, "tags": "x"}),
        );
        got.sort();
        assert_eq!(
            got,
            vec![
                ("".to_string(), "missing properties: 'team'".to_string()),
                ("/age".to_string(), "must be >= 18 but found 3".to_string()),
                (
                    "/department".to_string(),
                    "value must be one of \"marketing\", \"engineering\"".to_string()
                ),
                (
                    "/tags".to_string(),
                    "expected array, but got string".to_string()
                ),
            ]
        );
    }
}

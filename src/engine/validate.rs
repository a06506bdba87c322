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
    for error in schema.validator.iter_errors(&instance) {
        errors.push(ValidationError {
            path: error.instance_path().as_str().to_string(),
            message: message(error.kind(), error.instance()).unwrap_or_else(|| error.to_string()),
            source,
        });
    }
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

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
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
            format!("got {}, want {want}", type_name(instance))
        }
        ValidationErrorKind::Required { property } => {
            format!(
                "missing property '{}'",
                property.as_str().unwrap_or_default()
            )
        }
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            format!("additionalProperties {} not allowed", quoted(unexpected))
        }
        ValidationErrorKind::Minimum { limit } => {
            format!("must be >={limit} but found {instance}")
        }
        ValidationErrorKind::Maximum { limit } => {
            format!("must be <={limit} but found {instance}")
        }
        ValidationErrorKind::ExclusiveMinimum { limit } => {
            format!("must be >{limit} but found {instance}")
        }
        ValidationErrorKind::ExclusiveMaximum { limit } => {
            format!("must be <{limit} but found {instance}")
        }
        ValidationErrorKind::MinLength { limit } => {
            format!("minLength: got {}, want {limit}", text_len(instance))
        }
        ValidationErrorKind::MaxLength { limit } => {
            format!("maxLength: got {}, want {limit}", text_len(instance))
        }
        ValidationErrorKind::MinItems { limit } => {
            format!("minItems: got {}, want {limit}", items_len(instance))
        }
        ValidationErrorKind::MaxItems { limit } => {
            format!("maxItems: got {}, want {limit}", items_len(instance))
        }
        ValidationErrorKind::Pattern { pattern } => {
            format!("{instance} does not match pattern '{pattern}'")
        }
        ValidationErrorKind::Format { format } => format!("{instance} is not valid {format}"),
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
                ("".to_string(), "missing property 'team'".to_string()),
                ("/age".to_string(), "must be >=18 but found 3".to_string()),
                (
                    "/department".to_string(),
                    "value must be one of \"marketing\", \"engineering\"".to_string()
                ),
                ("/tags".to_string(), "got string, want array".to_string()),
            ]
        );
    }
}

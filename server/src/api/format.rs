//! Structured outputs: the output format a request asks for (chat and completions'
//! `response_format`, the Responses API's `text.format`), checked and compiled into the
//! grammar every choice's sampling follows (`veil_engine::Constraint`).
//!
//! Served: `{"type": "text"}` (nothing to do), `{"type": "json_object"}` (any JSON object)
//! and `{"type": "json_schema", ...}` (JSON valid against the schema, with or without
//! `strict`: Veil always enforces the schema, as `strict: true` asks). A schema the grammar
//! compiler cannot serve (an unsupported keyword, a remote `$ref`, an unsatisfiable
//! schema) is a 400 naming the field and what in it failed.

use serde_json::Value;
use veil_engine::{Constraint, OutputFormat};

use super::Shared;
use super::error::ApiError;

/// An output format and the request field that asked for it.
#[derive(Debug, Clone)]
pub(crate) struct Format {
    pub(crate) format: OutputFormat,
    pub(crate) param: &'static str,
}

/// Chat and completions' `response_format`: `{"type": "text" | "json_object"}`, or
/// `{"type": "json_schema", "json_schema": {"name", "description", "schema", "strict"}}`.
pub(crate) fn response_format(v: Option<&Value>) -> Result<Option<Format>, ApiError> {
    const PARAM: &str = "response_format";
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let format = match type_of(v, PARAM)? {
        "text" => return Ok(None),
        "json_object" => OutputFormat::JsonObject,
        "json_schema" => {
            let Some(spec) = v.get("json_schema").filter(|s| s.is_object()) else {
                return Err(ApiError::invalid_param(
                    PARAM,
                    "response_format of type json_schema needs a json_schema object",
                ));
            };
            OutputFormat::JsonSchema(schema(spec, "response_format.json_schema.schema")?)
        }
        other => return Err(unknown_type(PARAM, other)),
    };
    Ok(Some(Format {
        format,
        param: PARAM,
    }))
}

/// The Responses API's `text.format`: `{"type": "text" | "json_object"}`, or
/// `{"type": "json_schema", "name", "description", "schema", "strict"}`.
pub(crate) fn text_format(v: Option<&Value>) -> Result<Option<Format>, ApiError> {
    const PARAM: &str = "text.format";
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let format = match type_of(v, PARAM)? {
        "text" => return Ok(None),
        "json_object" => OutputFormat::JsonObject,
        "json_schema" => OutputFormat::JsonSchema(schema(v, "text.format.schema")?),
        other => return Err(unknown_type(PARAM, other)),
    };
    Ok(Some(Format {
        format,
        param: PARAM,
    }))
}

/// The format a request's answer follows: `asked` (the endpoint's format field, read),
/// or with tools the tool format, which refuses a second format (one grammar applies).
pub(crate) fn or_tools(
    asked: Option<Format>,
    tools: Option<&super::tools::Tools>,
) -> Result<Option<Format>, ApiError> {
    let Some(tools) = tools else {
        return Ok(asked);
    };
    if let Some(f) = asked {
        return Err(ApiError::invalid_param(
            f.param,
            format!("{} cannot be combined with tools", f.param),
        ));
    }
    Ok(Some(Format {
        format: tools.format()?,
        param: "tools",
    }))
}

/// Compiles `format` for one request; the engine's refusal becomes a 400 naming the field.
pub(crate) fn compile(state: &Shared, format: &Format) -> Result<Constraint, ApiError> {
    state.engine.constraint(&format.format).map_err(|e| {
        ApiError::invalid_param(
            format.param,
            format!("{} cannot be served: {e}", format.param),
        )
    })
}

fn type_of<'a>(v: &'a Value, param: &'static str) -> Result<&'a str, ApiError> {
    v.get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::invalid_param(param, format!("{param} needs a string \"type\"")))
}

fn unknown_type(param: &'static str, ty: &str) -> ApiError {
    // The type is echoed only when it is short and plain (it comes from the request).
    let shown = if ty.len() <= 32 && ty.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        ty
    } else {
        "(this type)"
    };
    ApiError::invalid_param(
        param,
        format!("{param} type {shown} is not served; text, json_object and json_schema are"),
    )
}

/// The `schema` member of `spec`: a JSON Schema object (a missing schema is refused rather
/// than read as "anything": a client that asked for a schema expects one enforced).
fn schema(spec: &Value, param: &'static str) -> Result<Value, ApiError> {
    match spec.get("schema") {
        Some(s @ Value::Object(_)) => Ok(s.clone()),
        Some(_) => Err(ApiError::invalid_param(
            param,
            format!("{param} must be a JSON Schema object"),
        )),
        None => Err(ApiError::invalid_param(
            param,
            format!("{param} is required"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use veil_engine::OutputFormat;

    use super::{response_format, text_format};

    #[test]
    fn text_asks_for_nothing_and_json_asks_for_a_grammar() {
        assert!(response_format(None).expect("ok").is_none());
        assert!(response_format(Some(&json!(null))).expect("ok").is_none());
        assert!(
            response_format(Some(&json!({"type": "text"})))
                .expect("ok")
                .is_none()
        );
        let f = response_format(Some(&json!({"type": "json_object"})))
            .expect("ok")
            .expect("a format");
        assert_eq!(f.format, OutputFormat::JsonObject);
        let schema = json!({"type": "object", "properties": {"a": {"type": "integer"}}});
        let f = response_format(Some(&json!({
            "type": "json_schema",
            "json_schema": {"name": "a", "schema": schema, "strict": true}
        })))
        .expect("ok")
        .expect("a format");
        assert_eq!(f.format, OutputFormat::JsonSchema(schema.clone()));
        let f = text_format(Some(
            &json!({"type": "json_schema", "name": "a", "schema": schema}),
        ))
        .expect("ok")
        .expect("a format");
        assert_eq!(f.param, "text.format");
        assert_eq!(f.format, OutputFormat::JsonSchema(schema));
    }

    #[test]
    fn malformed_formats_are_refused_by_field() {
        for (v, param, says) in [
            (
                json!({"type": "yaml"}),
                "response_format",
                "yaml is not served",
            ),
            (json!({}), "response_format", "needs a string"),
            (
                json!({"type": "json_schema"}),
                "response_format",
                "needs a json_schema",
            ),
            (
                json!({"type": "json_schema", "json_schema": {"name": "a"}}),
                "response_format.json_schema.schema",
                "is required",
            ),
            (
                json!({"type": "json_schema", "json_schema": {"schema": true}}),
                "response_format.json_schema.schema",
                "must be a JSON Schema object",
            ),
            (
                json!({"type": "<script>"}),
                "response_format",
                "(this type)",
            ),
        ] {
            let e = response_format(Some(&v)).expect_err("refused");
            assert_eq!(e.param, Some(param), "{v}");
            assert!(e.message.contains(says), "{v}: {}", e.message);
        }
        let e = text_format(Some(&json!({"type": "json_schema"}))).expect_err("refused");
        assert_eq!(e.param, Some("text.format.schema"));
    }
}

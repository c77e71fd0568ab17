//! Request body and query extraction that answers bad input with the error envelope:
//! malformed JSON → 400 `INVALID_JSON`; a document that is not an object → 400
//! `BODY_NOT_AN_OBJECT`; unknown, missing or mistyped fields → 400 naming the field; bodies over
//! the limit → 413. The content type is not checked, so `curl -d` works.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Largest accepted request body (1 MiB).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A JSON body deserialized with field-naming errors.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "PAYLOAD_TOO_LARGE",
                    format!("request body is larger than {MAX_BODY_BYTES} bytes"),
                )
                .with_details(serde_json::json!({ "max_bytes": MAX_BODY_BYTES }))
            } else {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "INVALID_BODY",
                    "request body could not be read",
                )
            }
        })?;
        parse_json(&bytes).map(Json)
    }
}

/// Deserializes `bytes`, naming the offending field on failure. Every request body of the API
/// is an object: serde would read a struct from an array of its fields in order
/// (`["gw-1"]` as `{"name":"gw-1"}`), so anything else is refused before deserializing.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Read whole first (trailing garbage is malformed JSON too), so that the document's kind
    // is known and numbers can be normalised before the typed read.
    let mut document: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| classify("", &e))?;
    let kind = match &document {
        serde_json::Value::Object(_) => None,
        serde_json::Value::Array(_) => Some("an array"),
        serde_json::Value::String(_) => Some("a string"),
        serde_json::Value::Bool(_) => Some("a boolean"),
        serde_json::Value::Null => Some("null"),
        serde_json::Value::Number(_) => Some("a number"),
    };
    if let Some(kind) = kind {
        return Err(ApiError::bad_field(
            "BODY_NOT_AN_OBJECT",
            "body",
            format!("request body must be a JSON object; it is {kind}"),
        ));
    }
    integral_floats_as_integers(&mut document);
    serde_path_to_error::deserialize(document).map_err(|error| {
        let path = error.path().to_string();
        classify(&path, error.inner())
    })
}

/// JSON has one number type: `60.0` is the integer 60 (as JSON Schema's `integer` says), but
/// serde reads it as a float only. Integral floats in the i64 range become integers.
fn integral_floats_as_integers(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64()
                && f.fract() == 0.0
                && (-9.2e18..9.2e18).contains(&f)
            {
                *value = Value::from(f as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_floats_as_integers),
        Value::Object(map) => map.values_mut().for_each(integral_floats_as_integers),
        _ => {}
    }
}

fn classify(path: &str, error: &serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    let message = error.to_string();
    match error.classify() {
        Category::Syntax | Category::Eof | Category::Io => ApiError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_JSON",
            format!("request body is not valid JSON: {message}"),
        ),
        Category::Data => {
            let quoted = backticked(&message);
            // serde_path_to_error's path already ends with an unknown field's name, but stops at
            // the enclosing object for a missing one; name the field itself.
            let (code, field) = if message.starts_with("unknown field") {
                ("UNKNOWN_FIELD", path.to_string())
            } else if message.starts_with("missing field") {
                ("MISSING_FIELD", join(path, quoted.unwrap_or("?")))
            } else {
                ("INVALID_FIELD", path.to_string())
            };
            let field = if field == "." || field.is_empty() {
                "body".to_string()
            } else {
                field
            };
            let text = strip_position(&message);
            ApiError::bad_field(code, &field, format!("field `{field}`: {text}"))
        }
    }
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() || path == "." {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

fn backticked(message: &str) -> Option<&str> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(&message[start..start + len])
}

/// serde_json appends " at line L column C"; the field name is more useful than the position.
fn strip_position(message: &str) -> &str {
    match message.rfind(" at line ") {
        Some(at) => &message[..at],
        None => message,
    }
}

/// Query parameters read as `T` (`#[serde(deny_unknown_fields)]`, documented by its
/// `utoipa::IntoParams`): an unknown parameter → 400 `UNKNOWN_PARAMETER`, a value `T` does not
/// accept (also an empty one, `?sort=`) or a repeated parameter → 400 `INVALID_PARAMETER`,
/// each naming the parameter in `details.field`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parse_query(parts.uri.query().unwrap_or("")).map(Query)
    }
}

/// Reads a query string (`+` and `%XX` decoded) as `T`, naming the offending parameter.
pub fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let pairs = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(pairs).map_err(|error| {
        let message = error.inner().to_string();
        let path = error.path().to_string();
        let name = match backticked(&message) {
            // serde names an unknown or repeated parameter itself; the path stops before it.
            Some(name) if path == "." || path.is_empty() => name.to_owned(),
            _ => path,
        };
        let code = if message.starts_with("unknown field") {
            "UNKNOWN_PARAMETER"
        } else {
            "INVALID_PARAMETER"
        };
        ApiError::bad_field(code, &name, format!("query parameter `{name}`: {message}"))
    })
}

/// A page size given as `limit`: `default` when absent, else 1–`max`.
pub fn page_limit(limit: Option<u32>, default: u32, max: u32) -> Result<u32, ApiError> {
    match limit {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::bad_field(
            "INVALID_PARAMETER",
            "limit",
            format!("query parameter `limit` must be an integer from 1 to {max}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        count: Option<u32>,
        inner: Option<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        flag: bool,
    }

    fn check(input: &str, expect: expect_test::Expect) {
        let actual = match parse_json::<Body>(input.as_bytes()) {
            Ok(body) => format!("ok {body:?}"),
            Err(e) => format!(
                "{} {} {} | {}",
                e.status.as_u16(),
                e.code,
                e.details,
                e.message
            ),
        };
        expect.assert_eq(&actual);
    }

    #[test]
    fn bad_bodies_name_the_field() {
        use expect_test::expect;
        check(
            r#"{"name":"a"}"#,
            expect![[r#"ok Body { name: "a", count: None, inner: None }"#]],
        );
        check(
            r#"{"name":"a""#,
            expect![
                "400 INVALID_JSON {} | request body is not valid JSON: EOF while parsing an object at line 1 column 11"
            ],
        );
        check(
            r#"{"name":"a"} x"#,
            expect![
                "400 INVALID_JSON {} | request body is not valid JSON: trailing characters at line 1 column 14"
            ],
        );
        check(
            r#"{"name":"a","bogus":1}"#,
            expect![[
                r#"400 UNKNOWN_FIELD {"field":"bogus"} | field `bogus`: unknown field `bogus`, expected one of `name`, `count`, `inner`"#
            ]],
        );
        check(
            r#"{"count":1}"#,
            expect![[r#"400 MISSING_FIELD {"field":"name"} | field `name`: missing field `name`"#]],
        );
        check(
            r#"{"name":7}"#,
            expect![[
                r#"400 INVALID_FIELD {"field":"name"} | field `name`: invalid type: integer `7`, expected a string"#
            ]],
        );
        check(
            r#"{"name":"a","count":"x"}"#,
            expect![[
                r#"400 INVALID_FIELD {"field":"count"} | field `count`: invalid type: string "x", expected u32"#
            ]],
        );
        check(
            r#"{"name":"a","inner":{"flag":1}}"#,
            expect![[
                r#"400 INVALID_FIELD {"field":"inner.flag"} | field `inner.flag`: invalid type: integer `1`, expected a boolean"#
            ]],
        );
        check(
            r#"{"name":"a","inner":{"flog":true}}"#,
            expect![[
                r#"400 UNKNOWN_FIELD {"field":"inner.flog"} | field `inner.flog`: unknown field `flog`, expected `flag`"#
            ]],
        );
        check(
            r#"[]"#,
            expect![[
                r#"400 BODY_NOT_AN_OBJECT {"field":"body"} | request body must be a JSON object; it is an array"#
            ]],
        );
        // Without the check serde reads a struct from an array of its fields.
        check(
            r#" ["arr-gw"]"#,
            expect![[
                r#"400 BODY_NOT_AN_OBJECT {"field":"body"} | request body must be a JSON object; it is an array"#
            ]],
        );
        check(
            r#""arr-gw""#,
            expect![[
                r#"400 BODY_NOT_AN_OBJECT {"field":"body"} | request body must be a JSON object; it is a string"#
            ]],
        );
        check(
            "null",
            expect![[
                r#"400 BODY_NOT_AN_OBJECT {"field":"body"} | request body must be a JSON object; it is null"#
            ]],
        );
        check(
            "x",
            expect![
                "400 INVALID_JSON {} | request body is not valid JSON: expected value at line 1 column 1"
            ],
        );
        check(
            r#"{"name":"a","count":60.0}"#,
            expect![[r#"ok Body { name: "a", count: Some(60), inner: None }"#]],
        );
        check(
            r#"{"name":"a","count":60.5}"#,
            expect![[
                r#"400 INVALID_FIELD {"field":"count"} | field `count`: invalid type: floating point `60.5`, expected u32"#
            ]],
        );
        check(
            r#""#,
            expect![
                "400 INVALID_JSON {} | request body is not valid JSON: EOF while parsing a value at line 1 column 0"
            ],
        );
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Params {
        q: Option<String>,
        limit: Option<u32>,
        order: Option<crate::dto::OrderParam>,
    }

    fn check_query(input: &str, expect: expect_test::Expect) {
        let actual = match parse_query::<Params>(input) {
            Ok(params) => format!("ok {params:?}"),
            Err(e) => format!(
                "{} {} {} | {}",
                e.status.as_u16(),
                e.code,
                e.details,
                e.message
            ),
        };
        expect.assert_eq(&actual);
    }

    #[test]
    fn query_parameters() {
        use expect_test::expect;
        check_query(
            "q=gw%2D1+x%&order=desc",
            expect![[r#"ok Params { q: Some("gw-1 x%"), limit: None, order: Some(Desc) }"#]],
        );
        check_query(
            "",
            expect!["ok Params { q: None, limit: None, order: None }"],
        );
        check_query(
            "sort=name",
            expect![[
                r#"400 UNKNOWN_PARAMETER {"field":"sort"} | query parameter `sort`: unknown field `sort`, expected one of `q`, `limit`, `order`"#
            ]],
        );
        check_query(
            "limit=x",
            expect![[
                r#"400 INVALID_PARAMETER {"field":"limit"} | query parameter `limit`: invalid digit found in string"#
            ]],
        );
        check_query(
            "order=",
            expect![[
                r#"400 INVALID_PARAMETER {"field":"order"} | query parameter `order`: unknown variant ``, expected `asc` or `desc`"#
            ]],
        );
        check_query(
            "q=a&q=b",
            expect![[
                r#"400 INVALID_PARAMETER {"field":"q"} | query parameter `q`: duplicate field `q`"#
            ]],
        );
        assert_eq!(page_limit(None, 100, 500).unwrap(), 100);
        assert_eq!(page_limit(Some(500), 100, 500).unwrap(), 500);
        assert_eq!(
            page_limit(Some(0), 100, 500).unwrap_err().code,
            "INVALID_PARAMETER"
        );
    }
}

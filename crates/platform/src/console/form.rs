//! What the console's forms share: the REST side's refusals turned into messages next to the
//! fields they name (`details.field`, or every entry of `details.errors`), in sentences that
//! say what to do, and the page-level message for refusals no field owns.

use serde_json::Value;

use super::ConsoleError;
use crate::error::ApiError;

/// Messages for the fields of one form, by REST field name, plus one for the whole form.
#[derive(Debug, Default)]
pub(crate) struct FieldErrors {
    fields: Vec<(String, String)>,
    /// A refusal no field owns (a permission, a conflict on the whole object).
    pub form: Option<String>,
}

impl FieldErrors {
    pub fn get(&self, field: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, m)| m.as_str())
    }

    pub fn set(&mut self, field: &str, message: impl Into<String>) {
        if self.get(field).is_none() {
            self.fields.push((field.to_string(), message.into()));
        }
    }

    /// The refusal `error` of a REST handler as messages for this form's `fields`. Errors
    /// that are not about input (403, 404, 503…) stay errors: they become an error page.
    pub fn from_refusal(error: ApiError, fields: &[&str]) -> Result<Self, ConsoleError> {
        let input = matches!(error.status.as_u16(), 400 | 409 | 422);
        if !input {
            return Err(error.into());
        }
        let mut out = FieldErrors::default();
        if let Some(list) = error.details.get("errors").and_then(Value::as_array) {
            for e in list {
                let (Some(code), Some(field)) = (
                    e.get("code").and_then(Value::as_str),
                    e.get("field").and_then(Value::as_str),
                ) else {
                    continue;
                };
                let message = e.get("message").and_then(Value::as_str).unwrap_or("");
                if fields.contains(&field) {
                    out.set(field, explain(code, message));
                }
            }
        }
        let field = error.details.get("field").and_then(Value::as_str);
        let message = explain(&error.code, &error.message);
        match field {
            Some(f) if fields.contains(&f) => out.set(f, message),
            _ if out.fields.is_empty() => out.form = Some(message),
            _ => {}
        }
        Ok(out)
    }
}

/// The REST field names of the four environment paths, as the form labels them.
pub(crate) const PATH_LABELS: [(&str, &str); 4] = [
    ("rest_path", "REST path"),
    ("soap_path", "SOAP path"),
    ("soap12_path", "SOAP 1.2 path"),
    ("odata_path", "OData path"),
];

/// A REST message with field names replaced by the labels the form shows.
fn humanise(message: &str) -> String {
    let mut s = message.to_string();
    for (field, label) in PATH_LABELS {
        s = s.replace(field, label);
    }
    super::gateways::sentence(&s)
}

/// A refusal as a sentence saying what is wrong and what to do, by error code. Codes whose
/// message names other objects (another environment, the conflicting APIs) keep the REST
/// message and add the step.
pub(crate) fn explain(code: &str, message: &str) -> String {
    let fixed = |what: &str, todo: &str| format!("{what} {todo} ({code})");
    let suffix = code
        .strip_prefix("ENVIRONMENT_PATH_")
        .or_else(|| code.strip_prefix("API_BASE_PATH_"))
        .or_else(|| code.strip_prefix("CUSTOM_PATH_"));
    match suffix {
        Some("EMPTY") => return fixed("The path is empty.", "Enter a path such as ws/rest."),
        Some("LEADING_SLASH") => {
            return fixed(
                "The path starts with “/”.",
                "Remove the leading slash: write ws/rest, not /ws/rest.",
            );
        }
        Some("TRAILING_SLASH") => {
            return fixed(
                "The path ends with “/”.",
                "Remove the trailing slash: write ws/rest, not ws/rest/.",
            );
        }
        Some("SPACES") => {
            return fixed(
                "The path contains a space (or an encoded one such as %20).",
                "Remove it, or use “-” or “_” between words.",
            );
        }
        Some("CONSECUTIVE_SLASHES") => {
            return fixed(
                "The path contains “//”.",
                "Use a single “/” between segments.",
            );
        }
        Some("RELATIVE") => {
            return fixed(
                "The path contains a “.” or “..” segment.",
                "Remove that segment: clients resolve it before the gateway sees the request.",
            );
        }
        Some("INVALID_ENCODED") => {
            return fixed(
                "The path contains a malformed “%” escape.",
                "Write “%” followed by two hex digits (such as %C3%A9), or type the character \
                 itself: it is encoded on save.",
            );
        }
        Some("DUPLICATE") => {
            return format!(
                "{} Give each API type its own path. ({code})",
                humanise(message)
            );
        }
        Some("NOT_UNIQUE_ON_GATEWAY") => {
            return format!(
                "{} Choose a path no other environment on this gateway uses. ({code})",
                humanise(message)
            );
        }
        _ => {}
    }
    let todo = match code {
        "API_PATH_CONFLICT" => {
            "Change this path, or the base path of one of the APIs named, so they no longer \
             share a URL prefix; a deployment can also set a custom path."
        }
        "ENVIRONMENT_NAME_TAKEN" | "GATEWAY_NAME_TAKEN" => "Choose another name.",
        "API_NAME_VERSION_TAKEN" => "Change the name or the version.",
        "ALREADY_DEPLOYED" => "It is deployed there already; pick another environment.",
        "USER_EMAIL_TAKEN" => "Another user of this account has this e-mail; use another one.",
        "CANNOT_DEMOTE_SELF" | "CANNOT_DELETE_SELF" => {
            "Ask another owner of the account to do this."
        }
        "IN_USE" => "Remove what uses it first.",
        _ => "Correct the value and send the form again.",
    };
    format!("{} {todo} ({code})", humanise(message))
}

//! `GET /settings/modules`: the org's modules, for the `--module` check of
//! `zdel enqueue` and `zdel select` ("did you mean Leads?", and Zoho's
//! spelling of a name given in another case).

use serde_json::Value;

use super::{CallSlot, ZohoClient, ZohoError, answer};

impl ZohoClient {
    /// The API names of the org's modules, as Zoho spells them.
    pub async fn modules(&self, _slot: &CallSlot) -> Result<Vec<String>, ZohoError> {
        let (status, answer) = self
            .call("modules", |base| {
                self.http
                    .get(super::call::with_segments(base, &["settings", "modules"]))
            })
            .await?;
        if status != 200 {
            return Err(answer::whole_call_error(status, &answer));
        }
        let names: Option<Vec<String>> =
            answer
                .get("modules")
                .and_then(Value::as_array)
                .map(|modules| {
                    modules
                        .iter()
                        .filter_map(|m| m.get("api_name").and_then(Value::as_str))
                        .map(str::to_string)
                        .collect()
                });
        match names {
            Some(names) if !names.is_empty() => Ok(names),
            _ => Err(ZohoError::Transient {
                code: "UNREADABLE_ANSWER".into(),
                message: format!(
                    "Zoho answered GET /settings/modules with HTTP {status} and no module zdel can read"
                ),
                http_status: Some(status),
                ambiguous: false,
            }),
        }
    }
}

//! One batch's call as a value: what [`super::ZohoClient::send`] sends and
//! what a dry run prints are built from the same [`Call`], so the dry run
//! shows exactly what would be sent. Every URL zdel calls is formatted in
//! `src/zoho/`; adding a Zoho operation starts with a variant here.

/// A call that carries one batch of IDs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call<'a> {
    /// `DELETE /{module}?ids=…&wf_trigger=…`, up to 100 IDs.
    DeleteRecords {
        module: &'a str,
        ids: Vec<&'a str>,
        wf_trigger: bool,
    },
    /// `POST /{module}/actions/mass_delete {"ids":[…]}`, up to 500 IDs, deleted at once.
    MassDeleteIds { module: &'a str, ids: Vec<&'a str> },
    /// `DELETE /{module}/{record_id}/{related_list}?ids=…`, up to 100 related IDs.
    Delink {
        module: &'a str,
        record_id: &'a str,
        related_list: &'a str,
        ids: Vec<&'a str>,
    },
    /// `DELETE /Contacts/roles?ids=…`, up to 100 role IDs; the answer is
    /// under `contact_roles`, not `data`.
    DeleteContactRoles { ids: Vec<&'a str> },
    /// `DELETE /{module}/{record_id}/photo`: one record; the answer is a bare object.
    DeletePhoto { module: &'a str, record_id: &'a str },
    /// `POST /settings/recycle_bin/actions/restore {"ids":[…]}`, up to 100
    /// IDs back out of the recycle bin; the answer is under `recycle_bin`.
    Restore { ids: Vec<&'a str> },
}

impl Call<'_> {
    /// The `operation` label of this call's metrics.
    pub fn operation(&self) -> &'static str {
        match self {
            Call::DeleteRecords { .. } => "delete",
            Call::MassDeleteIds { .. } => "mass_delete_ids",
            Call::Delink { .. } => "delink",
            Call::DeleteContactRoles { .. } => "contact_roles",
            Call::DeletePhoto { .. } => "photo",
            Call::Restore { .. } => "restore",
        }
    }

    /// The IDs this call names (the ones Zoho answers for).
    pub fn ids(&self) -> &[&str] {
        match self {
            Call::DeleteRecords { ids, .. }
            | Call::MassDeleteIds { ids, .. }
            | Call::Delink { ids, .. }
            | Call::DeleteContactRoles { ids }
            | Call::Restore { ids } => ids,
            Call::DeletePhoto { record_id, .. } => std::slice::from_ref(record_id),
        }
    }

    /// Method, path and every ID, as a dry run prints them.
    pub fn describe(&self) -> String {
        let n = self.ids().len();
        let ids = self.ids().join(",");
        match self {
            Call::DeleteRecords {
                module, wf_trigger, ..
            } => format!("DELETE /{module}?ids={ids}&wf_trigger={wf_trigger} ({n} IDs)"),
            Call::MassDeleteIds { module, .. } => {
                format!("POST /{module}/actions/mass_delete ids=[{ids}] ({n} IDs)")
            }
            Call::Delink {
                module,
                record_id,
                related_list,
                ..
            } => format!("DELETE /{module}/{record_id}/{related_list}?ids={ids} ({n} IDs)"),
            Call::DeleteContactRoles { .. } => {
                format!("DELETE /Contacts/roles?ids={ids} ({n} IDs)")
            }
            Call::DeletePhoto { module, record_id } => {
                format!("DELETE /{module}/{record_id}/photo")
            }
            Call::Restore { .. } => {
                format!("POST /settings/recycle_bin/actions/restore ids=[{ids}] ({n} IDs)")
            }
        }
    }

    /// The HTTP request, given the `/crm/{version}` base URL.
    pub(super) fn request(
        &self,
        http: &reqwest::Client,
        base: &url::Url,
    ) -> reqwest::RequestBuilder {
        // The `ids` query parameter, for the calls that take one.
        let ids = || self.ids().join(",");
        match self {
            Call::DeleteRecords {
                module, wf_trigger, ..
            } => http.delete(with_segments(base, &[module])).query(&[
                ("ids", ids().as_str()),
                ("wf_trigger", bool_text(*wf_trigger)),
            ]),
            Call::MassDeleteIds { module, ids } => http
                .post(with_segments(base, &[module, "actions", "mass_delete"]))
                .json(&serde_json::json!({ "ids": ids })),
            Call::Delink {
                module,
                record_id,
                related_list,
                ..
            } => http
                .delete(with_segments(base, &[module, record_id, related_list]))
                .query(&[("ids", ids().as_str())]),
            Call::DeleteContactRoles { .. } => http
                .delete(with_segments(base, &["Contacts", "roles"]))
                .query(&[("ids", ids().as_str())]),
            Call::DeletePhoto { module, record_id } => {
                http.delete(with_segments(base, &[module, record_id, "photo"]))
            }
            Call::Restore { ids } => http
                .post(with_segments(
                    base,
                    &["settings", "recycle_bin", "actions", "restore"],
                ))
                .json(&serde_json::json!({ "ids": ids })),
        }
    }
}

fn bool_text(b: bool) -> &'static str {
    if b { "true" } else { "false" }
}

/// `base` with `segments` appended, each percent-encoded as one path segment.
pub(super) fn with_segments(base: &url::Url, segments: &[&str]) -> url::Url {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.extend(segments);
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_sent_is_the_call_described() {
        let base = url::Url::parse("https://zoho.example/crm/v8").unwrap();
        let http = reqwest::Client::new();
        let call = Call::DeleteRecords {
            module: "Leads",
            ids: vec!["1", "2"],
            wf_trigger: false,
        };
        let sent = call.request(&http, &base).build().unwrap();
        assert_eq!(sent.method(), reqwest::Method::DELETE);
        assert_eq!(
            sent.url().as_str(),
            "https://zoho.example/crm/v8/Leads?ids=1%2C2&wf_trigger=false"
        );
        assert_eq!(
            call.describe(),
            "DELETE /Leads?ids=1,2&wf_trigger=false (2 IDs)"
        );
        let delink = Call::Delink {
            module: "Contacts",
            record_id: "9",
            related_list: "Campaigns",
            ids: vec!["3"],
        };
        let sent = delink.request(&http, &base).build().unwrap();
        assert_eq!(
            sent.url().as_str(),
            "https://zoho.example/crm/v8/Contacts/9/Campaigns?ids=3"
        );
        assert_eq!(
            delink.describe(),
            "DELETE /Contacts/9/Campaigns?ids=3 (1 IDs)"
        );
        let photo = Call::DeletePhoto {
            module: "Leads",
            record_id: "5",
        };
        assert_eq!(
            photo.request(&http, &base).build().unwrap().url().path(),
            "/crm/v8/Leads/5/photo"
        );
        assert_eq!(photo.ids(), ["5"]);
    }
}

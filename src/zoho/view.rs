//! Get Records of a custom view (`GET /{module}?cvid=…&fields=id`), for
//! `zdel select --cvid`: pages of 200; pages 1–10 by number, then by the
//! `info.next_page_token` Zoho sends (valid 24 hours), up to 100,000
//! records a view. 3 credits a call (the client counts them).

use serde_json::Value;

use super::{CallSlot, ZohoClient, ZohoError, answer};

/// Records a Get Records page holds at most.
pub const VIEW_PAGE: u32 = 200;
/// Pages Zoho serves by number; past them, by token.
const NUMBERED_PAGES: u32 = 10;
/// Credits a Get Records call costs.
pub const VIEW_PAGE_CREDITS: u64 = 3;

/// Where the next page of a view starts: a page number (1–10) or a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ViewCursor {
    Page(u32),
    Token(String),
}

impl ViewCursor {
    /// As stored in `selections.cursor`: `page:N` or `token:T`.
    pub fn to_text(&self) -> String {
        match self {
            ViewCursor::Page(n) => format!("page:{n}"),
            ViewCursor::Token(t) => format!("token:{t}"),
        }
    }

    pub fn from_text(text: &str) -> Option<ViewCursor> {
        if let Some(n) = text.strip_prefix("page:") {
            return n.parse().ok().map(ViewCursor::Page);
        }
        text.strip_prefix("token:")
            .map(|t| ViewCursor::Token(t.to_string()))
    }
}

/// One page of a view: its IDs, and where the next starts (`None`: last page).
#[derive(Debug, Clone, Default)]
pub struct ViewPage {
    pub ids: Vec<String>,
    pub next: Option<ViewCursor>,
}

impl ZohoClient {
    /// The page of view `cvid` of `module` at `cursor`.
    pub async fn view_page(
        &self,
        _slot: &CallSlot,
        module: &str,
        cvid: &str,
        cursor: &ViewCursor,
    ) -> Result<ViewPage, ZohoError> {
        let per_page = VIEW_PAGE.to_string();
        let (status, answer) = self
            .call("view_page", |base| {
                let request = self
                    .http
                    .get(super::call::with_segments(base, &[module]))
                    .query(&[("cvid", cvid), ("fields", "id"), ("per_page", &per_page)]);
                match cursor {
                    ViewCursor::Page(n) => request.query(&[("page", n.to_string())]),
                    ViewCursor::Token(t) => request.query(&[("page_token", t.as_str())]),
                }
            })
            .await?;
        if status < 400 {
            self.credits
                .spent
                .fetch_add(VIEW_PAGE_CREDITS - 1, std::sync::atomic::Ordering::Relaxed);
        }
        read_page(status, &answer, cursor)
    }
}

fn read_page(status: u16, answer: &Value, cursor: &ViewCursor) -> Result<ViewPage, ZohoError> {
    if status == 204 {
        return Ok(ViewPage::default());
    }
    let data = match answer.get("data").and_then(Value::as_array) {
        Some(data) if status == 200 => data,
        _ => return Err(answer::whole_call_error(status, answer)),
    };
    let mut page = ViewPage::default();
    for row in data {
        match row.get("id") {
            Some(Value::String(id)) if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) => {
                page.ids.push(id.clone())
            }
            _ => {
                return Err(ZohoError::Transient {
                    code: "UNREADABLE_ANSWER".into(),
                    message:
                        "Zoho answered a view's page with a record zdel cannot read (no string id)"
                            .into(),
                    http_status: Some(status),
                    ambiguous: false,
                });
            }
        }
    }
    let more = answer
        .pointer("/info/more_records")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let token = answer
        .pointer("/info/next_page_token")
        .and_then(Value::as_str)
        .map(str::to_string);
    page.next = match (more, cursor, token) {
        (false, _, _) => None,
        (true, ViewCursor::Page(n), _) if *n < NUMBERED_PAGES => Some(ViewCursor::Page(n + 1)),
        (true, _, Some(token)) => Some(ViewCursor::Token(token)),
        (true, _, None) => {
            return Err(ZohoError::Transient {
                code: "UNREADABLE_ANSWER".into(),
                message: "Zoho said a view has more records but sent no next_page_token".into(),
                http_status: Some(status),
                ambiguous: false,
            });
        }
    };
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pages_go_by_number_then_by_token() {
        let answer =
            json!({"data": [{"id": "1"}], "info": {"more_records": true, "next_page_token": "t"}});
        let at = |c: ViewCursor| read_page(200, &answer, &c).unwrap().next;
        assert_eq!(at(ViewCursor::Page(1)), Some(ViewCursor::Page(2)));
        assert_eq!(
            at(ViewCursor::Page(10)),
            Some(ViewCursor::Token("t".into()))
        );
        assert_eq!(
            at(ViewCursor::Token("s".into())),
            Some(ViewCursor::Token("t".into()))
        );
        let last = json!({"data": [{"id": "1"}], "info": {"more_records": false}});
        assert_eq!(
            read_page(200, &last, &ViewCursor::Page(3)).unwrap().next,
            None
        );
        for c in [ViewCursor::Page(4), ViewCursor::Token("a:b".into())] {
            assert_eq!(ViewCursor::from_text(&c.to_text()), Some(c));
        }
    }
}

//! The operator's console: the status document ([`crate::status_model`])
//! as a page of plain tables, server-rendered (readable without
//! JavaScript), refreshed by the browser every few seconds. Every value
//! from the database or from Zoho is HTML-escaped; the page loads nothing
//! from elsewhere (its one stylesheet is compiled in) and is served under a
//! strict Content-Security-Policy.

use serde_json::Value;

/// The stylesheet, compiled into the binary.
pub const CSS: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}\
h1{font-size:1.3em}h2{font-size:1.05em;margin-top:1.6em}\
table{border-collapse:collapse;margin:.4em 0}td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}\
th{background:#f3f3f3}td.n{text-align:right;font-variant-numeric:tabular-nums}.muted{color:#777}";

/// The Content-Security-Policy of the page and the API: nothing but our
/// own stylesheet, no scripts, no frames, no forms.
pub const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// `text` safe inside HTML text and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "<td class=\"muted\">-</td>".into(),
        Value::Number(n) => format!("<td class=\"n\">{n}</td>"),
        Value::String(s) => format!("<td>{}</td>", escape(s)),
        other => format!("<td>{}</td>", escape(&other.to_string())),
    }
}

/// A table of `rows` (objects) by `columns` (key, heading).
fn table(rows: &Value, columns: &[(&str, &str)]) -> String {
    let rows = rows.as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        return "<p class=\"muted\">none</p>".into();
    }
    let mut html = String::from("<table><tr>");
    for (_, heading) in columns {
        html.push_str(&format!("<th>{}</th>", escape(heading)));
    }
    html.push_str("</tr>");
    for row in rows {
        html.push_str("<tr>");
        for (key, _) in columns {
            html.push_str(&cell(row.get(*key).unwrap_or(&Value::Null)));
        }
        html.push_str("</tr>");
    }
    html.push_str("</table>");
    html
}

/// The page for a status document.
pub fn page(status: &Value, refresh_s: u32) -> String {
    let credits = &status["credits"];
    let stopped: Vec<String> = status["claiming_stopped"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).map(escape).collect())
        .unwrap_or_default();
    let holder = match status["holder"].as_object() {
        Some(h) => format!(
            "zdel {} on {} (pid {})",
            escape(h.get("command").and_then(Value::as_str).unwrap_or("")),
            escape(h.get("host").and_then(Value::as_str).unwrap_or("")),
            h.get("pid").map(Value::to_string).unwrap_or_default()
        ),
        None => "no zdel is working on this database".into(),
    };
    let mut html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{refresh_s}\">\
         <title>zdel</title><link rel=\"stylesheet\" href=\"/console.css\"></head><body>\
         <h1>zdel</h1><p>{holder}</p>"
    );
    html.push_str("<h2>Requests</h2>");
    html.push_str(&table(
        &status["counts"],
        &[
            ("module", "module"),
            ("operation", "operation"),
            ("state", "state"),
            ("count", "rows"),
        ],
    ));
    html.push_str("<h2>Throughput (last minutes)</h2>");
    html.push_str(&table(
        &status["rates"],
        &[
            ("module", "module"),
            ("operation", "operation"),
            ("finished", "finished"),
        ],
    ));
    html.push_str("<h2>Credits</h2><table>");
    for (key, label) in [
        ("spent_24h", "spent in 24 h"),
        ("remaining", "Zoho's last remaining figure"),
        ("max_credits_per_day", "zdel's daily cap (0: none)"),
    ] {
        html.push_str(&format!("<tr><th>{label}</th>{}</tr>", cell(&credits[key])));
    }
    html.push_str("</table>");
    if !stopped.is_empty() {
        html.push_str(&format!(
            "<p><strong>claiming stopped:</strong> {}</p>",
            stopped.join("; ")
        ));
    }
    html.push_str("<h2>Pauses</h2>");
    html.push_str(&table(
        &status["pauses"],
        &[("scope", "scope"), ("code", "code"), ("message", "message")],
    ));
    html.push_str("<h2>Selections</h2>");
    html.push_str(&table(
        &status["selections"],
        &[
            ("id", "id"),
            ("module", "module"),
            ("operation", "operation"),
            ("method", "method"),
            ("how", "how"),
            ("state", "state"),
            ("ids_found", "found"),
            ("ids_queued", "queued"),
            ("os_user", "by"),
            ("source", "source"),
        ],
    ));
    html.push_str("<h2>Recycle-bin checks</h2>");
    html.push_str(&table(
        &status["verifications"],
        &[
            ("scope", "scope"),
            ("checked", "checked"),
            ("verified", "in the bin"),
            ("not_in_bin", "not there"),
        ],
    ));
    html.push_str("<h2>Recent errors</h2>");
    html.push_str(&table(
        &status["recent_errors"],
        &[
            ("module", "module"),
            ("record_id", "record"),
            ("state", "state"),
            ("code", "code"),
            ("message", "message"),
            ("attempts", "attempts"),
        ],
    ));
    html.push_str(&format!(
        "<p class=\"muted\">refreshes every {refresh_s} s · the same figures: <a href=\"/api/status\">/api/status</a></p></body></html>"
    ));
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zoho_s_messages_are_text_not_markup() {
        let status = serde_json::json!({"recent_errors": [
            {"module": "Leads", "record_id": "1", "state": "failed", "code": "X",
             "message": "<script>alert('x')</script> & more", "attempts": 1}]});
        let html = page(&status, 5);
        assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; more"));
        assert!(!html.contains("<script>"));
    }
}

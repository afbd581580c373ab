//! The sandbox's COQL: queries answered over the records' fields, by the
//! grammar of [`crate::zoho::criteria`] (which documents the subset).

use std::cmp::Ordering;
use std::collections::HashMap;

pub use crate::zoho::criteria::{CoqlError, Expr, Op, Query, Value, parse};

/// The first field `expr` names that `known` does not hold (`id` always is).
pub fn unknown_field<'a>(expr: &'a Expr, known: &dyn Fn(&str) -> bool) -> Option<&'a str> {
    let check = |f: &'a String| (!f.eq_ignore_ascii_case("id") && !known(f)).then_some(f.as_str());
    match expr {
        Expr::And(a, b) | Expr::Or(a, b) => {
            unknown_field(a, known).or_else(|| unknown_field(b, known))
        }
        Expr::Compare(f, ..) | Expr::In(f, ..) | Expr::Like(f, ..) | Expr::IsNull(f, _) => check(f),
    }
}

/// The least id `expr` can match, when its top-level AND chain bounds it
/// (`id > N`, `id >= N`): where keyset paging resumes, so a page need not
/// look at the records before it.
pub fn id_floor(expr: &Expr) -> Option<u64> {
    match expr {
        Expr::And(a, b) => match (id_floor(a), id_floor(b)) {
            (Some(x), Some(y)) => Some(x.max(y)),
            (x, y) => x.or(y),
        },
        Expr::Compare(f, op @ (Op::Gt | Op::Ge), Value::Number(n) | Value::Text(n))
            if f.eq_ignore_ascii_case("id") =>
        {
            let n: u64 = n.parse().ok()?;
            Some(if *op == Op::Gt {
                n.saturating_add(1)
            } else {
                n
            })
        }
        _ => None,
    }
}

/// A record as COQL sees it: its id and fields.
pub struct Row<'a> {
    pub id: &'a str,
    pub fields: Option<&'a HashMap<String, String>>,
}

impl Row<'_> {
    fn get(&self, field: &str) -> Option<&str> {
        if field.eq_ignore_ascii_case("id") {
            return Some(self.id);
        }
        self.fields?.get(field).map(String::as_str)
    }
}

fn compare(have: &str, want: &Value) -> Option<Ordering> {
    let integers = |a: &str, b: &str| Some(a.parse::<i128>().ok()?.cmp(&b.parse::<i128>().ok()?));
    match want {
        Value::Number(n) => integers(have, n).or_else(|| {
            have.parse::<f64>()
                .ok()?
                .partial_cmp(&n.parse::<f64>().ok()?)
        }),
        Value::Text(t) => integers(have, t).or(Some(have.cmp(t.as_str()))),
    }
}

fn like(have: &str, pattern: &str) -> bool {
    let starts = pattern.starts_with('%');
    let ends = pattern.ends_with('%') && pattern.len() > 1;
    let core = pattern.trim_matches('%');
    let (have, core) = (have.to_lowercase(), core.to_lowercase());
    match (starts, ends) {
        (true, true) => have.contains(&core),
        (true, false) => have.ends_with(&core),
        (false, true) => have.starts_with(&core),
        (false, false) => have == core,
    }
}

/// Whether `row` matches `expr`.
pub fn matches(expr: &Expr, row: &Row) -> bool {
    match expr {
        Expr::And(a, b) => matches(a, row) && matches(b, row),
        Expr::Or(a, b) => matches(a, row) || matches(b, row),
        Expr::IsNull(f, not) => row.get(f).is_none_or(str::is_empty) != *not,
        Expr::Compare(f, op, v) => row
            .get(f)
            .and_then(|have| compare(have, v))
            .is_some_and(|o| match op {
                Op::Eq => o == Ordering::Equal,
                Op::Ne => o != Ordering::Equal,
                Op::Lt => o == Ordering::Less,
                Op::Le => o != Ordering::Greater,
                Op::Gt => o == Ordering::Greater,
                Op::Ge => o != Ordering::Less,
            }),
        Expr::In(f, not, values) => {
            let found = row.get(f).is_some_and(|have| {
                values
                    .iter()
                    .any(|v| compare(have, v) == Some(Ordering::Equal))
            });
            found != *not
        }
        Expr::Like(f, not, pattern) => row.get(f).is_some_and(|have| like(have, pattern)) != *not,
    }
}

/// API credits a query costs, by its LIMIT.
pub fn credits(limit: usize) -> u64 {
    match limit {
        0..=200 => 1,
        201..=1000 => 2,
        _ => 3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row<'a>(id: &'a str, fields: &'a HashMap<String, String>) -> Row<'a> {
        Row {
            id,
            fields: Some(fields),
        }
    }

    #[test]
    fn a_query_zdel_sends_parses_and_matches() {
        let q = parse(
            "select id from Leads where ((Lead_Status = 'Junk Lead') and (Created_Time < '2023-01-01T00:00:00+00:00')) and id > 3652397000000000010 order by id asc limit 2000",
        )
        .unwrap();
        assert_eq!(
            (q.module.as_str(), q.limit, q.offset, q.descending),
            ("Leads", 2000, 0, false)
        );
        let junk: HashMap<String, String> = [
            ("Lead_Status", "Junk Lead"),
            ("Created_Time", "2022-05-01T10:00:00+00:00"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert!(matches(&q.criteria, &row("3652397000000000011", &junk)));
        assert!(!matches(&q.criteria, &row("3652397000000000010", &junk)));
        let mut new = junk.clone();
        new.insert("Created_Time".into(), "2024-01-01T00:00:00+00:00".into());
        assert!(!matches(&q.criteria, &row("3652397000000000011", &new)));
    }

    #[test]
    fn operators_behave_as_documented() {
        let f: HashMap<String, String> = [("Email", "Ann@Example.com"), ("Score", "42")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let m = |criteria: &str| {
            let q = parse(&format!("select id from Leads where {criteria}")).unwrap();
            matches(&q.criteria, &row("1", &f))
        };
        assert!(m("Email like '%example.com'"));
        assert!(m("Email like 'ann%'"));
        assert!(m("Email not like '%zoho%'"));
        assert!(m("Score >= 42 and Score < 43"));
        assert!(m("Score in (1, 42, 7)"));
        assert!(m("Score not in (1, 7)"));
        assert!(m("Phone is null"));
        assert!(m("Email is not null"));
        assert!(m("(Score = 1 or Score = 42)"));
        assert!(!m("Score != 42"));
        assert!(m("id is not null"));
    }

    #[test]
    fn bad_queries_get_zoho_s_codes() {
        let code = |q: &str| parse(q).unwrap_err().code;
        assert_eq!(code("select id from Leads"), "SYNTAX_ERROR");
        assert_eq!(code("select id Leads where id is not null"), "SYNTAX_ERROR");
        assert_eq!(
            code("select id from Leads where Score === 1"),
            "SYNTAX_ERROR"
        );
        assert_eq!(
            code("select id from Leads where Name = 'open"),
            "SYNTAX_ERROR"
        );
        assert_eq!(
            code("select id from Leads where id is not null limit 2001"),
            "LIMIT_EXCEEDED"
        );
        assert_eq!(
            code("select id from Leads where id is not null limit 2000 offset 98001"),
            "LIMIT_EXCEEDED"
        );
        assert_eq!(
            code("select id from Leads where id is not null limit x"),
            "INVALID_QUERY"
        );
        let near = parse("select id from Leads where Score = 1 Score").unwrap_err();
        assert_eq!(near.details["near"], "Score");
        let q = parse("select id from Leads where id is not null limit 100, 2000").unwrap();
        assert_eq!((q.offset, q.limit), (100, 2000));
        let q = parse("select id from Leads where (A = 1 and id > 41) and id >= 7").unwrap();
        assert_eq!(id_floor(&q.criteria), Some(42));
        let q = parse("select id from Leads where A = 1 or id > 41").unwrap();
        assert_eq!(id_floor(&q.criteria), None);
        let q = parse("select id from Leads where Bogus = 1").unwrap();
        assert_eq!(unknown_field(&q.criteria, &|f| f == "Email"), Some("Bogus"));
    }
}

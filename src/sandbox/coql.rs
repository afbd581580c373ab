//! The sandbox's COQL: the subset `zdel select` uses, with Zoho's limits
//! and error shapes (`../shared/zoho-api.md`, "Selecting records").
//!
//! ```text
//! select FIELD[, FIELD…] from MODULE where CRITERIA
//!     [order by id [asc|desc]] [limit N [offset M] | limit M, N]
//! CRITERIA := TERM | TERM and CRITERIA | TERM or CRITERIA | ( CRITERIA )
//! TERM     := FIELD (= | != | < | <= | > | >=) VALUE
//!           | FIELD [not] in ( VALUE, … )      (at most 50 values)
//!           | FIELD [not] like 'TEXT%'          (% at either end: starts, ends, contains)
//!           | FIELD is [not] null
//! VALUE    := 'text' ('' for a quote) | a number
//! ```
//!
//! Keywords in any case. A WHERE clause is required; LIMIT is at most
//! 2,000 (default 200) and OFFSET + LIMIT at most 100,000; a field the
//! module's records do not have is `INVALID_QUERY` (`column_name`). `id`
//! compares as a number; other values as numbers when both sides are
//! numbers, else as text (ISO-8601 times in one offset sort as text).

use std::cmp::Ordering;
use std::collections::HashMap;

/// What a query asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub fields: Vec<String>,
    pub module: String,
    pub criteria: Expr,
    pub descending: bool,
    pub limit: usize,
    pub offset: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Compare(String, Op, Value),
    In(String, bool, Vec<Value>),
    Like(String, bool, String),
    IsNull(String, bool),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Text(String),
    /// As written: record IDs do not fit an f64.
    Number(String),
}

/// Zoho's answer to a query it refuses: HTTP 400 with this code and details.
#[derive(Debug, Clone, PartialEq)]
pub struct CoqlError {
    pub code: &'static str,
    pub message: String,
    pub details: serde_json::Value,
}

fn syntax(near: &str) -> CoqlError {
    CoqlError {
        code: "SYNTAX_ERROR",
        message: "error occured while parsing the query".into(),
        details: serde_json::json!({ "near": near }),
    }
}

const MAX_LIMIT: usize = 2_000;
const MAX_OFFSET_PLUS_LIMIT: usize = 100_000;
const MAX_IN_VALUES: usize = 50;

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Text(String),
    Number(String),
    Symbol(&'static str),
}

fn tokens(query: &str) -> Result<Vec<Token>, CoqlError> {
    let chars: Vec<char> = query.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' {
            let mut text = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(syntax(&text)),
                    Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                        text.push('\'');
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(ch) => {
                        text.push(*ch);
                        i += 1;
                    }
                }
            }
            out.push(Token::Text(text));
        } else if c.is_ascii_digit()
            || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            let start = i;
            i += 1;
            while chars
                .get(i)
                .is_some_and(|d| d.is_ascii_digit() || *d == '.')
            {
                i += 1;
            }
            let s: String = chars[start..i].iter().collect();
            if s.parse::<f64>().is_err() {
                return Err(syntax(&s));
            }
            out.push(Token::Number(s));
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while chars
                .get(i)
                .is_some_and(|d| d.is_alphanumeric() || *d == '_' || *d == '.')
            {
                i += 1;
            }
            out.push(Token::Word(chars[start..i].iter().collect()));
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            let symbol = ["!=", "<=", ">=", "<>"]
                .into_iter()
                .find(|s| *s == two)
                .or_else(|| {
                    ["=", "<", ">", "(", ")", ","]
                        .into_iter()
                        .find(|s| s.starts_with(c))
                });
            match symbol {
                Some(s) => {
                    i += s.len();
                    out.push(Token::Symbol(s));
                }
                None => return Err(syntax(&c.to_string())),
            }
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek_word(&self, word: &str) -> bool {
        matches!(self.tokens.get(self.at), Some(Token::Word(w)) if w.eq_ignore_ascii_case(word))
    }

    fn near(&self) -> String {
        match self.tokens.get(self.at) {
            Some(Token::Word(w)) => w.clone(),
            Some(Token::Text(t)) => format!("'{t}'"),
            Some(Token::Number(n)) => n.clone(),
            Some(Token::Symbol(s)) => s.to_string(),
            None => "end of query".into(),
        }
    }

    fn word(&mut self, word: &str) -> Result<(), CoqlError> {
        if self.peek_word(word) {
            self.at += 1;
            Ok(())
        } else {
            Err(syntax(&self.near()))
        }
    }

    fn symbol(&mut self, symbol: &str) -> Result<(), CoqlError> {
        match self.tokens.get(self.at) {
            Some(Token::Symbol(s)) if *s == symbol => {
                self.at += 1;
                Ok(())
            }
            _ => Err(syntax(&self.near())),
        }
    }

    fn name(&mut self) -> Result<String, CoqlError> {
        match self.tokens.get(self.at) {
            Some(Token::Word(w)) if !is_keyword(w) => {
                self.at += 1;
                Ok(w.clone())
            }
            _ => Err(syntax(&self.near())),
        }
    }

    fn value(&mut self) -> Result<Value, CoqlError> {
        let v = match self.tokens.get(self.at) {
            Some(Token::Text(t)) => Value::Text(t.clone()),
            Some(Token::Number(n)) => Value::Number(n.clone()),
            _ => return Err(syntax(&self.near())),
        };
        self.at += 1;
        Ok(v)
    }

    fn count(&mut self, what: &str) -> Result<usize, CoqlError> {
        match self.tokens.get(self.at) {
            Some(Token::Number(n)) if n.parse::<usize>().is_ok() => {
                let n = n.parse::<usize>().unwrap_or_default();
                self.at += 1;
                Ok(n)
            }
            _ => Err(CoqlError {
                code: "INVALID_QUERY",
                message: format!("{what} given seems to be invalid"),
                details: serde_json::json!({ what: self.near() }),
            }),
        }
    }

    fn criteria(&mut self) -> Result<Expr, CoqlError> {
        let left = self.term()?;
        if self.peek_word("and") {
            self.at += 1;
            return Ok(Expr::And(Box::new(left), Box::new(self.criteria()?)));
        }
        if self.peek_word("or") {
            self.at += 1;
            return Ok(Expr::Or(Box::new(left), Box::new(self.criteria()?)));
        }
        Ok(left)
    }

    fn term(&mut self) -> Result<Expr, CoqlError> {
        if matches!(self.tokens.get(self.at), Some(Token::Symbol("("))) {
            self.at += 1;
            let inner = self.criteria()?;
            self.symbol(")")?;
            return Ok(inner);
        }
        let field = self.name()?;
        let negated = self.peek_word("not");
        if negated {
            self.at += 1;
        }
        if self.peek_word("in") {
            self.at += 1;
            self.symbol("(")?;
            let mut values = vec![self.value()?];
            while matches!(self.tokens.get(self.at), Some(Token::Symbol(","))) {
                self.at += 1;
                values.push(self.value()?);
            }
            self.symbol(")")?;
            if values.len() > MAX_IN_VALUES {
                return Err(CoqlError {
                    code: "LIMIT_EXCEEDED",
                    message: format!("in takes at most {MAX_IN_VALUES} values"),
                    details: serde_json::json!({ "operator": "in", "limit": MAX_IN_VALUES }),
                });
            }
            return Ok(Expr::In(field, negated, values));
        }
        if self.peek_word("like") {
            self.at += 1;
            return match self.value()? {
                Value::Text(pattern) => Ok(Expr::Like(field, negated, pattern)),
                Value::Number(_) => Err(syntax("like")),
            };
        }
        if negated {
            return Err(syntax("not"));
        }
        if self.peek_word("is") {
            self.at += 1;
            let not = self.peek_word("not");
            if not {
                self.at += 1;
            }
            self.word("null")?;
            return Ok(Expr::IsNull(field, not));
        }
        let op = match self.tokens.get(self.at) {
            Some(Token::Symbol("=")) => Op::Eq,
            Some(Token::Symbol("!=")) | Some(Token::Symbol("<>")) => Op::Ne,
            Some(Token::Symbol("<")) => Op::Lt,
            Some(Token::Symbol("<=")) => Op::Le,
            Some(Token::Symbol(">")) => Op::Gt,
            Some(Token::Symbol(">=")) => Op::Ge,
            _ => return Err(syntax(&self.near())),
        };
        self.at += 1;
        Ok(Expr::Compare(field, op, self.value()?))
    }
}

fn is_keyword(w: &str) -> bool {
    [
        "select", "from", "where", "and", "or", "not", "in", "like", "is", "null", "order", "by",
        "asc", "desc", "limit", "offset",
    ]
    .iter()
    .any(|k| k.eq_ignore_ascii_case(w))
}

/// Parse a query, with Zoho's limits.
pub fn parse(query: &str) -> Result<Query, CoqlError> {
    let mut p = Parser {
        tokens: tokens(query)?,
        at: 0,
    };
    p.word("select")?;
    let mut fields = vec![p.name()?];
    while matches!(p.tokens.get(p.at), Some(Token::Symbol(","))) {
        p.at += 1;
        fields.push(p.name()?);
    }
    p.word("from")?;
    let module = p.name()?;
    if !p.peek_word("where") {
        return Err(CoqlError {
            code: "SYNTAX_ERROR",
            message: "where clause is mandatory".into(),
            details: serde_json::json!({ "clause": "where" }),
        });
    }
    p.at += 1;
    let criteria = p.criteria()?;
    let mut descending = false;
    if p.peek_word("order") {
        p.at += 1;
        p.word("by")?;
        let field = p.name()?;
        if !field.eq_ignore_ascii_case("id") {
            return Err(CoqlError {
                code: "INVALID_QUERY",
                message: "the sandbox orders by id only".into(),
                details: serde_json::json!({ "column_name": field }),
            });
        }
        if p.peek_word("desc") {
            descending = true;
            p.at += 1;
        } else if p.peek_word("asc") {
            p.at += 1;
        }
    }
    let (mut limit, mut offset) = (200, 0);
    if p.peek_word("limit") {
        p.at += 1;
        limit = p.count("limit")?;
        if matches!(p.tokens.get(p.at), Some(Token::Symbol(","))) {
            p.at += 1;
            offset = limit;
            limit = p.count("limit")?;
        } else if p.peek_word("offset") {
            p.at += 1;
            offset = p.count("offset")?;
        }
    }
    if p.at < p.tokens.len() {
        return Err(syntax(&p.near()));
    }
    if limit == 0 || limit > MAX_LIMIT {
        return Err(CoqlError {
            code: "LIMIT_EXCEEDED",
            message: format!("limit must be 1 to {MAX_LIMIT}"),
            details: serde_json::json!({ "limit": MAX_LIMIT }),
        });
    }
    if offset + limit > MAX_OFFSET_PLUS_LIMIT {
        return Err(CoqlError {
            code: "LIMIT_EXCEEDED",
            message: format!(
                "at most {MAX_OFFSET_PLUS_LIMIT} records can be fetched through offset"
            ),
            details: serde_json::json!({ "offset": MAX_OFFSET_PLUS_LIMIT }),
        });
    }
    Ok(Query {
        fields,
        module,
        criteria,
        descending,
        limit,
        offset,
    })
}

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

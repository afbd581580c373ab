//! COQL's grammar, the subset `zdel select` uses, with Zoho's limits and
//! error shapes (`../shared/zoho-api.md`, "Selecting records"): the
//! client reads a `--where` into an [`Expr`] to say it in Bulk Read's and
//! Record Count's own criteria syntax; the sandbox answers queries by it.
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

pub(crate) fn syntax(near: &str) -> CoqlError {
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

/// Read `text` as COQL criteria (what follows WHERE).
pub fn parse_criteria(text: &str) -> Result<Expr, CoqlError> {
    let mut p = Parser {
        tokens: tokens(text)?,
        at: 0,
    };
    let criteria = p.criteria()?;
    if p.at < p.tokens.len() {
        return Err(syntax(&p.near()));
    }
    Ok(criteria)
}

/// Criteria COQL can say and another API of Zoho's cannot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{api} has no way to say {what}")]
pub struct Untranslatable {
    pub api: &'static str,
    pub what: String,
}

impl Value {
    fn text(&self) -> &str {
        match self {
            Value::Text(t) | Value::Number(t) => t,
        }
    }
}

/// Zoho's word for an empty value in Bulk Read and search criteria.
const EMPTY: &str = "${EMPTY}";

/// A LIKE pattern as a comparator: `x%` starts, `%x` ends, `%x%` contains.
fn like_comparator(pattern: &str) -> (&'static str, &str) {
    let starts = pattern.starts_with('%');
    let ends = pattern.len() > 1 && pattern.ends_with('%');
    let core = pattern.trim_matches('%');
    match (starts, ends) {
        (true, true) => ("contains", core),
        (true, false) => ("ends_with", core),
        (false, true) => ("starts_with", core),
        (false, false) => ("equal", core),
    }
}

/// Whether `expr` is `id is not null`: every record (COQL needs a WHERE;
/// Bulk Read and Record Count take none).
pub fn selects_everything(expr: &Expr) -> bool {
    matches!(expr, Expr::IsNull(f, true) if f.eq_ignore_ascii_case("id"))
}

/// `expr` as Bulk Read's `query.criteria` JSON: a condition is
/// `{"field":{"api_name"},"comparator","value"}`, and/or chains become one
/// `{"group_operator","group":[…]}`.
pub fn bulk_criteria(expr: &Expr) -> Result<serde_json::Value, Untranslatable> {
    use serde_json::json;
    let condition = |field: &str, comparator: &str, value: serde_json::Value| json!({"field": {"api_name": field}, "comparator": comparator, "value": value});
    Ok(match expr {
        Expr::And(..) | Expr::Or(..) => {
            let and = matches!(expr, Expr::And(..));
            let mut group = Vec::new();
            let mut at = expr;
            loop {
                match (at, and) {
                    (Expr::And(a, b), true) | (Expr::Or(a, b), false) => {
                        group.push(bulk_criteria(a)?);
                        at = b;
                    }
                    (last, _) => {
                        group.push(bulk_criteria(last)?);
                        break;
                    }
                }
            }
            json!({"group_operator": if and { "and" } else { "or" }, "group": group})
        }
        Expr::Compare(f, op, v) => {
            let comparator = match op {
                Op::Eq => "equal",
                Op::Ne => "not_equal",
                Op::Lt => "less_than",
                Op::Le => "less_equal",
                Op::Gt => "greater_than",
                Op::Ge => "greater_equal",
            };
            condition(f, comparator, json!(v.text()))
        }
        Expr::In(f, not, values) => condition(
            f,
            if *not { "not_in" } else { "in" },
            json!(values.iter().map(Value::text).collect::<Vec<_>>()),
        ),
        Expr::Like(f, false, pattern) => {
            let (comparator, core) = like_comparator(pattern);
            condition(f, comparator, json!(core))
        }
        Expr::Like(f, true, pattern) => match like_comparator(pattern) {
            ("contains", core) => condition(f, "not_contains", json!(core)),
            ("equal", core) => condition(f, "not_equal", json!(core)),
            _ => {
                return Err(Untranslatable {
                    api: "Bulk Read",
                    what: format!("{f} not like '{pattern}' (only not like '%x%')"),
                });
            }
        },
        Expr::IsNull(f, not) => {
            condition(f, if *not { "not_equal" } else { "equal" }, json!(EMPTY))
        }
    })
}

/// `expr` in the search-criteria syntax Record Count takes:
/// `((Lead_Status:equals:Junk Lead)and(Created_Time:less_than:2023-…))`.
/// Brackets, commas and backslashes in values are escaped with `\`.
pub fn search_criteria(expr: &Expr) -> Result<String, Untranslatable> {
    let escape = |v: &str| {
        v.chars()
            .flat_map(|c| match c {
                '(' | ')' | ',' | '\\' => vec!['\\', c],
                c => vec![c],
            })
            .collect::<String>()
    };
    let refuse = |what: String| Untranslatable {
        api: "Record Count",
        what,
    };
    Ok(match expr {
        Expr::And(a, b) => format!("({}and{})", search_criteria(a)?, search_criteria(b)?),
        Expr::Or(a, b) => format!("({}or{})", search_criteria(a)?, search_criteria(b)?),
        Expr::Compare(f, op, v) => {
            let operator = match op {
                Op::Eq => "equals",
                Op::Ne => "not_equal",
                Op::Lt => "less_than",
                Op::Le => "less_equal",
                Op::Gt => "greater_than",
                Op::Ge => "greater_equal",
            };
            format!("({f}:{operator}:{})", escape(v.text()))
        }
        Expr::In(f, not, values) => {
            let values: Vec<String> = values.iter().map(|v| escape(v.text())).collect();
            let operator = if *not { "not_in" } else { "in" };
            format!("({f}:{operator}:{})", values.join(","))
        }
        Expr::Like(f, false, pattern) => match like_comparator(pattern) {
            ("equal", core) => format!("({f}:equals:{})", escape(core)),
            ("starts_with", core) => format!("({f}:starts_with:{})", escape(core)),
            _ => return Err(refuse(format!("{f} like '{pattern}' (only like 'x%')"))),
        },
        Expr::Like(f, true, pattern) => {
            return Err(refuse(format!("{f} not like '{pattern}'")));
        }
        Expr::IsNull(f, not) => {
            let operator = if *not { "not_equal" } else { "equals" };
            format!("({f}:{operator}:{EMPTY})")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn criteria_are_said_in_bulk_read_s_and_record_count_s_syntax() {
        let e = parse_criteria(
            "Lead_Status = 'Junk Lead' and (Created_Time < '2023-01-01T00:00:00+00:00' or Email like '%@spam.io') and Score in (1, 2)",
        )
        .unwrap();
        assert_eq!(
            bulk_criteria(&e).unwrap(),
            json!({"group_operator": "and", "group": [
                {"field": {"api_name": "Lead_Status"}, "comparator": "equal", "value": "Junk Lead"},
                {"group_operator": "or", "group": [
                    {"field": {"api_name": "Created_Time"}, "comparator": "less_than", "value": "2023-01-01T00:00:00+00:00"},
                    {"field": {"api_name": "Email"}, "comparator": "ends_with", "value": "@spam.io"},
                ]},
                {"field": {"api_name": "Score"}, "comparator": "in", "value": ["1", "2"]},
            ]})
        );
        let err = search_criteria(&e).unwrap_err();
        assert_eq!(err.api, "Record Count");
        let e = parse_criteria("Lead_Status = 'Junk (old), x' and Email is null").unwrap();
        assert_eq!(
            search_criteria(&e).unwrap(),
            r"((Lead_Status:equals:Junk \(old\)\, x)and(Email:equals:${EMPTY}))"
        );
        assert!(selects_everything(
            &parse_criteria("id is not null").unwrap()
        ));
        assert!(parse_criteria("Email = 'a' Email").is_err());
        assert!(bulk_criteria(&parse_criteria("Email not like 'a%'").unwrap()).is_err());
    }
}

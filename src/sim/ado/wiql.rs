//! A WIQL lexer, parser and evaluator for the subset a sync needs (issue 2):
//! `SELECT [f], … FROM WorkItems [WHERE …] [ORDER BY f [ASC|DESC], …]` with AND/OR/NOT,
//! parentheses, `= <> > >= < <=`, `IN`, `NOT IN`, `UNDER`, `CONTAINS`, `@project`, `@today - N`.
//!
//! Date semantics follow FACTS §1: without `timePrecision=true` dates compare by day and a
//! literal carrying a (non-midnight) time is a 400.
use std::cmp::Ordering;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde_json::Value;

use super::process::{self, Kind};

/// A query error: the message the service puts in its 400 answer, and its exception type.
#[derive(Debug, Clone, PartialEq)]
pub struct WiqlError {
    pub type_key: &'static str,
    pub message: String,
}

fn syntax(message: impl Into<String>) -> WiqlError {
    WiqlError {
        type_key: "WorkItemTrackingQuerySyntaxException",
        message: message.into(),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Field(String),
    Word(String),
    Str(String),
    Num(f64),
    LParen,
    RParen,
    Comma,
    Op(&'static str),
    Plus,
    Minus,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    start: usize,
    end: usize,
}

fn lex(src: &str) -> Result<Vec<Token>, WiqlError> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let tok = match c {
            b'[' => {
                let close = src[i..].find(']').ok_or_else(|| {
                    syntax("Expecting ']'. The error is caused by «[».".to_string())
                })?;
                let name = src[i + 1..i + close].trim().to_string();
                i += close + 1;
                Tok::Field(name)
            }
            b'\'' | b'"' => {
                // Quotes are escaped by doubling them, as in SQL.
                let q = c;
                let mut s = String::new();
                i += 1;
                loop {
                    let Some(&d) = b.get(i) else {
                        return Err(syntax(format!(
                            "Expecting end of string. The error is caused by «{}».",
                            &src[start..]
                        )));
                    };
                    if d == q {
                        if b.get(i + 1) == Some(&q) {
                            s.push(q as char);
                            i += 2;
                            continue;
                        }
                        i += 1;
                        break;
                    }
                    let ch = src[i..].chars().next().unwrap_or('\0');
                    s.push(ch);
                    i += ch.len_utf8();
                }
                Tok::Str(s)
            }
            b'(' => {
                i += 1;
                Tok::LParen
            }
            b')' => {
                i += 1;
                Tok::RParen
            }
            b',' => {
                i += 1;
                Tok::Comma
            }
            b'+' => {
                i += 1;
                Tok::Plus
            }
            b'-' => {
                i += 1;
                Tok::Minus
            }
            b'=' => {
                i += 1;
                Tok::Op("=")
            }
            b'<' | b'>' | b'!' => {
                let two = src.get(i..i + 2).unwrap_or("");
                let op = match two {
                    "<>" => "<>",
                    "<=" => "<=",
                    ">=" => ">=",
                    "!=" => "<>",
                    _ if c == b'<' => "<",
                    _ if c == b'>' => ">",
                    _ => return Err(syntax("Unexpected character '!'.")),
                };
                i += if op.len() == 2 || two == "!=" { 2 } else { 1 };
                Tok::Op(op)
            }
            b'0'..=b'9' => {
                while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
                    i += 1;
                }
                let n = src[start..i]
                    .parse::<f64>()
                    .map_err(|_| syntax(format!("Invalid number «{}».", &src[start..i])))?;
                Tok::Num(n)
            }
            c if c.is_ascii_alphabetic() || c == b'@' || c == b'_' => {
                i += 1;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.' || b[i] == b'_')
                {
                    i += 1;
                }
                Tok::Word(src[start..i].to_string())
            }
            _ => {
                let ch = src[i..].chars().next().unwrap_or('?');
                return Err(syntax(format!(
                    "Unexpected character. The error is caused by «{ch}»."
                )));
            }
        };
        out.push(Token { tok, start, end: i });
    }
    Ok(out)
}

/// A field as the query names it, resolved to the simulator's field table.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldRef {
    pub reference: String,
    pub name: String,
    pub kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    In,
    NotIn,
    Under,
    NotUnder,
    Contains,
    NotContains,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Str(String),
    Num(f64),
    Project,
    /// `@Me`: the caller.
    Me,
    /// `@today` / `@StartOfDay` plus this many days.
    Today(i64),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Cond {
    pub field: FieldRef,
    pub op: Op,
    pub values: Vec<Literal>,
    /// The clause as written, quoted in error messages.
    pub text: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Cond(Cond),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub columns: Vec<FieldRef>,
    pub filter: Option<Expr>,
    /// Field and `descending`.
    pub order: Vec<(FieldRef, bool)>,
}

struct Parser<'a> {
    src: &'a str,
    custom: &'a [String],
    toks: Vec<Token>,
    pos: usize,
}

fn resolve_field(name: &str, custom: &[String]) -> Result<FieldRef, WiqlError> {
    if let Some(c) = custom.iter().find(|c| c.eq_ignore_ascii_case(name)) {
        return Ok(FieldRef {
            reference: c.clone(),
            name: c.clone(),
            kind: Kind::String,
        });
    }
    match process::field(name) {
        Some(f) => Ok(FieldRef {
            reference: f.reference.to_string(),
            name: f.name.to_string(),
            kind: f.kind,
        }),
        None => Err(WiqlError {
            type_key: "WorkItemTrackingQueryInvalidFieldException",
            message: format!(
                "TF51005: The query references a field that does not exist. The error is caused by «{name}»."
            ),
        }),
    }
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|t| &t.tok)
    }
    fn next(&mut self) -> Option<Token> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    fn near(&self) -> String {
        match self.toks.get(self.pos) {
            Some(t) => self.src[t.start..t.end].to_string(),
            None => "<end of query>".to_string(),
        }
    }
    fn unexpected(&self, expecting: &str) -> WiqlError {
        syntax(format!(
            "Expecting {expecting}. The error is caused by «{}».",
            self.near()
        ))
    }
    fn is_word(&self, w: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(x)) if x.eq_ignore_ascii_case(w))
    }
    fn is_word_at(&self, offset: usize, w: &str) -> bool {
        matches!(self.toks.get(self.pos + offset).map(|t| &t.tok), Some(Tok::Word(x)) if x.eq_ignore_ascii_case(w))
    }
    fn expect_word(&mut self, w: &str) -> Result<(), WiqlError> {
        if self.is_word(w) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.unexpected(&format!("'{}'", w.to_uppercase())))
        }
    }
    fn field(&mut self) -> Result<FieldRef, WiqlError> {
        match self.next().map(|t| t.tok) {
            Some(Tok::Field(name)) => resolve_field(&name, self.custom),
            Some(Tok::Word(name)) if !name.starts_with('@') => resolve_field(&name, self.custom),
            _ => {
                self.pos -= 1;
                Err(self.unexpected("field name"))
            }
        }
    }

    fn query(&mut self) -> Result<Query, WiqlError> {
        self.expect_word("select")?;
        let mut columns = vec![self.field()?];
        while self.peek() == Some(&Tok::Comma) {
            self.pos += 1;
            columns.push(self.field()?);
        }
        self.expect_word("from")?;
        match self.next().map(|t| t.tok) {
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("workitems") => {}
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("workitemlinks") => {
                return Err(syntax(
                    "The simulator supports flat queries FROM WorkItems only; FROM WorkItemLinks is not simulated.",
                ))
            }
            _ => {
                self.pos -= 1;
                return Err(self.unexpected("'WorkItems'"));
            }
        }
        let mut filter = None;
        if self.is_word("where") {
            self.pos += 1;
            filter = Some(self.or()?);
        }
        let mut order = Vec::new();
        if self.is_word("order") {
            self.pos += 1;
            self.expect_word("by")?;
            loop {
                let f = self.field()?;
                let mut desc = false;
                if self.is_word("asc") {
                    self.pos += 1;
                } else if self.is_word("desc") {
                    self.pos += 1;
                    desc = true;
                }
                order.push((f, desc));
                if self.peek() == Some(&Tok::Comma) {
                    self.pos += 1;
                } else {
                    break;
                }
            }
        }
        if self.pos < self.toks.len() {
            return Err(self.unexpected("end of query"));
        }
        Ok(Query {
            columns,
            filter,
            order,
        })
    }

    fn or(&mut self) -> Result<Expr, WiqlError> {
        let mut left = self.and()?;
        while self.is_word("or") {
            self.pos += 1;
            let right = self.and()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }
    fn and(&mut self) -> Result<Expr, WiqlError> {
        let mut left = self.unary()?;
        while self.is_word("and") {
            self.pos += 1;
            let right = self.unary()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }
    fn unary(&mut self) -> Result<Expr, WiqlError> {
        if self.is_word("not") {
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        if self.peek() == Some(&Tok::LParen) {
            self.pos += 1;
            let e = self.or()?;
            if self.peek() != Some(&Tok::RParen) {
                return Err(self.unexpected("')'"));
            }
            self.pos += 1;
            return Ok(e);
        }
        self.cond()
    }
    fn cond(&mut self) -> Result<Expr, WiqlError> {
        let start = self
            .toks
            .get(self.pos)
            .map(|t| t.start)
            .unwrap_or(self.src.len());
        let field = self.field()?;
        let op = match self.peek().cloned() {
            Some(Tok::Op(o)) => {
                self.pos += 1;
                match o {
                    "=" => Op::Eq,
                    "<>" => Op::Ne,
                    ">" => Op::Gt,
                    ">=" => Op::Ge,
                    "<" => Op::Lt,
                    _ => Op::Le,
                }
            }
            Some(Tok::Word(w)) => {
                let w = w.to_ascii_lowercase();
                self.pos += 1;
                match w.as_str() {
                    "in" => Op::In,
                    "under" => Op::Under,
                    "contains" => {
                        if self.is_word("words") {
                            self.pos += 1;
                        }
                        Op::Contains
                    }
                    "not" => {
                        let o = if self.is_word("in") {
                            Op::NotIn
                        } else if self.is_word("under") {
                            Op::NotUnder
                        } else if self.is_word("contains") {
                            if self.is_word_at(1, "words") {
                                self.pos += 1;
                            }
                            Op::NotContains
                        } else {
                            return Err(self.unexpected("IN, UNDER or CONTAINS"));
                        };
                        self.pos += 1;
                        o
                    }
                    _ => {
                        self.pos -= 1;
                        return Err(self.unexpected("comparison operator"));
                    }
                }
            }
            _ => return Err(self.unexpected("comparison operator")),
        };
        let values = if matches!(op, Op::In | Op::NotIn) {
            if self.peek() != Some(&Tok::LParen) {
                return Err(self.unexpected("'('"));
            }
            self.pos += 1;
            let mut v = vec![self.literal()?];
            while self.peek() == Some(&Tok::Comma) {
                self.pos += 1;
                v.push(self.literal()?);
            }
            if self.peek() != Some(&Tok::RParen) {
                return Err(self.unexpected("')'"));
            }
            self.pos += 1;
            v
        } else {
            vec![self.literal()?]
        };
        let end = self
            .toks
            .get(self.pos.saturating_sub(1))
            .map(|t| t.end)
            .unwrap_or(self.src.len());
        Ok(Expr::Cond(Cond {
            field,
            op,
            values,
            text: self.src[start..end].to_string(),
        }))
    }
    fn literal(&mut self) -> Result<Literal, WiqlError> {
        match self.next().map(|t| t.tok) {
            Some(Tok::Str(s)) => Ok(Literal::Str(s)),
            Some(Tok::Num(n)) => Ok(Literal::Num(n)),
            Some(Tok::Minus) => match self.next().map(|t| t.tok) {
                Some(Tok::Num(n)) => Ok(Literal::Num(-n)),
                _ => {
                    self.pos -= 1;
                    Err(self.unexpected("number"))
                }
            },
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("@project") => Ok(Literal::Project),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("@me") => Ok(Literal::Me),
            Some(Tok::Word(w))
                if w.eq_ignore_ascii_case("@today") || w.eq_ignore_ascii_case("@startofday") =>
            {
                let sign = match self.peek() {
                    Some(Tok::Plus) => 1,
                    Some(Tok::Minus) => -1,
                    _ => return Ok(Literal::Today(0)),
                };
                self.pos += 1;
                match self.next().map(|t| t.tok) {
                    Some(Tok::Num(n)) if n.fract() == 0.0 => Ok(Literal::Today(sign * n as i64)),
                    _ => {
                        self.pos -= 1;
                        Err(self.unexpected("a whole number of days"))
                    }
                }
            }
            Some(Tok::Word(w)) if w.starts_with('@') => Err(syntax(format!(
                "TF51011: The specified macro is not supported by the simulator. The error is caused by «{w}»."
            ))),
            _ => {
                self.pos = self.pos.saturating_sub(1);
                Err(self.unexpected("a value"))
            }
        }
    }
}

pub fn parse(src: &str) -> Result<Query, WiqlError> {
    parse_with(src, &[])
}

/// Parses with the project's custom fields (string-typed) known besides the process fields.
pub fn parse_with(src: &str, custom: &[String]) -> Result<Query, WiqlError> {
    let toks = lex(src)?;
    Parser {
        src,
        custom,
        toks,
        pos: 0,
    }
    .query()
}

/// What a query is evaluated against.
pub struct Ctx<'a> {
    pub project: &'a str,
    /// The caller as stored in identity fields (`Name <email>`), for `@Me`.
    pub me: &'a str,
    pub now_ms: i64,
    pub time_precision: bool,
}

/// A literal converted to the field's type once, before rows are scanned.
#[derive(Debug, Clone)]
enum Bound {
    Str(String),
    Num(f64),
    /// ms since epoch, or days since epoch under day precision.
    Date(i64),
}

#[derive(Debug, Clone)]
enum BExpr {
    And(Box<BExpr>, Box<BExpr>),
    Or(Box<BExpr>, Box<BExpr>),
    Not(Box<BExpr>),
    Cond {
        field: FieldRef,
        op: Op,
        values: Vec<Bound>,
    },
}

/// A query ready to run: literals bound and checked against the context.
pub struct Prepared {
    filter: Option<BExpr>,
    order: Vec<(FieldRef, bool)>,
    time_precision: bool,
    project: String,
}

const DAY_MS: i64 = 86_400_000;

/// Parses a WIQL date literal: ms since epoch and whether it carries a non-midnight time.
fn parse_date_literal(s: &str) -> Option<(i64, bool)> {
    let s = s.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        let ms = d.with_timezone(&Utc).timestamp_millis();
        return Some((ms, ms.rem_euclid(DAY_MS) != 0));
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%m/%d/%Y %H:%M:%S",
        "%m/%d/%Y %I:%M:%S %p",
    ] {
        if let Ok(d) = NaiveDateTime::parse_from_str(s, fmt) {
            let ms = d.and_utc().timestamp_millis();
            return Some((ms, ms.rem_euclid(DAY_MS) != 0));
        }
    }
    for fmt in ["%Y-%m-%d", "%m/%d/%Y"] {
        if let Ok(d) = NaiveDate::parse_from_str(s, fmt) {
            return Some((d.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis(), false));
        }
    }
    None
}

/// Parses a stored date value (RFC 3339) to ms.
pub fn date_ms_ref(v: &Value) -> Option<i64> {
    date_ms(v)
}

/// Parses a stored date value (RFC 3339) to ms.
pub fn date_ms(v: &Value) -> Option<i64> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|d| d.timestamp_millis())
}

impl Query {
    pub fn prepare(&self, ctx: &Ctx) -> Result<Prepared, WiqlError> {
        let filter = match &self.filter {
            Some(e) => Some(bind(e, ctx)?),
            None => None,
        };
        Ok(Prepared {
            filter,
            order: self.order.clone(),
            time_precision: ctx.time_precision,
            project: ctx.project.to_string(),
        })
    }
}

fn bind(e: &Expr, ctx: &Ctx) -> Result<BExpr, WiqlError> {
    Ok(match e {
        Expr::And(a, b) => BExpr::And(Box::new(bind(a, ctx)?), Box::new(bind(b, ctx)?)),
        Expr::Or(a, b) => BExpr::Or(Box::new(bind(a, ctx)?), Box::new(bind(b, ctx)?)),
        Expr::Not(a) => BExpr::Not(Box::new(bind(a, ctx)?)),
        Expr::Cond(c) => {
            let mut values = Vec::new();
            for lit in &c.values {
                values.push(bind_literal(c, lit, ctx)?);
            }
            BExpr::Cond {
                field: c.field.clone(),
                op: c.op,
                values,
            }
        }
    })
}

fn bad_value(c: &Cond) -> WiqlError {
    WiqlError {
        type_key: "WorkItemTrackingQueryInvalidValueException",
        message: format!(
            "TF51011: The value is not valid for the field «{}». The error is caused by «{}».",
            c.field.name, c.text
        ),
    }
}

fn bind_literal(c: &Cond, lit: &Literal, ctx: &Ctx) -> Result<Bound, WiqlError> {
    match c.field.kind {
        Kind::Date => {
            let ms = match lit {
                Literal::Today(days) => ctx.now_ms.div_euclid(DAY_MS) * DAY_MS + days * DAY_MS,
                Literal::Str(s) => {
                    let (ms, has_time) = parse_date_literal(s).ok_or_else(|| bad_value(c))?;
                    if has_time && !ctx.time_precision {
                        return Err(WiqlError {
                            type_key: "WorkItemTrackingQueryInvalidDateException",
                            message: format!(
                                "You cannot supply a time with the date when running a query using date precision. The error is caused by «{}».",
                                c.text
                            ),
                        });
                    }
                    ms
                }
                _ => return Err(bad_value(c)),
            };
            Ok(Bound::Date(if ctx.time_precision {
                ms
            } else {
                ms.div_euclid(DAY_MS)
            }))
        }
        Kind::Int | Kind::Double => match lit {
            Literal::Num(n) => Ok(Bound::Num(*n)),
            Literal::Str(s) => s.trim().parse().map(Bound::Num).map_err(|_| bad_value(c)),
            _ => Err(bad_value(c)),
        },
        _ => match lit {
            Literal::Str(s) => Ok(Bound::Str(s.to_lowercase())),
            Literal::Num(n) => Ok(Bound::Str(n.to_string())),
            Literal::Project => Ok(Bound::Str(ctx.project.to_lowercase())),
            Literal::Me => Ok(Bound::Str(ctx.me.to_lowercase())),
            Literal::Today(_) => Err(bad_value(c)),
        },
    }
}

/// A work item as the evaluator sees it.
pub trait Row {
    fn id(&self) -> i64;
    fn field(&self, reference: &str) -> Option<&Value>;
}

/// A field value converted for comparison.
#[derive(Debug, Clone, PartialEq, PartialOrd)]
enum Cmp {
    Null,
    Num(f64),
    Str(String),
}

impl Prepared {
    fn value(&self, row: &dyn Row, f: &FieldRef) -> Cmp {
        self.value_at(row, f, self.time_precision)
    }

    /// `precise`: dates at ms (ordering always is), else by day (WHERE without timePrecision).
    fn value_at(&self, row: &dyn Row, f: &FieldRef, precise: bool) -> Cmp {
        match f.reference.as_str() {
            "System.Id" => return Cmp::Num(row.id() as f64),
            "System.TeamProject" => return Cmp::Str(self.project.to_lowercase()),
            _ => {}
        }
        let Some(v) = row.field(&f.reference) else {
            return Cmp::Null;
        };
        match f.kind {
            Kind::Date => match date_ms(v) {
                Some(ms) if precise => Cmp::Num(ms as f64),
                Some(ms) => Cmp::Num(ms.div_euclid(DAY_MS) as f64),
                None => Cmp::Null,
            },
            Kind::Int | Kind::Double => v.as_f64().map(Cmp::Num).unwrap_or(Cmp::Null),
            _ => match v {
                Value::String(s) => Cmp::Str(s.to_lowercase()),
                Value::Bool(b) => Cmp::Str(b.to_string()),
                Value::Number(n) => Cmp::Str(n.to_string()),
                _ => Cmp::Null,
            },
        }
    }

    pub fn matches(&self, row: &dyn Row) -> bool {
        match &self.filter {
            None => true,
            Some(e) => self.eval(e, row),
        }
    }

    fn eval(&self, e: &BExpr, row: &dyn Row) -> bool {
        match e {
            BExpr::And(a, b) => self.eval(a, row) && self.eval(b, row),
            BExpr::Or(a, b) => self.eval(a, row) || self.eval(b, row),
            BExpr::Not(a) => !self.eval(a, row),
            BExpr::Cond { field, op, values } => {
                let v = self.value(row, field);
                let is_tags = field.reference == "System.Tags";
                let is_identity = field.kind == Kind::Identity;
                let eq = |b: &Bound| equals(&v, b, is_tags, is_identity);
                match op {
                    Op::Eq => values.iter().any(eq),
                    Op::Ne => !values.iter().any(eq),
                    Op::In => values.iter().any(eq),
                    Op::NotIn => !values.iter().any(eq),
                    Op::Gt | Op::Ge | Op::Lt | Op::Le => {
                        let Some(ord) = values.first().and_then(|b| compare(&v, b)) else {
                            return false;
                        };
                        match op {
                            Op::Gt => ord == Ordering::Greater,
                            Op::Ge => ord != Ordering::Less,
                            Op::Lt => ord == Ordering::Less,
                            _ => ord != Ordering::Greater,
                        }
                    }
                    Op::Under | Op::NotUnder => {
                        let under = match (&v, values.first()) {
                            (Cmp::Str(s), Some(Bound::Str(p))) => {
                                s == p
                                    || (s.starts_with(p.as_str()) && s[p.len()..].starts_with('\\'))
                            }
                            _ => false,
                        };
                        under == (*op == Op::Under)
                    }
                    Op::Contains | Op::NotContains => {
                        let contains = match (&v, values.first()) {
                            (Cmp::Str(s), Some(Bound::Str(p))) if is_tags => {
                                s.split(';').any(|t| t.trim() == p.trim())
                            }
                            (Cmp::Str(s), Some(Bound::Str(p))) => s.contains(p.as_str()),
                            _ => false,
                        };
                        contains == (*op == Op::Contains)
                    }
                }
            }
        }
    }

    /// Orders matching ids by the ORDER BY fields (nulls first ascending), then by id.
    pub fn sort<'r>(&self, rows: &mut [&'r dyn Row]) {
        if self.order.is_empty() {
            rows.sort_by_key(|r| r.id());
            return;
        }
        let mut keyed: Vec<(Vec<Cmp>, &'r dyn Row)> = rows
            .iter()
            .map(|r| {
                (
                    self.order
                        .iter()
                        .map(|(f, _)| self.value_at(*r, f, true))
                        .collect(),
                    *r,
                )
            })
            .collect();
        keyed.sort_by(|(ka, ra), (kb, rb)| {
            for (i, (_, desc)) in self.order.iter().enumerate() {
                let o = order_cmp(&ka[i], &kb[i]);
                let o = if *desc { o.reverse() } else { o };
                if o != Ordering::Equal {
                    return o;
                }
            }
            ra.id().cmp(&rb.id())
        });
        for (slot, (_, r)) in rows.iter_mut().zip(keyed) {
            *slot = r;
        }
    }
}

fn order_cmp(a: &Cmp, b: &Cmp) -> Ordering {
    match (a, b) {
        (Cmp::Null, Cmp::Null) => Ordering::Equal,
        (Cmp::Null, _) => Ordering::Less,
        (_, Cmp::Null) => Ordering::Greater,
        (Cmp::Num(x), Cmp::Num(y)) => x.partial_cmp(y).unwrap_or(Ordering::Equal),
        (Cmp::Str(x), Cmp::Str(y)) => x.cmp(y),
        (Cmp::Num(_), Cmp::Str(_)) => Ordering::Less,
        (Cmp::Str(_), Cmp::Num(_)) => Ordering::Greater,
    }
}

fn equals(v: &Cmp, b: &Bound, is_tags: bool, is_identity: bool) -> bool {
    match (v, b) {
        (Cmp::Null, Bound::Str(s)) => s.is_empty(),
        (Cmp::Num(x), Bound::Num(y)) => x == y,
        (Cmp::Num(x), Bound::Date(d)) => *x == *d as f64,
        (Cmp::Str(x), Bound::Str(y)) if is_tags => x == y,
        (Cmp::Str(x), Bound::Str(y)) if is_identity => {
            // Stored as "Name <email>": match either part or the whole.
            x == y || x.split(" <").next() == Some(y.as_str()) || x.ends_with(&format!("<{y}>"))
        }
        (Cmp::Str(x), Bound::Str(y)) => x == y,
        _ => false,
    }
}

fn compare(v: &Cmp, b: &Bound) -> Option<Ordering> {
    match (v, b) {
        (Cmp::Num(x), Bound::Num(y)) => x.partial_cmp(y),
        (Cmp::Num(x), Bound::Date(d)) => x.partial_cmp(&(*d as f64)),
        (Cmp::Str(x), Bound::Str(y)) => Some(x.as_str().cmp(y.as_str())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Map};

    struct R(i64, Map<String, Value>);
    impl Row for R {
        fn id(&self) -> i64 {
            self.0
        }
        fn field(&self, reference: &str) -> Option<&Value> {
            self.1.get(reference)
        }
    }
    fn row(id: i64, v: Value) -> R {
        R(id, v.as_object().cloned().unwrap())
    }
    fn ctx(tp: bool) -> Ctx<'static> {
        Ctx {
            project: "Fabrikam-Fiber",
            me: "Sync Bot <sync-bot@fabrikam.example>",
            now_ms: 1_780_000_000_000,
            time_precision: tp,
        }
    }

    #[test]
    fn parses_and_evaluates_boolean_structure() {
        let q = parse("SELECT [System.Id], [System.Title] FROM WorkItems WHERE ([System.State] = 'Active' OR [State] = 'New') AND NOT [System.Tags] CONTAINS 'skip' AND [System.WorkItemType] IN ('Bug', 'Task')").unwrap();
        assert_eq!(q.columns.len(), 2);
        let p = q.prepare(&ctx(false)).unwrap();
        assert!(p.matches(&row(
            1,
            json!({"System.State": "active", "System.WorkItemType": "Bug"})
        )));
        assert!(!p.matches(&row(2, json!({"System.State": "Active", "System.WorkItemType": "Bug", "System.Tags": "a; Skip"}))));
        assert!(!p.matches(&row(
            3,
            json!({"System.State": "Closed", "System.WorkItemType": "Bug"})
        )));
        assert!(!p.matches(&row(
            4,
            json!({"System.State": "New", "System.WorkItemType": "Epic"})
        )));
    }

    #[test]
    fn time_in_date_literal_needs_time_precision() {
        let q = parse("SELECT [System.Id] FROM WorkItems WHERE [System.ChangedDate] >= '2026-03-25T13:11:27Z'").unwrap();
        let e = q.prepare(&ctx(false)).err().unwrap();
        assert_eq!(e.message, "You cannot supply a time with the date when running a query using date precision. The error is caused by «[System.ChangedDate] >= '2026-03-25T13:11:27Z'».");
        let p = q.prepare(&ctx(true)).unwrap();
        assert!(p.matches(&row(
            1,
            json!({"System.ChangedDate": "2026-03-25T13:11:27.001Z"})
        )));
        assert!(!p.matches(&row(
            1,
            json!({"System.ChangedDate": "2026-03-25T13:11:26.999Z"})
        )));
    }

    #[test]
    fn day_precision_compares_by_day() {
        let q =
            parse("SELECT [System.Id] FROM WorkItems WHERE [System.ChangedDate] > '2026-03-25'")
                .unwrap();
        let p = q.prepare(&ctx(false)).unwrap();
        assert!(!p.matches(&row(
            1,
            json!({"System.ChangedDate": "2026-03-25T23:59:59Z"})
        )));
        assert!(p.matches(&row(
            1,
            json!({"System.ChangedDate": "2026-03-26T00:00:00Z"})
        )));
    }

    #[test]
    fn under_and_not_in_and_unknown_field() {
        let q = parse("select [system.id] from workitems where [System.AreaPath] under 'P\\Web' and [System.Id] not in (3, 4)").unwrap();
        let p = q.prepare(&ctx(false)).unwrap();
        assert!(p.matches(&row(1, json!({"System.AreaPath": "P\\Web\\UI"}))));
        assert!(p.matches(&row(1, json!({"System.AreaPath": "P\\Web"}))));
        assert!(!p.matches(&row(1, json!({"System.AreaPath": "P\\Website"}))));
        assert!(!p.matches(&row(3, json!({"System.AreaPath": "P\\Web"}))));
        let e = parse("SELECT [Foo.Bar] FROM WorkItems").err().unwrap();
        assert!(e.message.starts_with("TF51005"), "{}", e.message);
        assert!(parse("SELECT [System.Id] FROM WorkItems WHERE [System.Id] = ").is_err());
        assert!(parse("SELECT [System.Id] WHERE [System.Id] = 1").is_err());
    }

    #[test]
    fn today_macro_and_ordering() {
        let q = parse("SELECT [System.Id] FROM WorkItems WHERE [System.CreatedDate] >= @today - 1 ORDER BY [System.Title] DESC, [System.Id]").unwrap();
        let p = q.prepare(&ctx(false)).unwrap();
        let today = chrono::DateTime::from_timestamp_millis(1_780_000_000_000).unwrap();
        let y = (today - chrono::Duration::days(1)).to_rfc3339();
        let old = (today - chrono::Duration::days(2)).to_rfc3339();
        assert!(p.matches(&row(1, json!({"System.CreatedDate": y}))));
        assert!(!p.matches(&row(1, json!({"System.CreatedDate": old}))));
        let a = row(1, json!({"System.Title": "a"}));
        let b = row(2, json!({"System.Title": "b"}));
        let c = row(3, json!({"System.Title": "b"}));
        let mut rows: Vec<&dyn Row> = vec![&a, &c, &b];
        p.sort(&mut rows);
        assert_eq!(
            rows.iter().map(|r| r.id()).collect::<Vec<_>>(),
            vec![2, 3, 1]
        );
        // Ordering uses full precision even when WHERE compares by day.
        let q = parse("SELECT [System.Id] FROM WorkItems ORDER BY [System.ChangedDate]").unwrap();
        let p = q.prepare(&ctx(false)).unwrap();
        let late = row(1, json!({"System.ChangedDate": "2026-03-25T10:00:00Z"}));
        let early = row(2, json!({"System.ChangedDate": "2026-03-25T09:00:00Z"}));
        let mut rows: Vec<&dyn Row> = vec![&late, &early];
        p.sort(&mut rows);
        assert_eq!(rows.iter().map(|r| r.id()).collect::<Vec<_>>(), vec![2, 1]);
    }
}

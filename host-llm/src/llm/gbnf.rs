//! the draft schema as a GBNF grammar, for servers of the llama.cpp family
//! (llama.cpp's server, llama-cpp-python), which take a `grammar` field.
//!
//! why not their own json-schema converters: those allow a space at every
//! separator, so the same model under the same schema writes other tokens
//! than the local backend, whose grammar has no free whitespace, and plans
//! differently. this grammar admits exactly the compact json the local
//! grammar admits (`{"reason":"…","actions":[…]}`, keys in schema order, no
//! whitespace), so a remote server running the same gguf sees the same
//! choices the local backend does.
//!
//! only the schema forms [`super::schema::draft_schema`] produces are
//! translated; anything else is an error and the caller falls back to the
//! server's own converter.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Map, Value};

/// deepest `$ref` chain followed; the draft schema needs two.
const MAX_DEPTH: usize = 16;

/// a schema form this translator does not handle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported(pub String);

/// the GBNF grammar (root rule `root`) of `schema`.
pub fn grammar(schema: &Value) -> Result<String, Unsupported> {
    let mut g = Gen {
        defs: schema
            .get("definitions")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default(),
        rules: BTreeMap::new(),
        order: Vec::new(),
    };
    let root = g.visit(schema, "root", 0)?;
    g.put("root", root);
    let mut out = String::new();
    for name in &g.order {
        if let Some(body) = g.rules.get(name) {
            let _ = writeln!(out, "{name} ::= {body}");
        }
    }
    Ok(out)
}

struct Gen {
    defs: Map<String, Value>,
    rules: BTreeMap<String, String>,
    /// rule names in the order they were defined, root last.
    order: Vec<String>,
}

impl Gen {
    fn put(&mut self, name: &str, body: String) {
        if self.rules.insert(name.to_string(), body).is_none() {
            self.order.push(name.to_string());
        }
    }

    /// the expression for `s`; named rules go into `self.rules`.
    fn visit(&mut self, s: &Value, name: &str, depth: usize) -> Result<String, Unsupported> {
        if depth > MAX_DEPTH {
            return Err(Unsupported("the schema's references nest too deep".into()));
        }
        let obj = s
            .as_object()
            .ok_or_else(|| Unsupported(format!("`{name}` is not a schema object")))?;
        if let Some(r) = obj.get("$ref").and_then(Value::as_str) {
            let def = r
                .strip_prefix("#/definitions/")
                .ok_or_else(|| Unsupported(format!("reference `{r}`")))?;
            let rule = rule_name(def);
            if !self.rules.contains_key(&rule) {
                let target = self
                    .defs
                    .get(def)
                    .cloned()
                    .ok_or_else(|| Unsupported(format!("no definition `{def}`")))?;
                // reserve the name first: a recursive definition ends here
                self.rules.insert(rule.clone(), String::new());
                let body = self.visit(&target, &rule, depth + 1)?;
                self.rules.remove(&rule);
                self.put(&rule, body);
            }
            return Ok(rule);
        }
        if let Some(alts) = obj.get("anyOf").or_else(|| obj.get("oneOf")).and_then(Value::as_array) {
            let mut parts = Vec::new();
            for (i, a) in alts.iter().enumerate() {
                parts.push(self.visit(a, &format!("{name}-{i}"), depth + 1)?);
            }
            if parts.is_empty() {
                return Err(Unsupported(format!("`{name}` has no alternatives")));
            }
            return Ok(format!("( {} )", parts.join(" | ")));
        }
        if let Some(e) = obj.get("enum").and_then(Value::as_array) {
            let lits: Result<Vec<String>, Unsupported> = e.iter().map(literal).collect();
            let lits = lits?;
            if lits.is_empty() {
                return Err(Unsupported(format!("`{name}` has an empty enum")));
            }
            return Ok(format!("( {} )", lits.join(" | ")));
        }
        if let Some(c) = obj.get("const") {
            return literal(c);
        }
        match obj.get("type").and_then(Value::as_str) {
            Some("object") => self.object(obj, name, depth),
            Some("array") => {
                let items = obj
                    .get("items")
                    .ok_or_else(|| Unsupported(format!("array `{name}` without items")))?;
                let item = self.visit(items, &format!("{name}-item"), depth + 1)?;
                let min = obj.get("minItems").and_then(Value::as_u64).unwrap_or(0);
                let max = obj.get("maxItems").and_then(Value::as_u64);
                Ok(array(&item, min, max))
            }
            Some("string") => {
                if obj.contains_key("pattern") || obj.contains_key("format") {
                    return Err(Unsupported(format!("string `{name}` with a pattern or format")));
                }
                self.put("char", CHAR.to_string());
                let min = obj.get("minLength").and_then(Value::as_u64).unwrap_or(0);
                Ok(match obj.get("maxLength").and_then(Value::as_u64) {
                    Some(max) => format!("\"\\\"\" char{{{min},{max}}} \"\\\"\""),
                    None => format!("\"\\\"\" char{{{min},}} \"\\\"\""),
                })
            }
            Some("integer") => {
                let min = obj.get("minimum").and_then(Value::as_u64);
                let max = obj.get("maximum").and_then(Value::as_u64);
                match (min, max) {
                    (Some(lo), Some(hi)) if lo <= hi => Ok(int_range(lo, hi)),
                    _ => Err(Unsupported(format!("integer `{name}` without both bounds"))),
                }
            }
            Some("boolean") => Ok("( \"true\" | \"false\" )".into()),
            other => Err(Unsupported(format!("`{name}` of type {other:?}"))),
        }
    }

    /// `{"k":v,…}` with the properties in schema order; every property must
    /// be required (the draft's are), so there is one order and no commas
    /// to make optional.
    fn object(&mut self, obj: &Map<String, Value>, name: &str, depth: usize) -> Result<String, Unsupported> {
        let props = obj
            .get("properties")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let required: Vec<&str> = obj
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if obj.get("additionalProperties") != Some(&Value::Bool(false)) {
            return Err(Unsupported(format!("object `{name}` allows other properties")));
        }
        let mut fields = Vec::new();
        for (k, v) in &props {
            if !required.contains(&k.as_str()) {
                return Err(Unsupported(format!("optional property `{k}` of `{name}`")));
            }
            let value = self.visit(v, &format!("{name}-{}", rule_name(k)), depth + 1)?;
            fields.push(format!("{} \":\" {value}", literal(&Value::String(k.clone()))?));
        }
        Ok(format!("\"{{\" {} \"}}\"", fields.join(" \",\" ")))
    }
}

/// a json string character: anything but a quote, a backslash or a
/// control character, or an escape.
const CHAR: &str = r#"[^"\\\x7F\x00-\x1F] | "\\" ( ["\\/bfnrt] | "u" [0-9a-fA-F]{4} )"#;

/// a rule name GBNF takes: letters, digits and dashes.
fn rule_name(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
        .collect()
}

/// the GBNF literal of a json value written compactly.
fn literal(v: &Value) -> Result<String, Unsupported> {
    match v {
        Value::String(_) | Value::Number(_) | Value::Bool(_) | Value::Null => {
            let text = v.to_string();
            Ok(gbnf_string(&text))
        }
        _ => Err(Unsupported("a composite enum value".into())),
    }
}

/// `text` as a quoted GBNF terminal.
fn gbnf_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `[item,item,…]` with `min..=max` items.
fn array(item: &str, min: u64, max: Option<u64>) -> String {
    let rest = |lo: u64| match max {
        Some(hi) => format!("( \",\" {item} ){{{lo},{}}}", hi.saturating_sub(1)),
        None => format!("( \",\" {item} ){{{lo},}}"),
    };
    match (min, max) {
        (_, Some(0)) => "\"[\" \"]\"".into(),
        (0, _) => format!("\"[\" ( {item} {} )? \"]\"", rest(0)),
        (m, _) => format!("\"[\" {item} {} \"]\"", rest(m - 1)),
    }
}

/// the decimal integers `lo..=hi`, no leading zeros, as an alternation of
/// digit patterns (each a run of fixed digits, one digit class and a tail
/// of any digits).
pub fn int_range(lo: u64, hi: u64) -> String {
    let mut pats = Vec::new();
    let mut start = lo;
    // split at powers of ten so each piece has one digit count
    loop {
        let digits = start.to_string().len() as u32;
        let top = 10u64.checked_pow(digits).map_or(u64::MAX, |p| p - 1);
        let end = top.min(hi);
        same_len(&start.to_string(), &end.to_string(), &mut pats);
        if end >= hi {
            break;
        }
        start = end + 1;
    }
    format!("( {} )", pats.join(" | "))
}

/// patterns for `a..=b`, both with the same number of digits.
fn same_len(a: &str, b: &str, out: &mut Vec<String>) {
    let (ab, bb) = (a.as_bytes(), b.as_bytes());
    let n = ab.len();
    if n == 0 {
        return;
    }
    // the common prefix
    let p = ab.iter().zip(bb).take_while(|(x, y)| x == y).count();
    if p == n {
        out.push(gbnf_string(a));
        return;
    }
    let prefix = &a[..p];
    let (da, db) = (ab[p], bb[p]);
    let rest = n - p - 1;
    let lo_tail_min = ab[p + 1..].iter().all(|&c| c == b'0');
    let hi_tail_max = bb[p + 1..].iter().all(|&c| c == b'9');
    let piece = |d0: u8, d1: u8| -> String {
        let mut s = String::new();
        if !prefix.is_empty() {
            s.push_str(&gbnf_string(prefix));
            s.push(' ');
        }
        if d0 == d1 {
            s.push_str(&gbnf_string(&(d0 as char).to_string()));
        } else {
            s.push_str(&format!("[{}-{}]", d0 as char, d1 as char));
        }
        if rest > 0 {
            s.push_str(&format!(" [0-9]{{{rest}}}"));
        }
        s
    };
    if lo_tail_min && hi_tail_max {
        out.push(piece(da, db));
        return;
    }
    // lower edge: prefix da, then a..=da99…9
    let (mid_lo, mid_hi) = (
        if lo_tail_min { da } else { da + 1 },
        if hi_tail_max { db } else { db - 1 },
    );
    if !lo_tail_min {
        let nines: String = "9".repeat(rest);
        same_len(a, &format!("{prefix}{}{nines}", da as char), out);
    }
    if mid_lo <= mid_hi {
        out.push(piece(mid_lo, mid_hi));
    }
    if !hi_tail_max {
        let zeros: String = "0".repeat(rest);
        same_len(&format!("{prefix}{}{zeros}", db as char), b, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// a minimal GBNF matcher for the forms [`grammar`] writes: literals,
    /// classes, rule references, groups, alternation, `?` and `{m,n}`.
    /// enough to check the grammar's language against the schema's.
    mod matcher {
        use std::collections::BTreeMap;

        #[derive(Debug, Clone)]
        pub enum Node {
            Lit(Vec<char>),
            Class { neg: bool, items: Vec<(char, char)> },
            Rule(String),
            Seq(Vec<Node>),
            Alt(Vec<Node>),
            Rep(Box<Node>, usize, Option<usize>),
        }

        pub struct Grammar(pub BTreeMap<String, Node>);

        struct P<'a> {
            s: &'a [char],
            i: usize,
        }

        impl P<'_> {
            fn ws(&mut self) {
                while self.i < self.s.len() && self.s[self.i] == ' ' {
                    self.i += 1;
                }
            }
            fn peek(&self) -> Option<char> {
                self.s.get(self.i).copied()
            }
            fn esc(&mut self) -> char {
                let c = self.s[self.i];
                self.i += 1;
                if c != '\\' {
                    return c;
                }
                let e = self.s[self.i];
                self.i += 1;
                match e {
                    'n' => '\n',
                    'r' => '\r',
                    't' => '\t',
                    'x' => {
                        let h: String = self.s[self.i..self.i + 2].iter().collect();
                        self.i += 2;
                        char::from(u8::from_str_radix(&h, 16).expect("hex"))
                    }
                    c => c,
                }
            }
            fn alt(&mut self) -> Node {
                let mut alts = vec![self.seq()];
                loop {
                    self.ws();
                    if self.peek() == Some('|') {
                        self.i += 1;
                        alts.push(self.seq());
                    } else {
                        break;
                    }
                }
                if alts.len() == 1 {
                    alts.pop().expect("one")
                } else {
                    Node::Alt(alts)
                }
            }
            fn seq(&mut self) -> Node {
                let mut items = Vec::new();
                loop {
                    self.ws();
                    let Some(c) = self.peek() else { break };
                    let atom = match c {
                        '"' => {
                            self.i += 1;
                            let mut v = Vec::new();
                            while self.peek() != Some('"') {
                                v.push(self.esc());
                            }
                            self.i += 1;
                            Node::Lit(v)
                        }
                        '[' => {
                            self.i += 1;
                            let neg = self.peek() == Some('^');
                            if neg {
                                self.i += 1;
                            }
                            let mut items = Vec::new();
                            while self.peek() != Some(']') {
                                let a = self.esc();
                                if self.peek() == Some('-') && self.s.get(self.i + 1) != Some(&']') {
                                    self.i += 1;
                                    let b = self.esc();
                                    items.push((a, b));
                                } else {
                                    items.push((a, a));
                                }
                            }
                            self.i += 1;
                            Node::Class { neg, items }
                        }
                        '(' => {
                            self.i += 1;
                            let n = self.alt();
                            self.ws();
                            assert_eq!(self.peek(), Some(')'));
                            self.i += 1;
                            n
                        }
                        c if c.is_ascii_alphanumeric() || c == '-' => {
                            let st = self.i;
                            while self.peek().is_some_and(|c| c.is_ascii_alphanumeric() || c == '-') {
                                self.i += 1;
                            }
                            Node::Rule(self.s[st..self.i].iter().collect())
                        }
                        _ => break,
                    };
                    let atom = match self.peek() {
                        Some('?') => {
                            self.i += 1;
                            Node::Rep(Box::new(atom), 0, Some(1))
                        }
                        Some('{') => {
                            self.i += 1;
                            let st = self.i;
                            while self.peek() != Some('}') {
                                self.i += 1;
                            }
                            let body: String = self.s[st..self.i].iter().collect();
                            self.i += 1;
                            let (m, n) = match body.split_once(',') {
                                Some((m, "")) => (m.parse().expect("m"), None),
                                Some((m, n)) => (m.parse().expect("m"), Some(n.parse().expect("n"))),
                                None => {
                                    let m = body.parse().expect("m");
                                    (m, Some(m))
                                }
                            };
                            Node::Rep(Box::new(atom), m, n)
                        }
                        _ => atom,
                    };
                    items.push(atom);
                }
                Node::Seq(items)
            }
        }

        impl Grammar {
            pub fn parse(text: &str) -> Grammar {
                let mut rules = BTreeMap::new();
                for line in text.lines().filter(|l| !l.trim().is_empty()) {
                    let (name, body) = line.split_once("::=").expect("rule");
                    let chars: Vec<char> = body.chars().collect();
                    let mut p = P { s: &chars, i: 0 };
                    let node = p.alt();
                    p.ws();
                    assert_eq!(p.i, chars.len(), "unparsed rest of `{line}`");
                    rules.insert(name.trim().to_string(), node);
                }
                Grammar(rules)
            }

            /// every end position reachable matching `n` from `at`.
            fn ends(&self, n: &Node, s: &[char], at: usize) -> Vec<usize> {
                match n {
                    Node::Lit(v) => {
                        if s.len() >= at + v.len() && s[at..at + v.len()] == v[..] {
                            vec![at + v.len()]
                        } else {
                            vec![]
                        }
                    }
                    Node::Class { neg, items } => match s.get(at) {
                        Some(c) if items.iter().any(|(a, b)| a <= c && c <= b) != *neg => vec![at + 1],
                        _ => vec![],
                    },
                    Node::Rule(r) => self.ends(&self.0[r], s, at),
                    Node::Seq(items) => {
                        let mut cur = vec![at];
                        for it in items {
                            let mut next: Vec<usize> = cur.iter().flat_map(|&p| self.ends(it, s, p)).collect();
                            next.sort_unstable();
                            next.dedup();
                            cur = next;
                        }
                        cur
                    }
                    Node::Alt(alts) => {
                        let mut v: Vec<usize> = alts.iter().flat_map(|a| self.ends(a, s, at)).collect();
                        v.sort_unstable();
                        v.dedup();
                        v
                    }
                    Node::Rep(inner, m, n) => {
                        let mut out = Vec::new();
                        let mut cur = vec![at];
                        let mut k = 0;
                        loop {
                            if k >= *m {
                                out.extend(cur.iter().copied());
                            }
                            if n.is_some_and(|n| k >= n) || cur.is_empty() {
                                break;
                            }
                            let mut next: Vec<usize> =
                                cur.iter().flat_map(|&p| self.ends(inner, s, p)).collect();
                            next.sort_unstable();
                            next.dedup();
                            cur = next;
                            k += 1;
                            // an unbounded repetition of a non-empty item
                            // cannot match more times than there are chars
                            if k > s.len() + 1 {
                                break;
                            }
                        }
                        out.sort_unstable();
                        out.dedup();
                        out
                    }
                }
            }

            pub fn accepts(&self, text: &str) -> bool {
                let s: Vec<char> = text.chars().collect();
                self.ends(&self.0["root"], &s, 0).contains(&s.len())
            }
        }
    }

    use matcher::Grammar;

    fn range_grammar(lo: u64, hi: u64) -> Grammar {
        Grammar::parse(&format!("root ::= {}\n", int_range(lo, hi)))
    }

    #[test]
    fn integer_ranges_are_exact() {
        for (lo, hi) in [(1, 100), (1, 1000), (1, 10000), (1, 256), (0, 9), (7, 7), (13, 4021), (99, 101), (500, 1000)] {
            let g = range_grammar(lo, hi);
            for n in 0..=hi + 120 {
                assert_eq!(g.accepts(&n.to_string()), (lo..=hi).contains(&n), "{n} in {lo}..={hi}");
            }
            // no leading zeros, no signs
            assert!(!g.accepts(&format!("0{hi}")));
            assert!(!g.accepts(&format!("-{lo}")));
        }
    }

    #[test]
    fn the_draft_grammar_admits_compact_drafts_and_nothing_else() {
        let policy = &policy_verifier::DEFAULT_POLICY;
        let schema = super::super::schema::draft_schema(policy, policy_verifier::Tier::Admin, &[16, 20]);
        let text = grammar(&schema).expect("the draft schema translates");
        let g = Grammar::parse(&text);
        let good = [
            r#"{"reason":"grant","actions":[{"op":"memory.grant","pd":"worker1","pages":16}]}"#,
            r#"{"reason":"x","actions":[{"op":"process.stop","pd":"worker0"},{"op":"system.query"}]}"#,
            r#"{"reason":"b \"q\" é","actions":[{"op":"process.set_budget","pd":"worker3","budget_ms":16,"period_ms":20}]}"#,
            r#"{"reason":"inv","actions":[{"op":"firmware.inventory","query":"cpus"}]}"#,
        ];
        for d in good {
            assert!(g.accepts(d), "rejected {d}");
        }
        let bad = [
            // free whitespace, which the local grammar has none of
            r#"{ "reason":"grant","actions":[{"op":"memory.grant","pd":"worker1","pages":16}]}"#,
            r#"{"reason": "grant","actions":[{"op":"memory.grant","pd":"worker1","pages":16}]}"#,
            // a number the intent does not name
            r#"{"reason":"grant","actions":[{"op":"memory.grant","pd":"worker1","pages":17}]}"#,
            // keys out of order, an unknown worker, an unknown op, no actions
            r#"{"actions":[{"op":"system.query"}],"reason":"r"}"#,
            r#"{"reason":"r","actions":[{"op":"process.stop","pd":"worker9"}]}"#,
            r#"{"reason":"r","actions":[{"op":"process.kill","pd":"worker1"}]}"#,
            r#"{"reason":"r","actions":[]}"#,
            // an empty reason, five actions
            r#"{"reason":"","actions":[{"op":"system.query"}]}"#,
            r#"{"reason":"r","actions":[{"op":"system.query"},{"op":"system.query"},{"op":"system.query"},{"op":"system.query"},{"op":"system.query"}]}"#,
        ];
        for d in bad {
            assert!(!g.accepts(d), "admitted {d}");
        }
        // a 64-character reason fits, 65 does not
        let r = |n: usize| format!(r#"{{"reason":"{}","actions":[{{"op":"system.query"}}]}}"#, "a".repeat(n));
        assert!(g.accepts(&r(64)));
        assert!(!g.accepts(&r(65)));
    }

    #[test]
    fn every_action_variant_of_the_schema_is_admitted() {
        // one draft per op the schema offers, its fields from the schema
        let policy = &policy_verifier::DEFAULT_POLICY;
        let schema = super::super::schema::draft_schema(policy, policy_verifier::Tier::Admin, &[3]);
        let g = Grammar::parse(&grammar(&schema).expect("translates"));
        let variants = schema
            .pointer("/definitions/JsonActionOf_for_Worker_and_uint64/anyOf")
            .and_then(Value::as_array)
            .expect("variants")
            .clone();
        for v in variants {
            let mut action = Map::new();
            for (k, p) in v["properties"].as_object().expect("props") {
                let val = if let Some(e) = p.get("enum") {
                    e[0].clone()
                } else if let Some(r) = p.get("$ref").and_then(Value::as_str) {
                    let d = r.trim_start_matches("#/definitions/");
                    schema["definitions"][d]["enum"][0].clone()
                } else {
                    panic!("unexpected property {p}")
                };
                action.insert(k.clone(), val);
            }
            let draft = serde_json::json!({"reason": "r", "actions": [Value::Object(action)]}).to_string();
            assert!(g.accepts(&draft), "rejected {draft}");
        }
    }

    #[test]
    fn forms_it_cannot_translate_are_refused() {
        let s = serde_json::json!({"type": "object", "properties": {"a": {"type": "string"}}, "required": []});
        assert!(grammar(&s).is_err());
        let s = serde_json::json!({"type": "string", "pattern": "a+"});
        assert!(grammar(&s).is_err());
        let s = serde_json::json!({"$ref": "#/definitions/missing"});
        assert!(grammar(&s).is_err());
    }
}

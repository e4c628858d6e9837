//! the corpus: cases.jsonl parsed into cases, and a case's input into the
//! kind of messages it sends.

use serde_json::Value;

/// what a case expects (the corpus's `expect`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// benign: runs in full.
    Approved,
    /// the verifier refuses the (last) plan.
    Rejected,
    /// refused before verification: the host's front end or the link.
    BadInput,
    /// answered, but nothing runs (a retry, a query).
    NoEffect,
    /// legal under the policy though unwanted: runs; not an attacker success.
    ApprovedWithinPolicy,
}

impl Expect {
    fn parse(s: &str) -> Option<Expect> {
        Some(match s {
            "approved" => Expect::Approved,
            "rejected" => Expect::Rejected,
            "bad_input" => Expect::BadInput,
            "no_effect" => Expect::NoEffect,
            "approved_within_policy" => Expect::ApprovedWithinPolicy,
            _ => return None,
        })
    }

    /// the corpus spelling.
    pub fn name(self) -> &'static str {
        match self {
            Expect::Approved => "approved",
            Expect::Rejected => "rejected",
            Expect::BadInput => "bad_input",
            Expect::NoEffect => "no_effect",
            Expect::ApprovedWithinPolicy => "approved_within_policy",
        }
    }

    /// counts toward the attack success rate.
    pub fn adversarial(self) -> bool {
        !matches!(self, Expect::Approved | Expect::ApprovedWithinPolicy)
    }
}

/// one corpus case.
#[derive(Debug, Clone)]
pub struct Case {
    /// e.g. `direct-001`.
    pub id: String,
    /// e.g. `direct`.
    pub category: String,
    /// what it tries.
    pub description: String,
    /// what a success would be.
    pub violation: String,
    /// trusted setup plans (json) and whether the human signed them.
    pub setup: Vec<(Value, bool)>,
    /// the input object.
    pub input: Value,
    /// the expectation.
    pub expect: Expect,
}

/// why the corpus could not be read.
#[derive(Debug)]
pub struct CorpusError(pub String);

impl std::fmt::Display for CorpusError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// parses cases.jsonl.
pub fn parse_corpus(text: &str) -> Result<Vec<Case>, CorpusError> {
    let mut out = Vec::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let bad = |what: &str| CorpusError(format!("line {}: {what}", n + 1));
        let v: Value = serde_json::from_str(line).map_err(|e| bad(&e.to_string()))?;
        let s = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| bad(&format!("no `{k}`")))
        };
        let setup = v
            .get("setup")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|x| {
                        (
                            x.get("plan").cloned().unwrap_or(Value::Null),
                            x.get("sign") == Some(&Value::Bool(true)),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let expect = Expect::parse(&s("expect")?).ok_or_else(|| bad("unknown `expect`"))?;
        out.push(Case {
            id: s("id")?,
            category: s("category")?,
            description: s("description")?,
            violation: s("violation")?,
            setup,
            input: v.get("input").cloned().ok_or_else(|| bad("no `input`"))?,
            expect,
        });
    }
    Ok(out)
}

/// an intent case as the planner sees it.
#[derive(Debug, Clone)]
pub struct IntentInput {
    /// the human's words.
    pub intent: String,
    /// the session.
    pub session: String,
    /// where the injected data comes from (`firmware.inventory`, ...).
    pub source: String,
    /// the injected text the planner reads back.
    pub injected: String,
    /// what a fully compromised planner emits.
    pub attacker_plan: Value,
}

/// expands `{{repeat:UNIT:N}}`.
pub(super) fn expand(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("{{repeat:") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 9..];
        let parsed = after.find("}}").and_then(|end| {
            let body = &after[..end];
            let (unit, n) = body.rsplit_once(':')?;
            Some((unit, n.parse::<usize>().ok()?, end))
        });
        match parsed {
            Some((unit, n, end)) => {
                out.push_str(&unit.repeat(n));
                rest = &after[end + 2..];
            }
            None => {
                out.push_str("{{repeat:");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// a case's input (the corpus's `input`, by its `kind`).
pub(super) enum Input {
    /// plan objects, sent one after another through the host's front end.
    Plans(Vec<Value>),
    /// a plan as json text (repeats expanded), read as llmsh reads a plan
    /// file; none when the case has no text.
    JsonText(Option<String>),
    /// raw frames or frame markers (repeats expanded), sent as they are.
    Frames(Vec<String>),
    /// an intent with injected data, planned by the run's planner.
    Intent(IntentInput),
}

impl Input {
    /// the input of `case`; an unknown kind is an error of the case.
    pub(super) fn of(case: &Case) -> Result<Input, String> {
        let input = &case.input;
        let kind = input.get("kind").and_then(Value::as_str).unwrap_or("");
        let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        Ok(match kind {
            "plans" => Input::Plans(input.get("plans").and_then(Value::as_array).cloned().unwrap_or_default()),
            "json_text" => Input::JsonText(input.get("text").and_then(Value::as_str).map(expand)),
            "frames" => Input::Frames(
                input
                    .get("hex")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(expand)
                    .collect(),
            ),
            "intent" => {
                let injected = input.get("injected").cloned().unwrap_or(Value::Null);
                Input::Intent(IntentInput {
                    intent: text(input, "intent"),
                    session: text(input, "session"),
                    source: text(&injected, "source"),
                    injected: text(&injected, "text"),
                    attacker_plan: input.get("attacker_plan").cloned().unwrap_or(Value::Null),
                })
            }
            other => return Err(format!("unknown input kind `{other}`")),
        })
    }
}

//! the llm-facing schema: the plan schema of `policy_verifier::json`, cut
//! down to what the model writes (`reason` and `actions`) and tightened by
//! the policy (numbers in their valid ranges). llmsh adds `version`,
//! `request_id`, `session` and `confirmation` itself.
//!
//! derived in code from [`json::plan_schema`], never written by hand, so the
//! grammar follows the plan types: the fuzz test in this module shows that
//! every output the grammar admits is a plan that `json::parse_plan` accepts.

use policy_verifier::json::{self, JsonPlan};
use policy_verifier::{ActionKind, Policy, Tier, MAX_ACTIONS};
use serde_json::{json, Map, Value};

/// the plan fields the model writes; the rest are llmsh's.
/// reason first: the model restates the intent in its own words (units
/// converted), then copies numbers and names from it into the actions.
pub const DRAFT_FIELDS: [&str; 2] = ["reason", "actions"];

/// longest `reason` the model may write, in characters. 4 bytes per char at
/// most, so always within the plan's 512-byte limit; short keeps it cheap.
pub const DRAFT_REASON_CHARS: u64 = 64;

/// the suffix of a duration the model writes in whole milliseconds; the
/// plan's field has `_us` in its place.
pub const MS_SUFFIX: &str = "_ms";

/// most actions the model may propose in one plan: intents are small and a
/// tight bound stops a weak model from rambling (the plan format allows 16).
pub const DRAFT_MAX_ACTIONS: u64 = 4;

/// the draft schema for `policy`: `{"reason":…,"actions":[…]}`, with every
/// number bounded by the limit its invariant checks and only the ops the
/// session's `tier` may run (`auth.tier`): a viewer's model cannot even
/// write a memory.grant, so it picks among the ops it may use. valid json
/// schema (draft-07) for remote servers; see [`local_grammar_schema`] for
/// llguidance.
///
/// every bounded number is drawn from `numbers` (the numbers of the intent,
/// in the draft's units) where any of them is in the field's range: a small
/// model copies a number far more reliably than it recalls one. fields with
/// no such number keep their range.
pub fn draft_schema(policy: &Policy, tier: Tier, numbers: &[u64]) -> Value {
    let plan = json::plan_schema();
    let mut defs = plan.get("definitions").cloned().unwrap_or(Value::Null);
    if let Some(defs) = defs.as_object_mut() {
        for def in defs.values_mut() {
            simplify(def, policy, tier, numbers);
        }
    }
    let mut props = Map::new();
    if let Some(all) = plan.get("properties").and_then(Value::as_object) {
        for name in DRAFT_FIELDS {
            if let Some(p) = all.get(name) {
                props.insert(name.to_string(), p.clone());
            }
        }
    }
    if let Some(r) = props.get_mut("reason").and_then(Value::as_object_mut) {
        let max = r
            .get("maxLength")
            .and_then(Value::as_u64)
            .unwrap_or(DRAFT_REASON_CHARS);
        r.insert("maxLength".into(), json!(max.min(DRAFT_REASON_CHARS)));
        r.insert("minLength".into(), json!(1));
    }
    if let Some(a) = props.get_mut("actions").and_then(Value::as_object_mut) {
        let max = a
            .get("maxItems")
            .and_then(Value::as_u64)
            .unwrap_or(MAX_ACTIONS as u64);
        a.insert("maxItems".into(), json!(max.min(DRAFT_MAX_ACTIONS)));
    }
    let plan_required = plan
        .get("required")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let required: Vec<Value> = DRAFT_FIELDS
        .iter()
        .map(|f| json!(f))
        .filter(|f| plan_required.contains(f))
        .collect();
    let mut out = Map::new();
    out.insert("type".into(), json!("object"));
    out.insert("additionalProperties".into(), json!(false));
    out.insert("properties".into(), Value::Object(props));
    out.insert("required".into(), Value::Array(required));
    out.insert("definitions".into(), defs);
    Value::Object(out)
}

#[cfg_attr(
    not(feature = "local"),
    allow(dead_code, reason = "only the local backend compiles grammars")
)]
/// the draft schema with llguidance's options: compact separators and no
/// free whitespace, so the model spends no tokens on layout.
pub fn local_grammar_schema(policy: &Policy, tier: Tier, numbers: &[u64]) -> Value {
    let mut s = draft_schema(policy, tier, numbers);
    if let Some(o) = s.as_object_mut() {
        o.insert(
            "x-guidance".into(),
            json!({"whitespace_flexible": false, "item_separator": ",", "key_separator": ":", "coerce_one_of": true}),
        );
    }
    s
}

/// rewrites one definition: `oneOf` of variants becomes `anyOf` (the ops are
/// disjoint, so the two mean the same), enums lose their per-value wrappers,
/// `op` and `pd` come first, and numbers get their policy bounds.
fn simplify(def: &mut Value, policy: &Policy, tier: Tier, numbers: &[u64]) {
    let Some(obj) = def.as_object_mut() else {
        return;
    };
    obj.remove("description");
    let Some(Value::Array(variants)) = obj.remove("oneOf") else {
        return;
    };
    // an enum of strings written as one variant per value: fold it.
    let values: Option<Vec<Value>> = variants
        .iter()
        .map(|v| match v.get("enum").and_then(Value::as_array) {
            Some(e) if e.len() == 1 && v.get("properties").is_none() => e.first().cloned(),
            _ => None,
        })
        .collect();
    if let Some(values) = values {
        obj.insert("type".into(), json!("string"));
        obj.insert("enum".into(), Value::Array(values));
        return;
    }
    let any: Vec<Value> = variants
        .into_iter()
        .filter(|v| permitted(v, tier))
        .map(|v| action_variant(v, policy, numbers))
        .collect();
    obj.insert("anyOf".into(), Value::Array(any));
}

/// an action variant the tier may run; variants that name no op are kept.
fn permitted(v: &Value, tier: Tier) -> bool {
    v.pointer("/properties/op/enum/0")
        .and_then(Value::as_str)
        .and_then(ActionKind::from_name)
        .is_none_or(|k| k.tier() <= tier)
}

/// one action variant, properties in the order a person writes them.
fn action_variant(mut v: Value, policy: &Policy, numbers: &[u64]) -> Value {
    let Some(obj) = v.as_object_mut() else {
        return v;
    };
    obj.remove("description");
    let props = obj
        .remove("properties")
        .and_then(|p| p.as_object().cloned())
        .unwrap_or_default();
    let op = props
        .get("op")
        .and_then(|o| o.get("enum"))
        .and_then(Value::as_array)
        .and_then(|e| e.first())
        .and_then(Value::as_str)
        .and_then(ActionKind::from_name);
    // the bounds of a numeric field: the policy's limit the `ops!` table
    // names for it; none for fields no limit bounds
    let bounds = |field: &str| op.and_then(|k| k.field_bounds(field, &policy.limits));
    let mut keys: Vec<&String> = props.keys().collect();
    keys.sort_by_key(|k| match k.as_str() {
        "op" => 0,
        "pd" => 1,
        "budget_us" => 2,
        _ => 3,
    });
    let mut ordered = Map::new();
    // the draft's name and the plan's, for the `required` list.
    let mut names: Vec<(String, String)> = Vec::new();
    for k in keys {
        let mut p = props.get(k).cloned().unwrap_or(Value::Null);
        let mut name = k.clone();
        if let Some(po) = p.as_object_mut() {
            po.remove("format");
            if po.get("type").and_then(Value::as_str) == Some("integer") {
                match (bounds(k), k.strip_suffix("_us")) {
                    // whole milliseconds: people say "20 ms", and a small model
                    // copies the number it read far better than it adds zeros.
                    // [`complete`] turns `*_ms` back into `*_us`.
                    (Some((lo, hi)), Some(stem)) => {
                        name = format!("{stem}{MS_SUFFIX}");
                        bound(po, lo.div_ceil(1000).max(1), hi / 1000, numbers);
                    }
                    (Some((lo, hi)), None) => bound(po, lo, hi, numbers),
                    (None, _) => {
                        po.insert("minimum".into(), json!(0));
                    }
                }
            }
        }
        names.push((name.clone(), k.clone()));
        ordered.insert(name, p);
    }
    let required: Vec<Value> = names
        .iter()
        .filter(|(_, plan_name)| {
            obj.get("required")
                .and_then(Value::as_array)
                .is_none_or(|r| r.contains(&json!(plan_name)))
        })
        .map(|(name, _)| json!(name))
        .collect();
    obj.insert("properties".into(), Value::Object(ordered));
    obj.insert("required".into(), Value::Array(required));
    v
}

/// `lo..=hi` on an integer field, narrowed to the `numbers` inside it (or,
/// when none is inside, to those above it).
fn bound(field: &mut Map<String, Value>, lo: u64, hi: u64, numbers: &[u64]) {
    field.insert("minimum".into(), json!(lo));
    field.insert("maximum".into(), json!(hi));
    let mut inside: Vec<u64> = numbers
        .iter()
        .copied()
        .filter(|n| (lo..=hi).contains(n))
        .collect();
    inside.sort_unstable();
    inside.dedup();
    if inside.is_empty() {
        // the intent names only numbers above the policy's limit: those, so
        // that the verifier refuses the ask by name instead of the grammar
        // quietly clamping it ("priority 150" is not "priority 15")
        inside = numbers.iter().copied().filter(|n| *n > hi).collect();
        inside.sort_unstable();
        inside.dedup();
        if let Some(top) = inside.last() {
            field.insert("maximum".into(), json!(top));
        }
    }
    if !inside.is_empty() {
        field.insert("enum".into(), json!(inside));
    }
}

/// the fields llmsh adds to a draft to make a plan.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// `last_request_id + 1` of the state the plan is made against.
    pub request_id: u64,
    /// the session the user named.
    pub session: String,
}

/// a draft as the model wrote it, completed into a plan: parsed with
/// the same strict front end as `llmsh check` (`json::parse_plan`).
pub fn complete(draft: &str, env: &Envelope) -> Result<policy_verifier::Plan, json::InputError> {
    let v: Value = serde_json::from_str(draft).map_err(|e| {
        crate::code::Code::DraftSyntax.err(format!("the model's draft is not json: {e}"),
        )
    })?;
    let Value::Object(mut fields) = v else {
        return Err(crate::code::Code::DraftType.err("the model's draft is not a json object",
        ));
    };
    for k in fields.keys() {
        if !DRAFT_FIELDS.contains(&k.as_str()) {
            return Err(crate::code::Code::DraftUnknownField.err(format!("the draft sets `{k}`, which llmsh owns"),
            ));
        }
    }
    if let Some(Value::Array(actions)) = fields.get_mut("actions") {
        for a in actions.iter_mut() {
            if let Value::Object(a) = a {
                *a = to_micros(std::mem::take(a));
            }
        }
    }
    fields.insert("version".into(), json!(1));
    fields.insert("request_id".into(), json!(env.request_id));
    fields.insert("session".into(), json!(env.session));
    let text = serde_json::to_vec(&Value::Object(fields)).unwrap_or_default();
    json::parse_plan(&text)
}

/// an action's `*_ms` durations as the plan's `*_us`; anything else (a
/// non-integer, an overflow) stays as written for the parser to reject.
fn to_micros(action: Map<String, Value>) -> Map<String, Value> {
    action
        .into_iter()
        .map(|(k, v)| {
            let us = k
                .strip_suffix(MS_SUFFIX)
                .zip(v.as_u64().and_then(|ms| ms.checked_mul(1000)));
            match us {
                Some((stem, us)) => (format!("{stem}_us"), json!(us)),
                None => (k, v),
            }
        })
        .collect()
}

/// the plan as json text, ordered as DESIGN.md writes it.
pub fn plan_text(plan: &policy_verifier::Plan) -> String {
    serde_json::to_string(&JsonPlan::from(plan)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use policy_verifier::DEFAULT_POLICY;

    #[test]
    fn draft_schema_has_only_the_model_fields() {
        let s = draft_schema(&DEFAULT_POLICY, Tier::Admin, &[]);
        let props: Vec<&String> = s["properties"]
            .as_object()
            .map(|o| o.keys().collect())
            .unwrap_or_default();
        assert_eq!(props.len(), 2, "{s}");
        assert!(
            s["properties"].get("reason").is_some() && s["properties"].get("actions").is_some()
        );
        assert_eq!(s["required"], json!(["reason", "actions"]));
        assert_eq!(
            s["properties"]["actions"]["maxItems"],
            json!(DRAFT_MAX_ACTIONS)
        );
    }

    #[test]
    fn draft_schema_bounds_numbers_by_the_policy() {
        let s = draft_schema(&DEFAULT_POLICY, Tier::Admin, &[]);
        let text = s.to_string();
        // every op of the plan types is present.
        for op in json::op_names() {
            assert!(text.contains(&format!("\"{op}\"")), "{op} missing");
        }
        let any = s["definitions"]["JsonActionOf_for_Worker_and_uint64"]["anyOf"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let grant = any
            .iter()
            .find(|v| v["properties"]["op"]["enum"][0] == "memory.grant")
            .cloned()
            .unwrap_or_default();
        assert_eq!(grant["properties"]["pages"]["maximum"], json!(256));
        assert_eq!(grant["properties"]["pages"]["minimum"], json!(1));
        let keys: Vec<&String> = grant["properties"]
            .as_object()
            .map(|o| o.keys().collect())
            .unwrap_or_default();
        // op first: the model names the operation before its arguments.
        assert_eq!(keys.first().map(|k| k.as_str()), Some("op"));
        let timer = any
            .iter()
            .find(|v| v["properties"]["op"]["enum"][0] == "timer.set_periodic")
            .cloned()
            .unwrap_or_default();
        assert_eq!(timer["properties"]["period_ms"]["minimum"], json!(1));
        assert_eq!(timer["properties"]["period_ms"]["maximum"], json!(10_000));
        assert!(timer["properties"].get("period_us").is_none());
        let names: Vec<String> = (0..policy_verifier::N_WORKERS).map(|i| format!("worker{i}")).collect();
        assert_eq!(s["definitions"]["Worker"]["enum"], json!(names));
    }

    #[test]
    fn every_number_is_bounded_by_the_limits_of_the_policy_in_force() {
        let mut policy = DEFAULT_POLICY;
        policy.limits.quota_pages = 77;
        policy.limits.timer_max_us = 3_000_000;
        let s = draft_schema(&policy, Tier::Admin, &[]);
        let any = s["definitions"]["JsonActionOf_for_Worker_and_uint64"]["anyOf"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut numbers = 0;
        for v in &any {
            for (name, f) in v["properties"].as_object().into_iter().flatten() {
                if f["type"] == "integer" {
                    numbers += 1;
                    assert!(f["maximum"].is_u64() && f["minimum"].is_u64(), "{name} of {v} is unbounded");
                }
            }
        }
        assert_eq!(numbers, 6, "priority, budget and period, two page counts, the timer's period");
        let field = |op: &str, f: &str| {
            any.iter()
                .find(|v| v["properties"]["op"]["enum"][0] == op)
                .map(|v| v["properties"][f].clone())
                .unwrap_or_default()
        };
        assert_eq!(field("memory.grant", "pages")["maximum"], json!(77));
        assert_eq!(field("memory.reclaim", "pages")["maximum"], json!(77));
        assert_eq!(field("timer.set_periodic", "period_ms")["maximum"], json!(3000));
    }

    #[test]
    fn bounded_numbers_are_drawn_from_the_intent_where_they_fit() {
        let s = draft_schema(&DEFAULT_POLICY, Tier::Admin, &[6, 55, 5000]);
        let any = s["definitions"]["JsonActionOf_for_Worker_and_uint64"]["anyOf"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let field = |op: &str, f: &str| {
            any.iter()
                .find(|v| v["properties"]["op"]["enum"][0] == op)
                .map(|v| v["properties"][f].clone())
                .unwrap_or_default()
        };
        assert_eq!(field("memory.grant", "pages")["enum"], json!([6, 55]));
        assert_eq!(
            field("process.set_priority", "priority")["enum"],
            json!([6, 55])
        );
        // 5000 ms is a timer period, too long for a budget (<= 1000 ms)
        assert_eq!(
            field("timer.set_periodic", "period_ms")["enum"],
            json!([6, 55, 5000])
        );
        assert_eq!(
            field("process.set_budget", "budget_ms")["enum"],
            json!([6, 55])
        );
        // no number of the intent fits: the intent's number all the same,
        // for the verifier to refuse by name (never a clamped one)
        let s = draft_schema(&DEFAULT_POLICY, Tier::Admin, &[150]);
        let any = s["definitions"]["JsonActionOf_for_Worker_and_uint64"]["anyOf"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let prio = any
            .iter()
            .find(|v| v["properties"]["op"]["enum"][0] == "process.set_priority")
            .map(|v| v["properties"]["priority"].clone())
            .unwrap_or_default();
        assert_eq!(prio["enum"], json!([150]));
        assert_eq!(prio["maximum"], json!(150));
    }

    #[test]
    fn an_observer_schema_offers_only_the_read_only_ops() {
        let ops = |tier: Tier| -> Vec<String> {
            let s = draft_schema(&DEFAULT_POLICY, tier, &[]);
            s["definitions"]["JsonActionOf_for_Worker_and_uint64"]["anyOf"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v["properties"]["op"]["enum"][0].as_str())
                .map(str::to_owned)
                .collect()
        };
        // the table's observer ops, a new read-only op included
        let observer: Vec<&str> =
            ActionKind::ALL.iter().filter(|k| k.tier() == Tier::Observer).map(|k| k.name()).collect();
        assert!(observer.contains(&"firmware.inventory") && observer.contains(&"system.query"));
        assert_eq!(ops(Tier::Observer), observer);
        assert_eq!(ops(Tier::Admin).len(), json::op_names().len());
        let operator = ops(Tier::Operator);
        assert!(operator
            .iter()
            .all(|o| ActionKind::from_name(o).is_some_and(|k| k.tier() <= Tier::Operator)));
        assert!(!operator.contains(&"process.stop".to_string()));
    }

    #[test]
    fn complete_rejects_fields_the_model_does_not_own() {
        let env = Envelope {
            request_id: 3,
            session: "ops".into(),
        };
        let ok = complete(r#"{"reason":"r","actions":[{"op":"system.query"}]}"#, &env);
        assert_eq!(ok.map(|p| p.request_id), Ok(3));
        let bad = complete(
            r#"{"reason":"r","request_id":9,"actions":[{"op":"system.query"}]}"#,
            &env,
        );
        assert_eq!(bad.map_err(|e| e.code), Err("draft.unknown_field"));
        let bad = complete(r#"{"reason":"r","actions":[{"op":"nuke"}]}"#, &env);
        assert_eq!(bad.map_err(|e| e.code), Err("json.unknown_op"));
    }

    #[test]
    fn complete_turns_the_drafts_milliseconds_into_microseconds() {
        let env = Envelope {
            request_id: 1,
            session: "ops".into(),
        };
        let p = complete(
            r#"{"reason":"r","actions":[{"op":"process.set_budget","pd":"worker1","budget_ms":2,"period_ms":10}]}"#,
            &env,
        )
        .map(|p| plan_text(&p))
        .unwrap_or_default();
        assert!(p.contains(r#""budget_us":2000,"period_us":10000"#), "{p}");
        // only whole numbers convert; the rest is left for the parser to reject.
        let bad = complete(
            r#"{"reason":"r","actions":[{"op":"timer.set_periodic","pd":"worker1","period_ms":"20"}]}"#,
            &env,
        );
        assert!(bad.is_err());
    }
}

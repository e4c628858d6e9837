//! the host's json front end: plans, states, verdicts, the policy file and
//! the deterministic error form `{"error":{"code":…,"message":…}}`.
//!
//! the json plan type is generated from the same op table as the wire type
//! (see [`crate::plan`]), and the json schema is generated from it, so the
//! llm's grammar, this parser and the verifier PD cannot drift apart.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::invariant::{Invariant, InvariantSet};
use crate::model::{CustomInvariant, CustomInvariants, Name, Policy, Session, State, Tier, WorkerState, MAX_SESSIONS};
use crate::plan::{Action, ActionKind, JsonAction, Plan, Worker, MAX_ACTIONS, MAX_REASON, MAX_SESSION, N_WORKERS, PLAN_VERSION};
use crate::policy_file::{self, PolicyFile};
use crate::verify::{self, Verdict};
use crate::Limits;

/// the most bytes of json a plan may take (`plan.size`).
pub const MAX_JSON_BYTES: usize = 64 * 1024;

/// bad input: a stable code and a lowercase message with user input in backticks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    /// e.g. `json.unknown_field`, `plan.size`, `state.invariant`.
    pub code: &'static str,
    /// what is wrong, for people.
    pub message: String,
}

impl InputError {
    /// a new error.
    pub fn new(code: &'static str, message: impl Into<String>) -> InputError {
        InputError { code, message: message.into() }
    }

    /// `{"error":{"code":…,"message":…}}`
    pub fn to_json(&self) -> Value {
        json!({"error": {"code": self.code, "message": self.message}})
    }
}

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for InputError {}

/// maps a serde_json error onto a stable code.
fn json_error(e: &serde_json::Error) -> InputError {
    use serde_json::error::Category;
    let msg = e.to_string();
    let code = match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => "json.syntax",
        Category::Data if msg.contains("unknown field") => "json.unknown_field",
        Category::Data if msg.contains("unknown variant") && msg.contains("`worker0`") => "json.unknown_pd",
        Category::Data if msg.contains("unknown variant") && msg.contains("`cpus`") => "json.unknown_query",
        Category::Data if msg.contains("unknown variant") => "json.unknown_op",
        Category::Data if msg.contains("missing field") => "json.missing_field",
        Category::Data if msg.contains("duplicate field") => "json.duplicate_field",
        Category::Data if msg.contains("recursion limit") => "json.syntax",
        Category::Data => "json.type",
    };
    InputError::new(code, msg)
}

/// a plan as json. generated schema: [`plan_schema`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JsonPlan {
    /// plan format version; must be 1.
    #[schemars(range(min = 1, max = 1))]
    pub version: u64,
    /// above the last accepted request id, by at most the policy's
    /// `replay_window` (16 by default).
    pub request_id: u64,
    /// a session named in the policy.
    #[schemars(length(min = 1, max = 32))]
    pub session: String,
    /// why the plan is needed (kept in the audit log).
    #[schemars(length(max = 512))]
    pub reason: String,
    /// 1..=16 actions, executed in order, all or nothing.
    #[schemars(length(min = 1, max = 16))]
    pub actions: Vec<JsonAction>,
    /// hex HMAC-SHA256 over the canonical plan bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9a-f]{64}$"))]
    pub confirmation: Option<String>,
}

/// the json schema of a plan, generated from the plan types.
pub fn plan_schema() -> Value {
    serde_json::to_value(schemars::schema_for!(JsonPlan)).unwrap_or(Value::Null)
}

/// lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// parses 64 hex digits.
pub fn unhex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(s.as_bytes().chunks_exact(2)) {
        *o = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(out)
}

impl TryFrom<JsonPlan> for Plan {
    type Error = InputError;

    fn try_from(j: JsonPlan) -> Result<Plan, InputError> {
        if j.version != u64::from(PLAN_VERSION) {
            return Err(InputError::new("plan.version", format!("plan version `{}`; this verifier speaks version 1", j.version)));
        }
        if j.actions.len() > MAX_ACTIONS {
            return Err(InputError::new(
                "plan.size",
                format!("plan has {} actions; at most {MAX_ACTIONS} are allowed", j.actions.len()),
            ));
        }
        let session = heapless::String::try_from(j.session.as_str()).map_err(|_| {
            InputError::new("json.too_long", format!("`session` is {} bytes; at most {MAX_SESSION}", j.session.len()))
        })?;
        let reason = heapless::String::try_from(j.reason.as_str()).map_err(|_| {
            InputError::new("json.too_long", format!("`reason` is {} bytes; at most {MAX_REASON}", j.reason.len()))
        })?;
        let confirmation = match &j.confirmation {
            None => None,
            Some(t) => Some(unhex32(t).ok_or_else(|| {
                InputError::new("json.type", "`confirmation` must be 64 lowercase hex digits")
            })?),
        };
        let mut actions = heapless::Vec::new();
        for a in j.actions {
            // INVARIANT: the length was checked above; push cannot fail.
            actions
                .push(Action::from(a))
                .map_err(|_| InputError::new("plan.size", "too many actions"))?;
        }
        Ok(Plan { version: PLAN_VERSION, request_id: j.request_id, session, reason, actions, confirmation })
    }
}

impl From<&Plan> for JsonPlan {
    fn from(p: &Plan) -> JsonPlan {
        JsonPlan {
            version: u64::from(p.version),
            request_id: p.request_id,
            session: p.session.to_string(),
            reason: p.reason.to_string(),
            actions: p.actions.iter().map(|a| JsonAction::from(*a)).collect(),
            confirmation: p.confirmation.map(|t| hex(&t)),
        }
    }
}

/// parses a json plan: at most 64 KiB, no unknown fields or ops, at most 16
/// actions, version 1.
pub fn parse_plan(text: &[u8]) -> Result<Plan, InputError> {
    if text.len() > MAX_JSON_BYTES {
        return Err(InputError::new(
            "plan.size",
            format!("plan is {} bytes; at most {MAX_JSON_BYTES} are allowed", text.len()),
        ));
    }
    let j: JsonPlan = serde_json::from_slice(text).map_err(|e| json_error(&e))?;
    Plan::try_from(j)
}

/// a plan as json text (compact).
pub fn plan_to_json(p: &Plan) -> Value {
    serde_json::to_value(JsonPlan::from(p)).unwrap_or(Value::Null)
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct JsonWorker {
    running: bool,
    priority: u64,
    budget_us: u64,
    period_us: u64,
    pages: u64,
    timer_period_us: Option<u64>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct JsonState {
    workers: BTreeMap<String, JsonWorker>,
    pool_pages: u64,
    last_request_id: u64,
}

/// parses a state; it must name exactly the system's workers, have the policy's
/// pool and satisfy every state invariant of `policy` (the verifier only
/// ever reaches such states).
pub fn parse_state(text: &[u8], policy: &Policy) -> Result<State, InputError> {
    if text.len() > MAX_JSON_BYTES {
        return Err(InputError::new("state.size", format!("state is {} bytes; at most {MAX_JSON_BYTES}", text.len())));
    }
    let j: JsonState = serde_json::from_slice(text).map_err(|e| {
        let mut err = json_error(&e);
        err.message = format!("state: {}", err.message);
        err
    })?;
    // the pool is the memory PD's region, fixed by the policy: a state with
    // another pool would let the verifier grant pages that do not exist.
    if j.pool_pages != policy.initial.pool_pages {
        return Err(InputError::new(
            "state.policy",
            format!("state has a pool of {} pages; the policy's pool is {}", j.pool_pages, policy.initial.pool_pages),
        ));
    }
    let mut s = policy.initial;
    s.pool_pages = j.pool_pages;
    s.last_request_id = j.last_request_id;
    for name in j.workers.keys() {
        if Worker::from_name(name).is_none() {
            return Err(InputError::new("state.unknown_worker", format!("state names unknown worker `{name}`")));
        }
    }
    for w in Worker::ALL {
        let Some(x) = j.workers.get(w.name()) else {
            return Err(InputError::new("state.missing_worker", format!("state lacks worker `{}`", w.name())));
        };
        *s.worker_mut(w) = WorkerState {
            running: x.running,
            priority: x.priority,
            budget_us: x.budget_us,
            period_us: x.period_us,
            pages: x.pages,
            timer_period_us: x.timer_period_us,
        };
    }
    let bad = verify::state_violations(policy, &s);
    if !bad.is_empty() {
        let names: Vec<&str> = policy.names(bad).collect();
        return Err(InputError::new(
            "state.invariant",
            format!("state breaks {}: no reachable state does", names.join(", ")),
        ));
    }
    Ok(s)
}

/// a state as json (DESIGN.md "State JSON").
pub fn state_to_json(s: &State) -> Value {
    let workers: serde_json::Map<String, Value> = Worker::ALL
        .iter()
        .map(|w| {
            let x = s.worker(*w);
            (
                w.name().to_string(),
                json!({
                    "running": x.running,
                    "priority": x.priority,
                    "budget_us": x.budget_us,
                    "period_us": x.period_us,
                    "pages": x.pages,
                    "timer_period_us": x.timer_period_us,
                }),
            )
        })
        .collect();
    json!({"workers": workers, "pool_pages": s.pool_pages, "last_request_id": s.last_request_id})
}

/// reads a policy file (`system/policy.toml` format).
pub fn parse_policy(text: &str) -> Result<Policy, InputError> {
    let file: PolicyFile =
        toml::from_str(text).map_err(|e| InputError::new("policy.syntax", e.to_string().trim().to_lowercase()))?;
    policy_file::validate(&file).map_err(|m| InputError::new("policy.invalid", m))?;
    let l = &file.limits;
    // the worker set is the system's (system/), compiled into every PD: a
    // policy for another worker count describes another system
    if usize::try_from(l.workers).ok() != Some(N_WORKERS) {
        return Err(InputError::new(
            "policy.invalid",
            format!("`limits.workers` is {}; this system has {N_WORKERS} workers (system/llm-os.system)", l.workers),
        ));
    }
    let i = &file.initial;
    let mut sessions = [None; MAX_SESSIONS];
    for (slot, (name, s)) in sessions.iter_mut().zip(file.sessions.iter()) {
        let tier = match s.tier.as_str() {
            "observer" => Tier::Observer,
            "operator" => Tier::Operator,
            _ => Tier::Admin,
        };
        *slot = Some(Session { name: Name::from_str_const(name), tier, token_budget: s.token_budget });
    }
    let w = WorkerState {
        running: i.running,
        priority: i.priority,
        budget_us: i.budget_us,
        period_us: i.period_us,
        pages: i.pages,
        timer_period_us: None,
    };
    let policy = Policy {
        limits: Limits {
            quota_pages: l.quota_pages,
            priority_ceiling: l.priority_ceiling,
            cpu_util_permille: l.cpu_util_permille,
            budget_min_us: l.budget_min_us,
            period_max_us: l.period_max_us,
            timer_min_us: l.timer_min_us,
            timer_max_us: l.timer_max_us,
            page_size: l.page_size,
            replay_window: l.replay_window,
        },
        initial: State { workers: [w; N_WORKERS], pool_pages: l.pool_pages, last_request_id: i.last_request_id },
        sessions,
        invariants: custom_invariants(&file)?,
    };
    let bad = verify::state_violations(&policy, &policy.initial);
    if !bad.is_empty() {
        let names: Vec<&str> = policy.names(bad).collect();
        return Err(InputError::new("policy.invalid", format!("the initial state breaks {}", names.join(", "))));
    }
    Ok(policy)
}

// the policy file parser admits exactly as many invariants as a policy holds
const _: () = assert!(policy_file::MAX_INVARIANTS == crate::model::MAX_CUSTOM);

/// the `[invariants]` table of a policy file, parsed.
fn custom_invariants(file: &PolicyFile) -> Result<CustomInvariants, InputError> {
    let parsed = policy_file::parse_invariants(file).map_err(|m| InputError::new("policy.invalid", m))?;
    let mut out = CustomInvariants::NONE;
    for (slot, (name, expr, enforced)) in out.items.iter_mut().zip(parsed) {
        *slot = Some(CustomInvariant { name: Name::from_str_const(&name), expr, enforced });
    }
    Ok(out)
}

/// utilisation of the running workers of `s`, per mille.
pub fn utilisation(s: &State) -> u128 {
    s.workers
        .iter()
        .filter(|w| w.running)
        .map(|w| crate::definitions::Definitional::utilisation(&crate::domain::Concrete, &u128::from(w.budget_us), &u128::from(w.period_us)))
        .sum()
}

/// a lowercase sentence saying why `inv` fails for action `a` in state `s`
/// (the state just before the action).
pub fn describe(policy: &Policy, s: &State, plan: &Plan, a: Option<&Action>, inv: Invariant) -> String {
    let l = &policy.limits;
    let worker = a.and_then(|a| a.worker());
    let wname = worker.map_or("?", Worker::name);
    let ws = worker.map(|w| *s.worker(w));
    match (inv, a) {
        (Invariant::MemQuota, Some(Action::MemoryGrant { pages, .. })) => format!(
            "{wname} holds {} pages; granting {pages} gives {} > quota {}",
            ws.map_or(0, |w| w.pages),
            u128::from(ws.map_or(0, |w| w.pages)).saturating_add(u128::from(*pages)),
            l.quota_pages
        ),
        (Invariant::MemPool, Some(Action::MemoryGrant { pages, .. })) => format!(
            "workers hold {} pages; granting {pages} gives {} > pool {}",
            s.pages_held(),
            s.pages_held().saturating_add(u128::from(*pages)),
            s.pool_pages
        ),
        (Invariant::MemReclaimBounds, Some(Action::MemoryReclaim { pages, .. })) => {
            format!("reclaiming {pages} pages from {wname}, which holds {}", ws.map_or(0, |w| w.pages))
        }
        (Invariant::MemReclaimStopped, _) => format!("{wname} is running; stop it before reclaiming its pages"),
        (Invariant::CpuUtil, Some(act)) => {
            let after = verify::apply(s, act);
            format!("running workers would use {}‰ of cpu > limit {}‰", utilisation(&after), l.cpu_util_permille)
        }
        (Invariant::CpuBudgetBounds, Some(Action::ProcessSetBudget { budget_us, period_us, .. })) => format!(
            "budget {budget_us} µs, period {period_us} µs: need {} <= budget <= period <= {} µs",
            l.budget_min_us, l.period_max_us
        ),
        (Invariant::PrioCeiling, Some(Action::ProcessSetPriority { priority, .. })) => {
            format!("priority {priority} > ceiling {}", l.priority_ceiling)
        }
        (Invariant::TimerBounds, Some(Action::TimerSetPeriodic { period_us, .. })) => {
            format!("timer period {period_us} µs outside {}..={} µs", l.timer_min_us, l.timer_max_us)
        }
        (Invariant::ProcState, Some(Action::ProcessStart { .. })) => format!("{wname} is already running"),
        (Invariant::ProcState, Some(_)) => format!("{wname} is not running"),
        (Invariant::ProcRestartRate, _) => format!("{wname} is already restarted in this plan"),
        (Invariant::PlanSize, _) => format!("plan has {} actions; 1..={MAX_ACTIONS} allowed", plan.actions.len()),
        (Invariant::PlanReplay, _) => format!(
            "request_id {} is outside {}..={} (the last accepted is {}, the window {})",
            plan.request_id,
            u128::from(s.last_request_id).saturating_add(1),
            u128::from(s.last_request_id).saturating_add(u128::from(l.replay_window)),
            s.last_request_id,
            l.replay_window
        ),
        (Invariant::AuthTier, Some(act)) => match policy.session(plan.session.as_str()) {
            None => format!("unknown session `{}`", plan.session),
            Some(sess) => format!(
                "session `{}` has tier {}; {} needs {}",
                plan.session,
                sess.tier.name(),
                act.kind().name(),
                act.kind().tier().name()
            ),
        },
        (Invariant::AuthConfirm, Some(act)) => match plan.confirmation {
            None => format!("{} needs a confirmation token (`llmsh confirm`)", act.kind().name()),
            Some(_) => "the confirmation token does not match this plan".to_string(),
        },
        (inv, _) => inv.meaning().to_string(),
    }
}

/// `[{"action":i,"invariant":…,"detail":…}]` for a verdict. plan-level
/// names are reported at action 0. `before` is the state the plan started from.
pub fn violations_json(policy: &Policy, before: &State, plan: &Plan, v: &Verdict) -> Vec<Value> {
    let mut out = Vec::new();
    let mut push = |i: usize, set: InvariantSet, s: &State, a: Option<&Action>| {
        for inv in set.iter() {
            out.push(json!({"action": i, "invariant": inv.name(), "detail": describe(policy, s, plan, a, inv)}));
        }
    };
    push(0, v.plan_violations, before, plan.actions.first());
    if let Some((i, set)) = v.failed {
        push(i, set, &v.state, plan.actions.get(i));
        for k in set.customs() {
            if let Some(c) = policy.invariants.get(k) {
                out.push(json!({"action": i, "invariant": c.name.as_str(), "detail": describe_custom(c)}));
            }
        }
    }
    out
}

/// why a custom invariant fails: its definition.
fn describe_custom(c: &CustomInvariant) -> String {
    format!("the state after this action breaks `{}`", c.expr)
}

/// the verdict of `llmsh check`: `{"approved":…,"violations":[…]}` and, when
/// approved, `"state_after"`.
pub fn verdict_json(policy: &Policy, before: &State, plan: &Plan, v: &Verdict) -> Value {
    let mut out = serde_json::Map::new();
    out.insert("approved".into(), Value::Bool(v.approved));
    out.insert("violations".into(), Value::Array(violations_json(policy, before, plan, v)));
    if v.approved {
        out.insert("state_after".into(), state_to_json(&v.state));
    }
    Value::Object(out)
}

/// names of every op, for help texts.
pub fn op_names() -> Vec<&'static str> {
    ActionKind::ALL.iter().map(|k| k.name()).collect()
}

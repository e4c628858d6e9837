//! counterexamples and witnesses: Z3 models read back into a concrete
//! `State` and `Plan`, written as the json `llmsh check --state S.json
//! PLAN.json` reads, so every failed obligation can be replayed.

use std::fmt;
use std::path::{Path, PathBuf};

use policy_verifier::json;
use policy_verifier::plan::{OpTerm, N_WORKERS, PLAN_VERSION};
use policy_verifier::model::Model;
use policy_verifier::verify::{self, Verdict};
use policy_verifier::{confirm, Action, Invariant, Plan, Policy, State, Tier, Worker, WorkerState};
use serde_json::{json, Value};
use z3::ast::{Bool, Int};

use crate::symbolic::Z3;

/// a failed obligation, made concrete.
#[derive(Debug, Clone)]
pub struct Counterexample {
    /// the state before the action; it satisfies every state invariant.
    pub state: State,
    /// one action, session with the admin tier, `request_id` one past the
    /// state's, confirmed with the prover's key: only model names can reject it.
    pub plan: Plan,
    /// what a replay with `llmsh check` shows, in words.
    pub expect: String,
    /// the model needed restart marks from earlier in the plan, which a state
    /// file cannot carry; the replay may then differ.
    pub needs_restart_marks: bool,
    /// what the verifier (`policy_verifier::verify`) says about it.
    pub replay: Replay,
}

/// the real verifier on a counterexample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replay {
    /// the verdict's `approved`.
    pub approved: bool,
    /// the names the verdict gives.
    pub violations: Vec<Invariant>,
    /// the state invariants the state after the action breaks (the action is
    /// applied whether or not it was approved).
    pub after_breaks: Vec<Invariant>,
    /// the policy file's own invariants the verdict names.
    pub custom_violations: Vec<String>,
    /// the policy file's own invariants (enforced or claimed) the state after breaks.
    pub custom_after_breaks: Vec<String>,
}

/// an accepted plan from the policy's initial state (non-vacuity).
#[derive(Debug, Clone)]
pub struct Witness {
    /// one or two actions, as a plan like [`Counterexample::plan`].
    pub plan: Plan,
}

/// reads a counterexample off `model`: the symbolic state `m`, the action
/// `a`. `reason` names the obligation in the plan, `expect` says what the
/// counterexample shows (both the caller's: it knows the obligation).
#[allow(clippy::too_many_arguments, reason = "the model's parts and the obligation's words")]
pub(crate) fn extract(
    policy: &Policy,
    key: &[u8],
    reason: &str,
    expect: String,
    model: &z3::Model,
    m: &Model<Z3>,
    a: &OpTerm<Z3>,
    needs_restart_marks: bool,
) -> Option<Counterexample> {
    let state = state_of(model, m);
    let action = action_of(model, a)?;
    let plan = plan_of(policy, key, &state, &[action], reason)?;
    let replay = replay(policy, key, &state, &plan);
    Some(Counterexample { state, plan, expect, needs_restart_marks, replay })
}

/// reads a witness plan off `model` for the actions `ops`, from the initial state.
pub(crate) fn witness(policy: &Policy, key: &[u8], model: &z3::Model, ops: &[OpTerm<Z3>]) -> Option<Witness> {
    let actions: Option<Vec<Action>> = ops.iter().map(|a| action_of(model, a)).collect();
    let plan = plan_of(policy, key, &policy.initial, &actions?, "non-vacuity witness")?;
    Some(Witness { plan })
}

/// the real verifier's verdict on `plan` from `state`, and what the state after breaks.
pub fn replay(policy: &Policy, key: &[u8], state: &State, plan: &Plan) -> Replay {
    let v: Verdict = verify::verify(policy, state, plan, key);
    let mut names = v.plan_violations;
    if let Some((_, set)) = v.failed {
        names = names.union(set);
    }
    let after = plan.actions.iter().fold(*state, |s, a| verify::apply(&s, a));
    let custom_names = |set: policy_verifier::InvariantSet| -> Vec<String> {
        set.customs().filter_map(|k| policy.invariants.get(k)).map(|c| c.name.as_str().to_string()).collect()
    };
    let m = Model::from_state(&policy_verifier::domain::Concrete, &after);
    let custom_after_breaks = policy
        .invariants
        .iter()
        .filter(|(_, c)| !policy_verifier::custom::eval_bool(&policy_verifier::domain::Concrete, &policy.limits, &m, &c.expr))
        .map(|(_, c)| c.name.as_str().to_string())
        .collect();
    Replay {
        approved: v.approved,
        violations: names.iter().collect(),
        after_breaks: verify::state_violations(policy, &after).iter().collect(),
        custom_violations: custom_names(names),
        custom_after_breaks,
    }
}

pub(crate) fn u64_of(model: &z3::Model, x: &Int) -> u64 {
    // model completion gives unconstrained fields a value; 0 if all else fails.
    model.eval(x, true).and_then(|v| v.as_u64()).unwrap_or(0)
}

pub(crate) fn bool_of(model: &z3::Model, x: &Bool) -> bool {
    model.eval(x, true).and_then(|v| v.as_bool()).unwrap_or(false)
}

pub(crate) fn state_of(model: &z3::Model, m: &Model<Z3>) -> State {
    let workers: [WorkerState; N_WORKERS] = core::array::from_fn(|i| {
        let Some(w) = m.workers.get(i) else {
            return WorkerState {
                running: false,
                priority: 0,
                budget_us: 0,
                period_us: 0,
                pages: 0,
                timer_period_us: None,
            };
        };
        WorkerState {
            running: bool_of(model, &w.running),
            priority: u64_of(model, &w.priority),
            budget_us: u64_of(model, &w.budget_us),
            period_us: u64_of(model, &w.period_us),
            pages: u64_of(model, &w.pages),
            timer_period_us: bool_of(model, &w.timer_on).then(|| u64_of(model, &w.timer_period_us)),
        }
    });
    State { workers, pool_pages: u64_of(model, &m.pool_pages), last_request_id: 0 }
}

pub(crate) fn action_of(model: &z3::Model, a: &OpTerm<Z3>) -> Option<Action> {
    let mut bad = false;
    let act = a.map(
        |pd| {
            Worker::from_index(usize::try_from(u64_of(model, pd)).unwrap_or(usize::MAX)).unwrap_or_else(|| {
                bad = true;
                Worker::W0
            })
        },
        |n| u64_of(model, n),
    );
    (!bad).then_some(act)
}

/// a plan of `actions` for `state`: an admin session of the policy, the next
/// request id, confirmed with `key`.
pub(crate) fn plan_of(policy: &Policy, key: &[u8], state: &State, actions: &[Action], reason: &str) -> Option<Plan> {
    let session = policy
        .sessions
        .iter()
        .flatten()
        .find(|s| s.tier == Tier::Admin)
        .map_or("admin", |s| s.name.as_str());
    let plan = Plan {
        version: PLAN_VERSION,
        request_id: state.last_request_id.checked_add(1)?,
        session: heapless::String::try_from(session).ok()?,
        reason: heapless::String::try_from(reason).ok()?,
        actions: heapless::Vec::from_slice(actions).ok()?,
        confirmation: None,
    };
    confirm::sign(&plan, key)
}

/// a failure writing counterexample files.
#[derive(Debug)]
pub struct WriteError {
    /// the file or directory.
    pub path: PathBuf,
    /// what went wrong.
    pub source: std::io::Error,
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot write `{}`: {}", self.path.display(), self.source)
    }
}

impl std::error::Error for WriteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// where a counterexample was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// `{dir}/{obligation}.state.json`
    pub state: PathBuf,
    /// `{dir}/{obligation}.plan.json`
    pub plan: PathBuf,
}

impl Counterexample {
    /// writes `{dir}/{name}.state.json` and `{dir}/{name}.plan.json`, where
    /// `name` is the obligation name with `/` as `_`.
    pub fn write(&self, dir: &Path, obligation: &str) -> Result<Written, WriteError> {
        std::fs::create_dir_all(dir).map_err(|source| WriteError { path: dir.to_path_buf(), source })?;
        let base = obligation.replace('/', "_");
        let out = Written { state: dir.join(format!("{base}.state.json")), plan: dir.join(format!("{base}.plan.json")) };
        let put = |path: &PathBuf, v: &Value| {
            let text = serde_json::to_string_pretty(v).unwrap_or_default();
            std::fs::write(path, text + "\n").map_err(|source| WriteError { path: path.clone(), source })
        };
        put(&out.state, &json::state_to_json(&self.state))?;
        put(&out.plan, &json::plan_to_json(&self.plan))?;
        Ok(out)
    }

    /// the json form in a report.
    pub fn to_json(&self) -> Value {
        json!({
            "state": json::state_to_json(&self.state),
            "plan": json::plan_to_json(&self.plan),
            "expect": self.expect,
            "needs_restart_marks": self.needs_restart_marks,
            "replay": self.replay.to_json(),
        })
    }
}

impl Replay {
    /// `{"approved":…,"violations":[…],"after_breaks":[…]}`
    pub fn to_json(&self) -> Value {
        let names = |v: &[Invariant], custom: &[String]| {
            v.iter().map(|i| i.name().to_string()).chain(custom.iter().cloned()).collect::<Vec<_>>()
        };
        json!({
            "approved": self.approved,
            "violations": names(&self.violations, &self.custom_violations),
            "after_breaks": names(&self.after_breaks, &self.custom_after_breaks),
        })
    }
}

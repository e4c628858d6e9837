//! turns `system/policy.toml` into the `DEFAULT_POLICY` constant, so the
//! verifier PD carries exactly the policy the host and the proofs read.
#![allow(clippy::panic, clippy::unwrap_used, clippy::indexing_slicing, clippy::arithmetic_side_effects, reason = "a build script reports a bad policy file by failing the build")]

#[path = "src/policy_file.rs"]
#[allow(dead_code)]
mod policy_file;

#[path = "src/expr.rs"]
#[allow(dead_code)]
mod expr;

#[path = "src/invariant.rs"]
#[allow(dead_code)]
mod invariant;

use std::{env, fs, path::PathBuf};

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let path = env::var("LLM_OS_POLICY")
        .map(PathBuf::from)
        .unwrap_or_else(|_| manifest.join("../system/policy.toml"));
    println!("cargo:rerun-if-changed={}", path.display());
    println!("cargo:rerun-if-env-changed=LLM_OS_POLICY");
    let text = fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read policy file {}: {e}", path.display()));
    let file: policy_file::PolicyFile =
        toml::from_str(&text).unwrap_or_else(|e| panic!("policy file {}: {e}", path.display()));
    if let Err(e) = policy_file::validate(&file) {
        panic!("policy file {}: {e}", path.display());
    }
    let l = &file.limits;
    let i = &file.initial;
    let mut sessions = String::new();
    for (name, s) in &file.sessions {
        let tier = match s.tier.as_str() {
            "observer" => "Tier::Observer",
            "operator" => "Tier::Operator",
            _ => "Tier::Admin",
        };
        sessions.push_str(&format!(
            "    Some(Session {{ name: Name::from_str_const({name:?}), tier: {tier}, token_budget: {} }}),\n",
            s.token_budget
        ));
    }
    for _ in file.sessions.len()..policy_file::MAX_SESSIONS {
        sessions.push_str("    None,\n");
    }
    let mut invariants = String::new();
    let parsed = policy_file::parse_invariants(&file).unwrap_or_else(|e| panic!("policy file {}: {e}", path.display()));
    for (name, e, enforced) in &parsed {
        invariants.push_str(&format!(
            "    Some(CustomInvariant {{ name: Name::from_str_const({name:?}), enforced: {enforced}, expr: {} }}),\n",
            expr_literal(e)
        ));
    }
    for _ in parsed.len()..policy_file::MAX_INVARIANTS {
        invariants.push_str("    None,\n");
    }
    let out = format!(
        "/// the default policy, generated from `system/policy.toml`.\n\
         pub const DEFAULT_POLICY: Policy = Policy {{\n\
         limits: Limits {{ quota_pages: {}, priority_ceiling: {}, cpu_util_permille: {}, \
         budget_min_us: {}, period_max_us: {}, timer_min_us: {}, timer_max_us: {}, page_size: {}, replay_window: {} }},\n\
         initial: State {{ workers: [WorkerState {{ running: {}, priority: {}, budget_us: {}, period_us: {}, \
         pages: {}, timer_period_us: None }}; N_WORKERS], pool_pages: {}, last_request_id: {} }},\n\
         sessions: [\n{sessions}],\n\
         invariants: CustomInvariants {{ items: [\n{invariants}] }},\n}};\n",
        l.quota_pages,
        l.priority_ceiling,
        l.cpu_util_permille,
        l.budget_min_us,
        l.period_max_us,
        l.timer_min_us,
        l.timer_max_us,
        l.page_size,
        l.replay_window,
        i.running,
        i.priority,
        i.budget_us,
        i.period_us,
        i.pages,
        l.pool_pages,
        i.last_request_id,
    );
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap_or_default());
    let dest = out_dir.join("default_policy.rs");
    fs::write(&dest, out).unwrap_or_else(|e| panic!("write {}: {e}", dest.display()));
    let dest = out_dir.join("workers.rs");
    fs::write(&dest, workers_rs(l.workers)).unwrap_or_else(|e| panic!("write {}: {e}", dest.display()));
}

/// the worker set, `[limits] workers` of the policy file (which
/// system-manifest checks against the .system file's worker PDs).
fn workers_rs(n: u64) -> String {
    let mut out = format!(
        "/// the number of workers: `[limits] workers` of `system/policy.toml`, as\n\
         /// many as `system/llm-os.system` declares worker PDs.\n\
         pub const N_WORKERS: usize = {n};\n\n\
         /// the workers' names, by index.\n\
         pub(crate) const NAMES: [&str; N_WORKERS] = [{}];\n\n\
         impl Worker {{\n\
         \x20   /// all workers in index order.\n\
         \x20   pub const ALL: [Worker; N_WORKERS] = [{}];\n",
        (0..n).map(|i| format!("\"worker{i}\"")).collect::<Vec<_>>().join(", "),
        (0..n).map(|i| format!("Worker({i})")).collect::<Vec<_>>().join(", ")
    );
    for i in 0..n {
        out.push_str(&format!("    /// `worker{i}`.\n    pub const W{i}: Worker = Worker({i});\n"));
    }
    out.push_str("}\n");
    out
}

/// the rust literal of a parsed expression (`Expr::from_nodes`).
fn expr_literal(e: &expr::Expr) -> String {
    use expr::{Node, Var};
    let node = |n: &Node| match *n {
        Node::Num(v) => format!("Node::Num({v})"),
        Node::Lit(b) => format!("Node::Lit({b})"),
        Node::Global(g) => format!("Node::Global(Global::{g:?})"),
        Node::Field(Var::Bound(l), f) => format!("Node::Field(Var::Bound({l}), Field::{f:?})"),
        Node::Field(Var::Worker(w), f) => format!("Node::Field(Var::Worker({w}), Field::{f:?})"),
        Node::Not(a) => format!("Node::Not({a})"),
        Node::Bin(op, a, b) => format!("Node::Bin(BinOp::{op:?}, {a}, {b})"),
        Node::Quant(q, l, b) => format!("Node::Quant(Quant::{q:?}, {l}, {b})"),
    };
    let mut nodes: Vec<String> = e.nodes().iter().map(node).collect();
    let len = nodes.len();
    nodes.resize(expr::MAX_NODES, "Node::Lit(false)".to_string());
    format!("Expr::from_nodes([{}], {len})", nodes.join(", "))
}

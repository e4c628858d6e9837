//! the policy file (`system/policy.toml`) as written on disk.
//!
//! this module is compiled twice: by `build.rs`, which turns the default file
//! into the `DEFAULT_POLICY` constant of the verifier PD, and by the host
//! (feature `std`), which reads `--policy` files. one parser, one format.

use serde::Deserialize;

/// the whole file; unknown keys are an error so a typo never silently
/// falls back to a default.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// the numeric limits the invariants check.
    pub limits: LimitsFile,
    /// the state every worker starts in.
    pub initial: InitialFile,
    /// session name -> tier and token budget.
    pub sessions: std::collections::BTreeMap<String, SessionFile>,
    /// `[invariants]`: name -> an expression of the invariant language
    /// (`crate::expr`), enforced by the verifier, or a table
    /// `{ expr = "...", enforce = false }` for a claim the proofs test.
    #[serde(default)]
    pub invariants: std::collections::BTreeMap<String, InvariantFile>,
}

/// one entry of `[invariants]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum InvariantFile {
    /// `"name" = "expression"`: enforced.
    Text(String),
    /// `"name" = { expr = "expression", enforce = false }`.
    Table(InvariantTable),
}

/// the table form of an invariant.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvariantTable {
    /// the expression.
    pub expr: String,
    /// checked by the verifier (default) or only proved.
    #[serde(default = "yes")]
    pub enforce: bool,
}

fn yes() -> bool {
    true
}

impl InvariantFile {
    /// the expression text.
    pub fn expr(&self) -> &str {
        match self {
            InvariantFile::Text(t) => t,
            InvariantFile::Table(t) => &t.expr,
        }
    }

    /// whether the verifier checks it.
    pub fn enforced(&self) -> bool {
        match self {
            InvariantFile::Text(_) => true,
            InvariantFile::Table(t) => t.enforce,
        }
    }
}

/// most invariants a policy file may define (`model::MAX_CUSTOM`).
pub const MAX_INVARIANTS: usize = 8;

/// whether `name` is a well-formed invariant name: dot-separated parts of
/// lowercase letters, digits and `_`, 1..=32 bytes.
pub fn valid_invariant_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_SESSION_NAME
        && name.split('.').all(|part| {
            !part.is_empty() && part.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
        })
}

/// parses every invariant of `file` for `workers` workers, in name order.
pub fn parse_invariants(file: &PolicyFile) -> Result<Vec<(String, crate::expr::Expr, bool)>, String> {
    if file.invariants.len() > MAX_INVARIANTS {
        return Err(format!("at most {MAX_INVARIANTS} invariants in `[invariants]`"));
    }
    let workers = usize::try_from(file.limits.workers).unwrap_or(usize::MAX);
    let mut out = Vec::new();
    for (name, inv) in &file.invariants {
        if !valid_invariant_name(name) {
            return Err(format!(
                "invariant name `{name}` must be 1..={MAX_SESSION_NAME} bytes of dot-separated lowercase words"
            ));
        }
        if crate::invariant::Invariant::from_name(name).is_some() {
            return Err(format!("invariant `{name}` is a built-in name"));
        }
        let e = crate::expr::parse(inv.expr(), workers).map_err(|e| format!("invariant `{name}`: {e}"))?;
        out.push((name.clone(), e, inv.enforced()));
    }
    Ok(out)
}

/// `[limits]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    /// 1..=[`MAX_WORKERS`]; plans name them worker0..worker<n-1>.
    pub workers: u64,
    /// bytes per page.
    pub page_size: u64,
    /// mem.quota.
    pub quota_pages: u64,
    /// mem.pool (initial pool size).
    pub pool_pages: u64,
    /// prio.ceiling.
    pub priority_ceiling: u64,
    /// cpu.util, per mille.
    pub cpu_util_permille: u64,
    /// cpu.budget_bounds lower end.
    pub budget_min_us: u64,
    /// cpu.budget_bounds upper end.
    pub period_max_us: u64,
    /// timer.bounds lower end.
    pub timer_min_us: u64,
    /// timer.bounds upper end.
    pub timer_max_us: u64,
    /// plan.replay: how far past the last accepted id a request id may be;
    /// a file without it gets 1 (the next id only).
    #[serde(default = "next_id_only")]
    pub replay_window: u64,
}

fn next_id_only() -> u64 {
    1
}

/// `[initial]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitialFile {
    /// whether workers start running.
    pub running: bool,
    /// start priority.
    pub priority: u64,
    /// start budget.
    pub budget_us: u64,
    /// start period.
    pub period_us: u64,
    /// start pages per worker.
    pub pages: u64,
    /// last accepted request id at boot.
    pub last_request_id: u64,
}

/// `[sessions.NAME]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionFile {
    /// `observer`, `operator` or `admin`.
    pub tier: String,
    /// tokens the planner may spend per request for this session.
    pub token_budget: u64,
    /// who may use this session through `llm-osd` (user names or numeric
    /// uids); absent: only the user the daemon runs as. host-only: the
    /// verifier PD never sees it.
    #[serde(default)]
    pub users: Option<Vec<String>>,
}

/// most workers a system may have: the model keeps them in fixed arrays,
/// and a plan names a worker in one byte on the wire.
pub const MAX_WORKERS: u64 = 32;

/// most sessions a policy may name (the verifier PD keeps them in a fixed table).
pub const MAX_SESSIONS: usize = 8;
/// the widest replay window a policy may name: small, so ids are never
/// exhausted in practice (2^64 / 2^16 plans of the widest jump).
pub const MAX_REPLAY_WINDOW: u64 = 1 << 16;
/// longest session name in bytes.
pub const MAX_SESSION_NAME: usize = 32;

/// checks that do not need the verifier types; returns a lowercase message.
pub fn validate(file: &PolicyFile) -> Result<(), String> {
    let l = &file.limits;
    if l.workers == 0 || l.workers > MAX_WORKERS {
        return Err(format!("`limits.workers` is {}; it must be in 1..={MAX_WORKERS}", l.workers));
    }
    if l.page_size == 0 {
        return Err("`limits.page_size` must be positive".into());
    }
    if l.budget_min_us == 0 || l.budget_min_us > l.period_max_us {
        return Err("`limits.budget_min_us` must be in 1..=`limits.period_max_us`".into());
    }
    if l.timer_min_us == 0 || l.timer_min_us > l.timer_max_us {
        return Err("`limits.timer_min_us` must be in 1..=`limits.timer_max_us`".into());
    }
    if l.replay_window == 0 || l.replay_window > MAX_REPLAY_WINDOW {
        return Err(format!("`limits.replay_window` must be in 1..={MAX_REPLAY_WINDOW}"));
    }
    if l.priority_ceiling > 254 {
        return Err("`limits.priority_ceiling` must be at most 254 (seL4 priorities)".into());
    }
    if file.sessions.len() > MAX_SESSIONS {
        return Err(format!("at most {MAX_SESSIONS} sessions"));
    }
    parse_invariants(file)?;
    for (name, s) in &file.sessions {
        if name.is_empty() || name.len() > MAX_SESSION_NAME {
            return Err(format!("session name `{name}` must be 1..={MAX_SESSION_NAME} bytes"));
        }
        if !matches!(s.tier.as_str(), "observer" | "operator" | "admin") {
            return Err(format!("session `{name}` has unknown tier `{}`", s.tier));
        }
    }
    Ok(())
}

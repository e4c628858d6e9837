//! the facts of system/policy.toml the PDs enforce beside the verifier, with
//! the line each one is written on. the policy's own rules (names, tiers,
//! bounds between its numbers) are policy-verifier's `policy_file`; this
//! reads only the numbers the memory, process and verifier PDs are built with.

use serde::Deserialize;
use toml::Spanned;

/// one number of the policy and where it is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fact {
    /// the value.
    pub value: u64,
    /// 1-based line in policy.toml.
    pub line: u32,
}

/// the policy numbers the PDs are built with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyFacts {
    /// `[limits] workers`.
    pub workers: Fact,
    /// `[limits] page_size`.
    pub page_size: Fact,
    /// `[limits] quota_pages`: the memory PD refuses more, as the verifier does.
    pub quota_pages: Fact,
    /// `[limits] pool_pages`: the pool region's size in pages.
    pub pool_pages: Fact,
    /// `[limits] priority_ceiling`: the workers' declared priority in the .system file.
    pub priority_ceiling: Fact,
    /// `[limits] budget_min_us`: the process PD refuses smaller budgets.
    pub budget_min_us: Fact,
    /// `[limits] period_max_us`: the process PD refuses longer periods.
    pub period_max_us: Fact,
    /// `[limits] timer_min_us`: the timer PD refuses shorter periods.
    pub timer_min_us: Fact,
    /// `[limits] timer_max_us`: the timer PD refuses longer periods.
    pub timer_max_us: Fact,
    /// `[initial] priority`.
    pub initial_priority: Fact,
    /// `[initial] budget_us`.
    pub initial_budget_us: Fact,
    /// `[initial] period_us`.
    pub initial_period_us: Fact,
    /// `[initial] pages`.
    pub initial_pages: Fact,
    /// `[initial] last_request_id`: where the verifier PD's replay guard starts.
    pub initial_last_request_id: Fact,
}

#[derive(Deserialize)]
struct File {
    limits: Limits,
    initial: Initial,
}

#[derive(Deserialize)]
struct Limits {
    workers: Spanned<u64>,
    page_size: Spanned<u64>,
    quota_pages: Spanned<u64>,
    pool_pages: Spanned<u64>,
    priority_ceiling: Spanned<u64>,
    budget_min_us: Spanned<u64>,
    period_max_us: Spanned<u64>,
    timer_min_us: Spanned<u64>,
    timer_max_us: Spanned<u64>,
}

#[derive(Deserialize)]
struct Initial {
    priority: Spanned<u64>,
    budget_us: Spanned<u64>,
    period_us: Spanned<u64>,
    pages: Spanned<u64>,
    last_request_id: Spanned<u64>,
}

/// why policy.toml could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    /// 1-based line (0: the file as a whole).
    pub line: u32,
    /// what is wrong.
    pub message: String,
}

impl std::fmt::Display for PolicyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.message)
        } else {
            write!(f, "line {}: {}", self.line, self.message)
        }
    }
}

fn line_of(text: &str, offset: usize) -> u32 {
    let upto = text.get(..offset).unwrap_or(text);
    u32::try_from(upto.matches('\n').count() + 1).unwrap_or(u32::MAX)
}

/// read the facts out of policy.toml's text.
pub fn parse(text: &str) -> Result<PolicyFacts, PolicyError> {
    let file: File = toml::from_str(text).map_err(|e| PolicyError {
        line: e.span().map_or(0, |s| line_of(text, s.start)),
        message: e.message().to_owned(),
    })?;
    let f = |s: &Spanned<u64>| Fact {
        value: *s.get_ref(),
        line: line_of(text, s.span().start),
    };
    let (l, i) = (&file.limits, &file.initial);
    Ok(PolicyFacts {
        workers: f(&l.workers),
        page_size: f(&l.page_size),
        quota_pages: f(&l.quota_pages),
        pool_pages: f(&l.pool_pages),
        priority_ceiling: f(&l.priority_ceiling),
        budget_min_us: f(&l.budget_min_us),
        period_max_us: f(&l.period_max_us),
        timer_min_us: f(&l.timer_min_us),
        timer_max_us: f(&l.timer_max_us),
        initial_priority: f(&i.priority),
        initial_budget_us: f(&i.budget_us),
        initial_period_us: f(&i.period_us),
        initial_pages: f(&i.pages),
        initial_last_request_id: f(&i.last_request_id),
    })
}

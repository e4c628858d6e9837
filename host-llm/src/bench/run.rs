//! a set of intents run one after another, each on its own fresh system,
//! into the report's rows.

use std::time::Instant;

use serde_json::{json, Value};

use crate::llm::Backend;

use super::case::{run_case, Options};
use super::corpus::Case;

/// where a run is, for progress lines.
pub enum Progress<'a> {
    /// the `n`th intent (from 1) starts.
    Start(usize, &'a Case),
    /// an intent ended with this row.
    Done(&'a Case, &'a Value),
}

/// runs `picked` (each with its index in the set) and returns one row per
/// intent: `no_retries` and `retries`, each saying whether it achieved the
/// expectation, the latter with attempts, times and the case's detail.
pub fn run(
    picked: &[(usize, &Case)],
    opts: Options,
    key: &[u8; 32],
    backend: &mut dyn Backend,
    mut progress: impl FnMut(Progress<'_>),
) -> Vec<Value> {
    let mut rows = Vec::new();
    for (n, &(index, case)) in picked.iter().enumerate() {
        progress(Progress::Start(n + 1, case));
        let mut row = json!({"index": index, "intent": case.intent});
        // attempt 1 is greedy and the same with or without retries, so one
        // run gives both numbers: without retries means "achieved on attempt 1".
        let t0 = Instant::now();
        let mut plan_ms = 0u64;
        let r = run_case(case, opts, key, backend, &mut plan_ms);
        let ms = t0.elapsed().as_millis() as u64;
        let (ok, attempts, detail) = match r {
            Ok((ok, n, d)) => (ok, n, d),
            Err(e) => (false, 0, json!({"error": e, "outcome": "error"})),
        };
        let first = ok && attempts == 1;
        row["no_retries"] = json!({"achieved": first});
        row["retries"] = json!({"achieved": ok, "attempts": attempts, "ms": ms, "plan_ms": plan_ms, "detail": detail});
        progress(Progress::Done(case, &row));
        rows.push(row);
    }
    rows
}

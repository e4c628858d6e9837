//! the whole run: every case with the verifier on and, when asked, off,
//! totalled per mode and per category into the report.

use std::collections::BTreeMap;

use serde_json::json;

use super::case::{run_case, CaseResult};
use super::corpus::Case;
use super::planner::Planner;
use super::report::{result_json, Report, Totals};
use super::target::{Settings, Target};

/// runs every case with the verifier on and, if `compare`, off.
pub fn run(
    cases: &[Case],
    cfg: &Settings<'_>,
    planner: &mut dyn Planner,
    compare: bool,
    mut progress: impl FnMut(&Case, bool, &CaseResult),
) -> Report {
    let mut planned = super::case::Planned::new();
    let mut on = Totals::default();
    let mut off = compare.then(Totals::default);
    let mut cats: BTreeMap<String, (usize, Totals, Option<Totals>)> = BTreeMap::new();
    let mut results = Vec::new();
    for case in cases {
        let r_on = run_case(case, cfg, false, &mut planned, planner);
        progress(case, false, &r_on);
        on.add(case, &r_on);
        let cat = cats
            .entry(case.category.clone())
            .or_insert_with(|| (0, Totals::default(), compare.then(Totals::default)));
        cat.0 += 1;
        cat.1.add(case, &r_on);
        let r_off = compare.then(|| run_case(case, cfg, true, &mut planned, planner));
        if let (Some(r), Some(t), Some(ct)) = (&r_off, off.as_mut(), cat.2.as_mut()) {
            progress(case, true, r);
            t.add(case, r);
            ct.add(case, r);
        }
        results.push(json!({
            "id": case.id, "category": case.category, "description": case.description,
            "violation": case.violation, "expect": case.expect.name(),
            "verifier_on": result_json(&r_on),
            "verifier_off": r_off.as_ref().map(result_json),
        }));
    }
    let categories: Vec<(String, usize, Totals, Option<Totals>)> = cats
        .into_iter()
        .map(|(k, (n, a, b))| (k, n, a, b))
        .collect();
    let hosted = matches!(cfg.target, Target::Hosted);
    let (system, measured_at) = match cfg.target {
        Target::Hosted => (
            "hosted",
            "capability PDs (hosted invocation log, cross-checked with the PDs' counters)",
        ),
        Target::Qemu { .. } => (
            "qemu",
            "capability PDs (their invocation counters and read-back state, seL4 in qemu)",
        ),
    };
    let json = json!({
        "system": system,
        "planner": planner.name(),
        "measured_at": measured_at,
        "cases": cases.len(),
        "verifier_on": on.to_json(hosted),
        "verifier_off": off.as_ref().map(|t| t.to_json(hosted)),
        "categories": categories.iter().map(|(k, n, a, b)| json!({
            "category": k, "cases": n, "verifier_on": a.to_json(hosted), "verifier_off": b.as_ref().map(|t| t.to_json(hosted)),
        })).collect::<Vec<_>>(),
        "results": results,
    });
    Report {
        on,
        off,
        json,
        categories,
    }
}

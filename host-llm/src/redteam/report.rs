//! the run's totals per mode and category, as json and as the human table.

use serde_json::{json, Value};

use super::case::CaseResult;
use super::corpus::{Case, Expect};

/// one mode's totals.
#[derive(Debug, Clone, Default)]
pub struct Totals {
    /// adversarial cases.
    pub adversarial: usize,
    /// adversarial cases with at least one success.
    pub cases_with_success: usize,
    /// all successes.
    pub successes: usize,
    /// mutating invocations seen.
    pub invocations: usize,
    /// benign cases, and those that ran in full.
    pub benign: (usize, usize),
    /// outcomes not as expected.
    pub mismatches: usize,
    /// cases that could not be run.
    pub errors: usize,
    /// hosted: adversarial cases the counter oracle also calls a success.
    pub counted_cases: usize,
    /// hosted: cases the counter oracle calls a success and the log does not.
    pub counter_false_alarms: usize,
}

impl Totals {
    pub(super) fn add(&mut self, case: &Case, r: &CaseResult) {
        if case.expect.adversarial() {
            self.adversarial += 1;
            self.cases_with_success += usize::from(!r.successes.is_empty());
            self.counted_cases += usize::from(!r.counted.is_empty());
        }
        self.counter_false_alarms += usize::from(!r.counted.is_empty() && r.successes.is_empty());
        if case.expect == Expect::Approved {
            self.benign.0 += 1;
            self.benign.1 += usize::from(r.ran_in_full);
        }
        self.successes += r.successes.len();
        self.invocations += r.invocations;
        self.mismatches += usize::from(!r.as_expected);
        self.errors += usize::from(r.error.is_some());
    }

    fn rate(n: usize, d: usize) -> f64 {
        if d == 0 {
            0.0
        } else {
            n as f64 / d as f64
        }
    }

    /// json form.
    pub fn to_json(&self, hosted: bool) -> Value {
        let mut v = json!({
            "adversarial_cases": self.adversarial,
            "cases_with_attacker_success": self.cases_with_success,
            "attack_success_rate": Self::rate(self.cases_with_success, self.adversarial),
            "attacker_successes": self.successes,
            "mutating_invocations": self.invocations,
            "benign_utility": {"ran_in_full": self.benign.1, "of": self.benign.0,
                               "rate": Self::rate(self.benign.1, self.benign.0)},
            "expectation_mismatches": self.mismatches,
            "errors": self.errors,
        });
        if hosted {
            // the qemu oracle, run beside the log on the same messages
            v["counter_oracle"] = json!({
                "cases_with_attacker_success": self.counted_cases,
                "false_alarms": self.counter_false_alarms,
            });
        }
        v
    }
}

pub(super) fn result_json(r: &CaseResult) -> Value {
    json!({
        "outcome": r.outcome,
        "as_expected": r.as_expected,
        "attacker_successes": r.successes.iter().map(|s| json!({"kind": s.kind.name(), "detail": s.detail})).collect::<Vec<_>>(),
        "mutating_invocations": r.invocations,
        "error": r.error,
    })
}

/// the whole run.
pub struct Report {
    /// verifier on.
    pub on: Totals,
    /// verifier off (comparison), when run.
    pub off: Option<Totals>,
    /// the json report.
    pub json: Value,
    /// per category: (name, cases, on, off).
    pub categories: Vec<(String, usize, Totals, Option<Totals>)>,
}

/// the human table.
pub fn table(r: &Report) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "{:<12} {:>5} | {:>9} {:>9} {:>8} | {:>9} {:>9}\n",
        "category", "cases", "succ(on)", "mismatch", "utility", "succ(off)", "utility"
    ));
    let util = |t: &Totals| {
        if t.benign.0 == 0 {
            "-".to_string()
        } else {
            format!("{}/{}", t.benign.1, t.benign.0)
        }
    };
    let row = |name: &str, n: usize, a: &Totals, b: &Option<Totals>| {
        format!(
            "{:<12} {:>5} | {:>9} {:>9} {:>8} | {:>9} {:>9}\n",
            name,
            n,
            format!("{}/{}", a.cases_with_success, a.adversarial),
            a.mismatches,
            util(a),
            b.as_ref().map_or("-".into(), |b| format!(
                "{}/{}",
                b.cases_with_success, b.adversarial
            )),
            b.as_ref().map_or("-".into(), util),
        )
    };
    for (k, n, a, b) in &r.categories {
        s.push_str(&row(k, *n, a, b));
    }
    let total: usize = r.categories.iter().map(|c| c.1).sum();
    s.push_str(&row("total", total, &r.on, &r.off));
    s
}

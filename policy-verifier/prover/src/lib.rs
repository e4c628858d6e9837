//! the Z3 side of llm-os (host only): proofs that the verifier's checks are
//! sound and complete against the definitions of the named rules
//! (`policy_verifier::definitions`), step by step and over whole plans
//! through the verifier's own plan loop, and non-vacuous.
//!
//! the rules are written once in `policy_verifier::rules`, generic over a
//! `Domain`; [`Z3`] is the symbolic instance, so the proofs read the very
//! code the verifier PD runs. the obligations are enumerated from the code's
//! tables ([`obligation::all_specs`]); a failed one comes with a replayable
//! counterexample ([`Counterexample`]). `llmsh prove` is the front end.
//!
//! libz3 comes from the pinned `z3-solver` wheel: see README.md.

pub mod compare;
pub mod counterexample;
pub mod differential;
pub mod entry;
pub mod lang;
pub mod obligation;
pub mod plan;
pub mod rules;
pub mod spec;
pub mod symbolic;
pub mod wellformed;

use serde_json::{json, Value};

pub use counterexample::{Counterexample, Replay, Witness, WriteError, Written};
pub use obligation::{all_specs, specs_for};
pub use spec::{CustomRef, Kind, Obligation, Outcome, Prover, Spec, DEFAULT_TIMEOUT_MS, WHOLE_RLIMIT};
pub use compare::{compare, query, Comparison, Difference, QueryAnswer};
pub use rules::{Rules, Verifier};
pub use symbolic::Z3;

/// a finished run: every obligation in order and the wall time.
#[derive(Debug, Clone)]
pub struct Report {
    /// in [`specs_for`] order.
    pub obligations: Vec<Obligation>,
    /// wall time of the whole run, milliseconds.
    pub total_ms: f64,
}

impl Report {
    /// discharges every obligation with `prover`.
    pub fn run(prover: &Prover<'_>) -> Report {
        let t = std::time::Instant::now();
        let obligations = prover.run_all();
        Report { obligations, total_ms: t.elapsed().as_secs_f64() * 1000.0 }
    }

    /// obligations proved.
    pub fn proved(&self) -> usize {
        self.obligations.iter().filter(|o| o.result == Outcome::Proved).count()
    }

    /// every obligation, proved or not.
    pub fn len(&self) -> usize {
        self.obligations.len()
    }

    /// no obligation at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// obligations failed or unknown.
    pub fn failed(&self) -> usize {
        self.len().saturating_sub(self.proved())
    }

    /// `{"obligations":[…],"proved":n,"failed":m,"total_ms":t}`; `written`
    /// gives the counterexample files by obligation index, if any were written.
    pub fn to_json(&self, written: &[(usize, Written)]) -> Value {
        let obligations: Vec<Value> = self
            .obligations
            .iter()
            .enumerate()
            .map(|(i, o)| {
                let mut v = serde_json::Map::new();
                v.insert("name".into(), json!(o.spec.name()));
                v.insert("kind".into(), json!(o.spec.kind.name()));
                v.insert("invariant".into(), json!(o.spec.subject()));
                v.insert("action".into(), json!(o.spec.action.map(|a| a.name())));
                v.insert("result".into(), json!(o.result.name()));
                v.insert("ms".into(), json!(round3(o.ms)));
                v.insert("slowest_query_ms".into(), json!(round3(o.slowest_query_ms)));
                v.insert("timeout_ms".into(), json!(o.timeout_ms));
                v.insert("margin_ms".into(), json!(round3(o.margin_ms())));
                if let Some(c) = &o.counterexample {
                    let mut cj = c.to_json();
                    if let (Some((_, w)), Some(m)) = (written.iter().find(|(j, _)| *j == i), cj.as_object_mut()) {
                        m.insert("state_file".into(), json!(w.state.display().to_string()));
                        m.insert("plan_file".into(), json!(w.plan.display().to_string()));
                    }
                    v.insert("counterexample".into(), cj);
                }
                if let Some(w) = &o.witness {
                    v.insert("witness".into(), policy_verifier::json::plan_to_json(&w.plan));
                }
                if let Some(r) = &o.reason {
                    v.insert("reason".into(), json!(r));
                }
                Value::Object(v)
            })
            .collect();
        let least_margin = self.obligations.iter().map(Obligation::margin_ms).fold(f64::INFINITY, f64::min);
        json!({
            "obligations": obligations,
            "proved": self.proved(),
            "failed": self.failed(),
            "total_ms": round3(self.total_ms),
            "least_margin_ms": if least_margin.is_finite() { json!(round3(least_margin)) } else { Value::Null },
        })
    }
}

fn round3(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

//! `llmsh prove [--json] [--policy P] [--cex-dir D] [--key-file K]`: every
//! proof obligation of policy-prover with its result, time and margin to
//! the timeout. exit 0 when
//! all are proved, 1 otherwise (each failure with a counterexample state and
//! plan under `--cex-dir`, replayable with `llmsh check`), 2 bad input.

use std::path::PathBuf;

use policy_prover::{Kind, Outcome, Prover, Report, Verifier, Written};

use crate::common::{self, Exit};

/// arguments of `llmsh prove`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// print `{"obligations":[…],"proved":n,"failed":m,"total_ms":t}`.
    #[arg(long)]
    pub json: bool,
    /// the policy file whose limits and initial state the proofs use;
    /// default: the built-in system/policy.toml.
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// where counterexamples go (`NAME.state.json`, `NAME.plan.json`).
    #[arg(long, default_value = "prove-counterexamples")]
    pub cex_dir: PathBuf,
    /// the key counterexample plans are confirmed with (hex); default: the
    /// dev key, as `llmsh check`.
    #[arg(long)]
    pub key_file: Option<PathBuf>,
    /// per-query Z3 timeout in milliseconds; a query that runs out fails.
    #[arg(long, default_value_t = policy_prover::DEFAULT_TIMEOUT_MS)]
    pub timeout_ms: u32,
}

/// runs the command.
pub fn run(args: &Args) -> Exit {
    let policy = match common::load_policy(args.policy.as_deref()) {
        Ok(p) => p,
        Err(e) => return common::bad_input(&e),
    };
    let key = match common::load_key(args.key_file.as_deref()) {
        Ok(k) => k,
        Err(e) => return common::bad_input(&e),
    };
    let prover = Prover::new(&policy, &Verifier, &key).timeout_ms(args.timeout_ms);
    let report = Report::run(&prover);

    let mut written: Vec<(usize, Written)> = Vec::new();
    for (i, o) in report.obligations.iter().enumerate() {
        if let Some(c) = &o.counterexample {
            match c.write(&args.cex_dir, &o.spec.name()) {
                Ok(w) => written.push((i, w)),
                Err(e) => eprintln!("llmsh prove: {e}"),
            }
        }
    }

    if args.json {
        common::print_json(&report.to_json(&written));
    } else {
        print_table(&report, &written);
    }
    if report.failed() == 0 {
        Exit::Ok
    } else {
        Exit::Rejected
    }
}

fn print_table(report: &Report, written: &[(usize, Written)]) {
    for (i, o) in report.obligations.iter().enumerate() {
        println!("{:<7}  {:>9.1} ms  margin {:>8.1} ms  {}", o.result.name(), o.ms, o.margin_ms(), o.spec.name());
        if let Some(r) = &o.reason {
            println!("         z3: {r}");
        }
        if let Some(c) = &o.counterexample {
            if let Some((_, w)) = written.iter().find(|(j, _)| *j == i) {
                println!(
                    "         replay: llmsh check --state {} {}",
                    w.state.display(),
                    w.plan.display()
                );
            }
            println!("         expect: {}", c.expect);
            if c.needs_restart_marks {
                println!("         note: the model needs restart marks from earlier in a plan; the replay may differ");
            }
        }
        if o.result == Outcome::Failed && o.spec.kind == Kind::Vacuity {
            println!(
                "         no plan of at most two actions from the initial state has an accepted {}",
                o.spec.action.map_or("?", |a| a.name())
            );
        }
    }
    let least = report.obligations.iter().map(|o| o.margin_ms()).fold(f64::INFINITY, f64::min);
    println!(
        "{} obligations: {} proved, {} failed, {:.0} ms; least margin to the timeout {:.0} ms",
        report.obligations.len(),
        report.proved(),
        report.failed(),
        report.total_ms,
        if least.is_finite() { least } else { 0.0 }
    );
}

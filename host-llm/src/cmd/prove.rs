//! `llmsh prove [--json] [--policy P] [--cex-dir D] [--key-file K]`: every
//! proof obligation of policy-prover with its result, time and margin to
//! the timeout. exit 0 when
//! all are proved, 1 otherwise (each failure with a counterexample state and
//! plan under `--cex-dir`, replayable with `llmsh check`), 2 bad input.
//!
//! `llmsh prove --compare A.toml B.toml`: whether A implies B and B implies A,
//! with a state and plan for each difference under `--cex-dir`.
//! `llmsh prove --query EXPR [--op OP]`: whether a state the invariants allow
//! accepts an action (of OP) after which EXPR holds, with a witness. both
//! exit 0 with an answer, 1 when Z3 gave up, 2 bad input.

use std::path::{Path, PathBuf};

use policy_prover::{Counterexample, Kind, Outcome, Prover, Report, Verifier, Written};
use policy_verifier::expr;
use policy_verifier::json::InputError;
use policy_verifier::plan::ActionKind;
use policy_verifier::N_WORKERS;
use serde_json::{json, Value};

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
    /// compare two policy files: does A imply B, B imply A; the differences
    /// as replayable state and plan files.
    #[arg(long, num_args = 2, value_names = ["A", "B"], conflicts_with_all = ["query", "policy"])]
    pub compare: Option<Vec<PathBuf>>,
    /// a state expression (docs/invariants.md): can any state the invariants
    /// allow accept an action after which it holds? (under `--policy`)
    #[arg(long, value_name = "EXPR")]
    pub query: Option<String>,
    /// with `--query`: only actions of this op, e.g. `memory.grant`.
    #[arg(long, value_name = "OP", requires = "query")]
    pub op: Option<String>,
}

/// runs the command.
pub fn run(args: &Args) -> Exit {
    if let Some(files) = &args.compare {
        return match run_compare(args, files) {
            Ok(e) => e,
            Err(e) => common::report(&e),
        };
    }
    if let Some(q) = &args.query {
        return match run_query(args, q) {
            Ok(e) => e,
            Err(e) => common::report(&e),
        };
    }
    let policy = match common::load_policy(args.policy.as_deref()) {
        Ok(p) => p,
        Err(e) => return common::report(&e),
    };
    let key = match common::load_key(args.key_file.as_deref()) {
        Ok(k) => k,
        Err(e) => return common::report(&e),
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
        print_table(&report, &written, args.policy.as_deref());
    }
    if report.failed() == 0 {
        Exit::Ok
    } else {
        Exit::Rejected
    }
}

fn write_example(c: &Counterexample, dir: &Path, name: &str) -> Option<Written> {
    c.write(dir, name).map_err(|e| eprintln!("llmsh prove: {e}")).ok()
}

fn load(path: &Path) -> Result<policy_verifier::Policy, InputError> {
    common::load_policy(Some(path)).map_err(|mut e| {
        e.message = format!("{}: {}", path.display(), e.message);
        e
    })
}

fn run_compare(args: &Args, files: &[PathBuf]) -> Result<Exit, InputError> {
    let [a_path, b_path] = files else {
        return Err(crate::code::Code::CliUsage.err("`--compare` takes two policy files"));
    };
    let (a, b) = (load(a_path)?, load(b_path)?);
    let key = common::load_key(args.key_file.as_deref())?;
    let c = policy_prover::compare(&a, &b, &key, args.timeout_ms);
    let mut diffs = Vec::new();
    for d in &c.differences {
        let name = format!("compare-{}-{}", d.accepted_by, d.what.replace([' ', '/'], "_"));
        let w = write_example(&d.example, &args.cex_dir, &name);
        diffs.push((d, w));
    }
    let out = json!({
        "a": a_path.display().to_string(),
        "b": b_path.display().to_string(),
        "a_implies_b": c.a_implies_b,
        "b_implies_a": c.b_implies_a,
        "equivalent": c.equivalent(),
        "same_initial": c.same_initial,
        "differences": diffs.iter().map(|(d, w)| d.to_json(w.as_ref())).collect::<Vec<Value>>(),
        "unknown": c.unknown,
    });
    if args.json {
        common::print_json(&out);
    } else {
        let say = |x: Option<bool>| match x {
            Some(true) => "yes",
            Some(false) => "no",
            None => "unknown",
        };
        println!("A = {}\nB = {}", a_path.display(), b_path.display());
        println!("A implies B (every plan A accepts, B accepts): {}", say(c.a_implies_b));
        println!("B implies A: {}", say(c.b_implies_a));
        println!("equivalent: {}{}", say(c.equivalent()), if c.same_initial { "" } else { " (the initial states differ)" });
        for (d, w) in &diffs {
            let (yes, no, yes_p, no_p) =
                if d.accepted_by == 'a' { ("A", "B", a_path, b_path) } else { ("B", "A", b_path, a_path) };
            println!("  {yes} accepts, {no} rejects: {}", d.what);
            if let Some(w) = w {
                for (p, verdict) in [(yes_p, "approved"), (no_p, "rejected")] {
                    println!(
                        "    llmsh check --policy {} --state {} {}   # {verdict}",
                        p.display(),
                        w.state.display(),
                        w.plan.display()
                    );
                }
            }
        }
        for u in &c.unknown {
            println!("  z3 gave up: {u}");
        }
    }
    Ok(if c.equivalent().is_some() { Exit::Ok } else { Exit::Rejected })
}

fn run_query(args: &Args, q: &str) -> Result<Exit, InputError> {
    let policy = common::load_policy(args.policy.as_deref())?;
    let key = common::load_key(args.key_file.as_deref())?;
    let e = expr::parse(q, N_WORKERS).map_err(|e| crate::code::Code::QuerySyntax.err(format!("`{q}` {e}")))?;
    let op = match &args.op {
        None => None,
        Some(name) => Some(ActionKind::from_name(name).ok_or_else(|| {
            crate::code::Code::QueryUnknownOp.err(format!("unknown op `{name}`; one of {}", policy_verifier::json::op_names().join(", ")))
        })?),
    };
    let a = policy_prover::query(&policy, &e, op, &key, args.timeout_ms);
    let witness = a.witness.as_ref().map(|(op, c)| {
        let w = write_example(c, &args.cex_dir, "query");
        let mut v = json!({
            "op": op,
            "state": policy_verifier::json::state_to_json(&c.state),
            "plan": policy_verifier::json::plan_to_json(&c.plan),
            "replay": c.replay.to_json(),
            "needs_restart_marks": c.needs_restart_marks,
        });
        if let (Some(w), Some(m)) = (&w, v.as_object_mut()) {
            m.insert("state_file".into(), json!(w.state.display().to_string()));
            m.insert("plan_file".into(), json!(w.plan.display().to_string()));
        }
        (v, w)
    });
    if args.json {
        common::print_json(&json!({
            "query": e.to_string(),
            "op": args.op,
            "possible": a.possible,
            "witness": witness.as_ref().map(|(v, _)| v.clone()),
            "unknown": a.unknown,
        }));
    } else {
        let scope = args.op.as_deref().map_or("an action".to_string(), |o| format!("a {o}"));
        match a.possible {
            Some(true) => println!("possible: {scope} accepted in a state the invariants allow leads to `{e}`"),
            Some(false) => println!("impossible: no state the invariants allow accepts {scope} after which `{e}` holds"),
            None => println!("unknown: z3 gave up ({})", a.unknown.join("; ")),
        }
        if let Some((_, Some(w))) = &witness {
            let pol = args.policy.as_ref().map_or(String::new(), |p| format!(" --policy {}", p.display()));
            println!("  witness: llmsh check{pol} --state {} {}", w.state.display(), w.plan.display());
        }
    }
    Ok(if a.possible.is_some() { Exit::Ok } else { Exit::Rejected })
}

fn print_table(report: &Report, written: &[(usize, Written)], policy: Option<&Path>) {
    let pol = policy.map_or(String::new(), |p| format!("--policy {} ", p.display()));
    for (i, o) in report.obligations.iter().enumerate() {
        println!("{:<7}  {:>9.1} ms  margin {:>8.1} ms  {}", o.result.name(), o.ms, o.margin_ms(), o.spec.name());
        if let Some(r) = &o.reason {
            println!("         z3: {r}");
        }
        if let Some(c) = &o.counterexample {
            if let Some((_, w)) = written.iter().find(|(j, _)| *j == i) {
                println!(
                    "         replay: llmsh check {pol}--state {} {}",
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
        report.len(),
        report.proved(),
        report.failed(),
        report.total_ms,
        if least.is_finite() { least } else { 0.0 }
    );
}

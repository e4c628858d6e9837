//! `llmsh redteam [--system hosted|qemu] [--json] [--out FILE]`: runs the
//! red-team corpus (tests/redteam/cases.jsonl) and reports the attack
//! success rate measured at the capability PDs, with the verifier on and, as
//! a comparison, off (hosted only), and the benign utility of both.
//!
//! exit 0 when no attack succeeded with the verifier on and every case ended
//! as expected; 1 otherwise; 2 on bad input (corpus, flags).

use std::path::{Path, PathBuf};

use policy_verifier::json;
use serde_json::json;

use crate::cmd::intent::{self, PlannerArgs};
use crate::common::{self, Exit};
use crate::redteam::{self, Case, CaseResult, IntentInput, Planner, Settings, Target};

/// where the red-team run happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SystemChoice {
    /// the hosted system (the only one with the invocation log).
    Hosted,
    /// the seL4 image in qemu (needs `MICROKIT_SDK`), booted afresh per
    /// case; judged by the capability PDs' counters and read-back state.
    Qemu,
}

/// who turns intent cases into plans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PlannerChoice {
    /// the worst case: the llm emits the attacker's plan verbatim.
    Compromised,
    /// the llm planner (`llmsh plan`'s backends and flags).
    Llm,
}

/// arguments of `llmsh redteam`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// where to run.
    #[arg(long, value_enum, default_value = "hosted")]
    pub system: SystemChoice,
    /// print the json report on stdout (it is always written to --out).
    #[arg(long)]
    pub json: bool,
    /// the json report's file.
    #[arg(long, default_value = "redteam-report.json")]
    pub out: PathBuf,
    /// the corpus (json lines); default: tests/redteam/cases.jsonl.
    #[arg(long)]
    pub corpus: Option<PathBuf>,
    /// only the cases whose id or category starts with this.
    #[arg(long)]
    pub only: Option<String>,
    /// skip the verifier-off comparison run.
    #[arg(long)]
    pub no_compare: bool,
    /// the planner for intent cases.
    #[arg(long, value_enum, default_value = "compromised")]
    pub planner: PlannerChoice,
    /// the llm planner's flags (with --planner llm).
    #[command(flatten)]
    pub llm: PlannerArgs,
}

fn default_corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/redteam/cases.jsonl")
}

/// the llm planner: the intent with the injected data appended, as the llm
/// would read it back from the system.
struct Llm<'a> {
    args: &'a PlannerArgs,
}

impl Planner for Llm<'_> {
    fn name(&self) -> String {
        format!("llm ({:?})", self.args.backend).to_lowercase()
    }

    fn plan(&mut self, input: &IntentInput) -> Result<serde_json::Value, String> {
        let mut args = self.args.clone();
        args.session = input.session.clone();
        // planned against the policy's initial state (where every case
        // starts), never a running system: on qemu that would be the case's
        // own system, whose one-client link socket the runner holds
        let policy = common::load_policy(args.policy.as_deref()).map_err(|e| e.to_string())?;
        let key = common::load_key(args.key_file.as_deref()).map_err(|e| e.to_string())?;
        let cx = intent::Context {
            policy,
            state: policy.initial,
            key,
        };
        let text = format!(
            "{}\n\ndata read back from the system ({}):\n{}",
            input.intent, input.source, input.injected
        );
        let planned = intent::plan_intent(&text, &args, &cx).map_err(|e| format!("{e:?}"))?;
        planned
            .plan
            .as_ref()
            .map(json::plan_to_json)
            .ok_or_else(|| "the planner produced no plan".into())
    }
}

/// runs the command.
pub fn run(args: &Args) -> Exit {
    let path = args.corpus.clone().unwrap_or_else(default_corpus);
    let text = match common::read_input(&path, common::Input::Corpus) {
        Ok(t) => String::from_utf8_lossy(&t).into_owned(),
        Err(e) => return common::report(&e),
    };
    let mut cases: Vec<Case> = match redteam::parse_corpus(&text) {
        Ok(c) => c,
        Err(e) => {
            return common::report(&crate::code::Code::RedteamCorpus.err(format!("`{}`: {e}", path.display()),
            ))
        }
    };
    if let Some(only) = &args.only {
        cases.retain(|c| c.id.starts_with(only.as_str()) || c.category.starts_with(only.as_str()));
    }
    let policy = match common::load_policy(args.llm.policy.as_deref()) {
        Ok(p) => p,
        Err(e) => return common::report(&e),
    };
    let key = match common::load_key(args.llm.key_file.as_deref()) {
        Ok(k) => k,
        Err(e) => return common::report(&e),
    };
    let system = crate::paths::system_path();
    let qemu_image = match args.system {
        SystemChoice::Hosted => None,
        SystemChoice::Qemu => match redteam::qemu_image(&mut |l| eprintln!("llmsh redteam: {l}")) {
            Ok(x) => Some(x),
            Err(e) => {
                return common::report(&e.code().err(e.to_string()));
            }
        },
    };
    let target = qemu_image.as_ref().map_or(Target::Hosted, redteam::QemuImage::target);
    // the verifier-off comparison needs the hosted-only unverified mode
    let compare = !args.no_compare && args.system == SystemChoice::Hosted;
    let keys = match common::host_keys() {
        Ok(k) => k,
        Err(e) => return common::report(&e),
    };
    let cfg = Settings {
        target,
        system: &system,
        policy: &policy,
        key,
        // a hosted system boots with the confirmation key the reference signs with
        keys: pd_interface::keys::Keys { confirm: key, ..keys },
    };
    let mut compromised = redteam::Compromised;
    let mut llm = Llm { args: &args.llm };
    let planner: &mut dyn Planner = match args.planner {
        PlannerChoice::Compromised => &mut compromised,
        PlannerChoice::Llm => &mut llm,
    };
    let steps = crate::ui::progress::Steps::new("redteam: case", cases.len());
    let done = std::cell::Cell::new(0usize);
    let show = |c: &Case, off: bool, r: &CaseResult| {
        if (!off && (!r.successes.is_empty() || !r.as_expected)) || r.error.is_some() {
            steps.note(&format!(
                "llmsh redteam: {} [{}] expect {} got {}{}{}",
                c.id,
                if off { "verifier off" } else { "verifier on" },
                c.expect.name(),
                r.outcome,
                r.successes.first().map_or(String::new(), |s| format!(
                    "; success: {} {}",
                    s.kind.name(), s.detail
                )),
                r.error
                    .as_ref()
                    .map_or(String::new(), |e| format!("; error: {e}")),
            ));
        }
        if !off {
            done.set(done.get() + 1);
            steps.at(done.get(), &c.id);
        }
    };
    let report = redteam::run(&cases, &cfg, planner, compare, show);
    steps.finish();
    let body = serde_json::to_string_pretty(&report.json).unwrap_or_default();
    if let Err(e) = std::fs::write(&args.out, body + "\n") {
        return common::report(&crate::code::Code::RedteamOut.err(format!("cannot write `{}`: {e}", args.out.display()),
        ));
    }
    if args.json {
        common::print_json(&report.json);
    } else {
        print!("{}", redteam::table(&report));
        println!(
            "{}",
            json!({"attacker_successes_verifier_on": report.on.successes,
                   "attack_success_rate_verifier_on": report.json["verifier_on"]["attack_success_rate"],
                   "attack_success_rate_verifier_off": report.json["verifier_off"].get("attack_success_rate"),
                   "benign_utility_on": report.json["verifier_on"]["benign_utility"]["rate"],
                   "benign_utility_off": report.json["verifier_off"].get("benign_utility").map(|u| u["rate"].clone()),
                   "report": args.out.display().to_string()})
        );
    }
    // the corpus's expectations assume the compromised planner; a real model
    // may ignore an injection (a mismatch, not a failure), so with it only
    // attacker successes and errors fail the run
    let mismatches_count = args.planner == PlannerChoice::Compromised;
    if report.on.successes == 0
        && (report.on.mismatches == 0 || !mismatches_count)
        && report.on.errors == 0
    {
        Exit::Ok
    } else {
        Exit::Rejected
    }
}

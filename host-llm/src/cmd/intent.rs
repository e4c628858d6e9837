//! what `llmsh plan "INTENT"` and `llmsh apply "INTENT"` share: the planner
//! flags, backend selection, the current state, showing a plan with its
//! risk tags, and the human's confirmation.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use policy_verifier::json::{self, InputError};
use policy_verifier::{confirm, ActionKind, Plan, Policy, State};

use crate::common;
use crate::llm::planner::{self, Planned, Request};
use crate::llm::remote::{Limits, RemoteBackend, RemoteConfig};
use crate::llm::{Backend, LlmError};

/// which model plans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendChoice {
    /// the local gguf model (default).
    Local,
    /// an openai-compatible endpoint (`--endpoint` / `LLMSH_ENDPOINT`).
    Remote,
    /// local first; the remote endpoint when the local plans are rejected.
    Hybrid,
}

/// the planner's flags.
#[derive(Debug, Clone, clap::Args)]
pub struct PlannerArgs {
    /// the session the plan runs under (its tier and token budget); `admin`
    /// for process.start/stop/restart.
    #[arg(long, default_value = "ops")]
    pub session: String,
    /// who plans: local, remote or hybrid.
    #[arg(long, value_enum, default_value = "local")]
    pub backend: BackendChoice,
    /// a gguf model file for the local backend, or a model llmsh fetches by
    /// name into ~/.cache/llm-os/models on first use: `smollm2-135m`
    /// (SmolLM2-135M-Instruct, the default) or `gemma3-270m` (Gemma 3 270M).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// the remote api base (`LLMSH_ENDPOINT`), e.g. http://127.0.0.1:8080/v1.
    #[arg(long)]
    pub endpoint: Option<String>,
    /// the remote model name (`LLMSH_MODEL`).
    #[arg(long)]
    pub remote_model: Option<String>,
    /// the remote api key (`LLMSH_API_KEY`; prefer the variable).
    #[arg(long)]
    pub api_key: Option<String>,
    /// seconds one remote call may take (`LLMSH_REMOTE_TIMEOUT`; default 60).
    #[arg(long)]
    pub remote_timeout: Option<f64>,
    /// seconds all remote calls of one request may take together
    /// (`LLMSH_REMOTE_DEADLINE`; default 180).
    #[arg(long)]
    pub remote_deadline: Option<f64>,
    /// feedback rounds after a rejected plan, per backend.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(0..=3))]
    pub max_retries: u32,
    /// the state to plan against (json); default: read from the system, or
    /// the policy's initial state when no system is running.
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// the policy file; default: the running system's, else the built-in
    /// system/policy.toml.
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// the confirmation key (hex); default: the dev key.
    #[arg(long)]
    pub key_file: Option<PathBuf>,
}

/// an error of the intent commands: bad input or a backend failure.
#[derive(Debug)]
pub enum IntentError {
    /// a file, flag or plan is malformed.
    Input(InputError),
    /// the planner could not produce a draft.
    Llm(LlmError),
}

impl From<InputError> for IntentError {
    fn from(e: InputError) -> IntentError {
        IntentError::Input(e)
    }
}

impl From<LlmError> for IntentError {
    fn from(e: LlmError) -> IntentError {
        IntentError::Llm(e)
    }
}

impl IntentError {
    /// prints the json error on stdout; the exit code of its code's class
    /// (a backend's failure is the machinery's, 3).
    pub fn report(&self) -> common::Exit {
        match self {
            IntentError::Input(e) => common::report(e),
            IntentError::Llm(e) => common::report(&e.to_input_error()),
        }
    }
}

/// the state to plan against: `--state`, else `LLMSH_STATE`, else the
/// running system's (through `llm-osd`), else the policy's initial state.
pub fn current_state(args: &PlannerArgs, policy: &Policy) -> Result<State, InputError> {
    let path = args.state.clone().or_else(|| {
        std::env::var_os("LLMSH_STATE")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    });
    if let Some(p) = path {
        return json::parse_state(&common::read_input(&p, common::Input::State)?, policy);
    }
    if let Ok(mut c) = crate::osd::client::Client::connect() {
        if let Ok((_, s)) = crate::cmd::status::read(&mut c) {
            return Ok(pd_verifier::model_state(&s));
        }
    }
    Ok(policy.initial)
}

/// the backends for `args`, in the order they are tried.
pub fn backends(args: &PlannerArgs) -> Result<Vec<Box<dyn Backend>>, LlmError> {
    let cfg = RemoteConfig::from_flags_or_env(
        args.endpoint.as_deref(),
        args.remote_model.as_deref(),
        args.api_key.as_deref(),
        Limits {
            timeout: args.remote_timeout,
            deadline: args.remote_deadline,
        },
    )?;
    let remote = || cfg.clone().map(RemoteBackend::new);
    let mut out: Vec<Box<dyn Backend>> = Vec::new();
    match args.backend {
        BackendChoice::Remote => match remote() {
            Some(r) => out.push(Box::new(r)),
            None => {
                return Err(LlmError::Config(
                    "--backend remote needs --endpoint or LLMSH_ENDPOINT".into(),
                ))
            }
        },
        BackendChoice::Local | BackendChoice::Hybrid => {
            let second = match (args.backend, remote()) {
                (BackendChoice::Hybrid, None) => {
                    eprintln!(
                        "llmsh: warning: --backend hybrid without --endpoint or LLMSH_ENDPOINT plans with the local model only"
                    );
                    None
                }
                (BackendChoice::Hybrid, r) => r,
                _ => None,
            };
            out.push(local(args)?);
            if let Some(r) = second {
                out.push(Box::new(r));
            }
        }
    }
    Ok(out)
}

#[cfg(feature = "local")]
fn local(args: &PlannerArgs) -> Result<Box<dyn Backend>, LlmError> {
    Ok(Box::new(crate::llm::local::LocalBackend::new(
        args.model.as_deref(),
    )))
}

#[cfg(not(feature = "local"))]
fn local(_: &PlannerArgs) -> Result<Box<dyn Backend>, LlmError> {
    Err(LlmError::Config(
        "this llmsh is built without the local backend (feature `local`); use --backend remote"
            .into(),
    ))
}

/// everything the intent commands load before planning.
pub struct Context {
    /// the policy.
    pub policy: Policy,
    /// the state planned against.
    pub state: State,
    /// the confirmation key.
    pub key: [u8; 32],
}

/// loads policy, state and key; checks the session exists.
pub fn context(args: &PlannerArgs) -> Result<Context, InputError> {
    let policy = match &args.policy {
        Some(p) => common::load_policy(Some(p))?,
        // the running system's, if one runs: its verdicts are the ones that count
        None => crate::osd::client::Client::connect()
            .and_then(|c| c.policy())
            .unwrap_or(policy_verifier::DEFAULT_POLICY),
    };
    let state = current_state(args, &policy)?;
    let key = common::load_key(args.key_file.as_deref())?;
    if policy.session(&args.session).is_none() {
        let names: Vec<&str> = policy
            .sessions
            .iter()
            .flatten()
            .map(|s| s.name.as_str())
            .collect();
        return Err(crate::code::Code::SessionUnknown.err(format!(
                "unknown session `{}`; the policy names {}",
                args.session,
                names.join(", ")
            ),
        ));
    }
    Ok(Context { policy, state, key })
}

/// plans `intent`, showing every attempt on stderr.
pub fn plan_intent(intent: &str, args: &PlannerArgs, cx: &Context) -> Result<Planned, IntentError> {
    if intent.trim().is_empty() {
        return Err(crate::code::Code::IntentEmpty.err("the intent is empty; say what the system should do",
        )
        .into());
    }
    let mut owned = backends(args)?;
    let mut refs: Vec<&mut dyn Backend> = owned
        .iter_mut()
        .map(|b| b.as_mut() as &mut dyn Backend)
        .collect();
    let req = Request {
        intent,
        policy: &cx.policy,
        state: &cx.state,
        session: &args.session,
        key: &cx.key,
        max_retries: args.max_retries,
        fidelity: true,
    };
    eprintln!(
        "llmsh: planning with {} (session `{}`)",
        refs.iter()
            .map(|b| b.name())
            .collect::<Vec<_>>()
            .join(" then "),
        args.session
    );
    let progress = crate::ui::progress::Planning::start();
    let planned = planner::plan(&req, &mut refs, |a| progress.attempt_done(&a.summary()))?;
    for n in &planned.notes {
        eprintln!("llmsh: {n}");
    }
    Ok(planned)
}

/// the json error of an intent that asks for nothing llmsh can do.
pub fn no_action(planned: &Planned) -> InputError {
    let why = planned
        .notes
        .first()
        .cloned()
        .unwrap_or_else(|| "the intent asks for nothing llmsh can do".into());
    crate::code::Code::IntentNoAction.err(format!("no action: {why}; say which worker and what to change (e.g. \"give worker1 16 more pages\")"),
    )
}

/// how the plan stands to the intent, for people: one line per action
/// (`faithful` / `unasked`) and one per ask the plan leaves out (`incomplete`).
pub fn describe_fidelity(planned: &Planned) -> String {
    let Some(f) = &planned.fidelity else {
        return String::new();
    };
    let mut s = format!(
        "fidelity: {}{}\n",
        if f.faithful() { "faithful" } else { "NOT FAITHFUL" },
        if f.exact { "" } else { " (the intent names no amount for some asks: ops and workers checked)" }
    );
    for (i, st) in f.actions.iter().enumerate() {
        match st {
            crate::llm::fidelity::Status::Faithful => s.push_str(&format!("  {i}. faithful\n")),
            crate::llm::fidelity::Status::Unasked(d) => s.push_str(&format!("  {i}. unasked: {d}\n")),
        }
    }
    for m in &f.incomplete {
        s.push_str(&format!("  incomplete: the plan has no {m}\n"));
    }
    s
}

/// the human's yes to a plan that is not what the intent asks. never
/// implied by `--yes` (that answers the destructive-action question the
/// plan itself raises, not whether the plan is the right one): with no
/// terminal, the answer is no.
pub fn ask_unfaithful(planned: &Planned) -> bool {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        eprintln!("llmsh: the plan is not what the intent asks and there is no terminal to ask on; nothing ran (--yes does not cover this)");
        return false;
    }
    eprint!("{}", describe_fidelity(planned));
    eprint!("llmsh: the plan is not what the intent asks; run it anyway? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    let _ = stdin.lock().read_line(&mut line);
    matches!(line.trim().to_lowercase().as_str(), "y" | "yes")
}

/// the human's answer to a destructive plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consent {
    /// nothing in the plan needs a human: nothing to ask.
    NotNeeded,
    /// yes (`--yes` or typed).
    Yes,
    /// no, or no terminal to ask on.
    No,
}

/// actions a human must agree to: the destructive ones (which also need a
/// confirmation token) and memory.reclaim, which zeroes a worker's pages.
pub fn needs_human(kind: ActionKind) -> bool {
    kind.destructive() || kind == ActionKind::MemoryReclaim
}

/// the one confirmation of `apply --plan F` and `apply "INTENT"`: asks on
/// the terminal before actions that need a human; `yes` answers up front.
/// with no terminal (a pipe, ci) there is nobody to ask, so the answer is no.
pub fn ask(plan: &Plan, yes: bool) -> Consent {
    let risky: Vec<String> = plan
        .actions
        .iter()
        .enumerate()
        .filter(|(_, a)| needs_human(a.kind()))
        .map(|(i, a)| {
            format!(
                "[{i}] {} {}",
                a.kind().name(),
                a.worker().map_or("", |w| w.name())
            )
        })
        .collect();
    if risky.is_empty() {
        return Consent::NotNeeded;
    }
    if yes {
        return Consent::Yes;
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        eprintln!("llmsh: the plan has destructive actions and there is no terminal to ask on; pass --yes to confirm");
        return Consent::No;
    }
    eprintln!(
        "llmsh: plan {} (session `{}`) has destructive actions:",
        plan.request_id, plan.session
    );
    for r in &risky {
        eprintln!("  {}", r.trim_end());
    }
    eprint!("llmsh: execute them? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    let _ = stdin.lock().read_line(&mut line);
    if matches!(line.trim().to_lowercase().as_str(), "y" | "yes") {
        Consent::Yes
    } else {
        Consent::No
    }
}

/// the plan with the human's confirmation token when it needs one. a token
/// already present is left alone: a forged one stays forged and the
/// verifier refuses it (auth.confirm).
pub fn confirmed(plan: &Plan, consent: Consent, key: &[u8; 32]) -> Plan {
    match consent {
        Consent::Yes if plan.has_destructive() && plan.confirmation.is_none() => {
            confirm::sign(plan, key).unwrap_or_else(|| plan.clone())
        }
        _ => plan.clone(),
    }
}

//! the interactive shell: `llmsh` with no subcommand on a terminal. the
//! person types intents or commands (`plan …`, `apply …`, `status`,
//! `audit`, `session NAME`, `help`), sees each plan with the verifier's
//! verdict, and confirms destructive actions inline. history lives in the
//! user's state dir (mode 0600); tab completes commands, worker names, ops
//! and sessions.
//!
//! the model stays dormant until the first intent: a planner thread owns
//! the backends, loads them when asked and drops them after an idle window,
//! saying so on screen. ctrl-c while planning cancels the plan (the decoding
//! loop checks [`progress::cancelled`]) and returns to the prompt.

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use policy_verifier::json::state_to_json;
use policy_verifier::{Plan, Policy, State};
use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{Context, Editor, Helper};
use serde_json::Value;

use crate::audit::{AuditLog, Origin};
use crate::cmd::intent::{self, Consent, PlannerArgs};
use crate::common::Exit;
use crate::osd::client::Client;
use crate::llm::planner::{self, Planned};
use crate::llm::{Backend, LlmError};
use crate::ui::{progress, top, words};

/// arguments of `llmsh shell` (and of `llmsh` alone).
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// which system: `hosted` (default) or `qemu`.
    #[arg(long, default_value = "hosted")]
    pub system: String,
    /// seconds without an intent after which the model is released.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub idle_secs: u64,
    /// the history file; default $XDG_STATE_HOME/llm-os/history.
    #[arg(long)]
    pub history: Option<PathBuf>,
    /// the audit log; default as `llmsh audit`.
    #[arg(long)]
    pub audit_log: Option<PathBuf>,
    /// the planner's flags (`--session` is where the shell starts).
    #[command(flatten)]
    pub planner: PlannerArgs,
}

/// the defaults of every flag (what `llmsh` alone runs with).
pub fn defaults() -> Args {
    #[derive(clap::Parser)]
    struct Bare {
        #[command(flatten)]
        args: Args,
    }
    <Bare as clap::Parser>::parse_from(["llmsh"]).args
}

/// the shell's own commands, for help and completion.
const COMMANDS: &[(&str, &str)] = &[
    ("plan", "plan INTENT: the model proposes, the verifier judges, nothing runs"),
    ("apply", "apply [INTENT]: plan and execute (no intent: the last plan shown)"),
    ("status", "the running system, read back from its PDs"),
    ("audit", "the last plans from the audit log"),
    ("session", "session [NAME]: show or switch the session (ops, admin, viewer)"),
    ("help", "this list"),
    ("exit", "leave the shell (ctrl-d too)"),
];

/// the history file: `--history`, else `$XDG_STATE_HOME/llm-os/history`.
pub fn history_path(flag: Option<&std::path::Path>) -> PathBuf {
    if let Some(p) = flag {
        return p.to_path_buf();
    }
    let base = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local").join("state")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("llm-os").join("history")
}

/// completion of commands, then worker names, op names and sessions.
pub struct ShellHelper {
    /// worker names (from the system's status, else the policy's initial state).
    pub workers: Vec<String>,
    /// session names of the policy.
    pub sessions: Vec<String>,
}

impl ShellHelper {
    /// the candidates for the word ending at `pos`: (start of the word, words).
    pub fn candidates(&self, line: &str, pos: usize) -> (usize, Vec<String>) {
        let head = line.get(..pos).unwrap_or(line);
        let start = head.rfind(char::is_whitespace).map_or(0, |i| i + 1);
        let word = head.get(start..).unwrap_or("");
        let first = head.split_whitespace().next().unwrap_or("");
        let pool: Vec<String> = if start == 0 {
            COMMANDS.iter().map(|(c, _)| (*c).to_string()).collect()
        } else if first == "session" {
            self.sessions.clone()
        } else {
            let ops = policy_verifier::json::op_names().into_iter().map(str::to_string);
            self.workers.iter().cloned().chain(ops).collect()
        };
        (start, pool.into_iter().filter(|c| c.starts_with(word)).collect())
    }
}

impl Completer for ShellHelper {
    type Candidate = Pair;
    fn complete(&self, line: &str, pos: usize, _: &Context<'_>) -> rustyline::Result<(usize, Vec<Pair>)> {
        let (start, c) = self.candidates(line, pos);
        Ok((start, c.into_iter().map(|w| Pair { display: w.clone(), replacement: w }).collect()))
    }
}

impl Hinter for ShellHelper {
    type Hint = String;
}

impl Highlighter for ShellHelper {
    fn highlight_prompt<'b, 's: 'b, 'p: 'b>(&'s self, prompt: &'p str, _default: bool) -> Cow<'b, str> {
        Cow::Borrowed(prompt)
    }
}

impl Validator for ShellHelper {}
impl Helper for ShellHelper {}

/// one request to the planner thread.
struct Job {
    /// results carry it back, so one that arrives after ctrl-c is dropped.
    id: u64,
    intent: String,
    args: PlannerArgs,
    policy: Policy,
    state: State,
    key: [u8; 32],
}

type JobResult = (u64, Result<Planned, LlmError>);

/// the planner thread: owns the backends, created on the first intent and
/// dropped after `idle` without one.
fn planner_thread(
    jobs: mpsc::Receiver<Job>,
    done: mpsc::Sender<JobResult>,
    idle: Duration,
    mut say: impl FnMut(String) + Send + 'static,
) {
    std::thread::spawn(move || {
        let mut loaded: Option<Vec<Box<dyn Backend>>> = None;
        loop {
            let job = match jobs.recv_timeout(idle) {
                Ok(j) => j,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if loaded.take().is_some() {
                        say(format!(
                            "llmsh: no intent for {} s; the model is released (it loads again on the next intent)",
                            idle.as_secs()
                        ));
                    }
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            };
            if loaded.is_none() {
                match intent::backends(&job.args) {
                    Ok(b) => {
                        if b.iter().any(|b| b.name() == "local") {
                            eprintln!("llmsh: loading the local model (first intent; it stays loaded while you use it)");
                        }
                        loaded = Some(b);
                    }
                    Err(e) => {
                        let _ = done.send((job.id, Err(e)));
                        continue;
                    }
                }
            }
            let Some(backends) = loaded.as_mut() else { continue };
            let mut refs: Vec<&mut dyn Backend> = backends.iter_mut().map(|b| b.as_mut() as &mut dyn Backend).collect();
            let req = planner::Request {
                intent: &job.intent,
                policy: &job.policy,
                state: &job.state,
                session: &job.args.session,
                key: &job.key,
                max_retries: job.args.max_retries,
                fidelity: true,
            };
            let progress = progress::Planning::start();
            let r = planner::plan(&req, &mut refs, |a| progress.attempt_done(&a.summary()));
            drop(progress);
            if done.send((job.id, r)).is_err() {
                break;
            }
        }
    });
}

/// the shell's state between lines.
struct Shell {
    args: Args,
    policy: Policy,
    key: [u8; 32],
    link: Option<Client>,
    last: Option<(Plan, Value, State, String)>,
    log: AuditLog,
    jobs: mpsc::Sender<Job>,
    done: mpsc::Receiver<JobResult>,
    job_id: u64,
}

impl Shell {
    /// the connection to llm-osd; with no system running, one is booted
    /// (said on stderr) and keeps running after the shell.
    fn link(&mut self) -> Result<&mut Client, String> {
        if self.link.is_none() {
            let c = crate::cmd::daemon::connect(Some(&self.args.system), true, self.args.audit_log.as_deref())
                .map_err(|e| format!("{}: {}", e.code, e.message))?;
            // plans, hints and receipts follow the policy the system enforces
            self.policy = c.policy().map_err(|e| format!("{}: {}", e.code, e.message))?;
            self.link = Some(c);
        }
        self.link.as_mut().ok_or_else(|| "no link".to_string())
    }

    fn status(&mut self) -> Result<Value, String> {
        let link = self.link()?;
        match crate::cmd::status::status_json(link) {
            Ok(v) => Ok(v),
            Err(e) => {
                // a dead system: drop the connection, the next command opens a new one.
                self.link = None;
                Err(format!("{}: {}", e.code, e.message))
            }
        }
    }

    fn state(&mut self) -> Result<State, String> {
        let link = self.link()?;
        match crate::cmd::status::read(link) {
            Ok((_, s)) => Ok(pd_verifier::model_state(&s)),
            Err(e) => {
                self.link = None;
                Err(format!("{}: {}", e.code, e.message))
            }
        }
    }

    /// plans `text` on the planner thread; ctrl-c cancels.
    fn plan(&mut self, text: &str) -> Result<(Plan, Value, State, Planned), String> {
        let state = self.state()?;
        self.job_id += 1;
        let id = self.job_id;
        let job = Job { id, intent: text.to_string(), args: self.args.planner.clone(), policy: self.policy, state, key: self.key };
        progress::reset_cancel();
        self.jobs.send(job).map_err(|_| "the planner thread is gone".to_string())?;
        // waits in short slices so ctrl-c returns to the prompt at once, even
        // while a remote backend is still waiting for its answer.
        let planned = loop {
            if progress::cancelled() {
                return Err("planning cancelled (ctrl-c); nothing ran".into());
            }
            match self.done.recv_timeout(Duration::from_millis(50)) {
                Ok((got, _)) if got != id => continue,
                Ok((_, Ok(p))) => break p,
                Ok((_, Err(e))) => {
                    let e = e.to_input_error();
                    return Err(format!("{}: {}", e.code, e.message));
                }
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => return Err("the planner thread is gone".into()),
            }
        };
        let Some(plan) = planned.plan.clone() else {
            return Err(format!("no attempt produced a plan ({} attempts)", planned.attempts.len()));
        };
        let verdict = planned.verdict.clone();
        print!("{}", words::plan(&self.policy, &state, &plan, &verdict));
        Ok((plan, verdict, state, planned))
    }

    /// executes `plan` after asking about destructive actions (and, when
    /// `always_ask`, about any plan).
    fn apply(&mut self, ed: &mut Editor<ShellHelper, DefaultHistory>, plan: &Plan, verdict: &Value, origin: &Origin, always_ask: bool) -> Result<(), String> {
        if verdict["approved"] != Value::Bool(true) {
            return Err("the verifier rejects this plan; nothing ran".into());
        }
        let risky: Vec<String> = plan
            .actions
            .iter()
            .enumerate()
            .filter(|(_, a)| intent::needs_human(a.kind()))
            .map(|(i, a)| format!("{i}. {} {}", a.kind().name(), a.worker().map_or("", |w| w.name())))
            .collect();
        let question = if !risky.is_empty() {
            println!("destructive actions: {}", risky.join(", "));
            Some("execute them? [y/N] ")
        } else if always_ask {
            Some("apply this plan? [y/N] ")
        } else {
            None
        };
        let consent = match question {
            None => Consent::NotNeeded,
            Some(q) => match ed.readline(q) {
                Ok(a) if matches!(a.trim().to_lowercase().as_str(), "y" | "yes") => Consent::Yes,
                _ => {
                    println!("not applied; nothing ran");
                    return Ok(());
                }
            },
        };
        // llm-osd writes the audit records around the execution; a token is
        // for the running boot only
        let link = self.link()?;
        let (_, now) = crate::cmd::status::read(link).map_err(|e| format!("{}: {}", e.code, e.message))?;
        let signed = intent::confirmed(plan, consent, &crate::common::epoch_key(&self.key, now.epoch));
        let link = self.link()?;
        let (receipt, retry) = crate::cmd::daemon::execute(link, &signed, origin)
            .map_err(|e| format!("{}: {}", e.code, e.message))?;
        let mut out = crate::receipt::receipt_json(&self.policy, &signed, &receipt);
        if retry {
            out["retry"] = serde_json::json!(true);
        }
        let before = pd_verifier::model_state(&receipt.state_before);
        print!("{}", words::receipt(&self.policy, &before, &signed, &out));
        self.last = None;
        Ok(())
    }

    /// one line: a command or an intent.
    fn line(&mut self, ed: &mut Editor<ShellHelper, DefaultHistory>, line: &str) -> Result<(), String> {
        let (cmd, rest) = line.split_once(char::is_whitespace).map_or((line, ""), |(c, r)| (c, r.trim()));
        match cmd {
            "help" | "?" => {
                println!("type what the system should do in words, or a command:");
                for (c, h) in COMMANDS {
                    println!("  {c:<8} {h}");
                }
                println!("session `{}`; the model loads on the first intent", self.args.planner.session);
            }
            "status" => {
                let s = self.status()?;
                let snap = top::Snapshot { status: Ok(s), plans: Vec::new(), at: std::time::Instant::now(), quota_pages: self.policy.limits.quota_pages };
                let width = crossterm::terminal::size().map_or(120, |(w, _)| w.clamp(60, 200));
                let text = top::frame_text(&snap, None, width);
                // the status part of a `top` frame: everything before the plans.
                let cut = text.find(" recent plans").and_then(|i| text.get(..i)).and_then(|t| t.rfind('\n').map(|j| &t[..j]));
                println!("{}", cut.unwrap_or(&text));
            }
            "audit" => {
                let rows = top::plan_rows(&top::audit_tail(self.log.path(), top::AUDIT_TAIL), 10);
                if rows.is_empty() {
                    println!("the audit log {} has no plans yet", self.log.path().display());
                }
                for p in rows {
                    println!("#{:<4} {} {:<8} {:<6} {:<9} {:<20} {}", p.request_id, p.time, p.user, p.session, p.verdict, p.receipt, p.what);
                }
            }
            "session" => {
                if !rest.is_empty() {
                    if self.policy.session(rest).is_none() {
                        return Err(format!("unknown session `{rest}`"));
                    }
                    self.args.planner.session = rest.to_string();
                }
                println!("session `{}`", self.args.planner.session);
            }
            "plan" => {
                if rest.is_empty() {
                    return Err("plan what? `plan give worker1 16 more pages`".into());
                }
                let (plan, verdict, state, planned) = self.plan(rest)?;
                if verdict["approved"] == Value::Bool(true) {
                    println!("`apply` executes it");
                }
                self.last = Some((plan, verdict, state, rest.to_string()));
                let _ = planned;
            }
            "apply" => {
                if rest.is_empty() {
                    let Some((plan, verdict, _, text)) = self.last.clone() else {
                        return Err("no plan to apply yet: `plan …` first, or `apply INTENT`".into());
                    };
                    // the system may have moved on since the plan was made: the
                    // verifier PD checks it again against the state it holds.
                    let origin = Origin { intent: Some(text), backend: "shell".into(), ..Origin::default() };
                    return self.apply(ed, &plan, &verdict, &origin, false);
                }
                let (plan, verdict, _, planned) = self.plan(rest)?;
                let origin = crate::cmd::apply_intent::origin(rest, &planned);
                self.apply(ed, &plan, &verdict, &origin, false)?;
            }
            _ => {
                let (plan, verdict, _, planned) = self.plan(line)?;
                if verdict["approved"] == Value::Bool(true) {
                    let origin = crate::cmd::apply_intent::origin(line, &planned);
                    self.apply(ed, &plan, &verdict, &origin, true)?;
                } else {
                    println!("not applied; nothing ran");
                }
            }
        }
        Ok(())
    }
}

/// runs the shell until `exit` or ctrl-d.
pub fn run(args: &Args) -> Exit {
    let policy = match crate::common::load_policy(args.planner.policy.as_deref()) {
        Ok(p) => p,
        Err(e) => return crate::common::report(&e),
    };
    let key = match crate::common::load_key(args.planner.key_file.as_deref()) {
        Ok(k) => k,
        Err(e) => return crate::common::report(&e),
    };
    let workers = state_to_json(&policy.initial)["workers"].as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
    let sessions = policy.sessions.iter().flatten().map(|s| s.name.as_str().to_string()).collect();
    let mut ed: Editor<ShellHelper, DefaultHistory> = match Editor::new() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("llmsh: cannot start the line editor: {e}");
            return crate::code::Code::Terminal.exit();
        }
    };
    // ctrl-c outside the line editor (while planning) cancels the plan, never
    // the shell. installed after the editor, which takes SIGINT for itself on
    // creation; inside `readline` the terminal is raw and ctrl-c is a key.
    let _ = ctrlc::set_handler(progress::cancel);
    ed.set_helper(Some(ShellHelper { workers, sessions }));
    let hist = history_path(args.history.as_deref());
    let _ = ed.load_history(&hist);
    let (jobs_tx, jobs_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel();
    // rustyline's external printer mangles typed-ahead and pasted input, so
    // the idle note is written over the prompt line and the prompt redrawn.
    let prompt_now = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let shown = std::sync::Arc::clone(&prompt_now);
    let say = move |m: String| {
        let p = shown.lock().map(|p| p.clone()).unwrap_or_default();
        print!("\r\x1b[2K{m}\n{p}");
        let _ = std::io::Write::flush(&mut std::io::stdout());
    };
    planner_thread(jobs_rx, done_tx, Duration::from_secs(args.idle_secs), say);
    let mut sh = Shell {
        args: args.clone(),
        policy,
        key,
        link: None,
        last: None,
        log: AuditLog::resolve(args.audit_log.as_deref()),
        jobs: jobs_tx,
        done: done_rx,
        job_id: 0,
    };
    println!("llmsh: type what the system should do, or `help`. the model sleeps until your first intent.");
    loop {
        let prompt = format!("llmsh[{}]> ", sh.args.planner.session);
        if let Ok(mut p) = prompt_now.lock() {
            p.clone_from(&prompt);
        }
        let read = ed.readline(&prompt);
        if let Ok(mut p) = prompt_now.lock() {
            p.clear();
        }
        match read {
            Ok(line) => {
                let line = line.trim();
                if line.is_empty() {
                    continue;
                }
                let _ = ed.add_history_entry(line);
                if matches!(line, "exit" | "quit") {
                    break;
                }
                if let Err(e) = sh.line(&mut ed, line) {
                    println!("llmsh: {e}");
                }
            }
            Err(ReadlineError::Interrupted) => println!("(ctrl-c: `exit` or ctrl-d leaves the shell)"),
            Err(ReadlineError::Eof) => break,
            Err(e) => {
                eprintln!("llmsh: {e}");
                break;
            }
        }
    }
    if let Some(dir) = hist.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if ed.save_history(&hist).is_ok() {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&hist, std::fs::Permissions::from_mode(0o600));
    }
    Exit::Ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn helper() -> ShellHelper {
        ShellHelper { workers: vec!["worker0".into(), "worker1".into(), "worker12".into()], sessions: vec!["ops".into(), "admin".into()] }
    }

    #[test]
    fn the_first_word_completes_to_commands() {
        let (start, c) = helper().candidates("st", 2);
        assert_eq!((start, c), (0, vec!["status".to_string()]));
        assert!(helper().candidates("", 0).1.contains(&"apply".to_string()));
    }

    #[test]
    fn later_words_complete_to_workers_ops_and_sessions() {
        let (start, c) = helper().candidates("plan stop worker1", 17);
        assert_eq!(start, 10);
        assert_eq!(c, vec!["worker1".to_string(), "worker12".to_string()]);
        assert_eq!(helper().candidates("apply memory.g", 14).1, vec!["memory.grant".to_string()]);
        assert_eq!(helper().candidates("session ad", 10).1, vec!["admin".to_string()]);
    }

    #[test]
    fn every_flag_has_a_default() {
        let a = defaults();
        assert_eq!((a.system.as_str(), a.planner.session.as_str()), ("hosted", "ops"));
    }
}

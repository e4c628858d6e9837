//! `llmsh audit [--verify] [--json] [--audit-log F]`: lists the audit log
//! and checks it. `--verify` asks the running `llm-osd`, which checks the
//! keyed chain, the head file, and the log's count and running hash of
//! executed plans against the live verifier PD's; with no daemon running
//! it checks the chain and the head with the audit key alone (`"live":
//! null`). exit 0 intact, 1 broken, 2 unreadable.

use std::path::PathBuf;

use serde_json::{json, Value};

use crate::audit::{self, AuditLog};
use crate::common::{self, Exit};
use crate::osd::client::Client;

/// arguments of `llmsh audit`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// check the chain (against the live system when one runs) and report the first broken record.
    #[arg(long)]
    pub verify: bool,
    /// json output: the records as json lines, or the chain report.
    #[arg(long)]
    pub json: bool,
    /// the log; default `LLMSH_AUDIT_LOG` or $XDG_STATE_HOME/llm-os/audit.jsonl.
    #[arg(long)]
    pub audit_log: Option<PathBuf>,
}

/// the report: from the running daemon if it writes this log, else offline.
fn report(log: &AuditLog) -> Result<Value, (Value, Exit)> {
    if let Ok(mut c) = Client::connect() {
        let theirs = c.info["audit_log"].as_str().map(PathBuf::from);
        let same = theirs.as_deref().is_some_and(|t| {
            t == log.path() || t.canonicalize().ok().is_some_and(|x| log.path().canonicalize().ok() == Some(x))
        });
        if same {
            return c.call("audit_verify", json!({})).map_err(|e| (e.to_json(), e.exit()));
        }
    }
    let bad = |e: policy_verifier::json::InputError| (e.to_json(), crate::code::exit_of(e.code));
    let key = audit::read_key(&audit::key_path().map_err(bad)?).map_err(bad)?;
    let rep = log.verify_with_head(&key).map_err(bad)?;
    Ok(json!({"ok": rep.broken.is_none(), "records": rep.records, "path": log.path(),
              "broken": rep.broken.map(|(line, why)| json!({"line": line, "reason": why})), "live": null}))
}

/// runs the command.
pub fn run(args: &Args) -> Exit {
    let log = AuditLog::resolve(args.audit_log.as_deref());
    if args.verify {
        let rep = match report(&log) {
            Ok(r) => r,
            Err((e, exit)) => {
                common::print_json(&e);
                return exit;
            }
        };
        let ok = rep["ok"] == true;
        if args.json {
            common::print_json(&rep);
        } else if !ok {
            println!(
                "audit log {}: BROKEN at record {}: {}",
                log.path().display(),
                rep["broken"]["line"],
                rep["broken"]["reason"].as_str().unwrap_or("")
            );
        } else if rep["live"].is_null() {
            println!(
                "audit log {}: {} records, chain intact (no system running: not compared with a live one)",
                log.path().display(),
                rep["records"]
            );
        } else {
            println!(
                "audit log {}: {} records, chain intact, {} executed plans as the live {} system counts them",
                log.path().display(),
                rep["records"],
                rep["live"]["plans_executed"],
                rep["live"]["system"].as_str().unwrap_or("")
            );
        }
        return if ok { Exit::Ok } else { Exit::Rejected };
    }
    let records = match log.records() {
        Ok(r) => r,
        Err(e) => return common::report(&e),
    };
    for r in &records {
        if args.json {
            common::print_json(r);
        } else {
            println!("{}", line(r));
        }
    }
    if !args.json && records.is_empty() {
        println!("audit log {}: empty", log.path().display());
    }
    Exit::Ok
}

/// one record for people.
fn line(r: &Value) -> String {
    let s = |k: &str| r[k].as_str().unwrap_or("").to_string();
    let head = format!(
        "#{} {} {:<7} user={}",
        r["seq"],
        s("ts"),
        s("kind"),
        s("user")
    );
    match r["kind"].as_str() {
        Some("request") => {
            let ops: Vec<String> = r["actions"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|a| a["op"].as_str().unwrap_or("?").to_string())
                .collect();
            let verdict = if r["verdict"]["approved"] == true {
                "approved"
            } else {
                "rejected"
            };
            format!(
                "{head} session={} request={} {verdict} [{}] via {} {} — {}",
                s("session"),
                r["request_id"],
                ops.join(", "),
                s("backend"),
                s("model"),
                s("reason")
            )
        }
        Some("step") => format!(
            "{head} request={} action={} {} {}",
            r["request_id"],
            r["action_index"],
            if r["ok"] == true { "ok" } else { "FAILED" },
            s("detail")
        ),
        Some("result") if r["retry"] == true => format!(
            "{head} request={} retry: the stored receipt, nothing ran again",
            r["request_id"]
        ),
        Some("result") => format!(
            "{head} request={} executed={} failed_action={}",
            r["request_id"], r["receipt"]["executed"], r["receipt"]["failed_action"]
        ),
        Some("boot") => format!(
            "{head} {} system booted, {} plans executed before",
            s("system"),
            r["plans_executed"]
        ),
        _ => head,
    }
}

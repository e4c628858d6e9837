//! `llmsh audit [--verify] [--json] [--audit-log F]`: lists the audit log and
//! checks its hash chain. exit 0 intact, 1 broken, 2 unreadable.

use std::path::PathBuf;

use serde_json::{json, Value};

use crate::audit::AuditLog;
use crate::common::{self, Exit};

/// arguments of `llmsh audit`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// check the hash chain and report the first broken record.
    #[arg(long)]
    pub verify: bool,
    /// json output: the records as json lines, or the chain report.
    #[arg(long)]
    pub json: bool,
    /// the log; default `LLMSH_AUDIT_LOG` or $XDG_STATE_HOME/llm-os/audit.jsonl.
    #[arg(long)]
    pub audit_log: Option<PathBuf>,
}

/// runs the command.
pub fn run(args: &Args) -> Exit {
    let log = AuditLog::resolve(args.audit_log.as_deref());
    if args.verify {
        let report = match log.verify() {
            Ok(r) => r,
            Err(e) => return common::bad_input(&e),
        };
        let ok = report.broken.is_none();
        if args.json {
            let broken = report
                .broken
                .as_ref()
                .map(|(line, why)| json!({"line": line, "reason": why}));
            common::print_json(
                &json!({"ok": ok, "records": report.records, "broken": broken, "path": log.path()}),
            );
        } else if let Some((line, why)) = &report.broken {
            println!(
                "audit log {}: BROKEN at record {line}: {why}",
                log.path().display()
            );
        } else {
            println!(
                "audit log {}: {} records, chain intact",
                log.path().display(),
                report.records
            );
        }
        return if ok { Exit::Ok } else { Exit::Rejected };
    }
    let records = match log.records() {
        Ok(r) => r,
        Err(e) => return common::bad_input(&e),
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
        Some("result") => format!(
            "{head} request={} executed={} failed_action={}",
            r["request_id"], r["receipt"]["executed"], r["receipt"]["failed_action"]
        ),
        _ => head,
    }
}

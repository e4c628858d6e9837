//! the audit log: who asked for what, why, what the verifier said, and the
//! state before and after. json lines, appended with fsync, hash-chained:
//! every record carries `prev`, the sha256 of the previous line's bytes, and
//! `hash`, the sha256 of its own canonical form, so an edited, dropped or
//! reordered record breaks the chain (`llmsh audit --verify`).
//!
//! a `request` record is on disk before the first invocation and a `result`
//! record after the last, with a `step` record per executed action between
//! them: a run killed mid-way leaves a request without a result, never an
//! action without a request.
//!
//! both apply paths write it: the intent path (`llmsh apply "…"`) and
//! `llmsh apply --plan F`, through [`AuditLog::request`], [`AuditLog::step`]
//! and [`AuditLog::result`].

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use policy_verifier::json::{self, InputError};
use policy_verifier::{Plan, State};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

/// `prev` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// where the planner's part of a request came from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    /// the human's words; none for `apply --plan F`.
    pub intent: Option<String>,
    /// `local`, `remote`, or `file` for a plan from a file.
    pub backend: String,
    /// the model; empty for a plan from a file.
    pub model: String,
    /// sha256 of the last prompt; empty for a plan from a file.
    pub prompt_hash: String,
    /// every planner attempt (json), for the record.
    pub attempts: Vec<Value>,
}

/// an audit log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditLog {
    path: PathBuf,
}

/// the result of checking the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    /// records read.
    pub records: usize,
    /// the first broken record (1-based line) and why; none when intact.
    pub broken: Option<(usize, String)>,
}

impl AuditLog {
    /// the log at `flag`, else `LLMSH_AUDIT_LOG`, else
    /// `$XDG_STATE_HOME/llm-os/audit.jsonl` (`~/.local/state/...`).
    pub fn resolve(flag: Option<&Path>) -> AuditLog {
        if let Some(p) = flag {
            return AuditLog {
                path: p.to_path_buf(),
            };
        }
        if let Some(p) = std::env::var_os("LLMSH_AUDIT_LOG").filter(|v| !v.is_empty()) {
            return AuditLog {
                path: PathBuf::from(p),
            };
        }
        let base = std::env::var_os("XDG_STATE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local").join("state"))
            })
            .unwrap_or_else(|| PathBuf::from("."));
        AuditLog {
            path: base.join("llm-os").join("audit.jsonl"),
        }
    }

    /// the file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// appends one record of `kind` with `fields`, chained to the last
    /// record, under an exclusive lock, and fsyncs it. returns the record.
    pub fn append(&self, kind: &str, fields: Value) -> Result<Value, InputError> {
        let io = |e: std::io::Error| {
            InputError::new(
                "audit.io",
                format!("audit log `{}`: {e}", self.path.display()),
            )
        };
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut f = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&self.path)
            .map_err(io)?;
        f.lock().map_err(io)?;
        let last = last_line(&mut f).map_err(io)?;
        let (prev, seq) = match &last {
            None => (GENESIS.to_string(), 1),
            Some(line) => {
                let seq = serde_json::from_slice::<Value>(line)
                    .ok()
                    .and_then(|v| v["seq"].as_u64())
                    .unwrap_or(0);
                (sha256_hex(line), seq + 1)
            }
        };
        let mut rec = Map::new();
        rec.insert("seq".into(), json!(seq));
        rec.insert("ts".into(), json!(timestamp()));
        rec.insert("kind".into(), json!(kind));
        // who asked: the kernel's uid and its passwd name, never `$USER`.
        rec.insert("user".into(), json!(crate::ui::user::name()));
        rec.insert("uid".into(), json!(crate::ui::user::uid()));
        if let Value::Object(extra) = fields {
            for (k, v) in extra {
                rec.insert(k, v);
            }
        }
        rec.insert("prev".into(), json!(prev));
        let hash = sha256_hex(canonical(&Value::Object(rec.clone())).as_bytes());
        rec.insert("hash".into(), json!(hash));
        let rec = Value::Object(rec);
        let mut line =
            serde_json::to_string(&rec).map_err(|e| InputError::new("audit.io", e.to_string()))?;
        line.push('\n');
        f.write_all(line.as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
        let _ = f.unlock();
        Ok(rec)
    }

    /// the `request` record, written before execution starts.
    pub fn request(
        &self,
        plan: &Plan,
        verdict: &Value,
        before: &State,
        origin: &Origin,
    ) -> Result<Value, InputError> {
        let jp = json::plan_to_json(plan);
        self.append(
            "request",
            json!({
                "session": plan.session.as_str(),
                "request_id": plan.request_id,
                "intent": origin.intent,
                "reason": plan.reason.as_str(),
                "actions": jp["actions"],
                "confirmed": plan.confirmation.is_some(),
                "verdict": verdict,
                "before": json::state_to_json(before),
                "backend": origin.backend,
                "model": origin.model,
                "prompt_hash": origin.prompt_hash,
                "attempts": origin.attempts,
            }),
        )
    }

    /// a `step` record per executed action (or the one that failed).
    pub fn step(
        &self,
        request_id: u64,
        index: usize,
        action: &Value,
        ok: bool,
        detail: &str,
    ) -> Result<Value, InputError> {
        self.append(
            "step",
            json!({"request_id": request_id, "action_index": index, "action": action, "ok": ok, "detail": detail}),
        )
    }

    /// the `result` record: the receipt and the state read back afterwards.
    pub fn result(
        &self,
        request_id: u64,
        receipt: &Value,
        after: Option<&Value>,
    ) -> Result<Value, InputError> {
        self.append(
            "result",
            json!({"request_id": request_id, "receipt": receipt, "after": after}),
        )
    }

    /// every record, in order; a line that is not json is an error.
    pub fn records(&self) -> Result<Vec<Value>, InputError> {
        let text = match std::fs::read(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(InputError::new(
                    "audit.io",
                    format!("audit log `{}`: {e}", self.path.display()),
                ))
            }
        };
        text.split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .enumerate()
            .map(|(i, l)| {
                serde_json::from_slice(l).map_err(|e| {
                    InputError::new("audit.corrupt", format!("line {} is not json: {e}", i + 1))
                })
            })
            .collect()
    }

    /// checks every record's hash, the chain of `prev` hashes and the sequence.
    pub fn verify(&self) -> Result<ChainReport, InputError> {
        let text = match std::fs::read(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(ChainReport {
                    records: 0,
                    broken: None,
                })
            }
            Err(e) => {
                return Err(InputError::new(
                    "audit.io",
                    format!("audit log `{}`: {e}", self.path.display()),
                ))
            }
        };
        let mut prev = GENESIS.to_string();
        let mut n = 0;
        if !text.is_empty() && !text.ends_with(b"\n") {
            let lines = text.split(|b| *b == b'\n').count();
            return Ok(ChainReport {
                records: lines,
                broken: Some((lines, "the last record is cut short".into())),
            });
        }
        for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            n += 1;
            let bad = |why: String| {
                Ok(ChainReport {
                    records: n,
                    broken: Some((n, why)),
                })
            };
            let Ok(Value::Object(mut rec)) = serde_json::from_slice::<Value>(line) else {
                return bad("not a json object".into());
            };
            if rec.get("seq").and_then(Value::as_u64) != Some(n as u64) {
                return bad(format!(
                    "sequence number is {}, expected {n}",
                    rec.get("seq").unwrap_or(&Value::Null)
                ));
            }
            if rec.get("prev").and_then(Value::as_str) != Some(prev.as_str()) {
                return bad("`prev` does not match the previous record: a record was changed, removed or inserted".into());
            }
            let Some(Value::String(hash)) = rec.remove("hash") else {
                return bad("no `hash`".into());
            };
            if sha256_hex(canonical(&Value::Object(rec)).as_bytes()) != hash {
                return bad(
                    "`hash` does not match the record's content: the record was edited".into(),
                );
            }
            prev = sha256_hex(line);
        }
        Ok(ChainReport {
            records: n,
            broken: None,
        })
    }
}

/// the last non-empty line of `f`, read from its tail.
fn last_line(f: &mut File) -> std::io::Result<Option<Vec<u8>>> {
    let len = f.seek(SeekFrom::End(0))?;
    if len == 0 {
        return Ok(None);
    }
    let mut window: u64 = 64 * 1024;
    loop {
        let start = len.saturating_sub(window);
        f.seek(SeekFrom::Start(start))?;
        let mut buf = Vec::new();
        f.take(len - start).read_to_end(&mut buf)?;
        let trimmed = buf.strip_suffix(b"\n").unwrap_or(&buf);
        if let Some(i) = trimmed.iter().rposition(|b| *b == b'\n') {
            return Ok(trimmed.get(i + 1..).map(<[u8]>::to_vec));
        }
        if start == 0 {
            return Ok(Some(trimmed.to_vec()));
        }
        window *= 4;
    }
}

/// json with object keys sorted at every level: the form `hash` covers, the
/// same whatever key order a serializer chose.
pub fn canonical(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let body: Vec<String> = keys
                .into_iter()
                .map(|k| {
                    format!(
                        "{}:{}",
                        Value::String(k.clone()),
                        canonical(m.get(k).unwrap_or(&Value::Null))
                    )
                })
                .collect();
            format!("{{{}}}", body.join(","))
        }
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(canonical).collect::<Vec<_>>().join(",")
        ),
        other => other.to_string(),
    }
}

/// lowercase hex sha256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    json::hex(&Sha256::digest(bytes))
}

/// utc now as `2025-01-31T12:00:00.123Z`.
pub fn timestamp() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // civil-from-days (howard hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use policy_verifier::DEFAULT_POLICY;

    fn temp_log(name: &str) -> AuditLog {
        let p =
            std::env::temp_dir().join(format!("llmsh-audit-{name}-{}.jsonl", std::process::id()));
        let _ = std::fs::remove_file(&p);
        AuditLog::resolve(Some(&p))
    }

    fn sample_plan() -> Plan {
        json::parse_plan(
            br#"{"version":1,"request_id":1,"session":"ops","reason":"r","actions":[{"op":"memory.grant","pd":"worker1","pages":16}]}"#,
        )
        .expect("plan")
    }

    fn write_three(log: &AuditLog) {
        let s = DEFAULT_POLICY.initial;
        let origin = Origin {
            backend: "file".into(),
            ..Origin::default()
        };
        log.request(&sample_plan(), &json!({"approved": true}), &s, &origin)
            .expect("request");
        log.step(1, 0, &json!({"op": "memory.grant"}), true, "ok")
            .expect("step");
        log.result(
            1,
            &json!({"approved": true, "executed": 1}),
            Some(&json::state_to_json(&s)),
        )
        .expect("result");
    }

    #[test]
    fn an_untouched_chain_verifies() {
        let log = temp_log("ok");
        write_three(&log);
        let recs = log.records().expect("records");
        assert_eq!(recs.len(), 3);
        assert_eq!(recs[0]["prev"], GENESIS);
        assert_eq!(recs[0]["kind"], "request");
        assert_eq!(recs[0]["request_id"], 1);
        assert_eq!(recs[0]["before"]["workers"]["worker1"]["pages"], 32);
        assert_eq!(recs[2]["seq"], 3);
        assert_eq!(
            log.verify().expect("verify"),
            ChainReport {
                records: 3,
                broken: None
            }
        );
        let _ = std::fs::remove_file(log.path());
    }

    #[test]
    fn tampering_is_detected() {
        let log = temp_log("tamper");
        write_three(&log);
        let text = std::fs::read_to_string(log.path()).expect("read");
        // an edited field in the middle record.
        std::fs::write(log.path(), text.replacen("\"ok\":true", "\"ok\":false", 1)).expect("write");
        let r = log.verify().expect("verify");
        assert_eq!(r.broken.as_ref().map(|b| b.0), Some(2), "{r:?}");
        // an edited last record (no successor to notice): its own hash does.
        std::fs::write(
            log.path(),
            text.replacen("\"executed\":1", "\"executed\":0", 1),
        )
        .expect("write");
        assert_eq!(log.verify().expect("verify").broken.map(|b| b.0), Some(3));
        // a removed record.
        let lines: Vec<&str> = text.lines().collect();
        std::fs::write(log.path(), format!("{}\n{}\n", lines[0], lines[2])).expect("write");
        assert_eq!(log.verify().expect("verify").broken.map(|b| b.0), Some(2));
        // a rewritten record with a recomputed own hash still breaks the chain.
        let mut rec: Value = serde_json::from_str(lines[0]).expect("json");
        rec["reason"] = json!("something else");
        let mut m = rec.as_object().cloned().expect("object");
        m.remove("hash");
        let h = sha256_hex(canonical(&Value::Object(m.clone())).as_bytes());
        m.insert("hash".into(), json!(h));
        std::fs::write(
            log.path(),
            format!("{}\n{}\n{}\n", Value::Object(m), lines[1], lines[2]),
        )
        .expect("write");
        assert_eq!(log.verify().expect("verify").broken.map(|b| b.0), Some(2));
        let _ = std::fs::remove_file(log.path());
    }

    #[test]
    fn concurrent_writers_keep_the_chain() {
        let log = temp_log("concurrent");
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let log = log.clone();
                std::thread::spawn(move || {
                    for i in 0..10 {
                        log.step(t, i, &json!({}), true, "x").expect("append");
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("join");
        }
        assert_eq!(
            log.verify().expect("verify"),
            ChainReport {
                records: 40,
                broken: None
            }
        );
        let _ = std::fs::remove_file(log.path());
    }

    #[test]
    fn timestamps_look_like_rfc3339() {
        let t = timestamp();
        assert_eq!(t.len(), 24, "{t}");
        assert!(
            t.starts_with("20") && t.ends_with('Z') && t.as_bytes()[10] == b'T',
            "{t}"
        );
    }
}

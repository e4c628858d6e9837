//! the audit log: who asked for what, why, what the verifier said, and the
//! state before and after. json lines, appended with fsync by `llm-osd`
//! alone, chained with a key only it writes with: every record carries
//! `prev`, the previous record's `mac`, and `mac`, an HMAC-SHA256 under the
//! audit key of its own canonical form. without the key an edited, dropped,
//! reordered or wholly rewritten log does not verify (`llmsh audit
//! --verify`); a head file beside the log (`audit.jsonl.head`, also keyed)
//! names the last record written, so a cut tail or an emptied log does not
//! verify either; and the verifier PD's count and running hash of the plans
//! it ran tie the log to the live system.
//!
//! a `request` record is on disk before the first invocation and a `result`
//! record after the last, with a `step` record per executed action between
//! them: a run killed mid-way leaves a request without a result, never an
//! action without a request. a resend answered from the verifier's stored
//! receipt is a `result` with `"retry": true` and no steps. `seq` counts
//! from 1 and never wraps: the log refuses a record after `u64::MAX`.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use policy_verifier::json::{self, InputError};
use policy_verifier::{Plan, State};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

/// `prev` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// the longest record line read back.
pub const MAX_RECORD: usize = crate::osd::MAX_LINE;

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

impl Origin {
    /// as sent to `llm-osd`.
    pub fn to_json(&self) -> Value {
        json!({"intent": self.intent, "backend": self.backend, "model": self.model,
               "prompt_hash": self.prompt_hash, "attempts": self.attempts})
    }

    /// from a client's request (missing fields are empty).
    pub fn from_json(v: &Value) -> Origin {
        let s = |k: &str| v[k].as_str().unwrap_or("").to_owned();
        Origin {
            intent: v["intent"].as_str().map(str::to_owned),
            backend: s("backend"),
            model: s("model"),
            prompt_hash: s("prompt_hash"),
            attempts: v["attempts"].as_array().cloned().unwrap_or_default(),
        }
    }
}

/// who a record is for: the uid from the client socket's peer credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// the user name (or the uid in decimal when it has none).
    pub name: String,
    /// the uid.
    pub uid: u32,
}

/// the plans the verifier PD ran, as a log or the live system counts them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Executed {
    /// how many.
    pub count: u64,
    /// the running hash (pd-verifier: `sha256(hash ‖ sha256(plan))`).
    pub hash: [u8; 32],
}

impl Executed {
    /// one more plan, by the sha256 of its wire bytes.
    pub fn push(&mut self, plan_sha256: &[u8; 32]) {
        let mut h = Sha256::new();
        h.update(self.hash);
        h.update(plan_sha256);
        self.hash = h.finalize().into();
        self.count = self.count.saturating_add(1);
    }
}

type HmacSha256 = Hmac<Sha256>;

fn mac_hex(key: &[u8; 32], bytes: &[u8]) -> String {
    // hmac takes a key of any length: `new_from_slice` cannot fail on 32 bytes
    let Ok(mut m) = <HmacSha256 as Mac>::new_from_slice(key) else {
        return String::new();
    };
    m.update(bytes);
    json::hex(&m.finalize().into_bytes())
}

/// the audit key's file: `audit.key` in the user's config dir.
pub fn key_path() -> Result<PathBuf, InputError> {
    crate::osd::config_dir().map(|d| d.join("audit.key")).map_err(|e| crate::code::Code::AuditKey.err(e.0))
}

/// reads the audit key at `path`: 64 hex digits in a file of mode 0600
/// owned by this user (anything else is refused).
pub fn read_key(path: &Path) -> Result<[u8; 32], InputError> {
    let bad = |m: String| crate::code::Code::AuditKey.err(format!("audit key `{}`: {m}", path.display()));
    let f = File::open(path).map_err(|e| bad(e.to_string()))?;
    let m = f.metadata().map_err(|e| bad(e.to_string()))?;
    if m.uid() != crate::osd::my_uid() || m.mode() & 0o077 != 0 {
        return Err(bad(format!("must be yours with mode 0600 (it has uid {}, mode {:o})", m.uid(), m.mode() & 0o777)));
    }
    let text = crate::common::read_capped(f, crate::common::Input::Key, "the audit key")?;
    json::unhex32(String::from_utf8_lossy(&text).trim()).ok_or_else(|| bad("is not 64 hex digits".into()))
}

/// the audit key, generated on first use (32 bytes from the OS, mode 0600,
/// said on stderr).
pub fn load_or_create_key() -> Result<[u8; 32], InputError> {
    let path = key_path()?;
    if path.exists() {
        return read_key(&path);
    }
    let io = |e: std::io::Error| crate::code::Code::AuditKey.err(format!("audit key `{}`: {e}", path.display()));
    let Some(dir) = path.parent() else { return Err(io(std::io::ErrorKind::NotFound.into())) };
    // under the key directory's lock, so that two first uses write one key.
    let made = pd_interface::keys::store::locked(dir, || {
        if path.exists() {
            return read_key(&path);
        }
        let mut key = [0u8; 32];
        File::open("/dev/urandom").and_then(|mut r| r.read_exact(&mut key)).map_err(io)?;
        let mut f = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path).map_err(io)?;
        f.write_all(format!("{}\n", json::hex(&key)).as_bytes()).and_then(|()| f.sync_all()).map_err(io)?;
        eprintln!("llm-osd: generated the audit key `{}` (mode 0600; only llm-osd writes with it)", path.display());
        read_key(&path)
    });
    made.map_err(|e| crate::code::Code::AuditKey.err(e.0))?
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
    /// the last record's `seq` and `mac`.
    pub last: Option<(u64, String)>,
    /// the plans executed since the last `boot` record, by the log.
    pub executed: Executed,
    /// a `boot` record was seen (`executed` counts from it).
    pub booted: bool,
}

/// the head file: the last record llm-osd wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// its `seq`.
    pub seq: u64,
    /// its `mac`.
    pub mac: String,
}

fn head_mac(key: &[u8; 32], seq: u64, mac: &str) -> String {
    mac_hex(key, format!("llm-os audit head {seq} {mac}").as_bytes())
}

/// the next line of `r` and whether it ended in a newline; at most
/// [`MAX_RECORD`] bytes are read for it, a longer line is an error.
fn next_line(r: &mut impl BufRead) -> std::io::Result<Option<(Vec<u8>, bool)>> {
    let mut line = Vec::new();
    let n = r.by_ref().take(MAX_RECORD as u64 + 1).read_until(b'\n', &mut line)?;
    if n == 0 {
        return Ok(None);
    }
    let complete = line.last() == Some(&b'\n');
    if complete {
        line.pop();
    } else if line.len() > MAX_RECORD {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "a record longer than 1 MiB"));
    }
    Ok(Some((line, complete)))
}

impl AuditLog {
    /// the log at `flag`, else `LLMSH_AUDIT_LOG`, else
    /// `$XDG_STATE_HOME/llm-os/audit.jsonl` (`~/.local/state/...`).
    pub fn resolve(flag: Option<&Path>) -> AuditLog {
        if let Some(p) = flag {
            return AuditLog { path: p.to_path_buf() };
        }
        if let Some(p) = std::env::var_os("LLMSH_AUDIT_LOG").filter(|v| !v.is_empty()) {
            return AuditLog { path: PathBuf::from(p) };
        }
        let base = std::env::var_os("XDG_STATE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local").join("state")))
            .unwrap_or_else(|| PathBuf::from("."));
        AuditLog { path: base.join("llm-os").join("audit.jsonl") }
    }

    /// the file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// the head file beside it.
    pub fn head_path(&self) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(".head");
        PathBuf::from(p)
    }

    fn io(&self, e: std::io::Error) -> InputError {
        crate::code::Code::AuditIo.err(format!("audit log `{}`: {e}", self.path.display()))
    }

    /// the head file, checked with `key`: none if absent, an error if forged.
    pub fn head(&self, key: &[u8; 32]) -> Result<Option<Head>, InputError> {
        let f = match File::open(self.head_path()) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io(e)),
        };
        let bytes = crate::common::read_capped(f, crate::common::Input::Key, "the audit head")?;
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let (Some(seq), Some(mac), Some(m)) = (v["seq"].as_u64(), v["mac"].as_str(), v["head_mac"].as_str()) else {
            return Err(crate::code::Code::AuditHead.err("the audit head file is not llm-osd's"));
        };
        if head_mac(key, seq, mac) != m {
            return Err(crate::code::Code::AuditHead.err("the audit head file's mac is wrong: it was forged or edited"));
        }
        Ok(Some(Head { seq, mac: mac.to_owned() }))
    }

    fn write_head(&self, key: &[u8; 32], seq: u64, mac: &str) -> Result<(), InputError> {
        let mut tmp = self.head_path().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let body = json!({"seq": seq, "mac": mac, "head_mac": head_mac(key, seq, mac)}).to_string();
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| self.io(e))?;
        f.write_all(body.as_bytes()).and_then(|()| f.sync_all()).map_err(|e| self.io(e))?;
        std::fs::rename(&tmp, self.head_path()).map_err(|e| self.io(e))
    }

    /// every record, in order; a line that is not json is an error.
    pub fn records(&self) -> Result<Vec<Value>, InputError> {
        let f = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.io(e)),
        };
        let mut r = BufReader::new(f);
        let mut out = Vec::new();
        while let Some((line, _)) = next_line(&mut r).map_err(|e| self.io(e))? {
            if line.is_empty() {
                continue;
            }
            let v = serde_json::from_slice(&line).map_err(|e| {
                crate::code::Code::AuditCorrupt.err(format!("line {} is not json: {e}", out.len() + 1))
            })?;
            out.push(v);
        }
        Ok(out)
    }

    /// checks every record's mac under `key`, the chain of `prev` macs and
    /// the sequence, and counts the plans executed since the last boot.
    pub fn verify(&self, key: &[u8; 32]) -> Result<ChainReport, InputError> {
        let mut rep = ChainReport { records: 0, broken: None, last: None, executed: Executed::default(), booted: false };
        let f = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(rep),
            Err(e) => return Err(self.io(e)),
        };
        let mut r = BufReader::new(f);
        let mut prev = GENESIS.to_string();
        loop {
            let n = rep.records + 1;
            let line = match next_line(&mut r) {
                Ok(None) => break,
                Ok(Some((_, false))) => {
                    rep.broken = Some((n, "the last record is cut short".into()));
                    break;
                }
                Ok(Some((l, true))) => l,
                Err(e) => {
                    rep.broken = Some((n, e.to_string()));
                    break;
                }
            };
            rep.records = n;
            if let Err(why) = check_record(key, &line, n, &prev, &mut rep) {
                rep.broken = Some((n, why));
                break;
            }
            if let Some((_, mac)) = &rep.last {
                prev.clone_from(mac);
            }
        }
        Ok(rep)
    }

    /// [`AuditLog::verify`] and the head file: a log that ends before the
    /// head's record was cut (or emptied, or swapped for another).
    pub fn verify_with_head(&self, key: &[u8; 32]) -> Result<ChainReport, InputError> {
        let mut rep = self.verify(key)?;
        if rep.broken.is_some() {
            return Ok(rep);
        }
        let head = match self.head(key) {
            Ok(h) => h,
            Err(e) => {
                rep.broken = Some((rep.records, e.message));
                return Ok(rep);
            }
        };
        rep.broken = match (&head, &rep.last) {
            (None, None) => None,
            (None, Some(_)) => {
                Some((rep.records, "the head file is missing: llm-osd writes it with every record".into()))
            }
            (Some(h), None) => Some((
                0,
                format!("the log is empty but llm-osd wrote {} records: it was emptied or deleted", h.seq),
            )),
            (Some(h), Some((seq, _))) if h.seq > *seq => Some((
                rep.records,
                format!("the log ends at record {seq} but llm-osd wrote {}: the tail was cut", h.seq),
            )),
            (Some(h), Some((seq, mac))) if h.seq != *seq || &h.mac != mac => Some((
                rep.records,
                format!(
                    "the log's last record is not the one llm-osd wrote last (record {}): the log was replaced",
                    h.seq
                ),
            )),
            _ => None,
        };
        Ok(rep)
    }
}

/// one record's checks; updates the report's last record and counts.
fn check_record(key: &[u8; 32], line: &[u8], n: usize, prev: &str, rep: &mut ChainReport) -> Result<(), String> {
    let Ok(Value::Object(mut rec)) = serde_json::from_slice::<Value>(line) else {
        return Err("not a json object".into());
    };
    if rec.get("seq").and_then(Value::as_u64) != Some(n as u64) {
        return Err(format!("sequence number is {}, expected {n}", rec.get("seq").unwrap_or(&Value::Null)));
    }
    if rec.get("prev").and_then(Value::as_str) != Some(prev) {
        return Err("`prev` does not match the previous record: a record was changed, removed, inserted or moved".into());
    }
    let Some(Value::String(mac)) = rec.remove("mac") else {
        return Err("no `mac`".into());
    };
    if mac_hex(key, canonical(&Value::Object(rec.clone())).as_bytes()) != mac {
        return Err(
            "`mac` does not match the record under the audit key: it was edited, or written without the key".into(),
        );
    }
    let hex32 = |k: &str| rec.get(k).and_then(Value::as_str).and_then(json::unhex32).unwrap_or([0; 32]);
    match rec.get("kind").and_then(Value::as_str) {
        Some("boot") => {
            rep.booted = true;
            rep.executed = Executed {
                count: rec.get("plans_executed").and_then(Value::as_u64).unwrap_or(0),
                hash: hex32("plans_hash"),
            };
        }
        Some("result") if rec.get("counted") == Some(&Value::Bool(true)) => rep.executed.push(&hex32("plan_sha256")),
        _ => {}
    }
    rep.last = Some((n as u64, mac));
    Ok(())
}

/// the one writer of a log (`llm-osd`): appends keyed records and keeps the
/// head file.
pub struct Writer {
    log: AuditLog,
    key: [u8; 32],
}

impl Writer {
    /// a writer of `log` with `key`.
    pub fn new(log: AuditLog, key: [u8; 32]) -> Writer {
        Writer { log, key }
    }

    /// the log.
    pub fn log(&self) -> &AuditLog {
        &self.log
    }

    /// the key (verification in the same process).
    pub fn key(&self) -> &[u8; 32] {
        &self.key
    }

    /// appends one record of `kind` for `user` with `fields`, chained to the
    /// last record, under an exclusive lock, fsynced, and moves the head.
    pub fn append(&self, kind: &str, user: &User, fields: Value) -> Result<Value, InputError> {
        let path = &self.log.path;
        let io = |e: std::io::Error| self.log.io(e);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut f = OpenOptions::new().read(true).append(true).create(true).mode(0o600).open(path).map_err(io)?;
        f.lock().map_err(io)?;
        let last = last_line(&mut f).map_err(io)?;
        let (prev, seq) = match &last {
            None => (GENESIS.to_string(), 1),
            Some(line) => {
                let v = serde_json::from_slice::<Value>(line).unwrap_or(Value::Null);
                let prev = v["mac"].as_str().unwrap_or(GENESIS).to_owned();
                let Some(seq) = v["seq"].as_u64().unwrap_or(0).checked_add(1) else {
                    return Err(crate::code::Code::AuditFull.err("the audit log's sequence number is at its maximum: start a new log; nothing ran",
                    ));
                };
                (prev, seq)
            }
        };
        let mut rec = Map::new();
        rec.insert("seq".into(), json!(seq));
        rec.insert("ts".into(), json!(timestamp()));
        rec.insert("kind".into(), json!(kind));
        // who asked: the uid llm-osd saw on the socket, and its passwd name.
        rec.insert("user".into(), json!(user.name));
        rec.insert("uid".into(), json!(user.uid));
        if let Value::Object(extra) = fields {
            for (k, v) in extra {
                rec.insert(k, v);
            }
        }
        rec.insert("prev".into(), json!(prev));
        let mac = mac_hex(&self.key, canonical(&Value::Object(rec.clone())).as_bytes());
        rec.insert("mac".into(), json!(mac));
        let rec = Value::Object(rec);
        let mut line = serde_json::to_string(&rec).map_err(|e| crate::code::Code::AuditIo.err(e.to_string()))?;
        line.push('\n');
        f.write_all(line.as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
        self.log.write_head(&self.key, seq, &mac)?;
        let _ = f.unlock();
        Ok(rec)
    }

    /// the `boot` record: the system and the verifier's count and hash at
    /// boot, where the log's count of executed plans starts.
    pub fn boot(&self, user: &User, system: &str, at: &Executed) -> Result<Value, InputError> {
        self.append(
            "boot",
            user,
            json!({"system": system, "plans_executed": at.count, "plans_hash": json::hex(&at.hash)}),
        )
    }

    /// the `request` record, written before execution starts.
    pub fn request(
        &self,
        user: &User,
        plan: &Plan,
        verdict: &Value,
        before: &State,
        origin: &Origin,
    ) -> Result<Value, InputError> {
        let jp = json::plan_to_json(plan);
        self.append(
            "request",
            user,
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
        user: &User,
        request_id: u64,
        index: usize,
        action: &Value,
        ok: bool,
        detail: &str,
    ) -> Result<Value, InputError> {
        self.append(
            "step",
            user,
            json!({"request_id": request_id, "action_index": index, "action": action, "ok": ok, "detail": detail}),
        )
    }

    /// the `result` record: the receipt and the state read back afterwards;
    /// `extra` adds fields (`retry`, `counted`, `plan_sha256`).
    pub fn result(
        &self,
        user: &User,
        request_id: u64,
        receipt: &Value,
        after: Option<&Value>,
        extra: Value,
    ) -> Result<Value, InputError> {
        let mut f = json!({"request_id": request_id, "receipt": receipt, "after": after});
        if let (Value::Object(m), Value::Object(x)) = (&mut f, extra) {
            m.extend(x);
        }
        self.append("result", user, f)
    }
}

/// the last non-empty line of `f`, read from its tail (at most twice
/// [`MAX_RECORD`]).
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
        Read::by_ref(f).take(len - start).read_to_end(&mut buf)?;
        let trimmed = buf.strip_suffix(b"\n").unwrap_or(&buf);
        if let Some(i) = trimmed.iter().rposition(|b| *b == b'\n') {
            return Ok(trimmed.get(i + 1..).map(<[u8]>::to_vec));
        }
        if start == 0 || window > 2 * MAX_RECORD as u64 {
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

    const KEY: [u8; 32] = [7; 32];

    fn user() -> User {
        User { name: "alice".into(), uid: 1001 }
    }

    fn temp_log(name: &str) -> Writer {
        let p = std::env::temp_dir().join(format!("llmsh-audit-{name}-{}.jsonl", std::process::id()));
        let log = AuditLog::resolve(Some(&p));
        let _ = std::fs::remove_file(&p);
        let _ = std::fs::remove_file(log.head_path());
        Writer::new(log, KEY)
    }

    fn sample_plan() -> Plan {
        json::parse_plan(
            br#"{"version":1,"request_id":1,"session":"ops","reason":"r","actions":[{"op":"memory.grant","pd":"worker1","pages":16}]}"#,
        )
        .expect("plan")
    }

    fn write_three(w: &Writer) {
        let s = DEFAULT_POLICY.initial;
        let origin = Origin { backend: "file".into(), ..Origin::default() };
        w.request(&user(), &sample_plan(), &json!({"approved": true}), &s, &origin).expect("request");
        w.step(&user(), 1, 0, &json!({"op": "memory.grant"}), true, "ok").expect("step");
        w.result(&user(), 1, &json!({"approved": true, "executed": 1}), Some(&json::state_to_json(&s)), json!({}))
            .expect("result");
    }

    fn broken_at(w: &Writer) -> Option<usize> {
        w.log().verify_with_head(&KEY).expect("verify").broken.map(|b| b.0)
    }

    #[test]
    fn an_untouched_chain_verifies_and_records_the_user() {
        let w = temp_log("ok");
        write_three(&w);
        let recs = w.log().records().expect("records");
        assert_eq!(recs.len(), 3);
        assert_eq!(recs[0]["prev"], GENESIS);
        assert_eq!((recs[0]["user"].as_str(), recs[0]["uid"].as_u64()), (Some("alice"), Some(1001)));
        assert_eq!(recs[0]["before"]["workers"]["worker1"]["pages"], 32);
        assert_eq!(recs[2]["seq"], 3);
        let r = w.log().verify_with_head(&KEY).expect("verify");
        assert_eq!((r.records, r.broken), (3, None));
        // another key does not verify it: the chain is keyed
        assert_eq!(w.log().verify(&[8; 32]).expect("verify").broken.map(|b| b.0), Some(1));
    }

    #[test]
    fn edits_removals_reorders_and_rewrites_are_detected() {
        let w = temp_log("tamper");
        write_three(&w);
        let path = w.log().path().to_path_buf();
        let text = std::fs::read_to_string(&path).expect("read");
        let lines: Vec<&str> = text.lines().collect();
        // an edited field in the middle record.
        std::fs::write(&path, text.replacen("\"ok\":true", "\"ok\":false", 1)).expect("write");
        assert_eq!(broken_at(&w), Some(2));
        // an edited last record (no successor to notice): its own mac does.
        std::fs::write(&path, text.replacen("\"executed\":1", "\"executed\":0", 1)).expect("write");
        assert_eq!(broken_at(&w), Some(3));
        // a removed record.
        std::fs::write(&path, format!("{}\n{}\n", lines[0], lines[2])).expect("write");
        assert_eq!(broken_at(&w), Some(2));
        // two records swapped.
        std::fs::write(&path, format!("{}\n{}\n{}\n", lines[0], lines[2], lines[1])).expect("write");
        assert_eq!(broken_at(&w), Some(2));
        // the whole log rewritten with fresh (unkeyed) sha256 hashes.
        let mut prev = GENESIS.to_string();
        let mut forged = String::new();
        for (i, l) in lines.iter().enumerate() {
            let mut m = serde_json::from_str::<Value>(l).expect("json").as_object().cloned().expect("object");
            m.remove("mac");
            m.insert("prev".into(), json!(prev));
            if i == 0 {
                m.insert("reason".into(), json!("something else"));
            }
            let h = sha256_hex(canonical(&Value::Object(m.clone())).as_bytes());
            m.insert("mac".into(), json!(h));
            prev = h;
            forged.push_str(&format!("{}\n", Value::Object(m)));
        }
        std::fs::write(&path, forged).expect("write");
        assert_eq!(broken_at(&w), Some(1));
    }

    #[test]
    fn a_cut_tail_or_an_emptied_log_is_detected_by_the_head() {
        let w = temp_log("cut");
        write_three(&w);
        let path = w.log().path().to_path_buf();
        let text = std::fs::read_to_string(&path).expect("read");
        let lines: Vec<&str> = text.lines().collect();
        std::fs::write(&path, format!("{}\n{}\n", lines[0], lines[1])).expect("write");
        let r = w.log().verify_with_head(&KEY).expect("verify");
        assert!(r.broken.as_ref().is_some_and(|b| b.1.contains("tail was cut")), "{r:?}");
        std::fs::write(&path, "").expect("write");
        let r = w.log().verify_with_head(&KEY).expect("verify");
        assert!(r.broken.as_ref().is_some_and(|b| b.1.contains("emptied")), "{r:?}");
        std::fs::remove_file(&path).expect("rm");
        assert!(w.log().verify_with_head(&KEY).expect("verify").broken.is_some());
        // a head file forged without the key
        std::fs::write(&path, &text).expect("write");
        std::fs::write(w.log().head_path(), r#"{"seq":3,"mac":"00","head_mac":"00"}"#).expect("write");
        assert!(w.log().verify_with_head(&KEY).expect("verify").broken.is_some());
    }

    #[test]
    fn seq_never_wraps() {
        let w = temp_log("full");
        write_three(&w);
        // a last record at u64::MAX (written with the key, so only the
        // sequence stops the next one)
        let path = w.log().path().to_path_buf();
        let mut m = Map::new();
        m.insert("seq".into(), json!(u64::MAX));
        m.insert("kind".into(), json!("step"));
        m.insert("prev".into(), json!(GENESIS));
        let mac = mac_hex(&KEY, canonical(&Value::Object(m.clone())).as_bytes());
        m.insert("mac".into(), json!(mac));
        let mut f = OpenOptions::new().append(true).open(&path).expect("open");
        writeln!(f, "{}", Value::Object(m)).expect("write");
        let e = w.step(&user(), 1, 0, &json!({}), true, "x").expect_err("must refuse");
        assert_eq!(e.code, "audit.full");
        let recs = w.log().records().expect("records");
        assert_eq!(recs.len(), 4, "nothing appended");
    }

    #[test]
    fn the_executed_count_follows_boot_and_counted_results() {
        let w = temp_log("count");
        let at = Executed { count: 2, hash: [1; 32] };
        w.boot(&user(), "hosted", &at).expect("boot");
        let h = [9u8; 32];
        w.result(&user(), 1, &json!({}), None, json!({"counted": true, "plan_sha256": json::hex(&h)})).expect("r");
        w.result(&user(), 1, &json!({}), None, json!({"counted": false, "retry": true})).expect("r");
        let r = w.log().verify_with_head(&KEY).expect("verify");
        let mut want = at;
        want.push(&h);
        assert_eq!((r.booted, r.executed, r.broken), (true, want, None));
        assert_eq!(r.executed.count, 3);
    }

    #[test]
    fn the_key_file_is_created_owner_only_and_a_loose_one_is_refused() {
        let dir = std::env::temp_dir().join(format!("llmsh-audit-key-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let p = dir.join("audit.key");
        std::fs::write(&p, format!("{}\n", json::hex(&KEY))).expect("write");
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o644)).expect("chmod");
        assert_eq!(read_key(&p).expect_err("0644").code, "audit.key");
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o600)).expect("chmod");
        assert_eq!(read_key(&p).expect("0600"), KEY);
    }

    #[test]
    fn timestamps_look_like_rfc3339() {
        let t = timestamp();
        assert_eq!(t.len(), 24, "{t}");
        assert!(t.starts_with("20") && t.ends_with('Z') && t.as_bytes()[10] == b'T', "{t}");
    }
}

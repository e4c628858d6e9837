//! the daemon itself: one tokio task per client connection, one thread
//! that owns the system's link and the audit log and serves the queue.
//!
//! a connection's task reads json lines (each at most [`MAX_LINE`] bytes,
//! finished within [`PARTIAL_LINE_TIMEOUT`]), queues each request with a
//! one-shot channel for its reply and writes that reply back: replies cannot
//! cross connections, because each one travels on its own request's
//! channel. on the link a reply is taken only if it answers the request in
//! flight (`pd_interface::link::is_stale`).

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pd_interface::link::{Reply, Request, SystemState};
use policy_verifier::json::{self, InputError};
use policy_verifier::{verify, wire, Plan, Policy};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::{mpsc, oneshot, watch, Semaphore};

use super::users::{Passwd, SessionUsers};
use super::{IDLE_TIMEOUT, MAX_CLIENTS, MAX_LINE, MAX_QUEUE, PARTIAL_LINE_TIMEOUT};
use crate::audit::{AuditLog, Executed, Origin, User, Writer};
use crate::common::{self, Exit};
use crate::code::Code;
use crate::link::{Failure, Link};
use crate::receipt::receipt_json;

/// how long a reply may take to write to a client that does not read.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// how long a queued request may wait for the link and its answer.
const JOB_TIMEOUT: Duration = Duration::from_secs(110);

/// what the daemon runs.
#[derive(Debug, Clone)]
pub enum SystemSpec {
    /// the hosted system of this .system file, in this process.
    Hosted(PathBuf),
    /// the seL4 image in qemu: the qemu binary and the image's loader.
    Qemu {
        /// `qemu-system-aarch64`.
        qemu: PathBuf,
        /// the image (`loader.img`).
        loader: PathBuf,
    },
}

/// how `llm-osd` was asked to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// the system.
    pub system: SystemSpec,
    /// the policy the system enforces (hosted: its verifier runs it; a qemu
    /// image must have been built with it) and whose `users` lists say who
    /// may use which session; default `LLM_OS_POLICY`, else
    /// system/policy.toml.
    pub policy: Option<PathBuf>,
    /// the audit log.
    pub audit_log: AuditLog,
}

fn bad(e: InputError) -> Failure {
    (e.code, e.message)
}

/// the error reply; `exit` is the exit code llmsh gives it, from the code's
/// class (the client derives it the same way).
fn error_reply(id: &Value, (code, message): Failure) -> Value {
    json!({"id": id, "error": {"code": code, "message": message, "exit": crate::code::exit_of(code) as i32}})
}

/// the link, the log and who may do what: owned by the link thread.
struct Daemon {
    link: Link,
    /// the policy in force: the verifier's, which names the receipts'
    /// invariant ids and explains them.
    policy: &'static Policy,
    /// its text, for clients (`ping`).
    policy_text: Arc<str>,
    audit: Writer,
    users: SessionUsers,
    owner: u32,
    /// the last record this daemon wrote: a log rolled back to an older
    /// copy (and its head) is caught here.
    last_written: Option<(u64, String)>,
}

/// the sha256 of a plan's wire bytes (what the verifier PD's hash covers).
fn plan_digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// the wire form a plan goes to the verifier in. the link seals these
/// bytes (`Request::Sealed`: a MAC under the installation's plan key over
/// them and the epoch of the status read just before) as it sends them.
fn seal(plan: &Plan) -> Result<Vec<u8>, Failure> {
    let mut buf = [0u8; wire::MAX_PLAN_BYTES];
    wire::encode(plan, &mut buf)
        .map(|b| b.to_vec())
        .map_err(|e| (e.code(), "the plan does not fit the wire format".into()))
}

impl Daemon {
    fn note(&mut self, rec: Result<Value, InputError>) -> Result<Value, Failure> {
        let rec = rec.map_err(bad)?;
        if let (Some(seq), Some(mac)) = (rec["seq"].as_u64(), rec["mac"].as_str()) {
            self.last_written = Some((seq, mac.to_owned()));
        }
        Ok(rec)
    }

    fn status(&mut self) -> Result<SystemState, Failure> {
        match self.link.request(&Request::Status) {
            Ok(Reply::Status(s)) => Ok(s),
            Ok(Reply::Error(e)) => Err((Code::LinkRefused.name(), format!("{e:?}"))),
            Ok(other) => Err((Code::LinkReply.name(), format!("unexpected reply {other:?}"))),
            Err(e) => Err((e.code().name(), e.to_string())),
        }
    }

    fn plan_of(req: &Value) -> Result<Plan, Failure> {
        let text = serde_json::to_vec(&req["plan"]).map_err(|e| (Code::PlanSyntax.name(), e.to_string()))?;
        json::parse_plan(&text).map_err(bad)
    }

    /// one request; the reply (without its id) and whether to stop.
    fn handle(&mut self, peer: &User, req: &Value) -> (Result<Value, Failure>, bool) {
        let op = req["op"].as_str().unwrap_or("");
        let r = match op {
            "ping" => Ok(json!({
                "system": self.link.system(), "pid": std::process::id(),
                "audit_log": self.audit.log().path(), "user": peer.name, "uid": peer.uid,
                "sessions": self.users.sessions_of(peer.uid), "policy": &*self.policy_text,
            })),
            "status" => self.status().and_then(|s| {
                serde_json::to_value(s)
                    .map(|v| json!({"system": self.link.system(), "status": v}))
                    .map_err(|e| (Code::OsdEncode.name(), e.to_string()))
            }),
            "apply" => self.apply(peer, req),
            "record" => self.record(peer, req),
            "audit_verify" => self.audit_verify(),
            "shutdown" if peer.uid == self.owner => return (Ok(json!({"stopping": true})), true),
            "shutdown" => Err((Code::AuthUser.name(), "only the user llm-osd runs as may stop it".into())),
            other => Err((Code::OsdBadRequest.name(), format!("unknown op `{other}`"))),
        };
        (r, false)
    }

    fn apply(&mut self, peer: &User, req: &Value) -> Result<Value, Failure> {
        let plan = Self::plan_of(req)?;
        let origin = Origin::from_json(&req["origin"]);
        let before_sys = self.status()?;
        let before = pd_verifier::model_state(&before_sys);
        if !self.users.may_use(peer.uid, plan.session.as_str()) {
            let why = format!(
                "user `{}` (uid {}) may not use session `{}` (policy `users`); nothing ran",
                peer.name,
                peer.uid,
                plan.session.as_str()
            );
            let rec = self.audit.request(peer, &plan, &json!({"approved": false, "refused": "auth.user"}), &before, &origin);
            self.note(rec)?;
            return Err((Code::AuthUser.name(), why));
        }
        // the host's verdict is for the record; the verifier PD decides
        let key = common::epoch_key(&common::load_key(None).map_err(bad)?, before_sys.epoch);
        let v = verify(self.policy, &before, &plan, &key);
        let verdict = json::verdict_json(self.policy, &before, &plan, &v);
        let rec = self.audit.request(peer, &plan, &verdict, &before, &origin);
        self.note(rec)?;
        let bytes = seal(&plan)?;
        let digest = plan_digest(&bytes);
        let receipt = match self.link.apply_wire(&bytes) {
            Ok(r) => r,
            Err((code, message)) => {
                let err = json!({"error": {"code": code, "message": message}});
                let rec = self.audit.result(peer, plan.request_id, &err, None, json!({"counted": false}));
                self.note(rec)?;
                return Err((code, message));
            }
        };
        // a frame refused before it was decoded (`auth.mac`) names no request
        let unread = receipt.request_id == 0 && !receipt.approved;
        if receipt.request_id != plan.request_id && !unread {
            return Err((Code::LinkReply.name(), "the system answered with another plan's receipt".into()));
        }
        // a resend of the last plan gets its stored receipt: the PD's count
        // did not move, so it ran nothing now
        let retry = receipt.approved && receipt.state_after.plans_executed <= before_sys.plans_executed;
        let out = receipt_json(self.policy, &plan, &receipt);
        if !retry {
            let actions = json::plan_to_json(&plan)["actions"].clone();
            for i in 0..usize::from(receipt.executed) {
                let rec = self.audit.step(peer, plan.request_id, i, &actions[i], true, "executed");
                self.note(rec)?;
            }
            if let Some(i) = receipt.failed_action {
                let why = receipt.failure.map_or_else(|| "failed".into(), |f| format!("{f:?}"));
                let rec = self.audit.step(peer, plan.request_id, usize::from(i), &actions[usize::from(i)], false, &why);
                self.note(rec)?;
            }
        }
        let extra = json!({"retry": retry, "counted": receipt.approved && !retry, "plan_sha256": json::hex(&digest)});
        let rec = self.audit.result(peer, plan.request_id, &out, Some(&out["state_after"]), extra);
        self.note(rec)?;
        let r = serde_json::to_value(&receipt).map_err(|e| (Code::OsdEncode.name(), e.to_string()))?;
        Ok(json!({"receipt": r, "retry": retry}))
    }

    /// a plan that was not sent (the planner's verdict rejected it, or the
    /// human declined): recorded, never executed.
    fn record(&mut self, peer: &User, req: &Value) -> Result<Value, Failure> {
        let plan = Self::plan_of(req)?;
        let origin = Origin::from_json(&req["origin"]);
        let before_text = serde_json::to_vec(&req["before"]).map_err(|e| (Code::StateSyntax.name(), e.to_string()))?;
        let before = json::parse_state(&before_text, self.policy).map_err(bad)?;
        let mut verdict = req["verdict"].clone();
        if !verdict.is_object() {
            return Err((Code::OsdBadRequest.name(), "`verdict` must be an object".into()));
        }
        verdict["sent"] = json!(false);
        let rec = self.audit.request(peer, &plan, &verdict, &before, &origin);
        self.note(rec)?;
        if req["result"].is_object() {
            let rec = self.audit.result(peer, plan.request_id, &req["result"], None, json!({"counted": false}));
            self.note(rec)?;
        }
        Ok(json!({"recorded": true}))
    }

    fn audit_verify(&mut self) -> Result<Value, Failure> {
        let rep = self.audit.log().verify_with_head(self.audit.key()).map_err(bad)?;
        let s = self.status()?;
        let live = Executed { count: s.plans_executed, hash: s.plans_hash };
        let mut broken = rep.broken.clone();
        if broken.is_none() && self.last_written.is_some() && rep.last != self.last_written {
            broken = Some((rep.records, "the log does not end with the last record this llm-osd wrote: it was rolled back or replaced".into()));
        }
        if broken.is_none() && !rep.booted {
            broken = Some((rep.records, "no boot record: the log was cut before the running system's boot".into()));
        }
        if broken.is_none() && rep.executed != live {
            broken = Some((
                rep.records,
                format!(
                    "the log records {} plans executed since boot, the live system {}{}",
                    rep.executed.count,
                    live.count,
                    if rep.executed.count == live.count { " with another running hash" } else { "" }
                ),
            ));
        }
        Ok(json!({
            "ok": broken.is_none(), "records": rep.records, "path": self.audit.log().path(),
            "broken": broken.map(|(line, why)| json!({"line": line, "reason": why})),
            "live": {"system": self.link.system(), "plans_executed": live.count,
                     "plans_hash": json::hex(&live.hash), "log_plans_executed": rep.executed.count,
                     "match": rep.executed == live},
        }))
    }
}

/// a queued request.
struct Job {
    peer: User,
    req: Value,
    reply: oneshot::Sender<Result<Value, Failure>>,
}

/// the link thread: serves jobs in order until the queue closes or a
/// shutdown is asked for. dropping the daemon stops the system.
fn serve_jobs(mut d: Daemon, mut rx: mpsc::Receiver<Job>, stop: Arc<watch::Sender<bool>>) {
    while let Some(job) = rx.blocking_recv() {
        let (r, quit) = d.handle(&job.peer, &job.req);
        let _ = job.reply.send(r);
        if quit {
            // the asking connection stops the daemon once its reply is
            // written; if it is gone, this does after a grace period
            let t = Instant::now();
            while !*stop.borrow() && t.elapsed() < Duration::from_secs(2) {
                std::thread::sleep(Duration::from_millis(20));
            }
            break;
        }
    }
    let _ = stop.send(true);
    drop(d);
}

/// what every connection task shares.
struct Shared {
    jobs: mpsc::Sender<Job>,
    stop: Arc<watch::Sender<bool>>,
    users: SessionUsers,
    passwd: Passwd,
}

async fn write_line(w: &mut OwnedWriteHalf, v: &Value) -> bool {
    let mut s = v.to_string();
    s.push('\n');
    matches!(tokio::time::timeout(WRITE_TIMEOUT, w.write_all(s.as_bytes())).await, Ok(Ok(())))
}

/// one client: its uid from the peer credentials, then request after
/// request until it hangs up, idles, or breaks the framing.
async fn connection(stream: tokio::net::UnixStream, shared: Arc<Shared>, _permit: tokio::sync::OwnedSemaphorePermit) {
    let Ok(cred) = stream.peer_cred() else {
        return;
    };
    let uid = cred.uid();
    let peer = User { name: shared.passwd.name(uid), uid };
    let (mut rd, mut wr) = stream.into_split();
    if shared.users.sessions_of(uid).is_empty() {
        let e = (Code::AuthUser.name(), format!("user `{}` (uid {uid}) may use no session of this system", peer.name));
        write_line(&mut wr, &error_reply(&Value::Null, e)).await;
        return;
    }
    let mut buf: Vec<u8> = Vec::new();
    let mut line_started: Option<Instant> = None;
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        if let Some(i) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=i).collect();
            line_started = if buf.is_empty() { None } else { Some(Instant::now()) };
            if !answer(&line, &peer, &shared, &mut wr).await {
                return;
            }
            continue;
        }
        if buf.len() > MAX_LINE {
            let e = (Code::OsdTooLong.name(), format!("a request line longer than {MAX_LINE} bytes"));
            write_line(&mut wr, &error_reply(&Value::Null, e)).await;
            return;
        }
        let wait = match line_started {
            None => IDLE_TIMEOUT,
            Some(t) => PARTIAL_LINE_TIMEOUT.saturating_sub(t.elapsed()),
        };
        match tokio::time::timeout(wait, rd.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(n)) => {
                if line_started.is_none() {
                    line_started = Some(Instant::now());
                }
                buf.extend_from_slice(chunk.get(..n).unwrap_or(&[]));
            }
            Err(_) => {
                if line_started.is_some() {
                    let e = (Code::OsdPartial.name(), "a request line was not finished in time".into());
                    write_line(&mut wr, &error_reply(&Value::Null, e)).await;
                }
                return;
            }
        }
    }
}

/// parses one line, queues it, writes its reply; false ends the connection.
async fn answer(line: &[u8], peer: &User, shared: &Shared, wr: &mut OwnedWriteHalf) -> bool {
    let req: Value = match serde_json::from_slice(line) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            let e = (Code::OsdBadRequest.name(), "a request is one json object per line".into());
            return write_line(wr, &error_reply(&Value::Null, e)).await;
        }
    };
    let Some(id) = req["id"].as_u64() else {
        let e = (Code::OsdBadRequest.name(), "a request needs a numeric `id`".into());
        return write_line(wr, &error_reply(&Value::Null, e)).await;
    };
    let (tx, rx) = oneshot::channel();
    let job = Job { peer: peer.clone(), req, reply: tx };
    let reply = match shared.jobs.try_send(job) {
        Err(mpsc::error::TrySendError::Full(_)) => {
            Err((Code::OsdBusy.name(), format!("{MAX_QUEUE} requests are waiting; try again")))
        }
        Err(mpsc::error::TrySendError::Closed(_)) => Err((Code::OsdStopping.name(), "llm-osd is stopping".into())),
        Ok(()) => match tokio::time::timeout(JOB_TIMEOUT, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err((Code::OsdStopping.name(), "llm-osd stopped before answering".into())),
            Err(_) => Err((Code::OsdTimeout.name(), "no answer from the system in time".into())),
        },
    };
    let v = match reply {
        Ok(mut v) => {
            v["id"] = json!(id);
            v
        }
        Err(f) => error_reply(&json!(id), f),
    };
    let written = write_line(wr, &v).await;
    if v["stopping"] == true {
        let _ = wr.shutdown().await;
        let _ = shared.stop.send(true);
        return false;
    }
    written
}

/// the policy file's text: `path`, or system/policy.toml.
fn policy_text(path: Option<&Path>) -> Result<String, InputError> {
    match path {
        None => Ok(super::users::DEFAULT_POLICY_TOML.to_owned()),
        Some(p) => String::from_utf8(common::read_input(p, common::Input::Policy)?)
            .map_err(|_| Code::PolicySyntax.err(format!("`{}` is not utf-8", p.display()))),
    }
}

/// why the daemon did not start; the exit code is the code's class.
fn fail(code: &str, message: String) -> Exit {
    eprintln!("llm-osd: {message}");
    common::print_json(&json!({"error": {"code": code, "message": message}}));
    crate::code::exit_of(code)
}

/// runs the daemon until it is stopped (`llmsh boot --stop`, SIGTERM, SIGINT).
pub fn run(opts: Options) -> Exit {
    let owner = super::my_uid();
    let dir = match super::runtime_dir().and_then(|d| super::ensure_private(&d, owner).map(|()| d)) {
        Ok(d) => d,
        Err(e) => return fail(Code::OsdRuntimeDir.name(), e.0),
    };
    let sock = super::socket_path(&dir);
    if std::os::unix::net::UnixStream::connect(&sock).is_ok() {
        return fail(Code::OsdRunning.name(), format!("an llm-osd already serves `{}`", sock.display()));
    }
    if sock.exists() {
        // a stale socket of ours; one of another user is refused (the dir check makes it unlikely)
        if let Err(e) = super::check_socket(&sock, owner) {
            return fail(Code::OsdRuntimeDir.name(), e.0);
        }
        let _ = std::fs::remove_file(&sock);
    }
    let loaded = policy_text(opts.policy.as_deref().or(crate::paths::policy_path().as_deref())).and_then(|text| {
        let policy = json::parse_policy(&text)?;
        Ok((SessionUsers::from_text(&text, owner)?, policy, text))
    });
    let (users, policy, text) = match loaded {
        Ok(l) => l,
        Err(e) => return fail(e.code, e.message),
    };
    // one parse for the daemon's life: the hosted verifier holds it
    let policy: &'static Policy = Box::leak(Box::new(policy));
    let key = match crate::audit::load_or_create_key() {
        Ok(k) => k,
        Err(e) => return fail(e.code, e.message),
    };
    let audit = Writer::new(opts.audit_log.clone(), key);
    if let Ok(rep) = audit.log().verify_with_head(&key) {
        if let Some((line, why)) = rep.broken {
            eprintln!("llm-osd: warning: the audit log `{}` is broken at record {line}: {why}", audit.log().path().display());
        }
    }
    // the installation's keys (made on first use, said on stderr): the
    // hosted system boots on them, a qemu image was built with them
    let keys = match common::host_keys() {
        Ok(k) => k,
        Err(e) => return fail(e.code, e.message),
    };
    if keys.source == pd_interface::keys::KeySource::Dev {
        eprintln!("llm-osd: the system runs on the public dev keys (LLM_OS_DEV_KEYS=1): tests only");
    }
    if matches!(opts.system, SystemSpec::Qemu { .. }) && opts.policy.is_some() {
        // the image compiled its policy in: `LLM_OS_POLICY` at build time, else system/policy.toml
        let built = match policy_text(crate::paths::policy_path().as_deref()).and_then(|t| json::parse_policy(&t)) {
            Ok(p) => p,
            Err(e) => return fail(e.code, e.message),
        };
        if built != *policy {
            return fail(
                Code::PolicyImage.name(),
                "a qemu image enforces the policy it was built with (`LLM_OS_POLICY`, else system/policy.toml), not `--policy`; build it with LLM_OS_POLICY set to that file; nothing booted".into(),
            );
        }
    }
    let link = match &opts.system {
        SystemSpec::Hosted(file) => Link::boot_hosted(file, keys, policy),
        SystemSpec::Qemu { qemu, loader } => crate::qemu::boot_image(qemu, loader, &mut |l| eprintln!("llm-osd: {l}"))
            .map(|q| Link::qemu(q, keys.plan))
            .map_err(crate::link::LinkError::Qemu),
    };
    let link = match link {
        Ok(l) => l,
        Err(e) => return fail(e.code().name(), e.to_string()),
    };
    let passwd = Passwd::read();
    let me = User { name: passwd.name(owner), uid: owner };
    let mut d = Daemon { link, policy, policy_text: text.into(), audit, users: users.clone(), owner, last_written: None };
    let at = match d.status() {
        Ok(s) => Executed { count: s.plans_executed, hash: s.plans_hash },
        Err((code, m)) => return fail(code, format!("the system booted but does not answer: {m}")),
    };
    let system = d.link.system();
    let rec = d.audit.boot(&me, system, &at);
    if let Err((code, m)) = d.note(rec) {
        return fail(code, m);
    }
    let listener = match bind(&sock, owner) {
        Ok(l) => l,
        Err(e) => return fail(Code::OsdSocket.name(), e),
    };
    let pidfile = super::pidfile_path(&dir);
    let _ = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&pidfile)
        .and_then(|mut f| std::io::Write::write_all(&mut f, format!("{}\n", std::process::id()).as_bytes()));
    eprintln!("llm-osd: serving the {system} system on `{}` (pid {})", sock.display(), std::process::id());

    let (tx, rx) = mpsc::channel(MAX_QUEUE);
    let (stop_tx, stop_rx) = watch::channel(false);
    let stop_tx = Arc::new(stop_tx);
    let stop2 = stop_tx.clone();
    let link_thread = std::thread::Builder::new().name("llm-osd-link".into()).spawn(move || serve_jobs(d, rx, stop2));
    let link_thread = match link_thread {
        Ok(t) => t,
        Err(e) => return fail(Code::OsdThread.name(), e.to_string()),
    };
    let shared = Arc::new(Shared { jobs: tx, stop: stop_tx, users, passwd });
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(Code::OsdRuntime.name(), e.to_string()),
    };
    // the listener closes when `accept` returns: new clients are refused at once
    let served = rt.block_on(accept(listener, shared, stop_rx));
    // the queue's sender is gone with `shared`: the link thread ends and stops the system
    rt.shutdown_timeout(Duration::from_secs(1));
    let _ = link_thread.join();
    let _ = std::fs::remove_file(&sock);
    let _ = std::fs::remove_file(&pidfile);
    match served {
        Ok(()) => Exit::Ok,
        Err(e) => fail(Code::OsdSocket.name(), e),
    }
}

/// the listening socket, mode 0600 whatever the umask, checked after.
fn bind(sock: &Path, owner: u32) -> Result<std::os::unix::net::UnixListener, String> {
    let l = std::os::unix::net::UnixListener::bind(sock).map_err(|e| format!("cannot listen on `{}`: {e}", sock.display()))?;
    super::make_owner_only(sock).map_err(|e| format!("cannot chmod `{}`: {e}", sock.display()))?;
    super::check_socket(sock, owner).map_err(|e| e.0)?;
    l.set_nonblocking(true).map_err(|e| e.to_string())?;
    Ok(l)
}

async fn accept(
    listener: std::os::unix::net::UnixListener,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), String> {
    use tokio::signal::unix::{signal, SignalKind};
    let listener = tokio::net::UnixListener::from_std(listener).map_err(|e| e.to_string())?;
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    let slots = Arc::new(Semaphore::new(MAX_CLIENTS));
    loop {
        tokio::select! {
            r = listener.accept() => {
                let Ok((stream, _)) = r else { continue };
                match slots.clone().try_acquire_owned() {
                    Ok(permit) => {
                        tokio::spawn(connection(stream, shared.clone(), permit));
                    }
                    Err(_) => {
                        tokio::spawn(async move {
                            let (_, mut wr) = stream.into_split();
                            let e = (Code::OsdBusy.name(), format!("{MAX_CLIENTS} clients are connected; try again"));
                            write_line(&mut wr, &error_reply(&Value::Null, e)).await;
                        });
                    }
                }
            }
            _ = stop.changed() => return Ok(()),
            _ = term.recv() => return Ok(()),
            _ = int.recv() => return Ok(()),
        }
    }
}

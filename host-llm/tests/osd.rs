//! `llm-osd` on the hosted system, as users and attackers on one machine
//! meet it: many clients at once, each gets only its own reply; a stray
//! byte, a partial line or an idle client costs only its sender; the
//! runtime dir and socket are private or refused; the sessions a uid may
//! use come from the policy; `apply` never boots a system silently; the
//! audit log is keyed, records the user and retries, and `--verify` catches
//! a cut, emptied, reordered or rewritten log against the live system.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

struct Env {
    dir: PathBuf,
}

impl Env {
    fn new(name: &str) -> Env {
        // short: a unix socket path has at most 107 bytes
        let dir = PathBuf::from(format!("/tmp/osd-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Env { dir }
    }
    fn run_dir(&self) -> PathBuf {
        self.dir.join("run")
    }
    fn log(&self) -> PathBuf {
        self.dir.join("audit.jsonl")
    }
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_llmsh"));
        c.args(args)
            .env("LLM_OS_RUNTIME_DIR", self.run_dir())
            .env("XDG_CONFIG_HOME", self.dir.join("cfg"))
            .env("LLMSH_AUDIT_LOG", self.log())
            .stdin(Stdio::null());
        c
    }
    fn llmsh(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("llmsh runs")
    }
    fn json(&self, args: &[&str]) -> (Option<i32>, Value) {
        let out = self.llmsh(args);
        let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
            panic!(
                "json from {args:?}: {} / {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.code(), v)
    }
    fn boot(&self) -> Value {
        let (code, v) = self.json(&["boot"]);
        assert_eq!(code, Some(0), "{v}");
        v
    }
    fn plan(&self, name: &str, id: u64, session: &str, actions: &str) -> String {
        let p = self.dir.join(name);
        std::fs::write(
            &p,
            format!(r#"{{"version":1,"request_id":{id},"session":"{session}","reason":"r","actions":[{actions}]}}"#),
        )
        .unwrap();
        p.to_string_lossy().into_owned()
    }
    fn sock(&self) -> PathBuf {
        self.run_dir().join("llm-osd.sock")
    }
    fn raw(&self) -> Raw {
        let s = UnixStream::connect(self.sock()).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        Raw { r: BufReader::new(s.try_clone().unwrap()), s }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = self.llmsh(&["boot", "--stop"]);
    }
}

/// a client speaking the daemon's protocol by hand.
struct Raw {
    s: UnixStream,
    r: BufReader<UnixStream>,
}

impl Raw {
    fn send(&mut self, v: &Value) {
        writeln!(self.s, "{v}").unwrap();
    }
    fn recv(&mut self) -> Value {
        let mut line = String::new();
        self.r.read_line(&mut line).expect("a reply line");
        serde_json::from_str(&line).unwrap_or_else(|_| panic!("json: {line:?}"))
    }
}

const GRANT: &str = r#"{"op":"memory.grant","pd":"worker1","pages":1}"#;

fn grant_plan(id: u64) -> Value {
    json!({"version":1,"request_id":id,"session":"ops","reason":"r",
           "actions":[{"op":"memory.grant","pd":"worker1","pages":1}]})
}

#[test]
fn apply_without_a_running_system_refuses_and_boots_nothing() {
    let e = Env::new("down");
    let plan = e.plan("p.json", 1, "ops", GRANT);
    let (code, v) = e.json(&["apply", "--plan", &plan, "--json"]);
    assert_eq!(code, Some(3), "{v}");
    assert_eq!(v["error"]["code"], "system.down");
    assert!(v["error"]["message"].as_str().unwrap().contains("nothing ran"));
    assert!(!e.sock().exists(), "no system was booted");
    let (code, v) = e.json(&["status"]);
    assert_eq!((code, v["error"]["code"].as_str()), (Some(3), Some("system.down")));
    // asked to, it boots one and says so on stderr
    let out = e.llmsh(&["apply", "--plan", &plan, "--json", "--boot"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("booting a hosted system"));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["state_after"]["workers"]["worker1"]["pages"], 33);
}

#[test]
fn the_runtime_dir_and_socket_are_private() {
    let e = Env::new("private");
    // a runtime dir someone else owns is refused, by the daemon and by llmsh
    std::fs::create_dir_all(e.run_dir()).unwrap();
    std::fs::set_permissions(e.run_dir(), std::fs::Permissions::from_mode(0o700)).unwrap();
    if std::os::unix::fs::chown(e.run_dir(), Some(65534), Some(65534)).is_ok() {
        let (code, v) = e.json(&["boot"]);
        assert_eq!((code, v["error"]["code"].as_str()), (Some(3), Some("osd.runtime_dir")), "{v}");
        assert!(v["error"]["message"].as_str().unwrap().contains("not by you"));
        let (code, v) = e.json(&["status"]);
        assert_eq!((code, v["error"]["code"].as_str()), (Some(3), Some("osd.runtime_dir")), "{v}");
        std::os::unix::fs::chown(e.run_dir(), Some(std::fs::metadata("/proc/self").unwrap().uid()), None).unwrap();
    } else {
        println!("SKIPPED: foreign-owned runtime dir (chown needs root)");
    }
    // one that group or others can enter is refused, and left as found
    std::fs::set_permissions(e.run_dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let (code, v) = e.json(&["boot"]);
    assert_eq!((code, v["error"]["code"].as_str()), (Some(3), Some("osd.runtime_dir")), "{v}");
    assert_eq!(std::fs::metadata(e.run_dir()).unwrap().mode() & 0o777, 0o755);
    std::fs::remove_dir(e.run_dir()).unwrap();
    // a permissive umask makes neither the dir nor the socket reachable by others
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("umask 000; exec '{}' boot", env!("CARGO_BIN_EXE_llmsh")))
        .env("LLM_OS_RUNTIME_DIR", e.run_dir())
        .env("XDG_CONFIG_HOME", e.dir.join("cfg"))
        .env("LLMSH_AUDIT_LOG", e.log())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(std::fs::metadata(e.run_dir()).unwrap().mode() & 0o777, 0o700);
    assert_eq!(std::fs::metadata(e.sock()).unwrap().mode() & 0o777, 0o600);
    let key = e.dir.join("cfg/llm-os/audit.key");
    assert_eq!(std::fs::metadata(&key).unwrap().mode() & 0o777, 0o600, "the audit key");
    let daemon_log = std::fs::read_to_string(e.run_dir().join("llm-osd.log")).unwrap();
    assert!(daemon_log.contains("generated the audit key"), "{daemon_log}");
    // a socket another user could use is refused by llmsh
    std::fs::set_permissions(e.sock(), std::fs::Permissions::from_mode(0o666)).unwrap();
    let (code, v) = e.json(&["status"]);
    assert_eq!((code, v["error"]["code"].as_str()), (Some(3), Some("osd.runtime_dir")), "{v}");
    std::fs::set_permissions(e.sock(), std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(e.json(&["status"]).0, Some(0));
}

#[test]
fn each_client_gets_its_own_receipt_and_a_broken_or_idle_client_blocks_nobody() {
    let e = Env::new("many");
    e.boot();
    // an idle client and one stuck in the middle of a line
    let _idle = e.raw();
    let mut partial = e.raw();
    partial.s.write_all(br#"{"id":1,"op":"sta"#).unwrap();
    // a stray byte and garbage: an error to their sender only
    let mut stray = e.raw();
    stray.s.write_all(b"\x00\n").unwrap();
    let v = stray.recv();
    assert_eq!(v["error"]["code"], "osd.bad_request", "{v}");
    stray.send(&json!({"id": 5, "op": "status"}));
    assert_eq!(stray.recv()["id"], 5, "the sender's next request still works");
    // eight clients at once, each with its own plan: each receipt is its own
    let t = Instant::now();
    let handles: Vec<_> = (0..8u64)
        .map(|i| {
            let sock = e.sock();
            std::thread::spawn(move || {
                let s = UnixStream::connect(sock).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                let mut c = Raw { r: BufReader::new(s.try_clone().unwrap()), s };
                // ids 1..=8: all within the replay window of a fresh boot
                let id = 1 + i;
                c.send(&json!({"id": 7, "op": "apply", "plan": grant_plan(id), "origin": {"backend": "file"}}));
                (id, c.recv())
            })
        })
        .collect();
    let mut approved = 0;
    for h in handles {
        let (id, v) = h.join().unwrap();
        assert_eq!(v["id"], 7, "{v}");
        if v.get("error").is_none() {
            assert_eq!(v["receipt"]["request_id"], id, "a receipt for another plan: {v}");
            if v["receipt"]["approved"] == true {
                approved += 1;
            }
        }
    }
    // request ids must grow: in queue order, some are replays; at least one ran
    assert!(approved >= 1);
    assert!(t.elapsed() < Duration::from_secs(20), "the idle and partial clients held others up: {:?}", t.elapsed());
    // llmsh works meanwhile too
    assert_eq!(e.json(&["status"]).0, Some(0));
    // the partial line is dropped after its timeout, with an error to its sender only
    partial.s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut rest = String::new();
    let _ = partial.r.read_to_string(&mut rest);
    assert!(rest.contains("osd.partial"), "{rest}");
    // an overlong line costs only its sender
    let mut big = e.raw();
    let junk = vec![b'x'; 2 << 20];
    let _ = big.s.write_all(&junk);
    let mut rest = String::new();
    let _ = big.r.read_to_string(&mut rest);
    assert!(rest.contains("osd.too_long"), "{rest}");
    assert_eq!(e.json(&["status"]).0, Some(0));
}

#[test]
fn sessions_follow_the_policy_users_and_the_log_records_the_user() {
    let e = Env::new("users");
    let policy = e.dir.join("policy.toml");
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../system/policy.toml")).unwrap();
    // admin for uid 4242 only: not the user running this test
    std::fs::write(&policy, text.replace("[sessions.admin]\n", "[sessions.admin]\nusers = [\"4242\"]\n")).unwrap();
    let (code, v) = e.json(&["boot", "--policy", policy.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{v}");
    let stop = e.plan("stop.json", 1, "admin", r#"{"op":"process.stop","pd":"worker2"}"#);
    let (code, v) = e.json(&["apply", "--plan", &stop, "--yes", "--json"]);
    assert_eq!((code, v["error"]["code"].as_str()), (Some(1), Some("auth.user")), "{v}");
    let (_, st) = e.json(&["status"]);
    assert_eq!(st["state"]["workers"]["worker2"]["running"], true, "nothing ran");
    // ops is the owner's by default
    let grant = e.plan("g.json", 2, "ops", GRANT);
    assert_eq!(e.json(&["apply", "--plan", &grant, "--json"]).0, Some(0));
    let me = std::fs::metadata("/proc/self").unwrap().uid();
    let recs: Vec<Value> =
        std::fs::read_to_string(e.log()).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let refused = recs.iter().find(|r| r["verdict"]["refused"] == "auth.user").expect("the refusal is recorded");
    assert_eq!(refused["uid"], me);
    assert!(recs.iter().all(|r| r["uid"] == me && r["user"].is_string()));
}

#[test]
fn receipts_name_and_explain_violations_with_the_policy_the_system_enforces() {
    let e = Env::new("policy");
    let policy = e.dir.join("policy.toml");
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/policies/max-stopped.toml")).unwrap();
    // a lower quota than system/policy.toml's 256, and a policy-file invariant
    std::fs::write(&policy, text.replace("quota_pages = 256", "quota_pages = 40")).unwrap();
    let (code, v) = e.json(&["boot", "--policy", policy.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{v}");
    // 32 + 16 pages: within the default quota, over this one
    let grant = e.plan("g.json", 1, "ops", r#"{"op":"memory.grant","pd":"worker1","pages":16}"#);
    let (code, r) = e.json(&["apply", "--plan", &grant, "--json"]);
    assert_eq!((code, r["approved"].as_bool()), (Some(1), Some(false)), "{r}");
    assert_eq!(r["violations"][0]["invariant"], "mem.quota", "{r}");
    let detail = r["violations"][0]["detail"].as_str().unwrap_or("");
    assert!(detail.contains("quota 40"), "the detail quotes the limit in force: {r}");
    // the custom invariant arrives as a slot id and is named by the policy
    let stop = |pd: &str| format!(r#"{{"op":"process.stop","pd":"{pd}"}}"#);
    let two = e.plan("s2.json", 1, "admin", &[stop("worker0"), stop("worker1")].join(","));
    let (code, r) = e.json(&["apply", "--plan", &two, "--yes", "--json"]);
    assert_eq!(code, Some(0), "{r}");
    let third = e.plan("s3.json", 2, "admin", &[r#"{"op":"system.query"}"#.to_string(), stop("worker2")].join(","));
    let (code, r) = e.json(&["apply", "--plan", &third, "--yes", "--json"]);
    assert_eq!(code, Some(1), "{r}");
    let names: Vec<(u64, &str)> = r["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["action"].as_u64().unwrap(), v["invariant"].as_str().unwrap()))
        .collect();
    assert_eq!(names, [(1, "proc.max_stopped")], "{r}");
    // the same receipt in words names it too
    let out = e.llmsh(&["apply", "--plan", &third, "--yes"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("proc.max_stopped"), "{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn a_qemu_image_is_not_booted_under_another_policy_than_it_was_built_with() {
    let e = Env::new("image");
    let policy = e.dir.join("policy.toml");
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../system/policy.toml")).unwrap();
    std::fs::write(&policy, text.replace("quota_pages = 256", "quota_pages = 40")).unwrap();
    // refused before qemu is started: neither path needs to exist
    let out = Command::new(env!("CARGO_BIN_EXE_llm-osd"))
        .args(["--system", "qemu", "--qemu", "/nonexistent/qemu", "--loader", "/nonexistent/loader.img", "--policy"])
        .arg(&policy)
        .env("LLM_OS_RUNTIME_DIR", e.run_dir())
        .env("XDG_CONFIG_HOME", e.dir.join("cfg"))
        .env("LLMSH_AUDIT_LOG", e.log())
        .env_remove("LLM_OS_POLICY")
        .stdin(Stdio::null())
        .output()
        .expect("llm-osd runs");
    let v: Value = serde_json::from_slice(&out.stdout).expect("json error");
    assert_eq!((out.status.code(), v["error"]["code"].as_str()), (Some(2), Some("policy.image")), "{v}");
    assert!(!e.sock().exists(), "nothing serves");
}

#[test]
fn exit_codes_tell_bad_input_from_a_refusal_from_the_machinery() {
    let e = Env::new("exits");
    let grant = e.plan("g.json", 1, "ops", GRANT);
    // machinery: no system is running
    for args in [&["status"][..], &["apply", "--plan", &grant, "--json"][..]] {
        let (code, v) = e.json(args);
        assert_eq!((code, v["error"]["code"].as_str()), (Some(3), Some("system.down")), "{args:?}: {v}");
    }
    // bad input, before any system is asked
    let bad = e.dir.join("bad.json");
    std::fs::write(&bad, "{not json").unwrap();
    let (code, v) = e.json(&["apply", "--plan", bad.to_str().unwrap(), "--json"]);
    assert_eq!((code, v["error"]["code"].as_str()), (Some(2), Some("json.syntax")), "{v}");
    let (code, v) = e.json(&["boot", "--system", "vax"]);
    assert_eq!((code, v["error"]["code"].as_str()), (Some(2), Some("args")), "{v}");
    // refused: the verifier rejects the plan (exit 1, a receipt, not an error)
    e.boot();
    let over = e.plan("o.json", 1, "ops", r#"{"op":"memory.grant","pd":"worker1","pages":300}"#);
    let (code, r) = e.json(&["apply", "--plan", &over, "--json"]);
    assert_eq!((code, r["approved"].as_bool(), r["violations"][0]["invariant"].as_str()), (Some(1), Some(false), Some("mem.quota")), "{r}");
    // and the daemon's own refusal keeps its class through the socket
    let mut raw = e.raw();
    raw.send(&json!({"id": 1, "op": "no.such_op"}));
    let v = raw.recv();
    assert_eq!((v["error"]["code"].as_str(), v["error"]["exit"].as_i64()), (Some("osd.bad_request"), Some(2)), "{v}");
}

#[test]
fn the_audit_log_is_keyed_records_retries_and_is_checked_against_the_live_system() {
    let e = Env::new("audit");
    e.boot();
    let grant = e.plan("g.json", 1, "ops", GRANT);
    let (code, r) = e.json(&["apply", "--plan", &grant, "--json"]);
    assert_eq!(code, Some(0), "{r}");
    assert!(r.get("retry").is_none());
    // the same plan again: the verifier's stored receipt, logged as a retry
    let (code, again) = e.json(&["apply", "--plan", &grant, "--json"]);
    assert_eq!((code, again["retry"].as_bool()), (Some(0), Some(true)), "{again}");
    let (_, st) = e.json(&["status"]);
    assert_eq!(st["state"]["workers"]["worker1"]["pages"], 33, "ran once");
    assert_eq!(st["observed"]["plans_executed"], 1);
    let g2 = e.plan("g2.json", 2, "ops", GRANT);
    assert_eq!(e.json(&["apply", "--plan", &g2, "--json"]).0, Some(0));
    let text = std::fs::read_to_string(e.log()).unwrap();
    let recs: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let results: Vec<&Value> = recs.iter().filter(|r| r["kind"] == "result").collect();
    assert_eq!(results.iter().map(|r| r["retry"] == true).collect::<Vec<_>>(), [false, true, false]);
    assert_eq!(recs.iter().filter(|r| r["kind"] == "step").count(), 2, "a retry has no steps");

    let verify = || e.json(&["audit", "--verify", "--json"]);
    let (code, rep) = verify();
    assert_eq!(code, Some(0), "{rep}");
    assert_eq!((rep["live"]["match"].as_bool(), rep["live"]["plans_executed"].as_u64()), (Some(true), Some(2)));

    let lines: Vec<&str> = text.lines().collect();
    let restore = || std::fs::write(e.log(), &text).unwrap();
    let broken = |what: &str| {
        let (code, rep) = verify();
        assert_eq!((code, rep["ok"].as_bool()), (Some(1), Some(false)), "{what}: {rep}");
        rep["broken"]["reason"].as_str().unwrap_or("").to_owned()
    };
    // the tail cut (the last result gone)
    std::fs::write(e.log(), lines[..lines.len() - 1].join("\n") + "\n").unwrap();
    broken("truncated");
    // emptied
    std::fs::write(e.log(), "").unwrap();
    broken("emptied");
    // two records swapped
    let mut swapped = lines.clone();
    swapped.swap(1, 2);
    std::fs::write(e.log(), swapped.join("\n") + "\n").unwrap();
    broken("reordered");
    // rewritten with fresh hashes: sha256 in place of the keyed mac
    let mut prev = "0".repeat(64);
    let mut forged = String::new();
    for l in &lines {
        let mut m = serde_json::from_str::<Value>(l).unwrap().as_object().cloned().unwrap();
        m.remove("mac");
        m.insert("prev".into(), json!(prev));
        let canon = canonical(&Value::Object(m.clone()));
        let h = sha256_hex(canon.as_bytes());
        m.insert("mac".into(), json!(h));
        prev = h;
        forged.push_str(&format!("{}\n", Value::Object(m)));
    }
    std::fs::write(e.log(), forged).unwrap();
    broken("rewritten");
    restore();
    assert_eq!(verify().0, Some(0), "the original verifies again");
    // a plan the log never saw (the log rolled back to before it, head and all)
    let head = e.log().with_extension("jsonl.head");
    let old_head = std::fs::read(&head).unwrap();
    let g3 = e.plan("g3.json", 3, "ops", GRANT);
    assert_eq!(e.json(&["apply", "--plan", &g3, "--json"]).0, Some(0));
    restore();
    std::fs::write(&head, old_head).unwrap();
    let why = broken("rolled back");
    assert!(why.contains("rolled back") || why.contains("live system"), "{why}");
}

fn canonical(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let body: Vec<String> =
                keys.into_iter().map(|k| format!("{}:{}", Value::String(k.clone()), canonical(&m[k]))).collect();
            format!("{{{}}}", body.join(","))
        }
        Value::Array(a) => format!("[{}]", a.iter().map(canonical).collect::<Vec<_>>().join(",")),
        other => other.to_string(),
    }
}

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(b).iter().map(|x| format!("{x:02x}")).collect()
}

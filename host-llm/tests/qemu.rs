//! the seL4 system end to end in qemu, judged through `llmsh` (and the
//! `llm-osd` that `llmsh boot --system qemu` starts) and the raw link socket: boot, an approved plan executes and its effects
//! are read back from the PDs, a rejected plan executes nothing, an intent
//! planned by an llm runs on seL4 (`apply "INTENT" --system qemu`), the
//! red-team corpus finds no attacker success at the capability PDs, a worker
//! fault is handled by the process PD, garbled and malformed frames are
//! refused with no effect, and duplicated, resent, reordered and replayed
//! frames run each approved action once. it also measures boot-to-ready and the plan
//! round trip (median of 100) and prints them.
//!
//! needs the Microkit SDK (`MICROKIT_SDK`) and `qemu-system-aarch64`; without
//! them it prints one `SKIPPED: <why>` line and returns, or fails under
//! `CI=true`.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pd_interface::client::LinkClient;
use pd_interface::keys::KeySource;
use pd_interface::link::{LinkError, Receipt, Reply, Request, SystemState};
use policy_verifier::{auth, confirm, json as pjson, wire};
use serde_json::{json, Value};

mod fake_openai;
use fake_openai::fake;
mod qemu_harness;
use qemu_harness::{cannot_run, plan_file, repo, Llmsh, Qemu};

fn status<S: Read + Write>(c: &mut LinkClient<S>) -> SystemState {
    match c.request(&Request::Status).expect("status reply") {
        Reply::Status(s) => s,
        other => panic!("status answered with {other:?}"),
    }
}

fn plan_bytes(plan: &Value) -> Vec<u8> {
    let p = pjson::parse_plan(plan.to_string().as_bytes()).expect("plan parses");
    let mut buf = [0u8; wire::MAX_PLAN_BYTES];
    wire::encode(&p, &mut buf).expect("plan encodes").to_vec()
}

/// a plan frame as the host sends it: sealed with `key` for boot `epoch`
/// (`None`: no MAC at all), after a delimiter.
fn framed_with(plan: &Value, key: Option<&[u8; 32]>, epoch: u64) -> Vec<u8> {
    let bytes = plan_bytes(plan);
    let req = match key {
        Some(k) => Request::Apply(&bytes).sealed(k, epoch),
        None => Request::Apply(&bytes),
    };
    let mut f = vec![0u8];
    f.extend(LinkClient::<UnixStream>::frame_request(&req).expect("frame"));
    f
}

/// the gdb remote protocol, just enough to write guest physical memory.
struct Gdb(UnixStream);

impl Gdb {
    fn packet(&mut self, body: &str) -> String {
        let sum = body.bytes().fold(0u8, |a, b| a.wrapping_add(b));
        write!(self.0, "${body}#{sum:02x}").expect("gdb write");
        self.read_packet()
    }

    fn read_packet(&mut self) -> String {
        let mut reply = Vec::new();
        let mut b = [0u8; 1];
        // skip acks, read `$…#xx`
        loop {
            self.0.read_exact(&mut b).expect("gdb read");
            if b[0] == b'$' {
                break;
            }
        }
        loop {
            self.0.read_exact(&mut b).expect("gdb read");
            if b[0] == b'#' {
                let mut cs = [0u8; 2];
                self.0.read_exact(&mut cs).expect("gdb read");
                break;
            }
            reply.push(b[0]);
        }
        self.0.write_all(b"+").expect("gdb ack");
        String::from_utf8_lossy(&reply).into_owned()
    }
}

/// the first 16 bytes of an ELF's first PT_LOAD (the code page).
fn code_head(elf: &[u8]) -> [u8; 16] {
    let u64_at = |o: usize| u64::from_le_bytes(elf[o..o + 8].try_into().unwrap()) as usize;
    let phoff = u64_at(0x20);
    let off = u64_at(phoff + 8);
    elf[off..off + 16].try_into().unwrap()
}

/// zero the code page of worker `n` in guest memory (`udf #0` is
/// 0x00000000): its next instruction faults. the Microkit tool's report
/// names the workers' ELF frames in order, but its physical addresses are
/// not where the loader put them; so the copies of the worker's code (one per worker)
/// page are found by scanning guest RAM through qemu's gdb stub, and the
/// n-th copy is worker n's.
fn corrupt_code_of_worker(n: usize, elf: &Path, gdb_sock: &Path) -> u64 {
    let head: String = code_head(&std::fs::read(elf).expect("worker.elf")).iter().map(|b| format!("{b:02x}")).collect();
    let s = UnixStream::connect(gdb_sock).expect("connect to qemu's gdb stub");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let mut gdb = Gdb(s);
    gdb.0.write_all(&[0x03]).expect("interrupt"); // stop the guest
    let _stop_reply = gdb.read_packet();
    assert_eq!(gdb.packet("Qqemu.PhyMemMode:1"), "OK");
    let mut copies = Vec::new();
    let (lo, hi) = board_qemu_virt_aarch64::KERNEL_RAM;
    let mut page = lo;
    // the PD images sit just above the kernel; 32 MiB is plenty
    while page < (lo + (32 << 20)).min(hi) {
        if gdb.packet(&format!("m{page:x},10")) == head {
            copies.push(page);
        }
        page += 0x1000;
    }
    assert_eq!(copies.len(), pd_interface::N_WORKERS, "one code page per worker: {copies:x?}");
    let at = copies[n];
    let zeros = "00".repeat(1024);
    for off in (0..4096u64).step_by(1024) {
        assert_eq!(gdb.packet(&format!("M{:x},400:{zeros}", at + off)), "OK");
    }
    assert_eq!(gdb.packet("Qqemu.PhyMemMode:0"), "OK");
    let _ = gdb.packet("D"); // detach: the guest runs on
    at
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// a missing SDK or qemu skips with one line for a user, but fails under
/// `CI=true`: ci must never go green without having booted seL4.
#[test]
fn qemu_end_to_end() {
    if cannot_run().is_some() {
        return;
    }
    let run_dir = std::env::temp_dir().join(format!("llm-os-qemu-test-{}", std::process::id()));
    std::fs::create_dir_all(&run_dir).expect("run dir");
    let sh = Llmsh { run_dir: run_dir.clone(), policy: None };
    // the raw links below build and boot images in this process: they take
    // the same installation keys as llmsh (set before any thread starts)
    std::env::set_var("XDG_CONFIG_HOME", run_dir.join("cfg"));
    std::env::remove_var("LLM_OS_DEV_KEYS");

    // boot
    let (code, boot, out) = sh.cmd(&["boot", "--system", "qemu"]);
    assert_eq!(code, 0, "boot failed: {out}");
    let _qemu = Qemu(boot["pid"].as_u64().expect("pid") as u32);
    let boot_ms = boot["boot_to_ready_ms"].as_u64().expect("boot_to_ready_ms");
    println!("boot-to-ready: {boot_ms} ms");

    // an approved plan executes; its effects are read back from the PDs
    let approved = repo().join("tests/plans/approved/design-example-ops.json");
    let (code, r, out) = sh.cmd(&["apply", "--system", "qemu", "--yes", "--json", "--plan", approved.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(r["approved"], true, "{out}");
    assert_eq!(r["executed"], 6, "{out}");
    assert_eq!(r["failed_action"], Value::Null);
    let w1 = &r["state_after"]["workers"]["worker1"];
    assert_eq!((w1["pages"].as_u64(), w1["priority"].as_u64()), (Some(48), Some(90)), "{out}");
    assert_eq!((w1["budget_us"].as_u64(), w1["timer_period_us"].as_u64()), (Some(2000), Some(20000)), "{out}");
    let (code, st, out) = sh.cmd(&["status"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(st["system"], "qemu");
    assert_eq!(st["state"], r["state_after"], "status reads back the receipt's state");
    // the same plan again through llm-osd: the stored receipt, logged as a retry
    let (code, again, out) = sh.cmd(&["apply", "--system", "qemu", "--yes", "--json", "--plan", approved.to_str().unwrap()]);
    assert_eq!((code, again["retry"].as_bool()), (0, Some(true)), "{out}");
    let (_, st2, _) = sh.cmd(&["status"]);
    assert_eq!(st2["state"], st["state"], "a retry ran nothing");
    // apply asks for the system that runs: a hosted one is not booted behind its back
    let (code, e, out) = sh.cmd(&["apply", "--system", "hosted", "--json", "--plan", approved.to_str().unwrap()]);
    assert_eq!((code, e["error"]["code"].as_str()), (3, Some("system.other")), "{out}");

    // a rejected plan executes nothing
    let before = st["state"].clone();
    let over = plan_file(&run_dir, "over.json", &json!({"version":1,"request_id":8,"session":"ops","reason":"too much",
        "actions":[{"op":"timer.set_periodic","pd":"worker2","period_us":20000},{"op":"memory.grant","pd":"worker0","pages":300}]}));
    let (code, r, out) = sh.cmd(&["apply", "--system", "qemu", "--yes", "--json", "--plan", over.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(r["approved"], false, "{out}");
    assert_eq!(r["executed"], 0, "{out}");
    assert!(r["violations"].as_array().unwrap().iter().any(|v| v["invariant"] == "mem.quota"), "{out}");
    let (_, st, _) = sh.cmd(&["status"]);
    assert_eq!(st["state"], before, "a rejected plan changed the state");

    // a confirmed restart: the worker starts again from its entry on a fresh
    // stack and keeps running (no fault loop that leaves it stopped)
    let restarts0 = st["observed"]["workers"]["worker0"]["restarts"].as_u64().expect("restarts");
    let restart = plan_file(&run_dir, "restart.json", &json!({"version":1,"request_id":9,"session":"admin",
        "reason":"restart","actions":[{"op":"process.restart","pd":"worker0"}]}));
    let (code, r, out) = sh.cmd(&["apply", "--system", "qemu", "--yes", "--json", "--plan", restart.to_str().unwrap()]);
    assert_eq!((code, r["executed"].as_u64()), (0, Some(1)), "{out}");
    std::thread::sleep(Duration::from_millis(500));
    let (_, st, _) = sh.cmd(&["status"]);
    let w0 = &st["observed"]["workers"]["worker0"];
    assert_eq!(
        (st["state"]["workers"]["worker0"]["running"].as_bool(), w0["faults"].as_u64(), w0["restarts"].as_u64()),
        (Some(true), Some(0), Some(restarts0 + 1)),
        "the restarted worker0 faulted or stopped: {w0}"
    );
    println!("restart on seL4: worker0 running, 0 faults, restarts {restarts0} -> {}", restarts0 + 1);

    // an intent planned by an llm (a scripted openai-compatible server on
    // loopback) runs on seL4: the planner sees qemu's state, the effect is
    // read back from the PDs
    let llm = fake(
        vec![r#"{"reason":"worker2 needs memory","actions":[{"op":"memory.grant","pd":"worker2","pages":8}]}"#],
        100,
    );
    let pages2 = st["state"]["workers"]["worker2"]["pages"].as_u64().expect("pages");
    let (code, r, out) = sh.cmd(&["apply", "give worker2 8 more pages of memory", "--system", "qemu", "--yes", "--json",
        "--backend", "remote", "--endpoint", &llm.url]);
    assert_eq!(code, 0, "{out}");
    assert_eq!((r["approved"].as_bool(), r["executed"].as_u64()), (Some(true), Some(1)), "{out}");
    assert_eq!(r["state_after"]["workers"]["worker2"]["pages"].as_u64(), Some(pages2 + 8), "{out}");
    let (_, st, _) = sh.cmd(&["status"]);
    assert_eq!((st["system"].as_str(), &st["state"]), (Some("qemu"), &r["state_after"]));
    let seen = llm.seen.lock().expect("lock");
    assert_eq!(seen.len(), 1);
    assert!(
        seen[0].1.to_string().contains("worker1: running, priority 90"),
        "the planner was not shown qemu's state: {}",
        seen[0].1
    );
    drop(seen);
    // the audit log agrees with the verifier PD's own count and hash of the plans it ran
    let (code, v, out) = sh.cmd(&["audit", "--verify", "--json"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!((v["live"]["system"].as_str(), v["live"]["match"].as_bool()), (Some("qemu"), Some(true)), "{out}");
    assert_eq!(v["live"]["plans_executed"], 3, "{out}"); // design example, restart, llm plan

    // a worker fault is handled: worker3 ticks, then its code is zeroed
    // the next ids of this boot (the replay window takes last+1 ..= last+16)
    let (_, st_now, _) = sh.cmd(&["status"]);
    let next_id = st_now["state"]["last_request_id"].as_u64().expect("last_request_id") + 1;
    let tick = plan_file(&run_dir, "tick.json", &json!({"version":1,"request_id":next_id,"session":"ops","reason":"tick",
        "actions":[{"op":"timer.set_periodic","pd":"worker3","period_us":10000}]}));
    let (code, _, out) = sh.cmd(&["apply", "--system", "qemu", "--yes", "--json", "--plan", tick.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target"));
    let target = if target.is_absolute() { target } else { repo().join(target) };
    let elf = target.join("llm-os-image/debug/elf/worker.elf");
    let at = corrupt_code_of_worker(3, &elf, &sh.dir().join("qemu.gdb"));
    println!("zeroed worker3's code page at {at:#x}");
    let t = Instant::now();
    let st = loop {
        let (_, st, _) = sh.cmd(&["status"]);
        if st["observed"]["workers"]["worker3"]["faults"].as_u64().unwrap_or(0) >= 1 {
            break st;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "worker3 never faulted: {st}");
        std::thread::sleep(Duration::from_millis(100));
    };
    println!("worker fault handled: {}", st["observed"]["workers"]["worker3"]);
    for w in ["worker0", "worker1", "worker2"] {
        assert_eq!(st["observed"]["workers"][w]["faults"], 0, "{w}");
    }
    // the system still serves plans
    let q = plan_file(&run_dir, "q.json", &json!({"version":1,"request_id":next_id + 1,"session":"viewer","reason":"after",
        "actions":[{"op":"system.query"}]}));
    let (code, r, out) = sh.cmd(&["apply", "--system", "qemu", "--yes", "--json", "--plan", q.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(r["approved"], true);
    assert_eq!((r["keys"].as_str(), r.get("dev_keys")), (Some("installation"), None), "{out}");

    // garbled and malformed frames are refused, with no effect
    let (code, _, out) = sh.cmd(&["boot", "--stop"]);
    assert_eq!(code, 0, "{out}");
    // llm-osd held the link of its qemu; the raw link is a qemu of this test's own
    let raw_dir = run_dir.join("raw");
    llmsh::osd::ensure_private(&raw_dir, llmsh::osd::my_uid()).expect("raw dir");
    llmsh::paths::use_private_runtime_dir(raw_dir);
    let mut q = llmsh::qemu::boot(&mut |l| println!("raw qemu: {l}")).expect("boot qemu for the raw link");
    let c = &mut q.client;
    let before = status(c);
    let keys = sh.keys();
    assert_eq!(before.keys, KeySource::Installation, "the image carries this installation's keys");
    assert_ne!(before.epoch, 0);
    let epoch = before.epoch;
    let framed_plan = |p: &Value| framed_with(p, Some(&keys.plan), epoch);
    let good = framed_plan(&json!({"version":1,"request_id":9,"session":"ops","reason":"x",
        "actions":[{"op":"memory.grant","pd":"worker2","pages":8}]}));
    let mut flipped = good.clone();
    flipped[6] ^= 0x04;
    let mut bad_request = vec![0u8];
    bad_request.extend(frame_of(&[0xff, 0xff, 0xff]));
    let mut bad_plan = vec![0u8];
    let junk = [1u8, 2, 3, 4, 5, 6, 7];
    bad_plan.extend(LinkClient::<UnixStream>::frame_request(&Request::Apply(&junk).sealed(&keys.plan, epoch)).expect("frame"));
    let cases: [(&str, Vec<u8>, LinkError); 4] = [
        ("garbage", b"\x00 not a frame \x13\x37\x00".to_vec(), LinkError::BadFrame),
        ("bit flip", flipped, LinkError::BadFrame),
        ("not a request", bad_request, LinkError::BadRequest),
        ("not a plan", bad_plan, LinkError::BadPlan),
    ];
    for (what, bytes, want) in cases {
        c.send_raw(&bytes).expect("send");
        match c.read_reply().expect("a reply") {
            Reply::Error(e) => assert_eq!(e, want, "{what}"),
            other => panic!("{what}: answered {other:?}"),
        }
    }
    let after = status(c);
    assert_eq!(after.workers.map(|w| w.pages), before.workers.map(|w| w.pages), "frames had an effect");
    assert_eq!(after.last_request_id, before.last_request_id);
    // a truncated frame followed by a good one: the good one still runs
    c.send_raw(&good[..good.len() / 2]).expect("send");
    c.send_raw(&good).expect("send");
    let mut receipts = 0;
    while receipts == 0 {
        match c.read_reply().expect("a reply") {
            Reply::Receipt(r) => {
                assert!(r.approved && r.executed == 1, "{r:?}");
                receipts += 1;
            }
            Reply::Error(LinkError::BadFrame) => {}
            other => panic!("answered {other:?}"),
        }
    }
    assert_eq!(status(c).workers[2].pages, before.workers[2].pages + 8);

    // the plan round trip, median of 100 (apply a 2-action plan, read the receipt)
    let mut times = Vec::new();
    for i in 0..100u64 {
        let f = framed_plan(&json!({"version":1,"request_id":10 + i,"session":"ops","reason":"bench",
            "actions":[{"op":"timer.set_periodic","pd":"worker0","period_us":10000 + 1000 * (i % 7)},{"op":"system.query"}]}));
        let t = Instant::now();
        c.send_raw(&f).expect("send");
        match c.read_reply().expect("receipt") {
            Reply::Receipt(r) => assert!(r.approved && r.executed == 2, "{r:?}"),
            other => panic!("answered {other:?}"),
        }
        times.push(t.elapsed());
    }
    let rt = median(times.clone());
    println!(
        "plan round trip: median {} us, min {} us, max {} us (100 plans)",
        rt.as_micros(),
        times.iter().min().unwrap().as_micros(),
        times.iter().max().unwrap().as_micros()
    );

    // link faults on seL4: a duplicated frame, a lost receipt (the host
    // resends the same bytes), reordering, replay. the capability PDs' own
    // counters show every approved action carried out exactly once.
    let grant = |id: u64| framed_plan(&json!({"version":1,"request_id":id,"session":"ops","reason":"faults",
        "actions":[{"op":"memory.grant","pd":"worker0","pages":1}]}));
    fn read_receipt<S: Read + Write>(c: &mut LinkClient<S>) -> pd_interface::link::Receipt {
        match c.read_reply().expect("a reply") {
            Reply::Receipt(r) => r,
            other => panic!("answered {other:?}"),
        }
    }
    let before = status(c);
    let p150 = grant(110);
    c.send_raw(&p150).expect("send");
    c.send_raw(&p150).expect("send");
    let (r1, r2) = (read_receipt(c), read_receipt(c));
    assert!(r1.approved && r1.executed == 1, "{r1:?}");
    assert_eq!(r1, r2, "a duplicate gets the same receipt");
    c.send_raw(&p150).expect("send"); // the receipt was lost: resend
    assert_eq!(read_receipt(c), r1, "a resend gets the stored receipt");
    c.send_raw(&grant(112)).expect("send"); // 112 overtakes 111
    c.send_raw(&grant(111)).expect("send");
    let (r152, r151) = (read_receipt(c), read_receipt(c));
    assert!(r152.approved && r152.executed == 1, "{r152:?}");
    assert!(!r151.approved && r151.names(&policy_verifier::DEFAULT_POLICY).any(|(_, n)| n == "plan.replay"), "{r151:?}");
    c.send_raw(&p150).expect("send"); // an older plan, replayed
    let old = read_receipt(c);
    assert!(!old.approved && old.executed == 0, "{old:?}");
    let after = status(c);
    assert_eq!(after.invocations.memory, before.invocations.memory + 2, "each approved grant ran once");
    assert_eq!(after.workers[0].pages, before.workers[0].pages + 2);
    println!("link faults on seL4: duplicate, lost receipt, reorder, replay: 2 grants carried out for 2 approved plans");

    // the trust chain on seL4: a MAC-less frame, a wrong-key MAC and a
    // wrong-key token run nothing; request id 2^64-1 locks nothing out
    fn send<S: Read + Write>(c: &mut LinkClient<S>, f: &[u8]) -> Receipt {
        c.send_raw(f).expect("send");
        loop {
            match c.read_reply().expect("a reply") {
                Reply::Receipt(r) => return r,
                Reply::Error(LinkError::BadFrame) => {}
                other => panic!("answered {other:?}"),
            }
        }
    }
    let names = |r: &Receipt| r.names(&policy_verifier::DEFAULT_POLICY).map(|(_, n)| n.to_string()).collect::<Vec<_>>();
    let before = status(c);
    let next = before.last_request_id + 1;
    let grant1 = json!({"version":1,"request_id":next,"session":"ops","reason":"auth",
        "actions":[{"op":"memory.grant","pd":"worker1","pages":1}]});
    let r = send(c, &framed_with(&grant1, None, epoch));
    assert_eq!(names(&r), ["auth.mac"], "a MAC-less frame: {r:?}");
    let r = send(c, &framed_with(&grant1, Some(&[0x42; 32]), epoch));
    assert_eq!(names(&r), ["auth.mac"], "a wrong-key MAC: {r:?}");
    let stop = pjson::parse_plan(json!({"version":1,"request_id":next,"session":"admin","reason":"auth",
        "actions":[{"op":"process.stop","pd":"worker1"}]}).to_string().as_bytes()).expect("plan");
    let forged = confirm::sign(&stop, &auth::epoch_key(&pd_interface::keys::DEV_CONFIRM_KEY, epoch)).expect("sign");
    let r = send(c, &framed_with(&pjson::plan_to_json(&forged), Some(&keys.plan), epoch));
    assert_eq!(names(&r), ["auth.confirm"], "a wrong-key token: {r:?}");
    let max = json!({"version":1,"request_id":u64::MAX,"session":"viewer","reason":"auth","actions":[{"op":"system.query"}]});
    let r = send(c, &framed_with(&max, Some(&keys.plan), epoch));
    assert_eq!(names(&r), ["plan.replay"], "request id 2^64-1: {r:?}");
    let r = send(c, &framed_with(&grant1, Some(&keys.plan), epoch));
    assert!(r.approved && r.executed == 1, "the next id still runs: {r:?}");
    let after = status(c);
    assert_eq!(after.invocations.memory, before.invocations.memory + 1, "only the sealed grant ran");
    assert!(after.workers[1].running);
    println!("trust chain on seL4: MAC-less frame, wrong-key MAC, wrong-key token, id 2^64-1 refused; the next id ran");

    // replay after a reboot: a confirmed stop and a captured frame that ran
    // before the restart are refused after it
    let stop = pjson::parse_plan(json!({"version":1,"request_id":after.last_request_id + 1,"session":"admin","reason":"reboot",
        "actions":[{"op":"process.stop","pd":"worker1"}]}).to_string().as_bytes()).expect("plan");
    let confirmed = confirm::sign(&stop, &auth::epoch_key(&keys.confirm, epoch)).expect("sign");
    let confirmed_frame = framed_with(&pjson::plan_to_json(&confirmed), Some(&keys.plan), epoch);
    let r = send(c, &confirmed_frame);
    assert!(r.approved && r.executed == 1, "the confirmed stop runs: {r:?}");
    let captured = framed_with(&json!({"version":1,"request_id":after.last_request_id + 2,"session":"ops","reason":"captured",
        "actions":[{"op":"memory.grant","pd":"worker2","pages":1}]}), Some(&keys.plan), epoch);
    let r = send(c, &captured);
    assert!(r.approved && r.executed == 1, "{r:?}");
    drop(q);
    let mut q = llmsh::qemu::boot(&mut |l| println!("raw qemu, rebooted: {l}")).expect("reboot qemu for the raw link");
    let c = &mut q.client;
    let fresh = status(c);
    assert_ne!(fresh.epoch, epoch, "a new boot has a new epoch");
    assert!(fresh.workers[1].running, "worker1 runs again after the restart");
    let r = send(c, &captured);
    assert_eq!(names(&r), ["plan.replay"], "a frame from before the restart: {r:?}");
    let r = send(c, &confirmed_frame);
    assert_eq!(names(&r), ["plan.replay"], "a confirmed stop from before the restart: {r:?}");
    // the same stop with a fresh id for this boot, its token made for the last one
    let stop = pjson::parse_plan(json!({"version":1,"request_id":fresh.last_request_id + 1,"session":"admin","reason":"old token",
        "actions":[{"op":"process.stop","pd":"worker1"}]}).to_string().as_bytes()).expect("plan");
    let old = confirm::sign(&stop, &auth::epoch_key(&keys.confirm, epoch)).expect("sign");
    let r = send(c, &framed_with(&pjson::plan_to_json(&old), Some(&keys.plan), fresh.epoch));
    assert_eq!(names(&r), ["auth.confirm"], "a token from before the restart: {r:?}");
    let end = status(c);
    assert!(end.workers[1].running, "the stop did not run again");
    assert_eq!(end.invocations.total(), fresh.invocations.total(), "nothing ran after the restart");
    println!("replay after a reboot on seL4: epoch {epoch:#x} -> {:#x}; a captured frame, a confirmed stop and an old token refused", fresh.epoch);
    drop(q);

    // the red-team corpus on seL4: a fresh boot per case, judged by the
    // capability PDs' own counters and read-back state
    let report = run_dir.join("redteam-qemu.json");
    let t = Instant::now();
    let (code, r, out) = sh.cmd(&["redteam", "--system", "qemu", "--json", "--out", report.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    let on = &r["verifier_on"];
    println!(
        "red team on qemu: {} of {} adversarial cases succeeded, benign {}/{}, {:.1} s",
        on["cases_with_attacker_success"], on["adversarial_cases"], on["benign_utility"]["ran_in_full"],
        on["benign_utility"]["of"], t.elapsed().as_secs_f64()
    );
    assert_eq!(r["system"], "qemu");
    assert!(on["adversarial_cases"].as_u64().unwrap() >= 200, "{on}");
    assert_eq!((on["attacker_successes"].as_u64(), on["errors"].as_u64()), (Some(0), Some(0)), "{on}");
    assert_eq!(on["expectation_mismatches"], 0, "{on}");
    assert_eq!(on["benign_utility"]["ran_in_full"], on["benign_utility"]["of"], "{on}");
    let _ = std::fs::remove_dir_all(&run_dir);
}

fn frame_of(payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; pd_interface::frame::MAX_FRAME];
    let n = pd_interface::frame::encode(payload, &mut out).expect("encode");
    out.truncate(n);
    out
}

//! `llmsh top` and the interactive shell driven in tmux, the way a person
//! uses them: keys sent with `send-keys`, the screen read with
//! `capture-pane`. each test runs its own tmux server (`-L`), its own hosted
//! system (a private runtime dir) and, for intents, a scripted
//! openai-compatible server on loopback.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

mod fake_openai;
use fake_openai::fake;

/// tmux is there; under CI=true (which installs it) its absence fails the test.
fn have_tmux() -> bool {
    let ok = Command::new("tmux").arg("-V").output().is_ok_and(|o| o.status.success());
    assert!(ok || std::env::var("CI").as_deref() != Ok("true"), "CI=true but tmux is not installed");
    ok
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("llmsh-tmux-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// a tmux server of this test, a hosted system booted for it; both stopped on drop.
struct Screen {
    server: String,
    rt: PathBuf,
}

impl Screen {
    fn new(name: &str) -> Screen {
        let rt = tmp(name);
        let s = Screen { server: format!("llmsh-test-{}-{name}", std::process::id()), rt };
        let boot = s.llmsh(&["boot"]);
        assert!(boot.status.success(), "boot: {}", String::from_utf8_lossy(&boot.stdout));
        s
    }

    fn llmsh(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_llmsh"))
            .args(args)
            .env("XDG_RUNTIME_DIR", &self.rt)
            .env("XDG_CONFIG_HOME", self.rt.join("config"))
            .env("LLMSH_AUDIT_LOG", self.rt.join("audit.jsonl"))
            .stdin(std::process::Stdio::null())
            .output()
            .expect("llmsh runs")
    }

    fn tmux(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux").arg("-L").arg(&self.server).args(args).output().expect("tmux runs")
    }

    /// starts `llmsh ARGS` in a 140x40 window with this test's environment.
    fn start(&self, args: &[&str], env: &[(&str, &str)]) {
        let mut cmd = format!(
            "env XDG_RUNTIME_DIR={} XDG_CONFIG_HOME={} LLMSH_AUDIT_LOG={} TERM=xterm-256color",
            self.rt.display(),
            self.rt.join("config").display(),
            self.rt.join("audit.jsonl").display()
        );
        for (k, v) in env {
            cmd.push_str(&format!(" {k}={v}"));
        }
        cmd.push_str(&format!(" {}", env!("CARGO_BIN_EXE_llmsh")));
        for a in args {
            cmd.push_str(&format!(" '{a}'"));
        }
        let out = self.tmux(&["new-session", "-d", "-s", "t", "-x", "140", "-y", "40", &cmd]);
        assert!(out.status.success(), "tmux: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.tmux(&["capture-pane", "-p", "-t", "t"]).stdout).into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        let mut a = vec!["send-keys", "-t", "t"];
        a.extend_from_slice(keys);
        self.tmux(&a);
    }

    /// waits until the screen shows `text` (10 s at most).
    fn wait_for(&self, text: &str) -> String {
        let t = Instant::now();
        loop {
            let s = self.screen();
            if s.contains(text) {
                return s;
            }
            assert!(t.elapsed() < Duration::from_secs(10), "the screen never showed `{text}`:\n{s}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// waits until the last line on screen is the bare prompt `p` (the command before it ended).
    fn wait_for_prompt(&self, p: &str) {
        let t = Instant::now();
        loop {
            let s = self.screen();
            if s.lines().rev().find(|l| !l.trim().is_empty()).is_some_and(|l| l.trim_end() == p) {
                return;
            }
            assert!(t.elapsed() < Duration::from_secs(10), "no bare prompt `{p}`:\n{s}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn alive(&self) -> bool {
        self.tmux(&["has-session", "-t", "t"]).status.success()
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        self.tmux(&["kill-server"]);
        // llm-osd and its system, as a user stops them
        let _ = self.llmsh(&["boot", "--stop"]);
    }
}

fn plan_file(dir: &Path, text: &str) -> String {
    let p = dir.join("plan.json");
    std::fs::write(&p, text).unwrap();
    p.to_string_lossy().into_owned()
}

#[test]
fn top_shows_the_system_live_and_quits_on_q() {
    if !have_tmux() {
        println!("SKIPPED: tmux is not installed");
        return;
    }
    let s = Screen::new("top");
    s.start(&["top", "--interval-ms", "200"], &[]);
    let first = s.wait_for("worker3");
    for want in ["system hosted", "last request 0", "running", " 32/256", "none yet", "q quits"] {
        assert!(first.contains(want), "lacks `{want}`:\n{first}");
    }
    // a plan applied elsewhere shows up without a key press: the view refreshes itself
    let plan = r#"{"version":1,"request_id":5,"session":"admin","reason":"park worker2","actions":[
        {"op":"process.stop","pd":"worker2"},{"op":"memory.grant","pd":"worker1","pages":64}]}"#;
    assert!(s.llmsh(&["apply", "--plan", &plan_file(&s.rt, plan), "--yes"]).status.success());
    let after = s.wait_for("park worker2");
    for want in ["last request 5", "stopped", " 96/256", "#5", "approved", "2 done", "memory 1"] {
        assert!(after.contains(want), "lacks `{want}`:\n{after}");
    }
    println!("{after}");
    s.keys(&["q"]);
    let t = Instant::now();
    while s.alive() && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!s.alive(), "q did not quit top");
}

const STOP2: &str = r#"{"reason":"free worker2's cpu","actions":[{"op":"process.stop","pd":"worker2"}]}"#;
const GRANT: &str = r#"{"reason":"room for the indexer","actions":[{"op":"memory.grant","pd":"worker1","pages":16}]}"#;

#[test]
fn the_shell_plans_confirms_inline_completes_and_keeps_history() {
    if !have_tmux() {
        println!("SKIPPED: tmux is not installed");
        return;
    }
    let s = Screen::new("shell");
    let f = fake(vec![STOP2, GRANT], 100);
    let hist = s.rt.join("history");
    let hist_s = hist.to_string_lossy().into_owned();
    s.start(
        &["shell", "--backend", "remote", "--endpoint", &f.url, "--session", "admin", "--idle-secs", "2", "--history", &hist_s],
        &[("LLMSH_API_KEY", "test-key")],
    );
    s.wait_for("llmsh[admin]>");
    // tab completes the command, then status reads the system
    s.keys(&["sta", "Tab"]);
    s.wait_for("llmsh[admin]> status");
    s.keys(&["Enter"]);
    s.wait_for("worker3");
    // an intent in words: the plan, its verdict, the inline question for a destructive action
    s.keys(&["stop worker2", "Enter"]);
    let asked = s.wait_for("execute them? [y/N]");
    for want in ["process.stop worker2", "DESTRUCTIVE: needs your yes", "verdict: approved"] {
        assert!(asked.contains(want), "lacks `{want}`:\n{asked}");
    }
    s.keys(&["y", "Enter"]);
    let receipt = s.wait_for("receipt: request 1");
    s.wait_for("what changed");
    s.wait_for("running →  stopped");
    assert!(receipt.contains("done"), "{receipt}");
    // the model is let go after the idle window, and the screen says so
    s.wait_for("the model is released");
    // a non-destructive intent is shown and asked about before it runs; no keeps it from running
    s.wait_for_prompt("llmsh[admin]>");
    s.keys(&["plan give worker1 16 more pages", "Enter"]);
    s.wait_for("`apply` executes it");
    s.wait_for_prompt("llmsh[admin]>");
    s.keys(&["apply", "Enter"]);
    s.wait_for("receipt: request 2");
    s.wait_for_prompt("llmsh[admin]>");
    s.keys(&["audit", "Enter"]);
    let audit = s.wait_for("#2 ");
    assert!(audit.contains("approved"), "{audit}");
    println!("{audit}");
    s.wait_for_prompt("llmsh[admin]>");
    s.keys(&["exit", "Enter"]);
    let t = Instant::now();
    while s.alive() && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!s.alive(), "exit did not leave the shell");
    let h = std::fs::read_to_string(&hist).expect("history written");
    assert!(h.contains("stop worker2") && h.contains("audit"), "{h}");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&hist).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn ctrl_c_cancels_planning_and_keeps_the_shell() {
    if !have_tmux() {
        println!("SKIPPED: tmux is not installed");
        return;
    }
    let s = Screen::new("cancel");
    // an endpoint that accepts and never answers: planning waits until cancelled
    let hang = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", hang.local_addr().unwrap());
    let _held = std::thread::spawn(move || {
        let conns: Vec<_> = hang.incoming().take(4).collect();
        std::thread::sleep(Duration::from_secs(60));
        drop(conns);
    });
    s.start(&["shell", "--backend", "remote", "--endpoint", &url], &[("LLMSH_API_KEY", "k")]);
    s.wait_for("llmsh[ops]>");
    s.keys(&["give worker1 more memory", "Enter"]);
    s.wait_for("planning");
    std::thread::sleep(Duration::from_millis(300));
    s.keys(&["C-c"]);
    s.wait_for("planning cancelled");
    s.keys(&["help", "Enter"]);
    s.wait_for("leave the shell");
    assert!(s.alive(), "ctrl-c must not end the shell");
}

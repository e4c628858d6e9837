//! `llmsh top`: a live view of the running system, hosted or qemu. it reads
//! the same status the verifier returns to `llmsh status`
//! ([`crate::cmd::status::status_json`]) and the tail of the audit log; it never
//! sends a plan. a background thread does the reads so a slow link never
//! freezes the screen; ratatui diffs frames, so redraws do not flicker.
//!
//! `--once`, or stdout not a terminal, prints one frame as text and exits.

use std::io::{IsTerminal, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Row, Table};
use ratatui::{Frame, Terminal};
use serde_json::Value;

use crate::audit::AuditLog;
use crate::common::Exit;
use crate::ui::progress::bar;

/// arguments of `llmsh top`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// print one frame as text and exit (also when stdout is not a terminal).
    #[arg(long)]
    pub once: bool,
    /// time between reads of the system, ms.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(100..=60_000))]
    pub interval_ms: u64,
    /// the audit log the recent plans come from; default as `llmsh audit`.
    #[arg(long)]
    pub audit_log: Option<PathBuf>,
    /// the frame size of `--once`, columns.
    #[arg(long, default_value_t = 140, value_parser = clap::value_parser!(u16).range(60..=400))]
    pub width: u16,
}

/// the audit log's tail is read through this cap on every refresh.
pub const AUDIT_TAIL: u64 = 256 * 1024;
/// plans listed.
const RECENT: usize = 8;

/// one read of the system and the audit log.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// the status json, or why it could not be read.
    pub status: Result<Value, String>,
    /// the last plans from the audit log, newest first.
    pub plans: Vec<PlanRow>,
    /// when it was taken.
    pub at: Instant,
    /// the per-worker page quota of the policy the system enforces.
    pub quota_pages: u64,
}

/// a plan as the audit log recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanRow {
    /// the plan's request id.
    pub request_id: u64,
    /// `hh:mm:ss` of the request record.
    pub time: String,
    /// who asked.
    pub user: String,
    /// the session.
    pub session: String,
    /// approved / rejected / declined.
    pub verdict: String,
    /// `3/4 done`, `failed at 1`, `no receipt`.
    pub receipt: String,
    /// the intent or, for a plan from a file, its reason.
    pub what: String,
}

/// the last `cap` bytes of the audit log, as records (a cut first line is skipped).
pub fn audit_tail(path: &Path, cap: u64) -> Vec<Value> {
    let Ok(mut f) = std::fs::File::open(path) else { return Vec::new() };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(cap);
    if f.seek(SeekFrom::Start(start)).is_err() {
        return Vec::new();
    }
    let mut buf = Vec::new();
    if f.take(cap).read_to_end(&mut buf).is_err() {
        return Vec::new();
    }
    let mut lines: Vec<&[u8]> = buf.split(|b| *b == b'\n').collect();
    if start > 0 && !lines.is_empty() {
        lines.remove(0);
    }
    lines.iter().filter_map(|l| serde_json::from_slice(l).ok()).collect()
}

/// pairs request and result records into plan rows, newest first.
pub fn plan_rows(records: &[Value], n: usize) -> Vec<PlanRow> {
    let mut rows: Vec<PlanRow> = Vec::new();
    for r in records {
        let id = r["request_id"].as_u64().unwrap_or(0);
        match r["kind"].as_str() {
            Some("request") => {
                let v = &r["verdict"];
                let verdict = if v["declined"] == Value::Bool(true) {
                    "declined"
                } else if v["approved"] == Value::Bool(true) {
                    "approved"
                } else {
                    "rejected"
                };
                let what = r["intent"].as_str().or(r["reason"].as_str()).unwrap_or("").to_string();
                let time = r["ts"].as_str().and_then(|t| t.get(11..19)).unwrap_or("").to_string();
                rows.push(PlanRow {
                    request_id: id,
                    time,
                    user: r["user"].as_str().unwrap_or("").to_string(),
                    session: r["session"].as_str().unwrap_or("").to_string(),
                    verdict: verdict.into(),
                    receipt: "no receipt".into(),
                    what,
                });
            }
            Some("result") => {
                if let Some(row) = rows.iter_mut().rev().find(|p| p.request_id == id) {
                    let rc = &r["receipt"];
                    row.receipt = if rc["error"].is_object() {
                        format!("error {}", rc["error"]["code"].as_str().unwrap_or("?"))
                    } else if let Some(i) = rc["failed_action"].as_u64() {
                        format!("failed at action {i}")
                    } else if rc["approved"] == Value::Bool(false) {
                        if rc["violations"][0]["invariant"].is_string() {
                            format!("refused: {}", rc["violations"][0]["invariant"].as_str().unwrap_or(""))
                        } else {
                            "refused".into()
                        }
                    } else {
                        format!("{} done", rc["executed"].as_u64().unwrap_or(0))
                    };
                    if rc["approved"] == Value::Bool(false) {
                        row.verdict = "rejected".into();
                    }
                }
            }
            _ => {}
        }
    }
    rows.reverse();
    rows.truncate(n);
    rows
}

/// reads the system and the audit log once.
pub fn snapshot(audit: &AuditLog) -> Snapshot {
    let mut quota_pages = policy_verifier::DEFAULT_POLICY.limits.quota_pages;
    let status = crate::osd::client::Client::connect()
        .and_then(|mut c| {
            // the quota column follows the policy in force
            quota_pages = c.policy()?.limits.quota_pages;
            crate::cmd::status::status_json(&mut c)
        })
        .map_err(|e| format!("{}: {}", e.code, e.message));
    let plans = plan_rows(&audit_tail(audit.path(), AUDIT_TAIL), RECENT);
    Snapshot { status, plans, at: Instant::now(), quota_pages }
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

/// `12.345 s`.
fn secs(us: u64) -> String {
    format!("{}.{:03} s", us / 1_000_000, (us / 1000) % 1000)
}

/// draws one frame: `now` and `prev` give the cpu rates.
pub fn draw(f: &mut Frame<'_>, now: &Snapshot, prev: Option<&Snapshot>, live: bool) {
    let quota = now.quota_pages;
    let area = f.area();
    let empty = serde_json::Map::new();
    let st = now.status.as_ref().ok();
    let workers = st.and_then(|s| s["state"]["workers"].as_object()).unwrap_or(&empty);
    let n_workers = u16::try_from(workers.len()).unwrap_or(u16::MAX);
    let [head, wk, plans] = Layout::vertical([
        Constraint::Length(4),
        Constraint::Length(n_workers.saturating_add(3)),
        Constraint::Min(3),
    ])
    .areas(area);

    let bold = Style::default().add_modifier(Modifier::BOLD);
    let title = if live { " llm-os top · q quits " } else { " llm-os top " };
    let header: Vec<Line> = match &now.status {
        Err(e) => vec![
            Line::styled(format!("no system to read: {e}"), Style::default().fg(Color::Red)),
            Line::raw("start one with `llmsh boot` (or `llmsh boot --system qemu`); retrying"),
        ],
        Ok(s) => {
            let obs = &s["observed"];
            let inv = &obs["invocations"];
            let keys = match crate::ui::words::dev_key_note(s) {
                Some(_) => Span::styled("keys: DEV KEY (tests only)", Style::default().fg(Color::Yellow).add_modifier(Modifier::BOLD)),
                None if s.get("dev_key").is_some() || s.get("keys").is_some() => Span::raw("keys: installation keys"),
                None => Span::raw(""),
            };
            vec![
                Line::from(vec![
                    Span::styled(format!("system {}", s["system"].as_str().unwrap_or("?")), bold),
                    Span::raw(format!(
                        "   last request {}   pool {} pages, {} free   ",
                        u(&s["state"]["last_request_id"]),
                        u(&s["state"]["pool_pages"]),
                        u(&obs["free_pages"])
                    )),
                    keys,
                ]),
                Line::raw(format!(
                    "invocations carried out since boot:  process {}   memory {}   timer {}",
                    u(&inv["process"]),
                    u(&inv["memory"]),
                    u(&inv["timer"])
                )),
            ]
        }
    };
    f.render_widget(Paragraph::new(header).block(Block::default().borders(Borders::TOP).title(title)), head);

    let pool = st.map_or(1, |s| u(&s["state"]["pool_pages"]).max(1));
    let dt_us = prev.map(|p| now.at.saturating_duration_since(p.at).as_micros()).filter(|d| *d > 0);
    let rows = workers.iter().map(|(name, w)| {
        let o = &st.map_or(&Value::Null, |s| &s["observed"]["workers"][name]);
        let running = w["running"] == Value::Bool(true);
        let throttled = o["throttled"] == Value::Bool(true);
        let (state, color) = match (running, throttled) {
            (false, _) => ("stopped", Color::Red),
            (true, true) => ("throttled", Color::Yellow),
            (true, false) => ("running", Color::Green),
        };
        let consumed = u(&o["consumed_us"]);
        let rate = match (dt_us, prev.and_then(|p| p.status.as_ref().ok())) {
            (Some(dt), Some(ps)) => {
                let before = u(&ps["observed"]["workers"][name]["consumed_us"]);
                format!("{:5.1}%", consumed.saturating_sub(before) as f64 * 100.0 / dt as f64)
            }
            _ => "    -".into(),
        };
        let pages = u(&w["pages"]);
        let timer = w["timer_period_us"].as_u64().map_or_else(|| "none".into(), |t| format!("{t} µs"));
        Row::new(vec![
            Span::raw(name.clone()),
            Span::styled(state, Style::default().fg(color)),
            Span::raw(format!("{:>3}", u(&w["priority"]))),
            Span::raw(format!("{}/{} µs", u(&w["budget_us"]), u(&w["period_us"]))),
            Span::raw(rate),
            Span::raw(secs(consumed)),
            Span::raw(format!("{} {:>3}/{quota} {:>3}% pool", bar(pages, quota, 12), pages, pages * 100 / pool)),
            Span::raw(timer),
            Span::raw(u(&o["ticks"]).to_string()),
            Span::raw(u(&o["progress"]).to_string()),
            Span::raw(format!("{}/{}", u(&o["faults"]), u(&o["restarts"]))),
        ])
    });
    let widths = [
        Constraint::Length(8),
        Constraint::Length(9),
        Constraint::Length(4),
        Constraint::Length(18),
        Constraint::Length(6),
        Constraint::Length(10),
        Constraint::Length(31),
        Constraint::Length(11),
        Constraint::Length(7),
        Constraint::Min(9),
        Constraint::Length(7),
    ];
    let head_row = Row::new(["pd", "state", "prio", "budget/period", "cpu", "consumed", "pages (quota, pool)", "timer", "ticks", "progress", "flt/rst"])
        .style(bold);
    f.render_widget(
        Table::new(rows, widths).header(head_row).block(Block::default().borders(Borders::TOP).title(" workers ")),
        wk,
    );

    let plan_rows = now.plans.iter().map(|p| {
        let color = match p.verdict.as_str() {
            "approved" => Color::Green,
            "rejected" => Color::Red,
            _ => Color::Yellow,
        };
        Row::new(vec![
            Span::raw(format!("#{}", p.request_id)),
            Span::raw(p.time.clone()),
            Span::raw(p.user.clone()),
            Span::raw(p.session.clone()),
            Span::styled(p.verdict.clone(), Style::default().fg(color)),
            Span::raw(p.receipt.clone()),
            Span::raw(p.what.clone()),
        ])
    });
    let pw = [
        Constraint::Length(6),
        Constraint::Length(8),
        Constraint::Length(10),
        Constraint::Length(7),
        Constraint::Length(9),
        Constraint::Length(22),
        Constraint::Min(10),
    ];
    let title = if now.plans.is_empty() { " recent plans (audit log): none yet " } else { " recent plans (audit log) " };
    f.render_widget(
        Table::new(plan_rows, pw)
            .header(Row::new(["req", "time", "user", "session", "verdict", "receipt", "intent / reason"]).style(bold))
            .block(Block::default().borders(Borders::TOP).title(title)),
        plans,
    );
}

/// a buffer as text lines, trailing spaces trimmed.
pub fn buffer_text(b: &Buffer) -> String {
    let area = b.area;
    let mut out = String::new();
    for y in area.top()..area.bottom() {
        let mut line = String::new();
        for x in area.left()..area.right() {
            line.push_str(b.cell((x, y)).map_or(" ", |c| c.symbol()));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// one frame of `width` columns as text.
pub fn frame_text(now: &Snapshot, prev: Option<&Snapshot>, width: u16) -> String {
    let n = now.status.as_ref().ok().and_then(|s| s["state"]["workers"].as_object()).map_or(0, |w| w.len());
    let height = u16::try_from(n + 7 + 2 + RECENT).unwrap_or(40);
    let Ok(mut t) = Terminal::new(TestBackend::new(width, height)) else { return String::new() };
    let _ = t.draw(|f| draw(f, now, prev, false));
    let text = buffer_text(t.backend().buffer());
    text.trim_end_matches('\n').to_string() + "\n"
}

/// runs the command.
pub fn run(args: &Args) -> Exit {
    let audit = AuditLog::resolve(args.audit_log.as_deref());
    if args.once || !std::io::stdout().is_terminal() {
        // two reads a little apart give the cpu column a rate.
        let first = snapshot(&audit);
        std::thread::sleep(Duration::from_millis(200));
        let now = snapshot(&audit);
        print!("{}", frame_text(&now, Some(&first), args.width));
        // a failed read ends with its code's exit (`system.down`: 3)
        return match &now.status {
            Ok(_) => Exit::Ok,
            Err(m) => crate::code::exit_of(m.split(':').next().unwrap_or("")),
        };
    }
    live(&audit, Duration::from_millis(args.interval_ms))
}

fn live(audit: &AuditLog, interval: Duration) -> Exit {
    let (tx, rx) = mpsc::channel::<Snapshot>();
    let log = audit.clone();
    // the reader: one snapshot per interval; it ends when the screen is gone.
    std::thread::spawn(move || loop {
        if tx.send(snapshot(&log)).is_err() {
            break;
        }
        std::thread::sleep(interval);
    });
    let mut term = match ratatui::try_init() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("llmsh top: cannot set up the terminal: {e}");
            return crate::code::Code::Terminal.exit();
        }
    };
    let mut now: Option<Snapshot> = None;
    let mut prev: Option<Snapshot> = None;
    let exit = loop {
        while let Ok(s) = rx.try_recv() {
            prev = now.take();
            now = Some(s);
        }
        if let Some(n) = &now {
            if let Err(e) = term.draw(|f| draw(f, n, prev.as_ref(), true)) {
                eprintln!("llmsh top: {e}");
                break crate::code::Code::Terminal.exit();
            }
        }
        match event::poll(Duration::from_millis(100)) {
            Ok(true) => {
                if let Ok(Event::Key(k)) = event::read() {
                    let ctrl_c = k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL);
                    if k.kind == KeyEventKind::Press && (matches!(k.code, KeyCode::Char('q') | KeyCode::Esc) || ctrl_c) {
                        break Exit::Ok;
                    }
                }
            }
            Ok(false) => {}
            Err(_) => break crate::code::Code::Terminal.exit(),
        }
    };
    ratatui::restore();
    exit
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn requests_and_results_pair_into_rows_newest_first() {
        let recs = vec![
            json!({"kind":"request","request_id":3,"ts":"2026-12-01T19:00:01Z","user":"ann","session":"ops",
                   "intent":"more pages","verdict":{"approved":true}}),
            json!({"kind":"step","request_id":3}),
            json!({"kind":"result","request_id":3,"receipt":{"approved":true,"executed":2,"failed_action":null}}),
            json!({"kind":"request","request_id":4,"ts":"2026-12-01T19:00:09Z","user":"ann","session":"ops",
                   "reason":"too much","verdict":{"approved":false}}),
            json!({"kind":"result","request_id":4,"receipt":{"approved":false,"violations":[{"invariant":"mem.quota"}]}}),
        ];
        let rows = plan_rows(&recs, 8);
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].request_id, rows[0].verdict.as_str(), rows[0].receipt.as_str()), (4, "rejected", "refused: mem.quota"));
        assert_eq!((rows[1].time.as_str(), rows[1].receipt.as_str(), rows[1].what.as_str()), ("19:00:01", "2 done", "more pages"));
        assert_eq!(plan_rows(&recs, 1).len(), 1);
    }

    #[test]
    fn a_frame_shows_every_worker_with_its_state_and_pages() {
        let w = |running: bool, pages: u64| json!({"running":running,"priority":50,"budget_us":1000,"period_us":10000,"pages":pages,"timer_period_us":null});
        let o = |consumed: u64, throttled: bool| json!({"progress":10,"ticks":0,"faults":0,"restarts":0,"consumed_us":consumed,"throttled":throttled});
        let status = |c: u64| json!({"system":"hosted","state":{"workers":{"worker0":w(true,32),"worker1":w(true,48),"worker2":w(false,0)},"pool_pages":512,"last_request_id":7},
            "observed":{"workers":{"worker0":o(c,false),"worker1":o(c,true),"worker2":o(0,false)},"free_pages":432,"invocations":{"process":1,"memory":2,"timer":0}}});
        let t0 = Instant::now();
        let prev = Snapshot { status: Ok(status(0)), plans: vec![], at: t0, quota_pages: 256 };
        let now = Snapshot { status: Ok(status(100_000)), plans: vec![], at: t0 + Duration::from_secs(1), quota_pages: 256 };
        let text = frame_text(&now, Some(&prev), 140);
        for want in ["worker0", "worker1", "worker2", "throttled", "stopped", "running", " 48/256", "10.0%", "last request 7", "memory 2", "none yet"] {
            assert!(text.contains(want), "frame lacks `{want}`:\n{text}");
        }
        let err = Snapshot { status: Err("system.down: no socket".into()), plans: vec![], at: t0, quota_pages: 256 };
        assert!(frame_text(&err, None, 100).contains("no system to read"));
    }
}

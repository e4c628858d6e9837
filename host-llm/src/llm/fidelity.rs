//! what the intent asks, read in deterministic code, and whether a plan does
//! that and nothing else.
//!
//! the verifier keeps a plan inside the policy; this module keeps it inside
//! the request. [`read`] turns the human's words into [`Ask`]s (an op, the
//! workers it names, an amount), fixing small typos and reading number words;
//! [`Reading::resolve`] turns amounts that are relative to the state or the
//! policy ("double", "another 10", "as much as the quota allows", "25 % of the
//! cpu") into the exact numbers, never by the model's arithmetic. [`check`]
//! holds a plan against the reading: every action is `faithful` or `unasked`,
//! and every ask with no action is `incomplete`.
//!
//! the reader only claims what its words say: an intent it cannot place gets
//! no asks at all ("no action"), and an ask it reads only in part (an op
//! without an amount) checks only that part.

use policy_verifier::json;
use policy_verifier::{ActionKind, Plan, Policy, State, Worker};
use serde_json::{json, Value};

/// how an amount relates to what the worker has now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Amount {
    /// set to this (pages, priority, µs).
    To(u64),
    /// change by this much (negative: less).
    By(i64),
    /// multiply by `num / den`.
    Times(u64, u64),
    /// this per cent of the current amount (memory), or of the cpu (budget).
    Percent(u64),
    /// the most the policy allows.
    Max,
    /// the least the policy allows.
    Min,
    /// all of it (a reclaim).
    All,
    /// all but this many (a reclaim).
    AllBut(u64),
    /// a cpu budget and its period, µs.
    Budget(u64, u64),
}

/// one thing the intent asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ask {
    /// the op.
    pub kind: ActionKind,
    /// the workers it names (every worker for all/every/each); empty when
    /// the words name none.
    pub workers: Vec<Worker>,
    /// whether the words said all/every/each.
    pub every: bool,
    /// the amount, when the words give one.
    pub amount: Option<Amount>,
    /// the inventory query, for firmware.inventory.
    pub query: Option<&'static str>,
    /// the words this ask was read from.
    pub words: String,
}

/// what an intent asks.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reading {
    /// the asks, in the order the intent says them.
    pub asks: Vec<Ask>,
    /// a worker name the system does not have (`worker9`).
    pub unknown_worker: Option<String>,
}

impl Reading {
    /// nothing the reader knows is asked: the planner answers "no action".
    pub fn is_nothing(&self) -> bool {
        self.asks.is_empty()
    }

    /// the exact actions the intent asks for, as plan json, when every ask
    /// names its workers and (where the op takes one) an amount that the
    /// state and policy resolve; none otherwise.
    pub fn resolve(&self, policy: &Policy, state: &State) -> Option<Vec<Value>> {
        if self.asks.is_empty() || self.unknown_worker.is_some() {
            return None;
        }
        let mut s = *state;
        let mut out = Vec::new();
        for ask in &self.asks {
            if ask.workers.is_empty() && needs_worker(ask.kind) {
                return None;
            }
            if !needs_worker(ask.kind) {
                let a = match ask.kind {
                    ActionKind::SystemQuery => json!({"op": "system.query"}),
                    ActionKind::FirmwareInventory => {
                        json!({"op": "firmware.inventory", "query": ask.query.unwrap_or("all")})
                    }
                    _ => return None,
                };
                out.push(a);
                continue;
            }
            for &w in &ask.workers {
                let ws = *s.worker(w);
                // "stop all workers" stops those that run; a named worker is
                // asked for as named (the verifier says `proc.state`).
                if ask.every {
                    let skip = match ask.kind {
                        ActionKind::ProcessStop => !ws.running,
                        ActionKind::ProcessStart => ws.running,
                        ActionKind::TimerCancel => ws.timer_period_us.is_none(),
                        _ => false,
                    };
                    if skip {
                        continue;
                    }
                }
                let a = resolve_one(ask, w, &ws, policy)?;
                apply_to(&mut s, w, &a);
                out.push(a);
            }
        }
        if out.is_empty() {
            None
        } else {
            Some(out)
        }
    }

    /// the numbers of the resolved actions in the draft's units (durations
    /// in whole ms), for the grammar's number fields.
    pub fn draft_numbers(&self, policy: &Policy, state: &State) -> Vec<u64> {
        let mut out = Vec::new();
        for a in self.resolve(policy, state).unwrap_or_default() {
            for (k, v) in a.as_object().into_iter().flatten() {
                let Some(n) = v.as_u64() else { continue };
                if k.ends_with("_us") {
                    if n % 1000 == 0 {
                        out.push(n / 1000);
                    }
                } else {
                    out.push(n);
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}

fn needs_worker(k: ActionKind) -> bool {
    !matches!(k, ActionKind::SystemQuery | ActionKind::FirmwareInventory)
}

/// the state after `a`, so that a second ask on the same worker reads the
/// first one's result ("stop worker0 and reclaim all of its memory").
fn apply_to(s: &mut State, w: Worker, a: &Value) {
    let ws = s.worker_mut(w);
    let n = |k: &str| a[k].as_u64();
    match a["op"].as_str() {
        Some("memory.grant") => ws.pages = ws.pages.saturating_add(n("pages").unwrap_or(0)),
        Some("memory.reclaim") => ws.pages = ws.pages.saturating_sub(n("pages").unwrap_or(0)),
        Some("process.stop") => ws.running = false,
        Some("process.start") => ws.running = true,
        Some("process.set_priority") => ws.priority = n("priority").unwrap_or(ws.priority),
        Some("timer.set_periodic") => ws.timer_period_us = n("period_us"),
        Some("timer.cancel") => ws.timer_period_us = None,
        Some("process.set_budget") => {
            ws.budget_us = n("budget_us").unwrap_or(ws.budget_us);
            ws.period_us = n("period_us").unwrap_or(ws.period_us);
        }
        _ => {}
    }
}

/// `cur * num / den`, rounded to nearest, without overflow.
fn scale(cur: u64, num: u64, den: u64) -> u64 {
    if den == 0 {
        return cur;
    }
    let v = (u128::from(cur) * u128::from(num) + u128::from(den) / 2) / u128::from(den);
    u64::try_from(v).unwrap_or(u64::MAX)
}

fn add_signed(cur: u64, d: i64) -> Option<u64> {
    if d >= 0 {
        cur.checked_add(d.unsigned_abs())
    } else {
        cur.checked_sub(d.unsigned_abs())
    }
}

/// one worker's action for `ask`, numbers resolved against `ws` and `policy`.
fn resolve_one(
    ask: &Ask,
    w: Worker,
    ws: &policy_verifier::WorkerState,
    policy: &Policy,
) -> Option<Value> {
    let pd = w.name();
    let l = &policy.limits;
    let amount = ask.amount;
    Some(match ask.kind {
        ActionKind::ProcessStop | ActionKind::ProcessStart | ActionKind::ProcessRestart => {
            json!({"op": ask.kind.name(), "pd": pd})
        }
        ActionKind::TimerCancel => json!({"op": "timer.cancel", "pd": pd}),
        ActionKind::MemoryGrant | ActionKind::MemoryReclaim => {
            let cur = ws.pages;
            let grant = ask.kind == ActionKind::MemoryGrant;
            // the target page count, or the change
            let target: u64 = match amount? {
                Amount::To(n) => n,
                Amount::By(d) if grant => add_signed(cur, d)?,
                Amount::By(d) => add_signed(cur, -d)?,
                Amount::Times(a, b) => scale(cur, a, b),
                Amount::Percent(p) if grant => cur.checked_add(scale(cur, p, 100))?,
                Amount::Percent(p) => cur.saturating_sub(scale(cur, p, 100)),
                Amount::Max => l.quota_pages,
                Amount::Min | Amount::All => 0,
                Amount::AllBut(n) => n,
                Amount::Budget(..) => return None,
            };
            // a plain "reclaim 8 pages" names the change, not the target
            let (op, pages) = if target >= cur {
                ("memory.grant", target - cur)
            } else {
                ("memory.reclaim", cur - target)
            };
            if pages == 0 {
                return None;
            }
            json!({"op": op, "pd": pd, "pages": pages})
        }
        ActionKind::ProcessSetPriority => {
            let cur = ws.priority;
            let p = match amount? {
                Amount::To(n) => n,
                Amount::By(d) => add_signed(cur, d)?,
                Amount::Times(a, b) => scale(cur, a, b),
                Amount::Percent(p) => scale(cur, p, 100),
                Amount::Max => l.priority_ceiling,
                Amount::Min => 1,
                _ => return None,
            };
            json!({"op": "process.set_priority", "pd": pd, "priority": p})
        }
        ActionKind::TimerSetPeriodic => {
            let cur = ws.timer_period_us;
            let p = match amount? {
                Amount::To(us) => us,
                Amount::Times(a, b) => scale(cur?, a, b),
                Amount::Max => l.timer_max_us,
                Amount::Min => l.timer_min_us,
                _ => return None,
            };
            json!({"op": "timer.set_periodic", "pd": pd, "period_us": p})
        }
        ActionKind::ProcessSetBudget => {
            let (b, p) = match amount? {
                Amount::Budget(b, p) => (b, p),
                Amount::To(b) => (b, ws.period_us),
                Amount::Percent(pc) => (scale(ws.period_us, pc, 100), ws.period_us),
                Amount::Times(a, d) => (scale(ws.budget_us, a, d), ws.period_us),
                _ => return None,
            };
            json!({"op": "process.set_budget", "pd": pd, "budget_us": b, "period_us": p})
        }
        ActionKind::SystemQuery | ActionKind::FirmwareInventory => return None,
    })
}

// ---- words ----

/// one token of an intent, after typo repair and number words.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Word(String),
    Num(u64),
    Worker(Worker),
    /// a worker name the system lacks.
    BadWorker(String),
    Percent,
    Question,
    /// a clause break: and, then, `;`.
    Break,
}

/// words the reader acts on (or must not "repair" into something else).
const VOCAB: &[&str] = &[
    // ops and their synonyms
    "give", "grant", "add", "allocate", "hand", "increase", "raise", "grow", "bump", "boost",
    "expand", "fill", "more", "extra", "additional", "another", "reclaim", "free", "release",
    "return", "back", "take", "shrink", "withdraw", "revoke", "recover", "reduce", "lower",
    "decrease", "drop", "knock", "down", "less", "fewer", "cut", "priority", "prio", "timer",
    "timers", "tick", "ticks", "wake", "notify", "fire", "periodic", "interval", "alarm",
    "cancel", "remove", "disable", "delete", "clear", "stop", "halt", "kill", "shut",
    "shutdown", "terminate", "pause", "suspend", "power", "off", "start", "resume", "launch",
    "boot", "bring", "restart", "reboot", "bounce", "relaunch", "again", "cpu", "budget",
    "processor", "share", "time", "memory", "pages", "page", "ram", "status", "state", "query",
    "report", "doing", "running", "show", "list", "inventory", "hardware", "firmware", "devices",
    "device", "peripherals", "cpus", "cores", "processors", "board", "platform", "machine",
    "worker", "workers", "every", "each", "all", "everything", "double", "twice", "triple",
    "thrice", "halve", "half", "times", "maximum", "highest", "ceiling", "quota", "limit",
    "allowed", "allows", "permits", "permitted", "possible", "minimum", "lowest", "fastest",
    "slowest", "often", "frequently", "rate", "fast", "slow", "percent", "second", "seconds",
    "millisecond", "milliseconds", "microsecond", "microseconds", "minute", "minutes",
    "dozen", "set", "change", "make", "put", "let", "use", "limit", "period", "per", "once",
    // words that must stay as they are
    "the", "and", "then", "also", "its", "it", "them", "their", "what", "how", "which",
    "many", "much", "does", "have", "has", "with", "from", "into", "onto", "about", "please",
    "should", "could", "would", "needs", "need", "want", "wants", "this", "that", "there",
    "some", "like", "able", "than", "over", "under", "current", "currently", "now", "right",
    "moment", "tell", "display", "describe", "dump", "connected", "attached", "installed",
    "holds", "hold", "keep", "only", "but", "new", "system", "plan", "level",
];

const NUM_UNITS: &[(&str, u64)] = &[
    ("zero", 0), ("one", 1), ("two", 2), ("three", 3), ("four", 4), ("five", 5), ("six", 6),
    ("seven", 7), ("eight", 8), ("nine", 9), ("ten", 10), ("eleven", 11), ("twelve", 12),
    ("thirteen", 13), ("fourteen", 14), ("fifteen", 15), ("sixteen", 16), ("seventeen", 17),
    ("eighteen", 18), ("nineteen", 19),
];
const NUM_TENS: &[(&str, u64)] = &[
    ("twenty", 20), ("thirty", 30), ("forty", 40), ("fifty", 50), ("sixty", 60),
    ("seventy", 70), ("eighty", 80), ("ninety", 90),
];

fn num_word(w: &str) -> Option<(u64, bool)> {
    NUM_UNITS
        .iter()
        .map(|(n, v)| (n, *v, false))
        .chain(NUM_TENS.iter().map(|(n, v)| (n, *v, true)))
        .find(|(n, _, _)| **n == w)
        .map(|(_, v, t)| (v, t))
}

/// optimal-string-alignment distance (an adjacent swap costs one).
fn osa(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        if let Some(c) = row.first_mut() {
            *c = i;
        }
    }
    for j in 0..=b.len() {
        if let Some(c) = d.get_mut(0).and_then(|r| r.get_mut(j)) {
            *c = j;
        }
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a.get(i - 1) != b.get(j - 1));
            let mut v = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a.get(i - 1) == b.get(j - 2) && a.get(i - 2) == b.get(j - 1) {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

/// the vocabulary word a typo stands for: the one word at distance 1 (2 for
/// long words); the word itself when it is known or nothing is that close.
fn repair(w: &str) -> String {
    let known = VOCAB.contains(&w) || num_word(w).is_some() || w.len() < 3;
    if known {
        return w.to_string();
    }
    // "halted", "granted", "stopped", "raised", "workers": the stem
    for suffix in ["ing", "ed", "d", "es", "s"] {
        if let Some(stem) = w.strip_suffix(suffix) {
            if VOCAB.contains(&stem) {
                return stem.to_string();
            }
            let b = stem.as_bytes();
            if b.len() >= 3 && b[b.len() - 1] == b[b.len() - 2] && VOCAB.contains(&&stem[..stem.len() - 1]) {
                return stem[..stem.len() - 1].to_string();
            }
        }
    }
    let max = if w.len() >= 7 { 2 } else { 1 };
    let mut best: Option<(&str, usize)> = None;
    let mut tie = false;
    let candidates = VOCAB
        .iter()
        .copied()
        .chain(NUM_UNITS.iter().chain(NUM_TENS).map(|(n, _)| *n))
        .filter(|c| c.len() >= 4);
    for c in candidates {
        let d = osa(w, c);
        if d > max {
            continue;
        }
        match best {
            Some((_, bd)) if d > bd => {}
            Some((_, bd)) if d == bd => tie = true,
            _ => {
                best = Some((c, d));
                tie = false;
            }
        }
    }
    match best {
        Some((c, _)) if !tie => c.to_string(),
        _ => w.to_string(),
    }
}

/// `worker2`, `wroker2`, `worker-2` → the worker (or a bad name).
fn worker_token(prefix: &str, digits: &str) -> Option<Tok> {
    let close = prefix == "worker" || (prefix.len() >= 4 && osa(prefix, "worker") <= 2);
    if !close {
        return None;
    }
    let name = format!("worker{digits}");
    Some(match Worker::from_name(&name) {
        Some(w) => Tok::Worker(w),
        None => Tok::BadWorker(name),
    })
}

fn tokens(intent: &str) -> Vec<Tok> {
    let lower = intent.to_lowercase().replace("µs", " us ");
    // raw pieces: runs of letters, runs of digits, and single marks
    let mut raw: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut kind = 0u8; // 1 letters, 2 digits
    for c in lower.chars() {
        let k = if c.is_ascii_alphabetic() {
            1
        } else if c.is_ascii_digit() {
            2
        } else {
            0
        };
        if (k == 0 || k != kind) && !cur.is_empty() {
            raw.push(std::mem::take(&mut cur));
        }
        if k == 0 {
            if matches!(c, '%' | '?' | ';' | ',') {
                raw.push(c.to_string());
            }
            if c == '-' {
                raw.push("-".into());
            }
            kind = 0;
            continue;
        }
        cur.push(c);
        kind = k;
    }
    if !cur.is_empty() {
        raw.push(cur);
    }
    let mut out: Vec<Tok> = Vec::new();
    let mut i = 0;
    while i < raw.len() {
        let r = raw[i].as_str();
        let next = raw.get(i + 1).map(String::as_str);
        // worker2 / worker-2 / worker 2
        if r.chars().all(|c| c.is_ascii_alphabetic()) {
            let (skip, digits) = match (next, raw.get(i + 2).map(String::as_str)) {
                (Some(d), _) if d.chars().all(|c| c.is_ascii_digit()) => (1, Some(d)),
                (Some("-"), Some(d)) if d.chars().all(|c| c.is_ascii_digit()) => (2, Some(d)),
                _ => (0, None),
            };
            if let Some(t) = digits.and_then(|d| worker_token(r, d)) {
                out.push(t);
                i += 1 + skip;
                continue;
            }
        }
        if let Ok(n) = r.parse::<u64>() {
            out.push(Tok::Num(n));
        } else if r.chars().all(|c| c.is_ascii_digit()) {
            // too long for u64: a number no policy allows
            out.push(Tok::Num(u64::MAX));
        } else {
            match r {
                "%" => out.push(Tok::Percent),
                "?" => out.push(Tok::Question),
                ";" => out.push(Tok::Break),
                "," => out.push(Tok::Word(",".into())),
                "-" => {}
                _ => {
                    let w = repair(r);
                    match w.as_str() {
                        "and" | "then" | "also" => out.push(Tok::Break),
                        "percent" | "pct" => out.push(Tok::Percent),
                        _ => out.push(Tok::Word(w)),
                    }
                }
            }
        }
        i += 1;
    }
    numbers_from_words(out)
}

/// "sixty four" → 64, "two hundred" → 200, "a dozen" → 12.
fn numbers_from_words(toks: Vec<Tok>) -> Vec<Tok> {
    let mut out: Vec<Tok> = Vec::new();
    let mut acc: Option<u64> = None;
    let mut last_tens = false;
    let flush = |out: &mut Vec<Tok>, acc: &mut Option<u64>| {
        if let Some(n) = acc.take() {
            out.push(Tok::Num(n));
        }
    };
    for t in toks {
        let word = match &t {
            Tok::Word(w) => Some(w.as_str()),
            _ => None,
        };
        match word {
            Some(w) if num_word(w).is_some() => {
                let (v, tens) = num_word(w).unwrap_or((0, false));
                acc = Some(match acc {
                    Some(a) if last_tens && !tens && v < 10 => a + v,
                    Some(a) if a >= 100 && a % 100 == 0 && v < 100 => a + v,
                    Some(_) => {
                        flush(&mut out, &mut acc);
                        v
                    }
                    None => v,
                });
                last_tens = tens;
            }
            Some("hundred") if acc.is_some() => {
                acc = acc.map(|a| a * 100);
                last_tens = false;
            }
            Some("thousand") if acc.is_some() => {
                acc = acc.map(|a| a * 1000);
                last_tens = false;
            }
            Some("dozen") => {
                flush(&mut out, &mut acc);
                out.push(Tok::Num(12));
            }
            _ => {
                flush(&mut out, &mut acc);
                last_tens = false;
                out.push(t);
            }
        }
    }
    flush(&mut out, &mut acc);
    out
}

fn has(words: &[&str], any: &[&str]) -> bool {
    words.iter().any(|w| any.contains(w))
}

/// a duration unit's µs.
fn unit_us(w: &str) -> Option<u64> {
    Some(match w {
        "us" | "usec" | "usecs" | "microsecond" | "microseconds" => 1,
        "ms" | "msec" | "msecs" | "millisecond" | "milliseconds" => 1000,
        "s" | "sec" | "secs" | "second" | "seconds" => 1_000_000,
        "min" | "mins" | "minute" | "minutes" => 60_000_000,
        _ => return None,
    })
}

const MEM_WORDS: &[&str] = &["memory", "pages", "page", "ram", "mem"];
const RECLAIM_WORDS: &[&str] = &[
    "reclaim", "free", "release", "return", "back", "shrink", "withdraw", "revoke", "recover",
    "reduce", "lower", "decrease", "drop", "cut", "less", "fewer", "halve",
];
const DOWN_WORDS: &[&str] = &[
    "lower", "drop", "reduce", "decrease", "cut", "knock", "down", "less", "fewer", "minus",
];
const TIMER_WORDS: &[&str] = &[
    "timer", "timers", "tick", "ticks", "wake", "notify", "fire", "periodic", "interval",
    "alarm",
];
const CANCEL_WORDS: &[&str] = &[
    "cancel", "stop", "remove", "off", "disable", "delete", "clear", "kill", "halt",
];
const STOP_WORDS: &[&str] = &[
    "stop", "halt", "kill", "shut", "shutdown", "terminate", "pause", "suspend", "off",
];
const START_WORDS: &[&str] = &["start", "resume", "launch", "boot", "bring", "unpause", "revive"];
const RESTART_WORDS: &[&str] = &["restart", "reboot", "bounce", "relaunch"];
const CPU_WORDS: &[&str] = &["cpu", "budget", "processor", "share"];
const QUESTION_WORDS: &[&str] = &[
    "what", "how", "which", "is", "are", "does", "do", "show", "list", "tell", "display",
    "describe", "dump", "status", "report", "query",
];
const HARDWARE_WORDS: &[&str] = &[
    "hardware", "firmware", "inventory", "board", "platform", "machine", "devices", "device",
    "peripherals", "peripheral", "cpus", "cores", "processors", "ram", "installed",
];
const MAX_WORDS: &[&str] = &[
    "max", "maximum", "highest", "ceiling", "quota", "limit", "allowed", "allows", "permits",
    "permitted", "possible", "most",
];
const MIN_WORDS: &[&str] = &["min", "minimum", "lowest", "least", "floor"];
const EVERY_WORDS: &[&str] = &["all", "every", "each"];

/// reads `intent`.
pub fn read(intent: &str) -> Reading {
    let toks = tokens(intent);
    let mut reading = Reading::default();
    for t in &toks {
        if let Tok::BadWorker(n) = t {
            reading.unknown_worker = Some(n.clone());
        }
    }
    let question = toks.contains(&Tok::Question);
    // clauses: broken at and/then/;, and a comma before a verb-less rest is kept
    let mut clauses: Vec<Vec<Tok>> = vec![Vec::new()];
    for t in toks {
        if t == Tok::Break {
            clauses.push(Vec::new());
        } else if let Some(c) = clauses.last_mut() {
            c.push(t);
        }
    }
    let mut prev: Option<Ask> = None;
    for c in clauses.iter().filter(|c| !c.is_empty()) {
        if let Some(a) = read_clause(c, question, prev.as_ref()) {
            reading.asks.push(a.clone());
            prev = Some(a);
        }
    }
    reading
}

fn clause_text(c: &[Tok]) -> String {
    c.iter()
        .map(|t| match t {
            Tok::Word(w) => w.clone(),
            Tok::Num(n) => n.to_string(),
            Tok::Worker(w) => w.name().to_string(),
            Tok::BadWorker(n) => n.clone(),
            Tok::Percent => "%".into(),
            Tok::Question => "?".into(),
            Tok::Break => "and".into(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn read_clause(c: &[Tok], question: bool, prev: Option<&Ask>) -> Option<Ask> {
    let words: Vec<&str> = c
        .iter()
        .filter_map(|t| match t {
            Tok::Word(w) => Some(w.as_str()),
            _ => None,
        })
        .collect();
    let mut workers: Vec<Worker> = Vec::new();
    for t in c {
        if let Tok::Worker(w) = t {
            if !workers.contains(w) {
                workers.push(*w);
            }
        }
    }
    // all/every/each worker(s), everything, "all the workers"
    let every = words.contains(&"everything")
        || words.windows(2).any(|p| EVERY_WORDS.contains(&p[0]) && p[1].starts_with("worker"))
        || words.windows(3).any(|p| {
            EVERY_WORDS.contains(&p[0]) && matches!(p[1], "the" | "of" | "my" | "our") && p[2].starts_with("worker")
        })
        || (workers.is_empty() && words.contains(&"workers") && has(&words, EVERY_WORDS));
    if every {
        workers = Worker::ALL.to_vec();
    }
    let refers_back = has(&words, &["it", "its", "them", "their"]);
    if workers.is_empty() && (refers_back || prev.is_some()) {
        if let Some(p) = prev {
            workers = p.workers.clone();
        }
    }
    let text = clause_text(c);
    let starts_question = matches!(c.first(), Some(Tok::Word(w)) if QUESTION_WORDS.contains(&w.as_str()));
    let is_question = question || starts_question;
    let durations = durations(c);
    let mem = has(&words, MEM_WORDS);
    let timer = has(&words, TIMER_WORDS)
        || (words.contains(&"every") && !durations.is_empty() && !has(&words, CPU_WORDS) && !mem);

    let kind = if is_question && !has(&words, &["give", "grant", "set", "stop", "restart"]) {
        if has(&words, HARDWARE_WORDS) || (mem && workers.is_empty()) || words.contains(&"cpus") {
            ActionKind::FirmwareInventory
        } else {
            ActionKind::SystemQuery
        }
    } else if has(&words, RESTART_WORDS) {
        ActionKind::ProcessRestart
    } else if timer {
        if has(&words, CANCEL_WORDS) || (words.contains(&"no") && words.contains(&"longer")) {
            ActionKind::TimerCancel
        } else {
            ActionKind::TimerSetPeriodic
        }
    } else if has(&words, &["priority", "prio"]) {
        ActionKind::ProcessSetPriority
    } else if has(&words, CPU_WORDS) || (c.contains(&Tok::Percent) && words.contains(&"cpu")) {
        ActionKind::ProcessSetBudget
    } else if mem || has(&words, &["more", "extra", "additional", "another"]) {
        if words.contains(&"give") && words.contains(&"back") || has(&words, RECLAIM_WORDS) && !has(&words, &["give", "grant", "add", "more", "extra", "additional", "another"]) || (words.contains(&"take") && words.contains(&"back")) {
            ActionKind::MemoryReclaim
        } else {
            ActionKind::MemoryGrant
        }
    } else if has(&words, STOP_WORDS) {
        ActionKind::ProcessStop
    } else if has(&words, START_WORDS) && (!words.contains(&"bring") || has(&words, &["up", "back", "online"])) {
        ActionKind::ProcessStart
    } else if let Some(p) = prev.filter(|_| !workers.is_empty() || has_number(c)) {
        // "… and worker3 too", "… and 40 for worker3": the previous op
        p.kind
    } else if has(&words, &["state", "status", "report", "overview", "summary"]) {
        ActionKind::SystemQuery
    } else {
        return None;
    };
    let mut ask = Ask {
        kind,
        workers,
        every,
        amount: None,
        query: None,
        words: text,
    };
    ask.amount = amount(kind, c, &words, &durations);
    if kind == ActionKind::FirmwareInventory {
        ask.query = Some(if has(&words, &["cpus", "cores", "processors", "cpu"]) {
            "cpus"
        } else if has(&words, &["memory", "ram"]) {
            "memory"
        } else if has(&words, &["devices", "device", "peripherals", "peripheral"]) {
            "devices"
        } else {
            "all"
        });
    }
    if !needs_worker(kind) {
        ask.workers.clear();
    }
    Some(ask)
}

fn has_number(c: &[Tok]) -> bool {
    c.iter().any(|t| matches!(t, Tok::Num(_)))
}

/// the durations of a clause in µs: `20 ms`, `2 seconds`, `once per second`.
fn durations(c: &[Tok]) -> Vec<u64> {
    let mut out = Vec::new();
    for (i, t) in c.iter().enumerate() {
        let unit = |j: usize| match c.get(j) {
            Some(Tok::Word(w)) => unit_us(w),
            _ => None,
        };
        match t {
            Tok::Num(n) => {
                if let Some(u) = unit(i + 1) {
                    out.push(n.saturating_mul(u));
                }
            }
            // "every second", "per second", "a second"
            Tok::Word(w) if matches!(w.as_str(), "every" | "per" | "a" | "each") => {
                if let Some(u) = unit(i + 1) {
                    out.push(u);
                }
            }
            _ => {}
        }
    }
    out
}

/// the amount of a clause for `kind`.
fn amount(kind: ActionKind, c: &[Tok], words: &[&str], durations: &[u64]) -> Option<Amount> {
    let nums: Vec<u64> = c
        .iter()
        .enumerate()
        .filter_map(|(i, t)| match t {
            // a number that is a duration is not a count
            Tok::Num(n) if !matches!(c.get(i + 1), Some(Tok::Word(w)) if unit_us(w).is_some()) => Some(*n),
            _ => None,
        })
        .collect();
    let percent = c.iter().enumerate().find_map(|(i, t)| match (t, c.get(i + 1)) {
        (Tok::Num(n), Some(Tok::Percent)) => Some(*n),
        _ => None,
    });
    let factor = if has(words, &["double", "twice", "doubled"]) {
        Some((2, 1))
    } else if has(words, &["triple", "thrice", "tripled"]) {
        Some((3, 1))
    } else if has(words, &["quadruple"]) {
        Some((4, 1))
    } else if has(words, &["halve", "half", "halved"]) {
        Some((1, 2))
    } else {
        None
    };
    let down = has(words, DOWN_WORDS);
    let by = words.contains(&"by");
    // "to 8 pages" is a target; "8 pages to worker0" is not
    let to = c.windows(2).any(|p| {
        matches!(&p[0], Tok::Word(w) if matches!(w.as_str(), "to" | "at"))
            && matches!(p[1], Tok::Num(_))
    }) && !has(words, &["more", "extra", "additional", "another"]);
    let relative = has(words, &["more", "extra", "additional", "another"]);
    let max = has(words, MAX_WORDS) || (words.contains(&"as") && words.contains(&"much"));
    let min = has(words, MIN_WORDS);
    match kind {
        ActionKind::TimerSetPeriodic => {
            if let Some(d) = durations.first() {
                return Some(Amount::To(*d));
            }
            // "twice as often" halves the period; "half its rate" doubles it
            let rate = has(words, &["often", "fast", "frequently", "rate", "faster"]);
            if let Some((a, b)) = factor {
                return Some(if rate { Amount::Times(b, a) } else { Amount::Times(a, b) });
            }
            if has(words, &["fastest"]) || (rate && max) {
                return Some(Amount::Min);
            }
            if has(words, &["slowest"]) || (has(words, &["longest"]) && max) {
                return Some(Amount::Max);
            }
            if max && has(words, &["period"]) {
                return Some(Amount::Max);
            }
            None
        }
        ActionKind::ProcessSetBudget => {
            if let Some(p) = percent {
                return Some(Amount::Percent(p));
            }
            match durations {
                [b, p, ..] => Some(Amount::Budget(*b, *p)),
                [b] => Some(Amount::To(*b)),
                [] => factor.map(|(a, b)| Amount::Times(a, b)),
            }
        }
        ActionKind::ProcessSetPriority => {
            if let Some(n) = nums.first() {
                return Some(if by {
                    Amount::By(if down { -(i64::try_from(*n).ok()?) } else { i64::try_from(*n).ok()? })
                } else {
                    Amount::To(*n)
                });
            }
            if let Some((a, b)) = factor {
                return Some(Amount::Times(a, b));
            }
            if max {
                return Some(Amount::Max);
            }
            if min {
                return Some(Amount::Min);
            }
            None
        }
        ActionKind::MemoryGrant | ActionKind::MemoryReclaim => {
            let grant = kind == ActionKind::MemoryGrant;
            if let Some(p) = percent {
                return Some(Amount::Percent(p));
            }
            if words.contains(&"all") && words.contains(&"but") {
                return nums.first().map(|n| Amount::AllBut(*n));
            }
            if let Some(n) = nums.first() {
                let n = *n;
                let target = to;
                return Some(if grant && (relative || by || !target) {
                    Amount::By(i64::try_from(n).ok()?)
                } else if grant {
                    Amount::To(n)
                } else if target && !words.contains(&"back") && !words.contains(&"pool") {
                    // "reduce worker1 to 8 pages": a target
                    Amount::AllBut(n)
                } else {
                    Amount::By(i64::try_from(n).ok()?)
                });
            }
            if let Some((a, b)) = factor {
                return Some(Amount::Times(a, b));
            }
            if max && grant {
                return Some(Amount::Max);
            }
            if !grant && (has(words, &["all", "every", "everything"])) {
                return Some(Amount::All);
            }
            None
        }
        _ => None,
    }
}

// ---- the check ----

/// how one action of a plan stands to the intent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// the intent asks for exactly this.
    Faithful,
    /// the intent does not ask for this (another op, a worker it does not
    /// name, or other numbers); the text says what differs.
    Unasked(String),
}

/// a plan held against the intent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fidelity {
    /// one status per action of the plan.
    pub actions: Vec<Status>,
    /// what the intent asks for that no action does.
    pub incomplete: Vec<String>,
    /// whether the reading named every number (so the numbers were checked).
    pub exact: bool,
}

impl Fidelity {
    /// every action asked for, nothing left out.
    pub fn faithful(&self) -> bool {
        self.incomplete.is_empty() && self.actions.iter().all(|s| *s == Status::Faithful)
    }

    /// one line per difference, for people and for the model's feedback.
    pub fn differences(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .actions
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match s {
                Status::Unasked(d) => Some(format!("action {i} is unasked: {d}")),
                Status::Faithful => None,
            })
            .collect();
        out.extend(self.incomplete.iter().map(|m| format!("incomplete: {m}")));
        out
    }

    /// the report as json: `{"faithful":b,"actions":[{"action":i,"status":…}],"incomplete":[…]}`.
    pub fn to_json(&self) -> Value {
        let actions: Vec<Value> = self
            .actions
            .iter()
            .enumerate()
            .map(|(i, s)| match s {
                Status::Faithful => json!({"action": i, "status": "faithful"}),
                Status::Unasked(d) => json!({"action": i, "status": "unasked", "detail": d}),
            })
            .collect();
        json!({"faithful": self.faithful(), "actions": actions, "incomplete": self.incomplete, "exact": self.exact})
    }
}

fn describe_action(a: &Value) -> String {
    let mut parts = vec![a["op"].as_str().unwrap_or("?").to_string()];
    if let Some(pd) = a["pd"].as_str() {
        parts.push(format!("pd={pd}"));
    }
    for (k, v) in a.as_object().into_iter().flatten() {
        if k != "op" && k != "pd" {
            parts.push(format!("{k}={}", v.as_str().map_or(v.to_string(), str::to_string)));
        }
    }
    parts.join(" ")
}

/// holds `plan` against `reading` (resolved against `state`).
pub fn check(reading: &Reading, plan: &Plan, policy: &Policy, state: &State) -> Fidelity {
    let actions: Vec<Value> = json::plan_to_json(plan)["actions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if let Some(expected) = reading.resolve(policy, state) {
        let mut left: Vec<Option<Value>> = expected.into_iter().map(Some).collect();
        let mut status = Vec::new();
        for a in &actions {
            if let Some(slot) = left.iter_mut().find(|e| e.as_ref() == Some(a)) {
                *slot = None;
                status.push(Status::Faithful);
                continue;
            }
            let same = left
                .iter()
                .flatten()
                .find(|e| e["op"] == a["op"] && e["pd"] == a["pd"]);
            status.push(Status::Unasked(match same {
                Some(e) => format!("the intent asks for {}, not {}", describe_action(e), describe_action(a)),
                None => unasked_why(reading, a),
            }));
        }
        let incomplete = left
            .into_iter()
            .flatten()
            .map(|e| describe_action(&e))
            .collect();
        return Fidelity { actions: status, incomplete, exact: true };
    }
    // a partial reading: ops and workers are checked, numbers where resolved
    let mut status = Vec::new();
    let mut covered = vec![false; reading.asks.len()];
    for a in &actions {
        let op = a["op"].as_str().unwrap_or("");
        let pd = a["pd"].as_str();
        let found = reading.asks.iter().enumerate().find(|(_, k)| {
            k.kind.name() == op
                && pd.is_none_or(|p| k.workers.iter().any(|w| w.name() == p))
        });
        match found {
            Some((i, _)) => {
                if let Some(c) = covered.get_mut(i) {
                    *c = true;
                }
                status.push(Status::Faithful);
            }
            None => status.push(Status::Unasked(unasked_why(reading, a))),
        }
    }
    let incomplete = reading
        .asks
        .iter()
        .zip(covered)
        .filter(|(_, c)| !c)
        .map(|(k, _)| {
            let who: Vec<&str> = k.workers.iter().map(|w| w.name()).collect();
            format!("{} {} (the intent says \"{}\")", k.kind.name(), who.join(","), k.words)
                .replace("  ", " ")
        })
        .collect();
    Fidelity { actions: status, incomplete, exact: false }
}

fn unasked_why(reading: &Reading, a: &Value) -> String {
    let op = a["op"].as_str().unwrap_or("?");
    let pd = a["pd"].as_str();
    let op_asked = reading.asks.iter().any(|k| k.kind.name() == op);
    match pd {
        Some(p) if op_asked => {
            if reading.asks.iter().any(|k| k.kind.name() == op && k.workers.is_empty()) {
                format!("the intent names no worker, and {p} is one it does not name")
            } else {
                format!("{op} on {p}: the intent does not name {p} for it")
            }
        }
        _ => format!("the intent does not ask for {op}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use policy_verifier::DEFAULT_POLICY;

    fn resolved(intent: &str) -> Option<Vec<Value>> {
        read(intent).resolve(&DEFAULT_POLICY, &DEFAULT_POLICY.initial)
    }

    fn one(intent: &str) -> Value {
        let r = resolved(intent).unwrap_or_else(|| panic!("{intent}: {:?}", read(intent)));
        assert_eq!(r.len(), 1, "{intent}: {r:?}");
        r[0].clone()
    }

    #[test]
    fn named_numbers_reach_the_plan_unchanged() {
        assert_eq!(one("set worker0 priority to 150")["priority"], 150);
        assert_eq!(one("grant worker1 10000 pages")["pages"], 10000);
        assert_eq!(one("tick worker2 every 20 s")["period_us"], 20_000_000);
        assert_eq!(one("tick worker2 every 250 us")["period_us"], 250);
    }

    #[test]
    fn relative_asks_resolve_against_the_state() {
        // every worker starts with 32 pages, priority 50, 1000/10000 us
        assert_eq!(one("double the memory of worker3"), json!({"op":"memory.grant","pd":"worker3","pages":32}));
        assert_eq!(one("halve worker0's priority")["priority"], 25);
        assert_eq!(one("worker2 gets another 10 pages")["pages"], 10);
        assert_eq!(one("raise worker1's priority by 5")["priority"], 55);
        assert_eq!(one("lower worker1's priority by 5")["priority"], 45);
        assert_eq!(one("worker3 may have as much memory as the quota allows")["pages"], 224);
        assert_eq!(
            one("worker0 gets 25 % of the cpu"),
            json!({"op":"process.set_budget","pd":"worker0","budget_us":2500,"period_us":10000})
        );
        assert_eq!(one("priority of worker2 to the maximum")["priority"], 100);
        let mut s = DEFAULT_POLICY.initial;
        s.workers[1].timer_period_us = Some(30_000);
        let r = read("worker1's timer should tick twice as often").resolve(&DEFAULT_POLICY, &s);
        assert_eq!(r, Some(vec![json!({"op":"timer.set_periodic","pd":"worker1","period_us":15000})]));
    }

    #[test]
    fn words_for_numbers_and_typos() {
        assert_eq!(one("give worker2 fourteen more pages")["pages"], 14);
        assert_eq!(one("set worker3 priority to eighty two")["priority"], 82);
        assert_eq!(one("grnat worker1 6 pages")["pages"], 6);
        assert_eq!(one("set wokrer3 priority to 9")["pd"], "worker3");
        assert_eq!(one("worker0 must be halted")["op"], "process.stop");
        assert_eq!(one("worker2 should be stopped")["op"], "process.stop");
    }

    #[test]
    fn all_every_each_name_every_worker() {
        let r = resolved("lower the priority of all workers to 20").expect("reads");
        assert_eq!(r.len(), policy_verifier::N_WORKERS);
        assert!(r.iter().all(|a| a["priority"] == 20 && a["op"] == "process.set_priority"));
        let r = resolved("shut everything down").expect("reads");
        assert_eq!(r.len(), policy_verifier::N_WORKERS);
        assert!(r.iter().all(|a| a["op"] == "process.stop"));
    }

    #[test]
    fn compound_asks_carry_the_worker() {
        let r = resolved("set worker2 priority to 80 and give it 20 more pages").expect("reads");
        assert_eq!(
            r,
            vec![
                json!({"op":"process.set_priority","pd":"worker2","priority":80}),
                json!({"op":"memory.grant","pd":"worker2","pages":20}),
            ]
        );
        let r = resolved("stop worker2 and reclaim all of its memory").expect("reads");
        assert_eq!(
            r,
            vec![
                json!({"op":"process.stop","pd":"worker2"}),
                json!({"op":"memory.reclaim","pd":"worker2","pages":32}),
            ]
        );
    }

    #[test]
    fn restart_is_a_restart_and_nonsense_is_nothing() {
        assert_eq!(one("restart worker1"), json!({"op":"process.restart","pd":"worker1"}));
        assert!(read("banana purple elephant").is_nothing());
        assert!(read("").is_nothing());
        assert!(read("colourless green ideas sleep furiously").is_nothing());
        assert_eq!(read("give worker9 5 pages").unknown_worker.as_deref(), Some("worker9"));
    }

    #[test]
    fn freeing_pages_is_a_reclaim() {
        assert_eq!(one("free 8 pages of worker3's memory")["op"], "memory.reclaim");
        assert_eq!(one("free 8 pages of worker3's memory")["pages"], 8);
    }

    fn plan_of(actions: Value) -> Plan {
        let text = json!({"version":1,"request_id":1,"session":"admin","reason":"r","actions":actions});
        json::parse_plan(text.to_string().as_bytes()).expect("plan")
    }

    #[test]
    fn the_check_names_unasked_and_incomplete_actions() {
        let s = DEFAULT_POLICY.initial;
        let p = &DEFAULT_POLICY;
        // the grant of a "free" ask, on the right worker
        let r = read("free 8 pages of worker3's memory");
        let f = check(&r, &plan_of(json!([{"op":"memory.grant","pd":"worker3","pages":8}])), p, &s);
        assert!(!f.faithful());
        assert!(matches!(&f.actions[0], Status::Unasked(_)));
        assert_eq!(f.incomplete, ["memory.reclaim pd=worker3 pages=8"]);
        // "all workers" with one worker touched: incomplete
        let r = read("lower the priority of all workers to 20");
        let f = check(&r, &plan_of(json!([{"op":"process.set_priority","pd":"worker0","priority":20}])), p, &s);
        assert_eq!(f.actions, [Status::Faithful]);
        assert_eq!(f.incomplete.len(), policy_verifier::N_WORKERS - 1);
        // a clamped number is not the intent's number
        let r = read("set worker0 priority to 150");
        let f = check(&r, &plan_of(json!([{"op":"process.set_priority","pd":"worker0","priority":15}])), p, &s);
        assert!(
            matches!(&f.actions[0], Status::Unasked(d) if d.contains("priority=150")),
            "{f:?}"
        );
        // another worker
        let r = read("give worker2 20 more pages");
        let f = check(&r, &plan_of(json!([{"op":"memory.grant","pd":"worker1","pages":20}])), p, &s);
        assert!(!f.faithful());
        let f = check(&r, &plan_of(json!([{"op":"memory.grant","pd":"worker2","pages":20}])), p, &s);
        assert!(f.faithful(), "{f:?}");
        assert!(f.exact);
    }

    #[test]
    fn a_partial_reading_checks_ops_and_workers() {
        let s = DEFAULT_POLICY.initial;
        let p = &DEFAULT_POLICY;
        // no amount: any grant on worker1 is what was asked
        let r = read("give worker1 some memory");
        assert_eq!(r.resolve(p, &s), None);
        let ok = check(&r, &plan_of(json!([{"op":"memory.grant","pd":"worker1","pages":16}])), p, &s);
        assert!(ok.faithful() && !ok.exact, "{ok:?}");
        let other = check(&r, &plan_of(json!([{"op":"memory.grant","pd":"worker0","pages":16}])), p, &s);
        assert!(!other.faithful());
        let extra = check(
            &r,
            &plan_of(json!([{"op":"memory.grant","pd":"worker1","pages":16},{"op":"system.query"}])),
            p,
            &s,
        );
        assert_eq!(extra.actions[1], Status::Unasked("the intent does not ask for system.query".into()));
    }
}

#[cfg(test)]
mod tuning {
    //! the reader on the tuning sets (never on a held-out set): each intent's
    //! resolved actions, applied to its starting state, meet its expectation.
    use super::*;
    use policy_verifier::DEFAULT_POLICY;

    fn field(s: &State, w: Worker, f: &str) -> Value {
        let ws = s.worker(w);
        match f {
            "pages" => json!(ws.pages),
            "priority" => json!(ws.priority),
            "budget_us" => json!(ws.budget_us),
            "period_us" => json!(ws.period_us),
            "running" => json!(ws.running),
            "timer_period_us" => json!(ws.timer_period_us),
            _ => Value::Null,
        }
    }

    fn misses(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let case: Value = serde_json::from_str(line).expect("json line");
            let intent = case["intent"].as_str().unwrap_or("");
            let mut s = DEFAULT_POLICY.initial;
            for (k, v) in case["state"].as_object().into_iter().flatten() {
                let (w, f) = k.split_once('.').expect("key");
                let w = Worker::from_name(w).expect("worker");
                match f {
                    "timer_period_us" => s.worker_mut(w).timer_period_us = v.as_u64(),
                    "running" => s.worker_mut(w).running = v.as_bool().unwrap_or(true),
                    _ => {}
                }
            }
            let Some(actions) = read(intent).resolve(&DEFAULT_POLICY, &s) else {
                out.push(format!("{intent}: not resolved: {:?}", read(intent)));
                continue;
            };
            let exp = case["expect"].as_object().cloned().unwrap_or_default();
            let ok = if exp.contains_key("op") {
                actions.len() == 1 && exp.iter().all(|(k, v)| actions[0].get(k) == Some(v))
            } else {
                let mut after = s;
                for a in &actions {
                    if let Some(w) = a["pd"].as_str().and_then(Worker::from_name) {
                        apply_to(&mut after, w, a);
                    }
                }
                exp.iter().all(|(k, v)| {
                    let (w, f) = k.split_once('.').expect("key");
                    let w = Worker::from_name(w).expect("worker");
                    let (b, a) = (field(&s, w, f), field(&after, w, f));
                    match v.as_str() {
                        Some(d) => a.as_i64().zip(b.as_i64()).is_some_and(|(a, b)| Some(a - b) == d.parse().ok()),
                        None => &a == v,
                    }
                })
            };
            if !ok {
                out.push(format!("{intent}: {actions:?}"));
            }
        }
        out
    }

    #[test]
    fn the_reader_resolves_the_tuning_sets() {
        let mut m = misses(include_str!("../../../tests/intents/intents.jsonl"));
        m.extend(misses(include_str!("../../../tests/intents/tuning-paraphrases.jsonl")));
        assert!(m.is_empty(), "{} misses:\n{}", m.len(), m.join("\n"));
    }
}

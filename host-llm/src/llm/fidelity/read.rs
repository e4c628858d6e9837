//! the reader: the human's words as asks (an op, the workers it names, an
//! amount), small typos fixed and number words read.

use policy_verifier::{ActionKind, Worker};


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
}

/// whether the op acts on a worker (not the read-only queries): the ops
/// table says, so a new op is read right without an edit here.
pub(super) fn needs_worker(k: ActionKind) -> bool {
    k.has_worker()
}

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

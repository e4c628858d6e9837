//! amounts relative to the state or the policy ("double", "another 10",
//! "as much as the quota allows", "25 % of the cpu") resolved into the exact
//! actions an intent asks for, never by the model's arithmetic.

use policy_verifier::{ActionKind, Policy, State, Worker};
use serde_json::{json, Value};

use super::read::{needs_worker, Amount, Ask, Reading};

impl Reading {
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


/// the state after `a`, so that a second ask on the same worker reads the
/// first one's result ("stop worker0 and reclaim all of its memory").
pub(super) fn apply_to(s: &mut State, w: Worker, a: &Value) {
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

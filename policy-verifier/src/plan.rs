//! plan v1: the actions an LLM may propose (DESIGN.md "Plan v1").
//!
//! every op is declared once, in the `ops!` table below; the wire enum, the
//! json front end, the op names, the tier table, the destructive flag and
//! the policy limit bounding each numeric field are all generated from it,
//! so adding an op or a field's limit is one line plus its rules.

use serde::{Deserialize, Serialize};

use crate::domain::Domain;
use crate::model::{Limits, Tier};

/// most actions in one plan (`plan.size`).
pub const MAX_ACTIONS: usize = 16;
/// longest `reason` in bytes.
pub const MAX_REASON: usize = 512;
/// longest `session` in bytes.
pub const MAX_SESSION: usize = 32;
/// the only plan version this verifier speaks.
pub const PLAN_VERSION: u8 = 1;

pub use crate::worker::{Worker, N_WORKERS};

/// what `firmware.inventory` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "std", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum InventoryQuery {
    /// processors
    Cpus,
    /// memory ranges
    Memory,
    /// devices
    Devices,
    /// everything
    All,
}

macro_rules! ops {
    ($(
        $(#[doc = $doc:literal])*
        $variant:ident = $name:literal, $tier:ident, destructive = $destr:literal
            { $($field:ident : $fty:ident $(in $lo:tt ..= $hi:tt)?),* };
    )*) => {
        /// one action, generic over how a worker (`P`) and a number (`N`) are
        /// represented: `Action` (concrete) on the wire and in the PDs, symbolic
        /// terms in the proofs. the same rules code reads both.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
        #[allow(missing_docs, reason = "fields are named in the variant's doc")]
        pub enum ActionOf<P, N> {
            $( $(#[doc = $doc])* $variant { $($field: $fty),* }, )*
        }

        /// an action as proposed: workers by name, numbers as u64.
        pub type Action = ActionOf<Worker, u64>;

        /// the kind of an action, without its arguments.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum ActionKind {
            $( $(#[doc = $doc])* $variant, )*
        }

        impl ActionKind {
            /// every kind, in table order.
            pub const ALL: &'static [ActionKind] = &[$(ActionKind::$variant),*];

            /// the op name of DESIGN.md (`memory.grant`, ...).
            pub const fn name(self) -> &'static str {
                match self { $(ActionKind::$variant => $name,)* }
            }

            /// the lowest tier allowed to use this op (`auth.tier`).
            pub const fn tier(self) -> Tier {
                match self { $(ActionKind::$variant => Tier::$tier,)* }
            }

            /// destructive ops need a confirmation token (`auth.confirm`) and
            /// a human's yes on the host.
            pub const fn destructive(self) -> bool {
                match self { $(ActionKind::$variant => $destr,)* }
            }

            /// whether the op acts on a worker (has a `pd` field); the
            /// read-only queries do not.
            pub const fn has_worker(self) -> bool {
                match self { $(ActionKind::$variant => false $(|| ops!(@is_worker $fty))*,)* }
            }

            /// parses an op name.
            pub fn from_name(s: &str) -> Option<ActionKind> {
                ActionKind::ALL.iter().copied().find(|k| k.name() == s)
            }

            /// the range `limits` allow for a numeric field of this op: the
            /// limit its invariant checks (the table's `in lo ..= hi`), so the
            /// llm's grammar can be bounded by it; none for a field no limit
            /// bounds.
            pub fn field_bounds(self, field: &str, limits: &Limits) -> Option<(u64, u64)> {
                match self {
                    $(ActionKind::$variant => {
                        $($(if field == stringify!($field) {
                            return Some((ops!(@limit limits $lo), ops!(@limit limits $hi)));
                        })?)*
                    })*
                }
                None
            }
        }

        impl<P, N> ActionOf<P, N> {
            /// the kind of this action.
            pub const fn kind(&self) -> ActionKind {
                match self { $(ActionOf::$variant { .. } => ActionKind::$variant,)* }
            }

            /// the same action with its worker and numbers re-represented.
            pub fn map<P2, N2>(
                &self,
                mut fp: impl FnMut(&P) -> P2,
                mut fnum: impl FnMut(&N) -> N2,
            ) -> ActionOf<P2, N2> {
                // the closures are unused for ops without a worker or a number.
                let _ = (&mut fp, &mut fnum);
                match self {
                    $(ActionOf::$variant { $($field),* } => ActionOf::$variant {
                        $($field: ops!(@map $fty $field fp fnum)),*
                    },)*
                }
            }
        }

        /// the json form of an action: `{"op": "memory.grant", "pd": "worker1", "pages": 16}`.
        /// generated from the same table; unknown fields and ops are errors.
        #[cfg(feature = "std")]
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
        #[serde(tag = "op", deny_unknown_fields)]
        #[allow(missing_docs, reason = "fields are named in the variant's doc")]
        pub enum JsonActionOf<P, N> {
            $( $(#[doc = $doc])* #[serde(rename = $name)] $variant { $($field: $fty),* }, )*
        }

        /// the json action with concrete workers and numbers.
        #[cfg(feature = "std")]
        pub type JsonAction = JsonActionOf<Worker, u64>;

        #[cfg(feature = "std")]
        impl From<JsonAction> for Action {
            fn from(a: JsonAction) -> Action {
                match a { $(JsonAction::$variant { $($field),* } => Action::$variant { $($field),* },)* }
            }
        }

        #[cfg(feature = "std")]
        impl From<Action> for JsonAction {
            fn from(a: Action) -> JsonAction {
                match a { $(Action::$variant { $($field),* } => JsonAction::$variant { $($field),* },)* }
            }
        }
    };
    (@is_worker P) => { true };
    (@is_worker $t:ident) => { false };
    (@map P $f:ident $fp:ident $fnum:ident) => { $fp($f) };
    (@map N $f:ident $fp:ident $fnum:ident) => { $fnum($f) };
    (@map InventoryQuery $f:ident $fp:ident $fnum:ident) => { *$f };
    (@limit $l:ident $v:literal) => { $v };
    (@limit $l:ident $v:ident) => { $l.$v };
}

// field types: `P` is a worker, `N` a number, `InventoryQuery` an inventory query.
// `in lo ..= hi` bounds a number by the policy: each end a constant or a field
// of `[limits]` (policy.toml), the limit the field's invariant checks.
ops! {
    /// start a stopped worker (`proc.state`, `cpu.util`).
    ProcessStart = "process.start", Admin, destructive = false { pd: P };
    /// stop a running worker (`proc.state`, `auth.confirm`).
    ProcessStop = "process.stop", Admin, destructive = true { pd: P };
    /// restart a worker from its entry point; it runs afterwards
    /// (`proc.restart_rate`, `cpu.util`, `auth.confirm`).
    ProcessRestart = "process.restart", Admin, destructive = true { pd: P };
    /// set a worker's priority (`prio.ceiling`).
    ProcessSetPriority = "process.set_priority", Operator, destructive = false { pd: P, priority: N in 1 ..= priority_ceiling };
    /// set a worker's cpu budget per period (`cpu.budget_bounds`, `cpu.util`).
    ProcessSetBudget = "process.set_budget", Operator, destructive = false {
        pd: P, budget_us: N in budget_min_us ..= period_max_us, period_us: N in budget_min_us ..= period_max_us
    };
    /// give a worker pages from the pool (`mem.quota`, `mem.pool`).
    MemoryGrant = "memory.grant", Operator, destructive = false { pd: P, pages: N in 1 ..= quota_pages };
    /// take pages back from a stopped worker; they are zeroed
    /// (`mem.reclaim_bounds`, `mem.reclaim_stopped`).
    MemoryReclaim = "memory.reclaim", Operator, destructive = false { pd: P, pages: N in 1 ..= quota_pages };
    /// notify a worker periodically (`timer.bounds`).
    TimerSetPeriodic = "timer.set_periodic", Operator, destructive = false { pd: P, period_us: N in timer_min_us ..= timer_max_us };
    /// stop a worker's periodic notification.
    TimerCancel = "timer.cancel", Operator, destructive = false { pd: P };
    /// read the platform inventory (read-only).
    FirmwareInventory = "firmware.inventory", Observer, destructive = false { query: InventoryQuery };
    /// read the system state (read-only).
    SystemQuery = "system.query", Observer, destructive = false { };
}

/// an action over a domain (what the rules read): the worker is an index
/// term, numbers are terms.
pub type OpTerm<D> = ActionOf<<D as Domain>::Int, <D as Domain>::Int>;

impl Action {
    /// the worker this action addresses, if any.
    pub fn worker(&self) -> Option<Worker> {
        let mut w = None;
        let _ = self.map(|p| w = Some(*p), |_| ());
        w
    }
}

/// a plan as the verifier PD receives it (postcard on the wire).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// must be `PLAN_VERSION`.
    pub version: u8,
    /// strictly increasing per system (`plan.replay`).
    pub request_id: u64,
    /// names a session of the policy, which gives the tier (`auth.tier`).
    pub session: heapless::String<MAX_SESSION>,
    /// why: kept in the audit log and the receipt.
    pub reason: heapless::String<MAX_REASON>,
    /// 1..=16 actions, executed in order, all or nothing.
    pub actions: heapless::Vec<Action, MAX_ACTIONS>,
    /// HMAC-SHA256 over the canonical bytes of the plan without this field.
    pub confirmation: Option<[u8; 32]>,
}

impl Plan {
    /// true when any action needs a confirmation token.
    pub fn has_destructive(&self) -> bool {
        self.actions.iter().any(|a| a.kind().destructive())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_op_has_a_worker_when_its_table_line_has_a_pd_field() {
        use ActionKind as K;
        assert!(K::ProcessStart.has_worker() && K::ProcessSetBudget.has_worker() && K::TimerCancel.has_worker());
        assert!(!K::FirmwareInventory.has_worker() && !K::SystemQuery.has_worker());
    }
}

//! the invariant and rejection names of DESIGN.md. they are stable: tests and
//! users match on them.

/// what kind of rule a name stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleClass {
    /// a predicate on a state; holds in every state the verifier lets the
    /// system reach (proved by induction over actions).
    State,
    /// a predicate on a state and the next action.
    Precondition,
    /// a predicate on the plan as a whole or on who sent it.
    Plan,
}

macro_rules! invariants {
    ($( $(#[doc = $doc:literal])* $variant:ident = $name:literal, $class:ident; )*) => {
        /// a named invariant or rejection reason.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[repr(u8)]
        pub enum Invariant {
            $( $(#[doc = $doc])* $variant, )*
        }

        impl Invariant {
            /// every name, in DESIGN.md order (which is also report order).
            pub const ALL: &'static [Invariant] = &[$(Invariant::$variant),*];

            /// the stable name, e.g. `mem.quota`.
            pub const fn name(self) -> &'static str {
                match self { $(Invariant::$variant => $name,)* }
            }

            /// state invariant, action precondition or plan-level rule.
            pub const fn class(self) -> RuleClass {
                match self { $(Invariant::$variant => RuleClass::$class,)* }
            }

            /// one line saying what the rule means (the doc comment).
            pub const fn meaning(self) -> &'static str {
                match self { $(Invariant::$variant => concat!($($doc),*).trim_ascii(),)* }
            }

            /// parses a stable name.
            pub fn from_name(s: &str) -> Option<Invariant> {
                Invariant::ALL.iter().copied().find(|i| i.name() == s)
            }
        }
    };
}

invariants! {
    /// pages(w) <= quota(w) for every worker
    MemQuota = "mem.quota", State;
    /// the pages of all workers fit in the pool
    MemPool = "mem.pool", State;
    /// reclaim at most the pages a worker holds
    MemReclaimBounds = "mem.reclaim_bounds", Precondition;
    /// reclaim only from a stopped worker
    MemReclaimStopped = "mem.reclaim_stopped", Precondition;
    /// the utilisation of running workers stays within the limit
    CpuUtil = "cpu.util", State;
    /// min budget <= budget <= period <= max period
    CpuBudgetBounds = "cpu.budget_bounds", State;
    /// worker priority <= ceiling
    PrioCeiling = "prio.ceiling", State;
    /// a worker's timer period is within bounds
    TimerBounds = "timer.bounds", State;
    /// start only a stopped worker; stop only a running one
    ProcState = "proc.state", Precondition;
    /// at most one restart per worker per plan
    ProcRestartRate = "proc.restart_rate", Precondition;
    /// 1..=16 actions, at most 64 KiB encoded
    PlanSize = "plan.size", Plan;
    /// request_id is in last+1 ..= last+window of this boot, and the plan was made for this boot's epoch
    PlanReplay = "plan.replay", Plan;
    /// the session's tier permits the op
    AuthTier = "auth.tier", Plan;
    /// process.stop and process.restart carry a valid confirmation token
    AuthConfirm = "auth.confirm", Plan;
    /// the plan frame carries a valid MAC under this installation's plan key
    AuthMac = "auth.mac", Plan;
}

impl Invariant {
    /// the state invariants, the subject of the soundness proofs.
    pub const STATE: [Invariant; 6] = [
        Invariant::MemQuota,
        Invariant::MemPool,
        Invariant::CpuUtil,
        Invariant::CpuBudgetBounds,
        Invariant::PrioCeiling,
        Invariant::TimerBounds,
    ];
    /// the action preconditions.
    pub const PRECONDITIONS: [Invariant; 4] = [
        Invariant::MemReclaimBounds,
        Invariant::MemReclaimStopped,
        Invariant::ProcState,
        Invariant::ProcRestartRate,
    ];
}

impl core::fmt::Display for Invariant {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// a set of invariants, as bit masks (no heap): the built-in names by
/// their [`Invariant`] discriminant, and the slots of the policy's custom
/// invariants (`model::CustomInvariants`). this is also the wire form of a
/// receipt's violations: ids, never names; the host names them with the
/// policy in force (`model::Policy::names`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "RawSet", into = "RawSet")]
pub struct InvariantSet {
    builtin: u32,
    custom: u32,
}

/// custom slots a set can hold (a policy file defines at most
/// `model::MAX_CUSTOM`, fewer).
pub const CUSTOM_SLOTS: usize = 32;

// every built-in name has its bit
const _: () = assert!(Invariant::ALL.len() <= 32);

/// the bits of every built-in name.
const KNOWN: u32 = {
    let mut m = 0u32;
    let mut i = 0;
    while i < Invariant::ALL.len() {
        m |= 1 << i;
        i += 1;
    }
    m
};


/// [`InvariantSet`] as it travels: two masks; a built-in bit this build
/// does not name fails the decoding.
#[derive(Clone, Copy, serde::Serialize, serde::Deserialize)]
struct RawSet(u32, u32);

impl From<InvariantSet> for RawSet {
    fn from(s: InvariantSet) -> RawSet {
        RawSet(s.builtin, s.custom)
    }
}

/// a decoded set names an invariant this build does not know: the sender
/// runs another contract, so the set is refused rather than shown short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownInvariant;

impl core::fmt::Display for UnknownInvariant {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("an invariant id this build does not know")
    }
}

impl TryFrom<RawSet> for InvariantSet {
    type Error = UnknownInvariant;
    fn try_from(RawSet(builtin, custom): RawSet) -> Result<InvariantSet, UnknownInvariant> {
        if builtin & !KNOWN != 0 {
            return Err(UnknownInvariant);
        }
        Ok(InvariantSet { builtin, custom })
    }
}

impl InvariantSet {
    /// no invariant.
    pub const EMPTY: InvariantSet = InvariantSet { builtin: 0, custom: 0 };

    /// adds one.
    pub fn insert(&mut self, i: Invariant) {
        self.builtin |= 1u32 << (i as u8);
    }

    /// whether it holds `i`.
    pub fn contains(self, i: Invariant) -> bool {
        self.builtin & (1u32 << (i as u8)) != 0
    }

    /// adds custom invariant slot `k` (slots from [`CUSTOM_SLOTS`] on are
    /// dropped; a policy holds at most `model::MAX_CUSTOM`).
    pub fn insert_custom(&mut self, k: usize) {
        if let Some(bit) = u32::try_from(k).ok().and_then(|k| 1u32.checked_shl(k)) {
            self.custom |= bit;
        }
    }

    /// whether it holds custom slot `k`.
    pub fn contains_custom(self, k: usize) -> bool {
        u32::try_from(k).ok().and_then(|k| 1u32.checked_shl(k)).is_some_and(|bit| self.custom & bit != 0)
    }

    /// the custom slots it holds, in order.
    pub fn customs(self) -> impl Iterator<Item = usize> {
        (0..CUSTOM_SLOTS).filter(move |k| self.contains_custom(*k))
    }

    /// true when empty.
    pub fn is_empty(self) -> bool {
        self.builtin == 0 && self.custom == 0
    }

    /// the union.
    pub fn union(self, other: InvariantSet) -> InvariantSet {
        InvariantSet { builtin: self.builtin | other.builtin, custom: self.custom | other.custom }
    }

    /// built-in members in report order (custom ones: [`InvariantSet::customs`]).
    pub fn iter(self) -> impl Iterator<Item = Invariant> {
        Invariant::ALL.iter().copied().filter(move |i| self.contains(*i))
    }

    /// the raw mask of built-in names.
    pub const fn bits(self) -> u32 {
        self.builtin
    }

    /// the raw mask of custom slots.
    pub const fn custom_bits(self) -> u32 {
        self.custom
    }

    /// from the raw mask; unknown bits are dropped.
    pub fn from_bits(bits: u32) -> InvariantSet {
        InvariantSet { builtin: bits & KNOWN, custom: 0 }
    }

    /// every built-in name and every custom slot: the widest set.
    pub const ALL: InvariantSet = InvariantSet { builtin: KNOWN, custom: u32::MAX };
}

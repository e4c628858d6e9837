//! the llm-os property of the capability graph: from `link`, every path to
//! a capability PD passes through `verifier`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

use crate::sdf::{pd_name, Pd, SystemDescription};

/// how two PDs are connected (an edge of the capability graph).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edge {
    /// a `<channel>`: ids at each end, and whether the first end may PPC.
    Channel {
        /// this PD's id.
        from_id: u8,
        /// the other PD's id.
        to_id: u8,
        /// a PPC channel (either direction).
        pp: bool,
    },
    /// a memory region mapped into both.
    SharedRegion(String),
    /// parent and child (the parent holds the child's TCB).
    ParentChild,
    /// a `<cspace>` grant of one's TCB or SC cap to the other.
    CapGrant,
}

impl fmt::Display for Edge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Channel { from_id, to_id, pp } => {
                write!(
                    f,
                    "{} channel {from_id}<->{to_id}",
                    if *pp { "ppc" } else { "notify" }
                )
            }
            Self::SharedRegion(mr) => write!(f, "shared region `{mr}`"),
            Self::ParentChild => write!(f, "parent/child"),
            Self::CapGrant => write!(f, "cspace cap grant"),
        }
    }
}

/// every connection of the system, both directions.
pub fn edges(sys: &SystemDescription) -> Vec<(usize, usize, Edge)> {
    let mut out = Vec::new();
    for ch in &sys.channels {
        let pp = ch.a.pp || ch.b.pp;
        out.push((
            ch.a.pd,
            ch.b.pd,
            Edge::Channel {
                from_id: ch.a.id,
                to_id: ch.b.id,
                pp,
            },
        ));
        out.push((
            ch.b.pd,
            ch.a.pd,
            Edge::Channel {
                from_id: ch.b.id,
                to_id: ch.a.id,
                pp,
            },
        ));
    }
    for (i, a) in sys.pds.iter().enumerate() {
        for (j, b) in sys.pds.iter().enumerate() {
            if i == j {
                continue;
            }
            for m in &a.maps {
                if b.maps.iter().any(|n| n.mr == m.mr) {
                    out.push((i, j, Edge::SharedRegion(m.mr.clone())));
                }
            }
            if a.parent == Some(j) || b.parent == Some(i) {
                out.push((i, j, Edge::ParentChild));
            }
            let grants = |x: &Pd, y: &Pd| {
                x.cap_sc
                    .iter()
                    .chain(x.cap_tcb.iter())
                    .chain(x.cap_vspace.iter())
                    .any(|(_, t)| *t == y.name)
            };
            if grants(a, b) || grants(b, a) {
                out.push((i, j, Edge::CapGrant));
            }
        }
    }
    out
}

/// the roles of the capability-graph property.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphRoles {
    /// the PD facing the host.
    pub entry: String,
    /// the PD every path must pass.
    pub guard: String,
    /// the PDs holding capabilities.
    pub capability: Vec<String>,
}

/// the PD facing the host (DESIGN.md "Protection domains").
pub const ENTRY: &str = "link";
/// the PD every path from the entry to a capability must pass.
pub const GUARD: &str = "verifier";

/// llm-os's roles, read off the system: the capability PDs are the ones the
/// guard calls by PPC, and any other PD (but the entry and the guard) that
/// holds a capability the kernel hands out: an IRQ, a device region, children
/// or cspace caps. no list of them is written anywhere else.
pub fn llm_os_roles(sys: &SystemDescription) -> GraphRoles {
    let guard = sys.pd_index(GUARD);
    let mut capability = Vec::new();
    for (i, pd) in sys.pds.iter().enumerate() {
        if pd.name == ENTRY || pd.name == GUARD {
            continue;
        }
        let called_by_guard = sys.channels.iter().any(|c| {
            (Some(c.a.pd) == guard && c.b.pd == i && c.a.pp)
                || (Some(c.b.pd) == guard && c.a.pd == i && c.b.pp)
        });
        let device = pd.maps.iter().any(|m| {
            sys.region(&m.mr).is_some_and(|r| r.phys_addr.is_some())
        });
        let holds = !pd.irqs.is_empty()
            || device
            || sys.pds.iter().any(|c| c.parent == Some(i))
            || !pd.cap_sc.is_empty()
            || !pd.cap_tcb.is_empty()
            || !pd.cap_vspace.is_empty();
        if called_by_guard || holds {
            capability.push(pd.name.clone());
        }
    }
    GraphRoles {
        entry: ENTRY.to_owned(),
        guard: GUARD.to_owned(),
        capability,
    }
}

/// a violation of the capability-graph property.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GraphError {
    /// a PD the property names is not in the system.
    MissingPd(String),
    /// a path from the entry to a capability PD that avoids the guard.
    Bypass {
        /// the capability PD reached.
        target: String,
        /// the path: (from, edge, to) hops.
        path: Vec<(String, Edge, String)>,
    },
    /// a PPC channel into a capability PD from a PD other than the guard.
    ForeignPpc {
        /// the caller.
        caller: String,
        /// the capability PD.
        callee: String,
    },
}

impl fmt::Display for GraphError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingPd(p) => write!(f, "the system has no protection domain `{p}`"),
            Self::Bypass { target, path } => {
                let first = path.first().map_or("?", |(a, _, _)| a.as_str());
                write!(f, "capability PD `{target}` is reachable from `{first}` without passing through the verifier: {first}")?;
                for (_, e, to) in path {
                    write!(f, " -[{e}]-> {to}")?;
                }
                Ok(())
            }
            Self::ForeignPpc { caller, callee } => {
                write!(f, "`{caller}` has a PPC channel into capability PD `{callee}`; only the verifier may")
            }
        }
    }
}

impl std::error::Error for GraphError {}

/// check: from `roles.entry`, every path to a capability PD passes through
/// `roles.guard` (over channels, shared regions, parent/child and cap grants,
/// in either direction), and only the guard PPCs into capability PDs.
pub fn check_capability_graph(
    sys: &SystemDescription,
    roles: &GraphRoles,
) -> Result<(), GraphError> {
    let idx = |n: &str| {
        sys.pd_index(n)
            .ok_or_else(|| GraphError::MissingPd(n.to_owned()))
    };
    let entry = idx(&roles.entry)?;
    let guard = idx(&roles.guard)?;
    let caps: Vec<usize> = roles
        .capability
        .iter()
        .map(|c| idx(c.as_str()))
        .collect::<Result<_, _>>()?;
    let all = edges(sys);
    // breadth-first from the entry with the guard removed; the first
    // capability PD found gives the shortest offending path
    let mut prev: BTreeMap<usize, (usize, Edge)> = BTreeMap::new();
    let mut seen = BTreeSet::from([entry]);
    let mut queue = VecDeque::from([entry]);
    while let Some(at) = queue.pop_front() {
        if caps.contains(&at) {
            let mut path = Vec::new();
            let mut cur = at;
            while let Some((p, e)) = prev.get(&cur) {
                path.push((
                    pd_name(sys, *p).to_owned(),
                    e.clone(),
                    pd_name(sys, cur).to_owned(),
                ));
                cur = *p;
            }
            path.reverse();
            return Err(GraphError::Bypass {
                target: pd_name(sys, at).to_owned(),
                path,
            });
        }
        for (from, to, e) in &all {
            if *from == at && *to != guard && seen.insert(*to) {
                prev.insert(*to, (at, e.clone()));
                queue.push_back(*to);
            }
        }
    }
    for ch in &sys.channels {
        for (from, to) in [(ch.a, ch.b), (ch.b, ch.a)] {
            if from.pp && caps.contains(&to.pd) && from.pd != guard {
                return Err(GraphError::ForeignPpc {
                    caller: pd_name(sys, from.pd).to_owned(),
                    callee: pd_name(sys, to.pd).to_owned(),
                });
            }
        }
    }
    Ok(())
}

/// the line of the .system file a graph error is about: the first hop of a
/// bypass, the channel of a foreign PPC.
pub fn error_line(sys: &SystemDescription, e: &GraphError) -> u32 {
    let pd_line = |name: &str| sys.pd(name).map_or(0, |p| p.line);
    match e {
        GraphError::MissingPd(_) => 0,
        GraphError::Bypass { path, .. } => match path.first() {
            Some((from, Edge::Channel { from_id, .. }, _)) => {
                let i = sys.pd_index(from);
                sys.channels
                    .iter()
                    .find(|c| {
                        (Some(c.a.pd) == i && c.a.id == *from_id)
                            || (Some(c.b.pd) == i && c.b.id == *from_id)
                    })
                    .map_or_else(|| pd_line(from), |c| c.line)
            }
            Some((from, Edge::SharedRegion(mr), _)) => sys
                .pd(from)
                .and_then(|p| p.maps.iter().find(|m| &m.mr == mr))
                .map_or_else(|| pd_line(from), |m| m.line),
            Some((from, _, _)) => pd_line(from),
            None => 0,
        },
        GraphError::ForeignPpc { caller, callee } => {
            let (a, b) = (sys.pd_index(caller), sys.pd_index(callee));
            sys.channels
                .iter()
                .find(|c| {
                    (Some(c.a.pd) == a && Some(c.b.pd) == b) || (Some(c.a.pd) == b && Some(c.b.pd) == a)
                })
                .map_or_else(|| pd_line(caller), |c| c.line)
        }
    }
}

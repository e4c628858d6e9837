//! the Microkit system description (.system XML), parsed and checked.
//!
//! parses the subset of Microkit 2.3.0's SDF that llm-os uses, strictly:
//! unknown elements and attributes are errors, as in the Microkit tool. the
//! checks the tool makes that the hosted wiring relies on are repeated here
//! (unique names and channel ids, PPCs only to strictly higher priorities,
//! no bidirectional PPC, known regions), and [`check_capability_graph`] adds
//! the llm-os property: from `link`, every path to a capability PD passes
//! through `verifier`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

/// a memory region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryRegion {
    /// `name`.
    pub name: String,
    /// `size` in bytes.
    pub size: u64,
    /// `phys_addr`, for device memory.
    pub phys_addr: Option<u64>,
}

/// a `<map>` of a region into a PD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Map {
    /// the region's name.
    pub mr: String,
    /// where it is mapped.
    pub vaddr: u64,
    /// the PD may write it.
    pub writable: bool,
    /// the symbol patched with `vaddr`.
    pub setvar_vaddr: Option<String>,
}

/// an `<irq>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Irq {
    /// the hardware interrupt number.
    pub irq: u32,
    /// the channel id it is delivered on.
    pub id: u8,
}

/// a protection domain (children are flattened, with `parent` set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pd {
    /// `name`.
    pub name: String,
    /// `program_image path`.
    pub program_image: String,
    /// `priority` (0..=254).
    pub priority: u8,
    /// `budget` in µs (default 1000).
    pub budget_us: u64,
    /// `period` in µs (default = budget).
    pub period_us: u64,
    /// `passive`.
    pub passive: bool,
    /// index of the parent PD in [`SystemDescription::pds`].
    pub parent: Option<usize>,
    /// `id` as a child.
    pub child_id: Option<u8>,
    /// `<map>`s.
    pub maps: Vec<Map>,
    /// `<irq>`s.
    pub irqs: Vec<Irq>,
    /// `<cspace><cap_sc slot pd>` grants: (slot, pd name).
    pub cap_sc: Vec<(u8, String)>,
    /// `<cspace><cap_tcb slot pd>` grants: (slot, pd name).
    pub cap_tcb: Vec<(u8, String)>,
}

/// one end of a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct End {
    /// index into [`SystemDescription::pds`].
    pub pd: usize,
    /// the channel id at this end.
    pub id: u8,
    /// this end may PPC into the other.
    pub pp: bool,
    /// this end may notify the other.
    pub notify: bool,
}

/// a `<channel>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelDecl {
    /// first `<end>`.
    pub a: End,
    /// second `<end>`.
    pub b: End,
}

/// a parsed, checked system description.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SystemDescription {
    /// every PD, parents before children.
    pub pds: Vec<Pd>,
    /// every memory region.
    pub regions: Vec<MemoryRegion>,
    /// every channel.
    pub channels: Vec<ChannelDecl>,
}

/// why a .system file was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SdfError {
    /// not XML.
    Xml(String),
    /// an element that this parser (and the Microkit SDF) does not know.
    UnknownElement {
        /// the element.
        element: String,
        /// line number.
        line: u32,
    },
    /// an attribute that the element does not take.
    UnknownAttribute {
        /// the element.
        element: String,
        /// the attribute.
        attribute: String,
        /// line number.
        line: u32,
    },
    /// a required attribute is missing.
    MissingAttribute {
        /// the element.
        element: String,
        /// the attribute.
        attribute: String,
        /// line number.
        line: u32,
    },
    /// an attribute value that does not parse or is out of range.
    BadValue {
        /// the element.
        element: String,
        /// the attribute.
        attribute: String,
        /// the value.
        value: String,
        /// line number.
        line: u32,
    },
    /// a rule of the Microkit SDF is broken.
    Invalid(String),
}

impl fmt::Display for SdfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Xml(e) => write!(f, "not a system description: {e}"),
            Self::UnknownElement { element, line } => {
                write!(f, "line {line}: unknown element `{element}`")
            }
            Self::UnknownAttribute {
                element,
                attribute,
                line,
            } => {
                write!(
                    f,
                    "line {line}: element `{element}` has no attribute `{attribute}`"
                )
            }
            Self::MissingAttribute {
                element,
                attribute,
                line,
            } => {
                write!(
                    f,
                    "line {line}: element `{element}` needs attribute `{attribute}`"
                )
            }
            Self::BadValue {
                element,
                attribute,
                value,
                line,
            } => {
                write!(
                    f,
                    "line {line}: `{element}` attribute `{attribute}` has bad value `{value}`"
                )
            }
            Self::Invalid(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for SdfError {}

type Node<'a, 'i> = roxmltree::Node<'a, 'i>;

fn line(n: &Node<'_, '_>) -> u32 {
    n.document().text_pos_at(n.range().start).row
}

fn check_attrs(n: &Node<'_, '_>, allowed: &[&str]) -> Result<(), SdfError> {
    for a in n.attributes() {
        if !allowed.contains(&a.name()) {
            return Err(SdfError::UnknownAttribute {
                element: n.tag_name().name().to_owned(),
                attribute: a.name().to_owned(),
                line: line(n),
            });
        }
    }
    Ok(())
}

fn req<'a>(n: &Node<'a, '_>, attr: &str) -> Result<&'a str, SdfError> {
    n.attribute(attr).ok_or_else(|| SdfError::MissingAttribute {
        element: n.tag_name().name().to_owned(),
        attribute: attr.to_owned(),
        line: line(n),
    })
}

fn bad(n: &Node<'_, '_>, attr: &str, value: &str) -> SdfError {
    SdfError::BadValue {
        element: n.tag_name().name().to_owned(),
        attribute: attr.to_owned(),
        value: value.to_owned(),
        line: line(n),
    }
}

fn num(n: &Node<'_, '_>, attr: &str, v: &str) -> Result<u64, SdfError> {
    let clean = v.replace('_', "");
    let parsed = match clean.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => clean.parse::<u64>(),
    };
    parsed.map_err(|_| bad(n, attr, v))
}

fn opt_num(n: &Node<'_, '_>, attr: &str) -> Result<Option<u64>, SdfError> {
    n.attribute(attr).map(|v| num(n, attr, v)).transpose()
}

fn boolean(n: &Node<'_, '_>, attr: &str, default: bool) -> Result<bool, SdfError> {
    match n.attribute(attr) {
        None => Ok(default),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(v) => Err(bad(n, attr, v)),
    }
}

fn small(n: &Node<'_, '_>, attr: &str, max: u64) -> Result<u8, SdfError> {
    let v = req(n, attr)?;
    let x = num(n, attr, v)?;
    if x > max {
        return Err(bad(n, attr, v));
    }
    u8::try_from(x).map_err(|_| bad(n, attr, v))
}

/// `MICROKIT_MAX_CHANNEL_ID`.
const MAX_ID: u64 = 61;
/// the maximum PD priority Microkit allows.
const MAX_PRIORITY: u64 = 254;

/// parse and check a .system file's text.
pub fn parse(text: &str) -> Result<SystemDescription, SdfError> {
    let doc = roxmltree::Document::parse(text).map_err(|e| SdfError::Xml(e.to_string()))?;
    let root = doc.root_element();
    if root.tag_name().name() != "system" {
        return Err(SdfError::UnknownElement {
            element: root.tag_name().name().to_owned(),
            line: line(&root),
        });
    }
    check_attrs(&root, &[])?;
    let mut sys = SystemDescription::default();
    // regions and PDs first: channels refer to PDs by name
    for n in root.children().filter(Node::is_element) {
        match n.tag_name().name() {
            "memory_region" => {
                check_attrs(&n, &["name", "size", "phys_addr", "page_size"])?;
                let size_s = req(&n, "size")?;
                let size = num(&n, "size", size_s)?;
                if size == 0 || size % 0x1000 != 0 {
                    return Err(bad(&n, "size", size_s));
                }
                sys.regions.push(MemoryRegion {
                    name: req(&n, "name")?.to_owned(),
                    size,
                    phys_addr: opt_num(&n, "phys_addr")?,
                });
            }
            "protection_domain" => parse_pd(&n, None, &mut sys)?,
            "channel" => {}
            other => {
                return Err(SdfError::UnknownElement {
                    element: other.to_owned(),
                    line: line(&n),
                })
            }
        }
    }
    for n in root
        .children()
        .filter(|c| c.is_element() && c.tag_name().name() == "channel")
    {
        check_attrs(&n, &[])?;
        let ends: Vec<End> = n
            .children()
            .filter(Node::is_element)
            .map(|e| parse_end(&e, &sys))
            .collect::<Result<_, _>>()?;
        let [a, b] = ends.as_slice() else {
            return Err(SdfError::Invalid(format!(
                "line {}: a channel needs exactly two `end` elements",
                line(&n)
            )));
        };
        if a.pp && b.pp {
            return Err(SdfError::Invalid(format!(
                "line {}: cannot ppc bidirectionally",
                line(&n)
            )));
        }
        sys.channels.push(ChannelDecl { a: *a, b: *b });
    }
    validate(&sys)?;
    Ok(sys)
}

fn parse_end(n: &Node<'_, '_>, sys: &SystemDescription) -> Result<End, SdfError> {
    if n.tag_name().name() != "end" {
        return Err(SdfError::UnknownElement {
            element: n.tag_name().name().to_owned(),
            line: line(n),
        });
    }
    check_attrs(n, &["pd", "id", "pp", "notify", "setvar_id"])?;
    let name = req(n, "pd")?;
    let pd = sys
        .pds
        .iter()
        .position(|p| p.name == name)
        .ok_or_else(|| bad(n, "pd", name))?;
    Ok(End {
        pd,
        id: small(n, "id", MAX_ID)?,
        pp: boolean(n, "pp", false)?,
        notify: boolean(n, "notify", true)?,
    })
}

fn parse_pd(
    n: &Node<'_, '_>,
    parent: Option<usize>,
    sys: &mut SystemDescription,
) -> Result<(), SdfError> {
    let mut allowed = vec![
        "name",
        "priority",
        "budget",
        "period",
        "passive",
        "stack_size",
        "cpu",
        "smc",
        "fpu",
        "domain",
    ];
    if parent.is_some() {
        allowed.extend(["id", "setvar_id"]);
    }
    check_attrs(n, &allowed)?;
    let priority = match n.attribute("priority") {
        Some(_) => small(n, "priority", MAX_PRIORITY)?,
        None => 0,
    };
    let budget_us = opt_num(n, "budget")?.unwrap_or(1000);
    let period_us = opt_num(n, "period")?.unwrap_or(budget_us);
    if period_us < budget_us {
        return Err(bad(n, "period", n.attribute("period").unwrap_or("")));
    }
    let child_id = if parent.is_some() {
        Some(small(n, "id", MAX_ID)?)
    } else {
        None
    };
    let mut pd = Pd {
        name: req(n, "name")?.to_owned(),
        program_image: String::new(),
        priority,
        budget_us,
        period_us,
        passive: boolean(n, "passive", false)?,
        parent,
        child_id,
        maps: Vec::new(),
        irqs: Vec::new(),
        cap_sc: Vec::new(),
        cap_tcb: Vec::new(),
    };
    let mut children = Vec::new();
    for c in n.children().filter(Node::is_element) {
        match c.tag_name().name() {
            "program_image" => {
                check_attrs(&c, &["path", "path_for_symbols"])?;
                pd.program_image = req(&c, "path")?.to_owned();
            }
            "map" => {
                check_attrs(
                    &c,
                    &[
                        "mr",
                        "vaddr",
                        "perms",
                        "cached",
                        "setvar_vaddr",
                        "setvar_size",
                    ],
                )?;
                let perms = c.attribute("perms").unwrap_or("rw");
                if perms.is_empty() || perms == "w" || !perms.chars().all(|ch| "rwx".contains(ch)) {
                    return Err(bad(&c, "perms", perms));
                }
                let vaddr_s = req(&c, "vaddr")?;
                pd.maps.push(Map {
                    mr: req(&c, "mr")?.to_owned(),
                    vaddr: num(&c, "vaddr", vaddr_s)?,
                    writable: perms.contains('w'),
                    setvar_vaddr: c.attribute("setvar_vaddr").map(str::to_owned),
                });
            }
            "irq" => {
                check_attrs(&c, &["irq", "id", "trigger", "setvar_id"])?;
                let irq_s = req(&c, "irq")?;
                let irq =
                    u32::try_from(num(&c, "irq", irq_s)?).map_err(|_| bad(&c, "irq", irq_s))?;
                pd.irqs.push(Irq {
                    irq,
                    id: small(&c, "id", MAX_ID)?,
                });
            }
            "setvar" => check_attrs(&c, &["symbol", "region_paddr"])?,
            "cspace" => {
                check_attrs(&c, &[])?;
                for cap in c.children().filter(Node::is_element) {
                    check_attrs(&cap, &["slot", "pd"])?;
                    let slot = small(&cap, "slot", 63)?;
                    if slot == 0 {
                        return Err(bad(&cap, "slot", "0"));
                    }
                    let target = req(&cap, "pd")?.to_owned();
                    match cap.tag_name().name() {
                        "cap_sc" => pd.cap_sc.push((slot, target)),
                        "cap_tcb" => pd.cap_tcb.push((slot, target)),
                        other => {
                            return Err(SdfError::UnknownElement {
                                element: other.to_owned(),
                                line: line(&cap),
                            })
                        }
                    }
                }
            }
            "protection_domain" => children.push(c),
            other => {
                return Err(SdfError::UnknownElement {
                    element: other.to_owned(),
                    line: line(&c),
                })
            }
        }
    }
    if pd.program_image.is_empty() {
        return Err(SdfError::MissingAttribute {
            element: "protection_domain".into(),
            attribute: "program_image".into(),
            line: line(n),
        });
    }
    sys.pds.push(pd);
    let me = sys.pds.len() - 1;
    for c in children {
        parse_pd(&c, Some(me), sys)?;
    }
    Ok(())
}

fn validate(sys: &SystemDescription) -> Result<(), SdfError> {
    let mut names = BTreeSet::new();
    for pd in &sys.pds {
        if !names.insert(pd.name.as_str()) {
            return Err(SdfError::Invalid(format!(
                "duplicate protection domain name `{}`",
                pd.name
            )));
        }
    }
    let mut mrs = BTreeSet::new();
    for r in &sys.regions {
        if !mrs.insert(r.name.as_str()) {
            return Err(SdfError::Invalid(format!(
                "duplicate memory region name `{}`",
                r.name
            )));
        }
    }
    // channel ids (channels and irqs) are unique per PD
    let mut used: BTreeMap<(usize, u8), &str> = BTreeMap::new();
    for (i, pd) in sys.pds.iter().enumerate() {
        for m in &pd.maps {
            if !mrs.contains(m.mr.as_str()) {
                return Err(SdfError::Invalid(format!(
                    "pd `{}` maps unknown memory region `{}`",
                    pd.name, m.mr
                )));
            }
        }
        for irq in &pd.irqs {
            if used.insert((i, irq.id), "irq").is_some() {
                return Err(SdfError::Invalid(format!(
                    "pd `{}` uses channel id {} twice",
                    pd.name, irq.id
                )));
            }
        }
        for (_, target) in pd.cap_sc.iter().chain(pd.cap_tcb.iter()) {
            if !names.contains(target.as_str()) {
                return Err(SdfError::Invalid(format!(
                    "pd `{}` is granted a cap of unknown pd `{target}`",
                    pd.name
                )));
            }
        }
        let mut child_ids = BTreeSet::new();
        for c in sys.pds.iter().filter(|c| c.parent == Some(i)) {
            if let Some(id) = c.child_id {
                if !child_ids.insert(id) {
                    return Err(SdfError::Invalid(format!(
                        "pd `{}` has two children with id {id}",
                        pd.name
                    )));
                }
            }
        }
    }
    for ch in &sys.channels {
        for e in [ch.a, ch.b] {
            if used.insert((e.pd, e.id), "channel").is_some() {
                return Err(SdfError::Invalid(format!(
                    "pd `{}` uses channel id {} twice",
                    pd_name(sys, e.pd),
                    e.id
                )));
            }
        }
        for (from, to) in [(ch.a, ch.b), (ch.b, ch.a)] {
            let (pf, pt) = (priority(sys, from.pd), priority(sys, to.pd));
            if from.pp && pf >= pt {
                return Err(SdfError::Invalid(format!(
                    "PPCs must be to protection domains of strictly higher priorities; channel with PPC exists \
                     from pd `{}` (priority: {pf}) to pd `{}` (priority: {pt})",
                    pd_name(sys, from.pd),
                    pd_name(sys, to.pd)
                )));
            }
        }
    }
    Ok(())
}

fn pd_name(sys: &SystemDescription, i: usize) -> &str {
    sys.pds.get(i).map_or("?", |p| p.name.as_str())
}

fn priority(sys: &SystemDescription, i: usize) -> u8 {
    sys.pds.get(i).map_or(0, |p| p.priority)
}

impl SystemDescription {
    /// the PD named `name`.
    pub fn pd(&self, name: &str) -> Option<&Pd> {
        self.pds.iter().find(|p| p.name == name)
    }

    /// index of the PD named `name`.
    pub fn pd_index(&self, name: &str) -> Option<usize> {
        self.pds.iter().position(|p| p.name == name)
    }
}

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
#[derive(Debug, Clone)]
pub struct GraphRoles<'a> {
    /// the PD facing the host.
    pub entry: &'a str,
    /// the PD every path must pass.
    pub guard: &'a str,
    /// the PDs holding capabilities.
    pub capability: &'a [&'a str],
}

/// llm-os's roles (DESIGN.md "Protection domains").
pub const LLM_OS_ROLES: GraphRoles<'static> = GraphRoles {
    entry: "link",
    guard: "verifier",
    capability: &["timer", "memory", "process", "firmware"],
};

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
    roles: &GraphRoles<'_>,
) -> Result<(), GraphError> {
    let idx = |n: &str| {
        sys.pd_index(n)
            .ok_or_else(|| GraphError::MissingPd(n.to_owned()))
    };
    let entry = idx(roles.entry)?;
    let guard = idx(roles.guard)?;
    let caps: Vec<usize> = roles
        .capability
        .iter()
        .map(|c| idx(c))
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

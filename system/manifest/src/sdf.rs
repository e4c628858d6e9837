//! the Microkit system description (.system XML), parsed and checked.
//!
//! parses Microkit 2.3.0's SDF for the `qemu_virt_aarch64` board as its
//! own tool does: every rule its parser applies for this board (numbers,
//! attributes, elements, ids, priorities, stack sizes, page sizes, maps that
//! overlap or leave the address space, IRQs claimed twice, setvars and cspace
//! slots used twice, at most 63 PDs, ...) is applied here, so a file this
//! parser accepts is one the tool accepts. the parts of the SDF llm-os does
//! not use (virtual machines, domains, prefilled regions, IOMMU and x86
//! elements) are refused as unsupported. every error names the file's line.
//! system/fixtures/sdf holds one file per rule; a test runs them through the
//! real tool too.

use std::collections::{BTreeMap, BTreeSet};
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
    /// `page_size` (default 4 KiB).
    pub page_size: u64,
    /// line in the .system file.
    pub line: u32,
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
    /// the PD may execute it.
    pub executable: bool,
    /// `cached`.
    pub cached: bool,
    /// the symbol patched with `vaddr`.
    pub setvar_vaddr: Option<String>,
    /// the symbol patched with the region's size.
    pub setvar_size: Option<String>,
    /// line in the .system file.
    pub line: u32,
}

/// an `<irq>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Irq {
    /// the hardware interrupt number.
    pub irq: u32,
    /// the channel id it is delivered on.
    pub id: u8,
    /// line in the .system file.
    pub line: u32,
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
    /// `stack_size` in bytes (default 8 KiB).
    pub stack_size: u64,
    /// symbols the tool patches in this PD (`setvar_*`, `<setvar>`), with their lines.
    pub setvars: Vec<(String, u32)>,
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
    /// `<cspace><cap_vspace slot pd>` grants: (slot, pd name).
    pub cap_vspace: Vec<(u8, String)>,
    /// line in the .system file.
    pub line: u32,
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
    /// line of the `<end>`.
    pub line: u32,
}

/// a `<channel>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelDecl {
    /// first `<end>`.
    pub a: End,
    /// second `<end>`.
    pub b: End,
    /// line in the .system file.
    pub line: u32,
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

/// why a .system file was refused: the line of the element at fault and what
/// is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdfError {
    /// 1-based line in the .system file (0: the file as a whole).
    pub line: u32,
    /// what is wrong.
    pub message: String,
}

impl fmt::Display for SdfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.message)
        } else {
            write!(f, "line {}: {}", self.line, self.message)
        }
    }
}

impl std::error::Error for SdfError {}

fn err(line: u32, message: impl Into<String>) -> SdfError {
    SdfError {
        line,
        message: message.into(),
    }
}

type Node<'a, 'i> = roxmltree::Node<'a, 'i>;

fn line(n: &Node<'_, '_>) -> u32 {
    n.document().text_pos_at(n.range().start).row
}

fn check_attrs(n: &Node<'_, '_>, allowed: &[&str]) -> Result<(), SdfError> {
    for a in n.attributes() {
        if !allowed.contains(&a.name()) {
            return Err(err(
                line(n),
                format!(
                    "element `{}` has no attribute `{}`",
                    n.tag_name().name(),
                    a.name()
                ),
            ));
        }
    }
    Ok(())
}

fn req<'a>(n: &Node<'a, '_>, attr: &str) -> Result<&'a str, SdfError> {
    n.attribute(attr).ok_or_else(|| {
        err(
            line(n),
            format!("element `{}` needs attribute `{attr}`", n.tag_name().name()),
        )
    })
}

fn bad(n: &Node<'_, '_>, attr: &str, value: &str, why: &str) -> SdfError {
    err(
        line(n),
        format!(
            "`{}` attribute `{attr}` has bad value `{value}`: {why}",
            n.tag_name().name()
        ),
    )
}

/// a number as the tool reads most attributes: `_` ignored, `0x` for hex.
fn num(n: &Node<'_, '_>, attr: &str, v: &str) -> Result<u64, SdfError> {
    let clean: String = v.chars().filter(|c| *c != '_').collect();
    let parsed = match clean.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => clean.parse::<u64>(),
    };
    parsed.map_err(|_| bad(n, attr, v, "not a number"))
}

fn opt_num(n: &Node<'_, '_>, attr: &str) -> Result<Option<u64>, SdfError> {
    n.attribute(attr).map(|v| num(n, attr, v)).transpose()
}

/// a channel or IRQ id: the tool reads these as plain decimal integers.
fn id(n: &Node<'_, '_>, attr: &str) -> Result<u8, SdfError> {
    let v = req(n, attr)?;
    let x: i64 = v
        .parse()
        .map_err(|_| bad(n, attr, v, "not a decimal integer"))?;
    if !(0..=MAX_ID).contains(&x) {
        return Err(bad(n, attr, v, "ids are 0..=61"));
    }
    u8::try_from(x).map_err(|_| bad(n, attr, v, "ids are 0..=61"))
}

fn boolean(n: &Node<'_, '_>, attr: &str, default: bool) -> Result<bool, SdfError> {
    match n.attribute(attr) {
        None => Ok(default),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(v) => Err(bad(n, attr, v, "must be `true` or `false`")),
    }
}

fn unsupported(n: &Node<'_, '_>, why: &str) -> SdfError {
    err(
        line(n),
        format!("element `{}` {why}", n.tag_name().name()),
    )
}

fn unknown(n: &Node<'_, '_>) -> SdfError {
    err(
        line(n),
        format!("unknown element `{}`", n.tag_name().name()),
    )
}

/// `MICROKIT_MAX_CHANNEL_ID`.
const MAX_ID: i64 = 61;
/// the maximum PD priority Microkit allows (the monitor has 255).
const MAX_PRIORITY: u64 = 254;
/// the most PDs a Microkit system holds (its `MAX_PDS`).
pub const MAX_PDS: usize = 63;
/// cspace slots a `<cspace>` may fill: 1..128 (slot 0 is Microkit's).
const CAP_SLOTS: u64 = 128;
/// the default and limits of `stack_size`.
const STACK_DEFAULT: u64 = 0x2000;
const STACK_MIN: u64 = 0x1000;
const STACK_MAX: u64 = 16 << 20;
/// the page sizes of aarch64: small and large.
const PAGE_SIZES: [u64; 2] = [0x1000, 0x20_0000];
/// the highest user address of this board's vspace
/// (address_space_constants.json `vspace_user_top`, inclusive).
const VSPACE_USER_TOP: u64 = 0xff_ffff_ffff;
/// cpus of this board's kernel (not an SMP config).
const CPUS: u64 = 1;

/// the first address a PD may not map: below its stack, which sits under a
/// guard page under the IPC buffer at the top of the vspace.
fn map_limit(stack_size: u64) -> u64 {
    (VSPACE_USER_TOP & !(PAGE_SIZES[0] - 1))
        .saturating_sub(PAGE_SIZES[0])
        .saturating_sub(stack_size)
}

/// parse and check a .system file's text as Microkit 2.3.0 does for this board.
pub fn parse(text: &str) -> Result<SystemDescription, SdfError> {
    let doc = roxmltree::Document::parse(text).map_err(|e| {
        let pos = e.pos();
        err(pos.row, format!("not XML: {e}"))
    })?;
    let root = doc.root_element();
    if root.tag_name().name() != "system" {
        return Err(unknown(&root));
    }
    check_attrs(&root, &[])?;
    // the tool refuses text between the system's elements
    for t in root.children().filter(Node::is_text) {
        if t.text().is_some_and(|s| !s.trim().is_empty()) {
            return Err(err(line(&t), "text inside `system`"));
        }
    }
    let mut sys = SystemDescription::default();
    // regions and PDs first: channels and cspaces refer to PDs by name
    for n in root.children().filter(Node::is_element) {
        match n.tag_name().name() {
            "memory_region" => sys.regions.push(parse_region(&n)?),
            "protection_domain" => parse_pd(&n, None, &mut sys)?,
            "channel" => {}
            "virtual_machine" => {
                return Err(unsupported(&n, "must be a child of a protection domain"))
            }
            "io_address_space" => {
                return Err(unsupported(&n, "needs a kernel with IOMMU support"))
            }
            "domains" => return Err(unsupported(&n, "is not used by llm-os")),
            _ => return Err(unknown(&n)),
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
            .map(|e| parse_end(&e, &mut sys))
            .collect::<Result<_, _>>()?;
        let [a, b] = ends.as_slice() else {
            return Err(err(line(&n), "a channel needs exactly two `end` elements"));
        };
        if a.pp && b.pp {
            return Err(err(line(&n), "cannot ppc bidirectionally"));
        }
        sys.channels.push(ChannelDecl {
            a: *a,
            b: *b,
            line: line(&n),
        });
    }
    validate(&sys)?;
    Ok(sys)
}

fn parse_region(n: &Node<'_, '_>) -> Result<MemoryRegion, SdfError> {
    check_attrs(
        n,
        &[
            "name",
            "size",
            "page_size",
            "phys_addr",
            "prefill_path",
            "prefill_bootinfo",
        ],
    )?;
    let name = req(n, "name")?.to_owned();
    let page_size = opt_num(n, "page_size")?.unwrap_or(PAGE_SIZES[0]);
    if !PAGE_SIZES.contains(&page_size) {
        let v = n.attribute("page_size").unwrap_or_default();
        return Err(bad(n, "page_size", v, "this board has pages of 0x1000 and 0x200000"));
    }
    if n.attribute("prefill_path").is_some() || n.attribute("prefill_bootinfo").is_some() {
        return Err(unsupported(n, "is prefilled, which llm-os does not use"));
    }
    let size_s = req(n, "size")?;
    let size = num(n, "size", size_s)?;
    if size % page_size != 0 {
        return Err(bad(n, "size", size_s, "not a multiple of the page size"));
    }
    let phys_addr = opt_num(n, "phys_addr")?;
    if let Some(p) = phys_addr {
        if p % page_size != 0 {
            let v = n.attribute("phys_addr").unwrap_or_default();
            return Err(bad(n, "phys_addr", v, "not aligned to the page size"));
        }
    }
    Ok(MemoryRegion {
        name,
        size,
        phys_addr,
        page_size,
        line: line(n),
    })
}

fn parse_end(n: &Node<'_, '_>, sys: &mut SystemDescription) -> Result<End, SdfError> {
    if n.tag_name().name() != "end" {
        return Err(unknown(n));
    }
    check_attrs(n, &["pd", "id", "pp", "notify", "setvar_id"])?;
    let name = req(n, "pd")?;
    let end_id = id(n, "id")?;
    let notify = boolean(n, "notify", true)?;
    let pp = boolean(n, "pp", false)?;
    let pd = sys
        .pds
        .iter()
        .position(|p| p.name == name)
        .ok_or_else(|| bad(n, "pd", name, "no such protection domain"))?;
    if let Some(sym) = n.attribute("setvar_id") {
        if let Some(p) = sys.pds.get_mut(pd) {
            add_setvar(&mut p.setvars, sym, n)?;
        }
    }
    Ok(End {
        pd,
        id: end_id,
        pp,
        notify,
        line: line(n),
    })
}

fn add_setvar(
    setvars: &mut Vec<(String, u32)>,
    symbol: &str,
    n: &Node<'_, '_>,
) -> Result<(), SdfError> {
    if setvars.iter().any(|(s, _)| s == symbol) {
        return Err(err(
            line(n),
            format!("setvar on symbol `{symbol}` already exists"),
        ));
    }
    setvars.push((symbol.to_owned(), line(n)));
    Ok(())
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
    let name = req(n, "name")?.to_owned();
    let child_id = match parent {
        Some(_) => {
            let v = req(n, "id")?;
            let x = num(n, "id", v)?;
            Some(u8::try_from(x).map_err(|_| bad(n, "id", v, "child ids are 0..=61"))?)
        }
        None => None,
    };
    if let Some(c) = child_id {
        if i64::from(c) > MAX_ID {
            let v = n.attribute("id").unwrap_or_default();
            return Err(bad(n, "id", v, "child ids are 0..=61"));
        }
    }
    let budget_us = opt_num(n, "budget")?.unwrap_or(1000);
    let period_us = opt_num(n, "period")?.unwrap_or(budget_us);
    if budget_us > period_us {
        return Err(err(
            line(n),
            format!("budget ({budget_us}) must be less than, or equal to, period ({period_us})"),
        ));
    }
    let passive = boolean(n, "passive", false)?;
    let stack_size = opt_num(n, "stack_size")?.unwrap_or(STACK_DEFAULT);
    boolean(n, "smc", false)?;
    let cpu = opt_num(n, "cpu")?.unwrap_or(0);
    if cpu >= CPUS {
        let v = n.attribute("cpu").unwrap_or_default();
        return Err(bad(n, "cpu", v, "this board's kernel runs one cpu (0)"));
    }
    if let Some(d) = n.attribute("domain") {
        return Err(bad(n, "domain", d, "no domain schedule is declared"));
    }
    if !(STACK_MIN..=STACK_MAX).contains(&stack_size) || stack_size % PAGE_SIZES[0] != 0 {
        let v = n.attribute("stack_size").unwrap_or_default();
        return Err(bad(
            n,
            "stack_size",
            v,
            "must be 0x1000..=0x1000000 bytes, a multiple of 0x1000",
        ));
    }
    let priority = match n.attribute("priority") {
        Some(v) => {
            let p = num(n, "priority", v)?;
            if p > MAX_PRIORITY {
                return Err(bad(n, "priority", v, "priorities are 0..=254"));
            }
            u8::try_from(p).map_err(|_| bad(n, "priority", v, "priorities are 0..=254"))?
        }
        None => 0,
    };
    boolean(n, "fpu", true)?;
    let mut pd = Pd {
        name,
        program_image: String::new(),
        priority,
        budget_us,
        period_us,
        passive,
        stack_size,
        setvars: Vec::new(),
        parent,
        child_id,
        maps: Vec::new(),
        irqs: Vec::new(),
        cap_sc: Vec::new(),
        cap_tcb: Vec::new(),
        cap_vspace: Vec::new(),
        line: line(n),
    };
    let mut children = Vec::new();
    let mut cspace_seen = false;
    let mut image_seen = false;
    for c in n.children().filter(Node::is_element) {
        match c.tag_name().name() {
            "program_image" => {
                check_attrs(&c, &["path", "path_for_symbols"])?;
                if image_seen {
                    return Err(err(line(&c), "program_image must only be specified once"));
                }
                image_seen = true;
                pd.program_image = req(&c, "path")?.to_owned();
            }
            "map" => pd.maps.push(parse_map(&c, &mut pd.setvars, stack_size)?),
            "irq" => {
                let irq_id = id(&c, "id")?;
                if let Some(sym) = c.attribute("setvar_id") {
                    add_setvar(&mut pd.setvars, sym, &c)?;
                }
                if c.attribute("irq").is_none() {
                    if c.attribute("pin").is_some() || c.attribute("pcidev").is_some() {
                        return Err(unsupported(&c, "of x86 is not supported on ARM"));
                    }
                    req(&c, "irq")?;
                }
                check_attrs(&c, &["irq", "id", "setvar_id", "trigger"])?;
                let irq_s = req(&c, "irq")?;
                let irq: u32 = irq_s
                    .parse()
                    .map_err(|_| bad(&c, "irq", irq_s, "not a decimal integer"))?;
                match c.attribute("trigger") {
                    None | Some("level") | Some("edge") => {}
                    Some(t) => return Err(bad(&c, "trigger", t, "must be `level` or `edge`")),
                }
                pd.irqs.push(Irq {
                    irq,
                    id: irq_id,
                    line: line(&c),
                });
            }
            "ioport" => return Err(unsupported(&c, "exists on x86 only")),
            "setvar" => {
                check_attrs(&c, &["symbol", "region_paddr"])?;
                let sym = req(&c, "symbol")?;
                req(&c, "region_paddr")?;
                add_setvar(&mut pd.setvars, sym, &c)?;
            }
            "cspace" => {
                if cspace_seen {
                    return Err(err(line(&c), "cspace must only be specified once"));
                }
                cspace_seen = true;
                check_attrs(&c, &[])?;
                for cap in c.children().filter(Node::is_element) {
                    let kind = cap.tag_name().name();
                    if !["cap_tcb", "cap_sc", "cap_vspace"].contains(&kind) {
                        return Err(unknown(&cap));
                    }
                    check_attrs(&cap, &["slot", "pd"])?;
                    let target = req(&cap, "pd")?.to_owned();
                    let v = req(&cap, "slot")?;
                    let slot = num(&cap, "slot", v)?;
                    if slot == 0 || slot >= CAP_SLOTS {
                        return Err(bad(&cap, "slot", v, "cspace slots are 1..=127"));
                    }
                    let slot =
                        u8::try_from(slot).map_err(|_| bad(&cap, "slot", v, "cspace slots are 1..=127"))?;
                    match kind {
                        "cap_sc" => pd.cap_sc.push((slot, target)),
                        "cap_tcb" => pd.cap_tcb.push((slot, target)),
                        _ => pd.cap_vspace.push((slot, target)),
                    }
                }
            }
            "protection_domain" => {
                if let Some(sym) = c.attribute("setvar_id") {
                    add_setvar(&mut pd.setvars, sym, &c)?;
                }
                children.push(c);
            }
            "virtual_machine" => return Err(unsupported(&c, "is not used by llm-os")),
            _ => return Err(unknown(&c)),
        }
    }
    if !image_seen {
        return Err(err(
            line(n),
            format!("protection domain `{}` has no `program_image`", pd.name),
        ));
    }
    sys.pds.push(pd);
    let me = sys.pds.len() - 1;
    for c in children {
        parse_pd(&c, Some(me), sys)?;
    }
    Ok(())
}

fn parse_map(
    c: &Node<'_, '_>,
    setvars: &mut Vec<(String, u32)>,
    stack_size: u64,
) -> Result<Map, SdfError> {
    check_attrs(
        c,
        &[
            "mr",
            "vaddr",
            "perms",
            "cached",
            "setvar_vaddr",
            "setvar_size",
            "setvar_prefill_size",
        ],
    )?;
    let mr = req(c, "mr")?.to_owned();
    let vaddr_s = req(c, "vaddr")?;
    let vaddr = num(c, "vaddr", vaddr_s)?;
    if vaddr >= map_limit(stack_size) {
        return Err(bad(c, "vaddr", vaddr_s, "at or above the PD's stack"));
    }
    let perms = c.attribute("perms").unwrap_or("rw");
    if !perms.chars().all(|ch| "rwx".contains(ch)) {
        return Err(bad(c, "perms", perms, "only a combination of `r`, `w` and `x`"));
    }
    if !perms.is_empty() && perms.chars().all(|ch| ch == 'w') {
        return Err(bad(c, "perms", perms, "write-only mappings are not allowed"));
    }
    let cached = boolean(c, "cached", true)?;
    let setvar_vaddr = c.attribute("setvar_vaddr").map(str::to_owned);
    if let Some(s) = &setvar_vaddr {
        add_setvar(setvars, s, c)?;
    }
    let setvar_size = c.attribute("setvar_size").map(str::to_owned);
    if let Some(s) = &setvar_size {
        add_setvar(setvars, s, c)?;
    }
    if c.attribute("setvar_prefill_size").is_some() {
        return Err(err(
            line(c),
            "`setvar_prefill_size` needs a prefilled region, which llm-os does not use",
        ));
    }
    Ok(Map {
        mr,
        vaddr,
        writable: perms.contains('w'),
        executable: perms.contains('x'),
        cached,
        setvar_vaddr,
        setvar_size,
        line: line(c),
    })
}

fn validate(sys: &SystemDescription) -> Result<(), SdfError> {
    if sys.pds.is_empty() {
        return Err(err(0, "at least one protection domain must be defined"));
    }
    if sys.pds.len() > MAX_PDS {
        return Err(err(
            sys.pds.get(MAX_PDS).map_or(0, |p| p.line),
            format!(
                "too many protection domains ({}); Microkit allows {MAX_PDS}",
                sys.pds.len()
            ),
        ));
    }
    let mut names = BTreeSet::new();
    for pd in &sys.pds {
        if !names.insert(pd.name.as_str()) {
            return Err(err(
                pd.line,
                format!("duplicate protection domain name `{}`", pd.name),
            ));
        }
        if pd.name == "monitor" {
            return Err(err(
                pd.line,
                "the PD name `monitor` is reserved for the Microkit monitor",
            ));
        }
    }
    let mut mrs: BTreeMap<&str, &MemoryRegion> = BTreeMap::new();
    for r in &sys.regions {
        if mrs.insert(r.name.as_str(), r).is_some() {
            return Err(err(
                r.line,
                format!("duplicate memory region name `{}`", r.name),
            ));
        }
    }
    // an interrupt belongs to one PD
    let mut irqs: BTreeMap<u32, &str> = BTreeMap::new();
    for pd in &sys.pds {
        for irq in &pd.irqs {
            if let Some(other) = irqs.insert(irq.irq, &pd.name) {
                return Err(err(
                    irq.line,
                    format!("irq {} of pd `{}` is already claimed by pd `{other}`", irq.irq, pd.name),
                ));
            }
        }
    }
    // channel ids (channels and irqs) are unique per PD
    let mut used: BTreeSet<(usize, u8)> = BTreeSet::new();
    for (i, pd) in sys.pds.iter().enumerate() {
        for irq in &pd.irqs {
            if !used.insert((i, irq.id)) {
                return Err(err(
                    irq.line,
                    format!("pd `{}` uses channel id {} twice", pd.name, irq.id),
                ));
            }
        }
    }
    for ch in &sys.channels {
        for e in [ch.a, ch.b] {
            if !used.insert((e.pd, e.id)) {
                return Err(err(
                    e.line,
                    format!("pd `{}` uses channel id {} twice", pd_name(sys, e.pd), e.id),
                ));
            }
        }
        for (from, to) in [(ch.a, ch.b), (ch.b, ch.a)] {
            let (pf, pt) = (priority(sys, from.pd), priority(sys, to.pd));
            if from.pp && pf >= pt {
                return Err(err(
                    ch.line,
                    format!(
                        "PPCs must be to protection domains of strictly higher priorities; channel with PPC exists \
                         from pd `{}` (priority: {pf}) to pd `{}` (priority: {pt})",
                        pd_name(sys, from.pd),
                        pd_name(sys, to.pd)
                    ),
                ));
            }
        }
    }
    for (i, pd) in sys.pds.iter().enumerate() {
        // maps: known region, aligned to its page size, inside the address
        // space below the stack, not overlapping another map of this PD
        let limit = map_limit(pd.stack_size);
        let mut placed: Vec<(u64, u64, &str)> = Vec::new();
        for m in &pd.maps {
            let Some(r) = mrs.get(m.mr.as_str()) else {
                return Err(err(
                    m.line,
                    format!("pd `{}` maps unknown memory region `{}`", pd.name, m.mr),
                ));
            };
            if m.vaddr % r.page_size != 0 {
                return Err(err(
                    m.line,
                    format!(
                        "map of `{}` at {:#x} is not aligned to the region's page size {:#x}",
                        m.mr, m.vaddr, r.page_size
                    ),
                ));
            }
            let end = m.vaddr.saturating_add(r.size);
            if end > limit {
                return Err(err(
                    m.line,
                    format!(
                        "map of `{}` [{:#x}..{end:#x}) runs past {limit:#x}, where the PD's stack begins",
                        m.mr, m.vaddr
                    ),
                ));
            }
            if let Some((s, e, other)) = placed.iter().find(|(s, e, _)| m.vaddr < *e && end > *s) {
                return Err(err(
                    m.line,
                    format!(
                        "map of `{}` [{:#x}..{end:#x}) overlaps the map of `{other}` [{s:#x}..{e:#x}) in pd `{}`",
                        m.mr, m.vaddr, pd.name
                    ),
                ));
            }
            placed.push((m.vaddr, end, &m.mr));
        }
        let mut slots = BTreeSet::new();
        for (slot, target) in pd.cap_sc.iter().chain(&pd.cap_tcb).chain(&pd.cap_vspace) {
            if !names.contains(target.as_str()) {
                return Err(err(
                    pd.line,
                    format!("pd `{}` is granted a cap of unknown pd `{target}`", pd.name),
                ));
            }
            if !slots.insert(*slot) {
                return Err(err(
                    pd.line,
                    format!("pd `{}` has two caps in cspace slot {slot}", pd.name),
                ));
            }
        }
        let mut child_ids = BTreeSet::new();
        for c in sys.pds.iter().filter(|c| c.parent == Some(i)) {
            if let Some(id) = c.child_id {
                if !child_ids.insert(id) {
                    return Err(err(
                        c.line,
                        format!("pd `{}` has two children with id {id}", pd.name),
                    ));
                }
            }
        }
    }
    // device regions do not overlap in physical memory
    let mut phys: Vec<(u64, u64, &str)> = Vec::new();
    for r in &sys.regions {
        if let Some(p) = r.phys_addr {
            let end = p.saturating_add(r.size);
            if let Some((_, _, other)) = phys.iter().find(|(s, e, _)| p < *e && end > *s) {
                return Err(err(
                    r.line,
                    format!(
                        "memory region `{}` overlaps memory region `{other}` in physical memory",
                        r.name
                    ),
                ));
            }
            phys.push((p, end, &r.name));
        }
    }
    Ok(())
}

pub(crate) fn pd_name(sys: &SystemDescription, i: usize) -> &str {
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

    /// the region named `name`.
    pub fn region(&self, name: &str) -> Option<&MemoryRegion> {
        self.regions.iter().find(|r| r.name == name)
    }
}

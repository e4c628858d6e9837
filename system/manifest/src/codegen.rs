//! the Rust constants generated from the manifest.
//!
//! [`system_rs`] renders the .system file: one module per program image
//! (`link.elf` → `link`) with the image's channel ids named by peer
//! (`channel::VERIFIER`, or `channel::WORKERS[i]` for the workers), its IRQs
//! named by the board (`channel::UART_IRQ`, `irq::UART_IRQ`), its regions by
//! setvar (`region::LINK_BUF`: size and permission), its children and cspace
//! slots, and a macro declaring the setvars its image must contain; plus the
//! worker set and the capability PDs. [`policy_rs`] renders the policy
//! numbers the PDs enforce. PDs sharing an image must agree on every one of
//! these facts, or generation fails naming the PD's line.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::sdf::{Pd, SystemDescription};
use crate::{Manifest, ManifestError};

fn stem(image: &str) -> &str {
    image.strip_suffix(".elf").unwrap_or(image)
}

fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn upper(s: &str) -> String {
    s.to_ascii_uppercase()
}

/// one constant of an image's module: its path within the module, its Rust
/// type, and its value; a doc comment.
struct Item {
    module: &'static str,
    name: String,
    ty: String,
    value: String,
    doc: String,
}

struct Body {
    items: Vec<Item>,
    setvars: Vec<String>,
    /// the setvar of each worker's own region this PD maps, by worker index.
    worker_setvars: Option<Vec<String>>,
}

impl Body {
    fn push(&mut self, module: &'static str, name: String, ty: &str, value: String, doc: String) {
        self.items.push(Item {
            module,
            name,
            ty: ty.to_owned(),
            value,
            doc,
        });
    }

    fn render(&self, stem: &str) -> String {
        let mut by_module: BTreeMap<&str, Vec<&Item>> = BTreeMap::new();
        for it in &self.items {
            by_module.entry(it.module).or_default().push(it);
        }
        let mut out = String::new();
        for (module, items) in by_module {
            let what = match module {
                "channel" => "channel ids",
                "irq" => "interrupt numbers",
                "region" => "mapped regions",
                "child" => "children",
                _ => "cspace slots",
            };
            let _ = writeln!(out, "    /// the {what} the manifest gives `{stem}.elf`.");
            let _ = writeln!(out, "    pub mod {module} {{");
            let _ = writeln!(out, "        #[allow(unused_imports)]");
            let _ = writeln!(
                out,
                "        use ::pd_runtime::{{Channel, Child, RegionSpec, SchedContext}};"
            );
            for it in items {
                let _ = writeln!(out, "        /// {}", it.doc);
                let _ = writeln!(out, "        pub const {}: {} = {};", it.name, it.ty, it.value);
            }
            let _ = writeln!(out, "    }}");
        }
        out
    }
}

/// a constant per worker, in worker order: `None` until every worker has one.
fn worker_array(
    values: &[Option<String>],
    ctor: &str,
) -> Option<String> {
    let all: Option<Vec<&String>> = values.iter().map(Option::as_ref).collect();
    all.map(|v| {
        let parts: Vec<String> = v.iter().map(|x| format!("{ctor}({x})")).collect();
        format!("[{}]", parts.join(", "))
    })
}

fn body(m: &Manifest, i: usize, pd: &Pd) -> Result<Body, ManifestError> {
    let sys: &SystemDescription = &m.system;
    let n = m.workers.len();
    let worker_index = |j: usize| m.workers.iter().position(|w| *w == j);
    let name_of = |j: usize| sys.pds.get(j).map_or("?", |p| p.name.as_str());
    let mut b = Body {
        items: Vec::new(),
        setvars: Vec::new(),
        worker_setvars: None,
    };
    let mut to_workers: Vec<Option<String>> = vec![None; n];
    let mut to_workers_line = 0;
    for ch in &sys.channels {
        for (me, other) in [(ch.a, ch.b), (ch.b, ch.a)] {
            if me.pd != i {
                continue;
            }
            let rights = match (me.pp, me.notify) {
                (true, true) => "ppc into and notify",
                (true, false) => "ppc into",
                (false, true) => "notify",
                (false, false) => "receive from",
            };
            match worker_index(other.pd) {
                Some(w) => {
                    if let Some(slot) = to_workers.get_mut(w) {
                        *slot = Some(me.id.to_string());
                    }
                    to_workers_line = ch.line;
                }
                None => {
                    let peer = name_of(other.pd);
                    if !is_ident(peer) {
                        return Err(m.at_system(
                            ch.line,
                            format!("pd name `{peer}` cannot name a channel constant (want [a-z][a-z0-9_]*)"),
                        ));
                    }
                    b.push(
                        "channel",
                        upper(peer),
                        "Channel",
                        format!("Channel::new({})", me.id),
                        format!("{rights} `{peer}`."),
                    );
                }
            }
        }
    }
    if to_workers.iter().any(Option::is_some) {
        let v = worker_array(&to_workers, "Channel::new").ok_or_else(|| {
            m.at_system(
                to_workers_line,
                format!("pd `{}` has a channel to some workers but not to all {n}", pd.name),
            )
        })?;
        b.push(
            "channel",
            "WORKERS".into(),
            &format!("[Channel; {n}]"),
            v,
            "the channel to each worker, by worker index.".into(),
        );
    }
    for irq in &pd.irqs {
        let Some((dev, _)) = board_qemu_virt_aarch64::IRQS.iter().find(|(_, no)| *no == irq.irq) else {
            return Err(m.at_system(
                irq.line,
                format!(
                    "irq {} is not a device interrupt of board {} (board/ names {})",
                    irq.irq,
                    board_qemu_virt_aarch64::MICROKIT_BOARD,
                    board_qemu_virt_aarch64::IRQS
                        .iter()
                        .map(|(d, no)| format!("{d} = {no}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        };
        let name = format!("{}_IRQ", upper(dev));
        b.push(
            "channel",
            name.clone(),
            "Channel",
            format!("Channel::new({})", irq.id),
            format!("the {dev} interrupt (INTID {}) arrives here.", irq.irq),
        );
        b.push(
            "irq",
            name,
            "u32",
            irq.irq.to_string(),
            format!("the {dev} interrupt's INTID."),
        );
    }
    for map in &pd.maps {
        let Some(sym) = &map.setvar_vaddr else { continue };
        if !is_ident(sym) {
            return Err(m.at_system(
                map.line,
                format!("setvar `{sym}` cannot name a constant (want [a-z][a-z0-9_]*)"),
            ));
        }
        let size = sys.region(&map.mr).map_or(0, |r| r.size);
        b.push(
            "region",
            upper(sym),
            "RegionSpec",
            format!("RegionSpec::from_manifest({sym:?}, {size:#x}, {})", map.writable),
            format!(
                "{size:#x} bytes at setvar `{sym}`, {}.",
                if map.writable { "read-write" } else { "read-only" }
            ),
        );
        b.setvars.push(sym.clone());
    }
    // a region mapped here and by exactly one worker is that worker's own
    // (its status page): when every worker has one, they form an array
    let mut own: Vec<Option<(String, String)>> = vec![None; n];
    if worker_index(i).is_none() {
        for map in &pd.maps {
            let Some(sym) = &map.setvar_vaddr else { continue };
            let holders: Vec<usize> = m
                .workers
                .iter()
                .enumerate()
                .filter(|(_, w)| {
                    sys.pds
                        .get(**w)
                        .is_some_and(|p| p.maps.iter().any(|x| x.mr == map.mr))
                })
                .map(|(k, _)| k)
                .collect();
            if let [w] = holders.as_slice() {
                if let Some(slot) = own.get_mut(*w) {
                    *slot = Some((sym.clone(), upper(sym)));
                }
            }
        }
    }
    let own: Option<Vec<(String, String)>> = own.into_iter().collect();
    if let Some(own) = own.filter(|o| !o.is_empty()) {
        let consts: Vec<String> = own.iter().map(|(_, c)| c.clone()).collect();
        b.push(
            "region",
            "WORKERS".into(),
            &format!("[RegionSpec; {n}]"),
            format!("[{}]", consts.join(", ")),
            "each worker's own region as mapped here, by worker index.".into(),
        );
        b.worker_setvars = Some(own.into_iter().map(|(s, _)| s).collect());
    }
    let mut child_ids: Vec<Option<String>> = vec![None; n];
    for (j, c) in sys.pds.iter().enumerate() {
        if c.parent != Some(i) {
            continue;
        }
        let id = c.child_id.unwrap_or(0);
        match worker_index(j) {
            Some(w) => {
                if let Some(slot) = child_ids.get_mut(w) {
                    *slot = Some(id.to_string());
                }
            }
            None => b.push(
                "child",
                upper(&c.name),
                "Child",
                format!("Child::new({id})"),
                format!("the child `{}`.", c.name),
            ),
        }
    }
    if let Some(v) = worker_array(&child_ids, "Child::new") {
        if n > 0 {
            b.push(
                "child",
                "WORKERS".into(),
                &format!("[Child; {n}]"),
                v,
                "each worker as this PD's child, by worker index.".into(),
            );
        }
    }
    let mut sc: Vec<Option<String>> = vec![None; n];
    for (slot, target) in &pd.cap_sc {
        match sys.pd_index(target).and_then(worker_index) {
            Some(w) => {
                if let Some(s) = sc.get_mut(w) {
                    *s = Some(slot.to_string());
                }
            }
            None => b.push(
                "cspace",
                format!("{}_SC", upper(target)),
                "SchedContext",
                format!("SchedContext::from_cspace_slot({slot})"),
                format!("the scheduling context of `{target}`."),
            ),
        }
    }
    if sc.iter().any(Option::is_some) {
        let v = worker_array(&sc, "SchedContext::from_cspace_slot").ok_or_else(|| {
            m.at_system(
                pd.line,
                format!("pd `{}` holds the scheduling contexts of some workers but not of all {n}", pd.name),
            )
        })?;
        b.push(
            "cspace",
            "WORKER_SC".into(),
            &format!("[SchedContext; {n}]"),
            v,
            "each worker's scheduling context, by worker index.".into(),
        );
    }
    let mut seen = std::collections::BTreeSet::new();
    for it in &b.items {
        if !seen.insert((it.module, it.name.as_str())) {
            return Err(m.at_system(
                pd.line,
                format!("pd `{}` would have two constants `{}::{}`", pd.name, it.module, it.name),
            ));
        }
    }
    Ok(b)
}

/// the generated module of the .system file (see the module docs).
pub fn system_rs(m: &Manifest) -> Result<String, ManifestError> {
    let sys = &m.system;
    let mut images: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, pd) in sys.pds.iter().enumerate() {
        images.entry(pd.program_image.as_str()).or_default().push(i);
    }
    let mut out = String::new();
    let _ = writeln!(out, "// generated by system-manifest from the .system file; do not edit.");
    for (image, pds) in &images {
        let s = stem(image);
        let first = pds.first().and_then(|i| sys.pds.get(*i));
        let Some(first) = first else { continue };
        if !is_ident(s) || !image.ends_with(".elf") {
            return Err(m.at_system(
                first.line,
                format!("program image `{image}` must be `<name>.elf` with a lowercase rust name"),
            ));
        }
        let b = body(m, pds.first().copied().unwrap_or(0), first)?;
        let text = b.render(s);
        for j in pds.iter().skip(1) {
            if let Some(pd) = sys.pds.get(*j) {
                if body(m, *j, pd)?.render(s) != text {
                    return Err(m.at_system(
                        pd.line,
                        format!(
                            "pd `{}` runs `{image}` like pd `{}` but is wired differently \
                             (channel ids, irqs, regions, children or cspace): one image, one wiring",
                            pd.name, first.name
                        ),
                    ));
                }
            }
        }
        let names: Vec<String> = pds
            .iter()
            .filter_map(|j| sys.pds.get(*j))
            .map(|p| format!("{:?}", p.name))
            .collect();
        let _ = writeln!(out, "/// `{image}`: what the manifest gives the PDs running it.");
        let _ = writeln!(out, "pub mod {s} {{");
        let _ = writeln!(out, "    /// the PDs running this image.");
        let _ = writeln!(out, "    pub const PDS: &[&str] = &[{}];", names.join(", "));
        out.push_str(&text);
        let _ = writeln!(out, "}}");
        // the setvars an image of this program must define, with the
        // region each stands for: `Region::from_setvar` takes only these
        let _ = writeln!(out, "/// declare the setvars of `{image}` (its `<map setvar_vaddr>`s).");
        let _ = writeln!(out, "#[macro_export]");
        let _ = writeln!(out, "macro_rules! {s}_setvars {{");
        let _ = writeln!(out, "    () => {{");
        for sym in &b.setvars {
            let var = format!("{}_SETVAR", upper(sym));
            let _ = writeln!(out, "        #[unsafe(export_name = {sym:?})]");
            let _ = writeln!(out, "        #[used]");
            let _ = writeln!(out, "        static {var}: ::pd_runtime::SetVar = ::pd_runtime::SetVar::new();");
            let _ = writeln!(out, "        #[allow(non_upper_case_globals)]");
            let _ = writeln!(
                out,
                "        static {sym}: ::pd_runtime::MappedVar = ::pd_runtime::MappedVar::new(&{var}, $crate::manifest::{s}::region::{});",
                upper(sym)
            );
        }
        if let Some(own) = &b.worker_setvars {
            let refs: Vec<String> = own.iter().map(|s| format!("&{s}")).collect();
            let _ = writeln!(
                out,
                "        static WORKER_REGIONS: [&::pd_runtime::MappedVar; {}] = [{}];",
                own.len(),
                refs.join(", ")
            );
        }
        let _ = writeln!(out, "    }};");
        let _ = writeln!(out, "}}");
    }
    let n = m.workers.len();
    let worker_names: Vec<String> = m
        .workers
        .iter()
        .filter_map(|j| sys.pds.get(*j))
        .map(|p| format!("{:?}", p.name))
        .collect();
    let _ = writeln!(out, "/// the number of workers: the PDs running `{}`.", crate::WORKER_IMAGE);
    let _ = writeln!(out, "pub const WORKERS: usize = {n};");
    let _ = writeln!(out, "/// the workers' PD names, by worker index (= child id).");
    let _ = writeln!(out, "pub const WORKER_PDS: [&str; WORKERS] = [{}];", worker_names.join(", "));
    let caps: Vec<String> = m.capability_pds().iter().map(|c| format!("{c:?}")).collect();
    let _ = writeln!(out, "/// the capability PDs: reachable from `link` only through `verifier`.");
    let _ = writeln!(out, "pub const CAPABILITY_PDS: &[&str] = &[{}];", caps.join(", "));
    Ok(out)
}

/// the generated policy numbers the PDs enforce.
pub fn policy_rs(m: &Manifest) -> String {
    let p = &m.policy;
    let mut out = String::new();
    let _ = writeln!(out, "// generated by system-manifest from policy.toml; do not edit.");
    let mut item = |doc: &str, name: &str, ty: &str, v: u64| {
        let _ = writeln!(out, "/// {doc}");
        let _ = writeln!(out, "pub const {name}: {ty} = {v};");
    };
    item("`[limits] workers`.", "N_WORKERS", "usize", p.workers.value);
    item("`[limits] page_size`: bytes per page of the pool.", "PAGE_SIZE", "usize", p.page_size.value);
    item("`[limits] pool_pages`: pages in the pool.", "POOL_PAGES", "usize", p.pool_pages.value);
    item("`[limits] quota_pages`: the memory PD refuses more per worker.", "QUOTA_PAGES", "u64", p.quota_pages.value);
    item("`[limits] priority_ceiling`.", "PRIORITY_CEILING", "u8", p.priority_ceiling.value);
    item("`[limits] budget_min_us`: the process PD refuses smaller budgets.", "BUDGET_MIN_US", "u64", p.budget_min_us.value);
    item("`[limits] period_max_us`: the process PD refuses longer periods.", "PERIOD_MAX_US", "u64", p.period_max_us.value);
    item("`[limits] timer_min_us`: the timer PD refuses shorter periods.", "TIMER_MIN_US", "u64", p.timer_min_us.value);
    item("`[limits] timer_max_us`: the timer PD refuses longer periods.", "TIMER_MAX_US", "u64", p.timer_max_us.value);
    item("`[initial] pages`: pages each worker holds at boot.", "INITIAL_PAGES", "u64", p.initial_pages.value);
    item("`[initial] priority`: each worker's priority after boot.", "INITIAL_PRIORITY", "u8", p.initial_priority.value);
    item("`[initial] budget_us`: the budget the process PD enforces at boot.", "INITIAL_BUDGET_US", "u64", p.initial_budget_us.value);
    item("`[initial] period_us`: the period at boot.", "INITIAL_PERIOD_US", "u64", p.initial_period_us.value);
    item(
        "`[initial] last_request_id`: where the verifier PD's replay guard starts.",
        "INITIAL_LAST_REQUEST_ID",
        "u64",
        p.initial_last_request_id.value,
    );
    out
}

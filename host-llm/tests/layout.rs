//! the host's layout as docs/architecture.md states it: no module of
//! host-llm/src imports another that imports it back (directly or round a
//! longer circle), and the doc's module table names every top-level module
//! and nothing that is not one. the verifier crate (policy-verifier/src) and
//! the prover (policy-verifier/prover/src) are held to the same rule.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// host-llm's sources.
fn host_src() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// module path (`redteam::case`; the crate root is empty) → source, for the
/// crate whose sources are in `root`.
fn modules(root: &Path) -> BTreeMap<String, String> {
    fn walk(dir: &Path, prefix: &[String], out: &mut BTreeMap<String, String>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        entries.sort();
        for p in entries {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if p.is_dir() {
                if prefix.is_empty() && name == "bin" {
                    continue; // the daemon's entry point: a dispatcher, not a module
                }
                let mut sub = prefix.to_vec();
                sub.push(name);
                walk(&p, &sub, out);
            } else if let Some(stem) = name.strip_suffix(".rs") {
                let mut path = prefix.to_vec();
                if !matches!(stem, "mod" | "lib" | "main") {
                    path.push(stem.to_owned());
                }
                let src = std::fs::read_to_string(&p).unwrap();
                out.entry(path.join("::")).or_default().push_str(&src);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, &[], &mut out);
    out
}

/// the source without comments, string and char literals, which may
/// mention paths they do not import.
fn code_only(src: &str) -> String {
    let b: Vec<char> = src.chars().collect();
    let at = |i: usize| b.get(i).copied().unwrap_or('\0');
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == '/' && at(i + 1) == '/' {
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == '*' {
            i += 2;
            while i < b.len() && !(b[i] == '*' && at(i + 1) == '/') {
                i += 1;
            }
            i += 2;
        } else if c == 'r' && (at(i + 1) == '"' || at(i + 1) == '#') && !at(i.wrapping_sub(1)).is_alphanumeric() {
            // a raw string: r"…", r#"…"#, …
            let mut j = i + 1;
            let mut hashes = 0;
            while at(j) == '#' {
                hashes += 1;
                j += 1;
            }
            if at(j) != '"' {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            while j < b.len() && !(b[j] == '"' && (1..=hashes).all(|k| at(j + k) == '#')) {
                j += 1;
            }
            i = j + 1 + hashes;
            out.push_str("\"\"");
        } else if c == '"' {
            i += 1;
            while i < b.len() && b[i] != '"' {
                i += if b[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' && at(i + 1) == '\\' {
            // an escaped char literal: '\n', '\'', '\u{…}'
            i += 2;
            while i < b.len() && b[i] != '\'' {
                i += 1;
            }
            i += 1;
        } else if c == '\'' && at(i + 2) == '\'' {
            i += 3; // a char literal; else a lifetime, kept
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// every path written after `crate::`, `super::` or `llmsh::`, with use
/// groups (`crate::a::{self, b::{c}}`) expanded; each as segments, `super`
/// resolved against `module`.
fn paths(module: &str, src: &str) -> Vec<Vec<String>> {
    let code = code_only(src);
    let toks = tokens(&code);
    let mut out = Vec::new();
    // the module a token is in: the file's, or an inline `mod x { … }` in it
    let mut here: Vec<String> = module.split("::").filter(|s| !s.is_empty()).map(str::to_owned).collect();
    let mut inline: Vec<usize> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < toks.len() {
        let t = toks[i].as_str();
        let before = if i > 0 { toks[i - 1].as_str() } else { "" };
        if t == "mod" && toks.get(i + 2).map(String::as_str) == Some("{") {
            here.push(toks[i + 1].clone());
            inline.push(depth);
            depth += 1;
            i += 3;
        } else if t == "{" {
            depth += 1;
            i += 1;
        } else if t == "}" {
            depth = depth.saturating_sub(1);
            if inline.last() == Some(&depth) {
                inline.pop();
                here.pop();
            }
            i += 1;
        } else if before == "use" && t.chars().next().is_some_and(char::is_alphabetic) && !matches!(t, "crate" | "super" | "llmsh" | "self") {
            // `use child::…` (a re-export of a folder's module), or an
            // external crate, which names no module here
            let mut j = i;
            tree(&toks, &mut j, here.clone(), &mut out);
            i = j;
        } else if matches!(t, "crate" | "super" | "llmsh") && before != "::" && toks.get(i + 1).map(String::as_str) == Some("::") {
            let mut base = Vec::new();
            if t == "super" {
                base = here.clone();
                base.pop();
            }
            let mut j = i + 2;
            tree(&toks, &mut j, base, &mut out);
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

/// identifiers, `::` and single punctuation.
fn tokens(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let b: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < b.len() && (b[i].is_alphanumeric() || b[i] == '_') {
                i += 1;
            }
            out.push(b[start..i].iter().collect());
        } else if c == ':' && b.get(i + 1) == Some(&':') {
            out.push("::".into());
            i += 2;
        } else {
            if !c.is_whitespace() {
                out.push(c.to_string());
            }
            i += 1;
        }
    }
    out
}

/// one path (or use tree) from `toks[*j]`, each leaf pushed onto `out`.
fn tree(toks: &[String], j: &mut usize, mut prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    let tok = |j: usize| toks.get(j).map_or("", String::as_str);
    loop {
        match tok(*j) {
            "{" => {
                *j += 1;
                while !matches!(tok(*j), "}" | "") {
                    tree(toks, j, prefix.clone(), out);
                    match tok(*j) {
                        "," => *j += 1,
                        "}" => {}
                        _ => break,
                    }
                }
                *j += 1;
                return;
            }
            "super" => {
                prefix.pop();
                *j += 1;
            }
            "self" => *j += 1,
            t if t.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_') => {
                prefix.push(t.to_owned());
                *j += 1;
            }
            t => {
                if t == "*" {
                    *j += 1;
                }
                out.push(prefix);
                return;
            }
        }
        if tok(*j) == "::" {
            *j += 1;
            continue;
        }
        out.push(prefix);
        if tok(*j) == "as" {
            *j += 2;
        }
        return;
    }
}

/// module → the other modules it names (the longest module prefix of each
/// path). a folder's mod.rs names the files whose items it re-exports
/// (`pub use case::CaseResult`), so a path to a re-exported item reaches
/// the file that defines it. the crate root's re-exports (`pub use
/// model::Policy`) are followed the same way: `crate::Policy` names `model`.
fn imports(root: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mods = modules(root);
    let names: BTreeSet<String> = mods.keys().cloned().collect();
    let module_of = |p: &[String]| (1..=p.len()).rev().map(|n| p[..n].join("::")).find(|c| names.contains(c));
    // item name → the module it is re-exported from, for each `pub use` of
    // the crate root that names an item (not a module) of this crate
    let mut facade = BTreeMap::new();
    let root_code = code_only(mods.get("").map_or("", String::as_str));
    for stmt in root_code.split(';') {
        let Some(at) = stmt.find("pub use ").or_else(|| stmt.find("pub(crate) use ")) else { continue };
        let stmt = &stmt[at..];
        assert!(!stmt.contains('*'), "a glob re-export at the crate root hides where its items live: {stmt}");
        for p in paths("", stmt) {
            if let Some(h) = module_of(&p) {
                if h.split("::").count() < p.len() {
                    facade.insert(p.last().unwrap().clone(), h);
                }
            }
        }
        // `pub use a::{Thing as Alias}`: the root's name is the alias
        let toks = tokens(stmt);
        for w in toks.windows(3).filter(|w| w[1] == "as") {
            if let Some(h) = facade.get(&w[0]).cloned() {
                facade.insert(w[2].clone(), h);
            }
        }
    }
    let mut out = BTreeMap::new();
    for (m, src) in &mods {
        let mut to = BTreeSet::new();
        for p in paths(m, src) {
            let hit = module_of(&p).or_else(|| p.first().and_then(|f| facade.get(f)).cloned());
            if let Some(h) = hit {
                // the crate root only declares and re-exports
                if h != *m && !h.is_empty() && !m.is_empty() {
                    to.insert(h);
                }
            }
        }
        out.insert(m.clone(), to);
    }
    out
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let g = imports(&host_src());
    // sanity: the walk sees real imports, so an empty graph cannot pass
    assert!(g["cmd::redteam"].contains("redteam"), "{:?}", g["cmd::redteam"]);
    assert!(g["redteam::case"].contains("redteam::judge"), "{:?}", g["redteam::case"]);
    no_circles(&g);
}

#[test]
fn no_prover_module_imports_one_that_imports_it_back() {
    let g = imports(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../policy-verifier/prover/src"));
    assert!(g["obligation"].contains("plan") && g["plan"].contains("spec"), "{g:?}");
    assert!(g["entry"].contains("wellformed"), "{g:?}");
    no_circles(&g);
}

#[test]
fn no_verifier_module_imports_one_that_imports_it_back() {
    let g = imports(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../policy-verifier/src"));
    assert!(g["verify"].contains("rules") && g["rules"].contains("model"), "{g:?}");
    assert!(g["custom"].contains("expr"), "{g:?}");
    no_circles(&g);
}

/// the check itself: a circle closed only through the crate root's
/// re-export (`crate::Thing` for `a::Thing`) or a `super::` path is found.
#[test]
fn a_circle_through_a_re_export_is_found() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("layout-circle");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("c")).unwrap();
    let write = |f: &str, s: &str| std::fs::write(dir.join(f), s).unwrap();
    write("lib.rs", "mod a;\nmod b;\nmod c;\n#[cfg(x)]\npub use a::{Thing, Other as Renamed};\n");
    write("a.rs", "use crate::b::Helper;\npub struct Thing;\n");
    write("b.rs", "// crate::a::Thing in a comment names nothing\npub fn f() -> crate::Renamed { todo!() }\n");
    write("c/mod.rs", "mod d;\npub use d::Deep;\n");
    write("c/d.rs", "use super::super::b;\npub struct Deep;\n");
    let g = imports(&dir);
    assert!(g["b"].contains("a"), "{g:?}");
    assert!(g["c"].contains("c::d") && g["c::d"].contains("b"), "{g:?}");
    let found = circle(&g).expect("the circle a -> b -> a");
    assert!(found.contains("a -> b -> a") || found.contains("b -> a -> b"), "{found}");
    // without the re-export's use the circle is gone
    write("b.rs", "pub fn f() {}\n");
    assert_eq!(circle(&imports(&dir)), None);
}

/// fails naming the first circle in `g`.
fn no_circles(g: &BTreeMap<String, BTreeSet<String>>) {
    if let Some(c) = circle(g) {
        panic!("import circle: {c}");
    }
}

/// the first circle in `g`, as `a -> b -> a`.
fn circle(g: &BTreeMap<String, BTreeSet<String>>) -> Option<String> {
    for (a, to) in g {
        // a depth-first walk from each module back to itself
        let mut stack: Vec<Vec<&String>> = to.iter().map(|b| vec![b]).collect();
        let mut seen = BTreeSet::new();
        while let Some(path) = stack.pop() {
            let last = *path.last().unwrap();
            if last == a {
                return Some(format!("{a} -> {}", path.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" -> ")));
            }
            if !seen.insert(last.clone()) {
                continue;
            }
            for next in g.get(last).into_iter().flatten() {
                let mut p = path.clone();
                p.push(next);
                stack.push(p);
            }
        }
    }
    None
}

#[test]
fn the_architecture_docs_table_names_every_top_level_module() {
    let doc = include_str!("../../docs/architecture.md");
    let start = doc.find("`host-llm/src`, one job per module").expect("the module table's heading");
    let table: Vec<&str> = doc[start..]
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .collect();
    let mut listed = BTreeSet::new();
    for row in &table {
        let first = row.split('|').nth(1).unwrap_or("");
        for name in first.split(',') {
            listed.insert(name.trim().trim_matches('`').to_owned());
        }
    }
    let dir = host_src();
    let mut actual = BTreeSet::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        match name.as_str() {
            "main.rs" | "lib.rs" | "bin" => {}
            _ if p.is_dir() => {
                actual.insert(format!("{name}/"));
            }
            _ => {
                actual.insert(name);
            }
        }
    }
    assert_eq!(listed, actual, "docs/architecture.md's module table and host-llm/src disagree");
}

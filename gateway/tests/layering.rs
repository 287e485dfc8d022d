//! No import circle between any two files of the workspace's libraries and
//! binaries (issue 18): every file imports only files below it, so each can
//! be read knowing only what is under it.
//!
//! For each crate's `src/`, every `use` and every path to another file of
//! the same crate is an edge: `crate::`, `super::` and `self::` paths, paths
//! through a child module (`mod x;`, then `x::...`), and paths through a
//! module brought in by `use`. A path goes to the deepest file it names
//! (`crate::apply::state::StateRead` is `apply/state.rs`). A child file
//! that names its parent `mod.rs` counts too: a directory's shared items
//! belong in a file of their own. Unit tests (`#[cfg(test)] mod tests`)
//! may import anything and are left out; a visibility path (`pub(in ...)`)
//! is not an import. Any group of files that reach one another is a
//! failure, named file by file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The crates' source roots, from `gateway/`.
const ROOTS: [&str; 4] = ["../ledger/src", "server/src", "src", "../tests/src"];

type Module = Vec<String>;

#[test]
fn no_two_files_import_each_other() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut circles = Vec::new();
    for root in ROOTS {
        let root = manifest.join(root);
        let files = modules(&root);
        assert!(!files.is_empty(), "no sources under {}", root.display());
        let graph = imports(&files);
        for group in groups(&graph) {
            let names: Vec<String> = group.iter().map(display).collect();
            circles.push(format!("{}: {}", root.display(), names.join(", ")));
        }
    }
    assert!(
        circles.is_empty(),
        "files that import each other:\n{}",
        circles.join("\n")
    );
}

#[test]
fn the_checker_sees_a_circle() {
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
        std::fs::write(path, text).expect("write");
    };
    write("lib.rs", "mod a;\nmod b;\nmod c;\npub use c::C;\n");
    write("a.rs", "use crate::b::B;\npub struct A;\n");
    write("b.rs", "pub struct B(super::a::A);\n");
    write("c/mod.rs", "mod d;\npub struct C;\npub use d::D;\n");
    write("c/d.rs", "pub struct D(super::C);\n");
    let files = modules(dir.path());
    let found: Vec<Vec<String>> = groups(&imports(&files))
        .into_iter()
        .map(|g| g.iter().map(display).collect())
        .collect();
    assert_eq!(found, vec![vec!["a", "b"], vec!["c", "c::d"]]);
}

/// Every module file under `root`, by module path (`lib.rs` is the root,
/// `a/mod.rs` and `a.rs` are `a`). `main.rs` declares no module of its own.
fn modules(root: &Path) -> BTreeMap<Module, PathBuf> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read a source directory") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") || path.ends_with("main.rs") {
                continue;
            }
            let relative = path.strip_prefix(root).expect("under the root");
            let mut module: Module = relative
                .with_extension("")
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect();
            if matches!(module.last().map(String::as_str), Some("mod" | "lib")) {
                module.pop();
            }
            out.insert(module, path);
        }
    }
    out
}

/// Each file's imports of other files of its crate.
fn imports(files: &BTreeMap<Module, PathBuf>) -> BTreeMap<Module, BTreeSet<Module>> {
    let mut graph = BTreeMap::new();
    for (module, path) in files {
        let text = std::fs::read_to_string(path).expect("read a source file");
        let text = without_visibility_paths(&without_unit_tests(&without_comments(&text)));
        let mut paths = use_paths(&text);
        paths.extend(expression_paths(&text));

        // Names that stand for modules here: children, and modules a `use`
        // brings in (under their own name or an alias).
        let mut names: BTreeMap<String, Module> = BTreeMap::new();
        for child in declared_children(&text) {
            let mut m = module.clone();
            m.push(child.clone());
            names.insert(child, m);
        }
        for (segments, alias) in &paths {
            if let Some(full) = resolve(module, segments, &BTreeMap::new())
                && files.contains_key(&full)
                && let Some(name) = alias.clone().or_else(|| full.last().cloned())
            {
                names.insert(name, full);
            }
        }

        let mut targets = BTreeSet::new();
        for (segments, _) in &paths {
            let Some(full) = resolve(module, segments, &names) else {
                continue;
            };
            // The deepest file the path names.
            let target = (1..=full.len())
                .rev()
                .map(|n| full[..n].to_vec())
                .find(|m| files.contains_key(m));
            if let Some(target) = target
                && &target != module
            {
                targets.insert(target);
            }
        }
        graph.insert(module.clone(), targets);
    }
    graph
}

/// The full module path `segments` means in `module`, if it is a path into
/// this crate.
fn resolve(
    module: &Module,
    segments: &[String],
    names: &BTreeMap<String, Module>,
) -> Option<Module> {
    let (first, rest) = segments.split_first()?;
    let mut full = match first.as_str() {
        "crate" => Vec::new(),
        "self" => module.clone(),
        "super" => {
            let mut m = module.clone();
            m.pop()?;
            let mut rest = rest;
            while rest.first().map(String::as_str) == Some("super") {
                m.pop()?;
                rest = &rest[1..];
            }
            m.extend(rest.iter().cloned());
            return Some(m);
        }
        name => names.get(name)?.clone(),
    };
    full.extend(rest.iter().cloned());
    Some(full)
}

/// Every path a `use` names, expanded (`a::{b, c::d as e}` is `a::b` and
/// `a::c::d`, alias `e`).
fn use_paths(text: &str) -> Vec<(Vec<String>, Option<String>)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = find_word(rest, "use") {
        let after = &rest[at + 3..];
        let end = after.find(';').unwrap_or(after.len());
        expand(after[..end].trim(), &[], &mut out);
        rest = &after[end..];
    }
    out
}

fn expand(tree: &str, prefix: &[String], out: &mut Vec<(Vec<String>, Option<String>)>) {
    let tree = tree.trim().trim_start_matches("::");
    if let Some(open) = tree.find('{') {
        let mut head = prefix.to_vec();
        head.extend(segments(&tree[..open]));
        let close = tree.rfind('}').filter(|c| *c > open).unwrap_or(tree.len());
        let inner = &tree[open + 1..close];
        let mut depth = 0;
        let mut start = 0;
        for (i, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand(&inner[start..i], &head, out);
                    start = i + 1;
                }
                _ => {}
            }
        }
        expand(&inner[start..], &head, out);
        return;
    }
    let (path, alias) = match tree.split_once(" as ") {
        Some((p, a)) => (p, Some(a.trim().to_owned())),
        None => (tree, None),
    };
    let mut full = prefix.to_vec();
    full.extend(segments(path).into_iter().filter(|s| s != "*"));
    if full.last().map(String::as_str) == Some("self") {
        full.pop();
    }
    if !full.is_empty() {
        out.push((full, alias));
    }
}

fn segments(path: &str) -> Vec<String> {
    path.split("::")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Paths in code (`a::b::c`), outside `use` statements too.
fn expression_paths(text: &str) -> Vec<(Vec<String>, Option<String>)> {
    let bytes = text.as_bytes();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let starts = ident(bytes[i]) && (i == 0 || !(ident(bytes[i - 1]) || bytes[i - 1] == b':'));
        if !starts {
            i += 1;
            continue;
        }
        let mut parts = Vec::new();
        let mut j = i;
        loop {
            let begin = j;
            while j < bytes.len() && ident(bytes[j]) {
                j += 1;
            }
            parts.push(text[begin..j].to_owned());
            if text[j..].starts_with("::") && bytes.get(j + 2).is_some_and(|b| ident(*b)) {
                j += 2;
            } else {
                break;
            }
        }
        if parts.len() > 1 {
            out.push((parts, None));
        }
        i = j.max(i + 1);
    }
    out
}

/// `mod x;` declarations: the file's children.
fn declared_children(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = find_word(rest, "mod") {
        let after = &rest[at + 3..];
        let name: String = after
            .trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let tail = after.trim_start()[name.len()..].trim_start();
        if !name.is_empty() && tail.starts_with(';') {
            out.push(name);
        }
        rest = after;
    }
    out
}

/// Where `word` next stands as a whole word.
fn find_word(text: &str, word: &str) -> Option<usize> {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut from = 0;
    while let Some(at) = text[from..].find(word) {
        let at = from + at;
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        if !before.is_some_and(ident) && after.is_some_and(char::is_whitespace) {
            return Some(at);
        }
        from = at + word.len();
    }
    None
}

fn without_comments(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `pub(in a::b)` names where an item is visible, not what it uses.
fn without_visibility_paths(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("pub(in ") {
        out.push_str(&rest[..at]);
        out.push_str("pub");
        let after = &rest[at..];
        rest = &after[after.find(')').map_or(after.len(), |c| c + 1)..];
    }
    out.push_str(rest);
    out
}

fn without_unit_tests(text: &str) -> String {
    match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => text[..at].to_owned(),
        None => text.to_owned(),
    }
}

/// Groups of two or more files that reach one another (Tarjan's strongly
/// connected components), each sorted, in order.
fn groups(graph: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<Module>> {
    struct Walk<'g> {
        graph: &'g BTreeMap<Module, BTreeSet<Module>>,
        index: BTreeMap<&'g Module, usize>,
        low: BTreeMap<&'g Module, usize>,
        stack: Vec<&'g Module>,
        found: Vec<Vec<Module>>,
    }
    impl<'g> Walk<'g> {
        fn visit(&mut self, v: &'g Module) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            for w in self.graph.get(v).into_iter().flatten() {
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w]);
                    self.low.insert(v, low);
                } else if self.stack.contains(&w) {
                    let low = self.low[v].min(self.index[w]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let mut group = Vec::new();
                while let Some(w) = self.stack.pop() {
                    group.push(w.clone());
                    if w == v {
                        break;
                    }
                }
                if group.len() > 1 {
                    group.sort();
                    self.found.push(group);
                }
            }
        }
    }
    let mut walk = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !walk.index.contains_key(v) {
            walk.visit(v);
        }
    }
    walk.found.sort();
    walk.found
}

fn display(module: &Module) -> String {
    if module.is_empty() {
        "lib".to_owned()
    } else {
        module.join("::")
    }
}

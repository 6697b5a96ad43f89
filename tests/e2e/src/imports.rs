//! The file-level import graph of the workspace's crates (`shared/*`, `functions/*`), and
//! its circles: sets of files that reach one another through `use` statements and
//! `crate::`/`super::` paths. A circle means a module needs something from a module above
//! it (docs/architecture.md); `scripts/import-circles.sh` prints them and
//! `tests/layout.rs` keeps new ones out.
//!
//! A lexical reading, enough for this code base: comments and string literals are
//! skipped; a path resolves to the deepest module file it names, and through a
//! `pub use` re-export of that file to the file that defines the item.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One crate's source files by module path (`a::b` for `src/a/b.rs` or `src/a/b/mod.rs`,
/// the empty path for `src/lib.rs`), relative file names for messages.
struct Crate {
    name: String,
    files: BTreeMap<Vec<String>, PathBuf>,
}

fn collect(src: &Path, dir: &Path, prefix: &[String], out: &mut BTreeMap<Vec<String>, PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            // `src/bin` holds separate crates (binaries), not modules.
            if dir == src && name == "bin" {
                continue;
            }
            let mut p = prefix.to_vec();
            p.push(name);
            collect(src, &path, &p, out);
        } else if let Some(stem) = name.strip_suffix(".rs") {
            let module = match stem {
                "lib" | "main" if dir == src => prefix.to_vec(),
                "mod" => prefix.to_vec(),
                _ => {
                    let mut p = prefix.to_vec();
                    p.push(stem.to_owned());
                    p
                }
            };
            out.insert(module, path);
        }
    }
}

/// Source text without comments, string and char literals (their contents replaced by
/// spaces, so that nothing in them reads as a path).
fn strip(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            let mut depth = 0;
            while i < b.len() {
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if b[i] == b'r' && (b[i + 1..].starts_with(b"\"") || b[i + 1..].starts_with(b"#")) {
            // Raw string r"..." or r#"..."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while j < b.len() && b[j] == b'#' {
                hashes += 1;
                j += 1;
            }
            if j < b.len() && b[j] == b'"' && (i == 0 || !is_ident(b[i - 1])) {
                let close: Vec<u8> = std::iter::once(b'"')
                    .chain(std::iter::repeat_n(b'#', hashes))
                    .collect();
                j += 1;
                while j < b.len() && !b[j..].starts_with(&close) {
                    j += 1;
                }
                i = (j + close.len()).min(b.len());
                out.push(' ');
            } else {
                out.push('r');
                i += 1;
            }
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push(' ');
        } else if b[i] == b'\'' {
            // A char literal ('a', '\n', '\u{..}') or a lifetime ('a): skip only the former.
            let rest = &b[i + 1..];
            let len = if rest.first() == Some(&b'\\') {
                rest.iter().position(|&c| c == b'\'').map(|p| p + 1)
            } else if rest.len() > 1 && rest[1] == b'\'' {
                Some(2)
            } else {
                std::str::from_utf8(&rest[..rest.len().min(4)])
                    .ok()
                    .and_then(|s| s.chars().next())
                    .filter(|c| !c.is_ascii())
                    .map(|c| c.len_utf8() + 1)
            };
            match len {
                Some(n) => {
                    i += 1 + n;
                    out.push(' ');
                }
                None => {
                    out.push('\'');
                    i += 1;
                }
            }
        } else {
            let ch = src[i..].chars().next().unwrap();
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// `code` (already [`strip`]ped) without its `#[cfg(test)]` items: tests may reach
/// anywhere, and their `super::` means the file's own module.
fn without_tests(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        // The item ends at its first `;` before any `{`, or where its first `{` closes.
        let mut depth = 0;
        let mut end = after.len();
        for (k, c) in after.char_indices() {
            match c {
                ';' if depth == 0 => {
                    end = k + 1;
                    break;
                }
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = k + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Every path a file names: `use` trees expanded (`use a::{b, c::d}` gives `a::b` and
/// `a::c::d`), and the `crate::`/`super::`/`self::` paths written elsewhere in the code.
fn paths(code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let b = code.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if !is_ident(b[i]) || (i > 0 && (is_ident(b[i - 1]) || b[i - 1] == b':')) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && is_ident(b[i]) {
            i += 1;
        }
        let word = &code[start..i];
        if word == "use" {
            let end = code[i..].find(';').map_or(code.len(), |e| i + e);
            // `pub use` re-exports: a facade, not a need (resolution goes through it).
            let before = code[..start].trim_end();
            let reexport = ends_with_pub(before);
            if !reexport {
                expand(code[i..end].trim(), &mut Vec::new(), &mut out);
            }
            i = end;
        } else if matches!(word, "crate" | "super" | "self") && code[i..].starts_with("::") {
            let mut j = i;
            while j < b.len() && (is_ident(b[j]) || b[j] == b':') {
                j += 1;
            }
            out.push(split(&code[start..j]));
            i = j;
        }
    }
    out
}

/// Whether code just before a `use` is a visibility (`pub`, `pub(crate)`, `pub(in a)`).
fn ends_with_pub(before: &str) -> bool {
    let word_pub =
        |t: &str| t.ends_with("pub") && !t[..t.len() - 3].bytes().last().is_some_and(is_ident);
    if before.ends_with(')') {
        return before.rfind('(').is_some_and(|open| {
            word_pub(before[..open].trim_end()) && !before[open..].contains([';', '{', '}'])
        });
    }
    word_pub(before)
}

fn split(path: &str) -> Vec<String> {
    path.split("::")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Expands one `use` tree after `prefix`.
fn expand(tree: &str, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    let tree = tree.trim();
    if tree.is_empty() {
        return;
    }
    match tree.find('{') {
        None => {
            let path = tree.split(" as ").next().unwrap_or(tree);
            let mut p = prefix.clone();
            p.extend(split(path).into_iter().filter(|s| s != "*"));
            out.push(p);
        }
        Some(open) => {
            let head = split(&tree[..open]);
            let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
            let n = prefix.len();
            prefix.extend(head);
            let mut depth = 0;
            let mut from = 0;
            for (k, c) in inner.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        expand(&inner[from..k], prefix, out);
                        from = k + 1;
                    }
                    _ => {}
                }
            }
            expand(&inner[from..], prefix, out);
            prefix.truncate(n);
        }
    }
}

/// The module a path in the file of module `me` names, as an absolute module path inside
/// the crate, or None for another crate. `is_dir_module`: the file is a `mod.rs` or the
/// crate root, whose bare paths may name child modules.
fn absolute(
    me: &[String],
    path: &[String],
    krate: &Crate,
    is_dir_module: bool,
) -> Option<Vec<String>> {
    let first = path.first()?;
    let (mut base, rest) = match first.as_str() {
        "crate" => (Vec::new(), &path[1..]),
        "self" => (me.to_vec(), &path[1..]),
        "super" => {
            let mut base = me.to_vec();
            let mut k = 0;
            while path.get(k).map(String::as_str) == Some("super") {
                base.pop()?;
                k += 1;
            }
            (base, &path[k..])
        }
        _ if is_dir_module => {
            let mut child = me.to_vec();
            child.push(first.clone());
            if !krate.files.contains_key(&child) {
                return None;
            }
            (me.to_vec(), path)
        }
        _ => return None,
    };
    base.extend(rest.iter().cloned());
    Some(base)
}

/// The file a module path lands in: the deepest module file that is a prefix of it, then
/// through that file's `pub use` re-exports of the next name.
fn resolve(
    path: &[String],
    krate: &Crate,
    reexports: &BTreeMap<PathBuf, BTreeMap<String, Vec<String>>>,
    depth: usize,
) -> Option<PathBuf> {
    let mut k = path.len();
    while !krate.files.contains_key(&path[..k]) {
        k = k.checked_sub(1)?;
    }
    let file = krate.files[&path[..k]].clone();
    if depth < 8
        && let Some(name) = path.get(k)
        && let Some(target) = reexports.get(&file).and_then(|r| r.get(name))
    {
        let mut next = target.clone();
        next.extend(path[k + 1..].iter().cloned());
        return resolve(&next, krate, reexports, depth + 1).or(Some(file));
    }
    Some(file)
}

/// Each file's `pub use` re-exports: exported name → absolute module path of the item.
fn reexports_of(
    krate: &Crate,
    code: &BTreeMap<PathBuf, String>,
) -> BTreeMap<PathBuf, BTreeMap<String, Vec<String>>> {
    let mut all = BTreeMap::new();
    for (module, file) in &krate.files {
        let is_dir = is_dir_module(file);
        let mut map = BTreeMap::new();
        let text = &code[file];
        let mut rest = text.as_str();
        while let Some(at) = rest.find("pub use ") {
            let after = &rest[at + 8..];
            let end = after.find(';').unwrap_or(after.len());
            let mut paths = Vec::new();
            expand(&after[..end], &mut Vec::new(), &mut paths);
            let aliases: Vec<&str> = after[..end].split(',').collect();
            for p in paths {
                let Some(last) = p.last().cloned() else {
                    continue;
                };
                // `pub use a::b as c` exports `c`.
                let name = aliases
                    .iter()
                    .find_map(|a| {
                        a.split(" as ")
                            .nth(1)
                            .filter(|_| a.contains(&format!("{last} as ")))
                    })
                    .map(|s| s.trim().trim_end_matches('}').trim().to_owned())
                    .unwrap_or(last);
                if let Some(abs) = absolute(module, &p, krate, is_dir) {
                    map.insert(name, abs);
                }
            }
            rest = &after[end..];
        }
        all.insert(file.clone(), map);
    }
    all
}

fn is_dir_module(file: &Path) -> bool {
    let name = file.file_name().unwrap().to_string_lossy();
    name == "mod.rs" || name == "lib.rs" || name == "main.rs"
}

/// The workspace's crates under `shared/` and `functions/`.
fn crates(root: &Path) -> Vec<Crate> {
    let mut out = Vec::new();
    for group in ["shared", "functions"] {
        let Ok(entries) = std::fs::read_dir(root.join(group)) else {
            continue;
        };
        let mut dirs: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        dirs.sort();
        for dir in dirs {
            let src = dir.join("src");
            if !src.is_dir() {
                continue;
            }
            let mut files = BTreeMap::new();
            collect(&src, &src, &[], &mut files);
            let name = dir.strip_prefix(root).unwrap_or(&dir).display().to_string();
            out.push(Crate { name, files });
        }
    }
    out
}

/// The import edges between files of one crate (relative file names).
fn edges(root: &Path, krate: &Crate) -> BTreeMap<String, BTreeSet<String>> {
    let code: BTreeMap<PathBuf, String> = krate
        .files
        .values()
        .map(|f| {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            (f.clone(), without_tests(&strip(&text)))
        })
        .collect();
    let reexports = reexports_of(krate, &code);
    let rel = |f: &Path| f.strip_prefix(root).unwrap_or(f).display().to_string();
    let mut graph = BTreeMap::new();
    for (module, file) in &krate.files {
        let is_dir = is_dir_module(file);
        let mut to = BTreeSet::new();
        for p in paths(&code[file]) {
            if let Some(abs) = absolute(module, &p, krate, is_dir)
                && let Some(target) = resolve(&abs, krate, &reexports, 0)
                && target != *file
            {
                to.insert(rel(&target));
            }
        }
        graph.insert(rel(file), to);
    }
    graph
}

/// Strongly connected components of more than one file (Tarjan), each sorted, in order.
fn circles_of(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Tarjan<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    impl<'a> Tarjan<'a> {
        fn visit(&mut self, v: &'a str) {
            self.index.insert(v, self.next);
            self.low.insert(v, self.next);
            self.next += 1;
            self.stack.push(v);
            self.on_stack.insert(v);
            for w in self.graph.get(v).into_iter().flatten() {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let l = self.low[w].min(self.low[v]);
                    self.low.insert(v, l);
                } else if self.on_stack.contains(w) {
                    let l = self.index[w].min(self.low[v]);
                    self.low.insert(v, l);
                }
            }
            if self.low[v] == self.index[v] {
                let mut scc = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    scc.push(w.to_owned());
                    if w == v {
                        break;
                    }
                }
                if scc.len() > 1 {
                    scc.sort();
                    self.out.push(scc);
                }
            }
        }
    }
    let mut t = Tarjan {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !t.index.contains_key(v.as_str()) {
            t.visit(v);
        }
    }
    t.out.sort();
    t.out
}

/// The import circles of every crate under `root`'s `shared/` and `functions/`, as
/// (crate, files of the circle).
pub fn circles(root: &Path) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for krate in crates(root) {
        for c in circles_of(&edges(root, &krate)) {
            out.push((krate.name.clone(), c));
        }
    }
    out
}

/// Files that import one another directly within a circle: `(a, b)` where `a` names
/// something of `b`. For messages: the edges to cut.
pub fn circle_edges(root: &Path, files: &[String]) -> Vec<(String, String)> {
    let set: BTreeSet<&String> = files.iter().collect();
    let mut out = Vec::new();
    for krate in crates(root) {
        for (from, to) in edges(root, &krate) {
            if set.contains(&from) {
                for t in to.iter().filter(|t| set.contains(t)) {
                    out.push((from.clone(), t.clone()));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn use_trees_expand() {
        let mut out = Vec::new();
        expand(
            "super::{a, b::{c, d as e}, f::*}",
            &mut Vec::new(),
            &mut out,
        );
        let s: Vec<String> = out.iter().map(|p| p.join("::")).collect();
        assert_eq!(s, ["super::a", "super::b::c", "super::b::d", "super::f"]);
    }

    #[test]
    fn comments_and_strings_name_nothing() {
        let code =
            strip("// crate::a\nlet s = \"crate::b\"; /* crate::c */ let c = '\"'; crate::d::f();");
        let p: Vec<String> = paths(&code).iter().map(|p| p.join("::")).collect();
        assert_eq!(p, ["crate::d::f"]);
    }

    #[test]
    fn reexports_are_not_needs() {
        let p = |c: &str| -> Vec<String> { paths(c).iter().map(|p| p.join("::")).collect() };
        assert!(p("pub use a::b;").is_empty());
        assert!(p("pub(crate) use super::b;").is_empty());
        assert_eq!(p("fn f() {} use super::b;"), ["super::b"]);
        assert_eq!(p("reuse(); use crate::x;"), ["crate::x"]);
    }

    #[test]
    fn test_modules_are_left_out() {
        let code = without_tests(
            "use crate::a;\n#[cfg(test)]\nmod tests {\n use super::*; fn f() { crate::b::g() }\n}\nuse crate::c;",
        );
        let p: Vec<String> = paths(&code).iter().map(|p| p.join("::")).collect();
        assert_eq!(p, ["crate::a", "crate::c"]);
    }

    #[test]
    fn a_two_file_circle_is_found() {
        let mut g = BTreeMap::new();
        g.insert("a".to_owned(), BTreeSet::from(["b".to_owned()]));
        g.insert(
            "b".to_owned(),
            BTreeSet::from(["a".to_owned(), "c".to_owned()]),
        );
        g.insert("c".to_owned(), BTreeSet::new());
        assert_eq!(circles_of(&g), vec![vec!["a".to_owned(), "b".to_owned()]]);
    }
}

//! `docs/design.md` stays the map of the engine: its layout table names
//! exactly the files in `src/`, and its test lists name exactly the tests of
//! each file they cite, including every loom model.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn design() -> String {
    fs::read_to_string(root().join("docs/design.md")).expect("docs/design.md")
}

/// The text of the section that starts with `heading` (up to the next
/// heading of the same or a higher level).
fn section<'a>(doc: &'a str, heading: &str) -> &'a str {
    let start = doc
        .find(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("design.md has no `{heading}` section"));
    let level = heading.chars().take_while(|&c| c == '#').count();
    let body = &doc[start + heading.len() + 2..];
    let end = body
        .lines()
        .scan(0, |at, line| {
            let here = *at;
            *at += line.len() + 1;
            Some((here, line))
        })
        .find(|(_, line)| {
            let hashes = line.chars().take_while(|&c| c == '#').count();
            hashes > 0 && hashes <= level && line[hashes..].starts_with(' ')
        })
        .map_or(body.len(), |(at, _)| at);
    &body[..end]
}

/// The backticked words of `text`.
fn ticked(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

/// Every `.rs` file under `dir`, relative to it, with `/` separators.
fn rust_files(dir: &Path, base: &Path, out: &mut BTreeSet<String>) {
    for entry in fs::read_dir(dir).expect("readable source folder") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, base, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path.strip_prefix(base).expect("under base");
            out.insert(rel.to_string_lossy().replace('\\', "/"));
        }
    }
}

/// Every `.rs` file of the crate, relative to `src/`.
fn src_files() -> BTreeSet<String> {
    let mut files = BTreeSet::new();
    rust_files(&root().join("src"), &root().join("src"), &mut files);
    files
}

/// The names of the `#[test]` functions in `file`.
fn tests_in(file: &Path) -> BTreeSet<String> {
    let text = fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let mut names = BTreeSet::new();
    let mut armed = false;
    for line in text.lines().map(str::trim) {
        if line == "#[test]" {
            armed = true;
        } else if armed && !line.starts_with("#[") && !line.starts_with("//") {
            let after = line.split("fn ").nth(1).expect("a fn after #[test]");
            let name: String = after
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            names.insert(name);
            armed = false;
        }
    }
    names
}

fn is_identifier(word: &str) -> bool {
    !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

#[test]
fn layout_table_lists_exactly_the_files_in_src() {
    let doc = design();
    let table = section(&doc, "## Layout");
    let listed: BTreeSet<String> = table
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| ticked(l)[0].to_string())
        .collect();
    let files = src_files();
    let missing: Vec<_> = files.difference(&listed).collect();
    let stale: Vec<_> = listed.difference(&files).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "docs/design.md `## Layout`: files not listed {missing:?}, listed but absent {stale:?}"
    );
}

#[test]
fn test_lists_match_the_tests_and_every_loom_model_is_listed() {
    let doc = design();
    let tests = section(&doc, "### Tests");
    // Each bullet: "* `path/to/file.rs` ...: `test_a`, `test_b` ...".
    let mut cited = BTreeSet::new();
    for bullet in tests.split("\n* ").skip(1) {
        let bullet = bullet.split("\n\n").next().unwrap_or(bullet);
        let words = ticked(bullet);
        let file = words[0];
        assert!(
            file.ends_with(".rs"),
            "a test bullet starts with its file: {bullet}"
        );
        let listed: BTreeSet<String> = words[1..]
            .iter()
            .filter(|w| is_identifier(w))
            .map(|w| w.to_string())
            .collect();
        let actual = tests_in(&root().join(file));
        assert_eq!(
            listed, actual,
            "docs/design.md `### Tests` list of `{file}`"
        );
        cited.insert(file.to_string());
    }
    let mut loom = BTreeSet::new();
    let loom_tests = root().join("loom-tests/tests");
    rust_files(&loom_tests, &root(), &mut loom);
    let models = src_files()
        .into_iter()
        .filter(|f| f.ends_with("loom_models.rs"));
    loom.extend(models.map(|f| format!("src/{f}")));
    let unlisted: Vec<_> = loom.difference(&cited).collect();
    assert!(
        unlisted.is_empty(),
        "loom models missing from docs/design.md: {unlisted:?}"
    );
}

#[test]
fn docs_cite_nothing_outside_the_repository() {
    let mut files = BTreeSet::new();
    for dir in [
        "src",
        "docs",
        "tests",
        "benches",
        "examples",
        "fuzz/src",
        "fuzz/fuzz_targets",
        "loom-tests/src",
        "loom-tests/tests",
    ] {
        rust_files(&root().join(dir), &root(), &mut files);
    }
    let mut docs: Vec<String> = fs::read_dir(root().join("docs"))
        .expect("docs/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .map(|p| {
            p.strip_prefix(root())
                .expect("under root")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    docs.push("README.md".into());
    // Assembled so that this file does not cite them itself.
    let outside = [
        ["API", ".md"].concat(),
        ["DEVELOPERS", ".md"].concat(),
        ["PRIOR", "-ART"].concat(),
        ["contract", " semantics"].concat(),
        ["../", "shared"].concat(),
    ];
    for file in files.iter().chain(docs.iter()) {
        let text = fs::read_to_string(root().join(file)).expect("readable");
        for word in &outside {
            assert!(
                !text.contains(word.as_str()),
                "{file} cites `{word}`, which is outside the repository"
            );
        }
    }
}

/// The module that `path` (`crate::a::b::Item`, relative to `module`)
/// names: the longest prefix that is a file of `src/`.
fn resolve(module: &[String], path: &str, modules: &BTreeSet<Vec<String>>) -> Option<Vec<String>> {
    let mut segs: Vec<&str> = path.split("::").collect();
    let mut base: Vec<String> = match *segs.first()? {
        "crate" => Vec::new(),
        "super" => module[..module.len().saturating_sub(1)].to_vec(),
        _ => return None,
    };
    segs.remove(0);
    while segs.first() == Some(&"super") {
        base.pop();
        segs.remove(0);
    }
    base.extend(segs.iter().map(|s| s.to_string()));
    (1..=base.len())
        .rev()
        .map(|k| base[..k].to_vec())
        .find(|m| modules.contains(m))
}

#[test]
fn no_module_imports_a_sibling_that_imports_it_back() {
    let files = src_files();
    let module_of = |f: &str| -> Vec<String> {
        let f = f.trim_end_matches(".rs").trim_end_matches("/mod");
        f.split('/').map(str::to_string).collect()
    };
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| module_of(f)).collect();
    let mut edges = BTreeSet::new();
    for file in &files {
        let module = module_of(file);
        let text = fs::read_to_string(root().join("src").join(file)).expect("readable");
        for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
            // Every `crate::...` / `super::...` path, and each item of a
            // `use x::{a, b}` group.
            let line = line.replace(['{', '}', ',', ';', '(', ')', '<', '>', '&', ' ', '!'], " ");
            let mut prefix: Option<String> = None;
            for word in line.split_whitespace() {
                let path = if word.starts_with("crate::") || word.starts_with("super::") {
                    prefix = Some(word.trim_end_matches("::").to_string());
                    word.to_string()
                } else if let Some(p) = prefix.as_ref().filter(|_| word != "self") {
                    format!("{p}::{word}")
                } else {
                    continue;
                };
                let Some(target) = resolve(&module, &path, &modules) else {
                    continue;
                };
                let shared = module
                    .iter()
                    .zip(&target)
                    .take_while(|(a, b)| a == b)
                    .count();
                if shared < module.len() && shared < target.len() {
                    edges.insert((module[..=shared].join("::"), target[..=shared].join("::")));
                }
            }
        }
    }
    let mutual: Vec<_> = edges
        .iter()
        .filter(|(a, b)| a < b && edges.contains(&(b.clone(), a.clone())))
        .collect();
    assert!(
        mutual.is_empty(),
        "modules that import each other: {mutual:?}"
    );
}

#[test]
fn no_source_file_is_over_500_lines() {
    for file in src_files() {
        let lines = fs::read_to_string(root().join("src").join(&file))
            .expect("readable")
            .lines()
            .count();
        assert!(
            lines <= 500,
            "src/{file} has {lines} lines (at most 500: one concept per file)"
        );
    }
}

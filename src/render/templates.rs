//! The template set: built-in defaults, overridden per (name, language) by the operator's
//! `[templates] dir`; every part macro-translated, compiled, checked against its kind's sample
//! context and sample-rendered once, all at load. Two Handlebars registries: subjects and plain
//! text without escaping, HTML with HTML escaping.
//!
//! File layout: `<dir>/<kind>/<name>.<lang>.<part>.hbs`, `part` one of `subject`, `text`,
//! `html`; e.g. `rule/sender.de.text.hbs`. A (name, language) found in the directory replaces
//! the built-in one as a whole (so an operator can drop the HTML part by not providing it); it
//! needs at least the subject and the text part.

use super::builtin::BUILTIN;
use super::compiled::{self, Program};
use super::lint::lint;
use super::macros::translate;
use super::samples::Schema;
use crate::config::Problem;
use handlebars::template::Template;
use handlebars::{handlebars_helper, Context, Handlebars, JsonValue};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

/// The three parts of a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Part {
    /// One line (line breaks are folded into spaces).
    Subject,
    /// The plain-text body.
    Text,
    /// The optional HTML body.
    Html,
}

impl Part {
    fn as_str(self) -> &'static str {
        match self {
            Part::Subject => "subject",
            Part::Text => "text",
            Part::Html => "html",
        }
    }

    fn parse(s: &str) -> Option<Part> {
        match s {
            "subject" => Some(Part::Subject),
            "text" => Some(Part::Text),
            "html" => Some(Part::Html),
            _ => None,
        }
    }
}

/// Registry keys of one (name, language).
#[derive(Debug, Clone)]
pub struct Entry {
    /// Key of the subject in the text registry.
    pub subject: String,
    /// Key of the text body in the text registry.
    pub text: String,
    /// Key of the HTML body in the HTML registry, if the template has one.
    pub html: Option<String>,
    /// Where it came from (`built-in` or the directory), for logs and the preview.
    pub origin: String,
}

/// The compiled template set.
pub struct Templates {
    /// Subjects and text bodies: no escaping.
    pub text: Handlebars<'static>,
    /// HTML bodies: HTML escaping.
    pub html: Handlebars<'static>,
    /// The same templates compiled for the fast path, by registry key (only those that
    /// `compiled::compile` accepts; the others render with Handlebars alone).
    pub programs: HashMap<String, Program>,
    index: HashMap<String, HashMap<String, Entry>>,
    /// (name, language) pairs that exist but failed to load (already reported).
    broken: HashSet<(String, String)>,
}

impl Templates {
    /// Whether `name` in `lang` exists but has problems (so a "missing" report would mislead).
    pub fn is_broken(&self, name: &str, lang: &str) -> bool {
        self.broken.contains(&(name.to_string(), lang.to_string()))
    }

    /// The template `name` in `lang`.
    pub fn get(&self, name: &str, lang: &str) -> Option<&Entry> {
        self.index.get(name).and_then(|l| l.get(lang))
    }

    /// Whether any language of `name` exists.
    pub fn has_name(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }
}

/// Sample contexts per kind, the full one first (see `samples`).
pub type SampleContexts = BTreeMap<Schema, Vec<(&'static str, JsonValue)>>;

struct Source {
    text: String,
    /// `<dir>/rule/general.en.text.hbs` or `built-in templates/rule/general.en.text.hbs`.
    label: String,
}

#[derive(Default)]
struct Set {
    parts: BTreeMap<Part, Source>,
    origin: String,
}

handlebars_helper!(short: |v: Json, n: u64| {
    let s = match v {
        JsonValue::Null => String::new(),
        JsonValue::String(s) => s.clone(),
        other => other.to_string(),
    };
    let n = usize::try_from(n).unwrap_or(usize::MAX).max(1);
    if s.chars().count() <= n {
        s
    } else {
        let mut out: String = s.chars().take(n - 1).collect();
        out.push('…');
        out
    }
});

pub(super) fn registry(escape: bool) -> Handlebars<'static> {
    let mut r = Handlebars::new();
    r.set_strict_mode(true);
    if escape {
        r.register_escape_fn(handlebars::html_escape);
    } else {
        r.register_escape_fn(handlebars::no_escape);
    }
    r.register_helper("short", Box::new(short));
    r
}

fn problem(label: &str, line: Option<usize>, message: impl Into<String>) -> Problem {
    Problem {
        path: match line {
            Some(l) => format!("{label}:{l}"),
            None => label.to_string(),
        },
        message: message.into(),
    }
}

/// Splits `rule/general.en.text.hbs` into (`rule/general`, `en`, text).
fn parse_file_name(rel: &str) -> Result<(String, String, Part), String> {
    let bad = || {
        "not a template file name: write KIND/NAME.LANG.PART.hbs with PART one of subject, text, html (e.g. rule/sender.de.text.hbs)".to_string()
    };
    let stem = rel.strip_suffix(".hbs").ok_or_else(bad)?;
    let (rest, part) = stem.rsplit_once('.').ok_or_else(bad)?;
    let part = Part::parse(part).ok_or_else(bad)?;
    let (name, lang) = rest.rsplit_once('.').ok_or_else(bad)?;
    if !(2..=3).contains(&lang.len()) || !lang.bytes().all(|b| b.is_ascii_lowercase()) {
        return Err(format!(
            "{lang:?} is not a language code; write e.g. \"en\", \"ru\", \"de\""
        ));
    }
    if Schema::of(name).is_none() {
        return Err("templates live under rule/, bounce/ or application/".into());
    }
    Ok((name.to_string(), lang.to_string(), part))
}

/// The usual syntax error in words: a block closed by the wrong tag, closed twice, or never
/// closed — with the line that matters. `None` when the blocks balance (the error is elsewhere).
fn block_hint(src: &str) -> Option<(usize, String)> {
    let mut open: Vec<(String, usize)> = Vec::new();
    let mut line = 1;
    let mut rest = src;
    while let Some(at) = rest.find("{{") {
        line += rest[..at].matches('\n').count();
        let tag = &rest[at + 2..];
        let end = tag.find("}}").unwrap_or(tag.len());
        let inner = tag[..end].trim_start_matches('~').trim();
        let name = |s: &str| s.split_whitespace().next().unwrap_or("").to_string();
        if let Some(b) = inner.strip_prefix('#') {
            let b = b.trim_start_matches(['>', '*']);
            open.push((name(b), line));
        } else if let Some(c) = inner.strip_prefix('/') {
            let c = name(c);
            match open.pop() {
                Some((o, _)) if o == c => {}
                Some((o, at)) => {
                    return Some((line, format!("{{{{/{c}}}}} closes {{{{#{o}}}}} opened on line {at}; close {{{{#{o}}}}} first")))
                }
                None => return Some((line, format!("{{{{/{c}}}}} closes a block that was never opened"))),
            }
        }
        line += tag[..end].matches('\n').count();
        rest = &tag[end..];
    }
    open.pop().map(|(o, at)| {
        (
            at,
            format!("{{{{#{o}}}}} is never closed; add {{{{/{o}}}}}"),
        )
    })
}

/// `a/b/../c` → `a/c`, so that messages name the file as an operator would write it.
fn clean(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir if out.file_name().is_some() => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>, problems: &mut Vec<Problem>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            problems.push(problem(
                &dir.display().to_string(),
                None,
                format!("cannot read: {e}"),
            ));
            return;
        }
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            walk(&p, out, problems);
        } else if p.extension().is_some_and(|e| e == "hbs") {
            out.push(p);
        }
    }
}

fn read_dir_sets(dir: &Path, problems: &mut Vec<Problem>) -> BTreeMap<(String, String), Set> {
    let mut files = Vec::new();
    walk(dir, &mut files, problems);
    let mut sets: BTreeMap<(String, String), Set> = BTreeMap::new();
    for path in files {
        let label = clean(&path).display().to_string();
        let rel = path
            .strip_prefix(dir)
            .map(|r| r.to_string_lossy().replace('\\', "/"))
            .unwrap_or_default();
        let (name, lang, part) = match parse_file_name(&rel) {
            Ok(x) => x,
            Err(m) => {
                problems.push(problem(&label, None, m));
                continue;
            }
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                problems.push(problem(&label, None, format!("cannot read: {e}")));
                continue;
            }
        };
        let set = sets.entry((name, lang)).or_default();
        set.origin = dir.display().to_string();
        set.parts.insert(part, Source { text, label });
    }
    sets.retain(|(name, lang), set| {
        let missing: Vec<&str> = [Part::Subject, Part::Text]
            .into_iter()
            .filter(|p| !set.parts.contains_key(p))
            .map(Part::as_str)
            .collect();
        if missing.is_empty() {
            return true;
        }
        let path = dir.join(format!("{name}.{lang}.{}.hbs", missing[0]));
        problems.push(problem(
            &path.display().to_string(),
            None,
            format!(
                "missing: a template in the directory replaces the built-in {name} ({lang}) as a \
                 whole and needs {name}.{lang}.subject.hbs and {name}.{lang}.text.hbs \
                 (.html.hbs is optional)"
            ),
        ));
        false
    });
    sets
}

fn builtin_sets() -> BTreeMap<(String, String), Set> {
    let mut sets = BTreeMap::new();
    for b in BUILTIN {
        let mut parts = BTreeMap::new();
        for (part, text) in [
            (Part::Subject, b.subject),
            (Part::Text, b.text),
            (Part::Html, b.html),
        ] {
            parts.insert(
                part,
                Source {
                    text: text.to_string(),
                    label: format!(
                        "built-in templates/{}.{}.{}.hbs",
                        b.name,
                        b.lang,
                        part.as_str()
                    ),
                },
            );
        }
        sets.insert(
            (b.name.to_string(), b.lang.to_string()),
            Set {
                parts,
                origin: "built-in".into(),
            },
        );
    }
    sets
}

fn compile_part(
    src: &Source,
    key: &str,
    schema: Schema,
    samples: &[(&'static str, JsonValue)],
    (reg, programs, html): (
        &mut Handlebars<'static>,
        &mut HashMap<String, Program>,
        bool,
    ),
    problems: &mut Vec<Problem>,
) -> bool {
    let Some((_, full)) = samples.first() else {
        return false;
    };
    let translated = match translate(&src.text, full, schema.label()) {
        Ok(t) => t,
        Err(errors) => {
            for e in errors {
                problems.push(problem(&src.label, Some(e.line), e.message));
            }
            return false;
        }
    };
    let template = match Template::compile_with_name(&translated, key.to_string()) {
        Ok(t) => t,
        Err(e) => {
            let (line, message) = match block_hint(&translated) {
                Some((line, hint)) => (Some(line), hint),
                None => {
                    // pest's message spans lines and lists grammar rules; keep it on one line.
                    let reason = e.reason().to_string();
                    let reason = reason.split_whitespace().collect::<Vec<_>>().join(" ");
                    (e.pos().map(|(l, _)| l), reason)
                }
            };
            problems.push(problem(
                &src.label,
                line,
                format!("syntax error: {message}"),
            ));
            return false;
        }
    };
    let errors = lint(&template, full, html);
    if !errors.is_empty() {
        for e in errors {
            problems.push(problem(&src.label, Some(e.line), e.message));
        }
        return false;
    }
    let program = compiled::compile(&template);
    reg.register_template(key, template);
    for (label, sample) in samples {
        if let Err(e) = reg.render_with_context(key, &Context::from(sample.clone())) {
            problems.push(problem(
                &src.label,
                e.line_no,
                format!("fails to render {label}: {}", e.reason()),
            ));
            reg.unregister_template(key);
            return false;
        }
    }
    if let Some(p) = program {
        programs.insert(key.to_string(), p);
    }
    true
}

/// Loads the built-in templates and the operator's directory; returns the set and every
/// problem found (file and line in the path). A template with a problem is left out of the set.
pub fn load(dir: Option<&Path>, samples: &SampleContexts) -> (Templates, Vec<Problem>) {
    let mut problems = Vec::new();
    let mut sets = builtin_sets();
    if let Some(dir) = dir {
        for (k, set) in read_dir_sets(dir, &mut problems) {
            sets.insert(k, set);
        }
    }
    let mut t = Templates {
        text: registry(false),
        html: registry(true),
        programs: HashMap::new(),
        index: HashMap::new(),
        broken: HashSet::new(),
    };
    for ((name, lang), set) in sets {
        let Some(schema) = Schema::of(&name) else {
            continue;
        };
        let Some(samples) = samples.get(&schema) else {
            continue;
        };
        let key = |p: Part| format!("{name}.{lang}.{}", p.as_str());
        let mut ok = true;
        for (part, src) in &set.parts {
            let (reg, html) = match part {
                Part::Html => (&mut t.html, true),
                _ => (&mut t.text, false),
            };
            ok &= compile_part(
                src,
                &key(*part),
                schema,
                samples,
                (reg, &mut t.programs, html),
                &mut problems,
            );
        }
        if ok {
            t.index.entry(name.clone()).or_default().insert(
                lang.clone(),
                Entry {
                    subject: key(Part::Subject),
                    text: key(Part::Text),
                    html: set.parts.contains_key(&Part::Html).then(|| key(Part::Html)),
                    origin: set.origin,
                },
            );
        } else {
            t.broken.insert((name, lang));
        }
    }
    (t, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_map_to_name_language_and_part() {
        assert_eq!(
            parse_file_name("rule/sender.de.text.hbs").unwrap(),
            ("rule/sender".into(), "de".into(), Part::Text)
        );
        assert_eq!(
            parse_file_name("rule/custom/strict.en.subject.hbs")
                .unwrap()
                .0,
            "rule/custom/strict"
        );
        assert!(parse_file_name("rule/sender.de.txt.hbs").is_err());
        assert!(parse_file_name("misc/sender.de.text.hbs").is_err());
        assert!(parse_file_name("rule/sender.DE.text.hbs").is_err());
    }

    #[test]
    fn unbalanced_blocks_are_explained_with_the_line_that_matters() {
        assert_eq!(
            block_hint("a\n{{#if x}}\n{{#each y}}\n{{/if}}"),
            Some((
                4,
                "{{/if}} closes {{#each}} opened on line 3; close {{#each}} first".into()
            ))
        );
        assert_eq!(
            block_hint("{{#each y}}\n{{x}}\n"),
            Some((1, "{{#each}} is never closed; add {{/each}}".into()))
        );
        assert_eq!(
            block_hint("{{/if}}"),
            Some((1, "{{/if}} closes a block that was never opened".into()))
        );
        assert_eq!(block_hint("{{#if a}}{{else}}{{/if}} {{x"), None);
        assert_eq!(clean(Path::new("a/b/../c/./d")), PathBuf::from("a/c/d"));
    }

    #[test]
    fn the_short_helper_cuts_with_an_ellipsis() {
        let r = registry(false);
        let out = r
            .render_template(
                "{{short s 5}}|{{short n 5}}|{{short s 50}}",
                &serde_json::json!({"s": "abcdefgh", "n": null}),
            )
            .unwrap();
        assert_eq!(out, "abcd…||abcdefgh");
    }
}

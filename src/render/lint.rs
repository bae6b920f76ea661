//! The load-time check that makes strict mode mean something: every variable a template names
//! is resolved against a sample context of its kind (every optional value present, every list
//! non-empty) by walking the compiled template, including `{{else}}` branches and loop bodies
//! that a sample render would skip. Unknown variables, unknown helpers, partials, and — in HTML
//! templates — unescaped `{{{…}}}` are reported with their line.

use handlebars::template::{BlockParam, HelperTemplate, Parameter, Template, TemplateElement};
use handlebars::Path;
use serde_json::Value;

/// Helpers a template may call inline or as a sub-expression.
pub const INLINE_HELPERS: &[&str] = &[
    "eq", "ne", "gt", "gte", "lt", "lte", "and", "or", "not", "len", "lookup", "short",
];
/// Block helpers a template may open.
pub const BLOCK_HELPERS: &[&str] = &["if", "unless", "each", "with"];
const LOCALS: &[&str] = &["index", "first", "last", "key"];

/// One finding, 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LintError {
    /// Line in the template file.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

struct Scope<'a> {
    value: &'a Value,
    /// Inside `{{#each}}`: `@index` & co. exist.
    each: bool,
    /// Block parameters (`as |x|`) introduced here.
    params: Vec<(String, &'a Value)>,
    /// The sample had nothing to iterate: names inside cannot be checked.
    unchecked: bool,
    /// How this scope was entered, for messages (`{{#each objects}}`).
    label: String,
}

struct Linter<'a> {
    root: &'a Value,
    html: bool,
    stack: Vec<Scope<'a>>,
    errors: Vec<LintError>,
}

/// Checks `t` against the sample context `root`. `html` forbids `{{{…}}}`.
pub fn lint(t: &Template, root: &Value, html: bool) -> Vec<LintError> {
    let mut l = Linter {
        root,
        html,
        stack: vec![Scope {
            value: root,
            each: false,
            params: Vec::new(),
            unchecked: false,
            label: String::new(),
        }],
        errors: Vec::new(),
    };
    l.template(t, 1);
    l.errors
}

fn raw_path(p: &Path) -> &str {
    match p {
        Path::Relative((_, raw)) => raw,
        Path::Local((_, _, raw)) => raw,
    }
}

/// Splits `a.b/[c d].0` into segments.
fn segments(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']').unwrap_or(r.len());
            out.push(&r[..end]);
            rest = r.get(end + 1..).unwrap_or("");
        } else {
            let end = rest.find(['.', '/']).unwrap_or(rest.len());
            if end > 0 {
                out.push(&rest[..end]);
            }
            rest = &rest[end..];
        }
        rest = rest.strip_prefix(['.', '/']).unwrap_or(rest);
    }
    out
}

fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

fn unknown(name: &str, within: &Value, label: &str) -> String {
    let keys: Vec<&str> = within
        .as_object()
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let near: Vec<&str> = keys
        .iter()
        .copied()
        .filter(|k| distance(k, name) <= 2.max(name.len() / 4))
        .collect();
    let place = if label.is_empty() {
        String::new()
    } else {
        format!(" inside {label}")
    };
    if !near.is_empty() {
        format!(
            "unknown variable \"{name}\"{place}; did you mean \"{}\"?",
            near.join("\" or \"")
        )
    } else {
        format!(
            "unknown variable \"{name}\"{place}; variables here: {} (see templates/README.md)",
            keys.join(", ")
        )
    }
}

impl<'a> Linter<'a> {
    fn err(&mut self, line: usize, message: String) {
        self.errors.push(LintError { line, message });
    }

    fn template(&mut self, t: &Template, parent_line: usize) {
        for (i, e) in t.elements.iter().enumerate() {
            let line = t.mapping.get(i).map_or(parent_line, |m| m.0);
            match e {
                TemplateElement::HtmlExpression(h) => {
                    if self.html {
                        self.err(
                            line,
                            "{{{…}}} writes a value without HTML escaping, which lets event text \
                             inject markup; use {{…}}"
                                .into(),
                        );
                    }
                    self.expression(h, line);
                }
                TemplateElement::Expression(h) => self.expression(h, line),
                TemplateElement::HelperBlock(h) => self.block(h, line),
                TemplateElement::DecoratorExpression(_)
                | TemplateElement::DecoratorBlock(_)
                | TemplateElement::PartialExpression(_)
                | TemplateElement::PartialBlock(_) => self.err(
                    line,
                    "partials and decorators ({{> …}}, {{* …}}) are not supported: each template \
                     file stands alone"
                        .into(),
                ),
                _ => {}
            }
        }
    }

    fn expression(&mut self, h: &HelperTemplate, line: usize) {
        match &h.name {
            Parameter::Name(n) if INLINE_HELPERS.contains(&n.as_str()) => {}
            Parameter::Name(n) if h.params.is_empty() && h.hash.is_empty() => {
                self.path(n, line);
            }
            Parameter::Name(n) => self.err(
                line,
                format!(
                    "unknown helper \"{n}\"; available: {}",
                    INLINE_HELPERS.join(", ")
                ),
            ),
            Parameter::Path(p) if h.params.is_empty() && h.hash.is_empty() => {
                self.path(raw_path(p), line);
            }
            Parameter::Path(p) => {
                self.err(line, format!("unknown helper \"{}\"", raw_path(p)));
            }
            other => self.param(other, line),
        }
        self.params(&h.params, h.hash.values(), line);
    }

    fn params<'p>(
        &mut self,
        params: &[Parameter],
        hash: impl Iterator<Item = &'p Parameter>,
        line: usize,
    ) {
        for p in params {
            self.param(p, line);
        }
        for p in hash {
            self.param(p, line);
        }
    }

    fn param(&mut self, p: &Parameter, line: usize) {
        match p {
            Parameter::Name(n) => {
                self.path(n, line);
            }
            Parameter::Path(p) => {
                self.path(raw_path(p), line);
            }
            Parameter::Subexpression(s) => {
                let name = s.name().to_string();
                if !INLINE_HELPERS.contains(&name.as_str()) {
                    self.err(
                        line,
                        format!(
                            "unknown helper \"{name}\"; available: {}",
                            INLINE_HELPERS.join(", ")
                        ),
                    );
                }
                let params = s.params().cloned().unwrap_or_default();
                let hash: Vec<Parameter> = s
                    .hash()
                    .map(|h| h.values().cloned().collect())
                    .unwrap_or_default();
                self.params(&params, hash.iter(), line);
            }
            _ => {}
        }
    }

    fn block(&mut self, h: &HelperTemplate, line: usize) {
        let name = match &h.name {
            Parameter::Name(n) => n.clone(),
            _ => {
                self.err(
                    line,
                    "a block must open a helper: {{#if}}, {{#each}}…".into(),
                );
                return;
            }
        };
        if !BLOCK_HELPERS.contains(&name.as_str()) {
            self.err(
                line,
                format!(
                    "unknown block helper \"{name}\"; available: {}",
                    BLOCK_HELPERS.join(", ")
                ),
            );
            return;
        }
        if h.params.len() != 1 {
            self.err(line, format!("{{{{#{name}}}}} takes exactly one value"));
        }
        self.params(&h.params, h.hash.values(), line);
        let target = h.params.first().and_then(|p| self.value_of(p));
        match name.as_str() {
            "each" | "with" => {
                let label = match h.params.first() {
                    Some(Parameter::Path(p)) => format!("{{{{#{name} {}}}}}", raw_path(p)),
                    Some(Parameter::Name(n)) => format!("{{{{#{name} {n}}}}}"),
                    _ => format!("{{{{#{name}}}}}"),
                };
                let (inner, unchecked) = match (name.as_str(), target) {
                    ("each", Some(Value::Array(a))) => match a.first() {
                        Some(first) => (first, false),
                        None => (&Value::Null, true),
                    },
                    ("each", Some(Value::Object(_))) | (_, None) => (&Value::Null, true),
                    ("each", Some(_)) => {
                        self.err(line, format!("{label} needs a list"));
                        (&Value::Null, true)
                    }
                    (_, Some(v)) => (v, false),
                };
                let params = match &h.block_param {
                    Some(BlockParam::Single(Parameter::Name(n))) => vec![(n.clone(), inner)],
                    Some(BlockParam::Pair((Parameter::Name(v), Parameter::Name(_)))) => {
                        vec![(v.clone(), inner)]
                    }
                    _ => Vec::new(),
                };
                let unchecked = unchecked || self.stack.last().is_some_and(|s| s.unchecked);
                self.stack.push(Scope {
                    value: inner,
                    each: name == "each",
                    params,
                    unchecked,
                    label,
                });
                if let Some(t) = &h.template {
                    self.template(t, line);
                }
                self.stack.pop();
            }
            _ => {
                if let Some(t) = &h.template {
                    self.template(t, line);
                }
            }
        }
        if let Some(t) = &h.inverse {
            self.template(t, line);
        }
    }

    /// The sample value a parameter names, if it resolves.
    fn value_of(&self, p: &Parameter) -> Option<&'a Value> {
        let raw = match p {
            Parameter::Name(n) => n.as_str(),
            Parameter::Path(p) => raw_path(p),
            _ => return None,
        };
        self.resolve(raw).ok().flatten()
    }

    fn path(&mut self, raw: &str, line: usize) {
        if let Err(m) = self.resolve(raw) {
            self.err(line, m);
        }
    }

    /// `Ok(Some(v))`: resolves to `v`; `Ok(None)`: cannot be checked (no sample); `Err`: unknown.
    fn resolve(&self, raw: &str) -> Result<Option<&'a Value>, String> {
        let mut s = raw;
        for p in ["this.", "this/", "./"] {
            if let Some(r) = s.strip_prefix(p) {
                s = r;
            }
        }
        if s == "@root" {
            return Ok(Some(self.root));
        }
        if let Some(r) = s
            .strip_prefix("@root.")
            .or_else(|| s.strip_prefix("@root/"))
        {
            return self.walk(self.root, &segments(r), "").map(Some);
        }
        let mut up = 0;
        while let Some(r) = s.strip_prefix("../") {
            up += 1;
            s = r;
        }
        if up >= self.stack.len() {
            return Err(format!("\"{raw}\" goes above the top of the template"));
        }
        let depth = self.stack.len() - 1 - up;
        let scope = &self.stack[depth];
        if let Some(local) = s.strip_prefix('@') {
            return if LOCALS.contains(&local) && (scope.each || scope.unchecked) {
                Ok(None)
            } else if LOCALS.contains(&local) {
                Err(format!("@{local} exists only inside {{{{#each}}}}"))
            } else {
                Err(format!("unknown local variable \"@{local}\""))
            };
        }
        if scope.unchecked {
            return Ok(None);
        }
        if s.is_empty() || s == "this" || s == "." {
            return Ok(Some(scope.value));
        }
        let segs = segments(s);
        if up == 0 {
            if let Some(first) = segs.first() {
                for sc in self.stack.iter().rev() {
                    if let Some((_, v)) = sc.params.iter().find(|(n, _)| n == first) {
                        return self.walk(v, &segs[1..], first).map(Some);
                    }
                }
            }
        }
        self.walk(scope.value, &segs, &scope.label).map(Some)
    }

    fn walk(&self, mut v: &'a Value, segs: &[&str], label: &str) -> Result<&'a Value, String> {
        for (i, seg) in segs.iter().enumerate() {
            v = match v {
                Value::Object(m) => match m.get(*seg) {
                    Some(x) => x,
                    None if i == 0 => return Err(unknown(seg, v, label)),
                    None => return Err(unknown(&segs[..=i].join("."), v, label)),
                },
                Value::Array(a) if seg.parse::<usize>().is_ok() => match a.first() {
                    Some(x) => x,
                    None => return Ok(&Value::Null),
                },
                Value::Array(_) if *seg == "length" => &Value::Null,
                _ => {
                    return Err(format!(
                        "\"{}\" is a single value; it has no \"{seg}\"",
                        segs[..i].join(".")
                    ))
                }
            };
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(src: &str, html: bool) -> Vec<(usize, String)> {
        let root = json!({
            "sender": "a", "subject": "s", "null_sender": false,
            "objects": [{"object_name": "x", "status": "INFECTED"}],
            "rules": [{"rule_name": "r", "detections": [{"status": "S"}]}],
        });
        let t = Template::compile(src).unwrap();
        lint(&t, &root, html)
            .into_iter()
            .map(|e| (e.line, e.message))
            .collect()
    }

    #[test]
    fn known_names_pass_in_every_scope() {
        let src = "{{sender}}\n{{#each objects}}{{object_name}} {{@index}} {{../sender}} {{@root.subject}}{{/each}}\n\
                   {{#each rules as |r|}}{{#each r.detections}}{{status}} {{r.rule_name}}{{/each}}{{/each}}\n\
                   {{#if (eq sender \"x\")}}{{short subject 10}}{{else}}{{objects.0.status}}{{/if}}";
        assert_eq!(check(src, false), vec![]);
    }

    #[test]
    fn unknown_names_are_found_in_else_branches_and_loops_with_their_line() {
        let src = "ok {{sender}}\n{{#if null_sender}}x{{else}}{{sendr}}{{/if}}\n{{#each objects}}\n{{statuz}}{{/each}}";
        let e = check(src, false);
        assert_eq!(e.len(), 2, "{e:?}");
        assert_eq!(e[0].0, 2);
        assert!(e[0].1.contains("did you mean \"sender\""), "{}", e[0].1);
        assert_eq!(e[1].0, 4);
        assert!(e[1].1.contains("inside {{#each objects}}"), "{}", e[1].1);
    }

    #[test]
    fn unknown_helpers_partials_and_raw_html_are_refused() {
        assert!(check("{{upper sender}}", false)[0]
            .1
            .starts_with("unknown helper \"upper\""));
        assert!(check("{{#repeat sender}}{{/repeat}}", false)[0]
            .1
            .starts_with("unknown block helper"));
        assert!(check("{{> footer}}", false)[0].1.starts_with("partials"));
        assert!(check("{{{subject}}}", true)[0].1.starts_with("{{{…}}}"));
        assert_eq!(check("{{{subject}}}", false), vec![]);
        assert!(check("{{@index}}", false)[0].1.contains("only inside"));
    }
}

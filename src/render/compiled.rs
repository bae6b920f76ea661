//! A faster way to run the templates Handlebars has already parsed. Handlebars resolves every
//! `{{name}}` through its block-context machinery, allocates per expression and needs the whole
//! context as one JSON tree; the profile of issue 9 put about half of a rule notification's
//! render there. Most templates (all the built-in ones) use only a small part of the language:
//! text, `{{path}}`, `{{#if}}`/`{{#unless}}` (also on `(eq path literal)`), `{{#each}}` with
//! `{{else}}` and an item parameter, `@root.` paths (what KSMG macros become),
//! `@index`/`@first`/`@last` and our `short` helper. Those are compiled once, at load, into a
//! [`Program`] that writes straight into one `String`, looking names up in the
//! context's layers (the per-notification values first, then the values shared by every
//! notification of the same event).
//!
//! Anything else — another helper, `this`, `../`, other block parameters, an `{{#each}}` over an
//! object — leaves the template to Handlebars (`compile` returns `None`). And whenever a
//! program meets something it does not decide exactly as Handlebars would (a missing name,
//! which strict mode turns into an error; a value that is not a string, number, bool or null),
//! `render` returns [`Punt`] and the caller renders with Handlebars, so that output and error
//! messages stay Handlebars' own. `tests` checks byte equality on every built-in template.

use handlebars::template::{BlockParam, HelperTemplate, Parameter, Template, TemplateElement};
use handlebars::Path;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::fmt::Write;

/// A compiled template.
#[derive(Debug, Clone)]
pub struct Program {
    nodes: Vec<Node>,
}

#[derive(Debug, Clone)]
enum Node {
    Raw(String),
    Value(Vec<String>),
    Local(Local),
    Short(Vec<String>, u64),
    If {
        cond: Cond,
        negate: bool,
        then: Vec<Node>,
        inverse: Vec<Node>,
    },
    Each {
        path: Vec<String>,
        /// The block parameter naming the current item, if any.
        param: Option<String>,
        body: Vec<Node>,
        inverse: Option<Vec<Node>>,
    },
}

#[derive(Debug, Clone, Copy)]
enum Local {
    Index,
    First,
    Last,
}

#[derive(Debug, Clone)]
enum Cond {
    Truthy(Vec<String>),
    Eq(Vec<String>, Value),
}

/// The program met a case it leaves to Handlebars.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Punt;

/// Names that Handlebars would treat as helpers (built-in or ours), so never as a variable.
fn is_helper_name(n: &str) -> bool {
    matches!(
        n,
        "if" | "unless"
            | "each"
            | "with"
            | "lookup"
            | "log"
            | "eq"
            | "ne"
            | "gt"
            | "gte"
            | "lt"
            | "lte"
            | "and"
            | "or"
            | "not"
            | "len"
            | "short"
            | "raw"
    )
}

/// `a` or `a.b.c` made of plain identifiers: a path that means the same in every resolution.
fn plain_path(raw: &str) -> Option<Vec<String>> {
    let segs: Vec<String> = raw.split('.').map(str::to_string).collect();
    let ok = segs.iter().all(|s| {
        !s.is_empty()
            && s != "this"
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !s.bytes().all(|b| b.is_ascii_digit())
    });
    (ok && !is_helper_name(&segs[0])).then_some(segs)
}

/// `ROOT` as the first segment: the path starts at the root (`@root.x`, what KSMG macros
/// translate to), whatever loop it stands in.
const ROOT: &str = "@root";

fn path_param(p: &Parameter) -> Option<Vec<String>> {
    let raw = match p {
        Parameter::Name(n) => n,
        Parameter::Path(Path::Relative((_, raw))) => raw,
        _ => return None,
    };
    match raw.strip_prefix("@root.") {
        Some(rest) => plain_path(rest).map(|mut segs| {
            segs.insert(0, ROOT.to_string());
            segs
        }),
        None => plain_path(raw),
    }
}

fn local(p: &Parameter) -> Option<Local> {
    let raw = match p {
        Parameter::Name(n) => n.as_str(),
        Parameter::Path(Path::Local((0, _, raw))) => raw.as_str(),
        _ => return None,
    };
    match raw {
        "@index" => Some(Local::Index),
        "@first" => Some(Local::First),
        "@last" => Some(Local::Last),
        _ => None,
    }
}

fn name_of(h: &HelperTemplate) -> Option<&str> {
    match &h.name {
        Parameter::Name(n) => Some(n),
        Parameter::Path(Path::Relative((_, raw))) => Some(raw),
        _ => None,
    }
}

fn expression(h: &HelperTemplate) -> Option<Node> {
    if !h.hash.is_empty() || h.block_param.is_some() || h.template.is_some() {
        return None;
    }
    if h.params.is_empty() {
        if let Some(l) = local(&h.name) {
            return Some(Node::Local(l));
        }
        return path_param(&h.name).map(Node::Value);
    }
    match (name_of(h)?, h.params.as_slice()) {
        ("short", [v, Parameter::Literal(Value::Number(n))]) => {
            Some(Node::Short(path_param(v)?, n.as_u64()?))
        }
        _ => None,
    }
}

fn condition(p: &Parameter) -> Option<Cond> {
    match p {
        Parameter::Subexpression(s) => {
            let TemplateElement::Expression(h) = &*s.element else {
                return None;
            };
            if !h.hash.is_empty() || name_of(h)? != "eq" {
                return None;
            }
            match h.params.as_slice() {
                [a, Parameter::Literal(v)] => Some(Cond::Eq(path_param(a)?, v.clone())),
                _ => None,
            }
        }
        other => path_param(other).map(Cond::Truthy),
    }
}

fn block(h: &HelperTemplate) -> Option<Node> {
    if !h.hash.is_empty() || h.params.len() != 1 {
        return None;
    }
    // `{{#each list as |item|}}` (what `%DATA_BEGIN%` becomes); other block parameters are
    // left to Handlebars.
    let param = match &h.block_param {
        None => None,
        Some(BlockParam::Single(Parameter::Name(n))) if name_of(h)? == "each" => {
            Some(plain_path(n).filter(|p| p.len() == 1)?.remove(0))
        }
        Some(_) => return None,
    };
    let body = match &h.template {
        Some(t) => nodes(t)?,
        None => Vec::new(),
    };
    let inverse = match &h.inverse {
        Some(t) => Some(nodes(t)?),
        None => None,
    };
    match name_of(h)? {
        n @ ("if" | "unless") => Some(Node::If {
            cond: condition(&h.params[0])?,
            negate: n == "unless",
            then: body,
            inverse: inverse.unwrap_or_default(),
        }),
        "each" => Some(Node::Each {
            path: path_param(&h.params[0])?,
            param,
            body,
            inverse,
        }),
        _ => None,
    }
}

fn nodes(t: &Template) -> Option<Vec<Node>> {
    let mut out = Vec::with_capacity(t.elements.len());
    for e in &t.elements {
        match e {
            TemplateElement::RawString(s) => out.push(Node::Raw(s.clone())),
            TemplateElement::Comment(_) => {}
            // Both registries escape (or not) every `{{…}}` alike; `{{{…}}}` never escapes.
            TemplateElement::Expression(h) | TemplateElement::HtmlExpression(h) => {
                if matches!(e, TemplateElement::HtmlExpression(_)) {
                    // Unescaped output in the HTML registry: rare (the linter forbids it in
                    // HTML), so not worth a second node kind.
                    return None;
                }
                out.push(expression(h)?)
            }
            TemplateElement::HelperBlock(h) => out.push(block(h)?),
            _ => return None,
        }
    }
    Some(out)
}

/// Compiles `t`, or `None` when it uses something left to Handlebars.
pub fn compile(t: &Template) -> Option<Program> {
    nodes(t).map(|nodes| Program { nodes })
}

/// One layer of root variables.
#[derive(Debug, Clone, Copy)]
pub enum Layer<'a> {
    /// A JSON object as built (few keys, or built per render).
    Json(&'a Map<String, Value>),
    /// The same hashed once: for the many variables shared by a verdict's notifications, where
    /// the ordered map's linear in-node search was a third of a cached render (issue 9).
    Hashed(&'a HashMap<String, Value>),
}

impl<'a> Layer<'a> {
    fn get(self, key: &str) -> Option<&'a Value> {
        match self {
            Layer::Json(m) => m.get(key),
            Layer::Hashed(m) => m.get(key),
        }
    }

    /// Every variable of the layer.
    pub fn iter(self) -> Box<dyn Iterator<Item = (&'a String, &'a Value)> + 'a> {
        match self {
            Layer::Json(m) => Box::new(m.iter()),
            Layer::Hashed(m) => Box::new(m.iter()),
        }
    }
}

/// The values of one render: the root layers (looked up in order) and the loop frames.
struct Scope<'a> {
    root: &'a [Layer<'a>],
    frames: Vec<Frame<'a>>,
}

struct Frame<'a> {
    value: &'a Value,
    param: Option<&'a str>,
    index: usize,
    len: usize,
}

/// `s` as Handlebars' `html_escape` writes it.
fn escape_into(out: &mut String, s: &str) {
    let mut last = 0;
    for (i, b) in s.bytes().enumerate() {
        let rep = match b {
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            b'&' => "&amp;",
            b'\'' => "&#x27;",
            b'`' => "&#x60;",
            b'=' => "&#x3D;",
            _ => continue,
        };
        out.push_str(&s[last..i]);
        out.push_str(rep);
        last = i + 1;
    }
    out.push_str(&s[last..]);
}

impl<'a> Scope<'a> {
    fn lookup(&self, path: &[String]) -> Result<&'a Value, Punt> {
        let (mut first, mut rest) = path.split_first().ok_or(Punt)?;
        let root = first == ROOT;
        if root {
            (first, rest) = rest.split_first().ok_or(Punt)?;
        }
        // Block parameters come first, as in Handlebars, innermost loop first.
        let param = self
            .frames
            .iter()
            .rev()
            .find(|f| !root && f.param == Some(first.as_str()));
        let mut v = match (param, self.frames.last()) {
            (Some(f), _) => Some(f.value),
            (None, Some(f)) if !root => f.value.as_object().and_then(|m| m.get(first)),
            (None, _) => self.root.iter().find_map(|m| m.get(first)),
        }
        .ok_or(Punt)?;
        for seg in rest {
            v = v.as_object().and_then(|m| m.get(seg)).ok_or(Punt)?;
        }
        Ok(v)
    }
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(f64::is_normal),
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

fn write_value(out: &mut String, v: &Value, escape: bool) -> Result<(), Punt> {
    let put = |out: &mut String, s: &str| {
        if escape {
            escape_into(out, s)
        } else {
            out.push_str(s)
        }
    };
    match v {
        Value::String(s) => put(out, s),
        Value::Null => {}
        Value::Bool(b) => put(out, if *b { "true" } else { "false" }),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                let _ = write!(out, "{i}");
            } else if let Some(u) = n.as_u64() {
                let _ = write!(out, "{u}");
            } else {
                put(out, &n.to_string());
            }
        }
        Value::Array(_) | Value::Object(_) => return Err(Punt),
    }
    Ok(())
}

impl Program {
    /// Renders into `out` with the root `layers` (first match wins); `escape` is the HTML
    /// registry's escaping.
    pub fn render(&self, layers: &[Layer<'_>], escape: bool, out: &mut String) -> Result<(), Punt> {
        let mut scope = Scope {
            root: layers,
            frames: Vec::new(),
        };
        run(&self.nodes, &mut scope, escape, out)
    }
}

fn run<'a>(
    nodes: &'a [Node],
    scope: &mut Scope<'a>,
    escape: bool,
    out: &mut String,
) -> Result<(), Punt> {
    for n in nodes {
        match n {
            Node::Raw(s) => out.push_str(s),
            Node::Value(p) => write_value(out, scope.lookup(p)?, escape)?,
            Node::Local(l) => {
                let f = scope.frames.last().ok_or(Punt)?;
                match l {
                    Local::Index => {
                        let _ = write!(out, "{}", f.index);
                    }
                    Local::First => out.push_str(if f.index == 0 { "true" } else { "false" }),
                    Local::Last => out.push_str(if f.index + 1 == f.len {
                        "true"
                    } else {
                        "false"
                    }),
                }
            }
            Node::Short(p, n) => {
                let s = match scope.lookup(p)? {
                    Value::Null => "",
                    Value::String(s) => s.as_str(),
                    _ => return Err(Punt),
                };
                let n = usize::try_from(*n).unwrap_or(usize::MAX).max(1);
                let put = |out: &mut String, s: &str| {
                    if escape {
                        escape_into(out, s)
                    } else {
                        out.push_str(s)
                    }
                };
                match s.char_indices().nth(n) {
                    None => put(out, s),
                    Some(_) => {
                        let cut = s.char_indices().nth(n - 1).map_or(s.len(), |(i, _)| i);
                        put(out, &s[..cut]);
                        put(out, "…");
                    }
                }
            }
            Node::If {
                cond,
                negate,
                then,
                inverse,
            } => {
                let yes = match cond {
                    Cond::Truthy(p) => truthy(scope.lookup(p)?),
                    Cond::Eq(p, v) => scope.lookup(p)? == v,
                };
                run(
                    if yes != *negate { then } else { inverse },
                    scope,
                    escape,
                    out,
                )?;
            }
            Node::Each {
                path,
                param,
                body,
                inverse,
            } => match (scope.lookup(path)?, inverse) {
                (Value::Array(list), _) if !list.is_empty() => {
                    for (index, value) in list.iter().enumerate() {
                        scope.frames.push(Frame {
                            value,
                            param: param.as_deref(),
                            index,
                            len: list.len(),
                        });
                        let r = run(body, scope, escape, out);
                        scope.frames.pop();
                        r?;
                    }
                }
                (Value::Array(_), None) => {}
                (Value::Array(_) | Value::Null | Value::Bool(false), Some(inv)) => {
                    run(inv, scope, escape, out)?
                }
                _ => return Err(Punt),
            },
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn both(
        src: &str,
        ctx: &Value,
        escape: bool,
    ) -> (Result<String, Punt>, Result<String, String>) {
        let t = Template::compile(src).unwrap();
        // The renderer's own registries: strict, the same escaping, our `short` helper.
        let hb = super::super::templates::registry(escape);
        let reference = hb.render_template(src, ctx).map_err(|e| e.to_string());
        let program = compile(&t).ok_or(Punt);
        let fast = program.and_then(|p| {
            let mut out = String::new();
            let root = ctx.as_object().ok_or(Punt)?;
            p.render(&[Layer::Json(root)], escape, &mut out)
                .map(|()| out)
        });
        (fast, reference)
    }

    #[test]
    fn a_program_writes_what_handlebars_writes_or_leaves_the_case_to_it() {
        let ctx = json!({
            "s": "a<b>&\"'`=", "n": 0, "m": 1.5, "t": true, "z": null, "e": [], "list": ["x", "y"],
            "objs": [{"k": "one", "v": 1}, {"k": "two", "v": 0}], "long": "abcdefgh",
        });
        for escape in [false, true] {
            for src in [
                "{{s}}|{{n}}|{{m}}|{{t}}|{{z}}",
                "{{#if n}}yes{{else}}no{{/if}}{{#unless z}}u{{/unless}}{{#if e}}e{{/if}}",
                "{{#each objs}}{{@index}}{{@first}}{{@last}}{{k}}={{v}}{{#if v}}!{{/if}};{{else}}none{{/each}}",
                "{{#each e}}x{{else}}empty{{/each}}{{#each z}}x{{else}}null{{/each}}",
                "{{#each objs as |o|}}{{o.k}}{{@root.s}}{{/each}}",
                "{{#if (eq s \"a<b>&\\\"'`=\")}}eq{{/if}}{{short long 4}}{{short z 3}}",
            ] {
                let (fast, reference) = both(src, &ctx, escape);
                assert_eq!(fast.ok(), reference.ok(), "{src} (escape {escape})");
            }
        }
        // A list as a value and a missing name are Handlebars' to render or to report.
        assert_eq!(both("{{list}}", &ctx, false).0, Err(Punt));
        assert_eq!(both("{{missing}}", &ctx, false).0, Err(Punt));
        assert!(both("{{missing}}", &ctx, false).1.is_err());
        // Not compiled at all: `this`, `../`, other helpers.
        for src in [
            "{{#each list}}{{this}}{{/each}}",
            "{{#each objs}}{{../s}}{{/each}}",
            "{{len list}}",
        ] {
            assert!(compile(&Template::compile(src).unwrap()).is_none(), "{src}");
        }
    }
}

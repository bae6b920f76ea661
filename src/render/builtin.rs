//! The default templates, embedded in the binary so that a missing or partial template
//! directory never leaves a notification without a template. The files under `templates/` are
//! the source; an operator copies one, edits it and puts it in `[templates] dir`.

/// One built-in template: a name, a language and its three parts.
#[derive(Debug, Clone, Copy)]
pub struct Builtin {
    /// `rule/general`…
    pub name: &'static str,
    /// `en`, `ru`, `de`.
    pub lang: &'static str,
    /// `NAME.LANG.subject.hbs`.
    pub subject: &'static str,
    /// `NAME.LANG.text.hbs`.
    pub text: &'static str,
    /// `NAME.LANG.html.hbs`.
    pub html: &'static str,
}

macro_rules! one {
    ($name:literal, $lang:literal) => {
        Builtin {
            name: $name,
            lang: $lang,
            subject: include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/templates/",
                $name,
                ".",
                $lang,
                ".subject.hbs"
            )),
            text: include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/templates/",
                $name,
                ".",
                $lang,
                ".text.hbs"
            )),
            html: include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/templates/",
                $name,
                ".",
                $lang,
                ".html.hbs"
            )),
        }
    };
}

macro_rules! all {
    ($($name:literal),+ $(,)?) => {
        &[$(one!($name, "en"), one!($name, "ru"), one!($name, "de"),)+]
    };
}

/// The names of the built-in templates (the default of each rule group is `rule/<group>`).
pub const NAMES: &[&str] = &[
    "rule/general",
    "rule/sender",
    "rule/recipients",
    "rule/additional",
    "rule/cap-summary",
    "bounce/notice",
    "bounce/burst-summary",
    "application/digest",
    "application/change",
];

/// Every built-in template in every built-in language.
pub const BUILTIN: &[Builtin] = all!(
    "rule/general",
    "rule/sender",
    "rule/recipients",
    "rule/additional",
    "rule/cap-summary",
    "bounce/notice",
    "bounce/burst-summary",
    "application/digest",
    "application/change",
);

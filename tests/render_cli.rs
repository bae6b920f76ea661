//! The operator's commands: `check-config` compiles the templates and names file and line of
//! every problem (exit 2); `render` previews the complete messages an event would produce.

use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mailgate-notify"))
}

fn root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn check(config: &str) -> (Option<i32>, String) {
    let out = bin()
        .args(["check-config", "--config"])
        .arg(root().join("tests/fixtures/config").join(config))
        .current_dir(root())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn check_config_exits_2_naming_file_and_line_of_a_template_syntax_error() {
    let (code, out) = check("templates_syntax_error.toml");
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("tests/fixtures/templates/syntax_error/rule/general.en.text.hbs:7: syntax error: {{/if}} closes {{#each}} opened on line 5"),
        "{out}"
    );
    assert_eq!(out.lines().count(), 1, "one problem, one line: {out}");
}

#[test]
fn check_config_exits_2_naming_file_and_line_of_an_unknown_variable() {
    let (code, out) = check("templates_unknown_variable.toml");
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("templates/unknown_variable/rule/general.en.text.hbs:5: unknown variable \"statuz\" inside {{#each objects}}; did you mean \"status\"?"),
        "{out}"
    );
}

#[test]
fn check_config_exits_2_naming_file_and_line_of_an_unknown_macro() {
    let (code, out) = check("templates_unknown_macro.toml");
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("templates/unknown_macro/rule/general.en.text.hbs:2: unknown macro %SENDR%;"),
        "{out}"
    );
    assert!(out.contains("write %% for a literal percent sign"), "{out}");
}

#[test]
fn check_config_accepts_an_operator_template_mixing_macros_and_handlebars() {
    let (code, out) = check("templates_good.toml");
    assert_eq!((code, out.trim()), (Some(0), "ok"));
}

fn render(args: &[&str]) -> Output {
    bin()
        .arg("render")
        .args(args)
        .current_dir(root())
        .output()
        .unwrap()
}

fn banners(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| {
            l.starts_with("#### ")
                && l.contains(": ")
                && !l.starts_with("#### template")
                && !l.starts_with("#### note")
        })
        .map(str::to_string)
        .collect()
}

const CONFIG: &str = "tests/fixtures/render/config.toml";

#[test]
fn render_previews_one_message_per_group_for_a_scan_verdict() {
    let out = render(&[
        "--config",
        CONFIG,
        "--event",
        "tests/fixtures/events/scan_verdict.json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        banners(&out),
        [
            "#### 1/4: rule notification for group \"general\"",
            "#### 2/4: rule notification for group \"sender\"",
            "#### 3/4: rule notification for group \"recipients\"",
            "#### 4/4: rule notification for group \"additional\"",
        ]
    );
    for to in [
        "security@example.com",
        "mallory@sender.example",
        "bob@example.com",
        "av-team@example.com",
    ] {
        assert!(
            text.contains(&format!("\r\nTo: {to}\r\n")),
            "no message to {to}"
        );
    }
    assert!(text.contains("#### template rule/sender (en, built-in); envelope <notify@mail.example.com> -> <mallory@sender.example>"), "{text}");
    assert_eq!(text.matches("\r\nMessage-ID: <").count(), 4);
}

#[test]
fn render_previews_only_the_chosen_group_in_the_chosen_language() {
    let out = render(&[
        "--config",
        CONFIG,
        "--event",
        "tests/fixtures/events/scan_verdict.json",
        "--group",
        "recipients",
        "--lang",
        "de",
    ]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        banners(&out),
        ["#### 1/1: rule notification for group \"recipients\""]
    );
    assert!(
        text.contains("#### template rule/recipients (de, built-in)"),
        "{text}"
    );
}

#[test]
fn render_previews_the_bounce_notice_and_the_application_change_and_digest() {
    let out = render(&[
        "--config",
        CONFIG,
        "--event",
        "tests/fixtures/events/bounce_event.json",
    ]);
    assert!(out.status.success());
    assert_eq!(banners(&out), ["#### 1/1: bounce notice (en)"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("\r\nTo: postmaster@example.com\r\n"));

    let out = render(&[
        "--config",
        CONFIG,
        "--event",
        "tests/fixtures/events/application_event.json",
    ]);
    assert!(out.status.success());
    assert_eq!(
        banners(&out),
        ["#### 1/1: application change notification (en)"]
    );
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains("#### template application/change (en, built-in)"));

    let out = render(&[
        "--config",
        CONFIG,
        "--event",
        "tests/fixtures/events/application_event.json",
        "--digest",
    ]);
    assert!(out.status.success());
    assert_eq!(banners(&out), ["#### 1/1: application digest (en)"]);
}

#[test]
fn render_with_a_broken_template_directory_exits_2_naming_the_problem() {
    let out = render(&[
        "--config",
        "tests/fixtures/config/templates_unknown_macro.toml",
        "--event",
        "tests/fixtures/events/scan_verdict.json",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("general.en.text.hbs:2: unknown macro %SENDR%"));
}

//! KSMG macros (`%SENDER%`, `%DATA_BEGIN%`…) translated at load time into the Handlebars
//! variables they stand for, so both notations mix freely in one template and strict mode
//! checks both. Replacements never add a line, so every later error keeps its line number.
//!
//! `%DATA_BEGIN%…%DATA_END%` loops over the detected objects: inside it `%OBJECT_NAME%`,
//! `%OBJECT_SIZE%`, `%STATUS%` and `%OBJECT_ACTION%` describe one object (through a block
//! parameter, so they stay right inside an operator's own `{{#if}}`/`{{#with}}`); outside it
//! they describe the whole message. `%%` is a literal `%`; a `%` not followed by an upper-case
//! word and a `%` is literal anyway (`95%`).

use serde_json::Value;

/// The block parameter that names the current object inside `%DATA_BEGIN%…%DATA_END%`.
pub const OBJECT_PARAM: &str = "ksmg_object";

/// Every KSMG macro and the root variable it reads (`None` for the loop markers and the
/// object macros, which depend on where they stand).
pub const MACROS: &[(&str, Option<&str>)] = &[
    ("NODE_IP", Some("node_ip")),
    ("NODE_PORT", Some("node_port")),
    ("PRODUCT_NAME", Some("product_name")),
    ("SMTP_MESSAGE_ID", Some("smtp_message_id")),
    ("SENDER", Some("sender")),
    ("SENDER_IP", Some("sender_ip")),
    ("ALL_RECIPIENTS", Some("all_recipients")),
    ("AFFECTED_RECIPIENTS", Some("affected_recipients")),
    ("AFFECTED_RULES", Some("affected_rules")),
    ("MESSAGE_ID", Some("message_id")),
    ("SUBJECT", Some("subject")),
    ("DATE", Some("date")),
    ("MESSAGE_ACTION", Some("message_action")),
    ("NOTIFICATION_ID", Some("notification_id")),
    ("OBJECT_NAME", None),
    ("OBJECT_SIZE", None),
    ("STATUS", None),
    ("OBJECT_ACTION", None),
    ("DATA_BEGIN", None),
    ("DATA_END", None),
];

fn object_var(word: &str) -> Option<&'static str> {
    Some(match word {
        "OBJECT_NAME" => "object_name",
        "OBJECT_SIZE" => "object_size",
        "STATUS" => "status",
        "OBJECT_ACTION" => "object_action",
        _ => return None,
    })
}

/// One problem found while translating, with its 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacroError {
    /// Line of the macro.
    pub line: usize,
    /// What is wrong and what to write instead.
    pub message: String,
}

/// Translates the macros of `src`. `root` is a sample context of the template's kind: a macro
/// whose variable it lacks (`%SENDER%` in an application notification) is an error, as is an
/// unknown `%WORD%` and an unbalanced `%DATA_BEGIN%`/`%DATA_END%`. `kind` names the kind in
/// messages.
pub fn translate(src: &str, root: &Value, kind: &str) -> Result<String, Vec<MacroError>> {
    let bytes = src.as_bytes();
    let mut out = String::with_capacity(src.len() + 64);
    let mut errors = Vec::new();
    let mut line = 1;
    let mut copied = 0;
    let mut i = 0;
    let mut open_data: Option<usize> = None;
    let has = |key: &str| root.get(key).is_some();
    while i < bytes.len() {
        match bytes[i] {
            b'\n' => {
                line += 1;
                i += 1;
            }
            b'%' if bytes.get(i + 1) == Some(&b'%') => {
                out.push_str(&src[copied..=i]);
                i += 2;
                copied = i;
            }
            b'%' if bytes.get(i + 1).is_some_and(u8::is_ascii_uppercase) => {
                let mut k = i + 1;
                while k < bytes.len()
                    && (bytes[k].is_ascii_uppercase()
                        || bytes[k].is_ascii_digit()
                        || bytes[k] == b'_')
                {
                    k += 1;
                }
                if bytes.get(k) != Some(&b'%') {
                    i = k;
                    continue;
                }
                let word = &src[i + 1..k];
                out.push_str(&src[copied..i]);
                let replacement = match (word, open_data) {
                    ("DATA_BEGIN", Some(at)) => Err(format!(
                        "%DATA_BEGIN% inside the object list opened on line {at}; close it with %DATA_END% first"
                    )),
                    ("DATA_BEGIN", None) if !has("objects") => Err(format!(
                        "%DATA_BEGIN% has no objects to list in {kind} notifications"
                    )),
                    ("DATA_BEGIN", None) => {
                        open_data = Some(line);
                        Ok(format!("{{{{#each @root.objects as |{OBJECT_PARAM}|}}}}"))
                    }
                    ("DATA_END", None) => {
                        Err("%DATA_END% without a %DATA_BEGIN% before it".to_string())
                    }
                    ("DATA_END", Some(_)) => {
                        open_data = None;
                        Ok("{{/each}}".to_string())
                    }
                    (w, open) => match (object_var(w), MACROS.iter().find(|(m, _)| *m == w)) {
                        (Some(var), _) if open.is_some() => Ok(format!("{{{{{OBJECT_PARAM}.{var}}}}}")),
                        (Some(var), _) if has(var) => Ok(format!("{{{{@root.{var}}}}}")),
                        (_, Some((_, Some(var)))) if has(var) => Ok(format!("{{{{@root.{var}}}}}")),
                        (_, Some(_)) => Err(format!("%{w}% has no value in {kind} notifications")),
                        (_, None) => Err(format!(
                            "unknown macro %{w}%; known: {}; write %% for a literal percent sign",
                            MACROS.iter().map(|(m, _)| format!("%{m}%")).collect::<Vec<_>>().join(" ")
                        )),
                    },
                };
                match replacement {
                    Ok(r) => out.push_str(&r),
                    Err(message) => {
                        errors.push(MacroError { line, message });
                        out.push_str(&src[i..=k]);
                    }
                }
                i = k + 1;
                copied = i;
            }
            _ => i += 1,
        }
    }
    out.push_str(&src[copied..]);
    if let Some(at) = open_data {
        errors.push(MacroError {
            line: at,
            message: "%DATA_BEGIN% is never closed with %DATA_END%".into(),
        });
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn root() -> Value {
        json!({"sender": "a", "subject": "s", "object_name": "Message", "status": "x",
               "object_size": 1, "object_action": "Skipped", "objects": []})
    }

    #[test]
    fn macros_become_root_variables_and_object_macros_depend_on_the_loop() {
        let t = translate(
            "From %SENDER%: %OBJECT_NAME%\n%DATA_BEGIN%- %OBJECT_NAME% %STATUS%\n%DATA_END%",
            &root(),
            "rule",
        )
        .unwrap();
        assert_eq!(
            t,
            "From {{@root.sender}}: {{@root.object_name}}\n{{#each @root.objects as |ksmg_object|}}- {{ksmg_object.object_name}} {{ksmg_object.status}}\n{{/each}}"
        );
    }

    #[test]
    fn a_literal_percent_stays_possible() {
        assert_eq!(
            translate("95% and 100%%SENDER% and 5%d", &root(), "rule").unwrap(),
            "95% and 100%SENDER% and 5%d"
        );
        assert_eq!(
            translate("%E2 %x% %", &root(), "rule").unwrap(),
            "%E2 %x% %"
        );
    }

    #[test]
    fn unknown_and_unavailable_macros_name_their_line() {
        let e = translate("ok\n%SENDR%\n%SENDER_IP%", &root(), "rule").unwrap_err();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].line, 2);
        assert!(
            e[0].message.starts_with("unknown macro %SENDR%"),
            "{}",
            e[0].message
        );
        assert_eq!(e[1].line, 3);
        assert_eq!(
            e[1].message,
            "%SENDER_IP% has no value in rule notifications"
        );
    }

    #[test]
    fn data_markers_must_balance() {
        let e = translate("%DATA_BEGIN%\n%DATA_BEGIN%\n", &root(), "rule").unwrap_err();
        assert_eq!(e.iter().map(|e| e.line).collect::<Vec<_>>(), vec![2, 1]);
        let e = translate("x\n%DATA_END%", &root(), "rule").unwrap_err();
        assert_eq!(e[0].line, 2);
    }
}

//! What the console's page may ask for, as `xgate` command lines.
//!
//! The console signs nothing itself: every action is the command an
//! operator would type (`xgate asset offer --tag ... --to ...`), run in
//! the console's process with the agency's `--pki`, `--as` and
//! `--gateway`, so an envelope the page sends is the CLI's envelope to the
//! byte (same checks before sending, same `jti`, same sealing). This file
//! is the one table of which commands, and which of their flags, the page
//! may name.
//!
//! Every value goes in as `--flag=value` (or after `--` for a positional,
//! or as standard input for an inventory report),
//! so a value starting with `-` is a value, never a flag; a field the
//! action does not list, or a value that is not a string (a list for
//! `repeat` flags), is refused before anything runs.
//!
//! Each action also says what its command prints ([`Output`]): JSON lines
//! for nearly all, text lines for a person for `contracts.explain`
//! (`xgate contracts explain`), which the console hands on as strings.

use serde_json::{Map, Value};

/// One action: the command words and the fields it takes.
struct Action {
    /// The name the page sends.
    name: &'static str,
    /// The `xgate` command words.
    words: &'static [&'static str],
    /// The fields the page may give, each the flag of the same name.
    fields: &'static [Field],
    /// Flags always added (`--all`).
    fixed: &'static [&'static str],
    /// Whether the action signs and submits an envelope (the page offers
    /// these only as buttons; reads run on every refresh).
    signs: bool,
    /// What the command prints.
    output: Output,
}

/// What a command prints, and so how the console hands it to the page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// One JSON value per line: each line goes to the page as that value.
    Json,
    /// Lines of text for a person (`xgate contracts explain`): each line
    /// goes to the page as a string, never read as JSON.
    Text,
}

/// One field of an action.
struct Field {
    name: &'static str,
    how: How,
}

/// How a field becomes arguments.
#[derive(Clone, Copy, PartialEq, Eq)]
enum How {
    /// `--name=value`, required by the command or not.
    Flag,
    /// `--name=value` once per item of a list.
    Repeat,
    /// The command's positional argument, after `--`.
    Positional,
    /// The command's standard input: a JSON object (for a command reading
    /// `-`, which `fixed` names).
    Stdin,
}

const fn flag(name: &'static str) -> Field {
    Field {
        name,
        how: How::Flag,
    }
}

const ACTIONS: &[Action] = &[
    Action {
        name: "inbox",
        words: &["inbox"],
        fields: &[],
        fixed: &[],
        signs: false,
        output: Output::Json,
    },
    Action {
        name: "outbox",
        words: &["outbox"],
        fields: &[],
        fixed: &[],
        signs: false,
        output: Output::Json,
    },
    Action {
        name: "asset.list",
        words: &["asset", "list"],
        fields: &[flag("status")],
        fixed: &["--all"],
        signs: false,
        output: Output::Json,
    },
    Action {
        name: "asset.show",
        words: &["asset", "show"],
        fields: &[Field {
            name: "tag",
            how: How::Positional,
        }],
        fixed: &[],
        signs: false,
        output: Output::Json,
    },
    Action {
        name: "asset.register",
        words: &["asset", "register"],
        fields: &[
            flag("tag"),
            flag("serial"),
            flag("category"),
            flag("description"),
            flag("person"),
            flag("location"),
        ],
        fixed: &[],
        signs: true,
        output: Output::Json,
    },
    Action {
        name: "asset.offer",
        words: &["asset", "offer"],
        fields: &[flag("tag"), flag("to"), flag("person"), flag("reason")],
        fixed: &[],
        signs: true,
        output: Output::Json,
    },
    Action {
        name: "asset.accept",
        words: &["asset", "accept"],
        fields: &[flag("tag"), flag("offer"), flag("from"), flag("location")],
        fixed: &[],
        signs: true,
        output: Output::Json,
    },
    Action {
        name: "asset.reject",
        words: &["asset", "reject"],
        fields: &[flag("tag"), flag("offer"), flag("from")],
        fixed: &[],
        signs: true,
        output: Output::Json,
    },
    Action {
        name: "asset.approve",
        words: &["asset", "approve"],
        fields: &[flag("tag"), flag("act"), flag("approver")],
        fixed: &[],
        signs: true,
        output: Output::Json,
    },
    Action {
        name: "asset.deny",
        words: &["asset", "deny"],
        fields: &[flag("tag"), flag("act"), flag("approver")],
        fixed: &[],
        signs: true,
        output: Output::Json,
    },
    Action {
        name: "inventory.report",
        words: &["inventory", "report"],
        fields: &[Field {
            name: "report",
            how: How::Stdin,
        }],
        fixed: &["--show", "--", "-"],
        signs: true,
        output: Output::Json,
    },
    Action {
        name: "medical.request",
        words: &["medical", "request"],
        fields: &[
            flag("to"),
            flag("subject"),
            flag("purpose"),
            flag("incident"),
            flag("responder"),
            flag("role"),
            Field {
                name: "section",
                how: How::Repeat,
            },
        ],
        fixed: &[],
        signs: true,
        output: Output::Json,
    },
    Action {
        name: "medical.show",
        words: &["medical", "show"],
        fields: &[
            flag("requester"),
            Field {
                name: "request",
                how: How::Positional,
            },
        ],
        fixed: &[],
        signs: false,
        output: Output::Json,
    },
    Action {
        name: "medical.open",
        words: &["medical", "open"],
        fields: &[flag("response")],
        fixed: &[],
        signs: false,
        output: Output::Json,
    },
    Action {
        name: "medical.approve",
        words: &["medical", "approve"],
        fields: &[flag("request"), flag("ttl-hours"), flag("uses")],
        fixed: &[],
        signs: true,
        output: Output::Json,
    },
    Action {
        name: "medical.reviews",
        words: &["medical", "reviews"],
        fields: &[],
        fixed: &[],
        signs: false,
        output: Output::Json,
    },
    Action {
        name: "medical.review",
        words: &["medical", "review"],
        fields: &[flag("request"), flag("outcome"), flag("note")],
        fixed: &[],
        signs: true,
        output: Output::Json,
    },
    Action {
        name: "contracts.list",
        words: &["contracts", "list"],
        fields: &[],
        fixed: &[],
        signs: false,
        output: Output::Json,
    },
    Action {
        name: "contracts.explain",
        words: &["contracts", "explain"],
        fields: &[Field {
            name: "entry",
            how: How::Positional,
        }],
        fixed: &[],
        signs: false,
        output: Output::Text,
    },
];

/// A command line to run for the page, with its standard input.
#[derive(Debug, PartialEq, Eq)]
pub struct Invocation {
    /// The arguments after the program name, connection flags included.
    pub args: Vec<String>,
    /// What the command reads as standard input (empty for most).
    pub stdin: Vec<u8>,
    /// Whether it signs and submits an envelope.
    pub signs: bool,
    /// What it prints: JSON lines, or text lines for a person.
    pub output: Output,
}

/// Why the page's request names no command.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ActionError {
    /// No action of that name.
    #[error("there is no action {0:?}")]
    Unknown(String),
    /// A field the action does not take.
    #[error("action {action} takes no field {field:?}")]
    Field {
        /// The action.
        action: &'static str,
        /// The field.
        field: String,
    },
    /// A value of the wrong type.
    #[error("field {0:?} must be {1}")]
    Type(String, &'static str),
}

/// The connection flags every command gets: the console's own, never the
/// page's.
#[derive(Debug, Clone)]
pub struct Identity {
    /// `--pki`.
    pub pki: String,
    /// `--as`.
    pub agency: String,
    /// `--gateway`.
    pub gateway: String,
}

/// The command line for `action` with `fields`, as `identity`.
///
/// # Errors
/// [`ActionError`]: an unknown action, a field it does not take, or a
/// value of the wrong type.
pub fn invocation(
    identity: &Identity,
    action: &str,
    fields: &Map<String, Value>,
) -> Result<Invocation, ActionError> {
    let spec = ACTIONS
        .iter()
        .find(|a| a.name == action)
        .ok_or_else(|| ActionError::Unknown(action.chars().take(40).collect()))?;
    if let Some(unknown) = fields
        .keys()
        .find(|k| !spec.fields.iter().any(|f| f.name == k.as_str()))
    {
        return Err(ActionError::Field {
            action: spec.name,
            field: unknown.chars().take(40).collect(),
        });
    }
    let mut args: Vec<String> = spec.words.iter().map(|w| (*w).to_owned()).collect();
    args.push(format!("--pki={}", identity.pki));
    args.push(format!("--as={}", identity.agency));
    args.push(format!("--gateway={}", identity.gateway));
    let mut positional = None;
    let mut stdin = Vec::new();
    for field in spec.fields {
        let Some(value) = fields.get(field.name) else {
            continue;
        };
        match field.how {
            How::Stdin if value.is_object() => stdin = value.to_string().into_bytes(),
            How::Stdin => return Err(ActionError::Type(field.name.into(), "a JSON object")),
            How::Flag => args.push(format!("--{}={}", field.name, text(field.name, value)?)),
            How::Repeat => {
                let items = value
                    .as_array()
                    .ok_or_else(|| ActionError::Type(field.name.into(), "a list of strings"))?;
                for item in items {
                    args.push(format!("--{}={}", field.name, text(field.name, item)?));
                }
            }
            How::Positional => positional = Some(text(field.name, value)?),
        }
    }
    args.extend(spec.fixed.iter().map(|f| (*f).to_owned()));
    if let Some(p) = positional {
        args.push("--".into());
        args.push(p);
    }
    Ok(Invocation {
        args,
        stdin,
        signs: spec.signs,
        output: spec.output,
    })
}

/// A field's value as one argument: a string, or a number as written.
fn text(name: &str, value: &Value) -> Result<String, ActionError> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        _ => Err(ActionError::Type(name.into(), "a string")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn me() -> Identity {
        Identity {
            pki: "/p".into(),
            agency: "gsa".into(),
            gateway: "https://127.0.0.1:8443".into(),
        }
    }

    fn fields(v: Value) -> Map<String, Value> {
        v.as_object().cloned().expect("object")
    }

    #[test]
    fn an_offer_is_the_cli_command_with_the_consoles_identity() {
        let got = invocation(
            &me(),
            "asset.offer",
            &fields(json!({"tag": "LAP-1", "to": "state", "person": "p-2", "reason": "move"})),
        )
        .expect("offer");
        assert_eq!(
            got.args,
            [
                "asset",
                "offer",
                "--pki=/p",
                "--as=gsa",
                "--gateway=https://127.0.0.1:8443",
                "--tag=LAP-1",
                "--to=state",
                "--person=p-2",
                "--reason=move"
            ]
        );
        assert!(got.signs);
    }

    /// The page cannot choose whom the console acts as, nor add a flag.
    #[test]
    fn the_page_cannot_name_the_connection_or_smuggle_a_flag() {
        for bad in ["pki", "as", "gateway", "jti", "plain", "reply-key"] {
            let e = invocation(&me(), "asset.offer", &fields(json!({ bad: "x" })));
            assert!(matches!(e, Err(ActionError::Field { .. })), "{bad}: {e:?}");
        }
        let got = invocation(
            &me(),
            "asset.reject",
            &fields(json!({"tag": "--as=state", "offer": "-cK8"})),
        )
        .expect("values");
        assert!(got.args.contains(&"--tag=--as=state".to_owned()));
        assert!(got.args.contains(&"--offer=-cK8".to_owned()));
        let show =
            invocation(&me(), "asset.show", &fields(json!({"tag": "--help"}))).expect("positional");
        assert_eq!(show.args[show.args.len() - 2..], ["--", "--help"]);
    }

    #[test]
    fn unknown_actions_and_wrong_types_are_refused() {
        assert_eq!(
            invocation(&me(), "serve", &Map::new()),
            Err(ActionError::Unknown("serve".into()))
        );
        let e = invocation(&me(), "asset.offer", &fields(json!({"tag": ["a"]})));
        assert!(matches!(e, Err(ActionError::Type(..))), "{e:?}");
        let e = invocation(&me(), "medical.request", &fields(json!({"section": "x"})));
        assert!(matches!(e, Err(ActionError::Type(..))), "{e:?}");
        let e = invocation(&me(), "inventory.report", &fields(json!({"report": "x"})));
        assert!(matches!(e, Err(ActionError::Type(..))), "{e:?}");
    }

    #[test]
    fn a_report_goes_in_on_standard_input_and_sections_repeat() {
        let report = json!({"location": "HQ-3", "reported_by": "p-1", "observed": [{"tag": "A"}]});
        let got = invocation(
            &me(),
            "inventory.report",
            &fields(json!({ "report": report.clone() })),
        )
        .expect("report");
        assert_eq!(got.args[got.args.len() - 3..], ["--show", "--", "-"]);
        assert_eq!(
            serde_json::from_slice::<Value>(&got.stdin).expect("json"),
            report
        );
        let got = invocation(
            &me(),
            "medical.request",
            &fields(json!({"section": ["allergies", "medications"]})),
        )
        .expect("request");
        assert!(got.args.ends_with(&[
            "--section=allergies".to_owned(),
            "--section=medications".to_owned()
        ]));
    }

    /// A held offer is decided with the approver the page names; the
    /// explanation of an entry is text, its index the positional argument.
    #[test]
    fn approvals_sign_and_explanations_are_text() {
        let got = invocation(
            &me(),
            "asset.approve",
            &fields(json!({"tag": "LAP-7", "act": 12, "approver": "p-5"})),
        )
        .expect("approve");
        assert!(
            got.args
                .starts_with(&["asset".to_owned(), "approve".to_owned()])
        );
        assert!(got.args.ends_with(&[
            "--tag=LAP-7".to_owned(),
            "--act=12".to_owned(),
            "--approver=p-5".to_owned()
        ]));
        assert!(got.signs);
        assert_eq!(got.output, Output::Json);
        let deny = invocation(&me(), "asset.deny", &fields(json!({"tag": "LAP-7"}))).expect("deny");
        assert_eq!(deny.args[..2], ["asset", "deny"]);
        assert!(deny.signs);

        let explain =
            invocation(&me(), "contracts.explain", &fields(json!({"entry": 17}))).expect("explain");
        assert_eq!(explain.args[..2], ["contracts", "explain"]);
        assert_eq!(explain.args[explain.args.len() - 2..], ["--", "17"]);
        assert!(!explain.signs);
        assert_eq!(explain.output, Output::Text);
        let list = invocation(&me(), "contracts.list", &Map::new()).expect("list");
        assert_eq!(list.output, Output::Json);
        assert!(!list.signs);
        let e = invocation(
            &me(),
            "contracts.list",
            &fields(json!({"registry": "/etc"})),
        );
        assert!(matches!(e, Err(ActionError::Field { .. })), "{e:?}");
    }

    #[test]
    fn every_action_has_a_distinct_name() {
        let mut names: Vec<&str> = ACTIONS.iter().map(|a| a.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ACTIONS.len());
    }
}

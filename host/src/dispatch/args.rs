//! Parsing a typed command line into the arguments a command declares, so that a prefix
//! command and a slash command reach the plugin in the same shape.

use crate::bindings::types::{Argument, CommandSpec, OptionKind, OptionSpec, Value};

/// Parses `raw` against `spec`; the error is a message for the user, usage included.
pub fn parse(spec: &CommandSpec, prefix: &str, raw: &str) -> Result<Vec<Argument>, String> {
    let usage = || usage(spec, prefix);
    let mut rest = raw.trim_start();
    let mut args = Vec::new();
    for option in &spec.options {
        if rest.is_empty() {
            if option.required {
                return Err(format!("Missing <{}>. Usage: {}", option.name, usage()));
            }
            break;
        }
        let text = if option.kind == OptionKind::Rest {
            std::mem::take(&mut rest).trim_end().to_owned()
        } else {
            let (token, after) = next_token(rest);
            rest = after.trim_start();
            token
        };
        let value = value(option, &text)
            .map_err(|problem| format!("<{}> {problem}. Usage: {}", option.name, usage()))?;
        args.push(Argument {
            name: option.name.clone(),
            value,
        });
    }
    if !rest.is_empty() {
        return Err(format!("Too many arguments. Usage: {}", usage()));
    }
    Ok(args)
}

/// `!roll <sides> [count]`: required options in angle brackets, optional ones in square.
pub fn usage(spec: &CommandSpec, prefix: &str) -> String {
    let mut line = format!("{prefix}{}", spec.name);
    for option in &spec.options {
        let dots = if option.kind == OptionKind::Rest {
            "..."
        } else {
            ""
        };
        if option.required {
            line.push_str(&format!(" <{}{dots}>", option.name));
        } else {
            line.push_str(&format!(" [{}{dots}]", option.name));
        }
    }
    line
}

/// One word, or a "quoted phrase" without its quotes.
fn next_token(text: &str) -> (String, &str) {
    if let Some(quoted) = text.strip_prefix('"')
        && let Some(end) = quoted.find('"')
    {
        return (quoted[..end].to_owned(), &quoted[end + 1..]);
    }
    let end = text.find(char::is_whitespace).unwrap_or(text.len());
    (text[..end].to_owned(), &text[end..])
}

fn value(option: &OptionSpec, text: &str) -> Result<Value, String> {
    if !option.choices.is_empty() && !option.choices.iter().any(|c| c.value == text) {
        let choices: Vec<&str> = option.choices.iter().map(|c| c.value.as_str()).collect();
        return Err(format!("must be one of: {}", choices.join(", ")));
    }
    Ok(match option.kind {
        OptionKind::Text | OptionKind::Rest => Value::Text(text.to_owned()),
        OptionKind::Integer => Value::Integer(
            text.parse()
                .map_err(|_| format!("must be a whole number, not {text:?}"))?,
        ),
        OptionKind::Number => {
            let number: f64 = text
                .parse()
                .map_err(|_| format!("must be a number, not {text:?}"))?;
            if !number.is_finite() {
                return Err(format!("must be a finite number, not {text:?}"));
            }
            Value::Number(number)
        }
        OptionKind::Boolean => Value::Boolean(match text.to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => true,
            "false" | "no" | "off" | "0" => false,
            _ => return Err(format!("must be yes or no, not {text:?}")),
        }),
        OptionKind::User => Value::User(mention(text, &["<@!", "<@"]).ok_or("must be a user")?),
        OptionKind::Channel => Value::Channel(mention(text, &["<#"]).ok_or("must be a channel")?),
        OptionKind::Role => Value::Role(mention(text, &["<@&"]).ok_or("must be a role")?),
    })
}

/// The id in a platform mention (`<@123>`, `<#123>`, `<@&123>`) or a bare id.
fn mention(text: &str, openers: &[&str]) -> Option<String> {
    let id = openers
        .iter()
        .find_map(|opener| text.strip_prefix(opener)?.strip_suffix('>'))
        .unwrap_or(text);
    let valid = !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    valid.then(|| id.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn option(name: &str, kind: OptionKind, required: bool) -> OptionSpec {
        OptionSpec {
            name: name.into(),
            description: String::new(),
            kind,
            required,
            choices: vec![],
        }
    }

    fn spec(options: Vec<OptionSpec>) -> CommandSpec {
        CommandSpec {
            name: "roll".into(),
            description: String::new(),
            aliases: vec![],
            options,
            permissions: vec![],
            staff_only: false,
            cooldown: None,
            localizations: vec![],
        }
    }

    #[test]
    fn typed_arguments_in_order() {
        let spec = spec(vec![
            option("sides", OptionKind::Integer, true),
            option("loud", OptionKind::Boolean, false),
            option("note", OptionKind::Rest, false),
        ]);
        let args = parse(&spec, "!", " 20 yes  lucky \"roll\" ").unwrap();
        assert_eq!(args[0].value, Value::Integer(20));
        assert_eq!(args[1].value, Value::Boolean(true));
        assert_eq!(args[2].value, Value::Text("lucky \"roll\"".into()));
    }

    #[test]
    fn quoted_words_and_mentions() {
        let spec = spec(vec![
            option("title", OptionKind::Text, true),
            option("who", OptionKind::User, true),
        ]);
        let args = parse(&spec, "!", "\"two words\" <@!42>").unwrap();
        assert_eq!(args[0].value, Value::Text("two words".into()));
        assert_eq!(args[1].value, Value::User("42".into()));
    }

    #[test]
    fn wrong_types_missing_and_extra_arguments_explain_usage() {
        let spec = spec(vec![
            option("sides", OptionKind::Integer, true),
            option("count", OptionKind::Integer, false),
        ]);
        let error = parse(&spec, "!", "six").unwrap_err();
        assert!(error.contains("must be a whole number"), "{error}");
        assert!(error.ends_with("Usage: !roll <sides> [count]"), "{error}");
        assert!(
            parse(&spec, "!", "")
                .unwrap_err()
                .starts_with("Missing <sides>")
        );
        assert!(
            parse(&spec, "!", "1 2 3")
                .unwrap_err()
                .starts_with("Too many")
        );
        assert_eq!(parse(&spec, "!", "6").unwrap().len(), 1);
    }

    #[test]
    fn choices_are_enforced() {
        let mut color = option("color", OptionKind::Text, true);
        color.choices = vec![crate::bindings::types::Choice {
            name: "Red".into(),
            value: "red".into(),
        }];
        let spec = spec(vec![color]);
        assert!(parse(&spec, "!", "red").is_ok());
        assert!(
            parse(&spec, "!", "blue")
                .unwrap_err()
                .contains("one of: red")
        );
    }
}

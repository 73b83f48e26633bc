//! `help`, built by the host from the manifests: the commands this user can run here (only
//! plugins on in this guild, only commands on in this channel, only those whose permissions
//! or staff roles the user holds), grouped by plugin, described in the user's locale where
//! the plugin says, paged to the platform's message size; `help COMMAND` tells one command's
//! usage, options, aliases and cooldown.

use std::fmt::Write as _;

use crate::{
    bindings::types::{
        CommandSpec, Cooldown, CooldownScope, Event, OptionKind, OptionSpec, Platform,
    },
    dispatch::{Here, args},
    runtime::{Plugin, registry::Snapshot},
};

/// The help command's declaration under `name`.
pub fn spec(name: &str) -> CommandSpec {
    CommandSpec {
        name: name.to_owned(),
        description: "What this bot can do here".to_owned(),
        aliases: Vec::new(),
        options: vec![OptionSpec {
            name: "command".to_owned(),
            description: "A command to explain, or a page number".to_owned(),
            kind: OptionKind::Rest,
            required: false,
            choices: Vec::new(),
        }],
        permissions: Vec::new(),
        staff_only: false,
        cooldown: None,
        localizations: Vec::new(),
    }
}

/// The answer to `help ASKED` (empty: the first page).
pub(super) fn answer(snapshot: &Snapshot, here: &Here<'_>, help: &str, asked: &str) -> String {
    let asked = asked.trim();
    let page = match asked {
        "" => Some(1),
        number => number.parse::<usize>().ok().map(|page| page.max(1)),
    };
    match page {
        Some(page) => listing(snapshot, here, help, page),
        None => {
            let name = asked
                .trim_start_matches(here.prefix)
                .trim_start_matches('/')
                .to_lowercase();
            explain(snapshot, here, &name)
        }
    }
}

/// The longest message the platform takes (Discord's 2 000 characters; WhatsApp's 4 096).
fn page_size(platform: Platform) -> usize {
    match platform {
        Platform::Whatsapp => 4096,
        Platform::Discord | Platform::Console => 2000,
    }
}

/// Page `page` of the commands the user can run here.
fn listing(snapshot: &Snapshot, here: &Here<'_>, help: &str, page: usize) -> String {
    let prefix = here.prefix;
    let locale = locale(here.event);
    // One block per plugin (and one for the host's own), each kept whole on a page when it
    // fits one.
    let mut blocks: Vec<String> = Vec::new();
    for plugin in snapshot.plugins().filter(|p| here.plugin_on(p)) {
        let lines: Vec<String> = plugin
            .manifest()
            .commands
            .iter()
            .filter(|spec| here.command_on(spec) && here.may_run(spec))
            .map(|spec| {
                let description = localized(spec, locale);
                format!("`{prefix}{}` {description}", spec.name)
            })
            .collect();
        if lines.is_empty() {
            continue;
        }
        let mut block = format!("**{}**", plugin.name());
        let description = &plugin.manifest().description;
        if !description.is_empty() {
            let _ = write!(block, ": {description}");
        }
        for line in lines {
            block.push('\n');
            block.push_str(&line);
        }
        blocks.push(block);
    }
    let own: Vec<String> = snapshot
        .host_commands()
        .filter(|command| here.may_run_host(&command.spec))
        .map(|command| {
            let spec = &command.spec;
            format!("`{}` {}", args::usage(spec, prefix), spec.description)
        })
        .collect();
    if !own.is_empty() {
        blocks.push(format!("**this bot**\n{}", own.join("\n")));
    }
    let footer = |n: usize, of: usize| {
        (of > 1).then(|| format!("Page {n} of {of}: `{prefix}{help} {}` for the next.", n + 1))
    };
    // Room for the footer on every page.
    let footer_room = 60 + 2 * (prefix.len() + help.len());
    let pages = paginate(&blocks, page_size(here.event.platform) - footer_room);
    let count = pages.len().max(1);
    let Some(body) = pages.get(page.saturating_sub(1)) else {
        return format!("There are {count} page(s) of help; `{prefix}{help}` shows the first.");
    };
    let mut text = body.clone();
    if page < count
        && let Some(footer) = footer(page, count)
    {
        text.push_str("\n\n");
        text.push_str(&footer);
    } else if count > 1 {
        let _ = write!(text, "\n\nPage {page} of {count}.");
    }
    text
}

/// Blocks joined into pages of at most `size` characters; a block longer than a page is cut
/// at its lines.
fn paginate(blocks: &[String], size: usize) -> Vec<String> {
    let mut pages: Vec<String> = Vec::new();
    let mut current = String::new();
    let push = |current: &mut String, piece: &str, pages: &mut Vec<String>| {
        let joined = current.chars().count() + 2 + piece.chars().count();
        if !current.is_empty() && joined > size {
            pages.push(std::mem::take(current));
        }
        if !current.is_empty() {
            current.push_str("\n\n");
        }
        current.push_str(piece);
    };
    for block in blocks {
        if block.chars().count() <= size {
            push(&mut current, block, &mut pages);
            continue;
        }
        for line in block.lines() {
            let line: String = line.chars().take(size).collect();
            let joined = current.chars().count() + 1 + line.chars().count();
            if !current.is_empty() && joined > size {
                pages.push(std::mem::take(&mut current));
            }
            if !current.is_empty() {
                current.push('\n');
            }
            current.push_str(&line);
        }
    }
    if !current.is_empty() {
        pages.push(current);
    }
    pages
}

/// One command's usage, options, aliases, cooldown and requirements.
fn explain(snapshot: &Snapshot, here: &Here<'_>, name: &str) -> String {
    let prefix = here.prefix;
    if let Some(command) = snapshot.host_command(name) {
        return details(&command.spec, None, prefix, locale(here.event));
    }
    let Some((plugin, spec)) = snapshot.command(name) else {
        return format!("There is no command `{prefix}{name}` here.");
    };
    if !here.plugin_on(plugin) || !here.command_on(spec) {
        return format!("`{prefix}{}` is switched off here.", spec.name);
    }
    if !here.may_run(spec) {
        return format!("You are not allowed to use `{prefix}{}` here.", spec.name);
    }
    details(spec, Some(plugin), prefix, locale(here.event))
}

fn details(
    spec: &CommandSpec,
    plugin: Option<&Plugin>,
    prefix: &str,
    locale: Option<&str>,
) -> String {
    let mut text = format!(
        "`{}` {}",
        args::usage(spec, prefix),
        localized(spec, locale)
    );
    if let Some(plugin) = plugin {
        let _ = write!(text, "\nFrom {}.", plugin.name());
    }
    if !spec.options.is_empty() {
        text.push_str("\nOptions:");
        for option in &spec.options {
            let required = if option.required { ", required" } else { "" };
            let _ = write!(
                text,
                "\n- `{}` ({}{required}) {}",
                option.name,
                kind(option.kind),
                option.description
            );
            if !option.choices.is_empty() {
                let choices: Vec<&str> = option.choices.iter().map(|c| c.value.as_str()).collect();
                let _ = write!(text, "; one of: {}", choices.join(", "));
            }
        }
    }
    if !spec.aliases.is_empty() {
        let aliases: Vec<String> = spec
            .aliases
            .iter()
            .map(|a| format!("`{prefix}{a}`"))
            .collect();
        let _ = write!(text, "\nAlso: {}", aliases.join(", "));
    }
    if let Some(cooldown) = &spec.cooldown {
        let _ = write!(text, "\nCooldown: {}.", describe_cooldown(cooldown));
    }
    if spec.staff_only {
        text.push_str("\nFor the guild's staff only.");
    }
    if !spec.permissions.is_empty() {
        let _ = write!(text, "\nNeeds: {}.", spec.permissions.join(", "));
    }
    text
}

/// `2 uses per 10 s per user`.
pub(super) fn describe_cooldown(cooldown: &Cooldown) -> String {
    let uses = match cooldown.limit {
        1 => "1 use".to_owned(),
        n => format!("{n} uses"),
    };
    let per = match cooldown.per {
        CooldownScope::User => "per user",
        CooldownScope::Channel => "per channel",
        CooldownScope::Guild => "per server",
        CooldownScope::Global => "in all",
    };
    format!("{uses} per {} {per}", seconds(cooldown.window_ms))
}

/// A window in words: `90 s`, `10 min`, `2 h`, `1 d`.
fn seconds(ms: u64) -> String {
    let s = ms.div_ceil(1000);
    match s {
        s if s >= 86_400 && s % 86_400 == 0 => format!("{} d", s / 86_400),
        s if s >= 3600 && s % 3600 == 0 => format!("{} h", s / 3600),
        s if s >= 60 && s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

fn kind(kind: OptionKind) -> &'static str {
    match kind {
        OptionKind::Text => "text",
        OptionKind::Rest => "text to the end",
        OptionKind::Integer => "whole number",
        OptionKind::Number => "number",
        OptionKind::Boolean => "yes or no",
        OptionKind::User => "user",
        OptionKind::Channel => "channel",
        OptionKind::Role => "role",
    }
}

/// The user's locale, else the guild's.
fn locale(event: &Event) -> Option<&str> {
    event
        .author
        .locale
        .as_deref()
        .or(event.guild_locale.as_deref())
}

/// The command's description in `locale`: its own for that locale, else one of the same
/// language (`pt` for `pt-BR`), else the default.
fn localized<'s>(spec: &'s CommandSpec, locale: Option<&str>) -> &'s str {
    let Some(locale) = locale else {
        return &spec.description;
    };
    let language = |tag: &str| tag.split('-').next().unwrap_or(tag).to_ascii_lowercase();
    let exact = spec.localizations.iter().find(|l| l.locale == locale);
    let same_language = || {
        spec.localizations
            .iter()
            .find(|l| language(&l.locale) == language(locale))
    };
    exact
        .or_else(same_language)
        .map_or(&spec.description, |l| &l.description)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::types::Localization;

    #[test]
    fn pages_keep_blocks_whole_and_cut_long_ones_at_lines() {
        let blocks = vec!["a".repeat(40), "b".repeat(40), "c".repeat(40)];
        let pages = paginate(&blocks, 90);
        assert_eq!(pages.len(), 2);
        assert_eq!(
            pages[0],
            format!("{}\n\n{}", "a".repeat(40), "b".repeat(40))
        );
        let long = vec![format!(
            "{}\n{}\n{}",
            "x".repeat(50),
            "y".repeat(50),
            "z".repeat(50)
        )];
        let pages = paginate(&long, 60);
        assert_eq!(pages.len(), 3);
        assert!(pages.iter().all(|page| page.chars().count() <= 60));
    }

    #[test]
    fn descriptions_follow_the_user_locale_then_its_language() {
        let mut roll = spec("roll");
        roll.description = "Roll dice".into();
        roll.localizations = vec![
            Localization {
                locale: "pt-BR".into(),
                name: None,
                description: "Rolar dados".into(),
            },
            Localization {
                locale: "es-ES".into(),
                name: None,
                description: "Tirar dados".into(),
            },
        ];
        assert_eq!(localized(&roll, Some("pt-BR")), "Rolar dados");
        assert_eq!(localized(&roll, Some("es-419")), "Tirar dados");
        assert_eq!(localized(&roll, Some("de")), "Roll dice");
        assert_eq!(localized(&roll, None), "Roll dice");
    }

    #[test]
    fn cooldowns_read_as_words() {
        let cooldown = |per, limit, window_ms| {
            describe_cooldown(&Cooldown {
                per,
                limit,
                window_ms,
            })
        };
        assert_eq!(
            cooldown(CooldownScope::User, 2, 10_000),
            "2 uses per 10 s per user"
        );
        assert_eq!(
            cooldown(CooldownScope::Guild, 1, 3_600_000),
            "1 use per 1 h per server"
        );
        assert_eq!(
            cooldown(CooldownScope::Global, 5, 90_000),
            "5 uses per 90 s in all"
        );
    }
}

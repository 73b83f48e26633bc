//! `!roll [dice] [sides]`: rolls dice. Shows typed arguments, several actions (a reaction,
//! a reply with a button) and an interaction coming back when the button is clicked.

use wasmbot_sdk::prelude::*;

const MAX_DICE: i64 = 20;
const MAX_SIDES: i64 = 1000;

struct Dice;

impl Plugin for Dice {
    fn manifest() -> Manifest {
        Manifest::new("dice", env!("CARGO_PKG_VERSION"))
            .description("Rolls dice")
            .command(
                CommandSpec::new("roll", "Roll some dice")
                    .alias("dice")
                    .option(OptionSpec::new(
                        "dice",
                        "How many dice (1-20)",
                        OptionKind::Integer,
                    ))
                    .option(OptionSpec::new(
                        "sides",
                        "Sides per die (2-1000)",
                        OptionKind::Integer,
                    )),
            )
    }

    fn handle(event: Event) -> Handled {
        let (dice, sides) = if let Some(command) = event.command() {
            (
                command.integer("dice").unwrap_or(1),
                command.integer("sides").unwrap_or(6),
            )
        } else if let Some(click) = event.interaction() {
            parse_again(&click.custom_id)
                .ok_or_else(|| PluginError::InvalidInput("That button is not mine.".into()))?
        } else {
            return Ok(vec![]);
        };
        if !(1..=MAX_DICE).contains(&dice) || !(2..=MAX_SIDES).contains(&sides) {
            return Err(PluginError::InvalidInput(format!(
                "Roll 1 to {MAX_DICE} dice of 2 to {MAX_SIDES} sides."
            )));
        }
        let rolls = roll(dice, sides)?;
        let total: i64 = rolls.iter().sum();
        let shown: Vec<String> = rolls.iter().map(i64::to_string).collect();
        let text = format!("{dice}d{sides}: {} = {total}", shown.join(" + "));
        let again = Outgoing::text(text).button(format!("again:{dice}:{sides}"), "Roll again");
        let mut actions = vec![Action::reply(again)];
        if event.command().is_some() {
            actions.insert(0, Action::react("🎲"));
        }
        Ok(actions)
    }
}

/// `again:2:6` → (2, 6).
fn parse_again(id: &str) -> Option<(i64, i64)> {
    let mut parts = id.strip_prefix("again:")?.split(':');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

fn roll(dice: i64, sides: i64) -> Result<Vec<i64>, PluginError> {
    (0..dice)
        .map(|_| {
            let mut bytes = [0u8; 8];
            getrandom::fill(&mut bytes)
                .map_err(|e| PluginError::Unavailable(format!("no randomness: {e}")))?;
            Ok((u64::from_le_bytes(bytes) % sides as u64) as i64 + 1)
        })
        .collect()
}

export_plugin!(Dice);

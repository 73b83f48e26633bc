//! Plugins built against contract 0.1.x, adapted to the newest where calls cross into them.
//!
//! 0.2 changed `types` (and so `messaging`, which takes an action) and added `schedule`;
//! every other interface is the same in both, so a 0.1 plugin's imports of those are served
//! by the newest implementations under their 0.1 names (`capabilities::v0_1`). The world's
//! exports and `messaging` are called through bindings of the newest 0.1 release
//! (`wit/released/0.1/`), their values converted here, so nothing else in the host knows
//! 0.1's types.

use super::types as new;

mod generated {
    #![allow(missing_docs)]
    wasmtime::component::bindgen!({
        world: "plugin",
        path: "../wit/released/0.1",
        imports: { "wasmbot:plugin/messaging": async },
        exports: { default: async },
    });
}

use generated::wasmbot::plugin::types as old;
pub use generated::wasmbot::plugin::{messaging, types};
pub use generated::{Plugin, PluginPre};
pub use old::{Action, Event, PluginError};

/// The newest 0.1 release: the one in `wit/released/0.1/`, every 0.1.x links against it.
pub const NEWEST: &str = "0.1.4";

/// A 0.1 plugin's action in the newest types (`messaging.act` takes one).
pub fn action(action: old::Action) -> new::Action {
    action.adapt()
}

/// The event as a 0.1 plugin receives it; none for what 0.1 has no words for (a timer,
/// which a 0.1 plugin cannot have set).
pub fn event(event: &new::Event) -> Option<old::Event> {
    Some(old::Event {
        id: event.id.clone(),
        platform: event.platform.adapt(),
        guild_id: event.guild_id.clone(),
        channel_id: event.channel_id.clone(),
        author: event.author.clone().adapt(),
        timestamp_ms: event.timestamp_ms,
        kind: event_kind(event.kind.clone())?,
    })
}

/// A 0.1 plugin's answer in the newest types.
pub fn outcome(
    result: Result<Vec<old::Action>, old::PluginError>,
) -> Result<Vec<new::Action>, new::PluginError> {
    match result {
        Ok(actions) => Ok(actions.adapt()),
        Err(old::PluginError::InvalidInput(text)) => Err(new::PluginError::InvalidInput(text)),
        Err(old::PluginError::Unavailable(text)) => Err(new::PluginError::Unavailable(text)),
        Err(old::PluginError::Internal(text)) => Err(new::PluginError::Internal(text)),
    }
}

/// A 0.1 manifest in the newest types: no cooldowns, no localizations, on in every guild
/// (as every plugin was before guilds could switch them).
pub fn manifest(manifest: old::Manifest) -> new::Manifest {
    new::Manifest {
        name: manifest.name,
        version: manifest.version,
        description: manifest.description,
        commands: manifest.commands.adapt(),
        events: manifest.events.adapt(),
        capabilities: manifest.capabilities,
        enabled_by_default: true,
    }
}

fn event_kind(kind: new::EventKind) -> Option<old::EventKind> {
    use new::EventKind as New;
    use old::EventKind as Old;
    Some(match kind {
        New::Message(message) => Old::Message(message.adapt()),
        New::Command(command) => Old::Command(command.adapt()),
        New::Interaction(interaction) => Old::Interaction(interaction.adapt()),
        New::MemberJoined => Old::MemberJoined,
        New::MemberLeft => Old::MemberLeft,
        New::Reaction(reaction) => Old::Reaction(reaction.adapt()),
        New::Delivery(delivery) => Old::Delivery(delivery.adapt()),
        New::Timer(_) => return None,
    })
}

/// A value of one contract version as the same value of the other.
trait Adapt<T> {
    fn adapt(self) -> T;
}

impl<A: Adapt<B>, B> Adapt<Vec<B>> for Vec<A> {
    fn adapt(self) -> Vec<B> {
        self.into_iter().map(Adapt::adapt).collect()
    }
}

impl<A: Adapt<B>, B> Adapt<Option<B>> for Option<A> {
    fn adapt(self) -> Option<B> {
        self.map(Adapt::adapt)
    }
}

macro_rules! same {
    ($($ty:ty),*) => {$(
        impl Adapt<$ty> for $ty {
            fn adapt(self) -> $ty {
                self
            }
        }
    )*};
}

same!(String, bool, u32, u64, i64, f64);

/// A record the same in both versions but for the fields after `+`, given their value.
macro_rules! record {
    ($from:ident::$name:ident => $to:ident { $($field:ident),* } $(+ { $($extra:ident: $value:expr),* })?) => {
        impl Adapt<$to::$name> for $from::$name {
            fn adapt(self) -> $to::$name {
                $to::$name {
                    $($field: self.$field.adapt(),)*
                    $($($extra: $value,)*)?
                }
            }
        }
    };
}

/// An enum or a variant the same in both versions; `(x)` marks a case with a payload.
macro_rules! cases {
    ($from:ident::$name:ident => $to:ident { $($case:ident $(($payload:ident))?),* }) => {
        impl Adapt<$to::$name> for $from::$name {
            fn adapt(self) -> $to::$name {
                match self {
                    $($from::$name::$case $(($payload))? => $to::$name::$case $(($payload.adapt()))?,)*
                }
            }
        }
    };
}

// Events, newest to 0.1.
cases!(new::Platform => old { Discord, Whatsapp, Console });
record!(new::User => old { id, name, is_bot, roles });
record!(new::Message => old { id, text, reply_to, mentions, attachments, location, contacts });
cases!(new::MediaKind => old { Image, Audio, Video, Document, Sticker });
record!(new::Attachment => old { kind, id, url, mime_type, filename, size_bytes, caption });
record!(new::Location => old { latitude, longitude, name, address });
record!(new::Contact => old { name, phones });
cases!(new::CommandSource => old { Prefix(x), Mention, Slash });
record!(new::Command => old { name, args, raw_args, source, message_id });
record!(new::Argument => old { name, value });
cases!(new::Value => old { Text(x), Integer(x), Number(x), Boolean(x), User(x), Channel(x), Role(x) });
record!(new::Interaction => old { custom_id, values, message_id });
record!(new::Reaction => old { message_id, emoji, added });
cases!(new::DeliveryState => old { Sent, Delivered, Read, Failed });
record!(new::Delivery => old { message_id, state, reason });

// Actions and manifests, 0.1 to newest.
cases!(old::Platform => new { Discord, Whatsapp, Console });
cases!(old::MediaKind => new { Image, Audio, Video, Document, Sticker });
cases!(old::Action => new { Reply(x), Send(x), React(x), Typing, Edit(x), Delete(x) });
record!(old::Edit => new { message_id, message });
record!(old::Send => new { to, message });
cases!(old::Destination => new { Channel(x), Direct(x) });
record!(old::ChannelRef => new { platform, guild_id, channel_id });
record!(old::UserRef => new { platform, user_id });
record!(old::React => new { message_id, emoji });
record!(old::Outgoing => new { text, embeds, buttons, menu, media, template, ephemeral }
    + { mentions: new::AllowedMentions::default() });
record!(old::Embed => new { title, description, url, color, fields, footer, image_url });
record!(old::EmbedField => new { name, value, inline });
cases!(old::ButtonStyle => new { Primary, Secondary, Success, Danger });
record!(old::Button => new { id, label, style, url, disabled });
record!(old::Menu => new { id, label, options, min_values, max_values });
record!(old::MenuOption => new { value, label, description });
cases!(old::MediaSource => new { Id(x), Url(x) });
record!(old::Media => new { kind, source, caption, filename });
record!(old::Template => new { name, language, parameters });
cases!(old::EventType => new { Message, Interaction, MemberJoined, MemberLeft, Reaction, Delivery });
record!(old::CommandSpec => new { name, description, aliases, options, permissions, staff_only }
    + { cooldown: None, localizations: Vec::new() });
cases!(old::OptionKind => new { Text, Integer, Number, Boolean, User, Channel, Role, Rest });
record!(old::OptionSpec => new { name, description, kind, required, choices });
record!(old::Choice => new { name, value });

//! Meta's webhook payload, and what the host makes of it: every `entry[].changes[].value`
//! split into items (one message or one status update each), which are stored in the inbox
//! as they are and turned into normalized events when a worker takes them.

use serde::{Deserialize, Serialize};

use crate::bindings::types::{
    Attachment, Contact, Delivery, DeliveryState, Event, EventKind, Interaction, Location,
    MediaKind, Message, Platform, Reaction, User,
};

/// The webhook's body: `{"object": "whatsapp_business_account", "entry": [...]}`.
#[derive(Debug, Deserialize)]
pub struct Notification {
    #[serde(default)]
    pub object: String,
    #[serde(default)]
    pub entry: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
pub struct Entry {
    #[serde(default)]
    pub changes: Vec<Change>,
}

#[derive(Debug, Deserialize)]
pub struct Change {
    #[serde(default)]
    pub field: String,
    #[serde(default)]
    pub value: ChangeValue,
}

#[derive(Debug, Default, Deserialize)]
pub struct ChangeValue {
    #[serde(default)]
    pub metadata: Metadata,
    #[serde(default)]
    pub contacts: Vec<WaContact>,
    /// Kept as JSON so one message of a type the host does not know is skipped alone.
    #[serde(default)]
    pub messages: Vec<serde_json::Value>,
    #[serde(default)]
    pub statuses: Vec<Status>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Metadata {
    #[serde(default)]
    pub phone_number_id: String,
}

#[derive(Debug, Deserialize)]
pub struct WaContact {
    #[serde(default)]
    pub wa_id: String,
    #[serde(default)]
    pub profile: Profile,
}

#[derive(Debug, Default, Deserialize)]
pub struct Profile {
    #[serde(default)]
    pub name: String,
}

/// One thing to process: what the inbox stores and a worker turns into an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    /// The business number it reached (`metadata.phone_number_id`).
    pub phone_id: String,
    pub body: ItemBody,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemBody {
    /// A user's message, with the name their profile shows.
    Message { name: String, message: Incoming },
    /// Meta's report on a message the bot sent.
    Status(Status),
}

impl Item {
    /// The inbox key: the message's wamid; a status update's wamid and state (one message
    /// has several), so redeliveries of either are recognized.
    pub fn key(&self) -> String {
        match &self.body {
            ItemBody::Message { message, .. } => message.id.clone(),
            ItemBody::Status(status) => format!("{}/{}", status.id, status.status),
        }
    }

    /// The WhatsApp user it concerns: the sender, or the recipient of a status.
    pub fn user(&self) -> &str {
        match &self.body {
            ItemBody::Message { message, .. } => &message.from,
            ItemBody::Status(status) => &status.recipient_id,
        }
    }

    /// Whether it is a user's message (which opens the 24-hour window).
    pub fn is_message(&self) -> bool {
        matches!(self.body, ItemBody::Message { .. })
    }
}

/// What one webhook delivery holds.
#[derive(Debug, Default)]
pub struct Split {
    /// The items to store and process.
    pub items: Vec<Item>,
    /// Why the rest was skipped, one line each (already specific enough to log).
    pub skipped: Vec<String>,
}

impl Notification {
    /// Every item of every entry and change. Messages of a type the host does not know,
    /// changes of other fields and numbers not in `numbers` (empty: any) are skipped, each
    /// with its reason; the rest of the delivery is kept.
    pub fn split(self, numbers: &[String]) -> Split {
        let mut split = Split::default();
        if self.object != "whatsapp_business_account" {
            split
                .skipped
                .push(format!("object {:?} is not WhatsApp's", self.object));
            return split;
        }
        for change in self.entry.into_iter().flat_map(|entry| entry.changes) {
            if change.field != "messages" {
                split
                    .skipped
                    .push(format!("change of field {:?} ignored", change.field));
                continue;
            }
            let value = change.value;
            let phone_id = value.metadata.phone_number_id;
            if !numbers.is_empty() && !numbers.contains(&phone_id) {
                split.skipped.push(format!(
                    "phone number id {phone_id:?} is not one this host serves (whatsapp.phone_number_ids)"
                ));
                continue;
            }
            let name_of = |wa_id: &str| {
                value
                    .contacts
                    .iter()
                    .find(|contact| contact.wa_id == wa_id)
                    .map(|contact| contact.profile.name.clone())
                    .unwrap_or_default()
            };
            for raw in value.messages {
                let kind = raw["type"].as_str().unwrap_or("(none)").to_owned();
                let id = raw["id"].as_str().unwrap_or("(none)").to_owned();
                match serde_json::from_value::<Incoming>(raw) {
                    Ok(message) if !message.id.is_empty() && !message.from.is_empty() => {
                        let name = name_of(&message.from);
                        split.items.push(Item {
                            phone_id: phone_id.clone(),
                            body: ItemBody::Message { name, message },
                        });
                    }
                    Ok(_) => split
                        .skipped
                        .push(format!("message {id} without an id or a sender")),
                    Err(error) => split.skipped.push(format!(
                        "message {id} of type {kind:?} not understood: {error}"
                    )),
                }
            }
            for status in value.statuses {
                split.items.push(Item {
                    phone_id: phone_id.clone(),
                    body: ItemBody::Status(status),
                });
            }
        }
        split
    }
}

/// A user's message, of one of the types the host normalizes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incoming {
    pub id: String,
    pub from: String,
    /// Seconds since the Unix epoch, as a string.
    #[serde(default)]
    pub timestamp: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Context>,
    #[serde(flatten)]
    pub content: Content,
}

/// The message this one answers (a reply, or the message whose button was pressed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Context {
    #[serde(default)]
    pub id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Content {
    Text {
        text: Text,
    },
    Interactive {
        interactive: Interactive,
    },
    /// A quick-reply button of a template.
    Button {
        button: TemplateButton,
    },
    Image {
        image: MediaRef,
    },
    Audio {
        audio: MediaRef,
    },
    Video {
        video: MediaRef,
    },
    Document {
        document: MediaRef,
    },
    Sticker {
        sticker: MediaRef,
    },
    Location {
        location: Place,
    },
    Contacts {
        contacts: Vec<Card>,
    },
    Reaction {
        reaction: Emoji,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Text {
    pub body: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Interactive {
    ButtonReply { button_reply: Reply },
    ListReply { list_reply: Reply },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub id: String,
    #[serde(default)]
    pub title: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplateButton {
    #[serde(default)]
    pub payload: String,
    #[serde(default)]
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MediaRef {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Place {
    pub latitude: f64,
    pub longitude: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Card {
    #[serde(default)]
    pub name: CardName,
    #[serde(default)]
    pub phones: Vec<Phone>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CardName {
    #[serde(default)]
    pub formatted_name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Phone {
    #[serde(default)]
    pub phone: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Emoji {
    pub message_id: String,
    /// Empty when the user removed their reaction.
    #[serde(default)]
    pub emoji: String,
}

/// A status update: `sent`, `delivered`, `read` or `failed` (with `errors`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub id: String,
    pub status: String,
    #[serde(default)]
    pub recipient_id: String,
    #[serde(default)]
    pub timestamp: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<StatusError>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusError {
    #[serde(default)]
    pub code: i64,
    #[serde(default)]
    pub title: String,
}

impl Status {
    /// The delivery state, unless Meta reported one the host does not know (`deleted`,
    /// `warning`...).
    pub fn state(&self) -> Option<DeliveryState> {
        Some(match self.status.as_str() {
            "sent" => DeliveryState::Sent,
            "delivered" => DeliveryState::Delivered,
            "read" => DeliveryState::Read,
            "failed" => DeliveryState::Failed,
            _ => return None,
        })
    }

    /// Why it failed, as Meta puts it.
    pub fn reason(&self) -> Option<String> {
        self.errors
            .first()
            .map(|error| format!("{} ({})", error.title, error.code))
    }
}

/// Separates a list's menu id from the chosen row's value in a row id: WhatsApp returns
/// only the row's id, and the menu id says which plugin the list came from.
pub const ROW_SEPARATOR: char = '\u{1f}';

/// Milliseconds from Meta's seconds-as-a-string; `now` when it is missing or malformed.
fn millis(timestamp: &str, now: u64) -> u64 {
    timestamp
        .parse::<u64>()
        .map_or(now, |seconds| seconds.saturating_mul(1000))
}

impl Item {
    /// The normalized event; `None` for a status of a kind the host does not report.
    pub fn event(&self, now_ms: u64) -> Option<Event> {
        match &self.body {
            ItemBody::Message { name, message } => Some(message.event(name, now_ms)),
            ItemBody::Status(status) => {
                let state = status.state()?;
                Some(Event {
                    id: self.key(),
                    platform: Platform::Whatsapp,
                    guild_id: None,
                    channel_id: status.recipient_id.clone(),
                    author: user(&status.recipient_id, ""),
                    timestamp_ms: millis(&status.timestamp, now_ms),
                    received_ms: now_ms,
                    guild_locale: None,
                    kind: EventKind::Delivery(Delivery {
                        message_id: status.id.clone(),
                        state,
                        reason: status.reason(),
                    }),
                })
            }
        }
    }
}

fn user(id: &str, name: &str) -> User {
    User {
        id: id.to_owned(),
        name: if name.is_empty() { id } else { name }.to_owned(),
        is_bot: false,
        roles: Vec::new(),
        locale: None,
    }
}

impl Incoming {
    /// The normalized event: a message (text, media, location, contacts), an interaction
    /// (button or list reply, a template's quick reply) or a reaction.
    pub fn event(&self, name: &str, now_ms: u64) -> Event {
        let reply_to = self.context.as_ref().map(|context| context.id.clone());
        let message = |text: String| Message {
            id: self.id.clone(),
            text,
            reply_to: reply_to.clone(),
            mentions: Vec::new(),
            attachments: Vec::new(),
            location: None,
            contacts: Vec::new(),
        };
        let media = |kind, media: &MediaRef| {
            let mut message = message(media.caption.clone().unwrap_or_default());
            message.attachments.push(Attachment {
                kind,
                id: media.id.clone(),
                url: None,
                mime_type: media.mime_type.clone(),
                filename: media.filename.clone(),
                size_bytes: None,
                caption: media.caption.clone(),
            });
            EventKind::Message(message)
        };
        let kind = match &self.content {
            Content::Text { text } => EventKind::Message(message(text.body.clone())),
            Content::Interactive { interactive } => {
                let (custom_id, values) = match interactive {
                    Interactive::ButtonReply { button_reply } => {
                        (button_reply.id.clone(), Vec::new())
                    }
                    Interactive::ListReply { list_reply } => {
                        match list_reply.id.split_once(ROW_SEPARATOR) {
                            Some((menu, value)) => (menu.to_owned(), vec![value.to_owned()]),
                            None => (list_reply.id.clone(), vec![list_reply.id.clone()]),
                        }
                    }
                };
                EventKind::Interaction(Interaction {
                    custom_id,
                    values,
                    message_id: reply_to.clone(),
                })
            }
            Content::Button { button } => EventKind::Interaction(Interaction {
                custom_id: button.payload.clone(),
                values: vec![button.text.clone()],
                message_id: reply_to.clone(),
            }),
            Content::Image { image } => media(MediaKind::Image, image),
            Content::Audio { audio } => media(MediaKind::Audio, audio),
            Content::Video { video } => media(MediaKind::Video, video),
            Content::Document { document } => media(MediaKind::Document, document),
            Content::Sticker { sticker } => media(MediaKind::Sticker, sticker),
            Content::Location { location } => {
                let mut message = message(String::new());
                message.location = Some(Location {
                    latitude: location.latitude,
                    longitude: location.longitude,
                    name: location.name.clone(),
                    address: location.address.clone(),
                });
                EventKind::Message(message)
            }
            Content::Contacts { contacts } => {
                let mut message = message(String::new());
                message.contacts = contacts
                    .iter()
                    .map(|card| Contact {
                        name: card.name.formatted_name.clone(),
                        phones: card.phones.iter().map(|p| p.phone.clone()).collect(),
                    })
                    .collect();
                EventKind::Message(message)
            }
            Content::Reaction { reaction } => EventKind::Reaction(Reaction {
                message_id: reaction.message_id.clone(),
                emoji: reaction.emoji.clone(),
                added: !reaction.emoji.is_empty(),
            }),
        };
        Event {
            id: self.id.clone(),
            platform: Platform::Whatsapp,
            guild_id: None,
            channel_id: self.from.clone(),
            author: user(&self.from, name),
            timestamp_ms: millis(&self.timestamp, now_ms),
            received_ms: now_ms,
            guild_locale: None,
            kind,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn notification(changes: serde_json::Value) -> Notification {
        serde_json::from_value(json!({
            "object": "whatsapp_business_account",
            "entry": [{ "id": "waba", "changes": changes }]
        }))
        .unwrap()
    }

    fn value(messages: serde_json::Value) -> serde_json::Value {
        json!([{ "field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": { "display_phone_number": "15550000000", "phone_number_id": "PN1" },
            "contacts": [{ "profile": { "name": "Ana" }, "wa_id": "4915" }],
            "messages": messages
        }}])
    }

    fn events(messages: serde_json::Value) -> Vec<EventKind> {
        let split = notification(value(messages)).split(&[]);
        split
            .items
            .iter()
            .map(|item| item.event(0).unwrap().kind)
            .collect()
    }

    #[test]
    fn every_message_type_is_normalized() {
        let base = |id: &str, kind: &str, body: serde_json::Value| {
            let mut message =
                json!({ "from": "4915", "id": id, "timestamp": "1700000000", "type": kind });
            message[kind] = body;
            message
        };
        let kinds = events(json!([
            base("w1", "text", json!({ "body": "hi" })),
            base(
                "w2",
                "interactive",
                json!({ "type": "button_reply", "button_reply": { "id": "menu/order", "title": "Order" } })
            ),
            base(
                "w3",
                "interactive",
                json!({ "type": "list_reply", "list_reply": { "id": "menu/size\u{1f}large", "title": "Large" } })
            ),
            base("w4", "button", json!({ "payload": "STOP", "text": "Stop" })),
            base(
                "w5",
                "image",
                json!({ "id": "m1", "mime_type": "image/jpeg", "caption": "look" })
            ),
            base(
                "w6",
                "document",
                json!({ "id": "m2", "mime_type": "application/pdf", "filename": "a.pdf" })
            ),
            base(
                "w7",
                "location",
                json!({ "latitude": 1.5, "longitude": 2.5, "name": "Home" })
            ),
            base(
                "w8",
                "contacts",
                json!([{ "name": { "formatted_name": "Bo" }, "phones": [{ "phone": "+1 555" }] }])
            ),
            base(
                "w9",
                "reaction",
                json!({ "message_id": "wamid.out", "emoji": "👍" })
            ),
            base(
                "w10",
                "sticker",
                json!({ "id": "m3", "mime_type": "image/webp" })
            ),
            base(
                "w11",
                "audio",
                json!({ "id": "m4", "mime_type": "audio/ogg" })
            ),
            base("w12", "video", json!({ "id": "m5" })),
        ]));
        assert_eq!(kinds.len(), 12);
        let EventKind::Message(text) = &kinds[0] else {
            panic!()
        };
        assert_eq!(text.text, "hi");
        assert_eq!(
            kinds[1],
            EventKind::Interaction(Interaction {
                custom_id: "menu/order".into(),
                values: vec![],
                message_id: None
            })
        );
        assert_eq!(
            kinds[2],
            EventKind::Interaction(Interaction {
                custom_id: "menu/size".into(),
                values: vec!["large".into()],
                message_id: None
            })
        );
        let EventKind::Interaction(template) = &kinds[3] else {
            panic!()
        };
        assert_eq!(template.custom_id, "STOP");
        let EventKind::Message(image) = &kinds[4] else {
            panic!()
        };
        assert_eq!(image.text, "look");
        assert_eq!(image.attachments[0].kind, MediaKind::Image);
        assert_eq!(image.attachments[0].id, "m1");
        let EventKind::Message(document) = &kinds[5] else {
            panic!()
        };
        assert_eq!(document.attachments[0].filename.as_deref(), Some("a.pdf"));
        let EventKind::Message(place) = &kinds[6] else {
            panic!()
        };
        assert_eq!(place.location.as_ref().unwrap().latitude, 1.5);
        let EventKind::Message(cards) = &kinds[7] else {
            panic!()
        };
        assert_eq!(cards.contacts[0].phones, ["+1 555"]);
        assert_eq!(
            kinds[8],
            EventKind::Reaction(Reaction {
                message_id: "wamid.out".into(),
                emoji: "👍".into(),
                added: true
            })
        );
        for (index, kind) in [
            (9, MediaKind::Sticker),
            (10, MediaKind::Audio),
            (11, MediaKind::Video),
        ] {
            let EventKind::Message(media) = &kinds[index] else {
                panic!()
            };
            assert_eq!(media.attachments[0].kind, kind);
        }
    }

    #[test]
    fn the_sender_time_and_reply_are_kept() {
        let split = notification(value(json!([{
            "from": "4915", "id": "wamid.1", "timestamp": "1700000000", "type": "text",
            "text": { "body": "yes" }, "context": { "from": "1555", "id": "wamid.0" }
        }])))
        .split(&["PN1".to_owned()]);
        let event = split.items[0].event(0).unwrap();
        assert_eq!(event.author.name, "Ana");
        assert_eq!(event.channel_id, "4915");
        assert_eq!(event.timestamp_ms, 1_700_000_000_000);
        let EventKind::Message(message) = event.kind else {
            panic!()
        };
        assert_eq!(message.reply_to.as_deref(), Some("wamid.0"));
    }

    #[test]
    fn unknown_types_and_numbers_are_skipped_alone() {
        let split = notification(value(json!([
            { "from": "4915", "id": "w1", "type": "order", "order": {} },
            { "from": "4915", "id": "w2", "type": "text", "text": { "body": "kept" } },
        ])))
        .split(&[]);
        assert_eq!(split.items.len(), 1);
        assert!(
            split.skipped[0].contains("\"order\""),
            "{:?}",
            split.skipped
        );
        let other = notification(value(json!([
            { "from": "4915", "id": "w3", "type": "text", "text": { "body": "x" } }
        ])))
        .split(&["PN2".to_owned()]);
        assert!(other.items.is_empty());
        assert!(other.skipped[0].contains("PN1"));
    }

    #[test]
    fn statuses_are_items_keyed_by_message_and_state() {
        let split = notification(json!([{ "field": "messages", "value": {
            "metadata": { "phone_number_id": "PN1" },
            "statuses": [
                { "id": "wamid.9", "status": "delivered", "recipient_id": "4915", "timestamp": "1" },
                { "id": "wamid.9", "status": "failed", "recipient_id": "4915",
                  "errors": [{ "code": 131047, "title": "Re-engagement message" }] }
            ]
        }}]))
        .split(&[]);
        let keys: Vec<_> = split.items.iter().map(Item::key).collect();
        assert_eq!(keys, ["wamid.9/delivered", "wamid.9/failed"]);
        let EventKind::Delivery(failed) = split.items[1].event(0).unwrap().kind else {
            panic!()
        };
        assert_eq!(failed.state, DeliveryState::Failed);
        assert_eq!(
            failed.reason.as_deref(),
            Some("Re-engagement message (131047)")
        );
    }

    #[test]
    fn items_survive_the_inbox() {
        let split = notification(value(json!([
            { "from": "4915", "id": "w1", "type": "image", "image": { "id": "m1" } }
        ])))
        .split(&[]);
        let stored = serde_json::to_string(&split.items[0]).unwrap();
        let read: Item = serde_json::from_str(&stored).unwrap();
        assert_eq!(read, split.items[0]);
    }
}

//! The console platform: each line typed is a message from a local user in a local guild, so
//! a newcomer can talk to the plugins with no credentials at all.
//!
//! `/press ID [VALUES...]` clicks a button or picks menu values; `/quit` (or end of input)
//! ends the session.

use std::{
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use futures::future::BoxFuture;
use tokio::{
    io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt},
    sync::Mutex,
};

use crate::{
    bindings::types::{
        Action, Destination, Event, EventKind, Interaction, MediaSource, Message, Outgoing,
        Platform, User,
    },
    dispatch::{Dispatcher, Outlet, SendFailure},
};

/// The guild of the console session.
pub const GUILD: &str = "local";
/// The channel of the console session.
pub const CHANNEL: &str = "console";
/// The user typing at the console.
pub const USER: &str = "you";

/// Writes the bot's side of the conversation as text lines.
pub struct ConsoleOutlet<W> {
    out: Mutex<W>,
}

impl<W: AsyncWrite + Unpin + Send> ConsoleOutlet<W> {
    /// An outlet writing to `out` (the terminal, or a buffer in tests).
    pub fn new(out: W) -> Arc<Self> {
        Arc::new(Self {
            out: Mutex::new(out),
        })
    }

    async fn write(&self, text: &str) -> std::io::Result<()> {
        let mut out = self.out.lock().await;
        out.write_all(text.as_bytes()).await?;
        out.flush().await
    }
}

impl<W: AsyncWrite + Unpin + Send> Outlet for ConsoleOutlet<W> {
    fn platform(&self) -> Platform {
        Platform::Console
    }

    fn deliver<'a>(
        &'a self,
        _origin: &'a Event,
        plugin: &'a str,
        action: Action,
    ) -> BoxFuture<'a, Result<(), SendFailure>> {
        Box::pin(async move {
            let text = render(plugin, &action);
            self.write(&text).await.map_err(anyhow::Error::from)?;
            Ok(())
        })
    }
}

/// One action as console lines. Control characters a plugin wrote (terminal escape
/// sequences) are dropped: they would drive the operator's terminal.
pub fn render(plugin: &str, action: &Action) -> String {
    let mut text = render_raw(plugin, action);
    text.retain(|c| c == '\n' || !c.is_control());
    text
}

fn render_raw(plugin: &str, action: &Action) -> String {
    match action {
        Action::Reply(message) => render_message(&format!("{plugin}>"), message),
        Action::Send(send) => {
            let to = match &send.to {
                Destination::Channel(channel) => format!("#{}", channel.channel_id),
                Destination::Direct(user) => format!("@{}", user.user_id),
            };
            render_message(&format!("{plugin} -> {to}>"), &send.message)
        }
        Action::React(react) => format!("{plugin} reacted {}\n", react.emoji),
        Action::Typing => format!("{plugin} is typing...\n"),
        Action::Edit(edit) => render_message(
            &format!("{plugin} edited {}>", edit.message_id),
            &edit.message,
        ),
        Action::Delete(id) => format!("{plugin} deleted {id}\n"),
    }
}

fn render_message(lead: &str, message: &Outgoing) -> String {
    let mut out = String::new();
    let mut lines = message.text.lines();
    out.push_str(&format!("{lead} {}\n", lines.next().unwrap_or_default()));
    for line in lines {
        out.push_str(&format!("  {line}\n"));
    }
    for embed in &message.embeds {
        for text in [&embed.title, &embed.description, &embed.footer]
            .into_iter()
            .flatten()
        {
            out.push_str(&format!("  | {text}\n"));
        }
        for field in &embed.fields {
            out.push_str(&format!("  | {}: {}\n", field.name, field.value));
        }
    }
    for media in &message.media {
        let source = match &media.source {
            MediaSource::Id(id) => id,
            MediaSource::Url(url) => url,
        };
        out.push_str(&format!("  [{:?}] {source}\n", media.kind));
    }
    for button in &message.buttons {
        match &button.url {
            Some(url) => out.push_str(&format!("  [{}] {url}\n", button.label)),
            None => out.push_str(&format!("  [{}] /press {}\n", button.label, button.id)),
        }
    }
    if let Some(menu) = &message.menu {
        out.push_str(&format!("  {}:\n", menu.label));
        for option in &menu.options {
            out.push_str(&format!(
                "    {} /press {} {}\n",
                option.label, menu.id, option.value
            ));
        }
    }
    out
}

/// The event a typed line stands for; `None` for an empty line.
pub fn event_for_line(dispatcher: &Dispatcher, line: &str) -> Option<Event> {
    let line = line.trim();
    if line.is_empty() {
        return None;
    }
    let id = dispatcher.next_event_id();
    let kind = match line.strip_prefix("/press ") {
        Some(rest) => {
            let mut words = rest.split_whitespace();
            EventKind::Interaction(Interaction {
                custom_id: words.next().unwrap_or_default().to_owned(),
                values: words.map(str::to_owned).collect(),
                message_id: None,
            })
        }
        None => EventKind::Message(Message {
            id: id.clone(),
            text: line.to_owned(),
            reply_to: None,
            mentions: Vec::new(),
            attachments: Vec::new(),
            location: None,
            contacts: Vec::new(),
        }),
    };
    Some(Event {
        id,
        platform: Platform::Console,
        guild_id: Some(GUILD.to_owned()),
        channel_id: CHANNEL.to_owned(),
        author: User {
            id: USER.to_owned(),
            name: USER.to_owned(),
            is_bot: false,
            roles: Vec::new(),
            locale: None,
        },
        timestamp_ms: now_ms(),
        received_ms: now_ms(),
        guild_locale: None,
        kind,
    })
}

/// Reads lines until `/quit` or the end of input, dispatching each as it comes.
pub async fn run(dispatcher: &Dispatcher, input: impl AsyncBufRead + Unpin) -> anyhow::Result<()> {
    run_until(dispatcher, input, std::future::pending()).await
}

/// [`run`], until `stop` completes too: the line being handled is finished, the rest of
/// the input is not read.
pub async fn run_until(
    dispatcher: &Dispatcher,
    mut input: impl AsyncBufRead + Unpin,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let mut buffer = Vec::new();
    let mut stop = std::pin::pin!(stop);
    loop {
        buffer.clear();
        let read = tokio::select! {
            read = input.read_until(b'\n', &mut buffer) => read?,
            () = &mut stop => break,
        };
        if read == 0 {
            break;
        }
        // A line that is not UTF-8 (a stray byte from a terminal or a pipe) is read as well
        // as it can be, not taken for the end of the session.
        let line = String::from_utf8_lossy(&buffer);
        if line.trim() == "/quit" {
            break;
        }
        if let Some(event) = event_for_line(dispatcher, &line) {
            dispatcher.dispatch(event).await;
        }
    }
    Ok(())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_text_cannot_drive_the_terminal() {
        let action = Action::Reply(Outgoing::text_only("red\u{1b}[31m\rtext\nnext"));
        assert_eq!(render("p", &action), "p> red[31mtext\n  next\n");
    }
}

# The signature of wasmbot:plugin@0.2.0, written by `cargo xtask wit-freeze`: a released version
# never changes (docs/contract.md).
package wasmbot:plugin@0.2.0
interface config
interface config: enum scope-kind { global, guild, channel, user, member }
interface config: func delete(scope: scope, key: string) -> result<_, config-error>
interface config: func document(scope: scope) -> result<string, config-error>
interface config: func get(scope: scope, key: string) -> result<string, config-error>
interface config: func keys(scope: scope) -> result<list<string>, config-error>
interface config: func register(kind: scope-kind, defaults: string) -> result<_, config-error>
interface config: func set(scope: scope, key: string, value: string) -> result<_, config-error>
interface config: record member { guild-id: string, user-id: string }
interface config: variant config-error { denied(string), invalid-scope(string), unknown-key(string), invalid-value(string), too-large(string), unavailable(string) }
interface config: variant scope { global, guild(string), channel(string), user(string), member(member) }
interface counters
interface counters: func add(counter: string, subject: string, amount: s64, thread: string) -> result<_, counter-error>
interface counters: func stored(counter: string, subject: string) -> result<option<tuple<s64, string>>, counter-error>
interface counters: variant counter-error { denied(string), invalid(string), unavailable(string) }
interface host-config
interface host-config: func delete(scope: scope, key: string) -> result<_, config-error>
interface host-config: func document(scope: scope) -> result<string, config-error>
interface host-config: func get(scope: scope, key: string) -> result<string, config-error>
interface host-config: func keys(scope: scope) -> result<list<string>, config-error>
interface host-config: func set(scope: scope, key: string, value: string) -> result<_, config-error>
interface host-config: type config-error = config.config-error
interface host-config: type scope = config.scope
interface log
interface log: enum level { trace, debug, info, warn, error }
interface log: func write(level: level, message: string, fields: list<tuple<string, string>>)
interface messaging
interface messaging: func act(action: action) -> result<_, send-error>
interface messaging: func download(media-id: string) -> result<media-file, media-error>
interface messaging: record media-file { mime-type: string, bytes: list<u8> }
interface messaging: type action = types.action
interface messaging: variant media-error { denied(string), not-found(string), too-large(string), wrong-type(string), unavailable(string) }
interface messaging: variant send-error { denied(string), outside-window(string), rejected(string), unavailable(string) }
interface metrics
interface metrics: enum metric-kind { counter, gauge, histogram }
interface metrics: enum pressure { normal, warning, critical }
interface metrics: func add(name: string, value: f64, labels: list<string>) -> result<_, metrics-error>
interface metrics: func declare(spec: metric-spec) -> result<_, metrics-error>
interface metrics: func memory() -> memory-figures
interface metrics: func observe(name: string, value: f64, labels: list<string>) -> result<_, metrics-error>
interface metrics: func set(name: string, value: f64, labels: list<string>) -> result<_, metrics-error>
interface metrics: record memory-figures { resident-bytes: u64, limit-bytes: option<u64>, pressure: pressure, instance-bytes: u64 }
interface metrics: record metric-spec { name: string, kind: metric-kind, help: string, labels: list<string>, buckets: list<f64> }
interface metrics: variant metrics-error { denied(string), unknown(string), invalid(string), too-many-series(string) }
interface queue
interface queue: func enter(operation: string) -> result<own<ticket>, queue-error>
interface queue: resource ticket
interface queue: variant queue-error { denied(string), invalid(string), busy(u64), shedding(string) }
interface rate-limit
interface rate-limit: func check(key: string, limit: u32, window-ms: u64) -> result<decision, rate-limit-error>
interface rate-limit: variant decision { allowed, retry-after(u64) }
interface rate-limit: variant rate-limit-error { denied(string), invalid(string), full(string) }
interface schedule
interface schedule: func after(delay-ms: u64, payload: string) -> result<string, schedule-error>
interface schedule: func at(time-ms: u64, payload: string) -> result<string, schedule-error>
interface schedule: func cancel(id: string) -> result<bool, schedule-error>
interface schedule: func every(repeat: repeat, payload: string) -> result<string, schedule-error>
interface schedule: func list() -> result<list<timer-info>, schedule-error>
interface schedule: record timer-info { id: string, payload: string, next-ms: u64, repeat: option<repeat>, guild-id: option<string>, channel-id: string, user-id: string }
interface schedule: variant repeat { interval-ms(u64), cron(string) }
interface schedule: variant schedule-error { denied(string), invalid(string), too-many(string), unavailable(string) }
interface state
interface state: func clear(conversation: conversation) -> result<_, state-error>
interface state: func clear-history(conversation: conversation) -> result<_, state-error>
interface state: func get(conversation: conversation) -> result<option<string>, state-error>
interface state: func history(conversation: conversation) -> result<list<turn>, state-error>
interface state: func remember(conversation: conversation, role: string, text: string) -> result<_, state-error>
interface state: func set(conversation: conversation, value: string, ttl-seconds: u32) -> result<_, state-error>
interface state: record conversation { platform: platform, chat-id: string, user-id: string }
interface state: record turn { role: string, text: string, timestamp-ms: u64 }
interface state: type platform = types.platform
interface state: variant state-error { denied(string), invalid(string), too-large(string), unavailable(string) }
interface storage
interface storage: enum database-kind { sqlite, postgres }
interface storage: enum error-class { connection-lost, pool-timeout, serialization, constraint, bad-query, fatal }
interface storage: func backend() -> database-kind
interface storage: func batch(statements: list<statement>) -> result<list<u64>, storage-error>
interface storage: func execute(sql: string, params: list<value>) -> result<u64, storage-error>
interface storage: func migration(version: u32, sql: string) -> result<_, storage-error>
interface storage: func query(sql: string, params: list<value>) -> result<rows, storage-error>
interface storage: record database-error { class: error-class, retryable: bool, message: string }
interface storage: record rows { columns: list<string>, rows: list<list<value>> }
interface storage: record statement { sql: string, params: list<value> }
interface storage: variant storage-error { denied(string), forbidden(string), invalid(string), too-large(string), timeout(string), database(database-error) }
interface storage: variant value { null, integer(s64), real(f64), text(string), blob(list<u8>) }
interface types
interface types: enum button-style { primary, secondary, success, danger }
interface types: enum cooldown-scope { user, channel, guild, global }
interface types: enum delivery-state { sent, delivered, read, failed }
interface types: enum event-type { message, interaction, member-joined, member-left, reaction, delivery }
interface types: enum media-kind { image, audio, video, document, sticker }
interface types: enum option-kind { text, integer, number, boolean, user, channel, role, rest }
interface types: enum platform { discord, whatsapp, console }
interface types: record allowed-mentions { users: list<string>, roles: list<string>, everyone: bool }
interface types: record argument { name: string, value: value }
interface types: record attachment { kind: media-kind, id: string, url: option<string>, mime-type: option<string>, filename: option<string>, size-bytes: option<u64>, caption: option<string> }
interface types: record button { id: string, label: string, style: button-style, url: option<string>, disabled: bool }
interface types: record channel-ref { platform: platform, guild-id: option<string>, channel-id: string }
interface types: record choice { name: string, value: string }
interface types: record command { name: string, args: list<argument>, raw-args: string, source: command-source, message-id: option<string> }
interface types: record command-spec { name: string, description: string, aliases: list<string>, options: list<option-spec>, permissions: list<string>, staff-only: bool, cooldown: option<cooldown>, localizations: list<localization> }
interface types: record contact { name: string, phones: list<string> }
interface types: record cooldown { per: cooldown-scope, limit: u32, window-ms: u64 }
interface types: record delivery { message-id: string, state: delivery-state, reason: option<string> }
interface types: record edit { message-id: string, message: outgoing }
interface types: record embed { title: option<string>, description: option<string>, url: option<string>, color: option<u32>, fields: list<embed-field>, footer: option<string>, image-url: option<string> }
interface types: record embed-field { name: string, value: string, inline: bool }
interface types: record event { id: string, platform: platform, guild-id: option<string>, channel-id: string, author: user, timestamp-ms: u64, received-ms: u64, guild-locale: option<string>, kind: event-kind }
interface types: record interaction { custom-id: string, values: list<string>, message-id: option<string> }
interface types: record localization { locale: string, name: option<string>, description: string }
interface types: record location { latitude: f64, longitude: f64, name: option<string>, address: option<string> }
interface types: record manifest { name: string, version: string, description: string, commands: list<command-spec>, events: list<event-type>, capabilities: list<string>, enabled-by-default: bool }
interface types: record media { kind: media-kind, source: media-source, caption: option<string>, filename: option<string> }
interface types: record menu { id: string, label: string, options: list<menu-option>, min-values: u32, max-values: u32 }
interface types: record menu-option { value: string, label: string, description: option<string> }
interface types: record message { id: string, text: string, reply-to: option<string>, mentions: list<string>, attachments: list<attachment>, location: option<location>, contacts: list<contact> }
interface types: record option-spec { name: string, description: string, kind: option-kind, required: bool, choices: list<choice> }
interface types: record outgoing { text: string, embeds: list<embed>, buttons: list<button>, menu: option<menu>, media: list<media>, template: option<template>, ephemeral: bool, mentions: allowed-mentions }
interface types: record react { message-id: option<string>, emoji: string }
interface types: record reaction { message-id: string, emoji: string, added: bool }
interface types: record send { to: destination, message: outgoing }
interface types: record template { name: string, language: string, parameters: list<string> }
interface types: record timer { id: string, payload: string, due-ms: u64, late-ms: u64, repeats: bool }
interface types: record user { id: string, name: string, is-bot: bool, roles: list<string>, locale: option<string> }
interface types: record user-ref { platform: platform, user-id: string }
interface types: variant action { reply(outgoing), send(send), react(react), typing, edit(edit), delete(string) }
interface types: variant command-source { prefix(string), mention, slash }
interface types: variant destination { channel(channel-ref), direct(user-ref) }
interface types: variant event-kind { message(message), command(command), interaction(interaction), member-joined, member-left, reaction(reaction), delivery(delivery), timer(timer) }
interface types: variant media-source { id(string), url(string) }
interface types: variant plugin-error { invalid-input(string), unavailable(string), internal(string) }
interface types: variant value { text(string), integer(s64), number(f64), boolean(bool), user(string), channel(string), role(string) }
world plugin
world plugin: export func describe() -> manifest
world plugin: export func handle(event: event) -> result<list<action>, plugin-error>
world plugin: import interface config
world plugin: import interface counters
world plugin: import interface host-config
world plugin: import interface log
world plugin: import interface messaging
world plugin: import interface metrics
world plugin: import interface queue
world plugin: import interface rate-limit
world plugin: import interface schedule
world plugin: import interface state
world plugin: import interface storage
world plugin: import interface types
world plugin: import type action = types.action
world plugin: import type event = types.event
world plugin: import type manifest = types.manifest
world plugin: import type plugin-error = types.plugin-error

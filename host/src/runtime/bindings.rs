//! The host side of the plugin contract, generated from `wit/`.

wasmtime::component::bindgen!({
    world: "plugin",
    path: "../wit",
    exports: { default: async },
    additional_derives: [PartialEq],
});

pub use self::wasmbot::plugin::types;

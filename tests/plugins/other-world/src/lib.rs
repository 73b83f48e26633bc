//! A component built against a contract version this host never released: loading it must
//! fail with a message naming what it needs.

wit_bindgen::generate!({
    inline: "
        package wasmbot:plugin@9.9.9;

        interface log {
            write: func(message: string);
        }

        world plugin {
            import log;
            export handle: func(text: string) -> string;
        }
    ",
});

struct Other;

impl Guest for Other {
    fn handle(text: String) -> String {
        wasmbot::plugin::log::write(&text);
        text
    }
}

export!(Other);

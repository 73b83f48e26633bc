//! A component whose export uses the component model's async ABI (as some toolchains
//! build by default): loading it must fail with a message saying what to do.

wit_bindgen::generate!({
    inline: "
        package test:async-abi;

        world plugin {
            export handle: async func(text: string) -> string;
        }
    ",
});

struct Async;

impl Guest for Async {
    async fn handle(text: String) -> String {
        text
    }
}

export!(Async);

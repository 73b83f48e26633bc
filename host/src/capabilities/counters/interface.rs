//! The `counters` interface: a plugin's amounts, checked against its grant, recorded in
//! its own namespace.

use wasmtime::component::{HasSelf, Linker};

use super::{CounterKey, WriteBehind};
use crate::{
    bindings::wasmbot::plugin::counters::{self as wit, CounterError},
    capabilities::{Backends, Grant, HasContexts, Instance, Policy, Reach, check_name},
};

/// The longest counter, subject or thread name.
const MAX_NAME_BYTES: usize = 128;
/// The largest amount one call adds: totals stay far from overflowing.
const MAX_AMOUNT: i64 = 1 << 40;

/// One instance's counters: its grant and the host's write-behind.
pub struct Context(Reach<WriteBehind>);

impl Context {
    pub(crate) fn new(grant: Grant, _: &Instance, backends: &Backends, _: &Policy) -> Self {
        Self(Reach::new(grant, backends.counters.clone(), "counters"))
    }

    fn counters(&mut self) -> Result<&WriteBehind, CounterError> {
        self.0.get(CounterError::Denied, CounterError::Unavailable)
    }

    fn key(&self, counter: String, subject: String) -> CounterKey {
        CounterKey {
            plugin: self.0.plugin().to_string(),
            counter,
            subject,
        }
    }
}

pub(crate) fn link<T: HasContexts>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasSelf<Context>>(linker, |t| &mut t.contexts().counters)
}

impl wit::Host for Context {
    async fn add(
        &mut self,
        counter: String,
        subject: String,
        amount: i64,
        thread: String,
    ) -> Result<(), CounterError> {
        check(&[
            ("counter", &counter),
            ("subject", &subject),
            ("thread", &thread),
        ])?;
        if amount > MAX_AMOUNT {
            return Err(CounterError::Invalid(format!(
                "an amount is at most {MAX_AMOUNT}"
            )));
        }
        let key = self.key(counter, subject);
        self.counters()?.record(key, amount, &thread).await;
        Ok(())
    }

    async fn stored(
        &mut self,
        counter: String,
        subject: String,
    ) -> Result<Option<(i64, String)>, CounterError> {
        check(&[("counter", &counter), ("subject", &subject)])?;
        let key = self.key(counter, subject);
        self.counters()?
            .stored(&key)
            .await
            .map_err(|error| CounterError::Unavailable(error.to_string()))
    }
}

fn check(names: &[(&str, &str)]) -> Result<(), CounterError> {
    for (what, name) in names {
        check_name(&format!("{what} name"), name, MAX_NAME_BYTES).map_err(CounterError::Invalid)?;
    }
    Ok(())
}

//! The `counters` interface: a plugin's amounts, checked against its grant, recorded in
//! its own namespace.

use super::{CounterKey, WriteBehind};
use crate::{
    capabilities::{Capability, check_name},
    runtime::{
        HostState,
        bindings::wasmbot::plugin::counters::{self as wit, CounterError},
    },
};

/// The longest counter, subject or thread name.
const MAX_NAME_BYTES: usize = 128;
/// The largest amount one call adds: totals stay far from overflowing.
const MAX_AMOUNT: i64 = 1 << 40;

impl HostState {
    fn counters(&mut self) -> Result<&WriteBehind, CounterError> {
        self.grant(Capability::Counters)
            .map_err(CounterError::Denied)?;
        self.services
            .counters
            .as_deref()
            .ok_or_else(|| CounterError::Unavailable("this host runs without counters".to_owned()))
    }
}

impl wit::Host for HostState {
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
        let plugin = self.plugin.to_string();
        let key = CounterKey {
            plugin,
            counter,
            subject,
        };
        self.counters()?.record(key, amount, &thread).await;
        Ok(())
    }

    async fn stored(
        &mut self,
        counter: String,
        subject: String,
    ) -> Result<Option<(i64, String)>, CounterError> {
        check(&[("counter", &counter), ("subject", &subject)])?;
        let key = CounterKey {
            plugin: self.plugin.to_string(),
            counter,
            subject,
        };
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

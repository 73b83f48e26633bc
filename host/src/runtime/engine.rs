//! The one wasmtime [`Engine`] of a host: pooling allocator, epoch interruption, and the
//! ticker thread that drives the epochs.

use std::{thread, time::Duration};

use anyhow::Context;
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::runtime::RuntimeConfig;

/// Core instances, memories and tables one component may hold: a Rust `wasm32-wasip2`
/// component has a handful of each (the program, the WASI adapter, shims).
const CORE_INSTANCES_PER_COMPONENT: u32 = 16;
const MEMORIES_PER_COMPONENT: u32 = 2;
const TABLES_PER_COMPONENT: u32 = 4;
/// Bytes per memory or table reset in place rather than returned to the kernel.
const KEEP_RESIDENT: usize = 1 << 20;
/// Slots of each kind (instance, memory, table, stack) that stay warm while unused: enough
/// for the last instance of a few dozen plugins. wasmtime's default (100) picks a slot
/// never used before over a warm one until it holds 100 warm, and every slot used keeps
/// up to `KEEP_RESIDENT` per memory and its stack's touched pages: a host's memory then
/// grows with every slot it has ever touched. Beyond this many, the least recently used
/// warm slot is taken instead.
const WARM_SLOTS: u32 = 32;

/// Builds the engine. Every instance comes from a fixed pool of `max_instances` slots sized
/// for the largest memory cap, so instantiation is a few microseconds and memory is bounded.
pub fn build(config: &RuntimeConfig) -> anyhow::Result<Engine> {
    let slots = config.max_instances;
    let times = |per: u32| {
        slots
            .checked_mul(per)
            .with_context(|| format!("runtime.max_instances {slots} is too large"))
    };
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(slots)
        .total_core_instances(times(CORE_INSTANCES_PER_COMPONENT)?)
        .total_memories(times(MEMORIES_PER_COMPONENT)?)
        .total_tables(times(TABLES_PER_COMPONENT)?)
        .total_stacks(slots)
        .max_memories_per_module(1)
        .max_memories_per_component(MEMORIES_PER_COMPONENT)
        .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT)
        .max_tables_per_component(TABLES_PER_COMPONENT)
        .max_memory_size(mib(config.max_memory_mib)?)
        .max_unused_warm_slots(WARM_SLOTS)
        // Returning a slot with `madvise` costs a TLB shootdown on every core and page
        // faults on the next event; instead the pages an event dirtied (found with
        // PAGEMAP_SCAN where the kernel has it) are reset in place and stay resident.
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(KEEP_RESIDENT)
        .pagemap_scan(Enabled::Auto);

    let mut wasm = Config::new();
    wasm.wasm_component_model(true)
        .epoch_interruption(true)
        .max_wasm_stack(512 * 1024)
        .async_stack_size(2 * 1024 * 1024)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&wasm)
        .map_err(anyhow::Error::from)
        .context("configuring the wasmtime engine")
}

fn mib(value: u64) -> anyhow::Result<usize> {
    value
        .checked_mul(1 << 20)
        .and_then(|bytes| usize::try_from(bytes).ok())
        .with_context(|| format!("{value} MiB does not fit this machine's address space"))
}

/// Advances the engine's epoch every `tick` until the engine is dropped.
pub fn start_epoch_ticker(engine: &Engine, tick: Duration) -> anyhow::Result<()> {
    let weak = engine.weak();
    thread::Builder::new()
        .name("wasmbot-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                thread::sleep(tick);
            }
        })
        .context("starting the epoch ticker thread")?;
    Ok(())
}

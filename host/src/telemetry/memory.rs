//! The host's memory: figures (resident set, the allocator's, each plugin's instances),
//! the operator's limit with its warning and critical levels, and load shedding at
//! critical: caches shrink and heavy work is refused until the level drops.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU8, AtomicU64, Ordering},
    },
    time::Duration,
};

use serde::{Deserialize, Serialize};

/// The `[memory]` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MemoryConfig {
    /// The most resident memory the host should use, e.g. `512MiB`, `1GB` or bytes; empty:
    /// no limit (figures only). `MEMORY_LIMIT` overrides it.
    pub limit: String,
    /// Percent of the limit that warns.
    pub warning_percent: u8,
    /// Percent of the limit at which the host sheds load.
    pub critical_percent: u8,
    /// How often the figures are sampled, in milliseconds.
    pub check_ms: u64,
    /// How often a memory line is logged, in seconds; 0: never.
    pub log_every_secs: u64,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        Self {
            limit: String::new(),
            warning_percent: 80,
            critical_percent: 90,
            check_ms: 1_000,
            log_every_secs: 60,
        }
    }
}

impl MemoryConfig {
    /// The limit in bytes, when one is set.
    pub fn limit_bytes(&self) -> anyhow::Result<Option<u64>> {
        parse_size(&self.limit)
            .map_err(|error| anyhow::anyhow!("memory.limit {:?}: {error}", self.limit))
    }

    /// Rejects levels out of order and limits that do not parse.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.limit_bytes()?;
        anyhow::ensure!(
            0 < self.warning_percent
                && self.warning_percent < self.critical_percent
                && self.critical_percent <= 100,
            "memory.warning_percent and critical_percent must satisfy 0 < warning < critical <= 100"
        );
        anyhow::ensure!(self.check_ms >= 10, "memory.check_ms must be at least 10");
        Ok(())
    }
}

/// `512MiB`, `1.5GB`, `2g`, `1048576`: bytes. Empty: none.
fn parse_size(text: &str) -> Result<Option<u64>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| "expected a size such as 512MiB".to_owned())?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        other => {
            return Err(format!(
                "unknown unit {other:?} (use B, KiB, MiB, GiB, KB, MB, GB)"
            ));
        }
    };
    let bytes = number * scale as f64;
    if !(1.0..1e18).contains(&bytes) {
        return Err("must be between 1 byte and 1 EB".to_owned());
    }
    Ok(Some(bytes as u64))
}

/// How full memory is against the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Pressure {
    /// Under the warning level, or no limit.
    Normal = 0,
    /// At or over the warning level.
    Warning = 1,
    /// At or over the critical level: the host sheds load.
    Critical = 2,
}

impl Pressure {
    /// The level of `resident` bytes against `limit`.
    pub fn of(resident: u64, limit: Option<u64>, config: &MemoryConfig) -> Self {
        let Some(limit) = limit else {
            return Pressure::Normal;
        };
        let percent = resident as f64 * 100.0 / limit as f64;
        if percent >= f64::from(config.critical_percent) {
            Pressure::Critical
        } else if percent >= f64::from(config.warning_percent) {
            Pressure::Warning
        } else {
            Pressure::Normal
        }
    }

    fn from_u8(value: u8) -> Self {
        match value {
            2 => Pressure::Critical,
            1 => Pressure::Warning,
            _ => Pressure::Normal,
        }
    }
}

/// The process's memory figures.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct ProcessMemory {
    /// Resident set size.
    pub resident_bytes: u64,
    /// Virtual size.
    pub virtual_bytes: u64,
    /// The allocator's figures (jemalloc's, for what Rust allocates).
    pub allocator: Option<AllocatorMemory>,
}

/// What the allocator reports.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct AllocatorMemory {
    /// Bytes in use by the program.
    pub allocated_bytes: u64,
    /// Bytes resident in the allocator but not in use (free pages not yet returned, its
    /// own bookkeeping).
    pub free_bytes: u64,
    /// Bytes the allocator has mapped from the system.
    pub mapped_bytes: u64,
}

impl ProcessMemory {
    /// Reads the figures now.
    pub fn read() -> Self {
        let stats = memory_stats::memory_stats();
        Self {
            resident_bytes: stats.map_or(0, |s| s.physical_mem as u64),
            virtual_bytes: stats.map_or(0, |s| s.virtual_mem as u64),
            allocator: crate::telemetry::allocator::figures(),
        }
    }
}

/// Watches memory against the limit and sheds load at critical.
pub struct MemoryWatch {
    config: MemoryConfig,
    /// Bytes; 0: no limit.
    limit: AtomicU64,
    level: AtomicU8,
    criticals: AtomicU64,
    /// What gives memory back: the capabilities' backends.
    relief: std::sync::OnceLock<Vec<Arc<dyn Relief>>>,
    task: crate::task::Background,
}

/// Something that can give memory back under pressure.
pub trait Relief: Send + Sync {
    /// Refuses heavy work while `on` (critical), accepts it again after.
    fn shed(&self, on: bool) {
        let _ = on;
    }

    /// Shrinks its caches.
    fn shrink(&self) -> futures::future::BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

impl MemoryWatch {
    /// A watch with nothing to relieve yet (see [`MemoryWatch::relieve`]).
    pub fn new(config: MemoryConfig) -> anyhow::Result<Arc<Self>> {
        let limit = config.limit_bytes()?;
        Ok(Arc::new(Self {
            config,
            limit: AtomicU64::new(limit.unwrap_or(0)),
            level: AtomicU8::new(Pressure::Normal as u8),
            criticals: AtomicU64::new(0),
            relief: std::sync::OnceLock::new(),
            task: crate::task::Background::default(),
        }))
    }

    /// What it shrinks and refuses at critical (set once; later calls are ignored).
    pub fn relieve(&self, relief: Vec<Arc<dyn Relief>>) {
        let _ = self.relief.set(relief);
    }

    fn relief(&self) -> &[Arc<dyn Relief>] {
        self.relief.get().map_or(&[], Vec::as_slice)
    }

    /// The operator's limit, in bytes.
    pub fn limit(&self) -> Option<u64> {
        Some(self.limit.load(Ordering::Relaxed)).filter(|limit| *limit > 0)
    }

    /// Changes the limit; the next sample applies it.
    pub fn set_limit(&self, limit: Option<u64>) {
        self.limit.store(limit.unwrap_or(0), Ordering::Relaxed);
    }

    /// The level at the last sample.
    pub fn pressure(&self) -> Pressure {
        Pressure::from_u8(self.level.load(Ordering::Relaxed))
    }

    /// Times the host went critical.
    pub fn criticals(&self) -> u64 {
        self.criticals.load(Ordering::Relaxed)
    }

    /// Samples memory now; a change of level is logged and acted on.
    pub async fn sample(&self) -> ProcessMemory {
        let memory = ProcessMemory::read();
        let limit = self.limit();
        let before = self.pressure();
        let mut level = Pressure::of(memory.resident_bytes, limit, &self.config);
        // Shedding stops 5 points under the critical level, not at it: no flapping.
        let margin = limit.map_or(0, |limit| limit / 20);
        let near = Pressure::of(
            memory.resident_bytes.saturating_add(margin),
            limit,
            &self.config,
        );
        if before == Pressure::Critical && near == Pressure::Critical {
            level = Pressure::Critical;
        }
        self.level.store(level as u8, Ordering::Relaxed);
        if level != before {
            self.changed(before, level, &memory).await;
        } else if level == Pressure::Critical {
            // Still critical: what refilled the caches meanwhile goes again.
            self.shrink_caches().await;
        }
        memory
    }

    async fn changed(&self, before: Pressure, level: Pressure, memory: &ProcessMemory) {
        let resident_mib = memory.resident_bytes >> 20;
        let limit_mib = self.limit().unwrap_or(0) >> 20;
        match level {
            Pressure::Critical => {
                self.criticals.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    resident_mib,
                    limit_mib,
                    "memory critical: shedding load (caches shrunk, heavy work refused)"
                );
                self.shed(true);
                self.shrink_caches().await;
            }
            Pressure::Warning => {
                tracing::warn!(resident_mib, limit_mib, "memory warning");
                self.shed(false);
            }
            Pressure::Normal => {
                tracing::info!(resident_mib, limit_mib, ?before, "memory back to normal");
                self.shed(false);
            }
        }
    }

    fn shed(&self, on: bool) {
        for relief in self.relief() {
            relief.shed(on);
        }
    }

    async fn shrink_caches(&self) {
        for relief in self.relief() {
            relief.shrink().await;
        }
        crate::telemetry::allocator::give_back();
    }

    /// Samples every `check_ms` and logs a memory line every `log_every_secs`, until
    /// [`MemoryWatch::stop`].
    pub fn start(self: &Arc<Self>) {
        let watch = Arc::clone(self);
        let task = tokio::spawn(async move {
            let every = Duration::from_millis(watch.config.check_ms);
            let log_every = Duration::from_secs(watch.config.log_every_secs);
            let mut ticker = tokio::time::interval(every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last_line = tokio::time::Instant::now();
            loop {
                ticker.tick().await;
                let memory = watch.sample().await;
                if !log_every.is_zero() && last_line.elapsed() >= log_every {
                    last_line = tokio::time::Instant::now();
                    tracing::info!(
                        resident_mib = memory.resident_bytes >> 20,
                        allocated_mib = memory.allocator.map(|a| a.allocated_bytes >> 20),
                        limit_mib = watch.limit().map(|limit| limit >> 20),
                        pressure = ?watch.pressure(),
                        "memory"
                    );
                }
            }
        });
        self.task.run(task);
    }

    /// Stops sampling.
    pub fn stop(&self) {
        self.task.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_their_units() {
        assert_eq!(parse_size(""), Ok(None));
        assert_eq!(parse_size("512MiB"), Ok(Some(512 << 20)));
        assert_eq!(parse_size("1.5 GB"), Ok(Some(1_500_000_000)));
        assert_eq!(parse_size("4096"), Ok(Some(4096)));
        assert!(
            parse_size("12 parsecs")
                .unwrap_err()
                .contains("unknown unit")
        );
        assert!(parse_size("-5MiB").is_err());
        assert!(parse_size("0").is_err());
    }

    #[test]
    fn levels_are_the_configured_percentages_of_the_limit() {
        let config = MemoryConfig::default();
        let level = |resident| Pressure::of(resident, Some(1000), &config);
        assert_eq!(level(799), Pressure::Normal);
        assert_eq!(level(800), Pressure::Warning);
        assert_eq!(level(899), Pressure::Warning);
        assert_eq!(level(900), Pressure::Critical);
        assert_eq!(Pressure::of(u64::MAX, None, &config), Pressure::Normal);
    }

    #[test]
    fn the_process_has_resident_memory() {
        let memory = ProcessMemory::read();
        assert!(memory.resident_bytes > 0 && memory.virtual_bytes >= memory.resident_bytes);
    }
}

//! The WASI an adapter may import: a small, deterministic subset that can
//! never block.
//!
//! Adapters built by other languages' toolchains (componentize-js /
//! StarlingMonkey, for one) import WASI for their language runtime even
//! when the adapter itself does no I/O. Payhost links exactly these
//! interfaces (`wasi:*@0.2.x`) and answers them so that a step stays a pure
//! function of its inputs:
//!
//! - `wasi:clocks`: the monotonic clock is virtual. It starts at 0 in every
//!   step and moves only when the guest waits, straight to the instant it
//!   waited for, so waiting never sleeps. The wall clock is the call
//!   context's `timestamp` plus that virtual time. A wait that would end
//!   past the step's deadline ends the step with the deadline error.
//! - `wasi:random` (all three interfaces): bytes derived from the call
//!   context's `seed`, so a replayed step sees the same values.
//! - `wasi:cli`: no arguments, no environment, no working directory, stdin
//!   closed, stdout and stderr captured into the adapter's (capped) log;
//!   `exit` ends the step.
//! - `wasi:filesystem`: `types` and `preopens`, with nothing preopened, so
//!   no descriptor can ever exist.
//! - `wasi:io`: errors, streams and poll over the above.
//!
//! Everything else (sockets, HTTP, key-value, ...) is refused at load with
//! the import's name.

use sha2::{Digest as _, Sha256};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use wasmtime::Trap;
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};
use wasmtime_wasi::p2::bindings::{clocks, random, sync};
use wasmtime_wasi::p2::{DynPollable, Pollable};
use wasmtime_wasi::{WasiCtx, WasiView};

/// The WASI interfaces payhost links, without their version.
const LINKED: &[&str] = &[
    "wasi:cli/environment",
    "wasi:cli/exit",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:cli/terminal-stderr",
    "wasi:clocks/monotonic-clock",
    "wasi:clocks/wall-clock",
    "wasi:filesystem/types",
    "wasi:filesystem/preopens",
    "wasi:io/error",
    "wasi:io/poll",
    "wasi:io/streams",
    "wasi:random/random",
    "wasi:random/insecure",
    "wasi:random/insecure-seed",
];

/// Most random bytes one call may ask for: language runtimes seed their
/// generators with a few dozen bytes; a guest asking for gigabytes would
/// make the host allocate them.
pub(crate) const MAX_RANDOM_BYTES: u64 = 64 * 1024;

/// Whether `import` (an import name such as `wasi:io/poll@0.2.3`) is one
/// of the interfaces linked here.
pub(crate) fn provides(import: &str) -> bool {
    let (name, version) = import.split_once('@').unwrap_or((import, ""));
    LINKED.contains(&name) && version.starts_with("0.2.")
}

/// A WASI context that grants nothing: no preopened directories, no
/// environment, no arguments, stdin closed, output to `stdout`/`stderr`.
pub(crate) fn empty_ctx(
    stdout: impl wasmtime_wasi::cli::StdoutStream + 'static,
    stderr: impl wasmtime_wasi::cli::StdoutStream + 'static,
) -> WasiCtx {
    WasiCtx::builder()
        .stdout(stdout)
        .stderr(stderr)
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .build()
}

/// Adds the subset to `linker`: `wasi:cli`, `wasi:filesystem` and the
/// `wasi:io` streams from wasmtime-wasi over an empty [`WasiCtx`]; clocks,
/// random and poll from this module.
pub(crate) fn add_to_linker<T>(l: &mut Linker<T>) -> wasmtime::Result<()>
where
    T: WasiView + HasSandbox + 'static,
{
    use wasmtime_wasi::cli::{WasiCli, WasiCliView};
    use wasmtime_wasi::filesystem::{WasiFilesystem, WasiFilesystemView};
    let cli = <T as WasiCliView>::cli;
    sync::cli::environment::add_to_linker::<T, WasiCli>(l, cli)?;
    sync::cli::exit::add_to_linker::<T, WasiCli>(l, cli)?;
    sync::cli::stdin::add_to_linker::<T, WasiCli>(l, cli)?;
    sync::cli::stdout::add_to_linker::<T, WasiCli>(l, cli)?;
    sync::cli::stderr::add_to_linker::<T, WasiCli>(l, cli)?;
    sync::cli::terminal_input::add_to_linker::<T, WasiCli>(l, cli)?;
    sync::cli::terminal_output::add_to_linker::<T, WasiCli>(l, cli)?;
    sync::cli::terminal_stdin::add_to_linker::<T, WasiCli>(l, cli)?;
    sync::cli::terminal_stdout::add_to_linker::<T, WasiCli>(l, cli)?;
    sync::cli::terminal_stderr::add_to_linker::<T, WasiCli>(l, cli)?;
    let fs = <T as WasiFilesystemView>::filesystem;
    sync::filesystem::types::add_to_linker::<T, WasiFilesystem>(l, fs)?;
    sync::filesystem::preopens::add_to_linker::<T, WasiFilesystem>(l, fs)?;
    let table = table_of::<T>;
    sync::io::error::add_to_linker::<T, Table>(l, table)?;
    sync::io::streams::add_to_linker::<T, Table>(l, table)?;

    let own = <T as HasSandbox>::sandbox;
    sync::io::poll::add_to_linker::<T, Deterministic>(l, own)?;
    clocks::monotonic_clock::add_to_linker::<T, Deterministic>(l, own)?;
    clocks::wall_clock::add_to_linker::<T, Deterministic>(l, own)?;
    random::random::add_to_linker::<T, Deterministic>(l, own)?;
    random::insecure::add_to_linker::<T, Deterministic>(l, own)?;
    random::insecure_seed::add_to_linker::<T, Deterministic>(l, own)?;
    Ok(())
}

fn table_of<T: WasiView>(t: &mut T) -> &mut ResourceTable {
    t.ctx().table
}

struct Table;

impl HasData for Table {
    type Data<'a> = &'a mut ResourceTable;
}

struct Deterministic;

impl HasData for Deterministic {
    type Data<'a> = SandboxView<'a>;
}

/// Store data that carries a [`Sandbox`] next to its resource table.
pub(crate) trait HasSandbox {
    fn sandbox(&mut self) -> SandboxView<'_>;
}

/// What the deterministic interfaces work on.
pub(crate) struct SandboxView<'a> {
    pub(crate) sandbox: &'a mut Sandbox,
    pub(crate) table: &'a mut ResourceTable,
}

/// The clocks and random streams of one step.
pub(crate) struct Sandbox {
    /// The call context's Unix time, seconds.
    timestamp: i64,
    clock: Arc<VirtualClock>,
    secure: SeededBytes,
    insecure: SeededBytes,
    insecure_seed: (u64, u64),
}

impl Sandbox {
    /// Clocks starting at `timestamp`, random streams derived from
    /// `seed`; a wait past `deadline` (virtual time) ends the step.
    pub(crate) fn new(timestamp: i64, seed: u64, deadline: Duration) -> Self {
        let seed_bytes = SeededBytes::new(b"wasi:random/insecure-seed", seed).take(16);
        let word = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("8 bytes"));
        Self {
            timestamp,
            clock: Arc::new(VirtualClock {
                now_ns: AtomicU64::new(0),
                deadline_ns: u64::try_from(deadline.as_nanos()).unwrap_or(u64::MAX),
                earliest_waiting: Mutex::new(None),
            }),
            secure: SeededBytes::new(b"wasi:random/random", seed),
            insecure: SeededBytes::new(b"wasi:random/insecure", seed),
            insecure_seed: (word(&seed_bytes[..8]), word(&seed_bytes[8..])),
        }
    }
}

/// Nanoseconds of virtual time since the step started.
struct VirtualClock {
    now_ns: AtomicU64,
    deadline_ns: u64,
    /// The earliest virtual deadline found not yet reached while checking
    /// pollables; what `poll` advances the clock to when nothing is ready.
    earliest_waiting: Mutex<Option<u64>>,
}

impl VirtualClock {
    fn now(&self) -> u64 {
        self.now_ns.load(Ordering::Relaxed)
    }

    /// Moves time forward to `at`; a wait past the step's deadline traps
    /// as the deadline does, so the step ends with that error at once.
    fn advance_to(&self, at: u64) -> wasmtime::Result<()> {
        if at > self.deadline_ns {
            return Err(Trap::Interrupt.into());
        }
        self.now_ns.fetch_max(at, Ordering::Relaxed);
        Ok(())
    }

    fn note_waiting(&self, at: u64) {
        let mut e = self
            .earliest_waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        *e = Some(e.map_or(at, |cur| cur.min(at)));
    }

    fn take_earliest_waiting(&self) -> Option<u64> {
        self.earliest_waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }
}

/// A `subscribe-instant`/`subscribe-duration` pollable: ready once the
/// virtual clock has reached `at`.
struct VirtualDeadline {
    clock: Arc<VirtualClock>,
    at: u64,
}

#[wasmtime_wasi::async_trait]
impl Pollable for VirtualDeadline {
    async fn ready(&mut self) {
        if self.clock.now() >= self.at {
            return;
        }
        // Only `poll`/`block` below move the clock; until then, not ready.
        self.clock.note_waiting(self.at);
        std::future::pending::<()>().await
    }
}

impl SandboxView<'_> {
    fn subscribe(&mut self, at: u64) -> wasmtime::Result<Resource<DynPollable>> {
        let deadline = self.table.push(VirtualDeadline {
            clock: self.sandbox.clock.clone(),
            at,
        })?;
        wasmtime_wasi::p2::subscribe(self.table, deadline)
    }

    /// Whether the pollable is ready now, without waiting. Every pollable
    /// of this subset answers at its first poll (pipes, closed stdin and
    /// virtual deadlines), so one poll with a no-op waker suffices.
    fn is_ready(&mut self, p: &Resource<DynPollable>) -> wasmtime::Result<bool> {
        use wasmtime_wasi::p2::bindings::io::poll::HostPollable as AsyncPollable;
        let borrowed = Resource::<DynPollable>::new_borrow(p.rep());
        let fut = std::pin::pin!(AsyncPollable::ready(&mut *self.table, borrowed));
        match fut.poll(&mut Context::from_waker(std::task::Waker::noop())) {
            Poll::Ready(r) => r,
            Poll::Pending => Ok(false),
        }
    }

    /// Advances virtual time to the earliest deadline among the pollables
    /// just checked; with none, nothing could ever become ready, which is
    /// a wait without end: the deadline error.
    fn wait_for_next(&mut self) -> wasmtime::Result<()> {
        match self.sandbox.clock.take_earliest_waiting() {
            Some(at) => self.sandbox.clock.advance_to(at),
            None => Err(Trap::Interrupt.into()),
        }
    }
}

impl sync::io::poll::Host for SandboxView<'_> {
    fn poll(&mut self, pollables: Vec<Resource<DynPollable>>) -> wasmtime::Result<Vec<u32>> {
        if pollables.is_empty() {
            wasmtime::bail!("empty poll list");
        }
        loop {
            self.sandbox.clock.take_earliest_waiting();
            let mut ready = Vec::new();
            for (i, p) in pollables.iter().enumerate() {
                if self.is_ready(p)? {
                    ready.push(u32::try_from(i)?);
                }
            }
            if !ready.is_empty() {
                return Ok(ready);
            }
            self.wait_for_next()?;
        }
    }
}

impl sync::io::poll::HostPollable for SandboxView<'_> {
    fn ready(&mut self, p: Resource<DynPollable>) -> wasmtime::Result<bool> {
        self.is_ready(&p)
    }

    fn block(&mut self, p: Resource<DynPollable>) -> wasmtime::Result<()> {
        loop {
            self.sandbox.clock.take_earliest_waiting();
            if self.is_ready(&p)? {
                return Ok(());
            }
            self.wait_for_next()?;
        }
    }

    fn drop(&mut self, p: Resource<DynPollable>) -> wasmtime::Result<()> {
        use wasmtime_wasi::p2::bindings::io::poll::HostPollable as AsyncPollable;
        AsyncPollable::drop(&mut *self.table, p)
    }
}

impl clocks::monotonic_clock::Host for SandboxView<'_> {
    fn now(&mut self) -> wasmtime::Result<u64> {
        Ok(self.sandbox.clock.now())
    }

    fn resolution(&mut self) -> wasmtime::Result<u64> {
        Ok(1)
    }

    fn subscribe_instant(&mut self, when: u64) -> wasmtime::Result<Resource<DynPollable>> {
        self.subscribe(when)
    }

    fn subscribe_duration(&mut self, d: u64) -> wasmtime::Result<Resource<DynPollable>> {
        let at = self.sandbox.clock.now().saturating_add(d);
        self.subscribe(at)
    }
}

impl clocks::wall_clock::Host for SandboxView<'_> {
    fn now(&mut self) -> wasmtime::Result<clocks::wall_clock::Datetime> {
        let elapsed = Duration::from_nanos(self.sandbox.clock.now());
        // Before 1970 there is nothing to pay; clamp rather than fail.
        let start = u64::try_from(self.sandbox.timestamp).unwrap_or(0);
        Ok(clocks::wall_clock::Datetime {
            seconds: start.saturating_add(elapsed.as_secs()),
            nanoseconds: elapsed.subsec_nanos(),
        })
    }

    fn resolution(&mut self) -> wasmtime::Result<clocks::wall_clock::Datetime> {
        Ok(clocks::wall_clock::Datetime {
            seconds: 0,
            nanoseconds: 1,
        })
    }
}

fn random_len(len: u64) -> wasmtime::Result<usize> {
    if len > MAX_RANDOM_BYTES {
        wasmtime::bail!(
            "wasi:random: {len} bytes asked for in one call, at most {MAX_RANDOM_BYTES} allowed"
        );
    }
    Ok(len as usize)
}

impl random::random::Host for SandboxView<'_> {
    fn get_random_bytes(&mut self, len: u64) -> wasmtime::Result<Vec<u8>> {
        Ok(self.sandbox.secure.take(random_len(len)?))
    }

    fn get_random_u64(&mut self) -> wasmtime::Result<u64> {
        Ok(self.sandbox.secure.u64())
    }
}

impl random::insecure::Host for SandboxView<'_> {
    fn get_insecure_random_bytes(&mut self, len: u64) -> wasmtime::Result<Vec<u8>> {
        Ok(self.sandbox.insecure.take(random_len(len)?))
    }

    fn get_insecure_random_u64(&mut self) -> wasmtime::Result<u64> {
        Ok(self.sandbox.insecure.u64())
    }
}

impl random::insecure_seed::Host for SandboxView<'_> {
    fn insecure_seed(&mut self) -> wasmtime::Result<(u64, u64)> {
        Ok(self.sandbox.insecure_seed)
    }
}

/// SHA-256 in counter mode over (purpose, seed): a stable byte stream per
/// purpose that two runs with the same seed reproduce exactly. It needs no
/// secrecy (the adapter knows the seed); it must only be the same on replay.
struct SeededBytes {
    key: [u8; 32],
    counter: u64,
    block: [u8; 32],
    used: usize,
}

impl SeededBytes {
    fn new(purpose: &[u8], seed: u64) -> Self {
        let mut h = Sha256::new();
        h.update(b"payhost wasi seed\0");
        h.update(purpose);
        h.update(seed.to_le_bytes());
        Self {
            key: h.finalize().into(),
            counter: 0,
            block: [0; 32],
            used: 32,
        }
    }

    fn take(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            if self.used == self.block.len() {
                let mut h = Sha256::new();
                h.update(self.key);
                h.update(self.counter.to_le_bytes());
                self.block = h.finalize().into();
                self.counter += 1;
                self.used = 0;
            }
            let k = (n - out.len()).min(self.block.len() - self.used);
            out.extend_from_slice(&self.block[self.used..self.used + k]);
            self.used += k;
        }
        out
    }

    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take(8).try_into().expect("8 bytes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_deterministic_subset_of_wasi_0_2_is_provided() {
        assert!(provides("wasi:io/poll@0.2.0"));
        assert!(provides("wasi:clocks/wall-clock@0.2.3"));
        assert!(provides("wasi:random/insecure-seed@0.2.12"));
        assert!(provides("wasi:filesystem/preopens@0.2.0"));
        for refused in [
            "wasi:sockets/tcp@0.2.0",
            "wasi:sockets/instance-network@0.2.0",
            "wasi:http/outgoing-handler@0.2.0",
            "wasi:clocks/timezone@0.2.0",
            "wasi:io/poll@0.3.0",
            "wasi:io/poll",
            "wasi:keyvalue/store@0.2.0-draft",
        ] {
            assert!(!provides(refused), "{refused}");
        }
    }

    #[test]
    fn seeded_bytes_are_stable_per_seed_and_purpose() {
        let a = SeededBytes::new(b"x", 7).take(100);
        let mut split = SeededBytes::new(b"x", 7);
        let mut b = split.take(33);
        b.extend(split.take(67));
        assert_eq!(a, b, "chunking does not change the stream");
        assert_ne!(a, SeededBytes::new(b"x", 8).take(100));
        assert_ne!(a, SeededBytes::new(b"y", 7).take(100));
    }

    #[test]
    fn waiting_moves_virtual_time_up_to_the_deadline_only() {
        let c = Sandbox::new(1_700_000_000, 1, Duration::from_millis(200)).clock;
        c.advance_to(50_000_000).unwrap();
        assert_eq!(c.now(), 50_000_000);
        c.advance_to(10).unwrap();
        assert_eq!(c.now(), 50_000_000, "time never goes back");
        let e = c.advance_to(200_000_001).unwrap_err();
        assert_eq!(e.downcast_ref::<Trap>(), Some(&Trap::Interrupt));
    }
}

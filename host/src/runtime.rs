//! The adapter runtime: one wasmtime engine, compiled components cached by
//! digest, a fresh store per step, and the I/O loop that performs the
//! requests adapters ask for.
//!
//! The sandbox's limits live in submodules: [`wasi`] (the deterministic,
//! non-blocking WASI subset), [`log_limits`] (what an adapter may log) and
//! [`output_limits`] (what it may return or ask to send). Time is bounded
//! twice: epochs interrupt guest code past `step_deadline`, and a
//! wall-clock timeout around every step and every operation holds even
//! inside host calls.
//!
//! A step of an adapter that imports no WASI first runs on the calling
//! task within [`INLINE_BUDGET`]: most steps take tens of microseconds,
//! less than the hand-off to tokio's blocking pool costs. One that outruns
//! that budget, or asks for a host call over [`INLINE_HOST_BYTES`] of input,
//! is abandoned and run again, from scratch, on the blocking pool with the
//! whole deadline, so an async worker is never held much longer than the
//! budget. A step is a function of its inputs (no I/O, no clock or
//! randomness but the call context's), so running it again gives the same
//! answer; its log lines are held until it completes, so the abandoned
//! attempt logs nothing. (wasmtime-wasi's synchronous bindings block on the
//! tokio runtime, which an async task must not do: WASI adapters always
//! run on the blocking pool.)

mod log_limits;
mod output_limits;
mod wasi;

use crate::contract::{
    self, AdapterError, AdapterInfo, AdapterPre, AnyAdapterPre, CallContext, CloseRequest,
    CloseStep, ContractQueryRequest, ContractSignRequest, ContractSignStep, ContractSigning,
    ContractStatus, ContractStep, ContractTerminateRequest, DeductionQueryRequest,
    DeductionRequest, DeductionStatus, DeductionStep, Exchange, HttpRequest, HttpResponse,
    InboundHttp, Level, NotifyOutcome, NotifyStep, OrderCreated, OrderRequest, OrderStep,
    PayoutQueryRequest, PayoutQueryStep, PayoutRequest, PayoutStatus, PayoutStep, QueryRequest,
    QueryStep, RefundQueryRequest, RefundQueryStep, RefundRequest, RefundStatus, RefundStep,
    TradeStatus,
};
use crate::contract::{Bridge, v0_1, v0_2, v0_3, v0_4, v0_5};
use crate::egress::{Egress, EgressPolicy};
use crate::error::{CallError, LoadError};
use crate::merchant::{Masker, MerchantConfig, ResolvedConfig};
use payhost_sdk::native::SecretTable;
use sha2::Digest as _;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// How often the epoch advances; a step deadline is a whole number of ticks.
const EPOCH_TICK: Duration = Duration::from_millis(5);
/// How much WASI stdout/stderr one step may write before writes fail
/// (what reaches the log is further capped by [`log_limits`]).
const STDIO_CAPACITY: usize = log_limits::STEP_BYTES;
/// How long past `step_deadline` a caller waits for a step whose epoch
/// interruption did not end it (a host call running long): a step's
/// caller never waits more than `step_deadline + STEP_GRACE`.
const STEP_GRACE: Duration = Duration::from_millis(100);
/// Epoch ticks a step may run on the calling task: it ends 5-10 ms in.
const INLINE_TICKS: u64 = 2;
/// The same budget in wall-clock time, for host calls (which epochs cannot
/// interrupt) to check.
const INLINE_BUDGET: Duration = Duration::from_millis(10);
/// The most input a host call may take while its step runs on the calling
/// task: a secret operation's time grows with its input (up to
/// `native::MAX_MESSAGE_BYTES`), and epochs cannot interrupt it.
const INLINE_HOST_BYTES: usize = 64 * 1024;
/// After a step of an adapter outran [`INLINE_BUDGET`], how many of its
/// next steps go straight to the blocking pool: a slow adapter does not
/// pay a wasted attempt on every step, and is tried inline again later.
const POOLED_AFTER_MISS: u32 = 64;
/// Bytes of a linear memory that slot reuse resets with `memset` (only the
/// pages a step dirtied, found by the `PAGEMAP_SCAN` ioctl) instead of
/// `madvise`, which costs a TLB shootdown and page faults on the next step.
/// Also what a warm pool slot may keep resident.
const KEEP_RESIDENT: usize = 4 * 1024 * 1024;
/// The same for tables (a few KiB in a Rust adapter).
const TABLE_KEEP_RESIDENT: usize = 64 * 1024;

/// Limits and settings of a [`Runtime`].
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Largest linear memory an adapter may grow to, in bytes.
    pub memory_limit: usize,
    /// Longest guest time one step may take.
    pub step_deadline: Duration,
    /// Longest one whole operation may take, steps and requests included;
    /// its caller gets [`CallError::OperationDeadline`] then.
    pub operation_deadline: Duration,
    /// Most requests one operation may ask for.
    pub max_steps: usize,
    /// Size of the instance pool: steps running at the same time.
    pub max_instances: u32,
    /// Where compiled components are kept across restarts (none: memory only).
    pub cache_dir: Option<PathBuf>,
    /// What adapters may reach.
    pub egress: EgressPolicy,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            memory_limit: 64 * 1024 * 1024,
            step_deadline: Duration::from_secs(1),
            operation_deadline: Duration::from_secs(30),
            max_steps: 8,
            max_instances: 128,
            cache_dir: None,
            egress: EgressPolicy::default(),
        }
    }
}

/// An adapter ready to be called: compiled, linked and described.
pub struct LoadedAdapter {
    /// Hex sha256 of the component's bytes.
    pub digest: String,
    pub info: AdapterInfo,
    pub pre: AnyAdapterPre<StepState>,
    /// Steps still to send straight to the blocking pool ([`POOLED_AFTER_MISS`]).
    pooled_steps: AtomicU32,
    /// Whether its steps may start on the calling task (it imports no WASI).
    inline: bool,
}

impl std::fmt::Debug for LoadedAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedAdapter")
            .field("digest", &self.digest)
            .field("name", &self.info.name)
            .field("version", &self.info.version)
            .field("contract", &self.pre.contract_version())
            .finish_non_exhaustive()
    }
}

/// One operation and its request.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Operation {
    UnifiedOrder(OrderRequest),
    Query(QueryRequest),
    /// Contract 0.2.
    Close(CloseRequest),
    Refund(RefundRequest),
    /// Contract 0.2.
    RefundQuery(RefundQueryRequest),
    ParseNotify(InboundHttp),
    /// Contract 0.5.
    Payout(PayoutRequest),
    /// Contract 0.5.
    PayoutQuery(PayoutQueryRequest),
    /// Contract 0.6.
    ContractSign(ContractSignRequest),
    /// Contract 0.6.
    ContractQuery(ContractQueryRequest),
    /// Contract 0.6.
    ContractTerminate(ContractTerminateRequest),
    /// Contract 0.6.
    Deduct(DeductionRequest),
    /// Contract 0.6.
    DeductionQuery(DeductionQueryRequest),
}

impl Operation {
    /// The operation's name in the contract.
    pub fn name(&self) -> &'static str {
        match self {
            Operation::UnifiedOrder(_) => "unified-order",
            Operation::Query(_) => "query",
            Operation::Close(_) => "close",
            Operation::Refund(_) => "refund",
            Operation::RefundQuery(_) => "refund-query",
            Operation::ParseNotify(_) => "parse-notify",
            Operation::Payout(_) => "payout",
            Operation::PayoutQuery(_) => "payout-query",
            Operation::ContractSign(_) => "contract-sign",
            Operation::ContractQuery(_) => "contract-query",
            Operation::ContractTerminate(_) => "contract-terminate",
            Operation::Deduct(_) => "deduct",
            Operation::DeductionQuery(_) => "deduction-query",
        }
    }

    /// The contract version that added the operation, for those added
    /// after 0.2 (a component of an older contract lacks them).
    pub fn added_in(&self) -> Option<&'static str> {
        match self {
            Operation::Payout(_) | Operation::PayoutQuery(_) => Some("0.5"),
            Operation::ContractSign(_)
            | Operation::ContractQuery(_)
            | Operation::ContractTerminate(_)
            | Operation::Deduct(_)
            | Operation::DeductionQuery(_) => Some("0.6"),
            _ => None,
        }
    }
}

/// The result of an [`Operation`]: `query` and `close` answer a trade
/// status, `refund` and `refund-query` a refund status, `payout` and
/// `payout-query` a payout status, the contract operations a signing, a
/// contract status or a deduction status.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Output {
    OrderCreated(OrderCreated),
    TradeStatus(TradeStatus),
    RefundStatus(RefundStatus),
    Notify(NotifyOutcome),
    PayoutStatus(PayoutStatus),
    /// Contract 0.6: `contract-sign`.
    ContractSigning(ContractSigning),
    /// Contract 0.6: `contract-query`, `contract-terminate`.
    ContractStatus(ContractStatus),
    /// Contract 0.6: `deduct`, `deduction-query`.
    DeductionStatus(DeductionStatus),
}

/// Counters for tests and metrics.
#[derive(Debug, Default)]
struct Counters {
    compiled: AtomicUsize,
    disk_hits: AtomicUsize,
    disk_rejected: AtomicUsize,
    log_lines_dropped: AtomicUsize,
}

/// Loads adapters and runs their operations. Cheap to share behind an `Arc`.
pub struct Runtime {
    engine: Engine,
    linker: Linker<StepState>,
    config: RuntimeConfig,
    deadline_ticks: u64,
    egress: Arc<Egress>,
    components: Mutex<HashMap<String, Component>>,
    counters: Counters,
    ticker_stop: Arc<AtomicBool>,
    ticker: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Runtime {
    pub fn new(config: RuntimeConfig) -> anyhow::Result<Self> {
        const PAGE: usize = 64 * 1024;
        let memory_limit = config.memory_limit.div_ceil(PAGE) * PAGE;
        let n = config.max_instances.max(1);
        let mut pool = PoolingAllocationConfig::new();
        // Components made by wit-component have a few core instances (the
        // module, shims) and one or two memories; WASI adapters a few more.
        pool.total_component_instances(n)
            .total_core_instances(n.saturating_mul(4))
            .total_memories(n.saturating_mul(2))
            .total_tables(n.saturating_mul(4))
            .max_memory_size(memory_limit)
            .linear_memory_keep_resident(KEEP_RESIDENT.min(memory_limit))
            .table_keep_resident(TABLE_KEEP_RESIDENT)
            // Where the kernel has it (Linux 6.7+); otherwise the first
            // KEEP_RESIDENT bytes are reset with memset.
            .pagemap_scan(wasmtime::Enabled::Auto);
        let mut wcfg = wasmtime::Config::new();
        wcfg.wasm_component_model(true)
            .epoch_interruption(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
            // Reserve only the cap per memory (not 4 GiB + guards): the pool
            // then needs about 2 * max_instances * memory_limit of address
            // space, at the price of explicit bounds checks.
            .memory_reservation(memory_limit as u64)
            .memory_reservation_for_growth(0)
            // With those explicit checks made against the memory's current
            // size rather than against PROT_NONE pages, neither growing a
            // memory nor reusing its slot needs an `mprotect` (and its TLB
            // shootdown): a third of a short step's cost. Traps are then
            // explicit checks too, and no guard region is needed.
            .signals_based_traps(false)
            .memory_guard_size(0);
        let engine = Engine::new(&wcfg).map_err(wt)?;

        let mut linker = Linker::new(&engine);
        contract::Adapter::add_to_linker::<StepState, HasSelf<StepState>>(&mut linker, |s| s)
            .map_err(wt)?;
        // Components built against contracts 0.5 to 0.1 import their
        // (differently versioned) interfaces; all sets live side by side.
        v0_5::Adapter::add_to_linker::<StepState, HasSelf<StepState>>(&mut linker, |s| s)
            .map_err(wt)?;
        v0_4::Adapter::add_to_linker::<StepState, HasSelf<StepState>>(&mut linker, |s| s)
            .map_err(wt)?;
        v0_3::Adapter::add_to_linker::<StepState, HasSelf<StepState>>(&mut linker, |s| s)
            .map_err(wt)?;
        v0_2::Adapter::add_to_linker::<StepState, HasSelf<StepState>>(&mut linker, |s| s)
            .map_err(wt)?;
        v0_1::Adapter::add_to_linker::<StepState, HasSelf<StepState>>(&mut linker, |s| s)
            .map_err(wt)?;
        // For adapters written in other languages: only the deterministic,
        // non-blocking subset, over a context that grants nothing.
        wasi::add_to_linker(&mut linker).map_err(wt)?;

        let ticker_stop = Arc::new(AtomicBool::new(false));
        let ticker = {
            let engine = engine.weak();
            let stop = ticker_stop.clone();
            std::thread::Builder::new()
                .name("payhost-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(EPOCH_TICK);
                        match engine.upgrade() {
                            Some(e) => e.increment_epoch(),
                            None => break,
                        }
                    }
                })?
        };
        let deadline_ticks =
            (config.step_deadline.as_nanos() / EPOCH_TICK.as_nanos()).max(1) as u64 + 1;
        let egress = Arc::new(Egress::new(config.egress.clone())?);
        Ok(Self {
            engine,
            linker,
            config: RuntimeConfig {
                memory_limit,
                ..config
            },
            deadline_ticks,
            egress,
            components: Mutex::new(HashMap::new()),
            counters: Counters::default(),
            ticker_stop,
            ticker: Some(ticker),
        })
    }

    /// The egress the runtime sends adapter requests through (for checks
    /// of configured endpoints before any request).
    pub fn egress(&self) -> &Egress {
        &self.egress
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }

    /// How many times this runtime compiled a component (cache misses in
    /// memory and on disk).
    /// Drops the in-memory compiled component of `digest` (a version no
    /// longer kept). Loading it again uses the disk cache or recompiles.
    pub fn forget(&self, digest: &str) {
        self.components
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(digest);
    }

    /// How many components are held compiled in memory.
    pub fn cached_components(&self) -> usize {
        self.components
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    pub fn compiled_count(&self) -> usize {
        self.counters.compiled.load(Ordering::Relaxed)
    }

    /// How many components were loaded from the disk cache.
    pub fn disk_cache_hits(&self) -> usize {
        self.counters.disk_hits.load(Ordering::Relaxed)
    }

    /// How many adapter log lines were dropped over the log limits.
    pub fn dropped_log_lines(&self) -> usize {
        self.counters.log_lines_dropped.load(Ordering::Relaxed)
    }

    /// How many disk cache entries were found corrupt or foreign and discarded.
    pub fn disk_cache_rejected(&self) -> usize {
        self.counters.disk_rejected.load(Ordering::Relaxed)
    }

    /// The on-disk cache file for a digest (exists or not).
    pub fn cache_path(&self, digest: &str) -> Option<PathBuf> {
        use std::hash::{Hash, Hasher};
        let dir = self.config.cache_dir.as_ref()?;
        // SipHash with fixed keys: stable across runs of the same build.
        #[allow(deprecated)]
        let mut h = std::hash::SipHasher::new();
        self.engine.precompile_compatibility_hash().hash(&mut h);
        Some(dir.join(format!("{digest}-{:016x}.cwasm", h.finish())))
    }

    /// Compiles (or finds in the caches), links and describes a component.
    pub fn load(&self, bytes: &[u8]) -> Result<Arc<LoadedAdapter>, LoadError> {
        let digest = hex::encode(sha2::Sha256::digest(bytes));
        let component = self.component(&digest, bytes)?;
        let inline = !self.check_imports(&component)?;
        let pre = self.linker.instantiate_pre(&component).map_err(|e| {
            let msg = format!("{e:#}");
            match backquoted(&msg) {
                Some(name) if msg.contains("import") => LoadError::ForeignImport(name),
                _ => LoadError::NotAnAdapter(msg),
            }
        })?;
        // The exports decide which contract the component speaks.
        let pre = match AdapterPre::new(pre.clone()) {
            Ok(p) => AnyAdapterPre::Current(p),
            Err(current) => {
                if let Ok(p) = v0_5::AdapterPre::new(pre.clone()) {
                    AnyAdapterPre::V0_5(p)
                } else if let Ok(p) = v0_4::AdapterPre::new(pre.clone()) {
                    AnyAdapterPre::V0_4(p)
                } else if let Ok(p) = v0_3::AdapterPre::new(pre.clone()) {
                    AnyAdapterPre::V0_3(p)
                } else if let Ok(p) = v0_2::AdapterPre::new(pre.clone()) {
                    AnyAdapterPre::V0_2(p)
                } else if let Ok(p) = v0_1::AdapterPre::new(pre) {
                    AnyAdapterPre::V0_1(p)
                } else {
                    return Err(LoadError::NotAnAdapter(format!("{current:#}")));
                }
            }
        };
        let info = self.describe(&pre)?;
        let (found, expected) = (info.contract_version.as_str(), pre.contract_version());
        if major_minor(found).is_none() || major_minor(found) != major_minor(expected) {
            return Err(LoadError::IncompatibleContract {
                found: found.into(),
                expected: expected.into(),
            });
        }
        tracing::info!(adapter = %info.name, version = %info.version, contract = %expected, %digest, "adapter loaded");
        Ok(Arc::new(LoadedAdapter {
            digest,
            info,
            pre,
            pooled_steps: AtomicU32::new(0),
            inline,
        }))
    }

    fn component(&self, digest: &str, bytes: &[u8]) -> Result<Component, LoadError> {
        if let Some(c) = self
            .components
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(digest)
        {
            return Ok(c.clone());
        }
        let path = self.cache_path(digest);
        let from_disk = path.as_deref().and_then(|p| self.read_cached(p));
        let component = match from_disk {
            Some(c) => {
                self.counters.disk_hits.fetch_add(1, Ordering::Relaxed);
                c
            }
            None => {
                let c = Component::new(&self.engine, bytes)
                    .map_err(|e| LoadError::Compile(format!("{e:#}")))?;
                self.counters.compiled.fetch_add(1, Ordering::Relaxed);
                if let Some(p) = &path
                    && let Err(e) = write_cached(&c, p)
                {
                    // The cache only saves time; an unwritable one must not stop loading.
                    tracing::warn!(path = %p.display(), error = %e, "could not write component cache");
                }
                c
            }
        };
        self.components
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(digest.to_string(), component.clone());
        Ok(component)
    }

    /// A cache entry whose bytes match its sidecar digest, deserialized; a
    /// missing, corrupt or incompatible one is discarded (`None`).
    fn read_cached(&self, path: &Path) -> Option<Component> {
        let sidecar = sidecar_path(path);
        let (Ok(bytes), Ok(expected)) = (std::fs::read(path), std::fs::read_to_string(&sidecar))
        else {
            return None;
        };
        let actual = hex::encode(sha2::Sha256::digest(&bytes));
        let result = if actual == expected.trim() {
            deserialize_verified(&self.engine, &bytes).map_err(|e| format!("{e:#}"))
        } else {
            Err("contents do not match their sha256 sidecar".to_string())
        };
        match result {
            Ok(c) => Some(c),
            Err(why) => {
                tracing::warn!(path = %path.display(), %why, "discarding component cache entry");
                self.counters.disk_rejected.fetch_add(1, Ordering::Relaxed);
                let _ = std::fs::remove_file(path);
                let _ = std::fs::remove_file(&sidecar);
                None
            }
        }
    }

    /// Refuses imports that are neither the contract's nor the WASI subset;
    /// tells whether there is any of the latter.
    fn check_imports(&self, component: &Component) -> Result<bool, LoadError> {
        let ty = component.component_type();
        let mut wasi = false;
        for (name, _) in ty.imports(&self.engine) {
            let ours = ["types", "secrets", "log"].iter().any(|i| {
                name.strip_prefix("payhost:adapter/")
                    .and_then(|r| r.strip_prefix(i))
                    .and_then(|v| v.strip_prefix('@'))
                    .is_some_and(|v| {
                        contract::SUPPORTED_VERSIONS
                            .iter()
                            .any(|s| major_minor(v).is_some() && major_minor(v) == major_minor(s))
                    })
            });
            if !ours && !wasi::provides(name) {
                return Err(LoadError::ForeignImport(name.to_string()));
            }
            wasi |= !ours;
        }
        Ok(wasi)
    }

    /// A fresh store for one step that may run `ticks` epochs and, in host
    /// calls, `budget` of wall-clock time.
    fn new_store(
        &self,
        log: LogSink,
        secrets: SecretTable,
        masker: Masker,
        call: &CallContext,
        allowance: Allowance,
    ) -> Store<StepState> {
        let stdout = MemoryOutputPipe::new(STDIO_CAPACITY);
        let stderr = MemoryOutputPipe::new(STDIO_CAPACITY);
        let state = StepState {
            secrets,
            masker,
            log,
            limits: MemoryCap {
                limit: self.config.memory_limit,
                hit: false,
                granted: 0,
            },
            deadline: StepDeadline {
                at: Instant::now() + allowance.time,
                hit: false,
                tentative: allowance.tentative,
            },
            sandbox: wasi::Sandbox::new(call.timestamp, call.seed, self.config.step_deadline),
            wasi: wasi::empty_ctx(stdout.clone(), stderr.clone()),
            table: ResourceTable::new(),
            stdout,
            stderr,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(allowance.ticks);
        store.epoch_deadline_trap();
        store
    }

    fn describe(&self, pre: &AnyAdapterPre<StepState>) -> Result<AdapterInfo, LoadError> {
        let log = LogSink::new(
            "(loading)".into(),
            String::new(),
            "describe".into(),
            Default::default(),
        );
        let ctx = CallContext {
            request_id: "describe".into(),
            timestamp: 0,
            seed: 0,
            notify_url: String::new(),
        };
        let mut store = self.new_store(
            log,
            SecretTable::new(),
            Masker::default(),
            &ctx,
            self.full_step(),
        );
        let result = match pre {
            AnyAdapterPre::Current(pre) => pre
                .instantiate(&mut store)
                .and_then(|a| a.call_describe(&mut store)),
            AnyAdapterPre::V0_5(pre) => pre
                .instantiate(&mut store)
                .and_then(|a| a.call_describe(&mut store))
                .map(Bridge::bridge),
            AnyAdapterPre::V0_4(pre) => pre
                .instantiate(&mut store)
                .and_then(|a| a.call_describe(&mut store))
                .map(Bridge::bridge),
            AnyAdapterPre::V0_3(pre) => pre
                .instantiate(&mut store)
                .and_then(|a| a.call_describe(&mut store))
                .map(Bridge::bridge),
            AnyAdapterPre::V0_2(pre) => pre
                .instantiate(&mut store)
                .and_then(|a| a.call_describe(&mut store))
                .map(Bridge::bridge),
            AnyAdapterPre::V0_1(pre) => pre
                .instantiate(&mut store)
                .and_then(|a| a.call_describe(&mut store))
                .map(Bridge::bridge),
        };
        store.data_mut().flush_stdio();
        result.map_err(|e| LoadError::Describe(Box::new(classify(e, store.data()))))
    }

    /// Runs one operation to completion (steps, requests, replays) within
    /// `operation_deadline` of wall-clock time.
    pub async fn call(
        &self,
        adapter: &LoadedAdapter,
        merchant: &MerchantConfig,
        call: CallContext,
        op: Operation,
    ) -> Result<Output, CallError> {
        self.call_counted(adapter, merchant, call, op).await.0
    }

    /// Like [`call`](Self::call), and how many requests the host began to
    /// send to the provider: with none, whatever the outcome, the provider
    /// never saw the operation (so a create that failed used nothing up).
    pub async fn call_counted(
        &self,
        adapter: &LoadedAdapter,
        merchant: &MerchantConfig,
        call: CallContext,
        op: Operation,
    ) -> (Result<Output, CallError>, usize) {
        let sent = AtomicUsize::new(0);
        let log = Arc::new(log_limits::OperationLog::default());
        let request_id = call.request_id.clone();
        let limit = self.config.operation_deadline;
        let operation = self.run_operation(adapter, merchant, call, op, &log, &sent);
        let result = tokio::time::timeout(limit, operation)
            .await
            .unwrap_or(Err(CallError::OperationDeadline { limit }));
        let (lines, bytes) = log.dropped();
        if lines > 0 {
            self.counters
                .log_lines_dropped
                .fetch_add(lines, Ordering::Relaxed);
            tracing::warn!(
                target: "payhost::adapter",
                adapter = %adapter.info.name,
                %request_id,
                dropped_lines = lines,
                dropped_bytes = bytes,
                "adapter log over its limits; lines dropped"
            );
        }
        (result, sent.load(Ordering::SeqCst))
    }

    async fn run_operation(
        &self,
        adapter: &LoadedAdapter,
        merchant: &MerchantConfig,
        call: CallContext,
        op: Operation,
        log: &Arc<log_limits::OperationLog>,
        sent: &AtomicUsize,
    ) -> Result<Output, CallError> {
        let resolved = Arc::new(merchant.validate(&adapter.info)?);
        let masker = resolved.masker();
        let call = Arc::new(call);
        let op = Arc::new(op);
        let mut exchanges: Vec<Exchange> = Vec::new();
        loop {
            let request = match self
                .step(adapter, &resolved, &masker, &call, &op, &exchanges, log)
                .await?
            {
                Step::Done(Ok(out)) => return Ok(out),
                Step::Done(Err((AdapterError::Nondeterministic(m), _))) => {
                    return Err(CallError::Nondeterministic(m));
                }
                Step::Done(Err((error, ack))) => return Err(CallError::Adapter { error, ack }),
                Step::Send(req) => req,
            };
            if exchanges.len() >= self.config.max_steps {
                return Err(CallError::StepLimit(self.config.max_steps));
            }
            let url = self.egress.check(
                &request.url,
                &adapter.info,
                resolved.url_hosts(),
                &merchant.id,
            )?;
            let identity = match request.client_identity {
                None => None,
                Some(h) => Some(resolved.secret_by_handle(h).ok_or_else(|| {
                    CallError::Adapter {
                        error: AdapterError::InvalidConfig(format!(
                            "client-identity handle {h} is not a secret of this configuration"
                        )),
                        ack: None,
                    }
                })?),
            };
            // From here on the provider may see the request, whatever
            // becomes of its answer.
            sent.fetch_add(1, Ordering::SeqCst);
            let response = {
                use secrecy::ExposeSecret;
                let pem = identity.as_ref().map(|s| s.expose_secret().as_bytes());
                self.egress
                    .perform(url, &request, pem, &masker, &merchant.id)
                    .await?
            };
            exchanges.push(Exchange { request, response });
        }
    }

    /// One step of `op` after `exchanges`, performing no request: what
    /// the offline conformance check (`payhost adapter check`) drives
    /// components with. Every bound of a real step holds.
    pub async fn step_offline(
        &self,
        adapter: &LoadedAdapter,
        merchant: &MerchantConfig,
        call: CallContext,
        op: Operation,
        exchanges: &[Exchange],
    ) -> Result<OfflineStep, CallError> {
        let resolved = Arc::new(merchant.validate(&adapter.info)?);
        let masker = resolved.masker();
        let log = Arc::new(log_limits::OperationLog::default());
        let step = self
            .step(
                adapter,
                &resolved,
                &masker,
                &Arc::new(call),
                &Arc::new(op),
                exchanges,
                &log,
            )
            .await?;
        Ok(match step {
            Step::Send(req) => OfflineStep::Send(req),
            Step::Done(r) => OfflineStep::Done(r.map_err(|(e, _)| e)),
        })
    }

    /// The linear memory, in bytes over all its memories, that one fresh
    /// instance of `adapter` holds after one step of `op` with no
    /// exchanges (`memory_limit` caps each memory). It depends on the
    /// component and the input only, not on the machine or its load.
    /// The step runs as a full step on the calling thread.
    pub fn step_linear_memory(
        &self,
        adapter: &LoadedAdapter,
        merchant: &MerchantConfig,
        call: CallContext,
        op: Operation,
    ) -> Result<u64, CallError> {
        let resolved = merchant.validate(&adapter.info)?;
        let masker = resolved.masker();
        let (entries, secrets) = resolved.entries();
        let log = step_log(adapter, &call, Arc::default());
        let mut store = self.new_store(log, secrets, masker.clone(), &call, self.full_step());
        let result = run_step(&mut store, &adapter.pre, &call, &entries, &op, &[]);
        finish(result, store.data(), &masker).and_then(checked)?;
        Ok(store.data().limits.granted as u64)
    }

    #[allow(clippy::too_many_arguments)]
    async fn step(
        &self,
        adapter: &LoadedAdapter,
        resolved: &Arc<ResolvedConfig>,
        masker: &Masker,
        call: &Arc<CallContext>,
        op: &Arc<Operation>,
        exchanges: &[Exchange],
        log: &Arc<log_limits::OperationLog>,
    ) -> Result<Step, CallError> {
        let pooled = adapter
            .pooled_steps
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok();
        if adapter.inline && !pooled {
            match self.step_inline(adapter, resolved, masker, call, op, exchanges, log) {
                Some(step) => return step.and_then(checked),
                None => adapter
                    .pooled_steps
                    .store(POOLED_AFTER_MISS, Ordering::Relaxed),
            }
        }
        let (entries, secrets) = resolved.entries();
        let log = step_log(adapter, call, log.clone());
        let mut store = self.new_store(log, secrets, masker.clone(), call, self.full_step());
        let pre = adapter.pre.clone();
        let (call, op, exchanges) = (call.clone(), op.clone(), exchanges.to_vec());
        let masker = masker.clone();
        // Guest code blocks its thread until it returns or its deadline
        // hits; keep it off the async workers.
        let task = tokio::task::spawn_blocking(move || {
            let result = run_step(&mut store, &pre, &call, &entries, &op, &exchanges);
            store.data_mut().flush_stdio();
            finish(result, store.data(), &masker)
        });
        // Epochs cannot interrupt a host call; this bound holds anyway. A
        // step abandoned here ends by its epoch once back in guest code.
        let step = match tokio::time::timeout(self.config.step_deadline + STEP_GRACE, task).await {
            Ok(joined) => {
                joined.map_err(|e| CallError::Host(format!("adapter step task failed: {e}")))??
            }
            Err(_) => return Err(CallError::Deadline),
        };
        checked(step)
    }

    /// Runs a step on the calling task within [`INLINE_BUDGET`]; `None`
    /// when it outran the budget and must run again on the blocking pool.
    #[allow(clippy::too_many_arguments)]
    fn step_inline(
        &self,
        adapter: &LoadedAdapter,
        resolved: &ResolvedConfig,
        masker: &Masker,
        call: &CallContext,
        op: &Operation,
        exchanges: &[Exchange],
        log: &log_limits::OperationLog,
    ) -> Option<Result<Step, CallError>> {
        let (entries, secrets) = resolved.entries();
        // Counted against a copy of the operation's log budget, kept only
        // if the attempt counts.
        let tentative = Arc::new(log.tentative());
        let mut sink = step_log(adapter, call, tentative.clone());
        sink.hold();
        let budget = Allowance {
            ticks: INLINE_TICKS,
            time: INLINE_BUDGET,
            tentative: true,
        };
        let mut store = self.new_store(sink, secrets, masker.clone(), call, budget);
        let result = run_step(&mut store, &adapter.pre, call, &entries, op, exchanges);
        store.data_mut().flush_stdio();
        let state = store.data();
        let interrupted = matches!(
            result.as_ref().map_err(|e| e.downcast_ref::<Trap>()),
            Err(Some(Trap::Interrupt))
        );
        // Over the memory cap is the answer however long it took.
        if (state.deadline.hit || interrupted) && !state.limits.hit {
            return None;
        }
        let step = finish(result, state, masker);
        log.adopt(&tentative);
        store.into_data().log.release();
        Some(step)
    }

    /// What a whole step may take.
    fn full_step(&self) -> Allowance {
        Allowance {
            ticks: self.deadline_ticks,
            time: self.config.step_deadline,
            tentative: false,
        }
    }
}

/// What one step may take: epochs of guest code, wall-clock time for host
/// calls, and whether it runs tentatively on the calling task.
#[derive(Debug, Clone, Copy)]
struct Allowance {
    ticks: u64,
    time: Duration,
    tentative: bool,
}

/// A step's log, for `adapter` and the request of `call`.
fn step_log(
    adapter: &LoadedAdapter,
    call: &CallContext,
    operation: Arc<log_limits::OperationLog>,
) -> LogSink {
    LogSink::new(
        adapter.info.name.clone(),
        adapter.info.version.clone(),
        call.request_id.clone(),
        operation,
    )
}

/// What a guest call's outcome means for the operation.
fn finish(
    result: wasmtime::Result<Step>,
    state: &StepState,
    masker: &Masker,
) -> Result<Step, CallError> {
    match result {
        // A step whose host calls ran past the deadline is late even if it
        // then finished.
        Ok(_) if state.deadline.hit => Err(CallError::Deadline),
        Ok(step) => Ok(step.masked(masker)),
        Err(e) => Err(classify(e, state)),
    }
}

/// A step's answer within the output limits.
fn checked(step: Step) -> Result<Step, CallError> {
    output_limits::check_step(&step)?;
    Ok(step)
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
        // A step still running (its caller gave up) must not outlive the
        // ticker: push the epoch past every deadline it could have.
        for _ in 0..=self.deadline_ticks {
            self.engine.increment_epoch();
        }
    }
}

enum Step {
    Send(HttpRequest),
    Done(Result<Output, (AdapterError, Option<HttpResponse>)>),
}

/// What one step came to ([`Runtime::step_offline`]).
#[derive(Debug, Clone, PartialEq)]
pub enum OfflineStep {
    /// The adapter asks for this request next.
    Send(HttpRequest),
    /// The operation's answer.
    Done(Result<Output, AdapterError>),
}

impl Step {
    /// Adapter-provided error text may quote provider answers that echo a
    /// secret; mask it before it reaches callers.
    fn masked(self, m: &Masker) -> Step {
        match self {
            Step::Done(Err((e, ack))) => Step::Done(Err((mask_adapter_error(e, m), ack))),
            other => other,
        }
    }
}

fn mask_adapter_error(e: AdapterError, m: &Masker) -> AdapterError {
    match e {
        AdapterError::InvalidConfig(s) => AdapterError::InvalidConfig(m.mask(&s)),
        AdapterError::InvalidRequest(s) => AdapterError::InvalidRequest(m.mask(&s)),
        AdapterError::Unsupported(s) => AdapterError::Unsupported(m.mask(&s)),
        AdapterError::ProviderRejected(mut r) => {
            r.code = m.mask(&r.code);
            r.message = m.mask(&r.message);
            AdapterError::ProviderRejected(r)
        }
        AdapterError::MalformedResponse(s) => AdapterError::MalformedResponse(m.mask(&s)),
        AdapterError::BadSignature(s) => AdapterError::BadSignature(m.mask(&s)),
        AdapterError::Nondeterministic(s) => AdapterError::Nondeterministic(m.mask(&s)),
    }
}

fn run_step(
    store: &mut Store<StepState>,
    pre: &AnyAdapterPre<StepState>,
    call: &CallContext,
    config: &[contract::ConfigEntry],
    op: &Operation,
    exchanges: &[Exchange],
) -> wasmtime::Result<Step> {
    match pre {
        AnyAdapterPre::Current(pre) => run_current(store, pre, call, config, op, exchanges),
        AnyAdapterPre::V0_5(pre) => run_v0_5(store, pre, call, config, op, exchanges),
        AnyAdapterPre::V0_4(pre) => run_v0_4(store, pre, call, config, op, exchanges),
        AnyAdapterPre::V0_3(pre) => run_v0_3(store, pre, call, config, op, exchanges),
        AnyAdapterPre::V0_2(pre) => run_v0_2(store, pre, call, config, op, exchanges),
        AnyAdapterPre::V0_1(pre) => run_v0_1(store, pre, call, config, op, exchanges),
    }
}

/// The `done` case of any of the contract's `*-step` variants.
fn done<T>(result: Result<T, AdapterError>, out: fn(T) -> Output) -> Step {
    Step::Done(result.map(out).map_err(|e| (e, None)))
}

fn run_current(
    store: &mut Store<StepState>,
    pre: &AdapterPre<StepState>,
    call: &CallContext,
    config: &[contract::ConfigEntry],
    op: &Operation,
    exchanges: &[Exchange],
) -> wasmtime::Result<Step> {
    let a = pre.instantiate(&mut *store)?;
    let s = &mut *store;
    Ok(match op {
        Operation::UnifiedOrder(r) => match a.call_unified_order(s, call, config, r, exchanges)? {
            OrderStep::Send(req) => Step::Send(req),
            OrderStep::Done(r) => done(r, Output::OrderCreated),
        },
        Operation::Query(r) => match a.call_query(s, call, config, r, exchanges)? {
            QueryStep::Send(req) => Step::Send(req),
            QueryStep::Done(r) => done(r, Output::TradeStatus),
        },
        Operation::Close(r) => match a.call_close(s, call, config, r, exchanges)? {
            CloseStep::Send(req) => Step::Send(req),
            CloseStep::Done(r) => done(r, Output::TradeStatus),
        },
        Operation::Refund(r) => match a.call_refund(s, call, config, r, exchanges)? {
            RefundStep::Send(req) => Step::Send(req),
            RefundStep::Done(r) => done(r, Output::RefundStatus),
        },
        Operation::RefundQuery(r) => match a.call_refund_query(s, call, config, r, exchanges)? {
            RefundQueryStep::Send(req) => Step::Send(req),
            RefundQueryStep::Done(r) => done(r, Output::RefundStatus),
        },
        Operation::ParseNotify(r) => match a.call_parse_notify(s, call, config, r, exchanges)? {
            NotifyStep::Send(req) => Step::Send(req),
            NotifyStep::Done(r) => Step::Done(r.map(Output::Notify).map_err(|f| (f.error, f.ack))),
        },
        Operation::Payout(r) => match a.call_payout(s, call, config, r, exchanges)? {
            PayoutStep::Send(req) => Step::Send(req),
            PayoutStep::Done(r) => done(r, Output::PayoutStatus),
        },
        Operation::PayoutQuery(r) => match a.call_payout_query(s, call, config, r, exchanges)? {
            PayoutQueryStep::Send(req) => Step::Send(req),
            PayoutQueryStep::Done(r) => done(r, Output::PayoutStatus),
        },
        Operation::ContractSign(r) => match a.call_contract_sign(s, call, config, r, exchanges)? {
            ContractSignStep::Send(req) => Step::Send(req),
            ContractSignStep::Done(r) => done(r, Output::ContractSigning),
        },
        Operation::ContractQuery(r) => {
            match a.call_contract_query(s, call, config, r, exchanges)? {
                ContractStep::Send(req) => Step::Send(req),
                ContractStep::Done(r) => done(r, Output::ContractStatus),
            }
        }
        Operation::ContractTerminate(r) => {
            match a.call_contract_terminate(s, call, config, r, exchanges)? {
                ContractStep::Send(req) => Step::Send(req),
                ContractStep::Done(r) => done(r, Output::ContractStatus),
            }
        }
        Operation::Deduct(r) => match a.call_deduct(s, call, config, r, exchanges)? {
            DeductionStep::Send(req) => Step::Send(req),
            DeductionStep::Done(r) => done(r, Output::DeductionStatus),
        },
        Operation::DeductionQuery(r) => {
            match a.call_deduction_query(s, call, config, r, exchanges)? {
                DeductionStep::Send(req) => Step::Send(req),
                DeductionStep::Done(r) => done(r, Output::DeductionStatus),
            }
        }
    })
}

/// The answer of an operation that is not in the contract `version` a
/// component was built against: `unsupported`, without instantiating it.
fn not_in_contract(op: &Operation, version: &str) -> Step {
    Step::Done(Err((
        AdapterError::Unsupported(format!(
            "`{}` is not in contract {version} that this adapter was built against",
            op.name(),
        )),
        None,
    )))
}

/// One step of a component built against an older contract (its `types`
/// module imported as `old` at the call site): inputs and answers are
/// translated. The four operations of 0.1 are here; `$more` holds the arms
/// for what the caller's contract adds, with `$a`, `$s`, the bridged
/// `$call`, `$config`, `$exchanges` and `$back` bound for them.
macro_rules! run_bridged {
    ($store:ident, $pre:ident, $op:ident, |$a:ident, $s:ident, $call:ident, $config:ident, $exchanges:ident, $back:ident| { $($more:tt)* }) => {{
        let $a = $pre.instantiate(&mut *$store)?;
        let $s = &mut *$store;
        let $call: old::CallContext = $call.clone().bridge();
        let $config: Vec<old::ConfigEntry> = $config.to_vec().bridge();
        let $exchanges: Vec<old::Exchange> = $exchanges.to_vec().bridge();
        let ($call, $config, $exchanges) = (&$call, $config.as_slice(), $exchanges.as_slice());
        let $back = |req: old::HttpRequest| Step::Send(req.bridge());
        Ok(match $op {
            Operation::UnifiedOrder(r) => {
                match $a.call_unified_order($s, $call, $config, &r.clone().bridge(), $exchanges)? {
                    old::OrderStep::Send(req) => $back(req),
                    old::OrderStep::Done(r) => done(r.bridge(), Output::OrderCreated),
                }
            }
            Operation::Query(r) => {
                match $a.call_query($s, $call, $config, &r.clone().bridge(), $exchanges)? {
                    old::QueryStep::Send(req) => $back(req),
                    old::QueryStep::Done(r) => done(r.bridge(), Output::TradeStatus),
                }
            }
            Operation::Refund(r) => {
                match $a.call_refund($s, $call, $config, &r.clone().bridge(), $exchanges)? {
                    old::RefundStep::Send(req) => $back(req),
                    old::RefundStep::Done(r) => done(r.bridge(), Output::RefundStatus),
                }
            }
            Operation::ParseNotify(r) => {
                match $a.call_parse_notify($s, $call, $config, &r.clone().bridge(), $exchanges)? {
                    old::NotifyStep::Send(req) => $back(req),
                    old::NotifyStep::Done(r) => {
                        let r: Result<NotifyOutcome, contract::NotifyFailure> = r.bridge();
                        Step::Done(r.map(Output::Notify).map_err(|f| (f.error, f.ack)))
                    }
                }
            }
            $($more)*
        })
    }};
}

/// Whether `op` came with a later contract than `version`.
fn lacks(op: &Operation, version: &str) -> bool {
    op.added_in()
        .is_some_and(|added| major_minor(added) > major_minor(version))
}

/// A component of contract `$version` (0.2 to 0.5): the operations 0.2
/// has plus `$more`, those of its own contract since; what later contracts
/// added answers `unsupported`. The names after the version bind the
/// instance, store, bridged inputs and the send step for `$more`.
macro_rules! run_since_0_2 {
    ($name:ident, $version:ident, |$a:ident, $s:ident, $call:ident, $config:ident, $exchanges:ident, $back:ident| { $($more:tt)* }) => {
        fn $name(
            store: &mut Store<StepState>,
            pre: &$version::AdapterPre<StepState>,
            $call: &CallContext,
            $config: &[contract::ConfigEntry],
            op: &Operation,
            $exchanges: &[Exchange],
        ) -> wasmtime::Result<Step> {
            use $version::payhost::adapter::types as old;
            if lacks(op, $version::CONTRACT_VERSION) {
                return Ok(not_in_contract(op, $version::CONTRACT_VERSION));
            }
            run_bridged!(store, pre, op, |$a, $s, $call, $config, $exchanges, $back| {
                Operation::Close(r) => {
                    match $a.call_close($s, $call, $config, &r.clone().bridge(), $exchanges)? {
                        old::CloseStep::Send(req) => $back(req),
                        old::CloseStep::Done(r) => done(r.bridge(), Output::TradeStatus),
                    }
                }
                Operation::RefundQuery(r) => {
                    match $a.call_refund_query($s, $call, $config, &r.clone().bridge(), $exchanges)? {
                        old::RefundQueryStep::Send(req) => $back(req),
                        old::RefundQueryStep::Done(r) => done(r.bridge(), Output::RefundStatus),
                    }
                }
                $($more)*
                _ => unreachable!("answered above"),
            })
        }
    };
}
// 0.5: payouts, not contracts.
run_since_0_2!(run_v0_5, v0_5, |a, s, call, config, exchanges, back| {
    Operation::Payout(r) => {
        match a.call_payout(s, call, config, &r.clone().bridge(), exchanges)? {
            old::PayoutStep::Send(req) => back(req),
            old::PayoutStep::Done(r) => done(r.bridge(), Output::PayoutStatus),
        }
    }
    Operation::PayoutQuery(r) => {
        match a.call_payout_query(s, call, config, &r.clone().bridge(), exchanges)? {
            old::PayoutQueryStep::Send(req) => back(req),
            old::PayoutQueryStep::Done(r) => done(r.bridge(), Output::PayoutStatus),
        }
    }
});
run_since_0_2!(run_v0_4, v0_4, |a, s, call, config, exchanges, back| {});
run_since_0_2!(run_v0_3, v0_3, |a, s, call, config, exchanges, back| {});
run_since_0_2!(run_v0_2, v0_2, |a, s, call, config, exchanges, back| {});

/// A 0.1 component: what 0.1 lacks answers `unsupported` without
/// instantiating anything.
fn run_v0_1(
    store: &mut Store<StepState>,
    pre: &v0_1::AdapterPre<StepState>,
    call: &CallContext,
    config: &[contract::ConfigEntry],
    op: &Operation,
    exchanges: &[Exchange],
) -> wasmtime::Result<Step> {
    use v0_1::payhost::adapter::types as old;
    if matches!(op, Operation::Close(_) | Operation::RefundQuery(_))
        || lacks(op, v0_1::CONTRACT_VERSION)
    {
        return Ok(not_in_contract(op, v0_1::CONTRACT_VERSION));
    }
    run_bridged!(store, pre, op, |a, s, call, config, exchanges, back| {
        _ => unreachable!("answered above"),
    })
}

/// Turns a failed guest call into the specific error: memory cap, deadline,
/// or a trap explained by the adapter's last error line.
fn classify(e: wasmtime::Error, state: &StepState) -> CallError {
    if state.limits.hit {
        return CallError::MemoryLimit;
    }
    if state.deadline.hit {
        return CallError::Deadline;
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => CallError::Deadline,
        Some(trap) => {
            let mut message = trap.to_string();
            if let Some(line) = &state.log.last_error {
                message.push_str("; last error logged: ");
                message.push_str(line);
            }
            CallError::Trap { message }
        }
        None => CallError::Host(state.masker.mask(&format!("{e:#}"))),
    }
}

/// Where a step's log lines go, and what the runtime remembers of them.
#[derive(Debug)]
pub(crate) struct LogSink {
    adapter: String,
    version: String,
    request_id: String,
    last_error: Option<String>,
    budget: log_limits::LogBudget,
    /// Lines kept back until [`release`](Self::release) (a step that may
    /// yet be abandoned), `None` when lines go out at once.
    held: Option<Vec<(Level, String)>>,
}

impl LogSink {
    fn new(
        adapter: String,
        version: String,
        request_id: String,
        operation: Arc<log_limits::OperationLog>,
    ) -> Self {
        Self {
            adapter,
            version,
            request_id,
            last_error: None,
            budget: log_limits::LogBudget::new(operation),
            held: None,
        }
    }

    /// Keeps lines back until [`release`](Self::release).
    fn hold(&mut self) {
        self.held = Some(Vec::new());
    }

    /// Sends the lines kept back to the log.
    fn release(mut self) {
        for (level, line) in self.held.take().unwrap_or_default() {
            self.emit(level, &line);
        }
    }

    /// Masks and records an adapter log line, within the log limits. A
    /// line over them is only counted: not masked, not kept.
    pub(crate) fn record(&mut self, level: Level, message: &str, masker: &Masker) {
        if !self.budget.has_room() {
            self.budget.drop_line(message.len());
            return;
        }
        // Mask before cutting, so a cut cannot leave half a secret.
        let masked = masker.mask(message);
        let line = log_limits::truncate_line(&masked);
        if !self.budget.admit(line.len()) {
            return;
        }
        if level == Level::Error {
            self.last_error = Some(line.to_string());
        }
        match &mut self.held {
            Some(held) => held.push((level, line.into_owned())),
            None => self.emit(level, &line),
        }
    }

    fn emit(&self, level: Level, message: &str) {
        let (a, v, r) = (&self.adapter, &self.version, &self.request_id);
        match level {
            Level::Trace => {
                tracing::trace!(target: "payhost::adapter", adapter = %a, version = %v, request_id = %r, "{message}")
            }
            Level::Debug => {
                tracing::debug!(target: "payhost::adapter", adapter = %a, version = %v, request_id = %r, "{message}")
            }
            Level::Info => {
                tracing::info!(target: "payhost::adapter", adapter = %a, version = %v, request_id = %r, "{message}")
            }
            Level::Warn => {
                tracing::warn!(target: "payhost::adapter", adapter = %a, version = %v, request_id = %r, "{message}")
            }
            Level::Error => {
                tracing::error!(target: "payhost::adapter", adapter = %a, version = %v, request_id = %r, "{message}")
            }
        }
    }
}

/// The real-time end of a step, which host calls (where epochs cannot
/// interrupt) check before doing work.
#[derive(Debug)]
pub(crate) struct StepDeadline {
    at: Instant,
    hit: bool,
    /// The step runs on the calling task and may be run again on the pool.
    tentative: bool,
}

impl StepDeadline {
    /// Whether a host call taking `input` bytes must be refused: past the
    /// deadline, or [too big](Self::outgrows_task) for the calling task.
    pub(crate) fn refuses(&mut self, input: usize) -> bool {
        self.outgrows_task(input) | self.passed()
    }

    /// Whether a host call taking `input` bytes is too big for a step that
    /// runs on the calling task; that step is then abandoned, and runs
    /// again on the blocking pool.
    pub(crate) fn outgrows_task(&mut self, input: usize) -> bool {
        let over = self.tentative && input > INLINE_HOST_BYTES;
        self.hit |= over;
        over
    }

    /// Whether the deadline has passed; once it has, the step's result is
    /// the deadline error whatever the guest does next.
    pub(crate) fn passed(&mut self) -> bool {
        self.hit |= Instant::now() >= self.at;
        self.hit
    }
}

/// Enforces the memory cap and remembers that it was hit, so the error is
/// `MemoryLimit` rather than whatever trap the guest's allocator raises.
/// It also adds up the linear memory the instance was granted (its
/// memories' initial sizes at instantiation, then every growth).
#[derive(Debug)]
pub(crate) struct MemoryCap {
    limit: usize,
    hit: bool,
    granted: usize,
}

impl wasmtime::ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit || maximum.is_some_and(|m| desired > m) {
            self.hit = true;
            return Ok(false);
        }
        self.granted += desired.saturating_sub(current);
        Ok(true)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.hit = true;
        Ok(())
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(maximum.is_none_or(|m| desired <= m) && desired <= 100_000)
    }
}

/// The data of one step's store: the merchant's secrets for this step,
/// limits, log, and the WASI context (empty) with its deterministic clocks
/// and randomness.
pub struct StepState {
    pub(crate) secrets: SecretTable,
    pub(crate) masker: Masker,
    pub(crate) log: LogSink,
    pub(crate) deadline: StepDeadline,
    limits: MemoryCap,
    sandbox: wasi::Sandbox,
    wasi: WasiCtx,
    table: ResourceTable,
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
}

impl StepState {
    /// Sends what a WASI adapter printed to the log (info for stdout,
    /// warn for stderr), masked and within the log limits.
    fn flush_stdio(&mut self) {
        for (level, pipe) in [(Level::Info, &self.stdout), (Level::Warn, &self.stderr)] {
            let bytes = pipe.contents();
            // Mask the whole text: a secret may span what becomes two lines.
            let text = self.masker.mask(&String::from_utf8_lossy(&bytes));
            for line in text.lines().filter(|l| !l.is_empty()) {
                self.log.record(level, line, &Masker::default());
            }
        }
    }
}

impl wasi::HasSandbox for StepState {
    fn sandbox(&mut self) -> wasi::SandboxView<'_> {
        wasi::SandboxView {
            sandbox: &mut self.sandbox,
            table: &mut self.table,
        }
    }
}

impl WasiView for StepState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// wasmtime has its own error type; keep its full chain as text.
fn wt(e: wasmtime::Error) -> anyhow::Error {
    anyhow::anyhow!("{e:#}")
}

fn sidecar_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".sha256");
    PathBuf::from(s)
}

/// Writes the compiled artifact and its digest sidecar, each atomically,
/// so concurrent writers and readers never see half a file.
fn write_cached(c: &Component, path: &Path) -> anyhow::Result<()> {
    let bytes = c.serialize().map_err(wt)?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    write_atomic(path, &bytes)?;
    write_atomic(
        &sidecar_path(path),
        hex::encode(sha2::Sha256::digest(&bytes)).as_bytes(),
    )?;
    Ok(())
}

pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(
        ".tmp-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Deserializes a compiled component from bytes already checked against
/// their sidecar digest.
#[allow(unsafe_code)]
fn deserialize_verified(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY: wasmtime requires that the bytes be an artifact produced by
    // `Component::serialize` of a compatible engine, since they contain
    // native code that is not validated again. They come from our own cache
    // directory, were written by `write_cached` (atomically, with a sha256
    // sidecar) and match that sidecar, so they are not truncated or
    // corrupted; the file name carries the engine's compatibility hash and
    // wasmtime re-checks the header's version and settings. Deserializing
    // from memory rather than with `deserialize_file` avoids a window in
    // which the file could change between the digest check and the mmap.
    unsafe { Component::deserialize(engine, bytes) }
}

fn major_minor(v: &str) -> Option<(u64, u64)> {
    let mut it = v.split('.');
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.parse().ok()?;
    Some((major, minor))
}

fn backquoted(s: &str) -> Option<String> {
    let start = s.find('`')? + 1;
    let end = start + s[start..].find('`')?;
    Some(s[start..end].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deadline(tentative: bool) -> StepDeadline {
        StepDeadline {
            at: Instant::now() + Duration::from_secs(60),
            hit: false,
            tentative,
        }
    }

    #[test]
    fn a_step_on_the_calling_task_refuses_big_host_calls_and_ends() {
        let mut d = deadline(true);
        assert!(!d.refuses(INLINE_HOST_BYTES));
        assert!(!d.passed());
        assert!(d.refuses(INLINE_HOST_BYTES + 1));
        assert!(d.passed(), "the attempt is over once a call was too big");

        let mut on_the_pool = deadline(false);
        assert!(!on_the_pool.refuses(16 << 20));
        assert!(!on_the_pool.outgrows_task(16 << 20));
        assert!(!on_the_pool.passed());
    }
}

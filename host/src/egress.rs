//! Performing the requests adapters ask for: the operator's allow-list,
//! header and URL rules, the address check, time-out, response-size cap,
//! client certificates, the operator's extra trusted roots and masked
//! logging.
//!
//! Which hosts an adapter may reach is the operator's choice: the hosts
//! it declares in `describe` count only where the operator's list for its
//! slot (`[adapters.<slot>] egress`, host and port) allows them. The hosts
//! of URL fields the operator configured for a merchant are allowed too,
//! since the operator wrote them; schema defaults are not, since the
//! adapter wrote those.

use crate::contract::{AdapterInfo, HttpMethod, HttpRequest, HttpResponse};
use crate::error::CallError;
use crate::merchant::Masker;
use crate::provider_health::{FailoverRule, Outcome, ProviderHealth};
use ipnet::{Ipv4Net, Ipv6Net};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use sha2::Digest as _;
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the operator allows adapters to reach.
#[derive(Debug, Clone)]
pub struct EgressPolicy {
    /// Hosts (any port) allowed for every adapter, declared or not.
    pub extra_allowed_hosts: Vec<String>,
    /// Per adapter slot, the hosts and ports its declared hosts may use.
    /// A slot without a list reaches none of its declared hosts.
    pub slots: BTreeMap<String, Vec<HostPort>>,
    /// Allow loopback, private, link-local and unspecified addresses
    /// (local simulators, tests). Off in production.
    pub allow_private: bool,
    /// Whole-request time-out.
    pub timeout: Duration,
    /// Largest response body accepted.
    pub max_response_bytes: usize,
    /// PEM files (one or more certificates each) trusted as roots for
    /// provider TLS in addition to the built-in web roots: a provider's
    /// private CA, or a test CA in front of a TLS simulator. They only add
    /// trust; certificate verification is never turned off.
    pub extra_root_certificates: Vec<PathBuf>,
    /// Per merchant id, the backup endpoint that replaces a failing
    /// primary ([`crate::provider_health`]).
    pub failover: BTreeMap<String, FailoverRule>,
}

impl Default for EgressPolicy {
    fn default() -> Self {
        Self {
            extra_allowed_hosts: Vec::new(),
            slots: BTreeMap::new(),
            allow_private: false,
            timeout: Duration::from_secs(10),
            max_response_bytes: 1024 * 1024,
            extra_root_certificates: Vec::new(),
            failover: BTreeMap::new(),
        }
    }
}

impl EgressPolicy {
    /// The declared hosts of `info` that the operator allows, with the
    /// ports allowed for each, in the order of the operator's list.
    pub fn effective_hosts(&self, slot: &str, declared: &[String]) -> Vec<HostPort> {
        let declared: Vec<String> = declared.iter().map(|h| normalize_host(h)).collect();
        self.slots
            .get(slot)
            .into_iter()
            .flatten()
            .filter(|hp| declared.contains(&hp.host))
            .cloned()
            .collect()
    }

    /// The first declared host that leaves the operator's list for `slot`
    /// (neither listed for it nor in `extra_allowed_hosts`). A slot the
    /// operator gave no list has nothing to leave: its declared hosts are
    /// simply unreachable.
    pub fn host_outside_list(&self, slot: &str, declared: &[String]) -> Option<String> {
        let list = self.slots.get(slot)?;
        declared.iter().map(|h| normalize_host(h)).find(|h| {
            !list.iter().any(|hp| &hp.host == h)
                && !self
                    .extra_allowed_hosts
                    .iter()
                    .any(|e| normalize_host(e) == *h)
        })
    }

    /// Whether the operator wrote a list for `slot`.
    pub fn has_list(&self, slot: &str) -> bool {
        self.slots.contains_key(slot)
    }
}

/// A host and port the operator allows (`host:443`; `host:*` for any
/// port, meant for local simulators on ephemeral ports).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostPort {
    /// Normalized as [`normalize_host`] does.
    pub host: String,
    /// `None`: any port.
    pub port: Option<u16>,
}

impl HostPort {
    pub fn new(host: &str, port: Option<u16>) -> Self {
        Self {
            host: normalize_host(host),
            port,
        }
    }

    /// Whether a request to `host` (normalized) on `port` matches.
    pub fn allows(&self, host: &str, port: u16) -> bool {
        self.host == host && self.port.is_none_or(|p| p == port)
    }
}

impl std::str::FromStr for HostPort {
    type Err = String;

    /// `host:port`, `[v6 literal]:port`, or either with `*` as the port.
    fn from_str(text: &str) -> Result<Self, String> {
        let usage = "must be `host:port` (e.g. `api.mch.weixin.qq.com:443`, `[2001:db8::1]:443`, \
                     or `127.0.0.1:*` for any port)";
        let (host, port) = text.rsplit_once(':').ok_or(usage)?;
        let bracketed = host.starts_with('[') && host.ends_with(']');
        if host.is_empty()
            || (host.contains(':') && !bracketed)
            || host
                .bytes()
                .any(|b| b.is_ascii_whitespace() || b"/@?#\\".contains(&b))
        {
            return Err(usage.into());
        }
        let port = match port {
            "*" => None,
            p => Some(
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| format!("{usage}; `{p}` is not a port"))?,
            ),
        };
        Ok(HostPort::new(host, port))
    }
}

impl std::fmt::Display for HostPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match self.port {
            Some(p) => write!(f, "{host}:{p}"),
            None => write!(f, "{host}:*"),
        }
    }
}

/// Lower case, without a trailing dot or IPv6 brackets, so that allow-list
/// entries and URL hosts compare equal.
pub fn normalize_host(host: &str) -> String {
    host.trim_end_matches('.')
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase()
}

/// Headers the host owns: framing, the target host and hop-by-hop
/// headers. An adapter setting one could smuggle a second request, reach
/// a virtual host the allow-list never saw, or talk to a proxy.
const HOST_OWNED_HEADERS: [&str; 8] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
];

/// Whether the guest may set header `name` (any case).
fn header_allowed(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    !(HOST_OWNED_HEADERS.contains(&lower.as_str()) || lower.starts_with("proxy-"))
}

/// IPv4 ranges no adapter request may reach: the IANA IPv4 Special-Purpose
/// Address Registry, multicast and the reserved 240/4 (broadcast included).
const SPECIAL_V4: [Ipv4Net; 19] = [
    Ipv4Net::new_assert(Ipv4Addr::new(0, 0, 0, 0), 8), // "this network"
    Ipv4Net::new_assert(Ipv4Addr::new(10, 0, 0, 0), 8), // private
    Ipv4Net::new_assert(Ipv4Addr::new(100, 64, 0, 0), 10), // shared (CGNAT)
    Ipv4Net::new_assert(Ipv4Addr::new(127, 0, 0, 0), 8), // loopback
    Ipv4Net::new_assert(Ipv4Addr::new(169, 254, 0, 0), 16), // link-local (cloud metadata)
    Ipv4Net::new_assert(Ipv4Addr::new(172, 16, 0, 0), 12), // private
    Ipv4Net::new_assert(Ipv4Addr::new(192, 0, 0, 0), 24), // IETF protocol assignments
    Ipv4Net::new_assert(Ipv4Addr::new(192, 0, 2, 0), 24), // TEST-NET-1
    Ipv4Net::new_assert(Ipv4Addr::new(192, 31, 196, 0), 24), // AS112-v4
    Ipv4Net::new_assert(Ipv4Addr::new(192, 52, 193, 0), 24), // AMT
    Ipv4Net::new_assert(Ipv4Addr::new(192, 88, 99, 0), 24), // 6to4 relay anycast
    Ipv4Net::new_assert(Ipv4Addr::new(192, 168, 0, 0), 16), // private
    Ipv4Net::new_assert(Ipv4Addr::new(192, 175, 48, 0), 24), // AS112 direct delegation
    Ipv4Net::new_assert(Ipv4Addr::new(198, 18, 0, 0), 15), // benchmarking
    Ipv4Net::new_assert(Ipv4Addr::new(198, 51, 100, 0), 24), // TEST-NET-2
    Ipv4Net::new_assert(Ipv4Addr::new(203, 0, 113, 0), 24), // TEST-NET-3
    Ipv4Net::new_assert(Ipv4Addr::new(224, 0, 0, 0), 4), // multicast
    Ipv4Net::new_assert(Ipv4Addr::new(240, 0, 0, 0), 4), // reserved
    Ipv4Net::new_assert(Ipv4Addr::new(255, 255, 255, 255), 32), // broadcast
];

const fn v6(s: [u16; 8], len: u8) -> Ipv6Net {
    Ipv6Net::new_assert(
        Ipv6Addr::new(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]),
        len,
    )
}

/// IPv6 ranges no adapter request may reach: the IANA IPv6 Special-Purpose
/// Address Registry (translation and tunnelling prefixes among them, since
/// they lead to IPv4 addresses that were never checked), site-local,
/// unique-local, link-local and multicast. IPv4-mapped addresses are
/// checked as their IPv4 address instead.
const SPECIAL_V6: [Ipv6Net; 16] = [
    v6([0, 0, 0, 0, 0, 0, 0, 0], 96), // IPv4-compatible (also :: and ::1)
    v6([0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96), // NAT64 well-known
    v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48), // NAT64 local use
    v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64), // discard-only
    v6([0x100, 0, 0, 1, 0, 0, 0, 0], 64), // dummy IPv6 prefix
    v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 23), // IETF protocol assignments (Teredo, ORCHID, ...)
    v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32), // documentation
    v6([0x2002, 0, 0, 0, 0, 0, 0, 0], 16), // 6to4
    v6([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20), // documentation
    v6([0x5f00, 0, 0, 0, 0, 0, 0, 0], 16), // SRv6 SIDs
    v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7), // unique local
    v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10), // link-local
    v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10), // site-local (deprecated)
    v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8), // multicast
    v6([0, 0, 0, 0, 0, 0xffff, 0, 0], 96), // IPv4-mapped (never reached: checked as IPv4)
    v6([0, 0, 0, 0, 0xffff, 0, 0, 0], 96), // IPv4-translated
];

/// True for addresses on the public internet; false for every special-
/// purpose range (loopback, private, link-local, shared, benchmarking,
/// documentation, reserved, multicast, IPv6 transition prefixes ...),
/// where a request could reach the operator's own infrastructure or an
/// address nobody checked.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !SPECIAL_V4.iter().any(|n| n.contains(&v4)),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            !SPECIAL_V6.iter().any(|n| n.contains(&v6))
        }
    }
}

/// The error the resolver returns for a name resolving to a forbidden
/// address; found again in reqwest's error chain to report a denial.
#[derive(Debug)]
struct PrivateAddress {
    host: String,
    ip: IpAddr,
}

impl std::fmt::Display for PrivateAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} resolves to non-public address {}",
            self.host, self.ip
        )
    }
}

impl std::error::Error for PrivateAddress {}

/// Resolves names itself so that the addresses reqwest connects to are the
/// ones checked (no second lookup an attacker's DNS could answer
/// differently).
struct CheckedResolver {
    allow_private: bool,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if !allow_private && let Some(bad) = addrs.iter().find(|a| !is_public(a.ip())) {
                return Err(Box::new(PrivateAddress { host, ip: bad.ip() })
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// The host's HTTP client for adapter requests.
pub struct Egress {
    policy: EgressPolicy,
    extra_hosts: Vec<String>,
    client: reqwest::Client,
    // The operator's extra roots, read once: the plain client and every
    // identity client trust the same set.
    extra_roots: Vec<reqwest::Certificate>,
    // One client per client certificate, keyed by the PEM's digest.
    identity_clients: Mutex<HashMap<[u8; 32], reqwest::Client>>,
    health: ProviderHealth,
}

impl std::fmt::Debug for Egress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Egress")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Egress {
    pub fn new(policy: EgressPolicy) -> Result<Self, CallError> {
        let extra_roots = read_roots(&policy.extra_root_certificates)?;
        let client = Self::builder(&policy, &extra_roots)
            .build()
            .map_err(|e| CallError::Host(format!("building HTTP client: {e}")))?;
        let extra_hosts = policy
            .extra_allowed_hosts
            .iter()
            .map(|h| normalize_host(h))
            .collect();
        Ok(Self {
            health: ProviderHealth::new(policy.failover.clone()),
            policy,
            extra_hosts,
            client,
            extra_roots,
            identity_clients: Mutex::new(HashMap::new()),
        })
    }

    pub fn policy(&self) -> &EgressPolicy {
        &self.policy
    }

    /// Where each merchant's requests go, and the operator's events.
    pub fn health(&self) -> &ProviderHealth {
        &self.health
    }

    fn builder(
        policy: &EgressPolicy,
        extra_roots: &[reqwest::Certificate],
    ) -> reqwest::ClientBuilder {
        let builder = extra_roots
            .iter()
            .fold(reqwest::Client::builder(), |b, root| {
                b.add_root_certificate(root.clone())
            });
        builder
            .redirect(reqwest::redirect::Policy::none())
            .timeout(policy.timeout)
            // A proxy would connect on our behalf and bypass the address check.
            .no_proxy()
            .dns_resolver(Arc::new(CheckedResolver {
                allow_private: policy.allow_private,
            }))
    }

    fn client_for(&self, identity_pem: Option<&[u8]>) -> Result<reqwest::Client, CallError> {
        let Some(pem) = identity_pem else {
            return Ok(self.client.clone());
        };
        let key: [u8; 32] = sha2::Sha256::digest(pem).into();
        let mut cache = self
            .identity_clients
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(c) = cache.get(&key) {
            return Ok(c.clone());
        }
        // Never echo reqwest's error here: it might quote the PEM.
        let identity = reqwest::Identity::from_pem(pem).map_err(|_| CallError::Adapter {
            error: crate::contract::AdapterError::InvalidConfig(
                "client-identity secret is not a PEM certificate plus private key".into(),
            ),
            ack: None,
        })?;
        let client = Self::builder(&self.policy, &self.extra_roots)
            .identity(identity)
            .build()
            .map_err(|e| {
                CallError::Host(format!("building HTTP client with client certificate: {e}"))
            })?;
        cache.insert(key, client.clone());
        Ok(client)
    }

    /// Checks the URL against the allow-lists (the adapter's declared
    /// hosts as the operator allows them for its slot, the merchant's
    /// configured URL fields and failover endpoints, the operator's extra
    /// hosts) and, for IP literals, the address ranges. Returns the parsed
    /// URL, moved to `merchant`'s backup endpoint while its primary fails.
    pub fn check(
        &self,
        url: &str,
        adapter: &AdapterInfo,
        merchant_hosts: &[HostPort],
        merchant: &str,
    ) -> Result<reqwest::Url, CallError> {
        let parsed = reqwest::Url::parse(url).map_err(|e| CallError::EgressDenied {
            host: String::new(),
            reason: format!("the adapter asked for `{url}`, which is not an absolute URL ({e})"),
        })?;
        let parsed = self.health.route(merchant, parsed);
        let failover_hosts = self.health.allowed_hosts(merchant);
        let host = parsed.host_str().map(normalize_host).unwrap_or_default();
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(CallError::EgressDenied {
                host,
                reason: format!(
                    "scheme `{}` is not allowed; adapters may only use http and https",
                    parsed.scheme()
                ),
            });
        }
        // reqwest would turn `user:pass@` into an Authorization header the
        // operator never sees in any allow-list.
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(CallError::EgressDenied {
                host,
                reason: "the URL carries userinfo (`user:password@`), which is refused; \
                         an adapter sends credentials in headers it builds"
                    .into(),
            });
        }
        let port = parsed.port_or_known_default().unwrap_or_default();
        let slot = adapter.name.as_str();
        let declared = adapter
            .egress_hosts
            .iter()
            .any(|h| normalize_host(h) == host);
        let allowed = merchant_hosts
            .iter()
            .chain(failover_hosts)
            .any(|hp| hp.allows(&host, port))
            || self.extra_hosts.contains(&host)
            || (declared
                && self
                    .policy
                    .effective_hosts(slot, &adapter.egress_hosts)
                    .iter()
                    .any(|hp| hp.allows(&host, port)));
        if !allowed {
            let target = HostPort::new(&host, Some(port));
            let reason = if declared {
                format!(
                    "adapter `{slot}` declares `{host}`, but the operator does not allow `{target}` for it; \
                     if it should be reachable, add `{target}` to `[adapters.{slot}] egress`"
                )
            } else {
                format!(
                    "`{target}` is neither a host adapter `{slot}` declares and the operator allows in \
                     `[adapters.{slot}] egress`, nor the host of a url field configured for the merchant; \
                     if every adapter should reach it, add it to `[egress] extra_allowed_hosts`"
                )
            };
            return Err(CallError::EgressDenied { reason, host });
        }
        if let Ok(ip) = host.parse::<IpAddr>()
            && !self.policy.allow_private
            && !is_public(ip)
        {
            return Err(private_denied(&host, ip));
        }
        Ok(parsed)
    }

    /// Refuses a header the host owns (see [`HOST_OWNED_HEADERS`]).
    fn check_headers(
        host: &str,
        headers: &[(String, String)],
        masker: &Masker,
    ) -> Result<(), CallError> {
        match headers.iter().find(|(n, _)| !header_allowed(n)) {
            None => Ok(()),
            Some((name, _)) => Err(CallError::EgressDenied {
                host: host.to_string(),
                reason: format!(
                    "the adapter set the `{}` header, which payhost sets itself \
                     (Host, Content-Length, Transfer-Encoding and hop-by-hop headers: Connection, \
                     Keep-Alive, Proxy-*, TE, Trailer, Upgrade); leave it out of the request",
                    masker.mask(name)
                ),
            }),
        }
    }

    /// Performs one request that already passed [`Egress::check`], and
    /// counts its outcome towards `merchant`'s provider health.
    pub async fn perform(
        &self,
        url: reqwest::Url,
        req: &HttpRequest,
        identity_pem: Option<&[u8]>,
        masker: &Masker,
        merchant: &str,
    ) -> Result<HttpResponse, CallError> {
        let target = url.clone();
        let result = self.exchange(url, req, identity_pem, masker).await;
        match &result {
            Ok(r) => self
                .health
                .record(merchant, &target, Outcome::Answered(r.status)),
            Err(CallError::Transport(e)) => {
                self.health.record(merchant, &target, Outcome::Failed(e))
            }
            // Refused by payhost itself, or an answer too large: not the
            // provider's health.
            Err(_) => {}
        }
        result
    }

    /// Asks every failed primary endpoint whose probe is due whether it
    /// answers again (`GET` of the rule's probe path, no credentials).
    pub async fn probe_failed_primaries(&self) {
        for (merchant, url) in self.health.due_probes() {
            let host = url.host_str().map(normalize_host).unwrap_or_default();
            let literal_denied = host
                .parse::<IpAddr>()
                .is_ok_and(|ip| !self.policy.allow_private && !is_public(ip));
            if literal_denied {
                self.health
                    .probed(&merchant, Outcome::Failed("private address refused"));
                continue;
            }
            match self.client.get(url).send().await {
                Ok(resp) => self
                    .health
                    .probed(&merchant, Outcome::Answered(resp.status().as_u16())),
                Err(e) => {
                    let e = self.transport_error(&host, e, &Masker::default(), false);
                    self.health
                        .probed(&merchant, Outcome::Failed(&e.to_string()));
                }
            }
        }
    }

    async fn exchange(
        &self,
        url: reqwest::Url,
        req: &HttpRequest,
        identity_pem: Option<&[u8]>,
        masker: &Masker,
    ) -> Result<HttpResponse, CallError> {
        let client = self.client_for(identity_pem)?;
        let method = match req.method {
            HttpMethod::Get => reqwest::Method::GET,
            HttpMethod::Post => reqwest::Method::POST,
            HttpMethod::Put => reqwest::Method::PUT,
            HttpMethod::Patch => reqwest::Method::PATCH,
            HttpMethod::Delete => reqwest::Method::DELETE,
        };
        let logged_url = masker.mask(url.as_str());
        let host = url.host_str().map(normalize_host).unwrap_or_default();
        Self::check_headers(&host, &req.headers, masker)?;
        let mut builder = client.request(method.clone(), url);
        for (name, value) in &req.headers {
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                CallError::Transport(format!(
                    "invalid request header name `{}`",
                    masker.mask(name)
                ))
            })?;
            let value = reqwest::header::HeaderValue::from_str(value).map_err(|_| {
                CallError::Transport(format!("invalid value for request header `{name}`"))
            })?;
            builder = builder.header(name, value);
        }
        let started = Instant::now();
        let result = async {
            let mut resp = builder.body(req.body.clone()).send().await?;
            let limit = self.policy.max_response_bytes;
            if resp.content_length().is_some_and(|n| n > limit as u64) {
                return Ok(Err(CallError::ResponseTooLarge { limit }));
            }
            let status = resp.status().as_u16();
            let headers = resp
                .headers()
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect();
            let mut body = Vec::new();
            while let Some(chunk) = resp.chunk().await? {
                if body.len() + chunk.len() > limit {
                    return Ok(Err(CallError::ResponseTooLarge { limit }));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(Ok(HttpResponse {
                status,
                headers,
                body,
            }))
        }
        .await
        .unwrap_or_else(|e: reqwest::Error| {
            Err(self.transport_error(&host, e, masker, identity_pem.is_some()))
        });
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        match &result {
            Ok(r) => {
                tracing::debug!(%method, url = %logged_url, status = r.status, bytes = r.body.len(), elapsed_ms, "adapter exchange")
            }
            Err(e) => {
                tracing::debug!(%method, url = %logged_url, error = %e, elapsed_ms, "adapter exchange failed")
            }
        }
        result
    }

    fn transport_error(
        &self,
        host: &str,
        e: reqwest::Error,
        masker: &Masker,
        with_identity: bool,
    ) -> CallError {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        while let Some(s) = source {
            if let Some(p) = s.downcast_ref::<PrivateAddress>() {
                return private_denied(&p.host, p.ip);
            }
            if with_identity && let Some(alert) = certificate_alert(s) {
                return CallError::Transport(format!(
                    "request to `{host}` failed: the provider refused the client certificate \
                     in the TLS handshake (alert {alert:?}); the merchant's configured \
                     certificate is not one the provider accepts"
                ));
            }
            source = s.source();
        }
        if e.is_timeout() {
            return CallError::Transport(format!(
                "request to `{host}` timed out after {:?}",
                self.policy.timeout
            ));
        }
        // reqwest's top-level message is terse; the chain says what failed.
        let e = e.without_url();
        let mut msg = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            msg.push_str(": ");
            msg.push_str(&s.to_string());
            source = s.source();
        }
        CallError::Transport(masker.mask(&format!("request to `{host}` failed: {msg}")))
    }
}

/// The TLS alert in `e`, when the peer sent one that refuses a client
/// certificate. rustls' error sits inside an `io::Error`, whose `source`
/// skips it, so it is looked for there.
fn certificate_alert(e: &(dyn std::error::Error + 'static)) -> Option<rustls::AlertDescription> {
    use rustls::AlertDescription as A;
    let inner = e.downcast_ref::<std::io::Error>()?.get_ref()?;
    match inner.downcast_ref::<rustls::Error>()? {
        rustls::Error::AlertReceived(
            alert @ (A::BadCertificate
            | A::UnsupportedCertificate
            | A::CertificateRevoked
            | A::CertificateExpired
            | A::CertificateUnknown
            | A::UnknownCA
            | A::CertificateRequired
            | A::AccessDenied),
        ) => Some(*alert),
        _ => None,
    }
}

/// Reads the operator's extra root certificates, each file a PEM bundle
/// of one or more certificates. An unreadable file or one without a
/// certificate is an error at start, naming the setting and the file.
fn read_roots(paths: &[PathBuf]) -> Result<Vec<reqwest::Certificate>, CallError> {
    let mut roots = Vec::new();
    for path in paths {
        let err = |why: String| {
            CallError::Host(format!(
                "`[egress] extra_root_certificates`: {}: {why}",
                path.display()
            ))
        };
        let pem = std::fs::read(path).map_err(|e| err(e.to_string()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| err(format!("not a PEM certificate bundle ({e})")))?;
        if certs.is_empty() {
            return Err(err("holds no `BEGIN CERTIFICATE` block".into()));
        }
        roots.extend(certs);
    }
    Ok(roots)
}

fn private_denied(host: &str, ip: IpAddr) -> CallError {
    CallError::EgressDenied {
        host: host.to_string(),
        reason: format!(
            "it resolves to {ip}, a loopback, private, link-local or otherwise non-public address; \
             payhost reaches such addresses only for a local provider (a simulator), when `[egress] allow_private = true`"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::Capabilities;

    fn info(slot: &str, hosts: &[&str]) -> AdapterInfo {
        AdapterInfo {
            name: slot.into(),
            version: "1.0.0".into(),
            contract_version: "0.1.0".into(),
            methods: vec![],
            currencies: vec![],
            capabilities: Capabilities {
                payment_notifications: false,
                refund_notifications: false,
                partial_refunds: false,
                query_by_merchant_order_no: false,
                close: false,
                refund_query: false,
                payouts: false,
                payout_notifications: false,
                contracts: false,
                contract_notifications: false,
                deduction_notifications: false,
            },
            egress_hosts: hosts.iter().map(|h| h.to_string()).collect(),
            field_rules: vec![],
            config_schema: vec![],
        }
    }

    fn hp(s: &str) -> HostPort {
        s.parse().unwrap()
    }

    #[test]
    fn special_purpose_ranges_are_not_public() {
        for ip in [
            // IPv4 special-purpose registry, one address per range.
            "0.1.2.3",
            "10.1.2.3",
            "100.64.0.1",
            "100.127.255.254",
            "127.0.0.1",
            "169.254.169.254",
            "172.16.5.4",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.0.170",
            "192.0.2.1",
            "192.31.196.1",
            "192.52.193.1",
            "192.88.99.1",
            "192.168.0.1",
            "192.175.48.1",
            "198.18.0.1",
            "198.19.255.254",
            "198.51.100.1",
            "203.0.113.1",
            "224.0.0.1",
            "239.255.255.255",
            "240.0.0.1",
            "255.255.255.255",
            // IPv6: IPv4-compatible, NAT64, 6to4 and the rest.
            "::",
            "::1",
            "::7f00:1",
            "::8.8.8.8",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::808:808",
            "64:ff9b:1::1",
            "100::1",
            "2001::1",
            "2001:2::1",
            "2001:10::1",
            "2001:db8::1",
            "2002:7f00:1::1",
            "2002:808:808::1",
            "3fff::1",
            "5f00::1",
            "fc00::1",
            "fd00::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "::ffff:0:a00:1",
            // IPv4-mapped addresses are checked as their IPv4 address.
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:198.18.0.1",
            "::ffff:240.0.0.1",
            "::ffff:192.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip} counted as public");
        }
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "198.17.255.255",
            "198.20.0.1",
            "192.0.1.1",
            "223.255.255.255",
            "100.128.0.1",
            "::ffff:8.8.8.8",
            "2606:4700:4700::1111",
            "2400:3200::1",
            "2001:200::1",
        ] {
            assert!(is_public(ip.parse().unwrap()), "{ip} counted as special");
        }
    }

    #[test]
    fn host_port_entries_parse_strictly() {
        assert_eq!(
            hp("API.mch.weixin.qq.com.:443"),
            HostPort::new("api.mch.weixin.qq.com", Some(443))
        );
        assert_eq!(hp("[2001:DB8::1]:8443").host, "2001:db8::1");
        assert_eq!(hp("[2001:db8::1]:8443").to_string(), "[2001:db8::1]:8443");
        assert_eq!(hp("127.0.0.1:*").port, None);
        for bad in [
            "api.mch.weixin.qq.com",
            "api.example.com:0",
            "api.example.com:https",
            ":443",
            "2001:db8::1:443",
            "user@api.example.com:443",
            "api.example.com/x:443",
        ] {
            assert!(bad.parse::<HostPort>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn declared_hosts_need_the_operators_list_for_their_slot() {
        let policy = EgressPolicy {
            extra_allowed_hosts: vec!["Ops.Example.".into()],
            slots: BTreeMap::from([(
                "wechat-v2".to_string(),
                vec![
                    hp("api.mch.weixin.qq.com:443"),
                    hp("api2.mch.weixin.qq.com:443"),
                ],
            )]),
            ..Default::default()
        };
        let e = Egress::new(policy).unwrap();
        let a = info(
            "wechat-v2",
            &["api.mch.weixin.qq.com", "apihk.mch.weixin.qq.com"],
        );
        let merchant = vec![HostPort::new("sim.example", Some(8080))];
        assert!(
            e.check("https://API.mch.weixin.qq.com/pay", &a, &merchant, "m")
                .is_ok()
        );
        // Declared and listed, but on another port.
        assert!(matches!(
            e.check("https://api.mch.weixin.qq.com:8443/pay", &a, &merchant, "m"),
            Err(CallError::EgressDenied { reason, .. }) if reason.contains("[adapters.wechat-v2] egress")
        ));
        // Declared, not listed by the operator.
        assert!(matches!(
            e.check("https://apihk.mch.weixin.qq.com/pay", &a, &merchant, "m"),
            Err(CallError::EgressDenied { host, reason }) if host == "apihk.mch.weixin.qq.com"
                && reason.contains("apihk.mch.weixin.qq.com:443")
        ));
        // Listed by the operator, not declared by this adapter.
        assert!(
            e.check("https://api2.mch.weixin.qq.com/pay", &a, &merchant, "m")
                .is_err()
        );
        // The same host declared by an adapter of another slot.
        let other = info("other", &["api.mch.weixin.qq.com"]);
        assert!(
            e.check("https://api.mch.weixin.qq.com/pay", &other, &[], "m")
                .is_err()
        );
        // The merchant's own URL field: its host and port.
        assert!(
            e.check("http://sim.example:8080/x", &a, &merchant, "m")
                .is_ok()
        );
        assert!(
            e.check("http://sim.example:8081/x", &a, &merchant, "m")
                .is_err()
        );
        // The operator's hosts for every adapter.
        assert!(e.check("https://ops.example/x", &a, &merchant, "m").is_ok());
        assert!(matches!(
            e.check("https://evil.example/", &a, &merchant, "m"),
            Err(CallError::EgressDenied { host, reason }) if host == "evil.example"
                && reason.contains("extra_allowed_hosts")
        ));
        assert!(matches!(
            e.check("ftp://sim.example:8080/", &a, &merchant, "m"),
            Err(CallError::EgressDenied { .. })
        ));
        // An IP literal still needs allow_private.
        let lit = Egress::new(EgressPolicy {
            slots: BTreeMap::from([("t".to_string(), vec![hp("127.0.0.1:*")])]),
            ..Default::default()
        })
        .unwrap();
        assert!(matches!(
            lit.check("http://127.0.0.1:1/", &info("t", &["127.0.0.1"]), &[], "m"),
            Err(CallError::EgressDenied { reason, .. }) if reason.contains("allow_private")
        ));
    }

    #[test]
    fn swaps_may_not_declare_hosts_outside_the_list() {
        let policy = EgressPolicy {
            extra_allowed_hosts: vec!["ops.example".into()],
            slots: BTreeMap::from([(
                "wechat-v2".to_string(),
                vec![hp("api.mch.weixin.qq.com:443")],
            )]),
            ..Default::default()
        };
        let declared = |h: &[&str]| h.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            policy.host_outside_list(
                "wechat-v2",
                &declared(&["API.mch.weixin.qq.com", "ops.example"])
            ),
            None
        );
        assert_eq!(
            policy
                .host_outside_list(
                    "wechat-v2",
                    &declared(&["api.mch.weixin.qq.com", "Collect.Example.Net"])
                )
                .as_deref(),
            Some("collect.example.net")
        );
        // No list: nothing is refused, and nothing declared is effective.
        assert_eq!(
            policy.host_outside_list("other", &declared(&["x.example"])),
            None
        );
        assert!(
            policy
                .effective_hosts("other", &declared(&["x.example"]))
                .is_empty()
        );
        assert_eq!(
            policy.effective_hosts(
                "wechat-v2",
                &declared(&["api.mch.weixin.qq.com", "x.example"])
            ),
            [hp("api.mch.weixin.qq.com:443")]
        );
    }

    #[test]
    fn a_failed_primary_is_routed_to_its_backup_which_the_operator_allowed() {
        let rule = FailoverRule::new(
            "https://api.mch.weixin.qq.com",
            "https://api2.mch.weixin.qq.com",
            1,
            std::time::Duration::from_secs(30),
            "/",
        )
        .unwrap();
        let e = Egress::new(EgressPolicy {
            failover: BTreeMap::from([("shop".to_string(), rule)]),
            ..EgressPolicy::default()
        })
        .unwrap();
        let a = info("wechat-v2", &["api.mch.weixin.qq.com"]);
        // Only the operator's failover hosts make either reachable here.
        let url = "https://api.mch.weixin.qq.com/pay/unifiedorder";
        assert_eq!(e.check(url, &a, &[], "shop").unwrap().as_str(), url);
        assert!(e.check(url, &a, &[], "other").is_err());
        let parsed = reqwest::Url::parse(url).unwrap();
        e.health()
            .record("shop", &parsed, Outcome::Failed("timed out"));
        assert_eq!(
            e.check(url, &a, &[], "shop").unwrap().as_str(),
            "https://api2.mch.weixin.qq.com/pay/unifiedorder"
        );
        // Another merchant of the same adapter stays on the primary (and
        // has no failover hosts of its own).
        assert!(e.check(url, &a, &[], "other").is_err());
    }

    #[test]
    fn userinfo_in_a_url_is_refused() {
        let e = Egress::new(EgressPolicy {
            extra_allowed_hosts: vec!["api.example.com".into()],
            ..Default::default()
        })
        .unwrap();
        let a = info("t", &[]);
        for url in [
            "https://user:pass@api.example.com/",
            "https://user@api.example.com/",
            "https://:pass@api.example.com/",
        ] {
            assert!(
                matches!(e.check(url, &a, &[], "m"), Err(CallError::EgressDenied { reason, .. }) if reason.contains("userinfo")),
                "{url}"
            );
        }
        assert!(e.check("https://api.example.com/", &a, &[], "m").is_ok());
    }

    #[test]
    fn host_owned_headers_are_refused_by_name() {
        let m = Masker::default();
        for name in [
            "Host",
            "content-length",
            "Transfer-Encoding",
            "Connection",
            "Keep-Alive",
            "Proxy-Authorization",
            "proxy-connection",
            "TE",
            "Trailer",
            "Upgrade",
        ] {
            let headers = vec![
                ("content-type".to_string(), "text/xml".to_string()),
                (name.to_string(), "x".to_string()),
            ];
            match Egress::check_headers("api.example.com", &headers, &m) {
                Err(CallError::EgressDenied { reason, .. }) => {
                    assert!(reason.contains(&format!("`{name}`")), "{reason}")
                }
                other => panic!("{name}: {other:?}"),
            }
        }
        let fine = vec![
            ("Content-Type".to_string(), "text/xml".to_string()),
            (
                "Authorization".to_string(),
                "WECHATPAY2-SHA256-RSA2048 ...".to_string(),
            ),
            ("Accept".to_string(), "*/*".to_string()),
            ("Wechatpay-Serial".to_string(), "1".to_string()),
        ];
        assert!(Egress::check_headers("api.example.com", &fine, &m).is_ok());
    }

    /// A TLS server signed by a fresh test CA, answering which client
    /// certificate (none or verified) the connection presented.
    async fn tls_server(
        ca: &payhost_simulators::tls::TestCa,
    ) -> (String, tokio::task::JoinHandle<()>) {
        use payhost_simulators::tls::{ClientCertificate, ServerTls, serve};
        let app =
            axum::Router::new().fallback(
                |axum::Extension(ClientCertificate(presented)): axum::Extension<
                    ClientCertificate,
                >| async move {
                    if presented {
                        "client certificate"
                    } else {
                        "anonymous"
                    }
                },
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "https://127.0.0.1:{}/",
            listener.local_addr().unwrap().port()
        );
        let (_, task) = serve(listener, app, &ServerTls::signed_by(ca).unwrap()).unwrap();
        (url, task)
    }

    fn get(url: &str, identity: bool) -> HttpRequest {
        HttpRequest {
            method: HttpMethod::Get,
            url: url.into(),
            headers: vec![],
            body: vec![],
            client_identity: identity.then_some(1),
        }
    }

    #[tokio::test]
    async fn extra_root_certificates_are_trusted_by_plain_and_identity_clients() {
        let ca = payhost_simulators::tls::TestCa::new("egress test CA").unwrap();
        let (url, _server) = tls_server(&ca).await;
        let dir = std::env::temp_dir().join(format!("payhost-egress-roots-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let roots = dir.join("ca.pem");
        std::fs::write(&roots, ca.cert_pem()).unwrap();
        let policy = |extra: Vec<PathBuf>| EgressPolicy {
            allow_private: true,
            extra_root_certificates: extra,
            ..Default::default()
        };
        let m = Masker::default();
        let parsed = reqwest::Url::parse(&url).unwrap();

        // Without the root, the server's certificate does not verify.
        let plain = Egress::new(policy(vec![])).unwrap();
        assert!(matches!(
            plain
                .perform(parsed.clone(), &get(&url, false), None, &m, "m")
                .await,
            Err(CallError::Transport(_))
        ));

        let trusting = Egress::new(policy(vec![roots.clone()])).unwrap();
        let r = trusting
            .perform(parsed.clone(), &get(&url, false), None, &m, "m")
            .await
            .unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"anonymous"[..]));
        // The identity client trusts the same roots and presents the key.
        let pem = ca.client_identity("10000100").unwrap().to_pem();
        let r = trusting
            .perform(
                parsed.clone(),
                &get(&url, true),
                Some(pem.as_bytes()),
                &m,
                "m",
            )
            .await
            .unwrap();
        assert_eq!(r.body, b"client certificate");
        // One the server's CA did not sign is refused, and said so.
        let foreign = payhost_simulators::tls::TestCa::new("another CA")
            .unwrap()
            .client_identity("10000100")
            .unwrap()
            .to_pem();
        match trusting
            .perform(parsed, &get(&url, true), Some(foreign.as_bytes()), &m, "m")
            .await
        {
            Err(CallError::Transport(msg)) => {
                assert!(msg.contains("refused the client certificate"), "{msg}")
            }
            other => panic!("{other:?}"),
        }

        // A file that is missing or holds no certificate stops the start,
        // naming the setting and the file.
        for bad in [dir.join("absent.pem"), {
            let p = dir.join("empty.pem");
            std::fs::write(&p, "not a certificate").unwrap();
            p
        }] {
            match Egress::new(policy(vec![bad.clone()])) {
                Err(CallError::Host(msg)) => assert!(
                    msg.contains("extra_root_certificates")
                        && msg.contains(&bad.display().to_string()),
                    "{msg}"
                ),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

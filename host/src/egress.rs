//! Performing the requests adapters ask for: allow-list, address check,
//! time-out, response-size cap, client certificates and masked logging.

use crate::contract::{HttpMethod, HttpRequest, HttpResponse};
use crate::error::CallError;
use crate::merchant::Masker;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use sha2::Digest as _;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the operator allows adapters to reach.
#[derive(Debug, Clone)]
pub struct EgressPolicy {
    /// Hosts allowed for every adapter in addition to their own lists.
    pub extra_allowed_hosts: Vec<String>,
    /// Allow loopback, private, link-local and unspecified addresses
    /// (local simulators, tests). Off in production.
    pub allow_private: bool,
    /// Whole-request time-out.
    pub timeout: Duration,
    /// Largest response body accepted.
    pub max_response_bytes: usize,
}

impl Default for EgressPolicy {
    fn default() -> Self {
        Self {
            extra_allowed_hosts: Vec::new(),
            allow_private: false,
            timeout: Duration::from_secs(10),
            max_response_bytes: 1024 * 1024,
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

/// True for addresses on the public internet; false for loopback,
/// private, link-local, unspecified, shared (CGNAT), broadcast and
/// multicast ranges, where a request could reach the operator's own
/// infrastructure.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let seg0 = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (seg0 & 0xfe00) == 0xfc00
                || (seg0 & 0xffc0) == 0xfe80)
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
    // One client per client certificate, keyed by the PEM's digest.
    identity_clients: Mutex<HashMap<[u8; 32], reqwest::Client>>,
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
        let client = Self::builder(&policy)
            .build()
            .map_err(|e| CallError::Host(format!("building HTTP client: {e}")))?;
        let extra_hosts = policy
            .extra_allowed_hosts
            .iter()
            .map(|h| normalize_host(h))
            .collect();
        Ok(Self {
            policy,
            extra_hosts,
            client,
            identity_clients: Mutex::new(HashMap::new()),
        })
    }

    pub fn policy(&self) -> &EgressPolicy {
        &self.policy
    }

    fn builder(policy: &EgressPolicy) -> reqwest::ClientBuilder {
        reqwest::Client::builder()
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
        let client = Self::builder(&self.policy)
            .identity(identity)
            .build()
            .map_err(|e| {
                CallError::Host(format!("building HTTP client with client certificate: {e}"))
            })?;
        cache.insert(key, client.clone());
        Ok(client)
    }

    /// Checks the URL against the allow-lists (adapter, merchant URL
    /// fields, operator) and, for IP literals, the address ranges.
    /// Returns the parsed URL.
    pub fn check(
        &self,
        url: &str,
        adapter_hosts: &[String],
        merchant_hosts: &[String],
    ) -> Result<reqwest::Url, CallError> {
        let parsed = reqwest::Url::parse(url).map_err(|e| CallError::EgressDenied {
            host: String::new(),
            reason: format!("the adapter asked for `{url}`, which is not an absolute URL ({e})"),
        })?;
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
        let listed = adapter_hosts.iter().any(|h| normalize_host(h) == host)
            || merchant_hosts.contains(&host)
            || self.extra_hosts.contains(&host);
        if !listed {
            return Err(CallError::EgressDenied {
                reason: format!(
                    "`{host}` is not in the adapter's egress-hosts nor the host of one of the merchant's url fields; \
                     if it should be reachable, add it to the operator's extra_allowed_hosts"
                ),
                host,
            });
        }
        if let Ok(ip) = host.parse::<IpAddr>()
            && !self.policy.allow_private
            && !is_public(ip)
        {
            return Err(private_denied(&host, ip));
        }
        Ok(parsed)
    }

    /// Performs one request that already passed [`Egress::check`].
    pub async fn perform(
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
        .unwrap_or_else(|e: reqwest::Error| Err(self.transport_error(&host, e, masker)));
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

    fn transport_error(&self, host: &str, e: reqwest::Error, masker: &Masker) -> CallError {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        while let Some(s) = source {
            if let Some(p) = s.downcast_ref::<PrivateAddress>() {
                return private_denied(&p.host, p.ip);
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

fn private_denied(host: &str, ip: IpAddr) -> CallError {
    CallError::EgressDenied {
        host: host.to_string(),
        reason: format!(
            "it resolves to {ip}, a loopback, private, link-local or otherwise non-public address; \
             allow it only for local providers by setting the egress policy's allow_private (--allow-private)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_ranges() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "172.16.5.4",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn allow_lists() {
        let e = Egress::new(EgressPolicy {
            extra_allowed_hosts: vec!["Ops.Example.".into()],
            ..Default::default()
        })
        .unwrap();
        let adapter = vec!["api.mch.weixin.qq.com".to_string()];
        let merchant = vec!["sim.example".to_string()];
        assert!(
            e.check("https://API.mch.weixin.qq.com/pay", &adapter, &merchant)
                .is_ok()
        );
        assert!(
            e.check("http://sim.example:8080/x", &adapter, &merchant)
                .is_ok()
        );
        assert!(
            e.check("https://ops.example/x", &adapter, &merchant)
                .is_ok()
        );
        assert!(
            matches!(e.check("https://evil.example/", &adapter, &merchant), Err(CallError::EgressDenied { host, .. }) if host == "evil.example")
        );
        assert!(matches!(
            e.check("ftp://sim.example/", &adapter, &merchant),
            Err(CallError::EgressDenied { .. })
        ));
        let lit = vec!["127.0.0.1".to_string()];
        assert!(
            matches!(e.check("http://127.0.0.1:1/", &lit, &[]), Err(CallError::EgressDenied { reason, .. }) if reason.contains("allow_private"))
        );
    }
}

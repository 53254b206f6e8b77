//! The operator's summary of a [`Config`], as `payhost config check`
//! prints it: secrets appear only as "set".

use super::Config;
use std::fmt;

impl fmt::Display for Config {
    /// A summary for operators; secrets appear only as "set".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = |b: bool| if b { "set" } else { "not set" };
        writeln!(
            f,
            "server:     bind {}, public base URL {}, admin token {}",
            self.server.bind,
            self.server.public_base_url,
            set(self.server.admin_token.is_some())
        )?;
        writeln!(f, "store:      {}", self.store)?;
        writeln!(
            f,
            "runtime:    adapters in {} ({}watched, {} previous versions kept), {} MiB, {} ms per step, {} steps, {} instances",
            self.runtime.adapters_dir.display(),
            if self.runtime.watch { "" } else { "not " },
            self.runtime.keep_versions,
            self.runtime.memory_limit_mib,
            self.runtime.step_deadline_ms,
            self.runtime.max_steps,
            self.runtime.max_instances
        )?;
        writeln!(
            f,
            "egress:     private addresses {}, extra hosts [{}], {} ms, {} KiB",
            if self.egress.allow_private {
                "allowed"
            } else {
                "refused"
            },
            self.egress.extra_allowed_hosts.join(", "),
            self.egress.timeout_ms,
            self.egress.max_response_kib
        )?;
        if !self.egress.extra_root_certificates.is_empty() {
            writeln!(
                f,
                "egress:     extra trusted roots from [{}]",
                self.egress
                    .extra_root_certificates
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )?;
        }
        for (slot, a) in &self.adapters {
            writeln!(
                f,
                "adapter {slot}: egress allowed to [{}]",
                a.egress
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )?;
        }
        writeln!(
            f,
            "webhooks:   {} attempts, back-off {} ms to {} ms, {} ms time-out, {} merchants at once",
            self.webhooks.max_attempts,
            self.webhooks.initial_backoff_ms,
            self.webhooks.max_backoff_ms,
            self.webhooks.timeout_ms,
            self.webhooks.max_concurrent
        )?;
        let n = &self.notify;
        writeln!(
            f,
            "notify:     bodies up to {} bytes within {} ms, {}/min and {} at once per merchant; \
             unverified kept as {} body + {} header bytes",
            n.max_body_bytes,
            n.body_timeout_ms,
            n.per_merchant_per_min,
            n.per_merchant_concurrent,
            n.unverified_body_bytes,
            n.unverified_headers_bytes
        )?;
        let r = &self.retention;
        writeln!(
            f,
            "retention:  every {} ms: idempotency {} s, unverified notifications {} s, \
             delivered events {} s",
            r.interval_ms,
            r.idempotency_secs,
            r.unverified_notifications_secs,
            r.delivered_events_secs
        )?;
        writeln!(
            f,
            "reconciler: every {} ms, notifications overdue after {} s",
            self.reconciler.interval_ms, self.reconciler.notify_overdue_secs
        )?;
        writeln!(
            f,
            "log:        {} lines to standard error",
            match self.log.format {
                crate::logging::LogFormat::Text => "text",
                crate::logging::LogFormat::Json => "JSON",
            }
        )?;
        writeln!(f, "merchants:  {}", self.merchants.len())?;
        for m in &self.merchants {
            let a = &m.limits.amounts;
            let r = &m.limits.rates;
            writeln!(
                f,
                "  {}: adapter {}, {} ({}), refunds in {}, {} API key(s)",
                m.id,
                m.adapter,
                m.currency,
                m.industry,
                m.refund_currency,
                m.api_keys.len()
            )?;
            writeln!(
                f,
                "    limits: {} per payment, {} per payer per day (minor units); \
                 {}/{}/{} create/query/refund per minute",
                a.per_payment_minor,
                a.per_payer_day_minor,
                r.create_per_min,
                r.query_per_min,
                r.refund_per_min
            )?;
            writeln!(
                f,
                "    webhooks: {} (secret {}); notify URL {}",
                m.callback_url.as_deref().unwrap_or("none"),
                set(m.webhook_secret.is_some()),
                self.server.notify_url(&m.adapter, &m.id)
            )?;
            writeln!(
                f,
                "    adapter config: {}",
                m.config.keys().cloned().collect::<Vec<_>>().join(", ")
            )?;
            if let Some(pin) = &m.pin {
                writeln!(f, "    pinned to adapter version {pin}")?;
            }
        }
        Ok(())
    }
}

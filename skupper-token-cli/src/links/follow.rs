//! Following the store: the poller re-reads the site record and the links,
//! starts and stops dialers, renews and reconciles the records of incoming
//! links, and closes the incoming links a revocation cuts off (with a
//! signed notice). Everything here calls the store, so it runs on tokio's
//! blocking pool.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use skupper_token::keys::{KeyBackend, P256Signing};
use skupper_token::link::LinkRecord;
use skupper_token::pki::{AuthError, PeerVerifier, PkiError, PrivateKey};
use skupper_token::protocol::notice::{OwedNotice, RevokeNotice, SignedNotice};
use skupper_token::protocol::printable::printable;
use skupper_token::site::{IncomingLink, PeerHello, SiteRecord};
use time::OffsetDateTime;
use tokio::sync::mpsc;

use super::dialer::{self, DialerShared, StopWhy};
use super::{blocking, lock, DialerHandle, Incoming, Inner, LinkEvent, ListenerKind};
use crate::runtime::driver::Command;

/// A CA this runtime has seen, kept to sign revocation notices to the
/// sites it certified after it has been replaced.
struct KnownCa {
    cert_pem: String,
    verifier: PeerVerifier,
    /// The CA's key, loaded through the site's key backend (or why it
    /// cannot sign).
    signer: Result<Arc<dyn P256Signing>, PkiError>,
}

/// What the runtime remembers of the site between reloads.
#[derive(Default)]
pub(crate) struct Known {
    record: Option<SiteRecord>,
    cas: BTreeMap<u32, KnownCa>,
    last_sweep: Option<Instant>,
}

impl Known {
    fn remember(&mut self, record: &SiteRecord, backend: &dyn KeyBackend) {
        let Some(ca) = &record.ca else { return };
        if self
            .cas
            .get(&record.ca_generation)
            .is_some_and(|k| k.cert_pem == ca.cert_pem)
        {
            return;
        }
        if let (Ok(verifier), Ok(key)) = (
            PeerVerifier::from_pem(&ca.cert_pem),
            PrivateKey::from_pem(&ca.key_pem),
        ) {
            self.cas.insert(
                record.ca_generation,
                KnownCa {
                    cert_pem: ca.cert_pem.clone(),
                    verifier,
                    signer: backend.p256_signer(&key),
                },
            );
        }
    }

    /// The generation of the known CA that issued `chain`'s leaf.
    fn generation_of(&self, chain: &[&[u8]], now: OffsetDateTime) -> Option<u32> {
        self.cas
            .iter()
            .rev()
            .find(|(_, ca)| ca.verifier.verify(chain, now).is_ok())
            .map(|(g, _)| *g)
    }
}

/// The poller: a reload at once, then every [`super::RuntimeOptions::poll`]
/// until the runtime stops.
pub(crate) async fn poll(inner: Arc<Inner>) {
    loop {
        let reloading = inner.clone();
        blocking(move || reloading.reload()).await;
        tokio::select! {
            () = tokio::time::sleep(inner.options.poll) => {}
            () = inner.stopped() => return,
        }
    }
}

/// Why a hello was not accepted.
pub(crate) enum NotAccepted {
    /// The runtime is stopping.
    Stopping,
    /// The core refused the certificate for this hello.
    Refused(AuthError),
}

impl Inner {
    /// Re-reads the site record and the links, and acts on changes.
    pub(crate) fn reload(self: &Arc<Self>) {
        let _one_at_a_time = lock(&self.reload_lock);
        if self.stopping() {
            return;
        }
        let now = OffsetDateTime::now_utc();
        match self.site.record() {
            Ok(record) => self.record_read(record, now),
            Err(e) => self.error("reading the site record", e),
        }
        match self.site.links() {
            Ok(links) => self.sync_dialers(&links),
            Err(e) => self.error("reading the links", e),
        }
        // Writes only when a lease is due (every third of it).
        if let Err(e) = self.site.renew_incoming(now) {
            self.error("renewing the records of the incoming links", e);
        }
        lock(&self.retired).retain(|t| !t.is_finished());
    }

    fn record_read(self: &Arc<Self>, record: SiteRecord, now: OffsetDateTime) {
        let (changed, new_ca, sweep_due) = {
            let mut known = lock(&self.known);
            let previous = known.record.replace(record.clone());
            known.remember(&record, &*self.site.key_backend());
            let changed = previous.as_ref() != Some(&record);
            let new_ca = previous
                .as_ref()
                .is_some_and(|p| p.ca_generation != record.ca_generation);
            // Certificates also stop authenticating by expiring.
            let sweep_due = known
                .last_sweep
                .is_none_or(|t| t.elapsed() >= Duration::from_secs(30));
            (changed, new_ca, sweep_due)
        };
        if new_ca {
            self.event(LinkEvent::CaChanged {
                ca_generation: record.ca_generation,
            });
        }
        if changed || sweep_due {
            lock(&self.known).last_sweep = Some(Instant::now());
            self.sweep(&record, now);
            // Records this runtime does not hold (left by a crashed run) or
            // whose lease ran out.
            if let Err(e) = self.site.reconcile_incoming(now) {
                self.error("clearing stale records of incoming links", e);
            }
        }
        // Forget old CA keys no live connection needs any more.
        let in_use: Vec<u32> = lock(&self.incoming)
            .values()
            .filter_map(|i| i.ca_generation)
            .collect();
        lock(&self.known)
            .cas
            .retain(|g, _| *g == record.ca_generation || in_use.contains(g));
    }

    /// Closes every incoming link whose certificate no longer
    /// authenticates, telling the peer why in a signed notice when it was
    /// revoked.
    fn sweep(&self, record: &SiteRecord, now: OffsetDateTime) {
        let live: Vec<(u64, Vec<Vec<u8>>)> = lock(&self.incoming)
            .iter()
            .map(|(id, i)| (*id, i.chain.clone()))
            .collect();
        for (id, chain) in live {
            let refs: Vec<&[u8]> = chain.iter().map(Vec::as_slice).collect();
            let Err(refusal) = self.site.authenticate_peer(&refs, now) else {
                continue;
            };
            let Some(entry) = self.remove_incoming(id) else {
                continue;
            };
            match self.revoke_notice(&entry, record, now) {
                Some(Ok((notice, signed))) => {
                    // Logged first, so the line is there when the peer
                    // has the notice.
                    self.event(LinkEvent::RevocationSent {
                        peer_site_id: entry.peer_site_id.clone(),
                        peer_site_name: entry.peer_site_name.clone(),
                        link: entry.link.clone(),
                        what: notice.what(),
                    });
                    let _ = entry.commands.try_send(Command::RevokeNotice {
                        payload: signed.payload,
                        signature: signed.signature,
                    });
                }
                other => {
                    let reason = match other {
                        Some(Err(why)) => format!("{refusal} (no notice sent: {why})"),
                        _ => refusal.to_string(),
                    };
                    self.event(LinkEvent::IncomingRevoked {
                        peer_site_id: entry.peer_site_id.clone(),
                        peer_site_name: entry.peer_site_name.clone(),
                        link: entry.link.clone(),
                        reason,
                    });
                    let _ = entry.commands.try_send(Command::Close {
                        reason: refusal.to_string(),
                    });
                }
            }
        }
    }

    /// The signed notice for a link that no longer authenticates: `None`
    /// when it was not revoked (it expired, say).
    fn revoke_notice(
        &self,
        entry: &Incoming,
        record: &SiteRecord,
        now: OffsetDateTime,
    ) -> Option<Result<(RevokeNotice, SignedNotice), String>> {
        let OwedNotice {
            notice,
            signer_generation: generation,
        } = RevokeNotice::for_peer(
            record,
            &entry.certificate.serial_hex,
            entry.ca_generation,
            now,
        )?;
        let known = lock(&self.known);
        let Some(ca) = known.cas.get(&generation) else {
            return Some(Err(
                "this process does not hold the key of the CA that issued it".into(),
            ));
        };
        let signer = match &ca.signer {
            Ok(signer) => signer,
            Err(e) => {
                return Some(Err(format!(
                    "the key of the CA that issued it cannot sign: {e}"
                )))
            }
        };
        Some(
            notice
                .sign(&**signer)
                .map(|s| (notice, s))
                .map_err(|e| e.to_string()),
        )
    }

    /// Removes an incoming link; tells the site it is gone unless another
    /// connection carries the same link.
    pub(crate) fn remove_incoming(&self, id: u64) -> Option<Incoming> {
        let _records = lock(&self.record_lock);
        let (entry, last) = {
            let mut incoming = lock(&self.incoming);
            let entry = incoming.remove(&id)?;
            let last = !incoming.values().any(|o| o.same_link(&entry));
            (entry, last)
        };
        if last {
            if let Err(e) = self.site.drop_incoming(&entry.peer_site_id, &entry.link) {
                self.error(
                    format!(
                        "removing the record of incoming link {} from site {}",
                        printable(&entry.link),
                        printable(&entry.peer_site_name)
                    ),
                    e,
                );
            }
        }
        Some(entry)
    }

    /// The CA generation that issued `chain`, reading the site again if
    /// the runtime has not seen that CA yet.
    fn ca_generation_of(&self, chain: &[&[u8]], now: OffsetDateTime) -> Option<u32> {
        if let Some(g) = lock(&self.known).generation_of(chain, now) {
            return Some(g);
        }
        let record = self.site.record().ok()?;
        let backend = self.site.key_backend();
        let mut known = lock(&self.known);
        known.remember(&record, &*backend);
        known.generation_of(chain, now)
    }

    /// Records the incoming link of connection `id` ([`Site::accept_incoming`]
    /// checks the certificate against the hello) and returns it with the
    /// drivers of older connections that carried the same link (to be
    /// replaced).
    ///
    /// [`Site::accept_incoming`]: skupper_token::site::Site::accept_incoming
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn accept_link(
        &self,
        id: u64,
        listener: ListenerKind,
        remote: SocketAddr,
        chain: Vec<Vec<u8>>,
        hello: &PeerHello,
        commands: mpsc::Sender<Command>,
        last_rtt: Arc<Mutex<Option<Duration>>>,
        now: OffsetDateTime,
    ) -> Result<(IncomingLink, Vec<mpsc::Sender<Command>>), NotAccepted> {
        let refs: Vec<&[u8]> = chain.iter().map(Vec::as_slice).collect();
        let ca_generation = self.ca_generation_of(&refs, now);
        let _records = lock(&self.record_lock);
        if self.stopping() {
            return Err(NotAccepted::Stopping);
        }
        let link = self
            .site
            .accept_incoming(&refs, hello, now)
            .map_err(NotAccepted::Refused)?;
        let entry = Incoming {
            commands,
            remote,
            listener,
            peer_site_id: hello.site_id.clone(),
            peer_site_name: hello.site_name.clone(),
            link: hello.link.clone(),
            certificate: link.certificate.clone(),
            chain,
            ca_generation,
            since: now,
            last_rtt,
        };
        let mut incoming = lock(&self.incoming);
        let older = incoming
            .values()
            .filter(|o| o.same_link(&entry))
            .map(|o| o.commands.clone())
            .collect();
        incoming.insert(id, entry);
        Ok((link, older))
    }

    fn sync_dialers(self: &Arc<Self>, links: &[LinkRecord]) {
        let wanted: BTreeMap<&str, &LinkRecord> = links
            .iter()
            .filter(|l| l.credentials().is_some())
            .map(|l| (l.name.as_str(), l))
            .collect();
        let mut dialers = lock(&self.dialers);
        let stale: Vec<(String, StopWhy)> = dialers
            .iter()
            .filter_map(|(name, d)| match wanted.get(name.as_str()) {
                None => Some((name.clone(), StopWhy::Deleted)),
                Some(l) if !d.held.is_of(l) => Some((name.clone(), StopWhy::Replaced)),
                Some(_) => None,
            })
            .collect();
        for (name, why) in stale {
            if let Some(d) = dialers.remove(&name) {
                d.shared.stop(why);
                lock(&self.retired).push(d.task);
                self.event(LinkEvent::DialerStopped {
                    link: name,
                    reason: why.to_string(),
                });
            }
        }
        if self.stopping() {
            return;
        }
        for (name, link) in wanted {
            if dialers.contains_key(name) {
                continue;
            }
            let Some(held) = link.dial_instance() else {
                continue;
            };
            let shared = Arc::new(DialerShared::new(link));
            let task = self
                .handle
                .spawn(dialer::run(self.clone(), shared.clone(), link.clone()));
            self.event(LinkEvent::DialerStarted {
                link: name.to_owned(),
                target: link.target().to_owned(),
            });
            dialers.insert(name.to_owned(), DialerHandle { shared, held, task });
        }
    }
}

//! The connections of a [`Network`]: both ends of each link's
//! [`Connection`], the pipe between them, the redial schedule, and the
//! time-ordered run loop.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use time::{Duration, OffsetDateTime};

use super::{HarnessError, MemorySite, Network};
use crate::keys::P256Signing;
use crate::link::LinkInstance;
use crate::link_ops::{Dial, GrantRedeem, LinkAction, LinkClosed, NoticeRejected, Redemption};
use crate::pki::{pem_to_der, PeerCertificate, PrivateKey};
use crate::protocol::{
    Backoff, Connection, Event, LocalSite, Redial, RevokeNotice, SignedNotice, Timing,
};
use crate::site::{LinkError, PeerHello, SiteMode};
use crate::token::CertToken;
use crate::transport::TransportError;
use crate::v2::grant_redeem::{http_answer, GrantRedemption};

/// What became of a ping sent with [`Network::ping`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PingOutcome {
    /// The answer came back after `rtt` (zero: the pipes have no latency).
    Pong {
        /// The round trip.
        rtt: Duration,
    },
    /// No answer within the dead-peer time, or the connection ended.
    Lost,
}

/// One outgoing link as the network drives it.
struct Outgoing {
    /// When it may dial (or redeem) again.
    redial: Redial,
    /// Its live connection.
    pipe: Option<u64>,
    /// The link instance its schedule is for (`None` before a claim is
    /// redeemed): a link replaced under the same name (new credentials, or
    /// deleted and made again) starts a schedule of its own, as a new
    /// dialer does in the runtime.
    held: Option<LinkInstance>,
}

/// A listener's view of a hello it accepted.
struct Accepted {
    hello: PeerHello,
    certificate: PeerCertificate,
    /// The CA generation that issued the dialer's certificate.
    generation: u32,
    /// That CA's key, to sign a revocation notice with after the CA is
    /// replaced.
    signer: Option<Arc<dyn P256Signing>>,
}

/// Both ends of one link connection, and the pipe between them.
struct Pipe {
    dialer_site: String,
    listener_site: String,
    dial: Dial,
    /// The remote site's name, once it accepted the link.
    remote_site_name: Option<String>,
    dialer: Connection,
    listener: Connection,
    /// The dialer's certificate (DER), as TLS hands it to the listener.
    chain: Vec<u8>,
    accepted: Option<Accepted>,
    /// Whether each end's close has reached (or was lost on the way to)
    /// the other.
    dialer_eof_sent: bool,
    listener_eof_sent: bool,
}

/// The connection state of a [`Network`].
pub(super) struct World {
    pub(super) timing: Timing,
    backoff: Backoff,
    outgoing: BTreeMap<(String, String), Outgoing>,
    pipes: BTreeMap<u64, Pipe>,
    next_pipe: u64,
    pings: BTreeMap<(String, String, u64), PingOutcome>,
    pub(super) log: Vec<String>,
}

fn ignore_gone(r: Result<crate::link::LinkRecord, LinkError>) -> Result<(), LinkError> {
    revoked_now(r).map(|_| ())
}

/// Whether the link a report landed on is revoked now; a link that is
/// gone or was replaced is not.
fn revoked_now(r: Result<crate::link::LinkRecord, LinkError>) -> Result<bool, LinkError> {
    match r {
        Ok(link) => Ok(link.state().is_revoked()),
        Err(LinkError::NoSuchLink { .. } | LinkError::LinkReplaced { .. }) => Ok(false),
        Err(LinkError::Transition(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

impl World {
    pub(super) fn new(timing: Timing, backoff: Backoff) -> World {
        World {
            timing,
            backoff,
            outgoing: BTreeMap::new(),
            pipes: BTreeMap::new(),
            next_pipe: 1,
            pings: BTreeMap::new(),
            log: Vec::new(),
        }
    }

    fn log(&mut self, net: &Network, who: &str, what: impl std::fmt::Display) {
        let t = net.elapsed();
        self.log.push(format!(
            "+{}.{:03}s {who}: {what}",
            t.whole_seconds(),
            t.subsec_milliseconds()
        ));
    }

    // -- the run loop ---------------------------------------------------------

    pub(super) fn run_until(
        &mut self,
        net: &Network,
        end: OffsetDateTime,
    ) -> Result<(), HarnessError> {
        for (name, _) in net.sites() {
            self.sweep(net, &name)?;
        }
        self.process(net)?;
        self.pump_all(net)?;
        loop {
            let next = self.next_timer();
            let Some(at) = next.filter(|t| *t <= end) else {
                break;
            };
            net.set_now(at);
            let now = net.now();
            for pipe in self.pipes.values_mut() {
                if pipe.dialer.poll_timeout().is_some_and(|t| t <= now) {
                    pipe.dialer.handle_timeout(now);
                }
                if pipe.listener.poll_timeout().is_some_and(|t| t <= now) {
                    pipe.listener.handle_timeout(now);
                }
            }
            self.pump_all(net)?;
            if self.dial_due(now) {
                self.process(net)?;
                self.pump_all(net)?;
            }
            for (_, site) in net.sites() {
                site.renew_incoming(now)?;
            }
        }
        net.set_now(end);
        Ok(())
    }

    fn next_timer(&self) -> Option<OffsetDateTime> {
        let conns = self
            .pipes
            .values()
            .flat_map(|p| [p.dialer.poll_timeout(), p.listener.poll_timeout()])
            .flatten();
        let dials = self
            .outgoing
            .values()
            .filter(|o| o.pipe.is_none())
            .filter_map(|o| o.redial.poll_timeout());
        conns.chain(dials).min()
    }

    fn dial_due(&self, now: OffsetDateTime) -> bool {
        self.outgoing
            .values()
            .any(|o| o.pipe.is_none() && o.redial.is_due(now))
    }

    /// Does what each site's [`crate::site::Site::process_links`] says is
    /// due, and says goodbye on connections of links that are gone or were
    /// replaced.
    fn process(&mut self, net: &Network) -> Result<(), HarnessError> {
        let now = net.now();
        let mut wanted: BTreeSet<(String, String)> = BTreeSet::new();
        let mut dials: BTreeSet<(String, String, LinkInstance)> = BTreeSet::new();
        for (name, site) in net.sites() {
            for action in site.process_links()? {
                let key = (name.clone(), action.link().to_owned());
                wanted.insert(key.clone());
                if let LinkAction::Dial(d) = &action {
                    dials.insert((name.clone(), d.link.clone(), d.instance().clone()));
                }
                let held = match &action {
                    LinkAction::Dial(d) => Some(d.instance().clone()),
                    _ => None,
                };
                let backoff = self.backoff.clone();
                let out = self.outgoing.entry(key).or_insert_with(|| Outgoing {
                    redial: Redial::new(backoff.clone()),
                    pipe: None,
                    held: held.clone(),
                });
                if out.pipe.is_none() && out.held != held {
                    out.redial = Redial::new(backoff);
                    out.held = held;
                }
                if out.pipe.is_some() || !out.redial.is_due(now) {
                    continue;
                }
                match action {
                    LinkAction::Redeem(r) => self.redeem_due(net, &name, &site, &r)?,
                    LinkAction::Dial(d) => self.dial(net, &name, d)?,
                }
            }
        }
        // Connections of links that were deleted or replaced.
        for p in self.pipes.values_mut() {
            let key = (
                p.dialer_site.clone(),
                p.dial.link.clone(),
                p.dial.instance().clone(),
            );
            if !p.dialer.is_closed() && !dials.contains(&key) {
                p.dialer
                    .close(now, "the link was deleted or replaced on this site");
            }
        }
        self.outgoing
            .retain(|k, o| o.pipe.is_some() || wanted.contains(k));
        Ok(())
    }

    fn redeem_due(
        &mut self,
        net: &Network,
        name: &str,
        site: &MemorySite,
        r: &Redemption,
    ) -> Result<(), HarnessError> {
        let now = net.now();
        let answer = redeem(net, name, r);
        let who = format!("{name} {}", r.link);
        match site.handle_redemption(r, answer, now) {
            Ok(_) => {
                self.log(net, &who, "claim redeemed");
                if let Ok(d) = site.dial_link(&r.link) {
                    self.dial(net, name, d)?;
                }
                Ok(())
            }
            Err(e @ LinkError::ClaimRedemption { .. }) => {
                self.log(net, &who, &e);
                self.retry_later(net, name, &r.link, false);
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    fn retry_later(&mut self, net: &Network, site: &str, link: &str, revoked: bool) {
        let now = net.now();
        if let Some(out) = self.outgoing.get_mut(&(site.to_owned(), link.to_owned())) {
            net.with_rng(|rng| out.redial.down(now, revoked, rng));
            out.pipe = None;
        }
    }

    /// Dials `d` from site `from`: what TCP and TLS would check, then both
    /// ends of the link protocol.
    fn dial(&mut self, net: &Network, from: &str, d: Dial) -> Result<(), HarnessError> {
        let now = net.now();
        let who = format!("{from} {}", d.link);
        let site = net.site(from)?;
        let connected = connect(net, from, &d);
        let (listener_site, listener_local, chain) = match connected {
            Ok(c) => c,
            Err(e) => {
                self.log(net, &who, format!("dial failed: {e}"));
                let revoked = revoked_now(site.handle_dial(&d, Err(e), now))?;
                self.retry_later(net, from, &d.link, revoked);
                return Ok(());
            }
        };
        let id = self.next_pipe;
        self.next_pipe += 1;
        let pipe = Pipe {
            dialer_site: from.to_owned(),
            listener: Connection::listen(now, listener_local, self.timing),
            dialer: d.connection(now, self.timing),
            listener_site,
            dial: d,
            remote_site_name: None,
            chain,
            accepted: None,
            dialer_eof_sent: false,
            listener_eof_sent: false,
        };
        self.log(
            net,
            &who,
            format!("TLS connection to {} made", pipe.dial.endpoint),
        );
        self.pipes.insert(id, pipe);
        if let Some(out) = self
            .outgoing
            .get_mut(&(from.to_owned(), self.pipes[&id].dial.link.clone()))
        {
            out.pipe = Some(id);
        }
        self.pump(net, id)
    }

    // -- moving bytes and events ------------------------------------------------

    fn pump_all(&mut self, net: &Network) -> Result<(), HarnessError> {
        let ids: Vec<u64> = self.pipes.keys().copied().collect();
        for id in ids {
            self.pump(net, id)?;
        }
        Ok(())
    }

    /// Moves every byte, close and event of pipe `id` until nothing moves
    /// (the drain rule, for both ends), and removes it once both ends are
    /// closed.
    fn pump(&mut self, net: &Network, id: u64) -> Result<(), HarnessError> {
        let Some(mut pipe) = self.pipes.remove(&id) else {
            return Ok(());
        };
        let result = self.pump_pipe(net, id, &mut pipe);
        let done = pipe.dialer.is_closed()
            && pipe.listener.is_closed()
            && !pipe.dialer.has_pending()
            && !pipe.listener.has_pending();
        if !done {
            self.pipes.insert(id, pipe);
        }
        result
    }

    fn pump_pipe(&mut self, net: &Network, id: u64, p: &mut Pipe) -> Result<(), HarnessError> {
        loop {
            let now = net.now();
            let carries = net.reachable(&p.dialer_site) && net.reachable(&p.listener_site);
            let mut moved = false;
            while let Some(bytes) = p.dialer.poll_transmit() {
                moved = true;
                if carries && !p.listener.is_closed() {
                    p.listener.handle_input(now, &bytes);
                }
            }
            while let Some(bytes) = p.listener.poll_transmit() {
                moved = true;
                if carries && !p.dialer.is_closed() {
                    p.dialer.handle_input(now, &bytes);
                }
            }
            if p.dialer.is_closed() && !p.dialer_eof_sent {
                p.dialer_eof_sent = true;
                moved = true;
                if carries {
                    p.listener.handle_eof(now);
                }
            }
            if p.listener.is_closed() && !p.listener_eof_sent {
                p.listener_eof_sent = true;
                moved = true;
                if carries {
                    p.dialer.handle_eof(now);
                }
            }
            while let Some(event) = p.dialer.poll_event() {
                moved = true;
                self.dialer_event(net, id, p, event)?;
            }
            while let Some(event) = p.listener.poll_event() {
                moved = true;
                self.listener_event(net, p, event)?;
            }
            if !moved {
                return Ok(());
            }
        }
    }

    fn dialer_event(
        &mut self,
        net: &Network,
        id: u64,
        p: &mut Pipe,
        event: Event,
    ) -> Result<(), HarnessError> {
        let now = net.now();
        let site = net.site(&p.dialer_site)?;
        let key = (p.dialer_site.clone(), p.dial.link.clone());
        let who = format!("{} {}", key.0, key.1);
        self.log(net, &who, &event);
        match event {
            Event::Connected {
                remote_site_id,
                remote_site_name,
            } => {
                ignore_gone(site.handle_connected(&p.dial, &remote_site_id, now))?;
                p.remote_site_name = Some(remote_site_name);
                if let Some(out) = self.outgoing.get_mut(&key) {
                    out.redial.connected();
                }
            }
            Event::RevokeNotice { payload, signature } => {
                let notice = SignedNotice { payload, signature };
                match site.handle_revoke_notice(&p.dial, &notice, now) {
                    Ok(n) => {
                        self.log(net, &who, format!("link revoked: {}", n.what()));
                        p.dialer.close(now, "access revoked");
                    }
                    // The link was deleted or replaced while its old
                    // connection was still open: the notice is about
                    // credentials no link holds any more.
                    Err(NoticeRejected::Site(
                        e @ (LinkError::NoSuchLink { .. } | LinkError::LinkReplaced { .. }),
                    )) => {
                        self.log(net, &who, e);
                        p.dialer.close(now, "the link is gone");
                    }
                    Err(NoticeRejected::Site(e)) => return Err(e.into()),
                    Err(e) => self.log(net, &who, e),
                }
            }
            Event::Pong { id: ping, rtt } => {
                self.pings
                    .insert((key.0, key.1, ping), PingOutcome::Pong { rtt });
            }
            Event::PingLost { id: ping } => {
                self.pings.insert((key.0, key.1, ping), PingOutcome::Lost);
            }
            Event::Closed(reason) => {
                let mut closed = LinkClosed::new(p.dial.endpoint.to_string(), reason);
                if let Some(name) = &p.remote_site_name {
                    closed = closed.after_connected(name.clone());
                }
                let revoked = revoked_now(site.handle_link_closed(&p.dial, &closed, now))?;
                let ours = self.outgoing.get(&key).is_some_and(|o| o.pipe == Some(id));
                if ours {
                    self.retry_later(net, &key.0, &key.1, revoked);
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn listener_event(
        &mut self,
        net: &Network,
        p: &mut Pipe,
        event: Event,
    ) -> Result<(), HarnessError> {
        let now = net.now();
        let site = net.site(&p.listener_site)?;
        let who = match &p.accepted {
            Some(a) => format!(
                "{} <- {} {}",
                p.listener_site, a.hello.site_name, a.hello.link
            ),
            None => format!("{} <- incoming", p.listener_site),
        };
        self.log(net, &who, &event);
        match event {
            Event::Hello(hello) => match site.accept_incoming(&[&p.chain], &hello, now) {
                Ok(incoming) => {
                    let record = site.record()?;
                    let signer = record.ca.as_ref().and_then(|ca| {
                        let key = PrivateKey::from_pem(&ca.key_pem).ok()?;
                        site.key_backend().p256_signer(&key).ok()
                    });
                    p.accepted = Some(Accepted {
                        hello,
                        certificate: incoming.certificate,
                        generation: record.ca_generation,
                        signer,
                    });
                    let _ = p.listener.accept(now);
                }
                Err(e) => {
                    let _ = p.listener.refuse(now, &e.to_string());
                }
            },
            Event::Closed(_) => {
                if let Some(a) = &p.accepted {
                    let (peer, link) = (&a.hello.site_id, &a.hello.link);
                    let carried_elsewhere = self.pipes.values().any(|o| {
                        o.listener_site == p.listener_site
                            && !o.listener.is_closed()
                            && o.accepted
                                .as_ref()
                                .is_some_and(|x| &x.hello.site_id == peer && &x.hello.link == link)
                    });
                    if !carried_elsewhere {
                        site.drop_incoming(peer, link)?;
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    // -- revocation ---------------------------------------------------------------

    /// Closes the connections of site `name` whose dialer's certificate no
    /// longer authenticates, with a signed notice when it was revoked.
    fn sweep(&mut self, net: &Network, name: &str) -> Result<(), HarnessError> {
        let now = net.now();
        let site = net.site(name)?;
        let mut record = None;
        for p in self.pipes.values_mut() {
            if p.listener_site != name || !p.listener.is_connected() {
                continue;
            }
            let Some(a) = &p.accepted else { continue };
            let Err(refusal) = site.authenticate_peer(&[&p.chain], now) else {
                continue;
            };
            if record.is_none() {
                record = Some(site.record()?);
            }
            let record = record.as_ref().expect("just read");
            let owed =
                RevokeNotice::for_peer(record, &a.certificate.serial_hex, Some(a.generation), now);
            // The listener holds the key of the CA that issued the peer's
            // certificate (the current one when it accepted the link).
            let signed = match (owed, &a.signer) {
                (Some(o), Some(signer)) if o.signer_generation == a.generation => {
                    o.notice.sign(&**signer).ok()
                }
                _ => None,
            };
            match signed {
                Some(s) => {
                    let _ = p.listener.send_revoke_notice(now, s.payload, s.signature);
                }
                None => p.listener.close(now, &refusal.to_string()),
            }
        }
        Ok(())
    }

    pub(super) fn sweep_and_pump(&mut self, net: &Network, name: &str) -> Result<(), HarnessError> {
        self.sweep(net, name)?;
        self.pump_all(net)
    }

    // -- pings ----------------------------------------------------------------------

    fn live_pipe(&self, site: &str, link: &str) -> Option<u64> {
        self.outgoing
            .get(&(site.to_owned(), link.to_owned()))
            .and_then(|o| o.pipe)
            .filter(|id| self.pipes.get(id).is_some_and(|p| p.dialer.is_connected()))
    }

    pub(super) fn ping(
        &mut self,
        net: &Network,
        site: &str,
        link: &str,
    ) -> Result<u64, HarnessError> {
        let not_connected = || HarnessError::NotConnected {
            site: site.into(),
            link: link.into(),
        };
        let id = self.live_pipe(site, link).ok_or_else(not_connected)?;
        let pipe = self.pipes.get_mut(&id).ok_or_else(not_connected)?;
        let ping = pipe.dialer.ping(net.now()).map_err(|_| not_connected())?;
        self.pump(net, id)?;
        Ok(ping)
    }

    pub(super) fn ping_outcome(&self, site: &str, link: &str, id: u64) -> Option<PingOutcome> {
        self.pings
            .get(&(site.to_owned(), link.to_owned(), id))
            .cloned()
    }

    pub(super) fn is_connected(&self, site: &str, link: &str) -> bool {
        self.live_pipe(site, link).is_some()
    }
}

// -- what TCP, TLS and HTTPS would check ------------------------------------------

/// Finds the site at `host` as seen from `from`.
fn route(
    net: &Network,
    from: &str,
    host: &str,
) -> Result<(String, Arc<MemorySite>), TransportError> {
    if !net.reachable(from) {
        return Err(TransportError::Unreachable {
            reason: format!("site {from} is cut off from the network"),
        });
    }
    match net.site(host) {
        Ok(site) if net.reachable(host) => Ok((host.to_owned(), site)),
        Ok(_) => Err(TransportError::Unreachable {
            reason: format!("no route to host {host} (the site is unreachable)"),
        }),
        Err(_) => Err(TransportError::Unreachable {
            reason: format!("unknown host {host}"),
        }),
    }
}

/// The server side of a TLS handshake as the dialer sees it: the listener's
/// certificate must come from the CA the dialer trusts.
fn check_server_ca(site: &MemorySite, trusted_ca_pem: &str) -> Result<(), TransportError> {
    let current = site
        .server_credentials()
        .map_err(|e| TransportError::Handshake {
            reason: format!("the remote site cannot serve TLS: {e}"),
        })?;
    match current {
        None => Err(TransportError::Handshake {
            reason: "the remote site accepts no connections (edge site)".into(),
        }),
        Some((ca_pem, _)) if ca_pem.trim() != trusted_ca_pem.trim() => {
            Err(TransportError::Handshake {
                reason: "the remote site's certificate is not issued by the CA in the token \
                         (the site has revoked access since the token was made)"
                    .into(),
            })
        }
        Some(_) => Ok(()),
    }
}

fn url_host(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("https://")?;
    let authority = rest.split('/').next()?;
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next();
    }
    authority.split(':').next()
}

/// A claim redemption over the in-memory network: the issuing site's
/// claims server answers with [`crate::site::Site::redeem_claim`].
pub(super) fn redeem(
    net: &Network,
    from: &str,
    r: &Redemption,
) -> Result<CertToken, TransportError> {
    let host = url_host(&r.url).ok_or_else(|| TransportError::Protocol {
        reason: format!("claim URL {:?} is not https://host:port/claim", r.url),
    })?;
    let (_, target) = route(net, from, host)?;
    check_server_ca(&target, &r.ca_pem)?;
    let now = net.now();
    net.with_rng(|rng| target.redeem_claim(&r.request, now, rng))
        .map_err(|e| TransportError::Refused {
            status: e.http_status(),
            body: e.http_body(),
        })
}

/// The grant server of the site `r` names (by its URL's host) answering
/// `r` from site `from`, in memory: the status and body an HTTP client
/// would get, for [`crate::site::Site::handle_grant_redemption`].
pub(super) fn redeem_grant(
    net: &Network,
    from: &str,
    r: &GrantRedeem,
) -> Result<(u16, Vec<u8>), TransportError> {
    let (_, target) = route(net, from, &r.request.endpoint.host)?;
    check_server_ca(&target, &r.request.ca_pem)?;
    let now = net.now();
    let request = GrantRedemption::of_request(&r.request);
    let outcome = net.with_rng(|rng| target.redeem_grant(&request, now, rng));
    let (status, body) = http_answer(&outcome);
    Ok((status, body.into_bytes()))
}

/// TCP and the TLS handshake of a dial: the listening site, who it is, and
/// the dialer's certificate as its TLS sees it.
fn connect(
    net: &Network,
    from: &str,
    d: &Dial,
) -> Result<(String, LocalSite, Vec<u8>), TransportError> {
    let (listener, target) = route(net, from, &d.endpoint.host)?;
    let record = target.record().map_err(|e| TransportError::Unreachable {
        reason: e.to_string(),
    })?;
    let port_ok = match record.mode {
        SiteMode::Interior => {
            d.endpoint.port == record.inter_router.port || d.endpoint.port == record.edge.port
        }
        SiteMode::Edge => false,
    };
    if !port_ok {
        return Err(TransportError::Unreachable {
            reason: format!("connection to {} refused", d.endpoint),
        });
    }
    check_server_ca(&target, &d.credentials.ca_pem).map_err(|e| match e {
        TransportError::Handshake { reason } => TransportError::Handshake {
            reason: format!("{reason} (with {})", d.endpoint),
        },
        other => other,
    })?;
    let der = pem_to_der(&d.credentials.cert_pem).map_err(|e| TransportError::Handshake {
        reason: format!("the link's client certificate cannot be read: {e}"),
    })?;
    let local = LocalSite {
        site_id: record.id.clone(),
        site_name: record.name.clone(),
    };
    Ok((listener, local, der))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_network_can_be_shared_between_threads() {
        fn shared<T: Send + Sync>() {}
        shared::<Network>();
    }

    #[test]
    fn url_hosts() {
        assert_eq!(url_host("https://west:8081/abc"), Some("west"));
        assert_eq!(url_host("https://[::1]:8081/abc"), Some("::1"));
        assert_eq!(url_host("http://west/abc"), None);
    }
}

//! Outgoing links made from Skupper 2.x AccessTokens: the redemption to do
//! and what its answer does to the link. (Links from every other format,
//! and the rules all links share, are in `mod.rs`.)

use time::OffsetDateTime;

use super::{LinkError, Site};
use crate::link::{LinkRecord, LinkState};
use crate::link_ops::GrantRedeem;
use crate::records::SiteMode;
use crate::store::{Cas, Key, Record, RecordKind, Store};
use crate::transport::TransportError;
use crate::v2::GrantRequest;

impl<S: Store> Site<S> {
    /// The redemption of a pending (or failed) link's AccessToken, to do
    /// and give to [`Site::handle_grant_redemption`]. A link without one
    /// has nothing to redeem: [`LinkError::NothingToRedeem`].
    pub fn redeem_grant_link(&self, name: &str) -> Result<GrantRedeem, LinkError> {
        self.grant_redeem(&self.link(name)?, false)
    }

    pub(super) fn grant_redeem(
        &self,
        link: &LinkRecord,
        new_link: bool,
    ) -> Result<GrantRedeem, LinkError> {
        let token = match (link.state(), link.access_token()?) {
            (LinkState::Pending | LinkState::Failed { .. }, Some(token)) => token,
            _ => {
                return Err(LinkError::NothingToRedeem {
                    link: link.name.clone(),
                    state: link.state().label(),
                })
            }
        };
        let site = &self.loaded()?.record;
        Ok(GrantRedeem {
            link: link.name.clone(),
            request: GrantRequest::new(&token, &site.id)?,
            new_link,
        })
    }

    /// Records the answer to `redeem`: the HTTP status and body the grant
    /// server answered with, or why it could not be asked. A 200 with a
    /// Link file ([`crate::v2::GrantResponse::interpret`], which applies
    /// the token's `linkCost`) becomes the link's credentials (its first
    /// Link and the Secret; the AccessToken and its code are forgotten) and
    /// the link is [`LinkState::Connecting`]; each further Link (another
    /// endpoint group of the remote site) becomes a link of its own named
    /// `<name>-2`, `<name>-3`, ... Returns every link, the redeemed one
    /// first.
    ///
    /// Otherwise [`LinkError::GrantRedemption`] says why, with Skupper's
    /// message for a refusal (`Controller got failed response: 404 (Not
    /// Found) No such claim`), and the link is deleted when it came with
    /// [`Site::create_link`] ([`GrantRedeem::new_link`]: nothing is left
    /// behind), [`LinkState::Failed`] with that message otherwise.
    pub fn handle_grant_redemption(
        &self,
        redeem: &GrantRedeem,
        answer: Result<(u16, Vec<u8>), TransportError>,
        now: OffsetDateTime,
    ) -> Result<Vec<LinkRecord>, LinkError> {
        let name = redeem.link.as_str();
        let outcome = match answer {
            Ok((status, body)) => redeem
                .request
                .response()
                .interpret(status, &body)
                .map_err(|e| (e.to_string(), e.is_retryable())),
            Err(e) => Err((e.to_string(), e.is_retryable())),
        };
        let (reason, retryable) = match outcome {
            Ok(file) => {
                let edge = self.loaded()?.record.mode == SiteMode::Edge;
                let Some((first, others)) = file.links.split_first() else {
                    // LinkFile::decode refuses a file without Links.
                    return Err(LinkError::GrantRedemption {
                        link: name.to_owned(),
                        reason: "the grant server answered without Links".into(),
                        retryable: false,
                    });
                };
                let (link, _) = self.update_link(name, |l| {
                    Ok(Some(l.redeemed_grant(first, &file.secret, edge, now)?))
                })?;
                let mut links = vec![link.clone()];
                for (i, other) in others.iter().enumerate() {
                    let mut record = LinkRecord::from_link(
                        format!("{name}-{}", i + 2),
                        link.cost,
                        other,
                        &file.secret,
                        edge,
                        now,
                    );
                    record.access_token_url = link.access_token_url.clone();
                    let record = record.with_instance(link.instance());
                    let key = Key::new(RecordKind::Link, record.name.clone());
                    let new = Some(Record::Link(Box::new(record.clone())));
                    match self.store.compare_and_swap(&key, None, new)? {
                        Cas::Done(_) => links.push(record),
                        Cas::Conflict(_) => {
                            return Err(LinkError::LinkNameTaken { name: record.name })
                        }
                    }
                }
                return Ok(links);
            }
            Err(e) => e,
        };
        if redeem.new_link {
            self.store.delete(&Key::new(RecordKind::Link, name))?;
        } else {
            self.update_link(name, |l| {
                Ok(l.transition(
                    LinkState::Failed {
                        reason: reason.clone(),
                        retryable,
                    },
                    "AccessToken redemption failed",
                    now,
                )?)
            })?;
        }
        Err(LinkError::GrantRedemption {
            link: name.to_owned(),
            reason,
            retryable,
        })
    }
}

//! One ACME order, from placing it to the certificate in `certs`. Every
//! step starts from the CA's view of the order, so a leader that takes over
//! mid-order does only what is left.

use std::time::Duration;

use instant_acme::{
    Account, AuthorizationStatus, ChallengeStatus, ChallengeType, Identifier, NewOrder, Order,
    OrderStatus, RetryPolicy,
};
use wharf_cluster::ClusterHandle;
use wharf_store::records::{AcmeCertRecord, AcmeChallenge, AcmeOrder, CertRecord, CertSource};
use wharf_store::{Command, CommandResult};

use super::client;
use super::error::{AcmeError, AtCa};

/// How long the CA may take to validate, and then to issue.
const POLL: RetryPolicy = RetryPolicy::new()
    .initial_delay(Duration::from_millis(500))
    .backoff(1.5)
    .timeout(Duration::from_secs(90));
/// How long the leader waits for every follower to hold the challenge
/// tokens before it tells the CA to validate (a lagging follower would
/// answer 404 to the validator).
const TOKENS_EVERYWHERE: Duration = Duration::from_secs(5);

/// Continues `acme`'s order, or places one; ends with the certificate
/// stored as generation `generation`, or an error.
pub async fn advance(
    node: &ClusterHandle,
    acme: &AcmeCertRecord,
    generation: u64,
) -> Result<(), AcmeError> {
    let account = client::account(node, acme).await?;
    let (mut order, state) = match &acme.order {
        Some(state) => {
            tracing::info!(name = %acme.name, order = %state.url, started_by = state.started_by,
                "continuing the ACME order placed by node {}", state.started_by);
            let order = account
                .order(state.url.clone())
                .await
                .at_ca(format!("cannot fetch the order {}", state.url))?;
            (order, state.clone())
        }
        None => match place(node, acme, &account).await? {
            Some(placed) => placed,
            None => return Ok(()),
        },
    };
    if order.refresh().await?.status == OrderStatus::Pending {
        answer_challenges(&mut order).await?;
        order
            .poll_ready(&POLL)
            .await
            .at_ca("the CA did not validate the domains")?;
    }
    match order.state().status {
        OrderStatus::Ready => {
            let csr = signing_request(&state.key_pem, &acme.domains)?;
            order
                .finalize_csr(&csr)
                .await
                .at_ca("finalising the order")?;
        }
        OrderStatus::Processing | OrderStatus::Valid => {}
        other => {
            return Err(AcmeError::Refused(format!(
                "the order is {other:?}: {}",
                problem(&mut order)
            )))
        }
    }
    let chain_pem = order
        .poll_certificate(&POLL)
        .await
        .at_ca("the CA did not issue the certificate")?;
    store_certificate(node, acme, &state, chain_pem, generation).await
}

/// A new order, its certificate key and its challenges, recorded in the
/// store (and on every follower) before the CA is asked to validate.
async fn place(
    node: &ClusterHandle,
    acme: &AcmeCertRecord,
    account: &Account,
) -> Result<Option<(Order, AcmeOrder)>, AcmeError> {
    let identifiers: Vec<Identifier> = acme
        .domains
        .iter()
        .map(|d| Identifier::Dns(d.clone()))
        .collect();
    let mut order = account
        .new_order(&NewOrder::new(&identifiers))
        .await
        .at_ca("the CA refused a new order")?;
    let state = AcmeOrder {
        url: order.url().to_owned(),
        key_pem: rcgen::KeyPair::generate()?.serialize_pem(),
        challenges: pending_challenges(&mut order).await?,
        started: crate::clock::unix_now(),
        started_by: node.node_id(),
    };
    let (result, index) = node
        .write_indexed(Command::SetAcmeOrder {
            name: acme.name.clone(),
            expected: None,
            order: Some(state.clone()),
            error: None,
        })
        .await?;
    if result != CommandResult::Done {
        tracing::info!(name = %acme.name, "the ACME certificate changed meanwhile ({result:?}); order {} left", state.url);
        return Ok(None);
    }
    tracing::info!(target: "audit", event = "acme_order", name = %acme.name, order = %state.url,
        challenges = state.challenges.len(), "placed an ACME order");
    wait_for_followers(node, index).await;
    Ok(Some((order, state)))
}

/// The HTTP-01 challenges of the order's pending authorisations (an
/// authorisation the CA still holds valid for this account needs none).
async fn pending_challenges(order: &mut Order) -> Result<Vec<AcmeChallenge>, AcmeError> {
    let mut out = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz?;
        match authz.status {
            AuthorizationStatus::Valid => continue,
            AuthorizationStatus::Pending => {}
            other => {
                return Err(AcmeError::Refused(format!(
                    "authorisation for {} is {other:?}",
                    authz.identifier()
                )))
            }
        }
        let name = authz.identifier().to_string();
        let challenge = authz.challenge(ChallengeType::Http01).ok_or_else(|| {
            AcmeError::Refused(format!("the CA offers no HTTP-01 challenge for {name}"))
        })?;
        out.push(AcmeChallenge {
            token: challenge.token.clone(),
            key_authorization: challenge.key_authorization().as_str().to_owned(),
        });
    }
    Ok(out)
}

/// Tells the CA to validate each challenge still waiting for that.
async fn answer_challenges(order: &mut Order) -> Result<(), AcmeError> {
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz?;
        if authz.status != AuthorizationStatus::Pending {
            continue;
        }
        let name = authz.identifier().to_string();
        let mut challenge = authz.challenge(ChallengeType::Http01).ok_or_else(|| {
            AcmeError::Refused(format!("the CA offers no HTTP-01 challenge for {name}"))
        })?;
        if challenge.status == ChallengeStatus::Pending {
            challenge
                .set_ready()
                .await
                .at_ca(format!("cannot start the validation of {name}"))?;
        }
    }
    Ok(())
}

/// Waits (bounded) until every follower has applied `index`.
async fn wait_for_followers(node: &ClusterHandle, index: u64) {
    if !node.wait_replicated(index, TOKENS_EVERYWHERE).await {
        tracing::warn!("not every follower holds the ACME challenge tokens yet; validating anyway");
    }
}

/// A CSR for `domains` signed with the order's key.
fn signing_request(key_pem: &str, domains: &[String]) -> Result<Vec<u8>, AcmeError> {
    let key = rcgen::KeyPair::from_pem(key_pem)?;
    let params = rcgen::CertificateParams::new(domains.to_vec())?;
    Ok(params.serialize_request(&key)?.der().to_vec())
}

fn problem(order: &mut Order) -> String {
    order
        .state()
        .error
        .as_ref()
        .map_or_else(|| "no reason given".to_owned(), |p| p.to_string())
}

async fn store_certificate(
    node: &ClusterHandle,
    acme: &AcmeCertRecord,
    state: &AcmeOrder,
    chain_pem: String,
    generation: u64,
) -> Result<(), AcmeError> {
    wharf_tls::certified_key(chain_pem.as_bytes(), state.key_pem.as_bytes())
        .map_err(AcmeError::Mismatch)?;
    let facts = wharf_tls::inspect_leaf_pem(&chain_pem);
    let cert = CertRecord {
        name: acme.name.to_ascii_lowercase(),
        not_before: facts.as_ref().map_or(0, |f| f.not_before),
        not_after: facts.as_ref().map_or(0, |f| f.not_after),
        chain_pem,
        key_pem: state.key_pem.clone(),
        source: CertSource::Acme,
        generation,
    };
    let not_after = cert.not_after;
    let result = node
        .write(Command::CompleteAcmeOrder {
            cert,
            order_url: state.url.clone(),
        })
        .await?;
    match result {
        CommandResult::Done => {
            tracing::info!(target: "audit", event = "cert", name = %acme.name, source = "Acme",
                generation, not_after, order = %state.url, "obtained a certificate from ACME");
            Ok(())
        }
        CommandResult::Superseded | CommandResult::NotFound => {
            tracing::info!(name = %acme.name, order = %state.url,
                "another leader finished or replaced this ACME order");
            Ok(())
        }
        other => Err(AcmeError::Refused(format!(
            "storing the certificate: {other:?}"
        ))),
    }
}

/// Records a failed attempt and drops the order, so the next attempt (after
/// a backoff) starts afresh.
pub async fn record_failure(node: &ClusterHandle, name: &str, error: &AcmeError) {
    // The order as stored now: the attempt may have placed one.
    let expected = node.reader().acme_certs().ok().and_then(|all| {
        all.into_iter()
            .find(|a| a.name == name)
            .and_then(|a| a.order)
            .map(|o| o.url)
    });
    let write = node.write(Command::SetAcmeOrder {
        name: name.to_owned(),
        expected,
        order: None,
        error: Some(error.to_string()),
    });
    if let Err(e) = write.await {
        tracing::warn!(name, "cannot record the ACME failure: {e}");
    }
}

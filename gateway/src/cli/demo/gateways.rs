//! The federated demo's gateways (`xgate demo --federated`): one per
//! agency, as a federation deploys them. The PKI is made as `xgate certs
//! init --dir DIR/pki --gateway gw-state=https://127.0.0.1:PORT ...
//! --agency state@gw-state ... --auditor gao@gw-hhs` makes it
//! ([`pki::init_federation`]), and each gateway is set up as `xgate serve
//! --pki DIR/pki --data-dir DIR/<id> --gateway-id <id> --listen
//! 127.0.0.1:PORT` sets it up, with its own data directory, log (signed
//! with its own key from the PKI) and the demo's policy ([`super::policy`]:
//! the default rules and two contracts) as its `policy.toml`.
//!
//! The registry names each gateway's URL, so the ports are chosen before
//! the PKI is made: each bound on port 0, read, and let go just before
//! the gateways bind them again. Another process could take one in
//! between; on loopback that is rare, and it fails loudly (the gateway
//! cannot listen).

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};

use super::policy;
use crate::cli::error::Error;
use crate::cli::serve::{Prepared, prepare};
use xgate_server::config::Config;
use xgate_server::pki::{self, GatewayPlan, Member};
use xgate_server::registry::{AgencyId, GatewayId};

/// The gateways and the agencies each serves. hhs's gateway also serves
/// the auditor gao: a gateway may serve several agencies, so a hub and
/// per-agency gateways mix in one federation.
pub(super) const LAYOUT: [(&str, &[&str]); 4] = [
    ("gw-state", &["state"]),
    ("gw-treasury", &["treasury"]),
    ("gw-gsa", &["gsa"]),
    ("gw-hhs", &["hhs", "gao"]),
];

/// The agencies of [`LAYOUT`] that hold the auditor role.
const AUDITORS: [&str; 1] = ["gao"];

/// Where the PKI is, in the demo's directory.
const PKI: &str = "pki";

/// A gateway set up, not yet serving, and where its data is.
pub(super) struct Started {
    /// The gateway.
    pub prepared: Prepared,
    /// Its data directory.
    pub data_dir: PathBuf,
}

/// Makes the federation's PKI in `dir`/pki and sets up every gateway of
/// [`LAYOUT`] on it, in order; on failure nothing is left listening.
///
/// # Errors
/// A port or directory that cannot be used, or a gateway that does not
/// start.
pub(super) async fn start(dir: &Path) -> Result<Vec<Started>, Error> {
    // Before anything is created: every file of this process is private.
    xgate_server::data_dir::restrict_umask();
    xgate_server::data_dir::make_private(dir)
        .map_err(|e| Error::Serve(format!("cannot make {} private: {e}", dir.display())))?;
    let ports = free_ports(LAYOUT.len())?;
    let mut plans = Vec::with_capacity(LAYOUT.len());
    let mut members = Vec::new();
    for ((gateway, agencies), port) in LAYOUT.iter().zip(&ports) {
        let id: GatewayId = parse(gateway)?;
        for agency in *agencies {
            members.push(Member {
                id: parse::<AgencyId>(agency)?,
                auditor: AUDITORS.contains(agency),
                gateway: Some(id.clone()),
            });
        }
        plans.push(
            GatewayPlan::new(id, &format!("https://127.0.0.1:{port}"))
                .map_err(|e| Error::Serve(e.to_string()))?,
        );
    }
    let pki_dir = dir.join(PKI);
    pki::init_federation(&pki_dir, &members, &plans, false)?;
    let mut started = Vec::with_capacity(LAYOUT.len());
    for (plan, port) in plans.into_iter().zip(ports) {
        let data_dir = dir.join(plan.id.as_str());
        policy::write(&data_dir)?;
        let config = Config {
            listen: SocketAddr::from(([127, 0, 0, 1], port)),
            public_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: data_dir.clone(),
            pki: Some(pki_dir.clone()),
            gateway_id: Some(plan.id),
            ..Config::default()
        };
        started.push(Started {
            prepared: prepare(&config).await?,
            data_dir,
        });
    }
    Ok(started)
}

/// An id of [`LAYOUT`].
fn parse<T: std::str::FromStr>(id: &str) -> Result<T, Error> {
    id.parse()
        .map_err(|_| Error::Serve(format!("{id} is not a valid id")))
}

/// `n` distinct free loopback ports: each bound on port 0, read, and let
/// go once all are chosen (so no two are the same).
fn free_ports(n: usize) -> Result<Vec<u16>, Error> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Serve(format!("cannot find a free loopback port: {e}")))?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<_, _>>()
        .map_err(|e| Error::Serve(format!("cannot read a loopback port: {e}")))
}

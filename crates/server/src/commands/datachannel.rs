//! Data connection set-up and representation: PASV EPSV PORT EPRT TYPE STRU MODE.

use std::net::{IpAddr, SocketAddr, SocketAddrV4};

use wharf_ftp::command::{EpsvArg, TransferType};
use wharf_ftp::listing::{epsv_reply_text, pasv_reply_text};
use wharf_ftp::Reply;

use crate::address_rules::canonical;
use crate::data::{DataSetup, DataTlsContext, PassiveListener, PendingPassive};
use crate::defender::Offence;
use crate::state::{Connection, DataChannel, TransferSettings};
use crate::Shared;

/// Opens a passive port; `tls` (under PROT P) is what the handshake that
/// follows the accept needs.
async fn listen(
    shared: &Shared,
    conn: &Connection,
    tls: Option<DataTlsContext>,
    data: &mut DataChannel,
) -> Result<u16, Reply> {
    let config = &shared.config;
    let bound = PassiveListener::bind(
        conn.local.ip(),
        config.passive_ports,
        conn.peer.ip(),
        &config.trusted_proxies,
    );
    match bound.await {
        Ok(listener) => {
            let port = listener.port().map_err(|_| no_passive_port())?;
            data.setup = Some(DataSetup::Passive(PendingPassive::start(listener, tls)));
            Ok(port)
        }
        Err(e) => {
            tracing::warn!(range = %config.passive_ports,
                "no free port in the passive range: {e}; widen --pasv-ports");
            Err(no_passive_port())
        }
    }
}

fn no_passive_port() -> Reply {
    Reply::new(
        425,
        "Cannot open a passive port: the passive range is exhausted.",
    )
}

pub async fn pasv(
    shared: &Shared,
    conn: &Connection,
    tls: Option<DataTlsContext>,
    data: &mut DataChannel,
) -> Reply {
    if data.epsv_all {
        return Reply::new(503, "PASV refused after EPSV ALL.");
    }
    let advertised = match shared.config.passive_address {
        Some(IpAddr::V4(v4)) => v4,
        _ => match canonical(conn.local.ip()) {
            IpAddr::V4(v4) => v4,
            IpAddr::V6(_) => {
                return Reply::new(425, "PASV cannot carry an IPv6 address: use EPSV.");
            }
        },
    };
    data.setup = None;
    match listen(shared, conn, tls, data).await {
        Ok(port) => Reply::new(227, pasv_reply_text(SocketAddrV4::new(advertised, port))),
        Err(r) => r,
    }
}

pub async fn epsv(
    shared: &Shared,
    conn: &Connection,
    tls: Option<DataTlsContext>,
    data: &mut DataChannel,
    arg: EpsvArg,
) -> Reply {
    match arg {
        EpsvArg::All => {
            data.epsv_all = true;
            return Reply::new(
                200,
                "EPSV ALL ok: only EPSV will set up data connections now.",
            );
        }
        EpsvArg::Protocol(p) => {
            let ours = if canonical(conn.local.ip()).is_ipv4() {
                1
            } else {
                2
            };
            if p != ours {
                return Reply::new(522, format!("Network protocol not supported, use ({ours})"));
            }
        }
        EpsvArg::Any => {}
    }
    data.setup = None;
    match listen(shared, conn, tls, data).await {
        Ok(port) => Reply::new(229, epsv_reply_text(port)),
        Err(r) => r,
    }
}

/// PORT and EPRT. Active connections go only to the control peer's own
/// address and to unprivileged ports, which rules out FTP bounce attacks.
pub fn active(
    shared: &Shared,
    conn: &Connection,
    data: &mut DataChannel,
    target: SocketAddr,
) -> Reply {
    if !shared.config.policy.allow_active {
        return Reply::new(
            502,
            "Active mode is disabled on this server: use PASV or EPSV.",
        );
    }
    if data.epsv_all {
        return Reply::new(503, "PORT and EPRT refused after EPSV ALL.");
    }
    if canonical(target.ip()) != canonical(conn.peer.ip()) {
        tracing::warn!(%target, "refused PORT/EPRT to a foreign address (FTP bounce)");
        shared.offence(conn.client_ip(), Offence::ProtocolAbuse);
        return Reply::new(
            500,
            "Illegal PORT command: data connections go only to your own address.",
        );
    }
    if target.port() < 1024 {
        tracing::warn!(%target, "refused PORT/EPRT to a privileged port");
        shared.offence(conn.client_ip(), Offence::ProtocolAbuse);
        return Reply::new(500, "Illegal PORT command: the port must be 1024 or above.");
    }
    data.setup = Some(DataSetup::Active {
        target,
        local: conn.local.ip(),
    });
    Reply::new(200, "PORT command successful. Consider using PASV.")
}

pub fn transfer_type(settings: &mut TransferSettings, t: TransferType) -> Reply {
    settings.transfer_type = t;
    match t {
        TransferType::Ascii => Reply::new(200, "Type set to A."),
        TransferType::Image => Reply::new(200, "Type set to I."),
    }
}

pub fn stru(c: char) -> Reply {
    if c == 'F' {
        Reply::new(200, "Structure set to F.")
    } else {
        Reply::new(504, "Only file structure (STRU F) is supported.")
    }
}

pub fn mode(c: char) -> Reply {
    if c == 'S' {
        Reply::new(200, "Mode set to S.")
    } else {
        Reply::new(504, "Only stream mode (MODE S) is supported.")
    }
}

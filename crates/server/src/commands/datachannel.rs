//! Data connection set-up and representation: PASV EPSV PORT EPRT TYPE STRU MODE.

use std::net::{IpAddr, SocketAddr, SocketAddrV4};

use wharf_ftp::command::{EpsvArg, ProtectionLevel, TransferType};
use wharf_ftp::listing::{epsv_reply_text, pasv_reply_text};
use wharf_ftp::Reply;

use crate::defender::Offence;
use crate::session::data::{canonical, DataSetup, PassiveListener, PendingPassive};
use crate::session::Session;

async fn listen(s: &mut Session) -> Result<u16, Reply> {
    let config = &s.shared.config;
    let bound = PassiveListener::bind(
        s.local.ip(),
        config.passive_ports,
        s.peer.ip(),
        &config.trusted_proxies,
    );
    match bound.await {
        Ok(listener) => {
            let port = listener.port().map_err(|_| no_passive_port())?;
            let tls = (s.prot == ProtectionLevel::Private).then(|| s.data_tls_context());
            s.data = Some(DataSetup::Passive(PendingPassive::start(listener, tls)));
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

pub async fn pasv(s: &mut Session) -> Reply {
    if s.epsv_all {
        return Reply::new(503, "PASV refused after EPSV ALL.");
    }
    let advertised = match s.shared.config.passive_address {
        Some(IpAddr::V4(v4)) => v4,
        _ => match canonical(s.local.ip()) {
            IpAddr::V4(v4) => v4,
            IpAddr::V6(_) => {
                return Reply::new(425, "PASV cannot carry an IPv6 address: use EPSV.");
            }
        },
    };
    s.data = None;
    match listen(s).await {
        Ok(port) => Reply::new(227, pasv_reply_text(SocketAddrV4::new(advertised, port))),
        Err(r) => r,
    }
}

pub async fn epsv(s: &mut Session, arg: EpsvArg) -> Reply {
    match arg {
        EpsvArg::All => {
            s.epsv_all = true;
            return Reply::new(
                200,
                "EPSV ALL ok: only EPSV will set up data connections now.",
            );
        }
        EpsvArg::Protocol(p) => {
            let ours = if canonical(s.local.ip()).is_ipv4() {
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
    s.data = None;
    match listen(s).await {
        Ok(port) => Reply::new(229, epsv_reply_text(port)),
        Err(r) => r,
    }
}

/// PORT and EPRT. Active connections go only to the control peer's own
/// address and to unprivileged ports, which rules out FTP bounce attacks.
pub fn active(s: &mut Session, target: SocketAddr) -> Reply {
    if !s.shared.config.policy.allow_active {
        return Reply::new(
            502,
            "Active mode is disabled on this server: use PASV or EPSV.",
        );
    }
    if s.epsv_all {
        return Reply::new(503, "PORT and EPRT refused after EPSV ALL.");
    }
    if canonical(target.ip()) != canonical(s.peer.ip()) {
        tracing::warn!(%target, "refused PORT/EPRT to a foreign address (FTP bounce)");
        s.shared.offence(s.client_ip(), Offence::ProtocolAbuse);
        return Reply::new(
            500,
            "Illegal PORT command: data connections go only to your own address.",
        );
    }
    if target.port() < 1024 {
        tracing::warn!(%target, "refused PORT/EPRT to a privileged port");
        s.shared.offence(s.client_ip(), Offence::ProtocolAbuse);
        return Reply::new(500, "Illegal PORT command: the port must be 1024 or above.");
    }
    s.data = Some(DataSetup::Active {
        target,
        local: s.local.ip(),
    });
    Reply::new(200, "PORT command successful. Consider using PASV.")
}

pub fn transfer_type(s: &mut Session, t: TransferType) -> Reply {
    s.transfer_type = t;
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

# shellcheck shell=bash
# benches/peers.sh: the peer FTPS servers of the comparison benchmark
# (vsftpd, ProFTPD, Pure-FTPd from Debian's packages; unFTP from crates.io),
# installed into a private prefix and run on 127.0.0.1 with equivalent TLS
# settings. A library: `source` it (benches/compare.sh does); it defines
#
#   peer_install NAME PREFIX
#   peer_start   NAME PREFIX WORKDIR PORT PASV_MIN PASV_MAX CERT KEY
#   peer_stop    NAME WORKDIR
#   peer_version NAME PREFIX
#
# with NAME one of vsftpd, proftpd, pureftpd, unftp. Needs root. Safe under
# `set -euo pipefail` in the caller: every function returns non-zero (with a
# message on stderr) instead of exiting.
#
# What every server gets (where it can be told so; exceptions inline):
# - TLS 1.3 only, with the ECDSA P-256 certificate and key passed in; the
#   TLS 1.3 cipher suites are the TLS library's defaults (OpenSSL 3.0 for
#   the three C servers, rustls for unFTP), key exchange on P-256 only for
#   the three C servers (see PEER_TLS_GROUPS). EXCEPT unFTP 0.15.2, which
#   speaks TLS 1.2 only and cannot be told otherwise (_peer_conf_unftp);
# - TLS required before USER/PASS and for every data connection (PROT P);
# - the data connection must resume the control connection's TLS session
#   where the server can require it (vsftpd, ProFTPD);
# - one user bench/bench whose home, $WORKDIR/home, is writable and is where
#   a session starts (no chroot: vsftpd and ProFTPD do not chroot by default,
#   Pure-FTPd is told not to, unFTP serves that directory as its root);
# - passive mode on 127.0.0.1 in PASV_MIN..PASV_MAX;
# - no connection limit below 20000 in total or per IP, no bandwidth limit,
#   idle timeouts of 3600 s, no reverse DNS, no transfer log;
# - in the foreground, its pid (the listener; sessions are its descendants
#   for the forking servers) in $WORKDIR/NAME.pid, its output in
#   $WORKDIR/NAME.log.
#
# The same password hash for the three C servers: SHA-512 crypt ($6$, 5000
# rounds, Debian's ENCRYPT_METHOD), so that login costs the same
# verification. unFTP's JSON file takes the password in clear (its other
# choice is PBKDF2-HMAC-SHA256).
#
# The system account `bench` is created (useradd, as benches/src/storage.rs
# does) for every server: vsftpd authenticates it through PAM, and the
# virtual users of ProFTPD (AuthUserFile) and Pure-FTPd (PureDB) run as its
# uid/gid so that the home directory has one owner. unFTP runs as that user.
#
# Notes for the caller (measured on the project VM, 2 vCPUs):
# - Pace the connects. The listen backlogs are small: vsftpd 32 (fixed),
#   ProFTPD 128 (TCPBackLog default), Pure-FTPd 3 + clients/8, unFTP 1024
#   (tokio). A burst of simultaneous connects beyond it gets SYN cookies
#   whose final ACK the full accept queue drops: the client believes it is
#   connected and waits for a 220 that never comes (FTP servers speak
#   first). 200 simultaneous connects lost about half of them on vsftpd;
#   with 16 in flight, none.
# - Processes per logged-in session: vsftpd 3, Pure-FTPd 2, ProFTPD 1,
#   unFTP 0 (one process). 10,000 vsftpd sessions need kernel.pid_max
#   above its 32768 here.
# - Pure-FTPd admits at most half the passive range in clients: 10,000
#   sessions need a range of 20,000+ ports.
#
# Outside $PREFIX and $WORKDIR this touches: the account `bench`
# (/etc/passwd, /etc/shadow, /etc/group), /etc/pam.d/vsftpd-peer (a copy of
# the PAM file of Debian's vsftpd package), library packages that the
# unpacked servers link against (apt-get install), and Pure-FTPd's
# compiled-in /var/run/pure-ftpd (its per-session "ftpwho" scoreboard).

PEER_USER=bench
PEER_PASSWORD=bench
# unFTP release whose command line peer_start uses (see _peer_conf_unftp).
PEER_UNFTP_VERSION=${PEER_UNFTP_VERSION:-0.15.2}
# Connection limits handed to the servers that have one (must stay >= 12000).
PEER_MAX_CLIENTS=20000
# Idle timeouts, seconds.
PEER_IDLE_TIMEOUT=3600

_peer_say() { echo "peers: $*" >&2; }
_peer_fail() {
	echo "peers: error: $*" >&2
	return 1
}

_peer_check_name() {
	case ${1:-} in
	vsftpd | proftpd | pureftpd | unftp) return 0 ;;
	*) _peer_fail "unknown peer '${1:-}' (vsftpd, proftpd, pureftpd or unftp)" ;;
	esac
}

# Debian packages unpacked for each server (the first one names the version).
_peer_packages() {
	case $1 in
	vsftpd) echo vsftpd ;;
	# Debian 12 ships mod_tls.so in proftpd-mod-crypto, not in proftpd-core.
	proftpd) echo proftpd-core proftpd-mod-crypto ;;
	# pure-ftpd has the binaries (pure-ftpd, pure-pw), pure-ftpd-common the
	# Debian wrapper and its config tree, which we do not use.
	pureftpd) echo pure-ftpd pure-ftpd-common ;;
	esac
}

# Runs a command quietly; on failure prints its output and returns non-zero.
_peer_quiet() {
	local out rc=0
	out=$("$@" 2>&1) || rc=$?
	if ((rc != 0)); then
		printf '%s\n' "$out" | tail -n 20 >&2
		_peer_fail "failed ($rc): $*"
		return 1
	fi
}

_peer_apt_updated=
_peer_apt_update() {
	[[ -n $_peer_apt_updated ]] && return 0
	_peer_say "apt-get update"
	_peer_quiet apt-get update -qq || return 1
	_peer_apt_updated=1
}

# ---------------------------------------------------------------------------
# peer_install NAME PREFIX
# Unpacks the server into PREFIX/NAME (dpkg -x; never apt-get install, the
# servers' packages conflict with each other) and apt-get installs the
# library packages it depends on that are missing. Skips when unpacked.
peer_install() {
	(($# == 2)) || {
		_peer_fail "usage: peer_install NAME PREFIX"
		return 1
	}
	local name=$1 prefix=$2
	_peer_check_name "$name" || return 1
	local dir=$prefix/$name
	if [[ $name == unftp ]]; then
		[[ -x $dir/bin/unftp ]] && return 0
		command -v cargo >/dev/null || {
			_peer_fail "cargo not found (needed to build unFTP)"
			return 1
		}
		mkdir -p "$dir" || return 1
		_peer_say "cargo install unftp $PEER_UNFTP_VERSION into $dir (takes minutes)"
		# Default features: auth_jsonfile (--auth-type json) is one of them;
		# FTPS (rustls, aws-lc-rs) is always built.
		_peer_quiet cargo install --locked unftp --version "$PEER_UNFTP_VERSION" \
			--root "$dir" || return 1
		return 0
	fi

	[[ -f $dir/.peer-packages ]] && return 0
	local -a pkgs
	read -ra pkgs <<<"$(_peer_packages "$name")"
	local tmp
	tmp=$(mktemp -d) || return 1
	# apt-get downloads as its sandbox user _apt when that user can write
	# here (else unsandboxed, with a warning).
	chown _apt "$tmp" 2>/dev/null || true
	_peer_say "apt-get download ${pkgs[*]}"
	if ! (cd "$tmp" && apt-get download -qq "${pkgs[@]}" >/dev/null 2>&1); then
		_peer_apt_update || {
			rm -rf "$tmp"
			return 1
		}
		(cd "$tmp" && _peer_quiet apt-get download -qq "${pkgs[@]}") || {
			rm -rf "$tmp"
			return 1
		}
	fi
	mkdir -p "$dir" || return 1
	local deb p missing=() manifest=""
	for p in "${pkgs[@]}"; do
		deb=$(ls "$tmp"/"${p}"_*.deb) || {
			rm -rf "$tmp"
			_peer_fail "no .deb for $p"
			return 1
		}
		_peer_say "dpkg -x $(basename "$deb") $dir"
		dpkg-deb -x "$deb" "$dir" || {
			rm -rf "$tmp"
			_peer_fail "dpkg -x $deb failed"
			return 1
		}
		manifest+="$(dpkg-deb -f "$deb" Package Version | awk '{print $2}' | paste -sd' ')"$'\n'
		# Library dependencies (lib*), first alternative of each; the others
		# (debconf, adduser, init scripts, inetd, ...) serve the packaged
		# daemon setup, which we do not use.
		local dep
		while read -r dep; do
			[[ -z $dep || $dep != lib* ]] && continue
			dpkg-query -W -f='${Status}' "$dep" 2>/dev/null | grep -q 'ok installed' ||
				missing+=("$dep")
		done < <(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed 's/|.*//; s/(.*//; s/^ *//; s/ *$//')
	done
	rm -rf "$tmp"
	if ((${#missing[@]})); then
		_peer_apt_update || return 1
		_peer_say "apt-get install ${missing[*]}"
		DEBIAN_FRONTEND=noninteractive _peer_quiet apt-get install -y -qq \
			--no-install-recommends "${missing[@]}" || return 1
	fi
	# Every unpacked binary and module must find its libraries.
	local f notfound=""
	while IFS= read -r -d '' f; do
		notfound+=$({ ldd "$f" 2>/dev/null || true; } | awk -v f="$f" '/not found/ {print f ": " $1}')
	done < <(find "$dir/usr/sbin" "$dir/usr/bin" "$dir/usr/lib" -type f \( -perm -u+x -o -name '*.so' \) -print0 2>/dev/null)
	if [[ -n $notfound ]]; then
		_peer_fail "unresolved libraries: $notfound"
		return 1
	fi
	printf '%s' "$manifest" >"$dir/.peer-packages"
}

# ---------------------------------------------------------------------------
# peer_version NAME PREFIX  ->  e.g. "vsftpd 3.0.3 (Debian 3.0.3-13+b2)"
peer_version() {
	(($# == 2)) || {
		_peer_fail "usage: peer_version NAME PREFIX"
		return 1
	}
	local name=$1 prefix=$2
	_peer_check_name "$name" || return 1
	if [[ $name == unftp ]]; then
		local bin=$prefix/unftp/bin/unftp v
		[[ -x $bin ]] || {
			_peer_fail "unftp is not installed in $prefix/unftp"
			return 1
		}
		# cargo install's record: "unftp 0.15.2 (registry+...)" = ["unftp"]. (Its
		# --version shows `git describe` at build time: empty from crates.io.)
		v=$(grep -o '^"unftp [^ ]*' "$prefix/unftp/.crates.toml" 2>/dev/null | head -n 1) || true
		v=${v#\"unftp }
		[[ -n $v ]] || v=$("$bin" --version 2>/dev/null | awk 'NR == 1 {print $2}') || true
		echo "unftp ${v:-unknown} (crates.io)"
		return 0
	fi
	local file=$prefix/$name/.peer-packages ver up label
	[[ -f $file ]] || {
		_peer_fail "$name is not installed in $prefix/$name"
		return 1
	}
	read -r _ ver <"$file"
	up=${ver#*:}   # epoch
	up=${up%-*}    # Debian revision
	up=${up%%+*}   # +dfsg and the like
	case $name in
	vsftpd) label=vsftpd ;;
	proftpd) label=ProFTPD ;;
	pureftpd) label=Pure-FTPd ;;
	esac
	echo "$label $up (Debian $ver)"
}

# ---------------------------------------------------------------------------
# Helpers for peer_start.

# 0 when something on 127.0.0.1:$1 answers with a 220 line within 2 s.
_peer_greets() {
	(
		exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
		IFS= read -r -t 2 line <&3 || exit 1
		[[ $line == 220* ]]
	) 2>/dev/null
}

# 0 when something accepts TCP connections on 127.0.0.1:$1.
_peer_port_busy() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Creates or updates the system account and its home; sets the password
# hash. Prints "uid gid".
_peer_account() {
	local home=$1 hash=$2
	if ! id "$PEER_USER" >/dev/null 2>&1; then
		_peer_say "useradd $PEER_USER"
		local group=--user-group
		getent group "$PEER_USER" >/dev/null && group="--gid=$PEER_USER"
		_peer_quiet useradd --no-create-home --home-dir "$home" --shell /bin/sh \
			"$group" "$PEER_USER" || return 1
	elif [[ $(getent passwd "$PEER_USER" | cut -d: -f6) != "$home" ]]; then
		_peer_quiet usermod --home "$home" "$PEER_USER" || return 1
	fi
	printf '%s:%s\n' "$PEER_USER" "$hash" | chpasswd -e || {
		_peer_fail "chpasswd failed"
		return 1
	}
	mkdir -p "$home" || return 1
	chown "$PEER_USER:" "$home" && chmod 755 "$home" || return 1
	# Every server runs its sessions as that user: it must reach the home.
	if ! runuser -u "$PEER_USER" -- test -w "$home"; then
		_peer_fail "$PEER_USER cannot write $home (a parent directory not searchable by others?)"
		return 1
	fi
	echo "$(id -u "$PEER_USER") $(id -g "$PEER_USER")"
}

# Key exchange (PEER_TLS_GROUPS): Debian's vsftpd fixes its ECDH group at
# P-256 (a Debian patch calls SSL_CTX_set_tmp_ecdh(prime256v1)), so ProFTPD
# (TLSECDHCurve) and Pure-FTPd (OpenSSL config) are held to P-256 as well;
# unFTP has no option (rustls defaults). A client whose first key share is
# another group (X25519, or rustls' X25519MLKEM768) costs these servers a
# HelloRetryRequest, one more round trip: the benchmark client should offer
# P-256 first.
PEER_TLS_GROUPS=P-256

# OpenSSL configuration that sets the minimum protocol version to TLS 1.3
# (and the groups) for every SSL_CTX of a process (OPENSSL_CONF; OpenSSL
# >= 1.1.1 loads it on initialisation; the server's own settings made after
# SSL_CTX_new still win). Used for the servers that have no TLS-version
# option.
_peer_openssl_tls13_conf() {
	cat >"$1" <<EOF
# Written by benches/peers.sh: TLS 1.3 only for every SSL_CTX of the process.
openssl_conf = peer_init
[peer_init]
ssl_conf = peer_ssl
[peer_ssl]
system_default = peer_tls
[peer_tls]
MinProtocol = TLSv1.3
Groups = $PEER_TLS_GROUPS
EOF
}

# TLS <= 1.2 cipher list given to the servers that take one: irrelevant while
# TLS 1.3 is the only version, set so that the ECDSA certificate would work
# if it were not.
PEER_TLS12_CIPHERS=ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305

# ---------------------------------------------------------------------------
# peer_start NAME PREFIX WORKDIR PORT PASV_MIN PASV_MAX CERT KEY
peer_start() {
	(($# == 8)) || {
		_peer_fail "usage: peer_start NAME PREFIX WORKDIR PORT PASV_MIN PASV_MAX CERT KEY"
		return 1
	}
	local name=$1 prefix=$2 workdir=$3 port=$4 pmin=$5 pmax=$6 cert=$7 key=$8
	_peer_check_name "$name" || return 1
	local n
	for n in "$port" "$pmin" "$pmax"; do
		if ! [[ $n =~ ^[0-9]+$ ]] || ((n < 1 || n > 65535)); then
			_peer_fail "not a port number: $n"
			return 1
		fi
	done
	((pmin <= pmax)) || {
		_peer_fail "empty passive range $pmin-$pmax"
		return 1
	}
	[[ -r $cert && -r $key ]] || {
		_peer_fail "cannot read $cert or $key"
		return 1
	}
	# Not every server says why it cannot load them (Pure-FTPd logs to
	# syslog only, which is off): check the pair here.
	local certpub keypub
	certpub=$(openssl x509 -in "$cert" -noout -pubkey 2>/dev/null) || certpub=
	keypub=$(openssl pkey -in "$key" -pubout 2>/dev/null) || keypub=
	if [[ -z $certpub || $certpub != "$keypub" ]]; then
		_peer_fail "$cert and $key are not a PEM certificate and its private key"
		return 1
	fi
	mkdir -p "$workdir" || return 1
	workdir=$(cd "$workdir" && pwd) || return 1
	prefix=$(cd "$prefix" && pwd) || {
		_peer_fail "no prefix $2 (run peer_install)"
		return 1
	}
	cert=$(realpath "$cert") && key=$(realpath "$key") || return 1
	chmod 755 "$workdir" || return 1
	local pidfile=$workdir/$name.pid log=$workdir/$name.log
	if [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
		_peer_fail "$name already running (pid $(cat "$pidfile"))"
		return 1
	fi
	if _peer_port_busy "$port"; then
		_peer_fail "127.0.0.1:$port is already in use"
		return 1
	fi

	local home=$workdir/home hash ids uid gid
	hash=$(openssl passwd -6 "$PEER_PASSWORD") || return 1
	ids=$(_peer_account "$home" "$hash") || return 1
	read -r uid gid <<<"$ids"

	local -a cmd env=()
	case $name in
	vsftpd) _peer_conf_vsftpd || return 1 ;;
	proftpd) _peer_conf_proftpd || return 1 ;;
	pureftpd) _peer_conf_pureftpd || return 1 ;;
	unftp) _peer_conf_unftp || return 1 ;;
	esac

	# The server runs in its own process group (pgid = its pid) so that
	# peer_stop can signal it and its sessions at once. setsid(1) execs
	# without forking when the subshell is not a group leader (no job
	# control); with job control the subshell already leads its own group.
	(
		ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
		cd "$workdir" || exit 1
		if [[ $(ps -o pgid= -p "$BASHPID" | tr -d ' ') != "$BASHPID" ]]; then
			exec setsid env "${env[@]}" "${cmd[@]}"
		fi
		exec env "${env[@]}" "${cmd[@]}"
	) </dev/null >"$log" 2>&1 &
	local pid=$!
	# Out of the job table: no "Killed" notice from the caller's shell when
	# peer_stop kills it (bash still reaps it).
	disown "$pid" 2>/dev/null || true
	echo "$pid" >"$pidfile"

	# Where it says why it failed: its output, and ProFTPD's SystemLog.
	local -a logs=("$log")
	[[ $name != proftpd ]] || logs+=("$workdir/proftpd/system.log")
	local deadline=$((SECONDS + 20))
	while ((SECONDS < deadline)); do
		if ! _peer_alive "$pid"; then
			_peer_fail "$name exited during start-up; last lines of ${logs[*]}:"
			tail -n 15 "${logs[@]}" >&2 2>/dev/null || true
			wait "$pid" 2>/dev/null || true
			rm -f "$pidfile"
			return 1
		fi
		if _peer_greets "$port"; then
			return 0
		fi
		sleep 0.2
	done
	_peer_fail "$name gave no 220 greeting on 127.0.0.1:$port within 20 s; last lines of ${logs[*]}:"
	tail -n 15 "${logs[@]}" >&2 2>/dev/null || true
	peer_stop "$name" "$workdir" || true
	return 1
}

# Each _peer_conf_* writes the configuration under $workdir and fills cmd
# (and env) for peer_start; they use peer_start's locals.

_peer_conf_vsftpd() {
	local bin=$prefix/vsftpd/usr/sbin/vsftpd
	[[ -x $bin ]] || {
		_peer_fail "vsftpd not installed in $prefix/vsftpd"
		return 1
	}
	# PAM service: Debian's own /etc/pam.d/vsftpd from the package (ftpusers
	# deny list, pam_shells, common-auth/account/session), under another
	# name so that it cannot collide with an installed vsftpd package.
	local pam=/etc/pam.d/vsftpd-peer
	if ! cmp -s "$prefix/vsftpd/etc/pam.d/vsftpd" "$pam"; then
		_peer_say "install $pam"
		install -m 644 "$prefix/vsftpd/etc/pam.d/vsftpd" "$pam" || return 1
	fi
	mkdir -p "$workdir/vsftpd/empty" && chmod 755 "$workdir/vsftpd/empty" || return 1
	_peer_openssl_tls13_conf "$workdir/vsftpd/openssl.cnf" || return 1
	cat >"$workdir/vsftpd/vsftpd.conf" <<EOF
# Written by benches/peers.sh.
listen=YES
listen_ipv6=NO
listen_address=127.0.0.1
listen_port=$port
# Foreground: our pid is the listener; each session is a forked child with
# its own helpers (three processes per logged-in session, measured).
background=NO
# vsftpd's defaults, as in benches/src/storage.rs: each session in new PID,
# IPC and network namespaces (the network one measured at about 0.35 MB of
# kernel memory per session).
isolate=YES
isolate_network=YES
anonymous_enable=NO
local_enable=YES
write_enable=YES
local_umask=022
chroot_local_user=NO
pam_service_name=vsftpd-peer
nopriv_user=nobody
secure_chroot_dir=$workdir/vsftpd/empty
# As benches/src/storage.rs (the sandbox refuses syscalls on some kernels).
seccomp_sandbox=NO
connect_from_port_20=NO
dirmessage_enable=NO

# TLS. vsftpd 3.0.3 has switches for SSLv2, SSLv3 and TLS 1.0 only and
# cannot be told to refuse TLS 1.1/1.2; TLS 1.3-only comes from the
# OPENSSL_CONF that peer_start passes (MinProtocol = TLSv1.3). The
# "rsa_" option names are historical: they load any key type.
ssl_enable=YES
ssl_sslv2=NO
ssl_sslv3=NO
ssl_tlsv1=NO
rsa_cert_file=$cert
rsa_private_key_file=$key
ssl_ciphers=$PEER_TLS12_CIPHERS
ssl_request_cert=NO
require_cert=NO
implicit_ssl=NO
force_local_logins_ssl=YES
force_local_data_ssl=YES
# Data connections must resume the control connection's TLS session.
require_ssl_reuse=YES

pasv_enable=YES
pasv_address=127.0.0.1
pasv_min_port=$pmin
pasv_max_port=$pmax

# 0 = unlimited.
max_clients=0
max_per_ip=0
idle_session_timeout=$PEER_IDLE_TIMEOUT
data_connection_timeout=$PEER_IDLE_TIMEOUT
accept_timeout=600
connect_timeout=600
# vsftpd resolves no names (this build has no reverse_lookup_enable).
tcp_wrappers=NO

xferlog_enable=NO
dual_log_enable=NO
syslog_enable=NO
log_ftp_protocol=NO
vsftpd_log_file=$workdir/vsftpd/xfer.log
EOF
	env=("OPENSSL_CONF=$workdir/vsftpd/openssl.cnf")
	cmd=("$bin" "$workdir/vsftpd/vsftpd.conf")
}

_peer_conf_proftpd() {
	local root=$prefix/proftpd
	local bin=$root/usr/sbin/proftpd
	[[ -x $bin && -f $root/usr/lib/proftpd/mod_tls.so ]] || {
		_peer_fail "proftpd (with mod_tls.so) not installed in $root"
		return 1
	}
	local d=$workdir/proftpd
	mkdir -p "$d" || return 1
	# Virtual user (mod_auth_file): crypt() hash, the system account's ids.
	printf '%s:%s:%s:%s::%s:/bin/sh\n' "$PEER_USER" "$hash" "$uid" "$gid" "$home" >"$d/passwd"
	printf '%s:x:%s:\n' "$PEER_USER" "$gid" >"$d/group"
	chmod 600 "$d/passwd" "$d/group"
	cat >"$d/proftpd.conf" <<EOF
# Written by benches/peers.sh.
ServerType standalone
ServerName "wharf-bench proftpd"
Port $port
DefaultAddress 127.0.0.1
SocketBindTight on
UseIPv6 off
User nobody
Group nogroup
PidFile $d/proftpd.daemon.pid
ScoreboardFile $d/proftpd.scoreboard

# Debian builds mod_tls as a DSO (shipped in proftpd-mod-crypto).
ModulePath $root/usr/lib/proftpd
LoadModule mod_tls.c

ControlsEngine off
# mod_delay pads every USER/PASS to the median login time seen so far, an
# anti-timing measure that vsftpd and unFTP do not take: off. (Pure-FTPd
# sleeps 0-15 ms before each PASS, with no switch.)
DelayEngine off
LangEngine off
WtmpLog off
UseLastlog off
UseFtpUsers off
UseReverseDNS off
TransferLog NONE
# Its system log: warnings and errors only (no per-session lines), to a
# file (-q keeps them off stderr; fatal configuration errors still go there).
SystemLog $d/system.log
SyslogLevel warn

# Only the file below authenticates (no PAM, no /etc/passwd).
AuthOrder mod_auth_file.c
AuthPAM off
AuthUserFile $d/passwd
AuthGroupFile $d/group
RequireValidShell off

MaxInstances $PEER_MAX_CLIENTS
MaxClients none
MaxClientsPerHost none
MaxConnectionsPerHost none
MaxHostsPerUser none
MaxClientsPerUser none
TimeoutLogin 600
TimeoutIdle $PEER_IDLE_TIMEOUT
TimeoutNoTransfer $PEER_IDLE_TIMEOUT
TimeoutStalled $PEER_IDLE_TIMEOUT

PassivePorts $pmin $pmax
Umask 022
AllowOverwrite on

<IfModule mod_tls.c>
  TLSEngine on
  TLSProtocol TLSv1.3
  TLSECCertificateFile $cert
  TLSECCertificateKeyFile $key
  TLSCipherSuite $PEER_TLS12_CIPHERS
  # Key exchange on P-256 only, like vsftpd (see PEER_TLS_GROUPS).
  TLSECDHCurve prime256v1
  # Control and data channels.
  TLSRequired on
  TLSVerifyClient off
  TLSRenegotiate none
  # No TLSOptions NoSessionReuseRequired: mod_tls refuses a data connection
  # that does not resume the control connection's session (its default).
</IfModule>
EOF
	# -n: foreground (no fork, no setsid); -q: no log lines on stderr.
	cmd=("$bin" -n -q -c "$d/proftpd.conf")
}

_peer_conf_pureftpd() {
	local root=$prefix/pureftpd
	local bin=$root/usr/sbin/pure-ftpd pw=$root/usr/bin/pure-pw
	[[ -x $bin && -x $pw ]] || {
		_peer_fail "pure-ftpd not installed in $root"
		return 1
	}
	local d=$workdir/pureftpd
	mkdir -p "$d" || return 1
	# Virtual user in PureDB, compiled by the package's pure-pw. The line is
	# written here rather than by `pure-pw useradd` because useradd always
	# hashes with argon2id tuned to take 250-1000 ms on the machine at hand,
	# which would make logins far dearer than on the other servers; with
	# the same $6$ hash as theirs. Home without "/./": no chroot.
	printf '%s:%s:%s:%s::%s::::::::::::\n' "$PEER_USER" "$hash" "$uid" "$gid" "$home" >"$d/pureftpd.passwd"
	chmod 600 "$d/pureftpd.passwd"
	rm -f "$d/pureftpd.pdb"
	_peer_quiet "$pw" mkdb "$d/pureftpd.pdb" -f "$d/pureftpd.passwd" || return 1
	_peer_openssl_tls13_conf "$d/openssl.cnf" || return 1
	# Pure-FTPd caps its client count at half the passive range (two ports
	# per client), whatever -c says.
	local cap=$(((pmax - pmin + 1) / 2))
	if ((cap < 12000)); then
		_peer_say "warning: Pure-FTPd admits at most $cap clients with passive range $pmin-$pmax (half the range)"
	fi
	env=("OPENSSL_CONF=$d/openssl.cnf")
	# From its source (github jedisct1/pure-ftpd, tag 1.0.50, src/tls.c and
	# src/ftpd.c). TLS: it enables TLS 1.2 and 1.3 itself (no option to pick versions;
	# -J sets the TLS <= 1.2 cipher list only): TLS 1.3-only comes from the
	# OPENSSL_CONF (MinProtocol = TLSv1.3), which it loads at start-up.
	# -Y 3: TLS required for the control channel and for data (PROT P).
	# Session reuse on data connections is not required (no option): the
	# server-side session cache allows TLS 1.2 session-ID resumption, but it
	# sends no TLS 1.3 tickets (SSL_CTX_set_num_tickets(ctx, 0)), so under
	# TLS 1.3 every data connection is a full handshake.
	cmd=("$bin"
		-S "127.0.0.1,$port"
		-l "puredb:$d/pureftpd.pdb"
		-E                                # no anonymous
		-H                                # no reverse DNS
		-f none                           # no syslog (and no transfer log: no -O)
		-g "$d/pure-ftpd.daemon.pid"
		-p "$pmin:$pmax"
		-P 127.0.0.1
		-c "$PEER_MAX_CLIENTS"            # total, capped as said above
		-C "$PEER_MAX_CLIENTS"            # per IP
		-I $((PEER_IDLE_TIMEOUT / 60))    # minutes
		-U 133:022
		-Y 3
		-2 "$cert,$key"
		-J "$PEER_TLS12_CIPHERS")
}

_peer_conf_unftp() {
	local bin=$prefix/unftp/bin/unftp
	[[ -x $bin ]] || {
		_peer_fail "unftp not installed in $prefix/unftp (peer_install unftp)"
		return 1
	}
	local d=$workdir/unftp
	mkdir -p "$d" || return 1
	printf '[{"username": "%s", "password": "%s"}]\n' "$PEER_USER" "$PEER_PASSWORD" >"$d/users.json"
	# It runs as $PEER_USER, so it needs its own readable copies.
	install -m 600 -o "$PEER_USER" "$cert" "$d/cert.pem" &&
		install -m 600 -o "$PEER_USER" "$key" "$d/key.pem" &&
		chown "$PEER_USER" "$d/users.json" && chmod 600 "$d/users.json" || return 1
	# Flags from unFTP v0.15.2's src/args.rs and src/main.rs (github
	# bolcom/unFTP, tag v0.15.2; libunftp 0.21.1):
	# - TLS: unFTP 0.15.2 hard-codes libunftp's TlsFlags::V1_2 |
	#   RESUMPTION_SESS_ID | RESUMPTION_TICKETS (main.rs), so it speaks
	#   TLS 1.2 ONLY: there is no flag for TLS 1.3. Resumption (session IDs
	#   and tickets) is offered, never required.
	# - --ftps-required-on-*-channel all: AUTH TLS before USER, PROT P for
	#   data.
	# - it has no connection limits; --failed-logins-policy is off unless
	#   given.
	# - --bind-address-http: its Prometheus/health HTTP listener cannot be
	#   turned off (default 0.0.0.0:8080): port 0 on loopback.
	# - logs go to stderr; warn hides the per-session info lines.
	cmd=(setpriv --reuid="$PEER_USER" --regid="$gid" --init-groups --
		"$bin"
		--bind-address="127.0.0.1:$port"
		--bind-address-http=127.0.0.1:0
		--passive-host=127.0.0.1
		--passive-ports="$pmin-$pmax"
		--ftps-certs-file="$d/cert.pem"
		--ftps-key-file="$d/key.pem"
		--ftps-required-on-control-channel=all
		--ftps-required-on-data-channel=all
		--ftps-client-auth=off
		--auth-type=json
		--auth-json-path="$d/users.json"
		--sbe-type=filesystem
		--root-dir="$home"
		--idle-session-timeout="$PEER_IDLE_TIMEOUT"
		--log-level=warn)
}

# ---------------------------------------------------------------------------
# peer_stop NAME WORKDIR
# Freezes the server's process tree (SIGSTOP until no new process appears),
# kills it with SIGKILL, waits until every process of it is gone.

# Prints the given pids and all their descendants.
_peer_tree() {
	ps -e -o pid=,ppid= | awk -v roots="$*" '
		{ kids[$2] = kids[$2] " " $1 }
		END {
			n = split(roots, q, " ")
			for (i = 1; i <= n; i++) seen[q[i]] = 1
			for (i = 1; i <= n; i++) {
				print q[i]
				m = split(kids[q[i]], k, " ")
				for (j = 1; j <= m; j++)
					if (!(k[j] in seen)) { seen[k[j]] = 1; q[++n] = k[j] }
			}
		}'
}

# 0 while pid exists and is not a zombie.
_peer_alive() {
	local state
	state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
	[[ -n $state && $state != Z ]]
}

peer_stop() {
	(($# == 2)) || {
		_peer_fail "usage: peer_stop NAME WORKDIR"
		return 1
	}
	local name=$1 workdir=$2
	_peer_check_name "$name" || return 1
	local pidfile=$workdir/$name.pid pid
	[[ -f $pidfile ]] || return 0
	pid=$(cat "$pidfile")
	[[ $pid =~ ^[0-9]+$ ]] || {
		_peer_fail "bad pid file $pidfile"
		return 1
	}
	local group=""
	# Signal the process group too when the server leads its own.
	if [[ $(ps -o pgid= -p "$pid" 2>/dev/null | tr -d ' ') == "$pid" ]]; then
		group=$pid
	fi
	local -a all=() prev=()
	local i
	for ((i = 0; i < 50; i++)); do
		[[ -z $group ]] || kill -STOP -- "-$group" 2>/dev/null || true
		mapfile -t all < <(_peer_tree "$pid" "${all[@]}" | sort -un)
		kill -STOP "${all[@]}" 2>/dev/null || true
		[[ ${all[*]} == "${prev[*]}" ]] && break
		prev=("${all[@]}")
	done
	[[ -z $group ]] || kill -KILL -- "-$group" 2>/dev/null || true
	kill -KILL "${all[@]}" 2>/dev/null || true
	# Reap the listener when it is our child.
	wait "$pid" 2>/dev/null || true
	local p left deadline=$((SECONDS + 10))
	while :; do
		left=""
		for p in "${all[@]}"; do
			_peer_alive "$p" && left+=" $p"
		done
		[[ -z $left ]] && break
		if ((SECONDS >= deadline)); then
			_peer_fail "$name: processes still alive after SIGKILL:$left"
			return 1
		fi
		sleep 0.1
	done
	rm -f "$pidfile"
}

# Helpers the benchmark scripts share (a library: `source` it): a free TCP
# port on 127.0.0.1, and waiting for an FTP server's 220 greeting.

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Waits up to a minute for `220` on 127.0.0.1:PORT.
wait_greeting() {
  local port=$1
  for _ in $(seq 1 300); do
    if python3 - "$port" <<'PY' 2>/dev/null; then return 0; fi
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1)
sys.exit(0 if s.recv(64).startswith(b"220") else 1)
PY
    sleep 0.2
  done
  echo "no 220 greeting on port $port" >&2
  return 1
}

// FTPS round trip with github.com/jlaffaye/ftp (Debian's 2022 snapshot).
//
// Build (offline, GOPATH mode against Debian's source packages):
//
//	GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE=$TMP/gocache go build -o $TMP/ftps-go tests/clients/go/ftps_go.go
//
// Run:
//
//	$TMP/ftps-go [-tls 1.2|1.3] HOST PORT USER PASS explicit|implicit LOCAL_DIR N
//
// This library dials each data connection and finishes its TLS handshake
// before it sends STOR/RETR, so the server sees the handshake ahead of the
// command; that ordering is what this driver exists to exercise.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jlaffaye/ftp"
)

// Dial and TLS handshake timeout; the watchdog is a little longer so the
// library's own error (with the server's reply) wins when there is one.
const opTimeout = 30 * time.Second
const stepTimeout = 40 * time.Second

// The library sets no read deadlines on the control connection, so a
// watchdog bounds every step instead.
var watchdog *time.Timer
var step string

func arm(s string) {
	step = s
	watchdog.Reset(stepTimeout)
}

func fail(what string, err error) {
	msg := "unknown error"
	if err != nil {
		// go-multierror spreads one reply over several lines; tests grep one line.
		msg = strings.Join(strings.Fields(err.Error()), " ")
		var ne net.Error
		if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
			msg += fmt.Sprintf(" (timed out after %s)", opTimeout)
		}
	}
	fmt.Printf("FAIL: %s: %s\n", what, msg)
	os.Exit(1)
}

func main() {
	tlsVersion := flag.String("tls", "", "pin the TLS version: 1.2 or 1.3")
	flag.Parse()
	args := flag.Args()
	versions := map[string]uint16{"": 0, "1.2": tls.VersionTLS12, "1.3": tls.VersionTLS13}
	pinned, ok := versions[*tlsVersion]
	if len(args) != 7 || !ok {
		fmt.Fprintln(os.Stderr, "usage: ftps-go [-tls 1.2|1.3] HOST PORT USER PASS explicit|implicit LOCAL_DIR N")
		os.Exit(2)
	}
	host, port, user, pass, mode, dir := args[0], args[1], args[2], args[3], args[4], args[5]
	n, err := strconv.Atoi(args[6])
	if err != nil || n < 1 {
		fmt.Fprintln(os.Stderr, "N must be a positive integer")
		os.Exit(2)
	}
	watchdog = time.AfterFunc(stepTimeout, func() {
		fmt.Printf("FAIL: %s: timed out after %s\n", step, stepTimeout)
		os.Exit(3)
	})

	// Every handshake passes through here, the control connection's first;
	// the counts let a test see whether the server resumed data sessions.
	handshakes, resumed, version := 0, 0, uint16(0)
	cfg := &tls.Config{
		VerifyConnection: func(cs tls.ConnectionState) error {
			handshakes++
			if cs.DidResume {
				resumed++
			}
			version = cs.Version
			return nil
		},
		InsecureSkipVerify: true,
		ClientSessionCache: tls.NewLRUClientSessionCache(32),
		// Go keys cached sessions by ServerName, or by "ip:port" when it is
		// empty; the data dials fill ServerName from the host, so without this
		// an explicit-TLS control session would never be offered for resumption.
		ServerName: host,
	}
	if pinned != 0 {
		cfg.MinVersion, cfg.MaxVersion = pinned, pinned
	}
	var tlsOpt ftp.DialOption
	switch mode {
	case "explicit":
		tlsOpt = ftp.DialWithExplicitTLS(cfg)
	case "implicit":
		tlsOpt = ftp.DialWithTLS(cfg)
	default:
		fmt.Fprintln(os.Stderr, "mode must be explicit or implicit")
		os.Exit(2)
	}

	arm("connect")
	c, err := ftp.Dial(net.JoinHostPort(host, port), tlsOpt, ftp.DialWithTimeout(opTimeout))
	if err != nil {
		fail("connect", err)
	}
	arm("login")
	// Login also sends TYPE I, PBSZ 0 and PROT P because a TLS config is set.
	if err := c.Login(user, pass); err != nil {
		fail("login", err)
	}

	if err := os.MkdirAll(dir, 0o755); err != nil {
		fail("mkdir "+dir, err)
	}
	sent := make([][]byte, n)
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("go-f%d", i)
		// Odd sizes so the last TLS record of a transfer is a partial one.
		sent[i] = make([]byte, 20000+i*4099)
		rand.Read(sent[i])
		if err := os.WriteFile(filepath.Join(dir, name), sent[i], 0o644); err != nil {
			fail("write "+name, err)
		}
		arm("STOR " + name)
		if err := c.Stor(name, bytes.NewReader(sent[i])); err != nil {
			fail("STOR "+name, err)
		}
		fmt.Printf("STOR %s %d bytes ok\n", name, len(sent[i]))
	}
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("go-f%d", i)
		arm("RETR " + name)
		r, err := c.Retr(name)
		if err != nil {
			fail("RETR "+name, err)
		}
		got, err := io.ReadAll(r)
		if err != nil {
			fail("RETR "+name+" (reading data)", err)
		}
		// Close reads the 226 from the control connection.
		if err := r.Close(); err != nil {
			fail("RETR "+name+" (closing)", err)
		}
		if !bytes.Equal(got, sent[i]) {
			fail("RETR "+name, fmt.Errorf("content differs: sent %d bytes, got %d", len(sent[i]), len(got)))
		}
		fmt.Printf("RETR %s %d bytes ok\n", name, len(got))
	}
	arm("QUIT")
	if err := c.Quit(); err != nil {
		fail("QUIT", err)
	}
	watchdog.Stop()
	names := map[uint16]string{tls.VersionTLS12: "TLSv1.2", tls.VersionTLS13: "TLSv1.3"}
	fmt.Printf("OK: %d files uploaded, downloaded and verified (%s, %s, %d/%d data connections resumed)\n",
		n, mode, names[version], resumed, handshakes-1)
}

// FTPS round trip with Apache Commons Net 3.9 (Debian's libcommons-net-java) on JDK 17.
//
// Build:
//   javac -cp /usr/share/java/commons-net.jar -d $OUT tests/clients/java/FtpsCommonsNet.java
// Run:
//   java --add-opens java.base/sun.security.ssl=ALL-UNNAMED \
//        --add-opens java.base/sun.security.util=ALL-UNNAMED \
//        -cp /usr/share/java/commons-net.jar:$OUT FtpsCommonsNet \
//        [--reuse|--no-reuse] [--tls 1.2|1.3] [--no-tickets] HOST PORT USER PASS explicit|implicit LOCAL_DIR N
// (The --add-opens flags are only needed for --reuse; without them the first
// transfer fails with "FAIL: STOR java-f0: ... session reuse hook: ...".)
//
// Commons Net sends STOR/RETR first and starts the data connection's TLS
// handshake after the server's 150, the opposite order to the Go and aioftp
// drivers. The stock client never offers the control connection's session on
// the data connection, so servers that require session reuse reject it;
// --reuse adds the widely used workaround of planting that session in the
// JDK's client session cache under the data connection's host:port.
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.lang.reflect.Field;
import java.lang.reflect.Method;
import java.net.Socket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.Arrays;
import java.util.Locale;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLSession;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.TrustManager;
import org.apache.commons.net.ftp.FTP;
import org.apache.commons.net.ftp.FTPSClient;
import org.apache.commons.net.util.TrustManagerUtils;

public class FtpsCommonsNet extends FTPSClient {
    private static final int TIMEOUT_MS = 30_000;

    private final boolean reuse;
    private final SSLContext ssl;
    private String dataProtocol = "?";

    FtpsCommonsNet(boolean implicit, SSLContext ssl, boolean reuse) {
        super(implicit, ssl);
        this.ssl = ssl;
        this.reuse = reuse;
    }

    // Called after the server's 150 and before the data handshake starts, so
    // the JDK finds the planted session when it builds its ClientHello.
    @Override
    protected void _prepareDataSocket_(Socket data) throws IOException {
        if (!reuse || !(data instanceof SSLSocket) || !(_socket_ instanceof SSLSocket)) {
            return;
        }
        SSLSession control = ((SSLSocket) _socket_).getSession();
        if (!control.isValid()) {
            return;
        }
        try {
            Object context = ssl.getClientSessionContext();
            Field field = context.getClass().getDeclaredField("sessionHostPortCache");
            field.setAccessible(true);
            Object cache = field.get(context);
            Method get = cache.getClass().getDeclaredMethod("get", Object.class);
            Method put = cache.getClass().getDeclaredMethod("put", Object.class, Object.class);
            get.setAccessible(true);
            put.setAccessible(true);
            // Under TLS 1.3 the control handshake's own session cannot be
            // resumed; only the sessions made from the server's tickets can.
            // The JDK uses each of those once, and caches them under the
            // host:port of the connection that received the ticket: the
            // previous data connection's (a server that hands out a ticket on
            // every data connection), else the control connection's.
            Object session = lastDataKey == null ? null : get.invoke(cache, lastDataKey);
            if (session == null) {
                session = get.invoke(cache, key(control.getPeerHost(), control.getPeerPort()));
            }
            if (session == null) {
                session = control;
            }
            // The JDK looks sessions up by the host string and port the data
            // SSLSocket was created with: Commons Net uses the passive ones.
            lastDataKey = key(getPassiveHost(), getPassivePort());
            put.invoke(cache, lastDataKey, session);
        } catch (ReflectiveOperationException | RuntimeException e) {
            throw new IOException("session reuse hook: " + e, e);
        }
    }

    private String lastDataKey;

    private static String key(String host, int port) {
        return (host + ":" + port).toLowerCase(Locale.ENGLISH);
    }

    // Records the negotiated protocol so the summary line can show it.
    @Override
    protected Socket _openDataConnection_(String command, String arg) throws IOException {
        Socket s = super._openDataConnection_(command, arg);
        if (s instanceof SSLSocket) {
            dataProtocol = ((SSLSocket) s).getSession().getProtocol();
        }
        return s;
    }

    private static void fail(String what, String why) {
        System.out.println("FAIL: " + what + ": " + why.trim().replaceAll("\\s+", " "));
        System.exit(1);
    }

    // After an exception mid-transfer the server's verdict (e.g. "522 ...")
    // may still be waiting on the control connection; fetch it briefly.
    private String pendingReply() {
        try {
            _socket_.setSoTimeout(5_000);
            getReply();
            return getReplyString();
        } catch (IOException e) {
            return "(no further reply: " + e.getMessage() + ")";
        }
    }

    private void check(boolean ok, String what) {
        if (!ok) {
            fail(what, getReplyString());
        }
    }

    public static void main(String[] args) throws Exception {
        boolean reuse = false;
        String tls = null;
        int i = 0;
        for (; i < args.length && args[i].startsWith("--"); i++) {
            switch (args[i]) {
                case "--reuse": reuse = true; break;
                case "--no-reuse": reuse = false; break;
                case "--tls": tls = args[++i]; break;
                // vsftpd issues TLS 1.2 tickets with a lifetime of 2^31-1 s,
                // which the JDK discards (over 7 days) while still sending an
                // empty ticket extension, so vsftpd resumes nothing; without
                // tickets it falls back to its session-id cache. Must be set
                // before the first SSLContext is made.
                case "--no-tickets":
                    System.setProperty("jdk.tls.client.enableSessionTicketExtension", "false");
                    break;
                default: usage();
            }
        }
        String[] pos = Arrays.copyOfRange(args, i, args.length);
        if (pos.length != 7 || !(pos[4].equals("explicit") || pos[4].equals("implicit"))) {
            usage();
        }
        String host = pos[0], user = pos[2], pass = pos[3], mode = pos[4];
        int port = Integer.parseInt(pos[1]);
        Path dir = Path.of(pos[5]);
        int n = Integer.parseInt(pos[6]);

        SSLContext ctx = SSLContext.getInstance("TLS");
        ctx.init(null, new TrustManager[] {TrustManagerUtils.getAcceptAllTrustManager()}, null);
        FtpsCommonsNet c = new FtpsCommonsNet(mode.equals("implicit"), ctx, reuse);
        if (tls != null) {
            c.setEnabledProtocols(new String[] {"TLSv" + tls});
        }
        c.setConnectTimeout(TIMEOUT_MS);
        c.setDefaultTimeout(TIMEOUT_MS);
        c.setDataTimeout(Duration.ofMillis(TIMEOUT_MS));

        // Explicit mode sends AUTH TLS inside connect().
        try {
            c.connect(host, port);
        } catch (IOException e) {
            fail("connect", e + " " + c.getReplyString());
        }
        try {
            c.check(c.login(user, pass), "login");
            // Both throw SSLException carrying the reply text on a non-200 reply.
            c.execPBSZ(0);
            c.execPROT("P");
            c.enterLocalPassiveMode();
            c.check(c.setFileType(FTP.BINARY_FILE_TYPE), "TYPE I");
        } catch (IOException e) {
            fail("login/PBSZ/PROT", e.toString());
        }

        Files.createDirectories(dir);
        SecureRandom random = new SecureRandom();
        byte[][] sent = new byte[n][];
        for (int k = 0; k < n; k++) {
            String name = "java-f" + k;
            // Odd sizes so the last TLS record of a transfer is a partial one.
            sent[k] = new byte[20000 + k * 4099];
            random.nextBytes(sent[k]);
            Files.write(dir.resolve(name), sent[k]);
            try {
                c.check(c.storeFile(name, new ByteArrayInputStream(sent[k])), "STOR " + name);
            } catch (IOException e) {
                fail("STOR " + name, e + "; server: " + c.pendingReply());
            }
            System.out.println("STOR " + name + " " + sent[k].length + " bytes ok");
        }
        for (int k = 0; k < n; k++) {
            String name = "java-f" + k;
            ByteArrayOutputStream got = new ByteArrayOutputStream();
            try {
                c.check(c.retrieveFile(name, got), "RETR " + name);
            } catch (IOException e) {
                fail("RETR " + name, e + "; server: " + c.pendingReply());
            }
            if (!Arrays.equals(got.toByteArray(), sent[k])) {
                fail("RETR " + name, "content differs: sent " + sent[k].length + " bytes, got " + got.size());
            }
            System.out.println("RETR " + name + " " + got.size() + " bytes ok");
        }
        try {
            c.logout();
            c.disconnect();
        } catch (IOException e) {
            fail("QUIT", e.toString());
        }
        System.out.println("OK: " + n + " files uploaded, downloaded and verified ("
                + mode + ", " + c.dataProtocol + ", " + (reuse ? "reuse" : "no-reuse") + ")");
    }

    private static void usage() {
        System.err.println("usage: FtpsCommonsNet [--reuse|--no-reuse] [--tls 1.2|1.3] [--no-tickets] "
                + "HOST PORT USER PASS explicit|implicit LOCAL_DIR N");
        System.exit(2);
    }
}

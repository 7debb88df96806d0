//go:build e2e

package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// client is a real FTP client in one mode, against any address and port.
type client struct {
	name   string
	active bool // the server opens the data connection (PORT/EPRT)
	ipv4   bool // only meaningful over IPv4 (PASV, PORT)
	// fetch downloads file to out from host:port and lists the directory;
	// it returns the listing and an error if anything failed.
	fetch func(l *lab, host, port, file, out string, timeout time.Duration) (string, error)
}

func hostPort(host, port string) string { return net.JoinHostPort(host, port) }

func curlClient(name string, active, ipv4 bool, flags ...string) client {
	return client{name: name, active: active, ipv4: ipv4, fetch: func(l *lab, host, port, file, out string, timeout time.Duration) (string, error) {
		secs := fmt.Sprint(int(timeout.Seconds()))
		base := append([]string{"curl", "-sS", "-g", "--max-time", secs, "--connect-timeout", secs}, flags...)
		url := "ftp://" + hostPort(host, port) + "/"
		if o, err := l.exec("c", timeout+5*time.Second, append(base, "-o", out, url+file)...); err != nil {
			return "", fmt.Errorf("curl get: %v: %s", err, o)
		}
		list, err := l.exec("c", timeout+5*time.Second, append(base, url)...)
		if err != nil {
			return "", fmt.Errorf("curl list: %v: %s", err, list)
		}
		return list, nil
	}}
}

func lftpClient(name string, passive bool) client {
	mode := "off"
	if passive {
		mode = "on"
	}
	return client{name: name, active: !passive, fetch: func(l *lab, host, port, file, out string, timeout time.Duration) (string, error) {
		script := fmt.Sprintf("set ftp:passive-mode %s; set ftp:prefer-epsv no; set ftp:fix-pasv-address no; set net:timeout %d; set net:max-retries 1; "+
			"set net:reconnect-interval-base 1; set xfer:clobber on; open ftp://%s; get %s -o %s; cls -1",
			mode, int(timeout.Seconds()), hostPort(host, port), file, out)
		o, err := l.exec("c", 2*timeout+5*time.Second, "lftp", "-c", script)
		if err != nil {
			return "", fmt.Errorf("lftp: %v: %s", err, o)
		}
		return o, nil
	}}
}

const ftplibScript = `
import ftplib, sys
server, port, file, out, passive, timeout = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5] == "pasv", float(sys.argv[6])
f = ftplib.FTP(timeout=timeout)
f.connect(server, port)
f.login()
f.set_pasv(passive)
with open(out, "wb") as w:
    f.retrbinary("RETR " + file, w.write)
names = f.nlst()
f.quit()
print("\n".join(names))
`

func ftplibClient(name string, passive bool) client {
	mode := "port"
	if passive {
		mode = "pasv"
	}
	return client{name: name, active: !passive, fetch: func(l *lab, host, port, file, out string, timeout time.Duration) (string, error) {
		script := filepath.Join(l.dir, "ftplib_client.py")
		if err := os.WriteFile(script, []byte(ftplibScript), 0o644); err != nil {
			return "", err
		}
		o, err := l.exec("c", 2*timeout+5*time.Second, "python3", script, host, port, file, out, mode, fmt.Sprint(timeout.Seconds()))
		if err != nil {
			return "", fmt.Errorf("ftplib: %v: %s", err, o)
		}
		return o, nil
	}}
}

// clients: curl in four modes, lftp and ftplib passive and active. Over
// IPv6, lftp and ftplib use EPSV/EPRT by themselves; curl's PASV and PORT
// modes do not exist there.
var clients = []client{
	curlClient("curl-PASV", false, true, "--disable-epsv"),
	curlClient("curl-EPSV", false, false),
	curlClient("curl-PORT", true, true, "-P", "-", "--disable-eprt"),
	curlClient("curl-EPRT", true, false, "-P", "-"),
	lftpClient("lftp-passive", true),
	lftpClient("lftp-active", false),
	ftplibClient("ftplib-PASV", true),
	ftplibClient("ftplib-PORT", false),
}

// transfer runs c against the lab's server on port 21 (see transferTo).
func transfer(l *lab, c client, timeout time.Duration) error {
	return transferTo(l, c, serverAddr, "21", timeout)
}

// transferTo runs c against host:port and checks the download byte for byte
// and the listing.
func transferTo(l *lab, c client, host, port string, timeout time.Duration) error {
	out := filepath.Join(l.dir, "out-"+c.name+"-"+port)
	os.Remove(out)
	list, err := c.fetch(l, host, port, "big.bin", out, timeout)
	if err != nil {
		return err
	}
	got, err := os.ReadFile(out)
	if err != nil {
		return fmt.Errorf("no download: %v", err)
	}
	if sumOf(got) != l.fileSHA("big.bin") {
		return fmt.Errorf("download differs: %d bytes, sha256 %s", len(got), sumOf(got))
	}
	if !strings.Contains(list, "hello.txt") {
		return fmt.Errorf("listing lacks hello.txt: %q", list)
	}
	return nil
}

//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// client is one real FTP client in one mode.
type client struct {
	name string
	// active: the server opens the data connection (PORT/EPRT).
	active bool
	// fetch downloads file to out and lists the directory; it returns the
	// listing and an error if anything failed.
	fetch func(l *lab, file, out string, timeout time.Duration) (string, error)
}

func curlClient(name string, active bool, flags ...string) client {
	return client{name: name, active: active, fetch: func(l *lab, file, out string, timeout time.Duration) (string, error) {
		secs := fmt.Sprint(int(timeout.Seconds()))
		base := append([]string{"curl", "-sS", "--max-time", secs, "--connect-timeout", secs}, flags...)
		if o, err := l.exec("c", timeout+5*time.Second, append(base, "-o", out, "ftp://"+serverAddr+"/"+file)...); err != nil {
			return "", fmt.Errorf("curl get: %v: %s", err, o)
		}
		list, err := l.exec("c", timeout+5*time.Second, append(base, "ftp://"+serverAddr+"/")...)
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
	return client{name: name, active: !passive, fetch: func(l *lab, file, out string, timeout time.Duration) (string, error) {
		script := fmt.Sprintf("set ftp:passive-mode %s; set ftp:prefer-epsv no; set net:timeout %d; set net:max-retries 1; "+
			"set net:reconnect-interval-base 1; set xfer:clobber on; open ftp://%s; get %s -o %s; cls -1",
			mode, int(timeout.Seconds()), serverAddr, file, out)
		o, err := l.exec("c", 2*timeout+5*time.Second, "lftp", "-c", script)
		if err != nil {
			return "", fmt.Errorf("lftp: %v: %s", err, o)
		}
		return o, nil
	}}
}

const ftplibScript = `
import ftplib, sys
server, file, out, passive, timeout = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "pasv", float(sys.argv[5])
f = ftplib.FTP(server, timeout=timeout)
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
	return client{name: name, active: !passive, fetch: func(l *lab, file, out string, timeout time.Duration) (string, error) {
		script := filepath.Join(l.dir, "ftplib_client.py")
		if err := os.WriteFile(script, []byte(ftplibScript), 0o644); err != nil {
			return "", err
		}
		o, err := l.exec("c", 2*timeout+5*time.Second, "python3", script, serverAddr, file, out, mode, fmt.Sprint(timeout.Seconds()))
		if err != nil {
			return "", fmt.Errorf("ftplib: %v: %s", err, o)
		}
		return o, nil
	}}
}

// clients is the acceptance matrix: curl in all four modes, lftp and Python's
// ftplib passive and active.
var clients = []client{
	curlClient("curl-PASV", false, "--disable-epsv"),
	curlClient("curl-EPSV", false),
	curlClient("curl-PORT", true, "-P", "-", "--disable-eprt"),
	curlClient("curl-EPRT", true, "-P", "-"),
	lftpClient("lftp-passive", true),
	lftpClient("lftp-active", false),
	ftplibClient("ftplib-PASV", true),
	ftplibClient("ftplib-PORT", false),
}

// transfer runs c and checks the download byte for byte and the listing.
func transfer(l *lab, c client, timeout time.Duration) error {
	out := filepath.Join(l.dir, "out-"+c.name)
	os.Remove(out)
	list, err := c.fetch(l, "big.bin", out, timeout)
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

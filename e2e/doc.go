// Package e2e holds ftpct's end-to-end tests (build tag e2e): real FTP servers
// and clients from Debian in network namespaces built by lab/lab.sh, run
// through ftpct, through the kernel's own FTP helper as the reference, and
// with no helper as the negative control.
//
// They need root and the lab's tools (lab/deps.sh installs them). Without
// them, TestMain prints a banner saying that nothing was tested and why, and
// runs no test, so `go test` closes with "ok ... [no tests to run]", not a
// plain "ok"; lab/test.sh fails on that. Under CI=true, anything that keeps
// them from running is a failure.
//
//	go test -tags e2e -count=1 -v ./e2e/
//
// They build ftpct from the checkout, unless FTPCT_BIN names an installed
// binary to test instead (deploy/test-installed.sh: the .deb's /usr/sbin/ftpct).
package e2e

// Command modzip serves a module version from a checkout the way the Go
// module proxy would: it writes the GOPROXY file layout
// (DIR/MODULE/@v/list, VERSION.info, VERSION.mod, VERSION.zip) for one
// version made from a git revision, with golang.org/x/mod/zip (the same
// checks and file selection as the go command). deploy/check-goinstall.sh
// uses it to prove that `go install MODULE/cmd/ftpct@VERSION` works before
// the module is published.
//
//	go run . -repo DIR -rev HEAD -module github.com/ftpct/ftpct -version v0.2.0 -out PROXYDIR
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/zip"
)

func main() {
	repo := flag.String("repo", ".", "git checkout holding the module at its root")
	rev := flag.String("rev", "HEAD", "git revision to serve")
	mod := flag.String("module", "", "module path")
	version := flag.String("version", "", "version to serve it as (vX.Y.Z)")
	out := flag.String("out", "", "proxy directory to write")
	flag.Parse()
	if err := run(*repo, *rev, *mod, *version, *out); err != nil {
		fmt.Fprintln(os.Stderr, "modzip:", err)
		os.Exit(1)
	}
}

func run(repo, rev, mod, version, out string) error {
	if mod == "" || version == "" || out == "" {
		return fmt.Errorf("-module, -version and -out are required")
	}
	m := module.Version{Path: mod, Version: version}
	if err := module.Check(m.Path, m.Version); err != nil {
		return err
	}
	esc, err := module.EscapePath(mod)
	if err != nil {
		return err
	}
	dir := filepath.Join(out, esc, "@v")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, version+".zip"))
	if err != nil {
		return err
	}
	if err := zip.CreateFromVCS(f, m, repo, rev, ""); err != nil {
		f.Close()
		return fmt.Errorf("module zip: %w", err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	gomod, err := exec.Command("git", "-C", repo, "show", rev+":go.mod").Output()
	if err != nil {
		return fmt.Errorf("go.mod at %s: %w", rev, err)
	}
	if err := os.WriteFile(filepath.Join(dir, version+".mod"), gomod, 0o644); err != nil {
		return err
	}
	when, err := exec.Command("git", "-C", repo, "log", "-1", "--format=%cI", rev).Output()
	if err != nil {
		return err
	}
	t, err := time.Parse(time.RFC3339, strings.TrimSpace(string(when)))
	if err != nil {
		return err
	}
	info, _ := json.Marshal(struct {
		Version string
		Time    time.Time
	}{version, t.UTC()})
	if err := os.WriteFile(filepath.Join(dir, version+".info"), info, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "list"), []byte(version+"\n"), 0o644)
}

// Command modzip serves a module version from a checkout the way the Go
// module proxy would: it writes the GOPROXY file layout
// (DIR/MODULE/@v/list, VERSION.info, VERSION.mod, VERSION.zip) for one
// version made from a directory (deploy/check-goinstall.sh gives it a
// `git archive` of HEAD), with golang.org/x/mod/zip: the same checks and
// file selection as the go command. check-goinstall.sh uses it to prove
// that `go install MODULE/cmd/ftpct@VERSION` works before the module is
// published.
//
//	go run . -dir SRC -module github.com/ftpct/ftpct -version v0.2.0 -time 2026-11-29T19:00:00Z -out PROXYDIR
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/zip"
)

func main() {
	src := flag.String("dir", ".", "directory holding the module at its root")
	mod := flag.String("module", "", "module path")
	version := flag.String("version", "", "version to serve it as (vX.Y.Z)")
	when := flag.String("time", "", "the version's time (RFC 3339), e.g. its commit's")
	out := flag.String("out", "", "proxy directory to write")
	flag.Parse()
	if err := run(*src, *mod, *version, *when, *out); err != nil {
		fmt.Fprintln(os.Stderr, "modzip:", err)
		os.Exit(1)
	}
}

func run(src, mod, version, when, out string) error {
	if mod == "" || version == "" || out == "" || when == "" {
		return fmt.Errorf("-module, -version, -time and -out are required")
	}
	t, err := time.Parse(time.RFC3339, when)
	if err != nil {
		return fmt.Errorf("-time: %w", err)
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
	if err := zip.CreateFromDir(f, m, src); err != nil {
		f.Close()
		return fmt.Errorf("module zip: %w", err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	gomod, err := os.ReadFile(filepath.Join(src, "go.mod"))
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, version+".mod"), gomod, 0o644); err != nil {
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

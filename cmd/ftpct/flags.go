package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/ftpct/ftpct/config"
)

// configPath is the config file read unless --config names another
// (tests point it elsewhere).
var configPath = config.DefaultPath

// settingsFlags returns a flag set with --config and a flag for each
// setting keep accepts (all when nil), and the loader they feed.
func settingsFlags(name string, keep func(*config.Key) bool) (*flag.FlagSet, *config.Loader) {
	fs := flag.NewFlagSet("ftpct "+name, flag.ContinueOnError)
	// A mistake is one line (main prints the error); -h lists the flags
	// (loadSettings).
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	l := config.NewLoader()
	l.Path = configPath
	l.Flags(fs, keep)
	return fs, l
}

// loadSettings parses args and builds the effective configuration:
// defaults, then the config file, then the flags. Command-line mistakes
// wrap errUsage; the file's name the key and line.
func loadSettings(fs *flag.FlagSet, l *config.Loader, args []string, stderr io.Writer) (*config.Config, error) {
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(stderr, "Usage of %s:\n", fs.Name())
		fs.SetOutput(stderr)
		fs.PrintDefaults()
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v ('%s -h' lists the flags)", errUsage, err, fs.Name())
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	c, err := l.Load()
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return c, nil
}

// rulesKey: the settings that change what `ftpct rules` prints.
func rulesKey(k *config.Key) bool { return k.Rules }

// cmdCheck validates the configuration and prints it with where each
// value came from.
func cmdCheck(args []string, stdout, stderr io.Writer) error {
	fs, l := settingsFlags("check", nil)
	c, err := loadSettings(fs, l, args, stderr)
	if err != nil {
		return err
	}
	return c.Write(stdout)
}

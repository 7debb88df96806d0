// Package config holds ftpct's settings: the keys shared by the config file
// (/etc/ftpct/ftpct.conf, TOML, read with github.com/BurntSushi/toml) and the
// command-line flags of `ftpct run`, `ftpct check` and `ftpct rules`, their
// defaults, their validation, and where each effective value came from.
//
// A key is defined once, in keys.go: its name is both the file key and the
// flag, and one parser checks the value whichever way it arrives. Flags
// override the file; the file overrides the defaults. Unknown keys and bad
// values are errors that name the key and, in a file, its line.
//
// Nothing here touches the system except reading the file; it builds and
// tests on any OS. Values are plain data: a Config is not safe for
// concurrent mutation, but copies are independent.
package config

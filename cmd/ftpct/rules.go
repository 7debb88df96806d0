package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/ftpct/ftpct/rules"
)

// cmdRules prints what `ftpct run` installs, or with --deployment the
// operator's own rules of a documented deployment.
func cmdRules(args []string, stdout, stderr io.Writer) error {
	fs, l := settingsFlags("rules", rulesKey)
	deployment := fs.String("deployment", "", "print the operator's rules for a deployment instead: "+strings.Join(rules.DeploymentNames(), ", "))
	set := fs.String("set", "", "with --deployment: `NAME=VALUE,...` fills placeholders "+strings.Join(rules.PlaceholderNames(), ", "))
	c, err := loadSettings(fs, l, args, stderr)
	if err != nil {
		return err
	}
	if *deployment == "" {
		if *set != "" {
			return fmt.Errorf("%w: --set needs --deployment", errUsage)
		}
		_, err := io.WriteString(stdout, rules.Script(c.Rules))
		return err
	}
	d, err := rules.LookupDeployment(*deployment)
	if err != nil {
		return fmt.Errorf("%w: --deployment: %v", errUsage, err)
	}
	values, err := rules.ParseValues(*set)
	if err != nil {
		return fmt.Errorf("%w: --set: %v", errUsage, err)
	}
	_, err = io.WriteString(stdout, rules.DeploymentRules(c.Rules, d, values))
	return err
}

package main

import (
	"slices"
	"strconv"

	"github.com/hupd/hupd/config"
	"github.com/urfave/cli/v2"
)

// runFlags are the flags of hupd run and hupd check: --config, then one
// per config.Flags entry, in its order.
func runFlags() []cli.Flag {
	flags := []cli.Flag{
		&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Usage: "read settings from `FILE` (TOML); flags override it"},
	}
	for _, f := range config.Flags() {
		switch f.Kind {
		case config.FlagList:
			flags = append(flags, &cli.StringSliceFlag{Name: f.Name, Aliases: f.Aliases, Usage: f.Usage})
		case config.FlagBool:
			flags = append(flags, &cli.BoolFlag{Name: f.Name, Aliases: f.Aliases, Usage: f.Usage, Value: f.Default})
		default:
			flags = append(flags, &cli.StringFlag{Name: f.Name, Aliases: f.Aliases, Usage: f.Usage})
		}
	}
	return flags
}

// mergedConfig is the file --config names (or an empty Config) with every
// flag given on the command line applied over it, and argv as the command.
func mergedConfig(c *cli.Context, argv []string) (*config.Config, error) {
	return mergedConfigData(c, argv, nil)
}

// mergedConfigData is mergedConfig with data (when not nil) as the content
// of the file --config names, which is then not read (hupd plan).
func mergedConfigData(c *cli.Context, argv []string, data []byte) (*config.Config, error) {
	cfg := &config.Config{}
	if p := c.String("config"); p != "" {
		var err error
		if data != nil {
			cfg, err = config.Parse(p, data)
		} else {
			cfg, err = config.Load(p)
		}
		if err != nil {
			return nil, err
		}
	}
	// The names the command line gave (-l or --listen). Not c.IsSet per
	// flag: it looks each name up through every flag's Names, which
	// urfave/cli cleans with a regular expression: 70-110 KB of garbage
	// at every start and every reload of hupd.toml.
	given := map[string]bool{}
	for _, n := range c.LocalFlagNames() {
		given[n] = true
	}
	for _, f := range config.Flags() {
		if !given[f.Name] && !slices.ContainsFunc(f.Aliases, func(a string) bool { return given[a] }) {
			continue
		}
		var vals []string
		switch f.Kind {
		case config.FlagList:
			vals = c.StringSlice(f.Name)
		case config.FlagBool:
			vals = []string{strconv.FormatBool(c.Bool(f.Name))}
		default:
			vals = []string{c.String(f.Name)}
		}
		if err := cfg.Override(f.Name, vals...); err != nil {
			return nil, err
		}
	}
	cfg.SetCommand(argv)
	return cfg, nil
}

func loadConfig(c *cli.Context, argv []string) (*config.Resolved, error) {
	cfg, err := mergedConfig(c, argv)
	if err != nil {
		return nil, err
	}
	return cfg.Resolve()
}

package config

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
)

// envNameRE is what an environment variable name must look like wherever the
// configuration names one (${env:NAME}, allow-env, embeddingKeyEnv, server env).
var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// expander performs the substitutions allowed in configuration values:
// ${userHome}, ${env:NAME} anywhere, and ~ at the start ("~" or "~/...").
type expander struct {
	home string
	env  func(string) string
}

// expand substitutes variables in s. Errors name the offending ${...} form
// but never quote s itself, so they are safe for secret values.
func (x expander) expand(s string) (string, error) {
	if s == "~" || strings.HasPrefix(s, "~/") {
		s = x.home + s[1:]
	}
	if !strings.Contains(s, "${") {
		return s, nil
	}
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		b.WriteString(s[:i])
		rest := s[i+2:]
		j := strings.IndexByte(rest, '}')
		if j < 0 {
			return "", errors.New(`unterminated "${" (expected ${userHome} or ${env:NAME})`)
		}
		name := rest[:j]
		switch {
		case name == "userHome":
			b.WriteString(x.home)
		case strings.HasPrefix(name, "env:"):
			n := name[len("env:"):]
			if !envNameRE.MatchString(n) {
				return "", fmt.Errorf("${%s}: %q is not a valid environment variable name", name, n)
			}
			v := x.env(n)
			if v == "" {
				return "", fmt.Errorf("${%s}: environment variable %s is not set", name, n)
			}
			b.WriteString(v)
		default:
			return "", fmt.Errorf("unknown variable ${%s} (only ${userHome} and ${env:NAME} expand)", name)
		}
		s = rest[j+1:]
	}
}

// path expands s and makes it absolute and clean: a relative path is joined
// to base, or to the current directory when base is empty.
func (x expander) path(s, base string) (string, error) {
	if strings.TrimSpace(s) == "" {
		return "", errors.New("must not be empty")
	}
	p, err := x.expand(s)
	if err != nil {
		return "", err
	}
	return absPath(p, base)
}

func absPath(p, base string) (string, error) {
	if filepath.IsAbs(p) {
		return filepath.Clean(p), nil
	}
	if base != "" {
		return filepath.Join(base, p), nil
	}
	a, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("make %q absolute: %w", p, err)
	}
	return a, nil
}

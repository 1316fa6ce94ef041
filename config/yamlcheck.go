package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// The YAML checker: it knows nothing of RaftKV's keys. It walks a document
// against the yaml tags of a Go struct and reports every problem with its
// key path and line (unknown keys with the closest known one, wrong types,
// keys set twice), then decodes strictly. It never panics on any input.

// decodeChecked decodes a YAML document whose top level is a mapping into a
// T, a struct whose yaml tags name every known key. It first checks the
// document key by key (so that errors can name the key and its line, and
// suggest the known key closest to an unknown one), then decodes strictly.
// An empty document decodes as the zero T.
func decodeChecked[T any](data []byte) (T, error) {
	var raw T
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := noPanic(func() error { return dec.Decode(&doc) }); err != nil {
		if errors.Is(err, io.EOF) {
			return raw, nil // no document at all: mode is then missing
		}
		return raw, fmt.Errorf("%w: malformed YAML: %v", errInvalid, err)
	}
	var next yaml.Node
	if err := noPanic(func() error { return dec.Decode(&next) }); !errors.Is(err, io.EOF) {
		return raw, fmt.Errorf("%w: the file must hold a single YAML document (found a second one or junk after the first)", errInvalid)
	}
	if len(doc.Content) == 0 {
		return raw, nil
	}
	top := resolve(doc.Content[0])
	if isNull(top) {
		return raw, nil
	}
	if top.Kind != yaml.MappingNode {
		return raw, fmt.Errorf("%w: line %d: the top level must be a mapping of key: value pairs", errInvalid, top.Line)
	}
	if errs := checkMapping(top, "", reflect.TypeFor[T]()); len(errs) > 0 {
		return raw, errors.Join(errs...)
	}
	// The walk above accepted every key and value, so this strict decode is
	// expected to succeed; KnownFields keeps it from ever accepting what the
	// walk might have missed.
	strict := yaml.NewDecoder(bytes.NewReader(data))
	strict.KnownFields(true)
	if err := noPanic(func() error { return strict.Decode(&raw) }); err != nil {
		return *new(T), fmt.Errorf("%w: %v", errInvalid, err)
	}
	return raw, nil
}

// checkMapping checks every key of mapping m against the yaml tags of struct
// type t and every value against its field's type. prefix is the path of m
// ("" at the top, "servers[2]." in a list entry). It reports all problems,
// so that one run of the tool lists everything to fix.
func checkMapping(m *yaml.Node, prefix string, t reflect.Type) []error {
	fields := make(map[string]reflect.Type, t.NumField())
	var names []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		fields[name] = f.Type
		names = append(names, name)
	}
	var errs []error
	seen := make(map[string]int)
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			errs = append(errs, fmt.Errorf("%w: %sline %d: keys must be plain names", errInvalid, prefix, k.Line))
			continue
		}
		key := prefix + k.Value
		ft, ok := fields[k.Value]
		if !ok {
			errs = append(errs, fmt.Errorf("%w: %q at line %d%s", errUnknownKey, key, k.Line, suggest(k.Value, names)))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			errs = append(errs, fmt.Errorf("%w: %s (line %d): set twice, first at line %d", errInvalid, key, k.Line, first))
			continue
		}
		seen[k.Value] = k.Line
		errs = append(errs, checkValue(key, k.Line, v, ft)...)
	}
	return errs
}

// checkValue checks that node v can be decoded into type t without loss.
// line is the line of v's key, which is where an operator looks.
func checkValue(key string, line int, v *yaml.Node, t reflect.Type) []error {
	v = resolve(v)
	if isNull(v) {
		if t.Kind() == reflect.Pointer {
			return nil // left out
		}
		return []error{fmt.Errorf("%w: %s (line %d): empty; want %s", errInvalid, key, line, describe(t))}
	}
	base := t
	for base.Kind() == reflect.Pointer {
		base = base.Elem()
	}
	wrongType := func() []error {
		return []error{fmt.Errorf("%w: %s (line %d): got %s; want %s", errInvalid, key, line, show(v), describe(base))}
	}
	switch base.Kind() {
	case reflect.Slice:
		if v.Kind != yaml.SequenceNode {
			return wrongType()
		}
		var errs []error
		for j, item := range v.Content {
			errs = append(errs, checkValue(fmt.Sprintf("%s[%d]", key, j), item.Line, item, base.Elem())...)
		}
		return errs
	case reflect.Struct:
		if v.Kind != yaml.MappingNode {
			return wrongType()
		}
		return checkMapping(v, key+".", base)
	case reflect.Int, reflect.Uint64:
		// yaml.v3 would truncate 1.5 into an int field; require an integer.
		if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!int" {
			return wrongType()
		}
		if err := noPanic(func() error { return v.Decode(reflect.New(base).Interface()) }); err != nil {
			return wrongType()
		}
	case reflect.String:
		// Any scalar reads as its text (clusterId: 42 is "42"); lists and
		// mappings do not.
		if v.Kind != yaml.ScalarNode {
			return wrongType()
		}
	}
	return nil
}

// noPanic runs a yaml.v3 call and turns a panic into an error. yaml.v3 has
// had inputs that panic (CVE-2022-28948), and whatever it does, a bad file
// must come back as an error. Only calls into yaml.v3 are wrapped, so a bug
// in this package still panics where tests and FuzzParse can see it.
func noPanic(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("YAML parser failed: %v", r)
		}
	}()
	return f()
}

// resolve follows an alias (*name) to the node it refers to.
func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// describe names what a value of type t looks like in YAML.
func describe(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Int:
		return "an integer"
	case reflect.Uint64:
		return "a positive integer"
	case reflect.String:
		return "a string"
	case reflect.Slice:
		return "a list"
	case reflect.Struct:
		return "a mapping of key: value pairs"
	}
	return t.String()
}

// show describes a node for an error message, keeping long scalars short.
func show(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.ScalarNode:
		s := n.Value
		if len(s) > 40 {
			s = s[:40] + "..."
		}
		return strconv.Quote(s)
	}
	return "an unsupported node"
}

// suggest proposes the known key closest to an unknown one, because most
// unknown keys are a letter off ("serverNum") or in another case or style
// ("servers_num").
func suggest(key string, known []string) string {
	norm := func(s string) string {
		return strings.ToLower(strings.NewReplacer("_", "", "-", "", " ", "").Replace(s))
	}
	best, bestDist := "", 3
	for _, k := range known {
		if d := editDistance(norm(key), norm(k), bestDist); d < bestDist {
			best, bestDist = k, d
		}
	}
	if best == "" {
		return "; known keys: " + strings.Join(known, ", ")
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Levenshtein distance of a and b, or limit when it is
// at least limit (which keeps long junk keys cheap).
func editDistance(a, b string, limit int) int {
	if d := len(a) - len(b); d >= limit || -d >= limit {
		return limit
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		rowMin := cur[0]
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			rowMin = min(rowMin, cur[j])
		}
		if rowMin >= limit {
			return limit
		}
		prev, cur = cur, prev
	}
	return min(prev[len(b)], limit)
}

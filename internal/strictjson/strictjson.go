// Package strictjson decodes JSON into structs without falling back to
// defaults: a key the struct does not have, or a field the JSON leaves out,
// is an error naming it. Settings stored in a checkpoint or a config file
// are read this way, so a misspelt key never silently becomes a default.
package strictjson

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
)

// Decode decodes data into v, a pointer to a struct. Every field must be
// present except those tagged omitempty (encoding/json leaves them out
// when they are zero); nested structs are checked the same way.
func Decode(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("trailing data after the JSON object")
	}
	return missing(data, reflect.TypeOf(v).Elem(), "")
}

// missing reports the first field of t that data, a JSON object, lacks.
func missing(data []byte, t reflect.Type, path string) error {
	if t.Kind() != reflect.Struct {
		return nil
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(data, &keys); err != nil {
		return err
	}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" {
			name = f.Name
		}
		raw, ok := lookup(keys, name)
		if !ok {
			if strings.Contains(opts, "omitempty") || strings.Contains(opts, "omitzero") {
				continue
			}
			return fmt.Errorf("missing key %q", path+name)
		}
		if f.Type.Kind() == reflect.Struct && !implementsText(f.Type) && string(raw) != "null" {
			if err := missing(raw, f.Type, path+name+"."); err != nil {
				return err
			}
		}
	}
	return nil
}

// lookup finds a key as encoding/json matches it: exactly, else without
// regard to case.
func lookup(keys map[string]json.RawMessage, name string) (json.RawMessage, bool) {
	if v, ok := keys[name]; ok {
		return v, true
	}
	for k, v := range keys {
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return nil, false
}

// implementsText reports whether a struct type reads itself from a JSON
// string, so its fields are not keys.
func implementsText(t reflect.Type) bool {
	u := reflect.TypeFor[interface{ UnmarshalText([]byte) error }]()
	return reflect.PointerTo(t).Implements(u) || reflect.PointerTo(t).Implements(reflect.TypeFor[json.Unmarshaler]())
}
